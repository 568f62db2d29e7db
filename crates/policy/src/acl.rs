//! Compiling policies into an [`Acl`] and evaluating requests against it.
//!
//! Invariants:
//! - Rules with the same pattern (from one policy or several) merge into one
//!   entry: capabilities are unioned, except that a `deny` anywhere leaves
//!   only `deny`; parameter constraints merge as Vault merges them (an empty
//!   value list wins for its parameter, other lists concatenate, required
//!   parameters union); for wrapping TTLs the lowest non-zero value wins.
//! - Exactly one merged entry decides a request: an exact pattern if one
//!   matches, otherwise the highest-priority matching glob/`+` pattern.
//!   Capabilities are never unioned across different patterns.
//! - Priority between matching non-exact patterns: later first wildcard
//!   (`+` or `*`) wins; then a pattern not ending in `*` wins; then fewer `+`
//!   segments; then the longer pattern; then the lexicographically greater.
//! - `list` requests (and [`Acl::capabilities`]) on `p/` first try the exact
//!   patterns `p/` and `p`, then the non-exact patterns against `p`, then
//!   against `p/` — so `path "secret/foo"` grants `list` on `secret/foo/`.
//! - No matching pattern, an empty capability set, or `deny` means denied.
//! - A policy named `root` makes the whole ACL the root ACL (everything,
//!   including sudo).
//! - Templated patterns (`{{...}}`) never reach an ACL through
//!   [`crate::parse`], which refuses them. A templated rule built by hand
//!   fails closed: a templated grant is dropped (grants nothing), and a
//!   templated `deny` makes the whole ACL deny every request but `help`,
//!   since the paths it was meant to deny cannot be known.
//! - Parameter constraints (`required_parameters`, `allowed_parameters`,
//!   `denied_parameters`) are checked, as in Vault's `AllowOperation`, for
//!   `read`, `create`, `update`, `patch` and `recover` — for a read, the
//!   request data is its query parameters — and not for `list`, `delete`,
//!   `help`, `renew`, `revoke` or `rollback`, whatever data those carry.
//!   Names match case-insensitively. Values match as in Vault 1.21 (globs
//!   for strings, per-element for lists and comma-separated strings), with
//!   one deliberate hardening: a `denied_parameters` value also catches the
//!   same scalar written as another JSON type (`"true"` for `true`, `"5"`
//!   for `5`, `5` for `"5"`), the way backends convert fields. Query
//!   parameters are always strings, so without this a typed deny would
//!   never apply to a read. `allowed_parameters` stays exact (only more is
//!   refused, never more granted).
//! - Evaluation cost does not grow with the number of rules: an exact-path
//!   hash lookup, a longest-prefix probe over the distinct prefix lengths,
//!   and a walk of a segment trie (literal child, `+` child, and the prefix
//!   globs ending at each level).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::capability::{Capabilities, Capability, Operation};
use crate::parse::{Permissions, Policy};
use crate::ROOT_POLICY;

/// The result of an authorization check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclDecision {
    /// The operation may proceed (subject to `sudo` on root-protected paths).
    pub allowed: bool,
    /// The deciding rule grants `sudo` (reported even when `allowed` is false).
    pub sudo: bool,
    /// The ACL is the root ACL.
    pub root: bool,
}

/// Everything about a request that the ACL looks at.
#[derive(Debug, Clone, Copy)]
pub struct AclRequest<'a> {
    /// Full request path without `/v1/` (a leading `/` is ignored).
    pub path: &'a str,
    pub operation: Operation,
    /// Request parameters (body, or query for reads).
    pub data: Option<&'a Map<String, Value>>,
    /// The response-wrapping TTL the client asked for, if any.
    pub wrap_ttl: Option<Duration>,
}

impl<'a> AclRequest<'a> {
    pub fn new(path: &'a str, operation: Operation) -> Self {
        AclRequest {
            path,
            operation,
            data: None,
            wrap_ttl: None,
        }
    }

    pub fn with_data(mut self, data: &'a Map<String, Value>) -> Self {
        self.data = Some(data);
        self
    }

    pub fn with_wrap_ttl(mut self, ttl: Duration) -> Self {
        self.wrap_ttl = Some(ttl);
        self
    }
}

/// A compiled set of policies.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Permissions>,
    /// Prefix (the pattern minus its trailing `*`) → permissions.
    prefix: HashMap<String, Permissions>,
    /// The distinct lengths of `prefix` keys, longest first.
    prefix_lens: Vec<usize>,
    segment: Vec<SegmentRule>,
    /// Trie over the segments of `segment` patterns.
    segment_trie: SegmentNode,
}

/// One level of the segment trie. A pattern `a/+/b` ends at
/// `root.literal["a"].any.literal["b"]`; a prefix pattern `a/+/b*` is a
/// glob entry `("b", i)` of `root.literal["a"].any`.
#[derive(Debug, Clone, Default)]
struct SegmentNode {
    literal: HashMap<String, SegmentNode>,
    any: Option<Box<SegmentNode>>,
    /// The non-prefix pattern ending here.
    end: Option<usize>,
    /// Prefix patterns whose last segment (a literal prefix) is tested here.
    globs: Vec<(String, usize)>,
}

impl SegmentNode {
    fn insert(&mut self, rule: &SegmentRule, index: usize) {
        let mut node = self;
        let walk = if rule.is_prefix {
            rule.parts.len() - 1
        } else {
            rule.parts.len()
        };
        for part in &rule.parts[..walk] {
            node = match part {
                Some(lit) => node.literal.entry(lit.clone()).or_default(),
                None => node.any.get_or_insert_with(Box::default),
            };
        }
        if rule.is_prefix {
            let last = rule.parts[walk].clone().unwrap_or_default();
            node.globs.push((last, index));
        } else {
            node.end = Some(index);
        }
    }

    /// Calls `found` with every pattern matching `parts[depth..]`.
    fn search(&self, parts: &[&str], depth: usize, found: &mut impl FnMut(usize)) {
        let Some(seg) = parts.get(depth) else {
            if let Some(i) = self.end {
                found(i);
            }
            return;
        };
        for (lit, i) in &self.globs {
            if seg.starts_with(lit.as_str()) {
                found(*i);
            }
        }
        if let Some(child) = self.literal.get(*seg) {
            child.search(parts, depth + 1, found);
        }
        if let Some(child) = &self.any {
            child.search(parts, depth + 1, found);
        }
    }
}

/// A pattern containing at least one `+` segment.
#[derive(Debug, Clone)]
struct SegmentRule {
    /// The pattern without a trailing `*`.
    base: String,
    /// `None` for a `+` segment.
    parts: Vec<Option<String>>,
    is_prefix: bool,
    first_wildcard: usize,
    wildcards: usize,
    perms: Permissions,
}

/// Sort key of a matching non-exact pattern; the greatest wins.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Priority<'a> {
    first_wildcard: usize,
    not_prefix: bool,
    fewer_wildcards: Reverse<usize>,
    len: usize,
    text: &'a str,
}

impl SegmentRule {
    fn new(pattern: &str, perms: Permissions) -> SegmentRule {
        let (base, is_prefix) = match pattern.strip_suffix('*') {
            Some(base) => (base, true),
            None => (pattern, false),
        };
        let parts: Vec<Option<String>> = base
            .split('/')
            .map(|s| if s == "+" { None } else { Some(s.to_string()) })
            .collect();
        let mut offset = 0;
        let mut first_wildcard = base.len();
        for (i, part) in parts.iter().enumerate() {
            if part.is_none() {
                first_wildcard = offset;
                break;
            }
            offset += parts[i].as_ref().map_or(1, String::len) + 1;
        }
        SegmentRule {
            base: base.to_string(),
            wildcards: parts.iter().filter(|p| p.is_none()).count(),
            parts,
            is_prefix,
            first_wildcard,
            perms,
        }
    }

    fn priority(&self) -> Priority<'_> {
        Priority {
            first_wildcard: self.first_wildcard,
            not_prefix: !self.is_prefix,
            fewer_wildcards: Reverse(self.wildcards),
            len: self.base.len(),
            text: &self.base,
        }
    }

    /// Whether this pattern can match some path at or below the mount whose
    /// segments are given.
    fn covers(&self, mount: &[&str]) -> bool {
        let last = self.parts.len() - 1;
        for (i, seg) in mount.iter().enumerate() {
            let Some(part) = self.parts.get(i) else {
                return false;
            };
            match part {
                None => {}
                Some(lit) if self.is_prefix && i == last && seg.starts_with(lit.as_str()) => {
                    return true
                }
                Some(lit) if lit == seg => {}
                Some(_) => return false,
            }
        }
        true
    }
}

fn is_segment_pattern(pattern: &str) -> bool {
    let base = pattern.strip_suffix('*').unwrap_or(pattern);
    base.split('/').any(|s| s == "+")
}

fn merge_min(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn merge_params(
    existing: &mut std::collections::BTreeMap<String, Vec<Value>>,
    new: &std::collections::BTreeMap<String, Vec<Value>>,
) {
    if existing.is_empty() {
        existing.clone_from(new);
        return;
    }
    for (name, values) in new {
        match existing.get_mut(name) {
            Some(current) if current.is_empty() || values.is_empty() => current.clear(),
            Some(current) => current.extend(values.iter().cloned()),
            None => {
                existing.insert(name.clone(), values.clone());
            }
        }
    }
}

/// Merges `new` into `existing` (same pattern).
fn merge(existing: &mut Permissions, new: &Permissions) {
    if existing.capabilities.is_deny() {
        return;
    }
    if new.capabilities.is_deny() {
        *existing = Permissions {
            capabilities: Capabilities::deny(),
            ..Permissions::default()
        };
        return;
    }
    existing.capabilities = existing.capabilities.union(new.capabilities);
    existing.min_wrapping_ttl = merge_min(existing.min_wrapping_ttl, new.min_wrapping_ttl);
    existing.max_wrapping_ttl = merge_min(existing.max_wrapping_ttl, new.max_wrapping_ttl);
    merge_params(&mut existing.allowed_parameters, &new.allowed_parameters);
    merge_params(&mut existing.denied_parameters, &new.denied_parameters);
    for name in &new.required_parameters {
        if !existing.required_parameters.contains(name) {
            existing.required_parameters.push(name.clone());
        }
    }
    for event in &new.subscribe_event_types {
        if !existing.subscribe_event_types.contains(event) {
            existing.subscribe_event_types.push(event.clone());
        }
    }
}

impl Acl {
    /// Compiles policies. Order does not matter.
    ///
    /// Templated rules (only possible when a [`Policy`] is built by hand;
    /// [`crate::parse`] refuses them) fail closed: a templated `deny`
    /// yields an ACL that denies everything, other templated rules are
    /// dropped.
    pub fn new(policies: &[Policy]) -> Acl {
        if policies.iter().any(|p| p.name == ROOT_POLICY) {
            return Acl::root();
        }
        let rules = || policies.iter().flat_map(|p| &p.rules);
        if rules().any(|r| r.is_templated() && r.permissions.capabilities.is_deny()) {
            return Acl::default();
        }
        let mut merged: HashMap<&str, Permissions> = HashMap::new();
        for rule in rules() {
            if rule.is_templated() {
                continue;
            }
            match merged.get_mut(rule.path.as_str()) {
                Some(existing) => merge(existing, &rule.permissions),
                None => {
                    merged.insert(&rule.path, rule.permissions.clone());
                }
            }
        }

        let mut acl = Acl::default();
        for (pattern, perms) in merged {
            if is_segment_pattern(pattern) {
                acl.segment.push(SegmentRule::new(pattern, perms));
            } else if let Some(prefix) = pattern.strip_suffix('*') {
                acl.prefix.insert(prefix.to_string(), perms);
            } else {
                acl.exact.insert(pattern.to_string(), perms);
            }
        }
        acl.prefix_lens = acl.prefix.keys().map(String::len).collect();
        acl.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        acl.prefix_lens.dedup();
        // Deterministic order (HashMap iteration is not).
        acl.segment
            .sort_by(|a, b| a.base.cmp(&b.base).then(a.is_prefix.cmp(&b.is_prefix)));
        let mut trie = SegmentNode::default();
        for (i, rule) in acl.segment.iter().enumerate() {
            trie.insert(rule, i);
        }
        acl.segment_trie = trie;
        acl
    }

    /// The root ACL: every operation on every path, with sudo.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The merged permissions that decide `path` (see the module docs for
    /// the `list` fallback), or `None` when no pattern matches.
    fn find(&self, path: &str, list: bool) -> Option<&Permissions> {
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        if list {
            if let Some(trimmed) = path.strip_suffix('/') {
                if let Some(p) = self.exact.get(trimmed) {
                    return Some(p);
                }
                if let Some(p) = self.non_exact(trimmed) {
                    return Some(p);
                }
            }
        }
        self.non_exact(path)
    }

    fn non_exact(&self, path: &str) -> Option<&Permissions> {
        let mut best: Option<(Priority<'_>, &Permissions)> = None;
        for &len in &self.prefix_lens {
            if len > path.len() || !path.is_char_boundary(len) {
                continue;
            }
            if let Some((prefix, perms)) = self.prefix.get_key_value(&path[..len]) {
                let priority = Priority {
                    first_wildcard: len,
                    not_prefix: false,
                    fewer_wildcards: Reverse(0),
                    len,
                    text: prefix,
                };
                best = Some((priority, perms));
                break;
            }
        }
        if self.segment.is_empty() {
            return best.map(|(_, p)| p);
        }
        let parts: Vec<&str> = path.split('/').collect();
        self.segment_trie.search(&parts, 0, &mut |i| {
            let rule = &self.segment[i];
            let priority = rule.priority();
            if best.as_ref().is_none_or(|(b, _)| priority > *b) {
                best = Some((priority, &rule.perms));
            }
        });
        best.map(|(_, p)| p)
    }

    /// Vault-style capabilities on `path`: `["root"]` for the root ACL,
    /// `["deny"]` when nothing (or `deny`) is granted, otherwise the sorted
    /// capability names of the deciding rule.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".to_string()];
        }
        match self.find(path.trim_start_matches('/'), true) {
            Some(p) if !p.capabilities.is_deny() && !p.capabilities.is_empty() => {
                p.capabilities.sorted_names()
            }
            _ => vec![Capability::Deny.as_str().to_string()],
        }
    }

    /// Checks one operation. `operation` is an [`Operation`] name (`read`,
    /// `list`, `create`, `update`, `delete`, `patch`, `help`, `renew`,
    /// `revoke`, `rollback`, `recover`); an unknown name is denied.
    /// Parameter constraints apply to read/create/update/patch/recover
    /// (see the module docs); for a read, pass its query parameters.
    /// A rule with `min_wrapping_ttl`/`max_wrapping_ttl` denies here, since
    /// no wrapping TTL is given; use [`Acl::authorize`] for those.
    pub fn check(
        &self,
        path: &str,
        operation: &str,
        params: Option<&Map<String, Value>>,
    ) -> AclDecision {
        let Ok(operation) = operation.parse::<Operation>() else {
            return AclDecision {
                root: self.root,
                ..AclDecision::default()
            };
        };
        self.authorize(&AclRequest {
            path,
            operation,
            data: params,
            wrap_ttl: None,
        })
    }

    /// Checks a request.
    pub fn authorize(&self, req: &AclRequest<'_>) -> AclDecision {
        if self.root {
            return AclDecision {
                allowed: true,
                sudo: true,
                root: true,
            };
        }
        let Some(needed) = req.operation.required_capability() else {
            // Help is always allowed.
            return AclDecision {
                allowed: true,
                ..AclDecision::default()
            };
        };
        let path = req.path.trim_start_matches('/');
        let Some(perms) = self.find(path, req.operation == Operation::List) else {
            return AclDecision::default();
        };
        let caps = perms.capabilities;
        let mut decision = AclDecision {
            allowed: false,
            sudo: caps.contains(Capability::Sudo) && !caps.is_deny(),
            root: false,
        };
        if caps.is_deny() || !caps.contains(needed) {
            return decision;
        }
        if let Some(max) = perms.max_wrapping_ttl {
            if req.wrap_ttl.is_none_or(|ttl| ttl > max) {
                return decision;
            }
        }
        if let Some(min) = perms.min_wrapping_ttl {
            if req.wrap_ttl.is_none_or(|ttl| ttl < min) {
                return decision;
            }
        }
        if let (Some(min), Some(max)) = (perms.min_wrapping_ttl, perms.max_wrapping_ttl) {
            if max < min {
                return decision;
            }
        }
        if req.operation.checks_parameters() && !parameters_allowed(perms, req.data) {
            return decision;
        }
        decision.allowed = true;
        decision
    }

    /// Whether the ACL grants anything at or below a mount path (for
    /// `sys/internal/ui/mounts`): the mount path itself, any exact or glob
    /// pattern under it, or any `+` pattern that can reach below it.
    pub fn has_mount_access(&self, mount_path: &str) -> bool {
        if self.root {
            return true;
        }
        let path = mount_path.trim_start_matches('/');
        if self.capabilities(path) != [Capability::Deny.as_str()] {
            return true;
        }
        let grants = |p: &Permissions| {
            !p.capabilities.is_deny()
                && [
                    Capability::Create,
                    Capability::Read,
                    Capability::Update,
                    Capability::Patch,
                    Capability::Delete,
                    Capability::List,
                    Capability::Sudo,
                ]
                .into_iter()
                .any(|c| p.capabilities.contains(c))
        };
        if self
            .exact
            .iter()
            .chain(&self.prefix)
            .any(|(k, p)| k.starts_with(path) && grants(p))
        {
            return true;
        }
        let mount: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.segment
            .iter()
            .any(|r| grants(&r.perms) && r.covers(&mount))
    }

    /// The merged rules in the shape of Vault's
    /// `sys/internal/ui/resultant-acl` response data.
    pub fn resultant_acl(&self) -> Value {
        let mut exact = Map::new();
        let mut glob = Map::new();
        if !self.root {
            for (path, perms) in &self.exact {
                exact.insert(path.clone(), describe(perms));
            }
            for (prefix, perms) in &self.prefix {
                glob.insert(prefix.clone(), describe(perms));
            }
            for rule in &self.segment {
                let target = if rule.is_prefix {
                    &mut glob
                } else {
                    &mut exact
                };
                target.insert(rule.base.clone(), describe(&rule.perms));
            }
        }
        json!({ "exact_paths": exact, "glob_paths": glob, "root": self.root })
    }
}

fn describe(p: &Permissions) -> Value {
    let mut out = Map::new();
    let caps = if p.capabilities.is_deny() || p.capabilities.is_empty() {
        vec![Capability::Deny.as_str().to_string()]
    } else {
        p.capabilities.sorted_names()
    };
    out.insert("capabilities".into(), json!(caps));
    if !p.required_parameters.is_empty() {
        out.insert("required_parameters".into(), json!(p.required_parameters));
    }
    if !p.allowed_parameters.is_empty() {
        out.insert("allowed_parameters".into(), json!(p.allowed_parameters));
    }
    if !p.denied_parameters.is_empty() {
        out.insert("denied_parameters".into(), json!(p.denied_parameters));
    }
    if let Some(ttl) = p.min_wrapping_ttl {
        out.insert("min_wrapping_ttl".into(), json!(ttl.as_secs()));
    }
    if let Some(ttl) = p.max_wrapping_ttl {
        out.insert("max_wrapping_ttl".into(), json!(ttl.as_secs()));
    }
    if !p.subscribe_event_types.is_empty() {
        out.insert(
            "subscribe_event_types".into(),
            json!(p.subscribe_event_types),
        );
    }
    Value::Object(out)
}

fn param_values<'a>(
    map: &'a std::collections::BTreeMap<String, Vec<Value>>,
    name: &str,
) -> Option<&'a Vec<Value>> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
        map.get(&name.to_lowercase())
    } else {
        map.get(name)
    }
}

/// Vault's parameter rules: required names must be present; with data,
/// `denied_parameters` is checked first (`*` denies any data), then
/// `allowed_parameters` (unlisted names need `*`, listed names need a
/// matching value; `[]` matches any value).
fn parameters_allowed(perms: &Permissions, data: Option<&Map<String, Value>>) -> bool {
    if !perms
        .required_parameters
        .iter()
        .all(|name| data.is_some_and(|d| d.contains_key(name)))
    {
        return false;
    }
    let Some(data) = data.filter(|d| !d.is_empty()) else {
        return true;
    };
    let denied = &perms.denied_parameters;
    if !denied.is_empty() {
        if denied.contains_key("*") {
            return false;
        }
        for (name, value) in data {
            if param_values(denied, name).is_some_and(|list| value_in_denied(value, list)) {
                return false;
            }
        }
    }
    let allowed = &perms.allowed_parameters;
    if allowed.is_empty() {
        return true;
    }
    let allowed_all = allowed.contains_key("*");
    if allowed_all && allowed.len() == 1 {
        return true;
    }
    data.iter()
        .all(|(name, value)| match param_values(allowed, name) {
            None => allowed_all,
            Some(list) => value_in_allowed(value, list),
        })
}

/// Vault's value globbing: `*x` suffix, `x*` prefix, `*x*` substring;
/// a lone `*` is literal.
fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

fn value_matches(element: &Value, value: &Value) -> bool {
    match (element, value) {
        (Value::String(pattern), Value::String(s)) => glob_match(pattern, s),
        (Value::Number(a), Value::Number(b)) => {
            a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64())
        }
        _ => element == value,
    }
}

fn in_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|el| value_matches(el, value))
}

fn str_in_list(s: &str, list: &[Value]) -> bool {
    list.iter()
        .any(|el| matches!(el, Value::String(p) if glob_match(p, s)))
}

/// The boolean a backend reads from a string field value (the SDK's
/// conversion: `true`/`t`/`1` and `false`/`f`/`0`/empty, any case).
fn text_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" | "" => Some(false),
        _ => None,
    }
}

/// The number a backend reads from a string field value.
fn text_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(i as f64);
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Like [`value_matches`], and also true when `value` is the same scalar as
/// `element` written as another JSON type. Used for denied values only.
fn value_matches_any_type(element: &Value, value: &Value) -> bool {
    if value_matches(element, value) {
        return true;
    }
    match (element, value) {
        (Value::Bool(b), Value::String(s)) => text_bool(s) == Some(*b),
        // Either reading of a number as a boolean (integer or float zero).
        (Value::Bool(b), Value::Number(n)) => {
            (n.as_i64() != Some(0)) == *b || (n.as_f64() != Some(0.0)) == *b
        }
        (Value::Number(n), Value::String(s)) => {
            text_number(s).is_some_and(|x| n.as_f64() == Some(x))
        }
        (Value::String(p), Value::Number(n)) => glob_match(p, &n.to_string()),
        (Value::String(p), Value::Bool(b)) => glob_match(p, if *b { "true" } else { "false" }),
        _ => false,
    }
}

fn in_denied_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|el| value_matches_any_type(el, value))
}

fn comma_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

/// A value passes `allowed_parameters` if it matches the list as a whole,
/// or (Vault ≥ 1.21 list semantics) it is a list / comma-separated string
/// whose every element matches.
fn value_in_allowed(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().all(|v| in_list(v, list)),
        Value::String(s) if s.contains(',') => {
            comma_items(s).next().is_some() && comma_items(s).all(|item| str_in_list(item, list))
        }
        _ => false,
    }
}

/// A value is caught by `denied_parameters` if it matches the list as a
/// whole, or it is a list / comma-separated string with any matching element.
/// Scalars match across JSON types here (see the module docs).
fn value_in_denied(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_denied_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|v| in_denied_list(v, list)),
        Value::String(s) if s.contains(',') => {
            comma_items(s).any(|item| in_denied_list(&Value::String(item.to_string()), list))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_policy_text, parse};
    use serde_json::json;

    fn acl(texts: &[&str]) -> Acl {
        let policies: Vec<Policy> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| parse(&format!("p{i}"), t).unwrap())
            .collect();
        Acl::new(&policies)
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn allowed(acl: &Acl, path: &str, op: &str) -> bool {
        acl.check(path, op, None).allowed
    }

    #[test]
    fn exact_beats_glob_and_deny_in_exact_wins() {
        let a = acl(&[r#"
path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/super-secret" { capabilities = ["deny"] }
path "secret/foo" { capabilities = ["read"] }
"#]);
        assert!(allowed(&a, "secret/bar", "update"));
        assert!(allowed(&a, "secret/bar/baz", "read"));
        assert!(!allowed(&a, "secret/super-secret", "read"));
        assert!(allowed(&a, "secret/foo", "read"));
        // Only the exact rule applies, not a union with secret/*.
        assert!(!allowed(&a, "secret/foo", "update"));
        assert_eq!(a.capabilities("secret/foo"), vec!["read"]);
        assert_eq!(a.capabilities("secret/super-secret"), vec!["deny"]);
        assert_eq!(a.capabilities("other/x"), vec!["deny"]);
        assert!(!allowed(&a, "secretx", "read"));
    }

    #[test]
    fn documented_glob_examples() {
        let a = acl(&[r#"
path "secret/foo" { capabilities = ["read"] }
path "secret/bar/*" { capabilities = ["read"] }
path "secret/zip-*" { capabilities = ["read"] }
"#]);
        assert!(allowed(&a, "secret/foo", "read"));
        assert!(!allowed(&a, "secret/food", "read"));
        assert!(!allowed(&a, "secret/foo/bar", "read"));
        assert!(allowed(&a, "secret/bar/zip", "read"));
        assert!(allowed(&a, "secret/bar/zip/zap", "read"));
        assert!(!allowed(&a, "secret/bars/zip", "read"));
        assert!(allowed(&a, "secret/zip-zap", "read"));
        assert!(allowed(&a, "secret/zip-zap/zong", "read"));
        assert!(!allowed(&a, "secret/zip/zap", "read"));
    }

    #[test]
    fn longer_glob_wins() {
        let a = acl(&[r#"
path "secret/*" { capabilities = ["read"] }
path "secret/team/*" { capabilities = ["update"] }
path "secret/team/private*" { capabilities = ["deny"] }
"#]);
        assert!(allowed(&a, "secret/x", "read"));
        assert!(!allowed(&a, "secret/team/x", "read"));
        assert!(allowed(&a, "secret/team/x", "update"));
        assert!(!allowed(&a, "secret/team/private-key", "update"));
        assert_eq!(a.capabilities("secret/team/x"), vec!["update"]);
    }

    #[test]
    fn plus_matches_one_segment() {
        let a = acl(&[r#"
path "secret/+/teamb" { capabilities = ["read"] }
path "secret/+/+/teamb" { capabilities = ["update"] }
"#]);
        assert!(allowed(&a, "secret/foo/teamb", "read"));
        assert!(!allowed(&a, "secret/foo/teamb", "update"));
        assert!(allowed(&a, "secret/foo/bar/teamb", "update"));
        assert!(!allowed(&a, "secret/foo/bar/teamb", "read"));
        assert!(!allowed(&a, "secret/teamb", "read"));
        assert!(!allowed(&a, "secret/foo/teamb/x", "read"));
        assert!(!allowed(&a, "secret/foo/teambx", "read"));
    }

    #[test]
    fn documented_priority_order() {
        // Rule 3: same first wildcard, both end in *, fewer + wins.
        let a = acl(&[r#"
path "secret/*" { capabilities = ["read"] }
path "secret/+/+/foo/*" { capabilities = ["update"] }
"#]);
        assert_eq!(a.capabilities("secret/a/b/foo/c"), vec!["read"]);

        // Rule 1: later first wildcard wins (foo/a* over foo/+).
        let a = acl(&[r#"
path "foo/+" { capabilities = ["read"] }
path "foo/a*" { capabilities = ["update"] }
"#]);
        assert_eq!(a.capabilities("foo/abc"), vec!["update"]);
        assert_eq!(a.capabilities("foo/xyz"), vec!["read"]);

        // Rule 2: not ending in * wins (foo/+ over foo/*).
        let a = acl(&[r#"
path "foo/*" { capabilities = ["read"] }
path "foo/+" { capabilities = ["update"] }
"#]);
        assert_eq!(a.capabilities("foo/x"), vec!["update"]);
        assert_eq!(a.capabilities("foo/x/y"), vec!["read"]);

        // Rule 2 with + on both: foo/+/bar over foo/+/ba*.
        let a = acl(&[r#"
path "foo/+/ba*" { capabilities = ["read"] }
path "foo/+/bar" { capabilities = ["update"] }
"#]);
        assert_eq!(a.capabilities("foo/x/bar"), vec!["update"]);
        assert_eq!(a.capabilities("foo/x/baz"), vec!["read"]);

        // Rule 4: longer wins (foo/+/bar/ba* over foo/+/bar/b*).
        let a = acl(&[r#"
path "foo/+/bar/b*" { capabilities = ["read"] }
path "foo/+/bar/ba*" { capabilities = ["update"] }
"#]);
        assert_eq!(a.capabilities("foo/x/bar/baz"), vec!["update"]);
        assert_eq!(a.capabilities("foo/x/bar/bz"), vec!["read"]);

        // Rule 1 again: foo/bar/+/baz over foo/+/bar/baz... different
        // first wildcard positions.
        let a = acl(&[r#"
path "foo/+/bar/baz" { capabilities = ["read"] }
path "foo/bar/+/baz" { capabilities = ["update"] }
"#]);
        assert_eq!(a.capabilities("foo/bar/bar/baz"), vec!["update"]);
    }

    #[test]
    fn list_semantics() {
        let a = acl(&[r#"
path "secret/foo" { capabilities = ["list"] }
path "secret/bar/*" { capabilities = ["list"] }
path "+/sys/policies/acl" { capabilities = ["list"] }
path "kv/metadata/*" { capabilities = ["read"] }
path "kv/metadata" { capabilities = ["list"] }
"#]);
        assert!(allowed(&a, "secret/foo/", "list"));
        assert!(allowed(&a, "secret/bar/", "list"));
        assert!(allowed(&a, "ns1/sys/policies/acl/", "list"));
        assert!(allowed(&a, "ns1/sys/policies/acl", "list"));
        // Exact "p" applies to "p/" only for list.
        assert!(!allowed(&a, "secret/foo/", "read"));
        assert!(allowed(&a, "kv/metadata/", "list"));
        assert!(allowed(&a, "kv/metadata/x", "read"));
    }

    #[test]
    fn list_prefers_glob_on_path_without_slash() {
        // Vault checks non-exact rules against "p" before "p/" for list.
        let a = acl(&[r#"
path "secret/foo*" { capabilities = ["read"] }
path "secret/foo/*" { capabilities = ["list"] }
"#]);
        assert!(!allowed(&a, "secret/foo/", "list"));
        assert!(allowed(&a, "secret/foo/bar/", "list"));
    }

    #[test]
    fn merging_across_policies() {
        let a = acl(&[
            r#"path "secret/*" { capabilities = ["read"] }"#,
            r#"path "secret/*" { capabilities = ["update", "sudo"] }"#,
            r#"path "secret/x" { capabilities = ["read"] }"#,
            r#"path "secret/x" { capabilities = ["deny"] }"#,
            r#"path "secret/y" { capabilities = ["deny"] }"#,
            r#"path "secret/y" { capabilities = ["read"] }"#,
        ]);
        assert_eq!(a.capabilities("secret/a"), vec!["read", "sudo", "update"]);
        assert_eq!(a.capabilities("secret/x"), vec!["deny"]);
        assert_eq!(a.capabilities("secret/y"), vec!["deny"]);
        assert!(!allowed(&a, "secret/x", "read"));
        // Order of policies does not matter.
        let b = acl(&[
            r#"path "secret/x" { capabilities = ["deny"] }"#,
            r#"path "secret/x" { capabilities = ["read"] }"#,
        ]);
        assert_eq!(b.capabilities("secret/x"), vec!["deny"]);
    }

    #[test]
    fn sudo_is_reported() {
        let a = acl(&[r#"
path "sys/audit/*" { capabilities = ["create", "update", "sudo"] }
path "sys/mounts/*" { capabilities = ["update"] }
"#]);
        let d = a.check("sys/audit/file", "update", None);
        assert_eq!(
            d,
            AclDecision {
                allowed: true,
                sudo: true,
                root: false
            }
        );
        let d = a.check("sys/audit/file", "delete", None);
        assert!(!d.allowed && d.sudo);
        let d = a.check("sys/mounts/kv", "update", None);
        assert!(d.allowed && !d.sudo);
    }

    #[test]
    fn root_gives_everything() {
        let a = Acl::root();
        assert!(a.is_root());
        assert_eq!(a.capabilities("anything/at/all"), vec!["root"]);
        let d = a.check("sys/audit/x", "delete", None);
        assert_eq!(
            d,
            AclDecision {
                allowed: true,
                sudo: true,
                root: true
            }
        );
        assert!(a.has_mount_access("secret/"));
        let named_root = Acl::new(&[
            parse("root", "").unwrap(),
            parse("default", default_policy_text()).unwrap(),
        ]);
        assert!(named_root.is_root());
        assert_eq!(a.resultant_acl()["root"], json!(true));
    }

    #[test]
    fn default_policy_grants_self_service_only() {
        let a = Acl::new(&[parse("default", default_policy_text()).unwrap()]);
        assert!(allowed(&a, "auth/token/lookup-self", "read"));
        assert!(allowed(&a, "auth/token/renew-self", "update"));
        assert!(allowed(&a, "auth/token/revoke-self", "update"));
        assert!(allowed(&a, "sys/capabilities-self", "update"));
        assert!(allowed(&a, "cubbyhole/my/secret", "create"));
        assert!(allowed(&a, "cubbyhole/", "list"));
        assert!(allowed(&a, "sys/wrapping/unwrap", "update"));
        assert!(allowed(&a, "sys/tools/hash/sha2-256", "update"));
        assert!(allowed(&a, "sys/leases/lookup", "update"));
        assert!(allowed(&a, "identity/oidc/provider/p1/authorize", "read"));
        assert!(!allowed(&a, "secret/foo", "read"));
        assert!(!allowed(&a, "secret/", "list"));
        assert_eq!(a.capabilities("secret/foo"), vec!["deny"]);
        assert!(!allowed(&a, "auth/token/lookup-self", "update"));
        assert!(!allowed(&a, "auth/token/create", "update"));
        assert!(!allowed(&a, "sys/policy/default", "update"));
        assert!(!a.check("auth/token/lookup-self", "read", None).sudo);
    }

    #[test]
    fn allowed_parameters() {
        let a = acl(&[r#"
path "secret/restricted" {
  capabilities = ["create", "update", "read"]
  allowed_parameters = {
    "foo" = []
    "bar" = ["zip", "zap"]
  }
}
path "secret/open" {
  capabilities = ["create"]
  allowed_parameters = {
    "bar" = ["zip", "zap"]
    "*" = []
  }
}
path "secret/glob" {
  capabilities = ["create"]
  allowed_parameters = { "bar" = ["foo-*", "*-suffix", "*mid*"] }
}
path "secret/any" {
  capabilities = ["create"]
  allowed_parameters = { "*" = [] }
}
"#]);
        let ok = |path: &str, v: Value| a.check(path, "create", Some(&data(v))).allowed;
        assert!(ok(
            "secret/restricted",
            json!({"foo": "anything", "bar": "zip"})
        ));
        assert!(ok("secret/restricted", json!({"FOO": 1})));
        assert!(!ok("secret/restricted", json!({"bar": "zop"})));
        assert!(!ok("secret/restricted", json!({"baz": "x"})));
        assert!(ok("secret/restricted", json!({})));
        assert!(a.check("secret/restricted", "create", None).allowed);
        // Lists and comma strings: every element must be allowed.
        assert!(ok("secret/restricted", json!({"bar": ["zip", "zap"]})));
        assert!(!ok("secret/restricted", json!({"bar": ["zip", "evil"]})));
        assert!(ok("secret/restricted", json!({"bar": "zip, zap"})));
        assert!(!ok("secret/restricted", json!({"bar": "zip,evil"})));
        assert!(!ok("secret/restricted", json!({"bar": ","})));
        // Parameter checks apply to read (query parameters) but not delete.
        assert!(
            !a.check("secret/restricted", "read", Some(&data(json!({"baz": 1}))))
                .allowed
        );

        assert!(ok("secret/open", json!({"other": 1, "bar": "zap"})));
        assert!(!ok("secret/open", json!({"other": 1, "bar": "nope"})));

        assert!(ok("secret/glob", json!({"bar": "foo-1"})));
        assert!(ok("secret/glob", json!({"bar": "x-suffix"})));
        assert!(ok("secret/glob", json!({"bar": "xmidx"})));
        assert!(!ok("secret/glob", json!({"bar": "bar-1"})));

        assert!(ok("secret/any", json!({"a": 1, "b": 2})));
    }

    #[test]
    fn denied_parameters() {
        let a = acl(&[r#"
path "auth/userpass/users/*" {
  capabilities = ["update"]
  denied_parameters = {
    "token_policies" = []
    "policies" = ["root", "admin*"]
  }
}
path "transit/keys/*" {
  capabilities = ["update"]
  denied_parameters = { "*" = [] }
}
path "secret/mixed" {
  capabilities = ["update"]
  allowed_parameters = { "a" = [], "b" = [] }
  denied_parameters = { "b" = ["bad"] }
}
path "secret/typed" {
  capabilities = ["update"]
  denied_parameters = { "no_store" = [false, "false"], "n" = [5] }
}
"#]);
        let ok = |path: &str, v: Value| a.check(path, "update", Some(&data(v))).allowed;
        assert!(ok("auth/userpass/users/bob", json!({"password": "x"})));
        assert!(!ok(
            "auth/userpass/users/bob",
            json!({"token_policies": "default"})
        ));
        assert!(!ok("auth/userpass/users/bob", json!({"policies": "root"})));
        assert!(!ok(
            "auth/userpass/users/bob",
            json!({"policies": "administrators"})
        ));
        assert!(!ok(
            "auth/userpass/users/bob",
            json!({"policies": ["dev", "root"]})
        ));
        assert!(!ok(
            "auth/userpass/users/bob",
            json!({"policies": "dev,root"})
        ));
        assert!(ok(
            "auth/userpass/users/bob",
            json!({"policies": "dev,ops"})
        ));
        assert!(!ok("transit/keys/k", json!({"exportable": true})));
        assert!(ok("transit/keys/k", json!({})));
        assert!(ok("secret/mixed", json!({"a": 1, "b": "good"})));
        assert!(!ok("secret/mixed", json!({"b": "bad"})));
        assert!(!ok("secret/mixed", json!({"c": 1})));
        assert!(!ok("secret/typed", json!({"no_store": false})));
        assert!(!ok("secret/typed", json!({"no_store": "false"})));
        assert!(ok("secret/typed", json!({"no_store": true})));
        assert!(!ok("secret/typed", json!({"n": 5.0})));
        assert!(ok("secret/typed", json!({"n": 6})));
    }

    #[test]
    fn required_parameters() {
        let a = acl(&[r#"
path "secret/profile" {
  capabilities = ["create", "read", "delete"]
  required_parameters = ["name", "ID"]
}
"#]);
        let ok = |op: &str, v: Value| a.check("secret/profile", op, Some(&data(v))).allowed;
        assert!(ok("create", json!({"name": "n", "id": 1})));
        assert!(!ok("create", json!({"name": "n"})));
        assert!(!a.check("secret/profile", "create", None).allowed);
        // Vault applies them to read as well, but not to delete.
        assert!(!ok("read", json!({})));
        assert!(ok("delete", json!({})));
    }

    #[test]
    fn parameter_constraints_merge_like_vault() {
        let a = acl(&[
            r#"path "s/p" {
                 capabilities = ["update"]
                 allowed_parameters = { "a" = ["1"], "b" = ["x"] }
                 required_parameters = ["a"]
                 max_wrapping_ttl = "1h"
               }"#,
            r#"path "s/p" {
                 capabilities = ["create"]
                 allowed_parameters = { "a" = ["2"], "b" = [], "c" = [] }
                 required_parameters = ["c"]
                 max_wrapping_ttl = "10m"
                 min_wrapping_ttl = "1m"
               }"#,
        ]);
        let req = |v: Value, ttl: Option<u64>| {
            let d = data(v);
            let mut r = AclRequest::new("s/p", Operation::Update).with_data(&d);
            if let Some(t) = ttl {
                r = r.with_wrap_ttl(Duration::from_secs(t));
            }
            a.authorize(&r).allowed
        };
        assert!(req(json!({"a": "1", "c": 0}), Some(300)));
        assert!(req(json!({"a": "2", "b": "anything", "c": 0}), Some(300)));
        assert!(!req(json!({"a": "3", "c": 0}), Some(300)));
        // Required parameters are unioned.
        assert!(!req(json!({"a": "1"}), Some(300)));
        // Lowest max wins (10m), min 1m; no wrapping at all is denied.
        assert!(!req(json!({"a": "1", "c": 0}), Some(1200)));
        assert!(!req(json!({"a": "1", "c": 0}), Some(30)));
        assert!(!req(json!({"a": "1", "c": 0}), None));
        assert!(
            !a.check("s/p", "update", Some(&data(json!({"a": "1", "c": 0}))))
                .allowed
        );
    }

    #[test]
    fn help_and_unknown_operations() {
        let a = acl(&[r#"path "x" { capabilities = ["read"] }"#]);
        assert!(allowed(&a, "anything", "help"));
        assert!(!allowed(&a, "x", "write"));
        assert!(allowed(&a, "/x", "read"));
        assert!(!allowed(&a, "x", "renew"));
    }

    #[test]
    fn empty_capabilities_shadow_lower_priority_rules() {
        let a = acl(&[r#"
path "secret/*" { capabilities = ["read"] }
path "secret/quiet" { capabilities = [] }
"#]);
        assert!(!allowed(&a, "secret/quiet", "read"));
        assert_eq!(a.capabilities("secret/quiet"), vec!["deny"]);
    }

    /// A policy as `parse` would build it, but with a templated pattern,
    /// which `parse` itself refuses.
    fn hand_built(name: &str, rules: &[(&str, &[Capability])]) -> Policy {
        Policy {
            name: name.into(),
            raw: String::new(),
            rules: rules
                .iter()
                .map(|(path, caps)| crate::PathRule {
                    path: path.to_string(),
                    permissions: Permissions {
                        capabilities: caps.iter().copied().collect(),
                        ..Permissions::default()
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn templated_rules_fail_closed() {
        let grant = hand_built(
            "grant",
            &[(
                "secret/*",
                &[Capability::Read, Capability::List, Capability::Update],
            )],
        );
        assert!(
            Acl::new(std::slice::from_ref(&grant))
                .check("secret/alice/private", "read", None)
                .allowed
        );

        // A templated deny, in the same policy or another one, cannot be
        // resolved: nothing is granted at all (help stays available).
        let deny = hand_built(
            "deny",
            &[(
                "secret/{{identity.entity.name}}/private",
                &[Capability::Deny],
            )],
        );
        let mut both = grant.clone();
        both.rules.extend(deny.rules.clone());
        for a in [
            Acl::new(&[grant.clone(), deny.clone()]),
            Acl::new(&[deny.clone(), grant.clone()]),
            Acl::new(&[both]),
        ] {
            for path in ["secret/alice/private", "secret/other", "elsewhere"] {
                for op in ["read", "list", "update"] {
                    assert!(!a.check(path, op, None).allowed, "{op} {path}");
                }
                assert_eq!(a.capabilities(path), vec!["deny"]);
            }
            assert!(a.check("secret/other", "help", None).allowed);
            assert!(!a.has_mount_access("secret/"));
        }

        // A templated grant grants nothing and takes nothing away.
        let templated_grant = hand_built(
            "tg",
            &[("secret/{{identity.entity.id}}/*", &[Capability::Read])],
        );
        let a = Acl::new(std::slice::from_ref(&templated_grant));
        assert!(
            !a.check("secret/{{identity.entity.id}}/x", "read", None)
                .allowed
        );
        assert!(!a.check("secret/x/y", "read", None).allowed);
        let a = Acl::new(&[templated_grant, grant]);
        assert!(a.check("secret/x/y", "read", None).allowed);

        // The root policy still means everything.
        let a = Acl::new(&[hand_built(ROOT_POLICY, &[]), deny]);
        assert!(a.is_root());
    }

    /// Query parameters as the HTTP layer hands them over: every value a
    /// string.
    fn query(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn read_query_parameters_are_constrained() {
        let a = acl(&[r#"
path "kv/data/current" {
  capabilities = ["read"]
  denied_parameters = { "version" = [] }
}
path "kv/data/pinned" {
  capabilities = ["read"]
  allowed_parameters = { "version" = ["2", "3*"] }
}
path "kv/data/needs" {
  capabilities = ["read"]
  required_parameters = ["version"]
}
path "pki/cert/*" {
  capabilities = ["read"]
  denied_parameters = { "format" = ["der", "pem_*"] }
}
"#]);
        let read = |path: &str, q: &[(&str, &str)]| a.check(path, "read", Some(&query(q))).allowed;

        assert!(read("kv/data/current", &[]));
        assert!(a.check("kv/data/current", "read", None).allowed);
        assert!(!read("kv/data/current", &[("version", "1")]));
        assert!(!read("kv/data/current", &[("version", "")]));
        // Names match whatever their case.
        assert!(!read("kv/data/current", &[("VERSION", "1")]));
        assert!(read("kv/data/current", &[("other", "1")]));

        assert!(read("kv/data/pinned", &[]));
        assert!(read("kv/data/pinned", &[("version", "2")]));
        assert!(read("kv/data/pinned", &[("version", "31")]));
        assert!(!read("kv/data/pinned", &[("version", "1")]));
        assert!(!read("kv/data/pinned", &[("version", "2,1")]));
        // Anything not listed is refused once allowed_parameters is set.
        assert!(!read("kv/data/pinned", &[("version", "2"), ("other", "x")]));

        assert!(!read("kv/data/needs", &[]));
        assert!(!a.check("kv/data/needs", "read", None).allowed);
        assert!(!read("kv/data/needs", &[("other", "1")]));
        assert!(read("kv/data/needs", &[("version", "1")]));
        // As in Vault, a required name must be sent in lower case (the
        // backend would not see `Version` as `version` either).
        assert!(!read("kv/data/needs", &[("Version", "1")]));

        assert!(read("pki/cert/ca", &[]));
        assert!(read("pki/cert/ca", &[("format", "json")]));
        assert!(!read("pki/cert/ca", &[("format", "der")]));
        assert!(!read("pki/cert/ca", &[("format", "pem_bundle")]));
    }

    #[test]
    fn typed_denied_values_catch_their_text() {
        let a = acl(&[r#"
path "transit/export/*" {
  capabilities = ["read", "update"]
  denied_parameters = {
    "exportable" = [true]
    "version" = [1]
    "name" = ["5", "adm*"]
  }
  allowed_parameters = { "*" = [], "level" = [2] }
}
"#]);
        let read =
            |q: &[(&str, &str)]| a.check("transit/export/k", "read", Some(&query(q))).allowed;
        let update = |v: Value| {
            a.check("transit/export/k", "update", Some(&data(v)))
                .allowed
        };
        // Query strings meet typed deny lists as backends convert them.
        for t in ["true", "TRUE", "t", "1", " true "] {
            assert!(!read(&[("exportable", t)]), "{t}");
        }
        for f in ["false", "0", "f", "no"] {
            assert!(read(&[("exportable", f)]), "{f}");
        }
        assert!(!read(&[("version", "1")]));
        assert!(!read(&[("version", "1.0")]));
        assert!(!read(&[("version", "2,1")]));
        assert!(read(&[("version", "2")]));
        assert!(read(&[("version", "one")]));
        // The same through a JSON body.
        assert!(!update(json!({"exportable": "true"})));
        assert!(!update(json!({"exportable": 1})));
        assert!(update(json!({"exportable": 0})));
        assert!(update(json!({"exportable": false})));
        assert!(!update(json!({"version": ["2", "1"]})));
        // A string deny catches a number or boolean written as one.
        assert!(!update(json!({"name": 5})));
        assert!(update(json!({"name": 6})));
        assert!(!read(&[("name", "admin")]));
        // Allowed values stay exact: "2" as text is not the number 2.
        assert!(update(json!({"level": 2})));
        assert!(!update(json!({"level": "2"})));
        assert!(!read(&[("level", "2")]));
    }

    #[test]
    fn list_and_delete_are_not_parameter_checked() {
        // As in Vault: list and delete carry data (`after`, `limit`, query
        // parameters of a DELETE) but only read/create/update/patch/recover
        // are checked against parameter constraints.
        let a = acl(&[r#"
path "kv/metadata/*" {
  capabilities = ["read", "list", "delete", "update"]
  denied_parameters = { "*" = [] }
  required_parameters = ["token"]
}
path "sys/storage/raft/snapshot-auto/*" {
  capabilities = ["recover"]
  denied_parameters = { "path" = [] }
}
"#]);
        let with = |op: &str, v: Value| a.check("kv/metadata/app/", op, Some(&data(v))).allowed;
        assert!(with("list", json!({"after": "a", "limit": "10"})));
        assert!(with("list", json!({})));
        assert!(a.check("kv/metadata/app/", "list", None).allowed);
        assert!(with("delete", json!({"versions": "1"})));
        assert!(!with("read", json!({"token": "x"})));
        assert!(!with("read", json!({})));
        assert!(!with("update", json!({"token": "x"})));
        for op in ["renew", "revoke", "rollback"] {
            // These need `update`, which is granted, and skip the checks.
            assert!(with(op, json!({"x": 1})), "{op}");
        }

        let recover = |v: Value| {
            a.check(
                "sys/storage/raft/snapshot-auto/x",
                "recover",
                Some(&data(v)),
            )
            .allowed
        };
        assert!(recover(json!({})));
        assert!(!recover(json!({"path": "/etc"})));
    }

    #[test]
    fn mount_access() {
        let a = acl(&[r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "kv/+/team/*" { capabilities = ["list"] }
path "denied/*" { capabilities = ["deny"] }
path "pki*" { capabilities = ["read"] }
"#]);
        assert!(a.has_mount_access("secret/"));
        assert!(a.has_mount_access("kv/"));
        assert!(a.has_mount_access("pki-int/"));
        assert!(!a.has_mount_access("denied/"));
        assert!(!a.has_mount_access("transit/"));
    }

    #[test]
    fn resultant_acl_shape() {
        let a = acl(&[r#"
path "secret/*" { capabilities = ["read", "list"] }
path "secret/x" {
  capabilities = ["update"]
  required_parameters = ["a"]
}
path "kv/+/y" { capabilities = ["read"] }
path "kv/+/z*" { capabilities = ["deny"] }
"#]);
        let r = a.resultant_acl();
        assert_eq!(r["root"], json!(false));
        assert_eq!(
            r["glob_paths"]["secret/"]["capabilities"],
            json!(["list", "read"])
        );
        assert_eq!(
            r["exact_paths"]["secret/x"]["required_parameters"],
            json!(["a"])
        );
        assert_eq!(r["exact_paths"]["kv/+/y"]["capabilities"], json!(["read"]));
        assert_eq!(r["glob_paths"]["kv/+/z"]["capabilities"], json!(["deny"]));
    }

    /// Deterministic pseudo-random numbers for the model test.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// Reference model: scan every pattern, straight from the documented
    /// rules, and compare with the compiled lookup.
    #[test]
    fn compiled_lookup_matches_reference_model() {
        let words = ["a", "b", "ab", "abc", "+", ""];
        let mut rng = Lcg(7);
        let mut text = String::new();
        let mut patterns = Vec::new();
        for i in 0..300 {
            let segs = 1 + rng.next(4);
            let mut p: Vec<&str> = (0..segs).map(|_| words[rng.next(words.len())]).collect();
            if p.iter().all(|s| *s == "+") && rng.next(2) == 0 {
                p[0] = "a";
            }
            let mut pattern = p.join("/");
            if rng.next(2) == 0 && !pattern.ends_with('+') {
                pattern.push('*');
            }
            let cap = ["read", "update", "list", "delete"][i % 4];
            text.push_str(&format!(
                "path \"{pattern}\" {{ capabilities = [\"{cap}\"] }}\n"
            ));
            patterns.push((pattern, cap));
        }
        let policy = parse("model", &text).unwrap();
        let a = Acl::new(std::slice::from_ref(&policy));

        // Union per pattern, as the merge does.
        let mut union: HashMap<String, Vec<&str>> = HashMap::new();
        for (p, c) in &patterns {
            // The parser drops one leading '/'.
            let p = p.strip_prefix('/').unwrap_or(p);
            union.entry(p.to_string()).or_default().push(c);
        }
        let model = |path: &str| -> Option<Vec<String>> {
            if let Some(c) = union.get(path).filter(|_| !path.ends_with('*')) {
                let mut c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
                c.sort();
                c.dedup();
                return Some(c);
            }
            type Key = (usize, bool, Reverse<usize>, usize, String);
            let mut best: Option<(Key, &Vec<&str>)> = None;
            for (pattern, caps) in &union {
                let (base, glob) = match pattern.strip_suffix('*') {
                    Some(b) => (b, true),
                    None => (pattern.as_str(), false),
                };
                let rule: Vec<&str> = base.split('/').collect();
                let has_plus = rule.contains(&"+");
                if !has_plus && !glob {
                    continue; // exact, handled above
                }
                let segs: Vec<&str> = path.split('/').collect();
                let ok = if !has_plus {
                    path.starts_with(base)
                } else {
                    segs.len() >= rule.len()
                        && (glob || segs.len() == rule.len())
                        && rule.iter().enumerate().all(|(i, r)| {
                            *r == "+"
                                || *r == segs[i]
                                || (glob && i == rule.len() - 1 && segs[i].starts_with(r))
                        })
                };
                if !ok {
                    continue;
                }
                let first = if has_plus {
                    let mut off = 0;
                    let mut f = base.len();
                    for r in &rule {
                        if *r == "+" {
                            f = off;
                            break;
                        }
                        off += r.len() + 1;
                    }
                    f
                } else {
                    base.len()
                };
                let key = (
                    first,
                    !glob,
                    Reverse(rule.iter().filter(|r| **r == "+").count()),
                    base.len(),
                    base.to_string(),
                );
                if best.as_ref().is_none_or(|(k, _)| key > *k) {
                    best = Some((key, caps));
                }
            }
            best.map(|(_, c)| {
                let mut c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
                c.sort();
                c.dedup();
                c
            })
        };

        let mut checked = 0;
        for _ in 0..5000 {
            let segs = 1 + rng.next(5);
            let path: Vec<&str> = (0..segs)
                .map(|_| ["a", "b", "ab", "abc", "abcd", "x", ""][rng.next(7)])
                .collect();
            let path = path.join("/");
            let expected = model(&path).unwrap_or_else(|| vec!["deny".to_string()]);
            let compiled = a.find(&path, false).map(|p| p.capabilities.sorted_names());
            assert_eq!(
                compiled.unwrap_or_else(|| vec!["deny".to_string()]),
                expected,
                "path {path:?}"
            );
            checked += 1;
        }
        assert_eq!(checked, 5000);
    }

    #[test]
    fn many_rules_stay_fast() {
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&format!(
                "path \"secret/app{i}/*\" {{ capabilities = [\"read\"] }}\n"
            ));
            text.push_str(&format!(
                "path \"kv/data/app{i}/config\" {{ capabilities = [\"read\"] }}\n"
            ));
            text.push_str(&format!(
                "path \"kv/+/team{i}/*\" {{ capabilities = [\"list\"] }}\n"
            ));
        }
        let a = Acl::new(&[parse("big", &text).unwrap()]);
        let paths: Vec<[String; 3]> = (0..600)
            .map(|n| {
                [
                    format!("secret/app{n}/key"),
                    format!("kv/data/app{n}/config"),
                    format!("kv/x/team{n}/y/"),
                ]
            })
            .collect();
        let start = std::time::Instant::now();
        let mut granted = 0;
        for i in 0..20_000 {
            let [secret, exact, segment] = &paths[i % 600];
            granted += usize::from(a.check(secret, "read", None).allowed);
            granted += usize::from(a.check(exact, "read", None).allowed);
            granted += usize::from(a.check(segment, "list", None).allowed);
        }
        // 500 of every 600 names exist, for each of the three kinds.
        assert_eq!(granted, 3 * (0..20_000).filter(|i| i % 600 < 500).count());
        // Generous bound, only to catch an accidental quadratic scan.
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }
}
