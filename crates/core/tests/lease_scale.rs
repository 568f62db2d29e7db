//! The expiration manager touches only what is due: the storage operations a
//! tick makes are counted under the barrier, with 200 and with 100,000
//! leases that are not due, and with 100 due among 100,100. Counts, not
//! times, are asserted (times are printed as figures; `benchmarks/` has
//! the 10k/100k/1M measurements).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arca_core::{Core, CoreConfig};
use arca_physical::{InmemBackend, Op, PhysicalBackend, PhysicalError};
use arca_sdk::{Operation, Request};
use async_trait::async_trait;
use serde_json::json;

/// Counts the reads (get, list, scan) that reach the physical store.
struct Counting {
    inner: InmemBackend,
    reads: AtomicU64,
}

#[async_trait]
impl PhysicalBackend for Counting {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix).await
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.scan(prefix).await
    }
    async fn batch(&self, ops: Vec<Op>) -> Result<(), PhysicalError> {
        self.inner.batch(ops).await
    }
}

async fn core() -> (Arc<Core>, Arc<Counting>, String) {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let phys = Arc::new(Counting {
        inner: InmemBackend::new(),
        reads: AtomicU64::new(0),
    });
    let core = Core::new(
        phys.clone(),
        CoreConfig {
            engines: arca_sdk::Registry::new().secrets("leases", arca_sdk::testing::lease_backend),
            ..CoreConfig::default()
        },
    );
    let init = core.initialize(1, 1).await.unwrap();
    core.unseal_step(Some(&hex::encode(&init.keys[0])))
        .await
        .unwrap();
    let root = init.root_token.clone();
    let mut req =
        Request::new(Operation::Update, "sys/mounts/leases").with_data(json!({"type": "leases"}));
    req.client_token = Some(root.clone());
    core.handle(req).await.unwrap();
    (core, phys, root)
}

async fn add_leases(core: &Arc<Core>, root: &str, n: usize, ttl: &str, tag: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let (core, root, ttl, tag) = (
            core.clone(),
            root.to_string(),
            ttl.to_string(),
            tag.to_string(),
        );
        tasks.spawn(async move {
            for i in (chunk..n).step_by(8) {
                let mut req = Request::new(Operation::Update, format!("leases/creds/{tag}{i}"))
                    .with_data(json!({"ttl": ttl}));
                req.client_token = Some(root.clone());
                let r = core.handle(req).await.unwrap();
                assert!(!r.lease_id.is_empty());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// Physical reads made by one tick at `at`, and how many leases it revoked.
async fn tick_reads(core: &Core, phys: &Counting, at: i64) -> (u64, usize, f64) {
    let before = phys.reads.load(Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    let r = core.expire_tick(at).await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    (
        phys.reads.load(Ordering::Relaxed) - before,
        r.leases_revoked,
        secs,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_reads_what_is_due_not_every_lease() {
    let now = chrono::Utc::now().timestamp();
    let (core, phys, root) = core().await;
    // A first tick indexes the tokens that existed before (once).
    core.expire_tick(now).await.unwrap();

    add_leases(&core, &root, 200, "1h", "a").await;
    let (small, revoked, t_small) = tick_reads(&core, &phys, now + 10).await;
    assert_eq!(revoked, 0);

    add_leases(&core, &root, 99_800, "1h", "b").await;
    let (large, revoked, t_large) = tick_reads(&core, &phys, now + 10).await;
    assert_eq!(revoked, 0);
    println!(
        "tick with nothing due: {small} reads / {:.3} ms at 200 leases, {large} reads / {:.3} ms at 100,000",
        t_small * 1e3,
        t_large * 1e3
    );
    assert!(
        large <= small + 4,
        "a tick with nothing due must not read more with more leases: {small} reads at 200, {large} at 100,000"
    );
    assert!(large < 50, "{large} reads for a tick with nothing due");

    // 100 due among 100,100: the reads follow the 100.
    add_leases(&core, &root, 100, "5s", "c").await;
    let (due, revoked, t_due) = tick_reads(&core, &phys, now + 60).await;
    assert_eq!(revoked, 100);
    println!(
        "tick revoking 100 of 100,100 leases: {due} reads / {:.1} ms",
        t_due * 1e3
    );
    assert!(
        due < 100 * 20,
        "{due} reads to revoke 100 leases: the tick scans more than what is due"
    );
}
