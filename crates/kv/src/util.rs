//! Pure helpers: Vault's output formats (timestamps, Go durations), JSON merge
//! patch, lenient input parsing and custom-metadata validation.

use std::collections::BTreeMap;

use arca_sdk::{parse_duration, LogicalError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Go's `time.RFC3339Nano` in UTC: nanoseconds with trailing zeros trimmed
/// (`2018-03-22T02:24:06.945319214Z`, `2018-03-22T02:24:06Z`).
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ns = t.timestamp_subsec_nanos() % 1_000_000_000;
    if ns == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{ns:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// `""` for no time, like Vault's `ptypesTimestampToString`.
pub(crate) fn format_opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(format_time).unwrap_or_default()
}

/// Go's `time.Duration.String()` for whole seconds: `0s`, `45s`, `1m30s`, `1h0m0s`, `-1s`.
pub(crate) fn format_go_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let body = if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    };
    format!("{sign}{body}")
}

/// A duration that may be negative (`-1s`, `-5`), in seconds.
pub(crate) fn parse_signed_duration(name: &str, v: &Value) -> Result<i64, LogicalError> {
    let err = |e: String| {
        LogicalError::invalid(format!("error converting input for field {name:?}: {e}"))
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(i),
            None => Ok(n.as_f64().unwrap_or(0.0) as i64),
        },
        Value::String(s) => match s.trim().strip_prefix('-') {
            Some(rest) => {
                let d = parse_duration(&Value::String(rest.to_string())).map_err(err)?;
                Ok(-(i64::try_from(d).unwrap_or(i64::MAX)))
            }
            None => Ok(i64::try_from(parse_duration(v).map_err(err)?).unwrap_or(i64::MAX)),
        },
        Value::Null => Ok(0),
        _ => Err(err(
            "expected a duration (seconds or a string such as \"72h\")".into(),
        )),
    }
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes a
/// member, anything else replaces the target.
pub(crate) fn merge_patch(target: Value, patch: Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut t = match target {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    let cur = t.remove(&k).unwrap_or(Value::Null);
                    t.insert(k, merge_patch(cur, v));
                }
            }
            Value::Object(t)
        }
        other => other,
    }
}

/// Go's `mapstructure.WeakDecode` into an int: numbers (truncated), numeric
/// strings, booleans, null as 0.
pub(crate) fn weak_int(v: &Value) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) if s.trim().is_empty() => Some(0),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
        }
        _ => None,
    }
}

/// Vault's `TypeCommaIntSlice`: `[1, 2]`, `["1", "2"]`, `"1,2"` or `3`.
pub(crate) fn parse_versions(v: Option<&Value>) -> Result<Vec<u64>, LogicalError> {
    let bad = || {
        LogicalError::invalid(
            "error converting input for field \"versions\": expected a list of integers",
        )
    };
    let one = |x: &Value| -> Result<u64, LogicalError> {
        let n = match x {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        n.and_then(|n| u64::try_from(n).ok()).ok_or_else(bad)
    };
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| one(&Value::String(p.to_string())))
            .collect(),
        Some(n @ Value::Number(_)) => Ok(vec![one(n)?]),
        Some(_) => Err(bad()),
    }
}

pub(crate) const MAX_CUSTOM_METADATA_KEYS: usize = 64;
pub(crate) const MAX_CUSTOM_METADATA_KEY_LEN: usize = 128;
pub(crate) const MAX_CUSTOM_METADATA_VALUE_LEN: usize = 512;
const CM_PREFIX: &str = "custom_metadata validation failed";

/// One custom-metadata value as a string (`mapstructure.WeakDecode`):
/// `None` for a null when `skip_null` is set.
fn custom_value(k: &str, v: &Value, skip_null: bool) -> Result<Option<String>, LogicalError> {
    Ok(Some(match v {
        Value::Null if skip_null => return Ok(None),
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        _ => {
            return Err(LogicalError::invalid(format!(
                "{CM_PREFIX}: value for key {k:?} must be a string, got {v}"
            )))
        }
    }))
}

/// A `custom_metadata` object as stored (string to string).
pub(crate) fn parse_custom_metadata(
    raw: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, LogicalError> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        if let Some(s) = custom_value(k, v, false)? {
            out.insert(k.clone(), s);
        }
    }
    Ok(out)
}

/// Applies a merge patch to stored custom metadata (`null` removes a key).
pub(crate) fn patch_custom_metadata(
    current: &mut BTreeMap<String, String>,
    patch: &Map<String, Value>,
) -> Result<(), LogicalError> {
    for (k, v) in patch {
        match custom_value(k, v, true)? {
            None => {
                current.remove(k);
            }
            Some(s) => {
                current.insert(k.clone(), s);
            }
        }
    }
    Ok(())
}

/// Go's `unicode.IsPrint`, approximately: no control characters and no
/// white space other than the ASCII space.
fn printable(s: &str) -> bool {
    s.chars()
        .all(|c| c == ' ' || !(c.is_control() || c.is_whitespace()))
}

/// Vault's limits on custom metadata, reported all at once in go-multierror's format.
pub(crate) fn validate_custom_metadata(cm: &BTreeMap<String, String>) -> Result<(), LogicalError> {
    let mut errs = Vec::new();
    if cm.len() > MAX_CUSTOM_METADATA_KEYS {
        errs.push(format!(
            "{CM_PREFIX}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            cm.len()
        ));
    } else {
        for (k, v) in cm {
            if k.is_empty() || k.len() > MAX_CUSTOM_METADATA_KEY_LEN {
                errs.push(format!(
                    "{CM_PREFIX}: length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LEN}",
                    k.len()
                ));
            }
            if v.is_empty() || v.len() > MAX_CUSTOM_METADATA_VALUE_LEN {
                errs.push(format!(
                    "{CM_PREFIX}: length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LEN}",
                    v.len()
                ));
            }
            if !printable(k) {
                errs.push(format!(
                    "{CM_PREFIX}: key {k:?} ({k}) contains unprintable characters"
                ));
            }
            if !printable(v) {
                errs.push(format!(
                    "{CM_PREFIX}: value for key {k:?} contains unprintable characters"
                ));
            }
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let head = if errs.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errs.len())
    };
    let body: String = errs.iter().map(|e| format!("\n\t* {e}")).collect();
    Err(LogicalError::invalid(format!("{head}{body}\n\n")))
}

/// A secret path that may be written: not empty, not a folder.
pub(crate) fn check_write_path(path: &str) -> Result<(), LogicalError> {
    if path.is_empty() {
        return Err(LogicalError::invalid("missing path"));
    }
    if path.ends_with('/') {
        return Err(LogicalError::invalid(format!(
            "invalid path {path:?}: a secret path cannot end with \"/\""
        )));
    }
    Ok(())
}

/// The storage prefix of the folder a LIST names (`a` and `a/` both mean `a/`).
pub(crate) fn folder(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

/// OpenBao's list pagination: entries strictly after `after`, at most `limit` (<= 0: all).
pub(crate) fn paginate(keys: Vec<String>, after: &str, limit: i64) -> Vec<String> {
    let it = keys
        .into_iter()
        .filter(|k| after.is_empty() || k.as_str() > after);
    match usize::try_from(limit) {
        Ok(n) if n > 0 => it.take(n).collect(),
        _ => it.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn times_format_like_go_rfc3339nano() {
        let t = Utc.with_ymd_and_hms(2018, 3, 22, 2, 24, 6).unwrap();
        assert_eq!(format_time(&t), "2018-03-22T02:24:06Z");
        let t = t + chrono::Duration::nanoseconds(945_319_214);
        assert_eq!(format_time(&t), "2018-03-22T02:24:06.945319214Z");
        let t = Utc.with_ymd_and_hms(2019, 6, 28, 15, 53, 30).unwrap()
            + chrono::Duration::nanoseconds(395_814_000);
        assert_eq!(format_time(&t), "2019-06-28T15:53:30.395814Z");
        assert_eq!(format_opt_time(&None), "");
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(45), "45s");
        assert_eq!(format_go_duration(90), "1m30s");
        assert_eq!(format_go_duration(3600), "1h0m0s");
        assert_eq!(format_go_duration(12319), "3h25m19s");
        assert_eq!(format_go_duration(-1), "-1s");
        assert_eq!(parse_signed_duration("d", &json!("-1s")).unwrap(), -1);
        assert_eq!(parse_signed_duration("d", &json!("1h")).unwrap(), 3600);
        assert_eq!(parse_signed_duration("d", &json!(-5)).unwrap(), -5);
        assert!(parse_signed_duration("d", &json!("soon")).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "x": [1, 2]});
        let patch = json!({"a": "z", "c": {"f": null, "h": {"i": null, "j": 1}}, "x": null, "n": {"m": null}});
        assert_eq!(
            merge_patch(target, patch),
            json!({"a": "z", "c": {"d": "e", "h": {"j": 1}}, "n": {}})
        );
        assert_eq!(merge_patch(json!({"a": 1}), json!([1])), json!([1]));
        assert_eq!(merge_patch(json!("s"), json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn lenient_inputs() {
        assert_eq!(weak_int(&json!("3")), Some(3));
        assert_eq!(weak_int(&json!(2.7)), Some(2));
        assert_eq!(weak_int(&json!(true)), Some(1));
        assert_eq!(weak_int(&json!(null)), Some(0));
        assert_eq!(weak_int(&json!("x")), None);
        assert_eq!(weak_int(&json!({})), None);
        assert_eq!(parse_versions(Some(&json!([1, "2"]))).unwrap(), vec![1, 2]);
        assert_eq!(parse_versions(Some(&json!("3, 4"))).unwrap(), vec![3, 4]);
        assert_eq!(parse_versions(Some(&json!(5))).unwrap(), vec![5]);
        assert_eq!(parse_versions(None).unwrap(), Vec::<u64>::new());
        assert!(parse_versions(Some(&json!(["a"]))).is_err());
        assert!(parse_versions(Some(&json!([-1]))).is_err());
    }

    #[test]
    fn custom_metadata_limits() {
        let ok: BTreeMap<_, _> = [("owner".to_string(), "jdoe".to_string())].into();
        validate_custom_metadata(&ok).unwrap();
        let too_many: BTreeMap<_, _> = (0..65)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let e = validate_custom_metadata(&too_many).unwrap_err().to_string();
        assert!(e.starts_with("1 error occurred:\n\t* custom_metadata validation failed: payload must contain at most 64 keys, provided 65"), "{e}");
        let bad: BTreeMap<_, _> = [
            ("k".repeat(129), "v".to_string()),
            ("tab".to_string(), "a\tb".to_string()),
            ("e".into(), "".into()),
        ]
        .into();
        let e = validate_custom_metadata(&bad).unwrap_err().to_string();
        assert!(e.starts_with("3 errors occurred:"), "{e}");
        assert!(e.contains("must be 0 < len(key) <= 128"), "{e}");
        assert!(
            e.contains("value for key \"tab\" contains unprintable characters"),
            "{e}"
        );
        assert!(e.contains("must be 0 < len(value) <= 512"), "{e}");
        let unicode: BTreeMap<_, _> = [("clé".to_string(), "värde ✓".to_string())].into();
        validate_custom_metadata(&unicode).unwrap();
    }

    #[test]
    fn custom_metadata_parsing_and_patching() {
        let raw = json!({"a": "x", "n": 5, "b": true})
            .as_object()
            .unwrap()
            .clone();
        let mut cm = parse_custom_metadata(&raw).unwrap();
        assert_eq!(cm["n"], "5");
        assert_eq!(cm["b"], "1");
        let patch = json!({"a": null, "c": "new"}).as_object().unwrap().clone();
        patch_custom_metadata(&mut cm, &patch).unwrap();
        assert!(!cm.contains_key("a"));
        assert_eq!(cm["c"], "new");
        let nested = json!({"a": {"b": 1}}).as_object().unwrap().clone();
        assert!(parse_custom_metadata(&nested).is_err());
    }

    #[test]
    fn paths_and_pages() {
        assert!(check_write_path("").is_err());
        assert!(check_write_path("a/").is_err());
        check_write_path("a b/ünï").unwrap();
        assert_eq!(folder(""), "");
        assert_eq!(folder("a"), "a/");
        assert_eq!(folder("a/"), "a/");
        let keys: Vec<String> = ["a", "b", "b/", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(paginate(keys.clone(), "", 0), keys);
        assert_eq!(paginate(keys.clone(), "b", 0), vec!["b/", "c"]);
        assert_eq!(paginate(keys, "a", 2), vec!["b", "b/"]);
    }
}
