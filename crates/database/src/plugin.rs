//! The database plugins this engine runs in-process, behind one interface:
//! a connection pool per configured connection that verifies, runs a role's
//! statements and drops users, whatever the database.
//!
//! Invariants:
//! - Statements of one operation run in one transaction where the database
//!   has transactional DDL (PostgreSQL); either every statement took effect
//!   or none did.
//! - Values reach statements only through the `{{name}}`, `{{username}}`,
//!   `{{password}}` and `{{expiration}}` placeholders; usernames and
//!   passwords are generated from safe alphabets (letters, digits, `-`),
//!   never taken from the client.
//! - A database error keeps its source; [`to_logical`] is the one place it
//!   becomes a client answer.

use std::sync::Arc;

use arca_sdk::LogicalError;

use crate::model::{DbConfig, POSTGRES_PLUGIN};
use crate::postgres;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// The database could not be reached or refused the login.
    #[error("cannot connect to the database: {detail}")]
    Connect {
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A statement failed (the database's own message in `detail`).
    #[error("{detail}")]
    Statement {
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The config cannot work (bad URL, option not available).
    #[error("{0}")]
    Config(String),
}

/// Vault's `{{...}}` placeholders filled in.
pub(crate) struct Values<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub expiration: &'a str,
}

fn render(stmt: &str, v: &Values<'_>) -> String {
    stmt.replace("{{name}}", v.name)
        .replace("{{username}}", v.name)
        .replace("{{password}}", v.password)
        .replace("{{expiration}}", v.expiration)
}

/// Each statement split on `;` (Vault's plugins do the same), rendered.
pub(crate) fn queries(statements: &[String], v: &Values<'_>) -> Vec<String> {
    statements
        .iter()
        .flat_map(|s| s.split(';'))
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| render(q, v))
        .collect()
}

/// The connections of one configured database.
pub(crate) enum Pool {
    Postgres(postgres::Pool),
}

impl Pool {
    pub fn new(c: &DbConfig) -> Result<Arc<Pool>, DbError> {
        match c.plugin_name.as_str() {
            POSTGRES_PLUGIN => Ok(Arc::new(Pool::Postgres(postgres::Pool::new(c)?))),
            other => Err(DbError::Config(format!("unknown plugin {other:?}"))),
        }
    }

    /// Opens a connection and runs a trivial query (`verify_connection`).
    pub async fn verify(&self) -> Result<(), DbError> {
        match self {
            Pool::Postgres(p) => p.verify().await,
        }
    }

    /// Runs `statements` (one transaction where the database allows).
    pub async fn run(&self, statements: &[String], v: &Values<'_>) -> Result<(), DbError> {
        match self {
            Pool::Postgres(p) => p.run(statements, v).await,
        }
    }

    /// Drops a user when the role has no revocation statements.
    pub async fn drop_user(&self, name: &str) -> Result<(), DbError> {
        match self {
            Pool::Postgres(p) => p.drop_user(name).await,
        }
    }

    /// Closes idle connections and refuses new ones.
    pub fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close(),
        }
    }
}

/// The longest username the plugin's database takes.
pub(crate) fn max_username_len(plugin: &str) -> usize {
    match plugin {
        POSTGRES_PLUGIN => 63,
        _ => 32,
    }
}

/// Statements that extend a user's validity when the role has none.
pub(crate) fn default_renew_statements(plugin: &str) -> Vec<String> {
    match plugin {
        POSTGRES_PLUGIN => vec![r#"ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';"#.into()],
        _ => Vec::new(),
    }
}

/// Statements that set a user's password when a static role (or the root
/// config) has none.
pub(crate) fn default_password_statements(plugin: &str) -> Vec<String> {
    match plugin {
        POSTGRES_PLUGIN => vec![r#"ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';"#.into()],
        _ => Vec::new(),
    }
}

/// The `{{password}}` a statement gets: the password, or its SCRAM-SHA-256
/// verifier when the config says `password_authentication=scram-sha-256`.
pub(crate) fn statement_password(c: &DbConfig, password: &str) -> String {
    if c.password_authentication == "scram-sha-256" {
        postgres_protocol::password::scram_sha_256(password.as_bytes())
    } else {
        password.to_string()
    }
}

/// Maps a database failure to the answer a client gets: an unreachable
/// database is a 500 (the client may retry), anything else a 400 naming the
/// database's complaint.
pub(crate) fn to_logical(what: &str, e: DbError) -> LogicalError {
    match e {
        DbError::Connect { .. } => LogicalError::Internal(format!("{what}: {e}")),
        _ => LogicalError::invalid(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_and_render() {
        let v = Values {
            name: "v-root-ro-x",
            password: "pw",
            expiration: "2026-01-01 00:00:00+0000",
        };
        let q = queries(
            &[r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{username}}";"#.to_string()],
            &v,
        );
        assert_eq!(
            q,
            [
                r#"CREATE ROLE "v-root-ro-x" WITH LOGIN PASSWORD 'pw' VALID UNTIL '2026-01-01 00:00:00+0000'"#,
                r#"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "v-root-ro-x""#
            ]
        );
    }
}
