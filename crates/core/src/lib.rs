//! Arca's core: seal state, the mount table and router, the token store, ACL
//! enforcement and the `sys/` and `auth/token/` backends.
//!
//! Request flow ([`Core::handle`]): sealed-safe `sys` endpoints first → sealed?
//! (503) → route by longest mount prefix (404) → resolve the token (403) →
//! existence check turns a write into create or update → ACL check on the full
//! path, plus `sudo` for the mount's root paths (403) → use count → backend with
//! the mount's storage view → a returned secret gets its lease fields.
//!
//! Invariants:
//! - Nothing but the seal-safe endpoints runs while sealed; sealing drops every
//!   cache and every key (the barrier zeroizes its keyring).
//! - Engines only ever see a storage view scoped to their mount's UUID.
//! - Every write of core's own records (mount table, tokens, policies) goes
//!   through the barrier and is therefore encrypted, keys included.

mod core;
mod cubbyhole;
pub mod mounts;
pub mod policies;
pub mod router;
mod seal_ops;
mod sys;
mod token_paths;
pub mod tokens;

pub use crate::core::{Core, CoreConfig, InitResult, Reply, SealStatus};
