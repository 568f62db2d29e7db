//! The storage a backend sees: a key/value space already scoped to its mount.
//!
//! List semantics follow Vault: `list("a/")` returns the immediate children of
//! `a/` in byte order; a child that has children of its own appears once, with
//! a trailing `/`.

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StorageError {
    #[error("storage is read-only on this node")]
    ReadOnly,
    #[error("storage is sealed")]
    Sealed,
    #[error("stored value at {key:?} cannot be decrypted or decoded: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// One write in an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageOp {
    Put(String, Vec<u8>),
    Delete(String),
}

#[async_trait]
pub trait Storage: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError>;
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Immediate children of `prefix`, sorted; sub-folders end with `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Applies all operations or none.
    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError>;
}

/// JSON helpers over any [`Storage`].
pub async fn get_json<T: DeserializeOwned>(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<T>, StorageError> {
    match s.get(key).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                key: key.to_string(),
                reason: e.to_string(),
            }),
    }
}

pub async fn put_json<T: Serialize + ?Sized>(
    s: &dyn Storage,
    key: &str,
    value: &T,
) -> Result<(), StorageError> {
    let b = serde_json::to_vec(value).map_err(|e| StorageError::Backend(e.to_string()))?;
    s.put(key, b).await
}

pub fn json_op<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<StorageOp, StorageError> {
    let b = serde_json::to_vec(value).map_err(|e| StorageError::Backend(e.to_string()))?;
    Ok(StorageOp::Put(key.to_string(), b))
}

/// Every key under `prefix`, recursively (walks `list`).
pub async fn collect_keys(s: &dyn Storage, prefix: &str) -> Result<Vec<String>, StorageError> {
    let mut out = Vec::new();
    let mut stack = vec![prefix.to_string()];
    while let Some(p) = stack.pop() {
        for k in s.list(&p).await? {
            let full = format!("{p}{k}");
            if k.ends_with('/') {
                stack.push(full);
            } else {
                out.push(full);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Vault list semantics over a sorted iterator of full keys that all start with `prefix`.
pub fn children_of<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let rest = &k[prefix.len()..];
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        if out.last().map(|l| l.as_str()) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}
