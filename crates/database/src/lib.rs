//! The database secrets engine: dynamic PostgreSQL and MySQL/MariaDB users
//! with leases, following Vault's database engine API (`config/:name`,
//! `roles/:name`, `creds/:name`, `reset/:name`). Built against the sdk only.
//!
//! It runs the PostgreSQL plugin (`postgresql-database-plugin`) and the
//! MySQL/MariaDB plugins (`mysql-database-plugin` and its aurora, rds and
//! legacy variants) in-process, with static roles (`static-roles/:name`,
//! `static-creds/:name`, `rotate-role/:name`), root rotation
//! (`rotate-root/:name`) and Vault's `username_template` language; TLS to
//! the database comes later and is refused by name until then.
//!
//! Invariants: a database user exists only while its lease does; root
//! credentials are stored encrypted like all storage and never returned;
//! operations with effects in the database run on the active node only.

mod backend;
mod model;
mod mysql;
mod path_config;
mod path_creds;
mod path_roles;
mod path_static;
mod plugin;
mod postgres;
mod rotation;
mod template;

pub use backend::{factory, new_backend, Database};
