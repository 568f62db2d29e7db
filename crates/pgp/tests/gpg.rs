//! arca-pgp against real GnuPG: keys made with `gpg --quick-gen-key`, read
//! from `gpg --export`, and every message decrypted with `gpg --decrypt` by
//! the holder. Each test has its own GNUPGHOME (a temporary directory) and
//! stops the gpg-agent it started there.
//!
//! GnuPG is required: without `gpg` these tests fail and say how to install
//! it (`apt-get install gnupg`; CI gets it from deploy/install-deps.sh test).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use arca_pgp::{
    encrypt_shares, parse_keys, HolderKey, PgpError, MAX_KEYS, MAX_KEY_BYTES, MAX_KEY_TEXT,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;

/// One holder's GnuPG home.
struct Gpg {
    home: tempfile::TempDir,
}

/// A key as `gpg --with-colons --list-keys` shows it.
struct Listed {
    /// The primary key's fingerprint (upper case, as gpg prints it).
    fpr: String,
    /// The primary key's 16-hex-digit key ID.
    keyid: String,
    /// (key ID, capabilities) of each subkey, in order.
    subkeys: Vec<(String, String)>,
}

fn require_gpg() {
    match Command::new("gpg").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`gpg --version` failed ({}): these tests decrypt with GnuPG; install it with \
             `apt-get install gnupg` (or deploy/install-deps.sh test)",
            out.status
        ),
        Err(e) => panic!(
            "gpg cannot be run ({e}): these tests decrypt with GnuPG; install it with \
             `apt-get install gnupg` (or deploy/install-deps.sh test)"
        ),
    }
}

impl Gpg {
    fn new() -> Gpg {
        require_gpg();
        let home = tempfile::Builder::new()
            .prefix("arca-pgp-")
            .tempdir()
            .expect("temporary GNUPGHOME");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod GNUPGHOME");
        }
        Gpg { home }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir").arg(self.home.path()).args([
            "--batch",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        cmd
    }

    fn try_run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gpg");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write to gpg");
        child.wait_with_output().expect("wait for gpg")
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = self.try_run(args, b"");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `--quick-gen-key`; returns the new key's fingerprint.
    fn gen_key(&self, uid: &str, algo: &str, usage: &str, expire: &str) -> String {
        self.run(&["--quick-gen-key", uid, algo, usage, expire]);
        self.list(uid).fpr
    }

    fn add_key(&self, fpr: &str, algo: &str, usage: &str, expire: &str) {
        self.run(&["--quick-add-key", fpr, algo, usage, expire]);
    }

    fn list(&self, who: &str) -> Listed {
        let out = String::from_utf8(self.run(&[
            "--with-colons",
            "--fixed-list-mode",
            "--list-keys",
            who,
        ]))
        .expect("utf-8 listing");
        let mut listed = Listed {
            fpr: String::new(),
            keyid: String::new(),
            subkeys: Vec::new(),
        };
        let mut last = "";
        for line in out.lines() {
            let f: Vec<&str> = line.split(':').collect();
            match f[0] {
                "pub" => {
                    assert!(
                        listed.keyid.is_empty(),
                        "one key expected for {who}:\n{out}"
                    );
                    listed.keyid = f[4].to_string();
                }
                "sub" => listed.subkeys.push((f[4].to_string(), f[11].to_string())),
                "fpr" if last == "pub" => listed.fpr = f[9].to_string(),
                _ => {}
            }
            last = f[0];
        }
        assert_eq!(listed.fpr.len(), 40, "a v4 fingerprint in:\n{out}");
        listed
    }

    /// `gpg --export <who> | base64 -w0`
    fn export_b64(&self, who: &str) -> String {
        B64.encode(self.run(&["--export", who]))
    }

    fn export_armored(&self, who: &str) -> String {
        String::from_utf8(self.run(&["--export", "--armor", who])).expect("armor is text")
    }

    /// Decrypts `message` (binary) from a file; returns the plaintext and the
    /// status lines.
    fn decrypt(&self, message: &[u8]) -> (Vec<u8>, String) {
        let out = self.try_decrypt(message);
        assert!(
            out.status.success(),
            "gpg --decrypt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn try_decrypt(&self, message: &[u8]) -> Output {
        let path = self.home.path().join("message.gpg");
        std::fs::write(&path, message).expect("write message");
        let path = path.to_str().expect("utf-8 path").to_string();
        self.try_run(&["--status-fd", "2", "--decrypt", &path], b"")
    }

    fn list_packets(&self, message: &[u8]) -> String {
        let path = self.home.path().join("packets.gpg");
        std::fs::write(&path, message).expect("write message");
        let path = path.to_str().expect("utf-8 path").to_string();
        String::from_utf8_lossy(&self.run(&["--list-packets", &path])).into_owned()
    }

    fn home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // Stops only the agent this home started.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn random_share(len: usize) -> Vec<u8> {
    let mut share = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut share);
    share
}

/// Checks what Vault's format promises of one encrypted message: binary, one
/// v3 PKESK to `enc_keyid`, SEIPD v1 with MDC, no compression, and gpg reads
/// back exactly `plaintext`.
fn assert_decrypts(gpg: &Gpg, message: &[u8], enc_keyid: &str, plaintext: &[u8]) {
    assert!(
        message[0] & 0x80 != 0,
        "a binary OpenPGP message, not armor: starts {:?}",
        &message[..message.len().min(16)]
    );
    let (out, status) = gpg.decrypt(message);
    assert_eq!(out, plaintext, "gpg --decrypt output; status:\n{status}");
    let enc_to: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("[GNUPG:] ENC_TO "))
        .collect();
    assert_eq!(enc_to.len(), 1, "one recipient:\n{status}");
    assert!(
        enc_to[0].starts_with(&format!("[GNUPG:] ENC_TO {enc_keyid} ")),
        "encrypted to {enc_keyid}:\n{status}"
    );
    assert!(status.contains("[GNUPG:] GOODMDC"), "{status}");
    assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
    // MDC (2) and AES-256 (9): GnuPG keys list AES-256 in their preferences.
    assert!(status.contains("[GNUPG:] DECRYPTION_INFO 2 9"), "{status}");
    let packets = gpg.list_packets(message);
    assert!(
        packets.contains(":pubkey enc packet: version 3"),
        "{packets}"
    );
    assert_eq!(
        packets.matches(":pubkey enc packet:").count(),
        1,
        "{packets}"
    );
    assert!(packets.contains(":encrypted data packet:"), "{packets}");
    assert!(packets.contains("mdc_method: 2"), "{packets}");
    assert!(!packets.contains("compressed packet"), "{packets}");
    assert!(packets.contains(":literal data packet:"), "{packets}");
}

#[test]
fn rsa_key_with_encryption_subkey_share_and_root_token() {
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("holder1 <h1@example.com>", "rsa2048", "default", "never");
    gpg.add_key(&fpr, "rsa2048", "encr", "never");
    let listed = gpg.list(&fpr);
    assert_eq!(listed.subkeys.len(), 1);

    let key = HolderKey::parse(&gpg.export_b64(&fpr)).expect("parse gpg's export");
    assert_eq!(key.fingerprint(), listed.fpr.to_lowercase());
    assert_eq!(key.fingerprint(), fpr.to_lowercase());

    // An unseal share (key length + 1, as the Shamir split returns it):
    // the holder reads its lowercase hex text.
    let share = random_share(33);
    let (fingerprints, messages) =
        encrypt_shares(&[share.as_slice()], std::slice::from_ref(&key)).expect("encrypt");
    assert_eq!(fingerprints, vec![fpr.to_lowercase()]);
    assert_eq!(messages.len(), 1);
    let hex_share = hex::encode(&share);
    assert_eq!(hex_share.len(), 66);
    assert_decrypts(
        &gpg,
        &messages[0],
        &listed.subkeys[0].0,
        hex_share.as_bytes(),
    );

    // A root token: its text as it is.
    let token = "s.7mWbWrZ2EQeWbD4Sc8vHpnd4";
    let message = key.encrypt(token.as_bytes()).expect("encrypt token");
    assert_decrypts(&gpg, &message, &listed.subkeys[0].0, token.as_bytes());

    // A fresh session key every time: the same share encrypts differently.
    let (_, again) = encrypt_shares(&[share.as_slice()], std::slice::from_ref(&key)).unwrap();
    assert_ne!(again[0], messages[0]);
    assert_decrypts(&gpg, &again[0], &listed.subkeys[0].0, hex_share.as_bytes());
}

#[test]
fn ed25519_key_with_cv25519_subkey() {
    let gpg = Gpg::new();
    let fpr = gpg.gen_key(
        "holder2 <h2@example.com>",
        "future-default",
        "default",
        "never",
    );
    let listed = gpg.list(&fpr);
    assert_eq!(listed.subkeys.len(), 1);
    assert!(
        listed.subkeys[0].1.contains('e'),
        "cv25519 encryption subkey"
    );

    let key = HolderKey::parse(&gpg.export_b64(&fpr)).expect("parse");
    assert_eq!(key.fingerprint(), fpr.to_lowercase());
    let share = random_share(17);
    let (fps, messages) = encrypt_shares(&[share.as_slice()], &[key]).expect("encrypt");
    assert_eq!(fps[0], fpr.to_lowercase());
    assert_decrypts(
        &gpg,
        &messages[0],
        &listed.subkeys[0].0,
        hex::encode(&share).as_bytes(),
    );
}

#[test]
fn primary_key_that_may_encrypt_is_used_without_subkeys() {
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("holder3 <h3@example.com>", "rsa2048", "sign,encr", "never");
    let listed = gpg.list(&fpr);
    assert!(listed.subkeys.is_empty());
    let key = HolderKey::parse(&gpg.export_b64(&fpr)).expect("parse");
    let message = key.encrypt(b"abc").expect("encrypt");
    assert_decrypts(&gpg, &message, &listed.keyid, b"abc");
}

#[test]
fn newest_encryption_subkey_is_chosen() {
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("holder4 <h4@example.com>", "ed25519", "sign", "never");
    gpg.add_key(&fpr, "cv25519", "encr", "never");
    // Binding signatures carry whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    gpg.add_key(&fpr, "rsa2048", "encr", "never");
    std::thread::sleep(Duration::from_millis(1100));
    gpg.add_key(&fpr, "ed25519", "sign", "never");
    let listed = gpg.list(&fpr);
    assert_eq!(listed.subkeys.len(), 3);

    let key = HolderKey::parse(&gpg.export_b64(&fpr)).expect("parse");
    let message = key.encrypt(b"newest").expect("encrypt");
    assert_decrypts(&gpg, &message, &listed.subkeys[1].0, b"newest");
}

#[test]
fn shares_go_to_their_holders_in_order() {
    let alice = Gpg::new();
    let bob = Gpg::new();
    let a = alice.gen_key(
        "alice <a@example.com>",
        "future-default",
        "default",
        "never",
    );
    let b = bob.gen_key("bob <b@example.com>", "rsa2048", "default", "never");
    bob.add_key(&b, "rsa2048", "encr", "never");
    let (a_list, b_list) = (alice.list(&a), bob.list(&b));

    let keys = parse_keys(&[alice.export_b64(&a), bob.export_b64(&b)]).expect("parse both");
    let shares = [random_share(33), random_share(33)];
    let refs: Vec<&[u8]> = shares.iter().map(Vec::as_slice).collect();
    let (fps, messages) = encrypt_shares(&refs, &keys).expect("encrypt");
    assert_eq!(fps, vec![a.to_lowercase(), b.to_lowercase()]);
    assert_decrypts(
        &alice,
        &messages[0],
        &a_list.subkeys[0].0,
        hex::encode(&shares[0]).as_bytes(),
    );
    assert_decrypts(
        &bob,
        &messages[1],
        &b_list.subkeys[0].0,
        hex::encode(&shares[1]).as_bytes(),
    );
    // Neither can read the other's share.
    assert!(!alice.try_decrypt(&messages[1]).status.success());
    assert!(!bob.try_decrypt(&messages[0]).status.success());

    // The same holder may hold several shares.
    let two = [keys[0].clone(), keys[0].clone()];
    let (fps, messages) = encrypt_shares(&refs, &two).expect("encrypt");
    assert_eq!(fps, vec![a.to_lowercase(), a.to_lowercase()]);
    assert_decrypts(
        &alice,
        &messages[1],
        &a_list.subkeys[0].0,
        hex::encode(&shares[1]).as_bytes(),
    );
}

#[test]
fn armored_and_wrapped_forms_are_taken() {
    let gpg = Gpg::new();
    let fpr = gpg.gen_key(
        "holder5 <h5@example.com>",
        "future-default",
        "default",
        "never",
    );
    let listed = gpg.list(&fpr);
    let armored = gpg.export_armored(&fpr);
    assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));

    let wrapped = {
        // `base64` (76 columns, CRLF too) rather than `base64 -w0`.
        let flat = gpg.export_b64(&fpr);
        let lines: Vec<&str> = flat
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!("  {}\r\n", lines.join("\r\n"))
    };
    for (what, text) in [
        ("armored", armored.clone()),
        ("base64 of armor", B64.encode(armored.as_bytes())),
        ("wrapped base64", wrapped),
    ] {
        let key = HolderKey::parse(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(key.fingerprint(), fpr.to_lowercase(), "{what}");
        let message = key.encrypt(what.as_bytes()).expect("encrypt");
        assert_decrypts(&gpg, &message, &listed.subkeys[0].0, what.as_bytes());
    }
}

#[test]
fn keys_that_cannot_encrypt_are_refused() {
    let gpg = Gpg::new();
    // Signing only.
    let sign_only = gpg.gen_key("signer <s@example.com>", "ed25519", "sign", "never");
    let err = HolderKey::parse(&gpg.export_b64(&sign_only)).unwrap_err();
    assert!(
        matches!(err, PgpError::NoEncryptionKey { ref fingerprint } if *fingerprint == sign_only.to_lowercase()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no valid key that may encrypt"),
        "{err}"
    );

    // Its only encryption subkey has expired.
    let expiring = gpg.gen_key("expiring <e@example.com>", "ed25519", "sign", "never");
    gpg.add_key(&expiring, "cv25519", "encr", "seconds=2");
    let export = gpg.export_b64(&expiring);
    HolderKey::parse(&export).expect("usable before its subkey expires");
    // The whole key expires.
    let short = gpg.gen_key(
        "short <x@example.com>",
        "future-default",
        "default",
        "seconds=2",
    );
    let short_export = gpg.export_b64(&short);
    let short_key = HolderKey::parse(&short_export).expect("usable before it expires");
    std::thread::sleep(Duration::from_millis(3100));
    let err = HolderKey::parse(&export).unwrap_err();
    assert!(matches!(err, PgpError::NoEncryptionKey { .. }), "{err:?}");
    let err = HolderKey::parse(&short_export).unwrap_err();
    assert!(matches!(err, PgpError::Expired { .. }), "{err:?}");
    // A key parsed before it expired refuses to encrypt afterwards.
    let err = short_key.encrypt(b"late").unwrap_err();
    assert!(matches!(err, PgpError::Expired { .. }), "{err:?}");

    // Revoked with the certificate gpg made when it created the key.
    let revoked = gpg.gen_key(
        "revoked <r@example.com>",
        "future-default",
        "default",
        "never",
    );
    revoke(&gpg, &revoked);
    let err = HolderKey::parse(&gpg.export_b64(&revoked)).unwrap_err();
    assert!(matches!(err, PgpError::Revoked { .. }), "{err:?}");
}

/// The packets of a binary OpenPGP stream: (tag, start, end) of each,
/// header included.
fn packets(data: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let ctb = data[at];
        assert!(ctb & 0x80 != 0, "packet header at {at}");
        let (tag, header, len) = if ctb & 0x40 != 0 {
            let tag = ctb & 0x3f;
            match data[at + 1] {
                l @ 0..=191 => (tag, 2, l as usize),
                l @ 192..=223 => (
                    tag,
                    3,
                    ((l as usize - 192) << 8) + data[at + 2] as usize + 192,
                ),
                255 => (
                    tag,
                    6,
                    u32::from_be_bytes(data[at + 2..at + 6].try_into().unwrap()) as usize,
                ),
                l => panic!("partial length {l} in a key"),
            }
        } else {
            let tag = (ctb >> 2) & 0x0f;
            match ctb & 0x03 {
                0 => (tag, 2, data[at + 1] as usize),
                1 => (
                    tag,
                    3,
                    u16::from_be_bytes([data[at + 1], data[at + 2]]) as usize,
                ),
                2 => (
                    tag,
                    5,
                    u32::from_be_bytes(data[at + 1..at + 5].try_into().unwrap()) as usize,
                ),
                _ => panic!("indeterminate length in a key"),
            }
        };
        out.push((tag, at, at + header + len));
        at += header + len;
    }
    out
}

/// Flips a bit in the last byte of the signature packet that follows the
/// first packet tagged `after`.
fn damage_signature_after(export: &mut [u8], after: u8) {
    let list = packets(export);
    let i = list
        .iter()
        .position(|p| p.0 == after)
        .unwrap_or_else(|| panic!("a packet tagged {after} in {list:?}"));
    let (tag, _, end) = list[i + 1];
    assert_eq!(tag, 2, "a signature after tag {after}: {list:?}");
    export[end - 1] ^= 0x01;
}

/// Imports the revocation certificate gpg made when it created `fpr`.
fn revoke(gpg: &Gpg, fpr: &str) {
    let cert_path = gpg
        .home()
        .join("openpgp-revocs.d")
        .join(format!("{fpr}.rev"));
    let cert = std::fs::read_to_string(&cert_path).expect("revocation certificate");
    // gpg guards the block with a leading ':'.
    let cert = cert.replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    );
    let out = gpg.try_run(&["--import"], cert.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn signatures_are_verified() {
    const PUBLIC_KEY: u8 = 6;
    const USER_ID: u8 = 13;
    const PUBLIC_SUBKEY: u8 = 14;
    let gpg = Gpg::new();

    // A subkey whose binding signature does not verify is not used.
    let fpr = gpg.gen_key("holder6 <h6@example.com>", "rsa2048", "default", "never");
    gpg.add_key(&fpr, "rsa2048", "encr", "never");
    let mut export = gpg.run(&["--export", &fpr]);
    HolderKey::parse(&B64.encode(&export)).expect("intact key");
    damage_signature_after(&mut export, PUBLIC_SUBKEY);
    let err = HolderKey::parse(&B64.encode(&export)).unwrap_err();
    assert!(matches!(err, PgpError::NoEncryptionKey { .. }), "{err:?}");

    // A key whose only user ID certification does not verify has no
    // self-signature to take its flags and expiry from.
    let fpr = gpg.gen_key("holder7 <h7@example.com>", "rsa2048", "sign,encr", "never");
    let mut export = gpg.run(&["--export", &fpr]);
    HolderKey::parse(&B64.encode(&export)).expect("intact key");
    damage_signature_after(&mut export, USER_ID);
    let err = HolderKey::parse(&B64.encode(&export)).unwrap_err();
    assert!(matches!(err, PgpError::NoSelfSignature { .. }), "{err:?}");

    // A revocation that does not verify revokes nothing.
    let fpr = gpg.gen_key(
        "holder8 <h8@example.com>",
        "future-default",
        "default",
        "never",
    );
    let listed = gpg.list(&fpr);
    revoke(&gpg, &fpr);
    let mut export = gpg.run(&["--export", &fpr]);
    let err = HolderKey::parse(&B64.encode(&export)).unwrap_err();
    assert!(matches!(err, PgpError::Revoked { .. }), "{err:?}");
    damage_signature_after(&mut export, PUBLIC_KEY);
    let key = HolderKey::parse(&B64.encode(&export)).expect("forged revocation ignored");
    let message = key.encrypt(b"still mine").unwrap();
    let (out, status) = gpg.decrypt(&message);
    assert_eq!(out, b"still mine");
    assert!(
        status.contains(&format!("[GNUPG:] ENC_TO {} ", listed.subkeys[0].0)),
        "{status}"
    );
}

#[test]
fn secret_keys_and_key_rings_are_refused() {
    let gpg = Gpg::new();
    let one = gpg.gen_key("one <1@example.com>", "future-default", "default", "never");
    let two = gpg.gen_key("two <2@example.com>", "future-default", "default", "never");

    let secret = gpg.run(&["--export-secret-keys", &one]);
    let err = HolderKey::parse(&B64.encode(&secret)).unwrap_err();
    assert!(matches!(err, PgpError::SecretKey), "{err:?}");
    assert!(
        err.to_string().contains("pass only the public key"),
        "{err}"
    );
    let secret_armored = gpg.run(&["--export-secret-keys", "--armor", &one]);
    let err = HolderKey::parse(std::str::from_utf8(&secret_armored).unwrap()).unwrap_err();
    assert!(matches!(err, PgpError::SecretKey), "{err:?}");

    let both = gpg.run(&["--export", &one, &two]);
    let err = HolderKey::parse(&B64.encode(&both)).unwrap_err();
    assert!(matches!(err, PgpError::MultipleKeys), "{err:?}");

    // An encrypted message is not a key.
    let key = HolderKey::parse(&gpg.export_b64(&one)).unwrap();
    let message = key.encrypt(b"x").unwrap();
    let err = HolderKey::parse(&B64.encode(&message)).unwrap_err();
    assert!(
        matches!(err, PgpError::NoKey | PgpError::Parse(_)),
        "{err:?}"
    );
}

#[test]
fn malformed_input_is_refused_with_clear_errors() {
    // Not base64.
    let err = HolderKey::parse("this is not base64!").unwrap_err();
    assert!(matches!(err, PgpError::Base64(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "keeps its cause");

    // Base64, but not OpenPGP.
    for garbage in [
        B64.encode(b"hello world"),
        B64.encode([0xffu8; 64]),
        B64.encode([0x99u8, 0x01]),
    ] {
        let err = HolderKey::parse(&garbage).unwrap_err();
        assert!(
            matches!(err, PgpError::Parse(_) | PgpError::NoKey),
            "{garbage}: {err:?}"
        );
    }

    // Empty.
    for empty in ["", "   ", "\n"] {
        assert!(matches!(HolderKey::parse(empty), Err(PgpError::Empty)));
    }

    // Keybase.
    for kb in ["keybase:alice", "Keybase:bob", " keybase:carol "] {
        let err = HolderKey::parse(kb).unwrap_err();
        assert!(matches!(err, PgpError::Keybase(_)), "{kb}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("does not fetch keys from Keybase"), "{text}");
        assert!(text.contains("base64"), "{text}");
    }

    // Too large, as text and once decoded.
    let err = HolderKey::parse(&"A".repeat(MAX_KEY_TEXT + 4)).unwrap_err();
    assert!(matches!(err, PgpError::TooLarge { .. }), "{err:?}");
    let big = B64.encode(vec![0u8; MAX_KEY_BYTES + 1]);
    assert!(big.len() <= MAX_KEY_TEXT);
    let err = HolderKey::parse(&big).unwrap_err();
    assert!(
        matches!(err, PgpError::TooLarge { len, max } if len == MAX_KEY_BYTES + 1 && max == MAX_KEY_BYTES),
        "{err:?}"
    );
}

#[test]
fn counts_are_checked() {
    let err = encrypt_shares(&[b"a".as_slice()], &[]).unwrap_err();
    assert!(
        matches!(err, PgpError::CountMismatch { items: 1, keys: 0 }),
        "{err:?}"
    );

    let too_many = vec!["keybase:x"; MAX_KEYS + 1];
    let err = parse_keys(&too_many).unwrap_err();
    assert!(
        matches!(
            err,
            PgpError::TooManyKeys {
                count: 256,
                max: 255
            }
        ),
        "{err:?}"
    );

    let gpg = Gpg::new();
    let fpr = gpg.gen_key(
        "holder7 <h7@example.com>",
        "future-default",
        "default",
        "never",
    );
    let good = gpg.export_b64(&fpr);
    let err = parse_keys(&[good.as_str(), "keybase:x"]).unwrap_err();
    match &err {
        PgpError::AtIndex { index: 1, source } => {
            assert!(matches!(**source, PgpError::Keybase(_)), "{source:?}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with("pgp key 1: "), "{err}");

    let key = HolderKey::parse(&good).unwrap();
    let err = encrypt_shares(&[b"a".as_slice(), b"b".as_slice()], &[key]).unwrap_err();
    assert!(
        matches!(err, PgpError::CountMismatch { items: 2, keys: 1 }),
        "{err:?}"
    );
}
