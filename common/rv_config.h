/* rv_config: table-driven configuration of sources, operators and sinks.
 *
 * Each plugin declares a static table of keys (name, type, default, offset
 * into its config struct, one-line doc). rv_config_apply() reads a YAML map
 * into the struct: fills defaults, converts and range-checks values, and
 * rejects unknown keys with a "did you mean" hint. rv_config_doc() writes
 * the same table as Markdown for docs/jobspec.md, so docs and parser cannot
 * drift apart. */
#ifndef RV_CONFIG_H
#define RV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rv_err.h"
#include "rv_yaml.h"

typedef enum rv_cfg_type {
    RV_CFG_STRING,   /* char * (owned by the struct; freed by rv_config_free) */
    RV_CFG_INT,      /* int64_t */
    RV_CFG_FLOAT,    /* double */
    RV_CFG_BOOL,     /* bool: true/false/yes/no/on/off */
    RV_CFG_DURATION, /* int64_t milliseconds: "500ms", "10s", "1m", "1h", "1d"; plain number = ms */
    RV_CFG_SIZE,     /* int64_t bytes: "512", "64KiB", "16MiB", "1GiB" (also KB/MB/GB = powers of 1000) */
    RV_CFG_ENUM,     /* int: index into `choices` */
    RV_CFG_EXPR,     /* rv_cfg_expr: an expression's source text and its YAML node */
    RV_CFG_NODE,     /* const rv_ynode *: any YAML value, interpreted by the plugin */
} rv_cfg_type;

/* An expression kept with its node so type errors can point inside it. */
typedef struct rv_cfg_expr {
    const char *src;      /* points into the YAML tree (not owned); NULL if absent */
    const rv_ynode *node; /* the scalar; NULL if absent */
} rv_cfg_expr;

#define RV_CFG_REQUIRED 1u

typedef struct rv_cfg_key {
    const char *name;
    rv_cfg_type type;
    const char *def; /* default as YAML text; NULL = none (field stays zero / NULL) */
    size_t offset;   /* offsetof(config struct, field) */
    const char *doc; /* one line for docs/jobspec.md */
    const char *const *choices; /* ENUM: NULL-terminated */
    unsigned flags;             /* RV_CFG_REQUIRED */
    int64_t min, max;           /* INT/DURATION/SIZE range when min < max */
} rv_cfg_key;

/* Applies `map` (a YAML MAP, or NULL for "all defaults") to `obj`.
 * Keys present in `map` that are neither in `keys` (n entries) nor in
 * `skip` (NULL-terminated names handled by the caller, may be NULL) are
 * errors with a suggestion. Errors are positioned: "file:l:c: message".
 * `what` names the object in messages ("source 'logs'"). */
rv_err *rv_config_apply(const rv_cfg_key *keys, size_t n, const rv_ynode *map,
                        const char *const *skip, const char *what, void *obj);
/* Frees what rv_config_apply allocated in obj (strings). */
void rv_config_free(const rv_cfg_key *keys, size_t n, void *obj);
/* Writes a Markdown table (| key | type | default | description |). */
void rv_config_doc(const rv_cfg_key *keys, size_t n, FILE *out);

/* Scalar conversions, shared with code that parses YAML by hand.
 * Each returns NULL or a positioned error naming the node. */
rv_err *rv_ynode_duration(const rv_ynode *n, int64_t *ms);
rv_err *rv_ynode_int(const rv_ynode *n, int64_t *v);
rv_err *rv_ynode_bool(const rv_ynode *n, bool *v);
rv_err *rv_ynode_scalar(const rv_ynode *n, const char *what); /* error unless SCALAR */

/* Plain parsers (no node). Return false on bad syntax. */
bool rv_duration_parse(const char *s, int64_t *ms);
bool rv_size_parse(const char *s, int64_t *bytes);

/* The candidate closest to word by edit distance, if close enough to be
 * a plausible typo (distance <= max(2, strlen/3)); else NULL. */
const char *rv_suggest(const char *word, const char *const *candidates, size_t n);

#endif
