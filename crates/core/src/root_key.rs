//! The root key's custody after unseal: `POST sys/rotate/root` replaces the
//! root key (the key that encrypts the keyring) without key shares, as
//! OpenBao ≥ 2.4 does.
//!
//! A Shamir seal needs the current unseal key to store the new root key,
//! so, as Vault does, the unseal key is kept inside the barrier at
//! [`UNSEAL_KEY_PATH`] (encrypted like any data; whoever can read it
//! already holds the root key). It is recorded at initialization, after an
//! unseal key rotation and at any unseal on the active node, and a node
//! that learnt it while standby writes it from its periodic work once it is
//! active.
//!
//! Invariants:
//! - The recorded unseal key is used only after it has been checked to open
//!   the current seal record to the root key the barrier holds: a stale copy
//!   (a crash between an unseal key rotation and its recording) refuses the
//!   rotation instead of storing the root key under a key nobody holds.
//! - The new root key, the keyring under it, the upgrade record standbys
//!   follow and the seal's copy are one atomic write
//!   ([`arca_barrier::Barrier::rotate_root_key`]); the data keys and the
//!   data do not change, and the unseal (or recovery) shares stay valid.
//! - One change of the root key or of its protection at a time
//!   (`Core::root_change`); an unseal key rotation whose root key is no
//!   longer current is refused.

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::LogicalError;
use arca_seal::{Protector, RootKey, Seal};
use base64::Engine;
use zeroize::Zeroizing;

use crate::auto_seal::seal_error;
use crate::core::Core;

/// Barrier path of the current Shamir unseal key.
pub(crate) const UNSEAL_KEY_PATH: &str = "core/shamir-kek";

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    key: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Writes the unseal key at [`UNSEAL_KEY_PATH`] of `view` (the root view).
pub(crate) async fn store_unseal_key(
    view: &dyn arca_sdk::Storage,
    unseal_key: &[u8],
) -> Result<(), LogicalError> {
    let text = Zeroizing::new(b64().encode(unseal_key));
    put_json(
        view,
        UNSEAL_KEY_PATH,
        &StoredKey {
            key: text.to_string(),
        },
    )
    .await
    .map_err(Into::into)
}

impl Core {
    /// Records `unseal_key` inside the barrier if it opens the current
    /// seal record and is not recorded yet. On a standby (read-only) it is
    /// kept in memory and written once the node is active.
    pub(crate) async fn remember_unseal_key(&self, unseal_key: &[u8]) {
        match self.try_record_unseal_key(unseal_key).await {
            Ok(()) => *self.pending_unseal_key.lock() = None,
            Err(LogicalError::ReadOnly) => {
                *self.pending_unseal_key.lock() = Some(Zeroizing::new(unseal_key.to_vec()));
            }
            Err(e) => tracing::warn!("recording the unseal key for root key rotation failed: {e}"),
        }
    }

    /// From the periodic work of the active node: writes an unseal key
    /// learnt while standby.
    pub(crate) async fn record_pending_unseal_key(&self) {
        let pending = self.pending_unseal_key.lock().clone();
        if let Some(k) = pending {
            self.remember_unseal_key(&k).await;
        }
    }

    async fn try_record_unseal_key(&self, unseal_key: &[u8]) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        let root = self
            .seal
            .recover_root_key(unseal_key)
            .await
            .map_err(seal_error)?;
        if !self.barrier.root_key_is(&root) {
            // Not the current key (a rotation happened meanwhile).
            return Ok(());
        }
        if let Some(stored) = self.recorded_unseal_key().await? {
            if stored.as_slice() == unseal_key {
                return Ok(());
            }
        }
        store_unseal_key(st.root_view.as_ref(), unseal_key).await
    }

    async fn recorded_unseal_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>, LogicalError> {
        let st = self.unsealed()?;
        let stored: Option<StoredKey> = get_json(st.root_view.as_ref(), UNSEAL_KEY_PATH).await?;
        stored
            .map(|s| {
                b64()
                    .decode(s.key.as_bytes())
                    .map(Zeroizing::new)
                    .map_err(|_| LogicalError::internal("the recorded unseal key is corrupt"))
            })
            .transpose()
    }

    /// `POST sys/rotate/root`: a new root key, stored under the seal that
    /// protects the current one.
    pub(crate) async fn rotate_root_key(&self) -> Result<(), LogicalError> {
        let _change = self.root_change.lock().await;
        self.unsealed()?;
        let cfg = self
            .seal
            .config()
            .await
            .map_err(seal_error)?
            .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))?;
        let new_root = RootKey::generate();
        let ops = if cfg.is_auto() {
            let wrapper = self
                .auto_seal()
                .filter(|w| w.seal_type() == cfg.seal_type)
                .ok_or_else(|| {
                    LogicalError::invalid(crate::auto_seal::wrong_seal_message(
                        &cfg.seal_type,
                        self.configured_seal_type(),
                    ))
                })?;
            let recovery = self.seal.recovery_config().await.map_err(seal_error)?;
            Seal::record_ops(
                Protector::Auto(wrapper.as_ref()),
                &new_root,
                &cfg,
                recovery.as_ref(),
            )
            .await
            .map_err(seal_error)?
        } else {
            let not_recorded = || {
                LogicalError::invalid(
                    "this cluster's current unseal key is not recorded yet (it is recorded when the active node is unsealed or the unseal keys are rotated): unseal the active node once more, or rotate the unseal keys, then retry",
                )
            };
            let kek = self.recorded_unseal_key().await?.ok_or_else(not_recorded)?;
            match self.seal.recover_root_key(&kek).await {
                Ok(current) if self.barrier.root_key_is(&current) => {}
                _ => return Err(not_recorded()),
            }
            Seal::record_ops(Protector::UnsealKey(&kek), &new_root, &cfg, None)
                .await
                .map_err(seal_error)?
        };
        self.barrier
            .rotate_root_key(&new_root, ops)
            .await
            .map_err(LogicalError::from)?;
        tracing::info!("root key rotated: the keyring is encrypted under a new root key");
        Ok(())
    }
}
