//! The LDAP auth method against a real OpenLDAP `slapd`, started by the
//! test on a free loopback port (mdb database `dc=example,dc=com` loaded
//! with `slapadd`: people with passwords, a `groupOfNames` and a
//! `posixGroup`), driven with the real `bao` CLI and hvac: `bao auth
//! enable ldap`, an unreachable server at login time, the real config,
//! group policies, logins with `bao write auth/ldap/login/:user` (the
//! OpenBao CLI has no `login -method=ldap`), reads allowed and writes
//! refused, a wrong password and an unknown user answered alike,
//! usernames with LDAP filter characters refused, an empty password
//! refused, `users/` policies, and renewal refused once the user has left
//! the LDAP group (changed with `ldapmodify`).
//!
//! `slapd` and `ldap-utils` are required (`deploy/install-deps.sh test`):
//! a missing one fails the test with an install hint, it never skips.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    ca_issued_cert, free_port, learning_path_setup, run_python_ok, self_signed_cert, wait_until,
    Server,
};
use serde_json::json;

const READONLY: &str = r#"path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }"#;

const SUFFIX: &str = "dc=example,dc=com";
const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
const ROOT_PW: &str = "slapd-root-secret";
const PEOPLE: &str = "ou=people,dc=example,dc=com";
const GROUPS: &str = "ou=groups,dc=example,dc=com";

const DATA: &str = "\
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
userPassword: alice-pw

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
userPassword: bob-pw

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol Danvers
sn: Danvers
userPassword: carol-pw

dn: cn=devs,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,dc=example,dc=com
member: uid=carol,ou=people,dc=example,dc=com

dn: cn=testers,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: testers
member: uid=alice,ou=people,dc=example,dc=com

dn: cn=ops,ou=groups,dc=example,dc=com
objectClass: posixGroup
cn: ops
gidNumber: 5000
memberUid: bob
";

/// An OpenLDAP server binary: `/usr/sbin/NAME` (not on a non-root
/// user's PATH) or `NAME` from PATH.
fn sbin(name: &str) -> String {
    let p = format!("/usr/sbin/{name}");
    if Path::new(&p).exists() {
        p
    } else {
        name.to_string()
    }
}

#[track_caller]
fn run_ok(mut c: Command, what: &str) -> String {
    let out = c.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {what} ({e}): the LDAP tests need OpenLDAP's slapd and ldap-utils \
             (deploy/install-deps.sh test, or apt-get install slapd ldap-utils)"
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

/// A `slapd` process with its own configuration and database in a
/// temporary directory. Killed on drop.
struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    /// Listening only when started with TLS.
    ldaps_url: String,
}

impl Slapd {
    /// A plain `ldap://` server.
    fn start() -> Slapd {
        Self::start_with(false)
    }

    /// With `tls`, also an `ldaps://` listener and StartTLS, with a server
    /// certificate for 127.0.0.1 issued by `ca.pem` in [`Slapd::dir`].
    fn start_with(tls: bool) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("db")).unwrap();
        let tls_conf = if tls {
            self_signed_cert(d, "ca", "/CN=LDAP Test CA");
            ca_issued_cert(
                d,
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            );
            format!(
                "TLSCACertificateFile {dir}/ca.pem\nTLSCertificateFile {dir}/server.pem\nTLSCertificateKeyFile {dir}/server.key\n",
                dir = d.display()
            )
        } else {
            String::new()
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
{tls_conf}database mdb
maxsize 16777216
suffix \"{SUFFIX}\"
rootdn \"{ROOT_DN}\"
rootpw {ROOT_PW}
directory {dir}/db
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by * read
",
            dir = d.display()
        );
        fs::write(d.join("slapd.conf"), conf).unwrap();
        fs::write(d.join("data.ldif"), DATA).unwrap();
        let conf = d.join("slapd.conf");
        let mut add = Command::new(sbin("slapadd"));
        add.arg("-f").arg(&conf).arg("-l").arg(d.join("data.ldif"));
        run_ok(add, "slapadd");

        let port = free_port();
        let tls_port = (0..100)
            .map(|_| free_port())
            .find(|p| *p != port && *p != port + 1)
            .unwrap();
        let url = format!("ldap://127.0.0.1:{port}");
        let ldaps_url = format!("ldaps://127.0.0.1:{tls_port}");
        let mut listeners = format!("{url}/");
        if tls {
            listeners.push_str(&format!(" {ldaps_url}/"));
        }
        let log = fs::File::create(d.join("slapd.log")).unwrap();
        // `-d` keeps slapd in the foreground, so the guard owns it.
        let child = Command::new(sbin("slapd"))
            .arg("-f")
            .arg(&conf)
            .args(["-h", &listeners, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start slapd ({e}): apt-get install slapd ldap-utils")
            });
        let mut s = Slapd {
            child,
            dir,
            url,
            ldaps_url,
        };
        wait_until("slapd to answer", Duration::from_secs(30), || {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("slapd exited ({status}):\n{}", s.log());
            }
            Command::new("ldapwhoami")
                .args(["-x", "-H", &s.url, "-D", ROOT_DN, "-w", ROOT_PW])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run ldapwhoami ({e}): apt-get install ldap-utils")
                })
                .status
                .success()
        });
        s
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Applies an LDIF change as the root DN (`ldapmodify`).
    fn modify(&self, ldif: &str) {
        let p: PathBuf = self.dir.path().join("change.ldif");
        fs::write(&p, ldif).unwrap();
        let mut c = Command::new("ldapmodify");
        c.args(["-x", "-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW, "-f"])
            .arg(&p);
        run_ok(c, "ldapmodify");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback URL nothing listens on.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ldap://127.0.0.1:{}", l.local_addr().unwrap().port())
}

#[test]
fn bao_ldap_login_against_slapd() {
    let slapd = Slapd::start();
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();
    learning_path_setup(&server, &init.root_token, "ldap", READONLY);

    // OpenBao's CLI (2.7) has no `login -method=ldap` handler ("Unknown
    // auth method: ldap"): logins go through `bao write` on the login path,
    // as its docs say for methods only available through the HTTP API.
    let login = |user: &str, pass: &str| {
        anon.run(&[
            "write",
            "-format=json",
            &format!("auth/ldap/login/{user}"),
            &format!("password={pass}"),
        ])
    };

    // A server that cannot be reached: the config is accepted, a login
    // then fails saying why.
    let unreachable = closed_url();
    root.run(&[
        "write",
        "auth/ldap/config",
        &format!("url={unreachable}"),
        &format!("userdn={PEOPLE}"),
        "userattr=uid",
    ])
    .ok();
    login("alice", "alice-pw").api_error(400, "failed to connect to LDAP server");

    // The real directory, searched as the admin.
    root.run(&[
        "write",
        "auth/ldap/config",
        &format!("url={},{}", unreachable, slapd.url),
        &format!("userdn={PEOPLE}"),
        &format!("groupdn={GROUPS}"),
        &format!("binddn={ROOT_DN}"),
        &format!("bindpass={ROOT_PW}"),
        "userattr=uid",
        "request_timeout=30s",
    ])
    .ok();
    let cfg = root.json(&["read", "-format=json", "auth/ldap/config"]);
    assert_eq!(cfg["data"]["binddn"], ROOT_DN, "{cfg}");
    assert_eq!(cfg["data"]["groupattr"], "cn", "{cfg}");
    assert_eq!(cfg["data"]["request_timeout"], 30, "{cfg}");
    assert!(cfg["data"].get("bindpass").is_none(), "{cfg}");
    assert!(!cfg.to_string().contains(ROOT_PW), "{cfg}");
    // Settings that are not built are refused, not ignored.
    root.run(&["write", "auth/ldap/config", "use_token_groups=true"])
        .api_error(400, "not available");

    root.run(&["write", "auth/ldap/groups/devs", "policies=readonly"])
        .ok();
    let l = root.json(&["list", "-format=json", "auth/ldap/groups"]);
    assert_eq!(l, json!(["devs"]));

    // alice is in the groupOfNames `devs` (member: her DN).
    let out = login("alice", "alice-pw").ok().json();
    let token = out["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        out["auth"]["policies"],
        json!(["default", "readonly"]),
        "{out}"
    );
    assert_eq!(out["auth"]["metadata"]["username"], "alice", "{out}");
    let alice = server.bao().with_token(&token);
    let me = alice.json(&["token", "lookup", "-format=json"]);
    assert_eq!(me["data"]["display_name"], "ldap-alice", "{me}");
    let v = alice.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");
    alice
        .run(&["kv", "put", "secret/app", "password=mine"])
        .api_error(403, "permission denied");

    // A wrong password and an unknown user: the same answer.
    login("alice", "wrong").api_error(400, "failed to bind as user");
    login("nobody", "alice-pw").api_error(400, "failed to bind as user");
    // LDAP filter characters in a username are refused before any search.
    for name in ["*", "alice)(uid=*", "*)(|(uid=*"] {
        login(name, "alice-pw").api_error(400, "LDAP filter characters");
    }
    // An empty password is refused (no unauthenticated bind).
    let (status, body) = server.http(
        "POST",
        "/v1/auth/ldap/login/alice",
        None,
        Some(&json!({"password": ""})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("zero length"), "{body}");

    // bob is in the posixGroup `ops` (memberUid): no policy until the
    // group has one; his users/ entry adds his own.
    let out = login("bob", "bob-pw").ok().json();
    assert_eq!(out["auth"]["policies"], json!(["default"]), "{out}");
    root.run(&["write", "auth/ldap/groups/ops", "policies=readonly"])
        .ok();
    root.run(&["write", "auth/ldap/users/Bob", "policies=extra"])
        .ok();
    let u = root.json(&["read", "-format=json", "auth/ldap/users/bob"]);
    assert_eq!(u["data"]["policies"], json!(["extra"]), "{u}");
    let out = login("BOB", "bob-pw").ok().json();
    assert_eq!(
        out["auth"]["policies"],
        json!(["default", "extra", "readonly"]),
        "{out}"
    );
    assert_eq!(out["auth"]["metadata"]["username"], "bob", "{out}");

    // Renewal asks the directory again: fine while alice is in `devs`,
    // refused once she has left it.
    let r = alice.json(&["token", "renew", "-format=json"]);
    assert!(r["auth"]["lease_duration"].as_u64().unwrap() > 0, "{r}");
    slapd.modify(
        "dn: cn=devs,ou=groups,dc=example,dc=com
changetype: modify
delete: member
member: uid=alice,ou=people,dc=example,dc=com
",
    );
    alice
        .run(&["token", "renew"])
        .api_error(400, "policies have changed");
    let out = login("alice", "alice-pw").ok().json();
    assert_eq!(out["auth"]["policies"], json!(["default"]), "{out}");
    // carol is still in `devs`.
    let out = login("carol", "carol-pw").ok().json();
    assert_eq!(
        out["auth"]["policies"],
        json!(["default", "readonly"]),
        "{out}"
    );
}

#[test]
fn hvac_ldap_login_against_slapd() {
    let slapd = Slapd::start();
    let server = Server::start();
    let init = server.init_and_unseal();
    let script = r#"
import sys, hvac
addr, root, url, userdn, groupdn, binddn, bindpass = sys.argv[1:8]
c = hvac.Client(url=addr, token=root)
c.sys.enable_auth_method("ldap", path="corp")
c.auth.ldap.configure(url=url, userdn=userdn, groupdn=groupdn, binddn=binddn,
                      bindpass=bindpass, userattr="uid", mount_point="corp")
cfg = c.auth.ldap.read_configuration(mount_point="corp")["data"]
assert cfg["userattr"] == "uid" and "bindpass" not in cfg, cfg
c.auth.ldap.create_or_update_group("devs", policies=["dev-policy"], mount_point="corp")
b = hvac.Client(url=addr)
r = b.auth.ldap.login(username="carol", password="carol-pw", mount_point="corp")
assert "dev-policy" in r["auth"]["policies"], r
assert r["auth"]["metadata"]["username"] == "carol", r
assert b.is_authenticated()
try:
    hvac.Client(url=addr).auth.ldap.login(username="carol", password="nope", mount_point="corp")
    raise SystemExit("a wrong password should be refused")
except hvac.exceptions.InvalidRequest as e:
    assert "failed to bind as user" in str(e), e
try:
    hvac.Client(url=addr).auth.ldap.login(username="car*", password="carol-pw", mount_point="corp")
    raise SystemExit("a wildcard username should be refused")
except hvac.exceptions.InvalidRequest as e:
    assert "LDAP filter characters" in str(e), e
print("hvac ldap: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[
            &server.addr,
            &init.root_token,
            &slapd.url,
            PEOPLE,
            GROUPS,
            ROOT_DN,
            ROOT_PW,
        ],
        "hvac ldap: ok",
    );
}

#[test]
fn bao_ldap_login_over_starttls_and_ldaps() {
    let slapd = Slapd::start_with(true);
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);
    let anon = server.bao().without_token();
    root.run(&["auth", "enable", "ldap"]).ok();
    root.run(&["write", "auth/ldap/groups/devs", "policies=dev"])
        .ok();
    let ca = format!("certificate=@{}", slapd.dir().join("ca.pem").display());
    let login = || {
        anon.run(&[
            "write",
            "-format=json",
            "auth/ldap/login/alice",
            "password=alice-pw",
        ])
    };
    let base = [
        format!("userdn={PEOPLE}"),
        format!("groupdn={GROUPS}"),
        format!("binddn={ROOT_DN}"),
        format!("bindpass={ROOT_PW}"),
        "userattr=uid".to_string(),
    ];
    let configure = |extra: &[&str]| {
        let mut args: Vec<&str> = vec!["write", "auth/ldap/config"];
        args.extend(base.iter().map(String::as_str));
        args.extend(extra);
        root.run(&args)
    };

    // StartTLS on ldap://, the server verified against its CA.
    let url = format!("url={}", slapd.url);
    configure(&[url.as_str(), "starttls=true", ca.as_str()]).ok();
    let out = login().ok().json();
    assert_eq!(out["auth"]["policies"], json!(["default", "dev"]), "{out}");

    // ldaps://, TLS 1.3 only.
    let url = format!("url={}", slapd.ldaps_url);
    configure(&[
        url.as_str(),
        "starttls=false",
        "tls_max_version=tls13",
        "tls_min_version=tls13",
    ])
    .ok();
    let out = login().ok().json();
    assert_eq!(out["auth"]["policies"], json!(["default", "dev"]), "{out}");

    // A CA that did not issue the server's certificate: no login, and the
    // error says the connection failed (not that the password was wrong).
    let dir = slapd.dir();
    self_signed_cert(dir, "rogue", "/CN=Rogue CA");
    let rogue = format!("certificate=@{}", dir.join("rogue.pem").display());
    configure(&[rogue.as_str()]).ok();
    let out = login().api_error(400, "failed to connect to LDAP server");
    let all = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(all.contains("certificate"), "{}", out.describe());

    // insecure_tls (Vault's option): the certificate is not checked.
    configure(&["insecure_tls=true"]).ok();
    login().ok();
    let cfg = root.json(&["read", "-format=json", "auth/ldap/config"]);
    assert_eq!(cfg["data"]["insecure_tls"], true, "{cfg}");

    // Paged group searches, one group per page, find both of alice's
    // groups; her LDAP groups fill the external identity group whose
    // alias names one of them, and her entity's alias is her uid.
    configure(&["insecure_tls=false", ca.as_str(), "max_page_size=1"]).ok();
    root.run(&["write", "auth/ldap/groups/testers", "policies=qa"])
        .ok();
    let accessor = root.json(&["auth", "list", "-format=json"])["ldap/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let g = root.json(&[
        "write",
        "-format=json",
        "identity/group",
        "name=testers-ext",
        "type=external",
        "policies=ext",
    ]);
    let gid = g["data"]["id"].as_str().unwrap().to_string();
    root.run(&[
        "write",
        "identity/group-alias",
        "name=testers",
        &format!("mount_accessor={accessor}"),
        &format!("canonical_id={gid}"),
    ])
    .ok();
    let out = login().ok().json();
    assert_eq!(
        out["auth"]["token_policies"],
        json!(["default", "dev", "qa"]),
        "{out}"
    );
    assert_eq!(out["auth"]["identity_policies"], json!(["ext"]), "{out}");
    let e = root.json(&[
        "write",
        "-format=json",
        "identity/lookup/entity",
        "alias_name=alice",
        &format!("alias_mount_accessor={accessor}"),
    ]);
    assert_eq!(e["data"]["id"], out["auth"]["entity_id"], "{e}");
    assert_eq!(e["data"]["group_ids"], json!([gid]), "{e}");
}
