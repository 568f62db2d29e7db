//! Rate limit quotas (`sys/quotas/rate-limit/:name`, `sys/quotas/config`).
//!
//! The rules are one replicated document, `core/quotas`, reloaded on every
//! node when it changes (`crate::invalidate`). The counting is per node and
//! per client IP address, as in Vault: a token bucket per (quota, client)
//! that holds `rate` requests and refills `rate` per `interval`; with a
//! `block_interval`, a client that empties its bucket is refused for that
//! long.
//!
//! Invariants:
//! - A request is counted against exactly one quota: the most specific one
//!   that matches its path (an exact path, then the longest glob prefix,
//!   then its mount's, then the global one with an empty path).
//! - Exempt paths (`rate_limit_exempt_paths`, Vault's defaults when unset:
//!   health, seal status, unseal, root generation) are never counted, and
//!   neither are requests forwarded from a standby (the node the client
//!   reached counted them).
//! - Memory is bounded: at most [`MAX_CLIENTS`] buckets per quota; past
//!   that, buckets that are full and not blocked (the state a new client
//!   starts in) are dropped first, then the oldest.
//! - Time comes from the caller ([`QuotaManager::check_at`]), so tests move
//!   the clock instead of sleeping.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

/// Where the quota rules are stored (root view).
pub(crate) const QUOTAS_TABLE: &str = "core/quotas";

/// Buckets kept per quota.
pub(crate) const MAX_CLIENTS: usize = 65_536;

/// Vault's exempt paths when `rate_limit_exempt_paths` was never set.
pub(crate) const DEFAULT_EXEMPT: &[&str] = &[
    "sys/generate-recovery-token/attempt",
    "sys/generate-recovery-token/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
];

/// One `sys/quotas/rate-limit/:name`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct RateLimit {
    pub name: String,
    /// Empty (global), a mount path with a trailing slash, or a path below
    /// a mount (a trailing `*` makes it a prefix).
    pub path: String,
    pub rate: f64,
    /// Seconds.
    pub interval: u64,
    /// Seconds; 0: no blocking.
    pub block_interval: u64,
}

/// `sys/quotas/config`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct QuotaConfig {
    pub rate_limit_exempt_paths: Vec<String>,
    pub enable_rate_limit_audit_logging: bool,
    pub enable_rate_limit_response_headers: bool,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            rate_limit_exempt_paths: DEFAULT_EXEMPT.iter().map(|s| s.to_string()).collect(),
            enable_rate_limit_audit_logging: false,
            enable_rate_limit_response_headers: false,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct QuotaTable {
    #[serde(default)]
    pub config: Option<QuotaConfig>,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimit>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

/// A rule with its buckets.
struct Limiter {
    rule: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// What [`QuotaManager::check_at`] decided for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaDecision {
    pub allowed: bool,
    /// The quota that counted the request.
    pub quota: String,
    /// Its `rate` (requests per interval), for `X-Ratelimit-Limit`.
    pub limit: u64,
    /// Requests left now, for `X-Ratelimit-Remaining`.
    pub remaining: u64,
    /// Seconds until the bucket is full again, for `X-Ratelimit-Reset`.
    pub reset: u64,
    /// Seconds to wait before the next request can pass (`Retry-After`).
    pub retry_after: u64,
    /// `enable_rate_limit_response_headers`.
    pub headers: bool,
    /// `enable_rate_limit_audit_logging`.
    pub audit: bool,
}

impl Limiter {
    fn new(rule: RateLimit) -> Limiter {
        Limiter {
            rule,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn per_second(&self) -> f64 {
        self.rule.rate / self.rule.interval.max(1) as f64
    }

    fn take(&self, ip: IpAddr, now: Instant) -> (bool, f64, u64) {
        let capacity = self.rule.rate;
        let per_second = self.per_second();
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(&ip) && buckets.len() >= MAX_CLIENTS {
            evict(&mut buckets, capacity, per_second, now);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            at: now,
            blocked_until: None,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(capacity);
        b.at = now;
        if let Some(until) = b.blocked_until {
            if until > now {
                let wait = until.saturating_duration_since(now);
                return (false, b.tokens, ceil_secs(wait));
            }
            b.blocked_until = None;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return (true, b.tokens, 0);
        }
        if self.rule.block_interval > 0 {
            let block = Duration::from_secs(self.rule.block_interval);
            b.blocked_until = Some(now + block);
            return (false, b.tokens, self.rule.block_interval);
        }
        let wait = (1.0 - b.tokens) / per_second.max(f64::MIN_POSITIVE);
        (false, b.tokens, wait.ceil().max(1.0) as u64)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs_f64().ceil() as u64;
    s.max(1)
}

/// Drops buckets a new client would start with (full, not blocked); if
/// none is, the least recently used one.
fn evict(buckets: &mut HashMap<IpAddr, Bucket>, capacity: f64, per_second: f64, now: Instant) {
    let before = buckets.len();
    buckets.retain(|_, b| {
        let full =
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second >= capacity;
        let blocked = b.blocked_until.is_some_and(|u| u > now);
        !full || blocked
    });
    if buckets.len() == before {
        if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(ip, _)| *ip) {
            buckets.remove(&oldest);
        }
    }
}

struct Rules {
    config: QuotaConfig,
    limiters: Vec<Arc<Limiter>>,
}

pub(crate) struct QuotaManager {
    rules: RwLock<Arc<Rules>>,
    edits: tokio::sync::Mutex<()>,
}

impl QuotaManager {
    pub(crate) fn new() -> QuotaManager {
        QuotaManager {
            rules: RwLock::new(Arc::new(Rules {
                config: QuotaConfig::default(),
                limiters: Vec::new(),
            })),
            edits: tokio::sync::Mutex::new(()),
        }
    }

    /// (Re)loads the stored rules. A rule whose definition did not change
    /// keeps its buckets (clients keep their counts across edits of other
    /// rules).
    pub(crate) async fn load(&self, root: &dyn Storage) -> Result<(), LogicalError> {
        let table: QuotaTable = get_json(root, QUOTAS_TABLE).await?.unwrap_or_default();
        self.install(table);
        Ok(())
    }

    fn install(&self, table: QuotaTable) {
        let old = self.rules.read().clone();
        let limiters = table
            .rate_limits
            .into_values()
            .map(|rule| {
                old.limiters
                    .iter()
                    .find(|l| l.rule == rule)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Limiter::new(rule)))
            })
            .collect();
        *self.rules.write() = Arc::new(Rules {
            config: table.config.unwrap_or_default(),
            limiters,
        });
    }

    /// True when no rate limit quota exists (requests skip the check).
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.read().limiters.is_empty()
    }

    pub(crate) fn clear(&self) {
        self.install(QuotaTable::default());
    }

    /// Applies `change` to the stored table under the edit lock, stores it
    /// and installs it.
    pub(crate) async fn edit<T>(
        &self,
        root: &dyn Storage,
        change: impl FnOnce(&mut QuotaTable) -> Result<T, LogicalError>,
    ) -> Result<T, LogicalError> {
        let _one = self.edits.lock().await;
        let mut table: QuotaTable = get_json(root, QUOTAS_TABLE).await?.unwrap_or_default();
        let out = change(&mut table)?;
        put_json(root, QUOTAS_TABLE, &table).await?;
        self.install(table);
        Ok(out)
    }

    pub(crate) async fn table(&self, root: &dyn Storage) -> Result<QuotaTable, LogicalError> {
        Ok(get_json(root, QUOTAS_TABLE).await?.unwrap_or_default())
    }

    /// Counts a request for `path` (below `/v1/`, on the mount
    /// `mount`) from `ip` at `now`; `None` when no quota applies.
    pub(crate) fn check_at(
        &self,
        path: &str,
        mount: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Option<QuotaDecision> {
        let rules = self.rules.read().clone();
        if rules.limiters.is_empty() || exempt(&rules.config.rate_limit_exempt_paths, path) {
            return None;
        }
        let limiter = most_specific(&rules.limiters, path, mount)?;
        let (allowed, tokens, retry_after) = limiter.take(ip, now);
        let missing = (limiter.rule.rate - tokens).max(0.0);
        let reset = (missing / limiter.per_second().max(f64::MIN_POSITIVE)).ceil() as u64;
        if !allowed {
            arca_metrics::incr(
                "vault.quota.rate_limit.violation",
                &[("name", limiter.rule.name.as_str())],
                1,
            );
        }
        Some(QuotaDecision {
            allowed,
            quota: limiter.rule.name.clone(),
            limit: limiter.rule.rate.floor() as u64,
            remaining: tokens.max(0.0).floor() as u64,
            reset,
            retry_after,
            headers: rules.config.enable_rate_limit_response_headers,
            audit: rules.config.enable_rate_limit_audit_logging,
        })
    }
}

/// An exempt path matches exactly, or as a prefix when it ends in `*`.
fn exempt(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p.trim_end_matches('/') == path.trim_end_matches('/'),
    })
}

fn most_specific<'a>(
    limiters: &'a [Arc<Limiter>],
    path: &str,
    mount: Option<&str>,
) -> Option<&'a Arc<Limiter>> {
    // Rank: 3 exact path, 2 glob (longer prefix first), 1 mount, 0 global.
    let mut best: Option<(u8, usize, &Arc<Limiter>)> = None;
    for l in limiters {
        let q = l.rule.path.as_str();
        let rank = if q.is_empty() {
            Some((0, 0))
        } else if Some(q) == mount {
            Some((1, q.len()))
        } else if let Some(prefix) = q.strip_suffix('*') {
            path.starts_with(prefix).then_some((2, prefix.len()))
        } else if q.trim_end_matches('/') == path.trim_end_matches('/') {
            Some((3, q.len()))
        } else {
            None
        };
        if let Some((r, len)) = rank {
            if best.is_none_or(|(br, bl, _)| (r, len) > (br, bl)) {
                best = Some((r, len, l));
            }
        }
    }
    best.map(|(_, _, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, path: &str, rate: f64, interval: u64, block: u64) -> RateLimit {
        RateLimit {
            name: name.into(),
            path: path.into(),
            rate,
            interval,
            block_interval: block,
        }
    }

    fn manager(rules: Vec<RateLimit>) -> QuotaManager {
        let m = QuotaManager::new();
        m.install(QuotaTable {
            config: None,
            rate_limits: rules.into_iter().map(|r| (r.name.clone(), r)).collect(),
        });
        m
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn a_bucket_empties_refills_and_is_per_client() {
        let m = manager(vec![rule("g", "", 3.0, 10, 0)]);
        let t0 = Instant::now();
        for i in 0..3 {
            let d = m.check_at("secret/data/x", Some("secret/"), A, t0).unwrap();
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 2 - i);
        }
        let d = m.check_at("secret/data/x", Some("secret/"), A, t0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.quota, "g");
        assert_eq!(d.limit, 3);
        assert!(d.retry_after >= 1 && d.retry_after <= 4, "{d:?}");
        // Another client keeps its own bucket.
        assert!(
            m.check_at("secret/data/x", Some("secret/"), B, t0)
                .unwrap()
                .allowed
        );
        // One token comes back every interval/rate seconds.
        let later = t0 + Duration::from_millis(3400);
        assert!(
            m.check_at("secret/data/x", Some("secret/"), A, later)
                .unwrap()
                .allowed
        );
        assert!(
            !m.check_at("secret/data/x", Some("secret/"), A, later)
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn block_interval_holds_the_client_back() {
        let m = manager(vec![rule("g", "", 1.0, 1, 60)]);
        let t0 = Instant::now();
        assert!(m.check_at("kv/a", Some("kv/"), A, t0).unwrap().allowed);
        let d = m.check_at("kv/a", Some("kv/"), A, t0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 60);
        // Refilled long ago, still blocked.
        let d = m
            .check_at("kv/a", Some("kv/"), A, t0 + Duration::from_secs(30))
            .unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 30);
        assert!(
            m.check_at("kv/a", Some("kv/"), A, t0 + Duration::from_secs(61))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn the_most_specific_quota_counts() {
        let m = manager(vec![
            rule("global", "", 100.0, 1, 0),
            rule("mount", "secret/", 50.0, 1, 0),
            rule("glob", "secret/data/app/*", 20.0, 1, 0),
            rule("longer-glob", "secret/data/app/db*", 10.0, 1, 0),
            rule("exact", "secret/data/app/x", 5.0, 1, 0),
        ]);
        let t = Instant::now();
        let q = |p: &str, mount: &str| m.check_at(p, Some(mount), A, t).unwrap().quota;
        assert_eq!(q("secret/data/app/x", "secret/"), "exact");
        assert_eq!(q("secret/data/app/dbcreds", "secret/"), "longer-glob");
        assert_eq!(q("secret/data/app/y", "secret/"), "glob");
        assert_eq!(q("secret/data/other", "secret/"), "mount");
        assert_eq!(q("pki/issue/web", "pki/"), "global");
    }

    #[test]
    fn exempt_paths_are_not_counted() {
        let m = manager(vec![rule("g", "", 1.0, 60, 0)]);
        let t = Instant::now();
        for _ in 0..5 {
            assert!(m.check_at("sys/health", Some("sys/"), A, t).is_none());
        }
        assert!(
            m.check_at("sys/mounts", Some("sys/"), A, t)
                .unwrap()
                .allowed
        );
        assert!(
            !m.check_at("sys/mounts", Some("sys/"), A, t)
                .unwrap()
                .allowed
        );
        let table = QuotaTable {
            config: Some(QuotaConfig {
                rate_limit_exempt_paths: vec!["secret/data/*".into()],
                ..QuotaConfig::default()
            }),
            rate_limits: BTreeMap::from([("g".to_string(), rule("g", "", 1.0, 60, 0))]),
        };
        m.install(table);
        assert!(m.check_at("secret/data/a", Some("secret/"), A, t).is_none());
        // The default exemptions no longer apply once the list is set.
        assert!(m.check_at("sys/health", Some("sys/"), B, t).is_some());
    }

    #[test]
    fn buckets_are_bounded() {
        let m = manager(vec![rule("g", "", 1.0, 3600, 0)]);
        let t = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            m.check_at("kv/a", Some("kv/"), ip, t);
        }
        let rules = m.rules.read().clone();
        assert!(rules.limiters[0].buckets.lock().len() <= MAX_CLIENTS);
    }

    #[test]
    fn unchanged_rules_keep_their_counts() {
        let m = manager(vec![rule("g", "", 1.0, 3600, 0)]);
        let t = Instant::now();
        assert!(m.check_at("kv/a", Some("kv/"), A, t).unwrap().allowed);
        m.install(QuotaTable {
            config: None,
            rate_limits: BTreeMap::from([
                ("g".to_string(), rule("g", "", 1.0, 3600, 0)),
                ("other".to_string(), rule("other", "pki/", 5.0, 1, 0)),
            ]),
        });
        assert!(!m.check_at("kv/a", Some("kv/"), A, t).unwrap().allowed);
    }
}
