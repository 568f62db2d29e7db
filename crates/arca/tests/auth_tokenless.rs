//! Only login is open without a token on every auth method: a tokenless
//! write (or read) of a method's configuration, roles, users, certificates
//! or secret ids is refused with 403 and changes nothing, through the real
//! `bao` CLI; the login paths stay reachable without a token (they answer
//! the credential error, not 403).

mod common;

use common::Server;

#[test]
fn tokenless_requests_reach_only_login() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();
    for kind in ["userpass", "approle", "jwt", "cert", "ldap"] {
        root.run(&["auth", "enable", kind]).ok();
    }
    root.run(&["write", "auth/approle/role/app", "token_policies=default"])
        .ok();

    for args in [
        &["write", "auth/userpass/users/eve", "password=x"][..],
        &["write", "auth/approle/role/eve", "token_policies=root"],
        &["write", "-f", "auth/approle/role/app/secret-id"],
        &["write", "auth/approle/role/app/role-id", "role_id=mine"],
        &["write", "auth/jwt/config", "jwt_validation_pubkeys=x"],
        &[
            "write",
            "auth/jwt/role/eve",
            "role_type=jwt",
            "user_claim=sub",
        ],
        &["write", "auth/cert/certs/eve", "certificate=x"],
        &["write", "auth/cert/config", "disable_binding=true"],
        &["write", "auth/ldap/config", "url=ldap://127.0.0.1:1"],
        &["write", "auth/ldap/groups/eve", "policies=root"],
        &["write", "auth/ldap/users/eve", "policies=root"],
        &["read", "auth/approle/role/app/role-id"],
        &["read", "auth/ldap/config"],
    ] {
        anon.run(args).api_error(403, "permission denied");
    }
    // Nothing changed.
    let (status, _) = server.http(
        "GET",
        "/v1/auth/approle/role/eve",
        Some(&init.root_token),
        None,
    );
    assert_eq!(status, 404);
    let (status, _) = server.http(
        "LIST",
        "/v1/auth/approle/role/app/secret-id",
        Some(&init.root_token),
        None,
    );
    assert_eq!(status, 404, "no secret id was made");

    // Login stays open: the answer is about the credentials, not a 403.
    anon.run(&["write", "auth/userpass/login/eve", "password=x"])
        .api_error(400, "invalid username or password");
    anon.run(&["write", "auth/approle/login", "role_id=nope", "secret_id=x"])
        .api_error(400, "invalid role or secret ID");
    for args in [
        &["write", "auth/ldap/login/eve", "password=x"][..],
        &["write", "auth/jwt/login", "role=eve", "jwt=x"],
        &["write", "-f", "auth/cert/login"],
    ] {
        let out = anon.run(args).code(2);
        assert!(out.stderr.contains("Code: 400"), "{args:?}: {}", out.stderr);
    }
}
