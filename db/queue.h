/* db/queue.h - the delivery queue protocol that workers speak to PostgreSQL.
 * A `deliveries` row is one unit of work. queue_claim() takes a batch of due rows
 * (transactional before broadcast, FOR UPDATE SKIP LOCKED) and leases them to one worker
 * for a while; the worker then reports each row's outcome with queue_record() (state and
 * event in one transaction per batch), or gives untried rows back with queue_release().
 * Both only touch rows the worker still holds under the same attempt, so a worker whose
 * lease ran out cannot overwrite the outcome of the worker that took the row over.
 * Housekeeping returns expired leases (queue_sweep_leases), expires rows past their
 * queue lifetime (queue_expire) and purges old idempotency keys. Every function returns a
 * db_status, so callers keep "retry later" (DB_DOWN) apart from "give up" (DB_ERROR). */
#ifndef POSTHORN_QUEUE_H
#define POSTHORN_QUEUE_H
#include "db/db.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* One claimed delivery. */
typedef struct {
    char *account_id;
    char *id;
    char *message_id;
    char *recipient;
    char *recipient_name;   /* NULL when none */
    char  kind[4];          /* to, cc, bcc */
    char  stream[16];       /* transactional, broadcast */
    int   attempt;          /* the number of this attempt (1 for the first) */
    int   smtputf8;
    int   priority;
} queue_item;

/* Claims up to max due rows for worker with a lease of lease_ms. On DB_OK *items holds
 * *n rows (free with queue_items_free; NULL when none). */
db_status queue_claim(db_conn *c, const char *worker, int64_t lease_ms, int max,
                      queue_item **items, int *n);
void queue_items_free(queue_item *items, int n);
void queue_item_clear(queue_item *it);

/* Milliseconds until the earliest waiting row is due: <= 0 due now, -1 nothing waiting. */
db_status queue_next_due(db_conn *c, int64_t *ms);

/* A message's stored content, as the render stage needs it. */
typedef struct {
    char  *filename;
    char  *content_type;
    char  *disposition;
    char  *content_id;     /* NULL when none */
    unsigned char *data;   /* NULL when purged by retention */
    size_t len;
} queue_attachment;

typedef struct {
    char   *stream;
    char   *from_email;
    char   *from_name;     /* NULL when none */
    json_t *reply_to;      /* {"email","name"} or NULL */
    json_t *header_to;     /* [{"email","name"}] */
    json_t *header_cc;
    json_t *content;       /* {"subject","html","text"} or {"template": {"id","version"}} */
    json_t *data;          /* template data (object) */
    json_t *headers;       /* [[name, value], ...] */
    json_t *tracking;
    int     strict;
    int     sandbox;
    int     smtputf8;
    long long created_unix;
    int     has_attachments;
    queue_attachment *att;   /* after queue_attachments_load() */
    size_t  natt;
} queue_message;

/* A message to load: its key, and where the result goes (NULL when it does not exist). */
typedef struct {
    const char     *account_id;
    const char     *message_id;
    queue_message  *msg;
    int             bad;      /* set when a stored column does not parse (msg stays NULL) */
} queue_message_req;

/* Loads n messages (without attachments) in one round trip. On an error nothing is
 * returned (every msg NULL). */
db_status queue_messages_load(db_conn *c, queue_message_req *reqs, size_t n);
/* Loads m's attachments (when m->has_attachments): kept apart so that a render thread
 * holds the attachments of one message at a time. */
db_status queue_attachments_load(db_conn *c, const char *account_id, const char *message_id,
                                 queue_message *m);
void queue_message_free(queue_message *m);

typedef enum { QUEUE_DELIVERED, QUEUE_DEFERRED, QUEUE_BOUNCED, QUEUE_FAILED } queue_outcome;

/* One outcome to record. Strings may be NULL (stored as NULL). */
typedef struct {
    const char   *account_id;
    const char   *id;
    int           attempt;
    queue_outcome outcome;
    int64_t       retry_in_ms;    /* QUEUE_DEFERRED: delay until the next attempt */
    int           code;           /* SMTP reply code, 0 for none */
    const char   *enhanced;
    const char   *response;
    const char   *mx;
    const char   *tls;
    const json_t *data;           /* event data (an object or NULL); "attempt" is added */
} queue_result;

/* Records n outcomes and their events in one transaction; *recorded (may be NULL) is how
 * many rows this worker still held (the others' leases had run out). */
db_status queue_record(db_conn *c, const char *worker, const queue_result *r, size_t n,
                       int *recorded);

/* A claimed row by key and attempt (for queue_release). */
typedef struct {
    const char *account_id;
    const char *id;
    int         attempt;
} queue_ref;

/* Puts n claimed rows that were never tried back to `queued`, lease cleared. */
db_status queue_release(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                        int *released);

/* Housekeeping, each bounded by limit rows per call; *n (may be NULL) counts rows. */
db_status queue_sweep_leases(db_conn *c, int limit, int *n);
db_status queue_expire(db_conn *c, int limit, int *n);
db_status queue_purge_idempotency(db_conn *c, int limit, int *n);

/* The name of an outcome as a state and event type ("delivered", ...). */
const char *queue_outcome_name(queue_outcome o);
#endif
