//! `config`: the method's settings.
//!
//! Invariants:
//! - `disable_binding` turns off the re-verification of the login
//!   certificate at renewal (see the crate docs).
//! - `enable_identity_alias_metadata` puts the token's metadata
//!   (`cert_name`, `common_name`, `serial_number`, `subject_key_id`,
//!   `authority_key_id` and the `allowed_metadata_extensions` values) on the
//!   identity alias too; off, the alias has no metadata.
//! - `ocsp_cache_size` bounds the in-memory OCSP answer cache (see the
//!   `ocsp` module); a value outside 2..=100000 is refused as Vault refuses
//!   it. A write resizes this node's cache at once; every login applies the
//!   stored size, so the other nodes follow at their next login.

use serde::{Deserialize, Serialize};
use serde_json::json;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::CertAuth;

/// Vault's default OCSP cache size.
pub const DEFAULT_OCSP_CACHE_SIZE: i64 = 100;
/// Vault's bounds for `ocsp_cache_size`.
const OCSP_CACHE_SIZE_RANGE: std::ops::RangeInclusive<i64> = 2..=100_000;

const KEY: &str = "config";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Config {
    /// Renewal does not re-verify the login certificate.
    pub disable_binding: bool,
    /// The identity alias gets the token's metadata.
    pub enable_identity_alias_metadata: bool,
    /// Answers the OCSP cache holds.
    pub ocsp_cache_size: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            disable_binding: false,
            enable_identity_alias_metadata: false,
            ocsp_cache_size: DEFAULT_OCSP_CACHE_SIZE,
        }
    }
}

impl Config {
    /// The cache size as a capacity (a stored value is always in range).
    pub fn cache_capacity(&self) -> usize {
        self.ocsp_cache_size
            .clamp(*OCSP_CACHE_SIZE_RANGE.start(), *OCSP_CACHE_SIZE_RANGE.end()) as usize
    }
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
                "Store the login's certificate metadata (as on the token) on the identity alias.",
            )
            .default(false),
        )
        .field(
            Field::new(
                "ocsp_cache_size",
                FieldType::Int,
                "Size of the in-memory OCSP answer cache, shared by the mount's entries (2 to 100000).",
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
            "enable_identity_alias_metadata": cfg.enable_identity_alias_metadata,
            "ocsp_cache_size": cfg.ocsp_cache_size,
        }))))
    }

    async fn write_config(&self, c: Ctx<'_>) -> HandlerResult {
        let mut cfg = load(c.storage).await?;
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
            cfg.ocsp_cache_size = size;
        }
        if c.data.is_set("disable_binding") {
            cfg.disable_binding = c.data.bool_or("disable_binding", false)?;
        }
        if c.data.is_set("enable_identity_alias_metadata") {
            cfg.enable_identity_alias_metadata =
                c.data.bool_or("enable_identity_alias_metadata", false)?;
        }
        put_json(c.storage, KEY, &cfg).await?;
        self.ocsp_cache.set_capacity(cfg.cache_capacity());
        Ok(None)
    }
}
