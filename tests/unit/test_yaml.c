/* Unit tests for rv_yaml: the positioned YAML tree, its rejections and
 * positions inside scalars. Expected lines and columns were counted by
 * hand from the test texts (1-based, in characters). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_yaml.h"

static rv_ydoc *parse_ok(const char *text)
{
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse(text, strlen(text), "f.yaml", &doc);
    cr_assert_null(err, "unexpected error: %s", rv_err_msg(err));
    cr_assert_not_null(doc);
    return doc;
}

static void expect_err_len(const char *text, size_t len, rv_code code, const char *msg)
{
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse(text, len, "f.yaml", &doc);
    cr_assert_not_null(err, "expected an error for:\n%s", text);
    cr_assert_null(doc, "out-parameter written on failure");
    cr_assert_str_eq(rv_err_msg(err), msg);
    cr_assert_eq(rv_err_code(err), code, "code %s", rv_code_name(rv_err_code(err)));
    rv_err_free(err);
}

static void expect_err(const char *text, rv_code code, const char *msg)
{
    expect_err_len(text, strlen(text), code, msg);
}

static void expect_node(const rv_ynode *n, rv_ynode_kind kind, int line, int col)
{
    cr_assert_not_null(n);
    cr_assert_eq(n->kind, kind, "kind %s", rv_ynode_kind_name(n->kind));
    cr_assert_eq(n->line, line, "line %d, expected %d", n->line, line);
    cr_assert_eq(n->col, col, "col %d, expected %d", n->col, col);
}

static void expect_scalar(const rv_ynode *n, const char *str, rv_yscalar_style style, int line, int col)
{
    expect_node(n, RV_YAML_SCALAR, line, col);
    cr_assert_str_eq(n->str, str);
    cr_assert_eq(n->len, strlen(str));
    cr_assert_eq(n->style, style);
}

static void expect_pos(const rv_ynode *n, size_t offset, int line, int col)
{
    int l = -1, c = -1;
    rv_ynode_pos(n, offset, &l, &c);
    cr_assert(l == line && c == col, "offset %zu: got %d:%d, expected %d:%d", offset, l, c, line, col);
}

/* ---- tree and positions ------------------------------------------------ */

Test(rv_yaml, block_style_nodes_have_positions)
{
    const char *text = "name: job\n"
                       "sources:\n"
                       "  - id: logs\n"
                       "    path: \"/var/log/x\"\n"
                       "    tags: [a, b]\n";
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *root = rv_ydoc_root(doc);
    expect_node(root, RV_YAML_MAP, 1, 1);
    cr_assert_eq(root->n, 2);
    expect_scalar(root->keys[0], "name", RV_YAML_PLAIN, 1, 1);
    expect_scalar(root->vals[0], "job", RV_YAML_PLAIN, 1, 7);
    expect_scalar(root->keys[1], "sources", RV_YAML_PLAIN, 2, 1);
    const rv_ynode *seq = root->vals[1];
    expect_node(seq, RV_YAML_SEQ, 3, 3);
    cr_assert_eq(seq->n, 1);
    cr_assert_null(seq->keys);
    const rv_ynode *src = seq->vals[0];
    expect_node(src, RV_YAML_MAP, 3, 5);
    cr_assert_eq(src->n, 3);
    expect_scalar(src->keys[0], "id", RV_YAML_PLAIN, 3, 5);
    expect_scalar(src->vals[0], "logs", RV_YAML_PLAIN, 3, 9);
    expect_scalar(src->keys[1], "path", RV_YAML_PLAIN, 4, 5);
    expect_scalar(src->vals[1], "/var/log/x", RV_YAML_DOUBLE_QUOTED, 4, 11);
    const rv_ynode *tags = rv_ymap_get(src, "tags");
    expect_node(tags, RV_YAML_SEQ, 5, 11);
    cr_assert_eq(tags->n, 2);
    expect_scalar(tags->vals[0], "a", RV_YAML_PLAIN, 5, 12);
    expect_scalar(tags->vals[1], "b", RV_YAML_PLAIN, 5, 15);
    cr_assert_str_eq(root->vals[0]->file, "f.yaml");
    rv_ydoc_free(doc);
}

Test(rv_yaml, flow_style_nodes_have_positions)
{
    /*                 1234567890123456789012345678 */
    rv_ydoc *doc = parse_ok("{a: [1, {b: \"x y\"}], c: 'q'}");
    const rv_ynode *root = rv_ydoc_root(doc);
    expect_node(root, RV_YAML_MAP, 1, 1);
    expect_scalar(root->keys[0], "a", RV_YAML_PLAIN, 1, 2);
    const rv_ynode *seq = root->vals[0];
    expect_node(seq, RV_YAML_SEQ, 1, 5);
    expect_scalar(seq->vals[0], "1", RV_YAML_PLAIN, 1, 6);
    expect_node(seq->vals[1], RV_YAML_MAP, 1, 9);
    expect_scalar(seq->vals[1]->keys[0], "b", RV_YAML_PLAIN, 1, 10);
    expect_scalar(seq->vals[1]->vals[0], "x y", RV_YAML_DOUBLE_QUOTED, 1, 13);
    expect_scalar(root->keys[1], "c", RV_YAML_PLAIN, 1, 22);
    expect_scalar(root->vals[1], "q", RV_YAML_SINGLE_QUOTED, 1, 25);
    rv_ydoc_free(doc);
}

Test(rv_yaml, scalar_styles_are_decoded)
{
    const char *text = "p: plain text\n"
                       "s: 'it''s'\n"
                       "d: \"a\\tb\\u00e9\\n\"\n"
                       "l: |\n"
                       "  one\n"
                       "   two\n"
                       "f: >\n"
                       "  one\n"
                       "  two\n"
                       "e:\n";
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *root = rv_ydoc_root(doc);
    expect_scalar(rv_ymap_get(root, "p"), "plain text", RV_YAML_PLAIN, 1, 4);
    expect_scalar(rv_ymap_get(root, "s"), "it's", RV_YAML_SINGLE_QUOTED, 2, 4);
    expect_scalar(rv_ymap_get(root, "d"), "a\tb\xC3\xA9\n", RV_YAML_DOUBLE_QUOTED, 3, 4);
    expect_scalar(rv_ymap_get(root, "l"), "one\n two\n", RV_YAML_LITERAL, 4, 4);
    expect_scalar(rv_ymap_get(root, "f"), "one two\n", RV_YAML_FOLDED, 7, 4);
    const rv_ynode *e = rv_ymap_get(root, "e");
    cr_assert_eq(e->kind, RV_YAML_SCALAR);
    cr_assert_eq(e->len, 0);
    cr_assert_str_eq(e->str, "");
    rv_ydoc_free(doc);
}

Test(rv_yaml, embedded_nul_keeps_its_length)
{
    rv_ydoc *doc = parse_ok("k: \"a\\0b\"");
    const rv_ynode *v = rv_ymap_get(rv_ydoc_root(doc), "k");
    cr_assert_eq(v->len, 3);
    cr_assert_eq(memcmp(v->str, "a\0b", 4), 0);
    rv_ydoc_free(doc);
}

Test(rv_yaml, empty_document_is_an_empty_map)
{
    const char *texts[] = {"", "# only a comment\n", "---\n", "\n\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        rv_ydoc *doc = parse_ok(texts[i]);
        const rv_ynode *root = rv_ydoc_root(doc);
        cr_assert_eq(root->kind, RV_YAML_MAP, "text %zu", i);
        cr_assert_eq(root->n, 0);
        cr_assert_null(rv_ymap_get(root, "x"));
        rv_ydoc_free(doc);
    }
    rv_ydoc *doc = NULL;
    cr_assert_null(rv_yaml_parse(NULL, 0, "f.yaml", &doc));
    cr_assert_eq(rv_ydoc_root(doc)->kind, RV_YAML_MAP);
    rv_ydoc_free(doc);
}

Test(rv_yaml, explicit_scalar_root_is_kept)
{
    rv_ydoc *doc = parse_ok("--- hello\n");
    expect_scalar(rv_ydoc_root(doc), "hello", RV_YAML_PLAIN, 1, 5);
    rv_ydoc_free(doc);
    doc = parse_ok("''");
    cr_assert_eq(rv_ydoc_root(doc)->kind, RV_YAML_SCALAR);
    rv_ydoc_free(doc);
}

Test(rv_yaml, single_document_markers_are_accepted)
{
    rv_ydoc *doc = parse_ok("%YAML 1.1\n---\na: 1\n...\n");
    expect_scalar(rv_ymap_get(rv_ydoc_root(doc), "a"), "1", RV_YAML_PLAIN, 3, 4);
    rv_ydoc_free(doc);
}

Test(rv_yaml, text_is_kept_as_a_copy)
{
    char text[] = "a: 1\nb: [x]";
    rv_ydoc *doc = NULL;
    cr_assert_null(rv_yaml_parse(text, 4, "f.yaml", &doc)); /* only "a: 1" */
    cr_assert_str_eq(rv_ydoc_text(doc), "a: 1");
    cr_assert_neq(rv_ydoc_text(doc), text);
    cr_assert_eq(rv_ydoc_root(doc)->n, 1);
    rv_ydoc_free(doc);
    rv_ydoc_free(NULL);
}

Test(rv_yaml, lookups_by_key)
{
    rv_ydoc *doc = parse_ok("a: 1\nbb: [2]\n");
    const rv_ynode *root = rv_ydoc_root(doc);
    expect_scalar(rv_ymap_get(root, "a"), "1", RV_YAML_PLAIN, 1, 4);
    expect_scalar(rv_ymap_key(root, "bb"), "bb", RV_YAML_PLAIN, 2, 1);
    cr_assert_null(rv_ymap_get(root, "b"));
    cr_assert_null(rv_ymap_get(root, "bbb"));
    cr_assert_null(rv_ymap_key(root, "c"));
    const rv_ynode *seq = rv_ymap_get(root, "bb");
    cr_assert_null(rv_ymap_get(seq, "bb"));
    cr_assert_null(rv_ymap_get(seq->vals[0], "2"));
    cr_assert_null(rv_ymap_get(NULL, "a"));
    cr_assert_str_eq(rv_ynode_kind_name(RV_YAML_SCALAR), "scalar");
    cr_assert_str_eq(rv_ynode_kind_name(RV_YAML_MAP), "map");
    cr_assert_str_eq(rv_ynode_kind_name(RV_YAML_SEQ), "list");
    rv_ydoc_free(doc);
}

Test(rv_yaml, columns_count_characters_and_skip_bom)
{
    rv_ydoc *doc = parse_ok("\xEF\xBB\xBF" "\xC3\xA9t\xC3\xA9: x\nb: 1\n");
    const rv_ynode *root = rv_ydoc_root(doc);
    expect_scalar(root->keys[0], "\xC3\xA9t\xC3\xA9", RV_YAML_PLAIN, 1, 1);
    expect_scalar(root->vals[0], "x", RV_YAML_PLAIN, 1, 6);
    rv_ydoc_free(doc);
}

Test(rv_yaml, crlf_line_endings_count_once)
{
    rv_ydoc *doc = parse_ok("a: 1\r\nb:\r\n  c: x y\r\n   z\r\n");
    const rv_ynode *b = rv_ymap_get(rv_ydoc_root(doc), "b");
    expect_node(b, RV_YAML_MAP, 3, 3);
    const rv_ynode *c = rv_ymap_get(b, "c");
    expect_scalar(c, "x y z", RV_YAML_PLAIN, 3, 6);
    expect_pos(c, 4, 4, 4); /* z */
    rv_ydoc_free(doc);
}

Test(rv_yaml, parse_file_names_the_path)
{
    char path[] = "/tmp/rv_test_yaml_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text = "a: 1\nb: c: d\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse_file(path, &doc);
    cr_assert_not_null(err);
    char *want = NULL;
    cr_assert(asprintf(&want, "%s:2:5: mapping values are not allowed in this context", path) > 0);
    cr_assert_str_eq(rv_err_msg(err), want);
    free(want);
    rv_err_free(err);

    FILE *f = fopen(path, "w");
    fputs("a: 1\n", f);
    fclose(f);
    cr_assert_null(rv_yaml_parse_file(path, &doc));
    cr_assert_str_eq(rv_ymap_get(rv_ydoc_root(doc), "a")->str, "1");
    cr_assert_str_eq(rv_ydoc_root(doc)->file, path);
    rv_ydoc_free(doc);
    unlink(path);

    doc = NULL;
    err = rv_yaml_parse_file("/nonexistent/job.yaml", &doc);
    cr_assert_eq(rv_err_code(err), RV_ERR_IO);
    cr_assert_str_eq(rv_err_msg(err), "/nonexistent/job.yaml: cannot open: No such file or directory");
    cr_assert_null(doc);
    rv_err_free(err);
}

/* ---- rejections -------------------------------------------------------- */

Test(rv_yaml, syntax_errors_come_from_libyaml_with_positions)
{
    expect_err("a: b: c", RV_ERR_PARSE, "f.yaml:1:5: mapping values are not allowed in this context");
    expect_err("a:\n  b: 1\n c: 2", RV_ERR_PARSE,
               "f.yaml:3:2: did not find expected key (while parsing a block mapping at line 1, column 1)");
    expect_err("a: [1, 2\nb: 3", RV_ERR_PARSE,
               "f.yaml:2:2: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 4)");
    expect_err("x: \"abc", RV_ERR_PARSE,
               "f.yaml:1:8: found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)");
    expect_err("- a\nb: 1", RV_ERR_PARSE,
               "f.yaml:2:1: did not find expected '-' indicator (while parsing a block collection at line 1, column 1)");
}

Test(rv_yaml, tab_indentation_gets_a_hint)
{
    expect_err("a:\n\tb: 1", RV_ERR_PARSE,
               "f.yaml:2:1: found character that cannot start any token (while scanning for the next token); "
               "tabs cannot be used for indentation");
}

Test(rv_yaml, bad_encoding_is_rejected)
{
    expect_err("a: \xFF", RV_ERR_PARSE, "f.yaml:1:4: invalid leading UTF-8 octet (0xFF)");
    expect_err("a: 1\nb: \x01", RV_ERR_PARSE, "f.yaml:2:4: control characters are not allowed (0x01)");
    expect_err_len("\xFF\xFE" "a\0:\0", 6, RV_ERR_PARSE,
                   "f.yaml:1:1: only UTF-8 text is supported (found a UTF-16 byte order mark)");
}

Test(rv_yaml, anchors_and_aliases_are_rejected)
{
    expect_err("a: &x 1\nb: 2", RV_ERR_INVALID, "f.yaml:1:4: anchors and aliases are not supported");
    expect_err("a: 1\nb: *x", RV_ERR_INVALID, "f.yaml:2:4: anchors and aliases are not supported");
    expect_err("a:\n  - &m {k: v}\n", RV_ERR_INVALID, "f.yaml:2:5: anchors and aliases are not supported");
}

Test(rv_yaml, tags_are_rejected)
{
    expect_err("a: !!str 1", RV_ERR_INVALID, "f.yaml:1:4: tags are not supported (found '!!str')");
    expect_err("a: !foo\n  b: 1", RV_ERR_INVALID, "f.yaml:1:4: tags are not supported (found '!foo')");
    expect_err("a: [x, !!int 2]", RV_ERR_INVALID, "f.yaml:1:8: tags are not supported (found '!!int')");
}

Test(rv_yaml, multiple_documents_are_rejected)
{
    expect_err("a: 1\n---\nb: 2", RV_ERR_INVALID,
               "f.yaml:2:1: multiple documents are not supported (a file holds one document)");
    expect_err("---\na: 1\n...\n---\nb: 2\n", RV_ERR_INVALID,
               "f.yaml:4:1: multiple documents are not supported (a file holds one document)");
}

Test(rv_yaml, duplicate_keys_are_rejected)
{
    expect_err("name: x\nid: 1\nrate: 2\nid: 2", RV_ERR_INVALID, "f.yaml:4:1: duplicate key 'id' (first at line 2)");
    expect_err("s:\n  - {a: 1, a: 2}", RV_ERR_INVALID, "f.yaml:2:12: duplicate key 'a' (first at line 2)");
    /* Two keys repeat: the first repetition in document order is named. */
    expect_err("b: 1\na: 1\nb: 2\na: 2", RV_ERR_INVALID, "f.yaml:3:1: duplicate key 'b' (first at line 1)");
    /* Equal text in different styles is the same key; a prefix is not. */
    expect_err("ab: 1\na: 2\n'ab': 3", RV_ERR_INVALID, "f.yaml:3:1: duplicate key 'ab' (first at line 1)");
    rv_ydoc *doc = parse_ok("a: 1\nab: 2\nb: {a: 3}");
    rv_ydoc_free(doc);
}

Test(rv_yaml, non_scalar_keys_are_rejected)
{
    expect_err("? [a]\n: 1", RV_ERR_INVALID, "f.yaml:1:3: a map key must be a scalar, not a list");
    expect_err("{{a: 1}: 2}", RV_ERR_INVALID, "f.yaml:1:2: a map key must be a scalar, not a map");
}

Test(rv_yaml, deep_nesting_is_rejected)
{
    size_t depth = 1001;
    char *text = malloc(2 * depth + 1);
    cr_assert_not_null(text);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    expect_err(text, RV_ERR_INVALID, "f.yaml:1:1001: nesting deeper than 1000 levels");
    text[0] = ' '; /* 1000 levels are fine */
    text[2 * depth - 1] = ' ';
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *n = rv_ydoc_root(doc);
    size_t levels = 0;
    while (n->kind == RV_YAML_SEQ) {
        levels++;
        if (n->n == 0)
            break;
        n = n->vals[0];
    }
    cr_assert_eq(levels, 1000);
    rv_ydoc_free(doc);
    free(text);
}

Test(rv_yaml, error_without_file_name_says_input)
{
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse("a: b: c", 7, NULL, &doc);
    cr_assert_str_eq(rv_err_msg(err), "<input>:1:5: mapping values are not allowed in this context");
    rv_err_free(err);
}

/* ---- positions inside scalars and positioned errors --------------------- */

Test(rv_yaml, yerr_names_file_line_col)
{
    rv_ydoc *doc = parse_ok("a:\n  b: 1\n");
    const rv_ynode *b = rv_ymap_get(rv_ymap_get(rv_ydoc_root(doc), "a"), "b");
    rv_err *err = rv_yerr(b, RV_ERR_INVALID, "bad %s %d", "value", 7);
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:2:6: bad value 7");
    cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
    rv_err_free(err);
    err = rv_yerr(NULL, RV_ERR_NOT_FOUND, "no node");
    cr_assert_str_eq(rv_err_msg(err), "no node");
    rv_err_free(err);
    rv_ydoc_free(doc);
}

Test(rv_yaml, yerr_at_inside_plain_scalar)
{
    /*        123456789012345678901234567 */
    rv_ydoc *doc = parse_ok("filter: status == \"ok\" && latency > 100\n");
    const rv_ynode *f = rv_ymap_get(rv_ydoc_root(doc), "filter");
    size_t off = (size_t)(strstr(f->str, "latency") - f->str);
    cr_assert_eq(off, 18);
    rv_err *err = rv_yerr_at(f, off, RV_ERR_TYPE, "unknown field '%s'", "latency");
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:1:27: unknown field 'latency'");
    cr_assert_eq(rv_err_code(err), RV_ERR_TYPE);
    rv_err_free(err);
    expect_pos(f, 0, 1, 9);
    expect_pos(f, f->len, 1, 9 + (int)f->len);
    expect_pos(f, f->len + 100, 1, 9 + (int)f->len); /* clamped */
    rv_ydoc_free(doc);
}

Test(rv_yaml, yerr_at_inside_quoted_scalars)
{
    /*        1234567890123456 */
    rv_ydoc *doc = parse_ok("filter: 'a && bogus(x)'\n"
                            "other: \"it's \\\"q\\\" z\"\n"
                            "third: 'it''s z'\n");
    const rv_ynode *root = rv_ydoc_root(doc);
    const rv_ynode *f = rv_ymap_get(root, "filter");
    rv_err *err = rv_yerr_at(f, 5, RV_ERR_PARSE, "unknown function 'bogus'");
    cr_assert_str_eq(rv_err_msg(err), "f.yaml:1:15: unknown function 'bogus'");
    rv_err_free(err);
    /* other: "it's \"q\" z" -- the value opens at column 8; escapes take
     * two source characters for one decoded byte. */
    const rv_ynode *o = rv_ymap_get(root, "other");
    cr_assert_str_eq(o->str, "it's \"q\" z");
    expect_pos(o, 0, 2, 9);
    expect_pos(o, 5, 2, 14); /* the escaped quote */
    expect_pos(o, 6, 2, 16); /* q */
    expect_pos(o, 9, 2, 20); /* z */
    const rv_ynode *t = rv_ymap_get(root, "third");
    expect_pos(t, 2, 3, 11); /* the doubled quote */
    expect_pos(t, 5, 3, 15); /* z */
    rv_ydoc_free(doc);
}

Test(rv_yaml, positions_in_multiline_flow_scalars)
{
    const char *text = "k: a  bc\n"       /* line 1 */
                       "   d\n"           /* 2 */
                       "\n"               /* 3 */
                       "   e\n"           /* 4 */
                       "q: \"x\\ty\\u00e9c\\\n" /* 5: q: "x\ty\u00e9c\ */
                       "   d  \n"         /* 6 */
                       "  e\"\n";         /* 7 */
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *k = rv_ymap_get(rv_ydoc_root(doc), "k");
    cr_assert_str_eq(k->str, "a  bc d\ne");
    expect_pos(k, 0, 1, 4);
    expect_pos(k, 3, 1, 7);  /* b */
    expect_pos(k, 6, 2, 4);  /* d */
    expect_pos(k, 8, 4, 4);  /* e */
    const rv_ynode *q = rv_ymap_get(rv_ydoc_root(doc), "q");
    cr_assert_str_eq(q->str, "x\ty\xC3\xA9" "cd e");
    expect_pos(q, 0, 5, 5);  /* x */
    expect_pos(q, 1, 5, 6);  /* \t */
    expect_pos(q, 2, 5, 8);  /* y */
    expect_pos(q, 3, 5, 9);  /* \u00e9 */
    expect_pos(q, 5, 5, 15); /* c */
    expect_pos(q, 6, 6, 4);  /* d, after the escaped line break */
    expect_pos(q, 8, 7, 3);  /* e */
    rv_ydoc_free(doc);
}

Test(rv_yaml, positions_in_literal_block)
{
    const char *text = "k: |\n"   /* 1 */
                       "  ab\n"   /* 2 */
                       "\n"       /* 3 */
                       "   cd\n"  /* 4 */
                       "  e\n"    /* 5 */
                       "z: 1\n";
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *k = rv_ymap_get(rv_ydoc_root(doc), "k");
    cr_assert_str_eq(k->str, "ab\n\n cd\ne\n");
    expect_node(k, RV_YAML_SCALAR, 1, 4);
    expect_pos(k, 0, 2, 3);
    expect_pos(k, 1, 2, 4);
    expect_pos(k, 2, 2, 5); /* end of line 2 */
    expect_pos(k, 3, 3, 1); /* the empty line */
    expect_pos(k, 4, 4, 3); /* the extra space of the more indented line */
    expect_pos(k, 5, 4, 4); /* c */
    expect_pos(k, 8, 5, 3); /* e */
    rv_ydoc_free(doc);
}

Test(rv_yaml, positions_in_folded_block)
{
    const char *text = "k: >-\n"  /* 1 */
                       "\n"       /* 2 */
                       "  a\n"    /* 3 */
                       "  b\n"    /* 4 */
                       "\n"       /* 5 */
                       "  c\n"    /* 6 */
                       "   d\n"   /* 7 */
                       "z: 1\n";
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *k = rv_ymap_get(rv_ydoc_root(doc), "k");
    cr_assert_str_eq(k->str, "\na b\nc\n d");
    expect_pos(k, 0, 2, 1);  /* leading empty line */
    expect_pos(k, 1, 3, 3);  /* a */
    expect_pos(k, 2, 3, 4);  /* the space folded from line 3's break */
    expect_pos(k, 3, 4, 3);  /* b */
    expect_pos(k, 4, 5, 1);  /* the empty line */
    expect_pos(k, 5, 6, 3);  /* c */
    expect_pos(k, 7, 7, 3);  /* more indented: its break is kept */
    expect_pos(k, 8, 7, 4);  /* d */
    rv_ydoc_free(doc);
}

Test(rv_yaml, positions_in_block_with_indentation_indicator)
{
    const char *text = "- k: |2\n" /* the map is at column 3, so content starts at column 5 */
                       "     x\n"
                       "    y\n";
    rv_ydoc *doc = parse_ok(text);
    const rv_ynode *k = rv_ymap_get(rv_ydoc_root(doc)->vals[0], "k");
    cr_assert_str_eq(k->str, " x\ny\n");
    expect_pos(k, 0, 2, 5);
    expect_pos(k, 1, 2, 6);
    expect_pos(k, 3, 3, 5);
    rv_ydoc_free(doc);
}

Test(rv_yaml, pos_of_a_collection_is_its_own)
{
    rv_ydoc *doc = parse_ok("a:\n  - 1\n");
    const rv_ynode *a = rv_ymap_get(rv_ydoc_root(doc), "a");
    expect_pos(a, 5, 2, 3);
    rv_ydoc_free(doc);
}
