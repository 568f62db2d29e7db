//! The database secrets engine (`postgresql-database-plugin`) under
//! failures, against a real PostgreSQL (`arca_testdb::postgres`) on
//! loopback:
//!
//! 1. Leader killed while leases are due: on a 3-node cluster, a role with
//!    a 5 s TTL; [`CREDS`] users are created through the leader and a
//!    standby (which forwards `creds/*`), checked in `pg_roles`, and the
//!    leader is killed with kill -9 before the first lease expires. The new
//!    leader's expiration manager must drop every user (polled in
//!    `pg_roles`) and delete the leases. Figures: how long after the last
//!    expiry the last user was dropped; the only bound asserted is 90 s.
//! 2. PostgreSQL restarted under a running server (a one-node cluster):
//!    users A, B (long TTL) and C (3 s TTL) exist; PostgreSQL stops
//!    (`pg_ctl stop -m immediate`). While it is down: `database/creds`
//!    fails; a synchronous `sys/leases/revoke` of A answers an error and
//!    keeps the lease; `sys/leases/revoke` of B with `sync=false` is
//!    accepted (due now); C expires. The failed revocations of B and C are
//!    rescheduled with backoff (10 s, 20 s, ...: they stay listed while the
//!    database is down). PostgreSQL comes back on the same port: B and C
//!    must be dropped by a retry (bound: 120 s), `database/creds` must work
//!    again through the same connection pool (bound: 10 s), and a new
//!    synchronous revoke of A drops it. Whether A was retried by itself is
//!    printed, not asserted: like Vault, a failed synchronous revoke leaves
//!    the lease as it was, due at its expiry.
//!
//! Figures are `chaos: ...` lines (`--nocapture`).

use std::time::{Duration, Instant};

use arca_chaos::{chaos, secs, serial, Api, Cluster, Reply};
use arca_testdb::postgres::{quote_literal, Postgres};
use serde_json::{json, Value};

/// Vault's tutorial statements for a read-only role (docs/database.md).
const READONLY_SQL: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' \
VALID UNTIL '{{expiration}}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";\n";

/// Users created in the leader-kill scenario.
const CREDS: usize = 10;
/// Their TTL (and max TTL), seconds.
const SHORT_TTL: u64 = 5;
/// How long after the last expiry every user must be gone.
const DROP_BOUND: Duration = Duration::from_secs(90);

/// Credentials as `database/creds/<role>` answered them.
#[derive(Clone, Debug)]
struct Creds {
    lease_id: String,
    lease_duration: u64,
    username: String,
    password: String,
    /// When the answer came back.
    at: Instant,
}

#[track_caller]
fn ok(r: Reply, what: &str) -> Reply {
    assert!(r.ok(), "{what}: {}", r.describe());
    r
}

/// Blocking PostgreSQL calls (psql) off the async workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Which of `names` exist in `pg_roles`, in one query.
fn present(pg: &Postgres, names: &[String]) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    let list: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
    let out = pg.psql(&format!(
        "SELECT rolname FROM pg_roles WHERE rolname IN ({}) ORDER BY 1",
        list.join(", ")
    ));
    out.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Mounts `database/` (through `base`, the leader), configures `pg` for
/// `pg` with the superuser, and writes each role `(name, ttl seconds)`
/// with [`READONLY_SQL`].
async fn setup(api: &Api, base: &str, pg: &Postgres, roles: &[(&str, u64)]) {
    let slow = api.with_timeout(arca_chaos::SLOW_CALL_TIMEOUT);
    ok(
        slow.post(
            &format!("{base}/v1/sys/mounts/database"),
            &json!({"type": "database"}),
        )
        .await,
        "enable database",
    );
    ok(
        slow.post(
            &format!("{base}/v1/database/config/pg"),
            &json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.connection_url_template(),
                "username": pg.superuser,
                "password": pg.password,
                "allowed_roles": "*",
            }),
        )
        .await,
        "database/config/pg",
    );
    for (name, ttl) in roles {
        ok(
            api.post(
                &format!("{base}/v1/database/roles/{name}"),
                &json!({
                    "db_name": "pg",
                    "creation_statements": [READONLY_SQL],
                    "default_ttl": format!("{ttl}s"),
                    "max_ttl": format!("{ttl}s"),
                }),
            )
            .await,
            &format!("database/roles/{name}"),
        );
    }
}

/// `GET {base}/v1/database/creds/{role}` as a reply.
async fn creds_reply(api: &Api, base: &str, role: &str) -> Reply {
    api.with_timeout(Duration::from_secs(15))
        .get(&format!("{base}/v1/database/creds/{role}"))
        .await
}

fn parse_creds(r: &Reply) -> Option<Creds> {
    let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Some(Creds {
        lease_id: s(&r.body["lease_id"])?,
        lease_duration: r.body["lease_duration"].as_u64()?,
        username: s(&r.body["data"]["username"])?,
        password: s(&r.body["data"]["password"])?,
        at: Instant::now(),
    })
}

#[track_caller]
fn expect_creds(r: Reply, what: &str) -> Creds {
    let r = ok(r, what);
    parse_creds(&r).unwrap_or_else(|| panic!("{what}: no lease or credentials: {}", r.describe()))
}

/// `sys/leases/lookup` of `id` through `base`.
async fn lookup(api: &Api, base: &str, id: &str) -> Reply {
    api.put(
        &format!("{base}/v1/sys/leases/lookup"),
        &json!({ "lease_id": id }),
    )
    .await
}

/// The lease ids listed under `database/creds/{role}/` on `base` (empty
/// on 404).
async fn listed(api: &Api, base: &str, role: &str) -> Result<Vec<String>, String> {
    let r = api
        .call(
            "LIST",
            &format!("{base}/v1/sys/leases/lookup/database/creds/{role}/"),
            None,
            &[],
        )
        .await;
    match r.status {
        200 => Ok(r.body["data"]["keys"]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()),
        404 => Ok(Vec::new()),
        _ => Err(r.describe()),
    }
}

/// Lines of node `i`'s log that report a failed revocation of `lease_id`
/// by the expiration manager.
fn failed_attempts(cluster: &Cluster, i: usize, lease_id: &str) -> usize {
    let log = std::fs::read(cluster.nodes[i].log_path())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("revoking an expired lease failed") && l.contains(lease_id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_of_due_leases_are_dropped_by_the_new_leader() {
    let _serial = serial().await;
    let pg = blocking(Postgres::start);
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let api = cluster.api();
    let leader = cluster.leader().await.expect("a leader");
    let standby = (0..cluster.nodes.len())
        .find(|&i| i != leader)
        .expect("a standby");
    let (lbase, sbase) = (cluster.base(leader), cluster.base(standby));
    setup(&api, &lbase, &pg, &[("short", SHORT_TTL)]).await;

    // Half through the leader, half through a standby (forwarded). The
    // standby may not have applied the role yet: retry its first read.
    let mut creds = Vec::new();
    for i in 0..CREDS {
        let base = if i % 2 == 0 { &lbase } else { &sbase };
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = loop {
            let r = creds_reply(&api, base, "short").await;
            if r.ok() || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        creds.push(expect_creds(
            r,
            &format!(
                "creds {i} through node{}",
                if i % 2 == 0 { leader + 1 } else { standby + 1 }
            ),
        ));
    }
    let first = creds[0].at;
    let names: Vec<String> = creds.iter().map(|c| c.username.clone()).collect();
    for c in &creds {
        assert!(
            c.lease_duration <= SHORT_TTL && c.lease_duration > 0,
            "lease {} of {} s, the role says {SHORT_TTL} s",
            c.lease_id,
            c.lease_duration
        );
    }
    let before = blocking(|| present(&pg, &names));
    assert_eq!(
        before.len(),
        CREDS,
        "users answered by creds but missing in pg_roles: {:?}",
        names
            .iter()
            .filter(|n| !before.contains(n))
            .collect::<Vec<_>>()
    );
    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    // A lease is due at the first whole second after issue + TTL.
    let first_expiry = first + Duration::from_secs(creds[0].lease_duration);
    let last_expiry = creds
        .iter()
        .map(|c| c.at + Duration::from_secs(c.lease_duration))
        .max()
        .unwrap();
    if t_kill < first_expiry {
        chaos!(
            "database: {CREDS} users in pg_roles; kill -9 of leader {} {} after the first creds, {} before the first expiry",
            cluster.nodes[killed].name,
            secs(t_kill - first),
            secs(first_expiry - t_kill)
        );
    } else {
        chaos!(
            "database: WARNING: kill -9 of leader {} only {} after the first creds, {} after the first expiry (slow machine): the old leader may have dropped some",
            cluster.nodes[killed].name,
            secs(t_kill - first),
            secs(t_kill - first_expiry)
        );
    }

    let deadline = last_expiry + DROP_BOUND;
    let mut remaining = before;
    let mut first_gone: Option<Instant> = None;
    while !remaining.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        remaining = blocking(|| present(&pg, &names));
        if remaining.len() < CREDS && first_gone.is_none() {
            first_gone = Some(Instant::now());
        }
    }
    let all_gone = Instant::now();
    if !remaining.is_empty() {
        cluster.dump_logs(80);
        panic!(
            "{} of {CREDS} users still in pg_roles {} after the last lease expired: {remaining:?}",
            remaining.len(),
            secs(DROP_BOUND)
        );
    }
    let new_leader = cluster
        .wait_for_leader(Duration::from_secs(30), Some(killed))
        .await
        .expect("a new leader");
    chaos!(
        "database: new leader {}; first user dropped {} after the first expiry, all {CREDS} dropped {} after the last expiry ({} after the kill)",
        cluster.nodes[new_leader].name,
        secs(first_gone.unwrap_or(all_gone).saturating_duration_since(first_expiry)),
        secs(all_gone.saturating_duration_since(last_expiry)),
        secs(all_gone - t_kill)
    );

    // The leases are deleted too (after their users), on every survivor.
    let survivors: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != killed).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    for &i in &survivors {
        loop {
            let l = listed(&api, &cluster.base(i), "short").await;
            if l.as_ref().is_ok_and(Vec::is_empty) {
                break;
            }
            if Instant::now() > deadline {
                cluster.dump_logs(60);
                panic!(
                    "node{}: leases still listed after their users were dropped: {l:?}",
                    i + 1
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The engine still issues through the new leader.
    let c = expect_creds(
        creds_reply(&api, &cluster.base(new_leader), "short").await,
        "creds through the new leader",
    );
    let login = blocking(|| pg.psql_as(&c.username, &c.password, "SELECT 1"));
    assert!(login.ok, "login as {}: {}", c.username, login.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_wait_for_a_restarted_database() {
    let _serial = serial().await;
    let mut pg = blocking(Postgres::start);
    let cluster = Cluster::start(1).await.expect("start one node");
    let api = cluster.api();
    let base = cluster.base(0);
    setup(&api, &base, &pg, &[("long", 3600), ("short", 3)]).await;

    let a = expect_creds(creds_reply(&api, &base, "long").await, "creds A");
    let b = expect_creds(creds_reply(&api, &base, "long").await, "creds B");
    let c = expect_creds(creds_reply(&api, &base, "short").await, "creds C");
    let names = [&a, &b, &c].map(|x| x.username.clone()).to_vec();
    let before = blocking(|| present(&pg, &names));
    assert_eq!(
        before.len(),
        3,
        "users missing in pg_roles: {names:?} vs {before:?}"
    );
    // The pool now holds an idle connection to the PostgreSQL about to go.
    blocking(|| pg.stop());
    let t_down = Instant::now();
    chaos!(
        "database: PostgreSQL stopped (immediate) with users A, B (1 h) and C ({} s, due in {})",
        c.lease_duration,
        secs((c.at + Duration::from_secs(c.lease_duration)).saturating_duration_since(t_down))
    );

    // While it is down.
    let r = creds_reply(&api, &base, "long").await;
    chaos!("database: creds while PostgreSQL is down: {}", r.describe());
    assert!(
        !r.ok(),
        "creds answered while the database is down: {}",
        r.describe()
    );
    let r = api
        .put(
            &format!("{base}/v1/sys/leases/revoke"),
            &json!({ "lease_id": a.lease_id }),
        )
        .await;
    chaos!(
        "database: sync sys/leases/revoke of A while PostgreSQL is down: {}",
        r.describe()
    );
    assert!(
        !r.ok(),
        "a synchronous revoke succeeded while the database is down: {}",
        r.describe()
    );
    let l = lookup(&api, &base, &a.lease_id).await;
    assert!(
        l.ok(),
        "lease A gone after its revocation failed: {}",
        l.describe()
    );
    let r = api
        .put(
            &format!("{base}/v1/sys/leases/revoke"),
            &json!({ "lease_id": b.lease_id, "sync": false }),
        )
        .await;
    chaos!(
        "database: sys/leases/revoke sync=false of B while PostgreSQL is down: {}",
        r.describe()
    );
    assert!(r.ok(), "revoke sync=false of B: {}", r.describe());

    // Stay down until C is due and both B and C failed at least once
    // (their next attempts come 10 s later, doubling).
    let c_due = c.at + Duration::from_secs(c.lease_duration + 1);
    let down_until = (t_down + Duration::from_secs(12)).max(c_due + Duration::from_secs(3));
    tokio::time::sleep(down_until.saturating_duration_since(Instant::now())).await;
    for (n, x) in [("A", &a), ("B", &b), ("C", &c)] {
        let l = lookup(&api, &base, &x.lease_id).await;
        chaos!(
            "database: lease {n} while PostgreSQL is down ({} s): {}; failed attempts logged: {}",
            t_down.elapsed().as_secs(),
            if l.ok() { "still listed" } else { "gone" },
            failed_attempts(&cluster, 0, &x.lease_id)
        );
        assert!(
            l.ok(),
            "lease {n} deleted while its database was down: {}",
            l.describe()
        );
    }

    blocking(|| pg.start_again());
    let t_up = Instant::now();
    chaos!(
        "database: PostgreSQL back on port {} after {}",
        pg.port,
        secs(t_up - t_down)
    );

    // The pool reconnects: creds work again.
    let deadline = t_up + Duration::from_secs(10);
    let mut failures = Vec::new();
    let fresh = loop {
        let r = creds_reply(&api, &base, "long").await;
        if let Some(x) = r.ok().then(|| parse_creds(&r)).flatten() {
            break x;
        }
        failures.push(r.describe());
        if Instant::now() > deadline {
            cluster.dump_logs(60);
            panic!(
                "creds still failing 10 s after PostgreSQL came back ({} failures, last {:?})",
                failures.len(),
                failures.last()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    chaos!(
        "database: creds after the restart: ok {} after it, {} failed attempt(s) before{}",
        secs(t_up.elapsed()),
        failures.len(),
        failures
            .first()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default()
    );
    let login = blocking(|| pg.psql_as(&fresh.username, &fresh.password, "SELECT 1"));
    assert!(login.ok, "login as {}: {}", fresh.username, login.text());

    // B and C are dropped by a retry.
    let retried = [b.username.clone(), c.username.clone()];
    let deadline = t_up + Duration::from_secs(120);
    let mut dropped_at = Vec::new();
    loop {
        let left = blocking(|| present(&pg, &retried));
        for n in &retried {
            if !left.contains(n) && !dropped_at.iter().any(|(m, _)| m == n) {
                dropped_at.push((n.clone(), t_up.elapsed()));
            }
        }
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            cluster.dump_logs(80);
            panic!("users still in pg_roles 120 s after PostgreSQL came back: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = |n: &str| {
        dropped_at
            .iter()
            .find(|(m, _)| m == n)
            .map(|(_, d)| secs(*d))
            .unwrap_or_default()
    };
    chaos!(
        "database: B (revoked sync=false while down) dropped {} after PostgreSQL came back ({} failed attempts logged); C (expired while down) {} after ({} failed attempts logged)",
        after(&b.username),
        failed_attempts(&cluster, 0, &b.lease_id),
        after(&c.username),
        failed_attempts(&cluster, 0, &c.lease_id)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    for (n, x) in [("B", &b), ("C", &c)] {
        loop {
            let l = lookup(&api, &base, &x.lease_id).await;
            if !l.ok() {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "lease {n} still there after its user was dropped: {}",
                    l.describe()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // A: its failed synchronous revoke was not retried by the server (its
    // lease is due in an hour); the client revokes it again.
    let a_left = blocking(|| present(&pg, std::slice::from_ref(&a.username)));
    chaos!(
        "database: A (sync revoke failed while down) {} once B and C were dropped",
        if a_left.is_empty() {
            "was dropped by the server too"
        } else {
            "still exists: not retried (the lease keeps its expiry)"
        }
    );
    let r = api
        .put(
            &format!("{base}/v1/sys/leases/revoke"),
            &json!({ "lease_id": a.lease_id }),
        )
        .await;
    if a_left.is_empty() {
        chaos!("database: revoke of A again: {}", r.describe());
    } else {
        ok(r, "sync revoke of A after the restart");
        let left = blocking(|| present(&pg, std::slice::from_ref(&a.username)));
        assert!(
            left.is_empty(),
            "A still in pg_roles after its revoke answered 2xx"
        );
    }
    ok(
        api.put(
            &format!("{base}/v1/sys/leases/revoke"),
            &json!({ "lease_id": fresh.lease_id }),
        )
        .await,
        "revoke of the user made after the restart",
    );
    let left = blocking(|| present(&pg, std::slice::from_ref(&fresh.username)));
    assert!(
        left.is_empty(),
        "{} still in pg_roles after its revoke",
        fresh.username
    );
}
