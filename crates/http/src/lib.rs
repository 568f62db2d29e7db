//! Vault's HTTP API in front of [`arca_core::Core`].
//!
//! One catch-all `/v1/*` route: the method and `?list=true` give the
//! operation, `X-Vault-Token` or `Authorization: Bearer` the token, the body is
//! JSON whether or not a Content-Type header says so. Answers use Vault's
//! envelope; errors use `{"errors": [...]}` with the status mapped in exactly
//! one place ([`error::status_of`]).
//!
//! On a standby, a request whose handler needed a storage write (core
//! answers `ReadOnly`) is replayed on the active node through the
//! [`Forwarder`]; the client sees the active node's answer.
//!
//! Invariants: request bodies above 32 MiB are refused with 413 before they
//! are parsed; no response carries a token that the request did not create;
//! a path with a `.` or `..` segment or an encoded slash is refused with 400
//! before routing. Listener limits (timeouts, connection limit, graceful
//! shutdown) and TLS settings are described in [`listener`] and [`tls`].

pub mod error;
mod forward;
mod handler;
pub mod listener;
pub mod tls;

pub use forward::{
    serve_forwarded, ForwardedRequest, ForwardedResponse, Forwarder, FORWARDED_HEADER,
};
pub use handler::{app, app_with, LegacyCeremonies, MAX_REQUEST_BYTES};
pub use listener::{serve, serve_until, ConnectionLimits, ListenerError, ListenerOptions};
pub use tls::{ClientAuth, TlsConfigError, TlsOptions, TlsVersion};
