//! Paths declared as data, and the [`Backend`] trait core talks to.
//!
//! An engine lists its [`Path`]s (a regex over the path below the mount,
//! typed fields, operations mapped to handler functions, an optional existence
//! check, help) and wraps them in a [`Framework`], which implements
//! [`Backend`]: it routes a request to the first matching path, merges regex
//! captures into the request data, validates fields, answers 405 for an
//! operation the path lacks, and warns about parameters the path ignores.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use regex::Regex;
use serde_json::Value;

use crate::field::{Field, FieldData, FieldType};
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::storage::Storage;

pub type HandlerResult = Result<Option<Response>, LogicalError>;
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A path handler: a plain function (or non-capturing closure) over the engine state.
pub type Handler<B> = for<'a> fn(&'a B, Ctx<'a>) -> BoxFut<'a, HandlerResult>;
/// Answers "does the object this write targets exist?" (create vs update).
pub type ExistenceCheck<B> = for<'a> fn(&'a B, Ctx<'a>) -> BoxFut<'a, Result<bool, LogicalError>>;
/// An engine's [`Backend::periodic`] work.
pub type PeriodicFn<B> = for<'a> fn(&'a B, &'a dyn Storage) -> BoxFut<'a, Result<(), LogicalError>>;
/// An engine's [`Backend::cleanup`] hook.
pub type CleanupFn<B> = for<'a> fn(&'a B) -> BoxFut<'a, ()>;
/// An engine's [`Backend::invalidate`] hook.
pub type InvalidateFn<B> = for<'a> fn(&'a B, &'a str) -> BoxFut<'a, ()>;

/// What a handler receives.
pub struct Ctx<'a> {
    pub req: &'a Request,
    pub storage: &'a dyn Storage,
    pub data: FieldData,
}

/// Paths with special treatment, as patterns (`*` suffix means prefix match).
#[derive(Debug, Clone, Default)]
pub struct SpecialPaths {
    /// Need `sudo` in addition to the operation's capability.
    pub root: Vec<String>,
    /// Read and listed without a token (CA certificates, CRLs, OCSP GET).
    /// Any other operation on such a path still needs a token and passes
    /// the ACL, unless the path is also in `unauthenticated_writes`.
    pub unauthenticated: Vec<String>,
    /// Writes served without a token (login paths, OCSP POST, the raft
    /// bootstrap challenge): each one must be declared here explicitly.
    pub unauthenticated_writes: Vec<String>,
    /// Answered from local state even while the cluster has no leader.
    pub available_without_leader: Vec<String>,
    /// Side effects outside storage: always forwarded to the active node.
    pub forward_on_standby: Vec<String>,
}

/// Does `path` match any of the special-path patterns? A trailing `*`
/// matches any suffix; a `+` segment matches exactly one path segment
/// (`issuer/+/pem`), as in Vault.
pub fn matches_special(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| matches_pattern(p, path))
}

/// Special-path patterns compiled once (per mount, when its route is
/// built): exact paths in a set, plain prefixes in a list, and only the
/// patterns with `+` segments walked segment by segment. Same answers as
/// [`matches_special`].
#[derive(Debug, Clone, Default)]
pub struct PathMatcher {
    exact: std::collections::HashSet<String>,
    prefixes: Vec<String>,
    segmented: Vec<String>,
}

impl PathMatcher {
    pub fn new(patterns: &[String]) -> PathMatcher {
        let mut m = PathMatcher::default();
        for p in patterns {
            if p.contains('+') {
                m.segmented.push(p.clone());
            } else if let Some(prefix) = p.strip_suffix('*') {
                m.prefixes.push(prefix.to_string());
            } else {
                m.exact.insert(p.trim_end_matches('/').to_string());
            }
        }
        m
    }

    pub fn matches(&self, path: &str) -> bool {
        self.exact.contains(path.trim_end_matches('/'))
            || self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
            || self.segmented.iter().any(|p| matches_pattern(p, path))
    }
}

/// A backend's [`SpecialPaths`], compiled once per mount.
#[derive(Debug, Clone, Default)]
pub struct SpecialMatchers {
    pub root: PathMatcher,
    pub unauthenticated: PathMatcher,
    pub unauthenticated_writes: PathMatcher,
    pub available_without_leader: PathMatcher,
    pub forward_on_standby: PathMatcher,
}

impl SpecialMatchers {
    pub fn new(s: &SpecialPaths) -> SpecialMatchers {
        SpecialMatchers {
            root: PathMatcher::new(&s.root),
            unauthenticated: PathMatcher::new(&s.unauthenticated),
            unauthenticated_writes: PathMatcher::new(&s.unauthenticated_writes),
            available_without_leader: PathMatcher::new(&s.available_without_leader),
            forward_on_standby: PathMatcher::new(&s.forward_on_standby),
        }
    }

    /// See [`SpecialPaths::is_unauthenticated`].
    pub fn is_unauthenticated(&self, op: Operation, path: &str) -> bool {
        match op {
            Operation::Read | Operation::List => {
                self.unauthenticated.matches(path) || self.unauthenticated_writes.matches(path)
            }
            _ => self.unauthenticated_writes.matches(path),
        }
    }
}

fn matches_pattern(pattern: &str, path: &str) -> bool {
    let (pattern, prefix) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern.trim_end_matches('/'), false),
    };
    let path = if prefix {
        path
    } else {
        path.trim_end_matches('/')
    };
    if !pattern.contains('+') {
        return if prefix {
            path.starts_with(pattern)
        } else {
            pattern == path
        };
    }
    let mut pat = pattern.split('/').peekable();
    let mut segs = path.split('/').peekable();
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return true,
            (None, Some(_)) => return false,
            (Some(p), None) => return prefix && p.is_empty() && pat.peek().is_none(),
            (Some(p), Some(s)) => {
                let last = pat.peek().is_none();
                if p == "+" {
                    if s.is_empty() {
                        return false;
                    }
                } else if last && prefix {
                    return s.starts_with(p);
                } else if p != s {
                    return false;
                }
                if last {
                    return if prefix { true } else { segs.peek().is_none() };
                }
            }
        }
    }
}

impl SpecialPaths {
    /// May `op` on `path` (relative to the mount) be served without a token?
    /// Reads and lists of an `unauthenticated` path, and any operation on an
    /// `unauthenticated_writes` path; everything else needs a token.
    pub fn is_unauthenticated(&self, op: Operation, path: &str) -> bool {
        match op {
            Operation::Read | Operation::List => {
                matches_special(&self.unauthenticated, path)
                    || matches_special(&self.unauthenticated_writes, path)
            }
            _ => matches_special(&self.unauthenticated_writes, path),
        }
    }
}

/// What core needs from every mounted engine.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The engine type as shown in `sys/mounts` (`kv`, `pki`, ...).
    fn backend_type(&self) -> &str;
    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths::default()
    }
    async fn handle(&self, req: &Request, storage: &dyn Storage) -> HandlerResult;
    /// `Some(exists)` when the target path declares an existence check.
    async fn existence(
        &self,
        req: &Request,
        storage: &dyn Storage,
    ) -> Result<Option<bool>, LogicalError>;
    /// Called on every node after a replicated write under this mount is
    /// applied (`""`: anything may have changed, e.g. a snapshot restore).
    async fn invalidate(&self, _key: &str) {}
    /// Background work, called about once a minute on the active node only
    /// (one call at a time per mount): rebuilds, expiry, scheduled tidies.
    /// Its writes go through the same storage as a request's.
    async fn periodic(&self, _storage: &dyn Storage) -> Result<(), LogicalError> {
        Ok(())
    }
    /// Runs on the active node once the backend is built or the node
    /// becomes active (unseal, mount, tune): migrations, resumable setup.
    /// Must be idempotent; a failure is logged and retried next time.
    async fn initialize(&self, _storage: &dyn Storage) -> Result<(), LogicalError> {
        Ok(())
    }
    /// Called when the mount is disabled and when the node seals: close
    /// connections, stop background work, drop caches. The backend is not
    /// used afterwards (an unseal builds a new one).
    async fn cleanup(&self) {}
    /// The alias a login request is for (a username, a role id), or
    /// `None` when the request is not a login. Core keys user lockout by
    /// it (Vault's alias lookahead).
    fn login_alias(&self, _req: &Request) -> Option<String> {
        None
    }
    /// Help text for `path` (below the mount) as requested at
    /// `request_path` (the full path the client asked about).
    fn help(&self, _path: &str, _request_path: &str) -> Option<String> {
        None
    }
    /// Whether writes to `path` take their body as bytes, not JSON.
    fn takes_raw_body(&self, _path: &str) -> bool {
        false
    }
    /// The declared properties of `op` on `path` (below the mount).
    fn operation_props(&self, _path: &str, _op: Operation) -> Option<OperationProps> {
        None
    }
    /// Every declared path as data (see [`PathSchema`]).
    fn schema(&self) -> Vec<PathSchema> {
        Vec::new()
    }
}

/// Properties of one operation on one path, declared as data (for routing
/// in a cluster, `path-help`, and the OpenAPI document later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationProps {
    /// One line: what the operation does.
    pub summary: &'static str,
    /// It has side effects outside storage (it calls other systems, or
    /// revokes through backends): a standby forwards it to the active node
    /// before running anything.
    pub forward_on_standby: bool,
    /// Answered from this node's state even while the cluster has no
    /// leader (no read index is awaited).
    pub available_without_leader: bool,
}

/// A kind of leased secret an engine hands out (database credentials, a
/// certificate with `generate_lease`): what to do when its lease is
/// renewed or revoked. Responses carry it with [`crate::Secret::leased`].
pub struct SecretType<B> {
    pub name: &'static str,
    /// `None`: leases of this type cannot be renewed (400).
    pub renew: Option<Handler<B>>,
    pub revoke: Handler<B>,
}

/// A field of a path as data: what `path-help`, the OpenAPI document or a
/// backend in another process needs to know of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub description: String,
    pub default: Option<Value>,
    pub required: bool,
    pub allowed: Vec<String>,
    pub sensitive: bool,
}

/// One operation of a path as data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationSchema {
    pub operation: Operation,
    pub summary: String,
    pub forward_on_standby: bool,
    pub available_without_leader: bool,
}

/// A declared path as plain serde data (no handlers).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PathSchema {
    /// The regex over the path below the mount.
    pub pattern: String,
    pub help: String,
    pub fields: Vec<FieldSchema>,
    pub operations: Vec<OperationSchema>,
    pub existence_check: bool,
    pub raw_body: bool,
    pub arbitrary_fields: bool,
}

impl<B> Path<B> {
    /// This path as data.
    pub fn schema(&self) -> PathSchema {
        PathSchema {
            pattern: self.pattern.to_string(),
            help: self.help.to_string(),
            fields: self
                .fields
                .iter()
                .map(|f| FieldSchema {
                    name: f.name.to_string(),
                    ty: f.ty,
                    description: f.description.to_string(),
                    default: f.default.clone(),
                    required: f.required,
                    allowed: f.allowed.iter().map(|s| s.to_string()).collect(),
                    sensitive: f.sensitive,
                })
                .collect(),
            operations: self
                .operations
                .iter()
                .map(|(op, _)| {
                    let p = self
                        .props
                        .iter()
                        .find(|(o, _)| o == op)
                        .map(|(_, p)| *p)
                        .unwrap_or_default();
                    OperationSchema {
                        operation: *op,
                        summary: p.summary.to_string(),
                        forward_on_standby: p.forward_on_standby,
                        available_without_leader: p.available_without_leader,
                    }
                })
                .collect(),
            existence_check: self.existence_check.is_some(),
            raw_body: self.raw_body,
            arbitrary_fields: self.arbitrary_fields,
        }
    }
}

/// One declared path.
pub struct Path<B> {
    pub pattern: &'static str,
    pub fields: Vec<Field>,
    pub operations: Vec<(Operation, Handler<B>)>,
    pub existence_check: Option<ExistenceCheck<B>>,
    pub help: &'static str,
    /// Accept any parameter without a warning (KV v1 stores arbitrary data).
    pub arbitrary_fields: bool,
    /// Writes take the body as bytes (`Request::raw_body`), not as JSON.
    pub raw_body: bool,
    /// Per-operation properties ([`OperationProps`]).
    pub props: Vec<(Operation, OperationProps)>,
}

impl<B> Path<B> {
    pub fn new(pattern: &'static str) -> Self {
        Path {
            pattern,
            fields: Vec::new(),
            operations: Vec::new(),
            existence_check: None,
            help: "",
            arbitrary_fields: false,
            raw_body: false,
            props: Vec::new(),
        }
    }
    /// Declares the properties of one of the path's operations.
    pub fn props(mut self, op: Operation, props: OperationProps) -> Self {
        self.props.push((op, props));
        self
    }
    pub fn field(mut self, f: Field) -> Self {
        self.fields.push(f);
        self
    }
    pub fn op(mut self, op: Operation, h: Handler<B>) -> Self {
        self.operations.push((op, h));
        self
    }
    pub fn existence(mut self, e: ExistenceCheck<B>) -> Self {
        self.existence_check = Some(e);
        self
    }
    pub fn help(mut self, h: &'static str) -> Self {
        self.help = h;
        self
    }
    pub fn arbitrary_fields(mut self) -> Self {
        self.arbitrary_fields = true;
        self
    }
    /// Writes to this path take a body that is not JSON (an archive, DER).
    pub fn raw_body(mut self) -> Self {
        self.raw_body = true;
        self
    }
    fn handler(&self, op: Operation) -> Option<Handler<B>> {
        let find = |o: Operation| {
            self.operations
                .iter()
                .find(|(x, _)| *x == o)
                .map(|(_, h)| *h)
        };
        match op {
            // A write to a path without a create handler is an update, as in Vault.
            Operation::Create => find(Operation::Create).or_else(|| find(Operation::Update)),
            other => find(other),
        }
    }
}

/// A [`Backend`] assembled from declared paths over engine state `B`.
pub struct Framework<B> {
    pub inner: B,
    backend_type: String,
    paths: Vec<(Regex, Path<B>)>,
    special: SpecialPaths,
    periodic: Option<PeriodicFn<B>>,
    initialize: Option<PeriodicFn<B>>,
    invalidate: Option<InvalidateFn<B>>,
    secrets: Vec<SecretType<B>>,
    auth_renew: Option<Handler<B>>,
    cleanup: Option<CleanupFn<B>>,
    login_alias: Option<fn(&Request) -> Option<String>>,
}

impl<B: Send + Sync + 'static> Framework<B> {
    pub fn new(backend_type: &str, inner: B, paths: Vec<Path<B>>) -> Self {
        let paths = paths
            .into_iter()
            .map(|p| {
                let re = Regex::new(&format!("^(?:{})$", p.pattern))
                    .unwrap_or_else(|e| panic!("invalid path pattern {:?}: {e}", p.pattern));
                (re, p)
            })
            .collect();
        Framework {
            inner,
            backend_type: backend_type.to_string(),
            paths,
            special: SpecialPaths::default(),
            periodic: None,
            initialize: None,
            invalidate: None,
            secrets: Vec::new(),
            auth_renew: None,
            login_alias: None,
            cleanup: None,
        }
    }

    /// Teardown on unmount and seal (see [`Backend::cleanup`]).
    pub fn with_cleanup(mut self, f: CleanupFn<B>) -> Self {
        self.cleanup = Some(f);
        self
    }

    /// Declares a leased secret type and its renew/revoke callbacks.
    pub fn with_secret(mut self, s: SecretType<B>) -> Self {
        self.secrets.push(s);
        self
    }

    /// The auth method's renew callback: called when a token its login
    /// created is renewed (`Request::auth` holds the login); an error
    /// refuses the renewal (a deleted user, a changed role).
    pub fn with_auth_renew(mut self, h: Handler<B>) -> Self {
        self.auth_renew = Some(h);
        self
    }

    /// A lease callback (renew or revoke of a secret, renew of a login).
    async fn lease_callback(&self, req: &Request, storage: &dyn Storage) -> HandlerResult {
        let ctx = || Ctx {
            req,
            storage,
            data: FieldData::new(serde_json::Map::new(), &[]),
        };
        if let Some(secret) = &req.secret {
            let kind = secret.secret_type().unwrap_or_default();
            let t = self
                .secrets
                .iter()
                .find(|t| t.name == kind)
                .ok_or_else(|| {
                    LogicalError::invalid(format!(
                        "secret type {kind:?} is unknown to the {} engine",
                        self.backend_type
                    ))
                })?;
            return match req.operation {
                Operation::Renew => match t.renew {
                    Some(h) => h(&self.inner, ctx()).await,
                    None => Err(LogicalError::invalid("lease is not renewable")),
                },
                _ => (t.revoke)(&self.inner, ctx()).await,
            };
        }
        match (req.operation, &req.auth, self.auth_renew) {
            (Operation::Renew, Some(_), Some(h)) => h(&self.inner, ctx()).await,
            (Operation::Renew, Some(_), None) => Err(LogicalError::invalid(
                "this auth method does not support token renewal",
            )),
            _ => Err(LogicalError::invalid(
                "a lease callback needs the secret or login it is about",
            )),
        }
    }

    /// Background work for the active node (see [`Backend::periodic`]).
    /// Setup on the active node (see [`Backend::initialize`]).
    /// How to find the alias (username, role id) of a login request, for
    /// user lockout (see [`Backend::login_alias`]).
    pub fn with_login_alias(mut self, f: fn(&Request) -> Option<String>) -> Self {
        self.login_alias = Some(f);
        self
    }

    pub fn with_initialize(mut self, f: PeriodicFn<B>) -> Self {
        self.initialize = Some(f);
        self
    }

    pub fn with_periodic(mut self, f: PeriodicFn<B>) -> Self {
        self.periodic = Some(f);
        self
    }

    /// Drops node-local caches when replicated storage changes (see
    /// [`Backend::invalidate`]).
    pub fn with_invalidate(mut self, f: InvalidateFn<B>) -> Self {
        self.invalidate = Some(f);
        self
    }

    pub fn with_special_paths(mut self, s: SpecialPaths) -> Self {
        self.special = s;
        self
    }

    /// Problems in the path declarations: every capture group must be a
    /// declared field, help must be present, every path needs an operation.
    pub fn lint(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (re, p) in &self.paths {
            if p.help.trim().is_empty() {
                problems.push(format!("path {:?} has no help text", p.pattern));
            }
            if p.operations.is_empty() {
                problems.push(format!("path {:?} declares no operation", p.pattern));
            }
            for name in re.capture_names().flatten() {
                if !p.fields.iter().any(|f| f.name == name) {
                    problems.push(format!(
                        "path {:?}: capture {name:?} is not a declared field",
                        p.pattern
                    ));
                }
            }
            for f in &p.fields {
                if f.description.trim().is_empty() {
                    problems.push(format!(
                        "path {:?}: field {:?} has no description",
                        p.pattern, f.name
                    ));
                }
            }
        }
        problems
    }

    fn route<'a>(&'a self, req: &Request) -> Result<(&'a Path<B>, FieldData), LogicalError> {
        for (re, p) in &self.paths {
            if let Some(caps) = re.captures(&req.path) {
                let mut data = req.data.clone();
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        data.insert(name.to_string(), Value::String(m.as_str().to_string()));
                    }
                }
                return Ok((p, FieldData::new(data, &p.fields)));
            }
        }
        Err(LogicalError::UnsupportedPath(format!(
            "unsupported path: {}{}",
            req.mount_point, req.path
        )))
    }
}

#[async_trait]
impl<B: Send + Sync + 'static> Backend for Framework<B> {
    fn backend_type(&self) -> &str {
        &self.backend_type
    }

    fn special_paths(&self) -> SpecialPaths {
        self.special.clone()
    }

    fn takes_raw_body(&self, path: &str) -> bool {
        self.paths
            .iter()
            .find(|(re, _)| re.is_match(path))
            .is_some_and(|(_, p)| p.raw_body)
    }

    fn schema(&self) -> Vec<PathSchema> {
        self.paths.iter().map(|(_, p)| p.schema()).collect()
    }

    fn operation_props(&self, path: &str, op: Operation) -> Option<OperationProps> {
        let (_, p) = self.paths.iter().find(|(re, _)| re.is_match(path))?;
        let find = |o: Operation| p.props.iter().find(|(x, _)| *x == o).map(|(_, v)| *v);
        match op {
            Operation::Create => find(Operation::Create).or_else(|| find(Operation::Update)),
            other => find(other),
        }
    }

    async fn handle(&self, req: &Request, storage: &dyn Storage) -> HandlerResult {
        if matches!(req.operation, Operation::Renew | Operation::Revoke) {
            return self.lease_callback(req, storage).await;
        }
        let (path, data) = self.route(req)?;
        let handler = path
            .handler(req.operation)
            .ok_or(LogicalError::UnsupportedOperation)?;
        data.validate()?;
        let unknown = if path.arbitrary_fields
            || req.operation == Operation::Read
            || req.operation == Operation::List
        {
            vec![]
        } else {
            data.unknown_fields()
        };
        let resp = handler(&self.inner, Ctx { req, storage, data }).await?;
        if unknown.is_empty() {
            return Ok(resp);
        }
        let warning = format!("Endpoint ignored these unrecognized parameters: {unknown:?}");
        Ok(Some(resp.unwrap_or_default().with_warning(warning)))
    }

    async fn existence(
        &self,
        req: &Request,
        storage: &dyn Storage,
    ) -> Result<Option<bool>, LogicalError> {
        let (path, data) = match self.route(req) {
            Ok(x) => x,
            Err(_) => return Ok(None),
        };
        match path.existence_check {
            None => Ok(None),
            Some(check) => check(&self.inner, Ctx { req, storage, data })
                .await
                .map(Some),
        }
    }

    async fn invalidate(&self, key: &str) {
        if let Some(f) = self.invalidate {
            f(&self.inner, key).await
        }
    }

    fn login_alias(&self, req: &Request) -> Option<String> {
        self.login_alias.and_then(|f| f(req))
    }

    async fn cleanup(&self) {
        if let Some(f) = self.cleanup {
            f(&self.inner).await
        }
    }

    async fn initialize(&self, storage: &dyn Storage) -> Result<(), LogicalError> {
        match self.initialize {
            Some(f) => f(&self.inner, storage).await,
            None => Ok(()),
        }
    }

    async fn periodic(&self, storage: &dyn Storage) -> Result<(), LogicalError> {
        match self.periodic {
            Some(f) => f(&self.inner, storage).await,
            None => Ok(()),
        }
    }

    fn help(&self, path: &str, request_path: &str) -> Option<String> {
        let Some((re, p)) = self.paths.iter().find(|(re, _)| re.is_match(path)) else {
            // No route matches: an overview of the engine's paths.
            let mut out = format!(
                "## DESCRIPTION\n\nThe {} backend.\n\n## PATHS\n\nThe following paths are supported by this backend. To view help for any of\nthe paths below, use the help command with any route matching the path\npattern.\n",
                self.backend_type
            );
            for (re, p) in &self.paths {
                out.push_str(&format!("\n    {}\n        {}\n", re.as_str(), p.help));
            }
            return Some(out);
        };
        let mut out = format!(
            "Request:        {request_path}\nMatching Route: {}\n\n{}\n",
            re.as_str(),
            p.help
        );
        if !p.props.is_empty() {
            out.push_str("\n## OPERATIONS\n");
            for (op, props) in &p.props {
                out.push_str(&format!("\n    {}: {}\n", op.capability(), props.summary));
            }
        }
        if !p.fields.is_empty() {
            out.push_str("\n## PARAMETERS\n");
            let mut fields: Vec<&Field> = p.fields.iter().collect();
            fields.sort_by_key(|f| f.name);
            for f in fields {
                out.push_str(&format!(
                    "\n    {} ({})\n        {}\n",
                    f.name,
                    f.ty.name(),
                    f.description
                ));
                if !f.allowed.is_empty() {
                    out.push_str(&format!("        One of: {}\n", f.allowed.join(", ")));
                }
                if let Some(d) = &f.default {
                    out.push_str(&format!("        Default: {d}\n"));
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn special_path_wildcards() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pats = p(&[
            "cert/*",
            "ca",
            "issuer/+/pem",
            "issuer/+/crl*",
            "ocsp/*",
            "ocsp",
        ]);
        for ok in [
            "cert/ca",
            "cert/01:02",
            "ca",
            "ca/",
            "issuer/default/pem",
            "issuer/x/crl",
            "issuer/x/crl/delta/der",
            "ocsp",
            "ocsp/MEIw+/a==",
        ] {
            assert!(matches_special(&pats, ok), "{ok} should match");
        }
        for no in [
            "cax",
            "issuer/pem",
            "issuer/a/b/pem",
            "issuer//pem",
            "issuer/x/json",
            "roles/x",
            "issuers/generate/root",
        ] {
            assert!(!matches_special(&pats, no), "{no} should not match");
        }
    }

    use super::*;
    use crate::field::FieldType;
    use crate::testing::InmemStorage;
    use serde_json::json;

    struct Echo;
    impl Echo {
        async fn read(&self, c: Ctx<'_>) -> HandlerResult {
            let name = c.data.get_str("name")?.unwrap_or_default();
            Ok(Some(Response::json(json!({ "name": name }))))
        }
    }

    fn fw() -> Framework<Echo> {
        Framework::new(
            "echo",
            Echo,
            vec![Path::new("item/(?P<name>.+)")
                .field(Field::new("name", FieldType::String, "Item name"))
                .op(Operation::Read, |b: &Echo, c| Box::pin(b.read(c)))
                .op(Operation::Update, |b: &Echo, c| Box::pin(b.read(c)))
                .help("Echo an item")],
        )
    }

    #[tokio::test]
    async fn routes_captures_and_rejects_unknown_ops() {
        let f = fw();
        assert!(f.lint().is_empty(), "{:?}", f.lint());
        let s = InmemStorage::new();
        let r = f
            .handle(&Request::new(Operation::Read, "item/a b"), &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["name"], "a b");
        let e = f
            .handle(&Request::new(Operation::Delete, "item/x"), &s)
            .await
            .unwrap_err();
        assert_eq!(e, LogicalError::UnsupportedOperation);
        let e = f
            .handle(&Request::new(Operation::Read, "nope"), &s)
            .await
            .unwrap_err();
        assert!(matches!(e, LogicalError::UnsupportedPath(_)));
        // Create falls back to the update handler, unknown fields warn.
        let req = Request::new(Operation::Create, "item/z").with_data(json!({"bogus": 1}));
        let r = f.handle(&req, &s).await.unwrap().unwrap();
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn unauthenticated_paths_are_read_only_unless_declared() {
        let s = SpecialPaths {
            unauthenticated: vec!["issuer/+/pem".into(), "ocsp/*".into()],
            unauthenticated_writes: vec!["ocsp".into()],
            ..Default::default()
        };
        assert!(s.is_unauthenticated(Operation::Read, "issuer/default/pem"));
        for op in [
            Operation::Create,
            Operation::Update,
            Operation::Patch,
            Operation::Delete,
        ] {
            assert!(!s.is_unauthenticated(op, "issuer/default/pem"), "{op:?}");
            assert!(!s.is_unauthenticated(op, "ocsp/abc"), "{op:?}");
        }
        assert!(s.is_unauthenticated(Operation::Update, "ocsp"));
        // The compiled form answers the same.
        let m = SpecialMatchers::new(&s);
        for op in [Operation::Read, Operation::Update, Operation::Delete] {
            for p in ["issuer/default/pem", "ocsp", "ocsp/abc", "roles/x"] {
                assert_eq!(
                    m.is_unauthenticated(op, p),
                    s.is_unauthenticated(op, p),
                    "{op:?} {p}"
                );
            }
        }
        assert!(s.is_unauthenticated(Operation::Read, "ocsp"));
        assert!(!s.is_unauthenticated(Operation::Read, "roles/x"));
    }

    #[test]
    fn operation_props_are_data_and_show_in_help() {
        let f = Framework::new(
            "echo",
            Echo,
            vec![Path::new("item/(?P<name>.+)")
                .field(Field::new("name", FieldType::String, "Item name"))
                .op(Operation::Read, |b: &Echo, c| Box::pin(b.read(c)))
                .op(Operation::Update, |b: &Echo, c| Box::pin(b.read(c)))
                .props(
                    Operation::Update,
                    OperationProps {
                        summary: "Calls the outside world.",
                        forward_on_standby: true,
                        available_without_leader: false,
                    },
                )
                .help("Echo an item")],
        );
        let p = f.operation_props("item/x", Operation::Create).unwrap();
        assert!(p.forward_on_standby, "create falls back to update's props");
        assert_eq!(f.operation_props("item/x", Operation::Read), None);
        assert_eq!(f.operation_props("nope", Operation::Update), None);
        let h = f.help("item/x", "echo/item/x").unwrap();
        assert!(h.contains("update: Calls the outside world."), "{h}");
    }

    #[test]
    fn the_path_schema_is_plain_serde_data() {
        let f = fw();
        let schema = f.schema();
        assert_eq!(schema.len(), 1);
        assert_eq!(schema[0].pattern, "item/(?P<name>.+)");
        assert_eq!(schema[0].fields[0].name, "name");
        assert_eq!(schema[0].operations.len(), 2);
        let json = serde_json::to_string(&schema).unwrap();
        let back: Vec<PathSchema> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, schema);
        assert!(json.contains("\"type\":\"string\""), "{json}");
    }

    #[test]
    fn compiled_matchers_agree_with_the_patterns() {
        let pats: Vec<String> = [
            "cert/*",
            "ca",
            "ca_chain/",
            "issuer/+/pem",
            "issuer/+/crl*",
            "ocsp/*",
            "ocsp",
        ]
        .map(String::from)
        .to_vec();
        let m = PathMatcher::new(&pats);
        for p in [
            "cert/ca",
            "ca",
            "ca/",
            "ca_chain",
            "cax",
            "issuer/x/pem",
            "issuer/x/crl/delta",
            "issuer/pem",
            "issuer//pem",
            "ocsp",
            "ocsp/abc",
            "roles/x",
            "",
            "issuer/a/b/pem",
        ] {
            assert_eq!(m.matches(p), matches_special(&pats, p), "{p}");
        }
    }

    #[test]
    fn special_path_patterns() {
        let p = vec!["login/*".to_string(), "crl".to_string()];
        assert!(matches_special(&p, "login/bob"));
        assert!(matches_special(&p, "crl"));
        assert!(!matches_special(&p, "crl/pem"));
    }
}
