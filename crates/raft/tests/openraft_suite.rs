//! Runs openraft's own storage conformance suite
//! (`openraft::testing::log::Suite::test_all`) against Arca's Raft storage:
//! the RocksDB log store and state machine a node opens, each case on a
//! fresh database in its own temporary directory. Passing proves the store
//! keeps the contract openraft relies on: votes, appends, truncation and
//! purge, log state and reader, applied state and membership, initial-state
//! recovery (re-applying committed entries), and snapshot build/install.

use arca_raft::types::TypeConfig;
use arca_raft::{open_storage, LogStore, StateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;

/// Builds a fresh log store and state machine over a new RocksDB database.
/// The guard is the temporary directory: dropping it removes the database.
struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let err = |e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e);
        let dir = tempfile::tempdir().map_err(err)?;
        let (log, sm) = open_storage(dir.path()).map_err(err)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openraft_storage_suite_passes() {
    let res = Suite::test_all(RocksBuilder).await;
    assert!(res.is_ok(), "openraft storage suite failed: {res:?}");
}
