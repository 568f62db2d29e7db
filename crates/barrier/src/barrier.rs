//! [`Barrier`]: seal state, keyring lifecycle and encrypted access by full
//! logical path. See the crate docs for formats and invariants.

use std::sync::Arc;

use arca_physical::{Op, PhysicalBackend};
use arca_sdk::StorageOp;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use zeroize::Zeroizing;

use crate::keyring::{value_term, Keyring, KEYRING_PATH, ROOT_UPGRADE_PATH};
use crate::path::{logical_child, logical_key, physical_folder, physical_key};
use crate::usage::{self, RotationConfig, Usage, USAGE_PREFIX};
use crate::{BarrierError, KeyStatus, RootKey};

pub struct Barrier {
    physical: Arc<dyn PhysicalBackend>,
    /// `None` while sealed. Operations clone the `Arc` and release the lock
    /// before any I/O.
    keyring: RwLock<Option<Arc<Keyring>>>,
    /// Serializes keyring changes (initialize, unseal, rotate, reload).
    change: tokio::sync::Mutex<()>,
    /// This barrier's encryption count for the active term (`usage.rs`).
    /// Held only for arithmetic, never across I/O.
    usage: Mutex<Usage>,
    /// Serializes usage record I/O (reservations, flush, rotation checks).
    /// Lock order: `usage_io`, then `change`.
    usage_io: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("sealed", &self.is_sealed())
            .finish_non_exhaustive()
    }
}

fn check_writable_key(key: &str) -> Result<(), BarrierError> {
    if key.is_empty() {
        return Err(BarrierError::InvalidPath {
            path: String::new(),
            reason: "the empty path cannot be written".into(),
        });
    }
    Ok(())
}

/// Moves a decrypted value out of its zeroizing wrapper without copying.
fn unwrap_plaintext(mut z: Zeroizing<Vec<u8>>) -> Vec<u8> {
    std::mem::take(&mut *z)
}

impl Barrier {
    /// A sealed barrier over `physical`.
    pub fn new(physical: Arc<dyn PhysicalBackend>) -> Arc<Self> {
        Arc::new(Barrier {
            physical,
            keyring: RwLock::new(None),
            change: tokio::sync::Mutex::new(()),
            usage: Mutex::new(Usage::fresh(None)),
            usage_io: tokio::sync::Mutex::new(()),
        })
    }

    /// Installs `kr` as the keyring, with a new writer counting its term.
    fn install(&self, kr: Keyring) {
        *self.usage.lock() = Usage::fresh(Some(&kr));
        *self.keyring.write() = Some(Arc::new(kr));
    }

    /// The physical backend underneath (for the seal's plaintext records).
    pub fn physical(&self) -> &Arc<dyn PhysicalBackend> {
        &self.physical
    }

    fn keyring(&self) -> Result<Arc<Keyring>, BarrierError> {
        self.keyring.read().clone().ok_or(BarrierError::Sealed)
    }

    /// True when a keyring has been stored.
    pub async fn initialized(&self) -> Result<bool, BarrierError> {
        Ok(self.physical.get(KEYRING_PATH).await?.is_some())
    }

    /// Creates the keyring (term 1 and the path key), stores it encrypted under
    /// `root_key`, and leaves the barrier unsealed.
    pub async fn initialize(&self, root_key: &RootKey) -> Result<(), BarrierError> {
        let _change = self.change.lock().await;
        if self.initialized().await? {
            return Err(BarrierError::AlreadyInitialized);
        }
        let keyring = Keyring::generate(root_key.clone());
        self.physical
            .put(KEYRING_PATH, keyring.to_sealed_record())
            .await?;
        self.install(keyring);
        Ok(())
    }

    /// Loads the keyring with `root_key`. A key that does not decrypt it gives
    /// [`BarrierError::InvalidKey`] and leaves the barrier sealed. Unsealing an
    /// unsealed barrier does nothing (as in Vault).
    pub async fn unseal(&self, root_key: &RootKey) -> Result<(), BarrierError> {
        let _change = self.change.lock().await;
        if !self.is_sealed() {
            return Ok(());
        }
        let keyring = self.load(root_key.clone()).await?;
        self.install(keyring);
        Ok(())
    }

    async fn load(&self, root_key: RootKey) -> Result<Keyring, BarrierError> {
        let sealed = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        Keyring::from_sealed_record(root_key, &sealed)
    }

    /// Forgets the keyring. Its keys are wiped as soon as no operation that
    /// started before this call still holds it.
    pub fn seal(&self) {
        self.keyring.write().take();
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring.read().is_none()
    }

    /// Adds a new term, persists the keyring and makes the term active.
    /// The usage records of retired terms are deleted in the same batch.
    pub async fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let _change = self.change.lock().await;
        let current = self.keyring()?;
        let final_count = self.local_total(&current);
        let next = current.rotated(final_count);
        let mut ops = vec![Op::Put(KEYRING_PATH.to_string(), next.to_sealed_record())];
        for term in self.physical.list(USAGE_PREFIX).await? {
            for writer in self.physical.list(&format!("{USAGE_PREFIX}{term}")).await? {
                ops.push(Op::Delete(format!("{USAGE_PREFIX}{term}{writer}")));
            }
        }
        self.physical.batch(ops).await?;
        let status = next.status(0);
        if !self.is_sealed() {
            self.install(next);
        }
        Ok(status)
    }

    /// Replaces the root key that encrypts the keyring (`sys/rotate/root`):
    /// the keyring under `new_root`, the upgrade record (the new root key
    /// under the active term's data key, for nodes that still hold the old
    /// one) and the caller's `extra` records (the seal's copy of the new
    /// root key) in one atomic batch. The data keys, the path key and so
    /// the data are unchanged.
    pub async fn rotate_root_key(
        &self,
        new_root: &RootKey,
        extra: Vec<Op>,
    ) -> Result<(), BarrierError> {
        let _change = self.change.lock().await;
        let current = self.keyring()?;
        let next = current.with_root_key(new_root.clone(), self.local_total(&current));
        let mut ops = vec![
            Op::Put(KEYRING_PATH.to_string(), next.to_sealed_record()),
            Op::Put(ROOT_UPGRADE_PATH.to_string(), next.root_upgrade_record()),
        ];
        ops.extend(extra);
        self.physical.batch(ops).await?;
        // Same term: this writer's reservation stays valid.
        let mut slot = self.keyring.write();
        if slot.is_some() {
            *slot = Some(Arc::new(next));
        }
        Ok(())
    }

    /// True when `key` is the root key the keyring is under (constant
    /// time); false while sealed.
    pub fn root_key_is(&self, key: &RootKey) -> bool {
        use subtle::ConstantTimeEq;
        self.keyring()
            .map(|kr| bool::from(kr.root_key().as_bytes().ct_eq(key.as_bytes())))
            .unwrap_or(false)
    }

    /// The count of `kr`'s active term as this barrier last knew it.
    fn local_total(&self, kr: &Keyring) -> u64 {
        let u = self.usage.lock();
        if u.term == kr.active_term() {
            u.total()
        } else {
            kr.active_floor()
        }
    }

    /// The automatic rotation settings (replicated with the keyring).
    pub fn rotation_config(&self) -> Result<RotationConfig, BarrierError> {
        Ok(self.keyring()?.rotation())
    }

    /// Persists new automatic rotation settings with the keyring.
    pub async fn set_rotation_config(&self, cfg: RotationConfig) -> Result<(), BarrierError> {
        cfg.check().map_err(BarrierError::InvalidRotationConfig)?;
        let _change = self.change.lock().await;
        let current = self.keyring()?;
        let next = current.with_rotation(cfg, self.local_total(&current));
        self.physical
            .put(KEYRING_PATH, next.to_sealed_record())
            .await?;
        // Same term: this writer's reservation stays valid.
        let mut slot = self.keyring.write();
        if slot.is_some() {
            *slot = Some(Arc::new(next));
        }
        Ok(())
    }

    /// Counts `n` encryptions under the active term and returns the keyring
    /// to encrypt them with: within this writer's reservation without I/O,
    /// else after persisting a new reservation (and, when the budget is
    /// spent, after rotating). See `usage.rs`.
    async fn charge(&self, n: u64) -> Result<Arc<Keyring>, BarrierError> {
        let kr = self.keyring()?;
        if n == 0 || self.usage.lock().try_charge(&kr, n) {
            return Ok(kr);
        }
        let _io = self.usage_io.lock().await;
        loop {
            let kr = self.keyring()?;
            let (term, writer) = {
                let mut u = self.usage.lock();
                if u.term != kr.active_term() {
                    *u = Usage::fresh(Some(&kr));
                }
                if u.try_charge(&kr, n) {
                    return Ok(kr);
                }
                (u.term, u.writer.clone())
            };
            let others = self.others_count(&kr, Some(&writer)).await?;
            let (total, used) = {
                let mut u = self.usage.lock();
                if u.term != term || u.writer != writer {
                    continue;
                }
                u.others = others;
                (u.total(), u.used)
            };
            let cfg = kr.rotation();
            if cfg.enabled && total > 0 && total + n > cfg.max_operations {
                self.rotate().await?;
                continue;
            }
            let mut target = used + n + cfg.step();
            if cfg.enabled {
                target = target
                    .min(cfg.max_operations.saturating_sub(others))
                    .max(used + n);
            }
            let key = usage::record_key(term, &writer);
            self.physical
                .put(&key, usage::encode_record(&kr, &key, target))
                .await?;
            let mut u = self.usage.lock();
            if u.term == term && u.writer == writer {
                u.reserved = u.reserved.max(target);
            }
        }
    }

    /// Sum of the usage records of `kr`'s active term, except `skip`'s. A
    /// record that does not verify counts as the whole budget.
    async fn others_count(&self, kr: &Keyring, skip: Option<&str>) -> Result<u64, BarrierError> {
        let term = kr.active_term();
        let mut sum = 0u64;
        for writer in self
            .physical
            .list(&format!("{USAGE_PREFIX}{term}/"))
            .await?
        {
            if Some(writer.as_str()) == skip || writer.ends_with('/') {
                continue;
            }
            let key = usage::record_key(term, &writer);
            let Some(v) = self.physical.get(&key).await? else {
                continue;
            };
            let n = usage::decode_record(kr, &key, &v).unwrap_or(kr.rotation().max_operations);
            sum = sum.saturating_add(n);
        }
        Ok(sum)
    }

    /// The active term's status with its encryptions counted across the
    /// cluster: every writer's record as stored now (an upper bound: they
    /// include unused reservations), this writer's own exact count.
    pub async fn key_status_cluster(&self) -> Result<KeyStatus, BarrierError> {
        let kr = self.keyring()?;
        let (mine, skip) = {
            let u = self.usage.lock();
            if u.term == kr.active_term() {
                (u.used, Some(u.writer.clone()))
            } else {
                (0, None)
            }
        };
        let others = self.others_count(&kr, skip.as_deref()).await?;
        Ok(kr.status((others + mine).max(kr.active_floor())))
    }

    /// Rotates the term if automatic rotation is enabled and the term has
    /// reached `max_operations` or is older than `interval` at `now`.
    /// Meant for the active node's periodic work; returns the new status
    /// when it rotated.
    pub async fn check_rotation(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyStatus>, BarrierError> {
        let _io = self.usage_io.lock().await;
        let kr = self.keyring()?;
        let cfg = kr.rotation();
        if !cfg.enabled {
            return Ok(None);
        }
        let writer = {
            let mut u = self.usage.lock();
            if u.term != kr.active_term() {
                *u = Usage::fresh(Some(&kr));
            }
            u.writer.clone()
        };
        let others = self.others_count(&kr, Some(&writer)).await?;
        let total = {
            let mut u = self.usage.lock();
            if u.writer == writer {
                u.others = others;
            }
            u.total()
        };
        let age = (now - kr.active_install_time()).num_seconds().max(0) as u64;
        let old = cfg.interval > 0 && age >= cfg.interval;
        if total >= cfg.max_operations || old {
            return Ok(Some(self.rotate().await?));
        }
        Ok(None)
    }

    /// Gives back the unused part of this writer's reservation (call on a
    /// clean stop or step-down of the active node), so it is not counted.
    pub async fn flush_usage(&self) -> Result<(), BarrierError> {
        let _io = self.usage_io.lock().await;
        let kr = self.keyring()?;
        let (term, writer, used, reserved) = {
            let u = self.usage.lock();
            (u.term, u.writer.clone(), u.used, u.reserved)
        };
        if term != kr.active_term() || used >= reserved {
            return Ok(());
        }
        let key = usage::record_key(term, &writer);
        self.physical
            .put(&key, usage::encode_record(&kr, &key, used))
            .await?;
        let mut u = self.usage.lock();
        if u.term == term && u.writer == writer {
            u.reserved = used;
        }
        Ok(())
    }

    /// The logical path of a physical key written by this barrier, or
    /// `None` for keys outside it (seal records, the keyring) or while sealed.
    pub fn logical_path(&self, physical: &str) -> Option<String> {
        if !physical.starts_with(crate::path::DATA_PREFIX) {
            return None;
        }
        let kr = self.keyring().ok()?;
        crate::path::logical_key(kr.path_cipher(), physical).ok()
    }

    /// A 32-byte key for `purpose`, derived from the root key (HMAC-SHA256);
    /// the root key itself never leaves the barrier.
    pub fn derive_key(&self, purpose: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, BarrierError> {
        Ok(self.keyring()?.root_key().derive(purpose))
    }

    /// The active term's status as this node knows it without I/O (see
    /// [`key_status_cluster`](Self::key_status_cluster) for the count
    /// across the cluster).
    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        let kr = self.keyring()?;
        Ok(kr.status(self.local_total(&kr)))
    }

    /// Re-reads the keyring from physical storage (another node rotated it,
    /// changed its settings, or a snapshot was restored). This barrier
    /// starts counting as a new writer: its old record, reservation
    /// included, is counted as another writer's.
    pub async fn reload_keyring(&self) -> Result<(), BarrierError> {
        let _change = self.change.lock().await;
        let current = self.keyring()?;
        let keyring = match self.load(current.root_key().clone()).await {
            // The root key was rotated on another node: the new one is
            // stored under a data key this keyring holds.
            Err(BarrierError::InvalidKey) => {
                let record = self
                    .physical
                    .get(ROOT_UPGRADE_PATH)
                    .await?
                    .ok_or(BarrierError::InvalidKey)?;
                let root_key = current.open_root_upgrade(&record)?;
                self.load(root_key).await?
            }
            other => other?,
        };
        if !self.is_sealed() {
            self.install(keyring);
        }
        Ok(())
    }

    /// Reads and decrypts `key`. A value under a term this node does not
    /// know yet (another node rotated the keyring) triggers one
    /// [`reload_keyring`](Self::reload_keyring) before decrypting.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        let _timer = arca_metrics::timer("vault.barrier.get", &[]);
        let mut keyring = self.keyring()?;
        let physical = physical_key(keyring.path_cipher(), key);
        let Some(ct) = self.physical.get(&physical).await? else {
            return Ok(None);
        };
        if value_term(&ct).is_ok_and(|t| !keyring.has_term(t)) {
            self.reload_keyring().await?;
            keyring = self.keyring()?;
        }
        Ok(Some(unwrap_plaintext(keyring.decrypt(key, &ct)?)))
    }

    /// Encrypts and stores `value`; the plaintext buffer is wiped.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), BarrierError> {
        let _timer = arca_metrics::timer("vault.barrier.put", &[]);
        check_writable_key(key)?;
        let value = Zeroizing::new(value);
        let keyring = self.charge(1).await?;
        let physical = physical_key(keyring.path_cipher(), key);
        let ct = keyring.encrypt(key, &value);
        Ok(self.physical.put(&physical, ct).await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        let _timer = arca_metrics::timer("vault.barrier.delete", &[]);
        check_writable_key(key)?;
        let keyring = self.keyring()?;
        let physical = physical_key(keyring.path_cipher(), key);
        Ok(self.physical.delete(&physical).await?)
    }

    /// Immediate children of `prefix` in plaintext byte order, sub-folders with
    /// a trailing `/` (Vault semantics, also for a prefix ending mid-name).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let _timer = arca_metrics::timer("vault.barrier.list", &[]);
        let keyring = self.keyring()?;
        let cipher = keyring.path_cipher();
        let (folder, partial) = match prefix.rfind('/') {
            Some(i) => prefix.split_at(i + 1),
            None => ("", prefix),
        };
        let children = self.physical.list(&physical_folder(cipher, folder)).await?;
        let mut out = Vec::with_capacity(children.len());
        for child in children {
            let name = logical_child(cipher, folder, &child)?;
            if let Some(rest) = name.strip_prefix(partial) {
                if !rest.is_empty() {
                    out.push(rest.to_string());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every key under `prefix` (full logical paths), in byte order.
    pub async fn scan(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let keyring = self.keyring()?;
        let cipher = keyring.path_cipher();
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let physical = self.physical.scan(&physical_folder(cipher, folder)).await?;
        let mut out = Vec::with_capacity(physical.len());
        for p in physical {
            let logical = logical_key(cipher, &p)?;
            if logical.starts_with(prefix) {
                out.push(logical);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Applies every operation or none (the physical batch is atomic).
    pub async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), BarrierError> {
        let _timer = arca_metrics::timer("vault.barrier.batch", &[]);
        self.keyring()?;
        let mut puts = 0u64;
        for op in &ops {
            let (StorageOp::Put(key, _) | StorageOp::Delete(key)) = op;
            check_writable_key(key)?;
            puts += u64::from(matches!(op, StorageOp::Put(..)));
        }
        let keyring = self.charge(puts).await?;
        let cipher = keyring.path_cipher();
        let mut physical_ops = Vec::with_capacity(ops.len());
        for op in ops {
            physical_ops.push(match op {
                StorageOp::Put(key, value) => {
                    let value = Zeroizing::new(value);
                    Op::Put(physical_key(cipher, &key), keyring.encrypt(&key, &value))
                }
                StorageOp::Delete(key) => Op::Delete(physical_key(cipher, &key)),
            });
        }
        Ok(self.physical.batch(physical_ops).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::DATA_PREFIX;
    use crate::usage::USAGE_PREFIX;
    use arca_physical::InmemBackend;

    /// `sys/rotate/root`: the keyring moves to a new root key in one batch
    /// with the caller's records; the data, the terms and the encryption
    /// counts stay; a node holding the old root key follows through the
    /// upgrade record; afterwards only the new root key unseals.
    #[tokio::test]
    async fn root_key_rotation_keeps_the_data_and_other_nodes_follow() {
        let (physical, a, k1) = unsealed().await;
        a.put("x", b"1".to_vec()).await.unwrap();
        let other = Barrier::new(physical.clone());
        other.unseal(&k1).await.unwrap();
        let before = a.key_status_cluster().await.unwrap();
        let k2 = RootKey::generate();
        a.rotate_root_key(&k2, vec![Op::Put("core/seal-copy".into(), b"e".to_vec())])
            .await
            .unwrap();
        assert_eq!(physical.get("core/seal-copy").await.unwrap().unwrap(), b"e");
        let upgrade = physical.get(ROOT_UPGRADE_PATH).await.unwrap().unwrap();
        assert!(!upgrade.windows(32).any(|w| w == k2.as_bytes()));
        a.put("y", b"2".to_vec()).await.unwrap();
        // The other node reads on with its keys, and reloads the keyring.
        assert_eq!(other.get("x").await.unwrap().unwrap(), b"1");
        other.reload_keyring().await.unwrap();
        assert_eq!(other.get("y").await.unwrap().unwrap(), b"2");
        // Same term; the counts still verify (no forced rotation).
        let after = a.key_status_cluster().await.unwrap();
        assert_eq!(after.term, before.term);
        assert!(after.encryptions < RotationConfig::default().max_operations);
        // A node starting now: the old root key opens nothing.
        let fresh = Barrier::new(physical.clone());
        assert!(matches!(
            fresh.unseal(&k1).await,
            Err(BarrierError::InvalidKey)
        ));
        fresh.unseal(&k2).await.unwrap();
        assert_eq!(fresh.get("y").await.unwrap().unwrap(), b"2");
        // Sealed: nothing to rotate.
        fresh.seal();
        assert!(matches!(
            fresh.rotate_root_key(&RootKey::generate(), vec![]).await,
            Err(BarrierError::Sealed)
        ));
    }

    async fn unsealed() -> (Arc<InmemBackend>, Arc<Barrier>, RootKey) {
        let physical = Arc::new(InmemBackend::new());
        let barrier = Barrier::new(physical.clone());
        let root = RootKey::generate();
        barrier.initialize(&root).await.unwrap();
        (physical, barrier, root)
    }

    #[tokio::test]
    async fn lifecycle_and_round_trip() {
        let physical = Arc::new(InmemBackend::new());
        let b = Barrier::new(physical.clone());
        assert!(b.is_sealed());
        assert!(!b.initialized().await.unwrap());
        let root = RootKey::generate();
        assert_eq!(b.unseal(&root).await, Err(BarrierError::NotInitialized));
        b.initialize(&root).await.unwrap();
        assert!(b.initialized().await.unwrap());
        assert!(!b.is_sealed(), "initialize leaves the barrier unsealed");
        assert_eq!(
            b.initialize(&root).await,
            Err(BarrierError::AlreadyInitialized)
        );

        b.put("core/mounts", b"{\"a\":1}".to_vec()).await.unwrap();
        b.put("logical/u1/foo", b"bar".to_vec()).await.unwrap();
        assert_eq!(b.get("core/mounts").await.unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(b.get("logical/u1/foo").await.unwrap().unwrap(), b"bar");
        assert_eq!(b.get("logical/u1/missing").await.unwrap(), None);
        b.put("logical/u1/foo", b"baz".to_vec()).await.unwrap();
        assert_eq!(b.get("logical/u1/foo").await.unwrap().unwrap(), b"baz");
        b.put("logical/u1/empty", Vec::new()).await.unwrap();
        assert_eq!(b.get("logical/u1/empty").await.unwrap().unwrap(), b"");
        b.delete("logical/u1/foo").await.unwrap();
        b.delete("logical/u1/never").await.unwrap();
        assert_eq!(b.get("logical/u1/foo").await.unwrap(), None);

        b.seal();
        assert!(b.is_sealed());
        b.unseal(&root).await.unwrap();
        assert_eq!(b.get("core/mounts").await.unwrap().unwrap(), b"{\"a\":1}");
        b.unseal(&RootKey::generate()).await.unwrap(); // no-op while unsealed
    }

    #[tokio::test]
    async fn wrong_root_key_is_refused() {
        let (physical, b, root) = unsealed().await;
        b.put("k", b"v".to_vec()).await.unwrap();
        b.seal();
        let other = Barrier::new(physical);
        assert_eq!(
            other.unseal(&RootKey::generate()).await,
            Err(BarrierError::InvalidKey)
        );
        assert!(other.is_sealed());
        assert_eq!(
            b.unseal(&RootKey::generate()).await,
            Err(BarrierError::InvalidKey)
        );
        assert!(b.is_sealed());
        b.unseal(&root).await.unwrap();
        assert_eq!(b.get("k").await.unwrap().unwrap(), b"v");
    }

    #[tokio::test]
    async fn sealed_barrier_refuses_everything() {
        let (_, b, _) = unsealed().await;
        b.put("k", b"v".to_vec()).await.unwrap();
        b.seal();
        assert_eq!(b.get("k").await, Err(BarrierError::Sealed));
        assert_eq!(b.put("k", vec![]).await, Err(BarrierError::Sealed));
        assert_eq!(b.delete("k").await, Err(BarrierError::Sealed));
        assert_eq!(b.list("").await, Err(BarrierError::Sealed));
        assert_eq!(b.scan("").await, Err(BarrierError::Sealed));
        assert_eq!(b.batch(vec![]).await, Err(BarrierError::Sealed));
        assert_eq!(b.key_status(), Err(BarrierError::Sealed));
        assert_eq!(b.rotate().await, Err(BarrierError::Sealed));
        assert_eq!(b.reload_keyring().await, Err(BarrierError::Sealed));
    }

    #[tokio::test]
    async fn rotation_keeps_old_values_and_uses_the_new_term() {
        let (physical, b, root) = unsealed().await;
        let s1 = b.key_status().unwrap();
        assert_eq!(s1.term, 1);
        b.put("old", b"one".to_vec()).await.unwrap();
        b.put("old2", b"two".to_vec()).await.unwrap();
        assert_eq!(b.key_status().unwrap().encryptions, 2);

        let s2 = b.rotate().await.unwrap();
        assert_eq!(s2.term, 2);
        assert_eq!(s2.encryptions, 0);
        assert!(s2.install_time >= s1.install_time);
        assert_eq!(b.key_status().unwrap(), s2);
        b.put("new", b"three".to_vec()).await.unwrap();

        let raw = |logical: &'static str| {
            let physical = physical.clone();
            let b = b.clone();
            async move {
                let key = physical_key(b.keyring().unwrap().path_cipher(), logical);
                physical.get(&key).await.unwrap().unwrap()
            }
        };
        assert_eq!(&raw("old").await[1..5], &1u32.to_be_bytes());
        assert_eq!(&raw("new").await[1..5], &2u32.to_be_bytes());
        assert_eq!(b.get("old").await.unwrap().unwrap(), b"one");
        assert_eq!(b.get("new").await.unwrap().unwrap(), b"three");

        // The rotation was persisted: a fresh unseal sees both terms.
        b.seal();
        b.unseal(&root).await.unwrap();
        assert_eq!(b.key_status().unwrap().term, 2);
        assert_eq!(b.get("old").await.unwrap().unwrap(), b"one");
        assert_eq!(b.get("new").await.unwrap().unwrap(), b"three");
        assert_eq!(b.rotate().await.unwrap().term, 3);
        assert_eq!(b.list("").await.unwrap(), vec!["new", "old", "old2"]);
    }

    #[tokio::test]
    async fn reload_picks_up_another_nodes_rotation() {
        let (physical, a, root) = unsealed().await;
        let b = Barrier::new(physical.clone());
        b.unseal(&root).await.unwrap();
        a.rotate().await.unwrap();
        assert_eq!(b.key_status().unwrap().term, 1);
        b.reload_keyring().await.unwrap();
        assert_eq!(b.key_status().unwrap().term, 2);

        // A read of a value under an unknown term reloads by itself.
        a.rotate().await.unwrap();
        a.put("written-by-a", b"x".to_vec()).await.unwrap();
        assert_eq!(b.key_status().unwrap().term, 2);
        assert_eq!(b.get("written-by-a").await.unwrap().unwrap(), b"x");
        assert_eq!(b.key_status().unwrap().term, 3);

        // A value claiming a term that exists nowhere is still corrupt.
        let key = physical_key(a.keyring().unwrap().path_cipher(), "written-by-a");
        let mut v = physical.get(&key).await.unwrap().unwrap();
        v[1..5].copy_from_slice(&99u32.to_be_bytes());
        physical.put(&key, v).await.unwrap();
        assert!(matches!(
            b.get("written-by-a").await,
            Err(BarrierError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn value_moved_to_another_key_does_not_decrypt() {
        let (physical, b, _) = unsealed().await;
        b.put("logical/m1/secret", b"s3cr3t".to_vec())
            .await
            .unwrap();
        b.put("logical/m1/other", b"x".to_vec()).await.unwrap();
        let cipher = b.keyring().unwrap();
        let from = physical_key(cipher.path_cipher(), "logical/m1/secret");
        let to = physical_key(cipher.path_cipher(), "logical/m1/other");
        let moved = physical.get(&from).await.unwrap().unwrap();
        physical.put(&to, moved).await.unwrap();
        let err = b.get("logical/m1/other").await.unwrap_err();
        assert!(
            matches!(&err, BarrierError::Corrupt { key, .. } if key == "logical/m1/other"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn physical_store_holds_no_plaintext() {
        let (physical, b, root) = unsealed().await;
        let names = [
            "topsecretmount",
            "database-password-for-prod",
            "hunter2value",
        ];
        b.put(
            "logical/topsecretmount/database-password-for-prod",
            b"hunter2value".to_vec(),
        )
        .await
        .unwrap();
        b.batch(vec![StorageOp::Put(
            "core/topsecretmount/database-password-for-prod/x".into(),
            b"hunter2value hunter2value".to_vec(),
        )])
        .await
        .unwrap();
        let dump = physical.dump();
        // The keyring, two values and this writer's usage record.
        assert_eq!(dump.len(), 4);
        for (k, v) in &dump {
            assert!(
                k == KEYRING_PATH || k.starts_with(DATA_PREFIX) || k.starts_with(USAGE_PREFIX),
                "{k}"
            );
            for needle in names
                .iter()
                .map(|n| n.as_bytes())
                .chain([root.as_bytes().as_slice()])
            {
                assert!(
                    !k.as_bytes().windows(needle.len()).any(|w| w == needle),
                    "key {k} leaks"
                );
                assert!(
                    !v.windows(needle.len()).any(|w| w == needle),
                    "value at {k} leaks"
                );
            }
        }
    }

    #[tokio::test]
    async fn list_and_scan_in_plaintext_order() {
        let (_, b, _) = unsealed().await;
        let keys = [
            "m/zeta",
            "m/alpha",
            "m/beta/one",
            "m/beta/two/deep",
            "m/Beta",
            "m/ä",
            "m/a b",
            "m/beta",
            "m/gamma/",
            "mx",
            "n/1",
        ];
        for k in keys {
            b.put(k, k.as_bytes().to_vec()).await.unwrap();
        }
        assert_eq!(
            b.list("m/").await.unwrap(),
            vec!["Beta", "a b", "alpha", "beta", "beta/", "gamma/", "zeta", "ä"]
        );
        assert_eq!(b.list("").await.unwrap(), vec!["m/", "mx", "n/"]);
        assert_eq!(b.list("m/beta/").await.unwrap(), vec!["one", "two/"]);
        assert_eq!(b.list("m/gamma/").await.unwrap(), Vec::<String>::new());
        assert_eq!(b.list("m/b").await.unwrap(), vec!["eta", "eta/"]);
        assert_eq!(b.list("m/beta").await.unwrap(), vec!["/"]);
        assert_eq!(b.list("nothing/").await.unwrap(), Vec::<String>::new());
        assert_eq!(
            b.scan("m/beta").await.unwrap(),
            vec!["m/beta", "m/beta/one", "m/beta/two/deep"]
        );
        let mut all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        all.sort();
        assert_eq!(b.scan("").await.unwrap(), all);
        b.delete("m/beta/one").await.unwrap();
        b.delete("m/beta/two/deep").await.unwrap();
        assert_eq!(b.list("m/b").await.unwrap(), vec!["eta"]);
    }

    #[tokio::test]
    async fn batch_is_atomic_and_ordered() {
        let (physical, b, _) = unsealed().await;
        b.put("a", b"1".to_vec()).await.unwrap();
        b.batch(vec![
            StorageOp::Put("b".into(), b"2".to_vec()),
            StorageOp::Delete("a".into()),
            StorageOp::Put("c".into(), b"3".to_vec()),
            StorageOp::Put("c".into(), b"4".to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(b.get("a").await.unwrap(), None);
        assert_eq!(b.get("b").await.unwrap().unwrap(), b"2");
        assert_eq!(b.get("c").await.unwrap().unwrap(), b"4");
        let before = physical.dump();
        let err = b
            .batch(vec![
                StorageOp::Put("d".into(), vec![]),
                StorageOp::Put(String::new(), vec![]),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, BarrierError::InvalidPath { .. }), "{err:?}");
        assert_eq!(physical.dump(), before);
    }

    async fn with_budget(b: &Barrier, max_operations: u64) {
        b.set_rotation_config(RotationConfig {
            max_operations,
            interval: 0,
            enabled: true,
        })
        .await
        .unwrap();
    }

    fn term_of(physical: &InmemBackend, b: &Barrier, logical: &str) -> u32 {
        let key = physical_key(b.keyring().unwrap().path_cipher(), logical);
        let v = physical
            .dump()
            .into_iter()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1;
        value_term(&v).unwrap()
    }

    #[tokio::test]
    async fn the_term_rotates_before_its_budget_is_spent() {
        let (physical, b, root) = unsealed().await;
        with_budget(&b, 10).await;
        for i in 0..25 {
            b.put(&format!("k{i:02}"), format!("v{i}").into_bytes())
                .await
                .unwrap();
            assert!(b.key_status().unwrap().encryptions <= 10);
        }
        // 10 under term 1, 10 under term 2, 5 under term 3.
        let st = b.key_status().unwrap();
        assert_eq!((st.term, st.encryptions), (3, 5));
        assert_eq!(b.key_status_cluster().await.unwrap().encryptions, 5);
        for i in 0..25 {
            let k = format!("k{i:02}");
            assert_eq!(term_of(&physical, &b, &k), 1 + i / 10, "{k}");
            assert_eq!(
                b.get(&k).await.unwrap().unwrap(),
                format!("v{i}").into_bytes()
            );
        }
        // Retired terms' records are gone; the settings were replicated.
        assert_eq!(physical.list(USAGE_PREFIX).await.unwrap(), vec!["3/"]);
        let other = Barrier::new(physical.clone());
        other.unseal(&root).await.unwrap();
        assert_eq!(other.rotation_config().unwrap().max_operations, 10);
        // b's record: its 5 and the one more it reserved ahead.
        assert_eq!(other.key_status_cluster().await.unwrap().encryptions, 6);

        // A batch that would cross the budget rotates first: all of it goes
        // under the next term.
        let ops = (0..6)
            .map(|i| StorageOp::Put(format!("batch{i}"), vec![i]))
            .collect();
        b.batch(ops).await.unwrap();
        let st = b.key_status().unwrap();
        assert_eq!((st.term, st.encryptions), (4, 6));
        assert_eq!(term_of(&physical, &b, "batch0"), 4);
        // A batch larger than the whole budget still goes through, alone.
        let ops = (0..12)
            .map(|i| StorageOp::Put(format!("big{i}"), vec![i]))
            .collect();
        b.batch(ops).await.unwrap();
        let st = b.key_status().unwrap();
        assert_eq!((st.term, st.encryptions), (5, 12));
    }

    #[tokio::test]
    async fn the_next_active_node_counts_what_the_previous_one_used() {
        let (physical, a, root) = unsealed().await;
        with_budget(&a, 100).await;
        for i in 0..60 {
            a.put(&format!("a{i}"), vec![1]).await.unwrap();
        }
        // Leadership moves to b, which shares the replicated storage.
        let b = Barrier::new(physical.clone());
        b.unseal(&root).await.unwrap();
        assert_eq!(b.key_status_cluster().await.unwrap().encryptions, 60);
        for i in 0..40 {
            b.put(&format!("b{i}"), vec![2]).await.unwrap();
        }
        let st = b.key_status().unwrap();
        assert_eq!((st.term, st.encryptions), (1, 100), "exactly the budget");
        b.put("b40", vec![3]).await.unwrap();
        let st = b.key_status().unwrap();
        assert_eq!(
            (st.term, st.encryptions),
            (2, 1),
            "rotated before passing it"
        );
        a.reload_keyring().await.unwrap();
        assert_eq!(a.get("b40").await.unwrap().unwrap(), vec![3]);
        assert_eq!(a.get("a0").await.unwrap().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn counts_survive_a_crash_upwards_and_a_clean_stop_exactly() {
        let (physical, b, root) = unsealed().await;
        with_budget(&b, 6_400).await; // reservations of 100
        for i in 0..30 {
            b.put(&format!("k{i}"), vec![0]).await.unwrap();
        }
        assert_eq!(b.key_status().unwrap().encryptions, 30);
        // Another process on the same storage after a crash of the first:
        // the whole reservation counts.
        let after_crash = Barrier::new(physical.clone());
        after_crash.unseal(&root).await.unwrap();
        assert_eq!(
            after_crash.key_status_cluster().await.unwrap().encryptions,
            101
        );
        // A clean stop gives the unused part back.
        b.flush_usage().await.unwrap();
        let after_stop = Barrier::new(physical.clone());
        after_stop.unseal(&root).await.unwrap();
        assert_eq!(
            after_stop.key_status_cluster().await.unwrap().encryptions,
            30
        );
        after_stop.put("more", vec![1]).await.unwrap();
        assert_eq!(after_stop.key_status().unwrap().encryptions, 31);
        after_stop.flush_usage().await.unwrap();
        let again = Barrier::new(physical.clone());
        again.unseal(&root).await.unwrap();
        assert_eq!(again.key_status_cluster().await.unwrap().encryptions, 31);
        // A record that does not verify counts as the whole budget.
        let key = physical
            .dump()
            .into_iter()
            .map(|(k, _)| k)
            .find(|k| k.starts_with(USAGE_PREFIX))
            .unwrap();
        physical.put(&key, vec![0u8; 40]).await.unwrap();
        assert!(again.key_status_cluster().await.unwrap().encryptions >= 6_400);
        assert_eq!(
            again
                .check_rotation(Utc::now())
                .await
                .unwrap()
                .unwrap()
                .term,
            2
        );
    }

    #[tokio::test]
    async fn the_periodic_check_rotates_by_count_and_by_age() {
        let (_, b, _) = unsealed().await;
        with_budget(&b, 10).await;
        let now = Utc::now();
        assert_eq!(b.check_rotation(now).await.unwrap(), None);
        for i in 0..10 {
            b.put(&format!("k{i}"), vec![0]).await.unwrap();
        }
        assert_eq!(b.key_status().unwrap().term, 1);
        let st = b.check_rotation(now).await.unwrap().unwrap();
        assert_eq!((st.term, st.encryptions), (2, 0));

        b.set_rotation_config(RotationConfig {
            max_operations: 1_000_000,
            interval: RotationConfig::MIN_INTERVAL,
            enabled: true,
        })
        .await
        .unwrap();
        let installed = b.key_status().unwrap().install_time;
        let day = chrono::Duration::seconds(RotationConfig::MIN_INTERVAL as i64);
        assert_eq!(
            b.check_rotation(installed + day - chrono::Duration::seconds(1))
                .await
                .unwrap(),
            None
        );
        let st = b.check_rotation(installed + day).await.unwrap().unwrap();
        assert_eq!(st.term, 3);

        // Disabled: counting goes on, rotation does not.
        b.set_rotation_config(RotationConfig {
            max_operations: 5,
            interval: 1,
            enabled: false,
        })
        .await
        .unwrap();
        for i in 0..12 {
            b.put(&format!("d{i}"), vec![0]).await.unwrap();
        }
        let st = b.key_status().unwrap();
        assert_eq!((st.term, st.encryptions), (3, 12));
        assert_eq!(b.check_rotation(installed + day * 10).await.unwrap(), None);
        assert!(matches!(
            b.set_rotation_config(RotationConfig {
                max_operations: 0,
                interval: 0,
                enabled: true,
            })
            .await,
            Err(BarrierError::InvalidRotationConfig(_))
        ));
    }

    #[tokio::test]
    async fn read_only_physical_is_reported() {
        let (physical, b, _) = unsealed().await;
        b.put("k", b"v".to_vec()).await.unwrap();
        physical.set_read_only(true);
        assert_eq!(b.put("k", vec![]).await, Err(BarrierError::ReadOnly));
        assert_eq!(b.delete("k").await, Err(BarrierError::ReadOnly));
        assert_eq!(b.rotate().await, Err(BarrierError::ReadOnly));
        assert_eq!(b.get("k").await.unwrap().unwrap(), b"v");
        assert_eq!(
            b.key_status().unwrap().term,
            1,
            "a failed rotation changes nothing"
        );
    }
}
