//! `certs/:name` and LIST `certs`: the trusted certificate entries.
//!
//! Invariants:
//! - An entry is stored only with a `certificate` that
//!   [`verify::parse_trusted`] accepts and well-formed
//!   `required_extensions` / `allowed_metadata_extensions`; a refused
//!   write changes nothing.
//! - Unsent fields keep their stored value on an update; `display_name`
//!   defaults to the entry's name.
//! - The OCSP fields are refused when given a non-default value (OCSP is
//!   not built) and read back with their defaults.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::{self, TokenParams};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::config::is_default_value;
use crate::verify::{self, Constraints};
use crate::{name_field, name_re, page, paging_fields, CertAuth};

/// A trusted certificate entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CertEntry {
    pub name: String,
    /// PEM: a CA that signs client certificates, or certificates trusted
    /// as they are.
    pub certificate: String,
    pub display_name: String,
    #[serde(flatten)]
    pub constraints: Constraints,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl CertEntry {
    pub(crate) fn candidate(&self) -> verify::Candidate<'_> {
        verify::Candidate {
            name: &self.name,
            certificate: &self.certificate,
            constraints: &self.constraints,
        }
    }
}

pub(crate) fn key(name: &str) -> String {
    format!("cert/{}", name.to_lowercase())
}

pub(crate) async fn load(
    s: &dyn arca_sdk::Storage,
    name: &str,
) -> Result<Option<CertEntry>, LogicalError> {
    Ok(get_json(s, &key(name)).await?)
}

/// The entries, in name order.
pub(crate) async fn load_all(s: &dyn arca_sdk::Storage) -> Result<Vec<CertEntry>, LogicalError> {
    let mut out = Vec::new();
    for name in s.list("cert/").await? {
        if name.ends_with('/') {
            continue;
        }
        if let Some(e) = load(s, &name).await? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Fields of Vault's OCSP support, refused when set (OCSP is not built).
const OCSP_FIELDS: [&str; 5] = [
    "ocsp_enabled",
    "ocsp_ca_certificates",
    "ocsp_servers_override",
    "ocsp_fail_open",
    "ocsp_query_all_servers",
];

fn fields() -> Vec<Field> {
    use FieldType::*;
    let mut v = vec![
        name_field("Name of the trusted certificate entry."),
        Field::new(
            "certificate",
            String,
            "PEM certificate(s) to trust: a CA that signs client certificates, or a client certificate trusted as it is.",
        ),
        Field::new(
            "display_name",
            String,
            "Display name of the tokens logins get (default: the entry's name).",
        ),
        Field::new(
            "allowed_names",
            CommaStringSlice,
            "Deprecated: patterns one of which the common name, a DNS SAN or an email SAN must match (globs allowed).",
        ),
        Field::new(
            "allowed_common_names",
            CommaStringSlice,
            "Patterns one of which the common name must match (globs allowed).",
        ),
        Field::new(
            "allowed_dns_sans",
            CommaStringSlice,
            "Patterns one of which a DNS SAN must match (globs allowed).",
        ),
        Field::new(
            "allowed_email_sans",
            CommaStringSlice,
            "Patterns one of which an email SAN must match (globs allowed).",
        ),
        Field::new(
            "allowed_uri_sans",
            CommaStringSlice,
            "Patterns one of which a URI SAN must match (globs allowed).",
        ),
        Field::new(
            "allowed_organizational_units",
            CommaStringSlice,
            "Patterns one of which an organizational unit must match (globs allowed).",
        ),
        Field::new(
            "required_extensions",
            CommaStringSlice,
            "Extensions the certificate must have, as oid:value (an ASN.1 string value; globs allowed). All must match.",
        ),
        Field::new(
            "allowed_metadata_extensions",
            CommaStringSlice,
            "OIDs of extensions whose values are added to the token's metadata (key: the OID with dashes).",
        ),
        Field::new("lease", Int, "Deprecated: use token_ttl (seconds)."),
        Field::new("ocsp_enabled", Bool, "OCSP checking: not available yet."),
        Field::new(
            "ocsp_ca_certificates",
            String,
            "OCSP checking: not available yet.",
        ),
        Field::new(
            "ocsp_servers_override",
            CommaStringSlice,
            "OCSP checking: not available yet.",
        ),
        Field::new("ocsp_fail_open", Bool, "OCSP checking: not available yet."),
        Field::new(
            "ocsp_query_all_servers",
            Bool,
            "OCSP checking: not available yet.",
        ),
    ];
    v.extend(token_fields::fields());
    v
}

pub(crate) fn paths() -> Vec<Path<CertAuth>> {
    let mut list = Path::new("certs/?");
    for f in paging_fields() {
        list = list.field(f);
    }
    let mut entry = Path::new(concat!("certs/", name_re!()));
    for f in fields() {
        entry = entry.field(f);
    }
    vec![
        list.op(Operation::List, |b: &CertAuth, c| Box::pin(b.list_certs(c)))
            .help("List the trusted certificate entries."),
        entry
            .existence(|b: &CertAuth, c| Box::pin(b.cert_exists(c)))
            .op(Operation::Create, |b: &CertAuth, c| {
                Box::pin(b.write_cert(c))
            })
            .op(Operation::Update, |b: &CertAuth, c| {
                Box::pin(b.write_cert(c))
            })
            .op(Operation::Read, |b: &CertAuth, c| Box::pin(b.read_cert(c)))
            .op(Operation::Delete, |b: &CertAuth, c| {
                Box::pin(b.delete_cert(c))
            })
            .help(
                "Create, read, update or delete a trusted certificate entry: the certificate \
                 (a CA or a client certificate), the constraints on client certificates, and \
                 the tokens its logins get.",
            ),
    ]
}

fn lists(c: &Ctx<'_>, e: &mut Constraints) -> Result<(), LogicalError> {
    let targets: [(&str, &mut Vec<String>); 8] = [
        ("allowed_names", &mut e.allowed_names),
        ("allowed_common_names", &mut e.allowed_common_names),
        ("allowed_dns_sans", &mut e.allowed_dns_sans),
        ("allowed_email_sans", &mut e.allowed_email_sans),
        ("allowed_uri_sans", &mut e.allowed_uri_sans),
        (
            "allowed_organizational_units",
            &mut e.allowed_organizational_units,
        ),
        ("required_extensions", &mut e.required_extensions),
        (
            "allowed_metadata_extensions",
            &mut e.allowed_metadata_extensions,
        ),
    ];
    for (name, target) in targets {
        if let Some(v) = c.data.get_list(name)? {
            *target = v
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
    }
    Ok(())
}

impl CertAuth {
    async fn cert_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let name = c.data.str_or("name", "")?;
        Ok(load(c.storage, &name).await?.is_some())
    }

    async fn list_certs(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("cert/").await?;
        Ok(Some(Response::list(page(keys, &c.data)?)))
    }

    async fn write_cert(&self, c: Ctx<'_>) -> HandlerResult {
        for name in OCSP_FIELDS {
            if c.data.is_set(name) && !is_default_value(&c.data.get(name)?) {
                return Err(LogicalError::invalid(format!(
                    "{name} is not available yet: OCSP checking is not built (use crls/ for revocation)"
                )));
            }
        }
        let name = c.data.str_or("name", "")?.to_lowercase();
        let mut e = load(c.storage, &name).await?.unwrap_or_default();
        e.name = name.clone();
        if let Some(pem) = c.data.get_str("certificate")? {
            e.certificate = pem;
        }
        if e.certificate.trim().is_empty() {
            return Err(LogicalError::invalid(
                "missing certificate: the PEM certificate to trust (a CA, or a client certificate)",
            ));
        }
        verify::parse_trusted(&e.certificate)
            .map_err(|why| LogicalError::invalid(format!("failed to parse certificate: {why}")))?;
        if let Some(d) = c.data.get_str("display_name")? {
            e.display_name = d;
        }
        lists(&c, &mut e.constraints)?;
        for r in &e.constraints.required_extensions {
            verify::check_required_extension(r).map_err(LogicalError::invalid)?;
        }
        for oid in &e.constraints.allowed_metadata_extensions {
            verify::check_oid(oid).map_err(|why| {
                LogicalError::invalid(format!("allowed_metadata_extensions: {why}"))
            })?;
        }
        e.token.update(&c.data)?;
        // The deprecated `lease` (seconds) counts when neither TTL is sent.
        if !c.data.is_set("token_ttl") && !c.data.is_set("ttl") {
            if let Some(lease) = c.data.get_i64("lease")? {
                if lease < 0 {
                    return Err(LogicalError::invalid("lease cannot be negative"));
                }
                e.token.token_ttl = lease as u64;
                if e.token.token_max_ttl > 0 && e.token.token_ttl > e.token.token_max_ttl {
                    return Err(LogicalError::invalid(
                        "\"token_ttl\" value must be less than or equal to \"token_max_ttl\" value",
                    ));
                }
            }
        }
        if e.display_name.is_empty() {
            e.display_name = name.clone();
        }
        let mut resp = Response::default();
        let (default, max) = (self.system.default_lease_ttl(), self.system.max_lease_ttl());
        if e.token.token_ttl > default {
            resp.warnings.push(format!(
                "Given ttl of {} seconds is greater than current mount/system default of {default} seconds",
                e.token.token_ttl
            ));
        }
        if e.token.token_max_ttl > max {
            resp.warnings.push(format!(
                "Given max_ttl of {} seconds is greater than current mount/system default of {max} seconds",
                e.token.token_max_ttl
            ));
        }
        if e.token.token_period > max {
            resp.warnings.push(format!(
                "Given period of {} seconds is greater than the backend's maximum TTL of {max} seconds",
                e.token.token_period
            ));
        }
        put_json(c.storage, &key(&name), &e).await?;
        Ok((!resp.warnings.is_empty()).then_some(resp))
    }

    async fn read_cert(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let Some(e) = load(c.storage, &name).await? else {
            return Ok(None);
        };
        let k = &e.constraints;
        let mut data = e.token.to_json();
        let extra = json!({
            "certificate": e.certificate,
            "display_name": e.display_name,
            "allowed_names": k.allowed_names,
            "allowed_common_names": k.allowed_common_names,
            "allowed_dns_sans": k.allowed_dns_sans,
            "allowed_email_sans": k.allowed_email_sans,
            "allowed_uri_sans": k.allowed_uri_sans,
            "allowed_organizational_units": k.allowed_organizational_units,
            "required_extensions": k.required_extensions,
            "allowed_metadata_extensions": k.allowed_metadata_extensions,
            "ocsp_enabled": false,
            "ocsp_ca_certificates": "",
            "ocsp_servers_override": Vec::<String>::new(),
            "ocsp_fail_open": false,
            "ocsp_query_all_servers": false,
        });
        if let Value::Object(m) = extra {
            data.extend(m);
        }
        Ok(Some(Response::data(data)))
    }

    async fn delete_cert(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        c.storage.delete(&key(&name)).await?;
        Ok(None)
    }
}
