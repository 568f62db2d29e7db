//! The transit secrets engine: encryption, signing and HMAC as a service,
//! following Vault's transit API (paths, fields, defaults, answers and the
//! `vault:v<N>:<base64>` ciphertext format). Built against the sdk only.
//!
//! Keys are named key rings (`keys/:name`) of versions; encrypt, sign and
//! HMAC use the newest version (or one asked for, not older than
//! `min_encryption_version`), decrypt and verify take the version from
//! the ciphertext (not older than `min_decryption_version`). Keys can be
//! imported wrapped for the mount (BYOK), exported and backed up when the
//! key allows it, and rotated on a schedule.
//!
//! Invariants: key material is zeroized when dropped and never logged;
//! every request that only uses a key is served by any unsealed node from
//! replicated state, also while no leader is elected; every change of a key
//! is a write on the active node that every node's cache sees when it is
//! applied (see `backend`).

mod backend;
mod crypto;
mod keys;
mod material;
mod path_byok;
mod path_crypt;
mod path_keys;
mod path_misc;
mod path_sign;
#[cfg(test)]
mod tests;

pub use backend::{factory, new_backend, Transit};
