//! The `arca` binary's crate: configuration, the CLI and the server wiring.
//!
//! Everything lives in this library so that the modules are unit-testable and
//! usable from integration tests; `main.rs` only hands the command line to
//! [`cli::run`].
//!
//! * [`config`] — the server configuration file (Vault's HCL shape);
//! * [`flags`] — Go-style `-flag=value` parsing, as the Vault CLI does it;
//! * [`duration`] — Vault durations (`768h`, seconds) and their display;
//! * [`cli`] — the Vault-compatible command line (`status`, `operator`, `kv`, …);
//! * [`server`] — builds storage, core and listeners from a [`config::Config`];
//! * [`cluster`] — wires a Raft node to core and the HTTP layer;
//! * [`engines`] — the registry of engines core mounts.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod duration;
pub mod engines;
pub mod flags;
pub mod server;
