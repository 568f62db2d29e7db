//! KV v2 `delete/:path` and `undelete/:path`: soft-delete and restore listed
//! versions. Only the key metadata changes; version data stays in storage.

use arca_sdk::storage::put_json;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path};

use crate::backend::KvV2;
use crate::model::{deletion_time, load_config, load_metadata, metadata_key};
use crate::util::parse_versions;

pub(crate) const VERSIONS_FIELD_HELP: &str =
    "The versions to act on: a list of integers or a comma-separated string.";

pub(crate) fn paths() -> Vec<Path<KvV2>> {
    vec![
        Path::new("delete/(?P<path>.*)")
            .field(Field::new("path", FieldType::String, "Location of the secret."))
            .field(Field::new("versions", FieldType::Raw, VERSIONS_FIELD_HELP))
            .op(Operation::Update, |b: &KvV2, c| Box::pin(b.delete_versions(c)))
            .help(
                "Marks one or more versions as deleted in the KV store. The data is kept but no longer \
                 returned by reads; undelete reverses this.",
            ),
        Path::new("undelete/(?P<path>.*)")
            .field(Field::new("path", FieldType::String, "Location of the secret."))
            .field(Field::new("versions", FieldType::Raw, VERSIONS_FIELD_HELP))
            .op(Operation::Update, |b: &KvV2, c| Box::pin(b.undelete_versions(c)))
            .help("Undeletes one or more versions from the KV store, so that reads return them again."),
    ]
}

impl KvV2 {
    async fn delete_versions(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let versions = parse_versions(c.data.raw().get("versions"))?;
        if versions.is_empty() {
            return Err(LogicalError::invalid("No version number provided"));
        }
        let _g = self.write_lock(&path).await;
        let Some(mut meta) = load_metadata(c.storage, &path).await? else {
            return Ok(None);
        };
        let now = self.now();
        let mut changed = false;
        for n in versions {
            // Missing, destroyed or already deleted versions are skipped.
            if let Some(vm) = meta.versions.get_mut(&n) {
                if vm.is_live(now) {
                    vm.deletion_time = Some(now);
                    changed = true;
                }
            }
        }
        if changed {
            put_json(c.storage, &metadata_key(&path), &meta).await?;
        }
        Ok(None)
    }

    async fn undelete_versions(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let versions = parse_versions(c.data.raw().get("versions"))?;
        if versions.is_empty() {
            return Err(LogicalError::invalid("No version number provided"));
        }
        let config = load_config(c.storage).await?;
        let _g = self.write_lock(&path).await;
        let Some(mut meta) = load_metadata(c.storage, &path).await? else {
            return Ok(None);
        };
        let now = self.now();
        // An undeleted version gets a fresh delete_version_after window, as in Vault.
        let new_deletion = if config.delete_version_after_disabled() {
            None
        } else {
            deletion_time(now, config.delete_version_after, meta.delete_version_after)
        };
        let mut changed = false;
        for n in versions {
            if let Some(vm) = meta.versions.get_mut(&n) {
                if !vm.destroyed && vm.deletion_time != new_deletion {
                    vm.deletion_time = new_deletion;
                    changed = true;
                }
            }
        }
        if changed {
            put_json(c.storage, &metadata_key(&path), &meta).await?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{body, snapshot, V2};
    use arca_sdk::{LogicalError, Operation};
    use serde_json::json;

    async fn three_versions(h: &V2) {
        for i in 1..=3 {
            h.write("data/k", json!({"data": {"v": i}})).await;
        }
    }

    #[tokio::test]
    async fn delete_then_undelete_versions() {
        let h = V2::new();
        three_versions(&h).await;
        h.clock.advance(10);
        assert_eq!(
            h.write("delete/k", json!({"versions": [1, 3, 7]})).await,
            None
        );
        h.clock.advance(1);
        for n in [1, 3] {
            let r = h
                .get(Operation::Read, "data/k", json!({"version": n}))
                .await;
            assert_eq!(r.status, Some(404), "version {n}");
            assert_eq!(
                body(&r)["metadata"]["deletion_time"],
                "2024-05-06T07:08:19.12345678Z"
            );
        }
        assert_eq!(
            body(
                &h.get(Operation::Read, "data/k", json!({"version": 2}))
                    .await
            )["data"]["v"],
            2
        );
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(m["versions"]["2"]["deletion_time"], "");
        assert_ne!(m["versions"]["3"]["deletion_time"], "");

        // Deleting an already deleted version keeps its original deletion time.
        h.clock.advance(100);
        h.write("delete/k", json!({"versions": "1"})).await;
        let r = h
            .get(Operation::Read, "data/k", json!({"version": 1}))
            .await;
        assert_eq!(
            body(&r)["metadata"]["deletion_time"],
            "2024-05-06T07:08:19.12345678Z"
        );

        assert_eq!(
            h.write("undelete/k", json!({"versions": "1,3"})).await,
            None
        );
        for n in [1, 3] {
            let r = h
                .get(Operation::Read, "data/k", json!({"version": n}))
                .await;
            assert_eq!(r.status, None);
            assert_eq!(body(&r)["data"]["v"], n);
            assert_eq!(body(&r)["metadata"]["deletion_time"], "");
        }
    }

    #[tokio::test]
    async fn undelete_skips_destroyed_and_restarts_delete_version_after() {
        let h = V2::new();
        three_versions(&h).await;
        h.write("delete/k", json!({"versions": [1, 2]})).await;
        h.write("destroy/k", json!({"versions": [2]})).await;
        h.write("config", json!({"delete_version_after": "1m"}))
            .await;
        h.clock.advance(5);
        h.write("undelete/k", json!({"versions": [1, 2]})).await;
        let r = h
            .get(Operation::Read, "data/k", json!({"version": 1}))
            .await;
        assert_eq!(r.status, None);
        assert_eq!(
            body(&r)["metadata"]["deletion_time"],
            "2024-05-06T07:09:14.12345678Z"
        );
        let r = h
            .get(Operation::Read, "data/k", json!({"version": 2}))
            .await;
        assert_eq!(r.status, Some(404));
        assert_eq!(body(&r)["metadata"]["destroyed"], true);
    }

    #[tokio::test]
    async fn versions_are_required_and_missing_keys_are_no_ops() {
        let h = V2::new();
        for p in ["delete/k", "undelete/k"] {
            assert_eq!(
                h.err(Operation::Update, p, json!({})).await,
                LogicalError::invalid("No version number provided")
            );
            assert_eq!(
                h.err(Operation::Update, p, json!({"versions": []})).await,
                LogicalError::invalid("No version number provided")
            );
            assert!(matches!(
                h.err(Operation::Update, p, json!({"versions": {"a": 1}}))
                    .await,
                LogicalError::InvalidRequest(_)
            ));
            assert_eq!(h.write(p, json!({"versions": [1]})).await, None);
            assert_eq!(
                h.err(Operation::Read, p, json!({})).await,
                LogicalError::UnsupportedOperation
            );
        }
        assert!(h.storage.is_empty());
        // A request that changes nothing writes nothing.
        three_versions(&h).await;
        let before = snapshot(&h.storage).await;
        h.write("undelete/k", json!({"versions": [1, 9]})).await;
        assert_eq!(snapshot(&h.storage).await, before);
    }
}
