//! `GET sys/internal/specs/openapi`: an OpenAPI 3 document generated from
//! the path declarations of every mounted backend (`Backend::schema`, plain
//! data, so a backend in another process can describe itself too), each
//! mount's paths under its mount path (see `arca_sdk::openapi` for how a
//! pattern becomes templates, operations and typed fields).
//!
//! Invariants:
//! - Declarations only: no handler runs, no storage is read, so no data
//!   is ever in the document.
//! - As in Vault, the endpoint is unauthenticated at the ACL layer and the
//!   document holds only what the caller may see: with a token, the mounts
//!   it has any capability under (root: all of them, `sys/` included);
//!   without a valid token, only mounts tuned `listing_visibility=unauth`.
//! - The answer is the document itself (not in a `data` envelope), as
//!   Vault's.

use serde_json::json;

use arca_sdk::openapi::{Document, MountDoc};
use arca_sdk::{
    Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, RawResponse, Response,
};

use super::Sys;
use crate::core::now;
use crate::router::Route;

/// Mounts whose path is fixed: `generic_mount_paths` keeps their path.
fn fixed_mount(kind: &str) -> bool {
    matches!(kind, "system" | "identity" | "cubbyhole" | "token")
}

/// The name of a mount's path parameter in `generic_mount_paths` mode:
/// one per engine type (KV version 2 is `kv-v2`, as Vault names it).
fn generic_name(r: &Route) -> String {
    let mut kind = r.entry.kind.clone();
    if kind == "kv" && r.entry.options.get("version").is_some_and(|v| v == "2") {
        kind = "kv-v2".into();
    }
    format!("{kind}_mount_path")
}

impl Sys {
    async fn openapi(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let st = core.unsealed()?;
        let generic = c.data.bool_or("generic_mount_paths", false)?;
        let context = c.data.str_or("context", "")?;
        if context.len() > 128 {
            return Err(LogicalError::invalid(
                "context must be at most 128 characters",
            ));
        }
        let token = match c.req.client_token.as_deref() {
            Some(t) if !t.is_empty() => st.tokens.lookup(t, now()).await?,
            _ => None,
        };
        let acl = match &token {
            Some(t) => Some(core.token_acl(&st, t).await?),
            None => None,
        };
        let router = core.router()?;
        let mut routes: Vec<_> = router.routes().to_vec();
        routes.sort_by(|a, b| a.full_path.cmp(&b.full_path));

        let mut doc = Document::new(&context);
        let mut generic_seen = std::collections::HashSet::new();
        for r in routes {
            let visible = match &acl {
                Some(acl) => acl.has_mount_access(&r.full_path),
                None => r.entry.config.listing_visibility == "unauth",
            };
            if !visible {
                continue;
            }
            let tag = match (r.auth, r.entry.kind.as_str()) {
                (true, _) => "auth",
                (false, "system") => "system",
                (false, "identity") => "identity",
                _ => "secrets",
            };
            let name = generic_name(&r);
            let (prefix, mount_param) = if generic && !fixed_mount(&r.entry.kind) {
                if !generic_seen.insert(name.clone()) {
                    // One description per engine type.
                    continue;
                }
                let prefix = if r.auth {
                    format!("auth/{{{name}}}/")
                } else {
                    format!("{{{name}}}/")
                };
                (prefix, Some(name.as_str()))
            } else {
                (r.full_path.clone(), None)
            };
            let schema = r.backend.schema();
            let special = &r.special;
            let sudo = |p: &str| special.root.matches(p);
            let unauth = |op: Operation, p: &str| special.is_unauthenticated(op, p);
            doc.add_mount(&MountDoc {
                prefix: &prefix,
                mount_param: mount_param.map(|n| (n, "Path the backend was mounted at")),
                tag,
                paths: &schema,
                sudo: &sudo,
                unauthenticated: &unauth,
            });
        }
        if !doc.skipped.is_empty() {
            tracing::debug!(patterns = ?doc.skipped, "path patterns left out of the OpenAPI document");
        }
        let body = doc.into_json(json!({
            "title": "Arca API",
            "description": "The HTTP API of Arca, which speaks HashiCorp Vault's API: every path below is relative to /v1.",
            "version": env!("CARGO_PKG_VERSION"),
            "license": {"name": "Mozilla Public License 2.0", "url": "https://www.mozilla.org/en-US/MPL/2.0"},
        }));
        Ok(Some(Response {
            raw: Some(RawResponse {
                status: 200,
                content_type: "application/json".into(),
                body: serde_json::to_vec(&body)
                    .map_err(|e| LogicalError::internal(e.to_string()))?,
            }),
            ..Default::default()
        }))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![Path::new("internal/specs/openapi")
        .field(Field::new(
            "generic_mount_paths",
            FieldType::Bool,
            "Name each mount path by a parameter (`{kv-v2_mount_path}`): one description per engine type.",
        ).default(false))
        .field(Field::new(
            "context",
            FieldType::String,
            "Appended to every operationId (at most 128 characters).",
        ))
        .op(Operation::Read, |b: &Sys, c| Box::pin(b.openapi(c)))
        .help("An OpenAPI 3 document of the paths of every mount the caller can see.")]
}
