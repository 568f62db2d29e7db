//! An operator's snapshot restore (`sys/storage/raft/snapshot`), made
//! atomic: the snapshot's records are first staged beside the live data,
//! then one log entry swaps them in.
//!
//! 1. The leader reads the snapshot file through once (structure, end
//!    marker, UTF-8 non-empty keys, bounded record sizes) before proposing
//!    anything: a corrupt or truncated file changes nothing.
//! 2. `Begin { id }` drops anything staged before and starts restore `id`.
//! 3. `Stage { id, seq, records }` entries of about 2 MiB carry the records
//!    into the `stage` column family. A chunk of another restore, or out of
//!    order, is refused (and so is the commit after it).
//! 4. `Commit { id, records, chunks }` checks that exactly those chunks and
//!    records were staged, then replaces `data` with `stage` and empties
//!    `stage`; otherwise it is refused and `data` is untouched.
//!
//! Invariants:
//! - `data` changes only when a `Commit` whose counts match is applied. A
//!   restore that fails before (bad file, leadership lost, node crash, a
//!   concurrent restore) leaves every node's data as it was, and the
//!   cluster keeps serving throughout.
//! - Every node applies the same steps in log order, and Raft snapshots
//!   carry `stage`, so every node stages and swaps the same records.
//! - A commit is written in batches of at most [`SWAP_BATCH`] bytes with
//!   `applied` in the last one; staged records are removed only by that
//!   last batch. A node that crashes half-way re-applies the commit from
//!   its log on restart and reaches the same result.
//! - At most one restore runs on a node at a time; a second one waits.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::node::{NodeError, RaftNode};
use crate::snapshot::Reader;
use crate::store::{self, cf, encode, io_err, CF_DATA, CF_SM, CF_STAGE, DATA_END, STAGE_END};
use crate::types::{Applied, Command, LogId, RestoreOp, StagedRecord};

/// Largest write batch of a commit.
pub(crate) const SWAP_BATCH: usize = 64 << 20;

/// Records per `Stage` entry, in bytes (keys plus values).
const STAGE_CHUNK: usize = 2 << 20;

/// Which restore is being staged, stored at `stage`/[`store::STAGE_META`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StageMeta {
    id: u64,
    chunks: u64,
    records: u64,
}

/// What applying a restore step did.
pub(crate) struct Outcome {
    /// Why the step changed nothing, if it did not.
    pub refused: Option<String>,
    /// `data` was replaced.
    pub swapped: bool,
}

fn read_meta(db: &DB) -> io::Result<Option<StageMeta>> {
    match db
        .get_cf(cf(db, CF_STAGE), store::STAGE_META)
        .map_err(io_err)?
    {
        Some(b) => Ok(Some(store::decode(&b)?)),
        None => Ok(None),
    }
}

/// Applies one restore step (the state machine calls it in log order);
/// `log_id` is written as `applied` with the step's last batch.
pub(crate) fn apply(db: &DB, op: &RestoreOp, log_id: &LogId) -> io::Result<Outcome> {
    let stage = cf(db, CF_STAGE);
    let mut wb = WriteBatch::default();
    let mut refused = None;
    let mut swapped = false;
    let clear_stage = |wb: &mut WriteBatch| wb.delete_range_cf(stage, &b""[..], STAGE_END);
    match op {
        RestoreOp::Begin { id } => {
            clear_stage(&mut wb);
            let meta = StageMeta {
                id: *id,
                chunks: 0,
                records: 0,
            };
            wb.put_cf(stage, store::STAGE_META, encode(&meta)?);
        }
        RestoreOp::Stage { id, seq, records } => match read_meta(db)? {
            Some(mut m) if m.id == *id && m.chunks == *seq => {
                if records.iter().any(|r| r.key.is_empty()) {
                    refused = Some("a staged record has an empty key".to_string());
                } else {
                    for r in records {
                        wb.put_cf(stage, r.key.as_bytes(), &r.value);
                    }
                    m.chunks += 1;
                    m.records += records.len() as u64;
                    wb.put_cf(stage, store::STAGE_META, encode(&m)?);
                }
            }
            Some(m) if m.id == *id => {
                refused = Some(format!(
                    "chunk {seq} arrived where chunk {} was expected",
                    m.chunks
                ));
            }
            _ => refused = Some("another restore was started since this one".to_string()),
        },
        RestoreOp::Commit {
            id,
            records,
            chunks,
        } => match read_meta(db)? {
            Some(m) if m.id == *id && m.chunks == *chunks && m.records == *records => {
                swap(db, &mut wb)?;
                clear_stage(&mut wb);
                swapped = true;
            }
            Some(m) if m.id == *id => {
                refused = Some(format!(
                    "{} records in {} chunks were staged, {records} in {chunks} expected",
                    m.records, m.chunks
                ));
                clear_stage(&mut wb);
            }
            _ => refused = Some("another restore was started since this one".to_string()),
        },
        RestoreOp::Abort { id } => {
            if read_meta(db)?.is_some_and(|m| m.id == *id) {
                clear_stage(&mut wb);
            }
        }
    }
    wb.put_cf(cf(db, CF_SM), "applied", encode(&Some(*log_id))?);
    db.write(wb).map_err(io_err)?;
    Ok(Outcome { refused, swapped })
}

/// Deletes `data` and copies every staged record into it. Full batches are
/// written as they fill (without `applied`); the last one is left in `wb`
/// for the caller to complete and write.
fn swap(db: &DB, wb: &mut WriteBatch) -> io::Result<()> {
    let data = cf(db, CF_DATA);
    wb.delete_range_cf(data, &b""[..], DATA_END);
    let mut bytes = 0usize;
    let mut it = db.raw_iterator_cf(cf(db, CF_STAGE));
    it.seek_to_first();
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        if k >= DATA_END {
            // The staging record: not data.
            it.next();
            continue;
        }
        wb.put_cf(data, k, v);
        bytes += k.len() + v.len();
        if bytes >= SWAP_BATCH {
            db.write(std::mem::take(wb)).map_err(io_err)?;
            bytes = 0;
        }
        it.next();
    }
    it.status().map_err(io_err)
}

/// Reads a snapshot file through once: its structure, end marker, keys
/// (UTF-8, not empty) and record sizes. Returns the number of records.
pub(crate) fn check_file(path: &Path) -> io::Result<u64> {
    let mut r = Reader::open(path)?;
    let mut n = 0u64;
    while let Some((k, _)) = r.next_record()? {
        if k.is_empty() || std::str::from_utf8(&k).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record {n} has an empty or non-UTF-8 key"),
            ));
        }
        n += 1;
    }
    Ok(n)
}

fn bad_snapshot(e: io::Error) -> NodeError {
    NodeError::Invalid(format!(
        "the snapshot is corrupt or truncated ({e}); nothing was restored and the data is unchanged"
    ))
}

impl RaftNode {
    /// Replaces the cluster's data with the records of `file` (leader only),
    /// atomically: on any error the data stays as it was. Returns the number
    /// of records restored.
    pub async fn import_records(self: &Arc<Self>, file: &Path) -> Result<u64, NodeError> {
        let _one_at_a_time = self.restore_lock.lock().await;
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let path = file.to_path_buf();
        let records = tokio::task::spawn_blocking(move || check_file(&path))
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?
            .map_err(bad_snapshot)?;
        let id = rand::random::<u64>();
        self.propose_restore(RestoreOp::Begin { id }).await?;
        let res = self.stage_and_commit(id, file.to_path_buf(), records).await;
        if res.is_err() {
            // Best effort: a later restore drops leftovers anyway.
            if let Err(e) = self.propose_restore(RestoreOp::Abort { id }).await {
                tracing::warn!("could not drop the staged records of a failed restore: {e}");
            }
        }
        res.map(|_| records)
    }

    async fn stage_and_commit(
        self: &Arc<Self>,
        id: u64,
        path: PathBuf,
        records: u64,
    ) -> Result<(), NodeError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Vec<StagedRecord>>>(2);
        std::thread::spawn(move || {
            let send = |r| tx.blocking_send(r).is_ok();
            let mut r = match Reader::open(&path) {
                Ok(r) => r,
                Err(e) => {
                    send(Err(e));
                    return;
                }
            };
            let mut chunk = Vec::new();
            let mut bytes = 0;
            loop {
                match r.next_record() {
                    Ok(Some((k, value))) => {
                        let Ok(key) = String::from_utf8(k) else {
                            send(Err(io_err("a snapshot key is not UTF-8")));
                            return;
                        };
                        bytes += key.len() + value.len();
                        chunk.push(StagedRecord { key, value });
                        if bytes >= STAGE_CHUNK {
                            bytes = 0;
                            if !send(Ok(std::mem::take(&mut chunk))) {
                                return;
                            }
                        }
                    }
                    Ok(None) => {
                        if !chunk.is_empty() {
                            send(Ok(chunk));
                        }
                        return;
                    }
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                }
            }
        });
        let mut seq = 0u64;
        let mut staged = 0u64;
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.map_err(bad_snapshot)?;
            staged += chunk.len() as u64;
            self.propose_restore(RestoreOp::Stage {
                id,
                seq,
                records: chunk,
            })
            .await?;
            seq += 1;
        }
        if staged != records {
            return Err(NodeError::Invalid(format!(
                "the snapshot file changed while it was restored ({staged} records read, \
                 {records} checked); nothing was restored"
            )));
        }
        self.propose_restore(RestoreOp::Commit {
            id,
            records,
            chunks: seq,
        })
        .await
    }

    /// Proposes one restore step and waits until it is applied; a refused
    /// step is an error.
    pub(crate) async fn propose_restore(self: &Arc<Self>, op: RestoreOp) -> Result<(), NodeError> {
        let backend = crate::RaftBackend::new(self.clone());
        let applied: Applied =
            backend
                .propose(Command::Restore(op))
                .await
                .map_err(|e| match e {
                    arca_physical::PhysicalError::ReadOnly => self.not_leader(),
                    e => NodeError::Raft(format!(
                        "{e}; the restore did not complete and the data is unchanged"
                    )),
                })?;
        match applied.refused {
            None => Ok(()),
            Some(why) => Err(NodeError::Invalid(format!(
                "the restore was abandoned: {why}; the data is unchanged, retry the restore"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Writer;
    use crate::{RaftBackend, RaftConfig};
    use arca_physical::PhysicalBackend;
    use openraft::async_runtime::WatchReceiver;

    async fn solo(dir: &Path) -> Arc<RaftNode> {
        let listen = "127.0.0.1:0".parse().unwrap();
        let mut cfg = RaftConfig::new(
            dir.to_path_buf(),
            "solo",
            "http://api-solo",
            "https://127.0.0.1:1",
            listen,
        );
        cfg.tls = Some(crate::test_certs::loopback_identity());
        let n = RaftNode::start(cfg).await.unwrap();
        n.bootstrap().await.unwrap();
        n
    }

    fn snapshot_file(path: &Path, records: &[(&str, &[u8])]) {
        let mut w = Writer::create(path).unwrap();
        for (k, v) in records {
            w.record(k.as_bytes(), v).unwrap();
        }
        w.finish().unwrap();
    }

    async fn dump(b: &RaftBackend) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for k in b.scan("").await.unwrap() {
            let v = b.get(&k).await.unwrap().unwrap();
            out.push((k, v));
        }
        out
    }

    fn stage_is_empty(n: &RaftNode) -> bool {
        let mut it = n.db.raw_iterator_cf(cf(&n.db, CF_STAGE));
        it.seek_to_first();
        !it.valid()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_valid_restore_replaces_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let n = solo(&dir.path().join("n")).await;
        let b = RaftBackend::new(n.clone());
        b.put("old/a", b"1".to_vec()).await.unwrap();
        b.put("old/b", b"2".to_vec()).await.unwrap();
        let file = dir.path().join("snap");
        // Enough records for several stage chunks.
        let big = vec![7u8; 300 << 10];
        let keys: Vec<String> = (0..20).map(|i| format!("new/{i:02}")).collect();
        let mut recs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &big[..])).collect();
        recs.push(("z", b"last"));
        snapshot_file(&file, &recs);
        let mut events = n.subscribe();
        assert_eq!(n.import_records(&file).await.unwrap(), 21);
        let after = dump(&b).await;
        assert_eq!(after.len(), 21);
        assert!(after.iter().all(|(k, _)| !k.starts_with("old/")));
        assert_eq!(b.get("z").await.unwrap().unwrap(), b"last");
        assert!(stage_is_empty(&n), "the staged records are gone");
        // Caches above are told to drop everything.
        let mut reset = false;
        while let Ok(ev) = events.try_recv() {
            reset |= matches!(ev, crate::ApplyEvent::Reset);
        }
        assert!(reset);
        b.put("after", b"x".to_vec()).await.unwrap();
        n.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncated_or_corrupt_snapshot_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let n = solo(&dir.path().join("n")).await;
        let b = RaftBackend::new(n.clone());
        for i in 0..50 {
            b.put(&format!("keep/{i}"), vec![i as u8; 100])
                .await
                .unwrap();
        }
        let before = dump(&b).await;
        let applied_before = n.applied_index_now();
        let file = dir.path().join("snap");
        let big = vec![1u8; 1 << 20];
        let keys: Vec<String> = (0..8).map(|i| format!("new/{i}")).collect();
        let recs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &big[..])).collect();
        snapshot_file(&file, &recs);
        let whole = std::fs::read(&file).unwrap();

        // Cut in the middle of the last record, and just before the end marker.
        for cut in [whole.len() - 1000, whole.len() - 4] {
            std::fs::write(&file, &whole[..cut]).unwrap();
            let e = n.import_records(&file).await.unwrap_err();
            assert!(
                matches!(&e, NodeError::Invalid(m) if m.contains("truncated") && m.contains("unchanged")),
                "{e}"
            );
        }
        // A key that is not UTF-8, and garbage.
        let mut w = Writer::create(&file).unwrap();
        w.record(b"ok", b"1").unwrap();
        w.record(&[0xC3, 0x28], b"2").unwrap();
        w.finish().unwrap();
        assert!(matches!(
            n.import_records(&file).await,
            Err(NodeError::Invalid(_))
        ));
        std::fs::write(&file, b"not a snapshot at all").unwrap();
        assert!(matches!(
            n.import_records(&file).await,
            Err(NodeError::Invalid(_))
        ));

        assert_eq!(dump(&b).await, before, "the data is untouched");
        assert_eq!(
            n.applied_index_now(),
            applied_before,
            "nothing was even proposed"
        );
        b.put("still/writable", b"yes".to_vec()).await.unwrap();
        n.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_or_superseded_restore_leaves_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let n = solo(&dir.path().join("n")).await;
        let b = RaftBackend::new(n.clone());
        b.put("keep", b"v".to_vec()).await.unwrap();
        let before = dump(&b).await;
        let rec = |k: &str| StagedRecord {
            key: k.into(),
            value: b"new".to_vec(),
        };

        // Staged, then abandoned (as when the leader fails mid-restore):
        // the data is still served, and the commit's count check refuses a
        // restore that misses a chunk.
        n.propose_restore(RestoreOp::Begin { id: 1 }).await.unwrap();
        n.propose_restore(RestoreOp::Stage {
            id: 1,
            seq: 0,
            records: vec![rec("a"), rec("b")],
        })
        .await
        .unwrap();
        assert_eq!(dump(&b).await, before, "staging does not touch the data");
        let e = n
            .propose_restore(RestoreOp::Stage {
                id: 1,
                seq: 2,
                records: vec![rec("c")],
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("chunk 2"), "{e}");
        let e = n
            .propose_restore(RestoreOp::Commit {
                id: 1,
                records: 3,
                chunks: 2,
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("unchanged"), "{e}");
        assert_eq!(dump(&b).await, before);
        assert!(stage_is_empty(&n), "a refused commit drops the staging");

        // A second restore supersedes the first: the first cannot commit.
        n.propose_restore(RestoreOp::Begin { id: 2 }).await.unwrap();
        n.propose_restore(RestoreOp::Begin { id: 3 }).await.unwrap();
        let e = n
            .propose_restore(RestoreOp::Stage {
                id: 2,
                seq: 0,
                records: vec![rec("x")],
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("another restore"), "{e}");
        assert!(n
            .propose_restore(RestoreOp::Commit {
                id: 2,
                records: 0,
                chunks: 0,
            })
            .await
            .is_err());
        n.propose_restore(RestoreOp::Abort { id: 3 }).await.unwrap();
        assert!(stage_is_empty(&n));
        assert_eq!(dump(&b).await, before);
        n.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_restarted_mid_staging_keeps_its_data_and_staging() {
        let dir = tempfile::tempdir().unwrap();
        let ndir = dir.path().join("n");
        let n = solo(&ndir).await;
        let b = RaftBackend::new(n.clone());
        b.put("keep", b"v".to_vec()).await.unwrap();
        n.propose_restore(RestoreOp::Begin { id: 9 }).await.unwrap();
        n.propose_restore(RestoreOp::Stage {
            id: 9,
            seq: 0,
            records: vec![StagedRecord {
                key: "restored".into(),
                value: b"r".to_vec(),
            }],
        })
        .await
        .unwrap();
        n.shutdown().await;
        drop(b);
        drop(n);

        let listen = "127.0.0.1:0".parse().unwrap();
        let mut cfg = RaftConfig::new(
            ndir,
            "solo",
            "http://api-solo",
            "https://127.0.0.1:1",
            listen,
        );
        cfg.tls = Some(crate::test_certs::loopback_identity());
        let n = RaftNode::start(cfg).await.unwrap();
        // Event-driven wait on raft's metrics; the bound only ends a hung test.
        n.raft
            .wait(Some(std::time::Duration::from_secs(120)))
            .state(openraft::ServerState::Leader, "the restarted node leads")
            .await
            .unwrap();
        let b = RaftBackend::new(n.clone());
        assert_eq!(b.get("keep").await.unwrap().unwrap(), b"v");
        assert_eq!(b.get("restored").await.unwrap(), None);
        // The staging survived the restart: the restore can still commit.
        n.propose_restore(RestoreOp::Commit {
            id: 9,
            records: 1,
            chunks: 1,
        })
        .await
        .unwrap();
        assert_eq!(b.get("keep").await.unwrap(), None);
        assert_eq!(b.get("restored").await.unwrap().unwrap(), b"r");
        n.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_node_that_joins_mid_restore_receives_the_staging_in_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let leader = solo(&dir.path().join("n1")).await;
        let b1 = RaftBackend::new(leader.clone());
        b1.put("old", b"o".to_vec()).await.unwrap();
        let rec = |k: &str| StagedRecord {
            key: k.into(),
            value: k.as_bytes().to_vec(),
        };
        leader
            .propose_restore(RestoreOp::Begin { id: 5 })
            .await
            .unwrap();
        leader
            .propose_restore(RestoreOp::Stage {
                id: 5,
                seq: 0,
                records: vec![rec("a"), rec("b")],
            })
            .await
            .unwrap();
        // Snapshot and drop the log: a new node can only catch up from the
        // snapshot, which must carry what is staged.
        leader.raft.trigger().snapshot().await.unwrap();
        let applied = leader.applied_index_now();
        leader
            .raft
            .wait(Some(std::time::Duration::from_secs(120)))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "the snapshot covers the staged records",
            )
            .await
            .unwrap();
        leader.raft.trigger().purge_log(applied).await.unwrap();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = RaftConfig::new(
            dir.path().join("n2"),
            "n2",
            "http://api-n2",
            &format!("https://{addr}"),
            addr.parse().unwrap(),
        );
        cfg.tls = Some(crate::test_certs::loopback_identity());
        let n2 = RaftNode::start(cfg).await.unwrap();
        leader.add_peer(n2.info().clone(), false).await.unwrap();
        leader
            .propose_restore(RestoreOp::Stage {
                id: 5,
                seq: 1,
                records: vec![rec("c")],
            })
            .await
            .unwrap();
        leader
            .propose_restore(RestoreOp::Commit {
                id: 5,
                records: 3,
                chunks: 2,
            })
            .await
            .unwrap();
        assert!(
            n2.wait_applied(
                leader.applied_index_now(),
                std::time::Duration::from_secs(10)
            )
            .await
        );
        assert!(
            n2.raft.metrics().borrow_watched().snapshot.is_some(),
            "n2 caught up from the snapshot"
        );
        let b2 = RaftBackend::new(n2.clone());
        assert_eq!(dump(&b2).await, dump(&b1).await);
        assert_eq!(b2.scan("").await.unwrap(), vec!["a", "b", "c"]);
        assert!(stage_is_empty(&n2));
        n2.shutdown().await;
        leader.shutdown().await;
    }
}
