/* rv_schema: types, schemas (immutable after build, ref counted). */
#include "rv_schema.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

const char *rv_type_name(rv_type t)
{
    switch (t) {
    case RV_T_NULL: return "null";
    case RV_T_BOOL: return "bool";
    case RV_T_INT64: return "int64";
    case RV_T_FLOAT64: return "float64";
    case RV_T_STRING: return "string";
    case RV_T_TIMESTAMP: return "timestamp";
    }
    return "?";
}

bool rv_type_parse(const char *s, rv_type *out)
{
    static const struct {
        const char *name;
        rv_type t;
    } names[] = {
        {"bool", RV_T_BOOL},       {"boolean", RV_T_BOOL},   {"int64", RV_T_INT64},
        {"int", RV_T_INT64},       {"long", RV_T_INT64},     {"float64", RV_T_FLOAT64},
        {"double", RV_T_FLOAT64},  {"float", RV_T_FLOAT64},  {"string", RV_T_STRING},
        {"str", RV_T_STRING},      {"timestamp", RV_T_TIMESTAMP},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].t;
            return true;
        }
    }
    return false;
}

rv_schema *rv_schema_new(void)
{
    rv_schema *s = rv_xcalloc(1, sizeof(*s));
    s->refs = 1;
    return s;
}

int rv_schema_add(rv_schema *s, const char *name, rv_type type)
{
    s->fields = rv_xrealloc(s->fields, (size_t)(s->nfields + 1) * sizeof(rv_field));
    s->fields[s->nfields].name = rv_xstrdup(name);
    s->fields[s->nfields].type = type;
    return s->nfields++;
}

int rv_schema_find(const rv_schema *s, const char *name)
{
    for (int i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return i;
    return -1;
}

rv_schema *rv_schema_ref(rv_schema *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void rv_schema_unref(rv_schema *s)
{
    if (!s)
        return;
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int i = 0; i < s->nfields; i++)
        free(s->fields[i].name);
    free(s->fields);
    free(s);
}

bool rv_schema_equal(const rv_schema *a, const rv_schema *b)
{
    if (a->nfields != b->nfields)
        return false;
    for (int i = 0; i < a->nfields; i++)
        if (a->fields[i].type != b->fields[i].type || strcmp(a->fields[i].name, b->fields[i].name))
            return false;
    return true;
}

char *rv_schema_describe(const rv_schema *s, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->nfields && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%s:%s", i ? ", " : "", s->fields[i].name,
                                rv_type_name(s->fields[i].type));
    return buf;
}
