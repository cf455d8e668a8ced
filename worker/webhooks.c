/* worker/webhooks.c - see worker/webhooks.h.
 *
 * One thread: a curl multi handle and a c-ares channel drive every held endpoint's
 * attempt at once; the database work between attempts (load, form a batch, record) is a
 * few short indexed statements on this thread's own connection. Endpoint steps:
 *
 *   idle --due--> load (lease still ours? pending batch? retry time?) --> rebuild or form a
 *   batch (stored first) --> count the attempt --> resolve (c-ares) --> guard every address
 *   --> POST (curl multi) --> record the attempt --> 2xx: batch done, cursor moves, idle now
 *                                                  410: disabled, endpoint dropped
 *                                                  else: next try on the schedule
 *
 * Claims happen every claim period (POSTHORN_POLL_INTERVAL, at most a third of the lease),
 * together with the renewal of every lease held; an endpoint that is no longer returned by
 * the renewal (deleted, disabled, taken after an expiry) is dropped at once and its transfer
 * abandoned. */
#include "worker/webhooks.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/config.h"
#include "lib/crypto.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/netguard.h"
#include "lib/secretbox.h"
#include "lib/timeutil.h"
#include "smtp/dns.h"
#include "net/webhook_http.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WH_BATCH_MAX    100
#define WH_HELD_MAX     256      /* endpoints one worker dispatches at once */
#define WH_DB_RETRY_MS  1000
#define WH_BODY_MAX     (16L << 20)
#define WH_MAX_DELAY_MS (7LL * 24 * 3600 * 1000)
#define WH_SEQ_CHECK_MS 100      /* how often the ph:events counter is read */
#define WH_WAKE_CLAIM_MS 1000    /* a wake-up claims new endpoints at most this often */
#define POS_MAX         "9223372036854775807"

typedef enum { EP_IDLE, EP_RESOLVING, EP_SENDING } ep_state;

typedef struct endpoint {
    char      account[64];
    char      id[IDS_MAX + 8];
    ep_state  state;
    int64_t   due_ms;            /* monotonic: next step when idle */
    int       dropped;           /* lease gone: finish nothing, free when idle */
    int       seen;              /* renewal bookkeeping */
    int       waiting;           /* idle because its last look found no events */
    /* the attempt in progress */
    char      batch[IDS_MAX + 8];
    int       count, attempt;
    char     *body;
    size_t    bodylen;
    char     *url_text;
    wh_url    url;
    uint8_t   key[64];
    size_t    klen;
    wh_xfer  *x;
    struct endpoint *next;
} endpoint;

struct webhooks {
    char        worker_id[IDS_MAX + 8];
    pthread_t   thread;
    atomic_int  stopping;
    db_conn    *db;
    netguard   *guard;
    CURLM      *multi;
    ares_channel ch;
    int         have_ch;
    endpoint   *eps;
    int         held;
    int64_t     lease_ms, claim_period_ms, next_claim_ms, last_claim_ms;
    redis_conn *rc;              /* the ph:events counter: wake-ups (else polling only) */
    long long   ev_seq;
    int         ev_known;
    int64_t     next_seq_ms;
};

int64_t webhooks_retry_delay(const int64_t *schedule, int len, int attempt, double rnd,
                             int64_t retry_after_ms)
{
    if (len <= 0)
        return 1000;
    int i = attempt - 1;
    if (i < 0)
        i = 0;
    if (i >= len)
        i = len - 1;
    if (rnd < 0)
        rnd = 0;
    if (rnd > 1)
        rnd = 1;
    int64_t d = schedule[i] + (int64_t)((double)schedule[i] * 0.1 * rnd);
    if (retry_after_ms > d)
        d = retry_after_ms;
    return d > WH_MAX_DELAY_MS ? WH_MAX_DELAY_MS : d;
}

static double rnd01(void)
{
    uint32_t r;
    crypto_random(&r, sizeof r);
    return (double)r / 4294967295.0;
}

/* ---- endpoints --------------------------------------------------------------------------- */

static void ep_reset_attempt(endpoint *e)
{
    free(e->body);
    e->body = NULL;
    e->bodylen = 0;
    free(e->url_text);
    e->url_text = NULL;
    memset(e->key, 0, sizeof e->key);
    e->klen = 0;
    e->batch[0] = '\0';
    e->state = EP_IDLE;
}

static endpoint *ep_find(webhooks *w, const char *acc, const char *id)
{
    for (endpoint *e = w->eps; e; e = e->next)
        if (strcmp(e->account, acc) == 0 && strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void ep_abort(webhooks *w, endpoint *e)
{
    if (e->x) {
        curl_multi_remove_handle(w->multi, wh_xfer_easy(e->x));
        wh_xfer_free(e->x);
        e->x = NULL;
    }
}

/* Unlinks and frees endpoints marked dropped, unless a DNS answer is still due for them. */
static void ep_sweep(webhooks *w)
{
    endpoint **pp = &w->eps;
    while (*pp) {
        endpoint *e = *pp;
        if (e->dropped && e->state != EP_RESOLVING) {
            ep_abort(w, e);
            ep_reset_attempt(e);
            *pp = e->next;
            free(e);
            w->held--;
            continue;
        }
        pp = &e->next;
    }
}

static void ep_drop(webhooks *w, endpoint *e, const char *why)
{
    if (!e->dropped)
        log_info("webhook %s: no longer dispatched here (%s)", e->id, why);
    e->dropped = 1;
    ep_abort(w, e);
}

/* ---- leases ------------------------------------------------------------------------------ */

/* Dispatches the (account, id) rows of res this worker does not dispatch yet. */
static void adopt(webhooks *w, PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        if (ep_find(w, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)))
            continue;
        endpoint *e = calloc(1, sizeof *e);
        if (!e)
            abort();
        snprintf(e->account, sizeof e->account, "%s", PQgetvalue(res, i, 0));
        snprintf(e->id, sizeof e->id, "%s", PQgetvalue(res, i, 1));
        e->due_ms = time_mono_ms();
        e->next = w->eps;
        w->eps = e;
        w->held++;
        log_info("webhook %s: dispatched by this worker", e->id);
    }
}

static void leases(webhooks *w)
{
    char lease[24], lim[16];
    snprintf(lease, sizeof lease, "%lld", (long long)w->lease_ms);
    const char *rp[] = {w->worker_id, lease};
    PGresult *res;
    if (db_exec(w->db, ST_WH_RENEW, rp, &res) != DB_OK)
        return;   /* keep going: leases last longer than a renewal period */
    for (endpoint *e = w->eps; e; e = e->next)
        e->seen = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        endpoint *e = ep_find(w, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        if (e && !e->dropped)
            e->seen = 1;
    }
    for (endpoint *e = w->eps; e; e = e->next)
        if (!e->seen)
            ep_drop(w, e, "deleted, disabled or lease lost");
    ep_sweep(w);
    /* A row held but not dispatched (disabled while held, then enabled again) is adopted. */
    adopt(w, res);
    PQclear(res);
    if (w->held >= WH_HELD_MAX)
        return;
    snprintf(lim, sizeof lim, "%d", WH_HELD_MAX - w->held);
    const char *cp[] = {w->worker_id, lease, lim};
    if (db_exec(w->db, ST_WH_CLAIM, cp, &res) != DB_OK)
        return;
    adopt(w, res);
    PQclear(res);
}

/* ---- batches ----------------------------------------------------------------------------- */

static json_t *cell_str(PGresult *r, int i, int c)
{
    return PQgetisnull(r, i, c) ? json_null() : json_string(PQgetvalue(r, i, c));
}

static json_t *cell_json(PGresult *r, int i, int c)
{
    if (PQgetisnull(r, i, c))
        return json_null();
    json_t *v = json_loads(PQgetvalue(r, i, c), JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

/* The body of events rows: a JSON array of the objects GET /v1/events answers (same
 * members in the same order), compact. Deterministic for the same rows. */
static char *events_body(PGresult *res, size_t *len)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        char eid[64];
        snprintf(eid, sizeof eid, "evt_%s", PQgetvalue(res, i, 0));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                                             "id", eid, "type", PQgetvalue(res, i, 1),
                                             "created_at", PQgetvalue(res, i, 2), "message_id",
                                             cell_str(res, i, 3), "delivery_id",
                                             cell_str(res, i, 4), "recipient",
                                             cell_str(res, i, 5), "stream", cell_str(res, i, 6),
                                             "tags", cell_json(res, i, 7), "metadata",
                                             cell_json(res, i, 8), "data",
                                             cell_json(res, i, 9)));
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!s)
        abort();
    *len = strlen(s);
    return s;
}

static void sha_hex(const char *p, size_t n, char out[2 * SHA256_LEN + 1])
{
    uint8_t d[SHA256_LEN];
    crypto_sha256(p, n, d);
    crypto_hex(d, sizeof d, out);
}

static void resolved(void *ctx, int status, const wh_addrs *a, const char *err);
static void finish(webhooks *w, endpoint *e, const wh_result *r);

static webhooks *g_self;   /* the resolver callback's way back (one dispatcher per process) */

/* One step of an idle, due endpoint. */
static void step(webhooks *w, endpoint *e)
{
    int64_t now = time_mono_ms();
    e->waiting = 0;
    const char *lp[] = {e->account, e->id, w->worker_id};
    PGresult *res;
    db_status st = db_exec(w->db, ST_WH_LOAD, lp, &res);
    if (st != DB_OK) {
        e->due_ms = now + WH_DB_RETRY_MS;
        return;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        ep_drop(w, e, "deleted, disabled or lease lost");
        return;
    }
    int64_t wait = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    if (wait > 0) {
        PQclear(res);
        e->due_ms = now + (wait > 60000 ? 60000 : wait);
        return;
    }
    ep_reset_attempt(e);
    e->url_text = strdup(PQgetvalue(res, 0, 0));
    char *secret_hex = strdup(PQgetvalue(res, 0, 1));
    char cxid[32], cid[32], filter[512], lxid[32], lid[32], want_sha[2 * SHA256_LEN + 1] = "";
    int pending = !PQgetisnull(res, 0, 6);
    snprintf(filter, sizeof filter, "%s", PQgetvalue(res, 0, pending ? 11 : 2));
    if (pending) {
        snprintf(e->batch, sizeof e->batch, "%s", PQgetvalue(res, 0, 6));
        snprintf(cxid, sizeof cxid, "%s", PQgetvalue(res, 0, 7));
        snprintf(cid, sizeof cid, "%s", PQgetvalue(res, 0, 8));
        snprintf(lxid, sizeof lxid, "%s", PQgetvalue(res, 0, 9));
        snprintf(lid, sizeof lid, "%s", PQgetvalue(res, 0, 10));
        snprintf(want_sha, sizeof want_sha, "%s", PQgetvalue(res, 0, 13));
    } else {
        snprintf(cxid, sizeof cxid, "%s", PQgetvalue(res, 0, 3));
        snprintf(cid, sizeof cid, "%s", PQgetvalue(res, 0, 4));
        snprintf(lxid, sizeof lxid, "%s", POS_MAX);
        snprintf(lid, sizeof lid, "%s", POS_MAX);
    }
    PQclear(res);
    if (!e->url_text || !secret_hex)
        abort();

    char lim[8];
    snprintf(lim, sizeof lim, "%d", WH_BATCH_MAX);
    const char *ep[] = {e->account, cxid, cid, lxid, lid, filter, lim};
    st = db_exec(w->db, ST_WH_EVENTS, ep, &res);
    if (st != DB_OK) {
        free(secret_hex);
        e->due_ms = now + WH_DB_RETRY_MS;
        return;
    }
    int n = PQntuples(res);
    if (n == 0 && !pending) {
        PQclear(res);
        free(secret_hex);
        ep_reset_attempt(e);
        e->due_ms = now + cfg.poll_interval_ms;
        e->waiting = 1;   /* until the poll, or a wake-up (events_woken) */
        if (strcmp(filter, "*") != 0) {
            const char *sp[] = {e->account, e->id, w->worker_id, cxid, cid, filter};
            if (db_exec(w->db, ST_WH_SKIP, sp, &res) == DB_OK)
                PQclear(res);
        }
        return;
    }
    e->body = events_body(res, &e->bodylen);
    e->count = n;
    char sha[2 * SHA256_LEN + 1];
    sha_hex(e->body, e->bodylen, sha);
    if (pending) {
        PQclear(res);
        if (strcmp(sha, want_sha) != 0)
            log_warn("webhook %s: batch %s no longer has the same events (retention?); "
                     "sending what is left", e->id, e->batch);
    } else {
        char bid[IDS_MAX];
        ids_new("msg_", bid);
        snprintf(e->batch, sizeof e->batch, "%s", bid);
        snprintf(lxid, sizeof lxid, "%s", PQgetvalue(res, n - 1, 10));
        snprintf(lid, sizeof lid, "%s", PQgetvalue(res, n - 1, 11));
        PQclear(res);
        char cnt[8];
        snprintf(cnt, sizeof cnt, "%d", n);
        const char *bp[] = {e->account, e->id, e->batch, cxid, cid, lxid, lid, filter, cnt, sha,
                            w->worker_id};
        st = db_exec(w->db, ST_WH_BATCH_INSERT, bp, &res);
        int stored = st == DB_OK && strtol(PQcmdTuples(res), NULL, 10) == 1;
        if (st == DB_OK)
            PQclear(res);
        if (!stored) {   /* the cursor moved (replay) or the lease is gone: look again */
            free(secret_hex);
            ep_reset_attempt(e);
            e->due_ms = now + (st == DB_OK ? 0 : WH_DB_RETRY_MS);
            return;
        }
    }
    const char *tp[] = {e->account, e->id, e->batch, w->worker_id};
    st = db_exec(w->db, ST_WH_BATCH_TRY, tp, &res);
    if (st != DB_OK || PQntuples(res) == 0) {
        if (st == DB_OK)
            PQclear(res);
        free(secret_hex);
        ep_reset_attempt(e);
        e->due_ms = now + (st == DB_OK ? 0 : WH_DB_RETRY_MS);
        return;
    }
    e->attempt = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);

    /* the secret: hex of the box -> whsec_... -> key bytes */
    size_t hl = strlen(secret_hex);
    uint8_t *box = malloc(hl / 2 + 1);
    if (!box)
        abort();
    for (size_t i = 0; i + 1 < hl; i += 2) {
        unsigned v;
        sscanf(secret_hex + i, "%2x", &v);
        box[i / 2] = (uint8_t)v;
    }
    free(secret_hex);
    char ad[160];
    snprintf(ad, sizeof ad, "%s\n%s", e->account, e->id);
    buf plain;
    buf_init(&plain, 256);
    int ok = secretbox_open(SECRETBOX_WEBHOOK_SECRET, box, hl / 2, ad, strlen(ad), &plain) == 0;
    free(box);
    int kl = ok ? wh_secret_key(plain.data, e->key, sizeof e->key) : -1;
    if (plain.data)
        memset(plain.data, 0, plain.len);
    buf_free(&plain);
    wh_result r;
    memset(&r, 0, sizeof r);
    r.retry_after_ms = -1;
    if (kl <= 0) {
        snprintf(r.error, sizeof r.error, "the signing secret cannot be opened (POSTHORN_SECRET changed?)");
        finish(w, e, &r);
        return;
    }
    e->klen = (size_t)kl;
    const char *why = wh_url_check(e->url_text, strlen(e->url_text), &e->url);
    if (why) {
        snprintf(r.error, sizeof r.error, "url %s", why);
        finish(w, e, &r);
        return;
    }
    e->state = EP_RESOLVING;
    wh_resolve_start(w->ch, &e->url, resolved, e);
}

static void resolved(void *ctx, int status, const wh_addrs *a, const char *err)
{
    endpoint *e = ctx;
    webhooks *w = g_self;
    wh_result r;
    memset(&r, 0, sizeof r);
    r.retry_after_ms = -1;
    if (e->dropped) {
        e->state = EP_IDLE;
        return;
    }
    if (status != DNS_OK) {
        snprintf(r.error, sizeof r.error, "%s", err);
        finish(w, e, &r);
        return;
    }
    for (int i = 0; i < a->n; i++)
        if (!wh_addr_allowed(w->guard, (const struct sockaddr *)&a->addr[i], r.error,
                             sizeof r.error)) {
            finish(w, e, &r);
            return;
        }
    long long ts = (long long)time(NULL);
    char sig[WH_SIG_MAX];
    wh_sign(e->key, e->klen, e->batch, ts, e->body, e->bodylen, sig);
    wh_request rq = {.url = &e->url, .url_text = e->url_text, .addrs = a, .guard = w->guard,
                     .webhook_id = e->batch, .timestamp = ts, .signature = sig, .body = e->body,
                     .bodylen = e->bodylen, .timeout_ms = cfg.webhook_timeout_ms};
    e->x = wh_xfer_new(&rq);
    curl_easy_setopt(wh_xfer_easy(e->x), CURLOPT_PRIVATE, e);
    if (curl_multi_add_handle(w->multi, wh_xfer_easy(e->x)) != CURLM_OK) {
        wh_xfer_free(e->x);
        e->x = NULL;
        snprintf(r.error, sizeof r.error, "cannot start the request");
        finish(w, e, &r);
        return;
    }
    e->state = EP_SENDING;
}

static void fmt_duration(int64_t ms, char *out, size_t n)
{
    if (ms % 86400000 == 0)
        snprintf(out, n, "%lldd", (long long)(ms / 86400000));
    else if (ms % 3600000 == 0)
        snprintf(out, n, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(out, n, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, n, "%lldms", (long long)ms);
}

/* Records the attempt and moves the endpoint on. */
static void finish(webhooks *w, endpoint *e, const wh_result *r)
{
    int64_t now = time_mono_ms();
    char cnt[16], att[16], code[16], lat[24];
    snprintf(cnt, sizeof cnt, "%d", e->count);
    snprintf(att, sizeof att, "%d", e->attempt);
    snprintf(code, sizeof code, "%d", r->status);
    snprintf(lat, sizeof lat, "%lld", (long long)r->latency_ms);
    int ok = r->status >= 200 && r->status <= 299 && !r->error[0];
    char errtext[WH_ERR_MAX + 64];
    if (r->error[0])
        snprintf(errtext, sizeof errtext, "%s", r->error);
    else if (!ok && r->status >= 300 && r->status <= 399)
        snprintf(errtext, sizeof errtext, "redirect %d (not followed)", r->status);
    else if (!ok)
        snprintf(errtext, sizeof errtext, "HTTP %d", r->status);
    else
        errtext[0] = '\0';
    const char *ap[] = {e->account, e->id, e->batch, cnt, att, r->status > 0 ? code : NULL,
                        errtext[0] ? errtext : NULL, lat, r->snippet, w->worker_id};
    PGresult *res;
    if (db_exec(w->db, ST_WH_ATTEMPT_INSERT, ap, &res) == DB_OK)
        PQclear(res);
    log_fields(ok ? LOG_INFO : LOG_WARN,
               json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "webhook_id", e->id, "batch", e->batch,
                         "events", e->count, "attempt", e->attempt, "status", r->status, "error",
                         errtext),
               ok ? "webhook batch delivered" : "webhook attempt failed");
    const char *dp[] = {e->account, e->id, e->batch, w->worker_id};
    if (ok) {
        if (db_exec(w->db, ST_WH_BATCH_DONE, dp, &res) == DB_OK)
            PQclear(res);
        ep_reset_attempt(e);
        e->due_ms = now;
        return;
    }
    if (r->status == 410) {
        const char *xp[] = {e->account, e->id, w->worker_id, "410 Gone from endpoint"};
        if (db_exec(w->db, ST_WH_DISABLE, xp, &res) == DB_OK)
            PQclear(res);
        ep_reset_attempt(e);
        ep_drop(w, e, "410 Gone from endpoint");
        return;
    }
    int64_t delay = webhooks_retry_delay(cfg.webhook_retry_ms, cfg.webhook_retry_len, e->attempt,
                                         rnd01(), r->retry_after_ms);
    char d[24], da[24], dur[32], reason[WH_ERR_MAX + 128];
    snprintf(d, sizeof d, "%lld", (long long)delay);
    snprintf(da, sizeof da, "%lld", (long long)cfg.webhook_disable_after_ms);
    fmt_duration(cfg.webhook_disable_after_ms, dur, sizeof dur);
    snprintf(reason, sizeof reason, "no successful delivery for %s; last attempt: %s", dur, errtext);
    const char *fp[] = {e->account, e->id, w->worker_id, d, da, reason};
    ep_reset_attempt(e);
    if (db_exec(w->db, ST_WH_FAILED, fp, &res) != DB_OK) {
        e->due_ms = now + WH_DB_RETRY_MS;
        return;
    }
    int disabled = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "disabled") == 0;
    int gone = PQntuples(res) == 0;
    PQclear(res);
    if (disabled) {
        log_warn("webhook %s disabled: %s", e->id, reason);
        ep_drop(w, e, "disabled");
    } else if (gone)
        ep_drop(w, e, "deleted, disabled or lease lost");
    else
        e->due_ms = now + delay;
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void drain_multi(webhooks *w)
{
    int running = 0;
    curl_multi_perform(w->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        endpoint *e = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&e);
        if (!e || !e->x)
            continue;
        wh_result r;
        wh_xfer_result(e->x, rc, &r);
        curl_multi_remove_handle(w->multi, easy);
        wh_xfer_free(e->x);
        e->x = NULL;
        if (e->dropped) {
            e->state = EP_IDLE;
            continue;
        }
        finish(w, e, &r);
    }
}

static void loop_wait(webhooks *w, int64_t timeout_ms)
{
    struct curl_waitfd extra[ARES_GETSOCK_MAXNUM];
    int nextra = 0;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(w->ch, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = 0;
        /* the ARES_GETSOCK_* macros shift a signed 1 into the sign bit for the last slot */
        if ((unsigned)bits & (1u << i))
            ev |= CURL_WAIT_POLLIN;
        if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
            ev |= CURL_WAIT_POLLOUT;
        if (!ev)
            continue;
        extra[nextra].fd = socks[i];
        extra[nextra].events = ev;
        extra[nextra].revents = 0;
        nextra++;
    }
    if (nextra) {
        struct timeval maxtv = {0, 100000}, tv;
        struct timeval *tvp = ares_timeout(w->ch, &maxtv, &tv);
        int64_t at = (int64_t)tvp->tv_sec * 1000 + tvp->tv_usec / 1000;
        if (at < timeout_ms)
            timeout_ms = at;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    int numfds = 0;
    /* curl_multi_poll, unlike curl_multi_wait, sleeps the timeout when there is nothing to
     * wait on (no transfer, no look-up): an idle dispatcher must not spin */
    curl_multi_poll(w->multi, nextra ? extra : NULL, (unsigned)nextra, (int)timeout_ms, &numfds);
    if (nextra) {
        for (int i = 0; i < nextra; i++) {
            ares_socket_t r = (extra[i].revents & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI))
                                  ? extra[i].fd : ARES_SOCKET_BAD;
            ares_socket_t wr = (extra[i].revents & CURL_WAIT_POLLOUT) ? extra[i].fd
                                                                      : ARES_SOCKET_BAD;
            if (r != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD)
                ares_process_fd(w->ch, r, wr);
        }
        ares_process_fd(w->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timeouts */
    }
}

/* Reads the ph:events counter that event writers bump (db/redis.h); when it moved, the
 * endpoints waiting for events look now, and new endpoints are claimed soon. Without
 * Redis nothing changes: they look at their next poll. */
static void events_woken(webhooks *w, int64_t now)
{
    if (now < w->next_seq_ms)
        return;
    w->next_seq_ms = now + WH_SEQ_CHECK_MS;
    long long seq;
    if (redis_events_seq(w->rc, &seq) != 0)
        return;
    if (w->ev_known && seq != w->ev_seq) {
        for (endpoint *e = w->eps; e; e = e->next)
            if (e->state == EP_IDLE && !e->dropped && e->waiting) {
                e->waiting = 0;
                e->due_ms = now;
            }
        int64_t soonest = w->last_claim_ms + WH_WAKE_CLAIM_MS;
        if (w->next_claim_ms > soonest)
            w->next_claim_ms = soonest;
    }
    w->ev_seq = seq;
    w->ev_known = 1;
}

static void *run(void *arg)
{
    webhooks *w = arg;
    while (!atomic_load(&w->stopping)) {
        int64_t now = time_mono_ms();
        events_woken(w, now);
        if (now >= w->next_claim_ms) {
            leases(w);
            w->last_claim_ms = now;
            w->next_claim_ms = now + w->claim_period_ms;
        }
        int64_t next = w->next_claim_ms;
        for (endpoint *e = w->eps; e && !atomic_load(&w->stopping); e = e->next) {
            if (e->dropped || e->state != EP_IDLE)
                continue;
            if (e->due_ms <= time_mono_ms())
                step(w, e);
            if (e->state == EP_IDLE && !e->dropped && e->due_ms < next)
                next = e->due_ms;
        }
        ep_sweep(w);
        int64_t t = next - time_mono_ms();
        if (t > 100)
            t = 100;   /* a stop is noticed quickly */
        loop_wait(w, t);
        drain_multi(w);
        ep_sweep(w);
    }
    /* stop: abandon transfers (the batch stays pending), give the endpoints back */
    for (endpoint *e = w->eps; e; e = e->next) {
        e->dropped = 1;
        ep_abort(w, e);
    }
    ares_cancel(w->ch);   /* their callbacks see dropped endpoints */
    for (endpoint *e = w->eps; e; e = e->next)
        e->state = EP_IDLE;
    ep_sweep(w);
    const char *rp[] = {w->worker_id, "", ""};
    PGresult *res;
    if (db_exec(w->db, ST_WH_RELEASE, rp, &res) == DB_OK)
        PQclear(res);
    return NULL;
}

webhooks *webhooks_start(const char *worker_id)
{
    webhooks *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    snprintf(w->worker_id, sizeof w->worker_id, "%s", worker_id);
    char err[256];
    w->guard = netguard_new(cfg.webhook_allow_cidrs, err, sizeof err);
    if (!w->guard) {
        log_error("webhooks: POSTHORN_WEBHOOK_ALLOW_CIDRS: %s", err);
        free(w);
        return NULL;
    }
    if (dns_channel_open(&w->ch, ARES_FLAG_NOCHECKRESP, err, sizeof err) != DNS_OK) {
        log_error("webhooks: %s", err);
        netguard_free(w->guard);
        free(w);
        return NULL;
    }
    /* c-ares look-ups of the dispatcher never block: the loop drives the channel */
    w->have_ch = 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    w->multi = curl_multi_init();
    if (!w->multi)
        abort();
    curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)WH_HELD_MAX);
    w->db = db_open(cfg.database_url, "posthorn-worker webhooks");
    w->rc = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
    /* the lease outlives a whole attempt; it is renewed every claim period */
    w->lease_ms = cfg.lease_ms;
    if (w->lease_ms < 2 * cfg.webhook_timeout_ms + 5000)
        w->lease_ms = 2 * cfg.webhook_timeout_ms + 5000;
    w->claim_period_ms = cfg.poll_interval_ms;
    if (w->claim_period_ms > w->lease_ms / 3)
        w->claim_period_ms = w->lease_ms / 3;
    atomic_init(&w->stopping, 0);
    g_self = w;
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        log_error("webhooks: cannot start the dispatcher thread");
        curl_multi_cleanup(w->multi);
        ares_destroy(w->ch);
        db_close(w->db);
        netguard_free(w->guard);
        free(w);
        return NULL;
    }
    return w;
}

void webhooks_stop(webhooks *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, 1);
    pthread_join(w->thread, NULL);
    curl_multi_cleanup(w->multi);
    ares_destroy(w->ch);
    db_close(w->db);
    redis_close(w->rc);
    netguard_free(w->guard);
    g_self = NULL;
    free(w);
}
