//! JWT auth handlers on in-memory storage with the sdk's test clock:
//! RS256, PS256, ES256, ES384 and EdDSA tokens verify against static PEM
//! keys (and certificates); each refusal (unsigned, HMAC, forged, expired,
//! not yet valid, issued in the future, wrong issuer, audience, subject,
//! bound claims, algorithm outside `jwt_supported_algs`) is a 400 that says
//! why without key material; the leeways move the limits to the second;
//! config and role rules (one key source, "not available yet" fields,
//! unfetchable URLs refused and not stored); a JWKS served on loopback is
//! fetched at config time, refetched for an unknown key id at most once per
//! interval, and after its maximum age; OIDC discovery checks the issuer;
//! renewal needs the role.
//!
//! Tokens are signed here with AWS-LC directly (keys from rcgen), not with
//! the code under test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rcgen::PublicKeyData;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{Backend, Connection, LogicalError, Operation, Request, Response, TestSystemView};

const NOW: i64 = 1_900_000_000;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

// ------------------------------------------------------------------ keys --

enum Signer {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A test key: its signer, its public key as PEM and as a JWK.
struct TestKey {
    signer: Signer,
    pem: String,
    jwk: Value,
    cert_pem: String,
}

impl TestKey {
    fn new(alg: &'static rcgen::SignatureAlgorithm) -> TestKey {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        let pkcs8 = kp.serialize_der();
        let raw = kp.der_bytes().to_vec();
        let signer = if alg == &rcgen::PKCS_RSA_SHA256 {
            Signer::Rsa(RsaKeyPair::from_pkcs8(&pkcs8).unwrap())
        } else if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Signer::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap(),
            )
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Signer::P384(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &pkcs8).unwrap(),
            )
        } else {
            Signer::Ed(Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap())
        };
        let jwk = match &signer {
            Signer::Rsa(_) => {
                let spki = kp.subject_public_key_info();
                let (n, e) = rsa_components(&spki);
                json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)})
            }
            Signer::P256(_) => {
                json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..])})
            }
            Signer::P384(_) => {
                json!({"kty": "EC", "crv": "P-384", "x": b64(&raw[1..49]), "y": b64(&raw[49..])})
            }
            Signer::Ed(_) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&raw)}),
        };
        let cert_pem = rcgen::CertificateParams::new(vec!["issuer.test".to_string()])
            .unwrap()
            .self_signed(&kp)
            .unwrap()
            .pem();
        TestKey {
            signer,
            pem: kp.public_key_pem(),
            jwk,
            cert_pem,
        }
    }

    fn rsa() -> TestKey {
        TestKey::new(&rcgen::PKCS_RSA_SHA256)
    }
    fn p256() -> TestKey {
        TestKey::new(&rcgen::PKCS_ECDSA_P256_SHA256)
    }
    fn p384() -> TestKey {
        TestKey::new(&rcgen::PKCS_ECDSA_P384_SHA384)
    }
    fn ed() -> TestKey {
        TestKey::new(&rcgen::PKCS_ED25519)
    }

    fn jwk_with_kid(&self, kid: &str) -> Value {
        let mut j = self.jwk.clone();
        j["kid"] = json!(kid);
        j
    }

    fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match (&self.signer, alg) {
            (Signer::Rsa(k), "RS256" | "RS384" | "PS256") => {
                let pad: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
                    "RS256" => &RSA_PKCS1_SHA256,
                    "RS384" => &RSA_PKCS1_SHA384,
                    _ => &RSA_PSS_SHA256,
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(pad, &rng, msg, &mut sig).unwrap();
                sig
            }
            (Signer::P256(k), _) | (Signer::P384(k), _) => {
                k.sign(&rng, msg).unwrap().as_ref().to_vec()
            }
            (Signer::Ed(k), _) => k.sign(msg).as_ref().to_vec(),
            _ => panic!("test key cannot sign {alg}"),
        }
    }

    /// A compact JWS over `claims` with `alg` and an optional `kid`.
    fn token(&self, alg: &str, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(k) = kid {
            header["kid"] = json!(k);
        }
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

fn rsa_components(spki_der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).unwrap();
    match spki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(r) => {
            let strip = |b: &[u8]| {
                let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b[i..].to_vec()
            };
            (strip(r.modulus), strip(r.exponent))
        }
        _ => panic!("not RSA"),
    }
}

/// Claims valid at NOW for the role `reader` below.
fn claims() -> Value {
    json!({
        "iss": "https://issuer.test",
        "sub": "ci-job-42",
        "aud": "arca",
        "iat": NOW - 10,
        "exp": NOW + 300,
        "team": "blue",
        "project": {"path": "org/app", "branch": "main"},
        "level": 3,
    })
}

fn with(mut c: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

// --------------------------------------------------------------- backend --

struct Jwt {
    backend: arca_sdk::Framework<arca_jwt::JwtAuth>,
    storage: InmemStorage,
    clock: Arc<TestSystemView>,
}

fn jwt() -> Jwt {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let clock = Arc::new(TestSystemView::new(3600, 86400, NOW));
    Jwt {
        backend: arca_jwt::factory(clock.clone()),
        storage: InmemStorage::new(),
        clock,
    }
}

impl Jwt {
    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(data);
        req.mount_point = "auth/jwt/".into();
        Ok(self
            .backend
            .handle(&req, &self.storage)
            .await?
            .unwrap_or_default())
    }

    async fn write(&self, path: &str, data: Value) -> Response {
        self.call(Operation::Update, path, data)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn read(&self, path: &str) -> Option<Value> {
        self.call(Operation::Read, path, json!({}))
            .await
            .unwrap()
            .data
            .map(Value::Object)
    }

    async fn login(&self, role: &str, jwt: &str) -> Result<arca_sdk::Auth, LogicalError> {
        let r = self
            .call(
                Operation::Update,
                "login",
                json!({"role": role, "jwt": jwt}),
            )
            .await?;
        Ok(r.auth.expect("a login answers with auth"))
    }

    /// The 400 message of a refused login.
    async fn refused(&self, role: &str, jwt: &str) -> String {
        match self.login(role, jwt).await {
            Err(LogicalError::InvalidRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    async fn reader_role(&self) {
        self.write(
            "role/reader",
            json!({
                "role_type": "jwt",
                "bound_audiences": "arca",
                "user_claim": "sub",
                "claim_mappings": {"team": "team", "/project/path": "project"},
                "token_policies": "readonly",
                "token_ttl": "1h",
            }),
        )
        .await;
    }
}

fn invalid(r: Result<Response, LogicalError>) -> String {
    match r {
        Err(LogicalError::InvalidRequest(m)) => m,
        other => panic!("expected a 400, got {other:?}"),
    }
}

// ----------------------------------------------------------------- tests --

#[tokio::test]
async fn static_keys_verify_rsa_pss_ecdsa_and_eddsa_tokens() {
    let (rsa, p256, p384, ed) = (
        TestKey::rsa(),
        TestKey::p256(),
        TestKey::p384(),
        TestKey::ed(),
    );
    let j = jwt();
    j.write(
        "config",
        json!({
            // The P-256 key as a certificate, the others as public keys.
            "jwt_validation_pubkeys": [rsa.pem, p256.cert_pem, p384.pem, ed.pem],
            "bound_issuer": "https://issuer.test",
        }),
    )
    .await;
    j.reader_role().await;

    for (key, alg) in [
        (&rsa, "RS256"),
        (&rsa, "RS384"),
        (&rsa, "PS256"),
        (&p256, "ES256"),
        (&p384, "ES384"),
        (&ed, "EdDSA"),
    ] {
        let auth = j
            .login("reader", &key.token(alg, Some("any-kid"), &claims()))
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(auth.display_name, "ci-job-42", "{alg}");
        assert_eq!(auth.token_policies, ["readonly"], "{alg}");
        assert_eq!(auth.ttl, 3600);
        assert_eq!(
            auth.metadata.get("role").map(String::as_str),
            Some("reader")
        );
        assert_eq!(auth.metadata.get("team").map(String::as_str), Some("blue"));
        assert_eq!(
            auth.metadata.get("project").map(String::as_str),
            Some("org/app")
        );
        assert_eq!(auth.internal_data["role"], "reader");
    }
}

#[tokio::test]
async fn every_refusal_is_a_400_that_says_why() {
    let (rsa, other) = (TestKey::rsa(), TestKey::rsa());
    let j = jwt();
    j.write(
        "config",
        json!({"jwt_validation_pubkeys": rsa.pem, "bound_issuer": "https://issuer.test"}),
    )
    .await;
    j.reader_role().await;
    j.write(
        "role/subject",
        json!({"role_type": "jwt", "bound_subject": "ci-job-7", "token_policies": "p"}),
    )
    .await;
    j.write(
        "role/claims",
        json!({
            "role_type": "jwt", "bound_audiences": ["x", "arca"],
            "bound_claims": {"team": ["red", "green"]}, "token_policies": "p",
        }),
    )
    .await;
    j.write(
        "role/globs",
        json!({
            "role_type": "jwt", "bound_audiences": "arca", "bound_claims_type": "glob",
            "bound_claims": {"/project/path": "org/*", "/project/branch": ["main", "release-*"]},
        }),
    )
    .await;
    let good = |c: Value| rsa.token("RS256", None, &c);
    j.login("reader", &good(claims())).await.expect("control");
    j.login("globs", &good(claims()))
        .await
        .expect("globs match");

    let unsigned = {
        let h = b64(json!({"alg": "none"}).to_string().as_bytes());
        let c = b64(claims().to_string().as_bytes());
        format!("{h}.{c}.")
    };
    // An HMAC token keyed with the public key (the classic confusion).
    let hmac = {
        let h = b64(json!({"alg": "HS256"}).to_string().as_bytes());
        let c = b64(claims().to_string().as_bytes());
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, rsa.pem.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", b64(tag.as_ref()))
    };
    // A valid signature over other claims, spliced onto these claims.
    let spliced = {
        let t = good(claims());
        let parts: Vec<&str> = t.split('.').collect();
        let other_claims = b64(with(claims(), json!({"sub": "root"}))
            .to_string()
            .as_bytes());
        format!("{}.{}.{}", parts[0], other_claims, parts[2])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("reader", unsigned, "unsigned"),
        ("reader", hmac, "HMAC"),
        (
            "reader",
            other.token("RS256", None, &claims()),
            "signature does not verify",
        ),
        ("reader", spliced, "signature does not verify"),
        ("reader", "not.a.jwt".into(), "malformed"),
        (
            "reader",
            good(with(claims(), json!({"exp": NOW - 61}))),
            "expired",
        ),
        (
            "reader",
            good(with(claims(), json!({"nbf": NOW + 61}))),
            "not valid yet",
        ),
        (
            "reader",
            good(with(claims(), json!({"iat": NOW + 61, "nbf": NOW - 10}))),
            "issued in the future",
        ),
        (
            "reader",
            good(with(claims(), json!({"iat": null, "exp": null}))),
            "none of the iat, nbf and exp",
        ),
        (
            "reader",
            good(with(claims(), json!({"exp": "tomorrow"}))),
            "exp claim is not a number",
        ),
        (
            "reader",
            good(with(claims(), json!({"iss": "https://evil.test"}))),
            "bound_issuer",
        ),
        (
            "reader",
            good(with(claims(), json!({"aud": ["other", "more"]}))),
            "bound_audiences",
        ),
        (
            "reader",
            good(with(claims(), json!({"aud": null}))),
            "bound_audiences",
        ),
        (
            "reader",
            good(with(claims(), json!({"sub": null}))),
            "no \"sub\" claim",
        ),
        (
            "reader",
            good(with(claims(), json!({"sub": 42}))),
            "not a string",
        ),
        (
            "reader",
            good(with(claims(), json!({"team": ["blue"]}))),
            "claim_mappings is not a string",
        ),
        // A role without bound_audiences refuses a token that has one.
        (
            "subject",
            good(with(claims(), json!({"sub": "ci-job-7"}))),
            "no bound_audiences",
        ),
        (
            "subject",
            good(with(claims(), json!({"aud": null}))),
            "bound_subject",
        ),
        ("claims", good(claims()), "\"team\" matches none"),
        (
            "claims",
            good(with(claims(), json!({"team": null}))),
            "\"team\" required by bound_claims is missing",
        ),
        (
            "globs",
            good(with(
                claims(),
                json!({"project": {"path": "other/app", "branch": "main"}}),
            )),
            "\"/project/path\" matches none",
        ),
        (
            "globs",
            good(with(
                claims(),
                json!({"project": {"path": "org/app", "branch": "dev"}}),
            )),
            "\"/project/branch\" matches none",
        ),
        (
            "nobody",
            good(claims()),
            "role \"nobody\" could not be found",
        ),
        ("reader", String::new(), "missing jwt"),
    ];
    for (role, token, why) in cases {
        let m = j.refused(role, &token).await;
        assert!(m.contains(why), "{role}/{why}: {m}");
        assert!(
            !m.contains("BEGIN") && !m.contains(&rsa.jwk["n"].as_str().unwrap()[..40]),
            "{m}"
        );
    }

    // Lists: any bound value matches any value of the claim.
    j.login(
        "claims",
        &good(with(claims(), json!({"team": ["orange", "green"]}))),
    )
    .await
    .expect("green is bound");
    j.login(
        "globs",
        &good(with(
            claims(),
            json!({"project": {"path": "org/x", "branch": "release-2"}}),
        )),
    )
    .await
    .expect("globs match");

    // jwt_supported_algs restricts what is accepted.
    let p256 = TestKey::p256();
    j.write(
        "config",
        json!({"jwt_validation_pubkeys": [rsa.pem, p256.pem], "jwt_supported_algs": "ES256"}),
    )
    .await;
    let m = j.refused("reader", &good(claims())).await;
    assert!(m.contains("not in jwt_supported_algs"), "{m}");
    j.login("reader", &p256.token("ES256", None, &claims()))
        .await
        .expect("ES256 is supported");
}

/// The time limits, to the second, for each leeway.
#[tokio::test]
async fn leeways_move_the_limits_to_the_second() {
    let rsa = TestKey::rsa();
    let j = jwt();
    j.write("config", json!({"jwt_validation_pubkeys": rsa.pem}))
        .await;
    let role = |name: &str, extra: Value| {
        let mut r = json!({"role_type": "jwt", "bound_subject": "s", "token_policies": "p"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        (format!("role/{name}"), r)
    };
    for (name, extra) in [
        ("default", json!({})),
        ("noskew", json!({"clock_skew_leeway": -1})),
        (
            "short",
            json!({"clock_skew_leeway": "-1", "expiration_leeway": "30s", "not_before_leeway": 20}),
        ),
        (
            "zero",
            json!({"clock_skew_leeway": 0, "expiration_leeway": 0, "not_before_leeway": "0"}),
        ),
    ] {
        let (path, body) = role(name, extra);
        j.write(&path, body).await;
    }
    let r = j.read("role/default").await.unwrap();
    assert_eq!(
        (
            &r["clock_skew_leeway"],
            &r["expiration_leeway"],
            &r["not_before_leeway"]
        ),
        (&json!(60), &json!(150), &json!(150))
    );
    assert_eq!(j.read("role/short").await.unwrap()["clock_skew_leeway"], -1);

    let tok = |c: Value| rsa.token("RS256", None, &with(json!({"sub": "s"}), c));
    // (role, token, the last valid second, the first refused second,
    // which way time runs to the refusal)
    let t0 = NOW;
    let cases: Vec<(&str, String, i64, i64)> = vec![
        // exp: clock skew 60 s by default, none when negative.
        ("default", tok(json!({"exp": t0 + 100})), t0 + 160, t0 + 161),
        ("zero", tok(json!({"exp": t0 + 100})), t0 + 160, t0 + 161),
        ("noskew", tok(json!({"exp": t0 + 100})), t0 + 100, t0 + 101),
        // iat only: exp = iat + expiration_leeway (150 s by default).
        ("default", tok(json!({"iat": t0})), t0 + 210, t0 + 211),
        ("noskew", tok(json!({"iat": t0})), t0 + 150, t0 + 151),
        ("short", tok(json!({"iat": t0})), t0 + 30, t0 + 31),
        // nbf and iat: the later one starts the expiration leeway.
        (
            "short",
            tok(json!({"iat": t0, "nbf": t0 + 5})),
            t0 + 35,
            t0 + 36,
        ),
    ];
    for (role, token, last_ok, first_bad) in cases {
        j.clock.set_now(last_ok);
        j.login(role, &token)
            .await
            .unwrap_or_else(|e| panic!("{role} at {}: {e}", last_ok - t0));
        j.clock.set_now(first_bad);
        let m = j.refused(role, &token).await;
        assert!(m.contains("expired"), "{role} at {}: {m}", first_bad - t0);
    }

    // Not yet valid: the limit runs the other way.
    let cases: Vec<(&str, String, i64, i64)> = vec![
        (
            "default",
            tok(json!({"nbf": t0 + 100, "exp": t0 + 1000})),
            t0 + 40,
            t0 + 39,
        ),
        (
            "noskew",
            tok(json!({"nbf": t0 + 100, "exp": t0 + 1000})),
            t0 + 100,
            t0 + 99,
        ),
        // exp only: nbf = exp - not_before_leeway (150 s by default).
        (
            "default",
            tok(json!({"exp": t0 + 1000})),
            t0 + 790,
            t0 + 789,
        ),
        ("noskew", tok(json!({"exp": t0 + 1000})), t0 + 850, t0 + 849),
        ("short", tok(json!({"exp": t0 + 1000})), t0 + 980, t0 + 979),
    ];
    for (role, token, first_ok, last_bad) in cases {
        j.clock.set_now(first_ok);
        j.login(role, &token)
            .await
            .unwrap_or_else(|e| panic!("{role} at {}: {e}", first_ok - t0));
        j.clock.set_now(last_bad);
        let m = j.refused(role, &token).await;
        assert!(
            m.contains("not valid yet"),
            "{role} at {}: {m}",
            last_bad - t0
        );
    }

    // iat in the future: at most the clock skew.
    let token = tok(json!({"iat": t0 + 60, "nbf": t0 - 100, "exp": t0 + 1000}));
    j.clock.set_now(t0);
    j.login("default", &token).await.expect("iat 60 s ahead");
    j.clock.set_now(t0 - 1);
    assert!(j
        .refused("default", &token)
        .await
        .contains("issued in the future"));
}

#[tokio::test]
async fn config_rules() {
    let (rsa, p521) = (
        TestKey::rsa(),
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap(),
    );
    let j = jwt();
    assert!(j.read("config").await.is_none());
    let m = j.refused("reader", "a.b.c").await;
    assert!(m.contains("not configured"), "{m}");

    let cfg = |v: Value| j.call(Operation::Update, "config", v);
    let m = invalid(cfg(json!({"bound_issuer": "x"})).await);
    assert!(m.contains("exactly one of"), "{m}");
    let m = invalid(
        cfg(json!({"jwt_validation_pubkeys": rsa.pem, "jwks_url": "http://127.0.0.1:1/k"})).await,
    );
    assert!(m.contains("exactly one of"), "{m}");
    let m = invalid(cfg(json!({"jwt_validation_pubkeys": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"})).await);
    assert!(
        m.contains("entry 1") && m.contains("cannot use the public key"),
        "{m}"
    );
    let m = invalid(cfg(json!({"jwt_validation_pubkeys": p521.public_key_pem()})).await);
    assert!(m.contains("not available yet"), "{m}");
    let m = invalid(
        cfg(json!({"jwt_validation_pubkeys": rsa.pem, "jwt_supported_algs": ["RS256", "ES512"]}))
            .await,
    );
    assert!(m.contains("ES512 is not available yet"), "{m}");
    let m = invalid(
        cfg(json!({"jwt_validation_pubkeys": rsa.pem, "jwt_supported_algs": "HS256"})).await,
    );
    assert!(m.contains("invalid jwt_supported_algs"), "{m}");
    let m =
        invalid(cfg(json!({"jwt_validation_pubkeys": rsa.pem, "jwks_ca_pem": rsa.cert_pem})).await);
    assert!(m.contains("jwks_ca_pem is set but jwks_url is not"), "{m}");
    let m = invalid(
        cfg(json!({"oidc_discovery_url": "https://idp.test/.well-known/openid-configuration"}))
            .await,
    );
    assert!(m.contains("without .well-known"), "{m}");
    let m = invalid(cfg(json!({"jwks_url": "ftp://idp.test/keys"})).await);
    assert!(m.contains("http or https"), "{m}");
    for (field, value, why) in [
        ("oidc_client_id", json!("app"), "browser OIDC"),
        ("oidc_client_secret", json!("s3cret"), "browser OIDC"),
        ("oidc_response_types", json!("code"), "browser OIDC"),
        (
            "provider_config",
            json!({"provider": "azure"}),
            "provider-specific",
        ),
        ("namespace_in_state", json!(true), "namespaces"),
        (
            "override_allowed_server_names",
            json!("a.test"),
            "server-name",
        ),
        (
            "jwks_pairs",
            json!([{"jwks_url": "https://a.test/k"}]),
            "several JWKS",
        ),
    ] {
        let mut body = json!({"jwt_validation_pubkeys": rsa.pem});
        body[field] = value;
        let m = invalid(cfg(body).await);
        assert!(
            m.contains(&format!("{field} is not available yet")) && m.contains(why),
            "{m}"
        );
        assert!(!m.contains("s3cret"));
    }
    assert!(
        j.read("config").await.is_none(),
        "nothing refused was stored"
    );

    // Empty values of those fields are accepted (clients send them).
    j.write(
        "config",
        json!({
            "jwt_validation_pubkeys": [rsa.pem],
            "oidc_client_id": "", "namespace_in_state": false, "provider_config": {},
            "default_role": "Reader",
        }),
    )
    .await;
    let c = j.read("config").await.unwrap();
    assert_eq!(c["jwt_validation_pubkeys"], json!([rsa.pem.trim()]));
    assert_eq!(c["default_role"], "reader");
    assert_eq!(c["jwks_url"], "");

    // A URL that cannot be fetched is refused, and the old config stays.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let m = invalid(cfg(json!({"jwks_url": dead})).await);
    assert!(
        m.contains("error checking jwks_url") && m.contains(&dead),
        "{m}"
    );
    assert_eq!(
        j.read("config").await.unwrap()["jwt_validation_pubkeys"],
        json!([rsa.pem.trim()])
    );
    // ... unless skip_jwks_validation asks to store it anyway.
    let r = j
        .write(
            "config",
            json!({"jwks_url": dead, "skip_jwks_validation": true}),
        )
        .await;
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("cannot be fetched now")),
        "{r:?}"
    );
    assert_eq!(j.read("config").await.unwrap()["jwks_url"], json!(dead));
    j.reader_role().await;
    let m = j
        .refused("reader", &rsa.token("RS256", Some("k"), &claims()))
        .await;
    assert!(m.contains("cannot fetch the signing keys"), "{m}");
}

#[tokio::test]
async fn role_rules() {
    let j = jwt();
    let role = |v: Value| j.call(Operation::Update, "role/r", v);
    let m = invalid(role(json!({"bound_subject": "s"})).await);
    assert!(
        m.contains("role_type \"oidc\"") && m.contains("not available yet"),
        "{m}"
    );
    let m = invalid(role(json!({"role_type": "oidc", "bound_subject": "s"})).await);
    assert!(m.contains("not available yet"), "{m}");
    let m = invalid(role(json!({"role_type": "saml", "bound_subject": "s"})).await);
    assert!(m.contains("invalid role_type"), "{m}");
    let m = invalid(role(json!({"role_type": "jwt"})).await);
    assert!(m.contains("at least one bound constraint"), "{m}");
    for (field, value) in [
        (
            "allowed_redirect_uris",
            json!(["http://localhost:8250/oidc/callback"]),
        ),
        ("oidc_scopes", json!("email")),
        ("verbose_oidc_logging", json!(true)),
        ("token_policies_template_claims", json!(true)),
        ("max_age", json!("1h")),
    ] {
        let mut body = json!({"role_type": "jwt", "bound_subject": "s"});
        body[field] = value;
        let m = invalid(role(body).await);
        assert!(m.contains(&format!("{field} is not available yet")), "{m}");
    }
    let m = invalid(
        role(json!({"role_type": "jwt", "bound_subject": "s", "claim_mappings": {"a": "role"}}))
            .await,
    );
    assert!(m.contains("reserved"), "{m}");
    let m = invalid(role(json!({"role_type": "jwt", "bound_subject": "s", "claim_mappings": {"a": "x", "b": "x"}})).await);
    assert!(m.contains("several claims"), "{m}");
    let m = invalid(
        role(json!({"role_type": "jwt", "bound_claims_type": "glob", "bound_claims": {"n": 3}}))
            .await,
    );
    assert!(m.contains("must be a string"), "{m}");
    let m = invalid(
        role(json!({"role_type": "jwt", "bound_subject": "s", "bound_claims_type": "regex"})).await,
    );
    assert!(m.contains("bound_claims_type"), "{m}");
    let m =
        invalid(role(json!({"role_type": "jwt", "bound_subject": "s", "user_claim": ""})).await);
    assert!(m.contains("user_claim"), "{m}");
    let m = invalid(
        role(json!({"role_type": "jwt", "bound_subject": "s", "token_period": "48h"})).await,
    );
    assert!(m.contains("maximum lease TTL"), "{m}");
    assert!(
        j.read("role/r").await.is_none(),
        "nothing refused was stored"
    );

    // hvac's create_role sends empty OIDC fields: accepted.
    j.write(
        "role/R",
        json!({
            "name": "R", "role_type": "jwt", "bound_audiences": "a,b",
            "allowed_redirect_uris": [], "verbose_oidc_logging": false, "bound_claims_type": "string",
            "bound_claims": {"n": [1, true, "x"]}, "policies": "Dev,ops", "num_uses": 3,
        }),
    )
    .await;
    let r = j.read("role/r").await.expect("names are lower-cased");
    assert_eq!(r["role_type"], "jwt");
    assert_eq!(r["user_claim"], "sub");
    assert_eq!(r["bound_audiences"], json!(["a", "b"]));
    assert_eq!(r["bound_claims"], json!({"n": [1, true, "x"]}));
    assert_eq!(r["bound_claims_type"], "string");
    assert_eq!(r["token_policies"], json!(["dev", "ops"]));
    assert_eq!(r["token_num_uses"], 3);
    assert_eq!(r["groups_claim"], "");

    // An update keeps what it does not send.
    j.write("role/r", json!({"bound_subject": "me"})).await;
    let r = j.read("role/r").await.unwrap();
    assert_eq!(
        (r["role_type"].as_str(), r["bound_subject"].as_str()),
        (Some("jwt"), Some("me"))
    );
    assert_eq!(r["bound_audiences"], json!(["a", "b"]));

    let w = j
        .write(
            "role/big",
            json!({"role_type": "jwt", "bound_subject": "s", "token_max_ttl": "48h"}),
        )
        .await;
    assert!(w.warnings.iter().any(|w| w.contains("capped")), "{w:?}");

    let l = j.call(Operation::List, "role/", json!({})).await.unwrap();
    assert_eq!(l.data.unwrap()["keys"], json!(["big", "r"]));
    j.call(Operation::Delete, "role/r", json!({}))
        .await
        .unwrap();
    assert!(j.read("role/r").await.is_none());
}

#[tokio::test]
async fn default_role_pointers_and_renewal() {
    let ed = TestKey::ed();
    let j = jwt();
    j.write(
        "config",
        json!({"jwt_validation_pubkeys": ed.pem, "default_role": "nested"}),
    )
    .await;
    j.write(
        "role/nested",
        json!({
            "role_type": "jwt", "bound_audiences": "arca",
            "user_claim": "/project/path", "user_claim_json_pointer": true,
            "bound_claims": {"/project/branch": "main", "level": 3},
            "token_policies": "p", "token_ttl": "10m", "token_max_ttl": "1h",
        }),
    )
    .await;
    let r = j
        .call(
            Operation::Update,
            "login",
            json!({"jwt": ed.token("EdDSA", None, &claims())}),
        )
        .await
        .unwrap();
    let auth = r.auth.unwrap();
    assert_eq!(auth.display_name, "org/app");
    assert_eq!((auth.ttl, auth.max_ttl), (600, 3600));

    // Renewal applies the role's current settings, and needs the role.
    j.write("role/nested", json!({"token_ttl": "20m"})).await;
    let mut req = Request::new(Operation::Renew, "login");
    req.auth = Some(auth.clone());
    let renewed = j.backend.handle(&req, &j.storage).await.unwrap().unwrap();
    assert_eq!(renewed.auth.unwrap().ttl, 1200);
    j.call(Operation::Delete, "role/nested", json!({}))
        .await
        .unwrap();
    let e = j.backend.handle(&req, &j.storage).await.unwrap_err();
    assert!(
        e.to_string().contains("does not exist during renewal"),
        "{e}"
    );
}

// ------------------------------------------------------------ JWKS server --

/// A loopback HTTP server for JWKS and discovery documents that counts
/// the requests it answers.
struct KeyServer {
    base: String,
    jwks: Arc<Mutex<String>>,
    discovery: Arc<Mutex<String>>,
    jwks_hits: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start() -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let s = KeyServer {
            base,
            jwks: Arc::new(Mutex::new(json!({"keys": []}).to_string())),
            discovery: Arc::new(Mutex::new(String::new())),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
        };
        let (jwks, discovery, hits) = (s.jwks.clone(), s.discovery.clone(), s.jwks_hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (jwks, discovery, hits) = (jwks.clone(), discovery.clone(), hits.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&buf);
                    let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = match path.as_str() {
                        "/jwks.json" => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            ("200 OK", jwks.lock().unwrap().clone())
                        }
                        "/.well-known/openid-configuration" => {
                            ("200 OK", discovery.lock().unwrap().clone())
                        }
                        _ => ("404 Not Found", "{}".to_string()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        s
    }

    fn serve(&self, keys: Vec<Value>) {
        *self.jwks.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }
}

#[tokio::test]
async fn jwks_is_fetched_cached_refreshed_for_new_kids_and_rate_limited() {
    let (a, b, c) = (TestKey::rsa(), TestKey::p256(), TestKey::ed());
    let server = KeyServer::start().await;
    server.serve(vec![
        a.jwk_with_kid("a"),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
    ]);
    let j = jwt();
    j.write("config", json!({"jwks_url": server.url()})).await;
    assert_eq!(server.hits(), 1, "the config write fetches the key set");
    j.reader_role().await;
    // Valid for the whole test, however far the clock moves.
    let fresh = with(claims(), json!({"exp": NOW + 100_000}));

    j.login("reader", &a.token("RS256", Some("a"), &fresh))
        .await
        .expect("kid a");
    j.login("reader", &a.token("RS256", Some("a"), &fresh))
        .await
        .expect("kid a");
    assert_eq!(server.hits(), 1, "known keys come from the cache");

    // A forged token naming a known kid does not make the server fetch.
    let m = j
        .refused("reader", &b.token("ES256", Some("a"), &fresh))
        .await;
    assert!(m.contains("no configured key verifies"), "{m}");
    let m = j
        .refused("reader", &c.token("EdDSA", Some("a"), &fresh))
        .await;
    assert!(!m.is_empty());
    assert_eq!(server.hits(), 1);
    // A shared-secret key in the set never verifies anything.
    let m = j
        .refused("reader", &a.token("RS256", Some("hmac"), &fresh))
        .await;
    assert!(
        m.contains("no signing key has the token's key id \"hmac\""),
        "{m}"
    );
    assert_eq!(server.hits(), 2, "an unknown kid refetches once");

    // Rotation: the new key is found by refetching...
    j.clock.advance(keys_interval());
    server.serve(vec![a.jwk_with_kid("a"), b.jwk_with_kid("b")]);
    j.login("reader", &b.token("ES256", Some("b"), &fresh))
        .await
        .expect("kid b after refetch");
    assert_eq!(server.hits(), 3);
    // ... but unknown kids within the interval do not fetch again.
    let t = a.token("RS256", Some("stranger"), &fresh);
    for _ in 0..5 {
        assert!(j.refused("reader", &t).await.contains("\"stranger\""));
    }
    assert_eq!(server.hits(), 3, "rate-limited");
    j.clock.advance(keys_interval() - 1);
    j.refused("reader", &t).await;
    assert_eq!(server.hits(), 3, "one second before the interval ends");
    j.clock.advance(1);
    j.refused("reader", &t).await;
    assert_eq!(server.hits(), 4, "the interval has passed");

    // A key removed from the set keeps working from the cache until the
    // keys reach their maximum age; then they are fetched again.
    server.serve(vec![b.jwk_with_kid("b")]);
    j.login("reader", &a.token("RS256", Some("a"), &fresh))
        .await
        .expect("cached");
    j.clock.advance(arca_jwt::MAX_KEY_AGE);
    let m = j
        .refused("reader", &a.token("RS256", Some("a"), &fresh))
        .await;
    assert!(
        m.contains("no signing key has the token's key id \"a\""),
        "{m}"
    );
    assert_eq!(server.hits(), 5);

    // Tokens without kid: every key of the set is tried.
    j.login("reader", &b.token("ES256", None, &fresh))
        .await
        .expect("no kid");
    // Claims are still checked after the signature.
    let m = j
        .refused(
            "reader",
            &b.token(
                "ES256",
                Some("b"),
                &with(claims(), json!({"exp": NOW - 1000})),
            ),
        )
        .await;
    assert!(m.contains("expired"), "{m}");
}

fn keys_interval() -> i64 {
    arca_jwt::MIN_REFRESH_INTERVAL
}

#[tokio::test]
async fn oidc_discovery_checks_the_issuer() {
    let a = TestKey::p384();
    let server = KeyServer::start().await;
    server.serve(vec![a.jwk_with_kid("k1")]);
    *server.discovery.lock().unwrap() =
        json!({"issuer": "https://elsewhere.test", "jwks_uri": server.url()}).to_string();
    let j = jwt();
    let m = invalid(
        j.call(
            Operation::Update,
            "config",
            json!({"oidc_discovery_url": server.base}),
        )
        .await,
    );
    assert!(m.contains("names issuer \"https://elsewhere.test\""), "{m}");
    assert!(j.read("config").await.is_none());
    assert_eq!(
        server.hits(),
        0,
        "the JWKS is not fetched for a wrong issuer"
    );

    *server.discovery.lock().unwrap() =
        json!({"issuer": server.base, "jwks_uri": server.url()}).to_string();
    j.write(
        "config",
        json!({"oidc_discovery_url": format!("{}/", server.base), "bound_issuer": "https://issuer.test"}),
    )
    .await;
    assert_eq!(server.hits(), 1);
    j.reader_role().await;
    j.login("reader", &a.token("ES384", Some("k1"), &claims()))
        .await
        .expect("ES384 through discovery");
}

#[tokio::test]
async fn token_bound_cidrs_bind_the_login_and_the_token() {
    let ed = TestKey::ed();
    let j = jwt();
    j.write("config", json!({"jwt_validation_pubkeys": ed.pem}))
        .await;
    // The only bound constraint of this role is where clients come from.
    j.write(
        "role/lan",
        json!({"role_type": "jwt", "token_bound_cidrs": "10.0.0.0/8", "token_policies": "p"}),
    )
    .await;
    let token = ed.token("EdDSA", None, &with(claims(), json!({"aud": null})));
    let login_from = |addr: Option<&str>| {
        let mut req = Request::new(Operation::Update, "login")
            .with_data(json!({"role": "lan", "jwt": token}));
        req.connection = addr.map(|a| Connection {
            remote_addr: a.parse().unwrap(),
            remote_port: 40000,
            peer_certificates: Vec::new(),
        });
        req
    };
    let auth = j
        .backend
        .handle(&login_from(Some("10.1.2.3")), &j.storage)
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.bound_cidrs, ["10.0.0.0/8"]);
    for addr in [Some("192.168.1.1"), None] {
        let e = j
            .backend
            .handle(&login_from(addr), &j.storage)
            .await
            .unwrap_err();
        assert_eq!(e, LogicalError::PermissionDenied, "{addr:?}");
    }
}
