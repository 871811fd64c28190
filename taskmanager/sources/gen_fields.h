/* gen_fields: the per-field value generators of the `generator` source:
 * parsed from the YAML `fields` map, and computed deterministically.
 *
 * The value of field f (its index in the declared schema) of record number
 * i (0-based over the whole source, across all parallel instances) is a pure
 * function of (seed, i, f): it does not depend on parallelism, batch
 * boundaries or call order. Tests and benchmarks recompute expected values
 * from the formulas below, so they are part of the interface. All
 * arithmetic is on uint64 modulo 2^64 unless said otherwise; casts between
 * int64 and uint64 are two's complement.
 *
 *   mix(x):  z = x + 0x9E3779B97F4A7C15
 *            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *            z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *            mix(x) = z ^ (z >> 31)                    (the splitmix64 output step)
 *   u(i, f)     = mix(seed ^ mix(i) ^ mix(2^62 + 2*f))       value stream
 *   unull(i, f) = mix(seed ^ mix(i) ^ mix(2^62 + 2*f + 1))   null stream
 *
 * With u = u(i, f), per `kind`:
 *   sequence       start + i * step                    (int64 wrap-around)
 *   uniform_int    r = max - min + 1 (as uint64); min + (u % r); if r == 0
 *                  (the full int64 range) the value is (int64)u
 *   uniform_float  min + (double)(u >> 11) * 0x1p-53 * (max - min)   (in [min, max))
 *   choice         no weights: values[u % n]
 *                  weights: integer weights w_j (if any weight given has a
 *                  fractional part, every w_j = llround(weight_j * 1000000));
 *                  W = sum w_j, cum_j = w_0 + ... + w_j; the first j with
 *                  (u % W) < cum_j
 *   string         len = min_len + (u % (max_len - min_len + 1)); byte k
 *                  (0 <= k < len) = alphabet[mix(u + k + 1) % A], A = the
 *                  alphabet's length in bytes
 *   event_time     start + (int64)floor((double)i * 1000.0 / rate)   (start `now`:
 *                  the wall clock when the generator is made — not reproducible
 *                  across runs, except that a source resuming from a checkpoint
 *                  puts the original start back with rv_gen_set_start)
 *                  - (jitter > 0 ? (int64)(u % (jitter + 1)) : 0)
 *                  (rate and the division in IEEE double; jitter in ms)
 *   constant       value
 * and the value is null when null_probability p > 0 and
 *   (unull(i, f) % 1000000) < llround(p * 1000000).
 *
 * Thread: an rv_gen is immutable after rv_gen_new (and rv_gen_set_start,
 * which its owner calls before sharing it) and may be read from any
 * thread. */
#ifndef RV_GEN_FIELDS_H
#define RV_GEN_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rv_batch.h"
#include "rv_err.h"
#include "rv_yaml.h"

/* Longest max_len a `string` generator accepts. */
#define RV_GEN_STRING_MAX 65536

typedef struct rv_gen rv_gen;

/* The building blocks of the formulas above (exposed for tests and
 * benchmarks). stream 0 is the value stream, 1 the null stream. */
uint64_t rv_gen_mix(uint64_t x);
uint64_t rv_gen_u64(uint64_t seed, uint64_t i, int f, int stream);

/* Parses `fields` (a YAML map: schema field name -> generator spec map)
 * against schema: every schema field needs exactly one spec, of a kind that
 * can make its type. `what` names the source in messages ("generator
 * 'clicks'"). On success *out is a new generator owned by the caller
 * (free with rv_gen_free); on error a positioned error is returned. The
 * generator keeps no pointer into the YAML tree or the schema. */
rv_err *rv_gen_new(const rv_ynode *fields, const rv_schema *schema, uint64_t seed,
                   const char *what, rv_gen **out);
void rv_gen_free(rv_gen *g); /* accepts NULL */

int rv_gen_nfields(const rv_gen *g);
/* Whether field f is an event_time generator with `start: now`; if so
 * *start_ms is the wall-clock start it took when g was made. */
bool rv_gen_start_is_now(const rv_gen *g, int f, int64_t *start_ms);
/* Replaces that start (field f must be such a field): a source resuming
 * from a checkpoint keeps the event times of its original run. */
void rv_gen_set_start(rv_gen *g, int f, int64_t start_ms);
/* Longest string field f can produce (0 for non-string fields). */
size_t rv_gen_string_max(const rv_gen *g, int f);

/* The value of field f for record i. String values are written to buf
 * (cap must be >= rv_gen_string_max(g, f)) or point into g; either way the
 * value is valid while both buf and g are. */
rv_value rv_gen_value(const rv_gen *g, int f, uint64_t i, char *buf, size_t cap);

/* Fills rows 0..n) of column c (of field f's type; grown as needed; its
 * previous rows are discarded) with the values of records
 * first, first + stride, ..., first + (n-1) * stride. */
void rv_gen_fill_column(const rv_gen *g, int f, uint64_t first, uint64_t stride, uint32_t n,
                        rv_column *c);
/* Fills every column of b (whose schema is the one g was made for) the
 * same way and sets b->nrows = n. b must not be shared. */
void rv_gen_fill_batch(const rv_gen *g, uint64_t first, uint64_t stride, uint32_t n, rv_batch *b);

/* Writes the Markdown reference of the field generator kinds (for
 * docs/jobspec.md). */
void rv_gen_doc(FILE *out);

#endif
