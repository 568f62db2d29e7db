//! Auto-unseal: a [`KeyWrapper`] outside the node (another Vault-API
//! server's transit engine, a PKCS#11 module) encrypts the root key, so a
//! node that restarts opens it without operators.
//!
//! The wrapper sees only the 32-byte root key, once at initialization (and
//! at a seal migration), and gives back an opaque blob that only it can
//! open again. The blob is stored at [`ROOT_KEY_PATH`](crate::ROOT_KEY_PATH)
//! as `version (2) ‖ seal type length (1) ‖ seal type ‖ blob`, so that a
//! node configured with another seal type says so instead of failing to
//! decrypt.

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Why a wrapper could not encrypt or decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// The key service could not be reached or answered with a server
    /// error: worth retrying later (the auto-unseal loop does, with
    /// backoff).
    #[error("{0}")]
    Unavailable(String),
    /// The key service answered and refused: a bad token, a missing key,
    /// a blob it cannot decrypt. Retrying does not help until an operator
    /// fixes the cause.
    #[error("{0}")]
    Refused(String),
}

impl WrapError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, WrapError::Unavailable(_))
    }
}

/// Encrypts and decrypts the root key with a key that never leaves an
/// external service.
#[async_trait]
pub trait KeyWrapper: Send + Sync + std::fmt::Debug {
    /// The seal type as `sys/seal-status` and the configuration name it
    /// (`transit`, `pkcs11`).
    fn seal_type(&self) -> &'static str;
    /// Encrypts `plaintext`; the result is opaque to the node.
    async fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapError>;
    /// Decrypts a blob [`wrap`](Self::wrap) produced.
    async fn unwrap(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError>;
}

/// A wrapper holding its AES-256-GCM key in memory, for unit tests of the
/// records and of core's flows (no real key service is involved).
#[derive(Debug)]
pub struct TestWrapper {
    key: Zeroizing<[u8; 32]>,
    /// When set, every call fails as if the service were down.
    pub down: std::sync::atomic::AtomicBool,
}

impl TestWrapper {
    pub fn new(key: [u8; 32]) -> Self {
        TestWrapper {
            key: Zeroizing::new(key),
            down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn check(&self) -> Result<aes_gcm::Aes256Gcm, WrapError> {
        use aes_gcm::KeyInit;
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(WrapError::Unavailable("test wrapper is down".into()));
        }
        Ok(aes_gcm::Aes256Gcm::new_from_slice(self.key.as_ref()).expect("32-byte key"))
    }
}

#[async_trait]
impl KeyWrapper for TestWrapper {
    fn seal_type(&self) -> &'static str {
        "test"
    }

    async fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapError> {
        use aes_gcm::aead::Aead;
        use rand::RngCore;
        let c = self.check()?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(
            c.encrypt(aes_gcm::Nonce::from_slice(&nonce), plaintext)
                .map_err(|_| WrapError::Refused("encryption failed".into()))?,
        );
        Ok(out)
    }

    async fn unwrap(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        use aes_gcm::aead::Aead;
        let c = self.check()?;
        if blob.len() < 12 {
            return Err(WrapError::Refused("blob too short".into()));
        }
        c.decrypt(aes_gcm::Nonce::from_slice(&blob[..12]), &blob[12..])
            .map(Zeroizing::new)
            .map_err(|_| WrapError::Refused("cipher: message authentication failed".into()))
    }
}
