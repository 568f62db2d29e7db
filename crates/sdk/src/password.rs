//! Password policies as engines use them: a length and `charset` rules, and
//! the generator for the passwords engines create (database users, LDAP
//! accounts). Core parses the policy text and keeps named policies
//! (`sys/policies/password/:name`); engines ask for a password through
//! [`crate::SystemView::generate_password`]. The model and the generator
//! live here so that a test system view generates without a server.
//!
//! Invariants:
//! - A policy that passed [`PasswordPolicy::validate`] always generates:
//!   each rule's `min-chars` characters are drawn from that rule's own
//!   charset, the rest of the length from the union of all charsets, and the
//!   whole is shuffled, so no rule can be missed. The result is checked
//!   against every rule anyway, and generation gives up with an error after
//!   [`MAX_ATTEMPTS`] failed candidates rather than loop.
//! - Randomness comes from the operating system's CSPRNG (`OsRng`). Each
//!   character is chosen with `gen_range` (rejection sampling: no modulo
//!   bias) and the shuffle is Fisher–Yates.
//! - Limits follow Vault: a length of 4 to 100, at least one charset, every
//!   charset non-empty and printable, at most 256 distinct characters in
//!   all, and the rules' `min-chars` adding up to no more than the length.
//!
//! Vault draws whole candidates from the union and keeps the first that
//! passes every rule (uniform over the valid passwords), which can time
//! out on a restrictive policy; the construction here never fails, and
//! leans slightly towards characters of small required charsets.

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use rand::{CryptoRng, RngCore};

use crate::logical::LogicalError;

/// The shortest password a policy may ask for (Vault's bound).
pub const MIN_LENGTH: usize = 4;
/// The longest password a policy may ask for (Vault's bound).
pub const MAX_LENGTH: usize = 100;
/// At most this many distinct characters over all charsets (Vault's bound).
pub const MAX_CHARSET: usize = 256;
/// Candidates tried before generation gives up.
pub const MAX_ATTEMPTS: usize = 100;

/// `rule "charset" { charset = "..." min-chars = N }`: at least `min_chars`
/// characters of the password come from `charset`, whose characters also
/// join the set every character is drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    pub charset: Vec<char>,
    pub min_chars: usize,
}

impl CharsetRule {
    pub fn new(charset: &str, min_chars: usize) -> CharsetRule {
        CharsetRule {
            charset: charset.chars().collect(),
            min_chars,
        }
    }

    /// Whether `password` holds at least `min_chars` characters of the set.
    pub fn passes(&self, password: &[char]) -> bool {
        self.min_chars == 0
            || password.iter().filter(|c| self.charset.contains(c)).count() >= self.min_chars
    }

    /// The charset without repeated characters (a repeated character must
    /// not be drawn more often than the others).
    fn distinct(&self) -> Vec<char> {
        let mut c = self.charset.clone();
        c.sort_unstable();
        c.dedup();
        c
    }
}

/// A validated-on-use password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<CharsetRule>,
}

impl PasswordPolicy {
    /// Vault's default for the credentials engines create when no policy is
    /// named: 20 characters of `a-z A-Z 0-9 -`, at least one lowercase
    /// letter, one uppercase letter, one digit and one `-`.
    pub fn vault_default() -> PasswordPolicy {
        PasswordPolicy {
            length: 20,
            rules: vec![
                CharsetRule::new("abcdefghijklmnopqrstuvwxyz", 1),
                CharsetRule::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1),
                CharsetRule::new("0123456789", 1),
                CharsetRule::new("-", 1),
            ],
        }
    }

    /// Every character a password may hold: the union of the rules'
    /// charsets, sorted, each once.
    pub fn charset(&self) -> Vec<char> {
        let mut all: Vec<char> = self
            .rules
            .iter()
            .flat_map(|r| r.charset.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Checks the policy can generate, with a message that says what is
    /// wrong (the caller adds "invalid password policy: ").
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&self.length) {
            return Err(format!(
                "passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters (length = {})",
                self.length
            ));
        }
        if self.rules.is_empty() {
            return Err(
                "no charset specified: a policy needs at least one rule \"charset\"".into(),
            );
        }
        for (i, r) in self.rules.iter().enumerate() {
            let n = i + 1;
            if r.charset.is_empty() {
                return Err(format!("rule \"charset\" #{n}: charset must not be empty"));
            }
            if let Some(c) = r.charset.iter().find(|c| !is_printable(**c)) {
                return Err(format!(
                    "rule \"charset\" #{n}: non-printable character U+{:04X} in charset",
                    *c as u32
                ));
            }
        }
        let distinct = self.charset().len();
        if distinct > MAX_CHARSET {
            return Err(format!(
                "the charsets hold {distinct} distinct characters together; at most {MAX_CHARSET} are allowed"
            ));
        }
        let min: usize = self.rules.iter().map(|r| r.min_chars).sum();
        if min > self.length {
            return Err(format!(
                "specified rules require at least {min} characters but {} is specified",
                self.length
            ));
        }
        Ok(())
    }

    /// Whether `password` meets every rule and the length.
    pub fn passes(&self, password: &str) -> bool {
        let chars: Vec<char> = password.chars().collect();
        chars.len() == self.length && self.rules.iter().all(|r| r.passes(&chars))
    }

    /// A password from the operating system's CSPRNG.
    pub fn generate(&self) -> Result<String, LogicalError> {
        self.generate_with(&mut OsRng)
    }

    /// A password from `rng` (tests pass a seeded one).
    pub fn generate_with<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<String, LogicalError> {
        self.validate()
            .map_err(|e| LogicalError::invalid(format!("invalid password policy: {e}")))?;
        let all = self.charset();
        let required: Vec<(Vec<char>, usize)> = self
            .rules
            .iter()
            .filter(|r| r.min_chars > 0)
            .map(|r| (r.distinct(), r.min_chars))
            .collect();
        for _ in 0..MAX_ATTEMPTS {
            let mut pw: Vec<char> = Vec::with_capacity(self.length);
            for (set, n) in &required {
                for _ in 0..*n {
                    pw.extend(set.choose(rng));
                }
            }
            while pw.len() < self.length {
                match all.choose(rng) {
                    Some(c) => pw.push(*c),
                    None => break,
                }
            }
            pw.shuffle(rng);
            if pw.len() == self.length && self.rules.iter().all(|r| r.passes(&pw)) {
                return Ok(pw.into_iter().collect());
            }
        }
        Err(LogicalError::internal(format!(
            "unable to generate a password that satisfies the policy in {MAX_ATTEMPTS} attempts: are the rules impossible?"
        )))
    }
}

/// Close to Go's `unicode.IsPrint` (what Vault checks): no control,
/// format, separator (but the space), private-use or non-character code
/// points. Rust's standard library has no category table, so format
/// characters are the ones in use (soft hyphen, zero-width and
/// bidirectional controls, word joiners, BOM, tags).
pub fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format = matches!(
        u,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    let nonchar = matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(pw: &str, set: &str) -> usize {
        pw.chars().filter(|c| set.contains(*c)).count()
    }

    #[test]
    fn the_default_meets_vaults_rules_on_every_draw() {
        let p = PasswordPolicy::vault_default();
        assert_eq!(p.validate(), Ok(()));
        for _ in 0..2000 {
            let pw = p.generate().unwrap();
            assert_eq!(pw.chars().count(), 20);
            assert!(pw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            assert!(count(&pw, "abcdefghijklmnopqrstuvwxyz") >= 1, "{pw}");
            assert!(count(&pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") >= 1, "{pw}");
            assert!(count(&pw, "0123456789") >= 1, "{pw}");
            assert!(pw.contains('-'), "{pw}");
        }
    }

    #[test]
    fn min_chars_hold_when_they_fill_the_password() {
        // Guess-and-check would almost never find these: 6 of 8 from a
        // set of 2 in a union of 28, and the exact split of a tight policy.
        let tight = PasswordPolicy {
            length: 8,
            rules: vec![
                CharsetRule::new("xy", 6),
                CharsetRule::new("abcdefghijklmnopqrstuvwxyz", 0),
                CharsetRule::new("01", 2),
            ],
        };
        for _ in 0..2000 {
            let pw = tight.generate().unwrap();
            assert_eq!(count(&pw, "xy"), 6, "{pw}");
            assert_eq!(count(&pw, "01"), 2, "{pw}");
            assert!(tight.passes(&pw));
        }
    }

    #[test]
    fn every_character_of_the_union_is_drawn_and_positions_are_shuffled() {
        let p = PasswordPolicy {
            length: 10,
            rules: vec![CharsetRule::new("abc", 0), CharsetRule::new("-", 1)],
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut dash_at = [0usize; 10];
        for _ in 0..3000 {
            let pw: Vec<char> = p.generate().unwrap().chars().collect();
            seen.extend(pw.iter().copied());
            for (i, c) in pw.iter().enumerate() {
                if *c == '-' {
                    dash_at[i] += 1;
                }
            }
        }
        assert_eq!(seen.into_iter().collect::<String>(), "-abc");
        // The required '-' is not stuck at the front: every position gets one.
        assert!(dash_at.iter().all(|n| *n > 100), "{dash_at:?}");
    }

    #[test]
    fn repeated_characters_in_a_charset_do_not_weigh_more() {
        let p = PasswordPolicy {
            length: 100,
            rules: vec![CharsetRule::new("aaaaaaaaab", 50)],
        };
        let mut b = 0;
        for _ in 0..200 {
            b += count(&p.generate().unwrap(), "b");
        }
        // 20,000 characters, half of each: far from 1 in 10.
        assert!((9000..11000).contains(&b), "{b}");
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let ok = |length, rules: Vec<CharsetRule>| PasswordPolicy { length, rules };
        let cases = [
            (ok(3, vec![CharsetRule::new("a", 0)]), "between 4 and 100"),
            (ok(101, vec![CharsetRule::new("a", 0)]), "between 4 and 100"),
            (ok(20, vec![]), "no charset"),
            (ok(20, vec![CharsetRule::new("", 0)]), "must not be empty"),
            (
                ok(20, vec![CharsetRule::new("ab\u{7}", 0)]),
                "non-printable",
            ),
            (
                ok(20, vec![CharsetRule::new("ab\u{200b}", 0)]),
                "non-printable",
            ),
            (
                ok(
                    5,
                    vec![CharsetRule::new("ab", 3), CharsetRule::new("cd", 3)],
                ),
                "require at least 6 characters but 5",
            ),
            (
                ok(
                    20,
                    vec![CharsetRule {
                        charset: ('\u{100}'..='\u{300}').collect(),
                        min_chars: 0,
                    }],
                ),
                "at most 256",
            ),
        ];
        for (p, want) in cases {
            let e = p.validate().unwrap_err();
            assert!(e.contains(want), "{p:?}: {e}");
            let g = p.generate().unwrap_err();
            assert!(matches!(g, LogicalError::InvalidRequest(_)), "{g:?}");
        }
        assert!(is_printable(' ') && is_printable('é') && is_printable('€'));
        assert!(!is_printable('\n') && !is_printable('\u{E000}'));
    }
}
