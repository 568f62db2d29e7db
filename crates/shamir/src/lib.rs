//! Shamir secret sharing over GF(2⁸), byte-compatible with Vault's `shamir`
//! package.
//!
//! The field is GF(2⁸) with the AES reduction polynomial x⁸+x⁴+x³+x+1 (0x11b).
//! Each byte of the secret is the constant term of its own random polynomial
//! of degree `threshold - 1`; share `i` holds that polynomial evaluated at
//! `x_i` for every byte.
//!
//! Invariants:
//! - A share is laid out as `[y_0, …, y_{n-1} ‖ x]`: its length is the secret's
//!   length plus one, and its last byte is the x coordinate (as in Vault).
//! - The x coordinates of one split are distinct, never 0, and are the first
//!   `parts` entries of a uniformly random permutation of 1..=255.
//! - Polynomial coefficients are uniform bytes from the operating system's
//!   CSPRNG (every byte value, zero included, equally likely: no rejection that
//!   would bias them, the flaw of RUSTSEC-2024-0398).
//! - Field arithmetic is constant time: multiplication is a branch-free
//!   shift-and-add loop and inversion is exponentiation by a fixed chain; no
//!   table is indexed by secret data.
//! - Every buffer that holds secret material (coefficients, shares, the
//!   reconstructed secret) is zeroized when dropped.
//! - [`combine`] rejects fewer than two shares, shares of differing length,
//!   shares shorter than two bytes, an x coordinate of 0 and duplicate x
//!   coordinates. Combining fewer shares than the threshold does not fail: it
//!   yields an unrelated value, as information-theoretic secrecy demands.

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// Errors of [`split`] and [`combine`]; messages follow Vault's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    #[error("parts cannot be less than threshold (parts {parts}, threshold {threshold})")]
    PartsLessThanThreshold { parts: usize, threshold: usize },
    #[error("parts cannot exceed 255 (got {0})")]
    TooManyParts(usize),
    #[error("threshold must be at least 2 (got {0})")]
    ThresholdTooSmall(usize),
    #[error("cannot split an empty secret")]
    EmptySecret,
    #[error("less than two parts cannot be used to reconstruct the secret")]
    TooFewParts,
    #[error("all parts must be the same length")]
    LengthMismatch,
    #[error("parts must be at least two bytes")]
    PartTooShort,
    #[error("part has an invalid x coordinate of 0")]
    ZeroCoordinate,
    #[error("duplicate part detected (x coordinate {0})")]
    DuplicatePart(u8),
}

/// Adds (and subtracts) two field elements.
#[inline]
fn add(a: u8, b: u8) -> u8 {
    a ^ b
}

/// Multiplies two field elements modulo 0x11b in constant time.
///
/// Horner's rule over the bits of `b`, most significant first: doubling `r`
/// reduces by 0x1b when its top bit was set, and `a` is added when the bit of
/// `b` is set. Both conditions become all-ones/all-zeros masks, so there are
/// no data-dependent branches or memory accesses.
#[inline]
fn mul(a: u8, b: u8) -> u8 {
    let mut r: u8 = 0;
    let mut i = 8;
    while i > 0 {
        i -= 1;
        let bit_mask = 0u8.wrapping_sub((b >> i) & 1);
        let reduce_mask = 0u8.wrapping_sub(r >> 7);
        r = (bit_mask & a) ^ (reduce_mask & 0x1b) ^ r.wrapping_shl(1);
    }
    r
}

/// The multiplicative inverse, as a^254 (a^255 = 1 for a ≠ 0); maps 0 to 0.
/// A fixed sequence of squarings and multiplications: constant time.
fn inv(a: u8) -> u8 {
    let a2 = mul(a, a); // a^2
    let a3 = mul(a2, a); // a^3
    let a6 = mul(a3, a3); // a^6
    let a12 = mul(a6, a6); // a^12
    let a15 = mul(a12, a3); // a^15
    let a30 = mul(a15, a15); // a^30
    let a60 = mul(a30, a30); // a^60
    let a63 = mul(a60, a3); // a^63
    let a126 = mul(a63, a63); // a^126
    let a127 = mul(a126, a); // a^127
    mul(a127, a127) // a^254
}

/// `a / b`; the callers never divide by zero (distinct x coordinates).
#[inline]
fn div(a: u8, b: u8) -> u8 {
    mul(a, inv(b))
}

/// Evaluates the polynomial with the given coefficients (constant term first)
/// at `x` by Horner's rule.
fn evaluate(coefficients: &[u8], x: u8) -> u8 {
    coefficients
        .iter()
        .rev()
        .fold(0u8, |acc, &c| add(mul(acc, x), c))
}

/// Splits `secret` into `parts` shares, any `threshold` of which reconstruct it.
///
/// `parts` must be in 2..=255 and `threshold` in 2..=`parts`; the secret must
/// not be empty. Each share is `secret.len() + 1` bytes: `[y… ‖ x]`.
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    split_with_rng(secret, parts, threshold, &mut OsRng)
}

/// [`split`] with an explicit CSPRNG (tests use a seeded one).
pub fn split_with_rng<R: RngCore + CryptoRng>(
    secret: &[u8],
    parts: usize,
    threshold: usize,
    rng: &mut R,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if parts < threshold {
        return Err(ShamirError::PartsLessThanThreshold { parts, threshold });
    }
    if parts > 255 {
        return Err(ShamirError::TooManyParts(parts));
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooSmall(threshold));
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }

    // x coordinates: a random permutation of 1..=255; the first `parts` are used.
    let mut xs: Vec<u8> = (1..=255u8).collect();
    xs.shuffle(rng);

    let mut shares: Vec<Zeroizing<Vec<u8>>> = xs[..parts]
        .iter()
        .map(|&x| {
            let mut s = Zeroizing::new(vec![0u8; secret.len() + 1]);
            s[secret.len()] = x;
            s
        })
        .collect();

    // One polynomial per secret byte: coefficient 0 is the byte, the others
    // are uniform random bytes.
    let mut coefficients = Zeroizing::new(vec![0u8; threshold]);
    for (idx, &byte) in secret.iter().enumerate() {
        coefficients[0] = byte;
        rng.fill_bytes(&mut coefficients[1..]);
        for share in shares.iter_mut() {
            let x = share[secret.len()];
            share[idx] = evaluate(&coefficients, x);
        }
    }
    xs.zeroize();
    Ok(shares)
}

/// Reconstructs the secret from shares produced by [`split`].
///
/// Given at least `threshold` shares of one split, returns the secret. Given
/// fewer, returns a value unrelated to the secret (this cannot be detected).
pub fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::TooFewParts);
    }
    let len = shares[0].len();
    if shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::LengthMismatch);
    }
    if len < 2 {
        return Err(ShamirError::PartTooShort);
    }
    let y_len = len - 1;
    let xs: Vec<u8> = shares.iter().map(|s| s[y_len]).collect();
    let mut seen = [false; 256];
    for &x in &xs {
        if x == 0 {
            return Err(ShamirError::ZeroCoordinate);
        }
        if seen[x as usize] {
            return Err(ShamirError::DuplicatePart(x));
        }
        seen[x as usize] = true;
    }

    // Lagrange basis polynomials evaluated at x = 0:
    // l_i(0) = Π_{j≠i} x_j / (x_i - x_j)   (subtraction is XOR).
    let basis: Vec<u8> = xs
        .iter()
        .enumerate()
        .map(|(i, &xi)| {
            xs.iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(1u8, |b, (_, &xj)| mul(b, div(xj, add(xi, xj))))
        })
        .collect();

    let mut secret = Zeroizing::new(vec![0u8; y_len]);
    for (idx, out) in secret.iter_mut().enumerate() {
        *out = shares
            .iter()
            .zip(&basis)
            .fold(0u8, |acc, (s, &l)| add(acc, mul(s[idx], l)));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert_eq, prop_assert_ne, proptest, ProptestConfig};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// An independent reference for the field: schoolbook carry-less
    /// multiplication followed by explicit reduction modulo 0x11b (with
    /// branches; test only), and division by brute-force search of the inverse.
    mod reference {
        pub fn mul(a: u8, b: u8) -> u8 {
            let mut product: u16 = 0;
            for i in 0..8 {
                if b & (1 << i) != 0 {
                    product ^= (a as u16) << i;
                }
            }
            for bit in (8..16).rev() {
                if product & (1 << bit) != 0 {
                    product ^= 0x11b << (bit - 8);
                }
            }
            product as u8
        }

        pub fn inv(a: u8) -> u8 {
            (1..=255u8)
                .find(|&b| mul(a, b) == 1)
                .expect("nonzero has inverse")
        }

        pub fn eval(coefficients: &[u8], x: u8) -> u8 {
            let mut result = 0u8;
            let mut power = 1u8;
            for &c in coefficients {
                result ^= mul(c, power);
                power = mul(power, x);
            }
            result
        }

        /// Lagrange interpolation at 0, written directly from the formula.
        pub fn interpolate_at_zero(points: &[(u8, u8)]) -> u8 {
            let mut result = 0u8;
            for (i, &(xi, yi)) in points.iter().enumerate() {
                let mut num = 1u8;
                let mut den = 1u8;
                for (j, &(xj, _)) in points.iter().enumerate() {
                    if i != j {
                        num = mul(num, xj);
                        den = mul(den, xi ^ xj);
                    }
                }
                result ^= mul(yi, mul(num, inv(den)));
            }
            result
        }
    }

    #[test]
    fn field_matches_known_products() {
        // FIPS-197 §4.2 worked examples, and Vault's field tests.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        assert_eq!(mul(3, 7), 9);
        assert_eq!(mul(3, 0), 0);
        assert_eq!(mul(0, 3), 0);
        assert_eq!(div(0, 7), 0);
        assert_eq!(div(3, 3), 1);
        assert_eq!(div(6, 3), 2);
        // 0x53 and 0xca are inverses (FIPS-197 S-box derivation example).
        assert_eq!(mul(0x53, 0xca), 1);
        assert_eq!(inv(0x53), 0xca);
        assert_eq!(inv(0), 0);
    }

    #[test]
    fn field_agrees_with_reference_everywhere() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), reference::mul(a, b), "{a} * {b}");
            }
            if a != 0 {
                assert_eq!(inv(a), reference::inv(a), "inv {a}");
            }
        }
    }

    /// A split computed by hand: f(x) = 0x42 + 0x57·x, using the FIPS-197
    /// products 0x57·0x83 = 0xc1 and 0x57·0x13 = 0xfe.
    #[test]
    fn known_vector_combines() {
        let s1: &[u8] = &[0x42 ^ 0x57, 0x01];
        let s2: &[u8] = &[0x42 ^ 0xc1, 0x83];
        let s3: &[u8] = &[0x42 ^ 0xfe, 0x13];
        for pair in [[s1, s2], [s1, s3], [s2, s3], [s3, s1]] {
            assert_eq!(combine(&pair).unwrap().as_slice(), &[0x42]);
        }
        assert_eq!(combine(&[s1, s2, s3]).unwrap().as_slice(), &[0x42]);
    }

    /// Our split checked point by point against the reference evaluation and
    /// interpolation, using the same seeded RNG stream to recover coefficients.
    #[test]
    fn split_agrees_with_reference() {
        let secret = b"correct horse battery staple";
        let (parts, threshold) = (7, 4);
        let shares =
            split_with_rng(secret, parts, threshold, &mut StdRng::seed_from_u64(7)).unwrap();

        // Replay the RNG: shuffle first, then (threshold-1) bytes per secret byte.
        let mut rng = StdRng::seed_from_u64(7);
        let mut xs: Vec<u8> = (1..=255u8).collect();
        xs.shuffle(&mut rng);
        for (share, &x) in shares.iter().zip(&xs) {
            assert_eq!(share.len(), secret.len() + 1);
            assert_eq!(share[secret.len()], x);
        }
        for (idx, &byte) in secret.iter().enumerate() {
            let mut coefficients = vec![byte; threshold];
            rng.fill_bytes(&mut coefficients[1..]);
            for share in &shares {
                let x = share[secret.len()];
                assert_eq!(share[idx], reference::eval(&coefficients, x));
            }
            let points: Vec<(u8, u8)> = shares[2..2 + threshold]
                .iter()
                .map(|s| (s[secret.len()], s[idx]))
                .collect();
            assert_eq!(reference::interpolate_at_zero(&points), byte);
        }
    }

    #[test]
    fn x_coordinates_are_distinct_and_nonzero() {
        let shares = split(b"k", 255, 2).unwrap();
        let mut xs: Vec<u8> = shares.iter().map(|s| s[1]).collect();
        xs.sort_unstable();
        assert_eq!(xs, (1..=255u8).collect::<Vec<_>>());
    }

    #[test]
    fn split_validates_parameters() {
        assert_eq!(
            split(b"s", 2, 3).unwrap_err(),
            ShamirError::PartsLessThanThreshold {
                parts: 2,
                threshold: 3
            }
        );
        assert_eq!(
            split(b"s", 256, 3).unwrap_err(),
            ShamirError::TooManyParts(256)
        );
        assert_eq!(
            split(b"s", 5, 1).unwrap_err(),
            ShamirError::ThresholdTooSmall(1)
        );
        assert_eq!(split(b"", 5, 3).unwrap_err(), ShamirError::EmptySecret);
        assert!(split(b"s", 255, 255).is_ok());
        assert!(split(b"s", 2, 2).is_ok());
    }

    #[test]
    fn combine_validates_shares() {
        let shares = split(b"secret", 3, 2).unwrap();
        let a: &[u8] = &shares[0];
        let b: &[u8] = &shares[1];
        assert_eq!(combine(&[a]).unwrap_err(), ShamirError::TooFewParts);
        assert_eq!(combine(&[]).unwrap_err(), ShamirError::TooFewParts);
        assert_eq!(
            combine(&[a, &b[1..]]).unwrap_err(),
            ShamirError::LengthMismatch
        );
        assert_eq!(
            combine(&[&[1], &[2]]).unwrap_err(),
            ShamirError::PartTooShort
        );
        assert_eq!(
            combine(&[a, a]).unwrap_err(),
            ShamirError::DuplicatePart(a[6])
        );
        let mut same_x = b.to_vec();
        same_x[6] = a[6];
        assert_eq!(
            combine(&[a, &same_x]).unwrap_err(),
            ShamirError::DuplicatePart(a[6])
        );
        assert_eq!(
            combine(&[&[1, 0], &[2, 1]]).unwrap_err(),
            ShamirError::ZeroCoordinate
        );
    }

    /// Returns `k` distinct indices below `n` chosen by the seed.
    fn pick(n: usize, k: usize, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed));
        idx.truncate(k);
        idx
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_threshold_subset_reconstructs(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            parts in 2usize..=20,
            t_frac in 0.0f64..=1.0,
            extra in 0usize..=20,
            seed in any::<u64>(),
        ) {
            let threshold = (2 + ((parts - 2) as f64 * t_frac) as usize).min(parts);
            let shares = split(&secret, parts, threshold).unwrap();
            prop_assert_eq!(shares.len(), parts);
            let k = (threshold + extra).min(parts);
            let chosen: Vec<&[u8]> = pick(parts, k, seed).into_iter().map(|i| shares[i].as_slice()).collect();
            let combined = combine(&chosen).unwrap();
            prop_assert_eq!(combined.as_slice(), secret.as_slice());
        }

        #[test]
        fn fewer_than_threshold_does_not_reconstruct(
            // ≥ 8 bytes: a chance match has probability ≤ 2^-64.
            secret in proptest::collection::vec(any::<u8>(), 8..48),
            parts in 3usize..=20,
            t_frac in 0.0f64..=1.0,
            seed in any::<u64>(),
        ) {
            let threshold = (3 + ((parts - 3) as f64 * t_frac) as usize).min(parts);
            let shares = split(&secret, parts, threshold).unwrap();
            let chosen: Vec<&[u8]> = pick(parts, threshold - 1, seed).into_iter().map(|i| shares[i].as_slice()).collect();
            let wrong = combine(&chosen).unwrap();
            prop_assert_ne!(wrong.as_slice(), secret.as_slice());
        }

        #[test]
        fn duplicates_are_rejected(
            secret in proptest::collection::vec(any::<u8>(), 1..32),
            parts in 2usize..=10,
            seed in any::<u64>(),
        ) {
            let shares = split(&secret, parts, 2).unwrap();
            let i = pick(parts, 1, seed)[0];
            let mut chosen: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
            chosen.push(shares[i].as_slice());
            prop_assert_eq!(
                combine(&chosen).unwrap_err(),
                ShamirError::DuplicatePart(shares[i][secret.len()])
            );
        }
    }
}
