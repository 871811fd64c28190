#!/usr/bin/env bash
# Benchmark: the keyed pipeline (bench/keyed_window.yaml, parallelism 2)
# across two task-manager processes (one slot each, so every record's key
# group decides whether it crosses the network), against the same job in
# one process. Prints events/s per core (events / CPU seconds of all
# processes: coordinator and task managers) and bytes/s through the
# shuffle. Uses a release build in build-release/. Extra arguments go to
# both runs, e.g. bench/cluster.sh --set channel_capacity=32.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-release/build.ninja ]; then
  meson setup build-release --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-release >/dev/null
bin=build-release
job=bench/keyed_window.yaml
run=$(mktemp -d /tmp/rivulet-bench-XXXX)
port=$((20000 + RANDOM % 20000))
url=tcp://127.0.0.1:$port
ticks=$(getconf CLK_TCK)

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$bin/rivulet-coordinator" --listen "$url" >"$run/coord.log" 2>&1 &
cpid=$!
"$bin/rivulet-taskmanager" --coordinator "$url" --slots 1 --name tm-a >"$run/tm-a.log" 2>&1 &
apid=$!
"$bin/rivulet-taskmanager" --coordinator "$url" --slots 1 --name tm-b >"$run/tm-b.log" 2>&1 &
bpid=$!
trap 'kill $apid $bpid $cpid 2>/dev/null || true; rm -rf "$run"' EXIT
for _ in $(seq 1 50); do
  [ "$(grep -c registered "$run/coord.log" || true)" -ge 2 ] && break
  sleep 0.1
done
c0=$(( $(cpu_of $cpid) + $(cpu_of $apid) + $(cpu_of $bpid) ))
t0=$(date +%s.%N)
id=$("$bin/cli/rivulet" submit --wait --coordinator "$url" "$job" "$@")
t1=$(date +%s.%N)
c1=$(( $(cpu_of $cpid) + $(cpu_of $apid) + $(cpu_of $bpid) ))
events=$("$bin/cli/rivulet" status --json --coordinator "$url" "$id" | python3 -c \
  'import json,sys; j=json.load(sys.stdin); print(sum(s["records_in"] for s in j["subtasks"] if s["task"] == 0))')
kill -TERM $apid $bpid; wait $apid $bpid 2>/dev/null || true
bytes=$(grep -ho "sent [0-9]* frames ([0-9]* bytes)" "$run"/tm-*.log | awk -F'[( ]' '{s += $5} END {print s + 0}')
wall=$(echo "$t1 - $t0" | bc -l)
cpu=$(echo "($c1 - $c0) / $ticks" | bc -l)

one=$("$bin/cli/rivulet" run -q --stats "$job" "$@" 2>&1 >/dev/null | grep stats:)
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$one"; }

printf '%-26s %12s %10s %10s %16s %14s\n' setup events wall_s cpu_s events/s/core shuffle_MB/s
awk -v e="$events" -v w="$wall" -v c="$cpu" -v b="$bytes" 'BEGIN { printf "%-26s %12d %10.3f %10.3f %16.0f %14.1f\n", "2 task managers (tcp)", e, w, c, e / c, b / w / 1e6 }'
awk -v e="$(get events)" -v w="$(get wall_s)" -v c="$(get cpu_s)" 'BEGIN { printf "%-26s %12d %10.3f %10.3f %16.0f %14s\n", "1 process (embedded)", e, w, c, e / c, "-" }'
