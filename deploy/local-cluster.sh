#!/usr/bin/env bash
# A local 3-node Arca cluster on 127.0.0.1 (no Docker): builds the binary if
# needed, starts three `arca server` processes with raft storage, runs the
# unseal ceremony (init on node 1, join and unseal nodes 2 and 3) and prints
# the addresses, the root token and the unseal key.
#
#   deploy/local-cluster.sh            # API on 8210, 8220, 8230
#   deploy/local-cluster.sh stop       # stops it (data stays in $DIR)
#   DIR=/tmp/my-cluster deploy/local-cluster.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}"
DIR="${DIR:-${TMPDIR:-/tmp}/arca-local-cluster}"
BIN="$TARGET/release/arca"
PORTS=(8210 8220 8230)

if [ "${1:-}" = "stop" ]; then
  for f in "$DIR"/node*/pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  echo "stopped (data kept in $DIR)"
  exit 0
fi

if [ ! -x "$BIN" ]; then
  deploy/install-deps.sh
  echo "==> building arca (the first build compiles RocksDB: 20-25 min on 2 cores)"
  CARGO_TARGET_DIR="$TARGET" cargo build --release --workspace --all-targets
fi

api() { curl -sS -m 120 -X "$1" "http://127.0.0.1:$2/v1/$3" ${4:+-d "$4"}; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

mkdir -p "$DIR"
for i in 1 2 3; do
  p=${PORTS[$((i-1))]}
  d="$DIR/node$i"
  mkdir -p "$d/data"
  cat > "$d/arca.hcl" <<HCL
storage "raft" {
  path    = "$d/data"
  node_id = "node$i"
}
listener "tcp" {
  address         = "127.0.0.1:$p"
  cluster_address = "127.0.0.1:$((p+1))"
  tls_disable     = true
}
api_addr     = "http://127.0.0.1:$p"
cluster_addr = "http://127.0.0.1:$((p+1))"
HCL
  if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
    echo "node$i already running (pid $(cat "$d/pid"))"
  else
    "$BIN" server -config "$d/arca.hcl" > "$d/log.txt" 2>&1 &
    echo $! > "$d/pid"
  fi
done
for p in "${PORTS[@]}"; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$p/v1/sys/seal-status" && break; sleep 0.1; done
done

if [ "$(api GET 8210 sys/init | field "['initialized']")" = "False" ]; then
  echo "==> initializing node1 (1 key share, for a local playground)"
  api PUT 8210 sys/init '{"secret_shares":1,"secret_threshold":1}' > "$DIR/init.json"
  chmod 600 "$DIR/init.json"
fi
KEY=$(field "['keys_base64'][0]" < "$DIR/init.json")
ROOT=$(field "['root_token']" < "$DIR/init.json")
api PUT 8210 sys/unseal "{\"key\":\"$KEY\"}" > /dev/null
for p in 8220 8230; do
  if [ "$(api GET "$p" sys/init | field "['initialized']")" = "False" ]; then
    echo "==> joining 127.0.0.1:$p"
    api POST "$p" sys/storage/raft/join '{"leader_api_addr":"http://127.0.0.1:8210"}' > /dev/null
  fi
  api PUT "$p" sys/unseal "{\"key\":\"$KEY\"}" > /dev/null
done
curl -sS -o /dev/null -H "X-Vault-Token: $ROOT" -X POST \
  -d '{"type":"kv","options":{"version":"2"}}' http://127.0.0.1:8210/v1/sys/mounts/secret || true

cat <<EOT

Arca cluster running: http://127.0.0.1:8210 (node1), :8220 (node2), :8230 (node3)
  data and logs: $DIR
  unseal key:    $KEY
  root token:    $ROOT

  export VAULT_ADDR=http://127.0.0.1:8220 VAULT_TOKEN=$ROOT
  bao operator raft list-peers
  bao kv put secret/hello foo=world       # any node; standbys forward writes
  deploy/local-cluster.sh stop
EOT
