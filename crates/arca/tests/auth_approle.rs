//! The approle auth method through real clients, as CZERTAINLY's connector
//! and the learning path use it: `bao auth enable approle`, a role with a
//! read-only policy, its role id and a secret id, `bao write
//! auth/approle/login role_id=... secret_id=...`, reads allowed and writes
//! refused; secret-id use counts taken exactly once, TTL limits, custom
//! secret ids, lookups and destruction by secret id and by accessor, CIDR
//! restrictions on the role and on the secret id (checked before a use is
//! taken), role properties, a changed role id, renewal stopping when the
//! role is deleted, and `auth disable` revoking the tokens. hvac's approle
//! methods on a second mount.

mod common;

use common::{learning_path_setup, run_python_ok, Bao, Server};
use serde_json::{json, Value};

const READONLY: &str = r#"path "secret/data/*" { capabilities = ["read"] }"#;

/// `bao read auth/approle/role/<role>/role-id`.
fn read_role_id(root: &Bao, role: &str) -> String {
    root.json(&[
        "read",
        "-format=json",
        &format!("auth/approle/role/{role}/role-id"),
    ])["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `bao write -f auth/approle/role/<role>/secret-id [args]`: the answer.
fn new_secret_id(root: &Bao, role: &str, args: &[&str]) -> Value {
    let path = format!("auth/approle/role/{role}/secret-id");
    root.json(&[&["write", "-format=json", "-f", path.as_str()][..], args].concat())
}

/// The secret id of a [`new_secret_id`] answer.
fn secret(s: &Value) -> String {
    s["data"]["secret_id"].as_str().unwrap().to_string()
}

#[test]
fn bao_approle_login_as_czertainly_does() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();

    learning_path_setup(&server, &init.root_token, "approle", READONLY);

    // A role without any constraint is refused; nothing is stored.
    root.run(&["write", "auth/approle/role/loose", "bind_secret_id=false"])
        .api_error(400, "at least one constraint");
    let (status, _) = server.http(
        "GET",
        "/v1/auth/approle/role/loose",
        Some(&init.root_token),
        None,
    );
    assert_eq!(status, 404);

    root.run(&[
        "write",
        "auth/approle/role/App",
        "token_policies=readonly",
        "token_ttl=1h",
        "token_max_ttl=2h",
        "secret_id_num_uses=2",
        "secret_id_ttl=10m",
    ])
    .ok();
    let r = root.json(&["read", "-format=json", "auth/approle/role/app"]);
    assert_eq!(r["data"]["token_policies"], json!(["readonly"]), "{r}");
    assert_eq!(r["data"]["secret_id_num_uses"], 2, "{r}");
    assert_eq!(r["data"]["secret_id_ttl"], 600, "{r}");
    assert_eq!(r["data"]["bind_secret_id"], true, "{r}");
    assert_eq!(r["data"]["token_ttl"], 3600, "{r}");
    assert_eq!(
        root.json(&["list", "-format=json", "auth/approle/role"]),
        json!(["app"])
    );
    let role_id = read_role_id(&root, "app");

    // Limits: a secret id cannot outlive or outuse the role's.
    root.run(&["write", "auth/approle/role/app/secret-id", "ttl=1h"])
        .api_error(400, "ttl cannot be longer than the role's secret_id_ttl");
    root.run(&["write", "auth/approle/role/app/secret-id", "num_uses=5"])
        .api_error(400, "num_uses cannot be higher");
    root.run(&["write", "auth/approle/role/nope/secret-id", "num_uses=1"])
        .api_error(404, "does not exist");

    let s = new_secret_id(&root, "app", &[]);
    let secret_id = secret(&s);
    let accessor = s["data"]["secret_id_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s["data"]["secret_id_num_uses"], 2, "{s}");
    assert_eq!(s["data"]["secret_id_ttl"], 600, "{s}");
    let l = root.json(&[
        "write",
        "-format=json",
        "auth/approle/role/app/secret-id/lookup",
        &format!("secret_id={secret_id}"),
    ]);
    assert_eq!(l["data"]["secret_id_accessor"], accessor.as_str(), "{l}");
    assert_eq!(l["data"]["secret_id_num_uses"], 2, "{l}");
    assert!(
        l["data"]["expiration_time"].as_str().unwrap()
            > l["data"]["creation_time"].as_str().unwrap(),
        "{l}"
    );
    assert_eq!(
        root.json(&["list", "-format=json", "auth/approle/role/app/secret-id"]),
        json!([accessor.as_str()])
    );

    // The login CZERTAINLY makes.
    let login = |secret: &str| {
        anon.run(&[
            "write",
            "-format=json",
            "auth/approle/login",
            &format!("role_id={role_id}"),
            &format!("secret_id={secret}"),
        ])
    };
    let out = login(&secret_id).ok().json();
    let token = out["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        out["auth"]["policies"],
        json!(["default", "readonly"]),
        "{out}"
    );
    assert_eq!(out["auth"]["lease_duration"], 3600, "{out}");
    assert_eq!(out["auth"]["metadata"]["role_name"], "app", "{out}");
    let app = server.bao().with_token(&token);
    let v = app.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");
    app.run(&["kv", "put", "secret/app", "password=mine"])
        .api_error(403, "permission denied");
    app.run(&["read", "sys/mounts"])
        .api_error(403, "permission denied");
    app.run(&["read", "auth/approle/role/app/role-id"])
        .api_error(403, "permission denied");

    // Two uses: the second login takes the last one, a third is refused
    // and the secret id is gone.
    login(&secret_id).ok();
    login(&secret_id).api_error(400, "invalid role or secret ID");
    root.run(&["list", "auth/approle/role/app/secret-id"])
        .code(2);
    // A wrong secret id and a wrong role id get the same answer.
    login("not-a-secret-id").api_error(400, "invalid role or secret ID");
    anon.run(&[
        "write",
        "auth/approle/login",
        "role_id=not-a-role-id",
        &format!("secret_id={secret_id}"),
    ])
    .api_error(400, "invalid role or secret ID");
    anon.run(&["write", "auth/approle/login", &format!("role_id={role_id}")])
        .api_error(400, "missing secret_id");

    // A custom secret id; destroyed by accessor it stops working.
    let c = root.json(&[
        "write",
        "-format=json",
        "auth/approle/role/app/custom-secret-id",
        "secret_id=my-own-secret-id",
        "metadata={\"team\":\"pki\"}",
    ]);
    let custom_accessor = c["data"]["secret_id_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    root.run(&[
        "write",
        "auth/approle/role/app/custom-secret-id",
        "secret_id=my-own-secret-id",
    ])
    .api_error(400, "already registered");
    let out = login("my-own-secret-id").ok().json();
    assert_eq!(out["auth"]["metadata"]["team"], "pki", "{out}");
    let a = root.json(&[
        "write",
        "-format=json",
        "auth/approle/role/app/secret-id-accessor/lookup",
        &format!("secret_id_accessor={custom_accessor}"),
    ]);
    assert_eq!(a["data"]["secret_id_num_uses"], 1, "{a}");
    assert_eq!(a["data"]["metadata"]["team"], "pki", "{a}");
    root.run(&[
        "write",
        "auth/approle/role/app/secret-id-accessor/destroy",
        &format!("secret_id_accessor={custom_accessor}"),
    ])
    .ok();
    login("my-own-secret-id").api_error(400, "invalid role or secret ID");
    root.run(&[
        "write",
        "auth/approle/role/app/secret-id-accessor/lookup",
        &format!("secret_id_accessor={custom_accessor}"),
    ])
    .api_error(404, "failed to find accessor entry");

    // CIDR restrictions on the role: checked before a use is taken.
    root.run(&[
        "write",
        "auth/approle/role/app/secret-id-bound-cidrs",
        "secret_id_bound_cidrs=10.0.0.0/8",
    ])
    .ok();
    let s = new_secret_id(&root, "app", &[]);
    let bound = secret(&s);
    login(&bound).api_error(400, "unauthorized by CIDR restrictions on the role");
    root.run(&[
        "write",
        "auth/approle/role/app/secret-id-bound-cidrs",
        "secret_id_bound_cidrs=ten.0.0.0/8",
    ])
    .api_error(400, "invalid CIDR block");
    root.run(&[
        "write",
        "auth/approle/role/app/secret-id-bound-cidrs",
        "secret_id_bound_cidrs=127.0.0.0/8",
    ])
    .ok();
    let cidrs = root.json(&[
        "read",
        "-format=json",
        "auth/approle/role/app/secret-id-bound-cidrs",
    ]);
    assert_eq!(
        cidrs["data"]["secret_id_bound_cidrs"],
        json!(["127.0.0.0/8"]),
        "{cidrs}"
    );
    // The refused login above did not use the secret id up.
    login(&bound).ok();
    login(&bound).ok();
    // A secret id's cidr_list must lie within the role's.
    root.run(&[
        "write",
        "auth/approle/role/app/secret-id",
        "cidr_list=10.1.0.0/16",
    ])
    .api_error(400, "CIDR restrictions");
    let s = new_secret_id(&root, "app", &["cidr_list=127.0.0.2/32"]);
    let narrow = secret(&s);
    login(&narrow).api_error(400, "unauthorized by CIDR restrictions on the secret ID");

    // Role properties by their own paths.
    root.run(&["write", "auth/approle/role/app/token-ttl", "token_ttl=30m"])
        .ok();
    let t = root.json(&["read", "-format=json", "auth/approle/role/app/token-ttl"]);
    assert_eq!(t["data"], json!({"token_ttl": 1800}), "{t}");
    let p = root.json(&["read", "-format=json", "auth/approle/role/app/policies"]);
    assert_eq!(p["data"]["token_policies"], json!(["readonly"]), "{p}");
    root.run(&["write", "-f", "auth/approle/role/app/token-ttl"])
        .api_error(400, "missing token_ttl");

    // A role without a secret id, bound to loopback.
    root.run(&[
        "write",
        "auth/approle/role/bare",
        "bind_secret_id=false",
        "secret_id_bound_cidrs=127.0.0.1/32",
        "token_policies=readonly",
    ])
    .ok();
    let bare_id = read_role_id(&root, "bare");
    anon.json(&[
        "write",
        "-format=json",
        "auth/approle/login",
        &format!("role_id={bare_id}"),
    ]);
    // Its constraint cannot be removed.
    root.run(&["delete", "auth/approle/role/bare/secret-id-bound-cidrs"])
        .api_error(400, "at least one constraint");

    // Tokens bound to CIDR blocks: by the role, or narrowed by a secret id.
    root.run(&[
        "write",
        "auth/approle/role/fenced",
        "token_bound_cidrs=10.0.0.0/8,127.0.0.0/8",
    ])
    .ok();
    let fenced_id = read_role_id(&root, "fenced");
    let fenced_login = |args: &[&str]| {
        let mut a = vec![
            "write".to_string(),
            "-format=json".to_string(),
            "auth/approle/login".to_string(),
            format!("role_id={fenced_id}"),
        ];
        let s = new_secret_id(&root, "fenced", args);
        a.push(format!("secret_id={}", secret(&s)));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        anon.json(&a)["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let t = fenced_login(&[]);
    let me = server
        .bao()
        .with_token(&t)
        .json(&["token", "lookup", "-format=json"]);
    assert_eq!(
        me["data"]["bound_cidrs"],
        json!(["10.0.0.0/8", "127.0.0.0/8"]),
        "{me}"
    );
    let t = fenced_login(&["token_bound_cidrs=10.1.0.0/16"]);
    server
        .bao()
        .with_token(&t)
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
    root.run(&[
        "write",
        "auth/approle/role/fenced/secret-id",
        "token_bound_cidrs=192.168.0.0/16",
    ])
    .api_error(400, "CIDR restrictions");

    // A custom role id: the old one stops working; another role's is taken.
    root.run(&[
        "write",
        "auth/approle/role/app/role-id",
        "role_id=app-role-id",
    ])
    .ok();
    let s = new_secret_id(&root, "app", &[]);
    let fresh = secret(&s);
    anon.run(&[
        "write",
        "auth/approle/login",
        &format!("role_id={role_id}"),
        &format!("secret_id={fresh}"),
    ])
    .api_error(400, "invalid role or secret ID");
    let out = anon.json(&[
        "write",
        "-format=json",
        "auth/approle/login",
        "role_id=app-role-id",
        &format!("secret_id={fresh}"),
    ]);
    let renewable = out["auth"]["client_token"].as_str().unwrap().to_string();
    root.run(&[
        "write",
        "auth/approle/role/bare/role-id",
        "role_id=app-role-id",
    ])
    .api_error(400, "role_id already in use");

    // Only login is open without a token.
    anon.run(&["write", "auth/approle/role/evil", "bind_secret_id=true"])
        .api_error(403, "permission denied");

    // Renewal goes through the method; it stops when the role is gone.
    let w = server.bao().with_token(&renewable);
    let r = w.json(&["token", "renew", "-format=json"]);
    assert_eq!(r["auth"]["lease_duration"], 1800, "{r}");
    root.run(&["delete", "auth/approle/role/app"]).ok();
    w.run(&["token", "renew"]).api_error(400, "does not exist");
    root.run(&["read", "auth/approle/role/app"]).code(2);

    // Disabling the method revokes the tokens its logins created.
    root.run(&["auth", "disable", "approle"]).ok();
    app.run(&["token", "lookup"])
        .api_error(403, "permission denied");
}

#[test]
fn hvac_approle_methods() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let script = r#"
import sys, hvac
addr, root = sys.argv[1], sys.argv[2]
c = hvac.Client(url=addr, token=root)
c.sys.enable_auth_method("approle", path="machines")
assert c.sys.list_auth_methods()["machines/"]["type"] == "approle"
c.auth.approle.create_or_update_approle("web", token_policies=["default"], token_ttl="20m",
                                        secret_id_ttl="5m", mount_point="machines")
assert c.auth.approle.list_roles(mount_point="machines")["data"]["keys"] == ["web"]
role = c.auth.approle.read_role("web", mount_point="machines")["data"]
assert role["token_ttl"] == 1200 and role["secret_id_ttl"] == 300, role
role_id = c.auth.approle.read_role_id("web", mount_point="machines")["data"]["role_id"]
s = c.auth.approle.generate_secret_id("web", metadata={"host": "web-1"}, mount_point="machines")["data"]
info = c.auth.approle.read_secret_id("web", s["secret_id"], mount_point="machines")["data"]
assert info["metadata"] == {"host": "web-1"}, info
assert c.auth.approle.list_secret_id_accessors("web", mount_point="machines")["data"]["keys"] == [s["secret_id_accessor"]]
acc = c.auth.approle.read_secret_id_accessor("web", s["secret_id_accessor"], mount_point="machines")["data"]
assert acc["secret_id_ttl"] == 300, acc
m = hvac.Client(url=addr)
r = m.auth.approle.login(role_id, s["secret_id"], mount_point="machines")
assert r["auth"]["metadata"] == {"host": "web-1", "role_name": "web"}, r
assert m.is_authenticated() and r["auth"]["lease_duration"] == 1200, r
custom = c.auth.approle.create_custom_secret_id("web", "handed-over", mount_point="machines")["data"]
assert custom["secret_id"] == "handed-over", custom
c.auth.approle.destroy_secret_id("web", "handed-over", mount_point="machines")
try:
    hvac.Client(url=addr).auth.approle.login(role_id, "handed-over", mount_point="machines")
    raise SystemExit("a destroyed secret id should be refused")
except hvac.exceptions.InvalidRequest as e:
    assert "invalid role or secret ID" in str(e), e
c.auth.approle.destroy_secret_id_accessor("web", s["secret_id_accessor"], mount_point="machines")
try:
    hvac.Client(url=addr).auth.approle.login(role_id, s["secret_id"], mount_point="machines")
    raise SystemExit("a secret id destroyed by accessor should be refused")
except hvac.exceptions.InvalidRequest:
    pass
c.auth.approle.update_role_id("web", "web-role", mount_point="machines")
assert c.auth.approle.read_role_id("web", mount_point="machines")["data"]["role_id"] == "web-role"
c.auth.approle.delete_role("web", mount_point="machines")
try:
    c.auth.approle.list_roles(mount_point="machines")
    raise SystemExit("no roles should list as 404")
except hvac.exceptions.InvalidPath:
    pass
print("hvac approle: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[&server.addr, &init.root_token],
        "hvac approle: ok",
    );
}
