//! The HTTP layer over a real socket: Vault's envelope, error bodies, status
//! codes, method mapping and limits, as clients rely on them.

use std::sync::Arc;

use arca_core::{Core, CoreConfig};
use arca_http::ListenerOptions;
use arca_physical::InmemBackend;
use serde_json::{json, Value};

struct Server {
    base: String,
    root: String,
    keys: Vec<String>,
    http: reqwest::Client,
}

async fn start(init: bool) -> Server {
    // Reading an undeclared field fails loudly under tests.
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig {
            engines: arca_sdk::Registry::new()
                .secrets("kv", arca_kv::new_backend)
                .secrets("pki", arca_pki::new_backend),
            ..CoreConfig::default()
        },
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(arca_http::serve(
        core.clone(),
        ListenerOptions {
            forwarder: None,
            address: "127.0.0.1:0".into(),
            tls: None,
            unauthenticated_metrics_access: false,
            legacy_ceremonies: Default::default(),
        },
        Some(tx),
    ));
    let addr = rx.await.unwrap();
    let mut s = Server {
        base: format!("http://{addr}/v1/"),
        root: String::new(),
        keys: vec![],
        http: reqwest::Client::new(),
    };
    if init {
        let r = s
            .http
            .put(s.url("sys/init"))
            .body(r#"{"secret_shares":1,"secret_threshold":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        s.root = v["root_token"].as_str().unwrap().to_string();
        s.keys = v["keys_base64"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let r = s
            .http
            .put(s.url("sys/unseal"))
            .body(json!({"key": s.keys[0]}).to_string())
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["sealed"], false);
        s.req(
            reqwest::Method::POST,
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    }
    s
}

impl Server {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }
    async fn req(&self, m: reqwest::Method, p: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(m, self.url(p))
            .header("X-Vault-Token", &self.root);
        if let Some(b) = body {
            // No Content-Type header, like the Vault CLI.
            r = r.body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }
}

#[tokio::test]
async fn envelope_and_methods() {
    let s = start(true).await;
    let (st, _) = s
        .req(
            reqwest::Method::PUT,
            "secret/data/a",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.req(reqwest::Method::GET, "secret/data/a", None).await;
    assert_eq!(st, 200);
    for field in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(v.get(field).is_some(), "envelope lacks {field}: {v}");
    }
    assert_eq!(v["data"]["data"]["k"], "v");
    // LIST method and GET ?list=true
    let list = reqwest::Method::from_bytes(b"LIST").unwrap();
    let (st, v) = s.req(list, "secret/metadata", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["keys"], json!(["a"]));
    let (st, v) = s
        .req(reqwest::Method::GET, "secret/metadata/?list=true", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["keys"], json!(["a"]));
    // POST works like PUT; DELETE answers 204
    let (st, _) = s
        .req(
            reqwest::Method::POST,
            "secret/data/b",
            Some(json!({"data": {"x": "1"}})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.req(reqwest::Method::DELETE, "secret/data/b", None).await;
    assert_eq!((st, v), (204, Value::Null));
    // Authorization: Bearer
    let r = s
        .http
        .get(s.url("secret/data/a"))
        .bearer_auth(&s.root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn errors_have_vault_status_and_body() {
    let s = start(true).await;
    s.req(
        reqwest::Method::PUT,
        "secret/data/a",
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    let (st, v) = s
        .req(reqwest::Method::GET, "secret/data/missing", None)
        .await;
    assert_eq!((st, v), (404, json!({"errors": []})));
    let r = s.http.get(s.url("secret/data/a")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": ["permission denied"]})
    );
    let (st, v) = s.req(reqwest::Method::GET, "nomount/x", None).await;
    assert_eq!(st, 404);
    assert!(v["errors"][0]
        .as_str()
        .unwrap()
        .contains("no handler for route"));
    let (st, _) = s.req(reqwest::Method::DELETE, "sys/key-status", None).await;
    assert_eq!(st, 405);
    let r = s
        .http
        .put(s.url("secret/data/a"))
        .header("X-Vault-Token", &s.root)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (st, v) = s
        .req(
            reqwest::Method::POST,
            "auth/token/create",
            Some(json!({"ttl": "forever"})),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        v["errors"][0].as_str().unwrap().contains("ttl"),
        "the message names the field: {v}"
    );
    // PATCH without the merge-patch content type
    let (st, _) = s
        .req(
            reqwest::Method::PATCH,
            "secret/data/a",
            Some(json!({"data": {"k": "w"}})),
        )
        .await;
    assert_eq!(st, 415);
    let r = s
        .http
        .patch(s.url("secret/data/a"))
        .header("X-Vault-Token", &s.root)
        .header("Content-Type", "application/merge-patch+json")
        .body(json!({"data": {"k2": "w"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let s = start(true).await;
    let big = format!(
        "{{\"data\": {{\"k\": \"{}\"}}}}",
        "x".repeat(33 * 1024 * 1024)
    );
    let r = s
        .http
        .put(s.url("secret/data/big"))
        .header("X-Vault-Token", &s.root)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (st, _) = s.req(reqwest::Method::GET, "secret/data/big", None).await;
    assert_eq!(st, 404, "nothing was stored");
    // just under a MiB is fine
    let ok = json!({"data": {"k": "y".repeat(1024 * 1024)}});
    let (st, _) = s
        .req(reqwest::Method::PUT, "secret/data/mib", Some(ok))
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn health_and_seal_codes() {
    let s = start(false).await;
    let r = s.http.get(s.url("sys/health")).send().await.unwrap();
    assert_eq!(r.status(), 501, "uninitialized");
    let r = s
        .http
        .get(s.url("sys/health?uninitcode=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = s
        .http
        .get(s.url("sys/init"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"initialized": false}));
    let r = s
        .http
        .put(s.url("sys/init"))
        .body(r#"{"secret_shares":3,"secret_threshold":2}"#)
        .send()
        .await
        .unwrap();
    let init: Value = r.json().await.unwrap();
    assert_eq!(init["keys"].as_array().unwrap().len(), 3);
    assert_eq!(init["keys_base64"].as_array().unwrap().len(), 3);
    let r = s
        .http
        .put(s.url("sys/init"))
        .body(r#"{"secret_shares":3,"secret_threshold":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "already initialized");
    let r = s.http.get(s.url("sys/health")).send().await.unwrap();
    assert_eq!(r.status(), 503, "sealed");
    let r = s
        .http
        .get(s.url("sys/mounts"))
        .header("X-Vault-Token", init["root_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": ["Vault is sealed"]})
    );
    // unseal with hex then base64 shares; progress and nonce are reported
    let r = s
        .http
        .put(s.url("sys/unseal"))
        .body(json!({"key": init["keys"][0]}).to_string())
        .send()
        .await
        .unwrap();
    let st: Value = r.json().await.unwrap();
    assert_eq!(
        (
            st["sealed"].clone(),
            st["progress"].clone(),
            st["t"].clone(),
            st["n"].clone()
        ),
        (json!(true), json!(1), json!(2), json!(3))
    );
    assert!(!st["nonce"].as_str().unwrap().is_empty());
    let r = s
        .http
        .put(s.url("sys/unseal"))
        .body(r#"{"key":"not a key!"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .put(s.url("sys/unseal"))
        .body(json!({"key": init["keys_base64"][1]}).to_string())
        .send()
        .await
        .unwrap();
    let st: Value = r.json().await.unwrap();
    assert_eq!(st["sealed"], false);
    let r = s.http.get(s.url("sys/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s.http.head(s.url("sys/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = s
        .http
        .get(s.url("sys/leader"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ha_enabled"], false);
}

/// What an engine learns of the client: its address and port, the
/// certificates it presented over TLS, that it was not forwarded, and the
/// mount's type and accessor — never the token.
#[tokio::test]
async fn engines_see_the_client_connection_and_certificate() {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let dir = tempfile::tempdir().unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&server_key)
        .unwrap();
    std::fs::write(dir.path().join("s.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.path().join("s.key"), server_key.serialize_pem()).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = rcgen::CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .self_signed(&client_key)
        .unwrap();

    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig {
            engines: arca_sdk::Registry::new().secrets("echo", arca_sdk::testing::echo_backend),
            ..CoreConfig::default()
        },
    );
    let init = core.initialize(1, 1).await.unwrap();
    core.unseal_with_key(&init.keys[0]).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(arca_http::serve(
        core.clone(),
        ListenerOptions {
            forwarder: None,
            address: "127.0.0.1:0".into(),
            tls: Some(arca_http::TlsOptions::new(
                dir.path().join("s.pem"),
                dir.path().join("s.key"),
            )),
            unauthenticated_metrics_access: false,
            legacy_ceremonies: Default::default(),
        },
        Some(tx),
    ));
    let addr = rx.await.unwrap();
    let identity = reqwest::Identity::from_pem(
        format!("{}{}", client_cert.pem(), client_key.serialize_pem()).as_bytes(),
    )
    .unwrap();
    let root = init.root_token.clone();
    let client = |id: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder().danger_accept_invalid_certs(true);
        if let Some(id) = id {
            b = b.identity(id);
        }
        b.build().unwrap()
    };
    let with_cert = client(Some(identity));
    let r = with_cert
        .post(format!("https://{addr}/v1/sys/mounts/echo"))
        .header("X-Vault-Token", &root)
        .body(r#"{"type":"echo"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let read_echo = |c: reqwest::Client| {
        let (url, root) = (format!("https://{addr}/v1/echo/x"), root.clone());
        async move {
            let r = c.get(url).header("X-Vault-Token", root).send().await;
            r.unwrap().json::<Value>().await.unwrap()
        }
    };
    let v = read_echo(with_cert).await;
    let d = &v["data"];
    assert_eq!(d["remote_addr"], "127.0.0.1", "{v}");
    assert!(d["remote_port"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(d["peer_certificates"], 1, "{v}");
    assert_eq!(d["forwarded"], false, "{v}");
    assert_eq!(d["client_token"], Value::Null, "{v}");
    assert_eq!(d["mount_type"], "echo", "{v}");
    assert!(
        d["mount_accessor"].as_str().unwrap().starts_with("echo_"),
        "{v}"
    );
    // Without a client certificate: none is reported.
    let v = read_echo(client(None)).await;
    assert_eq!(v["data"]["peer_certificates"], 0, "{v}");
}

/// A request a standby forwards reaches the active node's engines with the
/// client's own connection (address, port, certificates), carried beside
/// the request; a header cannot forge it.
#[tokio::test]
async fn a_forwarded_request_keeps_the_client_connection() {
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig {
            engines: arca_sdk::Registry::new().secrets("echo", arca_sdk::testing::echo_backend),
            ..CoreConfig::default()
        },
    );
    let init = core.initialize(1, 1).await.unwrap();
    core.unseal_with_key(&init.keys[0]).await.unwrap();
    core.mount("echo/", "echo", "", Default::default())
        .await
        .unwrap();
    let forwarded = |connection: Option<arca_sdk::Connection>| arca_http::ForwardedRequest {
        method: "GET".into(),
        uri: "/v1/echo/x".into(),
        headers: vec![
            ("x-vault-token".into(), init.root_token.clone()),
            (arca_http::FORWARDED_HEADER.into(), "1".into()),
            ("x-forwarded-for".into(), "6.6.6.6".into()),
        ],
        body: vec![],
        connection,
    };
    let client = arca_sdk::Connection {
        remote_addr: "192.0.2.7".parse().unwrap(),
        remote_port: 40123,
        peer_certificates: vec![vec![0x30, 0x00]],
    };
    let r = arca_http::serve_forwarded(core.clone(), forwarded(Some(client))).await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let d = &v["data"];
    assert_eq!(d["remote_addr"], "192.0.2.7", "{v}");
    assert_eq!(d["remote_port"], 40123, "{v}");
    assert_eq!(d["peer_certificates"], 1, "{v}");
    assert_eq!(d["forwarded"], true, "{v}");
    // Without one, none: X-Forwarded-For is not believed.
    let r = arca_http::serve_forwarded(core, forwarded(None)).await;
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"]["remote_addr"], Value::Null, "{v}");
}
