//! `sys/generate-root-token/attempt|update` and `sys/decode-token`: a new
//! root token from a quorum of unseal key shares, as OpenBao 2.7's `bao
//! operator generate-root` calls them (state machine: `crate::generate_root`).
//! Stricter than OpenBao: the caller needs sudo on these paths (they mint
//! a root token).

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;

impl Sys {
    async fn generate_root_read(&self, _c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::data(
            self.core()?.root_generation_status(None).await?,
        )))
    }

    async fn generate_root_start(&self, c: Ctx<'_>) -> HandlerResult {
        let otp = c.data.get_str("otp")?.unwrap_or_default();
        let pgp_key = c.data.get_str("pgp_key")?.unwrap_or_default();
        Ok(Some(Response::data(
            self.core()?
                .root_generation_start(otp.trim(), pgp_key.trim())
                .await?,
        )))
    }

    async fn generate_root_cancel(&self, _c: Ctx<'_>) -> HandlerResult {
        self.core()?.root_generation_cancel().await;
        Ok(None)
    }

    async fn generate_root_update(&self, c: Ctx<'_>) -> HandlerResult {
        let nonce = c
            .data
            .get_str("nonce")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| LogicalError::invalid("nonce is required"))?;
        let key = c
            .data
            .get_str("key")?
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| LogicalError::invalid("key is required"))?;
        let key = zeroize::Zeroizing::new(crate::seal_ops::decode_key(&key)?);
        Ok(Some(Response::data(
            self.core()?.root_generation_update(&key, &nonce).await?,
        )))
    }

    async fn decode_token(&self, c: Ctx<'_>) -> HandlerResult {
        let encoded = c.data.get_str("encoded_token")?.unwrap_or_default();
        let otp = c.data.get_str("otp")?.unwrap_or_default();
        if encoded.is_empty() || otp.is_empty() {
            return Err(LogicalError::invalid(
                "provided 'encoded_token' or 'otp' is empty",
            ));
        }
        let token = crate::generate_root::decode_token(&encoded, &otp)?;
        let mut data = serde_json::Map::new();
        data.insert("token".into(), token.as_str().into());
        Ok(Some(Response::data(data)))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("generate-root-token/attempt")
            .field(Field::new(
                "otp",
                FieldType::String,
                "One-time password (28 characters) the new token is encoded with; empty: one is generated and returned.",
            ))
            .field(Field::new(
                "pgp_key",
                FieldType::String,
                "A PGP public key (base64) to encrypt the new token to, instead of an OTP.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.generate_root_read(c)))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.generate_root_start(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.generate_root_cancel(c)))
            .help("Start, read or cancel the generation of a new root token."),
        Path::new("generate-root-token/update")
            .field(Field::new(
                "key",
                FieldType::String,
                "One unseal key share (hex or base64).",
            ))
            .field(Field::new(
                "nonce",
                FieldType::String,
                "The nonce of the attempt.",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.generate_root_update(c)))
            .help("Enter one unseal key share; the one that reaches the threshold gets the encoded token."),
        Path::new("decode-token")
            .field(Field::new(
                "encoded_token",
                FieldType::String,
                "The encoded token from sys/generate-root-token/update.",
            ))
            .field(Field::new("otp", FieldType::String, "The attempt's one-time password."))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.decode_token(c)))
            .help("Decode a generated root token with its one-time password."),
    ]
}
