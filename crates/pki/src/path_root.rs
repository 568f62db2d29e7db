//! `root/generate/:type` (internal, exported) and `DELETE root`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
    SerialNumber,
};
use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::crypto::{self, KeySpec};
use crate::model::{self, IssuerEntry, IssuersConfig, KeyEntry};

/// Where subject attributes (O, OU, C, L, ST) come from: a request or a role.
pub(crate) trait SubjectSource {
    fn values(&self, field: &str) -> Vec<String>;
}

impl SubjectSource for arca_sdk::FieldData {
    fn values(&self, field: &str) -> Vec<String> {
        self.get_list(field).ok().flatten().unwrap_or_default()
    }
}

pub(crate) fn subject(
    src: &dyn SubjectSource,
    cn: &str,
) -> Result<DistinguishedName, LogicalError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for (field, ty) in [
        ("organization", DnType::OrganizationName),
        ("ou", DnType::OrganizationalUnitName),
        ("country", DnType::CountryName),
        ("locality", DnType::LocalityName),
        ("province", DnType::StateOrProvinceName),
    ] {
        if let Some(first) = src.values(field).into_iter().find(|s| !s.is_empty()) {
            dn.push(ty, first);
        }
    }
    Ok(dn)
}

pub(crate) fn subject_fields() -> Vec<Field> {
    vec![
        Field::new(
            "organization",
            FieldType::CommaStringSlice,
            "O (Organization) values.",
        ),
        Field::new(
            "ou",
            FieldType::CommaStringSlice,
            "OU (OrganizationalUnit) values.",
        ),
        Field::new(
            "country",
            FieldType::CommaStringSlice,
            "C (Country) values.",
        ),
        Field::new(
            "locality",
            FieldType::CommaStringSlice,
            "L (Locality) values.",
        ),
        Field::new(
            "province",
            FieldType::CommaStringSlice,
            "ST (Province) values.",
        ),
    ]
}

fn time_at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl Pki {
    async fn generate_root(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let req = GenerateRequest::parse(d)?;
        let key_format = crypto::key_format(d)?;
        let (exported, cn) = (req.exported, req.cn.clone());
        // Vault: the requested ttl, else the mount's default lease TTL,
        // capped at the mount's max lease TTL with a warning (tune the mount
        // with -max-lease-ttl for a longer-lived root).
        let (ttl, ttl_warning) = arca_sdk::clamp_ttl(
            d.get_duration("ttl")?.unwrap_or(0),
            self.system.default_lease_ttl(),
            self.system.max_lease_ttl(),
            arca_sdk::system::MOUNT_MAX_TTL,
        );
        let _g = self.ca_lock.lock().await;
        let (key, key_entry, new_key) = generation_key(c.storage, d, &req).await?;
        let spec = KeySpec::parse(&key_entry.key_type, key_entry.key_bits as i64)?;
        let name = d.str_or("issuer_name", "")?;
        crate::path_manage::check_issuer_name(c.storage, &name, "").await?;
        let now = self.system.now();
        let mut p = CertificateParams::default();
        p.distinguished_name = subject(d, &cn)?;
        p.is_ca = match d.get_i64("max_path_length")? {
            Some(n) if n >= 0 => IsCa::Ca(BasicConstraints::Constrained(n as u8)),
            _ => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = time_at(now - 30);
        model::apply_urls(c.storage, &mut p).await?;
        p.not_after = time_at(now + ttl as i64);
        let serial = crypto::new_serial();
        p.serial_number = Some(SerialNumber::from(serial.clone()));
        p.use_authority_key_identifier_extension = false;
        let cert = p.self_signed(&key).map_err(|e| {
            LogicalError::internal(format!("cannot create the root certificate: {e}"))
        })?;
        let pem = cert.pem().trim().to_string();
        let key_id = key_entry.id.clone();
        let issuer_id = uuid_like();
        let entry = IssuerEntry {
            id: issuer_id.clone(),
            name,
            key_id: key_id.clone(),
            certificate: pem.clone(),
            ca_chain: vec![],
            serial_number: crypto::serial_string(&serial),
            not_after: now + ttl as i64,
            leaf_not_after_behavior: "err".into(),
            usage: model::default_usage(),
            manual_chain: vec![],
            revocation_time: 0,
        };
        if new_key {
            model::put(c.storage, &format!("key/{key_id}"), &key_entry).await?;
        }
        model::put(c.storage, &format!("issuer/{issuer_id}"), &entry).await?;
        self.rotate_crl_of(c.storage, &issuer_id, false).await?;
        let cfg: IssuersConfig = model::get(c.storage, "config/issuers")
            .await?
            .unwrap_or_default();
        let mut warnings: Vec<String> = ttl_warning.into_iter().collect();
        if cfg.default.is_empty() {
            model::put(
                c.storage,
                "config/issuers",
                &IssuersConfig {
                    default: issuer_id.clone(),
                },
            )
            .await?;
        } else {
            warnings.push(
                "a default issuer already exists; this new issuer is not the default (set it with config/issuers)"
                    .to_string(),
            );
        }
        let mut data = Map::new();
        data.insert("certificate".into(), Value::from(pem.clone()));
        data.insert("issuing_ca".into(), Value::from(pem));
        data.insert("serial_number".into(), Value::from(entry.serial_number));
        data.insert("expiration".into(), Value::from(entry.not_after));
        data.insert("issuer_id".into(), Value::from(issuer_id));
        data.insert("issuer_name".into(), Value::from(entry.name));
        data.insert("key_id".into(), Value::from(key_id));
        data.insert("key_name".into(), Value::from(key_entry.name));
        data.insert("key_type".into(), Value::from(spec.type_name()));
        if exported {
            data.insert(
                "private_key".into(),
                Value::from(crypto::output_key_pem(&key_entry.private_key, &key_format)?),
            );
            data.insert("private_key_type".into(), Value::from(spec.type_name()));
        }
        let mut r = Response::data(data);
        r.warnings = warnings;
        Ok(Some(r))
    }

    async fn delete_root(&self, c: Ctx<'_>) -> HandlerResult {
        let _g = self.ca_lock.lock().await;
        // Revocation logs go with their issuers; `revoked/` stays (Vault
        // keeps the certificate store too).
        let mut logs = vec![];
        for id in c.storage.list("revlog/").await? {
            let id = id.trim_end_matches('/').to_string();
            for seq in c.storage.list(&format!("revlog/{id}/")).await? {
                logs.push(format!("revlog/{id}/{seq}"));
            }
        }
        for k in logs {
            c.storage.delete(&k).await?;
        }
        for prefix in ["issuer/", "key/", "crlstate/"] {
            for k in c.storage.list(prefix).await? {
                c.storage.delete(&format!("{prefix}{k}")).await?;
            }
        }
        c.storage.delete("config/issuers").await?;
        Ok(None)
    }
}

/// What `root/generate/:type` and `intermediate/generate/:type` share:
/// the type (internal or exported), the common name and the key to make.
pub(crate) struct GenerateRequest {
    pub exported: bool,
    /// `existing`: sign with the stored key `key_ref` names.
    pub existing: bool,
    pub cn: String,
    pub spec: KeySpec,
}

/// The key a generation uses: a new one, or (`existing`) the stored key
/// `key_ref` names. `true`: new, still to be stored.
pub(crate) async fn generation_key(
    s: &dyn arca_sdk::Storage,
    d: &arca_sdk::FieldData,
    req: &GenerateRequest,
) -> Result<(rcgen::KeyPair, KeyEntry, bool), LogicalError> {
    if req.existing {
        let r = d
            .get_str("key_ref")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                LogicalError::invalid("type \"existing\" needs key_ref (a key id or name)")
            })?;
        let entry = model::resolve_key(s, &r).await?;
        let spec = KeySpec::parse(&entry.key_type, entry.key_bits as i64)?;
        let key = crypto::load(spec, &entry.private_key)?;
        return Ok((key, entry, false));
    }
    let key = crypto::generate(req.spec)?;
    let name = d.str_or("key_name", "")?;
    crate::path_manage::check_key_name(s, &name, "").await?;
    let entry = KeyEntry {
        id: uuid_like(),
        name,
        key_type: req.spec.type_name().into(),
        key_bits: req.spec.bits(),
        private_key: key.serialize_pem(),
    };
    Ok((key, entry, true))
}

impl GenerateRequest {
    pub(crate) fn parse(d: &arca_sdk::FieldData) -> Result<Self, LogicalError> {
        let (exported, existing) = match d.str_or("type", "")?.as_str() {
            "internal" => (false, false),
            "exported" => (true, false),
            "existing" => (false, true),
            "kms" => return Err(LogicalError::invalid(
                "type \"kms\" (managed keys) is not supported; use internal, exported or existing",
            )),
            other => {
                return Err(LogicalError::invalid(format!(
                    "invalid type {other:?}: use internal, exported or existing"
                )))
            }
        };
        let cn = d
            .get_str("common_name")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LogicalError::invalid("the 'common_name' field is required"))?;
        let spec = KeySpec::parse(
            &d.str_or("key_type", "rsa")?,
            d.get_i64("key_bits")?.unwrap_or(0),
        )?;
        Ok(GenerateRequest {
            exported,
            existing,
            cn,
            spec,
        })
    }
}

/// The key fields of `root/generate/:type` and
/// `intermediate/generate/:type` (and their `issuers/generate/` forms).
pub(crate) fn key_generation_fields() -> Vec<Field> {
    vec![
        Field::new(
            "type",
            FieldType::String,
            "internal, exported (returns the key once) or existing (key_ref).",
        ),
        Field::new(
            "key_ref",
            FieldType::String,
            "With type existing: the key to use (id or name).",
        ),
        Field::new(
            "key_type",
            FieldType::String,
            "rsa (default), ec or ed25519.",
        ),
        Field::new(
            "key_bits",
            FieldType::Int,
            "Key size: rsa 2048/3072/4096, ec 256/384/521.",
        ),
        Field::new("key_name", FieldType::String, "A name for the new key."),
        Field::new(
            "private_key_format",
            FieldType::String,
            "exported: der or pem (default; PKCS#1/SEC1) or pkcs8.",
        ),
    ]
}

/// A random id in UUID shape (issuer and key ids, as Vault shows them).
pub(crate) fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    let mut p = Path::new("(?:root/generate|issuers/generate/root)/(?P<type>[a-z]+)")
        .field(Field::new(
            "common_name",
            FieldType::String,
            "The CA's common name.",
        ))
        .field(Field::new(
            "ttl",
            FieldType::Duration,
            "Lifetime of the CA certificate.",
        ))
        .field(Field::new(
            "issuer_name",
            FieldType::String,
            "A name for the new issuer.",
        ))
        .field(Field::new(
            "max_path_length",
            FieldType::Int,
            "Path length constraint; -1 for none.",
        ));
    for f in key_generation_fields() {
        p = p.field(f);
    }
    for f in subject_fields() {
        p = p.field(f);
    }
    vec![
        p.op(Operation::Update, |b: &Pki, c| Box::pin(b.generate_root(c)))
            .help("Generate a self-signed root CA, the default issuer if there is none."),
        Path::new("root")
            .op(Operation::Delete, |b: &Pki, c| Box::pin(b.delete_root(c)))
            .help("Delete every issuer and key of this mount (issued certificates stay)."),
    ]
}
