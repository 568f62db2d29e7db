//! `sys/rotate/root/init|update|verify|backup`: rotation of the unseal key shares
//! by a token with sudo (OpenBao ≥ 2.4's authenticated rekey, what `bao
//! operator rotate-keys` calls). The state machine is `crate::rotate_keys`.
//! `POST sys/rotate/root` replaces the root key itself, without shares.
//! `sys/rotate/recovery/*` is the same for the recovery key of an auto
//! seal (a Shamir seal has none and says so, as OpenBao does).

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;
use crate::rotate_keys::{KeyTarget, RotationRequest};

/// `sys/rotate/root/*` or `sys/rotate/recovery/*`.
fn target(c: &Ctx<'_>) -> KeyTarget {
    if c.req.path.contains("rotate/recovery/") {
        KeyTarget::Recovery
    } else {
        KeyTarget::Root
    }
}

fn key_and_nonce(c: &Ctx<'_>) -> Result<(Vec<u8>, String), LogicalError> {
    let key = c
        .data
        .get_str("key")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| LogicalError::invalid("missing required field 'key'"))?;
    let nonce = c
        .data
        .get_str("nonce")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| LogicalError::invalid("missing required field 'nonce'"))?;
    Ok((crate::seal_ops::decode_key(&key)?, nonce))
}

fn count(c: &Ctx<'_>, name: &str) -> Result<usize, LogicalError> {
    let n = c.data.get_i64(name)?.unwrap_or(0);
    usize::try_from(n).map_err(|_| LogicalError::invalid(format!("{name} must not be negative")))
}

impl Sys {
    async fn rotate_init_read(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::data(
            self.core()?.rotation_status(target(&c)).await?,
        )))
    }

    async fn rotate_init_write(&self, c: Ctx<'_>) -> HandlerResult {
        let r = RotationRequest {
            secret_shares: count(&c, "secret_shares")?,
            secret_threshold: count(&c, "secret_threshold")?,
            pgp_keys: c.data.get_list("pgp_keys")?.unwrap_or_default(),
            backup: c.data.get_bool("backup")?.unwrap_or(false),
            require_verification: c.data.get_bool("require_verification")?.unwrap_or(false),
        };
        Ok(Some(Response::data(
            self.core()?.rotation_start(target(&c), r).await?,
        )))
    }

    async fn rotate_init_delete(&self, c: Ctx<'_>) -> HandlerResult {
        self.core()?.rotation_cancel(target(&c)).await;
        Ok(None)
    }

    async fn rotate_update(&self, c: Ctx<'_>) -> HandlerResult {
        let (key, nonce) = key_and_nonce(&c)?;
        let key = zeroize::Zeroizing::new(key);
        Ok(Some(Response::data(
            self.core()?
                .rotation_update(target(&c), &key, &nonce)
                .await?,
        )))
    }

    async fn rotate_verify_read(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::data(
            self.core()?.rotation_verify_status(target(&c)).await?,
        )))
    }

    async fn rotate_verify_write(&self, c: Ctx<'_>) -> HandlerResult {
        let (key, nonce) = key_and_nonce(&c)?;
        let key = zeroize::Zeroizing::new(key);
        Ok(Some(Response::data(
            self.core()?
                .rotation_verify(target(&c), &key, &nonce)
                .await?,
        )))
    }

    async fn rotate_verify_delete(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::data(
            self.core()?.rotation_verify_restart(target(&c)).await?,
        )))
    }

    async fn rotate_backup_read(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(self
            .core()?
            .rotation_backup(target(&c))
            .await?
            .map(Response::data))
    }

    /// `POST sys/rotate/root`: a new root key, no shares (`crate::root_key`).
    async fn rotate_root(&self, _c: Ctx<'_>) -> HandlerResult {
        self.core()?.rotate_root_key().await?;
        Ok(None)
    }

    async fn rotate_backup_delete(&self, c: Ctx<'_>) -> HandlerResult {
        self.core()?.rotation_backup_delete(target(&c)).await?;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    let key = || Field::new("key", FieldType::String, "One key share (hex or base64).");
    let nonce = || Field::new("nonce", FieldType::String, "The nonce of the rotation.");
    vec![
        Path::new("rotate/root")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rotate_root(c)))
            .help("Replace the root key (the key that encrypts the keyring) without key shares; the shares and the data stay."),
        Path::new("rotate/(root|recovery)/init")
            .field(Field::new(
                "secret_shares",
                FieldType::Int,
                "How many new shares to split the new unseal key into.",
            ))
            .field(Field::new(
                "secret_threshold",
                FieldType::Int,
                "How many of the new shares rebuild the new unseal key.",
            ))
            .field(Field::new(
                "pgp_keys",
                FieldType::CommaStringSlice,
                "Holders' PGP public keys (base64), one per new share: each share is returned encrypted to its holder.",
            ))
            .field(Field::new(
                "backup",
                FieldType::Bool,
                "Keep the PGP-encrypted shares (with pgp_keys), readable at sys/rotate/root/backup.",
            ))
            .field(Field::new(
                "require_verification",
                FieldType::Bool,
                "The new shares take effect only once a threshold of them is entered back (sys/rotate/root/verify).",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.rotate_init_read(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rotate_init_write(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.rotate_init_delete(c)))
            .help("Start, read or cancel a rotation of the unseal key shares (root) or of the recovery key shares of an auto seal (recovery)."),
        Path::new("rotate/(root|recovery)/update")
            .field(key())
            .field(nonce())
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rotate_update(c)))
            .help("Enter one current key share; the one that reaches the threshold gets the new shares."),
        Path::new("rotate/(root|recovery)/verify")
            .field(key())
            .field(nonce())
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.rotate_verify_read(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.rotate_verify_write(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.rotate_verify_delete(c)))
            .help("Enter the new shares back before they replace the old ones (require_verification)."),
        Path::new("rotate/(root|recovery)/backup")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.rotate_backup_read(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.rotate_backup_delete(c)))
            .help("The PGP-encrypted shares the last rotation with backup=true kept."),
    ]
}
