/* worker/campaigns.c - see worker/campaigns.h. */
#include "worker/campaigns.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPAND_ROUNDS     20      /* chunks per pass before the other duties get a turn */
#define RATE_LOOKAHEAD_MS 120000  /* rated campaigns are expanded this far ahead only */
#define IDLE_MS           1000    /* between passes that found nothing to do */
#define NAP_SLICE_MS      100
#define ANALYZE_MIN_ROWS  5000    /* see analyze_after_expansion */

struct campaigns {
    pthread_t  thread;
    atomic_int stopping;
    int        chunk;
    long       since_analyze;   /* deliveries this worker expanded since its last ANALYZE */
    long       planned_rows;    /* deliveries' row count as the planner knew it then */
};

static void nap(campaigns *c, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;
    while (!atomic_load(&c->stopping)) {
        int64_t left = end - time_mono_ms();
        if (left <= 0)
            return;
        time_sleep_ms(left > NAP_SLICE_MS ? NAP_SLICE_MS : left, NULL);
    }
}

/* New deliveries are due now: wake idle claimers (Redis only accelerates; they poll). */
static void wake(redis_conn *rc)
{
    redis_wake(rc, REDIS_WAKE, 4);
    redis_note_events(rc);   /* their 'queued' events */
}

/* Expansion is a bulk load: a campaign can add far more deliveries in seconds than the
 * table held. Until the table is analyzed, the worker's statements run plans made for the
 * small table (cached generic plans of a fresh or emptied table): the bench saw a
 * 40,000-recipient campaign deliver at 826 msg/s with 4.7x the PostgreSQL CPU until
 * autovacuum came round after ~40 s, and at 2,837 msg/s with an ANALYZE after the first
 * chunks. So once this worker has expanded ANALYZE_MIN_ROWS deliveries, and at least as
 * many as the planner knew of, it analyzes the table (a sample, a few hundred ms), which
 * also makes every session re-plan: a handful of times per campaign, growing
 * geometrically. */
static void analyze_after_expansion(campaigns *c, db_conn *db, long made)
{
    c->since_analyze += made;
    if (c->since_analyze < ANALYZE_MIN_ROWS || c->since_analyze < c->planned_rows)
        return;
    int64_t t0 = time_mono_ms();
    if (db_script(db, "ANALYZE deliveries", NULL) != DB_OK) {
        log_warn("ANALYZE deliveries after campaign expansion: %s", db_last_error(db));
        c->since_analyze = 0;   /* not again before as many rows more */
        return;
    }
    PGresult *res;
    if (db_exec(db, ST_DLV_RELTUPLES, NULL, &res) == DB_OK) {
        if (PQntuples(res) == 1)
            c->planned_rows = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    log_debug("analyzed deliveries after %ld expanded (%ld rows) in %lld ms", c->since_analyze,
              c->planned_rows, (long long)(time_mono_ms() - t0));
    c->since_analyze = 0;
}

/* One pass: start due scheduled campaigns, expand up to EXPAND_ROUNDS chunks, finish the
 * campaigns that are done. Returns 1 when there was expansion work (go again soon). */
static int pass(campaigns *c, db_conn *db, redis_conn *rc)
{
    PGresult *res;
    if (db_exec(db, ST_CAMP_PROMOTE, NULL, NULL) != DB_OK)
        return 0;
    char chunk[16], life[32], ahead[32];
    snprintf(chunk, sizeof chunk, "%d", c->chunk);
    snprintf(life, sizeof life, "%lld", (long long)(cfg.max_queue_lifetime_ms / 1000));
    snprintf(ahead, sizeof ahead, "%d", RATE_LOOKAHEAD_MS);
    const char *params[] = {chunk, life, ahead};
    int busy = 0;
    long made = 0;
    for (int i = 0; i < EXPAND_ROUNDS && !atomic_load(&c->stopping); i++) {
        db_status s = db_exec(db, ST_CAMP_EXPAND, params, &res);
        if (s != DB_OK) {
            log_warn("campaign expansion: %s", db_last_error(db));
            break;
        }
        if (PQntuples(res) != 1) {
            PQclear(res);
            break;
        }
        busy = 1;
        long n = strtol(PQgetvalue(res, 0, 2), NULL, 10);
        made += n;
        log_fields(LOG_DEBUG, json_pack("{s:s}", "campaign_id", PQgetvalue(res, 0, 0)),
                   "expanded %s contacts into %ld deliveries", PQgetvalue(res, 0, 1), n);
        PQclear(res);
        if (n > 0) {
            wake(rc);
            analyze_after_expansion(c, db, n);
        }
    }
    if (db_exec(db, ST_CAMP_FINISH, NULL, &res) == DB_OK) {
        if (strtol(PQcmdTuples(res), NULL, 10) > 0)
            log_info("%s campaign(s) sent", PQcmdTuples(res));
        PQclear(res);
    }
    return busy;
}

static void *main_loop(void *arg)
{
    campaigns *c = arg;
    db_conn *db = db_open(cfg.database_url, "posthorn-worker campaigns");
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    while (!atomic_load(&c->stopping)) {
        int busy = pass(c, db, rc);
        int64_t idle = cfg.poll_interval_ms < IDLE_MS ? cfg.poll_interval_ms : IDLE_MS;
        if (!busy)
            nap(c, idle);
    }
    redis_close(rc);
    db_close(db);
    return NULL;
}

campaigns *campaigns_start(void)
{
    campaigns *c = xcalloc(1, sizeof *c);
    c->chunk = cfg.campaign_chunk;
    if (pthread_create(&c->thread, NULL, main_loop, c) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void campaigns_stop(campaigns *c)
{
    if (!c)
        return;
    atomic_store(&c->stopping, 1);
    pthread_join(c->thread, NULL);
    free(c);
}

db_status campaigns_job_data(db_conn *db, const wbatch *b, json_t ***out)
{
    *out = NULL;
    json_t *keys = json_array();
    for (size_t i = 0; i < b->njobs; i++)
        if (strcmp(b->jobs[i].item.stream, "broadcast") == 0)
            json_array_append_new(keys, json_pack("{s:s, s:s}", "account_id",
                                                  b->jobs[i].item.account_id, "id",
                                                  b->jobs[i].item.id));
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return DB_OK;
    }
    char *js = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    if (!js)
        die("cannot serialise delivery keys");
    const char *params[] = {js};
    PGresult *res;
    db_status s = db_exec(db, ST_CAMP_DLV_DATA, params, &res);
    free(js);
    if (s != DB_OK)
        return s;
    int n = PQntuples(res);
    if (n > 0) {
        json_t **data = xcalloc(b->njobs, sizeof *data);
        for (int r = 0; r < n; r++) {
            const char *id = PQgetvalue(res, r, 0);
            json_t *d = json_loads(PQgetvalue(res, r, 1), 0, NULL);
            if (!json_is_object(d)) {
                json_decref(d);
                d = json_object();
            }
            for (size_t i = 0; i < b->njobs; i++)
                if (!data[i] && strcmp(b->jobs[i].item.id, id) == 0) {
                    data[i] = json_incref(d);
                    break;
                }
            json_decref(d);
        }
        *out = data;
    }
    PQclear(res);
    return DB_OK;
}

void campaigns_job_data_free(json_t **data, size_t n)
{
    if (!data)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref(data[i]);
    free(data);
}
