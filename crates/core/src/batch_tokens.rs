//! Batch tokens: the token is its own entry, encrypted and authenticated
//! (AES-256-GCM) under a key kept in the barrier, so no node stores it and
//! every node accepts it without a storage read (Vault's `hvb.` tokens).
//!
//! Invariants:
//! - The id is `hvb.` + base64url(nonce ‖ ciphertext); the plaintext is
//!   the token's entry (policies, metadata, path, times, parent), the AAD
//!   names the format, so a token cannot be forged or altered without the
//!   key, and a service token id can never parse as one.
//! - The key (32 random bytes) is made once by the active node, stored in
//!   the barrier (`sys/token/batch-key`, replicated, encrypted), cached in
//!   memory after its first read and zeroized when the store is dropped
//!   (seal).
//! - A batch token always expires (it cannot be renewed or revoked on its
//!   own); it is refused once expired, and once its parent (when it has
//!   one) is gone. It cannot be root, periodic or limited-use, has no
//!   accessor, no cubbyhole and cannot create tokens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use zeroize::Zeroizing;

use arca_sdk::LogicalError;

use crate::tokens::{hash_token, TokenEntry, TokenStore};

/// Prefix of every batch token id.
pub const BATCH_PREFIX: &str = "hvb.";
const KEY: &str = "batch-key";
const AAD: &[u8] = b"arca batch token v1";
/// Longest batch token id accepted (a stranger's input is bounded before
/// it is decoded).
const MAX_ID: usize = 16 * 1024;

/// The batch-token key, read or made once.
#[derive(Default)]
pub struct BatchKey {
    key: tokio::sync::OnceCell<Zeroizing<Vec<u8>>>,
    init: tokio::sync::Mutex<()>,
}

impl TokenStore {
    /// The key; made (a write: active node only) when `create` and there
    /// is none yet. `None` when there is none and none may be made.
    async fn batch_key(&self, create: bool) -> Result<Option<&[u8]>, LogicalError> {
        let bk = self.batch_key_cell();
        if let Some(k) = bk.key.get() {
            return Ok(Some(k));
        }
        let _g = bk.init.lock().await;
        if let Some(k) = bk.key.get() {
            return Ok(Some(k));
        }
        let stored = self.storage().get(KEY).await?;
        let key = match stored {
            Some(k) if k.len() == 32 => Zeroizing::new(k),
            Some(_) => {
                return Err(LogicalError::internal(
                    "the stored batch-token key has the wrong length",
                ))
            }
            None if create => {
                use rand::RngCore;
                let mut k = Zeroizing::new(vec![0u8; 32]);
                rand::rngs::OsRng.fill_bytes(&mut k);
                self.storage().put(KEY, k.to_vec()).await?;
                k
            }
            None => return Ok(None),
        };
        let _ = bk.key.set(key);
        Ok(bk.key.get().map(|k| k.as_slice()))
    }

    /// Makes sure the key exists (the active node, after unseal), so that
    /// standbys can serve batch-token logins and lookups.
    pub async fn ensure_batch_key(&self) -> Result<(), LogicalError> {
        self.batch_key(true).await.map(|_| ())
    }

    /// Issues a batch token for `entry` (its `hash` and `accessor` are
    /// ignored). Returns the token id.
    pub async fn create_batch(&self, entry: &TokenEntry) -> Result<String, LogicalError> {
        if entry.is_root() {
            return Err(LogicalError::invalid("batch tokens cannot be root tokens"));
        }
        if entry.expire_time <= 0 {
            return Err(LogicalError::invalid("batch tokens must have a TTL"));
        }
        if entry.num_uses != 0 {
            return Err(LogicalError::invalid("batch tokens cannot be limited-use"));
        }
        if entry.period != 0 {
            return Err(LogicalError::invalid("batch tokens cannot be periodic"));
        }
        let key = self
            .batch_key(true)
            .await?
            .ok_or_else(|| LogicalError::internal("no batch-token key"))?;
        let mut e = entry.clone();
        e.hash = String::new();
        e.accessor = String::new();
        e.batch = true;
        e.renewable = false;
        e.internal_data = Default::default();
        let plain = Zeroizing::new(serde_json::to_vec(&e).map_err(LogicalError::internal)?);
        let cipher = Aes256Gcm::new_from_slice(key).map_err(LogicalError::internal)?;
        let nonce: [u8; 12] = rand::random();
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .map_err(|_| LogicalError::internal("batch token encryption failed"))?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&ct);
        Ok(format!(
            "{BATCH_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        ))
    }

    /// The entry a batch token carries, if it is one of ours (whatever its
    /// expiry: the caller checks). Anything else is `None`.
    pub(crate) async fn open_batch(&self, id: &str) -> Result<Option<TokenEntry>, LogicalError> {
        let Some(body) = id.strip_prefix(BATCH_PREFIX) else {
            return Ok(None);
        };
        if id.len() > MAX_ID {
            return Ok(None);
        }
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body) else {
            return Ok(None);
        };
        if raw.len() < 12 + 16 {
            return Ok(None);
        }
        let Some(key) = self.batch_key(false).await? else {
            return Ok(None);
        };
        let cipher = Aes256Gcm::new_from_slice(key).map_err(LogicalError::internal)?;
        let (nonce, ct) = raw.split_at(12);
        let Ok(plain) = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
        else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        let Ok(mut e) = serde_json::from_slice::<TokenEntry>(&plain) else {
            return Ok(None);
        };
        if !e.batch {
            return Ok(None);
        }
        e.hash = hash_token(id);
        Ok(Some(e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arca_sdk::testing::InmemStorage;

    use super::*;
    use crate::tokens::tests::entry;

    #[tokio::test]
    async fn sealed_entries_open_only_unaltered_and_under_their_key() {
        let storage = Arc::new(InmemStorage::new());
        let s = TokenStore::new(storage.clone());
        s.create(entry("parent", "", 0)).await.unwrap();
        let id = s
            .create_batch(&entry("ignored", "parent", 0))
            .await
            .unwrap();
        assert!(id.starts_with(BATCH_PREFIX));
        let before = storage.keys();
        let e = s
            .lookup(&id, 120)
            .await
            .unwrap()
            .expect("a live batch token");
        assert!(e.batch && !e.renewable && e.accessor.is_empty());
        assert_eq!(e.policies, ["default"]);
        assert_eq!(storage.keys(), before, "a lookup stores nothing");
        // Expired: refused.
        assert!(s.lookup(&id, 160).await.unwrap().is_none());
        // Any altered character: refused.
        for i in [BATCH_PREFIX.len(), id.len() / 2, id.len() - 1] {
            let mut b = id.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(b).unwrap();
            assert!(s.lookup(&forged, 120).await.unwrap().is_none(), "{i}");
        }
        // Another cluster's key: refused.
        let other = TokenStore::new(Arc::new(InmemStorage::new()));
        other.ensure_batch_key().await.unwrap();
        assert!(other.lookup(&id, 120).await.unwrap().is_none());
        // A new store over the same storage (a restart, another node):
        // accepted without a write.
        let again = TokenStore::new(storage.clone());
        assert!(again.lookup(&id, 120).await.unwrap().is_some());
        // The parent goes: the batch token goes with it.
        s.revoke_tree(&hash_token("parent")).await.unwrap();
        assert!(s.lookup(&id, 120).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn what_a_batch_token_cannot_be() {
        let s = TokenStore::new(Arc::new(InmemStorage::new()));
        let mut root = entry("r", "", 0);
        root.policies = vec!["root".into()];
        assert!(s.create_batch(&root).await.is_err());
        let mut periodic = entry("p", "", 0);
        periodic.period = 60;
        assert!(s.create_batch(&periodic).await.is_err());
        assert!(s.create_batch(&entry("u", "", 3)).await.is_err());
        let mut forever = entry("f", "", 0);
        forever.expire_time = 0;
        assert!(s.create_batch(&forever).await.is_err());
        // Without a key and without the right to make one, nothing opens.
        assert!(s.lookup("hvb.AAAA", 120).await.unwrap().is_none());
    }
}
