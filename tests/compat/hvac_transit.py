"""hvac 2.4.0's `client.secrets.transit` methods against a transit mount at
`transit/`: every call checked on real values (plaintexts round-trip, hashes
and HMACs equal Python's, signatures verify with `cryptography`, exported keys
decrypt ciphertexts locally). Run by `tests/transit_clients.rs` as
`python -c SCRIPT ADDR TOKEN`; prints `hvac transit: done` when every check
held. Also passes against `bao server -dev` (OpenBao 2.7.2).
"""
import base64, hashlib, hmac as hmac_mod, sys
import hvac
from hvac.exceptions import InvalidPath, InvalidRequest, VaultError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

addr, token = sys.argv[1], sys.argv[2]
c = hvac.Client(url=addr, token=token)
t = c.secrets.transit


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s)


def encrypt(name, plaintext):
    return t.encrypt_data(name, plaintext=b64(plaintext))["data"]["ciphertext"]


def decrypt(name, ciphertext):
    return unb64(t.decrypt_data(name, ciphertext=ciphertext)["data"]["plaintext"])


def fails(fn, exc=InvalidRequest, text=""):
    try:
        fn()
    except exc as e:
        assert text.lower() in str(e).lower(), (text, e)
        return True
    return False


secret = b"4111 1111 1111 1111"

# Keys: create, read, list.
t.create_key("orders")
k = t.read_key("orders")["data"]
assert k["type"] == "aes256-gcm96" and k["latest_version"] == 1, k
assert k["supports_encryption"] and not k["supports_signing"], k
t.create_key("sig-ed", key_type="ed25519")
assert {"orders", "sig-ed"} <= set(t.list_keys()["data"]["keys"])
print("keys ok")

# Encrypt, decrypt, rotate, rewrap, min_decryption_version.
ct1 = encrypt("orders", secret)
assert ct1.startswith("vault:v1:"), ct1
assert decrypt("orders", ct1) == secret
t.rotate_key("orders")
k = t.read_key("orders")["data"]
assert k["latest_version"] == 2 and set(k["keys"]) == {"1", "2"}, k
ct2 = t.rewrap_data("orders", ciphertext=ct1)["data"]["ciphertext"]
assert ct2.startswith("vault:v2:"), ct2
assert decrypt("orders", ct2) == secret
t.update_key_configuration("orders", min_decryption_version=2)
assert t.read_key("orders")["data"]["min_decryption_version"] == 2
assert fails(lambda: t.decrypt_data("orders", ciphertext=ct1))
assert decrypt("orders", ct2) == secret
print("rotate ok")

# Data keys: the plaintext one decrypts to itself, the wrapped one has no plaintext.
dk = t.generate_data_key("orders", key_type="plaintext")["data"]
assert len(unb64(dk["plaintext"])) == 32, dk
assert dk["ciphertext"].startswith("vault:v2:"), dk
assert t.decrypt_data("orders", ciphertext=dk["ciphertext"])["data"]["plaintext"] == dk["plaintext"]
wk = t.generate_data_key("orders", key_type="wrapped", bits=512)["data"]
assert "plaintext" not in wk or wk["plaintext"] in (None, ""), wk
assert len(unb64(t.decrypt_data("orders", ciphertext=wk["ciphertext"])["data"]["plaintext"])) == 64
print("datakey ok")

# Random bytes and hashes.
r1 = t.generate_random_bytes(n_bytes=16, output_format="hex")["data"]["random_bytes"]
r2 = t.generate_random_bytes(n_bytes=16, output_format="hex")["data"]["random_bytes"]
assert len(bytes.fromhex(r1)) == 16 and r1 != r2, (r1, r2)
assert len(unb64(t.generate_random_bytes(n_bytes=24)["data"]["random_bytes"])) == 24
data = b"the quick brown fox"
for alg, h in (("sha2-256", hashlib.sha256), ("sha2-512", hashlib.sha512), ("sha2-224", hashlib.sha224)):
    got = t.hash_data(b64(data), algorithm=alg, output_format="hex")["data"]["sum"]
    assert got == h(data).hexdigest(), (alg, got)
got = t.hash_data(b64(data), algorithm="sha2-256", output_format="base64")["data"]["sum"]
assert unb64(got) == hashlib.sha256(data).digest(), got
print("hash ok")

# Export, HMAC (checked against the exported HMAC key), local AES-GCM decrypt.
t.create_key("exp", exportable=True)
enc_key = unb64(t.export_key("exp", key_type="encryption-key")["data"]["keys"]["1"])
hmac_key = unb64(t.export_key("exp", key_type="hmac-key")["data"]["keys"]["1"])
assert len(enc_key) == 32 and len(hmac_key) == 32
mac = t.generate_hmac("exp", b64(data), algorithm="sha2-256")["data"]["hmac"]
assert mac.startswith("vault:v1:"), mac
assert unb64(mac[len("vault:v1:"):]) == hmac_mod.new(hmac_key, data, hashlib.sha256).digest()
assert t.verify_signed_data("exp", b64(data), hmac=mac)["data"]["valid"] is True
assert t.verify_signed_data("exp", b64(b"other"), hmac=mac)["data"]["valid"] is False
ct = encrypt("exp", secret)
raw = unb64(ct[len("vault:v1:"):])
assert AESGCM(enc_key).decrypt(raw[:12], raw[12:], None) == secret
assert fails(lambda: t.export_key("orders", key_type="encryption-key"))
print("export ok")


# Signatures, each also verified locally with the key's public key.
def public_key(name):
    pk = t.read_key(name)["data"]["keys"]["1"]["public_key"]
    if pk.startswith("-----BEGIN"):
        return serialization.load_pem_public_key(pk.encode())
    return ed25519.Ed25519PublicKey.from_public_bytes(unb64(pk))


msg = b"ship order 42"
for name, ktype, sig_alg in (
    ("sig-ed", "ed25519", None),
    ("sig-p256", "ecdsa-p256", None),
    ("sig-rsa-pss", "rsa-2048", "pss"),
    ("sig-rsa-v15", "rsa-2048", "pkcs1v15"),
):
    if name != "sig-ed":
        t.create_key(name, key_type=ktype)
    s = t.sign_data(name, hash_input=b64(msg), signature_algorithm=sig_alg)["data"]["signature"]
    assert s.startswith("vault:v1:"), s
    ok = t.verify_signed_data(name, b64(msg), signature=s, signature_algorithm=sig_alg)["data"]["valid"]
    assert ok is True, (name, ok)
    bad = t.verify_signed_data(name, b64(b"ship order 43"), signature=s, signature_algorithm=sig_alg)
    assert bad["data"]["valid"] is False, (name, bad)
    raw = unb64(s[len("vault:v1:"):])
    pub = public_key(name)
    if ktype == "ed25519":
        pub.verify(raw, msg)
    elif ktype == "ecdsa-p256":
        pub.verify(raw, msg, ec.ECDSA(hashes.SHA256()))
    elif sig_alg == "pss":
        pub.verify(raw, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256())
        try:
            pub.verify(raw, msg, padding.PKCS1v15(), hashes.SHA256())
            raise AssertionError("a PSS signature verified as PKCS#1 v1.5")
        except InvalidSignature:
            pass
    else:
        pub.verify(raw, msg, padding.PKCS1v15(), hashes.SHA256())
    print("sign ok", name)

# Batch: 50 items in, 50 ciphertexts out in order, decrypted back in order.
items = [b"item-%d" % i for i in range(50)]
res = t.encrypt_data("orders", batch_input=[{"plaintext": b64(p)} for p in items])["data"]["batch_results"]
assert len(res) == 50 and all(r["ciphertext"].startswith("vault:v2:") for r in res), res[:3]
assert len({r["ciphertext"] for r in res}) == 50
dec = t.decrypt_data("orders", batch_input=[{"ciphertext": r["ciphertext"]} for r in res])["data"]["batch_results"]
assert [unb64(r["plaintext"]) for r in dec] == items, dec[:3]
print("batch ok")

# Backup and restore (under the old name after deletion, and a new name).
t.create_key("bk", exportable=True, allow_plaintext_backup=True)
t.rotate_key("bk")
ctb = encrypt("bk", secret)
backup = t.backup_key("bk")["data"]["backup"]
assert backup, "empty backup"
t.restore_key(backup, name="bk-copy")
assert decrypt("bk-copy", ctb) == secret
assert t.read_key("bk-copy")["data"]["latest_version"] == 2
t.update_key_configuration("bk", deletion_allowed=True)
t.delete_key("bk")
assert fails(lambda: t.read_key("bk"), InvalidPath)
t.restore_key(backup)
assert decrypt("bk", ctb) == secret
# An existing key is not overwritten without force (OpenBao: 500).
assert fails(lambda: t.restore_key(backup), VaultError, "already exists")
t.restore_key(backup, force=True)
# Not exportable, no plaintext backup (OpenBao: 500).
assert fails(lambda: t.backup_key("orders"), VaultError, "disallowed")
print("backup ok")

# Trim: versions below min_available_version disappear.
t.rotate_key("orders")
t.update_key_configuration("orders", min_decryption_version=2, min_encryption_version=3)
t.trim_key("orders", min_version=2)
k = t.read_key("orders")["data"]
assert k["min_available_version"] == 2 and set(k["keys"]) == {"2", "3"}, k
assert fails(lambda: t.trim_key("orders", min_version=3 + 1))
assert decrypt("orders", ct2) == secret
print("trim ok")

# Delete: refused until deletion_allowed, then gone (404).
assert fails(lambda: t.delete_key("orders"))
t.update_key_configuration("orders", deletion_allowed=True)
t.delete_key("orders")
assert fails(lambda: t.read_key("orders"), InvalidPath)
assert "orders" not in t.list_keys()["data"]["keys"]
print("hvac transit: done")
