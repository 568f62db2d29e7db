//! [`Seal`]: the seal's records in physical storage (see the crate docs).

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use arca_barrier::{RootKey, KEYRING_PATH};
use arca_physical::{Op, PhysicalBackend};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::{SealConfig, SealError, ROOT_KEY_PATH, SEAL_CONFIG_PATH, UNSEAL_KEY_LEN};

const RECORD_VERSION: u8 = 1;

/// One key share (or, with a single share, the unseal key itself).
pub type Share = Zeroizing<Vec<u8>>;
const NONCE_LEN: usize = 12;

pub struct Seal {
    physical: Arc<dyn PhysicalBackend>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal").finish_non_exhaustive()
    }
}

fn cipher(unseal_key: &[u8]) -> Result<Aes256Gcm, SealError> {
    Aes256Gcm::new_from_slice(unseal_key).map_err(|_| SealError::InvalidKey)
}

fn encrypt_root_key(unseal_key: &[u8], root_key: &RootKey) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ct = cipher(unseal_key)?
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: root_key.as_bytes(),
                aad: ROOT_KEY_PATH.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

impl Seal {
    pub fn new(physical: Arc<dyn PhysicalBackend>) -> Self {
        Seal { physical }
    }

    /// The stored configuration, if any.
    pub async fn config(&self) -> Result<Option<SealConfig>, SealError> {
        match self.physical.get(SEAL_CONFIG_PATH).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| SealError::Corrupt {
                    key: SEAL_CONFIG_PATH.into(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Validates the configuration, creates the unseal key, its shares and a
    /// new root key, and stores the config and the encrypted root key. The
    /// caller then initializes the barrier with the returned root key (which
    /// is what marks the node initialized) and hands the shares out.
    pub async fn initialize(
        &self,
        shares: usize,
        threshold: usize,
    ) -> Result<(Vec<Zeroizing<Vec<u8>>>, RootKey), SealError> {
        let config = SealConfig::shamir(shares, threshold);
        config.validate()?;
        if self.physical.get(KEYRING_PATH).await?.is_some() {
            return Err(SealError::AlreadyInitialized);
        }

        let (unseal_key, key_shares) = Self::new_unseal_key(&config)?;
        let root_key = RootKey::generate();
        let record = encrypt_root_key(&unseal_key, &root_key)?;
        let config_json = serde_json::to_vec(&config).expect("config serializes");
        self.physical
            .batch(vec![
                Op::Put(ROOT_KEY_PATH.into(), record),
                Op::Put(SEAL_CONFIG_PATH.into(), config_json),
            ])
            .await?;
        Ok((key_shares, root_key))
    }

    /// A new random unseal key and its shares for `config` (validated
    /// first): with one share, the share is the key itself. Nothing is
    /// stored: [`Seal::reseal`] stores the key once the operators have it.
    pub fn new_unseal_key(
        config: &SealConfig,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<Share>), SealError> {
        config.validate()?;
        let mut key = Zeroizing::new(vec![0u8; UNSEAL_KEY_LEN]);
        OsRng.fill_bytes(&mut key);
        let shares = if config.secret_shares == 1 {
            vec![key.clone()]
        } else {
            arca_shamir::split(&key, config.secret_shares, config.secret_threshold)?
        };
        Ok((key, shares))
    }

    /// Replaces the unseal key (key rotation): the same root key, encrypted
    /// under `new_unseal_key`, and the new share configuration, in one
    /// atomic batch. Afterwards only the new shares unseal; the data is
    /// untouched (the root key did not change).
    pub async fn reseal(
        &self,
        new_unseal_key: &[u8],
        root_key: &RootKey,
        config: &SealConfig,
    ) -> Result<(), SealError> {
        config.validate()?;
        let record = encrypt_root_key(new_unseal_key, root_key)?;
        let config_json = serde_json::to_vec(config).expect("config serializes");
        self.physical
            .batch(vec![
                Op::Put(ROOT_KEY_PATH.into(), record),
                Op::Put(SEAL_CONFIG_PATH.into(), config_json),
            ])
            .await?;
        Ok(())
    }

    /// Decrypts the stored root key with the (combined) unseal key. A key that
    /// does not decrypt it, including one of the wrong length, gives
    /// [`SealError::InvalidKey`].
    pub async fn recover_root_key(&self, unseal_key: &[u8]) -> Result<RootKey, SealError> {
        let record = self
            .physical
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(SealError::NotInitialized)?;
        Self::open_root_key_record(&record, unseal_key)
    }

    /// The stored (encrypted) root key record, as a joining node needs it
    /// before it has the cluster's data.
    pub async fn root_key_record(&self) -> Result<Option<Vec<u8>>, SealError> {
        Ok(self.physical.get(ROOT_KEY_PATH).await?)
    }

    /// Decrypts a root key record with the unseal key.
    pub fn open_root_key_record(record: &[u8], unseal_key: &[u8]) -> Result<RootKey, SealError> {
        if record.len() < 1 + NONCE_LEN + 16 || record[0] != RECORD_VERSION {
            return Err(SealError::Corrupt {
                key: ROOT_KEY_PATH.into(),
                reason: format!("bad framing ({} bytes)", record.len()),
            });
        }
        let pt = Zeroizing::new(
            cipher(unseal_key)?
                .decrypt(
                    Nonce::from_slice(&record[1..1 + NONCE_LEN]),
                    Payload {
                        msg: &record[1 + NONCE_LEN..],
                        aad: ROOT_KEY_PATH.as_bytes(),
                    },
                )
                .map_err(|_| SealError::InvalidKey)?,
        );
        RootKey::from_bytes(&pt).map_err(|e| SealError::Corrupt {
            key: ROOT_KEY_PATH.into(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnsealProgress;
    use arca_barrier::Barrier;
    use arca_physical::InmemBackend;

    /// Key rotation: the new shares open the same root key, the old ones
    /// no longer do, and the new share configuration is stored.
    #[tokio::test]
    async fn reseal_replaces_the_unseal_key_and_keeps_the_root_key() {
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        let (old_shares, root) = seal.initialize(3, 2).await.unwrap();
        let old_key = arca_shamir::combine(&[&old_shares[0][..], &old_shares[2][..]]).unwrap();
        let config = SealConfig::shamir(5, 3);
        let (new_key, new_shares) = Seal::new_unseal_key(&config).unwrap();
        assert_eq!(new_shares.len(), 5);
        let recovered = seal.recover_root_key(&old_key).await.unwrap();
        seal.reseal(&new_key, &recovered, &config).await.unwrap();
        assert!(matches!(
            seal.recover_root_key(&old_key).await,
            Err(SealError::InvalidKey)
        ));
        let combined =
            arca_shamir::combine(&[&new_shares[4][..], &new_shares[1][..], &new_shares[2][..]])
                .unwrap();
        let again = seal.recover_root_key(&combined).await.unwrap();
        assert_eq!(again.as_bytes(), root.as_bytes());
        assert_eq!(seal.config().await.unwrap(), Some(config));
        // An invalid configuration is refused before anything is written.
        assert!(Seal::new_unseal_key(&SealConfig::shamir(2, 3)).is_err());
        assert!(seal
            .reseal(&new_key, &recovered, &SealConfig::shamir(3, 1))
            .await
            .is_err());
        assert!(seal.recover_root_key(&combined).await.is_ok());
    }

    #[tokio::test]
    async fn initialize_then_unseal_with_threshold_shares() {
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        assert_eq!(seal.config().await.unwrap(), None);
        let (shares, root) = seal.initialize(5, 3).await.unwrap();
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|s| s.len() == 33));
        assert_eq!(seal.config().await.unwrap(), Some(SealConfig::shamir(5, 3)));

        let barrier = Barrier::new(physical.clone());
        barrier.initialize(&root).await.unwrap();
        barrier.put("k", b"v".to_vec()).await.unwrap();
        barrier.seal();

        let config = seal.config().await.unwrap().unwrap();
        let mut progress = UnsealProgress::for_config(&config);
        assert_eq!(progress.submit(&shares[3]).unwrap(), None);
        assert_eq!(progress.submit(&shares[1]).unwrap(), None);
        let unseal_key = progress.submit(&shares[4]).unwrap().unwrap();
        let recovered = seal.recover_root_key(&unseal_key).await.unwrap();
        assert_eq!(recovered.as_bytes(), root.as_bytes());
        barrier.unseal(&recovered).await.unwrap();
        assert_eq!(barrier.get("k").await.unwrap().unwrap(), b"v");

        assert_eq!(
            seal.initialize(5, 3).await.unwrap_err(),
            SealError::AlreadyInitialized
        );
    }

    #[tokio::test]
    async fn single_share_is_the_unseal_key() {
        let seal = Seal::new(Arc::new(InmemBackend::new()));
        let (shares, root) = seal.initialize(1, 1).await.unwrap();
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].len(), UNSEAL_KEY_LEN);
        let got = seal.recover_root_key(&shares[0]).await.unwrap();
        assert_eq!(got.as_bytes(), root.as_bytes());
    }

    #[tokio::test]
    async fn wrong_unseal_key_is_invalid_key() {
        let seal = Seal::new(Arc::new(InmemBackend::new()));
        assert_eq!(
            seal.recover_root_key(&[0; 32]).await.unwrap_err(),
            SealError::NotInitialized
        );
        let (shares, _) = seal.initialize(3, 2).await.unwrap();
        assert_eq!(
            seal.recover_root_key(&[0; 32]).await.unwrap_err(),
            SealError::InvalidKey
        );
        assert_eq!(
            seal.recover_root_key(&[0; 5]).await.unwrap_err(),
            SealError::InvalidKey
        );
        // Fewer shares than the threshold cannot be combined here (2 needed),
        // and a combination of shares from another split is simply wrong.
        let other = arca_shamir::split(&[9; 32], 3, 2).unwrap();
        let mixed = arca_shamir::combine(&[&shares[0], &other[1]]);
        if let Ok(k) = mixed {
            assert_eq!(
                seal.recover_root_key(&k).await.unwrap_err(),
                SealError::InvalidKey
            );
        }
    }

    #[tokio::test]
    async fn invalid_configs_are_refused_and_nothing_is_written() {
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        for (n, t, msg) in [
            (
                3,
                1,
                "threshold must be greater than one for multiple shares",
            ),
            (3, 4, "threshold cannot be larger than shares"),
            (0, 0, "shares must be at least one"),
            (2, 0, "threshold must be at least one"),
            (256, 2, "shares must be less than 256"),
        ] {
            let err = seal.initialize(n, t).await.unwrap_err();
            assert_eq!(err, SealError::InvalidConfig(msg.into()), "{n}/{t}");
        }
        assert!(physical.is_empty());
    }

    #[tokio::test]
    async fn an_interrupted_initialization_can_be_redone() {
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        let (first, _) = seal.initialize(3, 2).await.unwrap();
        // The barrier was never initialized: initializing again is allowed and
        // replaces the records.
        let (second, root) = seal.initialize(2, 2).await.unwrap();
        assert_eq!(seal.config().await.unwrap(), Some(SealConfig::shamir(2, 2)));
        let old_key = arca_shamir::combine(&[&first[0], &first[1]]).unwrap();
        assert_eq!(
            seal.recover_root_key(&old_key).await.unwrap_err(),
            SealError::InvalidKey
        );
        let key = arca_shamir::combine(&[&second[0], &second[1]]).unwrap();
        assert_eq!(
            seal.recover_root_key(&key).await.unwrap().as_bytes(),
            root.as_bytes()
        );
    }

    #[tokio::test]
    async fn root_key_record_holds_no_plaintext_and_detects_tampering() {
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        let (shares, root) = seal.initialize(1, 1).await.unwrap();
        let record = physical.get(ROOT_KEY_PATH).await.unwrap().unwrap();
        assert_eq!(record.len(), 1 + 12 + 32 + 16);
        assert!(!record.windows(32).any(|w| w == root.as_bytes()));
        assert!(!record.windows(32).any(|w| w == shares[0].as_slice()));

        let mut bad_version = record.clone();
        bad_version[0] = 2;
        physical.put(ROOT_KEY_PATH, bad_version).await.unwrap();
        assert!(matches!(
            seal.recover_root_key(&shares[0]).await,
            Err(SealError::Corrupt { .. })
        ));
        let mut flipped = record.clone();
        flipped[20] ^= 1;
        physical.put(ROOT_KEY_PATH, flipped).await.unwrap();
        assert_eq!(
            seal.recover_root_key(&shares[0]).await.unwrap_err(),
            SealError::InvalidKey
        );
        physical.put(ROOT_KEY_PATH, record).await.unwrap();
        seal.recover_root_key(&shares[0]).await.unwrap();
    }
}
