//! Deterministic encryption of logical paths into physical keys, segment by
//! segment (see the crate docs for the scheme and what it reveals).
//!
//! Invariants: `physical_key` is injective (AES-GCM-SIV is a permutation per
//! parent and base64url never emits `/`), `logical_key(physical_key(p)) == p`,
//! and every physical key produced starts with [`DATA_PREFIX`].

use aes_gcm::aead::{Aead, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

use crate::keyring::{decode_segment, encode_segment};
use crate::BarrierError;

/// Physical prefix of all barrier data.
pub const DATA_PREFIX: &str = "b/";

/// The fixed nonce: determinism is the point, and AES-GCM-SIV tolerates reuse.
const FIXED_NONCE: [u8; 12] = [0; 12];

fn encrypt_segment(cipher: &Aes256GcmSiv, parent: &str, segment: &str) -> String {
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&FIXED_NONCE),
            Payload {
                msg: segment.as_bytes(),
                aad: parent.as_bytes(),
            },
        )
        .expect("AES-GCM-SIV encryption cannot fail for short inputs");
    encode_segment(&ct)
}

fn decrypt_segment(
    cipher: &Aes256GcmSiv,
    parent: &str,
    encoded: &str,
    physical: &str,
) -> Result<String, BarrierError> {
    let corrupt = |reason: &str| BarrierError::Corrupt {
        key: physical.to_string(),
        reason: format!("key name under {parent:?} {reason}"),
    };
    let ct = decode_segment(encoded).ok_or_else(|| corrupt("is not base64url"))?;
    let pt = cipher
        .decrypt(
            Nonce::from_slice(&FIXED_NONCE),
            Payload {
                msg: &ct,
                aad: parent.as_bytes(),
            },
        )
        .map_err(|_| corrupt("does not decrypt with the path key"))?;
    String::from_utf8(pt).map_err(|_| corrupt("is not UTF-8"))
}

/// The physical key of a logical path.
pub(crate) fn physical_key(cipher: &Aes256GcmSiv, logical: &str) -> String {
    let mut out = String::with_capacity(DATA_PREFIX.len() + logical.len() * 2 + 24);
    out.push_str(DATA_PREFIX);
    let mut start = 0;
    loop {
        let end = logical[start..]
            .find('/')
            .map_or(logical.len(), |i| start + i);
        out.push_str(&encrypt_segment(
            cipher,
            &logical[..start],
            &logical[start..end],
        ));
        if end == logical.len() {
            return out;
        }
        out.push('/');
        start = end + 1;
    }
}

/// The physical prefix of a logical folder (`""` or ending with `/`).
pub(crate) fn physical_folder(cipher: &Aes256GcmSiv, folder: &str) -> String {
    debug_assert!(folder.is_empty() || folder.ends_with('/'));
    match folder.strip_suffix('/') {
        None => DATA_PREFIX.to_string(),
        Some(inner) => {
            let mut p = physical_key(cipher, inner);
            p.push('/');
            p
        }
    }
}

/// Decrypts one child name returned by a physical `list` of the physical
/// folder of `parent`; keeps a trailing `/`.
pub(crate) fn logical_child(
    cipher: &Aes256GcmSiv,
    parent: &str,
    child: &str,
) -> Result<String, BarrierError> {
    let (encoded, folder) = match child.strip_suffix('/') {
        Some(e) => (e, true),
        None => (child, false),
    };
    let mut name = decrypt_segment(cipher, parent, encoded, child)?;
    if folder {
        name.push('/');
    }
    Ok(name)
}

/// The logical path of a physical key.
pub(crate) fn logical_key(cipher: &Aes256GcmSiv, physical: &str) -> Result<String, BarrierError> {
    let rest = physical
        .strip_prefix(DATA_PREFIX)
        .ok_or_else(|| BarrierError::Corrupt {
            key: physical.to_string(),
            reason: format!("not under {DATA_PREFIX:?}"),
        })?;
    let mut logical = String::with_capacity(rest.len() / 2);
    for (i, encoded) in rest.split('/').enumerate() {
        if i > 0 {
            logical.push('/');
        }
        let segment = decrypt_segment(cipher, &logical, encoded, physical)?;
        logical.push_str(&segment);
    }
    Ok(logical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::KeyInit;

    fn cipher(byte: u8) -> Aes256GcmSiv {
        Aes256GcmSiv::new_from_slice(&[byte; 32]).unwrap()
    }

    #[test]
    fn round_trip_and_structure() {
        let c = cipher(1);
        for p in [
            "a",
            "a/b/c",
            "logical/1234/ключ with space",
            "a//b",
            "trailing/",
            "🔑",
        ] {
            let phys = physical_key(&c, p);
            assert!(phys.starts_with(DATA_PREFIX));
            assert_eq!(
                phys.matches('/').count(),
                p.matches('/').count() + 1,
                "one physical segment per logical segment"
            );
            assert!(!phys.contains(p) || p.len() < 3, "{phys} leaks {p}");
            assert_eq!(logical_key(&c, &phys).unwrap(), p);
        }
    }

    #[test]
    fn deterministic_per_parent_and_key() {
        let c = cipher(1);
        assert_eq!(physical_key(&c, "x/name"), physical_key(&c, "x/name"));
        let under_x = physical_key(&c, "x/name");
        let under_y = physical_key(&c, "y/name");
        assert_ne!(
            under_x.rsplit('/').next(),
            under_y.rsplit('/').next(),
            "the same name under two parents encrypts differently"
        );
        assert_ne!(physical_key(&cipher(2), "x/name"), under_x);
    }

    #[test]
    fn folders_are_prefixes_of_their_keys() {
        let c = cipher(3);
        assert_eq!(physical_folder(&c, ""), DATA_PREFIX);
        let folder = physical_folder(&c, "a/b/");
        assert!(physical_key(&c, "a/b/c").starts_with(&folder));
        let child = &physical_key(&c, "a/b/c/d")[folder.len()..];
        let first = &child[..=child.find('/').unwrap()];
        assert_eq!(logical_child(&c, "a/b/", first).unwrap(), "c/");
    }

    #[test]
    fn foreign_or_damaged_keys_are_corrupt() {
        let c = cipher(4);
        let phys = physical_key(&c, "a/b");
        assert!(logical_key(&cipher(5), &phys).is_err());
        assert!(logical_key(&c, "core/keyring").is_err());
        assert!(logical_key(&c, "b/not*base64").is_err());
        assert!(logical_child(&c, "", "AAAA").is_err());
    }
}
