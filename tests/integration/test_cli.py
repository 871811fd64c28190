#!/usr/bin/env python3
"""The `rivulet` command: quick start results against an independent
model of the generator, plan output, docs in sync, Ctrl-C, usage errors."""
import collections
import datetime
import json
import os
import signal
import subprocess
import time

import genref
from harness import RIVULET, check, check_eq, main, read_json_lines, read_part_files, rivulet

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
QUICKSTART = os.path.join(ROOT, "examples", "quickstart.yaml")


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def quickstart_reference():
    seed, n, start = 7, 200_000, 1_704_067_201_000
    domains = ["example.com", "rivulet.dev", "news.site", "shop.io"]
    acc = collections.defaultdict(lambda: [0, 0, 0])
    for i in range(n):
        status = genref.choice(seed, i, 2, ["success", "error", "timeout"], [90, 7, 3])
        latency = genref.uniform_int(seed, i, 3, 1, 800)
        if status != "success" or latency <= 100:
            continue
        ts = genref.event_time(seed, i, 0, start, 5000, 1000)
        domain = genref.choice(seed, i, 1, domains, [4, 3, 2, 1])
        w = ts // 10_000 * 10_000
        a = acc[(domain, w)]
        a[0] += 1
        a[1] += latency
        a[2] = max(a[2], latency)
    return {(d, iso(w)): {"domain": d, "window_start": iso(w), "window_end": iso(w + 10_000), "requests": c,
                          "avg_latency_ms": s / c, "max_latency_ms": m} for (d, w), (c, s, m) in acc.items()}


def test_quickstart_matches_an_independent_model_of_its_input(wd):
    want = quickstart_reference()
    for p in ("1", "2", "3"):
        res = rivulet("run", "-q", "-p", p, QUICKSTART)
        check_eq(res.returncode, 0, f"exit code at -p {p} ({res.stderr})")
        got = {}
        for r in read_json_lines(res.stdout):
            k = (r["domain"], r["window_start"])
            check(k not in got, f"{k} emitted twice")
            got[k] = r
        check_eq(sorted(got), sorted(want), f"windows at -p {p}")
        for k, w in want.items():
            g = got[k]
            for f in ("window_end", "requests", "max_latency_ms"):
                check_eq(g[f], w[f], f"{k} {f} at -p {p}")
            check(abs(g["avg_latency_ms"] - w["avg_latency_ms"]) < 1e-9, f"{k} avg at -p {p}")


def test_plan_shows_chains_parallelism_and_hash_exchange(wd):
    res = rivulet("plan", QUICKSTART)
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    lines = res.stdout.splitlines()
    check_eq(lines[0], "job quickstart: 2 tasks, 4 subtasks, max_parallelism 128", "summary")
    check("task 0 [parallelism 2]: access_logs -> slow_success" in lines, f"source chain: {lines}")
    check("task 1 [parallelism 2]: per_domain -> print" in lines, f"window chain: {lines}")
    check("    input 0: slow_success from task 0, hash by [domain]" in lines, f"hash exchange: {lines}")
    res = rivulet("plan", "-p", "3", QUICKSTART)
    check("task 1 [parallelism 3]: per_domain -> print" in res.stdout.splitlines(), "-p overrides parallelism")


def test_plan_dot_is_graphviz(wd):
    res = rivulet("plan", "--dot", QUICKSTART)
    check_eq(res.returncode, 0, "exit code")
    check(res.stdout.startswith('digraph "quickstart" {'), res.stdout[:40])
    check('"slow_success" -> "per_domain" [label="hash"];' in res.stdout, "hash edge")
    check('"access_logs" -> "slow_success" [label="chained", style=bold];' in res.stdout, "chained edge")
    check(res.stdout.rstrip().endswith("}"), "closed")


def test_docs_jobspec_is_generated_from_the_config_tables(wd):
    with open(os.path.join(ROOT, "docs", "jobspec.intro.md")) as f:
        intro = f.read()
    with open(os.path.join(ROOT, "docs", "jobspec.md")) as f:
        doc = f.read()
    res = rivulet("doc")
    check_eq(res.returncode, 0, "exit code")
    check(doc == intro + "\n" + res.stdout, "docs/jobspec.md is out of date: run deploy/gen-docs.sh")
    for name in ("generator", "file", "socket", "filter", "map", "union", "window_aggregate", "stdout", "discard"):
        check(f"### `{name}`" in doc, f"{name} documented")


def test_ctrl_c_cancels_a_running_job_cleanly(wd):
    path = wd.file("forever.yaml", """
name: forever
sources:
  - id: g
    type: generator
    rate: 2000
    schema: {n: int64}
    fields: {n: {kind: sequence}}
sinks:
  - id: out
    type: stdout
""")
    proc = subprocess.Popen([RIVULET, "run", "-q", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    out, err = proc.communicate(timeout=10)
    check_eq(proc.returncode, 130, f"exit code ({err})")
    check(time.time() - t0 < 3, "stops within 3 s")
    rows = read_json_lines(out)
    check(len(rows) > 500, f"it ran at about 2000 rows/s before the signal ({len(rows)} rows)")
    check_eq([r["n"] for r in rows], list(range(len(rows))), "rows in order, none lost before the cut")


def test_crawler_qps_example_alerts_match_reference(wd):
    with open(os.path.join(ROOT, "examples", "crawler_qps.yaml")) as f:
        job = f.read().replace("/tmp/rivulet-examples/crawler_qps", wd.join("out"))
    data = os.path.join(ROOT, "examples", "data", "crawler_events.jsonl")
    job = job.replace("examples/data/crawler_events.jsonl", data)
    sums, bad = collections.Counter(), 0
    with open(data) as f:
        for line in f:
            try:
                r = json.loads(line)
                int(r["ts"])
            except (ValueError, TypeError):
                bad += 1
                continue
            sums[(r["crawler_id"], r["ts"] // 10_000 * 10_000)] += r["requests"]
    want = sorted((c, w, s) for (c, w), s in sums.items() if s / 10.0 < 10)
    check(len(want) > 0, "the example data contains alerts")
    res = rivulet("run", "-q", wd.file("crawler_qps.yaml", job))
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    alerts = read_part_files(wd.join("out", "alerts"))
    check_eq(sorted((a["crawler_id"], a["window_start"], a["requests"]) for a in alerts), want, "alerts")
    check_eq(len(read_part_files(wd.join("out", "dead_letters"))), bad, "dead letters")


def test_set_overrides_keys_of_the_job_and_of_nodes(wd):
    # count replaces an existing value; batch_size is a key the file lacks
    # (inserted); a quoted value with a colon and a space survives quoting.
    res = rivulet("run", "-q", QUICKSTART, "--set", "access_logs.count=10000", "--set", "access_logs.batch_size=7",
                  "--set", "name=renamed job: yes")
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    rows = read_json_lines(res.stdout)
    check_eq(sum(r["requests"] for r in rows),
             sum(1 for i in range(10_000) if genref.choice(7, i, 2, ["success", "error", "timeout"], [90, 7, 3]) == "success"
                 and genref.uniform_int(7, i, 3, 1, 800) > 100), "requests counted from 10,000 events")
    for args, msg in ((["--set", "nosuch.count=1"], "--set nosuch.count=1: the job has no node 'nosuch'"),
                      (["--set", "novalue"], "--set novalue: expected key=value"),
                      (["--set", "per_domain.window=x"], "'window' is not a one-line value"),
                      (["--set", "access_logs.count=many"], "key 'count' expects an integer")):
        res = rivulet("run", "-q", QUICKSTART, *args)
        check_eq(res.returncode, 2, f"{args} exit code")
        check(msg in res.stderr, f"{args}: {res.stderr!r}")


def test_usage_errors_exit_2(wd):
    for args, msg in ((["frobnicate"], "unknown command 'frobnicate'"), (["run"], "expected one job file"),
                      (["validate", wd.join("missing.yaml")], "job file: cannot open")):
        res = rivulet(*args)
        check_eq(res.returncode, 2, f"{args} exit code")
        check(msg in res.stderr, f"{args}: {res.stderr!r}")


def test_discard_sink_measures_latency_of_a_timestamp_field(wd):
    """A paced generator whose event time starts `now`: the discard sink's
    latency percentiles count every row, are ordered, and are small (the
    pipeline adds milliseconds, not seconds); a wrong field is a plan error."""
    job = wd.join("lat.yaml")
    with open(job, "w") as f:
        f.write("""name: lat
sources:
  - id: gen
    type: generator
    count: 20000
    rate: 20000
    schema: {ts: timestamp, v: int64}
    fields:
      ts: {kind: event_time, start: now, rate: 20000}
      v: {kind: sequence}
sinks:
  - id: sink
    type: discard
    latency_of: ts
""")
    res = rivulet("run", job)
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    line = [l for l in res.stderr.splitlines() if "latency_ms" in l]
    check_eq(len(line), 1, f"one latency line: {res.stderr!r}")
    fields = dict(kv.split("=") for kv in line[0].split("latency_ms ")[1].split()[:7])
    check_eq(int(fields["rows"]), 20000, "every row measured")
    ps = [int(fields[k]) for k in ("p50", "p90", "p99", "p99.9", "max")]
    check(ps == sorted(ps), f"percentiles in order: {ps}")
    check(0 <= ps[0] <= 500 and ps[-1] <= 2000, f"latencies of a 1 s paced run stay small: {ps}")
    with open(job) as f:
        text = f.read().replace("latency_of: ts", "latency_of: v")
    with open(job, "w") as f:
        f.write(text)
    res = rivulet("validate", job)
    check_eq(res.returncode, 2, "validate exit code")
    check("latency_of needs a timestamp field of the input" in res.stderr, res.stderr)


if __name__ == "__main__":
    main([
        test_discard_sink_measures_latency_of_a_timestamp_field,
        test_quickstart_matches_an_independent_model_of_its_input,
        test_plan_shows_chains_parallelism_and_hash_exchange,
        test_plan_dot_is_graphviz,
        test_docs_jobspec_is_generated_from_the_config_tables,
        test_ctrl_c_cancels_a_running_job_cleanly,
        test_crawler_qps_example_alerts_match_reference,
        test_set_overrides_keys_of_the_job_and_of_nodes,
        test_usage_errors_exit_2,
    ])
