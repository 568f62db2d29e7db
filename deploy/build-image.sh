#!/usr/bin/env bash
# Builds the `arca:local` Docker image without pulling anything: the release
# binary plus exactly the shared libraries it links (from `ldd`), on top of
# `FROM scratch`. Run from anywhere; builds the binary first if needed.
#
#   deploy/build-image.sh            # uses $CARGO_TARGET_DIR or ~/.cache/arca/target
#   IMAGE=arca:dev deploy/build-image.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
IMAGE="${IMAGE:-arca:local}"
BIN="$TARGET/release/arca"
if [ ! -x "$BIN" ]; then
  echo "building the release binary (first build compiles RocksDB: ~25 min)"
  CARGO_TARGET_DIR="$TARGET" cargo build --release -p arca --bin arca
fi
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/rootfs/usr/local/bin" "$CTX/rootfs/tmp" "$CTX/rootfs/var/lib/arca" "$CTX/rootfs/etc/arca"
cp "$BIN" "$CTX/rootfs/usr/local/bin/arca"
# Debug line tables are for local profiling; the image does without them.
if command -v strip >/dev/null 2>&1; then strip "$CTX/rootfs/usr/local/bin/arca"; fi
# Every library the binary needs, and the dynamic loader, at the same paths.
for lib in $(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
  mkdir -p "$CTX/rootfs$(dirname "$lib")"
  cp -L "$lib" "$CTX/rootfs$lib"
done
cp deploy/Dockerfile "$CTX/Dockerfile"
docker build -q -t "$IMAGE" "$CTX"
echo "built $IMAGE"
