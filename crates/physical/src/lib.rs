//! Raw ordered key/value storage under the barrier: it only ever sees
//! ciphertext (plus the few plaintext bootstrap records the seal needs).
//!
//! Invariants every implementation keeps (checked by [`conformance`]):
//! - keys are arbitrary UTF-8 (spaces, unicode), values arbitrary bytes (≥ 1 MiB);
//! - `list(prefix)` returns the immediate children of `prefix` in byte order,
//!   sub-folders once with a trailing `/` (Vault semantics);
//! - `scan(prefix)` returns every key under `prefix` in byte order;
//! - `batch` applies all of its operations or none;
//! - a write is durable when it returns (RocksDB: WAL synced).

use async_trait::async_trait;

pub mod conformance;
pub mod inmem;
pub mod rocks;

pub use inmem::InmemBackend;
pub use rocks::RocksBackend;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PhysicalError {
    /// This node may not write (a Raft follower); the request is forwarded.
    #[error("storage is read-only on this node")]
    ReadOnly,
    #[error("storage I/O error: {0}")]
    Io(String),
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
