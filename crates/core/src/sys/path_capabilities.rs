//! `sys/capabilities`, `sys/capabilities-self`, `sys/capabilities-accessor`.

use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path};

use super::{legacy, Sys};
use crate::core::now;
use crate::tokens::TokenEntry;

impl Sys {
    async fn caps_for(&self, c: &Ctx<'_>, t: &TokenEntry) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let mut paths = c.data.get_list("paths")?.unwrap_or_default();
        if let Some(p) = c.data.get_str("path")? {
            if !p.is_empty() {
                paths.push(p);
            }
        }
        if paths.is_empty() {
            return Err(LogicalError::invalid(
                "missing \"paths\": give the paths to check",
            ));
        }
        let acl = self.core()?.token_acl(&st, t).await?;
        let mut data = Map::new();
        let mut first: Option<Vec<String>> = None;
        for p in &paths {
            let caps = acl.capabilities(p.trim_start_matches('/'));
            if first.is_none() {
                first = Some(caps.clone());
            }
            data.insert(p.clone(), Value::from(caps));
        }
        if paths.len() == 1 {
            data.insert(
                "capabilities".into(),
                Value::from(first.unwrap_or_default()),
            );
        }
        Ok(Some(legacy(c.req, data)))
    }

    async fn capabilities(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let token = c.data.get_str("token")?.unwrap_or_default();
        let t = st
            .tokens
            .lookup(&token, now())
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid token"))?;
        self.caps_for(&c, &t).await
    }

    async fn capabilities_self(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let t = core
            .authenticate(&st, c.req.client_token.as_deref())
            .await?;
        self.caps_for(&c, &t).await
    }

    async fn capabilities_accessor(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let acc = c.data.get_str("accessor")?.unwrap_or_default();
        let t = st
            .tokens
            .lookup_accessor(&acc, now())
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid accessor"))?;
        self.caps_for(&c, &t).await
    }
}

fn paths_fields(p: Path<Sys>) -> Path<Sys> {
    p.field(Field::new(
        "paths",
        FieldType::CommaStringSlice,
        "Paths to check.",
    ))
    .field(Field::new(
        "path",
        FieldType::String,
        "Deprecated: a single path to check.",
    ))
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        paths_fields(Path::new("capabilities"))
            .field(Field::new(
                "token",
                FieldType::String,
                "The token to check.",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.capabilities(c)))
            .help("The capabilities a token has on paths."),
        paths_fields(Path::new("capabilities-self"))
            .field(Field::new(
                "token",
                FieldType::String,
                "Ignored: the calling token is used.",
            ))
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.capabilities_self(c))
            })
            .help("The capabilities the calling token has on paths."),
        paths_fields(Path::new("capabilities-accessor"))
            .field(Field::new(
                "accessor",
                FieldType::String,
                "Accessor of the token to check.",
            ))
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.capabilities_accessor(c))
            })
            .help("The capabilities of the token with this accessor on paths."),
    ]
}
