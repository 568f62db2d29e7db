//! The database plugins this engine runs in-process, behind one interface:
//! a connection pool per configured connection that verifies, runs a role's
//! statements and drops users, whatever the database.
//!
//! Invariants:
//! - Statements of one operation run in one transaction where the database
//!   has transactional DDL (PostgreSQL); either every statement took effect
//!   or none did. Where it has not (MySQL/MariaDB), failed creation
//!   statements are undone by the role's rollback statements and the
//!   default drop ([`Pool::create`]).
//! - Values reach statements only through the `{{name}}`, `{{username}}`,
//!   `{{password}}` and `{{expiration}}` placeholders; usernames and
//!   passwords are generated from safe alphabets (letters, digits, `-`),
//!   never taken from the client ([`username`] replaces anything else in a
//!   display or role name with `-`).
//! - A database error keeps its source; [`to_logical`] is the one place it
//!   becomes a client answer.

use std::sync::Arc;

use rand::Rng;

use arca_sdk::LogicalError;

use crate::model::{DbConfig, MYSQL_LEGACY_PLUGINS, MYSQL_PLUGIN, POSTGRES_PLUGIN};
use crate::{mysql, postgres};

/// Is `plugin` one of the MySQL/MariaDB plugins?
pub(crate) fn is_mysql(plugin: &str) -> bool {
    plugin == MYSQL_PLUGIN || MYSQL_LEGACY_PLUGINS.contains(&plugin)
}

/// The plugins this server runs.
pub(crate) fn is_known(plugin: &str) -> bool {
    plugin == POSTGRES_PLUGIN || is_mysql(plugin)
}

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
    /// The database did not answer within [`OPERATION_TIMEOUT`]: whether
    /// the statements took effect is unknown.
    #[error("the database did not answer within {} s", OPERATION_TIMEOUT.as_secs())]
    Timeout,
}

/// The longest one database operation (connecting included) may take; a
/// database that accepts connections and never answers cannot hold a
/// request or a rotation for longer.
pub(crate) const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl DbError {
    /// Did the database refuse the operation so that nothing changed? True
    /// for a PostgreSQL server error (its transaction rolled back), for a
    /// failed connection and for a config that cannot work; false when the
    /// connection broke or timed out mid-way, and for MySQL statements
    /// (no transactional DDL: an earlier statement may have taken effect).
    pub fn nothing_changed(&self) -> bool {
        match self {
            DbError::Connect { .. } | DbError::Config(_) => true,
            DbError::Timeout => false,
            DbError::Statement { source, .. } => source
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(|e| e.as_db_error().is_some()),
        }
    }
}

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(OPERATION_TIMEOUT, f)
        .await
        .unwrap_or(Err(DbError::Timeout))
}

/// Vault's `{{...}}` placeholders filled in.
pub(crate) struct Values<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub expiration: &'a str,
}

/// Fills the placeholders in one pass: a value that itself holds
/// `{{...}}` is not expanded again.
fn render(stmt: &str, v: &Values<'_>) -> String {
    let mut out = String::with_capacity(stmt.len());
    let mut rest = stmt;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let hit = [
            ("{{name}}", v.name),
            ("{{username}}", v.name),
            ("{{password}}", v.password),
            ("{{expiration}}", v.expiration),
        ]
        .into_iter()
        .find(|(p, _)| tail.starts_with(p));
        match hit {
            Some((p, value)) => {
                out.push_str(value);
                rest = &tail[p.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
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
// One per configured connection, behind an `Arc`: the variants' sizes do
// not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Pool {
    Postgres(postgres::Pool),
    Mysql(mysql::Pool),
}

impl Pool {
    pub fn new(c: &DbConfig) -> Result<Arc<Pool>, DbError> {
        match c.plugin_name.as_str() {
            POSTGRES_PLUGIN => Ok(Arc::new(Pool::Postgres(postgres::Pool::new(c)?))),
            p if is_mysql(p) => Ok(Arc::new(Pool::Mysql(mysql::Pool::new(c)?))),
            other => Err(DbError::Config(format!("unknown plugin {other:?}"))),
        }
    }

    /// Opens a connection and runs a trivial query (`verify_connection`).
    pub async fn verify(&self) -> Result<(), DbError> {
        bounded(async {
            match self {
                Pool::Postgres(p) => p.verify().await,
                Pool::Mysql(p) => p.verify().await,
            }
        })
        .await
    }

    /// Runs `statements` (one transaction where the database allows).
    pub async fn run(&self, statements: &[String], v: &Values<'_>) -> Result<(), DbError> {
        bounded(async {
            match self {
                Pool::Postgres(p) => p.run(statements, v).await,
                Pool::Mysql(p) => p.run(statements, v).await,
            }
        })
        .await
    }

    /// Runs a role's creation statements. Nothing of a failed creation
    /// stays: PostgreSQL rolls its transaction back; MySQL runs
    /// `rollback` (the role's rollback statements) and drops the user.
    pub async fn create(
        &self,
        creation: &[String],
        rollback: &[String],
        v: &Values<'_>,
    ) -> Result<(), DbError> {
        bounded(async {
            match self {
                Pool::Postgres(p) => p.run(creation, v).await,
                Pool::Mysql(p) => p.create(creation, rollback, v).await,
            }
        })
        .await
    }

    /// Drops a user when the role has no revocation statements.
    pub async fn drop_user(&self, name: &str) -> Result<(), DbError> {
        bounded(async {
            match self {
                Pool::Postgres(p) => p.drop_user(name).await,
                Pool::Mysql(p) => p.drop_user(name).await,
            }
        })
        .await
    }

    /// Closes idle connections and refuses new ones.
    pub fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close(),
            Pool::Mysql(p) => p.close(),
        }
    }
}

/// The longest username the plugin's database takes.
pub(crate) fn max_username_len(plugin: &str) -> usize {
    match plugin {
        POSTGRES_PLUGIN => 63,
        p if MYSQL_LEGACY_PLUGINS.contains(&p) => 16,
        _ => 32,
    }
}

/// The plugin's default username (Vault's default `username_template`):
/// - PostgreSQL: `v-<display name, 8>-<role, 8>-<20 random>-<unix time>`,
///   cut to 63;
/// - MySQL: `v-<display name, 10>-<role, 10>-<20 random>-<unix time>`,
///   cut to 32;
/// - the legacy MySQL plugins (aurora, rds, legacy):
///   `v-<role, 4>-<20 random>`, cut to 16.
///
/// Display and role names keep letters, digits and `-`; anything else
/// becomes `-` (Vault's token store does the same to display names).
pub(crate) fn username(plugin: &str, display_name: &str, role: &str, now: i64) -> String {
    let trunc = |s: &str, n: usize| -> String {
        s.chars()
            .take(n)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let random: String = rand::rngs::OsRng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    let display = if display_name.is_empty() {
        "token"
    } else {
        display_name
    };
    let name = if MYSQL_LEGACY_PLUGINS.contains(&plugin) {
        format!("v-{}-{random}", trunc(role, 4))
    } else {
        let meta = if is_mysql(plugin) { 10 } else { 8 };
        format!(
            "v-{}-{}-{random}-{now}",
            trunc(display, meta),
            trunc(role, meta)
        )
    };
    // ASCII only: cutting bytes cuts characters.
    name.chars().take(max_username_len(plugin)).collect()
}

/// Statements that extend a user's validity when the role has none.
pub(crate) fn default_renew_statements(plugin: &str) -> Vec<String> {
    match plugin {
        POSTGRES_PLUGIN => vec![r#"ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';"#.into()],
        // MySQL has no expiry to move: a renewal only extends the lease.
        _ => Vec::new(),
    }
}

/// Statements that set a user's password when a static role (or the root
/// config) has none.
pub(crate) fn default_password_statements(plugin: &str) -> Vec<String> {
    match plugin {
        POSTGRES_PLUGIN => vec![r#"ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';"#.into()],
        p if is_mysql(p) => {
            vec!["ALTER USER '{{username}}'@'%' IDENTIFIED BY '{{password}}';".into()]
        }
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

/// The error with `secrets` (a password, its verifier) cut out of its
/// message: a database may quote the failing statement ("near '...'").
pub(crate) fn redact(e: DbError, secrets: &[&str]) -> DbError {
    let scrub = |d: String| {
        secrets
            .iter()
            .filter(|x| !x.is_empty())
            .fold(d, |d, x| d.replace(x, "<redacted>"))
    };
    match e {
        DbError::Connect { detail, source } => DbError::Connect {
            detail: scrub(detail),
            source,
        },
        DbError::Statement { detail, source } => DbError::Statement {
            detail: scrub(detail),
            source,
        },
        DbError::Config(m) => DbError::Config(scrub(m)),
        DbError::Timeout => DbError::Timeout,
    }
}

/// Maps a database failure to the answer a client gets: an unreachable
/// database is a 500 (the client may retry), anything else a 400 naming the
/// database's complaint.
pub(crate) fn to_logical(what: &str, e: DbError) -> LogicalError {
    match e {
        DbError::Connect { .. } | DbError::Timeout => {
            LogicalError::Internal(format!("{what}: {e}"))
        }
        _ => LogicalError::invalid(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_vaults_default_templates() {
        let now = 1_700_000_000;
        let u = username(POSTGRES_PLUGIN, "token", "readonly-role", now);
        assert!(u.starts_with("v-token-readonly-"), "{u}");
        assert!(u.ends_with("-1700000000"), "{u}");
        assert_eq!(u.len(), 2 + 5 + 1 + 8 + 1 + 20 + 1 + 10);
        let long = username(POSTGRES_PLUGIN, &"x".repeat(40), &"y".repeat(40), now);
        assert_eq!(long.len(), 2 + 8 + 1 + 8 + 1 + 20 + 1 + 10);

        let m = username(MYSQL_PLUGIN, "userpass-alice", "readonly-role", now);
        assert!(m.starts_with("v-userpass-a-readonly-r-"), "{m}");
        assert_eq!(m.len(), 32, "{m}");
        // v-token-ro-<20 random>-<time>: the time is cut off at 32.
        let short = username(MYSQL_PLUGIN, "token", "ro", now);
        assert!(
            short.starts_with("v-token-ro-") && short.ends_with('-'),
            "{short}"
        );
        assert_eq!(short.len(), 32);
        for legacy in MYSQL_LEGACY_PLUGINS {
            let l = username(legacy, "token", "readonly", now);
            assert!(l.starts_with("v-read-"), "{l}");
            assert_eq!(l.len(), 16, "{l}");
            assert_eq!(max_username_len(legacy), 16);
        }
        // Nothing but letters, digits and '-', whatever the names hold.
        let odd = username(MYSQL_PLUGIN, "a'b;c", "é\\x", now);
        assert!(odd.starts_with("v-a-b-c---x-"), "{odd}");
        for n in [u, m, odd] {
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{n}"
            );
        }
    }

    #[test]
    fn mysql_defaults() {
        assert!(is_mysql(MYSQL_PLUGIN) && is_known(MYSQL_PLUGIN));
        assert!(!is_mysql(POSTGRES_PLUGIN) && is_known(POSTGRES_PLUGIN));
        assert!(!is_known("mssql-database-plugin"));
        assert!(default_renew_statements(MYSQL_PLUGIN).is_empty());
        assert_eq!(
            default_password_statements(MYSQL_PLUGIN),
            ["ALTER USER '{{username}}'@'%' IDENTIFIED BY '{{password}}';"]
        );
    }

    #[test]
    fn values_are_not_expanded_again() {
        let v = Values {
            name: "{{password}}",
            password: "secret",
            expiration: "",
        };
        assert_eq!(
            render(
                "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' {{other}}",
                &v
            ),
            "CREATE ROLE \"{{password}}\" PASSWORD 'secret' {{other}}"
        );
    }

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
