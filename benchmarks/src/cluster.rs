//! `arca-bench cluster`: the KV v2 load of `arca-bench kv` against a raft
//! cluster of `--nodes` (default 3) Arca servers, then against a cluster of
//! as many OpenBao servers, on this machine.
//!
//! For each server kind:
//! 1. start the nodes with `server -config node.hcl` (raft storage in a
//!    temporary directory per node, free loopback ports for the API and
//!    cluster listeners, output in `<out-dir>/cluster-<server>-node<i>.log`);
//! 2. `sys/init` (one key share) and `sys/unseal` node 1, wait until it is
//!    active; on every other node `sys/storage/raft/join` node 1, unseal it
//!    and wait until it reports unsealed and standby (`sys/health` 429);
//!    mount KV v2 at `secret/` and wait until a write and a read go through
//!    every node, then until every node is a raft voter
//!    (`sys/storage/raft/configuration`; OpenBao's autopilot promotes
//!    joined non-voters after 10 s);
//! 3. write phase: connection `i` goes to node `i mod nodes` (standbys
//!    forward writes to the leader);
//! 4. read phase, spread the same way, with each server's default
//!    consistency: Arca serves linearizable reads (a standby asks the leader
//!    for a read index), OpenBao standbys serve reads from their own copy;
//! 5. Arca only: read phase with `X-Arca-Consistency: stale` (local reads on
//!    every node, like OpenBao's standby reads);
//! 6. failover phase (3 nodes or more): writers on the nodes that are not
//!    the leader, each write with a 500 ms client timeout and retried after
//!    any failure; after 2 s the leader (`sys/health` 200) is killed with
//!    SIGKILL; measured: the failover gap (from the kill to the first
//!    acknowledged write sent after it) and the longest gap between
//!    acknowledged writes; the phase runs 8 s after the kill, longer (up to
//!    60 s) until a write sent after the kill goes through;
//! 7. stop every node (SIGTERM) and remove the data directories; an error
//!    at any step stops the nodes too.
//!
//! CPU time and peak VmHWM are summed over the nodes of the cluster.

use super::*;

/// The nodes of one cluster; stopped and their data removed on drop.
pub(super) struct Cluster {
    kind: ServerKind,
    pub(super) nodes: Vec<ServerProc>,
    /// Temporary directory holding each node's `node.hcl` and raft data.
    root: PathBuf,
    /// The node (0-based) the failover phase killed, if it did.
    killed: Option<usize>,
}

impl Cluster {
    pub(super) fn start(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<Cluster> {
        let root = std::env::temp_dir().join(format!(
            "arca-bench-cluster-{}-{}-{}",
            kind.name(),
            std::process::id(),
            unix_now()
        ));
        std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        let mut cluster = Cluster {
            kind,
            nodes: Vec::new(),
            root,
            killed: None,
        };
        let program: PathBuf = match kind {
            ServerKind::Arca => arca_bin(cfg),
            ServerKind::OpenBao => PathBuf::from(&cfg.bao_bin),
        };
        let ports = free_ports(2 * cfg.nodes)?;
        for i in 0..cfg.nodes {
            let (api, cport) = (ports[2 * i], ports[2 * i + 1]);
            let dir = cluster.root.join(format!("node{}", i + 1));
            let data = dir.join("data");
            std::fs::create_dir_all(&data)?;
            let hcl = dir.join("node.hcl");
            std::fs::write(&hcl, node_hcl(kind, i, &data, api, cport))?;
            let args = [
                "server".to_string(),
                "-config".to_string(),
                hcl.display().to_string(),
            ];
            let log = out_dir.join(format!("cluster-{}-node{}.log", kind.name(), i + 1));
            let node = ServerProc::spawn(
                kind,
                &program,
                &args,
                Some(&dir),
                format!("127.0.0.1:{api}"),
                log,
            )?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// Fails if a node has exited (other than the one the failover phase
    /// killed).
    fn check_alive(&mut self) -> Result<()> {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if self.killed == Some(i) {
                continue;
            }
            if let Some(st) = n.child.try_wait()? {
                bail!(
                    "{} node{} exited ({st}); see {}",
                    n.kind.name(),
                    i + 1,
                    n.log.display()
                );
            }
        }
        Ok(())
    }

    /// SIGKILL to node `i` (0-based), the child process started here.
    fn kill(&mut self, i: usize) -> Result<()> {
        self.killed = Some(i);
        let n = &mut self.nodes[i];
        n.child
            .kill()
            .with_context(|| format!("kill -9 {} node{} (pid {})", n.kind.name(), i + 1, n.pid()))
    }

    pub(super) fn stop(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            if self.killed != Some(i) {
                n.terminate();
            }
        }
        for n in &mut self.nodes {
            n.stop();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `n` distinct free loopback ports (all bound at once, then released).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The configuration of node `i` (0-based): raft storage, a plain-HTTP API
/// listener and a cluster listener on loopback.
fn node_hcl(kind: ServerKind, i: usize, data: &Path, api: u16, cport: u16) -> String {
    // OpenBao's cluster port always speaks TLS; Arca's is plain gRPC here.
    let cluster_scheme = match kind {
        ServerKind::Arca => "http",
        ServerKind::OpenBao => "https",
    };
    format!(
        r#"storage "raft" {{
  path    = "{data}"
  node_id = "node{n}"
}}

listener "tcp" {{
  address         = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable     = true{limits}
}}

api_addr     = "http://127.0.0.1:{api}"
cluster_addr = "{cluster_scheme}://127.0.0.1:{cport}"
"#,
        data = data.display(),
        n = i + 1,
        // OpenBao refuses JSON bodies of more than 1000 strings by default
        // (a 1000-item transit batch has 2001); Arca has no such limit.
        limits = match kind {
            ServerKind::Arca => "",
            ServerKind::OpenBao => "\n  max_request_json_strings = -1",
        },
    )
}

/// One setup request; the body parsed as JSON (Null if empty or not JSON).
pub(super) async fn call(
    addr: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let target = Target {
        addr: addr.to_string(),
        token: token.to_string(),
        stale: false,
    };
    let body = body.map(|b| Bytes::from(b.to_string()));
    let fut = once(&target, method, path, body);
    let (status, bytes) = tokio::time::timeout(Duration::from_secs(90), fut)
        .await
        .map_err(|_| anyhow!("{path} on {addr}: no answer in 90 s"))??;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Polls `check` every 200 ms until it returns true, failing after
/// `timeout` or as soon as a node exits.
async fn wait_until<F, Fut>(
    cluster: &mut Cluster,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        cluster.check_alive()?;
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{}: {what}: not done after {timeout:?} (logs: {})",
                cluster.kind.name(),
                cluster.nodes[0]
                    .log
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `sys/health` status code of a node (0 if it does not answer).
async fn health(addr: &str) -> u16 {
    match call(addr, "", Method::GET, "/v1/sys/health", None).await {
        Ok((status, _)) => status,
        Err(_) => 0,
    }
}

/// The 1-based numbers of the nodes answering `sys/health` with 200.
async fn leaders(addrs: &[String]) -> Vec<usize> {
    let mut v = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        if health(a).await == 200 {
            v.push(i + 1);
        }
    }
    v
}

/// What `form` establishes.
pub(super) struct Formed {
    pub(super) token: String,
    pub(super) version: String,
    /// The single unseal key (1 share, threshold 1).
    pub(super) key: String,
}

/// Initializes node 1, joins and unseals the others, mounts KV v2 and waits
/// until every node takes a write and a read.
pub(super) async fn form(cluster: &mut Cluster) -> Result<Formed> {
    let name = cluster.kind.name();
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let timeout = Duration::from_secs(60);
    for a in &addrs {
        wait_until(cluster, &format!("{a} answers"), timeout, || async {
            matches!(
                call(a, "", Method::GET, "/v1/sys/seal-status", None).await,
                Ok((200, _))
            )
        })
        .await?;
    }

    let leader = &addrs[0];
    let (status, init) = call(
        leader,
        "",
        Method::PUT,
        "/v1/sys/init",
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await?;
    let key = init["keys_base64"][0].as_str().map(str::to_string);
    let token = init["root_token"].as_str().map(str::to_string);
    let (Some(key), Some(token), 200) = (key, token, status) else {
        bail!("{name}: sys/init on node1: HTTP {status} {init}");
    };
    let unseal = json!({ "key": key });
    let (status, body) = call(
        leader,
        "",
        Method::PUT,
        "/v1/sys/unseal",
        Some(unseal.clone()),
    )
    .await?;
    if status != 200 {
        bail!("{name}: sys/unseal on node1: HTTP {status} {body}");
    }
    wait_until(cluster, "node1 active", timeout, || async {
        health(leader).await == 200
    })
    .await?;
    eprintln!("[{name}] node1 initialized, unsealed, active");

    for (i, a) in addrs.iter().enumerate().skip(1) {
        let join = json!({ "leader_api_addr": format!("http://{leader}") });
        let last = std::cell::RefCell::new(String::new());
        let what = format!("node{} joins", i + 1);
        let joined = wait_until(cluster, &what, timeout, || async {
            let path = "/v1/sys/storage/raft/join";
            let answer = match call(a, "", Method::POST, path, Some(join.clone())).await {
                Ok((200, b)) if b["joined"] != json!(false) => return true,
                Ok((s, b)) => format!("HTTP {s} {b}"),
                Err(e) => e.to_string(),
            };
            *last.borrow_mut() = answer;
            false
        })
        .await;
        joined.with_context(|| format!("last answer: {}", last.borrow()))?;
        // Arca answers once the node has joined, caught up and unsealed;
        // OpenBao finishes in the background, hence the polling below.
        let (status, body) =
            call(a, "", Method::PUT, "/v1/sys/unseal", Some(unseal.clone())).await?;
        if status != 200 {
            bail!("{name}: sys/unseal on node{}: HTTP {status} {body}", i + 1);
        }
        let what = format!("node{} unsealed and standby", i + 1);
        wait_until(cluster, &what, timeout, || async {
            let unsealed = matches!(
                call(a, "", Method::GET, "/v1/sys/seal-status", None).await,
                Ok((200, s)) if s["sealed"] == json!(false)
            );
            unsealed && health(a).await == 429
        })
        .await?;
        eprintln!("[{name}] node{} joined, unsealed, standby", i + 1);
    }

    let (status, body) = call(
        leader,
        &token,
        Method::POST,
        "/v1/sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await?;
    if !matches!(status, 200 | 204) {
        bail!("{name}: mounting secret/: HTTP {status} {body}");
    }
    // A fresh KV v2 mount may answer "upgrading" for a moment, and a
    // standby sees it once replicated: wait until every node takes a write
    // and serves the value back.
    for (i, a) in addrs.iter().enumerate() {
        let path = format!("/v1/secret/data/bench-probe-{}", i + 1);
        let what = format!("KV v2 write and read through node{}", i + 1);
        wait_until(cluster, &what, timeout, || async {
            let probe = json!({"data": {"probe": "1"}});
            matches!(
                call(a, &token, Method::PUT, &path, Some(probe)).await,
                Ok((200 | 204, _))
            ) && matches!(
                call(a, &token, Method::GET, &path, None).await,
                Ok((200, _))
            )
        })
        .await?;
    }
    // OpenBao's autopilot adds joining nodes as non-voters and promotes
    // them once stable (10 s by default); until then the leader alone is
    // the quorum. Measure only a cluster where every node votes.
    let t0 = Instant::now();
    let n = addrs.len();
    wait_until(
        cluster,
        "every node a raft voter",
        Duration::from_secs(120),
        || async {
            let path = "/v1/sys/storage/raft/configuration";
            match call(leader, &token, Method::GET, path, None).await {
                Ok((200, b)) => b["data"]["config"]["servers"]
                    .as_array()
                    .is_some_and(|v| v.len() == n && v.iter().all(|s| s["voter"] == json!(true))),
                _ => false,
            }
        },
    )
    .await?;
    eprintln!(
        "[{name}] all {n} nodes are raft voters ({:.1} s after the mount)",
        t0.elapsed().as_secs_f64()
    );
    let (_, h) = call(leader, "", Method::GET, "/v1/sys/health", None).await?;
    let version = h["version"].as_str().unwrap_or("?").to_string();
    Ok(Formed {
        token,
        version,
        key,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClusterPhase {
    Write,
    /// Each server's default read consistency.
    Read,
    /// Arca with `X-Arca-Consistency: stale`.
    ReadStale,
}

impl ClusterPhase {
    fn key(self) -> &'static str {
        match self {
            ClusterPhase::Write => "write",
            ClusterPhase::Read => "read",
            ClusterPhase::ReadStale => "read_stale",
        }
    }

    fn describe(self, kind: ServerKind) -> &'static str {
        match (self, kind) {
            (ClusterPhase::Write, _) => "write (PUT), all nodes",
            (ClusterPhase::Read, ServerKind::Arca) => "read (GET), linearizable (default)",
            (ClusterPhase::Read, ServerKind::OpenBao) => {
                "read (GET), default: standbys read locally"
            }
            (ClusterPhase::ReadStale, _) => "read (GET), `X-Arca-Consistency: stale`",
        }
    }
}

struct NodeResult {
    addr: String,
    idle_rss_kib: u64,
    peak_hwm_kib: u64,
}

struct ClusterResult {
    kind: ServerKind,
    version: String,
    nodes: Vec<NodeResult>,
    /// Nodes answering `sys/health` 200 before and after the phases.
    leaders_before: Vec<usize>,
    leaders_after: Vec<usize>,
    phases: Vec<(ClusterPhase, PhaseResult)>,
    /// Per phase, each node's CPU seconds (where the work went).
    node_cpu_s: Vec<Vec<Option<f64>>>,
    /// None with fewer than 3 nodes (no quorum would survive the kill).
    failover: Option<FailoverResult>,
}

impl ClusterResult {
    fn phase(&self, p: ClusterPhase) -> Option<&PhaseResult> {
        self.phases.iter().find(|(q, _)| *q == p).map(|(_, r)| r)
    }

    fn idle_rss_kib(&self) -> u64 {
        self.nodes.iter().map(|n| n.idle_rss_kib).sum()
    }

    fn peak_hwm_kib(&self) -> u64 {
        self.nodes.iter().map(|n| n.peak_hwm_kib).sum()
    }

    fn to_json(&self) -> Value {
        let mut phases = serde_json::Map::new();
        for ((p, r), cpu) in self.phases.iter().zip(&self.node_cpu_s) {
            let mut v = r.to_json();
            v["description"] = json!(p.describe(self.kind));
            v["node_cpu_s"] = json!(cpu
                .iter()
                .map(|c| c.map(|c| round(c, 2)))
                .collect::<Vec<_>>());
            phases.insert(p.key().to_string(), v);
        }
        json!({
            "version": self.version,
            "nodes": self.nodes.iter().map(|n| json!({
                "api_addr": n.addr,
                "idle_vmrss_kib": n.idle_rss_kib,
                "peak_vmhwm_kib": n.peak_hwm_kib,
            })).collect::<Vec<_>>(),
            "leaders_before": self.leaders_before,
            "leaders_after": self.leaders_after,
            "idle_vmrss_kib_sum": self.idle_rss_kib(),
            "peak_vmhwm_kib_sum": self.peak_hwm_kib(),
            "phases": phases,
            "failover": self.failover.as_ref().map(FailoverResult::to_json),
        })
    }
}

// ------------------------------------------------------------ failover --

/// Writers of the failover phase (spread over the nodes that are not the
/// leader).
const FAILOVER_WRITERS: usize = 8;
/// Client timeout of one failover write (connecting included).
const FAILOVER_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after a failed write before the writer tries again.
const FAILOVER_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Steady writes before the leader is killed.
const FAILOVER_STEADY: Duration = Duration::from_secs(2);
/// The phase runs at least this long after the kill...
const FAILOVER_AFTER: Duration = Duration::from_secs(8);
/// ...and, once writes go through again, at least this long after that...
const FAILOVER_TAIL: Duration = Duration::from_secs(1);
/// ...but waits at most this long after the kill for a write to go through.
const FAILOVER_MAX_WAIT: Duration = Duration::from_secs(60);

/// State the failover writers and the phase's driver share.
#[derive(Default)]
struct FailoverShared {
    stop: AtomicBool,
    killed_at: std::sync::OnceLock<Instant>,
    /// Set by the first acknowledged write sent after the kill.
    recovered: AtomicBool,
    counter: AtomicU64,
}

/// Stops the writers when the phase ends, errors included.
struct StopWriters(Arc<FailoverShared>);

impl Drop for StopWriters {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct FailoverWriter {
    /// (request sent, answer received) of every acknowledged write.
    acks: Vec<(Instant, Instant)>,
    errors: u64,
    timeouts: u64,
    /// The first failure of a request sent after the kill, and when.
    first_error: Option<(Instant, String)>,
}

/// Writes KV v2 keys to `target` until stopped, one request at a time, each
/// with a client timeout, trying again after any failure.
async fn failover_writer(
    target: Target,
    shared: Arc<FailoverShared>,
    payload_bytes: usize,
    key_space: u64,
) -> FailoverWriter {
    let mut out = FailoverWriter::default();
    let mut conn: Option<Conn> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let n = shared.counter.fetch_add(1, Ordering::Relaxed);
        let k = if key_space > 0 { n % key_space } else { n };
        let path = format!("/v1/secret/data/bench-{k}");
        let body = payload(n, payload_bytes);
        let sent = Instant::now();
        let attempt = async {
            if conn.is_none() {
                conn = Some(connect(&target.addr).await?);
            }
            let c = conn.as_mut().expect("connected");
            send(c, &target, Method::PUT, &path, Some(body)).await
        };
        let answer = tokio::time::timeout(FAILOVER_REQUEST_TIMEOUT, attempt).await;
        let received = Instant::now();
        let after_kill = shared.killed_at.get().is_some_and(|k| sent >= *k);
        let error = match answer {
            Ok(Ok((200 | 204, _))) => {
                out.acks.push((sent, received));
                if after_kill {
                    shared.recovered.store(true, Ordering::Relaxed);
                }
                continue;
            }
            Ok(Ok((status, body))) => {
                let body = String::from_utf8_lossy(&body);
                format!(
                    "HTTP {status} {}",
                    body.trim().chars().take(200).collect::<String>()
                )
            }
            Ok(Err(e)) => {
                conn = None;
                e.to_string()
            }
            Err(_) => {
                // The connection is mid-request: start afresh.
                conn = None;
                out.timeouts += 1;
                format!("no answer in {} ms", FAILOVER_REQUEST_TIMEOUT.as_millis())
            }
        };
        out.errors += 1;
        if after_kill && out.first_error.is_none() {
            let e = format!("{} {path}: {error}", target.addr);
            out.first_error = Some((received, e));
        }
        tokio::time::sleep(FAILOVER_RETRY_PAUSE).await;
    }
    out
}

struct FailoverResult {
    /// 1-based number of the killed node (the leader).
    killed_node: usize,
    /// 1-based numbers of the nodes the writers went to.
    target_nodes: Vec<usize>,
    /// Nodes answering `sys/health` 200 at the end of the phase.
    leaders_end: Vec<usize>,
    /// From the kill to the first surviving node answering `sys/health` 200.
    active_after: Option<Duration>,
    /// From the kill to the first acknowledged write sent after the kill
    /// (None: none within `FAILOVER_MAX_WAIT`).
    gap: Option<Duration>,
    /// The longest time between successive acknowledged writes, from the
    /// first one to the end of the phase (the end counts as an
    /// acknowledgement, so without recovery this is a lower bound).
    longest_gap: Duration,
    steady: Duration,
    ran_after_kill: Duration,
    acked_before_kill: u64,
    acked_after_kill: u64,
    /// Acknowledged writes per second before the kill.
    rate_before: f64,
    /// Acknowledged writes per second from the first write acknowledged
    /// after recovery to the end of the phase.
    rate_after: Option<f64>,
    errors: u64,
    timeouts: u64,
    first_error: Option<String>,
}

impl FailoverResult {
    fn to_json(&self) -> Value {
        let s = |d: Duration| round(d.as_secs_f64(), 3);
        let nodes = |v: &[usize]| v.iter().map(|n| format!("node{n}")).collect::<Vec<_>>();
        json!({
            "description": format!(
                "{FAILOVER_WRITERS} writers over the non-leader nodes, {} ms client timeout, \
                 retry after {} ms; leader killed (SIGKILL) after {:.1} s of writes",
                FAILOVER_REQUEST_TIMEOUT.as_millis(),
                FAILOVER_RETRY_PAUSE.as_millis(),
                self.steady.as_secs_f64(),
            ),
            "writers": FAILOVER_WRITERS,
            "killed_node": format!("node{}", self.killed_node),
            "target_nodes": nodes(&self.target_nodes),
            "active_nodes_at_end": nodes(&self.leaders_end),
            "new_active_reported_after_s": self.active_after.map(s),
            "recovered": self.gap.is_some(),
            "failover_gap_s": self.gap.map(s),
            "longest_ack_gap_s": s(self.longest_gap),
            "ran_after_kill_s": s(self.ran_after_kill),
            "acked_before_kill": self.acked_before_kill,
            "acked_after_kill": self.acked_after_kill,
            "ack_rate_before_kill_rps": round(self.rate_before, 1),
            "ack_rate_after_recovery_rps": self.rate_after.map(|r| round(r, 1)),
            "errors": self.errors,
            "timeouts": self.timeouts,
            "first_error_after_kill": self.first_error,
        })
    }
}

/// The failover phase: writers on the nodes that are not the leader, the
/// leader killed with SIGKILL after `FAILOVER_STEADY`, the phase running
/// `FAILOVER_AFTER` after the kill, longer (up to `FAILOVER_MAX_WAIT`) until
/// a write sent after the kill is acknowledged.
async fn failover(cluster: &mut Cluster, token: &str, cfg: &Config) -> Result<FailoverResult> {
    let name = cluster.kind.name();
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let found = std::cell::Cell::new(0);
    wait_until(
        cluster,
        "exactly one node answers sys/health 200",
        Duration::from_secs(30),
        || async {
            let l = leaders(&addrs).await;
            found.set(if l.len() == 1 { l[0] } else { 0 });
            found.get() > 0
        },
    )
    .await?;
    let leader = found.get() - 1;
    let survivors: Vec<usize> = (0..addrs.len()).filter(|&i| i != leader).collect();
    let shared = Arc::new(FailoverShared::default());
    let stop = StopWriters(shared.clone());
    eprintln!(
        "[{name}] failover: {FAILOVER_WRITERS} writers over {}, {} ms client timeout; \
         killing node{} (the leader) after {:?}",
        node_list(&survivors.iter().map(|i| i + 1).collect::<Vec<_>>()),
        FAILOVER_REQUEST_TIMEOUT.as_millis(),
        leader + 1,
        FAILOVER_STEADY
    );
    let start = Instant::now();
    let writers: Vec<_> = (0..FAILOVER_WRITERS)
        .map(|w| {
            let target = Target {
                addr: addrs[survivors[w % survivors.len()]].clone(),
                token: token.to_string(),
                stale: false,
            };
            tokio::spawn(failover_writer(
                target,
                shared.clone(),
                cfg.payload_bytes,
                cfg.keys,
            ))
        })
        .collect();

    tokio::time::sleep(FAILOVER_STEADY).await;
    cluster.check_alive()?;
    let killed_at = Instant::now();
    let _ = shared.killed_at.set(killed_at);
    cluster.kill(leader)?;

    let mut active_after = None;
    let mut recovered_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cluster.check_alive()?;
        if active_after.is_none() {
            for &i in &survivors {
                let probe = call(&addrs[i], "", Method::GET, "/v1/sys/health", None);
                let answer = tokio::time::timeout(Duration::from_millis(300), probe).await;
                if matches!(answer, Ok(Ok((200, _)))) {
                    active_after = Some(killed_at.elapsed());
                    break;
                }
            }
        }
        let now = Instant::now();
        if recovered_at.is_none() && shared.recovered.load(Ordering::Relaxed) {
            recovered_at = Some(now);
        }
        let since = now - killed_at;
        let done = match recovered_at {
            Some(r) => since >= FAILOVER_AFTER && now - r >= FAILOVER_TAIL,
            None => since >= FAILOVER_MAX_WAIT,
        };
        if done {
            break;
        }
    }
    drop(stop);
    let mut acks = Vec::new();
    let (mut errors, mut timeouts, mut first_error) = (0, 0, None);
    for w in writers {
        let w = w.await.expect("failover writer panicked");
        acks.extend(w.acks);
        errors += w.errors;
        timeouts += w.timeouts;
        first_error = match (first_error, w.first_error) {
            (Some(a), Some(b)) => Some(std::cmp::min_by_key(a, b, |e| e.0)),
            (a, b) => a.or(b),
        };
    }
    let end = Instant::now();
    let leaders_end = leaders(&addrs).await;

    let gap_ack = acks
        .iter()
        .filter(|(sent, _)| *sent >= killed_at)
        .map(|(_, acked)| *acked)
        .min();
    let mut times: Vec<Instant> = acks.iter().map(|(_, acked)| *acked).collect();
    times.sort_unstable();
    times.push(end);
    let longest_gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let acked_before_kill = times[..times.len() - 1]
        .iter()
        .filter(|t| **t < killed_at)
        .count() as u64;
    let acked_after_kill = acks.len() as u64 - acked_before_kill;
    let rate_after = gap_ack.map(|first| {
        let n = acks.iter().filter(|(_, acked)| *acked >= first).count();
        n as f64 / (end - first).as_secs_f64().max(1e-3)
    });
    let r = FailoverResult {
        killed_node: leader + 1,
        target_nodes: survivors.iter().map(|i| i + 1).collect(),
        leaders_end,
        active_after,
        gap: gap_ack.map(|a| a - killed_at),
        longest_gap,
        steady: killed_at - start,
        ran_after_kill: end - killed_at,
        acked_before_kill,
        acked_after_kill,
        rate_before: acked_before_kill as f64 / (killed_at - start).as_secs_f64(),
        rate_after,
        errors,
        timeouts,
        first_error: first_error.map(|e| e.1),
    };
    match r.gap {
        Some(g) => eprintln!(
            "[{name}]   failover gap {:.3} s (new active node reported after {}), \
             longest gap between acknowledged writes {:.3} s, {} errors ({} timeouts)",
            g.as_secs_f64(),
            secs(r.active_after),
            r.longest_gap.as_secs_f64(),
            r.errors,
            r.timeouts
        ),
        None => eprintln!(
            "[{name}]   no write acknowledged within {:?} of the kill ({} errors, {} timeouts)",
            FAILOVER_MAX_WAIT, r.errors, r.timeouts
        ),
    }
    if let Some(e) = &r.first_error {
        eprintln!("[{name}]   first error after the kill: {e}");
    }
    Ok(r)
}

/// Seconds with three decimals, "none" for None.
fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.3} s", d.as_secs_f64()))
        .unwrap_or_else(|| "none".into())
}

async fn bench_cluster(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<ClusterResult> {
    let name = kind.name();
    let mut cluster = Cluster::start(kind, cfg, out_dir)?;
    for (i, n) in cluster.nodes.iter().enumerate() {
        eprintln!(
            "[{name}] node{} pid {} on {} (log {})",
            i + 1,
            n.pid(),
            n.addr,
            n.log.display()
        );
    }
    let formed = form(&mut cluster).await?;
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.pid()).collect();
    let ticks = clock_ticks_per_sec();
    // Let start-up settle before the idle reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle: Vec<u64> = pids
        .iter()
        .map(|&p| read_mem(p).map(|m| m.1).unwrap_or(0))
        .collect();
    let leaders_before = leaders(&addrs).await;
    let samplers: Vec<MemSampler> = pids.iter().map(|&p| MemSampler::start(p)).collect();
    let watched: Vec<Watched<'_>> = pids
        .iter()
        .zip(&samplers)
        .map(|(&pid, sampler)| Watched { pid, sampler })
        .collect();
    let targets = |stale: bool| -> Vec<Target> {
        addrs
            .iter()
            .map(|a| Target {
                addr: a.clone(),
                token: formed.token.clone(),
                stale,
            })
            .collect()
    };

    let mut phases = Vec::new();
    let mut node_cpu_s = Vec::new();
    let node_cpu = || -> Vec<Option<f64>> { pids.iter().map(|&p| cpu_seconds(p, ticks)).collect() };
    let counter = Arc::new(AtomicU64::new(0));
    let mut written = 0;
    let mut todo = vec![ClusterPhase::Write, ClusterPhase::Read];
    if kind == ServerKind::Arca {
        todo.push(ClusterPhase::ReadStale);
    }
    for p in todo {
        cluster.check_alive()?;
        eprintln!(
            "[{name}] {}: {} connections over {} nodes, {:?}",
            p.describe(kind),
            cfg.concurrency,
            addrs.len(),
            cfg.duration
        );
        let phase = if p == ClusterPhase::Write {
            Phase::Write
        } else {
            Phase::Read
        };
        let cpu0 = node_cpu();
        let r = run_phase(
            cfg,
            &targets(p == ClusterPhase::ReadStale),
            &watched,
            phase,
            written,
            counter.clone(),
            ticks,
        )
        .await;
        let cpu1 = node_cpu();
        node_cpu_s.push(
            cpu0.iter()
                .zip(&cpu1)
                .map(|(a, b)| Some(b.as_ref()? - a.as_ref()?))
                .collect(),
        );
        if p == ClusterPhase::Write {
            // Keys 0..issued were attempted; the read phases draw from them.
            written = match cfg.keys {
                0 => counter.load(Ordering::Relaxed),
                k => counter.load(Ordering::Relaxed).min(k),
            };
        }
        eprintln!(
            "[{name}]   {} ok, {} errors, {:.0} req/s",
            r.ok,
            r.errors,
            r.throughput()
        );
        phases.push((p, r));
    }
    let leaders_after = leaders(&addrs).await;
    drop(watched);
    let nodes = samplers
        .into_iter()
        .zip(&pids)
        .zip(addrs)
        .zip(idle)
        .map(|(((s, &pid), addr), idle_rss_kib)| NodeResult {
            addr,
            idle_rss_kib,
            peak_hwm_kib: s.finish(pid).0,
        })
        .collect();
    cluster.check_alive()?;
    let failover = if cfg.nodes >= 3 {
        Some(failover(&mut cluster, &formed.token, cfg).await?)
    } else {
        eprintln!("[{name}] failover phase skipped: it needs at least 3 nodes");
        None
    };
    cluster.stop();
    Ok(ClusterResult {
        kind,
        version: formed.version,
        nodes,
        leaders_before,
        leaders_after,
        phases,
        node_cpu_s,
        failover,
    })
}

fn ratios(results: &[ClusterResult]) -> Option<Value> {
    let a = results.iter().find(|r| r.kind == ServerKind::Arca)?;
    let b = results.iter().find(|r| r.kind == ServerKind::OpenBao)?;
    let bread = b.phase(ClusterPhase::Read)?;
    let gap = |r: &ClusterResult| r.failover.as_ref().and_then(|f| f.gap);
    let longest = |r: &ClusterResult| r.failover.as_ref().map(|f| f.longest_gap);
    let secs_ratio =
        |x: Option<Duration>, y: Option<Duration>| ratio(x?.as_secs_f64(), y?.as_secs_f64());
    Some(json!({
        "write": phase_ratios(a.phase(ClusterPhase::Write)?, b.phase(ClusterPhase::Write)?),
        "read_default": phase_ratios(a.phase(ClusterPhase::Read)?, bread),
        "read_stale": phase_ratios(a.phase(ClusterPhase::ReadStale)?, bread),
        "peak_vmhwm_sum": ratio(a.peak_hwm_kib() as f64, b.peak_hwm_kib() as f64),
        "failover_gap": secs_ratio(gap(a), gap(b)),
        "failover_longest_ack_gap": secs_ratio(longest(a), longest(b)),
    }))
}

fn node_list(v: &[usize]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|n| format!("node{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn markdown(cfg: &Config, results: &[ClusterResult], host: &Value) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "KV v2 on {n}-node raft clusters, {} connections spread round-robin over the {n} nodes, {} s per phase, {}-byte values, {} keys, {} client thread(s); host: {} CPUs ({}), {}, load average before: {}\n\n",
        cfg.concurrency,
        cfg.duration.as_secs_f64(),
        cfg.payload_bytes,
        cfg.keys,
        cfg.client_threads,
        host["cpus"],
        host["cpu_model"].as_str().unwrap_or("?"),
        host["kernel"].as_str().unwrap_or("?"),
        host["loadavg_1m_before"],
        n = cfg.nodes,
    ));
    s.push_str(&format!(
        "| server | version | phase | req/s | p50 ms | p99 ms | errors | CPU s ({n} nodes) | req per CPU s | peak VmHWM MiB (sum of {n}) |\n",
        n = cfg.nodes
    ));
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        for (p, ph) in &r.phases {
            let cpu = ph.server_cpu_s;
            s.push_str(&format!(
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                r.kind.name(),
                r.version,
                p.describe(r.kind),
                ph.throughput(),
                ms(ph.p50_us),
                ms(ph.p99_us),
                ph.errors,
                cpu.map(|c| format!("{c:.1}")).unwrap_or_else(|| "?".into()),
                cpu.filter(|c| *c > 0.0)
                    .map(|c| format!("{:.0}", ph.ok as f64 / c))
                    .unwrap_or_else(|| "?".into()),
                mib(ph.peak_hwm_kib),
            ));
        }
    }
    s.push('\n');
    for r in results {
        let per_node = |f: fn(&NodeResult) -> u64| {
            r.nodes
                .iter()
                .map(|n| mib(f(n)))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        s.push_str(&format!(
            "- {}: leader {} (before), {} (after); idle RSS {} = {} MiB; peak VmHWM {} = {} MiB; {} write requests\n",
            r.kind.name(),
            node_list(&r.leaders_before),
            node_list(&r.leaders_after),
            per_node(|n| n.idle_rss_kib),
            mib(r.idle_rss_kib()),
            per_node(|n| n.peak_hwm_kib),
            mib(r.peak_hwm_kib()),
            r.phase(ClusterPhase::Write).map(|p| p.ok).unwrap_or(0),
        ));
        let cpu = r
            .phases
            .iter()
            .zip(&r.node_cpu_s)
            .map(|((p, _), c)| {
                let c: Vec<String> = c
                    .iter()
                    .map(|c| c.map(|c| format!("{c:.1}")).unwrap_or_else(|| "?".into()))
                    .collect();
                format!("{} {}", p.key(), c.join(" / "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        s.push_str(&format!(
            "  - CPU s per node (node1 / node2 / ...): {cpu}\n"
        ));
    }
    let failovers: Vec<(&ClusterResult, &FailoverResult)> = results
        .iter()
        .filter_map(|r| Some((r, r.failover.as_ref()?)))
        .collect();
    if let Some((_, f0)) = failovers.first() {
        s.push_str(&format!(
            "\nFailover: {FAILOVER_WRITERS} writers spread over the {} nodes that are not the leader (each write with a {} ms client timeout, retried {} ms after any failure); after {:.0} s of writes the leader is killed (SIGKILL); the phase runs {} s after the kill, longer (up to {} s) until a write sent after the kill is acknowledged. Failover gap: from the kill to the first acknowledged write sent after it.\n\n",
            cfg.nodes - 1,
            FAILOVER_REQUEST_TIMEOUT.as_millis(),
            FAILOVER_RETRY_PAUSE.as_millis(),
            f0.steady.as_secs_f64(),
            FAILOVER_AFTER.as_secs(),
            FAILOVER_MAX_WAIT.as_secs(),
        ));
        s.push_str("| server | killed | failover gap s | longest gap between acknowledged writes s | new active node reported after s | active at the end | acknowledged writes/s before the kill | after recovery | failed writes (timeouts) |\n");
        s.push_str("|---|---|---:|---:|---:|---|---:|---:|---:|\n");
        for (r, f) in &failovers {
            let gap = match f.gap {
                Some(g) => format!("{:.3}", g.as_secs_f64()),
                None => format!(
                    "> {:.0} (no write went through)",
                    f.ran_after_kill.as_secs_f64()
                ),
            };
            let longest = if f.gap.is_some() {
                format!("{:.3}", f.longest_gap.as_secs_f64())
            } else {
                format!("≥ {:.3}", f.longest_gap.as_secs_f64())
            };
            s.push_str(&format!(
                "| {} | node{} (leader) | {gap} | {longest} | {} | {} | {:.0} | {} | {} ({}) |\n",
                r.kind.name(),
                f.killed_node,
                f.active_after
                    .map(|d| format!("{:.3}", d.as_secs_f64()))
                    .unwrap_or_else(|| "none".into()),
                node_list(&f.leaders_end),
                f.rate_before,
                f.rate_after
                    .map(|r| format!("{r:.0}"))
                    .unwrap_or_else(|| "-".into()),
                f.errors,
                f.timeouts,
            ));
        }
        for (r, f) in &failovers {
            if let Some(e) = &f.first_error {
                s.push_str(&format!(
                    "\n- {}: first failed write after the kill: `{}`",
                    r.kind.name(),
                    e.replace('`', "'")
                ));
            }
        }
        s.push('\n');
    }
    if let Some(rt) = ratios(results) {
        let f = fmt_ratio;
        s.push_str("\nArca / OpenBao (throughput > 1 and latency, memory, failover gaps < 1 favour Arca):\n\n");
        s.push_str("| compared | Arca | OpenBao | throughput | p50 latency | p99 latency |\n");
        s.push_str("|---|---|---|---:|---:|---:|\n");
        for (key, what, a, b) in [
            ("write", "writes", "via all nodes", "via all nodes"),
            (
                "read_default",
                "reads, default consistency",
                "linearizable",
                "standbys read locally",
            ),
            (
                "read_stale",
                "reads, local on every node",
                "`X-Arca-Consistency: stale`",
                "standbys read locally",
            ),
        ] {
            s.push_str(&format!(
                "| {what} | {a} | {b} | {} | {} | {} |\n",
                f(&rt[key]["throughput"]),
                f(&rt[key]["p50_latency"]),
                f(&rt[key]["p99_latency"])
            ));
        }
        s.push_str(&format!(
            "\npeak VmHWM ratio (sum over the nodes): {}\n",
            f(&rt["peak_vmhwm_sum"])
        ));
        if !failovers.is_empty() {
            s.push_str(&format!(
                "\nfailover gap ratio: {}; longest gap between acknowledged writes ratio: {}\n",
                f(&rt["failover_gap"]),
                f(&rt["failover_longest_ack_gap"])
            ));
        }
    }
    s
}

pub(super) fn run(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    out_dir: &Path,
    host: Value,
) -> Result<()> {
    let mut results = Vec::new();
    for &kind in &cfg.servers {
        results.push(rt.block_on(bench_cluster(kind, cfg, out_dir))?);
    }
    let now = unix_now();
    let mut servers = BTreeMap::new();
    for r in &results {
        servers.insert(r.kind.name().to_string(), r.to_json());
    }
    let summary = json!({
        "benchmark": "kv-v2-cluster",
        "unix_time": now,
        "host": host,
        "config": {
            "nodes": cfg.nodes,
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "payload_bytes": cfg.payload_bytes,
            "keys": cfg.keys,
            "client_threads": cfg.client_threads,
            "mode": "raft storage in a temporary directory per node, plain HTTP on loopback, keep-alive HTTP/1.1, connection i to node i mod nodes",
            "write": "PUT /v1/secret/data/bench-<n> {\"data\":{\"value\":<payload>,\"n\":<n>}}",
            "read": "GET /v1/secret/data/bench-<k>, k uniform over the keys written",
            "read_stale": "as read, with X-Arca-Consistency: stale (Arca only)",
            "failover": format!(
                "after the read phases: {FAILOVER_WRITERS} writers (PUT as in write) spread over the nodes that are not the leader, {} ms client timeout per write, retry {} ms after a failure; the leader (sys/health 200) is killed with SIGKILL after {} s; the phase runs {} s after the kill, up to {} s until a write sent after the kill is acknowledged",
                FAILOVER_REQUEST_TIMEOUT.as_millis(),
                FAILOVER_RETRY_PAUSE.as_millis(),
                FAILOVER_STEADY.as_secs(),
                FAILOVER_AFTER.as_secs(),
                FAILOVER_MAX_WAIT.as_secs(),
            ),
        },
        "servers": servers,
        "ratios_arca_over_openbao": ratios(&results),
    });
    let md = markdown(cfg, &results, &summary["host"]);
    write_results(out_dir, "cluster", now, &summary, &md)?;
    report_errors(results.iter().flat_map(|r| {
        r.phases
            .iter()
            .map(move |(p, ph)| (r.kind.name(), p.key(), ph))
    }));
    Ok(())
}

/// The servers under load: one dev server, or the nodes of a raft cluster
/// (stopped when dropped).
pub(super) enum Deployment {
    Dev(ServerProc),
    Cluster(Cluster),
}

impl Deployment {
    pub(super) fn stop(&mut self) {
        match self {
            Deployment::Dev(s) => s.stop(),
            Deployment::Cluster(c) => c.stop(),
        }
    }
}

/// A started deployment: the API address and pid of every node (node 1
/// first), the root token and the version.
pub(super) struct Running {
    pub(super) deployment: Deployment,
    pub(super) addrs: Vec<String>,
    pub(super) pids: Vec<u32>,
    pub(super) token: String,
    pub(super) version: String,
}

/// Starts `kind` as `cfg.nodes` says: a dev server made by `dev` (a bench
/// may give OpenBao's dev server options), or a formed raft cluster.
pub(super) async fn start(
    kind: ServerKind,
    cfg: &Config,
    out_dir: &Path,
    dev: fn(ServerKind, &Config, &Path) -> Result<ServerProc>,
) -> Result<Running> {
    if cfg.nodes <= 1 {
        let mut server = dev(kind, cfg, out_dir)?;
        let version = wait_ready(&mut server).await?;
        return Ok(Running {
            addrs: vec![server.addr.clone()],
            pids: vec![server.pid()],
            token: ROOT_TOKEN.to_string(),
            version,
            deployment: Deployment::Dev(server),
        });
    }
    let mut cluster = Cluster::start(kind, cfg, out_dir)?;
    for (i, n) in cluster.nodes.iter().enumerate() {
        eprintln!(
            "[{}] node{} pid {} on {} (log {})",
            kind.name(),
            i + 1,
            n.pid(),
            n.addr,
            n.log.display()
        );
    }
    let formed = form(&mut cluster).await?;
    Ok(Running {
        addrs: cluster.nodes.iter().map(|n| n.addr.clone()).collect(),
        pids: cluster.nodes.iter().map(|n| n.pid()).collect(),
        token: formed.token,
        version: formed.version,
        deployment: Deployment::Cluster(cluster),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_args() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = parse_args(&a("cluster")).unwrap();
        assert_eq!(c.mode, Mode::Cluster);
        assert_eq!(c.nodes, 3);
        let c = parse_args(&a("cluster --nodes 5 -c 8 --servers arca")).unwrap();
        assert_eq!((c.nodes, c.concurrency), (5, 8));
        assert_eq!(c.servers, vec![ServerKind::Arca]);
        assert!(parse_args(&a("cluster --nodes 0")).is_err());
        assert!(parse_args(&a("cluster --arca-port 8200")).is_err());
        assert!(parse_args(&a("kv --nodes 3")).is_err());
    }

    #[test]
    fn ports_are_distinct() {
        let mut p = free_ports(6).unwrap();
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn hcl_shape() {
        let h = node_hcl(ServerKind::OpenBao, 1, Path::new("/d/data"), 8200, 8201);
        assert!(h.contains(r#"node_id = "node2""#));
        assert!(h.contains(r#"path    = "/d/data""#));
        assert!(h.contains(r#"cluster_address = "127.0.0.1:8201""#));
        assert!(h.contains(r#"api_addr     = "http://127.0.0.1:8200""#));
        assert!(h.contains(r#"cluster_addr = "https://127.0.0.1:8201""#));
        let h = node_hcl(ServerKind::Arca, 0, Path::new("/d/data"), 8200, 8201);
        assert!(h.contains(r#"cluster_addr = "http://127.0.0.1:8201""#));
    }
}
