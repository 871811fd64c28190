/* rv_expr_internal: the parts of the expression compiler shared by its
 * source files and by nothing else. The parser (rv_expr_parse.c) builds a
 * tree of rv_enode with the byte range of every node; the checker
 * (rv_expr_check.c) resolves field and function names, assigns types,
 * inserts implicit int->float conversions, compiles regexes and `in` lists
 * and folds constants; the evaluator (rv_expr_eval.c, with the functions in
 * rv_expr_func.c) turns each node into a column for a whole batch, writing
 * into scratch columns kept in the nodes and reused across batches. */
#ifndef RV_EXPR_INTERNAL_H
#define RV_EXPR_INTERNAL_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_err.h"
#include "rv_expr.h"
#include "rv_mem.h"
#include "rv_schema.h"

typedef enum rv_enode_kind {
    RV_EN_LIT,    /* literal; also the result of constant folding */
    RV_EN_FIELD,  /* field reference (or synthetic aggregate "$k") */
    RV_EN_UNARY,  /* op: RV_OP_NOT, RV_OP_NEG */
    RV_EN_BINARY, /* op: RV_OP_OR .. RV_OP_MOD */
    RV_EN_IN,     /* args[0] in [args[1..]] */
    RV_EN_CALL,   /* op: rv_efn; also casts, implicit ones included */
} rv_enode_kind;

typedef enum rv_eop {
    RV_OP_NONE = 0,
    RV_OP_OR, RV_OP_AND,
    RV_OP_EQ, RV_OP_NE, RV_OP_LT, RV_OP_LE, RV_OP_GT, RV_OP_GE,
    RV_OP_ADD, RV_OP_SUB, RV_OP_MUL, RV_OP_DIV, RV_OP_MOD,
    RV_OP_NOT, RV_OP_NEG,
} rv_eop;

typedef enum rv_efn {
    RV_FN_IF, RV_FN_COALESCE, RV_FN_LOWER, RV_FN_UPPER, RV_FN_LEN, RV_FN_CONTAINS,
    RV_FN_STARTS_WITH, RV_FN_ENDS_WITH, RV_FN_SUBSTR, RV_FN_SPLIT_INDEX,
    RV_FN_REGEX_EXTRACT, RV_FN_ABS, RV_FN_ROUND, RV_FN_HOUR,
    RV_FN_INT, RV_FN_FLOAT, RV_FN_STRING, RV_FN_BOOL, RV_FN_TIMESTAMP,
    RV_FN_COUNT, RV_FN_SUM, RV_FN_MIN, RV_FN_MAX, RV_FN_AVG, RV_FN_FIRST, RV_FN_LAST, RV_FN_COUNT_DISTINCT,
    RV_FN_APPROX_COUNT_DISTINCT,
} rv_efn;

/* Type masks for function signatures. */
#define RV_TM(t) (1u << (t))
#define RV_TM_NUM (RV_TM(RV_T_INT64) | RV_TM(RV_T_FLOAT64))
#define RV_TM_ANY (RV_TM(RV_T_BOOL) | RV_TM_NUM | RV_TM(RV_T_STRING) | RV_TM(RV_T_TIMESTAMP))

typedef struct rv_efunc_info {
    const char *name;
    rv_efn fn;
    int min_args, max_args;  /* max_args < 0: any number */
    unsigned arg_mask[3];    /* accepted types per argument (the last repeats) */
    bool agg;                /* aggregate: only through rv_expr_compile_agg */
} rv_efunc_info;

typedef struct rv_enode rv_enode;

struct rv_enode {
    rv_enode_kind kind;
    int op;         /* rv_eop for UNARY/BINARY, rv_efn for CALL */
    rv_type type;   /* after checking; RV_T_NULL only for an untyped null */
    size_t pos;     /* first byte of the node in the source */
    size_t end;     /* one past its last byte */
    size_t op_pos;  /* operator token, or function name */
    int nargs;
    rv_enode **args;
    int height;     /* 1 + the tallest argument; bounded by the parser */
    bool implicit;  /* CALL: a conversion inserted by the checker */

    /* LIT: the value (is_null for null of any type). str is owned. */
    bool is_null;
    uint8_t null_byte; /* 1 when is_null: lets a literal act as a null map */
    uint8_t b;
    int64_t i;
    double f;
    char *str;
    uint32_t soff[2]; /* {0, strlen}: a literal string as a 1-row offsets array */

    /* FIELD: name as written (owned), resolved index, synthetic "$k". */
    char *name;
    int field;
    bool synthetic;

    /* IN: the list, converted to the left side's storage type. */
    int nlist;
    int64_t *list_i;   /* INT64/TIMESTAMP/BOOL (0/1), sorted */
    double *list_f;    /* FLOAT64, sorted */
    char **list_s;     /* STRING, pointing into the item literals */
    uint32_t *list_len;

    /* CALL regex_extract: compiled pattern and match scratch. */
    regex_t *re;
    int group;
    regmatch_t *pm;
    char *buf;         /* NUL-terminated copy of one row for regexec */
    size_t buf_cap;

    /* Scratch result column, reused across batches (type = node type). */
    rv_column res;
    bool res_ready;
    /* Argument views of a call with many arguments (coalesce), kept
     * across batches. */
    struct rv_vec *argv;
};

/* A read-only view of a node's value over a batch: a column, or a scalar
 * repeated for every row (m == 0). Element i of a view is at index
 * (i & m). nulls is NULL when no row is null. */
typedef struct rv_vec {
    rv_type type;
    uint32_t m;
    const uint8_t *nulls;
    union {
        const uint8_t *b;
        const int64_t *i;
        const double *f;
    } d;
    const uint32_t *off; /* STRING */
    const char *data;    /* STRING */
} rv_vec;

static inline bool rv_vec_null(const rv_vec *v, uint32_t i) { return v->nulls && v->nulls[i & v->m]; }
static inline const char *rv_vec_str(const rv_vec *v, uint32_t i, uint32_t *len)
{
    uint32_t k = i & v->m;
    *len = v->off[k + 1] - v->off[k];
    return v->data + v->off[k];
}

/* ---- nodes (rv_expr_parse.c) ---- */
rv_enode *rv_enode_new(rv_enode_kind kind, size_t pos);
/* Frees n and its subtree (NULL accepted). */
void rv_enode_free(rv_enode *n);
/* Parses src into a tree. On error returns it with *err_offset set. */
rv_err *rv_expr_parse(const char *src, rv_enode **out, size_t *err_offset);

/* ---- checking (rv_expr_check.c) ---- */
typedef struct rv_echeck {
    const rv_schema *in;    /* fields that may be referenced */
    /* Aggregate-outer mode (compile_agg): fields of `in` are errors, and
     * synthetic fields refer to agg_schema. NULL otherwise. */
    const rv_schema *agg_schema;
    size_t err_offset;
} rv_echeck;

/* Resolves, types, converts and folds the tree *root (which may be
 * replaced). Returns an error with c->err_offset set on failure. */
rv_err *rv_expr_check(rv_echeck *c, rv_enode **root);

/* ---- functions (rv_expr_func.c) ---- */
const rv_efunc_info *rv_efunc_find(const char *name);
/* All function names (for suggestions); *n receives the count. */
const char *const *rv_efunc_names(size_t *n);
/* Evaluates a CALL node (other than if/coalesce) over nrows rows from its
 * evaluated arguments into dst, which has the node's type. */
void rv_efunc_eval(rv_enode *n, const rv_vec *args, uint32_t nrows, rv_column *dst);
/* Parses an ISO-8601 date-time into epoch ms (see rv_expr.c). */
bool rv_expr_parse_iso8601(const char *s, size_t len, int64_t *ms);

/* ---- evaluation (rv_expr_eval.c) ---- */
/* Evaluates n over `in` and describes the result in *out. Computed nodes
 * write into dst, or their own scratch column when dst is NULL; fields and
 * literals are returned as views without copying. */
void rv_enode_eval(rv_enode *n, const rv_batch *in, rv_column *dst, rv_vec *out);
/* Evaluates a root node into `out` (of the node's type): directly when the
 * node computes its result, else by copying the view. */
void rv_enode_eval_root(rv_enode *n, const rv_batch *in, rv_column *out);
/* Copies a view of nrows rows into c (of v's type, or any type when v is
 * an untyped null). */
void rv_vec_materialize(const rv_vec *v, uint32_t nrows, rv_column *c);
/* Prepares c to receive nrows rows: resets it and grows it. */
void rv_col_prepare(rv_column *c, uint32_t nrows);
/* Gives c a null map for rows [0, nrows) without clearing it; the caller
 * writes every byte. */
uint8_t *rv_col_nulls_raw(rv_column *c);
/* String output: room for `more` bytes past c->data_len (never NULL, so
 * that memcpy of zero bytes gets a valid pointer). */
static inline char *rv_col_str_room(rv_column *c, size_t more)
{
    rv_xgrow((void **)&c->data, &c->data_cap, c->data_len + more + 1, 1);
    return c->data + c->data_len;
}
/* Ends string row `row` after len bytes written at the room pointer. */
static inline void rv_col_str_commit(rv_column *c, uint32_t row, size_t len)
{
    c->data_len += len;
    c->offsets[row + 1] = (uint32_t)c->data_len;
}
/* Combines the null maps of a and b into c over nrows rows (OR). */
void rv_col_nulls_or(rv_column *c, uint32_t nrows, const rv_vec *a, const rv_vec *b);
/* Fills a view of node n's result column after it was computed. */
void rv_vec_of_col(const rv_column *c, rv_vec *v);

#endif
