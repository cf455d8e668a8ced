/* posthorn-worker: claims due deliveries, renders and delivers them, records outcomes; it
 * also runs the campaign expander (worker/campaigns) and the webhook dispatcher
 * (worker/webhooks).
 * The stages are threads (worker/pipeline.h); this file checks the settings, starts the
 * pipeline, waits for SIGTERM/SIGINT, lets the pipeline finish or release what is in
 * flight within POSTHORN_SHUTDOWN_GRACE, marks the worker stopped and exits 0. */
#include "db/db.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/secretbox.h"
#include "lib/startup.h"
#include "lib/token.h"
#include "worker/campaigns.h"
#include "worker/deliver.h"
#include "worker/pipeline.h"
#include "worker/webhooks.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: posthorn-worker\n(all settings come from the environment: "
                        "see `posthorn settings`)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    startup("posthorn-worker", 1);
    /* DKIM keys are opened and VERP / unsubscribe tokens made under POSTHORN_SECRET */
    secretbox_init(cfg.secret, cfg.secret_previous);
    token_init(cfg.secret, cfg.secret_previous);
    redis_conn *probe = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    if (!probe) {
        fprintf(stderr, "posthorn-worker: POSTHORN_REDIS_URL is not a redis:// URL\n");
        config_free();
        return 2;
    }
    redis_close(probe);
    char err[512];
    deliverer *d = deliverer_new(err, sizeof err);
    if (!d) {
        fprintf(stderr, "posthorn-worker: %s\n", err);
        config_free();
        return 2;
    }

    /* every thread inherits the blocked set; only this one takes the signals */
    sigset_t set;
    startup_block_signals(&set);

    char id[IDS_MAX];
    ids_new("wrk_", id);
    log_fields(LOG_INFO, json_pack("{s:s, s:s}", "worker_id", id, "version", POSTHORN_VERSION),
               "posthorn-worker started");
    pipeline *p = pipeline_start(id, d);
    campaigns *camp = campaigns_start();
    if (!camp)
        log_error("cannot start the campaign expander");
    webhooks *wh = webhooks_start(id);

    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_info("SIGHUP: reloading the destination policy");
            pipeline_reload(p);
            continue;
        }
        break;
    }
    log_info("signal %d: stopping (grace %lld ms)", sig, (long long)cfg.shutdown_grace_ms);
    campaigns_stop(camp);
    webhooks_stop(wh);
    pipeline_stop(p);
    pipeline_join(p);

    db_conn *db = db_open(cfg.database_url, "posthorn-worker");
    const char *st[] = {id};
    db_exec(db, ST_WORKER_STOPPED, st, NULL);
    db_close(db);
    log_info("posthorn-worker stopped");
    config_free();
    return 0;
}
