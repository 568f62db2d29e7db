//! Password rotation: static roles (on their schedule and on
//! `rotate-role/:name`) and the root credentials of a connection
//! (`rotate-root/:name`), with a write-ahead entry so that a change that
//! reached the database but not storage is completed, not repeated.
//!
//! Invariants:
//! - One rotation at a time per mount (`Database::rotations`), whether
//!   asked by a request or due on the periodic tick; the tick runs on the
//!   active node only, so a rotation happens on one node.
//! - Before a new password is sent to the database it is stored as a
//!   write-ahead entry (`static-wal/<role>`, `root-wal/<connection>`);
//!   the entry is deleted once the password is stored with its role or
//!   config, or when the database refused the change (its statements run in
//!   one transaction: nothing changed). An entry left behind by a node that
//!   died (or lost leadership, or lost the database) mid-change is finished
//!   by the next active node with the same password, so each due rotation
//!   changes the password exactly once, and storage and database agree.
//! - A rotation due while no node was active (an election, a restart)
//!   runs on the first tick after: `next_rotation` only moves forward when
//!   a rotation is stored.

use chrono::DateTime;
use croner::parser::{CronParser, Seconds, Year};
use zeroize::Zeroizing;

use arca_sdk::{LogicalError, Storage};

use crate::backend::Database;
use crate::model::{
    self, DbConfig, PasswordWal, Schedule, StaticRole, ROOT_WAL_PREFIX, STATIC_ROLE_PREFIX,
    STATIC_WAL_PREFIX,
};
use crate::plugin::{self, DbError, Pool, Values};

/// The shortest `rotation_period` (Vault's limit).
pub(crate) const MIN_ROTATION_PERIOD: u64 = 5;
/// The shortest non-zero `rotation_window` (Vault's limit).
pub(crate) const MIN_ROTATION_WINDOW: u64 = 3600;

/// Parses a `rotation_schedule`: standard 5-field cron (minute hour
/// day-of-month month day-of-week, UTC) as Vault takes it.
pub(crate) fn parse_cron(expr: &str) -> Result<croner::Cron, LogicalError> {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    parser.parse(expr).map_err(|e| {
        LogicalError::invalid(format!(
            "could not parse rotation_schedule {expr:?}: {e} (expected 5 fields: minute hour day-of-month month day-of-week)"
        ))
    })
}

/// When the rotation after one at `after` (unix seconds) is due.
pub(crate) fn next_rotation(s: &Schedule, after: i64) -> Result<i64, LogicalError> {
    match s {
        Schedule::Period(p) => Ok(after.saturating_add(*p as i64)),
        Schedule::Cron { schedule, .. } => {
            let cron = parse_cron(schedule)?;
            let at = DateTime::from_timestamp(after, 0)
                .ok_or_else(|| LogicalError::internal("time out of range"))?;
            cron.find_next_occurrence(&at, false)
                .map(|t| t.timestamp())
                .map_err(|e| LogicalError::invalid(format!("rotation_schedule {schedule:?}: {e}")))
        }
    }
}

/// Is a rotation due at `now`? `Err(next)`: its window passed, the role
/// waits for `next` instead.
fn due(r: &StaticRole, now: i64) -> Result<bool, i64> {
    if r.next_rotation > now {
        return Ok(false);
    }
    if let Schedule::Cron { window, .. } = &r.schedule {
        if *window > 0 && now > r.next_rotation.saturating_add(*window as i64) {
            return Err(next_rotation(&r.schedule, now).unwrap_or(i64::MAX));
        }
    }
    Ok(true)
}

impl Database {
    /// The password for a change: the one in flight (`wal`), else a new one
    /// from the connection's password policy, recorded before use.
    async fn wal_password(
        &self,
        s: &dyn Storage,
        key: &str,
        cfg: &DbConfig,
    ) -> Result<Zeroizing<String>, LogicalError> {
        if let Some(w) = model::get_wal(s, key).await? {
            return Ok(Zeroizing::new(w.password));
        }
        let password = Zeroizing::new(
            self.system
                .generate_password(Some(cfg.password_policy.as_str()))
                .await?,
        );
        model::put_wal(
            s,
            key,
            &PasswordWal {
                password: password.to_string(),
                created: self.system.now(),
            },
        )
        .await?;
        Ok(password)
    }

    /// Runs password statements; when the database refused them (nothing
    /// changed) the write-ahead entry is forgotten, otherwise (the
    /// connection broke or timed out mid-way; MySQL, where an earlier
    /// statement may have taken effect) it stays for the next tick to
    /// finish with the same password.
    async fn set_password(
        &self,
        s: &dyn Storage,
        wal_key: &str,
        pool: &Pool,
        statements: &[String],
        v: &Values<'_>,
    ) -> Result<(), DbError> {
        let result = pool.run(statements, v).await;
        if let Err(e) = &result {
            if e.nothing_changed() {
                if let Err(e) = s.delete(wal_key).await {
                    tracing::warn!(
                        key = wal_key,
                        "could not forget a refused password change: {e}"
                    );
                }
            }
        }
        result
    }

    /// Gives static role `name` a new password in the database and stores
    /// it with the role; `create` is a role not stored yet (its first
    /// rotation stores it). With `only_if_due`, a role that is no longer
    /// due (rotated meanwhile) is left alone; a role deleted meanwhile is
    /// not brought back. Finishes a change in flight instead of starting
    /// another.
    pub(crate) async fn rotate_static(
        &self,
        s: &dyn Storage,
        name: &str,
        only_if_due: bool,
    ) -> Result<(), LogicalError> {
        let _one = self.rotations.lock().await;
        let Some(r) = model::get_static_role(s, name).await? else {
            return Ok(());
        };
        if only_if_due && !matches!(due(&r, self.system.now()), Ok(true)) {
            return Ok(());
        }
        self.rotate_static_locked(s, r).await
    }

    /// [`Database::rotate_static`] for a caller that holds `rotations`.
    pub(crate) async fn rotate_static_locked(
        &self,
        s: &dyn Storage,
        mut r: StaticRole,
    ) -> Result<(), LogicalError> {
        let (pool, cfg) = self.pool(s, &r.db_name).await?;
        let statements = if r.rotation_statements.is_empty() {
            plugin::default_password_statements(&cfg.plugin_name)
        } else {
            r.rotation_statements.clone()
        };
        if statements.is_empty() {
            return Err(LogicalError::invalid(format!(
                "{} has no default rotation statements: set rotation_statements",
                cfg.plugin_name
            )));
        }
        let wal_key = format!("{STATIC_WAL_PREFIX}{}", r.name);
        let password = self.wal_password(s, &wal_key, &cfg).await?;
        let stmt_password = Zeroizing::new(plugin::statement_password(&cfg, &password));
        self.set_password(
            s,
            &wal_key,
            &pool,
            &statements,
            &Values {
                name: &r.username,
                password: &stmt_password,
                expiration: "",
            },
        )
        .await
        .map_err(|e| {
            plugin::to_logical(
                &format!("failed to rotate the password of {:?}", r.username),
                plugin::redact(e, &[password.as_str(), stmt_password.as_str()]),
            )
        })?;
        let now = self.system.now();
        r.password = password.to_string();
        r.last_rotation = now;
        r.next_rotation = next_rotation(&r.schedule, now)?;
        model::put_static_role(s, &r).await?;
        s.delete(&wal_key).await?;
        Ok(())
    }

    /// Gives the root user of connection `name` a new password only Arca
    /// knows (`rotate-root/:name`), or finishes a change in flight.
    pub(crate) async fn rotate_root(
        &self,
        s: &dyn Storage,
        name: &str,
    ) -> Result<(), LogicalError> {
        let _one = self.rotations.lock().await;
        let mut cfg = model::get_config(s, name).await?.ok_or_else(|| {
            LogicalError::invalid(format!(
                "database {name:?} not found (database/config/{name})"
            ))
        })?;
        if cfg.username.is_empty() {
            return Err(LogicalError::invalid(
                "unable to rotate root credentials: no username in configuration",
            ));
        }
        if cfg.password.is_empty() {
            return Err(LogicalError::invalid(
                "unable to rotate root credentials: no password in configuration",
            ));
        }
        if !cfg.connection_url.contains("{{password}}") {
            // A password written into the URL would outlive the rotation.
            return Err(LogicalError::invalid(
                "unable to rotate root credentials: connection_url must use {{username}} and {{password}} templating",
            ));
        }
        let wal_key = format!("{ROOT_WAL_PREFIX}{name}");
        let in_flight = model::get_wal(s, &wal_key).await?.is_some();
        let password = self.wal_password(s, &wal_key, &cfg).await?;
        let mut next = cfg.clone();
        next.password = password.to_string();
        // A change in flight may have reached the database already: if the
        // new password works, only storage is behind.
        let done = in_flight && {
            let probe =
                Pool::new(&next).map_err(|e| plugin::to_logical("invalid connection", e))?;
            let ok = probe.verify().await.is_ok();
            probe.close();
            ok
        };
        if !done {
            let statements = if cfg.root_rotation_statements.is_empty() {
                plugin::default_password_statements(&cfg.plugin_name)
            } else {
                cfg.root_rotation_statements.clone()
            };
            let (pool, _) = self.pool(s, name).await?;
            let stmt_password = Zeroizing::new(plugin::statement_password(&cfg, &password));
            self.set_password(
                s,
                &wal_key,
                &pool,
                &statements,
                &Values {
                    name: &cfg.username,
                    password: &stmt_password,
                    expiration: "",
                },
            )
            .await
            .map_err(|e| {
                plugin::to_logical(
                    "failed to rotate the root credentials",
                    plugin::redact(e, &[password.as_str(), stmt_password.as_str()]),
                )
            })?;
        }
        cfg.password = next.password.clone();
        model::put_config(s, &cfg).await?;
        self.drop_pool(name);
        s.delete(&wal_key).await?;
        Ok(())
    }

    /// The active node's tick: finish changes in flight, then rotate the
    /// static roles that are due.
    pub(crate) async fn periodic(&self, s: &dyn Storage) -> Result<(), LogicalError> {
        for name in model::names(s, ROOT_WAL_PREFIX).await? {
            if model::get_config(s, &name).await?.is_none() {
                s.delete(&format!("{ROOT_WAL_PREFIX}{name}")).await?;
            } else if let Err(e) = self.rotate_root(s, &name).await {
                tracing::warn!(connection = %name, "root rotation in flight not finished yet: {e}");
            }
        }
        for name in model::names(s, STATIC_WAL_PREFIX).await? {
            if model::get_static_role(s, &name).await?.is_none() {
                let _one = self.rotations.lock().await;
                if model::get_static_role(s, &name).await?.is_none() {
                    s.delete(&format!("{STATIC_WAL_PREFIX}{name}")).await?;
                }
            } else if let Err(e) = self.rotate_static(s, &name, false).await {
                tracing::warn!(role = %name, "password change in flight not finished yet: {e}");
            }
        }
        let now = self.system.now();
        for name in model::names(s, STATIC_ROLE_PREFIX).await? {
            let Some(r) = model::get_static_role(s, &name).await? else {
                continue;
            };
            match due(&r, now) {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(e) = self.rotate_static(s, &name, true).await {
                        tracing::warn!(role = %name, "static role rotation failed, retried on the next tick: {e}");
                    }
                }
                Err(_) => {
                    // Re-read under the lock: a rotation or an update may
                    // have moved it meanwhile.
                    let _one = self.rotations.lock().await;
                    if let Some(mut r) = model::get_static_role(s, &name).await? {
                        if let Err(next) = due(&r, now) {
                            tracing::warn!(role = %name, "rotation window missed; next rotation at {next}");
                            r.next_rotation = next;
                            model::put_static_role(s, &r).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(schedule: Schedule, next: i64) -> StaticRole {
        StaticRole {
            name: "r".into(),
            db_name: "db".into(),
            username: "u".into(),
            rotation_statements: vec![],
            schedule,
            password: String::new(),
            last_rotation: 0,
            next_rotation: next,
        }
    }

    #[test]
    fn periods_add_to_the_last_rotation() {
        assert_eq!(next_rotation(&Schedule::Period(60), 1_000).unwrap(), 1_060);
        assert_eq!(due(&role(Schedule::Period(60), 1_060), 1_059), Ok(false));
        assert_eq!(due(&role(Schedule::Period(60), 1_060), 1_060), Ok(true));
        // Overdue by far (an election, a restart): still rotated, once.
        assert_eq!(due(&role(Schedule::Period(60), 1_060), 99_999), Ok(true));
    }

    #[test]
    fn schedules_follow_cron_and_their_window() {
        // 2026-12-06 12:00:00 UTC
        let noon = 1_796_558_400;
        let daily = Schedule::Cron {
            schedule: "0 13 * * *".into(),
            window: 3600,
        };
        assert_eq!(next_rotation(&daily, noon).unwrap(), noon + 3600);
        let r = role(daily.clone(), noon + 3600);
        assert_eq!(due(&r, noon + 3599), Ok(false));
        assert_eq!(due(&r, noon + 3600 + 1800), Ok(true));
        // Past the window: wait for tomorrow's time.
        assert_eq!(due(&r, noon + 3600 + 3601), Err(noon + 3600 + 86_400));
        let open = Schedule::Cron {
            schedule: "0 13 * * *".into(),
            window: 0,
        };
        assert_eq!(due(&role(open, noon + 3600), noon + 80_000), Ok(true));
    }

    #[test]
    fn cron_expressions_have_five_fields() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 0 * * SUN").is_ok());
        assert!(parse_cron("0 */5 * * * *").is_err());
        assert!(parse_cron("not cron").is_err());
    }
}
