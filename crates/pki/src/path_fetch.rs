//! Reading certificates: `cert/:serial` (and `/raw`, `/raw/pem`), `certs`,
//! `ca`, `ca/pem`, `ca_chain`, `cert/ca`, `cert/ca_chain`, `issuers`,
//! `issuer/:ref/{json,pem,der}`. Unauthenticated where Vault's are, and
//! answered from local state.

use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::crypto;
use crate::model::raw;
use crate::model::{self, CertEntry, IssuerEntry, Revocation};

/// The issuer's certificate followed by its chain, PEM.
fn chain_pem(i: &IssuerEntry) -> String {
    let mut all = vec![i.certificate.trim().to_string()];
    all.extend(i.ca_chain.iter().map(|c| c.trim().to_string()));
    all.join("\n") + "\n"
}

impl Pki {
    async fn read_cert(&self, c: Ctx<'_>) -> HandlerResult {
        let serial = crypto::normalize_serial(&c.data.str_or("serial", "")?);
        let suffix = c.data.str_or("raw", "")?;
        let (pem, revocation) = match serial.as_str() {
            "ca" => (
                model::resolve_issuer(c.storage, "default")
                    .await?
                    .certificate,
                None,
            ),
            "ca_chain" => (
                chain_pem(&model::resolve_issuer(c.storage, "default").await?),
                None,
            ),
            "crl" | "delta-crl" => {
                let issuer = model::resolve_issuer(c.storage, "default").await?;
                let crl = self
                    .crl_der(c.storage, &issuer, serial == "delta-crl")
                    .await?;
                let pem = crypto::der_to_pem(&crl, "X509 CRL");
                (pem, None)
            }
            s => {
                let Some(e) = model::get::<CertEntry>(c.storage, &format!("certs/{s}")).await?
                else {
                    // A CA's own serial reads as the CA.
                    for k in c.storage.list("issuer/").await? {
                        if let Some(i) =
                            model::get::<IssuerEntry>(c.storage, &format!("issuer/{k}")).await?
                        {
                            if i.serial_number == s {
                                return Ok(Some(cert_response(&i.certificate, None, &suffix)?));
                            }
                        }
                    }
                    return Ok(None);
                };
                let rev = model::get::<Revocation>(c.storage, &format!("revoked/{s}")).await?;
                (e.certificate, rev)
            }
        };
        Ok(Some(cert_response(&pem, revocation, &suffix)?))
    }

    async fn list_certs(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("certs/").await?;
        Ok((!keys.is_empty()).then(|| Response::list(keys)))
    }

    /// `LIST certs/revoked`: serials of revoked certificates.
    async fn list_revoked(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("revoked/").await?;
        Ok((!keys.is_empty()).then(|| Response::list(keys)))
    }

    async fn ca_der(&self, c: Ctx<'_>) -> HandlerResult {
        let i = model::resolve_issuer(c.storage, "default").await?;
        Ok(Some(raw(
            "application/pkix-cert",
            crypto::pem_to_der(&i.certificate)?,
        )))
    }

    async fn ca_pem(&self, c: Ctx<'_>) -> HandlerResult {
        let i = model::resolve_issuer(c.storage, "default").await?;
        Ok(Some(raw(
            "application/pem-certificate-chain",
            format!("{}\n", i.certificate.trim()).into_bytes(),
        )))
    }

    async fn ca_chain(&self, c: Ctx<'_>) -> HandlerResult {
        let i = model::resolve_issuer(c.storage, "default").await?;
        Ok(Some(raw(
            "application/pem-certificate-chain",
            chain_pem(&i).into_bytes(),
        )))
    }

    async fn list_issuers(&self, c: Ctx<'_>) -> HandlerResult {
        let ids = c.storage.list("issuer/").await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let cfg: model::IssuersConfig = model::get(c.storage, "config/issuers")
            .await?
            .unwrap_or_default();
        let mut info = Map::new();
        for id in &ids {
            if let Some(i) = model::get::<IssuerEntry>(c.storage, &format!("issuer/{id}")).await? {
                let mut m = Map::new();
                m.insert("issuer_name".into(), Value::from(i.name));
                m.insert("is_default".into(), Value::from(cfg.default == i.id));
                m.insert("key_id".into(), Value::from(i.key_id));
                m.insert("serial_number".into(), Value::from(i.serial_number));
                info.insert(id.clone(), Value::Object(m));
            }
        }
        let mut data = Map::new();
        data.insert("keys".into(), Value::from(ids));
        data.insert("key_info".into(), Value::Object(info));
        Ok(Some(Response::data(data)))
    }

    /// `issuer/:ref/(json|pem|der)`.
    async fn read_issuer_form(&self, c: Ctx<'_>) -> HandlerResult {
        let form = c.data.str_or("format", "")?;
        self.read_issuer(c, &form).await
    }

    async fn read_issuer(&self, c: Ctx<'_>, form: &str) -> HandlerResult {
        let i = model::resolve_issuer(c.storage, &c.data.str_or("issuer_ref", "default")?).await?;
        match form {
            "pem" => Ok(Some(raw(
                "application/pem-certificate-chain",
                format!("{}\n", i.certificate.trim()).into_bytes(),
            ))),
            "der" => Ok(Some(raw(
                "application/pkix-cert",
                crypto::pem_to_der(&i.certificate)?,
            ))),
            // The public JSON form carries the certificates only, as Vault's.
            "json" => {
                let mut chain = vec![Value::from(i.certificate.clone())];
                chain.extend(i.ca_chain.iter().cloned().map(Value::from));
                let mut data = Map::new();
                data.insert("issuer_id".into(), Value::from(i.id.clone()));
                data.insert("issuer_name".into(), Value::from(i.name.clone()));
                data.insert("certificate".into(), Value::from(i.certificate.clone()));
                data.insert("ca_chain".into(), Value::from(chain));
                Ok(Some(Response::data(data)))
            }
            _ => Ok(Some(Response::data(issuer_data(c.storage, &i).await?))),
        }
    }
}

/// `issuer/:ref` as JSON, Vault's fields.
pub(crate) async fn issuer_data(
    s: &dyn arca_sdk::Storage,
    i: &IssuerEntry,
) -> Result<Map<String, Value>, LogicalError> {
    let urls: model::UrlsConfig = model::get(s, "config/urls").await?.unwrap_or_default();
    let mut data = Map::new();
    data.insert("issuer_id".into(), Value::from(i.id.clone()));
    data.insert("issuer_name".into(), Value::from(i.name.clone()));
    data.insert("key_id".into(), Value::from(i.key_id.clone()));
    data.insert("certificate".into(), Value::from(i.certificate.clone()));
    let mut chain = vec![Value::from(i.certificate.clone())];
    chain.extend(i.ca_chain.iter().cloned().map(Value::from));
    data.insert("ca_chain".into(), Value::from(chain));
    data.insert("serial_number".into(), Value::from(i.serial_number.clone()));
    data.insert(
        "leaf_not_after_behavior".into(),
        Value::from(i.leaf_not_after_behavior.clone()),
    );
    data.insert("usage".into(), Value::from(i.usage.clone()));
    data.insert("manual_chain".into(), Value::from(i.manual_chain.clone()));
    data.insert("revoked".into(), Value::from(i.revocation_time > 0));
    if i.revocation_time > 0 {
        data.insert("revocation_time".into(), Value::from(i.revocation_time));
        data.insert(
            "revocation_time_rfc3339".into(),
            Value::from(
                chrono::DateTime::from_timestamp(i.revocation_time, 0)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default(),
            ),
        );
    }
    data.insert(
        "issuing_certificates".into(),
        Value::from(urls.issuing_certificates),
    );
    data.insert(
        "crl_distribution_points".into(),
        Value::from(urls.crl_distribution_points),
    );
    data.insert("ocsp_servers".into(), Value::from(urls.ocsp_servers));
    Ok(data)
}

fn cert_response(
    pem: &str,
    rev: Option<Revocation>,
    suffix: &str,
) -> Result<Response, LogicalError> {
    match suffix {
        "/raw" => Ok(raw(
            "application/pkix-cert",
            crypto::pem_to_der(pem).or_else(|_| {
                // A CRL read through cert/crl/raw.
                Ok::<_, LogicalError>(pem.as_bytes().to_vec())
            })?,
        )),
        "/raw/pem" => Ok(raw(
            "application/pem-certificate-chain",
            format!("{}\n", pem.trim()).into_bytes(),
        )),
        _ => {
            let mut data = Map::new();
            data.insert(
                "certificate".into(),
                Value::from(format!("{}\n", pem.trim())),
            );
            let (t, t3339) = match &rev {
                Some(r) => (
                    r.revocation_time,
                    chrono::DateTime::from_timestamp(r.revocation_time, 0)
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_default(),
                ),
                None => (0, String::new()),
            };
            data.insert("revocation_time".into(), Value::from(t));
            data.insert("revocation_time_rfc3339".into(), Value::from(t3339));
            if let Some(r) = rev {
                data.insert("issuer_id".into(), Value::from(r.issuer_id));
            }
            Ok(Response::data(data))
        }
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new(
            r"cert/(?P<serial>[0-9A-Fa-f:_-]+|ca|ca_chain|crl|delta-crl)(?P<raw>/raw(/pem)?)?",
        )
        .field(Field::new(
            "serial",
            FieldType::String,
            "Serial (aa:bb:..), ca, ca_chain or crl.",
        ))
        .field(Field::new(
            "raw",
            FieldType::String,
            "/raw (DER) or /raw/pem.",
        ))
        .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_cert(c)))
        .help("A certificate by serial (with its revocation time), or the CA, chain or CRL."),
        Path::new("certs/revoked/?")
            .op(Operation::List, |b: &Pki, c| Box::pin(b.list_revoked(c)))
            .help("Serials of revoked certificates."),
        Path::new("certs/?")
            .op(Operation::List, |b: &Pki, c| Box::pin(b.list_certs(c)))
            .help("Serials of stored certificates."),
        Path::new("ca")
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.ca_der(c)))
            .help("The default issuer's certificate, DER."),
        Path::new("ca/pem")
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.ca_pem(c)))
            .help("The default issuer's certificate, PEM."),
        Path::new("ca_chain")
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.ca_chain(c)))
            .help("The default issuer's certificate and its chain, PEM."),
        Path::new("issuers/?")
            .op(Operation::List, |b: &Pki, c| Box::pin(b.list_issuers(c)))
            .help("The issuers of this mount."),
        // The public forms are read-only: they are served without a token.
        Path::new(r"issuer/(?P<issuer_ref>[\w-]+)/(?P<format>json|pem|der)")
            .field(Field::new(
                "issuer_ref",
                FieldType::String,
                "An issuer id, name, or default.",
            ))
            .field(Field::new("format", FieldType::String, "json, pem or der."))
            .op(Operation::Read, |b: &Pki, c| {
                Box::pin(b.read_issuer_form(c))
            })
            .help("One issuer's certificate and chain: JSON, PEM or DER (no token needed)."),
        Path::new(r"issuer/(?P<issuer_ref>[\w-]+)")
            .field(Field::new(
                "issuer_ref",
                FieldType::String,
                "An issuer id, name, or default.",
            ))
            .field(Field::new("issuer_name", FieldType::String, "New name."))
            .field(Field::new(
                "leaf_not_after_behavior",
                FieldType::String,
                "err (default), truncate or permit.",
            ))
            .field(Field::new(
                "usage",
                FieldType::CommaStringSlice,
                "read-only, issuing-certificates, crl-signing, ocsp-signing.",
            ))
            .field(Field::new(
                "manual_chain",
                FieldType::CommaStringSlice,
                "Issuer refs making up this issuer's chain.",
            ))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_issuer(c, "")))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.update_issuer(c)))
            .op(Operation::Patch, |b: &Pki, c| Box::pin(b.update_issuer(c)))
            .op(Operation::Delete, |b: &Pki, c| Box::pin(b.delete_issuer(c)))
            .help("One issuer: read, update its settings, or delete it."),
    ]
}
