//! Token roles: `auth/token/roles` (LIST) and `auth/token/roles/:role_name`
//! (create, update, read, delete), used by `auth/token/create/:role_name`
//! (`bao token create -role=...`), following Vault's token store roles.
//!
//! Invariants:
//! - A role lets its users create tokens with the role's allowed policies
//!   even when they do not hold them (that is its purpose), never a
//!   disallowed one, and never `root`; without allowed lists the usual
//!   rule holds (a subset of the caller's policies).
//! - Orphan and periodic tokens through a role need no sudo: the role's
//!   author decided. The role's explicit max TTL, use limit and bound
//!   CIDRs always apply; a request can narrow them, never widen them.
//! - Tokens get the path `auth/token/create/<role>[/<path_suffix>]`, so
//!   `sys/leases/revoke-prefix` can revoke a role's tokens.
//! - A role's `token_type` `service`/`batch` wins over the request's
//!   `type`; `default-service` / `default-batch` is what a request that
//!   names no type gets.
//! - `entity_alias` on create binds the token to the identity entity of
//!   that alias on the token mount (created if new), only when the role's
//!   `allowed_entity_aliases` match it.
//!
//! Roles live in the token mount's own storage (`roles/<name>`),
//! encrypted by the barrier and replicated.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::TokenParams;
use arca_sdk::{
    cidr, glob, Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response,
    Storage,
};

use crate::token_paths::TokenBackend;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct TokenRole {
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    /// Lowercased; globs allowed.
    pub allowed_entity_aliases: Vec<String>,
    /// `token_bound_cidrs`, `token_explicit_max_ttl`, `token_period`,
    /// `token_no_default_policy`, `token_num_uses`, `token_type` (the
    /// other token fields are not token-role settings).
    #[serde(flatten)]
    pub token: TokenParams,
}

/// A role name, as Vault accepts it.
macro_rules! token_role_name {
    () => {
        r"(?P<role_name>\w(?:[\w.-]*\w)?)"
    };
}
pub(crate) use token_role_name;

fn key(name: &str) -> String {
    format!("roles/{}", name.to_lowercase())
}

pub(crate) async fn load(s: &dyn Storage, name: &str) -> Result<Option<TokenRole>, LogicalError> {
    Ok(get_json(s, &key(name)).await?)
}

/// The role fields.
pub(crate) fn fields() -> Vec<Field> {
    use FieldType::*;
    let token_fields = [
        "token_bound_cidrs",
        "bound_cidrs",
        "token_explicit_max_ttl",
        "explicit_max_ttl",
        "token_period",
        "period",
        "token_no_default_policy",
        "token_num_uses",
        "token_type",
    ];
    let mut v = vec![
        Field::new("role_name", String, "Name of the role."),
        Field::new(
            "allowed_policies",
            CommaStringSlice,
            "Policies tokens of this role may have (even ones the caller lacks).",
        ),
        Field::new(
            "disallowed_policies",
            CommaStringSlice,
            "Policies tokens of this role may never have.",
        ),
        Field::new(
            "allowed_policies_glob",
            CommaStringSlice,
            "Globs of policies tokens of this role may have.",
        ),
        Field::new(
            "disallowed_policies_glob",
            CommaStringSlice,
            "Globs of policies tokens of this role may never have.",
        ),
        Field::new("orphan", Bool, "Tokens of this role have no parent."),
        Field::new("renewable", Bool, "Tokens of this role can be renewed.").default(true),
        Field::new(
            "path_suffix",
            String,
            "Suffix of the tokens' path after the role name.",
        ),
        Field::new(
            "allowed_entity_aliases",
            CommaStringSlice,
            "Entity aliases (globs allowed) tokens of this role may be created for (entity_alias).",
        ),
    ];
    v.extend(
        arca_sdk::token_fields::fields()
            .into_iter()
            .filter(|f| token_fields.contains(&f.name)),
    );
    v
}

pub(crate) fn paths() -> Vec<Path<TokenBackend>> {
    let mut role = Path::new(concat!("roles/", token_role_name!()));
    for f in fields() {
        role = role.field(f);
    }
    vec![
        Path::new("roles/?")
            .op(Operation::List, |b: &TokenBackend, c| {
                Box::pin(b.list_roles(c))
            })
            .help("List the token roles."),
        role.existence(|b: &TokenBackend, c| Box::pin(b.role_exists(c)))
            .op(Operation::Create, |b: &TokenBackend, c| {
                Box::pin(b.write_role(c))
            })
            .op(Operation::Update, |b: &TokenBackend, c| {
                Box::pin(b.write_role(c))
            })
            .op(Operation::Read, |b: &TokenBackend, c| {
                Box::pin(b.read_role(c))
            })
            .op(Operation::Delete, |b: &TokenBackend, c| {
                Box::pin(b.delete_role(c))
            })
            .help("Create, read, update or delete a token role."),
    ]
}

impl TokenRole {
    /// Whether `entity_alias` may be used with this role.
    pub(crate) fn allows_entity_alias(&self, alias: &str) -> bool {
        let alias = alias.to_lowercase();
        self.allowed_entity_aliases
            .iter()
            .any(|g| glob::matches(g, &alias))
    }

    fn to_json(&self, name: &str) -> Map<String, Value> {
        let token_type = if self.token.token_type.is_empty() {
            "default-service"
        } else {
            self.token.token_type.as_str()
        };
        match json!({
            "name": name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "allowed_entity_aliases": self.allowed_entity_aliases,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "token_bound_cidrs": self.token.token_bound_cidrs,
            "token_explicit_max_ttl": self.token.token_explicit_max_ttl,
            "explicit_max_ttl": self.token.token_explicit_max_ttl,
            "token_no_default_policy": self.token.token_no_default_policy,
            "token_num_uses": self.token.token_num_uses,
            "token_period": self.token.token_period,
            "period": self.token.token_period,
            "token_type": token_type,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The policies a token created through this role gets, from the
    /// request's (`None`: not given) and the caller's policies.
    pub(crate) fn policies(
        &self,
        requested: Option<Vec<String>>,
        caller: &[String],
        caller_is_root: bool,
        no_default: bool,
    ) -> Result<Vec<String>, LogicalError> {
        let disallowed = |p: &str| {
            self.disallowed_policies.iter().any(|d| d == p)
                || self
                    .disallowed_policies_glob
                    .iter()
                    .any(|g| glob::matches(g, p))
        };
        let restricted =
            !self.allowed_policies.is_empty() || !self.allowed_policies_glob.is_empty();
        let mut policies = match requested.map(arca_sdk::token_fields::clean_policies) {
            Some(p) if !p.is_empty() => p,
            _ if restricted => self.allowed_policies.clone(),
            // Without allowed lists: the caller's, minus the disallowed.
            _ => caller.iter().filter(|p| !disallowed(p)).cloned().collect(),
        };
        if policies.iter().any(|p| p == "root") {
            return Err(LogicalError::invalid(
                "root tokens may not be created from a token role",
            ));
        }
        if restricted {
            let outside: Vec<&String> = policies
                .iter()
                .filter(|p| *p != "default")
                .filter(|p| {
                    !self.allowed_policies.contains(p)
                        && !self
                            .allowed_policies_glob
                            .iter()
                            .any(|g| glob::matches(g, p))
                })
                .collect();
            if !outside.is_empty() {
                return Err(LogicalError::invalid(format!(
                    "token policies {outside:?} must be a subset of the role's allowed policies {:?} (or match allowed_policies_glob {:?})",
                    self.allowed_policies, self.allowed_policies_glob
                )));
            }
        } else if !caller_is_root {
            let outside: Vec<&String> = policies
                .iter()
                .filter(|p| *p != "default" && !caller.contains(p))
                .collect();
            if !outside.is_empty() {
                return Err(LogicalError::invalid(format!(
                    "child policies must be subset of parent: {outside:?} not held by the calling token"
                )));
            }
        }
        let banned: Vec<&String> = policies.iter().filter(|p| disallowed(p)).collect();
        if !banned.is_empty() {
            return Err(LogicalError::invalid(format!(
                "token policies {banned:?} are disallowed by the role"
            )));
        }
        if !no_default
            && !self.token.token_no_default_policy
            && !disallowed("default")
            && !policies.iter().any(|p| p == "default")
        {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        Ok(policies)
    }
}

impl TokenBackend {
    async fn list_roles(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("roles/").await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        Ok(Some(Response::list(keys)))
    }

    async fn role_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let name = c.data.str_or("role_name", "")?;
        Ok(load(c.storage, &name).await?.is_some())
    }

    async fn write_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("role_name", "")?.to_lowercase();
        if name.is_empty() {
            return Err(LogicalError::invalid("missing role_name"));
        }
        let existing = load(c.storage, &name).await?;
        let creating = existing.is_none();
        let mut role = existing.unwrap_or(TokenRole {
            renewable: true,
            ..Default::default()
        });
        let d = &c.data;
        if let Some(v) = d.get_list("allowed_entity_aliases")? {
            let mut v: Vec<String> = v
                .into_iter()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect();
            v.sort();
            v.dedup();
            role.allowed_entity_aliases = v;
        }
        // A role declares only some token fields; the update reads them all
        // (the others are absent: the path refuses them).
        let all: Vec<Field> = arca_sdk::token_fields::fields();
        role.token
            .update(&arca_sdk::FieldData::new(d.raw().clone(), &all))?;
        if let Some(v) = d.get_list("allowed_policies")? {
            role.allowed_policies = arca_sdk::token_fields::clean_policies(v);
        }
        if let Some(v) = d.get_list("disallowed_policies")? {
            role.disallowed_policies = arca_sdk::token_fields::clean_policies(v);
        }
        if let Some(v) = d.get_list("allowed_policies_glob")? {
            role.allowed_policies_glob = arca_sdk::token_fields::clean_policies(v);
        }
        if let Some(v) = d.get_list("disallowed_policies_glob")? {
            role.disallowed_policies_glob = arca_sdk::token_fields::clean_policies(v);
        }
        if let Some(v) = d.get_bool("orphan")? {
            role.orphan = v;
        }
        // (`get_bool` answers the declared default for an absent field.)
        if d.is_set("renewable") {
            role.renewable = d.bool_or("renewable", true)?;
        } else if creating {
            role.renewable = true;
        }
        if let Some(v) = d.get_str("path_suffix")? {
            if v.contains("..") {
                return Err(LogicalError::invalid("path_suffix cannot contain '..'"));
            }
            role.path_suffix = v.trim_matches('/').to_string();
        }
        if role.allowed_policies.iter().any(|p| p == "root") {
            return Err(LogicalError::invalid(
                "a token role cannot allow the root policy",
            ));
        }
        // Validated again here so a stored role always parses.
        cidr::parse(&role.token.token_bound_cidrs)?;
        put_json(c.storage, &key(&name), &role).await?;
        Ok(None)
    }

    async fn read_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("role_name", "")?.to_lowercase();
        Ok(load(c.storage, &name)
            .await?
            .map(|r| Response::data(r.to_json(&name))))
    }

    async fn delete_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("role_name", "")?;
        c.storage.delete(&key(&name)).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allowed_lists_replace_the_subset_rule() {
        let r = TokenRole {
            allowed_policies: v(&["app", "db"]),
            allowed_policies_glob: v(&["team-*"]),
            disallowed_policies: v(&["secret"]),
            renewable: true,
            ..Default::default()
        };
        // Policies the caller lacks are fine when the role allows them.
        assert_eq!(
            r.policies(Some(v(&["db", "team-x"])), &v(&["default"]), false, false)
                .unwrap(),
            v(&["db", "default", "team-x"])
        );
        // Nothing requested: the allowed list (globs are not expanded).
        assert_eq!(
            r.policies(None, &v(&[]), false, false).unwrap(),
            v(&["app", "db", "default"])
        );
        assert!(r
            .policies(Some(v(&["other"])), &v(&["other"]), false, false)
            .is_err());
        assert!(r
            .policies(Some(v(&["root"])), &v(&["root"]), true, false)
            .is_err());
    }

    #[test]
    fn without_allowed_lists_the_caller_bounds_and_disallowed_are_removed() {
        let r = TokenRole {
            disallowed_policies: v(&["secret"]),
            disallowed_policies_glob: v(&["def*"]),
            ..Default::default()
        };
        let caller = v(&["app", "default", "secret"]);
        assert_eq!(
            r.policies(None, &caller, false, false).unwrap(),
            v(&["app"])
        );
        assert!(r.policies(Some(v(&["db"])), &caller, false, false).is_err());
        assert!(r
            .policies(Some(v(&["secret"])), &caller, false, false)
            .is_err());
    }
}
