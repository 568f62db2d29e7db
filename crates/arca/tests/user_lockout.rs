//! User lockout through the real `bao` CLI, as Vault ≥ 1.13 does it: after
//! `lockout_threshold` failed logins an alias is refused (403) even with
//! the right credentials, unknown usernames lock the same way (no
//! enumeration), `sys/locked-users` lists the alias, an unlock lifts it;
//! approle locks by role id after wrong secret ids (default threshold 5);
//! a mount tuned with `lockout_disable` never locks; bad tunes are refused;
//! the server configuration's `user_lockout` stanzas under a mount's tune.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn bao_user_lockout() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();

    root.run(&["auth", "enable", "userpass"]).ok();
    root.run(&[
        "auth",
        "tune",
        "-user-lockout-threshold=3",
        "-user-lockout-duration=15m",
        "-user-lockout-counter-reset-duration=15m",
        "userpass/",
    ])
    .ok();
    let tune = root.json(&["read", "-format=json", "sys/auth/userpass/tune"]);
    assert_eq!(tune["data"]["user_lockout_threshold"], 3, "{tune}");
    assert_eq!(tune["data"]["user_lockout_duration"], 900, "{tune}");
    root.run(&["write", "auth/userpass/users/alice", "password=right"])
        .ok();
    let login = |user: &str, pass: &str| {
        anon.run(&[
            "login",
            "-method=userpass",
            "-no-store",
            &format!("username={user}"),
            &format!("password={pass}"),
        ])
    };

    // Three failures, then even the right password is refused.
    for _ in 0..3 {
        login("alice", "wrong").api_error(400, "invalid username or password");
    }
    login("alice", "right").api_error(403, "permission denied");
    // A username that does not exist locks the same way.
    for _ in 0..3 {
        login("ghost", "x").api_error(400, "invalid username or password");
    }
    login("ghost", "x").api_error(403, "permission denied");

    let accessor = root.json(&["auth", "list", "-format=json"])["userpass/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let locked = root.json(&["read", "-format=json", "sys/locked-users"]);
    assert_eq!(locked["data"]["total"], 2, "{locked}");
    assert_eq!(
        locked["data"]["by_namespace"][0]["mount_accessors"][0]["alias_identifiers"],
        json!(["alice", "ghost"]),
        "{locked}"
    );
    assert_eq!(
        locked["data"]["by_namespace"][0]["mount_accessors"][0]["mount_accessor"],
        accessor.as_str(),
        "{locked}"
    );

    // An unlock lifts it, and the count starts again.
    root.run(&[
        "write",
        "-f",
        &format!("sys/locked-users/{accessor}/unlock/alice"),
    ])
    .ok();
    login("alice", "wrong").api_error(400, "invalid username or password");
    login("alice", "right").ok();
    login("alice", "wrong").api_error(400, "invalid username or password");
    login("alice", "wrong").api_error(400, "invalid username or password");
    login("alice", "right").ok();
    let locked = root.json(&["read", "-format=json", "sys/locked-users"]);
    assert_eq!(locked["data"]["total"], 1, "only ghost is left: {locked}");
    root.run(&[
        "write",
        "-f",
        "sys/locked-users/auth_userpass_nope/unlock/alice",
    ])
    .api_error(400, "no auth mount has the accessor");

    // AppRole locks by role id, after the default 5 wrong secret ids.
    root.run(&["auth", "enable", "approle"]).ok();
    root.run(&["write", "auth/approle/role/app", "token_policies=default"])
        .ok();
    let role_id = root.json(&["read", "-format=json", "auth/approle/role/app/role-id"])["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = root.json(&[
        "write",
        "-format=json",
        "-f",
        "auth/approle/role/app/secret-id",
    ])["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let approle = |secret: &str| {
        anon.run(&[
            "write",
            "auth/approle/login",
            &format!("role_id={role_id}"),
            &format!("secret_id={secret}"),
        ])
    };
    for _ in 0..5 {
        approle("wrong").api_error(400, "invalid role or secret ID");
    }
    approle(&secret_id).api_error(403, "permission denied");

    // A mount with lockout disabled never locks.
    root.run(&["auth", "enable", "-path=open", "userpass"]).ok();
    root.run(&["auth", "tune", "-user-lockout-disable", "open/"])
        .ok();
    root.run(&["write", "auth/open/users/bob", "password=right"])
        .ok();
    for _ in 0..8 {
        anon.run(&["write", "auth/open/login/bob", "password=wrong"])
            .api_error(400, "invalid username or password");
    }
    anon.run(&["write", "auth/open/login/bob", "password=right"])
        .ok();

    // Bad tunes are refused; nothing changes.
    root.run(&[
        "write",
        "sys/auth/userpass/tune",
        "user_lockout_config={\"lockout_treshold\":\"3\"}",
    ])
    .api_error(400, "unknown user_lockout_config key");
    root.run(&["secrets", "enable", "-path=kv", "kv"]).ok();
    root.run(&[
        "write",
        "sys/mounts/kv/tune",
        "user_lockout_config={\"lockout_threshold\":\"3\"}",
    ])
    .api_error(400, "auth mounts only");
    let tune = root.json(&["read", "-format=json", "sys/auth/userpass/tune"]);
    assert_eq!(tune["data"]["user_lockout_threshold"], 3, "{tune}");
}

/// The server configuration's `user_lockout` stanzas: `userpass` wins over
/// `all`, a mount's own tune wins over both.
#[test]
fn server_config_user_lockout_stanza() {
    let server = Server::start_rocksdb_with(
        "",
        "user_lockout \"all\" {\n  lockout_threshold = 4\n}\nuser_lockout \"userpass\" {\n  lockout_threshold = 2\n  lockout_duration = \"1h\"\n}\n",
    );
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();
    root.run(&["auth", "enable", "userpass"]).ok();
    root.run(&["auth", "enable", "-path=tuned", "userpass"])
        .ok();
    root.run(&["auth", "tune", "-user-lockout-threshold=3", "tuned/"])
        .ok();
    for mount in ["userpass", "tuned"] {
        root.run(&[
            "write",
            &format!("auth/{mount}/users/bob"),
            "password=right",
        ])
        .ok();
    }
    let login = |mount: &str, pass: &str| {
        anon.run(&[
            "login",
            "-method=userpass",
            &format!("-path={mount}"),
            "-no-store",
            "username=bob",
            &format!("password={pass}"),
        ])
    };
    // The server's userpass stanza: locked after 2 failures.
    for _ in 0..2 {
        login("userpass", "wrong").api_error(400, "invalid username or password");
    }
    login("userpass", "right").api_error(403, "permission denied");
    // The tuned mount: 3.
    for _ in 0..2 {
        login("tuned", "wrong").api_error(400, "invalid username or password");
    }
    login("tuned", "right").ok();
    for _ in 0..3 {
        login("tuned", "wrong").api_error(400, "invalid username or password");
    }
    login("tuned", "right").api_error(403, "permission denied");
}
