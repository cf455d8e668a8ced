/* api/health.c - liveness, readiness and the OpenAPI document. */
#include "api/handlers.h"
#include "api/metrics.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/embedded.h"
#include "lib/log.h"

enum MHD_Result h_healthz(http_req *r)
{
    return http_send_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* Ready means PostgreSQL answers: without it nothing can be accepted. Redis only
 * accelerates, so its state is reported but never makes the API unready. */
enum MHD_Result h_readyz(http_req *r)
{
    int pg = db_exec(db_thread(), ST_PING, NULL, NULL) == DB_OK;
    const char *ping[] = {"PING"};
    redisReply *rep = redis_cmd(redis_thread(), 1, ping, NULL);
    int rd = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    metrics_set_redis_up(rd);
    return http_send_json(r, pg ? 200 : 503,
                          json_pack("{s:s, s:s, s:s}", "status", pg ? "ready" : "unready",
                                    "postgres", pg ? "up" : "down", "redis", rd ? "up" : "down"));
}

enum MHD_Result h_openapi(http_req *r)
{
    const embedded_file *f = embedded_find("openapi.yaml");
    if (!f)
        die("openapi.yaml is not embedded");
    return http_send_bytes(r, 200, "application/yaml", f->data, f->len);
}

