/* Fuzz target: lib/csv.c. The first input byte picks the chunk size and the limits; the rest
 * is CSV. Invariants: feeding in chunks gives exactly the rows of feeding in one go; good
 * rows respect the limits, are valid UTF-8 without NUL and carry nondecreasing row numbers;
 * bad rows carry nfields 0; and every good row written back with csv_put_cell parses back
 * to the same fields. */
#include "tests/fuzz/fuzz.h"

#include "lib/buf.h"
#include "lib/csv.h"

#include <string.h>

typedef struct {
    buf out;              /* rendering of all rows, to compare the two feeds */
    size_t max_field, max_fields;
    size_t last_row;
    int roundtrip;
} ctx_t;

static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else return 0;
        if (n - i <= need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            unsigned char d = s[i + k];
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF))
                return 0;
        }
        i += need + 1;
    }
    return 1;
}

typedef struct {
    const char *const *f;
    const size_t *l;
    size_t n;
    int rows;
} expect_t;

static int check_back(void *vctx, size_t row_no, const char *const *f, const size_t *l, size_t n,
                      const char *error)
{
    expect_t *e = vctx;
    CHECK(error == NULL);
    CHECK(e->rows == 0);
    e->rows++;
    CHECK(n == e->n);
    for (size_t i = 0; i < n; i++)
        CHECK(l[i] == e->l[i] && memcmp(f[i], e->f[i], l[i]) == 0);
    return 0;
}

static int on_row(void *vctx, size_t row_no, const char *const *f, const size_t *l, size_t n,
                  const char *error)
{
    ctx_t *c = vctx;
    CHECK(row_no >= 1 && row_no > c->last_row);
    c->last_row = row_no;
    buf_printf(&c->out, "%zu/", row_no);
    if (error) {
        CHECK(n == 0 && *error);
        buf_appendz(&c->out, error);
        buf_append(&c->out, "\n", 1);
        return 0;
    }
    CHECK(n >= 1 && n <= c->max_fields);
    for (size_t i = 0; i < n; i++) {
        CHECK(l[i] <= c->max_field);
        CHECK(f[i][l[i]] == '\0');
        CHECK(utf8_ok((const unsigned char *)f[i], l[i]));
        buf_printf(&c->out, "%zu:", l[i]);
        buf_append(&c->out, f[i], l[i]);
    }
    buf_append(&c->out, "\n", 1);
    if (!c->roundtrip || (n == 1 && l[0] == 0))
        return 0;
    buf w;
    buf_init(&w, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        if (i)
            CHECK(buf_append(&w, ",", 1) == 0);
        CHECK(csv_put_cell(&w, f[i], l[i], 0) == 0);
    }
    CHECK(buf_append(&w, "\r\n", 2) == 0);
    csv_parser *p = csv_new(1 << 20, n, 1 << 20);
    expect_t e = {f, l, n, 0};
    CHECK(csv_feed(p, w.data, w.len, check_back, &e) == 0);
    CHECK(csv_finish(p, check_back, &e) == 0);
    CHECK(e.rows == 1);
    csv_free(p);
    buf_free(&w);
    return 0;
}

static void run(const char *s, size_t n, size_t chunk, size_t mf, size_t mn, size_t ml, int rt,
                buf *out)
{
    csv_parser *p = csv_new(mf, mn, ml);
    CHECK(p != NULL);
    ctx_t c = {.max_field = mf, .max_fields = mn, .roundtrip = rt};
    buf_init(&c.out, 1 << 24);
    buf_append(&c.out, "", 0);
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        CHECK(csv_feed(p, s + off, k, on_row, &c) == 0);
    }
    CHECK(csv_finish(p, on_row, &c) == 0);
    csv_free(p);
    *out = c.out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t chunk = (sel & 7) + 1;
    size_t mf = (sel & 0x08) ? 8 : 4096;
    size_t mn = (sel & 0x10) ? 3 : 64;
    size_t ml = (sel & 0x20) ? 16 : 8192;
    buf a, b;
    run(s, n, n ? n : 1, mf, mn, ml, 1, &a);
    run(s, n, chunk, mf, mn, ml, 0, &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    buf_free(&a);
    buf_free(&b);
    return 0;
}
