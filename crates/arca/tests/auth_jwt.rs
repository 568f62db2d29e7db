//! The jwt auth method through real clients: a JWKS published by
//! python's `http.server` on loopback, tokens minted by PyJWT, and the
//! `bao` CLI: `bao auth enable jwt`, a config whose URL cannot be fetched
//! refused (and not stored), `config` with `jwks_url` and `bound_issuer`,
//! a role with a read-only policy and claim bindings, `auth/jwt/login`,
//! reads allowed and writes refused (403), each bad token refused with a
//! 400 that says why (alg none, expired, wrong audience, wrong issuer,
//! forged, unmatched bound claim), key rotation picked up by refetching
//! the JWKS, renewal needing the role. hvac's jwt methods on a second
//! mount.

mod common;

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    free_port, learning_path_setup, python_bin, run_python_ok, run_with_timeout, wait_until,
    write_file, Server,
};
use serde_json::{json, Value};

const READONLY: &str = r#"path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }"#;

const ISSUER: &str = "https://ci.example.test";

/// PyJWT: keeps its private keys in the work directory, publishes the
/// public ones as `jwks/jwks.json`, and mints tokens from a JSON spec.
const MINT: &str = r#"
import json, os, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

work, cmd, arg = sys.argv[1], sys.argv[2], sys.argv[3]
MAKERS = {
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
}

def key(name):
    path = os.path.join(work, name + ".key.pem")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    k = MAKERS[name.rstrip("0123456789").replace("rogue", "rsa")]()
    with open(path, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return k

if cmd == "publish":
    keys = []
    for name in arg.split(","):
        pub = key(name).public_key()
        algo = RSAAlgorithm if name.startswith("rsa") else ECAlgorithm
        jwk = json.loads(algo.to_jwk(pub))
        jwk.update({"kid": name, "use": "sig"})
        keys.append(jwk)
    os.makedirs(os.path.join(work, "jwks"), exist_ok=True)
    tmp = os.path.join(work, "jwks", "jwks.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"keys": keys}, f)
    os.replace(tmp, os.path.join(work, "jwks", "jwks.json"))
    print("published", arg)
elif cmd == "mint":
    now = int(time.time())
    out = {}
    for name, s in json.loads(arg).items():
        claims = {"iss": s.get("iss", "ISSUER"), "sub": "build-7", "aud": "arca",
                  "iat": now, "exp": now + 600, "team": "blue", "project": "org/app"}
        claims.update(s.get("claims", {}))
        for k, dt in s.get("rel", {}).items():
            claims[k] = now + dt
        for k in s.get("drop", []):
            claims.pop(k, None)
        if s["alg"] == "none":
            out[name] = jwt.encode(claims, None, algorithm="none")
        else:
            out[name] = jwt.encode(claims, key(s["key"]), algorithm=s["alg"],
                                   headers={"kid": s.get("kid", s["key"])})
    print(json.dumps(out))
"#;

/// Runs the PyJWT helper in `work`; returns its stdout.
fn mint_helper(work: &Path, cmd: &str, arg: &str) -> String {
    let script = write_file(work, "mint.py", &MINT.replace("ISSUER", ISSUER));
    let mut c = Command::new(python_bin());
    c.args([script.as_str(), &work.to_string_lossy(), cmd, arg])
        .current_dir(work);
    let (code, out, err) = run_with_timeout(c, work, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("cannot run python: {e}"));
    assert_eq!(
        code, 0,
        "PyJWT helper failed (pip install 'pyjwt[crypto]==2.10.1')\n{out}\n{err}"
    );
    out
}

fn publish(work: &Path, keys: &str) {
    mint_helper(work, "publish", keys);
}

fn mint(work: &Path, spec: Value) -> Value {
    serde_json::from_str(mint_helper(work, "mint", &spec.to_string()).trim()).unwrap()
}

/// `python3 -m http.server` serving `dir` on a loopback port; killed on
/// drop.
struct JwksServer {
    child: Child,
    url: String,
}

impl JwksServer {
    fn start(dir: &Path, log: PathBuf) -> JwksServer {
        let port = free_port();
        let child = Command::new(python_bin())
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("python3 -m http.server");
        let s = JwksServer {
            child,
            url: format!("http://127.0.0.1:{port}/jwks.json"),
        };
        wait_until("the JWKS server", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback URL nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", l.local_addr().unwrap());
    drop(l);
    url
}

#[test]
fn bao_jwt_login_with_a_jwks_read_only_role() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();
    let work = server.work_dir();
    publish(&work, "rsa1,ec1");
    let jwks = JwksServer::start(&work.join("jwks"), work.join("jwks-server.log"));

    learning_path_setup(&server, &init.root_token, "jwt", READONLY);

    // A key source that cannot be fetched is refused and not stored.
    let dead = dead_url();
    root.run(&["write", "auth/jwt/config", &format!("jwks_url={dead}")])
        .api_error(400, "error checking jwks_url");
    let (status, _) = server.http("GET", "/v1/auth/jwt/config", Some(&init.root_token), None);
    assert_eq!(status, 404, "a refused config is not stored");
    // So are the browser flow's settings, and two key sources at once.
    root.run(&[
        "write",
        "auth/jwt/config",
        &format!("jwks_url={}", jwks.url),
        "oidc_client_id=arca",
    ])
    .api_error(400, "not available yet");
    root.run(&[
        "write",
        "auth/jwt/config",
        &format!("jwks_url={}", jwks.url),
        &format!("oidc_discovery_url={ISSUER}"),
    ])
    .api_error(400, "exactly one of");

    root.run(&[
        "write",
        "auth/jwt/config",
        &format!("jwks_url={}", jwks.url),
        &format!("bound_issuer={ISSUER}"),
    ])
    .ok();
    let cfg = root.json(&["read", "-format=json", "auth/jwt/config"]);
    assert_eq!(cfg["data"]["jwks_url"], jwks.url.as_str(), "{cfg}");
    assert_eq!(cfg["data"]["bound_issuer"], ISSUER, "{cfg}");

    // Roles: the browser flow is refused.
    root.run(&[
        "write",
        "auth/jwt/role/other",
        "role_type=jwt",
        "bound_audiences=arca",
        "allowed_redirect_uris=http://localhost:8250/oidc/callback",
    ])
    .api_error(400, "not built");
    root.run(&["write", "auth/jwt/role/other", "bound_audiences=arca"])
        .api_error(400, "role_type");
    let bound = write_file(&work, "bound.json", r#"{"project": "org/*"}"#);
    root.run(&[
        "write",
        "auth/jwt/role/reader",
        "role_type=jwt",
        "bound_audiences=arca",
        "user_claim=sub",
        "bound_claims_type=glob",
        &format!("bound_claims=@{bound}"),
        "claim_mappings=team=team",
        "token_policies=readonly",
        "token_ttl=1h",
        "token_max_ttl=2h",
    ])
    .ok();
    let role = root.json(&["read", "-format=json", "auth/jwt/role/reader"]);
    assert_eq!(
        role["data"]["bound_claims"],
        json!({"project": "org/*"}),
        "{role}"
    );
    assert_eq!(
        role["data"]["claim_mappings"],
        json!({"team": "team"}),
        "{role}"
    );
    assert_eq!(role["data"]["expiration_leeway"], 150, "{role}");
    assert_eq!(
        root.json(&["list", "-format=json", "auth/jwt/role"]),
        json!(["reader"])
    );

    let t = mint(
        &work,
        json!({
            "rs256": {"key": "rsa1", "alg": "RS256"},
            "es256": {"key": "ec1", "alg": "ES256"},
            "none": {"alg": "none"},
            "expired": {"key": "rsa1", "alg": "RS256", "rel": {"iat": -7200, "exp": -3600}},
            "audience": {"key": "rsa1", "alg": "RS256", "claims": {"aud": "someone-else"}},
            "issuer": {"key": "rsa1", "alg": "RS256", "iss": "https://evil.example.test"},
            "forged": {"key": "rogue", "kid": "rsa1", "alg": "RS256"},
            "project": {"key": "ec1", "alg": "ES256", "claims": {"project": "elsewhere/app"}},
            "rotated": {"key": "rsa2", "alg": "PS256"},
            "unknown_kid": {"key": "rogue", "alg": "RS256"},
        }),
    );
    let tok = |name: &str| format!("jwt={}", t[name].as_str().unwrap());

    let login = anon.json(&[
        "write",
        "-format=json",
        "auth/jwt/login",
        "role=reader",
        &tok("rs256"),
    ]);
    let token = login["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        login["auth"]["policies"],
        json!(["default", "readonly"]),
        "{login}"
    );
    assert_eq!(login["auth"]["lease_duration"], 3600, "{login}");
    assert_eq!(login["auth"]["metadata"]["role"], "reader", "{login}");
    assert_eq!(login["auth"]["metadata"]["team"], "blue", "{login}");
    let reader = server.bao().with_token(&token);
    let me = reader.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["display_name"], "jwt-build-7", "{me}");
    assert_eq!(me["data"]["path"], "auth/jwt/login", "{me}");

    // Reads allowed, writes refused.
    let v = reader.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");
    reader
        .run(&["kv", "put", "secret/app", "password=mine"])
        .api_error(403, "permission denied");

    // ES256 from the same key set.
    anon.json(&[
        "write",
        "-format=json",
        "auth/jwt/login",
        "role=reader",
        &tok("es256"),
    ]);

    // Bad tokens: a 400 that says why.
    for (name, why) in [
        ("none", "unsigned"),
        ("expired", "expired"),
        ("audience", "bound_audiences"),
        ("issuer", "bound_issuer"),
        ("forged", "signature does not verify"),
        ("project", "\"project\" matches none"),
    ] {
        anon.run(&["write", "auth/jwt/login", "role=reader", &tok(name)])
            .api_error(400, why);
    }
    anon.run(&["write", "auth/jwt/login", "role=nobody", &tok("rs256")])
        .api_error(400, "could not be found");

    // Key rotation: a token naming a key id the cached set lacks makes the
    // server fetch the set again, and the new key verifies it.
    publish(&work, "rsa1,ec1,rsa2");
    let rotated = anon.json(&[
        "write",
        "-format=json",
        "auth/jwt/login",
        "role=reader",
        &tok("rotated"),
    ]);
    assert_eq!(rotated["auth"]["metadata"]["role"], "reader", "{rotated}");
    // A key id the set does not have is refused (and, fetched just now,
    // the set is not fetched again).
    anon.run(&[
        "write",
        "auth/jwt/login",
        "role=reader",
        &tok("unknown_kid"),
    ])
    .api_error(400, "no signing key has the token's key id \"rogue\"");

    // Renewal goes through the method; it stops when the role is deleted.
    let r = reader.json(&["token", "renew", "-format=json"]);
    assert!(r["auth"]["lease_duration"].as_u64().unwrap() > 3000, "{r}");
    root.run(&["delete", "auth/jwt/role/reader"]).ok();
    reader
        .run(&["token", "renew"])
        .api_error(400, "does not exist during renewal");

    // Only login is open without a token.
    anon.run(&[
        "write",
        "auth/jwt/config",
        &format!("jwks_url={}", jwks.url),
    ])
    .api_error(403, "permission denied");
    drop(jwks);
}

#[test]
fn hvac_jwt_methods() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let work = server.work_dir();
    publish(&work, "ec1");
    let jwks = JwksServer::start(&work.join("jwks"), work.join("jwks-server.log"));
    let t = mint(
        &work,
        json!({
            "good": {"key": "ec1", "alg": "ES256", "claims": {"sub": "deploy-bot"}},
            "expired": {
                "key": "ec1", "alg": "ES256", "claims": {"sub": "deploy-bot"},
                "rel": {"iat": -7200, "exp": -3600},
            },
        }),
    );
    let script = r#"
import sys, hvac
addr, root, jwks_url, issuer, good, expired = sys.argv[1:7]
c = hvac.Client(url=addr, token=root)
c.sys.enable_auth_method("jwt", path="ci")
c.auth.jwt.configure(jwks_url=jwks_url, bound_issuer=issuer, path="ci")
cfg = c.auth.jwt.read_config(path="ci")
assert cfg["data"]["jwks_url"] == jwks_url, cfg
c.auth.jwt.create_role(
    name="deployer", user_claim="sub", allowed_redirect_uris=[], role_type="jwt",
    bound_audiences=["arca"], bound_subject="deploy-bot", token_policies=["default"], path="ci",
)
r = c.auth.jwt.read_role("deployer", path="ci")
assert r["data"]["bound_subject"] == "deploy-bot", r
assert r["data"]["token_policies"] == ["default"], r
assert c.auth.jwt.list_roles(path="ci")["data"]["keys"] == ["deployer"]
b = hvac.Client(url=addr)
resp = b.auth.jwt.jwt_login(role="deployer", jwt=good, path="ci")
assert resp["auth"]["client_token"] and b.is_authenticated(), resp
assert resp["auth"]["metadata"]["role"] == "deployer", resp
try:
    hvac.Client(url=addr).auth.jwt.jwt_login(role="deployer", jwt=expired, path="ci")
    raise SystemExit("an expired token should be refused")
except hvac.exceptions.InvalidRequest as e:
    assert "expired" in str(e), e
c.auth.jwt.delete_role("deployer", path="ci")
try:
    hvac.Client(url=addr).auth.jwt.jwt_login(role="deployer", jwt=good, path="ci")
    raise SystemExit("a deleted role should be refused")
except hvac.exceptions.InvalidRequest as e:
    assert "could not be found" in str(e), e
print("hvac jwt: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[
            &server.addr,
            &init.root_token,
            &jwks.url,
            ISSUER,
            t["good"].as_str().unwrap(),
            t["expired"].as_str().unwrap(),
        ],
        "hvac jwt: ok",
    );
}

/// `groups_claim`: the groups a token names fill the external identity
/// groups whose alias (on this mount) has that name; a later login with
/// other groups takes the entity out again. The group's policies apply.
#[test]
fn jwt_groups_claim_fills_external_groups() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();
    let work = server.work_dir();
    publish(&work, "ec1");
    let jwks = JwksServer::start(&work.join("jwks"), work.join("jwks-server.log"));
    learning_path_setup(&server, &init.root_token, "jwt", READONLY);
    let accessor = root.json(&["auth", "list", "-format=json"])["jwt/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    root.run(&[
        "write",
        "auth/jwt/config",
        &format!("jwks_url={}", jwks.url),
        &format!("bound_issuer={ISSUER}"),
    ])
    .ok();
    root.run(&[
        "write",
        "auth/jwt/role/dev",
        "role_type=jwt",
        "bound_audiences=arca",
        "user_claim=sub",
        "groups_claim=groups",
        "token_policies=default",
    ])
    .ok();
    let role = root.json(&["read", "-format=json", "auth/jwt/role/dev"]);
    assert_eq!(role["data"]["groups_claim"], "groups", "{role}");
    let g = root.json(&[
        "write",
        "-format=json",
        "identity/group",
        "name=devs",
        "type=external",
        "policies=readonly",
    ]);
    let gid = g["data"]["id"].as_str().unwrap().to_string();
    root.run(&[
        "write",
        "identity/group-alias",
        "name=dev",
        &format!("mount_accessor={accessor}"),
        &format!("canonical_id={gid}"),
    ])
    .ok();
    let t = mint(
        &work,
        json!({
            "in": {"key": "ec1", "alg": "ES256", "claims": {"sub": "u1", "groups": ["dev", "other"]}},
            "out": {"key": "ec1", "alg": "ES256", "claims": {"sub": "u1", "groups": "other"}},
            "bad": {"key": "ec1", "alg": "ES256", "claims": {"sub": "u1", "groups": 7}},
            "none": {"key": "ec1", "alg": "ES256", "claims": {"sub": "u1"}},
        }),
    );
    let jwt = |k: &str| format!("jwt={}", t[k].as_str().unwrap());
    let l = anon.json(&[
        "write",
        "-format=json",
        "auth/jwt/login",
        "role=dev",
        &jwt("in"),
    ]);
    let eid = l["auth"]["entity_id"].as_str().unwrap().to_string();
    assert_eq!(l["auth"]["identity_policies"], json!(["readonly"]), "{l}");
    let token = l["auth"]["client_token"].as_str().unwrap().to_string();
    let user = server.bao().with_token(&token);
    user.run(&["kv", "get", "secret/app"]).ok();
    let gr = root.json(&["read", "-format=json", &format!("identity/group/id/{gid}")]);
    assert_eq!(gr["data"]["member_entity_ids"], json!([eid]), "{gr}");
    let e = root.json(&["read", "-format=json", &format!("identity/entity/id/{eid}")]);
    assert_eq!(e["data"]["aliases"][0]["name"], "u1", "{e}");
    assert_eq!(e["data"]["aliases"][0]["metadata"]["role"], "dev", "{e}");

    // Not in the group any more: the next login takes the entity out, and
    // the earlier token loses the group's policy with it.
    let l = anon.json(&[
        "write",
        "-format=json",
        "auth/jwt/login",
        "role=dev",
        &jwt("out"),
    ]);
    assert_eq!(l["auth"]["entity_id"], eid.as_str(), "{l}");
    assert!(l["auth"]["identity_policies"].is_null(), "{l}");
    let gr = root.json(&["read", "-format=json", &format!("identity/group/id/{gid}")]);
    assert_eq!(gr["data"]["member_entity_ids"], json!([]), "{gr}");
    user.run(&["kv", "get", "secret/app"])
        .api_error(403, "permission denied");

    // A groups claim that is not strings, or missing, is refused.
    anon.run(&["write", "auth/jwt/login", "role=dev", &jwt("bad")])
        .api_error(400, "not a string or a list");
    anon.run(&["write", "auth/jwt/login", "role=dev", &jwt("none")])
        .api_error(400, "claim not found");
}
