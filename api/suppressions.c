/* api/suppressions.c - GET/POST /v1/suppressions, DELETE /v1/suppressions/{email}.
 * Entries are per stream (transactional, broadcast, or all); addresses are stored and
 * compared lower-cased, as every mailbox provider treats them. */
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 1000

static int valid_stream(const char *s)
{
    return strcmp(s, "transactional") == 0 || strcmp(s, "broadcast") == 0 || strcmp(s, "all") == 0;
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
    int bad = 0;
    const char *stream = http_query(r, "stream", &bad);
    if (bad || (stream && !valid_stream(stream))) {
        json_decref(cursor);
        json_t *errors = json_array();
        http_field_error(errors, "stream", "must be transactional, broadcast or all");
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
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

    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "email") && strcmp(k, "stream") && strcmp(k, "reason"))
            http_field_error(errors, k, "unknown field");
    }
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
    int bad = 0;
    const char *stream = http_query(r, "stream", &bad);
    if (bad || (stream && !valid_stream(stream))) {
        json_t *errors = json_array();
        http_field_error(errors, "stream", "must be transactional, broadcast or all");
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
    }
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
