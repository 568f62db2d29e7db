//! `sys/quotas/config` and `sys/quotas/rate-limit[/:name]`: the rate limit
//! rules `crate::quotas` enforces.
//!
//! Invariants: a rule is stored only when valid (positive rate, a path
//! that is empty or lies in an existing mount, no other rule on the same
//! path); a write replaces the whole rule, as in Vault; options Arca does
//! not implement (`role`, `inheritable`) are refused, not ignored.

use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;
use crate::quotas::{QuotaConfig, RateLimit};

fn rate_of(v: Option<&Value>) -> Result<f64, LogicalError> {
    let r = match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match r {
        Some(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(LogicalError::invalid(
            "rate must be a positive number of requests per interval",
        )),
    }
}

fn rule_json(r: &RateLimit) -> Value {
    // As Go writes a float64: a whole rate without a fraction (`500`).
    let rate = if r.rate.fract() == 0.0 && r.rate.abs() < 9.0e15 {
        json!(r.rate as i64)
    } else {
        json!(r.rate)
    };
    json!({
        "name": r.name,
        "path": r.path,
        "type": "rate-limit",
        "rate": rate,
        "interval": r.interval,
        "block_interval": r.block_interval,
        "role": "",
        "inheritable": false,
    })
}

impl Sys {
    async fn read_quota_config(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let cfg = core
            .quotas
            .table(st.root_view.as_ref())
            .await?
            .config
            .unwrap_or_default();
        let mut data = Map::new();
        data.insert(
            "rate_limit_exempt_paths".into(),
            json!(cfg.rate_limit_exempt_paths),
        );
        data.insert(
            "enable_rate_limit_audit_logging".into(),
            json!(cfg.enable_rate_limit_audit_logging),
        );
        data.insert(
            "enable_rate_limit_response_headers".into(),
            json!(cfg.enable_rate_limit_response_headers),
        );
        Ok(Some(Response::data(data)))
    }

    async fn write_quota_config(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let exempt = c.data.get_list("rate_limit_exempt_paths")?;
        let audit = c.data.get_bool("enable_rate_limit_audit_logging")?;
        let headers = c.data.get_bool("enable_rate_limit_response_headers")?;
        if let Some(p) = exempt
            .iter()
            .flatten()
            .find(|p| p.trim_end_matches('*').contains('*'))
        {
            return Err(LogicalError::invalid(format!(
                "exempt path {p:?}: a '*' may only end a path (a prefix)"
            )));
        }
        core.quotas
            .edit(st.root_view.as_ref(), |t| {
                let mut cfg = t.config.clone().unwrap_or_else(QuotaConfig::default);
                if let Some(e) = exempt {
                    cfg.rate_limit_exempt_paths = e
                        .into_iter()
                        .map(|p| p.trim_start_matches('/').to_string())
                        .filter(|p| !p.is_empty())
                        .collect();
                }
                if let Some(a) = audit {
                    cfg.enable_rate_limit_audit_logging = a;
                }
                if let Some(h) = headers {
                    cfg.enable_rate_limit_response_headers = h;
                }
                t.config = Some(cfg);
                Ok(())
            })
            .await?;
        Ok(None)
    }

    async fn list_rate_limits(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let t = core.quotas.table(st.root_view.as_ref()).await?;
        // No quota: 404, as Vault answers an empty list.
        if t.rate_limits.is_empty() {
            return Ok(None);
        }
        Ok(Some(Response::list(t.rate_limits.into_keys().collect())))
    }

    async fn read_rate_limit(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let name = c.data.str_or("name", "")?;
        let t = core.quotas.table(st.root_view.as_ref()).await?;
        Ok(t.rate_limits
            .get(&name)
            .map(|r| Response::json(rule_json(r))))
    }

    /// The stored form of a quota's `path`: empty (global), a mount path
    /// with its trailing slash, or a path below a mount.
    fn quota_path(&self, raw: &str) -> Result<String, LogicalError> {
        let p = raw.trim().trim_start_matches('/');
        if p.is_empty() {
            return Ok(String::new());
        }
        if p.trim_end_matches('*').contains('*') {
            return Err(LogicalError::invalid(format!(
                "path {raw:?}: a '*' may only end the path (a prefix)"
            )));
        }
        let router = self.core()?.router()?;
        let probe = p.trim_end_matches('*');
        let with_slash = format!("{}/", probe.trim_end_matches('/'));
        for candidate in [probe, with_slash.as_str()] {
            if let Some((route, rel)) = router.resolve(candidate) {
                if rel.is_empty() && !p.ends_with('*') {
                    return Ok(route.full_path.clone());
                }
                return Ok(p.to_string());
            }
        }
        Err(LogicalError::invalid(format!(
            "invalid mount path {raw:?}: a quota's path is empty (global), a mount, or a path inside a mount"
        )))
    }

    async fn write_rate_limit(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let name = c.data.str_or("name", "")?;
        if name.is_empty() || name.contains('/') {
            return Err(LogicalError::invalid("a quota needs a name without '/'"));
        }
        if !c.data.str_or("role", "")?.is_empty() {
            return Err(LogicalError::invalid(
                "role-based rate limit quotas are not available in Arca yet: leave role empty",
            ));
        }
        if c.data.bool_or("inheritable", false)? {
            return Err(LogicalError::invalid(
                "inheritable quotas apply to namespaces, which Arca does not have: leave inheritable unset",
            ));
        }
        let rate = rate_of(c.req.data.get("rate"))?;
        let interval = match c.data.get_duration("interval")? {
            None | Some(0) => 1,
            Some(s) => s,
        };
        let block_interval = c.data.get_duration("block_interval")?.unwrap_or(0);
        let path = self.quota_path(&c.data.str_or("path", "")?)?;
        let rule = RateLimit {
            name: name.clone(),
            path,
            rate,
            interval,
            block_interval,
        };
        core.quotas
            .edit(st.root_view.as_ref(), move |t| {
                if let Some(other) = t
                    .rate_limits
                    .values()
                    .find(|r| r.name != rule.name && r.path == rule.path)
                {
                    return Err(LogicalError::invalid(format!(
                        "quota rule with similar properties exists under the name {:?}",
                        other.name
                    )));
                }
                t.rate_limits.insert(rule.name.clone(), rule);
                Ok(())
            })
            .await?;
        Ok(None)
    }

    async fn delete_rate_limit(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let name = c.data.str_or("name", "")?;
        core.quotas
            .edit(st.root_view.as_ref(), |t| {
                t.rate_limits.remove(&name);
                Ok(())
            })
            .await?;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("quotas/config")
            .field(Field::new(
                "rate_limit_exempt_paths",
                FieldType::CommaStringSlice,
                "Paths no rate limit quota counts (a trailing '*' makes a prefix).",
            ))
            .field(Field::new(
                "enable_rate_limit_audit_logging",
                FieldType::Bool,
                "Record requests refused by a rate limit quota in the audit log.",
            ))
            .field(Field::new(
                "enable_rate_limit_response_headers",
                FieldType::Bool,
                "Add X-Ratelimit-* headers to responses counted by a quota.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_quota_config(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.write_quota_config(c)))
            .help("How rate limit quotas are applied."),
        Path::new("quotas/rate-limit/?")
            .op(Operation::List, |b: &Sys, c| Box::pin(b.list_rate_limits(c)))
            .help("The rate limit quotas."),
        Path::new("quotas/rate-limit/(?P<name>[^/]+)")
            .field(Field::new("name", FieldType::String, "The quota's name."))
            .field(Field::new(
                "path",
                FieldType::String,
                "Empty (every request), a mount, or a path inside a mount (a trailing '*' makes a prefix).",
            ))
            .field(Field::new(
                "rate",
                FieldType::Raw,
                "Requests allowed per interval, per client address, on each node (positive).",
            ))
            .field(Field::new(
                "interval",
                FieldType::Duration,
                "The interval the rate is counted over (default 1s).",
            ))
            .field(Field::new(
                "block_interval",
                FieldType::Duration,
                "How long a client that went over the rate is refused.",
            ))
            .field(Field::new(
                "role",
                FieldType::String,
                "Not available in Arca: must be empty.",
            ))
            .field(Field::new(
                "inheritable",
                FieldType::Bool,
                "Not available in Arca (no namespaces): must be unset or false.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.read_rate_limit(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.write_rate_limit(c)))
            .op(Operation::Create, |b: &Sys, c| Box::pin(b.write_rate_limit(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.delete_rate_limit(c)))
            .help("A rate limit quota: requests per interval for each client address."),
    ]
}
