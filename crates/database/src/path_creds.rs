//! Dynamic credentials: `creds/:name` creates a database user and hands it
//! out with a renewable lease; the lease's renew runs the role's renew
//! statements (by default PostgreSQL's `ALTER ROLE ... VALID UNTIL`; none
//! for MySQL), its revoke the revocation statements (by default: drop the
//! user and end its sessions, see the plugins' `drop_user`).
//!
//! Invariants: a user exists in the database only while its lease does
//! (a user whose creation failed is rolled back: PostgreSQL's transaction,
//! MySQL's rollback statements and drop, see `Pool::create`); the username
//! and password come from fixed alphabets; PostgreSQL's `VALID UNTIL` is
//! the lease's expiry.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::{Database, SECRET_CREDS};
use crate::model::{self, DbConfig};
use crate::path_config::name_re;
use crate::plugin::{self, Values};
use crate::template::{TemplateData, TemplateError, UsernameTemplate};

/// The format Vault's PostgreSQL plugin gives `{{expiration}}`.
fn expiration(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%z").to_string()
}

fn lease_str<'a>(c: &'a Ctx<'_>, key: &str) -> Result<&'a str, LogicalError> {
    c.req
        .secret
        .as_ref()
        .and_then(|s| s.internal_data.get(key))
        .and_then(Value::as_str)
        .ok_or_else(|| LogicalError::internal(format!("the lease has no {key}")))
}

/// The new user's name: the connection's `username_template` rendered, or
/// the plugin's default. A rendered name that statements could not quote
/// safely, or that the database would not take, is refused.
fn new_username(
    cfg: &DbConfig,
    display_name: &str,
    role: &str,
    now: i64,
) -> Result<String, LogicalError> {
    if cfg.username_template.is_empty() {
        return Ok(plugin::username(&cfg.plugin_name, display_name, role, now));
    }
    let bad = |e: TemplateError| LogicalError::invalid(format!("username_template: {e}"));
    let name = UsernameTemplate::parse(&cfg.username_template)
        .map_err(bad)?
        .render(
            &TemplateData {
                display_name,
                role_name: role,
            },
            now.saturating_mul(1000),
        )
        .map_err(bad)?;
    if name.is_empty() {
        return Err(LogicalError::invalid(
            "username_template produced an empty username",
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | ';' | '`' | '{' | '}'))
    {
        return Err(LogicalError::invalid(format!(
            "username_template produced {name:?}: quotes, backslashes, semicolons, braces and control characters are not allowed in usernames"
        )));
    }
    let max = plugin::max_username_len(&cfg.plugin_name);
    if name.len() > max {
        return Err(LogicalError::invalid(format!(
            "username_template produced a username of {} bytes; {} takes at most {max}: add `| truncate {max}`",
            name.len(),
            cfg.plugin_name
        )));
    }
    Ok(name)
}

impl Database {
    async fn creds(&self, c: Ctx<'_>) -> HandlerResult {
        let role_name = c.data.str_or("name", "")?;
        let role = model::get_role(c.storage, &role_name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown role: {role_name}")))?;
        let (pool, cfg) = self.pool(c.storage, &role.db_name).await?;
        if !cfg.allows(&role_name) {
            return Err(LogicalError::invalid(format!(
                "{role_name:?} is not an allowed role for database {:?} (allowed_roles)",
                role.db_name
            )));
        }
        let now = self.system.now();
        let mount_default = self.system.default_lease_ttl();
        let mount_max = self.system.max_lease_ttl();
        let mut ttl = if role.default_ttl > 0 {
            role.default_ttl
        } else {
            mount_default
        };
        let max = match (role.max_ttl, mount_max) {
            (0, m) => m,
            (r, 0) => r,
            (r, m) => r.min(m),
        };
        if max > 0 {
            ttl = ttl.min(max);
        }
        let name = new_username(&cfg, &c.req.display_name, &role_name, now)?;
        let password = zeroize::Zeroizing::new(
            self.system
                .generate_password(Some(cfg.password_policy.as_str()))
                .await?,
        );
        let stmt_password = zeroize::Zeroizing::new(plugin::statement_password(&cfg, &password));
        let until = DateTime::from_timestamp(now + ttl as i64, 0).unwrap_or_else(Utc::now);
        pool.create(
            &role.creation_statements,
            &role.rollback_statements,
            &Values {
                name: &name,
                password: &stmt_password,
                expiration: &expiration(until),
            },
        )
        .await
        .map_err(|e| {
            plugin::to_logical(
                "failed to create the database user",
                plugin::redact(e, &[password.as_str(), stmt_password.as_str()]),
            )
        })?;
        let mut data = Map::new();
        data.insert("username".into(), Value::from(name.clone()));
        data.insert("password".into(), Value::from(password.to_string()));
        let mut internal = Map::new();
        internal.insert("username".into(), Value::from(name));
        internal.insert("role".into(), Value::from(role_name));
        internal.insert("db_name".into(), Value::from(role.db_name));
        let mut secret = arca_sdk::Secret::leased(SECRET_CREDS, ttl, internal);
        secret.max_ttl = role.max_ttl;
        secret.renewable = true;
        let mut r = Response::data(data);
        r.secret = Some(secret);
        Ok(Some(r))
    }

    pub(crate) async fn renew_creds(&self, c: Ctx<'_>) -> HandlerResult {
        let name = lease_str(&c, "username")?.to_string();
        let db = lease_str(&c, "db_name")?.to_string();
        let role = model::get_role(c.storage, lease_str(&c, "role")?).await?;
        let secret = c.req.secret.as_ref().expect("checked by lease_str");
        let now = self.system.now();
        let mut ttl = secret.increment.max(1);
        // VALID UNTIL never goes past what the lease may become: the
        // role's max_ttl, else the mount's (core caps the lease the same).
        let max = match (
            role.as_ref().map_or(0, |r| r.max_ttl),
            self.system.max_lease_ttl(),
        ) {
            (0, m) => m,
            (r, 0) => r,
            (r, m) => r.min(m),
        };
        if max > 0 {
            let left = secret
                .issue_time
                .saturating_add(max as i64)
                .saturating_sub(now)
                .max(0) as u64;
            ttl = ttl.min(left);
        }
        let (pool, cfg) = self.pool(c.storage, &db).await?;
        let until =
            DateTime::from_timestamp(now.saturating_add(ttl as i64), 0).unwrap_or_else(Utc::now);
        let statements = match &role {
            Some(r) if !r.renew_statements.is_empty() => r.renew_statements.clone(),
            _ => plugin::default_renew_statements(&cfg.plugin_name),
        };
        pool.run(
            &statements,
            &Values {
                name: &name,
                password: "",
                expiration: &expiration(until),
            },
        )
        .await
        .map_err(|e| plugin::to_logical("failed to renew the database user", e))?;
        let mut secret = secret.clone();
        secret.ttl = ttl;
        Ok(Some(Response {
            secret: Some(secret),
            ..Default::default()
        }))
    }

    pub(crate) async fn revoke_creds(&self, c: Ctx<'_>) -> HandlerResult {
        let name = lease_str(&c, "username")?.to_string();
        let db = lease_str(&c, "db_name")?.to_string();
        let role = model::get_role(c.storage, lease_str(&c, "role")?).await?;
        let (pool, _) = self.pool(c.storage, &db).await?;
        let result = match &role {
            Some(r) if !r.revocation_statements.is_empty() => {
                pool.run(
                    &r.revocation_statements,
                    &Values {
                        name: &name,
                        password: "",
                        expiration: "",
                    },
                )
                .await
            }
            _ => pool.drop_user(&name).await,
        };
        result.map_err(|e| plugin::to_logical("failed to revoke the database user", e))?;
        Ok(None)
    }
}

pub(crate) fn paths() -> Vec<Path<Database>> {
    vec![Path::new(concat!("creds/", name_re!()))
        .field(Field::new("name", FieldType::String, "Name of the role.").required())
        .op(Operation::Read, |b: &Database, c| Box::pin(b.creds(c)))
        .help("Create a database user for the role, with a lease.")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_is_in_postgres_timestamp_form() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(expiration(t), "2023-11-14 22:13:20+0000");
    }
}
