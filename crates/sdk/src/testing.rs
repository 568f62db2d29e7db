//! In-memory [`Storage`] for engine tests.

use crate::storage::{children_of, Storage, StorageError, StorageOp};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct InmemStorage {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl InmemStorage {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn keys(&self) -> Vec<String> {
        self.map.lock().unwrap().keys().cloned().collect()
    }
}

#[async_trait]
impl Storage for InmemStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.map.lock().unwrap().insert(key.to_string(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.map.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let m = self.map.lock().unwrap();
        let keys = m
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(children_of(prefix, keys))
    }
    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        let mut m = self.map.lock().unwrap();
        for op in ops {
            match op {
                StorageOp::Put(k, v) => {
                    m.insert(k, v);
                }
                StorageOp::Delete(k) => {
                    m.remove(&k);
                }
            }
        }
        Ok(())
    }
}

/// A test engine that answers every read with what it was given: the
/// request's client token, mount point, type and accessor, connection and
/// forwarded flag, and its system view's TTLs. Register it under any type
/// (`Registry::secrets("echo", echo_backend)`) in tests of core and http.
pub fn echo_backend(
    cfg: &crate::BackendConfig,
) -> Result<std::sync::Arc<dyn crate::Backend>, crate::LogicalError> {
    use crate::{Field, FieldType, Framework, Operation, Path, Response};
    use serde_json::json;
    struct Echo(std::sync::Arc<dyn crate::SystemView>);
    let path = Path::new("(?P<rest>.*)")
        .field(Field::new("rest", FieldType::String, "Anything."))
        .op(Operation::Read, |b: &Echo, c| {
            Box::pin(async move {
                let conn = c.req.connection.as_ref();
                let data: serde_json::Map<String, serde_json::Value> = [
                    ("client_token", json!(c.req.client_token)),
                    ("mount_point", json!(c.req.mount_point)),
                    ("mount_type", json!(c.req.mount_type)),
                    ("mount_accessor", json!(c.req.mount_accessor)),
                    ("forwarded", json!(c.req.forwarded)),
                    (
                        "remote_addr",
                        json!(conn.map(|c| c.remote_addr.to_string())),
                    ),
                    ("remote_port", json!(conn.map(|c| c.remote_port))),
                    (
                        "peer_certificates",
                        json!(conn.map(|c| c.peer_certificates.len())),
                    ),
                    ("default_lease_ttl", json!(b.0.default_lease_ttl())),
                    ("max_lease_ttl", json!(b.0.max_lease_ttl())),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                Ok(Some(Response::data(data)))
            })
        })
        .help("Echoes what the engine is given.");
    Ok(std::sync::Arc::new(Framework::new(
        "echo",
        Echo(cfg.system.clone()),
        vec![path],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn list_shows_immediate_children_and_folders() {
        let s = InmemStorage::new();
        for k in ["a/b", "a/c/d", "a/c/e", "a/d", "b", "ab"] {
            s.put(k, vec![1]).await.unwrap();
        }
        assert_eq!(s.list("a/").await.unwrap(), vec!["b", "c/", "d"]);
        assert_eq!(s.list("").await.unwrap(), vec!["a/", "ab", "b"]);
        assert_eq!(s.list("zz/").await.unwrap(), Vec::<String>::new());
    }
}
