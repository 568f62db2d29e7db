//! Audit devices through the real `bao` CLI (`bao audit enable|list|disable`)
//! on a real server: every request is recorded before it runs and its
//! response after, with secrets HMAC'd (the log is grepped for every
//! secret the test handled: root token, child token, KV value, userpass
//! password, wrapping token); `sys/audit-hash` gives the same HMAC;
//! fail closed (a file that cannot be written refuses the request and
//! nothing is done); SIGHUP reopens a rotated file; options that are
//! refused (prefix without `allow_audit_log_prefixing`, unknown formats and
//! options, an unreachable socket, local, a path in the storage
//! directory) and sudo. A socket device streams entries to a TCP listener
//! run by the test and fails closed when it goes away; devices declared in
//! the server configuration (kept across restarts with the same salt,
//! never disabled through the API); `prefix` once the configuration allows
//! it; `jsonx`; audited request headers (`sys/config/auditing/
//! request-headers`), HMAC'd or not; syslog refused without a local
//! syslog socket.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use std::path::Path;

use common::{Bao, Server};
use serde_json::Value;

fn entries(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn setup() -> (Server, String, Bao) {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    (server, root, bao)
}

#[test]
fn audit_log_records_everything_and_no_secret() {
    let (server, root, bao) = setup();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    bao.run(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", log.display()),
    ])
    .ok();
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert_eq!(list["file/"]["type"], "file", "{list}");
    assert_eq!(
        list["file/"]["options"]["file_path"],
        log.display().to_string()
    );
    assert!(!list.to_string().contains("salt"), "{list}");

    // Secrets of every kind go through the server.
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    bao.run(&["kv", "put", "secret/app", "password=s3cr3t-kv-value"])
        .ok();
    bao.run(&["kv", "get", "secret/app"]).ok();
    let child = bao.json(&["token", "create", "-format=json", "-policy=default"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    bao.run(&["auth", "enable", "userpass"]).ok();
    bao.run(&[
        "write",
        "auth/userpass/users/alice",
        "password=alice-pass-123",
        "token_policies=default",
    ])
    .ok();
    let login = server.bao().json(&[
        "login",
        "-format=json",
        "-method=userpass",
        "username=alice",
        "password=alice-pass-123",
    ]);
    let alice_token = login["auth"]["client_token"].as_str().unwrap().to_string();
    let wrap = bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=60s",
        "sys/wrapping/wrap",
        "x=wrapped-secret",
    ])["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    bao.run(&["unwrap", &wrap]).ok();
    // A denied request is recorded too.
    server
        .bao()
        .with_token(&child)
        .run(&["kv", "get", "secret/app"])
        .api_error(403, "permission denied");

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        root.as_str(),
        child.as_str(),
        alice_token.as_str(),
        wrap.as_str(),
        "s3cr3t-kv-value",
        "alice-pass-123",
        "wrapped-secret",
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret: {secret}"
        );
    }

    // The KV write: a request entry before its response, the value HMAC'd
    // as sys/audit-hash computes it.
    let hash = bao.json(&[
        "write",
        "-format=json",
        "sys/audit-hash/file",
        "input=s3cr3t-kv-value",
    ])["data"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hash.starts_with("hmac-sha256:"), "{hash}");
    let all = entries(&log);
    let put = all
        .iter()
        .position(|e| {
            e["type"] == "request"
                && e["request"]["path"] == "secret/data/app"
                && matches!(
                    e["request"]["operation"].as_str(),
                    Some("create" | "update")
                )
        })
        .expect("request entry of the KV write");
    let e = &all[put];
    assert_eq!(
        e["request"]["data"]["data"]["password"],
        hash.as_str(),
        "{e}"
    );
    assert_eq!(e["request"]["mount_type"], "kv");
    assert_eq!(e["auth"]["policies"][0], "root");
    assert!(e["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert!(e["request"]["remote_address"].as_str().is_some(), "{e}");
    let id = e["request"]["id"].clone();
    let resp = all
        .iter()
        .position(|x| x["type"] == "response" && x["request"]["id"] == id)
        .expect("response entry of the KV write");
    assert!(
        resp > put,
        "the response entry comes after the request entry"
    );
    // The login's response: the new token HMAC'd.
    let l = all
        .iter()
        .find(|x| x["type"] == "response" && x["request"]["path"] == "auth/userpass/login/alice")
        .expect("login response");
    assert!(l["response"]["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert_eq!(
        l["response"]["auth"]["display_name"], "userpass-alice",
        "{l}"
    );
    // The wrapped answer: its response entry has the wrap_info, the
    // wrapping token and accessors HMAC'd.
    let w = all
        .iter()
        .find(|x| x["type"] == "response" && x["request"]["path"] == "sys/wrapping/wrap")
        .expect("response entry of the wrapped request");
    let info = &w["response"]["wrap_info"];
    assert_eq!(info["creation_path"], "sys/wrapping/wrap", "{w}");
    assert_eq!(info["ttl"], 60, "{w}");
    assert!(info["token"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert!(info["accessor"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert_eq!(
        all.iter()
            .filter(|x| x["type"] == "response" && x["request"]["path"] == "sys/wrapping/wrap")
            .count(),
        1
    );
    // The denied read.
    assert!(
        all.iter().any(|x| x["error"] == "permission denied"
            && x["request"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("secret/app") || p == "secret/data/app")),
        "no entry for the denied request: {:?}",
        all.iter()
            .filter(|x| x["error"].is_string())
            .collect::<Vec<_>>()
    );
    // Every entry has a time and a type.
    assert!(all
        .iter()
        .all(|x| x["time"].is_string() && x["type"].is_string()));

    bao.run(&["audit", "disable", "file/"]).ok();
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert!(list.as_object().is_none_or(|m| m.is_empty()), "{list}");
}

#[test]
fn fail_closed_rotation_and_refusals() {
    let (server, root, bao) = setup();
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("logs");
    std::fs::create_dir(&logdir).unwrap();
    let log = logdir.join("audit.log");
    bao.run(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", log.display()),
    ])
    .ok();
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();

    // logrotate: the file moves, SIGHUP, the server writes a new one.
    std::fs::rename(&log, logdir.join("audit.log.1")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    common::wait_until(
        "the reopened audit file",
        std::time::Duration::from_secs(10),
        || {
            bao.run(&["kv", "put", "secret/after-rotation", "a=1"]);
            log.exists()
                && std::fs::read_to_string(&log)
                    .unwrap()
                    .contains("after-rotation")
        },
    );

    // Nowhere to write: the request is refused and nothing is done.
    std::fs::remove_dir_all(&logdir).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    common::wait_until("the refusal", std::time::Duration::from_secs(10), || {
        bao.run(&["kv", "put", "secret/unlogged", "a=1"]).code == 2
    });
    bao.run(&["kv", "put", "secret/unlogged", "a=1"])
        .api_error(500, "audit");
    std::fs::create_dir(&logdir).unwrap();
    bao.run(&["kv", "get", "secret/unlogged"]).code(2);
    let (code, _) = server.http("GET", "/v1/secret/data/unlogged", Some(&root), None);
    assert_eq!(code, 404, "a request refused for want of an audit log ran");

    // Refused options and devices, nothing stored.
    let storage = server.storage_dir().join("audit.log");
    let unreachable = format!("address=127.0.0.1:{}", common::free_port());
    for (args, text) in [
        (
            vec![
                "audit",
                "enable",
                "-path=p",
                "file",
                "file_path=stdout",
                "prefix=X",
            ],
            "allow_audit_log_prefixing",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=j",
                "file",
                "file_path=stdout",
                "format=xml",
            ],
            "jsonx",
        ),
        (
            vec!["audit", "enable", "socket", &unreachable, "socket_type=tcp"],
            "cannot reach",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=f",
                "file",
                "file_path=stdout",
                "frob=1",
            ],
            "frob",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=l",
                "-local",
                "file",
                "file_path=stdout",
            ],
            "local",
        ),
        (
            vec![
                "audit",
                "enable",
                "-path=rel",
                "file",
                "file_path=audit.log",
            ],
            "absolute",
        ),
    ] {
        bao.run(&args).api_error(400, text);
    }
    bao.run(&[
        "audit",
        "enable",
        "-path=inside",
        "file",
        &format!("file_path={}", storage.display()),
    ])
    .api_error(400, "storage");
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert_eq!(list.as_object().map(|m| m.len()), Some(1), "{list}");

    // Only sudo enables a device.
    let t = bao.json(&["token", "create", "-format=json", "-policy=default"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .bao()
        .with_token(&t)
        .run(&["audit", "enable", "-path=x", "file", "file_path=discard"])
        .api_error(403, "permission denied");
}

/// A log collector: a TCP listener on 127.0.0.1 keeping every line it
/// receives, until it is stopped (listener and connections closed).
struct Collector {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(port: u16) -> Collector {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l2, s2) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut readers = Vec::new();
            while !s2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_millis(50)))
                            .unwrap();
                        let (l3, s3) = (l2.clone(), s2.clone());
                        readers.push(std::thread::spawn(move || {
                            let mut r = std::io::BufReader::new(conn);
                            let mut line = String::new();
                            while !s3.load(Ordering::SeqCst) {
                                match r.read_line(&mut line) {
                                    Ok(0) => return,
                                    Ok(_) => {
                                        l3.lock().unwrap().push(std::mem::take(&mut line));
                                    }
                                    // A timeout: a partial line stays in `line`.
                                    Err(_) => {}
                                }
                            }
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            drop(listener);
            for r in readers {
                let _ = r.join();
            }
        });
        Collector {
            port,
            lines,
            stop,
            thread: Some(thread),
        }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().concat()
    }

    fn entries(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn socket_device_streams_entries_and_fails_closed() {
    let (server, root, bao) = setup();
    let mut collector = Collector::start(0);
    let port = collector.port;
    bao.run(&[
        "audit",
        "enable",
        "socket",
        &format!("address=127.0.0.1:{port}"),
        "socket_type=tcp",
        "write_timeout=2s",
    ])
    .ok();
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert_eq!(list["socket/"]["type"], "socket", "{list}");
    assert_eq!(
        list["socket/"]["options"]["address"],
        format!("127.0.0.1:{port}")
    );
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    bao.run(&["kv", "put", "secret/app", "password=socket-secret-1"])
        .ok();
    let hash = bao.json(&[
        "write",
        "-format=json",
        "sys/audit-hash/socket",
        "input=socket-secret-1",
    ])["data"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    common::wait_until(
        "the KV write on the socket",
        Duration::from_secs(10),
        || {
            collector.entries().iter().any(|e| {
                e["type"] == "request"
                    && e["request"]["path"] == "secret/data/app"
                    && e["request"]["data"]["data"]["password"] == hash.as_str()
            })
        },
    );
    let text = collector.text();
    for secret in [root.as_str(), "socket-secret-1"] {
        assert!(!text.contains(secret), "the socket got a secret: {secret}");
    }

    // The collector goes away: the only device cannot record, requests are
    // refused with a 500 and nothing is done.
    collector.stop();
    common::wait_until("the refusal", Duration::from_secs(10), || {
        bao.run(&["kv", "put", "secret/probe", "a=1"]).code == 2
    });
    bao.run(&["kv", "put", "secret/unlogged", "a=1"])
        .api_error(500, "audit");
    // It comes back on the same port: the device connects again.
    let collector = Collector::start(port);
    common::wait_until("the reconnection", Duration::from_secs(10), || {
        let (code, _) = server.http("GET", "/v1/secret/data/unlogged", Some(&root), None);
        code == 404
    });
    common::wait_until(
        "entries on the new connection",
        Duration::from_secs(10),
        || collector.text().contains("secret/data/unlogged"),
    );
}

#[test]
fn syslog_device_needs_a_local_syslog_socket() {
    let (_server, _root, bao) = setup();
    let present = ["/dev/log", "/var/run/syslog", "/var/run/log"]
        .iter()
        .any(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
        });
    if present {
        bao.run(&["audit", "enable", "syslog", "facility=LOCAL0", "tag=arca"])
            .ok();
        let list = bao.json(&["audit", "list", "-format=json"]);
        assert_eq!(list["syslog/"]["type"], "syslog", "{list}");
    } else {
        bao.run(&["audit", "enable", "syslog"])
            .api_error(400, "no local syslog socket");
    }
    bao.run(&["audit", "enable", "-path=s2", "syslog", "facility=NOPE"])
        .api_error(400, "facility");
}

#[test]
fn configured_devices_prefix_jsonx_and_request_headers() {
    let dir = tempfile::tempdir().unwrap();
    let declared = dir.path().join("declared.log");
    let prefixed = dir.path().join("prefixed.log");
    let top = format!(
        r#"
allow_audit_log_prefixing = true
audit "file" "declared" {{
  description = "from the configuration"
  options {{
    file_path = "{}"
  }}
}}
audit "file" "prefixed" {{
  options {{
    file_path = "{}"
    prefix    = "ARCA "
  }}
}}
"#,
        declared.display(),
        prefixed.display()
    );
    let mut server = Server::start_rocksdb_with("", &top);
    let init = server.init_and_unseal();
    let root = init.root_token.clone();
    let bao = server.bao().with_token(&root);

    let list = bao.json(&["audit", "list", "-format=json"]);
    assert_eq!(list["declared/"]["type"], "file", "{list}");
    assert_eq!(list["declared/"]["description"], "from the configuration");
    assert_eq!(list["prefixed/"]["options"]["prefix"], "ARCA ");
    assert!(!list.to_string().contains("salt"), "{list}");
    // Not through the API.
    bao.run(&["audit", "disable", "declared/"])
        .api_error(400, "configuration");
    bao.run(&[
        "audit",
        "enable",
        "-path=declared",
        "file",
        "file_path=discard",
    ])
    .api_error(400, "in use");
    let hash = |bao: &Bao| {
        bao.json(&[
            "write",
            "-format=json",
            "sys/audit-hash/declared",
            "input=abc",
        ])["data"]["hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = hash(&bao);

    // jsonx through the API; the prefix is allowed by this configuration.
    let xml = dir.path().join("x.log");
    bao.run(&[
        "audit",
        "enable",
        "-path=x",
        "file",
        &format!("file_path={}", xml.display()),
        "format=jsonx",
    ])
    .ok();

    // Audited request headers.
    let sudo = |args: &[&str]| bao.run(args);
    sudo(&[
        "write",
        "sys/config/auditing/request-headers/X-Request-Tag",
        "hmac=false",
    ])
    .ok();
    sudo(&[
        "write",
        "sys/config/auditing/request-headers/X-Client-Secret",
        "hmac=true",
    ])
    .ok();
    let all = bao.json(&[
        "read",
        "-format=json",
        "sys/config/auditing/request-headers",
    ]);
    assert_eq!(
        all["data"]["headers"]["x-request-tag"]["hmac"], false,
        "{all}"
    );
    assert_eq!(all["data"]["headers"]["x-client-secret"]["hmac"], true);
    let one = bao.json(&[
        "read",
        "-format=json",
        "sys/config/auditing/request-headers/x-client-secret",
    ]);
    assert_eq!(one["data"]["x-client-secret"]["hmac"], true, "{one}");
    sudo(&[
        "write",
        "sys/config/auditing/request-headers/Authorization",
        "hmac=true",
    ])
    .api_error(400, "client token");
    let t = bao.json(&["token", "create", "-format=json", "-policy=default"])["auth"]
        ["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .bao()
        .with_token(&t)
        .run(&[
            "write",
            "sys/config/auditing/request-headers/x-other",
            "hmac=true",
        ])
        .api_error(403, "permission denied");

    let (code, _) = common::try_http_with(
        &server.addr,
        "GET",
        "/v1/sys/mounts",
        Some(&root),
        None,
        &[
            ("X-Request-Tag", "tag-42"),
            ("X-Client-Secret", "header-secret-99"),
            ("X-Not-Audited", "nobody-sees-this"),
        ],
    )
    .unwrap();
    assert_eq!(code, 200);
    let e = entries(&declared)
        .into_iter()
        .find(|e| e["type"] == "request" && e["request"]["headers"]["x-request-tag"].is_array())
        .expect("an entry with the audited headers");
    assert_eq!(e["request"]["headers"]["x-request-tag"][0], "tag-42", "{e}");
    let secret_hash = bao.json(&[
        "write",
        "-format=json",
        "sys/audit-hash/declared",
        "input=header-secret-99",
    ])["data"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        e["request"]["headers"]["x-client-secret"][0],
        secret_hash.as_str()
    );
    assert!(
        e["request"]["headers"].get("x-not-audited").is_none(),
        "{e}"
    );
    sudo(&[
        "delete",
        "sys/config/auditing/request-headers/x-request-tag",
    ])
    .ok();
    let all = bao.json(&[
        "read",
        "-format=json",
        "sys/config/auditing/request-headers",
    ]);
    assert!(
        all["data"]["headers"].get("x-request-tag").is_none(),
        "{all}"
    );

    // Every log: no secret; the prefixed one starts each line with the
    // prefix; the jsonx one is XML.
    for log in [&declared, &prefixed, &xml] {
        let text = std::fs::read_to_string(log).unwrap();
        for secret in [root.as_str(), t.as_str(), "header-secret-99"] {
            assert!(!text.contains(secret), "{} holds {secret}", log.display());
        }
        assert!(!text.contains("nobody-sees-this"));
    }
    let p = std::fs::read_to_string(&prefixed).unwrap();
    assert!(p.lines().count() > 3);
    for line in p.lines() {
        assert!(line.starts_with("ARCA {\""), "{line}");
    }
    let x = std::fs::read_to_string(&xml).unwrap();
    assert!(x.lines().count() > 1);
    for line in x.lines() {
        assert!(
            line.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><json:object"),
            "{line}"
        );
        assert!(line.ends_with("</json:object>"), "{line}");
    }

    // After a restart the declared device is there again, same salt.
    server.restart();
    server.unseal_with(&init.keys_b64[..3]);
    let bao = server.bao().with_token(&root);
    let list = bao.json(&["audit", "list", "-format=json"]);
    assert!(list["declared/"].is_object(), "{list}");
    assert!(list["x/"].is_object(), "{list}");
    assert_eq!(hash(&bao), before);
}
