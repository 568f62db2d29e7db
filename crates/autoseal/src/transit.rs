//! `seal "transit"`: the root key is encrypted by a key of another
//! Vault-API server's transit engine (`<mount_path>/encrypt/<key_name>`,
//! `<mount_path>/decrypt/<key_name>`), as OpenBao's transit seal does.
//!
//! * The stored blob is the transit ciphertext (`vault:v<N>:...`): a
//!   rotated transit key still decrypts it, as long as its old versions
//!   are kept.
//! * No answer, a timeout or a 5xx (a sealed or restarting transit server)
//!   is [`WrapError::Unavailable`]; any other refusal (403, a missing key,
//!   a bad ciphertext) is [`WrapError::Refused`].
//! * Unless `disable_renewal` is true, the token is renewed at half its
//!   TTL for as long as the wrapper lives (a token with no TTL or that is
//!   not renewable needs nothing).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arca_client::{Client, ClientConfig, ClientError, TlsOptions};
use async_trait::async_trait;
use base64::Engine;
use serde_json::json;
use zeroize::Zeroizing;

use crate::{config_error, parse_bool, ConfigError, KeyWrapper, Options, WrapError};

/// The options `seal "transit"` takes.
pub const OPTIONS: &[&str] = &[
    "address",
    "token",
    "key_name",
    "mount_path",
    "namespace",
    "disable_renewal",
    "tls_ca_cert",
    "tls_client_cert",
    "tls_client_key",
    "tls_server_name",
    "tls_skip_verify",
    "disabled",
];

/// One HTTP attempt's limit: the auto-unseal loop retries on its own.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The transit seal's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct TransitConfig {
    pub address: String,
    pub token: Zeroizing<String>,
    pub key_name: String,
    pub mount_path: String,
    pub disable_renewal: bool,
    pub tls: TlsOptions,
}

impl std::fmt::Debug for TransitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitConfig")
            .field("address", &self.address)
            .field("token", &"<redacted>")
            .field("key_name", &self.key_name)
            .field("mount_path", &self.mount_path)
            .field("disable_renewal", &self.disable_renewal)
            .finish_non_exhaustive()
    }
}

impl TransitConfig {
    /// From a `seal "transit"` block, with the environment variables
    /// OpenBao documents filling what the block leaves out.
    pub fn from_options(
        opts: &BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TransitConfig, ConfigError> {
        let o = Options::new("transit", opts, env);
        let get = |name: &str, vars: &[&str]| o.get(name, vars);
        let required = |name: &str, vars: &[&str]| o.required(name, vars);
        if let Some(ns) = get("namespace", &["BAO_NAMESPACE", "VAULT_NAMESPACE"]) {
            return Err(config_error(
                "namespace",
                format!("Arca's transit seal does not use namespaces yet: mount the transit engine outside namespace {ns:?} or leave namespace out"),
            ));
        }
        if get(
            "tls_server_name",
            &["BAO_TLS_SERVER_NAME", "VAULT_TLS_SERVER_NAME"],
        )
        .is_some()
        {
            return Err(config_error(
                "tls_server_name",
                "is not supported yet: use an address whose host name the transit server's certificate names",
            ));
        }
        let address = required("address", &["BAO_ADDR", "VAULT_ADDR"])?;
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(config_error(
                "address",
                format!("must start with http:// or https://, not {address:?}"),
            ));
        }
        let token = Zeroizing::new(required("token", &["BAO_TOKEN", "VAULT_TOKEN"])?);
        let key_name = required(
            "key_name",
            &["BAO_TRANSIT_SEAL_KEY_NAME", "VAULT_TRANSIT_SEAL_KEY_NAME"],
        )?;
        let mount_path = required(
            "mount_path",
            &[
                "BAO_TRANSIT_SEAL_MOUNT_PATH",
                "VAULT_TRANSIT_SEAL_MOUNT_PATH",
            ],
        )?
        .trim_matches('/')
        .to_string();
        if mount_path.is_empty() {
            return Err(config_error("mount_path", "is empty"));
        }
        if key_name.contains('/') {
            return Err(config_error("key_name", "must not contain '/'"));
        }
        let disable_renewal = get(
            "disable_renewal",
            &[
                "BAO_TRANSIT_SEAL_DISABLE_RENEWAL",
                "VAULT_TRANSIT_SEAL_DISABLE_RENEWAL",
            ],
        )
        .map(|v| parse_bool("disable_renewal", &v))
        .transpose()?
        .unwrap_or(false);
        let path = |name: &str, vars: &[&str]| get(name, vars).map(PathBuf::from);
        let tls = TlsOptions {
            ca_cert: path("tls_ca_cert", &["BAO_CACERT", "VAULT_CACERT"]),
            ca_path: None,
            client_cert: path("tls_client_cert", &["BAO_CLIENT_CERT", "VAULT_CLIENT_CERT"]),
            client_key: path("tls_client_key", &["BAO_CLIENT_KEY", "VAULT_CLIENT_KEY"]),
            skip_verify: get("tls_skip_verify", &["BAO_SKIP_VERIFY", "VAULT_SKIP_VERIFY"])
                .map(|v| parse_bool("tls_skip_verify", &v))
                .transpose()?
                .unwrap_or(false),
        };
        Ok(TransitConfig {
            address,
            token,
            key_name,
            mount_path,
            disable_renewal,
            tls,
        })
    }
}

/// The transit seal's wrapper.
#[derive(Debug)]
pub struct Transit {
    client: Client,
    key_name: String,
    mount_path: String,
}

impl Transit {
    /// A wrapper talking to `config.address`; with renewal on, a task
    /// renews the token while the wrapper lives (needs a Tokio runtime).
    pub fn new(config: TransitConfig) -> Result<Arc<Transit>, ConfigError> {
        let client = Client::with_config(ClientConfig {
            address: config.address.clone(),
            token: Some(config.token.to_string()),
            namespace: None,
            tls: config.tls.clone(),
            timeout: TIMEOUT,
            max_retries: 1,
            wrap_ttl: None,
        })
        .map_err(|e| config_error("address", e.to_string()))?;
        let t = Arc::new(Transit {
            client,
            key_name: config.key_name,
            mount_path: config.mount_path,
        });
        if !config.disable_renewal {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(renew_token(Arc::downgrade(&t)));
            }
        }
        Ok(t)
    }

    fn path(&self, op: &str) -> String {
        format!("{}/{op}/{}", self.mount_path, self.key_name)
    }

    fn describe(&self) -> String {
        format!(
            "transit key {:?} at {}/{}",
            self.key_name,
            self.client.address(),
            self.mount_path
        )
    }

    fn error(&self, op: &str, e: ClientError) -> WrapError {
        let msg = format!("{op} with {} failed: {e}", self.describe());
        if e.status == 0 || (e.status >= 500 && e.status != 501) || e.status == 429 {
            WrapError::Unavailable(msg)
        } else {
            WrapError::Refused(msg)
        }
    }
}

#[async_trait]
impl KeyWrapper for Transit {
    fn seal_type(&self) -> &'static str {
        "transit"
    }

    async fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapError> {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let s = self
            .client
            .write(&self.path("encrypt"), &json!({ "plaintext": b64.as_str() }))
            .await
            .map_err(|e| self.error("encryption", e))?;
        let ct = s
            .as_ref()
            .and_then(|s| s.get_str("ciphertext"))
            .ok_or_else(|| {
                WrapError::Refused(format!("{} returned no ciphertext", self.describe()))
            })?;
        Ok(ct.as_bytes().to_vec())
    }

    async fn unwrap(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        let ct = std::str::from_utf8(blob)
            .map_err(|_| WrapError::Refused("the stored transit ciphertext is not text".into()))?;
        let s = self
            .client
            .write(&self.path("decrypt"), &json!({ "ciphertext": ct }))
            .await
            .map_err(|e| self.error("decryption", e))?;
        let pt = Zeroizing::new(
            s.as_ref()
                .and_then(|s| s.get_str("plaintext"))
                .ok_or_else(|| {
                    WrapError::Refused(format!("{} returned no plaintext", self.describe()))
                })?
                .to_string(),
        );
        base64::engine::general_purpose::STANDARD
            .decode(pt.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| {
                WrapError::Refused(format!(
                    "{} returned a plaintext that is not base64",
                    self.describe()
                ))
            })
    }
}

/// Renews the seal's token at half its TTL while the wrapper lives.
async fn renew_token(t: Weak<Transit>) {
    loop {
        let wait = {
            let Some(t) = t.upgrade() else { return };
            match t.client.read("auth/token/lookup-self").await {
                Ok(Some(s)) => {
                    let ttl = s.get("ttl").and_then(|v| v.as_u64()).unwrap_or(0);
                    let renewable = s
                        .get("renewable")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    if ttl == 0 || !renewable {
                        tracing::debug!("transit seal: the token has no TTL or is not renewable; no renewal needed");
                        return;
                    }
                    Duration::from_secs((ttl / 2).max(1))
                }
                Ok(None) => Duration::from_secs(10),
                Err(e) if e.status == 403 => {
                    tracing::warn!(
                        "transit seal: the token may not look itself up (auth/token/lookup-self, in the default policy), so it is not renewed; give it the default policy, or set disable_renewal = \"true\" when something else renews it: {e}"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        "transit seal: looking up the token failed: {e}; retrying in 10s"
                    );
                    Duration::from_secs(10)
                }
            }
        };
        tokio::time::sleep(wait).await;
        let Some(t) = t.upgrade() else { return };
        match t.client.write("auth/token/renew-self", &json!({})).await {
            Ok(_) => tracing::debug!("transit seal: token renewed"),
            Err(e) => tracing::warn!("transit seal: renewing the token failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_come_from_the_block_then_the_environment() {
        let env = |k: &str| match k {
            "BAO_TOKEN" => Some("s.env".to_string()),
            "VAULT_TRANSIT_SEAL_MOUNT_PATH" => Some("transit/".to_string()),
            _ => None,
        };
        let c = TransitConfig::from_options(
            &opts(&[
                ("address", "http://127.0.0.1:8200"),
                ("key_name", "autounseal"),
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(c.token.as_str(), "s.env");
        assert_eq!(c.mount_path, "transit");
        assert!(!c.disable_renewal);
        assert!(!format!("{c:?}").contains("s.env"));

        let none = |_: &str| None;
        let e =
            TransitConfig::from_options(&opts(&[("address", "http://x:1")]), &none).unwrap_err();
        assert_eq!(e.option, "token");
        let e = TransitConfig::from_options(
            &opts(&[
                ("address", "http://x:1"),
                ("token", "t"),
                ("key_name", "k"),
                ("mount_path", "transit"),
                ("namespace", "ns1/"),
            ]),
            &none,
        )
        .unwrap_err();
        assert_eq!(e.option, "namespace");
        let e = TransitConfig::from_options(
            &opts(&[
                ("address", "x:1"),
                ("token", "t"),
                ("key_name", "k"),
                ("mount_path", "transit"),
            ]),
            &none,
        )
        .unwrap_err();
        assert_eq!(e.option, "address");
        let e = TransitConfig::from_options(
            &opts(&[
                ("address", "http://x:1"),
                ("token", "t"),
                ("key_name", "k"),
                ("mount_path", "transit"),
                ("disable_renewal", "maybe"),
            ]),
            &none,
        )
        .unwrap_err();
        assert_eq!(e.option, "disable_renewal");
    }
}
