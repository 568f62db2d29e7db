//! Security (issue 10, "Low"): ACL parameter constraints and templated
//! policies, through a real `arca server` (non-dev, RocksDB) driven by the
//! real `bao` CLI and plain HTTP.
//!
//! - `allowed_parameters`, `denied_parameters` and `required_parameters`
//!   apply to the query parameters of a read, as in Vault: a token limited to
//!   the current version of a KV v2 secret cannot read an older one with
//!   `?version=1` (`bao kv get -version=1`). List requests are not checked,
//!   as in Vault.
//! - A policy whose path uses identity templating (`{{identity...}}`) is
//!   refused with a 400 (Arca has no identity system to resolve it), so a
//!   templated `deny` can never be stored and then silently deny nothing
//!   while the grants next to it take effect.
//!
//! Each test fails on a server that ignores query parameters in ACL checks
//! or that keeps templated rules and drops them at evaluation.

mod common;

use common::{write_file, Bao, Server};
use serde_json::{json, Value};

/// A started, initialized and unsealed server, the root CLI, the root token,
/// and a KV v2 mount at `kv/`.
fn server_with_kv() -> (Server, Bao, String) {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    root.run(&["secrets", "enable", "-path=kv", "-version=2", "kv"])
        .ok();
    server.wait_kv2_ready("kv", &init.root_token);
    (server, root, init.root_token)
}

/// A token holding only `policy` (and `default`).
fn token_with(root: &Bao, policy: &str) -> String {
    let t = root.json(&[
        "token",
        "create",
        &format!("-policy={policy}"),
        "-format=json",
    ]);
    t["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token create without client_token: {t}"))
        .to_string()
}

/// `GET /v1/<path>` with `token`: (status, body).
fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    server.http("GET", &format!("/v1/{path}"), Some(token), None)
}

#[track_caller]
fn assert_status(server: &Server, path: &str, token: &str, want: u16) -> Value {
    let (status, body) = get(server, path, token);
    assert_eq!(status, want, "GET {path}: {body}");
    if want == 403 {
        assert!(
            body.to_string().contains("permission denied"),
            "GET {path}: {body}"
        );
    }
    body
}

const READER_HCL: &str = r#"
# Only the current version of kv/app: no ?version=N.
path "kv/data/app" {
  capabilities = ["read"]
  denied_parameters = {
    "version" = []
  }
}

# kv/pinned: version 2 only, and no other query parameter.
path "kv/data/pinned" {
  capabilities = ["read"]
  allowed_parameters = {
    "version" = ["2"]
  }
}

# kv/needs: only with an explicit version.
path "kv/data/needs" {
  capabilities = ["read"]
  required_parameters = ["version"]
}

# Listing is not parameter-checked (as in Vault), whatever this says.
path "kv/metadata/*" {
  capabilities = ["list"]
  denied_parameters = {
    "*" = []
  }
}
"#;

#[test]
fn acl_parameter_constraints_apply_to_read_query_parameters() {
    let (server, root, root_token) = server_with_kv();
    for (key, values) in [
        ("app", ["one", "two"]),
        ("pinned", ["p1", "p2"]),
        ("needs", ["n1", "n2"]),
    ] {
        for v in values {
            root.run(&["kv", "put", &format!("kv/{key}"), &format!("v={v}")])
                .ok();
        }
    }
    // Version 1 exists: a refusal below is the ACL, not a missing version.
    let v = root.json(&["kv", "get", "-version=1", "-format=json", "kv/app"]);
    assert_eq!(v["data"]["data"]["v"], "one", "{v}");

    let dir = server.work_dir();
    let policy = write_file(&dir, "reader.hcl", READER_HCL);
    root.run(&["policy", "write", "reader", &policy]).ok();
    let token = token_with(&root, "reader");
    let user = server.bao().with_token(&token);

    // denied_parameters: the current version reads, any ?version= is refused
    // whatever the case of its name, through the CLI and plain HTTP.
    let v = user.json(&["kv", "get", "-format=json", "kv/app"]);
    assert_eq!(v["data"]["data"]["v"], "two", "{v}");
    user.run(&["kv", "get", "-version=1", "kv/app"])
        .api_error(403, "permission denied");
    user.run(&["read", "kv/data/app", "version=1"])
        .api_error(403, "permission denied");
    assert_status(&server, "kv/data/app?version=1", &token, 403);
    assert_status(&server, "kv/data/app?version=2", &token, 403);
    assert_status(&server, "kv/data/app?VERSION=1", &token, 403);
    let body = assert_status(&server, "kv/data/app", &token, 200);
    assert_eq!(body["data"]["data"]["v"], "two", "{body}");
    // An unrelated query parameter is not denied.
    assert_status(&server, "kv/data/app?unrelated=1", &token, 200);

    // allowed_parameters: only version=2, nothing else.
    let body = assert_status(&server, "kv/data/pinned?version=2", &token, 200);
    assert_eq!(body["data"]["data"]["v"], "p2", "{body}");
    assert_status(&server, "kv/data/pinned", &token, 200);
    assert_status(&server, "kv/data/pinned?version=1", &token, 403);
    assert_status(&server, "kv/data/pinned?version=1,2", &token, 403);
    assert_status(&server, "kv/data/pinned?other=x", &token, 403);
    user.run(&["kv", "get", "-version=1", "kv/pinned"])
        .api_error(403, "permission denied");

    // required_parameters: a read without ?version= is refused.
    user.run(&["kv", "get", "kv/needs"])
        .api_error(403, "permission denied");
    assert_status(&server, "kv/data/needs", &token, 403);
    let body = assert_status(&server, "kv/data/needs?version=1", &token, 200);
    assert_eq!(body["data"]["data"]["v"], "n1", "{body}");
    let v = user.json(&["kv", "get", "-version=2", "-format=json", "kv/needs"]);
    assert_eq!(v["data"]["data"]["v"], "n2", "{v}");

    // List requests are not parameter-checked (Vault's AllowOperation checks
    // read/create/update/patch/recover only).
    let (status, body) = server.http("LIST", "/v1/kv/metadata/?after=a", Some(&token), None);
    assert_eq!(status, 200, "LIST with a query parameter: {body}");
    let keys = body["data"]["keys"].to_string();
    for key in ["app", "pinned", "needs"] {
        assert!(keys.contains(key), "{body}");
    }

    // The root token is not constrained.
    assert_status(&server, "kv/data/app?version=1", &root_token, 200);
}

const TEAM_GRANT: &str = r#"path "kv/data/team/*" {
  capabilities = ["read"]
}
"#;

const TEMPLATED_DENY: &str = r#"path "kv/data/team/{{identity.entity.name}}/private" {
  capabilities = ["deny"]
}
"#;

#[test]
fn templated_deny_rules_fail_closed() {
    let (server, root, root_token) = server_with_kv();
    root.run(&["kv", "put", "kv/team/alice/private", "secret=s3cr3t"])
        .ok();
    root.run(&["kv", "put", "kv/team/alice/notes", "text=hello"])
        .ok();
    let dir = server.work_dir();

    // The CLI: a grant with a templated deny next to it is refused as a
    // whole, with a 400 that says why.
    let text = format!("{TEAM_GRANT}\n{TEMPLATED_DENY}");
    let file = write_file(&dir, "team.hcl", &text);
    let out = root
        .run(&["policy", "write", "team", &file])
        .api_error(400, "templated policy paths");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("kv/data/team/{{identity.entity.name}}/private"),
        "the error names the rule: {}",
        out.describe()
    );
    assert_ne!(root.run(&["policy", "read", "team"]).code, 0);

    // Plain HTTP, both endpoints, HCL and JSON forms: 400, nothing stored.
    let json_text = json!({"path": {
        "kv/data/team/*": {"capabilities": ["read"]},
        "kv/data/team/{{identity.entity.id}}/*": {"capabilities": ["deny"]},
    }})
    .to_string();
    for (endpoint, body) in [
        ("sys/policies/acl/team", &text),
        ("sys/policy/team", &text),
        ("sys/policies/acl/team", &json_text),
    ] {
        let (status, reply) = server.http(
            "PUT",
            &format!("/v1/{endpoint}"),
            Some(&root_token),
            Some(&json!({ "policy": body })),
        );
        assert_eq!(status, 400, "PUT {endpoint}: {reply}");
        assert!(
            reply.to_string().contains("not supported"),
            "PUT {endpoint}: {reply}"
        );
    }
    let (status, reply) = get(&server, "sys/policies/acl/team", &root_token);
    assert_eq!(status, 404, "a refused policy is not stored: {reply}");

    // A token naming that policy gets nothing from it: the deny holds
    // because the grant never took effect without it.
    let token = token_with(&root, "team");
    assert_status(&server, "kv/data/team/alice/private", &token, 403);
    assert_status(&server, "kv/data/team/alice/notes", &token, 403);

    // The same policy with the deny spelled without a template is accepted
    // and enforced.
    let explicit = format!(
        "{TEAM_GRANT}\npath \"kv/data/team/+/private\" {{\n  capabilities = [\"deny\"]\n}}\n"
    );
    let file = write_file(&dir, "team-explicit.hcl", &explicit);
    root.run(&["policy", "write", "team", &file]).ok();
    assert_status(&server, "kv/data/team/alice/private", &token, 403);
    let body = assert_status(&server, "kv/data/team/alice/notes", &token, 200);
    assert_eq!(body["data"]["data"]["text"], "hello", "{body}");
}
