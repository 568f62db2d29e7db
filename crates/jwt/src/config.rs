//! `config`: where signing keys come from and what every token must say.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Response};

use crate::keys::{self, Source, SourceKind};
use crate::token;
use crate::JwtAuth;

/// The storage key of the config.
pub const CONFIG_KEY: &str = "config";

/// The mount's configuration, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub oidc_discovery_url: String,
    pub oidc_discovery_ca_pem: String,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwt_supported_algs: Vec<String>,
    pub bound_issuer: String,
    pub default_role: String,
}

/// Where a config's keys come from.
pub enum KeySource<'a> {
    Static(&'a [String]),
    Remote(Source),
}

impl Config {
    pub fn key_source(&self) -> KeySource<'_> {
        if !self.jwt_validation_pubkeys.is_empty() {
            KeySource::Static(&self.jwt_validation_pubkeys)
        } else if !self.jwks_url.is_empty() {
            KeySource::Remote(Source {
                kind: SourceKind::Jwks,
                url: self.jwks_url.clone(),
                ca_pem: self.jwks_ca_pem.clone(),
            })
        } else {
            KeySource::Remote(Source {
                kind: SourceKind::Discovery,
                url: self.oidc_discovery_url.clone(),
                ca_pem: self.oidc_discovery_ca_pem.clone(),
            })
        }
    }
}

pub async fn load(c: &Ctx<'_>) -> Result<Option<Config>, LogicalError> {
    Ok(get_json(c.storage, CONFIG_KEY).await?)
}

/// Vault config keys that belong to features this server does not have:
/// each is refused when given a value (empty values are accepted, as
/// clients send them).
const NOT_AVAILABLE: &[(&str, &str)] = &[
    ("oidc_client_id", "the browser OIDC login flow is not built"),
    (
        "oidc_client_secret",
        "the browser OIDC login flow is not built",
    ),
    (
        "oidc_response_mode",
        "the browser OIDC login flow is not built",
    ),
    (
        "oidc_response_types",
        "the browser OIDC login flow is not built",
    ),
    (
        "namespace_in_state",
        "the browser OIDC login flow and namespaces are not built",
    ),
    (
        "provider_config",
        "provider-specific configuration is not built",
    ),
    (
        "override_allowed_server_names",
        "TLS server-name overrides for key fetches are not built",
    ),
    ("jwks_pairs", "several JWKS URLs per mount are not built"),
];

/// Is a field's converted value empty (absent, "", [], {}, false, 0)?
pub fn is_empty_value(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Bool(b)) => !b,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
    }
}

/// Refuses a field of a feature that is not built when it has a value.
pub fn refuse_unavailable(c: &Ctx<'_>, fields: &[(&str, &str)]) -> Result<(), LogicalError> {
    for (name, why) in fields {
        if c.data.is_set(name) && !is_empty_value(&c.data.get(name)?) {
            return Err(LogicalError::invalid(format!(
                "{name} is not available yet: {why}"
            )));
        }
    }
    Ok(())
}

pub fn fields() -> Vec<Field> {
    use FieldType::*;
    vec![
        Field::new(
            "oidc_discovery_url",
            String,
            "Base URL of the OIDC discovery document (without .well-known/openid-configuration); its jwks_uri gives the keys. Excludes jwks_url and jwt_validation_pubkeys.",
        ),
        Field::new(
            "oidc_discovery_ca_pem",
            String,
            "CA certificates (PEM) trusted for the discovery URL, instead of the built-in roots.",
        ),
        Field::new(
            "jwks_url",
            String,
            "URL of a JSON Web Key Set with the signing keys. Excludes oidc_discovery_url and jwt_validation_pubkeys.",
        ),
        Field::new(
            "jwks_ca_pem",
            String,
            "CA certificates (PEM) trusted for jwks_url, instead of the built-in roots.",
        ),
        Field::new(
            "jwt_validation_pubkeys",
            CommaStringSlice,
            "Public keys (PEM, or certificates) that verify tokens locally. Excludes jwks_url and oidc_discovery_url.",
        ),
        Field::new(
            "jwt_supported_algs",
            CommaStringSlice,
            "Signing algorithms accepted (default: RS256/384/512, PS256/384/512, ES256/384, EdDSA).",
        ),
        Field::new(
            "bound_issuer",
            String,
            "The iss claim every token must have (optional).",
        ),
        Field::new(
            "default_role",
            String,
            "The role of logins that name none.",
        ),
        Field::new(
            "skip_jwks_validation",
            Bool,
            "Store a jwks_url or oidc_discovery_url even if it cannot be fetched now (with a warning).",
        ),
        Field::new("oidc_client_id", String, "Browser OIDC flow: not available yet."),
        Field::new("oidc_client_secret", String, "Browser OIDC flow: not available yet.")
            .sensitive(),
        Field::new("oidc_response_mode", String, "Browser OIDC flow: not available yet."),
        Field::new(
            "oidc_response_types",
            CommaStringSlice,
            "Browser OIDC flow: not available yet.",
        ),
        Field::new("namespace_in_state", Bool, "Browser OIDC flow: not available yet."),
        Field::new("provider_config", Map, "Provider-specific configuration: not available yet."),
        Field::new(
            "override_allowed_server_names",
            CommaStringSlice,
            "TLS server-name overrides: not available yet.",
        ),
        Field::new("jwks_pairs", Raw, "Several JWKS URLs: not available yet."),
    ]
}

fn invalid(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg)
}

impl JwtAuth {
    pub(crate) async fn read_config(&self, c: Ctx<'_>) -> HandlerResult {
        let Some(cfg) = load(&c).await? else {
            return Ok(None);
        };
        Ok(Some(Response::json(json!({
            "oidc_discovery_url": cfg.oidc_discovery_url,
            "oidc_discovery_ca_pem": cfg.oidc_discovery_ca_pem,
            "jwks_url": cfg.jwks_url,
            "jwks_ca_pem": cfg.jwks_ca_pem,
            "jwt_validation_pubkeys": cfg.jwt_validation_pubkeys,
            "jwt_supported_algs": cfg.jwt_supported_algs,
            "bound_issuer": cfg.bound_issuer,
            "default_role": cfg.default_role,
            // Features not built: always empty.
            "oidc_client_id": "",
            "oidc_response_mode": "",
            "oidc_response_types": Vec::<String>::new(),
            "provider_config": {},
            "override_allowed_server_names": Vec::<String>::new(),
            "namespace_in_state": false,
        }))))
    }

    pub(crate) async fn write_config(&self, c: Ctx<'_>) -> HandlerResult {
        refuse_unavailable(&c, NOT_AVAILABLE)?;
        let d = &c.data;
        let text = |name: &str| -> Result<String, LogicalError> {
            Ok(d.str_or(name, "")?.trim().to_string())
        };
        let cfg = Config {
            oidc_discovery_url: text("oidc_discovery_url")?,
            oidc_discovery_ca_pem: text("oidc_discovery_ca_pem")?,
            jwks_url: text("jwks_url")?,
            jwks_ca_pem: text("jwks_ca_pem")?,
            jwt_validation_pubkeys: d
                .get_list("jwt_validation_pubkeys")?
                .unwrap_or_default()
                .into_iter()
                .filter(|k| !k.trim().is_empty())
                .collect(),
            jwt_supported_algs: d
                .get_list("jwt_supported_algs")?
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            bound_issuer: d.str_or("bound_issuer", "")?,
            default_role: text("default_role")?.to_lowercase(),
        };
        let skip_validation = d.bool_or("skip_jwks_validation", false)?;

        let sources = [
            !cfg.oidc_discovery_url.is_empty(),
            !cfg.jwks_url.is_empty(),
            !cfg.jwt_validation_pubkeys.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                "exactly one of jwt_validation_pubkeys, jwks_url and oidc_discovery_url must be set",
            ));
        }
        if !cfg.jwks_ca_pem.is_empty() && cfg.jwks_url.is_empty() {
            return Err(invalid("jwks_ca_pem is set but jwks_url is not"));
        }
        if !cfg.oidc_discovery_ca_pem.is_empty() && cfg.oidc_discovery_url.is_empty() {
            return Err(invalid(
                "oidc_discovery_ca_pem is set but oidc_discovery_url is not",
            ));
        }
        for a in &cfg.jwt_supported_algs {
            token::check_alg_name(a)
                .map_err(|e| invalid(format!("invalid jwt_supported_algs: {e}")))?;
        }

        let mut warnings = Vec::new();
        match cfg.key_source() {
            KeySource::Static(pems) => {
                for (i, pem) in pems.iter().enumerate() {
                    keys::parse_pem_key(pem).map_err(|e| {
                        invalid(format!(
                            "jwt_validation_pubkeys entry {}: cannot use the public key: {e}",
                            i + 1
                        ))
                    })?;
                }
            }
            KeySource::Remote(src) => {
                let (url_field, ca_field) = match src.kind {
                    SourceKind::Jwks => ("jwks_url", "jwks_ca_pem"),
                    SourceKind::Discovery => ("oidc_discovery_url", "oidc_discovery_ca_pem"),
                };
                keys::check_url(url_field, &src.url).map_err(invalid)?;
                if src.kind == SourceKind::Discovery
                    && src.url.contains(".well-known/openid-configuration")
                {
                    return Err(invalid(
                        "oidc_discovery_url must be the base URL, without .well-known/openid-configuration",
                    ));
                }
                if !src.ca_pem.is_empty() {
                    keys::check_ca_pem(ca_field, &src.ca_pem).map_err(invalid)?;
                }
                match keys::fetch(&src).await {
                    Ok((found, skipped)) => {
                        if found.is_empty() {
                            warnings.push(format!(
                                "{url_field}: the key set has no usable signing key yet ({skipped} entries skipped); logins fail until it has one"
                            ));
                        }
                        self.keys.store(&src, found, self.system.now());
                    }
                    Err(e) if skip_validation => {
                        warnings.push(format!(
                            "{url_field} cannot be fetched now (stored because skip_jwks_validation is set): {e}"
                        ));
                    }
                    Err(e) => {
                        return Err(invalid(format!("error checking {url_field}: {e}")));
                    }
                }
            }
        }

        put_json(c.storage, CONFIG_KEY, &cfg).await?;
        if warnings.is_empty() {
            return Ok(None);
        }
        Ok(Some(Response {
            warnings,
            ..Default::default()
        }))
    }
}
