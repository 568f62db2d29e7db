//! The token store.
//!
//! Invariants:
//! - A token's id is never stored, not even encrypted: entries are keyed by the
//!   SHA-256 of the id (`id/<hash>`), so a stolen disk yields no usable token.
//!   Lookups hash the presented token and compare hashes in constant time.
//! - `accessor/<accessor>` maps an accessor to the id hash; `parent/<parent
//!   hash>/<child hash>` indexes children so revoking a token revokes its tree.
//! - A token whose TTL or explicit max TTL has passed, or whose uses are spent,
//!   is treated as absent, and so is a token any of whose ancestors is absent
//!   or expired (a child never outlives its parent).
//! - Uses are spent, and entries renewed or orphaned, under the token's
//!   lock (one of 64 stripes), reading the stored entry (not the cache): N concurrent requests with a token of n uses get exactly
//!   min(N, n) through. On a standby the write fails read-only, so the
//!   request goes to the active node, where the same lock applies.
//! - Every token carries `default` unless created with `no_default_policy`;
//!   root tokens carry only `root`.
//! - A token bound to CIDR blocks (`bound_cidrs`, from its login) is
//!   refused (403) for a client outside them, and for a request without a
//!   known client address.
//! - A token with a TTL is listed in the time index `expire/…` under its
//!   expiry second, written in the same batch as the entry (create, renew,
//!   delete move it): the expiration manager revokes it when due.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use arca_sdk::storage::{get_json, json_op};
use arca_sdk::{LogicalError, Storage, StorageOp};

use crate::time_index;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// SHA-256 (hex) of the token id.
    pub hash: String,
    pub accessor: String,
    pub policies: Vec<String>,
    /// Hash of the parent token; empty for orphans.
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Remaining uses; 0 = unlimited.
    #[serde(default)]
    pub num_uses: i64,
    /// Unix seconds.
    pub creation_time: i64,
    /// TTL in seconds at creation (0 = never expires).
    pub creation_ttl: u64,
    /// Unix seconds of expiry; 0 = never.
    #[serde(default)]
    pub expire_time: i64,
    /// Unix seconds of the last renewal (or creation).
    pub issue_time: i64,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    #[serde(default)]
    pub period: u64,
    #[serde(default)]
    pub renewable: bool,
    pub path: String,
    #[serde(default)]
    pub entity_id: String,
    /// A batch token (never stored; see `batch_tokens`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// CIDR blocks the token may be used from; empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_cidrs: Vec<String>,
    /// What the login that created the token wants back on renewal.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub internal_data: serde_json::Map<String, serde_json::Value>,
}

impl TokenEntry {
    /// May the token be used by a client at `addr`? A bound token with no
    /// known client address (a request core made itself) may not.
    pub fn usable_from(&self, addr: Option<std::net::IpAddr>) -> bool {
        if self.bound_cidrs.is_empty() {
            return true;
        }
        match (addr, arca_sdk::cidr::parse(&self.bound_cidrs)) {
            (Some(a), Ok(blocks)) => arca_sdk::cidr::contains(&blocks, a),
            _ => false,
        }
    }

    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
    pub fn orphan(&self) -> bool {
        self.parent.is_empty()
    }
    pub fn expired(&self, now: i64) -> bool {
        self.expire_time != 0 && now >= self.expire_time
    }
    /// Whole seconds left at `now_ms` (unix milliseconds), 0 for tokens
    /// without expiry. The expiry second is rounded up at creation, so a
    /// fresh 1h token shows 3600, not 3601.
    pub fn ttl_remaining(&self, now_ms: i64) -> u64 {
        if self.expire_time == 0 {
            0
        } else {
            ((self.expire_time * 1000 - now_ms).max(0) / 1000) as u64
        }
    }
    /// The absolute limit set by explicit_max_ttl, if any.
    pub fn hard_limit(&self) -> Option<i64> {
        (self.explicit_max_ttl > 0).then(|| self.creation_time + self.explicit_max_ttl as i64)
    }
}

pub fn hash_token(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_base62(n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
        .collect()
}

/// A new service token id (`hvs.` + 24 base62 characters, like Vault).
pub fn new_token_id() -> String {
    format!("hvs.{}", random_base62(24))
}

pub fn new_accessor() -> String {
    random_base62(24)
}

/// The TTL a new or renewed token gets, Vault's rules:
/// requested (or the default) capped by the max (system/mount) and by the
/// explicit max; periodic tokens get their period (capped by explicit max only).
/// Returns seconds; 0 means "never expires" (root tokens without a TTL).
pub fn effective_ttl(
    requested: u64,
    default_ttl: u64,
    max_ttl: u64,
    explicit_max: u64,
    period: u64,
    root_no_ttl: bool,
) -> u64 {
    if period > 0 {
        return if explicit_max > 0 {
            period.min(explicit_max)
        } else {
            period
        };
    }
    if root_no_ttl && requested == 0 && explicit_max == 0 {
        return 0;
    }
    let mut ttl = if requested > 0 {
        requested
    } else {
        default_ttl
    };
    if max_ttl > 0 && ttl > max_ttl {
        ttl = max_ttl;
    }
    if explicit_max > 0 && (ttl == 0 || ttl > explicit_max) {
        ttl = explicit_max;
    }
    ttl
}

/// Persistent tokens with an in-memory cache of entries by hash.
pub struct TokenStore {
    storage: Arc<dyn Storage>,
    cache: RwLock<HashMap<String, Arc<TokenEntry>>>,
    /// Serializes changes of one token (use counting, renewal, orphaning):
    /// read, change, write. Striped by the token's hash, so unrelated
    /// tokens do not wait for each other.
    locks: Vec<tokio::sync::Mutex<()>>,
    /// The time index covers every stored token (see `index_existing`).
    indexed: std::sync::atomic::AtomicBool,
    /// The key of batch tokens (see `batch_tokens`).
    batch: crate::batch_tokens::BatchKey,
}

/// The token store's time index (`sys/token/expire/…`).
const EXPIRE: &str = "expire/";
/// Set once tokens stored before the time index existed are in it.
const INDEXED_MARK: &str = "meta/expire-indexed";

/// The time index record of a token that expires.
fn expire_key(e: &TokenEntry) -> Option<String> {
    (e.expire_time > 0).then(|| time_index::key(EXPIRE, e.expire_time, &e.hash))
}

/// Token entries kept in memory at most (the rest are read from storage).
const CACHE_MAX: usize = 8192;

/// Number of lock stripes of the token store.
const LOCK_STRIPES: usize = 64;

/// How many ancestors a lookup checks before it refuses a token: far more
/// than any real chain, small enough to bound the work.
const MAX_TOKEN_DEPTH: usize = 256;

impl TokenStore {
    /// How many tokens are stored (for the usage gauges, every few
    /// minutes, not per request).
    pub async fn count(&self) -> Result<usize, LogicalError> {
        Ok(self.storage.list("id/").await?.len())
    }

    pub fn new(storage: Arc<dyn Storage>) -> Self {
        TokenStore {
            storage,
            cache: RwLock::new(HashMap::new()),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            indexed: std::sync::atomic::AtomicBool::new(false),
            batch: Default::default(),
        }
    }

    pub(crate) fn batch_key_cell(&self) -> &crate::batch_tokens::BatchKey {
        &self.batch
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The lock guarding changes of the token with this hash.
    fn lock_for(&self, hash: &str) -> &tokio::sync::Mutex<()> {
        let b = hash.as_bytes();
        let i = b
            .iter()
            .take(8)
            .fold(0usize, |a, x| a.wrapping_mul(31).wrapping_add(*x as usize));
        &self.locks[i % LOCK_STRIPES]
    }

    pub fn clear_cache(&self) {
        self.cache.write().clear();
        // Restored data may predate the time index: check the mark again.
        self.indexed
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Caches an entry; a full cache first drops an arbitrary eighth of
    /// itself, so memory stays bounded however many tokens exist.
    fn cache_put(&self, hash: String, e: Arc<TokenEntry>) {
        let mut c = self.cache.write();
        if c.len() >= CACHE_MAX && !c.contains_key(&hash) {
            let drop: Vec<String> = c.keys().take(CACHE_MAX / 8).cloned().collect();
            for k in drop {
                c.remove(&k);
            }
        }
        c.insert(hash, e);
    }

    /// Forget a cached entry (a replicated write changed it).
    pub fn invalidate(&self, hash: &str) {
        self.cache.write().remove(hash);
    }

    async fn load(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if let Some(e) = self.cache.read().get(hash) {
            return Ok(Some(e.clone()));
        }
        let e: Option<TokenEntry> = get_json(self.storage.as_ref(), &format!("id/{hash}")).await?;
        Ok(e.map(|e| {
            let e = Arc::new(e);
            self.cache_put(hash.to_string(), e.clone());
            e
        }))
    }

    /// Looks up a live token by id. Expired or spent tokens are `None`.
    pub async fn lookup(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if id.is_empty() {
            return Ok(None);
        }
        if id.starts_with(crate::batch_tokens::BATCH_PREFIX) {
            // Decrypted, never read from storage (its parent aside).
            let Some(e) = self.open_batch(id).await? else {
                return Ok(None);
            };
            if e.expired(now) || !self.ancestors_live(&e, now).await? {
                return Ok(None);
            }
            return Ok(Some(Arc::new(e)));
        }
        let h = hash_token(id);
        let e = match self.load(&h).await? {
            Some(e) => e,
            None => return Ok(None),
        };
        if !bool::from(e.hash.as_bytes().ct_eq(h.as_bytes())) || e.expired(now) {
            return Ok(None);
        }
        if !self.ancestors_live(&e, now).await? {
            return Ok(None);
        }
        Ok(Some(e))
    }

    pub async fn lookup_hash(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        let Some(e) = self.load(hash).await?.filter(|e| !e.expired(now)) else {
            return Ok(None);
        };
        Ok(self.ancestors_live(&e, now).await?.then_some(e))
    }

    /// True when every ancestor of `e` exists and has not expired. Until the
    /// expiration manager revokes expired trees, this keeps the children of
    /// an expired token from being used.
    async fn ancestors_live(&self, e: &TokenEntry, now: i64) -> Result<bool, LogicalError> {
        let mut parent = e.parent.clone();
        for _ in 0..MAX_TOKEN_DEPTH {
            if parent.is_empty() {
                return Ok(true);
            }
            match self.load(&parent).await? {
                Some(p) if !p.expired(now) => parent = p.parent.clone(),
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    pub async fn lookup_accessor(
        &self,
        accessor: &str,
        now: i64,
    ) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let h: Option<String> =
            get_json(self.storage.as_ref(), &format!("accessor/{accessor}")).await?;
        match h {
            Some(h) => self.lookup_hash(&h, now).await,
            None => Ok(None),
        }
    }

    /// Stores a new token (entry, accessor index, parent index) atomically.
    pub async fn create(&self, entry: TokenEntry) -> Result<(), LogicalError> {
        let mut ops = vec![
            json_op(&format!("id/{}", entry.hash), &entry)?,
            json_op(&format!("accessor/{}", entry.accessor), &entry.hash)?,
        ];
        if !entry.parent.is_empty() {
            ops.push(StorageOp::Put(
                format!("parent/{}/{}", entry.parent, entry.hash),
                vec![],
            ));
        }
        if let Some(k) = expire_key(&entry) {
            ops.push(StorageOp::Put(k, vec![]));
        }
        self.storage.batch(ops).await?;
        self.cache_put(entry.hash.clone(), Arc::new(entry));
        Ok(())
    }

    /// Rewrites an existing entry (renewal, use counting) whose expiry
    /// was `old_expire`, moving its time index record.
    async fn update(&self, old_expire: i64, entry: TokenEntry) -> Result<(), LogicalError> {
        let mut ops = vec![json_op(&format!("id/{}", entry.hash), &entry)?];
        if old_expire != entry.expire_time {
            if old_expire > 0 {
                ops.push(StorageOp::Delete(time_index::key(
                    EXPIRE,
                    old_expire,
                    &entry.hash,
                )));
            }
            if let Some(k) = expire_key(&entry) {
                ops.push(StorageOp::Put(k, vec![]));
            }
        }
        self.storage.batch(ops).await?;
        self.cache_put(entry.hash.clone(), Arc::new(entry));
        Ok(())
    }

    /// Changes a stored entry under the same lock as use counting, reading
    /// it from storage (not the cache). `None` when the token is gone.
    pub async fn modify(
        &self,
        hash: &str,
        f: impl FnOnce(&mut TokenEntry),
    ) -> Result<Option<TokenEntry>, LogicalError> {
        let _g = self.lock_for(hash).lock().await;
        let Some(mut e) =
            get_json::<TokenEntry>(self.storage.as_ref(), &format!("id/{hash}")).await?
        else {
            return Ok(None);
        };
        let old = e.expire_time;
        f(&mut e);
        self.update(old, e.clone()).await?;
        Ok(Some(e))
    }

    /// Consumes one use. Returns `Some(true)` when this was the token's last
    /// use (the caller revokes it once the request is done, as Vault does),
    /// `Some(false)` for an ordinary use and `None` when no use was left.
    pub async fn use_token(&self, entry: &TokenEntry) -> Result<Option<bool>, LogicalError> {
        if entry.num_uses == 0 {
            return Ok(Some(false));
        }
        let _g = self.lock_for(&entry.hash).lock().await;
        let current: TokenEntry =
            match get_json(self.storage.as_ref(), &format!("id/{}", entry.hash)).await? {
                Some(e) => e,
                None => return Ok(None),
            };
        if current.num_uses <= 0 {
            return Ok(None);
        }
        let mut e = current;
        let old = e.expire_time;
        e.num_uses -= 1;
        let last = e.num_uses == 0;
        if last {
            // -1 marks a token whose last use is in flight: no further use.
            e.num_uses = -1;
        }
        self.update(old, e).await?;
        Ok(Some(last))
    }

    async fn children(&self, hash: &str) -> Result<Vec<String>, LogicalError> {
        let keys = self.storage.list(&format!("parent/{hash}/")).await?;
        Ok(keys.into_iter().filter(|k| !k.ends_with('/')).collect())
    }

    async fn delete_one(&self, hash: &str) -> Result<Option<TokenEntry>, LogicalError> {
        let e: Option<TokenEntry> = get_json(self.storage.as_ref(), &format!("id/{hash}")).await?;
        let mut ops = vec![StorageOp::Delete(format!("id/{hash}"))];
        if let Some(e) = &e {
            ops.push(StorageOp::Delete(format!("accessor/{}", e.accessor)));
            if !e.parent.is_empty() {
                ops.push(StorageOp::Delete(format!("parent/{}/{hash}", e.parent)));
            }
            if let Some(k) = expire_key(e) {
                ops.push(StorageOp::Delete(k));
            }
        }
        self.storage.batch(ops).await?;
        self.cache.write().remove(hash);
        Ok(e)
    }

    /// Revokes a token and all its descendants. Returns the revoked hashes.
    pub async fn revoke_tree(&self, hash: &str) -> Result<Vec<String>, LogicalError> {
        // Depth-first: children before parents, so a crash midway leaves
        // no child whose parent is gone.
        let mut order = Vec::new();
        let mut stack = vec![hash.to_string()];
        while let Some(h) = stack.pop() {
            for c in self.children(&h).await? {
                stack.push(c);
            }
            order.push(h);
        }
        for h in order.iter().rev() {
            self.delete_one(h).await?;
        }
        Ok(order)
    }

    /// Revokes only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<Vec<String>, LogicalError> {
        for c in self.children(hash).await? {
            let _g = self.lock_for(&c).lock().await;
            if let Some(e) =
                get_json::<TokenEntry>(self.storage.as_ref(), &format!("id/{c}")).await?
            {
                let mut e = e;
                e.parent.clear();
                self.storage
                    .batch(vec![
                        json_op(&format!("id/{c}"), &e)?,
                        StorageOp::Delete(format!("parent/{hash}/{c}")),
                    ])
                    .await?;
                self.cache.write().remove(&c);
            }
        }
        self.delete_one(hash).await?;
        Ok(vec![hash.to_string()])
    }

    /// The stored entry (not the cache; expired or not).
    pub async fn stored(&self, hash: &str) -> Result<Option<TokenEntry>, LogicalError> {
        Ok(get_json(self.storage.as_ref(), &format!("id/{hash}")).await?)
    }

    /// Up to `limit` tokens due at `now`: (index key, expiry, token hash).
    pub async fn due(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64, String)>, LogicalError> {
        Ok(time_index::due(self.storage.as_ref(), EXPIRE, now, limit)
            .await?
            .into_iter()
            .map(|d| (d.key, d.ts, d.name))
            .collect())
    }

    pub async fn delete_index_key(&self, key: &str) -> Result<(), LogicalError> {
        Ok(self.storage.delete(key).await?)
    }

    /// Tokens stored before the time index existed get their record, once
    /// (`expire-indexed` marks it done).
    pub async fn index_existing(&self) -> Result<(), LogicalError> {
        if self.indexed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        if self.storage.get(INDEXED_MARK).await?.is_none() {
            let mut n = 0;
            for h in self.storage.list("id/").await? {
                if let Some(e) = self.stored(&h).await? {
                    if let Some(k) = expire_key(&e) {
                        self.storage.put(&k, vec![]).await?;
                        n += 1;
                    }
                }
            }
            self.storage.put(INDEXED_MARK, b"1".to_vec()).await?;
            tracing::info!(tokens = n, "indexed the expiry of existing tokens");
        }
        self.indexed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Hashes of the tokens created on a path under `prefix` (the logins
    /// of one auth mount). Walks every token: disabling an auth mount is
    /// rare.
    pub async fn hashes_with_path(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        let mut out = Vec::new();
        for h in self.storage.list("id/").await? {
            if let Some(e) = self.stored(&h).await? {
                if e.path.starts_with(prefix) {
                    out.push(h);
                }
            }
        }
        Ok(out)
    }

    /// All accessors (for `auth/token/accessors`).
    pub async fn accessors(&self) -> Result<Vec<String>, LogicalError> {
        Ok(self.storage.list("accessor/").await?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arca_sdk::testing::InmemStorage;

    pub(crate) fn entry(id: &str, parent: &str, uses: i64) -> TokenEntry {
        TokenEntry {
            hash: hash_token(id),
            accessor: format!("acc-{id}"),
            policies: vec!["default".into()],
            parent: if parent.is_empty() {
                String::new()
            } else {
                hash_token(parent)
            },
            meta: BTreeMap::new(),
            display_name: "token".into(),
            num_uses: uses,
            creation_time: 100,
            creation_ttl: 60,
            expire_time: 160,
            issue_time: 100,
            explicit_max_ttl: 0,
            period: 0,
            renewable: true,
            path: "auth/token/create".into(),
            entity_id: String::new(),
            bound_cidrs: Vec::new(),
            batch: false,
            internal_data: Default::default(),
        }
    }

    #[test]
    fn ttl_rules() {
        // default applies, capped by max and explicit max
        assert_eq!(effective_ttl(0, 3600, 7200, 0, 0, false), 3600);
        assert_eq!(effective_ttl(10_000, 3600, 7200, 0, 0, false), 7200);
        assert_eq!(effective_ttl(10_000, 3600, 7200, 60, 0, false), 60);
        // periodic tokens get their period
        assert_eq!(effective_ttl(0, 3600, 7200, 0, 30, false), 30);
        // root tokens without a TTL never expire
        assert_eq!(effective_ttl(0, 3600, 7200, 0, 0, true), 0);
        assert_eq!(effective_ttl(50, 3600, 7200, 0, 0, true), 50);
    }

    #[tokio::test]
    async fn revoking_a_parent_revokes_children_not_orphans() {
        let s = TokenStore::new(Arc::new(InmemStorage::new()));
        s.create(entry("p", "", 0)).await.unwrap();
        s.create(entry("c1", "p", 0)).await.unwrap();
        s.create(entry("g1", "c1", 0)).await.unwrap();
        s.create(entry("o", "", 0)).await.unwrap();
        s.revoke_tree(&hash_token("p")).await.unwrap();
        for id in ["p", "c1", "g1"] {
            assert!(
                s.lookup(id, 120).await.unwrap().is_none(),
                "{id} should be revoked"
            );
        }
        assert!(s.lookup("o", 120).await.unwrap().is_some());
        assert!(s.lookup_accessor("acc-c1", 120).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn revoke_orphan_keeps_children() {
        let s = TokenStore::new(Arc::new(InmemStorage::new()));
        s.create(entry("p", "", 0)).await.unwrap();
        s.create(entry("c", "p", 0)).await.unwrap();
        s.revoke_orphan(&hash_token("p")).await.unwrap();
        let c = s.lookup("c", 120).await.unwrap().unwrap();
        assert!(c.orphan());
    }

    #[tokio::test]
    async fn children_of_an_expired_parent_are_refused() {
        let s = TokenStore::new(Arc::new(InmemStorage::new()));
        let mut p = entry("p", "", 0);
        p.expire_time = 130;
        s.create(p).await.unwrap();
        let mut c = entry("c", "p", 0);
        c.expire_time = 0;
        s.create(c).await.unwrap();
        s.create(entry("g", "c", 0)).await.unwrap();
        assert!(s.lookup("c", 120).await.unwrap().is_some());
        assert!(s.lookup("g", 120).await.unwrap().is_some());
        assert!(s.lookup("c", 130).await.unwrap().is_none());
        assert!(s.lookup("g", 130).await.unwrap().is_none());
        assert!(s.lookup_accessor("acc-g", 130).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn concurrent_uses_of_a_single_use_token() {
        let s = Arc::new(TokenStore::new(Arc::new(InmemStorage::new())));
        s.create(entry("t", "", 1)).await.unwrap();
        let e = s.lookup("t", 120).await.unwrap().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (s, e) = (s.clone(), e.clone());
            tasks.spawn(async move { s.use_token(&e).await.unwrap() });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            if r.unwrap().is_some() {
                ok += 1;
            }
        }
        assert_eq!(ok, 1);
    }

    #[tokio::test]
    async fn expiry_and_use_counts() {
        let s = TokenStore::new(Arc::new(InmemStorage::new()));
        s.create(entry("t", "", 2)).await.unwrap();
        assert!(s.lookup("t", 159).await.unwrap().is_some());
        assert!(
            s.lookup("t", 160).await.unwrap().is_none(),
            "expired at expire_time"
        );
        let e = s.lookup("t", 120).await.unwrap().unwrap();
        assert_eq!(s.use_token(&e).await.unwrap(), Some(false));
        let e = s.lookup("t", 120).await.unwrap().unwrap();
        assert_eq!(e.num_uses, 1);
        assert_eq!(
            s.use_token(&e).await.unwrap(),
            Some(true),
            "the last use is reported"
        );
        let e = s.lookup("t", 120).await.unwrap().unwrap();
        assert_eq!(s.use_token(&e).await.unwrap(), None, "no use is left");
        assert!(s.lookup("", 120).await.unwrap().is_none());
    }
}
