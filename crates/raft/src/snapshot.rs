//! Raft snapshots as files: a point-in-time copy of the `data` column family
//! written record by record, so neither building, sending nor installing
//! one holds the whole data set in memory.
//!
//! File format (both ends are Arca): the magic `ARCASNP1`, then records
//! `[u32 key length][key][u32 value length][value]` (big-endian lengths),
//! then the end marker `u32::MAX`. A file without its end marker is
//! truncated and is refused. The snapshot's Raft metadata sits beside the
//! file in `<name>.meta` (postcard).
//!
//! Records of the `data` column family come first. A Raft snapshot then
//! carries the `stage` column family (a restore being staged) with each
//! key prefixed by [`STAGE_MARK`]; data keys are UTF-8 and never start
//! with that byte. An operator's snapshot (`export_records`) holds data
//! records only, and a restore refuses any key that is not UTF-8.
//!
//! Reading is bounded: a record longer than [`MAX_KEY`] / [`MAX_VALUE`] is
//! refused before anything is allocated for it, and buffers grow only as
//! bytes actually arrive, so a corrupt or hostile length cannot exhaust
//! memory.
//!
//! The current snapshot is the one with the greatest name in the snapshot
//! directory (names are the zero-padded last log index, then term and
//! leader); a new one is written under a temporary name and renamed.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::store::{decode, encode, io_err};
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"ARCASNP1";
const END: u32 = u32::MAX;

/// First byte of the key of a `stage` record in a Raft snapshot.
pub(crate) const STAGE_MARK: u8 = 0xFF;

/// Longest key a snapshot record may have (physical keys are far shorter).
pub const MAX_KEY: u32 = 1 << 20;

/// Longest value a snapshot record may have: no value larger than a Raft
/// message can have been written.
pub const MAX_VALUE: u32 = crate::network::MAX_MESSAGE as u32;

/// A snapshot's data: a file on this node's disk.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
}

/// Streams records into a snapshot file.
pub(crate) struct Writer {
    out: BufWriter<File>,
    pub records: u64,
}

impl Writer {
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Writer { out, records: 0 })
    }

    pub fn record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        for part in [key, value] {
            let n = u32::try_from(part.len()).map_err(|_| io_err("snapshot record over 4 GiB"))?;
            self.out.write_all(&n.to_be_bytes())?;
            self.out.write_all(part)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Writes the end marker and syncs the file.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.write_all(&END.to_be_bytes())?;
        let f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(self.records)
    }
}

/// Reads the records of a snapshot file in order.
pub(crate) struct Reader {
    inp: BufReader<File>,
    done: bool,
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "raft snapshot is truncated (it ends before its end marker)",
    )
}

impl Reader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut inp = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut magic = [0u8; 8];
        inp.read_exact(&mut magic)
            .map_err(|_| io_err("not an Arca raft snapshot (too short)"))?;
        if &magic != MAGIC {
            return Err(io_err("not an Arca raft snapshot (bad magic)"));
        }
        Ok(Reader { inp, done: false })
    }

    fn len(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.inp.read_exact(&mut b).map_err(|_| truncated())?;
        Ok(u32::from_be_bytes(b))
    }

    /// Reads `len` bytes, refusing more than `max` before allocating, and
    /// growing the buffer only as the bytes arrive.
    fn part(&mut self, len: u32, max: u32, what: &str) -> io::Result<Vec<u8>> {
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "raft snapshot record {what} of {len} bytes is larger than the {max} bytes \
                     any record can have: the file is corrupt or not an Arca raft snapshot"
                ),
            ));
        }
        let mut buf = Vec::with_capacity((len as usize).min(64 << 10));
        (&mut self.inp).take(u64::from(len)).read_to_end(&mut buf)?;
        if buf.len() != len as usize {
            return Err(truncated());
        }
        Ok(buf)
    }

    /// The next `(key, value)`, or `None` after the end marker.
    pub fn next_record(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let kl = self.len()?;
        if kl == END {
            self.done = true;
            return Ok(None);
        }
        let k = self.part(kl, MAX_KEY, "key")?;
        let vl = self.len()?;
        let v = self.part(vl, MAX_VALUE, "value")?;
        Ok(Some((k, v)))
    }
}

/// File name stem of a snapshot: sorts by last log index.
pub(crate) fn name_of(meta: &SnapshotMeta) -> String {
    match &meta.last_log_id {
        Some(l) => format!(
            "{:020}-{}-{}",
            l.index, l.leader_id.term, l.leader_id.node_id
        ),
        None => format!("{:020}-0-0", 0),
    }
}

/// The snapshot directory: `<name>.snap` with `<name>.meta` beside it.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotDir {
    pub dir: PathBuf,
}

impl SnapshotDir {
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(SnapshotDir { dir })
    }

    /// A fresh path for a file being written or received.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dir
            .join(format!("tmp-{what}-{:016x}", rand::random::<u64>()))
    }

    /// Makes the file at `tmp` the current snapshot for `meta`; older
    /// snapshots and leftovers are removed.
    pub fn commit(&self, tmp: &Path, meta: &SnapshotMeta) -> io::Result<SnapshotFile> {
        let name = name_of(meta);
        let path = self.dir.join(format!("{name}.snap"));
        let meta_tmp = self.temp_path("meta");
        fs::write(&meta_tmp, encode(meta)?)?;
        File::open(&meta_tmp)?.sync_all()?;
        fs::rename(tmp, &path)?;
        fs::rename(&meta_tmp, self.dir.join(format!("{name}.meta")))?;
        File::open(&self.dir)?.sync_all()?;
        self.remove_all_but(&name)?;
        Ok(SnapshotFile { path })
    }

    fn remove_all_but(&self, keep: &str) -> io::Result<()> {
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let n = e.file_name().to_string_lossy().to_string();
            let stem = n.rsplit_once('.').map(|(s, _)| s).unwrap_or(&n);
            if stem != keep && !n.starts_with("tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// Removes temporary files left by an interrupted build or transfer.
    pub fn clean_temp(&self) -> io::Result<()> {
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                let p = e.path();
                if p.is_dir() {
                    let _ = fs::remove_dir_all(p);
                } else {
                    let _ = fs::remove_file(p);
                }
            }
        }
        Ok(())
    }

    /// The current snapshot, if any.
    pub fn current(&self) -> io::Result<Option<(SnapshotMeta, SnapshotFile)>> {
        let mut best: Option<String> = None;
        for e in fs::read_dir(&self.dir)? {
            let n = e?.file_name().to_string_lossy().to_string();
            if let Some(stem) = n.strip_suffix(".meta") {
                if self.dir.join(format!("{stem}.snap")).exists()
                    && best.as_deref().is_none_or(|b| stem > b)
                {
                    best = Some(stem.to_string());
                }
            }
        }
        let Some(stem) = best else { return Ok(None) };
        let meta: SnapshotMeta = decode(&fs::read(self.dir.join(format!("{stem}.meta")))?)?;
        Ok(Some((
            meta,
            SnapshotFile {
                path: self.dir.join(format!("{stem}.snap")),
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let mut w = Writer::create(&p).unwrap();
        w.record(b"a", b"1").unwrap();
        w.record("ключ with space".as_bytes(), &vec![7u8; 2 << 20])
            .unwrap();
        w.record(b"empty", b"").unwrap();
        assert_eq!(w.finish().unwrap(), 3);
        let mut r = Reader::open(&p).unwrap();
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            (b"a".to_vec(), b"1".to_vec())
        );
        let (k, v) = r.next_record().unwrap().unwrap();
        assert_eq!(k, "ключ with space".as_bytes());
        assert_eq!(v.len(), 2 << 20);
        assert_eq!(r.next_record().unwrap().unwrap().1, b"".to_vec());
        assert!(r.next_record().unwrap().is_none());

        // Cut the file before its end marker: reading must fail, not stop early.
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        let mut r = Reader::open(&p).unwrap();
        let mut err = None;
        for _ in 0..4 {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(err.unwrap().to_string().contains("truncated"));
        fs::write(&p, b"NOTASNAP").unwrap();
        assert!(Reader::open(&p).is_err());
    }

    fn first_error(p: &Path) -> io::Error {
        let mut r = Reader::open(p).unwrap();
        loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{} read to its end", p.display()),
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn a_hostile_record_length_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        // A key claiming almost 4 GiB: refused by its length alone.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(u32::MAX - 1).to_be_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        fs::write(&p, &bytes).unwrap();
        let e = first_error(&p);
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("larger than"), "{e}");

        // A value claiming 200 MiB (under the limit) in a file of a few
        // bytes: truncated, and read without reserving the 200 MiB.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.push(b'k');
        bytes.extend_from_slice(&(200u32 << 20).to_be_bytes());
        bytes.extend_from_slice(b"short");
        fs::write(&p, &bytes).unwrap();
        let e = first_error(&p);
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
