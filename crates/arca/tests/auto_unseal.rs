//! Auto-unseal with `seal "transit"`: the root key is encrypted by a key of
//! another Vault-API server's transit engine — a real OpenBao (`bao server
//! -dev`) or another Arca — and every node opens it by itself when it starts.
//!
//! What a user relies on, driven by the real `bao` CLI where it has a command:
//! * `bao operator init` against a transit-sealed node returns recovery keys
//!   and no unseal keys, and the node is unsealed right away;
//! * a restart needs nobody; with the key service down the node stays sealed,
//!   says why in `sys/seal-status`, and unseals once the service is back;
//! * recovery keys open nothing, but a quorum of them generates a root token
//!   (`bao operator generate-root`) and rotates them (`bao operator
//!   rotate-keys -target=recovery`); wrong ones are refused;
//! * `sys/rotate/root` (and `bao operator rotate-keys` with recovery keys)
//!   replaces the root key and the seal opens the new one;
//! * an operator's `sys/seal` holds until the process restarts;
//! * in a raft cluster every node joins and unseals with the seal, and after
//!   a restart of all nodes the cluster is writable again unattended.

mod common;

use std::time::{Duration, Instant};

use common::openbao::OpenBaoDev;
use common::{wait_until, Bao, Server};
use serde_json::{json, Value};

/// Transit at `transit/` on the key service, a key `autounseal`, and an
/// orphan periodic token that may only encrypt and decrypt with it.
fn transit_token(addr: &str, root: &str) -> String {
    let http = |method: &str, path: &str, body: Value| {
        let (status, v) = common::try_http(
            addr,
            method,
            &format!("/v1/{path}"),
            Some(root),
            Some(&body),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {v}"
        );
        v
    };
    http("POST", "sys/mounts/transit", json!({ "type": "transit" }));
    http("POST", "transit/keys/autounseal", json!({}));
    http(
        "PUT",
        "sys/policies/acl/autounseal",
        json!({ "policy": "path \"transit/encrypt/autounseal\" { capabilities = [\"update\"] }\npath \"transit/decrypt/autounseal\" { capabilities = [\"update\"] }\n" }),
    );
    let v = http(
        "POST",
        "auth/token/create-orphan",
        json!({ "policies": ["autounseal"], "period": "24h" }),
    );
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

fn seal_block(addr: &str, token: &str) -> String {
    format!(
        "seal \"transit\" {{\n  address = \"{addr}\"\n  token = \"{token}\"\n  key_name = \"autounseal\"\n  mount_path = \"transit/\"\n}}\n"
    )
}

fn seal_status(s: &Server) -> Value {
    s.http_ok("GET", "/v1/sys/seal-status", None, None)
}

fn wait_unsealed(s: &Server, bound: Duration) {
    wait_until("the node to unseal itself", bound, || {
        seal_status(s)["sealed"] == false
    });
}

/// `bao operator init -format=json` on a transit-sealed node.
fn bao_init(b: &Bao) -> (Vec<String>, String) {
    let v = b.json(&["operator", "init", "-format=json"]);
    assert_eq!(v["unseal_keys_b64"], json!([]), "{v}");
    assert_eq!(v["recovery_keys_shares"], 5, "{v}");
    assert_eq!(v["recovery_keys_threshold"], 3, "{v}");
    let keys: Vec<String> = v["recovery_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5, "{v}");
    (keys, v["root_token"].as_str().unwrap().to_string())
}

#[test]
fn transit_seal_with_openbao_as_the_key_service() {
    let openbao = OpenBaoDev::start();
    let token = transit_token(&openbao.addr, &openbao.token);
    let mut arca = Server::start_rocksdb_with("", &seal_block(&openbao.addr, &token));

    let st = seal_status(&arca);
    assert_eq!(st["type"], "transit", "{st}");
    assert_eq!(st["recovery_seal"], true, "{st}");
    assert_eq!(st["initialized"], false, "{st}");

    // Barrier share parameters do not apply to an auto seal.
    let (status, body) = arca.http(
        "PUT",
        "/v1/sys/init",
        None,
        Some(&json!({ "secret_shares": 3, "secret_threshold": 2 })),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains(
            "parameters secret_shares,secret_threshold not applicable to seal type transit"
        ),
        "{body}"
    );

    let b = arca.bao();
    let (recovery, root) = bao_init(&b);
    // Unsealed at once, with the recovery key's shape in the status.
    let st = seal_status(&arca);
    assert_eq!(st["sealed"], false, "{st}");
    assert_eq!(
        (st["t"].clone(), st["n"].clone()),
        (json!(3), json!(5)),
        "{st}"
    );
    assert_eq!(st["recovery_seal_type"], "shamir", "{st}");
    let br = b.with_token(&root);
    br.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    arca.wait_kv2_ready("secret", &root);
    br.run(&["kv", "put", "secret/app", "password=auto-unsealed"])
        .ok();
    let (status, body) = arca.http("GET", "/v1/sys/config/state/sanitized", Some(&root), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["seals"][0]["type"], "transit", "{body}");
    assert!(
        !body.to_string().contains(&token),
        "the seal token leaked: {body}"
    );

    // Recovery keys do not unseal.
    let (status, body) = arca.http(
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(&json!({ "key": recovery[0] })),
    );
    assert_eq!(status, 400, "{body}");

    // The root key is replaced without shares; a restart needs nobody.
    br.run(&["write", "-f", "sys/rotate/root"]).ok();
    arca.restart();
    wait_unsealed(&arca, Duration::from_secs(60));
    let v = br.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "auto-unsealed");
    assert!(
        arca.log().contains("unsealed with the auto seal"),
        "{}",
        arca.log()
    );

    // generate-root (sudo, as every ceremony in Arca) with the recovery
    // keys; a wrong one is refused.
    let init = br.json(&["operator", "generate-root", "-init", "-format=json"]);
    let (otp, nonce) = (
        init["otp"].as_str().unwrap().to_string(),
        init["nonce"].as_str().unwrap().to_string(),
    );
    assert_eq!(init["required"], 3, "{init}");
    let nonce_flag = format!("-nonce={nonce}");
    let mut encoded = String::new();
    for k in &recovery[1..4] {
        let v = br.json(&["operator", "generate-root", &nonce_flag, "-format=json", k]);
        if v["complete"] == true {
            encoded = v["encoded_token"].as_str().unwrap().to_string();
        }
    }
    assert!(!encoded.is_empty(), "generate-root did not complete");
    let decoded = br
        .run(&[
            "operator",
            "generate-root",
            "-decode",
            &encoded,
            "-otp",
            &otp,
            "-format=json",
        ])
        .ok()
        .json();
    let new_root = decoded["token"].as_str().unwrap().to_string();
    let v = b
        .with_token(&new_root)
        .json(&["token", "lookup", "-format=json"]);
    assert_eq!(v["data"]["policies"], json!(["root"]), "{v}");
    // Unseal keys of another server are not recovery keys of this one.
    let init = br.json(&["operator", "generate-root", "-init", "-format=json"]);
    let nonce_flag = format!("-nonce={}", init["nonce"].as_str().unwrap());
    let other = Server::start();
    let other_keys = other.init_and_unseal().keys_b64;
    for k in &other_keys[..2] {
        br.run(&["operator", "generate-root", &nonce_flag, k]).ok();
    }
    br.run(&["operator", "generate-root", &nonce_flag, &other_keys[2]])
        .api_error(400, "recovery key verification failed");
    br.run(&["operator", "generate-root", "-cancel"]).ok();

    // Rotating the recovery keys: the old ones stop working.
    let st = br.json(&[
        "operator",
        "rotate-keys",
        "-target=recovery",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let nonce_flag = format!("-nonce={}", st["nonce"].as_str().unwrap());
    let mut new_recovery: Vec<String> = Vec::new();
    for k in &recovery[..3] {
        let v = br.json(&[
            "operator",
            "rotate-keys",
            "-target=recovery",
            &nonce_flag,
            "-format=json",
            k,
        ]);
        if v["complete"] == true {
            new_recovery = v["keys_base64"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
        }
    }
    assert_eq!(new_recovery.len(), 3);
    let st = seal_status(&arca);
    assert_eq!(
        (st["t"].clone(), st["n"].clone()),
        (json!(2), json!(3)),
        "{st}"
    );
    // `rotate-keys` (the barrier target) under an auto seal: the recovery
    // keys authorize a new root key and no shares come out (OpenBao's
    // behaviour); PGP keys do not apply.
    br.run(&["operator", "rotate-keys", "-init", "-backup"])
        .api_error(400, "backup not supported");
    let st = br.json(&["operator", "rotate-keys", "-init", "-format=json"]);
    assert_eq!(st["required"], 2, "{st}");
    let nonce_flag = format!("-nonce={}", st["nonce"].as_str().unwrap());
    br.run(&["operator", "rotate-keys", &nonce_flag, &new_recovery[0]])
        .ok();
    let v = br.json(&[
        "operator",
        "rotate-keys",
        &nonce_flag,
        "-format=json",
        &new_recovery[1],
    ]);
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["keys_base64"], json!([]), "{v}");
    let init = br.json(&["operator", "generate-root", "-init", "-format=json"]);
    let nonce_flag = format!("-nonce={}", init["nonce"].as_str().unwrap());
    br.run(&["operator", "generate-root", &nonce_flag, &recovery[0]])
        .ok();
    br.run(&["operator", "generate-root", &nonce_flag, &recovery[1]])
        .api_error(400, "recovery key verification failed");
    let v = br.json(&[
        "operator",
        "generate-root",
        &nonce_flag,
        "-format=json",
        &new_recovery[2],
    ]);
    assert_eq!(v["progress"], 1, "{v}");
    let v = br.json(&[
        "operator",
        "generate-root",
        &nonce_flag,
        "-format=json",
        &new_recovery[0],
    ]);
    assert_eq!(v["complete"], true, "{v}");

    // An operator's seal holds: the auto seal does not undo it.
    br.run(&["operator", "seal"]).ok();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(seal_status(&arca)["sealed"], true);
    arca.restart();
    wait_unsealed(&arca, Duration::from_secs(60));
}

#[test]
fn transit_seal_with_arca_as_the_key_service_that_goes_down() {
    let mut service = Server::start();
    let service_init = service.init_and_unseal();
    let token = transit_token(&service.addr, &service_init.root_token);
    let mut node = Server::start_rocksdb_with("", &seal_block(&service.addr, &token));
    let v = node.http_ok(
        "PUT",
        "/v1/sys/init",
        None,
        Some(&json!({ "recovery_shares": 1, "recovery_threshold": 1 })),
    );
    assert_eq!(v["keys"], json!([]), "{v}");
    assert_eq!(
        v["recovery_keys_base64"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    let root = v["root_token"].as_str().unwrap().to_string();
    wait_unsealed(&node, Duration::from_secs(30));
    node.http_ok(
        "POST",
        "/v1/sys/mounts/kv",
        Some(&root),
        Some(&json!({ "type": "kv" })),
    );
    node.http_ok("PUT", "/v1/kv/a", Some(&root), Some(&json!({ "v": "1" })));

    // The key service goes away; the node restarts and waits for it.
    service.stop();
    node.restart();
    wait_until("seal-status to say why", Duration::from_secs(60), || {
        let st = seal_status(&node);
        st["sealed"] == true && st["warnings"].to_string().contains("auto-unseal failed")
    });
    let st = seal_status(&node);
    assert!(st["warnings"].to_string().contains("transit"), "{st}");
    assert!(node.log().contains("auto-unseal failed"), "{}", node.log());

    // Back (and unsealed with its own shares): the node follows alone.
    service.start_again();
    service.unseal_with(&service_init.keys_b64[..3]);
    let back = Instant::now();
    wait_unsealed(&node, Duration::from_secs(90));
    eprintln!(
        "auto-unseal after the key service came back: {:.1}s",
        back.elapsed().as_secs_f64()
    );
    let v = node.http_ok("GET", "/v1/kv/a", Some(&root), None);
    assert_eq!(v["data"]["v"], "1");
}

#[test]
fn transit_sealed_raft_cluster_restarts_unattended() {
    let openbao = OpenBaoDev::start();
    let token = transit_token(&openbao.addr, &openbao.token);
    let seal = seal_block(&openbao.addr, &token);
    let mut n1 = Server::start_raft_top("au1", &seal);
    let v = n1.http_ok(
        "PUT",
        "/v1/sys/init",
        None,
        Some(&json!({ "recovery_shares": 3, "recovery_threshold": 2 })),
    );
    let root = v["root_token"].as_str().unwrap().to_string();
    n1.wait_active();
    let mut n2 = Server::start_raft_top("au2", &seal);
    let mut n3 = Server::start_raft_top("au3", &seal);
    // `bao operator raft join` completes the join: no shares to enter.
    for n in [&n2, &n3] {
        n.bao().run(&["operator", "raft", "join", &n1.addr]).ok();
        wait_until("the joined node to unseal", Duration::from_secs(60), || {
            n.http("GET", "/v1/sys/health?standbyok=true", None, None).0 == 200
        });
    }
    let b = n1.bao().with_token(&root);
    let peers = b.json(&["operator", "raft", "list-peers", "-format=json"]);
    assert_eq!(
        peers["data"]["config"]["servers"].as_array().unwrap().len(),
        3,
        "{peers}"
    );
    n1.http_ok(
        "POST",
        "/v1/sys/mounts/kv",
        Some(&root),
        Some(&json!({ "type": "kv" })),
    );
    n1.http_ok(
        "PUT",
        "/v1/kv/before",
        Some(&root),
        Some(&json!({ "v": "1" })),
    );

    // Every node stops, every node starts: nobody enters anything.
    for n in [&mut n1, &mut n2, &mut n3] {
        n.stop();
    }
    let t0 = Instant::now();
    for n in [&mut n1, &mut n2, &mut n3] {
        n.start_again();
    }
    let nodes = [&n1, &n2, &n3];
    wait_until("a writable cluster", Duration::from_secs(120), || {
        nodes.iter().any(|n| {
            n.http(
                "PUT",
                "/v1/kv/after",
                Some(&root),
                Some(&json!({ "v": "2" })),
            )
            .0 == 204
        })
    });
    eprintln!(
        "3-node transit-sealed cluster, restart of all nodes to the first acknowledged write: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    for n in nodes {
        wait_unsealed(n, Duration::from_secs(60));
        let (status, v) = n.http("GET", "/v1/kv/before?stale=true", Some(&root), None);
        assert!(
            status == 200 && v["data"]["v"] == "1",
            "{} {status} {v}",
            n.addr
        );
    }
}

/// `seal "pkcs11"` with a real PKCS#11 module (SoftHSM2, a token made by
/// `softhsm2-util` in a temporary directory): the server creates its key
/// in the token, `bao operator init` gives recovery keys, a restart opens
/// the root key from the token, and so does one after `sys/rotate/root`.
#[test]
fn pkcs11_seal_with_softhsm2() {
    const LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
    assert!(
        std::path::Path::new(LIB).exists(),
        "{LIB} is missing: apt-get install softhsm2 (deploy/install-deps.sh test)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "arca-seal",
            "--so-pin",
            "1234",
            "--pin",
            "arca-pin-93817",
        ])
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server process reads SOFTHSM2_CONF from its environment; only
    // this test's servers load SoftHSM2.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let block = format!(
        "seal \"pkcs11\" {{\n  lib = \"{LIB}\"\n  token_label = \"arca-seal\"\n  pin = \"arca-pin-93817\"\n  key_label = \"arca-root\"\n  generate_key = \"true\"\n}}\n"
    );
    let mut arca = Server::start_rocksdb_with("", &block);
    assert_eq!(seal_status(&arca)["type"], "pkcs11");
    let b = arca.bao();
    let (_recovery, root) = bao_init(&b);
    assert_eq!(seal_status(&arca)["sealed"], false);
    let br = b.with_token(&root);
    br.run(&["secrets", "enable", "-version=1", "kv"]).ok();
    br.run(&["kv", "put", "kv/hsm", "v=kept"]).ok();
    arca.restart();
    wait_unsealed(&arca, Duration::from_secs(60));
    br.run(&["write", "-f", "sys/rotate/root"]).ok();
    arca.restart();
    wait_unsealed(&arca, Duration::from_secs(60));
    let v = br.json(&["kv", "get", "-format=json", "kv/hsm"]);
    assert_eq!(v["data"]["v"], "kept", "{v}");
    // The PIN is not in the sanitized configuration.
    let (_, body) = arca.http("GET", "/v1/sys/config/state/sanitized", Some(&root), None);
    assert_eq!(body["data"]["seals"][0]["type"], "pkcs11", "{body}");
    assert!(!body.to_string().contains("arca-pin-93817"), "{body}");
}

/// Seal migration as Vault documents it, both ways, on one server with
/// OpenBao's transit engine as the key service: Shamir → transit (add the
/// block, restart, `bao operator unseal -migrate` with the unseal keys,
/// which become the recovery keys), then transit → Shamir (`disabled =
/// "true"`, restart, `-migrate` with the recovery keys, which unseal
/// again). The data survives each step; a share without `-migrate` is
/// refused while a migration is pending.
#[test]
fn seal_migration_shamir_to_transit_and_back() {
    let openbao = OpenBaoDev::start();
    let token = transit_token(&openbao.addr, &openbao.token);
    let mut node = Server::start();
    let init = node.init_and_unseal();
    let root = init.root_token.clone();
    node.http_ok(
        "POST",
        "/v1/sys/mounts/kv",
        Some(&root),
        Some(&json!({ "type": "kv" })),
    );
    node.http_ok(
        "PUT",
        "/v1/kv/m",
        Some(&root),
        Some(&json!({ "v": "shamir" })),
    );
    let shamir_config = std::fs::read_to_string(node.config_path()).unwrap();
    let block = seal_block(&openbao.addr, &token);
    let b = node.bao();

    // Shamir → transit.
    node.stop();
    std::fs::write(node.config_path(), format!("{shamir_config}\n{block}")).unwrap();
    node.start_again();
    let st = seal_status(&node);
    assert_eq!(
        (st["sealed"].clone(), st["migration"].clone()),
        (json!(true), json!(true)),
        "{st}"
    );
    assert_eq!(st["t"], 3, "{st}");
    b.run(&["operator", "unseal", &init.keys_b64[0]])
        .api_error(400, "migrate option not provided");
    for k in &init.keys_b64[..3] {
        b.run(&["operator", "unseal", "-migrate", k]).ok();
    }
    let st = seal_status(&node);
    assert_eq!(st["sealed"], false, "{st}");
    assert_eq!(st["type"], "transit", "{st}");
    assert_eq!(st["migration"], false, "{st}");
    assert_eq!(
        (st["t"].clone(), st["n"].clone()),
        (json!(3), json!(5)),
        "{st}"
    );
    node.http_ok(
        "PUT",
        "/v1/kv/m",
        Some(&root),
        Some(&json!({ "v": "transit" })),
    );
    node.restart();
    wait_unsealed(&node, Duration::from_secs(60));
    assert_eq!(
        node.http_ok("GET", "/v1/kv/m", Some(&root), None)["data"]["v"],
        "transit"
    );

    // Transit → Shamir: the recovery keys (the old unseal keys) unseal.
    node.stop();
    let disabled = block.replace(
        "mount_path = \"transit/\"",
        "mount_path = \"transit/\"\n  disabled = \"true\"",
    );
    std::fs::write(node.config_path(), format!("{shamir_config}\n{disabled}")).unwrap();
    node.start_again();
    let st = seal_status(&node);
    assert_eq!(
        (st["sealed"].clone(), st["migration"].clone()),
        (json!(true), json!(true)),
        "{st}"
    );
    for k in &init.keys_b64[2..5] {
        b.run(&["operator", "unseal", "-migrate", k]).ok();
    }
    let st = seal_status(&node);
    assert_eq!(
        (st["sealed"].clone(), st["type"].clone()),
        (json!(false), json!("shamir")),
        "{st}"
    );
    node.stop();
    std::fs::write(node.config_path(), &shamir_config).unwrap();
    node.start_again();
    node.unseal_with(&init.keys_b64[1..4]);
    assert_eq!(
        node.http_ok("GET", "/v1/kv/m", Some(&root), None)["data"]["v"],
        "transit"
    );
    // No migration pending: -migrate is refused.
    node.http_ok("PUT", "/v1/sys/seal", Some(&root), None);
    b.run(&["operator", "unseal", "-migrate", &init.keys_b64[0]])
        .api_error(400, "no seal migration is pending");
}
