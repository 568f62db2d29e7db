//! `seal "pkcs11"` against a real module: SoftHSM2 (Debian's `softhsm2`),
//! with a private token directory in a temporary directory.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, and the
//! environment and the loaded module are the process's: everything that
//! loads the module is in ONE test function.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arca_autoseal::{build, ConfigError, KeyWrapper, WrapError};

const SOFTHSM_LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
const INSTALL_HINT: &str =
    "install SoftHSM2 (apt-get install -y softhsm2, or deploy/install-deps.sh test)";

fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn seal(pairs: &[(&str, &str)]) -> Result<Arc<dyn KeyWrapper>, ConfigError> {
    build("pkcs11", &opts(pairs), &no_env)
}

fn init_token(conf: &Path, label: &str, pin: &str) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            "1234",
            "--pin",
            pin,
        ])
        .output()
        .unwrap_or_else(|e| panic!("running softhsm2-util: {e}: {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "softhsm2-util --init-token {label}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn refused(r: Result<impl Sized, WrapError>) -> String {
    match r {
        Err(WrapError::Refused(m)) => m,
        Err(WrapError::Unavailable(m)) => panic!("expected a refusal, got unavailable: {m}"),
        Ok(_) => panic!("expected a refusal, got success"),
    }
}

fn config_err(r: Result<Arc<dyn KeyWrapper>, ConfigError>) -> ConfigError {
    match r {
        Err(e) => e,
        Ok(w) => panic!("expected a configuration error, got {w:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_seal_with_softhsm2() {
    assert!(
        Path::new(SOFTHSM_LIB).exists(),
        "{SOFTHSM_LIB} is missing: {INSTALL_HINT}"
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    // Before the module is loaded; nothing else in this test binary reads
    // the environment concurrently.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    init_token(&conf, "arca-test", "4321");
    // Its own token: PKCS#11 logins are per application and token, so a
    // wrong PIN is only checked on a token no session is logged in to.
    init_token(&conf, "arca-pin", "4321");

    let base = |label: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("lib", SOFTHSM_LIB),
            ("token_label", "arca-test"),
            ("pin", "4321"),
            ("key_label", label),
        ]
    };

    // A wrong PIN: the server refuses to start, naming the option.
    let e = config_err(seal(&[
        ("lib", SOFTHSM_LIB),
        ("token_label", "arca-pin"),
        ("pin", "0000"),
        ("key_label", "root"),
        ("generate_key", "true"),
    ]));
    assert_eq!(e.option, "pin", "{e}");
    assert!(e.message.contains("PIN is incorrect"), "{e}");
    assert!(!e.to_string().contains("0000"), "{e}");

    // A module that does not load, a token or slot that does not exist.
    let e = config_err(seal(&[
        ("lib", "/nonexistent/libpkcs11.so"),
        ("token_label", "arca-test"),
        ("pin", "4321"),
        ("key_label", "root"),
    ]));
    assert_eq!(e.option, "lib", "{e}");
    assert!(e.message.contains("/nonexistent/libpkcs11.so"), "{e}");
    let e = config_err(seal(&[
        ("lib", SOFTHSM_LIB),
        ("token_label", "no-such-token"),
        ("pin", "4321"),
        ("key_label", "root"),
    ]));
    assert_eq!(e.option, "token_label", "{e}");
    assert!(e.message.contains("no-such-token"), "{e}");
    assert!(e.message.contains("arca-test"), "lists the tokens: {e}");
    let e = config_err(seal(&[
        ("lib", SOFTHSM_LIB),
        ("slot", "987654"),
        ("pin", "4321"),
        ("key_label", "root"),
    ]));
    assert_eq!(e.option, "slot", "{e}");

    // A missing key without generate_key: refused, naming the label.
    let e = config_err(seal(&base("absent-key")));
    assert_eq!(e.option, "key_label", "{e}");
    assert!(e.message.contains("\"absent-key\""), "{e}");
    assert!(e.message.contains("generate_key"), "{e}");

    // generate_key creates it; wrap and unwrap round trip.
    let mut o = base("root-1");
    o.push(("generate_key", "true"));
    let w1 = seal(&o).unwrap();
    assert_eq!(w1.seal_type(), "pkcs11");
    assert!(!format!("{w1:?}").contains("4321"), "{w1:?}");
    let root: Vec<u8> = (0u8..32).collect();
    let blob = w1.wrap(&root).await.unwrap();
    assert_eq!(blob.len(), 1 + 12 + 32 + 16);
    assert_eq!(blob[0], 1);
    assert_eq!(w1.unwrap(&blob).await.unwrap().as_slice(), root.as_slice());
    let blob2 = w1.wrap(&root).await.unwrap();
    assert_ne!(blob, blob2, "a fresh IV every time");
    assert_eq!(w1.unwrap(&blob2).await.unwrap().as_slice(), root.as_slice());

    // The generated key: persistent, sensitive, not extractable, AES-256.
    check_generated_key("root-1");

    // A second wrapper (same module, by slot number this time) opens it;
    // generate_key = true with the key present uses it, never replaces it.
    let slot = slot_of(&conf, "arca-test");
    let w2 = seal(&[
        ("lib", SOFTHSM_LIB),
        ("slot", &slot),
        ("token_label", "arca-test"),
        ("pin", "4321"),
        ("key_label", "root-1"),
        ("mechanism", "CKM_AES_GCM"),
    ])
    .unwrap();
    assert_eq!(w2.unwrap(&blob).await.unwrap().as_slice(), root.as_slice());
    let w3 = seal(&o).unwrap();
    assert_eq!(w3.unwrap(&blob2).await.unwrap().as_slice(), root.as_slice());

    // Another copy of the module, loaded separately, with the token read
    // from disk again: the key persisted.
    let copy = dir.path().join("libsofthsm2-copy.so");
    std::fs::copy(SOFTHSM_LIB, &copy).unwrap();
    let w4 = seal(&[
        ("lib", copy.to_str().unwrap()),
        ("token_label", "arca-test"),
        ("pin", "4321"),
        ("key_label", "root-1"),
    ])
    .unwrap();
    assert_eq!(w4.unwrap(&blob).await.unwrap().as_slice(), root.as_slice());

    // Another key refuses the blob: the tag does not authenticate.
    let mut o = base("root-2");
    o.push(("generate_key", "1"));
    let other = seal(&o).unwrap();
    let m = refused(other.unwrap(&blob).await);
    assert!(m.contains("authentication failed"), "{m}");
    assert!(m.contains("root-2"), "{m}");
    let other_blob = other.wrap(&root).await.unwrap();
    assert!(refused(w1.unwrap(&other_blob).await).contains("authentication failed"));

    // Modified blobs are refused, whichever part changed.
    for i in [1, 12, 13, 30, blob.len() - 1] {
        let mut t = blob.clone();
        t[i] ^= 0x01;
        let m = refused(w1.unwrap(&t).await);
        assert!(m.contains("authentication failed"), "byte {i}: {m}");
    }
    let m = refused(w1.unwrap(&blob[..blob.len() - 1]).await);
    assert!(m.contains("authentication failed"), "{m}");
    let m = refused(w1.unwrap(&blob[..20]).await);
    assert!(m.contains("too short"), "{m}");
    let mut t = blob.clone();
    t[0] = 2;
    assert!(refused(w1.unwrap(&t).await).contains("version 2"));
    assert!(refused(w1.unwrap(&[]).await).contains("empty"));
    // The wrappers still work after the refusals.
    assert_eq!(w1.unwrap(&blob).await.unwrap().as_slice(), root.as_slice());

    // key_id: created with it, found only with it.
    let mut o = base("root-3");
    o.extend([("key_id", "0x0a0b0c"), ("generate_key", "true")]);
    let w5 = seal(&o).unwrap();
    let blob5 = w5.wrap(&root).await.unwrap();
    let mut o = base("root-3");
    o.push(("key_id", "0a0b0c"));
    assert_eq!(
        seal(&o).unwrap().unwrap(&blob5).await.unwrap().as_slice(),
        root.as_slice()
    );
    let mut o = base("root-3");
    o.push(("key_id", "0x0d"));
    let e = config_err(seal(&o));
    assert_eq!(e.option, "key_label", "{e}");
    assert!(e.message.contains("0x0d"), "{e}");

    // Configuration errors from the block, before any module is touched.
    let e = config_err(seal(&[
        ("token_label", "arca-test"),
        ("pin", "4321"),
        ("key_label", "root-1"),
    ]));
    assert_eq!(e.option, "lib", "{e}");
    let mut o = base("root-1");
    o.push(("mechanism", "RSA_PKCS_OAEP"));
    let e = config_err(seal(&o));
    assert_eq!(e.option, "mechanism", "{e}");
    assert!(e.message.contains("only AES-GCM is supported"), "{e}");
    let e = config_err(seal(&[
        ("lib", SOFTHSM_LIB),
        ("pin", "4321"),
        ("key_label", "root-1"),
    ]));
    assert_eq!(e.option, "slot", "{e}");
    assert!(e.message.contains("token_label"), "{e}");

    // The environment fills what the block leaves out.
    let env = |k: &str| match k {
        "BAO_HSM_LIB" => Some(SOFTHSM_LIB.to_string()),
        "BAO_HSM_TOKEN_LABEL" => Some("arca-test".to_string()),
        "BAO_HSM_PIN" => Some("4321".to_string()),
        _ => None,
    };
    let w6 = build("pkcs11", &opts(&[("key_label", "root-1")]), &env).unwrap();
    assert_eq!(w6.unwrap(&blob).await.unwrap().as_slice(), root.as_slice());
}

/// The slot number of the token labelled `label`, from softhsm2-util.
fn slot_of(conf: &Path, label: &str) -> String {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .arg("--show-slots")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut slot = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("Slot ") {
            if n.trim().parse::<u64>().is_ok() {
                slot = Some(n.trim().to_string());
            }
        }
        if line.starts_with("Label:") && line.trim_start_matches("Label:").trim() == label {
            return slot.expect("a Slot line before the Label line");
        }
    }
    panic!("no slot with token {label:?} in:\n{text}");
}

/// Reads the key's attributes with cryptoki directly.
fn check_generated_key(label: &str) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let ctx = Pkcs11::new(PathBuf::from(SOFTHSM_LIB)).unwrap();
    // The seal already initialised this module in this process.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == "arca-test")
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from("4321")));
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let attrs = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::ValueLen,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .unwrap();
    for a in attrs {
        match a {
            Attribute::Token(v) => assert!(v, "CKA_TOKEN"),
            Attribute::Sensitive(v) => assert!(v, "CKA_SENSITIVE"),
            Attribute::Extractable(v) => assert!(!v, "CKA_EXTRACTABLE"),
            Attribute::Encrypt(v) => assert!(v, "CKA_ENCRYPT"),
            Attribute::Decrypt(v) => assert!(v, "CKA_DECRYPT"),
            Attribute::ValueLen(n) => assert_eq!(u64::from(n), 32, "CKA_VALUE_LEN"),
            other => panic!("unexpected attribute {other:?}"),
        }
    }
}
