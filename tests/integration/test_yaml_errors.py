#!/usr/bin/env python3
"""`rivulet validate` on job files with one mistake each: the exact message
and its line:column. Each case starts from a valid job and changes one
thing; the expected positions were worked out by hand from the text."""
from harness import check_eq, main, rivulet

BASE = """name: t
sources:
  - id: src
    type: generator
    count: 10
    schema: {ts: timestamp, n: int64, s: string}
    fields:
      ts: {kind: event_time}
      n: {kind: sequence}
      s: {kind: choice, values: [a, b]}
operators:
  - id: f
    type: filter
    where: n > 3
sinks:
  - id: out
    type: stdout
"""


def edit(old, new, text=BASE):
    assert old in text, old
    return text.replace(old, new, 1)


WINDOW = edit("    type: filter\n    where: n > 3\n",
              "    type: window_aggregate\n    key_by: [s]\n    window: {tumbling: 10s}\n    aggregates:\n      c: count()\n")

CASES = [
    # (name, yaml text, expected stderr line without the file name)
    ("tab_indentation", "name: t\nsources:\n\t- id: x\n",
     "3:1: found character that cannot start any token (while scanning for the next token); tabs cannot be used for indentation"),
    ("bad_indentation", "name: t\nsources:\n  - id: x\n   type: generator\n",
     "4:4: did not find expected '-' indicator (while parsing a block collection at line 3, column 3)"),
    ("unknown_job_key", edit("sources:", "parralelism: 2\nsources:"),
     "2:1: job: unknown key 'parralelism' (did you mean 'parallelism'?)"),
    ("missing_name", BASE.replace("name: t\n", ""),
     "1:1: job: missing required key 'name'"),
    ("unknown_operator_type", edit("type: filter", "type: fitler"),
     "13:11: operator 'f': unknown operator type 'fitler' (did you mean 'filter'?)"),
    ("plugin_in_wrong_section", edit("type: stdout", "type: filter"),
     "17:11: sink 'out': 'filter' is an operator, not a sink; move it to 'operators'"),
    ("unknown_input", edit("    type: stdout\n", "    type: stdout\n    input: ff\n"),
     "18:12: sink 'out': unknown input 'ff' (did you mean 'f'?)"),
    ("input_is_a_sink", edit("    type: filter\n", "    input: out\n    type: filter\n"),
     "13:12: operator 'f': input 'out' is a sink, which has no output"),
    ("source_with_input", edit("    count: 10\n", "    count: 10\n    input: f\n"),
     "6:5: source 'src': sources take no 'input'"),
    ("duplicate_id", edit("id: f", "id: src"),
     "12:9: duplicate id 'src' (first defined at line 3)"),
    ("unknown_operator_key", edit("    where: n > 3\n", "    where: n > 3\n    wher: 1\n"),
     "15:5: operator 'f': unknown key 'wher' (did you mean 'where'?)"),
    ("unknown_field_in_expression", edit("where: n > 3", "where: nn > 3"),
     "14:12: operator 'f': unknown field 'nn' (did you mean 'n'?)"),
    ("type_error_inside_expression", edit("where: n > 3", 'where: n + "x" > 3'),
     "14:14: operator 'f': operator '+' cannot add int64 and string"),
    ("filter_not_bool", edit("where: n > 3", "where: n + 1"),
     "14:12: operator 'f': 'where' must be a bool expression, but this one is int64"),
    ("unknown_schema_type", edit("n: int64, s", "n: integer, s"),
     "6:32: source 'src': field 'n' has unknown type 'integer' (types: bool, int64, float64, string, timestamp)"),
    ("bad_on_error", edit("    count: 10\n", "    count: 10\n    on_error: ignore\n"),
     "6:15: source 'src': on_error must be one of: fail, skip, dead_letter"),
    ("parallelism_zero", edit("    count: 10\n", "    count: 10\n    parallelism: 0\n"),
     "6:18: source 'src': parallelism must be between 1 and 1024"),
    ("event_time_not_a_timestamp", edit("    count: 10\n", "    count: 10\n    event_time:\n      field: n\n"),
     "7:14: source 'src': event_time field 'n' must have type timestamp, not int64"),
    ("event_time_bad_duration", edit("    count: 10\n", "    count: 10\n    event_time:\n      field: ts\n      max_out_of_orderness: 5 sec\n"),
     "8:29: source 'src': 'event_time.max_out_of_orderness' expects a duration such as 500ms, 10s, 1m or 1h, got '5 sec'"),
    ("missing_key_by", WINDOW.replace("    key_by: [s]\n", ""),
     "12:5: operator 'f': 'window_aggregate' needs 'key_by' (the fields that partition its state)"),
    ("key_by_on_unkeyed_operator", edit("    where: n > 3\n", "    where: n > 3\n    key_by: [s]\n"),
     "15:5: operator 'f': 'filter' is not keyed and takes no 'key_by'"),
    ("cycle", """name: t
sources:
  - id: src
    type: generator
    schema: {n: int64}
    fields: {n: {kind: sequence}}
operators:
  - id: a
    type: filter
    input: b
    where: n > 1
  - id: b
    type: filter
    input: a
    where: n > 2
sinks:
  - id: out
    type: stdout
    input: b
""", "8:5: cycle in the job graph: a <- b <- a"),
    ("multiple_inputs_without_union", edit("    type: stdout\n", "    type: stdout\n    inputs: [src, f]\n"),
     "18:13: sink 'out': 'stdout' takes one input; use a 'union' operator to merge streams"),
    ("input_and_inputs", edit("    type: stdout\n", "    type: stdout\n    input: f\n    inputs: [f]\n"),
     "19:5: sink 'out': give either 'input' or 'inputs', not both"),
    ("unknown_side_output", edit("    type: stdout\n", "    type: stdout\n    input: src.errors\n"),
     "18:12: sink 'out': unknown output 'errors' of 'src' (side outputs: dead_letter of sources, late of window_aggregate)"),
    ("late_output_of_a_source", edit("    type: stdout\n", "    type: stdout\n    input: src.late\n"),
     "18:12: sink 'out': 'src' has no late output (only window_aggregate has one)"),
    ("no_sinks", BASE[:BASE.index("sinks:")] + "sinks: []\n",
     "15:8: a job needs at least one sink"),
    ("sources_not_a_list", "name: t\nsources:\n  id: x\nsinks: []\n",
     "3:3: 'sources' must be a list (items start with '- ')"),
    ("bad_id_characters", edit("id: f", "id: f f"),
     "12:9: operator id 'f f' may contain only letters, digits, '_' and '-'"),
]


def make_test(name, text, want):
    def t(wd):
        path = wd.file(f"{name}.yaml", text)
        res = rivulet("validate", path)
        check_eq(res.returncode, 2, f"{name}: exit code (stdout {res.stdout!r})")
        check_eq(res.stderr.strip(), f"{path}:{want}", name)
    t.__name__ = f"test_{name}"
    return t


def test_valid_base_job_passes(wd):
    res = rivulet("validate", wd.file("ok.yaml", BASE))
    check_eq(res.returncode, 0, f"exit code ({res.stderr})")


if __name__ == "__main__":
    main([test_valid_base_job_passes] + [make_test(*c) for c in CASES])
