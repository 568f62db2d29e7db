//! The encryption barrier: everything Arca stores, except the seal's bootstrap
//! records, passes through here and reaches the physical backend encrypted —
//! values *and* key names.
//!
//! # Keys
//!
//! The [`RootKey`] (32 bytes, held by the seal) encrypts one record, the
//! keyring, at physical key [`KEYRING_PATH`]. The keyring holds:
//! - the data keys, AES-256-GCM, one per *term* (1, 2, …). [`Barrier::rotate`]
//!   adds a term that every later write uses; older terms stay so that values
//!   written under them still decrypt;
//! - the *path key*, 32 bytes for AES-256-GCM-SIV, created once by
//!   [`Barrier::initialize`] and never rotated (rotating it would mean
//!   rewriting every key in the store);
//! - the [`RotationConfig`]: after how many encryptions (and, optionally,
//!   how long) a term is rotated automatically.
//!
//! [`Barrier::rotate_root_key`] re-encrypts the keyring under a new root
//! key, in one batch with [`ROOT_UPGRADE_PATH`] (the new root key under the
//! active term's data key) and the seal's copy of the new root key. A node
//! that still holds the old root key follows at its next
//! [`Barrier::reload_keyring`] through that record. MACs that must outlive
//! a root key rotation (the usage records) use a key derived from the path
//! key instead of the root key.
//!
//! # Encryption counts
//!
//! Values use random 96-bit nonces, safe for about 2³² encryptions per key.
//! Every encryption is counted against the active term before it happens,
//! in reservations persisted at `core/keyring-usage/<term>/<writer>` (see
//! `usage.rs`): the count survives restarts and leader changes and can
//! only err upwards. When the count would pass `max_operations` (by default
//! 3 865 470 566, about 90% of 2³², as in Vault) the barrier rotates first.
//!
//! # Values
//!
//! `version (1) ‖ term (u32 big-endian) ‖ nonce (12 random bytes) ‖ ciphertext
//! ‖ tag (16)`. The associated data is the value's full *logical* path, so a
//! value copied or moved to another key fails to decrypt
//! ([`BarrierError::Corrupt`]).
//!
//! # Key names
//!
//! A logical path `s1/s2/…/sn` is stored at physical key `b/e1/e2/…/en`, where
//! `ei` is `base64url-nopad(AES-256-GCM-SIV(path key, nonce = 0, plaintext =
//! si, associated data = "s1/…/s(i-1)/"))`. Encryption is deterministic (the
//! same name under the same parent always gives the same segment), which is
//! what lets `get` find a key and `list` walk one folder. AES-GCM-SIV is
//! misuse-resistant, so the fixed nonce reveals only equality of names under
//! the same parent — never the names, and with the parent in the associated
//! data not even that the same name appears under two parents. It does reveal
//! the tree's shape, the number of keys per folder and each name's length
//! (+16 bytes). Because segments are encrypted one by one, the physical store
//! keeps the folder structure and the physical `list` works per folder:
//! [`Barrier::list`] decrypts the children and sorts them in plaintext byte
//! order (the physical order is random); a sub-folder keeps its trailing `/`.
//!
//! # Invariants
//! - Sealed ⇔ no keyring in memory; every data operation then fails with
//!   [`BarrierError::Sealed`]. Sealing drops the keyring, whose keys are wiped
//!   when the last operation already in flight finishes.
//! - Keyring changes (initialize, unseal, rotate, reload) are serialized; the
//!   keyring is persisted before it replaces the one in memory.
//! - A node that reads a value under a term it does not know (another node
//!   rotated) reloads the keyring once before decrypting; core should still
//!   call [`Barrier::reload_keyring`] when a replicated write to
//!   [`KEYRING_PATH`] is applied.
//! - The physical store holds only `core/…` bootstrap records (the keyring
//!   and its usage records here; the seal's config and encrypted root key)
//!   and `b/…` ciphertext.
//! - A physical [`PhysicalError::ReadOnly`] surfaces as
//!   [`BarrierError::ReadOnly`] and, through a [`View`], as
//!   [`StorageError::ReadOnly`] (so core can forward the request).
//!
//! [`View`] scopes the barrier to a prefix (a mount's `logical/<uuid>/`) and
//! implements [`arca_sdk::Storage`].

mod barrier;
mod keyring;
mod path;
mod usage;
mod view;

use arca_physical::PhysicalError;
use arca_sdk::StorageError;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use barrier::Barrier;
pub use keyring::{KEYRING_PATH, ROOT_UPGRADE_PATH};
pub use path::DATA_PREFIX;
pub use usage::{RotationConfig, USAGE_PREFIX};
pub use view::View;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarrierError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("barrier is not initialized")]
    NotInitialized,
    #[error("barrier is already initialized")]
    AlreadyInitialized,
    /// The root key does not decrypt the keyring.
    #[error("invalid root key: the keyring cannot be decrypted with it")]
    InvalidKey,
    #[error("root key must be {expected} bytes, got {got}")]
    InvalidKeyLength { expected: usize, got: usize },
    #[error("invalid storage path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// The physical backend refused a write (a standby node).
    #[error("storage is read-only on this node")]
    ReadOnly,
    #[error("stored value at {key:?} cannot be decrypted or decoded: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid key rotation settings: {0}")]
    InvalidRotationConfig(String),
    #[error("physical storage error: {0}")]
    Physical(#[source] PhysicalError),
}

impl From<PhysicalError> for BarrierError {
    fn from(e: PhysicalError) -> Self {
        match e {
            PhysicalError::ReadOnly => BarrierError::ReadOnly,
            other => BarrierError::Physical(other),
        }
    }
}

impl From<BarrierError> for StorageError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => StorageError::Sealed,
            BarrierError::ReadOnly => StorageError::ReadOnly,
            BarrierError::Corrupt { key, reason } => StorageError::Corrupt { key, reason },
            other => StorageError::Backend(other.to_string()),
        }
    }
}

impl From<BarrierError> for arca_sdk::LogicalError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => arca_sdk::LogicalError::Sealed,
            BarrierError::ReadOnly => arca_sdk::LogicalError::ReadOnly,
            BarrierError::InvalidRotationConfig(m) => arca_sdk::LogicalError::InvalidRequest(m),
            other => arca_sdk::LogicalError::Internal(other.to_string()),
        }
    }
}

/// The 32-byte key that encrypts the keyring. Wiped on drop; never printed.
#[derive(Clone)]
pub struct RootKey(Zeroizing<[u8; 32]>);

impl RootKey {
    pub const LEN: usize = 32;

    /// A 32-byte key for `purpose`: HMAC-SHA256(root key, purpose). Nodes
    /// that hold the same root key derive the same key.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .expect("HMAC takes any key length");
        m.update(purpose.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&m.finalize().into_bytes());
        out
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        RootKey(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BarrierError> {
        if bytes.len() != Self::LEN {
            return Err(BarrierError::InvalidKeyLength {
                expected: Self::LEN,
                got: bytes.len(),
            });
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(bytes);
        Ok(RootKey(k))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// The active data key, as `sys/key-status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: DateTime<Utc>,
    /// Encryptions under this term across the cluster: an upper bound, as
    /// persisted reservations count in full (see the crate docs).
    pub encryptions: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_checks_length_and_redacts() {
        let k = RootKey::generate();
        let again = RootKey::from_bytes(k.as_bytes()).unwrap();
        assert_eq!(k.as_bytes(), again.as_bytes());
        assert_ne!(RootKey::generate().as_bytes(), k.as_bytes());
        assert_eq!(
            RootKey::from_bytes(&[0; 31]).unwrap_err(),
            BarrierError::InvalidKeyLength {
                expected: 32,
                got: 31
            }
        );
        assert_eq!(format!("{k:?}"), "RootKey(<redacted>)");
    }

    #[test]
    fn errors_map_to_storage_errors() {
        assert_eq!(
            StorageError::from(BarrierError::Sealed),
            StorageError::Sealed
        );
        assert_eq!(
            StorageError::from(BarrierError::from(PhysicalError::ReadOnly)),
            StorageError::ReadOnly
        );
        assert!(matches!(
            StorageError::from(BarrierError::from(PhysicalError::Io("disk".into()))),
            StorageError::Backend(m) if m.contains("disk")
        ));
        assert!(matches!(
            StorageError::from(BarrierError::Corrupt {
                key: "k".into(),
                reason: "r".into()
            }),
            StorageError::Corrupt { .. }
        ));
    }

    #[test]
    fn errors_map_to_logical_errors_by_variant() {
        use arca_sdk::LogicalError;
        assert_eq!(
            LogicalError::from(BarrierError::from(PhysicalError::ReadOnly)),
            LogicalError::ReadOnly
        );
        assert_eq!(
            LogicalError::from(BarrierError::Sealed),
            LogicalError::Sealed
        );
        assert!(matches!(
            LogicalError::from(BarrierError::InvalidRotationConfig("x".into())),
            LogicalError::InvalidRequest(m) if m == "x"
        ));
        let io = BarrierError::from(PhysicalError::Io("disk full".into()));
        assert!(
            std::error::Error::source(&io).is_some(),
            "the source is kept"
        );
        assert!(
            matches!(LogicalError::from(io), LogicalError::Internal(m) if m.contains("disk full"))
        );
    }
}
