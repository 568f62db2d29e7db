//! The crate's one error type.

use std::fmt;

/// Where in a policy a rule error was found: the `path` block and, for HCL,
/// the line the block starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLocation {
    pub path: String,
    pub line: Option<usize>,
}

impl fmt::Display for RuleLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path {:?}", self.path)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Formats an optional line as ` on line N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnLine(pub Option<usize>);

impl fmt::Display for OnLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, " on line {line}"),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong parsing policies or naming them. Messages
/// never start with "failed to parse policy" so callers may prefix that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The HCL or JSON text is not well formed.
    #[error("{format} syntax error at line {line}, column {column}: {message}")]
    Syntax {
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// A top-level key or block other than `path` (and the ignored `name`).
    #[error("invalid key {key:?}{}", OnLine(*line))]
    InvalidKey { key: String, line: Option<usize> },
    /// A capability name that is not one of Vault's.
    #[error("{rule}: invalid capability {capability:?}")]
    InvalidCapability {
        rule: RuleLocation,
        capability: String,
    },
    /// A field of a path rule is unknown, unsupported or malformed.
    #[error("{rule}: {field}: {reason}")]
    InvalidField {
        rule: RuleLocation,
        field: String,
        reason: String,
    },
    /// The path pattern itself is not allowed.
    #[error("{rule}: {reason}")]
    InvalidPath { rule: RuleLocation, reason: String },
    /// The path pattern uses identity templating (`{{identity...}}`), which
    /// Arca cannot resolve (it has no identity system). Refused rather than
    /// kept: an unresolvable rule would grant nothing and, worse, deny
    /// nothing.
    #[error(
        "{rule}: templated policy paths ({{{{identity...}}}}) are not supported: \
         this server has no identity system to resolve them, and a rule that \
         cannot be resolved would silently grant or deny nothing; \
         write the path without a template"
    )]
    TemplatedPath { rule: RuleLocation },
    /// A policy name that cannot be used.
    #[error("invalid policy name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// Writing or deleting a built-in policy that may not be.
    #[error("cannot {action} {name:?} policy")]
    Immutable { name: String, action: &'static str },
    /// An operation name [`crate::Operation`] does not know.
    #[error("unknown operation {0:?}")]
    UnknownOperation(String),
}
