//! A JWT as a login presents it: its header, its signature checked
//! against the keys, its claims checked against the config and the role.
//! Pure functions of their inputs (the time is a parameter), so that every
//! rule can be tested to the second.
//!
//! Invariants:
//! - Only compact JWS tokens with one asymmetric signature are accepted:
//!   `alg: none`, HMAC algorithms, unknown algorithms, algorithms outside
//!   `jwt_supported_algs`, `crit` headers and encrypted tokens are refused
//!   before any key is tried.
//! - The claims are read only after the signature verified.
//! - Time rules (as Vault's and OpenBao's JWT method apply them): a token
//!   needs at least one of `iat`, `nbf`, `exp`; a missing `exp` is the
//!   latest of `iat`/`nbf` plus `expiration_leeway`; a missing `nbf` is
//!   `iat`, or else `exp` minus `not_before_leeway`; then `nbf` and `iat`
//!   may be at most `clock_skew_leeway` in the future and `exp` at most
//!   `clock_skew_leeway` in the past. A leeway of 0 means its default
//!   (150 s, 150 s, 60 s), a negative one means none.
//! - A token with an audience is refused by a role without
//!   `bound_audiences`; with `bound_audiences`, one of them must be in
//!   `aud`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::keys::Key;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN: usize = 64 * 1024;

/// Every algorithm this server verifies, in the order Vault lists them.
pub const SUPPORTED_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Checks a `jwt_supported_algs` entry.
pub fn check_alg_name(name: &str) -> Result<Algorithm, String> {
    if SUPPORTED_ALGS.contains(&name) {
        return name.parse::<Algorithm>().map_err(|e| e.to_string());
    }
    if name == "ES512" {
        return Err(
            "ES512 is not available yet: P-521 signatures are not verified by this server".into(),
        );
    }
    Err(format!(
        "{name:?} is not a supported signing algorithm (supported: {})",
        SUPPORTED_ALGS.join(", ")
    ))
}

/// A token split and its header read; the signature is not checked yet.
#[derive(Debug)]
pub struct Token<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("malformed token: the {what} is not base64url"))
}

/// Splits a compact JWS and reads its header; refuses what no key may
/// verify. `allowed`: the config's `jwt_supported_algs` (empty: all of
/// [`SUPPORTED_ALGS`]).
pub fn parse<'a>(jwt: &'a str, allowed: &[String]) -> Result<Token<'a>, String> {
    let jwt = jwt.trim();
    if jwt.len() > MAX_TOKEN {
        return Err(format!("the token is longer than {MAX_TOKEN} bytes"));
    }
    let parts: Vec<&str> = jwt.split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err("encrypted tokens (JWE) are not supported: send a signed JWT".into()),
        _ => return Err("malformed token: a signed JWT has three parts separated by dots".into()),
    }
    let header: Map<String, Value> = serde_json::from_slice(&decode_part(parts[0], "header")?)
        .map_err(|_| "malformed token: the header is not a JSON object".to_string())?;
    let alg = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err("malformed token: the header has no \"alg\"".into()),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err("the token is unsigned (alg \"none\"); unsigned tokens are refused".into());
    }
    if alg.starts_with("HS") {
        return Err(format!(
            "the token is signed with {alg:?}, a shared-secret (HMAC) algorithm; only public-key signatures are accepted"
        ));
    }
    let parsed = check_alg_name(alg).map_err(|e| format!("the token's algorithm: {e}"))?;
    if !allowed.is_empty() && !allowed.iter().any(|a| a == alg) {
        return Err(format!(
            "the token is signed with {alg}, which is not in jwt_supported_algs ({})",
            allowed.join(", ")
        ));
    }
    if header.contains_key("crit") {
        return Err(
            "the token has critical header parameters (crit), which are not supported".into(),
        );
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("malformed token: the header's \"kid\" is not a string".into()),
    };
    if parts[2].is_empty() {
        return Err("the token has no signature".into());
    }
    let signing_input = &jwt[..parts[0].len() + 1 + parts[1].len()];
    Ok(Token {
        alg: parsed,
        kid,
        signing_input,
        payload: parts[1],
        signature: parts[2],
    })
}

/// Why no key verified a token.
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The token names a key id none of the keys has.
    UnknownKid(String),
    /// No key verifies this algorithm.
    NoKeyForAlg(Algorithm),
    /// Keys were tried; none verified the signature.
    BadSignature,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::UnknownKid(kid) => {
                let kid: String = kid.chars().take(100).collect();
                write!(f, "no signing key has the token's key id {kid:?}")
            }
            VerifyError::NoKeyForAlg(alg) => {
                write!(f, "no configured key verifies {alg:?} signatures")
            }
            VerifyError::BadSignature => write!(f, "the signature does not verify"),
        }
    }
}

impl Token<'_> {
    /// Checks the signature with the keys. `by_kid`: a token's `kid`
    /// selects the keys to try (fetched key sets); otherwise every key is
    /// tried (static PEM keys have no ids).
    pub fn verify(&self, keys: &[Key], by_kid: bool) -> Result<(), VerifyError> {
        let candidates: Vec<&Key> = match (&self.kid, by_kid) {
            (Some(kid), true) => {
                let c: Vec<&Key> = keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if c.is_empty() {
                    return Err(VerifyError::UnknownKid(kid.clone()));
                }
                c
            }
            _ => keys.iter().collect(),
        };
        let usable: Vec<&Key> = candidates
            .into_iter()
            .filter(|k| k.accepts(self.alg))
            .collect();
        if usable.is_empty() {
            return Err(VerifyError::NoKeyForAlg(self.alg));
        }
        for k in usable {
            if jsonwebtoken::crypto::verify(
                self.signature,
                self.signing_input.as_bytes(),
                &k.decoding,
                self.alg,
            )
            .unwrap_or(false)
            {
                return Ok(());
            }
        }
        Err(VerifyError::BadSignature)
    }

    /// The claims; call only after [`Token::verify`] succeeded.
    pub fn claims(&self) -> Result<Map<String, Value>, String> {
        serde_json::from_slice(&decode_part(self.payload, "payload")?)
            .map_err(|_| "malformed token: the claims are not a JSON object".to_string())
    }
}

/// Leeways as a role stores them (seconds; 0: default; negative: none).
#[derive(Debug, Clone, Copy)]
pub struct Leeways {
    pub clock_skew: i64,
    pub expiration: i64,
    pub not_before: i64,
}

/// The default of `expiration_leeway` and `not_before_leeway`.
pub const DEFAULT_LEEWAY: i64 = 150;
/// The default of `clock_skew_leeway`.
pub const DEFAULT_CLOCK_SKEW: i64 = 60;

fn effective(leeway: i64, default: i64) -> i64 {
    match leeway {
        0 => default,
        l if l < 0 => 0,
        l => l,
    }
}

/// What the claims must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audiences: &'a [String],
    pub leeways: Leeways,
    /// Unix seconds.
    pub now: i64,
}

/// A numeric-date claim in whole seconds (0 when absent).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<i64, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => Ok(n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64)),
        Some(_) => Err(format!("the {name} claim is not a number")),
    }
}

/// The `aud` claim as a list (a single string is a list of one).
pub fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, String> {
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "the aud claim is not a string or a list of strings".to_string())
            })
            .collect(),
        Some(_) => Err("the aud claim is not a string or a list of strings".into()),
    }
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Checks issuer, subject, audience and the time claims.
pub fn validate_claims(claims: &Map<String, Value>, e: &Expected<'_>) -> Result<(), String> {
    if !e.issuer.is_empty() && string_claim(claims, "iss") != e.issuer {
        return Err("the issuer (iss claim) is not the configured bound_issuer".into());
    }
    if !e.subject.is_empty() && string_claim(claims, "sub") != e.subject {
        return Err("the subject (sub claim) does not match the role's bound_subject".into());
    }
    let aud = audiences(claims)?;
    if e.audiences.is_empty() {
        if !aud.is_empty() {
            return Err(
                "the token has an audience (aud claim) but the role has no bound_audiences".into(),
            );
        }
    } else if !e.audiences.iter().any(|a| aud.contains(a)) {
        return Err("the audience (aud claim) matches none of the role's bound_audiences".into());
    }

    let iat = numeric_date(claims, "iat")?;
    let mut nbf = numeric_date(claims, "nbf")?;
    let mut exp = numeric_date(claims, "exp")?;
    if iat == 0 && nbf == 0 && exp == 0 {
        return Err("the token has none of the iat, nbf and exp claims".into());
    }
    if exp == 0 {
        exp = iat.max(nbf) + effective(e.leeways.expiration, DEFAULT_LEEWAY);
    }
    if nbf == 0 {
        nbf = if iat != 0 {
            iat
        } else {
            exp - effective(e.leeways.not_before, DEFAULT_LEEWAY)
        };
    }
    let skew = effective(e.leeways.clock_skew, DEFAULT_CLOCK_SKEW);
    if e.now + skew < nbf {
        return Err("the token is not valid yet (nbf claim)".into());
    }
    if e.now - skew > exp {
        return Err("the token has expired (exp claim)".into());
    }
    if iat != 0 && e.now + skew < iat {
        return Err("the token was issued in the future (iat claim)".into());
    }
    Ok(())
}

/// A claim by name, or by JSON pointer (RFC 6901) when `pointer`.
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str, pointer: bool) -> Option<&'a Value> {
    let v = if pointer {
        if name.is_empty() || !name.starts_with('/') {
            return None;
        }
        let mut cur: &Value = claims.get(&unescape(name[1..].split('/').next()?))?;
        for seg in name[1..].split('/').skip(1) {
            cur = match cur {
                Value::Object(m) => m.get(&unescape(seg))?,
                Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        cur
    } else {
        claims.get(name)?
    };
    (!v.is_null()).then_some(v)
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// A claim named in `bound_claims` or `claim_mappings`: a JSON pointer when
/// it starts with `/`, a claim name otherwise (as in Vault).
pub fn lookup_auto<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    lookup(claims, name, name.starts_with('/'))
}

/// `*` matches any run of characters (possibly empty); nothing else is
/// special.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A claim or bound value as a list of scalars (strings, booleans,
/// numbers); `None` for anything else.
fn scalars(v: &Value) -> Option<Vec<&Value>> {
    match v {
        Value::String(_) | Value::Bool(_) | Value::Number(_) => Some(vec![v]),
        Value::Array(a) => Some(a.iter().collect()),
        _ => None,
    }
}

fn same_scalar(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        // A numeric claim compares by its integer part, as in Vault.
        (Value::Number(a), Value::Number(b)) => {
            let b = b
                .as_i64()
                .unwrap_or_else(|| b.as_f64().unwrap_or(0.0) as i64);
            a.as_i64() == Some(b)
        }
        _ => false,
    }
}

/// Checks a role's `bound_claims`: every bound claim is present and one of
/// its values matches one of the claim's values.
pub fn validate_bound_claims(
    bound: &Map<String, Value>,
    glob: bool,
    claims: &Map<String, Value>,
) -> Result<(), String> {
    for (name, expected) in bound {
        let actual = lookup_auto(claims, name)
            .ok_or_else(|| format!("the claim {name:?} required by bound_claims is missing"))?;
        let actual = scalars(actual).ok_or_else(|| {
            format!("the claim {name:?} is not a string, boolean, number or list")
        })?;
        let expected = scalars(expected).ok_or_else(|| {
            format!("the bound_claims value of {name:?} is not a string, boolean, number or list")
        })?;
        let found = expected.iter().any(|e| {
            actual.iter().any(|a| match (glob, e, a) {
                (true, Value::String(p), Value::String(v)) => glob_match(p, v),
                (true, _, _) => false,
                (false, e, a) => same_scalar(e, a),
            })
        });
        if !found {
            return Err(format!(
                "the claim {name:?} matches none of the values bound_claims allows"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*", "abc"));
        assert!(glob_match("*c", "abc"));
        assert!(glob_match("a*c", "ac"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "a-c"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match(
            "repo:org/*:ref:refs/heads/main",
            "repo:org/x:ref:refs/heads/main"
        ));
        assert!(!glob_match("repo:org/*", "repo:other/x"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("é*ü", "éaü"));
        assert!(!glob_match("a*ü", "aé"));
    }

    #[test]
    fn json_pointers() {
        let c = json!({"a": {"b/c": [1, {"d~e": "x"}]}, "top": "t", "/weird": "w"});
        let c = c.as_object().unwrap();
        assert_eq!(lookup(c, "/a/b~1c/1/d~0e", true), Some(&json!("x")));
        assert_eq!(lookup(c, "/a/missing", true), None);
        assert_eq!(lookup(c, "top", true), None);
        assert_eq!(lookup(c, "/weird", false), Some(&json!("w")));
        assert_eq!(lookup_auto(c, "top"), Some(&json!("t")));
    }

    #[test]
    fn alg_names() {
        assert!(check_alg_name("RS256").is_ok());
        assert!(check_alg_name("EdDSA").is_ok());
        assert!(check_alg_name("ES512")
            .unwrap_err()
            .contains("not available yet"));
        assert!(check_alg_name("HS256").is_err());
        assert!(check_alg_name("none").is_err());
    }

    #[test]
    fn headers_refused_before_any_key_is_tried() {
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let body = enc(json!({"sub": "x"}));
        let tok = |h: serde_json::Value, sig: &str| format!("{}.{}.{}", enc(h), body, sig);
        let e = parse(&tok(json!({"alg": "none"}), ""), &[]).unwrap_err();
        assert!(e.contains("unsigned"), "{e}");
        let e = parse(&tok(json!({"alg": "HS256"}), "c2ln"), &[]).unwrap_err();
        assert!(e.contains("HMAC"), "{e}");
        let e = parse(&tok(json!({"alg": "RS256", "crit": ["x"]}), "c2ln"), &[]).unwrap_err();
        assert!(e.contains("crit"), "{e}");
        let e = parse(&tok(json!({"alg": "RS256"}), "c2ln"), &["ES256".into()]).unwrap_err();
        assert!(e.contains("jwt_supported_algs"), "{e}");
        let e = parse(&tok(json!({"alg": "RS256"}), ""), &[]).unwrap_err();
        assert!(e.contains("no signature"), "{e}");
        assert!(parse("a.b", &[]).is_err());
        assert!(parse("a.b.c.d.e", &[]).unwrap_err().contains("JWE"));
        let es = tok(json!({"alg": "ES256", "kid": "k1"}), "c2ln");
        let t = parse(&es, &[]).unwrap();
        assert_eq!((t.alg, t.kid.as_deref()), (Algorithm::ES256, Some("k1")));
    }
}
