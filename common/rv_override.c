/* rv_override: in-place text edits of a job file for `--set`. */
#include "rv_override.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"
#include "rv_record.h"
#include "rv_yaml.h"

/* Byte offset of (line, col) in text (1-based, col counts bytes here:
 * overridable scalars and keys are ASCII in practice). */
static size_t offset_of(const char *text, size_t len, int line, int col)
{
    size_t off = 0;
    for (int l = 1; l < line && off < len; off++)
        if (text[off] == '\n')
            l++;
    /* Columns count characters (as rv_yaml does): skip UTF-8 continuation
     * bytes. */
    for (int c = 1; c < col && off < len; c++) {
        off++;
        while (off < len && ((unsigned char)text[off] & 0xC0) == 0x80)
            off++;
    }
    return off;
}

/* Source length of a one-line scalar starting at text[off]. */
static bool scalar_extent(const rv_ynode *v, const char *text, size_t len, size_t off, size_t *n)
{
    if (v->style == RV_YAML_PLAIN) {
        if (memchr(v->str, '\n', v->len))
            return false;
        *n = v->len;
        return off + v->len <= len && memcmp(text + off, v->str, v->len) == 0;
    }
    if (v->style != RV_YAML_SINGLE_QUOTED && v->style != RV_YAML_DOUBLE_QUOTED)
        return false;
    char q = text[off];
    if (q != '\'' && q != '"')
        return false;
    size_t i = off + 1;
    while (i < len && text[i] != '\n') {
        if (q == '"' && text[i] == '\\') {
            i += 2;
            continue;
        }
        if (text[i] == q) {
            if (q == '\'' && i + 1 < len && text[i + 1] == '\'') {
                i += 2;
                continue;
            }
            *n = i + 1 - off;
            return true;
        }
        i++;
    }
    return false;
}

static void quote_value(const char *value, rv_buf *out)
{
    bool plain = value[0] != '\0' && !strchr("-?:,[]{}#&*!|>'\"%@`", value[0]);
    for (const char *p = value; *p && plain; p++)
        plain = isalnum((unsigned char)*p) || strchr("_./:+-@", *p);
    if (strstr(value, ": ") || strstr(value, " #"))
        plain = false;
    if (plain) {
        rv_buf_append(out, value, strlen(value));
        return;
    }
    rv_buf_append(out, "'", 1);
    for (const char *p = value; *p; p++) {
        rv_buf_append(out, p, 1);
        if (*p == '\'')
            rv_buf_append(out, "'", 1);
    }
    rv_buf_append(out, "'", 1);
}

static const rv_ynode *find_node(const rv_ynode *root, const char *id)
{
    static const char *const sections[] = {"sources", "operators", "sinks"};
    for (int s = 0; s < 3; s++) {
        const rv_ynode *list = rv_ymap_get(root, sections[s]);
        if (!list || list->kind != RV_YAML_SEQ)
            continue;
        for (size_t i = 0; i < list->n; i++) {
            const rv_ynode *idn = rv_ymap_get(list->vals[i], "id");
            if (idn && idn->kind == RV_YAML_SCALAR && strcmp(idn->str, id) == 0)
                return list->vals[i];
        }
    }
    return NULL;
}

/* One override on text (replaced by the new text). */
static rv_err *apply_one(char **text, size_t *len, const char *file, const char *set)
{
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return rv_err_new(RV_ERR_INVALID, "--set %s: expected key=value", set);
    char *key = rv_xstrndup(set, (size_t)(eq - set));
    const char *value = eq + 1;
    for (const char *p = key; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')) {
            free(key);
            return rv_err_new(RV_ERR_INVALID, "--set %s: a key has only letters, digits, '_', '-' and '.'", set);
        }
    if (strpbrk(value, "\r\n")) {
        free(key);
        return rv_err_new(RV_ERR_INVALID, "--set %s: a value must be one line", set);
    }
    rv_buf out = {0};
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse(*text, *len, file, &doc);
    if (err) {
        free(key);
        return err;
    }
    const rv_ynode *map = rv_ydoc_root(doc);
    char *k = key;
    char *dot = strchr(key, '.');
    char *wrap = NULL; /* a missing job-level map (state, checkpointing, restart): added holding k */
    if (dot) {
        *dot = '\0';
        const rv_ynode *node = find_node(map, key);
        if (!node && map->kind == RV_YAML_MAP && !rv_ymap_get(map, key) && !strchr(dot + 1, '.') &&
            (strcmp(key, "state") == 0 || strcmp(key, "checkpointing") == 0 || strcmp(key, "restart") == 0)) {
            wrap = key; /* e.g. state.backend=memory on a job without a state map */
        } else if (!node && map->kind == RV_YAML_MAP && rv_ymap_get(map, key)) {
            node = rv_ymap_get(map, key); /* a job-level map, e.g. state.backend */
        } else if (!node) {
            err = rv_err_new(RV_ERR_NOT_FOUND, "--set %s: the job has no node '%s'", set, key);
            goto out;
        }
        k = dot + 1;
        if (node)
            map = node;
        /* Deeper keys walk nested maps: gen.fields.ts.rate */
        while (!wrap && (dot = strchr(k, '.'))) {
            *dot = '\0';
            const rv_ynode *next = map->kind == RV_YAML_MAP ? rv_ymap_get(map, k) : NULL;
            if (!next || next->kind != RV_YAML_MAP) {
                err = rv_err_new(RV_ERR_NOT_FOUND, "--set %s: no map '%s' to set a key in", set, k);
                goto out;
            }
            map = next;
            k = dot + 1;
        }
    }
    if (map->kind != RV_YAML_MAP || (*text)[offset_of(*text, *len, map->line, map->col)] == '{') {
        err = rv_err_new(RV_ERR_INVALID, "--set %s: only block-style maps can be overridden", set);
        goto out;
    }
    const rv_ynode *v = rv_ymap_get(map, k);
    if (v) {
        size_t off = offset_of(*text, *len, v->line, v->col), n = 0;
        if (v->kind != RV_YAML_SCALAR || !scalar_extent(v, *text, *len, off, &n)) {
            err = rv_err_new(RV_ERR_INVALID, "--set %s: '%s' is not a one-line value (%s:%d:%d)", set, k, file, v->line, v->col);
            goto out;
        }
        rv_buf_append(&out, *text, off);
        quote_value(value, &out);
        rv_buf_append(&out, *text + off + n, *len - off - n);
    } else {
        /* A new key: a line of its own before the map's first key, at its
         * indentation. */
        const rv_ynode *first = map->n ? map->keys[0] : NULL;
        if (!first) {
            err = rv_err_new(RV_ERR_INVALID, "--set %s: cannot add a key to an empty map", set);
            goto out;
        }
        size_t off = offset_of(*text, *len, first->line, first->col);
        rv_buf_append(&out, *text, off);
        if (wrap) { /* a block map of its own, so later overrides can edit it */
            rv_buf_printf(&out, "%s:\n", wrap);
            for (int c = 1; c < first->col + 2; c++)
                rv_buf_append(&out, " ", 1);
            rv_buf_printf(&out, "%s: ", k);
            quote_value(value, &out);
            rv_buf_append(&out, "\n", 1);
        } else {
            rv_buf_printf(&out, "%s: ", k);
            quote_value(value, &out);
            rv_buf_append(&out, "\n", 1);
        }
        for (int c = 1; c < first->col; c++)
            rv_buf_append(&out, " ", 1);
        rv_buf_append(&out, *text + off, *len - off);
    }
    rv_buf_append(&out, "", 1); /* NUL-terminated for callers that need a C string */
    free(*text);
    *text = out.data;
    *len = out.len - 1;
out:
    if (err)
        rv_buf_fini(&out);
    rv_ydoc_free(doc);
    free(key);
    return err;
}

rv_err *rv_override_apply(const char *text, size_t len, const char *file, const char *const *sets, int n, char **out,
                          size_t *out_len)
{
    char *t = rv_xstrndup(text, len);
    size_t l = len;
    for (int i = 0; i < n; i++) {
        rv_err *err = apply_one(&t, &l, file, sets[i]);
        if (err) {
            free(t);
            return err;
        }
    }
    *out = t;
    *out_len = l;
    return NULL;
}
