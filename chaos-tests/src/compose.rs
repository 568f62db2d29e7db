//! Helpers for the docker-compose scenarios (`tests/compose*.rs`): the
//! `docker-compose` project of one deployment directory, the `bao` CLI
//! against a published port, `sys/health` by curl, and waiting with the
//! deployment's logs on a timeout.
//!
//! Invariants: every command's output is captured (a missing tool fails
//! with a hint, never skips); [`Project::down_on_drop`] tears the project
//! and its volumes down even when the test panics; the images hold the
//! binary this test run built ([`build_images`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `cmd`, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {desc}: {e} (docker, docker-compose and bao are needed)")
    })
}

/// The stdout of a command that must succeed.
#[track_caller]
pub fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The `bao` CLI against `127.0.0.1:port`, with `token` (or none).
pub fn bao(port: u16, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into()));
    c.env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env("BAO_CLIENT_TIMEOUT", "20s")
        .args(args);
    if let Some(t) = token {
        c.env("BAO_TOKEN", t);
    }
    run(&mut c)
}

/// The status `sys/health` answers on `port` (0: no answer).
pub fn health(port: u16, query: &str) -> u16 {
    let out = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "2",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}/v1/sys/health{query}"),
    ]));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Builds `arca:local` (with the `arca` binary next to `bin`'s target
/// directory) and `arca-lb:local`.
pub fn build_images(bin: &Path) {
    let target = bin.parent().and_then(Path::parent).expect("target dir");
    ok(
        run(Command::new("bash")
            .arg(repo().join("deploy/build-image.sh"))
            .env("CARGO_TARGET_DIR", target)),
        "deploy/build-image.sh",
    );
    ok(
        run(Command::new("bash").arg(repo().join("deploy/build-lb-image.sh"))),
        "deploy/build-lb-image.sh",
    );
}

/// One docker-compose project: a name and a compose file of the repo.
pub struct Project {
    pub name: &'static str,
    pub file: &'static str,
    /// Variables the compose file interpolates.
    pub env: Vec<(String, String)>,
}

impl Project {
    /// `docker-compose -p NAME -f FILE ARGS...`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new("docker-compose");
        c.arg("-p")
            .arg(self.name)
            .arg("-f")
            .arg(repo().join(self.file))
            .args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        run(&mut c)
    }

    /// Waits until `f` holds; on a timeout, fails with the project's logs.
    pub fn wait(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        while !f() {
            if t0.elapsed() > timeout {
                let logs = self.cmd(&["logs", "--tail", "30"]);
                panic!(
                    "timed out waiting for {what}; logs:\n{}",
                    String::from_utf8_lossy(&logs.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        t0.elapsed()
    }

    /// Tears the project down (volumes too) now and when the guard drops.
    pub fn down_on_drop(&self) -> Down<'_> {
        let _ = self.cmd(&["down", "-v", "--timeout", "2"]);
        Down(self)
    }
}

/// See [`Project::down_on_drop`].
pub struct Down<'a>(&'a Project);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.cmd(&["down", "-v", "--timeout", "2"]);
    }
}
