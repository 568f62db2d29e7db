//! Our own `arca` CLI against a real non-dev `arca server` (RocksDB): the
//! operator ceremony, KV v2 lifecycle, policies and tokens, as a user types
//! them.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arca(home: &Path, addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .env("HOME", home)
        .env("VAULT_ADDR", addr)
        .env_remove("VAULT_TOKEN")
        .env_remove("ARCA_TOKEN")
        .env_remove("ARCA_ADDR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn operator_kv_policy_and_token_flow() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "storage \"rocksdb\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n",
        dir.path().join("data").display()
    );
    std::fs::write(dir.path().join("a.hcl"), cfg).unwrap();
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_arca"))
            .args([
                "server",
                "-config",
                dir.path().join("a.hcl").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let addr = format!("http://127.0.0.1:{port}");
    let home = dir.path();
    let run = |args: &[&str]| arca(home, &addr, args);

    // Uninitialized and sealed: status exits 2.
    assert_eq!(run(&["status"]).status.code(), Some(2));
    let init: serde_json::Value = serde_json::from_str(&ok(
        run(&[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ]),
        "init",
    ))
    .unwrap();
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    let root = init["root_token"].as_str().unwrap().to_string();
    ok(run(&["operator", "unseal", &keys[0]]), "unseal 1");
    assert_eq!(
        run(&["status"]).status.code(),
        Some(2),
        "still sealed after one share"
    );
    ok(run(&["operator", "unseal", &keys[2]]), "unseal 2");
    assert_eq!(run(&["status"]).status.code(), Some(0));
    ok(run(&["login", &root]), "login");

    // KV v2 lifecycle.
    ok(
        run(&["secrets", "enable", "-path=kv2", "-version=2", "kv"]),
        "enable",
    );
    ok(run(&["kv", "put", "kv2/app", "pw=one"]), "put 1");
    ok(run(&["kv", "put", "kv2/app", "pw=two"]), "put 2");
    assert_eq!(
        ok(run(&["kv", "get", "-field=pw", "kv2/app"]), "get").trim(),
        "two"
    );
    assert_eq!(
        ok(
            run(&["kv", "get", "-version=1", "-field=pw", "kv2/app"]),
            "get v1"
        )
        .trim(),
        "one"
    );
    // kv patch keeps the other fields and makes a new version.
    ok(run(&["kv", "put", "kv2/multi", "a=1", "b=2"]), "put multi");
    ok(run(&["kv", "patch", "kv2/multi", "b=3"]), "patch");
    assert_eq!(
        ok(run(&["kv", "get", "-field=a", "kv2/multi"]), "get a").trim(),
        "1"
    );
    assert_eq!(
        ok(run(&["kv", "get", "-field=b", "kv2/multi"]), "get b").trim(),
        "3"
    );
    let meta = ok(
        run(&["kv", "metadata", "get", "-format=json", "kv2/multi"]),
        "metadata",
    );
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["data"]["current_version"], 2, "{meta}");
    // secrets tune changes the mount's TTLs; read back through sys/mounts.
    ok(
        run(&[
            "secrets",
            "tune",
            "-default-lease-ttl=1h",
            "-max-lease-ttl=2h",
            "kv2/",
        ]),
        "tune",
    );
    let tuned = ok(
        run(&["read", "-format=json", "sys/mounts/kv2/tune"]),
        "read tune",
    );
    let tuned: serde_json::Value = serde_json::from_str(&tuned).unwrap();
    assert_eq!(tuned["data"]["default_lease_ttl"], 3600, "{tuned}");
    assert_eq!(tuned["data"]["max_lease_ttl"], 7200, "{tuned}");
    let conflict = run(&["kv", "put", "-cas=1", "kv2/app", "pw=three"]);
    assert!(!conflict.status.success(), "a stale cas is refused");
    ok(run(&["kv", "delete", "kv2/app"]), "delete");
    assert!(
        !run(&["kv", "get", "-field=pw", "kv2/app"]).status.success(),
        "deleted version has no field"
    );
    ok(
        run(&["kv", "undelete", "-versions=2", "kv2/app"]),
        "undelete",
    );
    assert_eq!(
        ok(
            run(&["kv", "get", "-field=pw", "kv2/app"]),
            "get after undelete"
        )
        .trim(),
        "two"
    );
    ok(run(&["kv", "destroy", "-versions=1", "kv2/app"]), "destroy");
    let meta: serde_json::Value = serde_json::from_str(&ok(
        run(&["kv", "metadata", "get", "-format=json", "kv2/app"]),
        "metadata",
    ))
    .unwrap();
    assert_eq!(meta["data"]["current_version"], 2);
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);
    assert!(ok(run(&["kv", "list", "kv2/"]), "list").contains("app"));

    // secrets disable removes the mount and its data.
    ok(
        run(&["secrets", "enable", "-path=gone", "kv"]),
        "enable gone",
    );
    ok(run(&["kv", "put", "gone/x", "y=z"]), "put gone");
    ok(run(&["secrets", "disable", "gone/"]), "disable");
    let list = ok(run(&["secrets", "list"]), "secrets list");
    assert!(!list.contains("gone/"), "{list}");
    assert!(!run(&["kv", "get", "gone/x"]).status.success());
    ok(
        run(&["secrets", "enable", "-path=gone", "kv"]),
        "enable again",
    );
    assert!(
        !run(&["kv", "get", "gone/x"]).status.success(),
        "a new mount at the same path starts empty"
    );

    // A policy from a file and a limited token.
    std::fs::write(
        home.join("p.hcl"),
        "path \"kv2/data/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    ok(
        run(&[
            "policy",
            "write",
            "app",
            home.join("p.hcl").to_str().unwrap(),
        ]),
        "policy write",
    );
    assert!(ok(run(&["policy", "read", "app"]), "policy read").contains("kv2/data/*"));
    let tok = ok(
        run(&["token", "create", "-policy=app", "-ttl=30m", "-field=token"]),
        "token create",
    )
    .trim()
    .to_string();
    assert_eq!(
        ok(
            run(&["token", "capabilities", &tok, "kv2/data/app"]),
            "caps"
        )
        .trim(),
        "read"
    );
    let lookup: serde_json::Value = serde_json::from_str(&ok(
        run(&["token", "lookup", "-format=json", &tok]),
        "lookup",
    ))
    .unwrap();
    assert_eq!(
        lookup["data"]["policies"],
        serde_json::json!(["app", "default"])
    );
    ok(run(&["token", "revoke", &tok]), "revoke");
    assert!(
        !run(&["token", "lookup", &tok]).status.success(),
        "a revoked token is gone"
    );

    // Keys and seal.
    ok(run(&["operator", "rotate"]), "rotate");
    let ks = ok(
        run(&["operator", "key-status", "-format=json"]),
        "key-status",
    );
    assert!(
        ks.contains("\"term\": 2") || ks.contains("\"term\":2"),
        "{ks}"
    );
    ok(run(&["operator", "seal"]), "seal");
    assert_eq!(run(&["status"]).status.code(), Some(2));
}
