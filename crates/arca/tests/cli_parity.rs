//! The `arca` CLI beside the real `bao` CLI (OpenBao 2.7.2) on one Arca
//! server, same HOME and token: for each command the two print the same
//! JSON (ids and times aside), the same table keys and the same `-field`
//! values, and exit with the same code.
//!
//! Families covered so far: generic `read` of endpoints that answer a bare
//! object rather than the `data` envelope (`sys/health`, `sys/seal-status`,
//! `sys/leader`), which the Go client shows as `data`.

mod common;

use common::{Bao, Server};
use serde_json::Value;

/// Fields that differ between two calls whatever the client.
const VOLATILE: &[&str] = &["request_id", "server_time_utc"];

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in VOLATILE {
                m.remove(*k);
            }
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// The keys of a table's `Key  Value` rows.
fn table_keys(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("---"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Runs `args` with both CLIs: same exit code; returns (bao, arca) stdout.
fn both(bao: &Bao, args: &[&str]) -> (String, String) {
    let b = bao.run(args);
    let a = bao.as_arca().run(args);
    assert_eq!(
        a.code, b.code,
        "exit codes differ for {args:?}:\nbao: {}\narca: {}",
        b.stderr, a.stderr
    );
    (b.stdout, a.stdout)
}

#[test]
fn generic_read_shows_bare_answers_as_data() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    for path in ["sys/health", "sys/seal-status", "sys/leader"] {
        let (b, a) = both(&bao, &["read", "-format=json", path]);
        let (mut b, mut a): (Value, Value) = (
            serde_json::from_str(&b).unwrap(),
            serde_json::from_str(&a).unwrap(),
        );
        strip(&mut b);
        strip(&mut a);
        assert!(
            b["data"].as_object().is_some_and(|d| !d.is_empty()),
            "bao shows no data for {path}: {b}"
        );
        assert_eq!(a, b, "arca and bao differ on `read -format=json {path}`");

        let (b, a) = both(&bao, &["read", path]);
        let mut bk = table_keys(&b);
        let mut ak = table_keys(&a);
        bk.retain(|k| !VOLATILE.contains(&k.as_str()));
        ak.retain(|k| !VOLATILE.contains(&k.as_str()));
        assert!(!bk.is_empty(), "bao printed no table for {path}:\n{b}");
        assert_eq!(
            ak, bk,
            "table keys differ for `read {path}`:\nbao:\n{b}\narca:\n{a}"
        );
    }
    let (b, a) = both(&bao, &["read", "-field=initialized", "sys/health"]);
    assert_eq!(a.trim(), b.trim());
    assert_eq!(a.trim(), "true");
    // A field that is not there: the same failure.
    let (_, a) = both(&bao, &["read", "-field=nope", "sys/health"]);
    assert!(a.is_empty());
}
