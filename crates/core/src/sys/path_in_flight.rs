//! `sys/in-flight-req` (sudo): the requests this node is serving, as Vault
//! shows them: request id → `start_time`, `client_remote_address`,
//! `request_path`, `request_method`, `client_id`. The registry is
//! `crate::in_flight`, filled by the HTTP layer; the answer includes the
//! request asking.
//!
//! Stricter than Vault: sudo (it shows every client's address and paths),
//! and no `unauthenticated_in_flight_requests_access` listener option.

use arca_sdk::{Ctx, HandlerResult, Operation, Path, RawResponse, Response};
use serde_json::Value;

use super::Sys;

impl Sys {
    async fn in_flight(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let body = Value::Object(core.in_flight.snapshot());
        // Vault answers the map itself, without the envelope.
        Ok(Some(Response {
            raw: Some(RawResponse {
                status: 200,
                content_type: "application/json".into(),
                body: serde_json::to_vec(&body).unwrap_or_default(),
            }),
            ..Default::default()
        }))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![Path::new("in-flight-req")
        .op(Operation::Read, |b: &Sys, c| Box::pin(b.in_flight(c)))
        .help("The requests this node is serving right now (sudo).")]
}
