/* api/lists.c - lists and their contacts: POST/GET /v1/lists, GET/DELETE /v1/lists/{id},
 * POST/GET /v1/lists/{id}/contacts, GET/DELETE /v1/lists/{id}/contacts/{email}.
 * Contacts are upserted by address (domain part normalised by lib/addr) in chunks of at
 * most IMPORT_CHUNK rows per statement, from a JSON array (buffered, up to JSON_MAX_ITEMS)
 * or a streamed text/csv body (BODY_STREAM: parsed by lib/csv as it arrives, never held
 * whole; cap cfg.csv_max). Every answer says what was stored: inserted and updated counts,
 * and the rejected rows (the first REJECT_LIST_MAX with reasons, and their count); a body
 * over the cap or a database failure half way answers with the counts stored before it. */
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/config.h"
#include "lib/csv.h"
#include "lib/ids.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_NAME_MAX      200
#define IMPORT_CHUNK       1000
#define IMPORT_CHUNK_BYTES (4u << 20)     /* a chunk is also flushed at this much data */
#define JSON_MAX_ITEMS     10000
#define REJECT_LIST_MAX    1000
#define CSV_LINE_MAX       (1u << 20)     /* one CSV record */
#define CSV_FIELDS_MAX     200
#define CONTACT_DATA_MAX   65536          /* serialised data of one contact */
/* After the cap the rest of a body is read and dropped (so the answer can be sent), up to
 * this much more; beyond it the connection is closed. */
#define DISCARD_MAX        (1LL << 32)

static const char *const contact_statuses[] = {"subscribed", "unsubscribed", "bounced",
                                               "complained", NULL};

static int valid_status(const char *s)
{
    for (int i = 0; contact_statuses[i]; i++)
        if (strcmp(s, contact_statuses[i]) == 0)
            return 1;
    return 0;
}

static int has_controls(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/* ---- lists ----------------------------------------------------------------------------- */

static json_t *list_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:s}", "id", PQgetvalue(res, i, 0), "name", PQgetvalue(res, i, 1),
                     "created_at", PQgetvalue(res, i, 2));
}

/* 1 found (row in *out unless out is NULL), 0 not, -1 database failure in *st. */
static int list_load(http_req *r, const char *id, PGresult **out, db_status *st)
{
    const char *params[] = {r->auth.account_id, id};
    PGresult *res;
    *st = db_exec(db_thread(), ST_LIST_GET, params, &res);
    if (*st != DB_OK)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 0;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 1;
}

enum MHD_Result h_lists_create(http_req *r)
{
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "name") != 0)
            http_field_error(errors, k, "unknown field");
    }
    json_t *jn = json_object_get(body, "name");
    if (!json_is_string(jn) || json_string_length(jn) < 1 ||
        json_string_length(jn) > LIST_NAME_MAX ||
        has_controls(json_string_value(jn), json_string_length(jn)))
        http_field_error(errors, "name", "is required: 1 to %d characters without control "
                                         "characters", LIST_NAME_MAX);
    if (json_array_size(errors)) {
        json_decref(body);
        return http_problem(r, 422, NULL, "The list is not valid.", errors);
    }
    json_decref(errors);
    char id[IDS_MAX];
    ids_new("lst_", id);
    const char *params[] = {r->auth.account_id, id, json_string_value(jn)};
    db_status s = db_exec(db_thread(), ST_LIST_INSERT, params, NULL);
    json_decref(body);
    if (s != DB_OK)
        return db_failure(r, s);
    PGresult *res;
    if (list_load(r, id, &res, &s) != 1)
        return db_failure(r, s == DB_OK ? DB_ERROR : s);
    json_t *out = list_json(res, 0);
    PQclear(res);
    return http_send_json(r, 201, out);
}

enum MHD_Result h_lists_list(http_req *r)
{
    return query_keyset_page(r, ST_LIST_LIST, list_json, 3);
}

enum MHD_Result h_list_get(http_req *r)
{
    PGresult *res;
    db_status s;
    int f = list_load(r, r->params[0], &res, &s);
    if (f < 0)
        return db_failure(r, s);
    if (f == 0)
        return http_problem(r, 404, NULL, "No such list.", NULL);
    json_t *out = list_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_list_delete(http_req *r)
{
    const char *params[] = {r->auth.account_id, r->params[0]};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_LIST_DELETE, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (n > 0)
        return http_send_empty(r, 204);
    int f = list_load(r, r->params[0], NULL, &s);
    if (f < 0)
        return db_failure(r, s);
    if (f == 0)
        return http_problem(r, 404, NULL, "No such list.", NULL);
    return http_problem(r, 409, NULL, "The list is used by a campaign; it cannot be deleted.",
                        NULL);
}

/* ---- contact import: chunks shared by the JSON and CSV paths ---------------------------- */

typedef struct {
    char        account_id[40];
    char        list_id[64];
    char        import_id[IDS_MAX];
    /* the chunk being gathered: rows to upsert without and with a status, and
     * address -> row number (duplicates within the chunk, and rows the database skipped) */
    json_t     *plain, *with_status, *rows;
    size_t      chunk_bytes;
    long long   inserted, updated, rejected_count;
    json_t     *rejected;          /* [{row, email?, reason}], the first REJECT_LIST_MAX */
    db_status   dbst;              /* DB_OK until a chunk failed */
    /* CSV */
    csv_parser *csv;
    size_t      ncols;
    long        email_col, status_col;
    char      **colnames;
    int         header_done;
    int         fatal;             /* 422: no email column or a bad header; nothing stored */
    char        fatal_msg[300];
    long long   bytes;
    int         over_cap;
    long long   rows_read;         /* data rows seen (good and bad) */
} import_ctx;

static void import_init(import_ctx *c, const char *account_id, const char *list_id)
{
    memset(c, 0, sizeof *c);
    snprintf(c->account_id, sizeof c->account_id, "%s", account_id);
    snprintf(c->list_id, sizeof c->list_id, "%s", list_id);
    ids_new("imp_", c->import_id);
    c->plain = json_array();
    c->with_status = json_array();
    c->rows = json_object();
    c->rejected = json_array();
    c->email_col = -1;
    c->status_col = -1;
}

static void import_free(void *p)
{
    import_ctx *c = p;
    if (!c)
        return;
    json_decref(c->plain);
    json_decref(c->with_status);
    json_decref(c->rows);
    json_decref(c->rejected);
    if (c->csv)
        csv_free(c->csv);
    for (size_t i = 0; i < c->ncols; i++)
        free(c->colnames ? c->colnames[i] : NULL);
    free(c->colnames);
    free(c);
}

static void reject(import_ctx *c, long long row, const char *email, const char *reason)
{
    c->rejected_count++;
    if (json_array_size(c->rejected) >= REJECT_LIST_MAX)
        return;
    json_t *o = json_pack("{s:I, s:s}", "row", (json_int_t)row, "reason", reason);
    if (email)
        json_object_set_new(o, "email", json_string(email));
    json_array_append_new(c->rejected, o);
}

static db_status upsert(import_ctx *c, json_t *arr, int with_status)
{
    if (json_array_size(arr) == 0)
        return DB_OK;
    char *js = json_dumps(arr, JSON_COMPACT);
    if (!js)
        die("cannot serialise a contacts chunk");
    const char *params[] = {c->account_id, c->list_id, js, with_status ? "true" : "false",
                            c->import_id};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_CONTACTS_UPSERT, params, &res);
    free(js);
    if (s != DB_OK)
        return s;
    for (int i = 0; i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, 1), "t") == 0)
            c->inserted++;
        else
            c->updated++;
        json_object_del(c->rows, PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return DB_OK;
}

/* Writes the gathered chunk. Rows the database did not write were written earlier by this
 * same upload: duplicates. */
static db_status flush(import_ctx *c)
{
    if (c->dbst != DB_OK)
        return c->dbst;
    db_status s = upsert(c, c->plain, 0);
    if (s == DB_OK)
        s = upsert(c, c->with_status, 1);
    if (s != DB_OK) {
        c->dbst = s;
        return s;
    }
    const char *email;
    json_t *row;
    json_object_foreach(c->rows, email, row) {
        reject(c, json_integer_value(row), email, "duplicate address within this upload");
    }
    json_array_clear(c->plain);
    json_array_clear(c->with_status);
    json_object_clear(c->rows);
    c->chunk_bytes = 0;
    return DB_OK;
}

/* One candidate row: validated address, status (NULL: keep) and data (stolen). Returns the
 * flush status (a full chunk is written). */
static db_status add_row(import_ctx *c, long long row, const char *email, size_t elen,
                         const char *status, json_t *data)
{
    addr_t a;
    const char *why = addr_parse(email, elen, &a);
    if (why) {
        char reason[200];
        snprintf(reason, sizeof reason, "invalid address: %s", why);
        reject(c, row, NULL, reason);
        json_decref(data);
        return DB_OK;
    }
    json_t *prev = json_object_get(c->rows, a.email);
    if (prev) {
        char reason[120];
        snprintf(reason, sizeof reason, "duplicate address within this upload (first at row %lld)",
                 (long long)json_integer_value(prev));
        reject(c, row, a.email, reason);
        json_decref(data);
        return DB_OK;
    }
    json_object_set_new(c->rows, a.email, json_integer(row));
    json_t *o = json_pack("{s:s, s:o}", "email", a.email, "data", data ? data : json_object());
    c->chunk_bytes += elen + 64;
    if (status) {
        json_object_set_new(o, "status", json_string(status));
        json_array_append_new(c->with_status, o);
    } else {
        json_array_append_new(c->plain, o);
    }
    if (json_object_size(c->rows) >= IMPORT_CHUNK || c->chunk_bytes >= IMPORT_CHUNK_BYTES)
        return flush(c);
    return DB_OK;
}

static int cmp_row(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "row"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "row"));
    return x < y ? -1 : x > y;
}

static json_t *summary(import_ctx *c)
{
    size_t n = json_array_size(c->rejected);
    json_t **v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(c->rejected, i));
    qsort(v, n, sizeof *v, cmp_row);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(sorted, v[i]);
    free(v);
    return json_pack("{s:I, s:I, s:o, s:I}", "inserted", (json_int_t)c->inserted, "updated",
                     (json_int_t)c->updated, "rejected", sorted, "rejected_count",
                     (json_int_t)c->rejected_count);
}

/* The answer once the body is over: 200 with the summary, or the problem that stopped the
 * import, which still says what was stored before it. */
static enum MHD_Result import_answer(http_req *r, import_ctx *c)
{
    if (c->dbst == DB_OK && !c->fatal)
        flush(c);
    if (c->fatal) {
        json_t *errors = json_array();
        http_field_error(errors, "body", "%s", c->fatal_msg);
        return http_problem(r, 422, NULL, c->fatal_msg, errors);
    }
    char detail[400];
    if (c->over_cap || c->dbst != DB_OK) {
        json_t *sum = summary(c);
        if (c->over_cap)
            snprintf(detail, sizeof detail,
                     "The CSV body is larger than the limit of %lld bytes. The rows before the "
                     "limit were stored: %lld inserted, %lld updated, %lld rejected; the rest was "
                     "not read.", (long long)cfg.csv_max, c->inserted, c->updated,
                     c->rejected_count);
        else
            snprintf(detail, sizeof detail,
                     "The database failed during the import. Stored before the failure: %lld "
                     "inserted, %lld updated; retry the upload (it is an upsert).",
                     c->inserted, c->updated);
        unsigned status = c->over_cap ? 413 : c->dbst == DB_DOWN ? 503 : 500;
        if (status == 503)
            http_add_header(r, "Retry-After", "1");
        /* the problem carries the counts, like the 200 answer */
        json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                              status == 413 ? "Content Too Large" : "Import interrupted",
                              "status", (int)status, "detail", detail);
        json_object_update(p, sum);
        json_decref(sum);
        char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(p);
        enum MHD_Result ret = http_send_bytes(r, status, "application/problem+json", s, strlen(s));
        free(s);
        return ret;
    }
    return http_send_json(r, 200, summary(c));
}

/* ---- JSON array ---------------------------------------------------------------------- */

static enum MHD_Result import_json(http_req *r, import_ctx *c)
{
    json_error_t err;
    json_t *arr = json_loadb(r->body.data ? r->body.data : "", r->body.len,
                             JSON_REJECT_DUPLICATES, &err);
    if (!arr) {
        char detail[300];
        snprintf(detail, sizeof detail, "The body is not valid UTF-8 JSON: %s (line %d, column %d).",
                 err.text, err.line, err.column);
        for (char *p = detail; *p; p++)
            if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
                *p = '?';
        return http_problem(r, 400, NULL, detail, NULL);
    }
    if (!json_is_array(arr)) {
        json_decref(arr);
        json_t *errors = json_array();
        http_field_error(errors, "body", "must be a JSON array of contacts");
        return http_problem(r, 422, NULL, "The body must be a JSON array of contacts "
                                          "({\"email\", \"data\", \"status\"}) or a text/csv body.",
                            errors);
    }
    if (json_array_size(arr) > JSON_MAX_ITEMS) {
        json_decref(arr);
        char detail[160];
        snprintf(detail, sizeof detail, "A JSON upload takes at most %d contacts; send more "
                                        "as text/csv or in several requests.", JSON_MAX_ITEMS);
        json_t *errors = json_array();
        http_field_error(errors, "body", "has more than %d contacts", JSON_MAX_ITEMS);
        return http_problem(r, 422, NULL, detail, errors);
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        long long row = (long long)i;
        if (!json_is_object(it)) {
            reject(c, row, NULL, "must be an object {\"email\", \"data\", \"status\"}");
            continue;
        }
        const char *k;
        json_t *v;
        int bad = 0;
        json_object_foreach(it, k, v) {
            if (strcmp(k, "email") && strcmp(k, "data") && strcmp(k, "status"))
                bad = 1;
        }
        json_t *je = json_object_get(it, "email"), *jd = json_object_get(it, "data"),
               *js = json_object_get(it, "status");
        if (bad) {
            reject(c, row, NULL, "unknown field (a contact has email, data and status)");
            continue;
        }
        if (!json_is_string(je)) {
            reject(c, row, NULL, "email is required (a string)");
            continue;
        }
        if (jd && !json_is_null(jd) && !json_is_object(jd)) {
            reject(c, row, NULL, "data must be an object");
            continue;
        }
        if (js && !json_is_null(js) && (!json_is_string(js) || !valid_status(json_string_value(js)))) {
            reject(c, row, NULL, "status must be subscribed, unsubscribed, bounced or complained");
            continue;
        }
        if (jd && json_is_object(jd)) {
            char *ds = json_dumps(jd, JSON_COMPACT);
            size_t dl = ds ? strlen(ds) : 0;
            free(ds);
            if (dl > CONTACT_DATA_MAX) {
                reject(c, row, NULL, "data is larger than 64 KB");
                continue;
            }
        }
        if (add_row(c, row, json_string_value(je), json_string_length(je),
                    js && json_is_string(js) ? json_string_value(js) : NULL,
                    jd && json_is_object(jd) ? json_deep_copy(jd) : NULL) != DB_OK)
            break;
    }
    json_decref(arr);
    return import_answer(r, c);
}

/* ---- streamed CSV ---------------------------------------------------------------------- */

static int csv_row(void *ctx, size_t row_no, const char *const *fields, const size_t *lens,
                   size_t nfields, const char *error)
{
    import_ctx *c = ctx;
    if (!c->header_done) {
        c->header_done = 1;
        if (error) {
            snprintf(c->fatal_msg, sizeof c->fatal_msg, "The CSV header row is not valid (%s); "
                     "nothing was stored.", error);
            c->fatal = 1;
            return 1;
        }
        c->colnames = xcalloc(nfields, sizeof *c->colnames);
        c->ncols = nfields;
        for (size_t i = 0; i < nfields; i++) {
            const char *s = fields[i];
            size_t n = lens[i];
            while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
            while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
            c->colnames[i] = xcalloc(n + 1, 1);
            memcpy(c->colnames[i], s, n);
            for (size_t k = 0; k < i; k++)
                if (strcasecmp(c->colnames[k], c->colnames[i]) == 0 && !c->fatal) {
                    snprintf(c->fatal_msg, sizeof c->fatal_msg, "The CSV header names column "
                             "\"%.100s\" twice; nothing was stored.", c->colnames[i]);
                    c->fatal = 1;
                }
            if (strcasecmp(c->colnames[i], "email") == 0)
                c->email_col = (long)i;
            else if (strcasecmp(c->colnames[i], "status") == 0)
                c->status_col = (long)i;
        }
        if (!c->fatal && c->email_col < 0) {
            snprintf(c->fatal_msg, sizeof c->fatal_msg, "The CSV header row has no \"email\" "
                     "column (the first row must name the columns); nothing was stored.");
            c->fatal = 1;
        }
        for (char *p = c->fatal_msg; c->fatal && *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = '?';
        return c->fatal;
    }
    c->rows_read++;
    long long row = (long long)row_no;
    if (error) {
        reject(c, row, NULL, error);
        return 0;
    }
    if (nfields != c->ncols) {
        char reason[120];
        snprintf(reason, sizeof reason, "wrong column count: %zu, the header has %zu", nfields,
                 c->ncols);
        reject(c, row, NULL, reason);
        return 0;
    }
    const char *status = NULL;
    if (c->status_col >= 0 && lens[c->status_col] > 0) {
        status = fields[c->status_col];
        if (!valid_status(status)) {
            reject(c, row, NULL, "status must be subscribed, unsubscribed, bounced or complained");
            return 0;
        }
    }
    json_t *data = json_object();
    for (size_t i = 0; i < nfields; i++) {
        if ((long)i == c->email_col || (long)i == c->status_col || !c->colnames[i][0])
            continue;
        json_object_set_new(data, c->colnames[i], json_stringn(fields[i], lens[i]));
        c->chunk_bytes += lens[i];
    }
    return add_row(c, row, fields[c->email_col], lens[c->email_col], status, data) == DB_OK ? 0 : 1;
}

static enum MHD_Result csv_chunk(http_req *r, const char *data, size_t len)
{
    import_ctx *c = r->ctx;
    c->bytes += (long long)len;
    if (c->fatal || c->over_cap || c->dbst != DB_OK)
        return c->bytes > cfg.csv_max + DISCARD_MAX ? MHD_NO : MHD_YES;
    if (c->bytes > cfg.csv_max) {
        /* the rows wholly before the cap are stored; the partial one is not */
        size_t keep = len - (size_t)(c->bytes - cfg.csv_max);
        if (keep)
            csv_feed(c->csv, data, keep, csv_row, c);
        c->over_cap = 1;
        return MHD_YES;
    }
    csv_feed(c->csv, data, len, csv_row, c);
    return MHD_YES;
}

static int is_csv(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "text/csv", 8) != 0)
        return 0;
    return ct[8] == '\0' || ct[8] == ';' || ct[8] == ' ';
}

enum MHD_Result h_contacts_upload(http_req *r)
{
    if (r->streaming) {   /* before the body: decide how to take it */
        db_status s;
        int f = list_load(r, r->params[0], NULL, &s);
        if (f < 0)
            return db_failure(r, s);
        if (f == 0)
            return http_problem(r, 404, NULL, "No such list.", NULL);
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        if (ct && strncasecmp(ct, "application/json", 16) == 0)
            return MHD_YES;   /* buffered up to the route's cap, then the second call */
        if (!is_csv(ct))
            return http_problem(r, 415, NULL, "Send contacts as application/json (an array) or "
                                              "text/csv (a header row with an email column).", NULL);
        const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end || end == cl || n > (unsigned long long)cfg.csv_max) {
                char detail[200];
                snprintf(detail, sizeof detail, "The CSV body is larger than the limit of %lld "
                         "bytes; nothing was stored.", (long long)cfg.csv_max);
                return http_problem(r, 413, NULL, detail, NULL);
            }
        }
        import_ctx *c = xcalloc(1, sizeof *c);
        import_init(c, r->auth.account_id, r->params[0]);
        c->csv = csv_new(CSV_LINE_MAX, CSV_FIELDS_MAX, CSV_LINE_MAX);
        r->ctx = c;
        r->ctx_free = import_free;
        r->on_chunk = csv_chunk;
        return MHD_YES;
    }
    if (r->on_chunk) {   /* the CSV body is over */
        import_ctx *c = r->ctx;
        if (!c->fatal && !c->over_cap && c->dbst == DB_OK)
            csv_finish(c->csv, csv_row, c);
        if (!c->header_done && !c->fatal) {
            snprintf(c->fatal_msg, sizeof c->fatal_msg, "The CSV body is empty: it needs a "
                     "header row with an email column.");
            c->fatal = 1;
        }
        return import_answer(r, c);
    }
    import_ctx c;
    import_init(&c, r->auth.account_id, r->params[0]);
    enum MHD_Result ret = import_json(r, &c);
    json_decref(c.plain);
    json_decref(c.with_status);
    json_decref(c.rows);
    json_decref(c.rejected);
    return ret;
}

/* ---- reading and deleting contacts ------------------------------------------------------ */

static json_t *contact_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:o, s:s, s:s, s:s}", "email", PQgetvalue(res, i, 0), "data",
                     pg_json(res, i, 1), "status", PQgetvalue(res, i, 2), "created_at",
                     PQgetvalue(res, i, 3), "updated_at", PQgetvalue(res, i, 4));
}

enum MHD_Result h_contacts_list(http_req *r)
{
    db_status s;
    int f = list_load(r, r->params[0], NULL, &s);
    if (f < 0)
        return db_failure(r, s);
    if (f == 0)
        return http_problem(r, 404, NULL, "No such list.", NULL);
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, r->auth.account_id, &limit, &cursor, &done) != 0)
        return done;
    int bad = 0;
    const char *status = http_query(r, "status", &bad);
    if (bad || (status && !valid_status(status))) {
        json_decref(cursor);
        json_t *errors = json_array();
        http_field_error(errors, "status", "must be subscribed, unsubscribed, bounced or complained");
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
    }
    const char *after = "";
    if (cursor && json_is_string(json_array_get(cursor, 0)))
        after = json_string_value(json_array_get(cursor, 0));
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->auth.account_id, r->params[0], after, status ? status : "", lim};
    PGresult *res;
    s = db_exec(db_thread(), ST_CONTACTS_LIST, params, &res);
    json_decref(cursor);
    if (s != DB_OK)
        return db_failure(r, s);
    const int cols[] = {0};
    return query_send_page(r, res, limit, contact_json, r->auth.account_id, cols, 1);
}

/* The {email} path parameter as stored (normalised); 0 when it cannot be an address. */
static int email_param(http_req *r, char out[ADDR_MAX + 1])
{
    addr_t a;
    if (addr_parse(r->params[1], strlen(r->params[1]), &a))
        return 0;
    memcpy(out, a.email, sizeof a.email);
    return 1;
}

enum MHD_Result h_contact_get(http_req *r)
{
    char email[ADDR_MAX + 1];
    if (!email_param(r, email))
        return http_problem(r, 404, NULL, "No such contact.", NULL);
    const char *params[] = {r->auth.account_id, r->params[0], email};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_CONTACT_GET, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such contact.", NULL);
    }
    json_t *out = contact_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_contact_delete(http_req *r)
{
    char email[ADDR_MAX + 1];
    if (!email_param(r, email))
        return http_problem(r, 404, NULL, "No such contact.", NULL);
    const char *params[] = {r->auth.account_id, r->params[0], email};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_CONTACT_DELETE, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (n == 0)
        return http_problem(r, 404, NULL, "No such contact.", NULL);
    return http_send_empty(r, 204);
}
