//! The node's one RocksDB database and its column families.
//!
//! - `log`:  Raft log entries, key = big-endian index (so byte order is log order).
//! - `meta`: Raft's own records (`vote`, `committed`, `last_purged`).
//! - `data`: the replicated physical key space (ciphertext from the barrier).
//! - `sm`:   state-machine records (`applied`, `membership`, `installing`).
//! - `stage`: records of an operator's snapshot restore being staged, and
//!   under [`STAGE_META`] which restore they belong to; replicated (and
//!   carried in Raft snapshots) like `data`, but never read as data.
//!
//! One database means one WAL: a synced write makes every earlier write of
//! any column family durable too. The log and the vote are written synced;
//! state-machine writes are not, because the log they are applied from is
//! already durable and RocksDB's WAL keeps their order: after a crash the
//! applied state is some prefix of the log, and Raft re-applies the rest.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteOptions, DB};
use serde::{de::DeserializeOwned, Serialize};

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_DATA: &str = "data";
pub(crate) const CF_SM: &str = "sm";
pub(crate) const CF_STAGE: &str = "stage";

pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::None);
    o.set_bottommost_compression_type(DBCompressionType::None);
    o.set_wal_compression_type(DBCompressionType::None);
    o
}

/// Opens (creating if missing) the node's database under `dir/raft.db`.
pub(crate) fn open(dir: &Path) -> io::Result<Arc<DB>> {
    std::fs::create_dir_all(dir)?;
    let mut o = options();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    let cfs = || {
        ALL_CFS
            .into_iter()
            .map(|n| ColumnFamilyDescriptor::new(n, options()))
    };
    let path = dir.join("raft.db");
    // A previous handle of this process may still be closing (its last
    // background thread lets go of the lock a moment later): retry briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match DB::open_cf_descriptors(&o, &path, cfs()) {
            Ok(db) => return Ok(Arc::new(db)),
            Err(e) if e.to_string().contains("lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(io_err(format!(
                    "cannot open {}: {e} (is another arca process using this directory?)",
                    path.display()
                )))
            }
        }
    }
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .expect("column families are created when the database is opened")
}

pub(crate) fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

pub(crate) fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(io_err)
}

pub(crate) fn decode<T: DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    postcard::from_bytes(b).map_err(|e| io_err(format!("corrupt raft record: {e}")))
}

pub(crate) fn get<T: DeserializeOwned>(db: &DB, cf_name: &str, key: &str) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, cf_name), key).map_err(io_err)? {
        Some(b) => Ok(Some(decode(&b)?)),
        None => Ok(None),
    }
}

/// Log key of an index: big-endian, so RocksDB's byte order is index order.
pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn log_index(key: &[u8]) -> io::Result<u64> {
    let b: [u8; 8] = key.try_into().map_err(|_| io_err("corrupt raft log key"))?;
    Ok(u64::from_be_bytes(b))
}

/// Upper bound (exclusive) of every `data` key: keys are UTF-8, and no UTF-8
/// string contains the byte 0xFF.
pub(crate) const DATA_END: &[u8] = &[0xFF];

/// Key of the staging record in `stage` (not UTF-8, so no data key).
pub(crate) const STAGE_META: &[u8] = &[0xFF];

/// Upper bound (exclusive) of every `stage` key, [`STAGE_META`] included.
pub(crate) const STAGE_END: &[u8] = &[0xFF, 0xFF];

/// Every column family, in the order they are opened.
pub(crate) const ALL_CFS: [&str; 5] = [CF_LOG, CF_META, CF_DATA, CF_SM, CF_STAGE];
