//! The intermediate CA flow of Vault's PKI documentation:
//! `intermediate/generate/:type` (a key and a CSR), `root/sign-intermediate`
//! (an issuer signs a CA certificate for a CSR) and
//! `intermediate/set-signed` (the signed certificate becomes an issuer,
//! matched to the key that made the CSR).

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use serde_json::{Map, Value};
use x509_parser::prelude::*;

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::crypto::{self, KeySpec};
use crate::model::{self, CertEntry, IssuerEntry, IssuersConfig, KeyEntry};
use crate::path_root::{
    generation_key, key_generation_fields, subject, subject_fields, uuid_like, GenerateRequest,
};

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::internal(e.to_string())
}

/// Splits a PEM bundle into its certificates (PEM text each).
fn split_pem(bundle: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    for line in bundle.lines() {
        let l = line.trim();
        if l.starts_with("-----BEGIN CERTIFICATE") {
            cur.clear();
        }
        cur.push_str(l);
        cur.push('\n');
        if l.starts_with("-----END CERTIFICATE") {
            out.push(cur.trim().to_string());
            cur.clear();
        }
    }
    out
}

impl Pki {
    async fn generate_intermediate(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let req = GenerateRequest::parse(d)?;
        let key_format = crypto::key_format(d)?;
        let (exported, cn) = (req.exported, req.cn.clone());
        let (key, entry, new_key) = generation_key(c.storage, d, &req).await?;
        let spec = KeySpec::parse(&entry.key_type, entry.key_bits as i64)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject(d, &cn)?;
        let csr = p
            .serialize_request(&key)
            .and_then(|r| r.pem())
            .map_err(|e| internal(format!("cannot make the CSR: {e}")))?;
        let key_id = entry.id.clone();
        if new_key {
            model::put(c.storage, &format!("key/{key_id}"), &entry).await?;
        }
        let mut data = Map::new();
        data.insert("csr".into(), Value::from(csr.trim()));
        data.insert("key_id".into(), Value::from(key_id));
        data.insert("key_type".into(), Value::from(spec.type_name()));
        if exported {
            data.insert(
                "private_key".into(),
                Value::from(crypto::output_key_pem(&entry.private_key, &key_format)?),
            );
            data.insert("private_key_type".into(), Value::from(spec.type_name()));
        }
        Ok(Some(Response::data(data)))
    }

    /// `root/sign-self-issued`: re-issue a self-issued CA certificate
    /// (subject = issuer, e.g. another root) under one of our issuers, for
    /// cross-signing and CA rollover.
    async fn sign_self_issued(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let pem = d
            .get_str("certificate")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| LogicalError::invalid("the certificate field is required (PEM)"))?;
        let der = crypto::pem_to_der(&pem)?;
        let (_, x) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| LogicalError::invalid(format!("not a certificate: {e}")))?;
        if x.subject().as_raw() != x.issuer().as_raw() {
            return Err(LogicalError::invalid(
                "the given certificate is not self-issued (its subject and issuer differ)",
            ));
        }
        if !x.is_ca() {
            return Err(LogicalError::invalid(
                "the given certificate is not a CA certificate",
            ));
        }
        let issuer = model::resolve_issuer(c.storage, &d.str_or("issuer_ref", "default")?).await?;
        let key = model::issuer_key(c.storage, &issuer).await?;
        if d.bool_or("require_matching_certificate_algorithms", false)? {
            let ours = crate::x509::signature_algorithm(&key)?;
            if x.signature_algorithm.algorithm.to_id_string() != ours.oid.to_string() {
                return Err(LogicalError::invalid(
                    "the certificate's signature algorithm differs from the issuer's",
                ));
            }
        }
        let facts = crate::x509::IssuerFacts::from_der(&crypto::pem_to_der(&issuer.certificate)?)?;
        let out = crate::x509::resign(&der, &facts, &key)?;
        let mut data = Map::new();
        data.insert(
            "certificate".into(),
            Value::from(crypto::der_to_pem(&out, "CERTIFICATE")),
        );
        data.insert("issuing_ca".into(), Value::from(issuer.certificate.trim()));
        Ok(Some(Response::data(data)))
    }

    async fn sign_intermediate(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let pem = d
            .get_str("csr")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| LogicalError::invalid("the csr field is required (PEM)"))?;
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&pem).map_err(|e| {
            LogicalError::invalid(format!("csr is not a valid certificate request: {e}"))
        })?;
        let issuer = model::resolve_issuer(c.storage, &d.str_or("issuer_ref", "default")?).await?;
        let mut p = CertificateParams::default();
        let cn = d.str_or("common_name", "")?;
        p.distinguished_name = if cn.is_empty() {
            csr.params.distinguished_name.clone()
        } else {
            subject(d, &cn)?
        };
        p.is_ca = match d.get_i64("max_path_length")? {
            Some(n) if n >= 0 => IsCa::Ca(BasicConstraints::Constrained(n as u8)),
            _ => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = self.system.now();
        // Vault: the requested ttl, else the mount's default lease TTL,
        // capped at the mount's max lease TTL with a warning.
        let (ttl, ttl_warning) = arca_sdk::clamp_ttl(
            d.get_duration("ttl")?.unwrap_or(0),
            self.system.default_lease_ttl(),
            self.system.max_lease_ttl(),
            arca_sdk::system::MOUNT_MAX_TTL,
        );
        let mut warnings: Vec<String> = ttl_warning.into_iter().collect();
        let mut not_after = now + ttl as i64;
        if not_after > issuer.not_after {
            warnings.push(
                "the intermediate would outlive its issuer; its NotAfter is the issuer's"
                    .to_string(),
            );
            not_after = issuer.not_after;
        }
        p.not_before = ::time::OffsetDateTime::from_unix_timestamp(now - 30).map_err(internal)?;
        model::apply_urls(c.storage, &mut p).await?;
        p.not_after = ::time::OffsetDateTime::from_unix_timestamp(not_after).map_err(internal)?;
        let serial = crypto::new_serial();
        p.serial_number = Some(SerialNumber::from(serial.clone()));
        p.use_authority_key_identifier_extension = true;
        let ca_key = model::issuer_key(c.storage, &issuer).await?;
        let ca = model::signer(&issuer, &ca_key)?;
        let cert = p
            .signed_by(&csr.public_key, &ca)
            .map_err(|e| LogicalError::invalid(format!("cannot sign the intermediate: {e}")))?;
        let cert_pem = cert.pem().trim().to_string();
        let serial_s = crypto::serial_string(&serial);
        model::put(
            c.storage,
            &format!("certs/{serial_s}"),
            &CertEntry {
                serial_number: serial_s.clone(),
                certificate: cert_pem.clone(),
                issuer_id: issuer.id.clone(),
                not_after,
            },
        )
        .await?;
        let mut chain = vec![Value::from(issuer.certificate.clone())];
        chain.extend(issuer.ca_chain.iter().cloned().map(Value::from));
        let certificate = if d.str_or("format", "pem")? == "pem_bundle" {
            format!("{cert_pem}\n{}", issuer.certificate.trim())
        } else {
            cert_pem
        };
        let mut data = Map::new();
        data.insert("certificate".into(), Value::from(certificate));
        data.insert("issuing_ca".into(), Value::from(issuer.certificate.clone()));
        data.insert("ca_chain".into(), Value::from(chain));
        data.insert("serial_number".into(), Value::from(serial_s));
        data.insert("expiration".into(), Value::from(not_after));
        let mut r = Response::data(data);
        r.warnings = warnings;
        Ok(Some(r))
    }

    async fn set_signed(&self, c: Ctx<'_>) -> HandlerResult {
        let bundle = c
            .data
            .get_str("certificate")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| LogicalError::invalid("the certificate field is required (PEM)"))?;
        let certs = split_pem(&bundle);
        let first = certs
            .first()
            .ok_or_else(|| LogicalError::invalid("no PEM certificate in the certificate field"))?;
        let der = crypto::pem_to_der(first)?;
        let (_, x) = X509Certificate::from_der(&der)
            .map_err(|e| LogicalError::invalid(format!("not a certificate: {e}")))?;
        if !x.is_ca() {
            return Err(LogicalError::invalid(
                "the certificate is not a CA certificate",
            ));
        }
        let spki = x.public_key().raw.to_vec();
        // The key that made the CSR: the one whose public key the certificate carries.
        let _g = self.ca_lock.lock().await;
        let mut key_id = None;
        for id in c.storage.list("key/").await? {
            let Some(k) = model::get::<KeyEntry>(c.storage, &format!("key/{id}")).await? else {
                continue;
            };
            let spec = KeySpec::parse(&k.key_type, k.key_bits as i64)?;
            if crypto::load(spec, &k.private_key)?.subject_public_key_info() == spki {
                key_id = Some(k.id);
                break;
            }
        }
        let key_id = key_id.ok_or_else(|| {
            LogicalError::invalid(
                "the certificate's key is not one of this mount's keys: import the certificate issued for this mount's intermediate/generate CSR",
            )
        })?;
        let issuer_id = uuid_like();
        let entry = IssuerEntry {
            id: issuer_id.clone(),
            name: String::new(),
            key_id: key_id.clone(),
            certificate: first.clone(),
            ca_chain: certs[1..].to_vec(),
            serial_number: crypto::serial_string(x.raw_serial()),
            not_after: x.validity().not_after.timestamp(),
            leaf_not_after_behavior: "err".into(),
            usage: model::default_usage(),
            manual_chain: vec![],
            revocation_time: 0,
        };
        model::put(c.storage, &format!("issuer/{issuer_id}"), &entry).await?;
        self.rotate_crl_of(c.storage, &entry.id, false).await?;
        let cfg: IssuersConfig = model::get(c.storage, "config/issuers")
            .await?
            .unwrap_or_default();
        if cfg.default.is_empty() {
            model::put(
                c.storage,
                "config/issuers",
                &IssuersConfig {
                    default: issuer_id.clone(),
                },
            )
            .await?;
        }
        let mut mapping = Map::new();
        mapping.insert(issuer_id.clone(), Value::from(key_id));
        let mut data = Map::new();
        data.insert("imported_issuers".into(), Value::from(vec![issuer_id]));
        data.insert("imported_keys".into(), Value::Array(vec![]));
        data.insert("mapping".into(), Value::Object(mapping));
        Ok(Some(Response::data(data)))
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    let mut generate =
        Path::new("(?:intermediate/generate|issuers/generate/intermediate)/(?P<type>[a-z]+)")
            .field(Field::new(
                "common_name",
                FieldType::String,
                "The intermediate's common name.",
            ));
    for f in key_generation_fields() {
        generate = generate.field(f);
    }
    for f in subject_fields() {
        generate = generate.field(f);
    }
    let mut sign = Path::new("(?:root|issuer/(?P<issuer_ref>[^/]+))/sign-intermediate")
        .field(Field::new(
            "csr",
            FieldType::String,
            "The intermediate's CSR, PEM.",
        ))
        .field(Field::new(
            "common_name",
            FieldType::String,
            "CN (default: the CSR's).",
        ))
        .field(Field::new(
            "ttl",
            FieldType::Duration,
            "Lifetime (default 43800h).",
        ))
        .field(Field::new(
            "format",
            FieldType::String,
            "pem (default) or pem_bundle.",
        ))
        .field(Field::new(
            "issuer_ref",
            FieldType::String,
            "The signing issuer (default).",
        ))
        .field(Field::new(
            "max_path_length",
            FieldType::Int,
            "Path length constraint.",
        ));
    for f in subject_fields() {
        sign = sign.field(f);
    }
    vec![
        generate
            .op(Operation::Update, |b: &Pki, c| {
                Box::pin(b.generate_intermediate(c))
            })
            .help("Generate an intermediate CA key and its CSR."),
        sign.op(Operation::Update, |b: &Pki, c| {
            Box::pin(b.sign_intermediate(c))
        })
        .help("Sign an intermediate CA's CSR with an issuer of this mount."),
        Path::new("(?:root|issuer/(?P<issuer_ref>[^/]+))/sign-self-issued")
            .field(Field::new(
                "issuer_ref",
                FieldType::String,
                "The signing issuer (default).",
            ))
            .field(Field::new(
                "certificate",
                FieldType::String,
                "The self-issued CA certificate, PEM.",
            ))
            .field(Field::new(
                "require_matching_certificate_algorithms",
                FieldType::Bool,
                "Refuse if its signature algorithm differs from the issuer's.",
            ))
            .op(Operation::Update, |b: &Pki, c| {
                Box::pin(b.sign_self_issued(c))
            })
            .help("Re-issue a self-issued CA certificate under an issuer of this mount (cross-signing)."),
        Path::new("intermediate/set-signed")
            .field(Field::new(
                "certificate",
                FieldType::String,
                "The signed intermediate certificate, PEM (optionally followed by its chain).",
            ))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.set_signed(c)))
            .help("Import the signed intermediate certificate as an issuer."),
    ]
}
