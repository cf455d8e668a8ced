/* POSTHORN_DELIVERY=mx / relay: the pipeline's batches handed to the SMTP engine
 * (smtp/engine). Each job becomes an engine job; its result becomes the job's outcome,
 * event data ({"smtp": {...}, "bounce_class"}) and attempt details; a batch goes to the
 * recorder once all its jobs have come back. The housekeeping hook publishes the engine's
 * destinations and applies the operator's pause / resume / retry. */
#include "db/queue.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "smtp/engine.h"
#include "worker/deliver.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_JOBS  64    /* outcomes handed to the recorder together */
#define FLUSH_MS    20    /* ... or after this long */

typedef struct {
    deliverer       base;
    smtp_engine    *eng;
    atomic_long     batches;       /* handed over and not yet complete */
    int64_t         last_retry_ms; /* newest operator retry applied */
    pthread_mutex_t mu;
    wbatch         *out;           /* outcomes waiting for the recorder */
    size_t          out_cap;
    int64_t         out_since_ms;
} smtp_deliverer;

/* A batch handed over: freed once every job it gave the engine has come back. */
typedef struct {
    wbatch         *b;
    atomic_size_t   left;
} batch_ref;

typedef struct {
    wjob      *j;
    batch_ref *ref;
} job_ref;

/* Moves a job with its outcome into the outgoing batch: outcomes are recorded as they
 * come, not when the slowest job of their claim batch is done. */
static void out_add(smtp_deliverer *sd, wjob *j)
{
    pthread_mutex_lock(&sd->mu);
    if (!sd->out) {
        sd->out = xcalloc(1, sizeof *sd->out);
        sd->out_cap = FLUSH_JOBS;
        sd->out->jobs = xcalloc(sd->out_cap, sizeof *sd->out->jobs);
        sd->out_since_ms = time_mono_ms();
    }
    if (sd->out->njobs == sd->out_cap) {
        sd->out_cap *= 2;
        sd->out->jobs = xrealloc(sd->out->jobs, sd->out_cap * sizeof *sd->out->jobs);
    }
    wjob *m = &sd->out->jobs[sd->out->njobs++];
    *m = *j;
    m->msg = NULL;
    memset(j, 0, sizeof *j);
    j->state = JOB_DONE;
    pthread_mutex_unlock(&sd->mu);
}

static void out_flush(smtp_deliverer *sd, int force)
{
    pthread_mutex_lock(&sd->mu);
    wbatch *b = NULL;
    if (sd->out && (force || sd->out->njobs >= FLUSH_JOBS ||
                    time_mono_ms() - sd->out_since_ms >= FLUSH_MS)) {
        b = sd->out;
        sd->out = NULL;
    }
    pthread_mutex_unlock(&sd->mu);
    if (b)
        sd->base.done(sd->base.done_arg, b);
}

static void batch_release_ref(smtp_deliverer *sd, batch_ref *ref)
{
    if (atomic_fetch_sub(&ref->left, 1) != 1)
        return;
    wbatch_free(ref->b);   /* every job has moved out; this frees the content */
    free(ref);
    atomic_fetch_sub(&sd->batches, 1);
}

static void on_tick(void *ctx) { out_flush(ctx, 0); }

static void on_result(void *ctx, const engine_result *r)
{
    smtp_deliverer *sd = ctx;
    job_ref *jr = r->job->ctx;
    wjob *j = jr->j;
    batch_ref *ref = jr->ref;
    switch (r->verdict) {
    case ENGINE_RELEASED:
        j->state = JOB_RELEASE;
        break;
    case ENGINE_POSTPONED:
        j->state = JOB_POSTPONE;
        break;
    default: {
        queue_outcome o = r->verdict == ENGINE_DELIVERED ? QUEUE_DELIVERED
                        : r->verdict == ENGINE_BOUNCED   ? QUEUE_BOUNCED
                                                         : QUEUE_DEFERRED;
        json_t *smtp = json_object();
        if (r->code)
            json_object_set_new(smtp, "code", json_integer(r->code));
        if (r->enhanced && r->enhanced[0])
            json_object_set_new(smtp, "enhanced", json_string(r->enhanced));
        if (r->text)
            json_object_set_new(smtp, "response", json_string(r->text));
        if (r->mx)
            json_object_set_new(smtp, "mx", json_string(r->mx));
        if (r->ip)
            json_object_set_new(smtp, "ip", json_string(r->ip));
        json_object_set_new(smtp, "tls", r->tls ? json_string(r->tls) : json_false());
        json_object_set_new(smtp, "attempt", json_integer(j->item.attempt));
        json_t *data = json_pack("{s:o}", "smtp", smtp);
        if (r->bounce_class)
            json_object_set_new(data, "bounce_class", json_string(r->bounce_class));
        if (r->bounce_rule)
            json_object_set_new(data, "bounce_rule", json_string(r->bounce_rule));
        if (r->bounce_rules_version)
            json_object_set_new(data, "bounce_rules_version",
                                json_string(r->bounce_rules_version));
        if (r->destination)
            json_object_set_new(data, "destination", json_string(r->destination));
        wjob_set(j, o, r->code, r->enhanced && r->enhanced[0] ? r->enhanced : NULL, r->text,
                 r->mx, r->tls, data);
        wjob_set_attempt(j, r->ip, r->transcript, r->destination, r->bounce_class,
                         r->duration_ms);
        break;
    }
    }
    free(jr);
    out_add(sd, j);
    batch_release_ref(sd, ref);
}

static int has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

static void smtp_deliver(deliverer *d, wbatch *b)
{
    smtp_deliverer *sd = (smtp_deliverer *)d;
    size_t n = 0;
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        if (j->state == JOB_PENDING && j->msg && j->msg->mime)
            n++;
    }
    atomic_fetch_add(&sd->batches, 1);
    batch_ref *ref = xcalloc(1, sizeof *ref);
    ref->b = b;
    atomic_init(&ref->left, n + 1);   /* +1: held until every job is submitted */
    /* jobs that are not the engine's (sandbox, render failures, released) go out now */
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        if (!(j->state == JOB_PENDING && j->msg && j->msg->mime) && j->item.id)
            out_add(sd, j);
    }
    if (n) {
        engine_job *jobs = xcalloc(n, sizeof *jobs);
        size_t k = 0;
        int64_t start_by = b->lease_end_ms - (cfg.lease_ms / 4 > 5000 ? 5000 : cfg.lease_ms / 4);
        for (size_t i = 0; i < b->njobs; i++) {
            wjob *j = &b->jobs[i];
            if (!(j->state == JOB_PENDING && j->msg && j->msg->mime))
                continue;
            job_ref *jr = xcalloc(1, sizeof *jr);
            jr->j = j;
            jr->ref = ref;
            engine_job *e = &jobs[k++];
            e->recipient = j->item.recipient;
            e->smtputf8 = j->item.smtputf8 || has_8bit(j->item.recipient);
            e->priority = strcmp(j->item.stream, "broadcast") == 0 ? 1 : 0;
            e->mail_from = j->env_from ? j->env_from : j->msg->from_email;
            if (j->head) {
                e->head = j->head;
                e->head_len = j->head_len;
                e->body = j->msg->mime + j->body_off;
                e->body_len = j->msg->mime_len - j->body_off;
                e->content_key = j;         /* its own head: a transaction of its own */
            } else {
                e->body = j->msg->mime;
                e->body_len = j->msg->mime_len;
                e->content_key = j->msg;
            }
            e->start_by_ms = start_by;
            e->ctx = jr;
        }
        engine_submit(sd->eng, jobs, n);
        free(jobs);
    }
    batch_release_ref(sd, ref);
    out_flush(sd, 0);
}

static void smtp_finish(deliverer *d, int64_t soft_end_ms, int64_t hard_end_ms)
{
    smtp_deliverer *sd = (smtp_deliverer *)d;
    engine_drain(sd->eng);
    (void)soft_end_ms;
    engine_stop(sd->eng, hard_end_ms);
    while (atomic_load(&sd->batches) > 0) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    out_flush(sd, 1);
}

static void smtp_housekeep(deliverer *d, db_conn *db, const char *worker_id)
{
    smtp_deliverer *sd = (smtp_deliverer *)d;
    queue_dest_control *ctl = NULL;
    size_t nctl = 0;
    if (queue_destination_controls(db, &ctl, &nctl) == DB_OK) {
        char **paused = xcalloc(nctl ? nctl : 1, sizeof *paused);
        char **retry = xcalloc(nctl ? nctl : 1, sizeof *retry);
        size_t np = 0, nr = 0;
        int64_t newest = sd->last_retry_ms;
        for (size_t i = 0; i < nctl; i++) {
            if (ctl[i].paused)
                paused[np++] = ctl[i].name;
            if (ctl[i].retry_at_ms > sd->last_retry_ms) {
                retry[nr++] = ctl[i].name;
                if (ctl[i].retry_at_ms > newest)
                    newest = ctl[i].retry_at_ms;
            }
        }
        if (sd->last_retry_ms == 0)
            nr = 0;   /* retries requested before this worker started are not news */
        sd->last_retry_ms = newest ? newest : time_wall_ms();
        engine_set_controls(sd->eng, paused, np, retry, nr);
        free(paused);
        free(retry);
        queue_dest_controls_free(ctl, nctl);
    }
    size_t n = 0;
    engine_dest_status *st = engine_snapshot(sd->eng, &n);
    queue_dest_status *qs = xcalloc(n ? n : 1, sizeof *qs);
    for (size_t i = 0; i < n; i++)
        qs[i] = (queue_dest_status){st[i].name, st[i].queued, st[i].active, st[i].state,
                                    st[i].last_error[0] ? st[i].last_error : NULL};
    queue_destinations_publish(db, worker_id, qs, n);
    free(qs);
    free(st);
}

static void smtp_reload(deliverer *d)
{
    engine_reload_policy(((smtp_deliverer *)d)->eng);
}

static void smtp_free(deliverer *d)
{
    smtp_deliverer *sd = (smtp_deliverer *)d;
    engine_free(sd->eng);
    wbatch_free(sd->out);
    pthread_mutex_destroy(&sd->mu);
    free(sd);
}

static const deliverer_ops mx_ops = {"mx", smtp_deliver, smtp_free, 1, smtp_finish,
                                     smtp_housekeep, smtp_reload};
static const deliverer_ops relay_ops = {"relay", smtp_deliver, smtp_free, 1, smtp_finish,
                                        smtp_housekeep, smtp_reload};

deliverer *deliver_smtp_new(int relay, char *err, size_t errlen)
{
    smtp_deliverer *sd = xcalloc(1, sizeof *sd);
    atomic_init(&sd->batches, 0);
    pthread_mutex_init(&sd->mu, NULL);
    engine_events ev = {on_result, on_tick};
    sd->eng = engine_start(relay ? ENGINE_MODE_RELAY : ENGINE_MODE_MX, &ev, sd, err, errlen);
    if (!sd->eng) {
        pthread_mutex_destroy(&sd->mu);
        free(sd);
        return NULL;
    }
    sd->base.ops = relay ? &relay_ops : &mx_ops;
    return &sd->base;
}
