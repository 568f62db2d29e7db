//! KV v2 `data/:path`: read a version, write a new version, merge-patch the
//! current version, soft-delete the current version.
//!
//! A deleted or destroyed version answers 404 *with* a body carrying its
//! metadata (`{"data": null, "metadata": {...}}`), as Vault does: the handler
//! returns a [`Response`] whose `status` is `Some(404)`. A missing secret or
//! version is a plain [`LogicalError::NotFound`].

use arca_sdk::storage::json_op;
use arca_sdk::{
    Ctx, Field, FieldData, FieldType, HandlerResult, LogicalError, Operation, Path, Response,
    Storage, StorageOp,
};
use serde_json::{json, Map, Value};

use crate::backend::KvV2;
use crate::model::{
    deletion_time, load_config, load_metadata, load_version, metadata_key, version_key, Config,
    KeyMetadata, VersionData,
};
use crate::util::{check_write_path, merge_patch, weak_int};

pub(crate) fn paths() -> Vec<Path<KvV2>> {
    vec![Path::new("data/(?P<path>.*)")
        .field(Field::new("path", FieldType::String, "Location of the secret."))
        .field(Field::new(
            "version",
            FieldType::Int,
            "If provided during a read, the value at the version number will be returned.",
        ))
        .field(Field::new(
            "options",
            FieldType::Map,
            "Options for writing a KV entry. Set \"cas\" to use check-and-set: 0 allows the write only if \
             the key does not exist, a non-zero value only if it matches the key's current version.",
        ))
        .field(Field::new("data", FieldType::Map, "The contents of the data map will be stored and returned on read."))
        .op(Operation::Read, |b: &KvV2, c| Box::pin(b.read_data(c)))
        .op(Operation::Create, |b: &KvV2, c| Box::pin(b.write_data(c)))
        .op(Operation::Update, |b: &KvV2, c| Box::pin(b.write_data(c)))
        .op(Operation::Patch, |b: &KvV2, c| Box::pin(b.patch_data(c)))
        .op(Operation::Delete, |b: &KvV2, c| Box::pin(b.delete_latest(c)))
        .existence(|b: &KvV2, c| Box::pin(b.secret_exists(c)))
        .help(
            "Write, patch, read, and delete data in the versioned key-value store. Each write creates a \
             new version; reads return the latest version unless \"version\" is set; delete is a soft \
             delete of the latest version that undelete can reverse.",
        )]
}

/// A 404 whose body still describes the version (deleted or destroyed).
pub(crate) fn not_found_with(body: Value) -> Response {
    Response {
        status: Some(404),
        ..Response::json(body)
    }
}

/// The outcome of looking up one version for reading.
pub(crate) enum VersionRead {
    /// No such secret or version: a plain 404.
    Missing,
    /// Deleted or destroyed: 404 with this version metadata.
    Gone(Value),
    /// Readable: version metadata and data.
    Live(Value, Map<String, Value>),
}

/// Looks up version `requested` (0: current) of `path` without writing anything.
pub(crate) async fn read_version(
    b: &KvV2,
    s: &dyn Storage,
    path: &str,
    requested: i64,
) -> Result<VersionRead, LogicalError> {
    let _g = b.read_lock(path).await;
    // Two rounds: on a standby, replication may destroy or trim the version
    // between our metadata read and data read; the second round sees that.
    for round in 0..2 {
        let Some(meta) = load_metadata(s, path).await? else {
            return Ok(VersionRead::Missing);
        };
        let n = if requested > 0 {
            requested.unsigned_abs()
        } else {
            meta.current_version
        };
        let Some(vm) = meta.versions.get(&n) else {
            return Ok(VersionRead::Missing);
        };
        let md = meta.version_json(n, vm);
        if !vm.is_live(b.now()) {
            return Ok(VersionRead::Gone(md));
        }
        match load_version(s, path, n).await? {
            Some(v) => return Ok(VersionRead::Live(md, v.data)),
            None if round == 0 => continue,
            None => break,
        }
    }
    Err(LogicalError::internal("could not find version data"))
}

/// Vault's check-and-set rule for data writes and patches.
fn check_cas(d: &FieldData, config: &Config, meta: &KeyMetadata) -> Result<(), LogicalError> {
    let cas = d.get_map("options")?.and_then(|o| o.get("cas").cloned());
    match cas {
        Some(v) => {
            let cas = weak_int(&v)
                .ok_or_else(|| LogicalError::invalid("error parsing check-and-set parameter"))?;
            if u64::try_from(cas).ok() != Some(meta.current_version) {
                return Err(LogicalError::invalid(
                    "check-and-set parameter did not match the current version",
                ));
            }
        }
        None if config.cas_required || meta.cas_required => {
            return Err(LogicalError::invalid(
                "check-and-set parameter required for this call",
            ));
        }
        None => {}
    }
    Ok(())
}

impl KvV2 {
    pub(crate) async fn secret_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let path = c.data.str_or("path", "")?;
        Ok(load_metadata(c.storage, &path).await?.is_some())
    }

    async fn read_data(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let version = c.data.get_i64("version")?.unwrap_or(0);
        match read_version(self, c.storage, &path, version).await? {
            VersionRead::Missing => Err(LogicalError::NotFound),
            VersionRead::Gone(md) => {
                Ok(Some(not_found_with(json!({"data": null, "metadata": md}))))
            }
            VersionRead::Live(md, data) => {
                Ok(Some(Response::json(json!({"data": data, "metadata": md}))))
            }
        }
    }

    /// Adds `data` as the next version of `path` in one batch: version data,
    /// metadata, and the deletion of versions that fell out of the window.
    async fn append_version(
        &self,
        s: &dyn Storage,
        path: &str,
        mut meta: KeyMetadata,
        config: &Config,
        data: Map<String, Value>,
    ) -> HandlerResult {
        let now = self.now();
        let deletion = if config.delete_version_after_disabled() {
            None
        } else {
            deletion_time(now, config.delete_version_after, meta.delete_version_after)
        };
        let (n, dropped) = meta.add_version(now, deletion, config.max_versions);
        let mut ops = vec![
            json_op(
                &version_key(path, n),
                &VersionData {
                    data,
                    created_time: now,
                },
            )?,
            json_op(&metadata_key(path), &meta)?,
        ];
        ops.extend(
            dropped
                .into_iter()
                .map(|v| StorageOp::Delete(version_key(path, v))),
        );
        s.batch(ops).await?;
        Ok(Some(Response::json(
            meta.version_json(n, &meta.versions[&n]),
        )))
    }

    async fn write_data(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        check_write_path(&path)?;
        if !c.data.is_set("data") {
            return Err(LogicalError::invalid("no data provided"));
        }
        let data = c.data.get_map("data")?.unwrap_or_default();
        let config = load_config(c.storage).await?;
        let _g = self.write_lock(&path).await;
        let meta = load_metadata(c.storage, &path).await?.unwrap_or_default();
        check_cas(&c.data, &config, &meta)?;
        self.append_version(c.storage, &path, meta, &config, data)
            .await
    }

    async fn patch_data(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        if !c.data.is_set("data") {
            return Err(LogicalError::invalid("no data provided"));
        }
        let patch = c.data.get_map("data")?.unwrap_or_default();
        let _g = self.write_lock(&path).await;
        let meta = load_metadata(c.storage, &path)
            .await?
            .ok_or(LogicalError::NotFound)?;
        let config = load_config(c.storage).await?;
        check_cas(&c.data, &config, &meta)?;
        let n = meta.current_version;
        let vm = meta.versions.get(&n).ok_or(LogicalError::NotFound)?;
        if !vm.is_live(self.now()) {
            return Ok(Some(not_found_with(meta.version_json(n, vm))));
        }
        let current = load_version(c.storage, &path, n)
            .await?
            .ok_or_else(|| LogicalError::internal("could not find version data"))?;
        let merged = match merge_patch(Value::Object(current.data), Value::Object(patch)) {
            Value::Object(m) => m,
            _ => {
                return Err(LogicalError::internal(
                    "merge patch did not produce an object",
                ))
            }
        };
        self.append_version(c.storage, &path, meta, &config, merged)
            .await
    }

    async fn delete_latest(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let _g = self.write_lock(&path).await;
        let Some(mut meta) = load_metadata(c.storage, &path).await? else {
            return Ok(None);
        };
        let now = self.now();
        let n = meta.current_version;
        match meta.versions.get_mut(&n) {
            Some(vm) if vm.is_live(now) => vm.deletion_time = Some(now),
            _ => return Ok(None),
        }
        arca_sdk::storage::put_json(c.storage, &metadata_key(&path), &meta).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{body, snapshot, BatchFails, V2};
    use arca_sdk::{LogicalError, Operation, Storage};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn write_then_read_versions() {
        let h = V2::new();
        let r = h
            .write("data/my-secret", json!({"data": {"foo": "bar"}}))
            .await
            .unwrap();
        let t1 = "2024-05-06T07:08:09.12345678Z";
        assert_eq!(
            body(&r),
            json!({"version": 1, "created_time": t1, "deletion_time": "", "destroyed": false, "custom_metadata": null})
        );
        h.clock.advance(1);
        h.write(
            "data/my-secret",
            json!({"data": {"foo": "baz", "n": 1}, "options": {}}),
        )
        .await;

        let r = h.get(Operation::Read, "data/my-secret", json!({})).await;
        assert_eq!(r.status, None);
        assert_eq!(
            body(&r),
            json!({"data": {"foo": "baz", "n": 1}, "metadata": {
                "version": 2, "created_time": "2024-05-06T07:08:10.12345678Z", "deletion_time": "",
                "destroyed": false, "custom_metadata": null}})
        );
        let r = h
            .get(Operation::Read, "data/my-secret", json!({"version": "1"}))
            .await;
        assert_eq!(body(&r)["data"], json!({"foo": "bar"}));
        assert_eq!(body(&r)["metadata"]["version"], 1);
        assert_eq!(body(&r)["metadata"]["created_time"], t1);
        // version=0 means the current one; a version that never existed is a plain 404.
        let r = h
            .get(Operation::Read, "data/my-secret", json!({"version": 0}))
            .await;
        assert_eq!(body(&r)["metadata"]["version"], 2);
        assert_eq!(
            h.err(Operation::Read, "data/my-secret", json!({"version": 3}))
                .await,
            LogicalError::NotFound
        );
        assert_eq!(
            h.err(Operation::Read, "data/nope", json!({})).await,
            LogicalError::NotFound
        );
        assert!(matches!(
            h.err(Operation::Read, "data/my-secret", json!({"version": "two"}))
                .await,
            LogicalError::InvalidRequest(_)
        ));
        assert_eq!(
            h.err(Operation::List, "data/", json!({})).await,
            LogicalError::UnsupportedOperation
        );
    }

    #[tokio::test]
    async fn writes_need_data_and_a_path() {
        let h = V2::new();
        assert_eq!(
            h.err(Operation::Update, "data/a", json!({})).await,
            LogicalError::invalid("no data provided")
        );
        assert_eq!(
            h.err(Operation::Update, "data/a", json!({"options": {"cas": 0}}))
                .await,
            LogicalError::invalid("no data provided")
        );
        assert_eq!(
            h.err(Operation::Update, "data/", json!({"data": {"a": 1}}))
                .await,
            LogicalError::invalid("missing path")
        );
        assert!(matches!(
            h.err(Operation::Update, "data/dir/", json!({"data": {"a": 1}}))
                .await,
            LogicalError::InvalidRequest(_)
        ));
        assert!(matches!(
            h.err(Operation::Update, "data/a", json!({"data": "not a map"}))
                .await,
            LogicalError::InvalidRequest(_)
        ));
        assert!(h.storage.is_empty());
        // An empty data map is a valid version.
        h.write("data/a", json!({"data": {}})).await;
        assert_eq!(
            body(&h.get(Operation::Read, "data/a", json!({})).await)["data"],
            json!({})
        );
    }

    #[tokio::test]
    async fn check_and_set() {
        let h = V2::new();
        // cas=0: only if the key does not exist.
        h.write("data/k", json!({"data": {"v": 1}, "options": {"cas": 0}}))
            .await;
        let mismatch =
            LogicalError::invalid("check-and-set parameter did not match the current version");
        assert_eq!(
            h.err(
                Operation::Update,
                "data/k",
                json!({"data": {"v": 2}, "options": {"cas": 0}})
            )
            .await,
            mismatch
        );
        assert_eq!(
            h.err(
                Operation::Update,
                "data/k",
                json!({"data": {"v": 2}, "options": {"cas": 2}})
            )
            .await,
            mismatch
        );
        assert_eq!(
            h.err(
                Operation::Update,
                "data/k",
                json!({"data": {"v": 2}, "options": {"cas": -1}})
            )
            .await,
            mismatch
        );
        assert_eq!(
            h.err(
                Operation::Update,
                "data/k",
                json!({"data": {"v": 2}, "options": {"cas": "x"}})
            )
            .await,
            LogicalError::invalid("error parsing check-and-set parameter")
        );
        // Strings are accepted, like mapstructure's weak decoding.
        h.write("data/k", json!({"data": {"v": 2}, "options": {"cas": "1"}}))
            .await;

        // cas_required in the engine config.
        h.write("config", json!({"cas_required": true})).await;
        let required = LogicalError::invalid("check-and-set parameter required for this call");
        assert_eq!(
            h.err(Operation::Update, "data/k", json!({"data": {"v": 3}}))
                .await,
            required
        );
        assert_eq!(
            h.err(Operation::Update, "data/new", json!({"data": {"v": 3}}))
                .await,
            required
        );
        h.write("data/k", json!({"data": {"v": 3}, "options": {"cas": 2}}))
            .await;
        h.write("config", json!({"cas_required": false})).await;

        // cas_required on the key's metadata.
        h.write("metadata/k", json!({"cas_required": true})).await;
        assert_eq!(
            h.err(Operation::Update, "data/k", json!({"data": {"v": 4}}))
                .await,
            required
        );
        h.write("data/other", json!({"data": {"v": 1}})).await;

        // A soft-deleted current version still counts for cas.
        h.ok(Operation::Delete, "data/k", json!({})).await;
        assert_eq!(
            h.err(
                Operation::Update,
                "data/k",
                json!({"data": {"v": 4}, "options": {"cas": 0}})
            )
            .await,
            mismatch
        );
        let r = h
            .write("data/k", json!({"data": {"v": 4}, "options": {"cas": 3}}))
            .await
            .unwrap();
        assert_eq!(body(&r)["version"], 4);
    }

    #[tokio::test]
    async fn version_limit_trims_oldest_versions() {
        let h = V2::new();
        for i in 1..=12 {
            h.write("data/k", json!({"data": {"i": i}})).await;
        }
        // Default: 10 versions kept.
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(m["current_version"], 12);
        assert_eq!(m["oldest_version"], 3);
        assert_eq!(m["versions"].as_object().unwrap().len(), 10);
        assert!(m["versions"].get("2").is_none());
        assert_eq!(
            h.err(Operation::Read, "data/k", json!({"version": 2}))
                .await,
            LogicalError::NotFound
        );
        assert!(h.storage.get("versions/k/2").await.unwrap().is_none());
        assert!(h.storage.get("versions/k/3").await.unwrap().is_some());
        assert_eq!(
            body(
                &h.get(Operation::Read, "data/k", json!({"version": 3}))
                    .await
            )["data"]["i"],
            3
        );

        // Engine-wide limit.
        h.write("config", json!({"max_versions": 3})).await;
        h.write("data/j", json!({"data": {"i": 0}})).await;
        for i in 1..=4 {
            h.write("data/j", json!({"data": {"i": i}})).await;
        }
        let m = body(&h.get(Operation::Read, "metadata/j", json!({})).await);
        assert_eq!(
            m["versions"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["3", "4", "5"]
        );
        let versions: Vec<String> = h
            .storage
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("versions/j/"))
            .collect();
        assert_eq!(
            versions,
            vec!["versions/j/3", "versions/j/4", "versions/j/5"]
        );

        // A key's own limit applies when larger than the engine's; lowering it
        // takes effect at the next write.
        h.write("config", json!({"max_versions": 0})).await;
        h.write("metadata/k", json!({"max_versions": 2})).await;
        h.write("data/k", json!({"data": {"i": 13}})).await;
        let m = body(&h.get(Operation::Read, "metadata/k", json!({})).await);
        assert_eq!(
            m["versions"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["12", "13"]
        );
        assert_eq!(m["oldest_version"], 12);
        let left: Vec<String> = h
            .storage
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("versions/k/"))
            .collect();
        assert_eq!(left, vec!["versions/k/12", "versions/k/13"]);
    }

    #[tokio::test]
    async fn soft_delete_latest_and_read_answers_404_with_metadata() {
        let h = V2::new();
        h.write("data/k", json!({"data": {"v": 1}})).await;
        h.write("data/k", json!({"data": {"v": 2}})).await;
        h.clock.advance(5);
        assert_eq!(h.ok(Operation::Delete, "data/k", json!({})).await, None);
        h.clock.advance(1);
        let r = h.get(Operation::Read, "data/k", json!({})).await;
        assert_eq!(r.status, Some(404));
        assert_eq!(
            body(&r),
            json!({"data": null, "metadata": {"version": 2, "created_time": "2024-05-06T07:08:09.12345678Z",
                "deletion_time": "2024-05-06T07:08:14.12345678Z", "destroyed": false, "custom_metadata": null}})
        );
        // Older versions remain readable; deleting again changes nothing.
        assert_eq!(
            body(
                &h.get(Operation::Read, "data/k", json!({"version": 1}))
                    .await
            )["data"]["v"],
            1
        );
        let before = snapshot(&h.storage).await;
        h.ok(Operation::Delete, "data/k", json!({})).await;
        assert_eq!(snapshot(&h.storage).await, before);
        // The data itself is kept (soft delete), and missing keys delete fine.
        assert!(h.storage.get("versions/k/2").await.unwrap().is_some());
        assert_eq!(
            h.ok(Operation::Delete, "data/missing", json!({})).await,
            None
        );
        // Writing again creates version 3.
        let r = h.write("data/k", json!({"data": {"v": 3}})).await.unwrap();
        assert_eq!(body(&r)["version"], 3);
    }

    #[tokio::test]
    async fn patch_is_a_json_merge_patch() {
        let h = V2::new();
        h.write(
            "data/k",
            json!({"data": {"keep": "x", "drop": "y", "nested": {"a": 1, "b": 2}, "list": [1, 2]}}),
        )
        .await;
        let r = h
            .ok(Operation::Patch, "data/k", json!({"data": {"drop": null, "nested": {"b": null, "c": 3}, "list": [3], "new": true}}))
            .await
            .unwrap();
        assert_eq!(body(&r)["version"], 2);
        let r = h.get(Operation::Read, "data/k", json!({})).await;
        assert_eq!(
            body(&r)["data"],
            json!({"keep": "x", "nested": {"a": 1, "c": 3}, "list": [3], "new": true})
        );
        // The previous version is untouched.
        assert_eq!(
            body(
                &h.get(Operation::Read, "data/k", json!({"version": 1}))
                    .await
            )["data"]["drop"],
            "y"
        );

        // cas is honoured.
        let mismatch =
            LogicalError::invalid("check-and-set parameter did not match the current version");
        assert_eq!(
            h.err(
                Operation::Patch,
                "data/k",
                json!({"data": {"a": 1}, "options": {"cas": 1}})
            )
            .await,
            mismatch
        );
        h.ok(
            Operation::Patch,
            "data/k",
            json!({"data": {"a": 1}, "options": {"cas": 2}}),
        )
        .await;
        h.write("metadata/k", json!({"cas_required": true})).await;
        assert_eq!(
            h.err(Operation::Patch, "data/k", json!({"data": {"a": 2}}))
                .await,
            LogicalError::invalid("check-and-set parameter required for this call")
        );
        h.write("metadata/k", json!({"cas_required": false})).await;

        // No secret, no data, or a deleted current version: 404 / 400.
        assert_eq!(
            h.err(Operation::Patch, "data/none", json!({"data": {"a": 1}}))
                .await,
            LogicalError::NotFound
        );
        assert_eq!(
            h.err(Operation::Patch, "data/k", json!({})).await,
            LogicalError::invalid("no data provided")
        );
        h.write("metadata/only-meta", json!({"max_versions": 1}))
            .await;
        assert_eq!(
            h.err(
                Operation::Patch,
                "data/only-meta",
                json!({"data": {"a": 1}})
            )
            .await,
            LogicalError::NotFound
        );
        h.ok(Operation::Delete, "data/k", json!({})).await;
        h.clock.advance(1);
        let r = h
            .ok(Operation::Patch, "data/k", json!({"data": {"a": 9}}))
            .await
            .unwrap();
        assert_eq!(r.status, Some(404));
        assert_eq!(body(&r)["version"], 3);
        assert_ne!(body(&r)["deletion_time"], "");
        assert_eq!(
            body(&h.get(Operation::Read, "metadata/k", json!({})).await)["current_version"],
            3
        );
    }

    #[tokio::test]
    async fn delete_version_after_expires_versions_at_read_time() {
        let h = V2::new();
        h.write("config", json!({"delete_version_after": "1h"}))
            .await;
        let r = h.write("data/k", json!({"data": {"v": 1}})).await.unwrap();
        assert_eq!(body(&r)["deletion_time"], "2024-05-06T08:08:09.12345678Z");
        // Readable until the deletion time...
        h.clock.advance(3599);
        let r = h.get(Operation::Read, "data/k", json!({})).await;
        assert_eq!((r.status, body(&r)["data"]["v"].clone()), (None, json!(1)));
        // ...then gone, without anything having been written.
        let before = snapshot(&h.storage).await;
        h.clock.advance(2);
        let r = h.get(Operation::Read, "data/k", json!({})).await;
        assert_eq!(r.status, Some(404));
        assert_eq!(body(&r)["data"], Value::Null);
        assert_eq!(snapshot(&h.storage).await, before);

        // A key's shorter setting wins; a longer one is capped by the engine's.
        h.write("metadata/short", json!({"delete_version_after": "10m"}))
            .await;
        let r = h
            .write("data/short", json!({"data": {"v": 1}}))
            .await
            .unwrap();
        assert_eq!(body(&r)["deletion_time"], "2024-05-06T08:18:10.12345678Z");
        h.write("metadata/long", json!({"delete_version_after": "5h"}))
            .await;
        let r = h
            .write("data/long", json!({"data": {"v": 1}}))
            .await
            .unwrap();
        assert_eq!(body(&r)["deletion_time"], "2024-05-06T09:08:10.12345678Z");

        // Disabled engine-wide: no deletion time at all.
        h.write("config", json!({"delete_version_after": -1})).await;
        let r = h
            .write("data/short", json!({"data": {"v": 2}}))
            .await
            .unwrap();
        assert_eq!(body(&r)["deletion_time"], "");

        // Key-only setting.
        h.write("config", json!({"delete_version_after": 0})).await;
        let r = h
            .write("data/short", json!({"data": {"v": 3}}))
            .await
            .unwrap();
        assert_eq!(body(&r)["deletion_time"], "2024-05-06T08:18:10.12345678Z");
    }

    #[tokio::test]
    async fn existence_check_uses_metadata() {
        let h = V2::new();
        let req = arca_sdk::Request::new(Operation::Update, "data/k");
        let exists = || arca_sdk::Backend::existence(&h.backend, &req, &h.storage);
        assert_eq!(exists().await.unwrap(), Some(false));
        h.write("data/k", json!({"data": {"v": 1}})).await;
        assert_eq!(exists().await.unwrap(), Some(true));
    }

    #[tokio::test]
    async fn failed_batches_leave_nothing_behind() {
        let h = V2::new();
        h.write("data/k", json!({"data": {"v": 1}})).await;
        h.write("metadata/k", json!({"max_versions": 1})).await;
        let before = snapshot(&h.storage).await;
        let fails = BatchFails(&h.storage);
        for (op, path, data) in [
            (Operation::Update, "data/k", json!({"data": {"v": 2}})),
            (Operation::Update, "data/new", json!({"data": {"v": 1}})),
            (Operation::Patch, "data/k", json!({"data": {"v": 3}})),
            (Operation::Update, "destroy/k", json!({"versions": [1]})),
            (Operation::Delete, "metadata/k", json!({})),
        ] {
            assert!(
                h.call_on(&fails, op, path, data).await.is_err(),
                "{op:?} {path}"
            );
            assert_eq!(snapshot(&h.storage).await, before, "{op:?} {path}");
        }
    }

    #[tokio::test]
    async fn unicode_and_spaces_in_paths() {
        let h = V2::new();
        for p in ["with space", "ünïcødé/秘密", "emoji 🔑/a b", "a//b"] {
            h.write(&format!("data/{p}"), json!({"data": {"p": p}}))
                .await;
            let r = h
                .get(Operation::Read, &format!("data/{p}"), json!({}))
                .await;
            assert_eq!(body(&r)["data"]["p"], p);
        }
        let r = h.get(Operation::List, "metadata/", json!({})).await;
        assert_eq!(
            body(&r)["keys"],
            json!(["a/", "emoji 🔑/", "with space", "ünïcødé/"])
        );
        let r = h.get(Operation::List, "metadata/ünïcødé", json!({})).await;
        assert_eq!(body(&r)["keys"], json!(["秘密"]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_get_distinct_versions() {
        let h = std::sync::Arc::new(V2::new());
        let mut tasks = Vec::new();
        for i in 0..20 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let r = h
                    .write("data/race", json!({"data": {"i": i}}))
                    .await
                    .unwrap();
                body(&r)["version"].as_u64().unwrap()
            }));
        }
        let mut versions = Vec::new();
        for t in tasks {
            versions.push(t.await.unwrap());
        }
        versions.sort();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    }
}
