//! Wires a Raft node to core and to the HTTP layer — the one place where
//! the raft crate meets the rest:
//! - [`RaftCluster`] implements core's `Cluster` trait over `RaftNode`;
//! - [`RaftForwarder`] sends a request a standby could not serve to the
//!   leader's cluster port, and [`LocalHandler`] replays forwarded requests
//!   through this node's own HTTP router;
//! - [`watch_applied`] turns applied Raft entries into core cache
//!   invalidations on every node.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast::error::RecvError;

use arca_core::cluster::{Cluster, ClusterError, ClusterIdentity, ClusterMember, ClusterState};
use arca_core::Core;
use arca_raft::{
    ApplyEvent, ClientConn, ForwardHandler, ForwardReq, ForwardResp, NodeError, NodeInfo, RaftNode,
};

pub struct RaftCluster {
    pub node: Arc<RaftNode>,
    /// Core issues this node's cluster certificate (no certificate files
    /// were configured).
    pub managed_identity: bool,
    /// Progress of [`watch_applied`]: events handled so far.
    pub handled: Arc<Handled>,
}

/// How many apply events the invalidation task has handled, and a way to
/// wait for more.
#[derive(Default)]
pub struct Handled {
    count: std::sync::atomic::AtomicU64,
    changed: tokio::sync::Notify,
}

impl Handled {
    fn add(&self, n: u64) {
        self.count.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn set_at_least(&self, n: u64) {
        self.count.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits until `target` events are handled; false on timeout.
    async fn wait_for(&self, target: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) >= target {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

fn member(n: &NodeInfo, voter: bool, leader: bool) -> ClusterMember {
    ClusterMember {
        node_id: n.name.clone(),
        api_addr: n.api_addr.clone(),
        cluster_addr: n.cluster_addr.clone(),
        voter,
        leader,
    }
}

fn map_err(e: NodeError) -> ClusterError {
    match e {
        NodeError::NotLeader { .. } => ClusterError::NotActive,
        NodeError::NoLeader => ClusterError::NoLeader,
        NodeError::Invalid(m) => ClusterError::Invalid(m),
        other => ClusterError::Failed(other.to_string()),
    }
}

#[async_trait]
impl Cluster for RaftCluster {
    fn state(&self) -> ClusterState {
        let s = self.node.status();
        ClusterState {
            this: member(self.node.info(), true, s.is_leader),
            is_active: s.is_leader,
            leader: s.leader.as_ref().map(|l| member(l, true, true)),
            term: s.term,
            committed_index: s.committed_index,
            applied_index: s.applied_index,
            has_cluster: s.initialized,
        }
    }

    fn members(&self) -> Vec<ClusterMember> {
        self.node
            .peers()
            .into_iter()
            .map(|p| ClusterMember {
                node_id: p.name,
                api_addr: p.api_addr,
                cluster_addr: p.cluster_addr,
                voter: p.voter,
                leader: p.leader,
            })
            .collect()
    }

    async fn bootstrap(&self) -> Result<(), ClusterError> {
        self.node.bootstrap().await.map_err(map_err)
    }

    async fn add_member(&self, m: ClusterMember) -> Result<(), ClusterError> {
        let info = NodeInfo {
            name: m.node_id,
            api_addr: m.api_addr,
            cluster_addr: m.cluster_addr,
        };
        self.node
            .add_peer_nowait(info, m.voter)
            .await
            .map_err(map_err)
    }

    async fn remove_member(&self, node_id: &str) -> Result<(), ClusterError> {
        self.node.remove_peer(node_id).await.map_err(map_err)
    }

    async fn step_down(&self) -> Result<(), ClusterError> {
        self.node.step_down().await.map_err(map_err)
    }

    fn set_electable(&self, on: bool) {
        self.node.set_electable(on)
    }

    fn managed_identity(&self) -> bool {
        self.managed_identity
    }

    fn set_identity(&self, id: Option<ClusterIdentity>) -> Result<(), ClusterError> {
        let tls = id.map(|id| arca_raft::ClusterTls {
            cert_pem: id.cert_pem.into_bytes(),
            key_pem: zeroize::Zeroizing::new(id.key_pem.as_bytes().to_vec()),
            ca_pem: id.ca_pem.into_bytes(),
        });
        self.node
            .set_identity(tls.as_ref())
            .map_err(|e| ClusterError::Failed(e.to_string()))
    }

    async fn read_barrier(&self, timeout: Duration) -> Result<(), ClusterError> {
        self.node.read_barrier(timeout).await.map_err(map_err)?;
        // Applied is not enough: caches (router, keyring, policies) must
        // have seen those changes too before the request runs.
        let target = self.node.events_sent();
        if !self.handled.wait_for(target, timeout).await {
            return Err(ClusterError::Failed(
                "this node's caches did not catch up with the data in time; retry".into(),
            ));
        }
        Ok(())
    }

    async fn export(&self, out: &std::path::Path) -> Result<(u64, u64), ClusterError> {
        self.node.export_records(out).await.map_err(map_err)
    }

    async fn import(&self, file: &std::path::Path) -> Result<(), ClusterError> {
        self.node
            .import_records(file)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

/// Sends requests this node cannot serve to the leader.
pub struct RaftForwarder {
    pub node: Arc<RaftNode>,
    /// Progress of [`watch_applied`] (read-your-writes includes caches).
    pub handled: Arc<Handled>,
}

#[async_trait]
impl arca_http::Forwarder for RaftForwarder {
    async fn forward(
        &self,
        req: arca_http::ForwardedRequest,
    ) -> Result<arca_http::ForwardedResponse, String> {
        // An election may be under way: wait (bounded) for a leader.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let fr = ForwardReq {
                method: req.method.clone(),
                uri: req.uri.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
                client: req.connection.as_ref().map(|c| ClientConn {
                    remote_addr: c.remote_addr.to_string(),
                    remote_port: c.remote_port,
                    peer_certificates: c
                        .peer_certificates
                        .iter()
                        .map(|d| serde_bytes::ByteBuf::from(d.clone()))
                        .collect(),
                }),
            };
            match self.node.forward(fr).await {
                Ok(r) => {
                    // Read-your-writes on this node: the answer leaves only
                    // once this node has applied what the leader had.
                    if let Some(idx) = r
                        .headers
                        .iter()
                        .find(|(n, _)| n == INDEX_HEADER)
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                    {
                        if self.node.wait_applied(idx, Duration::from_secs(2)).await {
                            // ... and its caches have seen it (a rotated
                            // transit key, a changed policy).
                            let target = self.node.events_sent();
                            self.handled.wait_for(target, Duration::from_secs(2)).await;
                        }
                    }
                    return Ok(arca_http::ForwardedResponse {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                    });
                }
                // Retry only what certainly did not run on a leader: a
                // request that may have been applied is never sent twice
                // (the client gets an error and decides).
                Err(
                    e @ (NodeError::NoLeader
                    | NodeError::Invalid(_)
                    | NodeError::Unreachable { sent: false, .. }),
                ) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("forwarding to the leader failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e @ NodeError::Unreachable { sent: true, .. }) => {
                    return Err(format!("{e}; the request may or may not have been applied"))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Response header of a forwarded request: the leader's applied index
/// after serving it.
const INDEX_HEADER: &str = "x-arca-index";

/// Serves requests forwarded to this node through its own HTTP router.
pub struct LocalHandler {
    pub core: Arc<Core>,
    pub node: Arc<RaftNode>,
}

#[async_trait]
impl ForwardHandler for LocalHandler {
    async fn handle(&self, req: ForwardReq) -> ForwardResp {
        let r = arca_http::serve_forwarded(
            self.core.clone(),
            arca_http::ForwardedRequest {
                method: req.method,
                uri: req.uri,
                headers: req.headers,
                body: req.body,
                // A peer of the authenticated cluster port says where the
                // client connected; an address it cannot parse is dropped.
                connection: req.client.and_then(|c| {
                    Some(arca_sdk::Connection {
                        remote_addr: c.remote_addr.parse().ok()?,
                        remote_port: c.remote_port,
                        peer_certificates: c
                            .peer_certificates
                            .into_iter()
                            .map(|b| b.into_vec())
                            .collect(),
                    })
                }),
            },
        )
        .await;
        let mut headers = r.headers;
        headers.push((
            INDEX_HEADER.into(),
            self.node.applied_index_now().to_string(),
        ));
        ForwardResp {
            status: r.status,
            headers,
            body: r.body,
        }
    }
}

/// Applies cache invalidations for every entry this node applies, and
/// counts them in `handled` (the read barrier waits on it).
pub fn watch_applied(node: &Arc<RaftNode>, core: Arc<Core>, handled: Arc<Handled>) {
    let mut rx = node.subscribe();
    // What was applied before subscribing is in the state core loads when
    // it unseals: count it as handled.
    handled.set_at_least(node.events_sent());
    let node = Arc::clone(node);
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ApplyEvent::Keys(keys)) => {
                    core.storage_changed(&keys).await;
                    handled.add(1);
                }
                Ok(ApplyEvent::Reset) => {
                    core.storage_reset().await;
                    handled.add(1);
                }
                Err(RecvError::Lagged(_)) => {
                    // Events were dropped: reload everything, which covers
                    // every event sent until now.
                    let upto = node.events_sent();
                    core.storage_reset().await;
                    handled.set_at_least(upto);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

// ---------------------------------------------------------------- setup --

use std::net::SocketAddr;

use anyhow::Context;

use crate::config::Config;

/// The port after `addr`'s (Vault's default cluster port is API port + 1).
fn next_port(addr: &SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port().wrapping_add(1))
}

/// Vault's `node_id`: from config, else `<path>/node-id`, else a new UUID
/// written there (so a restarted node keeps its identity).
fn node_name(config: &Config, dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(n) = config.storage.node_id.as_ref().filter(|n| !n.is_empty()) {
        // The leader checks the id a joining node signs; refuse here what
        // it would refuse there (and what it would trim: the MAC covers it).
        if n.trim() != n || arca_core::check_server_id(n).is_err() {
            anyhow::bail!(
                "storage.node_id {n:?}: use 1 to {} printable bytes without surrounding spaces",
                arca_core::MAX_SERVER_ID
            );
        }
        return Ok(n.clone());
    }
    let f = dir.join("node-id");
    if let Ok(s) = std::fs::read_to_string(&f) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&f, &id).with_context(|| format!("cannot write {}", f.display()))?;
    Ok(id)
}

fn read_pem(
    opts: &std::collections::BTreeMap<String, String>,
    key: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    match opts.get(key) {
        Some(p) if !p.is_empty() => {
            Ok(Some(std::fs::read(p).with_context(|| {
                format!("cannot read storage.{key} {p}")
            })?))
        }
        _ => Ok(None),
    }
}

/// Opens this node's Raft storage from `storage "raft" { ... }` and starts
/// its cluster port.
pub async fn open_raft(config: &Config) -> anyhow::Result<Arc<RaftNode>> {
    let dir = config
        .storage
        .path
        .clone()
        .context("storage \"raft\" needs a path = \"...\" setting")?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create storage directory {}", dir.display()))?;
    let name = node_name(config, &dir)?;
    let listener = config
        .listeners
        .first()
        .context("raft storage needs a listener \"tcp\" block")?;
    let api_listen: SocketAddr = listener
        .address
        .parse()
        .with_context(|| format!("listener address {:?} is not host:port", listener.address))?;
    let cluster_listen: SocketAddr = match &listener.cluster_address {
        Some(a) => a
            .parse()
            .with_context(|| format!("cluster_address {a:?} is not host:port"))?,
        None => next_port(&api_listen),
    };
    let opts = &config.storage.options;
    let tls = match (
        read_pem(opts, "cluster_cert_file")?,
        read_pem(opts, "cluster_key_file")?,
        read_pem(opts, "cluster_ca_file")?,
    ) {
        (Some(cert_pem), Some(key_pem), Some(ca_pem)) => Some(arca_raft::ClusterTls {
            cert_pem,
            key_pem: zeroize::Zeroizing::new(key_pem),
            ca_pem,
        }),
        (None, None, None) => None,
        _ => anyhow::bail!(
            "cluster TLS needs all of cluster_cert_file, cluster_key_file and cluster_ca_file in the storage \"raft\" block"
        ),
    };
    let api_scheme = if listener.tls_disable {
        "http"
    } else {
        "https"
    };
    let api_addr = config.api_addr.clone().unwrap_or_else(|| {
        let host = if api_listen.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            api_listen.ip().to_string()
        };
        format!("{api_scheme}://{host}:{}", api_listen.port())
    });
    // The cluster port always speaks mutual TLS (Vault's cluster_addr is
    // https too), whatever scheme cluster_addr was written with.
    let cluster_host_port = match &config.cluster_addr {
        Some(a) => a
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(a)
            .trim_end_matches('/')
            .to_string(),
        None => {
            let host = api_addr
                .split_once("://")
                .map(|(_, r)| r)
                .unwrap_or(&api_addr)
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_else(|| "127.0.0.1".into());
            format!("{host}:{}", cluster_listen.port())
        }
    };
    let cluster_addr = format!("https://{cluster_host_port}");
    let mut rc = arca_raft::RaftConfig::new(dir, &name, &api_addr, &cluster_addr, cluster_listen);
    rc.tls = tls;
    let num = |k: &str| -> anyhow::Result<Option<u64>> {
        opts.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("storage.{k} must be a number"))
            })
            .transpose()
    };
    if let Some(m) = num("performance_multiplier")?.filter(|m| *m > 0) {
        rc.heartbeat_ms *= m;
        rc.election_min_ms *= m;
        rc.election_max_ms *= m;
    }
    if let Some(v) = num("snapshot_threshold")? {
        rc.snapshot_threshold = v.max(1);
    }
    if let Some(v) = num("trailing_logs")? {
        rc.trailing_logs = v;
    }
    println!("    Raft node: {name} (api {api_addr}, cluster {cluster_addr}, listening on {cluster_listen})");
    RaftNode::start(rc)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start raft storage: {e}"))
}

/// `retry_join`: until this node has a cluster, ask each configured leader
/// for a join challenge in turn; unsealing then finishes the join.
pub fn spawn_retry_join(
    config: &Config,
    core: Arc<Core>,
    node: Arc<RaftNode>,
) -> anyhow::Result<()> {
    if config.storage.retry_join.is_empty() {
        return Ok(());
    }
    let mut targets = Vec::new();
    for rj in &config.storage.retry_join {
        let read = |p: &Option<std::path::PathBuf>| -> anyhow::Result<String> {
            match p {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read retry_join file {}", p.display())),
                None => Ok(String::new()),
            }
        };
        targets.push(arca_core::JoinRequest {
            leader_api_addr: rj.leader_api_addr.clone(),
            tls: arca_core::JoinTls {
                ca_pem: read(&rj.leader_ca_cert_file)?,
                client_cert_pem: read(&rj.leader_client_cert_file)?,
                client_key_pem: read(&rj.leader_client_key_file)?,
                server_name: rj.leader_tls_servername.clone().unwrap_or_default(),
            },
            retry: false,
            non_voter: false,
        });
    }
    core.set_retry_join(targets);
    tokio::spawn(async move {
        loop {
            if node.has_cluster() || core.initialized().await.unwrap_or(false) {
                return;
            }
            if !core.has_pending_join() && core.retry_join_once().await {
                tracing::info!("retry_join: challenge received; unseal this node to join");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    Ok(())
}
