//! Login tokens outlive a leader kill only until their TTL: on a 3-node
//! cluster, userpass and approle logins (some sent to a standby, which
//! forwards them) create tokens with a 5 s TTL; the leader is killed with
//! kill -9 right away. After the TTL every survivor must refuse every one
//! of those tokens and list none of them (the new leader's expiration
//! manager revoked them). A secret id with one use, spent through a
//! standby, is refused on every node afterwards, and five wrong passwords
//! spread over the nodes lock the user everywhere. Figures: how long past
//! the TTL the last token was gone (60 s is the only bound asserted).

use std::time::{Duration, Instant};

use arca_chaos::{chaos, secs, serial, Cluster};
use serde_json::json;

const TTL: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_tokens_expire_under_the_new_leader() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let api = cluster.api();
    let anon = cluster.anon();
    let leader = cluster.leader().await.expect("a leader");
    let base = cluster.base(leader);
    let standby = (0..cluster.nodes.len()).find(|i| *i != leader).unwrap();
    let ok = |r: arca_chaos::Reply, what: &str| {
        assert!(r.ok(), "{what}: {}", r.describe());
        r
    };
    for (path, kind) in [("userpass", "userpass"), ("approle", "approle")] {
        ok(
            api.post(
                &format!("{base}/v1/sys/auth/{path}"),
                &json!({ "type": kind }),
            )
            .await,
            "enable auth",
        );
    }
    ok(
        api.post(
            &format!("{base}/v1/auth/userpass/users/chaos"),
            &json!({"password": "pw", "token_ttl": format!("{TTL}s"), "token_max_ttl": "1h"}),
        )
        .await,
        "user",
    );
    ok(
        api.post(
            &format!("{base}/v1/auth/approle/role/chaos"),
            &json!({"token_ttl": format!("{TTL}s"), "token_max_ttl": "1h"}),
        )
        .await,
        "role",
    );
    let role_id = ok(
        api.get(&format!("{base}/v1/auth/approle/role/chaos/role-id"))
            .await,
        "role-id",
    )
    .body["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = ok(
        api.post(
            &format!("{base}/v1/auth/approle/role/chaos/secret-id"),
            &json!({}),
        )
        .await,
        "secret-id",
    )
    .body["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let single_use = ok(
        api.post(
            &format!("{base}/v1/auth/approle/role/chaos/secret-id"),
            &json!({"num_uses": 1}),
        )
        .await,
        "single-use secret-id",
    )
    .body["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Logins through the leader and through a standby.
    let t_login = Instant::now();
    let mut tokens = Vec::new();
    for node in [leader, standby, leader, standby] {
        let u = ok(
            anon.post(
                &cluster.url(node, "/v1/auth/userpass/login/chaos"),
                &json!({"password": "pw"}),
            )
            .await,
            "userpass login",
        );
        let a = ok(
            anon.post(
                &cluster.url(node, "/v1/auth/approle/login"),
                &json!({"role_id": role_id, "secret_id": secret_id}),
            )
            .await,
            "approle login",
        );
        for r in [u, a] {
            assert_eq!(r.body["auth"]["lease_duration"], TTL, "{}", r.describe());
            tokens.push((
                r.body["auth"]["client_token"].as_str().unwrap().to_string(),
                r.body["auth"]["accessor"].as_str().unwrap().to_string(),
            ));
        }
    }
    // The single use, spent through a standby: no node takes it again.
    ok(
        anon.post(
            &cluster.url(standby, "/v1/auth/approle/login"),
            &json!({"role_id": role_id, "secret_id": single_use}),
        )
        .await,
        "single-use login",
    );
    for i in 0..cluster.nodes.len() {
        let r = anon
            .post(
                &cluster.url(i, "/v1/auth/approle/login"),
                &json!({"role_id": role_id, "secret_id": single_use}),
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "a spent secret id on node {i}: {}",
            r.describe()
        );
    }

    // User lockout counts failures wherever they land: five wrong
    // passwords spread over the nodes lock the user on every node.
    ok(
        api.post(
            &format!("{base}/v1/auth/userpass/users/victim"),
            &json!({"password": "right"}),
        )
        .await,
        "victim",
    );
    for i in 0..5 {
        let node = [standby, leader][i % 2];
        let r = anon
            .post(
                &cluster.url(node, "/v1/auth/userpass/login/victim"),
                &json!({"password": "wrong"}),
            )
            .await;
        assert_eq!(r.status, 400, "wrong password {i}: {}", r.describe());
    }
    for i in 0..cluster.nodes.len() {
        let r = anon
            .post(
                &cluster.url(i, "/v1/auth/userpass/login/victim"),
                &json!({"password": "right"}),
            )
            .await;
        assert_eq!(r.status, 403, "a locked user on node {i}: {}", r.describe());
    }

    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    chaos!(
        "logins: kill -9 of leader {} {} after the first login",
        cluster.nodes[killed].name,
        secs(t_kill - t_login)
    );
    let survivors: Vec<usize> = (0..cluster.nodes.len()).filter(|i| *i != killed).collect();

    let deadline = t_login + Duration::from_secs(60);
    let accessors: Vec<String> = tokens.iter().map(|(_, a)| a.clone()).collect();
    let mut done = None;
    while Instant::now() < deadline && done.is_none() {
        let mut all = cluster.accessors_gone(&api, &survivors, &accessors).await;
        'nodes: for &i in &survivors {
            for (t, _) in &tokens {
                if !all {
                    break 'nodes;
                }
                let r = api
                    .with_token(t)
                    .get(&cluster.url(i, "/v1/auth/token/lookup-self"))
                    .await;
                all = r.status == 403;
            }
        }
        if all {
            done = Some(t_login.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(gone) = done else {
        cluster.dump_logs(60);
        panic!("{TTL} s login tokens still usable or listed on a survivor 60 s after login");
    };
    assert!(
        gone >= Duration::from_secs(TTL),
        "a token was refused before its TTL ended ({})",
        secs(gone)
    );
    chaos!(
        "logins: {} userpass and approle tokens refused and gone on every survivor {} after login ({} past their {TTL} s TTL), leader killed at {}",
        tokens.len(),
        secs(gone),
        secs(gone.saturating_sub(Duration::from_secs(TTL))),
        secs(t_kill - t_login)
    );
}
