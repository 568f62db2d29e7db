//! The `arca` CLI beside the real `bao` CLI (OpenBao 2.7.2) on one Arca
//! server, same HOME and token: for each command the two print the same
//! JSON (ids and times aside), the same table keys and the same `-field`
//! values, and exit with the same code.
//!
//! Families covered so far: generic `read` of endpoints that answer a bare
//! object rather than the `data` envelope (`sys/health`, `sys/seal-status`,
//! `sys/leader`), which the Go client shows as `data`; `auth
//! enable|disable|list|tune|help`; `lease lookup|renew|revoke`; `path-help`;
//! `secrets move`; `print token`; `unwrap` (of tokens bao wrapped); `audit
//! enable|list|disable`; `operator rotate-keys` and `operator
//! generate-root` (started, continued and decoded by either CLI); `token
//! capabilities` (own and another token's); and the
//! refusals of what is missing (`namespace …` and `-namespace`: the server
//! has no namespaces); `-wrap-ttl` on writes, reads and token creation. Each
//! test starts one server and also compares failures (wrong path, missing
//! argument) by exit code.

mod common;

use common::{Bao, Server};
use serde_json::Value;

/// Fields that differ between two calls whatever the client.
const VOLATILE: &[&str] = &["request_id", "server_time_utc"];

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in VOLATILE {
                m.remove(*k);
            }
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// The keys of a table's `Key  Value` rows.
fn table_keys(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("---"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Runs `args` with both CLIs: same exit code; returns (bao, arca) stdout.
fn both(bao: &Bao, args: &[&str]) -> (String, String) {
    let b = bao.run(args);
    let a = bao.as_arca().run(args);
    assert_eq!(
        a.code, b.code,
        "exit codes differ for {args:?}:\nbao: {}\narca: {}",
        b.stderr, a.stderr
    );
    (b.stdout, a.stdout)
}

#[test]
fn generic_read_shows_bare_answers_as_data() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    for path in ["sys/health", "sys/seal-status", "sys/leader"] {
        let (b, a) = both(&bao, &["read", "-format=json", path]);
        let (mut b, mut a): (Value, Value) = (
            serde_json::from_str(&b).unwrap(),
            serde_json::from_str(&a).unwrap(),
        );
        strip(&mut b);
        strip(&mut a);
        assert!(
            b["data"].as_object().is_some_and(|d| !d.is_empty()),
            "bao shows no data for {path}: {b}"
        );
        assert_eq!(a, b, "arca and bao differ on `read -format=json {path}`");

        let (b, a) = both(&bao, &["read", path]);
        let mut bk = table_keys(&b);
        let mut ak = table_keys(&a);
        bk.retain(|k| !VOLATILE.contains(&k.as_str()));
        ak.retain(|k| !VOLATILE.contains(&k.as_str()));
        assert!(!bk.is_empty(), "bao printed no table for {path}:\n{b}");
        assert_eq!(
            ak, bk,
            "table keys differ for `read {path}`:\nbao:\n{b}\narca:\n{a}"
        );
    }
    let (b, a) = both(&bao, &["read", "-field=initialized", "sys/health"]);
    assert_eq!(a.trim(), b.trim());
    assert_eq!(a.trim(), "true");
    // A field that is not there: the same failure.
    let (_, a) = both(&bao, &["read", "-field=nope", "sys/health"]);
    assert!(a.is_empty());
}

/// Both outputs parsed as JSON, volatile fields removed.
fn both_json(bao: &Bao, args: &[&str]) -> (Value, Value) {
    let (b, a) = both(bao, args);
    let parse = |s: &str, who: &str| -> Value {
        let mut v: Value = serde_json::from_str(s)
            .unwrap_or_else(|e| panic!("{who} {args:?} printed no JSON ({e}):\n{s}"));
        strip(&mut v);
        v
    };
    (parse(&b, "bao"), parse(&a, "arca"))
}

/// Runs `args` with both CLIs; asserts the same exit code and stdout.
fn same(bao: &Bao, args: &[&str]) -> String {
    let (b, a) = both(bao, args);
    assert_eq!(a, b, "stdout differs for {args:?}");
    a
}

/// `args` with `{}` replaced by `path`.
fn with_path(args: &[&str], path: &str) -> Vec<String> {
    args.iter().map(|a| a.replace("{}", path)).collect()
}

/// Runs `args` (with `{}` the mount path) by bao on `pb` and by arca on `pa`:
/// same exit code, and the same stdout once the paths are swapped.
fn each_on(bao: &Bao, args: &[&str], pb: &str, pa: &str) {
    let ab = with_path(args, pb);
    let aa = with_path(args, pa);
    let b = bao.run(&ab.iter().map(String::as_str).collect::<Vec<_>>());
    let a = bao
        .as_arca()
        .run(&aa.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        a.code, b.code,
        "exit codes differ for {args:?}:\nbao: {}\narca: {}",
        b.stderr, a.stderr
    );
    assert_eq!(
        a.stdout.replace(pa, pb),
        b.stdout,
        "stdout differs for {args:?}"
    );
}

/// Removes the fields that differ between two mounts made the same way.
fn strip_mount_ids(v: &mut Value) {
    if let Value::Object(m) = v {
        for k in ["uuid", "accessor"] {
            m.remove(k);
        }
    }
}

#[test]
fn auth_family() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    // enable: bao on one path, arca on another, same flags → same mounts.
    let enable = [
        "auth",
        "enable",
        "-path={}",
        "-description=people",
        "-default-lease-ttl=1h",
        "-max-lease-ttl=2h",
        "-token-type=batch",
        "-options=team=x",
        "userpass",
    ];
    each_on(&bao, &enable, "upb", "upa");
    let list = bao.json(&["auth", "list", "-format=json"]);
    let (mut mb, mut ma) = (list["upb/"].clone(), list["upa/"].clone());
    strip_mount_ids(&mut mb);
    strip_mount_ids(&mut ma);
    assert!(mb.is_object(), "{list}");
    assert_eq!(ma, mb, "auth enable sent different mounts");
    // list: JSON and both tables, identical on one state.
    let (b, a) = both_json(&bao, &["auth", "list", "-format=json"]);
    assert_eq!(a, b);
    let (b, a) = both_json(&bao, &["auth", "list", "-detailed", "-format=json"]);
    assert_eq!(a, b);
    let t = same(&bao, &["auth", "list"]);
    assert!(t.starts_with("Path "), "{t}");
    let t = same(&bao, &["auth", "list", "-detailed"]);
    assert!(t.contains("3600"), "{t}");
    // tune: the same flags give the same tune state.
    let tune = [
        "auth",
        "tune",
        "-description=tuned",
        // No -default-lease-ttl: bao sends it as "", which leaves the TTL
        // as it was (as Vault), arca sends nothing.
        "-max-lease-ttl=3h",
        "-token-type=service",
        "-user-lockout-threshold=3",
        "-user-lockout-duration=10m",
        "-user-lockout-disable",
        "{}",
    ];
    each_on(&bao, &tune, "upb", "upa");
    let rb = bao.json(&["read", "-format=json", "sys/auth/upb/tune"]);
    let ra = bao.json(&["read", "-format=json", "sys/auth/upa/tune"]);
    assert_eq!(ra["data"], rb["data"], "auth tune sent different settings");
    assert_eq!(rb["data"]["description"], "tuned", "{rb}");
    assert_eq!(
        rb["data"]["default_lease_ttl"], 3600,
        "an unset -default-lease-ttl changed the TTL: {rb}"
    );
    // help: bao's login help, with the program's name.
    let (b, a) = both(&bao, &["auth", "help", "userpass"]);
    assert_eq!(a.replace("arca ", "bao "), b);
    let (b, a) = both(&bao, &["auth", "help", "upa"]);
    assert_eq!(a.replace("arca ", "bao "), b);
    // No login handler for approle in either CLI: the same failure.
    bao.run(&["auth", "enable", "approle"]).ok();
    let (_, a) = both(&bao, &["auth", "help", "approle"]);
    assert!(a.is_empty(), "{a}");
    // Failures.
    for args in [
        &["auth", "enable"][..],
        &["auth", "enable", "nosuchtype"],
        &["auth", "enable", "-bogus-flag", "userpass"],
        &["auth", "enable", "-path=upa", "userpass"],
        &["auth", "tune", "nothere"],
        &["auth", "tune"],
        &["auth", "tune", "-default-lease-ttl=soon", "upa"],
        &["auth", "disable"],
        &["auth", "help"],
        &["auth", "help", "nothere"],
        &["auth", "list", "extra"],
        &["auth", "nosuchsub"],
    ] {
        let (_, a) = both(&bao, args);
        assert!(a.is_empty(), "{args:?} printed {a}");
    }
    // Refused (exit 2, nothing enabled): the server has no seal wrapping
    // for auth mounts nor a plugin catalog; bao's request is refused by the
    // server, arca's by arca.
    for flag in ["-seal-wrap", "-plugin-version=v1.0.0", "-local"] {
        let args = ["auth", "enable", "-path=refused", flag, "userpass"];
        let err = bao.as_arca().run(&args);
        assert_eq!(err.code, 2, "{}", err.describe());
        let b = bao.run(&args);
        assert_eq!(b.code, 2, "{}", b.describe());
    }
    let list = bao.json(&["auth", "list", "-format=json"]);
    assert!(list.get("refused/").is_none(), "{list}");
    // disable: existing or not, the same message.
    each_on(&bao, &["auth", "disable", "{}"], "upb", "upa");
    same(&bao, &["auth", "disable", "nothere"]);
    let list = bao.json(&["auth", "list", "-format=json"]);
    assert!(
        list.get("upa/").is_none() && list.get("upb/").is_none(),
        "{list}"
    );
}

/// A PKI role whose certificates carry leases; returns a new lease id.
fn pki_lease(bao: &Bao) -> String {
    let v = bao.json(&[
        "write",
        "-format=json",
        "pki/issue/web",
        "common_name=a.example.com",
    ]);
    v["lease_id"].as_str().unwrap().to_string()
}

#[test]
fn lease_family() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["secrets", "enable", "pki"]).ok();
    bao.run(&[
        "write",
        "pki/root/generate/internal",
        "common_name=example.com",
        "key_type=ec",
        "ttl=24h",
    ])
    .ok();
    bao.run(&[
        "write",
        "pki/roles/web",
        "allowed_domains=example.com",
        "allow_subdomains=true",
        "key_type=ec",
        "generate_lease=true",
        "ttl=1h",
    ])
    .ok();
    let id = pki_lease(&bao);
    let (mut b, mut a) = both_json(&bao, &["lease", "lookup", "-format=json", &id]);
    // The TTL counts down between the two calls.
    for v in [&mut b, &mut a] {
        v["data"].as_object_mut().unwrap().remove("ttl");
    }
    assert_eq!(a, b);
    assert_eq!(b["data"]["id"], id.as_str());
    let (b, a) = both(&bao, &["lease", "lookup", &id]);
    assert_eq!(table_keys(&a), table_keys(&b));
    assert!(table_keys(&b).contains(&"expire_time".to_string()), "{b}");
    // Not renewable: the same API error.
    both(&bao, &["lease", "renew", &id]);
    both(&bao, &["lease", "renew", "-increment=10m", &id]);
    // Usage errors and unknown leases.
    for args in [
        &["lease", "lookup"][..],
        &["lease", "lookup", "a", "b"],
        &["lease", "lookup", "nothere"],
        &["lease", "renew"],
        &["lease", "renew", "-increment=soon", "x"],
        &["lease", "renew", "nothere"],
        &["lease", "revoke"],
        &["lease", "revoke", "-force", "x"],
        &["lease", "revoke", "nothere"],
        &["lease", "nosuchsub"],
    ] {
        let (_, a) = both(&bao, args);
        assert!(a.is_empty(), "{args:?} printed {a}");
    }
    // Revocations, one lease for each CLI: the same messages.
    let (l1, l2) = (pki_lease(&bao), pki_lease(&bao));
    let b = bao.run(&["lease", "revoke", "-sync", &l1]).ok();
    let a = bao.as_arca().run(&["lease", "revoke", "-sync", &l2]).ok();
    assert_eq!(a.stdout.replace(&l2, &l1), b.stdout);
    let (l1, l2) = (pki_lease(&bao), pki_lease(&bao));
    let b = bao.run(&["lease", "revoke", &l1]).ok();
    let a = bao.as_arca().run(&["lease", "revoke", &l2]).ok();
    assert_eq!(a.stdout, b.stdout);
    // Revoked: looking them up fails for both.
    server.wait_active();
    common::wait_until("leases revoked", std::time::Duration::from_secs(30), || {
        bao.run(&["lease", "lookup", &l2]).code == 2 && bao.run(&["lease", "lookup", &l1]).code == 2
    });
    both(&bao, &["lease", "lookup", &l2]);
    pki_lease(&bao);
    same(
        &bao,
        &["lease", "revoke", "-prefix", "-sync", "pki/issue/web"],
    );
    same(&bao, &["lease", "revoke", "-prefix", "pki/issue/web"]);
    same(
        &bao,
        &["lease", "revoke", "-force", "-prefix", "pki/issue/web"],
    );
}

#[test]
fn path_help_family() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    for path in [
        "sys/mounts",
        "cubbyhole/x",
        "auth/token/create",
        "sys/leases/lookup",
    ] {
        let t = same(&bao, &["path-help", path]);
        assert!(!t.trim().is_empty(), "no help for {path}");
        let (b, a) = both_json(&bao, &["path-help", "-format=json", path]);
        assert_eq!(a, b, "path-help -format=json {path}");
    }
    for args in [
        &["path-help"][..],
        &["path-help", "a", "b"],
        &["path-help", "nothere/x"],
    ] {
        let (_, a) = both(&bao, args);
        assert!(a.is_empty(), "{args:?} printed {a}");
    }
}

#[test]
fn secrets_move_family() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["secrets", "enable", "-path=m1", "kv"]).ok();
    bao.run(&["write", "m1/k", "v=1"]).ok();
    let id_of = |s: &str| {
        s.lines()
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_default()
            .to_string()
    };
    let b = bao.run(&["secrets", "move", "m1", "m2"]).ok();
    let a = bao.as_arca().run(&["secrets", "move", "m2/", "/m3"]).ok();
    let (ib, ia) = (id_of(&b.stdout), id_of(&a.stdout));
    assert!(!ia.is_empty() && ia != ib, "{}", a.stdout);
    assert_eq!(
        a.stdout
            .replace(&ia, &ib)
            .replace("m3/", "m2/")
            .replace("m2/ to", "m1/ to"),
        b.stdout,
    );
    assert_eq!(b.stdout.lines().count(), 2, "{}", b.stdout);
    let v = bao.json(&["read", "-format=json", "m3/k"]);
    assert_eq!(v["data"]["v"], "1", "{v}");
    for args in [
        &["secrets", "move", "nothere", "x"][..],
        &["secrets", "move", "m3"],
        &["secrets", "move"],
        &["secrets", "move", "a", "b", "c"],
        &["secrets", "move", "sys", "x"],
    ] {
        let (_, a) = both(&bao, args);
        assert!(a.is_empty(), "{args:?} printed {a}");
    }
}

/// A new wrapping token (made by bao) wrapping `{"foo": "bar"}`.
fn wrapped(bao: &Bao) -> String {
    let v = bao.json(&[
        "write",
        "-format=json",
        "-wrap-ttl=5m",
        "sys/wrapping/wrap",
        "foo=bar",
    ]);
    v["wrap_info"]["token"].as_str().unwrap().to_string()
}

#[test]
fn print_token_unwrap_and_missing_features() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    let t = same(&bao, &["print", "token"]);
    assert_eq!(t.trim(), root);
    both(&bao, &["print"]);
    both(&bao, &["print", "nosuch"]);

    // unwrap: a wrapping token is single-use, so one for each CLI.
    for args in [
        &["unwrap", "-format=json"][..],
        &["unwrap"],
        &["unwrap", "-field=foo"],
        &["unwrap", "-format=json", "-field=foo"],
        &["unwrap", "-field=nope"],
    ] {
        let (wb, wa) = (wrapped(&bao), wrapped(&bao));
        let b = bao.run(&[args, &[wb.as_str()]].concat());
        let a = bao.as_arca().run(&[args, &[wa.as_str()]].concat());
        assert_eq!(a.code, b.code, "{}\n{}", b.describe(), a.describe());
        if args.contains(&"-format=json") && !args.iter().any(|a| a.starts_with("-field")) {
            let (mut jb, mut ja): (Value, Value) = (b.json(), a.json());
            strip(&mut jb);
            strip(&mut ja);
            assert_eq!(ja, jb, "unwrap -format=json");
            assert_eq!(jb["data"]["foo"], "bar", "{jb}");
        } else if args.iter().any(|a| a.starts_with("-field")) {
            assert_eq!(a.stdout, b.stdout, "{args:?}");
        } else {
            assert_eq!(table_keys(&a.stdout), table_keys(&b.stdout), "{args:?}");
        }
    }
    // The wrapping token as the client token.
    let (wb, wa) = (wrapped(&bao), wrapped(&bao));
    let b = bao.with_token(&wb).run(&["unwrap", "-field=foo"]);
    let a = bao.with_token(&wa).as_arca().run(&["unwrap", "-field=foo"]);
    assert_eq!((a.code, a.stdout.as_str()), (0, "bar"), "{}", a.describe());
    assert_eq!(a.stdout, b.stdout);
    // Used once already, or never a wrapping token: the same failure.
    let w = wrapped(&bao);
    bao.run(&["unwrap", &w]).ok();
    both(&bao, &["unwrap", &w]);
    both(&bao, &["unwrap", "hvs.notawrappingtoken"]);
    both(&bao, &["unwrap", "a", "b"]);

    // No namespaces: both fail as an API error (2).
    for args in [
        &["namespace", "list"][..],
        &["namespace", "lookup", "team"],
        &["namespace", "create", "team"],
    ] {
        let (_, a) = both(&bao, args);
        assert!(a.is_empty(), "{args:?} printed {a}");
        let err = bao.as_arca().run(args);
        assert_eq!(err.code, 2, "{}", err.describe());
        assert!(
            err.stderr.contains("Arca has no namespaces"),
            "{}",
            err.describe()
        );
    }
    both(&bao, &["namespace"]);
    // A namespace is refused by arca (bao sends it and the server ignores it).
    for flag in ["-namespace=team", "-ns=team"] {
        let err = bao.as_arca().run(&["read", flag, "sys/health"]);
        assert_eq!(err.code, 2, "{}", err.describe());
        assert!(
            err.stderr.contains("Arca has no namespaces"),
            "{}",
            err.describe()
        );
    }
    bao.as_arca()
        .run(&["read", "-namespace=root", "sys/health"])
        .ok();
    // -wrap-ttl: both wrap the answer; the wrapping tables have the same
    // keys and each token unwraps to what the other CLI unwrapped.
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    bao.run(&["kv", "put", "secret/w", "k=v"]).ok();
    for args in [
        &["write", "-wrap-ttl=1m", "sys/wrapping/wrap", "a=1"][..],
        &["kv", "get", "-wrap-ttl=1m", "secret/w"],
        &["token", "create", "-wrap-ttl=5m", "-policy=default"],
    ] {
        let (b, a) = both(&bao, args);
        assert_eq!(
            table_keys(&a),
            table_keys(&b),
            "{args:?}\nbao:\n{b}\narca:\n{a}"
        );
        assert!(table_keys(&a).iter().any(|k| k == "wrapping_token:"), "{a}");
        let mut json_args = args.to_vec();
        let at = json_args.iter().position(|a| a.starts_with('-')).unwrap();
        json_args.insert(at, "-format=json");
        let (b, a) = both(&bao, &json_args);
        let (jb, ja): (Value, Value) = (
            serde_json::from_str(&b).unwrap(),
            serde_json::from_str(&a).unwrap(),
        );
        let keys = |v: &Value| {
            v["wrap_info"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
        };
        assert_eq!(keys(&ja), keys(&jb), "{args:?}");
        let ub = bao.json(&[
            "unwrap",
            "-format=json",
            jb["wrap_info"]["token"].as_str().unwrap(),
        ]);
        let ua = bao.as_arca().json(&[
            "unwrap",
            "-format=json",
            ja["wrap_info"]["token"].as_str().unwrap(),
        ]);
        assert_eq!(ua["data"].is_null(), ub["data"].is_null(), "{ua} {ub}");
    }
    let (_, a) = both(&bao, &["read", "-wrap-ttl=1m", "sys/health"]);
    assert!(a.contains("wrapping_token:"), "{a}");
    let err = bao.as_arca().run(&["read", "-wrap-ttl=soon", "sys/health"]);
    assert_eq!(err.code, 1, "{}", err.describe());
}

#[test]
fn audit_family() {
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    // None yet: the same message and exit code.
    both(&bao, &["audit", "list"]);
    let dir = tempfile::tempdir().unwrap();
    let (fb, fa) = (dir.path().join("b.log"), dir.path().join("a.log"));
    let (b, a) = (
        bao.run(&[
            "audit",
            "enable",
            "-path=b",
            "-description=bao's",
            "file",
            &format!("file_path={}", fb.display()),
        ]),
        bao.as_arca().run(&[
            "audit",
            "enable",
            "-path=a",
            "-description=bao's",
            "file",
            &format!("file_path={}", fa.display()),
        ]),
    );
    assert_eq!(
        (a.code, b.code),
        (0, 0),
        "{}\n{}",
        b.describe(),
        a.describe()
    );
    assert_eq!(a.stdout.replace("a/", "b/"), b.stdout);
    let (b, a) = both(&bao, &["audit", "list", "-format=json"]);
    let (jb, ja): (Value, Value) = (
        serde_json::from_str(&b).unwrap(),
        serde_json::from_str(&a).unwrap(),
    );
    assert_eq!(ja, jb);
    let (b, a) = both(&bao, &["audit", "list"]);
    assert_eq!(a, b);
    let (b, a) = both(&bao, &["audit", "list", "-detailed"]);
    assert_eq!(a, b);
    // Both write what the other's requests did.
    assert!(fa.exists() && fb.exists());
    for args in [
        &["audit", "enable"][..],
        &[
            "audit",
            "enable",
            "-path=x",
            "file",
            "file_path=stdout",
            "prefix=p",
        ],
        &["audit", "disable"],
        &["audit", "nosuch"],
    ] {
        both(&bao, args);
    }
    let (b, a) = both(&bao, &["audit", "disable", "b/"]);
    assert_eq!(a, b);
    let (b, a) = both(&bao, &["audit", "disable", "a"]);
    assert_eq!(a, b);
}

/// Field names of a JSON object, sorted.
fn fields(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

#[test]
fn key_ceremony_family() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let bao = s.bao().with_token(&init.root_token);
    let arca = bao.as_arca();
    let status = ["operator", "rotate-keys", "-status", "-format=json"];

    // No rotation: the same status, the same table rows, the same refusal.
    let (b, a) = both_json(&bao, &status);
    assert_eq!(a, b);
    let (b, a) = both(&bao, &["operator", "rotate-keys", "-status"]);
    assert_eq!(table_keys(&a), table_keys(&b), "{b}\n{a}");
    both(
        &bao,
        &["operator", "rotate-keys", "-nonce=x", &init.keys_b64[0]],
    );

    // Started by arca, continued by both; each step shows the same status.
    let started = arca.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let (b, a) = both_json(&bao, &status);
    assert_eq!(a, b);
    assert_eq!(a, started, "the -init output is the status");
    let (b, a) = both(&bao, &["operator", "rotate-keys", "-status"]);
    assert_eq!(table_keys(&a), table_keys(&b), "{b}\n{a}");
    let nonce = format!("-nonce={}", started["nonce"].as_str().unwrap());
    let after_bao = bao.json(&[
        "operator",
        "rotate-keys",
        &nonce,
        "-format=json",
        &init.keys_b64[0],
    ]);
    let after_arca = arca.json(&[
        "operator",
        "rotate-keys",
        &nonce,
        "-format=json",
        &init.keys_b64[1],
    ]);
    assert_eq!(fields(&after_arca), fields(&after_bao));
    assert_eq!(after_arca["progress"], 2);
    // A wrong nonce: the same exit code (2).
    both(
        &bao,
        &["operator", "rotate-keys", "-nonce=wrong", &init.keys_b64[3]],
    );
    let done = arca.json(&[
        "operator",
        "rotate-keys",
        &nonce,
        "-format=json",
        &init.keys_b64[2],
    ]);
    assert_eq!(done["complete"], true, "{done}");
    let new_keys: Vec<String> = done["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    // The same rotation completed by bao prints the same fields.
    let st = bao.json(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let nonce = format!("-nonce={}", st["nonce"].as_str().unwrap());
    arca.run(&["operator", "rotate-keys", &nonce, &new_keys[0]])
        .ok();
    let done_bao = bao.json(&[
        "operator",
        "rotate-keys",
        &nonce,
        "-format=json",
        &new_keys[1],
    ]);
    assert_eq!(fields(&done_bao), fields(&done), "{done_bao}\n{done}");
    let keys: Vec<String> = done_bao["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    // Cancel by arca, seen by both.
    arca.run(&[
        "operator",
        "rotate-keys",
        "-init",
        "-key-shares=1",
        "-key-threshold=1",
    ])
    .ok();
    let (b, a) = both(&bao, &["operator", "rotate-keys", "-cancel"]);
    assert_eq!(a, b);
    let (b, a) = both_json(&bao, &status);
    assert_eq!((a.clone(), a["started"].clone()), (b, Value::Bool(false)));

    // generate-root: status, -init by arca, shares by both, decode by both.
    let gstatus = ["operator", "generate-root", "-status", "-format=json"];
    let (b, a) = both_json(&bao, &gstatus);
    assert_eq!(a, b);
    let g = arca.json(&["operator", "generate-root", "-init", "-format=json"]);
    let otp = g["otp"].as_str().unwrap().to_string();
    assert_eq!(otp.len(), 28, "{g}");
    let (b, a) = both_json(&bao, &gstatus);
    assert_eq!(a, b);
    assert_eq!(fields(&a), fields(&g));
    let (b, a) = both(&bao, &["operator", "generate-root", "-status"]);
    assert_eq!(table_keys(&a), table_keys(&b), "{b}\n{a}");
    let nonce = format!("-nonce={}", g["nonce"].as_str().unwrap());
    bao.run(&["operator", "generate-root", &nonce, &keys[0]])
        .ok();
    let done = arca.json(&[
        "operator",
        "generate-root",
        &nonce,
        "-format=json",
        &keys[2],
    ]);
    assert_eq!(done["complete"], true, "{done}");
    let enc = done["encoded_token"].as_str().unwrap().to_string();
    let decode = [
        "operator".to_string(),
        "generate-root".to_string(),
        format!("-decode={enc}"),
        format!("-otp={otp}"),
    ];
    let decode: Vec<&str> = decode.iter().map(String::as_str).collect();
    let token = same(&bao, &decode);
    assert!(token.starts_with("hvs."), "{token}");
    let mut json_decode = decode.clone();
    json_decode.push("-format=json");
    let (b, a) = both_json(&bao, &json_decode);
    assert_eq!(a, b);
    // -generate-otp: an OTP of the attempt's length from both.
    let (b, a) = both(&bao, &["operator", "generate-root", "-generate-otp"]);
    assert_eq!((a.trim().len(), b.trim().len()), (28, 28), "{b}\n{a}");
    // No attempt: the same refusal.
    both(&bao, &["operator", "generate-root", "-nonce=x", &keys[0]]);
}

#[test]
fn token_capabilities_family() {
    let s = Server::start();
    let init = s.init_and_unseal();
    let bao = s.bao().with_token(&init.root_token);
    let token = bao.token_with_policy(
        "caps",
        "path \"secret/data/app/*\" { capabilities = [\"read\", \"update\", \"list\"] }\n",
    );
    let limited = bao.with_token(&token);
    for who in [&bao, &limited] {
        for args in [
            vec!["token", "capabilities", "secret/data/app/x"],
            vec!["token", "capabilities", "secret/data/other"],
            vec!["token", "capabilities", "-format=json", "secret/data/app/x"],
        ] {
            same(who, &args);
        }
    }
    // Another token's capabilities, asked by root.
    same(
        &bao,
        &["token", "capabilities", &token, "secret/data/app/x"],
    );
    same(
        &bao,
        &[
            "token",
            "capabilities",
            "-format=json",
            &token,
            "sys/mounts",
        ],
    );
    // Missing path: the same usage error.
    both(&bao, &["token", "capabilities"]);
}
