#include "api/writer.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUP_JOBS       512
#define MAX_GROUP_DELIVERIES 20000
#define MAX_QUEUED_JOBS      20000
#define DEPTH_REFRESH_MS     2000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  cond = PTHREAD_COND_INITIALIZER;
static write_job *head, *tail;
static long queued;
static int stopping;
static pthread_t *threads;
static int nthreads;
static atomic_long depth = -1;

long writer_queue_depth(void) { return atomic_load(&depth); }

void write_job_free(write_job *j)
{
    if (!j)
        return;
    free(j->idem_key);
    json_decref(j->messages);
    json_decref(j->attachments);
    json_decref(j->deliveries);
    json_decref(j->response);
    json_decref(j->status_slots);
    json_decref(j->message_slots);
    free(j->body);
    free(j);
}

int writer_submit(write_job *job)
{
    pthread_mutex_lock(&lock);
    if (stopping || queued >= MAX_QUEUED_JOBS) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    job->next = NULL;
    if (tail)
        tail->next = job;
    else
        head = job;
    tail = job;
    queued++;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return 0;
}

static void finish(write_job *j, unsigned status, char *body, const char *ctype, int retry_after)
{
    j->status = status;
    if (j->body != body)
        free(j->body);
    j->body = body;
    j->content_type = ctype;
    j->retry_after = retry_after;
    j->done = 1;
}

static char *problem_body(unsigned status, const char *title, const char *detail)
{
    json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title", title,
                          "status", (int)status, "detail", detail);
    char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    return s;
}

static void fail(write_job *j, unsigned status, const char *title, const char *detail, int ra)
{
    finish(j, status, problem_body(status, title, detail), "application/problem+json", ra);
}

static void append_all(json_t *dst, json_t *src)
{
    if (src)
        json_array_extend(dst, src);
}

static db_status exec_json(db_conn *c, db_stmt st, json_t *arr, const char *p2, PGresult **res)
{
    char *s = json_dumps(arr, JSON_COMPACT);
    if (!s)
        die("cannot serialise a write group");
    const char *params[] = {s, p2};
    db_status r = db_exec(c, st, params, res);
    free(s);
    return r;
}

/* Settles the keyed jobs: in progress elsewhere (409), replay, or conflict (409). */
static db_status settle_keys(db_conn *c, write_job **jobs, int n)
{
    json_t *keys = json_array();
    for (int i = 0; i < n; i++)
        if (jobs[i]->idem_key && !jobs[i]->done)
            json_array_append_new(keys, json_pack("{s:i, s:s, s:s}", "idx", i, "account_id",
                                                  jobs[i]->account_id, "key", jobs[i]->idem_key));
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return DB_OK;
    }
    PGresult *res;
    db_status s = exec_json(c, ST_W_IDEM_LOCK, keys, NULL, &res);
    if (s != DB_OK) {
        json_decref(keys);
        return s;
    }
    for (int r = 0; r < PQntuples(res); r++)
        if (strcmp(PQgetvalue(res, r, 1), "t") != 0) {
            write_job *j = jobs[strtol(PQgetvalue(res, r, 0), NULL, 10)];
            fail(j, 409, "Conflict",
                 "A request with this Idempotency-Key is still in progress; retry shortly.", 1);
        }
    PQclear(res);
    s = exec_json(c, ST_W_IDEM_GET, keys, NULL, &res);
    json_decref(keys);
    if (s != DB_OK)
        return s;
    for (int r = 0; r < PQntuples(res); r++) {
        write_job *j = jobs[strtol(PQgetvalue(res, r, 0), NULL, 10)];
        if (j->done)
            continue;
        char hex[2 * SHA256_LEN + 1];
        crypto_hex(j->request_hash, SHA256_LEN, hex);
        if (strcmp(hex, PQgetvalue(res, r, 1)) != 0) {
            fail(j, 409, "Conflict",
                 "This Idempotency-Key was already used with a different request body.", 0);
            continue;
        }
        finish(j, (unsigned)strtol(PQgetvalue(res, r, 2), NULL, 10),
               xstrdup(PQgetvalue(res, r, 3)), "application/json; charset=utf-8", 0);
        j->replayed = 1;
    }
    PQclear(res);
    return DB_OK;
}

static void fill_statuses(write_job *j, json_t *states)
{
    const char *id;
    json_t *slot;
    json_object_foreach(j->status_slots, id, slot) {
        json_t *st = json_object_get(states, id);
        json_object_set(slot, "status", st ? st : json_string("queued"));
    }
    size_t i;
    json_t *m;
    json_array_foreach(j->message_slots, i, m) {
        json_t *rc = json_object_get(m, "recipients");
        size_t k, total = json_array_size(rc), suppressed = 0, scheduled = 0;
        json_t *r;
        json_array_foreach(rc, k, r) {
            const char *s = json_string_value(json_object_get(r, "status"));
            if (s && strcmp(s, "suppressed") == 0)
                suppressed++;
            if (s && strcmp(s, "scheduled") == 0)
                scheduled++;
        }
        json_object_set_new(m, "status", json_string(total && suppressed == total ? "suppressed"
                                                     : scheduled ? "scheduled" : "queued"));
    }
}

/* Workers' wake-up lists: every due delivery wakes claimers (ph:wake); transactional ones
 * wake the express lanes too (ph:wake:tx), which act only while bulk work fills their
 * worker (worker/pipeline.c). */
enum { WAKE_TX, WAKE_BULK };

/* One transaction for the jobs not yet settled. queued_out[WAKE_*] counts the deliveries to
 * wake workers for. */
static db_status write_group(db_conn *c, write_job **jobs, int n, long queued_out[2],
                             int *commit_sent)
{
    *commit_sent = 0;
    db_status s = db_script(c, "BEGIN", NULL);
    if (s != DB_OK)
        return s;
    s = settle_keys(c, jobs, n);
    if (s != DB_OK)
        goto rollback;

    json_t *msgs = json_array(), *atts = json_array(), *dlvs = json_array();
    for (int i = 0; i < n; i++)
        if (!jobs[i]->done) {
            append_all(msgs, jobs[i]->messages);
            append_all(atts, jobs[i]->attachments);
            append_all(dlvs, jobs[i]->deliveries);
        }
    json_t *states = json_object();
    PGresult *res = NULL;
    if (json_array_size(msgs))
        s = exec_json(c, ST_W_MSG_INSERT, msgs, NULL, NULL);
    if (s == DB_OK && json_array_size(atts))
        s = exec_json(c, ST_W_ATT_INSERT, atts, NULL, NULL);
    if (s == DB_OK && json_array_size(dlvs)) {
        char life[32];
        snprintf(life, sizeof life, "%.3f", (double)cfg.max_queue_lifetime_ms / 1000.0);
        s = exec_json(c, ST_W_DLV_INSERT, dlvs, life, &res);
    }
    json_decref(msgs);
    json_decref(atts);
    json_decref(dlvs);
    if (s != DB_OK) {
        json_decref(states);
        goto rollback;
    }
    long wake[2] = {0, 0};
    for (int r = 0; res && r < PQntuples(res); r++) {
        const char *st = PQgetvalue(res, r, 1);
        json_object_set_new(states, PQgetvalue(res, r, 0), json_string(st));
        if (strcmp(st, "queued") == 0)
            wake[strcmp(PQgetvalue(res, r, 2), "transactional") == 0 ? WAKE_TX : WAKE_BULK]++;
    }
    PQclear(res);

    json_t *keys = json_array();
    for (int i = 0; i < n; i++) {
        write_job *j = jobs[i];
        if (j->done)
            continue;
        fill_statuses(j, states);
        char *body = json_dumps(j->response, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (j->idem_key) {
            char hex[2 * SHA256_LEN + 1];
            crypto_hex(j->request_hash, SHA256_LEN, hex);
            json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:i, s:s}", "account_id",
                                                  j->account_id, "key", j->idem_key,
                                                  "request_hash", hex, "status", (int)j->ok_status,
                                                  "response", body));
        }
        /* Not done yet: only a commit makes these answers true. */
        free(j->body);
        j->body = body;
    }
    json_decref(states);
    if (json_array_size(keys))
        s = exec_json(c, ST_W_IDEM_PUT, keys, NULL, NULL);
    json_decref(keys);
    if (s != DB_OK)
        goto rollback;
    *commit_sent = 1;
    s = db_script(c, "COMMIT", NULL);
    if (s != DB_OK)
        return s;   /* the outcome is unknown: the caller answers 503, a retry replays */
    for (int i = 0; i < n; i++)
        if (!jobs[i]->done)
            finish(jobs[i], jobs[i]->ok_status, jobs[i]->body ? jobs[i]->body : xstrdup("{}"),
                   "application/json; charset=utf-8", 0);
    queued_out[WAKE_TX] += wake[WAKE_TX];
    queued_out[WAKE_BULK] += wake[WAKE_BULK];
    return DB_OK;

rollback:
    db_script(c, "ROLLBACK", NULL);
    return s;
}

static void wake_workers(redis_conn *rc, const long n[2])
{
    redis_wake(rc, REDIS_WAKE, n[WAKE_TX] + n[WAKE_BULK]);
    redis_wake(rc, REDIS_WAKE_TX, n[WAKE_TX]);
}

static void process(db_conn *c, redis_conn *rc, write_job **jobs, int n)
{
    if (db_connect(c) != DB_OK) {
        for (int i = 0; i < n; i++)
            fail(jobs[i], 503, "Service Unavailable", "The database is unavailable; retry shortly.", 1);
        return;
    }
    long wake[2] = {0, 0};
    int sent;
    db_status s = write_group(c, jobs, n, wake, &sent);
    /* A connection that died while idle (PostgreSQL restarted) fails the first statement of
     * the group. Nothing was committed, so the group is written again on a new connection. */
    if (s == DB_DOWN && !sent && db_connect(c) == DB_OK)
        s = write_group(c, jobs, n, wake, &sent);
    if (s != DB_OK && s != DB_DOWN) {
        /* Something in one request broke the group: write each alone so the others pass. */
        int active = 0;
        for (int i = 0; i < n; i++)
            active += !jobs[i]->done;
        for (int i = 0; i < n && active > 1; i++) {
            if (jobs[i]->done)
                continue;
            s = write_group(c, &jobs[i], 1, wake, &sent);
            if (s == DB_CONFLICT)   /* lost a race on a key with another process: settle again */
                s = write_group(c, &jobs[i], 1, wake, &sent);
            if (s == DB_DOWN)
                break;
            if (s != DB_OK) {
                log_fields(LOG_ERROR, json_pack("{s:s}", "account_id", jobs[i]->account_id),
                           "write failed: %s", db_last_error(c));
                fail(jobs[i], 500, "Internal Server Error", "The message could not be stored.", 0);
            }
        }
        if (active == 1 && s == DB_CONFLICT) {
            for (int i = 0; i < n; i++)
                if (!jobs[i]->done)
                    s = write_group(c, &jobs[i], 1, wake, &sent);
        }
    }
    for (int i = 0; i < n; i++)
        if (!jobs[i]->done) {
            if (s == DB_DOWN)
                fail(jobs[i], 503, "Service Unavailable",
                     "The database is unavailable; the message was not accepted. Retry shortly.", 1);
            else
                fail(jobs[i], 500, "Internal Server Error", "The message could not be stored.", 0);
        }
    wake_workers(rc, wake);
    if (wake[WAKE_TX] + wake[WAKE_BULK] > 0)
        redis_note_events(rc);   /* their 'queued' events */
}

static void refresh_depth(db_conn *c)
{
    PGresult *res;
    if (db_exec(c, ST_QUEUE_DEPTH, NULL, &res) == DB_OK) {
        atomic_store(&depth, strtol(PQgetvalue(res, 0, 0), NULL, 10));
        PQclear(res);
    }
}

static void *writer_main(void *arg)
{
    int index = (int)(intptr_t)arg;
    db_conn *c = db_open(cfg.database_url, "posthorn-api-writer");
    db_set_timeout(c, cfg.write_timeout_ms);
    /* Every group tries to connect again: while PostgreSQL is down each group is answered
     * 503 at once (a refused connect is immediate), and the first group after it is back
     * is accepted, not refused for a throttle period. */
    db_set_reconnect_throttle(c, 0);
    redis_conn *rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    write_job *group[MAX_GROUP_JOBS];
    int64_t next_depth = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!head && !stopping) {
            if (index == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&cond, &lock, &ts);
                break;
            }
            pthread_cond_wait(&cond, &lock);
        }
        if (stopping && !head) {
            pthread_mutex_unlock(&lock);
            break;
        }
        /* Take what waits; a second job with the same key waits for the next group. */
        int n = 0;
        long dl = 0;
        write_job *deferred = NULL, **dtail = &deferred;
        while (head && n < MAX_GROUP_JOBS && dl < MAX_GROUP_DELIVERIES) {
            write_job *j = head;
            head = j->next;
            if (!head)
                tail = NULL;
            queued--;
            int dup = 0;
            for (int i = 0; i < n && j->idem_key; i++)
                if (group[i]->idem_key && strcmp(group[i]->idem_key, j->idem_key) == 0 &&
                    strcmp(group[i]->account_id, j->account_id) == 0)
                    dup = 1;
            if (dup) {
                j->next = NULL;
                *dtail = j;
                dtail = &j->next;
                continue;
            }
            group[n++] = j;
            dl += (long)json_array_size(j->deliveries);
        }
        if (deferred) {   /* back to the front, in order */
            write_job *last = deferred;
            long cnt = 1;
            while (last->next) {
                last = last->next;
                cnt++;
            }
            last->next = head;
            head = deferred;
            if (!tail)
                tail = last;
            queued += cnt;
            pthread_cond_signal(&cond);
        }
        pthread_mutex_unlock(&lock);

        if (n > 0) {
            process(c, rc, group, n);
            for (int i = 0; i < n; i++)
                MHD_resume_connection(group[i]->conn);
        }
        if (index == 0 && time_mono_ms() >= next_depth) {
            refresh_depth(c);
            next_depth = time_mono_ms() + DEPTH_REFRESH_MS;
        }
    }
    db_close(c);
    redis_close(rc);
    return NULL;
}

int writer_start(void)
{
    nthreads = cfg.db_writers;
    threads = xcalloc((size_t)nthreads, sizeof *threads);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&threads[i], NULL, writer_main, (void *)(intptr_t)i) != 0)
            die("cannot start writer thread");
    return 0;
}

/* Called after the HTTP listener has drained: no job can arrive any more. */
void writer_stop(void)
{
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
}
