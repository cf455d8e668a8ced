/* api/accounts.c - GET /v1/account (the key's own account) and GET /v1/accounts (operator). */
#include "api/auth.h"
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum MHD_Result h_account_get(http_req *r)
{
    const char *params[] = {r->auth.account_id};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_ACCOUNT_GET, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such account.", NULL);
    }
    json_t *key = json_pack("{s:s, s:o, s:o, s:i}", "prefix", r->auth.key_prefix, "name",
                            r->auth.key_name[0] ? json_string(r->auth.key_name) : json_null(),
                            "scopes", auth_scopes_json(r->auth.scopes), "rate_per_second",
                            r->auth.rate);
    json_t *body = json_pack("{s:s, s:s, s:s, s:o}", "id", PQgetvalue(res, 0, 0), "name",
                             PQgetvalue(res, 0, 1), "created_at", PQgetvalue(res, 0, 2), "key", key);
    PQclear(res);
    return http_send_json(r, 200, body);
}

static json_t *account_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:s}", "id", PQgetvalue(res, i, 0), "name",
                     PQgetvalue(res, i, 1), "created_at", PQgetvalue(res, i, 2));
}

enum MHD_Result h_accounts_list(http_req *r)
{
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, "operator", &limit, &cursor, &done) != 0)
        return done;
    const char *after_ts = "", *after_id = "";
    if (cursor && json_is_string(json_array_get(cursor, 0)) &&
        json_is_string(json_array_get(cursor, 1))) {
        after_ts = json_string_value(json_array_get(cursor, 0));
        after_id = json_string_value(json_array_get(cursor, 1));
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {after_ts, after_id, lim};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_ACCOUNT_LIST, params, &res);
    if (s != DB_OK) {
        json_decref(cursor);
        return db_failure(r, s);
    }
    json_decref(cursor);
    const int cols[] = {3, 0};
    return query_send_page(r, res, limit, account_json, "operator", cols, 2);
}

