//! The PostgreSQL plugin: a small connection pool per configured
//! connection, and statements run the way Vault's plugin runs them.
//!
//! Invariants:
//! - A pool never holds more than `max_open_connections` connections and
//!   keeps at most `max_idle_connections` idle ones; a connection older
//!   than `max_connection_lifetime` is closed instead of reused.
//! - Statements of one operation run in one transaction.

use std::str::FromStr;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};

use crate::model::DbConfig;
use crate::plugin::{queries, DbError, Values};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => e.to_string(),
    }
}

/// A failed connection attempt, with PostgreSQL's own message.
fn connect_error(e: tokio_postgres::Error) -> DbError {
    DbError::Connect {
        detail: pg_detail(&e),
        source: Box::new(e),
    }
}

/// A failed statement, with PostgreSQL's own message.
fn statement_error(e: tokio_postgres::Error) -> DbError {
    DbError::Statement {
        detail: pg_detail(&e),
        source: Box::new(e),
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
    pub fn new(c: &DbConfig) -> Result<Pool, DbError> {
        let max_open = c.max_open_connections.max(1) as usize;
        let max_idle = if c.max_idle_connections == 0 {
            max_open
        } else {
            (c.max_idle_connections as usize).min(max_open)
        };
        Ok(Pool {
            cfg: connect_config(c)?,
            open: Semaphore::new(max_open),
            max_idle,
            lifetime: (c.max_connection_lifetime > 0)
                .then(|| Duration::from_secs(c.max_connection_lifetime)),
            idle: parking_lot::Mutex::new(Vec::new()),
        })
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
        let (client, connection) = self.cfg.connect(NoTls).await.map_err(connect_error)?;
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

    /// Runs `statements` in one transaction.
    pub async fn run(&self, statements: &[String], v: &Values<'_>) -> Result<(), DbError> {
        let mut conn = self.get().await?;
        let tx = conn.transaction().await.map_err(statement_error)?;
        for q in queries(statements, v) {
            tx.batch_execute(&q).await.map_err(statement_error)?;
        }
        tx.commit().await.map_err(statement_error)
    }

    /// Drops a user when the role has no revocation statements: ends its
    /// sessions, hands what it owns in this database to the connection's
    /// user, drops its privileges and the role. The connection's user takes
    /// membership of the role first: a `CREATEROLE` user that is not a
    /// superuser (the dedicated user Vault's docs recommend) may not
    /// reassign a role's objects otherwise.
    pub async fn drop_user(&self, name: &str) -> Result<(), DbError> {
        let conn = self.get().await?;
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&name],
        )
        .await
        .map_err(statement_error)?;
        let exists = conn
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(statement_error)?
            .is_some();
        if !exists {
            return Ok(());
        }
        let ident = quote_ident(name);
        conn.batch_execute(&format!(
        "BEGIN; GRANT {ident} TO CURRENT_USER; REASSIGN OWNED BY {ident} TO CURRENT_USER; DROP OWNED BY {ident}; DROP ROLE IF EXISTS {ident}; COMMIT;"
    ))
    .await
    .map_err(statement_error)
    }

    /// Opens a connection and runs `SELECT 1` (`verify_connection`).
    pub async fn verify(&self) -> Result<(), DbError> {
        let conn = self.get().await?;
        conn.batch_execute("SELECT 1")
            .await
            .map_err(statement_error)
    }
}

/// A PostgreSQL identifier, double-quoted.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
