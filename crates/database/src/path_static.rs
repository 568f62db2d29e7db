//! Static roles: `static-roles/:name` (write, read, delete), LIST
//! `static-roles`, `static-creds/:name`, `rotate-role/:name`.
//!
//! Invariants: a static role is stored only after its user's password was
//! changed by Arca (Arca must know it); its username never changes; the
//! password is returned by `static-creds` only; a role name is either a
//! dynamic role or a static one, never both.

use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Database;
use crate::model::{self, Schedule, StaticRole, STATIC_ROLE_PREFIX, STATIC_WAL_PREFIX};
use crate::path_config::name_re;
use crate::path_roles::statements;
use crate::rotation::{self, MIN_ROTATION_PERIOD, MIN_ROTATION_WINDOW};

/// Vault's static-role fields this engine does not do yet: refused when
/// given a value, never accepted and ignored.
const NOT_YET: &[&str] = &["skip_import_rotation", "self_managed_password"];

/// A static role's username reaches SQL through `{{name}}`: refuse what
/// statements could not quote safely.
fn check_username(u: &str) -> Result<(), LogicalError> {
    if u.chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | ';' | '`' | '{' | '}'))
    {
        return Err(LogicalError::invalid(format!(
            "username {u:?}: quotes, backslashes, semicolons, braces and control characters are not allowed"
        )));
    }
    if u.len() > 128 {
        return Err(LogicalError::invalid("username is longer than 128 bytes"));
    }
    Ok(())
}

fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The schedule fields as Vault shows them.
fn schedule_fields(m: &mut Map<String, Value>, s: &Schedule) {
    match s {
        Schedule::Period(p) => {
            m.insert("rotation_period".into(), json!(p));
        }
        Schedule::Cron { schedule, window } => {
            m.insert("rotation_schedule".into(), json!(schedule));
            if *window > 0 {
                m.insert("rotation_window".into(), json!(window));
            }
        }
    }
}

impl Database {
    async fn static_role_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let name = c.data.str_or("name", "")?;
        Ok(model::get_static_role(c.storage, &name).await?.is_some())
    }

    async fn write_static_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        for f in NOT_YET {
            if c.data
                .raw()
                .get(*f)
                .is_some_and(|v| !v.is_null() && v != "" && v != false)
            {
                return Err(LogicalError::invalid(format!(
                    "{f} is not available yet in Arca's database engine"
                )));
            }
        }
        let credential_type = c.data.str_or("credential_type", "password")?;
        if credential_type != "password" {
            return Err(LogicalError::invalid(format!(
                "credential_type {credential_type:?} is not available yet: only \"password\""
            )));
        }
        // One rotation or static-role change at a time: an update never
        // overwrites a password a rotation just stored.
        let _one = self.rotations.lock().await;
        let existing = model::get_static_role(c.storage, &name).await?;
        if existing.is_none() && model::get_role(c.storage, &name).await?.is_some() {
            return Err(LogicalError::invalid(
                "Role and Static Role names must be unique",
            ));
        }
        let db_name = match c.data.get_str("db_name")? {
            Some(d) if c.data.is_set("db_name") => d,
            _ => existing
                .as_ref()
                .map(|r| r.db_name.clone())
                .unwrap_or_default(),
        };
        if db_name.is_empty() {
            return Err(LogicalError::invalid("empty database name attribute"));
        }
        let username = c.data.str_or("username", "")?;
        let username = match &existing {
            Some(r) if c.data.is_set("username") && username != r.username => {
                return Err(LogicalError::invalid(
                    "cannot update static account username",
                ))
            }
            Some(r) => r.username.clone(),
            None if username.is_empty() => {
                return Err(LogicalError::invalid(
                    "username is a required field to create a static account",
                ))
            }
            None => username,
        };
        check_username(&username)?;
        let rotation_statements = match statements(
            "rotation_statements",
            c.data.raw().get("rotation_statements"),
        )? {
            Some(l) => l,
            None => existing
                .as_ref()
                .map(|r| r.rotation_statements.clone())
                .unwrap_or_default(),
        };
        let schedule = self.schedule(&c, existing.as_ref().map(|r| &r.schedule))?;

        let cfg = model::get_config(c.storage, &db_name)
            .await?
            .ok_or_else(|| {
                LogicalError::invalid(format!(
                    "database {db_name:?} not found (database/config/{db_name})"
                ))
            })?;
        if !cfg.allows(&name) {
            return Err(LogicalError::invalid(format!(
                "{name:?} is not an allowed role for database {db_name:?} (allowed_roles)"
            )));
        }
        if username == cfg.username {
            return Err(LogicalError::invalid(format!(
                "{username:?} is the connection's own user: rotate it with rotate-root/{db_name}, not a static role"
            )));
        }
        match existing {
            None => {
                // Arca must know the password: set one now.
                let r = StaticRole {
                    name,
                    db_name,
                    username,
                    rotation_statements,
                    schedule,
                    password: String::new(),
                    last_rotation: 0,
                    next_rotation: 0,
                };
                self.rotate_static_locked(c.storage, r).await?;
            }
            Some(mut r) => {
                if r.db_name != db_name {
                    return Err(LogicalError::invalid(
                        "cannot change the db_name of a static role: its password belongs to the user in that database; delete and create the role",
                    ));
                }
                let moved = r.schedule != schedule;
                r.rotation_statements = rotation_statements;
                r.schedule = schedule;
                if moved {
                    r.next_rotation = rotation::next_rotation(&r.schedule, r.last_rotation)?;
                }
                model::put_static_role(c.storage, &r).await?;
            }
        }
        Ok(None)
    }

    /// `rotation_period` or `rotation_schedule` (+ `rotation_window`), as
    /// Vault checks them.
    fn schedule(&self, c: &Ctx<'_>, old: Option<&Schedule>) -> Result<Schedule, LogicalError> {
        let period = c.data.is_set("rotation_period");
        let cron = c.data.is_set("rotation_schedule");
        let window = c.data.is_set("rotation_window");
        if period && cron {
            return Err(LogicalError::invalid(
                "mutually exclusive fields rotation_period and rotation_schedule were both specified; only one of them can be provided",
            ));
        }
        let new_window = |old: u64| -> Result<u64, LogicalError> {
            let w = match c.data.get_duration("rotation_window")? {
                Some(w) if window => w,
                _ => old,
            };
            if w > 0 && w < MIN_ROTATION_WINDOW {
                return Err(LogicalError::invalid(format!(
                    "rotation_window is invalid: must be at least {MIN_ROTATION_WINDOW} seconds (1h)"
                )));
            }
            Ok(w)
        };
        if period {
            if window {
                return Err(LogicalError::invalid(
                    "rotation_window is invalid with use of rotation_period",
                ));
            }
            let p = c.data.get_duration("rotation_period")?.unwrap_or(0);
            if p < MIN_ROTATION_PERIOD {
                return Err(LogicalError::invalid(format!(
                    "rotation_period must be {MIN_ROTATION_PERIOD} seconds or more"
                )));
            }
            return Ok(Schedule::Period(p));
        }
        if cron {
            let schedule = c.data.str_or("rotation_schedule", "")?;
            rotation::parse_cron(&schedule)?;
            let old_window = match old {
                Some(Schedule::Cron { window, .. }) => *window,
                _ => 0,
            };
            return Ok(Schedule::Cron {
                schedule,
                window: new_window(old_window)?,
            });
        }
        match old {
            Some(Schedule::Cron { schedule, window: w }) => Ok(Schedule::Cron {
                schedule: schedule.clone(),
                window: new_window(*w)?,
            }),
            Some(_) if window => Err(LogicalError::invalid(
                "rotation_window is invalid with use of rotation_period",
            )),
            Some(s) => Ok(s.clone()),
            None => Err(LogicalError::invalid(
                "one of rotation_schedule or rotation_period must be provided to create a static account",
            )),
        }
    }

    async fn read_static_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let Some(r) = model::get_static_role(c.storage, &name).await? else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert("db_name".into(), json!(r.db_name));
        m.insert("username".into(), json!(r.username));
        m.insert("rotation_statements".into(), json!(r.rotation_statements));
        m.insert("credential_type".into(), json!("password"));
        m.insert(
            "last_vault_rotation".into(),
            json!(rfc3339(r.last_rotation)),
        );
        schedule_fields(&mut m, &r.schedule);
        Ok(Some(Response::data(m)))
    }

    async fn delete_static_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        // Not while a rotation of it runs; the database user stays as is.
        let _one = self.rotations.lock().await;
        c.storage
            .delete(&format!("{STATIC_ROLE_PREFIX}{name}"))
            .await?;
        c.storage
            .delete(&format!("{STATIC_WAL_PREFIX}{name}"))
            .await?;
        Ok(None)
    }

    async fn list_static_roles(&self, c: Ctx<'_>) -> HandlerResult {
        let names = model::names(c.storage, STATIC_ROLE_PREFIX).await?;
        Ok((!names.is_empty()).then(|| Response::list(names)))
    }

    async fn static_creds(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let r = model::get_static_role(c.storage, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown static role: {name}")))?;
        let now = self.system.now();
        let mut m = Map::new();
        m.insert("username".into(), json!(r.username));
        m.insert("password".into(), json!(r.password));
        m.insert(
            "last_vault_rotation".into(),
            json!(rfc3339(r.last_rotation)),
        );
        m.insert("ttl".into(), json!((r.next_rotation - now).max(0)));
        schedule_fields(&mut m, &r.schedule);
        Ok(Some(Response::data(m)))
    }

    async fn rotate_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        if model::get_static_role(c.storage, &name).await?.is_none() {
            return Err(LogicalError::invalid(format!(
                "no static role found for role name {name:?}"
            )));
        }
        self.rotate_static(c.storage, &name, false).await?;
        Ok(None)
    }
}

pub(crate) fn paths() -> Vec<Path<Database>> {
    let mut role = Path::new(concat!("static-roles/", name_re!()))
        .field(Field::new("name", FieldType::String, "Name of the static role.").required())
        .field(Field::new(
            "db_name",
            FieldType::String,
            "The connection (config) to use.",
        ))
        .field(Field::new(
            "username",
            FieldType::String,
            "The existing database user whose password Arca rotates.",
        ))
        .field(Field::new(
            "rotation_period",
            FieldType::Duration,
            "Rotate this long after the last rotation (at least 5s).",
        ))
        .field(Field::new(
            "rotation_schedule",
            FieldType::String,
            "Rotate at the times of this cron expression (5 fields, UTC).",
        ))
        .field(Field::new(
            "rotation_window",
            FieldType::Duration,
            "With rotation_schedule: how long after its time a rotation may still run (at least 1h).",
        ))
        .field(Field::new(
            "rotation_statements",
            FieldType::Raw,
            "SQL statements with {{name}} and {{password}} that set the password.",
        ))
        .field(
            Field::new(
                "credential_type",
                FieldType::String,
                "password (the only type yet).",
            )
            .default("password"),
        );
    for f in NOT_YET {
        role = role.field(Field::new(
            f,
            FieldType::Raw,
            "Not available yet (refused).",
        ));
    }
    vec![
        Path::new("static-roles/?")
            .op(Operation::List, |b: &Database, c| {
                Box::pin(b.list_static_roles(c))
            })
            .help("List the static roles."),
        role.existence(|b: &Database, c| Box::pin(b.static_role_exists(c)))
            .op(Operation::Create, |b: &Database, c| {
                Box::pin(b.write_static_role(c))
            })
            .op(Operation::Update, |b: &Database, c| {
                Box::pin(b.write_static_role(c))
            })
            .op(Operation::Read, |b: &Database, c| {
                Box::pin(b.read_static_role(c))
            })
            .op(Operation::Delete, |b: &Database, c| {
                Box::pin(b.delete_static_role(c))
            })
            .help("Manage a static role: an existing user whose password Arca rotates."),
        Path::new(concat!("static-creds/", name_re!()))
            .field(Field::new("name", FieldType::String, "Name of the static role.").required())
            .op(Operation::Read, |b: &Database, c| {
                Box::pin(b.static_creds(c))
            })
            .help("The current username and password of a static role."),
        Path::new(concat!("rotate-role/", name_re!()))
            .field(Field::new("name", FieldType::String, "Name of the static role.").required())
            .op(Operation::Update, |b: &Database, c| {
                Box::pin(b.rotate_role(c))
            })
            .help("Rotate a static role's password now."),
    ]
}
