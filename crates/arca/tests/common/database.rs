//! Helpers the database engine tests share (PostgreSQL and MariaDB).

use serde_json::Value;

use super::{write_file, Bao, Out};

/// `bao write database/roles/NAME db_name=DB creation_statements=@FILE`
/// with `sql` written to FILE, plus `extra` arguments.
pub fn write_role(bao: &Bao, name: &str, db: &str, sql: &str, extra: &[&str]) -> Out {
    let file = format!("{name}.sql");
    write_file(&bao.home, &file, sql);
    let path = format!("database/roles/{name}");
    let db_name = format!("db_name={db}");
    let stmts = format!("creation_statements=@{file}");
    let mut args = vec!["write", path.as_str(), db_name.as_str(), stmts.as_str()];
    args.extend_from_slice(extra);
    bao.run(&args)
}

/// Credentials from `database/creds/ROLE`: (lease_id, lease_duration,
/// renewable, username, password).
pub struct Creds {
    pub lease_id: String,
    pub lease_duration: i64,
    pub renewable: bool,
    pub username: String,
    pub password: String,
}

pub fn read_creds(bao: &Bao, role: &str) -> Creds {
    let v = bao.json(&["read", "-format=json", &format!("database/creds/{role}")]);
    let s = |x: &Value| x.as_str().unwrap_or_default().to_string();
    let c = Creds {
        lease_id: s(&v["lease_id"]),
        lease_duration: v["lease_duration"].as_i64().unwrap_or(-1),
        renewable: v["renewable"].as_bool().unwrap_or(false),
        username: s(&v["data"]["username"]),
        password: s(&v["data"]["password"]),
    };
    assert!(
        !c.username.is_empty() && !c.password.is_empty(),
        "credentials without username/password: {v}"
    );
    c
}
