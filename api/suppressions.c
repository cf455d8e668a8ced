/* api/suppressions.c - GET/POST /v1/suppressions, DELETE /v1/suppressions/{email},
 * POST /v1/suppressions/import (text/csv) and GET /v1/suppressions/export (text/csv).
 * Entries are per stream (transactional, broadcast, or all); addresses are stored and
 * compared lower-cased, as every mailbox provider treats them. Each entry carries its source:
 * manual (API, import), bounce, unsubscribe or complaint.
 *
 * Import is parsed (lib/csv, driven by api/csvupload.h) while the body arrives and upserted in
 * batches of IMPORT_BATCH rows, so memory stays flat up to cfg.csv_max (POSTHORN_CSV_MAX).
 * Export is paged by keyset (EXPORT_PAGE rows per query) into a chunked response. Cells that a spreadsheet would run
 * as a formula (starting with = + - @ TAB CR) are exported with a leading "'"; import takes
 * that "'" off again, so an export imports back unchanged. */
#include "api/csvupload.h"
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/config.h"
#include "lib/csv.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REASON_MAX 1000

static const char *const streams[] = {"transactional", "broadcast", "all", NULL};

static int valid_stream(const char *s)
{
    for (int i = 0; streams[i]; i++)
        if (strcmp(s, streams[i]) == 0)
            return 1;
    return 0;
}

/* ?stream= into *stream (NULL when absent); -1 with the 422 in *done when it is not one. */
static int stream_query(http_req *r, const char **stream, enum MHD_Result *done)
{
    json_t *errors = json_array();
    query_enum(r, errors, "stream", streams, "must be transactional, broadcast or all", stream);
    if (json_array_size(errors) > 0) {
        *done = http_problem(r, 422, NULL, "Invalid query parameters.", errors);
        return -1;
    }
    json_decref(errors);
    return 0;
}


static json_t *row_json(PGresult *res, int i, int col)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "email", PQgetvalue(res, i, col), "stream",
                     PQgetvalue(res, i, col + 1), "reason",
                     PQgetisnull(res, i, col + 2) ? json_null() : json_string(PQgetvalue(res, i, col + 2)),
                     "source", PQgetvalue(res, i, col + 3), "created_at", PQgetvalue(res, i, col + 4));
}

static json_t *list_row_json(PGresult *res, int i) { return row_json(res, i, 0); }

enum MHD_Result h_suppressions_list(http_req *r)
{
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, r->auth.account_id, &limit, &cursor, &done) != 0)
        return done;
    const char *stream;
    if (stream_query(r, &stream, &done) != 0) {
        json_decref(cursor);
        return done;
    }
    const char *c_ts = "", *c_email = "", *c_stream = "";
    if (cursor) {
        json_t *a = json_array_get(cursor, 0), *b = json_array_get(cursor, 1),
               *c = json_array_get(cursor, 2);
        if (json_is_string(a) && json_is_string(b) && json_is_string(c)) {
            c_ts = json_string_value(a);
            c_email = json_string_value(b);
            c_stream = json_string_value(c);
        }
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->auth.account_id, stream ? stream : "", c_ts, c_email, c_stream, lim};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_SUPP_LIST, params, &res);
    json_decref(cursor);
    if (s != DB_OK)
        return db_failure(r, s);
    const int cols[] = {5, 0, 1};
    return query_send_page(r, res, limit, list_row_json, r->auth.account_id, cols, 3);
}


/* No CR, LF or NUL (or other C0 controls) in a value that may end up in a header or log. */
static int has_controls(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

enum MHD_Result h_suppressions_create(http_req *r)
{
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    char email[ADDR_MAX + 1] = "";
    const char *stream = "all", *reason = NULL;

    static const char *const known[] = {"email", "stream", "reason", NULL};
    http_unknown_fields(errors, body, known);
    json_t *je = json_object_get(body, "email");
    if (!je)
        http_field_error(errors, "email", "is required");
    else if (!json_is_string(je))
        http_field_error(errors, "email", "must be a string");
    else {
        const char *why = addr_normalize(json_string_value(je), json_string_length(je), email);
        if (why)
            http_field_error(errors, "email", "is not a valid address: %s", why);
        else
            addr_lower_ascii(email);
    }
    json_t *js = json_object_get(body, "stream");
    if (js) {
        if (!json_is_string(js) || !valid_stream(json_string_value(js)) ||
            strlen(json_string_value(js)) != json_string_length(js))
            http_field_error(errors, "stream", "must be transactional, broadcast or all");
        else
            stream = json_string_value(js);
    }
    json_t *jr = json_object_get(body, "reason");
    if (jr && !json_is_null(jr)) {
        if (!json_is_string(jr))
            http_field_error(errors, "reason", "must be a string or null");
        else if (json_string_length(jr) > REASON_MAX)
            http_field_error(errors, "reason", "is longer than %d bytes", REASON_MAX);
        else if (has_controls(json_string_value(jr), json_string_length(jr)))
            http_field_error(errors, "reason", "must not contain control characters (CR, LF, NUL, ...)");
        else
            reason = json_string_value(jr);
    }
    if (json_array_size(errors) > 0) {
        json_decref(body);
        return http_problem(r, 422, NULL, "The suppression is invalid.", errors);
    }
    json_decref(errors);

    const char *params[] = {r->auth.account_id, email, stream, reason};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_SUPP_UPSERT, params, &res);
    json_decref(body);
    if (s != DB_OK)
        return db_failure(r, s);
    int created = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    json_t *out = row_json(res, 0, 1);
    PQclear(res);
    return http_send_json(r, created ? 201 : 200, out);
}

enum MHD_Result h_suppressions_delete(http_req *r)
{
    const char *stream;
    enum MHD_Result done;
    if (stream_query(r, &stream, &done) != 0)
        return done;
    char email[ADDR_MAX + 1];
    if (addr_normalize(r->params[0], strlen(r->params[0]), email) != NULL)
        return http_problem(r, 404, NULL, "No suppression for this address.", NULL);
    addr_lower_ascii(email);
    const char *params[] = {r->auth.account_id, email, stream ? stream : ""};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_SUPP_DELETE, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    int n = (int)strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (n == 0)
        return http_problem(r, 404, NULL, "No suppression for this address.", NULL);
    return http_send_empty(r, 204);
}

/* ---- POST /v1/suppressions/import (api/csvupload.h) ------------------------------------- */

#define IMPORT_BATCH     1000      /* rows per upsert statement */
#define CSV_FIELD_MAX    65536
#define CSV_FIELDS_MAX   64
#define CSV_LINE_MAX     (128 * 1024)
#define DISCARD_MAX      (1LL << 20)   /* bytes read on after a stop before closing */

typedef struct {
    csvupload   up;                /* first: counts, rejections, dbst; the CSV stream */
    char        account_id[40];
    long        email_col, stream_col, reason_col;
    json_t     *batch;             /* [{i, email, stream, reason}] not yet upserted */
} supp_import;

static void supp_import_free(void *p)
{
    supp_import *c = p;
    if (!c)
        return;
    csvupload_release(&c->up);
    json_decref(c->batch);
    free(c);
}

static void flush_batch(csvupload *u)
{
    supp_import *c = (supp_import *)u;
    if (u->dbst != DB_OK || json_array_size(c->batch) == 0)
        return;
    char *js = json_dumps(c->batch, JSON_COMPACT);
    const char *params[] = {c->account_id, js};
    PGresult *res;
    u->dbst = db_exec(db_thread(), ST_SUPP_IMPORT, params, &res);
    free(js);
    json_array_clear(c->batch);
    if (u->dbst != DB_OK)
        return;
    u->inserted += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    u->updated += strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

static void header_row(csvupload *u, const char *const *f, const size_t *lens, size_t n)
{
    supp_import *c = (supp_import *)u;
    for (size_t i = 0; i < n; i++) {
        const char *s = f[i];
        size_t l = lens[i];
        trim(&s, &l);
        long *col = l == 5 && strncasecmp(s, "email", 5) == 0    ? &c->email_col
                    : l == 6 && strncasecmp(s, "stream", 6) == 0 ? &c->stream_col
                    : l == 6 && strncasecmp(s, "reason", 6) == 0 ? &c->reason_col
                                                                 : NULL;
        if (!col)
            continue;   /* other columns (source, created_at of an export) are ignored */
        if (*col >= 0) {
            csvupload_fatal(u, "The CSV header names the column \"%.*s\" twice; nothing was "
                            "stored.", (int)l, s);
            return;
        }
        *col = (long)i;
    }
    if (c->email_col < 0)
        csvupload_fatal(u, "The CSV header row has no \"email\" column; nothing was stored.");
}

static void import_row(csvupload *u, size_t row_no, const char *const *f, const size_t *lens,
                       size_t n)
{
    supp_import *c = (supp_import *)u;
    const char *email = (size_t)c->email_col < n ? f[c->email_col] : "";
    size_t el = (size_t)c->email_col < n ? lens[c->email_col] : 0;
    trim(&email, &el);
    csv_unneutralize(&email, &el);
    if (el == 0) {
        csvupload_reject(u, (long long)row_no, NULL, "email is empty");
        return;
    }
    char addr[ADDR_MAX + 1];
    const char *why = addr_normalize(email, el, addr);
    if (why) {
        char reason[300];
        snprintf(reason, sizeof reason, "email is not a valid address: %s", why);
        csvupload_reject(u, (long long)row_no, NULL, reason);
        return;
    }
    addr_lower_ascii(addr);

    const char *stream = "all";
    if (c->stream_col >= 0 && (size_t)c->stream_col < n) {
        const char *st = f[c->stream_col];
        size_t sl = lens[c->stream_col];
        trim(&st, &sl);
        if (sl == 13 && strncasecmp(st, "transactional", 13) == 0)
            stream = "transactional";
        else if (sl == 9 && strncasecmp(st, "broadcast", 9) == 0)
            stream = "broadcast";
        else if (sl != 0 && !(sl == 3 && strncasecmp(st, "all", 3) == 0)) {
            csvupload_reject(u, (long long)row_no, NULL,
                             "stream must be transactional, broadcast or all");
            return;
        }
    }
    json_t *reason = json_null();
    if (c->reason_col >= 0 && (size_t)c->reason_col < n) {
        const char *re = f[c->reason_col];
        size_t rl = lens[c->reason_col];
        trim(&re, &rl);
        csv_unneutralize(&re, &rl);
        if (rl > REASON_MAX) {
            csvupload_reject(u, (long long)row_no, NULL, "reason is longer than 1000 bytes");
            return;
        }
        if (has_controls(re, rl)) {
            csvupload_reject(u, (long long)row_no, NULL,
                             "reason must not contain control characters (CR, LF, NUL, ...)");
            return;
        }
        if (rl)
            reason = json_stringn(re, rl);
    }
    json_array_append_new(c->batch, json_pack("{s:I, s:s, s:s, s:o}", "i", (json_int_t)row_no,
                                              "email", addr, "stream", stream, "reason", reason));
    if (json_array_size(c->batch) >= IMPORT_BATCH)
        flush_batch(u);
}

static const csvupload_spec supp_csv = {
    .max_field = CSV_FIELD_MAX, .max_fields = CSV_FIELDS_MAX, .max_line = CSV_LINE_MAX,
    .discard_max = DISCARD_MAX, .header = header_row, .row = import_row, .flush = flush_batch,
    .detail_counts = 0};

enum MHD_Result h_suppressions_import(http_req *r)
{
    if (r->streaming) {   /* before the body */
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        if (!csvupload_is_csv(ct))
            return http_problem(r, 415, NULL, "Send the suppressions as Content-Type: text/csv "
                                              "(a header row with an email column).", NULL);
        supp_import *c = xcalloc(1, sizeof *c);
        csvupload_init(&c->up, &supp_csv);
        snprintf(c->account_id, sizeof c->account_id, "%s", r->auth.account_id);
        c->email_col = c->stream_col = c->reason_col = -1;
        c->batch = json_array();
        return csvupload_start(r, c, supp_import_free);
    }
    if (!r->ctx)
        return http_problem(r, 500, NULL, "Internal error.", NULL);
    return csvupload_finish(r, r->ctx);
}

/* ---- GET /v1/suppressions/export ------------------------------------------------------- */

#define EXPORT_PAGE 1000

typedef struct {
    char   account_id[40];
    char   stream[16];
    char   after_stream[16];
    char   after_email[ADDR_MAX + 1];
    buf    out;            /* formatted, not yet handed out */
    size_t off;
    int    done;           /* no more pages */
    int    failed;
} supp_export;

static void supp_export_free(void *p)
{
    supp_export *x = p;
    if (!x)
        return;
    buf_free(&x->out);
    free(x);
}

static int put_row(buf *b, const char *const *cells, int n)
{
    for (int i = 0; i < n; i++) {
        if (i && buf_append(b, ",", 1) != 0)
            return -1;
        if (csv_put_cell(b, cells[i], strlen(cells[i]), CSV_NEUTRALIZE) != 0)
            return -1;
    }
    return buf_append(b, "\r\n", 2);
}

/* Fills x->out with the next page; sets done after the last. */
static int export_page(supp_export *x)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", EXPORT_PAGE);
    const char *params[] = {x->account_id, x->stream, x->after_stream, x->after_email, lim};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_SUPP_EXPORT, params, &res);
    if (s != DB_OK) {
        log_warn("suppressions export: the database failed after %s/%s; the response is cut",
                 x->after_stream, x->after_email);
        return -1;
    }
    int n = PQntuples(res);
    buf_reset(&x->out);
    x->off = 0;
    for (int i = 0; i < n; i++) {
        const char *cells[] = {PQgetvalue(res, i, 1), PQgetvalue(res, i, 0), PQgetvalue(res, i, 2),
                               PQgetvalue(res, i, 3), PQgetvalue(res, i, 4)};
        if (put_row(&x->out, cells, 5) != 0)
            die("suppressions export: a page does not fit its buffer");
    }
    if (n > 0) {
        snprintf(x->after_stream, sizeof x->after_stream, "%s", PQgetvalue(res, n - 1, 0));
        snprintf(x->after_email, sizeof x->after_email, "%s", PQgetvalue(res, n - 1, 1));
    }
    if (n < EXPORT_PAGE)
        x->done = 1;
    PQclear(res);
    return 0;
}

static ssize_t export_read(void *ctx, uint64_t pos, char *dst, size_t max)
{
    supp_export *x = ctx;
    while (x->off >= x->out.len) {
        if (x->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (export_page(x) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = x->out.len - x->off;
    if (n > max)
        n = max;
    memcpy(dst, x->out.data + x->off, n);
    x->off += n;
    return (ssize_t)n;
}

enum MHD_Result h_suppressions_export(http_req *r)
{
    const char *stream;
    enum MHD_Result done;
    if (stream_query(r, &stream, &done) != 0)
        return done;
    supp_export *x = xcalloc(1, sizeof *x);
    snprintf(x->account_id, sizeof x->account_id, "%s", r->auth.account_id);
    snprintf(x->stream, sizeof x->stream, "%s", stream ? stream : "");
    /* a page: 1000 rows of at most ~2.3 KB each (address, reason, quoting) */
    buf_init(&x->out, 4u << 20);
    /* The first page is read now, so a database that is down answers 503, not a cut body. */
    if (export_page(x) != 0) {
        supp_export_free(x);
        return db_failure(r, DB_DOWN);
    }
    /* the header row goes before the first page */
    buf hdr;
    buf_init(&hdr, 4u << 20);
    if (buf_appendz(&hdr, "email,stream,reason,source,created_at\r\n") != 0 ||
        buf_append(&hdr, x->out.data ? x->out.data : "", x->out.len) != 0)
        die("suppressions export: a page does not fit its buffer");
    buf_free(&x->out);
    x->out = hdr;
    x->off = 0;
    http_add_header(r, "Content-Disposition", "attachment; filename=\"suppressions.csv\"");
    return http_send_stream(r, 200, "text/csv; charset=utf-8", export_read, x, supp_export_free);
}
