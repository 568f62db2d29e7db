//! An in-memory [`PhysicalBackend`]: a `BTreeMap` behind a read/write lock.
//!
//! Invariants: every operation holds the lock for its whole duration, so a
//! batch is applied atomically with respect to readers; keys iterate in byte
//! order (`String`'s `Ord`), which is what `list` and `scan` return. Nothing
//! survives a drop. [`InmemBackend::set_read_only`] makes every write fail with
//! [`PhysicalError::ReadOnly`], to stand in for a Raft follower in tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::{check_key, check_ops, past_folder, Op, PhysicalBackend, PhysicalError};

#[derive(Debug, Default)]
pub struct InmemBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
    read_only: AtomicBool,
}

impl InmemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// While set, every write fails with [`PhysicalError::ReadOnly`].
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::SeqCst);
    }

    /// Number of stored keys.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every stored key and value, in key order (for tests that
    /// inspect what reached "disk").
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        self.map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn check_writable(&self) -> Result<(), PhysicalError> {
        if self.read_only.load(Ordering::SeqCst) {
            return Err(PhysicalError::ReadOnly);
        }
        Ok(())
    }
}

#[async_trait]
impl PhysicalBackend for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.check_writable()?;
        check_key(key)?;
        self.map.write().insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.check_writable()?;
        check_key(key)?;
        self.map.write().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        let map = self.map.read();
        let mut out = Vec::new();
        let mut cursor = Bound::Included(prefix.to_string());
        loop {
            let mut range = map.range::<String, _>((cursor.as_ref(), Bound::Unbounded));
            let Some((key, _)) = range.next() else { break };
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            match rest.find('/') {
                Some(i) => {
                    out.push(rest[..=i].to_string());
                    cursor = Bound::Included(past_folder(prefix, &rest[..i]));
                }
                None => {
                    if !rest.is_empty() {
                        out.push(rest.to_string());
                    }
                    cursor = Bound::Excluded(key.clone());
                }
            }
        }
        Ok(out)
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        let map = self.map.read();
        Ok(map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), PhysicalError> {
        self.check_writable()?;
        check_ops(&ops)?;
        let mut map = self.map.write();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k, v);
                }
                Op::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn conformance_suite() {
        conformance::run_all(&InmemBackend::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite_multi_thread() {
        conformance::run_all(&InmemBackend::new()).await;
    }

    /// A deliberately broken backend: its batch applies one operation at a
    /// time, yielding between them, and stops at the first invalid one. The
    /// suite must catch both flaws.
    struct OneByOne(InmemBackend);

    #[async_trait]
    impl PhysicalBackend for OneByOne {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
            self.0.get(key).await
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
            self.0.put(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
            self.0.list(prefix).await
        }
        async fn scan(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
            self.0.scan(prefix).await
        }
        async fn batch(&self, ops: Vec<Op>) -> Result<(), PhysicalError> {
            for op in ops {
                match op {
                    Op::Put(k, v) => self.0.put(&k, v).await?,
                    Op::Delete(k) => self.0.delete(&k).await?,
                }
                tokio::task::yield_now().await;
            }
            Ok(())
        }
    }

    #[tokio::test]
    #[should_panic(expected = "saw half a batch")]
    async fn suite_catches_torn_batches() {
        conformance::batch_atomic_visibility(&OneByOne(InmemBackend::new())).await;
    }

    #[tokio::test]
    #[should_panic(expected = "a failed batch must not apply its earlier puts")]
    async fn suite_catches_partially_applied_failed_batches() {
        conformance::batch_all_or_nothing(&OneByOne(InmemBackend::new())).await;
    }

    #[tokio::test]
    async fn read_only_refuses_writes_but_serves_reads() {
        let b = InmemBackend::new();
        b.put("k", vec![1]).await.unwrap();
        b.set_read_only(true);
        assert_eq!(b.put("k", vec![2]).await, Err(PhysicalError::ReadOnly));
        assert_eq!(b.delete("k").await, Err(PhysicalError::ReadOnly));
        assert_eq!(
            b.batch(vec![Op::Put("x".into(), vec![])]).await,
            Err(PhysicalError::ReadOnly)
        );
        assert_eq!(b.get("k").await.unwrap(), Some(vec![1]));
        b.set_read_only(false);
        b.put("k", vec![2]).await.unwrap();
        assert_eq!(b.dump(), vec![("k".to_string(), vec![2])]);
    }
}
