//! Audit devices through the real `bao` CLI (`bao audit enable|list|disable`)
//! on a real server: every request is recorded before it runs and its
//! response after, with secrets HMAC'd (the log is grepped for every
//! secret the test handled: root token, child token, KV value, userpass
//! password, wrapping token); `sys/audit-hash` gives the same HMAC;
//! fail closed (a file that cannot be written refuses the request and
//! nothing is done); SIGHUP reopens a rotated file; options that are
//! refused (prefix, jsonx, socket, local, a path in the storage
//! directory) and sudo.

mod common;

use std::path::Path;

use common::{Bao, Server};
use serde_json::Value;

fn entries(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn setup() -> (Server, String, Bao) {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    (server, root, bao)
}

#[test]
fn audit_log_records_everything_and_no_secret() {
    let (server, root, bao) = setup();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    bao.run(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", log.display()),
    ])
    .ok();
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert_eq!(list["file/"]["type"], "file", "{list}");
    assert_eq!(
        list["file/"]["options"]["file_path"],
        log.display().to_string()
    );
    assert!(!list.to_string().contains("salt"), "{list}");

    // Secrets of every kind go through the server.
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    bao.run(&["kv", "put", "secret/app", "password=s3cr3t-kv-value"])
        .ok();
    bao.run(&["kv", "get", "secret/app"]).ok();
    let child = bao.json(&["token", "create", "-format=json", "-policy=default"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    bao.run(&["auth", "enable", "userpass"]).ok();
    bao.run(&[
        "write",
        "auth/userpass/users/alice",
        "password=alice-pass-123",
        "token_policies=default",
    ])
    .ok();
    let login = server.bao().json(&[
        "login",
        "-format=json",
        "-method=userpass",
        "username=alice",
        "password=alice-pass-123",
    ]);
    let alice_token = login["auth"]["client_token"].as_str().unwrap().to_string();
    let wrap = bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=60s",
        "sys/wrapping/wrap",
        "x=wrapped-secret",
    ])["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    bao.run(&["unwrap", &wrap]).ok();
    // A denied request is recorded too.
    server
        .bao()
        .with_token(&child)
        .run(&["kv", "get", "secret/app"])
        .api_error(403, "permission denied");

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        root.as_str(),
        child.as_str(),
        alice_token.as_str(),
        wrap.as_str(),
        "s3cr3t-kv-value",
        "alice-pass-123",
        "wrapped-secret",
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret: {secret}"
        );
    }

    // The KV write: a request entry before its response, the value HMAC'd
    // as sys/audit-hash computes it.
    let hash = bao.json(&[
        "write",
        "-format=json",
        "sys/audit-hash/file",
        "input=s3cr3t-kv-value",
    ])["data"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hash.starts_with("hmac-sha256:"), "{hash}");
    let all = entries(&log);
    let put = all
        .iter()
        .position(|e| {
            e["type"] == "request"
                && e["request"]["path"] == "secret/data/app"
                && matches!(
                    e["request"]["operation"].as_str(),
                    Some("create" | "update")
                )
        })
        .expect("request entry of the KV write");
    let e = &all[put];
    assert_eq!(
        e["request"]["data"]["data"]["password"],
        hash.as_str(),
        "{e}"
    );
    assert_eq!(e["request"]["mount_type"], "kv");
    assert_eq!(e["auth"]["policies"][0], "root");
    assert!(e["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert!(e["request"]["remote_address"].as_str().is_some(), "{e}");
    let id = e["request"]["id"].clone();
    let resp = all
        .iter()
        .position(|x| x["type"] == "response" && x["request"]["id"] == id)
        .expect("response entry of the KV write");
    assert!(
        resp > put,
        "the response entry comes after the request entry"
    );
    // The login's response: the new token HMAC'd.
    let l = all
        .iter()
        .find(|x| x["type"] == "response" && x["request"]["path"] == "auth/userpass/login/alice")
        .expect("login response");
    assert!(l["response"]["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert_eq!(
        l["response"]["auth"]["display_name"], "userpass-alice",
        "{l}"
    );
    // The denied read.
    assert!(
        all.iter().any(|x| x["error"] == "permission denied"
            && x["request"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("secret/app") || p == "secret/data/app")),
        "no entry for the denied request: {:?}",
        all.iter()
            .filter(|x| x["error"].is_string())
            .collect::<Vec<_>>()
    );
    // Every entry has a time and a type.
    assert!(all
        .iter()
        .all(|x| x["time"].is_string() && x["type"].is_string()));

    bao.run(&["audit", "disable", "file/"]).ok();
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert!(list.as_object().is_none_or(|m| m.is_empty()), "{list}");
}

#[test]
fn fail_closed_rotation_and_refusals() {
    let (server, root, bao) = setup();
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("logs");
    std::fs::create_dir(&logdir).unwrap();
    let log = logdir.join("audit.log");
    bao.run(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", log.display()),
    ])
    .ok();
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();

    // logrotate: the file moves, SIGHUP, the server writes a new one.
    std::fs::rename(&log, logdir.join("audit.log.1")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    common::wait_until(
        "the reopened audit file",
        std::time::Duration::from_secs(10),
        || {
            bao.run(&["kv", "put", "secret/after-rotation", "a=1"]);
            log.exists()
                && std::fs::read_to_string(&log)
                    .unwrap()
                    .contains("after-rotation")
        },
    );

    // Nowhere to write: the request is refused and nothing is done.
    std::fs::remove_dir_all(&logdir).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    common::wait_until("the refusal", std::time::Duration::from_secs(10), || {
        bao.run(&["kv", "put", "secret/unlogged", "a=1"]).code == 2
    });
    bao.run(&["kv", "put", "secret/unlogged", "a=1"])
        .api_error(500, "audit");
    std::fs::create_dir(&logdir).unwrap();
    bao.run(&["kv", "get", "secret/unlogged"]).code(2);
    let (code, _) = server.http("GET", "/v1/secret/data/unlogged", Some(&root), None);
    assert_eq!(code, 404, "a request refused for want of an audit log ran");

    // Refused options and devices, nothing stored.
    let storage = server.storage_dir().join("audit.log");
    for (args, text) in [
        (
            vec![
                "audit",
                "enable",
                "-path=p",
                "file",
                "file_path=stdout",
                "prefix=X",
            ],
            "prefix",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=j",
                "file",
                "file_path=stdout",
                "format=jsonx",
            ],
            "jsonx",
        ),
        (
            vec![
                "audit",
                "enable",
                "socket",
                "address=127.0.0.1:9",
                "socket_type=tcp",
            ],
            "socket",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=l",
                "-local",
                "file",
                "file_path=stdout",
            ],
            "local",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=rel",
                "file",
                "file_path=audit.log",
            ],
            "absolute",
        ),
    ] {
        bao.run(&args).api_error(400, text);
    }
    bao.run(&[
        "audit",
        "enable",
        "-path=inside",
        "file",
        &format!("file_path={}", storage.display()),
    ])
    .api_error(400, "storage");
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert_eq!(list.as_object().map(|m| m.len()), Some(1), "{list}");

    // Only sudo enables a device.
    let t = bao.json(&["token", "create", "-format=json", "-policy=default"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .bao()
        .with_token(&t)
        .run(&["audit", "enable", "-path=x", "file", "file_path=discard"])
        .api_error(403, "permission denied");
}
