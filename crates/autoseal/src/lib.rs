//! Auto seals: the [`KeyWrapper`]s a server configuration's `seal "<type>"`
//! block builds.
//!
//! * `seal "transit"` ([`transit`]): another Vault-API server's transit
//!   engine (OpenBao, Vault or Arca) encrypts and decrypts the root key.
//! * `seal "pkcs11"` ([`pkcs11`]): an AES key in a PKCS#11 token (an HSM,
//!   SoftHSM2) encrypts and decrypts the root key with AES-GCM.
//!
//! Invariants:
//! * every option a seal type takes is listed in [`options`]; anything
//!   else is refused by the configuration parser, never ignored;
//! * a value missing from the block is taken from the environment variable
//!   OpenBao documents for it (the token preferably comes from there, so
//!   that it is not in the configuration file);
//! * secrets (the token, the PIN) never appear in `Debug` output or logs.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use arca_seal::{KeyWrapper, WrapError};

pub mod pkcs11;
pub mod transit;

/// The seal types a `seal` block may name.
pub const SEAL_TYPES: &[&str] = &["shamir", "transit", "pkcs11"];

/// The options `seal "<kind>"` takes (`disabled` is every type's).
pub fn options(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "shamir" => Some(&["disabled"]),
        "transit" => Some(transit::OPTIONS),
        "pkcs11" => Some(pkcs11::OPTIONS),
        _ => None,
    }
}

/// The options of a `seal` block whose values are secrets (left out of
/// `sys/config/state/sanitized`).
pub const SECRET_OPTIONS: &[&str] = &["token", "pin"];

/// A configuration error, naming the option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub option: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seal option {}: {}", self.option, self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn config_error(option: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        option: option.into(),
        message: message.into(),
    }
}

/// Builds the wrapper of an auto seal block (`kind` other than `shamir`),
/// with `env` looking up environment variables.
pub fn build(
    kind: &str,
    opts: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn KeyWrapper>, ConfigError> {
    match kind {
        "transit" => {
            let t: Arc<dyn KeyWrapper> =
                transit::Transit::new(transit::TransitConfig::from_options(opts, env)?)?;
            Ok(t)
        }
        "pkcs11" => {
            let p: Arc<dyn KeyWrapper> =
                pkcs11::Pkcs11Seal::new(pkcs11::Pkcs11Config::from_options(opts, env)?)?;
            Ok(p)
        }
        other => Err(config_error(
            "type",
            format!(
                "unknown auto seal type {other:?} (supported: {})",
                SEAL_TYPES[1..].join(", ")
            ),
        )),
    }
}

/// A seal block's options, each falling back to the environment variables
/// documented for it (the first non-empty one wins; empty counts as unset).
pub(crate) struct Options<'a> {
    kind: &'static str,
    opts: &'a BTreeMap<String, String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Options<'a> {
    pub(crate) fn new(
        kind: &'static str,
        opts: &'a BTreeMap<String, String>,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Options { kind, opts, env }
    }

    /// The option's value from the block, else from `vars`.
    pub(crate) fn get<S: AsRef<str>>(&self, name: &str, vars: &[S]) -> Option<String> {
        self.opts
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .or_else(|| {
                vars.iter()
                    .filter_map(|v| (self.env)(v.as_ref()))
                    .find(|v| !v.trim().is_empty())
            })
    }

    /// Like [`get`](Self::get), an error naming the option and its
    /// variables when neither has it.
    pub(crate) fn required<S: AsRef<str>>(
        &self,
        name: &str,
        vars: &[S],
    ) -> Result<String, ConfigError> {
        self.get(name, vars).ok_or_else(|| {
            let names: Vec<&str> = vars.iter().map(|v| v.as_ref()).collect();
            config_error(
                name,
                format!(
                    "is required (set it in the seal \"{}\" block or in {})",
                    self.kind,
                    names.join(" or ")
                ),
            )
        })
    }
}

/// A Go-style boolean option value.
pub(crate) fn parse_bool(option: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        _ => Err(config_error(
            option,
            format!("must be true or false, not {v:?}"),
        )),
    }
}
