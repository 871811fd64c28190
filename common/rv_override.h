/* rv_override: `--set key=value` overrides of a job file, applied to its
 * text so that every task manager plans exactly what the user ran.
 *
 * A key is a job-level key (`parallelism=4`, `buffer_timeout=10ms`) or
 * `<node id>.<key>` for a key of one source, operator or sink
 * (`logs.path=/data/in`, `gen.count=1000`), or a key of a nested block
 * map of a node or of the job (`gen.fields.ts.rate=100`,
 * `state.backend=memory`; a missing `state` map is added). An existing
 * scalar value is replaced in place; a missing key is added to its block
 * map. The result is validated like any job file. Nested values
 * (maps, lists) and flow-style (`{...}`) nodes cannot be overridden. */
#ifndef RV_OVERRIDE_H
#define RV_OVERRIDE_H

#include <stddef.h>

#include "rv_err.h"

/* Applies sets[0..n) ("key=value") to text; *out (freed with free()) is
 * the new text. Errors name the override. */
rv_err *rv_override_apply(const char *text, size_t len, const char *file, const char *const *sets, int n, char **out,
                          size_t *out_len);

#endif
