//! The [`Core`] object: one per server process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::{Map, Value};

use arca_barrier::{Barrier, View};
use arca_physical::PhysicalBackend;
use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{Backend, LogicalError, Operation, Request, Response, Storage};
use arca_seal::{Seal, UnsealProgress};

use crate::mounts::{MountEntry, MountTable};
use crate::policies::PolicyStore;
use crate::router::{Route, Router};
use crate::tokens::{TokenEntry, TokenStore};

/// Server-wide settings core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Seconds (Vault's default: 768h).
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    /// Shown in `sys/seal-status` (`rocksdb`, `inmem`, `raft`).
    pub storage_type: String,
    pub api_addr: String,
    pub cluster_name: String,
    /// In a cluster, serve reads from local state without waiting for the
    /// read index unless a request asks otherwise (OpenBao-like behaviour).
    pub stale_reads: bool,
    /// The engines this server can mount (the binary registers them; core
    /// adds only its own: system, token, cubbyhole).
    pub engines: arca_sdk::Registry,
    /// The server configuration's `user_lockout "<type>"` stanzas (`all`,
    /// `userpass`, `ldap`, `approle`): defaults for mounts of that type,
    /// below a mount's own `user_lockout_config`.
    pub user_lockout: HashMap<String, crate::lockout::UserLockoutConfig>,
    /// What audit devices may do: directories a file may not be written
    /// under (the storage directory), `allow_audit_log_prefixing`.
    pub audit_policy: arca_audit::Policy,
    /// The configuration's `audit "<type>" "<path>"` blocks (no salt):
    /// enabled at every unseal, never disabled through the API.
    pub audit_devices: Vec<arca_audit::DeviceConfig>,
    /// The server configuration with every secret left out, as
    /// `sys/config/state/sanitized` shows it (built by the binary, which
    /// parsed the file; `Null` when there is none, as in unit tests).
    pub sanitized_config: Value,
    /// The configuration's auto seal (`seal "transit"`): `None` for
    /// Shamir key shares.
    pub auto_seal: Option<Arc<dyn arca_seal::KeyWrapper>>,
    /// The configuration's disabled auto seal (`disabled = "true"`): the
    /// seal a migration moves the root key away from.
    pub migrate_from: Option<Arc<dyn arca_seal::KeyWrapper>>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_lease_ttl: 768 * 3600,
            max_lease_ttl: 768 * 3600,
            storage_type: "inmem".into(),
            api_addr: String::new(),
            cluster_name: String::new(),
            stale_reads: false,
            engines: arca_sdk::Registry::new(),
            user_lockout: HashMap::new(),
            audit_policy: arca_audit::Policy::default(),
            audit_devices: Vec::new(),
            sanitized_config: Value::Null,
            auto_seal: None,
            migrate_from: None,
        }
    }
}

/// A mount's view of the server: its TTL limits, read live from the mount
/// table so that a tune applies to the next request.
struct MountSystemView {
    core: std::sync::Weak<Core>,
    uuid: String,
}

impl MountSystemView {
    /// `of` the live mount entry, or `server` of the server's settings when
    /// the mount is gone (or the node sealed).
    fn ttl(&self, of: fn(&Core, &MountEntry) -> u64, server: fn(&CoreConfig) -> u64) -> u64 {
        let Some(core) = self.core.upgrade() else {
            return arca_sdk::system::DEFAULT_LEASE_TTL;
        };
        match core.mount_entry(&self.uuid) {
            Some(e) => of(&core, &e),
            None => server(&core.config),
        }
    }
}

#[async_trait::async_trait]
impl arca_sdk::SystemView for MountSystemView {
    fn default_lease_ttl(&self) -> u64 {
        self.ttl(Core::mount_default_ttl, |c| c.default_lease_ttl)
    }

    fn max_lease_ttl(&self) -> u64 {
        self.ttl(Core::mount_max_ttl, |c| c.max_lease_ttl)
    }

    fn is_standby(&self) -> bool {
        self.core
            .upgrade()
            .and_then(|c| c.cluster().map(|cl| !cl.state().is_active))
            .unwrap_or(false)
    }

    fn cluster_id(&self) -> String {
        self.core
            .upgrade()
            .map(|c| c.cluster_id.read().clone())
            .unwrap_or_default()
    }

    /// From `sys/policies/password/<name>` (read where the request runs,
    /// cached per node), else Vault's default.
    async fn generate_password(&self, policy: Option<&str>) -> Result<String, LogicalError> {
        let Some(name) = policy.filter(|p| !p.is_empty()) else {
            return arca_sdk::PasswordPolicy::vault_default().generate();
        };
        let core = self.core.upgrade().ok_or(LogicalError::Sealed)?;
        let st = core.unsealed()?;
        let p = st
            .password_policies
            .get(name)
            .await?
            .ok_or_else(|| arca_sdk::system::unknown_password_policy(name))?;
        p.generate()
    }
}

/// What core answers; the HTTP layer turns it into Vault's envelope.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub response: Option<Response>,
    pub mount_type: String,
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
}

impl Reply {
    pub(crate) fn of(r: Response) -> Self {
        Reply {
            response: Some(r),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    /// What bao ≥ 2.6 reads (`build_date` is its older name).
    pub commit_date: String,
    pub migration: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub recovery_seal: bool,
    /// `shamir` under an auto seal (its recovery key is split in shares).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_seal_type: Option<String>,
    pub storage_type: String,
    /// Why an auto-unseal is not happening (OpenBao's field, unused there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub struct InitResult {
    pub keys: Vec<zeroize::Zeroizing<Vec<u8>>>,
    /// The recovery key's shares (auto seals).
    pub recovery_keys: Vec<zeroize::Zeroizing<Vec<u8>>>,
    pub root_token: String,
}

/// Everything that exists only while unsealed.
pub(crate) struct Unsealed {
    pub router: RwLock<Arc<Router>>,
    pub mounts: tokio::sync::Mutex<()>,
    pub tokens: TokenStore,
    pub leases: crate::expiration::Leases,
    pub policies: PolicyStore,
    pub password_policies: crate::password_policies::PasswordPolicyStore,
    pub identity: Arc<crate::identity::IdentityStore>,
    pub root_view: Arc<dyn Storage>,
    /// When the usage gauges (lease and token counts) were last counted.
    pub usage_counted: Mutex<Option<std::time::Instant>>,
}

pub struct Core {
    #[allow(dead_code)] // kept for HA: raft status and snapshots read it
    pub(crate) physical: Arc<dyn PhysicalBackend>,
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) seal: Seal,
    pub(crate) config: CoreConfig,
    pub(crate) sealed: AtomicBool,
    pub(crate) unseal_progress: Mutex<Option<UnsealProgress>>,
    pub(crate) state: RwLock<Option<Arc<Unsealed>>>,
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
    pub(crate) remounts: Mutex<HashMap<String, Value>>,
    pub(crate) cluster_id: RwLock<String>,
    pub(crate) self_weak: Weak<Core>,
    /// Replicated storage, when the node runs in a cluster.
    pub(crate) cluster: std::sync::OnceLock<Arc<dyn crate::cluster::Cluster>>,
    /// Leader side of joins: nonce and issue time per joining node.
    pub(crate) join_nonces: Mutex<HashMap<String, ([u8; 32], std::time::Instant)>>,
    /// Joining side: the challenge waiting for the unseal key.
    pub(crate) pending_join: Mutex<Option<crate::join::PendingJoin>>,
    /// `retry_join` targets from the configuration (joining side).
    pub(crate) retry_join: Mutex<Vec<crate::join::JoinRequest>>,
    /// A `sys/storage/raft/join` retry task is running.
    pub(crate) join_retrying: AtomicBool,
    /// When this node's cluster-port certificate is due for renewal
    /// (`None`: none issued by core, or sealed).
    pub(crate) cluster_cert_renew_at: Mutex<Option<std::time::SystemTime>>,
    /// Tells the periodic ticker to stop (`stop_periodic`).
    pub(crate) periodic_stop: tokio::sync::watch::Sender<bool>,
    pub(crate) periodic_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// When this node last became the active node (`sys/leader`).
    pub(crate) active_since: RwLock<Option<chrono::DateTime<chrono::Utc>>>,
    /// Wakes the expiration manager before its next tick (leases were
    /// scheduled for revocation now).
    pub(crate) expiration_wake: tokio::sync::Notify,
    /// Failed-login counts of user lockout (see `lockout`).
    pub(crate) lockouts: crate::lockout::Lockouts,
    /// The enabled audit devices (`crate::audit`).
    pub(crate) audit: crate::audit::Broker,
    /// Rate limit quotas (`crate::quotas`).
    pub(crate) quotas: crate::quotas::QuotaManager,
    /// The requests being served (`sys/in-flight-req`), filled by the HTTP
    /// layer (`crate::in_flight`).
    pub(crate) in_flight: Arc<crate::in_flight::InFlightRequests>,
    /// The unseal key rotation in progress (`crate::rotate_keys`).
    pub(crate) rotation: tokio::sync::Mutex<Option<crate::rotate_keys::Rotation>>,
    /// The recovery key rotation in progress (auto seals).
    pub(crate) recovery_rotation: tokio::sync::Mutex<Option<crate::rotate_keys::Rotation>>,
    /// The root token generation in progress (`crate::generate_root`).
    pub(crate) root_generation: tokio::sync::Mutex<Option<crate::generate_root::RootGeneration>>,
    /// An operator sealed the node (`sys/seal`): auto-unseal stops, as in
    /// Vault, until the process restarts.
    pub(crate) sealed_by_operator: AtomicBool,
    /// The last auto-unseal failure, shown in `sys/seal-status`.
    pub(crate) auto_unseal_error: Mutex<Option<String>>,
    /// An unseal key learnt while standby, recorded once active
    /// (`crate::root_key`).
    pub(crate) pending_unseal_key: Mutex<Option<zeroize::Zeroizing<Vec<u8>>>>,
    /// Serializes changes of the root key and of its protection.
    pub(crate) root_change: tokio::sync::Mutex<()>,
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Core {
    pub fn new(physical: Arc<dyn PhysicalBackend>, config: CoreConfig) -> Arc<Core> {
        let barrier = Barrier::new(physical.clone());
        let seal = Seal::new(physical.clone());
        let audit =
            crate::audit::Broker::new(config.audit_policy.clone(), config.audit_devices.clone());
        Arc::new_cyclic(|w| Core {
            physical,
            barrier,
            seal,
            config,
            sealed: AtomicBool::new(true),
            unseal_progress: Mutex::new(None),
            state: RwLock::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
            remounts: Mutex::new(HashMap::new()),
            cluster_id: RwLock::new(String::new()),
            self_weak: w.clone(),
            cluster: std::sync::OnceLock::new(),
            join_nonces: Mutex::new(HashMap::new()),
            pending_join: Mutex::new(None),
            retry_join: Mutex::new(Vec::new()),
            join_retrying: AtomicBool::new(false),
            cluster_cert_renew_at: Mutex::new(None),
            periodic_stop: tokio::sync::watch::channel(false).0,
            periodic_task: Mutex::new(None),
            active_since: RwLock::new(None),
            expiration_wake: tokio::sync::Notify::new(),
            lockouts: Default::default(),
            audit,
            quotas: crate::quotas::QuotaManager::new(),
            in_flight: Default::default(),
            rotation: tokio::sync::Mutex::new(None),
            recovery_rotation: tokio::sync::Mutex::new(None),
            root_generation: tokio::sync::Mutex::new(None),
            sealed_by_operator: AtomicBool::new(false),
            auto_unseal_error: Mutex::new(None),
            pending_unseal_key: Mutex::new(None),
            root_change: tokio::sync::Mutex::new(()),
        })
    }

    /// The registry of requests in flight; the HTTP layer enters each
    /// request it serves.
    pub fn in_flight(&self) -> &Arc<crate::in_flight::InFlightRequests> {
        &self.in_flight
    }

    /// Makes this core a cluster member (set once, before serving).
    pub fn set_cluster(&self, c: Arc<dyn crate::cluster::Cluster>) {
        let _ = self.cluster.set(c);
    }

    pub fn cluster(&self) -> Option<&dyn crate::cluster::Cluster> {
        self.cluster.get().map(|c| c.as_ref())
    }

    /// True while a join waits for the unseal key.
    pub fn has_pending_join(&self) -> bool {
        self.pending_join.lock().is_some()
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub(crate) fn unsealed(&self) -> Result<Arc<Unsealed>, LogicalError> {
        self.state.read().clone().ok_or(LogicalError::Sealed)
    }

    pub(crate) fn router(&self) -> Result<Arc<Router>, LogicalError> {
        Ok(self.unsealed()?.router.read().clone())
    }

    /// Handles one API request; `req.path` is the full path below `/v1/`.
    pub async fn handle(&self, mut req: Request) -> Result<Reply, LogicalError> {
        let path = req.path.trim_start_matches('/').to_string();
        if let Some(e) = req.body_error.take() {
            // Only a path that declares a raw body takes one that is not JSON.
            let raw = self.unsealed().ok().is_some_and(|st| {
                let router = st.router.read().clone();
                router
                    .resolve(&path)
                    .is_some_and(|(route, rel)| route.backend.takes_raw_body(rel))
            });
            if !raw {
                return Err(LogicalError::invalid(e));
            }
        }
        if let Some(reply) = self.handle_seal_safe(&path, &req).await? {
            return Ok(reply);
        }
        if self.is_sealed() {
            return Err(LogicalError::Sealed);
        }
        let st = self.unsealed()?;
        if let Some(c) = self.cluster() {
            self.linearize(c, &st, &path, &req).await?;
        }
        let router = st.router.read().clone();
        let (route, rel) = router.resolve(&path).ok_or_else(|| {
            LogicalError::UnsupportedPath(format!(
                "no handler for route {path:?}. route entry not found."
            ))
        })?;
        let rel = rel.to_string();
        req.path = rel.clone();
        req.mount_point = route.full_path.clone();
        req.mount_type = route.entry.kind.clone();
        req.mount_accessor = route.entry.accessor.clone();
        // Latency and count per mount and operation (`sys/metrics`), to the
        // end of this request whatever way it ends.
        let _timer = arca_metrics::timer(
            "vault.core.handle_request",
            &[
                ("mount", route.full_path.as_str()),
                ("operation", req.operation.capability()),
            ],
        );
        if !route.backend.takes_raw_body(&rel) {
            req.raw_body = None;
        }
        if req.operation == Operation::Help {
            // `?help=1` / `path-help`: any valid token may read a path's
            // help (Vault checks no ACL for it); no handler runs, so no
            // data is ever returned.
            let t = self.authenticate(&st, req.client_token.as_deref()).await?;
            if !t.usable_from(req.connection.as_ref().map(|c| c.remote_addr)) {
                return Err(LogicalError::PermissionDenied);
            }
            let text = route.backend.help(&rel, &path).unwrap_or_default();
            return Ok(crate::seal_ops::json_reply(
                200,
                serde_json::json!({ "help": text, "openapi": null, "see_also": null }),
            ));
        }
        let special = &route.special;
        // Reads of public paths, and only the writes a backend declares
        // (OCSP POST, bootstrap challenge), go without a token; anything
        // else on a public path (an update of `issuer/x/pem`) is checked
        // like any other request.
        let unauth = special.is_unauthenticated(req.operation, &rel);

        let token = if unauth {
            match req.client_token.as_deref() {
                Some(t) => st.tokens.lookup(t, now()).await?,
                None => None,
            }
        } else {
            let t = self.authenticate(&st, req.client_token.as_deref()).await?;
            // A token bound to CIDR blocks is refused from anywhere else.
            if !t.usable_from(req.connection.as_ref().map(|c| c.remote_addr)) {
                return Err(LogicalError::PermissionDenied);
            }
            Some(t)
        };
        if let Some(t) = &token {
            self.in_flight.set_client_id(&req.id, &t.entity_id);
            req.client_token_accessor = Some(t.accessor.clone());
            req.display_name = t.display_name.clone();
        }
        // What the audit entries say of the caller (before engines lose the
        // token below).
        // Built only when a device is enabled: the request path pays
        // nothing for audit otherwise.
        let audited = !self.audit.is_empty();
        let audit_auth = audited
            .then(|| crate::audit::auth_value(token.as_deref(), req.client_token.as_deref()));
        let audit_token = if audited {
            req.client_token.clone()
        } else {
            None
        };

        // Engines never see the caller's token (Vault strips it for
        // plugins): only core's own `sys/` and `auth/token/` need it.
        if !matches!(route.entry.kind.as_str(), "system" | "token") {
            req.client_token = None;
        }
        if route.entry.kind == "cubbyhole" && token.as_ref().is_some_and(|t| t.batch) {
            return Err(LogicalError::invalid(
                "batch tokens have no cubbyhole: use a service token",
            ));
        }
        let storage = self.storage_for(&route, token.as_deref());
        if req.operation == Operation::Update {
            if let Some(false) = route.backend.existence(&req, storage.as_ref()).await? {
                req.operation = Operation::Create;
            }
        }

        if let (Some(t), false) = (&token, unauth) {
            let acl = self.token_acl(&st, t).await?;
            // Parameter constraints apply to the request's data whatever
            // the operation: a read's query parameters are its data.
            // A policy's min/max_wrapping_ttl see the wrap TTL asked for.
            let d = match req.operation.capability().parse::<arca_policy::Operation>() {
                Ok(operation) => acl.authorize(&arca_policy::AclRequest {
                    path: &path,
                    operation,
                    data: Some(&req.data),
                    wrap_ttl: (req.wrap_ttl > 0)
                        .then(|| std::time::Duration::from_secs(req.wrap_ttl)),
                }),
                Err(_) => arca_policy::AclDecision::default(),
            };
            if !d.allowed {
                self.audit_denied(audit_auth, &req, &path, audit_token.as_deref());
                return Err(LogicalError::PermissionDenied);
            }
            if special.root.matches(&rel) && !d.sudo {
                self.audit_denied(audit_auth, &req, &path, audit_token.as_deref());
                return Err(LogicalError::PermissionDenied);
            }
        }
        // Fail closed: recorded before anything runs, or not run at all.
        // The same entry becomes the response entry below (no copy).
        let audit_entry = match audit_auth {
            Some(auth) => {
                let request = crate::audit::request_value(&req, &path, audit_token.as_deref());
                let e = self
                    .audit
                    .prepare(crate::audit::entry("request", auth, request));
                self.audit.log_request(&e)?;
                Some(e)
            }
            None => None,
        };
        let mut last_use = None;
        if let (Some(t), false) = (&token, unauth) {
            match st.tokens.use_token(t).await? {
                None => return Err(LogicalError::PermissionDenied),
                Some(true) => last_use = Some(t.hash.clone()),
                Some(false) => {}
            }
        }

        // User lockout: a login names its alias; a locked one is refused
        // before any credential is checked, a failure is counted.
        let lockout = if route.auth && unauth && req.operation != Operation::Read {
            route.backend.login_alias(&req).and_then(|alias| {
                crate::lockout::policy(&route.entry, &self.config.user_lockout).map(|p| (p, alias))
            })
        } else {
            None
        };
        let login_time = now();
        if let Some((p, alias)) = &lockout {
            self.lockout_check(&st, *p, &route.entry.accessor, alias, login_time)
                .await?;
        }

        let op = req.operation;
        let result = route.backend.handle(&req, storage.as_ref()).await;
        if let Some((p, alias)) = &lockout {
            match &result {
                Err(LogicalError::InvalidCredentials(_)) => {
                    self.lockout_failed(&st, *p, &route.entry.accessor, alias, login_time)
                        .await?
                }
                Ok(Some(r)) if r.auth.is_some() && self.require_active().is_ok() => {
                    self.lockout_reset(&st, &route.entry.accessor, alias, false)
                        .await?
                }
                _ => {}
            }
        }
        // A secret leased by a token's last use belongs to that token: the
        // lease is registered before the token (and with it the lease) is
        // revoked.
        let out = async {
            let resp = result?;
            let mut reply = Reply {
                mount_type: route.entry.kind.clone(),
                ..Default::default()
            };
            match resp {
                None if op == Operation::Read => return Err(LogicalError::NotFound),
                None => {}
                Some(mut r) => {
                    if let Some(mut secret) = r.secret.take() {
                        if secret.register_lease {
                            let renewable = secret.renewable;
                            // A batch token owns nothing: its leases go to
                            // its parent (none for an orphan) and end no
                            // later than it does.
                            let owner = match token.as_deref() {
                                Some(t) if t.batch => {
                                    let left =
                                        t.ttl_remaining(chrono::Utc::now().timestamp_millis());
                                    secret.max_ttl = match secret.max_ttl {
                                        0 => left,
                                        m => m.min(left),
                                    };
                                    (!t.parent.is_empty()).then_some(t.parent.as_str())
                                }
                                Some(t) => Some(t.hash.as_str()),
                                None => None,
                            };
                            let (id, ttl) = self
                                .register_lease(&st, &route, &path, owner, secret, &mut r.warnings)
                                .await?;
                            reply.lease_id = id;
                            reply.lease_duration = ttl;
                            reply.renewable = renewable;
                        } else if route.entry.kind == "system" && !secret.lease_id.is_empty() {
                            // `sys/leases/renew` answers with the lease.
                            reply.lease_id = secret.lease_id;
                            reply.lease_duration = secret.ttl;
                            reply.renewable = secret.renewable;
                        } else {
                            reply.lease_duration = if secret.ttl > 0 {
                                secret.ttl
                            } else {
                                self.mount_default_ttl(&route.entry)
                            };
                            reply.renewable = false;
                        }
                    }
                    if route.auth && route.entry.kind != "token" {
                        if let Some(auth) = r.auth.take() {
                            r.auth = Some(
                                self.login(&st, &route, &path, auth, &mut r.warnings)
                                    .await?,
                            );
                        }
                    }
                    reply.response = Some(r);
                }
            }
            Ok::<Reply, LogicalError>(reply)
        }
        .await;
        if let Some(mut e) = audit_entry {
            crate::audit::into_response(&mut e.value);
            match &out {
                Ok(reply) => {
                    e.value["response"] = crate::audit::response_value(reply, &req.mount_accessor)
                }
                Err(err) => e.value["error"] = Value::from(err.to_string()),
            }
            e.list = op == Operation::List;
            if req.wrap_ttl > 0 && out.as_ref().is_ok_and(|r| r.response.is_some()) {
                // Written by the HTTP layer once it has wrapped the answer
                // (`Core::audit_wrapped`), with the `wrap_info`.
                self.audit.hold_response(&req.id, e);
            } else {
                self.audit.log_response(&e);
            }
        }
        if let Some(h) = last_use {
            self.revoke_token_tree(&h).await?;
        }
        out
    }

    /// Reopens the audit files (SIGHUP, after a log rotation moved them).
    pub fn reopen_audit_files(&self) {
        self.audit.reopen_all();
    }

    /// A request refused by the ACL, recorded with its error.
    /// Counts a request against the rate limit quotas (`sys/quotas`) before
    /// it is handled; `None` when no quota applies (sealed, no quota, an
    /// exempt path, a request forwarded by a standby that counted it, or
    /// no client address). A refused request is audited when
    /// `enable_rate_limit_audit_logging` is set.
    pub fn rate_limit(&self, req: &Request) -> Option<crate::quotas::QuotaDecision> {
        if req.forwarded || self.quotas.is_empty() {
            return None;
        }
        let ip = req.connection.as_ref()?.remote_addr;
        let st = self.unsealed().ok()?;
        let path = req.path.trim_start_matches('/');
        let router = st.router.read().clone();
        let mount = router.resolve(path).map(|(r, _)| r.full_path.clone());
        let d = self
            .quotas
            .check_at(path, mount.as_deref(), ip, std::time::Instant::now())?;
        if !d.allowed && d.audit && !self.audit.is_empty() {
            let auth = crate::audit::auth_value(None, req.client_token.as_deref());
            let request = crate::audit::request_value(req, path, req.client_token.as_deref());
            let mut e = crate::audit::entry("response", auth, request);
            e["error"] = Value::from(format!(
                "request path {path:?}: rate limit quota exceeded (quota {:?})",
                d.quota
            ));
            self.audit.log_response(&self.audit.prepare(e));
        }
        Some(d)
    }

    fn audit_denied(&self, auth: Option<Value>, req: &Request, path: &str, token: Option<&str>) {
        let Some(auth) = auth else {
            return;
        };
        let request = crate::audit::request_value(req, path, token);
        let mut e = crate::audit::entry("response", auth, request);
        e["error"] = Value::from(LogicalError::PermissionDenied.to_string());
        self.audit.log_response(&self.audit.prepare(e));
    }

    /// In a cluster, makes the request see every write committed before it
    /// arrived: waits for the read index unless the client (header
    /// `X-Arca-Consistency: stale`) or the operator (`stale_reads`) chose
    /// local reads, or the path is declared available without a leader.
    /// An operation declared `forward_on_standby` answers read-only on a
    /// standby (the HTTP layer forwards it) before anything runs.
    async fn linearize(
        &self,
        c: &dyn crate::cluster::Cluster,
        st: &Unsealed,
        path: &str,
        req: &Request,
    ) -> Result<(), LogicalError> {
        // Wrapping an answer writes a token: only the active node can.
        if req.wrap_ttl > 0 && !c.state().is_active {
            return Err(LogicalError::ReadOnly);
        }
        let stale = match req
            .headers
            .get("x-arca-consistency")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Some("stale") => true,
            Some("linearizable") => false,
            Some(other) => {
                return Err(LogicalError::invalid(format!(
                    "X-Arca-Consistency must be \"linearizable\" or \"stale\", not {other:?}"
                )))
            }
            None => self.config.stale_reads,
        };
        let router = st.router.read().clone();
        let resolved = router.resolve(path);
        if let Some((route, rel)) = &resolved {
            let props = route
                .backend
                .operation_props(rel, req.operation)
                .unwrap_or_default();
            // Side effects outside storage run on the active node only,
            // whatever consistency the client asked for.
            if (props.forward_on_standby || route.special.forward_on_standby.matches(rel))
                && !c.state().is_active
            {
                return Err(LogicalError::ReadOnly);
            }
        }
        if stale {
            return Ok(());
        }
        if let Some((route, rel)) = resolved {
            let special = &route.special;
            let props = route
                .backend
                .operation_props(rel, req.operation)
                .unwrap_or_default();
            if props.available_without_leader || special.available_without_leader.matches(rel) {
                return Ok(());
            }
            // A write to an engine on a standby would only run up to its
            // first storage write and then be forwarded: forward it at once.
            // (`sys` stays local: sealing a standby seals that node.)
            let write = !matches!(req.operation, Operation::Read | Operation::List);
            if write && route.entry.kind != "system" && !c.state().is_active {
                return Err(LogicalError::ReadOnly);
            }
        }
        let write = !matches!(req.operation, Operation::Read | Operation::List);
        c.read_barrier(std::time::Duration::from_secs(5))
            .await
            .map_err(|e| LogicalError::Status {
                status: 503,
                message: if write {
                    format!("no active node can take this request right now ({e}); retry shortly")
                } else {
                    format!(
                        "cannot serve a consistent answer right now ({e}); retry, or send X-Arca-Consistency: stale to read this node's possibly older data"
                    )
                },
            })
    }

    pub(crate) fn mount_default_ttl(&self, e: &MountEntry) -> u64 {
        if e.config.default_lease_ttl > 0 {
            e.config.default_lease_ttl
        } else {
            self.config.default_lease_ttl
        }
    }

    pub(crate) fn mount_max_ttl(&self, e: &MountEntry) -> u64 {
        if e.config.max_lease_ttl > 0 {
            e.config.max_lease_ttl
        } else {
            self.config.max_lease_ttl
        }
    }

    /// The ACL of a token: its own policies and, when it has an entity,
    /// the entity's and its groups' (computed now, so a changed group
    /// changes what the token may do). The tokens of a disabled or deleted
    /// entity are refused.
    pub(crate) async fn token_acl(
        &self,
        st: &Unsealed,
        t: &TokenEntry,
    ) -> Result<Arc<arca_policy::Acl>, LogicalError> {
        if t.entity_id.is_empty() {
            return st.policies.acl(&t.policies).await;
        }
        let extra = st.identity.token_policies(&t.entity_id).await?;
        if extra.is_empty() {
            return st.policies.acl(&t.policies).await;
        }
        let mut all = t.policies.clone();
        all.extend(extra);
        all.sort();
        all.dedup();
        st.policies.acl(&all).await
    }

    /// Resolves a client token or answers 403.
    pub(crate) async fn authenticate(
        &self,
        st: &Unsealed,
        token: Option<&str>,
    ) -> Result<Arc<TokenEntry>, LogicalError> {
        let t = token
            .filter(|t| !t.is_empty())
            .ok_or(LogicalError::PermissionDenied)?;
        st.tokens
            .lookup(t, now())
            .await?
            .ok_or(LogicalError::PermissionDenied)
    }

    pub(crate) fn storage_for(
        &self,
        route: &Route,
        token: Option<&TokenEntry>,
    ) -> Arc<dyn Storage> {
        if route.entry.kind == "cubbyhole" {
            // Each token sees only its own cubbyhole; without a token, an empty one.
            let h = token.map(|t| t.hash.clone()).unwrap_or_else(|| "-".into());
            return Arc::new(View::new(
                self.barrier.clone(),
                format!("{}{}/", route.entry.storage_prefix(false), h),
            ));
        }
        route.storage.clone()
    }

    // ----- mount table -----

    pub(crate) fn make_backend(
        &self,
        e: &MountEntry,
        auth: bool,
    ) -> Result<Arc<dyn Backend>, LogicalError> {
        let weak = self.self_weak.clone();
        match (auth, e.kind.as_str()) {
            (false, "cubbyhole") => return Ok(Arc::new(crate::cubbyhole::backend())),
            (false, "system") => return Ok(Arc::new(crate::sys::backend(weak))),
            (false, "identity") => return Ok(Arc::new(crate::identity::backend(weak))),
            (true, "token") => return Ok(Arc::new(crate::token_paths::backend(weak))),
            _ => {}
        }
        let factory = self.config.engines.factory(auth, &e.kind).ok_or_else(|| {
            LogicalError::invalid(format!("plugin not found in the catalog: {}", e.kind))
        })?;
        factory(&arca_sdk::BackendConfig {
            kind: e.kind.clone(),
            mount_path: if auth {
                format!("auth/{}", e.path)
            } else {
                e.path.clone()
            },
            mount_uuid: e.uuid.clone(),
            accessor: e.accessor.clone(),
            options: e.options.clone(),
            system: Arc::new(MountSystemView {
                core: weak,
                uuid: e.uuid.clone(),
            }),
        })
    }

    /// Runs the [`Backend::initialize`] hook of the mount with this uuid.
    pub(crate) async fn initialize_mount(&self, uuid: &str) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        let route = st.router.read().clone().by_uuid(uuid);
        match route {
            Some(r) => r.backend.initialize(r.storage.as_ref()).await,
            None => Ok(()),
        }
    }

    /// After an unseal on the active node (or on a node that just became
    /// active): every mount's [`Backend::initialize`] hook; failures are
    /// logged, the next activation retries.
    pub(crate) async fn initialize_mounts(&self) {
        let Ok(st) = self.unsealed() else { return };
        if self.cluster().is_some_and(|c| !c.state().is_active) {
            return;
        }
        let router = st.router.read().clone();
        for r in router.routes() {
            if let Err(e) = r.backend.initialize(r.storage.as_ref()).await {
                tracing::warn!(mount = %r.full_path, "initializing the mount failed; retried at the next unseal: {e}");
            }
        }
    }

    /// The live entry of the mount with this uuid (none while sealed).
    fn mount_entry(&self, uuid: &str) -> Option<MountEntry> {
        let st = self.state.read().clone()?;
        let router = st.router.read().clone();
        router.by_uuid(uuid).map(|r| r.entry.clone())
    }

    pub(crate) fn build_router(
        &self,
        mounts: &MountTable,
        auth: &MountTable,
    ) -> Result<Router, LogicalError> {
        // Keep the running backend of an unchanged mount: engines may hold
        // per-mount state (locks, caches) that must stay unique.
        let current = self.state.read().as_ref().map(|s| s.router.read().clone());
        let mut routes = Vec::new();
        for (table, is_auth) in [(mounts, false), (auth, true)] {
            for e in &table.entries {
                let reuse = current
                    .as_ref()
                    .and_then(|r| r.by_uuid(&e.uuid))
                    .filter(|r| {
                        r.entry.kind == e.kind
                            && r.entry.options.get("version") == e.options.get("version")
                    });
                let backend = match reuse {
                    Some(r) => r.backend.clone(),
                    None => self.make_backend(e, is_auth)?,
                };
                let full_path = if is_auth {
                    format!("auth/{}", e.path)
                } else {
                    e.path.clone()
                };
                routes.push(Arc::new(Route {
                    full_path,
                    entry: e.clone(),
                    auth: is_auth,
                    special: arca_sdk::framework::SpecialMatchers::new(&backend.special_paths()),
                    backend,
                    storage: Arc::new(View::new(self.barrier.clone(), e.storage_prefix(is_auth))),
                }));
            }
        }
        // Secret mounts can no longer be made under `auth/` (or the other
        // reserved prefixes). One left from an older version that would
        // shadow an auth mount is not routed: auth mounts come first and
        // keep their paths; the secret mount is reported so the operator
        // can move it (`sys/remount`) or disable it.
        let auth_paths: Vec<String> = routes
            .iter()
            .filter(|r| r.auth)
            .map(|r| r.full_path.clone())
            .collect();
        routes.retain(|r| {
            let reserved =
                !r.auth && ["auth/", "audit/"].iter().any(|p| r.full_path.starts_with(p));
            let shadows = !r.auth && auth_paths.iter().any(|a| r.full_path.starts_with(a.as_str()) || a.starts_with(r.full_path.as_str()));
            if reserved || shadows {
                tracing::error!(
                    mount = %r.full_path,
                    "a secrets engine is mounted under a reserved prefix and is not served; disable it (DELETE sys/mounts/<path>)"
                );
            }
            !(reserved || shadows)
        });
        Ok(Router::new(routes))
    }

    pub(crate) async fn load_tables(
        &self,
        root: &dyn Storage,
    ) -> Result<(MountTable, MountTable), LogicalError> {
        let mounts: Option<MountTable> = get_json(root, "core/mounts").await?;
        let auth: Option<MountTable> = get_json(root, "core/auth").await?;
        let mut mounts = mounts.unwrap_or_default();
        if !mounts.entries.is_empty() && mounts.get("identity/").is_none() {
            mounts.add(MountEntry::identity_upgrade(), &[])?;
        }
        Ok((mounts, auth.unwrap_or_default()))
    }

    /// Applies an edit to the secret (or auth) mount table, persists it and
    /// swaps the router. Edits are serialized.
    pub(crate) async fn edit_mounts<T>(
        &self,
        auth: bool,
        edit: impl FnOnce(&mut MountTable) -> Result<T, LogicalError>,
    ) -> Result<T, LogicalError> {
        let st = self.unsealed()?;
        let _g = st.mounts.lock().await;
        let (mut mounts, mut auth_t) = self.load_tables(st.root_view.as_ref()).await?;
        let out = edit(if auth { &mut auth_t } else { &mut mounts })?;
        let router = self.build_router(&mounts, &auth_t)?;
        put_json(
            st.root_view.as_ref(),
            if auth { "core/auth" } else { "core/mounts" },
            if auth { &auth_t } else { &mounts },
        )
        .await?;
        *st.router.write() = Arc::new(router);
        Ok(out)
    }

    pub(crate) fn mount_tables(&self) -> Result<(MountTable, MountTable), LogicalError> {
        let router = self.router()?;
        let mut m = MountTable::default();
        let mut a = MountTable::default();
        for r in router.routes() {
            if r.auth {
                a.entries.push(r.entry.clone());
            } else {
                m.entries.push(r.entry.clone());
            }
        }
        m.entries.sort_by(|x, y| x.path.cmp(&y.path));
        a.entries.sort_by(|x, y| x.path.cmp(&y.path));
        Ok((m, a))
    }

    /// Deletes every key under a mount's storage prefix.
    pub(crate) async fn purge_prefix(&self, prefix: &str) -> Result<(), LogicalError> {
        let keys = self
            .barrier
            .scan(prefix)
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        for chunk in keys.chunks(256) {
            let ops = chunk
                .iter()
                .map(|k| arca_sdk::StorageOp::Delete(k.clone()))
                .collect();
            self.barrier
                .batch(ops)
                .await
                .map_err(|e| LogicalError::internal(e.to_string()))?;
        }
        Ok(())
    }

    /// Dev mode and tests: a root token with a chosen id.
    pub async fn create_root_token(&self, id: Option<String>) -> Result<String, LogicalError> {
        let st = self.unsealed()?;
        let id = id.unwrap_or_else(crate::tokens::new_token_id);
        let t = now();
        st.tokens
            .create(TokenEntry {
                hash: crate::tokens::hash_token(&id),
                accessor: crate::tokens::new_accessor(),
                policies: vec!["root".into()],
                parent: String::new(),
                meta: Default::default(),
                display_name: "root".into(),
                num_uses: 0,
                creation_time: t,
                creation_ttl: 0,
                expire_time: 0,
                issue_time: t,
                explicit_max_ttl: 0,
                period: 0,
                renewable: false,
                path: "auth/token/root".into(),
                entity_id: String::new(),
                bound_cidrs: Vec::new(),
                batch: false,
                internal_data: Default::default(),
            })
            .await?;
        Ok(id)
    }

    /// Mounts an engine (used by dev mode and `sys/mounts`).
    pub async fn mount(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: Map<String, Value>,
    ) -> Result<(), LogicalError> {
        let mut e = MountEntry::new(path, kind, description);
        for (k, v) in options {
            e.options.insert(
                k,
                v.as_str()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| v.to_string()),
            );
        }
        if kind == "kv" && !e.options.contains_key("version") {
            e.options.insert("version".into(), "1".into());
        }
        self.make_backend(&e, false)?;
        self.edit_mounts(false, |t| t.add(e, crate::mounts::RESERVED_FOR_SECRETS))
            .await
    }
}

impl Core {
    /// Revokes a token and its children by id (dev mode, tests).
    pub async fn revoke_token(&self, id: &str) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        if let Some(t) = st.tokens.lookup(id, now()).await? {
            self.revoke_token_tree(&t.hash).await?;
        }
        Ok(())
    }
}
