//! `sys/tools/random[/:source][/:bytes]` and `sys/tools/hash[/:algorithm]`:
//! random bytes from the operating system's generator and hashes of
//! caller-supplied data, as Vault documents them.
//!
//! Invariants: at most [`MAX_RANDOM_BYTES`] per request (a 400 above);
//! `source` is `platform`, `all` or `seal` (all three the OS generator, the
//! only source a node has; `seal` says so in a warning, as OpenBao without
//! entropy augmentation); an unknown source, algorithm or format is a 400
//! naming it. Nothing is stored.

use base64::Engine as _;
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Digest;

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;

/// Vault's bound for one request of random bytes (128 KiB).
pub(crate) const MAX_RANDOM_BYTES: i64 = 128 * 1024;

/// The algorithms Vault documents for `sys/tools/hash`.
pub(crate) const HASH_ALGORITHMS: &[&str] = &[
    "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384", "sha3-512",
];

fn encode(bytes: &[u8], format: &str) -> Result<String, LogicalError> {
    match format {
        "hex" => Ok(hex::encode(bytes)),
        "base64" => Ok(base64::engine::general_purpose::STANDARD.encode(bytes)),
        other => Err(LogicalError::invalid(format!(
            "unsupported encoding format {other:?}: must be \"hex\" or \"base64\""
        ))),
    }
}

/// The digest of `input` with one of [`HASH_ALGORITHMS`].
pub(crate) fn digest(algorithm: &str, input: &[u8]) -> Result<Vec<u8>, LogicalError> {
    Ok(match algorithm {
        "sha2-224" => sha2::Sha224::digest(input).to_vec(),
        "sha2-256" => sha2::Sha256::digest(input).to_vec(),
        "sha2-384" => sha2::Sha384::digest(input).to_vec(),
        "sha2-512" => sha2::Sha512::digest(input).to_vec(),
        "sha3-224" => sha3::Sha3_224::digest(input).to_vec(),
        "sha3-256" => sha3::Sha3_256::digest(input).to_vec(),
        "sha3-384" => sha3::Sha3_384::digest(input).to_vec(),
        "sha3-512" => sha3::Sha3_512::digest(input).to_vec(),
        other => {
            return Err(LogicalError::invalid(format!(
                "unsupported hash algorithm {other:?}: must be one of {}",
                HASH_ALGORITHMS.join(", ")
            )))
        }
    })
}

impl Sys {
    async fn random(&self, c: Ctx<'_>) -> HandlerResult {
        let source = c.data.str_or("source", "platform")?;
        let mut warnings = Vec::new();
        match source.as_str() {
            // The node's only source is the OS generator: "all" mixes
            // every available source, which is that one.
            "" | "platform" | "all" => {}
            // As OpenBao without entropy augmentation: the OS generator,
            // and the answer says so.
            "seal" => warnings.push(
                "this node's seal gives no entropy (no entropy augmentation): the bytes come from the platform source".to_string(),
            ),
            other => {
                return Err(LogicalError::invalid(format!(
                    "unsupported entropy source {other:?}: must be \"platform\", \"all\" or \"seal\""
                )))
            }
        }
        let bytes = match c.data.get_str("urlbytes")?.filter(|s| !s.is_empty()) {
            Some(s) => s.parse::<i64>().map_err(|_| {
                LogicalError::invalid(format!(
                    "{s:?} in the path is neither a byte count nor a source (platform, all)"
                ))
            })?,
            None => c.data.get_i64("bytes")?.unwrap_or(32),
        };
        if !(1..=MAX_RANDOM_BYTES).contains(&bytes) {
            return Err(LogicalError::invalid(format!(
                "bytes must be between 1 and {MAX_RANDOM_BYTES}, not {bytes}"
            )));
        }
        let format = c.data.str_or("format", "base64")?;
        let mut buf = vec![0u8; bytes as usize];
        rand::rngs::OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| LogicalError::internal(format!("the OS random generator failed: {e}")))?;
        let out = encode(&buf, &format)?;
        let mut data = Map::new();
        data.insert("random_bytes".into(), Value::from(out));
        let mut r = Response::data(data);
        r.warnings = warnings;
        Ok(Some(r))
    }

    async fn hash(&self, c: Ctx<'_>) -> HandlerResult {
        let algorithm = match c.data.get_str("urlalgorithm")?.filter(|s| !s.is_empty()) {
            Some(a) => a,
            None => c.data.str_or("algorithm", "sha2-256")?,
        };
        let format = c.data.str_or("format", "hex")?;
        // Documented as required: a request without it is a mistake; an
        // empty string is the empty input.
        let input = c
            .data
            .get_str("input")?
            .ok_or_else(|| LogicalError::invalid("missing input to hash (input, base64)"))?;
        let input = base64::engine::general_purpose::STANDARD
            .decode(input.trim())
            .map_err(|e| LogicalError::invalid(format!("input is not valid base64: {e}")))?;
        let sum = digest(&algorithm, &input)?;
        let mut data = Map::new();
        data.insert("sum".into(), Value::from(encode(&sum, &format)?));
        Ok(Some(Response::data(data)))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("tools/random(?:/(?P<source>platform|all|seal))?(?:/(?P<urlbytes>[^/]+))?")
            .field(Field::new(
                "urlbytes",
                FieldType::String,
                "The number of bytes, in the path.",
            ))
            .field(Field::new("bytes", FieldType::Int, "The number of bytes (1 to 131072).").default(32))
            .field(
                Field::new("format", FieldType::String, "hex or base64.")
                    .default("base64"),
            )
            .field(
                Field::new(
                    "source",
                    FieldType::String,
                    "platform (the OS generator), all (every available source: the same) or seal (no seal entropy here: the OS generator, with a warning).",
                )
                .default("platform"),
            )
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.random(c)))
            .help("Random bytes from the operating system's generator."),
        Path::new("tools/hash(?:/(?P<urlalgorithm>[^/]+))?")
            .field(Field::new(
                "urlalgorithm",
                FieldType::String,
                "The algorithm, in the path.",
            ))
            .field(
                Field::new(
                    "algorithm",
                    FieldType::String,
                    "sha2-224, sha2-256, sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512.",
                )
                .default("sha2-256"),
            )
            .field(Field::new("input", FieldType::String, "The data to hash, base64."))
            .field(Field::new("format", FieldType::String, "hex or base64.").default("hex"))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.hash(c)))
            .help("The hash of base64 input with a SHA-2 or SHA-3 algorithm."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_answers() {
        // FIPS 180-4 / 202 test vectors for "abc".
        let abc = b"abc";
        assert_eq!(
            hex::encode(digest("sha2-256", abc).unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(digest("sha3-256", abc).unwrap()),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        for a in HASH_ALGORITHMS {
            assert!(digest(a, abc).is_ok(), "{a}");
        }
        assert!(digest("md5", abc).is_err());
        assert!(encode(b"x", "raw").is_err());
    }
}
