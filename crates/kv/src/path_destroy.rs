//! KV v2 `destroy/:path`: permanently removes the data of listed versions.
//! The versions stay in the metadata, marked `destroyed`; metadata update
//! and data deletion are one batch.

use arca_sdk::storage::json_op;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, StorageOp};

use crate::backend::KvV2;
use crate::model::{load_metadata, metadata_key, version_key};
use crate::path_delete::VERSIONS_FIELD_HELP;
use crate::util::parse_versions;

pub(crate) fn path() -> Path<KvV2> {
    Path::new("destroy/(?P<path>.*)")
        .field(Field::new(
            "path",
            FieldType::String,
            "Location of the secret.",
        ))
        .field(Field::new("versions", FieldType::Raw, VERSIONS_FIELD_HELP))
        .op(Operation::Update, |b: &KvV2, c| {
            Box::pin(b.destroy_versions(c))
        })
        .help("Permanently removes the data of one or more versions from the KV store.")
}

impl KvV2 {
    async fn destroy_versions(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let versions = parse_versions(c.data.raw().get("versions"))?;
        if versions.is_empty() {
            return Err(LogicalError::invalid("no version number provided"));
        }
        let _g = self.write_lock(&path).await;
        let Some(mut meta) = load_metadata(c.storage, &path).await? else {
            return Ok(None);
        };
        let mut deletes = Vec::new();
        for n in versions {
            if let Some(vm) = meta.versions.get_mut(&n) {
                if !vm.destroyed {
                    vm.destroyed = true;
                    deletes.push(StorageOp::Delete(version_key(&path, n)));
                }
            }
        }
        if deletes.is_empty() {
            return Ok(None);
        }
        let mut ops = vec![json_op(&metadata_key(&path), &meta)?];
        ops.extend(deletes);
        c.storage.batch(ops).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{body, snapshot, V2};
    use arca_sdk::{LogicalError, Operation, Storage};
    use serde_json::json;

    #[tokio::test]
    async fn destroy_removes_data_and_keeps_metadata() {
        let h = V2::new();
        for i in 1..=3 {
            h.write("data/k", json!({"data": {"v": i}})).await;
        }
        assert_eq!(
            h.write("destroy/k", json!({"versions": [2, 3, 42]})).await,
            None
        );
        assert!(h.storage.get("versions/k/2").await.unwrap().is_none());
        assert!(h.storage.get("versions/k/3").await.unwrap().is_none());
        assert!(h.storage.get("versions/k/1").await.unwrap().is_some());

        let r = h.get(Operation::Read, "data/k", json!({})).await;
        assert_eq!(r.status, Some(404));
        assert_eq!(body(&r)["data"], serde_json::Value::Null);
        assert_eq!(body(&r)["metadata"]["destroyed"], true);
        assert_eq!(body(&r)["metadata"]["deletion_time"], "");
        assert_eq!(
            body(
                &h.get(Operation::Read, "data/k", json!({"version": 1}))
                    .await
            )["data"]["v"],
            1
        );
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(m["versions"]["2"]["destroyed"], true);
        assert_eq!(m["versions"]["1"]["destroyed"], false);
        assert_eq!(m["current_version"], 3);

        // Destroyed versions cannot be deleted or undeleted, and destroying again is a no-op.
        let before = snapshot(&h.storage).await;
        h.write("destroy/k", json!({"versions": [2]})).await;
        h.write("delete/k", json!({"versions": [2]})).await;
        h.write("undelete/k", json!({"versions": [2]})).await;
        assert_eq!(snapshot(&h.storage).await, before);
        // A destroyed latest version cannot be soft-deleted either.
        h.ok(Operation::Delete, "data/k", json!({})).await;
        assert_eq!(snapshot(&h.storage).await, before);

        // Writing continues the numbering.
        assert_eq!(
            body(&h.write("data/k", json!({"data": {"v": 4}})).await.unwrap())["version"],
            4
        );
    }

    #[tokio::test]
    async fn deleted_then_destroyed_lifecycle() {
        let h = V2::new();
        h.write("data/k", json!({"data": {"v": 1}})).await;
        h.ok(Operation::Delete, "data/k", json!({})).await;
        h.write("destroy/k", json!({"versions": "1"})).await;
        h.clock.advance(1);
        let r = h.get(Operation::Read, "data/k", json!({})).await;
        assert_eq!(r.status, Some(404));
        assert_eq!(body(&r)["metadata"]["destroyed"], true);
        assert_ne!(body(&r)["metadata"]["deletion_time"], "");
        assert_eq!(h.storage.keys(), vec!["metadata/k"]);
    }

    #[tokio::test]
    async fn versions_are_required() {
        let h = V2::new();
        assert_eq!(
            h.err(Operation::Update, "destroy/k", json!({})).await,
            LogicalError::invalid("no version number provided")
        );
        assert_eq!(
            h.write("destroy/missing", json!({"versions": [1]})).await,
            None
        );
        assert!(h.storage.is_empty());
    }
}
