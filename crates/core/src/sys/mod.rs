//! The `sys/` backend, declared as paths like any engine. Its handlers work on
//! core's own state (mount table, policies, tokens, barrier) rather than on a
//! mount storage view. One file per group of paths.

use std::sync::{Arc, Weak};

use serde_json::{Map, Value};

use arca_sdk::{Framework, LogicalError, RawResponse, Request, Response, SpecialPaths};

use crate::core::Core;

mod path_audit;
mod path_audit_headers;
mod path_capabilities;
mod path_config_state;
mod path_generate_root;
mod path_host;
mod path_in_flight;
mod path_internal;
mod path_keys;
mod path_leases;
mod path_locked_users;
mod path_metrics;
mod path_mounts;
mod path_openapi;
mod path_password_policies;
mod path_policy;
mod path_quotas;
mod path_raft;
mod path_raft_snapshot;
mod path_rotate_keys;
mod path_tools;
mod path_wrapping;

pub use path_metrics::metrics_response;
pub(crate) use path_raft::cluster_error;

pub(crate) struct Sys {
    core: Weak<Core>,
}

impl Sys {
    pub(crate) fn core(&self) -> Result<Arc<Core>, LogicalError> {
        self.core.upgrade().ok_or(LogicalError::Sealed)
    }
}

pub(crate) fn backend(core: Weak<Core>) -> Framework<Sys> {
    let mut paths = Vec::new();
    paths.extend(path_mounts::paths());
    paths.extend(path_audit::paths());
    paths.extend(path_audit_headers::paths());
    paths.extend(path_policy::paths());
    paths.extend(path_password_policies::paths());
    paths.extend(path_capabilities::paths());
    paths.extend(path_internal::paths());
    paths.extend(path_openapi::paths());
    paths.extend(path_keys::paths());
    paths.extend(path_rotate_keys::paths());
    paths.extend(path_generate_root::paths());
    paths.extend(path_leases::paths());
    paths.extend(path_locked_users::paths());
    paths.extend(path_raft::paths());
    paths.extend(path_raft_snapshot::paths());
    paths.extend(path_wrapping::paths());
    paths.extend(path_metrics::paths());
    paths.extend(path_quotas::paths());
    path_metrics::register_gauges(core.clone());
    paths.extend(path_tools::paths());
    paths.extend(path_host::paths());
    paths.extend(path_config_state::paths());
    paths.extend(path_in_flight::paths());
    Framework::new("system", Sys { core }, paths).with_special_paths(SpecialPaths {
        root: [
            "seal",
            "rotate",
            "rotate/keyring",
            // Stricter than Vault: disabling or stretching automatic key
            // rotation weakens every later encryption.
            "rotate/config",
            "rotate/keyring/config",
            // Key ceremonies (OpenBao: sudo).
            "rotate/root",
            "rotate/root/*",
            "rotate/recovery/*",
            // Mints a root token (OpenBao asks no sudo here).
            "generate-root-token/*",
            "remount",
            "auth/*",
            "raw/*",
            "audit",
            "audit/*",
            "config/auditing/*",
            "step-down",
            "leases/lookup/*",
            "leases/revoke-prefix/*",
            "leases/revoke-force/*",
            "revoke-prefix/*",
            "revoke-force/*",
            // They show the host, the configuration and every client's
            // requests: sudo (stricter than OpenBao, which asks only read).
            "host-info",
            "config/state/sanitized",
            "in-flight-req",
        ]
        .map(String::from)
        .to_vec(),
        unauthenticated: [
            // Filters by the caller's token itself (see `path_openapi`).
            "internal/specs/openapi",
            "internal/ui/mounts",
            "internal/ui/mounts/*",
            "wrapping/lookup",
        ]
        .map(String::from)
        .to_vec(),
        // A joining node has no token yet: it proves it holds the unseal
        // key by answering the challenge (see `crate::join`).
        unauthenticated_writes: [
            "storage/raft/bootstrap/challenge",
            "storage/raft/bootstrap/answer",
            // Shows what a wrapping token wraps (path, time, TTL), changes
            // nothing: anyone holding the token may check it (as Vault).
            "wrapping/lookup",
        ]
        .map(String::from)
        .to_vec(),
        available_without_leader: vec![],
        // They use up or create tokens: the active node does that.
        forward_on_standby: [
            "wrapping/wrap",
            "wrapping/unwrap",
            "wrapping/rewrap",
            "audit/*",
            "config/auditing/request-headers/*",
            // The rotation lives in the active node's memory; the root key
            // is replaced where the keyring is current.
            "rotate/root",
            "rotate/root/*",
            "rotate/recovery/*",
            "generate-root-token/*",
        ]
        .map(String::from)
        .to_vec(),
    })
}

/// Vault's legacy `sys/` answers carry the data both in `data` and at the top
/// level of the body (clients read either).
pub(crate) fn legacy(req: &Request, data: Map<String, Value>) -> Response {
    let mut body = Map::new();
    for (k, v) in &data {
        body.insert(k.clone(), v.clone());
    }
    body.insert("request_id".into(), Value::from(req.id.clone()));
    body.insert("lease_id".into(), Value::from(""));
    body.insert("renewable".into(), Value::from(false));
    body.insert("lease_duration".into(), Value::from(0));
    body.insert("data".into(), Value::Object(data));
    body.insert("wrap_info".into(), Value::Null);
    body.insert("warnings".into(), Value::Null);
    body.insert("auth".into(), Value::Null);
    Response {
        raw: Some(RawResponse {
            status: 200,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        }),
        ..Default::default()
    }
}
