//! The cluster port's gRPC service: Raft RPCs from peers, snapshots
//! streamed in, read-index queries and forwarded client requests.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use crate::pb::cluster_server::Cluster;
use crate::snapshot::{SnapshotDir, SnapshotFile};
use crate::types::{Raft, Snapshot};
use crate::wire::*;

/// Serves requests a standby forwarded to this node (the binary plugs in
/// its HTTP router; raft knows nothing of the API).
#[async_trait::async_trait]
pub trait ForwardHandler: Send + Sync {
    async fn handle(&self, req: ForwardReq) -> ForwardResp;
}

pub(crate) type ForwardSlot = Arc<RwLock<Option<Arc<dyn ForwardHandler>>>>;

pub(crate) struct Service {
    pub raft: Raft,
    pub snaps: SnapshotDir,
    pub forward: ForwardSlot,
    /// False while this node may not lead (sealed): it then refuses a
    /// leadership transfer, which openraft would otherwise obey.
    pub electable: Arc<std::sync::atomic::AtomicBool>,
    /// A node without a cluster identity (sealed) serves no peer, not
    /// even on a connection opened before it lost it.
    pub tls: crate::tls::TlsState,
}

impl Service {
    fn check_identity(&self) -> Result<(), Status> {
        if self.tls.has_identity() {
            Ok(())
        } else {
            Err(Status::unavailable(
                "this node has no cluster identity (it is sealed)",
            ))
        }
    }
}

fn io_status(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl Cluster for Service {
    async fn append_entries(
        &self,
        req: Request<AppendReq>,
    ) -> Result<Response<AppendReply>, Status> {
        self.check_identity()?;
        let r = self.raft.append_entries(req.into_inner().0).await;
        Ok(Response::new(r.map_err(|e| e.to_string())))
    }

    async fn vote(&self, req: Request<VoteReq>) -> Result<Response<VoteReply>, Status> {
        self.check_identity()?;
        let VoteReq { pre_vote, req } = req.into_inner();
        let r = if pre_vote {
            self.raft.pre_vote(req).await
        } else {
            self.raft.vote(req).await
        };
        Ok(Response::new(r.map_err(|e| e.to_string())))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotReply>, Status> {
        self.check_identity()?;
        let mut s = req.into_inner();
        let (vote, meta) = match s.message().await? {
            Some(SnapshotChunk::Begin { vote, meta }) => (vote, meta),
            _ => {
                return Err(Status::invalid_argument(
                    "snapshot stream must start with Begin",
                ))
            }
        };
        let tmp = self.snaps.temp_path("recv");
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io_status)?;
        let received = async {
            while let Some(c) = s.message().await? {
                match c {
                    SnapshotChunk::Data(b) => f.write_all(&b).await.map_err(io_status)?,
                    SnapshotChunk::Begin { .. } => {
                        return Err(Status::invalid_argument(
                            "second Begin in a snapshot stream",
                        ))
                    }
                }
            }
            f.sync_all().await.map_err(io_status)
        }
        .await;
        if let Err(e) = received {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let snapshot = Snapshot {
            meta,
            snapshot: SnapshotFile { path: tmp.clone() },
        };
        let r = self.raft.install_full_snapshot(vote, snapshot).await;
        // Installed snapshots were renamed; anything left is not needed.
        let _ = tokio::fs::remove_file(&tmp).await;
        Ok(Response::new(r.map_err(|e| e.to_string())))
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexReq>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        self.check_identity()?;
        let r = crate::node::leader_read_index(&self.raft).await;
        Ok(Response::new(r.map_err(|e| e.to_string())))
    }

    async fn forward(&self, req: Request<ForwardReq>) -> Result<Response<ForwardReply>, Status> {
        self.check_identity()?;
        let h = self.forward.read().clone();
        let Some(h) = h else {
            return Ok(Response::new(Err(
                "this node is not ready to serve forwarded requests".into(),
            )));
        };
        Ok(Response::new(Ok(h.handle(req.into_inner()).await)))
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferReq>,
    ) -> Result<Response<TransferReply>, Status> {
        self.check_identity()?;
        if !self.electable.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(Response::new(Err(
                "this node is sealed and does not take leadership".into(),
            )));
        }
        let r = self.raft.handle_transfer_leader(req.into_inner().0).await;
        Ok(Response::new(r.map_err(|e| e.to_string())))
    }
}
