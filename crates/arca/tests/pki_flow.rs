//! The PKI engine driven by the real `bao` CLI, every artefact checked with
//! `openssl`: a root CA (EC and RSA), roles, issuance with SANs and TTL
//! clamping, names outside the role refused, revocation, and the CRL and CA
//! fetched without a token.

mod common;

use std::process::Command;

use common::{openssl, raw_get, Server};
use serde_json::Value;

#[test]
fn bao_drives_pki_and_openssl_verifies_it() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let bao = server.bao().with_token(&init.root_token);
    let dir = server.work_dir();

    bao.run(&["secrets", "enable", "pki"]).ok();
    let root = bao.json(&[
        "write",
        "-format=json",
        "pki/root/generate/internal",
        "common_name=Arca Test Root",
        "ttl=8760h",
        "key_type=ec",
        "organization=Arca",
    ]);
    let root_pem = root["data"]["certificate"].as_str().unwrap().to_string();
    assert!(
        root["data"]["private_key"].is_null(),
        "internal keeps the key: {root}"
    );
    std::fs::write(dir.join("root.pem"), format!("{root_pem}\n")).unwrap();
    let text = openssl(&dir, &["x509", "-in", "root.pem", "-noout", "-text"]);
    assert!(
        text.contains("CA:TRUE") && text.contains("Arca Test Root"),
        "{text}"
    );

    // The CA is public: no token needed, PEM and DER.
    let (code, ca_pem) = raw_get(&server.addr, "/v1/pki/ca/pem");
    assert_eq!(code, 200);
    assert_eq!(String::from_utf8(ca_pem).unwrap().trim(), root_pem.trim());
    let (code, ca_der) = raw_get(&server.addr, "/v1/pki/ca");
    assert_eq!(code, 200);
    std::fs::write(dir.join("ca.der"), ca_der).unwrap();
    openssl(&dir, &["x509", "-inform", "DER", "-in", "ca.der", "-noout"]);

    bao.run(&[
        "write",
        "pki/roles/web",
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "max_ttl=72h",
        "key_type=ec",
    ])
    .ok();
    let role = bao.json(&["read", "-format=json", "pki/roles/web"]);
    assert_eq!(role["data"]["allow_subdomains"], true, "{role}");
    assert_eq!(role["data"]["key_bits"], 256, "{role}");
    assert_eq!(role["data"]["max_ttl"], 259200, "{role}");

    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/web",
        "common_name=www.example.com",
        "alt_names=api.example.com",
        "ip_sans=127.0.0.1",
        "ttl=1000h",
    ]);
    let d = &leaf["data"];
    let warnings = leaf["warnings"].to_string();
    assert!(
        warnings.contains("max_ttl"),
        "ttl clamped with a warning: {leaf}"
    );
    std::fs::write(
        dir.join("leaf.pem"),
        format!("{}\n", d["certificate"].as_str().unwrap()),
    )
    .unwrap();
    std::fs::write(
        dir.join("leaf.key"),
        format!("{}\n", d["private_key"].as_str().unwrap()),
    )
    .unwrap();
    let v = openssl(&dir, &["verify", "-CAfile", "root.pem", "leaf.pem"]);
    assert!(v.contains("leaf.pem: OK"), "{v}");
    // Keys come back as Vault returns them by default: SEC1 for EC, and
    // they match the certificate.
    let key_pem = std::fs::read_to_string(dir.join("leaf.key")).unwrap();
    assert!(key_pem.contains("BEGIN EC PRIVATE KEY"), "{key_pem}");
    let from_key = openssl(&dir, &["pkey", "-in", "leaf.key", "-pubout"]);
    let from_cert = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
    let text = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    for want in [
        "DNS:www.example.com",
        "DNS:api.example.com",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
        "Digital Signature",
    ] {
        assert!(text.contains(want), "missing {want}:\n{text}");
    }
    let serial = d["serial_number"].as_str().unwrap().to_string();
    let os_serial = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-serial"]);
    assert_eq!(
        os_serial
            .trim()
            .trim_start_matches("serial=")
            .to_lowercase(),
        serial.replace(':', ""),
        "serial_number is the certificate's"
    );
    // The lifetime was clamped to 72h: valid in 71h40m, gone in 72h02m.
    let checkend = |secs: &str| {
        Command::new("openssl")
            .args(["x509", "-in", "leaf.pem", "-noout", "-checkend", secs])
            .current_dir(&dir)
            .status()
            .unwrap()
            .success()
    };
    assert!(checkend("258000"), "valid for almost 72h");
    assert!(!checkend("259320"), "not valid beyond 72h");
    // The key matches the certificate.
    let k = openssl(&dir, &["pkey", "-in", "leaf.key", "-pubout"]);
    let c = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
    assert_eq!(k.trim(), c.trim());

    // sign/:role certifies a CSR's key; its CN and SANs pass the role.
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "csr.key",
            "-out",
            "csr.pem",
            "-subj",
            "/CN=csr.example.com",
            "-addext",
            "subjectAltName=DNS:alt.example.com",
        ],
    );
    let signed = bao.json(&[
        "write",
        "-format=json",
        "pki/sign/web",
        &format!("csr=@{}", dir.join("csr.pem").display()),
        "ttl=1h",
    ]);
    assert!(
        signed["data"]["private_key"].is_null(),
        "sign returns no key: {signed}"
    );
    std::fs::write(
        dir.join("signed.pem"),
        format!("{}\n", signed["data"]["certificate"].as_str().unwrap()),
    )
    .unwrap();
    let v = openssl(&dir, &["verify", "-CAfile", "root.pem", "signed.pem"]);
    assert!(v.contains("signed.pem: OK"), "{v}");
    let t = openssl(&dir, &["x509", "-in", "signed.pem", "-noout", "-text"]);
    assert!(
        t.contains("DNS:csr.example.com") && t.contains("DNS:alt.example.com"),
        "{t}"
    );
    let k = openssl(&dir, &["pkey", "-in", "csr.key", "-pubout"]);
    let c = openssl(&dir, &["x509", "-in", "signed.pem", "-noout", "-pubkey"]);
    assert_eq!(k.trim(), c.trim(), "the certificate carries the CSR's key");
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "bad.key",
            "-out",
            "bad.pem",
            "-subj",
            "/CN=intruder.evil.org",
        ],
    );
    let bad = format!("csr=@{}", dir.join("bad.pem").display());
    let out = bao.run(&["write", "pki/sign/web", &bad]);
    assert!(
        out.code != 0 && out.stderr.contains("intruder.evil.org"),
        "{}",
        out.describe()
    );

    // Names outside the role are refused, naming the name.
    let out = bao.run(&["write", "pki/issue/web", "common_name=www.evil.com"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("www.evil.com") && out.stderr.contains("Code: 400"),
        "{}",
        out.describe()
    );

    // The stored certificate reads back; the list has it.
    let got = bao.json(&["read", "-format=json", &format!("pki/cert/{serial}")]);
    assert_eq!(got["data"]["revocation_time"], 0, "{got}");
    let certs = bao.json(&["list", "-format=json", "pki/certs"]);
    assert!(
        certs
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == &Value::from(serial.clone())),
        "{certs}"
    );

    // Revoke; the CRL (public, DER) lists it and verifies under the CA.
    let rev = bao.json(&[
        "write",
        "-format=json",
        "pki/revoke",
        &format!("serial_number={serial}"),
    ]);
    assert!(
        rev["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{rev}"
    );
    let (code, crl) = raw_get(&server.addr, "/v1/pki/crl");
    assert_eq!(code, 200);
    std::fs::write(dir.join("crl.der"), crl).unwrap();
    let crl_text = openssl(
        &dir,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text", "-CAfile", "root.pem",
        ],
    );
    assert!(crl_text.contains("verify OK"), "{crl_text}");
    assert!(
        crl_text
            .to_lowercase()
            .contains(&serial.replace(':', "").to_lowercase()),
        "the CRL lists the revoked serial:\n{crl_text}"
    );
    let (code, crl_pem) = raw_get(&server.addr, "/v1/pki/crl/pem");
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&crl_pem).contains("BEGIN X509 CRL"));
    // openssl verify with CRL checking rejects the revoked leaf.
    std::fs::write(dir.join("crl.pem"), crl_pem).unwrap();
    let out = Command::new("openssl")
        .args([
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-CRLfile",
            "crl.pem",
            "leaf.pem",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("revoked"), "{text}");
    let got = bao.json(&["read", "-format=json", &format!("pki/cert/{serial}")]);
    assert!(
        got["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{got}"
    );

    // sign-verbatim: the CSR's names as they are, outside any role.
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "vb.key",
            "-out",
            "vb.csr",
            "-subj",
            "/CN=anything.internal/O=Verbatim Ltd",
            "-addext",
            "subjectAltName=DNS:other.internal",
        ],
    );
    let vb = bao.json(&[
        "write",
        "-format=json",
        "pki/sign-verbatim",
        &format!("csr=@{}", dir.join("vb.csr").display()),
        "ttl=1h",
    ]);
    std::fs::write(
        dir.join("vb.pem"),
        format!("{}\n", vb["data"]["certificate"].as_str().unwrap()),
    )
    .unwrap();
    let v = openssl(&dir, &["verify", "-CAfile", "root.pem", "vb.pem"]);
    assert!(v.contains("vb.pem: OK"), "{v}");
    let t = openssl(&dir, &["x509", "-in", "vb.pem", "-noout", "-text"]);
    assert!(
        t.contains("Verbatim Ltd") && t.contains("DNS:other.internal"),
        "{t}"
    );

    // revoke-with-key: the wrong key is refused, the right one revokes.
    let kept = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/web",
        "common_name=kept.example.com",
    ]);
    let kept_serial = kept["data"]["serial_number"].as_str().unwrap().to_string();
    std::fs::write(
        dir.join("kept.key"),
        format!("{}\n", kept["data"]["private_key"].as_str().unwrap()),
    )
    .unwrap();
    let wrong = format!("private_key=@{}", dir.join("vb.key").display());
    let out = bao.run(&[
        "write",
        "pki/revoke-with-key",
        &format!("serial_number={kept_serial}"),
        &wrong,
    ]);
    assert!(
        out.code != 0 && out.stderr.contains("does not match"),
        "{}",
        out.describe()
    );
    let right = format!("private_key=@{}", dir.join("kept.key").display());
    let rev = bao.json(&[
        "write",
        "-format=json",
        "pki/revoke-with-key",
        &format!("serial_number={kept_serial}"),
        &right,
    ]);
    assert!(
        rev["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{rev}"
    );

    // config/crl: a 48h CRL lifetime shows in nextUpdate.
    bao.run(&["write", "pki/config/crl", "expiry=48h"]).ok();
    let cfg = bao.json(&["read", "-format=json", "pki/config/crl"]);
    assert_eq!(cfg["data"]["expiry"], "48h", "{cfg}");
    let (_, crl) = raw_get(&server.addr, "/v1/pki/crl");
    std::fs::write(dir.join("crl48.der"), crl).unwrap();
    let next = openssl(
        &dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl48.der",
            "-noout",
            "-nextupdate",
            "-lastupdate",
        ],
    );
    let parse = |label: &str| {
        let line = next.lines().find(|l| l.starts_with(label)).unwrap();
        let date = line.split_once('=').unwrap().1.trim().to_string();
        let out = Command::new("date")
            .args(["-u", "-d", &date, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let span = parse("nextUpdate") - parse("lastUpdate");
    assert!(
        (47 * 3600..=49 * 3600).contains(&span),
        "CRL lifetime {span}s:\n{next}"
    );

    // tidy removes an expired certificate and its revocation.
    bao.run(&[
        "write",
        "pki/roles/short",
        "allow_any_name=true",
        "key_type=ec",
        "not_before_duration=1s",
    ])
    .ok();
    let short = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/short",
        "common_name=short.lived",
        "ttl=1s",
    ]);
    let short_serial = short["data"]["serial_number"].as_str().unwrap().to_string();
    bao.run(&[
        "write",
        "pki/revoke",
        &format!("serial_number={short_serial}"),
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let out = bao.run(&[
        "write",
        "pki/tidy",
        "tidy_cert_store=true",
        "tidy_revoked_certs=true",
        "safety_buffer=1s",
    ]);
    assert_eq!(out.code, 0, "{}", out.describe());
    let st = bao.json(&["read", "-format=json", "pki/tidy-status"]);
    assert_eq!(st["data"]["state"], "Finished", "{st}");
    assert!(
        st["data"]["cert_store_deleted_count"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert!(
        st["data"]["revoked_cert_deleted_count"].as_u64().unwrap() >= 1,
        "{st}"
    );
    bao.run(&["read", &format!("pki/cert/{short_serial}")])
        .code(2);
    // The unexpired revoked leaf is still listed.
    let (_, crl) = raw_get(&server.addr, "/v1/pki/crl");
    std::fs::write(dir.join("crl-tidy.der"), crl).unwrap();
    let t = openssl(
        &dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl-tidy.der",
            "-noout",
            "-text",
        ],
    );
    assert!(
        t.to_lowercase()
            .contains(&serial.replace(':', "").to_lowercase()),
        "{t}"
    );
    assert!(
        !t.to_lowercase()
            .contains(&short_serial.replace(':', "").to_lowercase()),
        "{t}"
    );

    // An RSA role under the same (EC) root.
    bao.run(&[
        "write",
        "pki/roles/rsa",
        "allow_any_name=true",
        "key_type=rsa",
        "key_bits=2048",
    ])
    .ok();
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/rsa",
        "common_name=svc.internal",
    ]);
    assert_eq!(leaf["data"]["private_key_type"], "rsa");
    assert!(
        leaf["data"]["private_key"]
            .as_str()
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY"),
        "PKCS#1 by default: {leaf}"
    );
    let p8 = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/rsa",
        "common_name=svc2.internal",
        "private_key_format=pkcs8",
    ]);
    assert!(
        p8["data"]["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"),
        "{p8}"
    );
    bao.run(&[
        "write",
        "pki/issue/rsa",
        "common_name=svc3.internal",
        "private_key_format=jwk",
    ])
    .api_error(400, "private_key_format");
    std::fs::write(
        dir.join("rsa.pem"),
        format!("{}\n", leaf["data"]["certificate"].as_str().unwrap()),
    )
    .unwrap();
    let v = openssl(&dir, &["verify", "-CAfile", "root.pem", "rsa.pem"]);
    assert!(v.contains("rsa.pem: OK"), "{v}");
    let t = openssl(&dir, &["x509", "-in", "rsa.pem", "-noout", "-text"]);
    assert!(t.contains("Public-Key: (2048 bit)"), "{t}");

    // The intermediate flow of Vault's PKI tutorial: a second mount makes a
    // key and CSR, the root signs it, the signed certificate is imported,
    // and leaves chain leaf -> intermediate -> root.
    bao.run(&["secrets", "enable", "-path=pki_int", "pki"]).ok();
    let gen = bao.json(&[
        "write",
        "-format=json",
        "pki_int/intermediate/generate/internal",
        "common_name=Arca Intermediate",
        "key_type=ec",
    ]);
    assert!(gen["data"]["private_key"].is_null(), "{gen}");
    std::fs::write(
        dir.join("int.csr"),
        format!("{}\n", gen["data"]["csr"].as_str().unwrap()),
    )
    .unwrap();
    openssl(&dir, &["req", "-in", "int.csr", "-noout", "-verify"]);
    let signed = bao.json(&[
        "write",
        "-format=json",
        "pki/root/sign-intermediate",
        &format!("csr=@{}", dir.join("int.csr").display()),
        "format=pem_bundle",
        "ttl=4380h",
    ]);
    let bundle = signed["data"]["certificate"].as_str().unwrap().to_string();
    std::fs::write(dir.join("int.bundle"), format!("{bundle}\n")).unwrap();
    let set = bao.json(&[
        "write",
        "-format=json",
        "pki_int/intermediate/set-signed",
        &format!("certificate=@{}", dir.join("int.bundle").display()),
    ]);
    assert_eq!(
        set["data"]["imported_issuers"].as_array().unwrap().len(),
        1,
        "{set}"
    );
    bao.run(&[
        "write",
        "pki_int/roles/svc",
        "allowed_domains=svc.example.com",
        "allow_subdomains=true",
        "key_type=ec",
    ])
    .ok();
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki_int/issue/svc",
        "common_name=a.svc.example.com",
        "ttl=1h",
    ]);
    let chain = leaf["data"]["ca_chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "ca_chain is intermediate then root: {leaf}");
    std::fs::write(
        dir.join("int-leaf.pem"),
        format!("{}\n", leaf["data"]["certificate"].as_str().unwrap()),
    )
    .unwrap();
    std::fs::write(
        dir.join("int.pem"),
        format!("{}\n", leaf["data"]["issuing_ca"].as_str().unwrap()),
    )
    .unwrap();
    let v = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "int-leaf.pem",
        ],
    );
    assert!(v.contains("int-leaf.pem: OK"), "{v}");
    let t = openssl(&dir, &["x509", "-in", "int.pem", "-noout", "-text"]);
    assert!(
        t.contains("CA:TRUE") && t.contains("Arca Intermediate"),
        "{t}"
    );
    // `bao pki verify-sign` reads both issuers through issuer/default.
    let out = bao
        .run(&[
            "pki",
            "verify-sign",
            "pki/issuer/default",
            "pki_int/issuer/default",
        ])
        .ok();
    for check in [
        "trust_match",
        "key_id_match",
        "signature_match",
        "subject_match",
        "path_match",
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(check))
            .unwrap_or_default();
        assert!(
            line.trim_end().ends_with("true"),
            "{check}: {}",
            out.describe()
        );
    }
    // Without the intermediate the leaf does not verify against the root alone.
    let out = Command::new("openssl")
        .args(["verify", "-CAfile", "root.pem", "int-leaf.pem"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // An exported RSA root returns its key once.
    bao.run(&["secrets", "enable", "-path=pki2", "pki"]).ok();
    let r2 = bao.json(&[
        "write",
        "-format=json",
        "pki2/root/generate/exported",
        "common_name=Second Root",
        "key_type=rsa",
    ]);
    assert!(
        r2["data"]["private_key"]
            .as_str()
            .unwrap()
            .contains("PRIVATE KEY"),
        "{r2}"
    );
}
