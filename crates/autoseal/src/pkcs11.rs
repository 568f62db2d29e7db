//! `seal "pkcs11"`: the root key is encrypted by an AES key that never
//! leaves a PKCS#11 token (an HSM, SoftHSM2), with `CKM_AES_GCM`, as
//! OpenBao's PKCS#11 seal does with its AES-GCM mechanism.
//!
//! * The module (`lib`) is loaded and initialised once per process
//!   (`C_Initialize` with OS locking) and stays loaded: two wrappers naming
//!   the same module (a seal migration) share it.
//! * Everything is checked when the wrapper is built, so that a server
//!   with a wrong configuration refuses to start with an error naming the
//!   option: the module loads, the slot or token exists, the PIN logs in,
//!   the key exists (or, with `generate_key = "true"` only, is created:
//!   a persistent, sensitive, non-extractable AES-256 key with the label
//!   and id). A key is never created later, when the wrapper runs: a key
//!   that disappeared must not be silently replaced by a new one.
//! * One read-write session, logged in as the user, is kept and reused;
//!   when the token drops it (a closed session, a removed token), it is
//!   opened again once before the call fails.
//! * Blob: `version (1) ‖ IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`,
//!   AES-GCM with a random IV (the OS's generator) for every encryption and
//!   [`AAD`] as additional data. A blob that does not authenticate (another
//!   key, a modified blob) is [`WrapError::Refused`], never garbage.
//! * A token that cannot be reached (a removed token, a device error) is
//!   [`WrapError::Unavailable`]; any other failure is
//!   [`WrapError::Refused`].
//! * Only AES-GCM is supported: `mechanism` naming anything else (RSA OAEP
//!   included) is refused, and so are the RSA-only options
//!   `rsa_oaep_hash` and `disable_software_encryption = true`.
//! * The PIN is kept as cryptoki's `AuthPin` (zeroized on drop) and never
//!   appears in `Debug` output, logs or errors.
//! * PKCS#11 logins are per application and token: while one session of
//!   this process is logged in to a token, `C_Login` on another answers
//!   `CKR_USER_ALREADY_LOGGED_IN`, which counts as a login.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::{config_error, parse_bool, ConfigError, KeyWrapper, Options, WrapError};

/// The options `seal "pkcs11"` takes.
pub const OPTIONS: &[&str] = &[
    "lib",
    "slot",
    "token_label",
    "pin",
    "key_label",
    "key_id",
    "mechanism",
    "rsa_oaep_hash",
    "disable_software_encryption",
    "generate_key",
    "disabled",
];

/// The blob format's version (its first byte).
pub const BLOB_VERSION: u8 = 1;
/// The GCM IV's length.
pub const IV_LEN: usize = 12;
/// The GCM tag's length (128 bits).
pub const TAG_LEN: usize = 16;
/// The additional authenticated data of every encryption.
pub const AAD: &[u8] = b"arca root key";

/// The PKCS#11 seal's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The module (shared object) to load.
    pub lib: PathBuf,
    /// The slot number, when given.
    pub slot: Option<u64>,
    /// The token's label, when given (with `slot`, the token in that slot
    /// must carry it).
    pub token_label: Option<String>,
    pub pin: Zeroizing<String>,
    pub key_label: String,
    /// `CKA_ID` of the key, when given.
    pub key_id: Option<Vec<u8>>,
    /// Create the key when the token has none with the label (and id).
    pub generate_key: bool,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("lib", &self.lib)
            .field("slot", &self.slot)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .field("key_label", &self.key_label)
            .field("key_id", &self.key_id.as_ref().map(hex::encode))
            .field("generate_key", &self.generate_key)
            .finish()
    }
}

impl Pkcs11Config {
    /// From a `seal "pkcs11"` block, with the environment variables OpenBao
    /// documents (`BAO_HSM_*`, or Vault's `VAULT_HSM_*`) filling what the
    /// block leaves out.
    pub fn from_options(
        opts: &BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Pkcs11Config, ConfigError> {
        let vars = |suffix: &str| [format!("BAO_HSM_{suffix}"), format!("VAULT_HSM_{suffix}")];
        let o = Options::new("pkcs11", opts, env);
        let get = |name: &str| o.get(name, &vars(&name.to_ascii_uppercase()));
        let required = |name: &str| o.required(name, &vars(&name.to_ascii_uppercase()));

        if let Some(m) = get("mechanism") {
            check_mechanism(&m)?;
        }
        if let Some(h) = get("rsa_oaep_hash") {
            return Err(config_error(
                "rsa_oaep_hash",
                format!("only applies to RSA OAEP, and Arca's PKCS#11 seal only supports AES-GCM: remove rsa_oaep_hash ({h:?})"),
            ));
        }
        // Only in the block: OpenBao documents no environment variable.
        if let Some(v) = opts.get("disable_software_encryption") {
            if parse_bool("disable_software_encryption", v)? {
                return Err(config_error(
                    "disable_software_encryption",
                    "only applies to RSA mechanisms, and Arca's PKCS#11 seal only supports AES-GCM (which always encrypts in the HSM): remove it or set it to false",
                ));
            }
        }

        let lib = PathBuf::from(required("lib")?.trim());
        let slot = get("slot").map(|s| parse_slot(&s)).transpose()?;
        let token_label = get("token_label");
        if slot.is_none() && token_label.is_none() {
            return Err(config_error(
                "slot",
                "slot or token_label is required (set one in the seal \"pkcs11\" block or in BAO_HSM_SLOT or BAO_HSM_TOKEN_LABEL)",
            ));
        }
        let pin = Zeroizing::new(required("pin")?);
        let key_label = required("key_label")?;
        let key_id = get("key_id").map(|s| parse_key_id(&s)).transpose()?;
        let generate_key = get("generate_key")
            .map(|v| parse_bool("generate_key", &v))
            .transpose()?
            .unwrap_or(false);
        Ok(Pkcs11Config {
            lib,
            slot,
            token_label,
            pin,
            key_label,
            key_id,
            generate_key,
        })
    }
}

/// Accepts AES-GCM by any of its names, refuses everything else.
fn check_mechanism(v: &str) -> Result<(), ConfigError> {
    let t = v.trim();
    let upper = t.to_ascii_uppercase();
    let number = match upper.strip_prefix("0X") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse::<u64>().ok(),
    };
    const SUPPORTED: &str = "only AES-GCM is supported (AES_GCM, CKM_AES_GCM or 0x1087)";
    if matches!(upper.as_str(), "AES_GCM" | "CKM_AES_GCM") || number == Some(0x1087) {
        Ok(())
    } else if matches!(upper.as_str(), "RSA_PKCS_OAEP" | "CKM_RSA_PKCS_OAEP") || number == Some(0x9)
    {
        Err(config_error(
            "mechanism",
            format!("RSA_PKCS_OAEP ({t:?}) is not supported by Arca's PKCS#11 seal: {SUPPORTED}"),
        ))
    } else {
        Err(config_error(
            "mechanism",
            format!("{t:?} is not supported: {SUPPORTED}"),
        ))
    }
}

/// A slot number, decimal as OpenBao documents it (or `0x`-prefixed hex).
fn parse_slot(v: &str) -> Result<u64, ConfigError> {
    let t = v.trim();
    let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse::<u64>(),
    };
    n.map_err(|_| {
        config_error(
            "slot",
            format!("must be a slot number (decimal, or hex with 0x), not {t:?}"),
        )
    })
}

/// A key id in hex (`0x` prefix allowed).
fn parse_key_id(v: &str) -> Result<Vec<u8>, ConfigError> {
    let t = v.trim();
    let h = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if h.is_empty() {
        return Err(config_error("key_id", "is empty after its 0x prefix"));
    }
    hex::decode(h).map_err(|e| {
        config_error(
            "key_id",
            format!("must be hexadecimal (such as 0x33333435), not {t:?}: {e}"),
        )
    })
}

/// The process's loaded modules, by path: each is loaded and initialised
/// once, and never finalised (other wrappers may share it).
fn module(lib: &Path) -> Result<Pkcs11, ConfigError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let key = lib.canonicalize().unwrap_or_else(|_| lib.to_path_buf());
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = modules.get(&key) {
        return Ok(m.clone());
    }
    let m = Pkcs11::new(&key).map_err(|e| {
        config_error(
            "lib",
            format!("cannot load the PKCS#11 module {}: {e}", lib.display()),
        )
    })?;
    match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(config_error(
                "lib",
                format!(
                    "initializing the PKCS#11 module {} failed: {}",
                    lib.display(),
                    short(&e)
                ),
            ))
        }
    }
    modules.insert(key, m.clone());
    Ok(m)
}

/// A cryptoki error in a line (`C_Login: CKR_PIN_INCORRECT`); cryptoki's
/// own `Display` adds the specification's paragraph.
fn short(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("C_{f:?}: {}", ckr(rv)),
        other => other.to_string(),
    }
}

/// `PinIncorrect` → `CKR_PIN_INCORRECT`.
fn ckr(rv: &RvError) -> String {
    let name = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The token is not there or not working: worth retrying later.
fn is_unavailable(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionCount
                | RvError::HostMemory
                | RvError::FunctionFailed
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// The session (or the key's handle in it) is gone: open it again.
fn is_stale_session(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::DeviceError,
            _
        )
    )
}

/// Why a session could not be opened, naming the option to fix.
struct OpenError {
    option: &'static str,
    message: String,
    unavailable: bool,
}

impl OpenError {
    fn new(option: &'static str, message: String, e: Option<&CkError>) -> Self {
        OpenError {
            option,
            message,
            unavailable: e.is_some_and(is_unavailable),
        }
    }

    fn into_config(self) -> ConfigError {
        config_error(self.option, self.message)
    }

    fn into_wrap(self) -> WrapError {
        if self.unavailable {
            WrapError::Unavailable(self.message)
        } else {
            WrapError::Refused(self.message)
        }
    }
}

/// A logged-in session and the key's handle in it.
struct Open {
    session: Session,
    key: ObjectHandle,
}

struct Inner {
    ctx: Pkcs11,
    lib: PathBuf,
    slot: Slot,
    token_label: String,
    pin: AuthPin,
    key_label: String,
    key_id: Option<Vec<u8>>,
    open: Mutex<Option<Open>>,
}

/// The PKCS#11 seal's wrapper.
pub struct Pkcs11Seal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pkcs11Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Seal")
            .field("lib", &self.inner.lib)
            .field("slot", &self.inner.slot.id())
            .field("token_label", &self.inner.token_label)
            .field("key_label", &self.inner.key_label)
            .field("key_id", &self.inner.key_id.as_ref().map(hex::encode))
            .finish_non_exhaustive()
    }
}

impl Pkcs11Seal {
    /// Loads the module, finds the token, logs in and finds (or, with
    /// `generate_key`, creates) the key: any failure is a [`ConfigError`]
    /// naming the option to fix. Blocks while the token answers (the
    /// server builds its seal once, at start-up).
    pub fn new(config: Pkcs11Config) -> Result<Arc<Pkcs11Seal>, ConfigError> {
        let ctx = module(&config.lib)?;
        let (slot, token_label) = find_slot(&ctx, &config)?;
        let inner = Inner {
            ctx,
            lib: config.lib.clone(),
            slot,
            token_label,
            pin: AuthPin::from(config.pin.as_str()),
            key_label: config.key_label.clone(),
            key_id: config.key_id.clone(),
            open: Mutex::new(None),
        };
        let open = inner
            .open_session(config.generate_key)
            .map_err(OpenError::into_config)?;
        *inner.open.lock().unwrap_or_else(PoisonError::into_inner) = Some(open);
        Ok(Arc::new(Pkcs11Seal {
            inner: Arc::new(inner),
        }))
    }

    /// Runs `f` on the blocking pool (cryptoki calls block).
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R, WrapError> + Send + 'static,
    ) -> Result<R, WrapError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| WrapError::Unavailable(format!("the PKCS#11 call did not finish: {e}")))?
    }
}

/// The slot named by `slot` and/or `token_label`, and its token's label.
fn find_slot(ctx: &Pkcs11, config: &Pkcs11Config) -> Result<(Slot, String), ConfigError> {
    let lib = config.lib.display();
    if let Some(n) = config.slot {
        let slot = Slot::try_from(n)
            .map_err(|e| config_error("slot", format!("slot {n} is out of range: {e}")))?;
        let info = ctx.get_token_info(slot).map_err(|e| {
            let have = token_list(ctx);
            config_error(
                "slot",
                format!(
                    "no usable token in slot {n} of {lib} ({}); tokens: {have}",
                    short(&e)
                ),
            )
        })?;
        let label = info.label().trim_end().to_string();
        if let Some(want) = &config.token_label {
            if want.trim_end() != label {
                return Err(config_error(
                    "token_label",
                    format!("the token in slot {n} of {lib} is labelled {label:?}, not {want:?}"),
                ));
            }
        }
        return Ok((slot, label));
    }
    let want = config.token_label.as_deref().unwrap_or_default().trim_end();
    let slots = ctx.get_slots_with_token().map_err(|e| {
        config_error(
            "token_label",
            format!("listing the slots of {lib} failed: {}", short(&e)),
        )
    })?;
    let found: Vec<Slot> = slots
        .into_iter()
        .filter(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == want)
        })
        .collect();
    match found.as_slice() {
        [slot] => Ok((*slot, want.to_string())),
        [] => Err(config_error(
            "token_label",
            format!(
                "no token labelled {want:?} in {lib}; tokens: {}",
                token_list(ctx)
            ),
        )),
        several => Err(config_error(
            "token_label",
            format!(
                "{} tokens are labelled {want:?} in {lib} (slots {}): set slot to choose one",
                several.len(),
                several
                    .iter()
                    .map(|s| s.id().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `slot 1: "label", ...` for error messages.
fn token_list(ctx: &Pkcs11) -> String {
    let list: Vec<String> = ctx
        .get_slots_with_token()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            ctx.get_token_info(s).ok().map(|i| {
                if i.token_initialized() {
                    format!("slot {}: {:?}", s.id(), i.label().trim_end())
                } else {
                    format!("slot {}: not initialised", s.id())
                }
            })
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl Inner {
    fn describe_key(&self) -> String {
        let id = match &self.key_id {
            Some(id) => format!(" with id 0x{}", hex::encode(id)),
            None => String::new(),
        };
        format!(
            "key labelled {:?}{id} in token {:?} (slot {}) of {}",
            self.key_label,
            self.token_label,
            self.slot.id(),
            self.lib.display()
        )
    }

    /// Opens a read-write session, logs in, finds the key (creating it when
    /// `generate` is set and it is missing).
    fn open_session(&self, generate: bool) -> Result<Open, OpenError> {
        let token = format!(
            "token {:?} (slot {}) of {}",
            self.token_label,
            self.slot.id(),
            self.lib.display()
        );
        let session = self.ctx.open_rw_session(self.slot).map_err(|e| {
            OpenError::new(
                "slot",
                format!("opening a session with {token} failed: {}", short(&e)),
                Some(&e),
            )
        })?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => {
                let why = match &e {
                    CkError::Pkcs11(RvError::PinIncorrect, _) => "the PIN is incorrect",
                    CkError::Pkcs11(RvError::PinLocked, _) => "the user PIN is locked",
                    CkError::Pkcs11(RvError::PinExpired, _) => "the user PIN has expired",
                    CkError::Pkcs11(RvError::PinLenRange | RvError::PinInvalid, _) => {
                        "the PIN is not valid for this token"
                    }
                    CkError::Pkcs11(RvError::UserPinNotInitialized, _) => {
                        "the token's user PIN is not initialised"
                    }
                    _ => "logging in failed",
                };
                return Err(OpenError::new(
                    "pin",
                    format!("logging in to {token} as the user: {why} ({})", short(&e)),
                    Some(&e),
                ));
            }
        }
        let key = match self.find_key(&session)? {
            Some(k) => k,
            None if generate => self.generate_key(&session)?,
            None => {
                return Err(OpenError::new(
                    "key_label",
                    format!(
                        "there is no AES {}: create it in the token, or set generate_key = \"true\" to have Arca create it",
                        self.describe_key()
                    ),
                    None,
                ))
            }
        };
        Ok(Open { session, key })
    }

    fn find_key(&self, session: &Session) -> Result<Option<ObjectHandle>, OpenError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        if let Some(id) = &self.key_id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = session.find_objects(&template).map_err(|e| {
            OpenError::new(
                "key_label",
                format!(
                    "looking up the {} failed: {}",
                    self.describe_key(),
                    short(&e)
                ),
                Some(&e),
            )
        })?;
        let key = match found.as_slice() {
            [] => return Ok(None),
            [key] => *key,
            several => {
                return Err(OpenError::new(
                    "key_id",
                    format!(
                        "{} secret keys match the {}: set key_id to choose one",
                        several.len(),
                        self.describe_key()
                    ),
                    None,
                ))
            }
        };
        let attrs = session
            .get_attributes(key, &[AttributeType::KeyType])
            .map_err(|e| {
                OpenError::new(
                    "key_label",
                    format!(
                        "reading the type of the {} failed: {}",
                        self.describe_key(),
                        short(&e)
                    ),
                    Some(&e),
                )
            })?;
        match attrs.first() {
            Some(Attribute::KeyType(t)) if *t == KeyType::AES => Ok(Some(key)),
            Some(Attribute::KeyType(t)) => Err(OpenError::new(
                "key_label",
                format!(
                    "the {} is a {t} key: the PKCS#11 seal needs an AES key (AES-GCM)",
                    self.describe_key()
                ),
                None,
            )),
            _ => Err(OpenError::new(
                "key_label",
                format!(
                    "the token did not tell the type of the {}",
                    self.describe_key()
                ),
                None,
            )),
        }
    }

    fn generate_key(&self, session: &Session) -> Result<ObjectHandle, OpenError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        if let Some(id) = &self.key_id {
            template.push(Attribute::Id(id.clone()));
        }
        let key = session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| {
                OpenError::new(
                    "generate_key",
                    format!(
                        "creating the AES-256 {} failed: {}",
                        self.describe_key(),
                        short(&e)
                    ),
                    Some(&e),
                )
            })?;
        tracing::info!(
            "pkcs11 seal: created the AES-256 {} (generate_key = true)",
            self.describe_key()
        );
        Ok(key)
    }

    /// Runs `op` with the kept session, opening it again once when the
    /// token dropped it.
    fn with_session<R>(
        &self,
        what: &str,
        op: impl Fn(&Session, ObjectHandle) -> Result<R, CkError>,
    ) -> Result<R, Failure> {
        let mut guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut retried = false;
        loop {
            let open = match guard.take() {
                Some(open) => open,
                None => self.open_session(false).map_err(Failure::Open)?,
            };
            match op(&open.session, open.key) {
                Ok(r) => {
                    *guard = Some(open);
                    return Ok(r);
                }
                Err(e) if !retried && is_stale_session(&e) => {
                    tracing::warn!(
                        "pkcs11 seal: {what} with the {} failed ({}); opening a new session",
                        self.describe_key(),
                        short(&e)
                    );
                    drop(open);
                    retried = true;
                }
                Err(e) => {
                    if !is_stale_session(&e) {
                        *guard = Some(open);
                    }
                    let msg = format!(
                        "{what} with the {} failed: {}",
                        self.describe_key(),
                        short(&e)
                    );
                    return Err(Failure::Op(e, msg));
                }
            }
        }
    }

    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapError> {
        let mut iv = [0u8; IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let ct = self
            .with_session("encryption", |session, key| {
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, AAD, ((TAG_LEN * 8) as u64).into())?;
                session.encrypt(&Mechanism::AesGcm(params), key, plaintext)
            })
            .map_err(Failure::into_wrap)?;
        if ct.len() != plaintext.len() + TAG_LEN {
            return Err(WrapError::Refused(format!(
                "the {} returned {} bytes of AES-GCM ciphertext for {} bytes of plaintext",
                self.describe_key(),
                ct.len(),
                plaintext.len()
            )));
        }
        let mut blob = Vec::with_capacity(1 + IV_LEN + ct.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&ct);
        Ok(blob)
    }

    fn decrypt(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        match blob.first() {
            None => {
                return Err(WrapError::Refused(
                    "the stored PKCS#11 blob is empty".into(),
                ))
            }
            Some(&BLOB_VERSION) => {}
            Some(v) => {
                return Err(WrapError::Refused(format!(
                "the stored PKCS#11 blob has version {v}; this Arca knows version {BLOB_VERSION}"
            )))
            }
        }
        if blob.len() < 1 + IV_LEN + TAG_LEN {
            return Err(WrapError::Refused(format!(
                "the stored PKCS#11 blob is too short ({} bytes)",
                blob.len()
            )));
        }
        let iv: [u8; IV_LEN] = blob[1..1 + IV_LEN].try_into().expect("IV_LEN bytes");
        let ct = &blob[1 + IV_LEN..];
        self.with_session("decryption", |session, key| {
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, AAD, ((TAG_LEN * 8) as u64).into())?;
            session
                .decrypt(&Mechanism::AesGcm(params), key, ct)
                .map(Zeroizing::new)
        })
        .map_err(|f| match f {
            Failure::Op(e, _) if !is_unavailable(&e) => WrapError::Refused(format!(
                "cipher: message authentication failed: the stored root key blob does not decrypt with the {} (another key, or a modified blob): {}",
                self.describe_key(),
                short(&e)
            )),
            other => other.into_wrap(),
        })
    }
}

/// Why a call with the kept session failed.
enum Failure {
    /// No session could be opened (the token, the PIN, the key).
    Open(OpenError),
    /// The call itself failed, and the message says which.
    Op(CkError, String),
}

impl Failure {
    fn into_wrap(self) -> WrapError {
        match self {
            Failure::Open(e) => e.into_wrap(),
            Failure::Op(e, msg) if is_unavailable(&e) => WrapError::Unavailable(msg),
            Failure::Op(_, msg) => WrapError::Refused(msg),
        }
    }
}

#[async_trait]
impl KeyWrapper for Pkcs11Seal {
    fn seal_type(&self) -> &'static str {
        "pkcs11"
    }

    async fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, WrapError> {
        let pt = Zeroizing::new(plaintext.to_vec());
        self.blocking(move |inner| inner.encrypt(&pt)).await
    }

    async fn unwrap(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        let blob = blob.to_vec();
        self.blocking(move |inner| inner.decrypt(&blob)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    const BASE: &[(&str, &str)] = &[
        ("lib", "/usr/lib/softhsm/libsofthsm2.so"),
        ("token_label", "arca"),
        ("pin", "4321"),
        ("key_label", "root"),
    ];

    fn with(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut o = opts(BASE);
        o.extend(opts(extra));
        o
    }

    #[test]
    fn options_come_from_the_block_then_the_environment() {
        let env = |k: &str| match k {
            "BAO_HSM_PIN" => Some("env-pin-9876".to_string()),
            "VAULT_HSM_SLOT" => Some("0x10".to_string()),
            "BAO_HSM_KEY_ID" => Some("0x0a0B".to_string()),
            "BAO_HSM_GENERATE_KEY" => Some("true".to_string()),
            _ => None,
        };
        let c = Pkcs11Config::from_options(
            &opts(&[
                ("lib", "/usr/lib/softhsm/libsofthsm2.so"),
                ("key_label", "root"),
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(c.pin.as_str(), "env-pin-9876");
        assert_eq!(c.slot, Some(16));
        assert_eq!(c.token_label, None);
        assert_eq!(c.key_id, Some(vec![0x0a, 0x0b]));
        assert!(c.generate_key);
        assert!(!format!("{c:?}").contains("env-pin-9876"));

        let c =
            Pkcs11Config::from_options(&with(&[("slot", "2305843009213693953")]), &none).unwrap();
        assert_eq!(c.slot, Some(2305843009213693953));
        assert_eq!(c.token_label.as_deref(), Some("arca"));
        assert_eq!(c.key_id, None);
        assert!(!c.generate_key);
        assert!(!format!("{c:?}").contains("4321"));
    }

    #[test]
    fn aes_gcm_is_the_only_mechanism() {
        for m in ["AES_GCM", "CKM_AES_GCM", "ckm_aes_gcm", "0x1087", "4231"] {
            Pkcs11Config::from_options(&with(&[("mechanism", m)]), &none)
                .unwrap_or_else(|e| panic!("{m}: {e}"));
        }
        for m in [
            "RSA_PKCS_OAEP",
            "CKM_RSA_PKCS_OAEP",
            "0x0009",
            "AES_CBC_PAD",
            "0x1085",
        ] {
            let e = Pkcs11Config::from_options(&with(&[("mechanism", m)]), &none).unwrap_err();
            assert_eq!(e.option, "mechanism", "{m}");
            assert!(e.message.contains("only AES-GCM is supported"), "{m}: {e}");
        }
        let e = Pkcs11Config::from_options(&with(&[("mechanism", "RSA_PKCS_OAEP")]), &none)
            .unwrap_err();
        assert!(e.message.contains("RSA_PKCS_OAEP"), "{e}");
        let env = |k: &str| (k == "BAO_HSM_MECHANISM").then(|| "CKM_RSA_PKCS_OAEP".to_string());
        let e = Pkcs11Config::from_options(&opts(BASE), &env).unwrap_err();
        assert_eq!(e.option, "mechanism");
    }

    #[test]
    fn rsa_options_are_refused_not_ignored() {
        let e =
            Pkcs11Config::from_options(&with(&[("rsa_oaep_hash", "sha256")]), &none).unwrap_err();
        assert_eq!(e.option, "rsa_oaep_hash");
        assert!(e.message.contains("AES-GCM"), "{e}");
        let env = |k: &str| (k == "BAO_HSM_RSA_OAEP_HASH").then(|| "sha1".to_string());
        let e = Pkcs11Config::from_options(&opts(BASE), &env).unwrap_err();
        assert_eq!(e.option, "rsa_oaep_hash");
        Pkcs11Config::from_options(&with(&[("rsa_oaep_hash", "")]), &none).unwrap();

        let e =
            Pkcs11Config::from_options(&with(&[("disable_software_encryption", "true")]), &none)
                .unwrap_err();
        assert_eq!(e.option, "disable_software_encryption");
        let e =
            Pkcs11Config::from_options(&with(&[("disable_software_encryption", "maybe")]), &none)
                .unwrap_err();
        assert_eq!(e.option, "disable_software_encryption");
        Pkcs11Config::from_options(&with(&[("disable_software_encryption", "false")]), &none)
            .unwrap();
    }

    #[test]
    fn configuration_errors_name_the_option() {
        let without = |name: &str| {
            let mut o = opts(BASE);
            o.remove(name);
            Pkcs11Config::from_options(&o, &none).unwrap_err()
        };
        for name in ["lib", "pin", "key_label"] {
            let e = without(name);
            assert_eq!(e.option, name);
            assert!(e.message.contains("is required"), "{e}");
            assert!(
                e.message
                    .contains(&format!("BAO_HSM_{}", name.to_uppercase())),
                "{e}"
            );
        }
        let e = without("token_label");
        assert_eq!(e.option, "slot");
        assert!(e.message.contains("token_label"), "{e}");

        let e = Pkcs11Config::from_options(&with(&[("slot", "first")]), &none).unwrap_err();
        assert_eq!(e.option, "slot");
        let e = Pkcs11Config::from_options(&with(&[("key_id", "0xzz")]), &none).unwrap_err();
        assert_eq!(e.option, "key_id");
        let e = Pkcs11Config::from_options(&with(&[("key_id", "0x")]), &none).unwrap_err();
        assert_eq!(e.option, "key_id");
        let e = Pkcs11Config::from_options(&with(&[("generate_key", "yes")]), &none).unwrap_err();
        assert_eq!(e.option, "generate_key");
    }

    #[test]
    fn pkcs11_errors_read_in_a_line() {
        assert_eq!(ckr(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            short(&CkError::Pkcs11(
                RvError::EncryptedDataInvalid,
                cryptoki::context::Function::Decrypt
            )),
            "C_Decrypt: CKR_ENCRYPTED_DATA_INVALID"
        );
    }
}
