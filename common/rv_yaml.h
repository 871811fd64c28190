/* rv_yaml: a YAML document as a tree of nodes that remember their position.
 *
 * libyaml's event stream is turned into maps, sequences and scalars, each
 * with the 1-based line and column of its first character, so every later
 * validation error can name `file:line:column`. Anchors and aliases, tags,
 * multiple documents and duplicate keys are rejected with a positioned
 * error. The tree is immutable after parsing and may be read from any
 * thread. */
#ifndef RV_YAML_H
#define RV_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "rv_err.h"

typedef enum { RV_YAML_SCALAR, RV_YAML_MAP, RV_YAML_SEQ } rv_ynode_kind;

typedef enum {
    RV_YAML_PLAIN,
    RV_YAML_SINGLE_QUOTED,
    RV_YAML_DOUBLE_QUOTED,
    RV_YAML_LITERAL, /* | */
    RV_YAML_FOLDED,  /* > */
} rv_yscalar_style;

typedef struct rv_ynode rv_ynode;
struct rv_ynode {
    rv_ynode_kind kind;
    int line, col;    /* 1-based position of the first character (a quote included) */
    const char *file; /* the name given to rv_yaml_parse (owned by the doc) */
    /* SCALAR */
    char *str;        /* decoded value, NUL-terminated */
    size_t len;
    rv_yscalar_style style;
    /* MAP: n pairs keys[i] -> vals[i] in document order; SEQ: n items vals[i]. */
    size_t n;
    rv_ynode **keys;
    rv_ynode **vals;
};

typedef struct rv_ydoc rv_ydoc;

/* Parses text (len bytes, need not be NUL-terminated). `file` names the
 * source in error messages. On success *out owns the tree. An empty
 * document gives a root that is an empty MAP. Errors read
 * "file:line:col: message". */
rv_err *rv_yaml_parse(const char *text, size_t len, const char *file, rv_ydoc **out);
/* Reads and parses a file. */
rv_err *rv_yaml_parse_file(const char *path, rv_ydoc **out);
const rv_ynode *rv_ydoc_root(const rv_ydoc *doc);
/* The original text (NUL-terminated copy). */
const char *rv_ydoc_text(const rv_ydoc *doc);
void rv_ydoc_free(rv_ydoc *doc);

/* Value of key in a MAP node, or NULL (also when node is not a MAP). */
const rv_ynode *rv_ymap_get(const rv_ynode *map, const char *key);
/* Value of key in a MAP, or the map itself when the key is absent: where
 * to point an error about that key's (possibly defaulted) value. */
const rv_ynode *rv_ymap_get_or_self(const rv_ynode *map, const char *key);
/* Key node of key in a MAP, or NULL (for positions of key errors). */
const rv_ynode *rv_ymap_key(const rv_ynode *map, const char *key);
const char *rv_ynode_kind_name(rv_ynode_kind k); /* "scalar", "map", "list" */

/* Position of byte `offset` of a scalar's decoded value, for errors inside
 * an expression. Exact for plain and single-line quoted scalars without
 * escapes; otherwise the best estimate (the scalar's own position for
 * block scalars: the line of the offset, its column within that line). */
void rv_ynode_pos(const rv_ynode *n, size_t offset, int *line, int *col);

/* A new error "file:line:col: message" at node n. */
rv_err *rv_yerr(const rv_ynode *n, rv_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same at byte `offset` within scalar n. */
rv_err *rv_yerr_at(const rv_ynode *n, size_t offset, rv_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
