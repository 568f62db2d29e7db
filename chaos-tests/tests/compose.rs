//! The docker-compose deployment (deploy/compose): builds the `arca:local`
//! image from scratch (deploy/build-image.sh), brings up the three nodes,
//! runs the unseal ceremony with the real `bao` CLI (init on arca1, unseal
//! every node; arca2 and arca3 join through `retry_join`), writes secrets,
//! `docker kill`s the leader, and reads and writes through the survivors,
//! directly and through the HAProxy load balancer (deploy/build-lb-image.sh),
//! which health-checks the nodes with `sys/health`.
//!
//! Needs Docker with docker-compose (no image is pulled) and `bao`; it
//! fails, with a hint, when either is missing.

use std::process::Command;
use std::time::{Duration, Instant};

use arca_chaos::compose::{bao, build_images, health, ok, run, Project};
use arca_chaos::{arca_bin, chaos, secs};
use serde_json::Value;

const PORTS: [u16; 3] = [18201, 18202, 18203];
const LB: u16 = 18200;

fn project() -> Project {
    Project {
        name: "arcachaos",
        file: "deploy/compose/docker-compose.yml",
        env: Vec::new(),
    }
}

#[test]
fn compose_cluster_survives_docker_kill_of_the_leader() {
    // The image holds the binary this test run built.
    let t0 = Instant::now();
    build_images(&arca_bin().expect("arca binary"));
    chaos!(
        "compose: images arca:local and arca-lb:local built in {}",
        secs(t0.elapsed())
    );
    let compose = project();
    let _down = compose.down_on_drop();
    ok(compose.cmd(&["up", "-d"]), "docker-compose up");
    for p in PORTS {
        compose.wait("the nodes to answer", Duration::from_secs(60), || {
            health(p, "") == 501
        });
    }

    // The ceremony, as docs/cluster.md describes it.
    let init: Value = serde_json::from_str(&ok(
        bao(
            PORTS[0],
            None,
            &[
                "operator",
                "init",
                "-key-shares=3",
                "-key-threshold=2",
                "-format=json",
            ],
        ),
        "bao operator init",
    ))
    .unwrap();
    let keys: Vec<String> = init["unseal_keys_b64"].as_array().unwrap()[..2]
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    for p in PORTS {
        for k in &keys {
            ok(
                bao(p, None, &["operator", "unseal", k]),
                "bao operator unseal",
            );
        }
        let st = ok(bao(p, None, &["status", "-format=json"]), "bao status");
        let st: Value = serde_json::from_str(&st).unwrap();
        assert_eq!(st["sealed"], false, "{st}");
    }
    chaos!(
        "compose: initialised and unsealed 3 nodes in {}",
        secs(t0.elapsed())
    );
    let peers = ok(
        bao(PORTS[1], Some(&root), &["operator", "raft", "list-peers"]),
        "list-peers",
    );
    for n in ["node1", "node2", "node3"] {
        assert!(peers.contains(n), "{peers}");
    }

    ok(
        bao(
            PORTS[2],
            Some(&root),
            &["secrets", "enable", "-path=secret", "-version=2", "kv"],
        ),
        "secrets enable",
    );
    for i in 0..20 {
        // Through the load balancer and every node.
        let p = [LB, PORTS[0], PORTS[1], PORTS[2]][i % 4];
        ok(
            bao(
                p,
                Some(&root),
                &["kv", "put", &format!("secret/s{i}"), &format!("v={i}")],
            ),
            "kv put",
        );
    }

    // docker kill the leader; the survivors take over.
    let leader = (0..3)
        .find(|i| health(PORTS[*i], "") == 200)
        .expect("an active node");
    let container = format!("{}_arca{}_1", compose.name, leader + 1);
    ok(
        run(Command::new("docker").args(["kill", &container])),
        "docker kill",
    );
    let survivors: Vec<u16> = (0..3).filter(|i| *i != leader).map(|i| PORTS[i]).collect();
    let mut n = 0;
    let gap = compose.wait(
        "a write through the survivors",
        Duration::from_secs(30),
        || {
            n += 1;
            bao(
                survivors[n % 2],
                Some(&root),
                &["kv", "put", "secret/after-kill", "ok=yes"],
            )
            .status
            .success()
        },
    );
    chaos!(
        "compose: docker kill of arca{}; first write through the survivors after {}",
        leader + 1,
        secs(gap)
    );
    for p in &survivors {
        for i in 0..20 {
            let v = ok(
                bao(
                    *p,
                    Some(&root),
                    &["kv", "get", "-field=v", &format!("secret/s{i}")],
                ),
                "kv get",
            );
            assert_eq!(v.trim(), i.to_string());
        }
        let v = ok(
            bao(
                *p,
                Some(&root),
                &["kv", "get", "-field=ok", "secret/after-kill"],
            ),
            "kv get",
        );
        assert_eq!(v.trim(), "yes");
    }
    chaos!("compose: all 21 secrets read through both survivors");
    // The load balancer stops sending to the dead node after its checks
    // fail: reads and writes through it keep working.
    let lb_gap = compose.wait(
        "writes through the load balancer",
        Duration::from_secs(30),
        || {
            bao(LB, Some(&root), &["kv", "put", "secret/via-lb", "ok=yes"])
                .status
                .success()
        },
    );
    for _ in 0..10 {
        let v = ok(
            bao(LB, Some(&root), &["kv", "get", "-field=v", "secret/s7"]),
            "kv get via lb",
        );
        assert_eq!(v.trim(), "7");
    }
    chaos!(
        "compose: load balancer serves reads and writes after the kill (first write {} after checking)",
        secs(lb_gap)
    );
}
