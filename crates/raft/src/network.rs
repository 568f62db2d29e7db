//! Outgoing cluster RPCs over tonic: Raft replication, votes, snapshots,
//! plus the application calls a standby makes to the leader (forwarding,
//! read index). One lazily connected channel per peer address is kept and
//! shared by every RPC to it (a connection per RPC would not fit in a
//! heartbeat interval).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::Future;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tonic::transport::{Channel, Endpoint};

use crate::tls::TlsState;

use crate::pb::cluster_client::ClusterClient;
use crate::snapshot::SnapshotFile;
use crate::types::{NodeInfo, Snapshot, TypeConfig, Vote};
use crate::wire::{AppendReq, SnapshotChunk, TransferReq, VoteReq};

type C = TypeConfig;

/// Largest cluster message (a batch of entries, a forwarded request).
pub(crate) const MAX_MESSAGE: usize = 256 << 20;
const SNAPSHOT_CHUNK: usize = 1 << 20;

#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    tls: TlsState,
    /// Source address of outgoing connections (the cluster interface).
    source: Option<std::net::IpAddr>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Network {
    pub(crate) fn new(tls: TlsState, source: Option<std::net::IpAddr>) -> Self {
        Network {
            inner: Arc::new(Inner {
                tls,
                source,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Forgets every open channel: the next RPC to each peer connects
    /// again, with the identity installed then (or fails without one).
    pub(crate) fn reset(&self) {
        self.inner.channels.lock().clear();
    }

    /// A client for the peer at `cluster_addr` (`https://host:port`). The
    /// connection is mutual TLS (`crate::tls`); tonic sees a plain `http`
    /// URI because the TLS is done by the connector.
    pub(crate) fn client(&self, cluster_addr: &str) -> Result<ClusterClient<Channel>, String> {
        let mut chans = self.inner.channels.lock();
        let ch = match chans.get(cluster_addr) {
            Some(c) => c.clone(),
            None => {
                let name = crate::tls::server_name(cluster_addr)?;
                let host_port = cluster_addr
                    .split_once("://")
                    .map(|(_, r)| r)
                    .unwrap_or(cluster_addr)
                    .trim_end_matches('/')
                    .to_string();
                let ep = Endpoint::from_shared(format!("http://{host_port}"))
                    .map_err(|e| format!("bad cluster address {cluster_addr:?}: {e}"))?
                    .connect_timeout(Duration::from_secs(1))
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .keep_alive_while_idle(true);
                let tls = self.inner.tls.clone();
                let source = self.inner.source;
                let c = ep.connect_with_connector_lazy(tower::service_fn(
                    move |_: tonic::codegen::http::Uri| {
                        let (tls, host_port, name) = (tls.clone(), host_port.clone(), name.clone());
                        async move { crate::tls::connect(&tls, source, &host_port, name).await }
                    },
                ));
                chans.insert(cluster_addr.to_string(), c.clone());
                c
            }
        };
        Ok(ClusterClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }
}

fn unreachable(e: impl std::fmt::Display) -> RPCError<C> {
    RPCError::Unreachable(Unreachable::from_string(e.to_string()))
}

fn status_err(s: tonic::Status) -> RPCError<C> {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => unreachable(s.message()),
        _ => RPCError::Network(NetworkError::from_string(format!(
            "{:?}: {}",
            s.code(),
            s.message()
        ))),
    }
}

fn remote_err(e: String) -> RPCError<C> {
    RPCError::Network(NetworkError::from_string(format!("peer failed: {e}")))
}

impl RaftNetworkFactory<C> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: u64, node: &NodeInfo) -> Peer {
        Peer {
            addr: node.cluster_addr.clone(),
            net: self.clone(),
        }
    }
}

/// The connection to one peer, as openraft's replication sees it.
pub struct Peer {
    addr: String,
    net: Network,
}

impl Peer {
    fn client(&self) -> Result<ClusterClient<Channel>, RPCError<C>> {
        self.net.client(&self.addr).map_err(unreachable)
    }
}

fn with_timeout<T>(msg: T, ttl: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    // Never below a second: a loaded machine must not turn slow replies
    // into failures (openraft applies its own, shorter, heartbeat budget).
    r.set_timeout(ttl.max(Duration::from_secs(1)));
    r
}

impl Peer {
    /// A vote or pre-vote (the same message, flagged).
    async fn send_vote(
        &mut self,
        pre_vote: bool,
        req: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        let mut c = self.client()?;
        let r = c
            .vote(with_timeout(VoteReq { pre_vote, req }, option.hard_ttl()))
            .await
            .map_err(status_err)?;
        r.into_inner().map_err(remote_err)
    }
}

impl RaftNetworkV2<C> for Peer {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let mut c = self.client()?;
        let r = c
            .append_entries(with_timeout(AppendReq(rpc), option.hard_ttl()))
            .await
            .map_err(status_err)?;
        r.into_inner().map_err(remote_err)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.send_vote(false, rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.send_vote(true, rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let mut c = self.client().map_err(StreamingError::from)?;
        let file = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(|e| StreamingError::from(unreachable(format!("cannot open snapshot: {e}"))))?;
        let first = SnapshotChunk::Begin {
            vote,
            meta: snapshot.meta.clone(),
        };
        // Begin, then the file in chunks; a read error ends the stream early
        // and the receiver refuses the truncated file.
        let chunks =
            futures::stream::unfold((Some(first), Some(file)), |(first, file)| async move {
                if let Some(b) = first {
                    return Some((b, (None, file)));
                }
                let mut f = file?;
                let mut buf = vec![0u8; SNAPSHOT_CHUNK];
                let mut n = 0;
                while n < buf.len() {
                    match f.read(&mut buf[n..]).await {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) => {
                            tracing::warn!("reading the snapshot to send failed: {e}");
                            return None;
                        }
                    }
                }
                if n == 0 {
                    return None;
                }
                buf.truncate(n);
                let rest = (n == SNAPSHOT_CHUNK).then_some(f);
                Some((SnapshotChunk::Data(buf), (None, rest)))
            });
        tokio::select! {
            r = c.install_snapshot(chunks) => {
                let r = r.map_err(|s| StreamingError::from(status_err(s)))?;
                r.into_inner().map_err(|e| StreamingError::from(remote_err(e)))
            }
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let mut c = self.client()?;
        let r = c
            .transfer_leader(with_timeout(TransferReq(req), option.hard_ttl()))
            .await
            .map_err(status_err)?;
        r.into_inner().map_err(remote_err)
    }
}
