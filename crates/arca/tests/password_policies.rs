//! Password policies (`sys/policies/password`) through the real `bao` CLI
//! and plain HTTP: write from a file, read back as written, generate
//! passwords that meet every rule, list, delete; Vault's status codes
//! (204 on write, 404 for a missing policy, a 404 with no errors for an
//! empty list); bad policies refused with a 400 that says why (unknown
//! keys and rule types included, never ignored); a token needs no sudo,
//! only the capability on the path; and in a raft cluster a write through
//! a standby is forwarded and every node generates from it.

mod common;

use common::{write_file, Bao, Server};
use serde_json::{json, Value};

/// The example policy's rules, (charset, min-chars): Vault's documented
/// example, with two symbols required.
const RULES: [(&str, usize); 4] = [
    ("abcdefghijklmnopqrstuvwxyz", 1),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1),
    ("0123456789", 1),
    ("!@#$%^&*", 2),
];

/// The example policy's text: `length = 20` and a `rule "charset"` block
/// per entry of [`RULES`], as a user would write it.
fn example() -> String {
    let mut text = "length = 20\n".to_string();
    for (charset, min) in RULES {
        text +=
            &format!("\nrule \"charset\" {{\n  charset = \"{charset}\"\n  min-chars = {min}\n}}\n");
    }
    text
}

/// Asserts `pw` meets [`example`]: 20 characters, each rule's minimum, and
/// nothing outside the rules' charsets.
#[track_caller]
fn meets_example(pw: &str) {
    assert_eq!(pw.chars().count(), 20, "{pw}");
    for (charset, min) in RULES {
        let n = pw.chars().filter(|c| charset.contains(*c)).count();
        assert!(n >= min, "{pw}: {n} of {charset:?}, {min} wanted");
    }
    assert!(
        pw.chars()
            .all(|c| RULES.iter().any(|(charset, _)| charset.contains(c))),
        "{pw}"
    );
}

fn generate(bao: &Bao, name: &str) -> String {
    let v = bao.json(&[
        "read",
        "-format=json",
        &format!("sys/policies/password/{name}/generate"),
    ]);
    v["data"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no password in {v}"))
        .to_string()
}

#[test]
fn bao_manages_password_policies_and_generates_from_them() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let token = init.root_token.as_str();

    // --- nothing yet: the list is Vault's empty 404
    let out = root.run(&["list", "sys/policies/password"]).code(2);
    assert!(out.stderr.contains("No value found"), "{}", out.describe());
    let (status, body) = server.http("LIST", "/v1/sys/policies/password", Some(token), None);
    assert_eq!((status, body), (404, json!({"errors": []})));

    // --- write from a file, read it back as written
    write_file(&root.home, "example.hcl", &example());
    let out = root
        .run(&[
            "write",
            "sys/policies/password/example",
            "policy=@example.hcl",
        ])
        .ok();
    assert!(out.stdout.contains("Success"), "{}", out.describe());
    let v = root.json(&["read", "-format=json", "sys/policies/password/example"]);
    assert_eq!(v["data"]["policy"], example(), "{v}");

    // --- generate: every rule met, no two alike
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let pw = generate(&root, "example");
        meets_example(&pw);
        assert!(seen.insert(pw.clone()), "{pw} twice");
    }
    let out = root
        .run(&[
            "read",
            "-field=password",
            "sys/policies/password/example/generate",
        ])
        .ok();
    meets_example(out.stdout.trim());
    let body = server.http_ok(
        "GET",
        "/v1/sys/policies/password/example/generate",
        Some(token),
        None,
    );
    meets_example(body["data"]["password"].as_str().unwrap());

    // --- a second policy (JSON body over HTTP answers 204), listed
    let (status, body) = server.http(
        "PUT",
        "/v1/sys/policies/password/pin",
        Some(token),
        Some(&json!({"policy": "length = 6\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 6\n}\n"})),
    );
    assert_eq!((status, body), (204, Value::Null));
    let pin = generate(&root, "pin");
    assert!(
        pin.len() == 6 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );
    assert_eq!(
        root.json(&["list", "-format=json", "sys/policies/password"]),
        json!(["example", "pin"])
    );

    // --- bad policies: a 400 that says why, nothing stored
    for (name, text, why) in [
        ("short", "length = 3\nrule \"charset\" {\n  charset = \"abc\"\n}\n", "between 4 and 100"),
        ("long", "length = 101\nrule \"charset\" {\n  charset = \"abc\"\n}\n", "between 4 and 100"),
        ("nocharset", "length = 20\n", "no charset"),
        ("empty", "length = 20\nrule \"charset\" {\n  charset = \"\"\n}\n", "must not be empty"),
        (
            "toomany",
            "length = 8\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 5\n}\nrule \"charset\" {\n  charset = \"123\"\n  min-chars = 4\n}\n",
            "require at least 9 characters but 8",
        ),
        (
            "typo",
            "length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  min_chars = 5\n}\n",
            "unknown key \"min_chars\"",
        ),
        (
            "ruletype",
            "length = 20\nrule \"symbols\" {\n  charset = \"!@\"\n}\n",
            "unrecognized rule type",
        ),
        ("syntax", "length = 20\nrule \"charset\" {\n", "unable to decode"),
    ] {
        let file = format!("{name}.hcl");
        write_file(&root.home, &file, text);
        root.run(&[
            "write",
            &format!("sys/policies/password/{name}"),
            &format!("policy=@{file}"),
        ])
        .api_error(400, why);
    }
    root.run(&["write", "sys/policies/password/nothing", "policy="])
        .api_error(400, "missing policy");
    assert_eq!(
        root.json(&["list", "-format=json", "sys/policies/password"]),
        json!(["example", "pin"])
    );

    // --- missing policies: 404 with Vault's message
    for path in [
        "/v1/sys/policies/password/missing",
        "/v1/sys/policies/password/missing/generate",
    ] {
        let (status, body) = server.http("GET", path, Some(token), None);
        assert_eq!(
            (status, body),
            (404, json!({"errors": ["policy does not exist"]})),
            "{path}"
        );
    }
    let out = root
        .run(&["read", "sys/policies/password/missing/generate"])
        .code(2);
    assert!(out.stderr.contains("No value found"), "{}", out.describe());

    // --- no sudo: a token that may only read the generate path uses it,
    // and cannot write
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/pw-gen",
        Some(token),
        Some(&json!({"policy": "path \"sys/policies/password/example/generate\" { capabilities = [\"read\"] }"})),
    );
    let user = root.json(&["token", "create", "-policy=pw-gen", "-format=json"]);
    let user = root.with_token(user["auth"]["client_token"].as_str().unwrap());
    meets_example(&generate(&user, "example"));
    user.run(&[
        "write",
        "sys/policies/password/example",
        "policy=@example.hcl",
    ])
    .api_error(403, "permission denied");
    user.run(&["read", "sys/policies/password/pin/generate"])
        .api_error(403, "permission denied");

    // --- delete (again: still a success), then gone
    for _ in 0..2 {
        let out = root.run(&["delete", "sys/policies/password/pin"]).ok();
        assert!(out.stdout.contains("Success"), "{}", out.describe());
    }
    root.run(&["read", "sys/policies/password/pin"]).code(2);
    assert_eq!(
        root.json(&["list", "-format=json", "sys/policies/password"]),
        json!(["example"])
    );

    // --- kept across a restart (stored in the barrier)
    let mut server = server;
    server.restart();
    let keys = init.keys_b64[..3].to_vec();
    server.unseal_with(&keys);
    let v = root.json(&["read", "-format=json", "sys/policies/password/example"]);
    assert_eq!(v["data"]["policy"], example(), "{v}");
    meets_example(&generate(&root, "example"));
}

#[test]
fn a_standby_forwards_policy_writes_and_generates_from_replicated_policies() {
    let n1 = Server::start_raft("n1");
    let init = n1.init_and_unseal();
    let n2 = Server::start_raft("n2");
    n2.join_and_unseal(&n1, &init.keys_b64[..3]);
    let b1 = n1.bao().with_token(&init.root_token);
    let b2 = n2.bao().with_token(&init.root_token);
    let (_, leader) = n2.http("GET", "/v1/sys/leader", None, None);
    assert_eq!(leader["is_self"], false, "n2 is a standby: {leader}");

    // Written through the standby (forwarded to the leader).
    write_file(&b2.home, "example.hcl", &example());
    b2.run(&[
        "write",
        "sys/policies/password/example",
        "policy=@example.hcl",
    ])
    .ok();
    for b in [&b1, &b2] {
        let v = b.json(&["read", "-format=json", "sys/policies/password/example"]);
        assert_eq!(v["data"]["policy"], example(), "{v}");
        meets_example(&generate(b, "example"));
    }

    // Rewritten on the leader: the standby generates from the new text at
    // once (its cached parse is dropped when the write is applied there).
    write_file(
        &b1.home,
        "pin.hcl",
        "length = 6\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 6\n}\n",
    );
    b1.run(&["write", "sys/policies/password/example", "policy=@pin.hcl"])
        .ok();
    let pw = generate(&b2, "example");
    assert!(
        pw.len() == 6 && pw.chars().all(|c| c.is_ascii_digit()),
        "{pw}"
    );

    // Deleted through the standby: gone everywhere.
    b2.run(&["delete", "sys/policies/password/example"]).ok();
    for b in [&b1, &b2] {
        b.run(&["read", "sys/policies/password/example/generate"])
            .code(2);
        b.run(&["list", "sys/policies/password"]).code(2);
    }
}
