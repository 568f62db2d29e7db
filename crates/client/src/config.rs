//! Client configuration: address, token, namespace, TLS, timeout and retries,
//! read from the environment the way the Vault CLI reads it.
//!
//! Invariant: for every variable `X`, `ARCA_X` wins over `VAULT_X`, and an
//! empty value counts as unset. Tests use [`ClientConfig::from_lookup`] with a
//! closure instead of the process environment, so they never race on it.

use std::path::PathBuf;
use std::time::Duration;

use crate::token_helper;

/// The address used when neither `ARCA_ADDR` nor `VAULT_ADDR` is set (Vault's default).
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// Reads `ARCA_<name>`, else `VAULT_<name>`, from the process environment.
/// Empty values count as unset.
pub fn env_var(name: &str) -> Option<String> {
    lookup_prefixed(&|k: &str| std::env::var(k).ok(), name)
}

fn lookup_prefixed(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    ["ARCA_", "VAULT_"]
        .iter()
        .filter_map(|prefix| lookup(&format!("{prefix}{name}")))
        .find(|v| !v.is_empty())
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// TLS settings of the client. With a CA file or directory only those CAs are
/// trusted; without one the built-in web PKI roots are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file with one or more CA certificates (`VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificates (`VAULT_CAPATH`).
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`VAULT_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`VAULT_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (`VAULT_SKIP_VERIFY`). Testing only.
    pub skip_verify: bool,
}

impl TlsOptions {
    /// TLS options from the process environment.
    pub fn from_env() -> TlsOptions {
        Self::from_lookup(&|k: &str| std::env::var(k).ok())
    }

    /// TLS options from an arbitrary variable lookup (for tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> TlsOptions {
        let get = |name: &str| lookup_prefixed(lookup, name);
        TlsOptions {
            ca_cert: get("CACERT").map(PathBuf::from),
            ca_path: get("CAPATH").map(PathBuf::from),
            client_cert: get("CLIENT_CERT").map(PathBuf::from),
            client_key: get("CLIENT_KEY").map(PathBuf::from),
            // The Vault CLI treats any value that is not a valid false as true.
            skip_verify: get("SKIP_VERIFY")
                .map(|v| parse_bool(&v).unwrap_or(true))
                .unwrap_or(false),
        }
    }
}

/// Everything needed to build a [`crate::Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base address, e.g. `https://127.0.0.1:8200` (no `/v1`).
    pub address: String,
    /// Token sent as `X-Vault-Token`.
    pub token: Option<String>,
    /// Namespace sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// TLS settings.
    pub tls: TlsOptions,
    /// Timeout of one HTTP attempt (`VAULT_CLIENT_TIMEOUT`, seconds; default 60).
    pub timeout: Duration,
    /// Retries after a retryable failure (`VAULT_MAX_RETRIES`; default 2).
    pub max_retries: u32,
    /// Response wrapping asked of every request (`X-Vault-Wrap-TTL`, the
    /// CLI's `-wrap-ttl` / `VAULT_WRAP_TTL`).
    pub wrap_ttl: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            address: DEFAULT_ADDRESS.to_string(),
            token: None,
            namespace: None,
            tls: TlsOptions::default(),
            timeout: Duration::from_secs(60),
            max_retries: 2,
            wrap_ttl: None,
        }
    }
}

impl ClientConfig {
    /// Configuration from the process environment and `~/.vault-token`.
    pub fn from_env() -> ClientConfig {
        Self::from_lookup(
            &|k: &str| std::env::var(k).ok(),
            token_helper::read_token().ok().flatten(),
        )
    }

    /// Configuration from an arbitrary variable lookup; `stored_token` is what
    /// the token helper holds and is used only when no token variable is set.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        stored_token: Option<String>,
    ) -> ClientConfig {
        let get = |name: &str| lookup_prefixed(lookup, name);
        let defaults = ClientConfig::default();
        ClientConfig {
            address: get("ADDR").unwrap_or(defaults.address),
            token: get("TOKEN").or(stored_token),
            namespace: get("NAMESPACE"),
            tls: TlsOptions::from_lookup(lookup),
            timeout: get("CLIENT_TIMEOUT")
                .and_then(|v| parse_seconds(&v))
                .unwrap_or(defaults.timeout),
            max_retries: get("MAX_RETRIES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(defaults.max_retries),
            wrap_ttl: get("WRAP_TTL").filter(|w| !w.trim().is_empty()),
        }
    }
}

/// `"60"` or `"60s"` → 60 seconds; `"2m"` → 120 s (Vault durations);
/// anything else is `None`.
fn parse_seconds(v: &str) -> Option<Duration> {
    arca_sdk::duration::parse(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn defaults_without_environment() {
        let cfg = ClientConfig::from_lookup(&lookup(&[]), None);
        assert_eq!(cfg, ClientConfig::default());
        assert_eq!(cfg.address, "https://127.0.0.1:8200");
    }

    #[test]
    fn arca_variables_win_over_vault_ones() {
        let l = lookup(&[
            ("VAULT_ADDR", "http://vault:8200"),
            ("ARCA_ADDR", "http://arca:8200"),
            ("VAULT_TOKEN", "vault-token"),
            ("ARCA_TOKEN", "arca-token"),
        ]);
        let cfg = ClientConfig::from_lookup(&l, Some("stored".into()));
        assert_eq!(cfg.address, "http://arca:8200");
        assert_eq!(cfg.token.as_deref(), Some("arca-token"));
    }

    #[test]
    fn empty_arca_variable_falls_back_to_vault() {
        let l = lookup(&[("VAULT_ADDR", "http://vault:8200"), ("ARCA_ADDR", "")]);
        let cfg = ClientConfig::from_lookup(&l, None);
        assert_eq!(cfg.address, "http://vault:8200");
    }

    #[test]
    fn stored_token_used_only_without_variable() {
        let cfg = ClientConfig::from_lookup(&lookup(&[]), Some("stored".into()));
        assert_eq!(cfg.token.as_deref(), Some("stored"));
        let cfg = ClientConfig::from_lookup(&lookup(&[("VAULT_TOKEN", "env")]), Some("s".into()));
        assert_eq!(cfg.token.as_deref(), Some("env"));
    }

    #[test]
    fn tls_from_environment() {
        let l = lookup(&[
            ("VAULT_CACERT", "/etc/ca.pem"),
            ("VAULT_SKIP_VERIFY", "true"),
        ]);
        let tls = TlsOptions::from_lookup(&l);
        assert_eq!(tls.ca_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert!(tls.skip_verify);
        assert!(!TlsOptions::from_lookup(&lookup(&[("VAULT_SKIP_VERIFY", "false")])).skip_verify);
        assert!(TlsOptions::from_lookup(&lookup(&[("ARCA_SKIP_VERIFY", "yes")])).skip_verify);
    }

    #[test]
    fn retries_and_timeout() {
        let l = lookup(&[("VAULT_MAX_RETRIES", "0"), ("VAULT_CLIENT_TIMEOUT", "5s")]);
        let cfg = ClientConfig::from_lookup(&l, None);
        assert_eq!(cfg.max_retries, 0);
        assert_eq!(cfg.timeout, Duration::from_secs(5));
        assert_eq!(parse_seconds("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_seconds("x"), None);
    }
}
