//! `sys/mounts`, `sys/mounts/:path`, `sys/mounts/:path/tune`, `sys/auth`,
//! `sys/remount` and `sys/remount/status/:id`.

use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::{legacy, Sys};
use crate::mounts::{normalize_mount_path, MountEntry, PROTECTED, RESERVED_FOR_SECRETS};

/// An auth mount's `token_type` as given at enable or tune time.
fn parse_token_type(v: &Value) -> Result<String, LogicalError> {
    match v.as_str().unwrap_or_default() {
        "" | "default" | "default-service" => Ok("default-service".into()),
        t @ ("default-batch" | "service" | "batch") => Ok(t.to_string()),
        other => Err(LogicalError::invalid(format!(
            "invalid token_type {other:?}: use default-service, default-batch, service or batch"
        ))),
    }
}

pub(crate) fn mount_json(e: &MountEntry) -> Value {
    let options: Value = if e.options.is_empty() {
        Value::Null
    } else {
        Value::Object(
            e.options
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect(),
        )
    };
    json!({
        "accessor": e.accessor,
        "config": {
            "default_lease_ttl": e.config.default_lease_ttl,
            "max_lease_ttl": e.config.max_lease_ttl,
            "force_no_cache": e.config.force_no_cache,
            "token_type": if e.config.token_type.is_empty() { "default-service" } else { e.config.token_type.as_str() },
        },
        "description": e.description,
        "external_entropy_access": false,
        "local": e.local,
        "options": options,
        "plugin_version": "",
        "running_plugin_version": format!("v{}+builtin.arca", env!("CARGO_PKG_VERSION")),
        "running_sha256": "",
        "seal_wrap": e.seal_wrap,
        "type": e.kind,
        "uuid": e.uuid,
        "deprecation_status": "supported",
    })
}

fn ttl_field(v: Option<&Value>, name: &str) -> Result<Option<u64>, LogicalError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "system" || s.is_empty() => Ok(Some(0)),
        Some(v) => arca_sdk::parse_duration(v)
            .map(Some)
            .map_err(|e| LogicalError::invalid(format!("invalid {name}: {e}"))),
    }
}

fn options_map(v: Option<&Value>) -> Result<Map<String, Value>, LogicalError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) if s.is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => {
            let mut m = Map::new();
            for part in s.split(',') {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| LogicalError::invalid("options must be a map of strings"))?;
                m.insert(k.trim().into(), Value::from(v.trim()));
            }
            Ok(m)
        }
        _ => Err(LogicalError::invalid("options must be a map of strings")),
    }
}

/// Mount options Arca has no feature for: refused when asked for (the
/// CLI sends their defaults, which pass), never accepted and ignored.
fn refuse_unsupported_mount_options(
    raw: &Map<String, Value>,
    kind: &str,
) -> Result<(), LogicalError> {
    let truthy = |k: &str| match raw.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "t"),
        _ => false,
    };
    for (k, why) in [
        (
            "seal_wrap",
            "seal wrapping: the barrier already encrypts everything",
        ),
        (
            "local",
            "local (not replicated) mounts: every node of a cluster has every mount",
        ),
        ("external_entropy_access", "external entropy"),
    ] {
        if truthy(k) {
            return Err(LogicalError::invalid(format!(
                "{k} is not available: Arca has no {why}"
            )));
        }
    }
    if let Some(v) = raw.get("plugin_version").and_then(Value::as_str) {
        if !v.is_empty() {
            return Err(LogicalError::invalid(
                "plugin_version is not available: Arca runs built-in engines only",
            ));
        }
    }
    if let Some(v) = raw.get("plugin_name").and_then(Value::as_str) {
        if !v.is_empty() && v != kind {
            return Err(LogicalError::invalid(format!(
                "plugin_name {v:?} differs from type {kind:?}: Arca runs built-in engines only"
            )));
        }
    }
    Ok(())
}

fn opt_str(v: &Value) -> String {
    v.as_str()
        .map(|s| s.to_string())
        .unwrap_or_else(|| v.to_string())
}

impl Sys {
    async fn list_mounts(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let (mounts, _) = core.mount_tables()?;
        let data: Map<String, Value> = mounts
            .entries
            .iter()
            .map(|e| (e.path.clone(), mount_json(e)))
            .collect();
        Ok(Some(legacy(c.req, data)))
    }

    async fn list_auth(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let (_, auth) = core.mount_tables()?;
        let data: Map<String, Value> = auth
            .entries
            .iter()
            .map(|e| (e.path.clone(), mount_json(e)))
            .collect();
        Ok(Some(legacy(c.req, data)))
    }

    async fn read_mount(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = c.data.str_or("path", "")?;
        let (mounts, _) = core.mount_tables()?;
        let e = mounts
            .get(&path)
            .ok_or_else(|| LogicalError::invalid(format!("no mount found at {path:?}")))?;
        Ok(Some(Response::json(mount_json(e))))
    }

    async fn enable_mount(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = normalize_mount_path(&c.data.str_or("path", "")?);
        let mut kind = c.data.get_str("type")?.unwrap_or_default();
        if kind.is_empty() {
            return Err(LogicalError::invalid(
                "missing required field \"type\" (the engine type, e.g. kv)",
            ));
        }
        refuse_unsupported_mount_options(c.data.raw(), &kind)?;
        let mut options = options_map(c.data.raw().get("options"))?;
        if kind == "kv-v2" {
            kind = "kv".into();
            options.insert("version".into(), Value::from("2"));
        }
        if kind == "kv-v1" {
            kind = "kv".into();
            options.insert("version".into(), Value::from("1"));
        }
        if kind == "generic" {
            kind = "kv".into();
        }
        if let Some(v) = options.get("version") {
            let v = opt_str(v);
            if kind == "kv" && v != "1" && v != "2" && !v.is_empty() {
                return Err(LogicalError::invalid(format!(
                    "invalid KV version {v:?}: expected 1 or 2"
                )));
            }
        }
        let mut e = MountEntry::new(&path, &kind, &c.data.str_or("description", "")?);
        for (k, v) in &options {
            e.options.insert(k.clone(), opt_str(v));
        }
        if kind == "kv"
            && e.options
                .get("version")
                .map(|v| v.is_empty())
                .unwrap_or(true)
        {
            e.options.insert("version".into(), "1".into());
        }
        if let Some(Value::Object(cfg)) = c.data.raw().get("config") {
            e.config.default_lease_ttl =
                ttl_field(cfg.get("default_lease_ttl"), "default_lease_ttl")?.unwrap_or(0);
            e.config.max_lease_ttl =
                ttl_field(cfg.get("max_lease_ttl"), "max_lease_ttl")?.unwrap_or(0);
            if let Some(b) = cfg.get("force_no_cache").and_then(|v| v.as_bool()) {
                e.config.force_no_cache = b;
            }
        }
        if e.config.max_lease_ttl > 0 && e.config.default_lease_ttl > e.config.max_lease_ttl {
            return Err(LogicalError::invalid(
                "default_lease_ttl cannot be greater than max_lease_ttl",
            ));
        }
        e.local = c
            .data
            .raw()
            .get("local")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        e.seal_wrap = c
            .data
            .raw()
            .get("seal_wrap")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if kind == "identity" {
            return Err(LogicalError::Status {
                status: 403,
                message: "mount type of \"identity\" is not mountable".into(),
            });
        }
        if kind == "system" || kind == "cubbyhole" || kind == "token" {
            return Err(LogicalError::invalid(format!(
                "cannot mount a second {kind:?} engine"
            )));
        }
        core.make_backend(&e, false)?;
        core.edit_mounts(false, |t| t.add(e, RESERVED_FOR_SECRETS))
            .await?;
        Ok(None)
    }

    async fn disable_mount(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = normalize_mount_path(&c.data.str_or("path", "")?);
        if PROTECTED.contains(&path.as_str()) {
            return Err(LogicalError::invalid(format!("cannot unmount {path:?}")));
        }
        // Vault revokes a mount's leases before it unmounts it: a failure
        // keeps the mount (and its secrets' records) in place.
        if core.mount_tables()?.0.get(&path).is_some() {
            core.revoke_lease_prefix(&path, false).await.map_err(|e| {
                LogicalError::invalid(format!(
                    "failed to revoke the leases of {path:?}, so it stays mounted: {e}; fix the cause or remove them with `revoke-force`"
                ))
            })?;
        }
        let backend = core
            .router()?
            .resolve(&path)
            .filter(|(r, _)| r.full_path == path)
            .map(|(r, _)| r.backend.clone());
        let removed = core.edit_mounts(false, |t| Ok(t.remove(&path))).await?;
        if let Some(e) = removed {
            if let Some(b) = backend {
                b.cleanup().await;
            }
            core.purge_prefix(&e.storage_prefix(false)).await?;
        }
        Ok(None)
    }

    async fn read_tune(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = c.data.str_or("path", "")?;
        let auth = c.req.path.starts_with("mounts/auth/") || c.req.path.starts_with("auth/");
        let (mounts, auth_t) = core.mount_tables()?;
        let e = if auth {
            auth_t.get(&path)
        } else {
            mounts.get(&path)
        }
        .ok_or_else(|| {
            LogicalError::invalid(format!(
                "cannot fetch sysview for path {path:?}: no mount there"
            ))
        })?;
        let mut data = Map::new();
        data.insert(
            "default_lease_ttl".into(),
            Value::from(core.mount_default_ttl(e)),
        );
        data.insert("max_lease_ttl".into(), Value::from(core.mount_max_ttl(e)));
        data.insert(
            "force_no_cache".into(),
            Value::from(e.config.force_no_cache),
        );
        data.insert("description".into(), Value::from(e.description.clone()));
        if auth {
            data.insert(
                "token_type".into(),
                json!(if e.config.token_type.is_empty() {
                    "default-service"
                } else {
                    e.config.token_type.as_str()
                }),
            );
        }
        if let Some(l) = &e.config.user_lockout_config {
            for (k, v) in [
                ("user_lockout_threshold", json!(l.lockout_threshold)),
                ("user_lockout_duration", json!(l.lockout_duration)),
                (
                    "user_lockout_counter_reset_duration",
                    json!(l.lockout_counter_reset),
                ),
                ("user_lockout_disable", json!(l.lockout_disable)),
            ] {
                data.insert(k.into(), v);
            }
        }
        if !e.options.is_empty() {
            data.insert(
                "options".into(),
                Value::Object(
                    e.options
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                        .collect(),
                ),
            );
        }
        Ok(Some(legacy(c.req, data)))
    }

    async fn write_tune(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = normalize_mount_path(&c.data.str_or("path", "")?);
        let auth = c.req.path.starts_with("mounts/auth/") || c.req.path.starts_with("auth/");
        let raw = c.data.raw().clone();
        if !auth && path == "identity/" {
            if let Some(k) = raw.keys().find(|k| *k != "path") {
                return Err(LogicalError::invalid(format!(
                    "cannot tune parameter {k} of identity/"
                )));
            }
        }
        for k in [
            "audit_non_hmac_request_keys",
            "audit_non_hmac_response_keys",
            "passthrough_request_headers",
            "allowed_response_headers",
            "listing_visibility",
        ] {
            let given = match raw.get(k) {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if given {
                return Err(LogicalError::invalid(format!(
                    "{k} is not available in a tune yet: leave it unset"
                )));
            }
        }
        // In a tune, "" leaves a TTL as it is (the CLI sends it for a flag
        // not given); "system" resets it.
        let tune_ttl = |k: &str| match raw.get(k) {
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            v => ttl_field(v, k),
        };
        let default_ttl = tune_ttl("default_lease_ttl")?;
        let max_ttl = tune_ttl("max_lease_ttl")?;
        let description = raw
            .get("description")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string());
        let options = options_map(raw.get("options"))?;
        let token_type = match raw.get("token_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.is_empty() => None,
            Some(_) if !auth => {
                return Err(LogicalError::invalid(
                    "token_type applies to auth mounts only",
                ))
            }
            Some(v) => Some(parse_token_type(v)?),
        };
        let lockout = match raw.get("user_lockout_config") {
            None | Some(Value::Null) => None,
            Some(_) if !auth => {
                return Err(LogicalError::invalid(
                    "user_lockout_config applies to auth mounts only",
                ))
            }
            Some(v) => Some(v.clone()),
        };
        let sys_max = core.config().max_lease_ttl;
        let mut upgrade: Option<MountEntry> = None;
        core.edit_mounts(auth, |t| {
            let e = t
                .get_mut(&path)
                .ok_or_else(|| LogicalError::invalid(format!("no mount at {path:?} to tune")))?;
            let new_default = default_ttl.unwrap_or(e.config.default_lease_ttl);
            let new_max = max_ttl.unwrap_or(e.config.max_lease_ttl);
            let eff_max = if new_max > 0 { new_max } else { sys_max };
            if new_default > eff_max {
                return Err(LogicalError::invalid(
                    "default_lease_ttl cannot be greater than max_lease_ttl",
                ));
            }
            if let Some(t) = &token_type {
                if e.kind == "token" {
                    return Err(LogicalError::invalid(
                        "the token store's token type is set by token roles, not by tuning auth/token",
                    ));
                }
                e.config.token_type = t.clone();
            }
            if let Some(v) = &lockout {
                if !matches!(e.kind.as_str(), "userpass" | "approle" | "ldap") {
                    return Err(LogicalError::invalid(format!(
                        "user lockout applies to userpass, approle and ldap mounts, not {:?}",
                        e.kind
                    )));
                }
                let base = e.config.user_lockout_config.clone().unwrap_or_default();
                e.config.user_lockout_config = Some(crate::lockout::parse_config(v, base)?);
            }
            e.config.default_lease_ttl = new_default;
            e.config.max_lease_ttl = new_max;
            if let Some(d) = description {
                e.description = d;
            }
            for (k, v) in options {
                let v = opt_str(&v);
                if k == "version" && e.kind == "kv" {
                    let old = e
                        .options
                        .get("version")
                        .cloned()
                        .unwrap_or_else(|| "1".into());
                    match (old.as_str(), v.as_str()) {
                        (_, "") => continue,
                        ("2", "1") => {
                            return Err(LogicalError::invalid(
                                "cannot downgrade mount from KV version 2 to version 1",
                            ))
                        }
                        ("1", "2") => upgrade = Some(e.clone()),
                        (_, "1") | (_, "2") => {}
                        _ => {
                            return Err(LogicalError::invalid(format!(
                                "invalid KV version {v:?}: expected 1 or 2"
                            )))
                        }
                    }
                }
                e.options.insert(k, v);
            }
            Ok(())
        })
        .await?;
        if let Some(e) = upgrade {
            // The new backend (KV v2) converts the mount's data itself.
            core.initialize_mount(&e.uuid).await?;
        }
        Ok(None)
    }

    async fn remount(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let from = normalize_mount_path(&c.data.str_or("from", "")?);
        let to = normalize_mount_path(&c.data.str_or("to", "")?);
        if from == "/" || to == "/" {
            return Err(LogicalError::invalid(
                "both \"from\" and \"to\" are required",
            ));
        }
        if PROTECTED.contains(&from.as_str()) {
            return Err(LogicalError::invalid(format!("cannot remount {from:?}")));
        }
        if from.starts_with("auth/") || to.starts_with("auth/") {
            return Err(LogicalError::invalid(
                "moving auth mounts is not supported by this server yet",
            ));
        }
        if !core.list_leases(&from).await?.is_empty() {
            return Err(LogicalError::invalid(format!(
                "{from:?} has leases; moving leased secrets is not supported yet: revoke them first (`lease revoke -prefix {from}`)"
            )));
        }
        core.edit_mounts(false, |t| t.remount(&from, &to, RESERVED_FOR_SECRETS))
            .await?;
        let id = uuid::Uuid::new_v4().to_string();
        core.remounts.lock().insert(
            id.clone(),
            json!({ "source_mount": from, "target_mount": to, "status": "success" }),
        );
        Ok(Some(Response::json(json!({ "migration_id": id }))))
    }

    async fn remount_status(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let id = c.data.str_or("migration_id", "")?;
        let info = core.remounts.lock().get(&id).cloned();
        match info {
            Some(info) => Ok(Some(Response::json(
                json!({ "migration_id": id, "migration_info": info }),
            ))),
            None => Err(LogicalError::NotFound),
        }
    }

    async fn enable_auth(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = normalize_mount_path(&c.data.str_or("path", "")?);
        let kind = c.data.get_str("type")?.unwrap_or_default();
        if kind.is_empty() {
            return Err(LogicalError::invalid(
                "missing required field \"type\" (the auth method type, e.g. userpass)",
            ));
        }
        refuse_unsupported_mount_options(c.data.raw(), &kind)?;
        if kind == "token" {
            return Err(LogicalError::invalid(
                "the token auth method is always enabled at auth/token/ and cannot be enabled twice",
            ));
        }
        let mut e = MountEntry::new(&path, &kind, &c.data.str_or("description", "")?);
        e.accessor = format!("auth_{}", e.accessor);
        for (k, v) in options_map(c.data.raw().get("options"))? {
            e.options.insert(k, opt_str(&v));
        }
        if let Some(cfg) = c.data.get_map("config")? {
            for (k, v) in &cfg {
                match k.as_str() {
                    "default_lease_ttl" => {
                        e.config.default_lease_ttl = ttl_field(Some(v), k)?.unwrap_or(0)
                    }
                    "max_lease_ttl" => e.config.max_lease_ttl = ttl_field(Some(v), k)?.unwrap_or(0),
                    "listing_visibility" => {
                        e.config.listing_visibility = v.as_str().unwrap_or_default().to_string()
                    }
                    "token_type" => e.config.token_type = parse_token_type(v)?,
                    // The CLI sends every key with its zero value: those
                    // change nothing. A value that would is refused.
                    _ if unset(v) => {}
                    other => {
                        return Err(LogicalError::invalid(format!(
                            "config key {other:?} is not supported for auth mounts yet (supported: default_lease_ttl, max_lease_ttl, listing_visibility, token_type)"
                        )))
                    }
                }
            }
        }
        if e.config.max_lease_ttl > 0 && e.config.default_lease_ttl > e.config.max_lease_ttl {
            return Err(LogicalError::invalid(
                "default_lease_ttl cannot be greater than max_lease_ttl",
            ));
        }
        e.local = c.data.bool_or("local", false)?;
        core.make_backend(&e, true)?;
        core.edit_mounts(true, |t| t.add(e, &[])).await?;
        Ok(None)
    }

    async fn disable_auth(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let path = normalize_mount_path(&c.data.str_or("path", "")?);
        if path == "token/" {
            return Err(LogicalError::invalid(
                "token credential backend cannot be disabled",
            ));
        }
        let (_, auth) = core.mount_tables()?;
        if auth.get(&path).is_none() {
            return Ok(None);
        }
        // The tokens its logins issued go with it (their leases too).
        core.revoke_tokens_of_path(&format!("auth/{path}")).await?;
        let full = format!("auth/{path}");
        let backend = core
            .router()?
            .resolve(&full)
            .filter(|(r, _)| r.full_path == full)
            .map(|(r, _)| r.backend.clone());
        let removed = core.edit_mounts(true, |t| Ok(t.remove(&path))).await?;
        if let Some(e) = removed {
            if let Some(b) = backend {
                b.cleanup().await;
            }
            core.purge_prefix(&e.storage_prefix(true)).await?;
        }
        Ok(None)
    }
}

/// A configuration value that says nothing: null, false, 0, "", "0s", an
/// empty list or object.
fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0" || s == "0s",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn path_field() -> Field {
    Field::new("path", FieldType::String, "The path of the mount.")
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("mounts/?")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.list_mounts(c)))
            .help("List the mounted secrets engines."),
        Path::new("mounts/auth/(?P<path>.+?)/tune/?")
            .field(path_field())
            .field(Field::new(
                "user_lockout_config",
                FieldType::Map,
                "User lockout: lockout_threshold, lockout_duration, lockout_counter_reset, lockout_disable.",
            ))
            .field(Field::new(
                "token_type",
                FieldType::String,
                "Token type of the mount's logins: default-service, default-batch, service or batch.",
            ))
            .field(Field::new(
                "default_lease_ttl",
                FieldType::Raw,
                "Default lease TTL for the mount.",
            ))
            .field(Field::new(
                "max_lease_ttl",
                FieldType::Raw,
                "Maximum lease TTL for the mount.",
            ))
            .field(Field::new(
                "description",
                FieldType::String,
                "Mount description.",
            ))
            .field(Field::new("options", FieldType::Raw, "Engine options."))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_tune(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.write_tune(c)))
            .help("Tune an auth mount."),
        Path::new("mounts/(?P<path>.+?)/tune/?")
            .field(path_field())
            .field(Field::new(
                "default_lease_ttl",
                FieldType::Raw,
                "Default lease TTL for the mount.",
            ))
            .field(Field::new(
                "max_lease_ttl",
                FieldType::Raw,
                "Maximum lease TTL for the mount.",
            ))
            .field(Field::new(
                "description",
                FieldType::String,
                "Mount description.",
            ))
            .field(Field::new(
                "options",
                FieldType::Raw,
                "Engine options, e.g. version=2 for KV.",
            ))
            .field(Field::new(
                "listing_visibility",
                FieldType::String,
                "Not available in a tune yet (refused when given).",
            ))
            .field(Field::new(
                "audit_non_hmac_request_keys",
                FieldType::Raw,
                "Not available yet (refused when given).",
            ))
            .field(Field::new(
                "audit_non_hmac_response_keys",
                FieldType::Raw,
                "Not available yet (refused when given).",
            ))
            .field(Field::new(
                "passthrough_request_headers",
                FieldType::Raw,
                "Not available yet (refused when given).",
            ))
            .field(Field::new(
                "allowed_response_headers",
                FieldType::Raw,
                "Not available yet (refused when given).",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_tune(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.write_tune(c)))
            .help("Read or tune a mount's lease TTLs, description and options."),
        Path::new("mounts/(?P<path>.+)")
            .field(path_field())
            .field(Field::new(
                "type",
                FieldType::String,
                "The engine type (kv, kv-v2, ...).",
            ))
            .field(Field::new(
                "description",
                FieldType::String,
                "Mount description.",
            ))
            .field(Field::new(
                "config",
                FieldType::Map,
                "Mount configuration (lease TTLs).",
            ))
            .field(Field::new(
                "options",
                FieldType::Raw,
                "Engine options, e.g. version=2 for KV.",
            ))
            .field(Field::new(
                "local",
                FieldType::Bool,
                "Local mount (not replicated).",
            ))
            .field(Field::new(
                "seal_wrap",
                FieldType::Bool,
                "Seal wrapping: only false (the barrier already encrypts).",
            ))
            .field(Field::new(
                "external_entropy_access",
                FieldType::Bool,
                "Only false (Arca has no external entropy).",
            ))
            .field(Field::new(
                "plugin_name",
                FieldType::String,
                "Only the engine's own type (built-in engines only).",
            ))
            .field(Field::new(
                "plugin_version",
                FieldType::String,
                "Only empty (built-in engines only).",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_mount(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.enable_mount(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.disable_mount(c)))
            .help("Enable, read or disable a secrets engine at a path."),
        Path::new("auth/?")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.list_auth(c)))
            .help("List the enabled auth methods."),
        Path::new("auth/(?P<path>.+?)/tune/?")
            .field(path_field())
            .field(Field::new(
                "user_lockout_config",
                FieldType::Map,
                "User lockout: lockout_threshold, lockout_duration, lockout_counter_reset, lockout_disable.",
            ))
            .field(Field::new(
                "token_type",
                FieldType::String,
                "Token type of the mount's logins: default-service, default-batch, service or batch.",
            ))
            .field(Field::new(
                "default_lease_ttl",
                FieldType::Raw,
                "Default lease TTL for the mount.",
            ))
            .field(Field::new(
                "max_lease_ttl",
                FieldType::Raw,
                "Maximum lease TTL for the mount.",
            ))
            .field(Field::new(
                "description",
                FieldType::String,
                "Mount description.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_tune(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.write_tune(c)))
            .help("Read or tune an auth mount."),
        Path::new("auth/(?P<path>.+)")
            .field(path_field())
            .field(Field::new(
                "type",
                FieldType::String,
                "The auth method type.",
            ))
            .field(Field::new(
                "description",
                FieldType::String,
                "Mount description.",
            ))
            .field(Field::new("config", FieldType::Map, "Mount configuration."))
            .field(Field::new(
                "options",
                FieldType::Raw,
                "Auth method options.",
            ))
            .field(Field::new(
                "local",
                FieldType::Bool,
                "Local mount (not replicated to other clusters).",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.enable_auth(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.disable_auth(c)))
            .help("Enable or disable an auth method."),
        Path::new("remount")
            .field(Field::new(
                "from",
                FieldType::String,
                "The current mount path.",
            ))
            .field(Field::new("to", FieldType::String, "The new mount path."))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.remount(c)))
            .help("Move a mount to a new path; its data stays in place."),
        Path::new("remount/status/(?P<migration_id>.+)")
            .field(Field::new(
                "migration_id",
                FieldType::String,
                "The id returned by sys/remount.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.remount_status(c)))
            .help("Status of a mount move."),
    ]
}
