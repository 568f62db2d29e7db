//! The operator's `sys/` tools, through the real `bao` CLI and hvac:
//! `sys/tools/random`, `sys/tools/hash` (checked against Python's
//! hashlib), `sys/host-info`, `sys/config/state/sanitized` (a TLS server
//! with every configuration block; no secret in the answer),
//! `sys/in-flight-req`, the sudo requirement of the last three, and
//! `sys/ha-status` / `sys/leader` on a single RocksDB node and on raft.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Bao, Server};
use serde_json::Value;

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `python3 -c` printing hashlib's hex digest of `data` for `algorithm`.
fn hashlib(algorithm: &str, data: &[u8]) -> String {
    let name = algorithm.replace("sha2-", "sha").replace("sha3-", "sha3_");
    let out = Command::new(common::python_bin())
        .args([
            "-c",
            "import hashlib, sys, base64; print(hashlib.new(sys.argv[1], base64.b64decode(sys.argv[2])).hexdigest())",
            &name,
            &b64(data),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn random_bytes_through_the_bao_cli() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);

    let v = bao.json(&["write", "-format=json", "sys/tools/random/16", "format=hex"]);
    let hex_out = v["data"]["random_bytes"].as_str().unwrap();
    assert_eq!(hex_out.len(), 32, "{v}");
    assert!(hex_out.bytes().all(|b| b.is_ascii_hexdigit()));

    // Default: 32 bytes, base64; two answers differ.
    let a = bao.json(&["write", "-format=json", "-force", "sys/tools/random"]);
    let b = bao.json(&["write", "-format=json", "-force", "sys/tools/random"]);
    let a = a["data"]["random_bytes"].as_str().unwrap().to_string();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&a)
        .unwrap();
    assert_eq!(decoded.len(), 32);
    assert_ne!(a, b["data"]["random_bytes"].as_str().unwrap());

    // The source in the path, the count in the body.
    for source in ["platform", "all"] {
        let v = bao.json(&[
            "write",
            "-format=json",
            &format!("sys/tools/random/{source}"),
            "bytes=8",
            "format=hex",
        ]);
        assert_eq!(v["data"]["random_bytes"].as_str().unwrap().len(), 16);
        let v = bao.json(&[
            "write",
            "-format=json",
            &format!("sys/tools/random/{source}/4"),
            "format=base64",
        ]);
        assert_eq!(v["data"]["random_bytes"].as_str().unwrap().len(), 8);
    }
    // The upper bound (Vault's 128 KiB) and its clear 400.
    let v = bao.json(&["write", "-format=json", "-force", "sys/tools/random/131072"]);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["data"]["random_bytes"].as_str().unwrap())
            .unwrap()
            .len(),
        131072
    );
    bao.run(&["write", "-force", "sys/tools/random/131073"])
        .api_error(400, "bytes must be between 1 and 131072");
    bao.run(&["write", "sys/tools/random", "bytes=0"])
        .api_error(400, "bytes must be between 1 and 131072");
    bao.run(&["write", "sys/tools/random/16", "format=raw"])
        .api_error(400, "unsupported encoding format");
    // No seal entropy: the platform's, with a warning (as OpenBao).
    let v = bao.json(&[
        "write",
        "-format=json",
        "-force",
        "sys/tools/random/seal/16",
    ]);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["data"]["random_bytes"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("platform source"),
        "{v}"
    );
    bao.run(&["write", "-force", "sys/tools/random/seed"])
        .api_error(400, "neither a byte count nor a source");
    // Without a token: refused.
    server
        .bao()
        .without_token()
        .run(&["write", "-force", "sys/tools/random/16"])
        .api_error(403, "permission denied");
}

#[test]
fn hashes_match_python_hashlib() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    let data = b"the quick brown fox \x00\xff jumps";
    let input = format!("input={}", b64(data));
    for alg in [
        "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384",
        "sha3-512",
    ] {
        let want = hashlib(alg, data);
        let v = bao.json(&[
            "write",
            "-format=json",
            &format!("sys/tools/hash/{alg}"),
            &input,
        ]);
        assert_eq!(v["data"]["sum"], want, "{alg} in the path");
        let v = bao.json(&[
            "write",
            "-format=json",
            "sys/tools/hash",
            &input,
            &format!("algorithm={alg}"),
            "format=base64",
        ]);
        let sum = base64::engine::general_purpose::STANDARD
            .decode(v["data"]["sum"].as_str().unwrap())
            .unwrap();
        assert_eq!(hex::encode(sum), want, "{alg} in the body, base64");
    }
    // Default algorithm sha2-256, default format hex.
    let v = bao.json(&["write", "-format=json", "sys/tools/hash", &input]);
    assert_eq!(v["data"]["sum"], hashlib("sha2-256", data));

    bao.run(&["write", "sys/tools/hash/md5", &input])
        .api_error(400, "unsupported hash algorithm \"md5\"");
    bao.run(&["write", "sys/tools/hash", &input, "algorithm=sha1"])
        .api_error(400, "unsupported hash algorithm");
    bao.run(&["write", "sys/tools/hash", "input=%%%not-base64"])
        .api_error(400, "not valid base64");
    bao.run(&["write", "-force", "sys/tools/hash"])
        .api_error(400, "missing input");
    // An empty input is the empty string's hash.
    let v = bao.json(&["write", "-format=json", "sys/tools/hash", "input="]);
    assert_eq!(v["data"]["sum"], hashlib("sha2-256", b""));
    bao.run(&["write", "sys/tools/hash", &input, "format=binary"])
        .api_error(400, "unsupported encoding format");
}

/// A token whose policy grants `caps` on the three sudo paths.
fn token_with(bao: &Bao, name: &str, caps: &str) -> String {
    let dir = bao.home.clone();
    let file = dir.join(format!("{name}.hcl"));
    std::fs::write(
        &file,
        format!(
            r#"
path "sys/host-info" {{ capabilities = [{caps}] }}
path "sys/config/state/sanitized" {{ capabilities = [{caps}] }}
path "sys/in-flight-req" {{ capabilities = [{caps}] }}
"#
        ),
    )
    .unwrap();
    bao.run(&["policy", "write", name, file.to_str().unwrap()])
        .ok();
    let v = bao.json(&[
        "token",
        "create",
        "-format=json",
        &format!("-policy={name}"),
    ]);
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn host_info_reports_this_host_and_needs_sudo() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    let v = bao.json(&["read", "-format=json", "sys/host-info"]);
    let d = &v["data"];
    for k in ["cpu", "cpu_times", "disk", "host", "memory", "timestamp"] {
        assert!(!d[k].is_null(), "{k} missing: {v}");
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(d["host"]["hostname"], hostname.trim());
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(d["cpu"].as_array().unwrap().len(), cpus);
    // One per processor, as gopsutil.
    assert_eq!(d["cpu_times"][0]["cpu"], "cpu0");
    assert_eq!(d["cpu_times"].as_array().unwrap().len(), cpus);
    assert!(d["cpu_times"][0]["user"].as_f64().is_some());
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap();
    assert_eq!(d["memory"]["total"].as_u64().unwrap(), mem_total * 1024);
    assert!(d["disk"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["path"] == "/" && x["total"].as_u64().unwrap() > 0));
    chrono::DateTime::parse_from_rfc3339(d["timestamp"].as_str().unwrap()).unwrap();

    // Read without sudo: 403 on all three; with sudo: allowed.
    let plain = token_with(&bao, "plain", r#""read""#);
    let nosudo = server.bao().with_token(&plain);
    for p in [
        "sys/host-info",
        "sys/config/state/sanitized",
        "sys/in-flight-req",
    ] {
        nosudo.run(&["read", p]).api_error(403, "permission denied");
    }
    let sudo = token_with(&bao, "sudo", r#""read", "sudo""#);
    let with_sudo = server.bao().with_token(&sudo);
    with_sudo.json(&["read", "-format=json", "sys/host-info"]);
    with_sudo.json(&["read", "-format=json", "sys/config/state/sanitized"]);
    let (status, body) = server.http("GET", "/v1/sys/in-flight-req", Some(&sudo), None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn in_flight_requests_list_the_caller_and_forget_finished_ones() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    let (status, body) = server.http("GET", "/v1/sys/in-flight-req", Some(&root), None);
    assert_eq!(status, 200, "{body}");
    // Vault's shape: the map itself, no envelope; the request sees itself.
    let m = body.as_object().unwrap();
    assert_eq!(m.len(), 1, "only this request is in flight: {body}");
    let (id, e) = m.iter().next().unwrap();
    uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(e["request_path"], "/v1/sys/in-flight-req");
    assert_eq!(e["request_method"], "GET");
    assert!(e["client_remote_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    chrono::DateTime::parse_from_rfc3339(e["start_time"].as_str().unwrap()).unwrap();
    assert_eq!(e["client_id"], "", "a root token has no entity");

    // A second request: the first is gone (removed when it was answered).
    let (_, again) = server.http("GET", "/v1/sys/in-flight-req", Some(&root), None);
    let m2 = again.as_object().unwrap();
    assert_eq!(m2.len(), 1, "{again}");
    assert!(!m2.contains_key(id));

    // client_id is the entity of the caller's token (userpass login).
    bao.run(&["auth", "enable", "userpass"]).ok();
    let pol = bao.home.join("inflight.hcl");
    std::fs::write(
        &pol,
        "path \"sys/in-flight-req\" { capabilities = [\"read\", \"sudo\"] }\n",
    )
    .unwrap();
    bao.run(&["policy", "write", "inflight", pol.to_str().unwrap()])
        .ok();
    bao.run(&[
        "write",
        "auth/userpass/users/ops",
        "password=correct-horse",
        "token_policies=inflight",
    ])
    .ok();
    let login = bao.json(&[
        "login",
        "-format=json",
        "-method=userpass",
        "-no-store",
        "username=ops",
        "password=correct-horse",
    ]);
    let token = login["auth"]["client_token"].as_str().unwrap();
    let entity = login["auth"]["entity_id"].as_str().unwrap();
    assert!(!entity.is_empty());
    let (status, body) = server.http("GET", "/v1/sys/in-flight-req", Some(token), None);
    assert_eq!(status, 200, "{body}");
    let e = body.as_object().unwrap().values().next().unwrap();
    assert_eq!(e["client_id"], entity);
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    common::self_signed_cert(dir, "ca", "/CN=Arca Test CA");
    common::ca_issued_cert(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The PEM body lines of a file (what would leak if its contents were
/// shown).
fn pem_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(String::from)
        .collect()
}

#[test]
fn sanitized_config_of_a_tls_server_with_every_block_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d);
    let port = common::free_port();
    let addr = format!("https://127.0.0.1:{port}");
    let cfg = format!(
        r#"
storage "rocksdb" {{
  path = "{data}"
}}
listener "tcp" {{
  address                  = "127.0.0.1:{port}"
  tls_cert_file            = "{cert}"
  tls_key_file             = "{key}"
  tls_client_ca_file       = "{ca}"
  tls_min_version          = "tls12"
  tls_max_version          = "tls13"
  tls_cipher_suites        = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
  http_read_header_timeout = "10s"
  http_read_timeout        = "30s"
  http_idle_timeout        = "5m"
  max_request_duration     = "90s"
  max_connections          = 64
}}
api_addr          = "{addr}"
cluster_addr      = "https://127.0.0.1:{cport}"
cluster_name      = "sanitized-test"
log_level         = "debug"
log_format        = "json"
pid_file          = "{pid}"
default_lease_ttl = "1h"
max_lease_ttl     = "24h"
ui                = false
disable_mlock     = true
read_consistency  = "linearizable"
periodic_interval = "2s"
user_lockout "all" {{
  lockout_threshold     = 7
  lockout_duration      = "10m"
  lockout_counter_reset = "5m"
}}
user_lockout "userpass" {{
  disable_lockout = true
}}
"#,
        data = d.join("data").display(),
        cert = d.join("server.pem").display(),
        key = d.join("server.key").display(),
        ca = d.join("ca.pem").display(),
        pid = d.join("arca.pid").display(),
        cport = port + 1,
    );
    let cfg_path = d.join("arca.hcl");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let log = std::fs::File::create(d.join("server.log")).unwrap();
    let _server = Kill(
        Command::new(common::arca_bin())
            .args(["server", "-config", cfg_path.to_str().unwrap()])
            .env("ARCA_STRICT_FIELDS", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server did not start: {}",
            std::fs::read_to_string(d.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let ca_flag = format!("-ca-cert={}", d.join("ca.pem").display());
    let bao = Bao {
        addr: addr.clone(),
        home,
        token: None,
        program: common::bao_bin().into(),
    };
    let init = bao.json(&[
        "operator",
        "init",
        &ca_flag,
        "-key-shares=1",
        "-key-threshold=1",
        "-format=json",
    ]);
    let key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    bao.run(&["operator", "unseal", &ca_flag, &key]).ok();
    let bao = bao.with_token(&root);
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = bao.run(&[
            "read",
            &ca_flag,
            "-format=json",
            "sys/config/state/sanitized",
        ]);
        if out.code == 0 || Instant::now() > deadline {
            break out.ok();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = out.stdout.clone();
    let v = out.json();
    let c = &v["data"];
    assert_eq!(c["api_addr"], addr);
    assert_eq!(c["cluster_addr"], format!("https://127.0.0.1:{}", port + 1));
    assert_eq!(c["cluster_name"], "sanitized-test");
    assert_eq!(c["default_lease_ttl"], 3600);
    assert_eq!(c["max_lease_ttl"], 86400);
    assert_eq!(c["log_level"], "debug");
    assert_eq!(c["log_format"], "json");
    assert_eq!(c["pid_file"], d.join("arca.pid").display().to_string());
    assert_eq!(c["enable_ui"], false);
    assert_eq!(c["disable_mlock"], true);
    assert_eq!(c["read_consistency"], "linearizable");
    assert_eq!(c["periodic_interval"], 2);
    assert_eq!(
        c["seals"],
        serde_json::json!([{"type": "shamir", "disabled": false}])
    );
    assert_eq!(c["storage"]["type"], "rocksdb");
    assert_eq!(c["storage"]["redirect_addr"], addr);
    assert_eq!(c["storage"]["path"], d.join("data").display().to_string());
    let l = &c["listeners"][0];
    assert_eq!(l["type"], "tcp");
    let lc = &l["config"];
    assert_eq!(lc["address"], format!("127.0.0.1:{port}"));
    assert_eq!(lc["tls_disable"], false);
    assert_eq!(
        lc["tls_cert_file"],
        d.join("server.pem").display().to_string()
    );
    assert_eq!(
        lc["tls_key_file"],
        d.join("server.key").display().to_string()
    );
    assert_eq!(
        lc["tls_client_ca_file"],
        d.join("ca.pem").display().to_string()
    );
    assert_eq!(lc["tls_min_version"], "tls12");
    assert_eq!(lc["tls_max_version"], "tls13");
    assert!(lc["tls_cipher_suites"]
        .as_str()
        .unwrap()
        .contains("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"));
    assert_eq!(lc["max_connections"], 64);
    assert_eq!(lc["max_request_duration"], 90.0);
    assert_eq!(c["user_lockout"]["all"]["lockout_threshold"], 7);
    assert_eq!(c["user_lockout"]["all"]["lockout_duration"], 600);
    assert_eq!(c["user_lockout"]["userpass"]["disable_lockout"], true);

    // No secret: neither key's contents, nor the certificates', nor the
    // unseal key or the root token.
    assert!(!text.contains("PRIVATE KEY"));
    for f in ["server.key", "ca.key", "server.pem", "ca.pem"] {
        for line in pem_lines(&d.join(f)) {
            assert!(!text.contains(&line), "{f} content in the answer");
        }
    }
    assert!(!text.contains(&key));
    assert!(!text.contains(&root));

    // `bao debug` collects the same endpoints (config, host-info).
    let out_dir = d.join("debug");
    bao.run(&[
        "debug",
        &ca_flag,
        "-target=config",
        "-target=host",
        "-duration=5s",
        "-interval=5s",
        "-compress=false",
        &format!("-output={}", out_dir.display()),
    ])
    .ok();
    let config_json = std::fs::read_to_string(out_dir.join("config.json")).unwrap();
    serde_json::from_str::<Value>(&config_json).unwrap();
    assert!(config_json.contains(&addr), "{config_json}");
    assert!(config_json.contains("\"listeners\""), "{config_json}");
    let host_json = std::fs::read_to_string(out_dir.join("host_info.json")).unwrap();
    serde_json::from_str::<Value>(&host_json).unwrap();
    assert!(host_json.contains("\"memory\""), "{host_json}");
    assert!(host_json.contains("\"cpu_times\""), "{host_json}");
}

#[test]
fn ha_status_and_leader_on_a_single_rocksdb_node() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    let v = bao.json(&["read", "-format=json", "sys/ha-status"]);
    let nodes = v["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{v}");
    assert_eq!(nodes[0]["active_node"], true);
    assert_eq!(nodes[0]["api_address"], server.addr);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(nodes[0]["hostname"], hostname.trim());
    // `bao operator members` reads sys/ha-status.
    let out = bao.run(&["operator", "members"]).ok();
    assert!(out.stdout.contains(&server.addr), "{}", out.describe());
    assert!(out.stdout.contains("true"), "{}", out.describe());

    let (status, leader) = server.http("GET", "/v1/sys/leader", None, None);
    assert_eq!(status, 200, "{leader}");
    assert_eq!(leader["ha_enabled"], false);
    bao.run(&["status"]).ok();

    // Client counters are not kept (no bao 2.7 command reads them): 404.
    for p in [
        "/v1/sys/internal/counters/activity",
        "/v1/sys/internal/counters/config",
    ] {
        let (status, body) = server.http("GET", p, Some(&root), None);
        assert_eq!(status, 404, "{p}: {body}");
    }
}

#[test]
fn ha_status_and_leader_on_raft() {
    let server = Server::start_raft("solo");
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let out = bao.run(&["read", "-format=json", "sys/ha-status"]);
        if out.code == 0 || Instant::now() > deadline {
            break out.ok().json();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let nodes = v["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{v}");
    assert_eq!(nodes[0]["active_node"], true);
    assert_eq!(nodes[0]["api_address"], server.addr);
    let (status, leader) = server.http("GET", "/v1/sys/leader", None, None);
    assert_eq!(status, 200, "{leader}");
    assert_eq!(leader["ha_enabled"], true);
    assert_eq!(leader["is_self"], true);
    assert_eq!(leader["leader_address"], server.addr);
    let out = bao.run(&["operator", "members"]).ok();
    assert!(out.stdout.contains(&server.addr), "{}", out.describe());
    // The sanitized configuration names raft storage and its node id.
    let c = bao.json(&["read", "-format=json", "sys/config/state/sanitized"]);
    assert_eq!(c["data"]["storage"]["type"], "raft");
    assert_eq!(c["data"]["storage"]["node_id"], "solo");
    assert_eq!(c["data"]["storage"]["disable_clustering"], false);
}

#[test]
fn hvac_reads_the_tools() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let script =
        std::fs::read_to_string(common::repo_root().join("tests/compat/hvac_sys_tools.py"))
            .unwrap();
    common::run_python_ok(&server, &script, &[&server.addr, &root], "SYS TOOLS OK");
}
