#include "api/query.h"
#include "api/cursor.h"
#include "api/handlers.h"
#include "db/db.h"
#include "lib/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void query_limit(http_req *r, json_t *errors, int *limit)
{
    int bad = 0;
    *limit = 50;
    const char *l = http_query(r, "limit", &bad);
    if (!l && !bad)
        return;
    char *end = NULL;
    long v = l ? strtol(l, &end, 10) : 0;
    if (!l || *end || end == l || v < 1 || v > 1000)
        http_field_error(errors, "limit", "must be an integer from 1 to 1000");
    else
        *limit = (int)v;
}

void query_enum(http_req *r, json_t *errors, const char *name, const char *const *allowed,
                const char *message, const char **out)
{
    int bad = 0;
    *out = http_query(r, name, &bad);
    int ok = !bad;
    if (*out) {
        ok = 0;
        for (int i = 0; allowed[i]; i++)
            ok |= strcmp(*out, allowed[i]) == 0;
    }
    if (!ok) {
        http_field_error(errors, name, "%s", message);
        *out = NULL;
    }
}

int query_recipient(http_req *r, json_t *errors, addr_t *out)
{
    int bad = 0;
    const char *rcpt = http_query(r, "recipient", &bad);
    if (bad || (rcpt && addr_parse(rcpt, strlen(rcpt), out) != NULL)) {
        http_field_error(errors, "recipient", "must be an email address");
        return 0;
    }
    return rcpt != NULL;
}

void query_time_range(http_req *r, json_t *errors, char since[32], char until[32])
{
    const char *names[] = {"since", "until"};
    char *outs[] = {since, until};
    for (int i = 0; i < 2; i++) {
        int bad = 0;
        const char *t = http_query(r, names[i], &bad);
        int64_t ms;
        outs[i][0] = '\0';
        if (bad || (t && time_parse_rfc3339(t, strlen(t), &ms) != 0))
            http_field_error(errors, names[i], "must be an RFC 3339 date-time");
        else if (t)
            time_format_rfc3339(ms, outs[i]);
    }
}

int list_params(http_req *r, const char *account_id, int *limit, json_t **cursor,
                enum MHD_Result *done)
{
    json_t *errors = json_array();
    int bad = 0;
    query_limit(r, errors, limit);
    *cursor = NULL;
    const char *c = http_query(r, "cursor", &bad);
    if (c || bad) {
        *cursor = c ? cursor_decode(account_id, c) : NULL;
        if (!*cursor)
            http_field_error(errors, "cursor", "is not a cursor issued to this account");
    }
    if (json_array_size(errors) > 0) {
        json_decref(*cursor);
        *cursor = NULL;
        *done = http_problem(r, 422, NULL, "Invalid query parameters.", errors);
        return -1;
    }
    json_decref(errors);
    return 0;
}

enum MHD_Result db_failure(http_req *r, int s)
{
    if (s == DB_DOWN) {
        http_add_header(r, "Retry-After", "1");
        return http_problem(r, 503, NULL, "The database is unavailable; retry shortly.", NULL);
    }
    return http_problem(r, 500, NULL, "Internal error; it has been logged.", NULL);
}

enum MHD_Result query_keyset_page(http_req *r, int st, json_t *(*row_json)(PGresult *, int),
                                  int ts_col)
{
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, r->auth.account_id, &limit, &cursor, &done) != 0)
        return done;
    const char *c_ts = "", *c_id = "";
    if (cursor) {
        json_t *a = json_array_get(cursor, 0), *b = json_array_get(cursor, 1);
        if (json_is_string(a) && json_is_string(b)) {
            c_ts = json_string_value(a);
            c_id = json_string_value(b);
        }
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->auth.account_id, c_ts, c_id, lim};
    PGresult *res;
    db_status s = db_exec(db_thread(), (db_stmt)st, params, &res);
    if (s != DB_OK) {
        json_decref(cursor);
        return db_failure(r, s);
    }
    json_decref(cursor);
    const int cols[] = {ts_col, 0};
    return query_send_page(r, res, limit, row_json, r->auth.account_id, cols, 2);
}

enum MHD_Result query_send_page(http_req *r, PGresult *res, int limit,
                                json_t *(*row_json)(PGresult *, int), const char *cursor_owner,
                                const int *cursor_cols, int ncols)
{
    json_t *data = json_array();
    int n = PQntuples(res);
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(data, row_json(res, i));
    json_t *next = json_null();
    if (n > limit) {
        json_t *cv = json_array();
        for (int k = 0; k < ncols; k++)
            json_array_append_new(cv, json_string(PQgetvalue(res, limit - 1, cursor_cols[k])));
        char *c = cursor_encode(cursor_owner, cv);
        json_decref(cv);
        next = json_string(c);
        free(c);
    }
    PQclear(res);
    return http_send_json(r, 200, json_pack("{s:o, s:o}", "data", data, "next_cursor", next));
}


json_t *pg_json(PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    json_t *j = json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, NULL);
    return j ? j : json_null();
}

json_t *pg_str(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

json_t *pg_int(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null()
                                      : json_integer(strtol(PQgetvalue(res, row, col), NULL, 10));
}

enum MHD_Result query_missing(http_req *r, db_status s, const char *what)
{
    if (s != DB_OK)
        return db_failure(r, s);
    char detail[64];
    snprintf(detail, sizeof detail, "No such %s.", what);
    return http_problem(r, 404, NULL, detail, NULL);
}

enum MHD_Result query_delete_owned(http_req *r, int st, const char *what)
{
    const char *params[] = {r->auth.account_id, r->params[0]};
    PGresult *res;
    db_status s = db_exec(db_thread(), (db_stmt)st, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (n == 0)
        return query_missing(r, DB_OK, what);
    return http_send_empty(r, 204);
}

const char *const query_event_types[] = {"queued", "suppressed", "delivered", "deferred",
                                         "bounced", "failed", "expired", "cancelled", "opened",
                                         "clicked", "unsubscribed", "complained", NULL};

int query_event_id(const char *s, char xid[24], char seq[24])
{
    if (strncmp(s, "evt_", 4) != 0)
        return -1;
    const char *p = s + 4, *us = strchr(p, '_');
    if (!us || us == p || us - p > 20 || strlen(us + 1) == 0 || strlen(us + 1) > 19)
        return -1;
    for (const char *q = p; *q; q++)
        if (q != us && (*q < '0' || *q > '9'))
            return -1;
    memcpy(xid, p, (size_t)(us - p));
    xid[us - p] = '\0';
    snprintf(seq, 24, "%s", us + 1);
    return 0;
}
