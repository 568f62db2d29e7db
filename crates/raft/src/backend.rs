//! [`RaftBackend`]: the physical storage trait over the replicated state.
//!
//! Reads are served from this node's applied state (whether they must first
//! wait for a read index is decided above, per request). Writes are
//! proposed to Raft and return once a quorum has the entry on disk and this
//! node (the leader) has applied it. On a node that is not the leader every
//! write fails with [`PhysicalError::ReadOnly`] before anything is written,
//! which makes the API layer forward the whole request to the leader.

use std::sync::Arc;

use arca_physical::{Op, PhysicalBackend, PhysicalError};
use async_trait::async_trait;
use openraft::errors::{ClientWriteError, RaftError};

use crate::node::RaftNode;
use crate::store::{cf, CF_DATA};
use crate::types::{Applied, Command, TypeConfig, WireOp};

#[derive(Clone)]
pub struct RaftBackend {
    node: Arc<RaftNode>,
}

impl RaftBackend {
    pub fn new(node: Arc<RaftNode>) -> Self {
        RaftBackend { node }
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, PhysicalError>
    where
        T: Send + 'static,
        F: FnOnce(&rocksdb::DB) -> Result<T, PhysicalError> + Send + 'static,
    {
        let db = Arc::clone(&self.node.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| PhysicalError::Io(format!("storage task failed: {e}")))?
    }

    /// Proposes one command and waits for it to be committed and applied.
    ///
    /// A leader that has not yet heard from a quorum (just restarted, or
    /// just elected) refuses writes without naming another leader; such a
    /// refusal is retried for up to two seconds before the write is given
    /// up as read-only.
    pub(crate) async fn propose(&self, cmd: Command) -> Result<Applied, PhysicalError> {
        // From proposal to committed and applied (`sys/metrics`).
        let _timer = arca_metrics::timer("vault.raft.apply", &[]);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match self.node.raft.client_write(cmd.clone()).await {
                Ok(r) => return Ok(r.data),
                Err(e) => {
                    let transient = matches!(
                        e.api_error(),
                        Some(ClientWriteError::ForwardToLeader(f)) if f.leader_id.is_none()
                    ) && self.node.is_leader();
                    if transient && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                        continue;
                    }
                    return Err(map_write_error(e));
                }
            }
        }
    }
}

pub(crate) fn map_write_error(
    e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> PhysicalError {
    match e.api_error() {
        Some(ClientWriteError::ForwardToLeader(_)) => PhysicalError::ReadOnly,
        Some(ClientWriteError::LogEntryDiscarded(_)) => PhysicalError::Io(
            "leadership changed while this write was being committed; its outcome is unknown, retry the request"
                .into(),
        ),
        _ => PhysicalError::Io(format!("raft write failed: {e}")),
    }
}

fn io(e: impl std::fmt::Display) -> PhysicalError {
    PhysicalError::Io(e.to_string())
}

#[async_trait]
impl PhysicalBackend for RaftBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        let key = key.to_string();
        self.blocking(move |db| db.get_cf(cf(db, CF_DATA), key.as_bytes()).map_err(io))
            .await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.batch(vec![Op::Put(key.to_string(), value)]).await
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.batch(vec![Op::Delete(key.to_string())]).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        let prefix = prefix.to_string();
        self.blocking(move |db| {
            let mut it = db.raw_iterator_cf(cf(db, CF_DATA));
            arca_physical::rocks::list_raw(&mut it, &prefix)
        })
        .await
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        let prefix = prefix.to_string();
        self.blocking(move |db| {
            let mut it = db.raw_iterator_cf(cf(db, CF_DATA));
            arca_physical::rocks::scan_raw(&mut it, &prefix)
        })
        .await
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), PhysicalError> {
        arca_physical::check_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Put(k, v) => WireOp::Put(k, v),
                Op::Delete(k) => WireOp::Delete(k),
            })
            .collect();
        self.propose(Command::Batch(ops)).await.map(|_| ())
    }
}
