/* worker/pipeline.h - the stages of posthorn-worker as threads joined by bounded queues:
 *
 *   claimer (db + redis) -> render pool (one per core) -> delivery -> recorder (db)
 *   express lane (db + redis): claim, render, hand to the deliverer: transactional mail
 *     while bulk batches fill the stages above (woken by ph:wake:tx)
 *   housekeeping: heartbeat, lease sweeper, expiry, idempotency purge
 *
 * The claimer claims a batch only when the render queue has room and claims again at once
 * while work remains; idle, it waits for a Redis wake-up (BLPOP ph:wake in short slices),
 * the next due row or POSTHORN_POLL_INTERVAL, polling PostgreSQL at most once a second,
 * and falls back to polling when Redis is down or flushed. Every thread has its own
 * connections and rides out PostgreSQL and Redis restarts. pipeline_stop() (SIGTERM)
 * stops claiming; what is in flight is finished, or released untried once half of
 * POSTHORN_SHUTDOWN_GRACE has passed, and the recorder gives up just before the grace
 * runs out (rows it could not record come back when their lease expires). */
#ifndef POSTHORN_PIPELINE_H
#define POSTHORN_PIPELINE_H
#include "worker/deliver.h"

typedef struct pipeline pipeline;

/* Starts every thread; the deliverer is owned by the pipeline from now on. */
pipeline *pipeline_start(const char *worker_id, deliverer *d);
/* Begins the shutdown (async-signal context not required: call from the main thread). */
void      pipeline_stop(pipeline *p);
/* SIGHUP: configuration files are re-read on the housekeeping thread. */
void      pipeline_reload(pipeline *p);
/* Waits for every thread to end and frees the pipeline. */
void      pipeline_join(pipeline *p);
#endif
