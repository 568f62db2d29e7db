#!/usr/bin/env python3
"""Drive a fresh (uninitialised) Vault-API server with hvac, end to end.

Usage: hvac_flow.py [--addr http://127.0.0.1:8200]   (default: $VAULT_ADDR)

Covers what the compatibility issue asks of hvac users: init 5/3, unseal,
seal status, seal and unseal again, token auth, KV v1 and v2 (write, read,
patch, check-and-set conflict, versions, delete, undelete, destroy, metadata,
list), an ACL policy, a token with that policy and a TTL, the limited token
reads but gets 403 on writes and other paths, revoke by accessor, revoked
token refused.

Run by crates/arca/tests/compat_hvac.rs against a real `arca server`; it can
be pointed at any server of the same API (e.g. OpenBao) to check the script.
Exit status 0 only if every check passed; the last line reads
"N passed, 0 failed".
"""

import argparse
import os
import sys
import time
import traceback
import warnings

try:
    import hvac
    import hvac.exceptions as hx
except ImportError as e:  # fail, never skip: CI installs hvac
    print(f"hvac is not importable ({e}); install it with `pip install hvac`", file=sys.stderr)
    sys.exit(3)

warnings.simplefilter("ignore", DeprecationWarning)

POLICY = """\
# Read-only access to the application's secrets.
path "kv2/data/app/*" {
  capabilities = ["read"]
}

path "kv2/metadata/app/*" {
  capabilities = ["read", "list"]
}

path "kv1/team/*" {
  capabilities = ["read", "list"]
}
"""

PASSED = 0


def check(cond, what, detail=None):
    global PASSED
    if not cond:
        msg = f"FAILED: {what}"
        if detail is not None:
            msg += f"\n  got: {detail!r}"
        raise AssertionError(msg)
    PASSED += 1


def expect_raises(exc, fn, what, text=None):
    try:
        fn()
    except exc as e:
        if text is not None:
            check(text.lower() in str(e).lower(), f"{what}: error mentions {text!r}", str(e))
        else:
            check(True, what)
        return e
    except Exception as e:  # wrong exception type
        raise AssertionError(f"FAILED: {what}: expected {exc.__name__}, got {type(e).__name__}: {e}")
    raise AssertionError(f"FAILED: {what}: expected {exc.__name__}, nothing raised")


def wait_active(client, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        try:
            h = client.sys.read_health_status(method="GET")
            # hvac returns a dict for 200, a Response object otherwise.
            if isinstance(h, dict) and not h.get("sealed") and not h.get("standby"):
                return
        except Exception:
            pass
        if time.time() > deadline:
            raise AssertionError("FAILED: server not active after unseal")
        time.sleep(0.1)


def wait_kv2_ready(client, mount, timeout=30.0):
    """A fresh KV v2 mount may briefly answer 400 "Upgrading from
    non-versioned to versioned data" (OpenBao does); wait that out."""
    deadline = time.time() + timeout
    while True:
        try:
            client.secrets.kv.v2.read_secret_version("__probe__", mount_point=mount,
                                                     raise_on_deleted_version=True)
            return
        except hx.InvalidPath:
            return
        except hx.InvalidRequest as e:
            if "upgrading" not in str(e).lower() or time.time() > deadline:
                raise
        time.sleep(0.1)


def step(name):
    print(f"-- {name}", flush=True)


def run(addr):
    c = hvac.Client(url=addr, timeout=30)

    step("init 5/3")
    check(c.sys.is_initialized() is False, "not initialised before init")
    check(c.sys.is_sealed() is True, "sealed before init")
    init = c.sys.initialize(secret_shares=5, secret_threshold=3)
    keys = init["keys"]
    keys_b64 = init["keys_base64"]
    root = init["root_token"]
    check(len(keys) == 5 and len(keys_b64) == 5, "5 key shares", init)
    check(bool(root), "root token returned")
    check(c.sys.is_initialized() is True, "initialised after init")
    expect_raises(hx.InvalidRequest, lambda: c.sys.initialize(secret_shares=1, secret_threshold=1),
                  "second init refused")

    step("unseal")
    st = c.sys.read_seal_status()
    check(st["sealed"] is True and st["t"] == 3 and st["n"] == 5 and st["progress"] == 0,
          "seal status t=3 n=5", st)
    st = c.sys.submit_unseal_key(keys[0])
    check(st["sealed"] is True and st["progress"] == 1, "progress 1/3", st)
    st = c.sys.submit_unseal_key(keys_b64[1])  # hex and base64 both accepted
    check(st["sealed"] is True and st["progress"] == 2, "progress 2/3", st)
    st = c.sys.submit_unseal_key(keys[2])
    check(st["sealed"] is False, "unsealed after 3 keys", st)
    wait_active(c)
    check(c.sys.is_sealed() is False, "is_sealed false")

    c.token = root
    check(c.is_authenticated(), "root token authenticates")
    me = c.auth.token.lookup_self()["data"]
    check("root" in me["policies"], "root policy", me)

    step("seal and unseal again")
    c.sys.seal()
    check(c.sys.is_sealed() is True, "sealed after seal")
    expect_raises(hx.VaultDown, lambda: c.secrets.kv.v1.read_secret("x", mount_point="secret"),
                  "sealed server refuses reads (503)")
    res = c.sys.submit_unseal_keys([keys_b64[4], keys[3], keys_b64[0]])
    check(res["sealed"] is False, "unsealed with keys 5,4,1", res)
    wait_active(c)
    check(c.is_authenticated(), "root token valid after re-unseal")

    step("mounts")
    c.sys.enable_secrets_engine("kv", path="kv2", options={"version": "2"})
    c.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    wait_kv2_ready(c, "kv2")
    mounts = c.sys.list_mounted_secrets_engines()["data"]
    check(mounts["kv2/"]["type"] == "kv" and mounts["kv2/"]["options"]["version"] == "2",
          "kv2 mounted as v2", mounts.get("kv2/"))
    check(mounts["kv1/"]["type"] == "kv", "kv1 mounted", mounts.get("kv1/"))
    cfg = c.secrets.kv.v2.read_configuration(mount_point="kv2")["data"]
    check("max_versions" in cfg and "cas_required" in cfg, "kv2 config readable", cfg)

    step("kv v2 write/read")
    kv2 = c.secrets.kv.v2
    r = kv2.create_or_update_secret("app/config", secret={"user": "alice", "pass": "s3cr3t"},
                                    mount_point="kv2")
    check(r["data"]["version"] == 1, "first write is version 1", r)
    r = kv2.read_secret_version("app/config", mount_point="kv2", raise_on_deleted_version=True)
    check(r["data"]["data"] == {"user": "alice", "pass": "s3cr3t"}, "read back v1", r)
    check(r["data"]["metadata"]["version"] == 1, "metadata version 1", r)
    r = kv2.create_or_update_secret("app/config", secret={"user": "bob", "pass": "p2"},
                                    mount_point="kv2")
    check(r["data"]["version"] == 2, "second write is version 2", r)

    step("kv v2 patch")
    r = kv2.patch("app/config", secret={"pass": "p3", "port": "5432"}, mount_point="kv2")
    check(r["data"]["version"] == 3, "patch makes version 3", r)
    r = kv2.read_secret_version("app/config", mount_point="kv2", raise_on_deleted_version=True)
    check(r["data"]["data"] == {"user": "bob", "pass": "p3", "port": "5432"}, "patch merged", r)

    step("kv v2 check-and-set")
    expect_raises(hx.InvalidRequest,
                  lambda: kv2.create_or_update_secret("app/config", secret={"user": "eve"}, cas=1,
                                                      mount_point="kv2"),
                  "stale cas refused", "check-and-set parameter did not match")
    r = kv2.create_or_update_secret("app/config", secret={"user": "carol"}, cas=3, mount_point="kv2")
    check(r["data"]["version"] == 4, "matching cas accepted", r)
    expect_raises(hx.InvalidRequest,
                  lambda: kv2.create_or_update_secret("app/config", secret={"x": "y"}, cas=0,
                                                      mount_point="kv2"),
                  "cas=0 on an existing key refused", "check-and-set")
    r = kv2.create_or_update_secret("app/new", secret={"x": "1"}, cas=0, mount_point="kv2")
    check(r["data"]["version"] == 1, "cas=0 creates a new key", r)

    step("kv v2 versions")
    r = kv2.read_secret_version("app/config", version=1, mount_point="kv2",
                                raise_on_deleted_version=True)
    check(r["data"]["data"]["user"] == "alice", "read version 1", r)
    m = kv2.read_secret_metadata("app/config", mount_point="kv2")["data"]
    check(m["current_version"] == 4, "current_version 4", m)
    check(sorted(m["versions"].keys(), key=int) == ["1", "2", "3", "4"], "4 versions listed", m)

    step("kv v2 delete/undelete/destroy")
    kv2.delete_latest_version_of_secret("app/config", mount_point="kv2")
    expect_raises(hx.InvalidPath,
                  lambda: kv2.read_secret_version("app/config", mount_point="kv2",
                                                  raise_on_deleted_version=True),
                  "deleted latest version reads as 404")
    r = kv2.read_secret_version("app/config", mount_point="kv2", raise_on_deleted_version=False)
    check(r["data"]["data"] is None and r["data"]["metadata"]["deletion_time"] != ""
          and r["data"]["metadata"]["version"] == 4,
          "404 body carries the metadata of the deleted version", r)
    kv2.undelete_secret_versions("app/config", versions=[4], mount_point="kv2")
    r = kv2.read_secret_version("app/config", mount_point="kv2", raise_on_deleted_version=True)
    check(r["data"]["data"] == {"user": "carol"}, "undeleted", r)
    kv2.delete_secret_versions("app/config", versions=[2], mount_point="kv2")
    r = kv2.read_secret_version("app/config", version=2, mount_point="kv2",
                                raise_on_deleted_version=False)
    check(r["data"]["data"] is None, "version 2 deleted", r)
    kv2.destroy_secret_versions("app/config", versions=[1], mount_point="kv2")
    e = expect_raises(hx.InvalidPath,
                      lambda: kv2.read_secret_version("app/config", version=1, mount_point="kv2",
                                                      raise_on_deleted_version=False),
                      "destroyed version reads as 404")
    r = e.json
    check(r is not None and r["data"]["data"] is None
          and r["data"]["metadata"]["destroyed"] is True,
          "404 body says version 1 is destroyed", r)
    m = kv2.read_secret_metadata("app/config", mount_point="kv2")["data"]
    check(m["versions"]["1"]["destroyed"] is True, "metadata shows destroyed", m)
    check(m["versions"]["2"]["deletion_time"] != "", "metadata shows deletion", m)

    step("kv v2 metadata and list")
    kv2.update_metadata("app/config", max_versions=6, custom_metadata={"owner": "team-a"},
                        mount_point="kv2")
    m = kv2.read_secret_metadata("app/config", mount_point="kv2")["data"]
    check(m["max_versions"] == 6 and m["custom_metadata"] == {"owner": "team-a"},
          "metadata updated", m)
    kv2.create_or_update_secret("app/sub/deep", secret={"d": "1"}, mount_point="kv2")
    keys_l = kv2.list_secrets("app", mount_point="kv2")["data"]["keys"]
    check(keys_l == ["config", "new", "sub/"], "list kv2/app", keys_l)
    keys_l = kv2.list_secrets("", mount_point="kv2")["data"]["keys"]
    check(keys_l == ["app/"], "list kv2 root", keys_l)
    expect_raises(hx.InvalidPath, lambda: kv2.list_secrets("nothing", mount_point="kv2"),
                  "list of an empty folder is 404")
    kv2.delete_metadata_and_all_versions("app/new", mount_point="kv2")
    expect_raises(hx.InvalidPath, lambda: kv2.read_secret_metadata("app/new", mount_point="kv2"),
                  "metadata delete removes the key")
    keys_l = kv2.list_secrets("app", mount_point="kv2")["data"]["keys"]
    check(keys_l == ["config", "sub/"], "list after metadata delete", keys_l)

    step("kv v1")
    kv1 = c.secrets.kv.v1
    kv1.create_or_update_secret("team/db", secret={"user": "dba", "password": "pw1"},
                                mount_point="kv1")
    r = kv1.read_secret("team/db", mount_point="kv1")
    check(r["data"] == {"user": "dba", "password": "pw1"}, "kv1 read", r)
    kv1.create_or_update_secret("team/db", secret={"password": "pw2"}, mount_point="kv1")
    r = kv1.read_secret("team/db", mount_point="kv1")
    check(r["data"] == {"password": "pw2"}, "kv1 overwrite replaces", r)
    kv1.create_or_update_secret("team/api", secret={"k": "v"}, mount_point="kv1")
    keys_l = kv1.list_secrets("team", mount_point="kv1")["data"]["keys"]
    check(keys_l == ["api", "db"], "kv1 list", keys_l)
    kv1.delete_secret("team/api", mount_point="kv1")
    expect_raises(hx.InvalidPath, lambda: kv1.read_secret("team/api", mount_point="kv1"),
                  "kv1 deleted key is 404")

    step("policy")
    c.sys.create_or_update_policy("app-reader", POLICY)
    r = c.sys.read_policy("app-reader")
    check(r["data"]["rules"].strip() == POLICY.strip(), "policy rules round-trip", r)
    r = c.sys.read_acl_policy("app-reader")
    check(r["data"]["policy"].strip() == POLICY.strip(), "acl policy round-trip", r)
    pols = c.sys.list_policies()["data"]["policies"]
    check("app-reader" in pols and "default" in pols and "root" in pols, "policy list", pols)

    step("limited token")
    t = c.auth.token.create(policies=["app-reader"], ttl="1h")["auth"]
    limited, accessor = t["client_token"], t["accessor"]
    check(t["lease_duration"] == 3600 and t["renewable"] is True, "ttl 1h, renewable", t)
    check("app-reader" in t["policies"] and "default" in t["policies"], "token policies", t)
    look = c.auth.token.lookup(limited)["data"]
    check(3500 <= look["ttl"] <= 3600 and look["accessor"] == accessor, "lookup ttl/accessor", look)
    look = c.auth.token.lookup_accessor(accessor)["data"]
    check("app-reader" in look["policies"], "lookup by accessor", look)

    lc = hvac.Client(url=addr, token=limited, timeout=30)
    check(lc.is_authenticated(), "limited token authenticates")
    r = lc.secrets.kv.v2.read_secret_version("app/config", mount_point="kv2",
                                             raise_on_deleted_version=True)
    check(r["data"]["data"] == {"user": "carol"}, "limited token reads kv2", r)
    r = lc.secrets.kv.v1.read_secret("team/db", mount_point="kv1")
    check(r["data"]["password"] == "pw2", "limited token reads kv1", r)
    keys_l = lc.secrets.kv.v2.list_secrets("app", mount_point="kv2")["data"]["keys"]
    check("config" in keys_l, "limited token lists", keys_l)
    expect_raises(hx.Forbidden,
                  lambda: lc.secrets.kv.v2.create_or_update_secret(
                      "app/config", secret={"user": "eve"}, mount_point="kv2"),
                  "limited token cannot write kv2", "permission denied")
    expect_raises(hx.Forbidden,
                  lambda: lc.secrets.kv.v2.read_secret_version(
                      "other/secret", mount_point="kv2", raise_on_deleted_version=True),
                  "limited token cannot read another path", "permission denied")
    expect_raises(hx.Forbidden,
                  lambda: lc.secrets.kv.v1.create_or_update_secret(
                      "team/db", secret={"password": "eve"}, mount_point="kv1"),
                  "limited token cannot write kv1", "permission denied")
    expect_raises(hx.Forbidden, lambda: lc.sys.read_policy("app-reader"),
                  "limited token cannot read policies", "permission denied")
    r = kv2.read_secret_version("app/config", mount_point="kv2", raise_on_deleted_version=True)
    check(r["data"]["data"] == {"user": "carol"}, "refused write had no effect", r)

    step("revoke by accessor")
    c.auth.token.revoke_accessor(accessor)
    expect_raises(hx.Forbidden,
                  lambda: lc.secrets.kv.v2.read_secret_version(
                      "app/config", mount_point="kv2", raise_on_deleted_version=True),
                  "revoked token refused", "permission denied")
    check(lc.is_authenticated() is False, "revoked token is not authenticated")
    check(c.is_authenticated(), "root unaffected")

    step("seal at the end")
    c.sys.seal()
    check(c.sys.is_sealed() is True, "sealed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default=os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200"))
    args = ap.parse_args()
    try:
        from importlib.metadata import version
        hv = version("hvac")
    except Exception:
        hv = "?"
    print(f"hvac {hv} against {args.addr}", flush=True)
    try:
        run(args.addr)
    except AssertionError as e:
        print(str(e), file=sys.stderr)
        print(f"hvac_flow: {PASSED} passed, 1 failed")
        return 1
    except Exception:
        traceback.print_exc()
        print(f"hvac_flow: {PASSED} passed, 1 failed")
        return 1
    print(f"hvac_flow: {PASSED} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
