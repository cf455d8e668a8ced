/* smtp/bounce.c - the bounce rules file (see docs/bounce-rules.md) and the classifier. */
#include "smtp/bounce.h"

#include "lib/embedded.h"
#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHIPPED_PATH   "etc/bounce-rules.conf"
#define FILE_MAX       (1024 * 1024)   /* bytes of a rules file */
#define LINE_MAX_LEN   4096            /* bytes of one line */
#define RULES_MAX      1024
#define ID_MAX         63
#define VERSION_MAX    15
#define CODES_MAX      16              /* code= items of one rule */
#define ENH_MAX        16              /* enhanced= items of one rule */
#define TEXTS_MAX      32              /* text= patterns of one rule */
#define TEXT_PAT_MAX   256             /* bytes of one text pattern */

typedef struct {
    char          id[ID_MAX + 1];
    bounce_class  cls;
    size_t        ncodes;
    char          codes[CODES_MAX][3];   /* digits or 'x'; "0" is stored as "000" */
    size_t        nenh;
    int           enh[ENH_MAX][3];       /* -1 = any */
    size_t        ntexts;
    char         *texts[TEXTS_MAX];      /* normalised: lower case, single spaces */
} rule;

struct bounce_rules {
    char   version[VERSION_MAX + 1];
    size_t n;
    rule  *rules;
};

static const char *const class_names[] = {
    [BOUNCE_HARD] = "hard",
    [BOUNCE_SOFT] = "soft",
    [BOUNCE_BLOCK] = "block",
    [BOUNCE_UNDETERMINED] = "undetermined",
};

const char *bounce_class_name(bounce_class c)
{
    if ((unsigned)c < sizeof class_names / sizeof class_names[0])
        return class_names[c];
    return "undetermined";
}

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* Lower-cases in[0..n) into out (room for max bytes + NUL), runs of white space becoming
 * one space, leading and trailing white space dropped. Returns the length. */
static size_t normalise(const char *in, size_t n, char *out, size_t max)
{
    size_t o = 0;
    int pending_space = 0;
    for (size_t i = 0; i < n && o < max; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_space(c)) {
            pending_space = o > 0;
            continue;
        }
        if (pending_space) {
            out[o++] = ' ';
            pending_space = 0;
            if (o == max)
                break;
        }
        out[o++] = (char)lower(c);
    }
    out[o] = '\0';
    return o;
}

/* ---- loading ------------------------------------------------------------------------- */

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

/* Next token of a line: a bare word, or key="quoted value" with \" and \\ escapes (the
 * quotes dropped). A '#' where a token would start ends the line. Returns 1 with the token
 * in tok, 0 at the end of the line, -1 on a syntax error (message set). */
static int next_token(parse_ctx *pc, const char **pp, const char *end, char *tok, size_t max)
{
    const char *p = *pp;
    while (p < end && is_space((unsigned char)*p))
        p++;
    if (p == end || *p == '#') {
        *pp = end;
        return 0;
    }
    size_t n = 0;
    int quoted = 0;
    while (p < end) {
        char c = *p;
        if (!quoted && is_space((unsigned char)c))
            break;
        if (c == '"') {
            quoted = !quoted;
            p++;
            continue;
        }
        if (quoted && c == '\\') {
            if (p + 1 == end || (p[1] != '"' && p[1] != '\\')) {
                perr(pc, "bad escape in quoted value (only \\\" and \\\\)");
                return -1;
            }
            c = *++p;
        }
        if ((unsigned char)c < 0x20 && c != '\t') {
            perr(pc, "control character in line");
            return -1;
        }
        if (n == max) {
            perr(pc, "token longer than %zu bytes", max);
            return -1;
        }
        tok[n++] = c;
        p++;
    }
    if (quoted) {
        perr(pc, "unterminated quote");
        return -1;
    }
    tok[n] = '\0';
    *pp = p;
    return 1;
}

static int parse_class(const char *s, bounce_class *out)
{
    for (size_t i = 0; i < sizeof class_names / sizeof class_names[0]; i++) {
        if (strcmp(s, class_names[i]) == 0) {
            *out = (bounce_class)i;
            return 0;
        }
    }
    return -1;
}

/* "550", "55x", "5xx" or "0" (local, no reply). */
static int parse_code_pat(const char *s, char out[3])
{
    if (strcmp(s, "0") == 0) {
        memcpy(out, "000", 3);
        return 0;
    }
    if (strlen(s) != 3 || s[0] < '1' || s[0] > '5')
        return -1;
    for (int i = 1; i < 3; i++)
        if (!is_digit((unsigned char)s[i]) && s[i] != 'x')
            return -1;
    /* a wildcard may only be followed by wildcards: "5x0" is more likely a typo than meant */
    if (s[1] == 'x' && s[2] != 'x')
        return -1;
    memcpy(out, s, 3);
    return 0;
}

/* One component of an enhanced code: 1-3 digits, bounded by max. */
static const char *parse_num(const char *s, int max, int *out)
{
    int v = 0, n = 0;
    while (is_digit((unsigned char)*s) && n < 4) {
        v = v * 10 + (*s - '0');
        s++;
        n++;
    }
    if (n == 0 || n > 3 || v > max)
        return NULL;
    *out = v;
    return s;
}

/* "5.1.1", "5.7.*", "4.*.*", "*.7.1": class 2, 4 or 5; subject and detail 0-999. */
static int parse_enh_pat(const char *s, int out[3])
{
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*s != '.')
                return -1;
            s++;
        }
        if (*s == '*') {
            out[i] = -1;
            s++;
            continue;
        }
        s = parse_num(s, 999, &out[i]);
        if (!s)
            return -1;
        if (i == 0 && out[0] != 2 && out[0] != 4 && out[0] != 5)
            return -1;
    }
    return *s == '\0' ? 0 : -1;
}

/* Splits a comma-separated list in place, calling one(item) for each; -1 on an empty item,
 * too many items or an item one() refuses. */
static int parse_list(parse_ctx *pc, const char *key, char *v, size_t *count, size_t max,
                      int (*one)(const char *, void *, size_t), void *arr)
{
    if (*v == '\0') {
        perr(pc, "empty %s=", key);
        return -1;
    }
    for (;;) {
        char *comma = strchr(v, ',');
        if (comma)
            *comma = '\0';
        if (*count == max) {
            perr(pc, "more than %zu %s= values", max, key);
            return -1;
        }
        if (*v == '\0' || one(v, arr, *count) != 0) {
            perr(pc, "bad %s= value \"%s\"", key, v);
            return -1;
        }
        (*count)++;
        if (!comma)
            return 0;
        v = comma + 1;
    }
}

static int one_code(const char *s, void *arr, size_t i)
{
    return parse_code_pat(s, ((char (*)[3])arr)[i]);
}

static int one_enh(const char *s, void *arr, size_t i)
{
    return parse_enh_pat(s, ((int (*)[3])arr)[i]);
}

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit((unsigned char)c) || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static void rule_clear(rule *r)
{
    for (size_t i = 0; i < r->ntexts; i++)
        free(r->texts[i]);
    r->ntexts = 0;
}

/* "rule <id> <class> cond..." after the word "rule". */
static int parse_rule(parse_ctx *pc, bounce_rules *rs, const char *p, const char *end)
{
    char tok[LINE_MAX_LEN + 1];
    rule r;
    memset(&r, 0, sizeof r);
    int rc = next_token(pc, &p, end, tok, sizeof tok - 1);
    if (rc <= 0) {
        if (rc == 0)
            perr(pc, "rule without an id");
        return -1;
    }
    if (!valid_id(tok)) {
        perr(pc, "bad rule id \"%.64s\" (1-%d of a-z 0-9 - _ .)", tok, ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < rs->n; i++) {
        if (strcmp(rs->rules[i].id, tok) == 0) {
            perr(pc, "duplicate rule id \"%s\"", tok);
            return -1;
        }
    }
    memcpy(r.id, tok, strlen(tok) + 1);
    rc = next_token(pc, &p, end, tok, sizeof tok - 1);
    if (rc <= 0) {
        if (rc == 0)
            perr(pc, "rule %s without a class", r.id);
        return -1;
    }
    if (parse_class(tok, &r.cls) != 0) {
        perr(pc, "unknown class \"%.64s\" (hard, soft, block, undetermined)", tok);
        return -1;
    }
    while ((rc = next_token(pc, &p, end, tok, sizeof tok - 1)) == 1) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            perr(pc, "expected key=value, got \"%.64s\"", tok);
            goto fail;
        }
        *eq = '\0';
        char *v = eq + 1;
        if (strcmp(tok, "code") == 0) {
            if (parse_list(pc, "code", v, &r.ncodes, CODES_MAX, one_code, r.codes) != 0)
                goto fail;
        } else if (strcmp(tok, "enhanced") == 0) {
            if (parse_list(pc, "enhanced", v, &r.nenh, ENH_MAX, one_enh, r.enh) != 0)
                goto fail;
        } else if (strcmp(tok, "text") == 0) {
            if (r.ntexts == TEXTS_MAX) {
                perr(pc, "more than %d text= values", TEXTS_MAX);
                goto fail;
            }
            char norm[TEXT_PAT_MAX + 1];
            size_t vlen = strlen(v);
            if (vlen > TEXT_PAT_MAX) {
                perr(pc, "text= longer than %d bytes", TEXT_PAT_MAX);
                goto fail;
            }
            size_t nlen = normalise(v, vlen, norm, TEXT_PAT_MAX);
            if (strspn(norm, "* ") == nlen) {
                perr(pc, "text= must contain something besides '*' and spaces");
                goto fail;
            }
            r.texts[r.ntexts++] = xstrndup(norm, nlen);
        } else {
            perr(pc, "unknown key \"%.64s\" (code, enhanced, text)", tok);
            goto fail;
        }
    }
    if (rc < 0)
        goto fail;
    if (r.ncodes == 0 && r.nenh == 0 && r.ntexts == 0) {
        perr(pc, "rule %s has no condition (code=, enhanced=, text=)", r.id);
        goto fail;
    }
    if (rs->n == RULES_MAX) {
        perr(pc, "more than %d rules", RULES_MAX);
        goto fail;
    }
    rs->rules = xrealloc(rs->rules, (rs->n + 1) * sizeof *rs->rules);
    rs->rules[rs->n++] = r;
    return 0;
fail:
    rule_clear(&r);
    return -1;
}

bounce_rules *bounce_rules_parse(const char *data, size_t len, const char *name, char *err,
                                 size_t errlen)
{
    parse_ctx pc = {name ? name : "bounce rules", 0, err, errlen};
    bounce_rules *rs = xcalloc(1, sizeof *rs);
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
        if (memchr(p, '\0', (size_t)(eol - p))) {
            perr(&pc, "NUL byte in line");
            goto fail;
        }
        char word[LINE_MAX_LEN + 1];
        const char *q = p;
        int rc = next_token(&pc, &q, eol, word, sizeof word - 1);
        if (rc < 0)
            goto fail;
        if (rc == 1) {
            if (strcmp(word, "version") == 0) {
                if (rs->version[0]) {
                    perr(&pc, "second version line");
                    goto fail;
                }
                rc = next_token(&pc, &q, eol, word, sizeof word - 1);
                if (rc < 0)
                    goto fail;
                size_t n = rc == 1 ? strlen(word) : 0;
                if (n == 0 || n > 9 || strspn(word, "0123456789") != n || word[0] == '0') {
                    perr(&pc, "version wants a positive integer");
                    goto fail;
                }
                memcpy(rs->version, word, n + 1);
                if ((rc = next_token(&pc, &q, eol, word, sizeof word - 1)) != 0) {
                    if (rc > 0)
                        perr(&pc, "unexpected \"%.64s\" after version", word);
                    goto fail;
                }
            } else if (strcmp(word, "rule") == 0) {
                if (!rs->version[0]) {
                    perr(&pc, "rule before the version line");
                    goto fail;
                }
                if (parse_rule(&pc, rs, q, eol) != 0)
                    goto fail;
            } else {
                perr(&pc, "unknown directive \"%.64s\" (version, rule)", word);
                goto fail;
            }
        }
        p = nl ? nl + 1 : end;
    }
    pc.line = 0;
    if (!rs->version[0]) {
        perr(&pc, "no version line");
        goto fail;
    }
    return rs;
fail:
    bounce_rules_free(rs);
    return NULL;
}

bounce_rules *bounce_rules_load(const char *path, char *err, size_t errlen)
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
    bounce_rules *r = bounce_rules_parse(data, len, owned ? path : SHIPPED_PATH, err, errlen);
    free(owned);
    return r;
}

void bounce_rules_free(bounce_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rule_clear(&r->rules[i]);
    free(r->rules);
    free(r);
}

const char *bounce_rules_version(const bounce_rules *r)
{
    return r ? r->version : "";
}

size_t bounce_rules_count(const bounce_rules *r)
{
    return r ? r->n : 0;
}

/* ---- classifying --------------------------------------------------------------------- */

/* An enhanced status code "c.s.d" (class 2/4/5, 1-3 digit parts) at s, followed by the end,
 * white space or punctuation other than '.'. 0 with out set, else -1. */
static int scan_enhanced(const char *s, int out[3])
{
    int v[3];
    if (*s != '2' && *s != '4' && *s != '5')
        return -1;
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*s != '.')
                return -1;
            s++;
        }
        s = parse_num(s, 999, &v[i]);
        if (!s)
            return -1;
    }
    if (*s == '.' || is_digit((unsigned char)*s) || (lower((unsigned char)*s) >= 'a' &&
                                                     lower((unsigned char)*s) <= 'z'))
        return -1;
    memcpy(out, v, sizeof v);
    return 0;
}

/* The enhanced code opening a reply text: "5.1.1 ...", "550 5.1.1 ...", "550-5.1.1 ...". */
static int enhanced_from_text(const char *t, int out[3])
{
    while (is_space((unsigned char)*t))
        t++;
    if (is_digit((unsigned char)t[0]) && is_digit((unsigned char)t[1]) &&
        is_digit((unsigned char)t[2]) && (t[3] == ' ' || t[3] == '-'))
        t += 4;
    return scan_enhanced(t, out);
}

static int code_matches(const rule *r, int code)
{
    if (r->ncodes == 0)
        return 1;
    char d[3];
    if (code == 0) {
        memcpy(d, "000", 3);
    } else if (code >= 100 && code <= 999) {
        d[0] = (char)('0' + code / 100);
        d[1] = (char)('0' + code / 10 % 10);
        d[2] = (char)('0' + code % 10);
    } else {
        return 0;
    }
    for (size_t i = 0; i < r->ncodes; i++) {
        const char *c = r->codes[i];
        if (c[0] == d[0] && (c[1] == 'x' || c[1] == d[1]) && (c[2] == 'x' || c[2] == d[2]))
            return 1;
    }
    return 0;
}

static int enh_matches(const rule *r, int have, const int e[3])
{
    if (r->nenh == 0)
        return 1;
    if (!have)
        return 0;
    for (size_t i = 0; i < r->nenh; i++) {
        const int *p = r->enh[i];
        if ((p[0] < 0 || p[0] == e[0]) && (p[1] < 0 || p[1] == e[1]) &&
            (p[2] < 0 || p[2] == e[2]))
            return 1;
    }
    return 0;
}

/* pat is "seg*seg*..." found anywhere in t; taking each segment's leftmost occurrence
 * after the previous one is exact for such patterns, so there is no backtracking. */
static int text_pattern_matches(const char *pat, const char *t)
{
    const char *p = pat;
    while (*p) {
        const char *star = strchr(p, '*');
        size_t seglen = star ? (size_t)(star - p) : strlen(p);
        if (seglen > 0) {
            const char *hit = memmem(t, strlen(t), p, seglen);
            if (!hit)
                return 0;
            t = hit + seglen;
        }
        if (!star)
            break;
        p = star + 1;
    }
    return 1;
}

static int text_matches(const rule *r, const char *t)
{
    if (r->ntexts == 0)
        return 1;
    for (size_t i = 0; i < r->ntexts; i++)
        if (text_pattern_matches(r->texts[i], t))
            return 1;
    return 0;
}

bounce_class bounce_classify(const bounce_rules *r, int code, const char *enhanced,
                             const char *text, const char **rule_id)
{
    if (rule_id)
        *rule_id = NULL;
    if (!r)
        return BOUNCE_UNDETERMINED;
    if (!text)
        text = "";
    int e[3];
    int have_enh;
    if (enhanced && *enhanced)
        have_enh = scan_enhanced(enhanced, e) == 0;
    else
        have_enh = enhanced_from_text(text, e) == 0;
    char norm[BOUNCE_TEXT_MAX + 1];
    size_t tlen = strnlen(text, BOUNCE_TEXT_MAX);
    normalise(text, tlen, norm, BOUNCE_TEXT_MAX);
    for (size_t i = 0; i < r->n; i++) {
        const rule *ru = &r->rules[i];
        if (code_matches(ru, code) && enh_matches(ru, have_enh, e) && text_matches(ru, norm)) {
            if (rule_id)
                *rule_id = ru->id;
            return ru->cls;
        }
    }
    return BOUNCE_UNDETERMINED;
}
