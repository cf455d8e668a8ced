#include "worker/render.h"
#include "lib/log.h"
#include "lib/mime.h"
#include "lib/template.h"
#include "lib/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBJECT_MAX MIME_HEADER_VALUE_MAX

/* Renders one part; a missing or null source leaves *present 0. */
static int render_part(const json_t *content, const char *key, const json_t *data, int html,
                       int strict, buf *out, int *present, char *err, size_t errlen)
{
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
    if (tpl_render(json_string_value(src), json_string_length(src), data, html, strict, out,
                   terr, sizeof terr) != 0) {
        snprintf(err, errlen, "%s: %s", key, terr);
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

int render_message(const queue_message *m, const char *message_id, buf *out, char *err,
                   size_t errlen)
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
    if (json_object_get(m->content, "template")) {
        snprintf(err, errlen, "stored template references are not rendered by this worker yet");
        goto out;
    }
    const json_t *data = json_is_object(m->data) ? m->data : NULL;
    int has_subject, has_text, has_html;
    if (render_part(m->content, "subject", data, 0, m->strict, &subj, &has_subject, err,
                    errlen) != 0 ||
        render_part(m->content, "text", data, 0, m->strict, &text, &has_text, err, errlen) != 0 ||
        render_part(m->content, "html", data, 1, m->strict, &html, &has_html, err, errlen) != 0)
        goto out;
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

int render_batch(db_conn *db, wbatch *b, render_give_up_fn give_up, void *ctx)
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
            return -1;
        }
        if (as == DB_ERROR) {
            snprintf(reason, sizeof reason, "could not load the attachments: %s",
                     db_last_error(db));
            fail_jobs(b, w, reason);
            queue_message_free(m);
            continue;
        }
        w->from_email = xstrdup(m->from_email ? m->from_email : "");
        w->sandbox = m->sandbox;
        buf out;
        buf_init(&out, RENDER_MAX);
        char err[512];
        if (render_message(m, w->message_id, &out, err, sizeof err) == 0) {
            w->mime = buf_steal(&out, &w->mime_len);
        } else {
            buf_free(&out);
            fail_jobs(b, w, err);
        }
        queue_message_free(m);
    }
    free(reqs);
    return 0;
}
