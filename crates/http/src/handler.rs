//! Request decoding and Vault's response envelope.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response as HttpResponse;
use axum::Router;
use serde_json::{json, Map, Value};

use arca_core::{Core, Reply};
use arca_sdk::{LogicalError, Operation, Request};

use crate::error::{body_of, status_of};
use crate::forward::{capture, to_http, Forwarder, FORWARDED_HEADER};

/// Vault's default `max_request_size`.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    forwarder: Option<Arc<dyn Forwarder>>,
    /// `GET sys/metrics` answers without a token on this listener.
    unauthenticated_metrics: bool,
    /// The legacy unauthenticated ceremony endpoints this listener serves.
    legacy: LegacyCeremonies,
    /// True only for requests a peer forwarded over the authenticated
    /// cluster port: only there are [`FORWARDED_HEADER`] and
    /// [`LEGACY_HEADER`] believed. A client that sends them to a listener
    /// is ignored (it would otherwise skip rate limits).
    from_peer: bool,
}

/// Vault's unauthenticated `sys/rekey/*` and `sys/generate-root/*`, off
/// unless the listener sets `disable_unauthed_rekey_endpoints = false` /
/// `disable_unauthed_generate_root_endpoints = false` (OpenBao 2.5+ keeps
/// them off by default too: HCSEC-2026-08).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegacyCeremonies {
    pub rekey: bool,
    pub generate_root: bool,
}

/// Set by a standby on a legacy ceremony request it forwards (its
/// listener allowed it); believed only from a peer.
const LEGACY_HEADER: &str = "x-arca-legacy-ceremony";

/// The API serving requests a peer forwarded to this node.
pub fn app(core: Arc<Core>) -> Router {
    router(AppState {
        core,
        forwarder: None,
        unauthenticated_metrics: false,
        legacy: LegacyCeremonies::default(),
        from_peer: true,
    })
}

/// The API of a listener with default options: requests a standby cannot
/// serve go to `forwarder`.
pub fn app_with(core: Arc<Core>, forwarder: Option<Arc<dyn Forwarder>>) -> Router {
    app_for(core, forwarder, false, LegacyCeremonies::default())
}

/// The API of one listener, with its own options.
pub(crate) fn app_for(
    core: Arc<Core>,
    forwarder: Option<Arc<dyn Forwarder>>,
    unauthenticated_metrics: bool,
    legacy: LegacyCeremonies,
) -> Router {
    router(AppState {
        core,
        forwarder,
        unauthenticated_metrics,
        legacy,
        from_peer: false,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/{*path}", axum::routing::any(handle))
        .route("/v1/", axum::routing::any(handle))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

async fn not_found() -> HttpResponse {
    json_response(404, &json!({ "errors": [] }))
}

fn json_response(status: u16, v: &Value) -> HttpResponse {
    HttpResponse::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap()
}

fn error_response(e: &LogicalError) -> HttpResponse {
    json_response(status_of(e), &body_of(e))
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_string());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

fn parse_query(q: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(q) = q {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            m.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    m
}

fn truthy(v: Option<&Value>) -> bool {
    matches!(
        v.and_then(|v| v.as_str()),
        Some("true") | Some("1") | Some("t")
    )
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    connection: Option<axum::Extension<arca_sdk::Connection>>,
    body: Bytes,
) -> HttpResponse {
    let core = state.core.clone();
    let path = uri.path().strip_prefix("/v1/").unwrap_or("").to_string();
    if let Err(e) = check_path(&path) {
        return error_response(&e);
    }
    let path = match percent_decode(&path) {
        Some(p) => p,
        None => {
            return error_response(&LogicalError::invalid(
                "path is not valid UTF-8 after percent-decoding",
            ))
        }
    };
    let wrap_ttl = match headers.get("x-vault-wrap-ttl") {
        None => 0,
        Some(v) => match v
            .to_str()
            .ok()
            .and_then(|v| arca_sdk::duration::parse_seconds(v.trim()).ok())
        {
            Some(t) if t > 0 => t,
            _ => {
                return error_response(&LogicalError::invalid(
                    "X-Vault-Wrap-TTL must be a positive duration (\"60s\", \"5m\" or seconds)",
                ))
            }
        },
    };
    let mut query = parse_query(uri.query());
    let is_list_query = truthy(query.get("list"));
    query.remove("list");
    let is_help_query = truthy(query.get("help"));
    query.remove("help");
    let head = method == Method::HEAD;
    let op = match method.as_str() {
        "GET" | "HEAD" if is_help_query => Operation::Help,
        "GET" | "HEAD" if is_list_query => Operation::List,
        "GET" | "HEAD" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "DELETE" => Operation::Delete,
        "PATCH" => Operation::Patch,
        _ => return error_response(&LogicalError::UnsupportedOperation),
    };
    if op == Operation::Patch {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/merge-patch+json") {
            return json_response(
                415,
                &json!({ "errors": [format!("PATCH requires Content-Type: application/merge-patch+json, got {ct:?}")] }),
            );
        }
    }
    // A write's body is parsed as JSON here; whether a body that is not
    // JSON is acceptable (a snapshot archive, a DER OCSP request) is for
    // the path to declare, so core decides, with the bytes at hand.
    let mut body_error = None;
    let data = if matches!(op, Operation::Update | Operation::Patch)
        || (!body.is_empty() && op != Operation::Read && op != Operation::Help)
    {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(_) => {
                    body_error = Some("request body must be a JSON object".to_string());
                    Map::new()
                }
                Err(e) => {
                    body_error = Some(format!("failed to parse JSON input: {e}"));
                    Map::new()
                }
            }
        }
    } else {
        query
    };
    if state.unauthenticated_metrics && op == Operation::Read && path == "sys/metrics" {
        // The listener opened metrics to scrapers without a token: served
        // here, from this node's registry, never forwarded.
        let format = data.get("format").and_then(Value::as_str).unwrap_or("");
        let resp = match arca_core::metrics_response(format) {
            Ok(r) => HttpResponse::builder()
                .status(r.status)
                .header(header::CONTENT_TYPE, r.content_type)
                .header(header::CACHE_CONTROL, "no-store")
                .body(Body::from(r.body))
                .unwrap(),
            Err(e) => error_response(&e),
        };
        if head {
            let (parts, _) = resp.into_parts();
            return HttpResponse::from_parts(parts, Body::empty());
        }
        return resp;
    }
    let mut path = path;
    if op == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let mut req = Request::new(op, path);
    req.id = uuid::Uuid::new_v4().to_string();
    // Listed by `sys/in-flight-req` until this handler returns or is
    // dropped (the client went away).
    let _in_flight = core.in_flight().enter(
        req.id.clone(),
        arca_core::in_flight::InFlightEntry::starting_now(
            connection
                .as_ref()
                .map(|c| std::net::SocketAddr::new(c.remote_addr, c.remote_port).to_string())
                .unwrap_or_default(),
            uri.path().to_string(),
            method.as_str().to_string(),
        ),
    );
    req.data = data;
    req.client_token = token_of(&headers);
    let connection = connection.map(|c| c.0);
    req.connection = connection.clone();
    let forwarded = state.from_peer && headers.contains_key(FORWARDED_HEADER);
    req.forwarded = forwarded;
    if matches!(op, Operation::Update) && !body.is_empty() {
        req.raw_body = Some(body.clone());
    }
    req.body_error = body_error;
    req.wrap_ttl = wrap_ttl;
    // `Request::headers` holds the few protocol headers core reads, and
    // the headers an operator chose to audit
    // (`sys/config/auditing/request-headers`, which refuses the token
    // headers); nothing else a client sends reaches core or a backend.
    // Several values of one header are joined with ", ".
    for name in [
        "content-type",
        "x-vault-request",
        "x-vault-inconsistent",
        "x-arca-consistency",
    ] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            req.headers.insert(name.to_string(), v.to_string());
        }
    }
    for name in core.audited_headers() {
        let values: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            req.headers.insert(name, values.join(", "));
        }
    }
    // Rate limit quotas count the request on the node the client reached.
    let quota = core.rate_limit(&req);
    if let Some(d) = quota.as_ref().filter(|d| !d.allowed) {
        let mut resp = json_response(
            429,
            &json!({ "errors": [format!("request path {:?}: rate limit quota exceeded", req.path.trim_start_matches('/'))] }),
        );
        quota_headers(&mut resp, d, true);
        if head {
            let (parts, _) = resp.into_parts();
            return HttpResponse::from_parts(parts, Body::empty());
        }
        return resp;
    }
    let request_id = req.id.clone();
    let wrap_path = req.path.trim_start_matches('/').to_string();
    // Every log line written while core serves the request names it and
    // the client (never the path or data: they may hold secrets).
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        remote_address = %req
            .connection
            .as_ref()
            .map(|c| c.remote_addr.to_string())
            .unwrap_or_default(),
    );
    let legacy = arca_core::legacy_ceremony(&req.path).filter(|family| match family {
        arca_core::LegacyFamily::Rekey => state.legacy.rekey,
        arca_core::LegacyFamily::GenerateRoot => state.legacy.generate_root,
    });
    let legacy = legacy.is_some() || (state.from_peer && headers.contains_key(LEGACY_HEADER));
    let served = if legacy {
        tracing::Instrument::instrument(core.handle_legacy_ceremony(req), span).await
    } else {
        tracing::Instrument::instrument(core.handle(req), span).await
    };
    let mut resp = match served {
        Ok(reply) if wrap_ttl > 0 => wrap(&core, reply, &request_id, wrap_ttl, &wrap_path).await,
        Ok(reply) => render(reply, &request_id),
        Err(LogicalError::ReadOnly) if !forwarded => match &state.forwarder {
            Some(f) => {
                let uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let mut headers = headers.clone();
                headers.remove(LEGACY_HEADER);
                if legacy {
                    headers.insert(LEGACY_HEADER, header::HeaderValue::from_static("1"));
                }
                match f
                    .forward(capture(&method, uri, &headers, &body, connection))
                    .await
                {
                    Ok(r) => to_http(r),
                    Err(e) => json_response(
                        503,
                        &json!({ "errors": [format!("this node is a standby and the active node could not be reached: {e}; retry shortly")] }),
                    ),
                }
            }
            None => error_response(&LogicalError::ReadOnly),
        },
        Err(e) => error_response(&e),
    };
    if let Some(d) = &quota {
        quota_headers(&mut resp, d, false);
    }
    if head {
        let (parts, _) = resp.into_parts();
        return HttpResponse::from_parts(parts, Body::empty());
    }
    resp
}

/// `Retry-After` on a refusal; Vault's `X-Ratelimit-Limit`, `-Remaining`
/// and `-Reset` when `sys/quotas/config` enables response headers.
fn quota_headers(resp: &mut HttpResponse, d: &arca_core::QuotaDecision, refused: bool) {
    let h = resp.headers_mut();
    if refused {
        h.insert(header::RETRY_AFTER, d.retry_after.into());
    }
    if d.headers {
        h.insert("x-ratelimit-limit", d.limit.into());
        h.insert("x-ratelimit-remaining", d.remaining.into());
        h.insert("x-ratelimit-reset", d.reset.into());
    }
}

/// Refuses a raw (not yet decoded) request path with a `.` or `..`
/// segment, encoded or not, or with an encoded slash (`%2F`): both let two
/// spellings reach one object (or a policy check see another path than the
/// router), which OpenBao refuses since HCSEC-2026-05 / CVE-2026-3605.
///
/// One exception: after an `ocsp` or `unified-ocsp` segment comes an RFC
/// 6960 GET request, base64 that clients URL-encode, so a `/` in it
/// arrives as `%2F`; it is data, not path segments.
fn check_path(raw: &str) -> Result<(), LogicalError> {
    let mut ocsp_data = false;
    for segment in raw.split('/') {
        if segment.contains('%') && !ocsp_data {
            let lower = segment.to_ascii_lowercase();
            if lower.contains("%2f") {
                return Err(LogicalError::invalid(format!(
                    "invalid request path {raw:?}: an encoded slash (%2F) is not allowed; \
                     send \"/\" unencoded"
                )));
            }
        }
        let decoded = percent_decode(segment);
        if matches!(decoded.as_deref(), Some(".") | Some("..")) {
            return Err(LogicalError::invalid(format!(
                "invalid request path {raw:?}: \".\" and \"..\" segments are not allowed; \
                 send the normalised path"
            )));
        }
        ocsp_data = ocsp_data || segment == "ocsp" || segment == "unified-ocsp";
    }
    Ok(())
}

fn percent_decode(p: &str) -> Option<String> {
    if !p.contains('%') {
        return Some(p.to_string());
    }
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            match u8::from_str_radix(h, 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(bytes[i]),
            }
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// What a reply is on the wire: no content, a raw body, or the JSON
/// envelope with its status.
enum Rendered {
    Empty(u16),
    Raw(arca_sdk::RawResponse),
    Json(u16, Value),
}

fn rendered(reply: Reply, request_id: &str) -> Rendered {
    let Some(resp) = reply.response else {
        return Rendered::Empty(204);
    };
    if let Some(raw) = resp.raw {
        return Rendered::Raw(raw);
    }
    if resp.data.is_none()
        && resp.auth.is_none()
        && resp.warnings.is_empty()
        && reply.lease_duration == 0
    {
        return Rendered::Empty(resp.status.unwrap_or(204));
    }
    let auth = resp.auth.map(|a| {
        let metadata = if a.metadata.is_empty() {
            Value::Null
        } else {
            Value::Object(
                a.metadata
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        };
        let mut v = json!({
            "client_token": a.client_token,
            "accessor": a.accessor,
            "policies": a.policies,
            "token_policies": a.token_policies,
            "metadata": metadata,
            "lease_duration": a.ttl,
            "renewable": a.renewable,
            "entity_id": a.entity_id,
            "token_type": a.token_type,
            "orphan": a.orphan,
            "mfa_requirement": null,
            "num_uses": a.num_uses,
        });
        if !a.identity_policies.is_empty() {
            v["identity_policies"] = json!(a.identity_policies);
        }
        v
    });
    let body = json!({
        "request_id": request_id,
        "lease_id": reply.lease_id,
        "renewable": reply.renewable,
        "lease_duration": reply.lease_duration,
        "data": resp.data.map(Value::Object).unwrap_or(Value::Null),
        "wrap_info": null,
        "warnings": if resp.warnings.is_empty() { Value::Null } else { Value::from(resp.warnings) },
        "auth": auth.unwrap_or(Value::Null),
        "mount_type": reply.mount_type,
    });
    Rendered::Json(resp.status.unwrap_or(200), body)
}

fn to_response(r: Rendered) -> HttpResponse {
    match r {
        Rendered::Empty(status) => HttpResponse::builder()
            .status(status)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::empty())
            .unwrap(),
        Rendered::Raw(raw) => HttpResponse::builder()
            .status(raw.status)
            .header(header::CONTENT_TYPE, raw.content_type)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::from(raw.body))
            .unwrap(),
        Rendered::Json(status, body) => json_response(status, &body),
    }
}

fn render(reply: Reply, request_id: &str) -> HttpResponse {
    to_response(rendered(reply, request_id))
}

/// Response wrapping (`X-Vault-Wrap-TTL`): the answer the client would
/// have had is stored in a new single-use token's cubbyhole and the client
/// gets that token in `wrap_info` instead. An answer without content is
/// not wrapped (as Vault); an error is returned as it is.
async fn wrap(
    core: &arca_core::Core,
    reply: Reply,
    request_id: &str,
    ttl: u64,
    path: &str,
) -> HttpResponse {
    // Core holds the response entry of a wrapped request: it is written
    // when this guard goes, with the wrap_info once the answer is wrapped.
    struct Audit<'a>(&'a arca_core::Core, &'a str, Option<Value>);
    impl Drop for Audit<'_> {
        fn drop(&mut self) {
            self.0.audit_wrapped(self.1, self.2.take());
        }
    }
    let mut audit = Audit(core, request_id, None);
    let (body, status) = match rendered(reply, request_id) {
        Rendered::Json(status, body) if (200..300).contains(&status) => (body, status),
        Rendered::Raw(raw)
            if (200..300).contains(&raw.status)
                && raw.content_type.starts_with("application/json") =>
        {
            match serde_json::from_slice::<Value>(&raw.body) {
                Ok(v) => (v, raw.status),
                Err(_) => return to_response(Rendered::Raw(raw)),
            }
        }
        Rendered::Raw(raw) if (200..300).contains(&raw.status) => {
            return error_response(&LogicalError::invalid(format!(
                "the answer of {path} is not JSON ({}) and cannot be wrapped: send the request without X-Vault-Wrap-TTL",
                raw.content_type
            )))
        }
        other => return to_response(other),
    };
    let wrapped_accessor = body["auth"]["accessor"].as_str().unwrap_or("").to_string();
    match core
        .wrap_response(&body, ttl, path, &wrapped_accessor)
        .await
    {
        Ok(info) => {
            audit.2 = serde_json::to_value(&info).ok();
            json_response(
                status,
                &json!({
                    "request_id": request_id,
                    "lease_id": "",
                    "renewable": false,
                    "lease_duration": 0,
                    "data": null,
                    "wrap_info": {
                        "token": info.token,
                        "accessor": info.accessor,
                        "ttl": info.ttl,
                        "creation_time": info.creation_time,
                        "creation_path": info.creation_path,
                        "wrapped_accessor": info.wrapped_accessor,
                    },
                    "warnings": null,
                    "auth": null,
                }),
            )
        }
        Err(e) => error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").unwrap(), "a b");
        assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode("plain").unwrap(), "plain");
        assert_eq!(percent_decode("x%2").unwrap(), "x%2");
    }

    #[test]
    fn dot_segments_and_encoded_slashes_are_refused() {
        for bad in [
            "secret/../sys/policy/x",
            "secret/./data/a",
            "..",
            ".",
            "secret/data/a/..",
            "secret/%2e%2e/sys",
            "secret/%2E/data",
            "secret/.%2e/x",
            "secret%2Fdata/a",
            "secret/data%2fa",
        ] {
            let e = check_path(bad).expect_err(bad);
            assert_eq!(status_of(&e), 400, "{bad}");
        }
        for good in [
            "secret/data/a",
            "secret/data/a.b",
            "secret/data/..a",
            "secret/data/a..",
            "secret/data/.hidden",
            "secret/data/a%20b",
            "",
            "sys/mounts/",
            // An OCSP GET request: URL-encoded base64 may hold %2F.
            "pki/ocsp/MEMwQTA%2FMD0wOzAJBgUrDgMCGgUABBQ%2Bq%2FxY%3D",
            "pki/unified-ocsp/MEMw%2Fab",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        assert!(check_path("pki/ocsp/../x").is_err(), "dots stay refused");
    }

    #[test]
    fn bearer_and_vault_token_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(token_of(&h).unwrap(), "abc");
        h.insert("x-vault-token", "xyz".parse().unwrap());
        assert_eq!(token_of(&h).unwrap(), "xyz");
    }
}
