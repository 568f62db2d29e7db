//! OCSP and delta CRLs, checked with `openssl ocsp`, `openssl crl` and
//! `openssl verify -crl_check -use_deltas`: good / revoked / unknown
//! answers signed by the certificate's own issuer (EC root, RSA
//! intermediate), the POST and GET forms, nonces echoed, `ocsp_disable`,
//! per-issuer CRL paths without a token, delta CRLs under `auto_rebuild`,
//! and a scheduled tidy run by the active node's periodic work.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{openssl, raw_get, write_pem, Server};

/// `openssl ocsp` against the server, whatever its exit status.
fn ocsp(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .arg("ocsp")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn crl_text(dir: &std::path::Path, name: &str, der: &[u8]) -> String {
    std::fs::write(dir.join(name), der).unwrap();
    openssl(
        dir,
        &["crl", "-inform", "DER", "-in", name, "-noout", "-text"],
    )
}

fn hexs(serial: &str) -> String {
    serial.replace(':', "").to_uppercase()
}

#[test]
fn openssl_ocsp_and_delta_crls() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let bao = server.bao().with_token(&init.root_token);
    let dir = server.work_dir();
    let url = format!("{}/v1/pki/ocsp", server.addr);

    bao.run(&["secrets", "enable", "pki"]).ok();
    // A root for ten years needs a mount that allows it (as in Vault).
    bao.run(&["secrets", "tune", "-max-lease-ttl=87600h", "pki"])
        .ok();
    let root = bao.json(&[
        "write",
        "-format=json",
        "pki/root/generate/internal",
        "common_name=OCSP Root",
        "key_type=ec",
        "ttl=87600h",
    ]);
    write_pem(
        &dir,
        "root.pem",
        root["data"]["certificate"].as_str().unwrap(),
    );
    // config/urls goes into what is issued from now on (AIA, CDP).
    bao.run(&[
        "write",
        "pki/config/urls",
        &format!("ocsp_servers={url}"),
        &format!("issuing_certificates={}/v1/pki/ca", server.addr),
        &format!("crl_distribution_points={}/v1/pki/crl", server.addr),
    ])
    .ok();
    bao.run(&[
        "write",
        "pki/roles/web",
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "key_type=ec",
    ])
    .ok();
    bao.run(&[
        "write",
        "pki/roles/nostore",
        "allow_any_name=true",
        "no_store=true",
        "key_type=ec",
    ])
    .ok();
    let mut serials = vec![];
    for (name, cn, role) in [
        ("a.pem", "a.example.com", "web"),
        ("b.pem", "b.example.com", "web"),
        ("c.pem", "c.example.com", "web"),
        ("n.pem", "n.example.com", "nostore"),
    ] {
        let leaf = bao.json(&[
            "write",
            "-format=json",
            &format!("pki/issue/{role}"),
            &format!("common_name={cn}"),
            "ttl=1h",
        ]);
        write_pem(&dir, name, leaf["data"]["certificate"].as_str().unwrap());
        serials.push(leaf["data"]["serial_number"].as_str().unwrap().to_string());
    }
    bao.run(&[
        "write",
        "pki/revoke",
        &format!("serial_number={}", serials[0]),
    ])
    .ok();
    let text = openssl(&dir, &["x509", "-in", "a.pem", "-noout", "-text"]);
    for want in [
        format!("OCSP - URI:{url}"),
        format!("CA Issuers - URI:{}/v1/pki/ca", server.addr),
        format!("URI:{}/v1/pki/crl", server.addr),
    ] {
        assert!(text.contains(&want), "missing {want}:\n{text}");
    }
    // The responder is found from the certificate itself.
    let uri = openssl(&dir, &["x509", "-in", "b.pem", "-noout", "-ocsp_uri"]);
    assert_eq!(uri.trim(), url);

    // POST with a nonce: a revoked, b good, n (never stored) unknown; the
    // answer verifies against the root and carries the nonce back.
    let out = ocsp(
        &dir,
        &[
            "-issuer",
            "root.pem",
            "-CAfile",
            "root.pem",
            "-cert",
            "a.pem",
            "-cert",
            "b.pem",
            "-cert",
            "n.pem",
            "-url",
            &url,
            "-resp_text",
        ],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("a.pem: revoked"), "{out}");
    assert!(out.contains("b.pem: good"), "{out}");
    assert!(out.contains("n.pem: unknown"), "{out}");
    assert!(out.contains("OCSP Nonce"), "nonce echoed: {out}");
    assert!(!out.contains("WARNING"), "{out}");
    assert!(
        out.contains("Next Update"),
        "ocsp_expiry gives nextUpdate: {out}"
    );

    // GET: the base64 request in the path (URL-encoded), no token.
    openssl(
        &dir,
        &[
            "ocsp",
            "-issuer",
            "root.pem",
            "-cert",
            "a.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    let b64 = openssl(&dir, &["base64", "-A", "-in", "req.der"]);
    let enc: String = form_urlencoded::byte_serialize(b64.trim().as_bytes()).collect();
    let (code, resp) = raw_get(&server.addr, &format!("/v1/pki/ocsp/{enc}"));
    assert_eq!(code, 200);
    std::fs::write(dir.join("resp.der"), resp).unwrap();
    let out = ocsp(
        &dir,
        &[
            "-respin", "resp.der", "-issuer", "root.pem", "-CAfile", "root.pem", "-cert", "a.pem",
        ],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("a.pem: revoked"), "{out}");
    // Garbage is an OCSP malformedRequest, with HTTP 400.
    let (code, resp) = raw_get(&server.addr, "/v1/pki/ocsp/bm90LW9jc3A=");
    assert_eq!(code, 400);
    std::fs::write(dir.join("bad.der"), resp).unwrap();
    let out = ocsp(&dir, &["-respin", "bad.der", "-resp_text", "-noverify"]);
    assert!(out.contains("malformedrequest"), "{out}");

    // An RSA intermediate in a second mount answers for its own leaves,
    // signed with its RSA key; the root mount does not know them.
    bao.run(&["secrets", "enable", "-path=pki_int", "pki"]).ok();
    let gen = bao.json(&[
        "write",
        "-format=json",
        "pki_int/intermediate/generate/internal",
        "common_name=OCSP Intermediate",
        "key_type=rsa",
    ]);
    write_pem(&dir, "int.csr", gen["data"]["csr"].as_str().unwrap());
    let signed = bao.json(&[
        "write",
        "-format=json",
        "pki/root/sign-intermediate",
        &format!("csr=@{}", dir.join("int.csr").display()),
        "format=pem",
    ]);
    write_pem(
        &dir,
        "int.pem",
        signed["data"]["certificate"].as_str().unwrap(),
    );
    bao.run(&[
        "write",
        "pki_int/intermediate/set-signed",
        &format!("certificate=@{}", dir.join("int.pem").display()),
    ])
    .ok();
    bao.run(&["write", "pki_int/roles/svc", "allow_any_name=true"])
        .ok();
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki_int/issue/svc",
        "common_name=svc.internal",
        "ttl=1h",
    ]);
    write_pem(&dir, "i.pem", leaf["data"]["certificate"].as_str().unwrap());
    let i_serial = leaf["data"]["serial_number"].as_str().unwrap().to_string();
    bao.run(&[
        "write",
        "pki_int/revoke",
        &format!("serial_number={i_serial}"),
    ])
    .ok();
    let int_url = format!("{}/v1/pki_int/ocsp", server.addr);
    let out = ocsp(
        &dir,
        &[
            "-issuer",
            "int.pem",
            "-CAfile",
            "root.pem",
            "-verify_other",
            "int.pem",
            "-cert",
            "i.pem",
            "-url",
            &int_url,
            "-resp_text",
        ],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("i.pem: revoked"), "{out}");
    assert!(out.contains("sha256WithRSAEncryption"), "{out}");
    let out = ocsp(
        &dir,
        &[
            "-issuer",
            "int.pem",
            "-cert",
            "i.pem",
            "-url",
            &url,
            "-noverify",
        ],
    );
    assert!(out.contains("i.pem: unknown"), "foreign issuer: {out}");

    // Per-issuer CRL paths, without a token: JSON, DER and PEM agree.
    let (code, body) = raw_get(&server.addr, "/v1/pki/issuer/default/crl");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pem = v["data"]["crl"].as_str().unwrap().to_string();
    std::fs::write(dir.join("crl.pem"), &pem).unwrap();
    let t = openssl(
        &dir,
        &[
            "crl", "-in", "crl.pem", "-noout", "-text", "-CAfile", "root.pem",
        ],
    );
    assert!(t.contains(&hexs(&serials[0])), "{t}");
    assert!(t.contains("verify OK"), "{t}");
    let (code, der) = raw_get(&server.addr, "/v1/pki/issuer/default/crl/der");
    assert_eq!(code, 200);
    assert!(crl_text(&dir, "crl2.der", &der).contains(&hexs(&serials[0])));

    // Delta CRLs: with auto_rebuild the complete CRL stays put and the delta
    // lists what came since; `verify -use_deltas` sees both.
    // Before delta CRLs are enabled, the delta CRL is valid and empty.
    let (code, delta0) = raw_get(&server.addr, "/v1/pki/crl/delta");
    assert_eq!(code, 200);
    let t = crl_text(&dir, "delta0.der", &delta0);
    assert!(t.contains("No Revoked Certificates"), "{t}");
    bao.run(&[
        "write",
        "pki/config/crl",
        "auto_rebuild=true",
        "enable_delta=true",
    ])
    .ok();
    // Complete CRLs then name where the delta is (Freshest CRL), which
    // openssl needs before it applies a delta.
    bao.run(&[
        "write",
        "pki/config/urls",
        &format!(
            "delta_crl_distribution_points={}/v1/pki/crl/delta",
            server.addr
        ),
    ])
    .ok();
    let cfg = bao.json(&["read", "-format=json", "pki/config/crl"]);
    assert_eq!(cfg["data"]["auto_rebuild"], true, "{cfg}");
    assert_eq!(cfg["data"]["ocsp_expiry"], "12h", "{cfg}");
    bao.run(&[
        "write",
        "pki/revoke",
        &format!("serial_number={}", serials[1]),
    ])
    .ok();
    let (_, full) = raw_get(&server.addr, "/v1/pki/crl");
    let full_t = crl_text(&dir, "full.der", &full);
    assert!(full_t.contains(&hexs(&serials[0])), "{full_t}");
    assert!(!full_t.contains(&hexs(&serials[1])), "{full_t}");
    assert!(full_t.contains("Freshest CRL"), "{full_t}");
    let (code, delta) = raw_get(&server.addr, "/v1/pki/crl/delta");
    assert_eq!(code, 200);
    let delta_t = crl_text(&dir, "delta.der", &delta);
    assert!(delta_t.contains("Delta CRL Indicator"), "{delta_t}");
    assert!(delta_t.contains(&hexs(&serials[1])), "{delta_t}");
    assert!(!delta_t.contains(&hexs(&serials[0])), "{delta_t}");
    openssl(
        &dir,
        &[
            "crl", "-inform", "DER", "-in", "full.der", "-out", "full.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "delta.der",
            "-out",
            "delta.pem",
        ],
    );
    let verify = |cert: &str| {
        let out = Command::new("openssl")
            .args([
                "verify",
                "-CAfile",
                "root.pem",
                "-crl_check",
                "-use_deltas",
                "-CRLfile",
                "full.pem",
                "-CRLfile",
                "delta.pem",
                cert,
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(
        verify("b.pem").contains("certificate revoked"),
        "{}",
        verify("b.pem")
    );
    assert!(verify("c.pem").contains("c.pem: OK"), "{}", verify("c.pem"));
    // OCSP sees the revocation at once.
    let out = ocsp(
        &dir,
        &[
            "-issuer", "root.pem", "-CAfile", "root.pem", "-cert", "b.pem", "-url", &url,
        ],
    );
    assert!(out.contains("b.pem: revoked"), "{out}");
    // crl/rotate folds the delta into a new complete CRL.
    bao.run(&["read", "pki/crl/rotate"]).ok();
    let (_, full) = raw_get(&server.addr, "/v1/pki/crl/pem");
    std::fs::write(dir.join("full2.pem"), full).unwrap();
    let t = openssl(&dir, &["crl", "-in", "full2.pem", "-noout", "-text"]);
    assert!(t.contains(&hexs(&serials[1])), "{t}");
    let (_, delta) = raw_get(&server.addr, "/v1/pki/issuer/default/crl/delta/der");
    let t = crl_text(&dir, "delta2.der", &delta);
    assert!(t.contains("No Revoked Certificates"), "{t}");

    // ocsp_disable: an OCSP "unauthorized" answer with HTTP 401, as Vault.
    bao.run(&["write", "pki/config/crl", "ocsp_disable=true"])
        .ok();
    let (code, resp) = raw_get(&server.addr, &format!("/v1/pki/ocsp/{enc}"));
    assert_eq!(code, 401);
    std::fs::write(dir.join("off.der"), resp).unwrap();
    let out = ocsp(&dir, &["-respin", "off.der", "-resp_text", "-noverify"]);
    assert!(out.contains("unauthorized"), "{out}");

    // Scheduled tidy: the active node's periodic work (every second in
    // these tests) removes an expired certificate without a tidy call.
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
        "pki/config/auto-tidy",
        "enabled=true",
        "tidy_cert_store=true",
        "interval_duration=1s",
        "safety_buffer=1s",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let gone = bao.run(&["read", &format!("pki/cert/{short_serial}")]).code != 0;
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "auto-tidy never removed the expired certificate"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let st = bao.json(&["read", "-format=json", "pki/tidy-status"]);
    assert_eq!(st["data"]["state"], "Finished", "{st}");

    // `bao pki health-check` reads issuers, both CRLs of each issuer, roles,
    // auto-tidy and tidy status: those checks pass.
    let out = bao.run(&["pki", "health-check", "-format=json", "pki"]);
    let hc: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("health-check JSON ({e}): {}", out.describe()));
    for check in [
        "ca_validity_period",
        "crl_validity_period",
        "role_allows_glob_wildcards",
        "enable_auto_tidy",
        "tidy_last_run",
        "too_many_certs",
    ] {
        let results = hc[check]
            .as_array()
            .unwrap_or_else(|| panic!("{check}: {hc}"));
        assert!(!results.is_empty(), "{check}: {hc}");
        for r in results {
            assert_eq!(r["status"], "ok", "{check}: {r}");
        }
    }
    assert_eq!(
        hc["crl_validity_period"].as_array().unwrap().len(),
        2,
        "the complete and the delta CRL of the one issuer: {hc}"
    );
}
