//! The cert auth method through real clients over a real TLS listener: a
//! server with a plain listener (setup) and a TLS one whose certificate
//! comes from an openssl-made CA; `bao auth enable cert`, `bao write
//! auth/cert/certs/web certificate=@ca.pem token_policies=readonly
//! allowed_common_names=web.example.com`, then `bao login -method=cert
//! -client-cert=... -client-key=...` with openssl-made client certificates:
//! reads allowed and writes refused (403), a certificate of another CA, one
//! with another common name and a login without a certificate refused, one
//! revoked by a CRL made with `openssl ca -gencrl` refused once the CRL is
//! stored, renewal working until the entry is deleted. hvac's
//! `auth.cert.login` on the same server.
//!
//! OCSP with Arca's own PKI engine as the CA and the OCSP responder (on the
//! same server's plain listener): client certificates from `pki/issue`, an
//! entry with `ocsp_enabled` and `ocsp_servers_override` (or the
//! certificate's AIA URL from `pki/config/urls`); a login works until
//! `pki/revoke`, then is refused; a dead responder refuses, unless
//! `ocsp_fail_open`.

mod common;

use std::path::Path;

use common::{
    free_port, learning_path_setup, openssl, run_python_ok, wait_until, write_pem, Bao, Out, Server,
};
use serde_json::json;

const READONLY: &str = r#"path "secret/data/*" { capabilities = ["read"] }"#;

/// `dir/NAME.pem` + `NAME.key`: a client certificate from the CA in
/// `dir/ca.pem`, allowed for TLS client authentication.
fn client_cert(dir: &Path, name: &str, cn: &str) {
    common::ca_issued_cert(
        dir,
        name,
        &format!("/CN={cn}"),
        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
}

/// Revokes `dir/NAME.pem` in a tiny `openssl ca` database next to the
/// CA of `dir` and writes `dir/crl.pem`.
fn revoke_and_gencrl(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[ ca ]\ndefault_ca = test_ca\n\n[ test_ca ]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
         certificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\ndefault_crl_days = 7\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    openssl(
        dir,
        &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.pem")],
    );
    openssl(
        dir,
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"],
    );
    let text = openssl(dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(text.contains("Revoked Certificates"), "{text}");
}

/// A decimal number as upper-case hex with an even number of digits
/// (openssl's `-serial` form).
fn decimal_to_hex(d: &str) -> String {
    let mut bytes: Vec<u8> = vec![0];
    for digit in d.bytes() {
        let mut carry = u32::from(digit - b'0');
        for b in bytes.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes.remove(0);
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn bao_and_hvac_log_in_with_client_certificates() {
    // The server's TLS certificate, from its own CA.
    let tls = tempfile::tempdir().unwrap();
    // The CA that issues client certificates, and another one.
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    common::self_signed_cert(dir, "ca", "/CN=Client CA");
    client_cert(dir, "client", "web.example.com");
    client_cert(dir, "revoked", "web.example.com");
    client_cert(dir, "db", "db.example.com");
    let other = tempfile::tempdir().unwrap();
    common::self_signed_cert(other.path(), "ca", "/CN=Client CA");
    client_cert(other.path(), "client", "web.example.com");

    let (server, tls_port) = tls_server(tls.path());
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    learning_path_setup(&server, &init.root_token, "cert", READONLY);

    // A certificate that does not parse is refused, and nothing stored.
    root.run(&[
        "write",
        "auth/cert/certs/web",
        &format!("certificate=@{}", path(dir, "ca.key")),
    ])
    .api_error(400, "failed to parse certificate");
    root.run(&["read", "auth/cert/certs/web"]).code(2);
    root.run(&[
        "write",
        "auth/cert/certs/web",
        &format!("certificate=@{}", path(dir, "ca.pem")),
        "ocsp_enabled=true",
        "ocsp_servers_override=ocsp.example.com",
    ])
    .api_error(400, "ocsp_servers_override");
    root.run(&["read", "auth/cert/certs/web"]).code(2);

    root.run(&[
        "write",
        "auth/cert/certs/web",
        &format!("certificate=@{}", path(dir, "ca.pem")),
        "token_policies=readonly",
        "allowed_common_names=web.example.com",
        "token_ttl=1h",
        "token_max_ttl=2h",
    ])
    .ok();
    let e = root.json(&["read", "-format=json", "auth/cert/certs/web"]);
    assert_eq!(e["data"]["token_policies"], json!(["readonly"]), "{e}");
    assert_eq!(
        e["data"]["allowed_common_names"],
        json!(["web.example.com"]),
        "{e}"
    );
    assert_eq!(e["data"]["display_name"], "web", "{e}");
    assert_eq!(
        root.json(&["list", "-format=json", "auth/cert/certs"]),
        json!(["web"])
    );

    // `bao login -method=cert` over the TLS listener.
    let over_tls = Bao {
        addr: format!("https://127.0.0.1:{tls_port}"),
        ..server.bao().without_token()
    };
    let login = |d: &Path, name: &str, extra: &[&str]| {
        let cert = format!("-client-cert={}", path(d, &format!("{name}.pem")));
        let key = format!("-client-key={}", path(d, &format!("{name}.key")));
        let ca = format!("-ca-cert={}", path(tls.path(), "ca.pem"));
        let mut args = vec![
            "login",
            "-method=cert",
            "-no-store",
            "-format=json",
            ca.as_str(),
            cert.as_str(),
            key.as_str(),
        ];
        args.extend(extra);
        over_tls.run(&args)
    };
    let out = login(dir, "client", &["name=web"]).ok().json();
    let token = out["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        out["auth"]["policies"],
        json!(["default", "readonly"]),
        "{out}"
    );
    assert_eq!(out["auth"]["lease_duration"], 3600, "{out}");
    let meta = &out["auth"]["metadata"];
    assert_eq!(meta["cert_name"], "web", "{out}");
    assert_eq!(meta["common_name"], "web.example.com", "{out}");
    // Vault's forms: the serial in decimal, key ids as aa:bb:...
    let serial = openssl(dir, &["x509", "-in", "client.pem", "-noout", "-serial"]);
    assert_eq!(
        decimal_to_hex(meta["serial_number"].as_str().unwrap()),
        serial.trim().trim_start_matches("serial=").to_uppercase(),
        "{out}"
    );
    let skid = openssl(
        dir,
        &[
            "x509",
            "-in",
            "client.pem",
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ],
    );
    assert!(
        skid.to_lowercase()
            .contains(meta["subject_key_id"].as_str().unwrap()),
        "{skid} / {out}"
    );

    let app = server.bao().with_token(&token);
    let v = app.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");
    app.run(&["kv", "put", "secret/app", "password=mine"])
        .api_error(403, "permission denied");
    let me = app.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["display_name"], "cert-web", "{me}");
    assert_eq!(me["data"]["meta"]["cert_name"], "web", "{me}");

    // Without the entry's trust or constraints, or without a certificate.
    login(other.path(), "client", &[])
        .api_error(400, "invalid certificate or no client certificate supplied");
    login(dir, "db", &[]).api_error(400, "no chain matching all constraints");
    server
        .bao()
        .without_token()
        .run(&["write", "auth/cert/login", "name=web"])
        .api_error(400, "no client certificate was presented");

    // hvac, as its documentation shows it.
    let script = r#"
import sys, hvac
url, ca, cert, key, other_cert, other_key = sys.argv[1:7]
client = hvac.Client(url=url, verify=ca)
r = client.auth.cert.login(cert_pem=cert, key_pem=key)
assert r["auth"]["metadata"]["cert_name"] == "web", r
assert sorted(r["auth"]["policies"]) == ["default", "readonly"], r
assert client.is_authenticated()
v = client.secrets.kv.v2.read_secret_version(path="app", mount_point="secret", raise_on_deleted_version=True)
assert v["data"]["data"]["password"] == "s3cret", v
try:
    client.secrets.kv.v2.create_or_update_secret(path="app", secret={"password": "x"}, mount_point="secret")
    raise SystemExit("a read-only token wrote")
except hvac.exceptions.Forbidden:
    pass
try:
    hvac.Client(url=url, verify=ca).auth.cert.login(cert_pem=other_cert, key_pem=other_key)
    raise SystemExit("a certificate of another CA logged in")
except hvac.exceptions.InvalidRequest as e:
    assert "invalid certificate" in str(e), e
print("hvac cert: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[
            &over_tls.addr,
            &path(tls.path(), "ca.pem"),
            &path(dir, "client.pem"),
            &path(dir, "client.key"),
            &path(other.path(), "client.pem"),
            &path(other.path(), "client.key"),
        ],
        "hvac cert: ok",
    );

    // A revoked certificate logs in until its CRL is stored.
    login(dir, "revoked", &[]).ok();
    revoke_and_gencrl(dir, "revoked");
    root.run(&[
        "write",
        "auth/cert/crls/ca",
        &format!("crl=@{}", path(dir, "crl.pem")),
    ])
    .ok();
    let crl = root.json(&["read", "-format=json", "auth/cert/crls/ca"]);
    assert_eq!(
        crl["data"]["serials"].as_object().unwrap().len(),
        1,
        "{crl}"
    );
    assert_eq!(
        root.json(&["list", "-format=json", "auth/cert/crls"]),
        json!(["ca"])
    );
    login(dir, "revoked", &[]).api_error(400, "no chain matching all constraints");
    login(dir, "client", &[]).ok();

    // Renewal presents the login's certificate (Vault's binding): it works
    // while the entry exists, is refused without that certificate, and
    // stops once the entry is deleted.
    let ca = format!("-ca-cert={}", path(tls.path(), "ca.pem"));
    let cert = format!("-client-cert={}", path(dir, "client.pem"));
    let key = format!("-client-key={}", path(dir, "client.key"));
    let renew = [
        "token",
        "renew",
        "-format=json",
        ca.as_str(),
        cert.as_str(),
        key.as_str(),
    ];
    let app_tls = over_tls.with_token(&token);
    let r = app_tls.json(&renew);
    assert_eq!(r["auth"]["lease_duration"], 3600, "{r}");
    app.run(&["token", "renew"])
        .api_error(400, "client identity");
    root.run(&["delete", "auth/cert/certs/web"]).ok();
    app_tls.run(&renew).api_error(400, "no longer exists");
    login(dir, "client", &[]).api_error(400, "invalid certificate");
}

/// A server with a plain listener and a TLS one (`tls/server.pem`, from
/// the CA `tls/ca.pem`) that asks for client certificates; the TLS port.
fn tls_server(tls: &Path) -> (Server, u16) {
    common::self_signed_cert(tls, "ca", "/CN=Arca Listener CA");
    common::ca_issued_cert(
        tls,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    let tls_port = free_port();
    let server = Server::start_rocksdb_with(
        "",
        &format!(
            "listener \"tcp\" {{\naddress = \"127.0.0.1:{tls_port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n}}",
            path(tls, "server.pem"),
            path(tls, "server.key"),
        ),
    );
    wait_until(
        "the TLS listener",
        std::time::Duration::from_secs(60),
        || std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok(),
    );
    (server, tls_port)
}

/// `bao login -method=cert` over the TLS listener with `dir/NAME.pem` and
/// `dir/NAME.key`.
fn cert_login(over_tls: &Bao, tls: &Path, dir: &Path, name: &str) -> Out {
    over_tls.run(&[
        "login",
        "-method=cert",
        "-no-store",
        "-format=json",
        &format!("-ca-cert={}", path(tls, "ca.pem")),
        &format!("-client-cert={}", path(dir, &format!("{name}.pem"))),
        &format!("-client-key={}", path(dir, &format!("{name}.key"))),
    ])
}

/// `pki/issue/client` for `cn`: writes `dir/NAME.pem` and `NAME.key` and
/// returns the serial number (`aa:bb:..`).
fn pki_client_cert(root: &Bao, dir: &Path, name: &str, cn: &str) -> String {
    let out = root.json(&[
        "write",
        "-format=json",
        "pki/issue/client",
        &format!("common_name={cn}"),
        "ttl=1h",
    ]);
    let d = &out["data"];
    write_pem(
        dir,
        &format!("{name}.pem"),
        d["certificate"].as_str().unwrap(),
    );
    write_pem(
        dir,
        &format!("{name}.key"),
        d["private_key"].as_str().unwrap(),
    );
    d["serial_number"].as_str().unwrap().to_string()
}

#[test]
fn ocsp_with_arcas_own_pki_refuses_revoked_client_certificates() {
    let tls = tempfile::tempdir().unwrap();
    let (server, tls_port) = tls_server(tls.path());
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    learning_path_setup(&server, &init.root_token, "cert", READONLY);
    let over_tls = Bao {
        addr: format!("https://127.0.0.1:{tls_port}"),
        ..server.bao().without_token()
    };

    // Arca's PKI: an EC root, a client-certificate role. Its OCSP answers
    // carry no nextUpdate (ocsp_expiry=0), so the method caches none and
    // every login asks (an answer with nextUpdate is cached until then, as
    // in Vault).
    root.run(&["secrets", "enable", "pki"]).ok();
    root.run(&["secrets", "tune", "-max-lease-ttl=87600h", "pki"])
        .ok();
    let ca = root.json(&[
        "write",
        "-format=json",
        "pki/root/generate/internal",
        "common_name=Arca Client Root",
        "key_type=ec",
        "ttl=87600h",
    ]);
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    write_pem(dir, "ca.pem", ca["data"]["certificate"].as_str().unwrap());
    root.run(&["write", "pki/config/crl", "ocsp_expiry=0"]).ok();
    root.run(&[
        "write",
        "pki/roles/client",
        "allow_any_name=true",
        "client_flag=true",
        "server_flag=false",
        "key_type=ec",
    ])
    .ok();
    let client_serial = pki_client_cert(&root, dir, "client", "web.example.com");
    pki_client_cert(&root, dir, "other", "api.example.com");

    let ocsp_url = format!("{}/v1/pki/ocsp", server.addr);
    root.run(&[
        "write",
        "auth/cert/certs/web",
        &format!("certificate=@{}", path(dir, "ca.pem")),
        "token_policies=readonly",
        "ocsp_enabled=true",
        &format!("ocsp_servers_override={ocsp_url}"),
    ])
    .ok();
    let e = root.json(&["read", "-format=json", "auth/cert/certs/web"]);
    assert_eq!(e["data"]["ocsp_enabled"], true, "{e}");
    assert_eq!(e["data"]["ocsp_servers_override"], json!([ocsp_url]), "{e}");
    assert_eq!(e["data"]["ocsp_fail_open"], false, "{e}");

    // Good: the login works and the token reads.
    let out = cert_login(&over_tls, tls.path(), dir, "client").ok().json();
    assert_eq!(out["auth"]["metadata"]["cert_name"], "web", "{out}");
    let token = out["auth"]["client_token"].as_str().unwrap().to_string();
    let v = server
        .bao()
        .with_token(&token)
        .json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");

    // Revoked at the PKI: the next login is refused, the other certificate
    // still logs in.
    root.run(&[
        "write",
        "pki/revoke",
        &format!("serial_number={client_serial}"),
    ])
    .ok();
    let refused = cert_login(&over_tls, tls.path(), dir, "client")
        .api_error(400, "no chain matching all constraints");
    let text = refused.describe();
    assert!(text.contains("has been revoked"), "{text}");
    assert!(text.contains(&client_serial), "{text}");
    cert_login(&over_tls, tls.path(), dir, "other").ok();

    // A responder that is not there refuses every login...
    let dead = format!("http://127.0.0.1:{}/v1/pki/ocsp", free_port());
    root.run(&[
        "write",
        "auth/cert/certs/web",
        &format!("ocsp_servers_override={dead}"),
        "ocsp_max_retries=0",
    ])
    .ok();
    cert_login(&over_tls, tls.path(), dir, "other").api_error(400, "no OCSP responder answered");
    // ...unless the entry fails open.
    root.run(&["write", "auth/cert/certs/web", "ocsp_fail_open=true"])
        .ok();
    cert_login(&over_tls, tls.path(), dir, "other").ok();
    // Failing open never lets a revoked certificate in once a responder
    // says so.
    root.run(&[
        "write",
        "auth/cert/certs/web",
        &format!("ocsp_servers_override={dead},{ocsp_url}"),
    ])
    .ok();
    cert_login(&over_tls, tls.path(), dir, "client").api_error(400, "has been revoked");
    cert_login(&over_tls, tls.path(), dir, "other").ok();

    // Without an override, the responder named in the certificate's AIA
    // extension (pki/config/urls) is asked.
    root.run(&[
        "write",
        "pki/config/urls",
        &format!("ocsp_servers={ocsp_url}"),
    ])
    .ok();
    let aia_serial = pki_client_cert(&root, dir, "aia", "aia.example.com");
    root.run(&[
        "write",
        "auth/cert/certs/web",
        "ocsp_servers_override=",
        "ocsp_fail_open=false",
    ])
    .ok();
    cert_login(&over_tls, tls.path(), dir, "aia").ok();
    // "other" names no responder: nobody to ask, refused.
    cert_login(&over_tls, tls.path(), dir, "other").api_error(400, "no OCSP responder");
    root.run(&[
        "write",
        "pki/revoke",
        &format!("serial_number={aia_serial}"),
    ])
    .ok();
    cert_login(&over_tls, tls.path(), dir, "aia").api_error(400, "has been revoked");
}
