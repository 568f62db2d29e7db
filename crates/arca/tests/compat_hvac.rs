//! Compatibility: a real `arca server` (non-dev, RocksDB) driven end to end by
//! hvac, the Python client most Vault users script with. The flow itself is
//! `tests/compat/hvac_flow.py` (init 5/3, unseal, seal/unseal, KV v1/v2,
//! policy, limited token, revoke by accessor); this test starts the server,
//! runs the script against it and fails on any failed check.
//!
//! Fails (never skips) when `python3` or hvac are missing: `pip install hvac`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{python_bin, repo_root, run_with_timeout, Server};

#[test]
fn hvac_full_flow() {
    let server = Server::start();
    let work = server.work_dir();

    // hvac must be there: a missing client is a failure, not a skip.
    let mut probe = Command::new(python_bin());
    probe.args(["-c", "import hvac, requests"]);
    let (code, _, err) = run_with_timeout(probe, &work, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e}); python3 is required", python_bin()));
    assert_eq!(
        code,
        0,
        "hvac is not importable by `{}` (`pip install hvac`): {err}",
        python_bin()
    );

    let script = repo_root().join("tests/compat/hvac_flow.py");
    assert!(script.is_file(), "{} missing", script.display());
    let mut c = Command::new(python_bin());
    c.arg(&script)
        .arg("--addr")
        .arg(&server.addr)
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_NAMESPACE")
        .env("HOME", &work)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(&work);
    let (code, out, err) = run_with_timeout(c, &work, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    println!("{out}");
    eprintln!("{err}");
    assert_eq!(
        code, 0,
        "hvac flow failed (exit {code})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("hvac_flow: ") && l.ends_with(" passed, 0 failed")),
        "no summary line from the hvac flow:\n{out}"
    );
}

/// The PKI flow of Vault's documentation with hvac (`tests/compat/hvac_pki.py`),
/// artefacts verified with openssl by the script.
#[test]
fn hvac_pki_flow() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let work = server.work_dir();
    let script = repo_root().join("tests/compat/hvac_pki.py");
    let mut c = Command::new(python_bin());
    c.arg(&script)
        .arg("--addr")
        .arg(&server.addr)
        .arg("--token")
        .arg(&init.root_token)
        .arg("--dir")
        .arg(&work)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(&work);
    let (code, out, err) = run_with_timeout(c, &work, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    println!("{out}");
    assert_eq!(
        code, 0,
        "hvac PKI flow failed (exit {code})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}
