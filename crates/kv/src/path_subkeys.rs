//! KV v2 `subkeys/:path`: a version's structure with every leaf value
//! replaced by `null`.

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};
use serde_json::{json, Map, Value};

use crate::backend::KvV2;
use crate::path_data::{not_found_with, read_version, VersionRead};

pub(crate) fn path() -> Path<KvV2> {
    Path::new("subkeys/(?P<path>.*)")
        .field(Field::new("path", FieldType::String, "Location of the secret."))
        .field(Field::new(
            "depth",
            FieldType::Int,
            "The maximum depth to traverse. No limit will be imposed if not provided or if 0.",
        ))
        .field(Field::new(
            "version",
            FieldType::Int,
            "Specifies which version to retrieve. If not provided, the current version will be used.",
        ))
        .op(Operation::Read, |b: &KvV2, c| Box::pin(b.read_subkeys(c)))
        .help(
            "Read the structure of a secret entry with its values removed: leaf values (non-objects and \
             empty objects) become null. \"depth\" limits the nesting shown (0: no limit).",
        )
}

/// Replaces leaves with `null`; objects below `max_depth` (0: unlimited) become leaves too.
fn strip_values(m: &mut Map<String, Value>, depth: i64, max_depth: i64) {
    for v in m.values_mut() {
        match v {
            Value::Object(inner) if !inner.is_empty() && (max_depth == 0 || depth < max_depth) => {
                strip_values(inner, depth + 1, max_depth)
            }
            other => *other = Value::Null,
        }
    }
}

impl KvV2 {
    async fn read_subkeys(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let depth = c.data.get_i64("depth")?.unwrap_or(0);
        let version = c.data.get_i64("version")?.unwrap_or(0);
        match read_version(self, c.storage, &path, version).await? {
            VersionRead::Missing => Err(LogicalError::NotFound),
            VersionRead::Gone(md) => Ok(Some(not_found_with(
                json!({"subkeys": null, "metadata": md}),
            ))),
            VersionRead::Live(md, mut data) => {
                strip_values(&mut data, 1, depth);
                Ok(Some(Response::json(
                    json!({"subkeys": data, "metadata": md}),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{body, V2};
    use arca_sdk::{LogicalError, Operation};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn subkeys_strip_values_to_depth() {
        let h = V2::new();
        h.write("data/s", json!({"data": {"foo": "abc", "bar": {"baz": "def", "deep": {"x": 1}}, "quux": {}, "list": [1]}})).await;
        let r = body(&h.get(Operation::Read, "subkeys/s", json!({})).await);
        assert_eq!(
            r["subkeys"],
            json!({"foo": null, "bar": {"baz": null, "deep": {"x": null}}, "quux": null, "list": null})
        );
        assert_eq!(
            r["metadata"],
            json!({"version": 1, "created_time": "2024-05-06T07:08:09.12345678Z", "deletion_time": "",
                   "destroyed": false, "custom_metadata": null})
        );
        let r = body(
            &h.get(Operation::Read, "subkeys/s", json!({"depth": "1"}))
                .await,
        );
        assert_eq!(
            r["subkeys"],
            json!({"foo": null, "bar": null, "quux": null, "list": null})
        );
        let r = body(
            &h.get(Operation::Read, "subkeys/s", json!({"depth": 2}))
                .await,
        );
        assert_eq!(
            r["subkeys"],
            json!({"foo": null, "bar": {"baz": null, "deep": null}, "quux": null, "list": null})
        );
    }

    #[tokio::test]
    async fn subkeys_of_versions_deleted_and_missing() {
        let h = V2::new();
        h.write("data/s", json!({"data": {"a": 1}})).await;
        h.write("data/s", json!({"data": {"b": {"c": 2}}})).await;
        let r = body(
            &h.get(Operation::Read, "subkeys/s", json!({"version": 1}))
                .await,
        );
        assert_eq!(r["subkeys"], json!({"a": null}));
        h.ok(Operation::Delete, "data/s", json!({})).await;
        h.clock.advance(1);
        let r = h.get(Operation::Read, "subkeys/s", json!({})).await;
        assert_eq!(r.status, Some(404));
        assert_eq!(body(&r)["subkeys"], Value::Null);
        assert_eq!(body(&r)["metadata"]["version"], 2);
        assert_eq!(
            h.err(Operation::Read, "subkeys/s", json!({"version": 5}))
                .await,
            LogicalError::NotFound
        );
        assert_eq!(
            h.err(Operation::Read, "subkeys/none", json!({})).await,
            LogicalError::NotFound
        );
        assert_eq!(
            h.err(Operation::Update, "subkeys/s", json!({})).await,
            LogicalError::UnsupportedOperation
        );
    }
}
