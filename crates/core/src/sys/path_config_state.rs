//! `sys/config/state/sanitized` (sudo): the server configuration the node
//! started with, in Vault's shape, without anything secret.
//!
//! Invariants: core never sees the configuration file; the binary builds the
//! sanitized value when it parses the file and hands it over at
//! construction (`CoreConfig::sanitized_config`), so what is shown cannot
//! drift from what was parsed, and nothing secret reaches core.

use arca_sdk::{Ctx, HandlerResult, LogicalError, Operation, Path, Response};
use serde_json::Value;

use super::Sys;

impl Sys {
    async fn config_state_sanitized(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        match &core.config.sanitized_config {
            Value::Object(m) => Ok(Some(Response::data(m.clone()))),
            _ => Err(LogicalError::NotFound),
        }
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![Path::new("config/state/sanitized")
        .op(Operation::Read, |b: &Sys, c| {
            Box::pin(b.config_state_sanitized(c))
        })
        .help("The server's configuration without secrets (sudo).")]
}
