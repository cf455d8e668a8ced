/* smtp/policy.c - the destination policy file (see smtp/policy.h) and matching. */
#include "smtp/policy.h"

#include "lib/config.h"
#include "lib/embedded.h"
#include "lib/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHIPPED_PATH  "etc/destinations.conf"
#define FILE_MAX      (1024 * 1024)
#define LINE_MAX_LEN  4096
#define NAME_MAX_LEN  253     /* a domain name in text form, without the trailing dot */

enum {
    K_CONNECTIONS, K_MESSAGES, K_RCPTS, K_RATE, K_TLS, K_DEAD_AFTER, K_DEAD_FOR, K_COUNT
};

typedef struct {
    dest_policy pol;
    unsigned    set;         /* bit per key the line gave */
} entry;

struct policy_set {
    entry  *e;               /* file order, without the "*" line */
    size_t  n;
    entry   star;            /* the "*" line, completed from the built-in defaults */
    int     have_star;
};

static const char *const tls_names[] = {
    [TLS_POLICY_NONE] = "none",
    [TLS_POLICY_MAY] = "may",
    [TLS_POLICY_REQUIRE] = "require",
    [TLS_POLICY_VERIFY] = "verify",
};

const char *tls_policy_name(tls_policy t)
{
    if ((unsigned)t < sizeof tls_names / sizeof tls_names[0])
        return tls_names[t];
    return "?";
}

static const dest_policy builtin = {
    .pattern = "*",
    .max_connections = POLICY_DEFAULT_CONNECTIONS,
    .messages_per_connection = POLICY_DEFAULT_MESSAGES,
    .rcpts_per_message = POLICY_DEFAULT_RCPTS,
    .rate_per_minute = POLICY_DEFAULT_RATE,
    .tls = POLICY_DEFAULT_TLS,
    .dead_after_ms = POLICY_DEFAULT_DEAD_AFTER_MS,
    .dead_for_ms = POLICY_DEFAULT_DEAD_FOR_MS,
};

/* ---- keys: one table of name, kind, bounds and where the value goes ------------------ */

typedef enum { V_INT, V_TLS, V_DURATION } value_kind;

typedef struct {
    const char *name;
    value_kind  kind;
    int64_t     min, max;
    size_t      off;
} key_def;

#define O(f) offsetof(dest_policy, f)
static const key_def keys[K_COUNT] = {
    [K_CONNECTIONS] = {"connections", V_INT, 1, POLICY_MAX_CONNECTIONS, O(max_connections)},
    [K_MESSAGES] = {"messages_per_connection", V_INT, 1, POLICY_MAX_MESSAGES, O(messages_per_connection)},
    [K_RCPTS] = {"rcpts_per_message", V_INT, 1, POLICY_MAX_RCPTS, O(rcpts_per_message)},
    [K_RATE] = {"rate", V_INT, 0, POLICY_MAX_RATE, O(rate_per_minute)},
    [K_TLS] = {"tls", V_TLS, 0, 0, O(tls)},
    [K_DEAD_AFTER] = {"dead_after", V_DURATION, POLICY_MIN_DEAD_MS, POLICY_MAX_DEAD_MS, O(dead_after_ms)},
    [K_DEAD_FOR] = {"dead_for", V_DURATION, POLICY_MIN_DEAD_MS, POLICY_MAX_DEAD_MS, O(dead_for_ms)},
};
#undef O

static void copy_key(dest_policy *to, const dest_policy *from, int k)
{
    const key_def *d = &keys[k];
    size_t sz = d->kind == V_INT ? sizeof(int) : d->kind == V_TLS ? sizeof(tls_policy) : sizeof(int64_t);
    memcpy((char *)to + d->off, (const char *)from + d->off, sz);
}

/* ---- parsing ------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    unsigned    line;
    char       *err;
    size_t      errlen;
} parse_ctx;

__attribute__((format(printf, 2, 3)))
static void perr(parse_ctx *pc, const char *fmt, ...)
{
    if (!pc->err || pc->errlen == 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pc->line)
        snprintf(pc->err, pc->errlen, "%s:%u: %s", pc->name, pc->line, msg);
    else
        snprintf(pc->err, pc->errlen, "%s: %s", pc->name, msg);
}

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* Next white-space separated word of [*pp, end) into tok (max bytes + NUL); a '#' where a
 * word would start ends the line. 1 word, 0 end of line, -1 too long (message set). */
static int next_word(parse_ctx *pc, const char **pp, const char *end, char *tok, size_t max)
{
    const char *p = *pp;
    while (p < end && is_space((unsigned char)*p))
        p++;
    if (p == end || *p == '#') {
        *pp = end;
        return 0;
    }
    size_t n = 0;
    while (p < end && !is_space((unsigned char)*p)) {
        if (n == max) {
            perr(pc, "word longer than %zu bytes", max);
            return -1;
        }
        tok[n++] = *p++;
    }
    tok[n] = '\0';
    *pp = p;
    return 1;
}

/* Lower-cases a host name pattern in place and checks it: "*", or an optional "*." and
 * dot-separated labels of letters, digits, '-' and '_' (1-63 bytes each, 253 in all); a
 * trailing dot is dropped. */
static int check_pattern(char *s)
{
    if (strcmp(s, "*") == 0)
        return 0;
    char *h = s;
    if (h[0] == '*' && h[1] == '.')
        h += 2;
    size_t n = strlen(h);
    if (n > 0 && h[n - 1] == '.')
        h[--n] = '\0';
    if (n == 0 || n > NAME_MAX_LEN)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)lower((unsigned char)h[i]);
        h[i] = c;
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return -1;
        if (++label > 63)
            return -1;
    }
    return 0;
}

/* A decimal integer without sign, leading '+' or white space, in [min, max]. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (*s == '\0')
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (max - (*p - '0')) / 10)
            return -1;        /* past max: also keeps v from overflowing */
        v = v * 10 + (*p - '0');
    }
    if (v < min)
        return -1;
    *out = v;
    return 0;
}

static int parse_kv(parse_ctx *pc, entry *en, char *tok)
{
    char *eq = strchr(tok, '=');
    if (!eq) {
        perr(pc, "expected key=value, got \"%.64s\"", tok);
        return -1;
    }
    *eq = '\0';
    const char *v = eq + 1;
    int k;
    for (k = 0; k < K_COUNT; k++)
        if (strcmp(tok, keys[k].name) == 0)
            break;
    if (k == K_COUNT) {
        perr(pc, "unknown key \"%.64s\" (connections, messages_per_connection, "
                 "rcpts_per_message, rate, tls, dead_after, dead_for)", tok);
        return -1;
    }
    if (en->set & (1u << k)) {
        perr(pc, "%s given twice", keys[k].name);
        return -1;
    }
    const key_def *d = &keys[k];
    char *dst = (char *)&en->pol + d->off;
    int64_t val;
    switch (d->kind) {
    case V_INT:
        if (parse_int(v, d->min, d->max, &val) != 0) {
            perr(pc, "%s=%.64s: want an integer from %lld to %lld", d->name, v,
                 (long long)d->min, (long long)d->max);
            return -1;
        }
        {
            int iv = (int)val;
            memcpy(dst, &iv, sizeof iv);
        }
        break;
    case V_TLS: {
        size_t t;
        for (t = 0; t < sizeof tls_names / sizeof tls_names[0]; t++)
            if (strcmp(v, tls_names[t]) == 0)
                break;
        if (t == sizeof tls_names / sizeof tls_names[0]) {
            perr(pc, "tls=%.64s: want none, may, require or verify", v);
            return -1;
        }
        tls_policy tp = (tls_policy)t;
        memcpy(dst, &tp, sizeof tp);
        break;
    }
    case V_DURATION:
        if (config_parse_duration(v, &val) != 0 || val < d->min || val > d->max) {
            perr(pc, "%s=%.64s: want a duration (\"30s\", \"5m\", \"1h\") from 1s to 7d",
                 d->name, v);
            return -1;
        }
        memcpy(dst, &val, sizeof val);
        break;
    }
    en->set |= 1u << k;
    return 0;
}

static int parse_line(parse_ctx *pc, policy_set *ps, const char *p, const char *end)
{
    char tok[LINE_MAX_LEN + 1];
    int rc = next_word(pc, &p, end, tok, sizeof tok - 1);
    if (rc <= 0)
        return rc;
    entry en;
    memset(&en, 0, sizeof en);
    if (strlen(tok) >= sizeof en.pol.pattern || check_pattern(tok) != 0) {
        perr(pc, "bad pattern \"%.64s\" (\"*\", \"*.example.com\" or \"example.com\")", tok);
        return -1;
    }
    memcpy(en.pol.pattern, tok, strlen(tok) + 1);
    int star = strcmp(tok, "*") == 0;
    if (star ? ps->have_star : 0) {
        perr(pc, "second \"*\" line");
        return -1;
    }
    for (size_t i = 0; !star && i < ps->n; i++) {
        if (strcmp(ps->e[i].pol.pattern, en.pol.pattern) == 0) {
            perr(pc, "pattern \"%s\" given twice", en.pol.pattern);
            return -1;
        }
    }
    while ((rc = next_word(pc, &p, end, tok, sizeof tok - 1)) == 1)
        if (parse_kv(pc, &en, tok) != 0)
            return -1;
    if (rc < 0)
        return -1;
    if (star) {
        ps->star = en;
        ps->have_star = 1;
        return 1;
    }
    if (ps->n == POLICY_MAX_LINES) {
        perr(pc, "more than %d lines", POLICY_MAX_LINES);
        return -1;
    }
    ps->e = xrealloc(ps->e, (ps->n + 1) * sizeof *ps->e);
    ps->e[ps->n++] = en;
    return 1;
}

policy_set *policy_parse(const char *data, size_t len, const char *name, char *err,
                         size_t errlen)
{
    parse_ctx pc = {name ? name : "destination policy", 0, err, errlen};
    policy_set *ps = xcalloc(1, sizeof *ps);
    if (err && errlen)
        err[0] = '\0';
    if (len > FILE_MAX) {
        perr(&pc, "larger than %d bytes", FILE_MAX);
        goto fail;
    }
    const char *p = data, *end = data + len;
    while (p < end) {
        pc.line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (eol - p > LINE_MAX_LEN) {
            perr(&pc, "line longer than %d bytes", LINE_MAX_LEN);
            goto fail;
        }
        for (const char *q = p; q < eol; q++) {
            if ((unsigned char)*q < 0x20 && !is_space((unsigned char)*q)) {
                perr(&pc, "control character in line");
                goto fail;
            }
        }
        if (parse_line(&pc, ps, p, eol) < 0)
            goto fail;
        p = nl ? nl + 1 : end;
    }
    /* "*" takes what it leaves out from the built-ins, every other line from "*" */
    if (!ps->have_star)
        ps->star.pol = builtin;
    for (int k = 0; k < K_COUNT; k++) {
        if (!(ps->star.set & (1u << k)))
            copy_key(&ps->star.pol, &builtin, k);
        for (size_t i = 0; i < ps->n; i++)
            if (!(ps->e[i].set & (1u << k)))
                copy_key(&ps->e[i].pol, &ps->star.pol, k);
    }
    return ps;
fail:
    policy_free(ps);
    return NULL;
}

policy_set *policy_load(const char *path, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    size_t len;
    char *owned;
    const char *data = embedded_or_file(path, SHIPPED_PATH, FILE_MAX, &len, &owned, err, errlen);
    if (!data)
        return NULL;
    policy_set *r = policy_parse(data, len, owned ? path : SHIPPED_PATH, err, errlen);
    free(owned);
    return r;
}

void policy_free(policy_set *p)
{
    if (!p)
        return;
    free(p->e);
    free(p);
}

size_t policy_count(const policy_set *p)
{
    return p ? p->n + 1 : 1;
}

/* ---- matching ------------------------------------------------------------------------ */

/* Lower-cased name without a trailing dot into out; 0, or -1 when there is none. */
static int name_key(const char *in, char out[NAME_MAX_LEN + 1])
{
    if (!in)
        return -1;
    size_t n = strnlen(in, NAME_MAX_LEN + 2);
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > NAME_MAX_LEN)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)lower((unsigned char)in[i]);
    out[n] = '\0';
    return 0;
}

static int pattern_matches(const char *pat, const char *name)
{
    if (pat[0] == '*' && pat[1] == '.') {
        size_t pl = strlen(pat + 1), nl = strlen(name);   /* ".example.com" */
        return nl > pl && memcmp(name + nl - pl, pat + 1, pl) == 0;
    }
    return strcmp(pat, name) == 0;
}

const dest_policy *policy_match(const policy_set *p, const char *destination, const char *domain)
{
    if (!p)
        return &builtin;
    char a[NAME_MAX_LEN + 1], b[NAME_MAX_LEN + 1];
    int ha = name_key(destination, a) == 0;
    int hb = name_key(domain, b) == 0;
    for (size_t i = 0; i < p->n; i++) {
        const char *pat = p->e[i].pol.pattern;
        if ((ha && pattern_matches(pat, a)) || (hb && pattern_matches(pat, b)))
            return &p->e[i].pol;
    }
    return &p->star.pol;
}
