//! Arca's core: seal state, the mount table and router, the token store, ACL
//! enforcement and the `sys/` and `auth/token/` backends.
//!
//! Request flow ([`Core::handle`]): sealed-safe `sys` endpoints first → sealed?
//! (503) → route by longest mount prefix (404) → resolve the token (403) →
//! existence check turns a write into create or update → ACL check on the full
//! path, plus `sudo` for the mount's root paths (403) → use count → backend with
//! the mount's storage view → a returned secret gets its lease fields.
//!
//! In a cluster ([`cluster::Cluster`]) the same flow runs on every node; a
//! standby's first storage write fails read-only and the HTTP layer forwards
//! the request to the active node. A request with `X-Arca-Consistency:
//! linearizable` first waits for the cluster's read index.
//!
//! Invariants:
//! - Nothing but the seal-safe endpoints runs while sealed; sealing drops every
//!   cache and every key (the barrier zeroizes its keyring).
//! - Engines only ever see a storage view scoped to their mount's UUID.
//! - Every write of core's own records (mount table, tokens, policies) goes
//!   through the barrier and is therefore encrypted, keys included.

mod audit;
mod auto_seal;
mod batch_tokens;
pub mod cluster;
pub mod cluster_tls;
mod core;
mod cubbyhole;
pub mod expiration;
mod generate_root;
mod identity;
pub mod in_flight;
mod invalidate;
mod join;
mod legacy_ceremonies;
pub mod lockout;
mod login;
pub mod mounts;
pub mod password_policies;
mod periodic;
pub mod policies;
mod quotas;
mod root_key;
mod rotate_keys;
pub mod router;
mod seal_migration;
mod seal_ops;
mod sys;
mod time_index;
mod token_paths;
mod token_roles;
pub mod tokens;
mod wrapping;

pub use crate::core::{Core, CoreConfig, InitResult, Reply, SealStatus};
pub use crate::generate_root::{decode_token, new_otp};
pub use crate::join::{check_server_id, JoinRequest, JoinTls, MAX_SERVER_ID};
pub use crate::legacy_ceremonies::{legacy_ceremony, LegacyFamily};
pub use crate::quotas::QuotaDecision;
pub use crate::sys::metrics_response;
pub use crate::wrapping::WrapInfo;
