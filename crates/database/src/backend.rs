//! Engine state and assembly: one connection pool per configured database,
//! special paths, the lease type of dynamic credentials.
//!
//! Invariants:
//! - `creds/*`, `rotate-root/*`, `rotate-role/*`, `static-roles/*` and
//!   `reset/*` act on the database or on this node's pools: a standby
//!   forwards them to the active node before running anything, so a user
//!   is created once, on the node whose expiration manager will revoke it,
//!   and a password changes on the node that runs rotations (`rotation`).
//! - A pool is built from the stored config when first needed and dropped
//!   when that config is written, deleted or reset (on every node, through
//!   `invalidate`), and when the mount is disabled or the node seals.

use std::collections::HashMap;
use std::sync::Arc;

use arca_sdk::{Framework, LogicalError, SpecialPaths, Storage};

use crate::model::{self, CONFIG_PREFIX};
use crate::plugin::{self, Pool};
use crate::{path_config, path_creds, path_roles, path_static};

/// The secret type of dynamic credentials (Vault's name).
pub(crate) const SECRET_CREDS: &str = "creds";

pub struct Database {
    pub(crate) system: Arc<dyn arca_sdk::SystemView>,
    /// Each pool with the config it was built from.
    pools: parking_lot::Mutex<HashMap<String, (Arc<Pool>, model::DbConfig)>>,
    /// Held by every password rotation (`rotation`): one at a time.
    pub(crate) rotations: tokio::sync::Mutex<()>,
}

impl Database {
    /// The pool of connection `name` (built from its stored config).
    pub(crate) async fn pool(
        &self,
        s: &dyn Storage,
        name: &str,
    ) -> Result<(Arc<Pool>, model::DbConfig), LogicalError> {
        let cfg = model::get_config(s, name).await?.ok_or_else(|| {
            LogicalError::invalid(format!(
                "database {name:?} not found (database/config/{name})"
            ))
        })?;
        // A pool built from another version of the config (a write or a
        // rotation raced with this request) is replaced, not reused.
        if let Some((p, built)) = self.pools.lock().get(name) {
            if *built == cfg {
                return Ok((p.clone(), cfg));
            }
        }
        let pool = Pool::new(&cfg).map_err(|e| plugin::to_logical("invalid connection", e))?;
        let mut pools = self.pools.lock();
        match pools.get(name) {
            Some((p, built)) if *built == cfg => Ok((p.clone(), cfg)),
            _ => {
                if let Some((old, _)) = pools.insert(name.to_string(), (pool.clone(), cfg.clone()))
                {
                    old.close();
                }
                Ok((pool, cfg))
            }
        }
    }

    /// Closes and forgets the pool of `name`.
    pub(crate) fn drop_pool(&self, name: &str) {
        if let Some((p, _)) = self.pools.lock().remove(name) {
            p.close();
        }
    }

    async fn invalidate(&self, key: &str) {
        if let Some(name) = key.strip_prefix(CONFIG_PREFIX) {
            self.drop_pool(name);
        } else if key.is_empty() {
            self.cleanup().await;
        }
    }

    async fn cleanup(&self) {
        for (_, (p, _)) in self.pools.lock().drain() {
            p.close();
        }
    }
}

/// The registry's factory.
pub fn new_backend(
    cfg: &arca_sdk::BackendConfig,
) -> Result<Arc<dyn arca_sdk::Backend>, LogicalError> {
    Ok(Arc::new(factory(cfg.system.clone())))
}

pub fn factory(system: Arc<dyn arca_sdk::SystemView>) -> Framework<Database> {
    let mut paths = Vec::new();
    paths.extend(path_config::paths());
    paths.extend(path_roles::paths());
    paths.extend(path_creds::paths());
    paths.extend(path_static::paths());
    let db = Database {
        system,
        pools: Default::default(),
        rotations: Default::default(),
    };
    Framework::new("database", db, paths)
        .with_special_paths(SpecialPaths {
            root: vec![],
            unauthenticated: vec![],
            unauthenticated_writes: vec![],
            available_without_leader: vec![],
            forward_on_standby: [
                "creds/*",
                "reset/*",
                "rotate-root/*",
                "rotate-role/*",
                "static-roles/*",
            ]
            .map(String::from)
            .to_vec(),
        })
        .with_secret(arca_sdk::SecretType {
            name: SECRET_CREDS,
            renew: Some(|b: &Database, c| Box::pin(b.renew_creds(c))),
            revoke: |b: &Database, c| Box::pin(b.revoke_creds(c)),
        })
        .with_invalidate(|b: &Database, k| Box::pin(b.invalidate(k)))
        .with_cleanup(|b: &Database| Box::pin(b.cleanup()))
        .with_periodic(|b: &Database, s| Box::pin(b.periodic(s)))
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
