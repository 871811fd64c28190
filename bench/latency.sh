#!/usr/bin/env bash
# Latency benchmark: paced generators whose event time follows the wall
# clock (`start: now`), measured by the discard sink's `latency_of`
# (arrival wall clock minus a timestamp field, 1 ms buckets):
#   latency_filter.yaml  generator -> filter -> discard       (row latency)
#   latency_window.yaml  generator -> hash -> tumbling 1 s    (window end -> result)
# Each runs ~10 s at 200 K events/s. The last windows of the window job fire
# when the input ends, before their end (negative latencies, counted as 0):
# they are few and do not move the percentiles.
#   bench/latency.sh [build-dir]      (default build-release)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
if [ ! -d "$build" ]; then
  meson setup "$build" --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$build" cli/rivulet >/dev/null
for job in latency_filter latency_window; do
  out=$("$build/cli/rivulet" run "bench/$job.yaml" --stats 2>&1)
  echo "$out" | grep -o 'latency_ms .*' | sed "s/^/$job: /"
  echo "$out" | grep -o 'events_per_s=[0-9]* events_per_cpu_s=[0-9]* peak_rss_mib=[0-9.]*' | sed "s/^/$job: /"
done
