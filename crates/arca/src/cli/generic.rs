//! `arca read`, `write`, `list` and `delete`: plain requests to any API path.
//!
//! Requests: `read` → `GET <path>` (with `k=v` arguments as query
//! parameters); `write` → `PUT <path>` with the `k=v` data as a JSON body;
//! `list` → `GET <path>?list=true`; `delete` → `DELETE <path>`.
//! A missing secret is exit 2 with "No value found at PATH", as in Vault.

use arca_client::Method;

use super::data::parse_args_data;
use super::output::{self, Format};
use super::{parse, remote_error, sanitize_path, usage_error, CmdResult, Spec};
use crate::flags::Flag;

const READ: Spec = Spec {
    name: "read",
    usage: "[options] PATH [K=V...]",
    help: "Reads data from the given path. K=V arguments are sent as query parameters.\n\
           With -format=raw the response body is printed as received.",
    flags: &[],
    http: true,
    field: true,
};

const WRITE: Spec = Spec {
    name: "write",
    usage: "[options] PATH [DATA K=V...]",
    help: "Writes data to the given path. Values: key=value, key=@file, key=- (stdin);\n\
           a lone - reads a JSON object from stdin.",
    flags: &[
        Flag::bool("force", "Allow a write without data."),
        Flag::bool("f", "Alias of -force."),
    ],
    http: true,
    field: true,
};

const LIST: Spec = Spec {
    name: "list",
    usage: "[options] PATH",
    help: "Lists the keys under the given path.",
    flags: &[],
    http: true,
    field: false,
};

const DELETE: Spec = Spec {
    name: "delete",
    usage: "[options] PATH [K=V...]",
    help: "Deletes the data at the given path. K=V arguments are sent as query parameters.",
    flags: &[],
    http: true,
    field: false,
};

fn query_pairs(data: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in data {
        match v {
            serde_json::Value::Array(items) => {
                out.extend(items.iter().map(|i| (k.clone(), output::go_fmt(i))))
            }
            other => out.push((k.clone(), output::go_fmt(other))),
        }
    }
    out
}

/// `arca read`.
pub async fn read(argv: &[String]) -> CmdResult {
    let cmd = parse(&READ, argv)?;
    cmd.expect_args(1, usize::MAX)?;
    let path = sanitize_path(&cmd.args()[0]);
    let data = parse_args_data(&cmd.args()[1..], &mut std::io::stdin())
        .map_err(|e| usage_error(format!("Failed to parse K=V data: {e}")))?;
    let pairs = query_pairs(&data);
    let client = cmd.client()?;
    if cmd.format == Format::Raw && cmd.field.is_none() {
        let mut p = path.clone();
        if !pairs.is_empty() {
            let q: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect();
            p = format!("{p}?{}", q.join("&"));
        }
        let resp = client.raw(Method::GET, &p, None).await?;
        if !resp.is_success() {
            let e = arca_client::ClientError::from_response(
                "GET",
                &client.url(&p),
                resp.status,
                &resp.body,
            );
            return Err(remote_error(format!("Error reading {path}: {e}")));
        }
        let mut body = resp.body;
        if body.last() == Some(&b'\n') {
            body.pop();
        }
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&body);
        let _ = out.flush();
        return Ok(0);
    }
    let q: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let secret = client
        .read_with_query(&path, &q)
        .await
        .map_err(|e| remote_error(format!("Error reading {path}: {e}")))?;
    let Some(secret) = secret else {
        return Err(remote_error(format!("No value found at {path}")));
    };
    cmd.print_secret_or_field(&secret)
}

/// Percent-encodes a query component.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `arca write`.
pub async fn write(argv: &[String]) -> CmdResult {
    let cmd = parse(&WRITE, argv)?;
    cmd.expect_args(1, usize::MAX)?;
    let force = cmd.flags.bool("force") || cmd.flags.bool("f");
    if cmd.args().len() == 1 && !force {
        return Err(usage_error("Must supply data or use -force"));
    }
    let path = sanitize_path(&cmd.args()[0]);
    let data = parse_args_data(&cmd.args()[1..], &mut std::io::stdin())
        .map_err(|e| usage_error(format!("Failed to parse K=V data: {e}")))?;
    let client = cmd.client()?;
    let secret = client
        .write(&path, &serde_json::Value::Object(data))
        .await
        .map_err(|e| remote_error(format!("Error writing data to {path}: {e}")))?;
    match secret {
        None => cmd.success(format!("Success! Data written to: {path}")),
        Some(s) => cmd.print_secret_or_field(&s),
    }
}

/// `arca list`.
pub async fn list(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST, argv)?;
    cmd.expect_args(1, 1)?;
    let path = sanitize_path(&cmd.args()[0]);
    let client = cmd.client()?;
    let secret = client
        .list(&path)
        .await
        .map_err(|e| remote_error(format!("Error listing {path}: {e}")))?;
    match secret {
        Some(s) if s.get("keys").is_some() => cmd.print_list(&s),
        Some(_) => Err(remote_error(format!("No entries found at {path}"))),
        None => Err(remote_error(format!("No value found at {path}"))),
    }
}

/// `arca delete`.
pub async fn delete(argv: &[String]) -> CmdResult {
    let cmd = parse(&DELETE, argv)?;
    cmd.expect_args(1, usize::MAX)?;
    let path = sanitize_path(&cmd.args()[0]);
    let data = parse_args_data(&cmd.args()[1..], &mut std::io::stdin())
        .map_err(|e| usage_error(format!("Failed to parse K=V data: {e}")))?;
    let pairs = query_pairs(&data);
    let q: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let client = cmd.client()?;
    client
        .delete_with_query(&path, &q)
        .await
        .map_err(|e| remote_error(format!("Error deleting {path}: {e}")))?;
    cmd.success(format!("Success! Data deleted (if it existed) at: {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_pairs_flatten_lists() {
        let m = json!({"a": "1", "b": ["x", "y"]});
        let pairs = query_pairs(m.as_object().unwrap());
        assert_eq!(
            pairs,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x".to_string()),
                ("b".to_string(), "y".to_string())
            ]
        );
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }
}
