//! The PostgreSQL plugin: a small connection pool per configured
//! connection, and statements run the way Vault's plugin runs them.
//!
//! Invariants:
//! - A pool never holds more than `max_open_connections` connections and
//!   keeps at most `max_idle_connections` idle ones; a connection older
//!   than `max_connection_lifetime` is closed instead of reused.
//! - Statements of one operation run in one transaction: either every
//!   statement took effect or none did.
//! - Values reach statements only through the `{{name}}`, `{{username}}`,
//!   `{{password}}` and `{{expiration}}` placeholders; usernames and
//!   passwords are generated from safe alphabets (letters, digits, `-`),
//!   never taken from the client.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};

use arca_sdk::LogicalError;

use crate::model::DbConfig;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("{0}")]
    Statement(#[source] tokio_postgres::Error),
    #[error("{0}")]
    Config(String),
}

impl DbError {
    /// A message that names the database error (PostgreSQL's own text).
    pub fn detail(&self) -> String {
        let db = |e: &tokio_postgres::Error| match e.as_db_error() {
            Some(d) => format!("{}: {}", d.severity(), d.message()),
            None => e.to_string(),
        };
        match self {
            DbError::Connect(e) => format!("cannot connect to the database: {}", db(e)),
            DbError::Statement(e) => db(e),
            DbError::Config(m) => m.clone(),
        }
    }
}

/// The connection parameters of a config: its URL with `{{username}}` and
/// `{{password}}` filled in (URL-encoded), as tokio-postgres reads it.
pub(crate) fn connect_config(c: &DbConfig) -> Result<tokio_postgres::Config, DbError> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let url = c
        .connection_url
        .replace("{{username}}", &enc(&c.username))
        .replace("{{password}}", &enc(&c.password));
    let mut cfg = tokio_postgres::Config::from_str(&url).map_err(|e| {
        DbError::Config(format!(
            "connection_url is not a PostgreSQL connection string: {e}"
        ))
    })?;
    if cfg.get_user().is_none() && !c.username.is_empty() {
        cfg.user(&c.username);
    }
    if cfg.get_password().is_none() && !c.password.is_empty() {
        cfg.password(&c.password);
    }
    if matches!(cfg.get_ssl_mode(), tokio_postgres::config::SslMode::Require) {
        return Err(DbError::Config(
            "TLS connections to PostgreSQL are not available yet: use sslmode=disable (or prefer) in connection_url".into(),
        ));
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(cfg)
}

struct Idle {
    client: Client,
    born: Instant,
}

/// Connections to one configured database.
pub(crate) struct Pool {
    cfg: tokio_postgres::Config,
    open: Semaphore,
    max_idle: usize,
    lifetime: Option<Duration>,
    idle: parking_lot::Mutex<Vec<Idle>>,
}

/// A connection taken from a pool; back to the pool when dropped.
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    conn: Option<Idle>,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.conn.as_ref().expect("taken only on drop").client
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.conn.as_mut().expect("taken only on drop").client
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.put_back(c);
        }
    }
}

impl Pool {
    pub fn new(c: &DbConfig) -> Result<Arc<Pool>, DbError> {
        let max_open = c.max_open_connections.max(1) as usize;
        let max_idle = if c.max_idle_connections == 0 {
            max_open
        } else {
            (c.max_idle_connections as usize).min(max_open)
        };
        Ok(Arc::new(Pool {
            cfg: connect_config(c)?,
            open: Semaphore::new(max_open),
            max_idle,
            lifetime: (c.max_connection_lifetime > 0)
                .then(|| Duration::from_secs(c.max_connection_lifetime)),
            idle: parking_lot::Mutex::new(Vec::new()),
        }))
    }

    fn fresh(&self, c: &Idle) -> bool {
        !c.client.is_closed() && self.lifetime.is_none_or(|l| c.born.elapsed() < l)
    }

    fn put_back(&self, c: Idle) {
        let mut idle = self.idle.lock();
        if self.fresh(&c) && idle.len() < self.max_idle {
            idle.push(c);
        }
    }

    /// A working connection: an idle one, or a new one.
    pub async fn get(&self) -> Result<Conn<'_>, DbError> {
        let permit = self
            .open
            .acquire()
            .await
            .map_err(|_| DbError::Config("the connection pool is closed".into()))?;
        loop {
            let next = self.idle.lock().pop();
            match next {
                Some(c) if self.fresh(&c) => {
                    return Ok(Conn {
                        pool: self,
                        conn: Some(c),
                        _permit: permit,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let (client, connection) = self.cfg.connect(NoTls).await.map_err(DbError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("database connection ended: {e}");
            }
        });
        Ok(Conn {
            pool: self,
            conn: Some(Idle {
                client,
                born: Instant::now(),
            }),
            _permit: permit,
        })
    }

    /// Closes every idle connection (in-use ones close when returned).
    pub fn close(&self) {
        self.idle.lock().clear();
        self.open.close();
    }
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

/// Each statement split on `;` (Vault's plugin does the same), rendered.
fn queries(statements: &[String], v: &Values<'_>) -> Vec<String> {
    statements
        .iter()
        .flat_map(|s| s.split(';'))
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| render(q, v))
        .collect()
}

/// Runs `statements` in one transaction.
pub(crate) async fn run(pool: &Pool, statements: &[String], v: &Values<'_>) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await.map_err(DbError::Statement)?;
    for q in queries(statements, v) {
        tx.batch_execute(&q).await.map_err(DbError::Statement)?;
    }
    tx.commit().await.map_err(DbError::Statement)
}

/// Drops a user when the role has no revocation statements: ends its
/// sessions, hands what it owns in this database to the connection's
/// user, drops its privileges and the role.
pub(crate) async fn drop_user(pool: &Pool, name: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        &[&name],
    )
    .await
    .map_err(DbError::Statement)?;
    let exists = conn
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .map_err(DbError::Statement)?
        .is_some();
    if !exists {
        return Ok(());
    }
    let ident = quote_ident(name);
    conn.batch_execute(&format!(
        "BEGIN; REASSIGN OWNED BY {ident} TO CURRENT_USER; DROP OWNED BY {ident}; DROP ROLE IF EXISTS {ident}; COMMIT;"
    ))
    .await
    .map_err(DbError::Statement)
}

/// A PostgreSQL identifier, double-quoted.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Opens a connection and runs `SELECT 1` (`verify_connection`).
pub(crate) async fn verify(pool: &Pool) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.batch_execute("SELECT 1")
        .await
        .map_err(DbError::Statement)
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

/// Maps a database failure to the answer a client gets.
pub(crate) fn to_logical(what: &str, e: DbError) -> LogicalError {
    match e {
        DbError::Connect(_) => LogicalError::Internal(format!("{what}: {}", e.detail())),
        _ => LogicalError::invalid(format!("{what}: {}", e.detail())),
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
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
