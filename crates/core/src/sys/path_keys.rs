//! `sys/key-status`, `sys/rotate`, `sys/rotate/keyring`, `sys/seal`.

use serde_json::{Map, Value};

use arca_sdk::{Ctx, HandlerResult, LogicalError, Operation, Path};

use super::{legacy, Sys};

impl Sys {
    async fn key_status(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let ks = core
            .barrier
            .key_status()
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let mut data = Map::new();
        data.insert("term".into(), Value::from(ks.term));
        data.insert(
            "install_time".into(),
            Value::from(
                ks.install_time
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
        );
        data.insert("encryptions".into(), Value::from(ks.encryptions));
        Ok(Some(legacy(c.req, data)))
    }

    async fn rotate(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        core.barrier
            .rotate()
            .await
            .map_err(|e| match e.to_string() {
                s if s.contains("read-only") => LogicalError::ReadOnly,
                s => LogicalError::internal(s),
            })?;
        Ok(None)
    }

    async fn seal(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        core.seal().await;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("key-status")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.key_status(c)))
            .help("The current barrier key term and its install time."),
        Path::new("rotate(/keyring)?")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rotate(c)))
            .help("Add a new barrier key term; data under older terms stays readable."),
        Path::new("seal")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.seal(c)))
            .help("Seal the node: it drops its keys and answers 503 until unsealed."),
    ]
}
