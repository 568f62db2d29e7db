//! `arca-bench`: the same KV v2 load against `arca server -dev` and
//! `bao server -dev` (OpenBao), one after the other, on this machine
//! (`kv`), or against a raft cluster of each (`cluster`, see `cluster.rs`);
//! `pki` benchmarks the PKI engine of both dev servers instead (`pki.rs`),
//! `leases` a seal and unseal with many leases (`leases.rs`), `logins` auth
//! methods and tokens on a dev server or a cluster (`logins.rs`), `expire`
//! the expiration manager with many tokens due at once (`expire.rs`),
//! `transit` the transit engine on a dev server or a cluster
//! (`transit.rs`), `database` the database engine's dynamic PostgreSQL
//! credentials on a dev server or a cluster (`database.rs`), `quotas` a
//! rate limit quota under load: a client over its quota and one under it,
//! from two loopback addresses (`quotas.rs`).
//!
//! ```text
//! arca-bench kv [--servers arca,openbao] [--concurrency 32] [--duration 10s]
//!               [--payload-bytes 64] [--keys 1000] [--client-threads 1]
//!               [--arca-bin PATH] [--bao-bin bao] [--out-dir DIR]
//! arca-bench cluster [--nodes 3] [same flags, no --arca-port/--bao-port]
//! arca-bench pki [--servers ..] [--concurrency 16] [--duration 10s]
//!                [--revoked 100000] [--arca-bin ..] [--bao-bin ..] [--out-dir ..]
//! arca-bench leases [--servers ..] [--leases 10000,100000] [--concurrency 32]
//! arca-bench logins [--nodes 1] [--servers ..] [--concurrency 16] [--duration 10s]
//! arca-bench expire [--servers ..] [--leases 10000,100000] [--concurrency 32]
//!                   [--timeout 15m]
//! arca-bench transit [--nodes 1] [--servers ..] [--concurrency 32] [--duration 10s]
//! arca-bench database [--nodes 1] [--servers ..] [--concurrency 16] [--duration 10s]
//!                     [--db-connections 4] [--statements group|tutorial]
//! arca-bench quotas [--servers ..] [--concurrency 32] [--duration 10s]
//!                   [--quota-rate 500] [--polite-rate 250] [--polite-connections 4]
//!                   [--block-interval 0]
//! ```
//!
//! For each server: start it in dev mode on its own loopback port, wait for
//! `sys/health` and for `secret/` to accept writes, then
//! 1. write phase: `--concurrency` keep-alive HTTP/1.1 connections, each in
//!    a loop `PUT /v1/secret/data/bench-<n mod keys>`
//!    (`{"data":{"value":..,"n":..}}`, n from one shared counter) for
//!    `--duration`; with a fixed key space both servers end up holding the
//!    same data (KV v2 keeps at most 10 versions per key), so their memory
//!    compares like for like (`--keys 0`: a new key per write);
//! 2. read phase: the same connections `GET /v1/secret/data/bench-<k>` with
//!    k uniformly random among the keys written, for `--duration`.
//!
//! Latency is measured per request (send to last body byte). The server's
//! VmHWM/VmRSS (`/proc/<pid>/status`) is sampled every 100 ms, and its CPU
//! time (`/proc/<pid>/stat`) is read around each phase. Results: a markdown
//! table on stdout, `kv-latest.json` / `kv-latest.md` (and a timestamped
//! JSON copy) in `--out-dir` (default `$CARGO_TARGET_DIR/arca-bench`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};

mod cluster;
mod database;
mod expire;
mod leases;
mod logins;
mod pki;
mod quotas;
mod transit;

const ROOT_TOKEN: &str = "arca-bench-root";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One dev server per kind.
    Kv,
    /// A raft cluster of `nodes` servers per kind.
    Cluster,
    /// The PKI engine of one dev server per kind.
    Pki,
    /// Sealing and unsealing one node holding many leases.
    Leases,
    /// Logins (approle, userpass) and token lookups/renewals.
    Logins,
    /// The expiration manager revoking many tokens due at the same second.
    Expire,
    /// The transit engine (encrypt, decrypt, batch, sign, verify, hmac).
    Transit,
    /// The database engine: dynamic PostgreSQL users, created and revoked.
    Database,
    /// A rate limit quota under load: a client over it, one under it.
    Quotas,
}

#[derive(Clone, Debug)]
struct Config {
    mode: Mode,
    servers: Vec<ServerKind>,
    concurrency: usize,
    duration: Duration,
    payload_bytes: usize,
    /// Distinct keys the write phase cycles over (0: a new key per write).
    keys: u64,
    client_threads: usize,
    /// Cluster, logins and transit modes: nodes per cluster (logins and
    /// transit: 1, a dev server).
    nodes: usize,
    /// PKI mode: revoked certificates to populate.
    revoked: u64,
    /// Leases and expire modes: lease counts to measure.
    leases: Vec<u64>,
    /// Expire mode: how long after the due second to wait for the last
    /// revocation.
    expire_timeout: Duration,
    /// Database mode: `max_open_connections` of the connection (both
    /// servers).
    db_connections: u32,
    /// Database mode: the role's statements, `group` (membership in a
    /// group role) or `tutorial` (Vault's tutorial: GRANT on the tables).
    db_statements: String,
    /// KV mode: enable a file audit device on each server before the load.
    audit: bool,
    /// Quotas mode: the quota's `rate` (requests per second, interval 1s).
    quota_rate: f64,
    /// Quotas mode: the polite client's paced rate, all its connections
    /// together (`None`: half the quota's rate).
    polite_rate: Option<f64>,
    /// Quotas mode: connections of the polite client.
    polite_connections: usize,
    /// Quotas mode: the quota's `block_interval`, seconds (0: none).
    block_interval: u64,
    arca_bin: Option<PathBuf>,
    bao_bin: String,
    /// `None`: a free loopback port.
    arca_port: Option<u16>,
    bao_port: Option<u16>,
    out_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ServerKind {
    Arca,
    OpenBao,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Arca => "arca",
            ServerKind::OpenBao => "openbao",
        }
    }
}

const USAGE: &str = "usage: arca-bench kv [--servers arca,openbao] [--concurrency 32] \
[--duration 10s] [--payload-bytes 64] [--keys 1000] [--client-threads 1] [--audit] [--arca-bin PATH] \
[--bao-bin bao] [--arca-port PORT] [--bao-port PORT] [--out-dir DIR]
       arca-bench cluster [--nodes 3] [--servers arca,openbao] [--concurrency 32] \
[--duration 10s] [--payload-bytes 64] [--keys 1000] [--client-threads 1] [--arca-bin PATH] \
[--bao-bin bao] [--out-dir DIR]
       arca-bench pki [--servers arca,openbao] [--concurrency 16] [--duration 10s] \
[--revoked 100000] [--client-threads 1] [--arca-bin PATH] [--bao-bin bao] [--arca-port PORT] \
[--bao-port PORT] [--out-dir DIR]
       arca-bench leases [--servers arca,openbao] [--leases 10000,100000] [--concurrency 32] \
[--arca-bin PATH] [--bao-bin bao] [--out-dir DIR]
       arca-bench logins [--nodes 1] [--servers arca,openbao] [--concurrency 16] \
[--duration 10s] [--arca-bin PATH] [--bao-bin bao] [--out-dir DIR]
       arca-bench expire [--servers arca,openbao] [--leases 10000,100000] [--concurrency 32] \
[--timeout 15m] [--arca-bin PATH] [--bao-bin bao] [--out-dir DIR]
       arca-bench transit [--nodes 1] [--servers arca,openbao] [--concurrency 32] \
[--duration 10s] [--arca-bin PATH] [--bao-bin bao] [--out-dir DIR]
       arca-bench database [--nodes 1] [--servers arca,openbao] [--concurrency 16] \
[--duration 10s] [--db-connections 4] [--statements group|tutorial] [--arca-bin PATH] [--bao-bin bao] [--out-dir DIR]
       arca-bench quotas [--servers arca,openbao] [--concurrency 32] [--duration 10s] \
[--quota-rate 500] [--polite-rate 250] [--polite-connections 4] [--block-interval 0] \
[--arca-bin PATH] [--bao-bin bao] [--arca-port PORT] [--bao-port PORT] [--out-dir DIR]";

/// `10s`, `500ms`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow!("bad duration {s:?} (use e.g. 10s, 500ms, 2m)"))?;
    if v.is_nan() || v <= 0.0 {
        bail!("duration must be positive: {s:?}");
    }
    Ok(Duration::from_micros((v * mult_ms * 1000.0) as u64))
}

fn parse_args(args: &[String]) -> Result<Config> {
    let mut it = args.iter();
    let mode = match it.next().map(String::as_str) {
        Some("kv") => Mode::Kv,
        Some("cluster") => Mode::Cluster,
        Some("pki") => Mode::Pki,
        Some("leases") => Mode::Leases,
        Some("logins") => Mode::Logins,
        Some("expire") => Mode::Expire,
        Some("transit") => Mode::Transit,
        Some("database") => Mode::Database,
        Some("quotas") => Mode::Quotas,
        Some("-h") | Some("--help") | None => bail!("{USAGE}"),
        Some(other) => bail!("unknown benchmark {other:?}\n{USAGE}"),
    };
    let mut c = Config {
        mode,
        servers: vec![ServerKind::Arca, ServerKind::OpenBao],
        concurrency: if matches!(mode, Mode::Pki | Mode::Logins | Mode::Database) {
            16
        } else {
            32
        },
        duration: Duration::from_secs(10),
        payload_bytes: 64,
        keys: 1000,
        client_threads: 1,
        nodes: if mode == Mode::Cluster { 3 } else { 1 },
        revoked: 100_000,
        leases: vec![10_000, 100_000],
        expire_timeout: Duration::from_secs(900),
        db_connections: 4,
        db_statements: "group".into(),
        audit: false,
        quota_rate: 500.0,
        polite_rate: None,
        polite_connections: 4,
        block_interval: 0,
        arca_bin: std::env::var_os("ARCA_BIN").map(PathBuf::from),
        bao_bin: std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into()),
        arca_port: None,
        bao_port: None,
        out_dir: None,
    };
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}")),
            }
        };
        match name.as_str() {
            "--servers" => {
                let mut v = Vec::new();
                for s in value()?.split(',') {
                    v.push(match s.trim() {
                        "arca" => ServerKind::Arca,
                        "openbao" | "bao" => ServerKind::OpenBao,
                        other => bail!("unknown server {other:?} (arca, openbao)"),
                    });
                }
                v.sort();
                v.dedup();
                if v.is_empty() {
                    bail!("--servers is empty");
                }
                c.servers = v;
            }
            "--concurrency" | "-c" => c.concurrency = value()?.parse().context("--concurrency")?,
            "--duration" | "-d" => c.duration = parse_duration(&value()?)?,
            "--payload-bytes" | "--keys"
                if matches!(
                    mode,
                    Mode::Pki | Mode::Transit | Mode::Database | Mode::Quotas
                ) =>
            {
                bail!("{name} is for `arca-bench kv` and `cluster`")
            }
            "--payload-bytes" => c.payload_bytes = value()?.parse().context("--payload-bytes")?,
            "--keys" => c.keys = value()?.parse().context("--keys")?,
            "--client-threads" => {
                c.client_threads = value()?.parse().context("--client-threads")?
            }
            "--nodes"
                if matches!(
                    mode,
                    Mode::Cluster | Mode::Logins | Mode::Transit | Mode::Database
                ) =>
            {
                c.nodes = value()?.parse().context("--nodes")?
            }
            "--statements" if mode == Mode::Database => {
                c.db_statements = value()?;
                if !matches!(c.db_statements.as_str(), "group" | "tutorial") {
                    bail!("--statements is group or tutorial");
                }
            }
            "--db-connections" if mode == Mode::Database => {
                c.db_connections = value()?.parse().context("--db-connections")?;
                if c.db_connections == 0 {
                    bail!("--db-connections must be at least 1");
                }
            }
            "--revoked" if mode == Mode::Pki => {
                c.revoked = value()?.parse().context("--revoked")?
            }
            "--leases" if matches!(mode, Mode::Leases | Mode::Expire) => {
                c.leases = value()?
                    .split(',')
                    .map(|v| v.trim().parse::<u64>().context("--leases"))
                    .collect::<Result<_>>()?;
            }
            "--quota-rate" if mode == Mode::Quotas => {
                c.quota_rate = value()?.parse().context("--quota-rate")?
            }
            "--polite-rate" if mode == Mode::Quotas => {
                c.polite_rate = Some(value()?.parse().context("--polite-rate")?)
            }
            "--polite-connections" if mode == Mode::Quotas => {
                c.polite_connections = value()?.parse().context("--polite-connections")?
            }
            "--block-interval" if mode == Mode::Quotas => {
                let v = value()?;
                c.block_interval = if v.trim() == "0" {
                    0
                } else {
                    let d = parse_duration(&v)?;
                    if d.subsec_nanos() != 0 {
                        bail!("--block-interval is whole seconds");
                    }
                    d.as_secs()
                };
            }
            "--timeout" if mode == Mode::Expire => c.expire_timeout = parse_duration(&value()?)?,
            "--arca-port" | "--bao-port"
                if matches!(mode, Mode::Cluster | Mode::Leases | Mode::Expire) =>
            {
                bail!("{name} is for `arca-bench kv` (cluster nodes get free ports)")
            }
            "--audit" if mode == Mode::Kv && inline.is_none() => c.audit = true,
            "--arca-bin" => c.arca_bin = Some(PathBuf::from(value()?)),
            "--bao-bin" => c.bao_bin = value()?,
            "--arca-port" => c.arca_port = Some(value()?.parse().context("--arca-port")?),
            "--bao-port" => c.bao_port = Some(value()?.parse().context("--bao-port")?),
            "--out-dir" => c.out_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if c.concurrency == 0 || c.client_threads == 0 || c.nodes == 0 {
        bail!("--concurrency, --client-threads and --nodes must be at least 1");
    }
    if c.nodes > 1 && (c.arca_port.is_some() || c.bao_port.is_some()) {
        bail!("--arca-port and --bao-port are for one server (cluster nodes get free ports)");
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(c.quota_rate) || !c.polite_rate.is_none_or(positive) {
        bail!("--quota-rate and --polite-rate must be positive");
    }
    if c.polite_connections == 0 {
        bail!("--polite-connections must be at least 1");
    }
    if c.leases.is_empty() || c.leases.contains(&0) {
        bail!("--leases takes counts of at least 1");
    }
    Ok(c)
}

/// The `arca` binary: `--arca-bin`/`$ARCA_BIN`, else next to this binary
/// (same target directory), else `arca` on PATH.
fn arca_bin(c: &Config) -> PathBuf {
    if let Some(p) = &c.arca_bin {
        return p.clone();
    }
    if let Ok(me) = std::env::current_exe() {
        let sibling = me.with_file_name("arca");
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("arca")
}

fn default_out_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("arca-bench");
    }
    // <target>/release/arca-bench -> <target>/arca-bench
    if let Ok(me) = std::env::current_exe() {
        if let Some(target) = me.parent().and_then(Path::parent) {
            return target.join("arca-bench");
        }
    }
    PathBuf::from("arca-bench-results")
}

// ---------------------------------------------------------------- /proc --

/// A `kB` field of `/proc/<pid>/status` (VmHWM, VmRSS), in KiB.
fn proc_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn read_mem(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((proc_status_kib(&s, "VmHWM")?, proc_status_kib(&s, "VmRSS")?))
}

/// utime + stime of `/proc/<pid>/stat`, in clock ticks.
fn parse_proc_stat_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ")": state(0) ppid(1) ... utime is field 14 overall => index 11.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_proc_stat_ticks(&s)? as f64 / ticks)
}

/// Samples VmHWM/VmRSS every 100 ms until stopped.
struct MemSampler {
    stop: Arc<AtomicBool>,
    peak_hwm: Arc<AtomicU64>,
    peak_rss: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl MemSampler {
    fn start(pid: u32) -> MemSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_hwm = Arc::new(AtomicU64::new(0));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let (s, h, r) = (stop.clone(), peak_hwm.clone(), peak_rss.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some((hwm, rss)) = read_mem(pid) {
                    h.fetch_max(hwm, Ordering::Relaxed);
                    r.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        MemSampler {
            stop,
            peak_hwm,
            peak_rss,
            handle: Some(handle),
        }
    }

    /// (peak VmHWM, peak sampled VmRSS) so far, KiB.
    fn peaks(&self) -> (u64, u64) {
        (
            self.peak_hwm.load(Ordering::Relaxed),
            self.peak_rss.load(Ordering::Relaxed),
        )
    }

    fn finish(mut self, pid: u32) -> (u64, u64) {
        if let Some((hwm, rss)) = read_mem(pid) {
            self.peak_hwm.fetch_max(hwm, Ordering::Relaxed);
            self.peak_rss.fetch_max(rss, Ordering::Relaxed);
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peaks()
    }
}

impl Drop for MemSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------- servers --

struct ServerProc {
    kind: ServerKind,
    child: Child,
    addr: String,
    log: PathBuf,
}

impl ServerProc {
    fn start(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<ServerProc> {
        let fixed = match kind {
            ServerKind::Arca => cfg.arca_port,
            ServerKind::OpenBao => cfg.bao_port,
        };
        let port = match fixed {
            Some(p) => {
                if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                    bail!("port {p} for {} is in use", kind.name());
                }
                p
            }
            None => free_port_pair()?,
        };
        let program: PathBuf = match kind {
            ServerKind::Arca => arca_bin(cfg),
            ServerKind::OpenBao => PathBuf::from(&cfg.bao_bin),
        };
        let mut args = vec![
            "server".to_string(),
            "-dev".to_string(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if cfg.audit && kind == ServerKind::OpenBao {
            // OpenBao 2.x refuses audit devices enabled through the API
            // unless its configuration allows it; the same API call then
            // enables the same device on both servers.
            let extra = out_dir.join("openbao-audit.hcl");
            std::fs::write(&extra, "unsafe_allow_api_audit_creation = true\n")
                .with_context(|| format!("write {}", extra.display()))?;
            args.push(format!("-config={}", extra.display()));
        }
        ServerProc::spawn(
            kind,
            &program,
            &args,
            None,
            format!("127.0.0.1:{port}"),
            out_dir.join(format!("{}-server.log", kind.name())),
        )
    }

    /// Starts `program args...` (in `cwd` if given) with stdout and stderr
    /// going to `log`; `addr` is where its API listens.
    fn spawn(
        kind: ServerKind,
        program: &Path,
        args: &[String],
        cwd: Option<&Path>,
        addr: String,
        log: PathBuf,
    ) -> Result<ServerProc> {
        let f = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} server ({})",
                kind.name(),
                program.display()
            )
        })?;
        Ok(ServerProc {
            kind,
            child,
            addr,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM without waiting.
    fn terminate(&self) {
        // The shell's builtin `kill` (no procps needed).
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {} 2>/dev/null", self.child.id()))
            .status();
    }

    /// SIGTERM, then SIGKILL after 15 s; waits for the exit.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free loopback port whose successor is free too (dev servers may open a
/// cluster listener on port + 1).
fn free_port_pair() -> Result<u16> {
    for _ in 0..100 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free loopback port pair")
}

// ---------------------------------------------------------------- HTTP --

type Conn = http1::SendRequest<Full<Bytes>>;

/// Where requests go and how: a server's API address, the token (empty:
/// none), and whether reads ask Arca for a local read
/// (`X-Arca-Consistency: stale`).
#[derive(Clone, Debug)]
struct Target {
    addr: String,
    token: String,
    stale: bool,
}

impl Target {
    /// A dev server started with the benchmark's root token.
    fn dev(addr: &str) -> Target {
        Target {
            addr: addr.to_string(),
            token: ROOT_TOKEN.to_string(),
            stale: false,
        }
    }
}

async fn connect(addr: &str) -> Result<Conn> {
    connect_from(addr, None).await
}

/// A connection to `addr` from the local address `source` (any port), or
/// from wherever the kernel picks when `None`. On Linux any 127/8 address
/// is a valid source towards a loopback server, which gives a benchmark
/// distinct clients as a server counting per client address sees them.
async fn connect_from(addr: &str, source: Option<IpAddr>) -> Result<Conn> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let peer = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| anyhow!("{addr}: no address"))?;
            let socket = match peer {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("bind {ip}"))?;
            socket.connect(peer).await?
        }
    };
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on an existing connection; returns (status, body).
async fn send(
    conn: &mut Conn,
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<(u16, Bytes)> {
    conn.ready().await?;
    // Like the bao CLI: token header, X-Vault-Request, no Content-Type.
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &target.addr)
        .header("X-Vault-Request", "true");
    if !target.token.is_empty() {
        req = req.header("X-Vault-Token", &target.token);
    }
    if target.stale {
        req = req.header("X-Arca-Consistency", "stale");
    }
    let req = req.body(Full::new(body.unwrap_or_default()))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One-off request on a fresh connection (setup and probes).
async fn once(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<(u16, Bytes)> {
    let mut c = connect(&target.addr).await?;
    send(&mut c, target, method, path, body).await
}

async fn wait_ready(server: &mut ServerProc) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let target = Target::dev(&server.addr);
    loop {
        if let Some(st) = server.child.try_wait()? {
            bail!(
                "{} server exited during start-up ({st}); see {}",
                server.kind.name(),
                server.log.display()
            );
        }
        if let Ok((200, body)) = once(&target, Method::GET, "/v1/sys/health", None).await {
            // The KV v2 mount at secret/ may still be upgrading: wait until a
            // write goes through.
            let probe = Bytes::from_static(br#"{"data":{"probe":"1"}}"#);
            if let Ok((200 | 204, _)) = once(
                &target,
                Method::PUT,
                "/v1/secret/data/bench-probe",
                Some(probe),
            )
            .await
            {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                return Ok(v["version"].as_str().unwrap_or("?").to_string());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} server not ready on {} after 60 s; see {}",
                server.kind.name(),
                server.addr,
                server.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--audit`: a file audit device (`sys/audit/bench`) writing to
/// `<out-dir>/<server>-audit.log`, the same request on both servers.
async fn enable_audit(kind: ServerKind, addr: &str, out_dir: &Path) -> Result<()> {
    let log = out_dir.join(format!("{}-audit.log", kind.name()));
    let _ = std::fs::remove_file(&log);
    let body = json!({ "type": "file", "options": { "file_path": log } }).to_string();
    let target = Target::dev(addr);
    match once(
        &target,
        Method::PUT,
        "/v1/sys/audit/bench",
        Some(Bytes::from(body)),
    )
    .await?
    {
        (200 | 204, _) => {
            eprintln!(
                "[{}] audit: file device writing {}",
                kind.name(),
                log.display()
            );
            Ok(())
        }
        (status, body) => bail!(
            "{}: enabling the audit device failed ({status}): {}",
            kind.name(),
            String::from_utf8_lossy(&body)
        ),
    }
}

// --------------------------------------------------------------- load --

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Write,
    Read,
}

#[derive(Debug, Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Tiny xorshift PRNG: deterministic per worker, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn payload(n: u64, value_len: usize) -> Bytes {
    let mut value = String::with_capacity(value_len);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = XorShift(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for _ in 0..value_len {
        value.push(alphabet[(r.next() % alphabet.len() as u64) as usize] as char);
    }
    Bytes::from(json!({"data": {"value": value, "n": n}}).to_string())
}

/// What one load worker does: the phase, until when, and the key space.
#[derive(Clone, Copy)]
struct Work {
    phase: Phase,
    deadline: Instant,
    /// Keys available to the read phase.
    written: u64,
    payload_bytes: usize,
    /// Keys the write phase cycles over (0: a new key per write).
    key_space: u64,
}

async fn worker(id: usize, target: Target, work: Work, counter: Arc<AtomicU64>) -> WorkerResult {
    let Work {
        phase,
        deadline,
        written,
        payload_bytes,
        key_space,
    } = work;
    let mut res = WorkerResult {
        latencies_us: Vec::with_capacity(1 << 16),
        ..Default::default()
    };
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ ((id as u64 + 1) << 32));
    let mut conn: Option<Conn> = None;
    while Instant::now() < deadline {
        if conn.is_none() {
            match connect(&target.addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    res.errors += 1;
                    res.first_error
                        .get_or_insert_with(|| format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().unwrap();
        let (method, path, body) = match phase {
            Phase::Write => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let k = if key_space > 0 { n % key_space } else { n };
                (
                    Method::PUT,
                    format!("/v1/secret/data/bench-{k}"),
                    Some(payload(n, payload_bytes)),
                )
            }
            Phase::Read => {
                let k = rng.next() % written.max(1);
                (Method::GET, format!("/v1/secret/data/bench-{k}"), None)
            }
        };
        let t0 = Instant::now();
        let r = send(c, &target, method, &path, body).await;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        match r {
            Ok((200 | 204, _)) => res.latencies_us.push(us),
            Ok((status, body)) => {
                res.errors += 1;
                res.first_error.get_or_insert_with(|| {
                    format!("{path}: HTTP {status} {}", String::from_utf8_lossy(&body))
                });
            }
            Err(e) => {
                res.errors += 1;
                res.first_error
                    .get_or_insert_with(|| format!("{path}: {e}"));
                conn = None;
            }
        }
    }
    res
}

#[derive(Clone, Debug)]
struct PhaseResult {
    phase: Phase,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    p50_us: u32,
    p90_us: u32,
    p99_us: u32,
    max_us: u32,
    mean_us: f64,
    server_cpu_s: Option<f64>,
    peak_hwm_kib: u64,
    peak_rss_kib: u64,
}

impl PhaseResult {
    fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn to_json(&self) -> Value {
        json!({
            "requests_ok": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": round(self.elapsed.as_secs_f64(), 3),
            "throughput_rps": round(self.throughput(), 1),
            "latency_us": {
                "p50": self.p50_us, "p90": self.p90_us, "p99": self.p99_us,
                "max": self.max_us, "mean": round(self.mean_us, 1),
            },
            "server_cpu_s": self.server_cpu_s.map(|v| round(v, 2)),
            "requests_per_server_cpu_s": self.server_cpu_s
                .filter(|c| *c > 0.0)
                .map(|c| round(self.ok as f64 / c, 1)),
            "peak_vmhwm_kib": self.peak_hwm_kib,
            "peak_vmrss_kib": self.peak_rss_kib,
        })
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

/// Nearest-rank percentile of a sorted slice (q in 0..=100).
fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A server process whose CPU time and memory a phase accounts for.
struct Watched<'a> {
    pid: u32,
    sampler: &'a MemSampler,
}

/// CPU seconds of all `watched` processes together (None if one is unreadable).
fn cpu_sum(watched: &[Watched<'_>], ticks: f64) -> Option<f64> {
    watched.iter().map(|w| cpu_seconds(w.pid, ticks)).sum()
}

/// One phase: `cfg.concurrency` connections, connection `i` to
/// `targets[i % targets.len()]`. CPU and peak memory are summed over
/// `watched` (one process for a single server, every node of a cluster).
async fn run_phase(
    cfg: &Config,
    targets: &[Target],
    watched: &[Watched<'_>],
    phase: Phase,
    written: u64,
    counter: Arc<AtomicU64>,
    ticks: f64,
) -> PhaseResult {
    let cpu0 = cpu_sum(watched, ticks);
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut handles = Vec::new();
    for id in 0..cfg.concurrency {
        let work = Work {
            phase,
            deadline,
            written,
            payload_bytes: cfg.payload_bytes,
            key_space: cfg.keys,
        };
        handles.push(tokio::spawn(worker(
            id,
            targets[id % targets.len()].clone(),
            work,
            counter.clone(),
        )));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for h in handles {
        let r = h.await.expect("worker panicked");
        all.extend_from_slice(&r.latencies_us);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let elapsed = start.elapsed();
    let cpu1 = cpu_sum(watched, ticks);
    all.sort_unstable();
    let mean = if all.is_empty() {
        0.0
    } else {
        all.iter().map(|&v| v as f64).sum::<f64>() / all.len() as f64
    };
    // Per process: the larger of the sampled peak and a last reading; summed.
    let (mut hwm, mut rss) = (0, 0);
    for w in watched {
        let (h, r) = w.sampler.peaks();
        let (h_now, r_now) = read_mem(w.pid).unwrap_or((0, 0));
        hwm += h.max(h_now);
        rss += r.max(r_now);
    }
    PhaseResult {
        phase,
        ok: all.len() as u64,
        errors,
        first_error,
        elapsed,
        p50_us: percentile(&all, 50.0),
        p90_us: percentile(&all, 90.0),
        p99_us: percentile(&all, 99.0),
        max_us: all.last().copied().unwrap_or(0),
        mean_us: mean,
        server_cpu_s: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
        peak_hwm_kib: hwm,
        peak_rss_kib: rss,
    }
}

struct ServerResult {
    kind: ServerKind,
    version: String,
    idle_rss_kib: u64,
    write: PhaseResult,
    read: PhaseResult,
    peak_hwm_kib: u64,
}

impl ServerResult {
    fn to_json(&self) -> Value {
        json!({
            "version": self.version,
            "idle_vmrss_kib": self.idle_rss_kib,
            "peak_vmhwm_kib": self.peak_hwm_kib,
            "write": self.write.to_json(),
            "read": self.read.to_json(),
        })
    }
}

async fn bench_server(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<ServerResult> {
    let mut server = ServerProc::start(kind, cfg, out_dir)?;
    eprintln!(
        "[{}] started pid {} on {} (log {})",
        kind.name(),
        server.pid(),
        server.addr,
        server.log.display()
    );
    let version = match wait_ready(&mut server).await {
        Ok(v) => v,
        Err(e) => {
            server.stop();
            return Err(e);
        }
    };
    if cfg.audit {
        if let Err(e) = enable_audit(kind, &server.addr, out_dir).await {
            server.stop();
            return Err(e);
        }
    }
    let ticks = clock_ticks_per_sec();
    // Let start-up settle before the idle reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = read_mem(server.pid()).map(|m| m.1).unwrap_or(0);
    let sampler = MemSampler::start(server.pid());

    eprintln!(
        "[{}] write phase: {} connections, {:?}",
        kind.name(),
        cfg.concurrency,
        cfg.duration
    );
    let counter = Arc::new(AtomicU64::new(0));
    let targets = [Target::dev(&server.addr)];
    let watched = [Watched {
        pid: server.pid(),
        sampler: &sampler,
    }];
    let write = run_phase(
        cfg,
        &targets,
        &watched,
        Phase::Write,
        0,
        counter.clone(),
        ticks,
    )
    .await;
    // Keys 0..issued were attempted; the read phase draws from them.
    let written = match cfg.keys {
        0 => counter.load(Ordering::Relaxed),
        k => counter.load(Ordering::Relaxed).min(k),
    };
    eprintln!(
        "[{}]   {} ok, {} errors, {:.0} req/s",
        kind.name(),
        write.ok,
        write.errors,
        write.throughput()
    );
    eprintln!("[{}] read phase over {} keys", kind.name(), written);
    let read = run_phase(
        cfg,
        &targets,
        &watched,
        Phase::Read,
        written,
        counter,
        ticks,
    )
    .await;
    eprintln!(
        "[{}]   {} ok, {} errors, {:.0} req/s",
        kind.name(),
        read.ok,
        read.errors,
        read.throughput()
    );
    let (hwm, _) = sampler.finish(server.pid());
    server.stop();
    Ok(ServerResult {
        kind,
        version,
        idle_rss_kib: idle_rss,
        peak_hwm_kib: hwm.max(write.peak_hwm_kib).max(read.peak_hwm_kib),
        write,
        read,
    })
}

// ------------------------------------------------------------- report --

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn ms(us: u32) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    if b > 0.0 {
        Some(round(a / b, 3))
    } else {
        None
    }
}

/// Throughput and latency ratios x / y of two phases.
fn phase_ratios(x: &PhaseResult, y: &PhaseResult) -> Value {
    json!({
        "throughput": ratio(x.throughput(), y.throughput()),
        "p50_latency": ratio(x.p50_us as f64, y.p50_us as f64),
        "p99_latency": ratio(x.p99_us as f64, y.p99_us as f64),
    })
}

/// A ratio from a `ratios` JSON value, two decimals ("?" if absent).
fn fmt_ratio(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.2}"))
        .unwrap_or_else(|| "?".into())
}

fn ratios(results: &[ServerResult]) -> Option<Value> {
    let a = results.iter().find(|r| r.kind == ServerKind::Arca)?;
    let b = results.iter().find(|r| r.kind == ServerKind::OpenBao)?;
    let phase = phase_ratios;
    Some(json!({
        "write": phase(&a.write, &b.write),
        "read": phase(&a.read, &b.read),
        "peak_vmhwm": ratio(a.peak_hwm_kib as f64, b.peak_hwm_kib as f64),
    }))
}

fn markdown(cfg: &Config, results: &[ServerResult], host: &Value) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "KV v2{}, {} connections, {} s per phase, {}-byte values, {} keys, {} client thread(s); host: {} CPUs ({}), {}, load average before: {}\n\n",
        if cfg.audit { " with a file audit device" } else { "" },
        cfg.concurrency,
        cfg.duration.as_secs_f64(),
        cfg.payload_bytes,
        cfg.keys,
        cfg.client_threads,
        host["cpus"],
        host["cpu_model"].as_str().unwrap_or("?"),
        host["kernel"].as_str().unwrap_or("?"),
        host["loadavg_1m_before"],
    ));
    s.push_str("| server | version | phase | req/s | p50 ms | p99 ms | errors | server CPU s | req per CPU s | peak VmHWM MiB |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        for p in [&r.write, &r.read] {
            let cpu = p.server_cpu_s;
            s.push_str(&format!(
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                r.kind.name(),
                r.version,
                if p.phase == Phase::Write {
                    "write (PUT)"
                } else {
                    "read (GET)"
                },
                p.throughput(),
                ms(p.p50_us),
                ms(p.p99_us),
                p.errors,
                cpu.map(|c| format!("{c:.1}")).unwrap_or_else(|| "?".into()),
                cpu.filter(|c| *c > 0.0)
                    .map(|c| format!("{:.0}", p.ok as f64 / c))
                    .unwrap_or_else(|| "?".into()),
                mib(p.peak_hwm_kib),
            ));
        }
    }
    s.push('\n');
    for r in results {
        s.push_str(&format!(
            "- {}: idle RSS {} MiB, peak VmHWM {} MiB, {} keys written\n",
            r.kind.name(),
            mib(r.idle_rss_kib),
            mib(r.peak_hwm_kib),
            r.write.ok
        ));
    }
    if let Some(rt) = ratios(results) {
        let f = fmt_ratio;
        s.push_str("\nArca / OpenBao (throughput > 1 and latency, memory < 1 favour Arca):\n\n");
        s.push_str("| phase | throughput | p50 latency | p99 latency |\n|---|---:|---:|---:|\n");
        for ph in ["write", "read"] {
            s.push_str(&format!(
                "| {ph} | {} | {} | {} |\n",
                f(&rt[ph]["throughput"]),
                f(&rt[ph]["p50_latency"]),
                f(&rt[ph]["p99_latency"])
            ));
        }
        s.push_str(&format!("\npeak VmHWM ratio: {}\n", f(&rt["peak_vmhwm"])));
    }
    s
}

fn host_info() -> Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "?".into());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model,
        "kernel": kernel,
        "loadavg_1m_before": load_avg_1m(),
    })
}

/// The 1-minute load average (other work on the machine skews results).
fn load_avg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn run(cfg: Config) -> Result<()> {
    let host = host_info();
    let cpus = host["cpus"].as_u64().unwrap_or(1) as f64;
    if let Some(l) = host["loadavg_1m_before"].as_f64() {
        if l > cpus * 0.5 {
            eprintln!(
                "warning: load average {l:.1} on {cpus} CPUs before the run; \
                 other work will skew the figures"
            );
        }
    }
    let out_dir = cfg.out_dir.clone().unwrap_or_else(default_out_dir);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.client_threads)
        .enable_all()
        .build()?;
    match cfg.mode {
        Mode::Kv => run_kv(&cfg, &rt, &out_dir, host),
        Mode::Cluster => cluster::run(&cfg, &rt, &out_dir, host),
        Mode::Pki => pki::run(&cfg, &rt, &out_dir, host),
        Mode::Leases => leases::run(&cfg, &rt, &out_dir, host),
        Mode::Logins => logins::run(&cfg, &rt, &out_dir, host),
        Mode::Expire => expire::run(&cfg, &rt, &out_dir, host),
        Mode::Transit => transit::run(&cfg, &rt, &out_dir, host),
        Mode::Database => database::run(&cfg, &rt, &out_dir, host),
        Mode::Quotas => quotas::run(&cfg, &rt, &out_dir, host),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Writes `<name>-latest.json`, `<name>-<unix_time>.json` and
/// `<name>-latest.md` into `out_dir` and prints the markdown.
fn write_results(out_dir: &Path, name: &str, now: u64, summary: &Value, md: &str) -> Result<()> {
    let pretty = serde_json::to_string_pretty(summary)?;
    let latest = out_dir.join(format!("{name}-latest.json"));
    let latest_md = out_dir.join(format!("{name}-latest.md"));
    std::fs::write(&latest, &pretty)?;
    std::fs::write(out_dir.join(format!("{name}-{now}.json")), &pretty)?;
    std::fs::write(&latest_md, md)?;
    println!("{md}");
    println!(
        "JSON: {}\nMarkdown: {}",
        latest.display(),
        latest_md.display()
    );
    Ok(())
}

/// The end of a benchmark that yields one JSON row per run: the summary
/// (`benchmark`, `unix_time`, `host`, `config`, `results`) and its
/// markdown, printed and written (see [`write_results`]).
fn write_rows(
    out_dir: &Path,
    name: &str,
    host: Value,
    config: Value,
    rows: Vec<Value>,
    markdown: fn(&[Value], &Value) -> String,
) -> Result<()> {
    let now = unix_now();
    let md = markdown(&rows, &host);
    let summary = json!({
        "benchmark": name,
        "unix_time": now,
        "host": host,
        "config": config,
        "results": rows,
    });
    write_results(out_dir, name, now, &summary, &md)
}

/// Prints the first error of every phase that had errors.
fn report_errors<'a>(phases: impl IntoIterator<Item = (&'a str, &'a str, &'a PhaseResult)>) {
    for (server, label, p) in phases {
        if let Some(e) = &p.first_error {
            eprintln!("[{server}] {label}: first error: {e}");
        }
    }
}

fn run_kv(cfg: &Config, rt: &tokio::runtime::Runtime, out_dir: &Path, host: Value) -> Result<()> {
    let mut results = Vec::new();
    for &kind in &cfg.servers {
        let r = rt.block_on(bench_server(kind, cfg, out_dir))?;
        results.push(r);
    }
    let now = unix_now();
    let mut servers = BTreeMap::new();
    for r in &results {
        servers.insert(r.kind.name().to_string(), r.to_json());
    }
    let summary = json!({
        "benchmark": "kv-v2",
        "unix_time": now,
        "host": host,
        "config": {
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "payload_bytes": cfg.payload_bytes,
            "keys": cfg.keys,
            "client_threads": cfg.client_threads,
            "audit": if cfg.audit { "file device (sys/audit/bench)" } else { "none" },
            "mode": "dev (in-memory storage), plain HTTP on loopback, keep-alive HTTP/1.1",
            "write": "PUT /v1/secret/data/bench-<n> {\"data\":{\"value\":<payload>,\"n\":<n>}}",
            "read": "GET /v1/secret/data/bench-<k>, k uniform over the keys written",
        },
        "servers": servers,
        "ratios_arca_over_openbao": ratios(&results),
    });
    let md = markdown(cfg, &results, &summary["host"]);
    write_results(
        out_dir,
        if cfg.audit { "kv-audit" } else { "kv" },
        now,
        &summary,
        &md,
    )?;
    report_errors(results.iter().flat_map(|r| {
        [("write", &r.write), ("read", &r.read)]
            .into_iter()
            .map(move |(l, p)| (r.kind.name(), l, p))
    }));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cfg) {
        eprintln!("arca-bench: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn args_defaults_and_flags() {
        let c = parse_args(&args("kv")).unwrap();
        assert_eq!(c.concurrency, 32);
        assert_eq!(c.duration, Duration::from_secs(10));
        assert_eq!(c.servers, vec![ServerKind::Arca, ServerKind::OpenBao]);
        let c = parse_args(&args(
            "kv --servers openbao -c 8 --duration=3s --payload-bytes 16",
        ))
        .unwrap();
        assert_eq!(c.servers, vec![ServerKind::OpenBao]);
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.duration, Duration::from_secs(3));
        assert_eq!(c.payload_bytes, 16);
        assert!(parse_args(&args("kv --bogus 1")).is_err());
        assert!(parse_args(&args("tls")).is_err());
        assert!(parse_args(&args("kv --revoked 5")).is_err());
        assert!(parse_args(&args("kv --servers vault")).is_err());
        assert!(parse_args(&args("kv -c 0")).is_err());
        assert!(!parse_args(&args("kv")).unwrap().audit);
        assert!(parse_args(&args("kv --audit")).unwrap().audit);
        assert!(parse_args(&args("pki --audit")).is_err());
        assert!(parse_args(&args("kv --audit=yes")).is_err());
    }

    #[test]
    fn pki_args() {
        let c = parse_args(&args("pki")).unwrap();
        assert_eq!(c.mode, Mode::Pki);
        assert_eq!((c.concurrency, c.revoked), (16, 100_000));
        let c = parse_args(&args("pki --revoked 500 -d 2s --servers arca")).unwrap();
        assert_eq!((c.revoked, c.duration), (500, Duration::from_secs(2)));
        assert_eq!(c.servers, vec![ServerKind::Arca]);
        assert!(parse_args(&args("pki --keys 10")).is_err());
        assert!(parse_args(&args("pki --nodes 3")).is_err());
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn proc_parsing() {
        let status = "Name:\tbao\nVmPeak:\t  900 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(proc_status_kib(status, "VmHWM"), Some(123456));
        assert_eq!(proc_status_kib(status, "VmRSS"), Some(100000));
        assert_eq!(proc_status_kib(status, "VmSwap"), None);
        let stat =
            "4242 (my server) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1 2 3";
        assert_eq!(parse_proc_stat_ticks(stat), Some(300));
        // Our own process has readable figures.
        let (hwm, rss) = read_mem(std::process::id()).unwrap();
        assert!(hwm >= rss / 2 && rss > 0);
        assert!(cpu_seconds(std::process::id(), clock_ticks_per_sec()).is_some());
    }

    #[test]
    fn payload_is_vault_kv2_shaped() {
        let v: Value = serde_json::from_slice(&payload(7, 64)).unwrap();
        assert_eq!(v["data"]["n"], 7);
        assert_eq!(v["data"]["value"].as_str().unwrap().len(), 64);
        assert_eq!(payload(7, 64), payload(7, 64));
        assert_ne!(payload(7, 64), payload(8, 64));
    }
}
