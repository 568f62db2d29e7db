//! What the engine stores: connections (`config/<name>`) and roles
//! (`role/<name>`), as JSON in the mount's barrier-encrypted storage.
//!
//! Invariant: the root password is stored (it must be, to connect) but
//! never returned by any read.

use serde::{Deserialize, Serialize};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

pub(crate) const CONFIG_PREFIX: &str = "config/";
pub(crate) const ROLE_PREFIX: &str = "role/";

/// The plugins this engine runs in-process.
pub(crate) const POSTGRES_PLUGIN: &str = "postgresql-database-plugin";
/// Vault's MySQL/MariaDB plugins: one implementation; the three legacy
/// ones differ only in their default username (16 characters, not 32).
pub(crate) const MYSQL_PLUGIN: &str = "mysql-database-plugin";
pub(crate) const MYSQL_LEGACY_PLUGINS: &[&str] = &[
    "mysql-aurora-database-plugin",
    "mysql-rds-database-plugin",
    "mysql-legacy-database-plugin",
];

/// A database connection (`config/:name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DbConfig {
    pub name: String,
    pub plugin_name: String,
    pub connection_url: String,
    pub username: String,
    pub password: String,
    /// `password` (send the password as is) or `scram-sha-256` (statements
    /// get a SCRAM verifier in `{{password}}`).
    pub password_authentication: String,
    pub allowed_roles: Vec<String>,
    pub verify_connection: bool,
    pub max_open_connections: u32,
    pub max_idle_connections: u32,
    /// Seconds; 0: connections live as long as they work.
    pub max_connection_lifetime: u64,
    pub password_policy: String,
    /// Vault's `username_template` (`template`); empty: the plugin's default.
    #[serde(default)]
    pub username_template: String,
    pub root_rotation_statements: Vec<String>,
}

impl DbConfig {
    /// Does this connection serve role `role` (`allowed_roles`, globs)?
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles
            .iter()
            .any(|p| arca_sdk::glob::matches(p, role))
    }
}

/// A dynamic role (`roles/:name`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Role {
    pub name: String,
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    /// Seconds; 0: the mount's default / max.
    pub default_ttl: u64,
    pub max_ttl: u64,
}

pub(crate) async fn get_config(
    s: &dyn Storage,
    name: &str,
) -> Result<Option<DbConfig>, LogicalError> {
    Ok(get_json(s, &format!("{CONFIG_PREFIX}{name}")).await?)
}

pub(crate) async fn put_config(s: &dyn Storage, c: &DbConfig) -> Result<(), LogicalError> {
    Ok(put_json(s, &format!("{CONFIG_PREFIX}{}", c.name), c).await?)
}

pub(crate) async fn get_role(s: &dyn Storage, name: &str) -> Result<Option<Role>, LogicalError> {
    Ok(get_json(s, &format!("{ROLE_PREFIX}{name}")).await?)
}

pub(crate) async fn put_role(s: &dyn Storage, r: &Role) -> Result<(), LogicalError> {
    Ok(put_json(s, &format!("{ROLE_PREFIX}{}", r.name), r).await?)
}

/// Names stored under `prefix` (no sub-folders).
pub(crate) async fn names(s: &dyn Storage, prefix: &str) -> Result<Vec<String>, LogicalError> {
    Ok(s.list(prefix)
        .await?
        .into_iter()
        .filter(|k| !k.ends_with('/'))
        .collect())
}

pub(crate) const STATIC_ROLE_PREFIX: &str = "static-role/";
/// Write-ahead entries of password changes in flight (see `rotation`).
pub(crate) const STATIC_WAL_PREFIX: &str = "static-wal/";
pub(crate) const ROOT_WAL_PREFIX: &str = "root-wal/";

/// When a static role's password changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Schedule {
    /// Every `n` seconds after the last rotation.
    Period(u64),
    /// At the times of a cron expression (5 fields, UTC); a rotation that
    /// could not happen within `window` seconds of its time (0: any time
    /// before the next one) waits for the next.
    Cron { schedule: String, window: u64 },
}

/// A static role (`static-roles/:name`): an existing database user whose
/// password Arca owns and rotates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StaticRole {
    pub name: String,
    pub db_name: String,
    pub username: String,
    pub rotation_statements: Vec<String>,
    pub schedule: Schedule,
    /// The current password (set by the last rotation).
    pub password: String,
    /// Unix seconds of the last rotation.
    pub last_rotation: i64,
    /// Unix seconds at which the next rotation is due.
    pub next_rotation: i64,
}

/// A password change that may have reached the database but not storage:
/// written before the change, deleted after the new password is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PasswordWal {
    pub password: String,
    pub created: i64,
}

pub(crate) async fn get_static_role(
    s: &dyn Storage,
    name: &str,
) -> Result<Option<StaticRole>, LogicalError> {
    Ok(get_json(s, &format!("{STATIC_ROLE_PREFIX}{name}")).await?)
}

pub(crate) async fn put_static_role(s: &dyn Storage, r: &StaticRole) -> Result<(), LogicalError> {
    Ok(put_json(s, &format!("{STATIC_ROLE_PREFIX}{}", r.name), r).await?)
}

pub(crate) async fn get_wal(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<PasswordWal>, LogicalError> {
    Ok(get_json(s, key).await?)
}

pub(crate) async fn put_wal(
    s: &dyn Storage,
    key: &str,
    w: &PasswordWal,
) -> Result<(), LogicalError> {
    Ok(put_json(s, key, w).await?)
}
