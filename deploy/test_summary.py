#!/usr/bin/env python3
"""Counts test cases across meson test logs and prints "N passed, N failed".

Criterion executables report "Synthesis: Tested: T | Passing: P | Failing: F
| Crashing: C"; integration tests print "Tested: T | Passing: P | Failing: F".
A meson test that printed no such line counts as one case (pass or fail by
its result). A test whose counts say all passed but that meson marked as
failed (crash, timeout, sanitizer report) counts one more failure.
Exit status: 0 when nothing failed."""
import json
import re
import sys

# Criterion runs each test in a child process and does not fail a test on a
# sanitizer report, so reports in the output count as failures here.
SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: ")
LINE = re.compile(r"Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+)(?: \| Crashing: (\d+))?")


def main(paths):
    passed = failed = 0
    for path in paths:
        try:
            with open(path) as f:
                entries = [json.loads(l) for l in f if l.strip()]
        except OSError as e:
            print(f"test_summary: cannot read {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        for t in entries:
            ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            m = None
            for m in LINE.finditer(out):
                pass
            if SANITIZER.search(out):
                print(f"test_summary: sanitizer report in {t.get('name')}", file=sys.stderr)
                ok = False
                failed += 1
            if m:
                p = int(m.group(2))
                f_ = int(m.group(3)) + int(m.group(4) or 0)
                if t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and f_ == 0:
                    f_ = 1
                passed += p
                failed += f_
            elif ok:
                passed += 1
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
