//! The cluster port (Raft and request forwarding) is mutual TLS by default,
//! with certificates the cluster issues itself from a CA kept in the
//! barrier (issue 10): a client speaking plaintext, one without a
//! certificate and one with a self-signed certificate are all refused,
//! while the nodes' own traffic (replication, a forwarded write) flows.
//! Every check uses real processes and curl/openssl as an attacker would.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{openssl, wait_until, Server};
use serde_json::json;

/// curl to the cluster port over HTTP/2: `https` with `-k` (the client does
/// not care who the server is; the server must care who the client is).
fn curl(url: &str, cert: Option<&Path>) -> Output {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-o",
        "/dev/null",
        "-m",
        "5",
        "--http2-prior-knowledge",
        "-k",
    ]);
    if let Some(dir) = cert {
        c.arg("--cert")
            .arg(dir.join("rogue.pem"))
            .arg("--key")
            .arg(dir.join("rogue.key"));
    }
    c.arg(url);
    c.output().expect("curl must be installed")
}

/// The certificate the cluster port at `port` presents, as
/// `openssl x509 -noout -subject -issuer -ext subjectAltName` prints it.
fn served_certificate(dir: &Path, port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_3",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----").unwrap_or_else(|| {
        panic!(
            "no certificate from the cluster port: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
    std::fs::write(dir.join(format!("served-{port}.pem")), &text[begin..end]).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-in",
            &format!("served-{port}.pem"),
            "-noout",
            "-subject",
            "-issuer",
            "-ext",
            "subjectAltName",
        ],
    )
}

#[test]
fn cluster_port_is_mutual_tls_with_certificates_from_the_cluster_ca() {
    let n1 = Server::start_raft("n1");
    let init = n1.init_and_unseal();
    let n2 = Server::start_raft("n2");
    n2.join_and_unseal(&n1, &init.keys_b64[..3]);
    let n3 = Server::start_raft("n3");
    n3.join_and_unseal(&n1, &init.keys_b64[..3]);
    let root = init.root_token.clone();
    let r = Some(root.as_str());

    // The nodes' own traffic works: a write through a standby is forwarded
    // to the leader and replicated back to every node.
    n2.http_ok("POST", "/v1/sys/mounts/kv", r, Some(&json!({"type": "kv"})));
    n3.http_ok("PUT", "/v1/kv/x", r, Some(&json!({"v": "1"})));
    for n in [&n1, &n2, &n3] {
        let v = n.http_ok("GET", "/v1/kv/x", r, None);
        assert_eq!(v["data"]["v"], "1", "{v}");
    }

    // Each node presents a certificate for its own name and cluster host,
    // issued by the cluster's CA (the joiners' at join, after proving they
    // hold the unseal key).
    let dir = tempfile::tempdir().unwrap();
    for (n, name) in [(&n1, "n1"), (&n2, "n2"), (&n3, "n3")] {
        let cert = served_certificate(dir.path(), n.port + 1);
        assert!(
            cert.contains(&format!("CN = {name}")) || cert.contains(&format!("CN={name}")),
            "{cert}"
        );
        assert!(cert.contains("Arca cluster CA"), "{cert}");
        assert!(cert.contains("IP Address:127.0.0.1"), "{cert}");
    }

    // Strangers are refused: plaintext, TLS without a certificate, TLS with
    // a certificate no cluster CA issued.
    common::self_signed_cert(dir.path(), "rogue", "/CN=n1");
    for n in [&n1, &n2] {
        let cport = n.port + 1;
        let plain = curl(
            &format!("http://127.0.0.1:{cport}/arca.cluster.Cluster/Vote"),
            None,
        );
        assert!(
            !plain.status.success(),
            "the cluster port answered plaintext HTTP/2"
        );
        let https = format!("https://127.0.0.1:{cport}/arca.cluster.Cluster/Vote");
        let anonymous = curl(&https, None);
        assert!(
            !anonymous.status.success(),
            "the cluster port served a client without a certificate"
        );
        let rogue = curl(&https, Some(dir.path()));
        assert!(
            !rogue.status.success(),
            "the cluster port served a client with a self-signed certificate"
        );
    }

    // A sealed node leaves the cluster's traffic; unsealed, it issues itself
    // a new certificate and catches up with what it missed.
    n3.http_ok("PUT", "/v1/sys/seal", r, None);
    n1.http_ok("PUT", "/v1/kv/y", r, Some(&json!({"v": "2"})));
    n3.unseal_as_standby(&init.keys_b64[..3]);
    wait_until(
        "n3 reads what was written while it was sealed",
        Duration::from_secs(60),
        || {
            let (st, v) = n3.http("GET", "/v1/kv/y", r, None);
            st == 200 && v["data"]["v"] == "2"
        },
    );
}
