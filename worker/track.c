/* worker/track.c - link rewriting and the open pixel (see track.h). A small HTML tokenizer
 * of its own: only tags, attribute values, comments and raw-text elements matter here, so
 * the rest of the document is copied byte for byte. */
#include "worker/track.h"
#include "lib/crypto.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* Case-insensitive search of the ASCII needle in h[from..n); n when absent. */
static size_t find_ci(const char *h, size_t n, size_t from, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = from; i + k <= n; i++)
        if (strncasecmp(h + i, needle, k) == 0)
            return i;
    return n;
}

static int hexdig(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int put_utf8(buf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(b, u, n);
}

/* Decodes the character references an href value commonly holds (the named ones of URLs
 * and numeric ones); anything else is kept as written, as browsers do. */
static int decode_refs(const char *s, size_t n, buf *out)
{
    static const struct { const char *name; char c; } named[] = {
        {"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''},
        {"sol;", '/'}, {"quest;", '?'}, {"equals;", '='}, {"num;", '#'}, {"percnt;", '%'},
        {"colon;", ':'}, {"period;", '.'}, {"commat;", '@'}, {"plus;", '+'},
    };
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') {
            if (buf_append(out, s + i, 1) != 0)
                return -1;
            continue;
        }
        size_t rest = n - i - 1;
        const char *r = s + i + 1;
        if (rest >= 2 && r[0] == '#') {
            int hex = r[1] == 'x' || r[1] == 'X';
            size_t j = hex ? 2 : 1;
            unsigned long cp = 0;
            size_t digits = 0;
            while (j < rest && digits < 8) {
                int d = hex ? hexdig(r[j]) : (r[j] >= '0' && r[j] <= '9' ? r[j] - '0' : -1);
                if (d < 0)
                    break;
                cp = cp * (hex ? 16 : 10) + (unsigned long)d;
                j++;
                digits++;
            }
            if (digits) {
                if (j < rest && r[j] == ';')
                    j++;
                if (put_utf8(out, cp) != 0)
                    return -1;
                i += j;
                continue;
            }
        }
        int done = 0;
        for (size_t k = 0; k < sizeof named / sizeof named[0] && !done; k++) {
            size_t kl = strlen(named[k].name);
            if (rest >= kl && memcmp(r, named[k].name, kl) == 0) {
                if (buf_append(out, &named[k].c, 1) != 0)
                    return -1;
                i += kl;
                done = 1;
            }
        }
        /* "&amp" without its ';' (legacy, still decoded by browsers) */
        if (!done && rest >= 3 && memcmp(r, "amp", 3) == 0 && (rest == 3 || !is_alnum(r[3]))) {
            if (buf_append(out, "&", 1) != 0)
                return -1;
            i += 3;
            done = 1;
        }
        if (!done && buf_append(out, "&", 1) != 0)
            return -1;
    }
    return 0;
}

/* The URL a browser follows for the raw attribute value v, or NULL when the link is not
 * one to track (not http(s), too long, control characters). */
static char *link_target(const char *v, size_t n, const char *skip, size_t *len)
{
    buf d, u;
    buf_init(&d, TRACK_URL_MAX);
    buf_init(&u, TRACK_URL_MAX);
    char *res = NULL;
    if (decode_refs(v, n, &d) != 0)
        goto out;
    const char *s = d.data ? d.data : "";
    size_t sl = d.len;
    while (sl && is_space(*s)) {
        s++;
        sl--;
    }
    while (sl && is_space(s[sl - 1]))
        sl--;
    if (!((sl > 7 && strncasecmp(s, "http://", 7) == 0) ||
          (sl > 8 && strncasecmp(s, "https://", 8) == 0)))
        goto out;
    static const char hexd[] = "0123456789ABCDEF";
    for (size_t i = 0; i < sl; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            goto out;      /* browsers drop tabs and newlines; such links stay as they are */
        if (c == ' ' || c >= 0x80 || c == '"' || c == '<' || c == '>') {
            char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
            if (buf_append(&u, e, 3) != 0)
                goto out;
        } else if (buf_append(&u, s + i, 1) != 0) {
            goto out;
        }
    }
    if (skip && *skip && u.len >= strlen(skip) && strncasecmp(u.data, skip, strlen(skip)) == 0)
        goto out;
    res = buf_steal(&u, len);
out:
    buf_free(&d);
    buf_free(&u);
    return res;
}

static void add_link(track_plan *p, size_t *cap, size_t start, size_t end, char *url,
                     size_t url_len)
{
    if (p->nlinks == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        p->links = xrealloc(p->links, *cap * sizeof *p->links);
    }
    track_link *l = &p->links[p->nlinks++];
    l->start = start;
    l->end = end;
    l->url = url;
    l->url_len = url_len;
    uint8_t h[SHA256_LEN];
    crypto_sha256(url, url_len, h);
    crypto_hex(h, TRACK_LINK_ID_LEN / 2, l->id);
    l->id[TRACK_LINK_ID_LEN] = '\0';
}

void track_plan_make(const char *html, size_t n, int clicks, int opens, const char *skip_prefix,
                     size_t max_links, track_plan *p)
{
    memset(p, 0, sizeof *p);
    size_t cap = 0;
    size_t body_end = n;    /* the last </body> outside comments */
    size_t i = 0;
    while (i < n) {
        const char *lt = memchr(html + i, '<', n - i);
        if (!lt)
            break;
        i = (size_t)(lt - html);
        if (n - i >= 4 && memcmp(html + i, "<!--", 4) == 0) {
            size_t e = i + 4;
            size_t close = n;
            for (; e + 3 <= n; e++)
                if (memcmp(html + e, "-->", 3) == 0) {
                    close = e + 3;
                    break;
                }
            i = close;      /* an unclosed comment runs to the end */
            continue;
        }
        if (i + 1 < n && (html[i + 1] == '!' || html[i + 1] == '?')) {
            const char *gt = memchr(html + i, '>', n - i);
            i = gt ? (size_t)(gt - html) + 1 : n;
            continue;
        }
        if (i + 1 < n && html[i + 1] == '/') {
            if (n - i >= 6 && strncasecmp(html + i + 2, "body", 4) == 0 &&
                (i + 6 == n || !is_alnum(html[i + 6])))
                body_end = i;
            const char *gt = memchr(html + i, '>', n - i);
            i = gt ? (size_t)(gt - html) + 1 : n;
            continue;
        }
        if (i + 1 >= n || !is_alpha(html[i + 1])) {
            i++;
            continue;       /* a lone '<' is text */
        }
        /* a start tag: its name, then its attributes */
        size_t t = i + 1, ts = t;
        while (t < n && !is_space(html[t]) && html[t] != '>' && html[t] != '/')
            t++;
        size_t tlen = t - ts;
        int is_a = tlen == 1 && (html[ts] == 'a' || html[ts] == 'A');
        int raw = (tlen == 6 && strncasecmp(html + ts, "script", 6) == 0) ||
                  (tlen == 5 && strncasecmp(html + ts, "style", 5) == 0);
        int seen_href = 0, broken = 0;
        for (;;) {
            while (t < n && (is_space(html[t]) || html[t] == '/'))
                t++;
            if (t >= n || html[t] == '>')
                break;
            size_t ns = t;
            while (t < n && !is_space(html[t]) && html[t] != '>' && html[t] != '/' &&
                   (html[t] != '=' || t == ns))
                t++;
            size_t nlen = t - ns;
            while (t < n && is_space(html[t]))
                t++;
            if (t >= n || html[t] != '=')
                continue;   /* an attribute without a value */
            t++;
            while (t < n && is_space(html[t]))
                t++;
            if (t >= n)
                break;
            size_t vs, ve, start = t, end;
            if (html[t] == '"' || html[t] == '\'') {
                const char *q = memchr(html + t + 1, html[t], n - t - 1);
                if (!q) {
                    broken = 1;     /* unterminated value: the rest is not ours to read */
                    break;
                }
                vs = t + 1;
                ve = (size_t)(q - html);
                end = ve + 1;
            } else {
                vs = t;
                while (t < n && !is_space(html[t]) && html[t] != '>')
                    t++;
                ve = t;
                end = t;
            }
            t = end;
            if (is_a && clicks && !seen_href && nlen == 4 && strncasecmp(html + ns, "href", 4) == 0) {
                seen_href = 1;      /* browsers take the first of duplicate attributes */
                if (p->nlinks < max_links) {
                    size_t ul;
                    char *url = link_target(html + vs, ve - vs, skip_prefix, &ul);
                    if (url)
                        add_link(p, &cap, start, end, url, ul);
                }
            } else if (is_a && nlen == 4 && strncasecmp(html + ns, "href", 4) == 0) {
                seen_href = 1;
            }
        }
        if (broken) {
            i = n;
            break;
        }
        i = t < n ? t + 1 : n;
        if (raw) {      /* script and style hold text, not tags, up to their end tag */
            size_t e = find_ci(html, n, i, tlen == 6 ? "</script" : "</style");
            i = e;
        }
    }
    if (opens) {
        p->pixel = 1;
        p->pixel_at = body_end;
    }
}

void track_plan_free(track_plan *p)
{
    for (size_t i = 0; i < p->nlinks; i++)
        free(p->links[i].url);
    free(p->links);
    memset(p, 0, sizeof *p);
}

/* Appends s html-escaped for a double-quoted attribute value. */
static int put_attr(buf *out, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] == '&' ? "&amp;" : s[i] == '"' ? "&quot;" : s[i] == '<' ? "&lt;"
                      : s[i] == '>' ? "&gt;" : NULL;
        if (!e)
            continue;
        if (buf_append(out, s + from, i - from) != 0 || buf_appendz(out, e) != 0)
            return -1;
        from = i + 1;
    }
    return buf_append(out, s + from, n - from);
}

/* Appends one rewritten href value: the caller's URL, double-quoted and escaped. */
static int put_link(const track_urls *u, const track_link *l, buf *url, buf *out)
{
    buf_reset(url);
    return u->link_url(u->ctx, l, url) != 0 || buf_append(out, "\"", 1) != 0 ||
                   put_attr(out, url->data ? url->data : "", url->len) != 0 ||
                   buf_append(out, "\"", 1) != 0
               ? -1
               : 0;
}

static int put_pixel(const track_urls *u, buf *url, buf *out)
{
    buf_reset(url);
    return u->pixel_url(u->ctx, url) != 0 || buf_appendz(out, "<img src=\"") != 0 ||
                   put_attr(out, url->data ? url->data : "", url->len) != 0 ||
                   buf_appendz(out, "\" width=\"1\" height=\"1\" alt=\"\">") != 0
               ? -1
               : 0;
}

int track_apply(const track_plan *p, const char *html, size_t n, const track_urls *u, buf *out)
{
    size_t pos = 0, li = 0;
    int pixel_left = p->pixel;
    buf url;
    buf_init(&url, TRACK_URL_MAX + 1024);
    int rc = -1;
    while (li < p->nlinks || pixel_left) {
        const track_link *l = li < p->nlinks ? &p->links[li] : NULL;
        if (pixel_left && (!l || p->pixel_at <= l->start)) {
            size_t at = p->pixel_at < pos ? pos : p->pixel_at > n ? n : p->pixel_at;
            if (buf_append(out, html + pos, at - pos) != 0 || put_pixel(u, &url, out) != 0)
                goto out;
            pos = at;
            pixel_left = 0;
            continue;
        }
        if (l->start < pos || l->end > n || buf_append(out, html + pos, l->start - pos) != 0 ||
            put_link(u, l, &url, out) != 0)
            goto out;
        pos = l->end;
        li++;
    }
    if (buf_append(out, html + pos, n - pos) != 0)
        goto out;
    rc = 0;
out:
    buf_free(&url);
    return rc;
}
