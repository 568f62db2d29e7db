#!/usr/bin/env bash
# Builds `arca-lb:local`: HAProxy (Debian's package, installed if missing)
# and the shared libraries it links, `FROM scratch` like the arca image. The
# compose file mounts deploy/compose/haproxy.cfg into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMAGE="${IMAGE:-arca-lb:local}"
if ! command -v haproxy >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends haproxy
fi
BIN="$(command -v haproxy)"
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/rootfs/usr/local/sbin" "$CTX/rootfs/etc/haproxy" "$CTX/rootfs/run" "$CTX/rootfs/tmp"
cp -L "$BIN" "$CTX/rootfs/usr/local/sbin/haproxy"
for lib in $(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
  mkdir -p "$CTX/rootfs$(dirname "$lib")"
  cp -L "$lib" "$CTX/rootfs$lib"
done
cat > "$CTX/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
EXPOSE 8200
ENTRYPOINT ["/usr/local/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
DOCKERFILE
docker build -q -t "$IMAGE" "$CTX" 2>/dev/null
echo "built $IMAGE"
