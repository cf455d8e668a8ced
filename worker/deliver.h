/* worker/deliver.h - the delivery stage interface. A deliverer takes a rendered batch and
 * sets an outcome on every job it tries: each pending job names its recipient
 * (job->item.recipient, .smtputf8), its envelope sender (job->msg->from_email) and its
 * content (job->msg->mime, shared by the recipients of one message, so a deliverer can
 * put several RCPTs in one transaction). Outcomes: QUEUE_DELIVERED, QUEUE_DEFERRED
 * ("retry later": the row comes back after POSTHORN_RETRY_SCHEDULE), QUEUE_BOUNCED or
 * QUEUE_FAILED ("give up"); a job left JOB_PENDING is released untried. Sandbox messages
 * and jobs whose rendering failed never reach a deliverer.
 * Implemented: `file` (POSTHORN_MAIL_DIR). The SMTP engine (mx, relay) plugs in here. */
#ifndef POSTHORN_DELIVER_H
#define POSTHORN_DELIVER_H
#include "worker/batch.h"

#include <stddef.h>

typedef struct deliverer deliverer;

typedef struct {
    const char *name;
    /* Delivers the pending jobs of b whose message rendered (job->msg->mime != NULL). May
     * block; called by one delivery thread at a time per deliverer. */
    void (*deliver)(deliverer *d, wbatch *b);
    void (*free)(deliverer *d);
} deliverer_ops;

struct deliverer {
    const deliverer_ops *ops;
};

/* The deliverer for cfg.delivery, or NULL with a message for the operator in err (a mode
 * not built yet, an unusable mail directory). */
deliverer *deliverer_new(char *err, size_t errlen);
void       deliverer_free(deliverer *d);

/* POSTHORN_DELIVERY=file: one file per delivery attempt, <delivery_id>.<attempt>.eml in
 * dir, written atomically and durably (temporary file in dir, sync, rename, fsync of dir)
 * before the outcome is reported. */
deliverer *deliver_file_new(const char *dir, char *err, size_t errlen);
#endif
