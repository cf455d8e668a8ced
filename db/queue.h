/* db/queue.h - the delivery queue protocol that workers speak to PostgreSQL.
 * A `deliveries` row is one unit of work. queue_claim() takes a batch of due rows
 * (transactional before broadcast, FOR UPDATE SKIP LOCKED) and leases them to one worker
 * for a while; the worker then reports each row's outcome with queue_record() (state and
 * event in one transaction per batch), or gives untried rows back with queue_release().
 * Both only touch rows the worker still holds under the same attempt, so a worker whose
 * lease ran out cannot overwrite the outcome of the worker that took the row over.
 * Housekeeping returns expired leases (queue_sweep_leases), expires rows past their
 * queue lifetime (queue_expire) and purges old idempotency keys and stale destination
 * reports. Workers also publish what they see of each destination (MX site) and read the
 * operator's controls (pause, retry) from here. Every function returns a
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

/* Claims up to max due rows for worker with a lease of lease_ms; transactional rows
 * (priority 0) only when p0_only. On DB_OK *items holds *n rows (free with
 * queue_items_free; NULL when none). */
db_status queue_claim(db_conn *c, const char *worker, int64_t lease_ms, int max, int p0_only,
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
    /* For the attempt log (delivery_attempts). Appended after the fields above, in this
     * order, because initialisers are positional (worker/pipeline.c result_of()). */
    const char   *ip;             /* the MX address that was tried */
    int           duration_ms;    /* of the attempt; < 0 unknown (stored as NULL) */
    const char   *transcript;     /* the SMTP dialogue; cut to QUEUE_TRANSCRIPT_MAX bytes */
    const char   *destination;    /* the MX site; NULL keeps the delivery's last one */
    const char   *bounce_class;   /* hard, soft, block, undetermined (bounces) or NULL */
} queue_result;

/* Bytes of a transcript that are stored; a longer one is cut (on a UTF-8 boundary). */
#define QUEUE_TRANSCRIPT_MAX 16384

/* Records n outcomes, their attempt log rows and their events in one transaction (one
 * statement); *recorded (may be NULL) is how many rows this worker still held (the others'
 * leases had run out). Every recorded outcome adds one delivery_attempts row numbered with
 * its attempt, except for messages sent with sandbox: true (they never reach SMTP), and
 * sets deliveries.destination when r[i].destination is given. Text that is not valid UTF-8
 * is stored with the bad bytes replaced by '?'. */
db_status queue_record(db_conn *c, const char *worker, const queue_result *r, size_t n,
                       int *recorded);

/* A claimed row by key and attempt (for queue_release and queue_postpone). */
typedef struct {
    const char *account_id;
    const char *id;
    int         attempt;
} queue_ref;

/* Puts n claimed rows that were never tried back to `queued`, lease cleared. */
db_status queue_release(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                        int *released);

/* Postpones n claimed rows that were not tried (their destination is paused): back to
 * 'deferred' with next_attempt_at = now() + delay_ms, lease cleared, no event, and the
 * attempt they were counted for given back (a paused destination never uses up retries).
 * *count (may be NULL): the rows this worker still held. */
db_status queue_postpone(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                         int64_t delay_ms, int *count);
/* queue_postpone() that also sets the rows' deliveries.destination (NULL: keep), so that
 * GET /v1/destinations counts them as deferred there and POST .../{name}/retry makes them
 * due. */
db_status queue_postpone_for(db_conn *c, const char *worker, const queue_ref *refs, size_t n,
                             const char *destination, int64_t delay_ms, int *count);

/* ---- destinations (GET/POST /v1/destinations) ---- */

/* One destination as one worker sees it. state: active, throttled, dead or paused (any
 * other value fails the call with DB_ERROR). */
typedef struct {
    const char *name;
    int         queued;
    int         active;
    const char *state;
    const char *last_error;   /* NULL when none */
} queue_dest_status;

/* Replaces this worker's published destination rows with these n (the worker's other rows
 * are deleted; n == 0 deletes them all), stamped now. Publish at least every 10 s, changed
 * or not: the API shows only rows refreshed in the last 30 s, and
 * queue_purge_destination_status() deletes rows not refreshed for 60 s. */
db_status queue_destinations_publish(db_conn *c, const char *worker, const queue_dest_status *s,
                                     size_t n);

/* An operator control in force: paused, or a retry requested at retry_at_ms. */
typedef struct {
    char   *name;
    int     paused;
    int64_t retry_at_ms;   /* unix ms of the last POST .../retry, 0 none */
} queue_dest_control;

/* Every destination with a control in force (paused, or a retry requested), by name. On
 * DB_OK *out holds *n entries (NULL when none); free with queue_dest_controls_free. */
db_status queue_destination_controls(db_conn *c, queue_dest_control **out, size_t *n);
void queue_dest_controls_free(queue_dest_control *c, size_t n);

/* Housekeeping, each bounded by limit rows per call; *n (may be NULL) counts rows. */
db_status queue_sweep_leases(db_conn *c, int limit, int *n);
/* Deletes finished webhook batches and attempt log rows older than POSTHORN_EVENT_RETENTION. */
db_status queue_purge_webhook_log(db_conn *c, int limit, int *n);
/* Renews the leases of rows worker still holds once half their lease has gone, for rows
 * claimed less than hold_ms ago (an SMTP transaction may outlast one lease). */
db_status queue_renew_leases(db_conn *c, const char *worker, int64_t lease_ms, int64_t hold_ms,
                             int *n);
db_status queue_expire(db_conn *c, int limit, int *n);
db_status queue_purge_idempotency(db_conn *c, int limit, int *n);
/* Deletes destination_status rows not refreshed for 60 s (their worker is gone). */
db_status queue_purge_destination_status(db_conn *c, int limit, int *n);
/* Drops the transcripts of attempts older than cfg.retention_ms (POSTHORN_RETENTION). */
db_status queue_purge_transcripts(db_conn *c, int limit, int *n);

/* The name of an outcome as a state and event type ("delivered", ...). */
const char *queue_outcome_name(queue_outcome o);
/* Stats and retention (migration 0007), each bounded by limit rows per call. */
/* Folds pending stats counter rows into stats_hourly; *n rows folded (0 while another
 * worker is folding). */
db_status queue_stats_rollup(db_conn *c, int limit, int *n);
/* Purges the content, template data and attachment bytes of messages older than
 * cfg.retention_ms whose deliveries are all final (POSTHORN_RETENTION); *n messages. */
db_status queue_purge_content(db_conn *c, int limit, int *n);
/* Clears the per-recipient template data of campaign deliveries whose message
 * queue_purge_content has purged; *n deliveries. */
db_status queue_purge_campaign_data(db_conn *c, int limit, int *n);
/* Deletes hourly stats counters older than cfg.stats_retention_ms; *n rows. */
db_status queue_trim_stats(db_conn *c, int limit, int *n);
/* Events partitions: creates the daily ones of the next 7 days, drops those wholly older
 * than cfg.event_retention_ms, and deletes expired rows of the default partition (*n). */
db_status queue_events_maintain(db_conn *c, int limit, int *n);
#endif
