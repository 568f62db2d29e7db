//! Password policies on an unsealed core: the `sys/policies/password`
//! paths, and an engine's `SystemView::generate_password` reading them.

// Not every shared helper is used here.
#[allow(dead_code)]
mod common;

use std::sync::{Arc, Mutex};

use arca_sdk::{LogicalError, Operation::*, SystemView};
use common::TestCore;
use serde_json::{json, Value};

const POLICY: &str = "length = 12\nrule \"charset\" {\n  charset = \"xyz\"\n  min-chars = 4\n}\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 8\n}\n";

type Captured = Arc<Mutex<Option<Arc<dyn SystemView>>>>;

/// An unsealed core whose `echo` engine hands its `SystemView` to the test
/// when it is built.
async fn core_with_engine() -> (TestCore, Captured) {
    let captured: Captured = Arc::new(Mutex::new(None));
    let c = captured.clone();
    let t = common::unsealed_with(move |engines| {
        engines.secrets("echo", move |cfg| {
            *c.lock().unwrap() = Some(cfg.system.clone());
            arca_sdk::testing::echo_backend(cfg)
        })
    })
    .await;
    (t, captured)
}

/// Writes `policy` to `sys/policies/password/NAME`: the response body.
async fn write(t: &TestCore, name: &str, policy: &str) -> Result<Option<Value>, LogicalError> {
    t.root(
        Update,
        &format!("sys/policies/password/{name}"),
        json!({ "policy": policy }),
    )
    .await
}

/// The data of a read or list of `PATH`, which must answer with a body.
async fn data(t: &TestCore, op: arca_sdk::Operation, path: &str) -> Result<Value, LogicalError> {
    let r = t.root(op, path, json!({})).await?;
    Ok(r.expect("a response body")["data"].clone())
}

#[tokio::test]
async fn policies_are_written_read_listed_generated_and_deleted() {
    let (t, _) = core_with_engine().await;
    assert_eq!(
        data(&t, List, "sys/policies/password").await.unwrap_err(),
        LogicalError::NotFound
    );
    let w = write(&t, "digits", POLICY).await.unwrap();
    assert!(w.is_none(), "a write answers 204: {w:?}");
    let r = data(&t, Read, "sys/policies/password/digits")
        .await
        .unwrap();
    assert_eq!(r, json!({ "policy": POLICY }));
    // base64, as Vault accepts it, is stored decoded.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(POLICY);
    write(&t, "b64", &b64).await.unwrap();
    let r = data(&t, Read, "sys/policies/password/b64").await.unwrap();
    assert_eq!(r["policy"], POLICY);
    let l = data(&t, List, "sys/policies/password/").await.unwrap();
    assert_eq!(l["keys"], json!(["b64", "digits"]));
    for _ in 0..50 {
        let g = data(&t, Read, "sys/policies/password/digits/generate")
            .await
            .unwrap();
        let pw = g["password"].as_str().unwrap();
        assert_eq!(pw.len(), 12);
        assert_eq!(pw.chars().filter(|c| "xyz".contains(*c)).count(), 4, "{pw}");
        assert_eq!(pw.chars().filter(|c| c.is_ascii_digit()).count(), 8, "{pw}");
    }
    for path in [
        "sys/policies/password/nope",
        "sys/policies/password/nope/generate",
    ] {
        let e = data(&t, Read, path).await.unwrap_err();
        assert_eq!(
            e,
            LogicalError::Status {
                status: 404,
                message: "policy does not exist".into()
            },
            "{path}"
        );
    }
    for (policy, want) in [
        ("", "missing policy"),
        ("length = 20", "no charset"),
        (
            "length = 2\nrule \"charset\" {\n charset = \"ab\"\n}\n",
            "between 4 and 100",
        ),
        (
            "length = 20\nrule \"charset\" {\n charset = \"ab\"\n min_chars = 2\n}\n",
            "unknown key \"min_chars\"",
        ),
        (
            "length = 20\nrule \"lowercase\" {\n min-chars = 2\n}\n",
            "unrecognized rule type",
        ),
    ] {
        let e = write(&t, "bad", policy).await.unwrap_err();
        assert!(
            matches!(&e, LogicalError::InvalidRequest(m) if m.contains(want)),
            "{policy:?}: {e:?}"
        );
    }
    for _ in 0..2 {
        t.root(Delete, "sys/policies/password/b64", json!({}))
            .await
            .unwrap();
    }
    let l = data(&t, List, "sys/policies/password").await.unwrap();
    assert_eq!(l["keys"], json!(["digits"]));
}

#[tokio::test]
async fn an_engine_generates_from_a_named_policy_or_the_default() {
    let (t, captured) = core_with_engine().await;
    t.root(Update, "sys/mounts/db", json!({"type": "echo"}))
        .await
        .unwrap();
    let system = captured.lock().unwrap().clone().expect("engine built");
    let pw = system.generate_password(None).await.unwrap();
    assert!(
        arca_sdk::PasswordPolicy::vault_default().passes(&pw),
        "{pw}"
    );
    let e = system.generate_password(Some("digits")).await.unwrap_err();
    assert!(e.to_string().contains("\"digits\" does not exist"), "{e}");
    write(&t, "digits", POLICY).await.unwrap();
    let pw = system.generate_password(Some("digits")).await.unwrap();
    assert_eq!(pw.chars().filter(|c| c.is_ascii_digit()).count(), 8, "{pw}");
    // A rewrite is used at once (the cached parse is dropped).
    write(
        &t,
        "digits",
        "length = 6\nrule \"charset\" {\n charset = \"q\"\n}\n",
    )
    .await
    .unwrap();
    assert_eq!(
        system.generate_password(Some("digits")).await.unwrap(),
        "qqqqqq"
    );
    t.root(Delete, "sys/policies/password/digits", json!({}))
        .await
        .unwrap();
    assert!(system.generate_password(Some("digits")).await.is_err());
}
