//! The engine SDK: everything a secrets engine or auth method needs, and
//! nothing of the server that hosts it.
//!
//! Invariants:
//! - Engines see only a [`Storage`] already scoped to their mount and a
//!   [`SystemView`] onto the server (the mount's TTL limits); they never
//!   see the barrier, the physical backend or Raft. The binary registers
//!   engine factories in a [`Registry`]; core builds mounts from it.
//! - Paths are declared as data ([`framework::Path`]): a pattern, typed fields,
//!   the operations it supports and help text. Routing, field parsing and the
//!   "unsupported operation" answer come from the framework, not from engines.
//! - Errors are a [`LogicalError`]; the HTTP crate maps each variant to one
//!   status code in one place.

pub mod cidr;
/// Telemetry (`sys/metrics`): engines record timings and counts here, so
/// they depend on the sdk only.
pub use arca_metrics as metrics;
pub mod duration;
pub mod field;
pub mod framework;
pub mod glob;
pub mod logical;
pub mod openapi;
pub mod password;
pub mod storage;
pub mod system;
pub mod testing;
pub mod tls;
pub mod token_fields;

pub use field::{parse_duration, Field, FieldData, FieldType};
pub use framework::{
    Backend, Ctx, Framework, HandlerResult, OperationProps, Path, SecretType, SpecialPaths,
};
pub use logical::{
    Alias, Auth, Connection, LogicalError, Operation, RawResponse, Request, Response, Secret,
};
pub use password::PasswordPolicy;
pub use storage::{Storage, StorageError, StorageOp};
pub use system::{
    clamp_ttl, BackendConfig, Factory, Registry, StaticSystemView, SystemView, TestSystemView,
};
