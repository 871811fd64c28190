#!/usr/bin/env python3
"""Records that do not parse, under each on_error mode (fail, skip,
dead_letter), for JSON and CSV files."""
import json

from harness import check, check_eq, main, read_json_lines, read_part_files, run_job

GOOD = [{"id": i, "name": f"n{i}", "amount": i * 1.5} for i in range(50)]
# (line text, reason fragment) inserted between good lines.
BAD = [
    ('{"id": 1000, "name": "x", "amount": ', "invalid JSON"),
    ('not json at all', "not a JSON object"),
    ('{"id": "seven", "name": "x", "amount": 1.0}', "field 'id'"),
    ('[1, 2, 3]', "not a JSON object"),
    ('{"id": 99999999999999999999999, "name": "x", "amount": 1}', "field 'id'"),
]


def write_mixed(path):
    """Good lines with a bad line after every 10th; returns (lines, bad line numbers)."""
    lines, bad_lines = [], {}
    b = 0
    for i, r in enumerate(GOOD):
        lines.append(json.dumps(r))
        if i % 10 == 9 and b < len(BAD):
            lines.append(BAD[b][0])
            bad_lines[len(lines)] = BAD[b]
            b += 1
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return bad_lines


JOB = """
name: bad-records
sources:
  - id: src
    type: file
    path: {input}
    format: {fmt}
    on_error: {mode}
    schema: {{id: int64, name: string, amount: float64}}
sinks:
  - id: good
    type: stdout
{extra}
"""


def test_on_error_fail_stops_the_job_naming_file_line_and_reason(wd):
    bad = write_mixed(wd.join("in.json"))
    res = run_job(wd, JOB.format(input=wd.join("in.json"), fmt="json", mode="fail", extra=""))
    check_eq(res.returncode, 1, "exit code")
    first = min(bad)
    check(f"in.json:{first}" in res.stderr, f"error names in.json:{first}: {res.stderr!r}")
    check(bad[first][1] in res.stderr, f"error gives the reason {bad[first][1]!r}: {res.stderr!r}")


def test_on_error_skip_drops_bad_lines_and_keeps_every_good_one(wd):
    write_mixed(wd.join("in.json"))
    res = run_job(wd, JOB.format(input=wd.join("in.json"), fmt="json", mode="skip", extra=""))
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    check_eq(sorted(read_json_lines(res.stdout), key=lambda r: r["id"]), GOOD, "good rows")


def test_on_error_dead_letter_routes_raw_text_and_reason(wd):
    bad = write_mixed(wd.join("in.json"))
    extra = f"""  - id: dlq
    type: file
    input: src.dead_letter
    path: {wd.join('dlq')}
"""
    res = run_job(wd, JOB.format(input=wd.join("in.json"), fmt="json", mode="dead_letter", extra=extra))
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    check_eq(sorted(read_json_lines(res.stdout), key=lambda r: r["id"]), GOOD, "good rows")
    dead = read_part_files(wd.join("dlq"))
    check_eq(len(dead), len(bad), "dead letters")
    by_loc = {d["location"]: d for d in dead}
    for line_no, (text, reason) in bad.items():
        loc = f"{wd.join('in.json')}:{line_no}"
        check(loc in by_loc, f"dead letter for {loc} (have {sorted(by_loc)})")
        d = by_loc[loc]
        check_eq(d["raw"], text, f"raw text at {loc}")
        check(reason in d["reason"], f"reason at {loc}: {d['reason']!r} should contain {reason!r}")
        check_eq(d["source"], "src", "source id")


def test_csv_bad_rows_are_skipped_and_counted(wd):
    rows = ["id,name,amount"]
    want = []
    for i in range(30):
        rows.append(f"{i},n{i},{i * 2.5}")
        want.append({"id": i, "name": f"n{i}", "amount": i * 2.5})
        if i % 7 == 0:
            rows.append(f"{i},too,many,cells")
            rows.append(f"x{i},bad,1.0")
    with open(wd.join("in.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    res = run_job(wd, JOB.format(input=wd.join("in.csv"), fmt="csv", mode="skip", extra=""))
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")
    check_eq(sorted(read_json_lines(res.stdout), key=lambda r: r["id"]), want, "good rows")
    check("skipped" in res.stderr or res.stderr == "", "skip is reported as a warning at most")


def test_dead_letter_without_a_consumer_is_rejected(wd):
    res = run_job(wd, JOB.format(input=wd.join("in.json"), fmt="json", mode="dead_letter", extra=""))
    check_eq(res.returncode, 2, "exit code")
    check("needs a sink reading 'input: src.dead_letter'" in res.stderr, f"message: {res.stderr!r}")


if __name__ == "__main__":
    main([
        test_on_error_fail_stops_the_job_naming_file_line_and_reason,
        test_on_error_skip_drops_bad_lines_and_keeps_every_good_one,
        test_on_error_dead_letter_routes_raw_text_and_reason,
        test_csv_bad_rows_are_skipped_and_counted,
        test_dead_letter_without_a_consumer_is_rejected,
    ])
