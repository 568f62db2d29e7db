//! Vault-style durations for the CLI and the configuration: parsing
//! (`arca_sdk::duration`, the one parser) and the CLI's human formatting
//! (`2764800` → `"768h"`).

/// Parses a duration into whole seconds (the one parser, in the sdk).
pub use arca_sdk::duration::parse_seconds;

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
