#!/usr/bin/env python3
"""Keyed state larger than its memory_budget: a window_aggregate job whose
state is about ten times the budget runs with the RocksDB backend, gives
the right result (computed here from the generator's documented formulas)
and the same bytes as the memory backend, and its peak RSS (`rivulet run
--stats`) stays near the budget while the memory backend's grows with the
state."""
import os
import re

from harness import Failure, check, check_eq, main, read_json_lines, rivulet

BASE_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: a day boundary
MIB = 1 << 20
BUDGET_MIB = 16
ROWS_PER_KEY = 10
KEYS = 320_000  # about 500 bytes of state per key: ~160 MiB, ten times the budget
ROWS = KEYS * ROWS_PER_KEY

# Rows i = 0 .. ROWS-1 with event time BASE_TS + i (all in one day-long
# window, which fires at the end of the input, so every key's state is
# kept until then) and key i / 10: each key gets ten consecutive rows, then
# goes cold, and is read back when the window fires.
JOB = """
name: state-budget
sources:
  - id: g
    type: generator
    count: {count}
    schema: {{ts: timestamp, i: int64}}
    fields:
      ts: {{kind: sequence, start: {base}, step: 1}}
      i: {{kind: sequence, start: 0, step: 1}}
    event_time: {{field: ts}}
operators:
  - id: w
    type: window_aggregate
    key_by: [{{kk: i / {per_key}}}]
    window: {{tumbling: 1d}}
    aggregates:
      n: count()
      total: sum(i)
      sq: sum(i * i % 1009)
      lo: min(i * 7919 % 10007)
      hi: max(i * 7919 % 10007)
      f: first(i % 97)
      l: last(i % 97)
      cd: count_distinct(i * i % 11)
sinks:
  - id: out
    type: file
    path: {out}
state:
  backend: rocksdb
  memory_budget: {budget}MiB
"""


def reference(keys):
    """The output rows, in the order the window fires them (keys in order of
    first appearance)."""
    out = []
    day = BASE_TS // 86_400_000 * 86_400_000
    for kk in range(keys):
        ii = range(kk * ROWS_PER_KEY, (kk + 1) * ROWS_PER_KEY)
        lohi = [i * 7919 % 10007 for i in ii]
        out.append({"kk": kk, "window_start": day, "window_end": day + 86_400_000, "n": ROWS_PER_KEY,
                    "total": sum(ii), "sq": sum(i * i % 1009 for i in ii), "lo": min(lohi), "hi": max(lohi),
                    "f": ii[0] % 97, "l": ii[-1] % 97, "cd": len({i * i % 11 for i in ii})})
    return out


def run(wd, name, keys, *extra):
    out = wd.join(name)
    path = wd.file(name + ".yaml", JOB.format(count=keys * ROWS_PER_KEY, base=BASE_TS, per_key=ROWS_PER_KEY, out=out,
                                              budget=BUDGET_MIB))
    res = rivulet("run", "--stats", path, *extra, timeout=120)
    check_eq(res.returncode, 0, f"{name}: exit code ({res.stderr[-3000:]})")
    m = re.search(r"peak_rss_mib=([0-9.]+)", res.stderr)
    check(m is not None, f"{name}: --stats prints peak_rss_mib ({res.stderr[-1000:]})")
    files = sorted(f for f in os.listdir(out) if not f.startswith("."))
    data = b""
    for f in files:
        with open(os.path.join(out, f), "rb") as fh:
            data += fh.read()
    return float(m.group(1)), data, res.stderr


def test_rocksdb_state_ten_times_the_budget_stays_near_the_budget(wd):
    # The process with this pipeline and a state well under the budget.
    base_rss, small, _ = run(wd, "small", 2000)
    check_eq(read_json_lines(small.decode()), reference(2000), "small job output")

    mem_rss, mem_out, mem_err = run(wd, "memory", KEYS, "--set", "state.backend=memory")
    check("state is over memory_budget" in mem_err, "the memory backend warns that it is past its budget")
    # Test design: the state really is about ten times the budget.
    check(mem_rss - base_rss >= 8 * BUDGET_MIB,
          f"test design: the memory backend needs {mem_rss:.1f} MiB (base {base_rss:.1f} MiB) for the state")

    rdb_rss, rdb_out, rdb_err = run(wd, "rocksdb", KEYS)
    check("spilling to RocksDB" in rdb_err, f"the rocksdb run spills ({rdb_err[-2000:]})")
    m = re.search(r"(\d+) evicted, (\d+) RocksDB reads \((\d+) found\)", rdb_err)
    check(m is not None and int(m.group(3)) >= KEYS, f"every key's window read back from RocksDB: {m and m.group(0)}")

    want = reference(KEYS)
    got = read_json_lines(rdb_out.decode())
    if got != want:
        check_eq(len(got), len(want), "output rows")
        i = next(i for i in range(len(want)) if got[i] != want[i])
        raise Failure(f"rocksdb output row {i}: {got[i]}, want {want[i]}")
    check(mem_out == rdb_out, "the memory backend wrote the same bytes")

    # The RocksDB run's memory: the state cache (the budget), RocksDB's own
    # memtables (2 x budget/8) and block cache (budget/8, see
    # taskmanager/state/rv_state_db.c), and a fixed allowance of 32 MiB for
    # what is not sized from the budget: RocksDB's table readers (index and
    # bloom filter blocks of ~100 MiB of SST files), flush and compaction
    # buffers, the malloc arenas of RocksDB's background threads and heap
    # fragmentation left by evicting entries (about 22 MiB measured).
    limit = base_rss + BUDGET_MIB * (1 + 3 / 8) + 32
    print(f"  peak RSS: base {base_rss:.1f} MiB, memory backend {mem_rss:.1f} MiB, rocksdb {rdb_rss:.1f} MiB "
          f"(limit {limit:.1f} MiB)", flush=True)
    check(rdb_rss <= limit, f"rocksdb peak RSS {rdb_rss:.1f} MiB, want <= {limit:.1f} MiB")
    check(rdb_rss < 0.5 * mem_rss, f"rocksdb peak RSS {rdb_rss:.1f} MiB, memory backend {mem_rss:.1f} MiB")


if __name__ == "__main__":
    main([test_rocksdb_state_ten_times_the_budget_stays_near_the_budget])
