//! Verification keys: public keys in PEM (`jwt_validation_pubkeys`), JSON
//! Web Key Sets fetched from `jwks_url` or from the `jwks_uri` of an OIDC
//! discovery document, and the in-memory cache of fetched keys.
//!
//! Invariants:
//! - Only asymmetric signing keys are kept: RSA of 2048 to 8192 bits,
//!   P-256, P-384 and Ed25519. A JWKS entry that is anything else (a
//!   symmetric `oct` key, an encryption key, another curve, an entry that
//!   does not parse) is skipped, never used; a PEM key that is anything
//!   else is refused with the reason, never stored.
//! - A fetch has a time limit ([`FETCH_TIMEOUT`]) and a size limit
//!   ([`MAX_DOCUMENT`]); when a CA PEM is configured it is the only trust
//!   root for that fetch (the built-in roots are switched off).
//! - An OIDC discovery document is used only if its `issuer` is the
//!   configured discovery URL (a trailing `/` aside).
//! - Logins fetch at most once per [`MIN_REFRESH_INTERVAL`] seconds per
//!   key source (by the engine's clock, `SystemView::now`), and one fetch at
//!   a time: tokens naming unknown key ids cannot make the server fetch in
//!   a loop. A config write fetches regardless (it is authenticated).
//! - Cached keys older than [`MAX_KEY_AGE`] are refetched by the next login
//!   that may fetch; if that fetch fails the older keys stay in use (an
//!   identity provider that is down does not stop logins).
//! - Errors name the URL and what went wrong, never key material.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// How long one HTTP fetch (connect, TLS, body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS or discovery document accepted, in bytes.
pub const MAX_DOCUMENT: usize = 1024 * 1024;
/// Logins refetch a key source at most this often (seconds).
pub const MIN_REFRESH_INTERVAL: i64 = 10;
/// Fetched keys are refreshed once they are this old (seconds).
pub const MAX_KEY_AGE: i64 = 3600;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";

/// What a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    /// The JWK's `kid` (PEM keys have none).
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The algorithm a JWK's `alg` pins the key to.
    pub alg: Option<Algorithm>,
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// May this key verify a signature made with `alg`?
    pub fn accepts(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        match self.kind {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

fn bit_len(b: &[u8]) -> usize {
    let b = strip_leading_zeros(b);
    match b.first() {
        None => 0,
        Some(first) => b.len() * 8 - first.leading_zeros() as usize,
    }
}

fn check_rsa_size(n: &[u8]) -> Result<(), String> {
    match bit_len(n) {
        bits if bits < 2048 => Err(format!(
            "RSA key of {bits} bits is too small (2048 bits at least)"
        )),
        bits if bits > 8192 => Err(format!(
            "RSA key of {bits} bits is too large (8192 bits at most)"
        )),
        _ => Ok(()),
    }
}

/// Reads one public key in PEM: a `PUBLIC KEY` (SubjectPublicKeyInfo) or
/// a certificate, whose public key is used. The error says why, without
/// quoting the input.
pub fn parse_pem_key(pem: &str) -> Result<Key, String> {
    let (rest, block) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes())
        .map_err(|_| "not a PEM block".to_string())?;
    if !rest.iter().all(u8::is_ascii_whitespace) {
        return Err("unexpected data after the PEM block (give one key per entry)".into());
    }
    match SubjectPublicKeyInfo::from_der(&block.contents) {
        Ok(([], spki)) => key_from_spki(&spki),
        _ => match X509Certificate::from_der(&block.contents) {
            Ok((_, cert)) => key_from_spki(cert.public_key()),
            Err(_) => Err("neither a public key (SubjectPublicKeyInfo) nor a certificate".into()),
        },
    }
}

fn key_from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Key, String> {
    let oid = spki.algorithm.algorithm.to_id_string();
    let point: &[u8] = &spki.subject_public_key.data;
    let (kind, decoding) = match oid.as_str() {
        OID_RSA => {
            let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err("malformed RSA public key".into());
            };
            let n = strip_leading_zeros(rsa.modulus);
            check_rsa_size(n)?;
            let e = strip_leading_zeros(rsa.exponent);
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let (kind, len) = match curve.as_deref() {
                Some(OID_P256) => (KeyKind::P256, 65),
                Some(OID_P384) => (KeyKind::P384, 97),
                Some(OID_P521) => {
                    return Err(
                        "P-521 keys (ES512) are not available yet: only P-256 and P-384 signatures are verified".into(),
                    )
                }
                _ => return Err("unsupported elliptic curve (P-256 and P-384 are)".into()),
            };
            if point.len() != len || point[0] != 4 {
                return Err("the EC public key is not an uncompressed point of its curve".into());
            }
            (kind, DecodingKey::from_ec_der(point))
        }
        OID_ED25519 => {
            if point.len() != 32 {
                return Err("malformed Ed25519 public key".into());
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(point))
        }
        other => {
            return Err(format!(
                "unsupported public key algorithm (OID {other}); RSA, P-256, P-384 and Ed25519 keys are"
            ))
        }
    };
    Ok(Key {
        kid: None,
        kind,
        alg: None,
        decoding,
    })
}

fn b64_len(s: &str) -> Option<usize> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .map(|v| v.len())
}

/// One JWKS entry as a key, or `None` for an entry that is not an
/// asymmetric signing key this server verifies with.
fn key_from_jwk(v: &Value) -> Option<Key> {
    let jwk: Jwk = serde_json::from_value(v.clone()).ok()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
    };
    let (kind, decoding) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = URL_SAFE_NO_PAD.decode(p.n.trim_end_matches('=')).ok()?;
            check_rsa_size(&n).ok()?;
            (
                KeyKind::Rsa,
                DecodingKey::from_rsa_components(&p.n, &p.e).ok()?,
            )
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (kind, len) = match p.curve {
                EllipticCurve::P256 => (KeyKind::P256, 32),
                EllipticCurve::P384 => (KeyKind::P384, 48),
                _ => return None,
            };
            if b64_len(&p.x)? != len || b64_len(&p.y)? != len {
                return None;
            }
            (kind, DecodingKey::from_ec_components(&p.x, &p.y).ok()?)
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 || b64_len(&p.x)? != 32 {
                return None;
            }
            (
                KeyKind::Ed25519,
                DecodingKey::from_ed_components(&p.x).ok()?,
            )
        }
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let key = Key {
        kid: jwk.common.key_id.clone(),
        kind,
        alg,
        decoding,
    };
    // A key pinned to an algorithm of another family is unusable.
    match key.alg {
        Some(a) if !key.accepts(a) => None,
        _ => Some(key),
    }
}

/// The usable keys of a JWKS document and how many entries were skipped.
pub fn parse_jwks(body: &[u8]) -> Result<(Vec<Key>, usize), String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "not a JWKS: the document has no \"keys\" list".to_string())?;
    let keys: Vec<Key> = entries.iter().filter_map(key_from_jwk).collect();
    let skipped = entries.len() - keys.len();
    Ok((keys, skipped))
}

/// Where fetched keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// `jwks_url`: the JWKS itself.
    Jwks,
    /// `oidc_discovery_url`: its discovery document names the JWKS.
    Discovery,
}

/// A remote key source: its kind, URL and optional CA bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: SourceKind,
    pub url: String,
    pub ca_pem: String,
}

/// Checks a CA bundle: at least one certificate, each of them parseable.
pub fn check_ca_pem(field: &str, ca_pem: &str) -> Result<(), String> {
    let mut n = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(ca_pem.as_bytes()) {
        let block = block.map_err(|_| format!("{field} is not a PEM certificate bundle"))?;
        block
            .parse_x509()
            .map_err(|_| format!("{field}: PEM block {} is not a certificate", n + 1))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("{field} holds no PEM certificate"));
    }
    Ok(())
}

/// Checks a key source URL: absolute http(s) with a host.
pub fn check_url(field: &str, url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{field} {url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("{field} {url:?} must be an http or https URL"));
    }
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn client(ca_pem: &str) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent("arca-jwt-auth");
    if !ca_pem.trim().is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| format!("the CA PEM cannot be used: {e}"))?;
        if certs.is_empty() {
            return Err("the CA PEM holds no certificate".into());
        }
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("cannot build an HTTP client: {}", error_chain(&e)))
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered HTTP {}", resp.status()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(format!("{url} sent more than {MAX_DOCUMENT} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("cannot read {url}: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("{url} sent more than {MAX_DOCUMENT} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The fetched keys of a source and the number of JWKS entries skipped.
pub async fn fetch(src: &Source) -> Result<(Vec<Key>, usize), String> {
    let client = client(&src.ca_pem)?;
    let jwks_url = match src.kind {
        SourceKind::Jwks => src.url.clone(),
        SourceKind::Discovery => {
            let base = src.url.trim_end_matches('/');
            let url = format!("{base}/.well-known/openid-configuration");
            let body = get(&client, &url).await?;
            let doc: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("the discovery document at {url} is not JSON: {e}"))?;
            let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
            if issuer.trim_end_matches('/') != base {
                return Err(format!(
                    "the discovery document at {url} names issuer {issuer:?}, not {:?}",
                    src.url
                ));
            }
            let jwks = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the discovery document at {url} has no jwks_uri"))?;
            check_url("jwks_uri", jwks)?;
            jwks.to_string()
        }
    };
    let body = get(&client, &jwks_url).await?;
    parse_jwks(&body).map_err(|e| format!("{jwks_url}: {e}"))
}

/// Keys fetched from one source.
#[derive(Clone)]
pub struct Fetched {
    pub source: Source,
    pub keys: Arc<Vec<Key>>,
    /// When they were fetched (engine clock, unix seconds).
    pub fetched_at: i64,
    /// Bumped at every fetch: tells a waiting login that keys changed.
    pub generation: u64,
}

#[derive(Default)]
struct Limiter {
    /// The last fetch a login made: its source, time and error if any.
    last: Option<(Source, i64, Option<String>)>,
}

/// The fetched keys of the mount, shared by its logins.
#[derive(Default)]
pub struct KeyCache {
    current: RwLock<Option<Fetched>>,
    /// Held for the length of a login's fetch: one at a time.
    limiter: tokio::sync::Mutex<Limiter>,
}

/// Why a login found no keys.
#[derive(Debug)]
pub enum CacheError {
    /// A fetch failed (the message says why).
    Fetch(String),
    /// A fetch failed less than [`MIN_REFRESH_INTERVAL`] ago.
    RateLimited(Option<String>),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Fetch(e) => write!(f, "cannot fetch the signing keys: {e}"),
            CacheError::RateLimited(Some(e)) => write!(
                f,
                "cannot fetch the signing keys: {e} (retried at most every {MIN_REFRESH_INTERVAL} s)"
            ),
            CacheError::RateLimited(None) => write!(
                f,
                "the signing keys were fetched less than {MIN_REFRESH_INTERVAL} s ago; retry later"
            ),
        }
    }
}

impl KeyCache {
    /// The cached keys, if they come from `src`.
    pub fn cached(&self, src: &Source) -> Option<Fetched> {
        let g = self.current.read().unwrap_or_else(|e| e.into_inner());
        g.as_ref().filter(|f| &f.source == src).cloned()
    }

    /// Stores keys fetched by a config write (no rate limit applies).
    pub fn store(&self, src: &Source, keys: Vec<Key>, now: i64) {
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        let generation = g.as_ref().map_or(0, |f| f.generation) + 1;
        *g = Some(Fetched {
            source: src.clone(),
            keys: Arc::new(keys),
            fetched_at: now,
            generation,
        });
    }

    /// Forgets everything (unmount, seal).
    pub fn clear(&self) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The keys a login checks a token against: the cache, fetched first
    /// when empty (or from another source), refreshed when too old.
    pub async fn keys(&self, src: &Source, now: i64) -> Result<Fetched, CacheError> {
        match self.cached(src) {
            Some(f) if now - f.fetched_at < MAX_KEY_AGE => Ok(f),
            Some(f) => match self.refresh(src, now, Some(f.generation)).await {
                Ok(Some(newer)) => Ok(newer),
                // Stale keys are better than none while the source is down.
                _ => Ok(f),
            },
            None => match self.refresh(src, now, None).await {
                Ok(Some(f)) => Ok(f),
                Ok(None) => Err(CacheError::RateLimited(None)),
                Err(e) => Err(e),
            },
        }
    }

    /// Fetches again after a token named a key the cache lacks, unless
    /// another login already did (`seen` is the generation it tried) or
    /// the source was fetched less than [`MIN_REFRESH_INTERVAL`] ago
    /// (`Ok(None)`).
    pub async fn refresh(
        &self,
        src: &Source,
        now: i64,
        seen: Option<u64>,
    ) -> Result<Option<Fetched>, CacheError> {
        let mut lim = self.limiter.lock().await;
        if let Some(f) = self.cached(src) {
            if Some(f.generation) != seen {
                return Ok(Some(f));
            }
        }
        if let Some((last_src, at, err)) = &lim.last {
            if last_src == src && now - at < MIN_REFRESH_INTERVAL && now >= *at {
                return match err {
                    Some(e) => Err(CacheError::RateLimited(Some(e.clone()))),
                    None => Ok(None),
                };
            }
        }
        match fetch(src).await {
            Ok((keys, _skipped)) => {
                lim.last = Some((src.clone(), now, None));
                self.store(src, keys, now);
                Ok(self.cached(src))
            }
            Err(e) => {
                tracing::warn!(url = %src.url, error = %e, "jwt auth: fetching signing keys failed");
                lim.last = Some((src.clone(), now, Some(e.clone())));
                Err(CacheError::Fetch(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[0, 0, 1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[]), 0);
        assert!(check_rsa_size(&[0xff; 128]).is_err());
        assert!(check_rsa_size(&[0xff; 256]).is_ok());
    }

    #[test]
    fn jwks_entries_that_are_not_signing_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "alg": "RS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "kid": "ed"},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc1u8; 128]), "e": "AQAB"},
            {"kty": "mystery"},
        ]});
        let (keys, skipped) = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(skipped, 7);
        assert_eq!(keys[0].kid.as_deref(), Some("ed"));
        assert!(keys[0].accepts(Algorithm::EdDSA));
        assert!(!keys[0].accepts(Algorithm::ES256));
        assert!(parse_jwks(b"{\"nokeys\": 1}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        assert!(parse_pem_key("hello").unwrap_err().contains("PEM"));
        let junk = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(parse_pem_key(junk).unwrap_err().contains("neither"));
    }
}
