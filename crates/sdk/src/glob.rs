//! Vault's simple globbing (go-glob): `*` matches any run of characters,
//! anywhere in the pattern and any number of times; every other character
//! matches itself. Used by PKI's glob domains, token roles' policy globs,
//! JWT bound claims and every other "globs allowed" setting.
//!
//! Invariant: no regex is built from user input, so a pattern cannot be
//! expensive; matching is linear in the value per pattern segment.

/// Does `value` match `pattern`?
pub fn matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &value[first.len()..];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_anywhere() {
        assert!(matches("*", ""));
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abcd"));
        assert!(matches("*.example.com", "www.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("dev-*", "dev-team"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(matches("a*b*c", "abc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(
            !matches("ab*ba", "aba"),
            "prefix and suffix may not overlap"
        );
        assert!(matches("*team*", "the-team-a"));
        assert!(matches("**", "x"));
    }
}
