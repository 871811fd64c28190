"""A small harness for Rivulet's integration tests.

Tests are plain functions named test_*; each runs the real `rivulet` binary
(path in $RIVULET) as a separate process on job files written to a fresh
temporary directory, and compares what the job wrote against expectations
the test computes itself from the same input. The run ends with the line
"Tested: N | Passing: P | Failing: F" that deploy/test_summary.py counts."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

RIVULET = os.environ.get("RIVULET", os.path.join(os.path.dirname(__file__), "..", "..", "build", "cli", "rivulet"))


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: got {got!r}, want {want!r}")


class Workdir:
    """A temporary directory for one test, removed afterwards."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="rivulet-it-")

    def file(self, name, text):
        p = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def join(self, *names):
        return os.path.join(self.path, *names)

    def cleanup(self):
        if os.environ.get("RIVULET_KEEP_WORKDIR"):
            print(f"  kept {self.path}", flush=True)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def rivulet(*args, timeout=120, stdin=None):
    """Runs rivulet with args; returns CompletedProcess (text)."""
    return subprocess.run([RIVULET, *args], capture_output=True, text=True, timeout=timeout, stdin=stdin or subprocess.DEVNULL)


def run_job(wd, yaml_text, *extra, timeout=120, name="job.yaml"):
    path = wd.file(name, yaml_text)
    return rivulet("run", "-q", path, *extra, timeout=timeout)


def read_json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def read_part_files(directory):
    """Rows of every finished (non-hidden) part file in a directory."""
    rows = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("."):
            continue
        with open(os.path.join(directory, name)) as f:
            rows.extend(read_json_lines(f.read()))
    return rows


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main(tests):
    """Runs the given test functions; prints the summary line; exits 0/1."""
    only = sys.argv[1:]
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        wd = Workdir()
        start = time.time()
        try:
            t(wd)
            passed += 1
            print(f"PASS {t.__name__} ({time.time() - start:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print(f"FAIL {t.__name__}: {e}", flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
        finally:
            wd.cleanup()
    print(f"Tested: {passed + failed} | Passing: {passed} | Failing: {failed}")
    sys.exit(0 if failed == 0 else 1)
