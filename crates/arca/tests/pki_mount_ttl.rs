//! PKI lifetimes follow the mount's TTL limits, through the system view
//! (issue 11): on an untuned mount a root asked for 10 years gets the
//! mount's 768h maximum with a warning, as in Vault; after
//! `bao secrets tune -max-lease-ttl=87600h` it gets 10 years, and a tune is
//! seen by the next request without a remount.

mod common;

use common::Server;
use serde_json::Value;

const H: i64 = 3600;

/// Seconds from now until the `expiration` of a PKI answer.
fn lifetime(v: &Value) -> i64 {
    v["data"]["expiration"].as_i64().expect("expiration") - chrono::Utc::now().timestamp()
}

#[test]
fn pki_lifetimes_are_capped_by_the_mount_max_ttl_and_follow_a_tune() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let bao = s.bao().with_token(&init.root_token);
    bao.run(&["secrets", "enable", "pki"]).ok();

    let root = bao.json(&[
        "write",
        "-format=json",
        "pki/root/generate/internal",
        "common_name=Capped Root",
        "ttl=87600h",
    ]);
    let life = lifetime(&root);
    assert!(
        (767 * H..=768 * H).contains(&life),
        "768h, not 10 years: {life}s {root}"
    );
    assert!(
        root["warnings"].to_string().contains("max_lease_ttl"),
        "the cap is reported: {root}"
    );

    // A role without max_ttl: issuance is capped by the mount too.
    bao.run(&["write", "pki/roles/any", "allow_any_name=true"])
        .ok();
    let leaf = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/any",
        "common_name=a.example",
        "ttl=2000h",
    ]);
    assert!(lifetime(&leaf) <= 768 * H, "{leaf}");
    assert!(
        leaf["warnings"].to_string().contains("max_lease_ttl"),
        "{leaf}"
    );

    bao.run(&["secrets", "tune", "-max-lease-ttl=87600h", "pki"])
        .ok();
    let root = bao.json(&[
        "write",
        "-format=json",
        "pki/root/generate/internal",
        "common_name=Long Root",
        "issuer_name=long",
        "ttl=87600h",
    ]);
    let life = lifetime(&root);
    assert!(
        (87599 * H..=87600 * H).contains(&life),
        "10 years after the tune: {life}s {root}"
    );
    assert!(
        !root["warnings"].to_string().contains("max_lease_ttl"),
        "no cap warning: {root}"
    );
    // Without a ttl, the mount's default lease TTL (768h, untouched).
    let root = bao.json(&[
        "write",
        "-format=json",
        "pki/root/generate/internal",
        "common_name=Default Root",
        "issuer_name=default-ttl",
    ]);
    let life = lifetime(&root);
    assert!((767 * H..=768 * H).contains(&life), "{life}s {root}");
}
