//! Our own `arca` CLI building and operating a two-node raft cluster:
//! `operator init/unseal`, `operator raft join`, `list-peers`, `snapshot
//! save/restore`, `step-down` and `remove-peer`, as an operator types them.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn arca(home: &Path, addr: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_arca"));
    c.args(args)
        .env("HOME", home)
        .env("VAULT_ADDR", addr)
        .env_remove("VAULT_TOKEN")
        .env_remove("ARCA_TOKEN")
        .env_remove("ARCA_ADDR")
        .stdin(Stdio::null());
    if let Some(t) = token {
        c.env("VAULT_TOKEN", t);
    }
    c.output().unwrap()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn arca_cli_operates_a_raft_cluster() {
    let n1 = Server::start_raft("c1");
    let n2 = Server::start_raft("c2");
    let home = n1.work_dir();
    let run = |s: &Server, tok: Option<&str>, args: &[&str]| arca(&home, &s.addr, tok, args);

    let init: Value = serde_json::from_str(&ok(run(
        &n1,
        None,
        &[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ],
    )))
    .unwrap();
    let key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    let tok = Some(root.as_str());
    ok(run(&n1, None, &["operator", "unseal", &key]));
    n1.wait_active();

    let out = ok(run(&n2, None, &["operator", "raft", "join", &n1.addr]));
    assert!(out.contains("Joined") && out.contains("true"), "{out}");
    let out = ok(run(&n2, None, &["operator", "unseal", &key]));
    assert!(out.contains("Sealed") && out.contains("false"), "{out}");

    let peers = ok(run(&n2, tok, &["operator", "raft", "list-peers"]));
    assert!(peers.contains("c1") && peers.contains("leader"), "{peers}");
    assert!(
        peers.contains("c2") && peers.contains("follower"),
        "{peers}"
    );

    ok(run(
        &n2,
        tok,
        &["secrets", "enable", "-path=secret", "-version=2", "kv"],
    ));
    ok(run(&n2, tok, &["kv", "put", "secret/a", "v=1"]));
    let snap = home.join("s.snap");
    let snap_s = snap.to_str().unwrap();
    ok(run(
        &n2,
        tok,
        &["operator", "raft", "snapshot", "save", snap_s],
    ));
    assert!(std::fs::metadata(&snap).unwrap().len() > 100);
    ok(run(&n1, tok, &["kv", "put", "secret/a", "v=2"]));
    ok(run(
        &n1,
        tok,
        &["operator", "raft", "snapshot", "restore", snap_s],
    ));
    for s in [&n1, &n2] {
        let v = ok(run(s, tok, &["kv", "get", "-field=v", "secret/a"]));
        assert_eq!(v.trim(), "1");
    }

    ok(run(&n1, tok, &["operator", "step-down"]));
    let t0 = Instant::now();
    while n2.http("GET", "/v1/sys/health", None, None).0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "c2 did not take over"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ok(run(&n1, tok, &["operator", "raft", "remove-peer", "c1"]));
    assert!(out.contains("Peer removed successfully!"), "{out}");
    let peers = ok(run(&n2, tok, &["operator", "raft", "list-peers"]));
    assert!(!peers.contains("c1"), "{peers}");
}
