/* posthorn-worker: claims and delivers queued mail (the claim, render and delivery stages
 * arrive with their issues). This skeleton connects, records a heartbeat in `workers`,
 * waits for work (a Redis wake-up on ph:wake, or a poll every POSTHORN_POLL_INTERVAL),
 * rides out PostgreSQL and Redis restarts, and exits 0 on SIGTERM/SIGINT. */
#include "db/db.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/startup.h"
#include "lib/timeutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WAKE_KEY "ph:wake"

static volatile int stop_flag;

static void on_signal(int sig) { stop_flag = sig; }

/* Waits up to ms for a wake-up. Returns 1 woken, 0 timed out, -1 Redis unavailable. */
static int wait_for_wake(redis_conn *rc, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;
    while (!stop_flag) {
        int64_t left = end - time_mono_ms();
        if (left <= 0)
            return 0;
        int64_t slice = left > 1000 ? 1000 : left;   /* stay responsive to signals */
        char tmo[32];
        snprintf(tmo, sizeof tmo, "%.3f", (double)slice / 1000.0);
        const char *argv[] = {"BLPOP", WAKE_KEY, tmo};
        redisReply *rep = redis_cmd_block(rc, slice, 3, argv, NULL);
        if (!rep)
            return -1;
        int woken = rep->type == REDIS_REPLY_ARRAY;
        freeReplyObject(rep);
        if (woken)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: posthorn-worker\n(all settings come from the environment: "
                        "see `posthorn settings`)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    startup("posthorn-worker", 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;   /* no SA_RESTART: a blocking read returns at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char id[IDS_MAX], host[256], pid[16];
    ids_new("wrk_", id);
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(pid, sizeof pid, "%d", (int)getpid());

    db_conn *db = db_open(cfg.database_url, "posthorn-worker");
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    if (!rc) {
        fprintf(stderr, "posthorn-worker: POSTHORN_REDIS_URL is not a redis:// URL\n");
        return 2;
    }
    log_fields(LOG_INFO, json_pack("{s:s, s:s}", "worker_id", id, "version", POSTHORN_VERSION),
               "posthorn-worker started");

    int pg_up = -1, redis_ok = -1;
    while (!stop_flag) {
        const char *hb[] = {id, host, pid};
        int up = db_exec(db, ST_WORKER_HEARTBEAT, hb, NULL) == DB_OK;
        if (up != pg_up) {
            if (up)
                log_info("postgres available");
            else
                log_warn("postgres unavailable; retrying");
            pg_up = up;
        }
        if (up) {
            PGresult *res;
            if (db_exec(db, ST_QUEUE_DUE, NULL, &res) == DB_OK) {
                log_debug("%s deliveries due", PQgetvalue(res, 0, 0));
                PQclear(res);
            }
        }
        int64_t wait = up ? cfg.poll_interval_ms : 1000;
        int w = wait_for_wake(rc, wait);
        int ok = w >= 0;
        if (ok != redis_ok) {
            if (ok)
                log_info("redis available: wake-ups on");
            else
                log_warn("redis unavailable: polling every %lld ms", (long long)cfg.poll_interval_ms);
            redis_ok = ok;
        }
        if (w < 0)
            time_sleep_ms(wait, &stop_flag);
    }
    log_info("signal %d: stopping", stop_flag);
    const char *st[] = {id};
    db_exec(db, ST_WORKER_STOPPED, st, NULL);
    db_close(db);
    redis_close(rc);
    log_info("posthorn-worker stopped");
    config_free();
    return 0;
}
