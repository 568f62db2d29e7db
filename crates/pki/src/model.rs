//! What the PKI engine stores (all under its mount's barrier view):
//!
//! - `issuer/<id>`: an issuer (CA certificate PEM, the key it signs with);
//! - `key/<id>`: a private key (PKCS#8 PEM) and its type;
//! - `config/issuers`: the default issuer; `config/urls`: AIA/CRL URLs;
//! - `role/<name>`: a role;
//! - `certs/<serial>`: an issued certificate (unless the role says
//!   `no_store`); `revoked/<serial>`: its revocation;
//! - `crlstate/<issuer id>`, `revlog/<issuer id>/<seq>`: the CRL header and
//!   revocation log (see the `crl` module).
//!
//! Invariants: a key's PEM never appears in a response except in the answer
//! of the `exported` generation that created it; serials are stored in
//! Vault's `aa:bb:..` lower-case form.

use serde::{Deserialize, Serialize};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, RawResponse, Response, Storage};

/// A non-JSON answer (certificates, CRLs) with its content type.
pub fn raw(content_type: &str, body: Vec<u8>) -> Response {
    Response {
        raw: Some(RawResponse {
            status: 200,
            content_type: content_type.into(),
            body,
        }),
        ..Default::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerEntry {
    pub id: String,
    pub name: String,
    pub key_id: String,
    pub certificate: String,
    /// PEM certificates above this one (for an intermediate), nearest first.
    #[serde(default)]
    pub ca_chain: Vec<String>,
    pub serial_number: String,
    pub not_after: i64,
    /// Vault's issuer settings (`issuer/:ref` update).
    #[serde(default = "default_leaf_behavior")]
    pub leaf_not_after_behavior: String,
    #[serde(default = "default_usage")]
    pub usage: String,
    #[serde(default)]
    pub manual_chain: Vec<String>,
    /// When `issuer/:ref/revoke` revoked it (0: not revoked). A revoked
    /// issuer issues nothing more.
    #[serde(default)]
    pub revocation_time: i64,
}

fn default_leaf_behavior() -> String {
    "err".into()
}

pub fn default_usage() -> String {
    "read-only,issuing-certificates,crl-signing,ocsp-signing".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeysConfig {
    pub default: String,
}

/// The key a request names (`default`, an id or a name).
pub async fn resolve_key(s: &dyn Storage, r: &str) -> Result<KeyEntry, LogicalError> {
    let r = if r.is_empty() { "default" } else { r };
    let id = if r == "default" {
        let cfg: KeysConfig = get(s, "config/keys").await?.unwrap_or_default();
        if cfg.default.is_empty() {
            return Err(LogicalError::invalid(
                "no default key: generate or import one first",
            ));
        }
        cfg.default
    } else {
        r.to_string()
    };
    if let Some(k) = get::<KeyEntry>(s, &format!("key/{id}")).await? {
        return Ok(k);
    }
    for k in s.list("key/").await? {
        if let Some(e) = get::<KeyEntry>(s, &format!("key/{k}")).await? {
            if !e.name.is_empty() && e.name == id {
                return Ok(e);
            }
        }
    }
    Err(LogicalError::invalid(format!("unable to find key {r:?}")))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub key_bits: usize,
    pub private_key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssuersConfig {
    pub default: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UrlsConfig {
    #[serde(default)]
    pub issuing_certificates: Vec<String>,
    #[serde(default)]
    pub crl_distribution_points: Vec<String>,
    #[serde(default)]
    pub ocsp_servers: Vec<String>,
    /// Published as the Freshest CRL of complete CRLs when delta CRLs are on.
    #[serde(default)]
    pub delta_crl_distribution_points: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertEntry {
    pub serial_number: String,
    pub certificate: String,
    pub issuer_id: String,
    pub not_after: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    pub serial_number: String,
    pub issuer_id: String,
    pub revocation_time: i64,
    pub not_after: i64,
    /// The issuer's revocation-log sequence number (see `crl`).
    #[serde(default)]
    pub seq: u64,
}

pub async fn get<T: serde::de::DeserializeOwned>(
    s: &dyn Storage,
    key: &str,
) -> Result<Option<T>, LogicalError> {
    Ok(get_json(s, key).await?)
}

pub async fn put<T: Serialize>(s: &dyn Storage, key: &str, v: &T) -> Result<(), LogicalError> {
    Ok(put_json(s, key, v).await?)
}

/// Puts `config/urls` into a certificate about to be signed: CRL
/// distribution points, and AIA (CA issuers, OCSP servers).
pub async fn apply_urls(
    s: &dyn Storage,
    p: &mut rcgen::CertificateParams,
) -> Result<(), LogicalError> {
    let u: UrlsConfig = get(s, "config/urls").await?.unwrap_or_default();
    if !u.crl_distribution_points.is_empty() {
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: u.crl_distribution_points.clone(),
        }];
    }
    if !u.issuing_certificates.is_empty() || !u.ocsp_servers.is_empty() {
        let value = crate::x509::aia_value(&u.issuing_certificates, &u.ocsp_servers)?;
        p.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                value,
            ));
    }
    Ok(())
}

/// The issuer a request names (`default`, an id or a name), or the default.
pub async fn resolve_issuer(s: &dyn Storage, r: &str) -> Result<IssuerEntry, LogicalError> {
    let r = if r.is_empty() { "default" } else { r };
    let id = if r == "default" {
        let cfg: IssuersConfig = get(s, "config/issuers").await?.unwrap_or_default();
        if cfg.default.is_empty() {
            return Err(LogicalError::invalid(
                "no default issuer: generate or import a CA first (root/generate/internal)",
            ));
        }
        cfg.default
    } else {
        r.to_string()
    };
    if let Some(i) = get::<IssuerEntry>(s, &format!("issuer/{id}")).await? {
        return Ok(i);
    }
    // By name.
    for k in s.list("issuer/").await? {
        if let Some(i) = get::<IssuerEntry>(s, &format!("issuer/{k}")).await? {
            if i.name == id {
                return Ok(i);
            }
        }
    }
    Err(LogicalError::invalid(format!(
        "unable to find issuer {r:?}"
    )))
}

pub async fn load_key(s: &dyn Storage, id: &str) -> Result<KeyEntry, LogicalError> {
    get::<KeyEntry>(s, &format!("key/{id}"))
        .await?
        .ok_or_else(|| LogicalError::internal(format!("the issuer's key {id} is missing")))
}

/// The private key an issuer signs with.
pub async fn issuer_key(
    s: &dyn Storage,
    issuer: &IssuerEntry,
) -> Result<rcgen::KeyPair, LogicalError> {
    let k = load_key(s, &issuer.key_id).await?;
    let spec = crate::crypto::KeySpec::parse(&k.key_type, k.key_bits as i64)?;
    crate::crypto::load(spec, &k.private_key)
}

/// An issuer's parsed certificate and key, ready to sign. Valid while the
/// stored issuer has the same certificate and key id (a key id's key never
/// changes), which is checked on every use.
pub struct CachedSigner {
    certificate: String,
    key_id: String,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl crate::backend::Pki {
    /// The signer for `issuer`, parsed once per node and reused: loading a
    /// key (PKCS#8 decoding and ring's key-pair check) and parsing the CA
    /// certificate would otherwise cost more than signing.
    pub(crate) async fn cached_signer(
        &self,
        s: &dyn Storage,
        issuer: &IssuerEntry,
    ) -> Result<std::sync::Arc<CachedSigner>, LogicalError> {
        if let Some(c) = self.signers.lock().get(&issuer.id) {
            if c.certificate == issuer.certificate && c.key_id == issuer.key_id {
                return Ok(c.clone());
            }
        }
        let key = issuer_key(s, issuer).await?;
        let signer = rcgen::Issuer::from_ca_cert_pem(&issuer.certificate, key)
            .map_err(|e| LogicalError::internal(format!("cannot use the issuer: {e}")))?;
        let c = std::sync::Arc::new(CachedSigner {
            certificate: issuer.certificate.clone(),
            key_id: issuer.key_id.clone(),
            issuer: signer,
        });
        self.signers.lock().insert(issuer.id.clone(), c.clone());
        Ok(c)
    }
}

/// rcgen's view of an issuer (its subject, key identifier and usages from
/// its certificate) signing with `key`.
pub fn signer<'a>(
    issuer: &IssuerEntry,
    key: &'a rcgen::KeyPair,
) -> Result<rcgen::Issuer<'static, &'a rcgen::KeyPair>, LogicalError> {
    rcgen::Issuer::from_ca_cert_pem(&issuer.certificate, key)
        .map_err(|e| LogicalError::internal(format!("cannot use the issuer: {e}")))
}
