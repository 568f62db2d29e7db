//! The expiration manager: leases on the secrets engines hand out, and the
//! expiry of tokens.
//!
//! A backend answers with a [`Secret`] marked `register_lease`; core gives
//! it a lease id (`<request path>/<random>`), a TTL within the mount's
//! limits, and stores a [`LeaseEntry`] under `sys/expire/` in the barrier
//! (replicated, encrypted) with two index records in the same batch:
//! - `time/…/<due second>/<hash of the id>` → the id ([`crate::time_index`]),
//! - `token/<token hash>/<hash of the id>` → the id (the owning token).
//!
//! Invariants:
//! - The manager runs on the active node only. It keeps nothing in memory:
//!   every tick walks the time index up to now, so a new leader takes over
//!   by ticking, whatever the number of leases, and a tick reads only what
//!   is due.
//! - A lease is deleted only after its backend's revoke callback succeeded
//!   (or a forced revoke). A failed revocation is retried with backoff
//!   (10 s, 20 s, 40 s, …); after [`MAX_REVOKE_ATTEMPTS`] the lease is
//!   irrevocable: it leaves the time index, keeps its error, and stays
//!   visible to lookup until an operator forces it out.
//! - Revoking a token (explicitly, by use count or by expiry) revokes its
//!   child tokens at once and schedules every lease they own for
//!   revocation now, as Vault does; the next tick revokes them.
//! - Tokens with a TTL are in the token store's own time index
//!   (`sys/token/expire/…`); the manager revokes each expired token's tree.
//! - The response data of a leased secret is not kept: a backend puts what
//!   its callbacks need in `internal_data`.
//! - Renewals are capped by the lease's issue time plus the smaller of the
//!   mount's max TTL and the secret's own `max_ttl`, with a warning.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use arca_sdk::storage::{collect_keys, get_json, json_op};
use arca_sdk::{LogicalError, Operation, Request, Response, Secret, Storage, StorageOp};

use futures::StreamExt;

use crate::core::{Core, Reply, Unsealed};
use crate::router::Route;
use crate::time_index;

/// Revocation attempts before a lease is reported irrevocable.
pub const MAX_REVOKE_ATTEMPTS: u32 = 6;
/// Seconds before the first retry of a failed revocation (doubling).
pub const REVOKE_RETRY_BASE: i64 = 10;
/// Leases (and tokens) one read of the time index returns at most.
const TICK_BATCH: usize = 512;
/// Revocations one tick runs at the same time.
const TICK_PARALLEL: usize = 16;
/// How long a tick keeps taking further batches of what is due; the rest
/// waits for the next tick.
const TICK_BUDGET: std::time::Duration = std::time::Duration::from_millis(800);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseEntry {
    pub lease_id: String,
    /// Hash of the token that created the lease ("" for none).
    #[serde(default)]
    pub token_hash: String,
    /// The full request path the secret was returned on.
    pub path: String,
    /// The mount that issued it (a lease outlives no mount).
    pub mount_accessor: String,
    /// TTL, renewability, max TTL and the backend's internal data.
    pub secret: Secret,
    /// Unix seconds.
    pub issue_time: i64,
    pub expire_time: i64,
    #[serde(default)]
    pub last_renewal_time: i64,
    /// The second the time index lists the lease under (0: not listed,
    /// the lease is irrevocable).
    pub due: i64,
    #[serde(default)]
    pub revoke_attempts: u32,
    #[serde(default)]
    pub revoke_err: String,
}

impl LeaseEntry {
    pub fn irrevocable(&self) -> bool {
        self.revoke_attempts >= MAX_REVOKE_ATTEMPTS
    }

    /// The latest second this lease may be extended to.
    pub fn max_expire(&self, mount_max: u64) -> i64 {
        let max = match (self.secret.max_ttl, mount_max) {
            (0, m) => m,
            (s, 0) => s,
            (s, m) => s.min(m),
        };
        if max == 0 {
            i64::MAX
        } else {
            self.issue_time + max as i64
        }
    }
}

/// A lease prefix as a folder: with a trailing `/` unless empty.
fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

fn id_hash(lease_id: &str) -> String {
    hex::encode(&Sha256::digest(lease_id.as_bytes())[..16])
}

/// The leases' records (`sys/expire/` in the barrier).
pub(crate) struct Leases {
    storage: Arc<dyn Storage>,
}

impl Leases {
    pub fn new(storage: Arc<dyn Storage>) -> Leases {
        Leases { storage }
    }

    /// How many leases are stored (walks the lease entries: for the usage
    /// gauges, every few minutes, not per request).
    pub async fn count(&self) -> Result<usize, LogicalError> {
        Ok(collect_keys(self.storage.as_ref(), "id/").await?.len())
    }

    pub async fn get(&self, lease_id: &str) -> Result<Option<LeaseEntry>, LogicalError> {
        if lease_id.is_empty() || lease_id.ends_with('/') {
            return Ok(None);
        }
        Ok(get_json(self.storage.as_ref(), &format!("id/{lease_id}")).await?)
    }

    fn time_key(e: &LeaseEntry) -> Option<String> {
        (e.due > 0).then(|| time_index::key("time/", e.due, &id_hash(&e.lease_id)))
    }

    fn token_key(e: &LeaseEntry) -> Option<String> {
        (!e.token_hash.is_empty())
            .then(|| format!("token/{}/{}", e.token_hash, id_hash(&e.lease_id)))
    }

    /// Stores a new lease with its index records, atomically.
    pub async fn create(&self, e: &LeaseEntry) -> Result<(), LogicalError> {
        let mut ops = vec![json_op(&format!("id/{}", e.lease_id), e)?];
        for k in [Self::time_key(e), Self::token_key(e)]
            .into_iter()
            .flatten()
        {
            ops.push(StorageOp::Put(k, e.lease_id.clone().into_bytes()));
        }
        Ok(self.storage.batch(ops).await?)
    }

    /// Rewrites a lease whose due time was `old_due`, moving its time
    /// index record.
    pub async fn update(&self, old_due: i64, e: &LeaseEntry) -> Result<(), LogicalError> {
        let mut ops = Vec::new();
        if old_due != e.due && old_due > 0 {
            ops.push(StorageOp::Delete(time_index::key(
                "time/",
                old_due,
                &id_hash(&e.lease_id),
            )));
        }
        ops.push(json_op(&format!("id/{}", e.lease_id), e)?);
        if let Some(k) = Self::time_key(e) {
            ops.push(StorageOp::Put(k, e.lease_id.clone().into_bytes()));
        }
        Ok(self.storage.batch(ops).await?)
    }

    /// Makes a lease due at `now` (it expires no later than that): the
    /// next tick revokes it.
    pub async fn due_now(&self, e: &mut LeaseEntry, now: i64) -> Result<(), LogicalError> {
        let old = e.due;
        e.expire_time = e.expire_time.min(now);
        e.due = now;
        self.update(old, e).await
    }

    /// Deletes a lease and its index records.
    pub async fn delete(&self, e: &LeaseEntry) -> Result<(), LogicalError> {
        let mut ops = vec![StorageOp::Delete(format!("id/{}", e.lease_id))];
        for k in [Self::time_key(e), Self::token_key(e)]
            .into_iter()
            .flatten()
        {
            ops.push(StorageOp::Delete(k));
        }
        Ok(self.storage.batch(ops).await?)
    }

    /// Lease ids the token with this hash owns.
    pub async fn of_token(&self, token_hash: &str) -> Result<Vec<String>, LogicalError> {
        let mut out = Vec::new();
        let prefix = format!("token/{token_hash}/");
        for k in self.storage.list(&prefix).await? {
            if let Some(v) = self.storage.get(&format!("{prefix}{k}")).await? {
                out.push(String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(out)
    }

    /// Every lease id under `prefix` (a path: `pki/issue/web` and
    /// `pki/issue/web/` name the same leases, as in Vault).
    pub async fn ids_under(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        let keys = collect_keys(self.storage.as_ref(), &format!("id/{}", folder(prefix))).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix("id/").map(str::to_string))
            .collect())
    }

    /// Immediate children of the folder `prefix` (Vault's LIST semantics).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        Ok(self.storage.list(&format!("id/{}", folder(prefix))).await?)
    }

    /// Up to `limit` leases due at `now`: (index key, due second, lease id).
    async fn due(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64, String)>, LogicalError> {
        let mut out = Vec::new();
        for d in time_index::due(self.storage.as_ref(), "time/", now, limit).await? {
            let id = self.storage.get(&d.key).await?.unwrap_or_default();
            out.push((d.key, d.ts, String::from_utf8_lossy(&id).into_owned()));
        }
        Ok(out)
    }

    async fn delete_key(&self, key: &str) -> Result<(), LogicalError> {
        Ok(self.storage.delete(key).await?)
    }
}

/// What one expiration tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct TickReport {
    pub leases_revoked: usize,
    pub leases_failed: usize,
    pub tokens_revoked: usize,
}

/// The second a lease of `ttl` seconds granted at `now_ms` (unix
/// milliseconds) expires, rounded up: the manager revokes it at that
/// second's tick or later, never before its full TTL has passed. Tokens
/// use it too.
pub(crate) fn expiry(now_ms: i64, ttl: u64) -> i64 {
    (now_ms + ttl as i64 * 1000 + 999).div_euclid(1000)
}

fn rfc3339(t: i64) -> Value {
    match chrono::DateTime::from_timestamp(t, 0) {
        Some(d) if t > 0 => Value::from(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        _ => Value::Null,
    }
}

impl Core {
    /// Lease and token changes happen on the active node: a standby answers
    /// read-only, and the request is forwarded.
    pub(crate) fn require_active(&self) -> Result<(), LogicalError> {
        match self.cluster() {
            Some(c) if !c.state().is_active => Err(LogicalError::ReadOnly),
            _ => Ok(()),
        }
    }

    /// Gives a secret a backend returned its lease: the TTL within the
    /// mount's limits (a warning when capped), stored with its indexes.
    /// Returns the lease id and the TTL granted. A secret whose lease cannot
    /// be stored (this node lost leadership, storage failed) is revoked at
    /// once through its backend, so that nothing it created outside Arca (a
    /// database user) outlives the failed request.
    pub(crate) async fn register_lease(
        &self,
        st: &Unsealed,
        route: &Route,
        request_path: &str,
        token_hash: Option<&str>,
        mut secret: Secret,
        warnings: &mut Vec<String>,
    ) -> Result<(String, u64), LogicalError> {
        let mount_max = self.mount_max_ttl(&route.entry);
        let max = match (secret.max_ttl, mount_max) {
            (0, m) => m,
            (s, 0) => s,
            (s, m) => s.min(m),
        };
        let (ttl, warning) = arca_sdk::clamp_ttl(
            secret.ttl,
            self.mount_default_ttl(&route.entry),
            max,
            arca_sdk::system::MOUNT_MAX_TTL,
        );
        warnings.extend(warning);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let lease_id = format!(
            "{}/{}",
            request_path.trim_matches('/'),
            crate::tokens::new_accessor()
        );
        secret.ttl = ttl;
        let e = LeaseEntry {
            lease_id: lease_id.clone(),
            token_hash: token_hash.unwrap_or_default().to_string(),
            path: request_path.to_string(),
            mount_accessor: route.entry.accessor.clone(),
            secret,
            issue_time: now,
            expire_time: expiry(now_ms, ttl),
            last_renewal_time: 0,
            due: expiry(now_ms, ttl),
            revoke_attempts: 0,
            revoke_err: String::new(),
        };
        let stored = match self.require_active() {
            Ok(()) => st.leases.create(&e).await,
            Err(err) => Err(err),
        };
        if let Err(err) = stored {
            match self.lease_callback(st, Operation::Revoke, &e, 0).await {
                Ok(_) => tracing::warn!(
                    path = request_path,
                    "the lease could not be stored ({err}); its secret was revoked again"
                ),
                Err(revoke) => tracing::error!(
                    path = request_path,
                    "the lease could not be stored ({err}) and revoking its secret failed too ({revoke}): it may need cleaning up by hand"
                ),
            }
            return Err(err);
        }
        Ok((lease_id, ttl))
    }

    /// Calls the issuing backend's renew or revoke callback for a lease.
    /// `Ok(None)` from a revoke whose mount is gone: nothing left to undo.
    async fn lease_callback(
        &self,
        st: &Unsealed,
        op: Operation,
        e: &LeaseEntry,
        increment: u64,
    ) -> Result<Option<Response>, LogicalError> {
        let router = st.router.read().clone();
        let route = router
            .resolve(&e.path)
            .filter(|(r, _)| r.entry.accessor == e.mount_accessor);
        let Some((route, rel)) = route else {
            return match op {
                Operation::Revoke => Ok(None),
                _ => Err(LogicalError::invalid(format!(
                    "the mount that issued lease {:?} no longer exists",
                    e.lease_id
                ))),
            };
        };
        let mut req = Request::new(op, rel);
        req.id = uuid::Uuid::new_v4().to_string();
        req.mount_point = route.full_path.clone();
        req.mount_type = route.entry.kind.clone();
        req.mount_accessor = route.entry.accessor.clone();
        let mut secret = e.secret.clone();
        secret.lease_id = e.lease_id.clone();
        secret.issue_time = e.issue_time;
        secret.increment = increment;
        req.secret = Some(secret);
        route.backend.handle(&req, route.storage.as_ref()).await
    }

    /// `sys/leases/renew`: extends a lease by `increment` seconds (0: its
    /// TTL again), through the backend's renew callback, capped by the
    /// lease's max TTL with a warning.
    pub(crate) async fn renew_lease(
        &self,
        lease_id: &str,
        increment: u64,
    ) -> Result<Reply, LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        let mut e = st
            .leases
            .get(lease_id)
            .await?
            .ok_or_else(|| LogicalError::invalid("lease not found"))?;
        if e.irrevocable() {
            return Err(LogicalError::invalid(format!(
                "lease is irrevocable and cannot be renewed (its revocation failed: {})",
                e.revoke_err
            )));
        }
        if !e.secret.renewable {
            return Err(LogicalError::invalid("lease is not renewable"));
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let mount_max = {
            let router = st.router.read().clone();
            router
                .resolve(&e.path)
                .filter(|(r, _)| r.entry.accessor == e.mount_accessor)
                .map(|(r, _)| self.mount_max_ttl(&r.entry))
                .unwrap_or(self.config.max_lease_ttl)
        };
        let limit = e.max_expire(mount_max);
        if now >= limit {
            return Err(LogicalError::invalid(
                "lease has reached its max TTL and cannot be renewed; request a new secret",
            ));
        }
        let inc = if increment > 0 {
            increment
        } else {
            e.secret.ttl
        };
        let resp = self
            .lease_callback(&st, Operation::Renew, &e, inc)
            .await?
            .unwrap_or_default();
        let mut resp = resp;
        let mut ttl = inc;
        if let Some(s) = resp.secret.take() {
            if s.ttl > 0 {
                ttl = s.ttl;
            }
            if !s.internal_data.is_empty() {
                let kind = e.secret.secret_type().map(str::to_string);
                e.secret.internal_data = s.internal_data;
                if let (Some(k), None) = (kind, e.secret.secret_type()) {
                    e.secret
                        .internal_data
                        .insert("secret_type".into(), Value::from(k));
                }
            }
        }
        if now + ttl as i64 > limit {
            let capped = (limit - now).max(0) as u64;
            resp.warnings.push(format!(
                "TTL of {ttl}s exceeded the effective max_ttl of {capped}s; TTL value is capped accordingly"
            ));
            ttl = capped;
        }
        let old_due = e.due;
        e.expire_time = expiry(now_ms, ttl);
        e.due = e.expire_time;
        e.last_renewal_time = now;
        st.leases.update(old_due, &e).await?;
        Ok(Reply {
            response: Some(resp),
            mount_type: String::new(),
            lease_id: e.lease_id,
            lease_duration: ttl,
            renewable: true,
        })
    }

    /// Revokes one lease now. `force`: delete it even when the backend
    /// fails. False when no such lease exists.
    pub(crate) async fn revoke_lease(
        &self,
        lease_id: &str,
        force: bool,
    ) -> Result<bool, LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        let Some(e) = st.leases.get(lease_id).await? else {
            return Ok(false);
        };
        match self.lease_callback(&st, Operation::Revoke, &e, 0).await {
            Ok(_) => {}
            Err(err) if force => tracing::warn!(
                lease_id = %e.lease_id,
                "the backend failed to revoke the lease; removed anyway (revoke-force): {err}"
            ),
            Err(err) => {
                return Err(LogicalError::invalid(format!(
                    "failed to revoke lease {:?}: {err}",
                    e.lease_id
                )))
            }
        }
        st.leases.delete(&e).await?;
        Ok(true)
    }

    /// Revokes every lease whose id starts with `prefix`; the first
    /// failure stops (unless `force`) and is returned.
    pub(crate) async fn revoke_lease_prefix(
        &self,
        prefix: &str,
        force: bool,
    ) -> Result<usize, LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        let ids = st.leases.ids_under(prefix).await?;
        let mut n = 0;
        for id in ids {
            if self.revoke_lease(&id, force).await? {
                n += 1;
            }
        }
        // Tokens are leases too (Vault's lease id of a token is its
        // creation path): `auth/...` prefixes revoke the tokens created
        // under them, with their trees.
        if prefix.starts_with("auth/") {
            for h in st.tokens.hashes_with_path(prefix).await? {
                self.revoke_token_tree(&h).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// `sys/leases/lookup`.
    pub(crate) async fn lookup_lease(&self, lease_id: &str) -> Result<Response, LogicalError> {
        let st = self.unsealed()?;
        let e = st
            .leases
            .get(lease_id)
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid lease"))?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut data = json!({
            "id": e.lease_id,
            "issue_time": rfc3339(e.issue_time),
            "expire_time": rfc3339(e.expire_time),
            "last_renewal": rfc3339(e.last_renewal_time),
            "renewable": e.secret.renewable && !e.irrevocable(),
            // Seconds left, counted from the millisecond the lease was
            // looked up (its expiry second is rounded up, see `expiry`).
            "ttl": (e.expire_time * 1000 - now_ms).max(0) / 1000,
        });
        if e.irrevocable() {
            data["revoke_error"] = Value::from(e.revoke_err.clone());
        }
        Ok(Response::json(data))
    }

    pub(crate) async fn list_leases(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        self.unsealed()?.leases.list(prefix).await
    }

    /// `sys/leases/revoke` with `sync=false`: the lease is due now.
    pub(crate) async fn expire_lease_now(&self, lease_id: &str) -> Result<(), LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        let mut e = st
            .leases
            .get(lease_id)
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid lease"))?;
        st.leases.due_now(&mut e, crate::core::now()).await?;
        self.expiration_wake.notify_one();
        Ok(())
    }

    /// After tokens were revoked: their leases are due now (the next tick
    /// revokes them through their backends).
    pub(crate) async fn expire_leases_of(
        &self,
        token_hashes: &[String],
    ) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        let now = crate::core::now();
        let mut any = false;
        for h in token_hashes {
            for id in st.leases.of_token(h).await? {
                let Some(mut e) = st.leases.get(&id).await? else {
                    continue;
                };
                if e.irrevocable() {
                    continue;
                }
                st.leases.due_now(&mut e, now).await?;
                any = true;
            }
        }
        if any {
            self.expiration_wake.notify_one();
        }
        Ok(())
    }

    /// Revokes a token tree: the tokens at once, their leases at the next
    /// tick, their cubbyholes.
    pub(crate) async fn revoke_token_tree(&self, hash: &str) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        let revoked = st.tokens.revoke_tree(hash).await?;
        self.after_token_revocation(&revoked).await
    }

    /// Revokes every token created on a path under `prefix` (an auth
    /// mount being disabled), with their trees and leases.
    pub(crate) async fn revoke_tokens_of_path(&self, prefix: &str) -> Result<(), LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        for h in st.tokens.hashes_with_path(prefix).await? {
            self.revoke_token_tree(&h).await?;
        }
        Ok(())
    }

    /// What follows the revocation of these tokens (by hash).
    pub(crate) async fn after_token_revocation(
        &self,
        revoked: &[String],
    ) -> Result<(), LogicalError> {
        self.expire_leases_of(revoked).await?;
        self.purge_cubbyholes(revoked).await
    }

    /// One round of the expiration manager at `now` (unix seconds): revokes
    /// the leases and tokens that are due. Does nothing on a standby or
    /// while sealed.
    pub async fn expire_tick(&self, now: i64) -> Result<TickReport, LogicalError> {
        let mut report = TickReport::default();
        if self.is_sealed() || self.require_active().is_err() {
            return Ok(report);
        }
        let st = self.unsealed()?;
        st.tokens.index_existing().await?;
        // Standbys serve batch-token logins and lookups with this key.
        st.tokens.ensure_batch_key().await?;
        // Tokens first: their leases become due and are revoked below.
        // Batches are taken until none is full or the tick's budget is
        // spent, TICK_PARALLEL revocations at a time (each is a few
        // replicated writes: one after another, they capped the rate).
        let started = std::time::Instant::now();
        loop {
            let due = st.tokens.due(now, TICK_BATCH).await?;
            let full = due.len() == TICK_BATCH;
            let results: Vec<Result<bool, LogicalError>> =
                futures::stream::iter(due.into_iter().map(|(key, ts, hash)| {
                    let st = st.clone();
                    async move {
                        match st.tokens.stored(&hash).await? {
                            Some(t) if t.expire_time == ts && t.expire_time <= now => {
                                self.revoke_token_tree(&hash).await?;
                                Ok(true)
                            }
                            // Renewed or already gone: the record is stale.
                            _ => {
                                st.tokens.delete_index_key(&key).await?;
                                Ok(false)
                            }
                        }
                    }
                }))
                .buffer_unordered(TICK_PARALLEL)
                .collect()
                .await;
            let mut failed = false;
            for r in results {
                match r {
                    Ok(true) => report.tokens_revoked += 1,
                    Ok(false) => {}
                    Err(LogicalError::ReadOnly) => return Err(LogicalError::ReadOnly),
                    Err(e) => {
                        // Its index record stays: the next tick tries again.
                        failed = true;
                        tracing::warn!("revoking an expired token failed: {e}");
                    }
                }
            }
            if !full || failed || started.elapsed() >= TICK_BUDGET {
                break;
            }
        }
        // Then leases, the same way (a failed one is rescheduled, so it is
        // not taken again in this tick).
        loop {
            let due = st.leases.due(now, TICK_BATCH).await?;
            let full = due.len() == TICK_BATCH;
            let results = futures::future::join_all(due.chunks(TICK_PARALLEL).map(|chunk| {
                let st = st.clone();
                async move {
                    let mut r = TickReport::default();
                    for (key, ts, id) in chunk {
                        match self.expire_one(&st, key, *ts, id, now).await {
                            Ok(true) => r.leases_revoked += 1,
                            Ok(false) => {}
                            Err(LogicalError::ReadOnly) => return Err(LogicalError::ReadOnly),
                            Err(e) => {
                                r.leases_failed += 1;
                                tracing::warn!(lease_id = %id, "revoking an expired lease failed: {e}");
                            }
                        }
                    }
                    Ok::<_, LogicalError>(r)
                }
            }))
            .await;
            for r in results {
                let r = r?;
                report.leases_revoked += r.leases_revoked;
                report.leases_failed += r.leases_failed;
            }
            if !full || started.elapsed() >= TICK_BUDGET {
                break;
            }
        }
        Ok(report)
    }

    /// Revokes one due lease; on failure schedules the next attempt or
    /// marks it irrevocable. True when it was revoked.
    async fn expire_one(
        &self,
        st: &Unsealed,
        key: &str,
        ts: i64,
        lease_id: &str,
        now: i64,
    ) -> Result<bool, LogicalError> {
        let Some(mut e) = st.leases.get(lease_id).await?.filter(|e| e.due == ts) else {
            // Renewed (listed under another second) or gone.
            st.leases.delete_key(key).await?;
            return Ok(false);
        };
        match self.lease_callback(st, Operation::Revoke, &e, 0).await {
            Ok(_) => {
                st.leases.delete(&e).await?;
                Ok(true)
            }
            Err(LogicalError::ReadOnly) => Err(LogicalError::ReadOnly),
            Err(err) => {
                e.revoke_attempts += 1;
                e.revoke_err = err.to_string();
                let old = e.due;
                if e.irrevocable() {
                    e.due = 0;
                    tracing::error!(
                        lease_id = %e.lease_id,
                        attempts = e.revoke_attempts,
                        "lease is irrevocable: its backend keeps failing to revoke it ({err}); fix the cause and run `bao lease revoke -force -prefix {}`",
                        e.lease_id
                    );
                } else {
                    e.due = now + (REVOKE_RETRY_BASE << (e.revoke_attempts - 1));
                }
                st.leases.update(old, &e).await?;
                Err(err)
            }
        }
    }

    /// `sys/leases/tidy`: drops index records that point at nothing and
    /// schedules the leases of tokens that no longer exist for revocation.
    pub(crate) async fn tidy_leases(&self) -> Result<(usize, usize), LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        let now = crate::core::now();
        let mut orphaned = 0;
        let mut reindexed = 0;
        for id in st.leases.ids_under("").await? {
            let Some(mut e) = st.leases.get(&id).await? else {
                continue;
            };
            if !e.token_hash.is_empty()
                && st.tokens.lookup_hash(&e.token_hash, now).await?.is_none()
                && !e.irrevocable()
            {
                st.leases.due_now(&mut e, now).await?;
                orphaned += 1;
            } else if e.due > 0 {
                // Rewriting puts the time record back if it was lost.
                st.leases.update(e.due, &e).await?;
                reindexed += 1;
            }
        }
        self.expiration_wake.notify_one();
        Ok((orphaned, reindexed))
    }
}

#[cfg(test)]
mod tests {
    use super::expiry;

    #[test]
    fn a_lease_never_expires_before_its_full_ttl() {
        // Granted at 100.000 s for 5 s: due at 105.
        assert_eq!(expiry(100_000, 5), 105);
        // Granted at 100.001 s: its 5 s end at 105.001, so due at 106.
        assert_eq!(expiry(100_001, 5), 106);
        assert_eq!(expiry(100_999, 5), 106);
        assert_eq!(expiry(100_000, 0), 100);
    }
}
