//! `arca-bench database`: the database secrets engine
//! (`postgresql-database-plugin`) of `arca server -dev` and `bao server
//! -dev` (OpenBao), one after the other, on this machine, against one
//! throwaway PostgreSQL (`arca_testdb::postgres`: `initdb` in a temporary
//! directory, loopback port, `fsync=off`) that both use; with `--nodes N`
//! (N > 1), a raft cluster of N nodes of each server instead (as
//! `arca-bench cluster` forms them).
//!
//! For each server: mount `database/` and write, through node 1, the same
//! connection `database/config/pg` (the superuser, `connection_url` with
//! `{{username}}`/`{{password}}`, `max_open_connections` =
//! `--db-connections`, default 4 as Vault's, `allowed_roles` the role) and
//! a role named after the server (`arca`, `openbao`: the users of the two
//! never collide, `v-root-arca-...` and `v-root-openbao-...`) with the same
//! statements for both, TTL 1 h. `--statements group` (default): `CREATE
//! ROLE ... LOGIN PASSWORD ... VALID UNTIL` and `GRANT bench_readers TO`
//! the user (a group role that may read the one table), revoked with `DROP
//! ROLE`; `--statements tutorial`: Vault's tutorial statements (`GRANT
//! SELECT ON ALL TABLES IN SCHEMA public TO` the user) and its documented
//! revocation (`REVOKE ALL ...; DROP ROLE`), which contend for the table's
//! `pg_class` row (see [`TUTORIAL_CREATION_SQL`]). The password goes to
//! PostgreSQL as is (`password_authentication` left at `password`): the
//! server hashes it (SCRAM-SHA-256, 4096 iterations) in `CREATE ROLE`.
//! A check follows: one credential is read on every node,
//! its user must log in (`psql`) and read the table, and its revocation
//! must drop it; a wrong answer stops the run. Then:
//! 1. creds: `--concurrency` keep-alive connections (connection `i` to
//!    node `i mod N`) `GET database/creds/<role>` for `--duration`; every
//!    lease id answered is kept. The users in `pg_roles` must match.
//! 2. revoke: the same connections `POST sys/leases/revoke {"lease_id"}`
//!    (synchronous: the answer comes after the user was dropped) for every
//!    lease of phase 1 (at most [`REVOKE_CAP_FACTOR`] × `--duration`,
//!    60 s at least); afterwards no user of the server may be left.
//! 3. revoke-prefix: [`PREFIX_LEASES`] more credentials (untimed), then
//!    one timed `POST sys/leases/revoke-prefix/database/creds/<role>`.
//!
//! Measured per phase: operations per second, p50/p99 latency, errors,
//! CPU seconds of the server (summed over nodes) and of PostgreSQL (the
//! postmaster with its reaped children, `cutime + cstime`, plus every live
//! child: one backend per connection), and PostgreSQL's share of the two
//! (which side does the work); peak RSS (VmHWM) of the server over the
//! run. PostgreSQL is vacuumed and checkpointed before each server's run.
//!
//! Results: markdown on stdout, `database-latest.json` /
//! `database-latest.md` in `--out-dir` (`database-cluster-latest.*` with
//! `--nodes` > 1).

use arca_testdb::postgres::Postgres;

use super::cluster::start;
use super::pki::Client;
use super::*;

/// `--statements group` (the default): each user is a member of a group
/// role that may read the table. Every grant is a row of its own
/// (`pg_auth_members`), so creations do not contend for one catalog row
/// and any number of users can exist at once.
const GROUP_CREATION_SQL: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' \
VALID UNTIL '{{expiration}}';\nGRANT bench_readers TO \"{{name}}\";";
const GROUP_REVOCATION_SQL: &str = "DROP ROLE IF EXISTS \"{{name}}\";";
/// `--statements tutorial`: Vault's tutorial creation statements
/// (docs/database.md) and its documented revocation statements. Every
/// GRANT and REVOKE rewrites the table's ACL, one `pg_class` row: two at
/// once in different transactions fail with "tuple concurrently updated"
/// unless the server runs one creation at a time, and the ACL stops
/// growing near 2,400 grantees ("row is too big": `pg_class` has no TOAST),
/// which caps how many users can exist and so the length of the creds
/// phase this mode can measure.
const TUTORIAL_CREATION_SQL: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' \
VALID UNTIL '{{expiration}}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";";
const TUTORIAL_REVOCATION_SQL: &str =
    "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\";\n\
DROP ROLE IF EXISTS \"{{name}}\";";

/// (creation, revocation) statements of `--statements`.
fn statements(cfg: &Config) -> (&'static str, &'static str) {
    if cfg.db_statements == "tutorial" {
        (TUTORIAL_CREATION_SQL, TUTORIAL_REVOCATION_SQL)
    } else {
        (GROUP_CREATION_SQL, GROUP_REVOCATION_SQL)
    }
}
/// Credentials made for the revoke-prefix phase.
const PREFIX_LEASES: usize = 500;
/// The revoke phase stops after this many times `--duration` (60 s at
/// least); what is left is revoked untimed.
const REVOKE_CAP_FACTOR: u32 = 6;

/// The role (and username part) of a server.
fn role_of(kind: ServerKind) -> &'static str {
    kind.name()
}

// ------------------------------------------------------------ postgres --

/// `/proc/<pid>/stat` after the command name: (ppid, utime + stime,
/// cutime + cstime) in clock ticks.
fn parse_stat_tree(stat: &str) -> Option<(u32, u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((f.get(1)?.parse().ok()?, n(11)? + n(12)?, n(13)? + n(14)?))
}

/// CPU seconds of a PostgreSQL cluster: the postmaster's own and its
/// reaped children's, plus every live child's (backends, background
/// workers). A child that ends between two readings moves from the second
/// term to the first, so differences between readings count it once.
fn pg_cpu_seconds(postmaster: u32, ticks: f64) -> Option<f64> {
    let own = std::fs::read_to_string(format!("/proc/{postmaster}/stat")).ok()?;
    let (_, t, reaped) = parse_stat_tree(&own)?;
    let mut total = t + reaped;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == postmaster {
            continue;
        }
        if let Some((ppid, t, _)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat_tree(&s))
        {
            if ppid == postmaster {
                total += t;
            }
        }
    }
    Some(total as f64 / ticks)
}

/// How many users of `role` PostgreSQL has (`v-<display>-<role>-...`).
fn users_of(pg: &Postgres, role: &str) -> u64 {
    pg.psql(&format!(
        "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%-{role}-%'"
    ))
    .parse()
    .unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------- load --

/// CPU readings around a phase: the server's processes and PostgreSQL.
struct Cpu<'a> {
    pids: &'a [u32],
    postmaster: u32,
    ticks: f64,
}

impl Cpu<'_> {
    fn read(&self) -> (Option<f64>, Option<f64>) {
        let server: Option<f64> = self.pids.iter().map(|&p| cpu_seconds(p, self.ticks)).sum();
        (server, pg_cpu_seconds(self.postmaster, self.ticks))
    }
}

/// One measured phase.
#[derive(Debug, Default)]
struct Measured {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Sorted once the phase is over.
    latencies_us: Vec<u32>,
    server_cpu_s: Option<f64>,
    pg_cpu_s: Option<f64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The figures as JSON (`latencies_us` sorted).
    fn to_json(&self, label: &str) -> Value {
        let l = &self.latencies_us;
        let share = match (self.server_cpu_s, self.pg_cpu_s) {
            (Some(s), Some(p)) if s + p > 0.0 => Some(round(p / (s + p), 3)),
            _ => None,
        };
        json!({
            "description": label,
            "ok": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": round(self.elapsed.as_secs_f64(), 3),
            "ops_per_s": round(self.rate(), 1),
            "latency_us": {
                "p50": percentile(l, 50.0),
                "p99": percentile(l, 99.0),
                "max": l.last().copied().unwrap_or(0),
            },
            "server_cpu_s": self.server_cpu_s.map(|v| round(v, 2)),
            "postgres_cpu_s": self.pg_cpu_s.map(|v| round(v, 2)),
            "postgres_cpu_share": share,
        })
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// What a worker does with each request.
#[derive(Clone)]
enum Job {
    /// `GET database/creds/<role>` until the deadline; keeps the lease ids.
    Creds { role: &'static str },
    /// `POST sys/leases/revoke` of `leases[i]`, `i` from the counter.
    Revoke { leases: Arc<Vec<String>> },
}

#[derive(Default)]
struct Worked {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    leases: Vec<String>,
}

async fn worker(target: Target, job: Job, deadline: Instant, next: Arc<AtomicU64>) -> Worked {
    let mut w = Worked::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < deadline {
        let (method, path, body) = match &job {
            Job::Creds { role } => (Method::GET, format!("/v1/database/creds/{role}"), None),
            Job::Revoke { leases } => {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(id) = leases.get(i) else { break };
                (
                    Method::POST,
                    "/v1/sys/leases/revoke".to_string(),
                    Some(Bytes::from(json!({ "lease_id": id }).to_string())),
                )
            }
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&target.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    w.errors += 1;
                    w.first_error.get_or_insert_with(|| format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        let r = send(c, &target, method, &path, body).await;
        let us = micros(t0.elapsed());
        match r {
            Ok((200..=299, b)) => {
                w.latencies_us.push(us);
                if matches!(job, Job::Creds { .. }) {
                    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                    match v["lease_id"].as_str() {
                        Some(id) if !id.is_empty() => w.leases.push(id.to_string()),
                        _ => {
                            w.errors += 1;
                            w.first_error
                                .get_or_insert_with(|| format!("{path}: 2xx without lease_id"));
                        }
                    }
                }
            }
            Ok((status, b)) => {
                w.errors += 1;
                w.first_error.get_or_insert_with(|| {
                    let t = String::from_utf8_lossy(&b);
                    format!("{path}: HTTP {status} {}", &t[..t.len().min(300)])
                });
            }
            Err(e) => {
                w.errors += 1;
                w.first_error.get_or_insert_with(|| format!("{path}: {e}"));
                conn = None;
            }
        }
    }
    w
}

/// Runs `job` on `concurrency` connections (connection `i` to
/// `targets[i % N]`) until `deadline` (or, for revocations, until every
/// lease was taken); returns the figures and the lease ids answered.
async fn run_load(
    targets: &[Target],
    concurrency: usize,
    job: Job,
    duration: Duration,
    cpu: &Cpu<'_>,
) -> (Measured, Vec<String>) {
    let (s0, p0) = cpu.read();
    let start = Instant::now();
    let deadline = start + duration;
    let next = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..concurrency)
        .map(|i| {
            tokio::spawn(worker(
                targets[i % targets.len()].clone(),
                job.clone(),
                deadline,
                next.clone(),
            ))
        })
        .collect();
    let mut m = Measured::default();
    let mut leases = Vec::new();
    for h in handles {
        let w = h.await.expect("worker panicked");
        m.latencies_us.extend_from_slice(&w.latencies_us);
        m.errors += w.errors;
        if m.first_error.is_none() {
            m.first_error = w.first_error;
        }
        leases.extend(w.leases);
    }
    m.elapsed = start.elapsed();
    let (s1, p1) = cpu.read();
    m.latencies_us.sort_unstable();
    m.ok = m.latencies_us.len() as u64;
    m.server_cpu_s = s0.zip(s1).map(|(a, b)| b - a);
    m.pg_cpu_s = p0.zip(p1).map(|(a, b)| b - a);
    (m, leases)
}

// --------------------------------------------------------------- setup --

/// Mounts `database/`, writes `config/pg` and the role of `kind`.
async fn setup(c: &mut Client, kind: ServerKind, pg: &Postgres, cfg: &Config) -> Result<()> {
    let role = role_of(kind);
    let (creation, revocation) = statements(cfg);
    c.post("/v1/sys/mounts/database", json!({"type": "database"}))
        .await?;
    c.post(
        "/v1/database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.connection_url_template(),
            "username": pg.superuser,
            "password": pg.password,
            "allowed_roles": role,
            "max_open_connections": cfg.db_connections,
        }),
    )
    .await?;
    c.post(
        &format!("/v1/database/roles/{role}"),
        json!({
            "db_name": "pg",
            "creation_statements": [creation],
            "revocation_statements": [revocation],
            "default_ttl": "1h",
            "max_ttl": "24h",
        }),
    )
    .await?;
    Ok(())
}

/// On every node: read a credential (retrying while a standby has not
/// applied the role), log in with it and read the table, revoke it and
/// check that the user is gone.
async fn check_everywhere(kind: ServerKind, targets: &[Target], pg: &Postgres) -> Result<()> {
    let name = kind.name();
    let role = role_of(kind);
    for (i, t) in targets.iter().enumerate() {
        let mut c = Client::new(t);
        let deadline = Instant::now() + Duration::from_secs(60);
        let v: Value = loop {
            match c.get(&format!("/v1/database/creds/{role}")).await {
                Ok(b) => break serde_json::from_slice(&b)?,
                Err(e) if Instant::now() > deadline => {
                    bail!("{name}: creds through node{}: {e:#}", i + 1)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let user = v["data"]["username"].as_str().unwrap_or_default();
        let password = v["data"]["password"].as_str().unwrap_or_default();
        let lease = v["lease_id"].as_str().unwrap_or_default();
        if user.is_empty() || password.is_empty() || lease.is_empty() {
            bail!("{name}: creds without username, password or lease: {v}");
        }
        if !user.contains(&format!("-{role}-")) {
            bail!("{name}: username {user:?} does not name the role {role:?}");
        }
        let login = pg.psql_as(user, password, "SELECT count(*) FROM bench_items");
        if !login.ok || login.stdout.trim() != "3" {
            bail!("{name}: login as {user} and SELECT: {}", login.text());
        }
        c.post("/v1/sys/leases/revoke", json!({ "lease_id": lease }))
            .await?;
        if pg.role_exists(user) {
            bail!("{name}: {user} still exists after its revocation answered 2xx");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- bench --

/// Revokes what is left of `role`'s leases, untimed: `revoke-prefix`,
/// again while users remain and it makes progress (a prefix revocation
/// stops at its first failure); then, if users are still there, forgets
/// their leases (`revoke-force`) and drops the users with `psql`. Returns
/// how many users had to be dropped by hand.
async fn clean_up(admin: &mut Client, pg: &Postgres, role: &str, name: &str) -> u64 {
    let prefix_path = format!("/v1/sys/leases/revoke-prefix/database/creds/{role}");
    let mut left = users_of(pg, role);
    for _ in 0..20 {
        if left == 0 {
            return 0;
        }
        if let Err(e) = admin.post(&prefix_path, json!({})).await {
            eprintln!("[{name}]   clean-up: {left} users left; revoke-prefix: {e:#}");
        }
        let now = users_of(pg, role);
        if now >= left {
            left = now;
            break;
        }
        left = now;
    }
    if left == 0 {
        return 0;
    }
    eprintln!("[{name}]   clean-up: {left} users left; revoke-force and DROP ROLE by hand");
    let _ = admin
        .post(
            &format!("/v1/sys/leases/revoke-force/database/creds/{role}"),
            json!({}),
        )
        .await;
    pg.psql(&format!(
        "DO $$ DECLARE r record; BEGIN \
         FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%-{role}-%' LOOP \
         EXECUTE format('REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM %I', r.rolname); \
         EXECUTE format('DROP ROLE %I', r.rolname); \
         END LOOP; END $$"
    ));
    left
}

async fn bench_server(
    kind: ServerKind,
    cfg: &Config,
    out_dir: &Path,
    pg: &Postgres,
) -> Result<Value> {
    let name = kind.name();
    let role = role_of(kind);
    // The same starting point for each server.
    pg.psql("VACUUM");
    pg.psql("CHECKPOINT");
    let postmaster = pg
        .postmaster_pid()
        .ok_or_else(|| anyhow!("no postmaster.pid for PostgreSQL"))?;
    let mut running = start(kind, cfg, out_dir, ServerProc::start).await?;
    let pids = running.pids.clone();
    // Resident set of the started server before anything is mounted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss: u64 = pids.iter().filter_map(|&p| read_mem(p)).map(|m| m.1).sum();
    let samplers: Vec<MemSampler> = pids.iter().map(|&p| MemSampler::start(p)).collect();
    let targets: Vec<Target> = running
        .addrs
        .iter()
        .map(|a| Target {
            addr: a.clone(),
            token: running.token.clone(),
            stale: false,
        })
        .collect();
    setup(&mut Client::new(&targets[0]), kind, pg, cfg).await?;
    check_everywhere(kind, &targets, pg).await?;
    eprintln!(
        "[{name}] database/ mounted, role {role}; creds, login and revocation checked on {} node(s)",
        targets.len()
    );
    let cpu = Cpu {
        pids: &pids,
        postmaster,
        ticks: clock_ticks_per_sec(),
    };

    eprintln!(
        "[{name}] creds: {} connections, {:?}",
        cfg.concurrency, cfg.duration
    );
    let (creds, leases) = run_load(
        &targets,
        cfg.concurrency,
        Job::Creds { role },
        cfg.duration,
        &cpu,
    )
    .await;
    let users = users_of(pg, role);
    eprintln!(
        "[{name}]   {} ok, {} errors, {:.0}/s; {} users in pg_roles",
        creds.ok,
        creds.errors,
        creds.rate(),
        users
    );
    if let Some(e) = &creds.first_error {
        eprintln!("[{name}]   first error: {e}");
    }

    let cap = (cfg.duration * REVOKE_CAP_FACTOR).max(Duration::from_secs(60));
    eprintln!(
        "[{name}] revoke: {} leases, {} connections (at most {:?})",
        leases.len(),
        cfg.concurrency,
        cap
    );
    let (revoke, _) = run_load(
        &targets,
        cfg.concurrency,
        Job::Revoke {
            leases: Arc::new(leases.clone()),
        },
        cap,
        &cpu,
    )
    .await;
    let users_left = users_of(pg, role);
    eprintln!(
        "[{name}]   {} ok, {} errors, {:.0}/s; {} users left in pg_roles",
        revoke.ok,
        revoke.errors,
        revoke.rate(),
        users_left
    );
    if let Some(e) = &revoke.first_error {
        eprintln!("[{name}]   first error: {e}");
    }
    let mut admin = Client::new(&targets[0]);
    let prefix_path = format!("/v1/sys/leases/revoke-prefix/database/creds/{role}");
    // Untimed clean-up of what failed or the cap left.
    let mut dropped_by_hand = clean_up(&mut admin, pg, role, name).await;

    // revoke-prefix: PREFIX_LEASES credentials, one timed call.
    eprintln!("[{name}] revoke-prefix: making {PREFIX_LEASES} credentials");
    let (made, attempts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut makers = Vec::new();
    for i in 0..cfg.concurrency {
        let t = targets[i % targets.len()].clone();
        let (made, attempts) = (made.clone(), attempts.clone());
        makers.push(tokio::spawn(async move {
            let mut c = Client::new(&t);
            let mut first_error = None;
            while made.load(Ordering::Relaxed) < PREFIX_LEASES as u64
                && attempts.fetch_add(1, Ordering::Relaxed) < 20 * PREFIX_LEASES as u64
            {
                match c.get(&format!("/v1/database/creds/{role}")).await {
                    Ok(_) => {
                        made.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            first_error
        }));
    }
    let mut making_error = None;
    for m in makers {
        if let Some(e) = m.await? {
            making_error.get_or_insert(e);
        }
    }
    let made = made.load(Ordering::Relaxed);
    let making_errors = attempts
        .load(Ordering::Relaxed)
        .min(20 * PREFIX_LEASES as u64)
        .saturating_sub(made);
    if let Some(e) = &making_error {
        eprintln!("[{name}]   {made} made, {making_errors} failed; first error: {e}");
    }
    let prefix_users = users_of(pg, role);
    let (s0, p0) = cpu.read();
    let t0 = Instant::now();
    let prefix_result = admin.post(&prefix_path, json!({})).await;
    let prefix_elapsed = t0.elapsed();
    let (s1, p1) = cpu.read();
    let prefix_left = users_of(pg, role);
    let prefix = Measured {
        ok: prefix_users.saturating_sub(prefix_left),
        errors: u64::from(prefix_result.is_err()),
        first_error: prefix_result.err().map(|e| format!("{e:#}")),
        elapsed: prefix_elapsed,
        latencies_us: vec![micros(prefix_elapsed)],
        server_cpu_s: s0.zip(s1).map(|(a, b)| b - a),
        pg_cpu_s: p0.zip(p1).map(|(a, b)| b - a),
    };
    eprintln!(
        "[{name}]   {} users dropped in {:.2} s ({:.0}/s), {} left{}",
        prefix.ok,
        prefix_elapsed.as_secs_f64(),
        prefix.rate(),
        prefix_left,
        prefix
            .first_error
            .as_ref()
            .map(|e| format!("; error: {e}"))
            .unwrap_or_default()
    );
    dropped_by_hand += clean_up(&mut admin, pg, role, name).await;

    let hwm: Vec<u64> = samplers
        .into_iter()
        .zip(&pids)
        .map(|(s, &pid)| s.finish(pid).0)
        .collect();
    running.deployment.stop();
    Ok(json!({
        "server": name,
        "version": running.version,
        "nodes": running.addrs.len(),
        "role": role,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": hwm.iter().sum::<u64>(),
        "node_peak_rss_kib": hwm,
        "users_after_creds": users,
        "users_left_after_revoke": users_left,
        "users_left_after_revoke_prefix": prefix_left,
        "prefix_creds_failed": making_errors,
        "prefix_creds_first_error": making_error,
        "users_dropped_by_hand": dropped_by_hand,
        "phases": {
            "creds": creds.to_json(&format!("GET database/creds/{role}")),
            "revoke": revoke.to_json("POST sys/leases/revoke {lease_id} per lease"),
            "revoke_prefix": prefix.to_json(&format!(
                "one POST sys/leases/revoke-prefix/database/creds/{role} over {prefix_users} leases"
            )),
        },
    }))
}

const PHASES: [(&str, &str); 3] = [
    ("creds", "creds (GET database/creds)"),
    ("revoke", "revoke (sys/leases/revoke per lease)"),
    ("revoke_prefix", "revoke-prefix (one call, users/s)"),
];

fn markdown(rows: &[Value], host: &Value) -> String {
    let nodes = rows.first().and_then(|r| r["nodes"].as_u64()).unwrap_or(1);
    let mut md = String::new();
    if nodes > 1 {
        md.push_str(&format!(
            "{nodes}-node raft cluster of each server; connections spread round-robin over the {nodes} nodes; server CPU summed over the nodes\n\n"
        ));
    }
    md.push_str("| phase | server | ops/s | p50 | p99 | errors | server CPU s | PostgreSQL CPU s | PostgreSQL share |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let f = |v: &Value, d: usize| {
        v.as_f64()
            .map(|x| format!("{x:.d$}"))
            .unwrap_or_else(|| "?".into())
    };
    for (p, label) in PHASES {
        for r in rows {
            let l = &r["phases"][p];
            md.push_str(&format!(
                "| {label} | {} {} | {} | {:.2} ms | {:.2} ms | {} | {} | {} | {} |\n",
                r["server"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or(""),
                f(&l["ops_per_s"], 0),
                l["latency_us"]["p50"].as_f64().unwrap_or(0.0) / 1000.0,
                l["latency_us"]["p99"].as_f64().unwrap_or(0.0) / 1000.0,
                l["errors"],
                f(&l["server_cpu_s"], 2),
                f(&l["postgres_cpu_s"], 2),
                l["postgres_cpu_share"]
                    .as_f64()
                    .map(|s| format!("{:.0} %", s * 100.0))
                    .unwrap_or_else(|| "?".into()),
            ));
        }
        if let [a, b] = rows {
            let v = |r: &Value, k: &str| r["phases"][p][k].as_f64();
            let rt = |k: &str| match (v(a, k), v(b, k)) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}×", x / y),
                _ => "?".into(),
            };
            let lat = |q: &str| {
                let l = |r: &Value| r["phases"][p]["latency_us"][q].as_f64();
                match (l(a), l(b)) {
                    (Some(x), Some(y)) if y > 0.0 => format!("{:.2}×", x / y),
                    _ => "?".into(),
                }
            };
            md.push_str(&format!(
                "| {label} | ratio {}/{} | {} | {} | {} | | {} | {} | |\n",
                a["server"].as_str().unwrap_or("?"),
                b["server"].as_str().unwrap_or("?"),
                rt("ops_per_s"),
                lat("p50"),
                lat("p99"),
                rt("server_cpu_s"),
                rt("postgres_cpu_s"),
            ));
        }
    }
    md.push_str("\n| server | idle RSS MiB | peak RSS MiB | users after creds | left after revoke | left after revoke-prefix |\n|---|---:|---:|---:|---:|---:|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r["server"].as_str().unwrap_or("?"),
            mib(r["idle_rss_kib"].as_u64().unwrap_or(0)),
            mib(r["peak_rss_kib"].as_u64().unwrap_or(0)),
            r["users_after_creds"],
            r["users_left_after_revoke"],
            r["users_left_after_revoke_prefix"],
        ));
    }
    for r in rows {
        let server = r["server"].as_str().unwrap_or("?");
        for (p, label) in PHASES {
            if let Some(e) = r["phases"][p]["first_error"].as_str() {
                md.push_str(&format!(
                    "\n- {server}, {label}: {} errors, first: {e}",
                    r["phases"][p]["errors"]
                ));
            }
        }
        if let Some(e) = r["prefix_creds_first_error"].as_str() {
            md.push_str(&format!(
                "\n- {server}, making the revoke-prefix set: {} creds failed, first: {e}",
                r["prefix_creds_failed"]
            ));
        }
        if r["users_dropped_by_hand"].as_u64().unwrap_or(0) > 0 {
            md.push_str(&format!(
                "\n- {server}: {} users left after revoke-prefix retries, dropped by hand",
                r["users_dropped_by_hand"]
            ));
        }
    }
    md.push('\n');
    if let [a, b] = rows {
        let m = |r: &Value| r["peak_rss_kib"].as_f64().unwrap_or(0.0);
        if m(b) > 0.0 {
            md.push_str(&format!(
                "\npeak RSS ratio {}/{}: {:.2}\n",
                a["server"].as_str().unwrap_or("?"),
                b["server"].as_str().unwrap_or("?"),
                m(a) / m(b)
            ));
        }
    }
    md.push_str(&format!("\nHost: {host}\n"));
    md
}

pub(super) fn run(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    out_dir: &Path,
    host: Value,
) -> Result<()> {
    let pg = Postgres::start();
    // One table, which the users may read (through the group role, or
    // their own GRANT) and the check's login reads.
    pg.psql(
        "CREATE TABLE bench_items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO bench_items VALUES (1, 'a'), (2, 'b'), (3, 'c');
         CREATE ROLE bench_readers NOLOGIN;
         GRANT SELECT ON bench_items TO bench_readers;",
    );
    let version = pg.psql("SHOW server_version");
    eprintln!(
        "PostgreSQL {version} on 127.0.0.1:{} (postmaster pid {:?}, data in {})",
        pg.port,
        pg.postmaster_pid(),
        pg.dir().display()
    );
    let mut rows = Vec::new();
    for &kind in &cfg.servers {
        rows.push(rt.block_on(bench_server(kind, cfg, out_dir, &pg))?);
    }
    let (name, mode) = if cfg.nodes > 1 {
        (
            "database-cluster",
            format!(
                "{}-node raft cluster per server, plain HTTP on loopback, connection i to node i mod {}",
                cfg.nodes, cfg.nodes
            ),
        )
    } else {
        (
            "database",
            "one dev server (in memory), plain HTTP on loopback".to_string(),
        )
    };
    write_rows(
        out_dir,
        name,
        host,
        json!({
            "nodes": cfg.nodes,
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "mode": mode,
            "postgres": {
                "version": version,
                "settings": "initdb --auth-host=scram-sha-256, fsync=off, max_connections=200, loopback TCP",
            },
            "max_open_connections": cfg.db_connections,
            "statements": cfg.db_statements,
            "creation_statements": statements(cfg).0,
            "revocation_statements": statements(cfg).1,
            "revoke_prefix_leases": PREFIX_LEASES,
        }),
        rows,
        markdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_args() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = parse_args(&a("database")).unwrap();
        assert_eq!(c.mode, Mode::Database);
        assert_eq!((c.nodes, c.concurrency, c.db_connections), (1, 16, 4));
        assert_eq!(statements(&c).0, GROUP_CREATION_SQL);
        let c = parse_args(&a(
            "database --nodes 3 -d 3s --db-connections 8 --statements tutorial",
        ))
        .unwrap();
        assert_eq!((c.nodes, c.db_connections), (3, 8));
        assert_eq!(
            statements(&c),
            (TUTORIAL_CREATION_SQL, TUTORIAL_REVOCATION_SQL)
        );
        assert!(parse_args(&a("database --statements other")).is_err());
        assert!(parse_args(&a("database --keys 5")).is_err());
        assert!(parse_args(&a("database --db-connections 0")).is_err());
        assert!(parse_args(&a("kv --db-connections 8")).is_err());
    }

    #[test]
    fn stat_tree_fields() {
        let stat = "4242 (postgres: x) S 77 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 8 0";
        assert_eq!(parse_stat_tree(stat), Some((77, 300, 10)));
        assert!(parse_stat_tree("garbage").is_none());
        // Our own process: readable, and its parent is not itself.
        let me = std::process::id();
        let (ppid, _, _) =
            parse_stat_tree(&std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap()).unwrap();
        assert_ne!(ppid, me);
        assert!(pg_cpu_seconds(me, clock_ticks_per_sec()).is_some());
    }

    #[test]
    fn markdown_ratios() {
        let row = |server: &str, ops: f64, rss: u64| {
            let p = json!({
                "ops_per_s": ops, "errors": 0,
                "latency_us": {"p50": 2000, "p99": 8000},
                "server_cpu_s": 1.0, "postgres_cpu_s": 3.0, "postgres_cpu_share": 0.75,
            });
            json!({
                "server": server, "version": "v", "nodes": 1, "peak_rss_kib": rss,
                "users_after_creds": 10, "users_left_after_revoke": 0,
                "users_left_after_revoke_prefix": 0,
                "phases": {"creds": p, "revoke": p, "revoke_prefix": p},
            })
        };
        let md = markdown(
            &[row("arca", 300.0, 1024), row("openbao", 100.0, 4096)],
            &json!({}),
        );
        assert!(md.contains(
            "| creds (GET database/creds) | arca v | 300 | 2.00 ms | 8.00 ms | 0 | 1.00 | 3.00 | 75 % |"
        ));
        assert!(md.contains("| creds (GET database/creds) | ratio arca/openbao | 3.00× |"));
        assert!(md.contains("peak RSS ratio arca/openbao: 0.25"));
    }
}
