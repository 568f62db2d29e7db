//! [`View`]: the barrier seen through a key prefix, as a mount's
//! [`Storage`](arca_sdk::Storage).
//!
//! Invariants: a view reads and writes only keys under its prefix; keys and
//! list results it returns are relative to the prefix; sub-views nest by
//! concatenating prefixes. Values are bound (as associated data) to their full
//! logical path, so data cannot be moved between mounts either.

use std::sync::Arc;

use arca_sdk::{Storage, StorageError, StorageOp};
use async_trait::async_trait;

use crate::Barrier;

#[derive(Clone, Debug)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    /// A view of `barrier` under `prefix` (normally ends with `/`, e.g.
    /// `logical/<mount-uuid>/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }

    /// A view nested under this one: its prefix is this prefix plus `prefix`.
    pub fn sub(&self, prefix: impl AsRef<str>) -> View {
        View {
            barrier: Arc::clone(&self.barrier),
            prefix: format!("{}{}", self.prefix, prefix.as_ref()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    fn full(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Every key in the view (relative), in byte order.
    pub async fn keys(&self) -> Result<Vec<String>, StorageError> {
        let keys = self.barrier.scan(&self.prefix).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect())
    }

    /// Deletes every key in the view in one atomic batch (unmounting).
    pub async fn clear(&self) -> Result<(), StorageError> {
        let ops = self
            .barrier
            .scan(&self.prefix)
            .await?
            .into_iter()
            .map(StorageOp::Delete)
            .collect();
        Ok(self.barrier.batch(ops).await?)
    }
}

#[async_trait]
impl Storage for View {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.barrier.get(&self.full(key)).await?)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        Ok(self.barrier.put(&self.full(key), value).await?)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        Ok(self.barrier.delete(&self.full(key)).await?)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.barrier.list(&self.full(prefix)).await?)
    }

    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                StorageOp::Put(k, v) => StorageOp::Put(self.full(&k), v),
                StorageOp::Delete(k) => StorageOp::Delete(self.full(&k)),
            })
            .collect();
        Ok(self.barrier.batch(ops).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootKey;
    use arca_physical::{InmemBackend, PhysicalBackend};
    use arca_sdk::storage::{collect_keys, get_json, put_json};

    async fn setup() -> (Arc<InmemBackend>, Arc<Barrier>) {
        let physical = Arc::new(InmemBackend::new());
        let barrier = Barrier::new(physical.clone());
        barrier.initialize(&RootKey::generate()).await.unwrap();
        (physical, barrier)
    }

    #[tokio::test]
    async fn views_are_scoped_and_isolated() {
        let (_, barrier) = setup().await;
        let m1 = View::new(barrier.clone(), "logical/uuid-1/");
        let m2 = View::new(barrier.clone(), "logical/uuid-2/");
        m1.put("foo", b"one".to_vec()).await.unwrap();
        m1.put("dir/bar", b"two".to_vec()).await.unwrap();
        m2.put("foo", b"other".to_vec()).await.unwrap();
        assert_eq!(m1.get("foo").await.unwrap().unwrap(), b"one");
        assert_eq!(m2.get("foo").await.unwrap().unwrap(), b"other");
        assert_eq!(
            barrier
                .get("logical/uuid-1/dir/bar")
                .await
                .unwrap()
                .unwrap(),
            b"two"
        );
        assert_eq!(m1.list("").await.unwrap(), vec!["dir/", "foo"]);
        assert_eq!(m2.list("").await.unwrap(), vec!["foo"]);
        assert_eq!(
            barrier.list("logical/").await.unwrap(),
            vec!["uuid-1/", "uuid-2/"]
        );
        assert_eq!(collect_keys(&m1, "").await.unwrap(), vec!["dir/bar", "foo"]);
        assert_eq!(m1.keys().await.unwrap(), vec!["dir/bar", "foo"]);

        let sub = m1.sub("dir/");
        assert_eq!(sub.prefix(), "logical/uuid-1/dir/");
        assert_eq!(sub.get("bar").await.unwrap().unwrap(), b"two");
        assert_eq!(sub.list("").await.unwrap(), vec!["bar"]);

        put_json(&m2, "cfg", &serde_json::json!({"ttl": 5}))
            .await
            .unwrap();
        let cfg: serde_json::Value = get_json(&m2, "cfg").await.unwrap().unwrap();
        assert_eq!(cfg["ttl"], 5);

        m1.batch(vec![
            StorageOp::Delete("foo".into()),
            StorageOp::Put("baz".into(), b"3".to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(m1.get("foo").await.unwrap(), None);
        assert_eq!(
            barrier.get("logical/uuid-1/baz").await.unwrap().unwrap(),
            b"3"
        );

        m1.clear().await.unwrap();
        assert!(m1.keys().await.unwrap().is_empty());
        assert_eq!(m2.list("").await.unwrap(), vec!["cfg", "foo"]);
    }

    #[tokio::test]
    async fn sealed_and_read_only_map_to_storage_errors() {
        let (physical, barrier) = setup().await;
        let v = View::new(barrier.clone(), "logical/u/");
        v.put("k", b"v".to_vec()).await.unwrap();
        physical.set_read_only(true);
        assert_eq!(v.put("k", vec![]).await, Err(StorageError::ReadOnly));
        assert_eq!(v.delete("k").await, Err(StorageError::ReadOnly));
        assert_eq!(
            v.batch(vec![StorageOp::Delete("k".into())]).await,
            Err(StorageError::ReadOnly)
        );
        assert_eq!(v.get("k").await.unwrap().unwrap(), b"v");
        physical.set_read_only(false);
        barrier.seal();
        assert_eq!(v.get("k").await, Err(StorageError::Sealed));
        assert_eq!(v.put("k", vec![]).await, Err(StorageError::Sealed));
        assert_eq!(v.list("").await, Err(StorageError::Sealed));
        assert_eq!(v.batch(vec![]).await, Err(StorageError::Sealed));
    }

    #[tokio::test]
    async fn data_cannot_move_between_mounts() {
        let (physical, barrier) = setup().await;
        let m1 = View::new(barrier.clone(), "logical/a/");
        let m2 = View::new(barrier.clone(), "logical/b/");
        m1.put("secret", b"s".to_vec()).await.unwrap();
        m2.put("secret", b"t".to_vec()).await.unwrap();
        // Swap the raw ciphertexts: neither decrypts any more.
        let mut dump = physical.dump();
        dump.retain(|(k, _)| k.starts_with(crate::DATA_PREFIX));
        assert_eq!(dump.len(), 2);
        physical.put(&dump[0].0, dump[1].1.clone()).await.unwrap();
        physical.put(&dump[1].0, dump[0].1.clone()).await.unwrap();
        assert!(matches!(
            m1.get("secret").await,
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            m2.get("secret").await,
            Err(StorageError::Corrupt { .. })
        ));
    }
}
