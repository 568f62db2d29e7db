//! Output in the Vault CLI's formats: `table` (default), `json`, and the raw
//! value printed by `-field=NAME`.
//!
//! Invariants (each mirrors the Vault CLI so scripts written for it work):
//! * tables are columns joined by four spaces, each column padded to its
//!   widest cell, the last column unpadded, the header underlined with dashes
//!   and an empty cell printed as `n/a`;
//! * values are printed like Go's `%v`: `[a b]` for lists, `map[k:v]` for
//!   objects (sorted keys), `<nil>` for null;
//! * keys that look like durations (`ttl`, `*_ttl`, `period`, `*_duration`…)
//!   holding whole seconds are shown humanized (`768h`);
//! * `json` output is the response pretty-printed with two-space indents and
//!   sorted object keys;
//! * a `-field` value goes to stdout without a trailing newline unless stdout
//!   is a terminal.

use std::io::{IsTerminal, Write};

use arca_client::Secret;
use serde_json::{Map, Value};

use crate::duration;

/// The output format chosen by `-format` (or `VAULT_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Key/Value columns.
    Table,
    /// Pretty JSON.
    Json,
    /// Raw response body (`read` only) or raw field value.
    Raw,
}

impl Format {
    /// Parses a `-format` value.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "raw" => Ok(Format::Raw),
            "yaml" | "yml" | "pretty" => Err(format!(
                "Invalid output format: {s} (arca supports table, json and raw)"
            )),
            _ => Err(format!("Invalid output format: {s}")),
        }
    }
}

/// Go's `%v` rendering of a JSON value.
pub fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's `%q` of a string list: `["a" "b"]`.
fn go_quote_list(v: Option<&Value>) -> String {
    let items: Vec<String> = match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| serde_json::to_string(&Value::String(go_fmt(x))).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    format!("[{}]", items.join(" "))
}

/// Whether the CLI humanizes a key's value as a duration.
pub fn looks_like_duration(k: &str) -> bool {
    k == "period"
        || k.ends_with("_period")
        || k == "ttl"
        || k.ends_with("_ttl")
        || k == "duration"
        || k.ends_with("_duration")
        || k == "lease_max"
        || k == "ttl_max"
}

/// `humanDurationInt`: whole seconds (number or numeric string) → `768h`;
/// anything else unchanged.
pub fn human_duration_value(v: &Value) -> String {
    let secs = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) => duration::human(s),
        None => go_fmt(v),
    }
}

fn cell(k: &str, v: &Value) -> String {
    if looks_like_duration(k) {
        human_duration_value(v)
    } else {
        go_fmt(v)
    }
}

/// Lays out rows in columns like `columnize` (glue of four spaces, empty
/// cells as `n/a`). The first row is underlined when `header` is true.
pub fn columns(rows: &[Vec<String>], header: bool) -> String {
    let mut rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    let t = c.trim();
                    if t.is_empty() {
                        "n/a".to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect()
        })
        .collect();
    if header && !rows.is_empty() {
        let underline = rows[0]
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect();
        rows.insert(1, underline);
    }
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 4));
            }
        }
        out.push(line);
    }
    out.join("\n")
}

/// A `Key | Value` table of rows; empty string when there are no rows.
pub fn kv_table(rows: Vec<(String, String)>) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut all = vec![vec!["Key".to_string(), "Value".to_string()]];
    all.extend(rows.into_iter().map(|(k, v)| vec![k, v]));
    columns(&all, true)
}

/// The table of a map (`OutputData` of a map in the Vault CLI).
pub fn map_table(data: &Map<String, Value>) -> String {
    kv_table(data.iter().map(|(k, v)| (k.clone(), cell(k, v))).collect())
}

/// The rows the Vault CLI shows for a response (`OutputSecret`).
pub fn secret_rows(secret: &Secret) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let s = |k: &str, v: String| (k.to_string(), v);
    if secret.lease_duration > 0 {
        let d = duration::human(secret.lease_duration as u64);
        if !secret.lease_id.is_empty() {
            out.push(s("lease_id", secret.lease_id.clone()));
            out.push(s("lease_duration", d));
            out.push(s("lease_renewable", secret.renewable.to_string()));
        } else {
            out.push(s("refresh_interval", d));
        }
    }
    if let Some(Value::Object(auth)) = &secret.auth {
        let get = |k: &str| auth.get(k).map(go_fmt).unwrap_or_default();
        out.push(s("token", get("client_token")));
        out.push(s("token_accessor", get("accessor")));
        let dur = auth
            .get("lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        out.push(s(
            "token_duration",
            if dur == 0 {
                "∞".to_string()
            } else {
                duration::human(dur)
            },
        ));
        out.push(s(
            "token_renewable",
            auth.get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
        ));
        out.push(s(
            "token_policies",
            go_quote_list(auth.get("token_policies")),
        ));
        out.push(s(
            "identity_policies",
            go_quote_list(auth.get("identity_policies")),
        ));
        out.push(s("policies", go_quote_list(auth.get("policies"))));
        if let Some(Value::Object(meta)) = auth.get("metadata") {
            for (k, v) in meta {
                out.push((format!("token_meta_{k}"), go_fmt(v)));
            }
        }
    }
    if let Some(Value::Object(w)) = &secret.wrap_info {
        let get = |k: &str| w.get(k).map(go_fmt).unwrap_or_default();
        out.push(s("wrapping_token:", get("token")));
        out.push(s("wrapping_accessor:", get("accessor")));
        out.push(s(
            "wrapping_token_ttl:",
            w.get("ttl").map(human_duration_value).unwrap_or_default(),
        ));
        out.push(s("wrapping_token_creation_time:", get("creation_time")));
        out.push(s("wrapping_token_creation_path:", get("creation_path")));
        if w.get("wrapped_accessor").is_some_and(|v| v != "") {
            out.push(s("wrapped_accessor:", get("wrapped_accessor")));
        }
    }
    if let Some(data) = &secret.data {
        for (k, v) in data {
            out.push((k.clone(), cell(k, v)));
        }
    }
    out
}

/// Warnings block printed (to stderr) before a table.
pub fn warnings_text(secret: &Secret) -> Option<String> {
    let w = secret.warnings();
    if w.is_empty() {
        return None;
    }
    let mut s = String::from("WARNING! The following warnings were returned from Vault:\n\n");
    for warning in w {
        s.push_str(&format!("  * {warning}\n\n"));
    }
    Some(s)
}

/// Pretty JSON, two-space indent, like Go's `json.MarshalIndent`.
pub fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("\"<unserializable: {e}>\""))
}

/// The table header the KV commands print above a map: `====== Data ======`.
pub fn header_for_map(title: &str, data: &Map<String, Value>) -> String {
    let max_key = data.keys().map(|k| k.len()).max().unwrap_or(0);
    pad_equal_signs(title, max_key + 4 + 5)
}

/// `title` centred in equal signs to `total` width (at least two each side).
pub fn pad_equal_signs(title: &str, total: usize) -> String {
    let mut n = total as isize - (title.len() as isize + 2);
    if n <= 0 {
        n = 4;
    }
    if n % 2 != 0 {
        n += 1;
    }
    let side = "=".repeat((n / 2) as usize);
    format!("{side} {title} {side}")
}

/// The value `-field=name` prints from a response (`extractDataFromSecret`).
pub fn secret_field(secret: &Secret, field: &str) -> Option<Value> {
    if let Some(Value::Object(auth)) = &secret.auth {
        let key = match field {
            "token" => Some("client_token"),
            "token_accessor" => Some("accessor"),
            "token_duration" => Some("lease_duration"),
            "token_renewable" => Some("renewable"),
            "token_policies" | "identity_policies" | "policies" => Some(field),
            _ => None,
        };
        if let Some(k) = key {
            return auth.get(k).cloned();
        }
    }
    if let Some(Value::Object(w)) = &secret.wrap_info {
        let key = match field {
            "wrapping_token" => Some("token"),
            "wrapping_accessor" => Some("accessor"),
            "wrapping_token_ttl" => Some("ttl"),
            "wrapping_token_creation_time" => Some("creation_time"),
            "wrapping_token_creation_path" => Some("creation_path"),
            "wrapped_accessor" => Some("wrapped_accessor"),
            _ => None,
        };
        if let Some(k) = key {
            return w.get(k).cloned();
        }
    }
    match field {
        "refresh_interval" | "lease_duration" if secret.get(field).is_none() => {
            Some(Value::from(secret.lease_duration))
        }
        "lease_id" if secret.get(field).is_none() => Some(Value::from(secret.lease_id.clone())),
        "lease_renewable" if secret.get(field).is_none() => Some(Value::from(secret.renewable)),
        _ => secret.get(field).filter(|v| !v.is_null()).cloned(),
    }
}

/// The text `-field` prints for a value in `format`.
pub fn field_text(v: &Value, format: Format) -> String {
    match format {
        Format::Json => json_text(v),
        Format::Table | Format::Raw => go_fmt(v),
    }
}

/// Prints a raw value: no trailing newline unless stdout is a terminal.
pub fn print_raw(s: &str) {
    let mut out = std::io::stdout().lock();
    if out.is_terminal() {
        let _ = writeln!(out, "{s}");
    } else {
        let _ = write!(out, "{s}");
    }
    let _ = out.flush();
}

/// A list answer as a `Keys` table (sorted).
pub fn list_table(keys: &[String]) -> String {
    let mut keys = keys.to_vec();
    keys.sort();
    let mut rows = vec![vec!["Keys".to_string()]];
    rows.extend(keys.into_iter().map(|k| vec![k]));
    columns(&rows, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(v: Value) -> Secret {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn go_formatting() {
        assert_eq!(go_fmt(&json!(null)), "<nil>");
        assert_eq!(go_fmt(&json!("x")), "x");
        assert_eq!(go_fmt(&json!(3)), "3");
        assert_eq!(go_fmt(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(go_fmt(&json!({"b": 1, "a": [2]})), "map[a:[2] b:1]");
        assert_eq!(
            go_quote_list(Some(&json!(["default", "root"]))),
            r#"["default" "root"]"#
        );
        assert_eq!(go_quote_list(None), "[]");
    }

    #[test]
    fn table_layout_matches_vault() {
        let t = kv_table(vec![
            ("created_time".into(), "2022-06-15T20:14:17Z".into()),
            ("custom_metadata".into(), "<nil>".into()),
            ("deletion_time".into(), "".into()),
            ("version".into(), "1".into()),
        ]);
        assert_eq!(
            t,
            "Key                Value\n\
             ---                -----\n\
             created_time       2022-06-15T20:14:17Z\n\
             custom_metadata    <nil>\n\
             deletion_time      n/a\n\
             version            1"
        );
    }

    #[test]
    fn secret_table_with_refresh_interval() {
        let s = secret(json!({"lease_duration": 2764800, "data": {"foo": "bar", "ttl": 60}}));
        let t = kv_table(secret_rows(&s));
        assert_eq!(
            t,
            "Key                 Value\n\
             ---                 -----\n\
             refresh_interval    768h\n\
             foo                 bar\n\
             ttl                 1m"
        );
    }

    #[test]
    fn secret_table_with_auth() {
        let s = secret(json!({"auth": {
            "client_token": "hvs.x", "accessor": "acc", "lease_duration": 0,
            "renewable": false, "policies": ["root"], "token_policies": ["root"],
            "metadata": {"user": "bob"}
        }}));
        let rows = secret_rows(&s);
        assert_eq!(rows[0], ("token".into(), "hvs.x".into()));
        assert_eq!(rows[2], ("token_duration".into(), "∞".into()));
        assert_eq!(rows[4], ("token_policies".into(), r#"["root"]"#.into()));
        assert_eq!(rows[5], ("identity_policies".into(), "[]".into()));
        assert_eq!(rows[7], ("token_meta_user".into(), "bob".into()));
        assert_eq!(secret_field(&s, "token"), Some(json!("hvs.x")));
        assert_eq!(secret_field(&s, "policies"), Some(json!(["root"])));
    }

    #[test]
    fn headers() {
        let data: Map<String, Value> =
            serde_json::from_value(json!({"passcode": "my-long-passcode"})).unwrap();
        assert_eq!(header_for_map("Data", &data), "====== Data ======");
        let meta: Map<String, Value> =
            serde_json::from_value(json!({"custom_metadata": null, "version": 1})).unwrap();
        assert_eq!(
            header_for_map("Metadata", &meta),
            "======= Metadata ======="
        );
        assert_eq!(
            pad_equal_signs("Secret Path", "secret/data/creds".len()),
            "== Secret Path =="
        );
        assert_eq!(pad_equal_signs("Long title", 3), "== Long title ==");
    }

    #[test]
    fn list_and_fields() {
        assert_eq!(list_table(&["b".into(), "a/".into()]), "Keys\n----\na/\nb");
        let s = secret(json!({"lease_duration": 60, "data": {"foo": "bar", "n": null}}));
        assert_eq!(secret_field(&s, "foo"), Some(json!("bar")));
        assert_eq!(secret_field(&s, "n"), None);
        assert_eq!(secret_field(&s, "missing"), None);
        assert_eq!(secret_field(&s, "refresh_interval"), Some(json!(60)));
        assert_eq!(
            field_text(&json!({"a": 1}), Format::Json),
            "{\n  \"a\": 1\n}"
        );
        assert_eq!(field_text(&json!(["a"]), Format::Table), "[a]");
    }

    #[test]
    fn formats() {
        assert_eq!(Format::parse("JSON"), Ok(Format::Json));
        assert_eq!(Format::parse(""), Ok(Format::Table));
        assert!(Format::parse("yaml").is_err());
        assert!(Format::parse("xml").is_err());
    }

    #[test]
    fn warnings() {
        let s = secret(json!({"warnings": ["careful"]}));
        assert!(warnings_text(&s).unwrap().contains("  * careful"));
        assert!(warnings_text(&Secret::default()).is_none());
    }
}
