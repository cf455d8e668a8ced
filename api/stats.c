/* api/stats.c - GET /v1/stats: event counts per hour or day bucket.
 * Read from counters kept as events are written (stats_hourly + stats_pending, migration
 * 0007), never from the events table, so the cost depends on the buckets asked for, not on
 * how many events there were. Buckets are UTC hours or days; since is rounded down to the
 * start of its bucket and a bucket is included when it starts before until, so every bucket
 * answered is whole. Every bucket in the range is answered, with zeros where nothing
 * happened. */
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOUR_MS   3600000LL
#define DAY_MS    (24 * HOUR_MS)
#define MAX_DAYS  400      /* interval=day: at most 400 days between since and until */
#define MAX_HOURS (31 * 24) /* interval=hour: at most 31 days */
#define TAG_MAX   200

static const char *const TYPES[] = {"queued", "delivered", "deferred", "bounced", "failed",
                                    "expired", "suppressed", "cancelled", "opened", "clicked",
                                    "unsubscribed", "complained"};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static int type_index(const char *t)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (strcmp(TYPES[i], t) == 0)
            return (int)i;
    return -1;
}

static int64_t floor_to(int64_t ms, int64_t unit)
{
    int64_t q = ms / unit;
    if (ms % unit < 0)
        q--;
    return q * unit;
}

/* ?since= / ?until=: RFC 3339; *ms set when given. */
static void time_param(http_req *r, json_t *errors, const char *name, int64_t *ms, int *given)
{
    int bad = 0;
    const char *t = http_query(r, name, &bad);
    *given = 0;
    if (bad || (t && time_parse_rfc3339(t, strlen(t), ms) != 0))
        http_field_error(errors, name, "must be an RFC 3339 date-time, e.g. 2026-11-01T00:00:00Z");
    else if (t)
        *given = 1;
}

static void format_bucket(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

enum MHD_Result h_stats(http_req *r)
{
    json_t *errors = json_array();
    static const char *const intervals[] = {"day", "hour", NULL};
    static const char *const streams[] = {"transactional", "broadcast", NULL};
    const char *interval = NULL, *stream = NULL;
    query_enum(r, errors, "interval", intervals, "must be day or hour", &interval);
    query_enum(r, errors, "stream", streams, "must be transactional or broadcast", &stream);
    int hourly = interval && strcmp(interval, "hour") == 0;
    int64_t unit = hourly ? HOUR_MS : DAY_MS;

    int64_t since = 0, until = 0;
    int has_since, has_until;
    time_param(r, errors, "since", &since, &has_since);
    time_param(r, errors, "until", &until, &has_until);

    int bad = 0;
    const char *tag = http_query(r, "tag", &bad);
    json_t *tag_ok = tag ? json_string(tag) : NULL;   /* NULL for invalid UTF-8 */
    if (bad || (tag && (!tag_ok || strlen(tag) == 0 || strlen(tag) > TAG_MAX)))
        http_field_error(errors, "tag", "must be a tag of 1 to %d bytes", TAG_MAX);
    json_decref(tag_ok);
    bad = 0;
    const char *dom = http_query(r, "domain", &bad);
    char domain[ADDR_MAX + 1] = "";
    if (bad || (dom && (strlen(dom) == 0 || strlen(dom) > 253 || strchr(dom, '@')))) {
        http_field_error(errors, "domain", "must be a domain name");
    } else if (dom) {
        /* the recipient domains are counted as lib/addr normalises them (A-labels,
         * lower case): normalise the filter the same way */
        char probe[ADDR_MAX + 8], norm[ADDR_MAX + 1];
        int pn = snprintf(probe, sizeof probe, "x@%s", dom);
        if (pn < 0 || (size_t)pn >= sizeof probe || addr_normalize(probe, (size_t)pn, norm) != NULL)
            http_field_error(errors, "domain", "must be a domain name");
        else
            snprintf(domain, sizeof domain, "%s", strchr(norm, '@') + 1);
    }

    if (json_array_size(errors) == 0) {
        int64_t now = time_wall_ms();
        if (!has_until)
            until = now;
        if (!has_since)
            since = until - (hourly ? DAY_MS : 7 * DAY_MS);
        if (since >= until)
            http_field_error(errors, "since", "must be before until");
        else if (until - since > (hourly ? MAX_HOURS * HOUR_MS : MAX_DAYS * DAY_MS))
            http_field_error(errors, hourly ? "interval" : "since",
                             hourly ? "hour buckets cover at most 31 days: use interval=day or a "
                                      "shorter range"
                                    : "the range covers at most 400 days");
    }
    if (json_array_size(errors) > 0)
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
    json_decref(errors);

    int64_t first = floor_to(since, unit);
    int64_t end = floor_to(until - 1, unit) + unit;
    size_t nb = (size_t)((end - first) / unit);
    char unit_s[16], first_s[24], end_s[24];
    snprintf(unit_s, sizeof unit_s, "%lld", (long long)(unit / 1000));
    snprintf(first_s, sizeof first_s, "%lld", (long long)(first / 1000));
    snprintf(end_s, sizeof end_s, "%lld", (long long)(end / 1000));
    const char *params[] = {r->auth.account_id, unit_s, first_s, end_s, tag ? tag : "",
                            stream ? stream : "", domain};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_STATS_QUERY, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);

    long long *counts = xcalloc(nb * NTYPES, sizeof *counts);
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        long long b = strtoll(PQgetvalue(res, i, 0), NULL, 10) * 1000;
        int t = type_index(PQgetvalue(res, i, 1));
        if (t < 0 || b < first || b >= end)
            continue;
        counts[(size_t)((b - first) / unit) * NTYPES + (size_t)t] += strtoll(PQgetvalue(res, i, 2), NULL, 10);
    }
    PQclear(res);

    json_t *data = json_array();
    for (size_t b = 0; b < nb; b++) {
        char bucket[32];
        format_bucket(first + (int64_t)b * unit, bucket);
        json_t *c = json_object();
        for (size_t t = 0; t < NTYPES; t++)
            json_object_set_new(c, TYPES[t], json_integer(counts[b * NTYPES + t]));
        json_t *item = json_pack("{s:s}", "bucket", bucket);
        if (stream)
            json_object_set_new(item, "stream", json_string(stream));
        if (tag)
            json_object_set_new(item, "tag", json_string(tag));
        if (dom)
            json_object_set_new(item, "domain", json_string(domain));
        json_object_set_new(item, "counts", c);
        json_array_append_new(data, item);
    }
    free(counts);
    char since_s[32], until_s[32];
    format_bucket(first, since_s);
    format_bucket(end, until_s);
    json_t *out = json_pack("{s:s, s:s, s:s, s:o}", "interval", hourly ? "hour" : "day", "since",
                            since_s, "until", until_s, "data", data);
    return http_send_json(r, 200, out);
}
