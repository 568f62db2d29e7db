//! `sys/wrapping/wrap`, `unwrap`, `lookup`, `rewrap` (response wrapping;
//! the mechanism is `crate::wrapping`).
//!
//! Invariants: `lookup` is the one unauthenticated write here and changes
//! nothing; `unwrap` and `rewrap` use the wrapping token's one use before
//! reading what it wraps.

use serde_json::{json, Map, Value};

use arca_sdk::{
    Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, RawResponse, Response,
};

use super::Sys;

impl Sys {
    async fn wrap(&self, c: Ctx<'_>) -> HandlerResult {
        if c.req.wrap_ttl == 0 {
            return Err(LogicalError::invalid(
                "sys/wrapping/wrap needs a wrap TTL: send the X-Vault-Wrap-TTL header (the CLI's -wrap-ttl)",
            ));
        }
        if c.req.data.is_empty() {
            return Err(LogicalError::invalid("no data to wrap"));
        }
        Ok(Some(Response::data(c.req.data.clone())))
    }

    async fn unwrap(&self, c: Ctx<'_>) -> HandlerResult {
        let given = c.data.str_or("token", "")?;
        let body = self
            .core()?
            .unwrap(&given, c.req.client_token.as_deref())
            .await?;
        Ok(Some(Response {
            raw: Some(RawResponse {
                status: 200,
                content_type: "application/json".into(),
                body,
            }),
            ..Default::default()
        }))
    }

    async fn lookup(&self, c: Ctx<'_>) -> HandlerResult {
        let token = c.data.str_or("token", "")?;
        if token.is_empty() {
            return Err(LogicalError::invalid("missing token"));
        }
        let l = self.core()?.wrap_lookup(&token).await?;
        let mut m = Map::new();
        m.insert("creation_path".into(), json!(l.creation_path));
        m.insert("creation_time".into(), json!(l.creation_time));
        m.insert("creation_ttl".into(), json!(l.creation_ttl));
        Ok(Some(Response::data(m)))
    }

    async fn rewrap(&self, c: Ctx<'_>) -> HandlerResult {
        let token = c.data.str_or("token", "")?;
        if token.is_empty() {
            return Err(LogicalError::invalid("missing token"));
        }
        let info = self.core()?.rewrap(&token).await?;
        let body = json!({
            "request_id": c.req.id,
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": Value::Null,
            "wrap_info": info,
            "warnings": Value::Null,
            "auth": Value::Null,
        });
        Ok(Some(Response {
            raw: Some(RawResponse {
                status: 200,
                content_type: "application/json".into(),
                body: serde_json::to_vec(&body).map_err(LogicalError::internal)?,
            }),
            ..Default::default()
        }))
    }
}

fn token_field() -> Field {
    Field::new("token", FieldType::String, "The wrapping token.").sensitive()
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("wrapping/wrap")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.wrap(c)))
            .help("Wrap the request's data (needs X-Vault-Wrap-TTL)."),
        Path::new("wrapping/unwrap")
            .field(token_field())
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.unwrap(c)))
            .help("Return a wrapped answer, once."),
        Path::new("wrapping/lookup")
            .field(token_field())
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.lookup(c)))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.lookup(c)))
            .help("Show a wrapping token's creation path, time and TTL."),
        Path::new("wrapping/rewrap")
            .field(token_field())
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rewrap(c)))
            .help("Wrap the same answer under a new token."),
    ]
}
