//! `crls/:name` and LIST `crls`: certificate revocation lists checked at
//! every login (see the crate docs for how they apply).
//!
//! Invariants:
//! - A CRL is stored only when it parses as a whole X.509 CRL (PEM
//!   `X509 CRL`, or DER in base64 since a JSON string cannot carry raw
//!   DER); what is kept is its revoked serial numbers in decimal, its
//!   issuer and its update times. A refused write changes nothing.
//! - As in Vault, the CRL's `nextUpdate` is not enforced: a CRL applies
//!   until it is replaced or deleted. CRL distribution point URLs (`url`)
//!   are refused ("not available yet").
//! - Reading or deleting a CRL that does not exist is a 400 "no such
//!   CRL", as Vault answers.

use std::collections::HashSet;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::{name_field, name_re, page, paging_fields, CertAuth};

/// What is kept of a CRL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CrlInfo {
    /// Revoked serial numbers, decimal.
    pub serials: Vec<String>,
    /// The CRL's issuer (for operators; not compared at login).
    pub issuer: String,
    /// `thisUpdate` and `nextUpdate`, unix seconds (0: absent).
    pub this_update: i64,
    pub next_update: i64,
}

fn key(name: &str) -> String {
    format!("crls/{}", name.to_lowercase())
}

/// Every serial number on a stored CRL.
pub(crate) async fn revoked(s: &dyn arca_sdk::Storage) -> Result<HashSet<String>, LogicalError> {
    let mut out = HashSet::new();
    for name in s.list("crls/").await? {
        if name.ends_with('/') {
            continue;
        }
        if let Some(info) = get_json::<CrlInfo>(s, &key(&name)).await? {
            out.extend(info.serials);
        }
    }
    Ok(out)
}

/// Parses a CRL given as PEM or as base64 DER.
pub(crate) fn parse(text: &str) -> Result<CrlInfo, String> {
    let der = if text.contains("-----BEGIN") {
        let mut found = None;
        for (i, block) in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()).enumerate() {
            let block = block.map_err(|e| format!("PEM block {} is malformed: {e}", i + 1))?;
            if block.label != "X509 CRL" {
                return Err(format!(
                    "PEM block {} is a {:?}, not an X509 CRL",
                    i + 1,
                    block.label
                ));
            }
            if found.is_some() {
                return Err("give one CRL per name".into());
            }
            found = Some(block.contents);
        }
        found.ok_or("no PEM CRL found")?
    } else {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| "the CRL is neither PEM nor base64-encoded DER".to_string())?
    };
    let crl = match CertificateRevocationList::from_der(&der) {
        Ok((rest, _)) if !rest.is_empty() => {
            return Err(format!("{} bytes after the CRL", rest.len()))
        }
        Ok((_, crl)) => crl,
        Err(e) => return Err(e.to_string()),
    };
    let mut serials: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| r.user_certificate.to_string())
        .collect();
    serials.sort();
    serials.dedup();
    Ok(CrlInfo {
        serials,
        issuer: crl.issuer().to_string(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()).unwrap_or(0),
    })
}

pub(crate) fn paths() -> Vec<Path<CertAuth>> {
    let mut list = Path::new("crls/?");
    for f in paging_fields() {
        list = list.field(f);
    }
    vec![
        list.op(Operation::List, |b: &CertAuth, c| Box::pin(b.list_crls(c)))
            .help("List the stored certificate revocation lists."),
        Path::new(concat!("crls/", name_re!()))
            .field(name_field("Name of the CRL."))
            .field(Field::new(
                "crl",
                FieldType::String,
                "The CRL: PEM (X509 CRL), or DER in base64. Its nextUpdate is not enforced.",
            ))
            .field(Field::new(
                "url",
                FieldType::String,
                "CRL distribution point URL: not available yet.",
            ))
            .op(Operation::Update, |b: &CertAuth, c| {
                Box::pin(b.write_crl(c))
            })
            .op(Operation::Read, |b: &CertAuth, c| Box::pin(b.read_crl(c)))
            .op(Operation::Delete, |b: &CertAuth, c| {
                Box::pin(b.delete_crl(c))
            })
            .help(
                "Store, read or delete a certificate revocation list: a login whose chain holds \
                 a certificate with a serial number on any stored CRL is refused.",
            ),
    ]
}

impl CertAuth {
    async fn list_crls(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("crls/").await?;
        Ok(Some(Response::list(page(keys, &c.data)?)))
    }

    async fn write_crl(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?.to_lowercase();
        if !c.data.str_or("url", "")?.trim().is_empty() {
            return Err(LogicalError::invalid(
                "url is not available yet: fetching CRLs from distribution points is not built (give the CRL itself in crl)",
            ));
        }
        let crl = c.data.str_or("crl", "")?;
        if crl.trim().is_empty() {
            return Err(LogicalError::invalid(
                "one of 'crl' or 'url' must be provided",
            ));
        }
        let info = parse(&crl)
            .map_err(|why| LogicalError::invalid(format!("failed to parse CRL: {why}")))?;
        put_json(c.storage, &key(&name), &info).await?;
        Ok(None)
    }

    async fn read_crl(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?.to_lowercase();
        let Some(info) = get_json::<CrlInfo>(c.storage, &key(&name)).await? else {
            return Err(LogicalError::invalid(format!("no such CRL {name}")));
        };
        let mut data = Map::new();
        if !info.serials.is_empty() {
            let serials: Map<String, Value> = info
                .serials
                .iter()
                .map(|s| (s.clone(), json!({})))
                .collect();
            data.insert("serials".into(), Value::Object(serials));
        }
        data.insert("issuer".into(), json!(info.issuer));
        data.insert("this_update".into(), json!(info.this_update));
        if info.next_update > 0 {
            data.insert("next_update".into(), json!(info.next_update));
        }
        Ok(Some(Response::data(data)))
    }

    async fn delete_crl(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?.to_lowercase();
        if get_json::<CrlInfo>(c.storage, &key(&name)).await?.is_none() {
            return Err(LogicalError::invalid(format!("no such CRL {name}")));
        }
        c.storage.delete(&key(&name)).await?;
        Ok(None)
    }
}
