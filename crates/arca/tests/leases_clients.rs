//! Leases through real clients: a PKI role with `generate_lease=true` hands
//! out certificates with a lease (as in Vault); the `bao` CLI and hvac look
//! them up, try to renew them, revoke them one by one and by prefix; the
//! certificate is revoked with its lease, when its token is revoked, and
//! when its lease expires (the expiration manager, no client involved).
//!
//! Delays are reported as figures; the only bounds asserted are generous
//! (the manager ticks every second; 60 s is allowed).

mod common;

use std::time::{Duration, Instant};

use common::{run_python_ok, Server};
use serde_json::json;

fn setup(server: &Server, root: &str) {
    let bao = server.bao().with_token(root);
    bao.run(&["secrets", "enable", "pki"]).ok();
    bao.run(&[
        "write",
        "pki/root/generate/internal",
        "common_name=example.com",
        "ttl=24h",
    ])
    .ok();
    bao.run(&[
        "write",
        "pki/roles/web",
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "generate_lease=true",
        "ttl=1h",
    ])
    .ok();
    // Refused: a lease revokes its certificate by serial.
    bao.run(&[
        "write",
        "pki/roles/bad",
        "allow_any_name=true",
        "generate_lease=true",
        "no_store=true",
    ])
    .api_error(400, "generate_lease");
}

/// (lease id, lease duration, serial) of a new certificate.
fn issue(server: &Server, token: &str, role: &str, cn: &str) -> (String, u64, String) {
    let v = server.bao().with_token(token).json(&[
        "write",
        "-format=json",
        &format!("pki/issue/{role}"),
        &format!("common_name={cn}"),
    ]);
    (
        v["lease_id"].as_str().unwrap_or_default().to_string(),
        v["lease_duration"].as_u64().unwrap_or(0),
        v["data"]["serial_number"].as_str().unwrap().to_string(),
    )
}

fn revoked(server: &Server, serial: &str) -> bool {
    let v = server.http_ok("GET", &format!("/v1/pki/cert/{serial}"), None, None);
    v["data"]["revocation_time"].as_i64().unwrap_or(0) > 0
}

/// Seconds until the certificate shows as revoked (≤ 60 s, else a failure).
fn wait_revoked(server: &Server, serial: &str) -> f64 {
    let t0 = Instant::now();
    while !revoked(server, serial) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "certificate {serial} not revoked after 60 s; server log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed().as_secs_f64()
}

#[test]
fn bao_lease_commands_on_leased_certificates() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    setup(&server, &root);
    let bao = server.bao().with_token(&root);

    let (id, ttl, serial) = issue(&server, &root, "web", "a.example.com");
    assert!(id.starts_with("pki/issue/web/"), "{id}");
    assert!(
        (3500..=3600).contains(&ttl),
        "lease lasts as long as the certificate: {ttl}"
    );

    let v = bao.json(&["lease", "lookup", "-format=json", &id]);
    assert_eq!(v["data"]["id"], id.as_str(), "{v}");
    assert_eq!(v["data"]["renewable"], false, "{v}");
    assert!(v["data"]["ttl"].as_i64().unwrap() > 3000, "{v}");
    // Certificates cannot be renewed (Vault's PKI leases are not renewable).
    bao.run(&["lease", "renew", &id])
        .api_error(400, "not renewable");

    assert!(!revoked(&server, &serial));
    bao.run(&["lease", "revoke", &id]).ok();
    assert!(
        revoked(&server, &serial),
        "revoking the lease revokes the certificate"
    );
    bao.run(&["lease", "lookup", &id]).code(2);

    // -prefix revokes every lease under a path.
    let (_, _, s1) = issue(&server, &root, "web", "b.example.com");
    let (_, _, s2) = issue(&server, &root, "web", "c.example.com");
    bao.run(&["lease", "revoke", "-prefix", "pki/issue/web"])
        .ok();
    assert!(revoked(&server, &s1) && revoked(&server, &s2));

    // A token without sudo cannot revoke by prefix.
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/issuer",
        Some(&root),
        Some(&json!({"policy": "path \"pki/issue/web\" { capabilities = [\"update\"] }\npath \"sys/leases/*\" { capabilities = [\"update\", \"list\"] }"})),
    );
    let t = server.http_ok(
        "PUT",
        "/v1/auth/token/create",
        Some(&root),
        Some(&json!({"policies": ["issuer"]})),
    );
    let user = t["auth"]["client_token"].as_str().unwrap().to_string();
    server
        .bao()
        .with_token(&user)
        .run(&["lease", "revoke", "-prefix", "pki/"])
        .api_error(403, "permission denied");

    // Revoking the token that got the certificate revokes its lease.
    let (_, _, s3) = issue(&server, &user, "web", "d.example.com");
    bao.run(&["token", "revoke", &user]).ok();
    let delay = wait_revoked(&server, &s3);
    println!("certificate revoked {delay:.2} s after its token was revoked");
}

#[test]
fn an_expired_lease_revokes_its_certificate() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    setup(&server, &root);
    let bao = server.bao().with_token(&root);
    bao.run(&[
        "write",
        "pki/roles/short",
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "generate_lease=true",
        "ttl=3s",
    ])
    .ok();
    let t0 = Instant::now();
    let (_, ttl, serial) = issue(&server, &root, "short", "e.example.com");
    assert!(ttl <= 3, "{ttl}");
    let waited = wait_revoked(&server, &serial);
    let total = t0.elapsed().as_secs_f64();
    println!(
        "lease of {ttl} s revoked {:.2} s after issue ({:.2} s past its TTL)",
        total,
        total - ttl as f64
    );
    assert!(waited >= 0.0);
}

/// hvac's lease methods (`sys.read_lease`, `list_leases`, `renew_lease`,
/// `revoke_lease`, `revoke_prefix`) against the same kind of leases.
#[test]
fn hvac_lease_methods() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    setup(&server, &root);
    let (id, _, serial) = issue(&server, &root, "web", "h.example.com");
    let (_, _, s2) = issue(&server, &root, "web", "i.example.com");
    let script = r#"
import sys, hvac
addr, token, lease_id = sys.argv[1], sys.argv[2], sys.argv[3]
c = hvac.Client(url=addr, token=token)
r = c.sys.read_lease(lease_id=lease_id)
assert r["data"]["id"] == lease_id, r
ls = c.sys.list_leases(prefix="pki/issue/web")
assert len(ls["data"]["keys"]) == 2, ls
try:
    c.sys.renew_lease(lease_id=lease_id, increment=60)
    raise SystemExit("renewing a certificate lease should fail")
except hvac.exceptions.InvalidRequest as e:
    assert "not renewable" in str(e), e
c.sys.revoke_lease(lease_id=lease_id)
try:
    c.sys.read_lease(lease_id=lease_id)
    raise SystemExit("a revoked lease should be gone")
except hvac.exceptions.InvalidRequest:
    pass
c.sys.revoke_prefix(prefix="pki/issue/web")
print("hvac leases: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[&server.addr, &root, &id],
        "hvac leases: ok",
    );
    assert!(revoked(&server, &serial) && revoked(&server, &s2));
    let (status, v) = server.http(
        "LIST",
        "/v1/sys/leases/lookup/pki/issue/web/",
        Some(&root),
        None,
    );
    assert_eq!(status, 404, "no lease is left: {v}");
}
