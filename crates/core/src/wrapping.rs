//! Response wrapping: an answer stored in the cubbyhole of a new
//! single-use token (the wrapping token) instead of being returned, to be
//! read once with `sys/wrapping/unwrap` by whoever holds that token.
//!
//! Invariants:
//! - A wrapping token has exactly the policy `response-wrapping`, one use,
//!   no parent and a TTL (the wrap TTL); its cubbyhole holds the wrapped
//!   answer under `response` (`{"response": "<JSON text>"}`, as Vault).
//! - Unwrapping consumes the token's one use before the answer is read,
//!   so two concurrent unwraps of one token cannot both succeed; the token
//!   and its cubbyhole are revoked afterwards. An expired wrapping token is
//!   revoked by the expiration manager like any token.
//! - Wrapping writes (a token, a cubbyhole entry): a standby forwards a
//!   request that asks for wrapping before running it (`Core::linearize`).

use serde::Serialize;
use serde_json::{json, Value};

use arca_sdk::LogicalError;

use crate::core::{now, Core, Unsealed};
use crate::tokens::{hash_token, new_accessor, new_token_id, TokenEntry};

/// The cubbyhole key of the wrapped answer.
const RESPONSE_KEY: &str = "response";

/// What the client gets instead of a wrapped answer (`wrap_info`).
#[derive(Debug, Clone, Serialize)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: u64,
    /// RFC 3339.
    pub creation_time: String,
    pub creation_path: String,
    /// The accessor of the token the wrapped answer holds, if any.
    pub wrapped_accessor: String,
}

/// What `sys/wrapping/lookup` shows of a wrapping token.
#[derive(Debug, Clone)]
pub struct WrapLookup {
    pub creation_path: String,
    pub creation_time: String,
    pub creation_ttl: u64,
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn invalid_token() -> LogicalError {
    LogicalError::invalid("wrapping token is not valid or does not exist")
}

fn is_wrapping(e: &TokenEntry) -> bool {
    e.policies.len() == 1 && e.policies[0] == arca_policy::RESPONSE_WRAPPING_POLICY
}

impl Core {
    /// Wraps `body` (the rendered answer of `creation_path`) for `ttl`
    /// seconds.
    pub async fn wrap_response(
        &self,
        body: &Value,
        ttl: u64,
        creation_path: &str,
        wrapped_accessor: &str,
    ) -> Result<WrapInfo, LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        self.wrap_in(&st, &body.to_string(), ttl, creation_path, wrapped_accessor)
            .await
    }

    async fn wrap_in(
        &self,
        st: &Unsealed,
        text: &str,
        ttl: u64,
        creation_path: &str,
        wrapped_accessor: &str,
    ) -> Result<WrapInfo, LogicalError> {
        if ttl == 0 {
            return Err(LogicalError::invalid("the wrap TTL must be positive"));
        }
        let max = self.config().max_lease_ttl;
        if max > 0 && ttl > max {
            return Err(LogicalError::invalid(format!(
                "the wrap TTL of {ttl} s is longer than the system maximum of {max} s"
            )));
        }
        let id = new_token_id();
        let t = now();
        let entry = TokenEntry {
            hash: hash_token(&id),
            accessor: new_accessor(),
            policies: vec![arca_policy::RESPONSE_WRAPPING_POLICY.to_string()],
            parent: String::new(),
            meta: Default::default(),
            display_name: String::new(),
            num_uses: 1,
            creation_time: t,
            creation_ttl: ttl,
            expire_time: t.saturating_add(ttl as i64),
            issue_time: t,
            explicit_max_ttl: ttl,
            period: 0,
            renewable: false,
            path: creation_path.to_string(),
            entity_id: String::new(),
            batch: false,
            bound_cidrs: Vec::new(),
            internal_data: Default::default(),
        };
        st.tokens.create(entry.clone()).await?;
        let stored =
            serde_json::to_vec(&json!({ RESPONSE_KEY: text })).map_err(LogicalError::internal)?;
        if let Err(e) = self
            .cubbyhole_of(st, &entry)?
            .put(RESPONSE_KEY, stored)
            .await
        {
            // A token without its answer is of no use: take it back.
            let _ = self.revoke_token_tree(&entry.hash).await;
            return Err(e.into());
        }
        Ok(WrapInfo {
            token: id,
            accessor: entry.accessor,
            ttl,
            creation_time: rfc3339(t),
            creation_path: creation_path.to_string(),
            wrapped_accessor: wrapped_accessor.to_string(),
        })
    }

    /// The storage of a token's cubbyhole.
    fn cubbyhole_of(
        &self,
        st: &Unsealed,
        e: &TokenEntry,
    ) -> Result<std::sync::Arc<dyn arca_sdk::Storage>, LogicalError> {
        let router = st.router.read().clone();
        let (route, _) = router
            .resolve("cubbyhole/")
            .ok_or_else(|| LogicalError::internal("the cubbyhole mount is missing"))?;
        Ok(self.storage_for(&route, Some(e)))
    }

    /// The wrapped answer in a wrapping token's cubbyhole.
    async fn wrapped_text(&self, st: &Unsealed, e: &TokenEntry) -> Result<String, LogicalError> {
        let raw = self
            .cubbyhole_of(st, e)?
            .get(RESPONSE_KEY)
            .await?
            .ok_or_else(invalid_token)?;
        let v: Value = serde_json::from_slice(&raw).map_err(LogicalError::internal)?;
        v[RESPONSE_KEY]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| LogicalError::internal("malformed wrapped response"))
    }

    /// A live wrapping token.
    async fn wrapping_entry(
        &self,
        st: &Unsealed,
        token: &str,
    ) -> Result<std::sync::Arc<TokenEntry>, LogicalError> {
        st.tokens
            .lookup(token, now())
            .await?
            .filter(|e| is_wrapping(e))
            .ok_or_else(invalid_token)
    }

    /// `sys/wrapping/unwrap`: the wrapped answer, once. `given` is the
    /// `token` parameter; empty, the caller's own token must be the
    /// wrapping token (its use was consumed by the request, which revokes
    /// it when done).
    pub(crate) async fn unwrap(
        &self,
        given: &str,
        caller: Option<&str>,
    ) -> Result<Vec<u8>, LogicalError> {
        let st = self.unsealed()?;
        if given.is_empty() {
            let caller = caller.ok_or_else(invalid_token)?;
            let e = self.wrapping_entry(&st, caller).await.map_err(|_| {
                LogicalError::invalid(
                    "no wrapping token: pass token=<wrapping token>, or send the wrapping token as X-Vault-Token",
                )
            })?;
            return Ok(self.wrapped_text(&st, &e).await?.into_bytes());
        }
        self.require_active()?;
        let e = self.wrapping_entry(&st, given).await?;
        if st.tokens.use_token(&e).await?.is_none() {
            return Err(invalid_token());
        }
        let text = self.wrapped_text(&st, &e).await;
        self.revoke_token_tree(&e.hash).await?;
        Ok(text?.into_bytes())
    }

    /// `sys/wrapping/lookup`: what a wrapping token wraps, without using it.
    pub(crate) async fn wrap_lookup(&self, token: &str) -> Result<WrapLookup, LogicalError> {
        let st = self.unsealed()?;
        let e = self.wrapping_entry(&st, token).await?;
        Ok(WrapLookup {
            creation_path: e.path.clone(),
            creation_time: rfc3339(e.creation_time),
            creation_ttl: e.creation_ttl,
        })
    }

    /// `sys/wrapping/rewrap`: the same answer under a new wrapping token
    /// with the same TTL; the old token is used up and revoked.
    pub(crate) async fn rewrap(&self, token: &str) -> Result<WrapInfo, LogicalError> {
        self.require_active()?;
        let st = self.unsealed()?;
        let e = self.wrapping_entry(&st, token).await?;
        if st.tokens.use_token(&e).await?.is_none() {
            return Err(invalid_token());
        }
        let text = self.wrapped_text(&st, &e).await;
        self.revoke_token_tree(&e.hash).await?;
        let text = text?;
        let wrapped_accessor = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["auth"]["accessor"].as_str().map(str::to_string))
            .unwrap_or_default();
        self.wrap_in(&st, &text, e.creation_ttl, &e.path, &wrapped_accessor)
            .await
    }
}
