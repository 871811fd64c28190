/* rv_yaml: libyaml's event stream turned into a tree of positioned nodes.
 *
 * Every node is allocated as a `ynode` whose first member is the public
 * rv_ynode, so rv_ynode_pos() can get from a node back to its document's
 * text and line table and map an offset inside a decoded scalar to a
 * line and column of the source. The document keeps a flat list of its
 * nodes and frees them in one loop, so freeing does not recurse however
 * deep the nesting. libyaml's marks are 0-based and count characters; the
 * positions here are 1-based and count characters too (what an editor
 * shows). Anything libyaml accepts that a job file has no use for
 * (anchors, aliases, tags, several documents, non-scalar keys, duplicate
 * keys) is rejected with a positioned error. */
#include "rv_yaml.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "rv_mem.h"

#define MAX_DEPTH 1000 /* deeper nesting is surely not a job file */
#define SHOW_MAX 60    /* bytes of a key quoted in an error message */

typedef struct ynode {
    rv_ynode pub;       /* first: every rv_ynode made here is a ynode */
    const rv_ydoc *doc; /* for rv_ynode_pos */
    size_t cap;         /* MAP/SEQ: capacity of keys/vals */
    rv_ynode *pending;  /* MAP while parsing: the key waiting for its value */
    int indent;         /* block scalars: content indentation in columns */
} ynode;

struct rv_ydoc {
    char *text; /* NUL-terminated copy of the input */
    size_t len;
    char *file;
    size_t *lines; /* byte offset of the start of each (0-based) line */
    size_t nlines;
    rv_ynode *root;
    ynode **nodes; /* every node, for freeing */
    size_t nnodes, capnodes;
};

/* ---- text helpers ------------------------------------------------------ */

/* Length of the line break at text[i] (0 if none), as libyaml counts them:
 * CRLF, CR, LF, NEL, LS and PS. */
static size_t break_len(const char *t, size_t len, size_t i)
{
    unsigned char c = (unsigned char)t[i];
    if (c == '\r')
        return i + 1 < len && t[i + 1] == '\n' ? 2 : 1;
    if (c == '\n')
        return 1;
    if (c == 0xC2 && i + 1 < len && (unsigned char)t[i + 1] == 0x85)
        return 2;
    if (c == 0xE2 && i + 2 < len && (unsigned char)t[i + 1] == 0x80 &&
        ((unsigned char)t[i + 2] == 0xA8 || (unsigned char)t[i + 2] == 0xA9))
        return 3;
    return 0;
}

static size_t utf8_width(const char *t, size_t len, size_t i)
{
    unsigned char c = (unsigned char)t[i];
    size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return i + w <= len ? w : len - i;
}

/* Characters (code points) in t[0..n). */
static int count_chars(const char *t, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)t[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static bool has_bom(const char *t, size_t len)
{
    return len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0;
}

static bool build_lines(rv_ydoc *doc)
{
    size_t n = 1;
    for (size_t i = 0; i < doc->len;) {
        size_t b = break_len(doc->text, doc->len, i);
        n += b != 0;
        i += b ? b : 1;
    }
    doc->lines = malloc(n * sizeof(*doc->lines));
    if (!doc->lines)
        return false;
    doc->lines[0] = has_bom(doc->text, doc->len) ? 3 : 0; /* libyaml skips the BOM */
    size_t k = 1;
    for (size_t i = 0; i < doc->len;) {
        size_t b = break_len(doc->text, doc->len, i);
        i += b ? b : 1;
        if (b)
            doc->lines[k++] = i;
    }
    assert(k == n);
    doc->nlines = n;
    return true;
}

static size_t line_end(const rv_ydoc *doc, size_t line0)
{
    size_t i = doc->lines[line0];
    while (i < doc->len && !break_len(doc->text, doc->len, i))
        i++;
    return i;
}

/* Byte offset of 1-based (line, col), clamped to the line and the text. */
static size_t pos_to_byte(const rv_ydoc *doc, int line, int col)
{
    if (line < 1)
        return 0;
    if ((size_t)line > doc->nlines)
        return doc->len;
    size_t i = doc->lines[line - 1];
    for (int c = 1; c < col && i < doc->len && !break_len(doc->text, doc->len, i); c++)
        i += utf8_width(doc->text, doc->len, i);
    return i;
}

static void byte_to_pos(const rv_ydoc *doc, size_t off, int *line, int *col)
{
    size_t lo = 0, hi = doc->nlines; /* find the last line starting at or before off */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (doc->lines[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    size_t start = doc->lines[lo] <= off ? doc->lines[lo] : off;
    *line = lo + 1 > INT_MAX ? INT_MAX : (int)lo + 1;
    *col = 1 + count_chars(doc->text + start, off - start);
}

static int mark_int(size_t v)
{
    return v >= INT_MAX ? INT_MAX : (int)v + 1;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- nodes ------------------------------------------------------------- */

static ynode *node_new(rv_ydoc *doc, rv_ynode_kind kind, int line, int col)
{
    ynode *y = rv_xcalloc(1, sizeof(*y));
    y->pub.kind = kind;
    y->pub.line = line;
    y->pub.col = col;
    y->pub.file = doc->file;
    y->doc = doc;
    y->indent = -1;
    if (doc->nnodes == doc->capnodes) {
        doc->capnodes = doc->capnodes ? doc->capnodes * 2 : 16;
        doc->nodes = rv_xrealloc(doc->nodes, doc->capnodes * sizeof(*doc->nodes));
    }
    doc->nodes[doc->nnodes++] = y;
    return y;
}

static void node_append(ynode *y, rv_ynode *key, rv_ynode *val)
{
    if (y->pub.n == y->cap) {
        y->cap = y->cap ? y->cap * 2 : 4;
        if (y->pub.kind == RV_YAML_MAP)
            y->pub.keys = rv_xrealloc(y->pub.keys, y->cap * sizeof(*y->pub.keys));
        y->pub.vals = rv_xrealloc(y->pub.vals, y->cap * sizeof(*y->pub.vals));
    }
    if (y->pub.kind == RV_YAML_MAP)
        y->pub.keys[y->pub.n] = key;
    y->pub.vals[y->pub.n++] = val;
}

/* ---- errors ------------------------------------------------------------ */

static rv_err *err_vat(const char *file, int line, int col, rv_code code, const char *fmt, va_list ap)
{
    char *msg = rv_xvasprintf(fmt, ap);
    rv_err *err = rv_err_new(code, "%s:%d:%d: %s", file ? file : "<input>", line, col, msg);
    free(msg);
    return err;
}

static rv_err *err_at(const rv_ydoc *doc, int line, int col, rv_code code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static rv_err *err_at(const rv_ydoc *doc, int line, int col, rv_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rv_err *err = err_vat(doc->file, line, col, code, fmt, ap);
    va_end(ap);
    return err;
}

/* The one adapter from libyaml's problem/context/marks to our error. */
static rv_err *libyaml_err(const rv_ydoc *doc, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    int line, col;
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return rv_err_new(RV_ERR_NOMEM, "%s: out of memory while parsing YAML", doc->file);
    case YAML_READER_ERROR:
        /* Reader errors carry a byte offset instead of a mark. */
        byte_to_pos(doc, p->problem_offset < doc->len ? p->problem_offset : doc->len, &line, &col);
        if (p->problem_value != -1)
            return err_at(doc, line, col, RV_ERR_PARSE, "%s (0x%02X)", problem, (unsigned)p->problem_value);
        return err_at(doc, line, col, RV_ERR_PARSE, "%s", problem);
    default:
        break;
    }
    line = mark_int(p->problem_mark.line);
    col = mark_int(p->problem_mark.column);
    size_t at = pos_to_byte(doc, line, col);
    const char *hint = p->error == YAML_SCANNER_ERROR && at < doc->len && doc->text[at] == '\t'
                           ? "; tabs cannot be used for indentation"
                           : "";
    if (p->context) {
        int cl = mark_int(p->context_mark.line), cc = mark_int(p->context_mark.column);
        if (cl != line || cc != col)
            return err_at(doc, line, col, RV_ERR_PARSE, "%s (%s at line %d, column %d)%s", problem,
                          p->context, cl, cc, hint);
        return err_at(doc, line, col, RV_ERR_PARSE, "%s (%s)%s", problem, p->context, hint);
    }
    return err_at(doc, line, col, RV_ERR_PARSE, "%s%s", problem, hint);
}

/* ---- parsing ----------------------------------------------------------- */

typedef struct pctx {
    rv_ydoc *doc;
    ynode **stack;
    size_t depth, cap;
    int ndocs;
} pctx;

static rv_err *check_props(pctx *c, const yaml_char_t *anchor, const yaml_char_t *tag, yaml_mark_t m)
{
    if (anchor)
        return err_at(c->doc, mark_int(m.line), mark_int(m.column), RV_ERR_INVALID,
                      "anchors and aliases are not supported");
    if (!tag)
        return NULL;
    /* Quote the tag as written ("!!str"), not as resolved ("tag:yaml.org,2002:str"). */
    const rv_ydoc *doc = c->doc;
    size_t at = pos_to_byte(doc, mark_int(m.line), mark_int(m.column)), end = at;
    while (end < doc->len && end - at < SHOW_MAX && !is_blank(doc->text[end]) &&
           !break_len(doc->text, doc->len, end) && !strchr(",[]{}", doc->text[end]))
        end++;
    if (at < doc->len && doc->text[at] == '!')
        return err_at(doc, mark_int(m.line), mark_int(m.column), RV_ERR_INVALID,
                      "tags are not supported (found '%.*s')", (int)(end - at), doc->text + at);
    return err_at(doc, mark_int(m.line), mark_int(m.column), RV_ERR_INVALID,
                  "tags are not supported (found '%.*s')", SHOW_MAX, (const char *)tag);
}

/* Indentation of a block scalar's content, computed as libyaml does: an
 * explicit indicator counts from the enclosing collection's indentation,
 * otherwise the first non-empty line (or a longer leading blank line)
 * decides. */
static int block_indent(const rv_ydoc *doc, const ynode *y, const ynode *parent)
{
    int parent_indent = parent ? parent->pub.col - 1 : -1;
    size_t line0 = (size_t)y->pub.line - 1;
    size_t i = pos_to_byte(doc, y->pub.line, y->pub.col) + 1, end = line_end(doc, line0);
    for (; i < end && !is_blank(doc->text[i]) && doc->text[i] != '#'; i++) {
        char ch = doc->text[i];
        if (ch >= '1' && ch <= '9')
            return parent_indent >= 0 ? parent_indent + (ch - '0') : ch - '0';
    }
    int max_indent = 0;
    for (size_t l = line0 + 1; l < doc->nlines; l++) {
        size_t s = doc->lines[l], e = line_end(doc, l), k = s;
        while (k < e && doc->text[k] == ' ')
            k++;
        int sp = (int)(k - s);
        if (k < e) {
            if (sp > max_indent)
                max_indent = sp;
            break;
        }
        if (sp > max_indent)
            max_indent = sp;
    }
    if (max_indent < parent_indent + 1)
        max_indent = parent_indent + 1;
    return max_indent < 1 ? 1 : max_indent;
}

/* Puts a new node under the current collection (or makes it the root). */
static rv_err *attach(pctx *c, ynode *y)
{
    if (c->depth == 0) {
        c->doc->root = &y->pub;
        return NULL;
    }
    ynode *parent = c->stack[c->depth - 1];
    if (parent->pub.kind == RV_YAML_SEQ) {
        node_append(parent, NULL, &y->pub);
    } else if (!parent->pending) {
        if (y->pub.kind != RV_YAML_SCALAR)
            return err_at(c->doc, y->pub.line, y->pub.col, RV_ERR_INVALID,
                          "a map key must be a scalar, not a %s", rv_ynode_kind_name(y->pub.kind));
        parent->pending = &y->pub;
    } else {
        node_append(parent, parent->pending, &y->pub);
        parent->pending = NULL;
    }
    return NULL;
}

static rv_err *push(pctx *c, ynode *y)
{
    if (c->depth >= MAX_DEPTH)
        return err_at(c->doc, y->pub.line, y->pub.col, RV_ERR_INVALID, "nesting deeper than %d levels",
                      MAX_DEPTH);
    if (c->depth == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->stack = rv_xrealloc(c->stack, c->cap * sizeof(*c->stack));
    }
    c->stack[c->depth++] = y;
    return NULL;
}

typedef struct keyref {
    const rv_ynode *key;
    size_t idx;
} keyref;

static int keyref_cmp(const void *a, const void *b)
{
    const keyref *x = a, *y = b;
    size_t n = x->key->len < y->key->len ? x->key->len : y->key->len;
    int r = memcmp(x->key->str, y->key->str, n);
    if (r)
        return r;
    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reports the first repeated key in document order, sorting so that a
 * map with many keys costs n log n. */
static rv_err *check_duplicates(const rv_ydoc *doc, const rv_ynode *map)
{
    if (map->n < 2)
        return NULL;
    keyref *refs = rv_xmalloc(map->n * sizeof(*refs));
    for (size_t i = 0; i < map->n; i++)
        refs[i] = (keyref){map->keys[i], i};
    qsort(refs, map->n, sizeof(*refs), keyref_cmp);
    /* Sorted by (key, index): in each run of equal keys the first entry is
     * the first occurrence and the next one its first repetition. */
    const rv_ynode *first = NULL, *second = NULL;
    size_t best = SIZE_MAX;
    for (size_t g = 0, h; g < map->n; g = h) {
        for (h = g + 1; h < map->n && refs[h].key->len == refs[g].key->len &&
                        memcmp(refs[h].key->str, refs[g].key->str, refs[g].key->len) == 0;
             h++)
            ;
        if (h - g > 1 && refs[g + 1].idx < best) {
            best = refs[g + 1].idx;
            first = refs[g].key;
            second = refs[g + 1].key;
        }
    }
    free(refs);
    if (!second)
        return NULL;
    return err_at(doc, second->line, second->col, RV_ERR_INVALID, "duplicate key '%.*s' (first at line %d)",
                  SHOW_MAX, second->str, first->line);
}

static rv_yscalar_style scalar_style(yaml_scalar_style_t s)
{
    switch (s) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE: return RV_YAML_SINGLE_QUOTED;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: return RV_YAML_DOUBLE_QUOTED;
    case YAML_LITERAL_SCALAR_STYLE: return RV_YAML_LITERAL;
    case YAML_FOLDED_SCALAR_STYLE: return RV_YAML_FOLDED;
    default: return RV_YAML_PLAIN;
    }
}

static rv_err *on_event(pctx *c, const yaml_event_t *ev, bool *done)
{
    rv_ydoc *doc = c->doc;
    int line = mark_int(ev->start_mark.line), col = mark_int(ev->start_mark.column);
    rv_err *err;
    ynode *y;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++c->ndocs > 1)
            return err_at(doc, line, col, RV_ERR_INVALID,
                          "multiple documents are not supported (a file holds one document)");
        return NULL;
    case YAML_ALIAS_EVENT:
        return err_at(doc, line, col, RV_ERR_INVALID, "anchors and aliases are not supported");
    case YAML_SCALAR_EVENT:
        if ((err = check_props(c, ev->data.scalar.anchor, ev->data.scalar.tag, ev->start_mark)))
            return err;
        y = node_new(doc, RV_YAML_SCALAR, line, col);
        y->pub.str = rv_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        y->pub.len = ev->data.scalar.length;
        y->pub.style = scalar_style(ev->data.scalar.style);
        if (y->pub.style == RV_YAML_LITERAL || y->pub.style == RV_YAML_FOLDED)
            y->indent = block_indent(doc, y, c->depth ? c->stack[c->depth - 1] : NULL);
        return attach(c, y);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (ev->type == YAML_SEQUENCE_START_EVENT)
            err = check_props(c, ev->data.sequence_start.anchor, ev->data.sequence_start.tag, ev->start_mark);
        else
            err = check_props(c, ev->data.mapping_start.anchor, ev->data.mapping_start.tag, ev->start_mark);
        if (err)
            return err;
        y = node_new(doc, ev->type == YAML_SEQUENCE_START_EVENT ? RV_YAML_SEQ : RV_YAML_MAP, line, col);
        if ((err = attach(c, y)))
            return err;
        return push(c, y);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        assert(c->depth > 0);
        y = c->stack[--c->depth];
        return y->pub.kind == RV_YAML_MAP ? check_duplicates(doc, &y->pub) : NULL;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return NULL;
    default:
        return NULL;
    }
}

rv_err *rv_yaml_parse(const char *text, size_t len, const char *file, rv_ydoc **out)
{
    rv_err *err = NULL;
    pctx c = {0};
    yaml_parser_t parser;
    bool parser_ok = false;
    yaml_event_t ev;
    bool have_ev = false;
    rv_ydoc *doc = rv_xcalloc(1, sizeof(*doc));

    doc->file = rv_xstrdup(file ? file : "<input>");
    doc->text = malloc(len + 1);
    if (!doc->text) {
        err = rv_err_new(RV_ERR_NOMEM, "%s: cannot allocate %zu bytes for the text", doc->file, len + 1);
        goto out;
    }
    if (len)
        memcpy(doc->text, text, len);
    doc->text[len] = '\0';
    doc->len = len;
    if (!build_lines(doc)) {
        err = rv_err_new(RV_ERR_NOMEM, "%s: out of memory indexing lines", doc->file);
        goto out;
    }
    if (len >= 2 && (((unsigned char)text[0] == 0xFE && (unsigned char)text[1] == 0xFF) ||
                     ((unsigned char)text[0] == 0xFF && (unsigned char)text[1] == 0xFE))) {
        err = err_at(doc, 1, 1, RV_ERR_PARSE, "only UTF-8 text is supported (found a UTF-16 byte order mark)");
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        err = rv_err_new(RV_ERR_NOMEM, "%s: out of memory initializing the YAML parser", doc->file);
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)doc->text, len);
    c.doc = doc;
    for (bool done = false; !done;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            err = libyaml_err(doc, &parser);
            goto out;
        }
        have_ev = true;
        err = on_event(&c, &ev, &done);
        yaml_event_delete(&ev);
        have_ev = false;
        if (err)
            goto out;
    }
    rv_ynode *root = doc->root;
    if (!root) {
        root = &node_new(doc, RV_YAML_MAP, 1, 1)->pub;
    } else if (root->kind == RV_YAML_SCALAR && root->style == RV_YAML_PLAIN && root->len == 0) {
        /* "---" alone: an empty document, not a null scalar. */
        free(root->str);
        root->str = NULL;
        root->kind = RV_YAML_MAP;
    }
    doc->root = root;
    *out = doc;
    doc = NULL;
out:
    if (have_ev)
        yaml_event_delete(&ev);
    if (parser_ok)
        yaml_parser_delete(&parser);
    free(c.stack);
    rv_ydoc_free(doc);
    return err;
}

rv_err *rv_yaml_parse_file(const char *path, rv_ydoc **out)
{
    rv_err *err = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rv_err_new(RV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *nbuf = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nbuf) {
                err = rv_err_new(RV_ERR_NOMEM, "%s: file too large to read", path);
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                err = rv_err_new(RV_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    if (!err)
        err = rv_yaml_parse(buf, len, path, out);
out:
    fclose(f);
    free(buf);
    return err;
}

const rv_ynode *rv_ydoc_root(const rv_ydoc *doc)
{
    return doc->root;
}

const char *rv_ydoc_text(const rv_ydoc *doc)
{
    return doc->text;
}

void rv_ydoc_free(rv_ydoc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->nnodes; i++) {
        free(doc->nodes[i]->pub.str);
        free(doc->nodes[i]->pub.keys);
        free(doc->nodes[i]->pub.vals);
        free(doc->nodes[i]);
    }
    free(doc->nodes);
    free(doc->lines);
    free(doc->text);
    free(doc->file);
    free(doc);
}

/* ---- lookups ----------------------------------------------------------- */

static size_t key_index(const rv_ynode *map, const char *key)
{
    if (!map || map->kind != RV_YAML_MAP)
        return SIZE_MAX;
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->n; i++)
        if (map->keys[i]->len == kl && memcmp(map->keys[i]->str, key, kl) == 0)
            return i;
    return SIZE_MAX;
}

const rv_ynode *rv_ymap_get(const rv_ynode *map, const char *key)
{
    size_t i = key_index(map, key);
    return i == SIZE_MAX ? NULL : map->vals[i];
}

const rv_ynode *rv_ymap_key(const rv_ynode *map, const char *key)
{
    size_t i = key_index(map, key);
    return i == SIZE_MAX ? NULL : map->keys[i];
}

const char *rv_ynode_kind_name(rv_ynode_kind k)
{
    switch (k) {
    case RV_YAML_SCALAR: return "scalar";
    case RV_YAML_MAP: return "map";
    case RV_YAML_SEQ: return "list";
    }
    return "?";
}

/* ---- positions inside scalars ------------------------------------------ */

/* From a line break at *s, skips breaks and the blanks around them (a
 * flow scalar's line folding) and returns the number of breaks. */
static size_t skip_fold(const rv_ydoc *doc, size_t *s, int *line, int *col)
{
    size_t nb = 0, i = *s, b;
    int c = 1;
    while (i < doc->len && (b = break_len(doc->text, doc->len, i))) {
        nb++;
        i += b;
        (*line)++;
        c = 1;
        while (i < doc->len && is_blank(doc->text[i])) {
            i++;
            c++;
        }
    }
    *s = i;
    *col = c;
    return nb;
}

/* Decoded bytes of the double-quoted escape at text[s] ('\\' there) and
 * its length in the source. */
static size_t escape_size(const rv_ydoc *doc, size_t s, size_t *src)
{
    char e = s + 1 < doc->len ? doc->text[s + 1] : '\0';
    size_t hex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
    *src = 2;
    if (e == 'N' || e == '_')
        return 2;
    if (e == 'L' || e == 'P')
        return 3;
    if (!hex)
        return 1;
    unsigned long cp = 0;
    for (size_t k = 0; k < hex && s + 2 + k < doc->len; k++) {
        char h = doc->text[s + 2 + k];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0)
            return 1;
        cp = cp * 16 + (unsigned long)d;
    }
    *src = 2 + hex;
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* Walks a plain or quoted scalar's source next to its decoded value. */
static void flow_pos(const ynode *y, size_t offset, int *line, int *col)
{
    const rv_ydoc *doc = y->doc;
    const rv_ynode *n = &y->pub;
    char quote = n->style == RV_YAML_SINGLE_QUOTED ? '\'' : n->style == RV_YAML_DOUBLE_QUOTED ? '"' : 0;
    size_t s = pos_to_byte(doc, n->line, n->col) + (quote ? 1 : 0);
    int l = n->line, c = n->col + (quote ? 1 : 0);
    size_t i = 0;
    while (s < doc->len) {
        char ch = doc->text[s];
        bool escaped_break = quote == '"' && ch == '\\' && s + 1 < doc->len && break_len(doc->text, doc->len, s + 1);
        if (i >= offset && !escaped_break)
            break;
        if (quote && ch == quote) {
            if (quote == '\'' && s + 1 < doc->len && doc->text[s + 1] == '\'') {
                i += 1;
                s += 2;
                c += 2;
                continue;
            }
            break;
        }
        if (quote == '"' && ch == '\\') {
            if (escaped_break) {
                /* An escaped line break: the break itself decodes to nothing. */
                size_t t = s + 1;
                int tl = l, tc = c;
                size_t nb = skip_fold(doc, &t, &tl, &tc);
                if (i + (nb - 1) > offset)
                    break;
                i += nb - 1;
                s = t;
                l = tl;
                c = tc;
                continue;
            }
            size_t src, dec = escape_size(doc, s, &src);
            if (i + dec > offset)
                break;
            i += dec;
            s += src;
            c += (int)src;
            continue;
        }
        if (is_blank(ch) || break_len(doc->text, doc->len, s)) {
            size_t r = s;
            while (r < doc->len && is_blank(doc->text[r]))
                r++;
            if (r < doc->len && break_len(doc->text, doc->len, r)) {
                /* Line folding: one break is a space, n breaks are n-1 newlines. */
                size_t t = r;
                int tl = l, tc = c;
                size_t nb = skip_fold(doc, &t, &tl, &tc);
                size_t dec = nb == 1 ? 1 : nb - 1;
                if (i + dec > offset)
                    break;
                i += dec;
                s = t;
                l = tl;
                c = tc;
                continue;
            }
            i++;
            s++;
            c++;
            continue;
        }
        size_t w = utf8_width(doc->text, doc->len, s);
        i += w;
        s += w;
        c++;
    }
    *line = l;
    *col = c;
}

/* Replays libyaml's block scalar folding over the source lines to find
 * the line holding decoded byte `offset`. The bytes between two content
 * lines are the previous line's break (a newline, or a space when folded)
 * followed by one newline per empty line in between. */
static void block_pos(const ynode *y, size_t offset, int *line, int *col)
{
    const rv_ydoc *doc = y->doc;
    bool literal = y->pub.style == RV_YAML_LITERAL;
    size_t indent = y->indent > 0 ? (size_t)y->indent : 1;
    size_t out = 0, trailing = 0;
    bool first = true, leading_blank = false;
    for (size_t l = (size_t)y->pub.line; l < doc->nlines; l++) { /* 0-based: the line after the header */
        size_t s = doc->lines[l], e = line_end(doc, l), k = s;
        while (k < e && k - s < indent && doc->text[k] == ' ')
            k++;
        if (k == e) {
            trailing++;
            continue;
        }
        if (k - s < indent)
            break; /* a less indented line ends the block */
        bool trailing_blank = is_blank(doc->text[k]);
        size_t lead = first ? 0 : 1; /* bytes standing for the previous line's break */
        if (!first && !literal && !leading_blank && !trailing_blank && trailing)
            lead = 0; /* folded: the empty lines' newlines replace the break */
        if (offset < out + lead)
            return; /* the previous line's break: *line, *col already at its end */
        if (offset < out + lead + trailing) {
            size_t empty = l - trailing + (offset - out - lead);
            *line = empty + 1 > INT_MAX ? INT_MAX : (int)empty + 1;
            *col = 1;
            return;
        }
        out += lead + trailing;
        trailing = 0;
        size_t clen = e - k;
        *line = l + 1 > INT_MAX ? INT_MAX : (int)l + 1;
        *col = (int)indent + 1 + count_chars(doc->text + k, offset < out + clen ? offset - out : clen);
        if (offset < out + clen)
            return;
        out += clen;
        leading_blank = trailing_blank;
        first = false;
    }
}

/* n must come from rv_yaml_parse (it is read as a ynode for the text). */
void rv_ynode_pos(const rv_ynode *n, size_t offset, int *line, int *col)
{
    *line = n->line;
    *col = n->col;
    if (n->kind != RV_YAML_SCALAR)
        return;
    const ynode *y = (const ynode *)n;
    if (offset > n->len)
        offset = n->len;
    if (n->style == RV_YAML_LITERAL || n->style == RV_YAML_FOLDED)
        block_pos(y, offset, line, col);
    else
        flow_pos(y, offset, line, col);
}

rv_err *rv_yerr(const rv_ynode *n, rv_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rv_err *err;
    if (n) {
        err = err_vat(n->file, n->line, n->col, code, fmt, ap);
    } else {
        char *msg = rv_xvasprintf(fmt, ap);
        err = rv_err_new(code, "%s", msg);
        free(msg);
    }
    va_end(ap);
    return err;
}

rv_err *rv_yerr_at(const rv_ynode *n, size_t offset, rv_code code, const char *fmt, ...)
{
    int line, col;
    rv_ynode_pos(n, offset, &line, &col);
    va_list ap;
    va_start(ap, fmt);
    rv_err *err = err_vat(n->file, line, col, code, fmt, ap);
    va_end(ap);
    return err;
}

const rv_ynode *rv_ymap_get_or_self(const rv_ynode *map, const char *key)
{
    const rv_ynode *n = rv_ymap_get(map, key);
    return n ? n : map;
}
