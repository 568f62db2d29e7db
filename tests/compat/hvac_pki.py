#!/usr/bin/env python3
"""The PKI flow of Vault's documentation driven with hvac, every artefact
checked with openssl.

Usage: hvac_pki.py --addr http://127.0.0.1:8200 --token ROOT_TOKEN --dir WORKDIR

Steps (hvac's `client.secrets.pki`): enable pki and pki_int, generate a root,
set its URLs, generate an intermediate CSR, sign it with the root, import it,
create a role, issue a certificate, sign a CSR made by openssl, read the CA,
chain, certificate and CRL, revoke, and see the serial in the CRL. The
leaf/intermediate/root chain and the CRL are verified with `openssl`.
Exit 0 only if every check passed; the last line reads "N passed, 0 failed".
Run by crates/arca/tests/compat_hvac.rs.
"""

import argparse
import os
import subprocess
import sys
import traceback
import warnings

try:
    import hvac
    import hvac.exceptions as hx
except ImportError as e:  # fail, never skip: CI installs hvac
    print(f"hvac is not importable ({e}); install it with `pip install hvac`", file=sys.stderr)
    sys.exit(3)

warnings.simplefilter("ignore", DeprecationWarning)
PASSED = 0


def check(cond, what):
    global PASSED
    if not cond:
        raise AssertionError(f"FAILED: {what}")
    PASSED += 1
    print(f"ok {PASSED}: {what}", flush=True)


def openssl(d, *args, ok=True):
    p = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"FAILED: openssl {args}: {p.stdout}{p.stderr}")
    return p.returncode, p.stdout + p.stderr


def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text.strip() + "\n")


def run(addr, token, d):
    c = hvac.Client(url=addr, token=token)
    pki = c.secrets.pki
    c.sys.enable_secrets_engine("pki", path="pki")
    c.sys.enable_secrets_engine("pki", path="pki_int")

    root = pki.generate_root("internal", "Example Root", extra_params={"ttl": "8760h", "key_type": "ec"})
    root_pem = root["data"]["certificate"]
    check("BEGIN CERTIFICATE" in root_pem, "generate_root returns the root certificate")
    check("private_key" not in root["data"], "an internal root keeps its key")
    write(d, "root.pem", root_pem)
    check(pki.read_ca_certificate().strip() == root_pem.strip(), "read_ca_certificate is the root")
    pki.set_urls({"issuing_certificates": [f"{addr}/v1/pki/ca"], "crl_distribution_points": [f"{addr}/v1/pki/crl"]})
    urls = pki.read_urls()
    check(urls["data"]["issuing_certificates"] == [f"{addr}/v1/pki/ca"], "set_urls / read_urls")

    inter = pki.generate_intermediate("internal", "Example Intermediate", mount_point="pki_int",
                                      extra_params={"key_type": "ec"})
    csr = inter["data"]["csr"]
    check("CERTIFICATE REQUEST" in csr, "generate_intermediate returns a CSR")
    signed = pki.sign_intermediate(csr, "Example Intermediate", extra_params={"format": "pem_bundle", "ttl": "4380h"})
    check("BEGIN CERTIFICATE" in signed["data"]["certificate"], "sign_intermediate returns the certificate")
    pki.set_signed_intermediate(signed["data"]["certificate"], mount_point="pki_int")
    issuers = pki.list_issuers(mount_point="pki_int")
    check(len(issuers["data"]["keys"]) == 1, "set_signed_intermediate imports one issuer")

    pki.create_or_update_role("web", extra_params={
        "allowed_domains": "example.com", "allow_subdomains": True, "max_ttl": "72h", "key_type": "ec",
    }, mount_point="pki_int")
    role = pki.read_role("web", mount_point="pki_int")
    check(role["data"]["allowed_domains"] == ["example.com"], "read_role")
    check("web" in pki.list_roles(mount_point="pki_int")["data"]["keys"], "list_roles")

    cert = pki.generate_certificate("web", "www.example.com", mount_point="pki_int",
                                    extra_params={"alt_names": "api.example.com", "ttl": "24h"})
    data = cert["data"]
    write(d, "leaf.pem", data["certificate"])
    write(d, "int.pem", data["issuing_ca"])
    check(len(data["ca_chain"]) == 2, "ca_chain holds the intermediate and the root")
    _, out = openssl(d, "verify", "-CAfile", "root.pem", "-untrusted", "int.pem", "leaf.pem")
    check("leaf.pem: OK" in out, "openssl verifies leaf -> intermediate -> root")
    _, text = openssl(d, "x509", "-in", "leaf.pem", "-noout", "-text")
    check("DNS:www.example.com" in text and "DNS:api.example.com" in text, "SANs are as asked")

    try:
        pki.generate_certificate("web", "www.evil.com", mount_point="pki_int")
        check(False, "a name outside the role is refused")
    except hx.InvalidRequest as e:
        check("www.evil.com" in str(e), "a name outside the role is refused with a 400 naming it")

    openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "csr.key", "-out", "csr.pem", "-subj", "/CN=svc.example.com")
    with open(os.path.join(d, "csr.pem")) as f:
        csr_pem = f.read()
    signed = pki.sign_certificate("web", csr_pem, "svc.example.com", mount_point="pki_int")
    write(d, "signed.pem", signed["data"]["certificate"])
    _, out = openssl(d, "verify", "-CAfile", "root.pem", "-untrusted", "int.pem", "signed.pem")
    check("signed.pem: OK" in out, "sign_certificate: a CSR signed under the role verifies")

    serial = data["serial_number"]
    got = pki.read_certificate(serial, mount_point="pki_int")
    check(got["data"]["certificate"].strip() == data["certificate"].strip(), "read_certificate by serial")
    check(serial in pki.list_certificates(mount_point="pki_int")["data"]["keys"], "list_certificates")
    chain = pki.read_ca_certificate_chain(mount_point="pki_int")
    check(chain.count("BEGIN CERTIFICATE") == 2, "read_ca_certificate_chain: intermediate and root")

    rev = pki.revoke_certificate(serial, mount_point="pki_int")
    check(rev["data"]["revocation_time"] > 0, "revoke_certificate")
    crl = pki.read_crl(mount_point="pki_int")
    write(d, "crl.pem", crl)
    _, text = openssl(d, "crl", "-in", "crl.pem", "-noout", "-text", "-CAfile", "int.pem")
    check("verify OK" in text, "the CRL verifies under the intermediate")
    check(serial.replace(":", "").upper() in text.replace(":", "").upper(), "the CRL lists the revoked serial")
    pki.rotate_crl(mount_point="pki_int")
    write(d, "crl2.pem", pki.read_crl(mount_point="pki_int"))
    code, out = openssl(d, "verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "int.pem",
                        "-CRLfile", "crl2.pem", "leaf.pem", ok=False)
    check(code != 0 and "revoked" in out, "openssl -crl_check rejects the revoked leaf after rotate_crl")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    try:
        run(args.addr, args.token, args.dir)
    except AssertionError as e:
        print(str(e), file=sys.stderr)
        print(f"hvac_pki: {PASSED} passed, 1 failed")
        return 1
    except Exception:
        traceback.print_exc()
        print(f"hvac_pki: {PASSED} passed, 1 failed")
        return 1
    print(f"hvac_pki: {PASSED} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
