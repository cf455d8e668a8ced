/* worker/webhooks.h - the webhook dispatcher of posthorn-worker: one thread running one
 * libcurl multi loop (plus one c-ares channel) over every endpoint this worker holds a lease
 * on, so a slow or dead endpoint only ever occupies its own transfer and never delays
 * another. Per endpoint: a cursor over the events ((xid, id) order, below the committed
 * watermark, as GET /v1/events), batches of up to 100 events stored (bounds, filter, body
 * hash) before their first attempt so every retry of one webhook-id sends the same bytes,
 * retries on POSTHORN_WEBHOOK_RETRY_SCHEDULE (jitter, Retry-After), 410 and
 * POSTHORN_WEBHOOK_DISABLE_AFTER disable, every attempt logged. Leases (lease_owner,
 * lease_expires_at on the webhook row) make exactly one worker dispatch an endpoint. */
#ifndef POSTHORN_WORKER_WEBHOOKS_H
#define POSTHORN_WORKER_WEBHOOKS_H

#include <stdint.h>

typedef struct webhooks webhooks;

/* Starts the dispatcher thread for worker_id; NULL (logged) when it cannot start. */
webhooks *webhooks_start(const char *worker_id);
/* Stops it: in-flight POSTs are abandoned (their batch is retried), leases released;
 * waits for the thread and frees everything. NULL is ignored. */
void      webhooks_stop(webhooks *w);

/* The next delay of a failed batch after attempt (1-based) failed: the schedule entry
 * (the last one repeats) plus up to 10 % jitter (rnd in 0..1), or retry_after_ms when that
 * is longer (capped at 7 days). Exposed for tests. */
int64_t   webhooks_retry_delay(const int64_t *schedule, int len, int attempt, double rnd,
                               int64_t retry_after_ms);
#endif
