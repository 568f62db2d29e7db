//! The userpass auth method through real clients, as the learning path
//! uses it: `bao auth enable userpass`, a user with a read-only policy,
//! `bao login -method=userpass`, reads allowed and writes refused, token
//! renewal through the method (refused once the user's policies changed),
//! wrong passwords and unknown users alike, deletion, and `auth disable`
//! revoking the tokens its logins created. hvac's userpass methods on a
//! second mount.

mod common;

use common::{learning_path_setup, run_python_ok, Server};
use serde_json::json;

const READONLY: &str = r#"path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }"#;

#[test]
fn bao_userpass_login_read_only_user() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();

    learning_path_setup(&server, &init.root_token, "userpass", READONLY);

    root.run(&[
        "write",
        "auth/userpass/users/alice",
        "password=correct horse",
        "token_policies=readonly",
        "token_ttl=1h",
        "token_max_ttl=2h",
    ])
    .ok();
    let u = root.json(&["read", "-format=json", "auth/userpass/users/alice"]);
    assert_eq!(u["data"]["token_policies"], json!(["readonly"]), "{u}");
    assert_eq!(u["data"]["token_ttl"], 3600, "{u}");
    assert!(u["data"].get("password").is_none(), "{u}");
    let l = root.json(&["list", "-format=json", "auth/userpass/users"]);
    assert_eq!(l, json!(["alice"]));

    // A token type that does not exist is refused.
    root.run(&[
        "write",
        "auth/userpass/users/bob",
        "password=x",
        "token_type=bulk",
    ])
    .api_error(400, "token_type");
    // A token bound to CIDR blocks works only from inside them.
    root.run(&[
        "write",
        "auth/userpass/users/bob",
        "password=x",
        "token_bound_cidrs=ten.0.0.0/8",
    ])
    .api_error(400, "invalid CIDR block");
    root.run(&[
        "write",
        "auth/userpass/users/bob",
        "password=x",
        "token_bound_cidrs=10.0.0.0/8",
    ])
    .ok();
    root.run(&[
        "write",
        "auth/userpass/users/carol",
        "password=y",
        "token_bound_cidrs=127.0.0.0/8,10.0.0.0/8",
    ])
    .ok();
    for (user, pass, usable) in [("bob", "x", false), ("carol", "y", true)] {
        let l = anon.json(&[
            "login",
            "-method=userpass",
            "-format=json",
            "-no-store",
            &format!("username={user}"),
            &format!("password={pass}"),
        ]);
        let t = l["auth"]["client_token"].as_str().unwrap();
        let out = server
            .bao()
            .with_token(t)
            .run(&["token", "lookup", "-format=json"]);
        if usable {
            let me = out.ok().json();
            assert_eq!(
                me["data"]["bound_cidrs"],
                json!(["127.0.0.0/8", "10.0.0.0/8"]),
                "{me}"
            );
        } else {
            out.api_error(403, "permission denied");
        }
    }

    let login = anon.json(&[
        "login",
        "-method=userpass",
        "-format=json",
        "username=Alice",
        "password=correct horse",
    ]);
    let token = login["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        login["auth"]["policies"],
        json!(["default", "readonly"]),
        "{login}"
    );
    assert_eq!(login["auth"]["lease_duration"], 3600, "{login}");
    assert_eq!(login["auth"]["metadata"]["username"], "alice", "{login}");
    let alice = server.bao().with_token(&token);
    let me = alice.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["display_name"], "userpass-alice", "{me}");
    assert_eq!(me["data"]["path"], "auth/userpass/login/Alice", "{me}");

    // Reads allowed, writes refused.
    let v = alice.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");
    alice
        .run(&["kv", "put", "secret/app", "password=mine"])
        .api_error(403, "permission denied");

    // Only login is open without a token: a tokenless write elsewhere on
    // the mount is refused.
    anon.run(&["write", "auth/userpass/users/eve", "password=x"])
        .api_error(403, "permission denied");

    // Wrong password and unknown user: the same answer.
    for (u, p) in [("alice", "wrong"), ("nobody", "correct horse")] {
        anon.run(&[
            "login",
            "-method=userpass",
            &format!("username={u}"),
            &format!("password={p}"),
        ])
        .api_error(400, "invalid username or password");
    }

    // Renewal goes through the method; it stops when the policies change.
    let r = alice.json(&["token", "renew", "-format=json"]);
    assert!(r["auth"]["lease_duration"].as_u64().unwrap() > 3000, "{r}");
    root.run(&[
        "write",
        "auth/userpass/users/alice/policies",
        "token_policies=other",
    ])
    .ok();
    alice
        .run(&["token", "renew"])
        .api_error(400, "policies have changed");

    // A new password works, the old one no longer.
    root.run(&[
        "write",
        "auth/userpass/users/alice/password",
        "password=battery staple",
    ])
    .ok();
    anon.run(&[
        "login",
        "-method=userpass",
        "username=alice",
        "password=correct horse",
    ])
    .api_error(400, "invalid username or password");
    anon.json(&[
        "login",
        "-method=userpass",
        "-format=json",
        "username=alice",
        "password=battery staple",
    ]);

    // Disabling the method revokes the tokens its logins created.
    root.run(&["auth", "disable", "userpass"]).ok();
    alice
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
    let list = root.json(&["auth", "list", "-format=json"]);
    assert!(list.get("userpass/").is_none(), "{list}");
}

#[test]
fn hvac_userpass_methods() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let script = r#"
import sys, hvac
addr, root = sys.argv[1], sys.argv[2]
c = hvac.Client(url=addr, token=root)
c.sys.enable_auth_method("userpass", path="people")
c.auth.userpass.create_or_update_user("bob", password="pw-1", policies=["default"], mount_point="people")
assert c.auth.userpass.list_user(mount_point="people")["data"]["keys"] == ["bob"]
u = c.auth.userpass.read_user("bob", mount_point="people")
assert u["data"]["token_policies"] == ["default"], u
b = hvac.Client(url=addr)
r = b.auth.userpass.login("bob", "pw-1", mount_point="people")
assert r["auth"]["client_token"] and b.is_authenticated(), r
c.auth.userpass.update_password_on_user("bob", "pw-2", mount_point="people")
try:
    hvac.Client(url=addr).auth.userpass.login("bob", "pw-1", mount_point="people")
    raise SystemExit("the old password should be refused")
except hvac.exceptions.InvalidRequest as e:
    assert "invalid username or password" in str(e), e
c.auth.userpass.delete_user("bob", mount_point="people")
try:
    hvac.Client(url=addr).auth.userpass.login("bob", "pw-2", mount_point="people")
    raise SystemExit("a deleted user should be refused")
except hvac.exceptions.InvalidRequest:
    pass
print("hvac userpass: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[&server.addr, &init.root_token],
        "hvac userpass: ok",
    );
}
