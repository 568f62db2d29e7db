//! A throwaway MariaDB server for tests: `mariadb-install-db` into a
//! temporary directory (no test database, `root` with the `normal`
//! password authentication), `mariadbd` on a free loopback port with its
//! Unix socket in that directory, a random password for `root` (set over
//! the socket), and the server killed on drop.
//!
//! Invariants:
//! * the server binaries are required: a missing `mariadbd` or
//!   `mariadb-install-db` fails the test with an install hint
//!   (`deploy/install-deps.sh test`), it never skips;
//! * grants are on (`--skip-grant-tables` is never used): logins are
//!   checked as in production;
//! * as root, the server runs as an unprivileged system user (`mysql`,
//!   which Debian's package creates, else `nobody`) that owns the temporary
//!   directory: `mariadbd --user` drops its privileges itself, so the child
//!   process killed on drop is the server;
//! * every command runs with stdin closed and a time limit; option files
//!   (`/etc/mysql`, `~/.my.cnf`) are never read (`--no-defaults`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::{free_port, is_root, random_hex, run, user_ids};

/// Output of one client command: exit status 0, and stdout + stderr.
pub use crate::postgres::PgOut as Out;

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `name` found in `$MARIADB_BINDIR`, `/usr/sbin`, `/usr/bin` or `PATH`.
fn binary(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("MARIADB_BINDIR")
        .map(|d| vec![PathBuf::from(d)])
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin"].map(PathBuf::from));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no {name} found: install MariaDB with `deploy/install-deps.sh test` \
                 (Debian: apt-get install mariadb-server mariadb-client), or set MARIADB_BINDIR"
            )
        })
}

/// One MariaDB server in a temporary directory. Killed on drop.
pub struct MariaDb {
    dir: tempfile::TempDir,
    server: Option<Child>,
    /// The loopback port MariaDB listens on (127.0.0.1 only).
    pub port: u16,
    /// The administrator's name (`root`).
    pub superuser: String,
    /// The administrator's password (random).
    pub password: String,
}

impl MariaDb {
    /// Creates a data directory and starts the server; returns once `root`
    /// can log in over TCP with its password.
    pub fn start() -> MariaDb {
        let run_as = is_root().then(unprivileged_user);
        // The unprivileged user must reach the directory: under /tmp (a
        // root's $TMPDIR may be private); short paths also keep the socket
        // path under its 107-byte limit.
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("arca-mdb-")
            .tempdir_in(parent)
            .expect("tempdir");
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to {user}: {e}", dir.path().display()));
        }
        let mut db = MariaDb {
            dir,
            server: None,
            port: 0,
            superuser: "root".to_string(),
            password: format!("mdb-{}", random_hex(12)),
        };
        db.install(run_as.as_deref());
        // A free port can be taken between the check and the bind: retry on
        // a new port a few times.
        let mut last = String::new();
        for _ in 0..5 {
            db.port = free_port();
            match db.spawn_server(run_as.as_deref()) {
                Ok(()) => {
                    db.set_root_password();
                    return db;
                }
                Err(e) => last = e,
            }
        }
        panic!("cannot start MariaDB: {last}");
    }

    /// The temporary directory (data directory `data/`, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mysqld.log")
    }

    /// The server's error log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `{{username}}:{{password}}@tcp(127.0.0.1:PORT)/`, the templated
    /// `connection_url` (a Go MySQL DSN) of Vault's MySQL plugin.
    pub fn connection_url_template(&self) -> String {
        format!(
            "{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{})/",
            self.port
        )
    }

    fn install(&self, run_as: Option<&str>) {
        let mut c = Command::new(binary("mariadb-install-db"));
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]);
        if let Some(u) = run_as {
            c.arg(format!("--user={u}"));
        }
        let out = run(c, self.dir.path());
        assert!(out.ok, "mariadb-install-db failed:\n{}", out.text());
    }

    /// Starts `mariadbd` and waits until it answers on its socket; kills it
    /// again when it does not (e.g. the port was taken).
    fn spawn_server(&mut self, run_as: Option<&str>) -> Result<(), String> {
        let d = self.dir.path();
        let mut c = Command::new(binary("mariadbd"));
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=200",
            ]);
        if let Some(u) = run_as {
            c.arg(format!("--user={u}"));
        }
        c.stdin(Stdio::null())
            .stdout(File::create(d.join("mysqld.out")).unwrap())
            .stderr(File::create(d.join("mysqld.err")).unwrap());
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
        self.server = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The root password is still empty: the socket login works.
            let out = self.client_socket("", "SELECT 1");
            if out.ok && out.stdout.trim() == "1" {
                return Ok(());
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "mariadbd on port {} did not start ({}): {}\nlog:\n{}",
                    self.port,
                    exited.map_or("timed out".to_string(), |s| s.to_string()),
                    out.text(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `root` at `localhost` (the socket) and `127.0.0.1` (TCP: the server
    /// listens there only) gets the random password. (Other `root` rows,
    /// such as the machine's name, are ignored under
    /// `--skip-name-resolve`.)
    fn set_root_password(&self) {
        let pw = quote_literal(&self.password);
        let out = self.client_socket(
            "",
            &format!(
                "ALTER USER 'root'@'localhost' IDENTIFIED BY {pw}; \
                 CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
                 ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {pw}; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
            ),
        );
        assert!(out.ok, "setting the root password: {}", out.text());
    }

    /// The `mariadb` client: bare rows (`--batch --skip-column-names`), no
    /// option files, a connect timeout, the password in `MYSQL_PWD` (not on
    /// the command line).
    fn client(&self, user: &str, password: &str) -> Command {
        let mut c = Command::new(binary("mariadb"));
        c.env_remove("MYSQL_HOST")
            .env_remove("MYSQL_TCP_PORT")
            .env_remove("MYSQL_UNIX_PORT")
            .env("MYSQL_PWD", password)
            .args([
                "--no-defaults",
                "--batch",
                "--skip-column-names",
                "--connect-timeout=10",
            ])
            .arg(format!("--user={user}"));
        c
    }

    fn client_socket(&self, password: &str, sql: &str) -> Out {
        let mut c = self.client(&self.superuser, password);
        c.arg(format!("--socket={}", self.socket().display()))
            .args(["--protocol=SOCKET", "-e", sql]);
        run(c, self.dir.path())
    }

    /// Runs `sql` as `user` logging in with `password` over TCP (like an
    /// application would): exit status and output.
    pub fn sql_as(&self, user: &str, password: &str, sql: &str) -> Out {
        let mut c = self.client(user, password);
        c.args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .args(["-e", sql]);
        run(c, self.dir.path())
    }

    /// Runs `sql` as the administrator, for statements expected to fail.
    pub fn sql_status(&self, sql: &str) -> Out {
        self.sql_as(&self.superuser, &self.password, sql)
    }

    /// Runs `sql` as the administrator, asserts success, returns the bare
    /// rows (one line per row, columns separated by tabs), trimmed.
    #[track_caller]
    pub fn sql(&self, sql: &str) -> String {
        let out = self.sql_status(sql);
        assert!(out.ok, "`{sql}` as root failed:\n{}", out.text());
        out.stdout.trim().to_string()
    }

    /// Whether an account named `name` exists (at any host).
    #[track_caller]
    pub fn user_exists(&self, name: &str) -> bool {
        self.sql(&format!(
            "SELECT COUNT(*) FROM mysql.user WHERE User = {}",
            quote_literal(name)
        )) != "0"
    }

    /// The account names starting with `prefix`, sorted.
    #[track_caller]
    pub fn users_with_prefix(&self, prefix: &str) -> Vec<String> {
        let like = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        self.sql(&format!(
            "SELECT DISTINCT User FROM mysql.user WHERE User LIKE {} ORDER BY 1",
            quote_literal(&format!("{like}%"))
        ))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
    }

    fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if std::thread::panicking() && self.server.is_some() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(100);
            eprintln!(
                "---- mariadb log (last 100 lines, port {}) ----\n{}\n----",
                self.port,
                lines[from..].join("\n")
            );
        }
        self.kill();
    }
}

/// `s` as a MariaDB string literal (default `sql_mode`: backslash escapes).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The user that runs the server when the tests run as root: `mysql`
/// (created by Debian's package) if it exists, else `nobody`.
fn unprivileged_user() -> String {
    for u in ["mysql", "nobody"] {
        let ok = Command::new("id")
            .arg("-u")
            .arg(u)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return u.to_string();
        }
    }
    panic!("running as root and neither a `mysql` nor a `nobody` user exists to run mariadbd");
}
