#!/usr/bin/env python3
"""Sources and event time through `rivulet run`: the socket source in listen
and connect mode, the file source following a growing directory, idle
sources, late data, processing-time and sliding windows. Every job runs as a
real process; the expected rows are computed here from the same
deterministic input (random.Random(seed)), and windows from the documented
watermark rule (watermark = largest event time seen by a source instance -
max_out_of_orderness - 1 ms; a window [s, e) fires when the watermark
reaches e - 1; a row whose windows have all fired is late and dropped)."""
import collections
import csv
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

from harness import RIVULET, Failure, check, check_eq, main, read_json_lines, read_part_files, run_job, write_jsonl

BASE_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a multiple of every window size used here
KEYS = ["alpha", "beta", "gamma"]


# ---- a job running in the background ----

class LiveJob:
    """`rivulet run` started in the background (INFO logs on, so that the
    socket source's port can be read); threads collect stdout and stderr
    line by line while it runs. Always call kill() in a finally block."""

    def __init__(self, wd, yaml_text, name="job.yaml"):
        path = wd.file(name, yaml_text)
        self.started = time.time()
        self.proc = subprocess.Popen([RIVULET, "run", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.cond = threading.Condition()
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self.readers:
            t.start()

    def _read(self, stream, lines):
        for line in stream:
            with self.cond:
                lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def stderr(self):
        with self.cond:
            return "".join(self.err)

    def rows(self):
        """The JSON rows printed on stdout so far (complete lines only)."""
        with self.cond:
            lines = [l for l in self.out if l.endswith("\n")]
        return read_json_lines("".join(lines))

    def wait_for(self, pred, timeout, what):
        """Waits until pred() is true (re-checked on every new output line
        and every 50 ms); fails after `timeout` seconds or when the job
        exits first."""
        deadline = time.time() + timeout
        while True:
            v = pred()
            if v:
                return v
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the readers drain the pipes
                v = pred()
                if v:
                    return v
                raise Failure(f"job exited ({self.proc.returncode}) before: {what}; stderr: {self.stderr()[-2000:]}")
            left = deadline - time.time()
            if left <= 0:
                raise Failure(f"timed out after {timeout}s waiting for: {what}; stderr: {self.stderr()[-2000:]}")
            with self.cond:
                self.cond.wait(min(left, 0.05))

    def port(self, timeout=10):
        m = self.wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", self.stderr()), timeout,
                          "the socket source to log its port")
        return int(m.group(1))

    def wait(self, timeout):
        """Waits for the job to exit on its own; returns the exit code."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"job still running after {timeout}s; stderr: {self.stderr()[-2000:]}") from None
        for t in self.readers:
            t.join(timeout=5)
        return rc

    def interrupt(self, timeout=10):
        """Ctrl-C; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for t in self.readers:
            t.join(timeout=5)


def run_threads(targets, timeout=30):
    """Runs the callables in threads; re-raises the first exception."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        check(not t.is_alive(), f"a client thread is still running after {timeout}s")
    if errors:
        raise errors[0]


def send_in_pieces(sock, data, rnd):
    """Sends data in pieces of random size (cutting lines anywhere), pausing
    now and then so that concurrent clients interleave."""
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 3000)
        sock.sendall(data[pos:pos + n])
        pos += n
        if rnd.random() < 0.1:
            time.sleep(0.002)


# ---- references ----

def events(seed, n, start_ms, step_ms, jitter_ms, late_fraction=0.0, late_ms=0):
    """n rows {ts, k, v} about step_ms apart from BASE_TS + start_ms, each up
    to jitter_ms early (and with probability late_fraction up to late_ms)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        back = rnd.randint(0, late_ms) if rnd.random() < late_fraction else rnd.randint(0, jitter_ms)
        rows.append({"ts": BASE_TS + start_ms + i * step_ms - back, "k": rnd.choice(KEYS), "v": rnd.randint(-50, 500)})
    return rows


def windows_of(t, size, slide):
    """Starts of the windows [s, s + size) holding t; starts are multiples of slide."""
    s = t // slide * slide
    out = []
    while s > t - size:
        out.append(s)
        s -= slide
    return out


def event_time_reference(rows, size, slide, ooo_ms):
    """Rows in the order one source instance reads them, one row per batch
    (batch_size: 1), so the watermark moves after every row. Returns
    ({(k, start): [count, sum]}, late rows, final watermark)."""
    acc = collections.defaultdict(lambda: [0, 0])
    late = 0
    max_ts = None
    for r in rows:
        wm = max_ts - ooo_ms - 1 if max_ts is not None else None
        added = False
        for s in windows_of(r["ts"], size, slide):
            if wm is not None and wm >= s + size - 1:
                continue  # this window already fired
            a = acc[(r["k"], s)]
            a[0] += 1
            a[1] += r["v"]
            added = True
        late += not added
        max_ts = r["ts"] if max_ts is None else max(max_ts, r["ts"])
    return acc, late, (max_ts - ooo_ms - 1 if max_ts is not None else None)


def window_rows(acc, size, fired_before=None):
    """Output rows {k, window_start, window_end, n, total} of the windows in
    acc, only those whose end - 1 <= fired_before when that is given."""
    out = {}
    for (k, s), (n, total) in acc.items():
        if fired_before is None or s + size - 1 <= fired_before:
            out[(k, s)] = {"k": k, "window_start": s, "window_end": s + size, "n": n, "total": total}
    return out


def check_rows(got, want, what):
    """Like check_eq for long lists, naming the first difference only."""
    if got == want:
        return
    if len(got) != len(want):
        raise Failure(f"{what}: {len(got)} rows, want {len(want)}")
    i = next(i for i in range(len(got)) if got[i] != want[i])
    raise Failure(f"{what}: row {i} is {got[i]!r}, want {want[i]!r}")


def published(directory):
    """Rows of the published part files (none before the directory exists)."""
    return read_part_files(directory) if os.path.isdir(directory) else []


def keyed(rows, what):
    got = {}
    for r in rows:
        key = (r["k"], r["window_start"])
        check(key not in got, f"{what}: window {key} emitted twice")
        got[key] = r
    return got


def check_windows(got_rows, want, what):
    got = keyed(got_rows, what)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    check(not missing and not extra, f"{what}: missing windows {missing[:5]}, unexpected {extra[:5]}")
    for k, w in want.items():
        check_eq(got[k], w, f"{what}: window {k}")


WINDOW_ITEM = """
  - id: w
    type: window_aggregate
    key_by: [k]
    window: {window}
    aggregates:
      n: count()
      total: sum(v)
"""
WINDOW_OP = "\noperators:" + WINDOW_ITEM


# ---- 1. socket source, listen mode ----

SOCKET_LISTEN_JOB = """
name: socket-listen
sources:
  - id: sock
    type: socket
    port: 0
    until_closed: true
    format: {fmt}
    on_error: {on_error}
    schema: {{client: string, seq: int64, v: int64, name: string}}
sinks:
  - id: out
    type: stdout
{extra}
"""


def client_rows(client, seed, n):
    rnd = random.Random(seed)
    names = ["plain", 'with "quotes"', "comma, inside", "tab\there", "unicod\u00e9", ""]
    return [{"client": client, "seq": i, "v": rnd.randint(-10**12, 10**12), "name": rnd.choice(names)} for i in range(n)]


def test_socket_listen_two_concurrent_json_clients_every_row_once(wd):
    a, b = client_rows("a", 1, 4000), client_rows("b", 2, 3000)
    data_a = "".join(json.dumps(r) + "\n" for r in a).encode()
    # b's last line has no newline: it still counts when b closes.
    data_b = ("".join(json.dumps(r) + "\n" for r in b[:-1]) + json.dumps(b[-1])).encode()
    job = LiveJob(wd, SOCKET_LISTEN_JOB.format(fmt="json", on_error="fail", extra=""))
    try:
        port = job.port()
        # Both connect before either sends, so the job (until_closed) cannot
        # end between the two.
        ca = socket.create_connection(("127.0.0.1", port), timeout=10)
        cb = socket.create_connection(("127.0.0.1", port), timeout=10)
        with ca, cb:
            run_threads([lambda: (send_in_pieces(ca, data_a, random.Random(10)), ca.shutdown(socket.SHUT_WR)),
                         lambda: (send_in_pieces(cb, data_b, random.Random(11)), cb.shutdown(socket.SHUT_WR))])
        check_eq(job.wait(20), 0, f"exit code once both clients closed ({job.stderr()[-2000:]})")
        got = job.rows()
        check_eq(len(got), len(a) + len(b), "rows")
        for client, want in (("a", a), ("b", b)):
            mine = [r for r in got if r["client"] == client]
            check_rows(sorted(mine, key=lambda r: r["seq"]), want, f"client {client}'s rows")
            check_eq([r["seq"] for r in mine], list(range(len(want))), f"client {client}'s rows keep their order")
    finally:
        job.kill()


def csv_text(rows, columns, quoting):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=quoting)
    w.writerow(columns)
    for r in rows:
        w.writerow([r[c] for c in columns])
    return buf.getvalue()


def test_socket_listen_csv_header_per_connection(wd):
    a, b = client_rows("a", 3, 2500), client_rows("b", 4, 2500)
    # Each connection names its columns in its own order; b quotes every
    # cell. An empty unquoted cell is null, a quoted one the empty string.
    data_a = csv_text(a, ["client", "seq", "v", "name"], csv.QUOTE_MINIMAL).encode()
    data_b = csv_text(b, ["name", "v", "client", "seq"], csv.QUOTE_ALL).encode()
    want = [dict(r, name=r["name"] or None) for r in a] + b
    check(any(r["name"] is None for r in want) and any(r["name"] == "" for r in want), "test design: both kinds of empty")
    job = LiveJob(wd, SOCKET_LISTEN_JOB.format(fmt="csv", on_error="fail", extra=""))
    try:
        port = job.port()
        ca = socket.create_connection(("127.0.0.1", port), timeout=10)
        cb = socket.create_connection(("127.0.0.1", port), timeout=10)
        with ca, cb:
            run_threads([lambda: (send_in_pieces(ca, data_a, random.Random(12)), ca.shutdown(socket.SHUT_WR)),
                         lambda: (send_in_pieces(cb, data_b, random.Random(13)), cb.shutdown(socket.SHUT_WR))])
        check_eq(job.wait(20), 0, f"exit code ({job.stderr()[-2000:]})")
        check_rows(sorted(job.rows(), key=lambda r: (r["client"], r["seq"])), want, "rows decoded with each connection's header")
    finally:
        job.kill()


def test_socket_listen_bad_lines_go_to_dead_letter_with_peer_and_line(wd):
    good = client_rows("c", 5, 200)
    bad_texts = ["this is not json", '{"client": "c", "seq": "seven", "v": 1, "name": "x"}', '{"client": "c", "seq": 1,',
                 "[1, 2, 3]"]
    lines, bad_at = [], {}
    rnd = random.Random(6)
    for r in good:
        lines.append(json.dumps(r))
        if rnd.random() < 0.04:
            text = rnd.choice(bad_texts)
            lines.append(text)
            bad_at[len(lines)] = text
    lines.append("{truncated and no newline")  # a bad last line without its newline
    bad_at[len(lines)] = lines[-1]
    data = ("\n".join(lines)).encode()
    extra = f"""  - id: dlq
    type: file
    input: sock.dead_letter
    path: {wd.join('dlq')}
"""
    job = LiveJob(wd, SOCKET_LISTEN_JOB.format(fmt="json", on_error="dead_letter", extra=extra))
    try:
        port = job.port()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            peer = "127.0.0.1:%d" % c.getsockname()[1]
            send_in_pieces(c, data, random.Random(7))
        check_eq(job.wait(20), 0, f"exit code ({job.stderr()[-2000:]})")
        check_rows(sorted(job.rows(), key=lambda r: r["seq"]), good, "good rows")
        dead = read_part_files(wd.join("dlq"))
        check_eq(len(dead), len(bad_at), "dead letters")
        want = {f"socket {peer} line {n}": text for n, text in bad_at.items()}
        got = {d["location"]: d for d in dead}
        check_eq(sorted(got), sorted(want), "dead letter locations (socket PEER line N)")
        for loc, text in want.items():
            check_eq(got[loc]["raw"], text, f"raw text at {loc}")
            check_eq(got[loc]["source"], "sock", f"source at {loc}")
            check(got[loc]["reason"], f"a reason at {loc}")
    finally:
        job.kill()


# ---- 2. socket source, connect mode ----

SOCKET_CONNECT_JOB = """
name: socket-connect
sources:
  - id: sock
    type: socket
    mode: connect
    port: {port}
    connect_timeout: {timeout}
    schema: {{client: string, seq: int64, v: int64, name: string}}
sinks:
  - id: out
    type: stdout
"""


def test_socket_connect_retries_reads_until_peer_closes(wd):
    rows = client_rows("srv", 8, 20000)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    # A bound socket that does not listen yet refuses connections (the
    # source must retry); holding it keeps the port ours.
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    job = LiveJob(wd, SOCKET_CONNECT_JOB.format(port=port, timeout="10s"))
    try:
        time.sleep(0.4)
        check(job.proc.poll() is None, f"the job waits for the server ({job.stderr()[-2000:]})")
        srv.listen(1)
        srv.settimeout(10)
        conn, _ = srv.accept()
        with conn:
            send_in_pieces(conn, data, random.Random(9))
        check_eq(job.wait(20), 0, f"exit code once the server closed ({job.stderr()[-2000:]})")
        check(f"connected to 127.0.0.1:{port}" in job.stderr(), "logs the connection")
        check_rows(job.rows(), rows, "rows, in order")
    finally:
        job.kill()
        srv.close()


def test_socket_connect_refused_fails_after_connect_timeout(wd):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))  # never listens: every attempt is refused
    port = srv.getsockname()[1]
    try:
        t0 = time.time()
        res = run_job(wd, SOCKET_CONNECT_JOB.format(port=port, timeout="300ms"), timeout=30)
        took = time.time() - t0
    finally:
        srv.close()
    check_eq(res.returncode, 1, f"exit code ({res.stderr})")
    msg = f"cannot connect to 127.0.0.1:{port} within 300 ms: Connection refused"
    check(msg in res.stderr, f"error {msg!r} in {res.stderr!r}")
    check("job failed" in res.stderr, f"says the job failed: {res.stderr!r}")
    check(0.3 <= took < 5, f"gives up after the connect timeout, took {took:.2f}s")


# ---- 3. file source following a directory ----

FOLLOW_JOB = """
name: follow
sources:
  - id: ev
    type: file
    path: {dir}
    pattern: "*.json"
    follow: true
    poll_interval: 50ms
    schema: {{ts: timestamp, k: string, v: int64}}
    event_time: {{field: ts, max_out_of_orderness: 300ms}}
""" + WINDOW_OP.format(window="{{tumbling: 1s}}") + """
sinks:
  - id: out
    type: file
    path: {out}
    roll_interval: 200ms
"""


def test_file_follow_appended_lines_and_new_files_fire_windows(wd):
    # Rows 5 ms apart, up to 200 ms early: never late with 300 ms allowed.
    phase1 = events(20, 600, 0, 5, 200)      # event time 0 .. 3 s
    phase2 = events(21, 600, 3000, 5, 200)   # 3 .. 6 s, appended to a.json
    phase3 = events(22, 700, 6000, 5, 200)   # 6 .. 9.5 s, in a new file b.json
    indir, out = wd.join("in"), wd.join("out")
    os.makedirs(indir)
    write_jsonl(os.path.join(indir, "a.json"), phase1)

    def expect(rows):
        acc, late, wm = event_time_reference(rows, 1000, 1000, 300)
        check_eq(late, 0, "test design: no late rows")
        return window_rows(acc, 1000, wm)

    def published_covers(want):
        return lambda: set(want) <= set(keyed(published(out), "published"))

    job = LiveJob(wd, FOLLOW_JOB.format(dir=indir, out=out))
    try:
        want = expect(phase1)
        check(len(want) > 0, "test design: phase 1 closes windows")
        job.wait_for(published_covers(want), 10, "windows of the first file")
        check_windows(published(out), want, "after the first file")

        lines = "".join(json.dumps(r) + "\n" for r in phase2)
        cut = len(lines) - 20  # the last line arrives in two writes
        with open(os.path.join(indir, "a.json"), "a") as f:
            for k in range(0, cut, 4000):
                f.write(lines[k:min(k + 4000, cut)])
                f.flush()
                time.sleep(0.02)
            time.sleep(0.3)  # an unterminated line waits for its newline
            f.write(lines[cut:])
        want = expect(phase1 + phase2)
        job.wait_for(published_covers(want), 10, "windows of the appended lines")
        check_windows(published(out), want, "after appending")

        # Files the pattern or the dot rule exclude: they must never be read.
        decoy = [{"ts": BASE_TS + 7000, "k": "alpha", "v": 10**9}]
        write_jsonl(os.path.join(indir, "notes.txt"), decoy)
        write_jsonl(os.path.join(indir, ".hidden.json"), decoy)
        write_jsonl(os.path.join(indir, "b.json"), phase3)
        want = expect(phase1 + phase2 + phase3)
        job.wait_for(published_covers(want), 10, "windows of the new file")
        time.sleep(0.5)  # time for anything unexpected to show up
        check_eq(job.interrupt(), 130, f"exit code after Ctrl-C ({job.stderr()[-2000:]})")
        check_windows(published(out), want, "after the new file")
        check(all(w["window_start"] < BASE_TS + 9000 for w in want.values()), "test design: window 9 s is still open")
    finally:
        job.kill()


# ---- 4. idle sources ----

IDLE_JOB = """
name: idle
parallelism: 2
sources:
  - id: ev
    type: file
    path: {path}
    follow: true
    poll_interval: 50ms
    schema: {{ts: timestamp, k: string, v: int64}}
    event_time: {{field: ts{idle}}}
""" + WINDOW_OP.format(window="{{tumbling: 1s}}") + """
sinks:
  - id: out
    type: stdout
  - id: raw
    type: stdout
    input: ev
"""


def idle_case(wd, idle):
    """A single file is read by source instance 0 of 2, so instance 1 never
    has data. A writer keeps instance 0 busy with rows that do not move its
    watermark past the windows of interest (ts 9.995 s: window 9 s stays
    open), so only instance 1 can be idle."""
    rows = events(30, 1000, 0, 10, 0)  # in order, 0 .. 9.99 s of event time
    path = wd.join("one.json")
    write_jsonl(path, rows)
    acc, _, _ = event_time_reference(rows, 1000, 1000, 0)
    keepalive = {"ts": BASE_TS + 9995, "k": "zeta", "v": 0}
    want = window_rows(acc, 1000, BASE_TS + 9995 - 1)
    check_eq(len(want), 27, "test design: windows 0 .. 8 s of 3 keys close")
    extra = ", idle_timeout: 500ms" if idle else ""
    job = LiveJob(wd, IDLE_JOB.format(path=path, idle=extra), name=f"idle-{idle}.yaml")
    stop = threading.Event()

    def keep_busy():
        with open(path, "a") as f:
            while not stop.wait(0.05):
                f.write(json.dumps(keepalive) + "\n")
                f.flush()

    writer = threading.Thread(target=keep_busy, daemon=True)
    writer.start()
    try:
        raw = lambda: [r for r in job.rows() if "window_start" not in r and r["k"] != "zeta"]  # noqa: E731
        wins = lambda: [r for r in job.rows() if "window_start" in r]  # noqa: E731
        job.wait_for(lambda: len(raw()) >= len(rows), 10, "every row read")
        order = lambda r: (r["ts"], r["k"], r["v"])  # noqa: E731
        check_rows(sorted(raw(), key=order), sorted(rows, key=order), "rows read")
        if idle:
            job.wait_for(lambda: len(wins()) >= len(want), 5, "windows fired thanks to idle_timeout")
            time.sleep(0.3)
            check_windows(wins(), want, "windows with idle_timeout")
        else:
            time.sleep(max(0.0, job.started + 1.5 - time.time()))
            check_eq(wins(), [], "windows fired without idle_timeout while instance 1 had no data")
        check_eq(job.interrupt(), 130, f"exit code after Ctrl-C ({job.stderr()[-2000:]})")
    finally:
        stop.set()
        writer.join(5)
        job.kill()


def test_idle_timeout_lets_windows_fire_while_a_source_instance_has_no_data(wd):
    idle_case(wd, True)


def test_without_idle_timeout_an_empty_source_instance_holds_windows_back(wd):
    idle_case(wd, False)


IDLE_UNION_JOB = """
name: idle-union
sources:
  - id: a
    type: file
    path: {a}
    follow: true
    poll_interval: 50ms
    schema: {{ts: timestamp, k: string, v: int64}}
    event_time: {{field: ts, idle_timeout: 300ms}}
  - id: b
    type: file
    path: {b}
    follow: true
    poll_interval: 50ms
    schema: {{ts: timestamp, k: string, v: int64}}
    event_time: {{field: ts, idle_timeout: 1s}}
operators:
  - id: both
    type: union
    inputs: [a, b]""" + WINDOW_ITEM.format(window="{{tumbling: 1s}}") + """
sinks:
  - id: out
    type: stdout
"""


def test_idle_timeout_windows_fire_when_the_source_with_data_went_idle_first(wd):
    # a has all the data and goes idle after 300 ms (its watermark already
    # sent); b never has data and stops holding the watermark back after
    # 1 s. From then on nothing holds a's watermark back.
    rows = events(31, 500, 0, 20, 0)
    write_jsonl(wd.join("a.json"), rows)
    write_jsonl(wd.join("b.json"), [])
    acc, _, wm = event_time_reference(rows, 1000, 1000, 0)
    want = window_rows(acc, 1000, wm)
    check(len(want) >= 20, "test design: closed windows")
    job = LiveJob(wd, IDLE_UNION_JOB.format(a=wd.join("a.json"), b=wd.join("b.json")))
    try:
        job.wait_for(lambda: len(job.rows()) >= len(want), 5, "windows fired once b was idle too")
        time.sleep(0.3)
        check_windows(job.rows(), want, "windows")
        check_eq(job.interrupt(), 130, f"exit code after Ctrl-C ({job.stderr()[-2000:]})")
    finally:
        job.kill()


def test_an_ended_input_beside_an_idle_one_lets_every_window_fire(wd):
    # a is bounded and ends: it will never send anything older, so it counts
    # as the end of time; b is followed, empty and idle. Every window of a,
    # the last one included, must fire while the job keeps running for b.
    rows = events(37, 500, 0, 20, 0)
    write_jsonl(wd.join("a.json"), rows)
    write_jsonl(wd.join("b.json"), [])
    acc, _, _ = event_time_reference(rows, 1000, 1000, 0)
    want = window_rows(acc, 1000)
    job_text = IDLE_UNION_JOB.format(a=wd.join("a.json"), b=wd.join("b.json"))
    job_text = job_text.replace("    follow: true\n    poll_interval: 50ms\n", "", 1)
    job = LiveJob(wd, job_text)
    try:
        job.wait_for(lambda: len(job.rows()) >= len(want), 5, "every window of the ended input fired")
        time.sleep(0.3)
        check_windows(job.rows(), want, "windows")
        check(job.proc.poll() is None, "the job keeps running for the followed input")
        check_eq(job.interrupt(), 130, f"exit code after Ctrl-C ({job.stderr()[-2000:]})")
    finally:
        job.kill()


def test_follow_keeps_dropping_a_too_long_line_across_reopens(wd):
    # The long line is read up to the end of the file (no newline yet), the
    # file is closed, more data arrives: the rest of that line must still be
    # dropped, not read as a record of its own.
    os.makedirs(wd.join("in"))
    with open(wd.join("in", "a.json"), "w") as f:
        f.write("X" * 32)
    job = LiveJob(wd, f"""
name: follow-long-line
sources:
  - id: src
    type: file
    path: {wd.join("in")}
    follow: true
    poll_interval: 50ms
    max_line_bytes: 16
    on_error: skip
    schema: {{x: int64}}
sinks:
  - id: out
    type: stdout
""")
    try:
        job.wait_for(lambda: "line longer than 16 bytes" in job.stderr(), 5, "the long line to be reported")
        with open(wd.join("in", "a.json"), "a") as f:
            f.write('{"x":7}\n{"x":8}\n')
        job.wait_for(lambda: len(job.rows()) >= 1, 5, "the record after the long line")
        with open(wd.join("in", "a.json"), "a") as f:
            f.write('{"x":9}\n')
        job.wait_for(lambda: len(job.rows()) >= 2, 5, "the next record")
        time.sleep(0.2)
        check_eq(job.rows(), [{"x": 8}, {"x": 9}], "records (the tail of the long line is not one)")
        check_eq(job.interrupt(), 130, "exit code after Ctrl-C")
    finally:
        job.kill()


# ---- 5. late data ----

LATE_JOB = """
name: late
parallelism: 1
sources:
  - id: ev
    type: file
    path: {path}
    batch_size: 1
    schema: {{ts: timestamp, k: string, v: int64}}
    event_time: {{field: ts, max_out_of_orderness: {ooo}}}
""" + WINDOW_OP + """
sinks:
  - id: out
    type: stdout
"""


def late_count(stderr):
    m = re.search(r"(\d+) late rows \(past allowed_lateness\)", stderr)
    return int(m.group(1)) if m else 0


def run_event_time_case(wd, rows, window, size, slide, ooo_ms, name):
    write_jsonl(wd.join(f"{name}.json"), rows)
    acc, late, _ = event_time_reference(rows, size, slide, ooo_ms)
    job = LiveJob(wd, LATE_JOB.format(path=wd.join(f"{name}.json"), ooo=f"{ooo_ms}ms", window=window), name=f"{name}.yaml")
    try:
        check_eq(job.wait(60), 0, f"exit code ({job.stderr()[-2000:]})")
        check_windows(job.rows(), window_rows(acc, size), name)
        check_eq(late_count(job.stderr()), late, f"{name}: late rows logged")
    finally:
        job.kill()
    return late


def test_late_rows_are_dropped_by_the_watermark_rule(wd):
    # 20 ms apart, mostly up to 300 ms early, 10 % up to 4 s early.
    rows = events(40, 1500, 0, 20, 300, late_fraction=0.1, late_ms=4000)
    late = run_event_time_case(wd, rows, "{tumbling: 2s}", 2000, 2000, 1000, "late")
    check(20 < late < 150, f"test design: some rows are late ({late})")
    # With enough allowed out-of-orderness nothing is late.
    late = run_event_time_case(wd, rows, "{tumbling: 2s}", 2000, 2000, 5000, "lenient")
    check_eq(late, 0, "test design: no late rows with 5 s allowed")


def test_late_rows_at_the_exact_watermark_boundary(wd):
    # Windows of 2 s, 1 s allowed: after max event time M the watermark is
    # M - 1001, and window [s, s + 2000) has fired once it is >= s + 1999.
    # (event time offset, v): hand-computed outcome.
    rows = [(10000, 1),   # window 10 s
            (8000, 2),    # wm 8999 < 9999: window 8 s still open, counted
            (7999, 4),    # wm 8999 >= 7999: window 6 s fired, late
            (10999, 8),   # window 10 s
            (9999, 16),   # wm 9998: window 8 s open one ms more, counted
            (11000, 32),  # window 10 s; wm becomes 9999: window 8 s fires
            (9999, 64),   # late
            (10000, 128)]  # window 10 s
    rows = [{"ts": BASE_TS + t, "k": "alpha", "v": v} for t, v in rows]
    write_jsonl(wd.join("edge.json"), rows)
    job = LiveJob(wd, LATE_JOB.format(path=wd.join("edge.json"), ooo="1s", window="{tumbling: 2s}"))
    try:
        check_eq(job.wait(30), 0, f"exit code ({job.stderr()[-2000:]})")
        want = [{"k": "alpha", "window_start": BASE_TS + 8000, "window_end": BASE_TS + 10000, "n": 2, "total": 18},
                {"k": "alpha", "window_start": BASE_TS + 10000, "window_end": BASE_TS + 12000, "n": 4, "total": 169}]
        check_eq(job.rows(), want, "windows, in firing order")
        check_eq(late_count(job.stderr()), 2, "late rows logged")
    finally:
        job.kill()


# ---- 6. processing time ----

PROCESSING_JOB = """
name: processing
sources:
  - id: g
    type: generator
    rate: 2000
    count: 3000
    seed: 5
    schema: {k: string, v: int64}
    fields:
      k: {kind: constant, value: all}
      v: {kind: uniform_int, min: 0, max: 9}
operators:
  - id: w
    type: window_aggregate
    key_by: [k]
    time: processing
    window: {tumbling: 500ms}
    aggregates:
      n: count()
sinks:
  - id: out
    type: stdout
"""


def test_processing_time_windows_are_aligned_and_count_every_row(wd):
    t0 = time.time()
    res = run_job(wd, PROCESSING_JOB, timeout=30)
    t1 = time.time()
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    got = read_json_lines(res.stdout)
    check_eq(sum(r["n"] for r in got), 3000, f"rows over all windows: {got}")
    starts = [r["window_start"] for r in got]
    check_eq(len(set(starts)), len(starts), f"each window once: {got}")
    for r in got:
        check_eq(r["window_start"] % 500, 0, f"window aligned to 500 ms: {r}")
        check_eq(r["window_end"] - r["window_start"], 500, f"window length: {r}")
        check(int(t0 * 1000) // 500 * 500 <= r["window_start"] and r["window_end"] <= int(t1 * 1000) + 500,
              f"window {r} within the run's wall clock [{t0:.3f}, {t1:.3f}]")
    # 3000 rows at 2000/s take 1.5 s: at least three windows of 500 ms.
    check(len(got) >= 3, f"rows spread over the paced run: {got}")
    check(t1 - t0 >= 1.4, f"pacing: the run took {t1 - t0:.2f}s")


# ---- 7. sliding windows ----

SLIDING_JOB = """
name: sliding
parallelism: 2
sources:
  - id: ev
    type: file
    path: {dir}
    schema: {{ts: timestamp, k: string, v: int64}}
    event_time: {{field: ts, max_out_of_orderness: 3s}}
""" + WINDOW_OP.format(window="{{sliding: {{size: 10s, slide: 5s}}}}") + """
sinks:
  - id: out
    type: stdout
"""


def test_sliding_windows_match_reference_at_parallelism_2(wd):
    # Two files (one per source instance), each at most 3 s out of order:
    # nothing is late whatever the interleaving.
    rows = events(50, 20000, 0, 3, 3000)
    os.makedirs(wd.join("in"))
    write_jsonl(wd.join("in", "part-0.json"), rows[0::2])
    write_jsonl(wd.join("in", "part-1.json"), rows[1::2])
    acc = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        for s in range(r["ts"] // 5000 * 5000 - 5000, r["ts"] + 1, 5000):
            if s <= r["ts"] < s + 10000:
                acc[(r["k"], s)][0] += 1
                acc[(r["k"], s)][1] += r["v"]
    want = window_rows(acc, 10000)
    res = run_job(wd, SLIDING_JOB.format(dir=wd.join("in")), timeout=60)
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    got = read_json_lines(res.stdout)
    check_windows(got, want, "sliding 10s/5s")
    check_eq(sum(r["n"] for r in got), 2 * len(rows), "every row counted in two windows")


def test_sliding_windows_late_rows_only_miss_windows_that_fired(wd):
    # A row 4-9 s late (ooo 1 s) can still count in the later of its two
    # windows while the earlier one has fired.
    rows = events(60, 1500, 0, 20, 500, late_fraction=0.15, late_ms=9000)
    late = run_event_time_case(wd, rows, "{sliding: {size: 10s, slide: 5s}}", 10000, 5000, 1000, "sliding-late")
    acc, _, _ = event_time_reference(rows, 10000, 5000, 1000)
    partial = sum(r["n"] for r in window_rows(acc, 10000).values())
    check(late > 0 and partial < 2 * len(rows) - 2 * late, f"test design: late ({late}) and partly late rows")


if __name__ == "__main__":
    main([
        test_socket_listen_two_concurrent_json_clients_every_row_once,
        test_socket_listen_csv_header_per_connection,
        test_socket_listen_bad_lines_go_to_dead_letter_with_peer_and_line,
        test_socket_connect_retries_reads_until_peer_closes,
        test_socket_connect_refused_fails_after_connect_timeout,
        test_file_follow_appended_lines_and_new_files_fire_windows,
        test_idle_timeout_lets_windows_fire_while_a_source_instance_has_no_data,
        test_without_idle_timeout_an_empty_source_instance_holds_windows_back,
        test_idle_timeout_windows_fire_when_the_source_with_data_went_idle_first,
        test_an_ended_input_beside_an_idle_one_lets_every_window_fire,
        test_follow_keeps_dropping_a_too_long_line_across_reopens,
        test_late_rows_are_dropped_by_the_watermark_rule,
        test_late_rows_at_the_exact_watermark_boundary,
        test_processing_time_windows_are_aligned_and_count_every_row,
        test_sliding_windows_match_reference_at_parallelism_2,
        test_sliding_windows_late_rows_only_miss_windows_that_fired,
    ])
