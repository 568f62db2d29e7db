//! `sys/key-status`, `sys/rotate`, `sys/rotate/keyring`, `sys/rotate/config`
//! (also `sys/rotate/keyring/config`, OpenBao's name), `sys/seal`.
//!
//! Automatic rotation follows Vault: the barrier counts encryptions per key
//! term across the cluster and rotates before `max_operations` (default
//! 3 865 470 566, about 90% of the 2³² random-nonce limit) or when the term
//! is older than `interval`. The settings live in the replicated keyring.
//!
//! `max_operations` must lie between 1 000 000 and the default, as in
//! Vault; the environment variable `ARCA_ROTATE_MIN_OPERATIONS` lowers the
//! minimum (for tests: a smaller budget only rotates more often).

use serde_json::{Map, Value};

use arca_barrier::RotationConfig;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::{legacy, Sys};

/// Lowers the smallest `max_operations` accepted (tests).
pub const MIN_OPERATIONS_ENV: &str = "ARCA_ROTATE_MIN_OPERATIONS";

fn min_operations() -> Result<u64, LogicalError> {
    match std::env::var(MIN_OPERATIONS_ENV) {
        Err(_) => Ok(RotationConfig::MIN_OPERATIONS),
        Ok(v) => v.trim().parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            LogicalError::internal(format!(
                "{MIN_OPERATIONS_ENV}={v:?} is not a positive integer; fix or unset it and restart the server"
            ))
        }),
    }
}

/// A duration as Go's `time.Duration.String` writes whole seconds
/// (`24h0m0s`, `1m30s`, `5s`), as Vault answers.
fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

impl Sys {
    async fn key_status(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let ks = core.barrier.key_status_cluster().await?;
        let mut data = Map::new();
        data.insert("term".into(), Value::from(ks.term));
        data.insert(
            "install_time".into(),
            Value::from(
                ks.install_time
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
        );
        data.insert("encryptions".into(), Value::from(ks.encryptions));
        Ok(Some(legacy(c.req, data)))
    }

    async fn rotate(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        core.barrier.rotate().await?;
        Ok(None)
    }

    async fn rotate_config_read(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let cfg = core.barrier.rotation_config()?;
        let mut data = Map::new();
        data.insert("max_operations".into(), Value::from(cfg.max_operations));
        data.insert("enabled".into(), Value::from(cfg.enabled));
        // Vault answers the number 0 when there is no interval.
        let interval = match cfg.interval {
            0 => Value::from(0),
            s => Value::from(go_duration(s)),
        };
        data.insert("interval".into(), interval);
        Ok(Some(Response::data(data)))
    }

    async fn rotate_config_write(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let mut cfg = core.barrier.rotation_config()?;
        if let Some(n) = c.data.get_i64("max_operations")? {
            cfg.max_operations = u64::try_from(n).unwrap_or(0);
        }
        if let Some(secs) = c.data.get_duration("interval")? {
            cfg.interval = secs;
        }
        if let Some(enabled) = c.data.get_bool("enabled")? {
            cfg.enabled = enabled;
        }
        if cfg.interval != 0 && cfg.interval < RotationConfig::MIN_INTERVAL {
            return Err(LogicalError::invalid(format!(
                "interval must be greater or equal to {}",
                go_duration(RotationConfig::MIN_INTERVAL)
            )));
        }
        let min = min_operations()?;
        if cfg.max_operations < min || cfg.max_operations > RotationConfig::MAX_OPERATIONS {
            return Err(LogicalError::invalid(format!(
                "max_operations must be in the range [{min},{}]",
                RotationConfig::MAX_OPERATIONS
            )));
        }
        core.barrier.set_rotation_config(cfg).await?;
        Ok(None)
    }

    async fn seal(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        // An auto seal does not open the node again until it restarts.
        core.sealed_by_operator
            .store(true, std::sync::atomic::Ordering::Release);
        core.seal().await;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("key-status")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.key_status(c)))
            .help("The current barrier key term, its install time and its encryptions so far."),
        Path::new("rotate(/keyring)?")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rotate(c)))
            .help("Add a new barrier key term; data under older terms stays readable."),
        Path::new("rotate(/keyring)?/config")
            .field(Field::new(
                "max_operations",
                FieldType::Int,
                "Encryptions after which the barrier key is rotated automatically \
                 (1000000 to 3865470566, the default).",
            ))
            .field(Field::new(
                "interval",
                FieldType::Duration,
                "Age at which the barrier key is rotated automatically (at least 24h; 0: never).",
            ))
            .field(Field::new(
                "enabled",
                FieldType::Bool,
                "False stops automatic rotation; encryptions are still counted.",
            ))
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.rotate_config_read(c))
            })
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.rotate_config_write(c))
            })
            .help("When the barrier key is rotated automatically."),
        Path::new("seal")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.seal(c)))
            .help("Seal the node: it drops its keys and answers 503 until unsealed."),
    ]
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_read_like_vaults() {
        assert_eq!(go_duration(86_400), "24h0m0s");
        assert_eq!(go_duration(4320 * 3600), "4320h0m0s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(5), "5s");
    }
}
