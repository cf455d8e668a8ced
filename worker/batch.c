#include "worker/batch.h"
#include "lib/config.h"
#include "lib/crypto.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

wbatch *wbatch_new(queue_item *items, int n, int64_t lease_end_ms)
{
    wbatch *b = xcalloc(1, sizeof *b);
    b->jobs = xcalloc((size_t)(n > 0 ? n : 1), sizeof *b->jobs);
    for (int i = 0; i < n; i++) {
        b->jobs[i].item = items[i];   /* takes over the strings */
        b->jobs[i].state = JOB_PENDING;
    }
    b->njobs = (size_t)n;
    b->lease_end_ms = lease_end_ms;
    b->urgent = n > 0;
    for (int i = 0; i < n; i++)
        if (items[i].priority != 0)
            b->urgent = 0;
    free(items);
    return b;
}

static void job_clear_result(wjob *j)
{
    free(j->enhanced);
    free(j->response);
    free(j->mx);
    free(j->tls);
    json_decref(j->data);
    free(j->ip);
    free(j->transcript);
    free(j->destination);
    free(j->bounce_class);
    j->enhanced = j->response = j->mx = j->tls = NULL;
    j->ip = j->transcript = j->destination = j->bounce_class = NULL;
    j->duration_ms = 0;
    j->data = NULL;
}

void wbatch_drop_content(wbatch *b)
{
    for (size_t i = 0; i < b->nmsgs; i++) {
        free(b->msgs[i].mime);
        b->msgs[i].mime = NULL;
        b->msgs[i].mime_len = 0;
    }
    for (size_t i = 0; i < b->njobs; i++) {
        free(b->jobs[i].head);
        b->jobs[i].head = NULL;
        b->jobs[i].head_len = 0;
    }
}

void wbatch_free(wbatch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->njobs; i++) {
        job_clear_result(&b->jobs[i]);
        queue_item_clear(&b->jobs[i].item);
        free(b->jobs[i].head);
        free(b->jobs[i].env_from);
    }
    for (size_t i = 0; i < b->nmsgs; i++) {
        free(b->msgs[i].account_id);
        free(b->msgs[i].message_id);
        free(b->msgs[i].from_email);
        free(b->msgs[i].mime);
    }
    free(b->jobs);
    free(b->msgs);
    free(b);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

void wjob_set(wjob *j, queue_outcome o, int code, const char *enhanced, const char *response,
              const char *mx, const char *tls, json_t *data)
{
    job_clear_result(j);
    j->state = JOB_DONE;
    j->outcome = o;
    j->code = code;
    j->enhanced = dup_or_null(enhanced);
    j->response = dup_or_null(response);
    j->mx = dup_or_null(mx);
    j->tls = dup_or_null(tls);
    j->data = data;
    j->retry_in_ms = o == QUEUE_DEFERRED ? wjob_retry_delay(j->item.attempt) : 0;
}

void wjob_set_attempt(wjob *j, const char *ip, const char *transcript, const char *destination,
                      const char *bounce_class, int duration_ms)
{
    j->ip = dup_or_null(ip);
    j->transcript = dup_or_null(transcript);
    j->destination = dup_or_null(destination);
    j->bounce_class = dup_or_null(bounce_class);
    j->duration_ms = duration_ms;
}

void wbatch_release_pending(wbatch *b)
{
    for (size_t i = 0; i < b->njobs; i++)
        if (b->jobs[i].state == JOB_PENDING)
            b->jobs[i].state = JOB_RELEASE;
}

int64_t wjob_retry_delay(int attempt)
{
    int n = cfg.retry_schedule_len;
    if (n <= 0)
        return 60000;
    int i = attempt - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    /* up to +10% jitter so retries of one burst do not arrive together */
    int64_t d = cfg.retry_schedule_ms[i];
    uint16_t r;
    crypto_random(&r, sizeof r);
    return d + (int64_t)((uint64_t)(r % 1000) * (uint64_t)d / 10000);
}
