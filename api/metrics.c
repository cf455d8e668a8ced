#include "api/metrics.h"
#include "api/http.h"
#include "api/server.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROUTES 64
/* Status codes we count individually; anything else lands in "other". */
static const int statuses[] = {200, 201, 202, 204, 302, 400, 401, 403, 404, 405, 409, 413,
                               414, 415, 422, 429, 431, 500, 503};
#define NSTATUS (sizeof statuses / sizeof statuses[0] + 1)
static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

static atomic_ulong req_count[MAX_ROUTES + 1][NSTATUS];
static atomic_ulong lat_bucket[MAX_ROUTES + 1][NBUCKETS];
static atomic_ulong lat_count[MAX_ROUTES + 1];
static atomic_ullong lat_sum_us[MAX_ROUTES + 1];
static atomic_int redis_is_up;
static time_t started_at;
static struct MHD_Daemon *daemon_metrics;

void metrics_set_redis_up(int up) { atomic_store(&redis_is_up, up ? 1 : 0); }

void metrics_observe(int route_idx, int status, int64_t dur_us)
{
    int ri = route_idx >= 0 && route_idx < MAX_ROUTES ? route_idx : MAX_ROUTES;
    size_t si = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (statuses[i] == status)
            si = i;
    atomic_fetch_add(&req_count[ri][si], 1);
    double secs = (double)dur_us / 1e6;
    for (size_t b = 0; b < NBUCKETS; b++)
        if (secs <= buckets[b])
            atomic_fetch_add(&lat_bucket[ri][b], 1);
    atomic_fetch_add(&lat_count[ri], 1);
    atomic_fetch_add(&lat_sum_us[ri], (unsigned long long)(dur_us > 0 ? dur_us : 0));
}

static void route_labels(int ri, char *out, size_t n)
{
    if (ri == MAX_ROUTES)
        snprintf(out, n, "route=\"unmatched\",method=\"\"");
    else
        snprintf(out, n, "route=\"%s\",method=\"%s\"", routes[ri].name, routes[ri].method);
}

static void render(buf *b)
{
    buf_printf(b, "# HELP posthorn_build_info Build of this process.\n"
                  "# TYPE posthorn_build_info gauge\n"
                  "posthorn_build_info{version=\"%s\",program=\"posthorn-api\"} 1\n",
               POSTHORN_VERSION);
    buf_printf(b, "# HELP posthorn_process_start_time_seconds Start time of the process.\n"
                  "# TYPE posthorn_process_start_time_seconds gauge\n"
                  "posthorn_process_start_time_seconds %lld\n", (long long)started_at);
    buf_printf(b, "# HELP posthorn_http_requests_total HTTP requests by route and status.\n"
                  "# TYPE posthorn_http_requests_total counter\n");
    char labels[160];
    for (int ri = 0; ri <= MAX_ROUTES; ri++) {
        if (ri < MAX_ROUTES && ri >= route_count)
            continue;
        route_labels(ri, labels, sizeof labels);
        for (size_t si = 0; si < NSTATUS; si++) {
            unsigned long v = atomic_load(&req_count[ri][si]);
            if (!v)
                continue;
            char st[8];
            if (si + 1 < NSTATUS)
                snprintf(st, sizeof st, "%d", statuses[si]);
            else
                snprintf(st, sizeof st, "other");
            buf_printf(b, "posthorn_http_requests_total{%s,status=\"%s\"} %lu\n", labels, st, v);
        }
    }
    buf_printf(b, "# HELP posthorn_http_request_duration_seconds Time from the request line to the response's completion.\n"
                  "# TYPE posthorn_http_request_duration_seconds histogram\n");
    for (int ri = 0; ri <= MAX_ROUTES; ri++) {
        if (ri < MAX_ROUTES && ri >= route_count)
            continue;
        unsigned long count = atomic_load(&lat_count[ri]);
        if (!count && ri == MAX_ROUTES)
            continue;
        route_labels(ri, labels, sizeof labels);
        for (size_t bi = 0; bi < NBUCKETS; bi++)
            buf_printf(b, "posthorn_http_request_duration_seconds_bucket{%s,le=\"%g\"} %lu\n",
                       labels, buckets[bi], atomic_load(&lat_bucket[ri][bi]));
        buf_printf(b, "posthorn_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %lu\n",
                   labels, count);
        buf_printf(b, "posthorn_http_request_duration_seconds_sum{%s} %.6f\n", labels,
                   (double)atomic_load(&lat_sum_us[ri]) / 1e6);
        buf_printf(b, "posthorn_http_request_duration_seconds_count{%s} %lu\n", labels, count);
    }
    buf_printf(b, "# HELP posthorn_http_requests_in_flight Requests being handled now.\n"
                  "# TYPE posthorn_http_requests_in_flight gauge\n"
                  "posthorn_http_requests_in_flight %ld\n", server_in_flight());

    /* Redis and PostgreSQL as seen from this scrape (the metrics thread's own connections). */
    const char *ping[] = {"PING"};
    redisReply *rep = redis_cmd(redis_thread(), 1, ping, NULL);
    int rup = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    metrics_set_redis_up(rup);
    buf_printf(b, "# HELP posthorn_redis_up Whether Redis answers (Posthorn works without it).\n"
                  "# TYPE posthorn_redis_up gauge\nposthorn_redis_up %d\n", rup);
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_QUEUE_DEPTH, NULL, &res);
    buf_printf(b, "# HELP posthorn_postgres_up Whether PostgreSQL answers.\n"
                  "# TYPE posthorn_postgres_up gauge\nposthorn_postgres_up %d\n", s == DB_OK);
    if (s == DB_OK) {
        buf_printf(b, "# HELP posthorn_queue_depth Deliveries not yet in a final state.\n"
                      "# TYPE posthorn_queue_depth gauge\nposthorn_queue_depth %s\n",
                   PQgetvalue(res, 0, 0));
        PQclear(res);
    }
}

static enum MHD_Result metrics_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    char rid[IDS_MAX];
    ids_new("req_", rid);
    buf b;
    buf_init(&b, 8 * 1024 * 1024);
    unsigned status = 200;
    const char *ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (strcmp(url, "/metrics") != 0) {
        status = 404;
        ctype = "text/plain; charset=utf-8";
        buf_appendz(&b, "not found: try /metrics\n");
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        ctype = "text/plain; charset=utf-8";
        buf_appendz(&b, "method not allowed\n");
    } else {
        render(&b);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b.len, b.data ? b.data : (char *)"", MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", rid);
    if (status == 405)
        MHD_add_response_header(resp, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    buf_free(&b);
    return ret;
}

int metrics_start(void)
{
    if (route_count > MAX_ROUTES)
        die("route table larger than MAX_ROUTES");
    started_at = time(NULL);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (server_parse_addr(cfg.metrics_addr, &ss, &sl) != 0) {
        log_error("POSTHORN_METRICS_ADDR: cannot parse %s", cfg.metrics_addr);
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    daemon_metrics = MHD_start_daemon(flags, 0, NULL, NULL, metrics_cb, NULL,
                                      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
                                      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
                                      MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
                                      MHD_OPTION_END);
    if (!daemon_metrics) {
        log_error("cannot listen on %s (metrics)", cfg.metrics_addr);
        return -1;
    }
    log_info("metrics on %s", cfg.metrics_addr);
    return 0;
}

void metrics_stop(void)
{
    if (daemon_metrics)
        MHD_stop_daemon(daemon_metrics);
    daemon_metrics = NULL;
}
