/* api/campaigns.c - POST/GET /v1/campaigns, GET /v1/campaigns/{id},
 * POST /v1/campaigns/{id}/send|pause|resume|cancel.
 * A campaign is validated like POST /v1/messages (From rule, template syntax or stored
 * template reference, header rules) and stored as a draft. send makes the campaign's one
 * messages row (content stored once) and turns it to sending (scheduled while send_at is
 * ahead); the workers' expander (worker/campaigns.h) then makes one delivery per subscribed
 * contact. progress comes from campaign_counters, kept by triggers as rows change. */
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mime.h"
#include "lib/template.h"
#include "lib/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN      200
#define MAX_SUBJECT       998
#define MAX_CONTENT_BYTES (40L * 1024 * 1024)
#define RATE_MAX          1000000
#define SEND_AT_PAST_MS   (60LL * 1000)
#define SEND_AT_FUTURE_MS (30LL * 24 * 3600 * 1000)

static const char *const known_fields[] = {
    "name", "list_id", "from", "subject", "html", "text", "template", "data", "send_at",
    "rate_per_minute", "tracking", "headers", NULL};

static void ferr(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ferr(json_t *errors, const char *field, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", msg));
}

static int template_ok(json_t *errors, const char *field, json_t *j, size_t max)
{
    if (!json_is_string(j)) {
        ferr(errors, field, "must be a string");
        return 0;
    }
    size_t n = json_string_length(j);
    if (n > max) {
        ferr(errors, field, "is longer than %zu octets", max);
        return 0;
    }
    if (memchr(json_string_value(j), '\0', n)) {
        ferr(errors, field, "must not contain NUL");
        return 0;
    }
    char err[256];
    if (tpl_check(json_string_value(j), n, err, sizeof err) != 0) {
        ferr(errors, field, "template error: %s", err);
        return 0;
    }
    return 1;
}

/* from: "a@b", "Name <a@b>" or {"email","name"}. */
static int check_from(json_t *errors, json_t *j, addr_t *a, char *name, size_t name_max)
{
    name[0] = '\0';
    if (json_is_string(j)) {
        const char *why = addr_parse_mailbox(json_string_value(j), json_string_length(j), a,
                                             name, name_max);
        if (why) {
            ferr(errors, "from", "is not a valid address: %s", why);
            return -1;
        }
        return 0;
    }
    if (!json_is_object(j)) {
        ferr(errors, "from", "must be an address string or an object with email and name");
        return -1;
    }
    const char *k;
    json_t *v;
    int bad = 0;
    json_object_foreach(j, k, v) {
        if (strcmp(k, "email") && strcmp(k, "name")) {
            ferr(errors, "from", "unknown field %.60s", k);
            bad = 1;
        }
    }
    json_t *e = json_object_get(j, "email"), *n = json_object_get(j, "name");
    const char *why = json_is_string(e) ? addr_parse(json_string_value(e), json_string_length(e), a)
                                        : "must be a string";
    if (why) {
        ferr(errors, "from.email", "is not a valid address: %s", why);
        bad = 1;
    }
    if (n && !json_is_null(n)) {
        if (!json_is_string(n) || !addr_name_valid(json_string_value(n), json_string_length(n)) ||
            json_string_length(n) >= name_max) {
            ferr(errors, "from.name", "must be a string of at most 256 octets without control "
                                      "characters");
            bad = 1;
        } else {
            memcpy(name, json_string_value(n), json_string_length(n) + 1);
        }
    }
    return bad ? -1 : 0;
}

/* template: {"id"} or {"name"}, optional "version": resolved to id and concrete version. */
static void check_template(json_t *errors, json_t *jt, const char *account_id, json_t *content,
                           db_status *dbst)
{
    if (!json_is_object(jt)) {
        ferr(errors, "template", "must be an object with name or id, and optionally version");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(jt, k, v) {
        if (strcmp(k, "name") && strcmp(k, "id") && strcmp(k, "version")) {
            ferr(errors, "template", "unknown field %.60s", k);
            return;
        }
    }
    json_t *jn = json_object_get(jt, "name"), *ji = json_object_get(jt, "id"),
           *jv = json_object_get(jt, "version");
    if ((jn != NULL) == (ji != NULL)) {
        ferr(errors, "template", "takes exactly one of name or id");
        return;
    }
    json_t *js = jn ? jn : ji;
    if (!json_is_string(js) || json_string_length(js) == 0 || json_string_length(js) > 100 ||
        strlen(json_string_value(js)) != json_string_length(js)) {
        ferr(errors, jn ? "template.name" : "template.id", "must be a non-empty string");
        return;
    }
    char version[24] = "";
    if (jv && !json_is_null(jv)) {
        if (!json_is_integer(jv) || json_integer_value(jv) < 1 ||
            json_integer_value(jv) > 2147483647) {
            ferr(errors, "template.version", "must be an integer of at least 1");
            return;
        }
        snprintf(version, sizeof version, "%lld", (long long)json_integer_value(jv));
    }
    const char *params[] = {account_id, ji ? json_string_value(ji) : "",
                            jn ? json_string_value(jn) : "", version};
    PGresult *res;
    db_status st = db_exec(db_thread(), ST_TPL_RESOLVE, params, &res);
    if (st != DB_OK) {
        *dbst = st;
        return;
    }
    if (PQntuples(res) != 1)
        ferr(errors, "template", "no such template in this account");
    else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0)
        ferr(errors, "template", "no version %s", PQgetvalue(res, 0, 1));
    else
        json_object_set_new(content, "template",
                            json_pack("{s:s, s:I}", "id", PQgetvalue(res, 0, 0), "version",
                                      (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
    PQclear(res);
}

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
    json_t *errors = json_array();
    db_status dbst = DB_OK;
    const char *k;
    json_t *val;
    json_object_foreach(body, k, val) {
        int known = 0;
        for (int i = 0; known_fields[i]; i++)
            known |= strcmp(k, known_fields[i]) == 0;
        if (!known)
            ferr(errors, k, "unknown field");
    }
    json_t *jn = json_object_get(body, "name");
    if (!json_is_string(jn) || json_string_length(jn) < 1 ||
        json_string_length(jn) > NAME_MAX_LEN ||
        !mime_header_value_valid(json_string_value(jn), json_string_length(jn)))
        ferr(errors, "name", "is required: 1 to %d characters without control characters",
             NAME_MAX_LEN);
    json_t *jl = json_object_get(body, "list_id");
    if (!json_is_string(jl) || !ids_valid("lst_", json_string_value(jl)))
        ferr(errors, "list_id", "is required: the id of one of this account's lists (lst_...)");

    addr_t from;
    char from_name[257] = "";
    json_t *jf = json_object_get(body, "from");
    int from_ok = 0;
    if (!jf)
        ferr(errors, "from", "is required");
    else
        from_ok = check_from(errors, jf, &from, from_name, sizeof from_name) == 0;
    if (from_ok && !cfg.allow_unverified) {
        const char *dom = strrchr(from.email, '@') + 1;
        const char *params[] = {r->auth.account_id, dom};
        PGresult *res;
        db_status s = db_exec(db_thread(), ST_DOM_FROM_VERIFIED, params, &res);
        if (s != DB_OK)
            dbst = s;
        else {
            if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
                ferr(errors, "from", "%s is not a verified sending domain of this account (add it "
                                     "with POST /v1/domains, publish its records, then verify it)",
                     dom);
            PQclear(res);
        }
    }

    json_t *content = json_object();
    json_t *jt = json_object_get(body, "template");
    json_t *jsub = json_object_get(body, "subject"), *jh = json_object_get(body, "html"),
           *jx = json_object_get(body, "text");
    if (jt) {
        if (jsub || jh || jx)
            ferr(errors, "template", "cannot be combined with subject, html or text");
        else if (dbst == DB_OK)
            check_template(errors, jt, r->auth.account_id, content, &dbst);
    } else {
        if (!jsub)
            ferr(errors, "subject", "is required (or use template)");
        else if (template_ok(errors, "subject", jsub, MAX_SUBJECT)) {
            if (!mime_header_value_valid(json_string_value(jsub), json_string_length(jsub)))
                ferr(errors, "subject", "must not contain CR, LF, NUL or other control characters");
            else
                json_object_set(content, "subject", jsub);
        }
        if ((!jh || json_is_null(jh)) && (!jx || json_is_null(jx)))
            ferr(errors, "html", "html or text is required");
        if (jh && !json_is_null(jh) && template_ok(errors, "html", jh, MAX_CONTENT_BYTES))
            json_object_set(content, "html", jh);
        if (jx && !json_is_null(jx) && template_ok(errors, "text", jx, MAX_CONTENT_BYTES))
            json_object_set(content, "text", jx);
    }
    json_t *data = json_object_get(body, "data");
    if (data && !json_is_null(data) && !json_is_object(data))
        ferr(errors, "data", "must be an object");
    char send_at[32] = "";
    json_t *jsa = json_object_get(body, "send_at");
    if (jsa && !json_is_null(jsa)) {
        int64_t ms;
        if (!json_is_string(jsa) ||
            time_parse_rfc3339(json_string_value(jsa), json_string_length(jsa), &ms) != 0)
            ferr(errors, "send_at", "must be an RFC 3339 date-time such as 2026-12-01T09:00:00Z");
        else if (ms < time_wall_ms() - SEND_AT_PAST_MS)
            ferr(errors, "send_at", "is more than a minute in the past");
        else if (ms > time_wall_ms() + SEND_AT_FUTURE_MS)
            ferr(errors, "send_at", "is more than 30 days ahead");
        else
            time_format_rfc3339(ms, send_at);
    }
    char rate[24] = "";
    json_t *jr = json_object_get(body, "rate_per_minute");
    if (jr && !json_is_null(jr)) {
        if (!json_is_integer(jr) || json_integer_value(jr) < 1 || json_integer_value(jr) > RATE_MAX)
            ferr(errors, "rate_per_minute", "must be an integer from 1 to %d", RATE_MAX);
        else
            snprintf(rate, sizeof rate, "%lld", (long long)json_integer_value(jr));
    }
    json_t *tracking = json_object_get(body, "tracking");
    if (tracking && !json_is_null(tracking)) {
        int ok = json_is_object(tracking);
        if (ok)
            json_object_foreach(tracking, k, val) {
                if ((strcmp(k, "opens") && strcmp(k, "clicks")) || !json_is_boolean(val))
                    ok = 0;
            }
        if (!ok)
            ferr(errors, "tracking", "must be {\"opens\": bool, \"clicks\": bool}");
    }
    json_t *headers = json_array();
    if (json_object_get(body, "headers"))
        message_headers_check(errors, json_object_get(body, "headers"), headers);

    if (dbst != DB_OK || json_array_size(errors)) {
        json_decref(content);
        json_decref(headers);
        json_decref(body);
        if (dbst != DB_OK) {
            json_decref(errors);
            return db_failure(r, dbst);
        }
        return http_problem(r, 422, NULL, "The campaign is not valid.", errors);
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
        json_decref(errors);
        return db_failure(r, s);
    }
    int found = PQntuples(res) == 1;
    PQclear(res);
    if (!found) {
        ferr(errors, "list_id", "no such list in this account");
        return http_problem(r, 422, NULL, "The campaign is not valid.", errors);
    }
    json_decref(errors);
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
