//! `sys/audit` (list), `sys/audit/:path` (enable, disable) and
//! `sys/audit-hash/:path`; the devices and entries are `crate::audit`.
//!
//! Invariants: enabling and disabling need sudo (`audit`, `audit/*` are
//! root paths); a device is stored only once it opened (a socket or syslog
//! device: connected); salts are never shown; the devices the server
//! configuration declares are listed like the others but cannot be
//! disabled or replaced here.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path};

use super::{legacy, Sys};

/// The mount-style path of a device, with one trailing slash.
fn device_path(c: &Ctx<'_>) -> Result<String, LogicalError> {
    let p = c.data.str_or("path", "")?;
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Err(LogicalError::invalid("missing audit device path"));
    }
    Ok(format!("{p}/"))
}

impl Sys {
    async fn list_audit(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let mut data = Map::new();
        for d in core.audit.list() {
            data.insert(
                d.config.path.clone(),
                json!({
                    "type": d.config.kind,
                    "description": d.config.description,
                    "options": d.shown_options(),
                    "local": d.config.local,
                    "path": d.config.path,
                }),
            );
        }
        Ok(Some(legacy(c.req, data)))
    }

    async fn enable_audit(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = device_path(&c)?;
        let kind = c.data.str_or("type", "")?;
        if kind.is_empty() {
            return Err(LogicalError::invalid("missing audit device type"));
        }
        let mut options = BTreeMap::new();
        match c.req.data.get("options") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(_) | Value::Number(_) => v.to_string(),
                        _ => {
                            return Err(LogicalError::invalid(format!(
                                "option {k} must be a string"
                            )))
                        }
                    };
                    options.insert(k.clone(), v);
                }
            }
            Some(_) => return Err(LogicalError::invalid("options must be a map of strings")),
        }
        if c.data.bool_or("local", false)? {
            return Err(LogicalError::invalid(
                "local audit devices are not available: every node of an Arca cluster has every device (leave local unset)",
            ));
        }
        let config = arca_audit::DeviceConfig {
            path,
            kind,
            description: c.data.str_or("description", "")?,
            options,
            local: false,
            salt: String::new(),
        };
        let st = core.unsealed()?;
        core.audit.enable(st.root_view.as_ref(), config).await?;
        Ok(None)
    }

    async fn disable_audit(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = device_path(&c)?;
        let st = core.unsealed()?;
        core.audit.disable(st.root_view.as_ref(), &path).await?;
        Ok(None)
    }

    async fn audit_hash(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = device_path(&c)?;
        let input = c.data.str_or("input", "")?;
        let mut data = Map::new();
        data.insert("hash".into(), json!(core.audit.hash(&path, &input)?));
        Ok(Some(legacy(c.req, data)))
    }
}

fn path_field() -> Field {
    Field::new("path", FieldType::String, "The device's path.").required()
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("audit/?")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.list_audit(c)))
            .help("List the enabled audit devices."),
        Path::new("audit-hash/(?P<path>.+)")
            .field(path_field())
            .field(Field::new(
                "input",
                FieldType::String,
                "The value to hash as the device does.",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.audit_hash(c)))
            .help("The HMAC a device writes for a value."),
        Path::new("audit/(?P<path>.+)")
            .field(path_field())
            .field(Field::new("type", FieldType::String, "file, socket or syslog."))
            .field(Field::new("description", FieldType::String, "A description."))
            .field(Field::new(
                "options",
                FieldType::Raw,
                "file: file_path (a file, stdout, discard), mode; socket: address, socket_type (tcp, udp, unix), write_timeout; syslog: facility, tag; any: format (json, jsonx), prefix (only with allow_audit_log_prefixing), hmac_accessor, log_raw, elide_list_responses.",
            ))
            .field(Field::new(
                "local",
                FieldType::Bool,
                "Must be false: every node has every device (and writes its own log).",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.enable_audit(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.disable_audit(c)))
            .help("Enable or disable an audit device."),
    ]
}
