/* api/writer.h - the group-commit writer of posthorn-api. Handlers validate a send request,
 * turn it into a write_job (rows as JSON), suspend their connection and submit the job;
 * writer threads take every job waiting, write them all in one transaction (idempotency
 * keys checked under advisory locks, suppressions decided in SQL), commit, fill each job's
 * response and resume its connection. A request is answered 202 only after its rows are
 * committed. One request's failure (a duplicate idempotency key, a bad row) never fails
 * another: conflicts are settled before the group's inserts, and a group whose inserts fail
 * is retried one job per transaction. */
#ifndef POSTHORN_WRITER_H
#define POSTHORN_WRITER_H
#include "api/http.h"
#include "lib/crypto.h"

#include <jansson.h>

typedef struct write_job write_job;

struct write_job {
    /* filled by the handler */
    char    account_id[40];
    char   *idem_key;               /* NULL: none */
    uint8_t request_hash[SHA256_LEN];  /* of the body; set only with idem_key */
    json_t *messages;               /* array of messages rows */
    json_t *attachments;            /* array of attachments rows (content base64) */
    json_t *deliveries;             /* array of deliveries rows */
    json_t *response;               /* the answer; recipient objects get "status" */
    json_t *status_slots;           /* object: delivery id -> recipient object in response */
    json_t *message_slots;          /* array of message objects in response needing status */
    unsigned ok_status;             /* 202 single, 200 batch */
    struct MHD_Connection *conn;
    /* filled by the writer */
    int      done;
    unsigned status;
    char    *body;                  /* malloc'd */
    const char *content_type;
    int      retry_after;           /* seconds, 0 = none */
    int      replayed;
    write_job *next;
};

int  writer_start(void);
void writer_stop(void);
/* Queues the job (the caller has suspended job->conn). 0 queued; -1 when the writer's queue
 * is full or it is stopping: the caller answers 503 itself. While PostgreSQL is down every
 * group is answered 503 at once (each group tries to connect; a refused connect is
 * immediate). */
int  writer_submit(write_job *job);
/* Pending deliveries as last counted (for the 429 backpressure of handlers); -1 unknown. */
long writer_queue_depth(void);
void write_job_free(write_job *job);
#endif
