//! Where a device's lines go: a file (or stdout, or nowhere), a socket
//! (TCP, UDP or a unix stream socket) or the local syslog daemon.
//!
//! Invariants:
//! - [`Sink::write`] returns only once the line is handed to the kernel
//!   (file flushed, socket written, datagram sent), or with the error that
//!   prevented it: a device failure the broker counts.
//! - A connection or file that failed is dropped; the next line opens or
//!   connects again (so a restarted log collector is picked up without a
//!   restart of the server). A socket write never waits longer than the
//!   device's `write_timeout` (connecting included).
//! - Nothing here opens anything on construction but files (checked at
//!   enable time as before); sockets and syslog connect on first use or on
//!   [`Sink::probe`], which `sys/audit` runs before it stores a device.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;

/// `socket_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketType {
    Tcp,
    Udp,
    Unix,
}

impl SocketType {
    pub(crate) fn parse(s: &str) -> Option<SocketType> {
        match s {
            "tcp" => Some(SocketType::Tcp),
            "udp" => Some(SocketType::Udp),
            "unix" => Some(SocketType::Unix),
            _ => None,
        }
    }
}

pub(crate) enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Unix(UnixStream),
}

impl Conn {
    fn connect(kind: SocketType, address: &str, timeout: Duration) -> std::io::Result<Conn> {
        match kind {
            SocketType::Tcp => {
                let mut last = None;
                for a in address.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(s) => {
                            s.set_write_timeout(Some(timeout))?;
                            s.set_nodelay(true)?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{address} resolves to no address"),
                    )
                }))
            }
            SocketType::Udp => {
                let target = address.to_socket_addrs()?.next().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{address} resolves to no address"),
                    )
                })?;
                let local = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(local)?;
                s.connect(target)?;
                s.set_write_timeout(Some(timeout))?;
                Ok(Conn::Udp(s))
            }
            SocketType::Unix => {
                let s = UnixStream::connect(address)?;
                s.set_write_timeout(Some(timeout))?;
                Ok(Conn::Unix(s))
            }
        }
    }

    /// False when the peer of a stream has closed its end (a read would
    /// return end of file): writing would seem to succeed once and be lost.
    fn peer_open(&mut self) -> bool {
        /// Reads whatever is waiting without blocking: true while the
        /// peer's end is open.
        fn drain(s: &mut impl Read) -> bool {
            let mut b = [0u8; 256];
            loop {
                match s.read(&mut b) {
                    // The collector talks back: what it says is ignored.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => return false,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
        }
        match self {
            Conn::Tcp(s) => {
                s.set_nonblocking(true).is_ok() && drain(s) && s.set_nonblocking(false).is_ok()
            }
            Conn::Unix(s) => {
                s.set_nonblocking(true).is_ok() && drain(s) && s.set_nonblocking(false).is_ok()
            }
            Conn::Udp(_) => true,
        }
    }

    fn send(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(line).and_then(|_| s.flush()),
            Conn::Unix(s) => s.write_all(line).and_then(|_| s.flush()),
            Conn::Udp(s) => {
                let n = s.send(line)?;
                if n == line.len() {
                    Ok(())
                } else {
                    Err(std::io::Error::other("the datagram was truncated"))
                }
            }
        }
    }
}

/// Syslog facilities by name (RFC 5424 numbering).
pub(crate) const FACILITIES: &[(&str, u8)] = &[
    ("KERN", 0),
    ("USER", 1),
    ("MAIL", 2),
    ("DAEMON", 3),
    ("AUTH", 4),
    ("SYSLOG", 5),
    ("LPR", 6),
    ("NEWS", 7),
    ("UUCP", 8),
    ("CRON", 9),
    ("AUTHPRIV", 10),
    ("FTP", 11),
    ("LOCAL0", 16),
    ("LOCAL1", 17),
    ("LOCAL2", 18),
    ("LOCAL3", 19),
    ("LOCAL4", 20),
    ("LOCAL5", 21),
    ("LOCAL6", 22),
    ("LOCAL7", 23),
];

/// Severity of every audit message: informational.
const SEVERITY_INFO: u8 = 6;

pub(crate) enum Sink {
    File {
        path: PathBuf,
        mode: u32,
        file: Mutex<Option<File>>,
    },
    Stdout,
    Discard,
    Socket {
        kind: SocketType,
        address: String,
        timeout: Duration,
        conn: Mutex<Option<Conn>>,
    },
    Syslog {
        /// Where a syslog daemon may listen, tried in order.
        candidates: Vec<PathBuf>,
        facility: u8,
        tag: String,
        conn: Mutex<Option<UnixDatagram>>,
    },
}

impl Sink {
    pub(crate) fn file(path: PathBuf, mode: u32) -> std::io::Result<Sink> {
        let f = open(&path, mode)?;
        Ok(Sink::File {
            path,
            mode,
            file: Mutex::new(Some(f)),
        })
    }

    pub(crate) fn socket(kind: SocketType, address: String, timeout: Duration) -> Sink {
        Sink::Socket {
            kind,
            address,
            timeout,
            conn: Mutex::new(None),
        }
    }

    pub(crate) fn syslog(candidates: Vec<PathBuf>, facility: u8, tag: String) -> Sink {
        Sink::Syslog {
            candidates,
            facility,
            tag,
            conn: Mutex::new(None),
        }
    }

    /// Opens or connects what is not yet (enable time: a device that
    /// cannot reach its target is refused rather than stored).
    pub(crate) fn probe(&self) -> std::io::Result<()> {
        match self {
            Sink::Socket {
                kind,
                address,
                timeout,
                conn,
            } => {
                let mut c = conn.lock();
                if c.is_none() {
                    *c = Some(Conn::connect(*kind, address, *timeout)?);
                }
                Ok(())
            }
            Sink::Syslog {
                candidates, conn, ..
            } => {
                let mut c = conn.lock();
                if c.is_none() {
                    *c = Some(syslog_connect(candidates)?);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn write(&self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line).and_then(|_| out.flush())
            }
            Sink::File { path, mode, file } => {
                let mut f = file.lock();
                if f.is_none() {
                    *f = Some(open(path, *mode)?);
                }
                let w = f.as_mut().expect("opened above");
                let r = w.write_all(line).and_then(|_| w.flush());
                if r.is_err() {
                    // Reopened on the next entry (the file may have moved).
                    *f = None;
                }
                r
            }
            Sink::Socket {
                kind,
                address,
                timeout,
                conn,
            } => {
                let mut c = conn.lock();
                if c.as_mut().is_some_and(|c| !c.peer_open()) {
                    *c = None;
                }
                if c.is_none() {
                    *c = Some(Conn::connect(*kind, address, *timeout)?);
                }
                let r = c.as_mut().expect("connected above").send(line);
                if r.is_err() {
                    *c = None;
                }
                r
            }
            Sink::Syslog {
                candidates,
                facility,
                tag,
                conn,
            } => {
                let mut c = conn.lock();
                if c.is_none() {
                    *c = Some(syslog_connect(candidates)?);
                }
                let msg = syslog_message(*facility, tag, line);
                let r = c
                    .as_ref()
                    .expect("connected above")
                    .send(&msg)
                    .and_then(|n| {
                        if n == msg.len() {
                            Ok(())
                        } else {
                            Err(std::io::Error::other("the syslog message was truncated"))
                        }
                    });
                if r.is_err() {
                    *c = None;
                }
                r
            }
        }
    }

    /// Closes and reopens a file; drops a socket connection (the next
    /// line connects again).
    pub(crate) fn reopen(&self) -> std::io::Result<()> {
        match self {
            Sink::File { path, mode, file } => {
                let mut f = file.lock();
                *f = None;
                *f = Some(open(path, *mode)?);
            }
            Sink::Socket { conn, .. } => *conn.lock() = None,
            Sink::Syslog { conn, .. } => *conn.lock() = None,
            Sink::Stdout | Sink::Discard => {}
        }
        Ok(())
    }
}

fn syslog_connect(candidates: &[PathBuf]) -> std::io::Result<UnixDatagram> {
    use std::os::unix::fs::FileTypeExt;
    // Only a socket: on some systems `/var/run/log` is a directory.
    let is_socket = |p: &&PathBuf| {
        std::fs::metadata(p)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false)
    };
    let Some(path) = candidates.iter().find(is_socket) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no local syslog socket ({}): start a syslog daemon or use another device type",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

/// An RFC 3164 message as the C library's `syslog(3)` sends it to the
/// local daemon: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG` (the daemon adds the
/// host name). The line's trailing newline is left out.
pub(crate) fn syslog_message(facility: u8, tag: &str, line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S");
    let mut m = format!(
        "<{}>{stamp} {tag}[{}]: ",
        u16::from(facility) * 8 + u16::from(SEVERITY_INFO),
        std::process::id()
    )
    .into_bytes();
    m.extend_from_slice(line);
    m
}

pub(crate) fn open(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)
}
