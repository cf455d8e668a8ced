/* api/events.c - GET /v1/events: the account's events, oldest first, from a position.
 * Event ids ("evt_<xid>_<seq>") are positions: a consumer that pages with after=<the last id
 * it saw> never misses an event, even one whose transaction committed after a later one,
 * because only events below the committed watermark are handed out (migration 0003). */
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result h_events_list(http_req *r)
{
    json_t *errors = json_array();
    int limit, bad = 0;
    query_limit(r, errors, &limit);
    char xid[24] = "", seq[24] = "";
    const char *after = http_query(r, "after", &bad);
    if (bad || (after && query_event_id(after, xid, seq) != 0))
        http_field_error(errors, "after", "must be an event id (evt_...)");
    const char *type;
    query_enum(r, errors, "type", query_event_types,
               "must be an event type (queued, delivered, bounced, ...)", &type);
    bad = 0;
    const char *msg = http_query(r, "message_id", &bad);
    if (bad || (msg && strlen(msg) > 64))
        http_field_error(errors, "message_id", "must be a message id");
    addr_t ra;
    int has_rcpt = query_recipient(r, errors, &ra);
    char since[32], until[32];
    query_time_range(r, errors, since, until);
    if (json_array_size(errors) > 0)
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
    json_decref(errors);

    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {r->auth.account_id, xid, *xid ? seq : "0", type ? type : "",
                            msg ? msg : "", has_rcpt ? ra.email : "", since, until, lim};
    PGresult *res;
    db_status st = db_exec(db_thread(), ST_EVENTS_LIST, params, &res);
    if (st != DB_OK)
        return db_failure(r, st);
    json_t *data = json_array();
    int n = PQntuples(res);
    char eid[64] = "";
    for (int i = 0; i < n; i++) {
        snprintf(eid, sizeof eid, "evt_%s", PQgetvalue(res, i, 0));
        json_array_append_new(data, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                                              "id", eid, "type", PQgetvalue(res, i, 1),
                                              "created_at", PQgetvalue(res, i, 2), "message_id",
                                              pg_str(res, i, 3), "delivery_id", pg_str(res, i, 4),
                                              "recipient", pg_str(res, i, 5), "stream",
                                              pg_str(res, i, 6), "tags", pg_json(res, i, 7),
                                              "metadata", pg_json(res, i, 8), "data",
                                              pg_json(res, i, 9)));
    }
    PQclear(res);
    /* A full page may have more behind it: continue after its last event. */
    json_t *next = n == limit ? json_string(eid) : json_null();
    return http_send_json(r, 200, json_pack("{s:o, s:o}", "data", data, "next_cursor", next));
}
