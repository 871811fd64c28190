/* Unit tests for gen_fields: every kind is checked against a reference
 * written here from the formulas documented in gen_fields.h (not by calling
 * the module's helpers), column filling against per-value computation,
 * independence from parallelism and batch boundaries, distributions, null
 * probability, and the positioned errors of bad specs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rv_batch.h"
#include "rv_yaml.h"
#include "sources/gen_fields.h"

/* ---- reference formulas (from the header comment) ---- */

static uint64_t ref_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t ref_u(uint64_t seed, uint64_t i, int f, int stream)
{
    return ref_mix(seed ^ ref_mix(i) ^ ref_mix((1ull << 62) + 2 * (uint64_t)f + (uint64_t)stream));
}

static bool ref_null(uint64_t seed, uint64_t i, int f, double p)
{
    return p > 0 && ref_u(seed, i, f, 1) % 1000000 < (uint64_t)llround(p * 1000000);
}

/* ---- helpers ---- */

typedef struct fixture {
    rv_ydoc *doc;
    rv_schema *schema;
    rv_gen *gen;
} fixture;

/* schema: "name:type,name:type"; yaml: the fields map. */
static rv_schema *make_schema(const char *spec)
{
    rv_schema *s = rv_schema_new();
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        *colon = '\0';
        rv_type t;
        cr_assert(rv_type_parse(colon + 1, &t));
        rv_schema_add(s, tok, t);
    }
    free(copy);
    return s;
}

static rv_err *try_gen(fixture *fx, const char *schema, const char *yaml, uint64_t seed)
{
    memset(fx, 0, sizeof(*fx));
    rv_err *err = rv_yaml_parse(yaml, strlen(yaml), "f.yaml", &fx->doc);
    cr_assert_null(err, "yaml: %s", err ? rv_err_msg(err) : "");
    fx->schema = make_schema(schema);
    return rv_gen_new(rv_ydoc_root(fx->doc), fx->schema, seed, "source 'g'", &fx->gen);
}

static void gen_ok(fixture *fx, const char *schema, const char *yaml, uint64_t seed)
{
    rv_err *err = try_gen(fx, schema, yaml, seed);
    cr_assert_null(err, "unexpected error: %s", err ? rv_err_msg(err) : "");
}

static void fx_free(fixture *fx)
{
    rv_gen_free(fx->gen);
    rv_schema_unref(fx->schema);
    rv_ydoc_free(fx->doc);
}

/* Expects an error whose message contains `part`. */
static void gen_err(const char *schema, const char *yaml, const char *part)
{
    fixture fx;
    rv_err *err = try_gen(&fx, schema, yaml, 0);
    cr_assert_not_null(err, "expected an error containing '%s'", part);
    cr_assert(strstr(rv_err_msg(err), part), "message '%s' lacks '%s'", rv_err_msg(err), part);
    rv_err_free(err);
    cr_assert_null(fx.gen);
    fx_free(&fx);
}

/* Equal byte strings (a NULL pointer is fine for length 0). */
static bool same_str(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int64_t ival(const rv_gen *g, int f, uint64_t i)
{
    rv_value v = rv_gen_value(g, f, i, NULL, 0);
    cr_assert_not(v.is_null);
    return v.v.i;
}

/* ---- formulas ---- */

Test(rv_gen, mix_is_splitmix64)
{
    /* First output of the splitmix64 generator from state 0. */
    cr_assert_eq(rv_gen_mix(0), 0xE220A8397B1DCDAFull);
    for (uint64_t x = 1; x < 1000; x += 37)
        cr_assert_eq(rv_gen_mix(x), ref_mix(x));
    cr_assert_eq(rv_gen_u64(7, 11, 3, 0), ref_u(7, 11, 3, 0));
    cr_assert_eq(rv_gen_u64(7, 11, 3, 1), ref_u(7, 11, 3, 1));
}

Test(rv_gen, sequence_is_start_plus_i_times_step)
{
    fixture fx;
    gen_ok(&fx, "a:int64,b:int64,t:timestamp",
           "a: {kind: sequence}\n"
           "b: {kind: sequence, start: 100, step: -3}\n"
           "t: {kind: sequence, start: '2024-01-01T00:00:01Z', step: 1000}\n", 0);
    for (uint64_t i = 0; i < 50; i++) {
        cr_assert_eq(ival(fx.gen, 0, i), (int64_t)i);
        cr_assert_eq(ival(fx.gen, 1, i), 100 - 3 * (int64_t)i);
        cr_assert_eq(ival(fx.gen, 2, i), 1704067201000 + 1000 * (int64_t)i);
    }
    fx_free(&fx);
}

Test(rv_gen, uniform_int_matches_formula_and_bounds)
{
    fixture fx;
    gen_ok(&fx, "x:int64,y:int64,z:int64",
           "x: {kind: uniform_int, min: -5, max: 5}\n"
           "y: {kind: uniform_int, min: 7, max: 7}\n"
           "z: {kind: uniform_int, min: -9223372036854775808, max: 9223372036854775807}\n", 42);
    bool seen_min = false, seen_max = false;
    for (uint64_t i = 0; i < 2000; i++) {
        int64_t x = ival(fx.gen, 0, i);
        cr_assert_eq(x, -5 + (int64_t)(ref_u(42, i, 0, 0) % 11));
        cr_assert(x >= -5 && x <= 5);
        seen_min |= x == -5;
        seen_max |= x == 5;
        cr_assert_eq(ival(fx.gen, 1, i), 7);
        cr_assert_eq(ival(fx.gen, 2, i), (int64_t)ref_u(42, i, 2, 0));
    }
    cr_assert(seen_min && seen_max);
    fx_free(&fx);
}

Test(rv_gen, uniform_float_matches_formula_and_bounds)
{
    fixture fx;
    gen_ok(&fx, "f:float64", "f: {kind: uniform_float, min: -1.5, max: 2.5}\n", 9);
    double lo = 10, hi = -10, sum = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        rv_value v = rv_gen_value(fx.gen, 0, i, NULL, 0);
        double want = -1.5 + (double)(ref_u(9, i, 0, 0) >> 11) * 0x1p-53 * 4.0;
        cr_assert_eq(v.v.f, want);
        cr_assert(v.v.f >= -1.5 && v.v.f < 2.5);
        lo = fmin(lo, v.v.f);
        hi = fmax(hi, v.v.f);
        sum += v.v.f;
    }
    cr_assert(lo < -1.4 && hi > 2.4, "range [%f, %f]", lo, hi);
    cr_assert(fabs(sum / 20000 - 0.5) < 0.05, "mean %f", sum / 20000);
    fx_free(&fx);
}

Test(rv_gen, choice_uniform_and_typed_values)
{
    fixture fx;
    gen_ok(&fx, "s:string,b:bool,d:float64,t:timestamp,n:int64",
           "s: {kind: choice, values: [ok, error, 'with space']}\n"
           "b: {kind: choice, values: [true, false]}\n"
           "d: {kind: choice, values: [0.5, -2]}\n"
           "t: {kind: choice, values: ['2024-05-01T12:00:00Z', 0]}\n"
           "n: {kind: choice, values: [200, 404, 500]}\n", 3);
    const char *strs[] = {"ok", "error", "with space"};
    const int64_t codes[] = {200, 404, 500};
    for (uint64_t i = 0; i < 500; i++) {
        rv_value v = rv_gen_value(fx.gen, 0, i, NULL, 0);
        const char *want = strs[ref_u(3, i, 0, 0) % 3];
        cr_assert_eq(v.v.s.len, strlen(want));
        cr_assert(memcmp(v.v.s.ptr, want, v.v.s.len) == 0);
        cr_assert_eq(rv_gen_value(fx.gen, 1, i, NULL, 0).v.b, ref_u(3, i, 1, 0) % 2 == 0);
        cr_assert_eq(rv_gen_value(fx.gen, 2, i, NULL, 0).v.f, ref_u(3, i, 2, 0) % 2 ? -2.0 : 0.5);
        cr_assert_eq(ival(fx.gen, 3, i), ref_u(3, i, 3, 0) % 2 ? 0 : 1714564800000);
        cr_assert_eq(ival(fx.gen, 4, i), codes[ref_u(3, i, 4, 0) % 3]);
    }
    cr_assert_eq(rv_gen_string_max(fx.gen, 0), 10);
    cr_assert_eq(rv_gen_string_max(fx.gen, 4), 0);
    fx_free(&fx);
}

Test(rv_gen, choice_weights_are_cumulative_and_proportional)
{
    fixture fx;
    gen_ok(&fx, "n:int64,m:int64",
           "n: {kind: choice, values: [1, 2, 3], weights: [1, 2, 7]}\n"
           "m: {kind: choice, values: [10, 20, 30], weights: [0.25, 0, 0.75]}\n", 5);
    int count[4] = {0}, countm[4] = {0};
    const int N = 100000;
    for (uint64_t i = 0; i < (uint64_t)N; i++) {
        int64_t n = ival(fx.gen, 0, i);
        uint64_t x = ref_u(5, i, 0, 0) % 10;
        cr_assert_eq(n, x < 1 ? 1 : x < 3 ? 2 : 3);
        count[n]++;
        int64_t m = ival(fx.gen, 1, i);
        uint64_t y = ref_u(5, i, 1, 0) % 1000000;
        cr_assert_eq(m, y < 250000 ? 10 : 30);
        countm[m / 10]++;
    }
    cr_assert(fabs(count[1] / (double)N - 0.1) < 0.01, "%d", count[1]);
    cr_assert(fabs(count[2] / (double)N - 0.2) < 0.01, "%d", count[2]);
    cr_assert(fabs(count[3] / (double)N - 0.7) < 0.01, "%d", count[3]);
    cr_assert_eq(countm[2], 0);
    cr_assert(fabs(countm[1] / (double)N - 0.25) < 0.01, "%d", countm[1]);
    fx_free(&fx);
}

Test(rv_gen, string_lengths_and_alphabet)
{
    fixture fx;
    gen_ok(&fx, "s:string,d:string",
           "s: {kind: string, min_len: 2, max_len: 5, alphabet: 'AB9'}\n"
           "d: {kind: string}\n", 11);
    cr_assert_eq(rv_gen_string_max(fx.gen, 0), 5);
    cr_assert_eq(rv_gen_string_max(fx.gen, 1), 16);
    char buf[16], want[16];
    int lens[6] = {0};
    for (uint64_t i = 0; i < 3000; i++) {
        rv_value v = rv_gen_value(fx.gen, 0, i, buf, sizeof(buf));
        uint64_t u = ref_u(11, i, 0, 0);
        size_t len = 2 + u % 4;
        for (size_t k = 0; k < len; k++)
            want[k] = "AB9"[ref_mix(u + k + 1) % 3];
        cr_assert(same_str(v.v.s.ptr, v.v.s.len, want, (uint32_t)len));
        lens[len]++;
        v = rv_gen_value(fx.gen, 1, i, buf, sizeof(buf));
        cr_assert(v.v.s.len >= 1 && v.v.s.len <= 16);
        for (uint32_t k = 0; k < v.v.s.len; k++)
            cr_assert(v.v.s.ptr[k] >= 'a' && v.v.s.ptr[k] <= 'z');
    }
    for (int l = 2; l <= 5; l++)
        cr_assert(lens[l] > 600, "length %d seen %d times", l, lens[l]);
    fx_free(&fx);
}

Test(rv_gen, event_time_formula_and_jitter_bound)
{
    fixture fx;
    gen_ok(&fx, "a:timestamp,b:timestamp,c:timestamp",
           "a: {kind: event_time}\n"
           "b: {kind: event_time, start: 1000, rate: 3}\n"
           "c: {kind: event_time, start: '2024-01-01T00:00:10Z', rate: 100, jitter: 500ms}\n", 77);
    int64_t max_late = 0;
    for (uint64_t i = 0; i < 5000; i++) {
        cr_assert_eq(ival(fx.gen, 0, i), 1704067200000 + (int64_t)i); /* default rate 1000/s */
        cr_assert_eq(ival(fx.gen, 1, i), 1000 + (int64_t)floor((double)i * 1000.0 / 3.0));
        int64_t inorder = 1704067210000 + 10 * (int64_t)i;
        int64_t c = ival(fx.gen, 2, i);
        cr_assert_eq(c, inorder - (int64_t)(ref_u(77, i, 2, 0) % 501));
        cr_assert(c <= inorder && c >= inorder - 500);
        if (inorder - c > max_late)
            max_late = inorder - c;
    }
    cr_assert(ival(fx.gen, 1, 3) == 2000 && ival(fx.gen, 1, 4) == 2333);
    cr_assert(max_late > 490, "max lateness %lld", (long long)max_late);
    fx_free(&fx);
}

Test(rv_gen, constant_values)
{
    fixture fx;
    gen_ok(&fx, "s:string,n:int64,b:bool,f:float64,t:timestamp",
           "s: {kind: constant, value: hello}\n"
           "n: {kind: constant, value: -12}\n"
           "b: {kind: constant, value: true}\n"
           "f: {kind: constant, value: 2.25}\n"
           "t: {kind: constant, value: '1970-01-01T00:00:01.5Z'}\n", 0);
    for (uint64_t i = 0; i < 10; i++) {
        rv_value v = rv_gen_value(fx.gen, 0, i, NULL, 0);
        cr_assert(v.v.s.len == 5 && memcmp(v.v.s.ptr, "hello", 5) == 0);
        cr_assert_eq(ival(fx.gen, 1, i), -12);
        cr_assert(rv_gen_value(fx.gen, 2, i, NULL, 0).v.b);
        cr_assert_eq(rv_gen_value(fx.gen, 3, i, NULL, 0).v.f, 2.25);
        cr_assert_eq(ival(fx.gen, 4, i), 1500);
    }
    fx_free(&fx);
}

Test(rv_gen, null_probability_uses_independent_stream)
{
    fixture fx;
    gen_ok(&fx, "a:int64,b:string,c:int64,d:int64",
           "a: {kind: uniform_int, min: 0, max: 9, null_probability: 0.3}\n"
           "b: {kind: choice, values: [x, y], null_probability: 0.05}\n"
           "c: {kind: sequence, null_probability: 1}\n"
           "d: {kind: sequence, null_probability: 0}\n", 123);
    const int N = 100000;
    int na = 0, nb = 0;
    for (uint64_t i = 0; i < (uint64_t)N; i++) {
        rv_value a = rv_gen_value(fx.gen, 0, i, NULL, 0);
        cr_assert_eq(a.is_null, ref_null(123, i, 0, 0.3));
        if (!a.is_null)
            cr_assert_eq(a.v.i, (int64_t)(ref_u(123, i, 0, 0) % 10));
        na += a.is_null;
        rv_value b = rv_gen_value(fx.gen, 1, i, NULL, 0);
        cr_assert_eq(b.is_null, ref_null(123, i, 1, 0.05));
        nb += b.is_null;
        cr_assert(rv_gen_value(fx.gen, 2, i, NULL, 0).is_null);
        cr_assert_not(rv_gen_value(fx.gen, 3, i, NULL, 0).is_null);
    }
    cr_assert(fabs(na / (double)N - 0.3) < 0.01, "%d nulls", na);
    cr_assert(fabs(nb / (double)N - 0.05) < 0.005, "%d nulls", nb);
    fx_free(&fx);
}

/* ---- columns and batches ---- */

static const char *ALL_SCHEMA = "id:int64,ts:timestamp,user:string,score:float64,ok:bool,tag:string,k:int64";
static const char *ALL_YAML =
    "id: {kind: sequence, start: 1}\n"
    "ts: {kind: event_time, rate: 50, jitter: 2s, null_probability: 0.1}\n"
    "user: {kind: string, min_len: 0, max_len: 6, null_probability: 0.2}\n"
    "score: {kind: uniform_float, min: 0, max: 1, null_probability: 0.5}\n"
    "ok: {kind: choice, values: [true, false], weights: [3, 1], null_probability: 0.1}\n"
    "tag: {kind: choice, values: [a, bb, ccc], null_probability: 0.3}\n"
    "k: {kind: uniform_int, min: 1, max: 1000}\n";

/* Row r of b equals the values of record i. */
static void assert_row(const rv_gen *g, const rv_batch *b, uint32_t r, uint64_t i)
{
    char buf[64];
    for (int f = 0; f < b->schema->nfields; f++) {
        rv_value want = rv_gen_value(g, f, i, buf, sizeof(buf));
        rv_value got = rv_col_get_value(&b->cols[f], r);
        cr_assert_eq(got.is_null, want.is_null, "field %d record %llu", f, (unsigned long long)i);
        if (want.is_null)
            continue;
        switch (want.type) {
        case RV_T_BOOL: cr_assert_eq(got.v.b, want.v.b); break;
        case RV_T_FLOAT64: cr_assert_eq(got.v.f, want.v.f); break;
        case RV_T_STRING:
            cr_assert(same_str(got.v.s.ptr, got.v.s.len, want.v.s.ptr, want.v.s.len));
            break;
        default: cr_assert_eq(got.v.i, want.v.i, "field %d record %llu", f, (unsigned long long)i);
        }
    }
}

Test(rv_gen, fill_batch_equals_per_value_computation)
{
    fixture fx;
    gen_ok(&fx, ALL_SCHEMA, ALL_YAML, 2024);
    rv_batch *b = rv_batch_new(fx.schema, 16); /* grows */
    rv_gen_fill_batch(fx.gen, 1000, 1, 3000, b);
    cr_assert_eq(b->nrows, 3000);
    for (uint32_t r = 0; r < 3000; r++)
        assert_row(fx.gen, b, r, 1000 + r);
    /* Refill the same batch (previous contents discarded). */
    rv_gen_fill_batch(fx.gen, 5, 7, 100, b);
    cr_assert_eq(b->nrows, 100);
    for (uint32_t r = 0; r < 100; r++)
        assert_row(fx.gen, b, r, 5 + 7 * (uint64_t)r);
    rv_batch_unref(b);
    fx_free(&fx);
}

Test(rv_gen, fill_column_equals_batch_column)
{
    fixture fx;
    gen_ok(&fx, ALL_SCHEMA, ALL_YAML, 1);
    rv_batch *b = rv_batch_new(fx.schema, 256);
    rv_gen_fill_batch(fx.gen, 0, 3, 256, b);
    for (int f = 0; f < fx.schema->nfields; f++) {
        rv_column c;
        rv_col_init(&c, fx.schema->fields[f].type, 4);
        rv_gen_fill_column(fx.gen, f, 0, 3, 256, &c);
        for (uint32_t r = 0; r < 256; r++) {
            rv_value x = rv_col_get_value(&c, r), y = rv_col_get_value(&b->cols[f], r);
            cr_assert_eq(x.is_null, y.is_null);
            if (!x.is_null && x.type == RV_T_STRING)
                cr_assert(same_str(x.v.s.ptr, x.v.s.len, y.v.s.ptr, y.v.s.len));
            else if (!x.is_null)
                cr_assert(memcmp(&x.v, &y.v, sizeof(x.v)) == 0);
        }
        rv_col_fini(&c);
    }
    rv_batch_unref(b);
    fx_free(&fx);
}

Test(rv_gen, output_independent_of_parallelism_and_batches)
{
    /* Records 0..N) made by P instances in batches of B must be the same
     * records as made by one instance in one batch. */
    fixture fx, fy;
    gen_ok(&fx, ALL_SCHEMA, ALL_YAML, 99);
    gen_ok(&fy, ALL_SCHEMA, ALL_YAML, 99); /* an independently built generator */
    const uint64_t N = 1000;
    rv_batch *whole = rv_batch_new(fx.schema, (uint32_t)N);
    rv_gen_fill_batch(fx.gen, 0, 1, (uint32_t)N, whole);
    int ps[] = {2, 3, 7};
    uint32_t bs[] = {1, 13, 500};
    for (int pi = 0; pi < 3; pi++) {
        uint64_t P = (uint64_t)ps[pi];
        bool seen[1000] = {false};
        for (uint64_t s = 0; s < P; s++) {
            uint64_t next = s;
            while (next < N) {
                uint64_t left = (N - next + P - 1) / P;
                uint32_t n = left < bs[pi] ? (uint32_t)left : bs[pi];
                rv_batch *b = rv_batch_new(fy.schema, n);
                rv_gen_fill_batch(fy.gen, next, P, n, b);
                for (uint32_t r = 0; r < n; r++) {
                    uint64_t i = next + r * P;
                    cr_assert_not(seen[i]);
                    seen[i] = true;
                    /* compare with the single-instance row i */
                    for (int f = 0; f < fx.schema->nfields; f++) {
                        rv_value x = rv_col_get_value(&b->cols[f], r);
                        rv_value y = rv_col_get_value(&whole->cols[f], (uint32_t)i);
                        cr_assert_eq(x.is_null, y.is_null);
                        if (x.is_null)
                            continue;
                        if (x.type == RV_T_STRING)
                            cr_assert(same_str(x.v.s.ptr, x.v.s.len, y.v.s.ptr, y.v.s.len));
                        else
                            cr_assert(memcmp(&x.v, &y.v, sizeof(x.v)) == 0);
                    }
                }
                next += (uint64_t)n * P;
                rv_batch_unref(b);
            }
        }
        for (uint64_t i = 0; i < N; i++)
            cr_assert(seen[i], "record %llu missing with P=%llu", (unsigned long long)i,
                      (unsigned long long)P);
    }
    rv_batch_unref(whole);
    fx_free(&fx);
    fx_free(&fy);
}

Test(rv_gen, seed_changes_values)
{
    fixture a, b;
    gen_ok(&a, "k:int64", "k: {kind: uniform_int, min: 0, max: 1000000000}\n", 1);
    gen_ok(&b, "k:int64", "k: {kind: uniform_int, min: 0, max: 1000000000}\n", 2);
    int same = 0;
    for (uint64_t i = 0; i < 100; i++)
        same += ival(a.gen, 0, i) == ival(b.gen, 0, i);
    cr_assert(same < 3);
    fx_free(&a);
    fx_free(&b);
}

/* ---- errors ---- */

Test(rv_gen, error_schema_field_without_generator)
{
    gen_err("a:int64,b:int64", "a: {kind: sequence}\n",
            "f.yaml:1:1: source 'g': schema field 'b' has no generator in 'fields'");
}

Test(rv_gen, error_generator_for_unknown_field)
{
    gen_err("user:string", "user: {kind: string}\nusr: {kind: string}\n",
            "f.yaml:2:1: source 'g': 'fields' has a generator for 'usr', which is not a field of "
            "the schema (did you mean 'user'?)");
}

Test(rv_gen, error_unknown_kind_with_suggestion)
{
    gen_err("a:int64", "a: {kind: uniform_itn, min: 0, max: 1}\n",
            "f.yaml:1:11: source 'g': field 'a': unknown generator kind 'uniform_itn' (did you "
            "mean 'uniform_int'?)");
}

Test(rv_gen, error_missing_kind)
{
    gen_err("a:int64", "a: {min: 0}\n", "f.yaml:1:4: source 'g': field 'a': missing required key 'kind'");
}

Test(rv_gen, error_kind_cannot_make_type)
{
    gen_err("a:int64", "a: {kind: uniform_float, min: 0, max: 1}\n",
            "field 'a': kind 'uniform_float' makes float64 values, but the field is int64");
    gen_err("s:string", "s: {kind: sequence}\n", "kind 'sequence' makes int64, timestamp values");
}

Test(rv_gen, error_unknown_key_in_spec)
{
    gen_err("a:int64", "a:\n  kind: uniform_int\n  min: 0\n  maxx: 3\n", "f.yaml:4:3:");
}

Test(rv_gen, error_missing_required_key)
{
    gen_err("a:int64", "a: {kind: uniform_int, min: 0}\n", "missing required key 'max'");
}

Test(rv_gen, error_min_above_max)
{
    gen_err("a:int64", "a: {kind: uniform_int, min: 5, max: 4}\n",
            "f.yaml:1:37: source 'g': field 'a': max (4) is below min (5)");
    gen_err("f:float64", "f: {kind: uniform_float, min: 1, max: 0.5}\n", "min <= max");
    gen_err("s:string", "s: {kind: string, min_len: 20}\n", "max_len (16) is below min_len (20)");
}

Test(rv_gen, error_bad_choice_lists)
{
    gen_err("a:int64", "a: {kind: choice, values: []}\n", "'values' must be a non-empty list");
    gen_err("a:int64", "a: {kind: choice, values: [1, abc]}\n",
            "f.yaml:1:31: source 'g': field 'a': expected an integer, got 'abc'");
    gen_err("a:int64", "a: {kind: choice, values: [1, 2], weights: [1]}\n",
            "'weights' must be a list of 2 numbers");
    gen_err("a:int64", "a: {kind: choice, values: [1, 2], weights: [1, -1]}\n",
            "a weight must be between 0 and 1e12");
    gen_err("a:int64", "a: {kind: choice, values: [1, 2], weights: [0, 0]}\n",
            "the weights must not all be zero");
    /* 20 fractional weights near the limit: each counts 1e18 millionths. */
    gen_err("a:int64",
            "a: {kind: choice, values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], "
            "weights: [999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, "
            "999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, "
            "999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, 999999999999.5, "
            "999999999999.5, 999999999999.5, 999999999999.5]}\n",
            "the weights add up to more than can be counted");
    gen_err("b:bool", "b: {kind: choice, values: [true, maybe]}\n",
            "f.yaml:1:34: source 'g': field 'b': expected true or false, got 'maybe'");
    gen_err("f:float64", "f: {kind: choice, values: [1.5, x]}\n", "expected a number, got 'x'");
}

Test(rv_gen, error_bad_numbers)
{
    gen_err("a:int64", "a: {kind: sequence, null_probability: 1.5}\n",
            "'null_probability' must be between 0 and 1");
    gen_err("t:timestamp", "t: {kind: event_time, rate: 0}\n", "'rate' must be a positive number");
    gen_err("t:timestamp", "t: {kind: event_time, start: yesterday}\n",
            "expected epoch milliseconds or an ISO-8601 timestamp, got 'yesterday'");
    gen_err("s:string", "s: {kind: string, alphabet: ''}\n", "'alphabet' must not be empty");
}

Test(rv_gen, error_fields_not_a_map)
{
    gen_err("a:int64", "[1, 2]\n", "'fields' must be a map of field name to generator, not a list");
    gen_err("a:int64", "a: 5\n", "f.yaml:1:4: source 'g': field 'a': expected a generator map");
}
