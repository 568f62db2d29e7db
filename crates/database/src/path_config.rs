//! Connections: `config/:name` (write, read, delete), LIST `config`,
//! `reset/:name`.
//!
//! Invariants: a config whose connection cannot be verified (unless
//! `verify_connection=false`) is refused and not stored; reads never show
//! the password; options that are not built yet are refused by name.

use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Database;
use crate::model::{
    self, DbConfig, CONFIG_PREFIX, MYSQL_LEGACY_PLUGINS, MYSQL_PLUGIN, POSTGRES_PLUGIN,
};
use crate::plugin::{self, Pool};
use crate::template::UsernameTemplate;

macro_rules! name_re {
    () => {
        r"(?P<name>\w(?:[\w\-.]*\w)?)"
    };
}
pub(crate) use name_re;

/// Fields Vault has that this engine does not do yet: refused when given
/// a value, never accepted and ignored.
const NOT_YET: &[&str] = &[
    "disable_escaping",
    "tls_certificate",
    "tls_ca",
    "private_key",
    "plugin_version",
    "root_rotation_period",
    "root_rotation_schedule",
    "root_rotation_window",
    "skip_import_rotation",
    "connection_url_template",
    // MySQL plugin: TLS and Cloud SQL IAM.
    "tls_certificate_key",
    "tls_server_name",
    "tls_skip_verify",
    "auth_type",
    "service_account_json",
];

impl Database {
    async fn write_config(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        // Not while a rotation changes this config's password.
        let _one = self.rotations.lock().await;
        let existing = model::get_config(c.storage, &name).await?;
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
        let text = |f: &str, old: Option<&str>| -> Result<String, LogicalError> {
            match c.data.get_str(f)? {
                Some(v) if c.data.is_set(f) => Ok(v),
                _ => Ok(old.unwrap_or_default().to_string()),
            }
        };
        let old = existing.as_ref();
        let plugin_name = text("plugin_name", old.map(|o| o.plugin_name.as_str()))?;
        if plugin_name.is_empty() {
            return Err(LogicalError::invalid("empty plugin name"));
        }
        if !plugin::is_known(&plugin_name) {
            return Err(LogicalError::invalid(format!(
                "plugin {plugin_name:?} is not available: this server runs {POSTGRES_PLUGIN}, {MYSQL_PLUGIN} and {}",
                MYSQL_LEGACY_PLUGINS.join(", ")
            )));
        }
        let password_authentication = text(
            "password_authentication",
            Some(
                old.map(|o| o.password_authentication.as_str())
                    .unwrap_or("password"),
            ),
        )?;
        if !matches!(
            password_authentication.as_str(),
            "password" | "scram-sha-256"
        ) {
            return Err(LogicalError::invalid(format!(
                "password_authentication must be \"password\" or \"scram-sha-256\", not {password_authentication:?}"
            )));
        }
        let allowed_roles = match c.data.get_list("allowed_roles")? {
            Some(l) if c.data.is_set("allowed_roles") => l,
            _ => old.map(|o| o.allowed_roles.clone()).unwrap_or_default(),
        };
        let int = |f: &str, old: Option<u32>, default: u32| -> Result<u32, LogicalError> {
            match c.data.get_i64(f)? {
                Some(v) if c.data.is_set(f) => u32::try_from(v).map_err(|_| {
                    LogicalError::invalid(format!("{f} must be between 0 and {}", u32::MAX))
                }),
                _ => Ok(old.unwrap_or(default)),
            }
        };
        let cfg = DbConfig {
            name: name.clone(),
            plugin_name,
            connection_url: text("connection_url", old.map(|o| o.connection_url.as_str()))?,
            username: text("username", old.map(|o| o.username.as_str()))?,
            password: text("password", old.map(|o| o.password.as_str()))?,
            password_authentication,
            allowed_roles,
            verify_connection: c.data.bool_or("verify_connection", true)?,
            max_open_connections: int(
                "max_open_connections",
                old.map(|o| o.max_open_connections),
                4,
            )?,
            max_idle_connections: int(
                "max_idle_connections",
                old.map(|o| o.max_idle_connections),
                0,
            )?,
            max_connection_lifetime: match c.data.get_duration("max_connection_lifetime")? {
                Some(v) if c.data.is_set("max_connection_lifetime") => v,
                _ => old.map(|o| o.max_connection_lifetime).unwrap_or(0),
            },
            password_policy: text("password_policy", old.map(|o| o.password_policy.as_str()))?,
            username_template: text(
                "username_template",
                old.map(|o| o.username_template.as_str()),
            )?,
            root_rotation_statements: match crate::path_roles::statements(
                "root_rotation_statements",
                c.data.raw().get("root_rotation_statements"),
            )? {
                Some(l) => l,
                None => old
                    .map(|o| o.root_rotation_statements.clone())
                    .unwrap_or_default(),
            },
        };
        if cfg.connection_url.is_empty() {
            return Err(LogicalError::invalid("connection_url cannot be empty"));
        }
        if !cfg.username_template.is_empty() {
            UsernameTemplate::parse(&cfg.username_template).map_err(|e| {
                LogicalError::invalid(format!("unable to initialize username template: {e}"))
            })?;
        }
        if !cfg.password_policy.is_empty() {
            // Refuse a policy that does not exist now rather than at creds time.
            self.system
                .generate_password(Some(&cfg.password_policy))
                .await?;
        }
        let pool = Pool::new(&cfg).map_err(|e| plugin::to_logical("invalid connection", e))?;
        if cfg.verify_connection {
            pool.verify().await.map_err(|e| {
                LogicalError::invalid(format!(
                    "error creating database object: error verifying connection: {}",
                    e
                ))
            })?;
        }
        pool.close();
        model::put_config(c.storage, &cfg).await?;
        self.drop_pool(&name);
        Ok(None)
    }

    async fn read_config(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let Some(cfg) = model::get_config(c.storage, &name).await? else {
            return Ok(None);
        };
        let mut details = Map::new();
        details.insert("connection_url".into(), json!(cfg.connection_url));
        details.insert("username".into(), json!(cfg.username));
        details.insert(
            "max_open_connections".into(),
            json!(cfg.max_open_connections),
        );
        details.insert(
            "max_idle_connections".into(),
            json!(cfg.max_idle_connections),
        );
        details.insert(
            "max_connection_lifetime".into(),
            json!(format!("{}s", cfg.max_connection_lifetime)),
        );
        details.insert(
            "password_authentication".into(),
            json!(cfg.password_authentication),
        );
        if !cfg.username_template.is_empty() {
            details.insert("username_template".into(), json!(cfg.username_template));
        }
        let mut m = Map::new();
        m.insert("plugin_name".into(), json!(cfg.plugin_name));
        m.insert("plugin_version".into(), json!(""));
        m.insert("connection_details".into(), Value::Object(details));
        m.insert("allowed_roles".into(), json!(cfg.allowed_roles));
        m.insert(
            "root_credentials_rotate_statements".into(),
            json!(cfg.root_rotation_statements),
        );
        m.insert("password_policy".into(), json!(cfg.password_policy));
        m.insert("verify_connection".into(), json!(cfg.verify_connection));
        Ok(Some(Response::data(m)))
    }

    async fn delete_config(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let _one = self.rotations.lock().await;
        c.storage.delete(&format!("{CONFIG_PREFIX}{name}")).await?;
        self.drop_pool(&name);
        Ok(None)
    }

    async fn list_configs(&self, c: Ctx<'_>) -> HandlerResult {
        let names = model::names(c.storage, CONFIG_PREFIX).await?;
        Ok((!names.is_empty()).then(|| Response::list(names)))
    }

    async fn rotate_root_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        self.rotate_root(c.storage, &name).await?;
        Ok(None)
    }

    async fn reset(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        if model::get_config(c.storage, &name).await?.is_none() {
            return Err(LogicalError::invalid(format!(
                "database {name:?} not found"
            )));
        }
        self.drop_pool(&name);
        Ok(None)
    }
}

pub(crate) fn paths() -> Vec<Path<Database>> {
    let mut config = Path::new(concat!("config/", name_re!()))
        .field(Field::new("name", FieldType::String, "Name of the connection.").required())
        .field(Field::new(
            "plugin_name",
            FieldType::String,
            "postgresql-database-plugin, mysql-database-plugin (MySQL/MariaDB), or mysql-aurora-, mysql-rds-, mysql-legacy-database-plugin (16-character usernames).",
        ))
        .field(Field::new(
            "connection_url",
            FieldType::String,
            "Connection string, with {{username}} and {{password}} placeholders.",
        ))
        .field(Field::new("username", FieldType::String, "The root user."))
        .field(Field::new("password", FieldType::String, "The root user's password.").sensitive())
        .field(
            Field::new(
                "password_authentication",
                FieldType::String,
                "password (default) or scram-sha-256 (statements get a SCRAM verifier).",
            )
            .default("password"),
        )
        .field(Field::new(
            "allowed_roles",
            FieldType::CommaStringSlice,
            "Roles (globs) that may use this connection.",
        ))
        .field(
            Field::new(
                "verify_connection",
                FieldType::Bool,
                "Connect before storing the config (default true).",
            )
            .default(true),
        )
        .field(Field::new(
            "max_open_connections",
            FieldType::Int,
            "Pool size (default 4).",
        ))
        .field(Field::new(
            "max_idle_connections",
            FieldType::Int,
            "Idle connections kept (0: as many as max_open_connections).",
        ))
        .field(Field::new(
            "max_connection_lifetime",
            FieldType::Duration,
            "Close connections older than this (0: never).",
        ))
        .field(Field::new(
            "password_policy",
            FieldType::String,
            "Password policy for generated passwords (sys/policies/password).",
        ))
        .field(Field::new(
            "username_template",
            FieldType::String,
            "Vault's username template ({{.DisplayName}}, {{.RoleName}}, random, truncate, printf, ...).",
        ))
        .field(Field::new(
            "root_rotation_statements",
            FieldType::Raw,
            "SQL statements with {{username}} and {{password}} that rotate-root runs.",
        ));
    for f in NOT_YET {
        config = config.field(Field::new(
            f,
            FieldType::Raw,
            "Not available yet (refused).",
        ));
    }
    vec![
        Path::new("config/?")
            .op(Operation::List, |b: &Database, c| {
                Box::pin(b.list_configs(c))
            })
            .help("List the configured connections."),
        config
            .op(Operation::Update, |b: &Database, c| {
                Box::pin(b.write_config(c))
            })
            .op(Operation::Read, |b: &Database, c| {
                Box::pin(b.read_config(c))
            })
            .op(Operation::Delete, |b: &Database, c| {
                Box::pin(b.delete_config(c))
            })
            .help("Configure a database connection."),
        Path::new(concat!("reset/", name_re!()))
            .field(Field::new("name", FieldType::String, "Name of the connection.").required())
            .op(Operation::Update, |b: &Database, c| Box::pin(b.reset(c)))
            .help("Close the connection's pool; it reconnects on next use."),
        Path::new(concat!("rotate-root/", name_re!()))
            .field(Field::new("name", FieldType::String, "Name of the connection.").required())
            .op(Operation::Update, |b: &Database, c| {
                Box::pin(b.rotate_root_path(c))
            })
            .help("Give the connection's root user a new password only Arca knows."),
    ]
}
