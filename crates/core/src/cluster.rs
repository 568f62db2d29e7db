//! What core needs from replicated (Raft) storage, as a trait the binary
//! implements over `arca-raft` — core never names the raft crate.
//!
//! Invariants:
//! - Only the active node (the Raft leader) writes; on a standby every write
//!   fails with `LogicalError::ReadOnly` and the HTTP layer forwards the
//!   whole request to the active node.
//! - Membership changes, step-down and snapshots go through the active node.

use std::time::Duration;

use async_trait::async_trait;

/// A member of the cluster as `sys/storage/raft/configuration` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterMember {
    /// Vault's `node_id`.
    pub node_id: String,
    pub api_addr: String,
    /// `http(s)://host:port` of the cluster port.
    pub cluster_addr: String,
    pub voter: bool,
    pub leader: bool,
}

/// This node's view of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// This node's own identity.
    pub this: ClusterMember,
    /// The node is the Raft leader and may write.
    pub is_active: bool,
    pub leader: Option<ClusterMember>,
    pub term: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    /// The node belongs to a cluster (bootstrapped, or joined and caught up).
    pub has_cluster: bool,
}

/// This node's certificate on the cluster port, its key and the cluster CA
/// (PEM). See [`crate::cluster_tls`].
#[derive(Clone)]
pub struct ClusterIdentity {
    pub cert_pem: String,
    pub key_pem: zeroize::Zeroizing<String>,
    pub ca_pem: String,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("this node is not the active node")]
    NotActive,
    #[error("no active node is elected at the moment; retry shortly")]
    NoLeader,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Cluster: Send + Sync {
    fn state(&self) -> ClusterState;
    fn members(&self) -> Vec<ClusterMember>;
    /// Makes this node a one-member cluster (first `sys/init`).
    async fn bootstrap(&self) -> Result<(), ClusterError>;
    /// Adds a node (active node only) as a non-voter and returns at once; a
    /// voter is promoted in the background once it has caught up (it can
    /// only connect once it holds the certificate the caller hands it).
    async fn add_member(&self, m: ClusterMember) -> Result<(), ClusterError>;
    async fn remove_member(&self, node_id: &str) -> Result<(), ClusterError>;
    /// Hands leadership to another voter.
    async fn step_down(&self) -> Result<(), ClusterError>;
    /// Whether this node may become the leader (false while sealed by
    /// `sys/seal`, so that leadership stays with a node that can serve).
    fn set_electable(&self, on: bool);
    /// True when core issues this node's cluster-port certificate from the
    /// cluster CA; false when the operator configured certificate files.
    fn managed_identity(&self) -> bool;
    /// Installs (or removes, with `None`) this node's cluster identity.
    /// Without one a node neither reaches nor serves its peers.
    fn set_identity(&self, id: Option<ClusterIdentity>) -> Result<(), ClusterError>;
    /// Waits until this node has applied everything committed cluster-wide
    /// when the call began (a linearizable read point).
    async fn read_barrier(&self, timeout: Duration) -> Result<(), ClusterError>;
    /// Writes this node's data, at one point in time, as snapshot records
    /// to `out`; returns the (term, index) it reflects.
    async fn export(&self, out: &std::path::Path) -> Result<(u64, u64), ClusterError>;
    /// Replaces the cluster's data with the records in `file` (active node).
    async fn import(&self, file: &std::path::Path) -> Result<(), ClusterError>;
}
