//! Leader-only background work.
//!
//! Every `interval` the active node (the only node in single-node mode, the
//! Raft leader in a cluster) calls [`arca_sdk::Backend::periodic`] on every
//! mounted engine, one mount after another, with the mount's own storage
//! view. Standbys and sealed nodes skip that round, so the work runs on one
//! node at a time and moves with leadership; writes it makes are replicated
//! like a request's. A failure is logged and retried at the next tick.
//!
//! Every unsealed node, active or not, also renews its own cluster-port
//! certificate on the tick once it is past half its life
//! (`crate::cluster_tls`).
//!
//! The expiration manager (`crate::expiration`) ticks every second on the
//! same task, also on the active node only.
//!
//! Each round first asks the barrier whether its key term is due for
//! automatic rotation (`sys/rotate/config`: the encryption budget spent or
//! the term older than `interval`); writes rotate on their own when the
//! budget runs out, this catches the age limit and counts left by others.

use std::sync::Arc;
use std::time::Duration;

use arca_sdk::LogicalError;

use crate::core::Core;

/// How often the active node counts leases and tokens for the usage gauges
/// (`vault.expire.num_leases`, `vault.token.count`): Vault's
/// `usage_gauge_period` default.
const USAGE_GAUGE_PERIOD: Duration = Duration::from_secs(600);

/// How often the expiration manager looks for due leases and tokens (it is
/// also woken at once when a revocation schedules leases).
const EXPIRATION_TICK: Duration = Duration::from_secs(1);

impl Core {
    /// Starts the ticker (once per process; it ends with the core, or with
    /// [`Core::stop_periodic`]).
    pub fn spawn_periodic(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        let mut stop = self.periodic_stop.subscribe();
        let rounds = async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
                let Some(core) = weak.upgrade() else { return };
                core.renew_cluster_identity_if_due().await;
                core.run_periodic().await;
            }
        };
        let weak = Arc::downgrade(self);
        let mut stop = self.periodic_stop.subscribe();
        let expirations = async move {
            let mut tick = tokio::time::interval(EXPIRATION_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let Some(core) = weak.upgrade() else { return };
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = core.expiration_wake.notified() => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
                match core.expire_tick(crate::core::now()).await {
                    Ok(r) if r.leases_revoked + r.tokens_revoked + r.leases_failed > 0 => {
                        tracing::debug!(
                            leases = r.leases_revoked,
                            failed = r.leases_failed,
                            tokens = r.tokens_revoked,
                            "expired leases and tokens revoked"
                        )
                    }
                    Ok(_) | Err(LogicalError::ReadOnly) | Err(LogicalError::Sealed) => {}
                    Err(e) => tracing::warn!(
                        "the expiration manager's round failed (retried at the next tick): {e}"
                    ),
                }
            }
        };
        let task = tokio::spawn(async move {
            tokio::join!(rounds, expirations);
        });
        *self.periodic_task.lock() = Some(task);
    }

    /// Stops the ticker: no new round starts, and a round under way is
    /// waited for (at most `timeout`) so that it is not cut off midway.
    /// True when the ticker has ended (or never ran).
    pub async fn stop_periodic(&self, timeout: Duration) -> bool {
        let _ = self.periodic_stop.send(true);
        let task = self.periodic_task.lock().take();
        let Some(task) = task else { return true };
        match tokio::time::timeout(timeout, task).await {
            Ok(_) => true,
            Err(_) => {
                tracing::warn!(
                    "a background round did not finish within {timeout:?}; it is cut off"
                );
                false
            }
        }
    }

    /// One round of background work, if this node is the active one.
    pub async fn run_periodic(&self) {
        if self.is_sealed() {
            return;
        }
        if let Some(c) = self.cluster() {
            if !c.state().is_active {
                return;
            }
        }
        match self.barrier.check_rotation(chrono::Utc::now()).await {
            Ok(Some(ks)) => tracing::info!(
                term = ks.term,
                "barrier key rotated automatically (sys/rotate/config)"
            ),
            Ok(None) => {}
            Err(arca_barrier::BarrierError::ReadOnly | arca_barrier::BarrierError::Sealed) => return,
            Err(e) => tracing::warn!(
                "checking whether the barrier key is due for rotation failed (retried at the next tick): {e}"
            ),
        }
        self.record_pending_unseal_key().await;
        let Ok(st) = self.unsealed() else { return };
        self.count_usage_if_due(&st).await;
        let router = st.router.read().clone();
        for r in router.routes() {
            match r.backend.periodic(r.storage.as_ref()).await {
                Ok(()) => {}
                // Leadership moved mid-round: the new leader takes over.
                Err(LogicalError::ReadOnly) => return,
                Err(e) => tracing::warn!(
                    mount = %r.full_path,
                    "background work failed (retried at the next tick): {e}"
                ),
            }
        }
    }

    /// Counts leases and tokens into the usage gauges on the first round
    /// after unseal (or after taking over as leader) and every
    /// [`USAGE_GAUGE_PERIOD`] after that.
    async fn count_usage_if_due(&self, st: &crate::core::Unsealed) {
        {
            let mut at = st.usage_counted.lock();
            if at.is_some_and(|t| t.elapsed() < USAGE_GAUGE_PERIOD) {
                return;
            }
            *at = Some(std::time::Instant::now());
        }
        match st.leases.count().await {
            Ok(n) => arca_metrics::set_gauge("vault.expire.num_leases", &[], n as f64),
            Err(e) => tracing::warn!("counting leases for the usage gauge failed: {e}"),
        }
        match st.tokens.count().await {
            Ok(n) => arca_metrics::set_gauge("vault.token.count", &[], n as f64),
            Err(e) => tracing::warn!("counting tokens for the usage gauge failed: {e}"),
        }
    }
}
