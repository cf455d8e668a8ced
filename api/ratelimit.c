#include "api/ratelimit.h"
#include "api/metrics.h"
#include "db/redis.h"
#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <math.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Takes up to ARGV[3] tokens at once (a lease, so a busy key costs one Redis call per many
 * requests). Returns {taken, tokens_left (floor), retry_after_ms, full_in_ms}. Time comes
 * from Redis so all API processes share one clock. */
static const char script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local want = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(v[1]) or burst\n"
    "local ts = tonumber(v[2]) or now\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end\n"
    "local taken = math.min(want, math.floor(tokens))\n"
    "if taken < 0 then taken = 0 end\n"
    "tokens = tokens - taken\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))\n"
    "local full = math.ceil((burst - tokens) * 1000 / rate)\n"
    "redis.call('PEXPIRE', KEYS[1], full + 1000)\n"
    "local retry = 0\n"
    "if taken == 0 then retry = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "return {taken, math.floor(tokens), retry, full}\n";

/* Leased tokens: a process serves a busy key from its lease for at most LEASE_MS; tokens it
 * did not use by then are dropped (never more than 1/LEASE_SHARE of the rate per process). */
#define LEASE_SHARE 50
#define LEASE_MS    100
#define LEASE_SLOTS 1024
typedef struct {
    char    key[128];
    int     left;
    int     remaining;     /* the shared bucket's level when the lease was taken */
    int     reset_s;
    int64_t expires_ms;
} lease;
static lease leases[LEASE_SLOTS];
static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;

static char script_sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

/* Redis names a script by the SHA-1 of its text. */
static void compute_sha(void)
{
    unsigned char h[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), h);
    crypto_hex(h, sizeof h, script_sha);
}

#define LOCAL_SLOTS 4096
typedef struct {
    char    key[128];
    double  tokens;
    int64_t ts_ms;
} local_bucket;
static local_bucket local[LOCAL_SLOTS];
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;

static void fill(rl_result *out, int allowed, double tokens, int rate)
{
    out->allowed = allowed;
    out->limit = rate;
    out->remaining = (int)floor(tokens);
    out->reset_s = (int)ceil((rate - tokens) / rate);
    out->retry_after_s = allowed ? 0 : (int)ceil((1.0 - tokens) / rate);
    if (!allowed && out->retry_after_s < 1)
        out->retry_after_s = 1;
}

void ratelimit_local(const char *key, int rate, int64_t now_ms, rl_result *out)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    pthread_mutex_lock(&local_lock);
    local_bucket *b = &local[h % LOCAL_SLOTS];
    if (strcmp(b->key, key) != 0) {     /* new key, or a colliding one evicts the old */
        snprintf(b->key, sizeof b->key, "%s", key);
        b->tokens = rate;
        b->ts_ms = now_ms;
    }
    if (now_ms > b->ts_ms) {
        b->tokens += (double)(now_ms - b->ts_ms) * rate / 1000.0;
        if (b->tokens > rate)
            b->tokens = rate;
        b->ts_ms = now_ms;
    }
    int allowed = b->tokens >= 1.0;
    if (allowed)
        b->tokens -= 1.0;
    fill(out, allowed, b->tokens, rate);
    out->via_redis = 0;
    pthread_mutex_unlock(&local_lock);
}

static redisReply *run_script(redis_conn *rc, const char *key, const char *rate,
                              const char *want)
{
    pthread_once(&sha_once, compute_sha);
    const char *argv[] = {"EVALSHA", script_sha, "1", key, rate, rate, want};
    redisReply *rep = redis_cmd(rc, 7, argv, NULL);
    if (!rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8) != 0)
        return rep;
    freeReplyObject(rep);   /* first use, or Redis flushed/restarted: EVAL loads it */
    const char *eval[] = {"EVAL", script, "1", key, rate, rate, want};
    return redis_cmd(rc, 7, eval, NULL);
}

static unsigned lease_slot(const char *key)
{
    unsigned h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % LEASE_SLOTS;
}

/* One token from this process's lease for key, if it holds one. */
static int from_lease(const char *key, int rate, rl_result *out)
{
    int64_t now = time_mono_ms();
    lease *l = &leases[lease_slot(key)];
    pthread_mutex_lock(&lease_lock);
    int ok = strcmp(l->key, key) == 0 && l->left > 0 && now < l->expires_ms;
    if (ok) {
        l->left--;
        out->allowed = 1;
        out->limit = rate;
        out->remaining = l->remaining + l->left;
        out->reset_s = l->reset_s;
        out->retry_after_s = 0;
        out->via_redis = 1;
    }
    pthread_mutex_unlock(&lease_lock);
    return ok;
}

void ratelimit_take(const char *ns, const char *name, int rate, rl_result *out)
{
    char key[128], rs[16], ws[16];
    snprintf(key, sizeof key, "ph:%s:rl:key:%s", ns, name);
    if (from_lease(key, rate, out))
        return;
    int want = rate / LEASE_SHARE > 1 ? rate / LEASE_SHARE : 1;
    snprintf(rs, sizeof rs, "%d", rate);
    snprintf(ws, sizeof ws, "%d", want);
    redis_conn *rc = redis_thread();
    redisReply *rep = run_script(rc, key, rs, ws);
    metrics_set_redis_up(rep != NULL);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4) {
        long long taken = rep->element[0]->integer, tokens = rep->element[1]->integer;
        int allowed = taken > 0;
        fill(out, allowed, (double)tokens + (double)(taken > 0 ? taken - 1 : 0), rate);
        if (!allowed)
            out->retry_after_s = (int)((rep->element[2]->integer + 999) / 1000);
        if (!allowed && out->retry_after_s < 1)
            out->retry_after_s = 1;
        out->reset_s = (int)((rep->element[3]->integer + 999) / 1000);
        out->via_redis = 1;
        if (taken > 1) {   /* keep the rest of the lease for the next requests */
            lease *l = &leases[lease_slot(key)];
            pthread_mutex_lock(&lease_lock);
            snprintf(l->key, sizeof l->key, "%s", key);
            l->left = (int)taken - 1;
            l->remaining = (int)tokens;
            l->reset_s = out->reset_s;
            l->expires_ms = time_mono_ms() + LEASE_MS;
            pthread_mutex_unlock(&lease_lock);
        }
        freeReplyObject(rep);
        return;
    }
    if (rep) {
        log_warn("rate limit script: unexpected reply type %d", rep->type);
        freeReplyObject(rep);
    }
    ratelimit_local(key, rate, time_mono_ms(), out);
}
