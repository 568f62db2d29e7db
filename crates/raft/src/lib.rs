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
pub use log_store::LogStore;
pub use node::{NodeError, NodeStatus, Peer, RaftConfig, RaftNode};
pub use service::ForwardHandler;
pub use state_machine::{ApplyEvent, StateMachine};
pub use tls::{ClusterTls, TlsError};
pub use types::{node_id_of, NodeInfo};
pub use wire::{ClientConn, ForwardReq, ForwardResp};

/// Opens the Raft storage a node keeps under `dir` (creating it if
/// missing): the log store and the state machine over one RocksDB
/// database, as [`RaftNode::start`] opens them, but without starting Raft
/// or the cluster port. For testing the storage on its own
/// (`tests/openraft_suite.rs` runs openraft's storage suite against it);
/// nothing subscribes to the state machine's [`ApplyEvent`]s.
pub fn open_storage(dir: &std::path::Path) -> std::io::Result<(LogStore, StateMachine)> {
    let db = store::open(dir)?;
    let snaps = snapshot::SnapshotDir::new(dir.join("snapshots"))?;
    let (events, _) = tokio::sync::broadcast::channel(16);
    let sm = StateMachine::open(db.clone(), snaps, events, Default::default())?;
    Ok((LogStore::new(db), sm))
}
