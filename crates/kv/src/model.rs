//! What the engine stores, where it stores it, and the version arithmetic
//! (Vault's `AddVersion` sliding window, `delete_version_after`).

use std::collections::BTreeMap;

use arca_sdk::storage::get_json;
use arca_sdk::{LogicalError, Storage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::util::{format_go_duration, format_opt_time, format_time};

/// Prefix of KV v1 secrets.
pub const V1_PREFIX: &str = "v1/";
/// KV v2 engine configuration.
pub const CONFIG_KEY: &str = "config";
/// Prefix of KV v2 key metadata (one record per secret path).
pub const METADATA_PREFIX: &str = "metadata/";
/// Prefix of KV v2 version data.
pub const VERSIONS_PREFIX: &str = "versions/";
/// Versions kept per secret when neither the config nor the secret says.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

pub fn v1_key(path: &str) -> String {
    format!("{V1_PREFIX}{path}")
}

pub fn metadata_key(path: &str) -> String {
    format!("{METADATA_PREFIX}{path}")
}

/// `versions/<path>/<n>`: unambiguous because `n` never contains `/`.
pub fn version_key(path: &str, n: u64) -> String {
    format!("{VERSIONS_PREFIX}{path}/{n}")
}

/// The engine configuration (`config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// 0 means "the default" (10).
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 = unset, negative = disabled for every key.
    pub delete_version_after: i64,
}

impl Config {
    pub fn delete_version_after_disabled(&self) -> bool {
        self.delete_version_after < 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": format_go_duration(self.delete_version_after),
        })
    }
}

/// One version's bookkeeping, kept in the key metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMetadata {
    pub created_time: DateTime<Utc>,
    /// Soft-deleted once this time has passed (may lie in the future when set
    /// by `delete_version_after`).
    #[serde(default)]
    pub deletion_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMetadata {
    /// Deleted by a delete call or an elapsed `delete_version_after`.
    pub fn is_deleted(&self, now: DateTime<Utc>) -> bool {
        self.deletion_time.is_some_and(|t| t < now)
    }

    /// Readable: neither deleted nor destroyed.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.destroyed && !self.is_deleted(now)
    }
}

/// Everything about one secret path except its data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyMetadata {
    pub current_version: u64,
    pub oldest_version: u64,
    pub created_time: Option<DateTime<Utc>>,
    pub updated_time: Option<DateTime<Utc>>,
    /// 0 means "use the engine's".
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 = unset.
    pub delete_version_after: u64,
    pub custom_metadata: BTreeMap<String, String>,
    pub versions: BTreeMap<u64, VersionMetadata>,
}

/// One version's data (`versions/<path>/<n>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionData {
    pub data: Map<String, Value>,
    pub created_time: DateTime<Utc>,
}

/// `created + min(non-zero of engine, key)`, if either is set.
pub fn deletion_time(created: DateTime<Utc>, engine: i64, key: u64) -> Option<DateTime<Utc>> {
    let engine = u64::try_from(engine).unwrap_or(0);
    let secs = match (engine, key) {
        (0, 0) => return None,
        (0, k) => k,
        (e, 0) => e,
        (e, k) => e.min(k),
    };
    Some(created + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000)))
}

impl KeyMetadata {
    /// Metadata created by a metadata write, before any version exists.
    pub fn created_at(now: DateTime<Utc>) -> Self {
        KeyMetadata {
            created_time: Some(now),
            updated_time: Some(now),
            ..Default::default()
        }
    }

    /// Appends a version and slides the max-versions window (Vault's
    /// `AddVersion`): returns the new version number and the versions that
    /// fell out of the window, whose data must be deleted.
    pub fn add_version(
        &mut self,
        created: DateTime<Utc>,
        deletion: Option<DateTime<Utc>>,
        engine_max_versions: u32,
    ) -> (u64, Vec<u64>) {
        self.current_version += 1;
        let n = self.current_version;
        self.versions.insert(
            n,
            VersionMetadata {
                created_time: created,
                deletion_time: deletion,
                destroyed: false,
            },
        );
        self.updated_time = Some(created);
        if self.created_time.is_none() {
            self.created_time = Some(created);
        }
        let max = match self.max_versions.max(engine_max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            m => m,
        };
        let mut dropped = Vec::new();
        if self.current_version - self.oldest_version >= u64::from(max) {
            let last_dropped = self.current_version - u64::from(max);
            let keep = self.versions.split_off(&(last_dropped + 1));
            dropped.extend(self.versions.keys().copied().filter(|v| *v > 0));
            self.versions = keep;
            self.oldest_version = last_dropped + 1;
        }
        (n, dropped)
    }

    /// `null` when empty, as Vault (protobuf does not keep empty maps).
    pub fn custom_metadata_json(&self) -> Value {
        if self.custom_metadata.is_empty() {
            Value::Null
        } else {
            json!(self.custom_metadata)
        }
    }

    /// The per-version block of data reads and write responses.
    pub fn version_json(&self, n: u64, vm: &VersionMetadata) -> Value {
        json!({
            "version": n,
            "created_time": format_time(&vm.created_time),
            "deletion_time": format_opt_time(&vm.deletion_time),
            "destroyed": vm.destroyed,
            "custom_metadata": self.custom_metadata_json(),
        })
    }

    /// The body of `GET metadata/:path`.
    pub fn to_json(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| {
                let block = json!({
                    "created_time": format_time(&v.created_time),
                    "deletion_time": format_opt_time(&v.deletion_time),
                    "destroyed": v.destroyed,
                });
                (n.to_string(), block)
            })
            .collect();
        json!({
            "versions": versions,
            "current_version": self.current_version,
            "oldest_version": self.oldest_version,
            "created_time": format_opt_time(&self.created_time),
            "updated_time": format_opt_time(&self.updated_time),
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": format_go_duration(i64::try_from(self.delete_version_after).unwrap_or(i64::MAX)),
            "custom_metadata": self.custom_metadata_json(),
        })
    }
}

pub(crate) async fn load_config(s: &dyn Storage) -> Result<Config, LogicalError> {
    Ok(get_json(s, CONFIG_KEY).await?.unwrap_or_default())
}

pub(crate) async fn load_metadata(
    s: &dyn Storage,
    path: &str,
) -> Result<Option<KeyMetadata>, LogicalError> {
    Ok(get_json(s, &metadata_key(path)).await?)
}

pub(crate) async fn load_version(
    s: &dyn Storage,
    path: &str,
    n: u64,
) -> Result<Option<VersionData>, LogicalError> {
    Ok(get_json(s, &version_key(path, n)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn window_slides_like_vault() {
        let mut m = KeyMetadata::default();
        for i in 1..=9 {
            assert_eq!(m.add_version(t0(), None, 0), (i, vec![]));
        }
        assert_eq!(m.oldest_version, 0);
        // The tenth version fills the window: Vault moves oldest_version to 1.
        assert_eq!(m.add_version(t0(), None, 0), (10, vec![]));
        assert_eq!(m.oldest_version, 1);
        assert_eq!(m.add_version(t0(), None, 0), (11, vec![1]));
        assert_eq!(m.oldest_version, 2);
        assert_eq!(
            m.versions.keys().copied().collect::<Vec<_>>(),
            (2..=11).collect::<Vec<_>>()
        );
        // Shrinking the window drops several versions at once.
        m.max_versions = 3;
        assert_eq!(m.add_version(t0(), None, 0), (12, (2..=9).collect()));
        assert_eq!(
            m.versions.keys().copied().collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert_eq!(m.oldest_version, 10);
        // The larger of the key's and the engine's limit wins.
        assert_eq!(m.add_version(t0(), None, 5), (13, vec![]));
        assert_eq!(m.versions.len(), 4);
    }

    #[test]
    fn deletion_time_takes_smallest_nonzero() {
        assert_eq!(deletion_time(t0(), 0, 0), None);
        assert_eq!(
            deletion_time(t0(), 60, 0),
            Some(t0() + chrono::Duration::seconds(60))
        );
        assert_eq!(
            deletion_time(t0(), 0, 30),
            Some(t0() + chrono::Duration::seconds(30))
        );
        assert_eq!(
            deletion_time(t0(), 60, 30),
            Some(t0() + chrono::Duration::seconds(30))
        );
        assert_eq!(
            deletion_time(t0(), 20, 30),
            Some(t0() + chrono::Duration::seconds(20))
        );
        assert_eq!(
            deletion_time(t0(), -1, 30),
            Some(t0() + chrono::Duration::seconds(30))
        );
    }

    #[test]
    fn keys_are_unambiguous() {
        assert_eq!(version_key("a", 1), "versions/a/1");
        assert_ne!(version_key("a/1", 1), version_key("a", 11));
        assert_eq!(metadata_key("dir/sé cret"), "metadata/dir/sé cret");
        assert_eq!(v1_key("x"), "v1/x");
    }
}
