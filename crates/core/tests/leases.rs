//! Leases and the expiration manager, through the core's request flow, with
//! the sdk's test engine `leases` (a leased secret whose revoke callback
//! records what it revoked). Time is passed to `expire_tick` explicitly:
//! no test waits for a clock.

mod common;

use arca_sdk::{LogicalError, Operation::*};
use serde_json::{json, Value};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn with_engine() -> common::TestCore {
    let t = common::unsealed().await;
    t.root(Update, "sys/mounts/leases", json!({"type": "leases"}))
        .await
        .unwrap();
    t
}

/// Names of the secrets the engine has revoked.
async fn revoked(t: &common::TestCore) -> Vec<String> {
    match t.root(List, "leases/revoked/", json!({})).await.unwrap() {
        Some(v) => serde_json::from_value(v["data"]["keys"].clone()).unwrap(),
        None => vec![],
    }
}

async fn lease(t: &common::TestCore, token: &str, name: &str, body: Value) -> (String, u64) {
    let v = t
        .call(token, Update, &format!("leases/creds/{name}"), body)
        .await
        .unwrap()
        .unwrap();
    (
        v["lease_id"].as_str().unwrap().to_string(),
        v["lease_duration"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_leased_secret_can_be_looked_up_renewed_and_revoked() {
    let t = with_engine().await;
    let (id, ttl) = lease(&t, &t.root.clone(), "a", json!({"ttl": "1h"})).await;
    assert!(id.starts_with("leases/creds/a/"), "{id}");
    assert_eq!(ttl, 3600);

    let v = t
        .root(Update, "sys/leases/lookup", json!({"lease_id": id}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["data"]["id"], id.as_str());
    assert_eq!(v["data"]["renewable"], true);
    let left = v["data"]["ttl"].as_i64().unwrap();
    assert!((3590..=3601).contains(&left), "{v}");

    let v = t
        .root(
            Update,
            "sys/leases/renew",
            json!({"lease_id": id, "increment": "2h"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["lease_id"], id.as_str());
    assert_eq!(v["lease_duration"], 7200);
    assert_eq!(v["renewable"], true);
    let v = t
        .root(Update, "sys/leases/lookup", json!({"lease_id": id}))
        .await
        .unwrap()
        .unwrap();
    assert!(v["data"]["last_renewal"].is_string(), "{v}");

    // The legacy path, with the id in the URL.
    let v = t
        .root(Update, &format!("sys/renew/{id}"), json!({"increment": 60}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["lease_duration"], 60);

    assert!(revoked(&t).await.is_empty());
    t.root(Update, "sys/leases/revoke", json!({"lease_id": id}))
        .await
        .unwrap();
    assert_eq!(revoked(&t).await, ["a"]);
    let e = t
        .root(Update, "sys/leases/lookup", json!({"lease_id": id}))
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::InvalidRequest(_)), "{e:?}");
    let e = t
        .root(Update, "sys/leases/renew", json!({"lease_id": id}))
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::invalid("lease not found"));
}

#[tokio::test]
async fn renewals_stop_at_the_max_ttl_with_a_warning() {
    let t = with_engine().await;
    let (id, _) = lease(&t, &t.root.clone(), "m", json!({"ttl": 60, "max_ttl": 300})).await;
    let v = t
        .root(
            Update,
            "sys/leases/renew",
            json!({"lease_id": id, "increment": 3600}),
        )
        .await
        .unwrap()
        .unwrap();
    let d = v["lease_duration"].as_u64().unwrap();
    assert!((290..=300).contains(&d), "{v}");
    let w = v["warnings"].to_string();
    assert!(w.contains("capped"), "{v}");

    // The mount's max TTL caps new leases too.
    t.root(
        Update,
        "sys/mounts/leases/tune",
        json!({"max_lease_ttl": "10m"}),
    )
    .await
    .unwrap();
    let v = t
        .root(Update, "leases/creds/big", json!({"ttl": "2h"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["lease_duration"], 600, "{v}");
    assert!(v["warnings"].to_string().contains("max_lease_ttl"), "{v}");

    // A lease the backend calls not renewable is refused.
    let (id, _) = lease(&t, &t.root.clone(), "n", json!({"renewable": false})).await;
    let e = t
        .root(Update, "sys/leases/renew", json!({"lease_id": id}))
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::invalid("lease is not renewable"));
}

#[tokio::test]
async fn expired_leases_are_revoked_by_the_manager_and_only_those() {
    let t = with_engine().await;
    let root = t.root.clone();
    lease(&t, &root, "short", json!({"ttl": 5})).await;
    lease(&t, &root, "long", json!({"ttl": "1h"})).await;
    let (renewed, _) = lease(&t, &root, "renewed", json!({"ttl": 5})).await;
    t.root(
        Update,
        "sys/leases/renew",
        json!({"lease_id": renewed, "increment": "1h"}),
    )
    .await
    .unwrap();

    let r = t.core.expire_tick(now() + 2).await.unwrap();
    assert_eq!(r.leases_revoked, 0, "nothing is due yet");
    let r = t.core.expire_tick(now() + 60).await.unwrap();
    assert_eq!(r.leases_revoked, 1, "{r:?}");
    assert_eq!(revoked(&t).await, ["short"]);
    // The renewed lease left its old second: it is revoked at its new one.
    let r = t.core.expire_tick(now() + 7200).await.unwrap();
    assert_eq!(r.leases_revoked, 2, "{r:?}");
    assert_eq!(revoked(&t).await, ["long", "renewed", "short"]);
    let e = t
        .root(List, "sys/leases/lookup/leases/creds/", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::NotFound);
}

#[tokio::test]
async fn revoking_a_token_revokes_its_children_and_their_leases() {
    let t = with_engine().await;
    t.root(
        Update,
        "sys/policies/acl/creds",
        json!({"policy": "path \"leases/creds/*\" { capabilities = [\"update\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await
    .unwrap();
    let (parent, _) = t.token(&["creds"], json!({})).await;
    let child = t
        .call(
            &parent,
            Update,
            "auth/token/create",
            json!({"policies": ["creds"]}),
        )
        .await
        .unwrap()
        .unwrap()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    lease(&t, &parent, "p", json!({"ttl": "1h"})).await;
    lease(&t, &child, "c", json!({"ttl": "1h"})).await;
    lease(&t, &t.root.clone(), "other", json!({"ttl": "1h"})).await;

    t.root(Update, "auth/token/revoke", json!({"token": parent}))
        .await
        .unwrap();
    let e = t
        .call(&child, Update, "leases/creds/x", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LogicalError::PermissionDenied,
        "the child went with its parent"
    );
    // Their leases are due now: the next tick revokes them, not the others.
    let r = t.core.expire_tick(now()).await.unwrap();
    assert_eq!(r.leases_revoked, 2, "{r:?}");
    assert_eq!(revoked(&t).await, ["c", "p"]);
}

#[tokio::test]
async fn expired_tokens_are_revoked_by_the_manager() {
    let t = common::unsealed().await;
    t.root(
        Update,
        "sys/policies/acl/mk",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await
    .unwrap();
    let (tok, acc) = t.token(&["mk"], json!({"ttl": "30s"})).await;
    let child = t
        .call(
            &tok,
            Update,
            "auth/token/create",
            json!({"ttl": "1h", "policies": ["mk"]}),
        )
        .await
        .unwrap()
        .unwrap()["auth"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let accessors = || async {
        let v = t
            .root(List, "auth/token/accessors", json!({}))
            .await
            .unwrap()
            .unwrap();
        serde_json::from_value::<Vec<String>>(v["data"]["keys"].clone()).unwrap()
    };
    assert!(accessors().await.contains(&acc));
    let r = t.core.expire_tick(now() + 5).await.unwrap();
    assert_eq!(r.tokens_revoked, 0);
    let r = t.core.expire_tick(now() + 40).await.unwrap();
    assert_eq!(r.tokens_revoked, 1, "{r:?}");
    let left = accessors().await;
    assert!(!left.contains(&acc), "the expired token is deleted");
    assert!(!left.contains(&child), "and so is its child");
}

#[tokio::test]
async fn a_failing_revocation_is_retried_then_reported_irrevocable() {
    let t = with_engine().await;
    let (id, _) = lease(&t, &t.root.clone(), "stuck", json!({"ttl": 1})).await;
    t.root(Update, "leases/config", json!({"fail_revoke": true}))
        .await
        .unwrap();
    // A synchronous revoke reports the backend's error and keeps the lease.
    let e = t
        .root(Update, "sys/leases/revoke", json!({"lease_id": id}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refused by the test engine"), "{e}");

    let mut at = now() + 2;
    let mut attempts = 0;
    for _ in 0..20 {
        let r = t.core.expire_tick(at).await.unwrap();
        attempts += r.leases_failed;
        at += 3600;
    }
    assert_eq!(attempts, 6, "six attempts, then no more");
    let v = t
        .root(Update, "sys/leases/lookup", json!({"lease_id": id}))
        .await
        .unwrap()
        .unwrap();
    assert!(
        v["data"]["revoke_error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{v}"
    );
    assert_eq!(v["data"]["renewable"], false);
    // A prefix revoke still fails; a forced one removes it.
    assert!(t
        .root(Update, "sys/leases/revoke-prefix/leases/", json!({}))
        .await
        .is_err());
    t.root(Update, "sys/leases/revoke-force/leases/", json!({}))
        .await
        .unwrap();
    assert!(t
        .root(Update, "sys/leases/lookup", json!({"lease_id": id}))
        .await
        .is_err());
}

#[tokio::test]
async fn prefix_revocation_listing_and_sudo() {
    let t = with_engine().await;
    let root = t.root.clone();
    for n in ["a", "b"] {
        lease(&t, &root, n, json!({"ttl": "1h"})).await;
    }
    lease(&t, &root, "sub/c", json!({"ttl": "1h"})).await;
    let v = t
        .root(List, "sys/leases/lookup/leases/creds/", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["data"]["keys"], json!(["a/", "b/", "sub/"]));

    // Listing and prefix revocation need sudo.
    t.root(
        Update,
        "sys/policies/acl/leases",
        json!({"policy": "path \"sys/leases/*\" { capabilities = [\"update\", \"list\"] }\npath \"sys/revoke-prefix/*\" { capabilities = [\"update\"] }"}),
    )
    .await
    .unwrap();
    let (tok, _) = t.token(&["leases"], json!({})).await;
    for (op, p) in [
        (List, "sys/leases/lookup/leases/"),
        (Update, "sys/leases/revoke-prefix/leases/"),
        (Update, "sys/revoke-prefix/leases/"),
        (Update, "sys/leases/revoke-force/leases/"),
    ] {
        let e = t.call(&tok, op, p, json!({})).await.unwrap_err();
        assert_eq!(e, LogicalError::PermissionDenied, "{p}");
    }
    t.root(
        Update,
        "sys/leases/revoke-prefix/leases/creds/sub",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(revoked(&t).await, ["sub/"], "the engine saw sub/c revoked");
    // Disabling the mount revokes the rest first.
    t.root(Delete, "sys/mounts/leases", json!({}))
        .await
        .unwrap();
    let e = t
        .root(List, "sys/leases/lookup/leases/", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::NotFound);
}

#[tokio::test]
async fn a_login_returns_a_token_renewed_through_its_method() {
    let t = common::unsealed().await;
    t.root(Update, "sys/auth/test", json!({"type": "leases"}))
        .await
        .unwrap();
    let v = t.root(Read, "sys/auth", json!({})).await.unwrap().unwrap();
    assert!(
        v["test/"]["accessor"]
            .as_str()
            .unwrap()
            .starts_with("auth_leases_"),
        "{v}"
    );
    // No token is needed to log in.
    let v = t
        .call(
            "",
            Update,
            "auth/test/login",
            json!({"username": "bob", "policies": "dev,ops", "ttl": "1h"}),
        )
        .await
        .unwrap()
        .unwrap();
    let tok = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(v["auth"]["policies"], json!(["default", "dev", "ops"]));
    assert_eq!(v["auth"]["lease_duration"], 3600);
    assert_eq!(v["auth"]["orphan"], true);
    let me = t
        .call(&tok, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me["data"]["display_name"], "test-bob");
    assert_eq!(me["data"]["path"], "auth/test/login");

    // Renewal goes through the method's callback.
    let v = t
        .call(
            &tok,
            Update,
            "auth/token/renew-self",
            json!({"increment": 60}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["auth"]["lease_duration"], 60);
    t.root(Update, "auth/test/blocked/bob", json!({}))
        .await
        .unwrap();
    let e = t
        .call(&tok, Update, "auth/token/renew-self", json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bob"), "{e}");

    // A TTL above the auth mount's max is capped, with a warning.
    t.root(Update, "sys/auth/test/tune", json!({"max_lease_ttl": "5m"}))
        .await
        .unwrap();
    let v = t
        .call(
            "",
            Update,
            "auth/test/login",
            json!({"username": "eve", "ttl": "1h"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["auth"]["lease_duration"], 300, "{v}");
    assert!(v["warnings"].to_string().contains("capped"), "{v}");
    // An auth method may not hand out root.
    let e = t
        .call(
            "",
            Update,
            "auth/test/login",
            json!({"username": "x", "policies": "root"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::InvalidRequest(_)));

    // Disabling the method revokes its tokens.
    t.root(Delete, "sys/auth/test", json!({})).await.unwrap();
    let e = t
        .call(&tok, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::PermissionDenied);
}

#[tokio::test]
async fn leases_and_expiry_survive_a_seal_and_unseal() {
    let t = with_engine().await;
    lease(&t, &t.root.clone(), "kept", json!({"ttl": 5})).await;
    t.core.seal().await;
    for k in [0, 1] {
        t.core
            .unseal_step(Some(&hex::encode(&t.keys[k])))
            .await
            .unwrap();
    }
    assert!(!t.core.is_sealed());
    // Nothing is loaded into memory: the first tick after unseal finds it.
    let r = t.core.expire_tick(now() + 10).await.unwrap();
    assert_eq!(r.leases_revoked, 1, "{r:?}");
    assert_eq!(revoked(&t).await, ["kept"]);
}

#[test]
fn lease_arithmetic() {
    use arca_core::expiration::LeaseEntry;
    let e = LeaseEntry {
        lease_id: "x/1".into(),
        token_hash: String::new(),
        path: "x".into(),
        mount_accessor: "a".into(),
        secret: arca_sdk::Secret {
            max_ttl: 300,
            ..Default::default()
        },
        issue_time: 1000,
        expire_time: 1060,
        last_renewal_time: 0,
        due: 1060,
        revoke_attempts: 0,
        revoke_err: String::new(),
    };
    assert_eq!(e.max_expire(3600), 1300, "the secret's own max is smaller");
    assert_eq!(e.max_expire(120), 1120, "the mount's max is smaller");
    let mut u = e.clone();
    u.secret.max_ttl = 0;
    assert_eq!(u.max_expire(0), i64::MAX, "no limit at all");
    assert_eq!(u.max_expire(50), 1050);
    let mut f = e;
    f.revoke_attempts = arca_core::expiration::MAX_REVOKE_ATTEMPTS;
    assert!(f.irrevocable());
}

/// Backends are cleaned up when their mount is disabled and when the node
/// seals.
#[tokio::test]
async fn backends_are_cleaned_up_on_unmount_and_seal() {
    use arca_sdk::testing::was_cleaned_up;
    let t = with_engine().await;
    t.root(Update, "sys/mounts/other", json!({"type": "leases"}))
        .await
        .unwrap();
    let uuid = |m: &Value, p: &str| m[p]["uuid"].as_str().unwrap().to_string();
    let mounts = t
        .root(Read, "sys/mounts", json!({}))
        .await
        .unwrap()
        .unwrap();
    let (first, other) = (uuid(&mounts, "leases/"), uuid(&mounts, "other/"));
    assert!(!was_cleaned_up(&first) && !was_cleaned_up(&other));
    t.root(Delete, "sys/mounts/other", json!({})).await.unwrap();
    assert!(was_cleaned_up(&other), "disabled");
    assert!(!was_cleaned_up(&first));
    t.core.seal().await;
    assert!(was_cleaned_up(&first), "sealed");
}
