/* worker/deliver.h - the delivery stage interface. A deliverer takes a rendered batch and
 * sets an outcome on every job it tries: each pending job names its recipient
 * (job->item.recipient, .smtputf8), its envelope sender (job->msg->from_email) and its
 * content (job->msg->mime, shared by the recipients of one message, so a deliverer can
 * put several RCPTs in one transaction). Outcomes: QUEUE_DELIVERED, QUEUE_DEFERRED
 * ("retry later": the row comes back after POSTHORN_RETRY_SCHEDULE), QUEUE_BOUNCED or
 * QUEUE_FAILED ("give up"); a job left JOB_PENDING is released untried. Sandbox messages
 * and jobs whose rendering failed never reach a deliverer.
 * Implemented: `file` (POSTHORN_MAIL_DIR) and `mx` / `relay` (worker/deliver_smtp.c). */
#ifndef POSTHORN_DELIVER_H
#define POSTHORN_DELIVER_H
#include "db/db.h"
#include "worker/batch.h"

#include <stddef.h>

typedef struct deliverer deliverer;

typedef struct {
    const char *name;
    /* Delivers the pending jobs of b whose message rendered (job->msg->mime != NULL). May
     * block; called by one delivery thread at a time per deliverer. */
    void (*deliver)(deliverer *d, wbatch *b);
    void (*free)(deliverer *d);
    /* Asynchronous deliverers (the SMTP engine) set async: deliver() hands the jobs over
     * and returns; the batch comes back through d->done (from another thread) once every
     * job it took has an outcome. The optional hooks below may be NULL. */
    int  async;
    /* No more batches: jobs not started by soft_end_ms are released, sessions still open
     * at hard_end_ms are cut; returns when every batch has come back through done. */
    void (*finish)(deliverer *d, int64_t soft_end_ms, int64_t hard_end_ms);
    /* Periodic, on the housekeeping thread: publish state, read operator controls. */
    void (*housekeep)(deliverer *d, db_conn *db, const char *worker_id);
    /* SIGHUP: re-read configuration files. */
    void (*reload)(deliverer *d);
} deliverer_ops;

struct deliverer {
    const deliverer_ops *ops;
    void (*done)(void *arg, wbatch *b);   /* set by the pipeline */
    void  *done_arg;
};

/* The deliverer for cfg.delivery, or NULL with a message for the operator in err (a mode
 * not built yet, an unusable mail directory). */
deliverer *deliverer_new(char *err, size_t errlen);
void       deliverer_free(deliverer *d);

/* POSTHORN_DELIVERY=file: one file per delivery attempt, <delivery_id>.<attempt>.eml in
 * dir, written atomically and durably (temporary file in dir, sync, rename, fsync of dir)
 * before the outcome is reported. */
deliverer *deliver_file_new(const char *dir, char *err, size_t errlen);

/* POSTHORN_DELIVERY=mx or relay: the SMTP engine (smtp/engine) behind this interface. */
deliverer *deliver_smtp_new(int relay, char *err, size_t errlen);
#endif
