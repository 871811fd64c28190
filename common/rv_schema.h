/* rv_schema: value types, record schemas and scalar values.
 *
 * A schema is an ordered list of named, typed fields. Schemas are immutable
 * once built and reference counted, so batches and operators on any thread
 * may share them. Event time is a TIMESTAMP field: int64 milliseconds since
 * the Unix epoch. */
#ifndef RV_SCHEMA_H
#define RV_SCHEMA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rv_type {
    RV_T_NULL = 0, /* only the type of the literal `null` */
    RV_T_BOOL,
    RV_T_INT64,
    RV_T_FLOAT64,
    RV_T_STRING,
    RV_T_TIMESTAMP, /* int64 epoch milliseconds */
} rv_type;

#define RV_T_COUNT 6

/* "bool", "int64", "float64", "string", "timestamp", "null". */
const char *rv_type_name(rv_type t);
/* Accepts the names above plus aliases int, long, double, float, str,
 * boolean. Returns false for anything else. */
bool rv_type_parse(const char *s, rv_type *out);
/* True for types stored as int64 (INT64, TIMESTAMP). */
static inline bool rv_type_is_int(rv_type t) { return t == RV_T_INT64 || t == RV_T_TIMESTAMP; }

typedef struct rv_field {
    char *name;
    rv_type type;
} rv_field;

typedef struct rv_schema {
    int nfields;
    rv_field *fields;
    atomic_int refs;
} rv_schema;

/* Builder: new empty schema with one reference; add fields; then share. */
rv_schema *rv_schema_new(void);
/* Appends a field (name copied). Returns its index. Only before sharing. */
int rv_schema_add(rv_schema *s, const char *name, rv_type type);
/* Index of a field by name, or -1. */
int rv_schema_find(const rv_schema *s, const char *name);
rv_schema *rv_schema_ref(rv_schema *s);
void rv_schema_unref(rv_schema *s); /* accepts NULL */
bool rv_schema_equal(const rv_schema *a, const rv_schema *b);
/* "name:type, name:type" into buf; returns buf. */
char *rv_schema_describe(const rv_schema *s, char *buf, size_t cap);

/* A scalar value. Strings point into memory owned elsewhere (a batch, a
 * literal in an expression, a state entry) unless the owner says otherwise. */
typedef struct rv_value {
    rv_type type;
    bool is_null;
    union {
        bool b;
        int64_t i; /* INT64 and TIMESTAMP */
        double f;
        struct {
            const char *ptr;
            uint32_t len;
        } s;
    } v;
} rv_value;

#endif
