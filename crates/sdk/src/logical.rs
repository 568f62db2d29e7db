//! Requests, responses and errors exchanged between core and backends.

//!
//! Every type here is plain serde data, so that a backend can run behind the
//! same [`Backend`](crate::Backend) trait in another process (external
//! plugins): nothing a backend is given or returns holds a handle into the
//! server.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The logical operation of a request, derived from the HTTP method, or
/// one of the lease callbacks core makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    /// A write to a path that does not exist yet (decided by the existence check).
    Create,
    /// A write to an existing path, or to a path without an existence check.
    Update,
    Delete,
    List,
    Patch,
    /// `path-help` style requests.
    Help,
    /// Lease callback: extend the secret in `Request::secret` (or the
    /// login in `Request::auth`). Never comes from a client.
    Renew,
    /// Lease callback: revoke the secret in `Request::secret` (expired,
    /// revoked by an operator, or its token revoked). Never comes from a
    /// client.
    Revoke,
}

impl Operation {
    /// The ACL capability this operation needs.
    pub fn capability(&self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Patch => "patch",
            Operation::Help => "read",
            Operation::Renew | Operation::Revoke => "update",
        }
    }
}

/// The client connection a request came on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub remote_addr: std::net::IpAddr,
    pub remote_port: u16,
    /// DER certificates the client presented over TLS, leaf first; empty
    /// without TLS or without a client certificate.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// A request as a backend sees it. `path` is relative to the mount point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    pub path: String,
    /// The mount point the request was routed through, with a trailing slash.
    pub mount_point: String,
    /// JSON body (writes) or query parameters (reads), as an object.
    pub data: Map<String, Value>,
    /// The calling token's id; core fills it, backends rarely need it.
    pub client_token: Option<String>,
    /// Accessor of the calling token.
    pub client_token_accessor: Option<String>,
    /// Display name of the calling token (used in metadata).
    pub display_name: String,
    /// Lower-cased request headers that backends may need (e.g. content-type).
    pub headers: HashMap<String, String>,
    /// The client connection the request came on (`None` for requests
    /// core makes itself, and for requests a standby forwarded).
    pub connection: Option<Connection>,
    /// The request was forwarded by a standby to this (active) node.
    pub forwarded: bool,
    /// Type and accessor of the mount the request was routed to (core
    /// fills them).
    pub mount_type: String,
    pub mount_accessor: String,
    /// The undecoded body of a write, kept only for paths that declare
    /// [`Path::raw_body`](crate::framework::Path::raw_body) (snapshot
    /// restore, OCSP DER); core drops it for every other path.
    pub raw_body: Option<bytes::Bytes>,
    /// Why the body is not a JSON object, when it is not: core refuses the
    /// request with this message (400) unless the path takes a raw body.
    pub body_error: Option<String>,
    /// The lease a [`Operation::Renew`] / [`Operation::Revoke`] callback is
    /// about, as the backend returned it (with its `internal_data`), plus
    /// the lease id, issue time and requested increment.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The login an auth-renew callback is about (the token's policies,
    /// metadata and `internal_data` as the login returned them).
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Seconds the answer is to be response-wrapped for
    /// (`X-Vault-Wrap-TTL`); 0: not wrapped.
    #[serde(default)]
    pub wrap_ttl: u64,
}

impl Request {
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: String::new(),
            operation,
            path: path.into(),
            mount_point: String::new(),
            data: Map::new(),
            client_token: None,
            client_token_accessor: None,
            display_name: String::new(),
            headers: HashMap::new(),
            connection: None,
            forwarded: false,
            mount_type: String::new(),
            mount_accessor: String::new(),
            raw_body: None,
            body_error: None,
            secret: None,
            auth: None,
            wrap_ttl: 0,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(m) = data {
            self.data = m;
        }
        self
    }
}

/// A secret returned by a backend: core attaches a lease to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secret {
    /// Lease duration in seconds; 0 means "the mount's default".
    pub ttl: u64,
    /// Upper bound in seconds; 0 means "the mount's max".
    pub max_ttl: u64,
    pub renewable: bool,
    /// When false, no lease is registered and no `lease_id` is returned; the
    /// TTL is only advisory (KV v1 answers this way).
    pub register_lease: bool,
    /// Data the backend wants back on renew/revoke. The framework keeps
    /// the secret's type under `secret_type` to route those callbacks.
    pub internal_data: Map<String, Value>,
    /// Set by core in renew/revoke callbacks: the lease's id,
    /// issue time (unix seconds) and the TTL extension asked for.
    pub lease_id: String,
    pub issue_time: i64,
    pub increment: u64,
}

impl Secret {
    /// A leased secret of a declared secret type (see
    /// [`Framework::with_secret`](crate::Framework::with_secret)): renew and
    /// revoke come back to that type's callbacks with `internal_data`.
    pub fn leased(secret_type: &str, ttl: u64, mut internal_data: Map<String, Value>) -> Secret {
        internal_data.insert("secret_type".into(), Value::from(secret_type));
        Secret {
            ttl,
            register_lease: true,
            internal_data,
            ..Default::default()
        }
    }

    /// The secret type stored in `internal_data` by [`Secret::leased`].
    pub fn secret_type(&self) -> Option<&str> {
        self.internal_data
            .get("secret_type")
            .and_then(Value::as_str)
    }
}

/// Who logged in, as the auth method knows them: core finds or creates
/// the identity entity of this alias (on the login's mount), or the
/// external group of a group alias.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Alias {
    /// The user's name at the method (username, role id, claim value).
    pub name: String,
    /// Facts about the login kept on the entity alias.
    pub metadata: HashMap<String, String>,
}

/// Authentication produced by a login path; core turns it into a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Auth {
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub metadata: HashMap<String, String>,
    pub display_name: String,
    pub ttl: u64,
    pub max_ttl: u64,
    pub period: u64,
    pub explicit_max_ttl: u64,
    pub num_uses: i64,
    pub renewable: bool,
    pub no_default_policy: bool,
    /// Filled by core after the token is created.
    pub client_token: String,
    pub accessor: String,
    pub orphan: bool,
    pub entity_id: String,
    pub token_type: String,
    /// CIDR blocks the token may be used from (empty: anywhere); core
    /// refuses the token from any other client address.
    pub bound_cidrs: Vec<String>,
    /// Data the login wants back on the auth-renew callback (never shown
    /// to the client).
    pub internal_data: Map<String, Value>,
    /// The identity alias of who logged in (`None`: no entity).
    pub alias: Option<Alias>,
    /// Groups the method says the user is in (external groups' aliases).
    pub group_aliases: Vec<Alias>,
    /// Filled by core: policies the token gets from its entity and groups.
    pub identity_policies: Vec<String>,
}

/// A non-JSON body (PEM, DER, CRLs): written to the client as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What a backend answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub secret: Option<Secret>,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    pub raw: Option<RawResponse>,
    /// HTTP status to use when there is a body (default 200; 204 when empty).
    pub status: Option<u16>,
}

impl Response {
    pub fn data(data: Map<String, Value>) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }

    /// Builds a response from a JSON object value (anything else gives no data).
    pub fn json(v: Value) -> Self {
        match v {
            Value::Object(m) => Response::data(m),
            _ => Response::default(),
        }
    }

    /// Vault's answer to a list: `{"keys": [...]}`.
    /// A login's answer: core turns `auth` into a token.
    pub fn login(auth: Auth) -> Self {
        Response {
            auth: Some(auth),
            ..Default::default()
        }
    }

    pub fn list(keys: Vec<String>) -> Self {
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Response::data(m)
    }

    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
}

/// Errors a request can end in. The HTTP layer maps each to one status code:
/// see `arca-http`'s `error.rs`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Serialize, Deserialize)]
pub enum LogicalError {
    /// 400: bad input. The message names the offending field.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400: credentials that do not match (a wrong password, an unknown
    /// secret id). Core counts it towards the login's user lockout.
    #[error("{0}")]
    InvalidCredentials(String),
    /// 403.
    #[error("permission denied")]
    PermissionDenied,
    /// 404 with an empty error list (Vault's answer to reading a missing key).
    #[error("not found")]
    NotFound,
    /// 404 with a message (no handler for the path).
    #[error("{0}")]
    UnsupportedPath(String),
    /// 405.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 503 sealed.
    #[error("Vault is sealed")]
    Sealed,
    /// The node cannot write (a standby): core forwards the request.
    #[error("cannot write to storage on a standby node")]
    ReadOnly,
    /// 412/400 style conflicts with a specific status.
    #[error("{message}")]
    Status { status: u16, message: String },
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl LogicalError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        LogicalError::InvalidRequest(msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        LogicalError::Internal(msg.to_string())
    }
}

impl From<crate::storage::StorageError> for LogicalError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::ReadOnly => LogicalError::ReadOnly,
            crate::storage::StorageError::Sealed => LogicalError::Sealed,
            other => LogicalError::Internal(other.to_string()),
        }
    }
}
