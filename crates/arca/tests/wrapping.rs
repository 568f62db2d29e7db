//! Response wrapping through the real `bao` CLI (`-wrap-ttl`, `bao unwrap`)
//! and plain HTTP: any answer can be wrapped into a single-use token whose
//! cubbyhole holds it; unwrapping returns it once, by token parameter or
//! with the wrapping token itself; lookup (without a token) shows where it
//! came from and changes nothing; rewrap moves it to a new token; an
//! expired wrapping token unwraps nothing; a policy's wrapping TTL limits
//! are enforced. Wrapped AppRole secret ids and child tokens work after
//! unwrapping, as in Vault's trusted-orchestrator flow.

mod common;

use std::time::Duration;

use common::{wait_until, Bao, Server};
use serde_json::{json, Value};

fn wrap_token(v: &Value) -> String {
    let t = v["wrap_info"]["token"].as_str().unwrap_or_default();
    assert!(!t.is_empty(), "no wrap_info.token in {v}");
    t.to_string()
}

fn setup() -> (Server, String, Bao) {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    (server, root, bao)
}

#[test]
fn wrap_unwrap_once_lookup_rewrap_and_expiry() {
    let (server, root, bao) = setup();

    // sys/wrapping/wrap wraps what it is given; the answer is wrap_info only.
    let v = bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=5m",
        "sys/wrapping/wrap",
        "foo=bar",
        "n=1",
    ]);
    assert!(v["data"].is_null(), "{v}");
    assert_eq!(v["wrap_info"]["ttl"], 300, "{v}");
    assert_eq!(v["wrap_info"]["creation_path"], "sys/wrapping/wrap", "{v}");
    let t = wrap_token(&v);

    // lookup needs no token and does not use the wrapping token up.
    let (code, l) = server.http(
        "POST",
        "/v1/sys/wrapping/lookup",
        None,
        Some(&json!({ "token": t })),
    );
    assert_eq!(code, 200, "{l}");
    assert_eq!(l["data"]["creation_path"], "sys/wrapping/wrap");
    assert_eq!(l["data"]["creation_ttl"], 300);

    // The other wrapping paths need a token: a tokenless call is refused
    // and does not use the wrapping token up.
    for path in ["unwrap", "rewrap", "wrap"] {
        let (code, v) = server.http(
            "POST",
            &format!("/v1/sys/wrapping/{path}"),
            None,
            Some(&json!({ "token": t })),
        );
        assert_eq!(code, 403, "tokenless sys/wrapping/{path}: {v}");
    }

    // Unwrapped once, by the CLI (token as parameter).
    let u = bao.json(&["unwrap", "-format=json", &t]);
    assert_eq!(u["data"], json!({"foo": "bar", "n": "1"}), "{u}");
    bao.run(&["unwrap", &t])
        .api_error(400, "wrapping token is not valid");

    // A wrapping token is no token for anything else.
    let t = wrap_token(&bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=60s",
        "sys/wrapping/wrap",
        "k=v",
    ]));
    let (code, _) = server.http("GET", "/v1/sys/mounts", Some(&t), None);
    assert_eq!(code, 403);
    // Unwrapped with the wrapping token itself (no argument), once.
    let own = server.bao().with_token(&t);
    let u = own.json(&["unwrap", "-format=json"]);
    assert_eq!(u["data"]["k"], "v", "{u}");
    let (code, _) = server.http("PUT", "/v1/sys/wrapping/unwrap", Some(&t), None);
    assert_eq!(code, 403, "a used wrapping token still works");

    // rewrap: the same answer under a new token; the old one is spent.
    let old = wrap_token(&bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=2m",
        "sys/wrapping/wrap",
        "a=1",
    ]));
    let (code, r) = server.http(
        "POST",
        "/v1/sys/wrapping/rewrap",
        Some(&root),
        Some(&json!({ "token": old })),
    );
    assert_eq!(code, 200, "{r}");
    let new = wrap_token(&r);
    assert_ne!(new, old);
    assert_eq!(r["wrap_info"]["ttl"], 120, "{r}");
    bao.run(&["unwrap", &old]).api_error(400, "not valid");
    assert_eq!(
        bao.json(&["unwrap", "-format=json", &new])["data"]["a"],
        "1"
    );

    // An expired wrapping token unwraps nothing.
    let short = wrap_token(&bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=1s",
        "sys/wrapping/wrap",
        "gone=soon",
    ]));
    wait_until(
        "the 1 s wrapping token to expire",
        Duration::from_secs(30),
        || {
            server
                .http(
                    "POST",
                    "/v1/sys/wrapping/lookup",
                    None,
                    Some(&json!({ "token": short })),
                )
                .0
                == 400
        },
    );
    bao.run(&["unwrap", &short]).api_error(400, "not valid");

    // Bad wrap TTLs and wrap without a TTL are refused.
    let (code, v) = server.http(
        "POST",
        "/v1/sys/wrapping/wrap",
        Some(&root),
        Some(&json!({"a": 1})),
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = common::try_http_with(
        &server.addr,
        "POST",
        "/v1/sys/wrapping/wrap",
        Some(&root),
        Some(&json!({"a": 1})),
        &[("X-Vault-Wrap-TTL", "nonsense")],
    )
    .unwrap();
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("X-Vault-Wrap-TTL"), "{v}");
}

#[test]
fn wrapped_kv_reads_tokens_and_approle_secret_ids() {
    let (server, _root, bao) = setup();
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    bao.run(&["kv", "put", "secret/app", "password=s3cr3t"])
        .ok();

    // A wrapped KV read: the caller sees no secret, the unwrapper does.
    let v = bao.json(&["kv", "get", "-format=json", "-wrap-ttl=60s", "secret/app"]);
    assert!(!v.to_string().contains("s3cr3t"), "{v}");
    assert_eq!(v["wrap_info"]["creation_path"], "secret/data/app", "{v}");
    let u = bao.json(&["unwrap", "-format=json", &wrap_token(&v)]);
    assert_eq!(u["data"]["data"]["password"], "s3cr3t", "{u}");

    // A wrapped child token: wrapped_accessor names it; it works unwrapped.
    let v = bao.json(&[
        "token",
        "create",
        "-format=json",
        "-wrap-ttl=60s",
        "-policy=default",
    ]);
    let accessor = v["wrap_info"]["wrapped_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!accessor.is_empty(), "{v}");
    let u = bao.json(&["unwrap", "-format=json", &wrap_token(&v)]);
    assert_eq!(u["auth"]["accessor"], accessor.as_str(), "{u}");
    let child = u["auth"]["client_token"].as_str().unwrap();
    let me = server
        .bao()
        .with_token(child)
        .json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["accessor"], accessor.as_str());

    // AppRole: the orchestrator gets a wrapped secret id, the app unwraps
    // it and logs in.
    bao.run(&["auth", "enable", "approle"]).ok();
    bao.run(&["write", "auth/approle/role/web", "token_policies=default"])
        .ok();
    let role_id = bao.json(&["read", "-format=json", "auth/approle/role/web/role-id"])["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=120s",
        "-f",
        "auth/approle/role/web/secret-id",
    ]);
    let secret_id = bao.json(&["unwrap", "-format=json", &wrap_token(&v)])["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = server.bao().json(&[
        "write",
        "-format=json",
        "auth/approle/login",
        &format!("role_id={role_id}"),
        &format!("secret_id={secret_id}"),
    ]);
    assert!(login["auth"]["client_token"].as_str().is_some(), "{login}");
}

#[test]
fn policies_bound_the_wrap_ttl() {
    let (server, _root, bao) = setup();
    common::write_file(
        &bao.home,
        "wrapped.hcl",
        "path \"sys/wrapping/wrap\" {\n  capabilities = [\"update\"]\n  min_wrapping_ttl = \"1m\"\n  max_wrapping_ttl = \"10m\"\n}\n",
    );
    bao.run(&["policy", "write", "wrapped", "wrapped.hcl"]).ok();
    let t = bao.json(&["token", "create", "-format=json", "-policy=wrapped"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let user = server.bao().with_token(&t);
    // Without a wrap TTL (plain HTTP: the CLI itself asks for 5m on this
    // path, as Vault's client does) the policy denies.
    let (code, v) = server.http(
        "POST",
        "/v1/sys/wrapping/wrap",
        Some(&t),
        Some(&json!({"a": 1})),
    );
    assert_eq!(code, 403, "{v}");
    let v = user.json(&["write", "-format=json", "sys/wrapping/wrap", "a=1"]);
    assert_eq!(v["wrap_info"]["ttl"], 300, "{v}");
    user.run(&["write", "-wrap-ttl=30s", "sys/wrapping/wrap", "a=1"])
        .api_error(403, "permission denied");
    user.run(&["write", "-wrap-ttl=1h", "sys/wrapping/wrap", "a=1"])
        .api_error(403, "permission denied");
    let v = user.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=5m",
        "sys/wrapping/wrap",
        "a=1",
    ]);
    wrap_token(&v);
    // The built-in response-wrapping policy cannot be changed.
    bao.run(&["policy", "write", "response-wrapping", "wrapped.hcl"])
        .api_error(400, "response-wrapping");
}

#[test]
fn wrapping_through_a_standby_is_done_by_the_active_node() {
    let n1 = Server::start_raft("n1");
    let init = n1.init_and_unseal();
    let n2 = Server::start_raft("n2");
    n2.join_and_unseal(&n1, &init.keys_b64);
    let on2 = n2.bao().with_token(&init.root_token);
    // Wrapped through the standby (forwarded), unwrapped through it too.
    let v = on2.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=60s",
        "sys/wrapping/wrap",
        "via=standby",
    ]);
    let t = wrap_token(&v);
    let u = on2.json(&["unwrap", "-format=json", &t]);
    assert_eq!(u["data"]["via"], "standby", "{u}");
    // Spent on every node.
    n1.bao()
        .with_token(&init.root_token)
        .run(&["unwrap", &t])
        .api_error(400, "not valid");
}
