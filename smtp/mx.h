/* smtp/mx.h - where mail for a domain goes (RFC 5321 section 5.1): its MX hosts in
 * preference order (equal preferences shuffled), up to MX_MAX_HOSTS, each with up to
 * MX_MAX_ADDRS A/AAAA addresses; the domain itself when it has no MX but has addresses
 * (implicit MX); RFC 7505 null MX (an MX whose exchange is "." is never a host: when every
 * MX record is one, the domain takes no mail). Look-ups go through c-ares (smtp/dns.h, so through
 * POSTHORN_DNS_SERVER) and answers are cached per process for their TTL. "Try again later"
 * (MX_RETRY: SERVFAIL, timeout, refused) stays apart from "there is nowhere to deliver"
 * (MX_NOTFOUND, MX_NULL). Addresses are not filtered here: the caller runs them through
 * lib/netguard so it can say which MX host was refused. */
#ifndef POSTHORN_MX_H
#define POSTHORN_MX_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MX_MAX_HOSTS 5
#define MX_MAX_ADDRS 4                  /* per host */
#define MX_NAME_MAX 253                 /* longest domain name in text, no trailing dot */
#define MX_TTL_MIN_MS     5000          /* floor of every cached answer */
#define MX_TTL_MAX_MS     3600000       /* cap of every cached answer */
#define MX_TTL_RETRY_MS   5000          /* how long a MX_RETRY result is reused */
#define MX_TTL_NEG_MS     60000         /* MX_NOTFOUND / MX_NULL without a TTL to go by */
#define MX_CACHE_MAX      1024          /* cached domains per cache */

typedef enum { MX_OK, MX_NULL, MX_NOTFOUND, MX_RETRY } mx_status;

typedef struct {
    char name[256];
    int  pref;
    int  naddrs;
    struct sockaddr_storage addr[MX_MAX_ADDRS];
    socklen_t addrlen[MX_MAX_ADDRS];
} mx_host;

typedef struct {
    mx_status status;
    int       implicit;                 /* 1: no MX records, so the domain's own A/AAAA */
    int       nhosts;
    mx_host   hosts[MX_MAX_HOSTS];
    int64_t   expires_ms;               /* monotonic clock of the cache (time_mono_ms) */
    char      err[256];                 /* one line for any status but MX_OK */
} mx_result;

typedef struct mx_cache mx_cache;

mx_cache *mx_cache_new(void);
void mx_cache_free(mx_cache *c);

/* Resolves domain (A-labels; one trailing dot allowed; case does not matter) and fills *out
 * (always, whatever the status) with port (0..65535) in every address. Hosts whose names
 * resolve to nothing are left out; MX_RETRY only when no host has an address and one of
 * them failed temporarily (err then names that host). Thread-safe; blocking, bounded
 * by about 2 * DNS_TIMEOUT_MS (the MX query, then all A/AAAA queries in parallel). A name
 * that is too long or not letters-digits-hyphens is MX_NOTFOUND without a query. Answers
 * are cached for the smallest TTL of the records used (MX_TTL_MIN_MS..MX_TTL_MAX_MS);
 * MX_RETRY for MX_TTL_RETRY_MS; MX_NOTFOUND/MX_NULL for their negative TTL or
 * MX_TTL_NEG_MS. c NULL: no cache. */
mx_status mx_resolve(mx_cache *c, const char *domain, int port, mx_result *out);

const char *mx_status_str(mx_status s);     /* "ok", "null", "notfound", "retry" */

/* ---- the pure parts, exposed for tests ------------------------------------------------ */

/* One MX record as read from DNS. */
typedef struct {
    char name[256];                     /* lower case, no trailing dot; "" is the root */
    int  pref;
} mx_record;

/* Orders recs[0..n) for delivery: by preference, each run of equal preference shuffled
 * with rnd(ctx) (uniform in 0..bound-1; NULL = crypto_random), a name listed twice kept
 * once (at its best preference); then keeps at most max. Returns how many are kept. */
int mx_order(mx_record *recs, int n, int max, uint32_t (*rnd)(void *ctx, uint32_t bound),
             void *ctx);

/* Checks domain (at most MX_NAME_MAX characters after dropping one trailing dot, labels of
 * 1..63 letters, digits and hyphens not starting or ending with a hyphen) and writes it in
 * lower case without the trailing dot to key (keylen >= MX_NAME_MAX + 1). 0, or -1. */
int mx_name_key(const char *domain, char *key, size_t keylen);

/* How long a result of status s stays cached, in ms: ttl_s is the smallest TTL of the
 * records that made it (-1 unknown). */
int64_t mx_cache_ttl_ms(mx_status s, int64_t ttl_s);

/* A cache on another clock (tests): now(ctx) in ms. */
mx_cache *mx_cache_new_clock(int64_t (*now)(void *ctx), void *ctx);
/* Stores r under key for ttl_ms from now; on a full cache the expired entries go, then the
 * entry that expires first. */
void mx_cache_put(mx_cache *c, const char *key, const mx_result *r, int64_t ttl_ms);
/* 1 and *out (ports set to port) when key has an unexpired entry, else 0. */
int  mx_cache_get(mx_cache *c, const char *key, int port, mx_result *out);
#endif
