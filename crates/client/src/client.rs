//! The HTTP client proper.
//!
//! Invariants:
//! * A request goes to `<address>/v1/<path>`; a `?query` already in `path` is
//!   kept and extra query pairs are appended.
//! * Bodies are serialized once and re-sent unchanged on every retry.
//! * Only [`Client::raw`] returns answers with error statuses; every other
//!   method turns a status outside `200..400` into a [`ClientError`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use crate::config::{ClientConfig, TlsOptions};
use crate::error::ClientError;
use crate::secret::Secret;

const JSON: &str = "application/json";
const MERGE_PATCH: &str = "application/merge-patch+json";
/// Wait before the first retry; later waits grow by half up to 1.5 × this.
const RETRY_WAIT: Duration = Duration::from_millis(1000);

/// An HTTP answer as received: status, headers and body bytes.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// `true` for a status in `200..400`.
    pub fn is_success(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// A Vault-API client. Cloning is cheap (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    address: Arc<str>,
    token: Option<Arc<str>>,
    namespace: Option<Arc<str>>,
    wrap_ttl: Option<Arc<str>>,
    max_retries: u32,
    retry_wait: Duration,
}

impl Client {
    /// A client of `addr` using `token`; TLS settings, timeout and retries come
    /// from the environment (`VAULT_CACERT`, `VAULT_SKIP_VERIFY`, …).
    pub fn new(addr: impl Into<String>, token: Option<String>) -> Result<Client, ClientError> {
        let env = ClientConfig::from_lookup(&|k: &str| std::env::var(k).ok(), None);
        Client::with_config(ClientConfig {
            address: addr.into(),
            token,
            ..env
        })
    }

    /// A client configured entirely from the environment and `~/.vault-token`.
    pub fn from_env() -> Result<Client, ClientError> {
        Client::with_config(ClientConfig::from_env())
    }

    /// A client from an explicit configuration.
    pub fn with_config(config: ClientConfig) -> Result<Client, ClientError> {
        let http = build_http(&config.tls, config.timeout)?;
        let address = config.address.trim().trim_end_matches('/').to_string();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(ClientError::local(format!(
                "invalid address {address:?}: must start with http:// or https://"
            )));
        }
        Ok(Client {
            http,
            address: address.into(),
            token: config.token.filter(|t| !t.is_empty()).map(Into::into),
            namespace: config.namespace.filter(|n| !n.is_empty()).map(Into::into),
            wrap_ttl: config
                .wrap_ttl
                .filter(|w| !w.trim().is_empty())
                .map(Into::into),
            max_retries: config.max_retries,
            retry_wait: RETRY_WAIT,
        })
    }

    /// The base address (without `/v1`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The token sent with each request.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Replaces the token.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token.filter(|t| !t.is_empty()).map(Into::into);
    }

    /// A copy of this client using another token (sharing the connection pool).
    pub fn with_token(&self, token: Option<String>) -> Client {
        let mut c = self.clone();
        c.set_token(token);
        c
    }

    /// A copy of this client that asks for no response wrapping (for the
    /// requests a command makes before its own, as the Go CLI's preflight).
    pub fn without_wrapping(&self) -> Client {
        let mut c = self.clone();
        c.wrap_ttl = None;
        c
    }

    /// A copy of this client with another retry budget and first retry wait.
    pub fn with_retries(&self, max_retries: u32, wait: Duration) -> Client {
        let mut c = self.clone();
        c.max_retries = max_retries;
        c.retry_wait = wait;
        c
    }

    /// The full URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.address, path.trim_start_matches('/'))
    }

    /// `GET <path>`. `Ok(None)` when nothing is there.
    pub async fn read(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.read_with_query(path, &[]).await
    }

    /// `GET <path>?k=v…`. `Ok(None)` when nothing is there.
    pub async fn read_with_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Secret>, ClientError> {
        let resp = self.send(Method::GET, path, query, None).await?;
        secret_or_none_on_404("GET", &self.url(path), resp)
    }

    /// `GET <path>?list=true`. `Ok(None)` when nothing is there.
    pub async fn list(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        let resp = self
            .send(Method::GET, path, &[("list", "true")], None)
            .await?;
        secret_or_none_on_404("LIST", &self.url(path), resp)
    }

    /// `PUT <path>` with a JSON body. `Ok(None)` for an empty (`204`) answer.
    pub async fn write(&self, path: &str, data: &Value) -> Result<Option<Secret>, ClientError> {
        self.write_with_method(Method::PUT, path, data).await
    }

    /// `POST <path>` with a JSON body (what hvac sends; Arca treats it like `PUT`).
    pub async fn post(&self, path: &str, data: &Value) -> Result<Option<Secret>, ClientError> {
        self.write_with_method(Method::POST, path, data).await
    }

    async fn write_with_method(
        &self,
        method: Method,
        path: &str,
        data: &Value,
    ) -> Result<Option<Secret>, ClientError> {
        let body = encode(data)?;
        let m = method.to_string();
        let resp = self.send(method, path, &[], Some((body, JSON))).await?;
        secret_or_error(&m, &self.url(path), resp)
    }

    /// `PATCH <path>` with `Content-Type: application/merge-patch+json`.
    pub async fn patch(&self, path: &str, data: &Value) -> Result<Option<Secret>, ClientError> {
        let body = encode(data)?;
        let resp = self
            .send(Method::PATCH, path, &[], Some((body, MERGE_PATCH)))
            .await?;
        secret_or_error("PATCH", &self.url(path), resp)
    }

    /// `DELETE <path>`. `Ok(None)` for an empty answer or a bare `404`.
    pub async fn delete(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.delete_with_query(path, &[]).await
    }

    /// `DELETE <path>?k=v…` (how the Go client sends data with a delete).
    pub async fn delete_with_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Secret>, ClientError> {
        let resp = self.send(Method::DELETE, path, query, None).await?;
        secret_or_none_on_404("DELETE", &self.url(path), resp)
    }

    /// Any request; the answer is returned whatever its status. Only a request
    /// that got no answer is an error.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<RawResponse, ClientError> {
        let body = body.map(encode).transpose()?.map(|b| (b, JSON));
        self.send(method, path, &[], body).await
    }

    /// Like [`Client::raw`] with raw body bytes and an explicit content type.
    pub async fn raw_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<RawResponse, ClientError> {
        self.send(method, path, &[], body).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<RawResponse, ClientError> {
        let url = self.url(path);
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("X-Vault-Request", "true");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(token) = &self.token {
                req = req.header("X-Vault-Token", header_value(&method, &url, token)?);
            }
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", header_value(&method, &url, ns)?);
            }
            if let Some(w) = &self.wrap_ttl {
                req = req.header("X-Vault-Wrap-TTL", header_value(&method, &url, w)?);
            }
            if let Some((bytes, content_type)) = &body {
                req = req.header(CONTENT_TYPE, *content_type).body(bytes.clone());
            }
            let retries_left = attempt < self.max_retries;
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let body = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(_) if retries_left => {
                            self.wait(attempt).await;
                            attempt += 1;
                            continue;
                        }
                        Err(e) => {
                            return Err(ClientError::transport(
                                method.as_str(),
                                &url,
                                error_chain(&e),
                            ))
                        }
                    };
                    if retries_left && retryable_status(status) {
                        self.wait(attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(RawResponse {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) if retries_left && (e.is_connect() || e.is_timeout()) => {
                    self.wait(attempt).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(ClientError::transport(
                        method.as_str(),
                        &url,
                        error_chain(&e),
                    ))
                }
            }
        }
    }

    async fn wait(&self, attempt: u32) {
        let wait = if attempt == 0 {
            self.retry_wait
        } else {
            self.retry_wait * 3 / 2
        };
        tokio::time::sleep(wait).await;
    }
}

/// Go's retry policy plus Vault's 412: 429 and 5xx except 501.
fn retryable_status(status: u16) -> bool {
    status == 412 || status == 429 || (status >= 500 && status != 501)
}

fn header_value(method: &Method, url: &str, v: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(v).map_err(|_| {
        ClientError::transport(
            method.as_str(),
            url,
            "token or namespace contains characters not allowed in a header",
        )
    })
}

fn encode(v: &Value) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(v).map_err(|e| ClientError::local(format!("encoding request: {e}")))
}

/// The error's sources joined like Go's wrapped errors. The outermost
/// message of a reqwest error only repeats the URL, so it is dropped when
/// there is a more specific cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msgs = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !msgs.iter().any(|prev| prev.contains(&m)) {
            msgs.push(m);
        }
        source = s.source();
    }
    if msgs.len() > 1 {
        msgs.remove(0);
    }
    msgs.join(": ")
}

fn parse_secret(
    method: &str,
    url: &str,
    resp: &RawResponse,
) -> Result<Option<Secret>, ClientError> {
    if resp.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Secret::from_json(&resp.body)
        .map(Some)
        .map_err(|e| ClientError {
            status: resp.status,
            errors: vec![format!("cannot parse response: {e}")],
            method: method.to_string(),
            url: url.to_string(),
            raw: false,
        })
}

fn secret_or_error(
    method: &str,
    url: &str,
    resp: RawResponse,
) -> Result<Option<Secret>, ClientError> {
    if !resp.is_success() {
        return Err(ClientError::from_response(
            method,
            url,
            resp.status,
            &resp.body,
        ));
    }
    if resp.status == 204 {
        return Ok(None);
    }
    parse_secret(method, url, &resp)
}

/// The Go client's read rule: a `404` is "nothing there" unless its body still
/// carries data or warnings (e.g. the metadata of a deleted KV v2 version).
fn secret_or_none_on_404(
    method: &str,
    url: &str,
    resp: RawResponse,
) -> Result<Option<Secret>, ClientError> {
    if resp.status == 404 {
        return Ok(parse_secret(method, url, &resp)
            .ok()
            .flatten()
            .filter(Secret::has_content));
    }
    secret_or_error(method, url, resp)
}

fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError::local(format!("reading {what} {}: {e}", path.display())))
}

fn build_http(tls: &TlsOptions, timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .user_agent(concat!("arca-client/", env!("CARGO_PKG_VERSION")));
    let mut cas = Vec::new();
    if let Some(ca) = &tls.ca_cert {
        cas.push((ca.clone(), read_file("CA certificate", ca)?));
    }
    if let Some(dir) = &tls.ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ClientError::local(format!("reading CA directory {}: {e}", dir.display()))
        })?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let pem = read_file("CA certificate", &f)?;
            cas.push((f, pem));
        }
    }
    if !cas.is_empty() {
        builder = builder.tls_built_in_root_certs(false);
        for (path, pem) in cas {
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::local(format!("parsing CA certificate {}: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ClientError::local(format!(
                    "no PEM certificate in {}",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read_file("client certificate", cert)?;
            pem.push(b'\n');
            pem.extend(read_file("client key", key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| ClientError::local(format!("parsing client certificate: {e}")))?;
            builder = builder.identity(id);
        }
        (None, None) => {}
        _ => return Err(ClientError::local(
            "both a client certificate and a client key are needed for TLS client authentication",
        )),
    }
    if tls.skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| ClientError::local(format!("building HTTP client: {}", error_chain(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str) -> Client {
        Client::with_config(ClientConfig {
            address: addr.into(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn urls() {
        let c = client("http://127.0.0.1:8200/");
        assert_eq!(c.url("sys/health"), "http://127.0.0.1:8200/v1/sys/health");
        assert_eq!(
            c.url("/secret/data/a"),
            "http://127.0.0.1:8200/v1/secret/data/a"
        );
    }

    #[test]
    fn rejects_bad_address_and_missing_ca() {
        let err = Client::with_config(ClientConfig {
            address: "127.0.0.1:8200".into(),
            ..ClientConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("http://"));
        let err = Client::with_config(ClientConfig {
            tls: TlsOptions {
                ca_cert: Some("/nonexistent/ca.pem".into()),
                ..TlsOptions::default()
            },
            ..ClientConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn retry_policy() {
        for s in [412, 429, 500, 502, 503] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 204, 400, 403, 404, 405, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn empty_token_is_no_token() {
        let c = client("http://h").with_token(Some(String::new()));
        assert_eq!(c.token(), None);
    }
}
