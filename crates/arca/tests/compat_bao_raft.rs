//! Compatibility: three real `arca server` processes with raft storage,
//! driven by the real OpenBao CLI the way an operator builds a cluster:
//! init and unseal the first node, `operator raft join` and unseal the
//! others, then `list-peers`, `status` on active and standby nodes, KV
//! writes through a standby, leases (`lease lookup/renew/revoke -prefix`)
//! on standbys, `snapshot save`/`restore`, `step-down` and
//! `remove-peer`. Also the load-balancer view of `sys/health`.

mod common;

use std::time::Duration;

use common::{wait_until, Bao, Server};
use serde_json::Value;

fn unseal(bao: &Bao, keys: &[String]) -> Value {
    let mut last = Value::Null;
    for k in keys {
        last = bao.json(&["operator", "unseal", "-format=json", k]);
    }
    last
}

fn status(bao: &Bao) -> Value {
    // Exit 0 when unsealed; the JSON merges seal-status and sys/leader.
    bao.run(&["status", "-format=json"]).ok().json()
}

fn health(s: &Server) -> u16 {
    s.http("GET", "/v1/sys/health", None, None).0
}

#[test]
fn bao_cli_builds_and_operates_a_three_node_cluster() {
    let nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| Server::start_raft(n))
        .collect();
    let bao: Vec<Bao> = nodes.iter().map(|s| s.bao()).collect();

    // --- init and unseal the first node
    let v = bao[0].json(&[
        "operator",
        "init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let keys: Vec<String> = v["unseal_keys_b64"].as_array().unwrap()[..2]
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root_token = v["root_token"].as_str().unwrap().to_string();
    let st = unseal(&bao[0], &keys);
    assert_eq!(st["sealed"], false, "{st}");
    nodes[0].wait_active();
    let root: Vec<Bao> = bao.iter().map(|b| b.with_token(&root_token)).collect();
    let st = status(&root[0]);
    assert_eq!(st["ha_enabled"], true, "{st}");
    assert_eq!(st["is_self"], true, "{st}");
    assert_eq!(st["storage_type"], "raft", "{st}");
    assert!(st["raft_committed_index"].as_u64().unwrap() > 0, "{st}");

    // --- join the others with `operator raft join`, then unseal them
    let out = bao[1]
        .run(&["operator", "raft", "join", &nodes[0].addr])
        .ok();
    assert!(
        out.stdout.contains("Joined") && out.stdout.contains("true"),
        "{}",
        out.describe()
    );
    // Joined but not unsealed: initialized, sealed, the cluster's t/n.
    let st = bao[1].run(&["status", "-format=json"]).code(2).json();
    assert_eq!(st["initialized"], true, "{st}");
    assert_eq!(st["sealed"], true, "{st}");
    assert_eq!(st["t"], 2, "{st}");
    assert_eq!(st["n"], 3, "{st}");
    let st = unseal(&bao[1], &keys);
    assert_eq!(st["sealed"], false, "{st}");
    let j = bao[2].json(&["operator", "raft", "join", "-format=json", &nodes[0].addr]);
    assert_eq!(j["joined"], true, "{j}");
    // A wrong share set cannot join: the challenge does not open.
    let st = unseal(&bao[2], &keys);
    assert_eq!(st["sealed"], false, "{st}");

    // --- list-peers on the active node and on a standby
    for b in [&root[0], &root[2]] {
        let out = b.run(&["operator", "raft", "list-peers"]).ok();
        for n in ["n1", "n2", "n3"] {
            assert!(out.stdout.contains(n), "{}", out.describe());
        }
        assert_eq!(
            out.stdout.matches("leader").count(),
            1,
            "{}",
            out.describe()
        );
        assert_eq!(
            out.stdout.matches("follower").count(),
            2,
            "{}",
            out.describe()
        );
    }
    let cfg = root[1].json(&["read", "-format=json", "sys/storage/raft/configuration"]);
    let servers = cfg["data"]["config"]["servers"].as_array().unwrap().clone();
    assert_eq!(servers.len(), 3, "{cfg}");
    assert!(servers
        .iter()
        .all(|s| s["voter"] == true && s["protocol_version"] == "3"));

    // --- status and health on a standby
    let st = status(&root[1]);
    assert_ne!(st["is_self"], true, "{st}");
    assert_eq!(st["leader_address"], nodes[0].addr, "{st}");
    let out = root[1].run(&["status"]).ok();
    assert!(out.stdout.contains("standby"), "{}", out.describe());
    assert_eq!(health(&nodes[0]), 200);
    assert_eq!(health(&nodes[1]), 429);
    assert_eq!(
        nodes[1]
            .http("GET", "/v1/sys/health?standbyok=true", None, None)
            .0,
        200
    );

    // --- KV through standbys: enable on n3, write on n2, read on n3 and n1
    root[2]
        .run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    root[1]
        .run(&["kv", "put", "secret/app", "password=one"])
        .ok();
    for b in &root {
        let v = b.json(&["kv", "get", "-format=json", "secret/app"]);
        assert_eq!(v["data"]["data"]["password"], "one", "{v}");
    }

    // --- leases through standbys: a PKI role with generate_lease; issue,
    // look up, renew (refused: certificates are not renewable) and revoke
    // by prefix on standbys (forwarded to the active node)
    root[2].run(&["secrets", "enable", "pki"]).ok();
    root[1]
        .run(&[
            "write",
            "pki/root/generate/internal",
            "common_name=example.com",
            "key_type=ec",
        ])
        .ok();
    root[2]
        .run(&[
            "write",
            "pki/roles/web",
            "allowed_domains=example.com",
            "allow_subdomains=true",
            "key_type=ec",
            "generate_lease=true",
        ])
        .ok();
    let v = root[1].json(&[
        "write",
        "-format=json",
        "pki/issue/web",
        "common_name=a.example.com",
    ]);
    let lease = v["lease_id"].as_str().unwrap().to_string();
    let serial = v["data"]["serial_number"].as_str().unwrap().to_string();
    assert!(lease.starts_with("pki/issue/web/"), "{v}");
    let l = root[2].json(&["lease", "lookup", "-format=json", &lease]);
    assert_eq!(l["data"]["id"], lease.as_str(), "{l}");
    root[1]
        .run(&["lease", "renew", &lease])
        .api_error(400, "not renewable");
    root[2]
        .run(&["lease", "revoke", "-prefix", "pki/issue/web"])
        .ok();
    let c = root[0].json(&["read", "-format=json", &format!("pki/cert/{serial}")]);
    assert!(
        c["data"]["revocation_time"].as_i64().unwrap() > 0,
        "revoking the lease on a standby revoked the certificate: {c}"
    );
    root[1].run(&["lease", "lookup", &lease]).code(2);

    // --- snapshot save on a standby, change data, restore on the leader
    let snap = nodes[1].work_dir().join("cluster.snap");
    let snap_s = snap.to_str().unwrap();
    root[1]
        .run(&["operator", "raft", "snapshot", "save", snap_s])
        .ok();
    let bytes = std::fs::read(&snap).unwrap();
    assert!(
        bytes.len() > 100 && bytes[..2] == [0x1f, 0x8b],
        "a gzip archive"
    );
    root[0]
        .run(&["kv", "put", "secret/app", "password=two"])
        .ok();
    root[0].run(&["kv", "put", "secret/later", "x=1"]).ok();
    root[0]
        .run(&["operator", "raft", "snapshot", "restore", snap_s])
        .ok();
    for b in &root {
        let v = b.json(&["kv", "get", "-format=json", "secret/app"]);
        assert_eq!(
            v["data"]["data"]["password"], "one",
            "restored on every node: {v}"
        );
        b.run(&["kv", "get", "secret/later"]).code(2);
    }
    // A corrupted archive is refused and changes nothing.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let bad_path = nodes[0].work_dir().join("bad.snap");
    std::fs::write(&bad_path, &bad).unwrap();
    let out = root[0].run(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        bad_path.to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{}", out.describe());
    let v = root[2].json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "one", "{v}");

    // --- step-down: leadership moves to another node
    let out = root[0].run(&["operator", "step-down"]).ok();
    assert!(
        out.stdout.contains("Success! Stepped down"),
        "{}",
        out.describe()
    );
    wait_until("a new active node", Duration::from_secs(15), || {
        health(&nodes[1]) == 200 || health(&nodes[2]) == 200
    });
    assert_eq!(health(&nodes[0]), 429);
    root[0]
        .run(&["kv", "put", "secret/after-step-down", "ok=yes"])
        .ok();

    // --- remove-peer through whichever node is asked
    let out = root[0].run(&["operator", "raft", "remove-peer", "n3"]).ok();
    assert!(
        out.stdout.contains("Peer removed successfully!"),
        "{}",
        out.describe()
    );
    let out = root[1].run(&["operator", "raft", "list-peers"]).ok();
    assert!(!out.stdout.contains("n3"), "{}", out.describe());
    let v = root[1].json(&["kv", "get", "-format=json", "secret/after-step-down"]);
    assert_eq!(v["data"]["data"]["ok"], "yes", "{v}");
}
