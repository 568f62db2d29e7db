//! Encryption at rest: secrets written through the HTTP API must not be
//! readable in the RocksDB directory. After the server stops, every file
//! under the storage path (SST, WAL, MANIFEST, LOG, OPTIONS, anything else)
//! is searched as raw bytes for the secret values, the secret key names, the
//! root token, the tokens it created and the unseal key shares.
//!
//! KV v2 key names and KV v1 key names are checked by separate tests, so a
//! failure says which one leaks.

mod common;

use base64::Engine as _;
use common::{contains_bytes, files_under, find_needles, random_hex, InitResult, Server};
use serde_json::json;

struct Needle {
    what: String,
    bytes: Vec<u8>,
}

fn needle(what: impl Into<String>, s: &str) -> Needle {
    Needle {
        what: what.into(),
        bytes: s.as_bytes().to_vec(),
    }
}

#[test]
fn needle_search_finds_what_it_should() {
    let hay = b"xx\x00\x01secret-value-1\xffyy plain";
    let needles: Vec<&[u8]> = vec![b"secret-value-1", b"secret-value-2", b"plain", b"\x01s"];
    assert_eq!(find_needles(hay, &needles), vec![0, 2, 3]);
    assert!(contains_bytes(hay, b"yy"));
    assert!(!contains_bytes(hay, b"zz"));
}

/// Stop the server and search every file of its storage directory.
fn assert_absent_at_rest(server: &mut Server, needles: &[Needle]) {
    server.stop();
    let dir = server.storage_dir();
    let files = files_under(&dir);
    assert!(!files.is_empty(), "no files under {}", dir.display());
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(total > 0, "storage directory {} is empty", dir.display());
    let mut found = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let list: Vec<&[u8]> = needles.iter().map(|n| n.bytes.as_slice()).collect();
        for j in find_needles(&bytes, &list) {
            let n = &needles[j];
            found.push(format!(
                "{} ({:?}) in {}",
                n.what,
                String::from_utf8_lossy(&n.bytes),
                f.strip_prefix(&dir).unwrap_or(f).display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "plaintext found at rest in {} ({} files, {} bytes searched):\n  {}",
        dir.display(),
        files.len(),
        total,
        found.join("\n  ")
    );
}

fn mount_kv(server: &Server, root: &str, path: &str, version: &str) {
    server.http_ok(
        "POST",
        &format!("/v1/sys/mounts/{path}"),
        Some(root),
        Some(&json!({"type": "kv", "options": {"version": version}})),
    );
    if version == "2" {
        server.wait_kv2_ready(path, root);
    }
}

fn secrets_of(init: &InitResult) -> Vec<Needle> {
    let mut v = vec![needle("root token", &init.root_token)];
    for (i, (h, b)) in init.keys_hex.iter().zip(&init.keys_b64).enumerate() {
        v.push(needle(format!("unseal key {i} (hex)"), h));
        v.push(needle(format!("unseal key {i} (base64)"), b));
        v.push(Needle {
            what: format!("unseal key {i} (raw bytes)"),
            bytes: base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
        });
    }
    v
}

#[test]
fn at_rest_no_plaintext_values_kv2_key_names_or_tokens() {
    let mut server = Server::start();
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    mount_kv(&server, &root, "kv2", "2");
    mount_kv(&server, &root, "kv1", "1");

    let mut needles = secrets_of(&init);
    let big = format!("big-{}", random_hex(2048));
    for i in 0..20 {
        let name = format!("keyname{i}-{}", random_hex(8));
        let folder = format!("folder{i}-{}", random_hex(8));
        let path = format!("{folder}/{name}");
        let mut values = Vec::new();
        // Several versions of each secret.
        for ver in 0..3 {
            let value = format!("value{i}v{ver}-{}", random_hex(12));
            let body = json!({"data": {"password": value, "blob": big}});
            server.http_ok(
                "POST",
                &format!("/v1/kv2/data/{path}"),
                Some(&root),
                Some(&body),
            );
            values.push(value);
        }
        let meta_value = format!("metavalue{i}-{}", random_hex(8));
        server.http_ok(
            "POST",
            &format!("/v1/kv2/metadata/{path}"),
            Some(&root),
            Some(&json!({"custom_metadata": {"owner": meta_value}})),
        );
        // KV v1 values under a path whose name is not secret-shaped.
        let v1_value = format!("v1value{i}-{}", random_hex(12));
        server.http_ok(
            "PUT",
            &format!("/v1/kv1/plain{i}"),
            Some(&root),
            Some(&json!({"password": v1_value})),
        );
        needles.push(needle(format!("kv2 key name #{i}"), &name));
        needles.push(needle(format!("kv2 folder name #{i}"), &folder));
        needles.push(needle(format!("kv2 custom metadata #{i}"), &meta_value));
        needles.push(needle(format!("kv1 value #{i}"), &v1_value));
        for (ver, v) in values.iter().enumerate() {
            needles.push(needle(format!("kv2 value #{i} v{}", ver + 1), v));
        }
    }
    needles.push(needle("large kv2 value", &big[..64]));

    // Tokens created by the server must not be stored in the clear either.
    let t = server.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&root),
        Some(&json!({"policies": ["default"], "ttl": "1h"})),
    );
    let child = t["auth"]["client_token"].as_str().unwrap().to_string();
    needles.push(needle("child token", &child));

    // Sanity: the data is there before we look for it on disk.
    let v = server.http_ok("GET", "/v1/kv1/plain3", Some(&root), None);
    assert!(v["data"]["password"]
        .as_str()
        .unwrap()
        .starts_with("v1value3-"));
    server.http_ok("GET", "/v1/auth/token/lookup-self", Some(&child), None);

    assert_absent_at_rest(&mut server, &needles);

    // The directory still holds a working store: restart, unseal, read back.
    server.restart();
    let (status, st) = server.http("GET", "/v1/sys/seal-status", None, None);
    assert_eq!(status, 200);
    assert_eq!(st["sealed"], true, "{st}");
    server.unseal_with(&init.keys_b64[2..5]);
    let v = server.http_ok("GET", "/v1/kv1/plain3", Some(&root), None);
    assert!(v["data"]["password"]
        .as_str()
        .unwrap()
        .starts_with("v1value3-"));
}

/// KV v1 stores secrets under the caller's path; that path (key names) must
/// not be visible in the storage directory either.
#[test]
fn at_rest_kv1_key_names_hidden() {
    let mut server = Server::start();
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    mount_kv(&server, &root, "kv1", "1");
    let mut needles = Vec::new();
    for i in 0..10 {
        let folder = format!("v1folder{i}-{}", random_hex(8));
        let name = format!("v1keyname{i}-{}", random_hex(8));
        let value = format!("v1value{i}-{}", random_hex(12));
        server.http_ok(
            "PUT",
            &format!("/v1/kv1/{folder}/{name}"),
            Some(&root),
            Some(&json!({"password": value})),
        );
        needles.push(needle(format!("kv1 folder name #{i}"), &folder));
        needles.push(needle(format!("kv1 key name #{i}"), &name));
        needles.push(needle(format!("kv1 value #{i}"), &value));
    }
    // Listing still works (the server must be able to list what it hides).
    let (status, l) = server.http("LIST", "/v1/kv1/", Some(&root), None);
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["data"]["keys"].as_array().unwrap().len(), 10, "{l}");
    assert_absent_at_rest(&mut server, &needles);
}

/// The same store comes back after a restart: sealed first, then, once
/// unsealed, every secret, version, mount, policy and token is there.
#[test]
fn restart_on_same_directory_comes_up_sealed_and_keeps_everything() {
    let mut server = Server::start();
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    mount_kv(&server, &root, "kv2", "2");
    mount_kv(&server, &root, "kv1", "1");
    let mut expect_v2 = Vec::new();
    for i in 0..50 {
        let path = format!("app{}/item{i}", i % 5);
        let mut vals = Vec::new();
        for ver in 0..2 {
            let val = format!("val{i}.{ver}-{}", random_hex(6));
            server.http_ok(
                "POST",
                &format!("/v1/kv2/data/{path}"),
                Some(&root),
                Some(&json!({"data": {"v": val}})),
            );
            vals.push(val);
        }
        let v1 = format!("v1-{i}-{}", random_hex(6));
        server.http_ok(
            "PUT",
            &format!("/v1/kv1/{path}"),
            Some(&root),
            Some(&json!({"v": v1})),
        );
        expect_v2.push((path, vals, v1));
    }
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/reader",
        Some(&root),
        Some(&json!({"policy": "path \"kv2/data/*\" { capabilities = [\"read\"] }"})),
    );
    let t = server.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&root),
        Some(&json!({"policies": ["reader"], "ttl": "2h"})),
    );
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();

    server.restart();
    let (status, st) = server.http("GET", "/v1/sys/seal-status", None, None);
    assert_eq!(status, 200);
    assert_eq!(st["sealed"], true, "{st}");
    assert_eq!(st["initialized"], true, "{st}");
    let (status, _) = server.http("GET", "/v1/kv2/data/app0/item0", Some(&root), None);
    assert_eq!(status, 503, "sealed server must answer 503");
    // Progress is kept across calls and reset works.
    let (_, p) = server.http(
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(&json!({"key": init.keys_b64[0]})),
    );
    assert_eq!(p["progress"], 1, "{p}");
    server.http_ok("PUT", "/v1/sys/unseal", None, Some(&json!({"reset": true})));
    let (_, st) = server.http("GET", "/v1/sys/seal-status", None, None);
    assert_eq!(st["progress"], 0, "{st}");
    server.unseal_with(&init.keys_b64[1..4]);

    for (path, vals, v1) in &expect_v2 {
        let v = server.http_ok("GET", &format!("/v1/kv2/data/{path}"), Some(&root), None);
        assert_eq!(v["data"]["data"]["v"], vals[1].as_str(), "{path}: {v}");
        assert_eq!(v["data"]["metadata"]["version"], 2, "{path}: {v}");
        let v = server.http_ok(
            "GET",
            &format!("/v1/kv2/data/{path}?version=1"),
            Some(&root),
            None,
        );
        assert_eq!(v["data"]["data"]["v"], vals[0].as_str(), "{path}: {v}");
        let v = server.http_ok("GET", &format!("/v1/kv1/{path}"), Some(&root), None);
        assert_eq!(v["data"]["v"], v1.as_str(), "{path}: {v}");
    }
    let (status, l) = server.http("LIST", "/v1/kv2/metadata/app3", Some(&root), None);
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["data"]["keys"].as_array().unwrap().len(), 10, "{l}");
    let v = server.http_ok("GET", "/v1/kv2/data/app1/item1", Some(&token), None);
    assert!(v["data"]["data"]["v"].as_str().is_some(), "{v}");
    let (status, _) = server.http("GET", "/v1/kv1/app1/item1", Some(&token), None);
    assert_eq!(status, 403);
}
