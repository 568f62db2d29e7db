//! Key ceremonies driven by the real `bao` CLI (OpenBao 2.7): rotating the
//! unseal key shares with `bao operator rotate-keys` on a two-node raft
//! cluster — started on one node, continued on the other, with and without
//! verification, cancelled — and what holds afterwards: the old shares open
//! nothing on either node, the new ones do, the data is intact.

mod common;

use std::time::Duration;

use common::{wait_until, Bao, Server};
use serde_json::{json, Value};

/// `sys/seal` then `sys/unseal` with `keys` (base64 or hex): true when the
/// node ends up unsealed. Stops at the first refused key.
fn seal_and_try_unseal(s: &Server, token: &str, keys: &[String]) -> Result<(), String> {
    s.http_ok("PUT", "/v1/sys/seal", Some(token), None);
    for k in keys {
        let (status, body) = s.http("PUT", "/v1/sys/unseal", None, Some(&json!({ "key": k })));
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
    }
    let v = s.http_ok("GET", "/v1/sys/seal-status", None, None);
    if v["sealed"] == false {
        Ok(())
    } else {
        Err(format!("still sealed after {} keys: {v}", keys.len()))
    }
}

/// Base64 of `n` zero bytes: a well-formed key that is nobody's.
fn base64_of_zeros(n: usize) -> String {
    let mut s = "A".repeat(n / 3 * 4);
    match n % 3 {
        1 => s.push_str("AA=="),
        2 => s.push_str("AAA="),
        _ => {}
    }
    s
}

fn status(b: &Bao) -> Value {
    b.json(&["operator", "rotate-keys", "-status", "-format=json"])
}

#[test]
fn bao_operator_rotate_keys_across_a_cluster() {
    let n1 = Server::start_raft("rk1");
    let init = n1.init_and_unseal();
    let root = init.root_token.clone();
    let n2 = Server::start_raft("rk2");
    n2.join_and_unseal(&n1, &init.keys_b64[..3]);
    let b1 = n1.bao().with_token(&root);
    let b2 = n2.bao().with_token(&root);
    b1.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    n1.wait_kv2_ready("secret", &root);
    b1.run(&["kv", "put", "secret/keep", "v=before-rotation"])
        .ok();

    // A token without sudo cannot start a rotation.
    let weak = b1.token_with_policy(
        "rotator",
        "path \"sys/rotate/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\"] }\n",
    );
    b1.with_token(&weak)
        .run(&[
            "operator",
            "rotate-keys",
            "-init",
            "-key-shares=3",
            "-key-threshold=2",
        ])
        .api_error(403, "permission denied");

    // A cancelled rotation changes nothing.
    let s = b1.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    assert_eq!(s["started"], true, "{s}");
    let nonce = s["nonce"].as_str().unwrap().to_string();
    b1.run(&[
        "operator",
        "rotate-keys",
        &format!("-nonce={nonce}"),
        &init.keys_b64[0],
    ])
    .ok();
    assert_eq!(status(&b2)["progress"], 1);
    // Only one rotation at a time.
    b2.run(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=1",
        "-key-threshold=1",
    ])
    .api_error(400, "rotation already in progress");
    b2.run(&["operator", "rotate-keys", "-cancel"]).ok();
    let s = status(&b1);
    assert_eq!(s["started"], false, "{s}");
    seal_and_try_unseal(&n2, &root, &init.keys_b64[2..5]).unwrap();

    // Started on n1 with 3 shares / threshold 2, continued on n2.
    let s = b1.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let nonce = s["nonce"].as_str().unwrap().to_string();
    assert_eq!(
        (s["t"].as_u64(), s["n"].as_u64()),
        (Some(2), Some(3)),
        "{s}"
    );
    assert_eq!(s["required"], 3, "{s}");
    let nonce_flag = format!("-nonce={nonce}");
    // Wrong nonce, bad key, repeated share: refused, nothing counted.
    b2.run(&[
        "operator",
        "rotate-keys",
        "-nonce=not-the-nonce",
        &init.keys_b64[0],
    ])
    .api_error(400, "incorrect nonce");
    b2.run(&["operator", "rotate-keys", &nonce_flag, "not a key!"])
        .api_error(400, "hex or base64");
    b2.run(&["operator", "rotate-keys", &nonce_flag, &init.keys_hex[1]])
        .ok();
    b1.run(&["operator", "rotate-keys", &nonce_flag, &init.keys_b64[1]])
        .api_error(400, "already been provided");
    assert_eq!(status(&b1)["progress"], 1);
    b1.run(&["operator", "rotate-keys", &nonce_flag, &init.keys_b64[3]])
        .ok();
    let done = b2.json(&[
        "operator",
        "rotate-keys",
        &nonce_flag,
        "-format=json",
        &init.keys_b64[4],
    ]);
    assert_eq!(done["complete"], true, "{done}");
    let new_keys: Vec<String> = done["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new_keys.len(), 3, "{done}");
    assert_eq!(status(&b2)["started"], false);

    // The old shares open nothing, on either node; two new ones do.
    let seal_status = n1.http_ok("GET", "/v1/sys/seal-status", None, None);
    assert_eq!(
        (seal_status["t"].as_u64(), seal_status["n"].as_u64()),
        (Some(2), Some(3))
    );
    let e = seal_and_try_unseal(&n2, &root, &init.keys_b64[..3]).unwrap_err();
    assert!(e.contains("400") || e.contains("still sealed"), "{e}");
    n2.http_ok("PUT", "/v1/sys/unseal", None, Some(&json!({"reset": true})));
    n2.unseal_as_standby(&new_keys[1..3]);
    seal_and_try_unseal(&n1, &root, &init.keys_b64[..3]).unwrap_err();
    n1.http_ok("PUT", "/v1/sys/unseal", None, Some(&json!({"reset": true})));
    n1.unseal_as_standby(&[new_keys[2].clone(), new_keys[0].clone()]);
    let b_any = n2.bao().with_token(&root);
    wait_until(
        "the cluster writable again",
        Duration::from_secs(60),
        || b_any.run(&["kv", "get", "-field=v", "secret/keep"]).code == 0,
    );
    let v = b_any.run(&["kv", "get", "-field=v", "secret/keep"]).ok();
    assert_eq!(v.stdout.trim(), "before-rotation");

    // With verification: the new shares count only once entered back.
    let b = b_any;
    let s = b.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=1",
        "-key-threshold=1",
        "-verify",
        "-format=json",
    ]);
    let nonce_flag = format!("-nonce={}", s["nonce"].as_str().unwrap());
    b.run(&["operator", "rotate-keys", &nonce_flag, &new_keys[0]])
        .ok();
    let done = b.json(&[
        "operator",
        "rotate-keys",
        &nonce_flag,
        "-format=json",
        &new_keys[1],
    ]);
    assert_eq!(done["verification_required"], true, "{done}");
    let vnonce = done["verification_nonce"].as_str().unwrap().to_string();
    let single = done["keys_base64"][0].as_str().unwrap().to_string();
    // Not installed yet: the 2-of-3 shares still unseal.
    let seal_status = n1.http_ok("GET", "/v1/sys/seal-status", None, None);
    assert_eq!(seal_status["n"], 3);
    b.run(&["operator", "rotate-keys", &nonce_flag, &new_keys[2]])
        .api_error(400, "verification must be performed");
    // A wrong key fails verification and changes its nonce.
    let wrong = base64_of_zeros(32);
    b.run(&[
        "operator",
        "rotate-keys",
        "-verify",
        &format!("-nonce={vnonce}"),
        &wrong,
    ])
    .api_error(400, "verification failed");
    let vs = b.json(&[
        "operator",
        "rotate-keys",
        "-verify",
        "-status",
        "-format=json",
    ]);
    let vnonce2 = vs["nonce"].as_str().unwrap().to_string();
    assert_ne!(vnonce2, vnonce, "{vs}");
    let out = b
        .run(&[
            "operator",
            "rotate-keys",
            "-verify",
            &format!("-nonce={vnonce2}"),
            &single,
        ])
        .ok();
    assert!(
        out.stdout.contains("verification successful"),
        "{}",
        out.describe()
    );
    let seal_status = n1.http_ok("GET", "/v1/sys/seal-status", None, None);
    assert_eq!(
        (seal_status["t"].as_u64(), seal_status["n"].as_u64()),
        (Some(1), Some(1))
    );
    seal_and_try_unseal(&n2, &root, &new_keys[..2]).unwrap_err();
    n2.http_ok("PUT", "/v1/sys/unseal", None, Some(&json!({"reset": true})));
    n2.unseal_as_standby(std::slice::from_ref(&single));

    // The server log never shows a share.
    for s in [&n1, &n2] {
        let log = s.log();
        for k in init.keys_b64.iter().chain(&new_keys).chain([&single]) {
            assert!(!log.contains(k.as_str()), "a key share in the log");
        }
    }
}

#[test]
fn bao_operator_generate_root_with_an_otp() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let root = init.root_token.clone();
    let b = s.bao().with_token(&root);

    // Without sudo on the path: refused.
    let weak = b.token_with_policy(
        "gen",
        "path \"sys/generate-root-token/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\"] }\n",
    );
    b.with_token(&weak)
        .run(&["operator", "generate-root", "-init"])
        .api_error(403, "permission denied");

    // The server generates the OTP and shows it once.
    let st = b.json(&["operator", "generate-root", "-init", "-format=json"]);
    assert_eq!(st["started"], true, "{st}");
    assert_eq!(st["otp_length"], 28, "{st}");
    let otp = st["otp"].as_str().unwrap().to_string();
    assert_eq!(otp.len(), 28, "{st}");
    let nonce = st["nonce"].as_str().unwrap().to_string();
    let again = b.json(&["operator", "generate-root", "-status", "-format=json"]);
    assert_eq!(again["otp"], "", "the OTP is shown only once: {again}");
    assert_eq!(again["required"], 3);
    b.run(&["operator", "generate-root", "-init"])
        .api_error(400, "already in progress");

    // Shares that are not the unseal key's: refused at the threshold,
    // nothing created, the attempt goes on.
    let nonce_flag = format!("-nonce={nonce}");
    let fake: Vec<String> = (1..=3u8)
        .map(|x| {
            let mut share = vec![7u8; 32];
            share.push(x);
            hex_of(&share)
        })
        .collect();
    b.run(&["operator", "generate-root", &nonce_flag, &fake[0]])
        .ok();
    b.run(&["operator", "generate-root", &nonce_flag, &fake[0]])
        .api_error(400, "already been provided");
    b.run(&["operator", "generate-root", &nonce_flag, &fake[1]])
        .ok();
    b.run(&["operator", "generate-root", &nonce_flag, &fake[2]])
        .api_error(400, "root key verification failed");
    let st = b.json(&["operator", "generate-root", "-status", "-format=json"]);
    assert_eq!(
        (st["started"].as_bool(), st["progress"].as_u64()),
        (Some(true), Some(0)),
        "{st}"
    );

    // The real shares, entered by three holders.
    b.run(&[
        "operator",
        "generate-root",
        "-nonce=wrong",
        &init.keys_b64[0],
    ])
    .api_error(400, "incorrect nonce");
    b.run(&["operator", "generate-root", &nonce_flag, &init.keys_b64[0]])
        .ok();
    b.run(&["operator", "generate-root", &nonce_flag, &init.keys_hex[3]])
        .ok();
    let done = b.json(&[
        "operator",
        "generate-root",
        &nonce_flag,
        "-format=json",
        &init.keys_b64[4],
    ]);
    assert_eq!(done["complete"], true, "{done}");
    let encoded = done["encoded_token"].as_str().unwrap().to_string();
    assert!(!encoded.is_empty(), "{done}");

    let decoded = b
        .run(&[
            "operator",
            "generate-root",
            &format!("-decode={encoded}"),
            &format!("-otp={otp}"),
        ])
        .ok();
    let new_root = decoded.stdout.trim().to_string();
    assert!(new_root.starts_with("hvs."), "{}", decoded.describe());
    assert_ne!(new_root, root);
    let me = s
        .bao()
        .with_token(&new_root)
        .json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["policies"], json!(["root"]), "{me}");
    // The server decodes it the same way.
    let v = s.http_ok(
        "PUT",
        "/v1/sys/decode-token",
        Some(&root),
        Some(&json!({"encoded_token": encoded, "otp": otp})),
    );
    assert_eq!(v["data"]["token"], new_root.as_str());
    let st = b.json(&["operator", "generate-root", "-status", "-format=json"]);
    assert_eq!(st["started"], false, "{st}");

    // An OTP of the operator's own, then a cancel: nothing is created.
    let own: String = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4".into();
    let st = b.json(&[
        "operator",
        "generate-root",
        "-init",
        &format!("-otp={own}"),
        "-format=json",
    ]);
    assert_eq!(st["otp"], "", "{st}");
    b.run(&["operator", "generate-root", "-init", "-otp=short"])
        .code(2);
    b.run(&["operator", "generate-root", "-cancel"]).ok();
    let st = b.json(&["operator", "generate-root", "-status", "-format=json"]);
    assert_eq!(st["started"], false, "{st}");
    // `pgp_key` is refused, not ignored.
    let (status, body) = s.http(
        "PUT",
        "/v1/sys/generate-root-token/attempt",
        Some(&root),
        Some(&json!({"pgp_key": "bm90IGEga2V5"})),
    );
    assert_eq!(status, 400, "{body}");

    for secret in [otp.as_str(), new_root.as_str(), encoded.as_str()] {
        assert!(!s.log().contains(secret), "a secret in the server log");
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A key holder with a real GnuPG home (an Ed25519 key with a Cv25519
/// encryption subkey): exports the public key to a file the `bao` CLI
/// reads, decrypts what Arca encrypted to it.
struct Holder {
    home: tempfile::TempDir,
    /// The exported public key (binary), as `-pgp-keys` takes it.
    key_file: String,
}

impl Holder {
    fn new(name: &str, dir: &std::path::Path) -> Holder {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::Builder::new()
            .prefix("arca-gpg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let h = Holder {
            home,
            key_file: dir
                .join(format!("{name}.gpg"))
                .to_str()
                .unwrap()
                .to_string(),
        };
        let uid = format!("{name} <{name}@example.com>");
        h.gpg(
            &[
                "--quick-gen-key",
                &uid,
                "future-default",
                "default",
                "never",
            ],
            b"",
        );
        let key = h.gpg(&["--export", &uid], b"");
        assert!(!key.is_empty(), "gpg exported nothing for {uid}");
        std::fs::write(&h.key_file, key).unwrap();
        h
    }

    fn gpg(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.try_gpg(args, stdin);
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn try_gpg(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("gpg cannot be run ({e}): install gnupg (deploy/install-deps.sh test)")
            });
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `echo <b64> | base64 -d | gpg -d`, as a holder reads a share.
    fn decrypt_b64(&self, b64: &str) -> String {
        String::from_utf8(self.gpg(&["--decrypt"], &Self::unbase64(b64))).unwrap()
    }

    fn can_decrypt(&self, b64: &str) -> bool {
        self.try_gpg(&["--decrypt"], &Self::unbase64(b64))
            .status
            .success()
    }

    fn unbase64(b64: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pgp_holders_read_their_shares_and_tokens_with_gpg() {
    let s = Server::start();
    let dir = s.work_dir();
    let holders: Vec<Holder> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| Holder::new(n, &dir))
        .collect();
    let b = s.bao().without_token();
    let files = |hs: &[&Holder]| {
        hs.iter()
            .map(|h| h.key_file.clone())
            .collect::<Vec<_>>()
            .join(",")
    };

    // Initialise with one share per holder and the root token for alice.
    let init = b.json(&[
        "operator",
        "init",
        "-key-shares=3",
        "-key-threshold=2",
        &format!(
            "-pgp-keys={}",
            files(&[&holders[0], &holders[1], &holders[2]])
        ),
        &format!("-root-token-pgp-key={}", holders[0].key_file),
        "-format=json",
    ]);
    let enc = strings(&init["unseal_keys_b64"]);
    assert_eq!(enc.len(), 3, "{init}");
    let shares: Vec<String> = enc
        .iter()
        .zip(&holders)
        .map(|(e, h)| h.decrypt_b64(e))
        .collect();
    for sh in &shares {
        assert_eq!(sh.len(), 66, "a share as hex text: {sh}");
    }
    let root = holders[0].decrypt_b64(init["root_token"].as_str().unwrap());
    assert!(root.starts_with("hvs."), "{root}");
    // Bob cannot read alice's share.
    assert!(!holders[1].can_decrypt(&enc[0]));
    assert!(holders[0].can_decrypt(&enc[0]));
    s.unseal_with(&[shares[0].clone(), shares[2].clone()]);
    let b = s.bao().with_token(&root);

    // Rotate to bob and carol only, keeping a backup.
    let st = b.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=2",
        "-key-threshold=2",
        &format!("-pgp-keys={}", files(&[&holders[1], &holders[2]])),
        "-backup",
        "-format=json",
    ]);
    let fps = strings(&st["pgp_fingerprints"]);
    assert_eq!(fps.len(), 2, "{st}");
    assert!(fps.iter().all(|f| f.len() == 40), "{st}");
    let nonce_flag = format!("-nonce={}", st["nonce"].as_str().unwrap());
    b.run(&["operator", "rotate-keys", &nonce_flag, &shares[1]])
        .ok();
    let done = b.json(&[
        "operator",
        "rotate-keys",
        &nonce_flag,
        "-format=json",
        &shares[2],
    ]);
    assert_eq!(done["complete"], true, "{done}");
    assert_eq!(strings(&done["pgp_fingerprints"]), fps, "{done}");
    let new_enc = strings(&done["keys_base64"]);
    let new_shares: Vec<String> = new_enc
        .iter()
        .zip(&holders[1..])
        .map(|(e, h)| h.decrypt_b64(e))
        .collect();
    let backup = b.json(&[
        "operator",
        "rotate-keys",
        "-backup-retrieve",
        "-format=json",
    ]);
    for (fp, e) in fps.iter().zip(&new_enc) {
        assert_eq!(
            strings(&backup["data"]["keys_base64"][fp.as_str()]),
            vec![e.clone()],
            "{backup}"
        );
    }
    b.run(&["operator", "rotate-keys", "-backup-delete"]).ok();
    assert_eq!(
        s.http("GET", "/v1/sys/rotate/root/backup", Some(&root), None)
            .0,
        404
    );
    seal_and_try_unseal(&s, &root, &new_shares).unwrap();
    s.wait_active();

    // A new root token for carol, encrypted to her key.
    let st = b.json(&[
        "operator",
        "generate-root",
        "-init",
        &format!("-pgp-key={}", holders[2].key_file),
        "-format=json",
    ]);
    assert_eq!(st["pgp_fingerprint"], fps[1].as_str(), "{st}");
    assert_eq!(st["otp"], "", "{st}");
    let nonce_flag = format!("-nonce={}", st["nonce"].as_str().unwrap());
    b.run(&["operator", "generate-root", &nonce_flag, &new_shares[0]])
        .ok();
    let done = b.json(&[
        "operator",
        "generate-root",
        &nonce_flag,
        "-format=json",
        &new_shares[1],
    ]);
    let token = holders[2].decrypt_b64(done["encoded_token"].as_str().unwrap());
    assert!(token.starts_with("hvs.") && token != root, "{token}");
    let me = s
        .bao()
        .with_token(&token)
        .json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["policies"], json!(["root"]), "{me}");

    // A key that is not a public key is refused with a 400; nothing starts.
    b.run(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=1",
        "-key-threshold=1",
        &format!(
            "-pgp-keys={}",
            holders[0].key_file.replace("alice.gpg", "nothing.gpg")
        ),
    ])
    .code(1);
    let (status, body) = s.http(
        "PUT",
        "/v1/sys/rotate/root/init",
        Some(&root),
        Some(&json!({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": ["bm90IGEga2V5"]})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(status_of_rotation(&s, &root)["started"], false);
    for secret in shares.iter().chain(&new_shares).chain([&root, &token]) {
        assert!(
            !s.log().contains(secret.as_str()),
            "a secret in the server log"
        );
    }
}

fn status_of_rotation(s: &Server, token: &str) -> Value {
    s.http_ok("GET", "/v1/sys/rotate/root/init", Some(token), None)["data"].clone()
}

/// The legacy unauthenticated `sys/rekey/*` and `sys/generate-root/*`:
/// off unless the listener turns them on; then hvac drives them without a
/// token, they are audited, and they share the attempts of the
/// authenticated paths.
#[test]
fn legacy_unauthenticated_ceremonies_off_by_default_and_hvac_when_on() {
    // Off by default: neither anonymous nor root callers reach them.
    let off = Server::start();
    let init = off.init_and_unseal();
    for (method, path) in [
        ("GET", "/v1/sys/rekey/init"),
        ("PUT", "/v1/sys/rekey/init"),
        ("DELETE", "/v1/sys/rekey/init"),
        ("PUT", "/v1/sys/generate-root/attempt"),
        ("DELETE", "/v1/sys/generate-root/attempt"),
    ] {
        for token in [None, Some(init.root_token.as_str())] {
            let (status, body) = off.http(
                method,
                path,
                token,
                Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
            );
            assert!(
                matches!(status, 403..=405),
                "{method} {path} (token: {}) answered {status}: {body}",
                token.is_some()
            );
        }
    }
    // A client cannot make the listener believe it is a peer that
    // forwards a ceremony its own listener allowed.
    let (status, body) = common::try_http_with(
        &off.addr,
        "PUT",
        "/v1/sys/rekey/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        &[("X-Arca-Forwarded", "1"), ("X-Arca-Legacy-Ceremony", "1")],
    )
    .unwrap();
    assert!(matches!(status, 403..=405), "{status}: {body}");
    // Nothing was started through them.
    let st = status_of_rotation(&off, &init.root_token);
    assert_eq!(st["started"], false, "{st}");
    drop(off);

    let on = Server::start_rocksdb_with(
        "disable_unauthed_rekey_endpoints = false\ndisable_unauthed_generate_root_endpoints = false",
        "",
    );
    let init = on.init_and_unseal();
    let root = init.root_token.clone();
    let log = on.work_dir().join("audit.log");
    on.http_ok(
        "PUT",
        "/v1/sys/audit/file",
        Some(&root),
        Some(&json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
    );
    let script = common::repo_root().join("tests/compat/hvac_ceremonies.py");
    let mut c = std::process::Command::new(common::python_bin());
    c.arg(&script)
        .args([
            "--addr",
            &on.addr,
            "--keys",
            &init.keys_b64.join(","),
            "--root",
            &root,
        ])
        .env_remove("VAULT_TOKEN")
        .env("PYTHONUNBUFFERED", "1");
    let (code, out, err) = common::run_with_timeout(c, &on.work_dir(), Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert_eq!(code, 0, "hvac ceremonies failed\n{out}\n{err}");
    assert!(out.contains("7 passed, 0 failed"), "{out}\n{err}");

    // Audited, with every share and token hashed.
    let audit = std::fs::read_to_string(&log).unwrap();
    assert!(
        audit.contains("sys/rekey/update"),
        "no rekey entry in the audit log"
    );
    assert!(audit.contains("sys/generate-root/update"));
    for k in init.keys_b64.iter().chain(&init.keys_hex) {
        assert!(!audit.contains(k.as_str()), "a share in the audit log");
    }
}

/// `POST sys/rotate/root` (OpenBao ≥ 2.4, sudo): a new root key without
/// shares, sent to a standby (forwarded); both nodes keep serving, the term
/// and the data stay, the same unseal shares open the new root key on both
/// nodes after a seal, and an unseal key rotation afterwards still works.
#[test]
fn root_key_rotation_without_shares_across_a_cluster() {
    let mut n1 = Server::start_raft("rr1");
    let init = n1.init_and_unseal();
    let root = init.root_token.clone();
    let mut n2 = Server::start_raft("rr2");
    n2.join_and_unseal(&n1, &init.keys_b64[..3]);
    let b1 = n1.bao().with_token(&root);
    let b2 = n2.bao().with_token(&root);
    b1.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    n1.wait_kv2_ready("secret", &root);
    b1.run(&["kv", "put", "secret/keep", "v=before"]).ok();
    let term =
        |b: &Bao| b.json(&["read", "-format=json", "sys/key-status"])["data"]["term"].clone();
    let term_before = term(&b1);

    // Without sudo: refused.
    let weak = b1.token_with_policy(
        "rotator",
        "path \"sys/rotate/*\" { capabilities = [\"create\", \"update\"] }\n",
    );
    b1.with_token(&weak)
        .run(&["write", "-f", "sys/rotate/root"])
        .api_error(403, "permission denied");

    // On the standby: forwarded to the active node.
    b2.run(&["write", "-f", "sys/rotate/root"]).ok();
    b1.run(&["kv", "put", "secret/keep", "v=after"]).ok();
    for b in [&b1, &b2] {
        let v = b.json(&["kv", "get", "-format=json", "secret/keep"]);
        assert_eq!(v["data"]["data"]["v"], "after", "{v}");
        assert_eq!(term(b), term_before);
    }
    // A second rotation, then both nodes sealed and opened with the same
    // shares; the new root key is what they open.
    b1.run(&["write", "-f", "sys/rotate/root"]).ok();
    seal_and_try_unseal(&n2, &root, &init.keys_b64[..3]).unwrap();
    seal_and_try_unseal(&n1, &root, &init.keys_b64[1..4]).unwrap();
    active_of(&[&n1, &n2]);
    // A restart opens with the same shares too.
    n2.restart();
    n2.unseal_as_standby(&init.keys_b64[2..5]);
    n1.restart();
    n1.unseal_as_standby(&init.keys_b64[..3]);
    let b = active_of(&[&n1, &n2]).bao().with_token(&root);
    let v = b.json(&["kv", "get", "-format=json", "secret/keep"]);
    assert_eq!(v["data"]["data"]["v"], "after", "{v}");

    // The unseal keys can still be rotated, and the root key after that.
    let st = b.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let nonce = format!("-nonce={}", st["nonce"].as_str().unwrap());
    let mut new_keys = Vec::new();
    for k in &init.keys_b64[..3] {
        let v = b.json(&["operator", "rotate-keys", &nonce, "-format=json", k]);
        if v["complete"] == true {
            new_keys = strings(&v["keys_base64"]);
        }
    }
    assert_eq!(new_keys.len(), 3);
    b.run(&["write", "-f", "sys/rotate/root"]).ok();
    for n in [&n1, &n2] {
        seal_and_try_unseal(n, &root, &new_keys[..2]).unwrap();
    }
    active_of(&[&n1, &n2]);
}

/// Waits until one of `nodes` is the active node, and returns it.
fn active_of<'a>(nodes: &[&'a Server]) -> &'a Server {
    let mut found = None;
    wait_until("an active node", Duration::from_secs(60), || {
        found = nodes
            .iter()
            .find(|n| n.http("GET", "/v1/sys/health", None, None).0 == 200)
            .copied();
        found.is_some()
    });
    found.unwrap()
}
