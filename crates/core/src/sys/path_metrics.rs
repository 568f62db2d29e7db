//! `sys/metrics`: this node's telemetry ([`arca_metrics`]) as Vault's JSON
//! document, or as Prometheus text with `?format=prometheus`.
//!
//! Invariants: the answer is this node's own registry (a standby answers
//! for itself, never forwards); reading it needs `read` on `sys/metrics`
//! unless the listener sets `telemetry { unauthenticated_metrics_access =
//! true }` (then the HTTP layer serves [`metrics_response`] itself); no
//! label ever holds a request path, token or secret: labels are mount
//! paths and operations. The usage gauges (`vault.expire.num_leases`,
//! `vault.token.count`) are counted by the active node (`crate::periodic`).

use std::sync::Weak;

use arca_sdk::{
    Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, RawResponse, Response,
};

use super::Sys;
use crate::core::Core;

/// The metrics document for `format` (`""`/`json` or `prometheus`).
pub fn metrics_response(format: &str) -> Result<RawResponse, LogicalError> {
    let registry = arca_metrics::global();
    match format {
        "" | "json" => {
            let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S %z UTC").to_string();
            Ok(RawResponse {
                status: 200,
                content_type: "application/json".into(),
                body: serde_json::to_vec(&registry.render_json(&ts)).unwrap_or_default(),
            })
        }
        "prometheus" => match registry.render_prometheus() {
            Some(text) => Ok(RawResponse {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
                body: text.into_bytes(),
            }),
            None => Err(LogicalError::invalid(
                "prometheus is not enabled: set telemetry { prometheus_retention_time } above zero in the server configuration",
            )),
        },
        other => Err(LogicalError::invalid(format!(
            "unknown metrics format {other:?}: use \"prometheus\" or leave it out for JSON"
        ))),
    }
}

/// Gauges computed when metrics are read: the seal state and whether this
/// node is the active one.
pub(super) fn register_gauges(core: Weak<Core>) {
    let weak = core.clone();
    arca_metrics::global().gauge_fn("vault.core.unsealed", move || match weak.upgrade() {
        Some(c) => vec![(Vec::new(), if c.is_sealed() { 0.0 } else { 1.0 })],
        None => Vec::new(),
    });
    arca_metrics::global().gauge_fn("vault.core.active", move || match core.upgrade() {
        Some(c) => {
            let active = !c.is_sealed() && c.cluster().is_none_or(|cl| cl.state().is_active);
            vec![(Vec::new(), if active { 1.0 } else { 0.0 })]
        }
        None => Vec::new(),
    });
    arca_metrics::global().gauge_fn("vault.runtime.rss_bytes", || match resident_bytes() {
        Some(b) => vec![(Vec::new(), b as f64)],
        None => Vec::new(),
    });
}

/// This process's resident memory (Linux `/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl Sys {
    async fn read_metrics(&self, c: Ctx<'_>) -> HandlerResult {
        let format = c.data.str_or("format", "")?;
        let raw = metrics_response(&format)?;
        Ok(Some(Response {
            raw: Some(raw),
            ..Default::default()
        }))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![Path::new("metrics")
        .field(Field::new(
            "format",
            FieldType::String,
            "\"prometheus\" for Prometheus text; JSON when left out.",
        ))
        .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_metrics(c)))
        .help("This node's telemetry: request, storage, raft, lease, token and audit metrics.")]
}
