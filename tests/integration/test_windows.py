#!/usr/bin/env python3
"""window_aggregate through `rivulet run`: tumbling, sliding (a slide that
does not divide the size) and session windows over out-of-order generated
input, every aggregate kind, allowed_lateness updates, the late side output
in both spellings, memory vs RocksDB state (also spilling under a tiny
memory_budget), processing time and parallelism 2.

The input comes from the `generator` source, recomputed here from its
documented formulas (genref.py). Expected results are computed here by
brute force from those rows and the documented rules:
- a source emits a watermark after each polled batch (`batch_size` rows when
  unpaced): max event time seen so far - max_out_of_orderness - 1; at
  parallelism 1 rows and watermarks reach the operator in that order;
- a window [s, e) fires when the watermark advances to >= e - 1 (or at the
  end of the input); a row is late for a window when, at its arrival, the
  watermark >= e - 1 + allowed_lateness; a row late for all its windows goes
  to the late output and is counted, otherwise it is added to its other
  windows; a fired window that gets rows is emitted again, with
  is_update = true, after the input batch the operator received (several
  source batches between two watermarks may reach it as one: see
  simulate_fixed);
- sessions: per key a row at t is [t, t + gap), overlapping sessions merge.
Nothing here is compared with numbers obtained by running the engine."""
import collections
import heapq
import json
import math
import os
import re
import time

import genref
from harness import Failure, check, check_eq, main, read_part_files, rivulet

BASE_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: a multiple of every window size and slide used here


# ---- the generator's rows, recomputed ----

def _null(seed, i, f, p):
    return p > 0 and genref.u(seed, i, f, 1) % 1000000 < int(math.floor(p * 1000000 + 0.5))


def _string(seed, i, f, spec):
    x = genref.u(seed, i, f)
    lo, hi = spec["min_len"], spec["max_len"]
    n = lo + x % (hi - lo + 1)
    a = spec["alphabet"]
    return "".join(a[genref.mix((x + k + 1) & genref.M64) % len(a)] for k in range(n))


def _value(seed, i, f, spec):
    if _null(seed, i, f, spec.get("null_probability", 0)):
        return None
    kind = spec["kind"]
    if kind == "event_time":
        return genref.event_time(seed, i, f, spec["start"], spec["rate"], spec.get("jitter_ms", 0))
    if kind == "choice":
        return genref.choice(seed, i, f, spec["values"])
    if kind == "uniform_int":
        return genref.uniform_int(seed, i, f, spec["min"], spec["max"])
    if kind == "string":
        return _string(seed, i, f, spec)
    if kind == "sequence":
        return spec.get("start", 0) + i * spec.get("step", 1)
    raise AssertionError(kind)


_ROWS = {}


def gen_rows(seed, count, fields):
    """Rows (dicts) number 0..count-1 of a generator with these fields
    [(name, type, spec)]. Cached: several tests share an input."""
    key = (seed, count, json.dumps(fields))
    if key not in _ROWS:
        _ROWS[key] = [{name: _value(seed, i, f, spec) for f, (name, _, spec) in enumerate(fields)}
                      for i in range(count)]
    return _ROWS[key]


def _yaml(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def fields_yaml(fields):
    out = []
    for name, _, spec in fields:
        spec = dict(spec)
        if "jitter_ms" in spec:
            spec["jitter"] = f"{spec.pop('jitter_ms')}ms"
        out.append(f"      {name}: {_yaml(spec)}")
    return "\n".join(out)


def schema_yaml(fields):
    return "{" + ", ".join(f"{name}: {typ}" for name, typ, _ in fields) + "}"


def event_fields(rate, jitter_ms, keys, ts_null=0.003, s_len=2, v_null=0.1):
    """ts (out of order by up to jitter_ms), k (one of keys), v, s."""
    return [
        ("ts", "timestamp", {"kind": "event_time", "start": BASE_TS, "rate": rate, "jitter_ms": jitter_ms,
                             "null_probability": ts_null}),
        ("k", "string", {"kind": "choice", "values": keys}),
        ("v", "int64", {"kind": "uniform_int", "min": -1000, "max": 1000, "null_probability": v_null}),
        ("s", "string", {"kind": "string", "min_len": 1, "max_len": s_len, "alphabet": "abcdefghijklmnopqrst",
                         "null_probability": 0.05}),
    ]


KEYS5 = ["k0", "k1", "k2", "k3", "k4"]

# Every aggregate kind, and expressions over them.
AGGREGATES = [
    ("n", "count()"),
    ("nv", "count(v)"),
    ("sv", "sum(v)"),
    ("mn", "min(v)"),
    ("mx", "max(v)"),
    ("av", "avg(v)"),
    ("spread", "max(v) - min(v)"),
    ("f", "first(v)"),
    ("l", "last(v)"),
    ("fs", "first(s)"),
    ("ls", "last(s)"),
    ("smin", "min(s)"),
    ("cd", "count_distinct(s)"),
    ("cdv", "count_distinct(v)"),
    ("acd", "approx_count_distinct(s)"),
]


def ref_aggs(entries):
    """The aggregates of one window over entries [(t, arrival, row)]: first
    and last take the row with the smallest / largest (time, arrival);
    nulls are skipped. Also the sets of values first/last may take when
    the arrival order is unknown (ties in time)."""
    vs = [(t, a, r["v"]) for t, a, r in entries if r["v"] is not None]
    ss = [(t, a, r["s"]) for t, a, r in entries if r["s"] is not None]
    vals = [x for _, _, x in vs]
    out = {"n": len(entries), "nv": len(vs), "sv": sum(vals) if vals else None,
           "mn": min(vals) if vals else None, "mx": max(vals) if vals else None,
           "av": sum(vals) / len(vals) if vals else None,
           "spread": max(vals) - min(vals) if vals else None,
           "f": min(vs)[2] if vs else None, "l": max(vs)[2] if vs else None,
           "fs": min(ss)[2] if ss else None, "ls": max(ss)[2] if ss else None,
           "smin": min(x for _, _, x in ss) if ss else None,
           "cd": len({x for _, _, x in ss}), "cdv": len(set(vals)), "acd": len({x for _, _, x in ss})}
    ties = {}
    for name, lst, pick in (("f", vs, min), ("l", vs, max), ("fs", ss, min), ("ls", ss, max)):
        if lst:
            tt = pick(lst)[0]
            ties[name] = {x for t, _, x in lst if t == tt}
        else:
            ties[name] = {None}
    out["_ties"] = ties
    return out


def agg_names(aggregates):
    return [name for name, _ in aggregates]


def compare_aggs(got, want, names, what, exact_ties=True):
    for name in names:
        g, w = got[name], want[name]
        if name == "acd":
            # HyperLogLog, 4096 registers: standard error ~1.6 %; allow ~4 sigma.
            check(abs(g - w) <= 0.065 * w + 2, f"{what}: approx_count_distinct {g}, exact {w}")
        elif name == "av":
            check((g is None) == (w is None) and (w is None or abs(g - w) <= 1e-9 * max(1.0, abs(w))),
                  f"{what}: avg {g}, want {w}")
        elif name in ("f", "l", "fs", "ls") and not exact_ties:
            check(g in want["_ties"][name], f"{what}: {name} = {g!r}, want one of {sorted(want['_ties'][name], key=repr)}")
        else:
            check_eq(g, w, f"{what}: {name}")


# ---- references: windows by simulating the watermark ----

def windows_of(t, size, slide):
    """Starts of the windows [s, s + size) holding t; starts are multiples of slide."""
    s = t // slide * slide
    out = []
    while s > t - size:
        out.append(s)
        s -= slide
    return out


class Sim:
    """The outcome of one event-time window job at parallelism 1: emissions
    per window in order [(is_update, aggregates)], late rows in order, the
    number of rows without event time, and counters for test design."""

    def __init__(self):
        self.emissions = collections.defaultdict(list)  # (k, start, end) -> [(is_update, aggs)]
        self.late = []
        self.no_time = 0
        self.merges = 0
        self.partial = 0  # rows late for some but not all of their windows
        # (row, window) pairs exactly at the lateness edge (watermark ==
        # end - 1 + lateness: late) and one ms inside it (not late yet),
        # and windows fired by a watermark of exactly end - 1
        self.edge_late = self.edge_live = self.edge_fire = 0

    def edges(self, last_ms, wm):
        if wm is not None:
            self.edge_late += last_ms == wm
            self.edge_live += last_ms == wm + 1


def batches(rows, batch_size):
    for b0 in range(0, len(rows), batch_size):
        yield b0, rows[b0:b0 + batch_size]


def arrival_watermarks(rows, batch_size, ooo):
    """The watermark each row meets at the operator (None before the first)."""
    out = []
    max_ts = wm = None
    for _, batch in batches(rows, batch_size):
        out += [wm] * len(batch)
        max_ts, new_wm = next_watermark(batch, max_ts, ooo)
        if new_wm is not None and (wm is None or new_wm > wm):
            wm = new_wm
    return out


def next_watermark(batch, max_ts, ooo):
    for r in batch:
        if r["ts"] is not None and (max_ts is None or r["ts"] > max_ts):
            max_ts = r["ts"]
    return max_ts, (None if max_ts is None else max_ts - ooo - 1)


EXCHANGE_ROWS = 4096  # RV_OUTPUT_ROWS: a hash exchange sends its buffer once it holds this many rows


def simulate_fixed(rows, batch_size, ooo, size, slide, lateness, key="k", coalesce=False):
    """Tumbling (slide == size) and sliding windows.

    Update rows are emitted after each batch the operator receives. Without
    coalesce, that is every source batch: the finest the output can be.
    With coalesce, as the hash exchange in front of the operator delivers
    them when buffer_timeout never expires: whole source batches gathered
    until a watermark is sent (which flushes) or EXCHANGE_ROWS rows are
    buffered."""
    sim = Sim()
    wins = {}  # (k, start) -> {"rows": [...], "fired": bool}
    pending = []  # heap of (end, k, start) of windows not fired yet
    wm = None
    max_ts = None
    buffered = 0
    updated = []
    for b0, batch in batches(rows, batch_size):
        for j, r in enumerate(batch):
            t = r["ts"]
            if t is None:
                sim.no_time += 1
                continue
            starts = windows_of(t, size, slide)
            for s in starts:
                sim.edges(s + size - 1 + lateness, wm)
            live = [s for s in starts if wm is None or s + size - 1 + lateness > wm]
            if not live:
                sim.late.append(r)
                continue
            sim.partial += len(live) < len(starts)
            for s in live:
                w = wins.get((r[key], s))
                if w is None:
                    w = wins[(r[key], s)] = {"rows": [], "fired": False}
                    heapq.heappush(pending, (s + size, r[key], s))
                w["rows"].append((t, b0 + j, r))
                if w["fired"] and (r[key], s) not in updated:
                    updated.append((r[key], s))
        max_ts, new_wm = next_watermark(batch, max_ts, ooo)
        advance = new_wm is not None and (wm is None or new_wm > wm)
        buffered += len(batch)
        if not coalesce or advance or buffered >= EXCHANGE_ROWS or b0 + len(batch) >= len(rows):
            for k, s in updated:
                sim.emissions[(k, s, s + size)].append((True, ref_aggs(wins[(k, s)]["rows"])))
            updated = []
            buffered = 0
        if advance:
            wm = new_wm
            while pending and pending[0][0] - 1 <= wm:
                end, k, s = heapq.heappop(pending)
                sim.edge_fire += end - 1 == wm
                wins[(k, s)]["fired"] = True
                sim.emissions[(k, s, end)].append((False, ref_aggs(wins[(k, s)]["rows"])))
    while pending:
        end, k, s = heapq.heappop(pending)
        sim.emissions[(k, s, end)].append((False, ref_aggs(wins[(k, s)]["rows"])))
    return sim


def simulate_sessions(rows, batch_size, ooo, gap, key="k"):
    """Session windows (allowed_lateness 0): a session fires and is gone once
    the watermark reaches its end - 1. A row is late only when it joins no
    open session and its own [t, t + gap) is past the watermark; a row
    inside (or bridging) open sessions joins them."""
    sim = Sim()
    open_ = collections.defaultdict(list)  # k -> [{"start", "end", "rows"}]
    wm = None
    max_ts = None
    for b0, batch in batches(rows, batch_size):
        for j, r in enumerate(batch):
            t = r["ts"]
            if t is None:
                sim.no_time += 1
                continue
            sess = open_[r[key]]
            over = [x for x in sess if x["start"] < t + gap and t < x["end"]]
            sim.edges(t + gap - 1, wm)
            if not over and wm is not None and t + gap - 1 <= wm:
                sim.late.append(r)
                continue
            if len(over) > 1:
                sim.merges += 1
            new = {"start": t, "end": t + gap, "rows": [(t, b0 + j, r)]}
            for x in over:
                sess.remove(x)
                new["start"] = min(new["start"], x["start"])
                new["end"] = max(new["end"], x["end"])
                new["rows"] += x["rows"]
            sess.append(new)
        max_ts, new_wm = next_watermark(batch, max_ts, ooo)
        if new_wm is not None and (wm is None or new_wm > wm):
            wm = new_wm
            for k, sess in open_.items():
                for x in [x for x in sess if x["end"] - 1 <= wm]:
                    sim.edge_fire += x["end"] - 1 == wm
                    sess.remove(x)
                    fire_session(sim, k, x)
    for k, sess in open_.items():
        for x in sess:
            fire_session(sim, k, x)
    return sim


def fire_session(sim, k, x):
    wkey = (k, x["start"], x["end"])
    check(wkey not in sim.emissions, f"reference: session {wkey} twice")
    sim.emissions[wkey].append((False, ref_aggs(x["rows"])))


def offline_sessions(rows, gap, key="k"):
    """Sessions of all rows with an event time, ignoring arrival order: per
    key, sorted times split where consecutive times are >= gap apart."""
    per = collections.defaultdict(list)
    for a, r in enumerate(rows):
        if r["ts"] is not None:
            per[r[key]].append((r["ts"], a, r))
    out = {}
    for k, lst in per.items():
        lst.sort(key=lambda e: (e[0], e[1]))
        cur = [lst[0]]
        for e in lst[1:]:
            if e[0] - cur[-1][0] >= gap:
                out[(k, cur[0][0], cur[-1][0] + gap)] = ref_aggs(cur)
                cur = []
            cur.append(e)
        out[(k, cur[0][0], cur[-1][0] + gap)] = ref_aggs(cur)
    return out


def brute_fixed(rows, size, slide, key="k"):
    """Windows of every row with an event time (nothing late)."""
    acc = collections.defaultdict(list)
    for a, r in enumerate(rows):
        if r["ts"] is not None:
            for s in windows_of(r["ts"], size, slide):
                acc[(r[key], s, s + size)].append((r["ts"], a, r))
    return {w: ref_aggs(e) for w, e in acc.items()}


# ---- running jobs ----

JOB = """
name: {name}
parallelism: {p}
{job_extra}sources:
  - id: g
    type: generator
    seed: {seed}
    count: {count}
    batch_size: {batch}
    schema: {schema}
    fields:
{fields}
    event_time: {{field: ts, max_out_of_orderness: {ooo}ms}}
operators:
  - id: w
    type: window_aggregate
    key_by: [{key}]
    window: {window}
{extra}    aggregates:
{aggregates}
sinks:
  - id: out
    type: file
    path: {out}
    input: w
{late_sink}state:
  backend: rocksdb
  memory_budget: 256MiB
"""


def window_yaml(kind, size=None, slide=None, gap=None):
    if kind == "tumbling":
        return f"{{tumbling: {size}ms}}"
    if kind == "sliding":
        return f"{{sliding: {{size: {size}ms, slide: {slide}ms}}}}"
    return f"{{session: {{gap: {gap}ms}}}}"


def job_yaml(wd, name, fields, seed, count, batch, ooo, window, lateness=0, late=None, p=1, key="k",
             aggregates=AGGREGATES, buffer_timeout=None):
    """buffer_timeout: 1m makes the operator's input batches (and so the
    update rows) independent of timing: see simulate_fixed(coalesce=True)."""
    extra = f"    allowed_lateness: {lateness}ms\n" if lateness else ""
    late_sink = ""
    if late == "late_output":
        extra += "    late_output: late\n"
        late_sink = f"  - id: late\n    type: file\n    path: {wd.join(name + '-late')}\n"
    elif late == "input":
        late_sink = f"  - id: late\n    type: file\n    path: {wd.join(name + '-late')}\n    input: w.late\n"
    job_extra = f"buffer_timeout: {buffer_timeout}\n" if buffer_timeout else ""
    return JOB.format(name=name, p=p, job_extra=job_extra, seed=seed, count=count, batch=batch, schema=schema_yaml(fields),
                      fields=fields_yaml(fields), ooo=ooo, key=key, window=window, extra=extra,
                      aggregates="\n".join(f"      {n}: {e}" for n, e in aggregates), out=wd.join(name + "-out"),
                      late_sink=late_sink)


class Result:
    def __init__(self, wd, name, res):
        self.res = res
        self.stderr = res.stderr
        out = wd.join(name + "-out")
        self.rows = read_part_files(out) if os.path.isdir(out) else []
        late = wd.join(name + "-late")
        self.late = read_part_files(late) if os.path.isdir(late) else None
        counts = re.findall(r"(\d+) late rows \(past allowed_lateness\) and (\d+) rows without a usable event time",
                            res.stderr)
        self.logged_late = sum(int(a) for a, _ in counts)
        self.logged_no_time = sum(int(b) for _, b in counts)


def run(wd, name, yaml_text, *extra, timeout=120):
    """Runs the job with INFO logs (for the late-row counts)."""
    path = wd.file(name + ".yaml", yaml_text)
    res = rivulet("run", path, *extra, timeout=timeout)
    check_eq(res.returncode, 0, f"{name}: exit code (stderr: {res.stderr[-3000:]})")
    return Result(wd, name, res)


def group_emissions(rows, names, lateness, key="k"):
    """Output rows grouped per window, in output order; checks the columns."""
    want_cols = [key, "window_start", "window_end"] + names + (["is_update"] if lateness else [])
    got = collections.defaultdict(list)
    for r in rows:
        if list(r) != want_cols:
            raise Failure(f"output columns {list(r)}, want {want_cols}")
        got[(r[key], r["window_start"], r["window_end"])].append(r)
    return got


def check_emissions(rows, sim, names, lateness, what, key="k", exact=True):
    """Every window's emissions, in order, equal the simulated ones; or,
    when not exact, are a subsequence of them with the same first and last
    (the operator may receive several source batches at once, and emits
    one update per batch it receives)."""
    got = group_emissions(rows, names, lateness, key)
    missing = sorted(set(sim.emissions) - set(got))
    extra = sorted(set(got) - set(sim.emissions))
    check(not missing and not extra, f"{what}: missing windows {missing[:3]}, unexpected windows {extra[:3]} "
                                     f"({len(got)} windows, want {len(sim.emissions)})")
    for w, want in sim.emissions.items():
        g = got[w]
        if not exact:
            want = subsequence(g, want, names, f"{what}: window {w}")
        check_eq(len(g), len(want), f"{what}: emissions of window {w} (counts {[x['n'] for x in g]}, "
                                    f"want {[a['n'] for _, a in want]})")
        for m, (row, (upd, aggs)) in enumerate(zip(g, want)):
            if lateness:
                check_eq(row["is_update"], upd, f"{what}: is_update of emission {m} of window {w}")
            compare_aggs(row, aggs, names, f"{what}: window {w} emission {m}")


def subsequence(got, want, names, what):
    """The emissions of want that got's rows match (greedily, in order),
    keeping want's first and last; fails when a row matches none."""
    out = []
    j = 0
    for m, row in enumerate(got):
        while j < len(want):
            try:
                compare_aggs(row, want[j][1], names, what)
                break
            except Failure:
                j += 1
        check(j < len(want), f"{what}: emission {m} {row} is none of the expected states in order")
        out.append(want[j])
        j += 1
    check(len(got) >= 1 and out[0] is want[0] and out[-1] is want[-1],
          f"{what}: first and last emissions {[x['n'] for x in got]}, want {[a['n'] for _, a in want]} "
          f"(a subsequence from first to last)")
    return out


def check_final(rows, want, names, what, exact_ties=True, key="k"):
    """One row per window (no lateness), order-independent."""
    got = {}
    for r in rows:
        w = (r[key], r["window_start"], r["window_end"])
        check(w not in got, f"{what}: window {w} emitted twice")
        got[w] = r
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    check(not missing and not extra, f"{what}: missing windows {missing[:3]}, unexpected {extra[:3]}")
    for w, aggs in want.items():
        compare_aggs(got[w], aggs, names, f"{what}: window {w}", exact_ties)


def check_design_aggs(sim):
    """The input exercises the aggregates: nulls, duplicate values, ties."""
    finals = [e[-1][1] for e in sim.emissions.values()]
    check(any(a["nv"] < a["n"] for a in finals), "test design: some windows have null v")
    check(any(a["cd"] < a["n"] - a["n"] // 10 for a in finals), "test design: repeated s values")
    check(any(len(a["_ties"]["f"]) > 1 or len(a["_ties"]["l"]) > 1 for a in finals),
          "test design: first/last ties in event time")


# ---- 1. out-of-order input, every aggregate ----

def test_tumbling_out_of_order_every_aggregate(wd):
    # 1 row per ms of event time, up to 1.5 s early; watermark 300 ms behind
    # after every 100-row batch: rows early by more than ~300 ms + their
    # offset in a 2 s window are late.
    fields = event_fields(1000, 1500, KEYS5)
    rows = gen_rows(11, 30000, fields)
    sim = simulate_fixed(rows, 100, 300, 2000, 2000, 0)
    late, no_time = len(sim.late), sim.no_time
    check(0.05 * len(rows) < late < 0.4 * len(rows), f"test design: late rows {late}")
    check(no_time > 30, f"test design: rows without event time {no_time}")
    check_design_aggs(sim)
    r = run(wd, "tumbling", job_yaml(wd, "tumbling", fields, 11, 30000, 100, 300, window_yaml("tumbling", 2000)))
    check_emissions(r.rows, sim, agg_names(AGGREGATES), 0, "tumbling 2s")
    check_eq((r.logged_late, r.logged_no_time), (late, no_time), "logged late rows and rows without event time")
    # Windows fire in end order when nothing is allowed late.
    ends = [x["window_end"] for x in r.rows]
    check(ends == sorted(ends), "windows fire in end order")


def test_sliding_size_10s_slide_3s_every_aggregate(wd):
    fields = event_fields(1000, 1500, KEYS5[:3], s_len=3)
    rows = gen_rows(12, 30000, fields)
    sim = simulate_fixed(rows, 100, 300, 10000, 3000, 0)
    # A row is late for its earlier windows only: its last window ends 7-10 s
    # after it, more than the 1.5 s it may be early.
    check_eq(len(sim.late), 0, "test design: no row late for all its windows")
    check(sim.partial > 1000, f"test design: rows late for some of their windows ({sim.partial})")
    check({len(windows_of(r["ts"], 10000, 3000)) for r in rows if r["ts"] is not None} == {3, 4},
          "test design: rows are in 3 or 4 windows")
    check(max(a[-1][1]["cd"] for a in sim.emissions.values()) > 1000, "test design: many distinct values")
    check_design_aggs(sim)
    r = run(wd, "sliding", job_yaml(wd, "sliding", fields, 12, 30000, 100, 300, window_yaml("sliding", 10000, 3000)))
    check_emissions(r.rows, sim, agg_names(AGGREGATES), 0, "sliding 10s/3s")
    check_eq((r.logged_late, r.logged_no_time), (len(sim.late), sim.no_time), "logged counts")
    for x in r.rows:
        check(x["window_start"] % 3000 == 0 and x["window_end"] - x["window_start"] == 10000, f"window bounds {x}")
    # approx_count_distinct over all windows: unbiased within ~1 %.
    finals = {w: e[-1][1] for w, e in sim.emissions.items()}
    got = sum(x["acd"] for x in r.rows)
    want = sum(a["cd"] for a in finals.values())
    check(abs(got - want) <= 0.01 * want, f"approx_count_distinct summed over windows: {got}, exact {want}")


# ---- 2. session windows ----

SESSION_KEYS = [f"user{i:02d}" for i in range(20)]


def session_fields():
    # 100 rows/s over 20 keys: a key's rows are ~200 ms apart on average,
    # and up to 1 s out of order, so rows often arrive between two sessions.
    return event_fields(100, 1000, SESSION_KEYS, ts_null=0.002)


def test_session_windows_out_of_order_rows_merge_sessions(wd):
    fields = session_fields()
    rows = gen_rows(21, 8000, fields)
    # max_out_of_orderness covers the jitter: no row is late and no row can
    # reach a session that fired, so the result is the offline sessions.
    sim = simulate_sessions(rows, 10, 1000, 300)
    check_eq(len(sim.late), 0, "test design: nothing late")
    check(sim.merges > 50, f"test design: rows bridging two sessions in arrival order ({sim.merges})")
    want = offline_sessions(rows, 300)
    check_eq(sorted(sim.emissions), sorted(want), "test design: simulated sessions are the offline sessions")
    check(any(a["n"] > 5 for a in want.values()), "test design: long sessions")
    r = run(wd, "session", job_yaml(wd, "session", fields, 21, 8000, 10, 1000, window_yaml("session", gap=300)))
    check_final(r.rows, want, agg_names(AGGREGATES), "sessions gap 300ms")
    check_eq((r.logged_late, r.logged_no_time), (0, sim.no_time), "logged counts")


def test_session_windows_with_late_rows_and_merges(wd):
    fields = session_fields()
    rows = gen_rows(21, 8000, fields)
    sim = simulate_sessions(rows, 10, 200, 300)
    check(len(sim.late) > 100, f"test design: late rows ({len(sim.late)})")
    check(sim.merges > 20, f"test design: merges ({sim.merges})")
    r = run(wd, "session-late", job_yaml(wd, "session-late", fields, 21, 8000, 10, 200, window_yaml("session", gap=300),
                                         late="late_output"))
    check_emissions(r.rows, sim, agg_names(AGGREGATES), 0, "sessions with late rows")
    check_eq(r.late, sim.late, "late rows")
    check_eq((r.logged_late, r.logged_no_time), (len(sim.late), sim.no_time), "logged counts")


# ---- 3. allowed_lateness ----

def lateness_case(wd, name, window, size, slide, lateness, late_form):
    # Up to 3 s early, watermark 200 ms behind, 50-row batches: rows land in
    # windows that fired (updates) and past the lateness too (late). The
    # watermark often stays put for a batch (50 ms of event time), so the
    # exchange may hand the operator several source batches at once: with
    # buffer_timeout 1m when that happens does not depend on timing.
    fields = event_fields(1000, 3000, KEYS5[:4])
    rows = gen_rows(31, 20000, fields)
    sim = simulate_fixed(rows, 50, 200, size, slide, lateness, coalesce=True)
    updates = sum(1 for e in sim.emissions.values() for upd, _ in e if upd)
    check(updates > 20, f"test design: updates ({updates})")
    check(len(sim.late) > 100, f"test design: rows past the lateness ({len(sim.late)})")
    r = run(wd, name, job_yaml(wd, name, fields, 31, 20000, 50, 200, window, lateness=lateness, late=late_form,
                               buffer_timeout="1m"))
    names = agg_names(AGGREGATES)
    check_emissions(r.rows, sim, names, lateness, name)
    # The contract on its own, by brute force from each row's arrival
    # watermark: the last row of every window aggregates the rows that were
    # not past its lateness when they arrived; the first row of a window is
    # not an update, the later ones are; rows counted nowhere are late.
    acc = collections.defaultdict(list)
    late = []
    for a, (x, wm) in enumerate(zip(rows, arrival_watermarks(rows, 50, 200))):
        if x["ts"] is None:
            continue
        mine = [s for s in windows_of(x["ts"], size, slide) if wm is None or s + size - 1 + lateness > wm]
        for s in mine:
            acc[(x["k"], s, s + size)].append((x["ts"], a, x))
        if not mine:
            late.append(x)
    got = group_emissions(r.rows, names, lateness)
    check_eq(sorted(got), sorted(acc), f"{name}: windows")
    for w, e in got.items():
        check_eq([x["is_update"] for x in e], [False] + [True] * (len(e) - 1), f"{name}: is_update flags of {w}")
        compare_aggs(e[-1], ref_aggs(acc[w]), names, f"{name}: last row of {w}")
    check(sum(len(e) > 1 for e in got.values()) > 10, f"{name}: windows were updated")
    check_eq(late, sim.late, f"{name}: reference late rows")
    check_eq(r.logged_late, len(sim.late), f"{name}: logged late rows")
    return r, sim


def test_allowed_lateness_tumbling_updates_and_final_values(wd):
    r, sim = lateness_case(wd, "lateness-tumbling", window_yaml("tumbling", 2000), 2000, 2000, 1000, None)
    check(r.late is None, "no late sink")
    # With the default buffer_timeout the operator's batches depend on
    # timing: the updates are some of those of the finest batching, from
    # the same first row to the same last row.
    fields = event_fields(1000, 3000, KEYS5[:4])
    rows = gen_rows(31, 20000, fields)
    finest = simulate_fixed(rows, 50, 200, 2000, 2000, 1000)
    r = run(wd, "lateness-default", job_yaml(wd, "lateness-default", fields, 31, 20000, 50, 200,
                                             window_yaml("tumbling", 2000), lateness=1000))
    check_emissions(r.rows, finest, agg_names(AGGREGATES), 1000, "default buffer_timeout", exact=False)
    check_eq(r.logged_late, len(finest.late), "logged late rows")


def test_allowed_lateness_sliding_updates(wd):
    lateness_case(wd, "lateness-sliding", window_yaml("sliding", 3000, 2000), 3000, 2000, 500, None)


# ---- 4. late side output ----

def test_late_output_key_receives_exactly_the_late_rows(wd):
    r, sim = lateness_case(wd, "late-output", window_yaml("tumbling", 2000), 2000, 2000, 1000, "late_output")
    check_eq(r.late, sim.late, "rows of the late_output sink (in arrival order)")
    check_eq(r.logged_late, len(r.late), "logged late count")


def test_input_dot_late_receives_exactly_the_late_rows(wd):
    fields = event_fields(1000, 4000, KEYS5[:3], s_len=3)
    rows = gen_rows(13, 30000, fields)
    sim = simulate_fixed(rows, 100, 300, 4000, 3000, 0)
    r = run(wd, "dot-late", job_yaml(wd, "dot-late", fields, 13, 30000, 100, 300, window_yaml("sliding", 4000, 3000),
                                     late="input"))
    check(len(sim.late) > 1000 and sim.partial > 1000, "test design: late and partly late rows")
    check_eq(r.late, sim.late, "rows of the sink reading w.late (in arrival order)")
    check_eq((r.logged_late, r.logged_no_time), (len(sim.late), sim.no_time), "logged counts")
    check_emissions(r.rows, sim, agg_names(AGGREGATES), 0, "windows beside the late output")


def test_millisecond_windows_hit_every_watermark_edge(wd):
    # Windows of a few ms over rows 1 ms apart, up to 25 ms early, in
    # batches of 3: rows keep arriving exactly at the edge of lateness and
    # one ms inside it, and windows fire at a watermark of exactly end - 1.
    fields = event_fields(1000, 25, KEYS5[:2], ts_null=0.01)
    rows = gen_rows(71, 6000, fields)
    names = agg_names(AGGREGATES)
    for name, window, size, slide, lateness in (("edge-tumbling", window_yaml("tumbling", 10), 10, 10, 4),
                                                ("edge-sliding", window_yaml("sliding", 10, 4), 10, 4, 3),
                                                ("edge-sliding0", window_yaml("sliding", 7, 3), 7, 3, 0)):
        sim = simulate_fixed(rows, 3, 2, size, slide, lateness, coalesce=True)
        check(min(sim.edge_late, sim.edge_live, sim.edge_fire) > 50,
              f"test design: {name}: edges {sim.edge_late}, {sim.edge_live}, {sim.edge_fire}; late {len(sim.late)}")
        r = run(wd, name, job_yaml(wd, name, fields, 71, 6000, 3, 2, window, lateness=lateness, late="input",
                                   buffer_timeout="1m"))
        check_emissions(r.rows, sim, names, lateness, name)
        check_eq(r.late, sim.late, f"{name}: late rows")
        check_eq((r.logged_late, r.logged_no_time), (len(sim.late), sim.no_time), f"{name}: logged counts")
    sim = simulate_sessions(rows, 3, 2, 6)
    check(min(sim.edge_late, sim.edge_live, sim.edge_fire, sim.merges) > 50,
          f"test design: sessions: edges {sim.edge_late}, {sim.edge_live}, {sim.edge_fire}, merges {sim.merges}")
    r = run(wd, "edge-session", job_yaml(wd, "edge-session", fields, 71, 6000, 3, 2, window_yaml("session", gap=6),
                                         late="input"))
    check_emissions(r.rows, sim, names, 0, "edge-session")
    check_eq(r.late, sim.late, "edge-session: late rows")


# ---- 5. memory vs RocksDB ----

def many_key_fields(jitter_ms):
    # 2000 integer keys, 5000 rows/s of event time.
    return [
        ("ts", "timestamp", {"kind": "event_time", "start": BASE_TS, "rate": 5000, "jitter_ms": jitter_ms,
                             "null_probability": 0.002}),
        ("k", "int64", {"kind": "uniform_int", "min": 0, "max": 1999}),
        ("v", "int64", {"kind": "uniform_int", "min": -1000, "max": 1000, "null_probability": 0.1}),
        ("s", "string", {"kind": "string", "min_len": 1, "max_len": 2, "alphabet": "abcdefghijklmnopqrst",
                         "null_probability": 0.05}),
    ]


def output_bytes(wd, name):
    out = {}
    for sub in ("-out", "-late"):
        d = wd.join(name + sub)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, f), "rb") as fh:
                out[sub + "/" + f] = fh.read()
    return out


def backends_case(wd, name, fields, ooo, window, sim, lateness):
    # buffer_timeout 1m: the operator's input batches, and so its update
    # rows, do not depend on timing (which differs between the backends).
    text = job_yaml(wd, "%NAME%", fields, 41, 40000, 200, ooo, window, lateness=lateness, late="late_output",
                    buffer_timeout="1m")
    runs = {}
    for label, sets in (("memory", ["--set", "state.backend=memory"]),
                        ("rocksdb", []),
                        ("rocksdb-64k", ["--set", "state.memory_budget=64KiB"]),
                        ("memory-64k", ["--set", "state.backend=memory", "--set", "state.memory_budget=64KiB"])):
        n = f"{name}-{label}"
        runs[label] = run(wd, n, text.replace("%NAME%", n), *sets)
    spill = runs["rocksdb-64k"].stderr
    check("spilling to RocksDB" in spill, f"the 64KiB run spills ({spill[-1500:]})")
    m = re.search(r"(\d+) evicted, (\d+) RocksDB reads \((\d+) found\)", spill)
    check(m and int(m.group(1)) > 1000 and int(m.group(3)) > 1000, f"entries evicted and read back: {m and m.group(0)}")
    for label in ("memory", "rocksdb", "memory-64k"):
        check("spilling to RocksDB" not in runs[label].stderr, f"{label}: no spilling")
    check("over memory_budget" in runs["memory-64k"].stderr, "the memory backend warns past its budget")
    base = output_bytes(wd, f"{name}-memory")
    check(len(base) == 2 and all(base.values()), f"outputs written: {sorted(base)}")
    for label in ("rocksdb", "rocksdb-64k", "memory-64k"):
        other = output_bytes(wd, f"{name}-{label}")
        check_eq(sorted(other), sorted(base), f"{label}: output files")
        for f in base:
            if other[f] != base[f]:
                a, b = base[f].splitlines(), other[f].splitlines()
                i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
                raise Failure(f"{label}: {f} differs from the memory backend's at line {i + 1} "
                              f"({len(b)} vs {len(a)} lines): {b[i:i + 1]} vs {a[i:i + 1]}")
    # And the (shared) output is right.
    r = runs["memory"]
    check_emissions(r.rows, sim, agg_names(AGGREGATES), lateness, f"{name} (memory backend)")
    check_eq(r.late, sim.late, f"{name}: late rows")


def test_memory_and_rocksdb_backends_identical_tumbling(wd):
    fields = many_key_fields(1000)
    rows = gen_rows(41, 40000, fields)
    sim = simulate_fixed(rows, 200, 100, 1000, 1000, 300, coalesce=True)
    check(len(sim.late) > 1000 and sum(upd for e in sim.emissions.values() for upd, _ in e) > 1000,
          "test design: late rows and updates")
    backends_case(wd, "bk-tumbling", fields, 100, window_yaml("tumbling", 1000), sim, 300)


def test_memory_and_rocksdb_backends_identical_sessions(wd):
    fields = many_key_fields(1500)
    rows = gen_rows(41, 40000, fields)
    sim = simulate_sessions(rows, 200, 300, 1000)
    check(len(sim.late) > 1000 and sim.merges > 100, f"test design: late rows ({len(sim.late)}), merges ({sim.merges})")
    backends_case(wd, "bk-session", fields, 300, window_yaml("session", gap=1000), sim, 0)


# ---- 6. processing time ----

PROCESSING_JOB = """
name: processing
sources:
  - id: g
    type: generator
    rate: 4000
    count: 6000
    seed: 51
    schema: {schema}
    fields:
{fields}
operators:
  - id: tumbling
    type: window_aggregate
    input: g
    key_by: [k]
    time: processing
    window: {{tumbling: 250ms}}
    aggregates:
      n: count()
      sv: sum(v)
      cd: count_distinct(v)
  - id: sliding
    type: window_aggregate
    input: g
    key_by: [k]
    time: processing
    window: {{sliding: {{size: 500ms, slide: 250ms}}}}
    aggregates:
      n: count()
      sv: sum(v)
sinks:
  - id: out_t
    type: file
    path: {out_t}
    input: tumbling
  - id: out_s
    type: file
    path: {out_s}
    input: sliding
"""


def test_processing_time_windows_count_every_row_once(wd):
    fields = [("k", "string", {"kind": "choice", "values": KEYS5[:3]}),
              ("v", "int64", {"kind": "uniform_int", "min": 0, "max": 999})]
    rows = gen_rows(51, 6000, fields)
    n_by_key = collections.Counter(r["k"] for r in rows)
    sum_by_key = collections.Counter()
    for r in rows:
        sum_by_key[r["k"]] += r["v"]
    path = wd.file("processing.yaml", PROCESSING_JOB.format(schema=schema_yaml(fields), fields=fields_yaml(fields),
                                                           out_t=wd.join("pt"), out_s=wd.join("ps")))
    t0 = time.time()
    res = rivulet("run", "-q", path, timeout=60)
    t1 = time.time()
    check_eq(res.returncode, 0, f"exit code ({res.stderr[-2000:]})")
    lo, hi = int(t0 * 1000), int(t1 * 1000)
    for d, size, slide, per_row in (("pt", 250, 250, 1), ("ps", 500, 250, 2)):
        got = read_part_files(wd.join(d))
        seen = set()
        n = collections.Counter()
        sv = collections.Counter()
        for r in got:
            w = (r["k"], r["window_start"])
            check(w not in seen, f"{d}: window {w} emitted twice")
            seen.add(w)
            check_eq(r["window_start"] % slide, 0, f"{d}: window start aligned to {slide} ms: {r}")
            check_eq(r["window_end"] - r["window_start"], size, f"{d}: window length: {r}")
            check(lo // slide * slide - size < r["window_start"] and r["window_end"] <= hi + size,
                  f"{d}: window {r} within the run's wall clock [{lo}, {hi}]")
            n[r["k"]] += r["n"]
            sv[r["k"]] += r["sv"]
        check_eq(dict(n), {k: per_row * c for k, c in n_by_key.items()}, f"{d}: rows counted per key")
        check_eq(dict(sv), {k: per_row * c for k, c in sum_by_key.items()}, f"{d}: sum(v) per key")
        if d == "pt":
            check(all(r["cd"] <= r["n"] for r in got), "count_distinct <= count")
            # 6000 rows at 4000/s take 1.5 s: at least 6 windows of 250 ms per key.
            check(len(got) >= 3 * 5, f"rows spread over the paced run: {len(got)} windows")
    check(t1 - t0 >= 1.4, f"pacing: the run took {t1 - t0:.2f}s")


# ---- 7. parallelism 2 ----

P2_JOB_OPS = """
  - id: ws
    type: window_aggregate
    input: g
    key_by: [k]
    window: {{session: {{gap: 300ms}}}}
    aggregates:
{aggregates}
"""


def test_parallelism_2_matches_reference(wd):
    # Two generator instances (records 0, 2, 4, ... and 1, 3, 5, ...) each
    # at most 1 s out of order, watermark 1 s behind: nothing is late,
    # whatever the interleaving at the keyed operators.
    fields = event_fields(1000, 1000, SESSION_KEYS[:8], s_len=2)
    rows = gen_rows(61, 30000, fields)
    text = job_yaml(wd, "p2", fields, 61, 30000, 64, 1000, window_yaml("sliding", 10000, 3000), p=2, late="input")
    aggs = "\n".join(f"      {n}: {e}" for n, e in AGGREGATES)
    text = text.replace("\nsinks:\n", "\n" + P2_JOB_OPS.format(aggregates=aggs).strip("\n") + "\nsinks:\n", 1)
    text = text.replace("state:\n", f"  - id: sess_out\n    type: file\n    path: {wd.join('p2-sess')}\n    input: ws\n"
                        "state:\n", 1)
    r = run(wd, "p2", text)
    names = agg_names(AGGREGATES)
    check_final(r.rows, brute_fixed(rows, 10000, 3000), names, "sliding at parallelism 2", exact_ties=False)
    sessions = offline_sessions(rows, 300)
    check(any(a["n"] > 3 for a in sessions.values()), "test design: sessions of several rows")
    check_final(read_part_files(wd.join("p2-sess")), sessions, names, "sessions at parallelism 2", exact_ties=False)
    check_eq(r.late, [], "no late rows")
    nulls = sum(1 for x in rows if x["ts"] is None)
    check_eq((r.logged_late, r.logged_no_time), (0, 2 * nulls), "logged counts (two window operators)")
    check(len(os.listdir(wd.join("p2-out"))) == 2, "two sink instances wrote")


if __name__ == "__main__":
    main([
        test_tumbling_out_of_order_every_aggregate,
        test_sliding_size_10s_slide_3s_every_aggregate,
        test_session_windows_out_of_order_rows_merge_sessions,
        test_session_windows_with_late_rows_and_merges,
        test_allowed_lateness_tumbling_updates_and_final_values,
        test_allowed_lateness_sliding_updates,
        test_late_output_key_receives_exactly_the_late_rows,
        test_input_dot_late_receives_exactly_the_late_rows,
        test_millisecond_windows_hit_every_watermark_edge,
        test_memory_and_rocksdb_backends_identical_tumbling,
        test_memory_and_rocksdb_backends_identical_sessions,
        test_processing_time_windows_count_every_row_once,
        test_parallelism_2_matches_reference,
    ])
