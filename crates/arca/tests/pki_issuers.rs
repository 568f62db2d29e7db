//! Several issuers and keys in one PKI mount, driven by the `bao` CLI and
//! checked with `openssl`: keys generated and imported (PKCS#8 and PKCS#1),
//! roots generated on an existing key, the default issuer switched through
//! `config/issuers`, issuance pinned to an issuer (`issuer/:ref/issue/:role`),
//! issuer rename and delete, a key in use refused for deletion,
//! cross-signing with `sign-self-issued`, EC P-521 roots and leaves,
//! an intermediate revoked through `issuer/:ref/revoke`, `certs/revoked`,
//! `config/cluster`, and a CA
//! bundle imported through `issuers/import/bundle` (again: nothing new) and
//! `config/ca`.

mod common;

use std::process::Command;

use common::{openssl, write_pem, Server};

fn verifies(dir: &std::path::Path, ca: &str, cert: &str) -> bool {
    Command::new("openssl")
        .args(["verify", "-CAfile", ca, cert])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn bao_manages_issuers_and_keys() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let bao = server.bao().with_token(&init.root_token);
    let dir = server.work_dir();
    bao.run(&["secrets", "enable", "pki"]).ok();

    // A named EC key, then a root on it (type existing).
    let k = bao.json(&[
        "write",
        "-format=json",
        "pki/keys/generate/internal",
        "key_name=k1",
        "key_type=ec",
    ]);
    let k1 = k["data"]["key_id"].as_str().unwrap().to_string();
    assert!(k["data"]["private_key"].is_null(), "{k}");
    let a = bao.json(&[
        "write",
        "-format=json",
        "pki/issuers/generate/root/existing",
        "key_ref=k1",
        "common_name=Root A",
        "issuer_name=root-a",
    ]);
    assert_eq!(a["data"]["key_id"], k1.as_str(), "{a}");
    let a_id = a["data"]["issuer_id"].as_str().unwrap().to_string();
    write_pem(&dir, "a.pem", a["data"]["certificate"].as_str().unwrap());
    // A second root with its own RSA key: not the default.
    let b = bao.json(&[
        "write",
        "-format=json",
        "pki/issuers/generate/root/internal",
        "common_name=Root B",
        "issuer_name=root-b",
        "key_type=rsa",
    ]);
    let b_id = b["data"]["issuer_id"].as_str().unwrap().to_string();
    write_pem(&dir, "b.pem", b["data"]["certificate"].as_str().unwrap());
    assert!(b["warnings"].to_string().contains("default"), "{b}");
    // Names are unique.
    bao.run(&[
        "write",
        "pki/root/generate/internal",
        "common_name=Dup",
        "issuer_name=root-a",
    ])
    .api_error(400, "already in use");

    let list = bao.json(&["list", "-format=json", "-detailed", "pki/issuers"]);
    assert_eq!(list["data"]["keys"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        list["data"]["key_info"][&a_id]["is_default"], true,
        "{list}"
    );
    let cfg = bao.json(&["read", "-format=json", "pki/config/issuers"]);
    assert_eq!(cfg["data"]["default"], a_id.as_str(), "{cfg}");
    bao.run(&["write", "pki/config/issuers", "default=root-b"])
        .ok();
    let def = bao.json(&["read", "-format=json", "pki/issuer/default"]);
    assert_eq!(def["data"]["issuer_name"], "root-b", "{def}");
    assert_eq!(def["data"]["leaf_not_after_behavior"], "err", "{def}");

    // Issuance follows the default, or the issuer the path names.
    bao.run(&[
        "write",
        "pki/roles/web",
        "allow_any_name=true",
        "key_type=ec",
    ])
    .ok();
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/web",
        "common_name=b.example",
    ]);
    write_pem(
        &dir,
        "leaf-b.pem",
        leaf["data"]["certificate"].as_str().unwrap(),
    );
    assert!(verifies(&dir, "b.pem", "leaf-b.pem"));
    assert!(!verifies(&dir, "a.pem", "leaf-b.pem"));
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issuer/root-a/issue/web",
        "common_name=a.example",
    ]);
    write_pem(
        &dir,
        "leaf-a.pem",
        leaf["data"]["certificate"].as_str().unwrap(),
    );
    assert!(verifies(&dir, "a.pem", "leaf-a.pem"));
    assert!(!verifies(&dir, "b.pem", "leaf-a.pem"));

    // P-521 leaves under the EC root, and a P-521 root of its own.
    bao.run(&[
        "write",
        "pki/roles/p521",
        "allow_any_name=true",
        "key_type=ec",
        "key_bits=521",
    ])
    .ok();
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issuer/root-a/issue/p521",
        "common_name=p521.example",
    ]);
    write_pem(
        &dir,
        "leaf-521.pem",
        leaf["data"]["certificate"].as_str().unwrap(),
    );
    write_pem(
        &dir,
        "leaf-521.key",
        leaf["data"]["private_key"].as_str().unwrap(),
    );
    assert!(verifies(&dir, "a.pem", "leaf-521.pem"));
    let t = openssl(&dir, &["x509", "-in", "leaf-521.pem", "-noout", "-text"]);
    assert!(t.contains("secp521r1") || t.contains("P-521"), "{t}");
    let k = openssl(&dir, &["ec", "-in", "leaf-521.key", "-noout", "-check"]);
    assert!(k.contains("valid"), "{k}");
    let r521 = bao.json(&[
        "write",
        "-format=json",
        "pki/issuers/generate/root/internal",
        "common_name=Root 521",
        "issuer_name=root-521",
        "key_type=ec",
        "key_bits=521",
    ]);
    write_pem(
        &dir,
        "r521.pem",
        r521["data"]["certificate"].as_str().unwrap(),
    );
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issuer/root-521/issue/web",
        "common_name=under521.example",
    ]);
    write_pem(
        &dir,
        "leaf-u521.pem",
        leaf["data"]["certificate"].as_str().unwrap(),
    );
    assert!(verifies(&dir, "r521.pem", "leaf-u521.pem"));
    let t = openssl(&dir, &["x509", "-in", "leaf-u521.pem", "-noout", "-text"]);
    assert!(t.contains("ecdsa-with-SHA512"), "{t}");

    // Rename; a key in use cannot go.
    bao.run(&["write", "pki/issuer/root-a", "issuer_name=root-a2"])
        .ok();
    let r = bao.json(&["read", "-format=json", "pki/issuer/root-a2"]);
    assert_eq!(r["data"]["issuer_id"], a_id.as_str(), "{r}");
    bao.run(&["delete", "pki/key/k1"]).api_error(400, "in use");

    // Cross-signing: root B re-issued by root A; B's leaves then chain to A.
    let cross = bao.json(&[
        "write",
        "-format=json",
        "pki/issuer/root-a2/sign-self-issued",
        &format!("certificate=@{}", dir.join("b.pem").display()),
    ]);
    write_pem(
        &dir,
        "cross.pem",
        cross["data"]["certificate"].as_str().unwrap(),
    );
    assert!(verifies(&dir, "a.pem", "cross.pem"));
    let subj = |f: &str| openssl(&dir, &["x509", "-in", f, "-noout", "-subject", "-pubkey"]);
    assert_eq!(subj("cross.pem"), subj("b.pem"));
    let v = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "a.pem",
            "-untrusted",
            "cross.pem",
            "leaf-b.pem",
        ],
    );
    assert!(v.contains("leaf-b.pem: OK"), "{v}");
    // An intermediate in the same mount, then revoked: it issues nothing
    // more and its parent's CRL lists it.
    let gen = bao.json(&[
        "write",
        "-format=json",
        "pki/issuers/generate/intermediate/internal",
        "common_name=Int A",
        "key_type=ec",
    ]);
    write_pem(&dir, "inta.csr", gen["data"]["csr"].as_str().unwrap());
    let signed = bao.json(&[
        "write",
        "-format=json",
        "pki/issuer/root-a2/sign-intermediate",
        &format!("csr=@{}", dir.join("inta.csr").display()),
        "format=pem",
    ]);
    let int_serial = signed["data"]["serial_number"]
        .as_str()
        .unwrap()
        .to_string();
    write_pem(
        &dir,
        "inta.pem",
        signed["data"]["certificate"].as_str().unwrap(),
    );
    let set = bao.json(&[
        "write",
        "-format=json",
        "pki/intermediate/set-signed",
        &format!("certificate=@{}", dir.join("inta.pem").display()),
    ]);
    let int_id = set["data"]["imported_issuers"][0]
        .as_str()
        .unwrap()
        .to_string();
    bao.json(&[
        "write",
        "-format=json",
        &format!("pki/issuer/{int_id}/issue/web"),
        "common_name=before.example",
    ]);
    let rev = bao.json(&[
        "write",
        "-format=json",
        "-force",
        &format!("pki/issuer/{int_id}/revoke"),
    ]);
    assert_eq!(rev["data"]["revoked"], true, "{rev}");
    bao.run(&[
        "write",
        &format!("pki/issuer/{int_id}/issue/web"),
        "common_name=after.example",
    ])
    .api_error(400, "revoked");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            dir.join("root-a.crl").to_str().unwrap(),
            &format!("{}/v1/pki/issuer/root-a2/crl/der", server.addr),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = openssl(
        &dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "root-a.crl",
            "-noout",
            "-text",
        ],
    );
    assert!(
        t.contains(&int_serial.replace(':', "").to_uppercase()),
        "{int_serial} missing:\n{t}"
    );

    bao.run(&[
        "write",
        "pki/root/sign-self-issued",
        &format!("certificate=@{}", dir.join("leaf-a.pem").display()),
    ])
    .api_error(400, "not self-issued");
    let key = bao.json(&["read", "-format=json", "pki/key/k1"]);
    assert_eq!(key["data"]["key_type"], "ec", "{key}");

    // keys/import: a PKCS#1 RSA key from openssl, then the same key again.
    openssl(
        &dir,
        &["genrsa", "-traditional", "-out", "rsa1.key", "2048"],
    );
    let pem = std::fs::read_to_string(dir.join("rsa1.key")).unwrap();
    assert!(pem.contains("BEGIN RSA PRIVATE KEY"));
    let imp = bao.json(&[
        "write",
        "-format=json",
        "pki/keys/import",
        &format!("pem_bundle=@{}", dir.join("rsa1.key").display()),
        "key_name=imported-rsa",
    ]);
    assert_eq!(imp["data"]["key_type"], "rsa", "{imp}");
    assert_eq!(imp["data"]["key_bits"], 2048, "{imp}");
    let again = bao.json(&[
        "write",
        "-format=json",
        "pki/keys/import",
        &format!("pem_bundle=@{}", dir.join("rsa1.key").display()),
    ]);
    assert_eq!(again["data"]["key_id"], imp["data"]["key_id"], "{again}");
    let keys = bao.json(&["list", "-format=json", "pki/keys"]);
    assert_eq!(keys.as_array().unwrap().len(), 5, "{keys}");

    // A CA made by openssl, imported with its (PKCS#8) key.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ext.key",
            "-out",
            "ext.pem",
            "-days",
            "30",
            "-subj",
            "/CN=External CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let bundle = std::fs::read_to_string(dir.join("ext.pem")).unwrap()
        + &std::fs::read_to_string(dir.join("ext.key")).unwrap();
    write_pem(&dir, "bundle.pem", &bundle);
    let imp = bao.json(&[
        "write",
        "-format=json",
        "pki/issuers/import/bundle",
        &format!("pem_bundle=@{}", dir.join("bundle.pem").display()),
    ]);
    let issuers = imp["data"]["imported_issuers"].as_array().unwrap().clone();
    assert_eq!(issuers.len(), 1, "{imp}");
    assert_eq!(
        imp["data"]["imported_keys"].as_array().unwrap().len(),
        1,
        "{imp}"
    );
    let ext_id = issuers[0].as_str().unwrap().to_string();
    assert_eq!(
        imp["data"]["mapping"][&ext_id], imp["data"]["imported_keys"][0],
        "{imp}"
    );
    let leaf = bao.json(&[
        "write",
        "-format=json",
        &format!("pki/issuer/{ext_id}/issue/web"),
        "common_name=ext.example",
    ]);
    write_pem(
        &dir,
        "leaf-ext.pem",
        leaf["data"]["certificate"].as_str().unwrap(),
    );
    assert!(verifies(&dir, "ext.pem", "leaf-ext.pem"));
    // The same bundle again, through config/ca: nothing new.
    let again = bao.json(&[
        "write",
        "-format=json",
        "pki/config/ca",
        &format!("pem_bundle=@{}", dir.join("bundle.pem").display()),
    ]);
    assert!(again["data"]["imported_issuers"].is_null(), "{again}");
    assert_eq!(
        again["data"]["existing_issuers"][0],
        ext_id.as_str(),
        "{again}"
    );

    // Deleting the default issuer clears the default; its key stays.
    let out = bao.run(&["delete", &format!("pki/issuer/{b_id}")]).ok();
    assert!(
        out.stdout.contains("default") || out.stderr.contains("default"),
        "{}",
        out.describe()
    );
    let cfg = bao.json(&["read", "-format=json", "pki/config/issuers"]);
    assert_eq!(cfg["data"]["default"], "", "{cfg}");
    bao.run(&["read", &format!("pki/issuer/{b_id}")]).code(2);
    let keys = bao.json(&["list", "-format=json", "pki/keys"]);
    assert_eq!(keys.as_array().unwrap().len(), 6, "{keys}");
    // The revoked list: the revoked intermediate, then a leaf.
    let serial = leaf["data"]["serial_number"].as_str().unwrap().to_string();
    bao.run(&["write", "pki/revoke", &format!("serial_number={serial}")])
        .ok();
    let revoked = bao.json(&["list", "-format=json", "pki/certs/revoked"]);
    let mut want = vec![serial, int_serial.clone()];
    want.sort();
    assert_eq!(revoked, serde_json::json!(want));
    // config/cluster.
    bao.run(&[
        "write",
        "pki/config/cluster",
        "path=https://pki.example:8200/v1/pki",
    ])
    .ok();
    let cl = bao.json(&["read", "-format=json", "pki/config/cluster"]);
    assert_eq!(
        cl["data"]["path"], "https://pki.example:8200/v1/pki",
        "{cl}"
    );
    bao.run(&["write", "pki/config/cluster", "path=not-a-url"])
        .api_error(400, "URL");
}
