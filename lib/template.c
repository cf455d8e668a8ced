#include "lib/template.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char   *src;
    size_t        n;
    const json_t *data;
    int           html;
    int           strict;
    int           check_only;
    buf          *out;
    char         *err;
    size_t        errlen;
} tpl_ctx;

/* 1-based line and column of byte offset off; columns count UTF-8 characters, so the
 * continuation bytes (10xxxxxx) are skipped. */
static void position(const char *s, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* The message is pre + name (at most 200 bytes of it) + post, after the position. */
static int fail(tpl_ctx *t, size_t off, const char *pre, const char *name, size_t namelen,
                const char *post)
{
    unsigned line, col;
    position(t->src, off, &line, &col);
    size_t shown = namelen;
    if (shown > 200) {   /* cut on a character boundary: the message stays valid UTF-8 */
        shown = 200;
        while (shown > 0 && ((unsigned char)name[shown] & 0xC0) == 0x80)
            shown--;
    }
    if (t->err && t->errlen)
        snprintf(t->err, t->errlen, "line %u, column %u: %s%.*s%s", line, col, pre, (int)shown,
                 name ? name : "", post);
    return -1;
}

static int emit(tpl_ctx *t, size_t off, const char *p, size_t n)
{
    if (t->check_only || n == 0)
        return 0;
    if (buf_append(t->out, p, n) != 0)
        return fail(t, off, "output larger than the limit", NULL, 0, "");
    return 0;
}

static int emit_escaped(tpl_ctx *t, size_t off, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (p[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        if (emit(t, off, p + run, i - run) != 0 || emit(t, off, rep, strlen(rep)) != 0)
            return -1;
        run = i + 1;
    }
    return emit(t, off, p + run, n - run);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A name is "." or dot-separated non-empty segments without whitespace or braces. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n == 1 && s[0] == '.')
        return 1;
    size_t seg = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_space(c) || c == '{' || c == '}')
            return 0;
        if (c == '.') {
            if (seg == 0)
                return 0;
            seg = 0;
        } else {
            seg++;
        }
    }
    return seg > 0;
}

static const json_t *lookup(const json_t *data, const char *name, size_t n)
{
    if (n == 1 && name[0] == '.')
        return data;
    const json_t *cur = data;
    size_t start = 0;
    for (size_t i = 0; i <= n && cur; i++) {
        if (i == n || name[i] == '.') {
            cur = json_is_object(cur) ? json_object_getn(cur, name + start, i - start) : NULL;
            start = i + 1;
        }
    }
    return cur;
}

/* The shortest %g text that reads back as the same double. */
static void real_text(double v, char *out, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static int interpolate(tpl_ctx *t, size_t off, const char *name, size_t n, int escape)
{
    if (t->check_only)
        return 0;
    const json_t *v = t->data ? lookup(t->data, name, n) : NULL;
    char num[64];
    const char *text = NULL;
    size_t len = 0;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        text = json_string_value(v);
        len = json_string_length(v);
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        text = num;
        len = strlen(num);
        break;
    case JSON_REAL:
        real_text(json_real_value(v), num, sizeof num);
        text = num;
        len = strlen(num);
        break;
    case JSON_TRUE:
        text = "true";
        len = 4;
        break;
    case JSON_FALSE:
        text = "false";
        len = 5;
        break;
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (t->strict)
            return fail(t, off, "variable \"", name, n, "\" is an object or list, not a value");
        return 0;
    case JSON_NULL:
        if (t->strict)
            return fail(t, off, v ? "variable \"" : "missing variable \"", name, n,
                        v ? "\" is null" : "\"");
        return 0;
    }
    return escape ? emit_escaped(t, off, text, len) : emit(t, off, text, len);
}

/* A tag alone on its line (only blanks around it) takes the whole line with it, as in
 * Mustache. The tag spans [o, end); text from i on is not emitted yet. When standalone,
 * *keep is where the text to emit stops (the start of the line) and *next where rendering
 * resumes (after the line end). */
static void standalone(const char *s, size_t n, size_t i, size_t o, size_t end, size_t *keep,
                       size_t *next)
{
    size_t ls = o;
    while (ls > i && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
        ls--;
    if (!(ls == 0 || (ls > i && s[ls - 1] == '\n') || (ls == i && i > 0 && s[i - 1] == '\n')))
        return;   /* text or another tag before it on the line */
    size_t e = end;
    while (e < n && (s[e] == ' ' || s[e] == '\t'))
        e++;
    if (e < n && s[e] == '\n')
        e++;
    else if (e + 1 < n && s[e] == '\r' && s[e + 1] == '\n')
        e += 2;
    else if (e != n)
        return;
    *keep = ls;
    *next = e;
}

static int run(tpl_ctx *t)
{
    const char *s = t->src;
    size_t n = t->n, i = 0;
    while (i < n) {
        const char *open = memmem(s + i, n - i, "{{", 2);
        if (!open)
            return emit(t, i, s + i, n - i);
        size_t o = (size_t)(open - s);
        size_t j = o + 2;
        int triple = j < n && s[j] == '{';
        if (triple)
            j++;
        const char *closer = triple ? "}}}" : "}}";
        size_t clen = triple ? 3 : 2;
        const char *close = memmem(s + j, n - j, closer, clen);
        if (!close)
            return fail(t, o, triple ? "unclosed tag {{{ (no }}} after it)"
                                     : "unclosed tag {{ (no }} after it)", NULL, 0, "");
        size_t c = (size_t)(close - s);
        size_t a = j, b = c;
        while (a < b && is_space(s[a]))
            a++;
        if (!triple && a < b && s[a] == '!') {   /* comment */
            size_t keep = o, next = c + clen;
            standalone(s, n, i, o, next, &keep, &next);
            if (emit(t, i, s + i, keep - i) != 0)
                return -1;
            i = next;
            continue;
        }
        if (emit(t, i, s + i, o - i) != 0)
            return -1;
        int escape = t->html && !triple;
        if (!triple && a < b) {
            char sigil = s[a];
            if (sigil == '&') {
                escape = 0;
                a++;
            } else if (strchr("#^/>=<$", sigil)) {
                return fail(t, o, "unsupported tag {{", &s[a], 1,
                            "...}}: sections, partials and delimiter changes are not supported yet");
            }
        }
        while (a < b && is_space(s[a]))
            a++;
        while (b > a && is_space(s[b - 1]))
            b--;
        if (a == b)
            return fail(t, o, "empty tag", NULL, 0, "");
        if (!valid_name(s + a, b - a))
            return fail(t, o, "invalid variable name \"", s + a, b - a, "\"");
        if (interpolate(t, o, s + a, b - a, escape) != 0)
            return -1;
        i = c + clen;
    }
    return 0;
}

int tpl_render(const char *src, size_t n, const json_t *data, int html_escape, int strict,
               buf *out, char *err, size_t errlen)
{
    tpl_ctx t = {src, n, data, html_escape, strict, 0, out, err, errlen};
    if (err && errlen)
        err[0] = '\0';
    return run(&t);
}

int tpl_check(const char *src, size_t n, char *err, size_t errlen)
{
    tpl_ctx t = {src, n, NULL, 0, 0, 1, NULL, err, errlen};
    if (err && errlen)
        err[0] = '\0';
    return run(&t);
}
