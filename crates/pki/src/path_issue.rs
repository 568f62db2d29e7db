//! `issue/:role`: a new key and a certificate for it, signed by the role's
//! issuer, with the names the request asks for if the role allows them.

use std::net::IpAddr;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType, SerialNumber};
use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::crypto::{self, KeySpec};
use crate::model::{self, CertEntry};
use crate::role::Role;

fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name.to_lowercase().trim_end_matches("usage") {
        "digitalsignature" => KeyUsagePurpose::DigitalSignature,
        "contentcommitment" | "nonrepudiation" => KeyUsagePurpose::ContentCommitment,
        "keyencipherment" => KeyUsagePurpose::KeyEncipherment,
        "dataencipherment" => KeyUsagePurpose::DataEncipherment,
        "keyagreement" => KeyUsagePurpose::KeyAgreement,
        "certsign" | "keycertsign" => KeyUsagePurpose::KeyCertSign,
        "crlsign" => KeyUsagePurpose::CrlSign,
        "encipheronly" => KeyUsagePurpose::EncipherOnly,
        "decipheronly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn ext_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name.to_lowercase().as_str() {
        "serverauth" => ExtendedKeyUsagePurpose::ServerAuth,
        "clientauth" => ExtendedKeyUsagePurpose::ClientAuth,
        "codesigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "emailprotection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocspsigning" => ExtendedKeyUsagePurpose::OcspSigning,
        "any" | "anyextendedkeyusage" => ExtendedKeyUsagePurpose::Any,
        _ => return None,
    })
}

fn split_list(d: &arca_sdk::FieldData, name: &str) -> Result<Vec<String>, LogicalError> {
    Ok(d.get_list(name)?
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

impl Pki {
    async fn issue(&self, c: Ctx<'_>) -> HandlerResult {
        self.issue_or_sign(c, false).await
    }

    async fn sign(&self, c: Ctx<'_>) -> HandlerResult {
        self.issue_or_sign(c, true).await
    }

    /// `sign-verbatim[/:role]`: the CSR's subject and SANs as they are; a
    /// role, if named, only lends its lifetimes, usages and `no_store`.
    async fn sign_verbatim(&self, c: Ctx<'_>) -> HandlerResult {
        self.issue_or_sign_inner(c, true, true).await
    }

    /// `issue` makes a key; `sign` certifies the key of a CSR. Both apply
    /// the role to every name and to the lifetime.
    async fn issue_or_sign(&self, c: Ctx<'_>, sign: bool) -> HandlerResult {
        let _timer = arca_sdk::metrics::timer(
            "vault.secret.pki.issue",
            &[("operation", if sign { "sign" } else { "issue" })],
        );
        self.issue_or_sign_inner(c, sign, false).await
    }

    async fn issue_or_sign_inner(&self, c: Ctx<'_>, sign: bool, verbatim: bool) -> HandlerResult {
        // Only issue returns a private key (sign paths do not take the field).
        let key_format = if sign {
            String::new()
        } else {
            crypto::key_format(&c.data)?
        };
        let d = &c.data;
        let csr = if sign {
            let pem = d
                .get_str("csr")?
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| LogicalError::invalid("the csr field is required (PEM)"))?;
            Some(
                rcgen::CertificateSigningRequestParams::from_pem(&pem).map_err(|e| {
                    LogicalError::invalid(format!(
                        "csr is not a valid PEM certificate request: {e}"
                    ))
                })?,
            )
        } else {
            None
        };
        let role_name = d.str_or("role", "")?;
        let role: Role = if verbatim && role_name.is_empty() {
            Role::default()
        } else {
            model::get(c.storage, &format!("role/{role_name}"))
                .await?
                .ok_or_else(|| LogicalError::invalid(format!("unknown role: {role_name}")))?
        };
        // Verbatim signing checks no names: the role only lends lifetimes,
        // usages and no_store.
        let role = if verbatim {
            Role {
                allow_any_name: true,
                enforce_hostnames: false,
                allow_ip_sans: true,
                allowed_uri_sans: vec!["*".into()],
                use_csr_common_name: true,
                use_csr_sans: true,
                require_cn: false,
                ..role
            }
        } else {
            role
        };
        if role.key_type == "any" && !sign {
            return Err(LogicalError::invalid(
                "role key type \"any\" not allowed for issuing certificates, only signing",
            ));
        }
        let csr_pem = if sign && !verbatim {
            d.get_str("csr")?
        } else {
            None
        };
        if let Some(pem) = csr_pem {
            let key = crypto::csr_key(&pem)?;
            // A role's default key_bits depend on its type (rsa 2048, ec 256).
            let bits = match (role.key_type.as_str(), role.key_bits) {
                ("rsa", 0) => 2048,
                ("ec", 0) => 256,
                (_, b) => b,
            };
            crypto::check_role_key(&role.key_type, bits, key)?;
        }
        let spec = if sign {
            None
        } else {
            Some(KeySpec::parse(&role.key_type, role.key_bits)?)
        };

        // Names: the CN (unless excluded) and the DNS SANs must pass the role.
        // As in Vault: with `use_csr_common_name` the CSR's CN wins and the
        // request's is used only when the CSR has none; with `use_csr_sans`
        // the CSR's DNS and IP names replace `alt_names` and `ip_sans`.
        let mut cn = String::new();
        let mut csr_dns = vec![];
        let mut csr_ips = vec![];
        let csr_sans = csr.is_some() && role.use_csr_sans;
        if let Some(csr) = &csr {
            if role.use_csr_common_name {
                if let Some(v) = csr
                    .params
                    .distinguished_name
                    .get(&rcgen::DnType::CommonName)
                {
                    cn = dn_text(v);
                }
            }
            if role.use_csr_sans {
                for san in &csr.params.subject_alt_names {
                    match san {
                        SanType::DnsName(n) => csr_dns.push(n.as_str().to_string()),
                        SanType::IpAddress(ip) => csr_ips.push(ip.to_string()),
                        _ => {}
                    }
                }
            }
        }
        if cn.is_empty() {
            cn = d.str_or("common_name", "")?;
        }
        if cn.is_empty() && role.require_cn {
            return Err(LogicalError::invalid("the common_name field is required"));
        }
        let mut dns: Vec<String> = vec![];
        if !cn.is_empty() {
            role.check_name(&cn)?;
            if !d.bool_or("exclude_cn_from_sans", false)? && cn.parse::<IpAddr>().is_err() {
                dns.push(cn.clone());
            }
        }
        let api_dns = if csr_sans {
            vec![]
        } else {
            split_list(d, "alt_names")?
        };
        for n in api_dns.into_iter().chain(csr_dns) {
            role.check_name(&n)?;
            if !dns.contains(&n) {
                dns.push(n);
            }
        }
        let mut ips = vec![];
        let api_ips = if csr_sans {
            vec![]
        } else {
            split_list(d, "ip_sans")?
        };
        for ip in api_ips.into_iter().chain(csr_ips) {
            let ip = role.check_ip(&ip)?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let mut uris = vec![];
        for u in split_list(d, "uri_sans")? {
            let ok = role.allowed_uri_sans.iter().any(|p| {
                p == &u
                    || (p.contains('*')
                        && regex::Regex::new(&format!(
                            "^{}$",
                            regex::escape(p).replace("\\*", ".*")
                        ))
                        .map(|r| r.is_match(&u))
                        .unwrap_or(false))
            });
            if !ok {
                return Err(LogicalError::invalid(format!(
                    "URI Subject Alternative Name {u} not allowed by this role"
                )));
            }
            uris.push(u);
        }

        // Lifetime: requested, else the role's, else 768h; clamped to the
        // role's max_ttl (with a warning) and never past the issuer.
        // `issuer/:ref/issue/:role` names the issuer; else the role does.
        let issuer_ref = d
            .get_str("issuer_ref")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| role.issuer_ref.clone());
        let issuer = model::resolve_issuer(c.storage, &issuer_ref).await?;
        if issuer.revocation_time > 0 {
            return Err(LogicalError::invalid(format!(
                "issuer {} has been revoked and cannot issue certificates; use another issuer (config/issuers)",
                issuer.id
            )));
        }
        // Vault: requested, else the role's ttl, else the mount's default
        // lease TTL; capped (with a warning) at the role's max_ttl, else the
        // mount's max lease TTL.
        let default = if role.ttl > 0 {
            role.ttl
        } else {
            self.system.default_lease_ttl()
        };
        let (max, limit) = if role.max_ttl > 0 {
            (role.max_ttl, "the role's max_ttl")
        } else {
            (self.system.max_lease_ttl(), arca_sdk::system::MOUNT_MAX_TTL)
        };
        let (ttl, ttl_warning) =
            arca_sdk::clamp_ttl(d.get_duration("ttl")?.unwrap_or(0), default, max, limit);
        let mut warnings: Vec<String> = ttl_warning.into_iter().collect();
        let now = self.system.now();
        let mut not_after = now + ttl as i64;
        if not_after > issuer.not_after {
            warnings.push(
                "the certificate would outlive its issuer; its NotAfter is the issuer's".into(),
            );
            not_after = issuer.not_after;
        }

        let mut p = CertificateParams::default();
        p.distinguished_name = crate::path_root::subject(&RoleSubject(&role), &cn)
            .unwrap_or_else(|_| rcgen::DistinguishedName::new());
        if cn.is_empty() {
            p.distinguished_name = rcgen::DistinguishedName::new();
        }
        if let (true, Some(csr)) = (verbatim, &csr) {
            p.distinguished_name = csr.params.distinguished_name.clone();
        }
        for n in &dns {
            p.subject_alt_names.push(SanType::DnsName(
                n.clone()
                    .try_into()
                    .map_err(|_| LogicalError::invalid(format!("{n} is not a valid DNS name")))?,
            ));
        }
        for ip in ips {
            p.subject_alt_names.push(SanType::IpAddress(ip));
        }
        for u in uris {
            p.subject_alt_names.push(SanType::URI(
                u.clone()
                    .try_into()
                    .map_err(|_| LogicalError::invalid(format!("{u} is not a valid URI")))?,
            ));
        }
        p.key_usages = role.key_usage.iter().filter_map(|k| key_usage(k)).collect();
        if role.server_flag {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if role.client_flag {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        for e in &role.ext_key_usage {
            match ext_key_usage(e) {
                Some(u) if !p.extended_key_usages.contains(&u) => p.extended_key_usages.push(u),
                Some(_) => {}
                None => {
                    return Err(LogicalError::invalid(format!(
                        "unknown ext_key_usage {e:?} in role {role_name}"
                    )))
                }
            }
        }
        p.not_before =
            time::OffsetDateTime::from_unix_timestamp(now - role.not_before_duration as i64)
                .map_err(|e| LogicalError::internal(e.to_string()))?;
        model::apply_urls(c.storage, &mut p).await?;
        p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after)
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let serial = crypto::new_serial();
        p.serial_number = Some(SerialNumber::from(serial.clone()));
        p.use_authority_key_identifier_extension = true;

        let signer = self.cached_signer(c.storage, &issuer).await?;
        let ca = &signer.issuer;
        let (cert, key) = match (&csr, spec) {
            (Some(csr), _) => (p.signed_by(&csr.public_key, ca), None),
            (None, Some(spec)) => {
                let key = crypto::generate(spec)?;
                (p.signed_by(&key, ca), Some((key, spec)))
            }
            (None, None) => unreachable!("issue always has a key spec"),
        };
        let cert =
            cert.map_err(|e| LogicalError::invalid(format!("cannot issue the certificate: {e}")))?;
        let pem = cert.pem().trim().to_string();
        let serial_s = crypto::serial_string(&serial);
        if !role.no_store {
            model::put(
                c.storage,
                &format!("certs/{serial_s}"),
                &CertEntry {
                    serial_number: serial_s.clone(),
                    certificate: pem.clone(),
                    issuer_id: issuer.id.clone(),
                    not_after,
                },
            )
            .await?;
        }
        let mut chain = vec![Value::from(issuer.certificate.clone())];
        chain.extend(issuer.ca_chain.iter().cloned().map(Value::from));
        let mut data = Map::new();
        data.insert("certificate".into(), Value::from(pem));
        data.insert("issuing_ca".into(), Value::from(issuer.certificate.clone()));
        data.insert("ca_chain".into(), Value::from(chain));
        if let Some((key, spec)) = key {
            data.insert(
                "private_key".into(),
                Value::from(crypto::output_key_pem(&key.serialize_pem(), &key_format)?),
            );
            data.insert("private_key_type".into(), Value::from(spec.type_name()));
        }
        data.insert("serial_number".into(), Value::from(serial_s.clone()));
        data.insert("expiration".into(), Value::from(not_after));
        let mut r = Response::data(data);
        r.warnings = warnings;
        if role.generate_lease {
            // The lease lives as long as the certificate; revoking it (or
            // its token) revokes the certificate.
            let mut internal = Map::new();
            internal.insert("serial_number".into(), Value::from(serial_s));
            let left = (not_after - self.system.now()).max(1) as u64;
            let mut secret = arca_sdk::Secret::leased(crate::backend::SECRET_CERTS, left, internal);
            secret.max_ttl = left;
            r.secret = Some(secret);
        }
        Ok(Some(r))
    }
}

fn dn_text(v: &rcgen::DnValue) -> String {
    match v {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_string(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_string(),
        rcgen::DnValue::TeletexString(s) => s.as_str().to_string(),
        _ => String::new(),
    }
}

/// Lets the subject builder read a role's O/OU/C/L/ST like request fields.
struct RoleSubject<'a>(&'a Role);

impl crate::path_root::SubjectSource for RoleSubject<'_> {
    fn values(&self, field: &str) -> Vec<String> {
        match field {
            "organization" => self.0.organization.clone(),
            "ou" => self.0.ou.clone(),
            "country" => self.0.country.clone(),
            "locality" => self.0.locality.clone(),
            "province" => self.0.province.clone(),
            _ => vec![],
        }
    }
}

fn name_fields(p: Path<Pki>) -> Path<Pki> {
    p.field(Field::new(
        "role",
        FieldType::String,
        "The role to issue under.",
    ))
    .field(Field::new(
        "issuer_ref",
        FieldType::String,
        "The issuer to sign with (issuer/:ref/... paths; default: the role's).",
    ))
    .field(Field::new(
        "common_name",
        FieldType::String,
        "CN of the certificate.",
    ))
    .field(Field::new(
        "alt_names",
        FieldType::CommaStringSlice,
        "DNS SANs.",
    ))
    .field(Field::new(
        "ip_sans",
        FieldType::CommaStringSlice,
        "IP SANs.",
    ))
    .field(Field::new(
        "uri_sans",
        FieldType::CommaStringSlice,
        "URI SANs.",
    ))
    .field(Field::new(
        "ttl",
        FieldType::Duration,
        "Requested lifetime.",
    ))
    .field(Field::new("format", FieldType::String, "pem (default)."))
    .field(Field::new(
        "exclude_cn_from_sans",
        FieldType::Bool,
        "Do not copy the CN into the DNS SANs.",
    ))
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    let sign = name_fields(Path::new(
        r"(?:issuer/(?P<issuer_ref>[^/]+)/)?sign/(?P<role>\w(([\w.-]+)?\w)?)",
    ))
    .field(Field::new(
        "csr",
        FieldType::String,
        "The certificate request, PEM.",
    ))
    .op(Operation::Update, |b: &Pki, c| Box::pin(b.sign(c)))
    .help("Sign a CSR under a role: the role's rules apply to its names.");
    let issue = name_fields(Path::new(
        r"(?:issuer/(?P<issuer_ref>[^/]+)/)?issue/(?P<role>\w(([\w.-]+)?\w)?)",
    ))
    .field(Field::new(
        "private_key_format",
        FieldType::String,
        "The key comes back as PKCS#8 PEM.",
    ))
    .op(Operation::Update, |b: &Pki, c| Box::pin(b.issue(c)))
    .help("Issue a certificate and its private key under a role.");
    let verbatim = name_fields(Path::new(
        r"(?:issuer/(?P<issuer_ref>[^/]+)/)?sign-verbatim(/(?P<role>\w(([\w.-]+)?\w)?))?",
    ))
    .field(Field::new(
        "csr",
        FieldType::String,
        "The certificate request, PEM.",
    ))
    .op(Operation::Update, |b: &Pki, c| Box::pin(b.sign_verbatim(c)))
    .help(
        "Sign a CSR as it is (its subject and SANs); an optional role lends lifetimes and usages.",
    );
    vec![issue, sign, verbatim]
}
