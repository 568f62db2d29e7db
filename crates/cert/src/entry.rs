//! `certs/:name` and LIST `certs`: the trusted certificate entries.
//!
//! Invariants:
//! - An entry is stored only with a `certificate` that
//!   [`verify::parse_trusted`] accepts and well-formed
//!   `required_extensions` / `allowed_metadata_extensions`; a refused
//!   write changes nothing.
//! - Unsent fields keep their stored value on an update; `display_name`
//!   defaults to the entry's name.
//! - The OCSP settings (see the `ocsp` module) are stored only when valid:
//!   `ocsp_ca_certificates` empty or PEM certificates (or base64 of PEM),
//!   every `ocsp_servers_override` an absolute http(s) URL,
//!   `ocsp_max_retries` within 0..=10 (Vault's default 4),
//!   `ocsp_this_update_max_age` a non-negative duration (read back in
//!   seconds).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::{self, TokenParams};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::ocsp;
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
    #[serde(flatten)]
    pub ocsp: ocsp::Settings,
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
        Field::new(
            "ocsp_enabled",
            Bool,
            "Check the client certificate's revocation status over OCSP at login (and renewal).",
        )
        .default(false),
        Field::new(
            "ocsp_ca_certificates",
            String,
            "PEM certificates (or base64 of PEM) that may sign OCSP answers besides the issuer; also trusted for https responders.",
        ),
        Field::new(
            "ocsp_servers_override",
            CommaStringSlice,
            "OCSP responder URLs to ask instead of those in the certificate's Authority Information Access extension.",
        ),
        Field::new(
            "ocsp_fail_open",
            Bool,
            "Allow the login when no responder gives a known status (a revoked certificate is refused regardless).",
        )
        .default(false),
        Field::new(
            "ocsp_query_all_servers",
            Bool,
            "Ask every responder (a revoked answer from any refuses) instead of taking the first answer.",
        )
        .default(false),
        Field::new(
            "ocsp_max_retries",
            Int,
            "Further attempts per responder after a network error or an HTTP 5xx (0 to 10).",
        )
        .default(ocsp::DEFAULT_MAX_RETRIES),
        Field::new(
            "ocsp_this_update_max_age",
            Duration,
            "Refuse OCSP answers whose thisUpdate is older than this (0: any age).",
        )
        .default(0),
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

/// Applies the OCSP fields sent (unsent ones keep their value) and checks
/// the result.
fn ocsp_settings(c: &Ctx<'_>, o: &mut ocsp::Settings) -> Result<(), LogicalError> {
    let d = &c.data;
    if d.is_set("ocsp_enabled") {
        o.ocsp_enabled = d.bool_or("ocsp_enabled", false)?;
    }
    if d.is_set("ocsp_ca_certificates") {
        o.ocsp_ca_certificates = d.str_or("ocsp_ca_certificates", "")?;
    }
    if d.is_set("ocsp_servers_override") {
        o.ocsp_servers_override = d
            .get_list("ocsp_servers_override")?
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
    }
    if d.is_set("ocsp_fail_open") {
        o.ocsp_fail_open = d.bool_or("ocsp_fail_open", false)?;
    }
    if d.is_set("ocsp_query_all_servers") {
        o.ocsp_query_all_servers = d.bool_or("ocsp_query_all_servers", false)?;
    }
    if d.is_set("ocsp_max_retries") {
        o.ocsp_max_retries = d
            .get_i64("ocsp_max_retries")?
            .unwrap_or(ocsp::DEFAULT_MAX_RETRIES);
    }
    if d.is_set("ocsp_this_update_max_age") {
        o.ocsp_this_update_max_age = d.get_duration("ocsp_this_update_max_age")?.unwrap_or(0);
    }
    if !(0..=ocsp::MAX_RETRIES).contains(&o.ocsp_max_retries) {
        return Err(LogicalError::invalid(format!(
            "ocsp_max_retries must be between 0 and {}",
            ocsp::MAX_RETRIES
        )));
    }
    ocsp::extra_certificates(&o.ocsp_ca_certificates).map_err(|why| {
        LogicalError::invalid(format!("failed to parse ocsp_ca_certificates: {why}"))
    })?;
    for url in &o.ocsp_servers_override {
        ocsp::check_url(url)
            .map_err(|why| LogicalError::invalid(format!("ocsp_servers_override: {why}")))?;
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
        ocsp_settings(&c, &mut e.ocsp)?;
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
            "ocsp_enabled": e.ocsp.ocsp_enabled,
            "ocsp_ca_certificates": e.ocsp.ocsp_ca_certificates,
            "ocsp_servers_override": e.ocsp.ocsp_servers_override,
            "ocsp_fail_open": e.ocsp.ocsp_fail_open,
            "ocsp_query_all_servers": e.ocsp.ocsp_query_all_servers,
            "ocsp_max_retries": e.ocsp.ocsp_max_retries,
            "ocsp_this_update_max_age": e.ocsp.ocsp_this_update_max_age,
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
