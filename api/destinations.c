/* api/destinations.c - the operator's view of delivery destinations (MX sites), instance-wide:
 * GET /v1/destinations aggregates what the workers publish (db/queue.h,
 * queue_destinations_publish) with the deferred deliveries waiting for each destination;
 * POST /v1/destinations/{name}/pause|resume|retry set the controls the workers poll. */
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEST_NAME_MAX 253
#define DEST_LABEL_MAX 63

/* A lower-case host name: dot-separated labels of a-z, 0-9 and inner '-', each 1..63
 * bytes, 253 in all, no trailing dot. */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DEST_NAME_MAX)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > DEST_LABEL_MAX || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0);
        if (!ok)
            return 0;
        label++;
    }
    return 1;
}

/* 422 for a name that is not a lower-case host name; 0 when it is. */
static int check_name(http_req *r, enum MHD_Result *done)
{
    if (valid_name(r->params[0]))
        return 0;
    json_t *errors = json_array();
    http_field_error(errors, "name", "must be a lower-case host name (at most %d bytes)",
                     DEST_NAME_MAX);
    *done = http_problem(r, 422, NULL, "Invalid destination name.", errors);
    return -1;
}

/* Columns of ST_DEST_LIST: name, state, queued, deferred, active, last_error, paused,
 * updated_at. */
static json_t *dest_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o}", "name", PQgetvalue(res, i, 0),
                     "state", PQgetvalue(res, i, 1), "queued", pg_int(res, i, 2), "deferred",
                     pg_int(res, i, 3), "active", pg_int(res, i, 4), "last_error",
                     pg_str(res, i, 5), "paused", strcmp(PQgetvalue(res, i, 6), "t") == 0,
                     "updated_at", pg_str(res, i, 7));
}

enum MHD_Result h_destinations_list(http_req *r)
{
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, "operator", &limit, &cursor, &done) != 0)
        return done;
    const char *after = "";
    if (cursor && json_is_string(json_array_get(cursor, 0)))
        after = json_string_value(json_array_get(cursor, 0));
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {after, lim, ""};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_DEST_LIST, params, &res);
    if (s != DB_OK) {
        json_decref(cursor);
        return db_failure(r, s);
    }
    json_decref(cursor);
    const int cols[] = {0};
    return query_send_page(r, res, limit, dest_json, "operator", cols, 1);
}

/* Answers the one destination r->params[0] (known or not). */
static enum MHD_Result send_one(http_req *r)
{
    const char *params[] = {"", "1", r->params[0]};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_DEST_LIST, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return db_failure(r, DB_ERROR);
    }
    json_t *body = dest_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, body);
}

static enum MHD_Result set_paused(http_req *r, const char *paused)
{
    enum MHD_Result done;
    if (check_name(r, &done) != 0)
        return done;
    const char *params[] = {r->params[0], paused};
    db_status s = db_exec(db_thread(), ST_DEST_SET_PAUSED, params, NULL);
    if (s != DB_OK)
        return db_failure(r, s);
    return send_one(r);
}

enum MHD_Result h_destination_pause(http_req *r) { return set_paused(r, "true"); }
enum MHD_Result h_destination_resume(http_req *r) { return set_paused(r, "false"); }

enum MHD_Result h_destination_retry(http_req *r)
{
    enum MHD_Result done;
    if (check_name(r, &done) != 0)
        return done;
    const char *params[] = {r->params[0]};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_DEST_RETRY, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    long long n = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return http_send_json(r, 200, json_pack("{s:s, s:I}", "name", r->params[0], "retried",
                                            (json_int_t)n));
}
