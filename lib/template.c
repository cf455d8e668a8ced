#include "lib/template.h"
#include "lib/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- compiled form ----------------------------------------------------------------------- */

enum { N_TEXT, N_VAR, N_SECTION, N_INVERTED, N_END, N_PARTIAL };

enum {
    F_LINE_START = 1,   /* first node of a source line: a partial's indentation goes before it */
    F_ESCAPE = 2,       /* {{x}}: escaped when rendering html */
    F_STANDALONE = 4,   /* a partial tag alone on its line: its indentation applies inside */
    F_DYNAMIC = 8,      /* {{>*name}}: the partial's name is looked up in the data */
};

typedef struct {
    uint8_t  type;
    uint8_t  flags;
    uint32_t off;        /* tag (or text) position in the source, for errors */
    uint32_t a, alen;    /* text, or name */
    uint32_t end;        /* section: index of its N_END node */
    uint32_t ws, wslen;  /* standalone partial: its indentation */
} node;

struct tpl {
    char   *src;
    size_t  n;
    node   *nodes;
    size_t  nn, cap;
    unsigned long max_steps;
};

/* ---- errors ------------------------------------------------------------------------------ */

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

/* How much of a name an error shows: at most 200 bytes, cut on a character boundary so the
 * message stays valid UTF-8. */
static int shown(const char *name, size_t n)
{
    if (n > 200) {
        n = 200;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

/* err = prefix + "line L, column C: " + the formatted reason. */
static int __attribute__((format(printf, 7, 8)))
failv(char *err, size_t errlen, const char *prefix, const char *src, size_t off,
      int with_pos, const char *fmt, ...)
{
    if (!err || !errlen)
        return -1;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (with_pos) {
        unsigned line, col;
        position(src, off, &line, &col);
        snprintf(err, errlen, "%sline %u, column %u: %s", prefix ? prefix : "", line, col, reason);
    } else {
        snprintf(err, errlen, "%s%s", prefix ? prefix : "", reason);
    }
    return -1;
}

/* ---- compiling --------------------------------------------------------------------------- */

typedef struct {
    tpl      *t;
    char     *err;
    size_t    errlen;
    unsigned  max_depth;
    uint32_t *open;       /* indexes of the open section nodes */
    unsigned  depth;
    int       pending;    /* the next node starts a line */
    const char *od, *cd;  /* current delimiters */
    size_t    odl, cdl;
    char      dbuf[2][64];
} compiler;

#define CFAIL(c, off, ...) failv((c)->err, (c)->errlen, NULL, (c)->t->src, (off), 1, __VA_ARGS__)

static node *add_node(compiler *c, int type, size_t off)
{
    tpl *t = c->t;
    if (t->nn == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->nodes = xrealloc(t->nodes, t->cap * sizeof *t->nodes);
    }
    node *nd = &t->nodes[t->nn++];
    memset(nd, 0, sizeof *nd);
    nd->type = (uint8_t)type;
    nd->off = (uint32_t)off;
    return nd;
}

/* Output-producing nodes take the pending line start. */
static node *add_output_node(compiler *c, int type, size_t off)
{
    node *nd = add_node(c, type, off);
    if (c->pending)
        nd->flags |= F_LINE_START;
    c->pending = 0;
    return nd;
}

static void add_text(compiler *c, size_t a, size_t b)
{
    if (a >= b)
        return;
    node *nd = add_output_node(c, N_TEXT, a);
    nd->a = (uint32_t)a;
    nd->alen = (uint32_t)(b - a);
    c->pending = c->t->src[b - 1] == '\n';
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* A name is "." or dot-separated non-empty segments without whitespace or braces. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n == 1 && s[0] == '.')
        return 1;
    size_t seg = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (is_space(ch) || ch == '{' || ch == '}')
            return 0;
        if (ch == '.') {
            if (seg == 0)
                return 0;
            seg = 0;
        } else {
            seg++;
        }
    }
    return seg > 0;
}

static int no_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_space(s[i]))
            return 0;
    return n > 0;
}

/* A tag alone on its line (only blanks around it) takes the whole line with it. The tag spans
 * [o, end); text from i on is not emitted yet. When standalone, *keep is where the text to
 * emit stops (the start of the line) and *next where parsing resumes (after the line end). */
static int standalone(const char *s, size_t n, size_t i, size_t o, size_t end, size_t *keep,
                      size_t *next)
{
    size_t ls = o;
    while (ls > i && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
        ls--;
    if (!(ls == 0 || (ls > i && s[ls - 1] == '\n') || (ls == i && s[i - 1] == '\n')))
        return 0;   /* text or another tag before it on the line */
    size_t e = end;
    while (e < n && (s[e] == ' ' || s[e] == '\t'))
        e++;
    if (e < n && s[e] == '\n')
        e++;
    else if (e + 1 < n && s[e] == '\r' && s[e + 1] == '\n')
        e += 2;
    else if (e != n)
        return 0;
    *keep = ls;
    *next = e;
    return 1;
}

/* {{=<% %>=}}: the inside (between the two '=') holds two delimiters separated by blanks. */
static int set_delimiters(compiler *c, size_t o, size_t a, size_t b)
{
    const char *s = c->t->src;
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    size_t m = a;
    while (m < b && !is_space(s[m]))
        m++;
    size_t k = m;
    while (k < b && is_space(s[k]))
        k++;
    size_t l1 = m - a, l2 = b - k;
    if (l1 == 0 || l2 == 0 || l1 >= sizeof c->dbuf[0] || l2 >= sizeof c->dbuf[1] ||
        memchr(s + a, '=', l1) || memchr(s + k, '=', l2) || !no_space(s + k, l2))
        return CFAIL(c, o, "invalid delimiter change (want {{=<open> <close>=}})");
    memcpy(c->dbuf[0], s + a, l1);
    c->dbuf[0][l1] = '\0';
    memcpy(c->dbuf[1], s + k, l2);
    c->dbuf[1][l2] = '\0';
    c->od = c->dbuf[0];
    c->odl = l1;
    c->cd = c->dbuf[1];
    c->cdl = l2;
    return 0;
}

static int compile(compiler *c)
{
    const char *s = c->t->src;
    size_t n = c->t->n, i = 0;
    while (i < n) {
        const char *open = memmem(s + i, n - i, c->od, c->odl);
        if (!open)
            break;
        size_t o = (size_t)(open - s);
        size_t j = o + c->odl;
        /* the closer depends on the tag: "}" + close for {{{, "=" + close for {{= */
        char pre = 0;
        if (j < n && s[j] == '{')
            pre = '{';
        else {
            size_t q = j;
            while (q < n && is_space(s[q]))
                q++;
            if (q < n && s[q] == '=')
                pre = '=';
        }
        char closer[80];
        size_t clen = 0;
        if (pre)
            closer[clen++] = pre == '{' ? '}' : '=';
        memcpy(closer + clen, c->cd, c->cdl);
        clen += c->cdl;
        size_t from = j + (pre == '{');
        if (pre == '=') {
            while (s[from] != '=')
                from++;
            from++;
        }
        const char *close = from <= n ? memmem(s + from, n - from, closer, clen) : NULL;
        if (!close)
            return CFAIL(c, o, "unclosed tag %s%s (no %.*s after it)", c->od,
                         pre == '{' ? "{" : pre == '=' ? "=" : "", (int)clen, closer);
        size_t cpos = (size_t)(close - s), end = cpos + clen;
        size_t a = from, b = cpos;
        char sigil = 0;
        if (pre == '{') {
            sigil = '{';
        } else if (pre == '=') {
            sigil = '=';
        } else {
            while (a < b && is_space(s[a]))
                a++;
            if (a < b && strchr("#^/>!&", s[a]))
                sigil = s[a++];
            else if (a < b && strchr("<$", s[a]))
                return CFAIL(c, o, "unsupported tag %s%c...%s: template inheritance is not "
                             "supported", c->od, s[a], c->cd);
        }
        int can_stand = sigil && strchr("#^/>!=", sigil);
        size_t keep = o, next = end;
        int alone = can_stand && standalone(s, n, i, o, end, &keep, &next);
        add_text(c, i, keep);
        if (alone)
            c->pending = 1;
        if (sigil == '!') {
            i = next;
            continue;
        }
        if (sigil == '=') {
            if (set_delimiters(c, o, a, b) != 0)
                return -1;
            i = next;
            continue;
        }
        int dyn = 0;
        if (sigil == '>') {
            while (a < b && is_space(s[a]))
                a++;
            if (a < b && s[a] == '*') {
                dyn = 1;
                a++;
            }
        }
        while (a < b && is_space(s[a]))
            a++;
        while (b > a && is_space(s[b - 1]))
            b--;
        if (a == b)
            return CFAIL(c, o, "empty tag");
        const char *name = s + a;
        size_t nl = b - a;
        switch (sigil) {
        case 0:
        case '{':
        case '&': {
            if (!valid_name(name, nl))
                return CFAIL(c, o, "invalid variable name \"%.*s\"", shown(name, nl), name);
            node *nd = add_output_node(c, N_VAR, o);
            nd->a = (uint32_t)a;
            nd->alen = (uint32_t)nl;
            if (!sigil)
                nd->flags |= F_ESCAPE;
            break;
        }
        case '#':
        case '^': {
            if (!valid_name(name, nl))
                return CFAIL(c, o, "invalid section name \"%.*s\"", shown(name, nl), name);
            if (c->depth >= c->max_depth)
                return CFAIL(c, o, "sections nested deeper than %u", c->max_depth);
            node *nd = alone ? add_node(c, sigil == '#' ? N_SECTION : N_INVERTED, o)
                             : add_output_node(c, sigil == '#' ? N_SECTION : N_INVERTED, o);
            nd->a = (uint32_t)a;
            nd->alen = (uint32_t)nl;
            c->open[c->depth++] = (uint32_t)(c->t->nn - 1);
            break;
        }
        case '/': {
            if (c->depth == 0)
                return CFAIL(c, o, "closing tag \"%.*s\" without an open section",
                             shown(name, nl), name);
            node *sec = &c->t->nodes[c->open[c->depth - 1]];
            if (sec->alen != nl || memcmp(s + sec->a, name, nl) != 0)
                return CFAIL(c, o, "closing tag \"%.*s\" does not match the open section "
                             "\"%.*s\"", shown(name, nl), name,
                             shown(s + sec->a, sec->alen), s + sec->a);
            uint32_t si = c->open[--c->depth];
            node *nd = alone ? add_node(c, N_END, o) : add_output_node(c, N_END, o);
            nd->a = (uint32_t)a;
            nd->alen = (uint32_t)nl;
            c->t->nodes[si].end = (uint32_t)(c->t->nn - 1);
            break;
        }
        case '>': {
            if (!no_space(name, nl) || nl > 1024)
                return CFAIL(c, o, "invalid partial name \"%.*s\"", shown(name, nl), name);
            node *nd = alone ? add_node(c, N_PARTIAL, o) : add_output_node(c, N_PARTIAL, o);
            nd->a = (uint32_t)a;
            nd->alen = (uint32_t)nl;
            if (dyn)
                nd->flags |= F_DYNAMIC;
            if (alone) {
                nd->flags |= F_STANDALONE;
                nd->ws = (uint32_t)keep;
                nd->wslen = (uint32_t)(o - keep);
            }
            break;
        }
        }
        i = next;
    }
    add_text(c, i, n);
    if (c->depth > 0) {
        node *sec = &c->t->nodes[c->open[c->depth - 1]];
        return CFAIL(c, sec->off, "section \"%.*s\" is not closed", shown(c->t->src + sec->a,
                     sec->alen), c->t->src + sec->a);
    }
    return 0;
}

void tpl_free(tpl *t)
{
    if (!t)
        return;
    free(t->src);
    free(t->nodes);
    free(t);
}

tpl *tpl_compile(const char *src, size_t n, const tpl_opts *opts, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : TPL_MAX_BYTES;
    unsigned max_depth = opts && opts->max_depth ? opts->max_depth : TPL_MAX_DEPTH;
    if (max_bytes > UINT32_MAX / 2)
        max_bytes = UINT32_MAX / 2;
    if (n > max_bytes) {
        failv(err, errlen, NULL, NULL, 0, 0,
              "template is %zu bytes, larger than the limit of %zu", n, max_bytes);
        return NULL;
    }
    tpl *t = xcalloc(1, sizeof *t);
    t->src = xmalloc(n + 1);
    if (n)
        memcpy(t->src, src, n);
    t->src[n] = '\0';
    t->n = n;
    t->max_steps = opts && opts->max_steps ? opts->max_steps : TPL_MAX_STEPS;
    compiler c = {.t = t, .err = err, .errlen = errlen, .max_depth = max_depth,
                  .pending = 1, .od = "{{", .cd = "}}", .odl = 2, .cdl = 2};
    c.open = xmalloc((size_t)max_depth * sizeof *c.open);
    int rc = compile(&c);
    free(c.open);
    if (rc != 0) {
        tpl_free(t);
        return NULL;
    }
    return t;
}

/* ---- rendering --------------------------------------------------------------------------- */

enum { FR_TPL, FR_SEC };

typedef struct {
    const tpl    *t;
    uint32_t      pc, start, end;   /* end: the node count, or the section's N_END */
    uint8_t       kind;
    uint8_t       pushed;           /* pushed one context */
    const json_t *list;             /* iterating this array */
    size_t        idx;
    size_t        ind_off, ind_len; /* indentation, in the renderer's indent buffer */
    const char   *pname;            /* the partial this frame renders (NULL: the top) */
    size_t        pnlen;
} frame;

typedef struct {
    int             html, strict;
    tpl_partial_fn  resolve;
    void           *rctx;
    buf            *out;
    char           *err;
    size_t          errlen;
    frame          *fr;
    size_t          nfr, capfr;
    const json_t  **ctx;
    size_t          nctx, capctx;
    char           *ind;            /* indentation strings, used as a stack */
    size_t          indlen, indcap;
    unsigned        pdepth;
    unsigned long   steps, max_steps;
} renderer;

/* An error at node offset off in the template of frame f. */
static int __attribute__((format(printf, 4, 5)))
rfail(renderer *r, const frame *f, size_t off, const char *fmt, ...)
{
    char reason[512], prefix[260] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (f->pname)
        snprintf(prefix, sizeof prefix, "partial \"%.*s\", ", shown(f->pname, f->pnlen),
                 f->pname);
    return failv(r->err, r->errlen, prefix, f->t->src, off, 1, "%s", reason);
}

static int emit(renderer *r, const frame *f, size_t off, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_append(r->out, p, n) != 0)
        return rfail(r, f, off, "output larger than the limit");
    return 0;
}

static int emit_indent(renderer *r, const frame *f, size_t off)
{
    return f->ind_len ? emit(r, f, off, r->ind + f->ind_off, f->ind_len) : 0;
}

static const unsigned char ESC[256] = {['&'] = 1, ['<'] = 1, ['>'] = 1, ['"'] = 1, ['\''] = 1};

static int emit_escaped(renderer *r, const frame *f, size_t off, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ESC[(unsigned char)p[i]])
            continue;
        const char *rep;
        switch (p[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        default: rep = "&#39;"; break;
        }
        if (emit(r, f, off, p + run, i - run) != 0 || emit(r, f, off, rep, strlen(rep)) != 0)
            return -1;
        run = i + 1;
    }
    return emit(r, f, off, p + run, n - run);
}

/* Literal text; inside an indented partial, every line that starts within it is indented. */
static int emit_text(renderer *r, const frame *f, const node *nd)
{
    const char *p = f->t->src + nd->a;
    size_t n = nd->alen;
    if (f->ind_len == 0)
        return emit(r, f, nd->off, p, n);
    size_t run = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (emit(r, f, nd->off, p + run, i + 1 - run) != 0 || emit_indent(r, f, nd->off) != 0)
            return -1;
        run = i + 1;
    }
    return emit(r, f, nd->off, p + run, n - run);
}

/* Looks a name up: "." is the current context; otherwise the first segment is searched from
 * the innermost context out, and the others only inside what it found. Returns NULL when
 * missing (a JSON null is found, not missing). */
static const json_t *lookup(renderer *r, const char *name, size_t n)
{
    if (r->nctx == 0)
        return NULL;
    if (n == 1 && name[0] == '.')
        return r->ctx[r->nctx - 1];
    const char *dot = memchr(name, '.', n);
    size_t seg = dot ? (size_t)(dot - name) : n;
    const json_t *v = NULL;
    for (size_t k = r->nctx; k-- > 0 && !v;)
        if (json_is_object(r->ctx[k]))
            v = json_object_getn(r->ctx[k], name, seg);
    size_t start = seg + 1;
    while (v && start <= n) {
        dot = memchr(name + start, '.', n - start);
        size_t e = dot ? (size_t)(dot - name) : n;
        v = json_is_object(v) ? json_object_getn(v, name + start, e - start) : NULL;
        start = e + 1;
    }
    return v;
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

static int interpolate(renderer *r, const frame *f, const node *nd)
{
    const char *name = f->t->src + nd->a;
    size_t n = nd->alen;
    const json_t *v = lookup(r, name, n);
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
        if (r->strict)
            return rfail(r, f, nd->off, "variable \"%.*s\" is an object or list, not a value",
                         shown(name, n), name);
        return 0;
    case JSON_NULL:
        if (r->strict)
            return v ? rfail(r, f, nd->off, "variable \"%.*s\" is null", shown(name, n), name)
                     : rfail(r, f, nd->off, "missing variable \"%.*s\"", shown(name, n), name);
        return 0;
    }
    return r->html && (nd->flags & F_ESCAPE) ? emit_escaped(r, f, nd->off, text, len)
                                             : emit(r, f, nd->off, text, len);
}

static int truthy(const json_t *v)
{
    if (!v)
        return 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_STRING: return json_string_length(v) > 0;
    default: return 1;
    }
}

static void push_ctx(renderer *r, const json_t *v)
{
    if (r->nctx == r->capctx) {
        r->capctx = r->capctx ? r->capctx * 2 : 16;
        r->ctx = xrealloc(r->ctx, r->capctx * sizeof *r->ctx);
    }
    r->ctx[r->nctx++] = v;
}

static frame *push_frame(renderer *r)
{
    if (r->nfr == r->capfr) {
        r->capfr = r->capfr ? r->capfr * 2 : 16;
        r->fr = xrealloc(r->fr, r->capfr * sizeof *r->fr);
    }
    frame *f = &r->fr[r->nfr++];
    memset(f, 0, sizeof *f);
    return f;
}

static void pop_frame(renderer *r)
{
    frame *f = &r->fr[--r->nfr];
    if (f->pushed)
        r->nctx--;
    if (f->kind == FR_TPL && f->pname) {
        r->pdepth--;
        r->indlen = f->ind_off;
    }
}

/* Enters a section (or skips it). f is the current frame; nd its section node. */
static int section(renderer *r, size_t fi, const node *nd, uint32_t ni)
{
    frame *f = &r->fr[fi];
    const char *name = f->t->src + nd->a;
    const json_t *v = lookup(r, name, nd->alen);
    if (!v && r->strict)
        return rfail(r, f, nd->off, "missing variable \"%.*s\"", shown(name, nd->alen), name);
    if ((nd->flags & F_LINE_START) && emit_indent(r, f, nd->off) != 0)
        return -1;
    f->pc = nd->end + 1;   /* where the frame goes on after the section */
    int t = truthy(v);
    if (nd->type == N_INVERTED ? t : !t)
        return 0;
    frame parent = *f;
    frame *s = push_frame(r);
    s->t = parent.t;
    s->kind = FR_SEC;
    s->start = ni + 1;
    s->pc = ni + 1;
    s->end = nd->end;
    s->ind_off = parent.ind_off;
    s->ind_len = parent.ind_len;
    s->pname = parent.pname;
    s->pnlen = parent.pnlen;
    if (nd->type == N_SECTION) {
        if (json_is_array(v)) {
            s->list = v;
            push_ctx(r, json_array_get(v, 0));
        } else {
            push_ctx(r, v);
        }
        s->pushed = 1;
    }
    return 0;
}

static int partial(renderer *r, size_t fi, const node *nd)
{
    frame *f = &r->fr[fi];
    f->pc++;
    const char *name = f->t->src + nd->a;
    size_t nl = nd->alen;
    if (nd->flags & F_DYNAMIC) {
        const json_t *v = lookup(r, name, nl);
        if (!json_is_string(v)) {
            if (r->strict)
                return rfail(r, f, nd->off, "missing variable \"%.*s\"", shown(name, nl), name);
            return 0;
        }
        name = json_string_value(v);
        nl = json_string_length(v);
    }
    if ((nd->flags & F_LINE_START) && !(nd->flags & F_STANDALONE) && emit_indent(r, f, nd->off))
        return -1;
    if (r->pdepth >= TPL_MAX_PARTIAL_DEPTH)
        return rfail(r, f, nd->off, "partials nested deeper than %u (at \"%.*s\")",
                     TPL_MAX_PARTIAL_DEPTH, shown(name, nl), name);
    const tpl *p = NULL;
    char perr[384] = "";
    if (r->resolve && r->resolve(r->rctx, name, nl, &p, perr, sizeof perr) != 0)
        return rfail(r, f, nd->off, "partial \"%.*s\": %s", shown(name, nl), name, perr);
    if (!p) {
        if (r->strict)
            return rfail(r, f, nd->off, "missing partial \"%.*s\"", shown(name, nl), name);
        return 0;
    }
    /* the inner indentation: the outer one plus this tag's, for a standalone tag */
    size_t off = r->indlen, len = 0;
    if ((nd->flags & F_STANDALONE) && f->ind_len + nd->wslen > 0) {
        len = f->ind_len + nd->wslen;
        if (r->indlen + len > r->indcap) {
            r->indcap = (r->indlen + len) * 2;
            r->ind = xrealloc(r->ind, r->indcap);
        }
        if (f->ind_len)
            memcpy(r->ind + off, r->ind + f->ind_off, f->ind_len);
        memcpy(r->ind + off + f->ind_len, f->t->src + nd->ws, nd->wslen);
        r->indlen += len;
    }
    frame *pf = push_frame(r);   /* f is stale from here */
    pf->t = p;
    pf->kind = FR_TPL;
    pf->end = (uint32_t)p->nn;
    pf->ind_off = off;
    pf->ind_len = len;
    pf->pname = name;
    pf->pnlen = nl;
    r->pdepth++;
    return 0;
}

static int run(renderer *r)
{
    while (r->nfr > 0) {
        size_t fi = r->nfr - 1;
        frame *f = &r->fr[fi];
        if (++r->steps > r->max_steps)
            return rfail(r, f, f->pc < f->t->nn ? f->t->nodes[f->pc].off : f->t->n,
                         "render takes more than %lu steps (lists or partials nested too far)",
                         r->max_steps);
        if (f->pc == f->end) {
            if (f->kind == FR_SEC) {
                const node *e = &f->t->nodes[f->end];
                if ((e->flags & F_LINE_START) && emit_indent(r, f, e->off) != 0)
                    return -1;
                if (f->list && ++f->idx < json_array_size(f->list)) {
                    r->ctx[r->nctx - 1] = json_array_get(f->list, f->idx);
                    f->pc = f->start;
                    continue;
                }
            }
            pop_frame(r);
            continue;
        }
        uint32_t ni = f->pc;
        const node *nd = &f->t->nodes[ni];
        switch (nd->type) {
        case N_TEXT:
            if ((nd->flags & F_LINE_START) && emit_indent(r, f, nd->off) != 0)
                return -1;
            if (emit_text(r, f, nd) != 0)
                return -1;
            f->pc++;
            break;
        case N_VAR:
            if ((nd->flags & F_LINE_START) && emit_indent(r, f, nd->off) != 0)
                return -1;
            if (interpolate(r, f, nd) != 0)
                return -1;
            f->pc++;
            break;
        case N_SECTION:
        case N_INVERTED:
            if (section(r, fi, nd, ni) != 0)
                return -1;
            break;
        case N_PARTIAL:
            if (partial(r, fi, nd) != 0)
                return -1;
            break;
        default:   /* N_END is only reached as a section frame's end */
            die("template: stray end node at %" PRIu32, ni);
        }
    }
    return 0;
}

int tpl_render_compiled(const tpl *t, const json_t *data, int html_escape, int strict,
                        tpl_partial_fn resolve, void *resolve_ctx, buf *out, char *err,
                        size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    renderer r = {.html = html_escape, .strict = strict, .resolve = resolve,
                  .rctx = resolve_ctx, .out = out, .err = err, .errlen = errlen,
                  .max_steps = t->max_steps};
    if (data)
        push_ctx(&r, data);
    frame *f = push_frame(&r);
    f->t = t;
    f->kind = FR_TPL;
    f->end = (uint32_t)t->nn;
    int rc = run(&r);
    free(r.fr);
    free(r.ctx);
    free(r.ind);
    return rc;
}

int tpl_render(const char *src, size_t n, const json_t *data, int html_escape, int strict,
               buf *out, char *err, size_t errlen)
{
    tpl *t = tpl_compile(src, n, NULL, err, errlen);
    if (!t)
        return -1;
    int rc = tpl_render_compiled(t, data, html_escape, strict, NULL, NULL, out, err, errlen);
    tpl_free(t);
    return rc;
}

int tpl_check(const char *src, size_t n, char *err, size_t errlen)
{
    tpl *t = tpl_compile(src, n, NULL, err, errlen);
    if (!t)
        return -1;
    tpl_free(t);
    return 0;
}
