//! Batch tokens through the real `bao` CLI: `bao token create -type=batch`
//! and logins with `token_type=batch` give `hvb.` tokens that are not
//! stored yet work after a restart (the key is in the barrier); they
//! cannot be renewed, revoked, used for cubbyhole or to create tokens;
//! they die with their parent; a tampered one is refused. hvac creates
//! and looks one up.

mod common;

use common::{run_python_ok, Server};
use serde_json::json;

#[test]
fn bao_batch_tokens() {
    let mut server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);

    // A service parent and its batch child.
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/minter",
        Some(&init.root_token),
        Some(&json!({ "policy": r#"path "auth/token/create" { capabilities = ["update"] }"# })),
    );
    let parent = root.json(&["token", "create", "-format=json", "-policy=minter"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let p = server.bao().with_token(&parent);
    let b = p.json(&[
        "token",
        "create",
        "-format=json",
        "-type=batch",
        "-ttl=1h",
        "-policy=minter",
    ]);
    let batch = b["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(batch.starts_with("hvb."), "{b}");
    assert_eq!(b["auth"]["accessor"], "", "{b}");
    assert_eq!(b["auth"]["renewable"], false, "{b}");
    let bt = server.bao().with_token(&batch);
    let me = bt.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["type"], "batch", "{me}");
    assert_eq!(me["data"]["orphan"], false, "{me}");
    assert_eq!(me["data"]["policies"], json!(["default", "minter"]), "{me}");
    assert!(me["data"]["ttl"].as_u64().unwrap() > 3500, "{me}");

    // What a batch token cannot do.
    bt.run(&["token", "renew"])
        .api_error(400, "batch tokens cannot be renewed");
    bt.run(&["token", "create", "-policy=default"])
        .api_error(400, "batch tokens cannot create more tokens");
    root.run(&["token", "revoke", &batch])
        .api_error(400, "batch tokens cannot be revoked");
    bt.run(&["write", "cubbyhole/x", "a=b"])
        .api_error(400, "no cubbyhole");
    root.run(&[
        "token",
        "create",
        "-type=batch",
        "-policy=default",
        "-period=1h",
    ])
    .api_error(400, "periodic");
    root.run(&[
        "token",
        "create",
        "-type=batch",
        "-policy=default",
        "-use-limit=3",
    ])
    .api_error(400, "limited-use");
    root.run(&["token", "create", "-type=batch", "-policy=root"])
        .api_error(400, "root");

    // A tampered token is refused; so is one in a foreign format.
    let mut chars: Vec<char> = batch.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    server
        .bao()
        .with_token(&forged)
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
    server
        .bao()
        .with_token("hvb.not-base64!")
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");

    // Logins can hand out batch tokens.
    root.run(&["auth", "enable", "userpass"]).ok();
    root.run(&[
        "write",
        "auth/userpass/users/ci",
        "password=pw",
        "token_type=batch",
        "token_ttl=20m",
    ])
    .ok();
    root.run(&[
        "write",
        "auth/userpass/users/ci",
        "token_type=batch",
        "token_period=1h",
    ])
    .api_error(400, "batch tokens cannot be periodic");
    let l = server.bao().without_token().json(&[
        "login",
        "-method=userpass",
        "-format=json",
        "-no-store",
        "username=ci",
        "password=pw",
    ]);
    let login_batch = l["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(login_batch.starts_with("hvb."), "{l}");
    assert_eq!(l["auth"]["lease_duration"], 1200, "{l}");
    let lb = server.bao().with_token(&login_batch);
    let me = lb.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["orphan"], true, "{me}");
    assert_eq!(me["data"]["display_name"], "userpass-ci", "{me}");

    // A mount can make batch tokens its logins' default (or force them).
    root.run(&[
        "auth",
        "enable",
        "-path=robots",
        "-token-type=default-batch",
        "userpass",
    ])
    .ok();
    root.run(&["write", "auth/robots/users/r2", "password=pw"])
        .ok();
    root.run(&[
        "write",
        "auth/robots/users/r3",
        "password=pw",
        "token_type=service",
    ])
    .ok();
    let robot = |user: &str| {
        server.bao().without_token().json(&[
            "write",
            "-format=json",
            &format!("auth/robots/login/{user}"),
            "password=pw",
        ])["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(robot("r2").starts_with("hvb."), "the mount's default");
    assert!(!robot("r3").starts_with("hvb."), "the user's own choice");
    root.run(&["auth", "tune", "-token-type=batch", "robots/"])
        .ok();
    assert!(robot("r3").starts_with("hvb."), "forced by the mount");
    let tune = root.json(&["read", "-format=json", "sys/auth/robots/tune"]);
    assert_eq!(tune["data"]["token_type"], "batch", "{tune}");
    root.run(&["auth", "tune", "-token-type=bulk", "robots/"])
        .api_error(400, "invalid token_type");

    // Nothing of them is stored, yet they survive a restart.
    server.restart();
    server.unseal_with(&init.keys_b64);
    server
        .bao()
        .with_token(&batch)
        .run(&["token", "lookup"])
        .ok();
    server
        .bao()
        .with_token(&login_batch)
        .run(&["token", "lookup"])
        .ok();

    // They die with their parent.
    server
        .bao()
        .with_token(&init.root_token)
        .run(&["token", "revoke", &parent])
        .ok();
    server
        .bao()
        .with_token(&batch)
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
}

#[test]
fn hvac_batch_token() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let script = r#"
import sys, hvac
addr, root = sys.argv[1], sys.argv[2]
c = hvac.Client(url=addr, token=root)
t = c.auth.token.create(type="batch", policies=["default"], ttl="10m")["auth"]
assert t["client_token"].startswith("hvb.") and t["token_type"] == "batch", t
b = hvac.Client(url=addr, token=t["client_token"])
me = b.auth.token.lookup_self()["data"]
assert me["type"] == "batch" and me["renewable"] is False, me
try:
    b.auth.token.renew_self()
    raise SystemExit("a batch token should not renew")
except hvac.exceptions.InvalidRequest as e:
    assert "cannot be renewed" in str(e), e
print("hvac batch: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[&server.addr, &init.root_token],
        "hvac batch: ok",
    );
}
