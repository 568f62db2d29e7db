//! Typed request fields with Vault's lenient input conversions: booleans and
//! numbers may arrive as strings, durations as seconds or as `"72h"`, lists as
//! JSON arrays or comma-separated strings.

use serde_json::{Map, Value};
use std::collections::HashMap;

use crate::logical::LogicalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Bool,
    /// Seconds; accepts integers, `"30"`, `"72h"`, `"1h30m"`, `"7d"`.
    Duration,
    /// A list of strings from a JSON array or a comma-separated string.
    CommaStringSlice,
    /// A JSON object.
    Map,
    /// A JSON object whose values are strings.
    StringMap,
    /// Anything, passed through.
    Raw,
}

impl FieldType {
    /// The type's name as Vault's help and OpenAPI show it.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::Duration => "duration (sec)",
            FieldType::CommaStringSlice => "comma-string-slice",
            FieldType::Map => "map",
            FieldType::StringMap => "keypair",
            FieldType::Raw => "raw",
        }
    }
}

/// True in debug builds and when `ARCA_STRICT_FIELDS=1` (the test harness
/// sets it for every server it starts): reading an undeclared field fails.
pub fn strict_fields() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| {
        cfg!(debug_assertions) || std::env::var("ARCA_STRICT_FIELDS").is_ok_and(|v| v == "1")
    })
}

/// A field declaration: part of a path's schema, also used for help/OpenAPI.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub description: &'static str,
    pub default: Option<Value>,
    pub required: bool,
    /// The only values accepted (a string field; empty: any). A value
    /// outside them is refused with a 400 that lists them.
    pub allowed: &'static [&'static str],
    /// The value is a secret (a password, a key, a token): audit devices
    /// HMAC it and logs never show it.
    pub sensitive: bool,
}

impl Field {
    pub const fn new(name: &'static str, ty: FieldType, description: &'static str) -> Self {
        Field {
            name,
            ty,
            description,
            default: None,
            required: false,
            allowed: &[],
            sensitive: false,
        }
    }
    pub fn default(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Accepts only these values (see [`Field::allowed`]).
    pub fn allowed(mut self, values: &'static [&'static str]) -> Self {
        self.allowed = values;
        self
    }
    /// Marks the value secret (see [`Field::sensitive`]).
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// Parses a Vault duration into whole seconds.
pub fn parse_duration(v: &Value) -> Result<u64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if let Some(f) = n.as_f64() {
                if f < 0.0 {
                    Err("duration must not be negative".into())
                } else {
                    Ok(f as u64)
                }
            } else {
                Err("duration must not be negative".into())
            }
        }
        Value::String(s) => parse_duration_str(s),
        _ => Err("expected a duration (seconds or a string such as \"72h\")".into()),
    }
}

/// A duration string as a field value: `""` is 0 (unset), as in Vault.
pub fn parse_duration_str(s: &str) -> Result<u64, String> {
    if s.trim().is_empty() {
        return Ok(0);
    }
    crate::duration::parse_seconds(s)
}

fn type_error(name: &str, expected: &str, v: &Value) -> LogicalError {
    LogicalError::InvalidRequest(format!(
        "error converting input for field {name:?}: expected {expected}, got {v}"
    ))
}

/// The request's data interpreted against a path's field schema. URL captures
/// take precedence over body fields of the same name.
#[derive(Debug, Clone, Default)]
pub struct FieldData {
    raw: Map<String, Value>,
    schema: HashMap<&'static str, Field>,
}

impl FieldData {
    pub fn new(raw: Map<String, Value>, fields: &[Field]) -> Self {
        FieldData {
            raw,
            schema: fields.iter().map(|f| (f.name, f.clone())).collect(),
        }
    }

    /// Checks every known field converts to its declared type and every
    /// required field is present.
    pub fn validate(&self) -> Result<(), LogicalError> {
        for (name, f) in &self.schema {
            match self.raw.get(*name) {
                Some(v) => {
                    let v = self.convert(f, v)?;
                    if let (false, Some(s)) = (f.allowed.is_empty(), v.as_str()) {
                        if !f.allowed.contains(&s) {
                            return Err(LogicalError::InvalidRequest(format!(
                                "invalid value {s:?} for field {name:?}: must be one of {:?}",
                                f.allowed
                            )));
                        }
                    }
                }
                None if f.required => {
                    return Err(LogicalError::InvalidRequest(format!(
                        "missing required field {name:?}"
                    )))
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Names of the sensitive fields the request carries (for audit HMAC
    /// and log redaction).
    pub fn sensitive_fields(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .schema
            .values()
            .filter(|f| f.sensitive && self.raw.contains_key(f.name))
            .map(|f| f.name)
            .collect();
        v.sort_unstable();
        v
    }

    /// Names present in the request but not in the schema.
    pub fn unknown_fields(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .raw
            .keys()
            .filter(|k| !self.schema.contains_key(k.as_str()))
            .cloned()
            .collect();
        v.sort();
        v
    }

    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// True when the client sent this field (defaults do not count).
    pub fn is_set(&self, name: &str) -> bool {
        self.raw.contains_key(name)
    }

    fn convert(&self, f: &Field, v: &Value) -> Result<Value, LogicalError> {
        let name = f.name;
        Ok(match f.ty {
            FieldType::Raw => v.clone(),
            FieldType::String => match v {
                Value::String(_) => v.clone(),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                Value::Null => Value::String(String::new()),
                _ => return Err(type_error(name, "a string", v)),
            },
            FieldType::Int => match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
                Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0) as i64),
                Value::String(s) if s.is_empty() => Value::from(0),
                Value::String(s) => Value::from(
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| type_error(name, "an integer", v))?,
                ),
                _ => return Err(type_error(name, "an integer", v)),
            },
            FieldType::Bool => match v {
                Value::Bool(_) => v.clone(),
                Value::String(s) => match s.to_ascii_lowercase().as_str() {
                    "true" | "1" | "t" => Value::Bool(true),
                    "false" | "0" | "f" | "" => Value::Bool(false),
                    _ => return Err(type_error(name, "a boolean", v)),
                },
                Value::Number(n) => Value::Bool(n.as_i64() != Some(0)),
                _ => return Err(type_error(name, "a boolean", v)),
            },
            FieldType::Duration => Value::from(parse_duration(v).map_err(|e| {
                LogicalError::InvalidRequest(format!(
                    "error converting input for field {name:?}: {e}"
                ))
            })?),
            FieldType::CommaStringSlice => match v {
                Value::Array(a) => Value::Array(
                    a.iter()
                        .map(|x| match x {
                            Value::String(s) => Ok(Value::String(s.trim().to_string())),
                            Value::Number(n) => Ok(Value::String(n.to_string())),
                            _ => Err(type_error(name, "a list of strings", v)),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Value::String(s) => Value::Array(
                    s.split(',')
                        .map(|x| x.trim())
                        .filter(|x| !x.is_empty())
                        .map(|x| Value::String(x.to_string()))
                        .collect(),
                ),
                Value::Null => Value::Array(vec![]),
                _ => return Err(type_error(name, "a list of strings", v)),
            },
            FieldType::Map => match v {
                Value::Object(_) => v.clone(),
                Value::Null => Value::Object(Map::new()),
                Value::String(s) if s.trim().starts_with('{') => {
                    serde_json::from_str(s).map_err(|_| type_error(name, "a JSON object", v))?
                }
                _ => return Err(type_error(name, "a JSON object", v)),
            },
            FieldType::StringMap => match v {
                Value::Object(m) => {
                    let mut out = Map::new();
                    for (k, x) in m {
                        let s = match x {
                            Value::String(s) => s.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        out.insert(k.clone(), Value::String(s));
                    }
                    Value::Object(out)
                }
                Value::Null => Value::Object(Map::new()),
                Value::String(s) if s.is_empty() => Value::Object(Map::new()),
                Value::String(s) => {
                    // "k1=v1,k2=v2" as the CLI sends for key-value flags.
                    let mut out = Map::new();
                    for part in s.split(',') {
                        let (k, x) = part
                            .split_once('=')
                            .ok_or_else(|| type_error(name, "a map of strings", v))?;
                        out.insert(k.trim().to_string(), Value::String(x.trim().to_string()));
                    }
                    Value::Object(out)
                }
                _ => return Err(type_error(name, "a map of strings", v)),
            },
        })
    }

    /// The converted value of a declared field, or its default, or `None`.
    /// Reading a field the path does not declare is a bug in the engine
    /// (its value would bypass conversion: `"true"` from the CLI would read
    /// as no boolean at all). Under tests ([`strict_fields`]) it is an
    /// internal error, so the test suite finds every such read; in
    /// production it is logged and the raw value is returned. Engines that
    /// take arbitrary data read [`FieldData::raw`].
    pub fn get(&self, name: &str) -> Result<Option<Value>, LogicalError> {
        let Some(f) = self.schema.get(name) else {
            if strict_fields() {
                return Err(LogicalError::internal(format!(
                    "this endpoint reads the field {name:?} without declaring it (a bug: please report it)"
                )));
            }
            tracing::error!(
                field = name,
                "an endpoint reads a field it does not declare (a bug: please report it)"
            );
            return Ok(self.raw.get(name).cloned());
        };
        match self.raw.get(name) {
            Some(v) => self.convert(f, v).map(Some),
            None => Ok(f.default.clone()),
        }
    }

    pub fn get_str(&self, name: &str) -> Result<Option<String>, LogicalError> {
        Ok(self.get(name)?.and_then(|v| match v {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        }))
    }
    pub fn str_or(&self, name: &str, d: &str) -> Result<String, LogicalError> {
        Ok(self.get_str(name)?.unwrap_or_else(|| d.to_string()))
    }
    pub fn get_i64(&self, name: &str) -> Result<Option<i64>, LogicalError> {
        Ok(self.get(name)?.and_then(|v| v.as_i64()))
    }
    pub fn get_bool(&self, name: &str) -> Result<Option<bool>, LogicalError> {
        Ok(self.get(name)?.and_then(|v| v.as_bool()))
    }
    pub fn bool_or(&self, name: &str, d: bool) -> Result<bool, LogicalError> {
        Ok(self.get_bool(name)?.unwrap_or(d))
    }
    /// Seconds.
    pub fn get_duration(&self, name: &str) -> Result<Option<u64>, LogicalError> {
        Ok(self.get(name)?.and_then(|v| v.as_u64()))
    }
    pub fn get_list(&self, name: &str) -> Result<Option<Vec<String>>, LogicalError> {
        Ok(self.get(name)?.map(|v| match v {
            Value::Array(a) => a
                .into_iter()
                .filter_map(|x| x.as_str().map(|s| s.to_string()))
                .collect(),
            _ => vec![],
        }))
    }
    pub fn get_map(&self, name: &str) -> Result<Option<Map<String, Value>>, LogicalError> {
        Ok(self.get(name)?.and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_like_vault() {
        assert_eq!(parse_duration(&json!(30)).unwrap(), 30);
        assert_eq!(parse_duration(&json!("30")).unwrap(), 30);
        assert_eq!(parse_duration(&json!("72h")).unwrap(), 259200);
        assert_eq!(parse_duration(&json!("1h30m")).unwrap(), 5400);
        assert_eq!(parse_duration(&json!("7d")).unwrap(), 604800);
        assert_eq!(parse_duration(&json!("1.5h")).unwrap(), 5400);
        assert!(parse_duration(&json!("10x")).is_err());
        assert!(parse_duration(&json!("-5s")).is_err());
        assert!(parse_duration(&json!(true)).is_err());
    }

    #[test]
    fn fields_convert_strings_and_name_the_field_on_error() {
        let fields = [
            Field::new("b", FieldType::Bool, ""),
            Field::new("n", FieldType::Int, ""),
            Field::new("l", FieldType::CommaStringSlice, ""),
            Field::new("t", FieldType::Duration, "").default(0),
        ];
        let raw = json!({"b": "true", "n": "12", "l": "a, b,c", "x": 1});
        let d = FieldData::new(raw.as_object().unwrap().clone(), &fields);
        d.validate().unwrap();
        assert_eq!(d.get_bool("b").unwrap(), Some(true));
        assert_eq!(d.get_i64("n").unwrap(), Some(12));
        assert_eq!(d.get_list("l").unwrap().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(d.get_duration("t").unwrap(), Some(0));
        assert_eq!(d.unknown_fields(), vec!["x"]);
        let bad = FieldData::new(json!({"n": "twelve"}).as_object().unwrap().clone(), &fields);
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("\"n\""), "{err}");
    }

    #[test]
    fn allowed_values_and_sensitive_fields() {
        let fields = [
            Field::new("kind", FieldType::String, "").allowed(&["rsa", "ec"]),
            Field::new("password", FieldType::String, "").sensitive(),
            Field::new("user", FieldType::String, ""),
        ];
        let ok = FieldData::new(
            json!({"kind": "ec", "password": "x", "user": "u"})
                .as_object()
                .unwrap()
                .clone(),
            &fields,
        );
        ok.validate().unwrap();
        assert_eq!(ok.sensitive_fields(), vec!["password"]);
        let bad = FieldData::new(json!({"kind": "dsa"}).as_object().unwrap().clone(), &fields);
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("\"kind\"") && err.contains("rsa"), "{err}");
        assert!(bad.sensitive_fields().is_empty());
    }
}
