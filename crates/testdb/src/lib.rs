//! Throwaway database servers (PostgreSQL, MariaDB) started from the
//! machine's own packages, for the integration tests (`crates/arca/tests`),
//! the chaos tests and the benchmarks: each caller gets its own server on a
//! free loopback port in a temporary directory, stopped and removed when
//! the handle drops.
//!
//! Invariants: std + tempfile only (no `arca-*` crate: what is tested is
//! the server binary); a missing server binary fails with an install hint
//! (`deploy/install-deps.sh test`), it never skips; every command runs with
//! stdin closed and a time limit.

pub mod mariadb;
pub mod postgres;
