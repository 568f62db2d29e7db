//! Messages of the cluster gRPC service (see `build.rs`). Raft messages are
//! openraft's own types; errors travel as text and become network errors on
//! the caller's side (a remote failure is never mistaken for success).

use serde::{Deserialize, Serialize};

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};

use crate::types::{LogId, SnapshotMeta, TypeConfig, Vote};

type C = TypeConfig;

#[derive(Serialize, Deserialize)]
pub struct AppendReq(pub AppendEntriesRequest<C>);
pub type AppendReply = Result<AppendEntriesResponse<C>, String>;

#[derive(Serialize, Deserialize)]
pub struct VoteReq {
    pub pre_vote: bool,
    pub req: VoteRequest<C>,
}
pub type VoteReply = Result<VoteResponse<C>, String>;

/// A snapshot travels as one `Begin` then `Data` chunks in order.
#[derive(Serialize, Deserialize)]
pub enum SnapshotChunk {
    Begin { vote: Vote, meta: SnapshotMeta },
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
}
pub type SnapshotReply = Result<SnapshotResponse<C>, String>;

#[derive(Serialize, Deserialize)]
pub struct ReadIndexReq;
/// The leader's read index: a reader waits until it has applied this log id.
pub type ReadIndexReply = Result<Option<LogId>, String>;

#[derive(Serialize, Deserialize)]
pub struct TransferReq(pub TransferLeaderRequest<C>);
pub type TransferReply = Result<TransferLeaderResponse<C>, String>;

/// An HTTP request a standby could not serve, replayed on the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardReq {
    pub method: String,
    /// Path and query, e.g. `/v1/secret/data/x?version=2`.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The client's connection to the forwarding node.
    #[serde(default)]
    pub client: Option<ClientConn>,
}

/// Where a forwarded request came from: the client's address and port on
/// the forwarding node, and the DER certificates it presented over TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientConn {
    pub remote_addr: String,
    pub remote_port: u16,
    pub peer_certificates: Vec<serde_bytes::ByteBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}
pub type ForwardReply = Result<ForwardResp, String>;
