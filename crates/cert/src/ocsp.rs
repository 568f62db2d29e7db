//! OCSP (RFC 6960) checks of login certificates, for entries with
//! `ocsp_enabled`, as Vault's cert method makes them.
//!
//! The question is the client leaf's CertID: SHA-1 of its issuer's name and
//! public key, and its serial number. The issuer is the certificate that
//! signed the leaf in the chain that verified it (the client's first
//! intermediate, or the entry's CA certificate). The request is POSTed
//! (`application/ocsp-request`) to each of the entry's
//! `ocsp_servers_override`, or else to the OCSP URLs of the leaf's
//! Authority Information Access extension.
//!
//! Invariants:
//! - An answer counts only when it is a successful basic response, signed
//!   by the issuer itself, by a responder certificate the issuer signed that
//!   is valid now and names id-kp-OCSPSigning, or by (a responder
//!   certificate with id-kp-OCSPSigning signed by) one of the entry's
//!   `ocsp_ca_certificates`; and when it holds a response for exactly this
//!   CertID whose `thisUpdate` is not in the future (beyond
//!   [`CLOCK_SKEW`]), not older than `ocsp_this_update_max_age` when that
//!   is set, and whose `nextUpdate`, when present, is not past. Anything
//!   else is an error, never a status.
//! - Times are judged by the engine's clock (`SystemView::now`).
//! - Without `ocsp_query_all_servers` the first responder that answers
//!   decides (an error moves on to the next one); with it every responder is
//!   asked at once and "revoked" from any of them wins over "good", "good"
//!   over "unknown".
//! - "revoked" always refuses the login; "unknown", and no answer at all,
//!   refuse it unless `ocsp_fail_open` (then a warning is logged).
//! - Every request is bounded: [`CONNECT_TIMEOUT`] and [`REQUEST_TIMEOUT`]
//!   per attempt, [`MAX_RESPONSE`] bytes, `ocsp_max_retries` further
//!   attempts after a transport error or an HTTP 5xx/429 (short, bounded
//!   backoff), and [`CHECK_DEADLINE`] for one certificate's whole check.
//! - Answers with a `nextUpdate` are cached in memory per CertID (this
//!   node, shared by the mount's entries) until `nextUpdate`, at most
//!   [`CACHE_MAX_AGE`] seconds, in an LRU cache of `config.ocsp_cache_size`
//!   answers. A cached answer is used for an entry only when it would have
//!   been accepted for that entry: one vouched for by an
//!   `ocsp_ca_certificates` certificate serves only entries that list it,
//!   and `ocsp_this_update_max_age` applies to cached answers too. Answers
//!   without `nextUpdate` are never cached (as in Vault).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use der::asn1::OctetString;
use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// How long connecting to a responder may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request (connect, send, whole answer) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one certificate's check (every responder, every retry) may take.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(30);
/// The largest answer read from a responder, in bytes.
pub const MAX_RESPONSE: usize = 1024 * 1024;
/// How far in the future a `thisUpdate` may be (clocks differ), seconds.
pub const CLOCK_SKEW: i64 = 60;
/// A cached answer is asked again after this long, whatever its
/// `nextUpdate` (seconds; Vault's limit).
pub const CACHE_MAX_AGE: i64 = 24 * 3600;
/// `ocsp_max_retries` when not given (Vault's default).
pub const DEFAULT_MAX_RETRIES: i64 = 4;
/// The largest `ocsp_max_retries` accepted.
pub const MAX_RETRIES: i64 = 10;

const ID_SHA1: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_PKIX_OCSP_BASIC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-ad-ocsp, the AIA access method of OCSP responders.
const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
/// id-kp-OCSPSigning (1.3.6.1.5.5.7.3.9), DER value bytes.
const EKU_OCSP_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];

/// An entry's OCSP settings (Vault's fields, stored with the entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub ocsp_enabled: bool,
    /// PEM: certificates that may vouch for answers besides the issuer.
    pub ocsp_ca_certificates: String,
    /// Responder URLs used instead of the leaf's AIA OCSP URLs.
    pub ocsp_servers_override: Vec<String>,
    /// Allow the login when no responder gives a known status.
    pub ocsp_fail_open: bool,
    /// Ask every responder; "revoked" from any wins.
    pub ocsp_query_all_servers: bool,
    /// Further attempts per responder after a transport error or 5xx.
    pub ocsp_max_retries: i64,
    /// Oldest acceptable `thisUpdate`, seconds (0: any age).
    pub ocsp_this_update_max_age: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ocsp_enabled: false,
            ocsp_ca_certificates: String::new(),
            ocsp_servers_override: Vec::new(),
            ocsp_fail_open: false,
            ocsp_query_all_servers: false,
            ocsp_max_retries: DEFAULT_MAX_RETRIES,
            ocsp_this_update_max_age: 0,
        }
    }
}

/// The PEM certificates of `ocsp_ca_certificates` as DER. Vault documents
/// the field as "base64 encoded PEM data": plain PEM and base64 of PEM are
/// both read. Empty text is no certificate.
pub fn extra_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let pem = if text.contains("-----BEGIN") {
        text.to_string()
    } else {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| s.contains("-----BEGIN"))
            .ok_or("it is neither PEM nor base64-encoded PEM")?
    };
    crate::verify::pem_certificates(&pem)
}

/// Checks a responder URL: absolute http(s) with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("{url:?} must be an http or https URL"));
    }
    Ok(())
}

// ------------------------------------------------------------- answers --

/// A certificate's status as a responder gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    /// Revoked at this time (unix seconds).
    Revoked(i64),
    Unknown,
}

/// Who vouched for an answer: the issuer (itself or its delegated
/// responder), or an `ocsp_ca_certificates` certificate (SHA-1 of its DER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signer {
    Issuer,
    Extra([u8; 20]),
}

/// A verified answer about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: Status,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub signer: Signer,
}

/// The CertID asked about (SHA-1 hashes of the issuer's name and key, the
/// serial number's DER value): the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertKey {
    name_hash: [u8; 20],
    key_hash: [u8; 20],
    serial: Vec<u8>,
}

/// One certificate's OCSP question.
#[derive(Debug, Clone)]
pub struct Question {
    pub key: CertKey,
    /// The DER `OCSPRequest`.
    pub request: Vec<u8>,
    /// The leaf's serial number, `aa:bb:..`.
    pub serial_hex: String,
    /// The OCSP URLs of the leaf's AIA extension.
    pub aia_urls: Vec<String>,
}

fn sha1_of(b: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(b).into()
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| e.to_string())
}

fn serial_number(raw: &[u8]) -> Result<SerialNumber, String> {
    let len = u8::try_from(raw.len())
        .ok()
        .filter(|n| *n < 0x80)
        .ok_or("the serial number is too long")?;
    let mut tlv = vec![0x02, len];
    tlv.extend_from_slice(raw);
    SerialNumber::from_der(&tlv).map_err(|e| format!("the serial number: {e}"))
}

/// The CertID and request for `leaf_der` issued by `issuer_der`.
pub fn question(leaf_der: &[u8], issuer_der: &[u8]) -> Result<Question, String> {
    let leaf = parse_cert(leaf_der).map_err(|e| format!("the client certificate: {e}"))?;
    let issuer = parse_cert(issuer_der).map_err(|e| format!("its issuer: {e}"))?;
    let name_hash = sha1_of(issuer.subject().as_raw());
    let key_hash = sha1_of(&issuer.public_key().subject_public_key.data);
    let serial = serial_number(leaf.raw_serial())?;
    let id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(der::Any::null()),
        },
        issuer_name_hash: OctetString::new(name_hash.to_vec()).map_err(|e| e.to_string())?,
        issuer_key_hash: OctetString::new(key_hash.to_vec()).map_err(|e| e.to_string())?,
        serial_number: serial.clone(),
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(|e| format!("cannot encode the OCSP request: {e}"))?;
    let mut aia_urls = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for d in aia.iter() {
                if d.access_method.to_id_string() == ID_AD_OCSP {
                    if let GeneralName::URI(u) = &d.access_location {
                        aia_urls.push(u.to_string());
                    }
                }
            }
        }
    }
    Ok(Question {
        key: CertKey {
            name_hash,
            key_hash,
            serial: serial.as_bytes().to_vec(),
        },
        request,
        serial_hex: crate::verify::hex_colons(match leaf.raw_serial() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            raw => raw,
        }),
        aia_urls,
    })
}

/// Splits one DER element off `b`: (the whole element, its value, the rest).
fn tlv(b: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (_tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = b.len() - rest.len();
    Some((&b[..header + len], &rest[..len], &rest[len..]))
}

/// Does `signer_der`'s key verify `signature` over `msg` with the algorithm
/// whose AlgorithmIdentifier value is `alg`?
fn signed_by(signer_der: &[u8], alg: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let cert = CertificateDer::from(signer_der);
    let Ok(ee) = webpki::EndEntityCert::try_from(&cert) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .filter(|a| a.signature_alg_id().as_ref() == alg)
        .any(|a| ee.verify_signature(*a, msg, signature).is_ok())
}

/// Is `responder_der` a responder certificate that `anchor_der` issued,
/// valid at `now` and naming id-kp-OCSPSigning?
fn delegated_by(responder_der: &[u8], anchor_der: &[u8], now: i64) -> bool {
    let responder = CertificateDer::from(responder_der);
    let anchor_cert = CertificateDer::from(anchor_der);
    let (Ok(ee), Ok(anchor)) = (
        webpki::EndEntityCert::try_from(&responder),
        webpki::anchor_from_trusted_cert(&anchor_cert),
    ) else {
        return false;
    };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        time,
        webpki::KeyUsage::required(EKU_OCSP_SIGNING),
        None,
        None,
    )
    .is_ok()
}

fn unix(t: &x509_ocsp::OcspGeneralizedTime) -> i64 {
    t.0.to_unix_duration().as_secs() as i64
}

/// Reads and checks a responder's answer to `q` (see the module's
/// invariants): `issuer_der` is the leaf's issuer, `extras` the entry's
/// `ocsp_ca_certificates` (DER), `max_age` its `ocsp_this_update_max_age`.
pub fn read_answer(
    body: &[u8],
    q: &Question,
    issuer_der: &[u8],
    extras: &[Vec<u8>],
    now: i64,
    max_age: u64,
) -> Result<Answer, String> {
    let resp = OcspResponse::from_der(body)
        .map_err(|e| format!("the answer is not an OCSP response: {e}"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!("the responder answered {:?}", resp.response_status));
    }
    let bytes = resp
        .response_bytes
        .ok_or("the successful answer carries no response")?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(format!(
            "the answer is of type {}, not a basic OCSP response",
            bytes.response_type
        ));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der)
        .map_err(|e| format!("the basic OCSP response does not parse: {e}"))?;
    // The signed bytes as received (the first element of the sequence).
    let tbs = tlv(basic_der)
        .and_then(|(_, value, _)| tlv(value))
        .map(|(whole, _, _)| whole)
        .ok_or("the basic OCSP response does not parse")?;
    let alg_der = basic
        .signature_algorithm
        .to_der()
        .map_err(|e| e.to_string())?;
    let alg = tlv(&alg_der)
        .map(|(_, value, _)| value)
        .ok_or("the signature algorithm does not parse")?;
    let signature = basic
        .signature
        .as_bytes()
        .ok_or("the signature is not a whole number of bytes")?;
    let included: Vec<Vec<u8>> = basic
        .certs
        .iter()
        .flatten()
        .filter_map(|c| c.to_der().ok())
        .collect();
    let signer = vouched_for(issuer_der, extras, &included, alg, tbs, signature, now).ok_or(
        "the answer is not signed by the issuer, a responder it delegated to, or an ocsp_ca_certificates certificate",
    )?;

    let ours = |id: &CertId| {
        id.hash_algorithm.oid == ID_SHA1
            && id.issuer_name_hash.as_bytes() == q.key.name_hash
            && id.issuer_key_hash.as_bytes() == q.key.key_hash
            && id.serial_number.as_bytes() == q.key.serial.as_slice()
    };
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| ours(&r.cert_id))
        .ok_or("the answer holds no response for this certificate")?;
    let this_update = unix(&single.this_update);
    let next_update = single.next_update.as_ref().map(unix);
    if this_update > now + CLOCK_SKEW {
        return Err(format!(
            "the answer's thisUpdate ({this_update}) is in the future"
        ));
    }
    if max_age > 0 && now - this_update > max_age as i64 {
        return Err(format!(
            "the answer's thisUpdate is older than ocsp_this_update_max_age ({max_age} s)"
        ));
    }
    if let Some(next) = next_update {
        if now > next {
            return Err(format!(
                "the answer is out of date (its nextUpdate, {next}, is past)"
            ));
        }
    }
    let status = match &single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Revoked(info) => Status::Revoked(unix(&info.revocation_time)),
        CertStatus::Unknown(_) => Status::Unknown,
    };
    Ok(Answer {
        status,
        this_update,
        next_update,
        signer,
    })
}

/// Who, if anyone we trust, signed `tbs`.
fn vouched_for(
    issuer_der: &[u8],
    extras: &[Vec<u8>],
    included: &[Vec<u8>],
    alg: &[u8],
    tbs: &[u8],
    signature: &[u8],
    now: i64,
) -> Option<Signer> {
    if signed_by(issuer_der, alg, tbs, signature) {
        return Some(Signer::Issuer);
    }
    for r in included {
        if signed_by(r, alg, tbs, signature) && delegated_by(r, issuer_der, now) {
            return Some(Signer::Issuer);
        }
    }
    for x in extras {
        let trusted = signed_by(x, alg, tbs, signature)
            || included
                .iter()
                .any(|r| signed_by(r, alg, tbs, signature) && delegated_by(r, x, now));
        if trusted {
            return Some(Signer::Extra(sha1_of(x)));
        }
    }
    None
}

// --------------------------------------------------------------- cache --

struct Cached {
    answer: Answer,
    fetched_at: i64,
    used: u64,
}

struct Lru {
    capacity: usize,
    tick: u64,
    map: HashMap<CertKey, Cached>,
    /// Last use → key, oldest first.
    order: BTreeMap<u64, CertKey>,
}

/// The in-memory answer cache (see the module's invariants).
pub struct Cache {
    inner: Mutex<Lru>,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            inner: Mutex::new(Lru {
                capacity: capacity.max(1),
                tick: 0,
                map: HashMap::new(),
                order: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the capacity, dropping the least recently used answers beyond it.
    pub fn set_capacity(&self, capacity: usize) {
        let mut l = self.lock();
        l.capacity = capacity.max(1);
        l.evict();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// A cached answer still usable at `now` by an entry trusting `extras`
    /// (SHA-1 of their DER) with `max_age`; expired ones are dropped.
    pub fn get(
        &self,
        key: &CertKey,
        now: i64,
        extras: &[[u8; 20]],
        max_age: u64,
    ) -> Option<Answer> {
        let mut l = self.lock();
        let c = l.map.get(key)?;
        let a = c.answer;
        let fresh = a.next_update.is_some_and(|n| now <= n) && now - c.fetched_at < CACHE_MAX_AGE;
        if !fresh {
            l.remove(key);
            return None;
        }
        let trusted = match a.signer {
            Signer::Issuer => true,
            Signer::Extra(fp) => extras.contains(&fp),
        };
        if !trusted || (max_age > 0 && now - a.this_update > max_age as i64) {
            return None;
        }
        l.touch(key);
        Some(a)
    }

    /// Keeps an answer that has a `nextUpdate`.
    pub fn put(&self, key: CertKey, answer: Answer, now: i64) {
        if answer.next_update.is_none() {
            return;
        }
        let mut l = self.lock();
        l.remove(&key);
        l.tick += 1;
        let used = l.tick;
        l.order.insert(used, key.clone());
        l.map.insert(
            key,
            Cached {
                answer,
                fetched_at: now,
                used,
            },
        );
        l.evict();
    }
}

impl Lru {
    fn remove(&mut self, key: &CertKey) {
        if let Some(c) = self.map.remove(key) {
            self.order.remove(&c.used);
        }
    }

    fn touch(&mut self, key: &CertKey) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(c) = self.map.get_mut(key) {
            self.order.remove(&c.used);
            c.used = tick;
            self.order.insert(tick, key.clone());
        }
    }

    fn evict(&mut self) {
        while self.map.len() > self.capacity {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&key);
        }
    }
}

// ------------------------------------------------------------- network --

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

/// An HTTP client with the limits above; `extras` are also trusted as TLS
/// roots for https responders (besides the built-in ones).
fn client(extras: &[Vec<u8>]) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent("arca-cert-auth");
    for der in extras {
        if let Ok(c) = reqwest::Certificate::from_der(der) {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("cannot build an HTTP client: {}", error_chain(&e)))
}

/// One POST; `Err((retryable, why))`.
async fn post_once(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
) -> Result<Vec<u8>, (bool, String)> {
    let mut resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
        .header(reqwest::header::ACCEPT, "application/ocsp-response")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| (true, error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let retry = status.is_server_error() || status.as_u16() == 429;
        return Err((retry, format!("HTTP {status}")));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE as u64)
    {
        return Err((
            false,
            format!("the answer is larger than {MAX_RESPONSE} bytes"),
        ));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| (true, error_chain(&e)))? {
        if out.len() + chunk.len() > MAX_RESPONSE {
            return Err((
                false,
                format!("the answer is larger than {MAX_RESPONSE} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// POSTs the request, retrying transport errors and 5xx/429 up to
/// `retries` times with a short backoff.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    retries: i64,
) -> Result<Vec<u8>, String> {
    let mut attempt: i64 = 0;
    loop {
        match post_once(client, url, body).await {
            Ok(b) => return Ok(b),
            Err((true, why)) if attempt < retries => {
                tracing::debug!(url, attempt, error = %why, "OCSP request failed, retrying");
                let backoff = Duration::from_millis((100u64 << attempt.min(4)).min(1000));
                tokio::time::sleep(backoff).await;
                attempt += 1;
            }
            Err((_, why)) => {
                let tries = attempt + 1;
                return Err(format!(
                    "{why} ({tries} attempt{})",
                    if tries == 1 { "" } else { "s" }
                ));
            }
        }
    }
}

/// What one certificate's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Good,
    /// Revoked: the text says so.
    Revoked(String),
    /// No usable status ("unknown", or no responder answered): why.
    Failed(String),
}

fn verdict(q: &Question, a: &Answer) -> Verdict {
    match a.status {
        Status::Good => Verdict::Good,
        Status::Revoked(at) => Verdict::Revoked(format!(
            "the certificate with serial number {} has been revoked (OCSP; revoked at {})",
            q.serial_hex,
            chrono_like(at)
        )),
        Status::Unknown => Verdict::Failed(format!(
            "the OCSP responder does not know the certificate with serial number {} (status unknown)",
            q.serial_hex
        )),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn chrono_like(t: i64) -> String {
    match der::DateTime::from_unix_duration(Duration::from_secs(t.max(0) as u64)) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        ),
        Err(_) => t.to_string(),
    }
}

/// Asks about `leaf_der` (issued by `issuer_der`) as `s` says, through
/// `cache`, judging times at `now`.
pub async fn check(
    cache: &Cache,
    s: &Settings,
    leaf_der: &[u8],
    issuer_der: Option<&[u8]>,
    now: i64,
) -> Verdict {
    let Some(issuer_der) = issuer_der else {
        return Verdict::Failed(
            "the client certificate's issuer is not known (a trusted certificate entry needs its \
             issuer among its certificates or ocsp_ca_certificates to ask a responder)"
                .into(),
        );
    };
    let q = match question(leaf_der, issuer_der) {
        Ok(q) => q,
        Err(e) => return Verdict::Failed(format!("cannot build the OCSP request: {e}")),
    };
    let extras = match extra_certificates(&s.ocsp_ca_certificates) {
        Ok(x) => x,
        Err(e) => return Verdict::Failed(format!("ocsp_ca_certificates: {e}")),
    };
    let extra_ids: Vec<[u8; 20]> = extras.iter().map(|x| sha1_of(x)).collect();
    if let Some(a) = cache.get(&q.key, now, &extra_ids, s.ocsp_this_update_max_age) {
        return verdict(&q, &a);
    }
    let urls = if s.ocsp_servers_override.is_empty() {
        q.aia_urls.clone()
    } else {
        s.ocsp_servers_override.clone()
    };
    if urls.is_empty() {
        return Verdict::Failed(
            "no OCSP responder: the certificate names none (Authority Information Access) and \
             the entry sets no ocsp_servers_override"
                .into(),
        );
    }
    let client = match client(&extras) {
        Ok(c) => c,
        Err(e) => return Verdict::Failed(e),
    };
    let retries = s.ocsp_max_retries.clamp(0, MAX_RETRIES);
    let ask = |url: String| {
        let (client, q, extras) = (&client, &q, &extras);
        async move {
            let r = match post(client, &url, &q.request, retries).await {
                Ok(body) => read_answer(
                    &body,
                    q,
                    issuer_der,
                    extras,
                    now,
                    s.ocsp_this_update_max_age,
                ),
                Err(e) => Err(e),
            };
            r.map_err(|e| format!("{url}: {e}"))
        }
    };
    let run = async {
        let mut answers: Vec<Answer> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        if s.ocsp_query_all_servers {
            for r in futures::future::join_all(urls.into_iter().map(&ask)).await {
                match r {
                    Ok(a) => answers.push(a),
                    Err(e) => errors.push(e),
                }
            }
        } else {
            for url in urls {
                match ask(url).await {
                    Ok(a) => {
                        answers.push(a);
                        break;
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        (answers, errors)
    };
    let (answers, errors) = match tokio::time::timeout(CHECK_DEADLINE, run).await {
        Ok(r) => r,
        Err(_) => {
            return Verdict::Failed(format!(
                "no OCSP responder answered within {} s",
                CHECK_DEADLINE.as_secs()
            ))
        }
    };
    let rank = |a: &Answer| match a.status {
        Status::Revoked(_) => 0,
        Status::Good => 1,
        Status::Unknown => 2,
    };
    match answers.into_iter().min_by_key(rank) {
        Some(a) => {
            cache.put(q.key.clone(), a, now);
            match verdict(&q, &a) {
                Verdict::Failed(why) if !errors.is_empty() => {
                    Verdict::Failed(format!("{why}; {}", errors.join("; ")))
                }
                v => v,
            }
        }
        None => Verdict::Failed(format!("no OCSP responder answered: {}", errors.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_elements_are_split() {
        let b = [0x30, 0x03, 0x02, 0x01, 0x05, 0xff];
        let (whole, value, rest) = tlv(&b).unwrap();
        assert_eq!(whole, &b[..5]);
        assert_eq!(value, &[0x02, 0x01, 0x05]);
        assert_eq!(rest, &[0xff]);
        let long: Vec<u8> = [vec![0x04, 0x81, 200], vec![7; 200]].concat();
        let (whole, value, rest) = tlv(&long).unwrap();
        assert_eq!((whole.len(), value.len(), rest.len()), (203, 200, 0));
        assert!(tlv(&[0x30, 0x05, 0x01]).is_none(), "truncated");
        assert!(tlv(&[0x30]).is_none());
        assert!(tlv(&[0x30, 0x80]).is_none(), "indefinite length");
    }

    fn key(n: u8) -> CertKey {
        CertKey {
            name_hash: [n; 20],
            key_hash: [n; 20],
            serial: vec![n],
        }
    }

    fn good(next: Option<i64>) -> Answer {
        Answer {
            status: Status::Good,
            this_update: 1000,
            next_update: next,
            signer: Signer::Issuer,
        }
    }

    #[test]
    fn the_cache_keeps_fresh_answers_and_evicts_the_least_recently_used() {
        let c = Cache::new(2);
        c.put(key(1), good(Some(5000)), 1000);
        c.put(key(2), good(Some(5000)), 1000);
        assert!(
            c.get(&key(1), 1001, &[], 0).is_some(),
            "1 is now the newest"
        );
        c.put(key(3), good(Some(5000)), 1000);
        assert_eq!(c.len(), 2);
        assert!(c.get(&key(2), 1001, &[], 0).is_none(), "2 was evicted");
        assert!(c.get(&key(1), 1001, &[], 0).is_some());
        assert!(c.get(&key(3), 1001, &[], 0).is_some());
        // Past nextUpdate it is dropped; without one it is never kept.
        assert!(c.get(&key(1), 5001, &[], 0).is_none());
        assert_eq!(c.len(), 1);
        c.put(key(4), good(None), 1000);
        assert!(c.get(&key(4), 1001, &[], 0).is_none());
        // A day after it was fetched it is asked again.
        c.put(key(5), good(Some(1000 + 2 * CACHE_MAX_AGE)), 1000);
        assert!(c.get(&key(5), 1000 + CACHE_MAX_AGE, &[], 0).is_none());
        // Shrinking drops the oldest.
        c.put(key(6), good(Some(5000)), 1000);
        c.put(key(7), good(Some(5000)), 1000);
        c.set_capacity(1);
        assert_eq!(c.len(), 1);
        assert!(c.get(&key(7), 1001, &[], 0).is_some());
    }

    #[test]
    fn cached_answers_serve_only_entries_that_would_accept_them() {
        let c = Cache::new(10);
        let mut a = good(Some(5000));
        a.signer = Signer::Extra([9; 20]);
        c.put(key(1), a, 1000);
        assert!(c.get(&key(1), 1001, &[], 0).is_none());
        assert!(c.get(&key(1), 1001, &[[9; 20]], 0).is_some());
        c.put(key(2), good(Some(5000)), 1000);
        assert!(
            c.get(&key(2), 1500, &[], 100).is_none(),
            "too old for this entry"
        );
        assert!(c.get(&key(2), 1500, &[], 600).is_some());
    }

    #[test]
    fn urls_and_extra_certificates_are_checked() {
        assert!(check_url("http://ocsp.example.com/x").is_ok());
        assert!(check_url("https://127.0.0.1:8200/v1/pki/ocsp").is_ok());
        assert!(check_url("ocsp.example.com").is_err());
        assert!(check_url("ftp://ocsp.example.com").is_err());
        assert!(extra_certificates("").unwrap().is_empty());
        assert!(extra_certificates("garbage").is_err());
        assert_eq!(chrono_like(0), "1970-01-01T00:00:00Z");
    }
}
