//! Password policies (`sys/policies/password/:name`): Vault's policy text
//! parsed into an [`arca_sdk::PasswordPolicy`], and their replicated store.
//!
//! Syntax (Vault's): `length = N` and one or more
//! `rule "charset" { charset = "..."  min-chars = N }` blocks, in HCL, or
//! the same as JSON (`{"length": 20, "rule": [{"charset": {...}}]}` or
//! `"rule": {"charset": [{...}, ...]}`): text whose first non-blank
//! character is `{` is JSON.
//!
//! Invariants:
//! - Anything the parser does not know is refused, never ignored: an
//!   unknown key at the top or in a rule, a rule type other than
//!   `charset`, a key set twice, a value of the wrong type (a quoted
//!   number, a fraction, a negative count, an interpolation). Vault's
//!   decoder drops unknown keys silently; a typo there (`min_chars`)
//!   would quietly weaken every password.
//! - What is stored has parsed and generated (the write handler checks),
//!   and is kept as written: `sys/password_policy/<name>` →
//!   `{"policy": "<text>"}`, as Vault stores it.
//! - Parsed policies are cached per node and dropped when a replicated
//!   write or delete of that record is applied here (`crate::invalidate`);
//!   a load that raced with such a change is not cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hcl::expr::{Operation, UnaryOperator};
use hcl::{BlockLabel, Expression, Structure};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use arca_sdk::password::{CharsetRule, PasswordPolicy};
use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

/// Parses and validates policy text. The error says what is wrong; the
/// caller adds "invalid password policy: ".
pub fn parse(text: &str) -> Result<PasswordPolicy, String> {
    let policy = if text.trim_start().starts_with('{') {
        parse_json(text)?
    } else {
        parse_hcl(text)?
    };
    policy.validate()?;
    Ok(policy)
}

/// A key = value of the policy, lowered to JSON (what both syntaxes share).
type Fields = Vec<(String, Value)>;

fn parse_hcl(text: &str) -> Result<PasswordPolicy, String> {
    let body = hcl::parse(text).map_err(|e| format!("unable to decode: {e}"))?;
    let mut top: Fields = Vec::new();
    let mut rules = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.as_str().to_string();
                let v = literal(&a.expr).map_err(|e| format!("{key}: {e}"))?;
                top.push((key, v));
            }
            Structure::Block(b) => {
                if b.identifier.as_str() != "rule" {
                    return Err(unknown_top_key(b.identifier.as_str()));
                }
                let [label] = b.labels.as_slice() else {
                    return Err(format!(
                        "a rule block takes one label, its type (`rule \"charset\" {{ ... }}`); found {}",
                        b.labels.len()
                    ));
                };
                let kind = match label {
                    BlockLabel::String(s) => s.clone(),
                    BlockLabel::Identifier(i) => i.as_str().to_string(),
                };
                let n = rules.len() + 1;
                let mut fields: Fields = Vec::new();
                for s in b.body.iter() {
                    match s {
                        Structure::Attribute(a) => {
                            let key = a.key.as_str().to_string();
                            let v = literal(&a.expr)
                                .map_err(|e| format!("rule \"{kind}\" #{n}: {key}: {e}"))?;
                            fields.push((key, v));
                        }
                        Structure::Block(inner) => {
                            return Err(format!(
                                "rule \"{kind}\" #{n}: unexpected block {:?}",
                                inner.identifier.as_str()
                            ))
                        }
                    }
                }
                rules.push(rule(&kind, n, fields)?);
            }
        }
    }
    build(top, rules)
}

fn parse_json(text: &str) -> Result<PasswordPolicy, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("unable to decode: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("a JSON policy is an object".into());
    };
    let mut top: Fields = Vec::new();
    let mut rules = Vec::new();
    for (k, v) in obj {
        if k != "rule" {
            top.push((k, v));
            continue;
        }
        // "rule": {"charset": {...} | [{...}]} or [{"charset": {...}}, ...]
        let groups = match v {
            Value::Array(items) => items,
            other => vec![other],
        };
        for g in groups {
            let Value::Object(g) = g else {
                return Err("rule: expected an object keyed by rule type".into());
            };
            for (kind, body) in g {
                let bodies = match body {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for b in bodies {
                    let n = rules.len() + 1;
                    let Value::Object(m) = b else {
                        return Err(format!("rule \"{kind}\" #{n}: expected an object"));
                    };
                    rules.push(rule(&kind, n, m.into_iter().collect())?);
                }
            }
        }
    }
    build(top, rules)
}

fn unknown_top_key(key: &str) -> String {
    format!("unknown key {key:?}: a password policy holds `length` and `rule \"charset\"` blocks")
}

/// One rule from its type and fields.
fn rule(kind: &str, n: usize, fields: Fields) -> Result<CharsetRule, String> {
    if kind != "charset" {
        return Err(format!(
            "unrecognized rule type {kind:?} (the only rule type is \"charset\")"
        ));
    }
    let at = format!("rule \"charset\" #{n}");
    let mut charset = None;
    let mut min_chars = None;
    for (k, v) in fields {
        match k.as_str() {
            "charset" => {
                if charset.is_some() {
                    return Err(format!("{at}: charset is set more than once"));
                }
                match v {
                    Value::String(s) => charset = Some(s),
                    _ => return Err(format!("{at}: charset must be a string")),
                }
            }
            "min-chars" => {
                if min_chars.is_some() {
                    return Err(format!("{at}: min-chars is set more than once"));
                }
                min_chars = Some(count(&v).map_err(|e| format!("{at}: min-chars {e}"))?);
            }
            other => {
                return Err(format!(
                    "{at}: unknown key {other:?} (a charset rule holds `charset` and `min-chars`)"
                ))
            }
        }
    }
    let charset = charset.ok_or_else(|| format!("{at}: charset is required"))?;
    Ok(CharsetRule::new(&charset, min_chars.unwrap_or(0)))
}

fn build(top: Fields, rules: Vec<CharsetRule>) -> Result<PasswordPolicy, String> {
    let mut length = None;
    for (k, v) in top {
        if k != "length" {
            return Err(unknown_top_key(&k));
        }
        if length.is_some() {
            return Err("length is set more than once".into());
        }
        length = Some(count(&v).map_err(|e| format!("length {e}"))?);
    }
    let length = length.ok_or("length is required (`length = 20`)")?;
    Ok(PasswordPolicy { length, rules })
}

/// A whole, non-negative number.
fn count(v: &Value) -> Result<usize, String> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                usize::try_from(u).map_err(|_| "is too large".to_string())
            } else if n.as_i64().is_some() {
                Err("must not be negative".into())
            } else {
                Err("must be a whole number".into())
            }
        }
        _ => Err("must be a number".into()),
    }
}

/// A literal HCL value as JSON: strings, numbers (a leading `-` included),
/// booleans, null. Anything to evaluate is refused.
fn literal(e: &Expression) -> Result<Value, String> {
    match e {
        Expression::Null => Ok(Value::Null),
        Expression::Bool(b) => Ok(Value::Bool(*b)),
        Expression::String(s) => Ok(Value::String(s.clone())),
        Expression::Number(n) => number(n),
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) if u.operator == UnaryOperator::Neg => match &u.expr {
                Expression::Number(n) => match number(n)? {
                    Value::Number(x) => Ok(x
                        .as_i64()
                        .and_then(|i| i.checked_neg())
                        .map(Value::from)
                        .or_else(|| x.as_f64().map(|f| Value::from(-f)))
                        .unwrap_or(Value::Null)),
                    other => Ok(other),
                },
                _ => Err("expected a literal value".into()),
            },
            _ => Err("expected a literal value".into()),
        },
        Expression::TemplateExpr(_) => Err(
            "interpolation (`${` or `%{`) is not supported; write `$${` or `%%{` for the characters themselves"
                .into(),
        ),
        _ => Err("expected a literal value".into()),
    }
}

fn number(n: &hcl::Number) -> Result<Value, String> {
    if let Some(u) = n.as_u64() {
        Ok(Value::from(u))
    } else if let Some(i) = n.as_i64() {
        Ok(Value::from(i))
    } else {
        Ok(n.as_f64().map(Value::from).unwrap_or(Value::Null))
    }
}

/// How Vault stores a password policy.
#[derive(Serialize, Deserialize)]
struct Stored {
    policy: String,
}

/// The policies under `sys/password_policy/`, with a per-node cache of the
/// parsed ones.
pub struct PasswordPolicyStore {
    storage: Arc<dyn Storage>,
    cache: RwLock<HashMap<String, Arc<PasswordPolicy>>>,
    /// Bumped by every invalidation: a load that started before one is not
    /// cached.
    epoch: AtomicU64,
}

impl PasswordPolicyStore {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        PasswordPolicyStore {
            storage,
            cache: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// The text of a policy as written.
    pub async fn text(&self, name: &str) -> Result<Option<String>, LogicalError> {
        let s: Option<Stored> = get_json(self.storage.as_ref(), name).await?;
        Ok(s.map(|s| s.policy))
    }

    /// The parsed policy (cached).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<PasswordPolicy>>, LogicalError> {
        if let Some(p) = self.cache.read().get(name) {
            return Ok(Some(p.clone()));
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let Some(text) = self.text(name).await? else {
            return Ok(None);
        };
        let p = Arc::new(parse(&text).map_err(|e| {
            LogicalError::internal(format!(
                "stored password policy {name:?} does not parse: {e}"
            ))
        })?);
        let mut cache = self.cache.write();
        if self.epoch.load(Ordering::SeqCst) == epoch {
            cache.insert(name.to_string(), p.clone());
        }
        Ok(Some(p))
    }

    /// Stores policy text the caller has parsed and test-generated.
    pub async fn put(&self, name: &str, text: &str) -> Result<(), LogicalError> {
        put_json(
            self.storage.as_ref(),
            name,
            &Stored {
                policy: text.to_string(),
            },
        )
        .await?;
        self.invalidate(name);
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<(), LogicalError> {
        self.storage.delete(name).await?;
        self.invalidate(name);
        Ok(())
    }

    /// The names, sorted.
    pub async fn list(&self) -> Result<Vec<String>, LogicalError> {
        crate::policies::stored_names(self.storage.as_ref()).await
    }

    /// Forget one cached policy (a write here or a replicated one).
    pub fn invalidate(&self, name: &str) {
        let mut cache = self.cache.write();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        cache.remove(name);
    }

    /// Forget every cached policy (a snapshot was installed).
    pub fn clear_cache(&self) {
        let mut cache = self.cache.write();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        cache.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_sdk::testing::InmemStorage;

    const EXAMPLE: &str = r#"
length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 1
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 1
}
"#;

    #[test]
    fn vaults_example_parses_and_generates() {
        let p = parse(EXAMPLE).unwrap();
        assert_eq!(p.length, 20);
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[3], CharsetRule::new("!@#$%^&*", 1));
        for _ in 0..500 {
            let pw = p.generate().unwrap();
            assert!(p.passes(&pw), "{pw}");
            assert!(pw.chars().any(|c| "!@#$%^&*".contains(c)), "{pw}");
        }
    }

    #[test]
    fn the_full_symbol_set_and_escapes_parse() {
        let p = parse(
            "length = 8\nrule \"charset\" {\n  charset = \"!\\\"#$%&'()*+,-./:;<=>?@[\\\\]^_`{|}~\"\n}\n",
        )
        .unwrap();
        assert_eq!(
            p.rules[0].charset.iter().collect::<String>(),
            "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
        );
        assert_eq!(p.rules[0].min_chars, 0);
    }

    #[test]
    fn json_policies_parse_like_hcl() {
        let a = parse(r#"{"length": 12, "rule": [{"charset": {"charset": "abc", "min-chars": 2}}, {"charset": {"charset": "01"}}]}"#).unwrap();
        let b = parse(r#"{"length": 12, "rule": {"charset": [{"charset": "abc", "min-chars": 2}, {"charset": "01"}]}}"#).unwrap();
        let h = parse("length = 12\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 2\n}\nrule \"charset\" {\n charset = \"01\"\n}\n").unwrap();
        assert_eq!(a, h);
        assert_eq!(b, h);
    }

    #[test]
    fn bad_policies_are_refused_never_ignored() {
        let rule = |body: &str| format!("length = 20\nrule \"charset\" {{\n{body}\n}}\n");
        let length =
            |n: i64| format!("length = {n}\nrule \"charset\" {{\n charset = \"abc\"\n}}\n");
        let cases: Vec<(String, &str)> = vec![
            ("length = 20\n".into(), "no charset"),
            (
                "rule \"charset\" {\n charset = \"abc\"\n}\n".into(),
                "length is required",
            ),
            (length(3), "between 4 and 100"),
            (length(101), "between 4 and 100"),
            (length(-4), "must not be negative"),
            (rule("charset = \"\""), "must not be empty"),
            (rule("min-chars = 1"), "charset is required"),
            (
                rule("charset = \"abc\"\nmin_chars = 1"),
                "unknown key \"min_chars\"",
            ),
            (rule("charset = \"abc\"\nmin-chars = -1"), "must not be negative"),
            (rule("charset = \"abc\"\nmin-chars = 1.5"), "whole number"),
            (rule("charset = \"abc\"\nmin-chars = \"2\""), "must be a number"),
            (rule("charset = 5"), "must be a string"),
            (rule("charset = \"a${b}\""), "interpolation"),
            (rule("charset = \"ab\"\ncharset = \"cd\""), "redefined attribute"),
            (rule("charset = \"ab\"\nmin-chars = 21"), "require at least 21"),
            (
                "length = 20\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 15\n}\nrule \"charset\" {\n charset = \"def\"\n min-chars = 6\n}\n".into(),
                "require at least 21 characters but 20",
            ),
            (
                "length = 20\nrule \"regex\" {\n pattern = \"x\"\n}\n".into(),
                "unrecognized rule type \"regex\"",
            ),
            (
                "length = 20\nrule {\n charset = \"abc\"\n}\n".into(),
                "one label",
            ),
            (
                "length = 20\nlenght = 21\nrule \"charset\" {\n charset = \"abc\"\n}\n".into(),
                "unknown key \"lenght\"",
            ),
            (
                "length = 20\nlength = 21\nrule \"charset\" {\n charset = \"abc\"\n}\n".into(),
                "redefined attribute",
            ),
            (
                "length = 20\npath \"x\" {\n charset = \"abc\"\n}\n".into(),
                "unknown key \"path\"",
            ),
            ("length = 20\nrule \"charset\" {".into(), "unable to decode"),
            (r#"{"length": 20}"#.into(), "no charset"),
            (
                r#"{"length": 20, "rule": {"charset": {"charset": "ab", "extra": 1}}}"#.into(),
                "unknown key \"extra\"",
            ),
            (r#"{"length": 20, "lenght": 1}"#.into(), "unknown key \"lenght\""),
            (r#"{"length": "20"}"#.into(), "must be a number"),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(&text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
    }

    #[tokio::test]
    async fn the_store_keeps_text_and_caches_until_invalidated() {
        let s = PasswordPolicyStore::new(Arc::new(InmemStorage::new()));
        assert!(s.get("a").await.unwrap().is_none());
        assert!(s.list().await.unwrap().is_empty());
        s.put("a", EXAMPLE).await.unwrap();
        assert_eq!(s.text("a").await.unwrap().as_deref(), Some(EXAMPLE));
        assert_eq!(s.get("a").await.unwrap().unwrap().length, 20);
        // A change that bypasses the store (a replicated write) is seen
        // once invalidated.
        let other = "length = 6\nrule \"charset\" {\n charset = \"x\"\n}\n";
        put_json(
            s.storage.as_ref(),
            "a",
            &Stored {
                policy: other.into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(s.get("a").await.unwrap().unwrap().length, 20, "cached");
        s.invalidate("a");
        assert_eq!(s.get("a").await.unwrap().unwrap().length, 6);
        s.put("b", EXAMPLE).await.unwrap();
        assert_eq!(s.list().await.unwrap(), vec!["a", "b"]);
        s.delete("a").await.unwrap();
        assert!(s.get("a").await.unwrap().is_none());
        assert_eq!(s.list().await.unwrap(), vec!["b"]);
    }
}
