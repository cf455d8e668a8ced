#include "db/redis.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define RECONNECT_THROTTLE_MS 1000

struct redis_conn {
    char host[256];
    char password[256];
    int  port;
    int  db;
    int64_t timeout_ms;
    redisContext *ctx;
    int64_t last_fail_ms;
    int up;
};

int redis_url_parse(const char *url, char *host, int *port, char *password, int *db)
{
    const char *p;
    if (strncmp(url, "redis://", 8) == 0)
        p = url + 8;
    else
        return -1;
    *port = 6379;
    *db = 0;
    password[0] = '\0';
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;   /* "user:pass@" or "pass@" */
        size_t pl = (size_t)(at - pw);
        if (pl >= 256)
            return -1;
        memcpy(password, pw, pl);
        password[pl] = '\0';
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hl);
    size_t hostlen = colon ? (size_t)(colon - p) : hl;
    if (hostlen == 0 || hostlen >= 256)
        return -1;
    memcpy(host, p, hostlen);
    host[hostlen] = '\0';
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end != p + hl || v < 1 || v > 65535)
            return -1;
        *port = (int)v;
    }
    if (slash && slash[1]) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (*end || v < 0 || v > 15)
            return -1;
        *db = (int)v;
    }
    return 0;
}

redis_conn *redis_open(const char *url, int64_t timeout_ms)
{
    redis_conn *r = xcalloc(1, sizeof *r);
    if (redis_url_parse(url, r->host, &r->port, r->password, &r->db) != 0) {
        free(r);
        return NULL;
    }
    r->timeout_ms = timeout_ms;
    return r;
}

static void drop(redis_conn *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->up = 0;
}

void redis_close(redis_conn *r)
{
    if (!r)
        return;
    drop(r);
    free(r);
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;
static void thread_free(void *p) { redis_close(p); }
static void thread_key_make(void) { pthread_key_create(&thread_key, thread_free); }

redis_conn *redis_thread(void)
{
    pthread_once(&thread_once, thread_key_make);
    redis_conn *r = pthread_getspecific(thread_key);
    if (!r) {
        r = redis_open(cfg.redis_url, cfg.redis_timeout_ms);
        if (!r)
            die("POSTHORN_REDIS_URL is not a redis:// URL");
        pthread_setspecific(thread_key, r);
    }
    return r;
}

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static int auth_and_select(redis_conn *r)
{
    redisReply *rep;
    if (r->password[0]) {
        rep = redisCommand(r->ctx, "AUTH %s", r->password);
        int ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
        if (!ok)
            return -1;
    }
    if (r->db) {
        rep = redisCommand(r->ctx, "SELECT %d", r->db);
        int ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
        if (!ok)
            return -1;
    }
    return 0;
}

static int ensure(redis_conn *r)
{
    if (!r)
        return -1;   /* no usable Redis URL: callers take their no-Redis path */
    if (r->ctx)
        return 0;
    int64_t now = time_mono_ms();
    if (r->last_fail_ms && now - r->last_fail_ms < RECONNECT_THROTTLE_MS)
        return -1;
    r->ctx = redisConnectWithTimeout(r->host, r->port, tv_of(r->timeout_ms));
    if (!r->ctx || r->ctx->err || redisSetTimeout(r->ctx, tv_of(r->timeout_ms)) != REDIS_OK ||
        auth_and_select(r) != 0) {
        if (r->ctx && r->ctx->err)
            log_debug("redis: connect %s:%d: %s", r->host, r->port, r->ctx->errstr);
        drop(r);
        r->last_fail_ms = now ? now : 1;
        return -1;
    }
    r->last_fail_ms = 0;
    return 0;
}

redisReply *redis_cmd(redis_conn *r, int argc, const char **argv, const size_t *lens)
{
    if (ensure(r) != 0)
        return NULL;
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    if (!rep) {
        drop(r);
        r->last_fail_ms = time_mono_ms();
        return NULL;
    }
    r->up = 1;
    return rep;
}

redisReply *redis_cmd_block(redis_conn *r, int64_t block_ms, int argc, const char **argv,
                            const size_t *lens)
{
    if (ensure(r) != 0)
        return NULL;
    redisSetTimeout(r->ctx, tv_of(block_ms + r->timeout_ms + 1000));
    redisReply *rep = redis_cmd(r, argc, argv, lens);
    if (r->ctx)
        redisSetTimeout(r->ctx, tv_of(r->timeout_ms));
    return rep;
}

int redis_up(redis_conn *r)
{
    return r->ctx != NULL && r->up;
}

#define EVENTS_KEY "ph:events"
#define WAKE_TOKENS_MAX 8
#define WAKE_LIST_MAX   "63"   /* LTRIM's last index */

void redis_wake(redis_conn *r, const char *key, long tokens)
{
    if (tokens <= 0)
        return;
    if (tokens > WAKE_TOKENS_MAX)
        tokens = WAKE_TOKENS_MAX;
    const char *push[2 + WAKE_TOKENS_MAX] = {"LPUSH", key};
    for (long i = 0; i < tokens; i++)
        push[2 + i] = "1";
    redisReply *rep = redis_cmd(r, 2 + (int)tokens, push, NULL);
    if (!rep)
        return;   /* workers fall back to polling */
    freeReplyObject(rep);
    const char *trim[] = {"LTRIM", key, "0", WAKE_LIST_MAX};
    rep = redis_cmd(r, 4, trim, NULL);
    if (rep)
        freeReplyObject(rep);
}

void redis_note_events(redis_conn *r)
{
    const char *argv[] = {"INCR", EVENTS_KEY};
    redisReply *rep = redis_cmd(r, 2, argv, NULL);
    if (rep)
        freeReplyObject(rep);
}

int redis_events_seq(redis_conn *r, long long *seq)
{
    const char *argv[] = {"GET", EVENTS_KEY};
    redisReply *rep = redis_cmd(r, 2, argv, NULL);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_STRING)
        *seq = strtoll(rep->str, NULL, 10);
    else if (rep->type == REDIS_REPLY_NIL)
        *seq = 0;
    else
        rc = -1;
    freeReplyObject(rep);
    return rc;
}
