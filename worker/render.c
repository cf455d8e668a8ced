#include "worker/render.h"
#include "lib/addr.h"
#include "lib/config.h"
#include "lib/dkim.h"
#include "lib/html2text.h"
#include "lib/log.h"
#include "lib/secretbox.h"
#include "lib/token.h"
#include "lib/mime.h"
#include "lib/template.h"
#include "lib/timeutil.h"
#include "worker/track.h"
#include "worker/campaigns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBJECT_MAX MIME_HEADER_VALUE_MAX

#define PARTIAL_NAME_MAX     100   /* api/templates.c: template names */
#define PARTIAL_LOOKUPS_MAX  64    /* new partial names looked up by one message's render */

static const char *const part_keys[3] = {"subject", "html", "text"};

/* ---- stored templates: one load per distinct version, one compile per partial ------------ */

typedef struct {
    char *account_id;
    char *id;
    int   version;
    int   found;
    int   has[3];       /* subject, html, text present (not NULL) */
    tpl  *parts[3];
    char *error;        /* a part that does not compile */
} tcache_tpl;

typedef struct {
    char *account_id;
    char *name;
    tpl  *parts[3];     /* NULL: no such template or no such part (renders empty) */
    char *error[3];     /* the part does not compile */
} tcache_partial;

typedef struct {
    tcache_tpl     *tpls;
    size_t          ntpls, cap_tpls;
    tcache_partial *partials;
    size_t          npartials, cap_partials;
} tcache;

static void tcache_free(tcache *c)
{
    for (size_t i = 0; i < c->ntpls; i++) {
        tcache_tpl *t = &c->tpls[i];
        free(t->account_id);
        free(t->id);
        free(t->error);
        for (int p = 0; p < 3; p++)
            tpl_free(t->parts[p]);
    }
    free(c->tpls);
    for (size_t i = 0; i < c->npartials; i++) {
        tcache_partial *t = &c->partials[i];
        free(t->account_id);
        free(t->name);
        for (int p = 0; p < 3; p++) {
            tpl_free(t->parts[p]);
            free(t->error[p]);
        }
    }
    free(c->partials);
    memset(c, 0, sizeof *c);
}

/* Compiles the three columns of a (subject, html, text) row. */
static void compile_row(PGresult *r, tpl *parts[3], int has[3], char **error, char *errs[3])
{
    for (int p = 0; p < 3; p++) {
        parts[p] = NULL;
        if (has)
            has[p] = 0;
        if (PQntuples(r) < 1 || PQgetisnull(r, 0, p))
            continue;
        if (has)
            has[p] = 1;
        char cerr[300], msg[400];
        parts[p] = tpl_compile(PQgetvalue(r, 0, p), (size_t)PQgetlength(r, 0, p), NULL, cerr,
                               sizeof cerr);
        if (!parts[p]) {
            snprintf(msg, sizeof msg, "%s does not compile: %s", part_keys[p], cerr);
            if (errs)
                errs[p] = xstrdup(msg);
            else if (error && !*error)
                *error = xstrdup(msg);
        }
    }
}

typedef struct {
    const char *account_id;
    const char *id;
    int         version;
    tcache_tpl *out;
} tpl_load_arg;

static db_status load_tpl(db_conn *db, void *arg)
{
    tpl_load_arg *a = arg;
    char v[16];
    snprintf(v, sizeof v, "%d", a->version);
    const char *p[] = {a->account_id, a->id, v};
    PGresult *r;
    db_status s = db_exec(db, ST_QUEUE_TEMPLATE, p, &r);
    if (s != DB_OK)
        return s;
    a->out->found = PQntuples(r) == 1;
    if (a->out->found)
        compile_row(r, a->out->parts, a->out->has, &a->out->error, NULL);
    PQclear(r);
    return DB_OK;
}

typedef struct {
    const char *account_id;
    const char *name;
    tcache_partial *out;
} partial_load_arg;

static db_status load_partial(db_conn *db, void *arg)
{
    partial_load_arg *a = arg;
    const char *p[] = {a->account_id, a->name};
    PGresult *r;
    db_status s = db_exec(db, ST_TPL_BY_NAME, p, &r);
    if (s != DB_OK)
        return s;
    compile_row(r, a->out->parts, NULL, NULL, a->out->error);
    PQclear(r);
    return DB_OK;
}

/* What a render needs to resolve partials: the batch's cache and how to reach PostgreSQL. */
typedef struct {
    tcache            *cache;
    db_conn           *db;
    wbatch            *b;
    render_give_up_fn  give_up;
    void              *give_up_ctx;
    const char        *account_id;
    int                part;        /* 0 subject, 1 html, 2 text */
    int                lookups;     /* new names looked up for this message */
    int                db_down;     /* gave up while the database was unavailable */
} partial_ctx;

static int valid_partial_name(const char *s, size_t n)
{
    if (n < 1 || n > PARTIAL_NAME_MAX || memchr(s, '\0', n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static db_status with_retry(db_conn *db, db_status (*load)(db_conn *, void *), void *arg,
                            wbatch *b, render_give_up_fn give_up, void *ctx);

/* tpl_partial_fn: the account's live template of that name (its latest version), the same
 * part as the one being rendered; compiled once per batch. */
static int resolve_partial(void *vctx, const char *name, size_t len, const tpl **out, char *err,
                           size_t errlen)
{
    partial_ctx *pc = vctx;
    tcache *c = pc->cache;
    *out = NULL;
    if (!valid_partial_name(name, len))
        return 0;   /* cannot be a template name: missing */
    tcache_partial *hit = NULL;
    for (size_t i = 0; i < c->npartials && !hit; i++)
        if (strcmp(c->partials[i].account_id, pc->account_id) == 0 &&
            strlen(c->partials[i].name) == len && memcmp(c->partials[i].name, name, len) == 0)
            hit = &c->partials[i];
    if (!hit) {
        if (++pc->lookups > PARTIAL_LOOKUPS_MAX) {
            snprintf(err, errlen, "more than %d distinct partials", PARTIAL_LOOKUPS_MAX);
            return -1;
        }
        char nm[PARTIAL_NAME_MAX + 1];
        memcpy(nm, name, len);
        nm[len] = '\0';
        tcache_partial fresh;
        memset(&fresh, 0, sizeof fresh);
        partial_load_arg a = {pc->account_id, nm, &fresh};
        db_status s = with_retry(pc->db, load_partial, &a, pc->b, pc->give_up, pc->give_up_ctx);
        if (s == DB_DOWN) {
            pc->db_down = 1;
            snprintf(err, errlen, "partial \"%s\": database unavailable", nm);
            return -1;
        }
        if (s != DB_OK) {
            snprintf(err, errlen, "partial \"%s\": could not be loaded: %s", nm,
                     db_last_error(pc->db));
            return -1;
        }
        if (c->npartials == c->cap_partials) {
            c->cap_partials = c->cap_partials ? c->cap_partials * 2 : 8;
            c->partials = xrealloc(c->partials, c->cap_partials * sizeof *c->partials);
        }
        fresh.account_id = xstrdup(pc->account_id);
        fresh.name = xstrdup(nm);
        hit = &c->partials[c->npartials++];
        *hit = fresh;
    }
    if (hit->error[pc->part]) {
        snprintf(err, errlen, "partial \"%s\": %s", hit->name, hit->error[pc->part]);
        return -1;
    }
    *out = hit->parts[pc->part];
    return 0;
}

/* The cached, compiled version a message refers to; NULL with *s set when the database
 * failed (DB_DOWN: gave up waiting). */
static tcache_tpl *template_of(tcache *c, db_conn *db, wbatch *b, render_give_up_fn give_up,
                               void *ctx, const char *account_id, const char *id, int version,
                               db_status *s)
{
    *s = DB_OK;
    for (size_t i = 0; i < c->ntpls; i++)
        if (c->tpls[i].version == version && strcmp(c->tpls[i].id, id) == 0 &&
            strcmp(c->tpls[i].account_id, account_id) == 0)
            return &c->tpls[i];
    tcache_tpl fresh;
    memset(&fresh, 0, sizeof fresh);
    tpl_load_arg a = {account_id, id, version, &fresh};
    *s = with_retry(db, load_tpl, &a, b, give_up, ctx);
    if (*s != DB_OK)
        return NULL;
    if (c->ntpls == c->cap_tpls) {
        c->cap_tpls = c->cap_tpls ? c->cap_tpls * 2 : 8;
        c->tpls = xrealloc(c->tpls, c->cap_tpls * sizeof *c->tpls);
    }
    fresh.account_id = xstrdup(account_id);
    fresh.id = xstrdup(id);
    fresh.version = version;
    c->tpls[c->ntpls] = fresh;
    return &c->tpls[c->ntpls++];
}

/* Renders one inline part (part: 0 subject, 1 html, 2 text); a missing or null source leaves
 * *present 0. Partials resolve through pc like those of stored templates (NULL: none, each
 * renders empty or fails when strict). */
static int render_part(const json_t *content, int part, const json_t *data, int strict,
                       partial_ctx *pc, buf *out, int *present, char *err, size_t errlen)
{
    const char *key = part_keys[part];
    const json_t *src = json_object_get(content, key);
    *present = 0;
    if (!src || json_is_null(src))
        return 0;
    if (!json_is_string(src)) {
        snprintf(err, errlen, "%s: stored content is not a string", key);
        return -1;
    }
    *present = 1;
    char terr[384];
    tpl *t = tpl_compile(json_string_value(src), json_string_length(src), NULL, terr,
                         sizeof terr);
    if (!t) {
        snprintf(err, errlen, "%s: %s", key, terr);
        return -1;
    }
    if (pc)
        pc->part = part;
    int rc = tpl_render_compiled(t, data, part == 1, strict, pc ? resolve_partial : NULL, pc,
                                 out, terr, sizeof terr);
    tpl_free(t);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", key, terr);
        return -1;
    }
    return 0;
}

/* Renders one part of a stored template version, partials through pc. */
static int render_stored_part(const tcache_tpl *t, int part, const json_t *data, int strict,
                              partial_ctx *pc, buf *out, int *present, char *err,
                              size_t errlen)
{
    *present = t->has[part];
    if (!*present)
        return 0;
    pc->part = part;
    char terr[384];
    if (tpl_render_compiled(t->parts[part], data, part == 1, strict, resolve_partial, pc, out,
                            terr, sizeof terr) != 0) {
        snprintf(err, errlen, "%s: %s", part_keys[part], terr);
        return -1;
    }
    return 0;
}

static void addr_of(const json_t *o, mime_addr *a)
{
    a->email = json_string_value(json_object_get(o, "email"));
    a->name = json_string_value(json_object_get(o, "name"));
}

static mime_addr *addr_list(const json_t *arr, size_t *n)
{
    *n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (*n == 0)
        return NULL;
    mime_addr *a = xcalloc(*n, sizeof *a);
    for (size_t i = 0; i < *n; i++)
        addr_of(json_array_get(arr, i), &a[i]);
    return a;
}

static int plain_host(const char *d)
{
    if (!*d)
        return 0;
    for (const char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* Open and click tracking (see track_render below): when set, a message with an html part
 * is built once per pending recipient into that job's head, and out stays empty. */
typedef struct track_ctx track_ctx;
static int track_render(track_ctx *tc, mime_message *mm, char *err, size_t errlen);

/* Renders m, inline content or the stored version t (partials through pc). */
static int render_with(const queue_message *m, const char *message_id, const tcache_tpl *t,
                       partial_ctx *pc, track_ctx *tc, buf *out, char *err, size_t errlen)
{
    int rc = -1;
    buf subj, text, html;
    buf_init(&subj, SUBJECT_MAX);
    buf_init(&text, RENDER_MAX);
    buf_init(&html, RENDER_MAX);
    mime_addr *to = NULL, *cc = NULL;
    const char **hn = NULL, **hv = NULL;
    mime_attachment *att = NULL;

    if (!json_is_object(m->content)) {
        snprintf(err, errlen, "stored content is not an object");
        goto out;
    }
    const json_t *data = json_is_object(m->data) ? m->data : NULL;
    int has_subject, has_text, has_html;
    if (json_object_get(m->content, "template")) {
        if (!t || !pc) {
            snprintf(err, errlen, "the stored template was not loaded");
            goto out;
        }
        if (t->error) {
            snprintf(err, errlen, "template %s version %d: %s", t->id, t->version, t->error);
            goto out;
        }
        if (render_stored_part(t, 0, data, m->strict, pc, &subj, &has_subject, err, errlen) != 0 ||
            render_stored_part(t, 2, data, m->strict, pc, &text, &has_text, err, errlen) != 0 ||
            render_stored_part(t, 1, data, m->strict, pc, &html, &has_html, err, errlen) != 0)
            goto out;
    } else if (render_part(m->content, 0, data, m->strict, pc, &subj, &has_subject, err,
                           errlen) != 0 ||
               render_part(m->content, 2, data, m->strict, pc, &text, &has_text, err,
                           errlen) != 0 ||
               render_part(m->content, 1, data, m->strict, pc, &html, &has_html, err,
                           errlen) != 0) {
        goto out;
    }
    /* html only: a text part from the rendered html, so readers without html get mail too;
     * if it does not fit, the message goes out html only as before */
    if (has_html && !has_text) {
        if (html2text(html.data ? html.data : "", html.len, &text) == 0)
            has_text = 1;
        else
            buf_reset(&text);
    }
    if (has_subject && subj.len && memchr(subj.data, '\0', subj.len)) {
        snprintf(err, errlen, "subject: contains a NUL character");
        goto out;
    }

    mime_message mm;
    memset(&mm, 0, sizeof mm);
    mm.from.email = m->from_email;
    mm.from.name = m->from_name;
    mime_addr reply_to;
    if (json_is_object(m->reply_to)) {
        addr_of(m->reply_to, &reply_to);
        mm.reply_to = &reply_to;
    }
    to = addr_list(m->header_to, &mm.nto);
    mm.to = to;
    cc = addr_list(m->header_cc, &mm.ncc);
    mm.cc = cc;
    mm.subject = has_subject ? (subj.data ? subj.data : "") : NULL;
    if (has_text) {
        mm.text = text.data ? text.data : "";
        mm.text_len = text.len;
    }
    if (has_html) {
        mm.html = html.data ? html.data : "";
        mm.html_len = html.len;
    }
    size_t nh = json_is_array(m->headers) ? json_array_size(m->headers) : 0;
    if (nh) {
        hn = xcalloc(nh, sizeof *hn);
        hv = xcalloc(nh, sizeof *hv);
        for (size_t i = 0; i < nh; i++) {
            const json_t *pair = json_array_get(m->headers, i);
            hn[i] = json_string_value(json_array_get(pair, 0));
            hv[i] = json_string_value(json_array_get(pair, 1));
        }
        mm.hdr_names = hn;
        mm.hdr_values = hv;
        mm.nhdrs = nh;
    }
    if (m->natt) {
        att = xcalloc(m->natt, sizeof *att);
        for (size_t i = 0; i < m->natt; i++) {
            const queue_attachment *a = &m->att[i];
            if (!a->data) {
                snprintf(err, errlen, "attachments[%zu]: content no longer stored (retention)", i);
                goto out;
            }
            att[i] = (mime_attachment){a->filename, a->content_type, a->disposition,
                                       a->content_id, a->data, a->len};
        }
        mm.att = att;
        mm.natt = m->natt;
    }
    char mid[MIME_MESSAGE_ID_MAX];
    const char *at = m->from_email ? strrchr(m->from_email, '@') : NULL;
    const char *domain = at ? at + 1 : "";
    if (!plain_host(domain) || strlen(message_id) + strlen(domain) + 4 > sizeof mid)
        domain = "posthorn.invalid";
    snprintf(mid, sizeof mid, "<%s@%s>", message_id, domain);
    mm.message_id = mid;
    mm.date_unix = m->created_unix;

    char merr[256];
    if (tc && mm.html) {
        rc = track_render(tc, &mm, err, errlen);
        goto out;
    }
    if (mime_build(&mm, out, merr, sizeof merr) != 0) {
        snprintf(err, errlen, "mime: %s", merr);
        goto out;
    }
    rc = 0;
out:
    buf_free(&subj);
    buf_free(&text);
    buf_free(&html);
    free(to);
    free(cc);
    free(hn);
    free(hv);
    free(att);
    return rc;
}

int render_message(const queue_message *m, const char *message_id, buf *out, char *err,
                   size_t errlen)
{
    return render_with(m, message_id, NULL, NULL, NULL, out, err, errlen);
}

static void fail_jobs(wbatch *b, const wmsg *w, const char *reason)
{
    log_fields(LOG_WARN, json_pack("{s:s, s:s}", "account_id", w->account_id, "message_id",
                                   w->message_id),
               "message not rendered: %s", reason);
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        if (j->msg == w && j->state == JOB_PENDING)
            wjob_set(j, QUEUE_FAILED, 0, NULL, reason, NULL, NULL,
                     json_pack("{s:s}", "reason", reason));
    }
}

/* Groups the jobs by message: one wmsg per distinct (account_id, message_id). */
static void group(wbatch *b)
{
    if (b->msgs)
        return;
    b->msgs = xcalloc(b->njobs ? b->njobs : 1, sizeof *b->msgs);
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        wmsg *w = NULL;
        for (size_t k = 0; k < b->nmsgs && !w; k++)
            if (strcmp(b->msgs[k].message_id, j->item.message_id) == 0 &&
                strcmp(b->msgs[k].account_id, j->item.account_id) == 0)
                w = &b->msgs[k];
        if (!w) {
            w = &b->msgs[b->nmsgs++];
            w->account_id = xstrdup(j->item.account_id);
            w->message_id = xstrdup(j->item.message_id);
        }
        j->msg = w;
    }
}

/* Runs load() until it succeeds, gives up for good (DB_ERROR) or give_up() says stop. */
typedef db_status (*load_fn)(db_conn *db, void *arg);

static db_status with_retry(db_conn *db, load_fn load, void *arg, wbatch *b,
                            render_give_up_fn give_up, void *ctx)
{
    for (;;) {
        db_status s = load(db, arg);
        if (s != DB_DOWN || give_up(ctx, b))
            return s;
        time_sleep_ms(500, NULL);
    }
}

typedef struct {
    queue_message_req *reqs;
    size_t n;
} msgs_arg;

static db_status load_msgs(db_conn *db, void *arg)
{
    msgs_arg *a = arg;
    return queue_messages_load(db, a->reqs, a->n);
}

typedef struct {
    const wmsg *w;
    queue_message *m;
} att_arg;

static db_status load_att(db_conn *db, void *arg)
{
    att_arg *a = arg;
    return queue_attachments_load(db, a->w->account_id, a->w->message_id, a->m);
}

/* ---- signing domains: one load, open and parse of the keys per (account, domain) ------- */

typedef struct {
    char     *account_id;
    char     *name;        /* A-label, lower case */
    int       found;
    char     *selector;
    char     *rp_domain;   /* VERP return-path domain */
    dkim_key *rsa, *ed;
    char     *error;       /* a key that does not open or parse (no key material in it) */
} dcache_dom;

typedef struct {
    dcache_dom *d;
    size_t      n, cap;
} dcache;

static void dcache_free(dcache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        dcache_dom *d = &c->d[i];
        free(d->account_id);
        free(d->name);
        free(d->selector);
        free(d->rp_domain);
        free(d->error);
        dkim_key_free(d->rsa);
        dkim_key_free(d->ed);
    }
    free(c->d);
    memset(c, 0, sizeof *c);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Opens one sealed key (hex of the box) into *k; NULL, or the reason it does not open. */
static const char *open_key(const char *hex, size_t hn, const char *account_id,
                            const char *name, dkim_key **k)
{
    *k = NULL;
    if (hn % 2)
        return "is not stored correctly";
    size_t bn = hn / 2;
    unsigned char *box = xcalloc(bn ? bn : 1, 1);
    for (size_t i = 0; i < bn; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(box);
            return "is not stored correctly";
        }
        box[i] = (unsigned char)(hi << 4 | lo);
    }
    buf ad, plain;
    buf_init(&ad, SECRETBOX_AD_MAX);
    buf_init(&plain, SECRETBOX_PLAIN_MAX);
    const char *why = NULL;
    if (buf_printf(&ad, "%s\n%s", account_id, name) != 0)
        why = "cannot be opened (domain name too long)";
    else if (secretbox_open(SECRETBOX_DKIM_KEY, box, bn, ad.data, ad.len, &plain) != 0)
        why = "cannot be opened (sealed under another POSTHORN_SECRET, or altered)";
    else {
        char kerr[200];
        *k = dkim_key_load_pem(plain.data ? plain.data : "", plain.len, kerr, sizeof kerr);
        if (!*k)
            why = "does not parse as a private key";
    }
    if (plain.data)
        explicit_bzero(plain.data, plain.len);
    buf_free(&plain);
    buf_free(&ad);
    free(box);
    return why;
}

typedef struct {
    const char *account_id;
    const char *name;
    dcache_dom *out;
} dom_load_arg;

static db_status load_dom(db_conn *db, void *arg)
{
    dom_load_arg *a = arg;
    const char *p[] = {a->account_id, a->name};
    PGresult *r;
    db_status s = db_exec(db, ST_QUEUE_DOMAIN, p, &r);
    if (s != DB_OK)
        return s;
    dcache_dom *d = a->out;
    d->found = PQntuples(r) == 1;
    if (d->found) {
        d->selector = xstrdup(PQgetvalue(r, 0, 0));
        d->rp_domain = xstrdup(PQgetvalue(r, 0, 1));
        static const char *const alg[2] = {"rsa", "ed25519"};
        for (int i = 0; i < 2 && !d->error; i++) {
            if (PQgetisnull(r, 0, 2 + i))
                continue;
            const char *why = open_key(PQgetvalue(r, 0, 2 + i), (size_t)PQgetlength(r, 0, 2 + i),
                                       a->account_id, a->name, i ? &d->ed : &d->rsa);
            if (why) {
                char msg[600];
                snprintf(msg, sizeof msg, "the DKIM %s key of domain %s %s", alg[i], a->name,
                         why);
                d->error = xstrdup(msg);
            }
        }
        if (!d->error && d->rsa && dkim_key_alg(d->rsa) != DKIM_RSA) {
            char msg[600];
            snprintf(msg, sizeof msg, "the DKIM rsa key of domain %s is not an RSA key", a->name);
            d->error = xstrdup(msg);
        }
        if (!d->error && d->ed && dkim_key_alg(d->ed) != DKIM_ED25519) {
            char msg[600];
            snprintf(msg, sizeof msg, "the DKIM ed25519 key of domain %s is not an Ed25519 key",
                     a->name);
            d->error = xstrdup(msg);
        }
    }
    PQclear(r);
    return DB_OK;
}

static dcache_dom *domain_of(dcache *c, db_conn *db, wbatch *b, render_give_up_fn give_up,
                             void *ctx, const char *account_id, const char *name, db_status *s)
{
    *s = DB_OK;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->d[i].name, name) == 0 && strcmp(c->d[i].account_id, account_id) == 0)
            return &c->d[i];
    dcache_dom fresh;
    memset(&fresh, 0, sizeof fresh);
    dom_load_arg a = {account_id, name, &fresh};
    *s = with_retry(db, load_dom, &a, b, give_up, ctx);
    if (*s != DB_OK) {
        free(fresh.selector);
        free(fresh.rp_domain);
        free(fresh.error);
        dkim_key_free(fresh.rsa);
        dkim_key_free(fresh.ed);
        return NULL;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->d = xrealloc(c->d, c->cap * sizeof *c->d);
    }
    fresh.account_id = xstrdup(account_id);
    fresh.name = xstrdup(name);
    c->d[c->n] = fresh;
    return &c->d[c->n++];
}

/* The From domain as the domains table names it (A-label, lower case), or 0. */
static int from_domain(const char *from, char out[ADDR_MAX + 1])
{
    char norm[ADDR_MAX + 1];
    if (!from || addr_normalize(from, strlen(from), norm) != NULL)
        return 0;
    const char *at = strrchr(norm, '@');
    if (!at || !at[1])
        return 0;
    snprintf(out, ADDR_MAX + 1, "%s", at + 1);
    addr_lower_ascii(out);
    return 1;
}

/* Prepends the domain's signatures (rsa, then ed25519 when present) to msg into out. */
static int sign_into(const dcache_dom *d, const char *msg, size_t n, const uint8_t *bh,
                     long long now, buf *out, char *err, size_t errlen)
{
    const dkim_key *keys[2] = {d->rsa, d->ed};
    char esel[128];
    snprintf(esel, sizeof esel, "%se", d->selector);
    const char *sels[2] = {d->selector, esel};
    for (int i = 0; i < 2; i++) {
        if (!keys[i])
            continue;
        dkim_signer s = {d->name, sels[i], keys[i]};
        char derr[200];
        if (dkim_sign(&s, msg, n, bh, now, out, derr, sizeof derr) != 0) {
            snprintf(err, errlen, "DKIM signature (%s): %s", i ? "ed25519" : "rsa", derr);
            return -1;
        }
    }
    if (buf_append(out, msg, n) != 0) {
        snprintf(err, errlen, "the signed message is too large");
        return -1;
    }
    return 0;
}

/* The header of msg with this delivery's List-Unsubscribe fields added at its end, and the
 * empty line; *body_off is where msg's body starts. */
static int add_unsubscribe(const char *account_id, const char *delivery_id, const char *msg,
                           size_t n, buf *out, size_t *body_off, char *err, size_t errlen)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < n; i++)
        if (memcmp(msg + i, "\r\n\r\n", 4) == 0) {
            end = msg + i + 2;
            break;
        }
    if (!end) {
        snprintf(err, errlen, "mime: no end of header");
        return -1;
    }
    char payload[2 * IDS_MAX + 2], tok[TOKEN_MAX_CHARS + 1];
    int pn = snprintf(payload, sizeof payload, "%s\n%s", account_id, delivery_id);
    if (pn < 0 || (size_t)pn >= sizeof payload ||
        token_make(TOKEN_UNSUBSCRIBE, payload, (size_t)pn, tok, sizeof tok) < 0) {
        snprintf(err, errlen, "cannot make the unsubscribe token");
        return -1;
    }
    const char *base = cfg.public_url ? cfg.public_url : "";
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    if (buf_append(out, msg, (size_t)(end - msg)) != 0 ||
        buf_printf(out, "List-Unsubscribe:\r\n <%.*s/u/%s>\r\n", (int)bl, base, tok) != 0 ||
        buf_appendz(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n") != 0) {
        snprintf(err, errlen, "the message header is too large");
        return -1;
    }
    *body_off = (size_t)(end - msg) + 2;
    return 0;
}

/* ---- open and click tracking: the html, hence the message, per recipient ------------- */

/* Tracked mail holds one whole message per recipient: past this many bytes for one message
 * in one batch, its other recipients go back to the queue for a later batch (at least one
 * is always rendered), so memory stays bounded like that of shared-body mail. */
#define TRACK_BATCH_BYTES (64u * 1024 * 1024)

struct track_ctx {
    db_conn           *db;
    wbatch            *b;
    wmsg              *w;
    render_give_up_fn  give_up;
    void              *give_up_ctx;
    int                clicks, opens;
    int                done;       /* the pending jobs' heads hold their whole messages */
    int                db_down;    /* gave up while the database was unavailable */
};

typedef struct {
    const char *account_id;
    const char *delivery_id;
    const char *base;             /* POSTHORN_PUBLIC_URL without trailing '/' */
    int         base_len;
} track_tok;

static int track_url(const track_tok *t, token_purpose p, const char *link_id, buf *out)
{
    char payload[2 * IDS_MAX + TRACK_LINK_ID_LEN + 3], tok[TOKEN_MAX_CHARS + 1];
    int pn = link_id ? snprintf(payload, sizeof payload, "%s\n%s\n%s", t->account_id,
                                t->delivery_id, link_id)
                     : snprintf(payload, sizeof payload, "%s\n%s", t->account_id, t->delivery_id);
    if (pn < 0 || (size_t)pn >= sizeof payload ||
        token_make(p, payload, (size_t)pn, tok, sizeof tok) < 0)
        return -1;
    return buf_printf(out, "%.*s/t/%s/%s", t->base_len, t->base, link_id ? "c" : "o", tok);
}

static int track_link_url(void *ctx, const track_link *l, buf *out)
{
    return track_url(ctx, TOKEN_CLICK, l->id, out);
}

static int track_pixel_url(void *ctx, buf *out)
{
    return track_url(ctx, TOKEN_OPEN, NULL, out);
}

typedef struct {
    const char *account_id;
    const char *message_id;
    const char *links;            /* [{id, url}] */
} links_arg;

static db_status store_links(db_conn *db, void *arg)
{
    links_arg *a = arg;
    const char *p[] = {a->account_id, a->message_id, a->links};
    return db_exec(db, ST_TRACK_LINKS_PUT, p, NULL);
}

/* Stores the message's tracked links (before any recipient can click them), then builds
 * each pending recipient's message with its own tokens into its job's head (unsigned; the
 * signatures come in finish_message). The text part keeps the original URLs. */
static int track_render(track_ctx *tc, mime_message *mm, char *err, size_t errlen)
{
    const char *base = cfg.public_url ? cfg.public_url : "";
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    char skip[1100];
    snprintf(skip, sizeof skip, "%.*s/u/", (int)(bl < 1024 ? bl : 1024), base);
    track_plan plan;
    track_plan_make(mm->html, mm->html_len, tc->clicks, tc->opens, skip, TRACK_MAX_LINKS, &plan);
    if (plan.nlinks) {
        json_t *arr = json_array();
        for (size_t i = 0; i < plan.nlinks; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "id", plan.links[i].id, "url",
                                                 plan.links[i].url));
        char *js = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        if (!js)
            die("cannot serialise tracked links");
        links_arg la = {tc->w->account_id, tc->w->message_id, js};
        db_status s = with_retry(tc->db, store_links, &la, tc->b, tc->give_up, tc->give_up_ctx);
        free(js);
        if (s != DB_OK) {
            if (s == DB_DOWN)
                tc->db_down = 1;
            snprintf(err, errlen, "could not store the tracked links: %s",
                     s == DB_DOWN ? "database unavailable" : db_last_error(tc->db));
            track_plan_free(&plan);
            return -1;
        }
    }
    const char *html = mm->html;
    size_t html_len = mm->html_len;
    size_t held = 0;
    for (size_t i = 0; i < tc->b->njobs; i++) {
        wjob *j = &tc->b->jobs[i];
        if (j->msg != tc->w || j->state != JOB_PENDING)
            continue;
        if (held >= TRACK_BATCH_BYTES) {
            j->state = JOB_RELEASE;     /* never tried: claimed again by a later batch */
            continue;
        }
        track_tok tt = {tc->w->account_id, j->item.id, base, (int)bl};
        track_urls u = {track_link_url, track_pixel_url, &tt};
        buf h, msg;
        buf_init(&h, RENDER_MAX);
        buf_init(&msg, RENDER_MAX);
        char merr[256], why[300];
        const char *fail = NULL;
        if (track_apply(&plan, html, html_len, &u, &h) != 0) {
            fail = "the html part with tracking is too large";
        } else {
            mm->html = h.data ? h.data : "";
            mm->html_len = h.len;
            if (mime_build(mm, &msg, merr, sizeof merr) != 0) {
                snprintf(why, sizeof why, "mime: %s", merr);
                fail = why;
            }
        }
        mm->html = html;
        mm->html_len = html_len;
        buf_free(&h);
        if (fail) {
            buf_free(&msg);
            wjob_set(j, QUEUE_FAILED, 0, NULL, fail, NULL, NULL, json_pack("{s:s}", "reason", fail));
            continue;
        }
        free(j->head);
        j->head = buf_steal(&msg, &j->head_len);
        j->body_off = 0;
        held += j->head_len;
    }
    track_plan_free(&plan);
    tc->done = 1;
    return 0;
}

/* One recipient's tracked message (j->head, whole and unsigned) made ready in place: for
 * broadcast mail its List-Unsubscribe, then its own body hash and signatures. */
static int finish_tracked_job(wjob *j, const wmsg *w, const dcache_dom *d, int broadcast,
                              long long now, char *err, size_t errlen)
{
    int sign = d && (d->rsa || d->ed);
    if (!sign && !broadcast)
        return 0;
    if (errlen)
        err[0] = '\0';
    const char *msg = j->head;
    size_t n = j->head_len;
    uint8_t bh[DKIM_HASH_LEN];
    if (sign)
        dkim_body_hash(msg, n, bh);
    buf full;
    buf_init(&full, RENDER_MAX + 32768);
    int rc;
    if (broadcast) {
        buf u;
        buf_init(&u, RENDER_MAX);
        size_t body_off = 0;
        rc = add_unsubscribe(w->account_id, j->item.id, msg, n, &u, &body_off, err, errlen);
        if (rc == 0)
            rc = sign ? sign_into(d, u.data, u.len, bh, now, &full, err, errlen)
                      : buf_append(&full, u.data, u.len);
        if (rc == 0 && buf_append(&full, msg + body_off, n - body_off) != 0)
            rc = -1;
        if (rc != 0 && !*err)
            snprintf(err, errlen, "the message is too large");
        buf_free(&u);
    } else {
        rc = sign_into(d, msg, n, bh, now, &full, err, errlen);
    }
    if (rc != 0) {
        buf_free(&full);
        return -1;
    }
    free(j->head);
    j->head = buf_steal(&full, &j->head_len);
    j->body_off = 0;
    return 0;
}

/* Gives the rendered message (out, taken over) to w and its pending jobs: DKIM signatures
 * when the From domain is one of the account's domains (body hash computed once), the VERP
 * envelope sender, and for broadcast mail each recipient's List-Unsubscribe (then the
 * message and its signatures are per recipient). */
static void finish_message(wbatch *b, wmsg *w, const queue_message *m, const dcache_dom *d,
                           buf *out, int tracked)
{
    char err[512];
    long long now = (long long)time(NULL);
    uint8_t bh[DKIM_HASH_LEN];
    int broadcast = m->stream && strcmp(m->stream, "broadcast") == 0;
    int sign = d && (d->rsa || d->ed);
    if (sign && !tracked)
        dkim_body_hash(out->data, out->len, bh);
    if (tracked) {      /* every recipient's whole message is in its job's head */
        buf_free(out);
        w->mime = xstrdup("");
        w->mime_len = 0;
    } else if (sign && !broadcast) {
        buf s;
        buf_init(&s, RENDER_MAX + 16384);
        if (sign_into(d, out->data, out->len, bh, now, &s, err, sizeof err) != 0) {
            buf_free(&s);
            buf_free(out);
            fail_jobs(b, w, err);
            return;
        }
        buf_free(out);
        w->mime = buf_steal(&s, &w->mime_len);
    } else {
        w->mime = buf_steal(out, &w->mime_len);
    }
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        if (j->msg != w || j->state != JOB_PENDING)
            continue;
        if (d) {
            char local[TOKEN_VERP_LOCAL_MAX + 1];
            if (token_verp_local(w->account_id, j->item.id, local, sizeof local) < 0) {
                wjob_set(j, QUEUE_FAILED, 0, NULL, "cannot make the VERP return path", NULL,
                         NULL, json_pack("{s:s}", "reason", "cannot make the VERP return path"));
                continue;
            }
            size_t ln = strlen(local) + 1 + strlen(d->rp_domain) + 1;
            j->env_from = xcalloc(ln, 1);
            snprintf(j->env_from, ln, "%s@%s", local, d->rp_domain);
        }
        if (tracked) {
            if (j->head && finish_tracked_job(j, w, d, broadcast, now, err, sizeof err) != 0)
                wjob_set(j, QUEUE_FAILED, 0, NULL, err, NULL, NULL,
                         json_pack("{s:s}", "reason", err));
            continue;
        }
        if (!broadcast)
            continue;
        /* Only the header is per recipient; signing it needs no body (bh is given). */
        buf u;
        buf_init(&u, RENDER_MAX);
        size_t body_off = 0;
        int rc = add_unsubscribe(w->account_id, j->item.id, w->mime, w->mime_len, &u,
                                 &body_off, err, sizeof err);
        if (rc == 0 && sign) {
            buf s;
            buf_init(&s, RENDER_MAX + 16384);
            rc = sign_into(d, u.data, u.len, bh, now, &s, err, sizeof err);
            buf_free(&u);
            u = s;
        }
        if (rc != 0) {
            buf_free(&u);
            wjob_set(j, QUEUE_FAILED, 0, NULL, err, NULL, NULL, json_pack("{s:s}", "reason", err));
            continue;
        }
        j->head = buf_steal(&u, &j->head_len);
        j->body_off = body_off;
    }
}

/* Campaign mail: the jobs of w that have their own data (deliveries.data, the contact's,
 * laid over the message's data, the campaign's) are rendered one at a time, each whole
 * message into its job's head as tracking does (tc->done), with the recipient as To when
 * the message names none; finish_message then adds List-Unsubscribe and signs each. The
 * content stays stored once; only the rendering is per recipient. */
static int render_own(wbatch *b, wmsg *w, const queue_message *m, const tcache_tpl *t,
                      partial_ctx *pc, track_ctx *tc, json_t **jdata)
{
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        if (j->msg != w || j->state != JOB_PENDING)
            continue;
        queue_message mm = *m;
        json_t *data = json_is_object(m->data) ? json_copy(m->data) : json_object();
        if (jdata[i])
            json_object_update(data, jdata[i]);
        json_t *to = NULL;
        if (json_array_size(m->header_to) == 0 && json_array_size(m->header_cc) == 0) {
            to = json_pack("[{s:s, s:o}]", "email", j->item.recipient, "name",
                           j->item.recipient_name ? json_string(j->item.recipient_name)
                                                  : json_null());
            mm.header_to = to;
        }
        mm.data = data;
        wbatch one = *b;
        one.jobs = j;
        one.njobs = 1;
        track_ctx jtc = *tc;
        jtc.b = &one;
        buf own;
        buf_init(&own, RENDER_MAX);
        char err[512];
        int rc = render_with(&mm, w->message_id, t, pc, tc->clicks || tc->opens ? &jtc : NULL,
                             &own, err, sizeof err);
        json_decref(data);
        json_decref(to);
        if (pc->db_down || jtc.db_down) {
            buf_free(&own);
            tc->db_down = 1;
            return -1;
        }
        if (rc != 0) {
            buf_free(&own);
            wjob_set(j, QUEUE_FAILED, 0, NULL, err, NULL, NULL, json_pack("{s:s}", "reason", err));
            continue;
        }
        if (!j->head) {
            j->head = buf_steal(&own, &j->head_len);
            j->body_off = 0;
        } else {
            buf_free(&own);
        }
    }
    tc->done = 1;
    return 0;
}

static int own_data(const wbatch *b, const wmsg *w, json_t **jdata)
{
    for (size_t i = 0; jdata && i < b->njobs; i++)
        if (jdata[i] && b->jobs[i].msg == w)
            return 1;
    return 0;
}

typedef struct {
    const wbatch *b;
    json_t     ***out;
} jdata_arg;

static db_status load_jdata(db_conn *db, void *arg)
{
    jdata_arg *a = arg;
    return campaigns_job_data(db, a->b, a->out);
}

static int render_batch_jobs(db_conn *db, wbatch *b, render_give_up_fn give_up, void *ctx,
                             json_t **jdata);

int render_batch(db_conn *db, wbatch *b, render_give_up_fn give_up, void *ctx)
{
    json_t **jdata = NULL;
    jdata_arg ja = {b, &jdata};
    db_status js = with_retry(db, load_jdata, &ja, b, give_up, ctx);
    if (js == DB_DOWN)
        return -1;
    if (js == DB_ERROR)   /* never render campaign mail without its recipient's data */
        for (size_t i = 0; i < b->njobs; i++)
            if (b->jobs[i].state == JOB_PENDING && strcmp(b->jobs[i].item.stream, "broadcast") == 0)
                wjob_set(&b->jobs[i], QUEUE_FAILED, 0, NULL, "could not load the recipient's data",
                         NULL, NULL, json_pack("{s:s}", "reason", "could not load the recipient's data"));
    int rc = render_batch_jobs(db, b, give_up, ctx, jdata);
    campaigns_job_data_free(jdata, b->njobs);
    return rc;
}

static int render_batch_jobs(db_conn *db, wbatch *b, render_give_up_fn give_up, void *ctx,
                             json_t **jdata)
{
    group(b);
    queue_message_req *reqs = xcalloc(b->nmsgs, sizeof *reqs);
    for (size_t k = 0; k < b->nmsgs; k++) {
        reqs[k].account_id = b->msgs[k].account_id;
        reqs[k].message_id = b->msgs[k].message_id;
    }
    msgs_arg ma = {reqs, b->nmsgs};
    db_status s = with_retry(db, load_msgs, &ma, b, give_up, ctx);
    if (s == DB_DOWN) {
        free(reqs);
        return -1;
    }
    char reason[600];
    tcache cache;
    memset(&cache, 0, sizeof cache);
    dcache dcache_;
    memset(&dcache_, 0, sizeof dcache_);
    for (size_t k = 0; k < b->nmsgs; k++) {
        wmsg *w = &b->msgs[k];
        queue_message *m = reqs[k].msg;
        if (s == DB_ERROR) {
            snprintf(reason, sizeof reason, "could not load the message: %s", db_last_error(db));
            fail_jobs(b, w, reason);
            continue;
        }
        if (!m) {
            fail_jobs(b, w, reqs[k].bad ? "the stored message does not parse"
                                        : "message not found");
            continue;
        }
        att_arg aa = {w, m};
        db_status as = with_retry(db, load_att, &aa, b, give_up, ctx);
        if (as == DB_DOWN) {   /* gave up: this and the following messages stay pending */
            for (size_t rest = k; rest < b->nmsgs; rest++)
                queue_message_free(reqs[rest].msg);
            free(reqs);
            tcache_free(&cache);
            dcache_free(&dcache_);
            return -1;
        }
        if (as == DB_ERROR) {
            snprintf(reason, sizeof reason, "could not load the attachments: %s",
                     db_last_error(db));
            fail_jobs(b, w, reason);
            queue_message_free(m);
            continue;
        }
        /* A stored template reference: that exact version, loaded once per batch. */
        const tcache_tpl *t = NULL;
        const json_t *ref = json_is_object(m->content) ? json_object_get(m->content, "template")
                                                        : NULL;
        if (ref) {
            const json_t *jid = json_object_get(ref, "id"), *jv = json_object_get(ref, "version");
            if (!json_is_string(jid) || !json_is_integer(jv) || json_integer_value(jv) < 1 ||
                json_integer_value(jv) > 2147483647) {
                fail_jobs(b, w, "the stored template reference does not parse");
                queue_message_free(m);
                continue;
            }
            db_status ts;
            t = template_of(&cache, db, b, give_up, ctx, w->account_id, json_string_value(jid),
                            (int)json_integer_value(jv), &ts);
            if (ts == DB_DOWN) {
                for (size_t rest = k; rest < b->nmsgs; rest++)
                    queue_message_free(reqs[rest].msg);
                free(reqs);
                tcache_free(&cache);
                dcache_free(&dcache_);
                return -1;
            }
            if (!t || !t->found) {
                if (!t)
                    snprintf(reason, sizeof reason, "could not load template %s version %lld: %s",
                             json_string_value(jid), (long long)json_integer_value(jv),
                             db_last_error(db));
                else
                    snprintf(reason, sizeof reason, "template %s version %lld no longer exists",
                             json_string_value(jid), (long long)json_integer_value(jv));
                fail_jobs(b, w, reason);
                queue_message_free(m);
                continue;
            }
        }
        buf out;
        buf_init(&out, RENDER_MAX);
        char err[512];
        partial_ctx pc = {&cache, db, b, give_up, ctx, w->account_id, 0, 0, 0};
        track_ctx tc = {db, b, w, give_up, ctx, json_is_true(json_object_get(m->tracking, "clicks")),
                        json_is_true(json_object_get(m->tracking, "opens")), 0, 0};
        int rc = own_data(b, w, jdata)
                     ? render_own(b, w, m, t, &pc, &tc, jdata)
                     : render_with(m, w->message_id, t, &pc, tc.clicks || tc.opens ? &tc : NULL,
                                   &out, err, sizeof err);
        if (pc.db_down || tc.db_down) {   /* gave up: this and the following messages stay pending */
            buf_free(&out);
            for (size_t rest = k; rest < b->nmsgs; rest++)
                queue_message_free(reqs[rest].msg);
            free(reqs);
            tcache_free(&cache);
            dcache_free(&dcache_);
            return -1;
        }
        w->from_email = xstrdup(m->from_email ? m->from_email : "");
        w->sandbox = m->sandbox;
        if (rc == 0) {
            /* The From domain's keys and return-path domain, once per batch. */
            char dname[ADDR_MAX + 1];
            dcache_dom *d = NULL;
            db_status ds = DB_OK;
            if (from_domain(m->from_email, dname))
                d = domain_of(&dcache_, db, b, give_up, ctx, w->account_id, dname, &ds);
            if (ds == DB_DOWN) {
                buf_free(&out);
                for (size_t rest = k; rest < b->nmsgs; rest++)
                    queue_message_free(reqs[rest].msg);
                free(reqs);
                tcache_free(&cache);
                dcache_free(&dcache_);
                return -1;
            }
            if (ds != DB_OK) {
                snprintf(reason, sizeof reason, "could not load the sending domain: %s",
                         db_last_error(db));
                buf_free(&out);
                fail_jobs(b, w, reason);
            } else if (d && d->error) {
                buf_free(&out);
                fail_jobs(b, w, d->error);
            } else {
                finish_message(b, w, m, d && d->found ? d : NULL, &out, tc.done);
            }
        } else {
            buf_free(&out);
            fail_jobs(b, w, err);
        }
        queue_message_free(m);
    }
    free(reqs);
    tcache_free(&cache);
    dcache_free(&dcache_);
    return 0;
}
