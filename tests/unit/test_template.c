/* tests/unit/test_template.c - lib/template: exact outputs and exact error messages (with
 * line and column), every case of the Mustache spec files, partials through a resolver, and
 * bad input: unbalanced sections, unclosed tags, self-including partials, deep nesting,
 * oversized templates, huge data objects. */
#include "unit.h"

#include "lib/template.h"

static const char *DATA =
    "{\"name\": \"Ann\", \"order\": {\"id\": \"A-1001\", \"total\": 12.5, \"n\": 3,"
    " \"items\": [1, 2], \"paid\": true, \"gift\": false, \"note\": null},"
    " \"html\": \"<b>Tom & \\\"Jerry\\\"</b> 'x'\", \"big\": 1e+100, \"third\": 0.1,"
    " \"neg\": -7, \"utf\": \"\xc3\xa9t\xc3\xa9\", \"a\": {\"b\": {\"c\": \"deep\"}},"
    " \"dotted.key\": \"flat\", \"empty\": \"\"}";

typedef struct {
    const char *src;
    int         html;
    int         strict;
    const char *want;   /* NULL: an error is expected */
    const char *err;    /* the exact error when want is NULL */
} render_case;

static const render_case CASES[] = {
    /* plain text and simple names */
    {"", 0, 0, "", NULL},
    {"no tags at all", 0, 0, "no tags at all", NULL},
    {"Hi {{name}}!", 0, 0, "Hi Ann!", NULL},
    {"Hi {{ name }}!", 0, 0, "Hi Ann!", NULL},
    {"Hi {{\tname\n}}!", 0, 0, "Hi Ann!", NULL},
    {"{{name}}{{name}}", 0, 0, "AnnAnn", NULL},
    {"{{utf}}", 0, 0, "\xc3\xa9t\xc3\xa9", NULL},
    {"{{empty}}|", 0, 0, "|", NULL},
    /* dotted names */
    {"Order {{order.id}} confirmed", 0, 0, "Order A-1001 confirmed", NULL},
    {"{{ a.b.c }}", 0, 0, "deep", NULL},
    {"[{{a.b.x}}]", 0, 0, "[]", NULL},
    {"[{{a.b.c.d}}]", 0, 0, "[]", NULL},
    {"[{{name.first}}]", 0, 0, "[]", NULL},
    {"[{{dotted.key}}]", 0, 0, "[]", NULL},   /* dots always split, as in Mustache */
    /* numbers and booleans as JSON text */
    {"{{order.n}} {{order.total}} {{neg}} {{third}} {{big}}", 0, 0, "3 12.5 -7 0.1 1e+100", NULL},
    {"{{order.paid}}/{{order.gift}}", 0, 0, "true/false", NULL},
    /* null, missing, objects and lists render empty when not strict */
    {"[{{order.note}}][{{missing}}][{{order}}][{{order.items}}]", 0, 0, "[][][][]", NULL},
    /* escaping: only in html mode, never for {{{ }}} or {{& }} */
    {"{{html}}", 0, 0, "<b>Tom & \"Jerry\"</b> 'x'", NULL},
    {"{{html}}", 1, 0, "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt; &#39;x&#39;", NULL},
    {"{{{html}}}", 1, 0, "<b>Tom & \"Jerry\"</b> 'x'", NULL},
    {"{{{ html }}}", 1, 0, "<b>Tom & \"Jerry\"</b> 'x'", NULL},
    {"{{&html}}", 1, 0, "<b>Tom & \"Jerry\"</b> 'x'", NULL},
    {"{{& html }}", 1, 0, "<b>Tom & \"Jerry\"</b> 'x'", NULL},
    {"<p>{{name}} & co</p>", 1, 0, "<p>Ann & co</p>", NULL},   /* literal text is not escaped */
    /* comments vanish */
    {"a{{! a comment }}b", 0, 0, "ab", NULL},
    {"a{{!\nmulti\nline\n}}b", 0, 0, "ab", NULL},
    /* a comment alone on its line takes the line with it; otherwise only itself */
    {"a\n  {{! c }}  \nb", 0, 0, "a\nb", NULL},
    {"a\r\n{{! c }}\r\nb", 0, 0, "a\r\nb", NULL},
    {"{{! c }}\n{{! d }}\nb", 0, 0, "b", NULL},
    {"a\n{{! c }}", 0, 0, "a\n", NULL},
    {"a {{! c }}\nb", 0, 0, "a \nb", NULL},
    {"{{name}} {{! c }}\nb", 0, 0, "Ann \nb", NULL},
    {"{{! c }} x\n", 0, 0, " x\n", NULL},
    /* braces that are not tags */
    {"} } }} {", 0, 0, "} } }} {", NULL},
    {"{ {name} }", 0, 0, "{ {name} }", NULL},
    /* the whole context */
    {"[{{.}}]", 0, 0, "[]", NULL},
    /* strict */
    {"{{name}} {{order.id}}", 0, 1, "Ann A-1001", NULL},
    {"Hi {{nmae}}", 0, 1, NULL, "line 1, column 4: missing variable \"nmae\""},
    {"x\n  {{ order.nope }}", 1, 1, NULL, "line 2, column 3: missing variable \"order.nope\""},
    {"{{order.note}}", 0, 1, NULL, "line 1, column 1: variable \"order.note\" is null"},
    {"{{order}}", 0, 1, NULL,
     "line 1, column 1: variable \"order\" is an object or list, not a value"},
    {"{{{order.items}}}", 0, 1, NULL,
     "line 1, column 1: variable \"order.items\" is an object or list, not a value"},
    /* syntax errors */
    {"Hi {{name", 0, 0, NULL, "line 1, column 4: unclosed tag {{ (no }} after it)"},
    {"ok\n\xc3\xa9\xc3\xa9 {{{name}}", 0, 0, NULL,
     "line 2, column 4: unclosed tag {{{ (no }}} after it)"},
    {"{{}}", 0, 0, NULL, "line 1, column 1: empty tag"},
    {"a {{  }}", 0, 0, NULL, "line 1, column 3: empty tag"},
    {"{{first name}}", 0, 0, NULL, "line 1, column 1: invalid variable name \"first name\""},
    {"{{a..b}}", 0, 0, NULL, "line 1, column 1: invalid variable name \"a..b\""},
    {"{{.a}}", 0, 0, NULL, "line 1, column 1: invalid variable name \".a\""},
    {"{{a.}}", 0, 0, NULL, "line 1, column 1: invalid variable name \"a.\""},
    /* sections, inverted sections, partials without a resolver, delimiters */
    {"{{#order.items}}<{{.}}>{{/order.items}}", 0, 0, "<1><2>", NULL},
    {"{{#order}}{{id}} by {{name}}{{/order}}", 0, 0, "A-1001 by Ann", NULL},
    {"{{#order.gift}}gift{{/order.gift}}{{^order.gift}}no gift{{/order.gift}}", 0, 0, "no gift",
     NULL},
    {"{{#empty}}x{{/empty}}{{^empty}}y{{/empty}}", 0, 0, "y", NULL},   /* "" is falsy */
    {"{{#order.n}}[{{.}}]{{/order.n}}", 0, 0, "[3]", NULL},
    {"{{#html}}{{.}}{{/html}}", 1, 0, "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt; &#39;x&#39;",
     NULL},
    {"a{{> partial}}b", 0, 0, "ab", NULL},
    {"a{{> partial}}b", 0, 1, NULL, "line 1, column 2: missing partial \"partial\""},
    {"{{=<% %>=}}<% name %> {{name}}", 0, 0, "Ann {{name}}", NULL},
    {"{{#nope}}x{{/nope}}", 0, 1, NULL, "line 1, column 1: missing variable \"nope\""},
    {"{{^order.note}}none{{/order.note}}", 0, 1, "none", NULL},
    /* section syntax errors */
    {"{{#items}}x", 0, 0, NULL, "line 1, column 1: section \"items\" is not closed"},
    {"a\n {{#a}}{{#b}}{{/b}}", 0, 0, NULL, "line 2, column 2: section \"a\" is not closed"},
    {"x{{/items}}", 0, 0, NULL,
     "line 1, column 2: closing tag \"items\" without an open section"},
    {"{{#a}}{{#b}}{{/a}}{{/b}}", 0, 0, NULL,
     "line 1, column 13: closing tag \"a\" does not match the open section \"b\""},
    {"{{#a b}}{{/a b}}", 0, 0, NULL, "line 1, column 1: invalid section name \"a b\""},
    {"{{#}}", 0, 0, NULL, "line 1, column 1: empty tag"},
    {"{{>}}", 0, 0, NULL, "line 1, column 1: empty tag"},
    {"{{=<% %>=}}\n<% name", 0, 0, NULL, "line 2, column 1: unclosed tag <% (no %> after it)"},
    {"{{=<% %>=}}<%{ name }}", 0, 0, NULL, "line 1, column 12: unclosed tag <%{ (no }%> after it)"},
    {"{{= a =}}", 0, 0, NULL,
     "line 1, column 1: invalid delimiter change (want {{=<open> <close>=}})"},
    {"{{=<% %>", 0, 0, NULL, "line 1, column 1: unclosed tag {{= (no =}} after it)"},
    {"{{<parent}}{{/parent}}", 0, 0, NULL,
     "line 1, column 1: unsupported tag {{<...}}: template inheritance is not supported"},
};

static void test_render_table(void **state)
{
    json_error_t jerr;
    json_t *data = json_loads(DATA, 0, &jerr);
    assert_non_null(data);
    for (size_t i = 0; i < N_ELEMS(CASES); i++) {
        const render_case *c = &CASES[i];
        buf out;
        buf_init(&out, 4096);
        char err[256] = "unset";
        int rc = tpl_render(c->src, strlen(c->src), data, c->html, c->strict, &out, err,
                            sizeof err);
        if (c->want) {
            assert_int_equal(rc, 0);
            assert_string_equal(err, "");
            assert_int_equal(out.len, strlen(c->want));
            assert_string_equal(out.len ? out.data : "", c->want);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err, c->err);
        }
        /* tpl_check agrees on syntax: it fails exactly where the error is not about data */
        char cerr[256];
        int crc = tpl_check(c->src, strlen(c->src), cerr, sizeof cerr);
        if (c->want || c->strict)
            assert_int_equal(crc, 0);
        else {
            assert_int_equal(crc, -1);
            assert_string_equal(cerr, c->err);
        }
        buf_free(&out);
    }
    json_decref(data);
}

static void test_no_data(void **state)
{
    buf out;
    buf_init(&out, 100);
    char err[128];
    assert_int_equal(tpl_render("a{{x}}b", 7, NULL, 0, 0, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "ab");
    buf_reset(&out);
    assert_int_equal(tpl_render("a{{x}}b", 7, NULL, 0, 1, &out, err, sizeof err), -1);
    assert_string_equal(err, "line 1, column 2: missing variable \"x\"");
    buf_free(&out);
}

/* Lengths are honoured: NUL bytes are text, and nothing past n is read. */
static void test_lengths(void **state)
{
    json_t *data = json_pack("{s:s}", "n", "v");
    buf out;
    buf_init(&out, 100);
    char err[128];
    static const char src[] = "a\0b{{n}}{{n";
    assert_int_equal(tpl_render(src, 8, data, 0, 0, &out, err, sizeof err), 0);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "a\0bv", 4);
    buf_reset(&out);
    assert_int_equal(tpl_render(src, 10, data, 0, 0, &out, err, sizeof err), -1);
    assert_string_equal(err, "line 1, column 9: unclosed tag {{ (no }} after it)");
    buf_reset(&out);
    /* a string value with an embedded NUL keeps it */
    json_object_set_new(data, "z", json_stringn("x\0y", 3));
    assert_int_equal(tpl_render("{{z}}", 5, data, 1, 0, &out, err, sizeof err), 0);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "x\0y", 3);
    buf_free(&out);
    json_decref(data);
}

/* The output is bounded by the buffer's maximum, for text and for values. */
static void test_output_bound(void **state)
{
    json_t *data = json_pack("{s:s}", "v", "0123456789");
    buf out;
    buf_init(&out, 12);
    char err[128];
    assert_int_equal(tpl_render("ab{{v}}", 7, data, 0, 0, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "ab0123456789");
    buf_reset(&out);
    assert_int_equal(tpl_render("abc{{v}}", 8, data, 0, 0, &out, err, sizeof err), -1);
    assert_string_equal(err, "line 1, column 4: output larger than the limit");
    buf_reset(&out);
    assert_int_equal(tpl_render("0123456789abc", 13, data, 0, 0, &out, err, sizeof err), -1);
    assert_string_equal(err, "line 1, column 1: output larger than the limit");
    buf_reset(&out);
    /* escaping grows the output: "&" becomes 5 bytes */
    json_object_set_new(data, "v", json_string("&&&"));
    assert_int_equal(tpl_render("{{v}}", 5, data, 1, 0, &out, err, sizeof err), -1);
    buf_free(&out);
    json_decref(data);
}

/* A long name in an error is cut, and a small err buffer is never overrun. */
static void test_error_bounds(void **state)
{
    char src[1024];
    memset(src, 'x', sizeof src);
    memcpy(src, "{{", 2);
    src[500] = ' ';
    memcpy(src + sizeof src - 2, "}}", 2);
    char err[512];
    assert_int_equal(tpl_check(src, sizeof src, err, sizeof err), -1);
    assert_true(strncmp(err, "line 1, column 1: invalid variable name \"", 41) == 0);
    assert_true(strlen(err) < 41 + 200 + 2);
    /* the cut never splits a UTF-8 character */
    char u[600] = "{{";
    size_t k = 2;
    u[k++] = 'x';
    while (k < 400) {
        u[k++] = (char)0xc3;
        u[k++] = (char)0xa9;
    }
    u[k++] = ' ';
    u[k++] = 'y';
    memcpy(u + k, "}}", 2);
    k += 2;
    assert_int_equal(tpl_check(u, k, err, sizeof err), -1);
    assert_true(strncmp(err, "line 1, column 1: invalid variable name \"x", 42) == 0);
    size_t el = strlen(err);
    assert_int_equal(el, 41 + 199 + 1);   /* "x" + 99 two-byte characters, then the quote */
    char tiny[8];
    assert_int_equal(tpl_check("{{", 2, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "line 1,");
    assert_int_equal(tpl_check("{{", 2, NULL, 0), -1);
}

/* ---- the Mustache spec as an oracle ----------------------------------------------------- */

/* Partials of one spec case: compiled on first use from the case's "partials" object and
 * kept until the case ends. */
typedef struct {
    const json_t *sources;
    json_t       *compiled;   /* name -> integer index into t[] */
    tpl          *t[64];
    size_t        nt;
} spec_partials;

static int spec_resolve(void *ctx, const char *name, size_t len, const tpl **out, char *err,
                        size_t errlen)
{
    spec_partials *sp = ctx;
    json_t *have = json_object_getn(sp->compiled, name, len);
    if (have) {
        *out = sp->t[json_integer_value(have)];
        return 0;
    }
    const json_t *src = json_object_getn(sp->sources, name, len);
    if (!json_is_string(src)) {
        *out = NULL;
        return 0;
    }
    tpl *t = tpl_compile(json_string_value(src), json_string_length(src), NULL, err, errlen);
    if (!t)
        return -1;
    assert_true(sp->nt < N_ELEMS(sp->t));
    sp->t[sp->nt] = t;
    json_object_setn_new(sp->compiled, name, len, json_integer((json_int_t)sp->nt));
    sp->nt++;
    *out = t;
    return 0;
}

#define SPEC_DIR "../shared/testdata/mustache-spec"

/* Runs every case of one spec file; returns the number of failures (each printed). */
static int run_spec_file(const char *file, int *passed, int *total)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", SPEC_DIR, file);
    json_error_t jerr;
    json_t *spec = json_load_file(path, 0, &jerr);
    if (!spec) {
        print_message("cannot read %s: %s\n", path, jerr.text);
        fail();
    }
    int failures = 0;
    size_t k;
    json_t *tc;
    *passed = *total = 0;
    json_array_foreach(json_object_get(spec, "tests"), k, tc) {
        const char *name = json_string_value(json_object_get(tc, "name"));
        const json_t *jt = json_object_get(tc, "template");
        const char *want = json_string_value(json_object_get(tc, "expected"));
        assert_non_null(jt);
        assert_non_null(want);
        (*total)++;
        spec_partials sp = {json_object_get(tc, "partials"), json_object(), {0}, 0};
        char err[512] = "";
        buf out;
        buf_init(&out, 1 << 20);
        int rc = -1;
        tpl *t = tpl_compile(json_string_value(jt), json_string_length(jt), NULL, err, sizeof err);
        if (t)
            rc = tpl_render_compiled(t, json_object_get(tc, "data"), 1, 0, spec_resolve, &sp,
                                     &out, err, sizeof err);
        if (rc == 0 && out.len == strlen(want) &&
            (out.len == 0 || memcmp(out.data, want, out.len) == 0)) {
            (*passed)++;
        } else {
            failures++;
            print_message("spec %s / %s: rc %d, err \"%s\"\n  want \"%s\"\n  got  \"%s\"\n", file,
                          name, rc, err, want, out.len ? out.data : "");
        }
        tpl_free(t);
        for (size_t i = 0; i < sp.nt; i++)
            tpl_free(sp.t[i]);
        json_decref(sp.compiled);
        buf_free(&out);
    }
    json_decref(spec);
    return failures;
}

/* Every case of the core spec files (and ~dynamic-names, which the engine supports) must
 * pass; ~inheritance and ~lambdas are optional and not run. A missing directory fails. */
static void test_mustache_spec(void **state)
{
    static const char *const REQUIRED[] = {"interpolation", "sections", "inverted", "comments",
                                           "partials", "delimiters", "~dynamic-names"};
    static const char *const OPTIONAL[] = {"~inheritance", "~lambdas"};
    int failures = 0, all = 0;
    for (size_t f = 0; f < N_ELEMS(REQUIRED); f++) {
        int passed, total;
        failures += run_spec_file(REQUIRED[f], &passed, &total);
        print_message("mustache spec %-15s %d/%d passed\n", REQUIRED[f], passed, total);
        assert_true(total > 0);
        all += total;
    }
    for (size_t f = 0; f < N_ELEMS(OPTIONAL); f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.json", SPEC_DIR, OPTIONAL[f]);
        json_error_t jerr;
        json_t *spec = json_load_file(path, 0, &jerr);
        size_t n = spec ? json_array_size(json_object_get(spec, "tests")) : 0;
        print_message("mustache spec %-15s %zu skipped (optional)\n", OPTIONAL[f], n);
        json_decref(spec);
    }
    assert_int_equal(failures, 0);
    assert_true(all >= 150);
}

/* ---- compiled templates, partials and limits ------------------------------------------- */

/* Partials from a fixed JSON object of sources, compiled on first use. */
static void test_compiled_reuse(void **state)
{
    char err[256];
    tpl *t = tpl_compile("Hi {{name}}{{#items}}, {{.}}{{/items}}", 38, NULL, err, sizeof err);
    assert_non_null(t);
    buf out;
    buf_init(&out, 1024);
    for (int i = 0; i < 3; i++) {
        json_t *d = json_pack("{s:s, s:[i,i]}", "name", i ? "Bo" : "Al", "items", i, i + 1);
        buf_reset(&out);
        assert_int_equal(tpl_render_compiled(t, d, 0, 0, NULL, NULL, &out, err, sizeof err), 0);
        char want[64];
        snprintf(want, sizeof want, "Hi %s, %d, %d", i ? "Bo" : "Al", i, i + 1);
        assert_string_equal(out.data, want);
        json_decref(d);
    }
    tpl_free(t);
    tpl_free(NULL);
    buf_free(&out);
}

static int render_sp(const tpl *t, const json_t *d, int html, int strict, spec_partials *sp,
                     buf *out, char *err)
{
    return tpl_render_compiled(t, d, html, strict, spec_resolve, sp, out, err, 256);
}

static void test_partials(void **state)
{
    json_t *sources = json_pack("{s:s, s:s, s:s, s:s}", "self", "x{{>self}}", "row",
                                "<li>{{name}}</li>\n", "deep", "{{#a}}{{>deep}}{{/a}}", "bad",
                                "{{#x}}");
    spec_partials sp = {sources, json_object(), {0}, 0};
    json_t *data = json_pack("{s:[{s:s},{s:s}]}", "people", "name", "A&B", "name", "C");
    char err[256];
    buf out;
    buf_init(&out, 1 << 20);
    const char *src = "<ul>\n  {{#people}}\n  {{>row}}\n  {{/people}}\n</ul>\n";
    tpl *t = tpl_compile(src, strlen(src), NULL, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(render_sp(t, data, 1, 0, &sp, &out, err), 0);
    assert_string_equal(out.data, "<ul>\n  <li>A&amp;B</li>\n  <li>C</li>\n</ul>\n");
    tpl_free(t);

    /* a partial that includes itself ends with the depth error */
    buf_reset(&out);
    t = tpl_compile("{{>self}}", 9, NULL, err, sizeof err);
    assert_int_equal(render_sp(t, data, 0, 0, &sp, &out, err), -1);
    assert_string_equal(err, "partial \"self\", line 1, column 2: partials nested deeper than 16 "
                             "(at \"self\")");
    tpl_free(t);
    /* also through a section that stays truthy */
    json_t *rec = json_pack("{s:b}", "a", 1);
    buf_reset(&out);
    t = tpl_compile("{{>deep}}", 9, NULL, err, sizeof err);
    assert_int_equal(render_sp(t, rec, 0, 0, &sp, &out, err), -1);
    assert_non_null(strstr(err, "partials nested deeper than 16"));
    tpl_free(t);
    /* a partial that does not compile, and a missing one when strict */
    buf_reset(&out);
    t = tpl_compile("a\n {{>bad}}", 11, NULL, err, sizeof err);
    assert_int_equal(render_sp(t, rec, 0, 0, &sp, &out, err), -1);
    assert_string_equal(err, "line 2, column 2: partial \"bad\": line 1, column 1: section \"x\" "
                             "is not closed");
    tpl_free(t);
    t = tpl_compile("{{>nope}}", 9, NULL, err, sizeof err);
    buf_reset(&out);
    assert_int_equal(render_sp(t, rec, 0, 0, &sp, &out, err), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(render_sp(t, rec, 0, 1, &sp, &out, err), -1);
    assert_string_equal(err, "line 1, column 1: missing partial \"nope\"");
    tpl_free(t);
    /* strict errors inside a partial name the partial */
    json_object_set_new(sources, "p", json_string("ok\n{{missing.key}}"));
    t = tpl_compile("{{>p}}", 6, NULL, err, sizeof err);
    assert_int_equal(render_sp(t, rec, 0, 1, &sp, &out, err), -1);
    assert_string_equal(err, "partial \"p\", line 2, column 1: missing variable \"missing.key\"");
    tpl_free(t);

    /* indentation accumulates through nested standalone partials, never inside values;
     * dynamic names; a partial inline takes no indentation */
    json_object_set_new(sources, "outer", json_string("<div>\n  {{>inner}}\n</div>\n"));
    json_object_set_new(sources, "inner", json_string("a\n{{v}}\nb\n"));
    json_t *iv = json_pack("{s:s, s:s}", "v", "1\n2", "which", "inner");
    const char *isrc = "x\n  {{>outer}}\n{{>*which}}|{{> inner }}";
    t = tpl_compile(isrc, strlen(isrc), NULL, err, sizeof err);
    assert_non_null(t);
    buf_reset(&out);
    assert_int_equal(render_sp(t, iv, 0, 0, &sp, &out, err), 0);
    assert_string_equal(out.data, "x\n  <div>\n    a\n    1\n2\n    b\n  </div>\n"
                                  "a\n1\n2\nb\n|a\n1\n2\nb\n");
    tpl_free(t);
    json_decref(iv);

    for (size_t i = 0; i < sp.nt; i++)
        tpl_free(sp.t[i]);
    json_decref(sp.compiled);
    json_decref(sources);
    json_decref(rec);
    json_decref(data);
    buf_free(&out);
}

/* 10,000 nested sections: the depth error, no deep recursion; 64 is still fine. */
static void test_deep_nesting(void **state)
{
    size_t depth = 10000;
    buf src;
    buf_init(&src, 1 << 20);
    for (size_t i = 0; i < depth; i++)
        assert_int_equal(buf_appendz(&src, "{{#a}}"), 0);
    for (size_t i = 0; i < depth; i++)
        assert_int_equal(buf_appendz(&src, "{{/a}}"), 0);
    char err[256];
    assert_null(tpl_compile(src.data, src.len, NULL, err, sizeof err));
    assert_string_equal(err, "line 1, column 385: sections nested deeper than 64");
    assert_int_equal(tpl_check(src.data, src.len, err, sizeof err), -1);
    buf_reset(&src);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(buf_appendz(&src, "{{#a}}"), 0);
    assert_int_equal(buf_appendz(&src, "{{x}}"), 0);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(buf_appendz(&src, "{{/a}}"), 0);
    json_t *data = json_pack("{s:{s:s}}", "a", "x", "deep");
    buf out;
    buf_init(&out, 100);
    assert_int_equal(tpl_render(src.data, src.len, data, 0, 0, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "deep");
    /* unclosed: 10,000 open tags */
    buf_reset(&src);
    for (size_t i = 0; i < depth; i++)
        assert_int_equal(buf_appendz(&src, "{{"), 0);
    assert_int_equal(tpl_check(src.data, src.len, err, sizeof err), -1);
    assert_string_equal(err, "line 1, column 1: unclosed tag {{{ (no }}} after it)");
    json_decref(data);
    buf_free(&out);
    buf_free(&src);
}

static void test_size_limit(void **state)
{
    size_t n = 600 * 1024;
    char *src = malloc(n);
    assert_non_null(src);
    memset(src, 'a', n);
    char err[256];
    assert_null(tpl_compile(src, n, NULL, err, sizeof err));
    assert_string_equal(err, "template is 614400 bytes, larger than the limit of 524288");
    assert_int_equal(tpl_check(src, n, err, sizeof err), -1);
    buf out;
    buf_init(&out, 1 << 21);
    assert_int_equal(tpl_render(src, n, NULL, 0, 0, &out, err, sizeof err), -1);
    assert_int_equal(tpl_check(src, TPL_MAX_BYTES, err, sizeof err), 0);
    tpl_opts small = {.max_bytes = 100, .max_depth = 2};
    assert_null(tpl_compile(src, 101, &small, err, sizeof err));
    assert_string_equal(err, "template is 101 bytes, larger than the limit of 100");
    assert_null(tpl_compile("{{#a}}{{#b}}{{#c}}", 18, &small, err, sizeof err));
    assert_string_equal(err, "line 1, column 13: sections nested deeper than 2");
    free(src);
    buf_free(&out);
}

/* A million keys: compiled once, each lookup is a hash lookup, so this stays fast. */
static void test_million_keys(void **state)
{
    json_t *data = json_object();
    char key[32];
    for (int i = 0; i < 1000000; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        json_object_setn_new_nocheck(data, key, (size_t)kl, json_integer(i));
    }
    buf src;
    buf_init(&src, 1 << 20);
    for (int i = 0; i < 1000000; i += 20000)
        assert_int_equal(buf_printf(&src, "{{k%d}},", i), 0);
    assert_int_equal(buf_appendz(&src, "{{#k999999}}{{k1}}{{/k999999}}"), 0);
    char err[256];
    tpl *t = tpl_compile(src.data, src.len, NULL, err, sizeof err);
    assert_non_null(t);
    buf out;
    buf_init(&out, 1 << 20);
    for (int rep = 0; rep < 1000; rep++) {
        buf_reset(&out);
        assert_int_equal(tpl_render_compiled(t, data, 0, 1, NULL, NULL, &out, err, sizeof err), 0);
    }
    assert_true(strncmp(out.data, "0,20000,40000,", 14) == 0);
    assert_true(out.len > 2 && strcmp(out.data + out.len - 8, "980000,1") == 0);
    tpl_free(t);
    buf_free(&out);
    buf_free(&src);
    json_decref(data);
}

/* Fan-out through partials and lists is bounded by the output or the step limit. */
static void test_output_and_steps(void **state)
{
    json_t *data = json_pack("{s:[i,i,i,i,i,i,i,i,i,i]}", "l", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    buf src;
    buf_init(&src, 1 << 16);
    for (int i = 0; i < 9; i++)
        assert_int_equal(buf_appendz(&src, "{{#l}}"), 0);
    assert_int_equal(buf_appendz(&src, "x"), 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(buf_appendz(&src, "{{/l}}"), 0);
    char err[256];
    buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(tpl_render(src.data, src.len, data, 0, 0, &out, err, sizeof err), -1);
    assert_string_equal(err, "line 1, column 55: output larger than the limit");
    /* the same without output: the step limit */
    buf_reset(&src);
    for (int i = 0; i < 9; i++)
        assert_int_equal(buf_appendz(&src, "{{#l}}"), 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(buf_appendz(&src, "{{/l}}"), 0);
    buf_reset(&out);
    assert_int_equal(tpl_render(src.data, src.len, data, 0, 0, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "render takes more than 100000000 steps"));
    json_decref(data);
    buf_free(&out);
    buf_free(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_table),
        cmocka_unit_test(test_no_data),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_error_bounds),
        cmocka_unit_test(test_mustache_spec),
        cmocka_unit_test(test_compiled_reuse),
        cmocka_unit_test(test_partials),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_million_keys),
        cmocka_unit_test(test_output_and_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
