/* Unit tests of lib/csv.c: the RFC 4180 push parser (fed whole and in every chunk size,
 * which must give the same rows), its limits and bad-row reports, and the cell writer. */
#include "tests/unit/unit.h"

#include "lib/buf.h"
#include "lib/csv.h"

typedef struct {
    buf out;
    size_t stop_after;    /* 0: never stop */
    size_t seen;
} collect;

/* Renders each row as "<row_no>:[f1|f2]" or "<row_no>!<error>", rows joined by ' '. */
static int on_row(void *ctx, size_t row_no, const char *const *f, const size_t *lens, size_t n,
                  const char *error)
{
    collect *c = ctx;
    if (c->out.len)
        assert_int_equal(buf_append(&c->out, " ", 1), 0);
    if (error) {
        assert_int_equal(n, 0);
        assert_int_equal(buf_printf(&c->out, "%zu!%s", row_no, error), 0);
    } else {
        assert_int_equal(buf_printf(&c->out, "%zu:[", row_no), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(f[i][lens[i]], '\0');
            assert_int_equal(strlen(f[i]), lens[i]);
            if (i)
                assert_int_equal(buf_append(&c->out, "|", 1), 0);
            assert_int_equal(buf_append(&c->out, f[i], lens[i]), 0);
        }
        assert_int_equal(buf_append(&c->out, "]", 1), 0);
    }
    c->seen++;
    return c->stop_after && c->seen >= c->stop_after ? 7 : 0;
}

/* Parses in with chunks of `chunk` bytes (0: one go) and returns the rendering (caller frees). */
static char *parse(const char *in, size_t len, size_t chunk, size_t mf, size_t mn, size_t ml)
{
    csv_parser *p = csv_new(mf, mn, ml);
    assert_non_null(p);
    collect c = {0};
    buf_init(&c.out, 1 << 20);
    assert_int_equal(buf_append(&c.out, "", 0), 0);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_int_equal(csv_feed(p, in + off, n, on_row, &c), 0);
    }
    if (len == 0)
        assert_int_equal(csv_feed(p, "", 0, on_row, &c), 0);
    assert_int_equal(csv_finish(p, on_row, &c), 0);
    csv_free(p);
    return buf_steal(&c.out, NULL);
}

static const struct {
    const char *in;
    size_t mf, mn, ml;     /* limits; 0: 100, 10, 200 */
    const char *want;
} cases[] = {
    {"", 0, 0, 0, ""},
    {"a,b,c\n1,2,3\n", 0, 0, 0, "1:[a|b|c] 2:[1|2|3]"},
    {"a,b\r\n1,2\r\n", 0, 0, 0, "1:[a|b] 2:[1|2]"},
    {"a,b\r1,2", 0, 0, 0, "1:[a|b] 2:[1|2]"},                       /* bare CR, no final EOL */
    {"a,b\n1,2", 0, 0, 0, "1:[a|b] 2:[1|2]"},
    {"\xEF\xBB\xBF" "email\nx@y.z\n", 0, 0, 0, "1:[email] 2:[x@y.z]"},   /* BOM skipped */
    {"\xEF\xBB" "a\n", 0, 0, 0, "1!invalid UTF-8"},                 /* half a BOM is data */
    {"\xEF\xBB", 0, 0, 0, "1!invalid UTF-8"},
    {"a\xEF\xBB\xBF\n", 0, 0, 0, "1:[a\xEF\xBB\xBF]"},              /* only at the start */
    {"\"a,b\",\"c\"\"d\"\n", 0, 0, 0, "1:[a,b|c\"d]"},
    {"\"multi\r\nline\",x\r\nnext\r\n", 0, 0, 0, "1:[multi\r\nline|x] 3:[next]"},
    {"\"\"\n", 0, 0, 0, "1:[]"},
    {",\n", 0, 0, 0, "1:[|]"},
    {"a,\n", 0, 0, 0, "1:[a|]"},
    {"a,", 0, 0, 0, "1:[a|]"},
    {"\n\r\n\na\n\n", 0, 0, 0, "4:[a]"},                             /* blank lines skipped */
    {"ab\"c\n", 0, 0, 0, "1:[ab\"c]"},                               /* lenient inner quote */
    {"\"ab\"c,d\nok\n", 0, 0, 0, "1!unexpected character after closing quote 2:[ok]"},
    {"\"open\nx\n", 0, 0, 0, "1!unterminated quote"},
    {"\"a\"", 0, 0, 0, "1:[a]"},
    {" a , b \n", 0, 0, 0, "1:[ a | b ]"},                          /* spaces are data */
    {"caf\xC3\xA9,\xE2\x82\xAC,\xF0\x9F\x93\xAE\n", 0, 0, 0,
     "1:[caf\xC3\xA9|\xE2\x82\xAC|\xF0\x9F\x93\xAE]"},
    {"bad\xC3\n\xC0\xAF\nx\xED\xA0\x80\n\xF4\x90\x80\x80\n\xFF\nok\n", 0, 0, 0,
     "1!invalid UTF-8 2!invalid UTF-8 3!invalid UTF-8 4!invalid UTF-8 5!invalid UTF-8 6:[ok]"},
    {"\xC3,\xA9\n", 0, 0, 0, "1!invalid UTF-8"},                     /* cut by a delimiter */
    {"a\0b\nc\n", 0, 0, 0, "1!NUL character 2:[c]"},
    /* limits */
    {"abcd,ef\nabcde\nabc\n", 4, 0, 0, "1:[abcd|ef] 2!field too long 3:[abc]"},
    {"\"abcd\"\n\"abcde\"\n", 4, 0, 0, "1:[abcd] 2!field too long"},
    {"a,b,c\na,b,c,d\nx\n", 0, 3, 0, "1:[a|b|c] 2!too many fields 3:[x]"},
    {"a,b,c,\n", 0, 3, 0, "1!too many fields"},
    {"12345678\n123456789\n1\n", 0, 0, 8, "1:[12345678] 2!line too long 3:[1]"},
    {"123456789", 0, 0, 8, "1!line too long"},
    /* a too-long quoted record with embedded line breaks is skipped as a whole */
    {"\"1234\n5678\n9\",x\nok\n", 0, 0, 8, "1!line too long 4:[ok]"},
    {"\"12\r\n34\"\r\nok\r\n", 0, 0, 8, "1:[12\r\n34] 3:[ok]"},
    {"\"a\"\"\"\n", 0, 0, 0, "1:[a\"]"},
};

static void test_cases(void **state)
{
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t len = strlen(cases[i].in);
        if (i == 24)   /* the case with an embedded NUL */
            len = 6;
        size_t mf = cases[i].mf ? cases[i].mf : 100;
        size_t mn = cases[i].mn ? cases[i].mn : 10;
        size_t ml = cases[i].ml ? cases[i].ml : 200;
        for (size_t chunk = 0; chunk <= 4; chunk++) {
            char *got = parse(cases[i].in, len, chunk, mf, mn, ml);
            if (strcmp(got, cases[i].want) != 0)
                fail_msg("case %zu chunk %zu: got \"%s\" want \"%s\"", i, chunk, got, cases[i].want);
            free(got);
        }
    }
}

/* Memory stays bounded: a 10 MB line with max_line 1 KB is skipped without growing. */
static void test_long_line_not_buffered(void **state)
{
    csv_parser *p = csv_new(4096, 4, 1024);
    collect c = {0};
    buf_init(&c.out, 4096);
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    assert_int_equal(csv_feed(p, "h\n", 2, on_row, &c), 0);
    for (int i = 0; i < 2560; i++)
        assert_int_equal(csv_feed(p, chunk, sizeof chunk, on_row, &c), 0);
    assert_int_equal(csv_feed(p, "\nlast\n", 6, on_row, &c), 0);
    assert_int_equal(csv_finish(p, on_row, &c), 0);
    assert_string_equal(c.out.data, "1:[h] 2!line too long 3:[last]");
    assert_int_equal(csv_rows(p), 3);
    csv_free(p);
    buf_free(&c.out);
}

/* A nonzero callback return stops the parser, and it stays stopped. */
static void test_stop(void **state)
{
    csv_parser *p = csv_new(100, 10, 100);
    collect c = {.stop_after = 2};
    buf_init(&c.out, 4096);
    assert_int_equal(csv_feed(p, "a\nb\nc\nd\n", 8, on_row, &c), 7);
    assert_string_equal(c.out.data, "1:[a] 2:[b]");
    assert_int_equal(csv_feed(p, "e\n", 2, on_row, &c), 7);
    assert_int_equal(csv_finish(p, on_row, &c), 7);
    assert_int_equal(c.seen, 2);
    csv_free(p);
    buf_free(&c.out);
    assert_null(csv_new(0, 1, 1));
    assert_null(csv_new(1, 0, 1));
    assert_null(csv_new(1, 1, 0));
}

typedef struct {
    char cell[1000];
    size_t len, rows;
} one_cell;

static int first_cell(void *ctx, size_t row_no, const char *const *f, const size_t *lens, size_t n,
                      const char *error)
{
    one_cell *oc = ctx;
    assert_null(error);
    assert_int_equal(n, 1);
    assert_true(lens[0] < sizeof oc->cell);
    memcpy(oc->cell, f[0], lens[0]);
    oc->len = lens[0];
    oc->rows++;
    return 0;
}

static void test_writer(void **state)
{
    static const struct {
        const char *in;
        unsigned flags;
        const char *want;
    } w[] = {
        {"plain", 0, "plain"},
        {"", 0, ""},
        {"a,b", 0, "\"a,b\""},
        {"say \"hi\"", 0, "\"say \"\"hi\"\"\""},
        {"two\r\nlines", 0, "\"two\r\nlines\""},
        {" pad", 0, "\" pad\""},
        {"=1+2", 0, "=1+2"},
        {"=1+2", CSV_NEUTRALIZE, "'=1+2"},
        {"+33 1", CSV_NEUTRALIZE, "'+33 1"},
        {"-x", CSV_NEUTRALIZE, "'-x"},
        {"@SUM(A1)", CSV_NEUTRALIZE, "'@SUM(A1)"},
        {"\tx", CSV_NEUTRALIZE, "'\tx"},
        {"=HYPERLINK(\"http://x\",\"y\")", CSV_NEUTRALIZE, "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""},
        {"a=b", CSV_NEUTRALIZE, "a=b"},
        {"'quoted", CSV_NEUTRALIZE, "'quoted"},
        {"\xEF\xBB\xBFx", 0, "\"\xEF\xBB\xBFx\""},          /* not taken for a BOM */
    };
    for (size_t i = 0; i < N_ELEMS(w); i++) {
        buf b;
        buf_init(&b, 1000);
        assert_int_equal(csv_put_cell(&b, w[i].in, strlen(w[i].in), w[i].flags), 0);
        assert_int_equal(buf_append(&b, "", 0), 0);
        if (strcmp(b.data, w[i].want) != 0)
            fail_msg("writer %zu: got <%s> want <%s>", i, b.data, w[i].want);
        /* what was written parses back to the cell, after undoing the neutralisation (an
         * empty cell alone on a line is a blank line) */
        if (w[i].in[0] == '\0') {
            buf_free(&b);
            continue;
        }
        assert_int_equal(buf_append(&b, "\n", 1), 0);
        csv_parser *p = csv_new(1000, 2, 1000);
        one_cell oc = {0};
        assert_int_equal(csv_feed(p, b.data, b.len, first_cell, &oc), 0);
        assert_int_equal(csv_finish(p, first_cell, &oc), 0);
        csv_free(p);
        assert_int_equal(oc.rows, 1);
        const char *s = oc.cell;
        size_t n = oc.len;
        if (w[i].flags)
            csv_unneutralize(&s, &n);
        assert_int_equal(n, strlen(w[i].in));
        assert_memory_equal(s, w[i].in, n);
        buf_free(&b);
    }
    /* a full buffer leaves it unchanged */
    buf b;
    buf_init(&b, 4);
    assert_int_equal(csv_put_cell(&b, "ab", 2, 0), 0);
    assert_int_equal(csv_put_cell(&b, "a,b", 3, 0), -1);
    assert_int_equal(b.len, 2);
    buf_free(&b);

    static const struct {
        const char *in, *want;
    } u[] = {{"'=1", "=1"}, {"'+x", "+x"}, {"'-", "-"}, {"'@a", "@a"}, {"'a", "'a"}, {"'", "'"}, {"=1", "=1"}};
    for (size_t i = 0; i < N_ELEMS(u); i++) {
        const char *s = u[i].in;
        size_t n = strlen(s);
        csv_unneutralize(&s, &n);
        assert_int_equal(n, strlen(u[i].want));
        assert_memory_equal(s, u[i].want, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_long_line_not_buffered),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
