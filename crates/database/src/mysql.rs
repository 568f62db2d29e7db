//! The MySQL/MariaDB plugin (`mysql-database-plugin` and Vault's three
//! variants with shorter usernames): a small connection pool per configured
//! connection over `mysql_async` connections, and statements run the way
//! Vault's plugin runs them.
//!
//! `connection_url` is a Go MySQL driver DSN, as Vault takes it:
//! `[user[:password]@][net[(address)]]/dbname[?param=value&...]`, with
//! `{{username}}` and `{{password}}` filled in after the DSN is split into
//! its parts (so a password may hold any character).
//!
//! The pool is this module's own rather than `mysql_async::Pool`, whose
//! constraints are a minimum and a maximum of connections, not Vault's
//! `max_idle_connections`.
//!
//! Invariants:
//! - A pool never holds more than `max_open_connections` connections and
//!   keeps at most `max_idle_connections` idle ones; a connection older
//!   than `max_connection_lifetime` is closed instead of reused, an idle
//!   one is pinged before reuse, and one that saw any error is closed,
//!   never reused.
//! - Connections use TCP or a Unix socket exactly as the DSN says (never
//!   switching to the server's socket on their own) and never TLS: a DSN
//!   asking for TLS is refused, as is any DSN parameter not listed in
//!   [`Dsn::parse`].
//! - MySQL's DDL is not transactional: the statements of an operation run
//!   in order in one transaction (which only DML honours); when creation
//!   statements fail, the role's rollback statements and then the default
//!   drop run, so a failed creation leaves no user behind.
//! - The default drop removes the user at every host it exists for and then
//!   ends its open sessions (MySQL's `DROP USER` leaves them running); it is
//!   idempotent.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::model::DbConfig;
use crate::plugin::{queries, DbError, Values};

/// How long a connection attempt (or the ping of an idle one) may take,
/// unless the DSN's `timeout` says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Go driver's defaults.
const DEFAULT_PORT: u16 = 3306;
const DEFAULT_TCP_HOST: &str = "127.0.0.1";
const DEFAULT_SOCKET: &str = "/tmp/mysql.sock";

/// Where a DSN connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Net {
    Tcp { host: String, port: u16 },
    Unix(String),
}

/// A Go MySQL driver DSN, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dsn {
    pub user: String,
    pub password: String,
    pub net: Net,
    pub db_name: String,
    /// The `timeout` parameter: how long connecting may take.
    pub timeout: Option<Duration>,
}

fn config_error(msg: impl std::fmt::Display) -> DbError {
    DbError::Config(format!("connection_url is not a MySQL DSN: {msg}"))
}

/// `%XX` sequences decoded (Go's `url.PathUnescape`).
fn percent_decode(s: &str) -> Result<String, DbError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| config_error(format!("invalid escape in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| config_error(format!("{s:?} is not UTF-8")))
}

/// `host[:port]` or `[v6]:port` into a host (brackets removed) and a port
/// (3306 when absent), as the Go driver completes addresses.
fn host_port(addr: &str) -> Result<(String, u16), DbError> {
    let bad_port = || config_error(format!("invalid port in address {addr:?}"));
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| config_error(format!("missing ']' in address {addr:?}")))?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad_port)?,
        };
        return Ok((host.to_string(), port));
    }
    match addr.rsplit_once(':') {
        // More than one ':' and no brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((addr.to_string(), DEFAULT_PORT)),
        Some((host, port)) => Ok((host.to_string(), port.parse().map_err(|_| bad_port())?)),
        None => Ok((addr.to_string(), DEFAULT_PORT)),
    }
}

impl Dsn {
    /// Splits `dsn` the way the Go driver (`mysql.ParseDSN`) does: the
    /// database name follows the last `/`; before it, the last `@` ends
    /// `user[:password]` (split at the first `:`) and `net(address)`
    /// follows. `net` is `tcp` (default, address `127.0.0.1:3306`, port
    /// 3306 when absent) or `unix` (default `/tmp/mysql.sock`).
    ///
    /// Parameters: `timeout` (a Go duration: how long connecting may take)
    /// and `tls=false`; any other one is refused (TLS is not available yet,
    /// and the driver's other parameters change nothing Arca does or set
    /// session variables, which is not available either).
    pub fn parse(dsn: &str) -> Result<Dsn, DbError> {
        let slash = dsn.rfind('/').ok_or_else(|| {
            config_error(
                "missing the '/' before the database name (e.g. user:pass@tcp(host:3306)/)",
            )
        })?;
        let (left, right) = (&dsn[..slash], &dsn[slash + 1..]);
        let (userinfo, netaddr) = match left.rfind('@') {
            Some(at) => (Some(&left[..at]), &left[at + 1..]),
            None => (None, left),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (user.to_string(), pass.to_string()),
                None => (u.to_string(), String::new()),
            },
            None => (String::new(), String::new()),
        };
        let (net, addr) = match netaddr.find('(') {
            Some(open) => {
                let addr = netaddr[open + 1..].strip_suffix(')').ok_or_else(|| {
                    config_error("the address must be in parentheses, e.g. tcp(127.0.0.1:3306)")
                })?;
                (&netaddr[..open], addr)
            }
            None => (netaddr, ""),
        };
        let net = match net {
            "" | "tcp" => {
                let (host, port) = host_port(if addr.is_empty() {
                    DEFAULT_TCP_HOST
                } else {
                    addr
                })?;
                Net::Tcp { host, port }
            }
            "unix" => Net::Unix(if addr.is_empty() {
                DEFAULT_SOCKET.to_string()
            } else {
                addr.to_string()
            }),
            other => {
                return Err(config_error(format!(
                    "network {other:?} is not available: use tcp(host:port) or unix(/path)"
                )))
            }
        };
        let (db, params) = right.split_once('?').unwrap_or((right, ""));
        let mut out = Dsn {
            user,
            password,
            net,
            db_name: percent_decode(db)?,
            timeout: None,
        };
        for (k, v) in url::form_urlencoded::parse(params.as_bytes()) {
            match (&*k, &*v) {
                ("timeout", v) => {
                    out.timeout = Some(
                        arca_sdk::duration::parse(v)
                            .map_err(|e| config_error(format!("timeout: {e}")))?,
                    )
                }
                ("tls", "false") => {}
                ("tls", _) => {
                    return Err(DbError::Config(
                        "TLS connections to MySQL are not available yet: leave out tls= (or use tls=false) in connection_url".into(),
                    ))
                }
                (k, _) => {
                    return Err(config_error(format!(
                        "parameter {k:?} is not available (only timeout and tls=false)"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// The connection options of a config: its DSN split, then `{{username}}`
/// and `{{password}}` filled in; the config's username and password where
/// the DSN has none.
pub(crate) fn connect_opts(c: &DbConfig) -> Result<(mysql_async::Opts, Duration), DbError> {
    let dsn = Dsn::parse(&c.connection_url)?;
    let fill = |s: &str| {
        s.replace("{{username}}", &c.username)
            .replace("{{password}}", &c.password)
    };
    let user = match fill(&dsn.user) {
        u if u.is_empty() => c.username.clone(),
        u => u,
    };
    let password = match fill(&dsn.password) {
        p if p.is_empty() => c.password.clone(),
        p => p,
    };
    let mut b = mysql_async::OptsBuilder::default()
        .user((!user.is_empty()).then_some(user))
        .pass((!password.is_empty()).then_some(password))
        .db_name((!dsn.db_name.is_empty()).then(|| fill(&dsn.db_name)))
        .prefer_socket(false)
        .stmt_cache_size(0);
    b = match &dsn.net {
        Net::Tcp { host, port } => b.ip_or_hostname(fill(host)).tcp_port(*port),
        Net::Unix(path) => b.socket(Some(fill(path))),
    };
    Ok((b.into(), dsn.timeout.unwrap_or(CONNECT_TIMEOUT)))
}

/// MySQL's message, in the Go driver's form (`Error 1045 (28000): ...`).
fn detail(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => {
            format!("Error {} ({}): {}", s.code, s.state, s.message)
        }
        other => other.to_string(),
    }
}

fn connect_error(e: mysql_async::Error) -> DbError {
    DbError::Connect {
        detail: detail(&e),
        source: Box::new(e),
    }
}

fn statement_error(e: mysql_async::Error) -> DbError {
    DbError::Statement {
        detail: detail(&e),
        source: Box::new(e),
    }
}

fn timeout_error(what: &str, after: Duration, e: tokio::time::error::Elapsed) -> DbError {
    DbError::Connect {
        detail: format!("{what} timed out after {after:?}"),
        source: Box::new(e),
    }
}

/// A MySQL string literal. A backslash is refused rather than escaped: how
/// the server reads it depends on `NO_BACKSLASH_ESCAPES`.
fn quote_str(s: &str) -> Result<String, DbError> {
    if s.contains(['\\', '\0']) {
        return Err(DbError::Config(format!(
            "cannot quote {s:?}: it holds a backslash or NUL"
        )));
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

struct Idle {
    conn: mysql_async::Conn,
    born: Instant,
}

/// Connections to one configured database.
pub(crate) struct Pool {
    opts: mysql_async::Opts,
    connect_timeout: Duration,
    open: Semaphore,
    max_idle: usize,
    lifetime: Option<Duration>,
    idle: parking_lot::Mutex<Vec<Idle>>,
}

/// A connection taken from a pool; back to the pool when dropped, unless
/// it saw an error ([`Conn::discard`]).
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    conn: Option<Idle>,
    _permit: SemaphorePermit<'a>,
}

impl Conn<'_> {
    fn get(&mut self) -> &mut mysql_async::Conn {
        &mut self
            .conn
            .as_mut()
            .expect("taken only on drop or discard")
            .conn
    }

    /// Closes the connection instead of returning it to the pool.
    fn discard(&mut self) {
        self.conn = None;
    }

    /// Runs one query; an error closes the connection.
    async fn query_drop(&mut self, q: &str) -> Result<(), mysql_async::Error> {
        let r = self.get().query_drop(q).await;
        if r.is_err() {
            self.discard();
        }
        r
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
        if c.password_authentication != "password" {
            return Err(DbError::Config(format!(
                "password_authentication={} is for PostgreSQL only: MySQL takes the password as is (password_authentication=password)",
                c.password_authentication
            )));
        }
        let (opts, connect_timeout) = connect_opts(c)?;
        let max_open = c.max_open_connections.max(1) as usize;
        let max_idle = if c.max_idle_connections == 0 {
            max_open
        } else {
            (c.max_idle_connections as usize).min(max_open)
        };
        Ok(Pool {
            opts,
            connect_timeout,
            open: Semaphore::new(max_open),
            max_idle,
            lifetime: (c.max_connection_lifetime > 0)
                .then(|| Duration::from_secs(c.max_connection_lifetime)),
            idle: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn young(&self, c: &Idle) -> bool {
        self.lifetime.is_none_or(|l| c.born.elapsed() < l)
    }

    fn put_back(&self, c: Idle) {
        let mut idle = self.idle.lock();
        if !self.open.is_closed() && self.young(&c) && idle.len() < self.max_idle {
            idle.push(c);
        }
    }

    /// A working connection: an idle one that answers a ping, or a new one.
    async fn get(&self) -> Result<Conn<'_>, DbError> {
        let permit = self
            .open
            .acquire()
            .await
            .map_err(|_| DbError::Config("the connection pool is closed".into()))?;
        loop {
            let next = self.idle.lock().pop();
            let Some(mut c) = next else { break };
            if !self.young(&c) {
                continue;
            }
            if let Ok(Ok(())) = tokio::time::timeout(self.connect_timeout, c.conn.ping()).await {
                return Ok(Conn {
                    pool: self,
                    conn: Some(c),
                    _permit: permit,
                });
            }
        }
        let conn = tokio::time::timeout(
            self.connect_timeout,
            mysql_async::Conn::new(self.opts.clone()),
        )
        .await
        .map_err(|e| timeout_error("connecting", self.connect_timeout, e))?
        .map_err(connect_error)?;
        Ok(Conn {
            pool: self,
            conn: Some(Idle {
                conn,
                born: Instant::now(),
            }),
            _permit: permit,
        })
    }

    /// Closes every idle connection (in-use ones close when returned).
    pub fn close(&self) {
        self.open.close();
        self.idle.lock().clear();
    }

    /// Runs `statements` in order, in one transaction (which MySQL's DDL
    /// commits implicitly: a failure leaves earlier DDL in place).
    pub async fn run(&self, statements: &[String], v: &Values<'_>) -> Result<(), DbError> {
        let mut conn = self.get().await?;
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(statement_error)?;
        for q in queries(statements, v) {
            if let Err(e) = conn.query_drop(&q).await {
                // The connection is closed (discarded), which rolls back
                // whatever the transaction still holds.
                return Err(statement_error(e));
            }
        }
        conn.query_drop("COMMIT").await.map_err(statement_error)
    }

    /// Runs creation statements; when one fails, runs `rollback` (the
    /// role's rollback statements) and then [`Pool::drop_user`], so no user
    /// is left behind, and answers the creation's error. (When no
    /// connection could be made, nothing ran and nothing is undone.)
    pub async fn create(
        &self,
        creation: &[String],
        rollback: &[String],
        v: &Values<'_>,
    ) -> Result<(), DbError> {
        // A user that exists already is never created over, and so never
        // dropped by the undo below (a username_template without
        // randomness, or one that names an existing account).
        let known = self.user_exists(v.name).await?;
        if known == Some(true) {
            return Err(DbError::Config(format!(
                "user {:?} exists already in the database: not created (check username_template)",
                v.name
            )));
        }
        let e = match self.run(creation, v).await {
            Ok(()) => return Ok(()),
            // No connection: no statement ran.
            Err(e @ DbError::Connect { .. }) => return Err(e),
            Err(e) => e,
        };
        if !rollback.is_empty() {
            if let Err(r) = self.run(rollback, v).await {
                tracing::warn!(user = v.name, "rollback statements failed: {r}");
            }
        }
        // Dropped only when it was known not to exist before.
        if known == Some(false) {
            if let Err(r) = self.drop_user(v.name).await {
                tracing::warn!(
                    user = v.name,
                    "dropping the user of a failed creation failed: {r}"
                );
            }
        }
        Err(e)
    }

    /// Is there a user of this name (at any host)? `None` when
    /// `mysql.user` cannot be read by the connection's user.
    async fn user_exists(&self, name: &str) -> Result<Option<bool>, DbError> {
        let mut conn = self.get().await?;
        match conn
            .get()
            .exec_first::<u8, _, _>("SELECT 1 FROM mysql.user WHERE User = ? LIMIT 1", (name,))
            .await
        {
            Ok(row) => Ok(Some(row.is_some())),
            Err(mysql_async::Error::Server(_)) => Ok(None),
            Err(e) => {
                conn.discard();
                Err(statement_error(e))
            }
        }
    }

    /// Drops a user when the role has no revocation statements: the user
    /// at every host `mysql.user` lists for it (`'name'@'%'`, Vault's
    /// default, when that table cannot be read), then its open sessions.
    pub async fn drop_user(&self, name: &str) -> Result<(), DbError> {
        let user = quote_str(name)?;
        let mut conn = self.get().await?;
        let hosts: Vec<String> = match conn
            .get()
            .exec("SELECT Host FROM mysql.user WHERE User = ?", (name,))
            .await
        {
            Ok(h) => h,
            Err(mysql_async::Error::Server(e)) => {
                tracing::debug!("cannot read mysql.user ({}): dropping {name}@%", e.message);
                vec!["%".to_string()]
            }
            Err(e) => {
                conn.discard();
                return Err(statement_error(e));
            }
        };
        for host in hosts {
            conn.query_drop(&format!("DROP USER IF EXISTS {user}@{}", quote_str(&host)?))
                .await
                .map_err(statement_error)?;
        }
        let sessions: Vec<u64> = match conn
            .get()
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
                (name,),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("cannot list the sessions of {name}: {}", detail(&e));
                conn.discard();
                return Ok(());
            }
        };
        for id in sessions {
            // A session may end by itself meanwhile (unknown thread id).
            if let Err(e) = conn.get().query_drop(format!("KILL CONNECTION {id}")).await {
                tracing::debug!("cannot end session {id} of {name}: {}", detail(&e));
            }
        }
        Ok(())
    }

    /// Opens a connection and runs `SELECT 1` (`verify_connection`).
    pub async fn verify(&self) -> Result<(), DbError> {
        let mut conn = self.get().await?;
        conn.query_drop("SELECT 1").await.map_err(statement_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Net {
        Net::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn vaults_dsn_form_parses() {
        let d = Dsn::parse("{{username}}:{{password}}@tcp(127.0.0.1:3306)/").unwrap();
        assert_eq!(
            d,
            Dsn {
                user: "{{username}}".into(),
                password: "{{password}}".into(),
                net: tcp("127.0.0.1", 3306),
                db_name: String::new(),
                timeout: None,
            }
        );
    }

    #[test]
    fn dsn_parts_split_like_the_go_driver() {
        // Last '@' ends the user info, first ':' splits it.
        let d = Dsn::parse("root:p@ss:w/rd@tcp(db.example:3307)/my%20db?timeout=1.5s").unwrap();
        assert_eq!(d.user, "root");
        assert_eq!(d.password, "p@ss:w/rd");
        assert_eq!(d.net, tcp("db.example", 3307));
        assert_eq!(d.db_name, "my db");
        assert_eq!(d.timeout, Some(Duration::from_millis(1500)));
        // Defaults: tcp, 127.0.0.1:3306; port added when missing.
        assert_eq!(Dsn::parse("/").unwrap().net, tcp("127.0.0.1", 3306));
        assert_eq!(Dsn::parse("u@/db").unwrap().user, "u");
        assert_eq!(Dsn::parse("u@tcp/").unwrap().net, tcp("127.0.0.1", 3306));
        assert_eq!(Dsn::parse("tcp(db)/").unwrap().net, tcp("db", 3306));
        assert_eq!(
            Dsn::parse("tcp([::1]:3310)/").unwrap().net,
            tcp("::1", 3310)
        );
        assert_eq!(Dsn::parse("tcp(::1)/").unwrap().net, tcp("::1", 3306));
        assert_eq!(
            Dsn::parse("u:p@unix(/run/mysqld/mysqld.sock)/x")
                .unwrap()
                .net,
            Net::Unix("/run/mysqld/mysqld.sock".into())
        );
        assert_eq!(
            Dsn::parse("unix/").unwrap().net,
            Net::Unix("/tmp/mysql.sock".into())
        );
        assert!(Dsn::parse("tls=false").is_err(), "no slash");
        assert!(Dsn::parse("tcp(db:3306/").is_err(), "unclosed address");
        assert!(Dsn::parse("tcp(db:port)/").is_err());
        assert!(Dsn::parse("udp(db)/").is_err());
        assert!(Dsn::parse("u:p@tcp(db)/%zz").is_err());
    }

    #[test]
    fn tls_and_unknown_parameters_are_refused() {
        assert!(Dsn::parse("u:p@tcp(db)/?tls=false").is_ok());
        for bad in [
            "tls=true",
            "tls=skip-verify",
            "tls=preferred",
            "parseTime=true",
        ] {
            let e = Dsn::parse(&format!("u:p@tcp(db)/?{bad}")).unwrap_err();
            assert!(matches!(e, DbError::Config(_)), "{bad}: {e}");
        }
        assert!(Dsn::parse("u:p@tcp(db)/?timeout=soon").is_err());
    }

    fn config(url: &str, user: &str, pass: &str) -> DbConfig {
        DbConfig {
            name: "my".into(),
            plugin_name: crate::model::MYSQL_PLUGIN.into(),
            connection_url: url.into(),
            username: user.into(),
            password: pass.into(),
            password_authentication: "password".into(),
            allowed_roles: vec![],
            verify_connection: true,
            max_open_connections: 4,
            max_idle_connections: 0,
            max_connection_lifetime: 0,
            password_policy: String::new(),
            username_template: String::new(),
            root_rotation_statements: vec![],
        }
    }

    #[test]
    fn placeholders_are_filled_after_splitting() {
        // A password full of DSN separators stays one password.
        let c = config(
            "{{username}}:{{password}}@tcp(localhost:3307)/app",
            "root",
            "a@b:c/d?e",
        );
        let (o, t) = connect_opts(&c).unwrap();
        assert_eq!(o.user(), Some("root"));
        assert_eq!(o.pass(), Some("a@b:c/d?e"));
        assert_eq!(o.ip_or_hostname(), "localhost");
        assert_eq!(o.tcp_port(), 3307);
        assert_eq!(o.db_name(), Some("app"));
        assert!(!o.prefer_socket());
        assert_eq!(t, CONNECT_TIMEOUT);
        // No user in the DSN: the config's.
        let (o, _) = connect_opts(&config("tcp(db)/", "admin", "pw")).unwrap();
        assert_eq!((o.user(), o.pass()), (Some("admin"), Some("pw")));
    }

    #[test]
    fn scram_is_refused_for_mysql() {
        let mut c = config("u:p@tcp(db)/", "", "");
        c.password_authentication = "scram-sha-256".into();
        let e = Pool::new(&c).err().expect("refused");
        assert!(e.to_string().contains("PostgreSQL only"), "{e}");
    }

    /// The pool against a real MariaDB server: creation, rollback of a
    /// failed creation, the default drop (idempotent), connection reuse,
    /// `max_connection_lifetime`, and an idle connection the server closed.
    #[tokio::test]
    async fn pool_against_mariadb() {
        let db = arca_testdb::mariadb::MariaDb::start();
        db.sql("CREATE DATABASE mydb; CREATE TABLE mydb.t (x int)");
        let c = config(&db.connection_url_template(), &db.superuser, &db.password);
        let pool = Pool::new(&c).unwrap();
        pool.verify().await.unwrap();
        let create = vec![
            "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';".to_string(),
            "GRANT SELECT ON mydb.* TO '{{name}}'@'%';".to_string(),
        ];
        let v = |name: &'static str| Values {
            name,
            password: "pw-1",
            expiration: "",
        };
        pool.create(&create, &[], &v("v-live-1")).await.unwrap();
        assert!(db.user_exists("v-live-1"));
        let sel = db.sql_as("v-live-1", "pw-1", "SELECT COUNT(*) FROM mydb.t");
        assert!(sel.ok, "{}", sel.text());

        let broken = vec![
            create[0].clone(),
            "GRANT SELECT ON mydb.nope TO '{{name}}'@'%'".to_string(),
        ];
        let e = pool.create(&broken, &[], &v("v-live-2")).await.unwrap_err();
        assert!(e.to_string().contains("Error 1146"), "{e}");
        assert!(
            !db.user_exists("v-live-2"),
            "a failed creation left its user"
        );

        pool.drop_user("v-live-1").await.unwrap();
        assert!(!db.user_exists("v-live-1"));
        pool.drop_user("v-live-1").await.unwrap();

        async fn conn_id(p: &Pool) -> u64 {
            let mut c = p.get().await.unwrap();
            c.get()
                .query_first("SELECT CONNECTION_ID()")
                .await
                .unwrap()
                .unwrap()
        }
        // An idle connection is reused...
        let first = conn_id(&pool).await;
        assert_eq!(conn_id(&pool).await, first);
        // ...unless the server closed it: the ping notices, a new one serves.
        db.sql(&format!("KILL CONNECTION {first}"));
        pool.verify().await.unwrap();
        assert_ne!(conn_id(&pool).await, first);
        pool.close();
        assert!(pool.verify().await.is_err(), "a closed pool connects");

        // Connections older than max_connection_lifetime are not reused.
        let mut short = c.clone();
        short.max_connection_lifetime = 1;
        let pool = Pool::new(&short).unwrap();
        let a = conn_id(&pool).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_ne!(conn_id(&pool).await, a);
    }

    #[test]
    fn strings_are_quoted() {
        assert_eq!(quote_str("it's").unwrap(), "'it''s'");
        assert!(quote_str("a\\b").is_err());
    }
}
