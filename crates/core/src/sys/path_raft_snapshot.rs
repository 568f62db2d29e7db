//! `sys/storage/raft/snapshot` (GET saves, POST restores) and
//! `sys/storage/raft/snapshot-force` (restore without the key check).
//!
//! The archive is what the bao/vault CLI expects: a gzip-compressed tar with
//! `meta.json`, `state.bin` (this node's replicated records, ciphertext),
//! `SHA256SUMS` over both, and `SHA256SUMS.sealed`: an HMAC of `SHA256SUMS`
//! under a key derived from the root key. A restore checks every sum, and
//! refuses an archive made under other unseal keys unless forced (after a
//! forced restore the node seals: unseal it with the other cluster's keys).
//!
//! Invariants: a save reflects one point in time at or after the cluster's
//! commit index when the request arrived (it waits for the read index); an
//! archive whose sums do not match is refused before anything changes.

use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

use arca_sdk::{Ctx, HandlerResult, LogicalError, Operation, Path, RawResponse, Response};

use super::path_raft::cluster_error;
use super::Sys;
use crate::core::Core;

const PURPOSE: &str = "arca raft snapshot v1";

fn sums_line(name: &str, data: &[u8]) -> String {
    format!("{}  {name}\n", hex::encode(Sha256::digest(data)))
}

fn seal_sums(core: &Core, sums: &[u8]) -> Result<String, LogicalError> {
    let key = core
        .barrier
        .derive_key(PURPOSE)
        .map_err(|e| LogicalError::internal(e.to_string()))?;
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).expect("any key length");
    m.update(sums);
    Ok(hex::encode(m.finalize().into_bytes()))
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::internal(e.to_string())
}

impl Sys {
    async fn snapshot_save(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let cl = core.cluster_or_400()?;
        cl.read_barrier(std::time::Duration::from_secs(10))
            .await
            .map_err(cluster_error)?;
        let dir = tempfile::tempdir().map_err(internal)?;
        let state_path = dir.path().join("state.bin");
        let (term, index) = cl.export(&state_path).await.map_err(cluster_error)?;
        let state = std::fs::read(&state_path).map_err(internal)?;
        let meta = serde_json::to_vec_pretty(&json!({
            "format": "arca-raft-snapshot",
            "version": 1,
            "term": term,
            "index": index,
            "node_id": cl.state().this.node_id,
            "created": chrono::Utc::now().to_rfc3339(),
        }))
        .map_err(internal)?;
        let sums = format!(
            "{}{}",
            sums_line("meta.json", &meta),
            sums_line("state.bin", &state)
        );
        let sealed = seal_sums(&core, sums.as_bytes())?;
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, data) in [
            ("meta.json", meta.as_slice()),
            ("state.bin", state.as_slice()),
            ("SHA256SUMS", sums.as_bytes()),
            ("SHA256SUMS.sealed", sealed.as_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
            h.set_cksum();
            tar.append_data(&mut h, name, data).map_err(internal)?;
        }
        let body = tar
            .into_inner()
            .and_then(|gz| gz.finish())
            .map_err(internal)?;
        Ok(Some(Response {
            raw: Some(RawResponse {
                status: 200,
                content_type: "application/gzip".into(),
                body,
            }),
            ..Default::default()
        }))
    }

    async fn snapshot_restore(&self, c: Ctx<'_>, force: bool) -> HandlerResult {
        let core = self.core()?;
        let cl = core.cluster_or_400()?;
        let body = c
            .req
            .raw_body
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| LogicalError::invalid("the request body must be a snapshot archive"))?;
        let mut members = std::collections::HashMap::new();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(body));
        let entries = ar
            .entries()
            .map_err(|e| LogicalError::invalid(format!("not a snapshot archive: {e}")))?;
        for e in entries {
            let mut e =
                e.map_err(|e| LogicalError::invalid(format!("not a snapshot archive: {e}")))?;
            let name = e.path().map_err(internal)?.to_string_lossy().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data)
                .map_err(|e| LogicalError::invalid(format!("truncated snapshot archive: {e}")))?;
            members.insert(name, data);
        }
        let get = |n: &str| {
            members
                .get(n)
                .ok_or_else(|| LogicalError::invalid(format!("snapshot archive has no {n}")))
        };
        let (meta, state, sums, sealed) = (
            get("meta.json")?,
            get("state.bin")?,
            get("SHA256SUMS")?,
            get("SHA256SUMS.sealed")?,
        );
        let expected = format!(
            "{}{}",
            sums_line("meta.json", meta),
            sums_line("state.bin", state)
        );
        if expected.as_bytes() != sums.as_slice() {
            return Err(LogicalError::invalid(
                "snapshot archive is corrupt: SHA256SUMS does not match its contents",
            ));
        }
        let same_keys = {
            let mine = seal_sums(&core, sums)?;
            use subtle::ConstantTimeEq;
            bool::from(mine.as_bytes().ct_eq(sealed.as_slice()))
        };
        if !same_keys && !force {
            return Err(LogicalError::invalid(
                "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check",
            ));
        }
        if !cl.state().is_active {
            return Err(LogicalError::ReadOnly);
        }
        let dir = tempfile::tempdir().map_err(internal)?;
        let path = dir.path().join("state.bin");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(state).and_then(|_| f.sync_all()))
            .map_err(internal)?;
        cl.import(&path).await.map_err(cluster_error)?;
        tracing::warn!(forced = force, "raft snapshot restored");
        if !same_keys {
            // The data is now under another cluster's keys.
            core.seal().await;
        }
        Ok(None)
    }

    async fn snapshot_restore_checked(&self, c: Ctx<'_>) -> HandlerResult {
        self.snapshot_restore(c, false).await
    }

    async fn snapshot_restore_forced(&self, c: Ctx<'_>) -> HandlerResult {
        self.snapshot_restore(c, true).await
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("storage/raft/snapshot")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.snapshot_save(c)))
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.snapshot_restore_checked(c))
            })
            .help("GET: a snapshot archive of the cluster's data. POST: restore one."),
        Path::new("storage/raft/snapshot-force")
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.snapshot_restore_forced(c))
            })
            .help("Restore a snapshot archive even if it was made under other unseal keys."),
    ]
}
