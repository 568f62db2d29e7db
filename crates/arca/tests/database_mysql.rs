//! The database secrets engine's MySQL/MariaDB plugin
//! (`mysql-database-plugin`) against a real MariaDB server started by the
//! test (`arca_testdb::mariadb`), driven with the real `bao` CLI along
//! Vault's documented path: a Go-DSN `connection_url`
//! (`{{username}}:{{password}}@tcp(127.0.0.1:PORT)/`) with root's
//! credentials (never shown back), a read-only role with Vault's example
//! statements, `bao read database/creds/ro` and a `mariadb` login as the
//! new user (SELECT works, INSERT is denied), `bao lease renew` (MySQL has
//! no expiry: the lease alone moves), `bao lease revoke` (the user is
//! dropped, its open session ended). Refusals: a wrong root password
//! (verify_connection), TLS and `password_authentication=scram-sha-256`,
//! failing creation statements (no user left behind, MySQL's DDL being
//! non-transactional). The legacy plugin's 16-character usernames, a static
//! role (Vault's default MySQL password statement), and a lease that
//! expires.
//!
//! MariaDB's server and client are required (`deploy/install-deps.sh
//! test`): a missing `mariadbd` fails the test with an install hint.

mod common;

use std::time::Duration;

use arca_testdb::mariadb::MariaDb;
use common::database::{read_creds, write_role};
use common::{wait_until, Bao, Out, Server};

/// Vault's example statements for a role, reading one database.
const READONLY_SQL: &str = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';\n\
GRANT SELECT ON mydb.* TO '{{name}}'@'%';\n";

/// How long clean-up without a client may take (the expiration manager
/// ticks every second; this only ends a test that would otherwise hang).
const CLEANUP_BOUND: Duration = Duration::from_secs(60);

/// A server (initialised, unsealed), a MariaDB server with a `mydb.products`
/// table, and the root token; the `database/` mount is enabled.
fn setup() -> (Server, MariaDb, String) {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE mydb;
         CREATE TABLE mydb.products (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO mydb.products VALUES (1, 'widget'), (2, 'gadget');",
    );
    let server = Server::start();
    let root = server.init_and_unseal().root_token;
    let bao = server.bao().with_token(&root);
    bao.run(&["secrets", "enable", "database"]).ok();
    (server, db, root)
}

/// `bao write database/config/NAME` for `db` with root and `password`,
/// `plugin`, plus `extra` arguments.
fn write_config(
    bao: &Bao,
    db: &MariaDb,
    name: &str,
    plugin: &str,
    password: &str,
    extra: &[&str],
) -> Out {
    let url = format!("connection_url={}", db.connection_url_template());
    let user = format!("username={}", db.superuser);
    let pw = format!("password={password}");
    let plugin = format!("plugin_name={plugin}");
    let path = format!("database/config/{name}");
    let mut args = vec![
        "write",
        path.as_str(),
        plugin.as_str(),
        url.as_str(),
        user.as_str(),
        pw.as_str(),
    ];
    args.extend_from_slice(extra);
    bao.run(&args)
}

#[test]
fn bao_database_learning_path_mysql() {
    let (server, db, root) = setup();
    let bao = server.bao().with_token(&root);

    // The harness: root logs in over TCP with its password, not without.
    assert_eq!(
        db.sql_as("root", &db.password, "SELECT CURRENT_USER()")
            .stdout
            .trim(),
        "root@127.0.0.1"
    );
    assert!(!db.sql_as("root", "wrong", "SELECT 1").ok);

    write_config(
        &bao,
        &db,
        "my",
        "mysql-database-plugin",
        &db.password,
        &["allowed_roles=ro", "max_open_connections=2"],
    )
    .ok();
    let out = bao
        .run(&["read", "-format=json", "database/config/my"])
        .ok();
    assert!(
        !out.stdout.contains(&db.password),
        "the root password is shown: {}",
        out.stdout
    );
    let cfg = out.json();
    assert_eq!(cfg["data"]["plugin_name"], "mysql-database-plugin", "{cfg}");
    assert_eq!(
        cfg["data"]["connection_details"]["connection_url"],
        db.connection_url_template(),
        "{cfg}"
    );

    write_role(
        &bao,
        "ro",
        "my",
        READONLY_SQL,
        &["default_ttl=1h", "max_ttl=24h"],
    )
    .ok();

    let c = read_creds(&bao, "ro");
    assert!(
        c.lease_id.starts_with("database/creds/ro/"),
        "{}",
        c.lease_id
    );
    assert!(
        (3500..=3600).contains(&c.lease_duration),
        "{}",
        c.lease_duration
    );
    assert!(c.renewable);
    // Vault's default: v-<display 10>-<role 10>-<random 20>-<time>, cut to 32.
    assert!(c.username.starts_with("v-root-ro-"), "{}", c.username);
    assert!(c.username.len() <= 32, "MySQL's limit: {}", c.username);
    assert!(
        db.user_exists(&c.username),
        "{} not in mysql.user",
        c.username
    );

    // The new user reads mydb, and may not write.
    let sel = db.sql_as(
        &c.username,
        &c.password,
        "SELECT name FROM mydb.products ORDER BY id",
    );
    assert!(sel.ok, "SELECT as {}: {}", c.username, sel.text());
    assert_eq!(sel.stdout.trim(), "widget\ngadget");
    let ins = db.sql_as(
        &c.username,
        &c.password,
        "INSERT INTO mydb.products VALUES (3, 'gizmo')",
    );
    assert!(!ins.ok, "INSERT as a read-only user succeeded");
    assert!(ins.text().contains("denied"), "{}", ins.text());

    // Renewal: no statement by default (MySQL has no expiry); the lease
    // moves and the user keeps working.
    let renewed = bao.json(&[
        "lease",
        "renew",
        "-format=json",
        "-increment=2h",
        &c.lease_id,
    ]);
    let dur = renewed["lease_duration"].as_i64().unwrap_or(0);
    assert!((7000..=7200).contains(&dur), "{renewed}");
    let again = db.sql_as(
        &c.username,
        &c.password,
        "SELECT COUNT(*) FROM mydb.products",
    );
    assert!(again.ok && again.stdout.trim() == "2", "{}", again.text());

    // A session of the user that is still open when the lease is revoked.
    let mut session = std::process::Command::new("mariadb")
        .env("MYSQL_PWD", &c.password)
        .args(["--no-defaults", "--protocol=TCP", "--host=127.0.0.1"])
        .arg(format!("--port={}", db.port))
        .arg(format!("--user={}", c.username))
        .args(["-e", "SELECT SLEEP(600)"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mariadb");
    let user_lit = arca_testdb::mariadb::quote_literal(&c.username);
    wait_until("the user's session open", Duration::from_secs(10), || {
        db.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = {user_lit}"
        )) != "0"
    });

    // database/reset closes the pool; the next credentials still work.
    bao.run(&["write", "-f", "database/reset/my"]).ok();
    let c2 = read_creds(&bao, "ro");
    assert_ne!(c2.username, c.username);

    // Revoking the lease drops the user (no revocation statements: the
    // default drop) and ends its open session.
    // `bao lease revoke` queues the revocation (sync=false).
    bao.run(&["lease", "revoke", &c.lease_id]).ok();
    wait_until("the revoked user dropped", CLEANUP_BOUND, || {
        !db.user_exists(&c.username)
    });
    let gone = db.sql_as(&c.username, &c.password, "SELECT 1");
    assert!(!gone.ok, "login as a revoked user succeeded");
    assert!(gone.text().contains("Access denied"), "{}", gone.text());
    wait_until(
        "the revoked user's session ended",
        Duration::from_secs(10),
        || matches!(session.try_wait(), Ok(Some(_))),
    );
    bao.run(&["lease", "lookup", &c.lease_id]).code(2);
    // The other credentials are untouched.
    let other = db.sql_as(
        &c2.username,
        &c2.password,
        "SELECT COUNT(*) FROM mydb.products",
    );
    assert!(other.ok && other.stdout.trim() == "2", "{}", other.text());

    // No password reaches the server's log.
    let log = server.log();
    for secret in [&db.password, &c.password, &c2.password] {
        assert!(
            !log.contains(secret.as_str()),
            "a password in the server log"
        );
    }
}

#[test]
fn mysql_refusals_leave_nothing_behind() {
    let (server, db, root) = setup();
    let bao = server.bao().with_token(&root);
    let plugin = "mysql-database-plugin";

    // A wrong root password: refused while verifying, and not stored.
    write_config(
        &bao,
        &db,
        "bad",
        plugin,
        "not-the-password",
        &["allowed_roles=*"],
    )
    .api_error(400, "Access denied");
    let (status, body) = server.http("GET", "/v1/database/config/bad", Some(&root), None);
    assert_eq!(status, 404, "a refused configuration was stored: {body}");
    // SCRAM verifiers are PostgreSQL's; TLS to MySQL is not available yet.
    write_config(
        &bao,
        &db,
        "bad",
        plugin,
        &db.password,
        &["password_authentication=scram-sha-256"],
    )
    .api_error(400, "PostgreSQL only");
    let tls = format!(
        "connection_url={{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{})/?tls=true",
        db.port
    );
    write_config(&bao, &db, "bad", plugin, &db.password, &[tls.as_str()]).api_error(400, "TLS");
    let (status, _) = server.http("GET", "/v1/database/config/bad", Some(&root), None);
    assert_eq!(status, 404);

    write_config(&bao, &db, "my", plugin, &db.password, &["allowed_roles=*"]).ok();
    let before = db.users_with_prefix("v-");
    assert!(before.is_empty(), "{before:?}");

    // The user is created, then the GRANT fails: MySQL has committed the
    // CREATE USER; the default drop removes it.
    let broken = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';\n\
                  GRANT SELECT ON mydb.no_such_table TO '{{name}}'@'%';\n";
    write_role(&bao, "broken", "my", broken, &["default_ttl=1h"]).ok();
    bao.run(&["read", "database/creds/broken"])
        .api_error(400, "no_such_table");
    // The role's own rollback statements run first.
    write_role(
        &bao,
        "rolled",
        "my",
        broken,
        &[
            "default_ttl=1h",
            "rollback_statements=DROP USER '{{name}}'@'%'",
        ],
    )
    .ok();
    bao.run(&["read", "database/creds/rolled"])
        .api_error(400, "no_such_table");
    // A syntax error in the first statement.
    write_role(
        &bao,
        "typo",
        "my",
        "CREATE USR '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        &["default_ttl=1h"],
    )
    .ok();
    bao.run(&["read", "database/creds/typo"])
        .api_error(400, "syntax");
    assert_eq!(
        db.users_with_prefix("v-"),
        Vec::<String>::new(),
        "a failed credential request left users in mysql.user"
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
}

/// The legacy plugins (aurora, rds, legacy): 16-character usernames
/// (`v-<role 4>-<random>`). A static role: Vault's default MySQL password
/// statement (`ALTER USER '{{username}}'@'%' IDENTIFIED BY ...`) on
/// creation and on `rotate-role`. A lease that expires: the user is
/// dropped without a client.
#[test]
fn mysql_legacy_usernames_static_role_and_expiry() {
    let (server, db, root) = setup();
    let bao = server.bao().with_token(&root);
    write_config(
        &bao,
        &db,
        "old",
        "mysql-legacy-database-plugin",
        &db.password,
        &["allowed_roles=*"],
    )
    .ok();
    write_role(
        &bao,
        "readonly",
        "old",
        READONLY_SQL,
        &["default_ttl=2s", "max_ttl=10s"],
    )
    .ok();
    let c = read_creds(&bao, "readonly");
    assert!(c.username.starts_with("v-read-"), "{}", c.username);
    assert_eq!(c.username.len(), 16, "{}", c.username);
    let sel = db.sql_as(
        &c.username,
        &c.password,
        "SELECT COUNT(*) FROM mydb.products",
    );
    assert!(sel.ok && sel.stdout.trim() == "2", "{}", sel.text());
    assert!(c.lease_duration <= 2, "{}", c.lease_duration);

    // A static role over an existing account: Arca sets its password.
    db.sql(
        "CREATE USER 'app'@'%' IDENTIFIED BY 'initial-pw';
         GRANT SELECT ON mydb.* TO 'app'@'%';",
    );
    bao.run(&[
        "write",
        "database/static-roles/app",
        "db_name=old",
        "username=app",
        "rotation_period=1h",
    ])
    .ok();
    let static_pw = |bao: &Bao| -> String {
        let v = bao.json(&["read", "-format=json", "database/static-creds/app"]);
        assert_eq!(v["data"]["username"], "app", "{v}");
        v["data"]["password"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let pw1 = static_pw(&bao);
    let login = |pw: &str| db.sql_as("app", pw, "SELECT COUNT(*) FROM mydb.products");
    assert!(login(&pw1).ok, "{}", login(&pw1).text());
    assert!(!login("initial-pw").ok, "the initial password still works");
    bao.run(&["write", "-f", "database/rotate-role/app"]).ok();
    let pw2 = static_pw(&bao);
    assert_ne!(pw1, pw2);
    assert!(login(&pw2).ok, "{}", login(&pw2).text());
    assert!(!login(&pw1).ok, "the rotated-out password still works");

    wait_until("the expired database user dropped", CLEANUP_BOUND, || {
        !db.user_exists(&c.username)
    });
    bao.run(&["lease", "lookup", &c.lease_id]).code(2);
}
