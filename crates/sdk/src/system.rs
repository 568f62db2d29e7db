//! What a backend is given when it is built: its mount's identity and
//! options, and a [`SystemView`] onto the server — and the [`Registry`] of
//! factories the binary fills and core builds mounts from.
//!
//! Invariants:
//! - Core knows no engine: a mount of type `t` is built by the factory
//!   registered under `t`, or refused ("plugin not found in the catalog").
//! - A system view answers with live values: a `sys/mounts/:path/tune` is
//!   seen by the next request without rebuilding the backend.
//! - TTL limits follow Vault: a mount's tuned value, else the server's
//!   (`default_lease_ttl` / `max_lease_ttl`, 768h each unless configured).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::framework::Backend;
use crate::logical::LogicalError;
use crate::password::PasswordPolicy;

/// Vault's default for both the default and the maximum lease TTL: 768h.
pub const DEFAULT_LEASE_TTL: u64 = 768 * 3600;

/// The server as a backend sees it.
#[async_trait]
pub trait SystemView: Send + Sync {
    /// The mount's default lease TTL in seconds (tuned, else the server's).
    fn default_lease_ttl(&self) -> u64;
    /// The mount's maximum lease TTL in seconds (tuned, else the server's).
    fn max_lease_ttl(&self) -> u64;
    /// The current time, unix seconds. Engines take "now" from here, so
    /// that tests can set the clock ([`TestSystemView`]).
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
    /// True on a standby node: it serves reads from replicated state and
    /// its writes are forwarded to the active node.
    fn is_standby(&self) -> bool {
        false
    }
    /// The id of the cluster this node belongs to (set at `sys/init`; empty
    /// when unknown).
    fn cluster_id(&self) -> String {
        String::new()
    }
    /// A password for a credential the engine creates: from the named
    /// password policy (`sys/policies/password/:name`), or, with no name
    /// (or an empty one), from Vault's default
    /// ([`PasswordPolicy::vault_default`]). A policy that does not exist
    /// is a 400 naming it. This default knows no named policy; core's
    /// view reads them from replicated storage.
    async fn generate_password(&self, policy: Option<&str>) -> Result<String, LogicalError> {
        match policy.filter(|p| !p.is_empty()) {
            None => PasswordPolicy::vault_default().generate(),
            Some(name) => Err(unknown_password_policy(name)),
        }
    }
}

/// The error for a password policy that does not exist.
pub fn unknown_password_policy(name: &str) -> LogicalError {
    LogicalError::invalid(format!("password policy {name:?} does not exist"))
}

/// A system view for unit tests: fixed TTL limits, a clock that only
/// moves when the test says so, and the password policies the test sets.
#[derive(Debug)]
pub struct TestSystemView {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    now: std::sync::atomic::AtomicI64,
    password_policies: Mutex<BTreeMap<String, PasswordPolicy>>,
}

impl TestSystemView {
    /// Limits as given, the clock at `now` (unix seconds).
    pub fn new(default_lease_ttl: u64, max_lease_ttl: u64, now: i64) -> TestSystemView {
        TestSystemView {
            default_lease_ttl,
            max_lease_ttl,
            now: std::sync::atomic::AtomicI64::new(now),
            password_policies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes `name` a password policy [`SystemView::generate_password`]
    /// uses (`None` removes it).
    pub fn set_password_policy(&self, name: &str, policy: Option<PasswordPolicy>) {
        let mut m = self
            .password_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match policy {
            Some(p) => m.insert(name.to_string(), p),
            None => m.remove(name),
        };
    }

    pub fn set_now(&self, t: i64) {
        self.now.store(t, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.now
            .fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl SystemView for TestSystemView {
    fn default_lease_ttl(&self) -> u64 {
        self.default_lease_ttl
    }
    fn max_lease_ttl(&self) -> u64 {
        self.max_lease_ttl
    }
    fn now(&self) -> i64 {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn generate_password(&self, policy: Option<&str>) -> Result<String, LogicalError> {
        let Some(name) = policy.filter(|p| !p.is_empty()) else {
            return PasswordPolicy::vault_default().generate();
        };
        let p = self
            .password_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| unknown_password_policy(name))?;
        p.generate()
    }
}

/// Fixed values, for unit tests and tools.
#[derive(Debug, Clone, Copy)]
pub struct StaticSystemView {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
}

impl Default for StaticSystemView {
    fn default() -> Self {
        StaticSystemView {
            default_lease_ttl: DEFAULT_LEASE_TTL,
            max_lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

impl SystemView for StaticSystemView {
    fn default_lease_ttl(&self) -> u64 {
        self.default_lease_ttl
    }
    fn max_lease_ttl(&self) -> u64 {
        self.max_lease_ttl
    }
}

/// Everything a factory is given to build one mount's backend.
#[derive(Clone)]
pub struct BackendConfig {
    /// The engine type (`kv`, `pki`, ...).
    pub kind: String,
    /// Where it is mounted, with a trailing slash (`pki/`, `auth/userpass/`).
    pub mount_path: String,
    pub mount_uuid: String,
    pub accessor: String,
    /// The mount's options (`version` for KV).
    pub options: BTreeMap<String, String>,
    pub system: Arc<dyn SystemView>,
}

impl BackendConfig {
    /// A configuration for unit tests: mounted at `kind/`, static TTLs.
    pub fn for_tests(kind: &str) -> BackendConfig {
        BackendConfig {
            kind: kind.to_string(),
            mount_path: format!("{kind}/"),
            mount_uuid: String::new(),
            accessor: String::new(),
            options: BTreeMap::new(),
            system: Arc::new(StaticSystemView::default()),
        }
    }
}

/// Builds a backend for a mount.
pub type Factory =
    Arc<dyn Fn(&BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> + Send + Sync>;

/// The engines a server can mount, by type: secrets engines and auth
/// methods apart, as in Vault's plugin catalog.
#[derive(Clone, Default)]
pub struct Registry {
    secrets: BTreeMap<String, Factory>,
    auth: BTreeMap<String, Factory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (secrets, auth) = self.kinds();
        f.debug_struct("Registry")
            .field("secrets", &secrets)
            .field("auth", &auth)
            .finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a secrets engine type.
    pub fn secrets(
        mut self,
        kind: &str,
        f: impl Fn(&BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> + Send + Sync + 'static,
    ) -> Registry {
        self.secrets.insert(kind.to_string(), Arc::new(f));
        self
    }

    /// Registers an auth method type.
    pub fn auth(
        mut self,
        kind: &str,
        f: impl Fn(&BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> + Send + Sync + 'static,
    ) -> Registry {
        self.auth.insert(kind.to_string(), Arc::new(f));
        self
    }

    /// The factory for a mount type, if registered.
    pub fn factory(&self, auth: bool, kind: &str) -> Option<&Factory> {
        if auth {
            self.auth.get(kind)
        } else {
            self.secrets.get(kind)
        }
    }

    /// Registered types (secrets engines, then auth methods).
    pub fn kinds(&self) -> (Vec<&str>, Vec<&str>) {
        (
            self.secrets.keys().map(String::as_str).collect(),
            self.auth.keys().map(String::as_str).collect(),
        )
    }
}

/// Clamps a requested TTL as Vault does: `requested` (0 = the `default`),
/// capped at `max` (0 = no limit) with a warning that names the limit
/// (`limit`, e.g. "the role's max_ttl").
pub fn clamp_ttl(requested: u64, default: u64, max: u64, limit: &str) -> (u64, Option<String>) {
    let ttl = if requested > 0 { requested } else { default };
    if max > 0 && ttl > max {
        (
            max,
            Some(format!(
                "TTL of {ttl}s is longer than {limit} of {max}s, so the max_ttl of {max}s is used"
            )),
        )
    } else {
        (ttl, None)
    }
}

/// How a warning names the mount's maximum, with what to do about it.
pub const MOUNT_MAX_TTL: &str =
    "the mount's max_lease_ttl (raise it with `secrets tune -max-lease-ttl=...`)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_clamped_to_the_max_with_a_warning() {
        assert_eq!(clamp_ttl(0, 60, 120, "x"), (60, None));
        assert_eq!(clamp_ttl(90, 60, 120, "x"), (90, None));
        let (ttl, w) = clamp_ttl(500, 60, 120, "the role's max_ttl");
        assert_eq!(ttl, 120);
        let w = w.unwrap();
        assert!(
            w.contains("500s") && w.contains("the role's max_ttl of 120s"),
            "{w}"
        );
        assert_eq!(clamp_ttl(500, 60, 0, "x"), (500, None));
    }

    #[tokio::test]
    async fn system_views_generate_default_and_named_passwords() {
        let s = StaticSystemView::default();
        let pw = s.generate_password(None).await.unwrap();
        assert!(PasswordPolicy::vault_default().passes(&pw), "{pw}");
        assert!(s.generate_password(Some("")).await.is_ok());
        let e = s.generate_password(Some("db")).await.unwrap_err();
        assert!(e.to_string().contains("\"db\" does not exist"), "{e}");

        let t = TestSystemView::new(60, 60, 0);
        assert!(t.generate_password(Some("db")).await.is_err());
        let digits = PasswordPolicy {
            length: 8,
            rules: vec![crate::password::CharsetRule::new("0123456789", 8)],
        };
        t.set_password_policy("db", Some(digits));
        let pw = t.generate_password(Some("db")).await.unwrap();
        assert!(
            pw.len() == 8 && pw.chars().all(|c| c.is_ascii_digit()),
            "{pw}"
        );
        t.set_password_policy("db", None);
        assert!(t.generate_password(Some("db")).await.is_err());
    }

    #[test]
    fn the_registry_keeps_secrets_and_auth_apart() {
        let r = Registry::new().secrets("x", |_| Err(LogicalError::invalid("x")));
        assert!(r.factory(false, "x").is_some());
        assert!(r.factory(true, "x").is_none());
    }
}
