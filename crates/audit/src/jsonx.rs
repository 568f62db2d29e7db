//! `format=jsonx`: an entry as IBM's JSONx, the XML form of JSON that
//! Vault's `jsonx` audit format writes: one XML document per line,
//! `<json:object>`, `<json:array>`, `<json:string>`, `<json:number>`,
//! `<json:boolean>` and `<json:null/>` elements, members named by a `name`
//! attribute.
//!
//! Invariant: the output is well-formed XML 1.0 for any JSON value: text
//! and names are escaped, and characters XML cannot hold (control
//! characters other than tab, newline and carriage return) become U+FFFD.

use std::fmt::Write;

use serde_json::Value;

const HEADER: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<json:object xsi:schemaLocation="http://www.datapower.com/schemas/json jsonx.xsd""#,
    r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#,
    r#" xmlns:json="http://www.ibm.com/xmlns/prod/2009/jsonx">"#
);

/// The entry (a JSON object) as one line of JSONx, without the newline.
pub(crate) fn encode(v: &Value) -> String {
    let mut out = String::from(HEADER);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                element(&mut out, Some(k), x);
            }
        }
        other => element(&mut out, None, other),
    }
    out.push_str("</json:object>");
    out
}

fn element(out: &mut String, name: Option<&str>, v: &Value) {
    let tag = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.push_str("<json:");
    out.push_str(tag);
    if let Some(n) = name {
        out.push_str(" name=\"");
        escape(out, n);
        out.push('"');
    }
    match v {
        Value::Null => {
            out.push_str("/>");
            return;
        }
        Value::Bool(b) => {
            let _ = write!(out, ">{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, ">{n}");
        }
        Value::String(s) => {
            out.push('>');
            escape(out, s);
        }
        Value::Array(a) => {
            out.push('>');
            for x in a {
                element(out, None, x);
            }
        }
        Value::Object(m) => {
            out.push('>');
            for (k, x) in m {
                element(out, Some(k), x);
            }
        }
    }
    out.push_str("</json:");
    out.push_str(tag);
    out.push('>');
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept on one line: the entry is one line of the log.
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            '\t' => out.push_str("&#x9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_of_value() {
        let x = encode(&json!({
            "type": "request",
            "n": 3,
            "ok": true,
            "none": null,
            "list": ["a<b", 1],
            "auth": {"display_name": "x&\"y\"\n"},
        }));
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><json:object "));
        assert!(x.ends_with("</json:object>"));
        assert!(!x.contains('\n'));
        for part in [
            r#"<json:string name="type">request</json:string>"#,
            r#"<json:number name="n">3</json:number>"#,
            r#"<json:boolean name="ok">true</json:boolean>"#,
            r#"<json:null name="none"/>"#,
            r#"<json:array name="list"><json:string>a&lt;b</json:string><json:number>1</json:number></json:array>"#,
            r#"<json:object name="auth"><json:string name="display_name">x&amp;&quot;y&quot;&#xA;</json:string></json:object>"#,
        ] {
            assert!(x.contains(part), "{part} not in {x}");
        }
        assert!(encode(&json!({"c": "\u{1}"})).contains('\u{FFFD}'));
    }
}
