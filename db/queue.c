#include "db/queue.h"
#include "lib/config.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *queue_outcome_name(queue_outcome o)
{
    switch (o) {
    case QUEUE_DELIVERED: return "delivered";
    case QUEUE_DEFERRED: return "deferred";
    case QUEUE_BOUNCED: return "bounced";
    case QUEUE_FAILED: return "failed";
    }
    return "failed";
}

static char *col_dup(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return xstrndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static void col_copy(PGresult *r, int row, int col, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", PQgetvalue(r, row, col));
}

static int col_bool(PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static long long col_ll(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The number a command touched (UPDATE/DELETE/INSERT without RETURNING). */
static int cmd_count(PGresult *r)
{
    const char *t = PQcmdTuples(r);
    return t && *t ? (int)strtol(t, NULL, 10) : 0;
}

db_status queue_claim(db_conn *c, const char *worker, int64_t lease_ms, int max, int p0_only,
                      queue_item **items, int *n)
{
    *items = NULL;
    *n = 0;
    char lease[32], lim[16];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    snprintf(lim, sizeof lim, "%d", max);
    const char *p[] = {worker, lease, lim, p0_only ? "t" : "f"};
    PGresult *r;
    db_status s = db_exec(c, ST_QUEUE_CLAIM, p, &r);
    if (s != DB_OK)
        return s;
    int rows = PQntuples(r);
    if (rows > 0) {
        queue_item *it = xcalloc((size_t)rows, sizeof *it);
        for (int i = 0; i < rows; i++) {
            it[i].account_id = col_dup(r, i, 0);
            it[i].id = col_dup(r, i, 1);
            it[i].message_id = col_dup(r, i, 2);
            it[i].recipient = col_dup(r, i, 3);
            it[i].recipient_name = col_dup(r, i, 4);
            col_copy(r, i, 5, it[i].kind, sizeof it[i].kind);
            col_copy(r, i, 6, it[i].stream, sizeof it[i].stream);
            it[i].attempt = (int)col_ll(r, i, 7);
            it[i].smtputf8 = col_bool(r, i, 8);
            it[i].priority = (int)col_ll(r, i, 9);
        }
        *items = it;
        *n = rows;
    }
    PQclear(r);
    return DB_OK;
}

void queue_item_clear(queue_item *it)
{
    free(it->account_id);
    free(it->id);
    free(it->message_id);
    free(it->recipient);
    free(it->recipient_name);
    memset(it, 0, sizeof *it);
}

void queue_items_free(queue_item *items, int n)
{
    for (int i = 0; i < n; i++)
        queue_item_clear(&items[i]);
    free(items);
}

db_status queue_next_due(db_conn *c, int64_t *ms)
{
    *ms = -1;
    PGresult *r;
    db_status s = db_exec(c, ST_QUEUE_NEXT_DUE, NULL, &r);
    if (s != DB_OK)
        return s;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        long long v = col_ll(r, 0, 0);
        *ms = v < 0 ? 0 : v;
    }
    PQclear(r);
    return DB_OK;
}

static json_t *col_json(PGresult *r, int row, int col, int *bad)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    json_error_t e;
    json_t *j = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j)
        *bad = 1;
    return j;
}

void queue_message_free(queue_message *m)
{
    if (!m)
        return;
    free(m->stream);
    free(m->from_email);
    free(m->from_name);
    json_decref(m->reply_to);
    json_decref(m->header_to);
    json_decref(m->header_cc);
    json_decref(m->content);
    json_decref(m->data);
    json_decref(m->headers);
    json_decref(m->tracking);
    for (size_t i = 0; i < m->natt; i++) {
        queue_attachment *a = &m->att[i];
        free(a->filename);
        free(a->content_type);
        free(a->disposition);
        free(a->content_id);
        PQfreemem(a->data);
    }
    free(m->att);
    free(m);
}

db_status queue_attachments_load(db_conn *c, const char *account_id, const char *message_id,
                                 queue_message *m)
{
    if (!m->has_attachments || m->natt)
        return DB_OK;
    const char *p[] = {account_id, message_id};
    PGresult *r;
    db_status s = db_exec(c, ST_QUEUE_ATTACHMENTS, p, &r);
    if (s != DB_OK)
        return s;
    int rows = PQntuples(r);
    if (rows > 0) {
        m->att = xcalloc((size_t)rows, sizeof *m->att);
        for (int i = 0; i < rows; i++) {
            queue_attachment *a = &m->att[m->natt++];
            a->filename = col_dup(r, i, 1);
            a->content_type = col_dup(r, i, 2);
            a->disposition = col_dup(r, i, 3);
            a->content_id = col_dup(r, i, 4);
            if (!PQgetisnull(r, i, 5)) {
                a->data = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 5), &a->len);
                if (!a->data)
                    die("out of memory decoding an attachment");
            }
        }
    }
    PQclear(r);
    return DB_OK;
}

static queue_message *message_of(PGresult *r, int row, int *bad)
{
    queue_message *m = xcalloc(1, sizeof *m);
    m->stream = col_dup(r, row, 2);
    m->from_email = col_dup(r, row, 3);
    m->from_name = col_dup(r, row, 4);
    m->reply_to = col_json(r, row, 5, bad);
    m->header_to = col_json(r, row, 6, bad);
    m->header_cc = col_json(r, row, 7, bad);
    m->content = col_json(r, row, 8, bad);
    m->data = col_json(r, row, 9, bad);
    m->headers = col_json(r, row, 10, bad);
    m->strict = col_bool(r, row, 11);
    m->sandbox = col_bool(r, row, 12);
    m->smtputf8 = col_bool(r, row, 13);
    m->tracking = col_json(r, row, 14, bad);
    m->created_unix = col_ll(r, row, 15);
    if (json_is_null(m->reply_to)) {
        json_decref(m->reply_to);
        m->reply_to = NULL;
    }
    return m;
}

db_status queue_messages_load(db_conn *c, queue_message_req *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        reqs[i].msg = NULL;
        reqs[i].bad = 0;
    }
    if (n == 0)
        return DB_OK;
    json_t *keys = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(keys, json_pack("{s:s, s:s}", "account_id", reqs[i].account_id,
                                              "id", reqs[i].message_id));
    char *text = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    if (!text)
        die("out of memory encoding message keys");
    const char *p[] = {text};
    PGresult *r;
    db_status s = db_exec(c, ST_QUEUE_MESSAGE, p, &r);
    free(text);
    if (s != DB_OK)
        return s;
    int rows = PQntuples(r);
    for (int row = 0; row < rows; row++) {
        const char *acc = PQgetvalue(r, row, 0), *id = PQgetvalue(r, row, 1);
        for (size_t i = 0; i < n; i++) {
            queue_message_req *q = &reqs[i];
            if (q->msg || q->bad || strcmp(q->message_id, id) != 0 ||
                strcmp(q->account_id, acc) != 0)
                continue;
            int bad = 0;
            queue_message *m = message_of(r, row, &bad);
            if (bad) {
                log_error("message %s: a stored JSON column does not parse", id);
                queue_message_free(m);
                q->bad = 1;
            } else {
                m->has_attachments = col_bool(r, row, 16);
                q->msg = m;
            }
            break;
        }
    }
    PQclear(r);
    return DB_OK;
}


/* Length of the valid UTF-8 sequence at p (n bytes left), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* s as a JSON string of at most max bytes (cut on a character boundary), with every byte
 * that is not part of valid UTF-8 replaced by '?' (outside text must not make a whole
 * batch fail); JSON null for NULL. */
static json_t *text_json(const char *s, size_t max)
{
    if (!s)
        return json_null();
    size_t n = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    char *out = xmalloc((n < max ? n : max) + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(p + i, n - i);
        size_t add = len ? len : 1;
        if (o + add > max)
            break;
        if (len)
            memcpy(out + o, p + i, len);
        else
            out[o] = '?';
        o += add;
        i += add;
    }
    json_t *j = json_stringn(out, o);
    free(out);
    if (!j)
        die("out of memory encoding text");
    return j;
}

#define TEXT_MAX (64 * 1024)   /* any other text field of an outcome */

db_status queue_record(db_conn *c, const char *worker, const queue_result *r, size_t n,
                       int *recorded)
{
    if (recorded)
        *recorded = 0;
    if (n == 0)
        return DB_OK;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const queue_result *x = &r[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:I}", "account_id", x->account_id,
                              "id", x->id, "attempt", x->attempt,
                              "state", queue_outcome_name(x->outcome),
                              "delay_ms", (json_int_t)x->retry_in_ms);
        if (!o)
            die("queue_record: cannot build a result (bad ids?)");
        json_object_set_new(o, "code", x->code ? json_integer(x->code) : json_null());
        json_object_set_new(o, "enhanced", text_json(x->enhanced, TEXT_MAX));
        json_object_set_new(o, "response", text_json(x->response, TEXT_MAX));
        json_object_set_new(o, "mx", text_json(x->mx, TEXT_MAX));
        json_object_set_new(o, "tls", text_json(x->tls, TEXT_MAX));
        json_object_set_new(o, "ip", text_json(x->ip, TEXT_MAX));
        json_object_set_new(o, "duration_ms",
                            x->duration_ms >= 0 ? json_integer(x->duration_ms) : json_null());
        json_object_set_new(o, "transcript", text_json(x->transcript, QUEUE_TRANSCRIPT_MAX));
        json_object_set_new(o, "destination", text_json(x->destination, TEXT_MAX));
        json_object_set_new(o, "bounce_class", text_json(x->bounce_class, TEXT_MAX));
        json_object_set_new(o, "data", x->data ? json_deep_copy(x->data) : json_object());
        json_array_append_new(arr, o);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        die("out of memory encoding results");
    const char *p[] = {worker, text};
    PGresult *res;
    db_status s = db_exec(c, ST_QUEUE_RECORD, p, &res);
    free(text);
    if (s != DB_OK)
        return s;
    if (recorded)
        *recorded = cmd_count(res);
    PQclear(res);
    return DB_OK;
}

db_status queue_release(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                        int *released)
{
    if (released)
        *released = 0;
    if (n == 0)
        return DB_OK;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:i}", "account_id",
                                             refs[i].account_id, "id", refs[i].id,
                                             "attempt", refs[i].attempt));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        die("out of memory encoding releases");
    const char *p[] = {worker, text};
    PGresult *res;
    db_status s = db_exec(c, ST_QUEUE_RELEASE, p, &res);
    free(text);
    if (s != DB_OK)
        return s;
    if (released)
        *released = cmd_count(res);
    PQclear(res);
    return DB_OK;
}

db_status queue_postpone(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                         int64_t delay_ms, int *count)
{
    return queue_postpone_for(c, worker, refs, n, NULL, delay_ms, count);
}

db_status queue_postpone_for(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                             const char *destination, int64_t delay_ms, int *count)
{
    if (count)
        *count = 0;
    if (n == 0)
        return DB_OK;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s, s:s, s:i}", "account_id", refs[i].account_id, "id",
                              refs[i].id, "attempt", refs[i].attempt);
        if (!o)
            die("queue_postpone: cannot build a reference (bad ids?)");
        json_object_set_new(o, "destination", text_json(destination, TEXT_MAX));
        json_array_append_new(arr, o);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        die("out of memory encoding postponements");
    char delay[32];
    snprintf(delay, sizeof delay, "%lld", (long long)delay_ms);
    const char *p[] = {worker, text, delay};
    PGresult *res;
    db_status s = db_exec(c, ST_QUEUE_POSTPONE, p, &res);
    free(text);
    if (s != DB_OK)
        return s;
    if (count)
        *count = cmd_count(res);
    PQclear(res);
    return DB_OK;
}

db_status queue_destinations_publish(db_conn *c, const char *worker, const queue_dest_status *st,
                                     size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!st[i].name)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", text_json(st[i].name, TEXT_MAX));
        json_object_set_new(o, "queued", json_integer(st[i].queued));
        json_object_set_new(o, "active", json_integer(st[i].active));
        json_object_set_new(o, "state", text_json(st[i].state, TEXT_MAX));
        json_object_set_new(o, "last_error", text_json(st[i].last_error, TEXT_MAX));
        json_array_append_new(arr, o);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        die("out of memory encoding destinations");
    const char *p[] = {worker, text};
    db_status s = db_exec(c, ST_DEST_PUBLISH, p, NULL);
    free(text);
    return s;
}

db_status queue_destination_controls(db_conn *c, queue_dest_control **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    PGresult *r;
    db_status s = db_exec(c, ST_DEST_CONTROLS, NULL, &r);
    if (s != DB_OK)
        return s;
    int rows = PQntuples(r);
    if (rows > 0) {
        queue_dest_control *v = xcalloc((size_t)rows, sizeof *v);
        for (int i = 0; i < rows; i++) {
            v[i].name = col_dup(r, i, 0);
            v[i].paused = col_bool(r, i, 1);
            v[i].retry_at_ms = col_ll(r, i, 2);
        }
        *out = v;
        *n = (size_t)rows;
    }
    PQclear(r);
    return DB_OK;
}

void queue_dest_controls_free(queue_dest_control *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++)
        free(c[i].name);
    free(c);
}

/* A housekeeping statement: $1 limit, or $1 age (ms) and $2 limit when age_ms >= 0; *n
 * (may be NULL) gets the command's row count. */
static db_status run_bounded(db_conn *c, db_stmt st, int64_t age_ms, int limit, int *n)
{
    if (n)
        *n = 0;
    char age[24], lim[16];
    snprintf(age, sizeof age, "%lld", (long long)age_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *aged[] = {age, lim}, *plain[] = {lim};
    PGresult *res;
    db_status s = db_exec(c, st, age_ms >= 0 ? aged : plain, &res);
    if (s != DB_OK)
        return s;
    if (n)
        *n = cmd_count(res);
    PQclear(res);
    return DB_OK;
}

static db_status run_limited(db_conn *c, db_stmt st, int limit, int *n)
{
    return run_bounded(c, st, -1, limit, n);
}

db_status queue_sweep_leases(db_conn *c, int limit, int *n)
{
    return run_limited(c, ST_QUEUE_SWEEP, limit, n);
}

db_status queue_renew_leases(db_conn *c, const char *worker, int64_t lease_ms, int64_t hold_ms,
                             int *n)
{
    char l[24], h[24];
    snprintf(l, sizeof l, "%lld", (long long)lease_ms);
    snprintf(h, sizeof h, "%lld", (long long)hold_ms);
    const char *params[] = {worker, l, h};
    PGresult *res;
    db_status s = db_exec(c, ST_QUEUE_RENEW, params, &res);
    if (s != DB_OK)
        return s;
    if (n)
        *n = cmd_count(res);
    PQclear(res);
    return DB_OK;
}

db_status queue_purge_webhook_log(db_conn *c, int limit, int *n)
{
    return run_bounded(c, ST_WEBHOOK_LOG_PURGE, cfg.event_retention_ms, limit, n);
}

db_status queue_expire(db_conn *c, int limit, int *n)
{
    return run_limited(c, ST_QUEUE_EXPIRE, limit, n);
}

db_status queue_purge_idempotency(db_conn *c, int limit, int *n)
{
    return run_limited(c, ST_IDEMPOTENCY_PURGE, limit, n);
}

db_status queue_purge_destination_status(db_conn *c, int limit, int *n)
{
    return run_limited(c, ST_DEST_STATUS_PURGE, limit, n);
}

db_status queue_purge_transcripts(db_conn *c, int limit, int *n)
{
    return run_bounded(c, ST_TRANSCRIPT_PURGE, cfg.retention_ms, limit, n);
}

/* ---- stats counters, retention (migration 0007) ---- */

db_status queue_stats_rollup(db_conn *c, int limit, int *n)
{
    if (n)
        *n = 0;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {lim};
    PGresult *res;
    db_status s = db_exec(c, ST_STATS_ROLLUP, p, &res);
    if (s != DB_OK)
        return s;
    if (n && PQntuples(res) == 1)
        *n = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return DB_OK;
}

db_status queue_purge_content(db_conn *c, int limit, int *n)
{
    return run_bounded(c, ST_RETENTION_MESSAGES, cfg.retention_ms, limit, n);
}

db_status queue_purge_campaign_data(db_conn *c, int limit, int *n)
{
    return run_limited(c, ST_RETENTION_DLV_DATA, limit, n);
}

db_status queue_trim_stats(db_conn *c, int limit, int *n)
{
    return run_bounded(c, ST_STATS_TRIM, cfg.stats_retention_ms, limit, n);
}

db_status queue_events_maintain(db_conn *c, int limit, int *n)
{
    if (n)
        *n = 0;
    char ret[32], lim[16];
    snprintf(ret, sizeof ret, "%lld", (long long)cfg.event_retention_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {ret, lim};
    PGresult *res;
    db_status s = db_exec(c, ST_EVENTS_MAINTAIN, p, &res);
    if (s != DB_OK)
        return s;
    if (PQntuples(res) == 1) {
        int created = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
        int dropped = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
        if (created || dropped)
            log_info("events partitions: %d created ahead, %d dropped past the event retention",
                     created, dropped);
        if (n)
            *n = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    return DB_OK;
}
