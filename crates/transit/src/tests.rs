//! Engine tests through the framework with in-memory storage: the formats
//! other implementations rely on (BYOK wrapping, the convergent nonce, the
//! ciphertext layout), key lifecycle rules, and auto-rotation on an
//! injected clock.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{Backend, LogicalError, Operation, Request, Response, TestSystemView};

use crate::crypto;

struct T {
    b: arca_sdk::Framework<crate::Transit>,
    s: InmemStorage,
    clock: Arc<TestSystemView>,
}

impl T {
    fn new() -> T {
        let clock = Arc::new(TestSystemView::new(
            3600,
            3600,
            chrono::Utc::now().timestamp(),
        ));
        T {
            b: crate::factory(clock.clone()),
            s: InmemStorage::new(),
            clock,
        }
    }

    async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, LogicalError> {
        let mut req = Request::new(op, path).with_data(data);
        if op == Operation::Update && self.b.existence(&req, &self.s).await? == Some(false) {
            req.operation = Operation::Create;
        }
        self.b.handle(&req, &self.s).await
    }

    async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        let r = self
            .call(op, path, data)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        Value::Object(r.and_then(|r| r.data).unwrap_or_default())
    }

    async fn err(&self, op: Operation, path: &str, data: Value) -> String {
        match self.call(op, path, data).await {
            Err(e) => e.to_string(),
            Ok(r) => panic!(
                "{path}: expected an error, got {:?}",
                r.and_then(|r| r.data)
            ),
        }
    }
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// Wraps `target` for import as Vault's BYOK documentation says.
fn byok_wrap(wrapping_pem: &str, target: &[u8]) -> String {
    use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
    use rsa::pkcs8::DecodePublicKey;
    let public = rsa::RsaPublicKey::from_public_key_pem(wrapping_pem).unwrap();
    let ephemeral = crypto::random(32);
    let mut out = public
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            &ephemeral,
        )
        .unwrap();
    let kek = AesKek::new(&AES_256, &ephemeral).unwrap();
    let mut wrapped = vec![0u8; target.len() + 16];
    let n = kek.wrap_with_padding(target, &mut wrapped).unwrap().len();
    out.extend_from_slice(&wrapped[..n]);
    b64(&out)
}

#[tokio::test]
async fn byok_import_gives_ciphertexts_in_vaults_layout() {
    let t = T::new();
    let pem = t.ok(Operation::Read, "wrapping_key", json!({})).await["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let raw = crypto::random(32);
    t.ok(
        Operation::Update,
        "keys/imp/import",
        json!({"ciphertext": byok_wrap(&pem, &raw), "type": "aes256-gcm96"}),
    )
    .await;
    let ct = t
        .ok(
            Operation::Update,
            "encrypt/imp",
            json!({"plaintext": b64(b"secret")}),
        )
        .await["ciphertext"]
        .as_str()
        .unwrap()
        .to_string();
    // vault:v1: ‖ base64(nonce ‖ AES-256-GCM(raw key) ‖ tag), no AAD.
    let body = B64.decode(ct.strip_prefix("vault:v1:").unwrap()).unwrap();
    let key = crypto::Cipher::Aes256Gcm.key(&raw).unwrap();
    assert_eq!(&*crypto::open(&key, &body, &[]).unwrap(), b"secret");
    // Imported keys do not rotate unless allowed.
    let e = t.err(Operation::Update, "keys/imp/rotate", json!({})).await;
    assert!(e.contains("does not allow rotation"), "{e}");
    // A wrapping for another key fails clearly.
    let other = crypto::generate_rsa(4096).unwrap();
    let other_pem = crate::material::rsa_public_pem(&other).unwrap();
    let e = t
        .err(
            Operation::Update,
            "keys/imp2/import",
            json!({"ciphertext": byok_wrap(&other_pem, &raw)}),
        )
        .await;
    assert!(e.contains("wrapping key"), "{e}");
}

#[tokio::test]
async fn convergent_keys_use_the_hmac_nonce_of_the_derived_key() {
    let t = T::new();
    t.ok(
        Operation::Update,
        "keys/conv",
        json!({"derived": true, "convergent_encryption": true}),
    )
    .await;
    let enc = |ctx: &'static [u8]| {
        let t = &t;
        async move {
            t.ok(
                Operation::Update,
                "encrypt/conv",
                json!({"plaintext": b64(b"same"), "context": b64(ctx)}),
            )
            .await["ciphertext"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let a = enc(b"ctx-1").await;
    assert_eq!(a, enc(b"ctx-1").await);
    assert_ne!(a, enc(b"ctx-2").await);
    let dec = t
        .ok(
            Operation::Update,
            "decrypt/conv",
            json!({"ciphertext": a, "context": b64(b"ctx-1")}),
        )
        .await;
    assert_eq!(dec["plaintext"], b64(b"same"));
    // Recompute from the stored key as Vault does: HKDF(key, ctx, 64) =
    // aes key ‖ hmac key; nonce = HMAC-SHA256(hmac key, plaintext)[..12].
    let k = t.b.inner.load(&t.s, "conv").await.unwrap().unwrap();
    let okm = crypto::hkdf_sha256(&k.policy.keys[&1].key, b"ctx-1", 64).unwrap();
    let nonce = crypto::convergent_nonce(&okm[32..], b"same");
    let expect = crypto::seal(
        &crypto::Cipher::Aes256Gcm.key(&okm[..32]).unwrap(),
        nonce,
        b"same",
        &[],
    )
    .unwrap();
    assert_eq!(a, format!("vault:v1:{}", b64(&expect)));
    // A wrong context does not decrypt.
    let e = t
        .err(
            Operation::Update,
            "decrypt/conv",
            json!({"ciphertext": a, "context": b64(b"ctx-2")}),
        )
        .await;
    assert!(e.contains("authentication failed"), "{e}");
}

#[tokio::test]
async fn versions_rotate_trim_and_refuse_old_ciphertexts() {
    let t = T::new();
    t.ok(Operation::Update, "keys/k", json!({})).await;
    let v1 = t
        .ok(
            Operation::Update,
            "encrypt/k",
            json!({"plaintext": b64(b"x")}),
        )
        .await["ciphertext"]
        .as_str()
        .unwrap()
        .to_string();
    t.ok(Operation::Update, "keys/k/rotate", json!({})).await;
    t.ok(Operation::Update, "keys/k/rotate", json!({})).await;
    let r = t
        .ok(Operation::Update, "rewrap/k", json!({"ciphertext": v1}))
        .await;
    assert!(r["ciphertext"].as_str().unwrap().starts_with("vault:v3:"));
    t.ok(
        Operation::Update,
        "keys/k/config",
        json!({"min_decryption_version": 2, "min_encryption_version": 3}),
    )
    .await;
    let e = t
        .err(Operation::Update, "decrypt/k", json!({"ciphertext": v1}))
        .await;
    assert!(e.contains("too old"), "{e}");
    let e = t
        .err(
            Operation::Update,
            "encrypt/k",
            json!({"plaintext": b64(b"x"), "key_version": 2}),
        )
        .await;
    assert!(e.contains("minimum encryption key version"), "{e}");
    let e = t
        .err(
            Operation::Update,
            "keys/k/trim",
            json!({"min_available_version": 3}),
        )
        .await;
    assert!(e.contains("greater than minimum decryption version"), "{e}");
    let k = t
        .ok(
            Operation::Update,
            "keys/k/trim",
            json!({"min_available_version": 2}),
        )
        .await;
    assert_eq!(k["min_available_version"], 2);
    assert_eq!(k["keys"].as_object().unwrap().len(), 2);
    let e = t.err(Operation::Delete, "keys/k", json!({})).await;
    assert!(e.contains("deletion is not allowed"), "{e}");
    t.ok(
        Operation::Update,
        "keys/k/config",
        json!({"deletion_allowed": true}),
    )
    .await;
    t.call(Operation::Delete, "keys/k", json!({}))
        .await
        .unwrap();
    assert!(t
        .call(Operation::Read, "keys/k", json!({}))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn backup_restores_every_version_and_export_needs_exportable() {
    let t = T::new();
    t.ok(Operation::Update, "keys/b", json!({"type": "ecdsa-p256"}))
        .await;
    let e = t.err(Operation::Read, "backup/b", json!({})).await;
    assert!(e.contains("exporting is disallowed"), "{e}");
    let e = t
        .err(Operation::Read, "export/signing-key/b", json!({}))
        .await;
    assert!(e.contains("not exportable"), "{e}");
    // Public keys are always exportable.
    let p = t
        .ok(Operation::Read, "export/public-key/b/1", json!({}))
        .await;
    assert!(p["keys"]["1"]
        .as_str()
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    t.ok(
        Operation::Update,
        "keys/b/config",
        json!({"exportable": true, "allow_plaintext_backup": true}),
    )
    .await;
    let r = t
        .call(
            Operation::Update,
            "keys/b/config",
            json!({"exportable": false}),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        r.warnings[0].contains("cannot be disabled"),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.data.unwrap()["exportable"], true);
    let sk = t
        .ok(Operation::Read, "export/signing-key/b", json!({}))
        .await;
    assert!(sk["keys"]["1"]
        .as_str()
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    t.ok(Operation::Update, "keys/b/rotate", json!({})).await;
    let sig = t
        .ok(
            Operation::Update,
            "sign/b",
            json!({"input": b64(b"m"), "key_version": 1}),
        )
        .await["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let backup = t.ok(Operation::Read, "backup/b", json!({})).await["backup"]
        .as_str()
        .unwrap()
        .to_string();
    let e = t
        .err(Operation::Update, "restore/b", json!({"backup": backup}))
        .await;
    assert!(e.contains("already exists"), "{e}");
    t.call(Operation::Update, "restore/copy", json!({"backup": backup}))
        .await
        .unwrap();
    let v = t
        .ok(
            Operation::Update,
            "verify/copy",
            json!({"input": b64(b"m"), "signature": sig}),
        )
        .await;
    assert_eq!(v["valid"], true);
    let k = t.ok(Operation::Read, "keys/copy", json!({})).await;
    assert_eq!(k["latest_version"], 2);
    assert!(k["restore_info"].is_object());
}

#[tokio::test]
async fn keys_rotate_when_their_period_has_passed() {
    let t = T::new();
    t.ok(
        Operation::Update,
        "keys/auto",
        json!({"auto_rotate_period": "1h"}),
    )
    .await;
    let e = t
        .err(
            Operation::Update,
            "keys/short",
            json!({"auto_rotate_period": "10m"}),
        )
        .await;
    assert!(e.contains("at least an hour"), "{e}");
    t.b.periodic(&t.s).await.unwrap();
    assert_eq!(
        t.ok(Operation::Read, "keys/auto", json!({})).await["latest_version"],
        1
    );
    t.clock.advance(3601);
    t.b.periodic(&t.s).await.unwrap();
    assert_eq!(
        t.ok(Operation::Read, "keys/auto", json!({})).await["latest_version"],
        2
    );
    t.b.periodic(&t.s).await.unwrap();
    assert_eq!(
        t.ok(Operation::Read, "keys/auto", json!({})).await["latest_version"],
        2
    );
}

#[tokio::test]
async fn batch_items_fail_alone() {
    let t = T::new();
    t.ok(Operation::Update, "keys/k", json!({})).await;
    let r = t
        .call(
            Operation::Update,
            "encrypt/k",
            json!({"batch_input": [{"plaintext": b64(b"a"), "reference": "r1"}, {"plaintext": "%%"}],
                   "partial_failure_response_code": 207}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, Some(207));
    let items = r.data.unwrap()["batch_results"].as_array().unwrap().clone();
    assert_eq!(items[0]["reference"], "r1");
    assert!(items[0]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v1:"));
    assert!(items[1]["error"].as_str().unwrap().contains("base64"));
}

#[tokio::test]
async fn ecdsa_signatures_verify_across_hashes_and_encodings() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    let t = T::new();
    for (key, own, other) in [
        ("p256", "sha2-256", "sha2-512"),
        ("p384", "sha2-384", "sha2-256"),
        ("p521", "sha2-512", "sha3-512"),
    ] {
        t.ok(
            Operation::Update,
            &format!("keys/{key}"),
            json!({"type": format!("ecdsa-{key}")}),
        )
        .await;
        for hash in [own, other] {
            for marshaling in ["asn1", "jws"] {
                let args = json!({"input": b64(b"msg"), "hash_algorithm": hash, "marshaling_algorithm": marshaling});
                let sig = t
                    .ok(Operation::Update, &format!("sign/{key}"), args.clone())
                    .await["signature"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let mut v = args.clone();
                v["signature"] = json!(sig);
                let ok = t
                    .ok(Operation::Update, &format!("verify/{key}"), v.clone())
                    .await;
                assert_eq!(ok["valid"], true, "{key} {hash} {marshaling}");
                v["input"] = json!(b64(b"other"));
                let bad = t.ok(Operation::Update, &format!("verify/{key}"), v).await;
                assert_eq!(bad["valid"], false, "{key} {hash} {marshaling}");
            }
        }
    }
    // The fast path's P-256 signature checks with an independent verifier.
    let sig = t
        .ok(
            Operation::Update,
            "sign/p256",
            json!({"input": b64(b"msg")}),
        )
        .await["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let der = B64.decode(sig.strip_prefix("vault:v1:").unwrap()).unwrap();
    let pem = t.ok(Operation::Read, "keys/p256", json!({})).await["keys"]["1"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
    let s = p256::ecdsa::Signature::from_der(&der).unwrap();
    vk.verify_prehash(&crypto::HashAlg::Sha256.digest(b"msg"), &s)
        .unwrap();
}
