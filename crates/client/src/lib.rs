//! `arca-client`: a typed async client of the Vault-compatible HTTP API.
//!
//! It speaks to Arca (and to Vault or OpenBao) exactly as the `vault` CLI's Go
//! client does, so that the `arca` CLI, the integration tests, the chaos tests
//! and the benchmarks all exercise the wire protocol a real client uses:
//!
//! * every request carries `X-Vault-Request: true`, and `X-Vault-Token` when a
//!   token is set (plus `X-Vault-Namespace` when a namespace is set);
//! * reads are `GET`, writes are `PUT`, lists are `GET <path>?list=true`,
//!   patches are `PATCH` with `Content-Type: application/merge-patch+json`;
//! * a response outside `200..400` becomes a [`ClientError`] carrying the
//!   status and the `errors` array of Vault's error envelope;
//! * `read`, `list` and `delete` treat a `404` whose body holds no data and no
//!   warnings as "nothing there" (`Ok(None)`), like the Go client;
//! * `412` and `5xx` (except `501`) answers and connection failures are retried
//!   `max_retries` times (default 2, `VAULT_MAX_RETRIES`), like the Go client.
//!
//! Configuration comes from the environment like the Vault CLI's, with the
//! `ARCA_*` spelling of each variable winning over the `VAULT_*` one (see
//! [`env_var`]): `ADDR`, `TOKEN`, `CACERT`, `CAPATH`, `CLIENT_CERT`,
//! `CLIENT_KEY`, `SKIP_VERIFY`, `NAMESPACE`, `MAX_RETRIES`, `CLIENT_TIMEOUT`.
//! Without a token variable the token is read from `~/.vault-token`, the file
//! the Vault CLI's default token helper (and `arca login`) writes.
//!
//! Invariant: the client never interprets a request body or a response body
//! beyond the envelope: `data`, `auth` and `wrap_info` are passed through as
//! JSON so that any engine's answer round-trips unchanged.

mod client;
mod config;
mod error;
mod secret;
pub mod token_helper;

pub use client::{Client, RawResponse};
pub use config::{env_var, ClientConfig, TlsOptions, DEFAULT_ADDRESS};
pub use error::ClientError;
pub use reqwest::header::HeaderMap;
pub use reqwest::Method;
pub use secret::Secret;
