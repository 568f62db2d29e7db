//! Counting AES-GCM encryptions per key term across the cluster, so that a
//! term is retired long before its random 96-bit nonces risk colliding
//! (NIST SP 800-38D: at most 2³² invocations per key).
//!
//! Each *writer* (one barrier, from unseal or keyring reload until the next
//! one) owns one record at `core/keyring-usage/<term>/<writer>`: a count it
//! has *reserved*, persisted before it is used. A writer encrypts only
//! within its reservation; when it runs out it re-reads the other writers'
//! records and persists a new reservation of [`RotationConfig::step`] more.
//! The count of a term is the sum of every writer's record (the writer's
//! own exact count for itself), and never less than the floor the keyring
//! record carries.
//!
//! Invariants:
//! - An encryption happens only after a record covering it is persisted:
//!   a crash, a restart or a leader change can only make the count
//!   *higher* than the truth (by at most one reservation per writer), never
//!   lower. A clean stop ([`Barrier::flush_usage`]) gives back the unused
//!   part of the reservation.
//! - Writers never write each other's records, so two nodes that both
//!   believe they lead for a moment cannot overwrite each other's counts.
//! - Only the active node can persist a reservation; on a standby the write
//!   fails with `ReadOnly` before anything is encrypted, and the request is
//!   forwarded.
//! - When rotation is enabled, no encryption makes the count pass
//!   `max_operations`: the term is rotated first (unless the term is still
//!   unused, so that one batch larger than the whole budget still goes
//!   through). The leader's periodic check also rotates a term that has
//!   reached the budget or outlived `interval`.
//! - Records carry an HMAC under a key derived from the root key; a record
//!   that does not verify counts as the whole budget (it forces rotation).
//! - Rotation deletes the records of every retired term in the same
//!   physical batch that stores the new keyring.
//!
//! [`Barrier::flush_usage`]: crate::Barrier::flush_usage

use hmac::Mac;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::keyring::Keyring;

/// Physical prefix of the usage records (outside the encrypted `b/` space,
/// like the keyring).
pub const USAGE_PREFIX: &str = "core/keyring-usage/";

/// Largest reservation one record write makes.
const MAX_STEP: u64 = 1 << 16;

const MAC_PURPOSE: &str = "arca barrier usage v1";
const MAC_LEN: usize = 32;

/// When the barrier rotates its key term by itself (Vault's
/// `sys/rotate/config`). Stored in the keyring record, so it is replicated
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationConfig {
    /// Encryptions after which the term is rotated.
    pub max_operations: u64,
    /// Age in seconds after which the term is rotated; 0: never by age.
    pub interval: u64,
    /// False: never rotate automatically (counting goes on).
    pub enabled: bool,
}

impl RotationConfig {
    /// Vault's default and maximum: about 90% of 2³², leaving room for
    /// counting losses.
    pub const MAX_OPERATIONS: u64 = 3_865_470_566;
    /// The smallest `max_operations` Vault's API accepts.
    pub const MIN_OPERATIONS: u64 = 1_000_000;
    /// The shortest `interval` Vault's API accepts (24 hours).
    pub const MIN_INTERVAL: u64 = 24 * 3600;

    /// Encryptions reserved by one usage record write: a 64th of the
    /// budget, at most 65536 (one extra storage write per 65536
    /// encryptions, and at most that many counted twice after a crash).
    pub fn step(&self) -> u64 {
        (self.max_operations / 64).clamp(1, MAX_STEP)
    }

    /// Checks what the barrier itself needs (the API is stricter).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max_operations == 0 || self.max_operations > Self::MAX_OPERATIONS {
            return Err(format!(
                "max_operations must be between 1 and {}",
                Self::MAX_OPERATIONS
            ));
        }
        Ok(())
    }
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_operations: Self::MAX_OPERATIONS,
            interval: 0,
            enabled: true,
        }
    }
}

/// This barrier's own accounting for one term.
#[derive(Debug)]
pub(crate) struct Usage {
    /// The term counted (0 before the first keyring is loaded).
    pub term: u32,
    /// This writer's record name.
    pub writer: String,
    /// Encryptions this writer performed under `term`.
    pub used: u64,
    /// What this writer's record says (persisted): `used` never passes it.
    pub reserved: u64,
    /// Sum of the other writers' records, as last read.
    pub others: u64,
    /// The keyring record's count for `term`.
    pub floor: u64,
}

impl Usage {
    /// A new writer for the keyring's active term.
    pub fn fresh(kr: Option<&Keyring>) -> Self {
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Usage {
            term: kr.map_or(0, |k| k.active_term()),
            writer: id.iter().map(|b| format!("{b:02x}")).collect(),
            used: 0,
            reserved: 0,
            others: 0,
            floor: kr.map_or(0, |k| k.active_floor()),
        }
    }

    /// The term's count as this writer knows it.
    pub fn total(&self) -> u64 {
        (self.others + self.used).max(self.floor)
    }

    /// Counts `n` encryptions under `kr`'s active term if the reservation
    /// covers them and they keep the term within its budget.
    pub fn try_charge(&mut self, kr: &Keyring, n: u64) -> bool {
        let cfg = kr.rotation();
        let fits = !cfg.enabled || self.total() == 0 || self.total() + n <= cfg.max_operations;
        if self.term == kr.active_term() && self.used + n <= self.reserved && fits {
            self.used += n;
            return true;
        }
        false
    }
}

/// Physical key of a writer's record.
pub(crate) fn record_key(term: u32, writer: &str) -> String {
    format!("{USAGE_PREFIX}{term}/{writer}")
}

fn mac(kr: &Keyring, key: &str, count: u64) -> [u8; MAC_LEN] {
    // Stable across root key rotations: records stay valid.
    let k = kr.derive_stable(MAC_PURPOSE);
    let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(k.as_ref())
        .expect("HMAC takes any key length");
    m.update(key.as_bytes());
    m.update(&count.to_be_bytes());
    m.finalize().into_bytes().into()
}

/// A record's value: the count, then its MAC.
pub(crate) fn encode_record(kr: &Keyring, key: &str, count: u64) -> Vec<u8> {
    let mut v = count.to_be_bytes().to_vec();
    v.extend_from_slice(&mac(kr, key, count));
    v
}

/// The count a record holds, or `None` when it does not verify.
pub(crate) fn decode_record(kr: &Keyring, key: &str, value: &[u8]) -> Option<u64> {
    if value.len() != 8 + MAC_LEN {
        return None;
    }
    let count = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
    use subtle::ConstantTimeEq;
    bool::from(mac(kr, key, count).ct_eq(&value[8..])).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootKey;

    #[test]
    fn records_verify_only_under_their_key_and_root() {
        let kr = Keyring::generate(RootKey::generate());
        let k = record_key(3, "abc");
        assert_eq!(k, "core/keyring-usage/3/abc");
        let v = encode_record(&kr, &k, 12345);
        assert_eq!(decode_record(&kr, &k, &v), Some(12345));
        assert_eq!(decode_record(&kr, &record_key(3, "abd"), &v), None);
        let mut lowered = v.clone();
        lowered[7] = 0;
        assert_eq!(decode_record(&kr, &k, &lowered), None);
        let other = Keyring::generate(RootKey::generate());
        assert_eq!(decode_record(&other, &k, &v), None);
        assert_eq!(decode_record(&kr, &k, &v[..20]), None);
    }

    #[test]
    fn steps_scale_with_the_budget() {
        let cfg = |max_operations| RotationConfig {
            max_operations,
            ..Default::default()
        };
        assert_eq!(RotationConfig::default().step(), 1 << 16);
        assert_eq!(cfg(1_000_000).step(), 15_625);
        assert_eq!(cfg(10).step(), 1);
        assert!(cfg(0).check().is_err());
        assert!(cfg(RotationConfig::MAX_OPERATIONS + 1).check().is_err());
        assert!(cfg(1).check().is_ok());
    }

    #[test]
    fn charging_stays_within_the_reservation_and_budget() {
        let kr = Keyring::generate(RootKey::generate()).with_rotation(
            RotationConfig {
                max_operations: 10,
                interval: 0,
                enabled: true,
            },
            0,
        );
        let mut u = Usage::fresh(Some(&kr));
        assert!(!u.try_charge(&kr, 1), "nothing reserved yet");
        u.reserved = 8;
        assert!(u.try_charge(&kr, 5));
        assert!(!u.try_charge(&kr, 4), "past the reservation");
        u.reserved = 20;
        u.others = 4;
        assert!(u.try_charge(&kr, 1));
        assert_eq!(u.total(), 10);
        assert!(!u.try_charge(&kr, 1), "past the budget");
        // A fresh term takes one batch larger than the whole budget.
        let mut u = Usage::fresh(Some(&kr));
        u.reserved = 50;
        assert!(u.try_charge(&kr, 40));
        // The keyring's floor counts.
        let floored = kr.with_rotation(kr.rotation(), 9);
        let mut u = Usage::fresh(Some(&floored));
        u.reserved = 5;
        assert_eq!(u.total(), 9);
        assert!(!u.try_charge(&floored, 2));
        assert!(u.try_charge(&floored, 1));
    }
}
