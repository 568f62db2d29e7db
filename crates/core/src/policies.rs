//! ACL policy storage and compiled-ACL cache.
//!
//! Invariants:
//! - `root` is built in, never stored, and cannot be written or deleted;
//!   `default` is stored at initialization, may be rewritten, never deleted.
//! - Names are lower-cased. A policy is parsed before it is stored, so what is
//!   stored always compiles.
//! - Compiled ACLs are cached per policy set and dropped on any policy change.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use arca_policy::{Acl, Policy};
use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
}

/// The names stored at the top of `storage` (folders left out), sorted: the
/// listing of a policy store, ACL or password.
pub(crate) async fn stored_names(storage: &dyn Storage) -> Result<Vec<String>, LogicalError> {
    let mut names: Vec<String> = storage
        .list("")
        .await?
        .into_iter()
        .filter(|k| !k.ends_with('/'))
        .collect();
    names.sort();
    Ok(names)
}

pub struct PolicyStore {
    storage: Arc<dyn Storage>,
    policies: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<String, Arc<Acl>>>,
    root_acl: Arc<Acl>,
}

impl PolicyStore {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        PolicyStore {
            storage,
            policies: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
            root_acl: Arc::new(Acl::root()),
        }
    }

    pub fn clear_cache(&self) {
        self.policies.write().clear();
        self.acls.write().clear();
    }

    /// Writes the built-in `default` policy unless one is stored already.
    pub async fn ensure_default(&self) -> Result<(), LogicalError> {
        if self.storage.get("default").await?.is_none() {
            self.set("default", arca_policy::default_policy_text())
                .await?;
        }
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, LogicalError> {
        let name = name.to_lowercase();
        if let Some(p) = self.policies.read().get(&name) {
            return Ok(Some(p.clone()));
        }
        if name == arca_policy::RESPONSE_WRAPPING_POLICY {
            // Built in, never stored: what wrapping tokens may do.
            let p = Arc::new(
                arca_policy::parse(&name, arca_policy::response_wrapping_policy_text())
                    .map_err(|e| LogicalError::internal(e.to_string()))?,
            );
            self.policies.write().insert(name, p.clone());
            return Ok(Some(p));
        }
        let stored: Option<StoredPolicy> = get_json(self.storage.as_ref(), &name).await?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let p = Arc::new(arca_policy::parse(&stored.name, &stored.raw).map_err(|e| {
            LogicalError::internal(format!("stored policy {name} does not parse: {e}"))
        })?);
        self.policies.write().insert(name, p.clone());
        Ok(Some(p))
    }

    /// Parses and stores a policy. Returns the parse error as a 400.
    pub async fn set(&self, name: &str, text: &str) -> Result<(), LogicalError> {
        let name = name.to_lowercase();
        if name.is_empty() {
            return Err(LogicalError::invalid("policy name must not be empty"));
        }
        if name == "root" || name == arca_policy::RESPONSE_WRAPPING_POLICY {
            return Err(LogicalError::invalid(format!(
                "cannot update {name:?} policy"
            )));
        }
        if name.contains('/') || name.contains("..") {
            return Err(LogicalError::invalid(format!(
                "invalid policy name {name:?}"
            )));
        }
        let p = arca_policy::parse(&name, text)
            .map_err(|e| LogicalError::invalid(format!("failed to parse policy: {e}")))?;
        put_json(
            self.storage.as_ref(),
            &name,
            &StoredPolicy {
                name: name.clone(),
                raw: text.to_string(),
            },
        )
        .await?;
        self.policies.write().insert(name, Arc::new(p));
        self.acls.write().clear();
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<(), LogicalError> {
        let name = name.to_lowercase();
        match name.as_str() {
            "root" => return Err(LogicalError::invalid("cannot delete \"root\" policy")),
            "default" => return Err(LogicalError::invalid("cannot delete \"default\" policy")),
            _ => {}
        }
        self.storage.delete(&name).await?;
        self.invalidate(&name);
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<String>, LogicalError> {
        let mut names = stored_names(self.storage.as_ref()).await?;
        names.push("root".into());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Forget one cached policy (a replicated write changed it).
    pub fn invalidate(&self, name: &str) {
        self.policies.write().remove(name);
        self.acls.write().clear();
    }

    /// The compiled ACL for a set of policy names. Unknown names are skipped,
    /// as in Vault.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>, LogicalError> {
        if names.iter().any(|n| n == "root") {
            return Ok(self.root_acl.clone());
        }
        let mut sorted: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        sorted.sort();
        sorted.dedup();
        let key = sorted.join(",");
        if let Some(a) = self.acls.read().get(&key) {
            return Ok(a.clone());
        }
        let mut pols = Vec::new();
        for n in &sorted {
            if let Some(p) = self.get(n).await? {
                pols.push((*p).clone());
            }
        }
        let acl = Arc::new(Acl::new(&pols));
        self.acls.write().insert(key, acl.clone());
        Ok(acl)
    }

    /// The parsed policies of a set (for `sys/internal/ui/mounts` visibility).
    pub async fn policies(&self, names: &[String]) -> Result<Vec<Arc<Policy>>, LogicalError> {
        let mut out = Vec::new();
        for n in names {
            if let Some(p) = self.get(n).await? {
                out.push(p);
            }
        }
        Ok(out)
    }
}
