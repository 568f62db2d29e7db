//! Wire-level tests of `arca-client` against a tiny canned HTTP server: they
//! check what goes on the wire (methods, paths, headers, bodies) and how
//! answers (envelopes, 404s, error envelopes, retries) are turned into results.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_client::{Client, ClientConfig, Method};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Default)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

/// Serves one canned answer per request (connection closed after each).
async fn serve(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap().split(' ');
                let method = first.next().unwrap().to_string();
                let target = first.next().unwrap().to_string();
                let headers: Vec<(String, String)> = lines
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once(':').unwrap();
                        (k.trim().to_string(), v.trim().to_string())
                    })
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = Seen {
                    method,
                    target,
                    headers,
                    body: String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
                };
                let (status, body) = handler(&req);
                seen.lock().unwrap().push(req);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
                sock.shutdown().await.ok();
            });
        }
    });
    (addr, seen)
}

fn client(addr: &str, token: Option<&str>) -> Client {
    Client::with_config(ClientConfig {
        address: addr.to_string(),
        token: token.map(String::from),
        ..ClientConfig::default()
    })
    .unwrap()
    .with_retries(2, Duration::from_millis(10))
}

#[tokio::test]
async fn read_sends_vault_headers_and_parses_envelope() {
    let (addr, seen) = serve(Arc::new(|_| {
        (
            200,
            json!({"request_id": "1", "data": {"foo": "bar"}, "lease_duration": 60}).to_string(),
        )
    }))
    .await;
    let c = client(&addr, Some("root"));
    let s = c.read("secret/foo").await.unwrap().unwrap();
    assert_eq!(s.get_str("foo"), Some("bar"));
    assert_eq!(s.lease_duration, 60);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/secret/foo");
    assert_eq!(seen[0].header("x-vault-token"), Some("root"));
    assert_eq!(seen[0].header("x-vault-request"), Some("true"));
}

#[tokio::test]
async fn no_token_header_without_token() {
    let (addr, seen) = serve(Arc::new(|_| (200, "{}".into()))).await;
    client(&addr, None).read("sys/seal-status").await.unwrap();
    assert_eq!(seen.lock().unwrap()[0].header("x-vault-token"), None);
}

#[tokio::test]
async fn read_404_is_none_but_404_with_data_is_some() {
    let (addr, _) = serve(Arc::new(|r: &Seen| {
        if r.target.contains("deleted") {
            (
                404,
                json!({"data": {"data": null, "metadata": {"version": 1}}}).to_string(),
            )
        } else {
            (404, json!({"errors": []}).to_string())
        }
    }))
    .await;
    let c = client(&addr, Some("t"));
    assert!(c.read("secret/data/missing").await.unwrap().is_none());
    let s = c.read("secret/data/deleted").await.unwrap().unwrap();
    assert!(s.get("metadata").is_some());
    assert!(c.list("secret/metadata/").await.unwrap().is_none());
}

#[tokio::test]
async fn list_uses_get_with_list_query() {
    let (addr, seen) = serve(Arc::new(|_| {
        (200, json!({"data": {"keys": ["a", "b/"]}}).to_string())
    }))
    .await;
    let s = client(&addr, Some("t"))
        .list("secret/metadata/x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.list_keys(), vec!["a", "b/"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/secret/metadata/x?list=true");
}

#[tokio::test]
async fn write_patch_delete() {
    let (addr, seen) = serve(Arc::new(|r: &Seen| match r.method.as_str() {
        "PUT" => (204, String::new()),
        "PATCH" => (200, json!({"data": {"version": 2}}).to_string()),
        _ => (204, String::new()),
    }))
    .await;
    let c = client(&addr, Some("t"));
    assert!(c
        .write("secret/foo", &json!({"a": "b"}))
        .await
        .unwrap()
        .is_none());
    let s = c
        .patch("secret/data/foo", &json!({"data": {"a": "c"}}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.get("version"), Some(&json!(2)));
    assert!(c.delete("secret/foo").await.unwrap().is_none());
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[0].body).unwrap(),
        json!({"a": "b"})
    );
    assert_eq!(seen[1].method, "PATCH");
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(seen[2].method, "DELETE");
}

#[tokio::test]
async fn error_envelope_becomes_client_error() {
    let (addr, _) = serve(Arc::new(|_| {
        (403, json!({"errors": ["permission denied"]}).to_string())
    }))
    .await;
    let err = client(&addr, Some("t"))
        .write("secret/foo", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status, 403);
    assert_eq!(err.errors, vec!["permission denied"]);
    assert!(err.url.ends_with("/v1/secret/foo"));
}

#[tokio::test]
async fn raw_returns_any_status() {
    let (addr, seen) = serve(Arc::new(|_| {
        (429, json!({"errors": ["standby"]}).to_string())
    }))
    .await;
    let c = client(&addr, None).with_retries(0, Duration::from_millis(1));
    let r = c.raw(Method::GET, "sys/health", None).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["errors"][0],
        "standby"
    );
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let count = Arc::new(Mutex::new(0));
    let c2 = count.clone();
    let (addr, seen) = serve(Arc::new(move |_| {
        let mut n = c2.lock().unwrap();
        *n += 1;
        if *n < 3 {
            (503, json!({"errors": ["Vault is sealed"]}).to_string())
        } else {
            (200, json!({"data": {"ok": true}}).to_string())
        }
    }))
    .await;
    let s = client(&addr, None).read("sys/x").await.unwrap().unwrap();
    assert_eq!(s.get("ok"), Some(&json!(true)));
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (addr, seen) = serve(Arc::new(|_| (500, json!({"errors": ["boom"]}).to_string()))).await;
    let err = client(&addr, None).read("sys/x").await.unwrap_err();
    assert_eq!(err.status, 500);
    assert_eq!(err.errors, vec!["boom"]);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn connection_refused_is_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&addr, None)
        .with_retries(0, Duration::from_millis(1))
        .read("sys/health")
        .await
        .unwrap_err();
    assert!(err.is_transport());
    assert!(err.to_string().starts_with("Get \""), "{err}");
}
