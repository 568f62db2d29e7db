//! Engine state and assembly: the key cache, the write lock, special paths.
//!
//! Invariants:
//! - Every node serves encrypt, decrypt, rewrap, datakey, hmac, sign,
//!   verify, hash and random from its replicated state, also while no
//!   leader is elected (declared available without a leader); writes
//!   (create, rotate, config, upsert, import, restore, trim, delete) fail
//!   with `ReadOnly` on a standby and are forwarded to the active node.
//! - The cache holds parsed keys by name. A key written on this node
//!   replaces its entry; a replicated write drops it (`invalidate`, on
//!   every node, before the write's index counts as applied), so a
//!   standby's next request reads the new key. A generation counter keeps
//!   a load that raced an invalidation from caching the old key.
//! - Key changes on the active node run one at a time (one mutex): each is
//!   a read-modify-write of one record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{Framework, LogicalError, SpecialPaths, Storage};

use crate::crypto::CryptoError;
use crate::keys::Policy;
use crate::material::Loaded;
use crate::{path_byok, path_crypt, path_keys, path_misc, path_sign};

pub(crate) const POLICY_PREFIX: &str = "policy/";

impl From<CryptoError> for LogicalError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Invalid(m) => LogicalError::InvalidRequest(m),
            CryptoError::Internal(m) => LogicalError::Internal(m),
        }
    }
}

pub struct Transit {
    pub(crate) system: Arc<dyn arca_sdk::SystemView>,
    cache: parking_lot::RwLock<HashMap<String, Arc<Loaded>>>,
    generation: AtomicU64,
    /// Most keys cached (0: no limit), from `cache-config`.
    cache_size: AtomicUsize,
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    /// The BYOK wrapping key, parsed (see `path_byok`).
    pub(crate) wrapping: parking_lot::Mutex<Option<Arc<crate::path_byok::WrappingKey>>>,
}

impl Transit {
    fn new(system: Arc<dyn arca_sdk::SystemView>) -> Transit {
        Transit {
            system,
            cache: Default::default(),
            generation: AtomicU64::new(0),
            cache_size: AtomicUsize::new(0),
            write_lock: Default::default(),
            wrapping: Default::default(),
        }
    }

    /// Now, by the system view's clock (creation times, rotation schedules).
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.system.now(), 0).unwrap_or_else(chrono::Utc::now)
    }

    /// The key `name`, from the cache or storage.
    pub(crate) async fn load(
        &self,
        s: &dyn Storage,
        name: &str,
    ) -> Result<Option<Arc<Loaded>>, LogicalError> {
        if let Some(k) = self.cache.read().get(name) {
            return Ok(Some(k.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(policy) = get_json::<Policy>(s, &format!("{POLICY_PREFIX}{name}")).await? else {
            return Ok(None);
        };
        let loaded = Arc::new(Loaded::new(policy));
        let mut cache = self.cache.write();
        if self.generation.load(Ordering::Acquire) == generation {
            self.make_room(&mut cache);
            cache.insert(name.to_string(), loaded.clone());
        }
        Ok(Some(loaded))
    }

    /// Like [`load`](Self::load), but a missing key is a 400 naming `what`.
    pub(crate) async fn must_load(
        &self,
        s: &dyn Storage,
        name: &str,
        what: &str,
    ) -> Result<Arc<Loaded>, LogicalError> {
        self.load(s, name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("{what} key not found")))
    }

    fn make_room(&self, cache: &mut HashMap<String, Arc<Loaded>>) {
        let limit = self.cache_size.load(Ordering::Relaxed);
        if limit > 0 && cache.len() >= limit {
            // No recency kept: any entry goes; it is reloaded when needed.
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(&k);
            }
        }
    }

    /// Writes `policy` and makes it what this node serves.
    pub(crate) async fn store(
        &self,
        s: &dyn Storage,
        policy: Policy,
    ) -> Result<Arc<Loaded>, LogicalError> {
        let key = format!("{POLICY_PREFIX}{}", policy.name);
        let bytes =
            zeroize::Zeroizing::new(serde_json::to_vec(&policy).map_err(LogicalError::internal)?);
        s.put(&key, bytes.to_vec()).await?;
        let loaded = Arc::new(Loaded::new(policy));
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut cache = self.cache.write();
        self.make_room(&mut cache);
        cache.insert(loaded.policy.name.clone(), loaded.clone());
        Ok(loaded)
    }

    pub(crate) async fn remove(&self, s: &dyn Storage, name: &str) -> Result<(), LogicalError> {
        s.delete(&format!("{POLICY_PREFIX}{name}")).await?;
        self.forget(name);
        Ok(())
    }

    fn forget(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.write().remove(name);
    }

    pub(crate) fn set_cache_size(&self, n: usize) {
        self.cache_size.store(n, Ordering::Relaxed);
        let mut cache = self.cache.write();
        while n > 0 && cache.len() > n {
            let Some(k) = cache.keys().next().cloned() else {
                break;
            };
            cache.remove(&k);
        }
    }

    async fn invalidate(&self, key: &str) {
        if let Some(name) = key.strip_prefix(POLICY_PREFIX) {
            self.forget(name);
        } else if key == path_keys::CACHE_CONFIG {
            // Re-read lazily on the next request that needs it.
            self.generation.fetch_add(1, Ordering::AcqRel);
        } else if key == path_byok::WRAPPING_KEY {
            *self.wrapping.lock() = None;
        } else if key.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.cache.write().clear();
            *self.wrapping.lock() = None;
        }
    }

    async fn initialize(&self, s: &dyn Storage) -> Result<(), LogicalError> {
        if let Some(c) = get_json::<path_keys::CacheConfig>(s, path_keys::CACHE_CONFIG).await? {
            self.set_cache_size(c.size);
        }
        Ok(())
    }

    /// Rotates every key whose `auto_rotate_period` has passed since its
    /// newest version was made (active node only).
    async fn periodic(&self, s: &dyn Storage) -> Result<(), LogicalError> {
        let now = self.system.now();
        for name in s.list(POLICY_PREFIX).await? {
            if name.ends_with('/') {
                continue;
            }
            let Some(k) = self.load(s, &name).await? else {
                continue;
            };
            if !due_for_rotation(&k.policy, now) {
                continue;
            }
            let _guard = self.write_lock.lock().await;
            // Re-read under the lock: a request may have rotated it.
            let Some(policy) = get_json::<Policy>(s, &format!("{POLICY_PREFIX}{name}")).await?
            else {
                continue;
            };
            if !due_for_rotation(&policy, now) {
                continue;
            }
            let mut policy = policy;
            policy.rotate(self.now())?;
            tracing::info!(key = %name, version = policy.latest_version, "transit key rotated automatically");
            self.store(s, policy).await?;
        }
        Ok(())
    }
}

fn due_for_rotation(p: &Policy, now: i64) -> bool {
    if p.auto_rotate_period == 0 || (p.imported && !p.allow_imported_key_rotation) {
        return false;
    }
    let newest = p
        .keys
        .get(&p.latest_version)
        .map(|v| v.creation_time.timestamp())
        .unwrap_or(0);
    newest + p.auto_rotate_period as i64 <= now
}

pub(crate) async fn put_config<T: serde::Serialize>(
    s: &dyn Storage,
    key: &str,
    v: &T,
) -> Result<(), LogicalError> {
    Ok(put_json(s, key, v).await?)
}

/// Paths that only read keys: every node answers them from local state,
/// with or without a leader.
const LOCAL: &[&str] = &[
    "encrypt/*",
    "decrypt/*",
    "rewrap/*",
    "datakey/*",
    "hmac/*",
    "sign/*",
    "verify/*",
    "hash",
    "hash/*",
    "random",
    "random/*",
];

/// The registry's factory.
pub fn new_backend(
    cfg: &arca_sdk::BackendConfig,
) -> Result<Arc<dyn arca_sdk::Backend>, LogicalError> {
    Ok(Arc::new(factory(cfg.system.clone())))
}

pub fn factory(system: Arc<dyn arca_sdk::SystemView>) -> Framework<Transit> {
    let mut paths = Vec::new();
    paths.extend(path_keys::paths());
    paths.extend(path_crypt::paths());
    paths.extend(path_sign::paths());
    paths.extend(path_misc::paths());
    paths.extend(path_byok::paths());
    Framework::new("transit", Transit::new(system), paths)
        .with_special_paths(SpecialPaths {
            root: vec![],
            unauthenticated: vec![],
            unauthenticated_writes: vec![],
            available_without_leader: LOCAL.iter().map(|s| s.to_string()).collect(),
            forward_on_standby: vec![],
        })
        .with_invalidate(|b: &Transit, k| Box::pin(b.invalidate(k)))
        .with_initialize(|b: &Transit, s| Box::pin(b.initialize(s)))
        .with_periodic(|b: &Transit, s| Box::pin(b.periodic(s)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_declares_its_captures_and_has_help() {
        let lint =
            super::factory(std::sync::Arc::new(arca_sdk::StaticSystemView::default())).lint();
        assert!(lint.is_empty(), "{lint:?}");
    }
}
