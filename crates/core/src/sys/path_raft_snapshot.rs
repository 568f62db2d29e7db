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
//! commit index when the request arrived (it waits for the read index). A
//! restore unpacks the archive with bounded sizes
//! (`arca_physical::archive`: a gzip bomb or an oversized member is a 400
//! before it inflates), streaming the records to a temporary file; an
//! archive whose sums do not match is refused before anything changes, and
//! the records are then swapped in atomically by the cluster (a restore
//! that fails half-way leaves the old data in place).

use arca_physical::archive::{self, ArchiveError, Limits};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use arca_sdk::{Ctx, HandlerResult, LogicalError, Operation, Path, RawResponse, Response};

use super::path_raft::cluster_error;
use super::Sys;
use crate::core::Core;

const PURPOSE: &str = "arca raft snapshot v1";

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

fn archive_error(e: ArchiveError) -> LogicalError {
    if e.is_bad_archive() {
        LogicalError::invalid(e.to_string())
    } else {
        internal(e)
    }
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
        let meta = serde_json::to_vec_pretty(&json!({
            "format": "arca-raft-snapshot",
            "version": 1,
            "term": term,
            "index": index,
            "node_id": cl.state().this.node_id,
            "created": chrono::Utc::now().to_rfc3339(),
        }))
        .map_err(internal)?;
        let hashed = state_path.clone();
        let digest = tokio::task::spawn_blocking(move || archive::file_sha256(&hashed))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let sums = archive::sums_text(&meta, &digest);
        let sealed = seal_sums(&core, sums.as_bytes())?;
        let mtime = chrono::Utc::now().timestamp().max(0) as u64;
        let body = tokio::task::spawn_blocking(move || {
            archive::pack(Vec::new(), &meta, &state_path, &sums, &sealed, mtime)
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        drop(dir);
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
        let dir = tempfile::tempdir().map_err(internal)?;
        let (body, into) = (body.to_vec(), dir.path().to_path_buf());
        let unpacked = tokio::task::spawn_blocking(move || {
            archive::unpack(&body[..], &into, &Limits::default())
        })
        .await
        .map_err(internal)?
        .map_err(archive_error)?;
        if !unpacked.sums_match() {
            return Err(LogicalError::invalid(
                "snapshot archive is corrupt: SHA256SUMS does not match its contents",
            ));
        }
        let same_keys = {
            let mine = seal_sums(&core, &unpacked.sums)?;
            use subtle::ConstantTimeEq;
            bool::from(mine.as_bytes().ct_eq(unpacked.sealed.as_slice()))
        };
        if !same_keys && !force {
            return Err(LogicalError::invalid(
                "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check",
            ));
        }
        if !cl.state().is_active {
            return Err(LogicalError::ReadOnly);
        }
        cl.import(&unpacked.state_path)
            .await
            .map_err(cluster_error)?;
        drop(dir);
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
            .raw_body()
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.snapshot_save(c)))
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.snapshot_restore_checked(c))
            })
            .help("GET: a snapshot archive of the cluster's data. POST: restore one."),
        Path::new("storage/raft/snapshot-force")
            .raw_body()
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.snapshot_restore_forced(c))
            })
            .help("Restore a snapshot archive even if it was made under other unseal keys."),
    ]
}
