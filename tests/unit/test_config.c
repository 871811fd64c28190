/* Unit tests for rv_config: table-driven parsing of YAML maps into
 * structs, the duration/size/int/bool converters, rv_suggest (checked
 * against a plain reference edit distance) and the Markdown docs. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rv_config.h"

typedef struct cfg {
    char *path;
    int64_t rate;
    double ratio;
    bool follow;
    int64_t timeout_ms;
    int64_t buffer;
    int on_error;
    rv_cfg_expr filter;
    const rv_ynode *extra;
    char *name;
} cfg;

static const char *const on_error_choices[] = {"fail", "skip", "dead_letter", NULL};

static const rv_cfg_key table[] = {
    {"path", RV_CFG_STRING, NULL, offsetof(cfg, path), "File to read.", NULL, RV_CFG_REQUIRED, 0, 0},
    {"rate", RV_CFG_INT, "100", offsetof(cfg, rate), "Records per second.", NULL, 0, 1, 1000},
    {"ratio", RV_CFG_FLOAT, "0.5", offsetof(cfg, ratio), "Sampling ratio.", NULL, 0, 0, 0},
    {"follow", RV_CFG_BOOL, "true", offsetof(cfg, follow), "Keep reading at the end.", NULL, 0, 0, 0},
    {"timeout", RV_CFG_DURATION, "10s", offsetof(cfg, timeout_ms), "Read timeout.", NULL, 0, 1, 3600000},
    {"buffer", RV_CFG_SIZE, "64KiB", offsetof(cfg, buffer), "Read buffer.", NULL, 0, 1024, INT64_C(1) << 30},
    {"on_error", RV_CFG_ENUM, "skip", offsetof(cfg, on_error), "What to do with bad lines.", on_error_choices, 0, 0, 0},
    {"filter", RV_CFG_EXPR, NULL, offsetof(cfg, filter), "Keep lines where this holds.", NULL, 0, 0, 0},
    {"extra", RV_CFG_NODE, NULL, offsetof(cfg, extra), "Anything.", NULL, 0, 0, 0},
    {"name", RV_CFG_STRING, "x", offsetof(cfg, name), "A label.", NULL, 0, 0, 0},
};
#define NKEYS (sizeof(table) / sizeof(table[0]))

static const char *const skip[] = {"id", "type", "input", NULL};

static rv_ydoc *parse(const char *text)
{
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse(text, strlen(text), "f.yaml", &doc);
    cr_assert_null(err, "unexpected error: %s", rv_err_msg(err));
    return doc;
}

/* Applies the table to the root of `text`; returns the error message
 * (caller frees) or NULL. */
static char *apply_err(const char *text, rv_code *code)
{
    rv_ydoc *doc = parse(text);
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_err *err = rv_config_apply(table, NKEYS, rv_ydoc_root(doc), skip, "source 'logs'", &c);
    char *msg = NULL;
    if (err) {
        msg = strdup(rv_err_msg(err));
        if (code)
            *code = rv_err_code(err);
        /* Nothing stays allocated in the struct after a failure. */
        cr_assert_null(c.path);
        cr_assert_null(c.name);
    }
    rv_err_free(err);
    rv_config_free(table, NKEYS, &c);
    rv_ydoc_free(doc);
    return msg;
}

static void expect_apply_err(const char *text, const char *want)
{
    rv_code code = RV_OK;
    char *msg = apply_err(text, &code);
    cr_assert_not_null(msg, "expected an error for:\n%s", text);
    cr_assert_str_eq(msg, want);
    cr_assert_eq(code, RV_ERR_INVALID);
    free(msg);
}

/* ---- rv_config_apply --------------------------------------------------- */

Test(rv_config, absent_keys_take_defaults)
{
    rv_ydoc *doc = parse("path: /var/log/app.log\n");
    cfg c;
    memset(&c, 0, sizeof(c));
    cr_assert_null(rv_config_apply(table, NKEYS, rv_ydoc_root(doc), skip, "source 'logs'", &c));
    cr_assert_str_eq(c.path, "/var/log/app.log");
    cr_assert_eq(c.rate, 100);
    cr_assert_float_eq(c.ratio, 0.5, 1e-12);
    cr_assert_eq(c.follow, true);
    cr_assert_eq(c.timeout_ms, 10000);
    cr_assert_eq(c.buffer, 65536);
    cr_assert_eq(c.on_error, 1);
    cr_assert_null(c.filter.src);
    cr_assert_null(c.filter.node);
    cr_assert_null(c.extra);
    cr_assert_str_eq(c.name, "x");
    rv_config_free(table, NKEYS, &c);
    cr_assert_null(c.path);
    cr_assert_null(c.name);
    rv_ydoc_free(doc);
}

Test(rv_config, every_type_is_converted)
{
    const char *text = "id: logs\n"
                       "type: file\n"
                       "path: '/tmp/a b'\n"
                       "rate: 250\n"
                       "ratio: 1.25e-1\n"
                       "follow: Off\n"
                       "timeout: 1500ms\n"
                       "buffer: 16MiB\n"
                       "on_error: dead_letter\n"
                       "filter: level == \"error\"\n"
                       "extra: {a: [1]}\n"
                       "name: \"\"\n";
    rv_ydoc *doc = parse(text);
    const rv_ynode *root = rv_ydoc_root(doc);
    cfg c;
    memset(&c, 0, sizeof(c));
    cr_assert_null(rv_config_apply(table, NKEYS, root, skip, "source 'logs'", &c));
    cr_assert_str_eq(c.path, "/tmp/a b");
    cr_assert_eq(c.rate, 250);
    cr_assert_float_eq(c.ratio, 0.125, 1e-12);
    cr_assert_eq(c.follow, false);
    cr_assert_eq(c.timeout_ms, 1500);
    cr_assert_eq(c.buffer, 16 * 1024 * 1024);
    cr_assert_eq(c.on_error, 2);
    cr_assert_str_eq(c.filter.src, "level == \"error\"");
    cr_assert_eq(c.filter.node, rv_ymap_get(root, "filter"));
    cr_assert_eq(c.filter.src, rv_ymap_get(root, "filter")->str); /* not a copy */
    cr_assert_eq(c.extra, rv_ymap_get(root, "extra"));
    cr_assert_eq(c.extra->kind, RV_YAML_MAP);
    cr_assert_str_eq(c.name, "");
    rv_config_free(table, NKEYS, &c);
    rv_ydoc_free(doc);
}

Test(rv_config, booleans_accept_yes_no_on_off)
{
    static const struct {
        const char *text;
        bool want;
    } cases[] = {{"true", true}, {"TRUE", true}, {"yes", true}, {"Yes", true}, {"on", true},
                 {"false", false}, {"False", false}, {"no", false}, {"NO", false}, {"off", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "path: p\nfollow: %s\n", cases[i].text);
        rv_ydoc *doc = parse(text);
        cfg c;
        memset(&c, 0, sizeof(c));
        c.follow = !cases[i].want;
        cr_assert_null(rv_config_apply(table, NKEYS, rv_ydoc_root(doc), NULL, "s", &c));
        cr_assert_eq(c.follow, cases[i].want, "%s", cases[i].text);
        rv_config_free(table, NKEYS, &c);
        rv_ydoc_free(doc);
    }
    expect_apply_err("path: p\nfollow: maybe\n", "f.yaml:2:9: source 'logs': key 'follow' expects true or false, got 'maybe'");
}

Test(rv_config, missing_required_key_is_positioned_at_the_map)
{
    expect_apply_err("source:\n  rate: 5\n", "f.yaml:1:1: source 'logs': unknown key 'source' (valid keys: path, rate, "
                                             "ratio, follow, timeout, buffer, on_error, filter, extra, name, id, type, input)");
    rv_ydoc *doc = parse("source:\n  rate: 5\n");
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_err *err = rv_config_apply(table, NKEYS, rv_ymap_get(rv_ydoc_root(doc), "source"), skip, "source 'logs'", &c);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:2:3: source 'logs': missing required key 'path'");
    cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
    rv_err_free(err);
    /* Without a map there is no position. */
    err = rv_config_apply(table, NKEYS, NULL, skip, "source 'logs'", &c);
    cr_assert_str_eq(rv_err_msg(err), "source 'logs': missing required key 'path'");
    rv_err_free(err);
    rv_ydoc_free(doc);
}

Test(rv_config, null_or_absent_map_means_defaults)
{
    const rv_cfg_key *opt = &table[1]; /* from rate on, nothing is required */
    rv_ydoc *doc = parse("a:\nb: ~\n");
    const char *keys[] = {"a", "b"};
    for (size_t i = 0; i < 2; i++) {
        cfg c;
        memset(&c, 0, sizeof(c));
        cr_assert_null(rv_config_apply(opt, NKEYS - 1, rv_ymap_get(rv_ydoc_root(doc), keys[i]), NULL, "s", &c));
        cr_assert_eq(c.rate, 100);
        cr_assert_str_eq(c.name, "x");
        rv_config_free(opt, NKEYS - 1, &c);
    }
    cfg c;
    memset(&c, 0, sizeof(c));
    cr_assert_null(rv_config_apply(opt, NKEYS - 1, NULL, NULL, "s", &c));
    cr_assert_eq(c.timeout_ms, 10000);
    rv_config_free(opt, NKEYS - 1, &c);
    rv_ydoc_free(doc);
}

Test(rv_config, non_map_config_is_an_error)
{
    expect_apply_err("- a\n- b\n", "f.yaml:1:1: source 'logs': expected a map of settings, got a list");
    expect_apply_err("--- just text\n", "f.yaml:1:5: source 'logs': expected a map of settings, got 'just text'");
}

Test(rv_config, integer_errors)
{
    /*                          123456789012 */
    expect_apply_err("path: p\n\n\nrate:      fast\n",
                     "f.yaml:4:12: source 'logs': key 'rate' expects an integer, got 'fast'");
    expect_apply_err("path: p\nrate: 12.5\n", "f.yaml:2:7: source 'logs': key 'rate' expects an integer, got '12.5'");
    expect_apply_err("path: p\nrate: [1]\n", "f.yaml:2:7: source 'logs': key 'rate' expects an integer, got a list");
    expect_apply_err("path: p\nrate: 99999999999999999999\n",
                     "f.yaml:2:7: source 'logs': key 'rate' expects an integer, got '99999999999999999999' (out of range)");
    expect_apply_err("path: p\nrate: 5000\n", "f.yaml:2:7: source 'logs': key 'rate' must be between 1 and 1000");
    expect_apply_err("path: p\nrate: 0\n", "f.yaml:2:7: source 'logs': key 'rate' must be between 1 and 1000");
    expect_apply_err("path: p\nrate: \"\"\n", "f.yaml:2:7: source 'logs': key 'rate' expects an integer, got ''");
}

Test(rv_config, integer_bounds_are_inclusive)
{
    const char *ok[] = {"1", "1000", "+7", "0007"};
    const int64_t want[] = {1, 1000, 7, 7};
    for (size_t i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof(text), "path: p\nrate: %s\n", ok[i]);
        rv_ydoc *doc = parse(text);
        cfg c;
        memset(&c, 0, sizeof(c));
        cr_assert_null(rv_config_apply(table, NKEYS, rv_ydoc_root(doc), NULL, "s", &c));
        cr_assert_eq(c.rate, want[i]);
        rv_config_free(table, NKEYS, &c);
        rv_ydoc_free(doc);
    }
}

Test(rv_config, float_errors)
{
    expect_apply_err("path: p\nratio: abc\n", "f.yaml:2:8: source 'logs': key 'ratio' expects a number, got 'abc'");
    expect_apply_err("path: p\nratio: nan\n", "f.yaml:2:8: source 'logs': key 'ratio' expects a number, got 'nan'");
    expect_apply_err("path: p\nratio: 0x10\n", "f.yaml:2:8: source 'logs': key 'ratio' expects a number, got '0x10'");
    expect_apply_err("path: p\nratio: 1e999\n", "f.yaml:2:8: source 'logs': key 'ratio' expects a number, got '1e999'");
}

Test(rv_config, duration_and_size_errors)
{
    expect_apply_err("path: p\ntimeout: 10 sec\n",
                     "f.yaml:2:10: source 'logs': key 'timeout' expects a duration such as 500ms, 10s, 1m or 1h, "
                     "got '10 sec'");
    expect_apply_err("path: p\ntimeout: 2h\n", "f.yaml:2:10: source 'logs': key 'timeout' must be between 1ms and 1h");
    expect_apply_err("path: p\ntimeout: 0\n", "f.yaml:2:10: source 'logs': key 'timeout' must be between 1ms and 1h");
    expect_apply_err("path: p\nbuffer: 16 MB\n",
                     "f.yaml:2:9: source 'logs': key 'buffer' expects a size such as 512, 64KiB or 16MiB, got '16 MB'");
    expect_apply_err("path: p\nbuffer: 2GiB\n", "f.yaml:2:9: source 'logs': key 'buffer' must be between 1KiB and 1GiB");
    expect_apply_err("path: p\nbuffer: 1000\n", "f.yaml:2:9: source 'logs': key 'buffer' must be between 1KiB and 1GiB");
}

Test(rv_config, enum_lists_choices)
{
    expect_apply_err("path: p\non_error: retry\n",
                     "f.yaml:2:11: source 'logs': key 'on_error' must be one of: fail, skip, dead_letter");
    expect_apply_err("path: p\non_error: FAIL\n",
                     "f.yaml:2:11: source 'logs': key 'on_error' must be one of: fail, skip, dead_letter");
}

Test(rv_config, strings_and_expressions_must_be_scalars)
{
    expect_apply_err("path: [a]\n", "f.yaml:1:7: source 'logs': key 'path' expects a string, got a list");
    expect_apply_err("path: p\nfilter: {a: 1}\n", "f.yaml:2:9: source 'logs': key 'filter' expects an expression, got a map");
    expect_apply_err("path: \"a\\0b\"\n", "f.yaml:1:7: source 'logs': key 'path' must not contain a NUL character");
}

Test(rv_config, unknown_key_gets_a_suggestion)
{
    rv_ydoc *doc = parse("sources:\n"
                         "  - id: logs\n"
                         "    type: file\n"
                         "    path: p\n"
                         "    patth: q\n");
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_err *err = rv_config_apply(table, NKEYS, rv_ymap_get(rv_ydoc_root(doc), "sources")->vals[0], skip,
                                  "source 'logs'", &c);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:5:5: source 'logs': unknown key 'patth' (did you mean 'path'?)");
    rv_err_free(err);
    rv_ydoc_free(doc);
    /* Caller-handled names are valid keys and candidates too. */
    expect_apply_err("path: p\ninptu: a\n", "f.yaml:2:1: source 'logs': unknown key 'inptu' (did you mean 'input'?)");
    char *msg = apply_err("path: p\nid: a\ntype: file\ninput: x\n", NULL);
    cr_assert_null(msg, "%s", msg);
}

Test(rv_config, unknown_key_is_reported_before_missing_keys)
{
    expect_apply_err("patth: p\n", "f.yaml:1:1: source 'logs': unknown key 'patth' (did you mean 'path'?)");
}

Test(rv_config, unknown_key_without_candidate_lists_valid_keys)
{
    expect_apply_err("path: p\nzzzzzzz: 1\n",
                     "f.yaml:2:1: source 'logs': unknown key 'zzzzzzz' (valid keys: path, rate, ratio, follow, "
                     "timeout, buffer, on_error, filter, extra, name, id, type, input)");
    static const rv_cfg_key one[] = {
        {"level", RV_CFG_INT, NULL, 0, "", NULL, 0, 0, 0},
    };
    rv_ydoc *doc = parse("colour: red\n");
    int64_t v = 0;
    rv_err *err = rv_config_apply(one, 1, rv_ydoc_root(doc), NULL, NULL, &v);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:1:1: unknown key 'colour' (valid keys: level)");
    rv_err_free(err);
    err = rv_config_apply(one, 0, rv_ydoc_root(doc), NULL, "sink 'out'", &v);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:1:1: sink 'out': unknown key 'colour' (no keys are accepted)");
    rv_err_free(err);
    rv_ydoc_free(doc);
}

Test(rv_config, long_values_are_shortened_in_messages)
{
    char text[200];
    snprintf(text, sizeof(text), "path: p\nrate: %s\n",
             "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggg");
    expect_apply_err(text, "f.yaml:2:7: source 'logs': key 'rate' expects an integer, got "
                           "'aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff...'");
}

Test(rv_config, failure_releases_strings_already_stored)
{
    /* path is stored before on_error fails; apply_err asserts it is NULL. */
    expect_apply_err("path: p\non_error: nope\nname: n\n",
                     "f.yaml:2:11: source 'logs': key 'on_error' must be one of: fail, skip, dead_letter");
}

Test(rv_config, bad_default_is_an_internal_error)
{
    static const rv_cfg_key bad[] = {
        {"rate", RV_CFG_INT, "ten", 0, "", NULL, 0, 0, 0},
    };
    int64_t v = 0;
    rv_err *err = rv_config_apply(bad, 1, NULL, NULL, "operator 'w'", &v);
    cr_assert_eq(rv_err_code(err), RV_ERR_INTERNAL);
    cr_assert_str_eq(rv_err_msg(err), "operator 'w': key 'rate' (default) expects an integer, got 'ten'");
    rv_err_free(err);
}

Test(rv_config, expression_default_points_at_the_table)
{
    static const rv_cfg_key k[] = {
        {"filter", RV_CFG_EXPR, "true", 0, "", NULL, 0, 0, 0},
    };
    rv_cfg_expr e = {0};
    cr_assert_null(rv_config_apply(k, 1, NULL, NULL, "x", &e));
    cr_assert_str_eq(e.src, "true");
    cr_assert_null(e.node);
}

/* ---- node converters --------------------------------------------------- */

Test(rv_config, node_converters_position_their_errors)
{
    rv_ydoc *doc = parse("d: 10 sec\ni: fast\nb: maybe\nm: {x: 1}\nok: 90s\nn: -12\nt: On\nbig: 9223372036854775808\n");
    const rv_ynode *root = rv_ydoc_root(doc);
    int64_t v = 0;
    bool b = false;
    rv_err *err = rv_ynode_duration(rv_ymap_get(root, "d"), &v);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:1:4: expected a duration such as 500ms, 10s, 1m or 1h, got '10 sec'");
    rv_err_free(err);
    err = rv_ynode_int(rv_ymap_get(root, "i"), &v);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:2:4: expected an integer, got 'fast'");
    rv_err_free(err);
    err = rv_ynode_int(rv_ymap_get(root, "big"), &v);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:8:6: expected an integer, got '9223372036854775808' (out of range)");
    rv_err_free(err);
    err = rv_ynode_bool(rv_ymap_get(root, "b"), &b);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:3:4: expected true or false, got 'maybe'");
    rv_err_free(err);
    err = rv_ynode_duration(rv_ymap_get(root, "m"), &v);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:4:4: expected a duration such as 500ms, 10s, 1m or 1h, got a map");
    rv_err_free(err);
    err = rv_ynode_scalar(rv_ymap_get(root, "m"), "event_time.field");
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:4:4: event_time.field: expected a scalar, got a map");
    rv_err_free(err);
    err = rv_ynode_scalar(NULL, "event_time.field");
    cr_assert_str_eq(rv_err_msg(err), "event_time.field: missing value");
    rv_err_free(err);
    cr_assert_null(rv_ynode_scalar(rv_ymap_get(root, "d"), "x"));

    cr_assert_null(rv_ynode_duration(rv_ymap_get(root, "ok"), &v));
    cr_assert_eq(v, 90000);
    cr_assert_null(rv_ynode_int(rv_ymap_get(root, "n"), &v));
    cr_assert_eq(v, -12);
    cr_assert_null(rv_ynode_bool(rv_ymap_get(root, "t"), &b));
    cr_assert_eq(b, true);
    rv_ydoc_free(doc);
}

Test(rv_config, int_limits)
{
    rv_ydoc *doc = parse("lo: -9223372036854775808\nhi: 9223372036854775807\nlo1: -9223372036854775809\n");
    const rv_ynode *root = rv_ydoc_root(doc);
    int64_t v = 0;
    cr_assert_null(rv_ynode_int(rv_ymap_get(root, "lo"), &v));
    cr_assert_eq(v, INT64_MIN);
    cr_assert_null(rv_ynode_int(rv_ymap_get(root, "hi"), &v));
    cr_assert_eq(v, INT64_MAX);
    rv_err *err = rv_ynode_int(rv_ymap_get(root, "lo1"), &v);
    cr_assert_not_null(err);
    cr_assert_eq(v, INT64_MAX, "out-parameter written on failure");
    rv_err_free(err);
    rv_ydoc_free(doc);
}

/* ---- durations and sizes ----------------------------------------------- */

Test(rv_config, durations_valid)
{
    static const struct {
        const char *s;
        int64_t ms;
    } cases[] = {
        {"0", 0}, {"500", 500}, {"500ms", 500}, {"10s", 10000}, {"1m", 60000}, {"1h", 3600000},
        {"1d", 86400000}, {"0s", 0}, {"1.5s", 1500}, {"0.25m", 15000}, {"2.0", 2}, {"007s", 7000},
        {"9223372036854775807", INT64_MAX}, {"106751991167d", INT64_C(106751991167) * 86400000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        cr_assert(rv_duration_parse(cases[i].s, &ms), "%s rejected", cases[i].s);
        cr_assert_eq(ms, cases[i].ms, "%s: %lld", cases[i].s, (long long)ms);
    }
}

Test(rv_config, durations_invalid)
{
    static const char *const bad[] = {
        "", "-1s", "+1s", "1.5", "1.0005s", "10 sec", "10sec", "s", "1.s", ".5s", "1e3", "10S",
        " 10s", "10s ", "1h30m", "9223372036854775808", "9223372036854775807s", "106751991168d",
        "1.5us", "0x10",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        cr_assert_not(rv_duration_parse(bad[i], &ms), "'%s' accepted", bad[i]);
        cr_assert_eq(ms, 42, "out-parameter written for '%s'", bad[i]);
    }
}

Test(rv_config, sizes_valid)
{
    static const struct {
        const char *s;
        int64_t b;
    } cases[] = {
        {"0", 0}, {"512", 512}, {"512B", 512}, {"1KB", 1000}, {"1MB", 1000000}, {"1GB", 1000000000},
        {"1KiB", 1024}, {"64KiB", 65536}, {"16MiB", 16777216}, {"1GiB", 1073741824}, {"1.5KiB", 1536},
        {"2TiB", INT64_C(2199023255552)}, {"3TB", INT64_C(3000000000000)},
        {"8589934591GiB", INT64_C(8589934591) * 1073741824},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t b = -1;
        cr_assert(rv_size_parse(cases[i].s, &b), "%s rejected", cases[i].s);
        cr_assert_eq(b, cases[i].b, "%s: %lld", cases[i].s, (long long)b);
    }
}

Test(rv_config, sizes_invalid)
{
    static const char *const bad[] = {
        "", "-1", "1 KiB", "1kb", "1kib", "1K", "1PiB", "1.3B", "1.0001KB", "KiB", "8589934592GiB",
        "9223372036854775808", "1e3", "12MiB ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t b = 42;
        cr_assert_not(rv_size_parse(bad[i], &b), "'%s' accepted", bad[i]);
        cr_assert_eq(b, 42);
    }
}

/* ---- rv_suggest -------------------------------------------------------- */

static char low(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Reference: the textbook full-matrix Levenshtein distance. */
static size_t ref_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    size_t *d = calloc((n + 1) * (m + 1), sizeof(*d));
    for (size_t i = 0; i <= n; i++)
        d[i * (m + 1)] = i;
    for (size_t j = 0; j <= m; j++)
        d[j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t del = d[(i - 1) * (m + 1) + j] + 1, ins = d[i * (m + 1) + j - 1] + 1;
            size_t sub = d[(i - 1) * (m + 1) + j - 1] + (low(a[i - 1]) != low(b[j - 1]));
            size_t best = del < ins ? del : ins;
            d[i * (m + 1) + j] = best < sub ? best : sub;
        }
    size_t r = d[n * (m + 1) + m];
    free(d);
    return r;
}

Test(rv_suggest, picks_the_closest_plausible_typo)
{
    const char *const keys[] = {"path", "rate", "timeout", "buffer_size", "parallelism"};
    cr_assert_str_eq(rv_suggest("patth", keys, 5), "path");
    cr_assert_str_eq(rv_suggest("PATH", keys, 5), "path");
    cr_assert_str_eq(rv_suggest("timout", keys, 5), "timeout");
    cr_assert_str_eq(rv_suggest("parallelsim", keys, 5), "parallelism");
    cr_assert_str_eq(rv_suggest("bufer_sise", keys, 5), "buffer_size");
    cr_assert_null(rv_suggest("colour", keys, 5));
    cr_assert_null(rv_suggest("xyz", keys, 5));
    cr_assert_null(rv_suggest("patth", keys, 0));
}

Test(rv_suggest, ties_go_to_the_first_candidate)
{
    const char *const c1[] = {"abc", "abd"};
    cr_assert_str_eq(rv_suggest("abx", c1, 2), "abc");
    const char *const c2[] = {"abd", "abc"};
    cr_assert_str_eq(rv_suggest("abx", c2, 2), "abd");
    const char *const c3[] = {"abxy", "abx"}; /* a closer later candidate wins */
    cr_assert_str_eq(rv_suggest("abx", c3, 2), "abx");
}

Test(rv_suggest, matches_reference_distance_and_threshold)
{
    const char *const words[] = {"", "a", "id", "typ", "inptu", "outputs", "max_out_of_ordernes",
                                 "WINDOW", "key-by", "aggregation", "slide", "sizee"};
    const char *const cands[] = {"id", "type", "input", "inputs", "max_out_of_orderness", "window",
                                 "key_by", "aggregate", "size", "slide_by"};
    size_t nc = sizeof(cands) / sizeof(cands[0]);
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t limit = strlen(words[w]) / 3 > 2 ? strlen(words[w]) / 3 : 2;
        const char *want = NULL;
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < nc; i++) {
            size_t d = ref_distance(words[w], cands[i]);
            if (d <= limit && d < best) {
                best = d;
                want = cands[i];
            }
        }
        const char *got = rv_suggest(words[w], cands, nc);
        cr_assert_eq(got, want, "word '%s': got %s, want %s", words[w], got ? got : "NULL", want ? want : "NULL");
    }
}

/* ---- docs -------------------------------------------------------------- */

Test(rv_config, doc_writes_a_markdown_table)
{
    static const char *const modes[] = {"fail", "skip", NULL};
    static const rv_cfg_key keys[] = {
        {"path", RV_CFG_STRING, NULL, 0, "File to read.", NULL, RV_CFG_REQUIRED, 0, 0},
        {"rate", RV_CFG_INT, "100", 0, "Records per second.", NULL, 0, 1, 1000},
        {"timeout", RV_CFG_DURATION, "10s", 0, "Read timeout.", NULL, 0, 1000, 3600000},
        {"buffer", RV_CFG_SIZE, "64KiB", 0, "Read buffer.", NULL, 0, 0, 0},
        {"mode", RV_CFG_ENUM, "fail", 0, "On bad lines.", modes, 0, 0, 0},
        {"where", RV_CFG_EXPR, "a || b", 0, "Filter | keep.", NULL, 0, 0, 0},
        {"follow", RV_CFG_BOOL, "false", 0, NULL, NULL, 0, 0, 0},
        {"ratio", RV_CFG_FLOAT, NULL, 0, "Sampling.", NULL, 0, 0, 0},
        {"extra", RV_CFG_NODE, NULL, 0, "Any YAML.", NULL, 0, 0, 0},
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rv_config_doc(keys, sizeof(keys) / sizeof(keys[0]), f);
    fclose(f);
    const char *want = "| key | type | default | description |\n"
                       "|---|---|---|---|\n"
                       "| path | string | (required) | File to read. |\n"
                       "| rate | integer (1 to 1000) | `100` | Records per second. |\n"
                       "| timeout | duration (1s to 1h) | `10s` | Read timeout. |\n"
                       "| buffer | size | `64KiB` | Read buffer. |\n"
                       "| mode | one of: fail, skip | `fail` | On bad lines. |\n"
                       "| where | expression | `a \\|\\| b` | Filter \\| keep. |\n"
                       "| follow | boolean | `false` |  |\n"
                       "| ratio | number |  | Sampling. |\n"
                       "| extra | any |  | Any YAML. |\n";
    cr_assert_str_eq(buf, want);
    free(buf);
}
