//! `auth/token/`: create, lookup, renew and revoke tokens.
//!
//! Rules (Vault's): a child's policies default to the parent's and must be a
//! subset of them unless the parent is root; `default` is added unless
//! `no_default_policy`; a root-policy token created without a TTL never
//! expires; renewal never extends past the system max TTL or the token's
//! explicit max TTL, counted from creation; revoking a token revokes its
//! children (except `revoke-orphan`) and deletes the revoked tokens' cubbyholes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use arca_sdk::{
    Auth, Ctx, Field, FieldType, Framework, HandlerResult, LogicalError, Operation, Path, Response,
    SpecialPaths,
};

use crate::core::{now, Core, Unsealed};
use crate::tokens::{effective_ttl, hash_token, new_accessor, new_token_id, TokenEntry};

pub(crate) struct TokenBackend {
    core: Weak<Core>,
}

fn rfc3339(t: i64) -> Value {
    match Utc.timestamp_opt(t, 0).single() {
        Some(d) => Value::from(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => Value::Null,
    }
}

fn auth_of(t: &TokenEntry, id: &str, now_ms: i64) -> Auth {
    Auth {
        policies: t.policies.clone(),
        token_policies: t.policies.clone(),
        metadata: t
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
        display_name: t.display_name.clone(),
        ttl: t.ttl_remaining(now_ms),
        max_ttl: t.explicit_max_ttl,
        period: t.period,
        explicit_max_ttl: t.explicit_max_ttl,
        num_uses: t.num_uses,
        renewable: t.renewable,
        no_default_policy: false,
        client_token: id.to_string(),
        accessor: t.accessor.clone(),
        orphan: t.orphan(),
        entity_id: t.entity_id.clone(),
        bound_cidrs: t.bound_cidrs.clone(),
        token_type: if t.batch { "batch" } else { "service" }.into(),
        internal_data: Default::default(),
        alias: None,
        group_aliases: Vec::new(),
        identity_policies: Vec::new(),
    }
}

/// Batch tokens are not stored: they end at their TTL or with their
/// parent, never on their own (Vault's rule).
fn refuse_batch(t: &TokenEntry) -> Result<(), LogicalError> {
    if t.batch {
        return Err(LogicalError::invalid(
            "batch tokens cannot be revoked: they expire at the end of their TTL, or with their parent",
        ));
    }
    Ok(())
}

/// Is the new token a batch token? From the request's `type` and the
/// role's `token_type` (Vault's rules: a role's `service`/`batch` wins
/// over the request, as the CLI always sends a type; its `default-*` is
/// what a request without a type gets).
fn token_type_of(asked: &str, role: Option<&str>) -> bool {
    let asked = match asked {
        "" | "default" => None,
        other => Some(other == "batch"),
    };
    match (role.unwrap_or(""), asked) {
        ("batch", _) => true,
        ("service", _) => false,
        ("default-batch", None) => true,
        (_, Some(b)) => b,
        _ => false,
    }
}

/// A token's policies without a role: the request's (default: the
/// caller's), a subset of the caller's unless the caller is root, plus
/// `default` unless left out.
fn plain_policies(
    requested: Option<Vec<String>>,
    caller: &TokenEntry,
    no_default: bool,
) -> Result<Vec<String>, LogicalError> {
    let mut policies: Vec<String> = match requested {
        Some(p) if !p.is_empty() => p
            .into_iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => caller.policies.clone(),
    };
    if !caller.is_root() {
        let bad: Vec<&String> = policies
            .iter()
            .filter(|p| *p != "default" && !caller.policies.contains(p))
            .collect();
        if !bad.is_empty() {
            return Err(LogicalError::invalid(format!(
                "child policies must be subset of parent: {bad:?} not held by the calling token"
            )));
        }
    }
    let is_root = policies.iter().any(|p| p == "root");
    if !is_root && !no_default && !policies.iter().any(|p| p == "default") {
        policies.push("default".into());
    }
    policies.sort();
    policies.dedup();
    Ok(policies)
}

impl TokenBackend {
    fn core(&self) -> Result<(Arc<Core>, Arc<Unsealed>), LogicalError> {
        let core = self.core.upgrade().ok_or(LogicalError::Sealed)?;
        let st = core.unsealed()?;
        Ok((core, st))
    }

    async fn create(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let caller = core
            .authenticate(&st, c.req.client_token.as_deref())
            .await?;
        if caller.batch {
            return Err(LogicalError::invalid(
                "batch tokens cannot create more tokens",
            ));
        }
        let orphan_path = c.req.path.starts_with("create-orphan");
        let no_parent = c.data.bool_or("no_parent", false)?;
        let asked_type = c.data.str_or("type", "")?;
        if !matches!(asked_type.as_str(), "" | "default" | "service" | "batch") {
            return Err(LogicalError::invalid(format!(
                "invalid token type {asked_type:?}: use service or batch"
            )));
        }
        // `create/:role_name`, or `role_name` in the body.
        let role_name = c.data.str_or("role_name", "")?.to_lowercase();
        let role = if role_name.is_empty() {
            None
        } else {
            Some(
                crate::token_roles::load(c.storage, &role_name)
                    .await?
                    .ok_or_else(|| LogicalError::invalid(format!("unknown role {role_name}")))?,
            )
        };
        // Vault: orphans made through `create` and periodic tokens need root
        // or sudo on the path the request names (a role's need neither).
        let sudo = caller.is_root()
            || core
                .token_acl(&st, &caller)
                .await?
                .check(
                    &format!("{}{}", c.req.mount_point, c.req.path),
                    "update",
                    None,
                )
                .sudo;
        if no_parent && !orphan_path && !sudo {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to create orphan token",
            ));
        }
        let orphan = orphan_path || no_parent || role.as_ref().is_some_and(|r| r.orphan);

        let no_default = c.data.bool_or("no_default_policy", false)?;
        let requested = c.data.get_list("policies")?;
        let policies = match &role {
            Some(r) => r.policies(requested, &caller.policies, caller.is_root(), no_default)?,
            None => plain_policies(requested, &caller, no_default)?,
        };
        let is_root = policies.iter().any(|p| p == "root");
        let limits = role.as_ref().map(|r| r.token.clone()).unwrap_or_default();
        let batch = token_type_of(
            &asked_type,
            role.as_ref().map(|r| r.token.token_type.as_str()),
        );

        // A role's limits apply; the request may only narrow them.
        let narrow = |asked: u64, limit: u64| {
            if limit > 0 && (asked == 0 || asked > limit) {
                limit
            } else {
                asked
            }
        };
        let num_uses = c.data.get_i64("num_uses")?.unwrap_or(0);
        if num_uses < 0 {
            return Err(LogicalError::invalid("number of uses cannot be negative"));
        }
        let num_uses = narrow(num_uses as u64, limits.token_num_uses.max(0) as u64) as i64;
        let ttl_req = c.data.get_duration("ttl")?.unwrap_or(0);
        let explicit_max = narrow(
            c.data.get_duration("explicit_max_ttl")?.unwrap_or(0),
            limits.token_explicit_max_ttl,
        );
        let asked_period = c.data.get_duration("period")?.unwrap_or(0);
        if asked_period > 0 && limits.token_period == 0 && !sudo {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let mut period = narrow(asked_period, limits.token_period);
        let (mounts_default, mounts_max) = {
            let router = core.router()?;
            let r = router.resolve("auth/token/").map(|(r, _)| r.entry.clone());
            match r {
                Some(e) => (core.mount_default_ttl(&e), core.mount_max_ttl(&e)),
                None => (core.config().default_lease_ttl, core.config().max_lease_ttl),
            }
        };
        let mut warnings = Vec::new();
        if period > 0 && mounts_max > 0 && period > mounts_max {
            warnings.push(format!(
                "period of {period}s exceeded the effective max_ttl of {mounts_max}s; period value is capped accordingly"
            ));
            period = mounts_max;
        }
        let ttl = effective_ttl(
            ttl_req,
            mounts_default,
            mounts_max,
            explicit_max,
            period,
            is_root,
        );
        if ttl_req > 0 && ttl < ttl_req && period == 0 {
            warnings.push(format!(
                "TTL of {ttl_req}s exceeded the effective max_ttl of {ttl}s; TTL value is capped accordingly"
            ));
        }

        let id = match c.data.get_str("id")? {
            Some(id) if !id.is_empty() => {
                if !caller.is_root() {
                    return Err(LogicalError::invalid(
                        "root or sudo privileges required to specify token id",
                    ));
                }
                if st.tokens.lookup(&id, now()).await?.is_some() {
                    return Err(LogicalError::invalid(
                        "cannot create a token with a duplicate ID",
                    ));
                }
                id
            }
            _ => new_token_id(),
        };
        let display = c.data.get_str("display_name")?.unwrap_or_default();
        let display_name = if display.is_empty() {
            "token".to_string()
        } else {
            let clean: String = display
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ch == '-' {
                        ch
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("token-{clean}")
        };
        let meta: BTreeMap<String, String> = c
            .data
            .get_map("meta")?
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        // A child gets its parent's entity; `entity_alias` (through a role
        // that allows it) names another, on the token mount.
        let entity_alias = c.data.str_or("entity_alias", "")?;
        let entity_id = if entity_alias.is_empty() {
            if orphan {
                String::new()
            } else {
                caller.entity_id.clone()
            }
        } else {
            let Some(r) = &role else {
                return Err(LogicalError::invalid(
                    "'entity_alias' is only allowed in combination with token role",
                ));
            };
            if !r.allows_entity_alias(&entity_alias) {
                return Err(LogicalError::invalid("invalid 'entity_alias' value"));
            }
            let alias = arca_sdk::Alias {
                name: entity_alias.clone(),
                metadata: Default::default(),
            };
            st.identity
                .login(&crate::identity::LoginAlias {
                    accessor: &c.req.mount_accessor,
                    local: false,
                    alias: &alias,
                    group_aliases: &[],
                })
                .await?
                .0
        };
        let path = match &role {
            Some(r) if !r.path_suffix.is_empty() => {
                format!("auth/token/create/{role_name}/{}", r.path_suffix)
            }
            Some(_) => format!("auth/token/create/{role_name}"),
            None if orphan_path => "auth/token/create-orphan".into(),
            None => "auth/token/create".into(),
        };
        let renewable = c.data.bool_or("renewable", true)?
            && role.as_ref().is_none_or(|r| r.renewable)
            && ttl > 0;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let t = now_ms.div_euclid(1000);
        let mut entry = TokenEntry {
            hash: hash_token(&id),
            accessor: new_accessor(),
            policies,
            parent: if orphan {
                String::new()
            } else {
                caller.hash.clone()
            },
            meta,
            display_name,
            num_uses,
            creation_time: t,
            creation_ttl: ttl,
            // Rounded up: a token never ends before its full TTL.
            expire_time: if ttl > 0 {
                crate::expiration::expiry(now_ms, ttl)
            } else {
                0
            },
            issue_time: t,
            explicit_max_ttl: explicit_max,
            period,
            renewable,
            path,
            entity_id,
            bound_cidrs: limits.token_bound_cidrs,
            batch: false,
            internal_data: Default::default(),
        };
        let id = if batch {
            if c.data.get_str("id")?.is_some_and(|i| !i.is_empty()) {
                return Err(LogicalError::invalid(
                    "batch tokens cannot have a custom id",
                ));
            }
            entry.batch = true;
            entry.renewable = false;
            entry.accessor = String::new();
            st.tokens.create_batch(&entry).await?
        } else {
            st.tokens.create(entry.clone()).await?;
            id
        };
        Ok(Some(Response {
            auth: Some(auth_of(&entry, &id, now_ms)),
            warnings,
            ..Default::default()
        }))
    }

    fn lookup_data(t: &TokenEntry, id: &str, now_ms: i64, identity: Vec<String>) -> Response {
        let meta = if t.meta.is_empty() {
            Value::Null
        } else {
            Value::Object(
                t.meta
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect(),
            )
        };
        let mut m = json!({
            "accessor": t.accessor,
            "creation_time": t.creation_time,
            "creation_ttl": t.creation_ttl,
            "display_name": t.display_name,
            "entity_id": t.entity_id,
            "expire_time": if t.expire_time == 0 { Value::Null } else { rfc3339(t.expire_time) },
            "explicit_max_ttl": t.explicit_max_ttl,
            "id": id,
            "issue_time": rfc3339(t.creation_time),
            "meta": meta,
            "num_uses": t.num_uses,
            "orphan": t.orphan(),
            "path": t.path,
            "policies": t.policies,
            "renewable": t.renewable,
            "ttl": t.ttl_remaining(now_ms),
            "type": if t.batch { "batch" } else { "service" },
        });
        if t.period > 0 {
            m["period"] = Value::from(t.period);
        }
        if !t.bound_cidrs.is_empty() {
            m["bound_cidrs"] = json!(t.bound_cidrs);
        }
        if !identity.is_empty() {
            m["identity_policies"] = json!(identity);
            m["external_namespace_policies"] = json!({});
        }
        if t.issue_time != t.creation_time {
            m["last_renewal_time"] = Value::from(t.issue_time);
            m["last_renewal"] = rfc3339(t.issue_time);
        }
        Response::json(m)
    }

    async fn lookup(&self, c: Ctx<'_>) -> HandlerResult {
        let (_, st) = self.core()?;
        let id = c.data.get_str("token")?.unwrap_or_default();
        if id.is_empty() {
            return Err(LogicalError::invalid(
                "missing \"token\": give the token to look up",
            ));
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let n = now_ms.div_euclid(1000);
        let t = st
            .tokens
            .lookup(&id, n)
            .await?
            .ok_or(LogicalError::Status {
                status: 403,
                message: "bad token".into(),
            })?;
        Ok(Some(Self::lookup_data(
            &t,
            &id,
            now_ms,
            st.identity.policies_of(&t.entity_id).await?,
        )))
    }

    async fn lookup_self(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let id = c.req.client_token.clone().unwrap_or_default();
        let t = core.authenticate(&st, Some(&id)).await?;
        Ok(Some(Self::lookup_data(
            &t,
            &id,
            now_ms,
            st.identity.policies_of(&t.entity_id).await?,
        )))
    }

    async fn lookup_accessor(&self, c: Ctx<'_>) -> HandlerResult {
        let (_, st) = self.core()?;
        let acc = c.data.get_str("accessor")?.unwrap_or_default();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let n = now_ms.div_euclid(1000);
        let t = st
            .tokens
            .lookup_accessor(&acc, n)
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid accessor"))?;
        Ok(Some(Self::lookup_data(
            &t,
            "",
            now_ms,
            st.identity.policies_of(&t.entity_id).await?,
        )))
    }

    async fn renew_entry(
        &self,
        st: &Unsealed,
        core: &Core,
        t: &TokenEntry,
        id: &str,
        inc: u64,
        conn: Option<&arca_sdk::Connection>,
    ) -> HandlerResult {
        if t.batch {
            return Err(LogicalError::invalid("batch tokens cannot be renewed"));
        }
        if !t.renewable {
            return Err(LogicalError::invalid("lease is not renewable"));
        }
        let method = core.auth_renew_check(st, t, inc, conn).await?;
        // A method that reports the user's groups again (LDAP, JWT) keeps
        // the entity's external groups in step.
        if let Some(a) = method.as_ref().filter(|a| a.alias.is_some()) {
            if let (Some(alias), Some((route, _))) = (&a.alias, core.router()?.resolve(&t.path)) {
                if !t.entity_id.is_empty() {
                    st.identity
                        .refresh_groups(
                            &t.entity_id,
                            &crate::identity::LoginAlias {
                                accessor: &route.entry.accessor,
                                local: route.entry.local,
                                alias,
                                group_aliases: &a.group_aliases,
                            },
                        )
                        .await?;
                }
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let n = now_ms.div_euclid(1000);
        let router = core.router()?;
        // The limits of the mount that issued the token (a login's auth
        // mount, else the token store's).
        let max = router
            .resolve(&t.path)
            .filter(|(r, _)| r.auth)
            .or_else(|| router.resolve("auth/token/"))
            .map(|(r, _)| core.mount_max_ttl(&r.entry))
            .unwrap_or(core.config().max_lease_ttl);
        // A periodic token has no maximum life (only an explicit max TTL);
        // each renewal gives it its period, capped by the mount's max TTL.
        let mut limit = if max > 0 && t.period == 0 {
            t.creation_time + max as i64
        } else {
            i64::MAX
        };
        if let Some(hard) = t.hard_limit() {
            limit = limit.min(hard);
        }
        // The auth method's own max TTL for this login (a user's
        // token_max_ttl) caps it too.
        if let Some(m) = method.as_ref().filter(|a| a.max_ttl > 0 && t.period == 0) {
            limit = limit.min(t.creation_time + m.max_ttl as i64);
        }
        let wanted = if t.period > 0 {
            if max > 0 {
                t.period.min(max)
            } else {
                t.period
            }
        } else if inc > 0 {
            inc
        } else {
            t.creation_ttl
        };
        let new_expire = crate::expiration::expiry(now_ms, wanted).min(limit);
        let mut warnings = Vec::new();
        if new_expire < n + wanted as i64 {
            warnings.push(format!(
                "TTL of {wanted}s exceeded the effective max_ttl of {}s; TTL value is capped accordingly",
                (new_expire - n).max(0)
            ));
        }
        // Under the store's lock, on the stored entry: a use or a revoke
        // racing with this renewal is not undone by it.
        let e = st
            .tokens
            .modify(&t.hash, |e| {
                e.expire_time = new_expire;
                e.issue_time = n;
            })
            .await?
            .ok_or(LogicalError::PermissionDenied)?;
        Ok(Some(Response {
            auth: Some(auth_of(&e, id, now_ms)),
            warnings,
            ..Default::default()
        }))
    }

    async fn renew(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let id = c.data.get_str("token")?.unwrap_or_default();
        let t = st
            .tokens
            .lookup(&id, now())
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid token"))?;
        let inc = c.data.get_duration("increment")?.unwrap_or(0);
        self.renew_entry(&st, &core, &t, &id, inc, c.req.connection.as_ref())
            .await
    }

    async fn renew_self(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let id = c.req.client_token.clone().unwrap_or_default();
        let t = core.authenticate(&st, Some(&id)).await?;
        let inc = c.data.get_duration("increment")?.unwrap_or(0);
        self.renew_entry(&st, &core, &t, &id, inc, c.req.connection.as_ref())
            .await
    }

    async fn renew_accessor(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let acc = c.data.get_str("accessor")?.unwrap_or_default();
        let t = st
            .tokens
            .lookup_accessor(&acc, now())
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid accessor"))?;
        let inc = c.data.get_duration("increment")?.unwrap_or(0);
        self.renew_entry(&st, &core, &t, "", inc, c.req.connection.as_ref())
            .await
    }

    async fn revoke(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let id = c.data.get_str("token")?.unwrap_or_default();
        if id.is_empty() {
            return Err(LogicalError::invalid(
                "missing \"token\": give the token to revoke",
            ));
        }
        if let Some(t) = st.tokens.lookup(&id, now()).await? {
            refuse_batch(&t)?;
            core.revoke_token_tree(&t.hash).await?;
        }
        Ok(None)
    }

    async fn revoke_self(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let t = core
            .authenticate(&st, c.req.client_token.as_deref())
            .await?;
        refuse_batch(&t)?;
        core.revoke_token_tree(&t.hash).await?;
        Ok(None)
    }

    async fn revoke_accessor(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let acc = c.data.get_str("accessor")?.unwrap_or_default();
        let t = st
            .tokens
            .lookup_accessor(&acc, now())
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid accessor"))?;
        core.revoke_token_tree(&t.hash).await?;
        Ok(None)
    }

    async fn revoke_orphan(&self, c: Ctx<'_>) -> HandlerResult {
        let (core, st) = self.core()?;
        let id = c.data.get_str("token")?.unwrap_or_default();
        let t = st
            .tokens
            .lookup(&id, now())
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid token"))?;
        refuse_batch(&t)?;
        let revoked = st.tokens.revoke_orphan(&t.hash).await?;
        core.after_token_revocation(&revoked).await?;
        Ok(None)
    }

    async fn accessors(&self, _c: Ctx<'_>) -> HandlerResult {
        let (_, st) = self.core()?;
        Ok(Some(Response::list(st.tokens.accessors().await?)))
    }
}

impl Core {
    /// Deletes the cubbyholes of revoked tokens.
    pub(crate) async fn purge_cubbyholes(&self, hashes: &[String]) -> Result<(), LogicalError> {
        let router = self.router()?;
        let Some((route, _)) = router.resolve("cubbyhole/") else {
            return Ok(());
        };
        for h in hashes {
            self.purge_prefix(&format!("{}{h}/", route.entry.storage_prefix(false)))
                .await?;
        }
        Ok(())
    }
}

fn token_field() -> Field {
    Field::new("token", FieldType::String, "The token.").sensitive()
}

fn increment_field() -> Field {
    Field::new(
        "increment",
        FieldType::Duration,
        "The requested TTL extension.",
    )
    .default(0)
}

pub(crate) fn backend(core: Weak<Core>) -> Framework<TokenBackend> {
    let create_fields = |p: Path<TokenBackend>| {
        p.field(Field::new(
            "role_name",
            FieldType::String,
            "Token role to create the token with (see auth/token/roles).",
        ))
        .field(Field::new(
            "id",
            FieldType::String,
            "Token id to use (root only).",
        ))
        .field(Field::new(
            "policies",
            FieldType::CommaStringSlice,
            "Policies of the new token.",
        ))
        .field(Field::new(
            "meta",
            FieldType::StringMap,
            "Metadata of the new token.",
        ))
        .field(Field::new(
            "no_parent",
            FieldType::Bool,
            "Create an orphan token.",
        ))
        .field(Field::new(
            "no_default_policy",
            FieldType::Bool,
            "Leave out the default policy.",
        ))
        .field(
            Field::new(
                "renewable",
                FieldType::Bool,
                "Whether the token can be renewed.",
            )
            .default(true),
        )
        .field(Field::new("ttl", FieldType::Duration, "Initial TTL."))
        .field(Field::new(
            "type",
            FieldType::String,
            "Token type (service).",
        ))
        .field(Field::new(
            "explicit_max_ttl",
            FieldType::Duration,
            "Hard limit on the token's life.",
        ))
        .field(Field::new(
            "display_name",
            FieldType::String,
            "Display name.",
        ))
        .field(Field::new(
            "num_uses",
            FieldType::Int,
            "Maximum number of uses (0 = unlimited).",
        ))
        .field(Field::new(
            "period",
            FieldType::Duration,
            "Renewal period for a periodic token.",
        ))
        .field(Field::new(
            "entity_alias",
            FieldType::String,
            "Entity alias of the token (not available yet: identity is not built).",
        ))
        .field(Field::new(
            "lease",
            FieldType::Duration,
            "Deprecated alias of ttl.",
        ))
        .op(Operation::Update, |b: &TokenBackend, c| {
            Box::pin(b.create(c))
        })
    };
    let mut paths = vec![
        create_fields(Path::new("create-orphan")).help("Create an orphan token."),
        create_fields(Path::new(concat!(
            "create/",
            crate::token_roles::token_role_name!()
        )))
        .help("Create a token with a token role's settings."),
        create_fields(Path::new("create")).help("Create a child token of the calling token."),
        Path::new("lookup")
            .field(token_field())
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.lookup(c))
            })
            .op(Operation::Read, |b: &TokenBackend, c| Box::pin(b.lookup(c)))
            .help("Look up a token's properties."),
        Path::new("lookup-self")
            .field(token_field())
            .op(Operation::Read, |b: &TokenBackend, c| {
                Box::pin(b.lookup_self(c))
            })
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.lookup_self(c))
            })
            .help("Look up the calling token."),
        Path::new("lookup-accessor")
            .field(Field::new(
                "accessor",
                FieldType::String,
                "Accessor of the token.",
            ))
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.lookup_accessor(c))
            })
            .help("Look up a token by accessor; the id is not returned."),
        Path::new("renew")
            .field(token_field())
            .field(increment_field())
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.renew(c))
            })
            .help("Renew a token."),
        Path::new("renew-self")
            .field(token_field())
            .field(increment_field())
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.renew_self(c))
            })
            .help("Renew the calling token."),
        Path::new("renew-accessor")
            .field(Field::new(
                "accessor",
                FieldType::String,
                "Accessor of the token.",
            ))
            .field(increment_field())
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.renew_accessor(c))
            })
            .help("Renew a token by accessor."),
        Path::new("revoke")
            .field(token_field())
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.revoke(c))
            })
            .help("Revoke a token and its children."),
        Path::new("revoke-self")
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.revoke_self(c))
            })
            .help("Revoke the calling token and its children."),
        Path::new("revoke-accessor")
            .field(Field::new(
                "accessor",
                FieldType::String,
                "Accessor of the token.",
            ))
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.revoke_accessor(c))
            })
            .help("Revoke a token by accessor, with its children."),
        Path::new("revoke-orphan")
            .field(token_field())
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.revoke_orphan(c))
            })
            .help("Revoke a token; its children become orphans."),
        Path::new("accessors/?")
            .op(Operation::List, |b: &TokenBackend, c| {
                Box::pin(b.accessors(c))
            })
            .help("List token accessors."),
    ];
    paths.extend(crate::token_roles::paths());
    Framework::new("token", TokenBackend { core }, paths).with_special_paths(SpecialPaths {
        root: vec![
            "revoke-orphan".into(),
            "accessors/".into(),
            "accessors".into(),
        ],
        ..Default::default()
    })
}
