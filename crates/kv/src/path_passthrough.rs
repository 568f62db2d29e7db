//! KV version 1: `:path` read, write, delete and list.
//!
//! Secrets are JSON objects stored at `v1/<path>`. A read returns a
//! [`Secret`] with `register_lease: false`: no lease exists, and its `ttl` is
//! the data's `ttl` (or `lease`) key, 0 when absent so that core reports the
//! mount's default lease TTL as `lease_duration`, as Vault does.

use arca_sdk::storage::collect_keys;
use arca_sdk::{
    parse_duration, Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response,
    Secret, Storage,
};
use serde_json::{Map, Value};

use crate::backend::KvV1;
use crate::model::{v1_key, V1_PREFIX};
use crate::util::{check_write_path, folder};

pub(crate) fn paths() -> Vec<Path<KvV1>> {
    vec![Path::new("(?P<path>.*)")
        .field(Field::new(
            "path",
            FieldType::String,
            "Location of the secret.",
        ))
        .op(Operation::Read, |b: &KvV1, c| Box::pin(b.read(c)))
        .op(Operation::Create, |b: &KvV1, c| Box::pin(b.write(c)))
        .op(Operation::Update, |b: &KvV1, c| Box::pin(b.write(c)))
        .op(Operation::Delete, |b: &KvV1, c| Box::pin(b.delete(c)))
        .op(Operation::List, |b: &KvV1, c| Box::pin(b.list(c)))
        .existence(|b: &KvV1, c| Box::pin(b.exists(c)))
        .arbitrary_fields()
        .help(
            "Pass-through secret storage: read and write arbitrary JSON data. A \"ttl\" key \
             sets the advisory lease_duration returned on read; no lease is created.",
        )]
}

/// The advisory TTL of a v1 secret: its `ttl` (or `lease`) key, else 0.
fn advisory_ttl(data: &Map<String, Value>) -> u64 {
    data.get("ttl")
        .or_else(|| data.get("lease"))
        .and_then(|v| parse_duration(v).ok())
        .unwrap_or(0)
}

impl KvV1 {
    async fn exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let path = c.data.str_or("path", "")?;
        Ok(c.storage.get(&v1_key(&path)).await?.is_some())
    }

    async fn read(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let raw = c
            .storage
            .get(&v1_key(&path))
            .await?
            .ok_or(LogicalError::NotFound)?;
        let data: Map<String, Value> = serde_json::from_slice(&raw)
            .map_err(|e| LogicalError::internal(format!("json decoding failed: {e}")))?;
        let secret = Secret {
            ttl: advisory_ttl(&data),
            register_lease: false,
            renewable: false,
            ..Default::default()
        };
        Ok(Some(Response {
            secret: Some(secret),
            ..Response::data(data)
        }))
    }

    async fn write(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        check_write_path(&path)?;
        // The body as sent: a field called "path" is data, not the URL capture.
        if c.req.data.is_empty() {
            return Err(LogicalError::invalid("missing data fields"));
        }
        let buf = serde_json::to_vec(&c.req.data).map_err(LogicalError::internal)?;
        c.storage.put(&v1_key(&path), buf).await?;
        Ok(None)
    }

    async fn delete(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        c.storage.delete(&v1_key(&path)).await?;
        Ok(None)
    }

    async fn list(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let keys = c.storage.list(&v1_key(&folder(&path))).await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        Ok(Some(Response::list(keys)))
    }
}

/// Every v1 secret path in `s` (used by the upgrade).
pub(crate) async fn all_v1_paths(s: &dyn Storage) -> Result<Vec<String>, LogicalError> {
    Ok(collect_keys(s, V1_PREFIX)
        .await?
        .into_iter()
        .map(|k| k[V1_PREFIX.len()..].to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kv_v1;
    use arca_sdk::testing::InmemStorage;
    use arca_sdk::{Backend, Request};
    use serde_json::json;

    async fn call(s: &InmemStorage, op: Operation, path: &str, data: Value) -> HandlerResult {
        let b = kv_v1();
        let mut req = Request::new(op, path).with_data(data);
        if op == Operation::Update && b.existence(&req, s).await? == Some(false) {
            req.operation = Operation::Create;
        }
        b.handle(&req, s).await
    }

    #[tokio::test]
    async fn write_read_delete_round_trip() {
        let s = InmemStorage::new();
        let data = json!({"foo": "bar", "n": 3, "nested": {"a": [1, 2]}, "path": "in the body"});
        assert_eq!(
            call(&s, Operation::Update, "my-secret", data.clone())
                .await
                .unwrap(),
            None
        );
        let r = call(&s, Operation::Read, "my-secret", json!({}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Value::Object(r.data.clone().unwrap()), data);
        let secret = r.secret.unwrap();
        assert_eq!(
            (secret.ttl, secret.register_lease, secret.renewable),
            (0, false, false)
        );
        assert!(
            r.warnings.is_empty(),
            "arbitrary fields must not warn: {:?}",
            r.warnings
        );
        // Overwrite replaces the whole object.
        call(&s, Operation::Update, "my-secret", json!({"only": "this"}))
            .await
            .unwrap();
        let r = call(&s, Operation::Read, "my-secret", json!({}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Value::Object(r.data.unwrap()), json!({"only": "this"}));
        call(&s, Operation::Delete, "my-secret", json!({}))
            .await
            .unwrap();
        assert_eq!(
            call(&s, Operation::Read, "my-secret", json!({}))
                .await
                .unwrap_err(),
            LogicalError::NotFound
        );
        // Deleting a missing key is fine.
        call(&s, Operation::Delete, "my-secret", json!({}))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn ttl_key_sets_advisory_lease_duration() {
        let s = InmemStorage::new();
        call(
            &s,
            Operation::Update,
            "a",
            json!({"foo": "bar", "ttl": "1h"}),
        )
        .await
        .unwrap();
        call(&s, Operation::Update, "b", json!({"foo": "bar", "ttl": 90}))
            .await
            .unwrap();
        call(
            &s,
            Operation::Update,
            "c",
            json!({"foo": "bar", "lease": "2m"}),
        )
        .await
        .unwrap();
        call(
            &s,
            Operation::Update,
            "d",
            json!({"foo": "bar", "ttl": "soon"}),
        )
        .await
        .unwrap();
        for (k, ttl) in [("a", 3600), ("b", 90), ("c", 120), ("d", 0)] {
            let r = call(&s, Operation::Read, k, json!({}))
                .await
                .unwrap()
                .unwrap();
            let secret = r.secret.unwrap();
            assert_eq!(secret.ttl, ttl, "{k}");
            assert!(!secret.register_lease);
            // The ttl key stays part of the data, as in Vault.
            assert!(r.data.unwrap().contains_key("foo"));
        }
    }

    #[tokio::test]
    async fn empty_writes_and_bad_paths_are_rejected() {
        let s = InmemStorage::new();
        let e = call(&s, Operation::Update, "a", json!({}))
            .await
            .unwrap_err();
        assert_eq!(e, LogicalError::invalid("missing data fields"));
        let e = call(&s, Operation::Update, "", json!({"a": 1}))
            .await
            .unwrap_err();
        assert_eq!(e, LogicalError::invalid("missing path"));
        assert!(matches!(
            call(&s, Operation::Update, "dir/", json!({"a": 1}))
                .await
                .unwrap_err(),
            LogicalError::InvalidRequest(_)
        ));
        assert!(s.is_empty());
        assert_eq!(
            call(&s, Operation::Patch, "a", json!({"a": 1}))
                .await
                .unwrap_err(),
            LogicalError::UnsupportedOperation
        );
    }

    #[tokio::test]
    async fn list_shows_folders_in_order_and_404s_when_empty() {
        let s = InmemStorage::new();
        for k in ["foo", "foo/bar", "foo/baz/qux", "b key", "ünïcode/ø", "a"] {
            call(&s, Operation::Update, k, json!({"v": k}))
                .await
                .unwrap();
        }
        let keys = |r: Response| r.data.unwrap()["keys"].clone();
        let r = call(&s, Operation::List, "", json!({}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(keys(r), json!(["a", "b key", "foo", "foo/", "ünïcode/"]));
        for p in ["foo", "foo/"] {
            let r = call(&s, Operation::List, p, json!({}))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(keys(r), json!(["bar", "baz/"]));
        }
        let r = call(&s, Operation::List, "ünïcode/", json!({}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(keys(r), json!(["ø"]));
        assert_eq!(
            call(&s, Operation::List, "missing/", json!({}))
                .await
                .unwrap_err(),
            LogicalError::NotFound
        );
        let r = call(&s, Operation::Read, "ünïcode/ø", json!({}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["v"], "ünïcode/ø");
        assert_eq!(all_v1_paths(&s).await.unwrap().len(), 6);
    }

    #[tokio::test]
    async fn existence_distinguishes_create_from_update() {
        let s = InmemStorage::new();
        let b = kv_v1();
        let req = Request::new(Operation::Update, "x");
        assert_eq!(b.existence(&req, &s).await.unwrap(), Some(false));
        call(&s, Operation::Update, "x", json!({"a": 1}))
            .await
            .unwrap();
        assert_eq!(b.existence(&req, &s).await.unwrap(), Some(true));
    }
}
