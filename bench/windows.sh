#!/usr/bin/env bash
# Window-operator benchmarks for both keyed-state backends. Each case runs
# a generator -> hash exchange -> window_aggregate -> discard job
# (bench/windows/*.yaml, parallelism 2) with `rivulet run --stats` and
# reports events/s per core (events / CPU seconds of the whole process,
# generator included) and peak RSS:
#   tumbling 1 s count at 100, 10 K and 1 M distinct keys,
#   sliding 10 s / 2 s count at 10 K keys,
#   session (gap 500 ms) count at 10 K keys,
# each with state.backend=memory and =rocksdb (memory_budget 256MiB), plus
# rocksdb with memory_budget=16MiB on 1 M keys to show the cost of spilling.
# The machine is small and noisy, so each case runs REPS times (default 3)
# and the run with the median events/s per core is shown (with an even
# REPS, the better of the two middle runs); its RSS is shown with it.
#   bench/windows.sh [build-dir]       # default build-release
#   REPS=1 bench/windows.sh            # one run per case
#   bench/windows.sh build-release session tumbling_1m   # only these cases
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
[ $# -gt 0 ] && shift
reps=${REPS:-3}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Db_ndebug=true >/dev/null
fi
bt=$(meson configure "$build" 2>/dev/null | awk '$1 == "buildtype" { print $2 }')
[ "$bt" = release ] || echo "warning: $build has buildtype '$bt', not release" >&2
ninja -C "$build" cli/rivulet >/dev/null
rivulet=$build/cli/rivulet

# name | job file | events | extra --set options (space separated)
# Event counts make one run take about 1-5 s on 2 busy cores, except
# spill_1m (~10-15 s): 1 M events is one full window of the 1 M keys, the
# least that shows steady spilling (the first ~240 K keys fit in the
# 2 x 16 MiB budget, so a shorter run mostly measures the warm cache).
cases=(
  "tumbling_100|tumbling|30000000|gen.fields.key.max=99"
  "tumbling_10k|tumbling|30000000|gen.fields.key.max=9999"
  "tumbling_1m|tumbling|6000000|gen.fields.key.max=999999"
  "sliding_10k|sliding|12000000|"
  "session_10k|session|2000000|"
  "spill_1m|tumbling|1000000|gen.fields.key.max=999999 state.memory_budget=16MiB"
)
want=("$@")
for w in "${want[@]}"; do
  grep -q "^$w|" <(printf '%s\n' "${cases[@]}") || {
    echo "unknown case '$w'; cases: $(printf '%s\n' "${cases[@]}" | cut -d'|' -f1 | xargs)" >&2
    exit 2
  }
done
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# One run: prints "events cpu_s wall_s events_per_cpu_s peak_rss_mib", or
# nothing when the job failed (its stderr is shown).
run_once() {
  local job=$1 events=$2 sets=$3 backend=$4 err line
  local args=(run -q --stats --set "state.backend=$backend" --set "gen.count=$events")
  local s
  for s in $sets; do args+=(--set "$s"); done
  err=$("$rivulet" "${args[@]}" "bench/windows/$job.yaml" 2>&1 >/dev/null) || {
    echo "$err" | tail -5 >&2
    return 0
  }
  line=$(grep 'stats:' <<<"$err") || return 0
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  echo "$(get events) $(get cpu_s) $(get wall_s) $(get events_per_cpu_s) $(get peak_rss_mib)"
}

declare -A eps rss
printf '%-14s %-8s %10s %16s %12s %8s %s\n' case backend events events/s/core peak_rss_MiB wall_s "runs (events/s/core)"
for c in "${cases[@]}"; do
  IFS='|' read -r name job events sets <<<"$c"
  selected "$name" || continue
  backends=(memory rocksdb)
  [ "$name" = spill_1m ] && backends=(rocksdb)
  for b in "${backends[@]}"; do
    results=()
    for ((i = 0; i < reps; i++)); do
      r=$(run_once "$job" "$events" "$sets" "$b")
      [ -n "$r" ] && results+=("$r")
    done
    if [ ${#results[@]} -eq 0 ]; then
      printf '%-14s %-8s %10d %16s %12s %8s\n' "$name" "$b" "$events" FAILED - -
      continue
    fi
    # Sort the runs by events/s per core; take the (upper) median.
    sorted=$(printf '%s\n' "${results[@]}" | sort -k4,4g)
    n=${#results[@]}
    pick=$(sed -n "$((n / 2 + 1))p" <<<"$sorted")
    all=$(awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $4 }' <<<"$sorted")
    read -r ev cpu wall e r <<<"$pick"
    eps[$name/$b]=$e
    rss[$name/$b]=$r
    printf '%-14s %-8s %10d %16.0f %12.1f %8.2f %s\n' "$name" "$b" "$ev" "$e" "$r" "$wall" "$all"
  done
done

echo
echo "rocksdb / memory (spill_1m: rocksdb 16MiB vs memory tumbling_1m)"
printf '%-14s %16s %12s\n' case events/s/core peak_rss
for c in "${cases[@]}"; do
  name=${c%%|*}
  base=$name
  [ "$name" = spill_1m ] && base=tumbling_1m
  m=${eps[$base/memory]:-} d=${eps[$name/rocksdb]:-}
  [ -n "$m" ] && [ -n "$d" ] || continue
  awk -v n="$name" -v m="$m" -v d="$d" -v rm="${rss[$base/memory]}" -v rd="${rss[$name/rocksdb]}" \
    'BEGIN { printf "%-14s %16.3f %12.3f\n", n, d / m, rd / rm }'
done
