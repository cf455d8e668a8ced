/* api/webhooks.c - webhook endpoints: POST/GET /v1/webhooks, GET/PATCH/DELETE
 * /v1/webhooks/{id}, POST /v1/webhooks/{id}/test, GET /v1/webhooks/{id}/deliveries,
 * POST /v1/webhooks/{id}/replay. The dispatcher is worker/webhooks.c.
 *
 * Storage (read by the dispatcher; keep in step with it):
 *   secret   secretbox_seal(SECRETBOX_WEBHOOK_SECRET, "whsec_<base64>", ad = account "\n" id),
 *            answered only by the POST that creates the endpoint
 *   events   the filter: event types, or {"*"}
 *   cursor_xid/cursor_id  the position of the last event handed over (0005)
 * URLs are checked when registered or changed: http/https only, no userinfo, <= 2048, and
 * every address of the host (c-ares through POSTHORN_DNS_SERVER) must pass the address guard
 * unless inside POSTHORN_WEBHOOK_ALLOW_CIDRS; the dispatcher checks again for every socket.
 *
 * The outbound HTTP code (net/webhook_http) is shared with the worker's dispatcher. */
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/crypto.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/secretbox.h"
#include "lib/timeutil.h"
#include "smtp/dns.h"
#include "net/webhook_http.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIPTION_MAX 256

static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static netguard *guard;

static void guard_init(void)
{
    char err[256];
    guard = netguard_new(cfg.webhook_allow_cidrs, err, sizeof err);
    if (!guard) {
        log_error("POSTHORN_WEBHOOK_ALLOW_CIDRS: %s", err);
        guard = netguard_new("", err, sizeof err);
    }
}

static const netguard *api_guard(void)
{
    pthread_once(&guard_once, guard_init);
    return guard;
}

/* ST_WH_* row -> the webhook object (never the secret). */
static json_t *webhook_json(PGresult *res, int i)
{
    json_t *events = json_loads(PQgetvalue(res, i, 3), 0, NULL);
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:s, s:s, s:o, s:o}", "id",
                     PQgetvalue(res, i, 0), "url", PQgetvalue(res, i, 1), "description",
                     pg_str(res, i, 2), "events", events ? events : json_array(), "state",
                     PQgetvalue(res, i, 4), "disabled_reason", pg_str(res, i, 5), "created_at",
                     PQgetvalue(res, i, 6), "updated_at", PQgetvalue(res, i, 7), "failing_since",
                     pg_str(res, i, 8), "last_success_at", pg_str(res, i, 9));
}

static PGresult *load(http_req *r, db_status *st)
{
    const char *params[] = {r->auth.account_id, r->params[0]};
    PGresult *res;
    *st = db_exec(db_thread(), ST_WH_GET, params, &res);
    if (*st != DB_OK)
        return NULL;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Checks the url member into a malloc'd copy (*out). 503-worthy DNS trouble sets *dns_down. */
static void check_url(json_t *v, json_t *errors, char **out, int *dns_down)
{
    if (!json_is_string(v)) {
        http_field_error(errors, "url", "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    wh_url u;
    const char *why = strlen(s) != n ? "may not contain NUL characters" : wh_url_check(s, n, &u);
    if (why) {
        http_field_error(errors, "url", "%s", why);
        return;
    }
    char whyb[WH_ERR_MAX];
    int rc = wh_check_target(api_guard(), &u, whyb, sizeof whyb);
    if (rc == -1) {
        http_field_error(errors, "url", "%s: the host must be on the public Internet", whyb);
        return;
    }
    if (rc == -2) {   /* a name that does not exist is the caller's error */
        http_field_error(errors, "url", "host %s cannot be resolved (%s)", u.host, whyb);
        return;
    }
    if (rc == -3) {   /* a DNS outage is ours: 503 */
        *dns_down = 1;
        return;
    }
    *out = strdup(s);
}

/* The events member as "a,b,c" or "*" into out. */
static void check_events(json_t *v, json_t *errors, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!json_is_array(v) || json_array_size(v) == 0) {
        http_field_error(errors, "events", "must be a non-empty array of event types, or [\"*\"]");
        return;
    }
    size_t i;
    json_t *t;
    buf b;
    buf_init(&b, outlen - 1);
    int bad = 0;
    json_array_foreach(v, i, t) {
        const char *s = json_string_value(t);
        if (!s) {
            http_field_error(errors, "events", "must hold strings");
            bad = 1;
            break;
        }
        if (strcmp(s, "*") == 0) {
            if (json_array_size(v) != 1) {
                http_field_error(errors, "events", "\"*\" must be the only entry");
                bad = 1;
                break;
            }
            buf_appendz(&b, "*");
            continue;
        }
        int known = 0;
        for (int k = 0; query_event_types[k]; k++)
            if (strcmp(s, query_event_types[k]) == 0)
                known = 1;
        if (!known || strlen(s) != json_string_length(t)) {
            http_field_error(errors, "events", "unknown event type at %zu (queued, delivered, "
                             "bounced, ..., or \"*\")", i);
            bad = 1;
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_array_get(v, j)), s) == 0) {
                http_field_error(errors, "events", "lists %s twice", s);
                bad = 1;
                break;
            }
        if (bad)
            break;
        if ((b.len && buf_appendz(&b, ",") != 0) || buf_appendz(&b, s) != 0) {
            http_field_error(errors, "events", "is too long");
            bad = 1;
            break;
        }
    }
    if (!bad)
        snprintf(out, outlen, "%s", b.data ? b.data : "");
    buf_free(&b);
}

static void check_description(json_t *v, json_t *errors)
{
    if (json_is_null(v))
        return;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        http_field_error(errors, "description", "must be a string or null");
    else if (json_string_length(v) > DESCRIPTION_MAX)
        http_field_error(errors, "description", "is longer than %d bytes", DESCRIPTION_MAX);
}

static enum MHD_Result dns_unavailable(http_req *r)
{
    http_add_header(r, "Retry-After", "30");
    return http_problem(r, 503, NULL, "The webhook URL's host could not be resolved now.", NULL);
}

enum MHD_Result h_webhooks_create(http_req *r)
{
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    static const char *const known[] = {"url", "events", "description", NULL};
    http_unknown_fields(errors, body, known);
    char *url = NULL, events[512] = "";
    int dns_down = 0;
    json_t *ju = json_object_get(body, "url"), *je = json_object_get(body, "events"),
           *jd = json_object_get(body, "description");
    if (!je)
        http_field_error(errors, "events", "is required");
    else
        check_events(je, errors, events, sizeof events);
    if (jd)
        check_description(jd, errors);
    if (!ju)
        http_field_error(errors, "url", "is required");
    else if (json_array_size(errors) == 0)   /* no DNS look-up for a request refused anyway */
        check_url(ju, errors, &url, &dns_down);
    else if (!json_is_string(ju) ||
             wh_url_check(json_string_value(ju), json_string_length(ju), &(wh_url){0}))
        check_url(ju, errors, &url, &dns_down);
    if (json_array_size(errors) > 0) {
        free(url);
        json_decref(body);
        return http_problem(r, 422, NULL, "The webhook is invalid.", errors);
    }
    json_decref(errors);
    if (dns_down || !url) {
        free(url);
        json_decref(body);
        return dns_unavailable(r);
    }
    char desc[DESCRIPTION_MAX + 1] = "";
    int has_desc = jd && json_is_string(jd);
    if (has_desc)
        snprintf(desc, sizeof desc, "%s", json_string_value(jd));
    json_decref(body);

    char id[IDS_MAX], secret[WH_SECRET_MAX];
    ids_new("whk_", id);
    wh_secret_new(secret);
    char ad[sizeof r->auth.account_id + IDS_MAX + 2];
    snprintf(ad, sizeof ad, "%s\n%s", r->auth.account_id, id);
    buf box;
    buf_init(&box, 4096);
    if (secretbox_seal(SECRETBOX_WEBHOOK_SECRET, secret, strlen(secret), ad, strlen(ad), &box)) {
        buf_free(&box);
        free(url);
        return http_problem(r, 500, NULL, "The secret could not be sealed.", NULL);
    }
    char hex[2 * 256 + 1];
    crypto_hex((const uint8_t *)box.data, box.len, hex);
    buf_free(&box);
    const char *params[] = {r->auth.account_id, id, url, hex, events, has_desc ? desc : NULL};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_WH_INSERT, params, &res);
    free(url);
    if (s != DB_OK)
        return db_failure(r, s);
    json_t *out = webhook_json(res, 0);
    PQclear(res);
    json_object_set_new(out, "secret", json_string(secret));
    memset(secret, 0, sizeof secret);
    redis_note_events(redis_thread());   /* a dispatcher takes it up now, not at its next poll */
    return http_send_json(r, 201, out);
}

enum MHD_Result h_webhooks_list(http_req *r)
{
    return query_keyset_page(r, ST_WH_LIST, webhook_json, 10);
}

enum MHD_Result h_webhook_get(http_req *r)
{
    db_status s;
    PGresult *res = load(r, &s);
    if (!res)
        return query_missing(r, s, "webhook");
    json_t *out = webhook_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_webhook_update(http_req *r)
{
    db_status s;
    PGresult *cur = load(r, &s);
    if (!cur)
        return query_missing(r, s, "webhook");
    PQclear(cur);
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    static const char *const known[] = {"url", "events", "description", "state", NULL};
    http_unknown_fields(errors, body, known);
    if (json_object_size(body) == 0)
        http_field_error(errors, "url", "give at least one of url, events, description, state");
    json_t *ju = json_object_get(body, "url"), *je = json_object_get(body, "events"),
           *jd = json_object_get(body, "description"), *js = json_object_get(body, "state");
    char events[512] = "", state[16] = "";
    if (je)
        check_events(je, errors, events, sizeof events);
    if (jd)
        check_description(jd, errors);
    if (js) {
        const char *sv = json_string_value(js);
        if (!sv || (strcmp(sv, "enabled") && strcmp(sv, "disabled")))
            http_field_error(errors, "state", "must be enabled or disabled");
        else
            snprintf(state, sizeof state, "%s", sv);
    }
    char *url = NULL;
    int dns_down = 0;
    if (ju && (json_array_size(errors) == 0 || !json_is_string(ju) ||
               wh_url_check(json_string_value(ju), json_string_length(ju), &(wh_url){0})))
        check_url(ju, errors, &url, &dns_down);
    if (json_array_size(errors) > 0) {
        free(url);
        json_decref(body);
        return http_problem(r, 422, NULL, "The webhook is invalid.", errors);
    }
    json_decref(errors);
    if (dns_down) {
        free(url);
        json_decref(body);
        return dns_unavailable(r);
    }
    char desc[DESCRIPTION_MAX + 1] = "";
    int desc_str = jd && json_is_string(jd);
    if (desc_str)
        snprintf(desc, sizeof desc, "%s", json_string_value(jd));
    const char *params[] = {r->auth.account_id, r->params[0], url ? url : "", events,
                            jd ? "1" : "0", desc_str ? desc : NULL, state};
    json_decref(body);
    PGresult *res;
    s = db_exec(db_thread(), ST_WH_UPDATE, params, &res);
    free(url);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such webhook.", NULL);
    }
    json_t *out = webhook_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_webhook_delete(http_req *r)
{
    return query_delete_owned(r, ST_WH_DELETE, "webhook");
}

/* POST /v1/webhooks/{id}/test: one synthetic event, signed, sent now; answers the result. */
enum MHD_Result h_webhook_test(http_req *r)
{
    const char *params[] = {r->auth.account_id, r->params[0]};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_WH_SECRET, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such webhook.", NULL);
    }
    char *url = strdup(PQgetvalue(res, 0, 0));
    const char *hex = PQgetvalue(res, 0, 1);
    size_t hl = strlen(hex);
    uint8_t *boxb = malloc(hl / 2 + 1);
    if (!url || !boxb)
        abort();
    for (size_t i = 0; i + 1 < hl; i += 2) {
        unsigned x;
        sscanf(hex + i, "%2x", &x);
        boxb[i / 2] = (uint8_t)x;
    }
    PQclear(res);
    char ad[sizeof r->auth.account_id + IDS_MAX + 8];
    snprintf(ad, sizeof ad, "%s\n%s", r->auth.account_id, r->params[0]);
    buf plain;
    buf_init(&plain, 256);
    uint8_t key[64];
    int kl = -1;
    if (secretbox_open(SECRETBOX_WEBHOOK_SECRET, boxb, hl / 2, ad, strlen(ad), &plain) == 0)
        kl = wh_secret_key(plain.data, key, sizeof key);
    free(boxb);
    if (plain.data)
        memset(plain.data, 0, plain.len);
    buf_free(&plain);
    if (kl <= 0) {
        free(url);
        return http_problem(r, 500, NULL, "The webhook's secret cannot be opened.", NULL);
    }
    char batch[IDS_MAX], now[32];
    ids_new("msg_", batch);
    time_format_rfc3339(time_wall_ms(), now);
    json_t *ev = json_pack("[{s:s, s:s, s:s, s:n, s:n, s:n, s:n, s:[], s:{}, s:{s:s}}]", "id",
                           "evt_test", "type", "test", "created_at", now, "message_id",
                           "delivery_id", "recipient", "stream", "tags", "metadata", "data",
                           "webhook_id", r->params[0]);
    char *body = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    wh_url u;
    wh_result out;
    memset(&out, 0, sizeof out);
    const char *why = wh_url_check(url, strlen(url), &u);
    if (why)
        snprintf(out.error, sizeof out.error, "url %s", why);
    else
        wh_post_sync(&u, url, api_guard(), batch, key, (size_t)kl, body, strlen(body),
                     cfg.webhook_timeout_ms, &out);
    memset(key, 0, sizeof key);
    free(body);
    free(url);
    int ok = out.status >= 200 && out.status <= 299 && !out.error[0];
    char err[WH_ERR_MAX + 64] = "";
    if (out.error[0])
        snprintf(err, sizeof err, "%s", out.error);
    else if (!ok && out.status >= 300 && out.status <= 399)
        snprintf(err, sizeof err, "redirect %d (not followed)", out.status);
    else if (!ok)
        snprintf(err, sizeof err, "HTTP %d", out.status);
    char code[16], lat[24];
    snprintf(code, sizeof code, "%d", out.status);
    snprintf(lat, sizeof lat, "%lld", (long long)out.latency_ms);
    const char *ap[] = {r->auth.account_id, r->params[0], batch, "1", "1",
                        out.status > 0 ? code : NULL, err[0] ? err : NULL, lat, out.snippet,
                        "api"};
    s = db_exec(db_thread(), ST_WH_ATTEMPT_INSERT, ap, &res);
    if (s == DB_OK)
        PQclear(res);
    return http_send_json(r, 200, json_pack("{s:s, s:b, s:o, s:o, s:I, s:s}", "webhook_id", batch,
                                            "success", ok, "status_code",
                                            out.status > 0 ? json_integer(out.status) : json_null(),
                                            "error", err[0] ? json_string(err) : json_null(),
                                            "latency_ms", (json_int_t)out.latency_ms, "response",
                                            out.snippet));
}

static json_t *attempt_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "id",
                     PQgetvalue(res, i, 0), "webhook_id", PQgetvalue(res, i, 1), "event_count",
                     pg_int(res, i, 2), "attempt", pg_int(res, i, 3), "status_code",
                     pg_int(res, i, 4), "error", pg_str(res, i, 5), "latency_ms",
                     pg_int(res, i, 6), "response", pg_str(res, i, 7), "created_at",
                     PQgetvalue(res, i, 8));
}

enum MHD_Result h_webhook_deliveries(http_req *r)
{
    db_status s;
    PGresult *cur = load(r, &s);
    if (!cur)
        return query_missing(r, s, "webhook");
    PQclear(cur);
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    /* cursors are bound to the account and the webhook */
    char owner[sizeof r->auth.account_id + IDS_MAX + 8];
    snprintf(owner, sizeof owner, "%s/%s", r->auth.account_id, r->params[0]);
    if (list_params(r, owner, &limit, &cursor, &done) != 0)
        return done;
    const char *after = "";
    if (cursor && json_is_string(json_array_get(cursor, 0)))
        after = json_string_value(json_array_get(cursor, 0));
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->auth.account_id, r->params[0], after, lim};
    PGresult *res;
    s = db_exec(db_thread(), ST_WH_ATTEMPTS_LIST, params, &res);
    json_decref(cursor);
    if (s != DB_OK)
        return db_failure(r, s);
    const int cols[] = {0};
    return query_send_page(r, res, limit, attempt_json, owner, cols, 1);
}

enum MHD_Result h_webhook_replay(http_req *r)
{
    db_status s;
    PGresult *cur = load(r, &s);
    if (!cur)
        return query_missing(r, s, "webhook");
    PQclear(cur);
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    static const char *const known[] = {"after", NULL};
    http_unknown_fields(errors, body, known);
    char xid[24] = "", seq[24] = "", eid[64] = "";
    json_t *ja = json_object_get(body, "after");
    if (!ja)
        http_field_error(errors, "after", "is required");
    else if (!json_is_string(ja) || json_string_length(ja) >= sizeof eid ||
             query_event_id(json_string_value(ja), xid, seq) != 0)
        http_field_error(errors, "after", "must be an event id (evt_...)");
    else
        snprintf(eid, sizeof eid, "%s", json_string_value(ja));
    json_decref(body);
    if (json_array_size(errors) == 0) {
        const char *ep[] = {r->auth.account_id, xid, seq};
        PGresult *res;
        s = db_exec(db_thread(), ST_WH_EVENT_EXISTS, ep, &res);
        if (s != DB_OK) {
            json_decref(errors);
            return db_failure(r, s);
        }
        if (PQntuples(res) == 0)
            http_field_error(errors, "after", "is not an event of this account");
        PQclear(res);
    }
    if (json_array_size(errors) > 0)
        return http_problem(r, 422, NULL, "The replay request is invalid.", errors);
    json_decref(errors);
    const char *params[] = {r->auth.account_id, r->params[0], xid, seq};
    PGresult *res;
    s = db_exec(db_thread(), ST_WH_REPLAY, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return http_problem(r, 404, NULL, "No such webhook.", NULL);
    }
    PQclear(res);
    return http_send_json(r, 200, json_pack("{s:s, s:s}", "id", r->params[0], "after", eid));
}
