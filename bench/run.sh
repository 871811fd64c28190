#!/usr/bin/env bash
# Runs the engine benchmarks on the embedded mini-cluster and prints
# events/s per core (events / CPU seconds of the whole process, generator
# included), wall-clock throughput and peak RSS.
#   bench/run.sh            # all benchmarks
#   bench/run.sh chained_filter
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-release/build.ninja ]; then
  meson setup build-release --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-release cli/rivulet >/dev/null
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(chained_filter keyed_window)
printf '%-16s %12s %14s %16s %10s %12s\n' benchmark events wall_events/s events/s/core cpu_cores peak_rss_MiB
for n in "${names[@]}"; do
  line=$(build-release/cli/rivulet run -q --stats "bench/$n.yaml" 2>&1 >/dev/null | grep 'stats:')
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  events=$(get events); wall=$(get wall_s); cpu=$(get cpu_s); rss=$(get peak_rss_mib)
  awk -v n="$n" -v e="$events" -v w="$wall" -v c="$cpu" -v r="$rss" \
    'BEGIN { printf "%-16s %12d %14.0f %16.0f %10.2f %12.1f\n", n, e, e / w, e / c, c / w, r }'
done
