/* api/campaigns.c - POST/GET /v1/campaigns, GET /v1/campaigns/{id},
 * POST /v1/campaigns/{id}/send|pause|resume|cancel.
 * A campaign is validated with the send path's checks (api/messages.h: From rule, template
 * syntax or stored template reference; message_headers_check) and stored as a draft. send
 * makes the campaign's one messages row (content stored once) and turns it to sending
 * (scheduled while send_at is ahead); the workers' expander (worker/campaigns.h) then makes
 * one delivery per subscribed contact. progress comes from campaign_counters, kept by triggers as rows change. */
#include "api/handlers.h"
#include "api/messages.h"
#include "api/query.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/addr.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN      200
#define RATE_MAX          1000000

static const char *const known_fields[] = {
    "name", "list_id", "from", "subject", "html", "text", "template", "data", "send_at",
    "rate_per_minute", "tracking", "headers", NULL};

/* ---- answers ------------------------------------------------------------------------ */

static json_t *num(PGresult *res, int i, int col)
{
    return json_integer((json_int_t)strtoll(PQgetvalue(res, i, col), NULL, 10));
}

static json_t *opt_str(PGresult *res, int i, int col)
{
    const char *v = PQgetvalue(res, i, col);
    return *v ? json_string(v) : json_null();
}

/* A ST_CAMP_GET / ST_CAMP_LIST row (columns in db/stmts.c). */
static json_t *campaign_json(PGresult *res, int i)
{
    json_t *content = pg_json(res, i, 4);
    json_t *out = json_pack("{s:s, s:s, s:s, s:s}", "id", PQgetvalue(res, i, 0), "name",
                            PQgetvalue(res, i, 1), "list_id", PQgetvalue(res, i, 2), "state",
                            PQgetvalue(res, i, 3));
    const char *fe = json_string_value(json_object_get(content, "from_email"));
    json_t *fn = json_object_get(content, "from_name");
    json_object_set_new(out, "from", json_pack("{s:s, s:O}", "email", fe ? fe : "", "name",
                                                fn ? fn : json_null()));
    json_t *c = json_object_get(content, "content");
    const char *k;
    json_t *v;
    json_object_foreach(c, k, v) {
        json_object_set(out, k, v);
    }
    json_t *hdrs = json_object();
    size_t hi;
    json_t *pair;
    json_array_foreach(json_object_get(content, "headers"), hi, pair) {
        json_object_set(hdrs, json_string_value(json_array_get(pair, 0)), json_array_get(pair, 1));
    }
    json_object_set_new(out, "headers", hdrs);
    json_decref(content);
    json_object_set_new(out, "data", pg_json(res, i, 5));
    json_object_set_new(out, "send_at", opt_str(res, i, 6));
    json_object_set_new(out, "rate_per_minute", pg_int(res, i, 7));
    json_object_set_new(out, "tracking", pg_json(res, i, 8));
    json_object_set_new(out, "created_at", json_string(PQgetvalue(res, i, 9)));
    json_object_set_new(out, "updated_at", json_string(PQgetvalue(res, i, 10)));
    json_object_set_new(out, "started_at", opt_str(res, i, 11));
    json_object_set_new(out, "finished_at", opt_str(res, i, 12));
    static const char *const names[] = {"total", "queued", "sending", "deferred", "delivered",
                                        "bounced", "failed", "expired", "suppressed",
                                        "cancelled", "opened", "clicked", "unsubscribed",
                                        "complained"};
    json_t *p = json_object();
    for (int n = 0; n < 14; n++)
        json_object_set_new(p, names[n], num(res, i, 15 + n));
    json_object_set_new(p, "skipped", num(res, i, 14));
    json_object_set_new(p, "expanded", json_boolean(strcmp(PQgetvalue(res, i, 13), "t") == 0));
    json_object_set_new(out, "progress", p);
    return out;
}

/* Answers the campaign (status), or 404. */
static enum MHD_Result send_campaign(http_req *r, const char *id, unsigned status)
{
    const char *params[] = {r->auth.account_id, id};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_CAMP_GET, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such campaign.", NULL);
    }
    json_t *out = campaign_json(res, 0);
    PQclear(res);
    return http_send_json(r, status, out);
}

/* ---- handlers ------------------------------------------------------------------------- */

enum MHD_Result h_campaigns_create(http_req *r)
{
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    msgv v = {json_array(), "", MSGV_CAMPAIGN};
    db_status dbst = DB_OK;
    msgv_unknown_fields(&v, body, known_fields);
    json_t *jn = json_object_get(body, "name");
    if (!json_is_string(jn) || json_string_length(jn) < 1 ||
        json_string_length(jn) > NAME_MAX_LEN ||
        !mime_header_value_valid(json_string_value(jn), json_string_length(jn)))
        msgv_err(&v, "name", "is required: 1 to %d characters without control characters",
                 NAME_MAX_LEN);
    json_t *jl = json_object_get(body, "list_id");
    if (!json_is_string(jl) || !ids_valid("lst_", json_string_value(jl)))
        msgv_err(&v, "list_id", "is required: the id of one of this account's lists (lst_...)");

    addr_t from;
    char from_name[257];
    msgv_from(&v, body, r->auth.account_id, &from, from_name, sizeof from_name, &dbst);
    json_t *content = json_object();
    msgv_content(&v, body, r->auth.account_id, content, &dbst);
    json_t *data = json_object_get(body, "data");
    char send_at[32] = "";
    json_t *jsa = json_object_get(body, "send_at");
    if (jsa && !json_is_null(jsa))
        msgv_send_at(&v, jsa, send_at);
    char rate[24] = "";
    json_t *jr = json_object_get(body, "rate_per_minute");
    if (jr && !json_is_null(jr)) {
        if (!json_is_integer(jr) || json_integer_value(jr) < 1 || json_integer_value(jr) > RATE_MAX)
            msgv_err(&v, "rate_per_minute", "must be an integer from 1 to %d", RATE_MAX);
        else
            snprintf(rate, sizeof rate, "%lld", (long long)json_integer_value(jr));
    }
    json_t *tracking = json_object_get(body, "tracking");
    if (tracking && !json_is_null(tracking))
        msgv_tracking(&v, tracking);
    json_t *headers = json_array();
    if (json_object_get(body, "headers"))
        message_headers_check(v.errors, json_object_get(body, "headers"), headers);

    if (dbst != DB_OK || json_array_size(v.errors)) {
        json_decref(content);
        json_decref(headers);
        json_decref(body);
        if (dbst != DB_OK) {
            json_decref(v.errors);
            return db_failure(r, dbst);
        }
        return http_problem(r, 422, NULL, "The campaign is not valid.", v.errors);
    }
    json_t *stored = json_pack("{s:s, s:o, s:b, s:o, s:o}", "from_email", from.email, "from_name",
                               *from_name ? json_string(from_name) : json_null(), "smtputf8",
                               from.smtputf8, "content", content, "headers", headers);
    json_t *empty = json_object();
    char *cs = json_dumps(stored, JSON_COMPACT);
    char *ds = json_dumps(data && json_is_object(data) ? data : empty, JSON_COMPACT);
    char *ts = json_dumps(tracking && json_is_object(tracking) ? tracking : empty, JSON_COMPACT);
    json_decref(empty);
    json_decref(stored);
    char id[IDS_MAX];
    ids_new("cmp_", id);
    const char *params[] = {r->auth.account_id, id, json_string_value(jn), json_string_value(jl),
                            cs, ds, send_at, rate, ts};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_CAMP_INSERT, params, &res);
    free(cs);
    free(ds);
    free(ts);
    json_decref(body);
    if (s != DB_OK) {
        json_decref(v.errors);
        return db_failure(r, s);
    }
    int found = PQntuples(res) == 1;
    PQclear(res);
    if (!found) {
        msgv_err(&v, "list_id", "no such list in this account");
        return http_problem(r, 422, NULL, "The campaign is not valid.", v.errors);
    }
    json_decref(v.errors);
    return send_campaign(r, id, 201);
}

enum MHD_Result h_campaigns_list(http_req *r)
{
    return query_keyset_page(r, ST_CAMP_LIST, campaign_json, 29);
}

enum MHD_Result h_campaign_get(http_req *r)
{
    return send_campaign(r, r->params[0], 200);
}

/* A transition that found no row: 404 for another account's or no campaign, else 409. */
static enum MHD_Result not_now(http_req *r, const char *action, const char *allowed)
{
    const char *params[] = {r->auth.account_id, r->params[0]};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_CAMP_GET, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such campaign.", NULL);
    }
    char detail[200];
    snprintf(detail, sizeof detail, "The campaign is %s; only a campaign that is %s can be %s.",
             PQgetvalue(res, 0, 3), allowed, action);
    PQclear(res);
    return http_problem(r, 409, NULL, detail, NULL);
}

/* st moves the campaign (first column of its row, or its command count, says whether it
 * did); then follow (when not -1) brings its deliveries along in a statement of its own. */
static enum MHD_Result transition(http_req *r, db_stmt st, int follow, const char *action,
                                  const char *allowed)
{
    char msg_id[IDS_MAX], life[32];
    ids_new("msg_", msg_id);
    snprintf(life, sizeof life, "%lld", (long long)(cfg.max_queue_lifetime_ms / 1000));
    const char *third = st == ST_CAMP_SEND ? msg_id : life;
    const char *params[] = {r->auth.account_id, r->params[0], third};
    PGresult *res;
    db_status s = db_exec(db_thread(), st, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    int moved = PQresultStatus(res) == PGRES_TUPLES_OK
                    ? PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0
                    : strtol(PQcmdTuples(res), NULL, 10) > 0;
    PQclear(res);
    if (!moved)
        return not_now(r, action, allowed);
    if (follow >= 0) {
        s = db_exec(db_thread(), (db_stmt)follow, params, NULL);
        if (s != DB_OK)   /* the state changed; a retry of the same action finishes this */
            return db_failure(r, s);
        if (follow == ST_CAMP_CANCEL_DLV)
            redis_note_events(redis_thread());   /* the 'cancelled' events, for webhooks now */
    }
    return send_campaign(r, r->params[0], 200);
}

enum MHD_Result h_campaign_send(http_req *r)
{
    if (!ids_valid("cmp_", r->params[0]))
        return http_problem(r, 404, NULL, "No such campaign.", NULL);
    return transition(r, ST_CAMP_SEND, -1, "sent", "a draft");
}

enum MHD_Result h_campaign_pause(http_req *r)
{
    return transition(r, ST_CAMP_PAUSE, ST_CAMP_PARK, "paused", "sending, scheduled or paused");
}

enum MHD_Result h_campaign_resume(http_req *r)
{
    return transition(r, ST_CAMP_RESUME, -1, "resumed", "paused");
}

enum MHD_Result h_campaign_cancel(http_req *r)
{
    return transition(r, ST_CAMP_CANCEL, ST_CAMP_CANCEL_DLV, "cancelled",
                      "a draft, scheduled, sending, paused or cancelled");
}
