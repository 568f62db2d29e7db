//! The Shamir seal: how the barrier's root key is protected at rest and
//! recovered by operators.
//!
//! At initialization a random 32-byte *unseal key* is generated and split
//! with Shamir's scheme into `secret_shares` key shares, any
//! `secret_threshold` of which rebuild it (with a single share, that share is
//! the unseal key itself). A fresh [`RootKey`] is generated and stored
//! encrypted under the unseal key. Unsealing collects shares in an
//! [`UnsealProgress`], combines them into the unseal key, and
//! [`Seal::recover_root_key`] decrypts the root key for
//! [`Barrier::unseal`](arca_barrier::Barrier::unseal).
//!
//! Physical records (outside the barrier, since they are needed to open it):
//! - [`SEAL_CONFIG_PATH`]: the [`SealConfig`] as plaintext JSON (shares and
//!   threshold are public: `sys/seal-status` reports them while sealed);
//! - [`ROOT_KEY_PATH`]: `version (1) ‖ nonce (12) ‖ AES-256-GCM(unseal key,
//!   root key) ‖ tag`, with the record name as associated data.
//!
//! Invariants:
//! - The unseal key and the shares exist only in memory, in zeroizing
//!   buffers, and are never stored.
//! - Both records are written in one atomic batch.
//! - "Initialized" means the barrier's keyring exists: a seal configuration
//!   left behind by an initialization that crashed before the barrier was
//!   initialized does not block a new initialization.
//! - A wrong unseal key is reported as [`SealError::InvalidKey`], never as
//!   corruption.

mod progress;
mod seal;
mod wrapper;

use arca_physical::PhysicalError;
use arca_shamir::ShamirError;
use serde::{Deserialize, Serialize};

pub use arca_barrier::RootKey;
pub use progress::UnsealProgress;
pub use seal::{Protector, Seal};
pub use wrapper::{KeyWrapper, TestWrapper, WrapError};

/// Physical key of the plaintext seal configuration.
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Physical key of the root key encrypted under the unseal key.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Physical key of the plaintext recovery key configuration (auto seals
/// only: shares and threshold of the recovery key, which `sys/seal-status`
/// reports while sealed). The recovery key itself is kept inside the
/// barrier by core.
pub const RECOVERY_CONFIG_PATH: &str = "core/recovery-config";
/// The seal types whose key lives outside the node (auto-unseal).
pub const AUTO_SEAL_TYPES: &[&str] = &["transit", "pkcs11", "test"];
/// Length of the unseal key (an AES-256 key).
pub const UNSEAL_KEY_LEN: usize = 32;
/// Length of one key share when there are several: the key plus the x byte.
pub const SHARE_LEN: usize = UNSEAL_KEY_LEN + 1;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SealError {
    /// Vault's wording, e.g. `invalid seal configuration: threshold cannot be
    /// larger than shares`.
    #[error("invalid seal configuration: {0}")]
    InvalidConfig(String),
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("Vault is not initialized")]
    NotInitialized,
    /// The (combined) unseal key does not decrypt the root key.
    #[error("invalid unseal key: cipher: message authentication failed")]
    InvalidKey,
    #[error("invalid key share: expected {expected} bytes, got {got}")]
    InvalidShareLength { expected: usize, got: usize },
    #[error("this key share has already been provided during this unseal attempt")]
    DuplicateShare,
    #[error("a key share with index {0} has already been provided during this unseal attempt")]
    DuplicateShareIndex(u8),
    #[error("cannot combine key shares: {0}")]
    Shamir(#[from] ShamirError),
    #[error("seal record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("physical storage error: {0}")]
    Physical(#[from] PhysicalError),
    /// The auto seal's key service failed (see [`WrapError`]).
    #[error("{seal_type} seal: {source}")]
    Wrapper {
        seal_type: String,
        #[source]
        source: WrapError,
    },
    /// The stored root key is protected by another kind of seal than the
    /// one given (a seal migration is needed).
    #[error("the root key is stored under a {stored} seal, but this node is configured with a {configured} seal")]
    WrongSealType { stored: String, configured: String },
}

/// The seal configuration, with Vault's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// Always `"shamir"` for now.
    #[serde(rename = "type")]
    pub seal_type: String,
    pub secret_shares: usize,
    pub secret_threshold: usize,
    /// How many copies of the unseal material the seal stores itself (Vault
    /// reports 1 for a Shamir seal that stores the encrypted root key).
    #[serde(default)]
    pub stored_shares: usize,
}

impl SealConfig {
    pub fn shamir(secret_shares: usize, secret_threshold: usize) -> Self {
        SealConfig {
            seal_type: "shamir".into(),
            secret_shares,
            secret_threshold,
            stored_shares: 1,
        }
    }

    /// An auto seal's configuration: one stored copy of the root key, no
    /// shares.
    pub fn auto(seal_type: &str) -> Self {
        SealConfig {
            seal_type: seal_type.into(),
            secret_shares: 1,
            secret_threshold: 1,
            stored_shares: 1,
        }
    }

    /// True for a seal whose key lives outside the node.
    pub fn is_auto(&self) -> bool {
        self.seal_type != "shamir"
    }

    /// A recovery key configuration (Vault's `ValidateRecovery`): no
    /// recovery key at all (0 shares, 0 threshold) is allowed; otherwise
    /// the Shamir rules apply.
    pub fn validate_recovery(&self) -> Result<(), SealError> {
        if self.secret_shares == 0 && self.secret_threshold == 0 {
            return Ok(());
        }
        SealConfig {
            stored_shares: 0,
            ..self.clone()
        }
        .validate()
    }

    /// Vault's checks, in Vault's order and words.
    pub fn validate(&self) -> Result<(), SealError> {
        let bad = |m: &str| Err(SealError::InvalidConfig(m.into()));
        if self.is_auto() {
            if !AUTO_SEAL_TYPES.contains(&self.seal_type.as_str()) {
                return bad(&format!("unsupported seal type {:?}", self.seal_type));
            }
            if self.secret_shares != 1 || self.secret_threshold != 1 {
                return bad("an auto seal keeps one stored key: secret_shares and secret_threshold must be 1");
            }
            return Ok(());
        }
        if self.secret_shares < 1 {
            return bad("shares must be at least one");
        }
        if self.secret_threshold < 1 {
            return bad("threshold must be at least one");
        }
        if self.secret_shares > 1 && self.secret_threshold == 1 {
            return bad("threshold must be greater than one for multiple shares");
        }
        if self.secret_shares > 255 {
            return bad("shares must be less than 256");
        }
        if self.secret_threshold > 255 {
            return bad("threshold must be less than 256");
        }
        if self.secret_threshold > self.secret_shares {
            return bad("threshold cannot be larger than shares");
        }
        if self.stored_shares > 1 {
            return bad("stored keys cannot be larger than 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(shares: usize, threshold: usize) -> String {
        SealConfig::shamir(shares, threshold)
            .validate()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn config_validation_uses_vaults_messages() {
        assert_eq!(
            err(0, 0),
            "invalid seal configuration: shares must be at least one"
        );
        assert_eq!(
            err(3, 0),
            "invalid seal configuration: threshold must be at least one"
        );
        assert_eq!(
            err(3, 1),
            "invalid seal configuration: threshold must be greater than one for multiple shares"
        );
        assert_eq!(
            err(256, 3),
            "invalid seal configuration: shares must be less than 256"
        );
        assert_eq!(
            err(3, 4),
            "invalid seal configuration: threshold cannot be larger than shares"
        );
        for (n, t) in [(1, 1), (2, 2), (5, 3), (255, 255), (255, 2)] {
            SealConfig::shamir(n, t).validate().unwrap();
        }
    }

    #[test]
    fn config_json_uses_vaults_field_names() {
        let c = SealConfig::shamir(5, 3);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "shamir", "secret_shares": 5, "secret_threshold": 3, "stored_shares": 1})
        );
        let back: SealConfig =
            serde_json::from_str(r#"{"type":"shamir","secret_shares":5,"secret_threshold":3}"#)
                .unwrap();
        assert_eq!(back.stored_shares, 0);
        assert_eq!(back.secret_threshold, 3);
    }
}
