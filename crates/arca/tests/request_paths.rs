//! Requests as paths declare them (issue 11, "Request, fields, paths"):
//! - `?help=1` and `bao path-help` give a path's help — its route, synopsis
//!   and parameters — and never its data. Any valid token may read help, as
//!   in Vault; no token is a 403.
//! - Only a path that declares a raw body (snapshot restore, OCSP) takes a
//!   body that is not JSON; the HTTP layer knows no path names, so a secret
//!   whose name ends like such a path keeps its JSON body.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn help_returns_the_path_help_and_never_the_secret() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let root = init.root_token.clone();
    let r = Some(root.as_str());
    s.http_ok(
        "POST",
        "/v1/sys/mounts/kv1",
        r,
        Some(&json!({"type": "kv"})),
    );
    s.http_ok(
        "PUT",
        "/v1/kv1/app",
        r,
        Some(&json!({"password": "hunter2-secret"})),
    );
    let bao = s.bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=kv", "-version=2", "kv"])
        .ok();
    s.wait_kv2_ready("kv", &root);
    bao.run(&["kv", "put", "kv/app", "password=hunter2-secret"])
        .ok();

    for path in ["/v1/kv1/app?help=1", "/v1/kv/data/app?help=1"] {
        let (st, body) = s.http("GET", path, r, None);
        assert_eq!(st, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("hunter2"),
            "{path} returned the secret: {text}"
        );
        assert!(body.get("data").is_none(), "{path}: {body}");
        let help = body["help"].as_str().unwrap_or_default();
        assert!(help.contains("Matching Route"), "{path}: {body}");
    }
    // The help of a path lists its parameters.
    let (_, body) = s.http("GET", "/v1/kv/config?help=1", r, None);
    assert!(
        body["help"].as_str().unwrap().contains("max_versions"),
        "{body}"
    );

    // The bao CLI's path-help prints it.
    let out = bao.run(&["path-help", "kv/data/app"]).ok();
    assert!(out.stdout.contains("Matching Route"), "{}", out.describe());
    assert!(
        out.stdout.contains("Request:        kv/data/app"),
        "{}",
        out.describe()
    );
    assert!(!out.stdout.contains("hunter2"), "{}", out.describe());

    // A token without any policy on the path may read help, not the data.
    let t = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        r,
        Some(&json!({"policies": ["default"]})),
    );
    let weak = t["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, _) = s.http("GET", "/v1/kv1/app", Some(&weak), None);
    assert_eq!(st, 403);
    let (st, body) = s.http("GET", "/v1/kv1/app?help=1", Some(&weak), None);
    assert_eq!(st, 200, "{body}");
    assert!(!body.to_string().contains("hunter2"), "{body}");
    // Without a token there is no help either.
    let (st, _) = s.http("GET", "/v1/kv1/app?help=1", None, None);
    assert_eq!(st, 403);
}

#[test]
fn only_paths_that_declare_it_take_a_raw_body() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let root = init.root_token.clone();
    let r = Some(root.as_str());
    let bao = s.bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=kv", "-version=2", "kv"])
        .ok();
    s.wait_kv2_ready("kv", &root);
    s.http_ok(
        "POST",
        "/v1/sys/mounts/kv1",
        r,
        Some(&json!({"type": "kv"})),
    );

    // Secrets named like the snapshot endpoint keep their bodies.
    bao.run(&["kv", "put", "kv/storage/raft/snapshot", "a=b"])
        .ok();
    let out = bao
        .run(&["kv", "get", "-field=a", "kv/storage/raft/snapshot"])
        .ok();
    assert_eq!(out.stdout.trim(), "b", "{}", out.describe());
    s.http_ok(
        "PUT",
        "/v1/kv1/x/storage/raft/snapshot-force",
        r,
        Some(&json!({"c": "d"})),
    );
    let v = s.http_ok("GET", "/v1/kv1/x/storage/raft/snapshot-force", r, None);
    assert_eq!(v["data"]["c"], "d", "{v}");

    // A body that is not JSON is a 400 on a path that takes JSON...
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", &format!("X-Vault-Token: {root}")])
        .args(["--data-binary", "not json"])
        .arg(format!("{}/v1/kv1/plain", s.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    let (st, _) = s.http("GET", "/v1/kv1/plain", r, None);
    assert_eq!(st, 404, "nothing was written");
    // ...and reaches a path that declares a raw body (a snapshot restore
    // that refuses the archive, not the JSON).
    let out = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST"])
        .args(["-H", &format!("X-Vault-Token: {root}")])
        .args(["--data-binary", "not an archive"])
        .arg(format!("{}/v1/sys/storage/raft/snapshot", s.addr))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(!body.contains("failed to parse JSON"), "{body}");
}
