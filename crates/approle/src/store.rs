//! What the method keeps in storage, the keys it is kept under, and the
//! locks that serialise changes (see the crate docs for the layout).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Mutex, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};
use zeroize::Zeroizing;

use arca_sdk::storage::{get_json, json_op};
use arca_sdk::token_fields::TokenParams;
use arca_sdk::{LogicalError, Storage, StorageOp};

/// Longest role name, role id or secret id (Vault's limit on HMAC input).
pub const MAX_INPUT: usize = 4096;

/// Lock stripes for roles and for secret ids.
const STRIPES: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub role_id: String,
    /// Hex HMAC key for this role's secret ids.
    pub hmac_key: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: u64,
    pub local_secret_ids: bool,
    #[serde(flatten)]
    pub token: TokenParams,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretIdEntry {
    pub secret_id_accessor: String,
    /// Uses left; 0 means unlimited.
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: u64,
    /// Unix seconds.
    pub creation_time: i64,
    /// Unix seconds; 0: never expires.
    pub expiration_time: i64,
    pub last_updated_time: i64,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    pub fn expired(&self, now: i64) -> bool {
        self.expiration_time != 0 && now >= self.expiration_time
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessorEntry {
    pub secret_id_hmac: String,
    pub role_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleIdEntry {
    pub name: String,
}

pub fn role_key(name: &str) -> String {
    format!("role/{name}")
}

pub fn hmac_hex(key: &[u8], value: &str) -> String {
    // An HMAC key of any length is accepted, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(value.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(&*b)
}

/// The salt and the locks.
pub struct Store {
    salt: tokio::sync::OnceCell<Zeroizing<Vec<u8>>>,
    salt_init: Mutex<()>,
    roles: Vec<std::sync::Arc<RwLock<()>>>,
    secret_ids: Vec<std::sync::Arc<Mutex<()>>>,
}

fn stripe(s: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    (h.finish() as usize) % STRIPES
}

impl Store {
    pub fn new() -> Store {
        Store {
            salt: tokio::sync::OnceCell::new(),
            salt_init: Mutex::new(()),
            roles: (0..STRIPES)
                .map(|_| std::sync::Arc::new(RwLock::new(())))
                .collect(),
            secret_ids: (0..STRIPES)
                .map(|_| std::sync::Arc::new(Mutex::new(())))
                .collect(),
        }
    }

    /// Held while a role is read for a change that depends on it.
    pub async fn role_read(&self, name: &str) -> OwnedRwLockReadGuard<()> {
        self.roles[stripe(name)].clone().read_owned().await
    }

    /// Held while a role is changed or deleted.
    pub async fn role_write(&self, name: &str) -> OwnedRwLockWriteGuard<()> {
        self.roles[stripe(name)].clone().write_owned().await
    }

    /// Held from reading a secret id to writing its new use count.
    pub async fn secret_id(&self, secret_id_hmac: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.secret_ids[stripe(secret_id_hmac)]
            .clone()
            .lock_owned()
            .await
    }

    /// The mount's HMAC key; made and stored on first use (a write, so on
    /// the active node; a standby forwards the request that needed it).
    pub async fn salt(&self, s: &dyn Storage) -> Result<&[u8], LogicalError> {
        if let Some(v) = self.salt.get() {
            return Ok(v);
        }
        let _g = self.salt_init.lock().await;
        if let Some(v) = self.salt.get() {
            return Ok(v);
        }
        let key = match s.get("salt").await? {
            Some(v) => Zeroizing::new(v),
            None => {
                let v =
                    Zeroizing::new(hex::decode(random_hex(32)).map_err(LogicalError::internal)?);
                s.put("salt", v.to_vec()).await?;
                v
            }
        };
        let _ = self.salt.set(key);
        Ok(self.salt.get().map(|v| v.as_slice()).unwrap_or_default())
    }

    pub async fn role(&self, s: &dyn Storage, name: &str) -> Result<Option<Role>, LogicalError> {
        Ok(get_json(s, &role_key(&name.to_lowercase())).await?)
    }

    pub async fn role_id_key(
        &self,
        s: &dyn Storage,
        role_id: &str,
    ) -> Result<String, LogicalError> {
        Ok(format!(
            "role_id/{}",
            hmac_hex(self.salt(s).await?, role_id)
        ))
    }

    pub async fn accessor_key(
        &self,
        s: &dyn Storage,
        accessor: &str,
    ) -> Result<String, LogicalError> {
        Ok(format!(
            "accessor/{}",
            hmac_hex(self.salt(s).await?, accessor)
        ))
    }

    /// The role a role id belongs to.
    pub async fn role_by_id(
        &self,
        s: &dyn Storage,
        role_id: &str,
    ) -> Result<Option<(String, Role)>, LogicalError> {
        let key = self.role_id_key(s, role_id).await?;
        let Some(idx) = get_json::<RoleIdEntry>(s, &key).await? else {
            return Ok(None);
        };
        Ok(self
            .role(s, &idx.name)
            .await?
            .filter(|r| r.role_id == role_id)
            .map(|r| (idx.name, r)))
    }
}

/// Where a role's secret ids live, and where one of them lives.
pub struct SecretIdKeys {
    pub folder: String,
    pub hmac: String,
}

impl SecretIdKeys {
    pub fn new(role: &Role, name: &str, secret_id: &str) -> Result<SecretIdKeys, LogicalError> {
        let key = hex::decode(&role.hmac_key).map_err(LogicalError::internal)?;
        Ok(SecretIdKeys {
            folder: role_folder(role, name)?,
            hmac: hmac_hex(&key, secret_id),
        })
    }

    pub fn entry(&self) -> String {
        format!("{}{}", self.folder, self.hmac)
    }
}

/// `secret_id/<HMAC(role key, name)>/`.
pub fn role_folder(role: &Role, name: &str) -> Result<String, LogicalError> {
    let key = hex::decode(&role.hmac_key).map_err(LogicalError::internal)?;
    Ok(format!("secret_id/{}/", hmac_hex(&key, name)))
}

/// The batch that removes a secret id and its accessor.
pub fn delete_ops(entry_key: &str, accessor_key: &str) -> Vec<StorageOp> {
    vec![
        StorageOp::Delete(entry_key.to_string()),
        StorageOp::Delete(accessor_key.to_string()),
    ]
}

/// The batch that stores a secret id and its accessor.
pub fn put_ops(
    entry_key: &str,
    entry: &SecretIdEntry,
    accessor_key: &str,
    accessor: &AccessorEntry,
) -> Result<Vec<StorageOp>, LogicalError> {
    Ok(vec![
        json_op(entry_key, entry)?,
        json_op(accessor_key, accessor)?,
    ])
}
