//! PKI handlers on in-memory storage, with the sdk's test clock: lifetimes
//! follow the role and the mount (tuned limits given by the system view)
//! to the second, TTLs above a limit are capped with a warning, CSR fields
//! are used only when the role says so, and a `generate_lease` certificate
//! comes with a lease whose revoke callback revokes it.

use std::sync::Arc;

use arca_sdk::testing::InmemStorage;
use arca_sdk::{Backend, Operation, Request, Response, TestSystemView};
use serde_json::{json, Value};

/// 2030-03-17T17:46:40Z: far from the real clock, so a handler that read
/// the wall clock instead of the system view would be caught.
const NOW: i64 = 1_900_000_000;

struct Pki {
    backend: arca_sdk::Framework<arca_pki::Pki>,
    storage: InmemStorage,
    clock: Arc<TestSystemView>,
}

fn pki(default_ttl: u64, max_ttl: u64) -> Pki {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let clock = Arc::new(TestSystemView::new(default_ttl, max_ttl, NOW));
    Pki {
        backend: arca_pki::factory(clock.clone()),
        storage: InmemStorage::new(),
        clock,
    }
}

impl Pki {
    async fn call(&self, op: Operation, path: &str, data: Value) -> Response {
        let mut req = Request::new(op, path).with_data(data);
        req.mount_point = "pki/".into();
        self.backend
            .handle(&req, &self.storage)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .unwrap_or_default()
    }

    async fn write(&self, path: &str, data: Value) -> Response {
        self.call(Operation::Update, path, data).await
    }
}

fn data(r: &Response) -> &serde_json::Map<String, Value> {
    r.data.as_ref().expect("response data")
}

/// (not_before, not_after, subject CN) of a PEM certificate.
fn cert(pem: &str) -> (i64, i64, String) {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let c = p.parse_x509().unwrap();
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    (
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
        cn,
    )
}

#[tokio::test]
async fn lifetimes_follow_the_role_and_the_mount_on_the_test_clock() {
    // An untuned mount of a server with a 1h default and a 2h maximum.
    let p = pki(3600, 7200);
    let r = p
        .write(
            "root/generate/internal",
            json!({"common_name": "Root", "key_type": "ec", "ttl": "87600h"}),
        )
        .await;
    assert_eq!(
        data(&r)["expiration"],
        NOW + 7200,
        "capped at the mount max"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("max_lease_ttl")),
        "{:?}",
        r.warnings
    );

    p.write(
        "roles/web",
        json!({"allow_any_name": true, "key_type": "ec", "ttl": "30m", "max_ttl": "90m"}),
    )
    .await;
    let r = p
        .write("issue/web", json!({"common_name": "a.example.com"}))
        .await;
    let (nb, na, cn) = cert(data(&r)["certificate"].as_str().unwrap());
    assert_eq!(na, NOW + 1800, "the role's ttl");
    assert_eq!(nb, NOW - 30, "backdated by the role's not_before_duration");
    assert_eq!(cn, "a.example.com");
    let r = p
        .write(
            "issue/web",
            json!({"common_name": "b.example.com", "ttl": "3h"}),
        )
        .await;
    assert_eq!(
        data(&r)["expiration"],
        NOW + 5400,
        "capped at the role's max_ttl"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("max_ttl")),
        "{:?}",
        r.warnings
    );

    // A role without lifetimes: the mount's default, capped by its max.
    p.write(
        "roles/plain",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    let r = p
        .write("issue/plain", json!({"common_name": "c.example.com"}))
        .await;
    assert_eq!(data(&r)["expiration"], NOW + 3600);
    let r = p
        .write(
            "issue/plain",
            json!({"common_name": "d.example.com", "ttl": "5h"}),
        )
        .await;
    assert_eq!(data(&r)["expiration"], NOW + 7200);

    // The clock moves: so do the certificates (never past the issuer).
    p.clock.advance(600);
    let r = p
        .write("issue/plain", json!({"common_name": "e.example.com"}))
        .await;
    assert_eq!(data(&r)["expiration"], NOW + 600 + 3600);
    let r = p
        .write(
            "issue/plain",
            json!({"common_name": "f.example.com", "ttl": "2h"}),
        )
        .await;
    assert_eq!(
        data(&r)["expiration"],
        NOW + 7200,
        "the root ends at NOW+2h"
    );
}

#[tokio::test]
async fn csr_fields_are_used_only_when_the_role_says_so() {
    let p = pki(3600, 7200);
    p.write(
        "root/generate/internal",
        json!({"common_name": "Root", "key_type": "ec"}),
    )
    .await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["csr-san.example.com".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "csr.example.com");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();

    p.write(
        "roles/csr",
        json!({"allow_any_name": true, "key_type": "any"}),
    )
    .await;
    let r = p
        .write(
            "sign/csr",
            json!({"csr": csr, "common_name": "request.example.com"}),
        )
        .await;
    let (_, _, cn) = cert(data(&r)["certificate"].as_str().unwrap());
    assert_eq!(
        cn, "csr.example.com",
        "use_csr_common_name defaults to true"
    );

    p.write(
        "roles/csr",
        json!({"allow_any_name": true, "key_type": "any", "use_csr_common_name": false, "use_csr_sans": false}),
    )
    .await;
    let r = p
        .write(
            "sign/csr",
            json!({"csr": csr, "common_name": "request.example.com"}),
        )
        .await;
    let pem = data(&r)["certificate"].as_str().unwrap().to_string();
    let (_, _, cn) = cert(&pem);
    assert_eq!(cn, "request.example.com");
    assert!(
        !pem_sans(&pem).contains(&"csr-san.example.com".to_string()),
        "use_csr_sans=false drops the CSR's names"
    );
}

fn pem_sans(pem: &str) -> Vec<String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let c = p.parse_x509().unwrap();
    let mut out = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                out.push(d.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_generate_lease_certificate_is_revoked_by_its_lease() {
    let p = pki(3600, 7200);
    p.write(
        "root/generate/internal",
        json!({"common_name": "Root", "key_type": "ec"}),
    )
    .await;
    p.write(
        "roles/leased",
        json!({"allow_any_name": true, "key_type": "ec", "generate_lease": true, "ttl": "20m"}),
    )
    .await;
    let r = p
        .write("issue/leased", json!({"common_name": "l.example.com"}))
        .await;
    let secret = r.secret.clone().expect("a leased secret");
    assert!(secret.register_lease);
    assert_eq!(
        secret.ttl, 1200,
        "the lease lasts as long as the certificate"
    );
    assert!(!secret.renewable);
    let serial = data(&r)["serial_number"].as_str().unwrap().to_string();
    assert_eq!(secret.internal_data["serial_number"], serial.as_str());

    // Renewal is refused; revocation revokes the certificate, at the
    // clock's time.
    p.clock.advance(60);
    let mut req = Request::new(Operation::Renew, "issue/leased");
    req.secret = Some(secret.clone());
    let e = p.backend.handle(&req, &p.storage).await.unwrap_err();
    assert_eq!(e, arca_sdk::LogicalError::invalid("lease is not renewable"));
    let mut req = Request::new(Operation::Revoke, "issue/leased");
    req.secret = Some(secret);
    p.backend.handle(&req, &p.storage).await.unwrap();
    let r = p
        .call(Operation::Read, &format!("cert/{serial}"), json!({}))
        .await;
    assert_eq!(data(&r)["revocation_time"], NOW + 60);
}
