#!/usr/bin/env bash
# One command from a fresh clone to a running development server:
# installs the build prerequisites that are missing (deploy/install-deps.sh),
# builds once into the target directory the tests use as well
# ($HOME/.cache/arca/target, so `.ci/run` reuses this build and RocksDB is
# compiled once), then runs `arca server -dev` on 127.0.0.1:8200 (in memory,
# unsealed, root token printed, KV v2 at secret/). Extra arguments go to
# `arca server -dev`, e.g. `deploy/dev.sh -dev-root-token-id=root`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deploy/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
if [ ! -x "$CARGO_TARGET_DIR/release/arca" ]; then
  echo "==> building arca into $CARGO_TARGET_DIR (the first build compiles RocksDB: 20-25 min on 2 cores)"
fi
# The same command as the tests' build, so the two share every artifact.
cargo build --release --workspace
exec "$CARGO_TARGET_DIR/release/arca" server -dev "$@"
