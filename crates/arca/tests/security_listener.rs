//! Issue 10, listener and process defects, each reproduced through a real
//! `arca server` process and named after the defect:
//! * listener TLS options were parsed and ignored (`tls_min_version`,
//!   `tls_max_version`, `tls_cipher_suites`, client-certificate settings) —
//!   checked with `openssl s_client` and `curl` against certificates made
//!   by `openssl` in the test's directory;
//! * configuration keys accepted but not implemented (`pid_file`,
//!   `log_format`, unknown storage options);
//! * `.`/`..` segments and encoded slashes in request paths (curl
//!   `--path-as-is`);
//! * SIGTERM under load, on RocksDB and on raft storage: exit 0, storage
//!   closed, acknowledged writes kept;
//! * no listener timeouts or connection limit (slowloris).
//!
//! Time is asserted only as generous upper bounds (CI has two shared cores).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{arca_bin, free_port, run_with_timeout, try_http, Server};
use serde_json::json;

// ------------------------------------------------------------ helpers --

/// Kills the process on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA, a server certificate for 127.0.0.1, a client certificate from the
/// CA and a self-signed ("rogue") client certificate, all EC P-256.
fn make_pki(dir: &Path) {
    common::self_signed_cert(dir, "ca", "/CN=Arca Test CA");
    common::ca_issued_cert(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    common::ca_issued_cert(
        dir,
        "client",
        "/CN=arca-client",
        "extendedKeyUsage=clientAuth\n",
    );
    common::self_signed_cert(dir, "rogue", "/CN=arca-client");
}

/// Writes `arca.hcl` (RocksDB storage, one TLS listener with `listener`
/// extra lines) into `dir` and returns its path and the port.
fn tls_config(dir: &Path, listener: &str) -> (PathBuf, u16) {
    let port = free_port();
    let cfg = format!(
        r#"storage "rocksdb" {{
  path = "{data}"
}}
listener "tcp" {{
  address       = "127.0.0.1:{port}"
  tls_cert_file = "{dir}/server.pem"
  tls_key_file  = "{dir}/server.key"
{listener}
}}
"#,
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    let path = dir.join("arca.hcl");
    std::fs::write(&path, cfg).unwrap();
    (path, port)
}

fn spawn_server(dir: &Path, config: &Path) -> Kill {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Kill(
        Command::new(arca_bin())
            .args(["server", "-config"])
            .arg(config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start arca"),
    )
}

/// Starts a TLS server and waits until it accepts TCP connections.
fn start_tls(dir: &Path, listener: &str) -> (Kill, u16) {
    let (config, port) = tls_config(dir, listener);
    let mut server = spawn_server(dir, &config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = server.0.try_wait().unwrap() {
            panic!(
                "server exited ({st}): {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        assert!(Instant::now() < deadline, "server not listening");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `arca server -config FILE`, which must exit non-zero within 60 s;
/// returns its output.
fn refused_at_start(dir: &Path, config_text: &str) -> String {
    let config = dir.join("refused.hcl");
    std::fs::write(&config, config_text).unwrap();
    let mut c = Command::new(arca_bin());
    c.args(["server", "-config"]).arg(&config).current_dir(dir);
    let (code, out, err) = run_with_timeout(c, dir, Duration::from_secs(60)).unwrap();
    assert_ne!(code, 0, "the server must refuse to start:\n{out}\n{err}");
    format!("{out}{err}")
}

/// `openssl s_client` with `args`: (handshake completed, output).
fn s_client(dir: &Path, port: u16, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("openssl");
    c.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", "ca.pem", "-servername", "localhost"])
        .args(args)
        .current_dir(dir);
    let (code, out, err) = run_with_timeout(c, dir, Duration::from_secs(60)).unwrap();
    (code == 0, format!("{out}{err}"))
}

/// `curl` to `https://127.0.0.1:port/v1/sys/seal-status`: the HTTP status,
/// or `None` when no HTTP answer came (TLS refused).
fn curl_status(dir: &Path, port: u16, args: &[&str]) -> Option<u16> {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        "ca.pem",
    ])
    .args(args)
    .arg(format!("https://127.0.0.1:{port}/v1/sys/seal-status"))
    .current_dir(dir);
    let (code, out, _) = run_with_timeout(c, dir, Duration::from_secs(60)).unwrap();
    let status: u16 = out.trim().parse().unwrap_or(0);
    (code == 0 && status != 0).then_some(status)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("arca-security-")
        .tempdir()
        .unwrap()
}

// ------------------------------------------------------ listener TLS --

#[test]
fn tls_min_version_was_ignored() {
    let dir = tempdir();
    make_pki(dir.path());
    let (_s, port) = start_tls(dir.path(), "tls_min_version = \"tls13\"");
    let (ok12, out12) = s_client(dir.path(), port, &["-tls1_2"]);
    assert!(!ok12, "a TLS 1.2 handshake must be refused:\n{out12}");
    let (ok13, out13) = s_client(dir.path(), port, &["-tls1_3"]);
    assert!(ok13 && out13.contains("TLSv1.3"), "TLS 1.3 works:\n{out13}");
}

#[test]
fn tls_max_version_was_ignored() {
    let dir = tempdir();
    make_pki(dir.path());
    let (_s, port) = start_tls(dir.path(), "tls_max_version = \"tls12\"");
    let (ok13, out13) = s_client(dir.path(), port, &["-tls1_3"]);
    assert!(!ok13, "a TLS 1.3 handshake must be refused:\n{out13}");
    let (ok12, out12) = s_client(dir.path(), port, &["-tls1_2"]);
    assert!(ok12 && out12.contains("TLSv1.2"), "TLS 1.2 works:\n{out12}");
}

#[test]
fn tls_cipher_suites_were_ignored() {
    let dir = tempdir();
    make_pki(dir.path());
    let (_s, port) = start_tls(
        dir.path(),
        "tls_max_version = \"tls12\"\n  tls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\"",
    );
    let (ok, out) = s_client(
        dir.path(),
        port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(!ok, "a suite not listed must be refused:\n{out}");
    let (ok, out) = s_client(
        dir.path(),
        port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    assert!(
        ok && out.contains("ECDHE-ECDSA-AES256-GCM-SHA384"),
        "the listed suite works:\n{out}"
    );
}

#[test]
fn tls_cipher_suites_unsupported_name_was_accepted() {
    let dir = tempdir();
    make_pki(dir.path());
    let (config, _) = tls_config(
        dir.path(),
        "tls_cipher_suites = \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA\"",
    );
    let text = std::fs::read_to_string(config).unwrap();
    let out = refused_at_start(dir.path(), &text);
    assert!(
        out.contains("TLS_RSA_WITH_AES_128_CBC_SHA") && out.contains("not supported"),
        "the message names the suite: {out}"
    );
    let out = refused_at_start(
        dir.path(),
        &text.replace("TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_NO_SUCH_SUITE"),
    );
    assert!(out.contains("TLS_NO_SUCH_SUITE"), "{out}");
}

#[test]
fn tls_require_and_verify_client_cert_was_ignored() {
    let dir = tempdir();
    make_pki(dir.path());
    let ca = dir.path().join("ca.pem");
    let (_s, port) = start_tls(
        dir.path(),
        &format!(
            "tls_client_ca_file = \"{}\"\n  tls_require_and_verify_client_cert = true",
            ca.display()
        ),
    );
    assert_eq!(
        curl_status(dir.path(), port, &[]),
        None,
        "no client certificate: refused"
    );
    assert_eq!(
        curl_status(
            dir.path(),
            port,
            &["--cert", "rogue.pem", "--key", "rogue.key"]
        ),
        None,
        "a certificate the CA did not issue: refused"
    );
    assert_eq!(
        curl_status(
            dir.path(),
            port,
            &["--cert", "client.pem", "--key", "client.key"]
        ),
        Some(200),
        "a certificate from tls_client_ca_file's CA: served"
    );
    // Both TLS versions enforce it.
    assert_eq!(curl_status(dir.path(), port, &["--tls-max", "1.2"]), None);
    assert_eq!(
        curl_status(
            dir.path(),
            port,
            &[
                "--tls-max",
                "1.2",
                "--cert",
                "client.pem",
                "--key",
                "client.key"
            ]
        ),
        Some(200)
    );
}

#[test]
fn tls_client_certs_were_never_requested() {
    // Vault's default: ask for a client certificate, do not require it.
    let dir = tempdir();
    make_pki(dir.path());
    let (s, port) = start_tls(dir.path(), "");
    let (ok, out) = s_client(dir.path(), port, &["-tls1_2"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Client Certificate Types"),
        "the server asks for a client certificate:\n{out}"
    );
    assert_eq!(
        curl_status(dir.path(), port, &[]),
        Some(200),
        "not required"
    );
    assert_eq!(
        curl_status(
            dir.path(),
            port,
            &["--cert", "rogue.pem", "--key", "rogue.key"]
        ),
        Some(200),
        "any certificate is accepted (engines judge it)"
    );
    drop(s);

    // tls_disable_client_certs: not asked.
    let dir = tempdir();
    make_pki(dir.path());
    let (_s, port) = start_tls(dir.path(), "tls_disable_client_certs = true");
    let (ok, out) = s_client(dir.path(), port, &["-tls1_2"]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("Client Certificate Types"),
        "no certificate request:\n{out}"
    );
}

#[test]
fn tls_require_and_disable_client_certs_together_were_accepted() {
    let dir = tempdir();
    make_pki(dir.path());
    let (config, _) = tls_config(
        dir.path(),
        &format!(
            "tls_client_ca_file = \"{}\"\n  tls_require_and_verify_client_cert = true\n  tls_disable_client_certs = true",
            dir.path().join("ca.pem").display()
        ),
    );
    let out = refused_at_start(dir.path(), &std::fs::read_to_string(config).unwrap());
    assert!(
        out.contains("tls_disable_client_certs")
            && out.contains("tls_require_and_verify_client_cert"),
        "{out}"
    );
}

// ------------------------------------------ keys accepted, not implemented --

#[test]
fn unknown_storage_option_was_silently_ignored() {
    let dir = tempdir();
    let listener = "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = true\n}\n";
    let out = refused_at_start(
        dir.path(),
        &format!(
            "storage \"rocksdb\" {{\n  path = \"{}\"\n  max_open_files = 64\n}}\n{listener}",
            dir.path().join("data").display()
        ),
    );
    assert!(
        out.contains("max_open_files") && out.contains("unknown option"),
        "the message names the option: {out}"
    );
    let out = refused_at_start(
        dir.path(),
        &format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  autopilot_upgrade_version = \"1.0\"\n}}\n{listener}",
            dir.path().join("raft").display()
        ),
    );
    assert!(out.contains("autopilot_upgrade_version"), "{out}");
}

#[test]
fn pid_file_was_ignored() {
    let dir = tempdir();
    let pid_path = dir.path().join("arca.pid");
    let mut s = Server::start_rocksdb_with("", &format!("pid_file = \"{}\"", pid_path.display()));
    let written = std::fs::read_to_string(&pid_path)
        .unwrap_or_else(|e| panic!("pid_file not written ({e}); log:\n{}", s.log()));
    assert_eq!(written.trim(), s.pid().to_string());
    let status = s.terminate();
    assert!(status.success(), "{status}; log:\n{}", s.log());
    assert!(!pid_path.exists(), "pid_file removed at a clean exit");
}

#[test]
fn log_format_was_ignored() {
    let mut s = Server::start_rocksdb_with("", "log_format = \"json\"");
    let status = s.terminate();
    assert!(status.success(), "{status}");
    let log = s.log();
    let json_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("level").is_some())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|v| v["fields"]["message"].as_str() == Some("storage closed")),
        "log lines are JSON objects:\n{log}"
    );
}

// ------------------------------------------------------------- paths --

fn curl_raw(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut args = vec![
        "-s".to_string(),
        "--path-as-is".to_string(),
        "-w".to_string(),
        "\n%{http_code}".to_string(),
    ];
    if let Some(t) = token {
        args.push("-H".into());
        args.push(format!("X-Vault-Token: {t}"));
    }
    args.push(format!("{addr}{path}"));
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn dot_segments_and_encoded_slashes_were_routed() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let root = init.root_token.as_str();
    s.http_ok(
        "POST",
        "/v1/sys/mounts/secret",
        Some(root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    s.wait_kv2_ready("secret", root);
    s.http_ok(
        "POST",
        "/v1/secret/data/app/db",
        Some(root),
        Some(&json!({"data": {"password": "p"}})),
    );
    let (code, _) = curl_raw(&s.addr, "/v1/secret/data/app/db", Some(root));
    assert_eq!(code, 200, "the plain path is served");
    for path in [
        "/v1/secret/data/x/../app/db",
        "/v1/secret/data/./app/db",
        "/v1/secret/data/app/db/..",
        "/v1/secret/data/x/%2e%2e/app/db",
        "/v1/secret/data/x/.%2E/app/db",
        "/v1/secret/data/app%2Fdb",
        "/v1/secret/data%2fapp/db",
        "/v1/sys/../sys/health",
    ] {
        let (code, body) = curl_raw(&s.addr, path, Some(root));
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body.contains("\"errors\""),
            "{path}: Vault's error envelope: {body}"
        );
        assert!(body.contains("invalid request path"), "{path}: {body}");
    }
}

// ---------------------------------------------------------- shutdown --

#[test]
fn sigterm_under_load_aborted_instead_of_exiting_zero() {
    let mut s = Server::start();
    let init = s.init_and_unseal();
    let root = init.root_token.clone();
    s.http_ok(
        "POST",
        "/v1/sys/mounts/secret",
        Some(&root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    s.wait_kv2_ready("secret", &root);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (addr, root, acked, stop) =
                (s.addr.clone(), root.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let key = format!("load/w{w}-{n}");
                    let value = format!("v{w}-{n}");
                    match try_http(
                        &addr,
                        "POST",
                        &format!("/v1/secret/data/{key}"),
                        Some(&root),
                        Some(&json!({"data": {"v": value}})),
                    ) {
                        Ok((200, _)) => acked.lock().unwrap().push((key, value)),
                        // The server is going away: connection refused or reset.
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();
    // Let the load run until plenty of writes are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "the load makes no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = s.terminate();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let log = s.log();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM under load; log:\n{log}"
    );
    assert!(
        log.contains("storage closed"),
        "RocksDB is closed before the process exits; log:\n{log}"
    );
    let acked = acked.lock().unwrap().clone();
    s.start_again();
    s.unseal_with(&init.keys_b64[..3]);
    s.wait_kv2_ready("secret", &root);
    for (key, value) in &acked {
        let v = s.http_ok("GET", &format!("/v1/secret/data/{key}"), Some(&root), None);
        assert_eq!(v["data"]["data"]["v"], value.as_str(), "{key} kept");
    }
    assert!(s.terminate().success());
}

#[test]
fn raft_node_sigterm_did_not_close_storage() {
    let mut s = Server::start_raft("sigterm-1");
    let init = s.init_and_unseal();
    let root = init.root_token.clone();
    s.http_ok(
        "POST",
        "/v1/sys/mounts/kv",
        Some(&root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    s.wait_kv2_ready("kv", &root);
    for n in 0..20 {
        s.http_ok(
            "POST",
            &format!("/v1/kv/data/k{n}"),
            Some(&root),
            Some(&json!({"data": {"n": n}})),
        );
    }
    let status = s.terminate();
    let log = s.log();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("storage closed"), "log:\n{log}");
    s.start_again();
    s.unseal_with(&init.keys_b64[..3]);
    s.wait_kv2_ready("kv", &root);
    let v = s.http_ok("GET", "/v1/kv/data/k19", Some(&root), None);
    assert_eq!(v["data"]["data"]["n"], 19);
    assert!(s.terminate().success());
}

// --------------------------------------------------- timeouts, limits --

/// A connection the test writes to slowly; `closed` once the server hung up.
struct Slow {
    stream: TcpStream,
    closed: bool,
}

impl Slow {
    fn open(port: u16) -> Slow {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        Slow {
            stream,
            closed: false,
        }
    }

    /// Sends `byte` (if any) and notes whether the server closed the
    /// connection; returns what the server sent.
    fn poke(&mut self, byte: Option<u8>) -> Vec<u8> {
        if self.closed {
            return Vec::new();
        }
        if let Some(b) = byte {
            if self.stream.write_all(&[b]).is_err() {
                self.closed = true;
                return Vec::new();
            }
        }
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    return got;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return got
                }
                Err(_) => {
                    self.closed = true;
                    return got;
                }
            }
        }
    }
}

#[test]
fn slowloris_starved_other_clients_and_kept_connections_open() {
    let s = Server::start_rocksdb_with(
        "http_read_header_timeout = \"1s\"\nhttp_read_timeout = \"1s\"\nhttp_idle_timeout = \"2s\"",
        "",
    );
    let head = b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ";
    let opened = Instant::now();
    let mut slow: Vec<Slow> = (0..32).map(|_| Slow::open(s.port)).collect();
    // A request whose head is complete but whose body trickles in.
    let mut body = Slow::open(s.port);
    body.stream
        .write_all(
            b"POST /v1/sys/seal-status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let mut body_answer = Vec::new();
    // A keep-alive connection that makes one request and then stays idle.
    let mut idle = Slow::open(s.port);
    idle.stream
        .write_all(b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut idle_answer = Vec::new();
    let mut served = 0;
    let mut i = 0;
    // Bytes keep coming every 100 ms, so only the timeouts close these.
    while (slow.iter().any(|c| !c.closed) || !body.closed || !idle.closed)
        && opened.elapsed() < Duration::from_secs(20)
    {
        for c in slow.iter_mut() {
            c.poke(Some(head[i % head.len()]));
        }
        body_answer.extend(body.poke(Some(b' ')));
        idle_answer.extend(idle.poke(None));
        i += 1;
        if i % 5 == 0 {
            // Other clients are served meanwhile.
            let (status, _) = try_http(&s.addr, "GET", "/v1/sys/seal-status", None, None)
                .unwrap_or_else(|e| panic!("a normal client was not served: {e}"));
            assert_eq!(status, 200);
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed = slow.iter().filter(|c| c.closed).count();
    assert_eq!(
        closed,
        slow.len(),
        "slow request heads are cut by http_read_header_timeout (1s) within 20s"
    );
    assert!(served > 0);
    let body_answer = String::from_utf8_lossy(&body_answer);
    assert!(
        body.closed && body_answer.starts_with("HTTP/1.1 408"),
        "a trickling body gets 408 from http_read_timeout: {body_answer:?}"
    );
    let idle_answer = String::from_utf8_lossy(&idle_answer);
    assert!(
        idle.closed && idle_answer.starts_with("HTTP/1.1 200"),
        "an idle keep-alive connection is closed by http_idle_timeout: {idle_answer:?}"
    );
    // Still serving afterwards.
    let (status, _) = try_http(&s.addr, "GET", "/v1/sys/seal-status", None, None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn connections_were_unlimited() {
    let s = Server::start_rocksdb_with("max_connections = 2", "");
    // Two silent connections hold both slots (the head timeout is 10s).
    let mut held: Vec<Slow> = (0..2).map(|_| Slow::open(s.port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let waiting = std::thread::spawn({
        let addr = s.addr.clone();
        move || try_http(&addr, "GET", "/v1/sys/seal-status", None, None)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !waiting.is_finished(),
        "a third client waits while max_connections are open"
    );
    for c in held.iter_mut() {
        c.stream.shutdown(std::net::Shutdown::Both).unwrap();
    }
    drop(held);
    let (status, _) = waiting.join().unwrap().expect("served once a slot is free");
    assert_eq!(status, 200);
}
