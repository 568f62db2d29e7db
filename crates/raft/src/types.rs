//! The Raft type configuration: what a log entry carries and what a member
//! is. Entries carry physical operations on ciphertext only; the barrier
//! above encrypts every value and every key segment before it gets here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster member as stored in the Raft membership (so every node knows
/// every peer's addresses without asking).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The operator's name for the node (Vault's `node_id`).
    pub name: String,
    /// Where clients reach its HTTP API, e.g. `https://10.0.0.1:8200`.
    pub api_addr: String,
    /// Where peers reach its cluster port (gRPC), e.g. `https://10.0.0.1:8201`.
    pub cluster_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.cluster_addr)
    }
}

/// The numeric Raft id of a node name: the first 8 bytes of its SHA-256.
/// Names are what operators see (`remove-peer node2`); ids are derived so
/// every node computes the same one without coordination.
pub fn node_id_of(name: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// One physical operation, replicated verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireOp {
    Put(String, #[serde(with = "serde_bytes")] Vec<u8>),
    Delete(String),
    /// Delete every key. Earlier versions began an operator's restore with
    /// it; restores are now staged ([`RestoreOp`]), but logs written before
    /// still carry it, so it is still applied.
    Clear,
}

/// One record of a snapshot being restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedRecord {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// A step of an operator's snapshot restore (see `restore.rs`): records
/// are staged beside the live data, and one entry swaps them in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RestoreOp {
    /// Drop whatever was staged and start staging restore `id`.
    Begin { id: u64 },
    /// The next chunk (`seq` counts from 0) of restore `id`. A chunk of
    /// another restore, or out of order, is refused and stages nothing.
    Stage {
        id: u64,
        seq: u64,
        records: Vec<StagedRecord>,
    },
    /// Replace the live data with the staged records, if restore `id` staged
    /// exactly `chunks` chunks holding `records` records; otherwise refused,
    /// and the live data stays as it was.
    Commit { id: u64, records: u64, chunks: u64 },
    /// Drop what restore `id` staged.
    Abort { id: u64 },
}

/// What a normal log entry asks the state machine to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Apply every operation atomically (one physical batch).
    Batch(Vec<WireOp>),
    /// A step of a snapshot restore.
    Restore(RestoreOp),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are ciphertext; print only the shape.
        match self {
            Command::Batch(ops) => write!(f, "batch({} ops)", ops.len()),
            Command::Restore(RestoreOp::Begin { id }) => write!(f, "restore-begin({id:016x})"),
            Command::Restore(RestoreOp::Stage { id, seq, records }) => write!(
                f,
                "restore-stage({id:016x}, chunk {seq}, {} records)",
                records.len()
            ),
            Command::Restore(RestoreOp::Commit {
                id,
                records,
                chunks,
            }) => write!(
                f,
                "restore-commit({id:016x}, {chunks} chunks, {records} records)"
            ),
            Command::Restore(RestoreOp::Abort { id }) => write!(f, "restore-abort({id:016x})"),
        }
    }
}

/// What applying an entry answers: `refused` says why a restore step
/// changed nothing (every other entry is always applied).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub refused: Option<String>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = NodeInfo,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, crate::snapshot::SnapshotFile>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id_of("node1"), node_id_of("node1"));
        assert_ne!(node_id_of("node1"), node_id_of("node2"));
    }

    #[test]
    fn commands_round_trip_and_print_no_keys() {
        let c = Command::Batch(vec![
            WireOp::Put("b/secret-key-name".into(), vec![1, 2, 3]),
            WireOp::Delete("x".into()),
        ]);
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), c);
        assert_eq!(c.to_string(), "batch(2 ops)");
        let r = Command::Restore(RestoreOp::Stage {
            id: 1,
            seq: 2,
            records: vec![StagedRecord {
                key: "secret-key-name".into(),
                value: vec![9],
            }],
        });
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), r);
        assert!(!r.to_string().contains("secret"), "{r}");
    }

    #[test]
    fn batch_entries_keep_their_encoding() {
        // Logs written before restore staging existed must still decode:
        // `Batch` stays variant 0 and `Clear` keeps its index.
        let old = Command::Batch(vec![WireOp::Clear, WireOp::Delete("k".into())]);
        assert_eq!(
            postcard::to_allocvec(&old).unwrap(),
            vec![0, 2, 2, 1, 1, b'k']
        );
    }
}
