//! Keeping a node's in-memory state in step with replicated writes.
//!
//! Every node applies the same log. After a batch is applied, the storage
//! layer reports the physical keys it changed; core maps them back to
//! logical paths (barrier path encryption is deterministic) and drops what
//! it had cached:
//! - the keyring record → the barrier reloads its keyring (rotation);
//! - `core/mounts`, `core/auth` → the router is rebuilt (mount, unmount,
//!   tune, remount on another node);
//! - `core/audit` → the audit devices are reopened from the table;
//! - `core/quotas` → the rate limit quotas are reloaded;
//! - `sys/policy/<name>` → that policy and every compiled ACL;
//! - `sys/password_policy/<name>` → that parsed password policy;
//! - `sys/token/id/<hash>` → that token entry;
//! - anything under a mount's storage prefix → that backend's `invalidate`.
//!
//! A reset (snapshot installed, data restored) drops everything.

use std::sync::Arc;

use crate::core::Core;

impl Core {
    /// The replicated state changed under these physical keys.
    pub async fn storage_changed(&self, keys: &[String]) {
        let Ok(st) = self.unsealed() else { return };
        let mut reload_router = false;
        let mut reload_keyring = false;
        let router = st.router.read().clone();
        for k in keys {
            if k == arca_barrier::KEYRING_PATH {
                reload_keyring = true;
                continue;
            }
            let Some(p) = self.barrier.logical_path(k) else {
                continue;
            };
            if p == "core/mounts" || p == "core/auth" {
                reload_router = true;
            } else if p == crate::audit::AUDIT_TABLE {
                if let Err(e) = self.audit.load(st.root_view.as_ref()).await {
                    tracing::warn!(
                        "reloading the audit devices after a replicated change failed: {e}"
                    );
                }
            } else if p == crate::quotas::QUOTAS_TABLE {
                if let Err(e) = self.quotas.load(st.root_view.as_ref()).await {
                    tracing::warn!(
                        "reloading the rate limit quotas after a replicated change failed: {e}"
                    );
                }
            } else if let Some(name) = p.strip_prefix("sys/policy/") {
                st.policies.invalidate(name);
            } else if let Some(name) = p.strip_prefix("sys/password_policy/") {
                st.password_policies.invalidate(name);
            } else if let Some(hash) = p.strip_prefix("sys/token/id/") {
                st.tokens.invalidate(hash);
            } else if let Some((route, rel)) = router.routes().iter().find_map(|r| {
                let prefix = r.entry.storage_prefix(r.auth);
                p.strip_prefix(prefix.as_str())
                    .map(|rel| (r.clone(), rel.to_string()))
            }) {
                route.backend.invalidate(&rel).await;
            }
        }
        if reload_keyring {
            if let Err(e) = self.barrier.reload_keyring().await {
                tracing::warn!("reloading the keyring after a replicated change failed: {e}");
            }
        }
        if reload_router {
            self.reload_router().await;
        }
    }

    /// Anything may have changed (a snapshot was installed or restored).
    pub async fn storage_reset(&self) {
        let Ok(st) = self.unsealed() else { return };
        if let Err(e) = self.barrier.reload_keyring().await {
            tracing::warn!("reloading the keyring after a snapshot install failed: {e}");
        }
        st.policies.clear_cache();
        st.password_policies.clear_cache();
        st.tokens.clear_cache();
        if let Err(e) = self.quotas.load(st.root_view.as_ref()).await {
            tracing::warn!("reloading the rate limit quotas after a snapshot install failed: {e}");
        }
        self.reload_router().await;
        let router = st.router.read().clone();
        for r in router.routes() {
            r.backend.invalidate("").await;
        }
    }

    async fn reload_router(&self) {
        let Ok(st) = self.unsealed() else { return };
        let _g = st.mounts.lock().await;
        let res = async {
            let (m, a) = self.load_tables(st.root_view.as_ref()).await?;
            self.build_router(&m, &a)
        }
        .await;
        match res {
            Ok(r) => *st.router.write() = Arc::new(r),
            Err(e) => tracing::warn!("rebuilding the router after a replicated change failed: {e}"),
        }
    }
}
