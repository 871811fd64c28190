#!/usr/bin/env bash
# Benchmark: checkpoints and recovery on a local cluster (127.0.0.1): one
# coordinator (--checkpoint-dir, heartbeats every 100 ms) and three task
# managers with one slot each; jobs run at parallelism 2, so one task
# manager is a spare that takes over after a failure.
#
#  1. recovery: bench/recovery/keyed_state.yaml (paced generator at RATE
#     records/s, keyed state of KEYS entries, checkpoint every 10 s) with
#     small state (10 K keys) and large state (LARGE_KEYS, default 10 M keys
#     = ~1.06 GB in a checkpoint). After a checkpoint has completed, the
#     task manager running window subtask 0 gets SIGKILL, and the table
#     shows the time from the kill to
#       lost       the coordinator's `task manager X lost` line,
#       restart    `restart 1 of N` (every subtask of the failed attempt
#                  has stopped; the restart delay is 0),
#       RUNNING    `is RUNNING ... resuming from` (the new attempt is
#                  deployed; the task managers restore state after this),
#       processing every window subtask of the new attempt has taken in
#                  records (status --json records_in, see below),
#       next_chk   the first checkpoint completed after the recovery (when
#                  a `file` sink would publish again).
#  2. the first two consecutive checkpoints of equal size at large state
#     (the state stopped growing): duration, longest pause of a subtask,
#     longest write and bytes written (when the coordinator logs them),
#     bytes of state.
#  3. throughput of bench/recovery/throughput.yaml (unpaced generator,
#     keyed tumbling window, discard) without and with `checkpointing:
#     {interval: 10s}`, as events/s per core: events / CPU seconds of all
#     engine processes (coordinator and task managers, from /proc), and
#     the ratio. TPUT_REPS (2) runs of TPUT_COUNT (200 M) events each,
#     interleaved (off on off on), summed.
#
# How "processing" is measured: the source subtasks are a poor signal:
# a restarted generator emits a few batches at once (they fill the
# channels) while the window subtasks are still loading their state, and
# the counters of a new attempt start from 0, not from the restored
# position. The window subtasks report records_in = 0 until their state is
# restored and they take their first batch. The coordinator keeps the old
# attempt's counters until the new attempt's first heartbeat, so a reading
# counts as the new attempt's once it is below the largest value seen
# before (old counters only grow, and the new attempt cannot catch up in
# the few seconds measured). The figure is the end of the first status call
# in which every window subtask shows 0 < records_in < old value;
# resolution ~100-150 ms (heartbeat interval plus one status call). The
# file sink's part files were not used: they appear only when a checkpoint
# completes, i.e. up to an interval after processing resumed (next_chk
# shows when that is).
#
# State held in memory is snapshotted in full: every checkpoint at large
# state is as big as the first, and the subtask pauses while it is
# serialised (the file is then written by the upload thread: `longest
# write`). The `spilled` phase (SPILLED_KEYS, default 2 M keys, rocksdb
# with a 64 MiB budget) shows incremental checkpoints: `written` is what
# the checkpoint copied, against the state it refers to.
#
# Takes ~4 minutes and ~4 GB of memory (large state: two task managers
# holding ~1.6 GB each during the restore).
#   bench/recovery.sh [build-dir] [phase...]   # build-dir default build-bench;
#                                              # phases: throughput small large spilled few_changes
#   LARGE_KEYS=5000000 RATE=500000 bench/recovery.sh
#   KEEP=1 bench/recovery.sh                   # keep the logs (path printed)
#   NO_BUILD=1 bench/recovery.sh               # run the binaries as they are
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
[ $# -gt 0 ] && shift
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(throughput small large spilled few_changes)
for p in "${phases[@]}"; do
  case $p in throughput | small | large | spilled | few_changes) ;;
  *) echo "unknown phase '$p' (throughput small large spilled few_changes)" >&2; exit 2 ;;
  esac
done
small_keys=${SMALL_KEYS:-10000}
large_keys=${LARGE_KEYS:-10000000}
spilled_keys=${SPILLED_KEYS:-2000000}
rate=${RATE:-1000000}
tput_count=${TPUT_COUNT:-200000000}
tput_reps=${TPUT_REPS:-2}

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >/dev/null
fi
bt=$(meson configure "$build" 2>/dev/null | awk '$1 == "buildtype" { print $2 }')
[ "$bt" = release ] || echo "warning: $build has buildtype '$bt', not release" >&2
if [ -z "${NO_BUILD:-}" ]; then
  out=$(ninja -C "$build" rivulet-coordinator rivulet-taskmanager cli/rivulet 2>&1) || {
    echo "$out" | tail -20 >&2
    echo "build failed (NO_BUILD=1 runs the binaries already in $build)" >&2
    exit 1
  }
fi
cli=$build/cli/rivulet

run=$(mktemp -d /tmp/rivulet-recovery-XXXX)
ticks=$(getconf CLK_TCK)
clog=$run/coordinator.log

pids=()            # every process this script started
declare -A tm_pid  # live task managers: name -> pid
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "logs kept in $run" >&2; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU ticks of all live engine processes.
cpu_all() {
  local s p
  s=$(cpu_of "$cpid")
  for p in "${tm_pid[@]}"; do s=$((s + $(cpu_of "$p"))); done
  echo "$s"
}
now_ms() { date +%s%3N; }
# Epoch ms of a log line (its first field is the UTC time of day HH:MM:SS.mmm).
log_ms() {
  awk -v now="$(now_ms)" '{ split($1, a, ":"); t = int(now / 86400000) * 86400000 + (a[1] * 3600 + a[2] * 60 + a[3]) * 1000
                            if (t > now + 43200000) t -= 86400000
                            printf "%.0f\n", t }'
}
# First line of the coordinator log matching an extended regex, waiting up to $2 s.
wait_log() {
  local re=$1 deadline=$(($(date +%s) + $2)) line
  while :; do
    line=$(grep -E -m1 -- "$re" "$clog" || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}
registered() { grep -c " registered: " "$clog" || true; }
start_tm() {
  local name=$1 want
  want=$(($(registered) + 1))
  "$build/rivulet-taskmanager" --coordinator "$url" --slots 1 --name "$name" -v \
    --state-dir "$run/state-$name" >"$run/$name.log" 2>&1 &
  tm_pid[$name]=$!
  pids+=($!)
  for _ in $(seq 1 100); do
    [ "$(registered)" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "task manager $name did not register" >&2
  exit 1
}
status_json() { "$cli" status "$1" --json --coordinator "$url"; }
job_state() { status_json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
# job.yaml from a template: instantiate TEMPLATE OUT KEY=VALUE...
instantiate() {
  local tmpl=$1 out=$2 kv
  shift 2
  cp "$tmpl" "$out"
  for kv in "$@"; do
    python3 - "$out" "${kv%%=*}" "${kv#*=}" <<'PY'
import sys
path, key, val = sys.argv[1:]
with open(path) as f:
    text = f.read()
with open(path, "w") as f:
    f.write(text.replace("@" + key + "@", val))
PY
  done
}
cancel_job() {
  "$cli" cancel "$1" --coordinator "$url" >/dev/null 2>&1 || true
  for _ in $(seq 1 300); do
    case $(job_state "$1" 2>/dev/null || echo "?") in CANCELED | FAILED | FINISHED) return 0 ;; esac
    sleep 0.1
  done
  echo "warning: job $1 did not end after cancel" >&2
}
# Checkpoint completions of job $1 in the coordinator log:
# "id ms pause_ms bytes time_ms write_ms written" (write_ms and written are
# "-" when the line has no `longest write` or `N written` figure).
chk_lines() {
  { grep -E "job $1: checkpoint [0-9]+ complete in" "$clog" || true; } | while IFS= read -r l; do
    t=$(log_ms <<<"$l")
    w=$(sed -nE 's/.*longest write ([0-9.]+) ms.*/\1/p' <<<"$l")
    x=$(sed -nE 's/.* bytes of state, ([0-9]+) written.*/\1/p' <<<"$l")
    sed -E "s/.* checkpoint ([0-9]+) complete in ([0-9]+) ms \(longest pause of a subtask ([0-9.]+) ms[^)]*\), ([0-9]+) bytes.*/\1 \2 \3 \4 $t ${w:--} ${x:--}/" <<<"$l"
  done
}

# Port 0: the coordinator picks a free port and logs it.
"$build/rivulet-coordinator" --listen tcp://127.0.0.1:0 --checkpoint-dir "$run/checkpoints" \
  --heartbeat-interval 100ms --heartbeat-timeout 1500ms >"$clog" 2>&1 &
cpid=$!
pids+=($cpid)
url=$(wait_log "listening on tcp://127.0.0.1:[0-9]+" 10 | grep -Eo "tcp://127.0.0.1:[0-9]+") || {
  echo "the coordinator did not start:" >&2
  cat "$clog" >&2
  exit 1
}
tm_seq=0
new_tm() { tm_seq=$((tm_seq + 1)); start_tm "tm-$tm_seq"; }
new_tm; new_tm; new_tm

has_phase() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

# ---- 3. throughput with and without checkpoints ----
# TPUT_REPS runs of each, interleaved (off on off on) so that drift in the
# load of a shared machine hits both alike; the figures are the sums.
declare -A t_ev t_wall t_cpu t_chk t_pause
tput_modes=()
if has_phase throughput; then
  tput_modes=(off on)
  for mode in off on; do t_ev[$mode]=0 t_wall[$mode]=0 t_cpu[$mode]=0 t_chk[$mode]=0 t_pause[$mode]=0; done
  for ((rep = 0; rep < tput_reps; rep++)); do
    for mode in off on; do
      if [ $mode = on ]; then chk='checkpointing: {interval: 10s, mode: exactly_once}'; else chk='# no checkpointing'; fi
      instantiate bench/recovery/throughput.yaml "$run/tput-$mode.yaml" NAME="tput-$mode" COUNT="$tput_count" CHECKPOINTING="$chk"
      c0=$(cpu_all)
      t0=$(now_ms)
      id=$("$cli" submit --wait --coordinator "$url" "$run/tput-$mode.yaml") || { echo "throughput job ($mode) did not finish" >&2; exit 1; }
      t1=$(now_ms)
      c1=$(cpu_all)
      events=$(status_json "$id" | python3 -c \
        'import json,sys; j=json.load(sys.stdin); print(sum(s["records_in"] for s in j["subtasks"] if s["task"] == 0))')
      t_ev[$mode]=$((t_ev[$mode] + events))
      t_wall[$mode]=$((t_wall[$mode] + t1 - t0))
      t_cpu[$mode]=$((t_cpu[$mode] + c1 - c0))
      t_chk[$mode]=$((t_chk[$mode] + $(chk_lines "$id" | wc -l)))
      t_pause[$mode]=$(chk_lines "$id" | awk -v m="${t_pause[$mode]}" '$3 > m { m = $3 } END { print m }')
    done
  done
fi

# ---- 1./2. recovery ----
rec_rows=()
chk_rows=()
# RocksDB files change size as they compact: instead of waiting for equal
# sizes, wait until every key is in the window (records in >= keys), then
# take the next two checkpoints into the table.
two_checkpoints_after_fill() {
  local label=$1 id=$2 keys=$3 skip=${4:-0} deadline=$(($(date +%s) + 170)) seen c0 pair
  while :; do
    seen=$(status_json "$id" | python3 -c \
      'import json,sys; j=json.load(sys.stdin); print(sum(s["records_in"] for s in j["subtasks"] if s["chain"].startswith("per_key")))')
    [ "${seen:-0}" -ge "$keys" ] && break
    [ "$(date +%s)" -ge "$deadline" ] && { echo "warning: state not filled within 170 s" >&2; break; }
    sleep 0.5
  done
  c0=$(($(chk_lines "$id" | wc -l) + skip))
  while [ "$(chk_lines "$id" | wc -l)" -lt $((c0 + 2)) ] && [ "$(date +%s)" -lt $((deadline + 60)) ]; do sleep 0.2; done
  pair=$(chk_lines "$id" | tail -2)
  while read -r n ms pause b _ w x; do chk_rows+=("$label $n $ms $pause $w $b $x"); done <<<"$pair"
}
# Incremental checkpoints when little changes: every key once, then only
# 1000 hot keys (no kill); the checkpoint right after the fill still holds
# its end and is skipped.
few_changes() {
  local keys=$1 id
  instantiate bench/recovery/keyed_state.yaml "$run/few.yaml" NAME=few_changes KEY="if(seq < $keys, seq, seq % 1000)" \
    RATE="$rate" BACKEND=rocksdb BUDGET=64MiB
  id=$("$cli" submit --coordinator "$url" "$run/few.yaml")
  two_checkpoints_after_fill few "$id" "$keys" 1 # the first one still holds the end of the fill
  cancel_job "$id"
}
recover() {
  local label=$1 keys=$2 id victim vpid line restored bytes t_a t_r t_b t_d out t_kill t_proc
  local backend=memory budget=4GiB
  [ "$label" = spilled ] && backend=rocksdb budget=64MiB
  instantiate bench/recovery/keyed_state.yaml "$run/$label.yaml" NAME="$label" KEY="seq % $keys" RATE="$rate" \
    BACKEND="$backend" BUDGET="$budget"
  id=$("$cli" submit --coordinator "$url" "$run/$label.yaml")
  if [ "$label" = spilled ]; then
    two_checkpoints_after_fill "$label" "$id" "$keys"
    sleep 2
  elif [ "$label" = large ]; then
    # Wait until the state stopped growing: two consecutive checkpoints of
    # equal size (every key is in the window from then on).
    local deadline=$(($(date +%s) + 170)) pair=""
    while [ -z "$pair" ]; do
      pair=$(chk_lines "$id" | awk 'NR > 1 && $4 == pb && $4 > 0 { print prev; print; exit } { prev = $0; pb = $4 }')
      [ -n "$pair" ] && break
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "warning: no two equal checkpoints within 170 s; using the last two" >&2
        pair=$(chk_lines "$id" | tail -2)
        break
      fi
      sleep 0.2
    done
    while read -r n ms pause b _ w x; do chk_rows+=("$label $n $ms $pause $w $b $x"); done <<<"$pair"
    # Kill 2 s after the second one, well before the next starts.
    local last_t
    last_t=$(tail -1 <<<"$pair" | awk '{print $5}')
    sleep "$(awk -v d=$((last_t + 2000 - $(now_ms))) 'BEGIN { print (d > 0 ? d / 1000 : 0) }')"
  else
    wait_log "job $id: checkpoint 1 complete" 60 >/dev/null || { echo "no checkpoint for $label" >&2; exit 1; }
    sleep 2
  fi
  victim=$(status_json "$id" | python3 -c \
    'import json,sys; j=json.load(sys.stdin); print([s["taskmanager"] for s in j["subtasks"] if s["chain"].startswith("per_key") and s["subtask"] == 0][0])')
  vpid=${tm_pid[$victim]}
  # The poller kills the victim (so the kill time and the baseline counters
  # are taken together) and watches the window subtasks' records_in.
  out=$(python3 - "$cli" "$url" "$id" "$vpid" <<'PY'
import json, os, signal, subprocess, sys, time
cli, url, job, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def status():
    r = subprocess.run([cli, "status", job, "--json", "--coordinator", url], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        j = json.loads(r.stdout)
    except ValueError:
        return None
    return {s["subtask"]: s["records_in"] for s in j["subtasks"] if s["chain"].startswith("per_key")}
old = None
for _ in range(50):
    old = status()
    if old:
        break
    time.sleep(0.1)
if not old:
    sys.exit("no status of job " + job)
t_kill = time.time() * 1000
os.kill(pid, signal.SIGKILL)
new = {}
deadline = time.time() + 120
while time.time() < deadline:
    cur = status()
    t = time.time() * 1000
    if cur is None:
        time.sleep(0.02)
        continue
    for k, v in cur.items():
        if v < old.get(k, 0):
            new[k] = v            # a counter of the new attempt
        elif k not in new:
            old[k] = v            # the old attempt, still reporting
    if len(new) == len(old) and all(v > 0 for v in new.values()):
        print("%.0f %.0f" % (t_kill, t))
        sys.exit(0)
    time.sleep(0.01)
print("%.0f -1" % t_kill)
PY
)
  read -r t_kill t_proc <<<"$out"
  wait "$vpid" 2>/dev/null || true
  # Gone: forget it, so that the cleanup never signals a reused pid.
  unset "tm_pid[$victim]"
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$vpid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
  t_a=$(wait_log "task manager $victim lost" 30 | log_ms) || t_a=-1
  t_r=$(wait_log "job $id \\([^)]*\\): restart 1 of" 60 | log_ms) || t_r=-1
  line=$(wait_log "job $id \\([^)]*\\) is RUNNING .*resuming from" 60) || line=""
  t_b=$([ -n "$line" ] && log_ms <<<"$line" || echo -1)
  restored=$(wait_log "job $id: resuming from checkpoint" 1 | sed -E 's/.*checkpoint ([0-9]+) .*/\1/') || restored=""
  bytes=$(chk_lines "$id" | awk -v n="$restored" '$1 == n { print $4 }')
  # First checkpoint completed after the recovery.
  local deadline=$(($(date +%s) + 45))
  t_d=-1
  while [ "$(date +%s)" -lt "$deadline" ]; do
    t_d=$(chk_lines "$id" | awk -v r="$restored" -v tb="$t_b" '$1 > r && $5 >= tb { print $5; exit }')
    [ -n "$t_d" ] && break
    t_d=-1
    sleep 0.2
  done
  d() { [ "$1" -ge 0 ] 2>/dev/null && echo $(($1 - t_kill)) || echo -; }
  rec_rows+=("$label $keys ${bytes:-?} ${restored:-?} $(d "$t_a") $(d "$t_r") $(d "$t_b") $(d "$t_proc") $(d "$t_d")")
  cancel_job "$id"
  new_tm # replace the killed task manager: three again, one spare
}
has_phase small && recover small "$small_keys"
has_phase large && recover large "$large_keys"
has_phase spilled && recover spilled "$spilled_keys"
has_phase few_changes && few_changes "$spilled_keys"

# ---- tables ----
echo "Rivulet checkpoints and recovery: 127.0.0.1, coordinator + 3 task managers x 1 slot, jobs at parallelism 2, $(nproc) cores"
if [ ${#rec_rows[@]} -gt 0 ]; then
  echo
  echo "1. Recovery after SIGKILL of the task manager running window subtask 0 (generator paced at $rate records/s;"
  echo "   ms after the kill; the restored checkpoint is the latest complete one)"
  printf '%-6s %9s %14s %9s %7s %8s %8s %11s %9s\n' state keys state_bytes restored lost restart RUNNING processing next_chk
  for r in "${rec_rows[@]}"; do
    read -r l k b n a s u p c <<<"$r"
    printf '%-6s %9s %14s %9s %7s %8s %8s %11s %9s\n' "$l" "$k" "$b" "chk-$n" "$a" "$s" "$u" "$p" "$c"
  done
fi
if [ ${#chk_rows[@]} -gt 0 ]; then
  echo
  echo "2. Two consecutive checkpoints once the state stopped growing (large: $large_keys keys in memory, full"
  echo "   snapshots; spilled: $spilled_keys keys in RocksDB under a 64 MiB budget, incremental, every key updated"
  echo "   between checkpoints; few: the same keys, then only 1000 hot keys updated)"
  printf '%-8s %-10s %12s %17s %17s %14s %14s %8s\n' state checkpoint complete_ms longest_pause_ms longest_write_ms state_bytes written_bytes MB/s
  for r in "${chk_rows[@]}"; do
    read -r l n ms pause w b x <<<"$r"
    awk -v l="$l" -v n="$n" -v ms="$ms" -v p="$pause" -v w="$w" -v b="$b" -v x="$x" \
      'BEGIN { printf "%-8s %-10s %12d %17.1f %17s %14d %14s %8.0f\n", l, "chk-" n, ms, p, w, b, x, (ms > 0 ? (x == "-" ? b : x) / ms / 1000 : 0) }'
  done
  echo "   (MB/s: bytes written / complete_ms; longest_write and written are \"-\" when the coordinator does not log them)"
fi
if [ ${#tput_modes[@]} -gt 0 ]; then
  echo
  echo "3. Throughput, unpaced generator -> keyed tumbling 1 s (10 K keys) -> discard; $tput_reps x $tput_count events"
  echo "   each, interleaved (events/s per core = events / CPU s of coordinator + all task managers)"
  printf '%-14s %12s %8s %8s %14s %12s %13s\n' checkpointing events wall_s cpu_s events/s/core checkpoints max_pause_ms
  declare -A eps
  for mode in off on; do
    label="none"
    [ "$mode" = on ] && label="interval 10s"
    eps[$mode]=$(awk -v e="${t_ev[$mode]}" -v c="${t_cpu[$mode]}" -v t="$ticks" 'BEGIN { printf "%.0f", (c > 0 ? e / (c / t) : 0) }')
    awk -v l="$label" -v e="${t_ev[$mode]}" -v w="${t_wall[$mode]}" -v c="${t_cpu[$mode]}" -v t="$ticks" \
      -v n="${t_chk[$mode]}" -v mp="${t_pause[$mode]}" -v x="${eps[$mode]}" \
      'BEGIN { printf "%-14s %12d %8.2f %8.2f %14d %12d %13.1f\n", l, e, w / 1000, c / t, x, n, mp }'
  done
  awk -v a="${eps[on]}" -v b="${eps[off]}" \
    'BEGIN { printf "ratio with/without checkpoints (events/s/core): %.3f\n", (b > 0 ? a / b : 0) }'
fi
