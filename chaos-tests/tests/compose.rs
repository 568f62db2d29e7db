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

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use arca_chaos::{arca_bin, chaos, secs};
use serde_json::Value;

const PROJECT: &str = "arcachaos";
const PORTS: [u16; 3] = [18201, 18202, 18203];
const LB: u16 = 18200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {desc}: {e} (docker, docker-compose and bao are needed)")
    });
    out
}

fn compose(args: &[&str]) -> Output {
    run(Command::new("docker-compose")
        .arg("-p")
        .arg(PROJECT)
        .arg("-f")
        .arg(repo().join("deploy/compose/docker-compose.yml"))
        .args(args))
}

fn bao(port: u16, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into()));
    c.env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env("BAO_CLIENT_TIMEOUT", "20s")
        .args(args);
    if let Some(t) = token {
        c.env("BAO_TOKEN", t);
    }
    run(&mut c)
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn health(port: u16) -> u16 {
    let out = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "2",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}/v1/sys/health"),
    ]));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > timeout {
            let logs = compose(&["logs", "--tail", "30"]);
            panic!(
                "timed out waiting for {what}; logs:\n{}",
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

struct Down;
impl Drop for Down {
    fn drop(&mut self) {
        let _ = compose(&["down", "-v", "--timeout", "2"]);
    }
}

#[test]
fn compose_cluster_survives_docker_kill_of_the_leader() {
    // The image holds the binary this test run built.
    let bin = arca_bin().expect("arca binary");
    let target = bin.parent().and_then(Path::parent).expect("target dir");
    let t0 = Instant::now();
    ok(
        run(Command::new("bash")
            .arg(repo().join("deploy/build-image.sh"))
            .env("CARGO_TARGET_DIR", target)),
        "deploy/build-image.sh",
    );
    ok(
        run(Command::new("bash").arg(repo().join("deploy/build-lb-image.sh"))),
        "deploy/build-lb-image.sh",
    );
    chaos!(
        "compose: images arca:local and arca-lb:local built in {}",
        secs(t0.elapsed())
    );
    let _ = compose(&["down", "-v", "--timeout", "2"]);
    let _down = Down;
    ok(compose(&["up", "-d"]), "docker-compose up");
    for p in PORTS {
        wait("the nodes to answer", Duration::from_secs(60), || {
            health(p) == 501
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
        .find(|i| health(PORTS[*i]) == 200)
        .expect("an active node");
    let container = format!("{PROJECT}_arca{}_1", leader + 1);
    ok(
        run(Command::new("docker").args(["kill", &container])),
        "docker kill",
    );
    let survivors: Vec<u16> = (0..3).filter(|i| *i != leader).map(|i| PORTS[i]).collect();
    let mut n = 0;
    let gap = wait(
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
    let lb_gap = wait(
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
