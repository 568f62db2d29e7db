//! TCP listeners, plain or TLS (rustls), serving the API router with
//! Vault's listener limits, and stopping gracefully.
//!
//! Invariants of a listener started by [`serve_until`]:
//! * at most `max_connections` connections are open; further clients wait
//!   in the kernel's accept queue until one closes;
//! * a TLS handshake, and the head of every request (from the connection's
//!   start, or from the first byte after an idle period), must complete
//!   within `read_header_timeout`, or the connection is closed — one byte at
//!   a time does not keep it open (slowloris);
//! * a request body must arrive within `read_timeout` (408 otherwise) and
//!   may not exceed [`MAX_REQUEST_BYTES`] (413);
//! * a request is answered within `max_request_duration` (its handler is
//!   cancelled and the client gets a 503 otherwise);
//! * a connection with no request in flight and no traffic for
//!   `idle_timeout` is closed;
//! * on shutdown the socket is closed at once, idle connections are closed,
//!   in-flight requests are answered for up to `drain_timeout`, and only
//!   then are the remaining connections cut; [`serve_until`] returns after
//!   every connection task has ended.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use arca_core::Core;

use crate::handler::MAX_REQUEST_BYTES;
use crate::tls::{TlsConfigError, TlsOptions};

/// What a listener serves.
#[derive(Clone)]
pub struct ListenerOptions {
    pub address: String,
    /// `Some` serves TLS; `None` serves plain HTTP (`tls_disable`).
    pub tls: Option<TlsOptions>,
    /// Where a standby sends requests it cannot serve (cluster mode).
    pub forwarder: Option<Arc<dyn crate::Forwarder>>,
    /// `telemetry { unauthenticated_metrics_access = true }`: `GET
    /// sys/metrics` is served without a token (sealed or not).
    pub unauthenticated_metrics_access: bool,
    /// The legacy unauthenticated `sys/rekey/*` / `sys/generate-root/*`
    /// this listener serves (none by default).
    pub legacy_ceremonies: crate::LegacyCeremonies,
}

impl std::fmt::Debug for ListenerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerOptions")
            .field("address", &self.address)
            .field("tls", &self.tls)
            .field("forwarder", &self.forwarder.is_some())
            .field(
                "unauthenticated_metrics_access",
                &self.unauthenticated_metrics_access,
            )
            .field("legacy_ceremonies", &self.legacy_ceremonies)
            .finish()
    }
}

/// Vault's default `http_read_header_timeout`.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Vault's default `http_read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Vault's default `http_idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Vault's default `max_request_duration`.
pub const DEFAULT_MAX_REQUEST_DURATION: Duration = Duration::from_secs(90);
/// Default `max_connections` per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long shutdown waits for in-flight requests.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Time and connection limits of one listener (see the module invariants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `http_read_header_timeout`; also bounds the TLS handshake.
    pub read_header_timeout: Duration,
    /// `http_read_timeout`: reading a request body.
    pub read_timeout: Duration,
    /// `http_idle_timeout`: a connection between requests.
    pub idle_timeout: Duration,
    /// `max_request_duration`: handling one request.
    pub max_request_duration: Duration,
    /// `max_connections`: open connections at once.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_request_duration: DEFAULT_MAX_REQUEST_DURATION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listener {address}: {source}")]
    Tls {
        address: String,
        #[source]
        source: TlsConfigError,
    },
    #[error("cannot listen on {address}: {source}; is another process using the port?")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("listener {address}: max_connections must be at least 1")]
    NoConnections { address: String },
}

/// Binds the listener and serves, with [`ConnectionLimits::default`], until
/// the process ends. Returns the bound address through `bound` as soon as
/// the socket is listening.
pub async fn serve(
    core: Arc<Core>,
    opts: ListenerOptions,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ListenerError> {
    serve_until(
        core,
        opts,
        ConnectionLimits::default(),
        bound,
        std::future::pending(),
    )
    .await
}

/// Binds the listener and serves until `shutdown` completes, then drains
/// (see the module invariants) and returns.
pub async fn serve_until(
    core: Arc<Core>,
    opts: ListenerOptions,
    limits: ConnectionLimits,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ListenerError> {
    if limits.max_connections == 0 {
        return Err(ListenerError::NoConnections {
            address: opts.address.clone(),
        });
    }
    let acceptor = match &opts.tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            crate::tls::server_config(tls).map_err(|source| ListenerError::Tls {
                address: opts.address.clone(),
                source,
            })?,
        ))),
        None => None,
    };
    let listener =
        TcpListener::bind(&opts.address)
            .await
            .map_err(|source| ListenerError::Bind {
                address: opts.address.clone(),
                source,
            })?;
    let local = listener
        .local_addr()
        .map_err(|source| ListenerError::Bind {
            address: opts.address.clone(),
            source,
        })?;
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let app = crate::handler::app_for(
        core,
        opts.forwarder.clone(),
        opts.unauthenticated_metrics_access,
        opts.legacy_ceremonies,
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // At most one "full" warning a minute: under attack it would flood.
    let mut warned: Option<Instant> = None;
    loop {
        while conns.try_join_next().is_some() {}
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    warned = Some(Instant::now());
                    tracing::warn!(
                        "listener {local}: {} connections open (max_connections); new clients \
                         wait until one closes",
                        limits.max_connections
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: wait a little instead of spinning.
                    tracing::warn!("listener {local}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            app: app.clone(),
            limits,
            drain: drain_rx.clone(),
            peer,
            info: arca_sdk::Connection {
                remote_addr: peer.ip(),
                remote_port: peer.port(),
                peer_certificates: Vec::new(),
            },
        };
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acc) => {
                    let tls =
                        match tokio::time::timeout(limits.read_header_timeout, acc.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!("{peer}: TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(
                                    "{peer}: TLS handshake not finished in time; closed"
                                );
                                return;
                            }
                        };
                    let session = tls.get_ref().1;
                    let h2 = session.alpn_protocol() == Some(b"h2");
                    conn.info.peer_certificates = session
                        .peer_certificates()
                        .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
                        .unwrap_or_default();
                    conn.run(tls, !h2).await
                }
                None => conn.run(stream, true).await,
            }
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    let open = conns.len();
    if open > 0 {
        tracing::info!("listener {local}: closed; waiting for {open} connection(s) to finish");
    }
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "listener {local}: {} connection(s) still busy after {:?}; closing them",
            conns.len(),
            limits.drain_timeout
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    Ok(())
}

/// One accepted connection, before its protocol runs.
struct Connection {
    app: axum::Router,
    limits: ConnectionLimits,
    drain: watch::Receiver<bool>,
    peer: SocketAddr,
    /// Handed to every request on this connection (remote address, client
    /// certificates).
    info: arca_sdk::Connection,
}

impl Connection {
    /// Serves the connection until the client or a limit closes it.
    /// `track_head`: a byte read while idle starts a request head (HTTP/1);
    /// HTTP/2 sends frames while idle, so only requests count there.
    async fn run<S>(mut self, io: S, track_head: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::new(track_head));
        let io = Tracked {
            inner: io,
            state: state.clone(),
        };
        let app = self.app.clone();
        let limits = self.limits;
        let svc_state = state.clone();
        let info = self.info.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            let app = app.clone();
            let guard = InFlight::begin(svc_state.clone());
            async move {
                let resp = handle_limited(app, req, limits).await;
                drop(guard);
                Ok::<_, Infallible>(resp)
            }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        let mut conn = std::pin::pin!(conn);
        let mut draining = false;
        loop {
            let deadline = state.deadline(&limits);
            let changed = state.changed.notified();
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!("{}: connection ended: {e}", self.peer);
                    }
                    return;
                }
                _ = sleep_until(deadline) => {
                    if let Some(why) = state.expired(&limits) {
                        tracing::debug!("{}: closing connection: {why}", self.peer);
                        return;
                    }
                }
                _ = changed => {}
                _ = self.drain.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn json_error(status: StatusCode, message: String, close: bool) -> Response<Body> {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store");
    if close {
        b = b.header(header::CONNECTION, "close");
    }
    b.body(Body::from(
        serde_json::to_vec(&serde_json::json!({ "errors": [message] })).unwrap_or_default(),
    ))
    .expect("static response parts are valid")
}

/// Reads the body within `read_timeout` and at most [`MAX_REQUEST_BYTES`],
/// then runs the API within `max_request_duration`.
async fn handle_limited(
    app: axum::Router,
    req: Request<Incoming>,
    limits: ConnectionLimits,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        limits.read_timeout,
        Limited::new(body, MAX_REQUEST_BYTES).collect(),
    )
    .await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body larger than {} MiB; send less data per request",
                    MAX_REQUEST_BYTES / (1024 * 1024)
                ),
                true,
            )
        }
        Ok(Err(e)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("failed to read the request body: {e}"),
                true,
            )
        }
        Err(_) => {
            return json_error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within http_read_timeout ({:?}); \
                     send it faster or raise http_read_timeout",
                    limits.read_timeout
                ),
                true,
            )
        }
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(limits.max_request_duration, app.oneshot(req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(never)) => match never {},
        Err(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than max_request_duration ({:?}) and was cancelled; \
                 a write may or may not have been applied: check, then retry",
                limits.max_request_duration
            ),
            false,
        ),
    }
}

/// Where a connection is between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head, since `since`.
    Head,
    /// At least one request is being handled.
    Busy,
    /// Nothing in flight; last activity at `since`.
    Idle,
}

struct PhaseState {
    phase: Phase,
    since: Instant,
    in_flight: usize,
}

/// Shared by a connection's I/O wrapper, its service and its watchdog.
struct ConnState {
    inner: Mutex<PhaseState>,
    changed: Notify,
    track_head: bool,
}

impl ConnState {
    fn new(track_head: bool) -> ConnState {
        ConnState {
            // A new connection owes a request head (Go does the same).
            inner: Mutex::new(PhaseState {
                phase: Phase::Head,
                since: Instant::now(),
                in_flight: 0,
            }),
            changed: Notify::new(),
            track_head,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PhaseState> {
        // The state stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_read(&self) {
        if !self.track_head {
            return;
        }
        let mut s = self.lock();
        if s.phase == Phase::Idle {
            s.phase = Phase::Head;
            s.since = Instant::now();
            drop(s);
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        let mut s = self.lock();
        if s.phase == Phase::Idle {
            s.since = Instant::now();
        }
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let s = self.lock();
        match s.phase {
            Phase::Head => Some(s.since + limits.read_header_timeout),
            Phase::Idle => Some(s.since + limits.idle_timeout),
            Phase::Busy => None,
        }
    }

    /// Why the connection must close now, if it must.
    fn expired(&self, limits: &ConnectionLimits) -> Option<&'static str> {
        let s = self.lock();
        let now = Instant::now();
        match s.phase {
            Phase::Head if now >= s.since + limits.read_header_timeout => {
                Some("request head not received within http_read_header_timeout")
            }
            Phase::Idle if now >= s.since + limits.idle_timeout => {
                Some("idle for http_idle_timeout")
            }
            _ => None,
        }
    }
}

/// Marks a request in flight on its connection for as long as it lives
/// (also when the handler is cancelled).
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(state: Arc<ConnState>) -> InFlight {
        {
            let mut s = state.lock();
            s.in_flight += 1;
            s.phase = Phase::Busy;
        }
        state.changed.notify_one();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.phase = Phase::Idle;
                s.since = Instant::now();
            }
        }
        self.0.changed.notify_one();
    }
}

/// The connection's stream, reporting traffic to its [`ConnState`].
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            ..ConnectionLimits::default()
        }
    }

    fn phase(st: &ConnState) -> (Phase, Instant) {
        let s = st.lock();
        (s.phase, s.since)
    }

    #[test]
    fn phases_give_the_deadlines() {
        let l = limits();
        let st = Arc::new(ConnState::new(true));
        let (p, since) = phase(&st);
        assert_eq!(p, Phase::Head, "a new connection owes a request head");
        assert_eq!(st.deadline(&l), Some(since + l.read_header_timeout));
        let g = InFlight::begin(st.clone());
        assert_eq!(st.deadline(&l), None, "no deadline while a request runs");
        st.on_read();
        assert_eq!(phase(&st).0, Phase::Busy, "body bytes do not start a head");
        drop(g);
        let (p, idle_from) = phase(&st);
        assert_eq!(p, Phase::Idle);
        assert_eq!(st.deadline(&l), Some(idle_from + l.idle_timeout));
        // A byte of the next request: the head timeout runs from there.
        st.on_read();
        let (p, head_from) = phase(&st);
        assert_eq!(p, Phase::Head);
        assert!(head_from >= idle_from);
        assert_eq!(st.deadline(&l), Some(head_from + l.read_header_timeout));
        assert_eq!(st.expired(&l), None);
        let now = ConnectionLimits {
            read_header_timeout: Duration::ZERO,
            ..l
        };
        assert!(st.expired(&now).is_some());
    }

    #[test]
    fn http2_reads_do_not_start_a_head() {
        let l = limits();
        let st = Arc::new(ConnState::new(false));
        drop(InFlight::begin(st.clone()));
        st.on_read();
        let (p, since) = phase(&st);
        assert_eq!(p, Phase::Idle);
        assert_eq!(st.deadline(&l), Some(since + l.idle_timeout));
    }

    #[test]
    fn overlapping_requests_keep_the_connection_busy() {
        let l = limits();
        let st = Arc::new(ConnState::new(true));
        let a = InFlight::begin(st.clone());
        let b = InFlight::begin(st.clone());
        drop(a);
        assert_eq!(st.deadline(&l), None);
        drop(b);
        assert!(st.deadline(&l).is_some());
        let zero = ConnectionLimits {
            idle_timeout: Duration::ZERO,
            ..l
        };
        assert!(st.expired(&zero).is_some());
    }
}
