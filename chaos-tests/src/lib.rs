//! Chaos tests for Arca's Raft cluster mode.
//!
//! This crate starts real `arca server` processes (Raft storage, loopback
//! listeners, one temporary directory per cluster), drives them over the
//! Vault HTTP API only, and injects failures: `kill -9` of the leader or of
//! every node, restarts on the same data, joins of new nodes, peer removal.
//! It depends on no `arca-*` crate: what it tests is the binary and its API.
//!
//! Invariants the scenarios (in `tests/`) check:
//! * an acknowledged write is never lost: after any failure and recovery,
//!   every key whose write was answered 2xx is readable, with its value, on
//!   every node (with `X-Arca-Consistency: linearizable` reads);
//! * the cluster keeps serving: the gap in acknowledged writes across a
//!   leader kill, and in successful reads on the surviving nodes, is bounded;
//! * reads, writes and check-and-set on KV v2 are linearizable, including
//!   across a leader failover ([`history`] holds the checker);
//! * a node that joins late catches up (snapshot + log) to the same data.
//!
//! Harness rules: every process is owned by a [`Node`] inside a [`Cluster`];
//! dropping the cluster kills them all (and prints the tail of each node's
//! log if the test is panicking). Every HTTP call has a timeout and never
//! panics: network failures come back as a [`Reply`] with status 0. Every
//! wait has a deadline. Progress and figures are printed as `chaos: ...`
//! lines (run with `--nocapture` to see them on success).
//!
//! The `arca` binary is `$ARCA_BIN`, else `arca` two directories above the
//! test executable (`target/release/deps/<test>-<hash>` ->
//! `target/release/arca`, which `cargo test --release --workspace` builds).

pub mod compose;
pub mod history;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Print one progress line: `chaos: ...`.
#[macro_export]
macro_rules! chaos {
    ($($arg:tt)*) => {
        println!("chaos: {}", format_args!($($arg)*))
    };
}

/// How long a node may take to start, be unsealed, join, elect a leader.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one ordinary HTTP call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of calls that legitimately block (init, the unseal that
/// completes a join, mounting).
pub const SLOW_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The header asking for a linearizable read.
pub const CONSISTENCY_HEADER: (&str, &str) = ("X-Arca-Consistency", "linearizable");

/// Key shares and threshold used by [`Cluster::start`].
const SECRET_SHARES: usize = 3;
const SECRET_THRESHOLD: usize = 2;

/// `d` as seconds with two decimals.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The `arca` binary to run.
pub fn arca_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ARCA_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("ARCA_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("arca"))
        .ok_or_else(|| anyhow!("no directory above {}", exe.display()))?;
    if !p.is_file() {
        bail!(
            "arca binary not found at {} (build it with `cargo test --release --workspace` \
             or `cargo build --release -p arca`, or set ARCA_BIN)",
            p.display()
        );
    }
    Ok(p)
}

/// `n` distinct free loopback ports (all bound at once, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("bind 127.0.0.1:0")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The longest stretch without an event in `[from, to]`, and where it
/// started. `times` need not be sorted; events outside the window are
/// ignored.
pub fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> (Duration, Instant) {
    let mut ts: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    ts.sort();
    ts.push(to);
    let mut prev = from;
    let mut best = (Duration::ZERO, from);
    for t in ts {
        let gap = t.duration_since(prev);
        if gap > best.0 {
            best = (gap, prev);
        }
        prev = t;
    }
    best
}

// ------------------------------------------------------------------ HTTP --

/// Why a call got no HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The connection could not be made: the request was certainly not
    /// received (e.g. connection refused by a killed node).
    Connect,
    /// No (complete) answer within the timeout: it may have taken effect.
    Timeout,
    /// Any other failure after connecting: it may have taken effect.
    Other,
}

/// The outcome of one HTTP call: status and JSON body, or status 0 and
/// `transport` set when no HTTP answer came back.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// The JSON body; `Null` when empty, a JSON string when not JSON.
    pub body: Value,
    pub transport: Option<(Transport, String)>,
}

impl Reply {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The request certainly did not reach a server.
    pub fn not_sent(&self) -> bool {
        matches!(self.transport, Some((Transport::Connect, _)))
    }

    /// One line for error messages.
    pub fn describe(&self) -> String {
        match &self.transport {
            Some((kind, e)) => format!("no answer ({kind:?}): {e}"),
            None => {
                let mut b = self.body.to_string();
                if b.len() > 300 {
                    let mut cut = 300;
                    while !b.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    b.truncate(cut);
                    b.push_str("...");
                }
                format!("HTTP {} {b}", self.status)
            }
        }
    }
}

/// A small async HTTP client for the Vault API: short timeouts, optional
/// token, never panics on network errors.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    token: Option<String>,
    timeout: Duration,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    /// No token, [`CALL_TIMEOUT`].
    pub fn new() -> Api {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client");
        Api {
            client,
            token: None,
            timeout: CALL_TIMEOUT,
        }
    }

    /// The same client sending `X-Vault-Token: token`.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Api {
        Api {
            timeout,
            ..self.clone()
        }
    }

    /// One call. `method` may be any verb, including `LIST`.
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let fail = |kind, e: String| Reply {
            status: 0,
            body: Value::Null,
            transport: Some((kind, e)),
        };
        let classify = |e: &reqwest::Error| {
            if e.is_connect() {
                Transport::Connect
            } else if e.is_timeout() {
                Transport::Timeout
            } else {
                Transport::Other
            }
        };
        let method = match reqwest::Method::from_bytes(method.as_bytes()) {
            Ok(m) => m,
            Err(e) => return fail(Transport::Connect, format!("bad method {method}: {e}")),
        };
        let mut req = self.client.request(method, url).timeout(self.timeout);
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return fail(classify(&e), format!("{url}: {e}")),
        };
        let status = resp.status().as_u16();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return fail(classify(&e), format!("{url}: reading body: {e}")),
        };
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            body,
            transport: None,
        }
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.call("GET", url, None, &[]).await
    }

    pub async fn put(&self, url: &str, body: &Value) -> Reply {
        self.call("PUT", url, Some(body), &[]).await
    }

    pub async fn post(&self, url: &str, body: &Value) -> Reply {
        self.call("POST", url, Some(body), &[]).await
    }
}

// -------------------------------------------------------------- KV v2 ----

/// Outcome of a KV v2 write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvWrite {
    /// Acknowledged: the version created.
    Ok(u64),
    /// Refused: `cas` did not match the current version.
    CasMismatch,
    /// Certainly not received (connection refused).
    NotSent(String),
    /// Anything else: it may or may not have taken effect.
    Unknown(String),
}

/// Outcome of a KV v2 read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvRead {
    Found {
        version: u64,
        value: String,
    },
    Absent,
    /// Certainly not received (connection refused).
    NotSent(String),
    Failed(String),
}

/// `POST {base}/v1/secret/data/{key}` with `{"data":{"v": value}}` and, with
/// `cas`, `"options":{"cas": N}`.
pub async fn kv_write(api: &Api, base: &str, key: &str, value: &str, cas: Option<u64>) -> KvWrite {
    let mut body = json!({ "data": { "v": value } });
    if let Some(n) = cas {
        body["options"] = json!({ "cas": n });
    }
    let r = api
        .post(&format!("{base}/v1/secret/data/{key}"), &body)
        .await;
    if r.status == 200 {
        return match r.body["data"]["version"].as_u64() {
            Some(v) => KvWrite::Ok(v),
            None => KvWrite::Unknown(format!("200 without data.version: {}", r.describe())),
        };
    }
    let text = r.body.to_string();
    if r.status == 400 && text.contains("check-and-set") && text.contains("did not match") {
        return KvWrite::CasMismatch;
    }
    if r.not_sent() {
        return KvWrite::NotSent(r.describe());
    }
    // A node that answers "sealed" refused the request before doing
    // anything (a restarted node is sealed until unsealed; these scenarios
    // never seal a serving node).
    if r.status == 503 && text.contains("Vault is sealed") {
        return KvWrite::NotSent(r.describe());
    }
    KvWrite::Unknown(r.describe())
}

/// `GET {base}/v1/secret/data/{key}`, optionally linearizable.
pub async fn kv_read(api: &Api, base: &str, key: &str, linearizable: bool) -> KvRead {
    let headers: &[(&str, &str)] = if linearizable {
        &[CONSISTENCY_HEADER]
    } else {
        &[]
    };
    kv_read_with(api, base, key, headers).await
}

/// A read of this node's local copy (`X-Arca-Consistency: stale`): answered
/// even while the cluster has no leader.
pub async fn kv_read_stale(api: &Api, base: &str, key: &str) -> KvRead {
    kv_read_with(api, base, key, &[("X-Arca-Consistency", "stale")]).await
}

async fn kv_read_with(api: &Api, base: &str, key: &str, headers: &[(&str, &str)]) -> KvRead {
    let r = api
        .call(
            "GET",
            &format!("{base}/v1/secret/data/{key}"),
            None,
            headers,
        )
        .await;
    match r.status {
        200 => {
            let version = r.body["data"]["metadata"]["version"].as_u64();
            let value = r.body["data"]["data"]["v"].as_str();
            match (version, value) {
                (Some(version), Some(value)) => KvRead::Found {
                    version,
                    value: value.to_string(),
                },
                _ => KvRead::Failed(format!("unexpected read body: {}", r.describe())),
            }
        }
        // A missing key: 404 with no error text. A 404 with an error (no
        // handler for the route: mount unknown on this node) is a failure.
        404 if r.body["errors"].as_array().is_none_or(|e| e.is_empty()) => KvRead::Absent,
        _ if r.not_sent() => KvRead::NotSent(r.describe()),
        _ => KvRead::Failed(r.describe()),
    }
}

/// Write until acknowledged, trying `bases` in turn from `start`
/// (a retried write may create an extra version; the value is the same).
pub async fn kv_write_retry(
    api: &Api,
    bases: &[String],
    start: usize,
    key: &str,
    value: &str,
    timeout: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    let mut i = start;
    loop {
        let base = &bases[i % bases.len()];
        let last = match kv_write(api, base, key, value, None).await {
            KvWrite::Ok(v) => return Ok(v),
            other => format!("{other:?}"),
        };
        if Instant::now() > deadline {
            bail!("write of {key} not acknowledged within {timeout:?}: last {last} from {base}");
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Read from one node, retrying transport and server failures (not
/// `Absent`) until `timeout`.
pub async fn kv_read_retry(
    api: &Api,
    base: &str,
    key: &str,
    linearizable: bool,
    timeout: Duration,
) -> KvRead {
    let deadline = Instant::now() + timeout;
    loop {
        let r = kv_read(api, base, key, linearizable).await;
        match r {
            KvRead::Found { .. } | KvRead::Absent => return r,
            _ if Instant::now() > deadline => return r,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ---------------------------------------------------------------- nodes --

/// One `arca server` process with its own directory and ports, which
/// survive restarts.
pub struct Node {
    /// `node1`, `node2`, ... (also the Raft `node_id`).
    pub name: String,
    /// The loopback address the node listens on and sends from
    /// (`127.0.0.1`, or one of its own so a partition can single it out).
    pub ip: String,
    pub api_port: u16,
    pub cluster_port: u16,
    /// Holds `arca.hcl`, `log.txt` and `data/`.
    pub dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    /// Prepare (not start) a node: directory and config file.
    pub fn new(
        bin: PathBuf,
        name: &str,
        dir: PathBuf,
        api_port: u16,
        cluster_port: u16,
    ) -> Result<Node> {
        Self::new_on(bin, name, dir, "127.0.0.1", api_port, cluster_port)
    }

    /// A node on its own loopback address `ip` (e.g. `127.0.77.2`).
    pub fn new_on(
        bin: PathBuf,
        name: &str,
        dir: PathBuf,
        ip: &str,
        api_port: u16,
        cluster_port: u16,
    ) -> Result<Node> {
        fs::create_dir_all(dir.join("data")).with_context(|| format!("mkdir {}", dir.display()))?;
        let node = Node {
            name: name.to_string(),
            ip: ip.to_string(),
            api_port,
            cluster_port,
            dir,
            bin,
            child: None,
            starts: 0,
        };
        fs::write(node.config_path(), node.config_text()).context("write config")?;
        Ok(node)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("arca.hcl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log.txt")
    }

    fn config_text(&self) -> String {
        format!(
            r#"storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
  # Small, so that scenarios run through Raft snapshots and log purges
  # (a late or restarted node catches up from a snapshot).
  snapshot_threshold = 2000
  trailing_logs      = 500
}}

listener "tcp" {{
  address         = "{ip}:{api}"
  cluster_address = "{ip}:{cluster}"
  tls_disable     = true
}}

api_addr      = "http://{ip}:{api}"
cluster_addr  = "http://{ip}:{cluster}"
disable_mlock = true
"#,
            data = self.dir.join("data").display(),
            name = self.name,
            ip = self.ip,
            api = self.api_port,
            cluster = self.cluster_port,
        )
    }

    /// `http://<ip>:<api_port>`
    pub fn base(&self) -> String {
        format!("http://{}:{}", self.ip, self.api_port)
    }

    /// `base() + path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Start the process (again) on the same directory and ports; output
    /// is appended to `log.txt`. Does not wait for it to listen.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("{} is already running", self.name);
        }
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("open log")?;
        writeln!(
            log,
            "==== chaos: start #{} of {} ====",
            self.starts, self.name
        )?;
        let child = Command::new(&self.bin)
            .env("ARCA_STRICT_FIELDS", "1")
            .arg("server")
            .arg("-config")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL the process and reap it (no-op when not running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Started and not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Started by us and not killed by us (it may have crashed).
    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `lines` lines of `log.txt`.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

// -------------------------------------------------------------- cluster --

/// A Raft cluster of `arca` processes, initialised and unsealed, with a
/// KV v2 engine at `secret/`. Dropping it kills every process.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub root_token: String,
    /// The unseal keys (base64); [`SECRET_THRESHOLD`] of them unseal a node.
    pub keys: Vec<String>,
    bin: PathBuf,
    root: Option<tempfile::TempDir>,
    anon: Api,
    api: Api,
    /// `Some(x)`: node i listens on `127.0.x.(i+1)` (see [`Cluster::start_isolatable`]).
    subnet: Option<u8>,
}

impl Cluster {
    /// True when none of `nodes` lists any of `accessors` in
    /// `auth/token/accessors` (a failed LIST counts as still listed).
    pub async fn accessors_gone(&self, api: &Api, nodes: &[usize], accessors: &[String]) -> bool {
        for &i in nodes {
            let r = api
                .call("LIST", &self.url(i, "/v1/auth/token/accessors"), None, &[])
                .await;
            let keys = r.body["data"]["keys"].to_string();
            if !r.ok() || accessors.iter().any(|a| keys.contains(a.as_str())) {
                return false;
            }
        }
        true
    }

    /// Start `n` nodes, initialise node1 (bootstrapping a one-node Raft
    /// cluster), unseal it, join and unseal the others one by one, mount
    /// `secret/` (KV v2) and wait until every node is healthy and serves it.
    pub async fn start(n: usize) -> Result<Cluster> {
        Self::start_inner(n, None).await
    }

    /// Like [`start`](Self::start), but every node gets its own loopback
    /// address (`127.0.x.1`, `127.0.x.2`, ...) for its API, its cluster
    /// port and its outgoing cluster connections, so that [`Partition`] can
    /// cut the links between chosen nodes while clients still reach them.
    pub async fn start_isolatable(n: usize) -> Result<Cluster> {
        let subnet = 100 + (std::process::id() % 100) as u8;
        Self::start_inner(n, Some(subnet)).await
    }

    async fn start_inner(n: usize, subnet: Option<u8>) -> Result<Cluster> {
        assert!(n >= 1);
        let t0 = Instant::now();
        let bin = arca_bin()?;
        let root = tempfile::Builder::new()
            .prefix("arca-chaos-")
            .tempdir()
            .context("tempdir")?;
        let anon = Api::new();
        let mut c = Cluster {
            nodes: Vec::new(),
            root_token: String::new(),
            keys: Vec::new(),
            bin,
            root: Some(root),
            api: anon.clone(),
            anon,
            subnet,
        };
        // All ports at once, so no two nodes get the same one.
        let ports = free_ports(2 * n)?;
        for p in ports.chunks(2) {
            c.new_node(Some((p[0], p[1])))?;
        }
        for i in 0..n {
            c.nodes[i].start()?;
        }
        for i in 0..n {
            c.wait_listening(i, START_TIMEOUT).await?;
        }

        let r = c
            .anon
            .with_timeout(SLOW_CALL_TIMEOUT)
            .put(
                &c.nodes[0].url("/v1/sys/init"),
                &json!({ "secret_shares": SECRET_SHARES, "secret_threshold": SECRET_THRESHOLD }),
            )
            .await;
        if !r.ok() {
            return Err(c.fail(0, format!("sys/init: {}", r.describe())));
        }
        c.root_token = r.body["root_token"]
            .as_str()
            .ok_or_else(|| anyhow!("init without root_token: {}", r.body))?
            .to_string();
        c.keys = r.body["keys_base64"]
            .as_array()
            .ok_or_else(|| anyhow!("init without keys_base64: {}", r.body))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        if c.keys.len() != SECRET_SHARES {
            bail!("init returned {} keys: {}", c.keys.len(), r.body);
        }
        c.api = c.anon.with_token(&c.root_token);
        c.unseal(0).await?;
        c.wait_for_leader(START_TIMEOUT, None).await?;
        chaos!(
            "node1 initialised and unsealed ({} since start)",
            secs(t0.elapsed())
        );

        for i in 1..n {
            let t = Instant::now();
            c.join(i).await?;
            chaos!(
                "{} joined and unsealed in {}",
                c.nodes[i].name,
                secs(t.elapsed())
            );
        }
        c.mount_kv().await?;
        let leader = c.wait_healthy(START_TIMEOUT).await?;
        chaos!(
            "cluster of {n} up in {} (leader {})",
            secs(t0.elapsed()),
            c.nodes[leader].name
        );
        Ok(c)
    }

    /// Create (not start) one more node, on the given (api, cluster) ports
    /// or fresh ones.
    fn new_node(&mut self, ports: Option<(u16, u16)>) -> Result<usize> {
        let i = self.nodes.len();
        let name = format!("node{}", i + 1);
        let dir = self
            .root
            .as_ref()
            .map(|r| r.path().join(&name))
            .ok_or_else(|| anyhow!("cluster directory gone"))?;
        let (api, cluster) = match ports {
            Some(p) => p,
            None => {
                let p = free_ports(2)?;
                (p[0], p[1])
            }
        };
        let ip = match self.subnet {
            Some(x) => format!("127.0.{x}.{}", i + 1),
            None => "127.0.0.1".to_string(),
        };
        self.nodes.push(Node::new_on(
            self.bin.clone(),
            &name,
            dir,
            &ip,
            api,
            cluster,
        )?);
        Ok(i)
    }

    /// The token-less API client (health, seal status).
    pub fn anon(&self) -> Api {
        self.anon.clone()
    }

    /// The API client with the root token.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// Base URL of node `i`.
    pub fn base(&self, i: usize) -> String {
        self.nodes[i].base()
    }

    /// Base URLs of every node, by index.
    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(Node::base).collect()
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        self.nodes[i].url(path)
    }

    /// An error carrying the tail of node `i`'s log.
    pub fn fail(&self, i: usize, msg: String) -> anyhow::Error {
        anyhow!(
            "{}: {msg}\n---- {} log (tail) ----\n{}\n----",
            self.nodes[i].name,
            self.nodes[i].name,
            self.nodes[i].log_tail(60)
        )
    }

    /// Print the tail of every node's log to stderr.
    pub fn dump_logs(&self, lines: usize) {
        for n in &self.nodes {
            eprintln!(
                "---- {} (api {}, pid {:?}) log, last {lines} lines ----\n{}",
                n.name,
                n.api_port,
                n.pid(),
                n.log_tail(lines)
            );
        }
    }

    /// `GET /v1/sys/health` status of node `i` (0: no answer).
    pub async fn health(&self, i: usize) -> u16 {
        self.anon.get(&self.url(i, "/v1/sys/health")).await.status
    }

    /// Like [`Cluster::health`], but a 200 whose body says `"standby": true`
    /// counts as 429: only the active node answers 200.
    async fn role(&self, i: usize) -> u16 {
        let r = self.anon.get(&self.url(i, "/v1/sys/health")).await;
        if r.status == 200 && r.body["standby"] == json!(true) {
            429
        } else {
            r.status
        }
    }

    /// Wait until node `i` answers HTTP at all.
    pub async fn wait_listening(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.nodes[i].is_running() {
                return Err(self.fail(i, "process is not running (exited during start-up?)".into()));
            }
            if self.health(i).await != 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.fail(i, format!("not answering HTTP after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Unseal node `i` with [`SECRET_THRESHOLD`] keys, following the
    /// reported progress; returns once it reports `sealed: false`. The
    /// unseal that completes a join blocks until the node caught up.
    pub async fn unseal(&self, i: usize) -> Result<()> {
        let deadline = Instant::now() + SLOW_CALL_TIMEOUT;
        let slow = self.anon.with_timeout(SLOW_CALL_TIMEOUT);
        let mut last = String::new();
        loop {
            if Instant::now() > deadline {
                return Err(self.fail(
                    i,
                    format!("still sealed after {SLOW_CALL_TIMEOUT:?}; last: {last}"),
                ));
            }
            let st = self.anon.get(&self.url(i, "/v1/sys/seal-status")).await;
            if st.status == 200 && st.body["sealed"] == json!(false) {
                return Ok(());
            }
            if st.status != 200 {
                last = format!("seal-status: {}", st.describe());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let progress = st.body["progress"].as_u64().unwrap_or(0) as usize;
            let key = &self.keys[progress.min(SECRET_THRESHOLD - 1)];
            let r = slow
                .put(&self.url(i, "/v1/sys/unseal"), &json!({ "key": key }))
                .await;
            if r.ok() && r.body["sealed"] == json!(false) {
                return Ok(());
            }
            if !r.ok() {
                last = format!("unseal: {}", r.describe());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    /// Index of the node answering `sys/health` 200 (active), if any.
    pub async fn leader(&self) -> Option<usize> {
        let checks = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_started())
            .map(|i| async move { (i, self.role(i).await) });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .find(|&(_, s)| s == 200)
            .map(|(i, _)| i)
    }

    /// Wait until a node other than `excluding` is active.
    pub async fn wait_for_leader(
        &self,
        timeout: Duration,
        excluding: Option<usize>,
    ) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let checks = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_started() && Some(i) != excluding)
                .map(|i| async move { (i, self.role(i).await) });
            let statuses = futures::future::join_all(checks).await;
            if let Some(&(i, _)) = statuses.iter().find(|&&(_, s)| s == 200) {
                return Ok(i);
            }
            if Instant::now() > deadline {
                self.dump_logs(40);
                bail!("no leader after {timeout:?} (sys/health by node index: {statuses:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until every started node is unsealed and healthy (200 or 429)
    /// and exactly one is active; returns the active one.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let checks = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_started())
                .map(|i| async move { (i, self.role(i).await) });
            let statuses = futures::future::join_all(checks).await;
            let active: Vec<usize> = statuses
                .iter()
                .filter(|&&(_, s)| s == 200)
                .map(|&(i, _)| i)
                .collect();
            if active.len() == 1 && statuses.iter().all(|&(_, s)| s == 200 || s == 429) {
                return Ok(active[0]);
            }
            if Instant::now() > deadline {
                self.dump_logs(40);
                bail!("cluster not healthy after {timeout:?} (sys/health by node index: {statuses:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL node `i`.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// SIGKILL every node.
    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
    }

    /// Find the active node and SIGKILL it; returns its index.
    pub async fn kill_leader(&mut self) -> Result<usize> {
        let i = self.wait_for_leader(Duration::from_secs(30), None).await?;
        self.nodes[i].kill9();
        Ok(i)
    }

    /// Start node `i` again (same directory and ports), wait until it
    /// listens and unseal it; waits until it reports healthy.
    pub async fn restart_node(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill9();
        self.nodes[i].start()?;
        self.wait_listening(i, START_TIMEOUT).await?;
        self.unseal(i).await?;
        self.wait_node_healthy(i, START_TIMEOUT).await
    }

    /// SIGKILL every node still running, start them all, unseal them all
    /// (concurrently: an unseal may wait for a quorum) and wait until the
    /// cluster is healthy. Returns the new leader.
    pub async fn restart_all(&mut self) -> Result<usize> {
        self.kill_all();
        for i in 0..self.nodes.len() {
            self.nodes[i].start()?;
        }
        for i in 0..self.nodes.len() {
            self.wait_listening(i, START_TIMEOUT).await?;
        }
        let unseals = (0..self.nodes.len()).map(|i| self.unseal(i));
        for r in futures::future::join_all(unseals).await {
            r?;
        }
        self.wait_healthy(START_TIMEOUT).await
    }

    /// Wait until node `i` answers `sys/health` with 200 or 429.
    pub async fn wait_node_healthy(&self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.role(i).await;
            if s == 200 || s == 429 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.fail(i, format!("sys/health {s} after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Create and start a new, empty node (not joined); returns its index.
    pub async fn add_node(&mut self) -> Result<usize> {
        let i = self.new_node(None)?;
        self.nodes[i].start()?;
        self.wait_listening(i, START_TIMEOUT).await?;
        Ok(i)
    }

    /// Join the fresh node `i` to the cluster through the current leader
    /// (`sys/storage/raft/join`), unseal it (which returns once it caught
    /// up) and wait until it reports healthy.
    pub async fn join(&self, i: usize) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let leader = self.wait_for_leader(START_TIMEOUT, Some(i)).await?;
            let r = self
                .anon
                .with_timeout(SLOW_CALL_TIMEOUT)
                .post(
                    &self.url(i, "/v1/sys/storage/raft/join"),
                    &json!({ "leader_api_addr": self.base(leader) }),
                )
                .await;
            if r.ok() && r.body["joined"] == json!(true) {
                break;
            }
            if Instant::now() > deadline {
                return Err(self.fail(i, format!("raft join: {}", r.describe())));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.unseal(i).await?;
        self.wait_node_healthy(i, START_TIMEOUT).await
    }

    /// Mount KV v2 at `secret/` and wait until every started node serves
    /// it (a probe key written through the leader is readable everywhere).
    async fn mount_kv(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let leader = self.wait_for_leader(START_TIMEOUT, None).await?;
            let r = self
                .api
                .with_timeout(SLOW_CALL_TIMEOUT)
                .post(
                    &self.url(leader, "/v1/sys/mounts/secret"),
                    &json!({ "type": "kv", "options": { "version": "2" } }),
                )
                .await;
            let text = r.body.to_string();
            // A retry after a lost answer finds the mount already there.
            if r.ok()
                || (r.status == 400 && (text.contains("in use") || text.contains("existing mount")))
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(self.fail(leader, format!("mount secret/: {}", r.describe())));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let bases = self.bases();
        let leader = self.wait_for_leader(START_TIMEOUT, None).await?;
        kv_write_retry(
            &self.api,
            &bases,
            leader,
            "__probe__",
            "probe",
            START_TIMEOUT,
        )
        .await?;
        for (i, base) in bases.iter().enumerate() {
            if !self.nodes[i].is_started() {
                continue;
            }
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                match kv_read(&self.api, base, "__probe__", false).await {
                    KvRead::Found { .. } => break,
                    other if Instant::now() > deadline => {
                        return Err(self.fail(i, format!("KV probe not readable: {other:?}")));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// The servers of `sys/storage/raft/configuration`, asked of the leader.
    pub async fn raft_servers(&self) -> Result<Vec<Value>> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let leader = self.wait_for_leader(START_TIMEOUT, None).await?;
            let r = self
                .api
                .get(&self.url(leader, "/v1/sys/storage/raft/configuration"))
                .await;
            if let (true, Some(servers)) = (r.ok(), r.body["data"]["config"]["servers"].as_array())
            {
                return Ok(servers.clone());
            }
            if Instant::now() > deadline {
                return Err(self.fail(leader, format!("raft configuration: {}", r.describe())));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// `sys/storage/raft/remove-peer` of `server_id`, sent to the leader.
    pub async fn remove_peer(&self, server_id: &str) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let leader = self.wait_for_leader(START_TIMEOUT, None).await?;
            let r = self
                .api
                .with_timeout(Duration::from_secs(30))
                .put(
                    &self.url(leader, "/v1/sys/storage/raft/remove-peer"),
                    &json!({ "server_id": server_id }),
                )
                .await;
            if r.ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.fail(leader, format!("remove-peer {server_id}: {}", r.describe())));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The directory holding every node's directory.
    pub fn root_dir(&self) -> Option<&Path> {
        self.root.as_ref().map(|r| r.path())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs(80);
        }
        self.kill_all();
        if std::env::var_os("ARCA_CHAOS_KEEP").is_some() {
            if let Some(root) = self.root.take() {
                eprintln!("chaos: keeping {}", root.keep().display());
            }
        }
    }
}

/// Serialises the tests of one test binary (each starts its own cluster;
/// two at once would overload a small machine).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Write `n` keys `prefix{i:05}` with value `v{i}`, `concurrency` at a
/// time, spread over `bases`; returns the time taken.
pub async fn write_many(
    api: &Api,
    bases: &[String],
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Duration> {
    use futures::StreamExt;
    let t = Instant::now();
    let results: Vec<Result<u64>> = futures::stream::iter(0..n)
        .map(|i| {
            let key = format!("{prefix}{i:05}");
            let value = format!("v{i}");
            async move { kv_write_retry(api, bases, i, &key, &value, START_TIMEOUT).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(t.elapsed())
}

/// Cuts the network between one node and others with `iptables` (both
/// directions, all ports), for as long as the guard lives. Needs root and
/// `iptables`; a test that needs a partition fails, with a hint, without them.
pub struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    /// Drops every packet between `ip` and each of `others`.
    pub fn isolate(ip: &str, others: &[String]) -> Result<Partition> {
        let mut p = Partition { rules: Vec::new() };
        for o in others {
            for (src, dst) in [(ip, o.as_str()), (o.as_str(), ip)] {
                let rule: Vec<String> = ["INPUT", "-s", src, "-d", dst, "-j", "DROP"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                iptables("-I", &rule)?;
                p.rules.push(rule);
            }
        }
        Ok(p)
    }

    /// Restores the links (also done on drop).
    pub fn heal(&mut self) {
        for rule in self.rules.drain(..) {
            if let Err(e) = iptables("-D", &rule) {
                eprintln!("chaos: could not remove iptables rule {rule:?}: {e}");
            }
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.heal();
    }
}

fn iptables(op: &str, rule: &[String]) -> Result<()> {
    // As root directly; otherwise through passwordless sudo, as .ci/run does.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if root {
        std::process::Command::new("iptables")
    } else {
        let mut c = std::process::Command::new("sudo");
        c.args(["-n", "iptables"]);
        c
    };
    let out = cmd.arg("-w").arg(op).args(rule).output().context(
        "cannot run iptables: partition tests need it and root (apt-get install iptables)",
    )?;
    if !out.status.success() {
        bail!(
            "iptables {op} {rule:?} failed ({}): {} -- partition tests need root",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_counts_the_window_edges() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (g, from) = longest_gap(&[at(300), at(100), at(250)], at(0), at(1000));
        assert_eq!(g, Duration::from_millis(700));
        assert_eq!(from, at(300));
        let (g, from) = longest_gap(&[], at(0), at(50));
        assert_eq!((g, from), (Duration::from_millis(50), at(0)));
    }

    #[test]
    fn config_names_node_and_ports() {
        let dir = tempfile::tempdir().unwrap();
        let n = Node::new(
            "/bin/true".into(),
            "node7",
            dir.path().join("n"),
            1234,
            5678,
        )
        .unwrap();
        let text = fs::read_to_string(n.config_path()).unwrap();
        assert!(text.contains(r#"node_id = "node7""#));
        assert!(text.contains(r#"address         = "127.0.0.1:1234""#));
        assert!(text.contains(r#"cluster_addr  = "http://127.0.0.1:5678""#));
        assert_eq!(
            n.url("/v1/sys/health"),
            "http://127.0.0.1:1234/v1/sys/health"
        );
    }

    #[test]
    fn free_ports_are_distinct() {
        let p = free_ports(8).unwrap();
        let mut q = p.clone();
        q.sort();
        q.dedup();
        assert_eq!(q.len(), 8);
    }

    #[tokio::test]
    async fn api_reports_refused_connections_as_not_sent() {
        let port = free_ports(1).unwrap()[0];
        let r = Api::new()
            .get(&format!("http://127.0.0.1:{port}/v1/sys/health"))
            .await;
        assert_eq!(r.status, 0);
        assert!(r.not_sent(), "{r:?}");
    }
}
