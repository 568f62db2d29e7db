//! Vault's response envelope (`api.Secret` in the Go client).
//!
//! Invariant: serializing a `Secret` yields the same JSON keys, in the same
//! shape, as the Vault CLI's `-format=json` output of a response:
//! `request_id`, `lease_id`, `lease_duration`, `renewable`, `data`,
//! `warnings`, and `auth` / `wrap_info` / `mount_type` only when present.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One API response envelope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secret {
    /// Request id assigned by the server.
    pub request_id: String,
    /// Lease id of a leased secret (empty otherwise).
    pub lease_id: String,
    /// Lease (or refresh) duration in seconds.
    pub lease_duration: i64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// The response's data (`null` when absent).
    pub data: Option<Map<String, Value>>,
    /// Warnings from the server (`null` when absent).
    pub warnings: Option<Vec<String>>,
    /// Authentication block of login / token-creation answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    /// Response-wrapping information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<Value>,
    /// Type of the mount that answered.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
}

/// The keys that make a JSON object an envelope (or an error answer,
/// `{"errors": [...]}`) rather than a bare answer.
const ENVELOPE_KEYS: &[&str] = &[
    "errors",
    "request_id",
    "lease_id",
    "data",
    "auth",
    "wrap_info",
    "warnings",
];

impl Secret {
    /// A response body as the Go client reads it: an envelope, or (for the
    /// endpoints that answer a bare object, like `sys/health`,
    /// `sys/leader` or `sys/seal-status`) the whole object as `data`.
    pub fn from_json(body: &[u8]) -> Result<Secret, serde_json::Error> {
        let v: Value = serde_json::from_slice(body)?;
        match v {
            Value::Object(m) if !m.keys().any(|k| ENVELOPE_KEYS.contains(&k.as_str())) => {
                Ok(Secret {
                    data: Some(m),
                    ..Default::default()
                })
            }
            v => serde_json::from_value(v),
        }
    }

    /// One field of `data`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.as_ref().and_then(|d| d.get(key))
    }

    /// One string field of `data`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// One field of `auth`.
    pub fn auth_field(&self, key: &str) -> Option<&Value> {
        self.auth.as_ref().and_then(|a| a.get(key))
    }

    /// The client token of an `auth` block.
    pub fn client_token(&self) -> Option<&str> {
        self.auth_field("client_token").and_then(Value::as_str)
    }

    /// The warnings, empty if none.
    pub fn warnings(&self) -> &[String] {
        self.warnings.as_deref().unwrap_or(&[])
    }

    /// `data.keys` of a list answer as strings.
    pub fn list_keys(&self) -> Vec<String> {
        match self.get("keys") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `true` when the secret carries data or warnings (how the Go client
    /// decides that a `404` answer still holds something worth returning).
    pub fn has_content(&self) -> bool {
        self.data.as_ref().is_some_and(|d| !d.is_empty()) || !self.warnings().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_answers_become_data_as_the_go_client_reads_them() {
        let s =
            Secret::from_json(br#"{"initialized":true,"sealed":false,"version":"2.7.2"}"#).unwrap();
        assert_eq!(s.get("sealed"), Some(&json!(false)));
        assert_eq!(s.get_str("version"), Some("2.7.2"));
        assert_eq!(s.request_id, "");
        // sys/mounts answers both top-level mounts and an envelope: the
        // envelope wins.
        let s = Secret::from_json(
            br#"{"secret/":{"type":"kv"},"request_id":"r","data":{"secret/":{"type":"kv"}}}"#,
        )
        .unwrap();
        assert_eq!(s.request_id, "r");
        assert!(s.get("secret/").is_some());
        assert!(Secret::from_json(b"[1]").is_err());
        // An error answer (a 404's `{"errors":[]}`) is no data.
        assert!(!Secret::from_json(br#"{"errors":[]}"#)
            .unwrap()
            .has_content());
    }

    #[test]
    fn round_trips_vault_shape() {
        let body = json!({
            "request_id": "r", "lease_id": "", "lease_duration": 2764800,
            "renewable": false, "data": {"foo": "bar"}, "warnings": null,
            "wrap_info": null, "auth": null, "mount_type": "kv"
        });
        let s: Secret = serde_json::from_value(body).unwrap();
        assert_eq!(s.get_str("foo"), Some("bar"));
        assert_eq!(s.lease_duration, 2764800);
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(
            out,
            json!({"request_id": "r", "lease_id": "", "lease_duration": 2764800,
                   "renewable": false, "data": {"foo": "bar"}, "warnings": null,
                   "mount_type": "kv"})
        );
    }

    #[test]
    fn list_keys_and_content() {
        let s: Secret = serde_json::from_value(json!({"data": {"keys": ["a", "b/"]}})).unwrap();
        assert_eq!(s.list_keys(), vec!["a", "b/"]);
        assert!(s.has_content());
        assert!(!Secret::default().has_content());
        let s: Secret = serde_json::from_value(json!({"auth": {"client_token": "t"}})).unwrap();
        assert_eq!(s.client_token(), Some("t"));
    }
}
