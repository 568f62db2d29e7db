//! [`Seal`]: the seal's records in physical storage (see the crate docs).

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use arca_barrier::{RootKey, KEYRING_PATH};
use arca_physical::{Op, PhysicalBackend};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::wrapper::KeyWrapper;
use crate::{
    SealConfig, SealError, RECOVERY_CONFIG_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH, UNSEAL_KEY_LEN,
};

/// A root key encrypted under the Shamir unseal key.
const RECORD_VERSION: u8 = 1;
/// A root key wrapped by an auto seal.
const AUTO_RECORD_VERSION: u8 = 2;

/// What protects the stored root key.
#[derive(Clone, Copy, Debug)]
pub enum Protector<'a> {
    /// The unseal key the Shamir shares combine into.
    UnsealKey(&'a [u8]),
    /// An auto seal's external key.
    Auto(&'a dyn KeyWrapper),
}

impl Protector<'_> {
    fn config_type(&self) -> &str {
        match self {
            Protector::UnsealKey(_) => "shamir",
            Protector::Auto(w) => w.seal_type(),
        }
    }
}

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

async fn seal_record(protector: Protector<'_>, root_key: &RootKey) -> Result<Vec<u8>, SealError> {
    match protector {
        Protector::UnsealKey(k) => encrypt_root_key(k, root_key),
        Protector::Auto(w) => {
            let blob = w
                .wrap(root_key.as_bytes())
                .await
                .map_err(|source| SealError::Wrapper {
                    seal_type: w.seal_type().into(),
                    source,
                })?;
            let t = w.seal_type().as_bytes();
            let mut out = Vec::with_capacity(2 + t.len() + blob.len());
            out.push(AUTO_RECORD_VERSION);
            out.push(t.len() as u8);
            out.extend_from_slice(t);
            out.extend_from_slice(&blob);
            Ok(out)
        }
    }
}

fn corrupt(reason: String) -> SealError {
    SealError::Corrupt {
        key: ROOT_KEY_PATH.into(),
        reason,
    }
}

/// The seal type a root key record was written by.
pub fn record_seal_type(record: &[u8]) -> Result<String, SealError> {
    match record.first() {
        Some(&RECORD_VERSION) => Ok("shamir".into()),
        Some(&AUTO_RECORD_VERSION) if record.len() >= 2 => {
            let n = record[1] as usize;
            let t = record
                .get(2..2 + n)
                .ok_or_else(|| corrupt("truncated seal type".into()))?;
            Ok(String::from_utf8_lossy(t).into_owned())
        }
        _ => Err(corrupt(format!("bad framing ({} bytes)", record.len()))),
    }
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
    /// new root key, and stores the config and the encrypted root key
    /// (returned: the unseal key, its shares, the root key). The
    /// caller then initializes the barrier with the returned root key (which
    /// is what marks the node initialized) and hands the shares out.
    pub async fn initialize(
        &self,
        shares: usize,
        threshold: usize,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<Share>, RootKey), SealError> {
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
        Ok((unseal_key, key_shares, root_key))
    }

    /// Initialization under an auto seal: a new root key, wrapped by
    /// `wrapper`, stored with the auto seal's configuration and the
    /// recovery key configuration (validated first, as Vault's
    /// `ValidateRecovery`). The recovery key itself is core's to create
    /// and keep (inside the barrier).
    pub async fn initialize_auto(
        &self,
        wrapper: &dyn KeyWrapper,
        recovery: &SealConfig,
    ) -> Result<RootKey, SealError> {
        recovery.validate_recovery()?;
        if self.physical.get(KEYRING_PATH).await?.is_some() {
            return Err(SealError::AlreadyInitialized);
        }
        let root_key = RootKey::generate();
        self.reseal(
            Protector::Auto(wrapper),
            &root_key,
            &SealConfig::auto(wrapper.seal_type()),
            Some(recovery),
        )
        .await?;
        Ok(root_key)
    }

    /// The recovery key configuration (auto seals), if any.
    pub async fn recovery_config(&self) -> Result<Option<SealConfig>, SealError> {
        match self.physical.get(RECOVERY_CONFIG_PATH).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| SealError::Corrupt {
                    key: RECOVERY_CONFIG_PATH.into(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Replaces the recovery key configuration (a recovery key rotation).
    pub async fn set_recovery_config(&self, recovery: &SealConfig) -> Result<(), SealError> {
        recovery.validate_recovery()?;
        let json = serde_json::to_vec(recovery).expect("config serializes");
        self.physical.put(RECOVERY_CONFIG_PATH, json).await?;
        Ok(())
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

    /// Stores `root_key` under `protector` with the seal configuration
    /// `config` and, for an auto seal, the recovery configuration (absent:
    /// removed), in one atomic batch: a key rotation (the same root key
    /// under a new unseal key) or a seal migration. Afterwards only the new
    /// protector opens the root key; the data is untouched.
    pub async fn reseal(
        &self,
        protector: Protector<'_>,
        root_key: &RootKey,
        config: &SealConfig,
        recovery: Option<&SealConfig>,
    ) -> Result<(), SealError> {
        let ops = Self::record_ops(protector, root_key, config, recovery).await?;
        self.physical.batch(ops).await?;
        Ok(())
    }

    /// The physical writes that store `root_key` under `protector` with
    /// `config` and the recovery configuration (absent: removed), for the
    /// caller to commit in one batch (with the keyring, when the root key
    /// itself changes: [`arca_barrier::Barrier::rotate_root_key`]).
    pub async fn record_ops(
        protector: Protector<'_>,
        root_key: &RootKey,
        config: &SealConfig,
        recovery: Option<&SealConfig>,
    ) -> Result<Vec<Op>, SealError> {
        config.validate()?;
        if config.seal_type != protector.config_type() {
            return Err(SealError::InvalidConfig(format!(
                "a {} seal configuration cannot describe a root key protected by a {} seal",
                config.seal_type,
                protector.config_type()
            )));
        }
        if let Some(r) = recovery {
            r.validate_recovery()?;
        }
        let record = seal_record(protector, root_key).await?;
        let config_json = serde_json::to_vec(config).expect("config serializes");
        let recovery_op = match recovery {
            Some(r) => Op::Put(
                RECOVERY_CONFIG_PATH.into(),
                serde_json::to_vec(r).expect("config serializes"),
            ),
            None => Op::Delete(RECOVERY_CONFIG_PATH.into()),
        };
        Ok(vec![
            Op::Put(ROOT_KEY_PATH.into(), record),
            Op::Put(SEAL_CONFIG_PATH.into(), config_json),
            recovery_op,
        ])
    }

    /// Opens the stored root key with `protector`.
    pub async fn open(&self, protector: Protector<'_>) -> Result<RootKey, SealError> {
        let record = self
            .physical
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(SealError::NotInitialized)?;
        Self::open_record(&record, protector).await
    }

    /// Opens a root key record (this node's, or the one a join challenge
    /// carries) with `protector`. A record of another seal type gives
    /// [`SealError::WrongSealType`].
    pub async fn open_record(
        record: &[u8],
        protector: Protector<'_>,
    ) -> Result<RootKey, SealError> {
        let stored = record_seal_type(record)?;
        if stored != protector.config_type() {
            return Err(SealError::WrongSealType {
                stored,
                configured: protector.config_type().into(),
            });
        }
        match protector {
            Protector::UnsealKey(k) => Self::open_root_key_record(record, k),
            Protector::Auto(w) => {
                let blob = &record[2 + record[1] as usize..];
                let pt = w.unwrap(blob).await.map_err(|source| SealError::Wrapper {
                    seal_type: w.seal_type().into(),
                    source,
                })?;
                RootKey::from_bytes(&pt).map_err(|e| corrupt(e.to_string()))
            }
        }
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
    use super::record_seal_type;
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
        let (_, old_shares, root) = seal.initialize(3, 2).await.unwrap();
        let old_key = arca_shamir::combine(&[&old_shares[0][..], &old_shares[2][..]]).unwrap();
        let config = SealConfig::shamir(5, 3);
        let (new_key, new_shares) = Seal::new_unseal_key(&config).unwrap();
        assert_eq!(new_shares.len(), 5);
        let recovered = seal.recover_root_key(&old_key).await.unwrap();
        seal.reseal(Protector::UnsealKey(&new_key), &recovered, &config, None)
            .await
            .unwrap();
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
            .reseal(
                Protector::UnsealKey(&new_key),
                &recovered,
                &SealConfig::shamir(3, 1),
                None
            )
            .await
            .is_err());
        assert!(seal.recover_root_key(&combined).await.is_ok());
    }

    /// An auto seal wraps the root key; the record names the seal type,
    /// holds no plaintext, and opens only with the same wrapper. Seal
    /// migration both ways keeps the root key.
    #[tokio::test]
    async fn auto_seal_records_and_migration() {
        use crate::{TestWrapper, WrapError, RECOVERY_CONFIG_PATH};
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        let w = TestWrapper::new([5; 32]);
        // A bad recovery configuration writes nothing.
        assert!(seal
            .initialize_auto(&w, &SealConfig::shamir(3, 1))
            .await
            .is_err());
        assert!(physical.is_empty());
        let root = seal
            .initialize_auto(&w, &SealConfig::shamir(5, 3))
            .await
            .unwrap();
        assert_eq!(seal.config().await.unwrap(), Some(SealConfig::auto("test")));
        assert_eq!(
            seal.recovery_config().await.unwrap(),
            Some(SealConfig::shamir(5, 3))
        );
        let record = physical.get(ROOT_KEY_PATH).await.unwrap().unwrap();
        assert_eq!(record_seal_type(&record).unwrap(), "test");
        assert!(!record.windows(32).any(|x| x == root.as_bytes()));
        let opened = seal.open(Protector::Auto(&w)).await.unwrap();
        assert_eq!(opened.as_bytes(), root.as_bytes());
        // Another wrapper's key cannot open it; a Shamir key is the wrong type.
        let other = TestWrapper::new([6; 32]);
        assert!(matches!(
            seal.open(Protector::Auto(&other)).await,
            Err(SealError::Wrapper {
                source: WrapError::Refused(_),
                ..
            })
        ));
        assert!(matches!(
            seal.open(Protector::UnsealKey(&[0; 32])).await,
            Err(SealError::WrongSealType { .. })
        ));
        w.down.store(true, std::sync::atomic::Ordering::Relaxed);
        let e = seal.open(Protector::Auto(&w)).await.unwrap_err();
        assert!(matches!(&e, SealError::Wrapper { source, .. } if source.is_unavailable()));
        w.down.store(false, std::sync::atomic::Ordering::Relaxed);

        // Auto -> Shamir: the recovery configuration goes.
        let cfg = SealConfig::shamir(3, 2);
        let (key, _shares) = Seal::new_unseal_key(&cfg).unwrap();
        seal.reseal(Protector::UnsealKey(&key), &opened, &cfg, None)
            .await
            .unwrap();
        assert_eq!(physical.get(RECOVERY_CONFIG_PATH).await.unwrap(), None);
        assert_eq!(
            seal.recover_root_key(&key).await.unwrap().as_bytes(),
            root.as_bytes()
        );
        // Shamir -> auto; a configuration of the wrong type is refused.
        assert!(seal
            .reseal(Protector::Auto(&w), &opened, &cfg, None)
            .await
            .is_err());
        seal.reseal(
            Protector::Auto(&w),
            &opened,
            &SealConfig::auto("test"),
            Some(&SealConfig::shamir(3, 2)),
        )
        .await
        .unwrap();
        assert_eq!(
            seal.open(Protector::Auto(&w)).await.unwrap().as_bytes(),
            root.as_bytes()
        );
    }

    #[test]
    fn recovery_configs_may_be_empty() {
        SealConfig::shamir(0, 0).validate_recovery().unwrap();
        SealConfig::shamir(5, 3).validate_recovery().unwrap();
        assert!(SealConfig::shamir(3, 1).validate_recovery().is_err());
        assert!(SealConfig::shamir(0, 0).validate().is_err());
        SealConfig::auto("transit").validate().unwrap();
        assert!(SealConfig::auto("awskms").validate().is_err());
    }

    #[tokio::test]
    async fn initialize_then_unseal_with_threshold_shares() {
        let physical = Arc::new(InmemBackend::new());
        let seal = Seal::new(physical.clone());
        assert_eq!(seal.config().await.unwrap(), None);
        let (_, shares, root) = seal.initialize(5, 3).await.unwrap();
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
        let (_, shares, root) = seal.initialize(1, 1).await.unwrap();
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
        let (_, shares, _) = seal.initialize(3, 2).await.unwrap();
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
        let (_, first, _) = seal.initialize(3, 2).await.unwrap();
        // The barrier was never initialized: initializing again is allowed and
        // replaces the records.
        let (_, second, root) = seal.initialize(2, 2).await.unwrap();
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
        let (_, shares, root) = seal.initialize(1, 1).await.unwrap();
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
