/* api/lists.c - lists and their contacts: POST/GET /v1/lists, GET/DELETE /v1/lists/{id},
 * POST/GET /v1/lists/{id}/contacts, GET/DELETE /v1/lists/{id}/contacts/{email}.
 * Contacts are upserted by address (domain part normalised by lib/addr) in chunks of at
 * most IMPORT_CHUNK rows per statement, from a JSON array (buffered, up to JSON_MAX_ITEMS)
 * or a streamed text/csv body (BODY_STREAM, driven by api/csvupload.h: parsed by lib/csv as
 * it arrives, never held whole; cap cfg.csv_max). Every answer says what was stored: inserted
 * and updated counts, and the rejected rows (the first CSVUP_REJECT_MAX with reasons, and
 * their count); a body over the cap or a database failure half way answers with the counts
 * stored before it. */
#include "api/csvupload.h"
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/config.h"
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
    static const char *const known[] = {"name", NULL};
    http_unknown_fields(errors, body, known);
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
    if (f <= 0)
        return query_missing(r, f < 0 ? s : DB_OK, "list");
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
    if (f <= 0)
        return query_missing(r, f < 0 ? s : DB_OK, "list");
    return http_problem(r, 409, NULL, "The list is used by a campaign; it cannot be deleted.",
                        NULL);
}

/* ---- contact import: chunks shared by the JSON and CSV paths ---------------------------- */

typedef struct {
    csvupload   up;                /* first: counts, rejections, dbst; the CSV stream */
    char        account_id[40];
    char        list_id[64];
    char        import_id[IDS_MAX];
    /* the chunk being gathered: rows to upsert without and with a status, and
     * address -> row number (duplicates within the chunk, and rows the database skipped) */
    json_t     *plain, *with_status, *rows;
    size_t      chunk_bytes;
    /* CSV */
    size_t      ncols;
    long        email_col, status_col;
    char      **colnames;
} import_ctx;

static void csv_header(csvupload *u, const char *const *fields, const size_t *lens, size_t n);
static void csv_row(csvupload *u, size_t row_no, const char *const *fields, const size_t *lens,
                    size_t nfields);
static void flush(csvupload *u);

static const csvupload_spec contacts_csv = {
    .max_field = CSV_LINE_MAX, .max_fields = CSV_FIELDS_MAX, .max_line = CSV_LINE_MAX,
    .discard_max = DISCARD_MAX, .header = csv_header, .row = csv_row, .flush = flush,
    .detail_counts = 1};

static void import_init(import_ctx *c, const char *account_id, const char *list_id)
{
    memset(c, 0, sizeof *c);
    csvupload_init(&c->up, &contacts_csv);
    snprintf(c->account_id, sizeof c->account_id, "%s", account_id);
    snprintf(c->list_id, sizeof c->list_id, "%s", list_id);
    ids_new("imp_", c->import_id);
    c->plain = json_array();
    c->with_status = json_array();
    c->rows = json_object();
    c->email_col = -1;
    c->status_col = -1;
}

/* Frees what c holds (not c). */
static void import_release(import_ctx *c)
{
    csvupload_release(&c->up);
    json_decref(c->plain);
    json_decref(c->with_status);
    json_decref(c->rows);
    for (size_t i = 0; i < c->ncols; i++)
        free(c->colnames ? c->colnames[i] : NULL);
    free(c->colnames);
}

static void import_free(void *p)
{
    if (!p)
        return;
    import_release(p);
    free(p);
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
            c->up.inserted++;
        else
            c->up.updated++;
        json_object_del(c->rows, PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return DB_OK;
}

/* Writes the gathered chunk (a failure is left in up.dbst). Rows the database did not write
 * were written earlier by this same upload: duplicates. */
static void flush(csvupload *u)
{
    import_ctx *c = (import_ctx *)u;
    if (u->dbst != DB_OK)
        return;
    db_status s = upsert(c, c->plain, 0);
    if (s == DB_OK)
        s = upsert(c, c->with_status, 1);
    if (s != DB_OK) {
        u->dbst = s;
        return;
    }
    const char *email;
    json_t *row;
    json_object_foreach(c->rows, email, row) {
        csvupload_reject(u, json_integer_value(row), email,
                         "duplicate address within this upload");
    }
    json_array_clear(c->plain);
    json_array_clear(c->with_status);
    json_object_clear(c->rows);
    c->chunk_bytes = 0;
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
        csvupload_reject(&c->up, row, NULL, reason);
        json_decref(data);
        return DB_OK;
    }
    json_t *prev = json_object_get(c->rows, a.email);
    if (prev) {
        char reason[120];
        snprintf(reason, sizeof reason, "duplicate address within this upload (first at row %lld)",
                 (long long)json_integer_value(prev));
        csvupload_reject(&c->up, row, a.email, reason);
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
    if (json_object_size(c->rows) >= IMPORT_CHUNK || c->chunk_bytes >= IMPORT_CHUNK_BYTES) {
        flush(&c->up);
        return c->up.dbst;
    }
    return DB_OK;
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
            csvupload_reject(&c->up, row, NULL,
                             "must be an object {\"email\", \"data\", \"status\"}");
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
            csvupload_reject(&c->up, row, NULL,
                             "unknown field (a contact has email, data and status)");
            continue;
        }
        if (!json_is_string(je)) {
            csvupload_reject(&c->up, row, NULL, "email is required (a string)");
            continue;
        }
        if (jd && !json_is_null(jd) && !json_is_object(jd)) {
            csvupload_reject(&c->up, row, NULL, "data must be an object");
            continue;
        }
        if (js && !json_is_null(js) && (!json_is_string(js) || !valid_status(json_string_value(js)))) {
            csvupload_reject(&c->up, row, NULL,
                             "status must be subscribed, unsubscribed, bounced or complained");
            continue;
        }
        if (jd && json_is_object(jd)) {
            char *ds = json_dumps(jd, JSON_COMPACT);
            size_t dl = ds ? strlen(ds) : 0;
            free(ds);
            if (dl > CONTACT_DATA_MAX) {
                csvupload_reject(&c->up, row, NULL, "data is larger than 64 KB");
                continue;
            }
        }
        if (add_row(c, row, json_string_value(je), json_string_length(je),
                    js && json_is_string(js) ? json_string_value(js) : NULL,
                    jd && json_is_object(jd) ? json_deep_copy(jd) : NULL) != DB_OK)
            break;
    }
    json_decref(arr);
    return csvupload_answer(r, &c->up);
}

/* ---- streamed CSV (api/csvupload.h) ----------------------------------------------------- */

static void csv_header(csvupload *u, const char *const *fields, const size_t *lens, size_t n)
{
    import_ctx *c = (import_ctx *)u;
    c->colnames = xcalloc(n, sizeof *c->colnames);
    c->ncols = n;
    for (size_t i = 0; i < n; i++) {
        const char *s = fields[i];
        size_t l = lens[i];
        while (l && (*s == ' ' || *s == '\t')) { s++; l--; }
        while (l && (s[l - 1] == ' ' || s[l - 1] == '\t')) l--;
        c->colnames[i] = xcalloc(l + 1, 1);
        memcpy(c->colnames[i], s, l);
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(c->colnames[k], c->colnames[i]) == 0)
                csvupload_fatal(u, "The CSV header names column \"%.100s\" twice; nothing was "
                                "stored.", c->colnames[i]);
        if (strcasecmp(c->colnames[i], "email") == 0)
            c->email_col = (long)i;
        else if (strcasecmp(c->colnames[i], "status") == 0)
            c->status_col = (long)i;
    }
    if (c->email_col < 0)
        csvupload_fatal(u, "The CSV header row has no \"email\" column (the first row must name "
                        "the columns); nothing was stored.");
}

static void csv_row(csvupload *u, size_t row_no, const char *const *fields, const size_t *lens,
                    size_t nfields)
{
    import_ctx *c = (import_ctx *)u;
    long long row = (long long)row_no;
    if (nfields != c->ncols) {
        char reason[120];
        snprintf(reason, sizeof reason, "wrong column count: %zu, the header has %zu", nfields,
                 c->ncols);
        csvupload_reject(u, row, NULL, reason);
        return;
    }
    const char *status = NULL;
    if (c->status_col >= 0 && lens[c->status_col] > 0) {
        status = fields[c->status_col];
        if (!valid_status(status)) {
            csvupload_reject(u, row, NULL, "status must be subscribed, unsubscribed, bounced or "
                             "complained");
            return;
        }
    }
    json_t *data = json_object();
    for (size_t i = 0; i < nfields; i++) {
        if ((long)i == c->email_col || (long)i == c->status_col || !c->colnames[i][0])
            continue;
        json_object_set_new(data, c->colnames[i], json_stringn(fields[i], lens[i]));
        c->chunk_bytes += lens[i];
    }
    add_row(c, row, fields[c->email_col], lens[c->email_col], status, data);
}

enum MHD_Result h_contacts_upload(http_req *r)
{
    if (r->streaming) {   /* before the body: decide how to take it */
        db_status s;
        int f = list_load(r, r->params[0], NULL, &s);
        if (f <= 0)
            return query_missing(r, f < 0 ? s : DB_OK, "list");
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        if (ct && strncasecmp(ct, "application/json", 16) == 0)
            return MHD_YES;   /* buffered up to the route's cap, then the second call */
        if (!csvupload_is_csv(ct))
            return http_problem(r, 415, NULL, "Send contacts as application/json (an array) or "
                                              "text/csv (a header row with an email column).", NULL);
        import_ctx *c = xcalloc(1, sizeof *c);
        import_init(c, r->auth.account_id, r->params[0]);
        return csvupload_start(r, c, import_free);
    }
    if (r->on_chunk)   /* the CSV body is over */
        return csvupload_finish(r, r->ctx);
    import_ctx c;
    import_init(&c, r->auth.account_id, r->params[0]);
    enum MHD_Result ret = import_json(r, &c);
    import_release(&c);
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
    if (f <= 0)
        return query_missing(r, f < 0 ? s : DB_OK, "list");
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, r->auth.account_id, &limit, &cursor, &done) != 0)
        return done;
    const char *status;
    json_t *errors = json_array();
    query_enum(r, errors, "status", contact_statuses,
               "must be subscribed, unsubscribed, bounced or complained", &status);
    if (json_array_size(errors) > 0) {
        json_decref(cursor);
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
    }
    json_decref(errors);
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
