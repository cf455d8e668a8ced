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

/* Returns {allowed, tokens_left (floor), retry_after_ms, full_in_ms}. Time comes from Redis
 * so all API processes share one clock. */
static const char script[] =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(v[1]) or burst\n"
    "local ts = tonumber(v[2]) or now\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end\n"
    "local allowed = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1 end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))\n"
    "local full = math.ceil((burst - tokens) * 1000 / rate)\n"
    "redis.call('PEXPIRE', KEYS[1], full + 1000)\n"
    "local retry = 0\n"
    "if allowed == 0 then retry = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "return {allowed, math.floor(tokens), retry, full}\n";

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

static redisReply *run_script(redis_conn *rc, const char *key, const char *rate)
{
    pthread_once(&sha_once, compute_sha);
    const char *argv[] = {"EVALSHA", script_sha, "1", key, rate, rate};
    redisReply *rep = redis_cmd(rc, 6, argv, NULL);
    if (!rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8) != 0)
        return rep;
    freeReplyObject(rep);   /* first use, or Redis flushed/restarted: EVAL loads it */
    const char *eval[] = {"EVAL", script, "1", key, rate, rate};
    return redis_cmd(rc, 6, eval, NULL);
}

void ratelimit_take(const char *ns, const char *name, int rate, rl_result *out)
{
    char key[128], rs[16];
    snprintf(key, sizeof key, "ph:%s:rl:key:%s", ns, name);
    snprintf(rs, sizeof rs, "%d", rate);
    redis_conn *rc = redis_thread();
    redisReply *rep = run_script(rc, key, rs);
    metrics_set_redis_up(rep != NULL);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4) {
        long long allowed = rep->element[0]->integer, tokens = rep->element[1]->integer;
        fill(out, (int)allowed, (double)tokens, rate);
        if (!allowed)
            out->retry_after_s = (int)((rep->element[2]->integer + 999) / 1000);
        if (!allowed && out->retry_after_s < 1)
            out->retry_after_s = 1;
        out->reset_s = (int)((rep->element[3]->integer + 999) / 1000);
        out->via_redis = 1;
        freeReplyObject(rep);
        return;
    }
    if (rep) {
        log_warn("rate limit script: unexpected reply type %d", rep->type);
        freeReplyObject(rep);
    }
    ratelimit_local(key, rate, time_mono_ms(), out);
}
