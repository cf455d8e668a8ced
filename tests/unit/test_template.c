/* tests/unit/test_template.c - lib/template: the minimal Mustache subset, exact outputs and
 * exact error messages (with line and column). */
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
    {"{{#items}}x{{/items}}", 0, 0, NULL,
     "line 1, column 1: unsupported tag {{#...}}: sections, partials and delimiter changes "
     "are not supported yet"},
    {"{{> partial}}", 0, 0, NULL,
     "line 1, column 1: unsupported tag {{>...}}: sections, partials and delimiter changes "
     "are not supported yet"},
    {"{{=<% %>=}}", 0, 0, NULL,
     "line 1, column 1: unsupported tag {{=...}}: sections, partials and delimiter changes "
     "are not supported yet"},
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

/* The Mustache spec (../shared/testdata/mustache-spec) as an oracle: every interpolation
 * and comment case that uses only what this renderer supports (no sections, partials or
 * delimiter changes) must give the spec's exact output. */
static const char *const SPEC_DIRS[] = {"../shared/testdata/mustache-spec",
                                        "/work/shared/testdata/mustache-spec"};

static void test_mustache_spec(void **state)
{
    const char *dir = NULL;
    char path[512];
    for (size_t i = 0; i < N_ELEMS(SPEC_DIRS) && !dir; i++) {
        snprintf(path, sizeof path, "%s/interpolation.json", SPEC_DIRS[i]);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            dir = SPEC_DIRS[i];
        }
    }
    if (!dir) {
        print_message("mustache spec not found; skipped\n");
        skip();
    }
    static const char *const FILES[] = {"interpolation", "comments"};
    int ran = 0, skipped = 0;
    for (size_t f = 0; f < N_ELEMS(FILES); f++) {
        snprintf(path, sizeof path, "%s/%s.json", dir, FILES[f]);
        json_error_t jerr;
        json_t *spec = json_load_file(path, JSON_DECODE_ANY, &jerr);
        assert_non_null(spec);
        size_t k;
        json_t *tc;
        json_array_foreach(json_object_get(spec, "tests"), k, tc) {
            const char *tpl = json_string_value(json_object_get(tc, "template"));
            const char *want = json_string_value(json_object_get(tc, "expected"));
            const char *name = json_string_value(json_object_get(tc, "name"));
            if (strstr(tpl, "{{#") || strstr(tpl, "{{^") || strstr(tpl, "{{/") ||
                strstr(tpl, "{{>") || strstr(tpl, "{{=")) {
                skipped++;
                continue;
            }
            buf out;
            buf_init(&out, 1 << 16);
            char err[256];
            int rc = tpl_render(tpl, strlen(tpl), json_object_get(tc, "data"), 1, 0, &out, err,
                                sizeof err);
            if (rc != 0 || strcmp(out.len ? out.data : "", want) != 0)
                print_message("spec %s / %s: rc %d, err \"%s\", got \"%s\"\n", FILES[f], name,
                              rc, rc ? err : "", out.len ? out.data : "");
            assert_int_equal(rc, 0);
            assert_string_equal(out.len ? out.data : "", want);
            assert_int_equal(tpl_check(tpl, strlen(tpl), err, sizeof err), 0);
            buf_free(&out);
            ran++;
        }
        json_decref(spec);
    }
    print_message("mustache spec: %d cases passed, %d skipped (sections)\n", ran, skipped);
    assert_true(ran >= 45);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
