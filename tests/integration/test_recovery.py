#!/usr/bin/env python3
"""Checkpoints and recovery with real processes: a rivulet-coordinator with
a checkpoint directory and three rivulet-taskmanager processes on
127.0.0.1. Task managers are killed with SIGKILL while a keyed window job
runs (also right after a checkpoint was triggered); the job restarts from
its latest checkpoint on the survivors and the exactly-once file sink's
visible output must equal a reference computed here from the same
deterministic input — nothing lost, nothing duplicated. Also: at-least-once
loses nothing, a damaged checkpoint is skipped for the previous one, and
restart strategies end in FAILED with the cause once attempts run out."""
import collections
import os
import random
import re
import signal
import time

from harness import Failure, check, check_eq, main, read_part_files, rivulet, run_job, write_jsonl
from test_cluster import Cluster, note, wait_until

BASE_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
KEYS = 97

# The keyed window and exactly-once sink every job here ends with.
WINDOW_TO_FILE = """  - id: win
    type: window_aggregate
    key_by: [k]
    window: {{tumbling: 1s}}
    aggregates: {{n: count(), total: sum(v)}}
sinks:
  - id: out
    type: file
    path: {output}
"""

# A generator whose every value is computable here: record i has v = i,
# k = i % KEYS and event time BASE_TS + floor(i * 1000 / EVENT_RATE).
GEN_JOB = """
name: {name}
parallelism: 3
checkpointing: {{interval: {interval}, mode: {mode}}}
restart: {{strategy: fixed_delay, attempts: 20, delay: {delay}}}
sources:
  - id: gen
    type: generator
    count: {count}
    rate: {rate}
    schema: {{v: int64, ts: timestamp}}
    fields:
      v: {{kind: sequence}}
      ts: {{kind: event_time, start: "2024-01-01T00:00:00Z", rate: {event_rate}}}
    event_time: {{field: ts, max_out_of_orderness: 0s}}
operators:
  - id: keyed
    type: map
    select: {{k: v % {keys}, v: v, ts: ts}}
""" + WINDOW_TO_FILE

EVENT_RATE = 10_000


def gen_reference(count, event_rate=EVENT_RATE, keys=KEYS):
    acc = collections.defaultdict(lambda: [0, 0])
    for i in range(count):
        ts = BASE_TS + i * 1000 // event_rate
        a = acc[(i % keys, ts // 1000 * 1000)]
        a[0] += 1
        a[1] += i
    return acc


def window_rows(directory):
    """{(k, window_start): row} of the visible output; a window twice is a failure."""
    got = {}
    for r in read_part_files(directory):
        key = (r["k"], r["window_start"])
        check(key not in got, f"window {key} is in the output twice: {got.get(key)} and {r}")
        got[key] = r
    return got


def check_exact(directory, want):
    got = window_rows(directory)
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    check(not missing and not extra, f"windows missing {missing}, unexpected {extra} "
          f"({len(got)} windows, want {len(want)})")
    for key, (n, total) in want.items():
        check_eq((got[key]["n"], got[key]["total"]), (n, total), f"window {key} (n, total)")


def hidden_files(directory):
    return [n for n in os.listdir(directory) if n.startswith(".")] if os.path.isdir(directory) else []


def checkpoints_done(cluster, job_id):
    return len(re.findall(rf"job {job_id}: checkpoint \d+ complete", cluster.coord.log()))


def kill_and_replace(cluster, name, why):
    """SIGKILL task manager `name`, then start it again (so the cluster keeps
    its slots for the next kill)."""
    os.kill(cluster.tms[name].pid, signal.SIGKILL)
    cluster.tms[name].proc.wait(timeout=10)
    note(f"killed {name} ({why})")
    cluster.start_tm(name)


def run_chaos(wd, mode, kills):
    count, rate = 600_000, 60_000  # about 10 s of input
    out = wd.join("out")
    chk = wd.join("checkpoints")
    with Cluster(wd, tms=("tm-a", "tm-b", "tm-c"), slots=2, coord_flags=["--checkpoint-dir", chk, "-v"]) as c:
        job_id, _ = c.submit(GEN_JOB.format(name=f"chaos-{mode}", interval="300ms", mode=mode, delay="100ms",
                                            count=count, rate=rate, event_rate=EVENT_RATE, keys=KEYS, output=out))
        rnd = random.Random(5)
        t0 = time.time()
        for n in range(kills):
            victim = rnd.choice(sorted(c.tms))
            if n == 1:
                # Right after a trigger: the checkpoint is in flight.
                seen = len(re.findall(rf"job {job_id}: checkpoint \d+ triggered", c.coord.log()))
                c.coord.wait_log(rf"job {job_id}: checkpoint \d+ triggered", 20, "a checkpoint trigger", count=seen + 1)
                kill_and_replace(c, victim, "during a checkpoint")
            else:
                before = checkpoints_done(c, job_id)
                time.sleep(rnd.uniform(0.5, 2.0))
                wait_until(lambda: checkpoints_done(c, job_id) > before, 20, "a checkpoint to complete")
                kill_and_replace(c, victim, f"{time.time() - t0:.1f}s in")
            c.wait_status(job_id, lambda s: s["state"] == "RUNNING" and s["restarts"] >= n + 1, 30,
                          f"restart {n + 1} to run")
        st = c.wait_final(job_id, 120)
        check_eq(st["state"], "FINISHED", f"final state (error: {st['error']})")
        check(st["restarts"] >= kills, f"restarts {st['restarts']} >= {kills}")
        note(f"{mode}: {st['restarts']} restarts, last failure: {st['last_failure']}, "
             f"{checkpoints_done(c, job_id)} checkpoints, {time.time() - t0:.1f}s")
        recoveries = re.findall(r"resuming from checkpoint (\d+)", c.coord.log())
        check(len(recoveries) >= 1, f"the job resumed from a checkpoint at least once: {c.coord.log()[-3000:]}")
    return out, gen_reference(count)


def test_sigkilled_task_managers_exactly_once_output_equals_reference(wd):
    out, want = run_chaos(wd, "exactly_once", kills=3)
    check_exact(out, want)
    check_eq(hidden_files(out), [], "no in-progress or pending files left")


def test_sigkilled_task_managers_at_least_once_loses_nothing(wd):
    """Without alignment a window may fire again after a recovery with the
    records replayed into it (a second, partial row): every record must be
    counted in some row of its window."""
    out, want = run_chaos(wd, "at_least_once", kills=2)
    got = collections.defaultdict(lambda: [0, 0])
    for r in read_part_files(out):
        g = got[(r["k"], r["window_start"])]
        g[0] += r["n"]
        g[1] += r["total"]
    missing = sorted(set(want) - set(got))[:5]
    check(not missing, f"windows lost: {missing}")
    for key, (n, total) in want.items():
        check(got[key][0] >= n and got[key][1] >= total, f"window {key}: rows sum to {got[key]}, less than ({n}, {total})")


FILE_JOB = """
name: files
parallelism: 3
checkpointing: {{interval: 200ms}}
restart: {{strategy: fixed_delay, attempts: 5, delay: 100ms}}
sources:
  - id: events
    type: file
    path: {input}
    format: json
    schema: {{ts: timestamp, k: int64, v: int64}}
    event_time: {{field: ts, max_out_of_orderness: 0s}}
operators:
""" + WINDOW_TO_FILE


def test_file_source_resumes_at_its_offsets_after_a_kill(wd):
    """Twelve input files read by three instances; a task manager is killed
    once a checkpoint covers part of the input. Every file's rows are
    counted exactly once."""
    indir = wd.join("in")
    os.makedirs(indir)
    rows_per_file, files = 150_000, 12
    want = collections.defaultdict(lambda: [0, 0])
    for f in range(files):
        rows = []
        for j in range(rows_per_file):
            i = f * rows_per_file + j
            r = {"ts": BASE_TS + f * 100_000 + j // 2, "k": i % KEYS, "v": i}
            rows.append(r)
            a = want[(r["k"], r["ts"] // 1000 * 1000)]
            a[0] += 1
            a[1] += i
        write_jsonl(os.path.join(indir, f"part-{f:02d}.json"), rows)
    out = wd.join("out")
    with Cluster(wd, tms=("tm-a", "tm-b", "tm-c"), slots=2, coord_flags=["--checkpoint-dir", wd.join("chk")]) as c:
        job_id, _ = c.submit(FILE_JOB.format(input=indir, output=out))
        c.coord.wait_log(rf"job {job_id}: checkpoint \d+ complete", 30, "a first checkpoint")
        st = c.status(job_id)
        if st["state"] == "RUNNING":
            kill_and_replace(c, "tm-a", "mid-input")
        st = c.wait_final(job_id, 120)
        check_eq(st["state"], "FINISHED", f"final state (error: {st['error']})")
        note(f"restarts: {st['restarts']}")
    check_exact(out, want)


def test_damaged_latest_checkpoint_is_skipped_for_the_previous_one(wd):
    count = 400_000
    out, chk = wd.join("out"), wd.join("chk")
    with Cluster(wd, tms=("tm-a", "tm-b"), slots=2, coord_flags=["--checkpoint-dir", chk]) as c:
        job_id, _ = c.submit(GEN_JOB.format(name="damaged", interval="300ms", mode="exactly_once", delay="3s",
                                            count=count, rate=50_000, event_rate=EVENT_RATE, keys=KEYS, output=out))
        c.coord.wait_log(rf"job {job_id}: checkpoint \d+ complete", 30, "checkpoints", count=3)
        os.kill(c.tms["tm-b"].pid, signal.SIGKILL)
        c.wait_status(job_id, lambda s: s["state"] == "RESTARTING", 10, "the job to wait for its restart")
        # No checkpoint completes while the job waits: damage the newest.
        jobdir = os.path.join(chk, job_id)
        done = sorted((int(d.split("-")[1]) for d in os.listdir(jobdir)
                       if os.path.exists(os.path.join(jobdir, d, "_metadata"))))
        check(len(done) >= 2, f"two complete checkpoints retained: {os.listdir(jobdir)}")
        newest = os.path.join(jobdir, f"chk-{done[-1]}")
        states = [n for n in os.listdir(newest) if n.endswith(".state")]
        check(states, f"state files in {newest}: {os.listdir(newest)}")
        with open(os.path.join(newest, states[0]), "r+b") as f:
            f.truncate(max(0, os.path.getsize(os.path.join(newest, states[0])) // 2))
        c.start_tm("tm-b")
        c.coord.wait_log(rf"resuming from checkpoint {done[-2]}\b", 20, f"the job to resume from checkpoint {done[-2]}")
        check(re.search(rf"checkpoint {done[-1]} of job {job_id} is damaged, trying an older one: .*bytes", c.coord.log()),
              f"the coordinator says why chk-{done[-1]} was skipped: {c.coord.log()[-2000:]}")
        st = c.wait_final(job_id, 120)
        check_eq(st["state"], "FINISHED", f"final state (error: {st['error']})")
    check_exact(out, gen_reference(count))


def test_spilled_rocksdb_state_is_checkpointed_incrementally_and_restored_exactly(wd):
    """Keyed state far above its memory budget lives in RocksDB: checkpoints
    are RocksDB checkpoints whose SST files go once into shared/; a killed
    task manager's subtasks are rebuilt from them."""
    count, keys = 400_000, 5003
    out, chk = wd.join("out"), wd.join("chk")
    job = GEN_JOB.format(name="spilled", interval="500ms", mode="exactly_once", delay="100ms", count=count,
                         rate=50_000, event_rate=EVENT_RATE, keys=keys, output=out)
    job = job.replace("sources:", "state: {backend: rocksdb, memory_budget: 64KiB}\nsources:", 1)
    with Cluster(wd, tms=("tm-a", "tm-b", "tm-c"), slots=2, coord_flags=["--checkpoint-dir", chk]) as c:
        job_id, _ = c.submit(job)
        c.coord.wait_log(rf"job {job_id}: checkpoint \d+ complete", 30, "checkpoints", count=3)
        shared = os.path.join(chk, job_id, "shared")
        wait_until(lambda: os.path.isdir(shared) and any(n.endswith(".sst") for n in os.listdir(shared)), 20,
                   "SST files in the shared area")
        kill_and_replace(c, "tm-b", "with spilled state")
        st = c.wait_final(job_id, 120)
        check_eq(st["state"], "FINISHED", f"final state (error: {st['error']})")
        check(st["restarts"] >= 1, "the job restarted")
        written = [(int(a), int(b)) for a, b in
                   re.findall(rf"job {job_id}: checkpoint \d+ complete .* (\d+) bytes of state, (\d+) written", c.coord.log())]
        check(any(w < total for total, w in written), f"some checkpoint wrote less than its state: {written}")
        for name in os.listdir(shared):
            refs = 0
            for d in os.listdir(os.path.join(chk, job_id)):
                mpath = os.path.join(chk, job_id, d, "_metadata")
                if os.path.exists(mpath) and name.encode() in open(mpath, "rb").read():
                    refs += 1
            check(refs > 0, f"shared/{name} is referred to by a retained checkpoint")
    check_exact(out, gen_reference(count, keys=keys))
    check_eq(hidden_files(out), [], "no in-progress or pending files left")


BAD_JOB = """
name: flaky
checkpointing: {{interval: 100ms}}
restart: {{strategy: {strategy}, attempts: {attempts}, delay: 200ms, max_delay: 1s}}
sources:
  - id: events
    type: file
    path: {input}
    format: json
    schema: {{k: int64}}
    on_error: fail
sinks:
  - id: out
    type: file
    path: {output}
"""


def test_restarts_follow_the_strategy_then_fail_with_the_cause(wd):
    inp = wd.file("in.json", "".join(f'{{"k": {i}}}\n' for i in range(1000)) + "not json\n")
    for strategy, attempts, min_s in (("fixed_delay", 2, 0.4), ("exponential", 3, 0.2 + 0.4 + 0.8)):
        t0 = time.time()
        res = run_job(wd, BAD_JOB.format(strategy=strategy, attempts=attempts, input=inp, output=wd.join(f"o-{strategy}")),
                      name=f"{strategy}.yaml", timeout=60)
        took = time.time() - t0
        check_eq(res.returncode, 1, f"{strategy}: exit code (stderr: {res.stderr[-1500:]})")
        check("bad record" in res.stderr and f"gave up after {attempts} restart" in res.stderr,
              f"{strategy}: the error names the cause and the attempts: {res.stderr[-1500:]}")
        check(took >= min_s, f"{strategy}: {attempts} restarts took {took:.2f}s, at least {min_s}s of delays")
    res = run_job(wd, BAD_JOB.format(strategy="none", attempts=5, input=inp, output=wd.join("o-none")), name="none.yaml")
    check_eq(res.returncode, 1, "strategy none: exit code")
    check("gave up" not in res.stderr and "bad record" in res.stderr, f"strategy none fails at once: {res.stderr[-800:]}")


def test_checkpointing_without_a_checkpoint_directory_is_refused(wd):
    with Cluster(wd, tms=("tm-a",)) as c:
        path = wd.file("job.yaml", GEN_JOB.format(name="nodir", interval="1s", mode="exactly_once", delay="1s",
                                                  count=10, rate=0, event_rate=EVENT_RATE, keys=KEYS,
                                                  output=wd.join("out")))
        res = c.cli("submit", path)
        check(res.returncode != 0 and "checkpoint" in res.stderr and "--checkpoint-dir" in res.stderr,
              f"a clear refusal: {res.returncode} {res.stderr}")


# The source stays at parallelism 1 (a generator cannot change it); the
# keyed window and the sink follow the job's parallelism, so a savepoint
# taken at one parallelism and resumed at another redistributes key groups
# and the sink's pending files.
RESCALE_JOB = GEN_JOB.replace("    type: generator\n", "    type: generator\n    parallelism: 1\n")


def read_savepoint_path(res, what):
    check_eq(res.returncode, 0, f"{what}: exit code (stderr: {res.stderr})")
    path = res.stdout.strip()
    check(os.path.exists(os.path.join(path, "_metadata")), f"{what}: prints the savepoint's directory: {res.stdout!r}")
    return path


def test_savepoint_resumes_at_another_parallelism_with_identical_output(wd):
    count = 300_000
    for p_from, p_to in ((2, 4), (4, 1)):
        out = wd.join(f"out-{p_from}-{p_to}")
        job = RESCALE_JOB.format(name=f"rescale-{p_from}-{p_to}", interval="1s", mode="exactly_once", delay="1s",
                                 count=count, rate=100_000, event_rate=EVENT_RATE, keys=KEYS, output=out)
        job = job.replace("parallelism: 3\n", f"parallelism: {p_from}\n", 1)
        with Cluster(wd, tms=("tm-a", "tm-b"), slots=4, coord_flags=["--checkpoint-dir", wd.join("chk")]) as c:
            job_id, _ = c.submit(job, f"job-{p_from}.yaml")
            c.wait_status(job_id, lambda s: s["state"] == "RUNNING" and any(x["records_in"] > 50_000 for x in s["subtasks"]),
                          20, "the job to be under way")
            res = c.cli("stop", job_id, "--savepoint", wd.join("savepoints"), timeout=60)
            sp = read_savepoint_path(res, "stop --savepoint")
            st = c.wait_final(job_id, 30)
            check_eq(st["state"], "FINISHED", "a stopped job is FINISHED")
            early = len(window_rows(out)) if os.path.isdir(out) else 0
            check(0 < early < len(gen_reference(count)), f"the savepoint was taken mid-run ({early} windows out)")
            ins = rivulet("savepoint", "inspect", sp)
            check_eq(ins.returncode, 0, f"inspect exit code: {ins.stderr}")
            check(re.search(rf"^win\s+{p_from - 1}\s+{p_from}\s", ins.stdout, re.M) and "intact" in ins.stdout,
                  f"inspect lists the window's {p_from} subtasks: {ins.stdout}")
            job2, res2 = c.submit(job, f"job-{p_from}.yaml", "-p", str(p_to), "--from-savepoint", sp, wait=True, timeout=90)
            check_eq(res2.returncode, 0, f"resumed job (stderr: {res2.stderr})")
            st2 = c.status(job2)
            wins = [x for x in st2["subtasks"] if x["chain"].startswith("win")]
            check_eq(len(wins), p_to, "the resumed job's window parallelism")
        note(f"{p_from} -> {p_to}: {early} windows before the savepoint")
        check_exact(out, gen_reference(count))
        check_eq(hidden_files(out), [], "no in-progress or pending files left")


def test_savepoint_refusals_are_clear(wd):
    with Cluster(wd, tms=("tm-a",), slots=4, coord_flags=["--checkpoint-dir", wd.join("chk")]) as c:
        plain = GEN_JOB.format(name="plain", interval="1s", mode="exactly_once", delay="1s", count=10_000_000,
                               rate=10_000, event_rate=EVENT_RATE, keys=KEYS, output=wd.join("o1"))
        nochk = "\n".join(l for l in plain.splitlines() if not l.startswith(("checkpointing", "restart")))
        job_id, _ = c.submit(nochk, "nochk.yaml")
        c.wait_status(job_id, lambda s: s["state"] == "RUNNING", 10, "RUNNING")
        res = c.cli("savepoint", job_id, wd.join("sp"))
        check(res.returncode == 1 and "checkpointing" in res.stderr, f"no savepoint without checkpointing: {res.stderr}")
        c.cli("cancel", job_id)
        job_id, _ = c.submit(plain, "plain.yaml")
        c.wait_status(job_id, lambda s: s["state"] == "RUNNING", 10, "RUNNING")
        sp = read_savepoint_path(c.cli("savepoint", job_id, wd.join("sp"), timeout=60), "savepoint")
        check_eq(c.status(job_id)["state"], "RUNNING", "a savepoint without stop leaves the job running")
        c.cli("cancel", job_id)
        renamed = plain.replace("id: win", "id: win2")
        res = c.cli("submit", wd.file("renamed.yaml", renamed), "--from-savepoint", sp)
        check(res.returncode == 1 and "'win'" in res.stderr and "--allow-non-restored-state" in res.stderr,
              f"state of a node the job lacks is refused: {res.stderr}")
        job2, _ = c.submit(renamed, "renamed.yaml", "--from-savepoint", sp, "--allow-non-restored-state")
        c.wait_status(job2, lambda s: s["state"] == "RUNNING", 10, "the job with dropped state to run")
        c.cli("cancel", job2)
        res = c.cli("submit", wd.file("p.yaml", plain), "--from-savepoint", wd.join("nowhere"))
        check(res.returncode == 1 and "nowhere" in res.stderr, f"a missing savepoint is named: {res.stderr}")


def test_coordinator_killed_and_restarted_resumes_its_job_exactly(wd):
    count = 500_000
    out, chk, state = wd.join("out"), wd.join("chk"), wd.join("coord-state")
    flags = ["--checkpoint-dir", chk, "--state-dir", state]
    with Cluster(wd, tms=("tm-a", "tm-b"), slots=4, coord_flags=flags) as c:
        job_id, _ = c.submit(RESCALE_JOB.format(name="durable", interval="500ms", mode="exactly_once", delay="200ms",
                                                count=count, rate=100_000, event_rate=EVENT_RATE, keys=KEYS, output=out))
        c.coord.wait_log(rf"job {job_id}: checkpoint \d+ complete", 20, "checkpoints", count=2)
        os.kill(c.coord.pid, signal.SIGKILL)
        c.coord.proc.wait(timeout=10)
        note("killed the coordinator")
        old_url = c.url
        port = old_url.rsplit(":", 1)[1]
        d = c._start("coordinator-again", [c.coord.proc.args[0], "--listen", old_url, "--heartbeat-interval", "200ms",
                                           "--heartbeat-timeout", "1500ms", "--slot-wait-timeout", "10s", *flags])
        c.coord = d
        d.wait_log(rf"job {job_id} \(durable\) resumes from its latest checkpoint", 10, "the job to be loaded")
        d.wait_log(r"resuming from checkpoint \d+", 30, f"the job to resume (port {port})")
        st = c.wait_final(job_id, 120)
        check_eq(st["state"], "FINISHED", f"final state (error: {st['error']})")
        lst = c.cli("list", "--all")
        check(job_id in lst.stdout, f"the restarted coordinator lists the job: {lst.stdout}")
    check_exact(out, gen_reference(count))
    check_eq(hidden_files(out), [], "no in-progress or pending files left")


if __name__ == "__main__":
    main([
        test_savepoint_resumes_at_another_parallelism_with_identical_output,
        test_savepoint_refusals_are_clear,
        test_coordinator_killed_and_restarted_resumes_its_job_exactly,
        test_sigkilled_task_managers_exactly_once_output_equals_reference,
        test_sigkilled_task_managers_at_least_once_loses_nothing,
        test_file_source_resumes_at_its_offsets_after_a_kill,
        test_damaged_latest_checkpoint_is_skipped_for_the_previous_one,
        test_spilled_rocksdb_state_is_checkpointed_incrementally_and_restored_exactly,
        test_restarts_follow_the_strategy_then_fail_with_the_cause,
        test_checkpointing_without_a_checkpoint_directory_is_refused,
    ])
