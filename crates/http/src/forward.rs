//! Request forwarding: a standby that cannot serve a request (its first
//! storage write failed read-only) hands the original HTTP request to a
//! [`Forwarder`], which replays it on the active node; the client gets the
//! active node's status, headers and body unchanged.
//!
//! Invariants: a forwarded request carries `X-Arca-Forwarded` and is never
//! forwarded again (a leader that lost leadership meanwhile answers 503 and
//! the client retries); hop-by-hop headers are not copied. The client's
//! connection (address, port, TLS client certificates) travels beside the
//! request over the authenticated cluster port and reaches the engines on
//! the active node as if the client had connected there; no header can
//! set it.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use axum::response::Response as HttpResponse;
use http_body_util::BodyExt;
use tower::ServiceExt;

use arca_core::Core;

/// Marks a request that was already forwarded once.
pub const FORWARDED_HEADER: &str = "x-arca-forwarded";

#[derive(Debug, Clone)]
pub struct ForwardedRequest {
    pub method: String,
    /// Path and query, e.g. `/v1/secret/data/a?version=1`.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's connection to the node that forwards.
    pub connection: Option<arca_sdk::Connection>,
}

#[derive(Debug, Clone)]
pub struct ForwardedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Replays a request on the active node.
#[async_trait]
pub trait Forwarder: Send + Sync {
    async fn forward(&self, req: ForwardedRequest) -> Result<ForwardedResponse, String>;
}

const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

pub(crate) fn capture(
    method: &Method,
    uri: &str,
    headers: &HeaderMap,
    body: &[u8],
    connection: Option<arca_sdk::Connection>,
) -> ForwardedRequest {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    hs.push((FORWARDED_HEADER.into(), "1".into()));
    ForwardedRequest {
        method: method.as_str().to_string(),
        uri: uri.to_string(),
        headers: hs,
        body: body.to_vec(),
        connection,
    }
}

pub(crate) fn to_http(r: ForwardedResponse) -> HttpResponse {
    let mut b = HttpResponse::builder().status(r.status);
    for (n, v) in r.headers {
        if HOP_BY_HOP.contains(&n.as_str()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(n), HeaderValue::try_from(v)) {
            b = b.header(n, v);
        }
    }
    b.body(Body::from(r.body)).unwrap_or_else(|_| {
        HttpResponse::builder()
            .status(502)
            .body(Body::from("bad forwarded response"))
            .unwrap()
    })
}

/// Serves a request forwarded to this node through its own router (without
/// a forwarder: it is never sent on again).
pub async fn serve_forwarded(core: Arc<Core>, req: ForwardedRequest) -> ForwardedResponse {
    let fail = |status: u16, msg: String| ForwardedResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&serde_json::json!({ "errors": [msg] })).unwrap_or_default(),
    };
    let mut b = Request::builder()
        .method(req.method.as_str())
        .uri(req.uri.as_str());
    for (n, v) in &req.headers {
        b = b.header(n.as_str(), v.as_str());
    }
    let mut http_req = match b.body(Body::from(req.body)) {
        Ok(r) => r,
        Err(e) => return fail(400, format!("bad forwarded request: {e}")),
    };
    if let Some(c) = req.connection {
        http_req.extensions_mut().insert(c);
    }
    let resp = match crate::handler::app(core).oneshot(http_req).await {
        Ok(r) => r,
        Err(e) => return fail(500, format!("forwarded request failed: {e}")),
    };
    let (parts, body) = resp.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => return fail(500, format!("forwarded response body failed: {e}")),
    };
    ForwardedResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
    }
}
