/* Unit tests of worker/track.c: which hrefs are rewritten (quote styles, upper-case names,
 * character references, mailto/tel/#/relative/javascript links, the unsubscribe link,
 * comments, script and style, duplicate attributes, broken markup), what URL is stored, the
 * pixel's place, the link id, huge documents and the cap on links per message.
 * worker/ objects are not linked into unit tests, so the module is included whole. */
#include "tests/unit/unit.h"

#include "lib/crypto.h"
#include "worker/track.c"

#define UNSUB "https://ph.example/u/"

static int link_cb(void *ctx, const track_link *l, buf *out)
{
    int *calls = ctx;
    (*calls)++;
    return buf_printf(out, "https://ph.example/t/c/%s", l->id);
}

static int pixel_cb(void *ctx, buf *out)
{
    return buf_appendz(out, "https://ph.example/t/o/TOK");
}

/* Plans and applies html (clicks and opens as given); returns the result (caller frees). */
static char *run(const char *html, int clicks, int opens, track_plan *p)
{
    track_plan_make(html, strlen(html), clicks, opens, UNSUB, TRACK_MAX_LINKS, p);
    int calls = 0;
    track_urls u = {link_cb, pixel_cb, &calls};
    buf out;
    buf_init(&out, 64u << 20);
    assert_int_equal(track_apply(p, html, strlen(html), &u, &out), 0);
    assert_int_equal((size_t)calls, p->nlinks);
    size_t n;
    char *s = buf_steal(&out, &n);
    return s ? s : strdup("");
}

static void id_of(const char *url, char id[TRACK_LINK_ID_LEN + 1])
{
    uint8_t h[SHA256_LEN];
    crypto_sha256(url, strlen(url), h);
    crypto_hex(h, TRACK_LINK_ID_LEN / 2, id);
    id[TRACK_LINK_ID_LEN] = '\0';
}

/* html with one link: it must be rewritten, its stored URL be want, and the output be the
 * html with the value replaced by the tracked URL of want. */
static void expect_rewritten(const char *pre, const char *value, const char *post,
                             const char *want)
{
    char html[2048], expect[2048], id[TRACK_LINK_ID_LEN + 1];
    snprintf(html, sizeof html, "%s%s%s", pre, value, post);
    id_of(want, id);
    snprintf(expect, sizeof expect, "%s\"https://ph.example/t/c/%s\"%s", pre, id, post);
    track_plan p;
    char *got = run(html, 1, 0, &p);
    if (p.nlinks != 1)
        fail_msg("%s: %zu links planned", html, p.nlinks);
    assert_string_equal(p.links[0].url, want);
    assert_string_equal(p.links[0].id, id);
    assert_string_equal(got, expect);
    free(got);
    track_plan_free(&p);
}

static void expect_untouched(const char *html)
{
    track_plan p;
    char *got = run(html, 1, 0, &p);
    if (p.nlinks != 0)
        fail_msg("%s: rewrote %s", html, p.links[0].url);
    assert_string_equal(got, html);
    free(got);
    track_plan_free(&p);
}

static void test_quote_styles(void **state)
{
    expect_rewritten("<p><a href=", "\"https://shop.example/a\"", ">x</a></p>",
                     "https://shop.example/a");
    expect_rewritten("<a href=", "'http://shop.example/b?x=1'", ">x</a>",
                     "http://shop.example/b?x=1");
    expect_rewritten("<a href=", "https://shop.example/c", ">x</a>", "https://shop.example/c");
    expect_rewritten("<a class=\"btn\" href = ", "\"https://shop.example/d\"",
                     " target=_blank>x</a>", "https://shop.example/d");
    expect_rewritten("<a title='a > b' href=", "\"https://shop.example/e\"", ">x</a>",
                     "https://shop.example/e");
    expect_rewritten("<a\nhref=", "\"https://shop.example/f\"", "\n>x</a>",
                     "https://shop.example/f");
    expect_rewritten("<a href=", "\"https://shop.example/g\"", "/>", "https://shop.example/g");
}

static void test_case(void **state)
{
    expect_rewritten("<A HREF=", "\"HTTPS://Shop.Example/Up\"", ">x</A>",
                     "HTTPS://Shop.Example/Up");
    expect_rewritten("<a HrEf=", "\"Http://shop.example/\"", ">x</a>", "Http://shop.example/");
}

static void test_entities(void **state)
{
    expect_rewritten("<a href=", "\"https://shop.example/p?a=1&amp;b=2\"", ">x</a>",
                     "https://shop.example/p?a=1&b=2");
    expect_rewritten("<a href=", "\"https://shop.example/p?a=1&amp;amp;b\"", ">x</a>",
                     "https://shop.example/p?a=1&amp;b");
    expect_rewritten("<a href=", "\"https://shop.example/p?a=1&b=2\"", ">x</a>",
                     "https://shop.example/p?a=1&b=2");
    expect_rewritten("<a href=", "\"https&#58;//shop.example/&#x41;&#66;\"", ">x</a>",
                     "https://shop.example/AB");
    expect_rewritten("<a href=", "\"https://shop.example/q?x=&quot;y&quot;\"", ">x</a>",
                     "https://shop.example/q?x=%22y%22");
    expect_rewritten("<a href=", "\"  https://shop.example/sp ace  \"", ">x</a>",
                     "https://shop.example/sp%20ace");
    expect_rewritten("<a href=", "\"https://shop.example/caf\xc3\xa9\"", ">x</a>",
                     "https://shop.example/caf%C3%A9");
    expect_rewritten("<a href=", "\"https://shop.example/?a=1&amp\"", ">x</a>",
                     "https://shop.example/?a=1&");
    expect_rewritten("<a href=", "\"https://shop.example/?x=&unknown;\"", ">x</a>",
                     "https://shop.example/?x=&unknown;");
}

static void test_untouched(void **state)
{
    expect_untouched("<a href=\"mailto:ann@example.com\">mail</a>");
    expect_untouched("<a href=\"MAILTO:ann@example.com\">mail</a>");
    expect_untouched("<a href=\"tel:+4930123\">call</a>");
    expect_untouched("<a href=\"#top\">top</a>");
    expect_untouched("<a href=\"/relative\">rel</a>");
    expect_untouched("<a href=\"javascript:alert(1)\">js</a>");
    expect_untouched("<a href=\"ftp://files.example/\">ftp</a>");
    expect_untouched("<a href=\"http://\">empty host</a>");
    expect_untouched("<a name=\"x\">no href</a>");
    expect_untouched("<a href>no value</a>");
    expect_untouched("<link href=\"https://shop.example/style.css\">");
    expect_untouched("<img src=\"https://shop.example/logo.png\">");
    expect_untouched("<area href=\"https://shop.example/\">");
    expect_untouched("<abbr href=\"https://shop.example/\">not an a</abbr>");
    expect_untouched("<p>https://shop.example/ in text</p>");
    expect_untouched("<a href=\"https://shop.example/\ttab\">tab</a>");
    /* the unsubscribe link, however it is written */
    expect_untouched("<a href=\"https://ph.example/u/TOKEN\">unsubscribe</a>");
    expect_untouched("<a href=\"HTTPS://PH.EXAMPLE/u/TOKEN\">unsubscribe</a>");
    /* comments, conditional comments, script, style, unterminated things */
    expect_untouched("<!-- <a href=\"https://shop.example/\">x</a> -->");
    expect_untouched("<!--[if mso]><a href=\"https://shop.example/mso\">x</a><![endif]-->");
    expect_untouched("<!-- never closed <a href=\"https://shop.example/\">x</a>");
    expect_untouched("<script>var s = '<a href=\"https://shop.example/\">';</script>");
    expect_untouched("<STYLE>a[href=\"https://x.example/\"] {}</STYLE>");
    expect_untouched("<a href=\"https://shop.example/ never closed>x</a>");
    expect_untouched("<a href='https://shop.example/");
    expect_untouched("");
    expect_untouched("<");
    expect_untouched("<a");
    expect_untouched("<a href=");
    expect_untouched("a < b and <!doctype html><?xml?></p>");
}

static void test_mixed_document(void **state)
{
    const char *html =
        "<!DOCTYPE html><html><body>"
        "<!-- <a href=\"https://hidden.example/\">h</a> -->"
        "<a href=\"https://one.example/\">1</a>"
        "<a href=\"mailto:x@example.com\">m</a>"
        "<script>x='<a href=\"https://script.example/\">'</script>"
        "<a href='https://two.example/?a=1&amp;b=2'>2</a>"
        "<a href=\"https://ph.example/u/TOK\">unsub</a>"
        "<a href=\"https://one.example/\">1 again</a>"
        "<a href=\"https://three.example/\" href=\"https://dup.example/\">3</a>"
        "</BODY></html>";
    track_plan p;
    char *got = run(html, 1, 1, &p);
    assert_int_equal(p.nlinks, 4);
    assert_string_equal(p.links[0].url, "https://one.example/");
    assert_string_equal(p.links[1].url, "https://two.example/?a=1&b=2");
    assert_string_equal(p.links[2].url, "https://one.example/");
    assert_string_equal(p.links[3].url, "https://three.example/");
    assert_string_equal(p.links[0].id, p.links[2].id);      /* same URL, same id */
    assert_string_not_equal(p.links[0].id, p.links[1].id);
    assert_non_null(strstr(got, "https://hidden.example/"));
    assert_non_null(strstr(got, "https://script.example/"));
    assert_non_null(strstr(got, "mailto:x@example.com"));
    assert_non_null(strstr(got, "https://ph.example/u/TOK"));
    assert_non_null(strstr(got, "href=\"https://dup.example/\""));   /* the second is ignored */
    assert_null(strstr(got, "https://one.example/"));
    assert_null(strstr(got, "https://two.example/"));
    assert_null(strstr(got, "https://three.example/"));
    const char *pix = "<img src=\"https://ph.example/t/o/TOK\" width=\"1\" height=\"1\" alt=\"\">";
    char *at = strstr(got, pix);
    assert_non_null(at);
    assert_true(strncmp(at + strlen(pix), "</BODY></html>", 14) == 0);
    free(got);
    track_plan_free(&p);
}

static void test_pixel_only(void **state)
{
    track_plan p;
    char *got = run("<p>hi <a href=\"https://x.example/\">x</a></p>", 0, 1, &p);
    assert_int_equal(p.nlinks, 0);
    assert_string_equal(got, "<p>hi <a href=\"https://x.example/\">x</a></p>"
                             "<img src=\"https://ph.example/t/o/TOK\" width=\"1\" height=\"1\" "
                             "alt=\"\">");
    free(got);
    track_plan_free(&p);
    /* a </body> inside a comment is not the end of the body */
    got = run("<body>a<!-- </body> --></body>", 0, 1, &p);
    assert_string_equal(got, "<body>a<!-- </body> --><img src=\"https://ph.example/t/o/TOK\" "
                             "width=\"1\" height=\"1\" alt=\"\"></body>");
    free(got);
    track_plan_free(&p);
    /* neither: the html comes back as it was */
    got = run("<a href=\"https://x.example/\">x</a></body>", 0, 0, &p);
    assert_string_equal(got, "<a href=\"https://x.example/\">x</a></body>");
    free(got);
    track_plan_free(&p);
}

static int evil_cb(void *ctx, const track_link *l, buf *out)
{
    return buf_appendz(out, "https://ph.example/t/c/a\"b<c>&d");
}

static void test_replacement_escaped(void **state)
{
    const char *html = "<a href=https://x.example/>x</a>";
    track_plan p;
    track_plan_make(html, strlen(html), 1, 0, NULL, TRACK_MAX_LINKS, &p);
    buf out;
    buf_init(&out, 4096);
    track_urls u = {evil_cb, pixel_cb, NULL};
    assert_int_equal(track_apply(&p, html, strlen(html), &u, &out), 0);
    assert_string_equal(out.data,
                        "<a href=\"https://ph.example/t/c/a&quot;b&lt;c&gt;&amp;d\">x</a>");
    buf_free(&out);
    track_plan_free(&p);
}

static void test_huge_html(void **state)
{
    /* 8 MB of text with links at both ends */
    size_t fill = 8u << 20;
    const char *head = "<html><body><a href=\"https://first.example/\">f</a>";
    const char *tail = "<a href=\"https://last.example/\">l</a></body></html>";
    size_t n = strlen(head) + fill + strlen(tail);
    char *html = malloc(n + 1);
    assert_non_null(html);
    memcpy(html, head, strlen(head));
    for (size_t i = 0; i < fill; i++)
        html[strlen(head) + i] = "lorem ipsum <b>dolor</b> sit amet & co < 3\n"[i % 43];
    memcpy(html + strlen(head) + fill, tail, strlen(tail) + 1);
    track_plan p;
    track_plan_make(html, n, 1, 1, UNSUB, TRACK_MAX_LINKS, &p);
    assert_int_equal(p.nlinks, 2);
    assert_string_equal(p.links[1].url, "https://last.example/");
    int calls = 0;
    track_urls u = {link_cb, pixel_cb, &calls};
    buf out;
    buf_init(&out, 64u << 20);
    assert_int_equal(track_apply(&p, html, n, &u, &out), 0);
    assert_true(out.len > n);
    assert_non_null(strstr(out.data + out.len - 200, "/t/o/TOK"));
    buf_free(&out);
    /* an output bound that is too small fails cleanly */
    buf_init(&out, n / 2);
    assert_int_equal(track_apply(&p, html, n, &u, &out), -1);
    buf_free(&out);
    track_plan_free(&p);
    free(html);
}

static void test_link_cap(void **state)
{
    /* 10,000 links: the first TRACK_MAX_LINKS are rewritten, the rest stay */
    buf b;
    buf_init(&b, 8u << 20);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_printf(&b, "<a href=\"https://x.example/%d\">%d</a>\n", i, i), 0);
    track_plan p;
    char *got = run(b.data, 1, 0, &p);
    assert_int_equal(p.nlinks, TRACK_MAX_LINKS);
    assert_string_equal(p.links[TRACK_MAX_LINKS - 1].url, "https://x.example/999");
    assert_null(strstr(got, "\"https://x.example/999\""));
    assert_non_null(strstr(got, "\"https://x.example/1000\""));
    assert_non_null(strstr(got, "\"https://x.example/9999\""));
    free(got);
    track_plan_free(&p);
    /* a custom lower cap */
    track_plan_make(b.data, b.len, 1, 0, NULL, 3, &p);
    assert_int_equal(p.nlinks, 3);
    track_plan_free(&p);
    buf_free(&b);
}

static void test_long_url(void **state)
{
    buf b;
    buf_init(&b, 1u << 20);
    assert_int_equal(buf_appendz(&b, "<a href=\"https://x.example/"), 0);
    for (int i = 0; i < TRACK_URL_MAX; i++)
        assert_int_equal(buf_append(&b, "a", 1), 0);
    assert_int_equal(buf_appendz(&b, "\">x</a>"), 0);
    expect_untouched(b.data);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_styles),
        cmocka_unit_test(test_case),
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_untouched),
        cmocka_unit_test(test_mixed_document),
        cmocka_unit_test(test_pixel_only),
        cmocka_unit_test(test_replacement_escaped),
        cmocka_unit_test(test_huge_html),
        cmocka_unit_test(test_link_cap),
        cmocka_unit_test(test_long_url),
    };
    return cmocka_run_group_tests_name("track", tests, NULL, NULL);
}
