//! The one parser of Vault durations, used by fields, policies, the server
//! configuration, the CLI and the client's environment.
//!
//! Invariants: a bare integer is seconds; otherwise a sequence of numbers
//! with Go's `time.ParseDuration` units (`ns us µs ms s m h`) plus Vault's
//! `d` (24 h), e.g. `72h`, `1h30m`, `1.5h`, `7d`; a leading `+` is allowed,
//! negative durations and unknown or missing units are refused, as are
//! values above 10¹² seconds. Empty input is an error here; callers for
//! which Vault reads `""` as "unset" map it to zero themselves.

use std::time::Duration;

/// Largest accepted duration, in seconds (about 31,700 years).
const MAX_SECS: f64 = 1e12;

/// Parses a duration exactly (fractions of a second kept).
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Ok(n) = s.parse::<u64>() {
        if n as f64 > MAX_SECS {
            return Err(format!("duration {input:?} is too large"));
        }
        return Ok(Duration::from_secs(n));
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?}"));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {input:?}"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {input:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(format!("missing unit in duration {input:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {input:?}")),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if !(0.0..=MAX_SECS).contains(&total) {
        return Err(format!("duration {input:?} is too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a duration into whole seconds (fractions truncated).
pub fn parse_seconds(input: &str) -> Result<u64, String> {
    parse(input).map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_and_go_durations() {
        for (s, want) in [
            ("3600", 3600),
            ("90s", 90),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("768h", 2_764_800),
            ("7d", 604_800),
            ("1d12h", 129_600),
            ("+5m", 300),
            ("1500ms", 1),
            (" 90s ", 90),
            ("0s", 0),
            ("0", 0),
        ] {
            assert_eq!(parse_seconds(s), Ok(want), "{s}");
        }
        assert_eq!(parse("1500ms").unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn refuses_what_vault_refuses() {
        for s in [
            "",
            "  ",
            "-5s",
            "-5",
            "5x",
            "h",
            "1h5",
            "abc",
            "1..5s",
            "1e13",
            "99999999999999999s",
        ] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }
}
