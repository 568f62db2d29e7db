//! Operator snapshot archives (`sys/storage/raft/snapshot`): the file the
//! `bao`/`vault` CLI saves and restores.
//!
//! An archive is a gzip-compressed tar of exactly four regular files:
//! [`META`] (JSON), [`STATE`] (the snapshot records of the physical key
//! space, ciphertext), [`SUMS`] (`sha256sum` lines over the first two) and
//! [`SEALED`] (a MAC of [`SUMS`] that the caller computes under a key only
//! the cluster holds).
//!
//! Invariants of [`unpack`]:
//! - Nothing is trusted before it is bounded: each member's size is checked
//!   against [`Limits`] from its tar header *before* any of it is read, so
//!   a gzip bomb (a small archive that inflates to gigabytes) is refused
//!   after inflating at most one tar header; every member other than the
//!   four, every non-regular entry (links, GNU long names, PAX headers) and
//!   every repeated member is refused the same way.
//! - [`STATE`] is streamed to a file while its SHA-256 is computed: memory
//!   use does not grow with the archive; the three small members (at most
//!   [`Limits::member_bytes`] each) are kept in memory.
//! - The gzip stream is read to its end, so its CRC and length are checked:
//!   a truncated or damaged archive is an error, never a shorter snapshot.
//! - Errors say which member and which limit; only [`ArchiveError::Disk`]
//!   is this node's fault, every other variant is a bad archive (HTTP 400).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Name of the metadata member.
pub const META: &str = "meta.json";
/// Name of the records member.
pub const STATE: &str = "state.bin";
/// Name of the checksums member.
pub const SUMS: &str = "SHA256SUMS";
/// Name of the sealed checksums member.
pub const SEALED: &str = "SHA256SUMS.sealed";

/// What a bounded [`unpack`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest [`STATE`] member, in bytes (after decompression).
    pub state_bytes: u64,
    /// Largest size of each other member.
    pub member_bytes: u64,
}

impl Limits {
    /// Everything an archive may inflate to: its members, their tar headers
    /// and the end-of-archive padding.
    pub fn total_bytes(&self) -> u64 {
        self.state_bytes + 3 * self.member_bytes + TAR_OVERHEAD
    }
}

impl Default for Limits {
    /// 2 GiB of records (the API refuses request bodies above 32 MiB, and
    /// ciphertext barely compresses, so real snapshots are far smaller) and
    /// 64 KiB for each small member.
    fn default() -> Self {
        Limits {
            state_bytes: 2 << 30,
            member_bytes: 64 << 10,
        }
    }
}

/// Headers, padding and the end-of-archive blocks a tar adds around its
/// members (generously: GNU tar pads to 10 KiB records).
const TAR_OVERHEAD: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a snapshot archive (a gzip-compressed tar is expected): {0}")]
    NotAnArchive(#[source] io::Error),
    #[error("the snapshot archive is truncated or damaged: {0}; save the snapshot again")]
    Truncated(#[source] io::Error),
    #[error(
        "snapshot archive member {name} is {size} bytes, more than the {limit} bytes a \
         restore accepts; this is not a snapshot Arca wrote"
    )]
    TooLarge { name: String, size: u64, limit: u64 },
    #[error(
        "unexpected {what} {name:?} in the snapshot archive: an Arca snapshot holds only the \
         files meta.json, state.bin, SHA256SUMS and SHA256SUMS.sealed"
    )]
    UnexpectedMember { what: &'static str, name: String },
    #[error("the snapshot archive holds {0} twice")]
    Duplicate(String),
    #[error("the snapshot archive has no {0}; save the snapshot again")]
    Missing(&'static str),
    #[error("cannot write the unpacked snapshot to this node's disk: {0}")]
    Disk(#[source] io::Error),
}

impl ArchiveError {
    /// True when the archive is at fault (not this node).
    pub fn is_bad_archive(&self) -> bool {
        !matches!(self, ArchiveError::Disk(_))
    }
}

/// An unpacked archive: the small members in memory, the records in a file.
#[derive(Debug)]
pub struct Unpacked {
    pub meta: Vec<u8>,
    pub sums: Vec<u8>,
    pub sealed: Vec<u8>,
    /// Where [`STATE`] was written.
    pub state_path: PathBuf,
    pub state_len: u64,
    pub state_sha256: [u8; 32],
}

impl Unpacked {
    /// True when [`SUMS`] is exactly the checksums of [`META`] and [`STATE`].
    pub fn sums_match(&self) -> bool {
        sums_text(&self.meta, &self.state_sha256).as_bytes() == self.sums.as_slice()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The [`SUMS`] member for these contents (`sha256sum` format).
pub fn sums_text(meta: &[u8], state_sha256: &[u8; 32]) -> String {
    format!(
        "{}  {META}\n{}  {STATE}\n",
        hex(&Sha256::digest(meta)),
        hex(state_sha256)
    )
}

/// SHA-256 of a file, read in blocks.
pub fn file_sha256(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Writes an archive to `out`, streaming [`STATE`] from `state`; returns
/// `out` once the gzip stream is finished.
pub fn pack<W: Write>(
    out: W,
    meta: &[u8],
    state: &Path,
    sums: &str,
    sealed: &str,
    mtime: u64,
) -> io::Result<W> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let header = |size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        h
    };
    tar.append_data(&mut header(meta.len() as u64), META, meta)?;
    let f = File::open(state)?;
    let len = f.metadata()?.len();
    tar.append_data(&mut header(len), STATE, f.take(len))?;
    tar.append_data(&mut header(sums.len() as u64), SUMS, sums.as_bytes())?;
    tar.append_data(&mut header(sealed.len() as u64), SEALED, sealed.as_bytes())?;
    tar.into_inner()?.finish()
}

/// Counts what passes through, to tell a bad archive from a damaged one.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Unpacks an archive read from `input`, writing [`STATE`] to
/// `dir/state.bin`. See the module docs for what is checked.
pub fn unpack<R: Read>(input: R, dir: &Path, limits: &Limits) -> Result<Unpacked, ArchiveError> {
    let gz = Counted {
        inner: flate2::read::GzDecoder::new(input),
        read: 0,
    };
    let mut ar = tar::Archive::new(gz);
    // An error before the first member: not an archive; after: damaged.
    let damaged = |first: bool, e: io::Error| {
        if first {
            ArchiveError::NotAnArchive(e)
        } else {
            ArchiveError::Truncated(e)
        }
    };
    let mut meta = None;
    let mut sums = None;
    let mut sealed = None;
    let mut state: Option<(PathBuf, u64, [u8; 32])> = None;
    {
        // Raw: GNU long names and PAX headers come back as entries of their
        // own (and are refused) instead of being read into memory by `tar`.
        let mut entries = ar.entries().map_err(|e| damaged(true, e))?.raw(true);
        let mut first = true;
        loop {
            let mut e = match entries.next() {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(err)) => return Err(damaged(first, err)),
            };
            first = false;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            if e.header().entry_type() != tar::EntryType::Regular {
                return Err(ArchiveError::UnexpectedMember {
                    what: "entry",
                    name,
                });
            }
            let size = e.size();
            let (slot_limit, is_state) = match name.as_str() {
                STATE => (limits.state_bytes, true),
                META | SUMS | SEALED => (limits.member_bytes, false),
                _ => {
                    return Err(ArchiveError::UnexpectedMember { what: "file", name });
                }
            };
            let taken = match name.as_str() {
                STATE => state.is_some(),
                META => meta.is_some(),
                SUMS => sums.is_some(),
                _ => sealed.is_some(),
            };
            if taken {
                return Err(ArchiveError::Duplicate(name));
            }
            if size > slot_limit {
                return Err(ArchiveError::TooLarge {
                    name,
                    size,
                    limit: slot_limit,
                });
            }
            let short = |got: u64| {
                ArchiveError::Truncated(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name} ends after {got} of its {size} bytes"),
                ))
            };
            if is_state {
                let path = dir.join(STATE);
                let (len, digest) = copy_hashed(&mut e, &path)?;
                if len != size {
                    return Err(short(len));
                }
                state = Some((path, len, digest));
            } else {
                let mut buf = Vec::with_capacity(size as usize);
                (&mut e)
                    .take(size)
                    .read_to_end(&mut buf)
                    .map_err(ArchiveError::Truncated)?;
                if buf.len() as u64 != size {
                    return Err(short(buf.len() as u64));
                }
                match name.as_str() {
                    META => meta = Some(buf),
                    SUMS => sums = Some(buf),
                    _ => sealed = Some(buf),
                }
            }
        }
    }
    // Read the rest of the gzip stream (end-of-archive blocks, padding) so
    // its CRC and length are verified; bounded like everything else.
    let mut gz = ar.into_inner();
    let budget = limits.total_bytes().saturating_sub(gz.read);
    let rest = io::copy(&mut (&mut gz).take(budget + 1), &mut io::sink())
        .map_err(ArchiveError::Truncated)?;
    if rest > budget {
        return Err(ArchiveError::TooLarge {
            name: "the archive".into(),
            size: gz.read,
            limit: limits.total_bytes(),
        });
    }
    let (state_path, state_len, state_sha256) = state.ok_or(ArchiveError::Missing(STATE))?;
    Ok(Unpacked {
        meta: meta.ok_or(ArchiveError::Missing(META))?,
        sums: sums.ok_or(ArchiveError::Missing(SUMS))?,
        sealed: sealed.ok_or(ArchiveError::Missing(SEALED))?,
        state_path,
        state_len,
        state_sha256,
    })
}

/// Copies `inp` to a new file at `path`, hashing it; returns the length
/// and SHA-256. A read error is a damaged archive, a write error a disk one.
fn copy_hashed(inp: &mut impl Read, path: &Path) -> Result<(u64, [u8; 32]), ArchiveError> {
    let mut out =
        BufWriter::with_capacity(1 << 20, File::create(path).map_err(ArchiveError::Disk)?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match inp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::Truncated(e)),
        };
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(ArchiveError::Disk)?;
        len += n as u64;
    }
    let f = out
        .into_inner()
        .map_err(|e| ArchiveError::Disk(e.into_error()))?;
    f.sync_all().map_err(ArchiveError::Disk)?;
    Ok((len, h.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path, state: &[u8]) -> Vec<u8> {
        let p = dir.join("state-in");
        std::fs::write(&p, state).unwrap();
        let meta = br#"{"format":"test"}"#;
        let sums = sums_text(meta, &file_sha256(&p).unwrap());
        pack(Vec::new(), meta, &p, &sums, "sealed-mac", 1).unwrap()
    }

    /// A tar.gz with one member `name` of `size` zero bytes, compressed as
    /// it is produced: `size` may be far larger than the memory used.
    fn zeros_archive(name: &str, size: u64) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append_data(&mut h, name, io::repeat(0).take(size))
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn round_trip_streams_the_state_and_checks_sums() {
        let dir = tempfile::tempdir().unwrap();
        let state: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = archive(dir.path(), &state);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let u = unpack(&bytes[..], &out, &Limits::default()).unwrap();
        assert_eq!(std::fs::read(&u.state_path).unwrap(), state);
        assert_eq!(u.state_len, state.len() as u64);
        assert_eq!(u.sealed, b"sealed-mac");
        assert!(u.sums_match());
        let mut other = u;
        other.state_sha256[0] ^= 1;
        assert!(!other.sums_match());
    }

    #[test]
    fn a_truncated_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = vec![42u8; 200_000];
        let bytes = archive(dir.path(), &state);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // Cut anywhere: inside the state, inside the later members, or just
        // before the gzip trailer (every member is complete, the CRC is not).
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 40,
            bytes.len() - 4,
        ] {
            let e = unpack(&bytes[..cut], &out, &Limits::default()).unwrap_err();
            assert!(
                matches!(e, ArchiveError::Truncated(_) | ArchiveError::Missing(_)),
                "cut at {cut}: {e}"
            );
            assert!(e.is_bad_archive());
        }
        let e = unpack(&b"plain text, not gzip"[..], &out, &Limits::default()).unwrap_err();
        assert!(matches!(e, ArchiveError::NotAnArchive(_)), "{e}");
        // A flipped byte: the gzip CRC (or inflate) notices.
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(unpack(&bad[..], &out, &Limits::default()).is_err());
    }

    #[test]
    fn a_gzip_bomb_is_refused_before_it_inflates() {
        let dir = tempfile::tempdir().unwrap();
        // 256 MiB of zeros in 1 to 3 MiB (depending on flate2's backend:
        // miniz_oxide or zlib-rs), against a 16 MiB limit (the server test
        // sends one over the default 2 GiB limit).
        let limits = Limits {
            state_bytes: 16 << 20,
            ..Limits::default()
        };
        let size = 256u64 << 20;
        let bomb = zeros_archive(STATE, size);
        assert!(bomb.len() < 4 << 20, "the bomb is {} bytes", bomb.len());
        let e = unpack(&bomb[..], dir.path(), &limits).unwrap_err();
        match &e {
            ArchiveError::TooLarge {
                name,
                size: s,
                limit,
            } => {
                assert_eq!(name, STATE);
                assert_eq!(*s, size);
                assert_eq!(*limit, limits.state_bytes);
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("more than"), "{e}");
        assert!(
            !dir.path().join(STATE).exists(),
            "nothing was written for the refused member"
        );
        // A small member inflating to 64 MiB.
        let bomb = zeros_archive(META, 64 << 20);
        assert!(bomb.len() < 1 << 20);
        let e = unpack(&bomb[..], dir.path(), &Limits::default()).unwrap_err();
        assert!(
            matches!(e, ArchiveError::TooLarge { ref name, .. } if name == META),
            "{e}"
        );
    }

    #[test]
    fn unknown_repeated_and_special_members_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let one = |name: &str, ty: tar::EntryType, data: &[u8]| {
            let mut tar = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_entry_type(ty);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
            tar.append_data(&mut h, name, data).unwrap();
            let raw = tar.into_inner().unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap();
            gz.finish().unwrap()
        };
        let l = Limits::default();
        let e = unpack(
            &one("evil.sh", tar::EntryType::Regular, b"x")[..],
            dir.path(),
            &l,
        )
        .unwrap_err();
        assert!(matches!(e, ArchiveError::UnexpectedMember { .. }), "{e}");
        let e = unpack(
            &one(META, tar::EntryType::Regular, b"{}")[..],
            dir.path(),
            &l,
        )
        .unwrap_err();
        assert!(matches!(e, ArchiveError::Duplicate(_)), "{e}");
        let e = unpack(
            &one(STATE, tar::EntryType::Symlink, b"")[..],
            dir.path(),
            &l,
        )
        .unwrap_err();
        assert!(matches!(e, ArchiveError::UnexpectedMember { .. }), "{e}");
        // A GNU long-name entry claiming 1 GiB is refused by its header,
        // not read into memory.
        let e = unpack(
            &zeros_long_name(1 << 30)[..],
            dir.path(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ArchiveError::UnexpectedMember { .. }), "{e}");
    }

    fn zeros_long_name(size: u64) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_cksum();
        // Only the start is written: the header alone must be refused.
        tar.append_data(&mut h, "././@LongLink", io::repeat(b'a').take(4096))
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }
}
