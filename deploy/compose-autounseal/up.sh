#!/usr/bin/env bash
# Brings up the auto-unseal compose cluster from nothing:
#  1. the key service (keys): initialised with one unseal key share, which
#     is written to ./keys-init.json (mode 600) — keep it offline: it is
#     what a restart of the key service needs;
#  2. a transit key `autounseal`, a policy allowing only encrypt/decrypt
#     with it, and an orphan periodic token for the seal (./seal-token,
#     mode 600, passed to the nodes as BAO_TOKEN);
#  3. the three raft nodes and the load balancer; arca1 is initialised
#     (recovery keys and root token in ./cluster-init.json, mode 600), the
#     others join through retry_join and unseal themselves.
# Needs the images (deploy/build-image.sh, deploy/build-lb-image.sh) and a
# `bao` or `arca` CLI on the host. Re-running it on a running cluster only
# starts what is stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
CLI="${CLI:-$(command -v arca || command -v bao)}"
umask 077
wait_http() { # url
  for _ in $(seq 1 120); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.5
  done
  echo "no answer from $1" >&2; exit 1
}
export ARCA_SEAL_TOKEN="${ARCA_SEAL_TOKEN:-$(cat seal-token 2>/dev/null || echo pending)}"
docker-compose up -d keys
wait_http http://127.0.0.1:18210/v1/sys/seal-status
export VAULT_ADDR=http://127.0.0.1:18210 ARCA_ADDR=http://127.0.0.1:18210
if [ ! -s keys-init.json ]; then
  echo "==> initialising the key service"
  "$CLI" operator init -key-shares=1 -key-threshold=1 -format=json > keys-init.json
fi
key=$(python3 -c 'import json;print(json.load(open("keys-init.json"))["unseal_keys_b64"][0])')
root=$(python3 -c 'import json;print(json.load(open("keys-init.json"))["root_token"])')
"$CLI" operator unseal "$key" > /dev/null
if [ ! -s seal-token ]; then
  echo "==> transit key and seal token"
  export VAULT_TOKEN="$root" ARCA_TOKEN="$root"
  "$CLI" secrets enable transit > /dev/null
  "$CLI" write -f transit/keys/autounseal > /dev/null
  printf 'path "transit/encrypt/autounseal" { capabilities = ["update"] }\npath "transit/decrypt/autounseal" { capabilities = ["update"] }\n' > autounseal.hcl
  "$CLI" policy write autounseal autounseal.hcl > /dev/null
  "$CLI" token create -orphan -period=24h -policy=autounseal -field=token > seal-token
  unset VAULT_TOKEN ARCA_TOKEN
fi
export ARCA_SEAL_TOKEN="$(cat seal-token)"
echo "==> nodes and load balancer"
docker-compose up -d arca1 arca2 arca3 lb
export VAULT_ADDR=http://127.0.0.1:18201 ARCA_ADDR=http://127.0.0.1:18201
wait_http http://127.0.0.1:18201/v1/sys/seal-status
if [ ! -s cluster-init.json ]; then
  echo "==> initialising the cluster (recovery keys)"
  "$CLI" operator init -format=json > cluster-init.json
fi
for port in 18201 18202 18203; do
  for _ in $(seq 1 240); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/sys/health?standbyok=true" || true)
    [ "$code" = 200 ] && break
    sleep 0.5
  done
  echo "node on $port: sys/health $code"
done
echo "==> done: recovery keys and root token in $(pwd)/cluster-init.json"
