//! Assembles the KV engines from their path groups.

use std::sync::Arc;

use arca_sdk::{Backend, Framework};
use chrono::{DateTime, Utc};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{
    path_config, path_data, path_delete, path_destroy, path_metadata, path_passthrough,
    path_subkeys,
};

/// KV version 1 (non-versioned) engine state: none.
#[derive(Debug, Default)]
pub struct KvV1;

/// The clock KV v2 stamps versions with (replaceable in tests).
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

const LOCK_STRIPES: usize = 64;

/// KV version 2 engine state: a clock and per-key write locks. No cached
/// data: everything is read from storage on each request.
pub struct KvV2 {
    clock: Clock,
    /// Striped per-secret locks: writers to one path run one at a time.
    stripes: Vec<RwLock<()>>,
    /// Serialises read-modify-write of `config`.
    config_lock: RwLock<()>,
}

impl Default for KvV2 {
    fn default() -> Self {
        KvV2::with_clock(Arc::new(Utc::now))
    }
}

impl KvV2 {
    pub(crate) fn with_clock(clock: Clock) -> Self {
        KvV2 {
            clock,
            stripes: (0..LOCK_STRIPES).map(|_| RwLock::new(())).collect(),
            config_lock: RwLock::new(()),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn stripe(&self, path: &str) -> &RwLock<()> {
        // FNV-1a: stable and cheap; collisions only cost some concurrency.
        let h = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.stripes[(h % LOCK_STRIPES as u64) as usize]
    }

    pub(crate) async fn read_lock(&self, path: &str) -> RwLockReadGuard<'_, ()> {
        self.stripe(path).read().await
    }

    pub(crate) async fn write_lock(&self, path: &str) -> RwLockWriteGuard<'_, ()> {
        self.stripe(path).write().await
    }

    pub(crate) async fn config_write_lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.config_lock.write().await
    }
}

/// The KV version 1 engine.
pub fn kv_v1() -> Framework<KvV1> {
    Framework::new("kv", KvV1, path_passthrough::paths())
}

/// The KV version 2 engine.
pub fn kv_v2() -> Framework<KvV2> {
    kv_v2_with(KvV2::default())
}

pub(crate) fn kv_v2_with(state: KvV2) -> Framework<KvV2> {
    let mut paths = vec![path_config::path()];
    paths.extend(path_data::paths());
    paths.extend(path_delete::paths());
    paths.push(path_destroy::path());
    paths.extend(path_metadata::paths());
    paths.push(path_subkeys::path());
    // A mount tuned from version 1 to 2 converts its v1 secrets on the
    // active node; the conversion is idempotent and resumes after a crash.
    Framework::new("kv", state, paths)
        .with_initialize(|_, storage| Box::pin(crate::upgrade_v1_to_v2(storage)))
}

/// The engine for a mount's `version` option: 2 is versioned, anything else is version 1.
pub fn factory(version: u8) -> Box<dyn Backend> {
    match version {
        2 => Box::new(kv_v2()),
        _ => Box::new(kv_v1()),
    }
}

/// The registry's factory: the mount option `version` picks KV v1 or v2.
pub fn new_backend(
    cfg: &arca_sdk::BackendConfig,
) -> Result<std::sync::Arc<dyn Backend>, arca_sdk::LogicalError> {
    let version = match cfg.options.get("version").map(String::as_str) {
        Some("2") => 2,
        None | Some("") | Some("1") => 1,
        Some(v) => {
            return Err(arca_sdk::LogicalError::invalid(format!(
                "invalid KV version {v:?}: use 1 or 2"
            )))
        }
    };
    Ok(std::sync::Arc::from(factory(version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{ReadOnly, V2};
    use arca_sdk::testing::InmemStorage;
    use arca_sdk::{LogicalError, Operation, Request};
    use serde_json::json;

    #[test]
    fn path_declarations_lint_clean() {
        assert_eq!(kv_v1().lint(), Vec::<String>::new());
        assert_eq!(kv_v2().lint(), Vec::<String>::new());
    }

    #[test]
    fn factory_picks_the_version() {
        assert_eq!(factory(1).backend_type(), "kv");
        assert_eq!(factory(2).backend_type(), "kv");
        assert!(factory(2)
            .help("data/x", "kv/data/x")
            .unwrap()
            .contains("version"));
        assert!(factory(1).help("x", "kv/x").is_some());
    }

    #[tokio::test]
    async fn v2_help_covers_every_path() {
        let f = kv_v2();
        for p in [
            "config",
            "data/a",
            "delete/a",
            "undelete/a",
            "destroy/a",
            "metadata/a",
            "detailed-metadata/",
            "subkeys/a",
        ] {
            assert!(f.help(p, p).is_some_and(|h| !h.trim().is_empty()), "{p}");
        }
        let e = f
            .handle(
                &Request::new(Operation::Read, "nope/x"),
                &InmemStorage::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, LogicalError::UnsupportedPath(_)));
    }

    /// On a standby every storage write fails: reads, lists and existence
    /// checks must never attempt one.
    #[tokio::test]
    async fn reads_lists_and_existence_checks_never_write() {
        let h = V2::new();
        h.write("config", json!({"delete_version_after": "1h"}))
            .await;
        h.write("data/live", json!({"data": {"a": {"b": 1}}})).await;
        h.write("data/dir/x y", json!({"data": {"k": "v"}})).await;
        h.write("data/gone", json!({"data": {"k": "v"}})).await;
        h.ok(Operation::Delete, "data/gone", json!({})).await;
        h.write("data/burnt", json!({"data": {"k": "v"}})).await;
        h.write("destroy/burnt", json!({"versions": [1]})).await;
        h.write("metadata/only-meta", json!({"max_versions": 2}))
            .await;
        h.clock.advance(7200); // every version's delete_version_after has passed

        let ro = ReadOnly(&h.storage);
        let b = &h.backend;
        let cases = [
            (Operation::Read, "config", json!({})),
            (Operation::Read, "data/live", json!({"version": "1"})),
            (Operation::Read, "data/gone", json!({})),
            (Operation::Read, "data/burnt", json!({})),
            (Operation::Read, "data/missing", json!({})),
            (Operation::Read, "data/only-meta", json!({})),
            (Operation::Read, "metadata/live", json!({})),
            (Operation::Read, "metadata/missing", json!({})),
            (Operation::Read, "subkeys/live", json!({"depth": "1"})),
            (Operation::Read, "subkeys/gone", json!({})),
            (Operation::List, "metadata/", json!({})),
            (
                Operation::List,
                "metadata/dir",
                json!({"after": "a", "limit": "1"}),
            ),
            (Operation::List, "metadata/nothing/", json!({})),
            (Operation::List, "detailed-metadata/", json!({})),
        ];
        for (op, path, data) in cases {
            let req = Request::new(op, path).with_data(data);
            match b.handle(&req, &ro).await {
                Ok(_) | Err(LogicalError::NotFound) => {}
                Err(e) => panic!("{op:?} {path}: {e:?}"),
            }
            b.existence(&req, &ro)
                .await
                .unwrap_or_else(|e| panic!("existence {path}: {e:?}"));
        }
        // ...and a write on a read-only node fails with ReadOnly, so core can forward it.
        let req = Request::new(Operation::Update, "data/live").with_data(json!({"data": {"x": 1}}));
        assert_eq!(
            b.handle(&req, &ro).await.unwrap_err(),
            LogicalError::ReadOnly
        );

        let v1 = kv_v1();
        let s = InmemStorage::new();
        v1.handle(
            &Request::new(Operation::Update, "a/b").with_data(json!({"k": "v", "ttl": "1h"})),
            &s,
        )
        .await
        .unwrap();
        let ro = ReadOnly(&s);
        for (op, path) in [
            (Operation::Read, "a/b"),
            (Operation::Read, "a/zz"),
            (Operation::List, "a/"),
            (Operation::List, ""),
        ] {
            let req = Request::new(op, path);
            match v1.handle(&req, &ro).await {
                Ok(_) | Err(LogicalError::NotFound) => {}
                Err(e) => panic!("{op:?} {path}: {e:?}"),
            }
            v1.existence(&req, &ro).await.unwrap();
        }
    }
}
