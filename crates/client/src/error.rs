//! The client's one error type.
//!
//! Invariant: `status` is the HTTP status of the answer, or `0` when there was
//! no answer (connection, TLS, timeout, a bad address or an unreadable body);
//! `errors` is the server's `errors` array, or one message describing the local
//! failure, or the raw body when the server's answer was not Vault's envelope.

use std::fmt;

/// An API or transport failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    /// HTTP status code; `0` when no response was received.
    pub status: u16,
    /// Messages from Vault's `{"errors": [...]}` envelope (or a local message).
    pub errors: Vec<String>,
    /// HTTP method of the failed request (empty for local configuration errors).
    pub method: String,
    /// Full URL of the failed request (empty for local configuration errors).
    pub url: String,
    /// `true` when `errors` holds a raw, non-JSON response body.
    pub raw: bool,
}

impl ClientError {
    /// A local error that happened before any request was sent.
    pub fn local(msg: impl Into<String>) -> ClientError {
        ClientError {
            status: 0,
            errors: vec![msg.into()],
            method: String::new(),
            url: String::new(),
            raw: false,
        }
    }

    /// An error from an HTTP answer: `body` is parsed as Vault's error envelope.
    pub fn from_response(method: &str, url: &str, status: u16, body: &[u8]) -> ClientError {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            errors: Option<Vec<String>>,
        }
        let (errors, raw) = match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { errors: Some(e) }) => (e, false),
            Ok(Envelope { errors: None }) if body.iter().all(u8::is_ascii_whitespace) => {
                (Vec::new(), false)
            }
            _ => {
                let text = String::from_utf8_lossy(body).trim().to_string();
                (if text.is_empty() { vec![] } else { vec![text] }, true)
            }
        };
        ClientError {
            status,
            errors,
            method: method.to_string(),
            url: url.to_string(),
            raw,
        }
    }

    /// A request that got no answer.
    pub fn transport(method: &str, url: &str, msg: impl Into<String>) -> ClientError {
        ClientError {
            status: 0,
            errors: vec![msg.into()],
            method: method.to_string(),
            url: url.to_string(),
            raw: false,
        }
    }

    /// `true` if the server answered with `status`.
    pub fn is_status(&self, status: u16) -> bool {
        self.status == status
    }

    /// `true` if no answer was received.
    pub fn is_transport(&self) -> bool {
        self.status == 0
    }
}

impl fmt::Display for ClientError {
    /// Same shape as the Vault CLI's "Error making API request." message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 0 {
            let msg = self.errors.join("; ");
            return if self.url.is_empty() {
                write!(f, "{msg}")
            } else {
                write!(f, "{} \"{}\": {msg}", title_case(&self.method), self.url)
            };
        }
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}.",
            self.method, self.url, self.status
        )?;
        if self.raw {
            write!(f, " Raw Message:\n\n{}", self.errors.join("\n"))
        } else if self.errors.is_empty() {
            Ok(())
        } else {
            writeln!(f, " Errors:")?;
            for e in &self.errors {
                write!(f, "\n* {e}")?;
            }
            Ok(())
        }
    }
}

fn title_case(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_error_envelope() {
        let e = ClientError::from_response(
            "GET",
            "http://x/v1/a",
            403,
            br#"{"errors":["permission denied"]}"#,
        );
        assert_eq!(e.status, 403);
        assert_eq!(e.errors, vec!["permission denied"]);
        assert!(!e.raw);
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://x/v1/a\nCode: 403. Errors:\n\n* permission denied"
        );
    }

    #[test]
    fn empty_errors_and_raw_bodies() {
        let e = ClientError::from_response("GET", "u", 404, br#"{"errors":[]}"#);
        assert!(e.errors.is_empty());
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET u\nCode: 404."
        );
        let e = ClientError::from_response("PUT", "u", 502, b"bad gateway\n");
        assert!(e.raw);
        assert_eq!(e.errors, vec!["bad gateway"]);
        assert!(e
            .to_string()
            .ends_with("Code: 502. Raw Message:\n\nbad gateway"));
        let e = ClientError::from_response("PUT", "u", 500, b"");
        assert!(e.errors.is_empty());
    }

    #[test]
    fn transport_errors() {
        let e = ClientError::transport("GET", "http://h/v1/sys/health", "connection refused");
        assert!(e.is_transport());
        assert_eq!(
            e.to_string(),
            "Get \"http://h/v1/sys/health\": connection refused"
        );
        assert_eq!(ClientError::local("bad CA").to_string(), "bad CA");
    }
}
