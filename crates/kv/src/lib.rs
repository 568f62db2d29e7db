//! Arca's KV secrets engine, versions 1 and 2, speaking Vault's KV API.
//!
//! * [`kv_v1`] is Vault's non-versioned ("passthrough") engine: one JSON
//!   object per key, read/write/delete/list at the raw path.
//! * [`kv_v2`] is the versioned engine: `config`, `data/`, `delete/`,
//!   `undelete/`, `destroy/`, `metadata/`, `detailed-metadata/`, `subkeys/`.
//! * [`factory`] picks one by the mount's `version` option, and
//!   [`upgrade_v1_to_v2`] converts a mount's storage when it is tuned from
//!   version 1 to version 2.
//!
//! # Storage layout (inside the mount's own storage view)
//!
//! | key | value | engine |
//! |---|---|---|
//! | `v1/<path>` | the secret, a JSON object | v1 |
//! | `config` | [`model::Config`] as JSON (absent = defaults) | v2 |
//! | `metadata/<path>` | [`model::KeyMetadata`] as JSON: versions, settings, custom metadata | v2 |
//! | `versions/<path>/<n>` | [`model::VersionData`] as JSON: version `n`'s data | v2 |
//!
//! v1 secrets live under their own prefix so that a v1 key can never be
//! mistaken for a v2 record (a v1 key may be called `metadata/x`), which makes
//! the upgrade exact and restartable.
//!
//! # Invariants
//!
//! * Every v2 mutation of one secret is a single [`arca_sdk::Storage::batch`]:
//!   metadata, new version data and trimmed/destroyed version data change
//!   together or not at all.
//! * `versions/<path>/<n>` exists iff `n` is a key of the metadata's `versions`
//!   map and that version is not destroyed.
//! * Version numbers only grow; `current_version` is the newest version ever
//!   written; `oldest_version` follows Vault's sliding window.
//! * Read, list and existence handlers never write storage (a standby serves
//!   them locally); expiry by `delete_version_after` is computed at read time
//!   from the stored `deletion_time`, so nothing has to be rewritten when a
//!   version expires.
//! * Writers to one secret are serialised by per-key locks held by the backend
//!   instance (core keeps one instance per mount); nothing is cached, so
//!   [`arca_sdk::Backend::invalidate`] has nothing to do.
//! * Paths ending in `/` and the empty path cannot be written: listing and the
//!   key layout rely on `/` separating folders.

mod backend;
pub mod model;
mod path_config;
mod path_data;
mod path_delete;
mod path_destroy;
mod path_metadata;
mod path_passthrough;
mod path_subkeys;
mod upgrade;
mod util;

#[cfg(test)]
mod test_util;

pub use backend::{factory, kv_v1, kv_v2, new_backend, KvV1, KvV2};
pub use upgrade::upgrade_v1_to_v2;
