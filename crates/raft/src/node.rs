//! [`RaftNode`]: one member of the cluster — its database, its Raft, its
//! cluster-port server — and the operations the API layer needs
//! (bootstrap, membership, leadership, read index, forwarding).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::linearizable_read::{Linearizer, ReadLogId};
use openraft::{ChangeMembers, Config, ReadPolicy, ServerState, SnapshotPolicy};
use parking_lot::RwLock;
use rocksdb::DB;
use tokio::sync::broadcast;
use tonic::transport::Server;

use crate::log_store::LogStore;
use crate::network::{Network, MAX_MESSAGE};
use crate::pb::cluster_server::ClusterServer;
use crate::service::{ForwardHandler, ForwardSlot, Service};
use crate::snapshot::SnapshotDir;
use crate::state_machine::{ApplyEvent, StateMachine};
use crate::tls::{ClusterTls, Configs, TlsError, TlsState};
use crate::types::{node_id_of, LogId, NodeInfo, Raft, TypeConfig};
use crate::wire::{ForwardReq, ForwardResp, ReadIndexReq};

#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Data directory (`storage "raft" { path }`).
    pub dir: PathBuf,
    /// Vault's `node_id`.
    pub node_name: String,
    pub api_addr: String,
    /// How peers reach this node's cluster port (`http://` or `https://`).
    pub cluster_addr: String,
    /// Where the cluster port listens.
    pub listen: SocketAddr,
    /// The node's identity from the start (operator-supplied files); with
    /// `None` the port stays closed until [`RaftNode::set_identity`].
    pub tls: Option<ClusterTls>,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Applied entries between automatic snapshots.
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot (for slow followers).
    pub trailing_logs: u64,
}

impl RaftConfig {
    /// Defaults tuned for fail-over well under two seconds on a LAN: a
    /// leader lease of 600 ms (openraft's lease is the maximum election
    /// timeout), then an election with pre-vote.
    pub fn new(
        dir: PathBuf,
        node_name: &str,
        api_addr: &str,
        cluster_addr: &str,
        listen: SocketAddr,
    ) -> Self {
        RaftConfig {
            dir,
            node_name: node_name.to_string(),
            api_addr: api_addr.to_string(),
            cluster_addr: cluster_addr.to_string(),
            listen,
            tls: None,
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 600,
            snapshot_threshold: 8192,
            trailing_logs: 10_000,
        }
    }
}

/// How long a joining voter may take to catch up before it is promoted.
pub const PROMOTE_WITHIN: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeInfo> },
    #[error("no leader is elected at the moment; retry shortly")]
    NoLeader,
    #[error("{0}")]
    Invalid(String),
    #[error("raft: {0}")]
    Raft(String),
    /// `sent` is false only when the request certainly never reached the
    /// leader (the connection could not be made), so it is safe to retry.
    #[error("cannot reach the leader at {addr}: {msg}")]
    Unreachable {
        addr: String,
        msg: String,
        sent: bool,
    },
}

/// A member of the cluster as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    pub id: u64,
    pub api_addr: String,
    pub cluster_addr: String,
    pub voter: bool,
    pub leader: bool,
}

/// Figures for `sys/leader`, `sys/ha-status`, `sys/health`.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub term: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub leader: Option<NodeInfo>,
    pub is_leader: bool,
    pub state: String,
    pub initialized: bool,
}

pub struct RaftNode {
    pub(crate) raft: Raft,
    pub(crate) db: Arc<DB>,
    id: u64,
    info: NodeInfo,
    net: Network,
    events: broadcast::Sender<ApplyEvent>,
    events_sent: Arc<std::sync::atomic::AtomicU64>,
    forward: ForwardSlot,
    server: tokio::task::JoinHandle<()>,
    /// Accepts and handshakes cluster-port connections (owns the listener).
    acceptor: tokio::task::JoinHandle<()>,
    tls: TlsState,
    reads: tokio::sync::mpsc::UnboundedSender<ReadWaiter>,
    /// Serializes operator restores on this node (`crate::restore`).
    pub(crate) restore_lock: tokio::sync::Mutex<()>,
    /// Where the cluster port is bound (useful with port 0 in tests).
    pub listen_addr: SocketAddr,
    /// May this node lead? (shared with the service: see `set_electable`)
    electable: Arc<std::sync::atomic::AtomicBool>,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Raft(e.to_string())
}

impl RaftNode {
    /// Opens the node's storage, starts Raft and the cluster-port server.
    /// A node that was a member before rejoins on its own; a new node
    /// waits for [`bootstrap`](Self::bootstrap) or to be added by a leader.
    pub async fn start(cfg: RaftConfig) -> Result<Arc<RaftNode>, NodeError> {
        let db = crate::store::open(&cfg.dir).map_err(err)?;
        let snaps = SnapshotDir::new(cfg.dir.join("snapshots")).map_err(err)?;
        let (events, _) = broadcast::channel(4096);
        let events_sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sm = StateMachine::open(
            db.clone(),
            snaps.clone(),
            events.clone(),
            events_sent.clone(),
        )
        .map_err(err)?;
        let log = LogStore::new(db.clone());
        let tls = TlsState::default();
        if let Some(id) = &cfg.tls {
            tls.set(Some(
                Configs::build(id).map_err(|e| NodeError::Invalid(e.to_string()))?,
            ));
        }
        // Peers see this node's traffic come from its cluster address.
        let source = Some(cfg.listen.ip()).filter(|ip| !ip.is_unspecified());
        let net = Network::new(tls.clone(), source);
        let config = Config {
            cluster_name: "arca".into(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_min_ms,
            election_timeout_max: cfg.election_max_ms,
            enable_pre_vote: Some(true),
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_threshold),
            max_in_snapshot_log_to_keep: cfg.trailing_logs,
            purge_batch_size: 64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Invalid(format!("raft timing settings: {e}")))?;
        let id = node_id_of(&cfg.node_name);
        let raft = Raft::new(id, Arc::new(config), net.clone(), log, sm)
            .await
            .map_err(err)?;
        let forward: ForwardSlot = Arc::new(RwLock::new(None));
        let electable = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let service = Service {
            raft: raft.clone(),
            snaps,
            forward: forward.clone(),
            electable: electable.clone(),
            tls: tls.clone(),
        };
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| {
                NodeError::Invalid(format!(
                    "cannot listen on cluster address {}: {e}",
                    cfg.listen
                ))
            })?;
        let listen_addr = listener.local_addr().map_err(err)?;
        let svc = ClusterServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let (incoming, acceptor) = crate::tls::incoming(listener, tls.clone());
        let router = Server::builder().add_service(svc);
        let server = tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                tracing::error!("cluster port server stopped: {e}");
            }
        });
        let reads = spawn_read_index_batcher(raft.clone(), net.clone());
        spawn_metrics_watch(raft.clone());
        let info = NodeInfo {
            name: cfg.node_name.clone(),
            api_addr: cfg.api_addr.clone(),
            cluster_addr: cfg.cluster_addr.clone(),
        };
        Ok(Arc::new(RaftNode {
            raft,
            db,
            id,
            info,
            net,
            events,
            events_sent,
            forward,
            server,
            acceptor,
            tls,
            reads,
            restore_lock: tokio::sync::Mutex::new(()),
            listen_addr,
            electable,
        }))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Changes applied to this node's data, for cache invalidation.
    pub fn subscribe(&self) -> broadcast::Receiver<ApplyEvent> {
        self.events.subscribe()
    }

    /// How many apply events have been sent so far: a subscriber that has
    /// handled this many has seen every change applied up to now.
    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Who serves requests other nodes forward here.
    pub fn set_forward_handler(&self, h: Arc<dyn ForwardHandler>) {
        *self.forward.write() = Some(h);
    }

    fn metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// True once this node is part of a cluster (bootstrapped or joined).
    pub fn is_member(&self) -> bool {
        let m = self.metrics();
        m.membership_config
            .membership()
            .get_node(&self.id)
            .is_some()
    }

    /// True when the cluster has a configuration at all (this node was
    /// bootstrapped, or has received one from a leader).
    pub fn has_cluster(&self) -> bool {
        let m = self.metrics();
        m.membership_config.log_id().is_some()
    }

    /// Makes this node a one-member cluster and waits until it leads.
    /// Refused when it is already part of a cluster.
    pub async fn bootstrap(&self) -> Result<(), NodeError> {
        let members = BTreeMap::from([(self.id, self.info.clone())]);
        match self.raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                return Err(NodeError::Invalid(
                    "this node already belongs to a raft cluster".into(),
                ))
            }
            Err(e) => return Err(err(e)),
        }
        // Leading is not enough: membership changes must wait until the
        // initial membership is committed (the new leader's first entry).
        let id = self.id;
        self.raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(
                |m| {
                    m.state == ServerState::Leader
                        && m.current_leader == Some(id)
                        && m.committed_membership_config.log_id().is_some()
                        && m.last_applied.is_some()
                },
                "bootstrap",
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    pub fn is_leader(&self) -> bool {
        let m = self.metrics();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<NodeInfo> {
        let m = self.metrics();
        let id = m.current_leader?;
        m.membership_config.membership().get_node(&id).cloned()
    }

    pub fn status(&self) -> NodeStatus {
        let m = self.metrics();
        let leader = m
            .current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).cloned());
        NodeStatus {
            term: m.current_term,
            committed_index: m.local_committed.map(|l| l.index).unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            is_leader: m.state == ServerState::Leader && m.current_leader == Some(self.id),
            leader,
            state: format!("{:?}", m.state).to_lowercase(),
            initialized: m.membership_config.log_id().is_some(),
        }
    }

    /// Every member with its role, voters first, by name.
    pub fn peers(&self) -> Vec<Peer> {
        let m = self.metrics();
        let mem = m.membership_config.membership();
        let voters: BTreeSet<u64> = mem.voter_ids().collect();
        let mut out: Vec<Peer> = mem
            .nodes()
            .map(|(id, n)| Peer {
                name: n.name.clone(),
                id: *id,
                api_addr: n.api_addr.clone(),
                cluster_addr: n.cluster_addr.clone(),
                voter: voters.contains(id),
                leader: m.current_leader == Some(*id),
            })
            .collect();
        out.sort_by(|a, b| b.voter.cmp(&a.voter).then(a.name.cmp(&b.name)));
        out
    }

    pub(crate) fn not_leader(&self) -> NodeError {
        NodeError::NotLeader {
            leader: self.leader(),
        }
    }

    /// Checks that `info` may be added (leader only) and returns its id.
    fn check_new_peer(&self, info: &NodeInfo) -> Result<u64, NodeError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let id = node_id_of(&info.name);
        let mem = self.metrics().membership_config.clone();
        if let Some(existing) = mem.membership().get_node(&id) {
            if existing.cluster_addr != info.cluster_addr {
                return Err(NodeError::Invalid(format!(
                    "a node named {:?} is already a member at {}; remove it first (remove-peer)",
                    info.name, existing.cluster_addr
                )));
            }
        }
        Ok(id)
    }

    /// Adds a node (leader only) as a learner and returns without waiting
    /// for it to catch up: a joining node gets the certificate it needs to
    /// connect only after this returns. A `voter` is promoted in the
    /// background once it has caught up (within [`PROMOTE_WITHIN`]); a
    /// failed promotion is logged, and the node stays a non-voter.
    pub async fn add_peer_nowait(
        self: &Arc<Self>,
        info: NodeInfo,
        voter: bool,
    ) -> Result<(), NodeError> {
        let id = self.check_new_peer(&info)?;
        self.retry_change(|| self.raft.add_learner(id, info.clone(), false))
            .await?;
        if !voter {
            return Ok(());
        }
        let me = self.clone();
        tokio::spawn(async move {
            let target = me.metrics().last_log_index.unwrap_or(0);
            let caught_up = me
                .raft
                .wait(Some(PROMOTE_WITHIN))
                .metrics(
                    |m| {
                        m.replication
                            .as_ref()
                            .and_then(|r| r.get(&id).cloned().flatten())
                            .is_some_and(|l| l.index >= target)
                    },
                    "new member caught up",
                )
                .await;
            if let Err(e) = caught_up {
                tracing::warn!(
                    "raft: {:?} did not catch up ({e}); it stays a non-voter: remove it and join again",
                    info.name
                );
                return;
            }
            let r = me
                .retry_change(|| {
                    me.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                })
                .await;
            match r {
                Ok(_) => tracing::info!("raft: {:?} is now a voter", info.name),
                Err(e) => tracing::warn!(
                    "raft: {:?} could not be made a voter ({e}); it stays a non-voter: remove it and join again",
                    info.name
                ),
            }
        });
        Ok(())
    }

    /// Adds a node (leader only): first as a learner, which returns once it
    /// has caught up (by log or snapshot), then as a voter if asked.
    pub async fn add_peer(&self, info: NodeInfo, voter: bool) -> Result<(), NodeError> {
        let id = self.check_new_peer(&info)?;
        self.retry_change(|| self.raft.add_learner(id, info.clone(), true))
            .await?;
        if voter {
            self.retry_change(|| {
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            })
            .await?;
        }
        Ok(())
    }

    /// Runs a membership change, retrying (up to 30 s) while an earlier one
    /// is still being committed.
    async fn retry_change<F, Fut, T>(&self, f: F) -> Result<T, NodeError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = Result<T, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>,
        >,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))
                    if tokio::time::Instant::now() < deadline
                        && e.to_string().contains("undergoing a configuration change") =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(write_err(e)),
            }
        }
    }

    /// Removes a member by name (leader only).
    pub async fn remove_peer(&self, name: &str) -> Result<(), NodeError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let id = node_id_of(name);
        let m = self.metrics();
        let mem = m.membership_config.membership();
        if mem.get_node(&id).is_none() {
            return Err(NodeError::Invalid(format!(
                "no peer named {name:?} in the cluster"
            )));
        }
        if mem.voter_ids().any(|v| v == id) {
            if mem.voter_ids().count() == 1 {
                return Err(NodeError::Invalid(
                    "cannot remove the last voter of the cluster".into(),
                ));
            }
            self.retry_change(|| {
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            })
            .await?;
        } else {
            self.retry_change(|| {
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            })
            .await?;
        }
        Ok(())
    }

    /// Installs (or, with `None`, removes) this node's cluster identity.
    /// Open connections are dropped either way, so that the next RPC
    /// authenticates with what is installed now; without an identity the
    /// node neither connects to peers nor serves them.
    pub fn set_identity(&self, id: Option<&ClusterTls>) -> Result<(), TlsError> {
        let configs = id.map(Configs::build).transpose()?;
        self.tls.set(configs);
        self.net.reset();
        Ok(())
    }

    /// True while this node holds a cluster identity.
    pub fn has_identity(&self) -> bool {
        self.tls.has_identity()
    }

    /// Lets this node stand for election, or not (a sealed node must not
    /// lead: it could serve nothing). It still votes and replicates.
    /// A node that may not lead also refuses a leadership transfer.
    pub fn set_electable(&self, on: bool) {
        self.electable
            .store(on, std::sync::atomic::Ordering::Release);
        self.raft.runtime_config().elect(on);
    }

    /// Hands leadership to the most up-to-date other voter (`sys/step-down`).
    pub async fn step_down(&self) -> Result<(), NodeError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let m = self.metrics();
        let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
        let target = m
            .replication
            .as_ref()
            .and_then(|r| {
                r.iter()
                    .filter(|(id, _)| **id != self.id && voters.contains(id))
                    .max_by_key(|(_, l)| l.map(|l| l.index))
                    .map(|(id, _)| *id)
            })
            .ok_or_else(|| {
                NodeError::Invalid("there is no other voter to hand leadership to".into())
            })?;
        self.raft
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(err)?;
        // Return once another node leads (a node sealing itself is about to
        // drop its cluster identity and could not finish the hand-over).
        let me = self.id;
        let moved = self
            .raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != me),
                "leadership handed over",
            )
            .await;
        if let Err(e) = moved {
            tracing::warn!("step-down: no other node took over yet: {e}");
        }
        Ok(())
    }

    /// Waits until this node has applied everything the cluster had
    /// committed when the call began (a linearizable read point). The
    /// leader confirms it still leads from its lease (or, when the lease is
    /// stale, with a quorum round); elsewhere the node asks the leader for
    /// its read index, one round trip shared by every read waiting at that
    /// moment. During an election it waits, up to `timeout`, for a leader.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<(), NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let read_id = loop {
            if self.is_leader() {
                // A leader cut off from its peers cannot confirm a read
                // index: give up at the deadline instead of waiting on.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, leader_read_index(&self.raft)).await {
                    Ok(Ok(id)) => break id,
                    Ok(Err(NodeError::NoLeader)) | Err(_) => {}
                    Ok(Err(e)) => return Err(e),
                }
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if self.reads.send(tx).is_err() {
                    return Err(NodeError::Raft("the node is shutting down".into()));
                }
                match rx.await {
                    Ok(Ok(id)) => break id,
                    Ok(Err(NodeError::NoLeader)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(NodeError::Raft("the node is shutting down".into())),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let Some(read_id) = read_id else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let lin = Linearizer::new(self.id, ReadLogId::from_log_id(read_id), None);
        match lin.try_await_ready(&self.raft, Some(left)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Raft(format!(
                "this node did not catch up with the leader (index {}) within {timeout:?}",
                read_id.index
            ))),
            Err(e) => Err(err(e)),
        }
    }

    /// The index of the last entry applied to this node's data, read from
    /// the database itself (metrics may lag behind by a moment).
    pub fn applied_index_now(&self) -> u64 {
        crate::store::get::<Option<LogId>>(&self.db, crate::store::CF_SM, "applied")
            .ok()
            .flatten()
            .flatten()
            .map(|l| l.index)
            .unwrap_or(0)
    }

    /// Waits until this node has applied `index` (read-your-writes after a
    /// forwarded write); false on timeout.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read your writes")
            .await
            .is_ok()
    }

    /// Sends an HTTP request this node cannot serve to the leader.
    pub async fn forward(&self, req: ForwardReq) -> Result<ForwardResp, NodeError> {
        let leader = self.leader().ok_or(NodeError::NoLeader)?;
        if leader.name == self.info.name {
            return Err(NodeError::Invalid(
                "refusing to forward a request to this node itself".into(),
            ));
        }
        let mut c = self
            .net
            .client(&leader.cluster_addr)
            .map_err(NodeError::Invalid)?;
        let r = c.forward(req).await.map_err(|s| NodeError::Unreachable {
            addr: leader.cluster_addr.clone(),
            sent: !never_connected(&s),
            msg: s.message().to_string(),
        })?;
        r.into_inner().map_err(|msg| NodeError::Unreachable {
            addr: leader.cluster_addr.clone(),
            msg,
            sent: true,
        })
    }

    /// Writes this node's data, as of one RocksDB snapshot, as snapshot
    /// records to `out`; returns the (term, index) of the last applied entry
    /// it reflects.
    pub async fn export_records(&self, out: &std::path::Path) -> Result<(u64, u64), NodeError> {
        let db = Arc::clone(&self.db);
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<(u64, u64)> {
            use crate::store::{cf, CF_DATA, CF_SM};
            let snap = db.snapshot();
            let applied: Option<LogId> = match snap.get_cf(cf(&db, CF_SM), "applied") {
                Ok(Some(b)) => crate::store::decode::<Option<LogId>>(&b)?,
                Ok(None) => None,
                Err(e) => return Err(crate::store::io_err(e)),
            };
            let mut w = crate::snapshot::Writer::create(&out)?;
            for item in snap.iterator_cf(cf(&db, CF_DATA), rocksdb::IteratorMode::Start) {
                let (k, v) = item.map_err(crate::store::io_err)?;
                w.record(&k, &v)?;
            }
            w.finish()?;
            Ok(applied
                .map(|l| (l.leader_id.term, l.index))
                .unwrap_or((0, 0)))
        })
        .await
        .map_err(err)?
        .map_err(err)
    }

    /// Stops Raft and the cluster port.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        self.server.abort();
        self.acceptor.abort();
    }
}

pub(crate) fn write_err<E>(e: RaftError<TypeConfig, E>) -> NodeError
where
    E: std::fmt::Display + std::fmt::Debug,
    RaftError<TypeConfig, E>: ForwardInfo,
{
    if let Some(f) = e.forward_info() {
        return NodeError::NotLeader { leader: f };
    }
    err(e)
}

/// Where a refused write should go instead, if the error says so.
pub(crate) trait ForwardInfo {
    fn forward_info(&self) -> Option<Option<NodeInfo>>;
}

impl ForwardInfo for RaftError<TypeConfig, ClientWriteError<TypeConfig>> {
    fn forward_info(&self) -> Option<Option<NodeInfo>> {
        match self.api_error()? {
            ClientWriteError::ForwardToLeader(f) => Some(f.leader_node.clone()),
            _ => None,
        }
    }
}

type ReadWaiter = tokio::sync::oneshot::Sender<Result<Option<LogId>, NodeError>>;

/// The leader's read index: from its lease when it holds one, else after a
/// heartbeat round with a quorum. `NoLeader` when it no longer leads.
pub(crate) async fn leader_read_index(raft: &Raft) -> Result<Option<LogId>, NodeError> {
    let lease = raft.get_read_linearizer(ReadPolicy::LeaseRead).await;
    let lin = match lease {
        Ok(l) => l,
        Err(e) if e.forward_to_leader().is_some() => return Err(NodeError::NoLeader),
        Err(_) => raft
            .get_read_linearizer(ReadPolicy::ReadIndex)
            .await
            .map_err(|e| match e.forward_to_leader() {
                Some(_) => NodeError::NoLeader,
                None => NodeError::Raft(
                    "this node cannot reach a quorum of the cluster to confirm it still leads"
                        .into(),
                ),
            })?,
    };
    Ok(Some(*lin.read_log_id().log_id()))
}

/// Serves followers' read-index requests in rounds: every request that
/// arrived before a round starts shares its one RPC to the leader, and no
/// request uses an answer obtained before it arrived.
fn spawn_read_index_batcher(
    raft: Raft,
    net: Network,
) -> tokio::sync::mpsc::UnboundedSender<ReadWaiter> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReadWaiter>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut round = vec![first];
            while let Ok(w) = rx.try_recv() {
                round.push(w);
            }
            let r = remote_read_index(&raft, &net).await;
            for w in round {
                let _ = w.send(r.clone());
            }
        }
    });
    tx
}

async fn remote_read_index(raft: &Raft, net: &Network) -> Result<Option<LogId>, NodeError> {
    let m = raft.metrics().borrow_watched().clone();
    let leader = m
        .current_leader
        .filter(|id| *id != m.id)
        .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
        .ok_or(NodeError::NoLeader)?;
    let mut c = net
        .client(&leader.cluster_addr)
        .map_err(NodeError::Invalid)?;
    let mut req = tonic::Request::new(ReadIndexReq);
    req.set_timeout(Duration::from_secs(2));
    let r = c.read_index(req).await.map_err(|s| {
        if never_connected(&s) {
            NodeError::NoLeader
        } else {
            NodeError::Unreachable {
                addr: leader.cluster_addr.clone(),
                msg: s.message().to_string(),
                sent: true,
            }
        }
    })?;
    r.into_inner().map_err(|m| {
        if m.contains("no leader") || m.contains("not the leader") || m.contains("orward") {
            NodeError::NoLeader
        } else {
            NodeError::Raft(format!("the leader could not give a read index: {m}"))
        }
    })
}

/// True when a call failed because no connection could be made at all, so
/// the peer cannot have seen the request.
fn never_connected(s: &tonic::Status) -> bool {
    let mut text = s.message().to_string();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = src {
        text.push_str(": ");
        text.push_str(&e.to_string());
        src = e.source();
    }
    text.contains("tcp connect error") || text.contains("dns error")
}

/// Follows openraft's metrics into `sys/metrics`: the term, the applied
/// index, whether this node leads, and a count of leader changes seen by
/// this node. Ends when the raft instance shuts down.
fn spawn_metrics_watch(raft: Raft) {
    let mut watch = raft.metrics();
    drop(raft);
    tokio::spawn(async move {
        let mut leader = None;
        loop {
            let (term, applied, current, leads) = {
                let m = watch.borrow_watched();
                (
                    m.current_term,
                    m.last_applied.map(|l| l.index).unwrap_or(0),
                    m.current_leader,
                    m.state == ServerState::Leader,
                )
            };
            arca_metrics::set_gauge("vault.raft.term", &[], term as f64);
            arca_metrics::set_gauge("vault.raft.last_applied_index", &[], applied as f64);
            arca_metrics::set_gauge("vault.raft.is_leader", &[], if leads { 1.0 } else { 0.0 });
            if current.is_some() && current != leader {
                arca_metrics::incr("vault.raft.leader_changes", &[], 1);
                leader = current;
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    });
}
