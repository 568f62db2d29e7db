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

/// A database connection (`config/:name`).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
