//! Path help and the OpenAPI document (issue 15, "Help, OpenAPI, tools"):
//! - `bao path-help` (`GET <path>?help=1`) answers a path's declaration —
//!   route, synopsis, parameters — on KV, PKI, transit, sys and auth paths,
//!   to any valid token, never the data at the path.
//! - `GET sys/internal/specs/openapi` is an OpenAPI 3 document of every
//!   mount the caller can see, each mount's paths under its mount path,
//!   with operations, typed fields, defaults, required flags, path
//!   parameters and unique operationIds; no token sees only mounts tuned
//!   `listing_visibility=unauth`.
//! - The document passes openapi-spec-validator, and schemathesis, run
//!   against the server with a root token for a bounded time, finds no 5xx
//!   (`tests/compat/openapi_check.py`). Fails (never skips) when python3,
//!   openapi-spec-validator or schemathesis are missing: `pip install
//!   openapi-spec-validator==0.9.0 schemathesis==4.32.5`.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::{python_bin, repo_root, run_with_timeout, Server};
use serde_json::{json, Value};

/// A server with KV v2 at `secret/`, PKI, transit and userpass mounted.
fn server() -> (Server, String) {
    let s = Server::start();
    let root = s.init_and_unseal().root_token;
    let bao = s.bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    bao.run(&["secrets", "enable", "pki"]).ok();
    bao.run(&["secrets", "enable", "transit"]).ok();
    bao.run(&["auth", "enable", "userpass"]).ok();
    s.wait_kv2_ready("secret", &root);
    (s, root)
}

fn openapi(s: &Server, token: Option<&str>) -> Value {
    let (st, doc) = s.http("GET", "/v1/sys/internal/specs/openapi", token, None);
    assert_eq!(st, 200, "{doc}");
    doc
}

/// The request body schema of an operation (following its `$ref`).
fn body<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    let r = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} has no JSON body: {op}"));
    &doc["components"]["schemas"][r.rsplit('/').next().unwrap()]
}

#[test]
fn the_document_describes_every_mount_and_no_data() {
    let (s, root) = server();
    let bao = s.bao().with_token(&root);
    bao.run(&["kv", "put", "secret/app", "password=hunter2-openapi"])
        .ok();
    let doc = openapi(&s, Some(&root));
    assert_eq!(doc["openapi"], "3.0.2");
    assert!(doc["info"]["version"].is_string(), "{}", doc["info"]);
    let text = doc.to_string();
    assert!(!text.contains("hunter2"), "the document holds data");
    let paths = doc["paths"].as_object().unwrap();

    // KV v2 under its mount path: read, write, delete and patch of data,
    // list of metadata on the template with a trailing slash.
    let data = &paths["/secret/data/{path}"];
    for m in ["get", "post", "delete", "patch"] {
        assert!(data[m]["operationId"].is_string(), "{m}: {data}");
    }
    assert_eq!(data["parameters"][0]["name"], "path");
    assert_eq!(data["parameters"][0]["in"], "path");
    assert_eq!(data["parameters"][0]["required"], true);
    let b = body(&doc, "/secret/data/{path}", "post");
    assert_eq!(b["properties"]["data"]["type"], "object", "{b}");
    assert!(
        data["patch"]["requestBody"]["content"]["application/merge-patch+json"].is_object(),
        "{data}"
    );
    let list = &paths["/secret/metadata/{path}/"]["get"];
    assert_eq!(list["parameters"][0]["name"], "list", "{list}");
    assert_eq!(list["parameters"][0]["required"], true, "{list}");
    let cfg = body(&doc, "/secret/config", "post");
    assert_eq!(
        cfg["properties"]["max_versions"]["type"], "integer",
        "{cfg}"
    );
    assert!(
        cfg["properties"]["delete_version_after"].is_object(),
        "{cfg}"
    );

    // PKI: role fields with types and defaults; public paths marked.
    let role = body(&doc, "/pki/roles/{name}", "post");
    assert_eq!(
        role["properties"]["allow_any_name"]["type"], "boolean",
        "{role}"
    );
    assert_eq!(role["properties"]["ttl"]["type"], "string", "{role}");
    assert_eq!(role["properties"]["ttl"]["format"], "duration", "{role}");
    assert_eq!(
        role["properties"]["allowed_domains"]["type"], "array",
        "{role}"
    );
    assert_eq!(paths["/pki/ca/pem"]["get"]["x-vault-unauthenticated"], true);
    assert!(paths.contains_key("/pki/issue/{role}"), "no issue path");

    // Transit: the key type's allowed values and default.
    let key = body(&doc, "/transit/keys/{name}", "post");
    let ty = &key["properties"]["type"];
    assert_eq!(ty["default"], "aes256-gcm96", "{key}");
    assert!(
        ty["enum"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "ed25519"),
        "{ty}"
    );

    // An auth mount under auth/, its login unauthenticated, the password
    // a sensitive string.
    let login = &paths["/auth/userpass/login/{username}"];
    assert_eq!(login["post"]["x-vault-unauthenticated"], true, "{login}");
    assert_eq!(login["parameters"][0]["required"], true, "{login}");
    let lb = body(&doc, "/auth/userpass/login/{username}", "post");
    assert_eq!(lb["properties"]["password"]["type"], "string", "{lb}");
    assert_eq!(
        lb["properties"]["password"]["x-vault-displaySensitive"], true,
        "{lb}"
    );

    // sys itself, its sudo paths marked.
    assert!(paths.contains_key("/sys/policies/acl/{name}"));
    assert_eq!(paths["/sys/audit/{path}"]["x-vault-sudo"], true);
    assert!(paths.contains_key("/auth/token/create"));

    // Unique operationIds; every template parameter declared.
    let mut ids = HashSet::new();
    for (p, item) in paths {
        let declared: HashSet<&str> = item["parameters"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        for seg in p.split('{').skip(1) {
            let name = seg.split('}').next().unwrap();
            assert!(declared.contains(name), "{p}: {{{name}}} not declared");
        }
        for (m, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                assert!(ids.insert(id.to_string()), "{m} {p}: duplicate {id}");
            }
        }
    }

    // generic_mount_paths names each mount by a parameter.
    let (st, g) = s.http(
        "GET",
        "/v1/sys/internal/specs/openapi?generic_mount_paths=true",
        Some(&root),
        None,
    );
    assert_eq!(st, 200, "{g}");
    let gp = g["paths"].as_object().unwrap();
    assert!(
        gp.contains_key("/{kv-v2_mount_path}/data/{path}"),
        "{:?}",
        gp.keys().take(20).collect::<Vec<_>>()
    );
    assert!(gp.contains_key("/auth/{userpass_mount_path}/login/{username}"));
    assert!(gp.contains_key("/sys/mounts"));
}

#[test]
fn the_document_shows_only_what_the_caller_can_see() {
    let (s, root) = server();
    let r = Some(root.as_str());
    s.http_ok(
        "PUT",
        "/v1/sys/policies/acl/kv-only",
        r,
        Some(&json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
    );
    let t = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        r,
        Some(&json!({"policies": ["kv-only"], "no_default_policy": true})),
    );
    let weak = t["auth"]["client_token"].as_str().unwrap().to_string();
    let doc = openapi(&s, Some(&weak));
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.contains_key("/secret/data/{path}"),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for hidden in ["/pki/", "/transit/", "/auth/userpass/", "/sys/"] {
        assert!(
            !paths.keys().any(|k| k.starts_with(hidden)),
            "{hidden} shown to a token without access"
        );
    }

    // Without a token: only mounts tuned listing_visibility=unauth.
    let doc = openapi(&s, None);
    assert_eq!(doc["paths"], json!({}), "{doc}");
    s.bao()
        .with_token(&root)
        .run(&[
            "auth",
            "enable",
            "-path=public",
            "-listing-visibility=unauth",
            "userpass",
        ])
        .ok();
    let doc = openapi(&s, None);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/auth/public/login/{username}"), "{doc}");
    assert!(
        !paths.keys().any(|k| !k.starts_with("/auth/public/")),
        "{doc}"
    );
}

#[test]
fn path_help_on_every_kind_of_path_never_shows_data() {
    let (s, root) = server();
    let bao = s.bao().with_token(&root);
    bao.run(&[
        "write",
        "pki/roles/web",
        "allowed_domains=leak-check.test",
        "allow_subdomains=true",
    ])
    .ok();
    bao.run(&["write", "auth/userpass/users/bob", "password=hunter2-help"])
        .ok();
    bao.run(&["write", "-f", "transit/keys/k1"]).ok();
    // A token with no policy on these paths may read their help (Vault
    // checks no ACL for help), never their data.
    let t = s.http_ok(
        "POST",
        "/v1/auth/token/create",
        Some(&root),
        Some(&json!({"policies": ["default"]})),
    );
    let weak = t["auth"]["client_token"].as_str().unwrap().to_string();
    let weak_bao = s.bao().with_token(&weak);
    for (path, expect) in [
        ("pki/roles/web", "allowed_domains"),
        ("sys/mounts/secret", "Matching Route"),
        ("sys/policies/acl/default", "Matching Route"),
        ("auth/userpass/users/bob", "password"),
        ("auth/userpass/login/bob", "password"),
        ("transit/keys/k1", "Matching Route"),
        ("secret/data/app", "Matching Route"),
        ("auth/token/create", "policies"),
    ] {
        let out = weak_bao.run(&["path-help", path]).ok();
        assert!(out.stdout.contains(expect), "{path}: {}", out.describe());
        assert!(
            out.stdout.contains(&format!("Request:        {path}")),
            "{path}: {}",
            out.describe()
        );
        for leak in ["hunter2", "leak-check.test"] {
            assert!(
                !out.stdout.contains(leak),
                "{path} leaks {leak}: {}",
                out.describe()
            );
        }
    }
    // The same over HTTP: help, no data.
    let (st, body) = s.http(
        "GET",
        "/v1/auth/userpass/users/bob?help=1",
        Some(&weak),
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    assert!(!body.to_string().contains("hunter2"), "{body}");
    // The data itself stays denied to that token.
    let (st, _) = s.http("GET", "/v1/auth/userpass/users/bob", Some(&weak), None);
    assert_eq!(st, 403);
    // No token, no help.
    let (st, _) = s.http("GET", "/v1/pki/roles/web?help=1", None, None);
    assert_eq!(st, 403);
}

#[test]
fn the_document_passes_a_validator_and_schemathesis_finds_no_5xx() {
    let (s, root) = server();
    let work = s.work_dir();
    let mut probe = Command::new(python_bin());
    probe.args(["-c", "import openapi_spec_validator, schemathesis"]);
    let (code, _, err) = run_with_timeout(probe, &work, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e}); python3 is required", python_bin()));
    assert_eq!(
        code,
        0,
        "openapi-spec-validator or schemathesis is not importable by `{}` \
         (pip install openapi-spec-validator==0.9.0 schemathesis==4.32.5): {err}",
        python_bin()
    );
    let script = repo_root().join("tests/compat/openapi_check.py");
    let mut c = Command::new(python_bin());
    c.arg(&script)
        .args(["--addr", &s.addr, "--token", &root])
        // The engines' paths; sys and auth/token are left out, where a
        // random request seals the server or revokes the root token.
        .args([
            "--mount",
            "^/secret/",
            "--mount",
            "^/pki/",
            "--mount",
            "^/transit/",
        ])
        .args(["--mount", "^/auth/userpass/"])
        .args(["--max-examples", "3", "--max-time", "60"])
        .env("HOME", &work)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(&work);
    let (code, out, err) = run_with_timeout(c, &work, Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    println!("{out}");
    eprintln!("{err}");
    assert_eq!(
        code, 0,
        "openapi check failed (exit {code})\n--- stdout ---\n{out}\n--- stderr ---\n{err}\n--- server log (tail) ---\n{}",
        s.log().chars().rev().take(8000).collect::<String>().chars().rev().collect::<String>()
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("openapi_check: ") && l.ends_with(" passed, 0 failed")),
        "no summary line:\n{out}"
    );
}
