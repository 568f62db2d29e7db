//! Vault-style durations: parsing (`"768h"`, `"1h30m"`, `"90s"`, `"7d"`,
//! `"3600"`) and the CLI's human formatting (`2764800` → `"768h"`).
//!
//! Invariants: a bare integer is seconds; a suffixed value follows Go's
//! `time.ParseDuration` (units `ns us µs ms s m h`) plus Vault's `d` (24 h);
//! results are whole seconds, truncated; negative durations are refused.

/// Parses a duration into whole seconds.
pub fn parse_seconds(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?}"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total_ns: f64 = 0.0;
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
        let unit_ns: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "" => return Err(format!("missing unit in duration {input:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {input:?}")),
        };
        rest = &rest[unit_len..];
        total_ns += number * unit_ns;
    }
    let secs = (total_ns / 1e9).floor();
    if !secs.is_finite() || secs > u64::MAX as f64 {
        return Err(format!("duration {input:?} is too large"));
    }
    Ok(secs as u64)
}

/// Formats seconds like the Vault CLI (`humanDuration`): `768h`, `1h30m`,
/// `45s`, `1h0m5s` → `1h5s`, `0s`.
pub fn human(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    if out.ends_with("m0s") {
        out.truncate(out.len() - 2);
    }
    if let Some(idx) = out.find("h0m") {
        out.replace_range(idx + 1..idx + 3, "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_durations() {
        assert_eq!(parse_seconds("768h"), Ok(2_764_800));
        assert_eq!(parse_seconds("3600"), Ok(3600));
        assert_eq!(parse_seconds(" 90s "), Ok(90));
        assert_eq!(parse_seconds("1h30m"), Ok(5400));
        assert_eq!(parse_seconds("1.5h"), Ok(5400));
        assert_eq!(parse_seconds("7d"), Ok(604_800));
        assert_eq!(parse_seconds("1500ms"), Ok(1));
        assert_eq!(parse_seconds("0"), Ok(0));
        assert_eq!(parse_seconds("0s"), Ok(0));
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in ["", "h", "10x", "-5s", "-5", "1h30", "abc", "1..5s"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_matches_vault_cli() {
        assert_eq!(human(2_764_800), "768h");
        assert_eq!(human(5400), "1h30m");
        assert_eq!(human(3605), "1h5s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(60), "1m");
        assert_eq!(human(61), "1m1s");
        assert_eq!(human(0), "0s");
        assert_eq!(human(3600), "1h");
    }
}
