//! `config`: the method's settings.
//!
//! Invariants: `disable_binding` is the only setting with an effect (it
//! turns off the re-verification of the login certificate at renewal, see
//! the crate docs). `enable_identity_alias_metadata` and
//! `ocsp_cache_size` are shown with their defaults and refused with a 400
//! "not available yet" when set to anything else (identity and OCSP are
//! not built); an out-of-range cache size is refused as Vault refuses it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::CertAuth;

/// Vault's default OCSP cache size (the only value accepted).
pub const DEFAULT_OCSP_CACHE_SIZE: i64 = 100;
/// Vault's bounds for `ocsp_cache_size`.
const OCSP_CACHE_SIZE_RANGE: std::ops::RangeInclusive<i64> = 2..=100_000;

const KEY: &str = "config";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Config {
    /// Renewal does not re-verify the login certificate.
    pub disable_binding: bool,
}

pub(crate) async fn load(s: &dyn arca_sdk::Storage) -> Result<Config, LogicalError> {
    Ok(get_json(s, KEY).await?.unwrap_or_default())
}

pub(crate) fn path() -> Path<CertAuth> {
    Path::new("config")
        .field(
            Field::new(
                "disable_binding",
                FieldType::Bool,
                "Renew login tokens without re-verifying the login certificate against its entry.",
            )
            .default(false),
        )
        .field(
            Field::new(
                "enable_identity_alias_metadata",
                FieldType::Bool,
                "Store certificate metadata on the identity alias: not available yet (identity is not built).",
            )
            .default(false),
        )
        .field(
            Field::new(
                "ocsp_cache_size",
                FieldType::Int,
                "Size of the OCSP response cache: not available yet (OCSP is not built); only 100.",
            )
            .default(DEFAULT_OCSP_CACHE_SIZE),
        )
        .op(Operation::Read, |b: &CertAuth, c| Box::pin(b.read_config(c)))
        .op(Operation::Update, |b: &CertAuth, c| {
            Box::pin(b.write_config(c))
        })
        .help("Read or change the method's settings.")
}

impl CertAuth {
    async fn read_config(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg = load(c.storage).await?;
        Ok(Some(Response::json(json!({
            "disable_binding": cfg.disable_binding,
            "enable_identity_alias_metadata": false,
            "ocsp_cache_size": DEFAULT_OCSP_CACHE_SIZE,
        }))))
    }

    async fn write_config(&self, c: Ctx<'_>) -> HandlerResult {
        if c.data.is_set("enable_identity_alias_metadata")
            && c.data.bool_or("enable_identity_alias_metadata", false)?
        {
            return Err(LogicalError::invalid(
                "enable_identity_alias_metadata is not available yet: identity (entities and aliases) is not built",
            ));
        }
        if c.data.is_set("ocsp_cache_size") {
            let size = c
                .data
                .get_i64("ocsp_cache_size")?
                .unwrap_or(DEFAULT_OCSP_CACHE_SIZE);
            if !OCSP_CACHE_SIZE_RANGE.contains(&size) {
                return Err(LogicalError::invalid(format!(
                    "invalid cache size, must be >= {} and <= {}",
                    OCSP_CACHE_SIZE_RANGE.start(),
                    OCSP_CACHE_SIZE_RANGE.end()
                )));
            }
            if size != DEFAULT_OCSP_CACHE_SIZE {
                return Err(LogicalError::invalid(format!(
                    "ocsp_cache_size is not available yet: OCSP checking is not built (only the default, {DEFAULT_OCSP_CACHE_SIZE}, is accepted)"
                )));
            }
        }
        let mut cfg = load(c.storage).await?;
        if c.data.is_set("disable_binding") {
            cfg.disable_binding = c.data.bool_or("disable_binding", false)?;
        }
        put_json(c.storage, KEY, &cfg).await?;
        Ok(None)
    }
}

/// `true` when `v` is what a client sends for "nothing" (absent, false,
/// an empty string or list, zero).
pub(crate) fn is_default_value(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Object(m)) => m.is_empty(),
    }
}
