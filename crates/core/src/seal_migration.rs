//! Seal migration, as Vault documents it: the configuration names the new
//! seal (and, when leaving an auto seal, the old one with `disabled =
//! "true"`), the node starts sealed with `sys/seal-status` `migration:
//! true`, and `sys/unseal` with `migrate: true` and a threshold of shares
//! moves the root key:
//!
//! * Shamir → auto seal: the unseal key shares open the root key; it is
//!   stored wrapped by the new seal, and the unseal key becomes the
//!   recovery key (the same shares, the same threshold).
//! * auto seal → Shamir: the recovery key shares are checked against the
//!   recovery key; the old seal opens the root key, which is stored under
//!   the recovery key, now the unseal key (the same shares unseal).
//! * auto seal → another auto seal: the recovery shares authorize, the old
//!   seal opens, the new one wraps; the recovery key stays.
//!
//! Invariants:
//! - Nothing changes unless the shares are right: the root key and the
//!   barrier are opened and the shares checked before the seal records are
//!   replaced (one atomic batch, `Seal::reseal`); a failure seals again and
//!   leaves the old seal in place.
//! - The recovery or unseal key that must exist after the move is written
//!   inside the barrier before the seal records change, so a crash in
//!   between leaves the old seal working and the migration can be redone.
//! - Raft clusters are refused for now (a sealed node cannot write to the
//!   replicated store); migrate a single-node server.

use std::sync::Arc;

use arca_sdk::LogicalError;
use arca_seal::{KeyWrapper, Protector, SealConfig};

use crate::auto_seal::seal_error;
use crate::core::Core;

/// A migration the configuration asks for.
#[derive(Clone, Debug)]
pub(crate) enum Migration {
    /// From Shamir key shares to `to`.
    ShamirToAuto { to: Arc<dyn KeyWrapper> },
    /// From the auto seal `from` to Shamir shares (`to: None`) or to the
    /// auto seal `to`.
    FromAuto {
        from: Arc<dyn KeyWrapper>,
        to: Option<Arc<dyn KeyWrapper>>,
    },
}

impl Migration {
    /// True when the shares asked for are the recovery key's.
    pub(crate) fn uses_recovery_shares(&self) -> bool {
        matches!(self, Migration::FromAuto { .. })
    }
}

impl Core {
    /// The migration pending between the stored seal and the configured
    /// ones, if any.
    pub(crate) async fn pending_migration(&self) -> Result<Option<Migration>, LogicalError> {
        if !self.initialized().await? {
            return Ok(None);
        }
        let Some(stored) = self.seal.config().await.map_err(seal_error)? else {
            return Ok(None);
        };
        let to = self.auto_seal().cloned();
        let from = self.config.migrate_from.clone();
        Ok(match (stored.is_auto(), from, to) {
            (false, None, Some(to)) => Some(Migration::ShamirToAuto { to }),
            (true, Some(from), to) if from.seal_type() == stored.seal_type => {
                Some(Migration::FromAuto { from, to })
            }
            _ => None,
        })
    }

    /// The share configuration a pending migration's `sys/unseal` takes.
    pub(crate) async fn migration_shares(&self, m: &Migration) -> Result<SealConfig, LogicalError> {
        if m.uses_recovery_shares() {
            return self.quorum_config().await;
        }
        self.seal
            .config()
            .await
            .map_err(seal_error)?
            .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))
    }

    /// Completes `m` with the combined key (unseal key or recovery key).
    /// The node is unsealed afterwards, under the new seal.
    pub(crate) async fn migrate_seal(&self, m: Migration, key: &[u8]) -> Result<(), LogicalError> {
        if self.cluster().is_some() {
            return Err(LogicalError::invalid(
                "seal migration of a raft cluster is not supported yet: migrate a single-node server",
            ));
        }
        let _g = self.lifecycle.lock().await;
        let _change = self.root_change.lock().await;
        if !self.is_sealed() {
            return Err(LogicalError::invalid("the node is already unsealed"));
        }
        let result = self.migrate_sealed(&m, key).await;
        if result.is_err() {
            self.seal_now();
        }
        result
    }

    async fn migrate_sealed(&self, m: &Migration, key: &[u8]) -> Result<(), LogicalError> {
        let stored = self
            .seal
            .config()
            .await
            .map_err(seal_error)?
            .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))?;
        match m {
            Migration::ShamirToAuto { to } => {
                let root = self.seal.recover_root_key(key).await.map_err(|_| {
                    LogicalError::invalid(
                        "Unseal failed, invalid key: the shares do not combine to this server's unseal key",
                    )
                })?;
                self.open_with_root_key(&root).await?;
                // The unseal key becomes the recovery key: the same shares.
                let recovery = SealConfig::shamir(stored.secret_shares, stored.secret_threshold);
                let st = self.unsealed()?;
                crate::auto_seal::store_recovery_key(st.root_view.as_ref(), key).await?;
                self.seal
                    .reseal(
                        Protector::Auto(to.as_ref()),
                        &root,
                        &SealConfig::auto(to.seal_type()),
                        Some(&recovery),
                    )
                    .await
                    .map_err(seal_error)?;
                st.root_view
                    .delete(crate::root_key::UNSEAL_KEY_PATH)
                    .await?;
                tracing::info!(to = to.seal_type(), "seal migrated from Shamir key shares; the unseal key shares are now the recovery key shares");
            }
            Migration::FromAuto { from, to } => {
                let root = self
                    .seal
                    .open(Protector::Auto(from.as_ref()))
                    .await
                    .map_err(seal_error)?;
                self.open_with_root_key(&root).await?;
                if !self.verify_recovery_key(key).await? {
                    return Err(LogicalError::invalid(
                        "recovery key verification failed: the key shares entered do not combine into the recovery key",
                    ));
                }
                let recovery = self.quorum_config().await?;
                let st = self.unsealed()?;
                match to {
                    None => {
                        crate::root_key::store_unseal_key(st.root_view.as_ref(), key).await?;
                        let shamir =
                            SealConfig::shamir(recovery.secret_shares, recovery.secret_threshold);
                        self.seal
                            .reseal(Protector::UnsealKey(key), &root, &shamir, None)
                            .await
                            .map_err(seal_error)?;
                        tracing::info!(from = from.seal_type(), "seal migrated to Shamir key shares; the recovery key shares are now the unseal key shares");
                    }
                    Some(to) => {
                        self.seal
                            .reseal(
                                Protector::Auto(to.as_ref()),
                                &root,
                                &SealConfig::auto(to.seal_type()),
                                Some(&recovery),
                            )
                            .await
                            .map_err(seal_error)?;
                        tracing::info!(
                            from = from.seal_type(),
                            to = to.seal_type(),
                            "seal migrated"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
