//! Dynamic roles: `roles/:name` (write, read, delete), LIST `roles`.

use serde_json::{json, Map};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Database;
use crate::model::{self, ROLE_PREFIX};
use crate::path_config::name_re;

const STATEMENTS: &[&str] = &[
    "creation_statements",
    "revocation_statements",
    "rollback_statements",
    "renew_statements",
];

/// A statements field: one string (not split on commas: SQL has commas)
/// or a list of strings, as Vault's `TypeStringSlice` takes it.
pub(crate) fn statements(
    field: &str,
    v: Option<&serde_json::Value>,
) -> Result<Option<Vec<String>>, LogicalError> {
    use serde_json::Value;
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(Vec::new())),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    LogicalError::invalid(format!("{field} must be a string or a list of strings"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(LogicalError::invalid(format!(
            "{field} must be a string or a list of strings"
        ))),
    }
}

impl Database {
    async fn role_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let name = c.data.str_or("name", "")?;
        Ok(model::get_role(c.storage, &name).await?.is_some())
    }

    async fn write_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let existing = model::get_role(c.storage, &name).await?;
        if existing.is_none() && model::get_static_role(c.storage, &name).await?.is_some() {
            return Err(LogicalError::invalid(
                "Role and Static Role names must be unique",
            ));
        }
        let mut r = existing.unwrap_or_default();
        r.name = name;
        if c.data.is_set("db_name") {
            r.db_name = c.data.str_or("db_name", "")?;
        }
        if r.db_name.is_empty() {
            return Err(LogicalError::invalid("empty database name attribute"));
        }
        let list = |f: &str| statements(f, c.data.raw().get(f));
        if let Some(l) = list("creation_statements")? {
            r.creation_statements = l;
        }
        if let Some(l) = list("revocation_statements")? {
            r.revocation_statements = l;
        }
        if let Some(l) = list("rollback_statements")? {
            r.rollback_statements = l;
        }
        if let Some(l) = list("renew_statements")? {
            r.renew_statements = l;
        }
        if r.creation_statements.iter().all(|s| s.trim().is_empty()) {
            return Err(LogicalError::invalid("empty creation statements"));
        }
        if let Some(t) = c.data.get_duration("default_ttl")? {
            if c.data.is_set("default_ttl") {
                r.default_ttl = t;
            }
        }
        if let Some(t) = c.data.get_duration("max_ttl")? {
            if c.data.is_set("max_ttl") {
                r.max_ttl = t;
            }
        }
        if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
            return Err(LogicalError::invalid("ttl cannot be greater than max_ttl"));
        }
        let credential_type = c.data.str_or("credential_type", "password")?;
        if credential_type != "password" {
            return Err(LogicalError::invalid(format!(
                "credential_type {credential_type:?} is not available yet: only \"password\""
            )));
        }
        if c.data
            .raw()
            .get("credential_config")
            .is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
        {
            return Err(LogicalError::invalid(
                "credential_config is not available yet",
            ));
        }
        model::put_role(c.storage, &r).await?;
        Ok(None)
    }

    async fn read_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let Some(r) = model::get_role(c.storage, &name).await? else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert("db_name".into(), json!(r.db_name));
        m.insert("creation_statements".into(), json!(r.creation_statements));
        m.insert(
            "revocation_statements".into(),
            json!(r.revocation_statements),
        );
        m.insert("rollback_statements".into(), json!(r.rollback_statements));
        m.insert("renew_statements".into(), json!(r.renew_statements));
        m.insert("default_ttl".into(), json!(r.default_ttl));
        m.insert("max_ttl".into(), json!(r.max_ttl));
        m.insert("credential_type".into(), json!("password"));
        Ok(Some(Response::data(m)))
    }

    async fn delete_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        c.storage.delete(&format!("{ROLE_PREFIX}{name}")).await?;
        Ok(None)
    }

    async fn list_roles(&self, c: Ctx<'_>) -> HandlerResult {
        let names = model::names(c.storage, ROLE_PREFIX).await?;
        Ok((!names.is_empty()).then(|| Response::list(names)))
    }
}

pub(crate) fn paths() -> Vec<Path<Database>> {
    let mut role = Path::new(concat!("roles/", name_re!()))
        .field(Field::new("name", FieldType::String, "Name of the role.").required())
        .field(Field::new(
            "db_name",
            FieldType::String,
            "The connection (config) to use.",
        ))
        .field(Field::new(
            "default_ttl",
            FieldType::Duration,
            "Default lease TTL of credentials.",
        ))
        .field(Field::new(
            "max_ttl",
            FieldType::Duration,
            "Longest lease of credentials.",
        ))
        .field(
            Field::new(
                "credential_type",
                FieldType::String,
                "password (the only type yet).",
            )
            .default("password"),
        )
        .field(Field::new(
            "credential_config",
            FieldType::Raw,
            "Not available yet (refused).",
        ));
    for s in STATEMENTS {
        role = role.field(Field::new(
            s,
            FieldType::Raw,
            "SQL statements with {{name}}, {{password}}, {{expiration}} placeholders.",
        ));
    }
    vec![
        Path::new("roles/?")
            .op(Operation::List, |b: &Database, c| Box::pin(b.list_roles(c)))
            .help("List the roles."),
        role.existence(|b: &Database, c| Box::pin(b.role_exists(c)))
            .op(Operation::Create, |b: &Database, c| {
                Box::pin(b.write_role(c))
            })
            .op(Operation::Update, |b: &Database, c| {
                Box::pin(b.write_role(c))
            })
            .op(Operation::Read, |b: &Database, c| Box::pin(b.read_role(c)))
            .op(Operation::Delete, |b: &Database, c| {
                Box::pin(b.delete_role(c))
            })
            .help("Manage a role: how credentials are created and revoked."),
    ]
}
