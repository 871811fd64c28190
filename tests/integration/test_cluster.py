#!/usr/bin/env python3
"""The cluster as real processes: a rivulet-coordinator and two
rivulet-taskmanager processes (2 slots each) on 127.0.0.1, driven through
the CLI (`rivulet submit/list/status/cancel --coordinator URL`) and
deploy/local-cluster.sh. Results are compared with references computed
here from the same deterministic input; failures (too few slots, a task
manager killed or frozen, garbage on the control and data ports, an
unreachable coordinator) must end in bounded time with a clear error and
leave every other process serving. Every daemon is started by the test,
logs to a file in the test's directory and is killed in a finally block;
every wait has a deadline."""
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import RIVULET, Failure, check, check_eq, main, read_part_files, write_jsonl
from test_e2e import QPS_JOB, compare_windows, crawler_events, qps_reference

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(RIVULET)))
COORDINATOR_BIN = os.path.join(BUILD, "rivulet-coordinator")
TASKMANAGER_BIN = os.path.join(BUILD, "rivulet-taskmanager")
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

HEARTBEAT_TIMEOUT_S = 1.5
SLOT_WAIT_S = 2.0
DAEMON_FLAGS = ["--heartbeat-interval", "200ms", "--heartbeat-timeout", "1500ms", "--slot-wait-timeout", "2s"]


# ---- processes ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def note(msg):
    """A measurement worth seeing in the test log (not a check)."""
    print(f"  {msg}", flush=True)


def wait_until(pred, timeout, what, every=0.05):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            raise Failure(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(every)


class Daemon:
    """A coordinator or task manager process; stderr (its log) goes to a file.
    stdout goes to a second file, or to a pipe read by a thread that only
    starts reading when resume_stdout() is called (pipe_stdout=True)."""

    def __init__(self, name, argv, wd, pipe_stdout=False):
        self.name = name
        self.log_path = wd.join(f"{name}.log")
        self.logf = open(self.log_path, "w")
        self.outf = None
        self.out_lines = []
        self.go = threading.Event()
        self.reader = None
        if pipe_stdout:
            stdout = subprocess.PIPE
        else:
            self.outf = open(wd.join(f"{name}.out"), "w")
            stdout = self.outf
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=self.logf)
        self.pid = self.proc.pid
        if pipe_stdout:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        self.go.wait()
        for line in self.proc.stdout:
            self.out_lines.append(line)

    def resume_stdout(self):
        self.go.set()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def wait_log(self, pattern, timeout, what, count=1):
        """Waits until pattern (a regex) matches `count` times in the log."""
        def seen():
            m = re.findall(pattern, self.log())
            if len(m) >= count:
                return m[-1] if m[-1] else True
            if not self.alive():
                raise Failure(f"{self.name} exited ({self.proc.returncode}) before: {what}; log: {self.log()[-2000:]}")
            return None
        try:
            return wait_until(seen, timeout, what)
        except Failure as e:
            raise Failure(f"{e}; {self.name} log: {self.log()[-2000:]}") from None

    def kill(self):
        """SIGTERM, then SIGKILL after 5 s; idempotent. Returns a problem
        with the shutdown (None if the process was already gone or exited
        0 on SIGTERM)."""
        problem = None
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
                self.proc.terminate()
                rc = self.proc.wait(timeout=5)
                if rc != 0:
                    problem = f"{self.name} exited with {rc} on SIGTERM"
            except subprocess.TimeoutExpired:
                stacks = subprocess.run(["gdb", "-p", str(self.pid), "-batch", "-ex", "thread apply all bt"],
                                        capture_output=True, text=True, timeout=30).stdout
                frames = [l for l in stacks.splitlines() if re.search(r" in (rv_|nng_|nni_|pthread_join|main)", l)]
                self.proc.kill()
                self.proc.wait(timeout=10)
                problem = (f"{self.name} did not stop within 5 s of SIGTERM (killed); its threads: "
                           + " | ".join(frames[:20]) + f"; log tail: {self.log()[-800:]}")
        self.go.set()
        if self.reader:
            self.reader.join(timeout=5)
        self.logf.close()
        if self.outf:
            self.outf.close()
        return problem

    def log_problems(self):
        """Lines of the log that no run may print: sanitizer reports, NNG panics."""
        return [l for l in self.log().splitlines()
                if re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|^panic:", l)]


class Cluster:
    """A coordinator on a free port and task managers registered with it.
    Use as `with Cluster(wd) as c:` so that every process is killed."""

    def __init__(self, wd, tms=("tm-a", "tm-b"), slots=2, pipe_stdout=False, coord_flags=()):
        self.wd = wd
        self.daemons = []
        self.tms = {}
        self.coord = None
        self.url = None
        self.slots = slots
        self.coord_flags = list(coord_flags)
        self.starts = {}
        try:
            self._start_coordinator()
            for name in tms:
                self.start_tm(name, pipe_stdout, wait=False)
            for name in tms:
                self.coord.wait_log(rf"task manager {name} registered", 10, f"{name} to register")
        except BaseException:
            self.stop()
            raise

    def start_tm(self, name, pipe_stdout=False, wait=True):
        """Starts (or starts again) the task manager `name`."""
        n = self.starts[name] = self.starts.get(name, 0) + 1
        self.tms[name] = self._start(name if n == 1 else f"{name}-{n}",
                                     [TASKMANAGER_BIN, "--coordinator", self.url, "--slots", str(self.slots), "--name",
                                      name, "--data-listen", "tcp://127.0.0.1:0"], pipe_stdout)
        if wait:
            self.coord.wait_log(rf"task manager {name} registered", 10, f"{name} to register", count=n)
        return self.tms[name]

    def _start(self, name, argv, pipe_stdout=False):
        d = Daemon(name, argv, self.wd, pipe_stdout)
        self.daemons.append(d)
        return d

    def _start_coordinator(self):
        for attempt in range(5):
            url = f"tcp://127.0.0.1:{free_port()}"
            d = self._start(f"coordinator-{attempt}", [COORDINATOR_BIN, "--listen", url, *DAEMON_FLAGS, *self.coord_flags])

            def up():
                if "listening on" in d.log():
                    return "up"
                if not d.alive():
                    return "exited"
                return None
            if wait_until(up, 10, "the coordinator to listen") == "up":
                self.coord, self.url = d, url
                return
            if not re.search(r"in use", d.log(), re.I):
                raise Failure(f"the coordinator did not start: {d.log()}")
        raise Failure("no free port for the coordinator after 5 attempts")

    def data_port(self, name):
        m = self.tms[name].wait_log(r"data plane tcp://127\.0\.0\.1:(\d+)", 5, f"{name} to log its data address")
        return int(m)

    def stop(self):
        """Stops every process; returns what went wrong on the way."""
        problems = []
        for d in reversed(self.daemons):
            problem = d.kill()
            if problem:
                problems.append(problem)
            problems.extend(f"{d.name} logged: {l}" for l in d.log_problems()[:3])
        return problems

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        problems = self.stop()
        if exc_type is None and problems:  # a failing test reports its own failure first
            raise Failure("unclean shutdown: " + "; ".join(problems))

    # ---- the CLI against this cluster ----

    def cli(self, *args, timeout=30):
        return subprocess.run([RIVULET, *args, "--coordinator", self.url], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def submit(self, yaml_text, name="job.yaml", *extra, wait=False, timeout=60):
        """Submits; returns (job id, CompletedProcess). With wait, --wait."""
        path = self.wd.file(name, yaml_text)
        res = self.cli("submit", path, *extra, *(["--wait"] if wait else []), timeout=timeout)
        lines = res.stdout.split()
        if not wait:
            check_eq(res.returncode, 0, f"submit exit code (stderr: {res.stderr})")
        check(len(lines) == 1 and re.fullmatch(r"[0-9a-f]+", lines[0]), f"submit prints one job id: {res.stdout!r} {res.stderr!r}")
        return lines[0], res

    def status(self, job_id):
        res = self.cli("status", job_id, "--json", timeout=15)
        check_eq(res.returncode, 0, f"status exit code (stderr: {res.stderr})")
        return json.loads(res.stdout)

    def wait_status(self, job_id, pred, timeout, what):
        last = [None]

        def ok():
            last[0] = self.status(job_id)
            return last[0] if pred(last[0]) else None
        try:
            return wait_until(ok, timeout, what, every=0.1)
        except Failure as e:
            raise Failure(f"{e}; last status: {json.dumps(last[0])[:1500]}; coordinator log: {self.coord.log()[-1500:]}") from None

    def wait_final(self, job_id, timeout):
        return self.wait_status(job_id, lambda s: s["state"] in ("FINISHED", "FAILED", "CANCELED"), timeout,
                                f"job {job_id} to end")


# ---- status helpers ----

def subtasks_of(status, first_node):
    """Subtasks of the task whose chain starts with node id first_node."""
    return [s for s in status["subtasks"] if s["chain"].split(" -> ")[0] == first_node]


def total(subtasks, field):
    return sum(s[field] for s in subtasks)


def tms_with_records(subtasks):
    return {s["taskmanager"] for s in subtasks if s["records_in"] > 0}


# ---- jobs ----

STREAM_JOB = """
name: {name}
parallelism: {p}
sources:
  - id: g
    type: generator
    seed: 7
    count: {count}
    rate: {rate}
    batch_size: {batch}
    schema: {{seq: int64, k: string, ts: timestamp}}
    fields:
      seq: {{kind: sequence}}
      k: {{kind: choice, values: [k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11]}}
      ts: {{kind: event_time, rate: 100000}}
    event_time: {{field: ts}}
operators:
  - id: w
    type: window_aggregate
    key_by: [k]
    window: {{tumbling: 1s}}
    aggregates:
      n: count()
sinks:
  - id: out
    type: discard
"""


def stream_job(name, p, count=0, rate=0, batch=1024):
    """generator -> keyed window_aggregate (a hash exchange) -> discard;
    count 0 = unbounded, rate 0 = as fast as possible."""
    return STREAM_JOB.format(name=name, p=p, count=count, rate=rate, batch=batch)


def wait_flowing(c, job_id, tms, timeout=15):
    """Waits until the job is RUNNING and the keyed task has received
    records on every task manager in tms (heartbeat metrics)."""
    return c.wait_status(job_id, lambda s: s["state"] == "RUNNING" and tms_with_records(subtasks_of(s, "w")) >= set(tms),
                         timeout, f"records to flow through the keyed exchange on {sorted(tms)}")


# ---- 1. a keyed job across two task managers ----

def test_keyed_window_job_across_two_task_managers_matches_reference(wd):
    rows = crawler_events(21, 60_000)
    os.makedirs(wd.join("in"))
    for k in range(4):  # four files: four source subtasks read, two on each task manager
        write_jsonl(wd.join("in", f"part-{k}.json"), rows[k::4])
    ok = sum(1 for r in rows if r["status"] == "ok")
    want = qps_reference(rows)
    with Cluster(wd) as c:
        job_id, res = c.submit(QPS_JOB.format(p=4, input=wd.join("in"), output=wd.join("out")), "qps.yaml",
                               wait=True, timeout=60)
        check_eq(res.returncode, 0, f"submit --wait exit code (stderr: {res.stderr})")
        compare_windows(read_part_files(wd.join("out")), want)
        st = c.status(job_id)
        check_eq(st["state"], "FINISHED", "state")
        check_eq(st["error"], "", "error")
        check_eq({s["taskmanager"] for s in st["subtasks"]}, {"tm-a", "tm-b"}, "task managers running subtasks")
        src, win = subtasks_of(st, "events"), subtasks_of(st, "qps")
        check_eq(len(src), 4, "source subtasks")
        check_eq(len(win), 4, "window subtasks")
        check_eq({s["taskmanager"] for s in src}, {"tm-a", "tm-b"}, "source subtasks on both task managers")
        check(all(s["records_in"] > 0 for s in src), f"every source subtask read a file: {src}")
        check_eq(total(src, "records_in"), len(rows), "records read by the sources")
        check_eq(total(src, "records_out"), ok, "records out of the source chain (after the filter)")
        check_eq(total(win, "records_in"), ok, "records into the keyed windows (nothing lost in the exchange)")
        # Each operator exposes its watermark; at the end of a bounded job it is "end of time".
        check_eq([s["watermark"] for s in win], [2**63 - 1] * 4, "watermarks of the window subtasks at the end")
        # Each source file holds every crawler, so keyed subtasks with input on
        # both task managers prove records crossed between the processes.
        check_eq(tms_with_records(win), {"tm-a", "tm-b"}, "task managers whose window subtasks received records")
        res = c.cli("list")
        check_eq(res.returncode, 0, f"list exit code ({res.stderr})")
        check(job_id not in res.stdout, f"a finished job is not listed without --all: {res.stdout!r}")
        res = c.cli("list", "--all")
        check(re.search(rf"{job_id}\s+FINISHED\s", res.stdout), f"list --all shows the job FINISHED: {res.stdout!r}")


# ---- 2. cancel ----

def test_cancel_frees_every_slot_and_a_second_job_runs(wd):
    with Cluster(wd) as c:
        job_id, _ = c.submit(stream_job("endless", 4, rate=20000), "endless.yaml")
        wait_flowing(c, job_id, {"tm-a", "tm-b"})
        t0 = time.time()
        res = c.cli("cancel", job_id)
        check_eq(res.returncode, 0, f"cancel exit code (stderr: {res.stderr})")
        check(job_id in res.stdout, f"cancel confirms: {res.stdout!r}")
        st = c.wait_final(job_id, 10)
        took = time.time() - t0
        check_eq(st["state"], "CANCELED", f"state after cancel (error: {st['error']})")
        note(f"CANCELED {took:.2f}s after `rivulet cancel`")
        check(took < 5, f"canceled within 5 s, took {took:.1f}s")
        res = c.cli("list")
        check(job_id not in res.stdout, f"a canceled job is not listed without --all: {res.stdout!r}")
        res = c.cli("list", "--all")
        check(re.search(rf"{job_id}\s+CANCELED\s", res.stdout), f"list --all shows CANCELED: {res.stdout!r}")
        # The second job needs all four slots: it could not start (and would
        # fail after the slot wait) if any slot of the first were still held.
        second, res = c.submit(stream_job("second", 4, count=40_000), "second.yaml", wait=True, timeout=30)
        check_eq(res.returncode, 0, f"second job exit code (stderr: {res.stderr})")
        st = c.status(second)
        check_eq(total(subtasks_of(st, "g"), "records_in"), 40_000, "records of the second job")
        check_eq(total(subtasks_of(st, "w"), "records_in"), 40_000, "records into its windows")
        res = c.cli("cancel", second)
        check_eq(res.returncode, 0, f"canceling a finished job is harmless (stderr: {res.stderr})")
        check_eq(c.status(second)["state"], "FINISHED", "a finished job stays FINISHED after cancel")
        res = c.cli("cancel", "ffffffff0000")
        check_eq(res.returncode, 1, f"canceling an unknown job fails ({res.stdout!r} {res.stderr!r})")
        check("ffffffff0000" in res.stderr, f"the error names the job: {res.stderr!r}")


# ---- 3. too few slots ----

def test_job_needing_more_slots_than_the_cluster_has_waits_then_fails(wd):
    with Cluster(wd) as c:
        t0 = time.time()
        job_id, _ = c.submit(stream_job("too-wide", 6, count=1000), "wide.yaml")
        waiter = subprocess.Popen([RIVULET, "submit", wd.file("wide2.yaml", stream_job("too-wide-2", 2, count=1000)),
                                   "--parallelism", "6", "--wait", "--coordinator", c.url],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            st = c.status(job_id)
            check_eq(st["state"], "CREATED", "state while waiting for slots")
            st = c.wait_final(job_id, SLOT_WAIT_S + 4)
            took = time.time() - t0
            note(f"FAILED {took:.2f}s after submit: {st['error']}")
            check_eq(st["state"], "FAILED", "state after the slot wait")
            check(SLOT_WAIT_S - 0.3 <= took <= SLOT_WAIT_S + 3, f"failed after about the slot wait (2 s): {took:.2f}s")
            check("not enough free slots" in st["error"], f"error says why: {st['error']!r}")
            check(re.search(r"needs 6\b", st["error"]), f"error names the need (6): {st['error']!r}")
            check("tm-a 2 of 2 free" in st["error"] and "tm-b 2 of 2 free" in st["error"],
                  f"error describes the cluster: {st['error']!r}")
            out, err = waiter.communicate(timeout=SLOT_WAIT_S + 8)
            check_eq(waiter.returncode, 1, f"submit --wait exit code (stderr: {err!r})")
            check("FAILED" in err and "not enough free slots" in err and "needs 6" in err,
                  f"submit --wait says why: {err!r}")
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate(timeout=10)
        # The waiting jobs held no slot: a job using all four runs.
        _, res = c.submit(stream_job("fits", 4, count=1000), "fits.yaml", wait=True, timeout=30)
        check_eq(res.returncode, 0, f"a job that fits runs afterwards (stderr: {res.stderr})")


# ---- 4. a task manager lost during a job ----

def test_sigkilled_task_manager_fails_the_job_and_frees_the_survivor(wd):
    with Cluster(wd) as c:
        job_id, _ = c.submit(stream_job("victim", 4, rate=20000), "victim.yaml")
        wait_flowing(c, job_id, {"tm-a", "tm-b"})
        t0 = time.time()
        os.kill(c.tms["tm-b"].pid, signal.SIGKILL)
        st = c.wait_final(job_id, HEARTBEAT_TIMEOUT_S + 8)
        took = time.time() - t0
        note(f"FAILED {took:.2f}s after SIGKILL: {st['error']}")
        check_eq(st["state"], "FAILED", "state after a task manager died")
        check("tm-b" in st["error"], f"the error names the lost task manager: {st['error']!r}")
        check(took <= HEARTBEAT_TIMEOUT_S + 1.5, f"FAILED within the heartbeat timeout + 1.5 s: took {took:.2f}s")
        check(re.search(r"task manager tm-b lost", c.coord.log()), "the coordinator logs the loss")
        check(c.coord.alive() and c.tms["tm-a"].alive(), "the coordinator and tm-a stay up")
        # tm-a's two slots are free again: a job of parallelism 2 runs there.
        second, res = c.submit(stream_job("survivor", 2, count=20_000), "survivor.yaml", wait=True, timeout=30)
        check_eq(res.returncode, 0, f"a job on the survivor runs (stderr: {res.stderr})")
        st = c.status(second)
        check_eq({s["taskmanager"] for s in st["subtasks"]}, {"tm-a"}, "where the second job ran")
        check_eq(total(subtasks_of(st, "w"), "records_in"), 20_000, "records of the second job")
        res = c.cli("list")
        check_eq(res.stdout.strip().count("\n"), 0, f"no job left running: {res.stdout!r}")


def test_task_managers_reregister_with_a_restarted_coordinator(wd):
    with Cluster(wd) as c:
        old = c.coord
        old.proc.send_signal(signal.SIGTERM)
        old.proc.wait(timeout=10)
        # A new coordinator on the same address: the task managers keep
        # dialing and register again, and jobs run across both.
        d = c._start("coordinator-restarted", [COORDINATOR_BIN, "--listen", c.url, *DAEMON_FLAGS])
        c.coord = d
        for name in c.tms:
            d.wait_log(rf"task manager {name} registered", 10, f"{name} to register with the new coordinator")
        job_id, res = c.submit(stream_job("after-restart", 4, count=40_000), "after.yaml", wait=True, timeout=60)
        check_eq(res.returncode, 0, f"a job runs after the restart (stderr: {res.stderr})")
        st = c.status(job_id)
        check_eq({s["taskmanager"] for s in st["subtasks"]}, {"tm-a", "tm-b"}, "where it ran")
        check_eq(total(subtasks_of(st, "w"), "records_in"), 40_000, "records through the keyed exchange")


def test_frozen_task_manager_is_lost_by_heartbeat_timeout_and_rejoins(wd):
    with Cluster(wd) as c:
        job_id, _ = c.submit(stream_job("frozen", 4, rate=20000), "frozen.yaml")
        wait_flowing(c, job_id, {"tm-a", "tm-b"})
        t0 = time.time()
        os.kill(c.tms["tm-b"].pid, signal.SIGSTOP)  # the connection stays open; heartbeats stop
        try:
            st = c.wait_final(job_id, HEARTBEAT_TIMEOUT_S + 8)
            took = time.time() - t0
            note(f"FAILED {took:.2f}s after SIGSTOP: {st['error']}")
            check_eq(st["state"], "FAILED", "state after a task manager froze")
            check("tm-b" in st["error"] and "heartbeat" in st["error"], f"the error names tm-b and why: {st['error']!r}")
            check(HEARTBEAT_TIMEOUT_S - 0.3 <= took <= HEARTBEAT_TIMEOUT_S + 1.5,
                  f"FAILED after about the heartbeat timeout (1.5 s): took {took:.2f}s")
            _, res = c.submit(stream_job("meanwhile", 2, count=10_000), "meanwhile.yaml", wait=True, timeout=30)
            check_eq(res.returncode, 0, f"a job on tm-a runs while tm-b is frozen (stderr: {res.stderr})")
        finally:
            os.kill(c.tms["tm-b"].pid, signal.SIGCONT)
        # Thawed, tm-b finds its connection dropped and registers again.
        c.coord.wait_log(r"task manager tm-b registered", 10, "tm-b to register again", count=2)
        third, res = c.submit(stream_job("rejoined", 4, count=20_000), "rejoined.yaml", wait=True, timeout=30)
        check_eq(res.returncode, 0, f"a job on both task managers runs after tm-b rejoined (stderr: {res.stderr})")
        st = c.status(third)
        check_eq({s["taskmanager"] for s in st["subtasks"]}, {"tm-a", "tm-b"}, "where the job ran")
        check_eq(total(subtasks_of(st, "w"), "records_in"), 20_000, "records of the job")


# ---- 5. garbage on the control and data ports ----

SP_PAIR1 = 0x11  # NNG's protocol number of PAIR v1


def sp_header(proto=SP_PAIR1):
    """The 8-byte SP-over-TCP handshake: 00 'S' 'P' 00, protocol, 2 reserved."""
    return bytes([0, ord("S"), ord("P"), 0, proto >> 8, proto & 0xFF, 0, 0])


def sp_frame(body, hops=1):
    """A PAIR1 message over TCP: 64-bit length, then the 32-bit hop count header and the body."""
    payload = struct.pack(">I", hops) + body
    return struct.pack(">Q", len(payload)) + payload


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(num, value):
    """A protobuf field: an int is a varint, bytes are length-delimited."""
    if isinstance(value, int):
        return pb_varint(num << 3) + pb_varint(value)
    return pb_varint(num << 3 | 2) + pb_varint(len(value)) + value


def pb_fields(buf):
    """Top-level (number, value) pairs of a protobuf message."""
    out, i = [], 0

    def varint():
        nonlocal i
        n = shift = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(buf):
        key = varint()
        if key & 7 == 0:
            out.append((key >> 3, varint()))
        elif key & 7 == 2:
            n = varint()
            out.append((key >> 3, buf[i:i + n]))
            i += n
        else:
            raise Failure(f"unexpected wire type {key & 7} in {buf[:64]!r}")
    return out


def list_jobs_envelope(version=1, request_id=77):
    """Envelope{version, request_id, list_jobs: {}} (field numbers of proto/rivulet.proto)."""
    return pb_field(1, version) + pb_field(2, request_id) + pb_field(21, b"")


class RawPeer:
    """A plain TCP connection to an NNG port, speaking SP by hand."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the peer already hung up: that is what most cases expect

    def handshake(self, proto=SP_PAIR1):
        self.send(sp_header(proto))
        got = self.recv_exact(8, 5)
        check_eq(got, sp_header(SP_PAIR1), "the SP handshake of the server")

    def recv_exact(self, n, timeout):
        self.sock.settimeout(timeout)
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                raise Failure(f"connection ended after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def recv_frame(self, timeout=5):
        n = struct.unpack(">Q", self.recv_exact(8, timeout))[0]
        check(4 <= n < 1 << 24, f"frame length {n}")
        return self.recv_exact(n, timeout)[4:]

    def closed_by_peer(self, timeout):
        """True when the server closes the connection within timeout
        (whatever it still sends before is read and ignored)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                if not self.sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False
        return False

    def close(self):
        self.sock.close()


def abuse_port(port, rnd, label, valid_body=None):
    """Sends every kind of garbage to an NNG PAIR1 port, each on a new
    connection, and checks the server hangs up on each. valid_body, when
    given, is a well-formed message the server must answer (proving the
    framing here is right, so the garbage reaches the decoder)."""
    cases = [
        ("random bytes instead of a handshake", lambda p: p.send(bytes(rnd.getrandbits(8) for _ in range(4096)))),
        ("a handshake of another protocol (REQ)", lambda p: p.send(sp_header(0x30) + b"\0" * 64)),
        ("a message too short for the PAIR1 header", lambda p: (p.handshake(), p.send(struct.pack(">Q", 2) + b"\x01\x02"))),
        ("a length-prefixed message of random bytes",
         lambda p: (p.handshake(), p.send(sp_frame(bytes(rnd.getrandbits(8) for _ in range(1000)))))),
        ("a message announcing 1 GiB",
         lambda p: (p.handshake(), p.send(struct.pack(">Q", 1 << 30) + b"\0\0\0\1" + b"x" * 65536))),
        ("an oversized message (9 MiB, sent in full)",
         lambda p: (p.handshake(), p.send(sp_frame(b"\x0a" * (9 << 20))))),
        ("a truncated message", lambda p: (p.handshake(), p.send(struct.pack(">Q", 5000) + b"\0\0\0\1" + b"\x08\x01" * 100))),
    ]
    for what, act in cases:
        p = RawPeer(port)
        try:
            act(p)
            if what == "a truncated message":
                p.close()  # the server sees the connection end mid-message
                continue
            check(p.closed_by_peer(5), f"{label}: the server drops the connection after {what}")
        finally:
            p.close()
    if valid_body is not None:
        p = RawPeer(port)
        try:
            p.handshake()
            p.send(sp_frame(valid_body))
            return pb_fields(p.recv_frame())
        finally:
            p.close()
    return None


def data_frame(ftype, job=0, chan=0, count=0, kind=0, wm=0, payload=b"", magic=b"RVF1", version=1):
    """A data-plane frame (taskmanager/rv_frame.h): 40-byte little-endian header, then the payload."""
    return (magic + bytes([version, ftype]) + b"\0\0" + struct.pack("<QQI", job, chan, count) + bytes([kind, 0, 0, 0])
            + struct.pack("<q", wm) + payload)


def hello_frame(url):
    return data_frame(1, payload=struct.pack("<H", len(url)) + url.encode())


def test_garbage_on_control_and_data_ports_is_dropped_and_logged(wd):
    rnd = random.Random(5)
    with Cluster(wd) as c:
        port = int(c.url.rsplit(":", 1)[1])
        reply = abuse_port(port, rnd, "coordinator", valid_body=list_jobs_envelope())
        check((2, 77) in reply, f"the coordinator answers a well-formed request (request id echoed): {reply}")
        check(any(n == 24 for n, _ in reply), f"... with a reply: {reply}")
        # Well-framed but invalid envelopes: the connection is dropped and logged.
        for what, body, log in [
            ("not protobuf", b"\xff\xff\xff\xff garbage", r"dropping connection \d+: .*not a valid protobuf"),
            ("another protocol version", list_jobs_envelope(version=2), r"dropping connection \d+: .*protocol version 2 from peer"),
            ("an envelope without a body", pb_field(1, 1), r"dropping connection \d+: .*no body"),
            ("a register_tm with 0 slots", pb_field(1, 1) + pb_field(10, pb_field(1, b"evil") + pb_field(2, 0) + pb_field(3, b"tcp://127.0.0.1:9")),
             r"dropping connection \d+: .*register_tm"),
            ("a task manager's message from a client", pb_field(1, 1) + pb_field(16, pb_field(1, b"x")),
             r"unexpected release_job on connection \d+"),
        ]:
            p = RawPeer(port)
            try:
                p.handshake()
                p.send(sp_frame(body))
                check(p.closed_by_peer(5), f"the coordinator drops the connection after {what}")
            finally:
                p.close()
            if log:
                c.coord.wait_log(log, 5, f"the coordinator to log {what}")
        check("task manager evil registered" not in c.coord.log(), "the invalid task manager was not registered")
        for name in ("tm-a", "tm-b"):
            port = c.data_port(name)
            abuse_port(port, rnd, name)
            # Well-framed data-plane frames that are wrong: each is logged and the connection closed.
            for what, frames in [
                ("a bad magic", [data_frame(3, magic=b"XXXX")]),
                ("another frame version", [data_frame(3, version=9)]),
                ("an unknown frame type", [data_frame(77)]),
                ("a DATA frame before HELLO", [data_frame(3, job=1, chan=1, count=0, kind=3)]),
                ("a HELLO with a bad URL", [hello_frame("not a url")]),
                ("a second HELLO", [hello_frame("tcp://127.0.0.1:9"), hello_frame("tcp://127.0.0.1:9")]),
            ]:
                before = len(re.findall(r"data plane: .*closing (the connection|it)", c.tms[name].log()))
                p = RawPeer(port)
                try:
                    p.handshake()
                    for f in frames:
                        p.send(sp_frame(f))
                    check(p.closed_by_peer(5), f"{name} drops the data connection after {what}")
                finally:
                    p.close()
                c.tms[name].wait_log(r"data plane: .*closing (the connection|it)", 5, f"{name} to log {what}", count=before + 1)
            # Frames for a channel that does not exist here are dropped (the connection may stay).
            p = RawPeer(port)
            try:
                p.handshake()
                p.send(sp_frame(hello_frame("tcp://127.0.0.1:9")))
                for kind, payload in [(0, b"\x01\x02\x03"), (0, bytes(rnd.getrandbits(8) for _ in range(5000))), (1, b""), (3, b"")]:
                    p.send(sp_frame(data_frame(3, job=rnd.getrandbits(64), chan=rnd.getrandbits(16), kind=kind, payload=payload)))
                p.send(sp_frame(data_frame(4, job=5, chan=6, count=1 << 30)))  # credit for nothing, and too much
                p.closed_by_peer(0.5)
            finally:
                p.close()
            check(c.tms[name].alive(), f"{name} survives frames for unknown channels")
        for d in c.daemons:
            check(d.alive(), f"{d.name} is still running")
        res = c.cli("list")
        check_eq(res.returncode, 0, f"the coordinator still serves `rivulet list` (stderr: {res.stderr})")
        # Both task managers are still registered and their data planes work.
        _, res = c.submit(stream_job("after-garbage", 4, count=40_000), "after.yaml", wait=True, timeout=30)
        check_eq(res.returncode, 0, f"a job across both task managers runs afterwards (stderr: {res.stderr})")


# ---- 6. memory and backpressure across processes ----

def test_memory_stays_bounded_in_a_fast_cross_process_shuffle(wd):
    n = 20_000_000  # ~600 MB as rows: buffering a third of it would break the bound
    with Cluster(wd) as c:
        job_id, _ = c.submit(stream_job("shuffle", 4, count=n, batch=4096), "shuffle.yaml")
        peak = {name: 0 for name in c.tms}
        done = threading.Event()

        def sample():  # every 10 ms while the job runs
            while not done.is_set():
                for name, d in c.tms.items():
                    peak[name] = max(peak[name], rss_kib(d.pid))
                time.sleep(0.01)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            st = c.wait_final(job_id, 60)
        finally:
            done.set()
            sampler.join(5)
        note(f"{n} records in {(st['end_time_ms'] - st['start_time_ms']) / 1000:.2f}s; peak RSS "
             + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in sorted(peak.items())))
        check_eq(st["state"], "FINISHED", f"state (error: {st['error']})")
        check_eq(total(subtasks_of(st, "g"), "records_in"), n, "records made by the sources")
        check_eq(total(subtasks_of(st, "w"), "records_in"), n, "records into the keyed windows (nothing lost)")
        check_eq(tms_with_records(subtasks_of(st, "w")), {"tm-a", "tm-b"}, "window subtasks with input, by task manager")
        for name, kib in peak.items():
            check(0 < kib < 200 * 1024, f"peak RSS of {name}: {kib / 1024:.1f} MiB, want < 200 MiB")


SLOW_SINK_JOB = """
name: slow-sink
parallelism: 4
sources:
  - id: g
    type: generator
    seed: 3
    count: {n}
    batch_size: 256
    schema: {{seq: int64, k: string}}
    fields:
      seq: {{kind: sequence}}
      k: {{kind: choice, values: [a, b, c, d, e]}}
sinks:
  - id: out
    type: stdout
    parallelism: 1
"""


def test_slow_sink_on_one_task_manager_throttles_sources_on_the_other(wd):
    """The single stdout sink subtask prints on its task manager's stdout, a
    pipe this test does not read at first: the sink blocks, its inbox fills,
    credits stop, and the source subtasks on the other task manager must
    stop too (not buffer everything). Then the pipe is read: every record
    arrives exactly once."""
    n = 400_000
    with Cluster(wd, pipe_stdout=True) as c:
        job_id, _ = c.submit(SLOW_SINK_JOB.format(n=n), "slow.yaml")
        st = c.wait_status(job_id, lambda s: s["state"] == "RUNNING" and all(x["taskmanager"] for x in s["subtasks"]),
                           10, "the job to run")
        sink_tm = subtasks_of(st, "out")[0]["taskmanager"]
        other = ({"tm-a", "tm-b"} - {sink_tm}).pop()
        remote_sources = [x["subtask"] for x in subtasks_of(st, "g") if x["taskmanager"] == other]
        check_eq(len(remote_sources), 2, f"source subtasks on {other}")
        share = n // 2  # what the sources on `other` make in all

        def remote_made():
            s = c.status(job_id)
            check_eq(s["state"], "RUNNING", "state while the sink is blocked")
            return sum(x["records_in"] for x in subtasks_of(s, "g") if x["subtask"] in remote_sources)
        # Stalled: no progress over one second (five heartbeats).
        readings = [remote_made()]
        deadline = time.time() + 20
        while True:
            time.sleep(1.0)
            readings.append(remote_made())
            if readings[-1] == readings[-2] and readings[-1] > 0:
                break
            check(time.time() < deadline, f"the sources on {other} never stalled: {readings}")
        stalled = readings[-1]
        note(f"sink on {sink_tm}; sources on {other} stalled at {stalled} of {share} records (readings {readings})")
        check(stalled < share // 4, f"sources on {other} stopped early ({stalled} of {share} records), not buffered everything")
        peak = {name: rss_kib(d.pid) for name, d in c.tms.items()}
        note("RSS while blocked: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in sorted(peak.items())))
        for name, kib in peak.items():
            check(0 < kib < 200 * 1024, f"RSS of {name} while blocked: {kib / 1024:.1f} MiB, want < 200 MiB")
        for d in c.tms.values():
            d.resume_stdout()
        st = c.wait_final(job_id, 60)
        check_eq(st["state"], "FINISHED", f"state after the sink caught up (error: {st['error']})")
        sink = c.tms[sink_tm]
        wait_until(lambda: len(sink.out_lines) >= n, 10, "the sink's output to be read")
        check_eq(c.tms[other].out_lines, [], f"nothing printed on {other}")
        seqs = sorted(json.loads(line)["seq"] for line in sink.out_lines)
        check_eq(len(seqs), n, "rows printed")
        check(seqs == list(range(n)), "every record printed exactly once")


# ---- 7. an unreachable coordinator ----

def test_unreachable_coordinator_is_a_one_line_error_within_seconds(wd):
    silent = socket.socket()  # accepts TCP connections but never speaks
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent_url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    job = wd.file("j.yaml", stream_job("j", 1, count=10))
    cases = [
        (["list", "--coordinator", "tcp://127.0.0.1:1"], None, "tcp://127.0.0.1:1"),
        (["submit", job, "--coordinator", "tcp://127.0.0.1:1"], None, "tcp://127.0.0.1:1"),
        (["status", "abc", "--coordinator", silent_url], None, silent_url),
        (["cancel", "abc"], "tcp://127.0.0.1:1", "tcp://127.0.0.1:1"),  # the address from RIVULET_COORDINATOR
    ]
    results = [None] * len(cases)

    def run(i, args, env_coord):
        env = dict(os.environ)
        env.pop("RIVULET_COORDINATOR", None)
        if env_coord:
            env["RIVULET_COORDINATOR"] = env_coord
        t0 = time.time()
        try:
            res = subprocess.run([RIVULET, *args], capture_output=True, text=True, timeout=15, env=env,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            res = None
        results[i] = (res, time.time() - t0)
    try:
        # The cases run at once: each may take the CLI's whole connect wait.
        threads = [threading.Thread(target=run, args=(i, a, e), daemon=True) for i, (a, e, _) in enumerate(cases)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        silent.close()
    for (args, _, url), (res, took) in zip(cases, results):
        check(res is not None, f"rivulet {' '.join(args)} hangs (> 15 s)")
        check_eq(res.returncode, 1, f"exit code of rivulet {args[0]} (stderr: {res.stderr!r})")
        check(took < 5, f"rivulet {args[0]} gives up within 5 s: took {took:.1f}s")
        check_eq(res.stderr.count("\n"), 1, f"one line of error from rivulet {args[0]}: {res.stderr!r}")
        check(url in res.stderr and "coordinator" in res.stderr, f"the error names the address: {res.stderr!r}")
        check_eq(res.stdout, "", f"nothing on stdout from rivulet {args[0]}")


# ---- 8. deploy/local-cluster.sh ----

def test_local_cluster_script_starts_serves_and_stops_exactly_its_processes(wd):
    run_dir = wd.join("run")
    env = dict(os.environ, RIVULET_RUN_DIR=run_dir, RIVULET_BIN=BUILD, RIVULET_SLOTS="2",
               RIVULET_COORDINATOR=f"tcp://127.0.0.1:{free_port()}")
    script = os.path.join(REPO, "deploy", "local-cluster.sh")

    def sh(*args, timeout=30):
        return subprocess.run([script, *args], capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    # A coordinator the script did not start, which `stop` must leave alone.
    bystander = Daemon("bystander", [COORDINATOR_BIN, "--listen", f"tcp://127.0.0.1:{free_port()}"], wd)
    pids = {}
    try:
        res = sh("start", "2")
        check_eq(res.returncode, 0, f"start exit code (stdout {res.stdout!r}, stderr {res.stderr!r})")
        for name in ("coordinator", "tm-0", "tm-1"):
            with open(os.path.join(run_dir, f"{name}.pid")) as f:
                pids[name] = int(f.read().strip())
        check(all(pid_alive(p) for p in pids.values()), f"every started process runs: {pids}")
        res = sh("status")
        check_eq(res.returncode, 0, f"status exit code ({res.stderr!r})")
        for name, pid in pids.items():
            check(f"{name}: running (pid {pid})" in res.stdout, f"status shows {name}: {res.stdout!r}")
        res = subprocess.run([RIVULET, "submit", wd.file("j.yaml", stream_job("scripted", 4, count=20_000)), "--wait"],
                             capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
        check_eq(res.returncode, 0, f"a job submitted to the local cluster finishes (stderr: {res.stderr!r})")
        res = sh("stop")
        check_eq(res.returncode, 0, f"stop exit code ({res.stderr!r})")
        wait_until(lambda: not any(pid_alive(p) for p in pids.values()), 10, "the started processes to end")
        check(bystander.alive(), "stop leaves a coordinator it did not start running")
        check_eq(sorted(f for f in os.listdir(run_dir) if f.endswith(".pid")), [], "pid files left after stop")
        res = sh("status")
        check("nothing started" in res.stdout, f"status after stop: {res.stdout!r}")
    finally:
        for pid in pids.values():
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        bystander.kill()


if __name__ == "__main__":
    main([
        test_keyed_window_job_across_two_task_managers_matches_reference,
        test_cancel_frees_every_slot_and_a_second_job_runs,
        test_job_needing_more_slots_than_the_cluster_has_waits_then_fails,
        test_sigkilled_task_manager_fails_the_job_and_frees_the_survivor,
        test_frozen_task_manager_is_lost_by_heartbeat_timeout_and_rejoins,
        test_task_managers_reregister_with_a_restarted_coordinator,
        test_garbage_on_control_and_data_ports_is_dropped_and_logged,
        test_memory_stays_bounded_in_a_fast_cross_process_shuffle,
        test_slow_sink_on_one_task_manager_throttles_sources_on_the_other,
        test_unreachable_coordinator_is_a_one_line_error_within_seconds,
        test_local_cluster_script_starts_serves_and_stops_exactly_its_processes,
    ])
