//! Parsing policy text (HCL or JSON) into [`Policy`].
//!
//! Both syntaxes are lowered to the same JSON-like map per `path` rule and
//! validated by one function, so they accept exactly the same rules:
//!
//! - keys of a rule: `capabilities`, `policy` (deprecated shorthand:
//!   `deny`, `read` = read+list, `write` = create+read+update+delete+list,
//!   `sudo` = write+sudo), `allowed_parameters`, `denied_parameters`,
//!   `required_parameters`, `min_wrapping_ttl`, `max_wrapping_ttl`,
//!   `subscribe_event_types`, `comment`. Vault Enterprise's `control_group`
//!   and `mfa_methods` are rejected rather than silently ignored, since
//!   ignoring them would grant more than the author meant.
//! - a rule holding `deny` holds nothing else.
//! - one leading `/` of a path is dropped; `+*` is rejected.
//! - a path containing `{{` (Vault's identity templating,
//!   `{{identity.entity.id}}` and the like) is rejected with
//!   [`PolicyError::TemplatedPath`], in HCL and JSON alike. Arca has no
//!   identity system, so no template can ever be resolved. Vault skips a
//!   rule whose template cannot be resolved, which fails open for `deny`.
//!   Widening the template instead (treating it as "any segment") cannot
//!   be made exact either: a resolved value may contain `/`, and the widened
//!   pattern would have another priority than the resolved one, so a more
//!   specific grant could still win over it. Refusing the whole policy at
//!   write time (a 400 from `sys/policy`) is the one choice under which no
//!   stored rule means something other than what its author wrote.
//! - parameter names are lower-cased; `*` is the only wildcard name, and its
//!   only value is `[]`.

use std::collections::BTreeMap;
use std::time::Duration;

use hcl::edit::structure::{Body, Structure};
use hcl::edit::Span;
use serde_json::{Map, Value};

use crate::capability::{Capabilities, Capability};
use crate::error::{PolicyError, RuleLocation};

/// A named, parsed policy. `raw` is the text exactly as supplied (what
/// `sys/policy/<name>` reads back).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub raw: String,
    pub rules: Vec<PathRule>,
}

/// One `path "<pattern>" { ... }` stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern without its leading `/`, trailing `*` kept.
    pub path: String,
    pub permissions: Permissions,
}

impl PathRule {
    /// Whether the pattern uses identity templating (`{{identity...}}`).
    /// [`parse`] refuses such rules; a templated rule built by hand is
    /// handled fail-closed by [`crate::Acl::new`] (see there).
    pub fn is_templated(&self) -> bool {
        self.path.contains("{{")
    }
}

/// What a rule (or the merge of several rules for one pattern) grants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    pub capabilities: Capabilities,
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
    /// Parameter name (lower case) → permitted values; `[]` = any value.
    /// Empty map = no restriction.
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Parameter name (lower case) → forbidden values; `[]` = any value.
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    /// Lower-case names that must be present.
    pub required_parameters: Vec<String>,
    pub subscribe_event_types: Vec<String>,
}

/// Parses policy text. Text whose first non-blank character is `{` is JSON,
/// anything else HCL. The name is normalized with [`crate::normalize_name`]
/// and must not be empty.
pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let name = crate::normalize_name(name);
    if name.is_empty() {
        return Err(PolicyError::InvalidName {
            name,
            reason: "name must not be empty".into(),
        });
    }
    let rules = if text.trim_start().starts_with('{') {
        parse_json(text)?
    } else {
        parse_hcl(text)?
    };
    Ok(Policy {
        name,
        raw: text.to_string(),
        rules,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn parse_hcl(text: &str) -> Result<Vec<PathRule>, PolicyError> {
    let body = hcl::edit::parser::parse_body(text).map_err(|e| PolicyError::Syntax {
        format: "HCL",
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_string(),
    })?;
    let mut rules = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let line = attr.span().map(|r| line_of(text, r.start));
                if attr.key.as_str() != "name" {
                    return Err(PolicyError::InvalidKey {
                        key: attr.key.as_str().to_string(),
                        line,
                    });
                }
            }
            Structure::Block(block) => {
                let line = block.span().map(|r| line_of(text, r.start));
                if block.ident.as_str() != "path" {
                    return Err(PolicyError::InvalidKey {
                        key: block.ident.as_str().to_string(),
                        line,
                    });
                }
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::InvalidKey {
                        key: format!(
                            "path with {} labels (expected exactly one)",
                            block.labels.len()
                        ),
                        line,
                    });
                };
                let rule = RuleLocation {
                    path: label.as_str().to_string(),
                    line,
                };
                let map = hcl_body_to_map(&block.body, &rule)?;
                rules.push(build_rule(rule, &map)?);
            }
        }
    }
    Ok(rules)
}

/// Lowers a block body to a map: attributes become entries, unlabeled
/// nested blocks (`allowed_parameters { ... }`) become object entries.
fn hcl_body_to_map(body: &Body, rule: &RuleLocation) -> Result<Map<String, Value>, PolicyError> {
    let mut map = Map::new();
    for structure in body.iter() {
        let (key, value) = match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str().to_string();
                let value =
                    hcl_to_json(hcl::Expression::from(attr.value.clone())).map_err(|reason| {
                        PolicyError::InvalidField {
                            rule: rule.clone(),
                            field: key.clone(),
                            reason,
                        }
                    })?;
                (key, value)
            }
            Structure::Block(block) => {
                let key = block.ident.as_str().to_string();
                if !block.labels.is_empty() {
                    return Err(PolicyError::InvalidField {
                        rule: rule.clone(),
                        field: key,
                        reason: "unexpected labeled block".into(),
                    });
                }
                (key, Value::Object(hcl_body_to_map(&block.body, rule)?))
            }
        };
        if map.contains_key(&key) {
            return Err(PolicyError::InvalidField {
                rule: rule.clone(),
                field: key,
                reason: "set more than once".into(),
            });
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// Converts a literal HCL expression to JSON. Templates are taken as their
/// literal text (HCL1, which Vault uses, never evaluates them either).
fn hcl_to_json(expr: hcl::Expression) -> Result<Value, String> {
    use hcl::expr::TemplateExpr;
    use hcl::{Expression, ObjectKey};
    Ok(match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(b),
        Expression::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("number {n} is not representable"))?
            }
        }
        Expression::String(s) => Value::String(s),
        Expression::Array(items) => Value::Array(items.into_iter().map(hcl_to_json).collect::<Result<_, _>>()?),
        Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                let key = match key {
                    ObjectKey::Identifier(id) => id.to_string(),
                    ObjectKey::Expression(e) => match hcl_to_json(e)? {
                        Value::String(s) => s,
                        other => return Err(format!("object key {other} is not a string")),
                    },
                    _ => return Err("unsupported object key".into()),
                };
                map.insert(key, hcl_to_json(value)?);
            }
            Value::Object(map)
        }
        Expression::TemplateExpr(t) => match *t {
            TemplateExpr::QuotedString(s) => Value::String(s),
            TemplateExpr::Heredoc(h) => Value::String(h.template),
        },
        Expression::Parenthesis(inner) => hcl_to_json(*inner)?,
        Expression::Variable(v) => {
            return Err(format!(
                "unexpected identifier {}; only literal values (strings in quotes, numbers, lists, objects) are allowed",
                v.into_inner()
            ))
        }
        _ => return Err("only literal values are allowed (no functions, operators or references)".into()),
    })
}

fn parse_json(text: &str) -> Result<Vec<PathRule>, PolicyError> {
    let value: Value = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
        format: "JSON",
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Value::Object(top) = value else {
        return Err(PolicyError::InvalidKey {
            key: "(top level is not an object)".into(),
            line: None,
        });
    };
    let mut rules = Vec::new();
    for (key, value) in &top {
        match key.as_str() {
            "name" => {}
            "path" => {
                // HCL1's JSON form allows `"path": {..}` or `"path": [{..}, ..]`,
                // and each pattern's body as an object or a list of objects.
                let groups: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for group in groups {
                    let Value::Object(paths) = group else {
                        return Err(PolicyError::InvalidKey {
                            key: "path (expected an object of path rules)".into(),
                            line: None,
                        });
                    };
                    for (path, body) in paths {
                        let bodies: Vec<&Value> = match body {
                            Value::Array(items) => items.iter().collect(),
                            other => vec![other],
                        };
                        for body in bodies {
                            let rule = RuleLocation {
                                path: path.clone(),
                                line: None,
                            };
                            let Value::Object(map) = body else {
                                return Err(PolicyError::InvalidPath {
                                    rule,
                                    reason: "rule must be an object".into(),
                                });
                            };
                            rules.push(build_rule(rule, map)?);
                        }
                    }
                }
            }
            other => {
                return Err(PolicyError::InvalidKey {
                    key: other.to_string(),
                    line: None,
                })
            }
        }
    }
    Ok(rules)
}

fn field_err(rule: &RuleLocation, field: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError::InvalidField {
        rule: rule.clone(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn string_list(
    rule: &RuleLocation,
    field: &str,
    value: &Value,
) -> Result<Vec<String>, PolicyError> {
    let Value::Array(items) = value else {
        return Err(field_err(rule, field, "must be a list of strings"));
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(field_err(rule, field, format!("{other} is not a string"))),
        })
        .collect()
}

/// Validates one rule's fields and builds it.
fn build_rule(rule: RuleLocation, map: &Map<String, Value>) -> Result<PathRule, PolicyError> {
    let raw_path = rule.path.as_str();
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path).to_string();
    if path.contains("{{") {
        return Err(PolicyError::TemplatedPath { rule });
    }
    if path.contains("+*") {
        return Err(PolicyError::InvalidPath {
            rule,
            reason: "invalid use of wildcards ('+*' is forbidden)".into(),
        });
    }

    let mut perms = Permissions::default();
    for (key, value) in map {
        match key.as_str() {
            "comment" => {}
            "policy" => {
                let Value::String(s) = value else {
                    return Err(field_err(&rule, key, "must be a string"));
                };
                let granted: &[Capability] = match s.trim() {
                    "deny" => &[Capability::Deny],
                    "read" => &[Capability::Read, Capability::List],
                    "write" => &[
                        Capability::Create,
                        Capability::Read,
                        Capability::Update,
                        Capability::Delete,
                        Capability::List,
                    ],
                    "sudo" => &[
                        Capability::Create,
                        Capability::Read,
                        Capability::Update,
                        Capability::Delete,
                        Capability::List,
                        Capability::Sudo,
                    ],
                    other => {
                        return Err(field_err(&rule, key, format!("invalid policy {other:?}")))
                    }
                };
                for c in granted {
                    perms.capabilities.insert(*c);
                }
            }
            "capabilities" => {
                for name in string_list(&rule, key, value)? {
                    let Some(c) = Capability::parse(&name) else {
                        return Err(PolicyError::InvalidCapability {
                            rule,
                            capability: name,
                        });
                    };
                    perms.capabilities.insert(c);
                }
            }
            "allowed_parameters" => perms.allowed_parameters = parameter_map(&rule, key, value)?,
            "denied_parameters" => perms.denied_parameters = parameter_map(&rule, key, value)?,
            "required_parameters" => {
                for name in string_list(&rule, key, value)? {
                    if name.contains('*') {
                        return Err(field_err(
                            &rule,
                            key,
                            format!("parameter {name:?}: wildcards are not permitted here"),
                        ));
                    }
                    let name = name.to_lowercase();
                    if !perms.required_parameters.contains(&name) {
                        perms.required_parameters.push(name);
                    }
                }
            }
            "min_wrapping_ttl" => {
                perms.min_wrapping_ttl =
                    parse_duration(value).map_err(|r| field_err(&rule, key, r))?;
            }
            "max_wrapping_ttl" => {
                perms.max_wrapping_ttl =
                    parse_duration(value).map_err(|r| field_err(&rule, key, r))?;
            }
            "subscribe_event_types" => {
                perms.subscribe_event_types = string_list(&rule, key, value)?
            }
            "control_group" | "mfa_methods" => {
                return Err(field_err(
                    &rule,
                    key,
                    "not supported (a Vault Enterprise feature)",
                ));
            }
            _ => return Err(field_err(&rule, key, "invalid key")),
        }
    }

    if let (Some(min), Some(max)) = (perms.min_wrapping_ttl, perms.max_wrapping_ttl) {
        if max < min {
            return Err(field_err(
                &rule,
                "max_wrapping_ttl",
                "cannot be less than min_wrapping_ttl",
            ));
        }
    }
    if perms.capabilities.is_deny() {
        // Deny overrides everything else in the rule.
        perms = Permissions {
            capabilities: Capabilities::deny(),
            ..Permissions::default()
        };
    }
    Ok(PathRule {
        path,
        permissions: perms,
    })
}

fn parameter_map(
    rule: &RuleLocation,
    field: &str,
    value: &Value,
) -> Result<BTreeMap<String, Vec<Value>>, PolicyError> {
    let Value::Object(entries) = value else {
        return Err(field_err(
            rule,
            field,
            "must be a map of parameter names to lists of values",
        ));
    };
    let mut out = BTreeMap::new();
    for (name, values) in entries {
        let Value::Array(values) = values else {
            return Err(field_err(
                rule,
                field,
                format!("value of {name:?} must be a list"),
            ));
        };
        if name.contains('*') {
            if name != "*" {
                return Err(field_err(
                    rule,
                    field,
                    format!("parameter {name:?}: '*' may only stand alone"),
                ));
            }
            if !values.is_empty() {
                return Err(field_err(
                    rule,
                    field,
                    "the only value allowed for \"*\" is []",
                ));
            }
        }
        out.insert(name.to_lowercase(), values.clone());
    }
    Ok(out)
}

/// Parses a TTL like Vault's `ParseDurationSecond`: a number or a numeric
/// string is seconds; otherwise a Go duration (`90s`, `1h30m`, `1.5h`) or
/// whole days (`7d`). Zero means unset.
pub(crate) fn parse_duration(value: &Value) -> Result<Option<Duration>, String> {
    let d = match value {
        Value::Number(n) => {
            let secs = n.as_f64().ok_or("not a number")?;
            if !(0.0..=1e12).contains(&secs) {
                return Err(format!("duration {n} out of range"));
            }
            Duration::from_secs_f64(secs)
        }
        Value::String(s) => parse_duration_str(s.trim())?,
        other => return Err(format!("{other} is not a duration")),
    };
    Ok((!d.is_zero()).then_some(d))
}

fn parse_duration_str(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    arca_sdk::duration::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(rule: &PathRule) -> Vec<String> {
        rule.permissions.capabilities.sorted_names()
    }

    #[test]
    fn hcl_with_comments_heredoc_and_several_blocks() {
        let text = r#"
# hash comment
// slash comment
/* block
   comment */
path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
  comment = <<EOT
Anything under secret/,
except what is denied below.
EOT
}

path "/secret/super-secret" {
  capabilities = ["deny", "read"]
}

path "secret/restricted" {
  capabilities = ["create"]
  allowed_parameters = {
    "foo" = []
    "Bar" = ["zip", "zap"]
  }
  denied_parameters = {
    baz = [true, 3]
  }
  required_parameters = ["foo"]
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 90
}

path "sys/old" { policy = "write" }
"#;
        let p = parse("Dev-Team", text).unwrap();
        assert_eq!(p.name, "dev-team");
        assert_eq!(p.raw, text);
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[0].path, "secret/*");
        assert_eq!(
            caps(&p.rules[0]),
            vec!["create", "delete", "list", "patch", "read", "update"]
        );
        assert_eq!(p.rules[1].path, "secret/super-secret");
        assert_eq!(caps(&p.rules[1]), vec!["deny"]);
        let r = &p.rules[2].permissions;
        assert_eq!(r.allowed_parameters.get("foo"), Some(&vec![]));
        assert_eq!(
            r.allowed_parameters.get("bar"),
            Some(&vec![json!("zip"), json!("zap")])
        );
        assert_eq!(
            r.denied_parameters.get("baz"),
            Some(&vec![json!(true), json!(3)])
        );
        assert_eq!(r.required_parameters, vec!["foo"]);
        assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(1)));
        assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(90)));
        assert_eq!(
            caps(&p.rules[3]),
            vec!["create", "delete", "list", "read", "update"]
        );
    }

    #[test]
    fn heredoc_values_are_literal_text() {
        let text =
            "path \"secret/x\" {\n  capabilities = [\"read\"]\n  policy = <<EOT\nread\nEOT\n}\n";
        // `policy` is trimmed, so a heredoc shorthand works.
        let p = parse("h", text).unwrap();
        assert_eq!(caps(&p.rules[0]), vec!["list", "read"]);
    }

    #[test]
    fn shorthand_policies() {
        let p = parse(
            "old",
            r#"
path "a" { policy = "read" }
path "b" { policy = "sudo" }
path "c" { policy = "deny" }
"#,
        )
        .unwrap();
        assert_eq!(caps(&p.rules[0]), vec!["list", "read"]);
        assert_eq!(
            caps(&p.rules[1]),
            vec!["create", "delete", "list", "read", "sudo", "update"]
        );
        assert_eq!(caps(&p.rules[2]), vec!["deny"]);
        let err = parse("old", r#"path "a" { policy = "admin" }"#).unwrap_err();
        assert!(
            err.to_string().contains("invalid policy \"admin\""),
            "{err}"
        );
    }

    #[test]
    fn parameter_block_form() {
        let p = parse(
            "b",
            "path \"transit/keys/*\" {\n  capabilities = [\"update\"]\n  denied_parameters {\n    exportable = []\n  }\n}\n",
        )
        .unwrap();
        assert!(p.rules[0]
            .permissions
            .denied_parameters
            .contains_key("exportable"));
    }

    #[test]
    fn json_policies() {
        let text = r#"{
  "path": {
    "secret/*": {"capabilities": ["read", "list"]},
    "secret/foo": {"policy": "deny"},
    "transit/keys/*": {"capabilities": ["update"], "allowed_parameters": {"*": []}, "min_wrapping_ttl": "5m"}
  }
}"#;
        let p = parse("j", text).unwrap();
        assert_eq!(p.rules.len(), 3);
        let by_path: BTreeMap<_, _> = p.rules.iter().map(|r| (r.path.as_str(), r)).collect();
        assert_eq!(caps(by_path["secret/*"]), vec!["list", "read"]);
        assert_eq!(caps(by_path["secret/foo"]), vec!["deny"]);
        assert_eq!(
            by_path["transit/keys/*"].permissions.min_wrapping_ttl,
            Some(Duration::from_secs(300))
        );

        let list_form = r#"{"path": [{"a/*": {"capabilities": ["read"]}}, {"b": [{"capabilities": ["list"]}]}]}"#;
        assert_eq!(parse("j", list_form).unwrap().rules.len(), 2);
    }

    #[test]
    fn empty_policy_has_no_rules() {
        assert!(parse("e", "").unwrap().rules.is_empty());
        assert!(parse("e", "# only a comment\n").unwrap().rules.is_empty());
        assert!(parse("e", "{}").unwrap().rules.is_empty());
        assert!(parse("e", "name = \"ignored\"\n").unwrap().rules.is_empty());
    }

    #[test]
    fn bad_capability_is_named_with_its_line() {
        let err = parse(
            "p",
            "\n\npath \"secret/foo\" {\n  capabilities = [\"read\", \"reed\"]\n}\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            PolicyError::InvalidCapability {
                rule: RuleLocation {
                    path: "secret/foo".into(),
                    line: Some(3)
                },
                capability: "reed".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "path \"secret/foo\" (line 3): invalid capability \"reed\""
        );

        let err = parse("p", r#"{"path": {"x": {"capabilities": ["Read"]}}}"#).unwrap_err();
        assert!(
            err.to_string().contains("invalid capability \"Read\""),
            "{err}"
        );
    }

    #[test]
    fn bad_hcl_reports_line_and_column() {
        let err = parse("p", "path \"a\" {\n  capabilities = [\"read\"\n}\n").unwrap_err();
        match &err {
            PolicyError::Syntax { format, line, .. } => {
                assert_eq!(*format, "HCL");
                assert!(*line >= 2, "{err}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("line"), "{err}");

        let err = parse("p", "{\"path\": {\"a\": }").unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::Syntax {
                    format: "JSON",
                    line: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_keys_and_fields() {
        let err = parse("p", "\npaths \"a\" {\n capabilities = [\"read\"]\n}\n").unwrap_err();
        assert_eq!(err.to_string(), "invalid key \"paths\" on line 2");

        let err = parse(
            "p",
            "path \"a\" {\n  capabilities = [\"read\"]\n  capabilites = [\"list\"]\n}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "path \"a\" (line 1): capabilites: invalid key"
        );

        let err = parse("p", "path \"a\" { capabilities = \"read\" }").unwrap_err();
        assert!(
            err.to_string()
                .contains("capabilities: must be a list of strings"),
            "{err}"
        );

        let err = parse("p", "path \"a\" { capabilities = [read] }").unwrap_err();
        assert!(
            err.to_string()
                .contains("capabilities: unexpected identifier read"),
            "{err}"
        );

        let err = parse(
            "p",
            "path \"a\" {\n capabilities = [\"read\"]\n control_group = {}\n}",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("control_group: not supported"),
            "{err}"
        );

        let err = parse("p", "path \"a/+*\" { capabilities = [\"read\"] }").unwrap_err();
        assert!(err.to_string().contains("'+*' is forbidden"), "{err}");

        let err = parse("p", "path \"a\" \"b\" { capabilities = [\"read\"] }").unwrap_err();
        assert!(matches!(err, PolicyError::InvalidKey { .. }), "{err}");

        let err = parse(
            "p",
            "path \"a\" {\n capabilities = [\"read\"]\n capabilities = [\"list\"]\n}",
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");

        let err = parse(
            "p",
            "path \"a\" {\n allowed_parameters = { \"b*\" = [] }\n}",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("'*' may only stand alone"),
            "{err}"
        );

        let err = parse(
            "p",
            "path \"a\" {\n allowed_parameters = { \"*\" = [\"x\"] }\n}",
        )
        .unwrap_err();
        assert!(err.to_string().contains("only value allowed"), "{err}");

        let err = parse("p", "path \"a\" {\n required_parameters = [\"x*\"]\n}").unwrap_err();
        assert!(err.to_string().contains("required_parameters"), "{err}");

        let err = parse(
            "p",
            "path \"a\" {\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot be less than min_wrapping_ttl"),
            "{err}"
        );

        let err = parse("p", "path \"a\" { min_wrapping_ttl = \"soon\" }").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");

        assert!(matches!(
            parse("  ", ""),
            Err(PolicyError::InvalidName { .. })
        ));
    }

    #[test]
    fn durations() {
        let d = |v: Value| parse_duration(&v).unwrap();
        assert_eq!(d(json!(30)), Some(Duration::from_secs(30)));
        assert_eq!(d(json!("30")), Some(Duration::from_secs(30)));
        assert_eq!(d(json!("1h30m")), Some(Duration::from_secs(5400)));
        assert_eq!(d(json!("1.5h")), Some(Duration::from_secs(5400)));
        assert_eq!(d(json!("2d")), Some(Duration::from_secs(172_800)));
        assert_eq!(d(json!("500ms")), Some(Duration::from_millis(500)));
        assert_eq!(d(json!("0")), None);
        assert_eq!(d(json!("")), None);
        assert!(parse_duration(&json!("-5s")).is_err());
        assert!(parse_duration(&json!("5x")).is_err());
        assert!(parse_duration(&json!(true)).is_err());
    }

    #[test]
    fn templated_paths_are_refused() {
        // A deny rule with a template, next to a grant: the whole policy is
        // refused, so the grant cannot take effect without the deny.
        let text = "path \"secret/*\" { capabilities = [\"read\"] }\n\
                    path \"secret/{{identity.entity.name}}/private\" {\n  capabilities = [\"deny\"]\n}\n";
        let err = parse("t", text).unwrap_err();
        assert_eq!(
            err,
            PolicyError::TemplatedPath {
                rule: RuleLocation {
                    path: "secret/{{identity.entity.name}}/private".into(),
                    line: Some(2),
                }
            }
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "path \"secret/{{identity.entity.name}}/private\" (line 2): \
                 templated policy paths ({{identity...}}) are not supported"
            ),
            "{msg}"
        );

        for path in [
            // Allow rules too: they would silently grant nothing.
            "secret/data/{{identity.entity.id}}/*",
            // Spaces inside the braces, part of a segment, a leading '/',
            // a glob right after the template.
            "secret/{{ identity.entity.id }}/x",
            "secret/team-{{identity.groups.names}}",
            "/secret/{{identity.entity.id}}*",
        ] {
            for capability in ["deny", "read"] {
                let hcl = format!("path {path:?} {{ capabilities = [{capability:?}] }}");
                assert!(
                    matches!(parse("t", &hcl), Err(PolicyError::TemplatedPath { .. })),
                    "{hcl}"
                );
                let json = json!({"path": {path: {"capabilities": [capability]}}}).to_string();
                assert!(
                    matches!(parse("t", &json), Err(PolicyError::TemplatedPath { .. })),
                    "{json}"
                );
            }
        }
        // Old-style `policy = "deny"` as well.
        assert!(matches!(
            parse(
                "t",
                r#"path "s/{{identity.entity.id}}" { policy = "deny" }"#
            ),
            Err(PolicyError::TemplatedPath { .. })
        ));
        // Single braces are ordinary characters.
        let p = parse("t", r#"path "secret/{x}/y" { capabilities = ["read"] }"#).unwrap();
        assert!(!p.rules[0].is_templated());
    }
}
