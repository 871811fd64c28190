#!/usr/bin/env python3
"""The stateful operators dedup and top_n through `rivulet run`, against
references computed here by brute force from the generator's documented
formulas (genref): dedup with and without `mark`, event-time TTL expiry
(including keys forgotten by the watermark and rows without event time),
processing-time dedup, top_n ranking with ties by arrival, keyed and
unkeyed, behind a parallel window_aggregate; byte-identical output with the
memory and RocksDB state backends and a tiny memory budget; and `rivulet
validate` errors of their configurations."""
import collections
import json
import subprocess
import time

import genref
from harness import RIVULET, check, check_eq, main, read_json_lines, rivulet, run_job

# ---- an independent model of generated input ----


class Gen:
    """A generator source: `fields` is a list of (name, type, spec) in schema
    order (field index = position); rows() recomputes its records with
    genref and yaml() writes the same source for a job file."""

    def __init__(self, seed, count, fields, event_time=None, batch_size=None, parallelism=None, id="src"):
        self.seed, self.count, self.fields = seed, count, fields
        self.event_time, self.batch_size, self.parallelism, self.id = event_time, batch_size, parallelism, id

    def value(self, i, f):
        _, _, spec = self.fields[f]
        p = spec.get("null_probability", 0)
        if p and genref.u(self.seed, i, f, 1) % 1_000_000 < int(p * 1_000_000 + 0.5):
            return None
        kind = spec["kind"]
        if kind == "sequence":
            return spec.get("start", 0) + i * spec.get("step", 1)
        if kind == "uniform_int":
            return genref.uniform_int(self.seed, i, f, spec["min"], spec["max"])
        if kind == "choice":
            return genref.choice(self.seed, i, f, spec["values"], spec.get("weights"))
        if kind == "event_time":
            return genref.event_time(self.seed, i, f, spec["start"], spec["rate"], spec.get("jitter_ms", 0))
        raise AssertionError(kind)

    def rows(self):
        return [{name: self.value(i, f) for f, (name, _, _) in enumerate(self.fields)} for i in range(self.count)]

    def yaml(self):
        schema = ", ".join(f"{name}: {typ}" for name, typ, _ in self.fields)
        specs = []
        for name, _, spec in self.fields:
            s = {("jitter" if k == "jitter_ms" else k): (f"{v}ms" if k == "jitter_ms" else v) for k, v in spec.items()}
            specs.append(f"      {name}: {json.dumps(s)}")
        lines = [f"  - id: {self.id}", "    type: generator", f"    seed: {self.seed}", f"    count: {self.count}",
                 f"    schema: {{{schema}}}"]
        if self.parallelism:
            lines.append(f"    parallelism: {self.parallelism}")
        if self.batch_size:
            lines.append(f"    batch_size: {self.batch_size}")
        if self.event_time:
            field, ooo = self.event_time
            lines.append(f"    event_time: {{field: {field}, max_out_of_orderness: {ooo}ms}}")
        lines.append("    fields:")
        return "\n".join(lines + specs) + "\n"


def job(name, gen, operators, sinks="  - id: out\n    type: stdout\n", head=""):
    return f"name: {name}\n{head}sources:\n{gen.yaml()}operators:\n{operators}sinks:\n{sinks}"


def run_ok(wd, text, *extra, name="job.yaml"):
    res = run_job(wd, text, *extra, name=name)
    check_eq(res.returncode, 0, f"exit code of {name} (stderr: {res.stderr})")
    return res


# ---- reference models ----

BATCH = 4096  # the generator's default batch_size


def dedup_ref(rows, keyf, ttl, ts=None, ooo=0, batch=BATCH):
    """Duplicate flags in arrival order (= record order: one source instance).

    Follows the documented semantics literally, state TTL included: a key's
    first occurrence t0 is remembered with expiry t0 + ttl; the state's clock
    is the watermark, which the source advances after each batch to (largest
    event time so far) - max_out_of_orderness - 1, and a remembered key whose
    expiry <= clock is forgotten. Rows with a null event time compare by key
    only and remember their key without expiry. ts=None: no event time."""
    state = {}  # key -> (t0 or None, expiry or None)
    clock = max_ts = None
    flags = []
    for i, r in enumerate(rows):
        if i and i % batch == 0 and max_ts is not None:
            wm = max_ts - ooo - 1
            clock = wm if clock is None else max(clock, wm)
        k = keyf(r)
        t = r[ts] if ts else None
        has_t = ts is None or t is not None
        e = state.get(k)
        present = e is not None and (e[1] is None or clock is None or e[1] > clock)
        dup = present and (not has_t or ttl == 0 or e[0] is None or t < e[0] + ttl)
        if not dup:
            state[k] = (t if has_t and ts else None, t + ttl if ttl > 0 and ts and has_t else None)
        flags.append(dup)
        if t is not None:
            max_ts = t if max_ts is None else max(max_ts, t)
    return flags


def windows_ref(rows, keys, ts, size, aggs):
    """Tumbling windows: {window_start: {key tuple: aggregate row}}, keys of
    each window in the order of their first row (rows in record order).
    aggs: name -> (init, fold(acc, row), final(acc))."""
    out = collections.defaultdict(dict)
    for r in rows:
        w = r[ts] // size * size
        k = tuple(r[f] for f in keys)
        accs = out[w].setdefault(k, {n: a[0]() for n, a in aggs.items()})
        for n, (_, fold, _) in aggs.items():
            accs[n] = fold(accs[n], r)
    res = {}
    for w in sorted(out):
        res[w] = {}
        for k, accs in out[w].items():
            row = dict(zip(keys, k))
            row["window_start"], row["window_end"] = w, w + size
            for n, (_, _, final) in aggs.items():
                row[n] = final(accs[n])
            res[w][k] = row
    return res


COUNT = {"hits": (lambda: 0, lambda a, r: a + 1, lambda a: a)}


def top_n_ref(rows_in_arrival_order, n, sort_key, rank="rank"):
    """The best n rows by sort_key; ties keep arrival order (stable sort)."""
    best = sorted(rows_in_arrival_order, key=sort_key)[:n]
    return [dict(r, **{rank: i + 1}) for i, r in enumerate(best)]


# ---- dedup ----

CLICKS = [
    ("n", "int64", {"kind": "sequence"}),
    ("user", "int64", {"kind": "uniform_int", "min": 1, "max": 60, "null_probability": 0.05}),
    ("page", "string", {"kind": "choice", "values": ["home", "Cart", "search", "item"]}),
]


def test_dedup_passes_only_first_occurrences_in_input_order(wd):
    gen = Gen(21, 3000, CLICKS)
    rows = gen.rows()
    # Bare fields, with null user ids (a null is a key value like any other).
    flags = dedup_ref(rows, lambda r: (r["user"], r["page"]), 0)
    want = [r for r, d in zip(rows, flags) if not d]
    check(len(want) < len(rows) / 5, "the input repeats most keys")
    check(any(r["user"] is None for r in want), "a null key passes once")
    res = run_ok(wd, job("dedup", gen, "  - id: dd\n    type: dedup\n    key_by: [user, page]\n"), name="bare.yaml")
    check_eq(read_json_lines(res.stdout), want, "first occurrences, in input order")
    # Expression keys (named key0, key1): user % 7 and lower(page).
    flags = dedup_ref(rows, lambda r: (None if r["user"] is None else r["user"] % 7, r["page"].lower()), 0)
    want = [r for r, d in zip(rows, flags) if not d]
    res = run_ok(wd, job("dedup", gen, '  - id: dd\n    type: dedup\n    key_by: ["user % 7", "lower(page)"]\n'),
                 name="expr.yaml")
    check_eq(read_json_lines(res.stdout), want, "first occurrences of expression keys")


# Event times 20 ms apart, up to 400 ms out of order; 40 keys, so a key
# comes back every ~0.8 s: with ttl 1s some repeats are duplicates and others
# are new first occurrences after expiry.
def events(seed, count, jitter_ms, ooo_ms, keys=40, ts_nulls=0.0, batch_size=None, parallelism=None):
    ts = {"kind": "event_time", "start": 1_700_000_000_000, "rate": 50, "jitter_ms": jitter_ms}
    if ts_nulls:
        ts["null_probability"] = ts_nulls
    return Gen(seed, count, [
        ("n", "int64", {"kind": "sequence"}),
        ("ts", "timestamp", ts),
        ("k", "string", {"kind": "choice", "values": [f"k{j:02d}" for j in range(keys)]}),
    ], event_time=("ts", ooo_ms), batch_size=batch_size, parallelism=parallelism)


def expiry_stats(rows, flags):
    """(new rows of keys seen before, duplicates earlier than their key's t0)
    under the reference: the input must exercise both."""
    seen, t0s, renewed, earlier = set(), {}, 0, 0
    for r, d in zip(rows, flags):
        if not d:
            renewed += r["k"] in seen
            seen.add(r["k"])
            if r["ts"] is not None:
                t0s[r["k"]] = r["ts"]
        elif r["ts"] is not None and r["k"] in t0s and r["ts"] < t0s[r["k"]]:
            earlier += 1
    return renewed, earlier


def test_dedup_mark_flags_every_row_with_event_time_ttl(wd):
    # max_out_of_orderness >= jitter: no row is ever behind the watermark,
    # so the result depends only on the rows' times and order.
    gen = events(22, 4000, 400, 400)
    rows = gen.rows()
    flags = dedup_ref(rows, lambda r: r["k"], 1000, ts="ts", ooo=400)
    renewed, earlier = expiry_stats(rows, flags)
    check(renewed > 500, f"keys expire and come back as new ({renewed})")
    check(earlier > 20, f"rows earlier than their key's first occurrence are duplicates ({earlier})")
    check(sum(flags) > 500, "many duplicates")
    res = run_ok(wd, job("mark", gen, "  - id: dd\n    type: dedup\n    key_by: k\n    ttl: 1s\n    mark: is_duplicate\n"),
                 name="mark.yaml")
    check_eq(read_json_lines(res.stdout), [dict(r, is_duplicate=d) for r, d in zip(rows, flags)], "marked rows")
    res = run_ok(wd, job("drop", gen, "  - id: dd\n    type: dedup\n    key_by: k\n    ttl: 1s\n"), name="drop.yaml")
    check_eq(read_json_lines(res.stdout), [r for r, d in zip(rows, flags) if not d], "first occurrences")
    # time: processing ignores event time: with ttl 1h nothing expires in a
    # run of a second, so every repeat is a duplicate.
    res = run_ok(wd, job("proc", gen, "  - id: dd\n    type: dedup\n    key_by: k\n    ttl: 1h\n    time: processing\n"
                             "    mark: dup\n"), name="proc.yaml")
    never = dedup_ref(rows, lambda r: r["k"], 0)
    check_eq([r["dup"] for r in read_json_lines(res.stdout)], never, "processing time, ttl 1h")


def test_dedup_at_parallelism_2_keeps_each_keys_order(wd):
    # One source instance, so the rows of a key reach their dedup instance
    # in record order; the two instances' output interleaves arbitrarily.
    gen = events(23, 6000, 300, 300, keys=97, parallelism=1)
    rows = gen.rows()
    flags = dedup_ref(rows, lambda r: r["k"], 1500, ts="ts", ooo=300)
    renewed, _ = expiry_stats(rows, flags)
    check(renewed > 500, f"keys expire ({renewed})")
    res = run_ok(wd, job("p2", gen, "  - id: dd\n    type: dedup\n    key_by: k\n    ttl: 1500ms\n    mark: is_duplicate\n",
                         head="parallelism: 2\n"))
    got = read_json_lines(res.stdout)
    check_eq(sorted(got, key=lambda r: r["n"]), [dict(r, is_duplicate=d) for r, d in zip(rows, flags)], "marked rows")
    last = {}
    for r in got:
        check(r["n"] > last.get(r["k"], -1), f"rows of key {r['k']} out of order")
        last[r["k"]] = r["n"]


def test_dedup_watermark_forgets_keys_and_null_times_compare_by_key(wd):
    # max_out_of_orderness 0 with up to 3 s of disorder: many rows arrive
    # behind the watermark. Small batches make the watermark advance every
    # 50 rows; a key whose t0 + ttl <= watermark is forgotten, so a late row
    # of it counts as new even when it is within ttl of t0. 3% of the rows
    # have no event time: they compare by key only.
    gen = events(24, 5000, 3000, 0, keys=30, ts_nulls=0.03, batch_size=50)
    rows = gen.rows()
    flags = dedup_ref(rows, lambda r: r["k"], 2000, ts="ts", ooo=0, batch=50)
    # The watermark matters: ignoring it gives a different answer.
    naive = dedup_ref(rows, lambda r: r["k"], 2000, ts="ts", ooo=0, batch=10**9)
    check(sum(a != b for a, b in zip(flags, naive)) > 20, "the input has late rows of forgotten keys")
    check(sum(1 for r in rows if r["ts"] is None) > 50, "rows without event time")
    res = run_ok(wd, job("late", gen, "  - id: dd\n    type: dedup\n    key_by: k\n    ttl: 2s\n    mark: dup\n"))
    got = [r["dup"] for r in read_json_lines(res.stdout)]
    check_eq(len(got), len(rows), "rows")
    diff = [i for i, (a, b) in enumerate(zip(got, flags)) if a != b]
    check(not diff, f"{len(diff)} flags differ, first at row {diff[:1]}: {rows[diff[0]] if diff else None}")


def test_dedup_processing_time_properties(wd):
    # No event time on the source: the default clock is processing time.
    # Paced at 200 rows/s (1.5 s a run) over 4 keys (a key every ~20 ms of wall time).
    gen = Gen(25, 300, [("n", "int64", {"kind": "sequence"}),
                        ("k", "int64", {"kind": "uniform_int", "min": 0, "max": 3})])
    rows = gen.rows()
    src = gen.yaml().replace("    fields:\n", "    rate: 200\n    fields:\n")
    text = "name: proc\nsources:\n" + src + "operators:\n  - id: dd\n    type: dedup\n    key_by: k\n    ttl: {ttl}\n" \
        "    mark: dup\nsinks:\n  - id: out\n    type: stdout\n"
    firsts = dedup_ref(rows, lambda r: r["k"], 0)
    for ttl in ("0", "1h"):  # nothing can expire: exact whatever the timing
        res = run_ok(wd, text.replace("{ttl}", ttl), name=f"ttl{ttl}.yaml")
        check_eq(read_json_lines(res.stdout), [dict(r, dup=d) for r, d in zip(rows, firsts)], f"ttl {ttl}")
    # ttl 1ms: rows of a key that arrive in different batches (about 10 ms
    # apart here) are both new; the first row of each key always is.
    res = run_ok(wd, text.replace("{ttl}", "1ms"), name="ttl1ms.yaml")
    got = read_json_lines(res.stdout)
    check_eq([{"n": r["n"], "k": r["k"]} for r in got], rows, "every row kept, in order")
    seen = set()
    for r in got:
        if r["k"] not in seen:
            check(not r["dup"], f"first row of key {r['k']} marked duplicate")
            seen.add(r["k"])
    new = sum(1 for r in got if not r["dup"])
    check(new > 8, f"keys expire with ttl 1ms (only {new} new rows of 300)")


# ---- top_n ----

DOMAINS = [f"d{j:02d}.com" for j in range(40)]


def requests(seed, count, rate, parallelism=None, region=False):
    fields = [("ts", "timestamp", {"kind": "event_time", "start": 1_700_000_000_000, "rate": rate, "jitter_ms": 500}),
              ("domain", "string", {"kind": "choice", "values": DOMAINS})]
    if region:
        fields.append(("region", "string", {"kind": "choice", "values": ["eu", "us", "ap"]}))
    return Gen(seed, count, fields, event_time=("ts", 500), parallelism=parallelism)


def test_top_n_ranks_each_window_with_ties_by_arrival(wd):
    # Everything at parallelism 1: window_aggregate emits a window's rows in
    # the order their keys first appeared, which is top_n's arrival order.
    # About 12 rows per domain and window: equal hit counts are common.
    gen = requests(31, 3000, 100)
    rows = gen.rows()
    wins = windows_ref(rows, ["domain"], "ts", 5000, COUNT)
    want, ties = [], 0
    for w, groups in wins.items():
        top = top_n_ref(list(groups.values()), 5, lambda r: -r["hits"], rank="pos")
        ranked = sorted(groups.values(), key=lambda r: -r["hits"])
        ties += len(ranked) > 5 and ranked[4]["hits"] == ranked[5]["hits"]
        want.extend(top)
    check(ties >= 2, f"ties across the cut-off decide by arrival in some windows ({ties})")
    ops = ("  - id: w\n    type: window_aggregate\n    key_by: [domain]\n    window: {tumbling: 5s}\n"
           "    aggregates: {hits: count()}\n  - id: top\n    type: top_n\n    n: 5\n    order_by: hits desc\n"
           "    rank_field: pos\n")
    res = run_ok(wd, job("top", gen, ops))
    check_eq(read_json_lines(res.stdout), want, "ranked rows, windows in end order")


def test_top_n_after_parallel_window_aggregate(wd):
    gen = requests(32, 8000, 200, parallelism=2)
    rows = gen.rows()
    wins = windows_ref(rows, ["domain"], "ts", 5000, COUNT)
    ops = ("  - id: w\n    type: window_aggregate\n    key_by: [domain]\n    window: {tumbling: 5s}\n"
           "    aggregates: {hits: count()}\n  - id: top\n    type: top_n\n    n: 4\n    order_by: \"{order}\"\n")
    # The unkeyed top_n runs as one instance; so does the sink, or the
    # ranked rows would be rebalanced over two printers.
    sink = "  - id: out\n    type: stdout\n    parallelism: 1\n"
    # A total order: the exact rows whatever the arrival order.
    want = []
    for groups in wins.values():
        want.extend(top_n_ref(list(groups.values()), 4, lambda r: (-r["hits"], r["domain"])))
    res = run_ok(wd, job("top", gen, ops.replace("{order}", "hits desc, domain asc"), sink, head="parallelism: 2\n"),
                 name="total.yaml")
    check_eq(read_json_lines(res.stdout), want, "top 4 by hits desc, domain asc")
    # hits only: ties go by arrival, which the two window instances decide;
    # the ranks, the hit counts and the rows themselves are still fixed.
    res = run_ok(wd, job("top", gen, ops.replace("{order}", "hits desc"), sink, head="parallelism: 2\n"),
                 name="hits.yaml")
    got = read_json_lines(res.stdout)
    by_end = collections.defaultdict(list)
    for r in got:
        by_end[r["window_end"]].append(r)
    check_eq(list(by_end), sorted(by_end), "windows in end order")
    check_eq(sorted(by_end), [w + 5000 for w in wins], "windows")
    for w, groups in wins.items():
        g = by_end[w + 5000]
        check_eq([r["rank"] for r in g], list(range(1, min(4, len(groups)) + 1)), f"ranks of window {w}")
        check_eq([r["hits"] for r in g], sorted((r["hits"] for r in groups.values()), reverse=True)[:4], f"hits of {w}")
        for r in g:
            check_eq({k: v for k, v in r.items() if k != "rank"}, groups[(r["domain"],)], "a row of the window")


def test_top_n_per_key_at_parallelism_2(wd):
    gen = requests(33, 9000, 300, parallelism=2, region=True)
    rows = gen.rows()
    wins = windows_ref(rows, ["region", "domain"], "ts", 5000, COUNT)
    want = {}
    for w, groups in wins.items():
        per_region = collections.defaultdict(list)
        for (region, _), row in groups.items():
            per_region[region].append(row)
        for region, rs in per_region.items():
            want[(region, w)] = top_n_ref(rs, 3, lambda r: (-r["hits"], r["domain"]), rank="place")
    ops = ("  - id: w\n    type: window_aggregate\n    key_by: [region, domain]\n    window: {tumbling: 5s}\n"
           "    aggregates: {hits: count()}\n  - id: top\n    type: top_n\n    key_by: [region]\n    n: 3\n"
           "    order_by: hits desc, domain\n    rank_field: place\n")
    res = run_ok(wd, job("keyed", gen, ops, head="parallelism: 2\n"))
    got = collections.defaultdict(list)
    ends = collections.defaultdict(list)
    for r in read_json_lines(res.stdout):
        got[(r["region"], r["window_start"])].append(r)
        ends[r["region"]].append(r["window_end"])
    check_eq(sorted(got), sorted(want), "(region, window) groups")
    for k, w in want.items():
        check_eq(got[k], w, f"top 3 of {k}")
    for region, e in ends.items():
        check_eq(e, sorted(e), f"windows of {region} in end order")


def test_top_n_fires_each_window_when_the_watermark_passes_it(wd):
    # Paced: 2,000 rows/s of wall time carrying 1,000 ms of event time per
    # 1,000 rows, so event time runs at twice the wall clock. The window
    # ending at e can fire only once a row with time >= e exists (the
    # watermark is max - 1), i.e. not before e/2 ms after the start; it
    # should fire then, not when the input ends 4 s in.
    gen = Gen(34, 8000, [("ts", "timestamp", {"kind": "event_time", "start": 0, "rate": 1000}),
                         ("domain", "string", {"kind": "choice", "values": ["a", "b", "c", "d"]})], event_time=("ts", 0))
    rows = gen.rows()
    want = []
    for groups in windows_ref(rows, ["domain"], "ts", 1000, COUNT).values():
        want.extend(top_n_ref(list(groups.values()), 2, lambda r: (-r["hits"], r["domain"])))
    path = wd.file("live.yaml", job("live", gen, "  - id: w\n    type: window_aggregate\n    key_by: [domain]\n"
                                    "    window: {tumbling: 1s}\n    aggregates: {hits: count()}\n  - id: top\n"
                                    "    type: top_n\n    n: 2\n    order_by: hits desc, domain\n").replace(
        "    fields:\n", "    rate: 2000\n    fields:\n"))
    t0 = time.monotonic()
    proc = subprocess.Popen([RIVULET, "run", "-q", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got, seen_at = [], {}
    for line in proc.stdout:
        r = json.loads(line)
        got.append(r)
        seen_at.setdefault(r["window_end"], time.monotonic() - t0)
    err = proc.stderr.read()
    check_eq(proc.wait(timeout=30), 0, f"exit code ({err})")
    end = time.monotonic() - t0
    check_eq(got, want, "ranked rows")
    for e, at in seen_at.items():
        check(at >= e / 2000, f"window ending at {e} fired at {at:.2f}s, before its watermark could exist")
        if e <= 6000:
            check(end - at > 1.0, f"window ending at {e} fired at {at:.2f}s, with the input ending at {end:.2f}s")


# ---- state backends ----

BACKEND_OPS = """  - id: dd
    type: dedup
    key_by: [user, cat]
    ttl: 5s
    mark: is_dup
  - id: w
    type: window_aggregate
    key_by: [region, cat]
    window: {tumbling: 5s}
    aggregates:
      hits: count()
      dups: sum(if(is_dup, 1, 0))
      users: count_distinct(user)
  - id: top
    type: top_n
    key_by: [region]
    n: 3
    order_by: hits desc, cat asc
"""
BACKEND_SINKS = """  - id: ranked
    type: file
    path: {out}/ranked
  - id: marked
    type: file
    input: dd
    path: {out}/marked
"""


def test_backends_and_a_tiny_budget_give_identical_output(wd):
    cats = [f"c{j}" for j in range(16)]
    gen = Gen(41, 60000, [
        ("ts", "timestamp", {"kind": "event_time", "start": 1_700_000_000_000, "rate": 2000, "jitter_ms": 1000}),
        ("user", "int64", {"kind": "uniform_int", "min": 1, "max": 20000}),
        ("cat", "string", {"kind": "choice", "values": cats}),
        ("region", "string", {"kind": "choice", "values": ["eu", "us", "ap"]}),
    ], event_time=("ts", 1000))
    rows = gen.rows()
    outputs = {}
    for backend, budget in (("rocksdb", None), ("rocksdb", "64KiB"), ("memory", None), ("memory", "64KiB")):
        tag = f"{backend}-{budget or 'default'}"
        state = f"state: {{backend: {backend}" + (f", memory_budget: {budget}" if budget else "") + "}\n"
        out = wd.join(tag)
        path = wd.file(f"{tag}.yaml", job("backends", gen, BACKEND_OPS, BACKEND_SINKS.format(out=out), head=state))
        res = rivulet("run", path, "--state-dir", wd.join(f"state-{tag}"))
        check_eq(res.returncode, 0, f"exit code with {tag} (stderr: {res.stderr[-2000:]})")
        if budget:  # the state really outgrew the budget
            sign = "spilling to RocksDB" if backend == "rocksdb" else "state is over memory_budget"
            check(sign in res.stderr, f"{tag}: logs {sign!r} ({res.stderr[-2000:]})")
        files = {}
        for sub in ("ranked", "marked"):
            with open(wd.join(tag, sub, "part-0-0.json"), "rb") as f:
                files[sub] = f.read()
        outputs[tag] = files
    first = outputs["rocksdb-default"]
    for tag, files in outputs.items():
        for sub in files:
            check(files[sub] == first[sub], f"{sub} output with {tag} differs from rocksdb-default")
    # ... and it is the right output.
    flags = dedup_ref(rows, lambda r: (r["user"], r["cat"]), 5000, ts="ts", ooo=1000)
    check_eq(read_json_lines(first["marked"].decode()), [dict(r, is_dup=d) for r, d in zip(rows, flags)], "marked")
    marked = [dict(r, is_dup=d) for r, d in zip(rows, flags)]
    aggs = {"hits": (lambda: 0, lambda a, r: a + 1, lambda a: a),
            "dups": (lambda: 0, lambda a, r: a + r["is_dup"], lambda a: a),
            "users": (set, lambda a, r: a.add(r["user"]) or a, len)}
    want = collections.defaultdict(list)
    for w, groups in windows_ref(marked, ["region", "cat"], "ts", 5000, aggs).items():
        for region in ("eu", "us", "ap"):
            rs = [r for (rg, _), r in groups.items() if rg == region]
            if rs:
                want[(region, w)] = top_n_ref(rs, 3, lambda r: (-r["hits"], r["cat"]))
    got = collections.defaultdict(list)
    for r in read_json_lines(first["ranked"].decode()):
        got[(r["region"], r["window_start"])].append(r)
    check_eq(dict(got), dict(want), "ranked")


# ---- configuration errors ----

BASE = """name: t
state: {backend: rocksdb, memory_budget: 64KiB}
sources:
  - id: src
    type: generator
    count: 10
    schema: {ts: timestamp, n: int64, s: string}
    event_time: {field: ts}
    fields:
      ts: {kind: event_time}
      n: {kind: sequence}
      s: {kind: choice, values: [a, b]}
operators:
  - id: w
    type: window_aggregate
    key_by: [s]
    window: {tumbling: 10s}
    aggregates: {hits: count()}
  - id: top
    type: top_n
    n: 3
    order_by: "hits desc, s asc"
  - id: dd
    type: dedup
    input: src
    key_by: [s]
    mark: is_dup
sinks:
  - id: out
    type: stdout
  - id: out2
    type: stdout
    input: dd
"""

# (name, old text, new text, expected "line:column: message"); columns
# counted by hand from the edited lines (1-based; inside a quoted scalar
# the column of the offending character).
BAD = [
    ("order_by_unknown_field", "hits desc, s asc", "hit desc",
     "22:16: operator 'top': order_by: no input field 'hit' (did you mean 'hits'?)"),
    ("order_by_bad_direction", "hits desc, s asc", "hits dsc, s asc",
     "22:21: operator 'top': order_by: expected asc or desc after field 'hits', found 'dsc' (did you mean 'desc'?)"),
    ("order_by_missing_comma", "hits desc, s asc", "hits desc s asc",
     "22:26: operator 'top': order_by: expected ',' or the end after 'hits desc', found 's' "
     "(write e.g. \"hits desc, domain asc\")"),
    ("order_by_field_twice", "hits desc, s asc", "hits desc, hits",
     "22:27: operator 'top': order_by: field 'hits' is named twice"),
    ("top_n_n_zero", "    n: 3\n", "    n: 0\n", "21:8: operator 'top': key 'n' must be between 1 and 10000"),
    ("top_n_rank_field_taken", "    order_by: \"hits desc, s asc\"\n", "    order_by: \"hits desc\"\n    rank_field: hits\n",
     "23:17: operator 'top': the rank field 'hits' is already a field of the input; set rank_field to another name"),
    ("top_n_input_not_windowed", "    n: 3\n", "    n: 3\n    input: src\n",
     "22:12: operator 'top': top_n ranks the rows of each window, so its input needs timestamp fields window_start and "
     "window_end (as produced by window_aggregate), but there is no 'window_start'; the input has: ts:timestamp, "
     "n:int64, s:string"),
    ("dedup_without_key_by", "    input: src\n    key_by: [s]\n", "    input: src\n",
     "23:5: operator 'dd': 'dedup' needs 'key_by' (the fields that partition its state)"),
    ("dedup_mark_taken", "mark: is_dup", "mark: n",
     "27:11: operator 'dd': mark field 'n' is already a field of the input; choose another name"),
    ("dedup_bad_ttl", "mark: is_dup", "mark: is_dup\n    ttl: 10 minutes",
     "28:10: operator 'dd': key 'ttl' expects a duration such as 500ms, 10s, 1m or 1h, got '10 minutes'"),
    ("dedup_bad_time", "mark: is_dup", "mark: is_dup\n    time: wall",
     "28:11: operator 'dd': key 'time' must be one of: event, processing"),
    ("state_bad_backend", "backend: rocksdb", "backend: redis", "2:18: state: key 'backend' must be one of: rocksdb, memory"),
    ("state_budget_too_small", "64KiB", "1KiB", "2:42: state: key 'memory_budget' must be between 64KiB and 1024TiB"),
]


def test_nodes_after_an_unkeyed_top_n_default_to_one_instance(wd):
    path = wd.join("plan.yaml")
    with open(path, "w") as f:
        f.write("""name: single
parallelism: 3
sources:
  - id: src
    type: generator
    count: 10
    schema: {ts: timestamp, d: string}
    event_time: {field: ts}
    fields:
      ts: {kind: event_time, rate: 10}
      d: {kind: choice, values: [a, b]}
operators:
  - id: w
    type: window_aggregate
    key_by: [d]
    window: {tumbling: 1s}
    aggregates: {hits: count()}
  - id: top
    type: top_n
    n: 1
    order_by: hits desc
sinks:
  - id: out
    type: stdout
  - id: wide
    type: stdout
    input: top
    parallelism: 2
""")
    res = rivulet("plan", path)
    check_eq(res.returncode, 0, f"plan exit code ({res.stderr})")
    tasks = [l for l in res.stdout.splitlines() if l.startswith("task ")]
    check(any("[parallelism 3]: w" in l for l in tasks), f"the window keeps the job parallelism: {tasks}")
    check(any("[parallelism 1]: top" in l for l in tasks), f"top_n runs as one instance: {tasks}")
    check(any("[parallelism 1]: out" in l or "[parallelism 1]: top -> out" in l for l in tasks),
          f"the sink after it runs as one instance: {tasks}")
    check(any("[parallelism 2]: wide" in l for l in tasks), f"an explicit parallelism still wins: {tasks}")


def test_bad_configs_give_positioned_errors(wd):
    res = rivulet("validate", wd.file("ok.yaml", BASE))
    check_eq(res.returncode, 0, f"the base job is valid ({res.stderr})")
    for name, old, new, msg in BAD:
        check(old in BASE, name)
        path = wd.file(f"{name}.yaml", BASE.replace(old, new, 1))
        res = rivulet("validate", path)
        check_eq(res.returncode, 2, f"{name}: exit code")
        check_eq(res.stderr.strip(), f"{path}:{msg}", name)
    # time: event needs event time on the input.
    text = BASE.replace("    event_time: {field: ts}\n", "").replace("mark: is_dup", "mark: is_dup\n    time: event")
    text = text.replace("window: {tumbling: 10s}", "window: {tumbling: 10s}\n    time: processing")
    path = wd.file("time_event.yaml", text)
    res = rivulet("validate", path)
    check_eq(res.returncode, 2, "time: event without event time: exit code")
    check_eq(res.stderr.strip(), f"{path}:28:11: operator 'dd': time: event needs an event-time field in the input, "
             "but none reaches this operator (set event_time on the source, or use time: processing)", "time: event")


if __name__ == "__main__":
    main([
        test_dedup_passes_only_first_occurrences_in_input_order,
        test_dedup_mark_flags_every_row_with_event_time_ttl,
        test_dedup_at_parallelism_2_keeps_each_keys_order,
        test_dedup_watermark_forgets_keys_and_null_times_compare_by_key,
        test_dedup_processing_time_properties,
        test_top_n_ranks_each_window_with_ties_by_arrival,
        test_top_n_after_parallel_window_aggregate,
        test_top_n_per_key_at_parallelism_2,
        test_top_n_fires_each_window_when_the_watermark_passes_it,
        test_backends_and_a_tiny_budget_give_identical_output,
        test_nodes_after_an_unkeyed_top_n_default_to_one_instance,
        test_bad_configs_give_positioned_errors,
    ])
