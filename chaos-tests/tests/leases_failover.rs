//! Leases and tokens outlive a leader kill: on a 3-node cluster, a PKI role
//! with `generate_lease` issues certificates whose lease lasts 5 s, and
//! tokens are created with a 5 s TTL; the leader is killed with kill -9
//! right away. The new leader's expiration manager must revoke every one of
//! them: the certificates show up revoked on every survivor, the tokens
//! are gone from `auth/token/accessors`. Figures: how long past its TTL
//! each was revoked (the manager ticks every second; 60 s is the only
//! bound asserted).

use std::time::{Duration, Instant};

use arca_chaos::{chaos, secs, serial, Cluster};
use serde_json::json;

const TTL: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_and_tokens_are_revoked_by_the_new_leader() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let api = cluster.api();
    let leader = cluster.leader().await.expect("a leader");
    let base = cluster.base(leader);
    let ok = |r: arca_chaos::Reply, what: &str| {
        assert!(r.ok(), "{what}: {}", r.describe());
        r
    };
    ok(
        api.post(
            &format!("{base}/v1/sys/mounts/pki"),
            &json!({"type": "pki"}),
        )
        .await,
        "enable pki",
    );
    ok(
        api.post(
            &format!("{base}/v1/pki/root/generate/internal"),
            &json!({"common_name": "Chaos Root", "key_type": "ec", "ttl": "87600h"}),
        )
        .await,
        "root",
    );
    ok(
        api.post(
            &format!("{base}/v1/pki/roles/short"),
            &json!({"allow_any_name": true, "key_type": "ec", "generate_lease": true, "ttl": format!("{TTL}s")}),
        )
        .await,
        "role",
    );
    let mut serials = Vec::new();
    let mut accessors = Vec::new();
    let t_issue = Instant::now();
    for i in 0..5 {
        let r = ok(
            api.post(
                &format!("{base}/v1/pki/issue/short"),
                &json!({"common_name": format!("c{i}.example")}),
            )
            .await,
            "issue",
        );
        assert!(
            r.body["lease_id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("pki/issue/short/"),
            "{}",
            r.describe()
        );
        serials.push(
            r.body["data"]["serial_number"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let t = ok(
            api.post(
                &format!("{base}/v1/auth/token/create"),
                &json!({"ttl": format!("{TTL}s"), "policies": ["default"]}),
            )
            .await,
            "token",
        );
        accessors.push(t.body["auth"]["accessor"].as_str().unwrap().to_string());
    }
    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    chaos!(
        "leases: kill -9 of leader {} {} after the first lease",
        cluster.nodes[killed].name,
        secs(t_kill - t_issue)
    );
    let survivors: Vec<usize> = (0..cluster.nodes.len()).filter(|i| *i != killed).collect();

    // Every certificate revoked, seen on every survivor.
    let deadline = t_issue + Duration::from_secs(60);
    let mut certs_done = None;
    let mut tokens_done = None;
    while Instant::now() < deadline && (certs_done.is_none() || tokens_done.is_none()) {
        if certs_done.is_none() {
            let mut all = true;
            'outer: for &i in &survivors {
                for s in &serials {
                    let r = api.get(&cluster.url(i, &format!("/v1/pki/cert/{s}"))).await;
                    if r.body["data"]["revocation_time"].as_i64().unwrap_or(0) == 0 {
                        all = false;
                        break 'outer;
                    }
                }
            }
            if all {
                certs_done = Some(t_issue.elapsed());
            }
        }
        if tokens_done.is_none() && cluster.accessors_gone(&api, &survivors, &accessors).await {
            tokens_done = Some(t_issue.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(certs) = certs_done else {
        cluster.dump_logs(60);
        panic!("leased certificates not revoked on every survivor 60 s after issue");
    };
    let Some(tokens) = tokens_done else {
        cluster.dump_logs(60);
        panic!("5 s tokens still listed on a survivor 60 s after creation");
    };
    let ttl = Duration::from_secs(TTL);
    chaos!(
        "leases: certificates revoked {} after issue ({} past their {TTL} s TTL), tokens gone {} after creation ({} past), leader killed at {}",
        secs(certs),
        secs(certs.saturating_sub(ttl)),
        secs(tokens),
        secs(tokens.saturating_sub(ttl)),
        secs(t_kill - t_issue)
    );
}
