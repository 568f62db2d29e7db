//! KV v2 `metadata/:path` (read, write, merge-patch, delete, list) and
//! OpenBao's `detailed-metadata/:path` (list with every key's metadata).

use arca_sdk::storage::put_json;
use arca_sdk::{
    Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response, StorageOp,
};
use serde_json::{Map, Value};

use crate::backend::KvV2;
use crate::model::{load_config, load_metadata, metadata_key, version_key, KeyMetadata};
use crate::util::{
    check_write_path, folder, paginate, parse_custom_metadata, patch_custom_metadata,
    validate_custom_metadata,
};

const CAS_IGNORED: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

fn list_fields<B>(p: Path<B>) -> Path<B> {
    p.field(Field::new(
        "after",
        FieldType::String,
        "Optional entry to begin listing after, not required to exist. Only used for listing.",
    ))
    .field(Field::new(
        "limit",
        FieldType::Int,
        "Optional number of entries to return; defaults to all entries. Only used for listing.",
    ))
}

pub(crate) fn paths() -> Vec<Path<KvV2>> {
    let metadata = Path::new("metadata/(?P<path>.*)")
        .field(Field::new("path", FieldType::String, "Location of the secret."))
        .field(Field::new(
            "cas_required",
            FieldType::Bool,
            "If true the key will require the cas parameter to be set on all write requests. If false, \
             the backend's configuration will be used.",
        ))
        .field(Field::new(
            "max_versions",
            FieldType::Int,
            "The number of versions to keep. If not set, the backend's configured max version is used.",
        ))
        .field(Field::new(
            "delete_version_after",
            FieldType::Duration,
            "The length of time before a version is deleted. If not set, the backend's configured \
             delete_version_after is used; cannot exceed it. A zero duration clears the setting.",
        ))
        .field(Field::new(
            "custom_metadata",
            FieldType::Map,
            "User-provided key-value pairs that describe arbitrary, version-agnostic information about a secret.",
        ));
    let metadata = list_fields(metadata)
        .op(Operation::Read, |b: &KvV2, c| Box::pin(b.read_metadata(c)))
        .op(Operation::Create, |b: &KvV2, c| Box::pin(b.write_metadata(c)))
        .op(Operation::Update, |b: &KvV2, c| Box::pin(b.write_metadata(c)))
        .op(Operation::Patch, |b: &KvV2, c| Box::pin(b.patch_metadata(c)))
        .op(Operation::Delete, |b: &KvV2, c| Box::pin(b.delete_metadata(c)))
        .op(Operation::List, |b: &KvV2, c| Box::pin(b.list_metadata(c, false)))
        .existence(|b: &KvV2, c| Box::pin(b.secret_exists(c)))
        .help(
            "Allows interaction with key metadata and settings in the KV store: read a key's versions \
             and settings, write or patch its settings, permanently delete a key and all its versions, \
             or list keys.",
        );
    let detailed = list_fields(
        Path::new("detailed-metadata/(?P<path>.*)")
            .field(Field::new("path", FieldType::String, "Location of the folder to list.")),
    )
    .op(Operation::List, |b: &KvV2, c| Box::pin(b.list_metadata(c, true)))
    .help("Lists keys with their complete metadata in key_info. Grant with care: it shows metadata without read access.");
    vec![metadata, detailed]
}

impl KvV2 {
    async fn read_metadata(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let meta = load_metadata(c.storage, &path)
            .await?
            .ok_or(LogicalError::NotFound)?;
        Ok(Some(Response::json(meta.to_json())))
    }

    async fn list_metadata(&self, c: Ctx<'_>, detailed: bool) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let after = c.data.str_or("after", "")?;
        let limit = c.data.get_i64("limit")?.unwrap_or(0);
        let dir = folder(&path);
        let keys = paginate(c.storage.list(&metadata_key(&dir)).await?, &after, limit);
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        let mut resp = Response::list(keys.clone());
        if detailed {
            let mut info = Map::new();
            for k in keys.iter().filter(|k| !k.ends_with('/')) {
                if let Some(meta) = load_metadata(c.storage, &format!("{dir}{k}")).await? {
                    info.insert(k.clone(), meta.to_json());
                }
            }
            resp.data
                .get_or_insert_with(Map::new)
                .insert("key_info".into(), Value::Object(info));
        }
        Ok(Some(resp))
    }

    async fn write_metadata(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        check_write_path(&path)?;
        let d = &c.data;
        if ![
            "max_versions",
            "cas_required",
            "delete_version_after",
            "custom_metadata",
        ]
        .iter()
        .any(|f| d.is_set(f))
        {
            return Ok(None);
        }
        let custom = match d.get_map("custom_metadata")? {
            Some(raw) => {
                let cm = parse_custom_metadata(&raw)?;
                validate_custom_metadata(&cm)?;
                Some(cm)
            }
            None => None,
        };
        let max_versions = max_versions_field(d)?;
        let config = load_config(c.storage).await?;
        let cas = d.get_bool("cas_required")?;
        let _g = self.write_lock(&path).await;
        let mut meta = match load_metadata(c.storage, &path).await? {
            Some(m) => m,
            None => KeyMetadata::created_at(self.now()),
        };
        if let Some(m) = max_versions {
            meta.max_versions = m;
        }
        if let Some(cas) = cas {
            meta.cas_required = cas;
        }
        if let Some(dva) = d.get_duration("delete_version_after")? {
            meta.delete_version_after = dva;
        }
        if let Some(cm) = custom {
            meta.custom_metadata = cm;
        }
        put_json(c.storage, &metadata_key(&path), &meta).await?;
        Ok(cas_warning(cas, config.cas_required))
    }

    async fn patch_metadata(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        check_write_path(&path)?;
        let d = &c.data;
        let max_versions = max_versions_field(d)?;
        let cas = d.get_bool("cas_required")?;
        let dva = d.get_duration("delete_version_after")?;
        // `null` removes all custom metadata; an object is merged, its nulls remove keys.
        let custom_patch = match d.raw().get("custom_metadata") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => Some(d.get_map("custom_metadata")?),
        };
        let config = load_config(c.storage).await?;
        let _g = self.write_lock(&path).await;
        let mut meta = load_metadata(c.storage, &path)
            .await?
            .ok_or(LogicalError::NotFound)?;
        if let Some(m) = max_versions {
            meta.max_versions = m;
        }
        if let Some(cas) = cas {
            meta.cas_required = cas;
        }
        if let Some(dva) = dva {
            meta.delete_version_after = dva;
        }
        match custom_patch {
            None => {}
            Some(None) => meta.custom_metadata.clear(),
            Some(Some(patch)) => {
                patch_custom_metadata(&mut meta.custom_metadata, &patch)?;
                validate_custom_metadata(&meta.custom_metadata)?;
            }
        }
        put_json(c.storage, &metadata_key(&path), &meta).await?;
        Ok(cas_warning(cas, config.cas_required))
    }

    async fn delete_metadata(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let _g = self.write_lock(&path).await;
        let Some(meta) = load_metadata(c.storage, &path).await? else {
            return Ok(None);
        };
        let mut ops: Vec<StorageOp> = meta
            .versions
            .keys()
            .map(|n| StorageOp::Delete(version_key(&path, *n)))
            .collect();
        ops.push(StorageOp::Delete(metadata_key(&path)));
        c.storage.batch(ops).await?;
        Ok(None)
    }
}

fn max_versions_field(d: &arca_sdk::FieldData) -> Result<Option<u32>, LogicalError> {
    match d.get_i64("max_versions")? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| LogicalError::invalid("max_versions must be between 0 and 4294967295")),
    }
}

fn cas_warning(cas: Option<bool>, config_requires: bool) -> Option<Response> {
    (cas == Some(false) && config_requires).then(|| Response::default().with_warning(CAS_IGNORED))
}

#[cfg(test)]
mod tests {
    use crate::test_util::{body, V2};
    use arca_sdk::{LogicalError, Operation};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn read_metadata_matches_vault_shape() {
        let h = V2::new();
        h.write("data/k", json!({"data": {"v": 1}})).await;
        h.clock.advance(2);
        h.write("data/k", json!({"data": {"v": 2}})).await;
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(
            m,
            json!({
                "cas_required": false,
                "created_time": "2024-05-06T07:08:09.12345678Z",
                "current_version": 2,
                "custom_metadata": null,
                "delete_version_after": "0s",
                "max_versions": 0,
                "oldest_version": 0,
                "updated_time": "2024-05-06T07:08:11.12345678Z",
                "versions": {
                    "1": {"created_time": "2024-05-06T07:08:09.12345678Z", "deletion_time": "", "destroyed": false},
                    "2": {"created_time": "2024-05-06T07:08:11.12345678Z", "deletion_time": "", "destroyed": false}
                }
            })
        );
        assert_eq!(
            h.err(Operation::Read, "metadata/none", json!({})).await,
            LogicalError::NotFound
        );
    }

    #[tokio::test]
    async fn write_metadata_before_and_after_data() {
        let h = V2::new();
        // Nothing to set: nothing is created.
        assert_eq!(h.write("metadata/k", json!({})).await, None);
        assert!(h.storage.is_empty());

        h.write(
            "metadata/k",
            json!({"max_versions": 5, "cas_required": false, "delete_version_after": "3h25m19s",
                   "custom_metadata": {"owner": "jdoe", "mission_critical": false}}),
        )
        .await;
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(m["max_versions"], 5);
        assert_eq!(m["delete_version_after"], "3h25m19s");
        assert_eq!(
            m["custom_metadata"],
            json!({"owner": "jdoe", "mission_critical": "0"})
        );
        assert_eq!(m["current_version"], 0);
        assert_eq!(m["versions"], json!({}));
        assert_eq!(m["created_time"], "2024-05-06T07:08:09.12345678Z");
        // Metadata alone is not readable data.
        assert_eq!(
            h.err(Operation::Read, "data/k", json!({})).await,
            LogicalError::NotFound
        );

        // Data responses carry the custom metadata; a partial write keeps the rest.
        h.clock.advance(1);
        let r = h
            .write("data/k", json!({"data": {"v": 1}, "options": {"cas": 0}}))
            .await
            .unwrap();
        assert_eq!(
            body(&r)["custom_metadata"],
            json!({"owner": "jdoe", "mission_critical": "0"})
        );
        h.write("metadata/k", json!({"max_versions": 7})).await;
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(m["max_versions"], 7);
        assert_eq!(m["custom_metadata"]["owner"], "jdoe");
        assert_eq!(m["delete_version_after"], "3h25m19s");
        assert_eq!(m["updated_time"], "2024-05-06T07:08:10.12345678Z");
        // custom_metadata is replaced as a whole by a write; empty reads back as null.
        h.write("metadata/k", json!({"custom_metadata": {"team": "a"}}))
            .await;
        assert_eq!(
            body(&h.get(Operation::Read, "metadata/k", json!({})).await)["custom_metadata"],
            json!({"team": "a"})
        );
        h.write("metadata/k", json!({"custom_metadata": {}})).await;
        assert_eq!(
            body(&h.get(Operation::Read, "metadata/k", json!({})).await)["custom_metadata"],
            Value::Null
        );
    }

    #[tokio::test]
    async fn metadata_validation() {
        let h = V2::new();
        let many: serde_json::Map<String, Value> =
            (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        for bad in [
            json!({"custom_metadata": many}),
            json!({"custom_metadata": {"k": ""}}),
            json!({"custom_metadata": {"k": {"nested": 1}}}),
            json!({"custom_metadata": "not a map"}),
            json!({"max_versions": -2}),
            json!({"delete_version_after": "-1s"}),
            json!({"cas_required": "perhaps"}),
        ] {
            let e = h.err(Operation::Update, "metadata/k", bad.clone()).await;
            assert!(matches!(e, LogicalError::InvalidRequest(_)), "{bad}: {e:?}");
        }
        let e = h
            .err(
                Operation::Update,
                "metadata/k",
                json!({"custom_metadata": {"k": ""}}),
            )
            .await
            .to_string();
        assert!(
            e.contains("custom_metadata validation failed: length of value for key \"k\" is 0"),
            "{e}"
        );
        assert_eq!(
            h.err(Operation::Update, "metadata/", json!({"max_versions": 1}))
                .await,
            LogicalError::invalid("missing path")
        );
        assert!(h.storage.is_empty());
    }

    #[tokio::test]
    async fn cas_required_false_warns_when_config_requires_it() {
        let h = V2::new();
        h.write("config", json!({"cas_required": true})).await;
        let r = h
            .write("metadata/k", json!({"cas_required": false}))
            .await
            .unwrap();
        assert_eq!(r.warnings, vec![super::CAS_IGNORED.to_string()]);
        assert_eq!(
            h.write("metadata/k", json!({"cas_required": true})).await,
            None
        );
    }

    #[tokio::test]
    async fn patch_metadata_merges() {
        let h = V2::new();
        assert_eq!(
            h.err(Operation::Patch, "metadata/k", json!({"max_versions": 5}))
                .await,
            LogicalError::NotFound
        );
        h.write("metadata/k", json!({"max_versions": 3, "cas_required": true, "custom_metadata": {"a": "1", "b": "2"}})).await;
        h.ok(
            Operation::Patch,
            "metadata/k",
            json!({"max_versions": 5, "custom_metadata": {"a": null, "c": "3"}}),
        )
        .await;
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(m["max_versions"], 5);
        assert_eq!(m["cas_required"], true);
        assert_eq!(m["custom_metadata"], json!({"b": "2", "c": "3"}));
        h.ok(
            Operation::Patch,
            "metadata/k",
            json!({"delete_version_after": "1h", "cas_required": false}),
        )
        .await;
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(
            (m["delete_version_after"].clone(), m["cas_required"].clone()),
            (json!("1h0m0s"), json!(false))
        );
        assert_eq!(m["custom_metadata"], json!({"b": "2", "c": "3"}));
        h.ok(
            Operation::Patch,
            "metadata/k",
            json!({"custom_metadata": null}),
        )
        .await;
        assert_eq!(
            body(&h.get(Operation::Read, "metadata/k", json!({})).await)["custom_metadata"],
            Value::Null
        );
        // Patches that would break the limits are refused.
        let e = h
            .err(
                Operation::Patch,
                "metadata/k",
                json!({"custom_metadata": {"x": ""}}),
            )
            .await;
        assert!(matches!(e, LogicalError::InvalidRequest(_)));
    }

    #[tokio::test]
    async fn delete_metadata_removes_everything() {
        let h = V2::new();
        for i in 0..3 {
            h.write("data/k", json!({"data": {"i": i}})).await;
        }
        h.write("destroy/k", json!({"versions": [1]})).await;
        h.write("data/other", json!({"data": {"i": 0}})).await;
        assert_eq!(h.ok(Operation::Delete, "metadata/k", json!({})).await, None);
        assert_eq!(h.storage.keys(), vec!["metadata/other", "versions/other/1"]);
        assert_eq!(
            h.err(Operation::Read, "data/k", json!({})).await,
            LogicalError::NotFound
        );
        assert_eq!(
            h.err(Operation::Read, "metadata/k", json!({})).await,
            LogicalError::NotFound
        );
        assert_eq!(h.ok(Operation::Delete, "metadata/k", json!({})).await, None);
        // A new secret at the same path starts again at version 1.
        assert_eq!(
            body(&h.write("data/k", json!({"data": {"i": 9}})).await.unwrap())["version"],
            1
        );
    }

    #[tokio::test]
    async fn list_metadata_folders_order_and_pagination() {
        let h = V2::new();
        for p in ["foo", "foo/bar", "foo/baz/qux", "b", "a", "Z"] {
            h.write(&format!("data/{p}"), json!({"data": {"p": p}}))
                .await;
        }
        // Soft-deleted secrets are still listed; metadata-only ones too.
        h.ok(Operation::Delete, "data/b", json!({})).await;
        h.write("metadata/m", json!({"max_versions": 1})).await;
        let keys = |r: arca_sdk::Response| body(&r)["keys"].clone();
        assert_eq!(
            keys(h.get(Operation::List, "metadata/", json!({})).await),
            json!(["Z", "a", "b", "foo", "foo/", "m"])
        );
        assert_eq!(
            keys(h.get(Operation::List, "metadata/foo", json!({})).await),
            json!(["bar", "baz/"])
        );
        assert_eq!(
            keys(h.get(Operation::List, "metadata/foo/", json!({})).await),
            json!(["bar", "baz/"])
        );
        assert_eq!(
            keys(
                h.get(
                    Operation::List,
                    "metadata/",
                    json!({"after": "a", "limit": 2})
                )
                .await
            ),
            json!(["b", "foo"])
        );
        assert_eq!(
            h.err(Operation::List, "metadata/", json!({"after": "m"}))
                .await,
            LogicalError::NotFound
        );
        assert_eq!(
            h.err(Operation::List, "metadata/nope/", json!({})).await,
            LogicalError::NotFound
        );
        // Deleting the metadata removes the key from listings.
        h.ok(Operation::Delete, "metadata/foo/baz/qux", json!({}))
            .await;
        assert_eq!(
            keys(h.get(Operation::List, "metadata/foo/", json!({})).await),
            json!(["bar"])
        );

        let empty = V2::new();
        assert_eq!(
            empty.err(Operation::List, "metadata/", json!({})).await,
            LogicalError::NotFound
        );
    }

    #[tokio::test]
    async fn detailed_metadata_lists_key_info() {
        let h = V2::new();
        h.write("data/dir/a", json!({"data": {"v": 1}})).await;
        h.write("data/dir/sub/b", json!({"data": {"v": 1}})).await;
        let r = body(
            &h.get(Operation::List, "detailed-metadata/dir/", json!({}))
                .await,
        );
        assert_eq!(r["keys"], json!(["a", "sub/"]));
        let read = body(&h.get(Operation::Read, "metadata/dir/a", json!({})).await);
        assert_eq!(r["key_info"], json!({"a": read}));
        assert_eq!(
            h.err(Operation::List, "detailed-metadata/none/", json!({}))
                .await,
            LogicalError::NotFound
        );
    }

    #[tokio::test]
    async fn existence_check() {
        let h = V2::new();
        let req = arca_sdk::Request::new(Operation::Update, "metadata/k");
        assert_eq!(
            arca_sdk::Backend::existence(&h.backend, &req, &h.storage)
                .await
                .unwrap(),
            Some(false)
        );
        h.write("metadata/k", json!({"max_versions": 1})).await;
        assert_eq!(
            arca_sdk::Backend::existence(&h.backend, &req, &h.storage)
                .await
                .unwrap(),
            Some(true)
        );
    }
}
