#!/usr/bin/env python3
"""The sinks through `rivulet run`: the file sink's part files (naming,
rolling by size and by time, hidden in-progress files, CSV headers,
continuing after an earlier run, write errors), the stdout sink's CSV
header with parallel subtasks, and the discard sink's count. Expectations
are computed here from the same deterministic input."""
import csv
import datetime
import io
import os
import re
import socket
import subprocess
import time

from harness import RIVULET, check, check_eq, main, read_json_lines, rivulet, run_job

PART = re.compile(r"^(?P<prefix>.+)-(?P<sub>\d+)-(?P<n>\d+)\.(?P<ext>json|csv)$")

GEN_JOB = """
name: file-sink
parallelism: {p}
sources:
  - id: g
    type: generator
    seed: 5
    count: {n}
    schema: {{seq: int64, word: string, ts: timestamp}}
    fields:
      seq: {{kind: sequence, start: 0, step: 1}}
      word: {{kind: choice, values: ["plain", "a,b", "say \\"hi\\"", "semi;colon"]}}
      ts: {{kind: sequence, start: 1704067200000, step: 1}}
sinks:
  - id: out
    type: file
    path: {out}
{extra}
"""


def gen_job(out, n, p=2, extra=""):
    return GEN_JOB.format(p=p, n=n, out=out, extra="".join(f"    {line}\n" for line in extra.splitlines() if line))


def parts(directory):
    """{(subtask, n): name} of the published part files; checks that
    nothing else (in particular no in-progress file) is there."""
    out = {}
    for name in os.listdir(directory):
        m = PART.match(name)
        check(m is not None, f"unexpected file {name!r} in {directory}")
        out[(int(m["sub"]), int(m["n"]))] = name
    return out


def read(directory, name):
    with open(os.path.join(directory, name)) as f:
        return f.read()


def iso(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def test_part_files_roll_by_size_and_hold_every_row(wd):
    out = wd.join("out")
    n = 60_000
    res = run_job(wd, gen_job(out, n, p=2, extra="roll_size: 256KiB"))
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    files = parts(out)
    seqs = []
    for sub in (0, 1):
        ns = sorted(k for (s, k) in files if s == sub)
        check(len(ns) >= 2, f"subtask {sub} rolled at least once: {ns}")
        check_eq(ns, list(range(len(ns))), f"subtask {sub} numbers its files from 0 without gaps")
        for k in ns:
            name = files[(sub, k)]
            check(name.endswith(".json") and name.startswith(f"part-{sub}-"), f"name {name}")
            text = read(out, name)
            check(text.endswith("\n"), f"{name} ends with a whole line")
            size = len(text.encode())
            # Rolled after the batch that reached 256 KiB: every file but
            # the last reached the size, and one batch cannot add 1 MiB.
            if k != ns[-1]:
                check(256 * 1024 <= size < 1024 * 1024, f"{name} has {size} bytes")
            rows = read_json_lines(text)
            check(len(rows) > 0, f"{name} is not empty")
            for r in rows:
                check_eq(list(r.keys()), ["seq", "word", "ts"], "field order")
                check_eq(r["ts"], 1704067200000 + r["seq"], "epoch_ms timestamp")
            seqs += [r["seq"] for r in rows]
    check_eq(sorted(seqs), list(range(n)), "every row exactly once")


def test_csv_parts_each_start_with_header_and_quote_fields(wd):
    out = wd.join("out")
    n = 20_000
    res = run_job(wd, gen_job(out, n, p=2, extra="format: csv\ndelimiter: ';'\ntimestamp_format: iso8601\n"
                                                  "roll_size: 64KiB\nprefix: rows"))
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    files = parts(out)
    check(len(files) >= 4, f"several part files: {sorted(files.values())}")
    seen = []
    for name in files.values():
        check(name.startswith("rows-") and name.endswith(".csv"), f"name {name}")
        text = read(out, name)
        check(text.startswith("seq;word;ts\n"), f"{name} starts with the header")
        check_eq(text.count("seq;word;ts\n"), 1, f"one header in {name}")
        for seq, word, ts in list(csv.reader(io.StringIO(text), delimiter=";"))[1:]:
            check(word in ("plain", "a,b", 'say "hi"', "semi;colon"), f"word {word!r}")
            check_eq(ts, iso(1704067200000 + int(seq)), "iso8601 timestamp")
            seen.append(int(seq))
        # Only fields with ';' or '"' are quoted.
        check('"a,b"' not in text, "a comma needs no quotes with ';'")
        check('"semi;colon"' in text or "semi" not in text, "a ';' is quoted")
    check_eq(sorted(seen), list(range(n)), "every row exactly once")


def test_second_run_continues_numbering_and_keeps_hidden_files(wd):
    out = wd.join("out")
    job = gen_job(out, 5000, p=2, extra="roll_size: 32KiB")
    res = run_job(wd, job)
    check_eq(res.returncode, 0, f"first run (stderr: {res.stderr})")
    first = {k: read(out, v) for k, v in parts(out).items()}
    # A leftover of a canceled run of subtask 1, numbered past the others.
    hidden = ".part-1-40.json.inprogress"
    with open(os.path.join(out, hidden), "w") as f:
        f.write('{"seq":-1}\n')
    res = run_job(wd, job, name="again.yaml")
    check_eq(res.returncode, 0, f"second run (stderr: {res.stderr})")
    check(os.path.exists(os.path.join(out, hidden)), "the in-progress leftover is kept")
    os.unlink(os.path.join(out, hidden))
    after = parts(out)
    for k, text in first.items():
        check_eq(read(out, after[k]), text, f"file {k} of the first run unchanged")
    new = sorted(k for k in after if k not in first)
    max0 = max(k for (s, k) in first if s == 0)
    check(all(k > max0 for (s, k) in new if s == 0), f"subtask 0 continues after {max0}: {new}")
    check(all(k > 40 for (s, k) in new if s == 1), f"subtask 1 continues after the leftover 40: {new}")
    check_eq(min(k for (s, k) in new if s == 0), max0 + 1, "no gap for subtask 0")
    check_eq(min(k for (s, k) in new if s == 1), 41, "no gap for subtask 1")


def test_roll_interval_publishes_while_the_stream_is_idle(wd):
    """The job reads JSON lines from a socket this test serves; after a few
    lines the stream goes quiet and the part file must still be published
    (by the sink's timer) while the job keeps running."""
    out = wd.join("out")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    job = f"""
name: idle-roll
sources:
  - id: s
    type: socket
    mode: connect
    host: 127.0.0.1
    port: {port}
    schema: {{x: int64}}
sinks:
  - id: out
    type: file
    path: {out}
    roll_interval: 300ms
"""
    path = wd.file("job.yaml", job)
    proc = subprocess.Popen([RIVULET, "run", "-q", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        srv.settimeout(30)
        conn, _ = srv.accept()
        conn.sendall(b'{"x":1}\n{"x":2}\n')
        deadline = time.time() + 10
        while time.time() < deadline and not (os.path.isdir(out) and any(not f.startswith(".") for f in os.listdir(out))):
            time.sleep(0.05)
        check(proc.poll() is None, "the job is still running")
        files = parts(out)
        check_eq(sorted(files.values()), ["part-0-0.json"], "published during the idle period")
        check_eq(read_json_lines(read(out, "part-0-0.json")), [{"x": 1}, {"x": 2}], "rows")
        conn.sendall(b'{"x":3}\n')
        conn.close()
        _, err = proc.communicate(timeout=30)
        check_eq(proc.returncode, 0, f"exit code (stderr: {err})")
        files = parts(out)
        check_eq(sorted(files.values()), ["part-0-0.json", "part-0-1.json"], "a second file for the last row")
        check_eq(read_json_lines(read(out, "part-0-1.json")), [{"x": 3}], "rows of the second file")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.close()


def test_no_rows_publishes_no_file(wd):
    out = wd.join("out")
    job = gen_job(out, 1000, p=2).replace("sinks:", "operators:\n  - id: none\n    type: filter\n    where: seq < 0\nsinks:")
    res = run_job(wd, job)
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    check_eq(parts(out) if os.path.isdir(out) else {}, {}, "no part files")


def test_unusable_directory_fails_the_job_naming_it(wd):
    blocker = wd.file("blocker", "a regular file\n")
    res = run_job(wd, gen_job(os.path.join(blocker, "out"), 100, p=1))
    check_eq(res.returncode, 1, "exit code")
    check(f"{blocker}/out" in res.stderr and "Not a directory" in res.stderr,
          f"error names the directory and the reason: {res.stderr!r}")


def test_full_disk_fails_the_job_naming_the_file(wd):
    mnt = wd.join("small")
    os.makedirs(mnt)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        print("  (skipped: cannot mount a small tmpfs)")
        return
    try:
        res = run_job(wd, gen_job(os.path.join(mnt, "out"), 200_000, p=1))
        check_eq(res.returncode, 1, "exit code")
        check("sink 'out': writing " in res.stderr and ".part-0-0.json.inprogress: No space left on device"
              in res.stderr, f"error names the file and the reason: {res.stderr!r}")
        check_eq([f for f in os.listdir(os.path.join(mnt, "out")) if not f.startswith(".")], [],
                 "nothing published")
    finally:
        subprocess.run(["umount", mnt], check=False)


def test_validate_rejects_bad_sink_options_with_positions(wd):
    cases = [
        ("format: csv\ndelimiter: ab", "delimiter"),
        ("prefix: a/b", "prefix"),
        ("roll_interval: -1s", "roll_interval"),
        ("format: xml", "format"),
    ]
    for extra, key in cases:
        path = wd.file("bad.yaml", gen_job("/tmp/never-created", 10, extra=extra))
        res = rivulet("validate", path)
        check(res.returncode != 0, f"{extra!r} rejected")
        check(re.search(r"bad\.yaml:\d+:\d+: ", res.stderr + res.stdout) and key in res.stderr + res.stdout,
              f"{extra!r}: positioned error naming {key}: {res.stderr!r}")
    job = gen_job("x", 10).replace("    path: x\n", "")
    res = rivulet("validate", wd.file("nopath.yaml", job))
    check(res.returncode != 0 and "path" in res.stderr, f"missing path rejected: {res.stderr!r}")
    check(not os.path.exists("/tmp/never-created"), "validation creates no directory")


STDOUT_JOB = """
name: print
parallelism: 3
sources:
  - id: g
    type: generator
    seed: 2
    count: {n}
    schema: {{seq: int64, word: string}}
    fields:
      seq: {{kind: sequence, start: 0, step: 1}}
      word: {{kind: choice, values: ["x", "y,z"]}}
sinks:
  - id: print
    type: {sink}
{extra}
"""


def test_stdout_csv_prints_one_header_first(wd):
    n = 30_000
    res = run_job(wd, STDOUT_JOB.format(n=n, sink="stdout", extra="    format: csv\n"))
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    lines = res.stdout.splitlines()
    check_eq(lines[0], "seq,word", "header first")
    check_eq(lines.count("seq,word"), 1, "one header")
    rows = list(csv.reader(lines[1:]))
    check(all(len(r) == 2 and r[1] in ("x", "y,z") for r in rows), "every line whole")
    check_eq(sorted(int(r[0]) for r in rows), list(range(n)), "every row once")
    # A header needs a single instance: an explicit parallelism is refused.
    res = rivulet("validate", wd.file("p.yaml", STDOUT_JOB.format(n=n, sink="stdout", extra="    format: csv\n    parallelism: 2\n")))
    check(res.returncode != 0 and "parallelism 1" in res.stderr, f"parallel CSV header refused: {res.stderr!r}")


def test_stdout_parallel_instances_never_split_lines(wd):
    """Three sink instances, long lines (beyond one 64 KiB flush per
    batch): every line of the combined output is whole."""
    n = 30_000
    job = STDOUT_JOB.format(n=n, sink="stdout", extra="    parallelism: 3\n").replace(
        'values: ["x", "y,z"]', 'values: ["' + "x" * 300 + '", "y,z"]')
    res = run_job(wd, job)
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    rows = read_json_lines(res.stdout)
    check(all(list(r) == ["seq", "word"] and r["word"] in ("x" * 300, "y,z") for r in rows), "every line whole")
    check_eq(sorted(r["seq"] for r in rows), list(range(n)), "every row once")
    res = run_job(wd, STDOUT_JOB.format(n=100, sink="stdout", extra="    format: csv\n    header: false\n    parallelism: 3\n"),
                  name="nohead.yaml")
    check_eq(res.returncode, 0, f"CSV without header at parallelism 3 (stderr: {res.stderr})")
    check_eq(sorted(int(line.split(",")[0]) for line in res.stdout.splitlines()), list(range(100)), "rows, no header")


def test_discard_counts_rows(wd):
    n = 12_345
    res = run_job(wd, STDOUT_JOB.format(n=n, sink="discard", extra=""))
    check_eq(res.returncode, 0, f"exit code (stderr: {res.stderr})")
    check_eq(res.stdout, "", "nothing printed")
    res = rivulet("run", wd.file("d.yaml", STDOUT_JOB.format(n=n, sink="discard", extra="")))
    counts = [int(m) for m in re.findall(r"discard sink 'print': (\d+) rows", res.stderr)]
    check_eq(len(counts), 3, f"one count per subtask: {res.stderr!r}")
    check_eq(sum(counts), n, "rows counted")


if __name__ == "__main__":
    main([
        test_part_files_roll_by_size_and_hold_every_row,
        test_csv_parts_each_start_with_header_and_quote_fields,
        test_second_run_continues_numbering_and_keeps_hidden_files,
        test_roll_interval_publishes_while_the_stream_is_idle,
        test_no_rows_publishes_no_file,
        test_unusable_directory_fails_the_job_naming_it,
        test_full_disk_fails_the_job_naming_the_file,
        test_validate_rejects_bad_sink_options_with_positions,
        test_stdout_csv_prints_one_header_first,
        test_stdout_parallel_instances_never_split_lines,
        test_discard_counts_rows,
    ])
