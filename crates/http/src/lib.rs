//! Vault's HTTP API in front of [`arca_core::Core`].
//!
//! One catch-all `/v1/*` route: the method and `?list=true` give the
//! operation, `X-Vault-Token` or `Authorization: Bearer` the token, the body is
//! JSON whether or not a Content-Type header says so. Answers use Vault's
//! envelope; errors use `{"errors": [...]}` with the status mapped in exactly
//! one place ([`error::status_of`]).
//!
//! Invariants: request bodies above 32 MiB are refused with 413 before they
//! are parsed; no response carries a token that the request did not create.

pub mod error;
mod handler;
mod listener;

pub use handler::{app, MAX_REQUEST_BYTES};
pub use listener::{serve, ListenerOptions};
