//! The database secrets engine: dynamic PostgreSQL users with leases,
//! following Vault's database engine API (`config/:name`, `roles/:name`,
//! `creds/:name`, `reset/:name`). Built against the sdk only.
//!
//! This first slice runs the PostgreSQL plugin (`postgresql-database-plugin`)
//! in-process; MySQL/MariaDB, static roles, root rotation, custom username
//! templates and TLS to the database come later and are refused by name
//! until then.
//!
//! Invariants: a database user exists only while its lease does; root
//! credentials are stored encrypted like all storage and never returned;
//! operations with effects in the database run on the active node only.

mod backend;
mod model;
mod path_config;
mod path_creds;
mod path_roles;
mod plugin;
mod postgres;

pub use backend::{factory, new_backend, Database};
