//! Revocation and CRLs: `revoke`, `revoke-with-key`, `crl` (DER),
//! `crl/pem`, `crl/delta`, `crl/delta/pem`, `crl/rotate`,
//! `crl/rotate-delta`, per-issuer CRLs (`issuer/:ref/crl[/der|/pem]`,
//! `issuer/:ref/crl/delta[/der|/pem]`) and `config/urls`.
//!
//! A revocation writes a few small records in one batch (see `crl`); CRLs
//! are signed on demand by whichever node answers, from replicated state.

use serde_json::{Map, Value};

use arca_sdk::storage::json_op;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::crl;
use crate::crypto;
use crate::model::raw;
use crate::model::{self, CertEntry, Revocation, UrlsConfig};

/// The serial a revocation names: `serial_number`, or that of `certificate`.
fn requested_serial(d: &arca_sdk::FieldData) -> Result<String, LogicalError> {
    if let Some(s) = d.get_str("serial_number")?.filter(|s| !s.is_empty()) {
        return Ok(crypto::normalize_serial(&s));
    }
    if let Some(pem) = d.get_str("certificate")?.filter(|s| !s.is_empty()) {
        return Ok(crypto::cert_info(&crypto::pem_to_der(&pem)?)?.serial);
    }
    Err(LogicalError::invalid(
        "the serial_number or certificate to revoke must be provided",
    ))
}

/// A CRL in the form the path asks for: DER, PEM, or (per-issuer paths
/// without a suffix) JSON `{"crl": PEM}`.
fn crl_response(der: &[u8], form: &str) -> Response {
    let pem = || format!("{}\n", crypto::der_to_pem(der, "X509 CRL"));
    match form {
        "pem" => raw("application/x-pem-file", pem().into_bytes()),
        "json" => {
            let mut data = Map::new();
            data.insert("crl".into(), Value::from(pem()));
            Response::data(data)
        }
        _ => raw("application/pkix-crl", der.to_vec()),
    }
}

impl Pki {
    async fn revoke(&self, c: Ctx<'_>) -> HandlerResult {
        let serial = requested_serial(&c.data)?;
        let rev = self.revoke_serial(c.storage, &serial).await?;
        let mut data = Map::new();
        data.insert("revocation_time".into(), Value::from(rev.revocation_time));
        data.insert(
            "revocation_time_rfc3339".into(),
            Value::from(
                chrono::DateTime::from_timestamp(rev.revocation_time, 0)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default(),
            ),
        );
        data.insert("state".into(), Value::from("revoked"));
        Ok(Some(Response::data(data)))
    }

    /// The revoke callback of a certificate issued by a role with
    /// `generate_lease`: its lease expired or was revoked, so the
    /// certificate is revoked (and appears on the next CRL).
    pub(crate) async fn revoke_leased_cert(&self, c: Ctx<'_>) -> HandlerResult {
        let serial = c
            .req
            .secret
            .as_ref()
            .and_then(|s| s.internal_data.get("serial_number"))
            .and_then(Value::as_str)
            .ok_or_else(|| LogicalError::internal("the lease names no certificate serial"))?;
        self.revoke_serial(c.storage, &crypto::normalize_serial(serial))
            .await?;
        Ok(None)
    }

    /// Revokes a stored certificate (idempotent: the first revocation's
    /// record is kept).
    async fn revoke_serial(
        &self,
        storage: &dyn arca_sdk::Storage,
        serial: &str,
    ) -> Result<Revocation, LogicalError> {
        let serial = serial.to_string();
        let entry: CertEntry = model::get(storage, &format!("certs/{serial}"))
            .await?
            .ok_or_else(|| {
                LogicalError::invalid(format!(
                    "certificate with serial {serial} not found (certificates issued with no_store cannot be revoked by serial)"
                ))
            })?;
        let _g = self.ca_lock.lock().await;
        let key = format!("revoked/{serial}");
        let rev = match model::get::<Revocation>(storage, &key).await? {
            Some(r) => r,
            None => {
                let cfg = crate::path_tidy::crl_config(storage).await?;
                let (seq, mut ops) =
                    crl::change_ops(storage, &entry.issuer_id, &serial, false, &cfg).await?;
                let r = Revocation {
                    serial_number: serial.clone(),
                    issuer_id: entry.issuer_id.clone(),
                    revocation_time: self.system.now(),
                    not_after: entry.not_after,
                    seq,
                };
                ops.insert(0, json_op(&key, &r)?);
                storage.batch(ops).await?;
                r
            }
        };
        Ok(rev)
    }

    /// `revoke-with-key`: the caller proves it holds the certificate's
    /// private key before the certificate is revoked.
    async fn revoke_with_key(&self, c: Ctx<'_>) -> HandlerResult {
        let key_pem = c
            .data
            .get_str("private_key")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| LogicalError::invalid("the private_key field is required (PEM)"))?;
        let serial = requested_serial(&c.data)?;
        let entry: CertEntry = model::get(c.storage, &format!("certs/{serial}"))
            .await?
            .ok_or_else(|| {
                LogicalError::invalid(format!("certificate with serial {serial} not found"))
            })?;
        let (_, key) = crypto::import_key(&key_pem)?;
        let der = crypto::pem_to_der(&entry.certificate)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| LogicalError::internal(format!("stored certificate unreadable: {e}")))?;
        use rcgen::PublicKeyData;
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(LogicalError::invalid(
                "the private key does not match the certificate's public key",
            ));
        }
        self.revoke(c).await
    }

    /// `crl[/pem]`, `crl/delta[/pem]`, `cert/crl`-style reads of the
    /// default issuer, and `issuer/:ref/crl[/delta][/der|/pem]`.
    async fn crl_of_issuer(&self, c: Ctx<'_>) -> HandlerResult {
        let issuer_ref = c.data.str_or("issuer_ref", "")?;
        self.crl(c, issuer_ref).await
    }

    async fn crl(&self, c: Ctx<'_>, issuer_ref: String) -> HandlerResult {
        let per_issuer = !issuer_ref.is_empty();
        let issuer = model::resolve_issuer(c.storage, &issuer_ref).await?;
        // Without enable_delta the delta CRL is served too, empty: the
        // complete CRL already lists everything (`bao pki health-check`
        // reads both).
        let delta = !c.data.str_or("delta", "")?.is_empty();
        let der = self.crl_der(c.storage, &issuer, delta).await?;
        let form = match c.data.str_or("format", "")?.as_str() {
            "/pem" => "pem",
            "/der" => "der",
            _ if per_issuer => "json",
            _ => "der",
        };
        Ok(Some(crl_response(&der, form)))
    }

    async fn rotate_crl(&self, c: Ctx<'_>) -> HandlerResult {
        let delta_only = c.req.path.ends_with("rotate-delta");
        if delta_only && !crate::path_tidy::crl_config(c.storage).await?.enable_delta {
            return Err(LogicalError::invalid(
                "delta CRLs are not enabled: set enable_delta=true (with auto_rebuild=true) in config/crl",
            ));
        }
        let _g = self.ca_lock.lock().await;
        for id in c.storage.list("issuer/").await? {
            self.rotate_crl_of(c.storage, &id, delta_only).await?;
        }
        let mut data = Map::new();
        data.insert("success".into(), Value::from(true));
        Ok(Some(Response::data(data)))
    }

    /// `config/cluster`: this cluster's path and AIA path, as Vault stores
    /// them for URL templating.
    async fn read_cluster(&self, c: Ctx<'_>) -> HandlerResult {
        let v: Map<String, Value> = model::get(c.storage, "config/cluster")
            .await?
            .unwrap_or_default();
        let mut data = Map::new();
        for k in ["path", "aia_path"] {
            data.insert(k.into(), v.get(k).cloned().unwrap_or(Value::from("")));
        }
        Ok(Some(Response::data(data)))
    }

    async fn write_cluster(&self, c: Ctx<'_>) -> HandlerResult {
        let mut v: Map<String, Value> = model::get(c.storage, "config/cluster")
            .await?
            .unwrap_or_default();
        for k in ["path", "aia_path"] {
            if let Some(u) = c.data.get_str(k)? {
                if !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(LogicalError::invalid(format!(
                        "{k} must be an http:// or https:// URL, not {u:?}"
                    )));
                }
                v.insert(k.into(), Value::from(u));
            }
        }
        model::put(c.storage, "config/cluster", &v).await?;
        self.read_cluster(c).await
    }

    async fn read_urls(&self, c: Ctx<'_>) -> HandlerResult {
        let u: UrlsConfig = model::get(c.storage, "config/urls")
            .await?
            .unwrap_or_default();
        let mut data = Map::new();
        data.insert(
            "issuing_certificates".into(),
            Value::from(u.issuing_certificates),
        );
        data.insert(
            "crl_distribution_points".into(),
            Value::from(u.crl_distribution_points),
        );
        data.insert("ocsp_servers".into(), Value::from(u.ocsp_servers));
        data.insert(
            "delta_crl_distribution_points".into(),
            Value::from(u.delta_crl_distribution_points),
        );
        Ok(Some(Response::data(data)))
    }

    async fn write_urls(&self, c: Ctx<'_>) -> HandlerResult {
        let mut u: UrlsConfig = model::get(c.storage, "config/urls")
            .await?
            .unwrap_or_default();
        if let Some(v) = c.data.get_list("issuing_certificates")? {
            u.issuing_certificates = v;
        }
        if let Some(v) = c.data.get_list("crl_distribution_points")? {
            u.crl_distribution_points = v;
        }
        if let Some(v) = c.data.get_list("ocsp_servers")? {
            u.ocsp_servers = v;
        }
        if let Some(v) = c.data.get_list("delta_crl_distribution_points")? {
            u.delta_crl_distribution_points = v;
        }
        model::put(c.storage, "config/urls", &u).await?;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("revoke")
            .field(Field::new(
                "serial_number",
                FieldType::String,
                "Serial of the certificate to revoke.",
            ))
            .field(Field::new(
                "certificate",
                FieldType::String,
                "Or the certificate itself, PEM.",
            ))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.revoke(c)))
            .help("Revoke a certificate; its issuer's CRL lists it from then on."),
        Path::new("revoke-with-key")
            .field(Field::new(
                "serial_number",
                FieldType::String,
                "Serial of the certificate to revoke.",
            ))
            .field(Field::new(
                "certificate",
                FieldType::String,
                "Or the certificate itself, PEM.",
            ))
            .field(Field::new(
                "private_key",
                FieldType::String,
                "The certificate's private key, PEM.",
            ))
            .op(Operation::Update, |b: &Pki, c| {
                Box::pin(b.revoke_with_key(c))
            })
            .help("Revoke a certificate, proving possession of its private key."),
        Path::new("crl(?P<delta>/delta)?(?P<format>/pem)?")
            .field(Field::new(
                "delta",
                FieldType::String,
                "/delta for the delta CRL.",
            ))
            .field(Field::new("format", FieldType::String, "/pem for PEM."))
            .op(Operation::Read, |b: &Pki, c| {
                Box::pin(b.crl(c, String::new()))
            })
            .help("The default issuer's CRL (or delta CRL), DER or PEM."),
        Path::new("issuer/(?P<issuer_ref>[^/]+)/crl(?P<delta>/delta)?(?P<format>/der|/pem)?")
            .field(Field::new(
                "issuer_ref",
                FieldType::String,
                "Issuer id or name.",
            ))
            .field(Field::new(
                "delta",
                FieldType::String,
                "/delta for the delta CRL.",
            ))
            .field(Field::new(
                "format",
                FieldType::String,
                "/der or /pem; JSON without.",
            ))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.crl_of_issuer(c)))
            .help("An issuer's CRL (or delta CRL): JSON {crl: PEM}, or /der, /pem."),
        Path::new("crl/rotate(?:-delta)?")
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.rotate_crl(c)))
            .help(
                "Start a new complete CRL (rotate) or delta CRL (rotate-delta) for every issuer.",
            ),
        Path::new("config/cluster")
            .field(Field::new(
                "path",
                FieldType::String,
                "This cluster's URL to the mount (e.g. https://node:8200/v1/pki).",
            ))
            .field(Field::new(
                "aia_path",
                FieldType::String,
                "The URL for AIA fields (default: path).",
            ))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_cluster(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_cluster(c)))
            .help("The cluster's own URLs for this mount."),
        Path::new("config/urls")
            .field(Field::new(
                "issuing_certificates",
                FieldType::CommaStringSlice,
                "AIA issuing certificate URLs.",
            ))
            .field(Field::new(
                "crl_distribution_points",
                FieldType::CommaStringSlice,
                "CRL distribution point URLs.",
            ))
            .field(Field::new(
                "ocsp_servers",
                FieldType::CommaStringSlice,
                "OCSP server URLs.",
            ))
            .field(Field::new(
                "delta_crl_distribution_points",
                FieldType::CommaStringSlice,
                "Delta CRL URLs (the Freshest CRL of complete CRLs).",
            ))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_urls(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_urls(c)))
            .help("URLs put into issued certificates (AIA, CRL distribution points, OCSP)."),
    ]
}
