#!/usr/bin/env bash
# Installs what building Arca needs on a fresh Debian 12 machine, and with
# `test` what the test suite needs too. Only missing packages are installed;
# a machine that has them all is left alone. Used by deploy/dev.sh,
# deploy/local-cluster.sh and .ci/run, so that the three agree.
#
#   deploy/install-deps.sh          # clang/libclang (RocksDB's bindings), g++, curl
#   deploy/install-deps.sh test     # + openssl, iptables, haproxy, slapd, ldap-utils,
#                                   #   postgresql, mariadb-server, mariadb-client,
#                                   #   prometheus, gnupg, softhsm2, docker-compose, pip
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; [ -n "${CI:-}" ] && SUDO="sudo -n"; fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install a Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
fi

pkgs=(libclang-dev clang curl)
if [ "${1:-}" = "test" ]; then
  # openssl and curl drive the PKI tests; iptables cuts links in the chaos
  # tests; haproxy and docker-compose run the compose scenario; slapd and
  # ldap-utils run the OpenLDAP server the LDAP auth tests log in against;
  # postgresql brings the server binaries (initdb, pg_ctl, psql) the
  # database engine tests start a throwaway cluster with; mariadb-server
  # (mariadbd, mariadb-install-db, and the `mysql` system user that runs
  # them when the tests run as root) and mariadb-client (`mariadb`) the same
  # for the MySQL/MariaDB plugin's tests; prometheus scrapes a cluster's
  # sys/metrics in the telemetry tests; gnupg (gpg, gpgconf) makes the
  # holders' keys that arca-pgp's tests encrypt key shares to, and decrypts
  # every message with them; softhsm2 (libsofthsm2.so, softhsm2-util) is
  # the PKCS#11 module and token the pkcs11 seal's tests encrypt with.
  pkgs+=(openssl iptables haproxy slapd ldap-utils postgresql mariadb-server mariadb-client prometheus gnupg softhsm2)
fi
need=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
command -v c++ >/dev/null 2>&1 || need+=(g++)
if [ "${1:-}" = "test" ]; then
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "==> installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "==> system packages: all present"
fi
