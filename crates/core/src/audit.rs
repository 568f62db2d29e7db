//! The audit broker: the enabled audit devices (`sys/audit`), loaded from
//! the replicated audit table `core/audit` and from the server
//! configuration's `audit` blocks, the request headers to record
//! (`sys/config/auditing/request-headers`), and the entries core writes to
//! them around every request (`Core::handle`).
//!
//! Invariants:
//! - Fail closed: while any device is enabled, a request whose `request`
//!   entry no device could record is refused (500) before anything runs.
//!   A `response` entry that cannot be recorded is logged as an error; the
//!   answer still goes out (what it describes has happened).
//! - Every node holds the same devices (the table is replicated and
//!   reloaded on change; declared devices come from each node's own
//!   configuration, which must be the same on every node); each node
//!   writes its own log of what it served.
//! - A device declared in the configuration cannot be disabled, replaced or
//!   shadowed through the API; its salt is kept in the table (created by
//!   the first node that can write, the active one) so that its HMACs stay
//!   the same across restarts and nodes.
//! - Only the configured request headers reach an entry
//!   (`request.headers`, lower-case names, values as lists), whatever
//!   else the request carried; those configured with `hmac=true` are
//!   HMAC'd by each device.
//! - The salts live only in the barrier-encrypted table and are never
//!   returned.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use arca_audit::{AuditError, Device, DeviceConfig, Entry, Policy};
use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

/// Where the audit table is stored (root view).
pub(crate) const AUDIT_TABLE: &str = "core/audit";

/// At most this many audited request headers.
pub(crate) const MAX_AUDITED_HEADERS: usize = 64;

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuditTable {
    entries: Vec<DeviceConfig>,
    /// The salts of the devices declared in the configuration, by path.
    #[serde(default)]
    declared_salts: BTreeMap<String, String>,
    /// `sys/config/auditing/request-headers`: lower-case name → hmac.
    #[serde(default)]
    headers: BTreeMap<String, bool>,
}

/// At most this many wrapped answers' response entries wait for their
/// `wrap_info` at once; beyond, they are written without it.
const MAX_HELD: usize = 4096;

pub(crate) struct Broker {
    devices: RwLock<Vec<Arc<Device>>>,
    /// Response entries of requests whose answer the HTTP layer is wrapping,
    /// by request id (see [`Broker::hold_response`]).
    held: parking_lot::Mutex<std::collections::HashMap<String, Entry>>,
    headers: RwLock<BTreeMap<String, bool>>,
    policy: Policy,
    /// The configuration's `audit` blocks (salt left empty).
    declared: Vec<DeviceConfig>,
    edits: tokio::sync::Mutex<()>,
}

fn to_logical(e: AuditError) -> LogicalError {
    LogicalError::invalid(e.to_string())
}

impl Broker {
    pub(crate) fn new(policy: Policy, declared: Vec<DeviceConfig>) -> Broker {
        Broker {
            devices: RwLock::new(Vec::new()),
            held: Default::default(),
            headers: RwLock::new(BTreeMap::new()),
            policy,
            declared,
            edits: tokio::sync::Mutex::new(()),
        }
    }

    fn is_declared(&self, path: &str) -> bool {
        self.declared.iter().any(|d| d.path == path)
    }

    /// (Re)opens the devices of the stored table and of the configuration.
    /// A device that cannot be opened is kept out and reported; the others
    /// work.
    /// Not under `edits`: it runs from the invalidation of the table, which
    /// an edit's own write may trigger.
    pub(crate) async fn load(&self, root: &dyn Storage) -> Result<(), LogicalError> {
        let mut table: AuditTable = get_json(root, AUDIT_TABLE).await?.unwrap_or_default();
        let mut devices = Vec::new();
        for c in &table.entries {
            if self.is_declared(&c.path) {
                tracing::error!(
                    device = %c.path,
                    "audit device enabled through the API at a path the configuration declares: the API's device is kept; rename the configuration's audit block"
                );
            }
            match Device::new(c.clone(), &self.policy) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => tracing::error!(device = %c.path, "audit device not opened: {e}"),
            }
        }
        let missing: Vec<String> = self
            .declared
            .iter()
            .filter(|d| !table.declared_salts.contains_key(&d.path))
            .map(|d| d.path.clone())
            .collect();
        let mut salts_stored = true;
        if !missing.is_empty() {
            for p in &missing {
                table
                    .declared_salts
                    .insert(p.clone(), arca_audit::new_salt());
            }
            if let Err(e) = put_json(root, AUDIT_TABLE, &table).await {
                // A standby: the active node stores them, and the
                // replicated change reloads the devices here.
                tracing::warn!("the salts of the configuration's audit devices are not stored yet ({e}): those devices open once the active node has stored them");
                salts_stored = false;
            }
        }
        for c in &self.declared {
            if table.entries.iter().any(|e| e.path == c.path) {
                continue;
            }
            if !salts_stored && missing.contains(&c.path) {
                continue;
            }
            let mut c = c.clone();
            c.salt = table.declared_salts[&c.path].clone();
            match Device::new(c, &self.policy) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => tracing::error!("configured audit device not opened: {e}"),
            }
        }
        *self.devices.write() = devices;
        *self.headers.write() = table.headers;
        Ok(())
    }

    pub(crate) fn clear(&self) {
        self.devices.write().clear();
        self.headers.write().clear();
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
        if table.entries.iter().any(|e| e.path == config.path) || self.is_declared(&config.path) {
            return Err(LogicalError::invalid(format!(
                "path {:?} is already in use",
                config.path
            )));
        }
        config.salt = arca_audit::new_salt();
        // Opened (and so checked) and connected before it is stored.
        let device = Device::new(config.clone(), &self.policy).map_err(to_logical)?;
        device.probe().map_err(to_logical)?;
        table.entries.push(config);
        put_json(root, AUDIT_TABLE, &table).await?;
        self.devices.write().push(Arc::new(device));
        Ok(())
    }

    pub(crate) async fn disable(&self, root: &dyn Storage, path: &str) -> Result<(), LogicalError> {
        let _one = self.edits.lock().await;
        if self.is_declared(path) {
            return Err(LogicalError::invalid(format!(
                "audit device {path:?} is declared in the server configuration: remove its audit block there and restart the server to disable it"
            )));
        }
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

    /// The audited request headers: lower-case name → hmac.
    pub(crate) fn headers(&self) -> BTreeMap<String, bool> {
        self.headers.read().clone()
    }

    /// Adds or changes an audited header (`name` lower-case, checked).
    pub(crate) async fn set_header(
        &self,
        root: &dyn Storage,
        name: &str,
        hmac: bool,
    ) -> Result<(), LogicalError> {
        let _one = self.edits.lock().await;
        let mut table: AuditTable = get_json(root, AUDIT_TABLE).await?.unwrap_or_default();
        if !table.headers.contains_key(name) && table.headers.len() >= MAX_AUDITED_HEADERS {
            return Err(LogicalError::invalid(format!(
                "at most {MAX_AUDITED_HEADERS} request headers can be audited"
            )));
        }
        table.headers.insert(name.to_string(), hmac);
        put_json(root, AUDIT_TABLE, &table).await?;
        *self.headers.write() = table.headers;
        Ok(())
    }

    pub(crate) async fn delete_header(
        &self,
        root: &dyn Storage,
        name: &str,
    ) -> Result<(), LogicalError> {
        let _one = self.edits.lock().await;
        let mut table: AuditTable = get_json(root, AUDIT_TABLE).await?.unwrap_or_default();
        if table.headers.remove(name).is_some() {
            put_json(root, AUDIT_TABLE, &table).await?;
        }
        *self.headers.write() = table.headers;
        Ok(())
    }

    /// The entry as devices get it: `request.headers` reduced to the
    /// audited headers (left out when none), and which of them to HMAC.
    pub(crate) fn prepare(&self, mut value: Value) -> Entry {
        let audited = self.headers.read();
        let mut hmac_headers = Vec::new();
        if let Some(Value::Object(req)) = value.get_mut("request") {
            if let Some(Value::Object(h)) = req.get_mut("headers") {
                h.retain(|k, _| audited.contains_key(k));
                hmac_headers = h
                    .keys()
                    .filter(|k| audited.get(*k).copied().unwrap_or(false))
                    .cloned()
                    .collect();
            }
            if req
                .get("headers")
                .is_some_and(|h| h.as_object().is_none_or(|m| m.is_empty()))
            {
                req.remove("headers");
            }
        }
        Entry {
            value,
            list: false,
            hmac_headers,
        }
    }

    /// Records a `request` entry: Ok when there is no device or at least one
    /// recorded it.
    pub(crate) fn log_request(&self, entry: &Entry) -> Result<(), LogicalError> {
        let devices = self.list();
        if devices.is_empty() {
            return Ok(());
        }
        let mut ok = false;
        for d in &devices {
            match d.log(entry) {
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
    pub(crate) fn log_response(&self, entry: &Entry) {
        for d in self.list() {
            if let Err(e) = d.log(entry) {
                arca_metrics::incr("vault.audit.log_response_failure", &[], 1);
                tracing::error!("audit: response not recorded: {e}");
            }
        }
    }

    /// Keeps the response entry of a request whose answer is about to be
    /// wrapped, until [`Core::audit_wrapped`] adds the `wrap_info` and
    /// writes it.
    pub(crate) fn hold_response(&self, request_id: &str, entry: Entry) {
        let mut held = self.held.lock();
        if held.len() >= MAX_HELD {
            drop(held);
            self.log_response(&entry);
            return;
        }
        held.insert(request_id.to_string(), entry);
    }

    /// Reopens every file and drops every socket connection (log
    /// rotation, SIGHUP).
    pub(crate) fn reopen_all(&self) {
        for d in self.list() {
            if let Err(e) = d.reopen() {
                tracing::error!("audit: reopening failed: {e}");
            }
        }
    }
}

impl crate::core::Core {
    /// Writes the response entry of a wrapped request (held by `handle`),
    /// with `wrap_info` when the answer was wrapped (the token and
    /// accessors are HMAC'd by each device). The HTTP layer calls it once
    /// per wrapped request, whatever came of the wrapping; an entry that is
    /// not held (already written) is not written again.
    pub fn audit_wrapped(&self, request_id: &str, wrap_info: Option<Value>) {
        let Some(mut e) = self.audit.held.lock().remove(request_id) else {
            return;
        };
        if let (Some(info), Some(Value::Object(r))) = (wrap_info, e.value.get_mut("response")) {
            r.insert("wrap_info".into(), info);
        }
        self.audit.log_response(&e);
    }

    /// The request headers the audit entries record (lower-case): the HTTP
    /// layer copies these, and only these beyond the few it always reads,
    /// into [`arca_sdk::Request::headers`].
    pub fn audited_headers(&self) -> Vec<String> {
        self.audit.headers.read().keys().cloned().collect()
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
        // Reduced to the audited headers by the broker.
        "headers": req
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(vec![v.clone()])))
            .collect::<serde_json::Map<String, Value>>(),
    })
}

/// A whole entry.
pub(crate) fn entry(kind: &str, auth: Value, request: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("time".into(), now().into());
    m.insert("type".into(), kind.into());
    m.insert("auth".into(), auth);
    m.insert("request".into(), request);
    Value::Object(m)
}

/// Turns a request entry into its response entry: the type and time
/// change, `auth` and `request` stay (the caller adds `response` or
/// `error`).
pub(crate) fn into_response(e: &mut Value) {
    e["type"] = "response".into();
    e["time"] = now().into();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
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
