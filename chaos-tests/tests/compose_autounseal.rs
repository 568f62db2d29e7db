//! The auto-unseal compose deployment (deploy/compose-autounseal): its
//! `up.sh` brings up a key-service Arca, makes the transit key and the
//! seal's token, starts three transit-sealed raft nodes and initialises
//! the cluster with recovery keys; the nodes join and unseal with nobody
//! entering a share. Then every node is `docker kill`ed and started again:
//! the cluster unseals itself and takes writes through the load balancer;
//! the time to the first acknowledged write is reported.
//!
//! Needs Docker with docker-compose (no image is pulled), curl and `bao`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use arca_chaos::compose::{bao, build_images, health, ok, repo, run, Project};
use arca_chaos::{arca_bin, chaos, secs};
use serde_json::Value;

const PORTS: [u16; 3] = [18201, 18202, 18203];
const LB: u16 = 18200;
const NAME: &str = "arcachaosau";

fn dir() -> PathBuf {
    repo().join("deploy/compose-autounseal")
}

/// The files `up.sh` writes (secrets, mode 600): removed before and after.
struct Secrets;
impl Secrets {
    fn clear() {
        for f in [
            "keys-init.json",
            "seal-token",
            "cluster-init.json",
            "autounseal.hcl",
        ] {
            let _ = std::fs::remove_file(dir().join(f));
        }
    }
}
impl Drop for Secrets {
    fn drop(&mut self) {
        Self::clear();
    }
}

fn project(token: &str) -> Project {
    Project {
        name: NAME,
        file: "deploy/compose-autounseal/docker-compose.yml",
        env: vec![("ARCA_SEAL_TOKEN".into(), token.into())],
    }
}

#[test]
fn compose_autounseal_cluster_restarts_unattended() {
    let t0 = Instant::now();
    build_images(&arca_bin().expect("arca binary"));
    chaos!("compose-autounseal: images built in {}", secs(t0.elapsed()));
    Secrets::clear();
    let _secrets = Secrets;
    let teardown = project("teardown");
    let _down = teardown.down_on_drop();

    let t0 = Instant::now();
    let bao_bin = std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into());
    ok(
        run(Command::new("bash")
            .arg(dir().join("up.sh"))
            .env("COMPOSE_PROJECT_NAME", NAME)
            .env("CLI", &bao_bin)
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")),
        "deploy/compose-autounseal/up.sh",
    );
    chaos!(
        "compose-autounseal: key service, seal token, 3 nodes initialised and unsealed by up.sh in {}",
        secs(t0.elapsed())
    );
    let token = std::fs::read_to_string(dir().join("seal-token")).unwrap();
    let compose = project(token.trim());
    let init: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cluster-init.json")).unwrap())
            .unwrap();
    assert_eq!(init["unseal_keys_b64"], serde_json::json!([]), "{init}");
    assert_eq!(init["recovery_keys_b64"].as_array().unwrap().len(), 5);
    let root = init["root_token"].as_str().unwrap().to_string();
    for p in PORTS {
        let st: Value =
            serde_json::from_str(&ok(bao(p, None, &["status", "-format=json"]), "bao status"))
                .unwrap();
        assert_eq!(st["type"], "transit", "{st}");
        assert_eq!(st["sealed"], false, "{st}");
    }
    ok(
        bao(LB, Some(&root), &["secrets", "enable", "-version=1", "kv"]),
        "secrets enable",
    );
    for i in 0..10 {
        ok(
            bao(
                LB,
                Some(&root),
                &["kv", "put", &format!("kv/s{i}"), &format!("v={i}")],
            ),
            "kv put",
        );
    }

    // Every node killed at once, then started: nobody enters anything.
    for n in 1..=3 {
        ok(
            run(Command::new("docker").args(["kill", &format!("{NAME}_arca{n}_1")])),
            "docker kill",
        );
    }
    let t0 = Instant::now();
    ok(
        compose.cmd(&["up", "-d", "arca1", "arca2", "arca3"]),
        "docker-compose up",
    );
    compose.wait(
        "a write through the load balancer",
        Duration::from_secs(120),
        || {
            bao(LB, Some(&root), &["kv", "put", "kv/after", "ok=yes"])
                .status
                .success()
        },
    );
    chaos!(
        "compose-autounseal: docker kill of all 3 nodes, first acknowledged write after start {}",
        secs(t0.elapsed())
    );
    for p in PORTS {
        compose.wait("every node unsealed", Duration::from_secs(60), || {
            health(p, "?standbyok=true") == 200
        });
        for i in 0..10 {
            let v = ok(
                bao(
                    p,
                    Some(&root),
                    &["kv", "get", "-field=v", &format!("kv/s{i}")],
                ),
                "kv get",
            );
            assert_eq!(v.trim(), i.to_string());
        }
    }
    chaos!("compose-autounseal: all secrets read on every node after the restart");
}
