//! Go-style command-line flags, as the Vault CLI parses them.
//!
//! `clap` cannot parse single-dash long flags (`-format=json`), so this module
//! implements the rules of Go's `flag` package, which the `vault` CLI uses:
//!
//! * `-name` and `--name` are the same flag; `-name=value` and `-name value`
//!   both set a value flag; a bool flag is set by `-name` or `-name=false`
//!   (never by a separate argument: `-orphan false` leaves `false` positional);
//! * parsing stops at the first argument that is not a flag, at a lone `-`
//!   (which stays positional: it means standard input) or after `--`;
//!   everything from there on is positional, even if it starts with a dash;
//! * an undeclared flag is an error (`flag provided but not defined: -x`),
//!   `-h`, `-help` and `--help` ask for help.
//!
//! Invariants: a flag's values are kept in command-line order, so for a
//! single-valued flag the last occurrence wins and a repeatable flag
//! (`FlagKind::List`, e.g. `-policy=a -policy=b`) keeps them all; a value is
//! checked against its kind (int, bool) while parsing, so getters never fail.

use std::collections::HashMap;
use std::fmt;

/// The kind of a flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `-name` or `-name=true|false`.
    Bool,
    /// `-name=value` or `-name value`; last one wins.
    String,
    /// Like `String`, but the value must be an integer.
    Int,
    /// Repeatable string flag; every value is kept.
    List,
}

/// One declared flag.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// Value kind.
    pub kind: FlagKind,
    /// Default shown in help (the command applies it; `""` = none).
    pub default: &'static str,
    /// One-line help.
    pub help: &'static str,
}

impl Flag {
    /// A bool flag.
    pub const fn bool(name: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            kind: FlagKind::Bool,
            default: "",
            help,
        }
    }
    /// A string flag.
    pub const fn string(name: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            kind: FlagKind::String,
            default: "",
            help,
        }
    }
    /// An integer flag.
    pub const fn int(name: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            kind: FlagKind::Int,
            default: "",
            help,
        }
    }
    /// A repeatable string flag.
    pub const fn list(name: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            kind: FlagKind::List,
            default: "",
            help,
        }
    }
    /// The same flag with a default shown in help.
    pub const fn default(mut self, default: &'static str) -> Flag {
        self.default = default;
        self
    }
}

/// A parse failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `-help` or `--help` was given.
    Help,
    /// Anything else, with Go's wording.
    Invalid(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => write!(f, "help requested"),
            FlagError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for FlagError {}

/// The result of parsing: flag values and positional arguments.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// Positional arguments, in order.
    pub args: Vec<String>,
}

impl Parsed {
    /// Whether the flag appeared on the command line.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The last value of a flag.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// The last value of a flag, or `default`.
    pub fn string_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.string(name).unwrap_or(default)
    }

    /// All values of a (repeatable) flag.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A bool flag: `default` when absent.
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        self.string(name)
            .map(|v| parse_bool(v).unwrap_or(default))
            .unwrap_or(default)
    }

    /// A bool flag, `false` when absent.
    pub fn bool(&self, name: &str) -> bool {
        self.bool_or(name, false)
    }

    /// An integer flag (validated while parsing).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.string(name).and_then(|v| parse_int(v).ok())
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_int(s: &str) -> Result<i64, std::num::ParseIntError> {
    s.trim().parse::<i64>()
}

/// Parses `argv` (the arguments after the command name) against `flags`.
pub fn parse(flags: &[Flag], argv: &[String]) -> Result<Parsed, FlagError> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let body = arg.strip_prefix("--").unwrap_or_else(|| &arg[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Invalid(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            if matches!(name, "h" | "help") {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Invalid(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (flag.kind, inline) {
            (FlagKind::Bool, Some(v)) => {
                if parse_bool(&v).is_none() {
                    return Err(FlagError::Invalid(format!(
                        "invalid boolean value {v:?} for -{name}"
                    )));
                }
                v
            }
            (FlagKind::Bool, None) => "true".to_string(),
            (_, Some(v)) => v,
            (_, None) => {
                i += 1;
                match argv.get(i) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(FlagError::Invalid(format!(
                            "flag needs an argument: -{name}"
                        )))
                    }
                }
            }
        };
        if flag.kind == FlagKind::Int && parse_int(&value).is_err() {
            return Err(FlagError::Invalid(format!(
                "invalid value {value:?} for flag -{name}: parse error"
            )));
        }
        parsed.values.entry(flag.name).or_default().push(value);
        i += 1;
    }
    parsed.args = argv[i..].to_vec();
    Ok(parsed)
}

/// Positional arguments that look like declared flags: the Vault CLI warns
/// about these, since flags after the first positional are not parsed.
pub fn misplaced_flags(flags: &[Flag], args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| {
            let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
                return false;
            };
            let name = body.split('=').next().unwrap_or("");
            flags.iter().any(|f| f.name == name)
        })
        .cloned()
        .collect()
}

/// Help text listing `flags`, one per line, Vault-style.
pub fn help(flags: &[Flag]) -> String {
    let mut out = String::new();
    for f in flags {
        let kind = match f.kind {
            FlagKind::Bool => "",
            FlagKind::String => "=<string>",
            FlagKind::Int => "=<int>",
            FlagKind::List => "=<string> (repeatable)",
        };
        out.push_str(&format!("  -{}{}\n", f.name, kind));
        let mut help = f.help.to_string();
        if !f.default.is_empty() {
            help.push_str(&format!(" The default is {}.", f.default));
        }
        out.push_str(&format!("      {help}\n\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::string("format", "Output format."),
        Flag::string("field", "Print one field."),
        Flag::bool("orphan", "No parent."),
        Flag::int("cas", "Check-and-set."),
        Flag::list("policy", "Policy."),
    ];

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn p(s: &[&str]) -> Result<Parsed, FlagError> {
        parse(FLAGS, &argv(s))
    }

    #[test]
    fn single_and_double_dash_equal_and_space() {
        for a in [
            &["-format=json", "x"][..],
            &["--format=json", "x"],
            &["-format", "json", "x"],
            &["--format", "json", "x"],
        ] {
            let r = p(a).unwrap();
            assert_eq!(r.string("format"), Some("json"), "{a:?}");
            assert_eq!(r.args, vec!["x"]);
        }
    }

    #[test]
    fn bool_flags() {
        let r = p(&["-orphan", "x"]).unwrap();
        assert!(r.bool("orphan"));
        let r = p(&["-orphan=false"]).unwrap();
        assert!(!r.bool("orphan"));
        assert!(r.is_set("orphan"));
        // A separate value is positional, as in Go.
        let r = p(&["-orphan", "false"]).unwrap();
        assert!(r.bool("orphan"));
        assert_eq!(r.args, vec!["false"]);
        assert!(matches!(p(&["-orphan=maybe"]), Err(FlagError::Invalid(_))));
        assert!(!p(&[]).unwrap().bool("orphan"));
        assert!(p(&[]).unwrap().bool_or("orphan", true));
    }

    #[test]
    fn stops_at_first_positional_and_keeps_dash() {
        let r = p(&["-cas=1", "secret/foo", "-format=json", "a=b"]).unwrap();
        assert_eq!(r.int("cas"), Some(1));
        assert_eq!(r.string("format"), None);
        assert_eq!(r.args, vec!["secret/foo", "-format=json", "a=b"]);
        let r = p(&["-field", "x", "-", "y"]).unwrap();
        assert_eq!(r.args, vec!["-", "y"]);
        let r = p(&["--", "-format=json"]).unwrap();
        assert_eq!(r.args, vec!["-format=json"]);
    }

    #[test]
    fn repeatable_and_last_wins() {
        let r = p(&[
            "-policy=a",
            "--policy",
            "b",
            "-format=json",
            "-format=table",
        ])
        .unwrap();
        assert_eq!(r.list("policy"), vec!["a", "b"]);
        assert_eq!(r.string("format"), Some("table"));
        assert!(r.list("field").is_empty());
    }

    #[test]
    fn value_may_contain_equals_and_be_empty() {
        let r = p(&["-field=a=b", "-format="]).unwrap();
        assert_eq!(r.string("field"), Some("a=b"));
        assert_eq!(r.string("format"), Some(""));
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&["-nope"]).unwrap_err(),
            FlagError::Invalid("flag provided but not defined: -nope".into())
        );
        assert_eq!(
            p(&["-format"]).unwrap_err(),
            FlagError::Invalid("flag needs an argument: -format".into())
        );
        assert!(matches!(p(&["-cas=x"]), Err(FlagError::Invalid(_))));
        assert!(matches!(p(&["---format=json"]), Err(FlagError::Invalid(_))));
        assert_eq!(p(&["-h"]).unwrap_err(), FlagError::Help);
        assert_eq!(p(&["--help"]).unwrap_err(), FlagError::Help);
        assert_eq!(p(&["-help"]).unwrap_err(), FlagError::Help);
    }

    #[test]
    fn negative_int_value_with_space() {
        let r = p(&["-cas", "-1", "p"]).unwrap();
        assert_eq!(r.int("cas"), Some(-1));
        assert_eq!(r.args, vec!["p"]);
    }

    #[test]
    fn misplaced() {
        let r = p(&["secret/foo", "-format=json", "-other", "k=v"]).unwrap();
        assert_eq!(misplaced_flags(FLAGS, &r.args), vec!["-format=json"]);
    }

    #[test]
    fn help_lists_flags() {
        let h = help(&[Flag::int("key-shares", "Shares.").default("5")]);
        assert!(h.contains("-key-shares=<int>"));
        assert!(h.contains("The default is 5."));
    }
}
