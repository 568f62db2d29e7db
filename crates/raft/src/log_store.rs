//! Raft log storage on RocksDB (column families `log` and `meta`).
//!
//! Invariants:
//! - `save_vote` returns only once the vote is on disk (synced write).
//! - Appended entries are readable as soon as `append` returns; Raft is told
//!   they are flushed only after a WAL sync that covers them. Syncs are
//!   grouped: one background thread syncs once for every append that queued
//!   up meanwhile, so concurrent writes share an fsync.
//! - Truncation is synced; purge records `last_purged` before deleting, in
//!   the same batch.
//! - All writes go through one database, so they reach disk in the order
//!   they were made.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{mpsc, Arc};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use crate::store::{self, cf, decode, encode, io_err, log_index, log_key, CF_LOG, CF_META};
use crate::types::{Entry, LogId, TypeConfig, Vote};

type C = TypeConfig;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    syncer: mpsc::Sender<IOFlushed<C>>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        let (tx, rx) = mpsc::channel::<IOFlushed<C>>();
        let sync_db = Arc::clone(&db);
        std::thread::Builder::new()
            .name("arca-raft-wal-sync".into())
            .spawn(move || {
                // Ends when every LogStore clone (the senders) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let res = sync_db.flush_wal(true).map_err(io_err);
                    for cb in waiting {
                        cb.io_completed(match &res {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io_err(e)),
                        });
                    }
                }
            })
            .expect("cannot start the WAL sync thread");
        LogStore { db, syncer: tx }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        store::get(&self.db, CF_META, key)
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let mut it = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        match it.next() {
            Some(Ok((_, v))) => Ok(Some(decode::<Entry>(&v)?.log_id)),
            Some(Err(e)) => Err(io_err(e)),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&log_key(start), Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(io_err)?;
            let idx = log_index(&k)?;
            if !range.contains(&idx) {
                break;
            }
            out.push(decode::<Entry>(&v)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.meta("vote")
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged: Option<LogId> = self.meta("last_purged")?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = encode(vote)?;
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            db.put_cf_opt(cf(&db, CF_META), "vote", bytes, &store::synced())
                .map_err(io_err)
        })
        .await
        .map_err(io_err)?
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: it only saves re-applying after a restart, and the WAL
        // order keeps it consistent with the entries it names.
        let bytes = encode(&committed)?;
        self.db
            .put_cf(cf(&self.db, CF_META), "committed", bytes)
            .map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.meta::<Option<LogId>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut wb = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        for e in entries {
            wb.put_cf(log, log_key(e.log_id.index), encode(&e)?);
        }
        self.db.write(wb).map_err(io_err)?;
        self.syncer
            .send(callback)
            .map_err(|_| io_err("the WAL sync thread has stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut wb = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        wb.delete_range_cf(log, log_key(from), log_key(u64::MAX));
        wb.delete_cf(log, log_key(u64::MAX));
        self.db.write_opt(wb, &store::synced()).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut wb = WriteBatch::default();
        wb.put_cf(cf(&self.db, CF_META), "last_purged", encode(&log_id)?);
        wb.delete_range_cf(
            cf(&self.db, CF_LOG),
            log_key(0),
            log_key(log_id.index.saturating_add(1)),
        );
        self.db.write(wb).map_err(io_err)
    }
}
