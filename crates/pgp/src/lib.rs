//! Unseal key shares, recovery key shares and root tokens encrypted to the
//! OpenPGP public keys of the operators who hold them, in the format Vault
//! and OpenBao return from `sys/init` (`pgp_keys`, `recovery_pgp_keys`,
//! `root_token_pgp_key`), root and recovery key rotation (`pgp_keys`,
//! `backup`) and root token generation (`pgp_key`).
//!
//! # The format (what a holder's `gpg --decrypt` must see)
//!
//! - A key is given as standard base64 (with padding) of a binary OpenPGP
//!   transferable public key, `gpg --export <fingerprint> | base64 -w0`.
//!   Line breaks in the base64 are ignored. Arca also takes an ASCII-armored
//!   key block (`gpg --export --armor`), as it is or base64-encoded; Vault's
//!   server takes neither (its CLI converts key files before sending them).
//! - `keybase:<user>` entries are refused: Vault's CLI fetches those keys
//!   from Keybase before it calls the server, and Arca fetches nothing.
//! - The plaintext of an unseal or recovery share is the share's lowercase
//!   hex text (what `keys` shows without PGP), not its raw bytes:
//!   [`encrypt_shares`] does that encoding. The plaintext of a root token is
//!   the token's text, given to [`HolderKey::encrypt`] as it is.
//! - Each result is a binary (not armored) OpenPGP message: one
//!   public-key-encrypted session key packet (v3) for the holder's encryption
//!   key, then a symmetrically encrypted, integrity-protected data packet
//!   (SEIPD v1, with MDC) holding one uncompressed literal data packet. The
//!   session key is fresh and random for every message. The caller shows it
//!   as hex (`keys`) and base64 (`keys_base64`, a root token's `root_token`
//!   or `encoded_token`).
//! - A fingerprint is the lowercase hex of the primary key's fingerprint (40
//!   characters for a v4 key), as `pgp_fingerprints` shows it.
//! - The key encrypted to is the newest valid subkey whose binding signature
//!   allows encryption, or else the primary key if its self-signature allows
//!   encryption. Expired or revoked keys and subkeys, and signatures that do
//!   not verify, are not used.
//!
//! Vault's library ends up with AES-128 for a typical GnuPG key; Arca uses
//! AES-256 when the key's preferences list it and AES-128 (which every
//! implementation must read) otherwise. Vault requires the
//! "encrypt communications" flag; Arca, like GnuPG, takes either encryption
//! flag. Vault marks the literal data as text; Arca marks it binary, so the
//! bytes come back exactly as given. None of these changes what a holder's
//! `gpg --decrypt` prints.
//!
//! # Invariants
//!
//! - Plaintext is never logged, formatted into an error or kept: the hex copy
//!   [`encrypt_shares`] makes is zeroized when dropped, and the message is
//!   built by reading the caller's slice, not a copy of it.
//! - Inputs are bounded before they are parsed: a key's text is at most
//!   [`MAX_KEY_TEXT`] characters and its binary form at most [`MAX_KEY_BYTES`]
//!   bytes; [`encrypt_shares`] and [`parse_keys`] take at most [`MAX_KEYS`]
//!   keys (one per share, and Vault allows at most 255 shares).
//! - A secret key is refused (and its decoded bytes zeroized): a holder
//!   sends only the public part.
//! - Nothing panics on user input: every failure is a [`PgpError`] that keeps
//!   its cause as its `source`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pgp::composed::{MessageBuilder, PublicOrSecret, SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::Signature;
use pgp::types::{KeyDetails, KeyVersion, Tag};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// The largest binary public key taken, in bytes. A key with many
/// third-party signatures can be larger: export it with
/// `gpg --export-options export-minimal --export`.
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// The longest key text taken (base64 or armor of [`MAX_KEY_BYTES`] bytes,
/// with line breaks and headers).
pub const MAX_KEY_TEXT: usize = MAX_KEY_BYTES * 3 / 2;

/// The most keys taken at once: one per share, and there are at most 255
/// shares.
pub const MAX_KEYS: usize = 255;

const KEYBASE_PREFIX: &str = "keybase:";

/// Why a key could not be taken or a message not made.
#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    #[error("an empty PGP key was given")]
    Empty,
    #[error(
        "Arca does not fetch keys from Keybase (\"{0}\"): pass the base64 of the binary public key \
         (gpg --export <fingerprint> | base64 -w0)"
    )]
    Keybase(String),
    #[error(
        "the PGP key is too large ({len} bytes, at most {max}); export it with \
         gpg --export-options export-minimal --export <fingerprint>"
    )]
    TooLarge { len: usize, max: usize },
    #[error("the PGP key is not valid base64 (expected base64 of the binary public key)")]
    Base64(#[source] base64::DecodeError),
    #[error("the PGP key could not be parsed as an OpenPGP public key")]
    Parse(#[source] pgp::errors::Error),
    #[error("no OpenPGP public key was found in the given data")]
    NoKey,
    #[error(
        "a secret (private) OpenPGP key was given: pass only the public key \
         (gpg --export, not --export-secret-keys)"
    )]
    SecretKey,
    #[error("the PGP key data holds more than one public key: give one key per entry")]
    MultipleKeys,
    #[error(
        "the PGP key {fingerprint} is a version {version} key; only version 4 and 6 keys are taken"
    )]
    UnsupportedVersion { fingerprint: String, version: u8 },
    #[error("the PGP key {fingerprint} has no valid self-signature on a user ID or the key")]
    NoSelfSignature { fingerprint: String },
    #[error("the PGP key {fingerprint} is revoked")]
    Revoked { fingerprint: String },
    #[error("the PGP key {fingerprint} has expired")]
    Expired { fingerprint: String },
    #[error(
        "the PGP key {fingerprint} has no valid key that may encrypt (add an encryption subkey)"
    )]
    NoEncryptionKey { fingerprint: String },
    #[error("{count} PGP keys were given, at most {max} are taken")]
    TooManyKeys { count: usize, max: usize },
    #[error("pgp key {index}: {source}")]
    AtIndex {
        index: usize,
        #[source]
        source: Box<PgpError>,
    },
    #[error("mismatch between the number of items to encrypt ({items}) and of PGP keys ({keys})")]
    CountMismatch { items: usize, keys: usize },
    #[error("encrypting to the PGP key {fingerprint} failed")]
    Encrypt {
        fingerprint: String,
        #[source]
        source: pgp::errors::Error,
    },
}

/// Which key of the certificate messages are encrypted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Primary,
    Subkey(usize),
}

/// A holder's public key as Vault takes it, checked and ready to encrypt to.
#[derive(Clone)]
pub struct HolderKey {
    cert: SignedPublicKey,
    fingerprint: String,
    target: Target,
    /// Unix time (seconds) from which the key encrypted to is expired.
    expires_at: Option<u64>,
    cipher: SymmetricKeyAlgorithm,
}

impl std::fmt::Debug for HolderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HolderKey")
            .field("fingerprint", &self.fingerprint)
            .field("target", &self.target)
            .field("expires_at", &self.expires_at)
            .field("cipher", &self.cipher)
            .finish()
    }
}

impl HolderKey {
    /// Parses one `pgp_keys` entry: base64 of a binary transferable public
    /// key (Vault's form), or an armored public key block, as it is or in
    /// base64. Chooses the key to encrypt to now (see the module docs).
    pub fn parse(key: &str) -> Result<HolderKey, PgpError> {
        let bytes = decode_key_text(key)?;
        let cert = read_one_public_key(&bytes)?;
        drop(bytes);
        Self::from_cert(cert, unix_now())
    }

    /// The primary key's fingerprint as Vault shows it: lowercase hex.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Encrypts `plaintext` as it is (for a root token: the token's text) to
    /// the holder's encryption key; returns a binary OpenPGP message.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, PgpError> {
        if let Some(expires_at) = self.expires_at {
            if unix_now() >= expires_at {
                return Err(PgpError::Expired {
                    fingerprint: self.fingerprint.clone(),
                });
            }
        }
        let encrypt_err = |source| PgpError::Encrypt {
            fingerprint: self.fingerprint.clone(),
            source,
        };
        // Reading the caller's slice: no copy of the plaintext is made here.
        let mut builder = MessageBuilder::from_reader("", plaintext).seipd_v1(OsRng, self.cipher);
        match self.target {
            Target::Primary => builder.encrypt_to_key(OsRng, &self.cert.primary_key),
            Target::Subkey(i) => builder.encrypt_to_key(OsRng, &self.cert.public_subkeys[i]),
        }
        .map_err(encrypt_err)?;
        builder.to_vec(OsRng).map_err(encrypt_err)
    }

    fn from_cert(cert: SignedPublicKey, now: u64) -> Result<HolderKey, PgpError> {
        let primary = &cert.primary_key;
        let fingerprint = hex::encode(primary.fingerprint().as_bytes());
        let version = primary.version();
        if !matches!(version, KeyVersion::V4 | KeyVersion::V6) {
            return Err(PgpError::UnsupportedVersion {
                fingerprint,
                version: version.into(),
            });
        }
        let revoked = cert
            .details
            .revocation_signatures
            .iter()
            .any(|sig| sig.verify_key(primary).is_ok());
        if revoked {
            return Err(PgpError::Revoked { fingerprint });
        }
        let Some(self_sig) = primary_self_signature(&cert) else {
            return Err(PgpError::NoSelfSignature { fingerprint });
        };
        if sig_expired(self_sig, now) {
            return Err(PgpError::Expired { fingerprint });
        }
        let primary_expiry = key_expiry(primary.created_at().as_secs(), self_sig);
        if primary_expiry.is_some_and(|at| now >= at) {
            return Err(PgpError::Expired { fingerprint });
        }

        // The newest valid encryption subkey, else the primary key.
        let mut best: Option<(u32, usize, Option<u64>)> = None;
        for (i, subkey) in cert.public_subkeys.iter().enumerate() {
            let Some((created, expiry)) = usable_subkey(primary, subkey, now) else {
                continue;
            };
            if best.is_none_or(|(newest, _, _)| created > newest) {
                best = Some((created, i, expiry));
            }
        }
        let (target, key_expiry) = match best {
            Some((_, i, expiry)) => (Target::Subkey(i), expiry),
            None if may_encrypt(self_sig) && primary.algorithm().can_encrypt() => {
                (Target::Primary, None)
            }
            None => return Err(PgpError::NoEncryptionKey { fingerprint }),
        };
        let expires_at = match (primary_expiry, key_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let cipher = if self_sig
            .preferred_symmetric_algs()
            .contains(&SymmetricKeyAlgorithm::AES256)
        {
            SymmetricKeyAlgorithm::AES256
        } else {
            SymmetricKeyAlgorithm::AES128
        };
        Ok(HolderKey {
            cert,
            fingerprint,
            target,
            expires_at,
            cipher,
        })
    }
}

/// Parses a whole `pgp_keys` list (at most [`MAX_KEYS`]); an error names the
/// entry's index (from 0).
pub fn parse_keys<S: AsRef<str>>(keys: &[S]) -> Result<Vec<HolderKey>, PgpError> {
    if keys.len() > MAX_KEYS {
        return Err(PgpError::TooManyKeys {
            count: keys.len(),
            max: MAX_KEYS,
        });
    }
    keys.iter()
        .enumerate()
        .map(|(index, key)| {
            HolderKey::parse(key.as_ref()).map_err(|e| PgpError::AtIndex {
                index,
                source: Box::new(e),
            })
        })
        .collect()
}

/// Vault's `EncryptShares` for unseal and recovery shares: share `i` (raw
/// bytes, as the Shamir split returns them) is encrypted, as its lowercase
/// hex text, to `keys[i]`. Returns the keys' fingerprints and the binary
/// messages, both in the order given.
pub fn encrypt_shares(
    shares: &[&[u8]],
    keys: &[HolderKey],
) -> Result<(Vec<String>, Vec<Vec<u8>>), PgpError> {
    if shares.len() != keys.len() {
        return Err(PgpError::CountMismatch {
            items: shares.len(),
            keys: keys.len(),
        });
    }
    if keys.len() > MAX_KEYS {
        return Err(PgpError::TooManyKeys {
            count: keys.len(),
            max: MAX_KEYS,
        });
    }
    let mut fingerprints = Vec::with_capacity(keys.len());
    let mut messages = Vec::with_capacity(keys.len());
    for (share, key) in shares.iter().zip(keys) {
        let hex_share = Zeroizing::new(hex::encode(share));
        messages.push(key.encrypt(hex_share.as_bytes())?);
        fingerprints.push(key.fingerprint());
    }
    Ok((fingerprints, messages))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key's binary form from its text, bounded. Zeroized on drop, in case
/// it is a secret key sent by mistake.
fn decode_key_text(key: &str) -> Result<Zeroizing<Vec<u8>>, PgpError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(PgpError::Empty);
    }
    if key.len() >= KEYBASE_PREFIX.len()
        && key.as_bytes()[..KEYBASE_PREFIX.len()].eq_ignore_ascii_case(KEYBASE_PREFIX.as_bytes())
    {
        let shown: String = key.chars().take(64).collect();
        return Err(PgpError::Keybase(shown));
    }
    if key.len() > MAX_KEY_TEXT {
        return Err(PgpError::TooLarge {
            len: key.len(),
            max: MAX_KEY_TEXT,
        });
    }
    let bytes = if key.starts_with("-----BEGIN ") {
        // Armored; rPGP's reader takes it as it is.
        Zeroizing::new(key.as_bytes().to_vec())
    } else {
        let compact = Zeroizing::new(
            key.bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>(),
        );
        Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&*compact)
                .map_err(PgpError::Base64)?,
        )
    };
    if bytes.len() > MAX_KEY_BYTES {
        return Err(PgpError::TooLarge {
            len: bytes.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(bytes)
}

/// Exactly one transferable public key from binary or armored data.
fn read_one_public_key(bytes: &[u8]) -> Result<SignedPublicKey, PgpError> {
    let (mut keys, _headers) = PublicOrSecret::from_reader_many(bytes).map_err(PgpError::Parse)?;
    let first = match keys.next() {
        None => return Err(PgpError::NoKey),
        Some(Err(e)) => return Err(PgpError::Parse(e)),
        Some(Ok(PublicOrSecret::Secret(_))) => return Err(PgpError::SecretKey),
        Some(Ok(PublicOrSecret::Public(key))) => key,
    };
    match keys.next() {
        None => Ok(first),
        Some(Ok(PublicOrSecret::Secret(_))) => Err(PgpError::SecretKey),
        Some(Ok(PublicOrSecret::Public(_))) => Err(PgpError::MultipleKeys),
        Some(Err(e)) => Err(PgpError::Parse(e)),
    }
}

/// The self-signature that speaks for the primary key: the newest verified
/// certification of a user ID that is not revoked (one marked primary
/// first), else the newest verified direct-key signature.
fn primary_self_signature(cert: &SignedPublicKey) -> Option<&Signature> {
    let primary = &cert.primary_key;
    let mut best: Option<(bool, u32, &Signature)> = None;
    for user in &cert.details.users {
        let verifies = |sig: &&Signature| {
            sig.verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
        };
        let revoked = user
            .signatures
            .iter()
            .filter(|sig| sig.typ() == Some(pgp::packet::SignatureType::CertRevocation))
            .any(|sig| verifies(&sig));
        if revoked {
            continue;
        }
        let newest = user
            .signatures
            .iter()
            .filter(|sig| sig.is_certification())
            .filter(verifies)
            .max_by_key(|sig| sig.created().map(|t| t.as_secs()).unwrap_or(0));
        if let Some(sig) = newest {
            let rank = (sig.is_primary(), created_secs(sig));
            if best.is_none_or(|(p, c, _)| rank > (p, c)) {
                best = Some((rank.0, rank.1, sig));
            }
        }
    }
    if let Some((_, _, sig)) = best {
        return Some(sig);
    }
    cert.details
        .direct_signatures
        .iter()
        .filter(|sig| sig.verify_key(primary).is_ok())
        .max_by_key(|sig| created_secs(sig))
}

/// For a subkey that may encrypt now: its binding's creation time and the
/// time it expires.
fn usable_subkey(
    primary: &pgp::packet::PublicKey,
    subkey: &SignedPublicSubKey,
    now: u64,
) -> Option<(u32, Option<u64>)> {
    if !subkey.key.algorithm().can_encrypt() {
        return None;
    }
    let verified = |sig: &&Signature| sig.verify_subkey_binding(primary, &subkey.key).is_ok();
    let revoked = subkey
        .signatures
        .iter()
        .filter(|sig| sig.typ() == Some(pgp::packet::SignatureType::SubkeyRevocation))
        .any(|sig| verified(&sig));
    if revoked {
        return None;
    }
    let binding = subkey
        .signatures
        .iter()
        .filter(|sig| sig.typ() == Some(pgp::packet::SignatureType::SubkeyBinding))
        .filter(verified)
        .max_by_key(|sig| created_secs(sig))?;
    if !may_encrypt(binding) || sig_expired(binding, now) {
        return None;
    }
    let expiry = key_expiry(subkey.key.created_at().as_secs(), binding);
    if expiry.is_some_and(|at| now >= at) {
        return None;
    }
    Some((created_secs(binding), expiry))
}

fn may_encrypt(sig: &Signature) -> bool {
    let flags = sig.key_flags();
    flags.encrypt_comms() || flags.encrypt_storage()
}

fn created_secs(sig: &Signature) -> u32 {
    sig.created().map(|t| t.as_secs()).unwrap_or(0)
}

/// When a key created at `created` expires under `sig` (none for 0 or no
/// key expiration time subpacket).
fn key_expiry(created: u32, sig: &Signature) -> Option<u64> {
    let secs = std::time::Duration::from(sig.key_expiration_time()?).as_secs();
    (secs != 0).then(|| u64::from(created) + secs)
}

fn sig_expired(sig: &Signature, now: u64) -> bool {
    let Some(validity) = sig.signature_expiration_time() else {
        return false;
    };
    let secs = std::time::Duration::from(validity).as_secs();
    secs != 0 && now >= u64::from(created_secs(sig)) + secs
}
