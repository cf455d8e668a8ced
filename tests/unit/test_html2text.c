/* Unit tests of lib/html2text.c: exact outputs for well-formed and malformed html, the
 * output bound, and a 1 MB input that must finish in linear time. */
#include "tests/unit/unit.h"

#include "lib/html2text.h"

#include <time.h>

static const struct {
    const char *in;
    const char *want;
} cases[] = {
    {"", ""},
    {"plain", "plain\n"},
    {"  lots   of\n\t space  ", "lots of space\n"},
    {"<p>one</p><p>two</p>", "one\n\ntwo\n"},
    {"<p>a</p><p></p><p></p><div></div><p>b</p>", "a\n\nb\n"},
    {"a<br>b<br/>c<BR />d", "a\nb\nc\nd\n"},
    {"<h1>Title</h1>body", "Title\n\nbody\n"},
    {"<ul><li>one</li><li>two</li></ul>after", "- one\n- two\nafter\n"},
    {"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc\n"},
    {"x<hr>y", "x\ny\n"},
    {"line   <br>   next", "line\nnext\n"},
    /* links */
    {"see <a href=\"https://ex.com/x?a=1&amp;b=2\">the site</a>.",
     "see the site (https://ex.com/x?a=1&b=2).\n"},
    {"<a href='https://ex.com'>https://ex.com</a>", "https://ex.com\n"},
    {"<a href=https://ex.com></a>", "https://ex.com\n"},
    {"<a href=\"mailto:ann@ex.com\">Ann</a>", "Ann (ann@ex.com)\n"},
    {"<a href=\"mailto:ann@ex.com?subject=hi\">ann@ex.com</a>", "ann@ex.com\n"},
    {"<a href=\"javascript:alert(1)\">click</a>", "click\n"},
    {"<a href=\" JavaScript:x\"></a>ok", "ok\n"},
    {"<a name=top>anchor</a>", "anchor\n"},
    {"<a href=\"u1\">one<a href=\"u2\">two</a>", "one (u1) two (u2)\n"},
    {"<a href=\"u\" title='it\"s > here'>t</a>", "t (u)\n"},
    {"<a href=\"u\">unclosed", "unclosed (u)\n"},
    /* images */
    {"<img src=x.png alt=\"Logo &amp; co\">", "Logo & co\n"},
    {"<img src=x.png>", ""},
    /* dropped elements */
    {"<head><title>T</title><style>p{}</style></head><body>hi</body>", "hi\n"},
    {"a<script>if (a<b) x='</p>';</script>b", "ab\n"},
    {"a<SCRIPT type=x>y</ScRiPt >b", "ab\n"},
    {"<html><head><meta charset=utf-8><body>text", "text\n"},
    {"<title>only", ""},
    {"a<style/>b", "ab\n"},
    /* entities */
    {"&amp;&lt;&gt;&quot;&apos;", "&<>\"'\n"},
    {"a&nbsp;&nbsp;b", "a b\n"},
    {"&copy;&reg;&hellip;&mdash;&ndash;&laquo;&raquo;&euro;",
     "\xc2\xa9\xc2\xae\xe2\x80\xa6\xe2\x80\x94\xe2\x80\x93\xc2\xab\xc2\xbb\xe2\x82\xac\n"},
    {"&#65;&#x42;&#X43;&#233;", "ABC\xc3\xa9\n"},
    {"&#0;&#xD800;&#x110000;&#99999999999;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\n"},
    {"a&#1;&#9;&#10;&#127;&#x85;b", "a b\n"},
    {"&unknown; &amp &; &#; &#x;", "&unknown; &amp &; &#; &#x;\n"},
    /* malformed */
    {"a < b and c<d", "a < b and c\n"},
    {"1 <", "1 <\n"},
    {"<p", ""},
    {"x<!-- <p>hidden</p> -->y", "xy\n"},
    {"x<!-- never closed", "x\n"},
    {"x<![CDATA[<b>&amp;</b>]]>y", "x<b>&amp;</b>y\n"},
    {"<!DOCTYPE html><?xml version='1.0'?>z", "z\n"},
    {"<div attr=\"unclosed>text", ""},
    {"</p></li></a>stray closes", "stray closes\n"},
    {"bad \xff\xfe utf8 \xc3", "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd\n"},
    {"ctl\x01\x1b[31mx\x7f", "ctl[31mx\n"},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        buf b;
        buf_init(&b, 1 << 20);
        assert_int_equal(html2text(cases[i].in, strlen(cases[i].in), &b), 0);
        const char *got = b.data ? b.data : "";
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: %s\n got: [%s]\nwant: [%s]", i, cases[i].in, got, cases[i].want);
        buf_free(&b);
    }
}

/* A NUL in the input is a control character like any other: dropped. */
static void test_nul_inside(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 100);
    assert_int_equal(html2text("a\0b", 3, &b), 0);
    assert_string_equal(b.data, "ab\n");
    buf_free(&b);
}

/* Appends to what is already there; -1 once the maximum is reached. */
static void test_bound(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_appendz(&b, "pre:"), 0);
    assert_int_equal(html2text("<p>x</p>", 8, &b), 0);
    assert_string_equal(b.data, "pre:x\n");
    buf_free(&b);
    buf_init(&b, 5);
    assert_int_equal(html2text("<p>hello world</p>", 18, &b), -1);
    assert_true(b.len <= 5);
    buf_free(&b);
}

/* 1 MB of adversarial shapes: each must finish fast (linear, no rescans). */
static void test_big_inputs(void **state)
{
    (void)state;
    static const char *const units[] = {"<", "<a href=\"", "&#", "<!--", "<script>", "<p>x</p>",
                                        "<a href=u>t</a>", "<b ='' ", "&amp", "<head><",
                                        "<a =  \"  "};
    size_t n = 1 << 20;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t u = 0; u < N_ELEMS(units); u++) {
        size_t k = strlen(units[u]);
        for (size_t i = 0; i < n; i++)
            in[i] = units[u][i % k];
        buf b;
        buf_init(&b, 4 * n);
        clock_t t0 = clock();
        assert_int_equal(html2text(in, n, &b), 0);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        if (secs > 1.0)
            fail_msg("unit %zu (%s) took %.2fs", u, units[u], secs);
        buf_free(&b);
    }
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_nul_inside),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_big_inputs),
    };
    return cmocka_run_group_tests_name("html2text", tests, NULL, NULL);
}
