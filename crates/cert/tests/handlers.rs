//! Cert auth handlers on in-memory storage with the sdk's test clock and
//! certificates made here with rcgen: a CA-signed client certificate logs
//! in (directly and through an intermediate the client sends), a
//! certificate from another CA, an expired or not-yet-valid one (by the
//! engine's clock), one without client-auth usage and one revoked by a
//! stored CRL are refused; the name, SAN, OU and extension constraints with
//! globs; a trusted self-signed leaf by exact match; bad certificates,
//! CRLs and option values refused with nothing stored; renewal
//! re-verifying the login certificate; the identity alias' metadata by
//! `config`; OCSP against a loopback responder made here (answers signed
//! by the issuer, a delegated responder or an `ocsp_ca_certificates`
//! certificate; good, revoked, unknown; stale, future, foreign and
//! unsigned answers; dead responders with and without `ocsp_fail_open`;
//! AIA and override URLs, `ocsp_query_all_servers`, retries, the answer
//! cache and its size, renewal).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use serde_json::{json, Value};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{
    Auth, Backend, Connection, LogicalError, Operation, Request, Response, TestSystemView,
};

const NOW: i64 = 1_900_000_000;
const DAY: i64 = 86_400;

fn at(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap()
}

// ------------------------------------------------------- certificates --

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    pem: String,
    /// The private key, PKCS#8 DER (the test responder signs with it).
    key_der: Vec<u8>,
}

fn ca_params(cn: &str, not_after: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = at(NOW - DAY);
    p.not_after = at(not_after);
    p.serial_number = Some(SerialNumber::from_slice(&[0x7a, 0x01]));
    p
}

fn root_ca(cn: &str) -> Ca {
    root_ca_until(cn, NOW + 3650 * DAY)
}

fn root_ca_until(cn: &str, not_after: i64) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, not_after);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key_der: key.serialize_der(),
        issuer: Issuer::new(params, key),
    }
}

/// An intermediate CA signed by `parent`.
fn intermediate(parent: &Ca, cn: &str, serial: &[u8]) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = ca_params(cn, NOW + 3650 * DAY);
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &parent.issuer).unwrap();
    Ca {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key_der: key.serialize_der(),
        issuer: Issuer::new(params, key),
    }
}

/// What a client certificate says.
struct Leaf {
    cn: &'static str,
    serial: Vec<u8>,
    sans: Vec<SanType>,
    /// rcgen keeps one value per attribute type: at most one OU.
    ous: Vec<&'static str>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    extensions: Vec<CustomExtension>,
    not_before: i64,
    not_after: i64,
}

impl Leaf {
    fn new(cn: &'static str) -> Leaf {
        Leaf {
            cn,
            serial: vec![0x12, 0x34],
            sans: Vec::new(),
            ous: Vec::new(),
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            extensions: Vec::new(),
            not_before: NOW - DAY,
            not_after: NOW + 30 * DAY,
        }
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for ou in &self.ous {
            p.distinguished_name
                .push(DnType::OrganizationalUnitName, *ou);
        }
        p.distinguished_name.push(DnType::CommonName, self.cn);
        p.is_ca = IsCa::ExplicitNoCa;
        p.subject_alt_names = self.sans.clone();
        p.extended_key_usages = self.ekus.clone();
        p.custom_extensions = self.extensions.clone();
        p.not_before = at(self.not_before);
        p.not_after = at(self.not_after);
        p.serial_number = Some(SerialNumber::from_slice(&self.serial));
        p.use_authority_key_identifier_extension = true;
        p
    }

    /// DER, signed by `ca`.
    fn signed_by(&self, ca: &Ca) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        self.params()
            .signed_by(&key, &ca.issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    /// (DER, PEM), self-signed.
    fn self_signed(&self) -> (Vec<u8>, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = self.params();
        p.use_authority_key_identifier_extension = false;
        let c = p.self_signed(&key).unwrap();
        (c.der().to_vec(), c.pem())
    }
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

fn email(s: &str) -> SanType {
    SanType::Rfc822Name(s.try_into().unwrap())
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// A custom extension holding a DER UTF8String.
fn utf8_extension(oid: &[u64], value: &str) -> CustomExtension {
    let mut der = vec![0x0c, value.len() as u8];
    der.extend_from_slice(value.as_bytes());
    CustomExtension::from_oid_content(oid, der)
}

/// A PEM CRL from `ca` revoking `serials`.
fn crl_pem(ca: &Ca, serials: &[&[u8]]) -> String {
    CertificateRevocationListParams {
        this_update: at(NOW - 3600),
        next_update: at(NOW + DAY),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: at(NOW - 60),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}

// ------------------------------------------------------------ harness --

struct Cert {
    backend: arca_sdk::Framework<arca_cert::CertAuth>,
    storage: InmemStorage,
    clock: Arc<TestSystemView>,
}

fn cert_auth() -> Cert {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let clock = Arc::new(TestSystemView::new(3600, 86400, NOW));
    Cert {
        backend: arca_cert::factory(clock.clone()),
        storage: InmemStorage::new(),
        clock,
    }
}

fn connection(peer: &[Vec<u8>]) -> Connection {
    Connection {
        remote_addr: "127.0.0.1".parse().unwrap(),
        remote_port: 40000,
        peer_certificates: peer.to_vec(),
    }
}

impl Cert {
    async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        conn: Option<Connection>,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(data);
        req.mount_point = "auth/cert/".into();
        req.connection = conn;
        Ok(self
            .backend
            .handle(&req, &self.storage)
            .await?
            .unwrap_or_default())
    }

    async fn write(&self, path: &str, data: Value) -> Result<Response, LogicalError> {
        self.call(Operation::Update, path, data, None).await
    }

    async fn read(&self, path: &str) -> Result<Response, LogicalError> {
        self.call(Operation::Read, path, json!({}), None).await
    }

    async fn login(&self, peer: &[Vec<u8>]) -> Result<Auth, LogicalError> {
        self.login_as(peer, "").await
    }

    async fn login_as(&self, peer: &[Vec<u8>], name: &str) -> Result<Auth, LogicalError> {
        let r = self
            .call(
                Operation::Update,
                "login",
                json!({ "name": name }),
                Some(connection(peer)),
            )
            .await?;
        Ok(r.auth.expect("a login answers with auth"))
    }

    /// The auth-renew callback as core makes it (no connection).
    async fn renew(&self, login: &Auth) -> Result<Response, LogicalError> {
        self.renew_over(login, None).await
    }

    async fn renew_over(
        &self,
        login: &Auth,
        conn: Option<Connection>,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(Operation::Renew, "login");
        req.mount_point = "auth/cert/".into();
        req.connection = conn;
        req.auth = Some(Auth {
            policies: login.policies.clone(),
            token_policies: login.token_policies.clone(),
            metadata: login.metadata.clone(),
            internal_data: login.internal_data.clone(),
            ..Default::default()
        });
        Ok(self
            .backend
            .handle(&req, &self.storage)
            .await?
            .unwrap_or_default())
    }
}

#[track_caller]
fn refused(r: Result<Auth, LogicalError>, text: &str) {
    match r {
        Err(LogicalError::InvalidRequest(m)) => assert!(m.contains(text), "{m:?} lacks {text:?}"),
        other => panic!("expected a 400 containing {text:?}, got {other:?}"),
    }
}

const NO_TRUST: &str = "invalid certificate or no client certificate supplied";
const NO_MATCH: &str = "no chain matching all constraints";

// -------------------------------------------------------------- tests --

#[tokio::test]
async fn a_ca_signed_client_certificate_logs_in_and_another_cas_does_not() {
    let t = cert_auth();
    let ca = root_ca("Test CA");
    t.write(
        "certs/Web",
        json!({
            "certificate": ca.pem,
            "token_policies": "readonly",
            "allowed_common_names": "web.example.com",
            "token_ttl": "1h",
        }),
    )
    .await
    .unwrap();
    let leaf = Leaf::new("web.example.com").signed_by(&ca);
    let auth = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    assert_eq!(auth.token_policies, ["readonly"]);
    assert_eq!(auth.display_name, "web");
    assert_eq!(auth.ttl, 3600);
    assert!(auth.renewable);
    assert_eq!(auth.metadata["cert_name"], "web");
    assert_eq!(auth.metadata["common_name"], "web.example.com");
    assert_eq!(auth.metadata["serial_number"], "4660", "0x1234 in decimal");
    let skid = &auth.metadata["subject_key_id"];
    let akid = &auth.metadata["authority_key_id"];
    assert_eq!(skid.len(), 20 * 3 - 1, "{skid}");
    assert!(skid.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()));
    assert_eq!(akid.len(), 20 * 3 - 1, "{akid}");
    assert_ne!(skid, akid);
    assert!(auth.internal_data.contains_key("certificate"));

    // Logging in by name works too; an unknown name trusts nothing.
    t.login_as(std::slice::from_ref(&leaf), "web")
        .await
        .unwrap();
    refused(
        t.login_as(std::slice::from_ref(&leaf), "nope").await,
        NO_TRUST,
    );

    // A certificate with the same subject from another CA.
    let other = root_ca("Test CA");
    let forged = Leaf::new("web.example.com").signed_by(&other);
    refused(t.login(&[forged]).await, NO_TRUST);

    // The CA's name does not match the entry's constraint.
    let wrong_cn = Leaf::new("db.example.com").signed_by(&ca);
    refused(t.login(&[wrong_cn]).await, NO_MATCH);

    // No certificate at all, or no TLS connection.
    refused(t.login(&[]).await, "no client certificate was presented");
    let r = t
        .call(Operation::Update, "login", json!({}), None)
        .await
        .unwrap_err();
    assert!(r.to_string().contains("no client certificate"), "{r}");

    // Garbage as the client certificate.
    refused(t.login(&[b"not DER".to_vec()]).await, "does not parse");
}

#[tokio::test]
async fn intermediates_sent_by_the_client_complete_the_chain() {
    let t = cert_auth();
    let root = root_ca("Root");
    let inter = intermediate(&root, "Issuing", &[0x51]);
    t.write("certs/root", json!({"certificate": root.pem}))
        .await
        .unwrap();
    let leaf = Leaf::new("svc").signed_by(&inter);
    refused(t.login(std::slice::from_ref(&leaf)).await, NO_TRUST);
    t.login(&[leaf.clone(), inter.der.clone()]).await.unwrap();
    // An entry that trusts the intermediate itself needs no chain.
    t.write("certs/issuing", json!({"certificate": inter.pem}))
        .await
        .unwrap();
    let a = t
        .login_as(std::slice::from_ref(&leaf), "issuing")
        .await
        .unwrap();
    assert_eq!(a.metadata["cert_name"], "issuing");

    // Revoking the intermediate refuses every chain through it.
    t.write("crls/root", json!({"crl": crl_pem(&root, &[&[0x51]])}))
        .await
        .unwrap();
    refused(
        t.login_as(&[leaf.clone(), inter.der.clone()], "root").await,
        NO_MATCH,
    );
}

#[tokio::test]
async fn validity_is_judged_by_the_engine_clock() {
    let t = cert_auth();
    let ca = root_ca("CA");
    t.write("certs/ca", json!({"certificate": ca.pem}))
        .await
        .unwrap();
    let mut spec = Leaf::new("short");
    spec.not_after = NOW + 3600;
    let short = spec.signed_by(&ca);
    t.login(std::slice::from_ref(&short)).await.unwrap();
    t.clock.advance(3601);
    refused(
        t.login(std::slice::from_ref(&short)).await,
        "not valid at this time",
    );
    t.clock.set_now(NOW);

    let mut spec = Leaf::new("future");
    spec.not_before = NOW + 60;
    let future = spec.signed_by(&ca);
    refused(
        t.login(std::slice::from_ref(&future)).await,
        "not valid at this time",
    );
    t.clock.advance(61);
    t.login(&[future]).await.unwrap();
    t.clock.set_now(NOW);

    // An expired CA trusts nothing any more.
    let old = root_ca_until("Old CA", NOW + 100);
    t.write("certs/old", json!({"certificate": old.pem}))
        .await
        .unwrap();
    let mut spec = Leaf::new("child");
    spec.not_after = NOW + 30 * DAY;
    let child = spec.signed_by(&old);
    t.login(std::slice::from_ref(&child)).await.unwrap();
    t.clock.advance(101);
    refused(t.login(&[child]).await, NO_TRUST);
}

#[tokio::test]
async fn client_auth_usage_is_required_when_usages_are_named() {
    let t = cert_auth();
    let ca = root_ca("CA");
    t.write("certs/ca", json!({"certificate": ca.pem}))
        .await
        .unwrap();
    let mut spec = Leaf::new("server");
    spec.ekus = vec![ExtendedKeyUsagePurpose::ServerAuth];
    refused(
        t.login(&[spec.signed_by(&ca)]).await,
        "TLS client authentication",
    );
    spec.ekus = vec![];
    t.login(&[spec.signed_by(&ca)]).await.unwrap();
    spec.ekus = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    t.login(&[spec.signed_by(&ca)]).await.unwrap();
}

#[tokio::test]
async fn name_san_and_ou_constraints_take_globs() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let mut spec = Leaf::new("web.example.com");
    spec.sans = vec![
        dns("api.example.com"),
        email("ops@example.com"),
        uri("spiffe://example.com/web"),
    ];
    spec.ous = vec!["Engineering"];
    let leaf = spec.signed_by(&ca);
    let cases: [(&str, &str, bool); 16] = [
        ("allowed_common_names", "*.example.com", true),
        ("allowed_common_names", "web.example.com,other", true),
        ("allowed_common_names", "*.example.org", false),
        ("allowed_dns_sans", "api.*", true),
        ("allowed_dns_sans", "web.example.com", false),
        ("allowed_email_sans", "*@example.com", true),
        ("allowed_email_sans", "root@*", false),
        ("allowed_uri_sans", "spiffe://example.com/*", true),
        ("allowed_uri_sans", "spiffe://example.org/*", false),
        ("allowed_organizational_units", "Sales,Eng*", true),
        ("allowed_organizational_units", "Sales", false),
        ("allowed_names", "ops@*", true),
        ("allowed_names", "api.example.com", true),
        ("allowed_names", "web.example.com", true),
        ("allowed_names", "spiffe://*", false),
        ("allowed_names", "nobody", false),
    ];
    for (field, value, ok) in cases {
        t.write("certs/c", json!({"certificate": ca.pem, field: value}))
            .await
            .unwrap();
        let r = t.login(std::slice::from_ref(&leaf)).await;
        assert_eq!(r.is_ok(), ok, "{field}={value}: {r:?}");
        if !ok {
            refused(r, NO_MATCH);
        }
        // Clear it again (an empty list allows anything).
        t.write("certs/c", json!({ field: "" })).await.unwrap();
    }
    // All constraints together must hold.
    t.write(
        "certs/c",
        json!({
            "allowed_common_names": "web.*",
            "allowed_dns_sans": "api.*",
            "allowed_organizational_units": "Engineering",
        }),
    )
    .await
    .unwrap();
    t.login(std::slice::from_ref(&leaf)).await.unwrap();
    t.write("certs/c", json!({"allowed_dns_sans": "db.*"}))
        .await
        .unwrap();
    refused(t.login(&[leaf]).await, NO_MATCH);
}

#[tokio::test]
async fn required_extensions_and_metadata_extensions() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let team: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1];
    let mut spec = Leaf::new("svc");
    spec.extensions = vec![utf8_extension(team, "team-blue")];
    let leaf = spec.signed_by(&ca);
    let plain = Leaf::new("svc").signed_by(&ca);
    t.write(
        "certs/c",
        json!({
            "certificate": ca.pem,
            "required_extensions": "1.3.6.1.4.1.55555.1:team-*",
            "allowed_metadata_extensions": "1.3.6.1.4.1.55555.1",
        }),
    )
    .await
    .unwrap();
    let a = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    assert_eq!(a.metadata["1-3-6-1-4-1-55555-1"], "team-blue");
    refused(t.login(std::slice::from_ref(&plain)).await, NO_MATCH);
    t.write(
        "certs/c",
        json!({"required_extensions": ["1.3.6.1.4.1.55555.1:team-red"]}),
    )
    .await
    .unwrap();
    refused(t.login(std::slice::from_ref(&leaf)).await, NO_MATCH);
    // Malformed requirements are refused and change nothing.
    for bad in ["team-blue", "x.y:team-*"] {
        let e = t
            .write("certs/c", json!({"required_extensions": bad}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("required_extensions"), "{e}");
    }
    let e = t
        .write("certs/c", json!({"allowed_metadata_extensions": "team"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("dotted OID"), "{e}");
    let r = t.read("certs/c").await.unwrap().data.unwrap();
    assert_eq!(
        r["required_extensions"],
        json!(["1.3.6.1.4.1.55555.1:team-red"])
    );
}

#[tokio::test]
async fn a_serial_on_a_stored_crl_is_refused() {
    let t = cert_auth();
    let ca = root_ca("CA");
    t.write(
        "certs/ca",
        json!({"certificate": ca.pem, "token_policies": "p"}),
    )
    .await
    .unwrap();
    let leaf = Leaf::new("revoked").signed_by(&ca);
    let mut other = Leaf::new("fine");
    other.serial = vec![0x55, 0x66];
    let other = other.signed_by(&ca);
    t.login(std::slice::from_ref(&leaf)).await.unwrap();

    t.write("crls/CA", json!({"crl": crl_pem(&ca, &[&[0x12, 0x34]])}))
        .await
        .unwrap();
    refused(t.login(std::slice::from_ref(&leaf)).await, NO_MATCH);
    t.login(std::slice::from_ref(&other)).await.unwrap();
    let r = t.read("crls/ca").await.unwrap().data.unwrap();
    assert_eq!(r["serials"], json!({"4660": {}}), "{r:?}");
    assert!(r["issuer"].as_str().unwrap().contains("CN=CA"), "{r:?}");
    assert_eq!(
        t.call(Operation::List, "crls", json!({}), None)
            .await
            .unwrap()
            .data
            .unwrap()["keys"],
        json!(["ca"])
    );

    // Replaced by a CRL without it, then deleted: the login works again.
    t.write("crls/ca", json!({"crl": crl_pem(&ca, &[&[0x77]])}))
        .await
        .unwrap();
    t.login(std::slice::from_ref(&leaf)).await.unwrap();
    t.write("crls/ca", json!({"crl": crl_pem(&ca, &[&[0x12, 0x34]])}))
        .await
        .unwrap();
    refused(t.login(std::slice::from_ref(&leaf)).await, NO_MATCH);
    t.call(Operation::Delete, "crls/ca", json!({}), None)
        .await
        .unwrap();
    t.login(std::slice::from_ref(&leaf)).await.unwrap();
    let e = t.read("crls/ca").await.unwrap_err();
    assert!(e.to_string().contains("no such CRL"), "{e}");
    let e = t
        .call(Operation::Delete, "crls/ca", json!({}), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no such CRL"), "{e}");

    // The DER form, in base64, is read too.
    let pem = crl_pem(&ca, &[&[0x12, 0x34]]);
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    t.write("crls/der", json!({ "crl": b64 })).await.unwrap();
    refused(t.login(&[leaf]).await, NO_MATCH);

    // Garbage, a certificate instead of a CRL, and URLs are refused.
    for bad in [
        json!({"crl": "garbage!"}),
        json!({"crl": ca.pem}),
        json!({}),
    ] {
        assert!(t.write("crls/bad", bad).await.is_err());
    }
    let e = t
        .write("crls/bad", json!({"url": "http://crl.example.com/ca.crl"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not available yet"), "{e}");
    assert!(t.read("crls/bad").await.is_err(), "nothing stored");
}

#[tokio::test]
async fn a_trusted_self_signed_leaf_logs_in_by_exact_match() {
    let t = cert_auth();
    let (me, me_pem) = Leaf::new("laptop").self_signed();
    t.write(
        "certs/laptop",
        json!({"certificate": me_pem, "display_name": "my-laptop", "token_policies": "dev"}),
    )
    .await
    .unwrap();
    let a = t.login(std::slice::from_ref(&me)).await.unwrap();
    assert_eq!(a.display_name, "my-laptop");
    assert_eq!(a.token_policies, ["dev"]);
    assert_eq!(a.metadata["common_name"], "laptop");
    // Another self-signed certificate with the same subject is not it.
    let (twin, _) = Leaf::new("laptop").self_signed();
    refused(t.login(&[twin]).await, NO_TRUST);
    // The constraints still apply to an exact match.
    t.write("certs/laptop", json!({"allowed_common_names": "desktop"}))
        .await
        .unwrap();
    refused(t.login(std::slice::from_ref(&me)).await, NO_MATCH);

    // A trusted leaf that may not be used for client authentication is
    // refused at write time.
    let mut server = Leaf::new("server");
    server.ekus = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (_, server_pem) = server.self_signed();
    let e = t
        .write("certs/server", json!({"certificate": server_pem}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TLS client authentication"), "{e}");
    assert!(t.read("certs/server").await.unwrap().data.is_none());
}

#[tokio::test]
async fn bad_certificates_and_bad_options_are_refused_and_nothing_is_stored() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let bad_pem = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBExDzANBgNVBAMMBnVu\n-----END CERTIFICATE-----\n";
    let key_pem = KeyPair::generate().unwrap().serialize_pem();
    for (body, text) in [
        (json!({}), "missing certificate"),
        (
            json!({"certificate": "hello"}),
            "failed to parse certificate",
        ),
        (
            json!({"certificate": bad_pem}),
            "failed to parse certificate",
        ),
        (json!({"certificate": key_pem}), "not a CERTIFICATE"),
        (
            json!({"certificate": format!("{}{}", ca.pem, key_pem)}),
            "not a CERTIFICATE",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_servers_override": "ocsp.example.com"}),
            "ocsp_servers_override",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_servers_override": ["http://ok", "ftp://ocsp"]}),
            "must be an http or https URL",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_ca_certificates": "garbage"}),
            "failed to parse ocsp_ca_certificates",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_ca_certificates": key_pem}),
            "failed to parse ocsp_ca_certificates",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_max_retries": -1}),
            "ocsp_max_retries must be between 0 and 10",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_max_retries": 11}),
            "ocsp_max_retries must be between 0 and 10",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_this_update_max_age": -5}),
            "ocsp_this_update_max_age",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_this_update_max_age": "soon"}),
            "ocsp_this_update_max_age",
        ),
        (
            json!({"certificate": ca.pem, "ocsp_enabled": "maybe"}),
            "ocsp_enabled",
        ),
        (
            json!({"certificate": ca.pem, "token_ttl": "2h", "token_max_ttl": "1h"}),
            "token_max_ttl",
        ),
    ] {
        let e = t.write("certs/x", body.clone()).await.unwrap_err();
        assert!(e.to_string().contains(text), "{body}: {e}");
    }
    assert!(t.read("certs/x").await.unwrap().data.is_none());
    assert!(t.storage.is_empty(), "{:?}", t.storage.keys());

    // Defaults are accepted; a read shows them.
    t.write(
        "certs/x",
        json!({"certificate": ca.pem, "ocsp_enabled": false, "lease": 600}),
    )
    .await
    .unwrap();
    let r = t.read("certs/x").await.unwrap().data.unwrap();
    for (k, v) in [
        ("ocsp_enabled", json!(false)),
        ("ocsp_ca_certificates", json!("")),
        ("ocsp_servers_override", json!([])),
        ("ocsp_fail_open", json!(false)),
        ("ocsp_query_all_servers", json!(false)),
        ("ocsp_max_retries", json!(4)),
        ("ocsp_this_update_max_age", json!(0)),
    ] {
        assert_eq!(r[k], v, "{k}");
    }
    assert_eq!(r["display_name"], "x");
    assert_eq!(r["token_ttl"], 600, "the deprecated lease is the TTL");
    assert_eq!(r["certificate"], ca.pem.as_str());
    // An update of one field keeps the others, and a bad update changes
    // nothing.
    t.write("certs/x", json!({"token_policies": "a,b"}))
        .await
        .unwrap();
    assert!(t
        .write(
            "certs/x",
            json!({"certificate": "junk", "token_policies": "c"})
        )
        .await
        .is_err());
    let r = t.read("certs/x").await.unwrap().data.unwrap();
    assert_eq!(r["token_policies"], json!(["a", "b"]));
    assert_eq!(r["certificate"], ca.pem.as_str());
    t.write("certs/y", json!({"certificate": ca.pem}))
        .await
        .unwrap();
    let list = |data: Value| async {
        t.call(Operation::List, "certs", data, None)
            .await
            .unwrap()
            .data
            .unwrap()["keys"]
            .clone()
    };
    assert_eq!(list(json!({})).await, json!(["x", "y"]));
    assert_eq!(list(json!({"after": "x"})).await, json!(["y"]));
    assert_eq!(list(json!({"limit": 1})).await, json!(["x"]));
    t.call(Operation::Delete, "certs/x", json!({}), None)
        .await
        .unwrap();
    assert_eq!(list(json!({})).await, json!(["y"]));
}

#[tokio::test]
async fn config_is_stored_read_back_and_checked() {
    let t = cert_auth();
    let read = || async { Value::Object(t.read("config").await.unwrap().data.unwrap()) };
    assert_eq!(
        read().await,
        json!({"disable_binding": false, "enable_identity_alias_metadata": false, "ocsp_cache_size": 100})
    );
    t.write(
        "config",
        json!({"enable_identity_alias_metadata": true, "ocsp_cache_size": 500}),
    )
    .await
    .unwrap();
    assert_eq!(
        read().await,
        json!({"disable_binding": false, "enable_identity_alias_metadata": true, "ocsp_cache_size": 500})
    );
    // Unsent settings keep their values; the bounds are Vault's.
    t.write("config", json!({"disable_binding": "true"}))
        .await
        .unwrap();
    assert_eq!(
        read().await,
        json!({"disable_binding": true, "enable_identity_alias_metadata": true, "ocsp_cache_size": 500})
    );
    for (body, text) in [
        (json!({"ocsp_cache_size": 1}), "invalid cache size"),
        (json!({"ocsp_cache_size": 100_001}), "invalid cache size"),
        (json!({"ocsp_cache_size": "many"}), "ocsp_cache_size"),
        (
            json!({"enable_identity_alias_metadata": "perhaps"}),
            "enable_identity_alias_metadata",
        ),
    ] {
        let e = t.write("config", body.clone()).await.unwrap_err();
        assert!(e.to_string().contains(text), "{body}: {e}");
    }
    t.write(
        "config",
        json!({"ocsp_cache_size": 2, "enable_identity_alias_metadata": false}),
    )
    .await
    .unwrap();
    assert_eq!(
        read().await,
        json!({"disable_binding": true, "enable_identity_alias_metadata": false, "ocsp_cache_size": 2})
    );
}

#[tokio::test]
async fn identity_alias_metadata_follows_the_config() {
    let t = cert_auth();
    let ca = root_ca("CA");
    t.write(
        "certs/web",
        json!({"certificate": ca.pem, "allowed_metadata_extensions": "1.3.6.1.4.1.55555.1"}),
    )
    .await
    .unwrap();
    let mut spec = Leaf::new("web.example.com");
    spec.extensions = vec![utf8_extension(&[1, 3, 6, 1, 4, 1, 55555, 1], "team-blue")];
    let leaf = spec.signed_by(&ca);
    let a = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    let alias = a.alias.clone().unwrap();
    assert_eq!(alias.name, "web.example.com");
    assert!(alias.metadata.is_empty(), "{alias:?}");

    t.write("config", json!({"enable_identity_alias_metadata": true}))
        .await
        .unwrap();
    let a = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    let alias = a.alias.clone().unwrap();
    assert_eq!(alias.name, "web.example.com");
    assert_eq!(alias.metadata, a.metadata, "the token's metadata");
    for k in [
        "cert_name",
        "common_name",
        "serial_number",
        "subject_key_id",
        "authority_key_id",
        "1-3-6-1-4-1-55555-1",
    ] {
        assert!(alias.metadata.contains_key(k), "{k}: {alias:?}");
    }
    assert_eq!(alias.metadata["1-3-6-1-4-1-55555-1"], "team-blue");

    t.write("config", json!({"enable_identity_alias_metadata": false}))
        .await
        .unwrap();
    let a = t.login(&[leaf]).await.unwrap();
    assert!(a.alias.unwrap().metadata.is_empty());
}

#[tokio::test]
async fn token_bound_cidrs_refuse_other_addresses() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let leaf = Leaf::new("svc").signed_by(&ca);
    t.write(
        "certs/ca",
        json!({"certificate": ca.pem, "token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await
    .unwrap();
    let e = t.login(std::slice::from_ref(&leaf)).await.unwrap_err();
    assert_eq!(e, LogicalError::PermissionDenied);
    t.write("certs/ca", json!({"token_bound_cidrs": "127.0.0.0/8"}))
        .await
        .unwrap();
    let a = t.login(&[leaf]).await.unwrap();
    assert_eq!(a.bound_cidrs, ["127.0.0.0/8"]);
}

#[tokio::test]
async fn renewal_needs_the_entry_its_policies_and_a_still_valid_certificate() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let root = root_ca("Root");
    let inter = intermediate(&root, "Issuing", &[0x61]);
    t.write(
        "certs/web",
        json!({"certificate": ca.pem, "token_policies": "readonly", "token_ttl": "1h", "token_max_ttl": "3h"}),
    )
    .await
    .unwrap();
    t.write(
        "certs/chained",
        json!({"certificate": root.pem, "token_policies": "readonly"}),
    )
    .await
    .unwrap();
    let mut spec = Leaf::new("web");
    spec.not_after = NOW + 2 * DAY;
    let leaf = spec.signed_by(&ca);
    let login = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    let r = t.renew(&login).await.unwrap().auth.unwrap();
    assert_eq!((r.ttl, r.max_ttl), (3600, 10800));

    // A login through an intermediate renews with the chain it recorded.
    let chained_leaf = Leaf::new("deep").signed_by(&inter);
    let chained = t
        .login(&[chained_leaf.clone(), inter.der.clone()])
        .await
        .unwrap();
    assert_eq!(chained.metadata["cert_name"], "chained");
    t.renew(&chained).await.unwrap();

    // Presenting another certificate at renewal breaks the binding.
    let other = Leaf::new("web").signed_by(&ca);
    let e = t
        .renew_over(&login, Some(connection(&[other])))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    t.renew_over(&login, Some(connection(std::slice::from_ref(&leaf))))
        .await
        .unwrap();

    // Changed policies stop renewals until they are restored.
    t.write("certs/web", json!({"token_policies": "readonly,admin"}))
        .await
        .unwrap();
    let e = t.renew(&login).await.unwrap_err();
    assert!(e.to_string().contains("policies have changed"), "{e}");
    t.write("certs/web", json!({"token_policies": "readonly"}))
        .await
        .unwrap();
    t.renew(&login).await.unwrap();

    // Revoked, expired, or outside the entry's new constraints: refused;
    // with binding disabled only the entry and its policies count.
    t.write("crls/ca", json!({"crl": crl_pem(&ca, &[&[0x12, 0x34]])}))
        .await
        .unwrap();
    let e = t.renew(&login).await.unwrap_err();
    assert!(e.to_string().contains("no longer verifies"), "{e}");
    t.write("config", json!({"disable_binding": true}))
        .await
        .unwrap();
    t.renew(&login).await.unwrap();
    t.write("config", json!({"disable_binding": false}))
        .await
        .unwrap();
    t.call(Operation::Delete, "crls/ca", json!({}), None)
        .await
        .unwrap();
    t.renew(&login).await.unwrap();
    t.write("certs/web", json!({"allowed_common_names": "api"}))
        .await
        .unwrap();
    assert!(t.renew(&login).await.is_err());
    t.write("certs/web", json!({"allowed_common_names": ""}))
        .await
        .unwrap();
    t.clock.advance(2 * DAY + 1);
    let e = t.renew(&login).await.unwrap_err();
    assert!(e.to_string().contains("not valid at this time"), "{e}");
    t.clock.set_now(NOW);
    t.renew(&login).await.unwrap();

    // A deleted entry ends renewals.
    t.call(Operation::Delete, "certs/web", json!({}), None)
        .await
        .unwrap();
    let e = t.renew(&login).await.unwrap_err();
    assert!(e.to_string().contains("no longer exists"), "{e}");
}

// --------------------------------------------------------------- OCSP --

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{Decode, Encode};
use sha1::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
};

const ID_PKIX_OCSP_BASIC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// What the test responder says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Says {
    Good,
    Revoked,
    Unknown,
}

/// How the test responder answers.
#[derive(Clone)]
struct Plan {
    says: Says,
    /// PKCS#8 key that signs, and certificates included in the answer.
    signer: Vec<u8>,
    certs: Vec<Vec<u8>>,
    this_update: i64,
    next_update: Option<i64>,
    /// An HTTP error status instead of an answer.
    http_status: Option<u16>,
    /// An OCSP error status instead of a successful answer.
    ocsp_status: Option<OcspResponseStatus>,
    /// Bytes that are no OCSP answer at all.
    garbage: bool,
    /// Answer about another serial number.
    other_serial: bool,
    /// SHA-1 of the issuer's name and key the CertID must carry (else
    /// "unknown", as a real responder answers for an issuer it lacks).
    issuer_hashes: ([u8; 20], [u8; 20]),
}

fn issuer_hashes(ca_der: &[u8]) -> ([u8; 20], [u8; 20]) {
    let (_, c) = x509_parser::parse_x509_certificate(ca_der).unwrap();
    (
        sha1::Sha1::digest(c.subject().as_raw()).into(),
        sha1::Sha1::digest(&c.public_key().subject_public_key.data).into(),
    )
}

impl Plan {
    /// "good", signed by `ca` itself, current, without nextUpdate.
    fn good(ca: &Ca) -> Plan {
        Plan {
            says: Says::Good,
            signer: ca.key_der.clone(),
            certs: vec![],
            this_update: NOW - 60,
            next_update: None,
            http_status: None,
            ocsp_status: None,
            garbage: false,
            other_serial: false,
            issuer_hashes: issuer_hashes(&ca.der),
        }
    }

    fn says(mut self, says: Says) -> Plan {
        self.says = says;
        self
    }
}

fn gtime(t: i64) -> OcspGeneralizedTime {
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(t as u64)).unwrap(),
    )
}

/// The responder's answer to a DER request: (HTTP status, body).
fn answer(plan: &Plan, body: &[u8]) -> (u16, Vec<u8>) {
    if let Some(s) = plan.http_status {
        return (s, b"no".to_vec());
    }
    if plan.garbage {
        return (200, b"<html>not OCSP</html>".to_vec());
    }
    if let Some(status) = plan.ocsp_status {
        let der = OcspResponse {
            response_status: status,
            response_bytes: None,
        }
        .to_der()
        .unwrap();
        return (200, der);
    }
    let Ok(req) = OcspRequest::from_der(body) else {
        return (400, b"bad request".to_vec());
    };
    let mut responses = vec![];
    for r in &req.tbs_request.request_list {
        let mut id = r.req_cert.clone();
        let ours = id.issuer_name_hash.as_bytes() == plan.issuer_hashes.0
            && id.issuer_key_hash.as_bytes() == plan.issuer_hashes.1;
        if plan.other_serial {
            id.serial_number = rcgen_serial(&[0x0e, 0xee]);
        }
        let status = match (ours, plan.says) {
            (false, _) | (true, Says::Unknown) => CertStatus::unknown(),
            (true, Says::Good) => CertStatus::good(),
            (true, Says::Revoked) => CertStatus::revoked(RevokedInfo {
                revocation_time: gtime(NOW - 120),
                revocation_reason: None,
            }),
        };
        responses.push(SingleResponse {
            cert_id: id,
            cert_status: status,
            this_update: gtime(plan.this_update),
            next_update: plan.next_update.map(gtime),
            single_extensions: None,
        });
    }
    let key = KeyPair::try_from(plan.signer.as_slice()).unwrap();
    let tbs = ResponseData {
        version: Default::default(),
        responder_id: ResponderId::ByKey(OctetString::new(vec![0u8; 20]).unwrap()),
        produced_at: gtime(NOW - 30),
        responses,
        response_extensions: None,
    };
    let signature = {
        use rcgen::SigningKey;
        key.sign(&tbs.to_der().unwrap()).unwrap()
    };
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(&signature).unwrap(),
        certs: (!plan.certs.is_empty()).then(|| {
            plan.certs
                .iter()
                .map(|d| x509_cert::Certificate::from_der(d).unwrap())
                .collect()
        }),
    };
    let der = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap();
    (200, der)
}

fn rcgen_serial(b: &[u8]) -> x509_cert::serial_number::SerialNumber {
    x509_cert::serial_number::SerialNumber::new(b).unwrap()
}

/// A loopback OCSP responder answering by its plan and counting requests.
struct Responder {
    url: String,
    plan: Arc<Mutex<Plan>>,
    hits: Arc<AtomicUsize>,
}

impl Responder {
    async fn start(plan: Plan) -> Responder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
        let plan = Arc::new(Mutex::new(plan));
        let hits = Arc::new(AtomicUsize::new(0));
        let (p, h) = (plan.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (p, h) = (p.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    assert!(head.starts_with("post "), "{head}");
                    assert!(
                        head.contains("content-type: application/ocsp-request"),
                        "{head}"
                    );
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let plan = p.lock().unwrap().clone();
                    let (status, body) = answer(&plan, &buf[head_end..head_end + len]);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Responder { url, plan, hits }
    }

    fn set(&self, f: impl FnOnce(&mut Plan)) {
        f(&mut self.plan.lock().unwrap());
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ocsp", l.local_addr().unwrap());
    drop(l);
    url
}

/// An Authority Information Access extension naming an OCSP responder.
fn aia_extension(url: &str) -> CustomExtension {
    let method = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    assert!(url.len() < 100);
    let mut desc = method.to_vec();
    desc.push(0x86);
    desc.push(url.len() as u8);
    desc.extend_from_slice(url.as_bytes());
    let mut one = vec![0x30, desc.len() as u8];
    one.extend(desc);
    let mut all = vec![0x30, one.len() as u8];
    all.extend(one);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], all)
}

/// A responder certificate from `ca`: (DER, PKCS#8 key), with or without
/// id-kp-OCSPSigning.
fn responder_cert(ca: &Ca, ocsp_signing: bool) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "OCSP responder");
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = if ocsp_signing {
        vec![ExtendedKeyUsagePurpose::OcspSigning]
    } else {
        vec![ExtendedKeyUsagePurpose::ServerAuth]
    };
    p.not_before = at(NOW - DAY);
    p.not_after = at(NOW + 30 * DAY);
    p.serial_number = Some(SerialNumber::from_slice(&[0x0c, 0x5f]));
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

/// A leaf with its own serial number.
fn leaf_with_serial(ca: &Ca, cn: &'static str, serial: &[u8]) -> Vec<u8> {
    let mut spec = Leaf::new(cn);
    spec.serial = serial.to_vec();
    spec.signed_by(ca)
}

#[tokio::test]
async fn ocsp_good_revoked_and_unknown_decide_the_login() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let r = Responder::start(Plan::good(&ca)).await;
    t.write(
        "certs/web",
        json!({
            "certificate": ca.pem,
            "ocsp_enabled": true,
            "ocsp_servers_override": r.url,
            "token_policies": "p",
        }),
    )
    .await
    .unwrap();
    let leaf = Leaf::new("web").signed_by(&ca);
    let a = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    assert_eq!(a.metadata["cert_name"], "web");
    assert_eq!(r.hits(), 1);

    r.set(|p| p.says = Says::Revoked);
    let e = t.login(std::slice::from_ref(&leaf)).await;
    refused(e.clone(), NO_MATCH);
    refused(e, "has been revoked");
    assert_eq!(r.hits(), 2, "an answer without nextUpdate is not cached");

    r.set(|p| p.says = Says::Unknown);
    refused(t.login(std::slice::from_ref(&leaf)).await, "status unknown");
    // fail-open lets an unknown status through, never a revoked one.
    t.write("certs/web", json!({"ocsp_fail_open": true}))
        .await
        .unwrap();
    t.login(std::slice::from_ref(&leaf)).await.unwrap();
    r.set(|p| p.says = Says::Revoked);
    refused(
        t.login(std::slice::from_ref(&leaf)).await,
        "has been revoked",
    );

    // Turned off, the responder is not asked.
    let before = r.hits();
    t.write("certs/web", json!({"ocsp_enabled": false}))
        .await
        .unwrap();
    t.login(std::slice::from_ref(&leaf)).await.unwrap();
    assert_eq!(r.hits(), before);

    // Another entry that trusts the chain without OCSP takes the login
    // that OCSP refuses for the first one.
    t.write(
        "certs/web",
        json!({"ocsp_enabled": true, "ocsp_fail_open": false}),
    )
    .await
    .unwrap();
    refused(
        t.login(std::slice::from_ref(&leaf)).await,
        "has been revoked",
    );
    t.write("certs/zz-plain", json!({"certificate": ca.pem}))
        .await
        .unwrap();
    let a = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    assert_eq!(a.metadata["cert_name"], "zz-plain");
}

#[tokio::test]
async fn the_certid_names_the_issuer_in_the_verified_chain() {
    let t = cert_auth();
    let root = root_ca("Root");
    let inter = intermediate(&root, "Issuing", &[0x51]);
    // The intermediate's responder: it knows only certificates that the
    // intermediate issued (by the CertID's issuer hashes).
    let r = Responder::start(Plan::good(&inter)).await;
    t.write(
        "certs/root",
        json!({"certificate": root.pem, "ocsp_enabled": true, "ocsp_servers_override": [r.url]}),
    )
    .await
    .unwrap();
    let leaf = Leaf::new("deep").signed_by(&inter);
    t.login(&[leaf.clone(), inter.der.clone()]).await.unwrap();
    // An answer signed by the root, not the issuer, does not count.
    r.set(|p| p.signer = root.key_der.clone());
    refused(
        t.login(&[leaf.clone(), inter.der.clone()]).await,
        "not signed by the issuer",
    );
    // A responder that knows only the root's certificates says unknown.
    r.set(|p| {
        *p = Plan::good(&inter);
        p.issuer_hashes = issuer_hashes(&root.der);
    });
    refused(
        t.login(&[leaf.clone(), inter.der.clone()]).await,
        "status unknown",
    );
}

#[tokio::test]
async fn ocsp_answers_must_be_signed_current_and_about_this_certificate() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let other = root_ca("Other CA");
    let r = Responder::start(Plan::good(&ca)).await;
    t.write(
        "certs/web",
        json!({"certificate": ca.pem, "ocsp_enabled": true, "ocsp_servers_override": r.url, "ocsp_max_retries": 0}),
    )
    .await
    .unwrap();
    let leaf = Leaf::new("web").signed_by(&ca);
    let login = || t.login(std::slice::from_ref(&leaf));
    login().await.unwrap();

    // Signed by a key the issuer has nothing to do with.
    r.set(|p| p.signer = other.key_der.clone());
    refused(login().await, "not signed by the issuer");
    // A responder the issuer delegated to, with id-kp-OCSPSigning...
    let (delegate, delegate_key) = responder_cert(&ca, true);
    r.set(|p| {
        p.signer = delegate_key.clone();
        p.certs = vec![delegate.clone()];
    });
    login().await.unwrap();
    // ...but not without it, nor one another CA issued.
    let (no_eku, no_eku_key) = responder_cert(&ca, false);
    r.set(|p| {
        p.signer = no_eku_key.clone();
        p.certs = vec![no_eku.clone()];
    });
    refused(login().await, "not signed by the issuer");
    let (foreign, foreign_key) = responder_cert(&other, true);
    r.set(|p| {
        p.signer = foreign_key.clone();
        p.certs = vec![foreign.clone()];
    });
    refused(login().await, "not signed by the issuer");
    // Unless that CA is among the entry's ocsp_ca_certificates (as PEM or
    // as base64 of PEM); it may also sign answers itself.
    t.write("certs/web", json!({"ocsp_ca_certificates": other.pem}))
        .await
        .unwrap();
    login().await.unwrap();
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        other.pem.as_bytes(),
    );
    t.write("certs/web", json!({"ocsp_ca_certificates": b64}))
        .await
        .unwrap();
    r.set(|p| {
        p.signer = other.key_der.clone();
        p.certs = vec![];
    });
    login().await.unwrap();
    t.write("certs/web", json!({"ocsp_ca_certificates": ""}))
        .await
        .unwrap();
    refused(login().await, "not signed by the issuer");

    // Times, by the engine's clock.
    r.set(|p| *p = Plan::good(&ca));
    r.set(|p| p.this_update = NOW + 3600);
    refused(login().await, "in the future");
    r.set(|p| p.this_update = NOW + 30);
    login().await.unwrap();
    r.set(|p| {
        p.this_update = NOW - 7200;
        p.next_update = Some(NOW - 3600);
    });
    refused(login().await, "out of date");
    r.set(|p| p.next_update = None);
    login().await.unwrap();
    t.write("certs/web", json!({"ocsp_this_update_max_age": "1h"}))
        .await
        .unwrap();
    refused(login().await, "ocsp_this_update_max_age");
    t.clock.set_now(NOW - 5400);
    login().await.unwrap();
    t.clock.set_now(NOW);
    t.write("certs/web", json!({"ocsp_this_update_max_age": 0}))
        .await
        .unwrap();

    // About another certificate, malformed, an OCSP error, an HTTP error.
    r.set(|p| *p = Plan::good(&ca));
    r.set(|p| p.other_serial = true);
    refused(login().await, "no response for this certificate");
    r.set(|p| {
        p.other_serial = false;
        p.garbage = true;
    });
    refused(login().await, "not an OCSP response");
    r.set(|p| {
        p.garbage = false;
        p.ocsp_status = Some(OcspResponseStatus::TryLater);
    });
    refused(login().await, "TryLater");
    r.set(|p| {
        p.ocsp_status = None;
        p.http_status = Some(404);
    });
    refused(login().await, "HTTP 404");
    let before = r.hits();
    refused(login().await, NO_MATCH);
    assert_eq!(r.hits(), before + 1, "a 404 is not retried");
    // A 5xx is retried ocsp_max_retries times.
    t.write("certs/web", json!({"ocsp_max_retries": 2}))
        .await
        .unwrap();
    r.set(|p| p.http_status = Some(503));
    let before = r.hits();
    refused(login().await, "3 attempts");
    assert_eq!(r.hits(), before + 3);
    let with_fail_open = json!({"ocsp_fail_open": true});
    t.write("certs/web", with_fail_open).await.unwrap();
    login().await.unwrap();
}

#[tokio::test]
async fn responders_come_from_the_override_or_the_certificate() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let good = Responder::start(Plan::good(&ca)).await;
    let revoked = Responder::start(Plan::good(&ca).says(Says::Revoked)).await;
    let dead = dead_url();

    // No override: the leaf's AIA URL is asked.
    t.write(
        "certs/web",
        json!({"certificate": ca.pem, "ocsp_enabled": true, "ocsp_max_retries": 0}),
    )
    .await
    .unwrap();
    let mut spec = Leaf::new("web");
    spec.extensions = vec![aia_extension(&good.url)];
    spec.serial = vec![0x21];
    let with_aia = spec.signed_by(&ca);
    t.login(std::slice::from_ref(&with_aia)).await.unwrap();
    assert_eq!(good.hits(), 1);
    // Without either, there is no one to ask.
    let plain = leaf_with_serial(&ca, "web", &[0x22]);
    refused(
        t.login(std::slice::from_ref(&plain)).await,
        "no OCSP responder",
    );

    // The override wins over the AIA URL.
    t.write("certs/web", json!({"ocsp_servers_override": revoked.url}))
        .await
        .unwrap();
    refused(
        t.login(std::slice::from_ref(&with_aia)).await,
        "has been revoked",
    );
    assert_eq!(good.hits(), 1);

    // The first responder that answers decides; errors move on.
    t.write(
        "certs/web",
        json!({"ocsp_servers_override": [dead, good.url, revoked.url]}),
    )
    .await
    .unwrap();
    t.login(std::slice::from_ref(&plain)).await.unwrap();
    // Asking them all, "revoked" from any wins.
    t.write("certs/web", json!({"ocsp_query_all_servers": true}))
        .await
        .unwrap();
    let before = (good.hits(), revoked.hits());
    refused(
        t.login(std::slice::from_ref(&plain)).await,
        "has been revoked",
    );
    assert_eq!((good.hits(), revoked.hits()), (before.0 + 1, before.1 + 1));
    t.write(
        "certs/web",
        json!({"ocsp_servers_override": [dead, good.url]}),
    )
    .await
    .unwrap();
    t.login(std::slice::from_ref(&plain)).await.unwrap();

    // Nobody answers: refused, unless fail-open.
    t.write(
        "certs/web",
        json!({"ocsp_servers_override": [dead], "ocsp_query_all_servers": false}),
    )
    .await
    .unwrap();
    let e = t.login(std::slice::from_ref(&plain)).await;
    refused(e.clone(), "no OCSP responder answered");
    refused(e, &dead);
    t.write("certs/web", json!({"ocsp_fail_open": true}))
        .await
        .unwrap();
    t.login(std::slice::from_ref(&plain)).await.unwrap();
}

#[tokio::test]
async fn answers_are_cached_until_next_update_in_a_bounded_cache() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let r = Responder::start(Plan::good(&ca)).await;
    r.set(|p| p.next_update = Some(NOW + 3600));
    t.write(
        "certs/web",
        json!({"certificate": ca.pem, "ocsp_enabled": true, "ocsp_servers_override": r.url}),
    )
    .await
    .unwrap();
    let a = leaf_with_serial(&ca, "a", &[0x31]);
    let b = leaf_with_serial(&ca, "b", &[0x32]);
    let c = leaf_with_serial(&ca, "c", &[0x33]);
    t.login(std::slice::from_ref(&a)).await.unwrap();
    t.login(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(r.hits(), 1, "cached until nextUpdate");
    // A revocation is seen once the cached answer runs out.
    r.set(|p| {
        p.says = Says::Revoked;
        p.this_update = NOW + 3000;
        p.next_update = Some(NOW + 7200);
    });
    t.login(std::slice::from_ref(&a)).await.unwrap();
    t.clock.set_now(NOW + 3601);
    refused(t.login(std::slice::from_ref(&a)).await, "has been revoked");
    assert_eq!(r.hits(), 2);
    // The revoked answer is cached too.
    refused(t.login(std::slice::from_ref(&a)).await, "has been revoked");
    assert_eq!(r.hits(), 2);
    t.clock.set_now(NOW);

    // Two answers fit in a cache of two; a third pushes out the oldest.
    t.write("config", json!({"ocsp_cache_size": 2}))
        .await
        .unwrap();
    r.set(|p| {
        p.says = Says::Good;
        p.this_update = NOW - 60;
        p.next_update = Some(NOW + 3600);
    });
    let hits = r.hits();
    for leaf in [&b, &c, &b, &c] {
        t.login(std::slice::from_ref(leaf)).await.unwrap();
    }
    assert_eq!(r.hits(), hits + 2);
    t.login(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(r.hits(), hits + 3, "a was pushed out");
    t.login(std::slice::from_ref(&c)).await.unwrap();
    assert_eq!(r.hits(), hits + 3, "c is still there");
    t.login(std::slice::from_ref(&b)).await.unwrap();
    assert_eq!(r.hits(), hits + 4, "b was the least recently used");

    // A cached answer serves an entry only within its max age.
    t.write("certs/web", json!({"ocsp_this_update_max_age": 30}))
        .await
        .unwrap();
    refused(
        t.login(std::slice::from_ref(&b)).await,
        "ocsp_this_update_max_age",
    );
}

#[tokio::test]
async fn renewal_asks_ocsp_again() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let r = Responder::start(Plan::good(&ca)).await;
    t.write(
        "certs/web",
        json!({"certificate": ca.pem, "ocsp_enabled": true, "ocsp_servers_override": r.url, "token_policies": "p"}),
    )
    .await
    .unwrap();
    let leaf = Leaf::new("web").signed_by(&ca);
    let login = t.login(std::slice::from_ref(&leaf)).await.unwrap();
    t.renew(&login).await.unwrap();
    r.set(|p| p.says = Says::Revoked);
    let e = t.renew(&login).await.unwrap_err();
    assert!(e.to_string().contains("no longer verifies"), "{e}");
    assert!(e.to_string().contains("has been revoked"), "{e}");
    // With binding off only the entry and its policies count.
    t.write("config", json!({"disable_binding": true}))
        .await
        .unwrap();
    t.renew(&login).await.unwrap();
}

#[tokio::test]
async fn ocsp_settings_are_stored_and_read_back() {
    let t = cert_auth();
    let ca = root_ca("CA");
    let other = root_ca("Other");
    t.write(
        "certs/web",
        json!({
            "certificate": ca.pem,
            "ocsp_enabled": "true",
            "ocsp_ca_certificates": other.pem,
            "ocsp_servers_override": "http://ocsp-a.example.com, https://ocsp-b.example.com:8443/x",
            "ocsp_fail_open": true,
            "ocsp_query_all_servers": 1,
            "ocsp_max_retries": "7",
            "ocsp_this_update_max_age": "2h",
        }),
    )
    .await
    .unwrap();
    let want = json!({
        "ocsp_enabled": true,
        "ocsp_ca_certificates": other.pem,
        "ocsp_servers_override": ["http://ocsp-a.example.com", "https://ocsp-b.example.com:8443/x"],
        "ocsp_fail_open": true,
        "ocsp_query_all_servers": true,
        "ocsp_max_retries": 7,
        "ocsp_this_update_max_age": 7200,
    });
    let check = |r: &serde_json::Map<String, Value>, want: &Value| {
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&r[k], v, "{k}");
        }
    };
    check(&t.read("certs/web").await.unwrap().data.unwrap(), &want);
    // An update of other fields keeps them; a bad OCSP value changes nothing.
    t.write("certs/web", json!({"token_policies": "p"}))
        .await
        .unwrap();
    check(&t.read("certs/web").await.unwrap().data.unwrap(), &want);
    assert!(t
        .write(
            "certs/web",
            json!({"ocsp_fail_open": false, "ocsp_servers_override": "nope"})
        )
        .await
        .is_err());
    check(&t.read("certs/web").await.unwrap().data.unwrap(), &want);
    // Each can be set back.
    t.write(
        "certs/web",
        json!({
            "ocsp_enabled": false,
            "ocsp_ca_certificates": "",
            "ocsp_servers_override": [],
            "ocsp_fail_open": false,
            "ocsp_query_all_servers": false,
            "ocsp_max_retries": 0,
            "ocsp_this_update_max_age": 0,
        }),
    )
    .await
    .unwrap();
    check(
        &t.read("certs/web").await.unwrap().data.unwrap(),
        &json!({
            "ocsp_enabled": false,
            "ocsp_ca_certificates": "",
            "ocsp_servers_override": [],
            "ocsp_fail_open": false,
            "ocsp_query_all_servers": false,
            "ocsp_max_retries": 0,
            "ocsp_this_update_max_age": 0,
        }),
    );
}
