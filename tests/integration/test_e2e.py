#!/usr/bin/env python3
"""End-to-end jobs through `rivulet run`: results compared with references
computed here, in Python, from the same deterministic input."""
import collections
import json
import os
import random

from harness import check, check_eq, main, read_json_lines, read_part_files, run_job, write_jsonl

CRAWLERS = [f"crawler-{i}" for i in range(7)]
BASE_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def crawler_events(seed, n, disorder_ms=3000):
    """n events, 200 per second of event time, up to disorder_ms out of order."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        ts = BASE_TS + i * 5 - rnd.randint(0, disorder_ms)
        rows.append({
            "ts": ts,
            "crawler_id": rnd.choice(CRAWLERS),
            "status": rnd.choices(["ok", "error", "timeout"], [85, 10, 5])[0],
            "requests": rnd.randint(1, 40),
            "latency_ms": rnd.randint(1, 2000),
        })
    return rows


def qps_reference(rows, size_ms=10_000):
    acc = collections.defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        if r["status"] != "ok":
            continue
        start = r["ts"] // size_ms * size_ms
        a = acc[(r["crawler_id"], start)]
        a[0] += 1
        a[1] += r["requests"]
        a[2] = max(a[2], r["latency_ms"])
        a[3] += r["latency_ms"]
    out = {}
    for (cid, start), (n, total, mx, lat) in acc.items():
        out[(cid, start)] = {"crawler_id": cid, "window_start": start, "window_end": start + size_ms, "n": n,
                             "total": total, "qps": total // 10, "qps_exact": total / 10.0, "max_latency": mx, "avg_latency": lat / n}
    return out


QPS_JOB = """
name: crawler-qps
parallelism: {p}
sources:
  - id: events
    type: file
    path: {input}
    format: json
    schema:
      ts: timestamp
      crawler_id: string
      status: string
      requests: int64
      latency_ms: int64
    event_time:
      field: ts
      max_out_of_orderness: 5s
operators:
  - id: ok_only
    type: filter
    where: status == "ok"
  - id: qps
    type: window_aggregate
    key_by: [crawler_id]
    window:
      tumbling: 10s
    aggregates:
      n: count()
      total: sum(requests)
      qps: sum(requests) / 10
      qps_exact: sum(requests) / 10.0
      max_latency: max(latency_ms)
      avg_latency: avg(latency_ms)
sinks:
  - id: out
    type: file
    path: {output}
"""


def compare_windows(got_rows, want):
    got = {}
    for r in got_rows:
        key = (r["crawler_id"], r["window_start"])
        check(key not in got, f"window {key} emitted twice")
        got[key] = r
    check_eq(sorted(got), sorted(want), "window keys")
    for k, w in want.items():
        g = got[k]
        for f in ("window_end", "n", "total", "max_latency", "qps"):
            check_eq(g[f], w[f], f"{k} {f}")
        for f in ("qps_exact", "avg_latency"):
            check(abs(g[f] - w[f]) <= 1e-9 * max(1, abs(w[f])), f"{k} {f}: got {g[f]}, want {w[f]}")


def run_qps(wd, p, input_path):
    out = wd.join(f"out-p{p}")
    res = run_job(wd, QPS_JOB.format(p=p, input=input_path, output=out), name=f"qps-{p}.yaml")
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    return read_part_files(out)


def test_window_counts_match_reference_at_parallelism_1(wd):
    rows = crawler_events(1, 40_000)
    write_jsonl(wd.join("events.json"), rows)
    compare_windows(run_qps(wd, 1, wd.join("events.json")), qps_reference(rows))


def test_window_counts_match_reference_at_parallelism_4(wd):
    rows = crawler_events(2, 60_000)
    os.makedirs(wd.join("in"))
    # Four files so that four source subtasks read in parallel.
    for k in range(4):
        write_jsonl(wd.join("in", f"part-{k}.json"), rows[k::4])
    compare_windows(run_qps(wd, 4, wd.join("in")), qps_reference(rows))


MAP_JOB = """
name: enrich
parallelism: {p}
sources:
  - id: a
    type: file
    path: {a}
    schema: {{id: int64, name: string, score: float64}}
  - id: b
    type: file
    path: {b}
    schema: {{id: int64, name: string, score: float64}}
operators:
  - id: both
    type: union
    inputs: [a, b]
  - id: enrich
    type: map
    select:
      "*": true
      name: upper(name)
      big: score > 50.0
      bucket: id % 3
  - id: keep
    type: filter
    where: bucket != 1 || big
sinks:
  - id: out
    type: file
    path: {out}
"""


def test_union_map_filter_rows_match_reference(wd):
    rnd = random.Random(3)
    a = [{"id": i, "name": rnd.choice(["x", "yy", "zzz"]), "score": round(rnd.uniform(0, 100), 3)} for i in range(0, 3000)]
    b = [{"id": i, "name": rnd.choice(["p", "qq"]), "score": round(rnd.uniform(0, 100), 3)} for i in range(3000, 5000)]
    write_jsonl(wd.join("a.json"), a)
    write_jsonl(wd.join("b.json"), b)
    want = []
    for r in a + b:
        row = {"id": r["id"], "name": r["name"].upper(), "score": r["score"], "big": r["score"] > 50.0, "bucket": r["id"] % 3}
        if row["bucket"] != 1 or row["big"]:
            want.append(row)
    for p in (1, 4):
        out = wd.join(f"out{p}")
        res = run_job(wd, MAP_JOB.format(p=p, a=wd.join("a.json"), b=wd.join("b.json"), out=out), name=f"m{p}.yaml")
        check_eq(res.returncode, 0, f"exit code p={p} (stderr: {res.stderr})")
        got = read_part_files(out)
        check_eq(len(got), len(want), f"row count p={p}")
        check_eq(sorted(got, key=lambda r: r["id"]), want, f"rows p={p}")
        check_eq(list(got[0].keys()), ["id", "name", "score", "big", "bucket"], "field order")


GEN_JOB = """
name: gen
parallelism: {p}
sources:
  - id: g
    type: generator
    seed: 11
    count: {n}
    schema: {{seq: int64, pick: string}}
    fields:
      seq: {{kind: sequence, start: 100, step: 3}}
      pick: {{kind: choice, values: [a, b, c]}}
sinks:
  - id: out
    type: stdout
"""


def test_generator_output_is_independent_of_parallelism(wd):
    n = 20_000
    outs = []
    for p in (1, 3):
        res = run_job(wd, GEN_JOB.format(p=p, n=n), name=f"g{p}.yaml")
        check_eq(res.returncode, 0, f"exit code p={p} (stderr: {res.stderr})")
        rows = read_json_lines(res.stdout)
        check_eq(len(rows), n, f"rows at p={p}")
        check_eq(sorted(r["seq"] for r in rows), [100 + 3 * i for i in range(n)], f"sequence at p={p}")
        outs.append(sorted((r["seq"], r["pick"]) for r in rows))
    check(outs[0] == outs[1], "the same records at parallelism 1 and 3")
    picks = collections.Counter(p for _, p in outs[0])
    check(all(n / 3 * 0.9 < picks[c] < n / 3 * 1.1 for c in "abc"), f"choice roughly uniform: {picks}")


def test_failed_job_exits_non_zero_with_error(wd):
    job = """
name: missing-input
sources:
  - id: src
    type: file
    path: {path}
    schema: {{x: int64}}
sinks:
  - id: out
    type: stdout
""".format(path=wd.join("does-not-exist.json"))
    res = run_job(wd, job)
    check_eq(res.returncode, 1, "exit code")
    check("does-not-exist.json" in res.stderr, f"error names the file: {res.stderr!r}")
    check("job failed" in res.stderr, f"says the job failed: {res.stderr!r}")


if __name__ == "__main__":
    main([
        test_window_counts_match_reference_at_parallelism_1,
        test_window_counts_match_reference_at_parallelism_4,
        test_union_map_filter_rows_match_reference,
        test_generator_output_is_independent_of_parallelism,
        test_failed_job_exits_non_zero_with_error,
    ])
