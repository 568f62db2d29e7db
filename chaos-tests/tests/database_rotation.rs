//! Static-role rotation across a leader failover, against a real PostgreSQL
//! (`arca_testdb::postgres`) that logs every DDL statement, so the test sees
//! each password Arca ever set:
//!
//! A 3-node cluster, a static role for an existing user `app` with a
//! [`PERIOD`] rotation period (its creation sets password p0). The leader
//! is killed before the first rotation is due, so the rotation falls due
//! during or just after the election. The new leader must rotate once:
//! when a new password p1 shows in `static-creds`, PostgreSQL has seen
//! exactly the passwords {p0, p1} (no rotation lost, none doubled by two
//! leaders or by a retried change), p1 logs in and p0 does not, and every
//! node serves p1. Figures: the time from due to rotated. The only bounds
//! asserted are generous ones (the periodic tick is 10 s by default).
//!
//! Figures are `chaos: ...` lines (`--nocapture`).

use std::time::{Duration, Instant};

use arca_chaos::{chaos, secs, serial, Api, Cluster};
use arca_testdb::postgres::Postgres;
use serde_json::json;

/// The static role's rotation period.
const PERIOD: u64 = 20;
/// How long after it is due the rotation must have happened.
const ROTATE_BOUND: Duration = Duration::from_secs(90);

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Every password PostgreSQL was told for `app`, in order, from its
/// statement log (`ALTER ROLE "app" WITH PASSWORD '...'`).
fn passwords_set(pg: &Postgres) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in pg.log().lines() {
        let Some(at) = line.find(r#"ALTER ROLE "app" WITH PASSWORD '"#) else {
            continue;
        };
        let rest = &line[at + r#"ALTER ROLE "app" WITH PASSWORD '"#.len()..];
        if let Some(end) = rest.find('\'') {
            let p = rest[..end].to_string();
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
    }
    out
}

async fn static_password(api: &Api, base: &str) -> Option<(String, String)> {
    let r = api
        .get(&format!("{base}/v1/database/static-creds/app"))
        .await;
    if !r.ok() {
        return None;
    }
    Some((
        r.body["data"]["password"].as_str()?.to_string(),
        r.body["data"]["last_vault_rotation"].as_str()?.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_due_during_an_election_happens_once_after_it() {
    let _serial = serial().await;
    let pg = blocking(Postgres::start);
    blocking(|| {
        pg.psql("CREATE ROLE app LOGIN PASSWORD 'initial';");
        pg.psql("ALTER SYSTEM SET log_statement = 'ddl'; ");
        pg.psql("SELECT pg_reload_conf();");
    });
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let api = cluster.api();
    let leader = cluster.leader().await.expect("a leader");
    let lbase = cluster.base(leader);
    let slow = api.with_timeout(arca_chaos::SLOW_CALL_TIMEOUT);
    for (path, body) in [
        ("sys/mounts/database", json!({"type": "database"})),
        (
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.connection_url_template(),
                "username": pg.superuser,
                "password": pg.password,
                "allowed_roles": "*",
            }),
        ),
        (
            "database/static-roles/app",
            json!({"db_name": "pg", "username": "app", "rotation_period": format!("{PERIOD}s")}),
        ),
    ] {
        let r = slow.post(&format!("{lbase}/v1/{path}"), &body).await;
        assert!(r.ok(), "{path}: {}", r.describe());
    }
    let created = Instant::now();
    let (p0, _) = static_password(&api, &lbase)
        .await
        .expect("static-creds after creation");
    assert_eq!(blocking(|| passwords_set(&pg)), vec![p0.clone()]);

    // Kill the leader a few seconds before the rotation is due.
    tokio::time::sleep(Duration::from_secs(PERIOD - 6)).await;
    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    let new_leader = cluster
        .wait_for_leader(arca_chaos::START_TIMEOUT, Some(killed))
        .await
        .expect("a new leader");
    chaos!(
        "leader node{} killed {} after creation; node{} leads after {}",
        killed + 1,
        secs(t_kill - created),
        new_leader + 1,
        secs(t_kill.elapsed())
    );
    let nbase = cluster.base(new_leader);
    let due = created + Duration::from_secs(PERIOD);
    let p1 = loop {
        if let Some((p, _)) = static_password(&api, &nbase).await {
            if p != p0 {
                break p;
            }
        }
        assert!(
            due.elapsed() < ROTATE_BOUND || Instant::now() < due,
            "no rotation {} after it was due",
            secs(ROTATE_BOUND)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Due times are whole unix seconds: "before" is within a second.
    let now = Instant::now();
    chaos!(
        "rotated by the new leader {} {} due",
        secs(if now > due { now - due } else { due - now }),
        if now > due { "after" } else { "before" }
    );
    // The next rotation is PERIOD after this one: the log now holds exactly
    // the creation's password and this rotation's.
    let set = blocking(|| passwords_set(&pg));
    assert_eq!(
        set,
        vec![p0.clone(), p1.clone()],
        "PostgreSQL saw other password changes than one rotation"
    );
    assert!(blocking(|| pg.psql_as("app", &p1, "SELECT 1").ok));
    assert!(!blocking(|| pg.psql_as("app", &p0, "SELECT 1").ok));
    // Every surviving node serves the rotated password.
    for i in (0..cluster.nodes.len()).filter(|&i| i != killed) {
        let base = cluster.base(i);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match static_password(&api, &base).await {
                Some((p, _)) if p == p1 => break,
                other => assert!(
                    Instant::now() < deadline,
                    "node{} serves {other:?}, not the rotated password",
                    i + 1
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
