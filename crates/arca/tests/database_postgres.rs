//! The database secrets engine (`postgresql-database-plugin`) against a
//! real PostgreSQL cluster started by the test (`arca_testdb::postgres`), driven
//! with the real `bao` CLI along Vault's learning path: `bao secrets enable
//! database`, a templated `connection_url` with the superuser's credentials
//! (never shown back), a `readonly` role with the tutorial's creation
//! statements, `bao read database/creds/readonly` and a `psql` login as the
//! new user (SELECT works, INSERT is denied), `bao lease renew` (moves the
//! role's `VALID UNTIL`), `bao lease revoke` (drops the role). Refusals: a
//! wrong superuser password (verify_connection), a role the connection does
//! not allow, a failing creation statement (nothing left behind). Clean-up
//! without a client: revoking the token that obtained the credentials, and
//! a lease that expires (the expiration manager ticks; 60 s is allowed).
//! With `password_authentication=scram-sha-256` PostgreSQL only ever sees
//! a SCRAM verifier (checked in its statement log).
//!
//! PostgreSQL's server binaries are required (`deploy/install-deps.sh
//! test`): a missing `initdb` fails the test with an install hint.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arca_testdb::postgres::Postgres;
use common::database::{read_creds, write_role};
use common::{wait_until, Bao, Out, Server};
use serde_json::Value;

/// Vault's tutorial statements for a read-only role.
const READONLY_SQL: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' \
VALID UNTIL '{{expiration}}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";\n";

/// How long clean-up without a client may take (the expiration manager
/// ticks every second; this only ends a test that would otherwise hang).
const CLEANUP_BOUND: Duration = Duration::from_secs(60);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A server (initialised, unsealed), a PostgreSQL cluster with a
/// `products` table, and the root token; the `database/` mount is enabled.
fn setup() -> (Server, Postgres, String) {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO products VALUES (1, 'widget'), (2, 'gadget');",
    );
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["secrets", "enable", "database"]).ok();
    let mounts = bao.json(&["secrets", "list", "-format=json"]);
    assert_eq!(mounts["database/"]["type"], "database", "{mounts}");
    (server, pg, root)
}

/// `bao write database/config/NAME` for `pg` with the superuser and
/// `password`, plus `extra` arguments.
fn write_config(bao: &Bao, pg: &Postgres, name: &str, password: &str, extra: &[&str]) -> Out {
    let url = format!("connection_url={}", pg.connection_url_template());
    let user = format!("username={}", pg.superuser);
    let pw = format!("password={password}");
    let path = format!("database/config/{name}");
    let mut args = vec![
        "write",
        path.as_str(),
        "plugin_name=postgresql-database-plugin",
        url.as_str(),
        user.as_str(),
        pw.as_str(),
    ];
    args.extend_from_slice(extra);
    bao.run(&args)
}

/// The status code in a failed `bao` command's output (`Code: NNN`).
fn api_status(out: &Out) -> Option<u16> {
    let all = format!("{}\n{}", out.stdout, out.stderr);
    let at = all.find("Code: ")?;
    all[at + 6..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

#[test]
fn harness_starts_postgres_and_checks_logins() {
    let pg = Postgres::start();
    assert_eq!(pg.psql("SELECT 1"), "1");
    assert!(pg.role_exists("postgres"));
    assert!(!pg.role_exists("nobody-here"));
    // The superuser logs in over TCP with its password (scram-sha-256)...
    let ok = pg.psql_as("postgres", &pg.password, "SELECT current_user");
    assert!(ok.ok, "{}", ok.text());
    assert_eq!(ok.stdout.trim(), "postgres");
    // ...and not with another one.
    let bad = pg.psql_as("postgres", "wrong", "SELECT 1");
    assert!(!bad.ok);
    assert!(
        bad.text().contains("password authentication failed"),
        "{}",
        bad.text()
    );
    // A login role with an expiry, as the engine creates them.
    pg.psql("CREATE ROLE \"t-1\" WITH LOGIN PASSWORD 'pw-1' VALID UNTIL '2100-01-01 00:00:00+00'");
    assert_eq!(pg.role_valid_until("t-1"), Some(4102444800));
    assert_eq!(pg.roles_with_prefix("t-"), vec!["t-1".to_string()]);
    let t = pg.psql_as("t-1", "pw-1", "SELECT current_user");
    assert!(t.ok && t.stdout.trim() == "t-1", "{}", t.text());
    let err = pg.psql_status("SELECT * FROM no_such_table");
    assert!(!err.ok && err.text().contains("does not exist"), "{err:?}");
}

#[test]
fn bao_database_learning_path_postgres() {
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);

    write_config(&bao, &pg, "pg", &pg.password, &["allowed_roles=readonly"]).ok();

    // The configuration reads back without the password.
    let out = bao
        .run(&["read", "-format=json", "database/config/pg"])
        .ok();
    assert!(
        !out.stdout.contains(&pg.password),
        "the superuser password is shown: {}",
        out.stdout
    );
    let cfg = out.json();
    let data = &cfg["data"];
    assert_eq!(data["plugin_name"], "postgresql-database-plugin", "{cfg}");
    assert_eq!(
        data["allowed_roles"],
        serde_json::json!(["readonly"]),
        "{cfg}"
    );
    let details = &data["connection_details"];
    assert_eq!(
        details["connection_url"],
        pg.connection_url_template(),
        "{cfg}"
    );
    assert_eq!(details["username"], "postgres", "{cfg}");
    assert!(details.get("password").is_none(), "{cfg}");
    assert_eq!(data["verify_connection"], true, "{cfg}");
    let list = bao.json(&["list", "-format=json", "database/config"]);
    assert_eq!(list, serde_json::json!(["pg"]), "{list}");

    write_role(
        &bao,
        "readonly",
        "pg",
        READONLY_SQL,
        &["default_ttl=1h", "max_ttl=24h"],
    )
    .ok();
    let role = bao.json(&["read", "-format=json", "database/roles/readonly"]);
    let rd = &role["data"];
    assert_eq!(rd["db_name"], "pg", "{role}");
    assert_eq!(rd["default_ttl"], 3600, "{role}");
    assert_eq!(rd["max_ttl"], 86400, "{role}");
    let stmts: String = rd["creation_statements"]
        .as_array()
        .unwrap_or_else(|| panic!("creation_statements is not a list: {role}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(";");
    assert!(
        stmts.contains("CREATE ROLE \"{{name}}\"") && stmts.contains("GRANT SELECT"),
        "{role}"
    );
    let roles = bao.json(&["list", "-format=json", "database/roles"]);
    assert_eq!(roles, serde_json::json!(["readonly"]), "{roles}");

    // Dynamic credentials with a renewable lease.
    let before = now();
    let c = read_creds(&bao, "readonly");
    assert!(
        c.lease_id.starts_with("database/creds/readonly/"),
        "{}",
        c.lease_id
    );
    assert!(
        (3500..=3600).contains(&c.lease_duration),
        "{}",
        c.lease_duration
    );
    assert!(c.renewable, "database credentials are renewable");
    // Vault's default username template: v-<display name>-<role>-<random>-<time>.
    assert!(
        c.username.starts_with("v-") && c.username.contains("readonly"),
        "{}",
        c.username
    );
    assert!(
        c.username.len() <= 63,
        "PostgreSQL's identifier limit: {}",
        c.username
    );
    assert!(
        pg.role_exists(&c.username),
        "{} not in pg_roles",
        c.username
    );
    let until = pg
        .role_valid_until(&c.username)
        .expect("the role has a VALID UNTIL");
    assert!(
        until >= before + 3500 && until <= now() + 3700,
        "VALID UNTIL {until} is not about an hour from {before}"
    );

    // The new user reads, and may not write.
    let sel = pg.psql_as(
        &c.username,
        &c.password,
        "SELECT name FROM products ORDER BY id",
    );
    assert!(sel.ok, "SELECT as {}: {}", c.username, sel.text());
    assert_eq!(sel.stdout.trim(), "widget\ngadget");
    let ins = pg.psql_as(
        &c.username,
        &c.password,
        "INSERT INTO products VALUES (3, 'gizmo')",
    );
    assert!(!ins.ok, "INSERT as a read-only user succeeded");
    assert!(ins.text().contains("permission denied"), "{}", ins.text());

    // The lease looks up, renews, and the role's VALID UNTIL follows.
    let look = bao.json(&["lease", "lookup", "-format=json", &c.lease_id]);
    assert_eq!(look["data"]["id"], c.lease_id.as_str(), "{look}");
    assert_eq!(look["data"]["renewable"], true, "{look}");
    let renewed = bao.json(&[
        "lease",
        "renew",
        "-format=json",
        "-increment=2h",
        &c.lease_id,
    ]);
    assert_eq!(renewed["lease_id"], c.lease_id.as_str(), "{renewed}");
    let dur = renewed["lease_duration"].as_i64().unwrap_or(0);
    assert!((7000..=7200).contains(&dur), "{renewed}");
    let until2 = pg.role_valid_until(&c.username).expect("VALID UNTIL");
    assert!(
        until2 >= until + 3000,
        "renewing by 2h did not move VALID UNTIL: {until} -> {until2}"
    );
    let again = pg.psql_as(&c.username, &c.password, "SELECT count(*) FROM products");
    assert!(again.ok, "{}", again.text());

    // database/reset closes the connections and keeps the configuration.
    bao.run(&["write", "-f", "database/reset/pg"]).ok();
    let c2 = read_creds(&bao, "readonly");
    assert!(pg.role_exists(&c2.username));
    assert_ne!(c2.username, c.username);
    assert_ne!(c2.password, c.password);

    // Revoking the lease drops the role: the login fails.
    // `bao lease revoke` queues the revocation (sync=false): done at once
    // by the expiration manager, not before the CLI returns.
    bao.run(&["lease", "revoke", &c.lease_id]).ok();
    wait_until("the revoked user dropped", CLEANUP_BOUND, || {
        !pg.role_exists(&c.username)
    });
    let gone = pg.psql_as(&c.username, &c.password, "SELECT 1");
    assert!(!gone.ok, "login as a revoked user succeeded");
    assert!(
        gone.text().contains("password authentication failed"),
        "{}",
        gone.text()
    );
    bao.run(&["lease", "lookup", &c.lease_id]).code(2);
    // The other credentials are untouched.
    assert!(pg.role_exists(&c2.username));
    let other = pg.psql_as(&c2.username, &c2.password, "SELECT count(*) FROM products");
    assert!(other.ok && other.stdout.trim() == "2", "{}", other.text());

    // Unknown roles are refused (Vault: 400 "unknown role: NAME").
    bao.run(&["read", "database/creds/nope"])
        .api_error(400, "unknown role");

    // No password reaches the server's log.
    let log = server.log();
    for secret in [&pg.password, &c.password, &c2.password] {
        assert!(
            !log.contains(secret.as_str()),
            "a password in the server log"
        );
    }
}

/// `password_authentication=scram-sha-256`: the engine sends PostgreSQL a
/// SCRAM verifier, never the password (statements logged by the server
/// show no plaintext), and the user logs in with the password.
#[test]
fn scram_password_authentication_keeps_passwords_out_of_postgres() {
    let (server, pg, root) = setup();
    pg.psql("ALTER SYSTEM SET log_statement = 'all'");
    pg.psql("SELECT pg_reload_conf()");
    let bao = server.bao().with_token(&root);
    write_config(
        &bao,
        &pg,
        "pg",
        &pg.password,
        &[
            "allowed_roles=readonly",
            "password_authentication=scram-sha-256",
        ],
    )
    .ok();
    write_role(&bao, "readonly", "pg", READONLY_SQL, &["default_ttl=1h"]).ok();
    let c = read_creds(&bao, "readonly");
    let hash = pg.psql(&format!(
        "SELECT rolpassword FROM pg_authid WHERE rolname = {}",
        arca_testdb::postgres::quote_literal(&c.username)
    ));
    assert!(hash.starts_with("SCRAM-SHA-256$"), "{hash}");
    let sel = pg.psql_as(&c.username, &c.password, "SELECT count(*) FROM products");
    assert!(sel.ok && sel.stdout.trim() == "2", "{}", sel.text());
    let log = pg.log();
    assert!(
        log.contains(&c.username),
        "log_statement=all did not log the CREATE ROLE:\n{log}"
    );
    assert!(
        !log.contains(&c.password),
        "the plaintext password reached PostgreSQL's statement log"
    );
    bao.run(&["lease", "revoke", &c.lease_id]).ok();
    wait_until("the revoked user dropped", CLEANUP_BOUND, || {
        !pg.role_exists(&c.username)
    });
}

#[test]
fn database_refusals_leave_nothing_behind() {
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);

    // A wrong superuser password: refused while verifying the connection
    // (verify_connection defaults to true), and not stored.
    let out = write_config(&bao, &pg, "bad", "not-the-password", &["allowed_roles=*"])
        .api_error(400, "password authentication failed");
    println!("wrong password as shown by bao:\n{}", out.stderr.trim());
    let (status, body) = server.http("GET", "/v1/database/config/bad", Some(&root), None);
    assert_eq!(status, 404, "a refused configuration was stored: {body}");

    // With verify_connection=false it is stored as given (Vault's
    // behaviour), and reads back without the password.
    write_config(
        &bao,
        &pg,
        "lazy",
        "not-the-password",
        &["verify_connection=false", "allowed_roles=*"],
    )
    .ok();
    let lazy = bao
        .run(&["read", "-format=json", "database/config/lazy"])
        .ok();
    assert!(!lazy.stdout.contains("not-the-password"), "{}", lazy.stdout);
    assert_eq!(
        lazy.json()["data"]["verify_connection"],
        false,
        "{}",
        lazy.stdout
    );
    bao.run(&["delete", "database/config/lazy"]).ok();
    let (status, _) = server.http("GET", "/v1/database/config/lazy", Some(&root), None);
    assert_eq!(status, 404, "deleted configuration still readable");

    write_config(
        &bao,
        &pg,
        "pg",
        &pg.password,
        &["allowed_roles=readonly,broken,typo"],
    )
    .ok();
    let list = bao.json(&["list", "-format=json", "database/config"]);
    assert_eq!(list, serde_json::json!(["pg"]), "{list}");
    let roles_before = pg.roles_with_prefix("");

    // A role the connection does not allow: refused when credentials are
    // asked for. (Vault answers 500 here, from a plain error; Arca answers
    // 400: the request, not the server, is at fault.)
    write_role(&bao, "other", "pg", READONLY_SQL, &["default_ttl=1h"]).ok();
    bao.run(&["read", "database/creds/other"])
        .api_error(400, "\"other\" is not an allowed role");

    // A creation statement that fails after a first one succeeded: the
    // error names the cause, and the whole transaction is rolled back.
    // (Vault answers 500 with the database's error; Arca 400.)
    let broken = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' \
                  VALID UNTIL '{{expiration}}';\n\
                  GRANT SELECT ON no_such_table TO \"{{name}}\";\n";
    write_role(&bao, "broken", "pg", broken, &["default_ttl=1h"]).ok();
    let out = bao.run(&["read", "database/creds/broken"]);
    assert_eq!(api_status(&out), Some(400), "{}", out.describe());
    assert!(
        out.stderr.contains("no_such_table") && out.stderr.contains("does not exist"),
        "the error does not name the failing statement's cause: {}",
        out.describe()
    );
    println!(
        "creation statement error as shown by bao:\n{}",
        out.stderr.trim()
    );
    // An SQL syntax error.
    let typo = "CREATE ROLLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';\n";
    write_role(&bao, "typo", "pg", typo, &["default_ttl=1h"]).ok();
    let out = bao.run(&["read", "database/creds/typo"]);
    assert_eq!(api_status(&out), Some(400), "{}", out.describe());
    assert!(
        out.stderr.contains("syntax error"),
        "the error does not name the SQL error: {}",
        out.describe()
    );
    assert_eq!(
        pg.roles_with_prefix(""),
        roles_before,
        "a failed credential request left roles in pg_roles"
    );
    let leases = server.http(
        "LIST",
        "/v1/sys/leases/lookup/database/creds/",
        Some(&root),
        None,
    );
    assert!(
        leases.0 == 404
            || leases.1["data"]["keys"]
                .as_array()
                .is_none_or(|k| k.is_empty()),
        "a failed credential request left a lease: {leases:?}"
    );

    // Deleting the configuration: reads answer 404, the list is empty.
    bao.run(&["delete", "database/config/pg"]).ok();
    let (status, _) = server.http("GET", "/v1/database/config/pg", Some(&root), None);
    assert_eq!(status, 404);
    let (status, body) = server.http("LIST", "/v1/database/config", Some(&root), None);
    assert!(
        status == 404 || body["data"]["keys"].as_array().is_none_or(|k| k.is_empty()),
        "{status} {body}"
    );
}

#[test]
fn database_users_dropped_with_their_token_and_on_expiry() {
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);
    write_config(
        &bao,
        &pg,
        "pg",
        &pg.password,
        &["allowed_roles=readonly,short"],
    )
    .ok();
    write_role(
        &bao,
        "readonly",
        "pg",
        READONLY_SQL,
        &["default_ttl=1h", "max_ttl=24h"],
    )
    .ok();
    write_role(
        &bao,
        "short",
        "pg",
        READONLY_SQL,
        &["default_ttl=2s", "max_ttl=10s"],
    )
    .ok();

    // A token that may only read credentials.
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/db-creds",
        Some(&root),
        Some(&serde_json::json!({
            "policy": "path \"database/creds/readonly\" { capabilities = [\"read\"] }"
        })),
    );
    let t = bao.json(&["token", "create", "-policy=db-creds", "-format=json"]);
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();
    let app = server.bao().with_token(&token);
    let c = read_creds(&app, "readonly");
    assert!(pg.role_exists(&c.username));
    app.run(&["read", "database/creds/short"])
        .api_error(403, "permission denied");
    let sel = pg.psql_as(&c.username, &c.password, "SELECT count(*) FROM products");
    assert!(sel.ok, "{}", sel.text());

    // Revoking the token revokes its leases: the role is dropped.
    bao.run(&["token", "revoke", &token]).ok();
    wait_until("the token's database user dropped", CLEANUP_BOUND, || {
        !pg.role_exists(&c.username)
    });
    let gone = pg.psql_as(&c.username, &c.password, "SELECT 1");
    assert!(!gone.ok, "login as a revoked token's user succeeded");

    // A lease that expires: the expiration manager drops the role.
    let s = read_creds(&bao, "short");
    assert!(s.lease_duration <= 2, "{}", s.lease_duration);
    assert!(pg.role_exists(&s.username));
    wait_until("the expired database user dropped", CLEANUP_BOUND, || {
        !pg.role_exists(&s.username)
    });
    bao.run(&["lease", "lookup", &s.lease_id]).code(2);
}

/// `database/static-creds/NAME` as JSON `data`.
fn static_creds(bao: &Bao, role: &str) -> Value {
    bao.json(&[
        "read",
        "-format=json",
        &format!("database/static-creds/{role}"),
    ])["data"]
        .clone()
}

#[test]
fn static_roles_rotate_on_creation_on_demand_and_on_schedule() {
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'set-by-a-human';");
    assert!(pg.psql_as("app", "set-by-a-human", "SELECT 1").ok);
    write_config(&bao, &pg, "pg", &pg.password, &["allowed_roles=*"]).ok();

    // Refusals store nothing.
    let base = ["db_name=pg", "username=app"];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["write".to_string(), "database/static-roles/app".into()];
        a.extend(base.iter().chain(extra).map(|s| s.to_string()));
        a
    };
    let run = |args: Vec<String>| bao.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    run(with(&[])).api_error(400, "rotation_period");
    run(with(&["rotation_period=2s"])).api_error(400, "5 seconds");
    run(with(&["rotation_period=1h", "rotation_schedule=0 * * * *"]))
        .api_error(400, "mutually exclusive");
    run(with(&["rotation_schedule=61 * * * *"])).api_error(400, "rotation_schedule");
    run(with(&[
        "rotation_schedule=0 * * * *",
        "rotation_window=10m",
    ]))
    .api_error(400, "rotation_window");
    bao.run(&[
        "write",
        "database/static-roles/ghost",
        "db_name=pg",
        "username=no_such_user",
        "rotation_period=1h",
    ])
    .api_error(400, "no_such_user");
    // A username that could break out of the statement's quotes, and the
    // connection's own user, are refused before anything runs.
    bao.run(&[
        "write",
        "database/static-roles/evil",
        "db_name=pg",
        r#"username=x" WITH PASSWORD 'a'; ALTER ROLE "app" SUPERUSER; --"#,
        "rotation_period=1h",
    ])
    .api_error(400, "not allowed");
    bao.run(&[
        "write",
        "database/static-roles/evil",
        "db_name=pg",
        &format!("username={}", pg.superuser),
        "rotation_period=1h",
    ])
    .api_error(400, "rotate-root");
    assert_eq!(
        pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"),
        "f"
    );
    let (status, body) = server.http("GET", "/v1/database/static-roles/ghost", Some(&root), None);
    assert_eq!(
        status, 404,
        "a static role whose rotation failed was stored: {body}"
    );
    assert!(pg.psql_as("app", "set-by-a-human", "SELECT 1").ok);

    // Creation rotates: the human's password stops working, Arca's works.
    run(with(&["rotation_period=5s"])).ok();
    assert!(
        !pg.psql_as("app", "set-by-a-human", "SELECT 1").ok,
        "the password set before the static role still works"
    );
    let first = static_creds(&bao, "app");
    println!("static-creds: {first}");
    assert_eq!(first["username"], "app");
    assert_eq!(first["rotation_period"], 5);
    let ttl = first["ttl"].as_i64().unwrap();
    assert!((0..=5).contains(&ttl), "ttl {ttl} outside the period");
    assert!(first["last_vault_rotation"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let p1 = first["password"].as_str().unwrap().to_string();
    assert!(
        pg.psql_as("app", &p1, "SELECT 1").ok,
        "Arca's password does not log in"
    );
    let role = bao.json(&["read", "-format=json", "database/static-roles/app"]);
    assert_eq!(role["data"]["username"], "app", "{role}");
    assert!(
        !role.to_string().contains(&p1),
        "the role shows the password: {role}"
    );

    // The username cannot change; a dynamic role cannot take the name.
    bao.run(&["write", "database/static-roles/app", "username=other"])
        .api_error(400, "username");
    write_role(&bao, "app", "pg", READONLY_SQL, &[]).api_error(400, "unique");

    // On demand.
    bao.run(&["write", "-f", "database/rotate-role/app"]).ok();
    let p2 = static_creds(&bao, "app")["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(p1, p2);
    assert!(pg.psql_as("app", &p2, "SELECT 1").ok);
    assert!(!pg.psql_as("app", &p1, "SELECT 1").ok);
    bao.run(&["write", "-f", "database/rotate-role/nope"])
        .api_error(400, "no static role");

    // On schedule: the periodic tick (1 s here) rotates once the period is
    // over; each stored password is the one PostgreSQL takes.
    let started = std::time::Instant::now();
    let mut p3 = String::new();
    wait_until("a scheduled rotation", CLEANUP_BOUND, || {
        p3 = static_creds(&bao, "app")["password"]
            .as_str()
            .unwrap()
            .to_string();
        p3 != p2
    });
    println!(
        "scheduled rotation seen after {:?} (period 5s)",
        started.elapsed()
    );
    assert!(pg.psql_as("app", &p3, "SELECT 1").ok);

    // A longer period moves the next rotation; the new schedule reads back.
    bao.run(&["write", "database/static-roles/app", "rotation_period=1h"])
        .ok();
    let c = static_creds(&bao, "app");
    assert!(c["ttl"].as_i64().unwrap() > 3000, "{c}");
    bao.run(&[
        "write",
        "database/static-roles/app",
        "rotation_schedule=0 3 * * *",
        "rotation_window=2h",
    ])
    .ok();
    let role = bao.json(&["read", "-format=json", "database/static-roles/app"]);
    assert_eq!(role["data"]["rotation_schedule"], "0 3 * * *", "{role}");
    assert_eq!(role["data"]["rotation_window"], 7200, "{role}");
    assert!(role["data"].get("rotation_period").is_none(), "{role}");
    let list = bao.json(&["list", "-format=json", "database/static-roles"]);
    assert_eq!(list, serde_json::json!(["app"]));

    // Delete forgets the role; the user stays, with the last password.
    let last = static_creds(&bao, "app")["password"]
        .as_str()
        .unwrap()
        .to_string();
    bao.run(&["delete", "database/static-roles/app"]).ok();
    let (status, _) = server.http("GET", "/v1/database/static-creds/app", Some(&root), None);
    assert_eq!(status, 400);
    assert!(pg.role_exists("app"));
    assert!(pg.psql_as("app", &last, "SELECT 1").ok);
}

#[test]
fn rotate_root_leaves_a_password_only_arca_knows() {
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);
    pg.psql("CREATE ROLE arca_admin LOGIN CREATEROLE PASSWORD 'typed-in-a-terminal';");
    let url = format!("connection_url={}", pg.connection_url_template());
    bao.run(&[
        "write",
        "database/config/pg",
        "plugin_name=postgresql-database-plugin",
        &url,
        "username=arca_admin",
        "password=typed-in-a-terminal",
        "allowed_roles=readonly",
        r#"root_rotation_statements=ALTER ROLE "{{username}}" WITH PASSWORD '{{password}}'"#,
    ])
    .ok();
    let cfg = bao.json(&["read", "-format=json", "database/config/pg"]);
    assert_eq!(
        cfg["data"]["root_credentials_rotate_statements"][0],
        r#"ALTER ROLE "{{username}}" WITH PASSWORD '{{password}}'"#,
        "{cfg}"
    );
    write_role(
        &bao,
        "readonly",
        "pg",
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        &[],
    )
    .ok();

    bao.run(&["write", "-f", "database/rotate-root/pg"]).ok();
    assert!(
        !pg.psql_as("arca_admin", "typed-in-a-terminal", "SELECT 1")
            .ok,
        "the old root password still works after rotate-root"
    );
    let cfg = bao
        .run(&["read", "-format=json", "database/config/pg"])
        .ok();
    assert!(!cfg.stdout.contains("typed-in-a-terminal"));
    // Arca keeps working with the password only it knows.
    let c = read_creds(&bao, "readonly");
    assert!(pg.psql_as(&c.username, &c.password, "SELECT 1").ok);
    bao.run(&["lease", "revoke", &c.lease_id]).ok();
    wait_until("the revoked user dropped", CLEANUP_BOUND, || {
        !pg.role_exists(&c.username)
    });
    // Twice in a row works too (the second change uses the first's password).
    bao.run(&["write", "-f", "database/rotate-root/pg"]).ok();
    read_creds(&bao, "readonly");

    // A statement PostgreSQL refuses: the stored password still works.
    bao.run(&[
        "write",
        "database/config/pg",
        "root_rotation_statements=ALTER ROLE nobody_here WITH PASSWORD '{{password}}'",
    ])
    .ok();
    bao.run(&["write", "-f", "database/rotate-root/pg"])
        .api_error(400, "nobody_here");
    read_creds(&bao, "readonly");
    bao.run(&["write", "-f", "database/rotate-root/missing"])
        .api_error(400, "not found");
    // A password written into the URL would outlive a rotation: refused.
    let fixed = format!(
        "connection_url=postgresql://arca_admin:x@127.0.0.1:{}/postgres",
        pg.port
    );
    bao.run(&[
        "write",
        "database/config/fixed",
        "plugin_name=postgresql-database-plugin",
        &fixed,
        "username=arca_admin",
        "password=x",
        "verify_connection=false",
    ])
    .ok();
    bao.run(&["write", "-f", "database/rotate-root/fixed"])
        .api_error(400, "templating");

    // username_template: Vault's template language; a template that does
    // not parse is refused and the old one stays.
    bao.run(&[
        "write",
        "database/config/pg",
        r#"username_template={{ printf "app-%s-%s" (.RoleName | uppercase) (random 6) | truncate 20 }}"#,
    ])
    .ok();
    let c = read_creds(&bao, "readonly");
    assert!(c.username.starts_with("app-READONLY-"), "{}", c.username);
    assert_eq!(c.username.len(), 19, "{}", c.username);
    assert!(pg.psql_as(&c.username, &c.password, "SELECT 1").ok);
    let cfg = bao.json(&["read", "-format=json", "database/config/pg"]);
    assert!(
        cfg["data"]["connection_details"]["username_template"]
            .as_str()
            .unwrap()
            .contains("printf"),
        "{cfg}"
    );
    bao.run(&[
        "write",
        "database/config/pg",
        "username_template={{ .RoleName | nosuchfunction }}",
    ])
    .api_error(400, "nosuchfunction");
    assert!(read_creds(&bao, "readonly")
        .username
        .starts_with("app-READONLY-"));
}

#[test]
fn hvac_database_methods() {
    let (server, pg, root) = setup();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'before-arca';");
    let out = common::run_python_ok(
        &server,
        include_str!("../../../tests/compat/hvac_database.py"),
        &[
            &server.addr,
            &root,
            &pg.connection_url_template(),
            &pg.superuser,
            &pg.password,
        ],
        "hvac database: done",
    );
    let line = |tag: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag} line in:\n{out}"))
            .split(' ')
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    let creds = line("CREDS ");
    assert!(
        !pg.role_exists(&creds[0]),
        "revoked through hvac, still there"
    );
    let st = line("STATIC ");
    assert!(pg.psql_as("app", &st[1], "SELECT 1").ok);
    assert!(!pg.psql_as("app", "before-arca", "SELECT 1").ok);
    // rotate-root through hvac: the superuser's password changed.
    assert!(!pg.psql_as(&pg.superuser, &pg.password, "SELECT 1").ok);
}

/// A CA (`<name>-ca.pem`) and a server certificate for 127.0.0.1 only
/// (`<name>-server.pem`, key `<name>-server.key`) in `dir`, by openssl.
fn make_ca_and_server(dir: &std::path::Path, name: &str) {
    let f = |s: &str| format!("{name}-{s}");
    common::openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &f("ca.key"),
            "-out",
            &f("ca.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ],
    );
    common::openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &f("server.key"),
            "-out",
            &f("server.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    common::write_file(dir, &f("ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
    common::openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &f("server.csr"),
            "-CA",
            &f("ca.pem"),
            "-CAkey",
            &f("ca.key"),
            "-CAcreateserial",
            "-out",
            &f("server.pem"),
            "-days",
            "2",
            "-extfile",
            &f("ext.cnf"),
        ],
    );
}

#[test]
fn postgres_over_tls_is_verified_as_sslmode_says() {
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);
    let dir = bao.home.clone();
    make_ca_and_server(&dir, "good");
    make_ca_and_server(&dir, "other");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    // `tlsonly` may log in over TLS only.
    pg.psql("CREATE ROLE tlsonly LOGIN CREATEROLE PASSWORD 'tls-pw';");
    pg.enable_tls(
        &read("good-server.pem"),
        &read("good-server.key"),
        "hostnossl all tlsonly 0.0.0.0/0 reject\nhostssl all tlsonly 127.0.0.1/32 scram-sha-256",
    );
    let config = |url_params: &str, host: &str| -> Out {
        let url = format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{}/postgres?{url_params}",
            pg.port
        );
        bao.run(&[
            "write",
            "database/config/tls",
            "plugin_name=postgresql-database-plugin",
            &url,
            "username=tlsonly",
            "password=tls-pw",
            "allowed_roles=*",
        ])
    };
    let good_ca = dir.join("good-ca.pem").display().to_string();
    let other_ca = dir.join("other-ca.pem").display().to_string();

    // Plain connections are refused by the server: so is the config.
    config("sslmode=disable", "127.0.0.1").api_error(400, "no encryption");
    // verify-full against another CA: refused, not stored.
    config(
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        "127.0.0.1",
    )
    .api_error(400, "certificate");
    let (status, _) = server.http("GET", "/v1/database/config/tls", Some(&root), None);
    assert_eq!(status, 404);
    // verify-full against the right CA, but by a name the certificate does
    // not hold: refused; verify-ca checks the chain only: accepted.
    config(
        &format!("sslmode=verify-full&sslrootcert={good_ca}"),
        "localhost",
    )
    .api_error(400, "certificate");
    config(
        &format!("sslmode=verify-ca&sslrootcert={good_ca}"),
        "localhost",
    )
    .ok();
    // As libpq: the system's CAs only with verify-full, verify-ca only
    // against a CA file.
    config("sslmode=require&sslrootcert=system", "127.0.0.1").api_error(400, "verify-full");
    config("sslmode=verify-ca", "127.0.0.1").api_error(400, "sslrootcert");
    // require without a CA: encrypted, unverified (libpq's meaning).
    config("sslmode=require", "127.0.0.1").ok();
    config(
        &format!("sslmode=verify-full&sslrootcert={good_ca}"),
        "127.0.0.1",
    )
    .ok();
    let cfg = bao.json(&["read", "-format=json", "database/config/tls"]);
    assert!(!cfg.to_string().contains("tls-pw"), "{cfg}");

    // Credentials through the verified TLS connection.
    write_role(
        &bao,
        "ro",
        "tls",
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        &[],
    )
    .ok();
    let c = read_creds(&bao, "ro");
    assert!(pg.psql_as(&c.username, &c.password, "SELECT 1").ok);
    let ssl = pg.psql(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'tlsonly'",
    );
    assert_eq!(ssl, "t", "Arca's connections are not all TLS");
    bao.run(&["lease", "revoke", &c.lease_id]).ok();
    wait_until("the revoked user dropped", CLEANUP_BOUND, || {
        !pg.role_exists(&c.username)
    });

    // A path that is not there: a clear error, nothing stored.
    bao.run(&["delete", "database/config/tls"]).ok();
    config(
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        "127.0.0.1",
    )
    .api_error(400, "sslrootcert");
}

#[test]
fn concurrent_credentials_with_grants_on_one_table_all_succeed() {
    // Vault's tutorial statements GRANT on the same table for every user:
    // concurrent GRANTs collide in PostgreSQL's catalog ("tuple
    // concurrently updated"); each collision is retried, none reaches the
    // client.
    let (server, pg, root) = setup();
    let bao = server.bao().with_token(&root);
    write_config(
        &bao,
        &pg,
        "pg",
        &pg.password,
        &["allowed_roles=*", "max_open_connections=8"],
    )
    .ok();
    write_role(&bao, "readonly", "pg", READONLY_SQL, &["default_ttl=1h"]).ok();
    let addr = server.addr.clone();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (addr, root) = (addr.clone(), root.clone());
            std::thread::spawn(move || {
                (0..4)
                    .map(|_| {
                        common::try_http(
                            &addr,
                            "GET",
                            "/v1/database/creds/readonly",
                            Some(&root),
                            None,
                        )
                        .expect("transport")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        failed.first()
    );
    let users: Vec<String> = answers
        .iter()
        .map(|(_, v)| v["data"]["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pg.roles_with_prefix("v-").len(), users.len());
    // Revoked all at once (default revocation, concurrently): none left.
    let (status, body) = server.http(
        "PUT",
        "/v1/sys/leases/revoke-prefix/database/creds/readonly",
        Some(&root),
        None,
    );
    assert!(status == 204 || status == 200, "{status} {body}");
    wait_until("every user dropped", CLEANUP_BOUND, || {
        pg.roles_with_prefix("v-").is_empty()
    });
}
