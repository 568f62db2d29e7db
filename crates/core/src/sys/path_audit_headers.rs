//! `sys/config/auditing/request-headers` (read all) and
//! `sys/config/auditing/request-headers/:header` (read, write `hmac`,
//! delete): the request headers the audit entries record
//! (`request.headers`), kept in the audit table (`crate::audit`).
//!
//! Invariants: every operation needs sudo (as Vault); names are stored and
//! shown lower-case and must be HTTP header names; the headers that carry
//! the client token (`X-Vault-Token`, `Authorization`) cannot be audited
//! (the token is already in the entry, HMAC'd, as `client_token`); at most
//! `MAX_AUDITED_HEADERS` headers.

use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;

/// The longest header name accepted.
const MAX_NAME: usize = 128;

fn header_name(c: &Ctx<'_>) -> Result<String, LogicalError> {
    let raw = c.data.str_or("header", "")?;
    let name = raw.trim().to_ascii_lowercase();
    // RFC 9110 token characters.
    let token = |ch: char| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(token) {
        return Err(LogicalError::invalid(format!(
            "{raw:?} is not an HTTP header name (at most {MAX_NAME} letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    Ok(name)
}

impl Sys {
    async fn read_audited_headers(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let headers: Map<String, Value> = core
            .audit
            .headers()
            .into_iter()
            .map(|(k, hmac)| (k, json!({ "hmac": hmac })))
            .collect();
        let mut data = Map::new();
        data.insert("headers".into(), Value::Object(headers));
        Ok(Some(Response::data(data)))
    }

    async fn read_audited_header(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let name = header_name(&c)?;
        let Some(hmac) = core.audit.headers().get(&name).copied() else {
            return Ok(None);
        };
        let mut data = Map::new();
        data.insert(name, json!({ "hmac": hmac }));
        Ok(Some(Response::data(data)))
    }

    async fn write_audited_header(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let name = header_name(&c)?;
        if matches!(name.as_str(), "x-vault-token" | "authorization") {
            return Err(LogicalError::invalid(format!(
                "{name} carries the client token, which every entry already records HMAC'd as client_token: it cannot be audited as a header"
            )));
        }
        let hmac = c.data.bool_or("hmac", false)?;
        core.require_active()?;
        let st = core.unsealed()?;
        core.audit
            .set_header(st.root_view.as_ref(), &name, hmac)
            .await?;
        Ok(None)
    }

    async fn delete_audited_header(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let name = header_name(&c)?;
        core.require_active()?;
        let st = core.unsealed()?;
        core.audit
            .delete_header(st.root_view.as_ref(), &name)
            .await?;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("config/auditing/request-headers/?")
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.read_audited_headers(c))
            })
            .help("The request headers audit entries record (at most 64)."),
        Path::new("config/auditing/request-headers/(?P<header>[^/]+)")
            .field(
                Field::new(
                    "header",
                    FieldType::String,
                    "The header's name (case-insensitive).",
                )
                .required(),
            )
            .field(Field::new(
                "hmac",
                FieldType::Bool,
                "Record the header's values HMAC'd, as secrets are.",
            ))
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.read_audited_header(c))
            })
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.write_audited_header(c))
            })
            .op(Operation::Delete, |b: &Sys, c| {
                Box::pin(b.delete_audited_header(c))
            })
            .help("Record a request header in the audit entries, or stop recording it."),
    ]
}
