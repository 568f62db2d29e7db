//! Vault's unauthenticated ceremony endpoints, `sys/rekey/init|update|verify`
//! and `sys/generate-root/attempt|update`, for clients that still call them
//! (hvac's `start_rekey`, `rekey`, `rekey_multi`,
//! `start_root_token_generation`, `generate_root`; `vault operator rekey`).
//!
//! Invariants:
//! - They are served only where a listener turned them on
//!   (`disable_unauthed_rekey_endpoints = false`,
//!   `disable_unauthed_generate_root_endpoints = false`): anyone who can
//!   reach such a listener can start or cancel a ceremony (HCSEC-2026-08),
//!   which is why they are off by default. The HTTP layer decides; core
//!   serves what it is handed.
//! - They drive the same attempts as the authenticated paths
//!   (`crate::rotate_keys`, `crate::generate_root`): one rotation and one
//!   root generation at a time, whichever endpoints started them, on the
//!   active node (a standby answers `ReadOnly`, so the HTTP layer forwards).
//! - Every call is audited like any request (no token: `auth` is empty);
//!   when audit devices are enabled and none can record the request, it is
//!   refused and nothing happens.
//! - Answers are Vault's legacy plain JSON objects (no response envelope).

use serde_json::{Map, Value};

use arca_sdk::{LogicalError, Operation, Request};

use crate::core::{Core, Reply};
use crate::rotate_keys::{KeyTarget, RotationRequest};
use crate::seal_ops::{decode_key, json_reply};

/// Which family of legacy endpoints a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyFamily {
    Rekey,
    GenerateRoot,
}

/// The legacy ceremony family of a request path (`sys/rekey/init`, ...).
pub fn legacy_ceremony(path: &str) -> Option<LegacyFamily> {
    match path.trim_matches('/') {
        "sys/rekey/init" | "sys/rekey/update" | "sys/rekey/verify" => Some(LegacyFamily::Rekey),
        "sys/generate-root/attempt" | "sys/generate-root/update" => {
            Some(LegacyFamily::GenerateRoot)
        }
        _ => None,
    }
}

fn str_field(req: &Request, name: &str) -> String {
    req.data
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

fn count_field(req: &Request, name: &str) -> Result<usize, LogicalError> {
    match req.data.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str()?.trim().parse().ok())
            .map(|n| n as usize)
            .ok_or_else(|| LogicalError::invalid(format!("{name} must be a whole number"))),
    }
}

fn bool_field(req: &Request, name: &str) -> bool {
    matches!(req.data.get(name), Some(Value::Bool(true)))
        || matches!(
            req.data.get(name).and_then(Value::as_str),
            Some("true" | "1" | "t")
        )
}

fn key_and_nonce(req: &Request) -> Result<(zeroize::Zeroizing<Vec<u8>>, String), LogicalError> {
    let key = str_field(req, "key");
    if key.is_empty() {
        return Err(LogicalError::invalid("missing required field 'key'"));
    }
    let nonce = str_field(req, "nonce");
    if nonce.is_empty() {
        return Err(LogicalError::invalid("missing required field 'nonce'"));
    }
    Ok((zeroize::Zeroizing::new(decode_key(&key)?), nonce))
}

fn ok(m: Map<String, Value>) -> Reply {
    json_reply(200, Value::Object(m))
}

fn no_content() -> Reply {
    Reply::of(arca_sdk::Response::default())
}

impl Core {
    /// Serves one legacy ceremony request (see the module docs).
    pub async fn handle_legacy_ceremony(&self, req: Request) -> Result<Reply, LogicalError> {
        let path = req.path.trim_matches('/').to_string();
        let st = self.unsealed()?;
        drop(st);
        if let Some(c) = self.cluster() {
            if !c.state().is_active {
                return Err(LogicalError::ReadOnly);
            }
        }
        let entry = if self.audit.is_empty() {
            None
        } else {
            let request = crate::audit::request_value(&req, &path, None);
            let e = self
                .audit
                .prepare(crate::audit::entry("request", Value::Null, request));
            self.audit.log_request(&e)?;
            Some(e)
        };
        let out = self.legacy_dispatch(&path, &req).await;
        if let Some(mut e) = entry {
            crate::audit::into_response(&mut e.value);
            match &out {
                Ok(reply) => e.value["response"] = crate::audit::response_value(reply, ""),
                Err(err) => e.value["error"] = Value::from(err.to_string()),
            }
            self.audit.log_response(&e);
        }
        out
    }

    async fn legacy_dispatch(&self, path: &str, req: &Request) -> Result<Reply, LogicalError> {
        use Operation::*;
        let op = req.operation;
        Ok(match (path, op) {
            ("sys/rekey/init", Read) => ok(self.rotation_status(KeyTarget::Root).await?),
            ("sys/rekey/init", Update | Create) => ok(self
                .rotation_start(
                    KeyTarget::Root,
                    RotationRequest {
                        secret_shares: count_field(req, "secret_shares")?,
                        secret_threshold: count_field(req, "secret_threshold")?,
                        pgp_keys: crate::seal_ops::string_list(req, "pgp_keys")?,
                        backup: bool_field(req, "backup"),
                        require_verification: bool_field(req, "require_verification"),
                    },
                )
                .await?),
            ("sys/rekey/init", Delete) => {
                self.rotation_cancel(KeyTarget::Root).await;
                no_content()
            }
            ("sys/rekey/update", Update | Create) => {
                let (key, nonce) = key_and_nonce(req)?;
                ok(self.rotation_update(KeyTarget::Root, &key, &nonce).await?)
            }
            ("sys/rekey/verify", Read) => ok(self.rotation_verify_status(KeyTarget::Root).await?),
            ("sys/rekey/verify", Update | Create) => {
                let (key, nonce) = key_and_nonce(req)?;
                ok(self.rotation_verify(KeyTarget::Root, &key, &nonce).await?)
            }
            ("sys/rekey/verify", Delete) => {
                ok(self.rotation_verify_restart(KeyTarget::Root).await?)
            }
            ("sys/generate-root/attempt", Read) => {
                ok(legacy_root(self.root_generation_status(None).await?))
            }
            ("sys/generate-root/attempt", Update | Create) => ok(legacy_root(
                self.root_generation_start(&str_field(req, "otp"), &str_field(req, "pgp_key"))
                    .await?,
            )),
            ("sys/generate-root/attempt", Delete) => {
                self.root_generation_cancel().await;
                no_content()
            }
            ("sys/generate-root/update", Update | Create) => {
                let key = str_field(req, "key");
                let nonce = str_field(req, "nonce");
                if nonce.is_empty() {
                    return Err(LogicalError::invalid("nonce is required"));
                }
                if key.is_empty() {
                    return Err(LogicalError::invalid("key is required"));
                }
                let key = zeroize::Zeroizing::new(decode_key(&key)?);
                ok(legacy_root(
                    self.root_generation_update(&key, &nonce).await?,
                ))
            }
            _ => {
                return Err(LogicalError::Status {
                    status: 405,
                    message: format!("{} is not served on {path}", op.capability()),
                })
            }
        })
    }
}

/// Vault's legacy generate-root answers also carry the token under its old
/// name.
fn legacy_root(mut m: Map<String, Value>) -> Map<String, Value> {
    let token = m.get("encoded_token").cloned().unwrap_or_default();
    m.insert("encoded_root_token".into(), token);
    m
}
