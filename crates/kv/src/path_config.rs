//! KV v2 `config`: engine-wide `max_versions`, `cas_required` and
//! `delete_version_after`.
//!
//! Like Vault, the path has no existence check: a write is always an
//! `update` for ACL purposes (a policy granting only `update` on
//! `<mount>/config` works, as it does against Vault).

use arca_sdk::storage::put_json;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::KvV2;
use crate::model::{load_config, CONFIG_KEY};
use crate::util::parse_signed_duration;

pub(crate) fn path() -> Path<KvV2> {
    Path::new("config")
        .field(Field::new(
            "max_versions",
            FieldType::Int,
            "The number of versions to keep for each key. 0 (the default) keeps 10.",
        ))
        .field(Field::new(
            "cas_required",
            FieldType::Bool,
            "If true, every write must carry the cas option.",
        ))
        .field(Field::new(
            "delete_version_after",
            FieldType::Raw,
            "If set, the length of time before a version is deleted. A negative duration disables \
             delete_version_after on all keys; a zero duration clears the setting.",
        ))
        .op(Operation::Read, |b: &KvV2, c| Box::pin(b.read_config(c)))
        .op(Operation::Update, |b: &KvV2, c| Box::pin(b.write_config(c)))
        .help("Configures settings for the KV store that apply to every key.")
}

impl KvV2 {
    async fn read_config(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::json(
            load_config(c.storage).await?.to_json(),
        )))
    }

    async fn write_config(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        if !["max_versions", "cas_required", "delete_version_after"]
            .iter()
            .any(|f| d.is_set(f))
        {
            return Ok(None);
        }
        let max_versions = match d.get_i64("max_versions")? {
            None => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                LogicalError::invalid("max_versions must be between 0 and 4294967295")
            })?),
        };
        let dva = match d.raw().get("delete_version_after") {
            None => None,
            Some(v) => Some(parse_signed_duration("delete_version_after", v)?),
        };
        let _g = self.config_write_lock().await;
        let mut config = load_config(c.storage).await?;
        if let Some(m) = max_versions {
            config.max_versions = m;
        }
        if let Some(cas) = d.get_bool("cas_required")? {
            config.cas_required = cas;
        }
        if let Some(dva) = dva {
            // Negative: disabled (stored as -1s, shown as "-1s"); zero: unset.
            config.delete_version_after = dva.clamp(-1, i64::MAX);
        }
        put_json(c.storage, CONFIG_KEY, &config).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{body, V2};
    use arca_sdk::{LogicalError, Operation};
    use serde_json::json;

    #[tokio::test]
    async fn defaults_then_updates_then_partial_updates() {
        let h = V2::new();
        let r = h.get(Operation::Read, "config", json!({})).await;
        assert_eq!(
            body(&r),
            json!({"max_versions": 0, "cas_required": false, "delete_version_after": "0s"})
        );
        assert!(h.storage.is_empty(), "reading the config must not write it");

        h.write(
            "config",
            json!({"max_versions": 5, "cas_required": "true", "delete_version_after": "3h25m19s"}),
        )
        .await;
        let r = h.get(Operation::Read, "config", json!({})).await;
        assert_eq!(
            body(&r),
            json!({"max_versions": 5, "cas_required": true, "delete_version_after": "3h25m19s"})
        );

        // Only the fields sent change.
        h.write("config", json!({"cas_required": false})).await;
        let r = h.get(Operation::Read, "config", json!({})).await;
        assert_eq!(
            body(&r),
            json!({"max_versions": 5, "cas_required": false, "delete_version_after": "3h25m19s"})
        );

        // Zero clears, negative disables, seconds are accepted.
        h.write("config", json!({"delete_version_after": 0})).await;
        assert_eq!(
            body(&h.get(Operation::Read, "config", json!({})).await)["delete_version_after"],
            "0s"
        );
        h.write("config", json!({"delete_version_after": "-5m"}))
            .await;
        assert_eq!(
            body(&h.get(Operation::Read, "config", json!({})).await)["delete_version_after"],
            "-1s"
        );
        h.write("config", json!({"delete_version_after": 3600}))
            .await;
        assert_eq!(
            body(&h.get(Operation::Read, "config", json!({})).await)["delete_version_after"],
            "1h0m0s"
        );

        // An empty write changes nothing.
        let before = h.storage.keys();
        assert_eq!(h.write("config", json!({})).await, None);
        assert_eq!(h.storage.keys(), before);
    }

    #[tokio::test]
    async fn bad_values_are_400s() {
        let h = V2::new();
        for body in [
            json!({"max_versions": "many"}),
            json!({"max_versions": -1}),
            json!({"cas_required": "maybe"}),
            json!({"delete_version_after": "10 parsecs"}),
            json!({"delete_version_after": [1]}),
        ] {
            let e = h.err(Operation::Update, "config", body.clone()).await;
            assert!(
                matches!(e, LogicalError::InvalidRequest(_)),
                "{body}: {e:?}"
            );
        }
        assert!(h.storage.is_empty());
        // Unknown parameters are warned about, as in Vault.
        let r = h
            .write("config", json!({"max_versions": 3, "bogus": 1}))
            .await
            .unwrap();
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(
            h.err(Operation::Delete, "config", json!({})).await,
            LogicalError::UnsupportedOperation
        );
    }

    #[tokio::test]
    async fn config_has_no_existence_check() {
        let h = V2::new();
        let req = arca_sdk::Request::new(Operation::Update, "config");
        assert_eq!(
            arca_sdk::Backend::existence(&h.backend, &req, &h.storage)
                .await
                .unwrap(),
            None
        );
    }
}
