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
//!    every node;
//! 3. write phase: connection `i` goes to node `i mod nodes` (standbys
//!    forward writes to the leader);
//! 4. read phase, spread the same way, with each server's default
//!    consistency: Arca serves linearizable reads (a standby asks the leader
//!    for a read index), OpenBao standbys serve reads from their own copy;
//! 5. Arca only: read phase with `X-Arca-Consistency: stale` (local reads on
//!    every node, like OpenBao's standby reads);
//! 6. stop every node (SIGTERM) and remove the data directories; an error
//!    at any step stops the nodes too.
//!
//! CPU time and peak VmHWM are summed over the nodes of the cluster.

use super::*;

/// The nodes of one cluster; stopped and their data removed on drop.
struct Cluster {
    kind: ServerKind,
    nodes: Vec<ServerProc>,
    /// Temporary directory holding each node's `node.hcl` and raft data.
    root: PathBuf,
    /// The node (0-based) the failover phase killed, if it did.
    killed: Option<usize>,
}

impl Cluster {
    fn start(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<Cluster> {
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

    fn stop(&mut self) {
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
  tls_disable     = true
}}

api_addr     = "http://127.0.0.1:{api}"
cluster_addr = "{cluster_scheme}://127.0.0.1:{cport}"
"#,
        data = data.display(),
        n = i + 1,
    )
}

/// One setup request; the body parsed as JSON (Null if empty or not JSON).
async fn call(
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
struct Formed {
    token: String,
    version: String,
}

/// Initializes node 1, joins and unseals the others, mounts KV v2 and waits
/// until every node takes a write and a read.
async fn form(cluster: &mut Cluster) -> Result<Formed> {
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
    let (_, h) = call(leader, "", Method::GET, "/v1/sys/health", None).await?;
    let version = h["version"].as_str().unwrap_or("?").to_string();
    Ok(Formed { token, version })
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
        })
    }
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
    cluster.stop();
    Ok(ClusterResult {
        kind,
        version: formed.version,
        nodes,
        leaders_before,
        leaders_after,
        phases,
        node_cpu_s,
    })
}

fn ratios(results: &[ClusterResult]) -> Option<Value> {
    let a = results.iter().find(|r| r.kind == ServerKind::Arca)?;
    let b = results.iter().find(|r| r.kind == ServerKind::OpenBao)?;
    let bread = b.phase(ClusterPhase::Read)?;
    Some(json!({
        "write": phase_ratios(a.phase(ClusterPhase::Write)?, b.phase(ClusterPhase::Write)?),
        "read_default": phase_ratios(a.phase(ClusterPhase::Read)?, bread),
        "read_stale": phase_ratios(a.phase(ClusterPhase::ReadStale)?, bread),
        "peak_vmhwm_sum": ratio(a.peak_hwm_kib() as f64, b.peak_hwm_kib() as f64),
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
    if let Some(rt) = ratios(results) {
        let f = fmt_ratio;
        s.push_str("\nArca / OpenBao (throughput > 1 and latency, memory < 1 favour Arca):\n\n");
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
