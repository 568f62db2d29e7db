//! The PostgreSQL plugin: a small connection pool per configured
//! connection, and statements run the way Vault's plugin runs them.
//!
//! Invariants:
//! - A pool never holds more than `max_open_connections` connections and
//!   keeps at most `max_idle_connections` idle ones; a connection older
//!   than `max_connection_lifetime` is closed instead of reused.
//! - Statements of one operation run in one transaction.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

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

/// How many times statements that met a concurrent catalog update run.
const MAX_ATTEMPTS: u32 = 5;

/// Did the transaction fail only because another one changed the same
/// catalog rows at the same time (concurrent `GRANT`s on one table end in
/// "tuple concurrently updated", an internal error), a serialization
/// failure or a deadlock? The transaction rolled back: running it again is
/// safe.
fn concurrent_update(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    use tokio_postgres::error::SqlState;
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            *c == SqlState::INTERNAL_ERROR
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
}

/// A short random pause before a retry, longer with each attempt, so that
/// the transactions that collided do not collide again.
async fn retry_pause(attempt: u32) {
    use rand::Rng;
    let ms = rand::thread_rng().gen_range(5..=25) * u64::from(attempt);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// libpq's `sslmode`, as Vault's plugin takes it from `connection_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    /// TLS when the server offers it (libpq's default), unverified.
    Prefer,
    /// TLS always; verified like `VerifyCa` when `sslrootcert` is given.
    Require,
    /// TLS; the chain must lead to `sslrootcert` (or the system's CAs).
    VerifyCa,
    /// `VerifyCa` and the certificate names the host connected to.
    VerifyFull,
}

/// The TLS options of a connection string: `sslmode`, and `sslrootcert`,
/// `sslcert`, `sslkey` as paths on this server (Vault reads them so too).
#[derive(Debug, PartialEq, Eq)]
struct TlsParams {
    mode: SslMode,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Takes the TLS options out of a connection string (URL or key=value
/// form): the rest, and the options.
fn split_tls(conn: &str) -> Result<(String, TlsParams), DbError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let mut url = url::Url::parse(conn)
            .map_err(|e| DbError::Config(format!("connection_url is not a PostgreSQL URL: {e}")))?;
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let kept: Vec<&(String, String)> = pairs
            .iter()
            .filter(|(k, v)| {
                let tls = TLS_KEYS.contains(&k.as_str());
                if tls {
                    found.push((k.clone(), v.clone()));
                }
                !tls
            })
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        url.to_string()
    } else {
        let mut kept = Vec::new();
        for (k, raw, v) in key_values(conn)? {
            if TLS_KEYS.contains(&k.as_str()) {
                found.push((k, v));
            } else {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
    let mut p = TlsParams {
        mode: SslMode::Prefer,
        rootcert: None,
        cert: None,
        key: None,
    };
    for (k, v) in found {
        match k.as_str() {
            "sslmode" => {
                p.mode = match v.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(DbError::Config(format!(
                            "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" => p.rootcert = Some(v),
            "sslcert" => p.cert = Some(v),
            _ => p.key = Some(v),
        }
    }
    if p.cert.is_some() != p.key.is_some() {
        return Err(DbError::Config(
            "sslcert and sslkey go together: give both or neither".into(),
        ));
    }
    Ok((rest, p))
}

/// The `key=value` pairs of a libpq keyword/value string: (key, the pair
/// as written, the value unquoted).
fn key_values(s: &str) -> Result<Vec<(String, String, String)>, DbError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Ok(out);
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(DbError::Config(format!(
                "connection_url: missing \"=\" after {key:?}"
            )));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((_, '\'')) => break,
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(DbError::Config(
                            "connection_url: unterminated quoted value".into(),
                        ))
                    }
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
        }
        let end = chars.peek().map(|&(i, _)| i).unwrap_or(s.len());
        out.push((key, s[start..end].to_string(), value));
    }
}

/// The largest certificate or key file read (`sslrootcert`, `sslcert`,
/// `sslkey`).
const MAX_PEM_FILE: u64 = 1 << 20;

/// A PEM file named in `connection_url`, read on this server: a regular
/// file of at most [`MAX_PEM_FILE`] bytes. Errors name the option and the
/// path, never the file's content.
fn read_pem(what: &str, path: &str) -> Result<String, DbError> {
    let refuse = |why: &str| {
        DbError::Config(format!(
            "{what} {path:?}: {why} (expected a PEM file of at most 1 MiB on the Arca server)"
        ))
    };
    let meta = std::fs::metadata(path).map_err(|_| refuse("cannot be read"))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(refuse("too large"));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(|_| refuse("cannot be read"))?,
            MAX_PEM_FILE,
        ),
        &mut text,
    )
    .map_err(|_| refuse("cannot be read as text"))?;
    Ok(text)
}

/// The TLS connector `p` asks for (`None`: plain connections).
fn tls_connector(p: &TlsParams) -> Result<Option<MakeRustlsConnect>, DbError> {
    use arca_sdk::tls;
    if p.mode == SslMode::Disable {
        return Ok(None);
    }
    let config_err = |e: String| DbError::Config(format!("TLS to PostgreSQL: {e}"));
    // As libpq: the system's CAs only with verify-full (any public
    // certificate would pass a chain-only check), verify-ca only against
    // a CA file.
    match (p.rootcert.as_deref(), p.mode) {
        (Some("system"), SslMode::VerifyFull) => {}
        (Some("system"), _) => {
            return Err(config_err(
                "sslrootcert=system needs sslmode=verify-full".into(),
            ))
        }
        (None, SslMode::VerifyCa) => {
            return Err(config_err(
                "sslmode=verify-ca needs sslrootcert (a CA file on the Arca server)".into(),
            ))
        }
        _ => {}
    }
    let roots = || -> Result<rustls::RootCertStore, DbError> {
        match p.rootcert.as_deref() {
            None | Some("system") => tls::roots("").map_err(config_err),
            Some(path) => tls::roots(&read_pem("sslrootcert", path)?).map_err(|_| {
                config_err(format!(
                    "sslrootcert {path:?}: no usable CA certificate in it"
                ))
            }),
        }
    };
    let verify = match (p.mode, &p.rootcert) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (m, _) => m,
    };
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(e.to_string()))?;
    let builder = match verify {
        SslMode::VerifyFull => builder.with_root_certificates(roots()?),
        SslMode::VerifyCa => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(
                tls::ChainOnly::new(roots()?).map_err(config_err)?,
            )),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(tls::AnyCertificate(tls::provider()))),
    };
    let config = match (&p.cert, &p.key) {
        (Some(cert), Some(key)) => {
            let (chain, key) =
                tls::client_identity(&read_pem("sslcert", cert)?, &read_pem("sslkey", key)?)
                    .map_err(|_| {
                        config_err(format!(
                            "sslcert {cert:?} / sslkey {key:?}: not a PEM certificate chain and private key"
                        ))
                    })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_err(format!("sslcert/sslkey: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The connection parameters of a config: its URL with `{{username}}` and
/// `{{password}}` filled in (URL-encoded), as tokio-postgres reads it, and
/// the TLS connector its `sslmode` asks for.
fn connect_config(
    c: &DbConfig,
) -> Result<(tokio_postgres::Config, Option<MakeRustlsConnect>), DbError> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let url = c
        .connection_url
        .replace("{{username}}", &enc(&c.username))
        .replace("{{password}}", &enc(&c.password));
    let (url, tls) = split_tls(&url)?;
    let mut cfg = tokio_postgres::Config::from_str(&url).map_err(|e| {
        DbError::Config(format!(
            "connection_url is not a PostgreSQL connection string: {e}"
        ))
    })?;
    // Templated credentials are set as they are, not as the URL decoded
    // them (form encoding would turn a space into `+`).
    if (cfg.get_user().is_none() || c.connection_url.contains("{{username}}"))
        && !c.username.is_empty()
    {
        cfg.user(&c.username);
    }
    if (cfg.get_password().is_none() || c.connection_url.contains("{{password}}"))
        && !c.password.is_empty()
    {
        cfg.password(&c.password);
    }
    cfg.ssl_mode(match tls.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok((cfg, tls_connector(&tls)?))
}

struct Idle {
    client: Client,
    born: Instant,
}

/// Connections to one configured database.
pub(crate) struct Pool {
    cfg: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
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
        let (cfg, tls) = connect_config(c)?;
        Ok(Pool {
            cfg,
            tls,
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
        let client = match &self.tls {
            None => {
                let (client, connection) = self.cfg.connect(NoTls).await.map_err(connect_error)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("database connection ended: {e}");
                    }
                });
                client
            }
            Some(tls) => {
                let (client, connection) =
                    self.cfg.connect(tls.clone()).await.map_err(connect_error)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("database connection ended: {e}");
                    }
                });
                client
            }
        };
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
        let queries = queries(statements, v);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.run_once(&queries).await {
                Err(DbError::Statement { source, detail })
                    if attempt < MAX_ATTEMPTS && concurrent_update(source.as_ref()) =>
                {
                    tracing::debug!(
                        attempt,
                        "statements met a concurrent catalog update, retried: {detail}"
                    );
                    retry_pause(attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn run_once(&self, queries: &[String]) -> Result<(), DbError> {
        let mut conn = self.get().await?;
        let tx = conn.transaction().await.map_err(statement_error)?;
        for q in queries {
            tx.batch_execute(q).await.map_err(statement_error)?;
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
        let ident = quote_ident(name);
        let queries = [
            format!("GRANT {ident} TO CURRENT_USER"),
            format!("REASSIGN OWNED BY {ident} TO CURRENT_USER"),
            format!("DROP OWNED BY {ident}"),
            format!("DROP ROLE IF EXISTS {ident}"),
        ];
        let mut attempt = 0;
        loop {
            attempt += 1;
            {
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
            }
            match self.run_once(&queries).await {
                Err(DbError::Statement { source, detail })
                    if attempt < MAX_ATTEMPTS && concurrent_update(source.as_ref()) =>
                {
                    tracing::debug!(
                        attempt,
                        "dropping a user met a concurrent catalog update, retried: {detail}"
                    );
                    retry_pause(attempt).await;
                }
                other => return other,
            }
        }
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
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }

    #[test]
    fn tls_options_come_out_of_the_connection_string() {
        let (rest, p) = split_tls(
            "postgresql://u:p%40w@db:5432/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p%40w@db:5432/app?application_name=x");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.rootcert.as_deref(), Some("/ca.pem"));
        let (rest, p) = split_tls("postgres://db/app?sslmode=disable").unwrap();
        assert_eq!(
            (rest.as_str(), p.mode),
            ("postgres://db/app", SslMode::Disable)
        );
        let (rest, p) = split_tls("postgres://db/app").unwrap();
        assert_eq!(
            (rest.as_str(), p.mode),
            ("postgres://db/app", SslMode::Prefer)
        );

        let (rest, p) = split_tls(
            "host=db user={{u}} password='a b\\'c' sslmode=require sslcert=/c.pem sslkey = /k.pem",
        )
        .unwrap();
        assert_eq!(rest, "host=db user={{u}} password='a b\\'c'");
        assert_eq!(p.mode, SslMode::Require);
        assert_eq!(
            (p.cert.as_deref(), p.key.as_deref()),
            (Some("/c.pem"), Some("/k.pem"))
        );

        assert!(split_tls("postgres://db/?sslmode=maybe").is_err());
        assert!(split_tls("postgres://db/?sslcert=/c.pem").is_err());
        assert!(split_tls("host=db password='open").is_err());
    }
}
