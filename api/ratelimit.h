/* api/ratelimit.h - per-key token buckets (rate N/s, burst N) shared by every API process
 * through Redis (one Lua script, keys namespaced by account), with an in-process bucket
 * table as the fallback when Redis is unavailable: then each process limits on its own.
 * A busy key takes tokens from Redis in leases of rate/50 (used within 100 ms or dropped),
 * so it costs one Redis call per many requests while the shared limit still holds. */
#ifndef POSTHORN_RATELIMIT_H
#define POSTHORN_RATELIMIT_H
#include <stdint.h>

typedef struct {
    int allowed;
    int limit;          /* RateLimit-Limit: the burst */
    int remaining;      /* tokens left after this request */
    int reset_s;        /* seconds until the bucket is full again */
    int retry_after_s;  /* when refused: seconds until one token is there */
    int via_redis;      /* 0 when the local fallback decided */
} rl_result;

void ratelimit_take(const char *ns, const char *name, int rate, rl_result *out);
/* The local bucket alone, with an explicit clock (unit tests). */
void ratelimit_local(const char *key, int rate, int64_t now_ms, rl_result *out);
#endif
