//! Raw ordered key/value storage under the barrier: it only ever sees
//! ciphertext (plus the few plaintext bootstrap records the seal needs).
//!
//! Invariants every implementation keeps (checked by [`conformance`]):
//! - keys are arbitrary non-empty UTF-8 (spaces, unicode), values arbitrary
//!   bytes (≥ 1 MiB); a put, delete or batch naming the empty key fails with
//!   [`PhysicalError::InvalidKey`] (it could never be listed), a get of it
//!   finds nothing;
//! - `list(prefix)` returns the immediate children of `prefix` in byte order,
//!   sub-folders once with a trailing `/` (Vault semantics);
//! - `scan(prefix)` returns every key under `prefix` in byte order;
//! - `batch` applies its operations in order, all of them or none: a batch
//!   containing an invalid operation fails and changes nothing, and a reader
//!   never observes part of a batch;
//! - deleting a missing key succeeds;
//! - a write is durable when it returns (RocksDB: WAL synced).

use async_trait::async_trait;

pub mod archive;
pub mod conformance;
pub mod inmem;
#[cfg(feature = "rocksdb")]
pub mod rocks;

pub use inmem::InmemBackend;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksBackend;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PhysicalError {
    /// This node may not write (a Raft follower); the request is forwarded.
    #[error("storage is read-only on this node")]
    ReadOnly,
    #[error("storage I/O error: {0}")]
    Io(String),
    /// The key cannot be stored (the empty key); nothing was written.
    #[error("invalid storage key {0:?}: keys must not be empty")]
    InvalidKey(String),
}

/// Rejects keys no backend may store: the empty key is not listable.
pub(crate) fn check_key(key: &str) -> Result<(), PhysicalError> {
    if key.is_empty() {
        return Err(PhysicalError::InvalidKey(key.to_string()));
    }
    Ok(())
}

/// Checks every key of a batch before any of it is applied.
pub fn check_ops(ops: &[Op]) -> Result<(), PhysicalError> {
    ops.iter().try_for_each(|op| match op {
        Op::Put(k, _) | Op::Delete(k) => check_key(k),
    })
}

/// Where a listing resumes after finding the sub-folder `prefix + name + "/"`:
/// the smallest key greater than every key under that folder (`'0'` is the
/// byte after `'/'`), so a listing seeks past a folder instead of walking it.
pub(crate) fn past_folder(prefix: &str, name: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + name.len() + 1);
    s.push_str(prefix);
    s.push_str(name);
    s.push('0');
    s
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

#[async_trait]
pub trait PhysicalBackend: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError>;
    async fn delete(&self, key: &str) -> Result<(), PhysicalError>;
    /// Immediate children of `prefix`, sorted; sub-folders once, with a trailing `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError>;
    /// All keys under `prefix` (full keys), sorted.
    async fn scan(&self, prefix: &str) -> Result<Vec<String>, PhysicalError>;
    /// Applies every operation or none.
    async fn batch(&self, ops: Vec<Op>) -> Result<(), PhysicalError>;
}
