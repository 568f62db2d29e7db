//! The audit broker: the enabled audit devices (`sys/audit`), loaded from
//! the replicated audit table `core/audit`, and the entries core writes to
//! them around every request (`Core::handle`).
//!
//! Invariants:
//! - Fail closed: while any device is enabled, a request whose `request`
//!   entry no device could record is refused (500) before anything runs.
//!   A `response` entry that cannot be recorded is logged as an error; the
//!   answer still goes out (what it describes has happened).
//! - Every node holds the same devices (the table is replicated and
//!   reloaded on change); each node writes its own log of what it served.
//! - The salts live only in the barrier-encrypted table and are never
//!   returned.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use arca_audit::{AuditError, Device, DeviceConfig, Entry};
use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

/// Where the audit table is stored (root view).
pub(crate) const AUDIT_TABLE: &str = "core/audit";

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuditTable {
    entries: Vec<DeviceConfig>,
}

pub(crate) struct Broker {
    devices: RwLock<Vec<Arc<Device>>>,
    forbidden: Vec<PathBuf>,
    edits: tokio::sync::Mutex<()>,
}

fn to_logical(e: AuditError) -> LogicalError {
    match e {
        AuditError::Invalid(m) => LogicalError::invalid(m),
        e @ AuditError::Io { .. } => LogicalError::invalid(format!(
            "{e}: check that the directory exists and the server may write there"
        )),
    }
}

impl Broker {
    pub(crate) fn new(forbidden: Vec<PathBuf>) -> Broker {
        Broker {
            devices: RwLock::new(Vec::new()),
            forbidden,
            edits: tokio::sync::Mutex::new(()),
        }
    }

    /// (Re)opens the devices of the stored table. A device that cannot be
    /// opened is kept out and reported; the others work.
    pub(crate) async fn load(&self, root: &dyn Storage) -> Result<(), LogicalError> {
        let table: AuditTable = get_json(root, AUDIT_TABLE).await?.unwrap_or_default();
        let mut devices = Vec::new();
        for c in table.entries {
            let path = c.path.clone();
            match Device::new(c, &self.forbidden) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => tracing::error!(device = %path, "audit device not opened: {e}"),
            }
        }
        *self.devices.write() = devices;
        Ok(())
    }

    pub(crate) fn clear(&self) {
        self.devices.write().clear();
    }

    pub(crate) fn list(&self) -> Vec<Arc<Device>> {
        self.devices.read().clone()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.devices.read().is_empty()
    }

    pub(crate) async fn enable(
        &self,
        root: &dyn Storage,
        mut config: DeviceConfig,
    ) -> Result<(), LogicalError> {
        let _one = self.edits.lock().await;
        let mut table: AuditTable = get_json(root, AUDIT_TABLE).await?.unwrap_or_default();
        if table.entries.iter().any(|e| e.path == config.path) {
            return Err(LogicalError::invalid(format!(
                "path {:?} is already in use",
                config.path
            )));
        }
        config.salt = arca_audit::new_salt();
        // Opened (and so checked) before it is stored.
        let device = Device::new(config.clone(), &self.forbidden).map_err(to_logical)?;
        table.entries.push(config);
        put_json(root, AUDIT_TABLE, &table).await?;
        self.devices.write().push(Arc::new(device));
        Ok(())
    }

    pub(crate) async fn disable(&self, root: &dyn Storage, path: &str) -> Result<(), LogicalError> {
        let _one = self.edits.lock().await;
        let mut table: AuditTable = get_json(root, AUDIT_TABLE).await?.unwrap_or_default();
        let before = table.entries.len();
        table.entries.retain(|e| e.path != path);
        if table.entries.len() != before {
            put_json(root, AUDIT_TABLE, &table).await?;
        }
        self.devices.write().retain(|d| d.config.path != path);
        Ok(())
    }

    /// `sys/audit-hash/:path`.
    pub(crate) fn hash(&self, path: &str, input: &str) -> Result<String, LogicalError> {
        self.devices
            .read()
            .iter()
            .find(|d| d.config.path == path)
            .map(|d| d.hash(input))
            .ok_or_else(|| LogicalError::invalid(format!("unknown audit device {path:?}")))
    }

    /// Records a `request` entry: Ok when there is no device or at least one
    /// recorded it.
    pub(crate) fn log_request(&self, value: Value) -> Result<(), LogicalError> {
        let devices = self.list();
        if devices.is_empty() {
            return Ok(());
        }
        let entry = Entry { value, list: false };
        let mut ok = false;
        for d in &devices {
            match d.log(&entry) {
                Ok(()) => ok = true,
                Err(e) => {
                    arca_metrics::incr("vault.audit.log_request_failure", &[], 1);
                    tracing::error!("audit: {e}")
                }
            }
        }
        if ok {
            Ok(())
        } else {
            Err(LogicalError::internal(
                "no audit device could record the request: refused (fix or disable the audit devices)",
            ))
        }
    }

    /// Records a `response` entry on every device that can.
    pub(crate) fn log_response(&self, value: Value, list: bool) {
        let devices = self.list();
        if devices.is_empty() {
            return;
        }
        let entry = Entry { value, list };
        for d in &devices {
            if let Err(e) = d.log(&entry) {
                arca_metrics::incr("vault.audit.log_response_failure", &[], 1);
                tracing::error!("audit: response not recorded: {e}");
            }
        }
    }

    /// Reopens every file (log rotation).
    pub(crate) fn reopen_all(&self) {
        for d in self.list() {
            if let Err(e) = d.reopen() {
                tracing::error!("audit: reopening failed: {e}");
            }
        }
    }
}

/// The `auth` part of an entry: who made the request.
pub(crate) fn auth_value(t: Option<&crate::tokens::TokenEntry>, token_id: Option<&str>) -> Value {
    let Some(t) = t else {
        return Value::Null;
    };
    let now = chrono::Utc::now().timestamp_millis();
    serde_json::json!({
        "client_token": token_id.unwrap_or_default(),
        "accessor": t.accessor,
        "display_name": t.display_name,
        "policies": t.policies,
        "token_policies": t.policies,
        "metadata": t.meta,
        "entity_id": t.entity_id,
        "token_type": if t.batch { "batch" } else { "service" },
        "token_ttl": t.ttl_remaining(now),
        "token_issue_time": chrono::DateTime::from_timestamp(t.creation_time, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
}

/// The `request` part of an entry.
pub(crate) fn request_value(
    req: &arca_sdk::Request,
    full_path: &str,
    token: Option<&str>,
) -> Value {
    let data = if req.data.is_empty() {
        Value::Null
    } else {
        Value::Object(req.data.clone())
    };
    serde_json::json!({
        "id": req.id,
        "operation": req.operation.capability(),
        "mount_type": req.mount_type,
        "mount_accessor": req.mount_accessor,
        "client_token": token.unwrap_or_default(),
        "client_token_accessor": req.client_token_accessor.clone().unwrap_or_default(),
        "path": full_path,
        "data": data,
        "remote_address": req.connection.as_ref().map(|c| c.remote_addr.to_string()),
        "remote_port": req.connection.as_ref().map(|c| c.remote_port),
        "wrap_ttl": req.wrap_ttl,
    })
}

/// A whole entry.
pub(crate) fn entry(kind: &str, auth: &Value, request: &Value) -> Value {
    serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "type": kind,
        "auth": auth,
        "request": request,
    })
}

/// The `response` part of an entry, from what core answers.
pub(crate) fn response_value(reply: &crate::core::Reply, mount_accessor: &str) -> Value {
    let Some(r) = &reply.response else {
        return serde_json::json!({ "mount_type": reply.mount_type, "mount_accessor": mount_accessor });
    };
    let data = match (&r.data, &r.raw) {
        (Some(d), _) => Value::Object(d.clone()),
        // A raw JSON answer (Vault's legacy sys/ shapes, an unwrap): its data.
        (None, Some(raw)) if raw.content_type.starts_with("application/json") => {
            serde_json::from_slice::<Value>(&raw.body)
                .ok()
                .map(|v| v.get("data").cloned().unwrap_or(v))
                .unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    let auth = r.auth.as_ref().map(|a| {
        serde_json::json!({
            "client_token": a.client_token,
            "accessor": a.accessor,
            "display_name": a.display_name,
            "policies": a.policies,
            "token_policies": a.token_policies,
            "metadata": a.metadata,
            "entity_id": a.entity_id,
            "token_type": a.token_type,
            "token_ttl": a.ttl,
        })
    });
    serde_json::json!({
        "mount_type": reply.mount_type,
        "mount_accessor": mount_accessor,
        "data": data,
        "secret": (!reply.lease_id.is_empty()).then(|| serde_json::json!({ "lease_id": reply.lease_id })),
        "auth": auth,
        "warnings": (!r.warnings.is_empty()).then(|| r.warnings.clone()),
    })
}
