#!/usr/bin/env bash
# Installs the system packages ODB's tests, demo peers and benchmarks use (Debian/Ubuntu, as root):
#   nginx-light  stock nginx, used as an unmodified intermediate tier in tests and benchmarks
#   haproxy      stock HAProxy, the same role
#   curl, wrk    third-party clients
#   iproute2     network namespaces for the multi-host testbed
#   iputils-ping, python3  testbed checks and its link emulator (scripts/link-emulator.py)
#   openssl      a test CA and server certificate for the TLS tests (test/helpers/tls.ts)
# Services are not started: tests run their own nginx/HAProxy processes on loopback ports.
# Idempotent: packages already installed are left alone. Needs network access to the Debian mirror.
set -euo pipefail

packages=(nginx-light haproxy curl wrk iproute2 procps iputils-ping python3 openssl)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

# Keep package scripts from starting the distribution's nginx/haproxy services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
echo "system packages: installed ${missing[*]}"
