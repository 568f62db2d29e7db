//! The replicated state machine: applies committed entries to the `data`
//! column family and records how far it got.
//!
//! Invariants:
//! - An entry's data changes, `applied` (and, for a membership entry,
//!   `membership`) are written in one batch, so a restarted node's data is
//!   exactly the prefix of the log up to `applied`.
//! - Every entry's responder is answered after its batch is written, so a
//!   write the leader acknowledges is visible to reads on the leader.
//! - After a batch is written, an [`ApplyEvent`] names the keys it changed,
//!   so caches above (mount tables, keyring, engines) can be invalidated on
//!   every node, leader or not.
//! - Installing a snapshot first marks the state machine `installing`; a
//!   node that crashes half-way clears the partial data on restart and Raft
//!   installs the snapshot again.
//! - A snapshot is built from a RocksDB checkpoint taken while `apply` is
//!   not running, so its data and its `last_log_id` agree. It carries the
//!   `stage` column family too, so a node that installs it stages exactly
//!   what the others staged.
//! - An operator's restore replaces `data` only in the entry that commits
//!   it (`crate::restore`); a restore that fails or is abandoned before
//!   leaves `data` as it was.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::{WriteBatch, DB};
use tokio::sync::broadcast;

use crate::snapshot::{self, SnapshotDir, SnapshotFile};
use crate::store::{self, cf, encode, io_err, CF_DATA, CF_SM, CF_STAGE, DATA_END, STAGE_END};
use crate::types::{
    Applied, Command, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, WireOp,
};

type C = TypeConfig;

/// What an applied entry changed, for cache invalidation.
#[derive(Debug, Clone)]
pub enum ApplyEvent {
    /// These physical keys were written or deleted.
    Keys(Arc<Vec<String>>),
    /// Anything may have changed (snapshot installed, data cleared).
    Reset,
}

pub struct StateMachine {
    db: Arc<DB>,
    snaps: SnapshotDir,
    events: broadcast::Sender<ApplyEvent>,
    /// How many events were sent (a subscriber that has handled this many
    /// is up to date with everything applied so far).
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl StateMachine {
    pub(crate) fn open(
        db: Arc<DB>,
        snaps: SnapshotDir,
        events: broadcast::Sender<ApplyEvent>,
        sent: Arc<std::sync::atomic::AtomicU64>,
    ) -> io::Result<Self> {
        snaps.clean_temp()?;
        if db
            .get_cf(cf(&db, CF_SM), "installing")
            .map_err(io_err)?
            .is_some()
        {
            tracing::warn!("an interrupted snapshot install is rolled back; the snapshot will be installed again");
            let mut wb = WriteBatch::default();
            wb.delete_range_cf(cf(&db, CF_DATA), &b""[..], DATA_END);
            wb.delete_range_cf(cf(&db, CF_STAGE), &b""[..], STAGE_END);
            wb.delete_cf(cf(&db, CF_SM), "applied");
            wb.delete_cf(cf(&db, CF_SM), "membership");
            wb.delete_cf(cf(&db, CF_SM), "installing");
            db.write_opt(wb, &store::synced()).map_err(io_err)?;
        }
        Ok(StateMachine {
            db,
            snaps,
            events,
            sent,
        })
    }

    fn read_applied(&self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = store::get::<Option<LogId>>(&self.db, CF_SM, "applied")?.flatten();
        let membership =
            store::get::<StoredMembership>(&self.db, CF_SM, "membership")?.unwrap_or_default();
        Ok((applied, membership))
    }

    fn notify(&self, ev: ApplyEvent) {
        // No subscriber (core sealed) is fine: it reloads when it unseals.
        self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.events.send(ev);
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.read_applied()
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let data = cf(&self.db, CF_DATA);
        let sm = cf(&self.db, CF_SM);
        while let Some((entry, responder)) = entries.try_next().await? {
            if let EntryPayload::Normal(Command::Restore(op)) = &entry.payload {
                // Writes its own batches, `applied` with the last one.
                let db = Arc::clone(&self.db);
                let (op, log_id) = (op.clone(), entry.log_id);
                let out =
                    tokio::task::spawn_blocking(move || crate::restore::apply(&db, &op, &log_id))
                        .await
                        .map_err(io_err)??;
                if out.swapped {
                    self.notify(ApplyEvent::Reset);
                }
                if let Some(r) = responder {
                    r.send(Applied {
                        refused: out.refused,
                    });
                }
                continue;
            }
            let mut wb = WriteBatch::default();
            let mut keys = Vec::new();
            let mut reset = false;
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::Restore(_)) => {
                    unreachable!("restore steps are applied above")
                }
                EntryPayload::Normal(Command::Batch(ops)) => {
                    for op in ops {
                        match op {
                            WireOp::Put(k, v) => {
                                wb.put_cf(data, k.as_bytes(), v);
                                keys.push(k.clone());
                            }
                            WireOp::Delete(k) => {
                                wb.delete_cf(data, k.as_bytes());
                                keys.push(k.clone());
                            }
                            WireOp::Clear => {
                                wb.delete_range_cf(data, &b""[..], DATA_END);
                                reset = true;
                            }
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    wb.put_cf(sm, "membership", encode(&stored)?);
                }
            }
            wb.put_cf(sm, "applied", encode(&Some(entry.log_id))?);
            self.db.write(wb).map_err(io_err)?;
            if reset {
                self.notify(ApplyEvent::Reset);
            } else if !keys.is_empty() {
                self.notify(ApplyEvent::Keys(Arc::new(keys)));
            }
            if let Some(r) = responder {
                r.send(Applied::default());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Runs between applies: the checkpoint and the metadata agree.
        let prepared = (|| -> io::Result<(PathBuf, SnapshotMeta)> {
            let (last_log_id, last_membership) = self.read_applied()?;
            let dir = self.snaps.temp_path("checkpoint");
            rocksdb::checkpoint::Checkpoint::new(&self.db)
                .and_then(|c| c.create_checkpoint(&dir))
                .map_err(|e| io_err(format!("cannot checkpoint the raft database: {e}")))?;
            Ok((
                dir,
                SnapshotMeta {
                    last_log_id,
                    last_membership,
                },
            ))
        })();
        Builder {
            snaps: self.snaps.clone(),
            prepared: prepared.map_err(|e| e.to_string()),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let db = Arc::clone(&self.db);
        let snaps = self.snaps.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || install_blocking(&db, &snaps, &meta, snapshot))
            .await
            .map_err(io_err)??;
        self.notify(ApplyEvent::Reset);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .snaps
            .current()?
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

/// Replaces the data with the snapshot's records.
fn install_blocking(
    db: &DB,
    snaps: &SnapshotDir,
    meta: &SnapshotMeta,
    file: SnapshotFile,
) -> io::Result<()> {
    // Refuse a bad file before touching anything: read it through once.
    let mut r = snapshot::Reader::open(&file.path)?;
    while r.next_record()?.is_some() {}
    // The file becomes the current snapshot first: if we crash below, the
    // restart rolls the data back and Raft installs this snapshot again.
    let current = if file.path.starts_with(&snaps.dir)
        && file
            .path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("tmp-"))
    {
        snaps.commit(&file.path, meta)?
    } else {
        let tmp = snaps.temp_path("install");
        std::fs::copy(&file.path, &tmp)?;
        snaps.commit(&tmp, meta)?
    };
    let data = cf(db, CF_DATA);
    let sm = cf(db, CF_SM);
    db.put_cf_opt(sm, "installing", [1u8], &store::synced())
        .map_err(io_err)?;
    let stage = cf(db, CF_STAGE);
    let mut wb = WriteBatch::default();
    wb.delete_range_cf(data, &b""[..], DATA_END);
    wb.delete_range_cf(stage, &b""[..], STAGE_END);
    let mut r = snapshot::Reader::open(&current.path)?;
    let mut bytes = 0usize;
    while let Some((k, v)) = r.next_record()? {
        bytes += k.len() + v.len();
        match k.split_first() {
            Some((&snapshot::STAGE_MARK, staged)) => wb.put_cf(stage, staged, v),
            _ => wb.put_cf(data, k, v),
        }
        if bytes > 4 << 20 {
            db.write(std::mem::take(&mut wb)).map_err(io_err)?;
            bytes = 0;
        }
    }
    wb.put_cf(sm, "applied", encode(&meta.last_log_id)?);
    wb.put_cf(sm, "membership", encode(&meta.last_membership)?);
    wb.delete_cf(sm, "installing");
    db.write_opt(wb, &store::synced()).map_err(io_err)?;
    tracing::info!(snapshot = %snapshot::name_of(meta), "installed raft snapshot");
    Ok(())
}

/// Builds a snapshot file from a checkpoint prepared by the state machine.
pub struct Builder {
    snaps: SnapshotDir,
    prepared: Result<(PathBuf, SnapshotMeta), String>,
}

impl RaftSnapshotBuilder<C> for Builder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (checkpoint, meta) = self.prepared.clone().map_err(io_err)?;
        let snaps = self.snaps.clone();
        tokio::task::spawn_blocking(move || {
            let res = build_blocking(&snaps, &checkpoint, &meta);
            let _ = std::fs::remove_dir_all(&checkpoint);
            res.map(|snapshot| Snapshot { meta, snapshot })
        })
        .await
        .map_err(io_err)?
    }
}

fn build_blocking(
    snaps: &SnapshotDir,
    checkpoint: &std::path::Path,
    meta: &SnapshotMeta,
) -> io::Result<SnapshotFile> {
    let opts = rocksdb::Options::default();
    let db = DB::open_cf_for_read_only(&opts, checkpoint, store::ALL_CFS, false)
        .map_err(|e| io_err(format!("cannot open the raft checkpoint: {e}")))?;
    let tmp = snaps.temp_path("build");
    let mut w = snapshot::Writer::create(&tmp)?;
    for item in db.iterator_cf(cf(&db, CF_DATA), rocksdb::IteratorMode::Start) {
        let (k, v) = item.map_err(io_err)?;
        w.record(&k, &v)?;
    }
    let mut marked = Vec::new();
    for item in db.iterator_cf(cf(&db, CF_STAGE), rocksdb::IteratorMode::Start) {
        let (k, v) = item.map_err(io_err)?;
        marked.clear();
        marked.push(snapshot::STAGE_MARK);
        marked.extend_from_slice(&k);
        w.record(&marked, &v)?;
    }
    let n = w.finish()?;
    drop(db);
    let file = snaps.commit(&tmp, meta)?;
    tracing::info!(snapshot = %snapshot::name_of(meta), records = n, "built raft snapshot");
    Ok(file)
}
