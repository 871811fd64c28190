#!/usr/bin/env python3
"""The examples in examples/ run with `rivulet run` as written (generated
input, output on stdout), and print what an independent model of their
input says they should: the generator's formulas (genref) recompute every
record, and the windows, duplicates and rankings are computed here by brute
force. The parameters below repeat the ones in the example files."""
import collections
import datetime
import os

import genref
from harness import check, check_eq, main, read_json_lines, rivulet

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
START = 1_704_067_200_000  # 2024-01-01T00:00:00Z, the examples' first event time


def example(name):
    return os.path.join(ROOT, "examples", name)


def iso(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def run_example(name, *extra):
    res = rivulet("run", "-q", example(name), *extra)
    check_eq(res.returncode, 0, f"{name} {' '.join(extra)}: exit code ({res.stderr})")
    return read_json_lines(res.stdout)


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


# ---- crawler_qps_alert.yaml ----

def crawler_qps_reference():
    """Final aggregates of every (domain, window start)."""
    seed, n = 2024, 300_000
    crawlers = [f"crawler-{j}" for j in range(1, 6)]
    domains = ["example.com", "news.site", "shop.io", "wiki.org", "blog.net"]
    acc = {}
    for i in range(n):
        ts = genref.event_time(seed, i, 0, START, 5000, 2000)
        crawler = genref.choice(seed, i, 1, crawlers)
        domain = genref.choice(seed, i, 2, domains, [40, 25, 20, 10, 5])
        status = genref.choice(seed, i, 3, [200, 301, 404, 500, 503], [80, 5, 8, 4, 3])
        latency = genref.uniform_int(seed, i, 4, 5, 2000)
        a = acc.setdefault((domain, ts // 10_000 * 10_000), [0, 0, set(), 0])
        a[0] += 1
        a[1] += status >= 500
        a[2].add(crawler)
        a[3] += latency
    return {(d, w): {"domain": d, "window_start": iso(w), "window_end": iso(w + 10_000), "fetches": c,
                     "qps": c / 10.0, "server_errors": e, "crawlers": len(cs), "avg_latency_ms": lat / c}
            for (d, w), (c, e, cs, lat) in acc.items()}


def test_crawler_qps_alert(wd):
    final = crawler_qps_reference()
    want = {(d, r["window_start"]): r for (d, w), r in final.items() if r["qps"] > 1000}
    check(0 < len(want) < len(final), "some windows alert and others do not")
    shop = [r["qps"] > 1000 for (d, _), r in sorted(final.items()) if d == "shop.io" and r["fetches"] > 5000]
    check(any(shop) and not all(shop), f"shop.io (about 1,000 QPS) alerts in some full windows only ({shop})")
    updates = 0
    for extra in ((), ("-p", "1"), ("-p", "3")):
        got = collections.defaultdict(list)
        for r in run_example("crawler_qps_alert.yaml", *extra):
            got[(r["domain"], r["window_start"])].append(r)
        check_eq(sorted(got), sorted(want), f"alerted windows {extra}")
        for k, rows in got.items():
            # Late fetches only add: each re-emission counts more, and the
            # last one holds the window's final counts.
            for i, r in enumerate(rows):
                check(r["qps"] > 1000 and r["qps"] == r["fetches"] / 10.0, f"{k}: alert row {r}")
                check(i == 0 or (r["is_update"] and r["fetches"] >= rows[i - 1]["fetches"]), f"{k}: re-emissions {rows}")
            last, w = rows[-1], want[k]
            for f in ("window_end", "fetches", "qps", "server_errors", "crawlers"):
                check_eq(last[f], w[f], f"{k} {f} {extra}")
            check(close(last["avg_latency_ms"], w["avg_latency_ms"]), f"{k} avg_latency_ms {extra}")
            updates += sum(r["is_update"] for r in rows)
    # 2 s of disorder against 1 s of watermark delay: fetches do come late.
    check(updates > 0, "late fetches re-emitted some windows")


# ---- duplicate_urls.yaml ----

def duplicate_urls_reference():
    seed, n, ttl = 99, 60_000, 30_000
    domains = ["example.com", "news.site", "shop.io"]
    remembered = {}  # url -> time of its last first occurrence
    acc = {}
    renewed = 0
    for i in range(n):  # the dedup sees each URL's fetches in this order
        ts = genref.event_time(seed, i, 0, START, 1000, 2000)
        domain = genref.choice(seed, i, 2, domains, [2, 1, 1])
        url = f"https://{domain}/page/{genref.uniform_int(seed, i, 3, 1, 10_000)}"
        # max_out_of_orderness equals the jitter, so no fetch is behind the
        # watermark and a forgotten URL is exactly one whose ttl has passed.
        t0 = remembered.get(url)
        dup = t0 is not None and ts < t0 + ttl
        if not dup:
            renewed += t0 is not None
            remembered[url] = ts
        a = acc.setdefault((domain, ts // 10_000 * 10_000), [0, 0, set()])
        a[0] += 1
        a[1] += dup
        a[2].add(url)
    want = {(d, iso(w)): {"domain": d, "window_start": iso(w), "window_end": iso(w + 10_000), "fetches": c,
                          "duplicates": dups, "duplicate_rate": dups / c, "distinct_urls": len(urls)}
            for (d, w), (c, dups, urls) in acc.items()}
    return want, renewed


def test_duplicate_urls(wd):
    want, renewed = duplicate_urls_reference()
    check(renewed > 1000, f"URLs crawled again after the ttl count as new ({renewed})")
    check(sum(r["duplicates"] for r in want.values()) > 10_000, "many re-crawls")
    for extra in ((), ("-p", "1"), ("-p", "3")):
        got = {}
        for r in run_example("duplicate_urls.yaml", *extra):
            k = (r["domain"], r["window_start"])
            check(k not in got, f"{k} printed twice {extra}")
            got[k] = r
        check_eq(sorted(got), sorted(want), f"windows {extra}")
        for k, w in want.items():
            g = got[k]
            for f in ("window_end", "fetches", "duplicates", "distinct_urls"):
                check_eq(g[f], w[f], f"{k} {f} {extra}")
            check(close(g["duplicate_rate"], w["duplicate_rate"]), f"{k} duplicate_rate {extra}")


# ---- top_domains.yaml ----

def top_domains_reference():
    seed, n = 11, 200_000
    domains = ["example.com", "rivulet.dev", "news.site", "shop.io", "wiki.org", "blog.net", "cdn.io", "api.dev"]
    acc = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0, 0]))
    for i in range(n):
        ts = genref.event_time(seed, i, 0, START, 4000, 500)
        domain = genref.choice(seed, i, 1, domains, [17, 17, 16, 16, 14, 10, 6, 4])
        status = genref.choice(seed, i, 2, [200, 304, 404, 500], [85, 8, 5, 2])
        size = genref.uniform_int(seed, i, 3, 200, 60_000)
        a = acc[ts // 10_000 * 10_000][domain]
        a[0] += 1
        a[1] += status >= 400
        a[2] += size
    rows = []
    for w in sorted(acc):
        ranked = sorted(acc[w].items(), key=lambda kv: (-kv[1][0], kv[0]))[:3]
        for rank, (d, (hits, errors, size)) in enumerate(ranked, 1):
            rows.append({"domain": d, "window_start": iso(w), "window_end": iso(w + 10_000), "hits": hits,
                         "errors": errors, "kib": size // 1024, "rank": rank})
    return rows


def test_top_domains(wd):
    want = top_domains_reference()
    check(len({tuple(r["domain"] for r in want[i:i + 3]) for i in range(0, len(want), 3)}) > 2,
          "the podium changes from window to window")
    for extra in ((), ("-p", "1"), ("-p", "3")):
        check_eq(run_example("top_domains.yaml", *extra), want, f"ranked rows {extra}")


if __name__ == "__main__":
    main([
        test_crawler_qps_alert,
        test_duplicate_urls,
        test_top_domains,
    ])
