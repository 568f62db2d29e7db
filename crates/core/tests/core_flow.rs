//! The unsealed-core layer: request flow, ACLs, tokens, mounts, seal.

mod common;

use arca_sdk::{LogicalError, Operation::*};
use serde_json::{json, Value};

#[tokio::test]
async fn sealed_core_refuses_requests_and_unseal_restores_data() {
    let t = common::unsealed().await;
    t.root(Update, "sys/mounts/kv1", json!({"type": "kv"}))
        .await
        .unwrap();
    t.root(Update, "kv1/a", json!({"v": "1"})).await.unwrap();
    t.core.seal().await;
    let e = t.root(Read, "kv1/a", json!({})).await.unwrap_err();
    assert_eq!(e, LogicalError::Sealed);
    let status = t.core.seal_status().await.unwrap();
    assert!(status.sealed && status.initialized && status.t == 2 && status.n == 3);
    // a wrong share combination is refused and progress resets
    t.core
        .unseal_step(Some(&hex::encode(&t.keys[1])))
        .await
        .unwrap();
    assert_eq!(t.core.seal_status().await.unwrap().progress, 1);
    let dup = t
        .core
        .unseal_step(Some(&hex::encode(&t.keys[1])))
        .await
        .unwrap();
    assert_eq!(dup.progress, 1, "the same share twice does not count twice");
    assert!(dup.sealed);
    t.core
        .unseal_step(Some(&hex::encode(&t.keys[0])))
        .await
        .unwrap();
    assert!(!t.core.is_sealed());
    let r = t.root(Read, "kv1/a", json!({})).await.unwrap().unwrap();
    assert_eq!(r["data"]["v"], "1");
}

#[tokio::test]
async fn missing_or_bad_token_is_denied() {
    let t = common::unsealed().await;
    assert_eq!(
        t.call("", Read, "sys/mounts", json!({})).await.unwrap_err(),
        LogicalError::PermissionDenied
    );
    assert_eq!(
        t.call("nope", Read, "sys/mounts", json!({}))
            .await
            .unwrap_err(),
        LogicalError::PermissionDenied
    );
    let e = t.root(Read, "nosuchmount/x", json!({})).await.unwrap_err();
    assert!(matches!(e, LogicalError::UnsupportedPath(_)), "{e:?}");
}

#[tokio::test]
async fn acl_limits_a_policy_token() {
    let t = common::unsealed().await;
    t.root(
        Update,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await
    .unwrap();
    t.root(
        Update,
        "secret/data/app/db",
        json!({"data": {"password": "s3cr3t"}}),
    )
    .await
    .unwrap();
    t.root(Update, "secret/data/other", json!({"data": {"x": "y"}}))
        .await
        .unwrap();
    let policy = r#"
        # read-only access to the app's secrets
        path "secret/data/app/*" { capabilities = ["read"] }
        path "secret/metadata/app/*" { capabilities = ["list", "read"] }
    "#;
    t.root(Update, "sys/policies/acl/app-ro", json!({"policy": policy}))
        .await
        .unwrap();
    let (tok, _) = t.token(&["app-ro"], json!({"ttl": "1h"})).await;
    let r = t
        .call(&tok, Read, "secret/data/app/db", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["data"]["password"], "s3cr3t");
    let e = t
        .call(
            &tok,
            Update,
            "secret/data/app/db",
            json!({"data": {"password": "x"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::PermissionDenied);
    let e = t
        .call(&tok, Read, "secret/data/other", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::PermissionDenied);
    // the write was refused: the value is unchanged
    let r = t
        .root(Read, "secret/data/app/db", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["data"]["password"], "s3cr3t");
    // the CLI's preflight works for the limited token, and hides other mounts
    let r = t
        .call(
            &tok,
            Read,
            "sys/internal/ui/mounts/secret/app/db",
            json!({}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["path"], "secret/");
    assert_eq!(r["data"]["options"]["version"], "2");
    let e = t
        .call(
            &tok,
            Read,
            "sys/internal/ui/mounts/cubbyhole-nope/x",
            json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(e, LogicalError::PermissionDenied);
    // capabilities
    let r = t
        .root(
            Update,
            "sys/capabilities",
            json!({"token": tok, "paths": ["secret/data/app/db"]}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["capabilities"], json!(["read"]));
    let r = t
        .call(
            &tok,
            Update,
            "sys/capabilities-self",
            json!({"paths": "secret/data/other"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["capabilities"], json!(["deny"]));
}

#[tokio::test]
async fn create_vs_update_uses_the_existence_check() {
    let t = common::unsealed().await;
    t.root(Update, "sys/mounts/secret", json!({"type": "kv-v2"}))
        .await
        .unwrap();
    t.root(
        Update,
        "sys/policy/creator",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["create"] }"#}),
    )
    .await
    .unwrap();
    let (tok, _) = t.token(&["creator"], json!({})).await;
    t.call(&tok, Update, "secret/data/new", json!({"data": {"a": "1"}}))
        .await
        .unwrap();
    let e = t
        .call(&tok, Update, "secret/data/new", json!({"data": {"a": "2"}}))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LogicalError::PermissionDenied,
        "an existing key needs update"
    );
}

#[tokio::test]
async fn token_lifecycle() {
    let t = common::unsealed().await;
    t.root(
        Update,
        "sys/policy/p1",
        json!({"policy": r#"path "secret/*" { capabilities = ["read"] }"#}),
    )
    .await
    .unwrap();
    let (parent, parent_acc) = t
        .token(
            &["p1"],
            json!({"ttl": "1h", "meta": {"team": "a"}, "display_name": "ci"}),
        )
        .await;
    let r = t
        .call(&parent, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["policies"], json!(["default", "p1"]));
    assert_eq!(r["data"]["display_name"], "token-ci");
    assert_eq!(r["data"]["meta"]["team"], "a");
    let ttl = r["data"]["ttl"].as_u64().unwrap();
    assert!(ttl > 3590 && ttl <= 3600, "{ttl}");
    // a child of a non-root token cannot escalate
    let e = t
        .call(
            &parent,
            Update,
            "auth/token/create",
            json!({"policies": ["root"]}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LogicalError::PermissionDenied | LogicalError::InvalidRequest(_)
        ),
        "{e:?}"
    );
    // the default policy does not allow creating tokens; root creates a child of parent? use the parent with a policy that can
    t.root(
        Update,
        "sys/policy/tok",
        json!({"policy": r#"path "auth/token/create" { capabilities = ["update"] }"#}),
    )
    .await
    .unwrap();
    let (p2, _) = t.token(&["p1", "tok"], json!({})).await;
    let r = t
        .call(
            &p2,
            Update,
            "auth/token/create",
            json!({"policies": ["p1"]}),
        )
        .await
        .unwrap()
        .unwrap();
    let child = r["auth"]["client_token"].as_str().unwrap().to_string();
    let e = t
        .call(
            &p2,
            Update,
            "auth/token/create",
            json!({"policies": ["admin"]}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::InvalidRequest(_)), "{e:?}");
    // revoking the parent revokes the child
    t.root(Update, "auth/token/revoke", json!({"token": p2}))
        .await
        .unwrap();
    assert_eq!(
        t.call(&child, Read, "auth/token/lookup-self", json!({}))
            .await
            .unwrap_err(),
        LogicalError::PermissionDenied
    );
    // lookup by accessor hides the id; revoke by accessor
    let r = t
        .root(
            Update,
            "auth/token/lookup-accessor",
            json!({"accessor": parent_acc}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["id"], "");
    t.root(
        Update,
        "auth/token/revoke-accessor",
        json!({"accessor": parent_acc}),
    )
    .await
    .unwrap();
    assert_eq!(
        t.call(&parent, Read, "auth/token/lookup-self", json!({}))
            .await
            .unwrap_err(),
        LogicalError::PermissionDenied
    );
}

#[tokio::test]
async fn use_limits_and_explicit_max_ttl() {
    let t = common::unsealed().await;
    let (tok, _) = t.token(&["default"], json!({"num_uses": 2})).await;
    t.call(&tok, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap();
    t.call(&tok, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap();
    assert_eq!(
        t.call(&tok, Read, "auth/token/lookup-self", json!({}))
            .await
            .unwrap_err(),
        LogicalError::PermissionDenied
    );
    let (tok, _) = t
        .token(
            &["default"],
            json!({"ttl": "2h", "explicit_max_ttl": "60s"}),
        )
        .await;
    let r = t
        .call(&tok, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(r["data"]["ttl"].as_u64().unwrap() <= 60);
    let r = t
        .call(
            &tok,
            Update,
            "auth/token/renew-self",
            json!({"increment": "1h"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        r["auth"]["lease_duration"].as_u64().unwrap() <= 60,
        "renewal stays under explicit_max_ttl"
    );
    assert_eq!(
        t.root(Update, "auth/token/create", json!({"num_uses": -1}))
            .await
            .unwrap_err()
            .to_string(),
        "number of uses cannot be negative"
    );
}

#[tokio::test]
async fn orphans_survive_parent_revocation() {
    let t = common::unsealed().await;
    let (p, _) = t.token(&["default"], json!({})).await;
    t.root(
        Update,
        "sys/policy/tok",
        json!({"policy": r#"path "auth/token/create-orphan" { capabilities = ["update"] }"#}),
    )
    .await
    .unwrap();
    let (p2, _) = t.token(&["tok"], json!({})).await;
    let r = t
        .call(
            &p2,
            Update,
            "auth/token/create-orphan",
            json!({"policies": ["tok"]}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["auth"]["orphan"], true);
    let orphan = r["auth"]["client_token"].as_str().unwrap().to_string();
    t.root(Update, "auth/token/revoke", json!({"token": p2}))
        .await
        .unwrap();
    t.call(&orphan, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap();
    // revoke-orphan keeps children
    let (c, _) = {
        t.root(
            Update,
            "sys/policy/tok2",
            json!({"policy": r#"path "auth/token/create" { capabilities = ["update"] }"#}),
        )
        .await
        .unwrap();
        let (pp, _) = t.token(&["tok2"], json!({})).await;
        let r = t
            .call(&pp, Update, "auth/token/create", json!({}))
            .await
            .unwrap()
            .unwrap();
        t.root(Update, "auth/token/revoke-orphan", json!({"token": pp}))
            .await
            .unwrap();
        (r["auth"]["client_token"].as_str().unwrap().to_string(), ())
    };
    let r = t
        .call(&c, Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["orphan"], true);
    let _ = p;
}

#[tokio::test]
async fn mounts_enable_tune_remount_disable() {
    let t = common::unsealed().await;
    t.root(
        Update,
        "sys/mounts/team/kv",
        json!({"type": "kv", "description": "team"}),
    )
    .await
    .unwrap();
    let e = t
        .root(Update, "sys/mounts/team/kv", json!({"type": "kv"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already in use"), "{e}");
    let e = t
        .root(Update, "sys/mounts/x", json!({"type": "nope"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    t.root(Update, "team/kv/k", json!({"a": "b"}))
        .await
        .unwrap();
    let r = t
        .root(Read, "sys/mounts", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["team/kv/"]["type"], "kv");
    assert_eq!(
        r["team/kv/"]["description"], "team",
        "legacy top-level copy"
    );
    t.root(
        Update,
        "sys/mounts/team/kv/tune",
        json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"}),
    )
    .await
    .unwrap();
    let r = t
        .root(Read, "sys/mounts/team/kv/tune", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["default_lease_ttl"], 3600);
    assert_eq!(r["data"]["max_lease_ttl"], 7200);
    let e = t
        .root(
            Update,
            "sys/mounts/team/kv/tune",
            json!({"default_lease_ttl": "3h"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::InvalidRequest(_)));
    // KV v1 reads report the mount's default lease duration
    let r = t.root(Read, "team/kv/k", json!({})).await.unwrap().unwrap();
    assert_eq!(r["lease_duration"], 3600);
    // remount keeps data
    let r = t
        .root(
            Update,
            "sys/remount",
            json!({"from": "team/kv", "to": "moved"}),
        )
        .await
        .unwrap()
        .unwrap();
    let id = r["data"]["migration_id"].as_str().unwrap().to_string();
    let r = t
        .root(Read, &format!("sys/remount/status/{id}"), json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["migration_info"]["status"], "success");
    let r = t.root(Read, "moved/k", json!({})).await.unwrap().unwrap();
    assert_eq!(r["data"]["a"], "b");
    // upgrade v1 -> v2 through tune
    t.root(
        Update,
        "sys/mounts/moved/tune",
        json!({"options": {"version": "2"}}),
    )
    .await
    .unwrap();
    let r = t
        .root(Read, "moved/data/k", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["data"]["a"], "b");
    // disabling deletes the data: a new mount at the same path is empty
    t.root(Delete, "sys/mounts/moved", json!({})).await.unwrap();
    t.root(Update, "sys/mounts/moved", json!({"type": "kv"}))
        .await
        .unwrap();
    assert_eq!(
        t.root(Read, "moved/k", json!({})).await.unwrap_err(),
        LogicalError::NotFound
    );
    let e = t
        .root(Delete, "sys/mounts/sys", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::InvalidRequest(_)));
}

#[tokio::test]
async fn policies_crud_and_builtin_rules() {
    let t = common::unsealed().await;
    let e = t
        .root(
            Update,
            "sys/policies/acl/bad",
            json!({"policy": "path \"x\" { capabilities = [\"fly\"] }"}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("fly"), "{e}");
    t.root(
        Update,
        "sys/policies/acl/Good",
        json!({"policy": "path \"x/*\" { capabilities = [\"read\"] }"}),
    )
    .await
    .unwrap();
    let r = t
        .root(List, "sys/policies/acl/", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["keys"], json!(["default", "good", "root"]));
    let r = t
        .root(Read, "sys/policy/good", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(r["rules"].as_str().unwrap().contains("x/*"));
    assert!(t
        .root(Delete, "sys/policies/acl/root", json!({}))
        .await
        .is_err());
    assert!(t
        .root(Delete, "sys/policies/acl/default", json!({}))
        .await
        .is_err());
    assert!(t
        .root(
            Update,
            "sys/policies/acl/root",
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }"})
        )
        .await
        .is_err());
    t.root(Delete, "sys/policies/acl/good", json!({}))
        .await
        .unwrap();
    assert_eq!(
        t.root(Read, "sys/policies/acl/good", json!({}))
            .await
            .unwrap_err(),
        LogicalError::NotFound
    );
}

#[tokio::test]
async fn cubbyhole_is_private_per_token() {
    let t = common::unsealed().await;
    let (a, _) = t.token(&["default"], json!({})).await;
    let (b, _) = t.token(&["default"], json!({})).await;
    t.call(&a, Update, "cubbyhole/note", json!({"k": "a-secret"}))
        .await
        .unwrap();
    let r = t
        .call(&a, Read, "cubbyhole/note", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["data"]["k"], "a-secret");
    assert_eq!(
        t.call(&b, Read, "cubbyhole/note", json!({}))
            .await
            .unwrap_err(),
        LogicalError::NotFound
    );
}

#[tokio::test]
async fn sudo_paths_need_sudo() {
    let t = common::unsealed().await;
    t.root(
        Update,
        "sys/policy/sealer",
        json!({"policy": r#"path "sys/seal" { capabilities = ["update"] }"#}),
    )
    .await
    .unwrap();
    let (tok, _) = t.token(&["sealer"], json!({})).await;
    assert_eq!(
        t.call(&tok, Update, "sys/seal", json!({}))
            .await
            .unwrap_err(),
        LogicalError::PermissionDenied
    );
    assert!(!t.core.is_sealed());
    t.root(Update, "sys/rotate/keyring", json!({}))
        .await
        .unwrap();
    let r = t
        .root(Read, "sys/key-status", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["term"], 2);
    t.root(Update, "sys/seal", json!({})).await.unwrap();
    assert!(t.core.is_sealed());
}

#[tokio::test]
async fn stopping_background_work_ends_the_ticker() {
    let t = common::unsealed().await;
    t.core.spawn_periodic(std::time::Duration::from_millis(5));
    // Stopping ends the ticker task (a round under way is finished first).
    tokio::task::yield_now().await;
    assert!(
        t.core
            .stop_periodic(std::time::Duration::from_secs(30))
            .await,
        "the ticker did not end"
    );
    assert!(
        t.core
            .stop_periodic(std::time::Duration::from_secs(1))
            .await
    );
}

/// What an engine is given: never the caller's token; its mount's TTL
/// limits through the system view, live after a tune.
#[tokio::test]
async fn engines_get_no_token_and_a_live_system_view() {
    let t = common::unsealed().await;
    t.root(Update, "sys/mounts/echo", json!({"type": "echo"}))
        .await
        .unwrap();
    let v = t.root(Read, "echo/x", json!({})).await.unwrap().unwrap();
    assert_eq!(v["data"]["client_token"], Value::Null, "{v}");
    assert_eq!(v["data"]["mount_point"], "echo/", "{v}");
    assert_eq!(v["data"]["max_lease_ttl"], 768 * 3600, "{v}");
    assert_eq!(v["data"]["standby"], false, "{v}");
    assert!(
        !v["data"]["cluster_id"].as_str().unwrap().is_empty(),
        "the cluster id set at init: {v}"
    );
    t.root(
        Update,
        "sys/mounts/echo/tune",
        json!({"max_lease_ttl": "87600h", "default_lease_ttl": "1h"}),
    )
    .await
    .unwrap();
    let v = t.root(Read, "echo/x", json!({})).await.unwrap().unwrap();
    assert_eq!(v["data"]["max_lease_ttl"], 87600 * 3600, "{v}");
    assert_eq!(v["data"]["default_lease_ttl"], 3600, "{v}");
    // A type nobody registered is refused.
    let e = t
        .root(Update, "sys/mounts/nope", json!({"type": "nosuchengine"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("plugin not found"), "{e}");
}
