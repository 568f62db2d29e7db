//! Auto-unseal: a node whose configuration has a `seal "transit"` block
//! (any [`KeyWrapper`]) opens its root key with that seal instead of key
//! shares.
//!
//! * Initialization (`sys/init` with `recovery_shares`,
//!   `recovery_threshold`, `recovery_pgp_keys`) wraps a new root key with
//!   the seal and creates a *recovery key*, split into shares like an
//!   unseal key. Recovery shares open nothing: they prove a quorum of
//!   operators for generate-root and for the recovery key's own rotation.
//!   The recovery key is kept inside the barrier at [`RECOVERY_KEY_PATH`]
//!   (so only an unsealed node can check shares against it); its share
//!   configuration is a plaintext physical record so that
//!   `sys/seal-status` reports it while sealed.
//! * [`Core::run_auto_unseal`] runs for the life of the server: while the
//!   node is initialized and sealed and has never been sealed by an
//!   operator, it asks the seal to open the root key, with backoff from 1s
//!   to 30s between attempts; each failure is logged and shown in
//!   `sys/seal-status` `warnings`. An operator's `sys/seal` is honoured:
//!   the node stays sealed until the process restarts, as in Vault.
//! * The stored seal type must match the configured one; a node whose
//!   storage says otherwise stays sealed and says why (moving between
//!   Shamir and an auto seal is a seal migration).
//! * Root key, recovery key and shares exist only in zeroizing buffers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::LogicalError;
use arca_seal::{KeyWrapper, Protector, RootKey, SealConfig, SealError};
use base64::Engine;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::core::{Core, InitResult};

/// Barrier path of the recovery key (auto seals).
pub(crate) const RECOVERY_KEY_PATH: &str = "core/recovery-key";

/// The longest wait between two auto-unseal attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRecoveryKey {
    /// Base64 of the 32-byte key.
    key: String,
}

pub(crate) fn seal_error(e: SealError) -> LogicalError {
    match e {
        SealError::InvalidConfig(_) | SealError::AlreadyInitialized => {
            LogicalError::invalid(e.to_string())
        }
        SealError::Wrapper { ref source, .. } if source.is_unavailable() => LogicalError::Status {
            status: 503,
            message: e.to_string(),
        },
        other => LogicalError::internal(other.to_string()),
    }
}

impl Core {
    /// The configured auto seal, if any.
    pub(crate) fn auto_seal(&self) -> Option<&Arc<dyn KeyWrapper>> {
        self.config.auto_seal.as_ref()
    }

    /// The seal type this node's configuration names.
    pub(crate) fn configured_seal_type(&self) -> &str {
        self.auto_seal().map(|w| w.seal_type()).unwrap_or("shamir")
    }

    /// `sys/init` under an auto seal. Vault's rules: the barrier takes no
    /// shares (checked by the caller), the recovery configuration may be
    /// empty (then the node has no recovery key).
    pub(crate) async fn initialize_auto(
        &self,
        wrapper: &Arc<dyn KeyWrapper>,
        recovery: SealConfig,
    ) -> Result<InitResult, LogicalError> {
        recovery
            .validate_recovery()
            .map_err(|e| LogicalError::invalid(format!("invalid recovery configuration: {e}")))?;
        let result = {
            let _g = self.lifecycle.lock().await;
            if self.initialized().await? {
                return Err(LogicalError::invalid("Vault is already initialized"));
            }
            self.prepare_cluster_for_init().await?;
            let root_key = self
                .seal
                .initialize_auto(wrapper.as_ref(), &recovery)
                .await
                .map_err(seal_error)?;
            let recovery_keys = if recovery.secret_shares > 0 {
                let (key, shares) =
                    arca_seal::Seal::new_unseal_key(&recovery).map_err(seal_error)?;
                Some((key, shares))
            } else {
                None
            };
            let root_token = self
                .initialize_barrier(
                    &root_key,
                    recovery_keys.as_ref().map(|(k, _)| k.as_slice()),
                    None,
                )
                .await?;
            InitResult {
                keys: Vec::new(),
                recovery_keys: recovery_keys.map(|(_, s)| s).unwrap_or_default(),
                root_token,
            }
        };
        // The node unseals itself at once, as Vault's does after init.
        if let Err(e) = self.auto_unseal_once().await {
            tracing::warn!("initialized, but the auto-unseal that follows failed: {e}; retrying in the background");
        }
        Ok(result)
    }

    /// One attempt to open the root key with the configured auto seal and
    /// unseal. `Ok(false)` when there is nothing to do (not initialized,
    /// already unsealed).
    pub(crate) async fn auto_unseal_once(&self) -> Result<bool, LogicalError> {
        let Some(wrapper) = self.auto_seal().cloned() else {
            return Ok(false);
        };
        // A pending migration waits for the operators' shares.
        if self.pending_migration().await?.is_some() {
            return Ok(false);
        }
        let _g = self.lifecycle.lock().await;
        if !self.is_sealed() || !self.initialized().await? {
            return Ok(false);
        }
        let stored = self
            .seal
            .config()
            .await
            .map_err(seal_error)?
            .ok_or_else(|| LogicalError::internal("the seal configuration is missing"))?;
        if stored.seal_type != wrapper.seal_type() {
            return Err(LogicalError::invalid(wrong_seal_message(
                &stored.seal_type,
                wrapper.seal_type(),
            )));
        }
        let root_key = self
            .seal
            .open(Protector::Auto(wrapper.as_ref()))
            .await
            .map_err(seal_error)?;
        self.open_with_root_key(&root_key).await?;
        tracing::info!(seal = wrapper.seal_type(), "unsealed with the auto seal");
        Ok(true)
    }

    /// Opens a root key record (a join challenge's) with the auto seal.
    pub(crate) async fn open_record_auto(&self, record: &[u8]) -> Result<RootKey, LogicalError> {
        let wrapper = self
            .auto_seal()
            .ok_or_else(|| LogicalError::internal("no auto seal is configured"))?;
        arca_seal::Seal::open_record(record, Protector::Auto(wrapper.as_ref()))
            .await
            .map_err(|e| match e {
                SealError::WrongSealType { stored, configured } => {
                    LogicalError::invalid(wrong_seal_message(&stored, &configured))
                }
                other => seal_error(other),
            })
    }

    /// Unseals with the auto seal until it works, for as long as the node
    /// lives (started by the server when the configuration has an auto
    /// seal). Stops for good once an operator seals the node.
    pub async fn run_auto_unseal(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        let mut backoff = Duration::from_secs(1);
        loop {
            let Some(core) = weak.upgrade() else { return };
            if core.sealed_by_operator.load(Ordering::Acquire) {
                return;
            }
            let wait = match core.auto_unseal_once().await {
                Ok(true) => {
                    *core.auto_unseal_error.lock() = None;
                    backoff = Duration::from_secs(1);
                    Duration::from_secs(1)
                }
                Ok(false) => {
                    *core.auto_unseal_error.lock() = None;
                    Duration::from_secs(1)
                }
                Err(e) => {
                    let msg = format!(
                        "auto-unseal failed: {e}; retrying in {}s",
                        backoff.as_secs()
                    );
                    tracing::warn!("{msg}");
                    *core.auto_unseal_error.lock() = Some(msg);
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    w
                }
            };
            drop(core);
            tokio::time::sleep(wait).await;
        }
    }

    /// Checks a combined recovery key against the stored one, in constant
    /// time. Needs the node unsealed.
    pub(crate) async fn verify_recovery_key(&self, key: &[u8]) -> Result<bool, LogicalError> {
        let st = self.unsealed()?;
        let stored: Option<StoredRecoveryKey> =
            get_json(st.root_view.as_ref(), RECOVERY_KEY_PATH).await?;
        let stored = stored.ok_or_else(|| {
            LogicalError::invalid(
                "this server has no recovery key (it was initialized with recovery_shares = 0)",
            )
        })?;
        let stored = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(stored.key.as_bytes())
                .map_err(|_| LogicalError::internal("the stored recovery key is corrupt"))?,
        );
        Ok(stored.len() == key.len() && bool::from(stored.as_slice().ct_eq(key)))
    }

    /// Replaces the recovery key and its configuration (a recovery key
    /// rotation).
    pub(crate) async fn set_recovery_key(
        &self,
        key: &[u8],
        config: &SealConfig,
    ) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        store_recovery_key(st.root_view.as_ref(), key).await?;
        self.seal
            .set_recovery_config(config)
            .await
            .map_err(seal_error)
    }
}

pub(crate) async fn store_recovery_key(
    view: &dyn arca_sdk::Storage,
    key: &[u8],
) -> Result<(), LogicalError> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
    put_json(
        view,
        RECOVERY_KEY_PATH,
        &StoredRecoveryKey {
            key: b64.to_string(),
        },
    )
    .await
    .map_err(Into::into)
}

pub(crate) fn wrong_seal_message(stored: &str, configured: &str) -> String {
    match (stored, configured) {
        ("shamir", c) => format!(
            "this node's root key is protected by a Shamir seal (key shares), but its configuration has a seal \"{c}\" block; moving to the {c} seal (seal migration) is not supported yet: remove the block and unseal with the key shares"
        ),
        (s, "shamir") => format!(
            "this node's root key is protected by a {s} seal, but its configuration has no seal \"{s}\" block: add the block the cluster was initialized with and restart"
        ),
        (s, c) => format!(
            "this node's root key is protected by a {s} seal, but its configuration has a seal \"{c}\" block: configure the {s} seal the cluster was initialized with"
        ),
    }
}
