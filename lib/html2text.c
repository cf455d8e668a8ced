/* lib/html2text.c - see html2text.h. Output is produced lazily: whitespace and line breaks
 * are only recorded as pending and written before the next visible character, which gives
 * collapsing, trimmed line ends and at most one blank line for free. */
#include "lib/html2text.h"

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define URL_MAX 2048

typedef struct {
    buf   *out;
    size_t base;          /* out->len at the start: nothing before it is ours */
    int    err;
    int    space;         /* a space is pending */
    int    nl;            /* newlines pending (0..2) */
    int    in_link;
    size_t link_start;    /* out->len when the link opened */
    char   url[URL_MAX];
    size_t url_len;       /* 0: no usable URL */
} h2t;

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int ieq(const char *a, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lit[i])
            return 0;
    return 1;
}

static int iprefix(const char *a, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)a[i]) != lit[i])
            return 0;
    return 1;
}

static size_t utf8_enc(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one UTF-8 sequence (at least 1 byte of n); malformed input gives U+FFFD for one byte. */
static size_t utf8_dec(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if (n < len) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

static const struct {
    const char *name;
    uint32_t    cp;
} entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},
    {"apos", '\''},    {"nbsp", 0xA0},    {"copy", 0xA9},    {"reg", 0xAE},
    {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"laquo", 0xAB},
    {"raquo", 0xBB},   {"euro", 0x20AC},  {"trade", 0x2122}, {"middot", 0xB7},
    {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
    {"bull", 0x2022},  {"shy", 0xAD},
};

/* At s[0] == '&': the length of the entity and its code point, or 0 when it is none. */
static size_t entity(const char *s, size_t n, uint32_t *cp)
{
    size_t i = 1;
    if (i < n && s[i] == '#') {
        i++;
        int hex = 0;
        if (i < n && (s[i] == 'x' || s[i] == 'X'))
            hex = 1, i++;
        size_t d0 = i;
        uint32_t v = 0;
        for (; i < n; i++) {
            int c = (unsigned char)s[i], dv;
            if (c >= '0' && c <= '9')
                dv = c - '0';
            else if (hex && lower(c) >= 'a' && lower(c) <= 'f')
                dv = lower(c) - 'a' + 10;
            else
                break;
            if (v <= 0x10FFFF)
                v = v * (hex ? 16 : 10) + (uint32_t)dv;   /* stays below 2^32: capped once past */
        }
        if (i == d0)
            return 0;
        if (i < n && s[i] == ';')
            i++;
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            v = 0xFFFD;
        *cp = v;
        return i;
    }
    size_t k = i;
    while (k < n && k - i < 8 && is_alnum((unsigned char)s[k]))
        k++;
    if (k >= n || s[k] != ';')
        return 0;
    for (size_t e = 0; e < sizeof entities / sizeof entities[0]; e++)
        if (k - i == strlen(entities[e].name) && memcmp(s + i, entities[e].name, k - i) == 0) {
            *cp = entities[e].cp;
            return k + 1;
        }
    return 0;
}

static void put(h2t *h, const char *p, size_t n)
{
    if (!h->err && buf_append(h->out, p, n) != 0)
        h->err = 1;
}

static void want_nl(h2t *h, int k)
{
    h->space = 0;
    if (h->out->len == h->base)
        return;
    if (k > h->nl)
        h->nl = k;
}

/* Before visible text: the pending line breaks or space (none at the very start). */
static void flush_pending(h2t *h)
{
    if (h->out->len > h->base) {
        if (h->nl)
            put(h, "\n\n", (size_t)h->nl);
        else if (h->space)
            put(h, " ", 1);
    }
    h->nl = 0;
    h->space = 0;
}

/* Writes one code point of text: whitespace becomes pending, controls are dropped. */
static void emit_cp(h2t *h, uint32_t cp)
{
    if (cp < 0x80 && is_space((int)cp)) {
        h->space = 1;
        return;
    }
    if (cp == 0xA0) {
        h->space = 1;
        return;
    }
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0xAD)
        return;
    flush_pending(h);
    char u[4];
    put(h, u, utf8_enc(cp, u));
}

/* Printable ASCII that emit_cp would write as it is ('&' starts an entity unless raw). */
static int plain_byte(unsigned char c, int raw)
{
    return c > 0x20 && c < 0x7F && (raw || c != '&');
}

/* How far from s[0] a run of plain_byte()s (non-raw) with single spaces between words
 * certainly goes, ending in a plain byte (0 when unsure; the caller goes on byte by byte):
 * printable ASCII or SP, no '&', no SP before a SP. 16 bytes at a time; s[n] is readable. */
static size_t words_prefix(const char *s, size_t n)
{
    size_t j = 0;
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8(0x1F), hi = _mm_set1_epi8(0x7F), amp = _mm_set1_epi8('&'),
                  sp = _mm_set1_epi8(' ');
    while (j + 16 <= n) {   /* signed compares: bytes >= 0x80 are negative, not plain */
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + j));
        __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(s + j + 1));
        __m128i ok = _mm_andnot_si128(
            _mm_or_si128(_mm_cmpeq_epi8(x, amp),
                         _mm_and_si128(_mm_cmpeq_epi8(x, sp), _mm_cmpeq_epi8(y, sp))),
            _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi)));
        unsigned m = (unsigned)_mm_movemask_epi8(ok);
        size_t k = m == 0xFFFF ? 16 : (size_t)__builtin_ctz(~m);
        j += k;
        if (k < 16)
            break;
    }
    if (j && s[j - 1] == ' ')
        j--;                 /* a SP goes only with the plain byte after it */
#else
    (void)s;
    (void)n;
#endif
    return j;
}

/* Text with entities decoded (raw: entities kept, as in CDATA). Runs of printable ASCII
 * with single spaces between words, most of any text, go out in one piece: the same bytes
 * emit_cp would write one by one. */
static void emit_text(h2t *h, const char *s, size_t n, int raw)
{
    size_t i = 0;
    while (i < n) {
        if (plain_byte((unsigned char)s[i], raw)) {
            size_t j = i + 1;
            if (!raw && j < n)
                j += words_prefix(s + j, n - j - 1);
            for (;;) {
                if (j < n && plain_byte((unsigned char)s[j], raw))
                    j++;
                else if (j + 1 < n && s[j] == ' ' && plain_byte((unsigned char)s[j + 1], raw))
                    j += 2;
                else
                    break;
            }
            flush_pending(h);
            put(h, s + i, j - i);
            i = j;
            continue;
        }
        uint32_t cp;
        size_t k = 0;
        if (!raw && s[i] == '&')
            k = entity(s + i, n - i, &cp);
        if (k == 0)
            k = utf8_dec((const unsigned char *)s + i, n - i, &cp);
        emit_cp(h, cp);
        i += k;
    }
}

static void emit_lit(h2t *h, const char *s)
{
    emit_text(h, s, strlen(s), 1);
}

/* Finds attribute name in the tag body t[0..n) (after the tag name): its raw value. */
static int attr(const char *t, size_t n, const char *name, const char **v, size_t *vn)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_space((unsigned char)t[i]) || t[i] == '/'))
            i++;
        size_t a0 = i;
        while (i < n && !is_space((unsigned char)t[i]) && t[i] != '=' && t[i] != '/')
            i++;
        size_t an = i - a0;
        if (an == 0 && i < n) {
            i++;                      /* a stray '=' */
            continue;
        }
        while (i < n && is_space((unsigned char)t[i]))
            i++;
        const char *val = NULL;
        size_t vl = 0;
        if (i < n && t[i] == '=') {
            i++;
            while (i < n && is_space((unsigned char)t[i]))
                i++;
            if (i < n && (t[i] == '"' || t[i] == '\'')) {
                char q = t[i++];
                val = t + i;
                while (i < n && t[i] != q)
                    i++;
                vl = (size_t)(t + i - val);
                if (i < n)
                    i++;
            } else {
                val = t + i;
                while (i < n && !is_space((unsigned char)t[i]))
                    i++;
                vl = (size_t)(t + i - val);
            }
        }
        if (an && ieq(t + a0, an, name)) {
            *v = val ? val : "";
            *vn = vl;
            return 1;
        }
    }
    return 0;
}

/* Decodes an href into h->url: entities decoded, whitespace and controls dropped; no URL when
 * it is a javascript: one, empty or too long. */
static void set_url(h2t *h, const char *v, size_t n)
{
    h->url_len = 0;
    size_t len = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = 0;
        if (v[i] == '&')
            k = entity(v + i, n - i, &cp);
        if (k == 0)
            k = utf8_dec((const unsigned char *)v + i, n - i, &cp);
        i += k;
        if (cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD)
            continue;
        if (len + 4 > URL_MAX)
            return;
        len += utf8_enc(cp, h->url + len);
    }
    if (iprefix(h->url, len, "javascript:") || iprefix(h->url, len, "vbscript:") ||
        iprefix(h->url, len, "data:"))
        return;
    h->url_len = len;
}

static void link_close(h2t *h)
{
    if (!h->in_link)
        return;
    h->in_link = 0;
    if (h->url_len == 0)
        return;
    const char *u = h->url;
    size_t un = h->url_len;
    if (iprefix(u, un, "mailto:")) {
        u += 7, un -= 7;
        const char *q = memchr(u, '?', un);
        if (q)
            un = (size_t)(q - u);
    }
    if (un == 0)
        return;
    const char *t = h->out->data ? h->out->data + h->link_start : "";
    size_t tn = h->out->len - h->link_start;
    while (tn && is_space((unsigned char)*t))
        t++, tn--;
    if (h->err)
        return;
    if (tn == un && memcmp(t, u, un) == 0)
        return;
    if (tn == h->url_len && memcmp(t, h->url, tn) == 0)
        return;
    if (tn == 0) {
        emit_text(h, u, un, 1);
        return;
    }
    h->space = 1;
    emit_lit(h, "(");
    emit_text(h, u, un, 1);
    emit_lit(h, ")");
}

/* Position of the end tag "</name" (case-insensitive) at or after i, or n. */
static size_t find_end(const char *s, size_t i, size_t n, const char *name)
{
    size_t k = strlen(name);
    for (; i + 2 + k <= n; i++)
        if (s[i] == '<' && s[i + 1] == '/' && iprefix(s + i + 2, n - i - 2, name) &&
            (i + 2 + k == n || !is_alnum((unsigned char)s[i + 2 + k])))
            return i;
    return n;
}

static size_t find_str(const char *s, size_t i, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    for (; i + k <= n; i++)
        if (memcmp(s + i, lit, k) == 0)
            return i;
    return n;
}

/* Handles the tag whose '<' is at s[i]; returns the index after it. */
static size_t tag(h2t *h, const char *s, size_t i, size_t n)
{
    size_t j = i + 1;
    if (j < n && s[j] == '!') {
        if (n - j >= 3 && memcmp(s + j, "!--", 3) == 0) {
            size_t e = find_str(s, j + 3, n, "-->");
            return e == n ? n : e + 3;
        }
        if (n - j >= 8 && memcmp(s + j, "![CDATA[", 8) == 0) {
            size_t e = find_str(s, j + 8, n, "]]>");
            emit_text(h, s + j + 8, e - (j + 8), 1);
            return e == n ? n : e + 3;
        }
    }
    if (j < n && (s[j] == '!' || s[j] == '?')) {
        const char *gt = memchr(s + j, '>', n - j);
        return gt ? (size_t)(gt - s) + 1 : n;
    }
    int closing = 0;
    if (j < n && s[j] == '/')
        closing = 1, j++;
    size_t n0 = j;
    while (j < n && is_alnum((unsigned char)s[j]))
        j++;
    const char *name = s + n0;
    size_t nn = j - n0;
    /* find the '>' that ends the tag, outside quoted attribute values */
    size_t b0 = j;
    char q = 0;
    for (; j < n; j++) {
        if (q) {
            if (s[j] == q)
                q = 0;
        } else if (s[j] == '"' || s[j] == '\'') {
            if (j > b0 && s[j - 1] == '=')
                q = s[j];
            else if (j > b0 && is_space((unsigned char)s[j - 1])) {
                size_t p = j - 1;
                while (p > b0 && is_space((unsigned char)s[p]))
                    p--;
                if (s[p] == '=')
                    q = s[j];
            }
        } else if (s[j] == '>') {
            break;
        }
    }
    size_t end = j < n ? j + 1 : n;
    const char *body = s + b0;
    size_t bn = (j < n ? j : n) - b0;

    if (!closing && (ieq(name, nn, "script") || ieq(name, nn, "style") ||
                     ieq(name, nn, "title") || ieq(name, nn, "head"))) {
        if (bn && body[bn - 1] == '/')
            return end;
        char lname[8];
        for (size_t k = 0; k < nn; k++)
            lname[k] = (char)lower((unsigned char)name[k]);
        lname[nn] = '\0';
        size_t e = find_end(s, end, n, lname);
        if (ieq(name, nn, "head")) {
            size_t b = end;
            while ((b = find_str(s, b, e, "<")) < e && !iprefix(s + b + 1, e - b - 1, "body"))
                b++;
            if (b < e)
                return b;
        }
        if (e == n)
            return n;
        const char *gt = memchr(s + e, '>', n - e);
        return gt ? (size_t)(gt - s) + 1 : n;
    }
    if (ieq(name, nn, "a")) {
        int nested = !closing && h->in_link;
        link_close(h);
        if (nested)
            h->space = 1;        /* an unclosed link ended by the next one */
        const char *v;
        size_t vn;
        if (!closing && attr(body, bn, "href", &v, &vn)) {
            set_url(h, v, vn);
            h->in_link = 1;
            h->link_start = h->out->len;
        }
        return end;
    }
    if (!closing && ieq(name, nn, "img")) {
        const char *v;
        size_t vn;
        if (attr(body, bn, "alt", &v, &vn))
            emit_text(h, v, vn, 0);
        return end;
    }
    if (nn == 0 && !closing) {
        emit_lit(h, "<");        /* a stray '<': literal text */
        return i + 1;
    }
    if (nn == 0)
        return end;
    if (ieq(name, nn, "p") || (nn == 2 && lower((unsigned char)name[0]) == 'h' &&
                               name[1] >= '1' && name[1] <= '6')) {
        want_nl(h, 2);
    } else if (ieq(name, nn, "li")) {
        want_nl(h, 1);
        if (!closing) {
            emit_lit(h, "-");
            h->space = 1;
        }
    } else if (ieq(name, nn, "br") || ieq(name, nn, "div") || ieq(name, nn, "tr") ||
               ieq(name, nn, "table") || ieq(name, nn, "blockquote") || ieq(name, nn, "hr") ||
               ieq(name, nn, "ul") || ieq(name, nn, "ol")) {
        want_nl(h, 1);
    } else if (ieq(name, nn, "td") || ieq(name, nn, "th")) {
        h->space = 1;
    }
    return end;
}

int html2text(const char *html, size_t n, buf *out)
{
    h2t h;
    memset(&h, 0, sizeof h);
    h.out = out;
    h.base = out->len;
    size_t i = 0;
    while (i < n && !h.err) {
        if (html[i] == '<' && i + 1 < n &&
            (is_alnum((unsigned char)html[i + 1]) || html[i + 1] == '/' ||
             html[i + 1] == '!' || html[i + 1] == '?')) {
            i = tag(&h, html, i, n);
            continue;
        }
        const char *lt = memchr(html + i + 1, '<', n - i - 1);
        size_t e = lt ? (size_t)(lt - html) : n;
        emit_text(&h, html + i, e - i, 0);
        i = e;
    }
    link_close(&h);
    if (out->len > h.base)
        put(&h, "\n", 1);
    return h.err ? -1 : 0;
}
