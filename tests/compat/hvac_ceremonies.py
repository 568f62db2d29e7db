#!/usr/bin/env python3
"""hvac drives Vault's legacy unauthenticated key ceremonies against a server
whose listener turned them on (`disable_unauthed_rekey_endpoints = false`,
`disable_unauthed_generate_root_endpoints = false`).

Usage: hvac_ceremonies.py --addr URL --keys K1,K2,K3,K4,K5 --root TOKEN
(a server initialised 5/3 and unsealed; the keys in base64.)

Covers: read_rekey_progress, start_rekey, rekey, rekey_multi, cancel_rekey
(the old shares keep working after a cancel), a wrong nonce, then
start_root_token_generation / generate_root / cancel_root_generation with an
OTP, decoding the token and using it. Exit status 0 only if every check
passed; the last line reads "N passed, 0 failed".
"""

import argparse
import base64
import sys
import traceback

try:
    import hvac
    import hvac.exceptions as hx
except ImportError as e:  # fail, never skip
    print(f"hvac is not importable ({e}); install it with `pip install hvac`", file=sys.stderr)
    sys.exit(3)

PASSED = 0
FAILED = 0


def check(name, fn):
    global PASSED, FAILED
    try:
        fn()
        PASSED += 1
        print(f"ok   {name}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        FAILED += 1
        print(f"FAIL {name}")
        traceback.print_exc()


def decode_token(encoded, otp):
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--root", required=True)
    a = p.parse_args()
    keys = a.keys.split(",")
    anon = hvac.Client(url=a.addr)  # no token: these endpoints need none
    st = {}

    def progress_idle():
        s = anon.sys.read_rekey_progress()
        assert s["started"] is False, s
        assert s["required"] == 3, s

    check("read_rekey_progress without a token", progress_idle)

    def cancelled():
        s = anon.sys.start_rekey(secret_shares=3, secret_threshold=2)
        assert s["started"] is True and s["n"] == 3 and s["t"] == 2, s
        anon.sys.rekey(keys[0], nonce=s["nonce"])
        assert anon.sys.read_rekey_progress()["progress"] == 1
        anon.sys.cancel_rekey()
        assert anon.sys.read_rekey_progress()["started"] is False

    check("start_rekey, rekey, cancel_rekey", cancelled)

    def wrong_nonce():
        s = anon.sys.start_rekey(secret_shares=3, secret_threshold=2)
        st["nonce"] = s["nonce"]
        try:
            anon.sys.rekey(keys[0], nonce="not-the-nonce")
        except hx.InvalidRequest as e:
            assert "nonce" in str(e), e
        else:
            raise AssertionError("a wrong nonce was accepted")

    check("a wrong nonce is refused", wrong_nonce)

    def rekey_multi():
        r = anon.sys.rekey_multi(keys[1:4], nonce=st["nonce"])
        assert r["complete"] is True, r
        assert len(r["keys_base64"]) == 3, r
        st["new"] = r["keys_base64"]

    check("rekey_multi completes with 3 current shares", rekey_multi)

    def new_shares_unseal():
        c = hvac.Client(url=a.addr, token=a.root)
        c.sys.seal()
        try:
            anon.sys.submit_unseal_keys(keys[:3])
        except hx.VaultError:
            pass
        else:
            status = anon.sys.read_seal_status()
            assert status["sealed"] is True, status
        anon.sys.submit_unseal_key(reset=True)
        r = anon.sys.submit_unseal_keys(st["new"][:2])
        assert r["sealed"] is False, r

    check("the old shares no longer unseal, two new ones do", new_shares_unseal)

    def generate_root():
        s = anon.sys.read_root_generation_progress()
        assert s["started"] is False, s
        otp_len = s["otp_length"]
        s = anon.sys.start_root_token_generation()
        otp = s["otp"]
        assert len(otp) == otp_len == 28, s
        anon.sys.generate_root(st["new"][0], nonce=s["nonce"])
        r = anon.sys.generate_root(st["new"][2], nonce=s["nonce"])
        assert r["complete"] is True, r
        token = decode_token(r["encoded_root_token"], otp)
        assert token == decode_token(r["encoded_token"], otp)
        me = hvac.Client(url=a.addr, token=token).auth.token.lookup_self()
        assert me["data"]["policies"] == ["root"], me

    check("start_root_token_generation, generate_root, decode", generate_root)

    def cancel_generation():
        anon.sys.start_root_token_generation()
        anon.sys.cancel_root_generation()
        assert anon.sys.read_root_generation_progress()["started"] is False

    check("cancel_root_generation", cancel_generation)

    print(f"hvac_ceremonies: {PASSED} passed, {FAILED} failed")
    sys.exit(0 if FAILED == 0 else 1)


if __name__ == "__main__":
    main()
