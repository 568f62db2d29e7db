//! OpenAPI 3 path items from declared paths ([`PathSchema`], plain data a
//! backend in another process can send as well).
//!
//! A path's pattern is a regex below the mount; [`expand_pattern`] turns it
//! into the URL templates it can match: a named group becomes a `{name}`
//! parameter (unless it only matches literal text, then each literal is a
//! path of its own), an alternation or an optional group (`(/keyring)?`,
//! `/?`) gives one template per choice. A construct that has no template
//! (a character class outside a named group) leaves the pattern out of the
//! document rather than describe it wrongly.
//!
//! [`Document`] gathers the mounts' paths: operations as Vault's generator
//! maps them (read and list are `get`, list with a required `list=true`
//! query parameter on the template with a trailing slash; create and update
//! are one `post`; patch takes `application/merge-patch+json`), fields as
//! typed properties of the request body (durations are strings in Vault's
//! `duration` format, comma-separated lists arrays, maps objects) with their
//! descriptions, defaults, allowed values and required flags. A path that
//! only reads takes its fields from the query string. `operationId`s are
//! unique in the document.

use std::collections::{BTreeMap, HashSet};

use regex::Regex;
use regex_syntax::ast::{self, Ast};
use serde_json::{json, Map, Value};

use crate::field::FieldType;
use crate::framework::{FieldSchema, PathSchema};
use crate::logical::Operation;

/// One piece of a URL template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    Lit(String),
    Param(String),
}

/// At most this many templates per pattern (alternations multiply).
const MAX_TEMPLATES: usize = 64;

/// The URL templates a path pattern matches, or `None` when the pattern
/// has a construct no template can express.
pub fn expand_pattern(pattern: &str) -> Option<Vec<Vec<Piece>>> {
    let ast = ast::parse::Parser::new().parse(pattern).ok()?;
    let mut out = expand(&ast)?;
    for t in &mut out {
        *t = normalize(std::mem::take(t));
    }
    let mut seen = HashSet::new();
    out.retain(|t| seen.insert(t.clone()));
    Some(out)
}

/// Merges adjacent literals.
fn normalize(t: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for p in t {
        match (out.last_mut(), p) {
            (Some(Piece::Lit(a)), Piece::Lit(b)) => a.push_str(&b),
            (_, Piece::Lit(b)) if b.is_empty() => {}
            (_, p) => out.push(p),
        }
    }
    out
}

fn product(a: Vec<Vec<Piece>>, b: Vec<Vec<Piece>>) -> Option<Vec<Vec<Piece>>> {
    if a.len() * b.len() > MAX_TEMPLATES {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in &b {
            let mut t = x.clone();
            t.extend(y.iter().cloned());
            out.push(t);
        }
    }
    Some(out)
}

fn expand(a: &Ast) -> Option<Vec<Vec<Piece>>> {
    match a {
        Ast::Empty(_) | Ast::Flags(_) | Ast::Assertion(_) => Some(vec![vec![]]),
        Ast::Literal(l) => Some(vec![vec![Piece::Lit(l.c.to_string())]]),
        Ast::Dot(_) | Ast::ClassUnicode(_) | Ast::ClassPerl(_) | Ast::ClassBracketed(_) => None,
        Ast::Repetition(r) => match r.op.kind {
            ast::RepetitionKind::ZeroOrOne => {
                let mut v = vec![vec![]];
                v.extend(expand(&r.ast)?);
                Some(v)
            }
            _ => None,
        },
        Ast::Group(g) => match &g.kind {
            ast::GroupKind::CaptureName { name, .. } => {
                // A group that only matches literal text (`json|pem|der`,
                // `/delta`) is spelled out; anything else is a parameter.
                match expand(&g.ast) {
                    Some(v)
                        if v.iter()
                            .all(|t| t.iter().all(|p| matches!(p, Piece::Lit(_)))) =>
                    {
                        Some(v)
                    }
                    _ => Some(vec![vec![Piece::Param(name.name.clone())]]),
                }
            }
            _ => expand(&g.ast),
        },
        Ast::Alternation(alt) => {
            let mut out = Vec::new();
            for x in &alt.asts {
                out.extend(expand(x)?);
                if out.len() > MAX_TEMPLATES {
                    return None;
                }
            }
            Some(out)
        }
        Ast::Concat(c) => {
            let mut out = vec![vec![]];
            for x in &c.asts {
                out = product(out, expand(x)?)?;
            }
            Some(out)
        }
    }
}

fn render(t: &[Piece]) -> String {
    t.iter()
        .map(|p| match p {
            Piece::Lit(s) => s.clone(),
            Piece::Param(n) => format!("{{{n}}}"),
        })
        .collect()
}

/// A concrete path a template stands for, with every parameter set to
/// `sample` (to check it against the pattern and the special paths).
fn sample(t: &[Piece], sample: &str) -> String {
    t.iter()
        .map(|p| match p {
            Piece::Lit(s) => s.as_str(),
            Piece::Param(_) => sample,
        })
        .collect()
}

/// Vault's OpenAPI type of a field: `(type, format, items)`.
fn type_schema(ty: FieldType) -> Map<String, Value> {
    let v = match ty {
        FieldType::String => json!({"type": "string"}),
        FieldType::Int => json!({"type": "integer"}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Duration => json!({"type": "string", "format": "duration"}),
        FieldType::CommaStringSlice => json!({"type": "array", "items": {"type": "string"}}),
        FieldType::Map => json!({"type": "object"}),
        FieldType::StringMap => {
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        }
        FieldType::Raw => json!({}),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The field's default as a value of its OpenAPI type, or `None` when it
/// has none that fits (a validator checks defaults against the schema).
fn typed_default(f: &FieldSchema) -> Option<Value> {
    let d = f.default.as_ref()?;
    let v = match (f.ty, d) {
        (_, Value::Null) => return None,
        (FieldType::String, Value::String(_)) => d.clone(),
        (FieldType::String, Value::Number(n)) => Value::from(n.to_string()),
        (FieldType::String, Value::Bool(b)) => Value::from(b.to_string()),
        (FieldType::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => d.clone(),
        (FieldType::Int, Value::String(s)) => Value::from(s.trim().parse::<i64>().ok()?),
        (FieldType::Bool, Value::Bool(_)) => d.clone(),
        (FieldType::Duration, Value::Number(n)) => Value::from(format!("{n}s")),
        (FieldType::Duration, Value::String(_)) => d.clone(),
        (FieldType::CommaStringSlice, Value::Array(a)) if a.iter().all(|x| x.is_string()) => {
            d.clone()
        }
        (FieldType::CommaStringSlice, Value::String(s)) => Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(Value::from)
                .collect(),
        ),
        (FieldType::Map, Value::Object(_)) => d.clone(),
        (FieldType::StringMap, Value::Object(m)) if m.values().all(|x| x.is_string()) => d.clone(),
        (FieldType::Raw, _) => d.clone(),
        _ => return None,
    };
    if f.ty == FieldType::String && !f.allowed.is_empty() {
        let s = v.as_str()?;
        if !f.allowed.iter().any(|a| a == s) {
            return None;
        }
    }
    Some(v)
}

/// A field's property schema (type, description, default, enum).
pub fn field_schema(f: &FieldSchema) -> Value {
    let mut m = type_schema(f.ty);
    if !f.description.is_empty() {
        m.insert("description".into(), Value::from(f.description.clone()));
    }
    if f.ty == FieldType::String && !f.allowed.is_empty() {
        m.insert("enum".into(), json!(f.allowed));
    }
    if let Some(d) = typed_default(f) {
        m.insert("default".into(), d);
    }
    if f.sensitive {
        m.insert("x-vault-displaySensitive".into(), Value::Bool(true));
    }
    Value::Object(m)
}

/// One mount's part of the document.
pub struct MountDoc<'a> {
    /// The mount's full path with a trailing slash (`secret/`,
    /// `auth/userpass/`, `sys/`).
    pub prefix: &'a str,
    /// A `{name}` parameter in `prefix` standing for the mount path
    /// (Vault's `generic_mount_paths`), with its description.
    pub mount_param: Option<(&'a str, &'a str)>,
    /// The OpenAPI tag: `secrets`, `auth`, `system` or `identity`.
    pub tag: &'a str,
    pub paths: &'a [PathSchema],
    /// Does this path (below the mount) need `sudo`?
    pub sudo: &'a dyn Fn(&str) -> bool,
    /// Is this operation on this path (below the mount) served without a
    /// token?
    pub unauthenticated: &'a dyn Fn(Operation, &str) -> bool,
}

/// An OpenAPI 3 document being assembled.
#[derive(Default)]
pub struct Document {
    paths: BTreeMap<String, Map<String, Value>>,
    schemas: BTreeMap<String, Value>,
    operation_ids: HashSet<String>,
    /// Appended to every operationId (Vault's `context`).
    context: String,
    /// Patterns left out: no template can express them.
    pub skipped: Vec<String>,
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn camel(s: &str) -> String {
    s.split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

impl Document {
    pub fn new(context: &str) -> Document {
        Document {
            context: context.to_string(),
            ..Default::default()
        }
    }

    fn operation_id(&mut self, verb: &str, path: &str) -> String {
        let mut base = format!("{verb}-{}", slug(path));
        if !self.context.is_empty() {
            base = format!("{base}-{}", slug(&self.context));
        }
        let mut id = base.clone();
        let mut n = 2;
        while !self.operation_ids.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// Adds the paths of one mount.
    pub fn add_mount(&mut self, m: &MountDoc<'_>) {
        for p in m.paths {
            self.add_path(m, p);
        }
    }

    fn add_path(&mut self, m: &MountDoc<'_>, p: &PathSchema) {
        let Some(templates) = expand_pattern(&p.pattern) else {
            self.skipped.push(format!("{}{}", m.prefix, p.pattern));
            return;
        };
        let Ok(re) = Regex::new(&format!("^(?:{})$", p.pattern)) else {
            self.skipped.push(format!("{}{}", m.prefix, p.pattern));
            return;
        };
        let matches = |t: &[Piece]| ["a", "1"].iter().any(|s| re.is_match(&sample(t, s)));
        // Templates that differ only by a trailing slash are one path:
        // reads and writes without the slash, a list with it.
        let mut bases: Vec<Vec<Piece>> = Vec::new();
        for t in templates {
            let mut b = t.clone();
            let pieces = b.len();
            if let Some(Piece::Lit(s)) = b.last_mut() {
                if s.len() > 1 || pieces > 1 {
                    let trimmed = s.trim_end_matches('/').to_string();
                    *s = trimmed;
                }
            }
            let b = normalize(b);
            if !bases.contains(&b) {
                bases.push(b);
            }
        }
        for base in bases {
            let mut slashed = base.clone();
            slashed.push(Piece::Lit("/".into()));
            let slashed = normalize(slashed);
            let plain_ok = matches(&base);
            let slash_ok = matches(&slashed);
            if !plain_ok && !slash_ok {
                continue;
            }
            let (plain, list_t) = match (plain_ok, slash_ok) {
                (true, true) => (base.clone(), slashed.clone()),
                (true, false) => (base.clone(), base.clone()),
                _ => (slashed.clone(), slashed.clone()),
            };
            let mut ops: Vec<(Vec<Piece>, Operation)> = Vec::new();
            for o in &p.operations {
                match o.operation {
                    Operation::List => ops.push((list_t.clone(), Operation::List)),
                    Operation::Read
                    | Operation::Create
                    | Operation::Update
                    | Operation::Patch
                    | Operation::Delete => ops.push((plain.clone(), o.operation)),
                    _ => {}
                }
            }
            for (t, op) in ops {
                self.add_operation(m, p, &t, op);
            }
        }
    }

    fn add_operation(&mut self, m: &MountDoc<'_>, p: &PathSchema, t: &[Piece], op: Operation) {
        let rel = render(t);
        let full = format!("/{}{}", m.prefix, rel);
        let params: Vec<&str> = t
            .iter()
            .filter_map(|x| match x {
                Piece::Param(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        let concrete = sample(t, "a");
        let method = match op {
            Operation::Read | Operation::List => "get",
            Operation::Create | Operation::Update => "post",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            _ => return,
        };
        let verb = match op {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create | Operation::Update => "write",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            _ => return,
        };
        let exists = self
            .paths
            .get(&full)
            .is_some_and(|item| item.contains_key(method));
        if exists {
            // Create and update are one `post`; a read and a list on the
            // same template are one `get` whose `list` is optional.
            if method == "get" {
                if let Some(Value::Object(get)) =
                    self.paths.get_mut(&full).and_then(|i| i.get_mut("get"))
                {
                    let has_list = get
                        .get("parameters")
                        .and_then(|v| v.as_array())
                        .is_some_and(|ps| ps.iter().any(|x| x["name"] == "list"));
                    if op != Operation::List && !has_list {
                        // Two reads: the first declared path answers.
                        return;
                    }
                    let list = json!({"name": "list", "in": "query", "description": "Return a list if `true`", "required": false, "schema": {"type": "string", "enum": ["true"]}});
                    if let Some(Value::Array(ps)) = get.get_mut("parameters") {
                        for x in ps.iter_mut() {
                            if x["name"] == "list" {
                                *x = list.clone();
                            }
                        }
                        if !ps.iter().any(|x| x["name"] == "list") {
                            ps.push(list);
                        }
                    } else {
                        get.insert("parameters".into(), json!([list]));
                    }
                }
            }
            return;
        }
        let id = self.operation_id(verb, &format!("{}{}", m.prefix, rel));
        let summary = p
            .operations
            .iter()
            .find(|o| o.operation == op)
            .map(|o| o.summary.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| p.help.lines().next().unwrap_or_default().to_string());
        let body_fields: Vec<&FieldSchema> = p
            .fields
            .iter()
            .filter(|f| !params.contains(&f.name.as_str()))
            // A capture of the pattern spelled out as literal text.
            .filter(|f| !p.pattern.contains(&format!("(?P<{}>", f.name)))
            .collect();
        let read_only = p
            .operations
            .iter()
            .all(|o| matches!(o.operation, Operation::Read | Operation::List));
        let mut o = Map::new();
        o.insert("summary".into(), Value::from(summary));
        o.insert("operationId".into(), Value::from(id.clone()));
        o.insert("tags".into(), json!([m.tag]));
        let mut query = Vec::new();
        if op == Operation::List {
            query.push(json!({"name": "list", "in": "query", "description": "Must be `true`", "required": true, "schema": {"type": "string", "enum": ["true"]}}));
        }
        if method == "get" || method == "delete" {
            if read_only {
                for f in &body_fields {
                    if matches!(f.ty, FieldType::Map | FieldType::StringMap | FieldType::Raw) {
                        continue;
                    }
                    query.push(json!({
                        "name": f.name,
                        "in": "query",
                        "description": f.description,
                        "required": f.required,
                        "schema": field_schema(f),
                    }));
                }
            }
        } else {
            let content_type = if p.raw_body {
                "application/octet-stream"
            } else if op == Operation::Patch {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            let schema = if p.raw_body {
                json!({"type": "string", "format": "binary"})
            } else {
                let mut props = Map::new();
                for f in &body_fields {
                    props.insert(f.name.clone(), field_schema(f));
                }
                let mut s = Map::new();
                s.insert("type".into(), Value::from("object"));
                s.insert("properties".into(), Value::Object(props));
                let required: Vec<&str> = body_fields
                    .iter()
                    .filter(|f| f.required)
                    .map(|f| f.name.as_str())
                    .collect();
                if !required.is_empty() && op != Operation::Patch {
                    s.insert("required".into(), json!(required));
                }
                let mut name = format!("{}Request", camel(&id));
                let mut n = 2;
                while self.schemas.contains_key(&name) {
                    name = format!("{}Request{n}", camel(&id));
                    n += 1;
                }
                self.schemas.insert(name.clone(), Value::Object(s));
                json!({"$ref": format!("#/components/schemas/{name}")})
            };
            o.insert(
                "requestBody".into(),
                json!({"required": p.raw_body || op == Operation::Patch || !body_fields.iter().all(|f| !f.required), "content": {content_type: {"schema": schema}}}),
            );
        }
        if !query.is_empty() {
            o.insert("parameters".into(), Value::Array(query));
        }
        o.insert(
            "responses".into(),
            json!({"200": {"description": "OK"}, "204": {"description": "OK (empty body)"}}),
        );
        if (m.unauthenticated)(op, &concrete) {
            o.insert("x-vault-unauthenticated".into(), Value::Bool(true));
        }

        let item = self.paths.entry(full).or_default();
        if item.is_empty() {
            if !p.help.is_empty() {
                item.insert("description".into(), Value::from(p.help.clone()));
            }
            let mut ps: Vec<Value> = Vec::new();
            if let Some((name, description)) = m.mount_param {
                ps.push(json!({"name": name, "description": description, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            if !params.is_empty() {
                ps.extend(params
                    .iter()
                    .map(|n| {
                        let description = p
                            .fields
                            .iter()
                            .find(|f| f.name == *n)
                            .map(|f| f.description.clone())
                            .unwrap_or_default();
                        json!({"name": n, "description": description, "in": "path", "required": true, "schema": {"type": "string"}})
                    }));
            }
            if !ps.is_empty() {
                item.insert("parameters".into(), Value::Array(ps));
            }
            if (m.sudo)(&concrete) {
                item.insert("x-vault-sudo".into(), Value::Bool(true));
            }
        }
        if matches!(op, Operation::Create | Operation::Update)
            && (p.existence_check
                || p.operations
                    .iter()
                    .any(|o| o.operation == Operation::Create))
        {
            item.insert("x-vault-createSupported".into(), Value::Bool(true));
        }
        item.insert(method.into(), Value::Object(o));
    }

    /// The finished document.
    pub fn into_json(self, info: Value) -> Value {
        let paths: Map<String, Value> = self
            .paths
            .into_iter()
            .map(|(k, v)| (k, Value::Object(v)))
            .collect();
        let schemas: Map<String, Value> = self.schemas.into_iter().collect();
        json!({
            "openapi": "3.0.2",
            "info": info,
            "paths": paths,
            "components": {"schemas": schemas},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> Vec<String> {
        expand_pattern(p)
            .unwrap_or_else(|| panic!("{p} did not expand"))
            .iter()
            .map(|x| render(x))
            .collect()
    }

    #[test]
    fn patterns_expand_to_templates() {
        assert_eq!(t("data/(?P<path>.*)"), vec!["data/{path}"]);
        assert_eq!(t("users/?"), vec!["users", "users/"]);
        assert_eq!(
            t("rotate(/keyring)?/config"),
            vec!["rotate/config", "rotate/keyring/config"]
        );
        assert_eq!(
            t(r"hash(?:/(?P<urlalgorithm>[\w-]+))?"),
            vec!["hash", "hash/{urlalgorithm}"]
        );
        assert_eq!(
            t(r"issuer/(?P<issuer_ref>[\w-]+)/(?P<format>json|pem|der)"),
            vec![
                "issuer/{issuer_ref}/json",
                "issuer/{issuer_ref}/pem",
                "issuer/{issuer_ref}/der"
            ]
        );
        assert_eq!(
            t("crl(?P<delta>/delta)?(?P<format>/pem)?"),
            vec!["crl", "crl/pem", "crl/delta", "crl/delta/pem"]
        );
        assert_eq!(
            t(r"roles/(?P<name>\w(([\w.-]+)?\w)?)"),
            vec!["roles/{name}"]
        );
        assert!(expand_pattern("keys/[a-z]+").is_none());
    }

    fn schema(pattern: &str, fields: Vec<FieldSchema>, ops: &[Operation]) -> PathSchema {
        PathSchema {
            pattern: pattern.into(),
            help: "Help text.".into(),
            fields,
            operations: ops
                .iter()
                .map(|o| crate::framework::OperationSchema {
                    operation: *o,
                    summary: String::new(),
                    forward_on_standby: false,
                    available_without_leader: false,
                })
                .collect(),
            existence_check: true,
            raw_body: false,
            arbitrary_fields: false,
        }
    }

    fn field(name: &str, ty: FieldType, default: Option<Value>, required: bool) -> FieldSchema {
        FieldSchema {
            name: name.into(),
            ty,
            description: format!("The {name}."),
            default,
            required,
            allowed: vec![],
            sensitive: false,
        }
    }

    #[test]
    fn operations_fields_and_parameters() {
        let paths = vec![
            schema(
                "roles/(?P<name>[^/]+)",
                vec![
                    field("name", FieldType::String, None, true),
                    field("ttl", FieldType::Duration, Some(json!(3600)), false),
                    field("max", FieldType::Int, Some(json!(5)), false),
                    field(
                        "tags",
                        FieldType::CommaStringSlice,
                        Some(json!("a,b")),
                        false,
                    ),
                    field("secret", FieldType::String, None, true),
                ],
                &[Operation::Read, Operation::Update, Operation::Delete],
            ),
            schema("roles/?", vec![], &[Operation::List]),
        ];
        let no = |_: &str| false;
        let unauth = |_: Operation, _: &str| false;
        let mut d = Document::new("");
        d.add_mount(&MountDoc {
            prefix: "pki/",
            mount_param: None,
            tag: "secrets",
            paths: &paths,
            sudo: &no,
            unauthenticated: &unauth,
        });
        assert!(d.skipped.is_empty());
        let doc = d.into_json(json!({"title": "t", "version": "1"}));
        let item = &doc["paths"]["/pki/roles/{name}"];
        assert_eq!(item["parameters"][0]["name"], "name");
        assert_eq!(item["parameters"][0]["in"], "path");
        assert_eq!(item["x-vault-createSupported"], true);
        for m in ["get", "post", "delete"] {
            assert!(item[m]["operationId"].is_string(), "{m}: {item}");
        }
        let r = item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let name = r.rsplit('/').next().unwrap();
        let body = &doc["components"]["schemas"][name];
        assert_eq!(body["properties"]["ttl"]["type"], "string");
        assert_eq!(body["properties"]["ttl"]["default"], "3600s");
        assert_eq!(body["properties"]["max"]["type"], "integer");
        assert_eq!(body["properties"]["tags"]["default"], json!(["a", "b"]));
        assert_eq!(body["required"], json!(["secret"]));
        assert!(body["properties"].get("name").is_none(), "{body}");
        let list = &doc["paths"]["/pki/roles/"]["get"];
        assert_eq!(list["parameters"][0]["name"], "list");
        assert_eq!(list["parameters"][0]["required"], true);
        assert!(doc["paths"].get("/pki/roles").is_none(), "{doc}");
    }

    #[test]
    fn operation_ids_are_unique() {
        let paths = vec![
            schema("crl/pem", vec![], &[Operation::Read]),
            schema("crl-pem", vec![], &[Operation::Read]),
        ];
        let no = |_: &str| false;
        let unauth = |_: Operation, _: &str| true;
        let mut d = Document::new("");
        d.add_mount(&MountDoc {
            prefix: "pki/",
            mount_param: None,
            tag: "secrets",
            paths: &paths,
            sudo: &no,
            unauthenticated: &unauth,
        });
        let doc = d.into_json(json!({}));
        let a = &doc["paths"]["/pki/crl/pem"]["get"];
        let b = &doc["paths"]["/pki/crl-pem"]["get"];
        assert_ne!(a["operationId"], b["operationId"]);
        assert_eq!(a["x-vault-unauthenticated"], true);
    }
}
