//! Initialization, unsealing, sealing and the status endpoints that answer
//! while sealed (`sys/init`, `sys/seal-status`, `sys/unseal`, `sys/health`,
//! `sys/leader`). Their bodies are plain JSON objects, not Vault's envelope,
//! exactly as Vault answers them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use parking_lot::RwLock;
use serde_json::{json, Value};

use arca_barrier::View;
use arca_sdk::storage::put_json;
use arca_sdk::{LogicalError, Operation, RawResponse, Request, Response, Storage};
use arca_seal::UnsealProgress;

use crate::core::{now, Core, InitResult, Reply, SealStatus, Unsealed};
use crate::mounts::{MountEntry, MountTable};
use crate::policies::PolicyStore;
use crate::tokens::TokenStore;

/// The version `sys/seal-status`, `sys/health` and `sys/ha-status` report:
/// the OpenBao API level Arca is tested against (clients such as `bao pki
/// health-check` gate features on it), with Arca's own version as SemVer
/// build metadata.
pub const VERSION: &str = concat!("2.7.2+arca.", env!("CARGO_PKG_VERSION"));
const BUILD_DATE: &str = "2026-11-23T00:00:00Z";

pub(crate) fn json_reply(status: u16, v: Value) -> Reply {
    Reply::of(Response {
        raw: Some(RawResponse {
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&v).unwrap_or_default(),
        }),
        ..Default::default()
    })
}

pub(crate) fn decode_key(s: &str) -> Result<Vec<u8>, LogicalError> {
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Ok(b);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| LogicalError::invalid("'key' must be a valid hex or base64 string"))
}

/// A list of strings from a JSON array or a comma-separated string
/// (absent or null: empty).
pub(crate) fn string_list(req: &Request, name: &str) -> Result<Vec<String>, LogicalError> {
    match req.data.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split(',').map(|x| x.trim().to_string()).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    LogicalError::invalid(format!("{name} must be a list of strings"))
                })
            })
            .collect(),
        Some(_) => Err(LogicalError::invalid(format!(
            "{name} must be a list of strings"
        ))),
    }
}

/// A status code chosen by the client (`sys/health?activecode=...`): an
/// HTTP status between 100 and 999, anything else is a 400.
fn query_int(req: &Request, name: &str, default: u16) -> Result<u16, LogicalError> {
    let v = match req.data.get(name) {
        None => return Ok(default),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match v {
        Some(c @ 100..=999) => Ok(c as u16),
        _ => Err(LogicalError::invalid(format!(
            "invalid {name}: {} (an HTTP status code between 100 and 999)",
            req.data
                .get(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        ))),
    }
}

impl Core {
    pub(crate) async fn handle_seal_safe(
        &self,
        path: &str,
        req: &Request,
    ) -> Result<Option<Reply>, LogicalError> {
        let p = path.trim_end_matches('/');
        let op = req.operation;
        let r = match (p, op) {
            ("sys/seal-status", Operation::Read) => json_reply(
                200,
                serde_json::to_value(self.seal_status().await?).unwrap(),
            ),
            ("sys/init", Operation::Read) => {
                json_reply(200, json!({ "initialized": self.initialized().await? }))
            }
            ("sys/init", Operation::Update | Operation::Create) => self.init_request(req).await?,
            ("sys/unseal", Operation::Update | Operation::Create) => {
                let reset = req
                    .data
                    .get("reset")
                    .map(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
                    .unwrap_or(false);
                let key = req.data.get("key").and_then(|v| v.as_str()).unwrap_or("");
                if !reset && key.is_empty() {
                    return Err(LogicalError::invalid(
                        "'key' must be specified in request body as JSON, or 'reset' set to true",
                    ));
                }
                let migrate = req
                    .data
                    .get("migrate")
                    .map(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
                    .unwrap_or(false);
                let status = self
                    .unseal_step_with(if reset { None } else { Some(key) }, migrate)
                    .await?;
                json_reply(200, serde_json::to_value(status).unwrap())
            }
            ("sys/health", Operation::Read) => self.health(req).await?,
            ("sys/storage/raft/join", Operation::Update | Operation::Create) => {
                let s = |k: &str| {
                    req.data
                        .get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                let b = |k: &str| {
                    req.data
                        .get(k)
                        .map(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
                        .unwrap_or(false)
                };
                if !s("auto_join").is_empty() {
                    return Err(LogicalError::invalid(
                        "auto_join is not supported; give leader_api_addr",
                    ));
                }
                let joined = self
                    .join(crate::join::JoinRequest {
                        leader_api_addr: s("leader_api_addr"),
                        tls: crate::join::JoinTls {
                            ca_pem: s("leader_ca_cert"),
                            client_cert_pem: s("leader_client_cert"),
                            client_key_pem: s("leader_client_key"),
                            server_name: String::new(),
                        },
                        retry: b("retry"),
                        non_voter: b("non_voter"),
                    })
                    .await?;
                json_reply(200, json!({ "joined": joined }))
            }
            ("sys/leader", Operation::Read) => {
                if self.is_sealed() {
                    return Err(LogicalError::Sealed);
                }
                if let Some(c) = self.cluster() {
                    return Ok(Some(json_reply(200, self.leader_status(c))));
                }
                json_reply(
                    200,
                    json!({
                        "ha_enabled": false,
                        "is_self": true,
                        "active_time": "0001-01-01T00:00:00Z",
                        "leader_address": self.config.api_addr,
                        "leader_cluster_address": "",
                        "performance_standby": false,
                        "performance_standby_last_remote_wal": 0
                    }),
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(r))
    }

    /// `sys/init`: Vault's parameter rules (the barrier's shares under a
    /// Shamir seal, the recovery key's under an auto seal), then the
    /// initialization, then the keys, PGP-encrypted where asked.
    async fn init_request(&self, req: &Request) -> Result<Reply, LogicalError> {
        let int = |name: &str| -> Result<u64, LogicalError> {
            match req.data.get(name) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str()?.trim().parse().ok())
                    .ok_or_else(|| {
                        LogicalError::invalid(format!("{name} must be a non-negative integer"))
                    }),
            }
        };
        let (shares, threshold) = (int("secret_shares")?, int("secret_threshold")?);
        let (r_shares, r_threshold) = (int("recovery_shares")?, int("recovery_threshold")?);
        let pgp_keys = string_list(req, "pgp_keys")?;
        let recovery_pgp_keys = string_list(req, "recovery_pgp_keys")?;
        let mut barrier_flags = Vec::new();
        let mut recovery_flags = Vec::new();
        for (name, set) in [
            ("secret_shares", shares != 0),
            ("secret_threshold", threshold != 0),
            ("pgp_keys", !pgp_keys.is_empty()),
        ] {
            if set {
                barrier_flags.push(name);
            }
        }
        for (name, set) in [
            ("recovery_shares", r_shares != 0),
            ("recovery_threshold", r_threshold != 0),
            ("recovery_pgp_keys", !recovery_pgp_keys.is_empty()),
        ] {
            if set {
                recovery_flags.push(name);
            }
        }
        let seal_type = self.configured_seal_type().to_string();
        let not_applicable = |flags: &[&str]| {
            LogicalError::invalid(format!(
                "parameters {} not applicable to seal type {seal_type}",
                flags.join(",")
            ))
        };
        let auto = self.auto_seal().cloned();
        if auto.is_some() && !barrier_flags.is_empty() {
            return Err(not_applicable(&barrier_flags));
        }
        if auto.is_none() && !recovery_flags.is_empty() {
            return Err(not_applicable(&recovery_flags));
        }
        if auto.is_none() && (shares == 0 || threshold == 0) {
            return Err(LogicalError::invalid(
                "secret_shares and secret_threshold are required (integers, e.g. 5 and 3)",
            ));
        }
        // Checked before anything is created: a bad key refuses the
        // initialization instead of losing the shares.
        let holders = crate::rotate_keys::pgp_holders(&pgp_keys, shares as usize)?;
        let recovery_holders =
            crate::rotate_keys::pgp_holders(&recovery_pgp_keys, r_shares as usize)?;
        let root_holder = match req.data.get("root_token_pgp_key").and_then(|v| v.as_str()) {
            Some(k) if !k.trim().is_empty() => {
                Some(arca_pgp::HolderKey::parse(k).map_err(|e| {
                    LogicalError::invalid(format!("error parsing root_token_pgp_key: {e}"))
                })?)
            }
            _ => None,
        };
        let res = match &auto {
            Some(w) => {
                self.initialize_auto(
                    w,
                    arca_seal::SealConfig::shamir(r_shares as usize, r_threshold as usize),
                )
                .await?
            }
            None => self.initialize(shares as usize, threshold as usize).await?,
        };
        let encode = |keys: &[zeroize::Zeroizing<Vec<u8>>],
                      holders: &[arca_pgp::HolderKey]|
         -> Result<(Vec<String>, Vec<String>), LogicalError> {
            let shown: Vec<zeroize::Zeroizing<Vec<u8>>> = if holders.is_empty() {
                keys.to_vec()
            } else {
                let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
                arca_pgp::encrypt_shares(&refs, holders)
                    .map_err(|e| LogicalError::internal(format!("failed to encrypt shares: {e}")))?
                    .1
                    .into_iter()
                    .map(zeroize::Zeroizing::new)
                    .collect()
            };
            Ok((
                shown.iter().map(|k| hex::encode(k.as_slice())).collect(),
                shown
                    .iter()
                    .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_slice()))
                    .collect(),
            ))
        };
        let (hexes, b64) = encode(&res.keys, &holders)?;
        let root_token = match &root_holder {
            None => res.root_token.clone(),
            Some(h) => base64::engine::general_purpose::STANDARD.encode(
                h.encrypt(res.root_token.as_bytes()).map_err(|e| {
                    LogicalError::internal(format!("failed to encrypt the root token: {e}"))
                })?,
            ),
        };
        let mut body = json!({ "keys": hexes, "keys_base64": b64, "root_token": root_token });
        if !res.recovery_keys.is_empty() {
            let (r_hex, r_b64) = encode(&res.recovery_keys, &recovery_holders)?;
            body["recovery_keys"] = json!(r_hex);
            body["recovery_keys_base64"] = json!(r_b64);
        }
        Ok(json_reply(200, body))
    }

    /// Initialized means the barrier keyring exists: an init that crashed
    /// after writing the seal records but before the keyring can run again.
    pub async fn initialized(&self) -> Result<bool, LogicalError> {
        self.barrier
            .initialized()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))
    }

    pub async fn seal_status(&self) -> Result<SealStatus, LogicalError> {
        let cfg = self
            .seal
            .config()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let mut initialized = self.initialized().await?;
        let mut cfg = cfg.filter(|_| initialized);
        if !initialized {
            if let Some(pending) = self.pending_join_config() {
                initialized = true;
                cfg = Some(pending);
            }
        }
        // The stored seal type once initialized, the configured one before.
        let kind = cfg
            .as_ref()
            .map(|c| c.seal_type.clone())
            .unwrap_or_else(|| self.configured_seal_type().to_string());
        let auto = kind != "shamir";
        let migration = self.pending_migration().await?;
        let (t, n) = if let Some(m) = &migration {
            let c = self.migration_shares(m).await.ok();
            c.map(|c| (c.secret_threshold, c.secret_shares))
                .unwrap_or((0, 0))
        } else if auto {
            self.seal
                .recovery_config()
                .await
                .map_err(|e| LogicalError::internal(e.to_string()))?
                .filter(|_| initialized)
                .map(|c| (c.secret_threshold, c.secret_shares))
                .unwrap_or((0, 0))
        } else {
            cfg.as_ref()
                .map(|c| (c.secret_threshold, c.secret_shares))
                .unwrap_or((0, 0))
        };
        let mut warnings = Vec::new();
        if let Some(m) = &migration {
            warnings.push(format!(
                "seal migration pending: unseal with -migrate and the {} key shares",
                if m.uses_recovery_shares() {
                    "recovery"
                } else {
                    "unseal"
                }
            ));
        } else if initialized && kind != self.configured_seal_type() {
            warnings.push(crate::auto_seal::wrong_seal_message(
                &kind,
                self.configured_seal_type(),
            ));
        }
        if let Some(e) = self.auto_unseal_error.lock().clone() {
            if self.is_sealed() {
                warnings.push(e);
            }
        }
        let (progress, nonce) = match &*self.unseal_progress.lock() {
            Some(p) => (p.progress(), p.nonce().to_string()),
            None => (0, String::new()),
        };
        let sealed = self.is_sealed();
        let cluster_id = self.cluster_id.read().clone();
        Ok(SealStatus {
            kind,
            initialized,
            sealed,
            t,
            n,
            progress,
            nonce,
            version: VERSION.into(),
            build_date: BUILD_DATE.into(),
            commit_date: BUILD_DATE.into(),
            migration: migration.is_some(),
            cluster_name: (!sealed).then(|| self.cluster_name()),
            cluster_id: (!sealed && !cluster_id.is_empty()).then_some(cluster_id),
            recovery_seal: auto,
            recovery_seal_type: auto.then(|| "shamir".to_string()),
            storage_type: self.config.storage_type.clone(),
            warnings,
        })
    }

    fn cluster_name(&self) -> String {
        if self.config.cluster_name.is_empty() {
            "arca-cluster".into()
        } else {
            self.config.cluster_name.clone()
        }
    }

    /// `sys/init`: creates the seal and the barrier, the default mounts and
    /// policy, and a root token. The node stays sealed afterwards, as in Vault.
    pub async fn initialize(
        &self,
        shares: usize,
        threshold: usize,
    ) -> Result<InitResult, LogicalError> {
        let _g = self.lifecycle.lock().await;
        if self.initialized().await? {
            return Err(LogicalError::invalid("Vault is already initialized"));
        }
        if shares == 0 || threshold == 0 {
            return Err(LogicalError::invalid(
                "secret_shares and secret_threshold must be at least 1",
            ));
        }
        if threshold > shares {
            return Err(LogicalError::invalid(
                "secret_threshold cannot be larger than secret_shares",
            ));
        }
        if shares > 255 {
            return Err(LogicalError::invalid(
                "secret_shares cannot be more than 255",
            ));
        }
        if threshold == 1 && shares > 1 {
            return Err(LogicalError::invalid(
                "secret_threshold must be greater than one for multiple shares",
            ));
        }
        self.prepare_cluster_for_init().await?;
        let (unseal_key, keys, root_key) = self
            .seal
            .initialize(shares, threshold)
            .await
            .map_err(|e| LogicalError::invalid(e.to_string()))?;
        let root_token = self
            .initialize_barrier(&root_key, None, Some(&unseal_key))
            .await?;
        Ok(InitResult {
            keys,
            recovery_keys: Vec::new(),
            root_token,
        })
    }

    /// In a cluster, initialization happens on a bootstrapped leader only.
    pub(crate) async fn prepare_cluster_for_init(&self) -> Result<(), LogicalError> {
        if let Some(c) = self.cluster() {
            if self.has_pending_join() {
                return Err(LogicalError::invalid(
                    "this node is joining a raft cluster; unseal it instead of initializing it",
                ));
            }
            let st = c.state();
            if !st.has_cluster {
                c.bootstrap().await.map_err(crate::sys::cluster_error)?;
            } else if !st.is_active {
                return Err(LogicalError::ReadOnly);
            }
        }
        Ok(())
    }

    /// Creates the barrier under `root_key` and what an initialized server
    /// holds (mounts, cluster id, default policy, the recovery key when
    /// there is one), makes the root token, and seals again. The caller
    /// holds the lifecycle lock and has stored the seal's records.
    pub(crate) async fn initialize_barrier(
        &self,
        root_key: &arca_seal::RootKey,
        recovery_key: Option<&[u8]>,
        unseal_key: Option<&[u8]>,
    ) -> Result<String, LogicalError> {
        self.barrier
            .initialize(root_key)
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let root_view: Arc<dyn Storage> = Arc::new(View::new(self.barrier.clone(), ""));
        if let Some(k) = recovery_key {
            crate::auto_seal::store_recovery_key(root_view.as_ref(), k).await?;
        }
        if let Some(k) = unseal_key {
            crate::root_key::store_unseal_key(root_view.as_ref(), k).await?;
        }
        let mut mounts = MountTable::default();
        mounts.add(
            MountEntry::new(
                "sys/",
                "system",
                "system endpoints used for control, policy and debugging",
            ),
            &[],
        )?;
        let mut cubby = MountEntry::new(
            "cubbyhole/",
            "cubbyhole",
            "per-token private secret storage",
        );
        cubby.local = true;
        mounts.add(cubby, &[])?;
        mounts.add(MountEntry::identity(), &[])?;
        let mut auth = MountTable::default();
        auth.add(
            MountEntry::new("token/", "token", "token based credentials"),
            &[],
        )?;
        put_json(root_view.as_ref(), "core/mounts", &mounts).await?;
        put_json(root_view.as_ref(), "core/auth", &auth).await?;
        let cluster_id = uuid::Uuid::new_v4().to_string();
        put_json(
            root_view.as_ref(),
            "core/cluster",
            &json!({ "id": cluster_id }),
        )
        .await?;
        if self.cluster().is_some_and(|c| c.managed_identity()) {
            self.create_cluster_ca(root_view.as_ref(), &cluster_id)
                .await?;
        }
        self.activate(root_view).await?;
        let st = self.unsealed()?;
        st.policies.ensure_default().await?;
        let root_token = self.create_root_token(None).await?;
        self.seal_now();
        Ok(root_token)
    }

    /// Builds the unsealed state from storage and opens the node for requests.
    async fn activate(&self, root_view: Arc<dyn Storage>) -> Result<(), LogicalError> {
        let (mounts, auth) = self.load_tables(root_view.as_ref()).await?;
        let router = self.build_router(&mounts, &auth)?;
        let identity_prefix = mounts
            .get("identity/")
            .map(|e| e.storage_prefix(false))
            .unwrap_or_else(|| MountEntry::identity_upgrade().storage_prefix(false));
        let cluster: Option<Value> =
            arca_sdk::storage::get_json(root_view.as_ref(), "core/cluster").await?;
        if let Some(id) = cluster
            .as_ref()
            .and_then(|c| c.get("id"))
            .and_then(|v| v.as_str())
        {
            *self.cluster_id.write() = id.to_string();
        }
        let st = Unsealed {
            router: RwLock::new(Arc::new(router)),
            mounts: tokio::sync::Mutex::new(()),
            tokens: TokenStore::new(Arc::new(View::new(self.barrier.clone(), "sys/token/"))),
            leases: crate::expiration::Leases::new(Arc::new(View::new(
                self.barrier.clone(),
                "sys/expire/",
            ))),
            policies: PolicyStore::new(Arc::new(View::new(self.barrier.clone(), "sys/policy/"))),
            password_policies: crate::password_policies::PasswordPolicyStore::new(Arc::new(
                View::new(self.barrier.clone(), "sys/password_policy/"),
            )),
            identity: Arc::new(crate::identity::IdentityStore::new(Arc::new(View::new(
                self.barrier.clone(),
                identity_prefix,
            )))),
            root_view: root_view.clone(),
            usage_counted: parking_lot::Mutex::new(None),
        };
        self.audit.load(root_view.as_ref()).await?;
        self.quotas.load(root_view.as_ref()).await?;
        *self.state.write() = Some(Arc::new(st));
        self.sealed.store(false, Ordering::Release);
        Ok(())
    }

    /// One `sys/unseal` call: `None` resets the attempt.
    pub async fn unseal_step(&self, key: Option<&str>) -> Result<SealStatus, LogicalError> {
        self.unseal_step_with(key, false).await
    }

    /// One `sys/unseal` call, with Vault's `migrate` flag (a seal
    /// migration: `crate::seal_migration`).
    pub async fn unseal_step_with(
        &self,
        key: Option<&str>,
        migrate: bool,
    ) -> Result<SealStatus, LogicalError> {
        let migration = self.pending_migration().await?;
        match (&migration, migrate) {
            (Some(_), false) if key.is_some() => {
                return Err(LogicalError::invalid(
                    "migrate option not provided and seal migration is pending: unseal with -migrate (sys/unseal with \"migrate\": true)",
                ))
            }
            (None, true) => {
                return Err(LogicalError::invalid(
                    "migrate option provided, but no seal migration is pending (the configuration's seal is the stored one)",
                ))
            }
            _ => {}
        }
        if let Some(m) = migration {
            let Some(key) = key else {
                *self.unseal_progress.lock() = None;
                return self.seal_status().await;
            };
            if !self.is_sealed() {
                return self.seal_status().await;
            }
            let cfg = self.migration_shares(&m).await?;
            let share = decode_key(key)?;
            let combined = {
                let mut g = self.unseal_progress.lock();
                let p = g.get_or_insert_with(|| {
                    UnsealProgress::new(cfg.secret_threshold, cfg.secret_shares)
                });
                match p.submit(&share) {
                    Ok(x) => x,
                    Err(arca_seal::SealError::DuplicateShare) => None,
                    Err(e) => return Err(LogicalError::invalid(e.to_string())),
                }
            };
            if let Some(k) = combined {
                *self.unseal_progress.lock() = None;
                self.migrate_seal(m, &k).await?;
            }
            return self.seal_status().await;
        }
        // A node that is joining a cluster has no data yet: its shares are
        // checked against the leader's challenge instead.
        let joining = !self.initialized().await?;
        if joining && self.pending_join_config().is_none() {
            // With retry_join configured, do not make the operator wait for
            // the background loop: ask the targets now.
            self.retry_join_once().await;
        }
        let cfg = if joining {
            self.pending_join_config()
                .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))?
        } else {
            self.seal
                .config()
                .await
                .map_err(|e| LogicalError::internal(e.to_string()))?
                .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))?
        };
        if cfg.seal_type != self.configured_seal_type() {
            return Err(LogicalError::invalid(crate::auto_seal::wrong_seal_message(
                &cfg.seal_type,
                self.configured_seal_type(),
            )));
        }
        if cfg.is_auto() {
            return Err(LogicalError::invalid(format!(
                "this node unseals itself with its {} seal; key shares cannot unseal it (recovery keys authorize generate-root and rotations only); see sys/seal-status for why it is still sealed",
                cfg.seal_type
            )));
        }
        let Some(key) = key else {
            *self.unseal_progress.lock() = None;
            return self.seal_status().await;
        };
        if !self.is_sealed() {
            return self.seal_status().await;
        }
        let share = decode_key(key)?;
        let combined = {
            let mut g = self.unseal_progress.lock();
            let p = g.get_or_insert_with(|| {
                UnsealProgress::new(cfg.secret_threshold, cfg.secret_shares)
            });
            match p.submit(&share) {
                Ok(x) => x,
                // Vault ignores a share it already has: progress is unchanged.
                Err(arca_seal::SealError::DuplicateShare) => None,
                Err(e) => return Err(LogicalError::invalid(e.to_string())),
            }
        };
        let Some(unseal_key) = combined else {
            return self.seal_status().await;
        };
        *self.unseal_progress.lock() = None;
        if joining {
            self.finish_join(Some(&unseal_key)).await?;
        } else {
            self.unseal_with_key(&unseal_key).await?;
        }
        self.seal_status().await
    }

    /// Unseals with the full unseal key (dev mode, tests, the last share).
    pub async fn unseal_with_key(&self, unseal_key: &[u8]) -> Result<(), LogicalError> {
        let _g = self.lifecycle.lock().await;
        if !self.is_sealed() {
            return Ok(());
        }
        let root_key = self.seal.recover_root_key(unseal_key).await.map_err(|_| {
            LogicalError::invalid(
                "Unseal failed, invalid key: the shares do not combine to this server's unseal key",
            )
        })?;
        self.open_with_root_key(&root_key).await?;
        self.remember_unseal_key(unseal_key).await;
        Ok(())
    }

    /// Unseals the barrier with the root key and opens the node for
    /// requests. The caller holds the lifecycle lock.
    pub(crate) async fn open_with_root_key(
        &self,
        root_key: &arca_seal::RootKey,
    ) -> Result<(), LogicalError> {
        self.barrier
            .unseal(root_key)
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let root_view: Arc<dyn Storage> = Arc::new(View::new(self.barrier.clone(), ""));
        if let Err(e) = self.activate(root_view).await {
            self.seal_now();
            return Err(e);
        }
        if let Err(e) = self.install_cluster_identity().await {
            self.seal_now();
            return Err(e);
        }
        if let Some(c) = self.cluster() {
            c.set_electable(true);
        }
        self.initialize_mounts().await;
        Ok(())
    }

    /// Seals at once: drops caches and keys.
    pub(crate) fn seal_now(&self) {
        self.sealed.store(true, Ordering::Release);
        *self.state.write() = None;
        *self.unseal_progress.lock() = None;
        // A rotation being completed right now (its lock is held) ends with
        // its request: its shares did open the root key.
        if let Ok(mut r) = self.rotation.try_lock() {
            *r = None;
        }
        if let Ok(mut r) = self.recovery_rotation.try_lock() {
            *r = None;
        }
        if let Ok(mut g) = self.root_generation.try_lock() {
            *g = None;
        }
        *self.pending_unseal_key.lock() = None;
        self.audit.clear();
        self.quotas.clear();
        self.barrier.seal();
        self.drop_cluster_identity();
    }

    /// `sys/seal`. In a cluster the node first gives up the right to lead
    /// and, when it is the active node, hands leadership to another voter,
    /// so that the standbys fail over instead of forwarding to a sealed
    /// node (Vault does the same). A one-voter cluster keeps its leader.
    pub async fn seal(&self) {
        let _g = self.lifecycle.lock().await;
        // Give back the unused part of the encryption-count reservation
        // (a standby holds none: ReadOnly is expected there).
        if let Err(e) = self.barrier.flush_usage().await {
            tracing::debug!("sealing: encryption count not flushed: {e}");
        }
        if let Some(c) = self.cluster() {
            c.set_electable(false);
            if c.state().is_active {
                if let Err(e) = c.step_down().await {
                    tracing::warn!("sealing the active node: could not hand leadership over: {e}");
                }
            }
        }
        if let Ok(router) = self.router() {
            for r in router.routes() {
                r.backend.cleanup().await;
            }
        }
        self.seal_now();
    }

    /// `sys/leader` in a cluster.
    fn leader_status(&self, c: &dyn crate::cluster::Cluster) -> Value {
        let st = c.state();
        let active_time = {
            let mut since = self.active_since.write();
            if st.is_active {
                *since.get_or_insert_with(chrono::Utc::now)
            } else {
                *since = None;
                chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
            }
        };
        let (addr, cluster_addr) = st
            .leader
            .as_ref()
            .map(|l| (l.api_addr.clone(), l.cluster_addr.clone()))
            .unwrap_or_default();
        json!({
            "ha_enabled": true,
            "is_self": st.is_active,
            "active_time": if st.is_active {
                active_time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            } else {
                "0001-01-01T00:00:00Z".to_string()
            },
            "leader_address": addr,
            "leader_cluster_address": cluster_addr,
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": st.committed_index,
            "raft_applied_index": st.applied_index,
        })
    }

    async fn health(&self, req: &Request) -> Result<Reply, LogicalError> {
        let initialized = self.initialized().await?;
        let sealed = self.is_sealed();
        let standbyok = matches!(req.data.get("standbyok"), Some(v) if v.as_bool() == Some(true) || v.as_str().map(|s| s.is_empty() || s == "true").unwrap_or(false));
        let standby = !sealed && self.cluster().is_some_and(|c| !c.state().is_active);
        // Every code is checked, whichever one applies (as Vault does).
        let uninit = query_int(req, "uninitcode", 501)?;
        let sealed_code = query_int(req, "sealedcode", 503)?;
        let standby_code = query_int(req, "standbycode", 429)?;
        let active = query_int(req, "activecode", 200)?;
        let code = if !initialized {
            uninit
        } else if sealed {
            sealed_code
        } else if standby && !standbyok {
            standby_code
        } else {
            active
        };
        let body = json!({
            "initialized": initialized,
            "sealed": sealed,
            "standby": standby,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": now(),
            "version": VERSION,
            "enterprise": false,
            "cluster_name": if sealed { Value::Null } else { Value::from(self.cluster_name()) },
            "cluster_id": if sealed { Value::Null } else { Value::from(self.cluster_id.read().clone()) },
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
        });
        Ok(json_reply(code, body))
    }
}
