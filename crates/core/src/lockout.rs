//! User lockout (Vault ≥ 1.13): after `lockout_threshold` failed logins
//! for one alias (a username, a role id) of one auth mount, counted while
//! they come less than `lockout_counter_reset` apart, the alias is locked
//! for `lockout_duration`: its logins answer 403 without checking any
//! credentials. On by default (5 attempts, 15 minutes, 15 minutes) for
//! every auth method that names its login alias
//! (`Framework::with_login_alias`: userpass, approle); tuned per mount
//! (`sys/auth/:path/tune user_lockout_config`), per auth type or for all
//! in the server configuration (`user_lockout "userpass" { ... }`, below
//! a mount's own settings), or off everywhere with
//! `BAO_DISABLE_USER_LOCKOUT=true` (or `VAULT_DISABLE_USER_LOCKOUT`).
//!
//! Invariants:
//! - Failures are counted on the active node only: a standby forwards a
//!   login whose credentials failed, so attempts spread over the nodes of a
//!   cluster are counted together. Counts live in memory (bounded: the
//!   oldest are dropped beyond [`MAX_TRACKED`]); a lock is also written to
//!   storage (`sys/locked-users/<accessor>/<hex alias>`), so every node
//!   refuses the alias and a new leader keeps the lock.
//! - A success resets the count and removes the lock record; an unlock
//!   (`sys/locked-users/:accessor/unlock/:alias`) does the same.
//! - Unknown aliases are counted like known ones, so that a lock does not
//!   tell which usernames exist.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::LogicalError;

use crate::core::{Core, Unsealed};
use crate::mounts::MountEntry;

/// Aliases whose failures are tracked at most (per node).
pub const MAX_TRACKED: usize = 100_000;
const PREFIX: &str = "sys/locked-users/";

/// A mount's lockout settings (`user_lockout_config`), as tuned; a zero
/// or empty value means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserLockoutConfig {
    pub lockout_threshold: u64,
    pub lockout_duration: u64,
    pub lockout_counter_reset: u64,
    pub lockout_disable: bool,
}

/// The settings in force for a mount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    threshold: u64,
    duration: i64,
    counter_reset: i64,
}

fn env_disabled() -> bool {
    ["BAO_DISABLE_USER_LOCKOUT", "VAULT_DISABLE_USER_LOCKOUT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True")))
}

pub(crate) fn policy(
    e: &MountEntry,
    server: &HashMap<String, UserLockoutConfig>,
) -> Option<Policy> {
    let tuned = e.config.user_lockout_config.clone().unwrap_or_default();
    let none = UserLockoutConfig::default();
    // The mount's own settings, then the server's for its type, then the
    // server's for all, then Vault's defaults; any of them may turn it off.
    let layers = [
        &tuned,
        server.get(&e.kind).unwrap_or(&none),
        server.get("all").unwrap_or(&none),
    ];
    if layers.iter().any(|c| c.lockout_disable) || env_disabled() {
        return None;
    }
    let pick = |f: fn(&UserLockoutConfig) -> u64, d: u64| {
        layers.iter().map(|c| f(c)).find(|v| *v != 0).unwrap_or(d)
    };
    Some(Policy {
        threshold: pick(|c| c.lockout_threshold, 5),
        duration: pick(|c| c.lockout_duration, 900) as i64,
        counter_reset: pick(|c| c.lockout_counter_reset, 900) as i64,
    })
}

/// Auth types the server configuration's `user_lockout` stanza may name
/// (`all`, or a method that takes part in lockout).
pub const LOCKOUT_TYPES: &[&str] = &["all", "userpass", "ldap", "approle"];

/// Applies a tune's `user_lockout_config` (an object, or its JSON text;
/// strings or numbers, durations like `5m`) to `base`: keys not given keep
/// their value, unknown keys are refused.
pub(crate) fn parse_config(
    v: &Value,
    base: UserLockoutConfig,
) -> Result<UserLockoutConfig, LogicalError> {
    let parsed;
    let m = match v {
        Value::Object(m) => m,
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| LogicalError::invalid("user_lockout_config must be an object"))?;
            match &parsed {
                Value::Object(m) => m,
                _ => {
                    return Err(LogicalError::invalid(
                        "user_lockout_config must be an object",
                    ))
                }
            }
        }
        _ => {
            return Err(LogicalError::invalid(
                "user_lockout_config must be an object",
            ))
        }
    };
    let mut c = base;
    for (k, v) in m {
        let dur = |v: &Value| {
            arca_sdk::parse_duration(v)
                .map_err(|e| LogicalError::invalid(format!("user_lockout_config.{k}: {e}")))
        };
        match k.as_str() {
            "lockout_threshold" => {
                c.lockout_threshold = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) if s.trim().is_empty() => Some(0),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    LogicalError::invalid(
                        "user_lockout_config.lockout_threshold must be a whole number",
                    )
                })?
            }
            "lockout_duration" => c.lockout_duration = dur(v)?,
            "lockout_counter_reset" | "lockout_counter_reset_duration" => {
                c.lockout_counter_reset = dur(v)?
            }
            "lockout_disable" => {
                c.lockout_disable = match v {
                    Value::Bool(b) => *b,
                    Value::String(s) => s.parse().map_err(|_| {
                        LogicalError::invalid("user_lockout_config.lockout_disable must be a bool")
                    })?,
                    _ => {
                        return Err(LogicalError::invalid(
                            "user_lockout_config.lockout_disable must be a bool",
                        ))
                    }
                }
            }
            other => {
                return Err(LogicalError::invalid(format!(
                    "unknown user_lockout_config key {other:?}: use lockout_threshold, lockout_duration, lockout_counter_reset, lockout_disable"
                )))
            }
        }
    }
    Ok(c)
}

#[derive(Debug, Clone, Copy)]
struct Failed {
    count: u64,
    last: i64,
}

/// The failure counts of this node (used while it is active).
#[derive(Default)]
pub(crate) struct Lockouts {
    failed: parking_lot::Mutex<HashMap<(String, String), Failed>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Locked {
    alias: String,
    locked_at: i64,
}

fn key(accessor: &str, alias: &str) -> String {
    format!("{PREFIX}{accessor}/{}", hex::encode(alias.as_bytes()))
}

impl Core {
    /// Refuses (403) a login for a locked alias.
    pub(crate) async fn lockout_check(
        &self,
        st: &Unsealed,
        p: Policy,
        accessor: &str,
        alias: &str,
        now: i64,
    ) -> Result<(), LogicalError> {
        let k = (accessor.to_string(), alias.to_string());
        if let Some(f) = self.lockouts.failed.lock().get(&k).copied() {
            if f.count >= p.threshold && now - f.last < p.duration {
                return Err(LogicalError::PermissionDenied);
            }
        }
        let locked: Option<Locked> = get_json(st.root_view.as_ref(), &key(accessor, alias)).await?;
        if locked.is_some_and(|l| now - l.locked_at < p.duration) {
            return Err(LogicalError::PermissionDenied);
        }
        Ok(())
    }

    /// Counts a failed login; the failure that reaches the threshold
    /// writes the lock. On a standby: `ReadOnly`, so the login goes to the
    /// active node, which counts it.
    pub(crate) async fn lockout_failed(
        &self,
        st: &Unsealed,
        p: Policy,
        accessor: &str,
        alias: &str,
        now: i64,
    ) -> Result<(), LogicalError> {
        self.require_active()?;
        let count = {
            let mut m = self.lockouts.failed.lock();
            if m.len() >= MAX_TRACKED {
                // Drop the stalest eighth: memory stays bounded.
                let mut v: Vec<((String, String), i64)> =
                    m.iter().map(|(k, f)| (k.clone(), f.last)).collect();
                v.sort_by_key(|(_, t)| *t);
                for (k, _) in v.into_iter().take(MAX_TRACKED / 8) {
                    m.remove(&k);
                }
            }
            let f = m
                .entry((accessor.to_string(), alias.to_string()))
                .or_insert(Failed {
                    count: 0,
                    last: now,
                });
            if now - f.last >= p.counter_reset {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            f.count
        };
        if count == p.threshold {
            put_json(
                st.root_view.as_ref(),
                &key(accessor, alias),
                &Locked {
                    alias: alias.to_string(),
                    locked_at: now,
                },
            )
            .await?;
            tracing::warn!(
                mount_accessor = accessor,
                "an alias is locked out after {count} failed logins"
            );
        }
        Ok(())
    }

    /// A successful login (or an unlock, `force`): the count and any lock
    /// go.
    pub(crate) async fn lockout_reset(
        &self,
        st: &Unsealed,
        accessor: &str,
        alias: &str,
        force: bool,
    ) -> Result<(), LogicalError> {
        let had = self
            .lockouts
            .failed
            .lock()
            .remove(&(accessor.to_string(), alias.to_string()))
            .is_some();
        // Only after failures: an ordinary login writes nothing. (A lock
        // a former leader wrote lapses at its time; until then no login
        // gets this far.)
        if had || force {
            st.root_view.delete(&key(accessor, alias)).await?;
        }
        Ok(())
    }

    /// `GET sys/locked-users`: the aliases locked now, by mount accessor.
    pub(crate) async fn locked_users(
        &self,
        only: Option<&str>,
        now: i64,
    ) -> Result<Value, LogicalError> {
        let st = self.unsealed()?;
        let (_, auth) = self.mount_tables()?;
        let mut mounts = Vec::new();
        let mut total = 0;
        for acc in st.root_view.list(PREFIX).await? {
            let acc = acc.trim_end_matches('/').to_string();
            if only.is_some_and(|o| o != acc) {
                continue;
            }
            let duration = auth
                .entries
                .iter()
                .find(|e| e.accessor == acc)
                .and_then(|e| policy(e, &self.config.user_lockout))
                .map(|p| p.duration)
                .unwrap_or(0);
            let mut aliases = Vec::new();
            for k in st.root_view.list(&format!("{PREFIX}{acc}/")).await? {
                let l: Option<Locked> =
                    get_json(st.root_view.as_ref(), &format!("{PREFIX}{acc}/{k}")).await?;
                if let Some(l) = l.filter(|l| now - l.locked_at < duration) {
                    aliases.push(l.alias);
                }
            }
            if aliases.is_empty() {
                continue;
            }
            aliases.sort();
            total += aliases.len();
            mounts.push(json!({
                "mount_accessor": acc,
                "counts": aliases.len(),
                "alias_identifiers": aliases,
            }));
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m["counts"].as_u64().unwrap_or(0)));
        Ok(json!({
            "by_namespace": if total == 0 { json!([]) } else { json!([{
                "namespace_id": "root",
                "namespace_path": "",
                "counts": total,
                "mount_accessors": mounts,
            }]) },
            "total": total,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_tune_wins_over_the_server_type_which_wins_over_all() {
        let mut e = MountEntry::new("userpass/", "userpass", "");
        let mut server = HashMap::new();
        let p = policy(&e, &server).unwrap();
        assert_eq!((p.threshold, p.duration, p.counter_reset), (5, 900, 900));
        server.insert(
            "all".to_string(),
            UserLockoutConfig {
                lockout_threshold: 20,
                lockout_duration: 60,
                ..Default::default()
            },
        );
        server.insert(
            "userpass".to_string(),
            UserLockoutConfig {
                lockout_threshold: 10,
                ..Default::default()
            },
        );
        let p = policy(&e, &server).unwrap();
        assert_eq!((p.threshold, p.duration, p.counter_reset), (10, 60, 900));
        e.config.user_lockout_config = Some(UserLockoutConfig {
            lockout_threshold: 3,
            ..Default::default()
        });
        assert_eq!(policy(&e, &server).unwrap().threshold, 3);
        // Another type gets only `all`.
        let ldap = MountEntry::new("ldap/", "ldap", "");
        assert_eq!(policy(&ldap, &server).unwrap().threshold, 20);
        server.get_mut("all").unwrap().lockout_disable = true;
        assert!(policy(&ldap, &server).is_none());
    }

    #[test]
    fn tune_values_parse_as_vault_sends_them() {
        let c = parse_config(
            &json!({
                "lockout_threshold": "3",
                "lockout_duration": "5m",
                "lockout_counter_reset": "1h",
                "lockout_disable": false
            }),
            UserLockoutConfig::default(),
        )
        .unwrap();
        assert_eq!(
            c,
            UserLockoutConfig {
                lockout_threshold: 3,
                lockout_duration: 300,
                lockout_counter_reset: 3600,
                lockout_disable: false
            }
        );
        let d = UserLockoutConfig::default;
        assert!(parse_config(&json!({"lockout_treshold": "3"}), d()).is_err());
        assert!(parse_config(&json!({"lockout_threshold": "three"}), d()).is_err());
        assert!(parse_config(&json!({"lockout_duration": "soon"}), d()).is_err());
        // The CLI sends only what was given: the rest stays.
        let merged = parse_config(&json!("{\"lockout_duration\": \"1m\"}"), c.clone()).unwrap();
        assert_eq!((merged.lockout_threshold, merged.lockout_duration), (3, 60));
    }
}
