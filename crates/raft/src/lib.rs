//! Replicated storage: openraft with its log and state machine in RocksDB,
//! peers talking gRPC (tonic) on the cluster port.
//!
//! Raft carries ciphertext only: the barrier sits above [`RaftBackend`], so
//! values and key names are encrypted before they are proposed. This crate
//! knows nothing of the barrier, the sdk or the HTTP API; the binary wires
//! forwarding ([`ForwardHandler`]) and cache invalidation
//! ([`RaftNode::subscribe`]) to them.
//!
//! Invariants:
//! - A write is acknowledged only after a quorum has its log entry on disk
//!   (WAL synced) and the leader has applied it.
//! - Only the leader writes; everywhere else a write fails with
//!   `PhysicalError::ReadOnly` before anything changes.
//! - Every node's data is a prefix of the same log: applied state, its
//!   `applied` index and membership move together in one batch.
//! - An operator's snapshot restore changes the data only in the one entry
//!   that commits it (`restore.rs`); until then its records are staged
//!   aside, so a restore that fails leaves the data as it was.

mod backend;
mod codec;
mod log_store;
mod network;
mod node;
mod restore;
mod service;
pub mod snapshot;
mod state_machine;
mod store;
pub mod tls;

#[cfg(test)]
#[path = "../tests/support/certs.rs"]
mod test_certs;
pub mod types;
pub mod wire;

#[allow(clippy::all)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/arca.cluster.Cluster.rs"));
}

pub use backend::RaftBackend;
pub use node::{NodeError, NodeStatus, Peer, RaftConfig, RaftNode};
pub use service::ForwardHandler;
pub use state_machine::ApplyEvent;
pub use tls::{ClusterTls, TlsError};
pub use types::{node_id_of, NodeInfo};
pub use wire::{ForwardReq, ForwardResp};
