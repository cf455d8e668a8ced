#include "worker/pipeline.h"
#include "db/db.h"
#include "db/queue.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "worker/bqueue.h"
#include "worker/render.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLAIM_BATCH      100    /* deliveries per claim */
#define IDLE_CLAIM_GAP   50     /* ms after a claim that found nothing (a stale wake-up) */
#define WAKE_SLICE_MS    500    /* BLPOP slices, so a stop is noticed quickly */
#define HK_PERIOD_MS     2000   /* housekeeping: heartbeat, sweep, expiry */
#define PURGE_PERIOD_MS  10000  /* idempotency purge */
#define HK_LIMIT         1000   /* rows per housekeeping statement */
#define HK_ROUNDS        10     /* statements per kind and pass while batches come back full */
#define DB_RETRY_MS      500
#define DELIVER_Q_CAP    2
#define RECORD_Q_CAP     4
#define MAX_RENDER       64
#define ASYNC_RECORD_CAP 1024   /* an async deliverer's loop must never wait for the recorder */
#define ASYNC_RECORD_HIGH 32    /* ... but no new batch goes to it while this many wait */
#define POSTPONE_MS      10000  /* a paused destination's rows come back this much later */

struct pipeline {
    char        id[IDS_MAX];
    char        host[256];
    char        pid[16];
    char        host_key[512];   /* kernel and PID namespace ("" unknown): see host_key_of */
    deliverer  *dlv;
    bqueue     *render_q, *deliver_q, *record_q;
    int         nrender;
    pthread_t   claimer, express, delivery, recorder, housekeeping;
    pthread_t  *render;
    atomic_int  stopping;
    int64_t     soft_end_ms;     /* after it, jobs not yet tried are released */
    int64_t     hard_end_ms;     /* after it, the recorder gives up */
    atomic_int  render_running;  /* render threads and the express lane: the last closes
                                  * the delivery queue */
    atomic_int  kick;            /* rows came back to the queue: claim without waiting */
    atomic_int  bulk_held;       /* bulk batches claimed and not yet in the deliverer's hands */
    atomic_int  reload;          /* SIGHUP: the deliverer re-reads its files */
};

static int stopping(pipeline *p) { return atomic_load(&p->stopping); }

static int past_soft(pipeline *p) { return stopping(p) && time_mono_ms() >= p->soft_end_ms; }

static int past_hard(pipeline *p) { return stopping(p) && time_mono_ms() >= p->hard_end_ms; }

/* Sleeps up to ms; returns early once stopping. */
static void nap(pipeline *p, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;
    while (!stopping(p)) {
        int64_t left = end - time_mono_ms();
        if (left <= 0)
            return;
        if (left > 50)
            left = 50;
        struct timespec ts = {0, (long)left * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Jobs are not started this close to the end of their lease. */
static int64_t lease_margin(void)
{
    int64_t m = cfg.lease_ms / 4;
    return m > 5000 ? 5000 : m;
}

static int lease_nearly_over(const wbatch *b)
{
    return time_mono_ms() >= b->lease_end_ms - lease_margin();
}

static db_conn *conn(void)
{
    return db_open(cfg.database_url, "posthorn-worker");
}

/* --- claimer ------------------------------------------------------------------------- */

static void note_state(int *state, int now_ok, const char *up_msg, const char *down_msg)
{
    if (*state == now_ok)
        return;
    if (now_ok)
        log_info("%s", up_msg);
    else
        log_warn("%s", down_msg);
    *state = now_ok;
}

/* Waits up to wait_ms for a reason to claim: a token on the Redis list key (BLPOP), rows
 * returned by the sweeper (when use_kick), or the end of the wait (a poll). Redis's
 * availability changes are logged when redis_state is not NULL. */
static void wait_for_work(pipeline *p, redis_conn *rc, const char *key, int use_kick,
                          int64_t wait_ms, int *redis_state)
{
    int64_t end = time_mono_ms() + wait_ms;
    while (!stopping(p)) {
        if (use_kick && atomic_exchange(&p->kick, 0))
            return;
        int64_t left = end - time_mono_ms();
        if (left <= 0)
            return;
        int64_t slice = left > WAKE_SLICE_MS ? WAKE_SLICE_MS : left;
        char tmo[32];
        snprintf(tmo, sizeof tmo, "%.3f", (double)slice / 1000.0);
        const char *argv[] = {"BLPOP", key, tmo};
        redisReply *rep = redis_cmd_block(rc, slice, 3, argv, NULL);
        if (!rep) {
            if (redis_state)
                note_state(redis_state, 0, "redis available: wake-ups on",
                           "redis unavailable: polling PostgreSQL instead");
            nap(p, slice);
            continue;
        }
        int woken = rep->type == REDIS_REPLY_ARRAY;
        int error = rep->type == REDIS_REPLY_ERROR;
        freeReplyObject(rep);
        if (redis_state)
            note_state(redis_state, !error, "redis available: wake-ups on",
                       "redis unavailable: polling PostgreSQL instead");
        if (woken)
            return;
        if (error)
            nap(p, slice);
    }
}

static void *claimer_main(void *arg)
{
    pipeline *p = arg;
    db_conn *db = conn();
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    int idle = 0, pg_state = -1, redis_state = -1;
    int64_t last_claim = 0;
    while (!stopping(p)) {
        if (!bqueue_wait_room(p->render_q, 200))
            continue;
        if (idle) {
            int64_t gap = last_claim + IDLE_CLAIM_GAP - time_mono_ms();
            if (gap > 0)
                nap(p, gap);
            if (stopping(p))
                break;
        }
        last_claim = time_mono_ms();
        queue_item *items;
        int n;
        db_status s = queue_claim(db, p->id, cfg.lease_ms, CLAIM_BATCH, 0, &items, &n);
        note_state(&pg_state, s != DB_DOWN, "postgres available",
                   "postgres unavailable; retrying");
        if (s != DB_OK) {
            idle = 1;
            nap(p, DB_RETRY_MS);
            continue;
        }
        if (n > 0) {
            log_debug("claimed %d deliveries", n);
            wbatch *b = wbatch_new(items, n, last_claim + cfg.lease_ms);
            if (b->urgent) {
                bqueue_push_urgent(p->render_q, b);   /* ahead of bulk batches */
            } else {
                atomic_fetch_add(&p->bulk_held, 1);
                bqueue_push(p->render_q, b);
            }
        }
        if (n == CLAIM_BATCH) {   /* more may be due: claim again at once */
            idle = 0;
            continue;
        }
        idle = n == 0;
        /* wait for a wake-up, the next row due (scheduled, retry), or the poll interval */
        int64_t wait = cfg.poll_interval_ms, due;
        if (queue_next_due(db, &due) == DB_OK && due >= 0 && due < wait)
            wait = due;
        wait_for_work(p, rc, REDIS_WAKE, 1, wait, &redis_state);
    }
    bqueue_close(p->render_q);
    redis_close(rc);
    db_close(db);
    return NULL;
}

/* --- render pool --------------------------------------------------------------------- */

static int render_give_up(void *ctx, const wbatch *b)
{
    pipeline *p = ctx;
    return past_soft(p) || lease_nearly_over(b);
}

/* A render thread or the express lane ends: the last one closes the delivery queue, so
 * the delivery thread finishes the deliverer only after the last batch was handed to it. */
static void render_exit(pipeline *p)
{
    if (atomic_fetch_sub(&p->render_running, 1) == 1)
        bqueue_close(p->deliver_q);
}

static void *render_main(void *arg)
{
    pipeline *p = arg;
    db_conn *db = conn();
    wbatch *b;
    while ((b = bqueue_pop(p->render_q)) != NULL) {
        if (past_soft(p) || lease_nearly_over(b) || render_batch(db, b, render_give_up, p) != 0)
            wbatch_release_pending(b);
        if (b->urgent)
            bqueue_push_urgent(p->deliver_q, b);
        else
            bqueue_push(p->deliver_q, b);
    }
    render_exit(p);
    db_close(db);
    return NULL;
}

/* --- express lane -------------------------------------------------------------------- */

static void deliver_batch(pipeline *p, wbatch *b, int express);

/* Transactional mail must not wait behind a campaign: when bulk work fills the pipeline,
 * the claimer waits for room in the render queue, the render threads are busy signing
 * bulk batches, and the delivery thread waits for room in the SMTP engine. So while bulk
 * batches are held between the claimer and the deliverer, this thread answers the
 * transactional wake-ups (ph:wake:tx) itself: it claims priority-0 rows only, renders them
 * and hands them to the deliverer directly (transactional jobs enter the engine without
 * waiting for room), a batch at a time until none are due. Otherwise it leaves them to the
 * claimer, which got a wake-up of its own: one claim then takes all of a message's
 * recipients, so they share SMTP transactions (two claimers could split them). Without
 * Redis it polls at POSTHORN_POLL_INTERVAL like the claimer. */
static void *express_main(void *arg)
{
    pipeline *p = arg;
    db_conn *db = conn();
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    while (!stopping(p)) {
        wait_for_work(p, rc, REDIS_WAKE_TX, 0, cfg.poll_interval_ms, NULL);
        while (!stopping(p) && atomic_load(&p->bulk_held) > 0) {
            int64_t now = time_mono_ms();
            queue_item *items;
            int n;
            if (queue_claim(db, p->id, cfg.lease_ms, CLAIM_BATCH, 1, &items, &n) != DB_OK) {
                nap(p, DB_RETRY_MS);   /* the claimer logs PostgreSQL's state */
                break;
            }
            if (n == 0)
                break;
            log_debug("express lane: claimed %d transactional deliveries", n);
            wbatch *b = wbatch_new(items, n, now + cfg.lease_ms);
            if (render_batch(db, b, render_give_up, p) != 0)
                wbatch_release_pending(b);
            deliver_batch(p, b, 1);
            if (n < CLAIM_BATCH)
                break;
        }
    }
    render_exit(p);
    redis_close(rc);
    db_close(db);
    return NULL;
}

/* --- delivery ------------------------------------------------------------------------ */

/* Asynchronous deliverers hand finished outcomes back here (from their own thread). */
static void on_delivered(void *arg, wbatch *b)
{
    pipeline *p = arg;
    bqueue_push(p->record_q, b);
}

/* Hands a rendered batch to the deliverer (sandbox jobs are settled here); it reaches the
 * recorder when done, from an asynchronous deliverer through on_delivered. Deliverers
 * take batches from the delivery thread and the express lane at once. */
static void deliver_batch(pipeline *p, wbatch *b, int express)
{
    int async = p->dlv->ops->async;
    if (past_soft(p) || lease_nearly_over(b)) {
        wbatch_release_pending(b);
    } else {
        /* sandbox: rendered and recorded, never handed to a deliverer */
        for (size_t i = 0; i < b->njobs; i++) {
            wjob *j = &b->jobs[i];
            if (j->state == JOB_PENDING && j->msg && j->msg->sandbox)
                wjob_set(j, QUEUE_DELIVERED, 0, NULL, "sandbox: not sent", NULL, NULL,
                         json_pack("{s:b}", "sandbox", 1));
        }
        /* outcomes waiting for the recorder hold leases too: while it is behind (a slow
         * PostgreSQL), no new bulk work goes out, so nothing delivered outlives its lease
         * (the express lane's few batches do not wait) */
        while (!express && async && bqueue_len(p->record_q) > ASYNC_RECORD_HIGH &&
               !past_soft(p)) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        p->dlv->ops->deliver(p->dlv, b);
        if (async)
            return;   /* the batch comes back through on_delivered */
    }
    wbatch_drop_content(b);
    bqueue_push(p->record_q, b);
}

static void *delivery_main(void *arg)
{
    pipeline *p = arg;
    wbatch *b;
    int async = p->dlv->ops->async;
    while ((b = bqueue_pop(p->deliver_q)) != NULL) {
        int bulk = !b->urgent;   /* b may be gone once delivered */
        deliver_batch(p, b, 0);
        if (bulk)
            atomic_fetch_sub(&p->bulk_held, 1);
    }
    if (async && p->dlv->ops->finish)
        p->dlv->ops->finish(p->dlv, p->soft_end_ms, p->hard_end_ms);
    bqueue_close(p->record_q);
    return NULL;
}

/* --- recorder ------------------------------------------------------------------------ */

static void result_of(const wjob *j, queue_result *r)
{
    *r = (queue_result){j->item.account_id, j->item.id, j->item.attempt, j->outcome,
                        j->retry_in_ms, j->code, j->enhanced, j->response, j->mx, j->tls,
                        j->data, j->ip, j->duration_ms, j->transcript, j->destination,
                        j->bounce_class};
}

/* Retries a statement while PostgreSQL is down (until the hard end of a shutdown).
 * Returns the last status. */
typedef db_status (*record_fn)(db_conn *db, pipeline *p, void *items, size_t n, int *count);

static db_status with_retry(db_conn *db, pipeline *p, record_fn fn, void *items, size_t n,
                            int *count)
{
    for (;;) {
        db_status s = fn(db, p, items, n, count);
        if (s != DB_DOWN || past_hard(p))
            return s;
        struct timespec ts = {0, DB_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static db_status do_record(db_conn *db, pipeline *p, void *items, size_t n, int *count)
{
    return queue_record(db, p->id, items, n, count);
}

static db_status do_release(db_conn *db, pipeline *p, void *items, size_t n, int *count)
{
    return queue_release(db, p->id, items, n, count);
}

static db_status do_postpone(db_conn *db, pipeline *p, void *items, size_t n, int *count)
{
    return queue_postpone(db, p->id, items, n, POSTPONE_MS, count);
}

/* Records outcomes (and their events); returns how many were recorded. */
static int record_results(db_conn *db, pipeline *p, queue_result *r, size_t n)
{
    if (n == 0)
        return 0;
    int count = 0;
    db_status s = with_retry(db, p, do_record, r, n, &count);
    if (s == DB_ERROR) {
        /* one bad row must not cost the others: record them one by one, and a row that
         * still fails once more without its free-text fields */
        log_error("recording %zu outcomes failed (%s); retrying one by one", n,
                  db_last_error(db));
        count = 0;
        for (size_t i = 0; i < n; i++) {
            int c1 = 0;
            s = with_retry(db, p, do_record, &r[i], 1, &c1);
            if (s == DB_ERROR) {
                queue_result bare = r[i];
                bare.response = bare.enhanced = bare.mx = bare.tls = NULL;
                bare.ip = bare.transcript = bare.bounce_class = bare.destination = NULL;
                bare.data = NULL;
                s = with_retry(db, p, do_record, &bare, 1, &c1);
                if (s != DB_OK)
                    log_fields(LOG_ERROR, json_pack("{s:s}", "delivery_id", r[i].id),
                               "outcome %s not recorded: %s", queue_outcome_name(r[i].outcome),
                               db_last_error(db));
            }
            count += c1;
        }
        return count;
    }
    if (s != DB_OK) {
        log_error("%zu outcomes not recorded before shutdown (PostgreSQL unavailable); "
                  "their leases will expire and they will be tried again", n);
        return 0;
    }
    if ((size_t)count < n)
        log_warn("%zu outcomes not recorded: their lease had run out and the deliveries "
                 "were taken over", n - (size_t)count);
    log_debug("recorded %d outcomes", count);
    return count;
}

static void release_refs(db_conn *db, pipeline *p, queue_ref *r, size_t n)
{
    if (n == 0)
        return;
    int count = 0;
    db_status s = with_retry(db, p, do_release, r, n, &count);
    if (s != DB_OK)
        log_warn("%zu claimed deliveries not released (%s); they come back when their "
                 "lease expires", n, db_last_error(db));
    else
        log_info("released %d claimed deliveries untried", count);
}

static void postpone_refs(db_conn *db, pipeline *p, queue_ref *r, size_t n)
{
    if (n == 0)
        return;
    int count = 0;
    if (with_retry(db, p, do_postpone, r, n, &count) != DB_OK)
        log_warn("%zu deliveries to paused destinations not postponed (%s); they come back "
                 "when their lease expires", n, db_last_error(db));
    else
        log_info("%d deliveries to paused destinations postponed", count);
}

static void *recorder_main(void *arg)
{
    pipeline *p = arg;
    db_conn *db = conn();
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    wbatch *group[RECORD_Q_CAP + 1];
    wbatch *b;
    while ((b = bqueue_pop(p->record_q)) != NULL) {
        /* group commit: everything waiting goes into one transaction */
        size_t nb = 0, rows = 0;
        group[nb++] = b;
        rows += b->njobs;
        while (nb < sizeof group / sizeof group[0] && (b = bqueue_try_pop(p->record_q)))
            group[nb++] = b, rows += b->njobs;
        queue_result *res = xcalloc(rows ? rows : 1, sizeof *res);
        queue_ref *refs = xcalloc(rows ? rows : 1, sizeof *refs);
        queue_ref *later = xcalloc(rows ? rows : 1, sizeof *later);
        size_t nres = 0, nrefs = 0, nlater = 0;
        for (size_t k = 0; k < nb; k++)
            for (size_t i = 0; i < group[k]->njobs; i++) {
                const wjob *j = &group[k]->jobs[i];
                if (!j->item.id)
                    continue;
                if (j->state == JOB_DONE)
                    result_of(j, &res[nres++]);
                else if (j->state == JOB_POSTPONE)
                    later[nlater++] = (queue_ref){j->item.account_id, j->item.id, j->item.attempt};
                else
                    refs[nrefs++] = (queue_ref){j->item.account_id, j->item.id, j->item.attempt};
            }
        if (record_results(db, p, res, nres) > 0)
            redis_note_events(rc);   /* webhook dispatchers look now */
        release_refs(db, p, refs, nrefs);
        postpone_refs(db, p, later, nlater);
        free(res);
        free(refs);
        free(later);
        for (size_t k = 0; k < nb; k++)
            wbatch_free(group[k]);
    }
    redis_close(rc);
    db_close(db);
    return NULL;
}

/* --- housekeeping -------------------------------------------------------------------- */

/* Runs a bounded housekeeping statement again while it keeps finding a full batch, at most
 * HK_ROUNDS times, so a backlog drains without one pass holding many locks. */
static int hk_run(pipeline *p, db_conn *db, db_status (*fn)(db_conn *, int, int *))
{
    int total = 0;
    for (int round = 0; round < HK_ROUNDS && !stopping(p); round++) {
        int n = 0;
        if (fn(db, HK_LIMIT, &n) != DB_OK)
            break;
        total += n;
        if (n < HK_LIMIT)
            break;
    }
    return total;
}

/* This worker's host_key (migration 0013): hostname, boot id and PID-namespace inode, so
 * that equal keys mean "the same processes are visible". "" when /proc cannot tell. */
static void host_key_of(const char *host, char *out, size_t n)
{
    out[0] = '\0';
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return;
    if (!fgets(boot, sizeof boot, f))
        boot[0] = '\0';
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
    ssize_t len = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    if (len <= 0 || !boot[0])
        return;
    ns[len] = '\0';
    snprintf(out, n, "%s|%s|%s", host, boot, ns);
}

/* Workers of this host_key whose process is gone (killed, crashed) give back what they held
 * now rather than when their leases run out. Only a certain death counts: kill(pid, 0)
 * failing with ESRCH in the same PID namespace; a reused pid looks alive and is left to
 * the lease. */
static void rescue_dead_peers(pipeline *p, db_conn *db)
{
    if (!p->host_key[0])
        return;
    char lease[24];
    snprintf(lease, sizeof lease, "%lld", (long long)cfg.lease_ms);
    const char *params[] = {p->host_key, p->id, lease};
    PGresult *res;
    if (db_exec(db, ST_WORKER_PEERS, params, &res) != DB_OK)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        long pid = strtol(PQgetvalue(res, i, 1), NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        const char *id = PQgetvalue(res, i, 0);
        const char *rp[] = {id};
        PGresult *r2;
        if (db_exec(db, ST_WORKER_RESCUE, rp, &r2) != DB_OK)
            continue;
        long n = PQntuples(r2) == 1 ? strtol(PQgetvalue(r2, 0, 0), NULL, 10) : 0;
        PQclear(r2);
        log_fields(LOG_WARN, json_pack("{s:s, s:i}", "dead_worker", id, "pid", (int)pid),
                   "worker %s (pid %ld) is gone: %ld deliveries it held are queued again", id,
                   pid, n);
        if (n > 0)
            atomic_store(&p->kick, 1);
    }
    PQclear(res);
}

static void *housekeeping_main(void *arg)
{
    pipeline *p = arg;
    db_conn *db = conn();
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    int64_t next_purge = 0;
    while (!stopping(p)) {
        const char *hb[] = {p->id, p->host, p->pid, p->host_key};
        if (db_exec(db, ST_WORKER_HEARTBEAT, hb, NULL) == DB_OK) {
            /* longest a claimed row can legitimately be held: waiting (one lease) plus the
             * longest SMTP transaction the timeouts allow */
            int64_t hold = cfg.lease_ms + cfg.smtp_connect_timeout_ms * 2 +
                           cfg.smtp_greeting_timeout_ms + cfg.smtp_command_timeout_ms * 4 +
                           cfg.smtp_data_init_timeout_ms + cfg.smtp_data_done_timeout_ms +
                           cfg.smtp_data_block_timeout_ms * 4;
            queue_renew_leases(db, p->id, cfg.lease_ms, hold, NULL);
            rescue_dead_peers(p, db);
            int n = hk_run(p, db, queue_sweep_leases);
            if (n > 0) {
                log_info("%d deliveries whose lease expired are queued again", n);
                atomic_store(&p->kick, 1);
            }
            n = hk_run(p, db, queue_expire);
            if (n > 0) {
                log_info("%d deliveries expired (not delivered within their queue lifetime)", n);
                redis_note_events(rc);   /* their 'expired' events, for webhooks now */
            }
            hk_run(p, db, queue_stats_rollup);
            if (p->dlv->ops->housekeep)
                p->dlv->ops->housekeep(p->dlv, db, p->id);
            if (atomic_exchange(&p->reload, 0) && p->dlv->ops->reload)
                p->dlv->ops->reload(p->dlv);
            if (time_mono_ms() >= next_purge) {
                n = hk_run(p, db, queue_purge_idempotency);
                if (n > 0)
                    log_debug("%d expired idempotency keys purged", n);
                hk_run(p, db, queue_purge_destination_status);
                hk_run(p, db, queue_purge_webhook_log);
                n = hk_run(p, db, queue_purge_transcripts);
                if (n > 0)
                    log_debug("%d SMTP transcripts past the retention period purged", n);
                n = hk_run(p, db, queue_purge_content);
                if (n > 0)
                    log_debug("%d messages past the retention period purged of content", n);
                n = hk_run(p, db, queue_purge_campaign_data);
                if (n > 0)
                    log_debug("%d campaign deliveries purged of their recipient data", n);
                hk_run(p, db, queue_events_maintain);
                hk_run(p, db, queue_trim_stats);
                next_purge = time_mono_ms() + PURGE_PERIOD_MS;
            }
        }
        nap(p, HK_PERIOD_MS);
    }
    redis_close(rc);
    db_close(db);
    return NULL;
}

/* --- lifecycle ----------------------------------------------------------------------- */

static void spawn(pthread_t *t, void *(*fn)(void *), pipeline *p, const char *name)
{
    int rc = pthread_create(t, NULL, fn, p);
    if (rc != 0)
        die("cannot start the %s thread: %s", name, strerror(rc));
}

pipeline *pipeline_start(const char *worker_id, deliverer *d)
{
    pipeline *p = xcalloc(1, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", worker_id);
    if (gethostname(p->host, sizeof p->host) != 0)
        snprintf(p->host, sizeof p->host, "unknown");
    p->host[sizeof p->host - 1] = '\0';
    host_key_of(p->host, p->host_key, sizeof p->host_key);
    snprintf(p->pid, sizeof p->pid, "%d", (int)getpid());
    p->dlv = d;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    p->nrender = cores < 1 ? 1 : cores > MAX_RENDER ? MAX_RENDER : (int)cores;
    p->render_q = bqueue_new((size_t)p->nrender);
    p->deliver_q = bqueue_new(DELIVER_Q_CAP);
    p->record_q = bqueue_new(d->ops->async ? ASYNC_RECORD_CAP : RECORD_Q_CAP);
    d->done = on_delivered;
    d->done_arg = p;
    atomic_init(&p->reload, 0);
    atomic_init(&p->stopping, 0);
    atomic_init(&p->kick, 0);
    atomic_init(&p->bulk_held, 0);
    atomic_init(&p->render_running, p->nrender + 1);   /* + the express lane */
    p->render = xcalloc((size_t)p->nrender, sizeof *p->render);

    spawn(&p->recorder, recorder_main, p, "recorder");
    spawn(&p->delivery, delivery_main, p, "delivery");
    for (int i = 0; i < p->nrender; i++)
        spawn(&p->render[i], render_main, p, "render");
    spawn(&p->housekeeping, housekeeping_main, p, "housekeeping");
    spawn(&p->claimer, claimer_main, p, "claimer");
    spawn(&p->express, express_main, p, "express");
    log_fields(LOG_INFO, json_pack("{s:s, s:s, s:i, s:i}", "worker_id", p->id, "delivery",
                                   d->ops->name, "render_threads", p->nrender, "batch",
                                   CLAIM_BATCH),
               "pipeline started");
    return p;
}

void pipeline_stop(pipeline *p)
{
    int64_t now = time_mono_ms(), grace = cfg.shutdown_grace_ms;
    int64_t margin = grace / 10 > 1000 ? 1000 : grace / 10;
    p->soft_end_ms = now + grace / 2;
    p->hard_end_ms = now + grace - margin;
    atomic_store(&p->stopping, 1);   /* publishes the deadlines (seq_cst) */
}

void pipeline_reload(pipeline *p)
{
    atomic_store(&p->reload, 1);
}

void pipeline_join(pipeline *p)
{
    pthread_join(p->claimer, NULL);
    for (int i = 0; i < p->nrender; i++)
        pthread_join(p->render[i], NULL);
    pthread_join(p->express, NULL);
    pthread_join(p->delivery, NULL);
    pthread_join(p->recorder, NULL);
    pthread_join(p->housekeeping, NULL);
    bqueue_free(p->render_q);
    bqueue_free(p->deliver_q);
    bqueue_free(p->record_q);
    deliverer_free(p->dlv);
    free(p->render);
    free(p);
}
