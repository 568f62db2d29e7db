//! Username templates: the subset of Go's `text/template` language that
//! Vault's `username_template` option accepts (the database secrets engine
//! and others), with Vault's function set.
//!
//! A template is parsed (and statically checked) once, when the config
//! holding it is written, so a bad template is refused then, not at the
//! first credential request; rendering it afterwards only fails for values
//! that were not known when it was parsed (a `printf` format or `timestamp`
//! layout computed by the template itself).
//!
//! # Supported
//!
//! * Text outside actions, copied verbatim (a lone `}}` included).
//! * Actions `{{ pipeline }}`, with `{{- ` / ` -}}` trimming all the white
//!   space (space, tab, CR, LF) before / after the action, and comments
//!   `{{/* ... */}}` (also `{{- /* ... */ -}}`), which must start and end at
//!   the delimiters, as in Go.
//! * Pipelines `a | f x | g`: the value of each stage is passed as the LAST
//!   argument of the next stage, which must be a function call.
//! * Parenthesised sub-pipelines `(.RoleName | truncate 8)`, nested freely.
//! * Operands: the fields `.DisplayName` and `.RoleName`; string literals
//!   `"..."` with Go's escapes (`\a \b \f \n \r \t \v \\ \"`, `\xHH`, octal
//!   `\OOO` up to `\x7f`, `\uHHHH`, `\UHHHHHHHH`) and raw strings `` `...` ``;
//!   integer literals (decimal, `0x`, `0o`, `0b`, leading-`0` octal, `_`
//!   separators, optional sign); a function name with no arguments
//!   (`printf "%s" unix_time`), which is called with none, as in Go.
//! * Vault's functions: `random N` (N characters of `[A-Za-z0-9]`, from the
//!   OS RNG), `truncate N s` (at most N bytes, N > 0), `truncate_sha256 N s`
//!   (if `s` is longer than N bytes: its first N-8 bytes followed by the
//!   first 8 hex digits of the SHA-256 of the bytes cut off; N > 8),
//!   `uppercase s`, `lowercase s`, `replace OLD NEW s` (every occurrence),
//!   `sha256 s` (lower-case hex), `base64 s` (standard alphabet, padded),
//!   `unix_time`, `unix_time_millis`, `timestamp LAYOUT` (a Go time layout,
//!   rendered in UTC), `uuid` (random, version 4), and Go's builtin
//!   `printf FORMAT ARGS...` with the verbs `%s %d %v %q %x %X %%`, the flags
//!   `- + 0 space`, a width and a precision.
//!
//! Deviations from Go/Vault, all towards refusing or bounding: truncation
//! never splits a UTF-8 character (it cuts at the character boundary at or
//! below the limit, so the result is never longer than asked); `timestamp`
//! renders in UTC rather than the server's local zone; `random` is limited
//! to [`MAX_RANDOM_LEN`] characters and `printf` widths/precisions to
//! [`MAX_PRINTF_WIDTH`]; a `printf` whose verbs do not match its arguments in
//! number or type is an error (Go would render `%!d(string=...)` noise into
//! the username); a `timestamp` layout without any Go layout element
//! (`"%Y-%m-%d"`, say) is an error rather than printed literally.
//!
//! # Refused, with an error naming the construct
//!
//! `if`, `else`, `end`, `range`, `with`, `define`, `template`, `block`,
//! `break`, `continue`; variables (`$`, `$x`) and assignments (`:=`, `=`);
//! `.` on its own, chained fields (`.RoleName.X`) and field access on values
//! (`(x).Y`); the other Go builtins (`len`, `print`, `eq`, `index`, ...);
//! `true`, `false`, `nil`, character and floating-point constants; any
//! other field or function name; comments anywhere but at the delimiters;
//! unterminated actions, strings, comments and parentheses; empty actions
//! and pipeline stages; a wrong number or type of arguments (checked when
//! parsing: every function has a fixed signature and every value is a
//! string except integer literals); an empty template.
//!
//! # Invariants
//!
//! * Every `{{` of the source begins an action that is either fully
//!   evaluated or makes [`UsernameTemplate::parse`] fail: the text copied
//!   verbatim never contains `{{`, so the output never contains an
//!   unreplaced action. (A *value* may of course contain `{{`: a string
//!   literal, or a display name that holds one.)
//! * Nothing is silently ignored: a construct this module does not implement
//!   is an error, never dropped or copied through.
//! * Rendering does no I/O but reading the OS RNG; the clock is an argument.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Datelike, Timelike, Utc};
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// The most characters one `random` call may produce.
pub(crate) const MAX_RANDOM_LEN: i64 = 1024;
/// The longest template accepted.
pub(crate) const MAX_TEMPLATE_LEN: usize = 4096;
/// How deep parentheses may nest.
pub(crate) const MAX_DEPTH: usize = 32;
/// The longest value a `replace` may produce (nested replaces would
/// otherwise grow without bound).
pub(crate) const MAX_VALUE_LEN: usize = 4096;
/// The largest width or precision a `printf` verb may ask for.
pub(crate) const MAX_PRINTF_WIDTH: usize = 1024;

/// What a template can refer to.
pub(crate) struct TemplateData<'a> {
    /// `.DisplayName`: the display name of the token asking for credentials.
    pub display_name: &'a str,
    /// `.RoleName`: the name of the role the credentials are for.
    pub role_name: &'a str,
}

/// A place in a template's source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The position of byte `offset` of `src`.
    fn at(src: &str, offset: usize) -> Pos {
        let before = &src[..offset.min(src.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a template cannot be parsed or rendered (the message says where / what).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TemplateError {
    /// The template is the empty string.
    #[error("username template is empty")]
    Empty,
    /// Longer or deeper than the limits ([`MAX_TEMPLATE_LEN`],
    /// [`MAX_DEPTH`]).
    #[error("username template: {0}")]
    TooLarge(String),
    /// Malformed template text: unterminated action, string, comment or
    /// parenthesis, unexpected character or token, empty action, bad number.
    #[error("username template: syntax error at {pos}: {message}")]
    Syntax { pos: Pos, message: String },
    /// A valid Go template construct this implementation refuses.
    #[error(
        "username template: {construct} at {pos} is not supported (only text, actions \
         with pipelines of string/integer literals, .DisplayName, .RoleName and the \
         username functions are)"
    )]
    Unsupported { pos: Pos, construct: String },
    /// A name that is neither a function nor a construct.
    #[error(
        "username template: unknown function `{name}` at {pos} (available: random, \
         truncate, truncate_sha256, uppercase, lowercase, replace, sha256, base64, \
         unix_time, unix_time_millis, timestamp, uuid, printf)"
    )]
    UnknownFunction { pos: Pos, name: String },
    /// A field other than `.DisplayName` and `.RoleName`.
    #[error(
        "username template: unknown field `.{name}` at {pos} (available: .DisplayName, \
         .RoleName)"
    )]
    UnknownField { pos: Pos, name: String },
    /// A function called with the wrong number of arguments (a piped value
    /// counts as the last argument).
    #[error("username template: `{function}` at {pos} takes {expected} but was given {given}")]
    ArgumentCount {
        pos: Pos,
        function: &'static str,
        expected: String,
        given: usize,
    },
    /// A function argument of the wrong type (arguments count from 1, a
    /// piped value being the last).
    #[error(
        "username template: argument {index} of `{function}` at {pos} must be {expected}, \
         not {found}"
    )]
    ArgumentType {
        pos: Pos,
        function: &'static str,
        index: usize,
        expected: &'static str,
        found: &'static str,
    },
    /// An argument of the right type but an unusable value (a length out of
    /// range, a bad `printf` format, a bad `timestamp` layout, ...).
    #[error("username template: `{function}` at {pos}: {message}")]
    InvalidArgument {
        pos: Pos,
        function: &'static str,
        message: String,
    },
}

/// A parsed template (parse once when the config is written: bad templates are refused then).
#[derive(Debug, Clone)]
pub(crate) struct UsernameTemplate {
    nodes: Vec<Node>,
}

impl UsernameTemplate {
    /// Parses and checks `src`: syntax, supported constructs, names, the
    /// number and types of every function's arguments, and the values of
    /// literal arguments (lengths, `printf` formats, `timestamp` layouts).
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        if src.is_empty() {
            return Err(TemplateError::Empty);
        }
        if src.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLarge(format!(
                "the template is longer than {MAX_TEMPLATE_LEN} bytes"
            )));
        }
        // Parenthesised pipelines are parsed recursively: bound the depth
        // (counted over the whole text, literals included: a stricter
        // bound, never a looser one).
        let mut depth = 0usize;
        for c in src.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_DEPTH {
                return Err(TemplateError::TooLarge(format!(
                    "parentheses nest deeper than {MAX_DEPTH}"
                )));
            }
        }
        let nodes = parse_nodes(src)?;
        for node in &nodes {
            if let Node::Action(pipeline) = node {
                check_pipeline(pipeline)?;
            }
        }
        Ok(UsernameTemplate { nodes })
    }

    /// Renders the template for `data`.
    ///
    /// `now_unix_millis` is the engine's clock (milliseconds since the Unix
    /// epoch), read by `unix_time`, `unix_time_millis` and `timestamp`;
    /// `random` and `uuid` (version 4) draw from `rand::rngs::OsRng`. Fails
    /// only for a `printf` format or `timestamp` layout that the template
    /// computes and that turns out invalid, or a clock outside chrono's range
    /// (with `timestamp`).
    pub fn render(
        &self,
        data: &TemplateData<'_>,
        now_unix_millis: i64,
    ) -> Result<String, TemplateError> {
        let ctx = Ctx {
            data,
            now_unix_millis,
        };
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Action(pipeline) => match eval_pipeline(pipeline, &ctx)? {
                    Value::Str(s) => out.push_str(&s),
                    Value::Int(n) => out.push_str(&n.to_string()),
                },
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Syntax tree
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
}

/// `cmd | cmd | ...`: each command's value is the last argument of the next.
#[derive(Debug, Clone)]
struct Pipeline {
    commands: Vec<Command>,
}

/// `head args...`: a function call when `head` is a function name, else a
/// single operand with no arguments.
#[derive(Debug, Clone)]
struct Command {
    pos: Pos,
    head: Operand,
    args: Vec<Operand>,
}

#[derive(Debug, Clone)]
struct Operand {
    pos: Pos,
    kind: OperandKind,
}

#[derive(Debug, Clone)]
enum OperandKind {
    Str(String),
    Int(i64),
    Field(Field),
    /// A function name: called with the command's arguments when it heads a
    /// command, with none when it is an argument.
    Func(Func),
    Sub(Box<Pipeline>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    DisplayName,
    RoleName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Random,
    Truncate,
    TruncateSha256,
    Uppercase,
    Lowercase,
    Replace,
    Sha256,
    Base64,
    UnixTime,
    UnixTimeMillis,
    Timestamp,
    Uuid,
    Printf,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "random" => Func::Random,
            "truncate" => Func::Truncate,
            "truncate_sha256" => Func::TruncateSha256,
            "uppercase" => Func::Uppercase,
            "lowercase" => Func::Lowercase,
            "replace" => Func::Replace,
            "sha256" => Func::Sha256,
            "base64" => Func::Base64,
            "unix_time" => Func::UnixTime,
            "unix_time_millis" => Func::UnixTimeMillis,
            "timestamp" => Func::Timestamp,
            "uuid" => Func::Uuid,
            "printf" => Func::Printf,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Random => "random",
            Func::Truncate => "truncate",
            Func::TruncateSha256 => "truncate_sha256",
            Func::Uppercase => "uppercase",
            Func::Lowercase => "lowercase",
            Func::Replace => "replace",
            Func::Sha256 => "sha256",
            Func::Base64 => "base64",
            Func::UnixTime => "unix_time",
            Func::UnixTimeMillis => "unix_time_millis",
            Func::Timestamp => "timestamp",
            Func::Uuid => "uuid",
            Func::Printf => "printf",
        }
    }

    /// The parameter types; `None` for `printf` (a string, then anything).
    fn params(self) -> Option<&'static [Ty]> {
        use Ty::{Int, Str};
        Some(match self {
            Func::Random => &[Int],
            Func::Truncate | Func::TruncateSha256 => &[Int, Str],
            Func::Uppercase | Func::Lowercase | Func::Sha256 | Func::Base64 => &[Str],
            Func::Replace => &[Str, Str, Str],
            Func::UnixTime | Func::UnixTimeMillis | Func::Uuid => &[],
            Func::Timestamp => &[Str],
            Func::Printf => return None,
        })
    }
}

/// Go keywords that start control structures.
const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// Go's builtin template functions other than `printf`.
const GO_BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "println",
    "urlquery", "eq", "ne", "lt", "le", "gt", "ge",
];

// ---------------------------------------------------------------------------
// Values and static types
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
}

impl Ty {
    fn describe(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(i64),
}

impl Value {
    fn ty(&self) -> Ty {
        match self {
            Value::Str(_) => Ty::Str,
            Value::Int(_) => Ty::Int,
        }
    }
}

/// What is known of a value before rendering: its type, and its value when
/// it is a literal.
#[derive(Debug, Clone)]
struct Known {
    ty: Ty,
    value: Option<Value>,
}

impl Known {
    fn of(value: Value) -> Known {
        Known {
            ty: value.ty(),
            value: Some(value),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Go's white space inside actions and for trimming.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn syntax(src: &str, offset: usize, message: impl Into<String>) -> TemplateError {
    TemplateError::Syntax {
        pos: Pos::at(src, offset),
        message: message.into(),
    }
}

fn unsupported(src: &str, offset: usize, construct: impl Into<String>) -> TemplateError {
    TemplateError::Unsupported {
        pos: Pos::at(src, offset),
        construct: construct.into(),
    }
}

/// Splits `src` into text and actions.
fn parse_nodes(src: &str) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let Some(found) = src[i..].find("{{") else {
            nodes.push(Node::Text(src[i..].to_string()));
            break;
        };
        let open = i + found;
        let mut text = &src[i..open];
        let mut p = open + 2;
        // `{{- ` (a dash and one white-space character) trims the text before.
        let rest = &src[p..];
        if rest.starts_with('-') && rest[1..].chars().next().is_some_and(is_space) {
            text = text.trim_end_matches(is_space);
            p += 2;
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_string()));
        }
        let (end, trim_after) = if src[p..].starts_with("/*") {
            skip_comment(src, open, p)?
        } else {
            let (tokens, end, trim_after) = lex_action(src, open, p)?;
            let pipeline = Parser {
                src,
                tokens: &tokens,
                next: 0,
                end_offset: end,
            }
            .parse_action(open)?;
            nodes.push(Node::Action(pipeline));
            (end, trim_after)
        };
        i = end;
        if trim_after {
            i += src[i..].len() - src[i..].trim_start_matches(is_space).len();
        }
    }
    Ok(nodes)
}

/// A comment `/* ... */` starting at `p`, which must be followed by the
/// closing delimiter. Returns the offset after the delimiter and whether it
/// trims the following text.
fn skip_comment(src: &str, open: usize, p: usize) -> Result<(usize, bool), TemplateError> {
    let Some(close) = src[p + 2..].find("*/") else {
        return Err(syntax(src, open, "unclosed comment"));
    };
    let after = p + 2 + close + 2;
    let rest = &src[after..];
    if rest.starts_with("}}") {
        Ok((after + 2, false))
    } else if rest.chars().next().is_some_and(is_space) && rest[1..].starts_with("-}}") {
        Ok((after + 4, true))
    } else {
        Err(syntax(
            src,
            after,
            "comment ends before closing delimiter (comments must start and end at the \
             delimiters: {{/* ... */}})",
        ))
    }
}

#[derive(Debug, Clone)]
enum Tok {
    Str(String),
    Int(i64),
    Field(Field),
    Func(Func),
    LParen,
    RParen,
    Pipe,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Length in bytes of the identifier at the start of `s`.
fn ident_len(s: &str) -> usize {
    s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len())
}

/// Lexes the inside of the action opened at `open`, from `p`. Returns its
/// tokens, the offset after its closing delimiter and whether that trims the
/// following text.
fn lex_action(
    src: &str,
    open: usize,
    mut p: usize,
) -> Result<(Vec<Token>, usize, bool), TemplateError> {
    let mut tokens: Vec<Token> = Vec::new();
    // Where the previous token ended, if it can carry a field access
    // (`(x).Y`, `f.Y`, `"s".Y`).
    let mut value_end: Option<usize> = None;
    loop {
        let before_space = p;
        p += src[p..].len() - src[p..].trim_start_matches(is_space).len();
        let spaced = p > before_space;
        let rest = &src[p..];
        if rest.starts_with("}}") {
            return Ok((tokens, p + 2, false));
        }
        if spaced && rest.starts_with("-}}") {
            return Ok((tokens, p + 3, true));
        }
        let Some(c) = rest.chars().next() else {
            return Err(syntax(src, open, "unclosed action: no closing }}"));
        };
        let start = p;
        let mut ends_value = false;
        let tok = match c {
            '|' => {
                p += 1;
                Tok::Pipe
            }
            '(' => {
                p += 1;
                Tok::LParen
            }
            ')' => {
                p += 1;
                ends_value = true;
                Tok::RParen
            }
            '"' => {
                let (s, len) = lex_quoted(src, p)?;
                p += len;
                ends_value = true;
                Tok::Str(s)
            }
            '`' => {
                let Some(close) = rest[1..].find('`') else {
                    return Err(syntax(src, p, "unterminated raw quoted string"));
                };
                p += close + 2;
                ends_value = true;
                // As Go's strconv.Unquote: carriage returns are dropped.
                Tok::Str(rest[1..=close].replace('\r', ""))
            }
            '\'' => return Err(unsupported(src, p, "a character constant")),
            '$' => {
                let name = &rest[..1 + ident_len(&rest[1..])];
                return Err(unsupported(
                    src,
                    p,
                    format!("the variable `{name}` (template variables)"),
                ));
            }
            ':' if rest.starts_with(":=") => {
                return Err(unsupported(src, p, "variable declaration `:=`"))
            }
            '=' => return Err(unsupported(src, p, "variable assignment `=`")),
            '.' => {
                let after = &rest[1..];
                if after.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(unsupported(src, p, "a floating-point constant"));
                }
                if !after.starts_with(is_ident_start) {
                    return Err(unsupported(
                        src,
                        p,
                        "`.` on its own (the whole data object; use .DisplayName or .RoleName)",
                    ));
                }
                if let Some(end) = value_end.filter(|&end| end == p) {
                    return Err(unsupported(src, end, "field access on a value (`x.Field`)"));
                }
                let name = &after[..ident_len(after)];
                let field = match name {
                    "DisplayName" => Field::DisplayName,
                    "RoleName" => Field::RoleName,
                    _ => {
                        return Err(TemplateError::UnknownField {
                            pos: Pos::at(src, p),
                            name: name.to_string(),
                        })
                    }
                };
                p += 1 + name.len();
                if src[p..].starts_with('.') {
                    let more = &src[p + 1..];
                    return Err(unsupported(
                        src,
                        p,
                        format!(
                            "the chained field `.{name}.{}` (.{name} is a string)",
                            &more[..ident_len(more)]
                        ),
                    ));
                }
                Tok::Field(field)
            }
            '+' | '-' | '0'..='9' => {
                let (n, len) = lex_number(src, p)?;
                p += len;
                ends_value = true;
                Tok::Int(n)
            }
            c if is_ident_start(c) => {
                let name = &rest[..ident_len(rest)];
                let tok = if let Some(func) = Func::from_name(name) {
                    Tok::Func(func)
                } else if KEYWORDS.contains(&name) {
                    return Err(unsupported(src, p, format!("the `{{{{{name}}}}}` action")));
                } else if GO_BUILTINS.contains(&name) {
                    return Err(unsupported(
                        src,
                        p,
                        format!("the Go template builtin `{name}`"),
                    ));
                } else if matches!(name, "true" | "false" | "nil") {
                    return Err(unsupported(src, p, format!("the constant `{name}`")));
                } else {
                    return Err(TemplateError::UnknownFunction {
                        pos: Pos::at(src, p),
                        name: name.to_string(),
                    });
                };
                p += name.len();
                ends_value = true;
                tok
            }
            '/' if rest.starts_with("/*") => {
                return Err(syntax(
                    src,
                    p,
                    "a comment must start and end at the action delimiters: {{/* ... */}}",
                ))
            }
            '{' if rest.starts_with("{{") => {
                return Err(syntax(
                    src,
                    open,
                    "unclosed action: `{{` found before the closing }}",
                ))
            }
            other => {
                return Err(syntax(
                    src,
                    p,
                    format!("unexpected character {other:?} in action"),
                ))
            }
        };
        value_end = ends_value.then_some(p);
        tokens.push(Token { tok, start });
    }
}

/// An interpreted string literal starting with the `"` at `p`: its value
/// and its length in the source.
fn lex_quoted(src: &str, p: usize) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = src[p + 1..].char_indices();
    let unterminated = || syntax(src, p, "unterminated quoted string");
    loop {
        let Some((i, c)) = chars.next() else {
            return Err(unterminated());
        };
        match c {
            '"' => return Ok((out, i + 2)),
            '\n' => return Err(unterminated()),
            '\\' => {
                let Some((j, e)) = chars.next() else {
                    return Err(unterminated());
                };
                let at = p + 1 + j - 1;
                let bad = |what: &str| syntax(src, at, format!("{what} in quoted string"));
                let mut hex = |n: usize| -> Result<u32, TemplateError> {
                    let mut v = 0u32;
                    for _ in 0..n {
                        let d = chars.next().and_then(|(_, c)| c.to_digit(16));
                        v = v * 16 + d.ok_or_else(|| bad("malformed escape sequence"))?;
                    }
                    Ok(v)
                };
                let code = match e {
                    'a' => 0x07,
                    'b' => 0x08,
                    'f' => 0x0c,
                    'n' => 0x0a,
                    'r' => 0x0d,
                    't' => 0x09,
                    'v' => 0x0b,
                    '\\' => 0x5c,
                    '"' => 0x22,
                    'x' => hex(2)?,
                    'u' => hex(4)?,
                    'U' => hex(8)?,
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let d = chars.next().and_then(|(_, c)| c.to_digit(8));
                            v = v * 8 + d.ok_or_else(|| bad("malformed octal escape"))?;
                        }
                        v
                    }
                    _ => return Err(bad(&format!("unknown escape sequence \\{e}"))),
                };
                if matches!(e, 'x' | '0'..='7') && code > 0x7f {
                    return Err(bad(
                        "a byte escape above \\x7f (not UTF-8 text; use \\u instead)",
                    ));
                }
                out.push(char::from_u32(code).ok_or_else(|| bad("an invalid Unicode code point"))?);
            }
            c => out.push(c),
        }
    }
}

/// An integer literal at `p`, as Go's template parser reads numbers: an
/// optional sign, then decimal, `0x`, `0o`, `0b` or leading-`0` octal, with
/// `_` separators. Floats, imaginary numbers and the like are refused.
fn lex_number(src: &str, p: usize) -> Result<(i64, usize), TemplateError> {
    let rest = &src[p..];
    let (negative, sign_len) = match rest.as_bytes()[0] {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let body_len = rest[sign_len..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len() - sign_len);
    let body = &rest[sign_len..sign_len + body_len];
    let len = sign_len + body_len;
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(syntax(
            src,
            p,
            format!("bad number syntax: {:?}", &rest[..len.max(1)]),
        ));
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') && !lower.contains(['.', 'e']) {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let looks_float = radix == 10 && (digits.contains('.') || digits.contains('e'));
    if looks_float || digits.ends_with('i') {
        return Err(unsupported(
            src,
            p,
            format!("the non-integer number {:?}", &rest[..len]),
        ));
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let bad = || syntax(src, p, format!("bad number syntax: {:?}", &rest[..len]));
    if clean.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__")
    {
        return Err(bad());
    }
    let magnitude = u64::from_str_radix(&clean, radix).map_err(|_| bad())?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    let value = value.ok_or_else(|| syntax(src, p, "integer constant out of range"))?;
    Ok((value, len))
}

struct Parser<'s, 't> {
    src: &'s str,
    tokens: &'t [Token],
    next: usize,
    /// Offset of the action's end, for errors at the end of its tokens.
    end_offset: usize,
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn offset(&self) -> usize {
        self.peek()
            .map_or(self.end_offset.saturating_sub(2), |t| t.start)
    }

    fn parse_action(mut self, open: usize) -> Result<Pipeline, TemplateError> {
        if self.tokens.is_empty() {
            return Err(syntax(self.src, open, "empty action: missing value"));
        }
        self.parse_pipeline(None)
    }

    /// A pipeline up to the end of the action, or up to and including the
    /// `)` closing the parenthesis at `paren`.
    fn parse_pipeline(&mut self, paren: Option<usize>) -> Result<Pipeline, TemplateError> {
        let mut commands = Vec::new();
        loop {
            commands.push(self.parse_command()?);
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Pipe) => self.next += 1,
                Some(Tok::RParen) if paren.is_some() => {
                    self.next += 1;
                    return Ok(Pipeline { commands });
                }
                Some(_) => return Err(syntax(self.src, self.offset(), "unexpected `)`")),
                None => {
                    return match paren {
                        None => Ok(Pipeline { commands }),
                        Some(open) => Err(syntax(self.src, open, "unclosed parenthesis")),
                    }
                }
            }
        }
    }

    fn parse_command(&mut self) -> Result<Command, TemplateError> {
        let start = self.offset();
        let mut operands = Vec::new();
        while let Some(token) = self.peek() {
            let pos = Pos::at(self.src, token.start);
            let kind = match &token.tok {
                Tok::Pipe | Tok::RParen => break,
                Tok::Str(s) => OperandKind::Str(s.clone()),
                Tok::Int(n) => OperandKind::Int(*n),
                Tok::Field(f) => OperandKind::Field(*f),
                Tok::Func(f) => OperandKind::Func(*f),
                Tok::LParen => {
                    let open = token.start;
                    self.next += 1;
                    operands.push(Operand {
                        pos,
                        kind: OperandKind::Sub(Box::new(self.parse_pipeline(Some(open))?)),
                    });
                    continue;
                }
            };
            self.next += 1;
            operands.push(Operand { pos, kind });
        }
        if operands.is_empty() {
            return Err(syntax(
                self.src,
                start,
                "missing command (an empty pipeline stage or parenthesis)",
            ));
        }
        let head = operands.remove(0);
        Ok(Command {
            pos: head.pos,
            head,
            args: operands,
        })
    }
}

// ---------------------------------------------------------------------------
// Static checks (parse time) and the shared argument validation
// ---------------------------------------------------------------------------

fn check_pipeline(pipeline: &Pipeline) -> Result<Known, TemplateError> {
    let mut piped: Option<Known> = None;
    for command in &pipeline.commands {
        piped = Some(check_command(command, piped)?);
    }
    piped.ok_or_else(unreachable_empty_pipeline)
}

fn unreachable_empty_pipeline() -> TemplateError {
    // The parser never builds an empty pipeline; an error rather than a panic.
    TemplateError::Syntax {
        pos: Pos { line: 1, column: 1 },
        message: "empty pipeline".to_string(),
    }
}

fn check_command(command: &Command, piped: Option<Known>) -> Result<Known, TemplateError> {
    match &command.head.kind {
        OperandKind::Func(func) => {
            let mut args = command
                .args
                .iter()
                .map(check_operand)
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            validate_call(*func, command.pos, &args)?;
            Ok(Known {
                ty: Ty::Str,
                value: None,
            })
        }
        _ => {
            not_a_function(command, piped.is_some())?;
            check_operand(&command.head)
        }
    }
}

/// A command headed by something other than a function name takes no
/// arguments and cannot be a later pipeline stage.
fn not_a_function(command: &Command, piped: bool) -> Result<(), TemplateError> {
    let what = match &command.head.kind {
        OperandKind::Str(_) => "a string literal",
        OperandKind::Int(_) => "an integer literal",
        OperandKind::Field(_) => "a field",
        OperandKind::Sub(_) => "a parenthesised pipeline",
        OperandKind::Func(_) => return Ok(()),
    };
    let message = if piped {
        format!(
            "{what} cannot receive a piped value: every stage after `|` must be a function call"
        )
    } else if !command.args.is_empty() {
        format!("{what} is not a function and cannot take arguments")
    } else {
        return Ok(());
    };
    Err(TemplateError::Syntax {
        pos: command.pos,
        message,
    })
}

fn check_operand(operand: &Operand) -> Result<Known, TemplateError> {
    match &operand.kind {
        OperandKind::Str(s) => Ok(Known::of(Value::Str(s.clone()))),
        OperandKind::Int(n) => Ok(Known::of(Value::Int(*n))),
        OperandKind::Field(_) => Ok(Known {
            ty: Ty::Str,
            value: None,
        }),
        OperandKind::Func(func) => {
            validate_call(*func, operand.pos, &[])?;
            Ok(Known {
                ty: Ty::Str,
                value: None,
            })
        }
        OperandKind::Sub(pipeline) => check_pipeline(pipeline),
    }
}

/// Checks a call's arguments: their number and types, and the values known
/// (all of them at render time, the literal ones at parse time).
fn validate_call(func: Func, pos: Pos, args: &[Known]) -> Result<(), TemplateError> {
    let name = func.name();
    let Some(params) = func.params() else {
        return validate_printf(pos, args);
    };
    if args.len() != params.len() {
        return Err(TemplateError::ArgumentCount {
            pos,
            function: name,
            expected: plural(params.len(), "argument"),
            given: args.len(),
        });
    }
    for (index, (param, arg)) in params.iter().zip(args).enumerate() {
        if *param != arg.ty {
            return Err(TemplateError::ArgumentType {
                pos,
                function: name,
                index: index + 1,
                expected: param.describe(),
                found: arg.ty.describe(),
            });
        }
    }
    let invalid = |message: String| TemplateError::InvalidArgument {
        pos,
        function: name,
        message,
    };
    match (func, args.first().and_then(|a| a.value.as_ref())) {
        (Func::Truncate, Some(Value::Int(n))) if *n <= 0 => {
            Err(invalid(format!("max length must be > 0 but was {n}")))
        }
        (Func::TruncateSha256, Some(Value::Int(n))) if *n <= 8 => {
            Err(invalid(format!("max length must be > 8 but was {n}")))
        }
        (Func::Random, Some(Value::Int(n))) if !(0..=MAX_RANDOM_LEN).contains(n) => Err(invalid(
            format!("length must be between 0 and {MAX_RANDOM_LEN} but was {n}"),
        )),
        (Func::Timestamp, Some(Value::Str(layout))) => {
            layout_chunks(layout).map(|_| ()).map_err(invalid)
        }
        _ => Ok(()),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn validate_printf(pos: Pos, args: &[Known]) -> Result<(), TemplateError> {
    let Some(format) = args.first() else {
        return Err(TemplateError::ArgumentCount {
            pos,
            function: "printf",
            expected: "at least 1 argument (the format)".to_string(),
            given: 0,
        });
    };
    if format.ty != Ty::Str {
        return Err(TemplateError::ArgumentType {
            pos,
            function: "printf",
            index: 1,
            expected: Ty::Str.describe(),
            found: format.ty.describe(),
        });
    }
    let Some(Value::Str(format)) = &format.value else {
        return Ok(());
    };
    let invalid = |message: String| TemplateError::InvalidArgument {
        pos,
        function: "printf",
        message,
    };
    let pieces = parse_format(format).map_err(invalid)?;
    let verbs: Vec<&Spec> = pieces
        .iter()
        .filter_map(|piece| match piece {
            Piece::Verb(spec) => Some(spec),
            Piece::Lit(_) => None,
        })
        .collect();
    let values = &args[1..];
    if verbs.len() != values.len() {
        return Err(invalid(format!(
            "the format {format:?} has {} but {} {} given",
            plural(verbs.len(), "verb"),
            plural(values.len(), "value"),
            if values.len() == 1 { "was" } else { "were" },
        )));
    }
    for (index, (spec, value)) in verbs.iter().zip(values).enumerate() {
        let accepts = match spec.verb {
            's' | 'q' => value.ty == Ty::Str,
            'd' => value.ty == Ty::Int,
            _ => true,
        };
        if !accepts {
            let expected = if spec.verb == 'd' { Ty::Int } else { Ty::Str };
            return Err(TemplateError::ArgumentType {
                pos,
                function: "printf",
                index: index + 2,
                expected: expected.describe(),
                found: value.ty.describe(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

struct Ctx<'d, 'a> {
    data: &'d TemplateData<'a>,
    now_unix_millis: i64,
}

fn eval_pipeline(pipeline: &Pipeline, ctx: &Ctx<'_, '_>) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in &pipeline.commands {
        piped = Some(eval_command(command, piped, ctx)?);
    }
    piped.ok_or_else(unreachable_empty_pipeline)
}

fn eval_command(
    command: &Command,
    piped: Option<Value>,
    ctx: &Ctx<'_, '_>,
) -> Result<Value, TemplateError> {
    match &command.head.kind {
        OperandKind::Func(func) => {
            let mut args = command
                .args
                .iter()
                .map(|arg| eval_operand(arg, ctx))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            call(*func, command.pos, args, ctx)
        }
        _ => {
            not_a_function(command, piped.is_some())?;
            eval_operand(&command.head, ctx)
        }
    }
}

fn eval_operand(operand: &Operand, ctx: &Ctx<'_, '_>) -> Result<Value, TemplateError> {
    Ok(match &operand.kind {
        OperandKind::Str(s) => Value::Str(s.clone()),
        OperandKind::Int(n) => Value::Int(*n),
        OperandKind::Field(Field::DisplayName) => Value::Str(ctx.data.display_name.to_string()),
        OperandKind::Field(Field::RoleName) => Value::Str(ctx.data.role_name.to_string()),
        OperandKind::Func(func) => call(*func, operand.pos, Vec::new(), ctx)?,
        OperandKind::Sub(pipeline) => eval_pipeline(pipeline, ctx)?,
    })
}

fn call(func: Func, pos: Pos, args: Vec<Value>, ctx: &Ctx<'_, '_>) -> Result<Value, TemplateError> {
    let known: Vec<Known> = args.iter().cloned().map(Known::of).collect();
    validate_call(func, pos, &known)?;
    let invalid = |message: String| TemplateError::InvalidArgument {
        pos,
        function: func.name(),
        message,
    };
    let mut args = args.into_iter();
    let mut int = || match args.next() {
        Some(Value::Int(n)) => Ok(n),
        _ => Err(invalid("internal error: argument types".to_string())),
    };
    let result = match func {
        Func::Random => {
            let n = usize::try_from(int()?).unwrap_or(0);
            OsRng
                .sample_iter(&Alphanumeric)
                .take(n)
                .map(char::from)
                .collect()
        }
        Func::Truncate => {
            let n = usize::try_from(int()?).unwrap_or(usize::MAX);
            let s = string_arg(&mut args, &invalid)?;
            s[..floor_char_boundary(&s, n)].to_string()
        }
        Func::TruncateSha256 => {
            let n = usize::try_from(int()?).unwrap_or(usize::MAX);
            let s = string_arg(&mut args, &invalid)?;
            truncate_sha256(&s, n)
        }
        Func::Uppercase => string_arg(&mut args, &invalid)?.to_uppercase(),
        Func::Lowercase => string_arg(&mut args, &invalid)?.to_lowercase(),
        Func::Replace => {
            let old = string_arg(&mut args, &invalid)?;
            let new = string_arg(&mut args, &invalid)?;
            let s = string_arg(&mut args, &invalid)?;
            if old.is_empty() {
                return Err(invalid("the string to replace is empty".into()));
            }
            let grown = s.matches(old.as_str()).count().saturating_mul(new.len());
            if s.len().saturating_add(grown) > MAX_VALUE_LEN {
                return Err(invalid(format!(
                    "the result would be longer than {MAX_VALUE_LEN} bytes"
                )));
            }
            s.replace(&old, &new)
        }
        Func::Sha256 => sha256_hex(string_arg(&mut args, &invalid)?.as_bytes()),
        Func::Base64 => {
            base64::engine::general_purpose::STANDARD.encode(string_arg(&mut args, &invalid)?)
        }
        Func::UnixTime => ctx.now_unix_millis.div_euclid(1000).to_string(),
        Func::UnixTimeMillis => ctx.now_unix_millis.to_string(),
        Func::Timestamp => {
            let layout = string_arg(&mut args, &invalid)?;
            let now =
                DateTime::<Utc>::from_timestamp_millis(ctx.now_unix_millis).ok_or_else(|| {
                    invalid(format!(
                        "the clock value {} is out of range",
                        ctx.now_unix_millis
                    ))
                })?;
            format_layout(&layout, &now).map_err(invalid)?
        }
        Func::Uuid => uuid_v4(),
        Func::Printf => {
            let format = string_arg(&mut args, &invalid)?;
            let pieces = parse_format(&format).map_err(invalid)?;
            sprintf(&pieces, args)
        }
    };
    Ok(Value::Str(result))
}

fn string_arg(
    args: &mut impl Iterator<Item = Value>,
    invalid: &impl Fn(String) -> TemplateError,
) -> Result<String, TemplateError> {
    match args.next() {
        Some(Value::Str(s)) => Ok(s),
        _ => Err(invalid("internal error: argument types".to_string())),
    }
}

/// The largest char boundary of `s` at or below `max`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Vault's `truncate_sha256`: a string longer than `max` bytes becomes its
/// first `max - 8` bytes followed by the first 8 hex digits of the SHA-256 of
/// the rest (cut at a char boundary, so never longer than `max`).
fn truncate_sha256(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let keep = floor_char_boundary(s, max - 8);
    let hash = sha256_hex(&s.as_bytes()[keep..]);
    format!("{}{}", &s[..keep], &hash[..8])
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A random (version 4, RFC 4122 variant) UUID, lower-case and hyphenated.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

// ---------------------------------------------------------------------------
// printf
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
    verb: char,
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Verb(Spec),
}

/// Parses a Go format string, refusing what is not implemented.
fn parse_format(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => return Err("the printf flag '#' is not supported".to_string()),
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                chars.next();
                let v = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
                n = Some(v);
            }
            match n {
                Some(v) if v > MAX_PRINTF_WIDTH => Err(format!(
                    "printf widths and precisions are limited to {MAX_PRINTF_WIDTH}"
                )),
                _ => Ok(n),
            }
        };
        spec.width = number(&mut chars)?;
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars)?.unwrap_or(0));
        }
        match chars.next() {
            None => {
                return Err(format!(
                    "the format {format:?} ends with an unfinished verb"
                ))
            }
            Some('%') => lit.push('%'),
            Some(v @ ('s' | 'd' | 'v' | 'q' | 'x' | 'X')) => {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                spec.verb = v;
                pieces.push(Piece::Verb(spec));
            }
            Some('*') => return Err("printf '*' widths and precisions are not supported".into()),
            Some('[') => {
                return Err("printf explicit argument indexes (%[1]s) are not supported".into())
            }
            Some(v) => {
                return Err(format!(
                    "unsupported printf verb %{v} (supported: %s %d %v %q %x %X %%)"
                ))
            }
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// Formats `args` (already checked against `pieces`) as Go's fmt.Sprintf.
fn sprintf(pieces: &[Piece], mut args: impl Iterator<Item = Value>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Verb(spec) => match args.next() {
                Some(Value::Str(s)) => out.push_str(&format_str(spec, &s)),
                Some(Value::Int(n)) => out.push_str(&format_int(spec, n)),
                None => {}
            },
        }
    }
    out
}

fn pad(spec: &Spec, body: String, zero_fill: bool) -> String {
    let len = body.chars().count();
    let Some(width) = spec.width.filter(|&w| w > len) else {
        return body;
    };
    let fill = width - len;
    if spec.minus {
        body + &" ".repeat(fill)
    } else if zero_fill {
        "0".repeat(fill) + &body
    } else {
        " ".repeat(fill) + &body
    }
}

fn format_str(spec: &Spec, s: &str) -> String {
    let body = match spec.verb {
        'x' | 'X' => {
            let bytes = &s.as_bytes()[..spec.precision.map_or(s.len(), |p| p.min(s.len()))];
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if spec.verb == 'X' {
                hex.to_ascii_uppercase()
            } else {
                hex
            }
        }
        _ => {
            let s: String = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            if spec.verb == 'q' {
                go_quote(&s)
            } else {
                s
            }
        }
    };
    pad(spec, body, spec.zero)
}

fn format_int(spec: &Spec, n: i64) -> String {
    let magnitude = n.unsigned_abs();
    let mut digits = match spec.verb {
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        _ => magnitude.to_string(),
    };
    if let Some(p) = spec.precision {
        if p == 0 && n == 0 {
            digits.clear();
        } else if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    let sign = if n < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    match spec.width {
        Some(w) if spec.zero && !spec.minus && spec.precision.is_none() => {
            let len = sign.len() + digits.len();
            let zeros = "0".repeat(w.saturating_sub(len));
            format!("{sign}{zeros}{digits}")
        }
        _ => pad(spec, format!("{sign}{digits}"), false),
    }
}

/// A Go-syntax double-quoted string, as `%q` and strconv.Quote write it
/// (printable characters as they are, the rest escaped).
fn go_quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_ascii_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// timestamp: Go time layouts
// ---------------------------------------------------------------------------

/// A Go layout element, for a time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    UpperPm,
    LowerPm,
    /// `MST`: the zone's abbreviation.
    ZoneName,
    /// A numeric or ISO 8601 zone (`-0700`, `Z07:00`, ...), as written for UTC.
    Zone(&'static str),
    /// `.000` / `,999`: separator, digits, whether trailing zeros are trimmed.
    Fraction(char, usize, bool),
}

enum Chunk<'a> {
    Lit(&'a str),
    Elem(Elem),
}

/// The first layout element of `layout`: the literal text before it, the
/// element and its length.
fn next_elem(layout: &str) -> Option<(usize, Elem, usize)> {
    let b = layout.as_bytes();
    let starts_lower = |i: usize| b.get(i).is_some_and(u8::is_ascii_lowercase);
    for i in 0..b.len() {
        let rest = &layout[i..];
        let found = match b[i] {
            b'J' if rest.starts_with("January") => Some((Elem::LongMonth, 7)),
            b'J' if rest.starts_with("Jan") && !starts_lower(i + 3) => Some((Elem::Month, 3)),
            b'M' if rest.starts_with("Monday") => Some((Elem::LongWeekDay, 6)),
            b'M' if rest.starts_with("Mon") && !starts_lower(i + 3) => Some((Elem::WeekDay, 3)),
            b'M' if rest.starts_with("MST") => Some((Elem::ZoneName, 3)),
            b'0' if matches!(b.get(i + 1), Some(b'1'..=b'6')) => {
                let elem = [
                    Elem::ZeroMonth,
                    Elem::ZeroDay,
                    Elem::ZeroHour12,
                    Elem::ZeroMinute,
                    Elem::ZeroSecond,
                    Elem::Year,
                ][usize::from(b[i + 1] - b'1')];
                Some((elem, 2))
            }
            b'0' if rest.starts_with("002") => Some((Elem::ZeroYearDay, 3)),
            b'1' if rest.starts_with("15") => Some((Elem::Hour, 2)),
            b'1' => Some((Elem::NumMonth, 1)),
            b'2' if rest.starts_with("2006") => Some((Elem::LongYear, 4)),
            b'2' => Some((Elem::Day, 1)),
            // `_2006` is a literal `_` followed by the year.
            b'_' if rest.starts_with("_2006") => return Some((i + 1, Elem::LongYear, 4)),
            b'_' if rest.starts_with("_2") => Some((Elem::UnderDay, 2)),
            b'_' if rest.starts_with("__2") => Some((Elem::UnderYearDay, 3)),
            b'3' => Some((Elem::Hour12, 1)),
            b'4' => Some((Elem::Minute, 1)),
            b'5' => Some((Elem::Second, 1)),
            b'P' if rest.starts_with("PM") => Some((Elem::UpperPm, 2)),
            b'p' if rest.starts_with("pm") => Some((Elem::LowerPm, 2)),
            b'-' | b'Z' => {
                let utc = b[i] == b'Z';
                [
                    ("070000", "+000000"),
                    ("07:00:00", "+00:00:00"),
                    ("0700", "+0000"),
                    ("07:00", "+00:00"),
                    ("07", "+00"),
                ]
                .iter()
                .find(|(pattern, _)| rest[1..].starts_with(pattern))
                .map(|(pattern, numeric)| {
                    (
                        Elem::Zone(if utc { "Z" } else { numeric }),
                        pattern.len() + 1,
                    )
                })
            }
            sep @ (b'.' | b',') if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let digit = b[i + 1];
                let mut j = i + 1;
                while b.get(j) == Some(&digit) {
                    j += 1;
                }
                // Only a fraction when the run of digits ends the number.
                (!b.get(j).is_some_and(u8::is_ascii_digit)).then_some((
                    Elem::Fraction(char::from(sep), j - i - 1, digit == b'9'),
                    j - i,
                ))
            }
            _ => None,
        };
        if let Some((elem, len)) = found {
            return Some((i, elem, len));
        }
    }
    None
}

/// Splits a layout into literal text and elements; a layout without any
/// element (most likely a strftime pattern) is refused.
fn layout_chunks(layout: &str) -> Result<Vec<Chunk<'_>>, String> {
    let mut chunks = Vec::new();
    let mut rest = layout;
    let mut any = false;
    while let Some((prefix, elem, len)) = next_elem(rest) {
        if prefix > 0 {
            chunks.push(Chunk::Lit(&rest[..prefix]));
        }
        chunks.push(Chunk::Elem(elem));
        any = true;
        rest = &rest[prefix + len..];
    }
    if !rest.is_empty() {
        chunks.push(Chunk::Lit(rest));
    }
    if any {
        Ok(chunks)
    } else {
        Err(format!(
            "the layout {layout:?} has no Go time layout element (such as 2006, 01, 02, 15, \
             04, 05, Jan, Mon, MST, Z07:00, .000); strftime-style %-directives are not supported"
        ))
    }
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `t` (UTC) with the Go layout `layout`.
fn format_layout(layout: &str, t: &DateTime<Utc>) -> Result<String, String> {
    let mut out = String::new();
    let month = LONG_MONTHS[t.month0() as usize];
    let weekday = LONG_DAYS[t.weekday().num_days_from_monday() as usize];
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    for chunk in layout_chunks(layout)? {
        let elem = match chunk {
            Chunk::Lit(s) => {
                out.push_str(s);
                continue;
            }
            Chunk::Elem(elem) => elem,
        };
        let text = match elem {
            Elem::LongMonth => month.to_string(),
            Elem::Month => month[..3].to_string(),
            Elem::NumMonth => t.month().to_string(),
            Elem::ZeroMonth => format!("{:02}", t.month()),
            Elem::LongWeekDay => weekday.to_string(),
            Elem::WeekDay => weekday[..3].to_string(),
            Elem::Day => t.day().to_string(),
            Elem::UnderDay => format!("{:>2}", t.day()),
            Elem::ZeroDay => format!("{:02}", t.day()),
            Elem::UnderYearDay => format!("{:>3}", t.ordinal()),
            Elem::ZeroYearDay => format!("{:03}", t.ordinal()),
            Elem::Hour => format!("{:02}", t.hour()),
            Elem::Hour12 => hour12.to_string(),
            Elem::ZeroHour12 => format!("{hour12:02}"),
            Elem::Minute => t.minute().to_string(),
            Elem::ZeroMinute => format!("{:02}", t.minute()),
            Elem::Second => t.second().to_string(),
            Elem::ZeroSecond => format!("{:02}", t.second()),
            Elem::LongYear => format!("{:04}", t.year()),
            Elem::Year => format!("{:02}", t.year().rem_euclid(100)),
            Elem::UpperPm => (if t.hour() >= 12 { "PM" } else { "AM" }).to_string(),
            Elem::LowerPm => (if t.hour() >= 12 { "pm" } else { "am" }).to_string(),
            Elem::ZoneName => "UTC".to_string(),
            Elem::Zone(text) => text.to_string(),
            Elem::Fraction(sep, digits, trim) => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut frac = &nanos[..digits.min(9)];
                if trim {
                    frac = frac.trim_end_matches('0');
                }
                if frac.is_empty() && trim {
                    String::new()
                } else {
                    format!("{sep}{frac}")
                }
            }
        };
        out.push_str(&text);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// 2021-03-04T05:06:07.089Z, a Thursday.
    const NOW: i64 = 1_614_834_367_089;

    fn data() -> TemplateData<'static> {
        TemplateData {
            display_name: "token-alice",
            role_name: "My_Role.Name",
        }
    }

    fn render(src: &str) -> String {
        render_with(src, &data())
    }

    fn render_with(src: &str, data: &TemplateData<'_>) -> String {
        UsernameTemplate::parse(src)
            .unwrap_or_else(|e| panic!("parse {src:?}: {e}"))
            .render(data, NOW)
            .unwrap_or_else(|e| panic!("render {src:?}: {e}"))
    }

    fn parse_err(src: &str) -> TemplateError {
        match UsernameTemplate::parse(src) {
            Ok(t) => panic!("{src:?} parsed: {t:?}"),
            Err(e) => e,
        }
    }

    fn is_alnum(s: &str) -> bool {
        s.chars().all(|c| c.is_ascii_alphanumeric())
    }

    const DEFAULT_63: &str = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
    const DEFAULT_32: &str = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) (.RoleName | truncate 10) (random 20) (unix_time) | truncate 32 }}"#;

    #[test]
    fn vault_default_template_63() {
        let data = TemplateData {
            display_name: "userpass-alice-smith",
            role_name: "readonly-analytics",
        };
        let out = render_with(DEFAULT_63, &data);
        let parts: Vec<&str> = out.split('-').collect();
        // v, "userpass", "readonly", random, time
        assert_eq!(parts.len(), 5, "{out}");
        assert_eq!(parts[0], "v");
        assert_eq!(parts[1], "userpass");
        assert_eq!(parts[2], "readonly");
        assert_eq!(parts[3].len(), 20);
        assert!(is_alnum(parts[3]));
        assert_eq!(parts[4], "1614834367");
        assert_eq!(out.len(), 2 + 9 + 9 + 21 + 10);
        assert!(out.len() <= 63);
        assert!(out.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn vault_default_template_32() {
        let data = TemplateData {
            display_name: "userpass-alice-smith",
            role_name: "readonly-analytics",
        };
        let out = render_with(DEFAULT_32, &data);
        assert_eq!(out.len(), 32, "{out}");
        assert!(out.starts_with("v-userpass-a-readonly-a-"), "{out}");
        assert!(is_alnum(&out[24..]));
        // Short names: the 20 random characters are cut at 32.
        let short = TemplateData {
            display_name: "tok",
            role_name: "r",
        };
        let out = render_with(DEFAULT_32, &short);
        assert_eq!(out.len(), 32);
        assert!(out.starts_with("v-tok-r-"));
        let tail: Vec<&str> = out[8..].split('-').collect();
        assert_eq!(tail[0].len(), 20);
        assert!(is_alnum(tail[0]));
        // 8 + 20 + 1 = 29 bytes, so 3 digits of the time remain.
        assert_eq!(tail[1], "161");
    }

    #[test]
    fn random_values_differ() {
        let t = UsernameTemplate::parse(DEFAULT_63).unwrap();
        let a = t.render(&data(), NOW).unwrap();
        let b = t.render(&data(), NOW).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn text_and_lowercase_example() {
        let out = render("myorg-{{.RoleName | lowercase}}-{{random 8}}");
        assert!(out.starts_with("myorg-my_role.name-"), "{out}");
        assert_eq!(out.len(), "myorg-my_role.name-".len() + 8);
        assert!(is_alnum(&out[out.len() - 8..]));
    }

    #[test]
    fn plain_text_and_stray_braces_are_copied() {
        assert_eq!(render("static-user"), "static-user");
        assert_eq!(render("a}}b{ c}"), "a}}b{ c}");
        assert_eq!(render("{{\"{{x}}\"}}"), "{{x}}");
    }

    #[test]
    fn fields() {
        assert_eq!(
            render("{{.DisplayName}}/{{ .RoleName }}"),
            "token-alice/My_Role.Name"
        );
    }

    #[test]
    fn pipelines_pass_the_last_argument() {
        assert_eq!(render(r#"{{ "abcdef" | truncate 3 }}"#), "abc");
        assert_eq!(render(r#"{{ "x" | printf "%s-%s" "y" }}"#), "y-x");
        assert_eq!(
            render(r#"{{ .RoleName | replace "." "-" | lowercase | truncate 9 }}"#),
            "my_role-n"
        );
        assert_eq!(render("{{ 3 | random }}").len(), 3);
        assert_eq!(render(r#"{{ "A-B" | replace "-" "_" }}"#), "A_B");
        assert_eq!(
            render(r#"{{ (.DisplayName | truncate 5) | uppercase }}"#),
            "TOKEN"
        );
    }

    #[test]
    fn nested_parentheses() {
        assert_eq!(
            render(
                r#"{{ printf "%s:%s" (uppercase (truncate 3 (lowercase .DisplayName))) ((.RoleName)) }}"#
            ),
            "TOK:My_Role.Name"
        );
        assert_eq!(render("{{ (((\"deep\"))) }}"), "deep");
        assert_eq!(render("{{ (5) }}"), "5");
    }

    #[test]
    fn string_literals_and_escapes() {
        assert_eq!(render(r#"{{ "a\"b\\c\td\n" }}"#), "a\"b\\c\td\n");
        assert_eq!(render(r#"{{ "\x41\101\u00e9\U0001F600" }}"#), "AAé😀");
        assert_eq!(render("{{ `raw \\n \"x\"` }}"), "raw \\n \"x\"");
        assert_eq!(render("{{ `two\nlines` }}"), "two\nlines");
        assert_eq!(render("{{ \"}}\" }}"), "}}");
    }

    #[test]
    fn integer_literals() {
        assert_eq!(render("{{ 42 }}"), "42");
        assert_eq!(render("{{ -7 }}"), "-7");
        assert_eq!(render("{{ +7 }}"), "7");
        assert_eq!(render("{{ 0x1F }}"), "31");
        assert_eq!(render("{{ 010 }}"), "8");
        assert_eq!(render("{{ 0b101 }}"), "5");
        assert_eq!(render("{{ 1_000 }}"), "1000");
        assert!(matches!(
            parse_err("{{ 1.5 }}"),
            TemplateError::Unsupported { .. }
        ));
        assert!(matches!(
            parse_err("{{ 1e3 }}"),
            TemplateError::Unsupported { .. }
        ));
        assert!(matches!(
            parse_err("{{ 12abc }}"),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            parse_err("{{ 99999999999999999999 }}"),
            TemplateError::Syntax { .. }
        ));
    }

    #[test]
    fn whitespace_trimming() {
        assert_eq!(render("a  \n\t{{- \"b\" -}}  \n c"), "abc");
        assert_eq!(render("a {{- \"b\" }} c"), "ab c");
        assert_eq!(render("a {{ \"b\" -}} c"), "a bc");
        assert_eq!(render("a\n{{-\n\"b\"\n-}}\nc"), "abc");
        // `{{-3}}` is the number -3, not a trim marker.
        assert_eq!(render("a {{-3}} b"), "a -3 b");
        assert_eq!(render("x  {{- /* note */ -}}  y"), "xy");
    }

    #[test]
    fn comments() {
        assert_eq!(render("a{{/* anything {{ }} here\n */}}b"), "ab");
        assert!(matches!(
            parse_err("a{{/* open"),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            parse_err("a{{/* x */ .RoleName}}"),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            parse_err("{{ .RoleName /* x */ }}"),
            TemplateError::Syntax { .. }
        ));
    }

    #[test]
    fn function_random() {
        let out = render("{{random 50}}");
        assert_eq!(out.len(), 50);
        assert!(is_alnum(&out));
        assert_eq!(render("{{random 0}}"), "");
        assert!(matches!(
            parse_err("{{random -1}}"),
            TemplateError::InvalidArgument {
                function: "random",
                ..
            }
        ));
        assert!(matches!(
            parse_err("{{random 100000}}"),
            TemplateError::InvalidArgument {
                function: "random",
                ..
            }
        ));
    }

    #[test]
    fn function_truncate() {
        assert_eq!(render(r#"{{ truncate 4 "abcdef" }}"#), "abcd");
        assert_eq!(render(r#"{{ truncate 10 "abc" }}"#), "abc");
        // Never splits a character: "é" is two bytes.
        assert_eq!(render(r#"{{ truncate 2 "aé" }}"#), "a");
        assert!(matches!(
            parse_err(r#"{{ truncate 0 "abc" }}"#),
            TemplateError::InvalidArgument {
                function: "truncate",
                ..
            }
        ));
    }

    #[test]
    fn function_truncate_sha256() {
        assert_eq!(render(r#"{{ truncate_sha256 10 "short" }}"#), "short");
        let long = "abcdefghijklmnopqrstuvwxyz";
        let out = render(&format!("{{{{ truncate_sha256 20 {long:?} }}}}"));
        assert_eq!(out.len(), 20);
        assert_eq!(&out[..12], "abcdefghijkl");
        // sha256("mnopqrstuvwxyz") = 872808ffbf0158b2...
        assert_eq!(&out[12..], "872808ff");
        // Exactly the limit: unchanged.
        assert_eq!(
            render(r#"{{ truncate_sha256 9 "123456789" }}"#),
            "123456789"
        );
        assert!(matches!(
            parse_err(r#"{{ truncate_sha256 8 "abc" }}"#),
            TemplateError::InvalidArgument {
                function: "truncate_sha256",
                ..
            }
        ));
    }

    #[test]
    fn functions_case_replace_hash_base64() {
        assert_eq!(render("{{ .RoleName | uppercase }}"), "MY_ROLE.NAME");
        assert_eq!(render("{{ .RoleName | lowercase }}"), "my_role.name");
        assert_eq!(render(r#"{{ replace "_" "-" .RoleName }}"#), "My-Role.Name");
        assert_eq!(render(r#"{{ "aaa" | replace "a" "bb" }}"#), "bbbbbb");
        assert_eq!(
            render(r#"{{ "abc" | sha256 }}"#),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(render(r#"{{ "hello" | base64 }}"#), "aGVsbG8=");
        assert_eq!(render(r#"{{ base64 "" }}"#), "");
    }

    #[test]
    fn functions_time() {
        assert_eq!(render("{{unix_time}}"), "1614834367");
        assert_eq!(render("{{ unix_time_millis }}"), "1614834367089");
        let before_epoch = UsernameTemplate::parse("{{unix_time}}")
            .unwrap()
            .render(&data(), -1500)
            .unwrap();
        assert_eq!(before_epoch, "-2");
    }

    #[test]
    fn function_timestamp_layouts() {
        let ts = |layout: &str| render(&format!("{{{{ timestamp {layout:?} }}}}"));
        assert_eq!(ts("2006-01-02T15:04:05Z07:00"), "2021-03-04T05:06:07Z");
        assert_eq!(
            ts("2006-01-02T15:04:05.000Z0700"),
            "2021-03-04T05:06:07.089Z"
        );
        assert_eq!(ts("20060102150405"), "20210304050607");
        assert_eq!(
            ts("Mon Jan _2 15:04:05 MST 2006"),
            "Thu Mar  4 05:06:07 UTC 2021"
        );
        assert_eq!(
            ts("Monday, January 2 3:4:5 PM"),
            "Thursday, March 4 5:6:7 AM"
        );
        assert_eq!(
            ts("06/1/2 03pm -0700 -07:00 -07"),
            "21/3/4 05am +0000 +00:00 +00"
        );
        assert_eq!(ts("002 __2 .999 ,000000"), "063  63 .089 ,089000");
        assert_eq!(ts("x_2006"), "x_2021");
        // "Janet" and "Month" are literal text.
        assert_eq!(ts("Janet 2006"), "Janet 2021");
        let on_the_second = UsernameTemplate::parse(r#"{{ timestamp "05.999|05.000" }}"#)
            .unwrap()
            .render(&data(), 1_614_834_367_000)
            .unwrap();
        assert_eq!(on_the_second, "07|07.000");
        assert!(matches!(
            parse_err(r#"{{ timestamp "%Y-%m-%d" }}"#),
            TemplateError::InvalidArgument {
                function: "timestamp",
                ..
            }
        ));
        // A layout computed by the template is checked when rendering.
        let dynamic = UsernameTemplate::parse(r#"{{ timestamp (lowercase "%Y") }}"#).unwrap();
        assert!(matches!(
            dynamic.render(&data(), NOW),
            Err(TemplateError::InvalidArgument {
                function: "timestamp",
                ..
            })
        ));
    }

    #[test]
    fn function_uuid() {
        let out = render("{{uuid}}");
        assert_eq!(out.len(), 36);
        let groups: Vec<&str> = out.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(out
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(groups[2].starts_with('4'));
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(render("{{uuid}}"), out);
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            render(r#"{{ printf "%s|%d|%v|%v" "a" 42 "b" 7 }}"#),
            "a|42|b|7"
        );
        assert_eq!(render(r#"{{ printf "%q" "a\"b\n" }}"#), r#""a\"b\n""#);
        assert_eq!(render(r#"{{ printf "100%%" }}"#), "100%");
        assert_eq!(
            render(r#"{{ printf "%x %X %x" "hi" "hi" 255 }}"#),
            "6869 6869 ff"
        );
        assert_eq!(
            render(
                r#"{{ printf "[%5s][%-5s][%.2s][%05d][%+d][%.3d][%-4d]" "ab" "ab" "abc" 42 5 7 -3 }}"#
            ),
            "[   ab][ab   ][ab][00042][+5][007][-3  ]"
        );
        assert_eq!(render(r#"{{ printf "%05d" -42 }}"#), "-0042");
        assert_eq!(render(r#"{{ printf "%s" unix_time }}"#), "1614834367");
        assert_eq!(render(r#"{{ printf "no verbs" }}"#), "no verbs");
    }

    #[test]
    fn printf_errors() {
        for src in [
            r#"{{ printf "%e" 1 }}"#,
            r#"{{ printf "%#x" 1 }}"#,
            r#"{{ printf "%*d" 1 }}"#,
            r#"{{ printf "%[1]s" "a" }}"#,
            r#"{{ printf "abc%" }}"#,
            r#"{{ printf "%s %s" "a" }}"#,
            r#"{{ printf "%s" "a" "b" }}"#,
            r#"{{ printf "%2000s" "a" }}"#,
        ] {
            assert!(
                matches!(
                    parse_err(src),
                    TemplateError::InvalidArgument {
                        function: "printf",
                        ..
                    }
                ),
                "{src}"
            );
        }
        assert!(matches!(
            parse_err(r#"{{ printf "%d" "a" }}"#),
            TemplateError::ArgumentType {
                function: "printf",
                index: 2,
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{{ printf "%s" 5 }}"#),
            TemplateError::ArgumentType {
                function: "printf",
                index: 2,
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{{ printf "%d" unix_time }}"#),
            TemplateError::ArgumentType {
                function: "printf",
                ..
            }
        ));
        assert!(matches!(
            parse_err("{{ printf }}"),
            TemplateError::ArgumentCount {
                function: "printf",
                ..
            }
        ));
        assert!(matches!(
            parse_err("{{ printf 5 }}"),
            TemplateError::ArgumentType {
                function: "printf",
                index: 1,
                ..
            }
        ));
        // A format computed by the template is checked when rendering.
        let t = UsernameTemplate::parse(r#"{{ printf (lowercase "%E") 1 }}"#).unwrap();
        assert!(matches!(
            t.render(&data(), NOW),
            Err(TemplateError::InvalidArgument {
                function: "printf",
                ..
            })
        ));
    }

    #[test]
    fn unterminated_things() {
        for src in [
            "{{ .RoleName",
            "abc {{",
            "{{ \"abc }}",
            "{{ `abc }}",
            "{{ (lowercase .RoleName }}",
            "{{ .RoleName {{ .RoleName }}",
        ] {
            assert!(
                matches!(parse_err(src), TemplateError::Syntax { .. }),
                "{src}"
            );
        }
    }

    #[test]
    fn syntax_errors() {
        for src in [
            "{{}}",
            "{{ }}",
            "{{ | lowercase }}",
            "{{ .RoleName | }}",
            "{{ () }}",
            "{{ .RoleName ) }}",
            "{{ @ }}",
            "{{ 3-}}",
            "{{ \"a\\q\" }}",
            "{{ \"\\xff\" }}",
        ] {
            assert!(
                matches!(parse_err(src), TemplateError::Syntax { .. }),
                "{src}"
            );
        }
        // Non-functions take no arguments and cannot receive piped values.
        assert!(matches!(
            parse_err(r#"{{ "a" "b" }}"#),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            parse_err(r#"{{ "a" | .RoleName }}"#),
            TemplateError::Syntax { .. }
        ));
        assert!(matches!(
            parse_err(r#"{{ "a" | (lowercase) }}"#),
            TemplateError::Syntax { .. }
        ));
    }

    #[test]
    fn unknown_function_and_field() {
        match parse_err("x{{ rand 20 }}") {
            TemplateError::UnknownFunction { name, pos } => {
                assert_eq!(name, "rand");
                assert_eq!(pos, Pos { line: 1, column: 5 });
            }
            e => panic!("{e}"),
        }
        match parse_err("a\nb{{ .Username }}") {
            TemplateError::UnknownField { name, pos } => {
                assert_eq!(name, "Username");
                assert_eq!(pos, Pos { line: 2, column: 5 });
            }
            e => panic!("{e}"),
        }
        assert!(matches!(
            parse_err("{{ .displayname }}"),
            TemplateError::UnknownField { .. }
        ));
    }

    #[test]
    fn wrong_argument_count_and_type() {
        assert!(matches!(
            parse_err("{{ .RoleName | truncate }}"),
            TemplateError::ArgumentCount {
                function: "truncate",
                given: 1,
                ..
            }
        ));
        assert!(matches!(
            parse_err("{{ random }}"),
            TemplateError::ArgumentCount {
                function: "random",
                given: 0,
                ..
            }
        ));
        assert!(matches!(
            parse_err("{{ uuid 4 }}"),
            TemplateError::ArgumentCount {
                function: "uuid",
                given: 1,
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{{ printf "%s" random }}"#),
            TemplateError::ArgumentCount {
                function: "random",
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{{ .RoleName | truncate "8" }}"#),
            TemplateError::ArgumentType {
                function: "truncate",
                index: 1,
                ..
            }
        ));
        assert!(matches!(
            parse_err("{{ 5 | lowercase }}"),
            TemplateError::ArgumentType {
                function: "lowercase",
                index: 1,
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{{ random "20" }}"#),
            TemplateError::ArgumentType {
                function: "random",
                ..
            }
        ));
        let message = parse_err(r#"{{ printf "%s" }}"#).to_string();
        assert!(
            message.contains("has 1 verb but 0 values were given"),
            "{message}"
        );
        let message = parse_err("{{ .RoleName | truncate }}").to_string();
        assert!(
            message.contains("`truncate`") && message.contains("2 arguments"),
            "{message}"
        );
    }

    #[test]
    fn unsupported_constructs() {
        for (src, needle) in [
            ("{{if .RoleName}}x{{end}}", "`{{if}}`"),
            ("{{range .RoleName}}x{{end}}", "`{{range}}`"),
            ("{{with .RoleName}}x{{end}}", "`{{with}}`"),
            ("{{define \"x\"}}y{{end}}", "`{{define}}`"),
            ("{{template \"x\"}}", "`{{template}}`"),
            ("{{end}}", "`{{end}}`"),
            ("{{$x := 1}}", "`$x`"),
            ("{{$}}", "`$`"),
            ("{{ .RoleName | len }}", "`len`"),
            ("{{ print .RoleName }}", "`print`"),
            ("{{ eq 1 1 }}", "`eq`"),
            ("{{ true }}", "`true`"),
            ("{{ nil }}", "`nil`"),
            ("{{ 'a' }}", "character constant"),
            ("{{ . }}", "`.` on its own"),
            ("{{ .RoleName.Foo }}", "chained field"),
            ("{{ (lowercase .RoleName).Foo }}", "field access"),
            ("{{ uuid.Foo }}", "field access"),
        ] {
            let err = parse_err(src);
            assert!(
                matches!(err, TemplateError::Unsupported { .. }),
                "{src}: {err}"
            );
            assert!(err.to_string().contains(needle), "{src}: {err}");
        }
    }

    #[test]
    fn empty_template_is_refused() {
        assert!(matches!(parse_err(""), TemplateError::Empty));
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(go_quote("a\u{1}\u{7f}é\u{85}"), "\"a\\x01\\x7fé\\u0085\"");
    }

    #[test]
    fn limits_bound_what_a_template_can_cost() {
        let deep = format!(
            "{{{{ {}.RoleName{} }}}}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(matches!(
            UsernameTemplate::parse(&deep),
            Err(TemplateError::TooLarge(_))
        ));
        let nested = format!("{{{{ {}.RoleName{} }}}}", "(".repeat(20), ")".repeat(20));
        assert!(UsernameTemplate::parse(&nested).is_ok());
        let t = UsernameTemplate::parse(
            r#"{{ replace "" (random 1024) (replace "" (random 1024) "x") }}"#,
        )
        .unwrap();
        let data = TemplateData {
            display_name: "d",
            role_name: "r",
        };
        assert!(t.render(&data, 0).is_err());
        let t =
            UsernameTemplate::parse(r#"{{ replace "a" (random 1024) (random 1024) }}"#).unwrap();
        // At most 1024 "a"s, each grown by 1024 bytes: refused, not built.
        let _ = t.render(&data, 0);
        assert!(UsernameTemplate::parse(&"x".repeat(MAX_TEMPLATE_LEN + 1)).is_err());
    }
}
