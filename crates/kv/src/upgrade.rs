//! Converting a mount's KV v1 secrets to KV v2 when it is tuned to version 2.
//!
//! Each `v1/<path>` becomes version 1 of the v2 secret `<path>` in one batch
//! that writes the metadata and version data and deletes the v1 key. The
//! upgrade is therefore restartable at any point and idempotent: a second run
//! finds no v1 keys left. If a v2 secret already exists at the same path
//! (a client wrote it while an interrupted upgrade was pending), the v2 data
//! is newer and is kept; the stale v1 key is dropped.

use arca_sdk::storage::json_op;
use arca_sdk::{LogicalError, Storage, StorageOp};
use chrono::Utc;
use serde_json::{Map, Value};

use crate::model::{load_metadata, metadata_key, v1_key, version_key, KeyMetadata, VersionData};
use crate::path_passthrough::all_v1_paths;

/// Upgrades every KV v1 secret in `storage` (a mount's view) to KV v2.
pub async fn upgrade_v1_to_v2(storage: &dyn Storage) -> Result<(), LogicalError> {
    for path in all_v1_paths(storage).await? {
        let key = v1_key(&path);
        let Some(raw) = storage.get(&key).await? else {
            continue;
        };
        if load_metadata(storage, &path).await?.is_some() {
            storage.batch(vec![StorageOp::Delete(key)]).await?;
            continue;
        }
        let data: Map<String, Value> = serde_json::from_slice(&raw).map_err(|e| {
            LogicalError::internal(format!(
                "upgrading {path:?}: stored v1 secret is not a JSON object: {e}"
            ))
        })?;
        let now = Utc::now();
        let mut meta = KeyMetadata::default();
        // Vault adds the version with a window of one: oldest_version becomes 1.
        let (n, _) = meta.add_version(now, None, 1);
        storage
            .batch(vec![
                json_op(
                    &version_key(&path, n),
                    &VersionData {
                        data,
                        created_time: now,
                    },
                )?,
                json_op(&metadata_key(&path), &meta)?,
                StorageOp::Delete(key),
            ])
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{kv_v1, kv_v2};
    use crate::test_util::{body, snapshot, ReadOnly};
    use arca_sdk::testing::InmemStorage;
    use arca_sdk::{Backend, Operation, Request};
    use serde_json::json;

    async fn v1_write(s: &InmemStorage, path: &str, data: Value) {
        kv_v1()
            .handle(&Request::new(Operation::Update, path).with_data(data), s)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn v1_secrets_become_version_one() {
        let s = InmemStorage::new();
        v1_write(&s, "foo", json!({"a": "b", "ttl": "1h"})).await;
        v1_write(&s, "dir/sub key", json!({"n": 1})).await;
        v1_write(&s, "metadata/tricky", json!({"looks": "like a v2 record"})).await;
        v1_write(&s, "ünï/秘密", json!({"u": true})).await;
        upgrade_v1_to_v2(&s).await.unwrap();
        assert!(
            s.keys().iter().all(|k| !k.starts_with("v1/")),
            "{:?}",
            s.keys()
        );

        let v2 = kv_v2();
        for (p, data) in [
            ("foo", json!({"a": "b", "ttl": "1h"})),
            ("dir/sub key", json!({"n": 1})),
            ("metadata/tricky", json!({"looks": "like a v2 record"})),
            ("ünï/秘密", json!({"u": true})),
        ] {
            let r = v2
                .handle(&Request::new(Operation::Read, format!("data/{p}")), &s)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(body(&r)["data"], data, "{p}");
            assert_eq!(body(&r)["metadata"]["version"], 1);
            let m = v2
                .handle(&Request::new(Operation::Read, format!("metadata/{p}")), &s)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    body(&m)["current_version"].clone(),
                    body(&m)["oldest_version"].clone()
                ),
                (json!(1), json!(1))
            );
            assert_eq!(body(&m)["max_versions"], 0);
        }
        let r = v2
            .handle(&Request::new(Operation::List, "metadata/"), &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            body(&r)["keys"],
            json!(["dir/", "foo", "metadata/", "ünï/"])
        );
        // The next write is version 2 and keeps version 1.
        let r = v2
            .handle(
                &Request::new(Operation::Update, "data/foo").with_data(json!({"data": {"a": "c"}})),
                &s,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body(&r)["version"], 2);
    }

    #[tokio::test]
    async fn upgrade_is_idempotent_and_restartable() {
        let s = InmemStorage::new();
        v1_write(&s, "a", json!({"v": 1})).await;
        v1_write(&s, "b", json!({"v": 2})).await;
        upgrade_v1_to_v2(&s).await.unwrap();
        let after = snapshot(&s).await;
        upgrade_v1_to_v2(&s).await.unwrap();
        assert_eq!(snapshot(&s).await, after);

        // An interrupted upgrade left "c" behind while a client wrote a v2 "b"
        // and a stale v1 "b" reappeared: the v2 data wins.
        v1_write(&s, "c", json!({"v": 3})).await;
        v1_write(&s, "b", json!({"v": "stale"})).await;
        upgrade_v1_to_v2(&s).await.unwrap();
        let v2 = kv_v2();
        let r = v2
            .handle(&Request::new(Operation::Read, "data/b"), &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body(&r)["data"], json!({"v": 2}));
        let r = v2
            .handle(&Request::new(Operation::Read, "data/c"), &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body(&r)["data"], json!({"v": 3}));
        assert!(s.keys().iter().all(|k| !k.starts_with("v1/")));
    }

    #[tokio::test]
    async fn empty_mount_upgrades_without_writing() {
        let s = InmemStorage::new();
        upgrade_v1_to_v2(&ReadOnly(&s)).await.unwrap();
        // A failing write surfaces as an error and leaves the v1 data in place.
        v1_write(&s, "a", json!({"v": 1})).await;
        let before = snapshot(&s).await;
        assert_eq!(
            upgrade_v1_to_v2(&ReadOnly(&s)).await.unwrap_err(),
            LogicalError::ReadOnly
        );
        assert_eq!(snapshot(&s).await, before);
    }

    #[tokio::test]
    async fn corrupt_v1_value_is_an_error() {
        let s = InmemStorage::new();
        s.put("v1/bad", b"[1,2]".to_vec()).await.unwrap();
        assert!(matches!(
            upgrade_v1_to_v2(&s).await.unwrap_err(),
            LogicalError::Internal(_)
        ));
        assert!(s.get("v1/bad").await.unwrap().is_some());
    }
}
