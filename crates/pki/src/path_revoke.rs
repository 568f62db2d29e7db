//! Revocation and CRLs: `revoke`, `crl` (DER), `crl/pem`, `crl/rotate`,
//! and `config/urls`.
//!
//! The CRL of an issuer is rebuilt and stored when a certificate it issued
//! is revoked (and on `crl/rotate`), and read from storage by every node.
//! Rebuilding is one pass over the issuer's revocations; batched and delta
//! rebuilds for very large CRLs come with `config/crl`.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde_json::{Map, Value};

use arca_sdk::{
    Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response, Storage,
};

use crate::backend::Pki;
use crate::crypto;
use crate::model::raw;
use crate::model::{self, CertEntry, CrlEntry, IssuerEntry, Revocation, UrlsConfig};

fn t(unix: i64) -> Result<time::OffsetDateTime, LogicalError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| LogicalError::internal(e.to_string()))
}

fn serial_bytes(s: &str) -> Result<Vec<u8>, LogicalError> {
    hex::decode(s.replace(':', ""))
        .map_err(|_| LogicalError::internal(format!("bad stored serial {s}")))
}

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

impl Pki {
    /// Builds, signs and stores a new CRL for `issuer` from its revocations.
    pub(crate) async fn rebuild_crl(
        &self,
        s: &dyn Storage,
        issuer: &IssuerEntry,
    ) -> Result<CrlEntry, LogicalError> {
        let prev: Option<CrlEntry> = model::get(s, &format!("crl/{}", issuer.id)).await?;
        let cfg = crate::path_tidy::crl_config(s).await?;
        let expiry = cfg.expiry as i64;
        let mut revoked = vec![];
        // `disable`: an empty CRL is published.
        let serials = if cfg.disable {
            vec![]
        } else {
            s.list("revoked/").await?
        };
        for serial in serials {
            if let Some(r) = model::get::<Revocation>(s, &format!("revoked/{serial}")).await? {
                if r.issuer_id == issuer.id {
                    revoked.push(RevokedCertParams {
                        serial_number: SerialNumber::from(serial_bytes(&r.serial_number)?),
                        revocation_time: t(r.revocation_time)?,
                        reason_code: None,
                        invalidity_date: None,
                    });
                }
            }
        }
        let now = chrono::Utc::now().timestamp();
        let number = prev.map(|p| p.number + 1).unwrap_or(1);
        let params = CertificateRevocationListParams {
            this_update: t(now)?,
            next_update: t(now + expiry)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let key = model::issuer_key(s, issuer).await?;
        let ca = model::signer(issuer, &key)?;
        let crl = params
            .signed_by(&ca)
            .map_err(|e| LogicalError::internal(format!("cannot sign the CRL: {e}")))?;
        let entry = CrlEntry {
            number,
            der: crl.der().to_vec(),
            this_update: now,
            next_update: now + expiry,
        };
        model::put(s, &format!("crl/{}", issuer.id), &entry).await?;
        Ok(entry)
    }

    /// The stored CRL, built on first use. A standby cannot store it: it
    /// builds one for this answer only (signed, current) and leaves storing
    /// to the active node.
    pub(crate) async fn current_crl(
        &self,
        s: &dyn Storage,
        issuer: &IssuerEntry,
    ) -> Result<CrlEntry, LogicalError> {
        if let Some(e) = model::get::<CrlEntry>(s, &format!("crl/{}", issuer.id)).await? {
            return Ok(e);
        }
        let _g = self.ca_lock.lock().await;
        match self.rebuild_crl(s, issuer).await {
            Err(LogicalError::ReadOnly) => Err(LogicalError::ReadOnly),
            other => other,
        }
    }

    async fn revoke(&self, c: Ctx<'_>) -> HandlerResult {
        let serial = requested_serial(&c.data)?;
        let entry: CertEntry = model::get(c.storage, &format!("certs/{serial}"))
            .await?
            .ok_or_else(|| {
                LogicalError::invalid(format!(
                    "certificate with serial {serial} not found (certificates issued with no_store cannot be revoked by serial)"
                ))
            })?;
        let _g = self.ca_lock.lock().await;
        let key = format!("revoked/{serial}");
        let rev = match model::get::<Revocation>(c.storage, &key).await? {
            Some(r) => r,
            None => {
                let r = Revocation {
                    serial_number: serial.clone(),
                    issuer_id: entry.issuer_id.clone(),
                    revocation_time: chrono::Utc::now().timestamp(),
                    not_after: entry.not_after,
                };
                model::put(c.storage, &key, &r).await?;
                if let Some(issuer) =
                    model::get::<IssuerEntry>(c.storage, &format!("issuer/{}", entry.issuer_id))
                        .await?
                {
                    self.rebuild_crl(c.storage, &issuer).await?;
                }
                r
            }
        };
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
        let key = rcgen::KeyPair::from_pem(&key_pem)
            .map_err(|_| LogicalError::invalid("private_key is not a PKCS#8 PEM private key"))?;
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

    async fn crl(&self, c: Ctx<'_>) -> HandlerResult {
        let issuer = model::resolve_issuer(c.storage, "default").await?;
        let crl = self.current_crl(c.storage, &issuer).await?;
        Ok(Some(if c.data.str_or("pem", "")?.is_empty() {
            raw("application/pkix-crl", crl.der)
        } else {
            raw(
                "application/x-pem-file",
                format!("{}\n", crypto::der_to_pem(&crl.der, "X509 CRL")).into_bytes(),
            )
        }))
    }

    async fn rotate_crl(&self, c: Ctx<'_>) -> HandlerResult {
        let _g = self.ca_lock.lock().await;
        for id in c.storage.list("issuer/").await? {
            if let Some(i) = model::get::<IssuerEntry>(c.storage, &format!("issuer/{id}")).await? {
                self.rebuild_crl(c.storage, &i).await?;
            }
        }
        let mut data = Map::new();
        data.insert("success".into(), Value::from(true));
        Ok(Some(Response::data(data)))
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
        Path::new("crl(?P<pem>/pem)?")
            .field(Field::new("pem", FieldType::String, "/pem for PEM."))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.crl(c)))
            .help("The default issuer's CRL, DER (or PEM)."),
        Path::new("crl/rotate")
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.rotate_crl(c)))
            .help("Rebuild and re-sign every issuer's CRL now."),
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
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_urls(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_urls(c)))
            .help("URLs put into issued certificates (AIA, CRL distribution points, OCSP)."),
    ]
}
