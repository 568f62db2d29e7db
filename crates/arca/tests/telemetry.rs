//! Metrics and rate limit quotas, as operators use them.
//!
//! - `sys/metrics` in Vault's JSON shape and as Prometheus text, guarded by
//!   a token unless the listener opens it (`telemetry {
//!   unauthenticated_metrics_access = true }`); a real Prometheus (Debian's
//!   `prometheus` package) scrapes a three-node cluster and answers
//!   queries across it (one leader, requests counted on every node).
//! - `sys/quotas/rate-limit/:name` and `sys/quotas/config` through the bao
//!   CLI: a client over its quota gets 429 while another client address
//!   keeps going, the most specific quota counts, exempt paths are never
//!   counted, response headers when enabled, refused input.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{free_port, wait_until, Bao, Server};
use serde_json::{json, Value};

/// A GET from a chosen local address, with the answer's headers.
fn get_from(
    local: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .local_address(local.parse::<IpAddr>().unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut req = client.get(format!("{addr}{path}"));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    })
}

fn metrics_text(addr: &str, token: Option<&str>) -> (u16, String) {
    let (status, _, body) = get_from(
        "127.0.0.1",
        addr,
        "/v1/sys/metrics?format=prometheus",
        token,
    );
    (status, body)
}

/// The value of one Prometheus sample line (`name{labels} value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_json_prometheus_and_access() {
    let server = Server::start_rocksdb_with(
        "telemetry {\n  unauthenticated_metrics_access = true\n}",
        "telemetry {\n  prometheus_retention_time = \"1h\"\n  disable_hostname = true\n}",
    );
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    server.wait_kv2_ready("secret", &root);
    bao.run(&["kv", "put", "secret/app", "password=hunter2-metrics"])
        .ok();
    bao.run(&["kv", "get", "secret/app"]).ok();

    // Vault's JSON document (raw, not in the envelope).
    let (status, v) = server.http("GET", "/v1/sys/metrics", Some(&root), None);
    assert_eq!(status, 200, "{v}");
    for k in ["Timestamp", "Gauges", "Counters", "Samples", "Points"] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    let samples = v["Samples"].as_array().unwrap();
    let kv_update = samples
        .iter()
        .find(|s| {
            s["Name"] == "vault.core.handle_request"
                && s["Labels"]["mount"] == "secret/"
                && s["Labels"]["operation"] == "update"
        })
        .unwrap_or_else(|| panic!("no request timing for the KV write: {v}"));
    assert!(kv_update["Count"].as_u64().unwrap() >= 1, "{kv_update}");
    assert!(
        samples.iter().any(|s| s["Name"] == "vault.barrier.put"),
        "{v}"
    );
    let gauges = v["Gauges"].as_array().unwrap();
    assert!(
        gauges
            .iter()
            .any(|g| g["Name"] == "vault.core.unsealed" && g["Value"] == 1.0),
        "{v}"
    );

    // Prometheus text, without a token on this listener.
    let (status, text) = metrics_text(&server.addr, None);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# TYPE vault_core_handle_request histogram"),
        "{text}"
    );
    let reads = sample(
        &text,
        "vault_core_handle_request_count{mount=\"secret/\",operation=\"read\"}",
    )
    .unwrap_or_else(|| panic!("no KV read count: {text}"));
    assert!(reads >= 1.0, "{text}");
    assert_eq!(sample(&text, "vault_core_active"), Some(1.0), "{text}");
    assert!(
        sample(&text, "vault_runtime_rss_bytes").unwrap() > 1e6,
        "{text}"
    );
    // The usage gauges come from the active node's first periodic round.
    wait_until("the token count gauge", Duration::from_secs(60), || {
        sample(&metrics_text(&server.addr, None).1, "vault_token_count").is_some_and(|n| n >= 1.0)
    });
    // No secret, token or request path ever lands in the metrics.
    let all = format!("{text}{v}");
    assert!(
        !all.contains("hunter2-metrics") && !all.contains(&root),
        "{all}"
    );
    assert!(!all.contains("secret/data/app"), "{all}");

    // The CLI and its errors.
    let out = bao.run(&["read", "-format=json", "sys/metrics", "format=bogus"]);
    out.api_error(400, "unknown metrics format");
    // Other paths still need a token on this listener, and the public
    // reads (metrics here, the OpenAPI document) take no tokenless write.
    let (status, _) = server.http("GET", "/v1/sys/mounts", None, None);
    assert_eq!(status, 403);
    for (method, path) in [
        ("POST", "/v1/sys/metrics"),
        ("DELETE", "/v1/sys/metrics"),
        ("POST", "/v1/sys/internal/specs/openapi"),
        ("DELETE", "/v1/sys/internal/specs/openapi"),
        ("POST", "/v1/sys/quotas/rate-limit/open"),
        ("POST", "/v1/sys/quotas/config"),
        ("POST", "/v1/sys/tools/random"),
    ] {
        let (status, v) = server.http(method, path, None, Some(&json!({"rate": 1})));
        assert_eq!(status, 403, "{method} {path} without a token: {v}");
    }
    bao.run(&["list", "sys/quotas/rate-limit"]).code(2);
}

#[test]
fn metrics_need_a_token_by_default_and_a_policy() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let (status, _) = metrics_text(&server.addr, None);
    assert_eq!(status, 403, "sys/metrics without a token");
    let bao = server.bao().with_token(&root);
    let plain = bao.json(&["token", "create", "-format=json", "-policy=default"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(metrics_text(&server.addr, Some(&plain)).0, 403);
    let dir = tempfile::tempdir().unwrap();
    let policy = common::write_file(
        dir.path(),
        "metrics.hcl",
        "path \"sys/metrics\" { capabilities = [\"read\"] }\n",
    );
    bao.run(&["policy", "write", "metrics", &policy]).ok();
    let scraper = bao.json(&["token", "create", "-format=json", "-policy=metrics"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, text) = metrics_text(&server.addr, Some(&scraper));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("vault_core_handle_request_count"), "{text}");
}

#[test]
fn rate_limit_quotas_through_the_cli() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=secret", "-version=1", "kv"])
        .ok();
    bao.run(&["write", "secret/app", "value=1"]).ok();

    // Refused input: nothing stored.
    bao.run(&["write", "sys/quotas/rate-limit/bad", "rate=0"])
        .api_error(400, "rate must be a positive number");
    bao.run(&[
        "write",
        "sys/quotas/rate-limit/bad",
        "rate=1",
        "path=nosuch/",
    ])
    .api_error(400, "invalid mount path");
    bao.run(&["write", "sys/quotas/rate-limit/bad", "rate=1", "role=web"])
        .api_error(400, "role-based rate limit quotas are not available");
    bao.run(&["list", "sys/quotas/rate-limit"]).code(2);

    // A quota on the mount: three requests an hour per client address.
    bao.run(&[
        "write",
        "sys/quotas/rate-limit/kv-quota",
        "path=secret",
        "rate=3",
        "interval=1h",
    ])
    .ok();
    let q = bao.json(&["read", "-format=json", "sys/quotas/rate-limit/kv-quota"])["data"].clone();
    assert_eq!(q["path"], "secret/", "{q}");
    assert_eq!(q["type"], "rate-limit", "{q}");
    assert_eq!(q["rate"], 3, "a whole rate reads as OpenBao writes it: {q}");
    assert_eq!(q["inheritable"], false, "{q}");
    assert_eq!(q["interval"], 3600, "{q}");
    assert_eq!(q["block_interval"], 0, "{q}");
    let keys = bao.json(&["list", "-format=json", "sys/quotas/rate-limit"]);
    assert_eq!(keys, json!(["kv-quota"]));
    bao.run(&[
        "write",
        "sys/quotas/rate-limit/same-path",
        "path=secret/",
        "rate=9",
    ])
    .api_error(400, "similar properties exists under the name \"kv-quota\"");

    for i in 0..3 {
        let (status, _, body) = get_from("127.0.0.1", &server.addr, "/v1/secret/app", Some(&root));
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, headers, body) =
        get_from("127.0.0.1", &server.addr, "/v1/secret/app", Some(&root));
    assert_eq!(status, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["errors"][0],
        "request path \"secret/app\": rate limit quota exceeded"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    assert!(headers.get("x-ratelimit-limit").is_none());
    // The bao CLI sees the 429 too.
    bao.run(&["read", "secret/app"])
        .api_error(429, "rate limit quota exceeded");
    // A client cannot pass as a peer forwarding an already counted request.
    let (status, body) = common::try_http_with(
        &server.addr,
        "GET",
        "/v1/secret/app",
        Some(&root),
        None,
        &[("X-Arca-Forwarded", "1")],
    )
    .unwrap();
    assert_eq!(status, 429, "{body}");
    // Another client address keeps its own quota; other mounts and the
    // exempt sys/health are not counted.
    for _ in 0..3 {
        let (status, _, body) = get_from("127.0.0.2", &server.addr, "/v1/secret/app", Some(&root));
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = get_from("127.0.0.1", &server.addr, "/v1/sys/mounts", Some(&root));
    assert_eq!(status, 200);

    // A global quota with headers on: health stays exempt.
    bao.run(&["write", "sys/quotas/rate-limit/global", "rate=1000"])
        .ok();
    bao.run(&[
        "write",
        "sys/quotas/config",
        "enable_rate_limit_response_headers=true",
    ])
    .ok();
    let cfg = bao.json(&["read", "-format=json", "sys/quotas/config"])["data"].clone();
    assert_eq!(cfg["enable_rate_limit_response_headers"], true, "{cfg}");
    assert!(
        cfg["rate_limit_exempt_paths"]
            .as_array()
            .unwrap()
            .contains(&json!("sys/health")),
        "{cfg}"
    );
    let (_, headers, _) = get_from("127.0.0.3", &server.addr, "/v1/sys/mounts", Some(&root));
    assert_eq!(headers["x-ratelimit-limit"], "1000");
    assert_eq!(headers["x-ratelimit-remaining"], "999");
    let (_, headers, _) = get_from("127.0.0.3", &server.addr, "/v1/sys/health", None);
    assert!(
        headers.get("x-ratelimit-limit").is_none(),
        "sys/health is exempt"
    );

    // Refusals are counted in the metrics, by quota.
    let (_, text) = metrics_text(&server.addr, Some(&root));
    assert!(
        sample(&text, "vault_quota_rate_limit_violation{name=\"kv-quota\"}").unwrap() >= 2.0,
        "{text}"
    );

    // Deleting the quota lets the client through again.
    bao.run(&["delete", "sys/quotas/rate-limit/kv-quota"]).ok();
    let (status, _, body) = get_from("127.0.0.1", &server.addr, "/v1/secret/app", Some(&root));
    assert_eq!(status, 200, "{body}");
}

fn three_node_cluster() -> (Vec<Server>, String) {
    let nodes: Vec<Server> = ["p1", "p2", "p3"]
        .iter()
        .map(|n| Server::start_raft(n))
        .collect();
    let bao: Vec<Bao> = nodes.iter().map(|s| s.bao()).collect();
    let v = bao[0].json(&[
        "operator",
        "init",
        "-key-shares=1",
        "-key-threshold=1",
        "-format=json",
    ]);
    let key = v["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let root = v["root_token"].as_str().unwrap().to_string();
    bao[0].run(&["operator", "unseal", &key]).ok();
    nodes[0].wait_active();
    for b in &bao[1..] {
        b.run(&["operator", "raft", "join", &nodes[0].addr]).ok();
        b.run(&["operator", "unseal", &key]).ok();
    }
    (nodes, root)
}

#[test]
fn prometheus_scrapes_a_three_node_cluster() {
    let prometheus = std::process::Command::new("prometheus")
        .arg("--version")
        .output();
    assert!(
        prometheus.is_ok_and(|o| o.status.success()),
        "the prometheus binary is missing: run deploy/install-deps.sh test (Debian's prometheus package)"
    );
    let (nodes, root) = three_node_cluster();
    let bao = nodes[0].bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=secret", "-version=1", "kv"])
        .ok();
    for i in 0..5 {
        bao.run(&["write", &format!("secret/k{i}"), "v=1"]).ok();
    }
    // A standby serves reads too (its own metrics count them).
    nodes[1]
        .bao()
        .with_token(&root)
        .run(&["read", "secret/k1"])
        .ok();

    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = nodes
        .iter()
        .map(|n| format!("\"127.0.0.1:{}\"", n.port))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: arca\n    metrics_path: /v1/sys/metrics\n    params:\n      format: [prometheus]\n    authorization:\n      credentials: {root}\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let config_path = common::write_file(dir.path(), "prometheus.yml", &config);
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Kill(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={config_path}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let prom = format!("http://127.0.0.1:{port}");
    let query = |q: &str| -> Option<f64> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        let (status, v) = common::try_http(&prom, "GET", &path, None, None).ok()?;
        if status != 200 {
            return None;
        }
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let log_of = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let bound = Duration::from_secs(90);
    wait_until("prometheus to see three nodes up", bound, || {
        query("count(up{job=\"arca\"} == 1)") == Some(3.0)
    });
    wait_until("one leader across the cluster", bound, || {
        query("sum(vault_raft_is_leader)") == Some(1.0)
    });
    wait_until("every node unsealed", bound, || {
        query("sum(vault_core_unsealed)") == Some(3.0)
    });
    wait_until("the KV writes counted", bound, || {
        query("sum(vault_core_handle_request_count{mount=\"secret/\",operation=\"update\"})")
            .is_some_and(|n| n >= 5.0)
    });
    wait_until("raft apply timings", bound, || {
        query("sum(vault_raft_apply_count)").is_some_and(|n| n >= 5.0)
    });
    let standby_reads = query(&format!(
        "sum(vault_core_handle_request_count{{instance=\"127.0.0.1:{}\",mount=\"secret/\",operation=\"read\"}})",
        nodes[1].port
    ));
    assert!(
        standby_reads.is_some_and(|n| n >= 1.0),
        "standby read not counted: {standby_reads:?}; prometheus log:\n{}",
        log_of()
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn json_logs_name_the_request_and_the_client_and_hold_no_secret() {
    let server = Server::start_rocksdb_with(
        "",
        "log_format = \"json\"\nuser_lockout \"userpass\" {\n  lockout_threshold = 1\n}",
    );
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["auth", "enable", "userpass"]).ok();
    bao.run(&[
        "write",
        "auth/userpass/users/alice",
        "password=right-password-1",
    ])
    .ok();
    // A failed login locks alice out (threshold 1): core logs a warning
    // while it serves that request.
    let (status, _) = server.http(
        "POST",
        "/v1/auth/userpass/login/alice",
        None,
        Some(&json!({"password": "wrong-password-2"})),
    );
    assert_eq!(status, 400);
    let mut line = Value::Null;
    wait_until("the lockout warning", Duration::from_secs(20), || {
        line = server
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("locked out"))
            })
            .unwrap_or(Value::Null);
        !line.is_null()
    });
    let span = &line["span"];
    assert_eq!(span["name"], "request", "{line}");
    assert_eq!(span["remote_address"], "127.0.0.1", "{line}");
    let id = span["request_id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 36, "a request id (uuid): {line}");
    let log = server.log();
    for secret in ["right-password-1", "wrong-password-2", root.as_str()] {
        assert!(!log.contains(secret), "{secret} in the server log");
    }
}
