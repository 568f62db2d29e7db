//! The mount table: which engine answers which path prefix.
//!
//! Invariants:
//! - Mount paths end with `/`, are unique, and no mount is a prefix of another
//!   (Vault refuses `secret/` when `secret/foo/` exists, and the reverse).
//! - Each mount's data lives under `logical/<uuid>/` in the barrier; the UUID
//!   never changes, so `sys/remount` only edits the table.
//! - Table edits are plain functions over [`MountTable`] (tested without I/O);
//!   the caller persists the table and swaps the router in one step.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use arca_sdk::LogicalError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MountConfig {
    /// Seconds; 0 = the system default.
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Seconds; 0 = the system max.
    #[serde(default)]
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub listing_visibility: String,
    /// An auth mount's token type (`default-service`, `default-batch`,
    /// `service`, `batch`); empty: `default-service`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_type: String,
    /// User lockout settings of an auth mount (`user_lockout_config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_lockout_config: Option<crate::lockout::UserLockoutConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// With a trailing slash, relative to the table's root (`secret/`, `token/`).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
}

impl MountEntry {
    pub fn new(path: &str, kind: &str, description: &str) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        let accessor = format!(
            "{}_{}",
            kind.replace('-', "_"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        MountEntry {
            path: normalize_mount_path(path),
            kind: kind.to_string(),
            description: description.to_string(),
            uuid,
            accessor,
            config: MountConfig::default(),
            options: BTreeMap::new(),
            local: false,
            seal_wrap: false,
        }
    }

    /// The barrier prefix holding this mount's data.
    pub fn storage_prefix(&self, auth: bool) -> String {
        if auth {
            format!("auth/{}/", self.uuid)
        } else {
            format!("logical/{}/", self.uuid)
        }
    }

    /// The builtin `identity/` mount, as a new cluster gets it.
    pub fn identity() -> Self {
        MountEntry::new("identity/", "identity", "identity store")
    }

    /// The `identity/` mount of a cluster created before the identity
    /// store existed: the same uuid and accessor on every node, without a
    /// write (it is stored with the next change of the mount table).
    pub fn identity_upgrade() -> Self {
        let mut e = MountEntry::identity();
        e.uuid = "00000000-0000-4000-8000-1de7717e5702".into();
        e.accessor = "identity_1de7717e".into();
        e
    }

    pub fn kv_version(&self) -> Option<u8> {
        if self.kind != "kv" {
            return None;
        }
        Some(match self.options.get("version").map(|s| s.as_str()) {
            Some("2") => 2,
            _ => 1,
        })
    }
}

/// `secret` → `secret/`; strips leading slashes.
pub fn normalize_mount_path(p: &str) -> String {
    let p = p.trim_start_matches('/');
    if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// Mount types that cannot be disabled, moved or created by users.
pub const PROTECTED: &[&str] = &["sys/", "cubbyhole/", "identity/"];

/// Prefixes no secrets engine may be mounted under (Vault's protected
/// mounts): the built-in mounts, and the `auth/` and `audit/` namespaces,
/// so that no secret mount can shadow `auth/token/` or an auth method.
pub const RESERVED_FOR_SECRETS: &[&str] = &["sys/", "cubbyhole/", "identity/", "auth/", "audit/"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        let p = normalize_mount_path(path);
        self.entries.iter().find(|e| e.path == p)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut MountEntry> {
        let p = normalize_mount_path(path);
        self.entries.iter_mut().find(|e| e.path == p)
    }

    /// The mount answering `path` (longest matching prefix).
    pub fn resolve(&self, path: &str) -> Option<&MountEntry> {
        self.entries
            .iter()
            .filter(|e| path.starts_with(&e.path) || format!("{path}/") == e.path)
            .max_by_key(|e| e.path.len())
    }

    pub fn add(&mut self, entry: MountEntry, reserved: &[&str]) -> Result<(), LogicalError> {
        let p = &entry.path;
        if p == "/" || p.is_empty() {
            return Err(LogicalError::invalid("mount path cannot be empty"));
        }
        if p.contains("//") || p.contains("..") {
            return Err(LogicalError::invalid(format!("invalid mount path {p:?}")));
        }
        for r in reserved {
            if p.starts_with(r) || r.starts_with(p.as_str()) {
                return Err(LogicalError::invalid(format!(
                    "cannot mount at reserved path {p:?}"
                )));
            }
        }
        for e in &self.entries {
            if e.path == *p {
                return Err(LogicalError::invalid(format!(
                    "path is already in use at {p}"
                )));
            }
            if p.starts_with(&e.path) || e.path.starts_with(p.as_str()) {
                return Err(LogicalError::invalid(format!(
                    "path is already in use at {}: it conflicts with {p}",
                    e.path
                )));
            }
        }
        self.entries.push(entry);
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(())
    }

    pub fn remove(&mut self, path: &str) -> Option<MountEntry> {
        let p = normalize_mount_path(path);
        let i = self.entries.iter().position(|e| e.path == p)?;
        Some(self.entries.remove(i))
    }

    /// Moves a mount to a new path; data stays where it is (keyed by UUID).
    pub fn remount(
        &mut self,
        from: &str,
        to: &str,
        reserved: &[&str],
    ) -> Result<MountEntry, LogicalError> {
        let from_p = normalize_mount_path(from);
        let to_p = normalize_mount_path(to);
        let mut entry = self
            .get(&from_p)
            .cloned()
            .ok_or_else(|| LogicalError::invalid(format!("no matching mount at {from_p:?}")))?;
        let mut without = self.clone();
        without.remove(&from_p);
        entry.path = to_p;
        without.add(entry.clone(), reserved)?;
        *self = without;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_picks_longest_prefix() {
        let mut t = MountTable::default();
        t.add(MountEntry::new("secret", "kv", ""), &[]).unwrap();
        t.add(MountEntry::new("sys", "system", ""), &[]).unwrap();
        t.add(MountEntry::new("team/a", "kv", ""), &[]).unwrap();
        assert_eq!(t.resolve("secret/data/x").unwrap().path, "secret/");
        assert_eq!(t.resolve("team/a/x").unwrap().path, "team/a/");
        assert_eq!(t.resolve("secret").unwrap().path, "secret/");
        assert!(t.resolve("secrets/x").is_none());
        assert!(t.resolve("team/b/x").is_none());
    }

    #[test]
    fn conflicting_and_reserved_paths_are_refused() {
        let mut t = MountTable::default();
        t.add(MountEntry::new("secret", "kv", ""), &[]).unwrap();
        assert!(t.add(MountEntry::new("secret/", "kv", ""), &[]).is_err());
        assert!(t.add(MountEntry::new("secret/sub", "kv", ""), &[]).is_err());
        assert!(t
            .add(MountEntry::new("sys/foo", "kv", ""), &["sys/"])
            .is_err());
        assert!(t.add(MountEntry::new("", "kv", ""), &[]).is_err());
        for p in ["auth/token", "auth", "audit/x", "audit", "identity/x"] {
            assert!(
                t.add(MountEntry::new(p, "kv", ""), RESERVED_FOR_SECRETS)
                    .is_err(),
                "{p} must be refused"
            );
        }
    }

    #[test]
    fn remount_keeps_uuid() {
        let mut t = MountTable::default();
        t.add(MountEntry::new("a", "kv", ""), &[]).unwrap();
        let uuid = t.get("a").unwrap().uuid.clone();
        t.remount("a", "b", &[]).unwrap();
        assert!(t.get("a").is_none());
        assert_eq!(t.get("b/").unwrap().uuid, uuid);
        t.add(MountEntry::new("c", "kv", ""), &[]).unwrap();
        assert!(t.remount("b", "c", &[]).is_err());
        assert!(
            t.get("b").is_some(),
            "a refused remount leaves the table unchanged"
        );
    }
}
