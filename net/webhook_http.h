/* net/webhook_http.h - the outbound side of webhooks, shared by the dispatcher
 * (worker/webhooks.c) and the API (validation at registration, POST /v1/webhooks/{id}/test):
 *
 *   - URL rules: http/https only, no userinfo, no spaces or control characters, <= 2048;
 *   - the address guard decision for one socket address (lib/netguard + the allow list);
 *   - host resolution with c-ares through POSTHORN_DNS_SERVER (smtp/dns.h channels), async
 *     for the dispatcher's loop and synchronous for the API;
 *   - Standard Webhooks secrets and signatures (whsec_<base64>, v1,<base64 HMAC-SHA256>);
 *   - one hardened libcurl POST: only http/https, no redirects, no proxy, NOSIGNAL,
 *     timeouts, the host pinned with CURLOPT_RESOLVE to the addresses that passed the guard,
 *     and CURLOPT_OPENSOCKETFUNCTION refusing any socket address the guard refuses, response
 *     body kept up to WH_BODY_KEEP and the transfer stopped past WH_BODY_CAP.
 * Nothing here touches the database. */
#ifndef POSTHORN_WEBHOOK_HTTP_H
#define POSTHORN_WEBHOOK_HTTP_H
#include "lib/netguard.h"

#include <ares.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define WH_URL_MAX      2048
#define WH_HOST_MAX     253
#define WH_MAX_ADDRS    8
#define WH_SNIPPET_MAX  1024          /* response bytes kept in the attempt log */
#define WH_BODY_KEEP    65536         /* response bytes kept in memory */
#define WH_BODY_CAP     (1L << 20)    /* the transfer is stopped past this many */
#define WH_SECRET_BYTES 32
#define WH_SECRET_MAX   64            /* "whsec_" + base64 of 32 bytes + NUL fits */
#define WH_SIG_MAX      64            /* "v1," + base64 of 32 bytes + NUL */
#define WH_ERR_MAX      256

typedef struct {
    int  https;
    char host[WH_HOST_MAX + 3];       /* as in the URL, without [] for IPv6 literals */
    int  host_is_ip;
    int  port;
} wh_url;

/* Checks a webhook URL (n bytes, not NUL-terminated necessarily) and fills *out. NULL when
 * valid, else the reason ("must use http or https", ...). */
const char *wh_url_check(const char *url, size_t n, wh_url *out);

/* The guard decision for one address: 1 allowed, 0 refused with why = "address refused:
 * <ip> (<category>)". g may be NULL (nothing extra allowed). */
int wh_addr_allowed(const netguard *g, const struct sockaddr *sa, char *why, size_t whylen);

typedef struct {
    int                     n;
    struct sockaddr_storage addr[WH_MAX_ADDRS];
} wh_addrs;

/* DNS_OK with at least one address, DNS_NOTFOUND or DNS_RETRY with err. */
typedef void (*wh_resolve_cb)(void *ctx, int status, const wh_addrs *a, const char *err);
/* Starts resolving u's host on ch (A and AAAA); an IP literal is answered at once. */
void wh_resolve_start(ares_channel ch, const wh_url *u, wh_resolve_cb cb, void *ctx);
/* The same, blocking (bounded by DNS_TIMEOUT_MS). */
int  wh_resolve_sync(const wh_url *u, wh_addrs *out, char *err, size_t errlen);

/* Registration check: resolves u and refuses when any address is refused by the guard.
 * 0 allowed; -1 refused (why says which address); -2 no such host, -3 DNS failure (try
 * again later); why says it. */
int  wh_check_target(const netguard *g, const wh_url *u, char *why, size_t whylen);

/* A new secret "whsec_<base64 of 32 random bytes>". */
void wh_secret_new(char out[WH_SECRET_MAX]);
/* The key bytes of a secret (base64 after "whsec_"); their length, or -1. */
int  wh_secret_key(const char *secret, uint8_t *key, size_t keymax);
/* "v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>". */
void wh_sign(const uint8_t *key, size_t klen, const char *id, long long ts, const char *body,
             size_t bodylen, char out[WH_SIG_MAX]);

/* The outcome of one POST. */
typedef struct {
    int     status;                   /* HTTP status, 0 when none was received */
    char    error[WH_ERR_MAX];        /* "" when an HTTP status was received cleanly */
    char    snippet[WH_SNIPPET_MAX + 1];   /* the start of the response, printable ASCII */
    int64_t latency_ms;
    int64_t retry_after_ms;           /* Retry-After of the response, -1 when absent */
} wh_result;

/* One POST in flight. Everything the easy handle points at lives here. */
typedef struct wh_xfer wh_xfer;

typedef struct {
    const wh_url    *url;
    const char      *url_text;
    const wh_addrs  *addrs;           /* the pinned addresses (NULL for an IP literal) */
    const netguard  *guard;
    const char      *webhook_id;      /* the batch id (webhook-id header) */
    long long        timestamp;
    const char      *signature;
    const char      *body;            /* copied */
    size_t           bodylen;
    int64_t          timeout_ms;
} wh_request;

/* A configured easy handle (wh_xfer_easy()) for rq; NULL on allocation failure. */
wh_xfer *wh_xfer_new(const wh_request *rq);
CURL    *wh_xfer_easy(wh_xfer *x);
/* Fills *out once the transfer ended with rc. */
void     wh_xfer_result(wh_xfer *x, CURLcode rc, wh_result *out);
void     wh_xfer_free(wh_xfer *x);
/* Resolves, checks, POSTs and waits: the whole attempt, blocking (the API's test). */
void     wh_post_sync(const wh_url *u, const char *url_text, const netguard *g,
                      const char *webhook_id, const uint8_t *key, size_t klen, const char *body,
                      size_t bodylen, int64_t timeout_ms, wh_result *out);

/* Parses a Retry-After value (delta seconds or an HTTP date) into ms from now; -1 if bad. */
int64_t wh_parse_retry_after(const char *v, size_t n, int64_t now_unix_s);
#endif
