/* rv_config: one table per plugin drives parsing, validation and docs.
 *
 * rv_config_apply() walks a plugin's rv_cfg_key table over a YAML map:
 * unknown keys first (a typo should read "did you mean 'path'?" rather
 * than "missing required key 'path'"), then each key in table order,
 * taking the YAML value or the table's default, which is text parsed by
 * exactly the same code. Every user error is positioned at the offending
 * node. The scalar converters (durations, sizes, integers, booleans) and
 * rv_suggest() are shared with code that reads YAML by hand. */
#include "rv_config.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rv_mem.h"

#define SHOW_MAX 60 /* bytes of a user value quoted in a message */

static const char DURATION_HINT[] = "a duration such as 500ms, 10s, 1m or 1h";
static const char SIZE_HINT[] = "a size such as 512, 64KiB or 16MiB";

typedef struct unit {
    const char *name;
    int64_t mult;
} unit;

static const unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

/* Largest first, so formatting picks the largest unit that divides evenly. */
static const unit size_units[] = {
    {"TiB", INT64_C(1) << 40}, {"TB", INT64_C(1000000000000)}, {"GiB", INT64_C(1) << 30},
    {"GB", INT64_C(1000000000)}, {"MiB", INT64_C(1) << 20},    {"MB", INT64_C(1000000)},
    {"KiB", INT64_C(1) << 10},   {"KB", INT64_C(1000)},        {"B", 1},
};

#define NUNITS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- plain parsers ----------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "<digits>[.<digits>][unit]": a count of the unit (plain_mult without
 * one). A fraction is accepted only when the result is a whole number
 * ("1.5s" is 1500 ms, "1.0005s" is rejected). */
static bool parse_scaled(const char *s, const unit *units, size_t nunits, int64_t plain_mult, int64_t *out)
{
    const char *p = s;
    int64_t whole = 0, frac = 0, scale = 1;
    if (!is_digit(*p))
        return false;
    for (; is_digit(*p); p++)
        if (__builtin_mul_overflow(whole, 10, &whole) || __builtin_add_overflow(whole, *p - '0', &whole))
            return false;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return false;
        for (; is_digit(*p); p++) {
            if (scale > INT64_MAX / 10)
                return false;
            frac = frac * 10 + (*p - '0');
            scale *= 10;
        }
    }
    int64_t mult = 0;
    if (*p == '\0') {
        mult = plain_mult;
    } else {
        for (size_t i = 0; i < nunits && !mult; i++)
            if (strcmp(p, units[i].name) == 0)
                mult = units[i].mult;
        if (!mult)
            return false;
    }
    int64_t v, f;
    if (__builtin_mul_overflow(whole, mult, &v) || __builtin_mul_overflow(frac, mult, &f) || f % scale != 0 ||
        __builtin_add_overflow(v, f / scale, &v))
        return false;
    *out = v;
    return true;
}

bool rv_duration_parse(const char *s, int64_t *ms)
{
    return parse_scaled(s, duration_units, NUNITS(duration_units), 1, ms);
}

bool rv_size_parse(const char *s, int64_t *bytes)
{
    return parse_scaled(s, size_units, NUNITS(size_units), 1, bytes);
}

typedef enum { NUM_OK, NUM_SYNTAX, NUM_RANGE } num_status;

static num_status parse_int(const char *s, int64_t *v)
{
    const char *p = s;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (!is_digit(*p))
        return NUM_SYNTAX;
    int64_t x = 0;
    bool overflow = false;
    for (; is_digit(*p); p++) {
        /* Accumulate negatively so INT64_MIN fits. */
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_sub_overflow(x, *p - '0', &x))
            overflow = true;
    }
    if (*p != '\0')
        return NUM_SYNTAX;
    if (overflow || (!neg && x == INT64_MIN))
        return NUM_RANGE;
    *v = neg ? x : -x;
    return NUM_OK;
}

static bool parse_float(const char *s, double *v)
{
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s)) /* no hex, inf or nan */
        return false;
    char *end;
    double d = strtod(s, &end);
    if (*end != '\0' || !isfinite(d))
        return false;
    *v = d;
    return true;
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *v = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* ---- messages ---------------------------------------------------------- */

/* A value for a message: 'text' (shortened) for a scalar, "a map" or "a
 * list" otherwise. The caller frees it. */
static char *show_text(const char *s, size_t len)
{
    if (len <= SHOW_MAX)
        return rv_xasprintf("'%.*s'", (int)len, s);
    size_t n = SHOW_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* cut at a character boundary */
        n--;
    return rv_xasprintf("'%.*s...'", (int)n, s);
}

static char *show_node(const rv_ynode *n)
{
    if (n->kind == RV_YAML_SCALAR)
        return show_text(n->str, n->len);
    return rv_xasprintf("a %s", rv_ynode_kind_name(n->kind));
}

/* Scalar text usable by the C parsers: no embedded NUL. */
static bool scalar_text(const rv_ynode *n)
{
    return n->kind == RV_YAML_SCALAR && strlen(n->str) == n->len;
}

static void fmt_duration(int64_t ms, char *buf, size_t cap)
{
    const unit *u = &duration_units[0];
    for (size_t i = NUNITS(duration_units); i-- > 0;)
        if (ms != 0 && ms % duration_units[i].mult == 0) {
            u = &duration_units[i];
            break;
        }
    snprintf(buf, cap, "%" PRId64 "%s", ms / u->mult, u->name);
}

static void fmt_size(int64_t b, char *buf, size_t cap)
{
    const unit *u = &size_units[NUNITS(size_units) - 1];
    for (size_t i = 0; i < NUNITS(size_units); i++)
        if (b != 0 && b % size_units[i].mult == 0) {
            u = &size_units[i];
            break;
        }
    snprintf(buf, cap, "%" PRId64 "%s", b / u->mult, u == &size_units[NUNITS(size_units) - 1] ? "" : u->name);
}

static void fmt_bound(rv_cfg_type t, int64_t v, char *buf, size_t cap)
{
    if (t == RV_CFG_DURATION)
        fmt_duration(v, buf, cap);
    else if (t == RV_CFG_SIZE)
        fmt_size(v, buf, cap);
    else
        snprintf(buf, cap, "%" PRId64, v);
}

/* "what: key 'name' <msg>" at node `at`; without a node the value came
 * from the table's default, which is a bug in the table. */
static rv_err *key_err(const rv_ynode *at, const char *what, const rv_cfg_key *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static rv_err *key_err(const rv_ynode *at, const char *what, const rv_cfg_key *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = rv_xvasprintf(fmt, ap);
    va_end(ap);
    rv_err *err;
    if (at)
        err = rv_yerr(at, RV_ERR_INVALID, "%s%skey '%s' %s", what ? what : "", what ? ": " : "", k->name, msg);
    else
        err = rv_err_new(RV_ERR_INTERNAL, "%s%skey '%s' (default) %s", what ? what : "", what ? ": " : "",
                         k->name, msg);
    free(msg);
    return err;
}

/* ---- node converters --------------------------------------------------- */

rv_err *rv_ynode_scalar(const rv_ynode *n, const char *what)
{
    if (!n)
        return rv_err_new(RV_ERR_INVALID, "%s: missing value", what ? what : "value");
    if (n->kind == RV_YAML_SCALAR)
        return NULL;
    return rv_yerr(n, RV_ERR_INVALID, "%s%sexpected a scalar, got a %s", what ? what : "", what ? ": " : "",
                   rv_ynode_kind_name(n->kind));
}

static rv_err *expected(const rv_ynode *n, const char *desc, const char *note)
{
    char *got = show_node(n);
    rv_err *err = rv_yerr(n, RV_ERR_INVALID, "expected %s, got %s%s", desc, got, note);
    free(got);
    return err;
}

rv_err *rv_ynode_duration(const rv_ynode *n, int64_t *ms)
{
    int64_t v;
    if (!scalar_text(n) || !rv_duration_parse(n->str, &v))
        return expected(n, DURATION_HINT, "");
    *ms = v;
    return NULL;
}

rv_err *rv_ynode_int(const rv_ynode *n, int64_t *v)
{
    int64_t x;
    num_status st = scalar_text(n) ? parse_int(n->str, &x) : NUM_SYNTAX;
    if (st != NUM_OK)
        return expected(n, "an integer", st == NUM_RANGE ? " (out of range)" : "");
    *v = x;
    return NULL;
}

rv_err *rv_ynode_bool(const rv_ynode *n, bool *v)
{
    bool b;
    if (!scalar_text(n) || !parse_bool(n->str, &b))
        return expected(n, "true or false", "");
    *v = b;
    return NULL;
}

/* ---- rv_config_apply --------------------------------------------------- */

static void *field(void *obj, const rv_cfg_key *k)
{
    return (char *)obj + k->offset;
}

static rv_err *expects(const rv_ynode *at, const char *what, const rv_cfg_key *k, const char *desc,
                       const char *s, size_t len, const char *note)
{
    char *got = at && at->kind != RV_YAML_SCALAR ? show_node(at) : show_text(s, len);
    rv_err *err = key_err(at, what, k, "expects %s, got %s%s", desc, got, note);
    free(got);
    return err;
}

static rv_err *check_range(const rv_ynode *at, const char *what, const rv_cfg_key *k, int64_t v)
{
    if (k->min >= k->max || (v >= k->min && v <= k->max))
        return NULL;
    char lo[32], hi[32];
    fmt_bound(k->type, k->min, lo, sizeof(lo));
    fmt_bound(k->type, k->max, hi, sizeof(hi));
    return key_err(at, what, k, "must be between %s and %s", lo, hi);
}

static rv_err *list_choices_err(const rv_ynode *at, const char *what, const rv_cfg_key *k)
{
    size_t cap = 1, len = 0;
    for (size_t i = 0; k->choices && k->choices[i]; i++)
        cap += strlen(k->choices[i]) + 2;
    char *list = rv_xmalloc(cap);
    list[0] = '\0';
    for (size_t i = 0; k->choices && k->choices[i]; i++)
        len += (size_t)snprintf(list + len, cap - len, "%s%s", i ? ", " : "", k->choices[i]);
    rv_err *err = key_err(at, what, k, "must be one of: %s", list);
    free(list);
    return err;
}

/* Converts one value into its field: the YAML node `at`, or the default
 * text when `at` is NULL. */
static rv_err *convert(const rv_cfg_key *k, const rv_ynode *at, const char *what, void *obj)
{
    const char *s = at ? at->str : k->def;
    size_t len = at ? at->len : strlen(k->def);
    bool text_ok = !at || scalar_text(at);
    int64_t i64 = 0;
    num_status st;
    switch (k->type) {
    case RV_CFG_STRING:
        if (at && at->kind != RV_YAML_SCALAR)
            return expects(at, what, k, "a string", NULL, 0, "");
        if (!text_ok)
            return key_err(at, what, k, "must not contain a NUL character");
        *(char **)field(obj, k) = rv_xstrndup(s, len);
        return NULL;
    case RV_CFG_INT:
        st = text_ok ? parse_int(s, &i64) : NUM_SYNTAX;
        if (st != NUM_OK)
            return expects(at, what, k, "an integer", s, len, st == NUM_RANGE ? " (out of range)" : "");
        break;
    case RV_CFG_FLOAT: {
        double d;
        if (!text_ok || !parse_float(s, &d))
            return expects(at, what, k, "a number", s, len, "");
        *(double *)field(obj, k) = d;
        return NULL;
    }
    case RV_CFG_BOOL: {
        bool b;
        if (!text_ok || !parse_bool(s, &b))
            return expects(at, what, k, "true or false", s, len, "");
        *(bool *)field(obj, k) = b;
        return NULL;
    }
    case RV_CFG_DURATION:
        if (!text_ok || !rv_duration_parse(s, &i64))
            return expects(at, what, k, DURATION_HINT, s, len, "");
        break;
    case RV_CFG_SIZE:
        if (!text_ok || !rv_size_parse(s, &i64))
            return expects(at, what, k, SIZE_HINT, s, len, "");
        break;
    case RV_CFG_ENUM:
        assert(k->choices && k->choices[0]);
        if (text_ok)
            for (int i = 0; k->choices[i]; i++)
                if (strcmp(s, k->choices[i]) == 0) {
                    *(int *)field(obj, k) = i;
                    return NULL;
                }
        return list_choices_err(at, what, k);
    case RV_CFG_EXPR:
        if (at && at->kind != RV_YAML_SCALAR)
            return expects(at, what, k, "an expression", NULL, 0, "");
        *(rv_cfg_expr *)field(obj, k) = (rv_cfg_expr){s, at};
        return NULL;
    case RV_CFG_NODE:
        assert(at); /* a NODE key has no text default */
        *(const rv_ynode **)field(obj, k) = at;
        return NULL;
    }
    rv_err *err = check_range(at, what, k, i64);
    if (!err)
        *(int64_t *)field(obj, k) = i64;
    return err;
}

static bool in_table(const rv_cfg_key *keys, size_t n, const char *const *skip, const rv_ynode *key)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(keys[i].name) == key->len && memcmp(keys[i].name, key->str, key->len) == 0)
            return true;
    for (size_t i = 0; skip && skip[i]; i++)
        if (strlen(skip[i]) == key->len && memcmp(skip[i], key->str, key->len) == 0)
            return true;
    return false;
}

static rv_err *unknown_key(const rv_cfg_key *keys, size_t n, const char *const *skip, const char *what,
                           const rv_ynode *key)
{
    size_t nskip = 0, nc = 0, cap = 1;
    while (skip && skip[nskip])
        nskip++;
    const char **cands = rv_xmalloc((n + nskip + 1) * sizeof(*cands));
    for (size_t i = 0; i < n; i++)
        cands[nc++] = keys[i].name;
    for (size_t i = 0; i < nskip; i++)
        cands[nc++] = skip[i];
    char *shown = show_text(key->str, key->len);
    const char *hint = scalar_text(key) ? rv_suggest(key->str, cands, nc) : NULL;
    rv_err *err;
    if (hint) {
        err = rv_yerr(key, RV_ERR_INVALID, "%s%sunknown key %s (did you mean '%s'?)", what ? what : "",
                      what ? ": " : "", shown, hint);
    } else {
        for (size_t i = 0; i < nc; i++)
            cap += strlen(cands[i]) + 2;
        char *list = rv_xmalloc(cap);
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = 0; i < nc; i++)
            len += (size_t)snprintf(list + len, cap - len, "%s%s", i ? ", " : "", cands[i]);
        err = rv_yerr(key, RV_ERR_INVALID, "%s%sunknown key %s (%s%s)", what ? what : "", what ? ": " : "",
                      shown, nc ? "valid keys: " : "no keys are accepted", list);
        free(list);
    }
    free(shown);
    free(cands);
    return err;
}

/* A null value ("key:" with nothing after it, "~", "null") means "no
 * settings", like an absent map. */
static bool is_null(const rv_ynode *n)
{
    return n->kind == RV_YAML_SCALAR && n->style == RV_YAML_PLAIN &&
           (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0);
}

rv_err *rv_config_apply(const rv_cfg_key *keys, size_t n, const rv_ynode *map,
                        const char *const *skip, const char *what, void *obj)
{
    if (map && is_null(map))
        map = NULL;
    if (map && map->kind != RV_YAML_MAP) {
        char *got = show_node(map);
        rv_err *err = rv_yerr(map, RV_ERR_INVALID, "%s%sexpected a map of settings, got %s", what ? what : "",
                              what ? ": " : "", got);
        free(got);
        return err;
    }
    for (size_t i = 0; map && i < map->n; i++)
        if (!in_table(keys, n, skip, map->keys[i]))
            return unknown_key(keys, n, skip, what, map->keys[i]);
    size_t i;
    rv_err *err = NULL;
    for (i = 0; i < n && !err; i++) {
        const rv_cfg_key *k = &keys[i];
        assert(k->type != RV_CFG_NODE || !k->def);
        const rv_ynode *v = rv_ymap_get(map, k->name);
        if (v)
            err = convert(k, v, what, obj);
        else if (k->flags & RV_CFG_REQUIRED)
            err = rv_yerr(map, RV_ERR_INVALID, "%s%smissing required key '%s'", what ? what : "",
                          what ? ": " : "", k->name);
        else if (k->def)
            err = convert(k, NULL, what, obj);
    }
    if (err) /* release the strings stored before the failing key */
        rv_config_free(keys, i - 1, obj);
    return err;
}

void rv_config_free(const rv_cfg_key *keys, size_t n, void *obj)
{
    if (!obj)
        return;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].type != RV_CFG_STRING)
            continue;
        char **p = field(obj, &keys[i]);
        free(*p);
        *p = NULL;
    }
}

/* ---- docs -------------------------------------------------------------- */

/* Writes s with '|' escaped, as a Markdown table cell needs. */
static void put_cell(const char *s, FILE *out)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s == '\n' ? ' ' : *s, out);
    }
}

static void put_type(const rv_cfg_key *k, FILE *out)
{
    switch (k->type) {
    case RV_CFG_STRING: fputs("string", out); break;
    case RV_CFG_INT: fputs("integer", out); break;
    case RV_CFG_FLOAT: fputs("number", out); break;
    case RV_CFG_BOOL: fputs("boolean", out); break;
    case RV_CFG_DURATION: fputs("duration", out); break;
    case RV_CFG_SIZE: fputs("size", out); break;
    case RV_CFG_EXPR: fputs("expression", out); break;
    case RV_CFG_NODE: fputs("any", out); break;
    case RV_CFG_ENUM:
        fputs("one of: ", out);
        for (size_t i = 0; k->choices && k->choices[i]; i++) {
            if (i)
                fputs(", ", out);
            put_cell(k->choices[i], out);
        }
        break;
    }
    if ((k->type == RV_CFG_INT || k->type == RV_CFG_DURATION || k->type == RV_CFG_SIZE) && k->min < k->max) {
        char lo[32], hi[32];
        fmt_bound(k->type, k->min, lo, sizeof(lo));
        fmt_bound(k->type, k->max, hi, sizeof(hi));
        fprintf(out, " (%s to %s)", lo, hi);
    }
}

void rv_config_doc(const rv_cfg_key *keys, size_t n, FILE *out)
{
    fputs("| key | type | default | description |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < n; i++) {
        const rv_cfg_key *k = &keys[i];
        fputs("| ", out);
        put_cell(k->name, out);
        fputs(" | ", out);
        put_type(k, out);
        fputs(" | ", out);
        if (k->flags & RV_CFG_REQUIRED) {
            fputs("(required)", out);
        } else if (k->def) {
            fputc('`', out);
            put_cell(k->def, out);
            fputc('`', out);
        }
        fputs(" | ", out);
        put_cell(k->doc ? k->doc : "", out);
        fputs(" |\n", out);
    }
}

/* ---- suggestions ------------------------------------------------------- */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive Levenshtein distance; one row over the candidate. */
static size_t edit_distance(const char *a, size_t al, const char *b, size_t bl)
{
    size_t *row = rv_xmalloc((bl + 1) * sizeof(*row));
    for (size_t j = 0; j <= bl; j++)
        row[j] = j;
    for (size_t i = 1; i <= al; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bl; j++) {
            size_t up = row[j];
            size_t best = diag + (lower(a[i - 1]) != lower(b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[bl];
    free(row);
    return d;
}

const char *rv_suggest(const char *word, const char *const *candidates, size_t n)
{
    size_t wl = strlen(word), limit = wl / 3 > 2 ? wl / 3 : 2, best_d = SIZE_MAX;
    const char *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        if (!c)
            continue;
        size_t cl = strlen(c);
        if ((wl > cl ? wl - cl : cl - wl) > limit) /* the distance is at least that */
            continue;
        size_t d = edit_distance(word, wl, c, cl);
        if (d <= limit && d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return best;
}
