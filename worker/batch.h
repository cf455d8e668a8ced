/* worker/batch.h - what flows through the worker pipeline: one claimed batch of
 * deliveries. The claimer fills jobs from queue_claim(); the render stage groups them by
 * message and gives each group one rendered message (content is rendered once per
 * message, never per recipient); the delivery stage sets each job's outcome; the recorder
 * commits the outcomes and releases the jobs that were never tried. */
#ifndef POSTHORN_BATCH_H
#define POSTHORN_BATCH_H
#include "db/queue.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* One rendered message, shared by the jobs of its recipients in the batch. */
typedef struct {
    char   *account_id;
    char   *message_id;
    char   *from_email;     /* envelope sender (Return-Path) */
    int     sandbox;
    char   *mime;           /* the message (CRLF, 7-bit); NULL when rendering failed */
    size_t  mime_len;
} wmsg;

typedef enum {
    JOB_PENDING,     /* not tried yet */
    JOB_DONE,        /* outcome set: record it */
    JOB_RELEASE,     /* never tried: give the row back to the queue */
    JOB_POSTPONE,    /* never tried, destination paused: back later, attempt not used */
} job_state;

typedef struct {
    queue_item    item;
    wmsg         *msg;          /* set by the render stage */
    job_state     state;
    queue_outcome outcome;
    int64_t       retry_in_ms;
    int           code;
    char         *enhanced, *response, *mx, *tls;
    json_t       *data;         /* event data (owned) */
    /* SMTP attempt details for delivery_attempts (owned; NULL when none) */
    char         *ip, *transcript, *destination, *bounce_class;
    int           duration_ms;
    /* This recipient's own message (broadcast: its List-Unsubscribe names the delivery, so
     * the header and DKIM signatures are per recipient): head (signatures, header, empty
     * line) then msg->mime from body_off on (the shared body). NULL: msg->mime as it is. */
    char         *head;
    size_t        head_len;
    size_t        body_off;
    char         *env_from;     /* envelope sender (VERP) or NULL: msg->from_email */
} wjob;

typedef struct {
    wjob    *jobs;
    size_t   njobs;
    wmsg    *msgs;
    size_t   nmsgs;
    int64_t  lease_end_ms;      /* monotonic time the lease runs out */
    int      urgent;            /* every job is transactional (priority 0): the express lane */
} wbatch;

/* A batch owning the claimed items (the array is taken over and freed). */
wbatch *wbatch_new(queue_item *items, int n, int64_t lease_end_ms);
void    wbatch_free(wbatch *b);
/* Sets a job's outcome (strings copied; data consumed, may be NULL). */
void    wjob_set(wjob *j, queue_outcome o, int code, const char *enhanced, const char *response,
                 const char *mx, const char *tls, json_t *data);
/* Adds the SMTP attempt details to a job whose outcome is set (strings copied). */
void    wjob_set_attempt(wjob *j, const char *ip, const char *transcript,
                         const char *destination, const char *bounce_class, int duration_ms);
/* Marks every pending job of b for release. */
void    wbatch_release_pending(wbatch *b);
/* Frees the rendered messages' content once delivery is over (results stay). */
void    wbatch_drop_content(wbatch *b);
/* Delay before attempt+1 after a temporary failure, from POSTHORN_RETRY_SCHEDULE. */
int64_t wjob_retry_delay(int attempt);
#endif
