//! Security defects found in review (issue 10), one test per defect, each
//! against real `arca server` processes over HTTP, with the `bao` CLI and
//! openssl where users would use them.

mod common;

use std::time::Duration;

use common::{openssl, wait_until, Server};
use serde_json::{json, Value};

/// A server initialised and unsealed, with its root token.
fn unsealed() -> (Server, String) {
    let s = Server::start();
    let init = s.init_and_unseal();
    (s, init.root_token)
}

/// A token with the given inline policy (written as `name`).
fn token_with_policy(s: &Server, root: &str, name: &str, hcl: &str) -> String {
    s.http_ok(
        "PUT",
        &format!("/v1/sys/policies/acl/{name}"),
        Some(root),
        Some(&json!({ "policy": hcl })),
    );
    let v = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(root),
        Some(&json!({ "policies": [name] })),
    );
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

fn errors(v: &Value) -> String {
    v["errors"].to_string()
}

#[test]
fn unauthenticated_pki_issuer_paths_refuse_writes() {
    let (s, root) = unsealed();
    let r = Some(root.as_str());
    s.http_ok(
        "POST",
        "/v1/sys/mounts/pki",
        r,
        Some(&json!({"type": "pki"})),
    );
    s.http_ok(
        "POST",
        "/v1/pki/root/generate/internal",
        r,
        Some(&json!({"common_name": "Root", "issuer_name": "root"})),
    );
    let before = s.http_ok("GET", "/v1/pki/issuer/default", r, None);
    let usage = before["data"]["usage"].clone();
    assert!(
        usage.to_string().contains("issuing-certificates"),
        "{before}"
    );

    // The public forms stay readable without a token.
    for suffix in ["pem", "der", "json"] {
        let (code, _) = s.http(
            "GET",
            &format!("/v1/pki/issuer/default/{suffix}"),
            None,
            None,
        );
        assert_eq!(code, 200, "GET issuer/default/{suffix}");
    }
    // LIST issuers is public too, as in Vault.
    let (code, v) = s.http("LIST", "/v1/pki/issuers", None, None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["data"]["keys"].as_array().map(|a| a.len()),
        Some(1),
        "{v}"
    );
    // The public JSON carries the certificates only (as Vault's).
    let (_, pubjson) = s.http("GET", "/v1/pki/issuer/default/json", None, None);
    assert!(
        pubjson["data"]["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN"),
        "{pubjson}"
    );
    for private in ["key_id", "usage", "manual_chain"] {
        assert!(
            pubjson["data"].get(private).is_none(),
            "{private} in {pubjson}"
        );
    }
    // ... but nothing else on them: no token, no write.
    for suffix in ["pem", "der", "json"] {
        let path = format!("/v1/pki/issuer/default/{suffix}");
        let (code, v) = s.http(
            "POST",
            &path,
            None,
            Some(&json!({"usage": "read-only", "issuer_name": "pwned"})),
        );
        assert_eq!(code, 403, "POST {path} without a token: {v}");
        let (code, v) = s.http("DELETE", &path, None, None);
        assert_eq!(code, 403, "DELETE {path} without a token: {v}");
    }
    // A token whose policy only reads is refused too (the ACL applies).
    let reader = token_with_policy(
        &s,
        &root,
        "pki-reader",
        r#"path "pki/*" { capabilities = ["read", "list"] }"#,
    );
    let (code, v) = s.http(
        "POST",
        "/v1/pki/issuer/default/pem",
        Some(&reader),
        Some(&json!({"usage": "read-only"})),
    );
    assert_eq!(code, 403, "{v}");
    // The suffixed forms are read-only even with root.
    let (code, v) = s.http(
        "POST",
        "/v1/pki/issuer/default/json",
        r,
        Some(&json!({"usage": "read-only"})),
    );
    assert_eq!(code, 405, "{v}");

    let after = s.http_ok("GET", "/v1/pki/issuer/default", r, None);
    assert_eq!(after["data"]["usage"], usage, "{after}");
    assert_eq!(after["data"]["issuer_name"], "root", "{after}");

    // OCSP POST is declared public and stays so; sys's public paths are
    // read-only.
    let (code, v) = s.http("POST", "/v1/sys/internal/ui/mounts", None, Some(&json!({})));
    assert_eq!(code, 403, "{v}");
}

#[test]
fn health_status_code_out_of_range_is_a_400() {
    let s = Server::start();
    s.init_and_unseal();
    for q in [
        "activecode=1000",
        "activecode=0",
        "activecode=99",
        "standbycode=-1",
        "sealedcode=x",
    ] {
        let (code, v) = s.http("GET", &format!("/v1/sys/health?{q}"), None, None);
        assert_eq!(code, 400, "{q}: {v}");
    }
    let (code, _) = s.http("GET", "/v1/sys/health?activecode=299", None, None);
    assert_eq!(code, 299, "a valid custom code is used");
    let (code, _) = s.http("GET", "/v1/sys/health", None, None);
    assert_eq!(code, 200, "the server is still serving");
}

#[test]
fn periodic_tokens_need_sudo_and_are_capped_by_the_mount_max() {
    let (s, root) = unsealed();
    let creator = token_with_policy(
        &s,
        &root,
        "creator",
        r#"path "auth/token/create" { capabilities = ["create", "update"] }"#,
    );
    let (code, v) = s.http(
        "POST",
        "/v1/auth/token/create",
        Some(&creator),
        Some(&json!({"period": "1h", "policies": ["default"]})),
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v).contains("sudo"), "{v}");
    // Without a period the same token creates children.
    s.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&creator),
        Some(&json!({"policies": ["default"]})),
    );
    // With sudo it may; a period above the mount's max TTL (768h) is capped.
    let sudoer = token_with_policy(
        &s,
        &root,
        "sudoer",
        r#"path "auth/token/create" { capabilities = ["create", "update", "sudo"] }"#,
    );
    let v = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&sudoer),
        Some(&json!({"period": "100000h", "policies": ["default"]})),
    );
    assert_eq!(v["auth"]["lease_duration"], 768 * 3600, "{v}");
    assert!(v["warnings"].to_string().contains("period"), "{v}");
    let t = v["auth"]["client_token"].as_str().unwrap();
    let look = s.http_ok("GET", "/v1/auth/token/lookup-self", Some(t), None);
    assert_eq!(look["data"]["period"], 768 * 3600, "{look}");
}

#[test]
fn single_use_token_allows_exactly_one_of_twenty_parallel_requests() {
    let (s, root) = unsealed();
    let r = Some(root.as_str());
    s.http_ok("POST", "/v1/sys/mounts/kv", r, Some(&json!({"type": "kv"})));
    s.http_ok("PUT", "/v1/kv/x", r, Some(&json!({"v": "1"})));
    spend_single_use_token_concurrently(&s, &s, &root);
}

/// Creates `num_uses=1` tokens on `creator` and fires 20 parallel reads
/// with each at `target`: exactly one may succeed, every time.
fn spend_single_use_token_concurrently(creator: &Server, target: &Server, root: &str) {
    creator.http_ok(
        "PUT",
        "/v1/sys/policies/acl/kv-read",
        Some(root),
        Some(&json!({"policy": r#"path "kv/*" { capabilities = ["read"] }"#})),
    );
    for round in 0..3 {
        let v = creator.http_ok(
            "POST",
            "/v1/auth/token/create",
            Some(root),
            Some(&json!({"policies": ["kv-read"], "num_uses": 1})),
        );
        let token = v["auth"]["client_token"].as_str().unwrap().to_string();
        let addr = target.addr.clone();
        let codes: Vec<u16> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..20)
                .map(|_| {
                    let (addr, token) = (addr.clone(), token.clone());
                    sc.spawn(move || {
                        common::try_http(&addr, "GET", "/v1/kv/x", Some(&token), None)
                            .map(|(c, _)| c)
                            .unwrap_or(0)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = codes.iter().filter(|c| **c == 200).count();
        assert_eq!(ok, 1, "round {round}: statuses {codes:?}");
        assert!(
            codes.iter().all(|c| *c == 200 || *c == 403),
            "round {round}: statuses {codes:?}"
        );
    }
}

/// Two raft nodes: n1 initialised and active, n2 joined and unsealed as a
/// standby. Returns the nodes and n1's init result.
fn two_node_cluster() -> (Server, Server, common::InitResult) {
    let n1 = Server::start_raft("n1");
    let init = n1.init_and_unseal();
    let n2 = Server::start_raft("n2");
    n2.join_and_unseal(&n1, &init.keys_b64[..3]);
    (n1, n2, init)
}

#[test]
fn single_use_token_through_a_standby() {
    let (n1, n2, init) = two_node_cluster();
    let root = init.root_token;
    let r = Some(root.as_str());
    n1.http_ok("POST", "/v1/sys/mounts/kv", r, Some(&json!({"type": "kv"})));
    n1.http_ok("PUT", "/v1/kv/x", r, Some(&json!({"v": "1"})));
    assert_eq!(
        n2.http("GET", "/v1/sys/health", None, None).0,
        429,
        "n2 is a standby"
    );
    spend_single_use_token_concurrently(&n1, &n2, &root);
}

#[test]
fn sealing_the_active_node_fails_over() {
    // Three nodes: a sealed node leaves the cluster's traffic, so the two
    // others must still make a quorum.
    let (n1, n2, init) = two_node_cluster();
    let n3 = Server::start_raft("n3");
    n3.join_and_unseal(&n1, &init.keys_b64[..3]);
    let root = init.root_token;
    let r = Some(root.as_str());
    n1.http_ok("POST", "/v1/sys/mounts/kv", r, Some(&json!({"type": "kv"})));
    n1.http_ok("PUT", "/v1/kv/before", r, Some(&json!({"v": "1"})));
    n1.http_ok("PUT", "/v1/sys/seal", r, None);
    assert_eq!(
        n1.http("GET", "/v1/sys/health", None, None).0,
        503,
        "n1 is sealed"
    );
    // A standby takes over and serves writes itself.
    wait_until(
        "n2 or n3 becomes the active node",
        Duration::from_secs(60),
        || {
            [&n2, &n3]
                .iter()
                .any(|n| n.http("GET", "/v1/sys/health", None, None).0 == 200)
        },
    );
    let active = if n2.http("GET", "/v1/sys/health", None, None).0 == 200 {
        &n2
    } else {
        &n3
    };
    active.http_ok("PUT", "/v1/kv/after", r, Some(&json!({"v": "2"})));
    let v = active.http_ok("GET", "/v1/kv/before", r, None);
    assert_eq!(v["data"]["v"], "1", "{v}");
    // Unsealed again, n1 rejoins as a standby that forwards to the new
    // active node.
    n1.unseal_as_standby(&init.keys_b64[..3]);
    assert_eq!(
        n1.http("GET", "/v1/sys/health", None, None).0,
        429,
        "n1 is a standby"
    );
    n1.http_ok("PUT", "/v1/kv/again", r, Some(&json!({"v": "3"})));
    let v = active.http_ok("GET", "/v1/kv/again", r, None);
    assert_eq!(v["data"]["v"], "3", "{v}");
}

#[test]
fn secret_engines_cannot_be_mounted_under_auth_or_audit() {
    let (s, root) = unsealed();
    let r = Some(root.as_str());
    for path in ["auth/token/create", "auth/foo", "auth", "audit/x", "audit"] {
        let (code, v) = s.http(
            "POST",
            &format!("/v1/sys/mounts/{path}"),
            r,
            Some(&json!({"type": "kv"})),
        );
        assert_eq!(code, 400, "mount at {path}: {v}");
    }
    s.http_ok("POST", "/v1/sys/mounts/kv", r, Some(&json!({"type": "kv"})));
    let (code, v) = s.http(
        "POST",
        "/v1/sys/remount",
        r,
        Some(&json!({"from": "kv", "to": "audit/kv"})),
    );
    assert_eq!(code, 400, "{v}");
    // auth/token/ still answers.
    let v = s.http_ok("GET", "/v1/auth/token/lookup-self", r, None);
    assert_eq!(v["data"]["policies"], json!(["root"]), "{v}");
    let mounts = s.http_ok("GET", "/v1/sys/mounts", r, None);
    assert!(mounts["data"].get("auth/foo/").is_none(), "{mounts}");
}

#[test]
fn pki_sudo_paths_need_sudo() {
    let (s, root) = unsealed();
    let r = Some(root.as_str());
    s.http_ok(
        "POST",
        "/v1/sys/mounts/pki",
        r,
        Some(&json!({"type": "pki"})),
    );
    let v = s.http_ok(
        "POST",
        "/v1/pki/root/generate/internal",
        r,
        Some(&json!({"common_name": "Root"})),
    );
    let ca = v["data"]["certificate"].as_str().unwrap().to_string();
    let admin = token_with_policy(
        &s,
        &root,
        "pki-admin",
        r#"path "pki/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    );
    for (method, path, body) in [
        ("DELETE", "/v1/pki/root", None),
        (
            "POST",
            "/v1/pki/root/sign-self-issued",
            Some(json!({"certificate": ca})),
        ),
        (
            "POST",
            "/v1/pki/issuer/default/sign-self-issued",
            Some(json!({"certificate": ca})),
        ),
    ] {
        let (code, v) = s.http(method, path, Some(&admin), body.as_ref());
        assert_eq!(code, 403, "{method} {path} without sudo: {v}");
    }
    // The issuer is still there; with sudo the same calls go through.
    s.http_ok("GET", "/v1/pki/issuer/default", r, None);
    let sudo = token_with_policy(
        &s,
        &root,
        "pki-sudo",
        r#"path "pki/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#,
    );
    s.http_ok(
        "POST",
        "/v1/pki/root/sign-self-issued",
        Some(&sudo),
        Some(&json!({"certificate": ca})),
    );
    s.http_ok("DELETE", "/v1/pki/root", Some(&sudo), None);
}

#[test]
fn children_of_an_expired_parent_are_refused() {
    let (s, root) = unsealed();
    let r = Some(root.as_str());
    s.http_ok(
        "PUT",
        "/v1/sys/policies/acl/creator",
        r,
        Some(&json!({"policy": r#"path "auth/token/create" { capabilities = ["update"] }"#})),
    );
    let v = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        r,
        Some(&json!({"ttl": "2s", "policies": ["creator"]})),
    );
    let parent = v["auth"]["client_token"].as_str().unwrap().to_string();
    let v = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&parent),
        Some(&json!({"ttl": "1h"})),
    );
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    let v = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&child),
        Some(&json!({"ttl": "1h"})),
    );
    let grandchild = v["auth"]["client_token"].as_str().unwrap().to_string();
    s.http_ok("GET", "/v1/auth/token/lookup-self", Some(&child), None);
    wait_until("the parent token expires", Duration::from_secs(60), || {
        s.http("GET", "/v1/auth/token/lookup-self", Some(&parent), None)
            .0
            == 403
    });
    for (name, t) in [("child", &child), ("grandchild", &grandchild)] {
        let (code, v) = s.http("GET", "/v1/auth/token/lookup-self", Some(t), None);
        assert_eq!(code, 403, "{name} of an expired parent: {v}");
        let (code, v) = s.http(
            "POST",
            "/v1/auth/token/lookup",
            r,
            Some(&json!({"token": t})),
        );
        assert_ne!(code, 200, "lookup of the {name} by root: {v}");
    }
}

#[test]
fn pki_sign_refuses_a_csr_whose_key_the_role_does_not_allow() {
    let (s, root) = unsealed();
    let r = Some(root.as_str());
    let dir = s.work_dir();
    s.http_ok(
        "POST",
        "/v1/sys/mounts/pki",
        r,
        Some(&json!({"type": "pki"})),
    );
    s.http_ok(
        "POST",
        "/v1/pki/root/generate/internal",
        r,
        Some(&json!({"common_name": "Root"})),
    );
    s.http_ok(
        "POST",
        "/v1/pki/roles/web",
        r,
        Some(&json!({"allow_any_name": true, "key_type": "rsa", "key_bits": 2048})),
    );
    let csr = |name: &str, key_args: &[&str]| -> String {
        let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=example.com"];
        args.extend_from_slice(key_args);
        let key_name = format!("{name}.key");
        args.extend_from_slice(&["-keyout", &key_name]);
        let out_name = format!("{name}.csr");
        args.extend_from_slice(&["-out", &out_name]);
        openssl(&dir, &args);
        std::fs::read_to_string(dir.join(&out_name)).unwrap()
    };
    let ec = csr(
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let small = csr("rsa1024", &["-newkey", "rsa:1024"]);
    let good = csr("rsa2048", &["-newkey", "rsa:2048"]);
    for (what, pem) in [("EC", &ec), ("RSA-1024", &small)] {
        let (code, v) = s.http(
            "POST",
            "/v1/pki/sign/web",
            r,
            Some(&json!({"csr": pem, "common_name": "example.com"})),
        );
        assert_eq!(code, 400, "{what} CSR on an rsa-2048 role: {v}");
    }
    let v = s.http_ok(
        "POST",
        "/v1/pki/sign/web",
        r,
        Some(&json!({"csr": good, "common_name": "example.com"})),
    );
    assert!(v["data"]["certificate"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    // A role with key_type=any signs both.
    s.http_ok(
        "POST",
        "/v1/pki/roles/any",
        r,
        Some(&json!({"allow_any_name": true, "key_type": "any"})),
    );
    s.http_ok(
        "POST",
        "/v1/pki/sign/any",
        r,
        Some(&json!({"csr": ec, "common_name": "example.com"})),
    );
    // ... but never an RSA key below 2048 bits.
    let (code, v) = s.http(
        "POST",
        "/v1/pki/sign/any",
        r,
        Some(&json!({"csr": small, "common_name": "example.com"})),
    );
    assert_eq!(code, 400, "RSA-1024 CSR on an any role: {v}");
}

#[test]
fn raft_bootstrap_challenges_are_bounded_and_a_pending_join_is_not_replaced() {
    let n1 = Server::start_raft("n1");
    let root = n1.init_and_unseal().root_token;

    // A joining node keeps its first pending join: a second join request
    // (to another "leader") is refused, not swapped in.
    let n2 = Server::start_raft("n2");
    n2.http_ok(
        "PUT",
        "/v1/sys/storage/raft/join",
        None,
        Some(&json!({"leader_api_addr": n1.addr})),
    );
    for retry in [false, true, true, true] {
        let (code, v) = n2.http(
            "PUT",
            "/v1/sys/storage/raft/join",
            None,
            Some(&json!({"leader_api_addr": "http://127.0.0.1:9", "retry": retry})),
        );
        assert_eq!(code, 400, "{v}");
        assert!(errors(&v).contains("already pending"), "{v}");
    }

    // Long server ids are refused; outstanding challenges are capped (n2's
    // challenge is one of them).
    let (code, v) = n1.http(
        "POST",
        "/v1/sys/storage/raft/bootstrap/challenge",
        None,
        Some(&json!({"server_id": "x".repeat(10_000)})),
    );
    assert_eq!(code, 400, "{v}");
    let mut refused = None;
    for i in 0..100 {
        let (code, v) = n1.http(
            "POST",
            "/v1/sys/storage/raft/bootstrap/challenge",
            None,
            Some(&json!({"server_id": format!("stranger-{i}")})),
        );
        if code != 200 {
            assert_eq!(code, 503, "{v}");
            refused = Some(i);
            break;
        }
    }
    assert_eq!(
        refused,
        Some(63),
        "the 65th outstanding challenge is refused"
    );
    // A forged answer admits nobody.
    let (code, v) = n1.http(
        "POST",
        "/v1/sys/storage/raft/bootstrap/answer",
        None,
        Some(&json!({"server_id": "stranger-1", "answer": "AAAA", "cluster_addr": "http://127.0.0.1:1"})),
    );
    assert_eq!(code, 400, "{v}");
    let peers = n1.http_ok(
        "GET",
        "/v1/sys/storage/raft/configuration",
        Some(&root),
        None,
    );
    assert_eq!(
        peers["data"]["config"]["servers"].as_array().unwrap().len(),
        1,
        "{peers}"
    );
}
