#!/usr/bin/env python3
"""Backpressure: a deliberately slow consumer (this test reads the stdout
sink's pipe slowly) must slow the source down, keep memory bounded and
lose nothing."""
import json
import os
import subprocess
import time

from harness import RIVULET, check, check_eq, main

JOB = """
name: backpressure
parallelism: 2
channel_capacity: 4
sources:
  - id: g
    type: generator
    seed: 5
    count: {n}
    schema: {{seq: int64, pad: string}}
    fields:
      seq: {{kind: sequence}}
      pad: {{kind: string, min_len: 40, max_len: 40}}
operators:
  - id: keyed
    type: map
    select:
      "*": true
      k: seq % 10
sinks:
  - id: out
    type: stdout
"""


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def test_slow_sink_slows_the_source_and_memory_stays_bounded(wd):
    n = 600_000
    path = wd.file("job.yaml", JOB.format(n=n))
    proc = subprocess.Popen([RIVULET, "run", "-q", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fd = proc.stdout.fileno()
    chunks = []
    peak = 0
    # Phase 1: read slowly (~320 KiB/s) for 3 seconds.
    t_end = time.time() + 3
    while time.time() < t_end:
        chunk = os.read(fd, 16384)
        if not chunk:
            break
        chunks.append(chunk)
        peak = max(peak, rss_kib(proc.pid))
        time.sleep(0.05)
    slow_lines = sum(c.count(b"\n") for c in chunks)
    check(proc.poll() is None, "the job is still running while its sink is slow")
    # Without backpressure the generator would have finished long ago and
    # its output would sit in memory; with it, the job is held back.
    check(slow_lines < n // 2, f"only part of the output was produced while the sink was slow ({slow_lines} lines)")
    check(peak < 150 * 1024, f"peak RSS {peak} KiB stays under 150 MiB")
    # Phase 2: read at full speed; everything arrives.
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        peak = max(peak, rss_kib(proc.pid))
    got = b"".join(chunks)
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    check_eq(proc.returncode, 0, f"exit code ({err})")
    rows = [json.loads(l) for l in got.splitlines()]
    check_eq(len(rows), n, "rows delivered")
    check_eq(sorted(r["seq"] for r in rows), list(range(n)), "every sequence number exactly once")
    check(all(r["k"] == r["seq"] % 10 for r in rows), "map applied")
    check(peak < 150 * 1024, f"peak RSS {peak} KiB stays under 150 MiB")


if __name__ == "__main__":
    main([test_slow_sink_slows_the_source_and_memory_stays_bounded])
