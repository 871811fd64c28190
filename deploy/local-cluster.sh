#!/usr/bin/env bash
# A local Rivulet cluster on 127.0.0.1: one coordinator and N task managers
# as background processes, with logs and pid files in a run directory.
#
#   deploy/local-cluster.sh start [N]   # default N=2; prints the coordinator address
#   deploy/local-cluster.sh status
#   deploy/local-cluster.sh stop        # stops exactly the processes it started
#
# Environment: RIVULET_RUN_DIR (default /tmp/rivulet-local-cluster),
# RIVULET_BIN (default build/), RIVULET_COORDINATOR (default
# tcp://127.0.0.1:6123), RIVULET_SLOTS (slots per task manager, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir="${RIVULET_RUN_DIR:-/tmp/rivulet-local-cluster}"
bin="${RIVULET_BIN:-build}"
coord="${RIVULET_COORDINATOR:-tcp://127.0.0.1:6123}"
slots="${RIVULET_SLOTS:-2}"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  local n="${1:-2}"
  mkdir -p "$run_dir"
  if alive "$run_dir/coordinator.pid"; then
    echo "local-cluster: already running (pid $(cat "$run_dir/coordinator.pid")); stop it first" >&2
    exit 1
  fi
  [ -x "$bin/rivulet-coordinator" ] || deploy/build.sh "$bin"
  "$bin/rivulet-coordinator" --listen "$coord" >"$run_dir/coordinator.log" 2>&1 &
  echo $! >"$run_dir/coordinator.pid"
  for i in $(seq 0 $((n - 1))); do
    "$bin/rivulet-taskmanager" --coordinator "$coord" --slots "$slots" --name "tm-$i" \
      --data-listen tcp://127.0.0.1:0 >"$run_dir/tm-$i.log" 2>&1 &
    echo $! >"$run_dir/tm-$i.pid"
  done
  # Wait until every task manager has registered (bounded).
  for _ in $(seq 1 100); do
    local registered
    registered=$(grep -c "task manager tm-.* registered" "$run_dir/coordinator.log" 2>/dev/null || true)
    [ "${registered:-0}" -ge "$n" ] && break
    sleep 0.1
  done
  echo "local-cluster: coordinator $coord, $n task manager(s) x $slots slots; logs in $run_dir"
}

status() {
  local any=0
  for f in "$run_dir"/*.pid; do
    [ -e "$f" ] || continue
    any=1
    local name
    name=$(basename "$f" .pid)
    if alive "$f"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: not running"; fi
  done
  [ $any -eq 1 ] || echo "local-cluster: nothing started from $run_dir"
}

stop() {
  # Task managers first, then the coordinator; each by its own pid file.
  for f in "$run_dir"/tm-*.pid "$run_dir"/coordinator.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then
      local pid
      pid=$(cat "$f")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  echo "local-cluster: stopped"
}

case "${1:-}" in
  start) start "${2:-2}" ;;
  status) status ;;
  stop) stop ;;
  *) echo "usage: $0 start [N] | status | stop" >&2; exit 2 ;;
esac
