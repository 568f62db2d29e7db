//! A throwaway PostgreSQL cluster for tests, chaos tests and benchmarks:
//! `initdb` into a temporary directory with a superuser `postgres` whose
//! password is random (`--auth-local=trust
//! --auth-host=scram-sha-256`), `pg_ctl start` on a free loopback port with
//! its Unix socket in that directory, and `pg_ctl stop -m immediate` on drop.
//! `stop` and `start_again` take the same cluster down and back up on the
//! same port and data directory (chaos tests: the database restarts under
//! a running server).
//!
//! Invariants:
//! * the server binaries are required: a missing `initdb` fails the test
//!   with an install hint (`deploy/install-deps.sh test`), it never skips;
//! * `initdb` refuses to run as root: as root, the cluster is created and
//!   run by an unprivileged system user (`postgres`, which Debian's package
//!   creates, else `nobody`) that owns the temporary directory;
//! * every command runs with stdin closed and a time limit; the client
//!   environment (`PG*` variables) of the caller is ignored.

use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `pg_ctl start` may wait for the server to accept connections.
const START_TIMEOUT_SECS: u32 = 60;
/// How long one `psql`/`initdb`/`pg_ctl` command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory with `initdb`, `pg_ctl`, `postgres` and `psql`:
/// `$PG_BINDIR`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps the server binaries there, off
/// `PATH`), else the directory of `initdb` on `PATH`.
pub fn pg_bindir() -> PathBuf {
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(d) = std::env::var("PG_BINDIR") {
        let d = PathBuf::from(d);
        assert!(has_initdb(&d), "PG_BINDIR={} has no initdb", d.display());
        return d;
    }
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&d) {
            return d;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    has_initdb(&bin).then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return d;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_initdb(&d) {
                return d;
            }
        }
    }
    panic!(
        "no PostgreSQL server binaries (initdb, pg_ctl) found: install them with \
         `deploy/install-deps.sh test` (Debian: apt-get install postgresql), or set PG_BINDIR"
    );
}

/// Output of one command: exit status 0, and stdout + stderr.
#[derive(Debug)]
pub struct PgOut {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl PgOut {
    /// stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// One PostgreSQL cluster in a temporary directory. Stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// The unprivileged user that owns and runs the cluster when the tests
    /// run as root; `None` runs everything as the current user.
    run_as: Option<String>,
    running: bool,
    /// The loopback port PostgreSQL listens on (127.0.0.1 only).
    pub port: u16,
    /// The superuser's name (`postgres`).
    pub superuser: String,
    /// The superuser's password (random, for TCP logins).
    pub password: String,
}

impl Postgres {
    /// `initdb` a new cluster and start it; returns once it accepts
    /// connections (`SELECT 1` as the superuser succeeds).
    pub fn start() -> Postgres {
        let bindir = pg_bindir();
        let run_as = if is_root() {
            Some(unprivileged_user())
        } else {
            None
        };
        // The unprivileged user must reach the directory: under /tmp (a
        // root's $TMPDIR may be private); short paths also keep the socket
        // path under its 107-byte limit.
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("arca-pg-")
            .tempdir_in(parent)
            .expect("tempdir");
        let mut pg = Postgres {
            dir,
            bindir,
            run_as,
            running: false,
            port: 0,
            superuser: "postgres".to_string(),
            password: format!("pg-{}", random_hex(12)),
        };
        pg.initdb();
        // A free port can be taken between the check and the bind: retry on
        // a new port a few times.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            match pg.pg_ctl_start() {
                Ok(()) => {
                    pg.running = true;
                    pg.wait_ready();
                    return pg;
                }
                Err(e) => last = e,
            }
        }
        panic!("cannot start PostgreSQL: {last}");
    }

    /// The temporary directory (data directory `data/`, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The Unix socket directory (for `psql -h`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// `postgresql://{{username}}:{{password}}@127.0.0.1:PORT/postgres?sslmode=disable`,
    /// the templated `connection_url` of Vault's database engine.
    pub fn connection_url_template(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// A plain URL for `user`/`password` (no escaping: test names only).
    pub fn connection_url(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// A command to run one of the cluster's binaries, as the unprivileged
    /// user when the tests run as root.
    fn server_cmd(&self, bin: &str) -> Command {
        let path = self.bindir.join(bin);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn initdb(&self) {
        let d = self.dir.path();
        let pwfile = d.join("pwfile");
        fs::write(&pwfile, format!("{}\n", self.password)).unwrap();
        if let Some(user) = &self.run_as {
            let (uid, gid) = user_ids(user);
            for p in [d, pwfile.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {} to {user}: {e}", p.display()));
            }
        }
        let mut c = self.server_cmd("initdb");
        c.arg("-D")
            .arg(self.data_dir())
            .args(["-U", &self.superuser])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]);
        let out = run(c, d);
        assert!(out.ok, "initdb failed:\n{}", out.text());
        let _ = fs::remove_file(&pwfile);
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let d = self.dir.path();
        let mut c = self.server_cmd("pg_ctl");
        c.arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", &START_TIMEOUT_SECS.to_string()])
            .arg("-o")
            .arg(format!(
                "-k {} -h 127.0.0.1 -p {} -c fsync=off -c max_connections=200",
                d.display(),
                self.port
            ));
        let out = run(c, d);
        if out.ok {
            Ok(())
        } else {
            // pg_ctl may leave a half-started postmaster behind.
            self.pg_ctl_stop();
            Err(format!(
                "pg_ctl start:\n{}\nlog:\n{}",
                out.text(),
                self.log()
            ))
        }
    }

    fn pg_ctl_stop(&self) {
        let mut c = self.server_cmd("pg_ctl");
        c.arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30"]);
        let _ = run(c, self.dir.path());
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_SECS as u64);
        loop {
            let out = self.psql_status("SELECT 1");
            if out.ok && out.stdout.trim() == "1" {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "PostgreSQL on port {} not answering SELECT 1: {}\nlog:\n{}",
                    self.port,
                    out.text(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the cluster now (`pg_ctl stop -m immediate`: every session
    /// is cut, as in a crash); drop does it too. [`Postgres::start_again`]
    /// brings it back.
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl_stop();
            self.running = false;
        }
    }

    /// Start the stopped cluster again: the same data directory, port,
    /// superuser and password (what clients connected before reach again);
    /// returns once it accepts connections. Panics if it is running, or if
    /// it cannot start (e.g. the port was taken meanwhile) with its log.
    pub fn start_again(&mut self) {
        assert!(
            !self.running,
            "PostgreSQL on port {} is already running",
            self.port
        );
        if let Err(e) = self.pg_ctl_start() {
            panic!("cannot start PostgreSQL again on port {}: {e}", self.port);
        }
        self.running = true;
        self.wait_ready();
    }

    /// [`stop`](Postgres::stop) then [`start_again`](Postgres::start_again).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Turns TLS on with this server certificate and key (PEM), written
    /// into the cluster's directory for its user, puts `hba` lines before
    /// the existing `pg_hba.conf` rules (the first matching rule wins), and
    /// reloads; returns once new sessions see `ssl = on`.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str, hba: &str) {
        use std::os::unix::fs::PermissionsExt;
        let cert = self.dir.path().join("server.crt");
        let key = self.dir.path().join("server.key");
        fs::write(&cert, cert_pem).unwrap();
        fs::write(&key, key_pem).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        if let Some(user) = &self.run_as {
            let (uid, gid) = user_ids(user);
            for p in [&cert, &key] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        }
        let hba_path = self.data_dir().join("pg_hba.conf");
        let old = fs::read_to_string(&hba_path).unwrap();
        fs::write(&hba_path, format!("{}\n{old}", hba.trim_end())).unwrap();
        // One psql call each: ALTER SYSTEM refuses to run in a transaction.
        for (k, v) in [
            ("ssl_cert_file", quote_literal(&cert.display().to_string())),
            ("ssl_key_file", quote_literal(&key.display().to_string())),
            ("ssl", "on".to_string()),
        ] {
            self.psql(&format!("ALTER SYSTEM SET {k} = {v}"));
        }
        assert_eq!(self.psql("SELECT pg_reload_conf()"), "t");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while self.psql("SHOW ssl") != "on" {
            assert!(
                Instant::now() < deadline,
                "ssl still off after reload:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Started and not stopped (by [`stop`](Postgres::stop)).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The postmaster's process id (first line of `postmaster.pid`), while
    /// it runs. Its children (one backend per connection, and the
    /// background processes) have it as their parent.
    pub fn postmaster_pid(&self) -> Option<u32> {
        if !self.running {
            return None;
        }
        fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// A `psql` that prints bare rows (`-tA`), stops on the first error and
    /// reads no `~/.psqlrc`.
    fn psql_cmd(&self) -> Command {
        let bin = self.bindir.join("psql");
        let mut c = Command::new(if bin.is_file() {
            bin
        } else {
            PathBuf::from("psql")
        });
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                c.env_remove(&k);
            }
        }
        c.env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-p", &self.port.to_string(), "-d", "postgres"]);
        c
    }

    /// Runs `sql` as the superuser over the Unix socket (trust) and returns
    /// exit status and output, for statements expected to fail.
    pub fn psql_status(&self, sql: &str) -> PgOut {
        let mut c = self.psql_cmd();
        c.arg("-h")
            .arg(self.socket_dir())
            .args(["-U", &self.superuser, "-c", sql]);
        run(c, self.dir.path())
    }

    /// Runs `sql` as the superuser, asserts success, returns the bare rows
    /// (`-tA`: one line per row, columns separated by `|`), trimmed.
    #[track_caller]
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_status(sql);
        assert!(out.ok, "psql as superuser `{sql}` failed:\n{}", out.text());
        out.stdout.trim().to_string()
    }

    /// Runs `sql` as `user` logging in with `password` over TCP
    /// (scram-sha-256, like an application would): exit status and output.
    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> PgOut {
        let mut c = self.psql_cmd();
        c.env("PGPASSWORD", password)
            .args(["-h", "127.0.0.1", "-U", user, "-w", "-c", sql]);
        run(c, self.dir.path())
    }

    /// Whether a role named `name` exists (`pg_roles`).
    #[track_caller]
    pub fn role_exists(&self, name: &str) -> bool {
        let n = self.psql(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = {}",
            quote_literal(name)
        ));
        n != "0"
    }

    /// The names of the roles whose name starts with `prefix`, sorted.
    #[track_caller]
    pub fn roles_with_prefix(&self, prefix: &str) -> Vec<String> {
        let out = self.psql(&format!(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, {}) ORDER BY 1",
            quote_literal(prefix)
        ));
        out.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// `rolvaliduntil` of a role as Unix seconds (`None`: no expiry or no
    /// such role).
    #[track_caller]
    pub fn role_valid_until(&self, name: &str) -> Option<i64> {
        let out = self.psql(&format!(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = {}",
            quote_literal(name)
        ));
        out.trim().parse().ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if std::thread::panicking() && self.running {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(100);
            eprintln!(
                "---- postgres log (last 100 lines, port {}) ----\n{}\n----",
                self.port,
                lines[from..].join("\n")
            );
        }
        self.stop();
    }
}

/// `s` as an SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `s` as an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn is_root() -> bool {
    let out = Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .output()
        .expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The user that runs the cluster when the tests run as root: `postgres`
/// (created by Debian's package) if it exists, else `nobody`.
fn unprivileged_user() -> String {
    for u in ["postgres", "nobody"] {
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
    panic!("running as root and neither a `postgres` nor a `nobody` user exists to run initdb");
}

pub(crate) fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .stdin(Stdio::null())
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("id {flag} {user}: {out:?}"))
    };
    (id("-u"), id("-g"))
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `c` with stdin closed, output captured through files in `scratch`
/// (a postmaster started by `pg_ctl` inherits no pipe to wait on), killed
/// after [`COMMAND_TIMEOUT`].
pub(crate) fn run(mut c: Command, scratch: &Path) -> PgOut {
    let id = random_hex(6);
    let out_p = scratch.join(format!(".out-{id}"));
    let err_p = scratch.join(format!(".err-{id}"));
    c.stdin(Stdio::null())
        .stdout(File::create(&out_p).unwrap())
        .stderr(File::create(&err_p).unwrap());
    let desc = format!("{c:?}");
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {COMMAND_TIMEOUT:?}: {desc}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = fs::read_to_string(&err_p).unwrap_or_default();
    let _ = fs::remove_file(&out_p);
    let _ = fs::remove_file(&err_p);
    PgOut {
        ok: status.success(),
        stdout,
        stderr,
    }
}
