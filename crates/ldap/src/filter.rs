//! Text that goes to the LDAP server: search filters rendered from the
//! configured templates, distinguished names built from a username, and
//! group names read back from DNs.
//!
//! Invariants:
//! - A value from a client (a username, a DN found for it) enters a filter
//!   only through [`escape_filter`] (RFC 4515: `*`, `(`, `)`, `\` and NUL
//!   become `\2a`, `\28`, `\29`, `\5c`, `\00`), so it can only ever be an
//!   assertion value: it cannot close the filter, add a clause or turn an
//!   equality test into a wildcard.
//! - A value enters a DN only through [`escape_dn_value`] (RFC 4514), so it
//!   stays one attribute value of one RDN.
//! - Templates take only the `{{.Name}}` actions listed for them (Vault's
//!   Go templates, reduced to what its documentation uses): anything else
//!   is refused when the configuration is written, never rendered as text.

/// Escapes a value for use inside an LDAP search filter (RFC 4515).
pub fn escape_filter(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// The characters a username may not contain: LDAP filter syntax.
pub const FILTER_CHARS: [char; 5] = ['*', '(', ')', '\\', '\0'];

/// Does `value` hold a character with a meaning in LDAP filters?
pub fn has_filter_chars(value: &str) -> bool {
    value.chars().any(|c| FILTER_CHARS.contains(&c))
}

/// Escapes a value for use as an attribute value in a DN (RFC 4514): a
/// leading space or `#`, a trailing space, the specials `"+,;<>\=` and
/// control characters are escaped.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let n = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        match c {
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Renders a filter template: each `{{.Name}}` (spaces allowed inside the
/// braces) becomes the value of `Name` in `vars`, which the caller has
/// escaped. Any other action, or an unclosed `{{`, is an error naming it.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("unclosed action in {template:?}"));
        };
        let action = after[..end].trim();
        let value = action
            .strip_prefix('.')
            .and_then(|name| vars.iter().find(|(k, _)| *k == name))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<String> =
                    vars.iter().map(|(k, _)| format!("{{{{.{k}}}}}")).collect();
                format!(
                    "unsupported template action {{{{{action}}}}}: only {} may be used",
                    names.join(", ")
                )
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that `template` renders with `vars` into a filter the LDAP client
/// can encode.
pub fn check_template(field: &str, template: &str, vars: &[(&str, &str)]) -> Result<(), String> {
    let rendered = render(template, vars).map_err(|e| format!("invalid {field}: {e}"))?;
    ldap3::parse_filter(&rendered)
        .map(|_| ())
        .map_err(|_| format!("invalid {field}: {rendered:?} is not an LDAP search filter"))
}

/// One attribute of an RDN: its type and its (unescaped) value.
pub type Ava = (String, String);

/// Parses a DN (RFC 4514) into its RDNs, each a list of attribute values.
/// `None` when `dn` is not a DN (a plain group name, say).
pub fn parse_dn(dn: &str) -> Option<Vec<Vec<Ava>>> {
    let bytes = dn.as_bytes();
    let mut rdns: Vec<Vec<Ava>> = Vec::new();
    let mut rdn: Vec<Ava> = Vec::new();
    let mut i = 0;
    if dn.trim().is_empty() {
        return None;
    }
    loop {
        // attributeType
        let eq = dn[i..].find('=')? + i;
        let ty = dn[i..eq].trim();
        let valid_type = match ty.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => {
                ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }
            Some(c) if c.is_ascii_digit() => ty.chars().all(|c| c.is_ascii_digit() || c == '.'),
            _ => false,
        };
        if !valid_type {
            return None;
        }
        // attributeValue, up to an unescaped ',', ';' or '+'
        i = eq + 1;
        let mut value: Vec<u8> = Vec::new();
        // Bytes of `value` that came from escapes (kept when trimming).
        let mut kept = 0usize;
        while i < bytes.len() && value.is_empty() && bytes[i] == b' ' {
            i += 1;
        }
        let mut sep = None;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    let next = *bytes.get(i + 1)?;
                    if next.is_ascii_hexdigit() {
                        let hex = dn.get(i + 1..i + 3)?;
                        value.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 3;
                    } else {
                        value.push(next);
                        i += 2;
                    }
                    kept = value.len();
                }
                b @ (b',' | b';' | b'+') => {
                    sep = Some(b);
                    i += 1;
                    break;
                }
                b => {
                    value.push(b);
                    i += 1;
                }
            }
        }
        while value.len() > kept && value.last() == Some(&b' ') {
            value.pop();
        }
        let value = String::from_utf8(value).ok()?;
        rdn.push((ty.to_string(), value));
        match sep {
            Some(b'+') => {}
            Some(_) => rdns.push(std::mem::take(&mut rdn)),
            None => {
                rdns.push(rdn);
                return Some(rdns);
            }
        }
    }
}

/// A group's name from a value that may be a DN: the value of its first
/// `cn` attribute (`CN` only, exactly, with `pre111`: Vault's old
/// behaviour), else the value itself.
pub fn group_cn(value: &str, pre111: bool) -> String {
    let Some(rdns) = parse_dn(value) else {
        return value.to_string();
    };
    for (ty, v) in rdns.iter().flatten() {
        let is_cn = if pre111 {
            ty == "CN"
        } else {
            ty.eq_ignore_ascii_case("cn")
        };
        if is_cn {
            return v.clone();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_escaping_keeps_values_values() {
        assert_eq!(escape_filter("alice"), "alice");
        assert_eq!(escape_filter("*"), "\\2a");
        assert_eq!(escape_filter("alice)(uid=*"), "alice\\29\\28uid=\\2a");
        assert_eq!(escape_filter("a\\b\0c"), "a\\5cb\\00c");
        assert_eq!(escape_filter("zoë"), "zoë");
        // Rendered into the default filter, a hostile username stays one
        // equality assertion: the filter parses, and has no wildcard nor a
        // second clause.
        let f = render(
            "({{.UserAttr}}={{.Username}})",
            &[
                ("UserAttr", "cn"),
                ("Username", &escape_filter("x)(|(cn=*")),
            ],
        )
        .unwrap();
        assert_eq!(f, "(cn=x\\29\\28|\\28cn=\\2a)");
        assert!(ldap3::parse_filter(&f).is_ok());
        for c in FILTER_CHARS {
            assert!(has_filter_chars(&format!("a{c}b")), "{c:?}");
        }
        assert!(!has_filter_chars("alice.smith@example.com"));
    }

    #[test]
    fn dn_escaping_keeps_one_value() {
        assert_eq!(escape_dn_value("alice"), "alice");
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value(" a "), "\\ a\\ ");
        assert_eq!(escape_dn_value("#a#"), "\\#a#");
        assert_eq!(escape_dn_value("x+cn=admin"), "x\\+cn\\=admin");
        assert_eq!(escape_dn_value("a\nb"), "a\\0ab");
        let dn = format!("cn={},ou=people", escape_dn_value("evil,ou=admins"));
        let parsed = parse_dn(&dn).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], vec![("cn".into(), "evil,ou=admins".into())]);
    }

    #[test]
    fn templates_take_only_their_variables() {
        let vars = [("UserAttr", "uid"), ("Username", "bob")];
        assert_eq!(
            render(
                "(&(objectClass=person)({{ .UserAttr }}={{.Username}}))",
                &vars
            )
            .unwrap(),
            "(&(objectClass=person)(uid=bob))"
        );
        let e = render("({{.UserDN}})", &vars).unwrap_err();
        assert!(
            e.contains("{{.UserDN}}") && e.contains("{{.UserAttr}}"),
            "{e}"
        );
        assert!(render("(cn={{if .Username}}x{{end}})", &vars).is_err());
        assert!(render("(cn={{.Username)", &vars)
            .unwrap_err()
            .contains("unclosed"));
        assert!(check_template("userfilter", "({{.UserAttr}}={{.Username}})", &vars).is_ok());
        let e = check_template("userfilter", "{{.UserAttr}}={{.Username}}))", &vars).unwrap_err();
        assert!(e.contains("not an LDAP search filter"), "{e}");
    }

    #[test]
    fn group_names_come_from_the_cn() {
        assert_eq!(
            group_cn("cn=devs,ou=groups,dc=example,dc=com", false),
            "devs"
        );
        assert_eq!(
            group_cn("CN=Domain Admins,OU=Groups,DC=corp", false),
            "Domain Admins"
        );
        assert_eq!(group_cn("ou=x,cN=mixed,dc=y", false), "mixed");
        assert_eq!(group_cn("ou=x,cN=mixed,dc=y", true), "ou=x,cN=mixed,dc=y");
        assert_eq!(group_cn("CN=upper,dc=y", true), "upper");
        assert_eq!(group_cn("devs", false), "devs");
        assert_eq!(group_cn("cn=a\\,b + uid=1,dc=x", false), "a,b");
        assert_eq!(group_cn("cn=\\4a\\6fe,dc=x", false), "Joe");
        assert_eq!(group_cn("=x", false), "=x");
        let rdns = parse_dn("uid=bob+cn=Bob , ou=people;dc=example").unwrap();
        assert_eq!(rdns.len(), 3);
        assert_eq!(rdns[0].len(), 2);
        assert_eq!(rdns[0][1], ("cn".to_string(), "Bob".to_string()));
        assert!(parse_dn("not a dn").is_none());
        assert!(parse_dn("cn=x\\").is_none());
    }
}
