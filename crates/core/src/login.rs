//! The login flow: an auth method's login path answers with an [`Auth`];
//! core mints the token.
//!
//! Invariants:
//! - Only core creates tokens: a backend says who logged in (policies,
//!   metadata, TTLs, display name); core stores the token, caps its TTL by
//!   the auth mount's (or the server's) limits with a warning, and lists it
//!   in the token store's time index, so the expiration manager revokes it
//!   when it expires.
//! - Login tokens are orphans (no parent token), carry `default` unless the
//!   method set `no_default_policy`, and remember the login path: renewing
//!   one first asks the method's auth-renew callback, which may refuse (a
//!   deleted user, a changed role).
//! - The token id is returned once, in the response, and never stored.
//! - A login whose method names an alias gets the alias' identity entity
//!   (created on first login); the token carries the entity id, and the
//!   entity's and its groups' policies apply at request time.

use arca_sdk::{Auth, LogicalError, Operation, Request};

use crate::core::{Core, Unsealed};
use crate::router::Route;
use crate::tokens::{effective_ttl, hash_token, new_accessor, new_token_id, TokenEntry};

impl Core {
    /// Turns a login's [`Auth`] into a token; returns the `Auth` the client
    /// sees (token id, accessor, granted TTL).
    pub(crate) async fn login(
        &self,
        st: &Unsealed,
        route: &Route,
        request_path: &str,
        auth: Auth,
        warnings: &mut Vec<String>,
    ) -> Result<Auth, LogicalError> {
        // The method's answer (its role's or user's `token_type`) within
        // the mount's: `service`/`batch` on the mount are binding,
        // `default-*` is what a login that asks for nothing gets.
        let asked = match auth.token_type.as_str() {
            "" | "default" => None,
            "service" | "default-service" => Some(false),
            "batch" | "default-batch" => Some(true),
            other => {
                return Err(LogicalError::invalid(format!(
                    "unknown token_type {other:?}: use service or batch"
                )))
            }
        };
        let batch = match (route.entry.config.token_type.as_str(), asked) {
            ("service", _) => false,
            ("batch", _) => true,
            ("default-batch", None) => true,
            (_, Some(b)) => b,
            _ => false,
        };
        // A batch token is not stored: a standby issues it where the
        // login arrived. A service token is written by the active node.
        if !batch {
            self.require_active()?;
        }
        let mut policies: Vec<String> = auth
            .policies
            .iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if policies.iter().any(|p| p == "root") {
            return Err(LogicalError::invalid(
                "an auth method cannot grant the root policy",
            ));
        }
        if !auth.no_default_policy && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        // Who logged in: the entity of the method's alias (created on the
        // first login), its external groups refreshed from the method's
        // group aliases; a disabled entity cannot log in.
        let (entity_id, identity_policies) = match &auth.alias {
            Some(alias) => {
                st.identity
                    .login(&crate::identity::LoginAlias {
                        accessor: &route.entry.accessor,
                        local: route.entry.local,
                        alias,
                        group_aliases: &auth.group_aliases,
                    })
                    .await?
            }
            None => (auth.entity_id.clone(), Vec::new()),
        };
        let default = self.mount_default_ttl(&route.entry);
        let max = self.mount_max_ttl(&route.entry);
        let max = if auth.max_ttl > 0 {
            auth.max_ttl.min(max)
        } else {
            max
        };
        let mut period = auth.period;
        if period > 0 && max > 0 && period > max {
            warnings.push(format!(
                "period of {period}s exceeded the effective max_ttl of {max}s; period value is capped accordingly"
            ));
            period = max;
        }
        let ttl = effective_ttl(auth.ttl, default, max, auth.explicit_max_ttl, period, false);
        if auth.ttl > 0 && ttl < auth.ttl && period == 0 {
            warnings.push(format!(
                "TTL of {}s exceeded the effective max_ttl of {ttl}s; TTL value is capped accordingly",
                auth.ttl
            ));
        }
        // `userpass-bob`, as Vault names login tokens.
        let source = route
            .full_path
            .trim_start_matches("auth/")
            .trim_end_matches('/')
            .replace('/', "-");
        let display_name = if auth.display_name.is_empty() {
            source
        } else {
            format!("{source}-{}", auth.display_name)
        };
        let mut id = new_token_id();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let t = now_ms.div_euclid(1000);
        let mut entry = TokenEntry {
            hash: hash_token(&id),
            accessor: new_accessor(),
            policies: policies.clone(),
            parent: String::new(),
            meta: auth.metadata.clone().into_iter().collect(),
            display_name,
            num_uses: auth.num_uses.max(0),
            creation_time: t,
            creation_ttl: ttl,
            // Rounded up: a token never ends before its full TTL.
            expire_time: if ttl > 0 {
                crate::expiration::expiry(now_ms, ttl)
            } else {
                0
            },
            issue_time: t,
            explicit_max_ttl: auth.explicit_max_ttl,
            period,
            renewable: auth.renewable && ttl > 0,
            path: request_path.to_string(),
            entity_id,
            bound_cidrs: auth.bound_cidrs.clone(),
            batch,
            internal_data: auth.internal_data.clone(),
        };
        if batch {
            entry.renewable = false;
            entry.accessor = String::new();
            id = st.tokens.create_batch(&entry).await?;
        } else {
            st.tokens.create(entry.clone()).await?;
        }
        let mut all_policies = policies.clone();
        all_policies.extend(identity_policies.iter().cloned());
        all_policies.sort();
        all_policies.dedup();
        Ok(Auth {
            policies: all_policies,
            token_policies: policies,
            identity_policies,
            metadata: auth.metadata,
            display_name: entry.display_name,
            ttl,
            max_ttl: auth.max_ttl,
            period,
            explicit_max_ttl: auth.explicit_max_ttl,
            num_uses: entry.num_uses,
            renewable: entry.renewable,
            no_default_policy: auth.no_default_policy,
            client_token: id,
            accessor: entry.accessor,
            orphan: true,
            entity_id: entry.entity_id,
            bound_cidrs: entry.bound_cidrs,
            token_type: if batch { "batch" } else { "service" }.into(),
            internal_data: Default::default(),
            alias: None,
            group_aliases: Vec::new(),
        })
    }

    /// Before a login token is renewed: its auth method's renew callback
    /// (an error refuses the renewal; an `Auth` in its answer carries the
    /// method's current limits, e.g. the user's max TTL). Tokens of the
    /// token store pass with no limits.
    pub(crate) async fn auth_renew_check(
        &self,
        st: &Unsealed,
        t: &TokenEntry,
        increment: u64,
        connection: Option<&arca_sdk::Connection>,
    ) -> Result<Option<Auth>, LogicalError> {
        if t.path.starts_with("auth/token/") || !t.path.starts_with("auth/") {
            return Ok(None);
        }
        let router = st.router.read().clone();
        let Some((route, rel)) = router.resolve(&t.path) else {
            return Err(LogicalError::invalid(
                "the auth method that issued this token is no longer mounted",
            ));
        };
        let mut req = Request::new(Operation::Renew, rel);
        req.id = uuid::Uuid::new_v4().to_string();
        // The renewing client's connection (a cert login checks that the
        // same certificate is presented).
        req.connection = connection.cloned();
        req.mount_point = route.full_path.clone();
        req.mount_type = route.entry.kind.clone();
        req.mount_accessor = route.entry.accessor.clone();
        req.display_name = t.display_name.clone();
        req.auth = Some(Auth {
            policies: t.policies.clone(),
            token_policies: t.policies.clone(),
            metadata: t.meta.clone().into_iter().collect(),
            display_name: t.display_name.clone(),
            ttl: increment,
            period: t.period,
            explicit_max_ttl: t.explicit_max_ttl,
            renewable: t.renewable,
            accessor: t.accessor.clone(),
            entity_id: t.entity_id.clone(),
            bound_cidrs: t.bound_cidrs.clone(),
            token_type: "service".into(),
            internal_data: t.internal_data.clone(),
            ..Default::default()
        });
        let r = route.backend.handle(&req, route.storage.as_ref()).await?;
        Ok(r.and_then(|r| r.auth))
    }
}
