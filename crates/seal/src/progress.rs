//! [`UnsealProgress`]: collecting key shares until the threshold is reached.
//!
//! A pure state machine — no I/O, no async — so core can keep one per node
//! (and, later, one each for rekey and root-token generation, which collect
//! shares the same way) and test it without a runtime.
//!
//! Invariants:
//! - `progress() < threshold()` between calls: the submission that reaches
//!   the threshold consumes the collected shares and resets the attempt,
//!   whether or not they combine;
//! - a rejected submission (wrong length, repeated share, repeated index)
//!   leaves the state unchanged;
//! - `nonce()` is empty when no attempt is in progress and a fresh UUID from
//!   the first accepted share of an attempt until its end;
//! - collected shares are zeroized when dropped or reset.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{SealConfig, SealError, SHARE_LEN, UNSEAL_KEY_LEN};

pub struct UnsealProgress {
    threshold: usize,
    shares: usize,
    parts: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

impl std::fmt::Debug for UnsealProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealProgress")
            .field("threshold", &self.threshold)
            .field("shares", &self.shares)
            .field("progress", &self.parts.len())
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl UnsealProgress {
    /// `threshold` and `shares` come from a validated [`SealConfig`]; with a
    /// threshold of 1 the single "share" is the 32-byte unseal key itself.
    pub fn new(threshold: usize, shares: usize) -> Self {
        UnsealProgress {
            threshold: threshold.max(1),
            shares,
            parts: Vec::new(),
            nonce: String::new(),
        }
    }

    pub fn for_config(config: &SealConfig) -> Self {
        Self::new(config.secret_threshold, config.secret_shares)
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn shares(&self) -> usize {
        self.shares
    }

    /// Shares accepted so far in this attempt.
    pub fn progress(&self) -> usize {
        self.parts.len()
    }

    /// The attempt's id; empty when no attempt is in progress.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Byte length every submitted share must have.
    pub fn share_len(&self) -> usize {
        if self.threshold == 1 {
            UNSEAL_KEY_LEN
        } else {
            SHARE_LEN
        }
    }

    /// Forgets the collected shares and the nonce.
    pub fn reset(&mut self) {
        self.parts.clear();
        self.nonce.clear();
    }

    /// Adds one share. Returns the unseal key once `threshold` distinct shares
    /// have been given (and resets); `None` while more are needed.
    pub fn submit(&mut self, share: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, SealError> {
        let expected = self.share_len();
        if share.len() != expected {
            return Err(SealError::InvalidShareLength {
                expected,
                got: share.len(),
            });
        }
        if self.threshold == 1 {
            self.reset();
            return Ok(Some(Zeroizing::new(share.to_vec())));
        }
        if self
            .parts
            .iter()
            .any(|p| bool::from(p.as_slice().ct_eq(share)))
        {
            return Err(SealError::DuplicateShare);
        }
        let x = share[expected - 1];
        if self.parts.iter().any(|p| p[expected - 1] == x) {
            return Err(SealError::DuplicateShareIndex(x));
        }
        if self.parts.is_empty() {
            self.nonce = uuid::Uuid::new_v4().to_string();
        }
        self.parts.push(Zeroizing::new(share.to_vec()));
        if self.parts.len() < self.threshold {
            return Ok(None);
        }
        let refs: Vec<&[u8]> = self.parts.iter().map(|p| p.as_slice()).collect();
        let combined = arca_shamir::combine(&refs);
        self.reset();
        Ok(Some(combined?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert_eq, proptest, ProptestConfig};

    fn key_and_shares(n: usize, t: usize) -> (Vec<u8>, Vec<Zeroizing<Vec<u8>>>) {
        let key: Vec<u8> = (0..UNSEAL_KEY_LEN as u8).collect();
        (key.clone(), arca_shamir::split(&key, n, t).unwrap())
    }

    #[test]
    fn reaches_threshold_and_resets() {
        let (key, shares) = key_and_shares(5, 3);
        let mut p = UnsealProgress::new(3, 5);
        assert_eq!((p.progress(), p.nonce()), (0, ""));
        assert_eq!(p.submit(&shares[4]).unwrap(), None);
        let nonce = p.nonce().to_string();
        assert_eq!(nonce.len(), 36, "a UUID");
        assert_eq!(p.submit(&shares[0]).unwrap(), None);
        assert_eq!(p.progress(), 2);
        assert_eq!(p.nonce(), nonce, "one nonce per attempt");
        let got = p.submit(&shares[2]).unwrap().unwrap();
        assert_eq!(got.as_slice(), key.as_slice());
        assert_eq!((p.progress(), p.nonce()), (0, ""));

        // A second attempt gets a new nonce.
        p.submit(&shares[1]).unwrap();
        assert_ne!(p.nonce(), nonce);
        assert!(!p.nonce().is_empty());
    }

    #[test]
    fn rejects_repeats_and_wrong_lengths_without_changing_state() {
        let (_, shares) = key_and_shares(3, 2);
        let mut p = UnsealProgress::new(2, 3);
        p.submit(&shares[0]).unwrap();
        let nonce = p.nonce().to_string();
        assert_eq!(p.submit(&shares[0]), Err(SealError::DuplicateShare));
        let mut same_index = shares[1].to_vec();
        same_index[UNSEAL_KEY_LEN] = shares[0][UNSEAL_KEY_LEN];
        assert_eq!(
            p.submit(&same_index),
            Err(SealError::DuplicateShareIndex(shares[0][UNSEAL_KEY_LEN]))
        );
        assert_eq!(
            p.submit(&shares[1][..32]),
            Err(SealError::InvalidShareLength {
                expected: 33,
                got: 32
            })
        );
        assert_eq!(
            p.submit(&[]),
            Err(SealError::InvalidShareLength {
                expected: 33,
                got: 0
            })
        );
        assert_eq!((p.progress(), p.nonce()), (1, nonce.as_str()));
        assert!(p.submit(&shares[1]).unwrap().is_some());
    }

    #[test]
    fn reset_forgets_the_attempt() {
        let (key, shares) = key_and_shares(3, 2);
        let mut p = UnsealProgress::new(2, 3);
        p.submit(&shares[0]).unwrap();
        p.reset();
        assert_eq!((p.progress(), p.nonce()), (0, ""));
        assert_eq!(p.submit(&shares[1]).unwrap(), None);
        assert_eq!(
            p.submit(&shares[2]).unwrap().unwrap().as_slice(),
            key.as_slice()
        );
    }

    #[test]
    fn single_share_is_the_key() {
        let mut p = UnsealProgress::for_config(&SealConfig::shamir(1, 1));
        assert_eq!(p.share_len(), 32);
        assert_eq!(
            p.submit(&[0; 33]),
            Err(SealError::InvalidShareLength {
                expected: 32,
                got: 33
            })
        );
        assert_eq!(p.submit(&[7; 32]).unwrap().unwrap().as_slice(), &[7; 32]);
        assert_eq!(p.progress(), 0);
    }

    #[test]
    fn shares_of_different_splits_give_a_wrong_key_not_an_error() {
        let (key, a) = key_and_shares(3, 2);
        let (_, b) = key_and_shares(3, 2);
        let mut p = UnsealProgress::new(2, 3);
        p.submit(&a[0]).unwrap();
        // b may contain a share with a[0]'s index; pick one that differs.
        let other = b.iter().find(|s| s[32] != a[0][32]).unwrap();
        let got = p.submit(other).unwrap().unwrap();
        assert_ne!(got.as_slice(), key.as_slice());
        assert_eq!(p.progress(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_order_of_threshold_shares_unseals(
            n in 2usize..=10,
            t_frac in 0.0f64..=1.0,
            seed in any::<u64>(),
        ) {
            use rand::{seq::SliceRandom, SeedableRng};
            let t = (2 + ((n - 2) as f64 * t_frac) as usize).min(n);
            let (key, shares) = key_and_shares(n, t);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let mut p = UnsealProgress::new(t, n);
            for (i, &idx) in order.iter().take(t).enumerate() {
                let out = p.submit(&shares[idx]).unwrap();
                prop_assert_eq!(out.is_some(), i + 1 == t);
                if let Some(k) = out {
                    prop_assert_eq!(k.as_slice(), key.as_slice());
                }
            }
        }
    }
}
