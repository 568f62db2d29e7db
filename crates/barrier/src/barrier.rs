//! [`Barrier`]: seal state, keyring lifecycle and encrypted access by full
//! logical path. See the crate docs for formats and invariants.

use std::sync::Arc;

use arca_physical::{Op, PhysicalBackend};
use arca_sdk::StorageOp;
use parking_lot::RwLock;
use zeroize::Zeroizing;

use crate::keyring::{value_term, Keyring, KEYRING_PATH};
use crate::path::{logical_child, logical_key, physical_folder, physical_key};
use crate::{BarrierError, KeyStatus, RootKey};

pub struct Barrier {
    physical: Arc<dyn PhysicalBackend>,
    /// `None` while sealed. Operations clone the `Arc` and release the lock
    /// before any I/O.
    keyring: RwLock<Option<Arc<Keyring>>>,
    /// Serializes keyring changes (initialize, unseal, rotate, reload).
    change: tokio::sync::Mutex<()>,
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
        })
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
        *self.keyring.write() = Some(Arc::new(keyring));
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
        *self.keyring.write() = Some(Arc::new(keyring));
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
    pub async fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let _change = self.change.lock().await;
        let next = self.keyring()?.rotated();
        self.physical
            .put(KEYRING_PATH, next.to_sealed_record())
            .await?;
        let status = next.status();
        let mut slot = self.keyring.write();
        if slot.is_some() {
            *slot = Some(Arc::new(next));
        }
        Ok(status)
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

    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        Ok(self.keyring()?.status())
    }

    /// Re-reads the keyring from physical storage (another node rotated it).
    pub async fn reload_keyring(&self) -> Result<(), BarrierError> {
        let _change = self.change.lock().await;
        let root_key = self.keyring()?.root_key().clone();
        let keyring = self.load(root_key).await?;
        let mut slot = self.keyring.write();
        if slot.is_some() {
            *slot = Some(Arc::new(keyring));
        }
        Ok(())
    }

    /// Reads and decrypts `key`. A value under a term this node does not
    /// know yet (another node rotated the keyring) triggers one
    /// [`reload_keyring`](Self::reload_keyring) before decrypting.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
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
        check_writable_key(key)?;
        let value = Zeroizing::new(value);
        let keyring = self.keyring()?;
        let physical = physical_key(keyring.path_cipher(), key);
        let ct = keyring.encrypt(key, &value);
        Ok(self.physical.put(&physical, ct).await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        check_writable_key(key)?;
        let keyring = self.keyring()?;
        let physical = physical_key(keyring.path_cipher(), key);
        Ok(self.physical.delete(&physical).await?)
    }

    /// Immediate children of `prefix` in plaintext byte order, sub-folders with
    /// a trailing `/` (Vault semantics, also for a prefix ending mid-name).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
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
        let keyring = self.keyring()?;
        let cipher = keyring.path_cipher();
        let mut physical_ops = Vec::with_capacity(ops.len());
        for op in ops {
            physical_ops.push(match op {
                StorageOp::Put(key, value) => {
                    check_writable_key(&key)?;
                    let value = Zeroizing::new(value);
                    Op::Put(physical_key(cipher, &key), keyring.encrypt(&key, &value))
                }
                StorageOp::Delete(key) => {
                    check_writable_key(&key)?;
                    Op::Delete(physical_key(cipher, &key))
                }
            });
        }
        Ok(self.physical.batch(physical_ops).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::DATA_PREFIX;
    use arca_physical::InmemBackend;

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
        assert_eq!(dump.len(), 3);
        for (k, v) in &dump {
            assert!(k == KEYRING_PATH || k.starts_with(DATA_PREFIX), "{k}");
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
