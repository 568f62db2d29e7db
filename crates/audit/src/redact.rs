//! An entry as a device writes it, produced while it is serialised: the
//! plain entry is walked once per device and every value that must be
//! hashed is hashed on the way out, so that no device copies the entry.
//!
//! Where hashing applies (unless the device has `log_raw`):
//! - every string under `request.data` and `response.data`;
//! - the tokens `auth.client_token`, `request.client_token`,
//!   `response.auth.client_token`, `response.wrap_info.token`;
//! - unless `hmac_accessor=false`, the accessors `auth.accessor`,
//!   `request.client_token_accessor`, `response.auth.accessor`,
//!   `response.wrap_info.accessor`, `response.wrap_info.wrapped_accessor`;
//! - every string under the request headers named in
//!   [`crate::Entry::hmac_headers`].
//!
//! An empty token or accessor stays empty (nothing to hide, and an auditor
//! can tell "no token" apart). With `elide_list_responses`, a LIST
//! answer's `response.data.keys` is written as its length (with or
//! without `log_raw`).

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::{Device, Entry};

/// Length of `hmac-sha256:<64 hex digits>`.
pub(crate) const HASHED_LEN: usize = "hmac-sha256:".len() + 64;

/// Where a value sits in the entry: decides what is hashed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pos {
    Root,
    /// `auth`
    Auth,
    /// `request`
    Request,
    /// `request.headers`
    Headers,
    /// `response`
    Response,
    /// `response.auth`
    ResponseAuth,
    /// `response.wrap_info`
    WrapInfo,
    /// `response.data` of a LIST answer on an eliding device.
    ElidedData,
    /// Every string below is hashed.
    Secret,
    /// A token or accessor: hashed when it is a non-empty string.
    Token,
    /// Written as it is.
    Plain,
}

/// The entry (or a value in it) as one device writes it.
pub(crate) struct View<'a> {
    v: &'a Value,
    pos: Pos,
    dev: &'a Device,
    entry: &'a Entry,
}

impl<'a> View<'a> {
    pub(crate) fn new(dev: &'a Device, entry: &'a Entry) -> View<'a> {
        View {
            v: &entry.value,
            pos: Pos::Root,
            dev,
            entry,
        }
    }

    fn at(&self, v: &'a Value, pos: Pos) -> View<'a> {
        View {
            v,
            pos,
            dev: self.dev,
            entry: self.entry,
        }
    }

    /// The position of `key`'s value inside an object at `self.pos`.
    fn child(&self, key: &str) -> Pos {
        let d = self.dev;
        let hash = !d.log_raw;
        let accessor = if hash && d.hmac_accessor {
            Pos::Token
        } else {
            Pos::Plain
        };
        let token = if hash { Pos::Token } else { Pos::Plain };
        let secret = if hash { Pos::Secret } else { Pos::Plain };
        match (self.pos, key) {
            (Pos::Root, "auth") => Pos::Auth,
            (Pos::Root, "request") => Pos::Request,
            (Pos::Root, "response") => Pos::Response,
            (Pos::Auth | Pos::ResponseAuth, "client_token") => token,
            (Pos::Auth | Pos::ResponseAuth, "accessor") => accessor,
            (Pos::Request, "client_token") => token,
            (Pos::Request, "client_token_accessor") => accessor,
            (Pos::Request, "data") => secret,
            (Pos::Request, "headers") => Pos::Headers,
            (Pos::Headers, name) if hash && self.entry.hmac_headers.iter().any(|h| h == name) => {
                Pos::Secret
            }
            (Pos::Response, "data") if d.elide_list_responses && self.entry.list => Pos::ElidedData,
            (Pos::Response, "data") => secret,
            (Pos::Response, "auth") => Pos::ResponseAuth,
            (Pos::Response, "wrap_info") => Pos::WrapInfo,
            (Pos::WrapInfo, "token") => token,
            (Pos::WrapInfo, "accessor" | "wrapped_accessor") => accessor,
            (Pos::ElidedData, _) => secret,
            (Pos::Secret, _) => Pos::Secret,
            _ => Pos::Plain,
        }
    }
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.v {
            Value::String(x)
                if self.pos == Pos::Secret || (self.pos == Pos::Token && !x.is_empty()) =>
            {
                let h = self.dev.hash_bytes(x);
                s.serialize_str(std::str::from_utf8(&h).expect("ascii"))
            }
            Value::Array(a) => {
                let inner = if self.pos == Pos::Secret {
                    Pos::Secret
                } else {
                    Pos::Plain
                };
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(&self.at(x, inner))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, x) in m {
                    if self.pos == Pos::ElidedData && k == "keys" {
                        if let Value::Array(keys) = x {
                            map.serialize_entry(k, &keys.len())?;
                            continue;
                        }
                    }
                    map.serialize_entry(k, &self.at(x, self.child(k)))?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}
