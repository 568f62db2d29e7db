//! Cluster-port TLS: three raft nodes whose cluster traffic (Raft and
//! forwarded requests) runs over mutual TLS with certificates from config,
//! made by `openssl`. The cluster forms, a write through a standby is
//! forwarded, and the cluster port refuses a client without a certificate.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::json;

/// A CA and one node certificate (server and client use, IP 127.0.0.1).
fn make_certs(dir: &Path) {
    common::self_signed_cert(dir, "ca", "/CN=Arca Cluster CA");
    common::ca_issued_cert(
        dir,
        "node",
        "/CN=arca-node",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
}

#[test]
fn cluster_port_runs_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let d = certs.path().display();
    let extra = format!(
        "  cluster_cert_file = \"{d}/node.pem\"\n  cluster_key_file = \"{d}/node.key\"\n  cluster_ca_file = \"{d}/ca.pem\""
    );
    let nodes: Vec<Server> = ["t1", "t2", "t3"]
        .iter()
        .map(|n| Server::start_raft_with(n, &extra))
        .collect();
    let init = nodes[0].init_and_unseal();
    for n in &nodes[1..] {
        let (st, body) = n.http(
            "POST",
            "/v1/sys/storage/raft/join",
            None,
            Some(&json!({ "leader_api_addr": nodes[0].addr })),
        );
        assert_eq!(st, 200, "{body}");
        let mut last = json!(null);
        for k in &init.keys_b64[..3] {
            let (st, body) = n.http("PUT", "/v1/sys/unseal", None, Some(&json!({ "key": k })));
            assert_eq!(st, 200, "{body}");
            last = body;
        }
        assert_eq!(last["sealed"], false, "{last}");
    }
    let tok = Some(init.root_token.as_str());
    let (st, cfg) = nodes[2].http("GET", "/v1/sys/storage/raft/configuration", tok, None);
    assert_eq!(st, 200, "{cfg}");
    assert_eq!(
        cfg["data"]["config"]["servers"].as_array().unwrap().len(),
        3,
        "{cfg}"
    );
    let (_, leader) = nodes[1].http("GET", "/v1/sys/leader", None, None);
    assert!(
        leader["leader_cluster_address"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "the cluster port speaks TLS: {leader}"
    );

    // A write through a standby is forwarded over the TLS cluster port.
    let (st, body) = nodes[1].http(
        "POST",
        "/v1/sys/mounts/kv",
        tok,
        Some(&json!({ "type": "kv", "options": { "version": "2" } })),
    );
    assert!(st == 204 || st == 200, "{st} {body}");
    let (st, body) = nodes[2].http(
        "POST",
        "/v1/kv/data/tls",
        tok,
        Some(&json!({ "data": { "over": "mtls" } })),
    );
    assert_eq!(st, 200, "{body}");
    for n in &nodes {
        let (st, body) = n.http("GET", "/v1/kv/data/tls", tok, None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["data"]["data"]["over"], "mtls");
    }

    // Without a client certificate the cluster port refuses the connection;
    // with one it is accepted (curl reads past the TLS 1.3 handshake, so a
    // late "certificate required" alert is seen).
    let cport = nodes[0].port + 1;
    let curl = |with_cert: bool| {
        let mut c = Command::new("curl");
        c.args([
            "-sS",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "--http2-prior-knowledge",
        ])
        .arg("--cacert")
        .arg(format!("{d}/ca.pem"));
        if with_cert {
            c.arg("--cert")
                .arg(format!("{d}/node.pem"))
                .arg("--key")
                .arg(format!("{d}/node.key"));
        }
        c.arg(format!("https://127.0.0.1:{cport}/"));
        c.output().expect("curl must be installed")
    };
    let without = curl(false);
    assert!(
        !without.status.success(),
        "the cluster port accepted a client without a certificate: {}",
        String::from_utf8_lossy(&without.stderr)
    );
    let with = curl(true);
    assert!(
        with.status.success(),
        "the cluster port refused a client with a valid certificate: {}",
        String::from_utf8_lossy(&with.stderr)
    );
}

/// With certificate files, a node holds its cluster identity while sealed
/// and keeps voting (the files are the operator's choice; the default
/// identity lives in the barrier and a sealed node has none). It must still
/// never lead while sealed: it could serve nothing.
#[test]
fn a_restarted_sealed_node_with_certificate_files_does_not_take_leadership() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let d = certs.path().display();
    let extra = format!(
        "  cluster_cert_file = \"{d}/node.pem\"\n  cluster_key_file = \"{d}/node.key\"\n  cluster_ca_file = \"{d}/ca.pem\""
    );
    let mut n1 = Server::start_raft_with("s1", &extra);
    let init = n1.init_and_unseal();
    let n2 = Server::start_raft_with("s2", &extra);
    n2.join_and_unseal(&n1, &init.keys_b64[..3]);
    let mut n3 = Server::start_raft_with("s3", &extra);
    n3.join_and_unseal(&n1, &init.keys_b64[..3]);
    let root = init.root_token;
    let r = Some(root.as_str());
    // n3 restarts and stays sealed; then the leader dies. Of the two that
    // remain, only n2 can serve, so only n2 may lead (n3 still votes).
    n3.restart();
    assert_eq!(
        n3.http("GET", "/v1/sys/health", None, None).0,
        503,
        "n3 is sealed"
    );
    n1.stop();
    common::wait_until(
        "n2 becomes the active node",
        std::time::Duration::from_secs(60),
        || n2.http("GET", "/v1/sys/health", None, None).0 == 200,
    );
    n2.http_ok("POST", "/v1/sys/mounts/kv", r, Some(&json!({"type": "kv"})));
    n2.http_ok("PUT", "/v1/kv/x", r, Some(&json!({"v": "1"})));
    // Unsealed, n3 follows n2.
    n3.unseal_as_standby(&init.keys_b64[..3]);
    let v = n3.http_ok("GET", "/v1/kv/x", r, None);
    assert_eq!(v["data"]["v"], "1", "{v}");
    assert_eq!(
        n2.http("GET", "/v1/sys/health", None, None).0,
        200,
        "n2 still leads"
    );
}
