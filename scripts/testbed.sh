#!/usr/bin/env bash
# The multi-host testbed: one network namespace per host, joined by a bridge in its own namespace.
#
#   testbed.sh up                     create (idempotent)
#   testbed.sh down                   kill every process in the hosts, remove everything (idempotent)
#   testbed.sh status                 hosts, addresses, impairments
#   testbed.sh exec HOST CMD…         run CMD on HOST
#   testbed.sh impair HOST [--delay MS] [--loss FRACTION]
#                                     delay every frame crossing HOST's link by MS (each direction)
#                                     and drop FRACTION of them (0..1), with scripts/link-emulator.py
#   testbed.sh clear HOST             remove HOST's impairment
#
# Hosts and addresses (a private /24 that exists only inside these namespaces):
#   client 10.77.0.10   fe 10.77.0.11   is1 10.77.0.12   is2 10.77.0.13   be 10.77.0.14
# Each host has `lo` and `eth0` (fixed MAC 02:0d:b0:00:00:XX); `eth0` is a veth whose peer
# `v-HOST` is a port of bridge `br0` in namespace `odb-br`. Needs root and iproute2.
set -euo pipefail

readonly NS_PREFIX=odb-
readonly BRIDGE_NS=odb-br
readonly HOSTS=(client fe is1 is2 be)
readonly SUBNET=10.77.0
readonly RUN_DIR=/run/odb-testbed
here=$(cd "$(dirname "$0")" && pwd)

host_index() {
  case "$1" in
    client) echo 10 ;; fe) echo 11 ;; is1) echo 12 ;; is2) echo 13 ;; be) echo 14 ;;
    *) echo "testbed: unknown host '$1' (hosts: ${HOSTS[*]})" >&2; return 1 ;;
  esac
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

up() {
  mkdir -p "$RUN_DIR"
  if ! ns_exists "$BRIDGE_NS"; then
    ip netns add "$BRIDGE_NS"
    ip -n "$BRIDGE_NS" link set lo up
    ip -n "$BRIDGE_NS" link add br0 type bridge
    ip -n "$BRIDGE_NS" link set br0 up
  fi
  for host in "${HOSTS[@]}"; do
    local ns="$NS_PREFIX$host" index
    index=$(host_index "$host")
    ns_exists "$ns" && continue
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Like any proxy host: reuse TIME_WAIT ports for new outgoing connections (a stock nginx opens
    # one upstream connection per request and would run out of ports in a minute at 500 req/s).
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
    ip link add "v-$host" netns "$BRIDGE_NS" type veth peer name eth0 netns "$ns"
    ip -n "$ns" link set eth0 address "02:0d:b0:00:00:$index"
    ip -n "$ns" addr add "$SUBNET.$index/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$BRIDGE_NS" link set "v-$host" master br0
    ip -n "$BRIDGE_NS" link set "v-$host" up
  done
  echo "testbed up: ${HOSTS[*]} on $SUBNET.0/24"
}

down() {
  for host in "${HOSTS[@]}"; do
    [ -f "$RUN_DIR/impair-$host.pid" ] && clear_impairment "$host" || true
  done
  for host in "${HOSTS[@]}" br; do
    local ns="$NS_PREFIX$host"
    ns_exists "$ns" || continue
    local pids
    pids=$(ip netns pids "$ns" || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill $pids 2> /dev/null || true
      for _ in $(seq 50); do [ -z "$(ip netns pids "$ns")" ] && break; sleep 0.1; done
      pids=$(ip netns pids "$ns" || true)
      # shellcheck disable=SC2086
      [ -n "$pids" ] && kill -9 $pids 2> /dev/null || true
    fi
    ip netns del "$ns"
  done
  rm -rf "$RUN_DIR"
  echo "testbed down"
}

status() {
  for host in "${HOSTS[@]}"; do
    local ns="$NS_PREFIX$host"
    if ns_exists "$ns"; then
      local impaired=""
      [ -f "$RUN_DIR/impair-$host.args" ] && impaired=" impaired: $(cat "$RUN_DIR/impair-$host.args")"
      echo "$host $ns $SUBNET.$(host_index "$host") processes: $(ip netns pids "$ns" | wc -l)$impaired"
    else
      echo "$host absent"
    fi
  done
}

# Splices a link emulator between the host's bridge port and the bridge:
#   host eth0 ⇄ v-HOST ⇄ [link-emulator.py] ⇄ lk-HOST ⇄ lb-HOST (bridge port)
impair() {
  local host=$1 delay=0 loss=0
  shift
  host_index "$host" > /dev/null
  while [ $# -gt 0 ]; do
    case "$1" in
      --delay) delay=$2; shift 2 ;;
      --loss) loss=$2; shift 2 ;;
      *) echo "testbed impair: unknown option $1" >&2; return 2 ;;
    esac
  done
  [ -f "$RUN_DIR/impair-$host.pid" ] && clear_impairment "$host"
  ip -n "$BRIDGE_NS" link set "v-$host" nomaster
  ip link add "lk-$host" netns "$BRIDGE_NS" type veth peer name "lb-$host" netns "$BRIDGE_NS"
  ip -n "$BRIDGE_NS" link set "lb-$host" master br0
  ip -n "$BRIDGE_NS" link set "lb-$host" up
  ip -n "$BRIDGE_NS" link set "lk-$host" up
  mkdir -p "$RUN_DIR"
  ip netns exec "$BRIDGE_NS" python3 "$here/link-emulator.py" "v-$host" "lk-$host" \
    --delay-ms "$delay" --loss "$loss" > "$RUN_DIR/impair-$host.log" 2>&1 &
  echo $! > "$RUN_DIR/impair-$host.pid"
  echo "--delay $delay --loss $loss" > "$RUN_DIR/impair-$host.args"
  for _ in $(seq 50); do grep -q ready "$RUN_DIR/impair-$host.log" 2> /dev/null && break; sleep 0.1; done
  grep -q ready "$RUN_DIR/impair-$host.log" || { cat "$RUN_DIR/impair-$host.log" >&2; return 1; }
  echo "impaired $host: delay ${delay} ms each way, loss $loss"
}

clear_impairment() {
  local host=$1
  if [ -f "$RUN_DIR/impair-$host.pid" ]; then
    kill "$(cat "$RUN_DIR/impair-$host.pid")" 2> /dev/null || true
    rm -f "$RUN_DIR/impair-$host.pid" "$RUN_DIR/impair-$host.args" "$RUN_DIR/impair-$host.log"
  fi
  ip -n "$BRIDGE_NS" link del "lk-$host" 2> /dev/null || true
  ip -n "$BRIDGE_NS" link set "v-$host" master br0 2> /dev/null || true
}

[ "$(id -u)" -eq 0 ] || { echo "testbed: needs root" >&2; exit 1; }
case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  exec) shift; host=$1; shift; host_index "$host" > /dev/null; exec ip netns exec "$NS_PREFIX$host" "$@" ;;
  impair) shift; impair "$@" ;;
  clear) shift; clear_impairment "$1"; echo "cleared $1" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
