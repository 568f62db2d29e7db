//! `groups/:name` and `users/:name` (LIST both): the policies an LDAP
//! group or user gets here, and extra groups for a user.
//!
//! Invariants:
//! - Names are stored lower-cased unless `config.case_sensitive_names`
//!   (as of the write; Vault does not rename entries when it changes),
//!   and looked up the same way, so a login finds the entry its group or
//!   username names.
//! - Policies are trimmed, lower-cased, sorted and de-duplicated.

use serde::{Deserialize, Serialize};
use serde_json::json;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::clean_policies;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::{config, Ldap};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct GroupEntry {
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct UserEntry {
    pub policies: Vec<String>,
    pub groups: Vec<String>,
}

pub(crate) async fn group(
    s: &dyn arca_sdk::Storage,
    name: &str,
) -> Result<Option<GroupEntry>, LogicalError> {
    Ok(get_json(s, &format!("group/{name}")).await?)
}

pub(crate) async fn user(
    s: &dyn arca_sdk::Storage,
    name: &str,
) -> Result<Option<UserEntry>, LogicalError> {
    Ok(get_json(s, &format!("user/{name}")).await?)
}

/// Every key under `prefix`, recursively (names may hold `/`), sorted.
async fn list_all(s: &dyn arca_sdk::Storage, prefix: &str) -> Result<Vec<String>, LogicalError> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        for k in s.list(&format!("{prefix}{dir}")).await? {
            if k.ends_with('/') {
                stack.push(format!("{dir}{k}"));
            } else {
                out.push(format!("{dir}{k}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn name_field(what: &'static str) -> Field {
    Field::new("name", FieldType::String, what)
}

fn policies_field(what: &'static str) -> Field {
    Field::new("policies", FieldType::CommaStringSlice, what)
}

pub(crate) fn paths() -> Vec<Path<Ldap>> {
    vec![
        Path::new("groups/?")
            .op(Operation::List, |b: &Ldap, c| Box::pin(b.list(c, "group/")))
            .help("List the LDAP groups that have policies here."),
        Path::new("groups/(?P<name>.+)")
            .field(name_field("Name of the LDAP group."))
            .field(policies_field(
                "Policies of the group's members (comma-separated or a list).",
            ))
            .existence(|b: &Ldap, c| Box::pin(b.exists(c, "group/")))
            .op(Operation::Create, |b: &Ldap, c| Box::pin(b.write_group(c)))
            .op(Operation::Update, |b: &Ldap, c| Box::pin(b.write_group(c)))
            .op(Operation::Read, |b: &Ldap, c| Box::pin(b.read_group(c)))
            .op(Operation::Delete, |b: &Ldap, c| {
                Box::pin(b.delete(c, "group/"))
            })
            .help("Create, read, update or delete the policies of an LDAP group."),
        Path::new("users/?")
            .op(Operation::List, |b: &Ldap, c| Box::pin(b.list(c, "user/")))
            .help("List the LDAP users that have policies or groups here."),
        Path::new("users/(?P<name>.+)")
            .field(name_field("Username of the LDAP user."))
            .field(policies_field(
                "Policies of the user (comma-separated or a list).",
            ))
            .field(Field::new(
                "groups",
                FieldType::CommaStringSlice,
                "Groups the user belongs to here, in addition to its LDAP groups.",
            ))
            .existence(|b: &Ldap, c| Box::pin(b.exists(c, "user/")))
            .op(Operation::Create, |b: &Ldap, c| Box::pin(b.write_user(c)))
            .op(Operation::Update, |b: &Ldap, c| Box::pin(b.write_user(c)))
            .op(Operation::Read, |b: &Ldap, c| Box::pin(b.read_user(c)))
            .op(Operation::Delete, |b: &Ldap, c| {
                Box::pin(b.delete(c, "user/"))
            })
            .help("Create, read, update or delete the policies and extra groups of an LDAP user."),
    ]
}

impl Ldap {
    /// The entry name of the request, as stored.
    async fn entry_name(&self, c: &Ctx<'_>) -> Result<String, LogicalError> {
        let name = c.data.str_or("name", "")?;
        if name.trim().is_empty() {
            return Err(LogicalError::invalid("missing name"));
        }
        Ok(config::load_or_default(c.storage).await?.canonical(&name))
    }

    async fn exists(&self, c: Ctx<'_>, prefix: &str) -> Result<bool, LogicalError> {
        let name = self.entry_name(&c).await?;
        Ok(c.storage.get(&format!("{prefix}{name}")).await?.is_some())
    }

    async fn list(&self, c: Ctx<'_>, prefix: &str) -> HandlerResult {
        Ok(Some(Response::list(list_all(c.storage, prefix).await?)))
    }

    async fn delete(&self, c: Ctx<'_>, prefix: &str) -> HandlerResult {
        let name = self.entry_name(&c).await?;
        c.storage.delete(&format!("{prefix}{name}")).await?;
        Ok(None)
    }

    async fn write_group(&self, c: Ctx<'_>) -> HandlerResult {
        let name = self.entry_name(&c).await?;
        let mut g = group(c.storage, &name).await?.unwrap_or_default();
        if let Some(p) = c.data.get_list("policies")? {
            g.policies = clean_policies(p);
        }
        put_json(c.storage, &format!("group/{name}"), &g).await?;
        Ok(None)
    }

    async fn read_group(&self, c: Ctx<'_>) -> HandlerResult {
        let name = self.entry_name(&c).await?;
        Ok(group(c.storage, &name)
            .await?
            .map(|g| Response::json(json!({ "policies": g.policies }))))
    }

    async fn write_user(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg = config::load_or_default(c.storage).await?;
        let name = self.entry_name(&c).await?;
        let mut u = user(c.storage, &name).await?.unwrap_or_default();
        if let Some(p) = c.data.get_list("policies")? {
            u.policies = clean_policies(p);
        }
        if let Some(groups) = c.data.get_list("groups")? {
            let mut seen = std::collections::HashSet::new();
            u.groups = groups
                .into_iter()
                .map(|g| cfg.canonical(g.trim()))
                .filter(|g| !g.is_empty() && seen.insert(g.clone()))
                .collect();
        }
        put_json(c.storage, &format!("user/{name}"), &u).await?;
        Ok(None)
    }

    async fn read_user(&self, c: Ctx<'_>) -> HandlerResult {
        let name = self.entry_name(&c).await?;
        Ok(user(c.storage, &name).await?.map(|u| {
            Response::json(json!({
                "policies": u.policies,
                // Vault answers the groups as one comma-separated string.
                "groups": u.groups.join(","),
            }))
        }))
    }
}
