//! Token roles through the real `bao` CLI and hvac: a role lets a caller
//! that holds only `update` on `auth/token/create/<role>` mint orphan,
//! periodic, CIDR-bound tokens with policies it does not hold itself,
//! never a policy outside the role's lists; the tokens carry the role's
//! path, so `bao lease revoke -prefix auth/token/create/<role>` revokes
//! them; a batch role makes batch tokens; settings not built yet are
//! refused.

mod common;

use common::{run_python_ok, Server};
use serde_json::json;

#[test]
fn bao_token_create_with_a_role() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    for (name, rules) in [
        ("app-read", r#"path "secret/*" { capabilities = ["read"] }"#),
        (
            "creator",
            r#"path "auth/token/create/app" { capabilities = ["update"] }"#,
        ),
    ] {
        server.http_ok(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            Some(&init.root_token),
            Some(&json!({ "policy": rules })),
        );
    }
    root.run(&[
        "write",
        "auth/token/roles/app",
        "allowed_policies=app-read",
        "disallowed_policies=root",
        "orphan=true",
        "token_period=1h",
        "path_suffix=v1",
        "token_bound_cidrs=127.0.0.0/8",
        "token_explicit_max_ttl=24h",
    ])
    .ok();
    let r = root.json(&["read", "-format=json", "auth/token/roles/app"]);
    assert_eq!(r["data"]["allowed_policies"], json!(["app-read"]), "{r}");
    assert_eq!(r["data"]["orphan"], true, "{r}");
    assert_eq!(r["data"]["token_period"], 3600, "{r}");
    assert_eq!(r["data"]["renewable"], true, "{r}");
    assert_eq!(r["data"]["path_suffix"], "v1", "{r}");
    assert_eq!(
        r["data"]["token_bound_cidrs"],
        json!(["127.0.0.0/8"]),
        "{r}"
    );
    assert_eq!(
        root.json(&["list", "-format=json", "auth/token/roles"]),
        json!(["app"])
    );

    let creator = root.json(&["token", "create", "-format=json", "-policy=creator"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let c = server.bao().with_token(&creator);
    // Without the role the caller cannot give away a policy it lacks.
    c.run(&["token", "create", "-policy=app-read"])
        .api_error(403, "permission denied");
    let t = c.json(&["token", "create", "-format=json", "-role=app"]);
    assert_eq!(t["auth"]["policies"], json!(["app-read", "default"]), "{t}");
    assert_eq!(t["auth"]["orphan"], true, "{t}");
    let tok = t["auth"]["client_token"].as_str().unwrap().to_string();
    let me = server
        .bao()
        .with_token(&tok)
        .json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["path"], "auth/token/create/app/v1", "{me}");
    assert_eq!(me["data"]["period"], 3600, "{me}");
    assert_eq!(me["data"]["explicit_max_ttl"], 86400, "{me}");
    assert_eq!(me["data"]["bound_cidrs"], json!(["127.0.0.0/8"]), "{me}");

    // Never outside the role's lists, never root.
    c.run(&["token", "create", "-role=app", "-policy=creator"])
        .api_error(400, "must be a subset of the role's allowed policies");
    root.run(&["token", "create", "-role=app", "-policy=root"])
        .api_error(400, "root");
    root.run(&["token", "create", "-role=nope"])
        .api_error(400, "unknown role nope");
    // A batch role: its tokens are batch tokens whatever type the request
    // names (the CLI always sends one).
    root.run(&[
        "write",
        "auth/token/roles/ci",
        "token_type=batch",
        "allowed_policies=app-read",
    ])
    .ok();
    for ty in ["-type=service", "-type=batch"] {
        let t = root.json(&["token", "create", "-format=json", "-role=ci", ty]);
        assert!(
            t["auth"]["client_token"]
                .as_str()
                .unwrap()
                .starts_with("hvb."),
            "{t}"
        );
    }
    // Entity aliases are stored lowercased (their use: tests/identity.rs).
    root.run(&[
        "write",
        "auth/token/roles/b",
        "allowed_entity_aliases=Web-*",
    ])
    .ok();
    let b = root.json(&["read", "-format=json", "auth/token/roles/b"]);
    assert_eq!(b["data"]["allowed_entity_aliases"], json!(["web-*"]), "{b}");

    // The role's tokens go with a prefix revocation of its path.
    root.run(&["lease", "revoke", "-prefix", "auth/token/create/app"])
        .ok();
    server
        .bao()
        .with_token(&tok)
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
    // The creator's own token is untouched.
    c.run(&["token", "lookup"]).ok();

    root.run(&["delete", "auth/token/roles/app"]).ok();
    c.run(&["token", "create", "-role=app"])
        .api_error(400, "unknown role app");
}

#[test]
fn hvac_token_roles() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let script = r#"
import sys, hvac
addr, root = sys.argv[1], sys.argv[2]
c = hvac.Client(url=addr, token=root)
c.sys.create_or_update_policy("reader", 'path "secret/*" { capabilities = ["read"] }')
c.auth.token.create_or_update_role("ci", allowed_policies=["reader"], orphan=True, renewable=False)
role = c.auth.token.read_role("ci")["data"]
assert role["allowed_policies"] == ["reader"] and role["orphan"] is True and role["renewable"] is False, role
assert c.auth.token.list_roles()["data"]["keys"] == ["ci"]
t = c.auth.token.create(role_name="ci", policies=["reader"], ttl="1h")["auth"]
assert t["policies"] == ["default", "reader"] and t["orphan"] is True and t["renewable"] is False, t
c.auth.token.delete_role("ci")
try:
    c.auth.token.read_role("ci")
    raise SystemExit("a deleted role should be gone")
except hvac.exceptions.InvalidPath:
    pass
print("hvac token roles: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[&server.addr, &init.root_token],
        "hvac token roles: ok",
    );
}
