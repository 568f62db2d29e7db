//! `K=V` argument parsing shared by `write`, `kv put`, `kv patch`, … — the
//! rules of the Vault CLI's `kvbuilder`:
//!
//! * `key=value` sets a string; `key=@file` reads the value from a file,
//!   `key=\@x` is the literal `@x`, `key=-` reads the value from stdin;
//! * a lone `-` reads a JSON object from stdin and merges it in; a lone
//!   `@file` reads a JSON object from that file and merges it in;
//! * a repeated key turns into a list of all its values;
//! * empty arguments are ignored; anything else is an error.
//!
//! Invariant: standard input is consumed at most once per command line.

use std::io::Read;

use serde_json::{Map, Value};

/// Builds the request data from `args`, reading `-` from `stdin`.
pub fn parse_args_data(
    args: &[String],
    stdin: &mut dyn Read,
) -> Result<Map<String, Value>, String> {
    let mut result = Map::new();
    let mut stdin_used = false;
    let mut read_stdin = |used: &mut bool| -> Result<String, String> {
        if *used {
            return Err("stdin already consumed".to_string());
        }
        *used = true;
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .map_err(|e| format!("error reading stdin: {e}"))?;
        Ok(s)
    };
    for raw in args {
        if raw.is_empty() {
            continue;
        }
        let Some((key, value)) = raw.split_once('=') else {
            if raw == "-" {
                let text = read_stdin(&mut stdin_used)?;
                merge_json(&mut result, &text, "stdin")?;
                continue;
            }
            if let Some(file) = raw.strip_prefix('@') {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("error reading file {file}: {e}"))?;
                merge_json(&mut result, &text, file)?;
                continue;
            }
            return Err(format!("format must be key=value (got {raw:?})"));
        };
        let value = if let Some(file) = value.strip_prefix('@') {
            std::fs::read_to_string(file).map_err(|e| format!("error reading file {file}: {e}"))?
        } else if let Some(lit) = value.strip_prefix("\\@") {
            format!("@{lit}")
        } else if value == "-" {
            read_stdin(&mut stdin_used)?
        } else {
            value.to_string()
        };
        let value = Value::String(value);
        match result.get_mut(key) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                result.insert(key.to_string(), value);
            }
        }
    }
    Ok(result)
}

fn merge_json(into: &mut Map<String, Value>, text: &str, source: &str) -> Result<(), String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => {
            into.extend(o);
            Ok(())
        }
        Ok(_) => Err(format!("{source}: expected a JSON object")),
        Err(e) => Err(format!("{source}: invalid JSON: {e}")),
    }
}

/// Parses repeated `k=v` flag values (e.g. `-metadata=k=v`) into a string map.
pub fn parse_kv_flags(values: &[String], flag: &str) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for v in values {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| format!("invalid -{flag} value {v:?}: must be key=value"))?;
        m.insert(k.to_string(), Value::String(val.to_string()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn parse(a: &[&str], stdin: &str) -> Result<Value, String> {
        parse_args_data(&args(a), &mut stdin.as_bytes()).map(Value::Object)
    }

    #[test]
    fn key_values_and_repeats() {
        assert_eq!(
            parse(&["a=b", "c=d=e", "a=x", "a=y", "empty=", ""], "").unwrap(),
            json!({"a": ["b", "x", "y"], "c": "d=e", "empty": ""})
        );
    }

    #[test]
    fn stdin_json_and_value() {
        assert_eq!(
            parse(&["-", "x=1"], r#"{"a": 1, "b": {"c": true}}"#).unwrap(),
            json!({"a": 1, "b": {"c": true}, "x": "1"})
        );
        assert_eq!(
            parse(&["pw=-"], "secret\n").unwrap(),
            json!({"pw": "secret\n"})
        );
        assert_eq!(
            parse(&["-", "pw=-"], "{}").unwrap_err(),
            "stdin already consumed"
        );
        assert!(parse(&["-"], "[1]")
            .unwrap_err()
            .contains("expected a JSON object"));
        assert!(parse(&["-"], "nope").unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let val = dir.path().join("val.txt");
        std::fs::write(&val, "line1\nline2\n").unwrap();
        let obj = dir.path().join("obj.json");
        std::fs::write(&obj, r#"{"k": "v"}"#).unwrap();
        let got = parse(
            &[
                &format!("cert=@{}", val.display()),
                &format!("@{}", obj.display()),
                "lit=\\@home",
            ],
            "",
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"cert": "line1\nline2\n", "k": "v", "lit": "@home"})
        );
        assert!(parse(&["x=@/nonexistent/file"], "")
            .unwrap_err()
            .contains("/nonexistent/file"));
    }

    #[test]
    fn bad_args() {
        assert!(parse(&["novalue"], "").unwrap_err().contains("key=value"));
    }

    #[test]
    fn kv_flags() {
        let m = parse_kv_flags(&args(&["a=1", "b=x=y"]), "metadata").unwrap();
        assert_eq!(Value::Object(m), json!({"a": "1", "b": "x=y"}));
        assert!(parse_kv_flags(&args(&["a"]), "metadata").is_err());
    }
}
