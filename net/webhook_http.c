/* net/webhook_http.c - see net/webhook_http.h. */
#include "net/webhook_http.h"
#include "lib/crypto.h"
#include "lib/timeutil.h"
#include "smtp/dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- URLs -------------------------------------------------------------------------------- */

static int ldh_host(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > WH_HOST_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return (c == '\0' && label == 0 && i > 0) ? 1 : 0;   /* one trailing dot */
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        label++;
    }
    return 1;
}

const char *wh_url_check(const char *url, size_t n, wh_url *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return "is empty";
    if (n > WH_URL_MAX)
        return "is longer than 2048 characters";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return "may not contain spaces, control or non-ASCII characters";
    size_t skip;
    if (n > 7 && strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (n > 8 && strncasecmp(url, "https://", 8) == 0) {
        skip = 8;
        out->https = 1;
    } else
        return "must be an http:// or https:// URL";
    /* The authority ends at the first '/', '?' or '#'. */
    const char *a = url + skip, *end = url + n, *ae = a;
    while (ae < end && *ae != '/' && *ae != '?' && *ae != '#')
        ae++;
    if (ae == a)
        return "has no host";
    if (memchr(url, '\\', n))
        return "may not contain backslashes";
    if (memchr(a, '@', (size_t)(ae - a)))
        return "may not contain user information (user:password@)";
    /* Host and port, then the same parse by libcurl (the parser the request will use). */
    const char *h = a, *he, *pp = NULL;
    if (*h == '[') {
        he = memchr(h, ']', (size_t)(ae - h));
        if (!he)
            return "has a malformed IPv6 address";
        if (he + 1 < ae) {
            if (he[1] != ':')
                return "has a malformed host";
            pp = he + 2;
        }
        h++;
    } else {
        he = memchr(h, ':', (size_t)(ae - h));
        if (he)
            pp = he + 1;
        else
            he = ae;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl > WH_HOST_MAX)
        return "has an empty or overlong host";
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    out->port = out->https ? 443 : 80;
    if (pp) {
        if (pp == ae || ae - pp > 5)
            return "has a bad port";
        long port = 0;
        for (const char *q = pp; q < ae; q++) {
            if (*q < '0' || *q > '9')
                return "has a bad port";
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            return "has a bad port";
        out->port = (int)port;
    }
    unsigned char tmp[16];
    if (inet_pton(AF_INET6, out->host, tmp) == 1) {
        if (a[0] != '[')
            return "has a malformed host";
        out->host_is_ip = 1;
    } else if (a[0] == '[') {
        return "has a malformed IPv6 address";
    } else if (inet_pton(AF_INET, out->host, tmp) == 1) {
        out->host_is_ip = 1;
    } else {
        /* digits-and-dots that are not a dotted quad (0x7f.1, 2130706433) are refused: other
         * resolvers read them as addresses */
        int digits = 1;
        const char *last = strrchr(out->host, '.');
        for (const char *q = last ? last + 1 : out->host; *q; q++)
            if (!((*q >= '0' && *q <= '9') || *q == 'x' || *q == 'X'))
                digits = 0;
        if (digits || !ldh_host(out->host))
            return "has a host that is not a valid domain name or IP address";
    }
    pthread_once(&curl_once, curl_init);
    CURLU *cu = curl_url();
    if (!cu)
        abort();
    char *copy = strndup(url, n);
    if (!copy)
        abort();
    CURLUcode uc = curl_url_set(cu, CURLUPART_URL, copy, 0);
    const char *why = NULL;
    if (uc != CURLUE_OK)
        why = "is not a valid URL";
    else {
        char *user = NULL, *scheme = NULL, *host = NULL;
        if (curl_url_get(cu, CURLUPART_USER, &user, 0) == CURLUE_OK && user)
            why = "may not contain user information (user:password@)";
        if (!why && (curl_url_get(cu, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
                     (strcmp(scheme, "http") && strcmp(scheme, "https"))))
            why = "must be an http:// or https:// URL";
        if (!why && curl_url_get(cu, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
            size_t l = strlen(host);
            const char *hh = host;
            if (l >= 2 && host[0] == '[') {
                hh++;
                l -= 2;
            }
            if (l != strlen(out->host) || strncasecmp(hh, out->host, l) != 0)
                why = "has a host that is not a valid domain name or IP address";
        } else if (!why)
            why = "has no host";
        curl_free(user);
        curl_free(scheme);
        curl_free(host);
    }
    free(copy);
    curl_url_cleanup(cu);
    return why;
}

/* ---- the guard --------------------------------------------------------------------------- */

int wh_addr_allowed(const netguard *g, const struct sockaddr *sa, char *why, size_t whylen)
{
    const char *cat = NULL;
    if (netguard_check(g, sa, &cat))
        return 1;
    char ip[NETGUARD_ADDRSTRLEN];
    netguard_addr_str(sa, ip, sizeof ip);
    snprintf(why, whylen, "address refused: %s (%s)", ip, cat ? cat : "refused");
    return 0;
}

/* ---- resolution -------------------------------------------------------------------------- */

typedef struct {
    wh_resolve_cb cb;
    void         *ctx;
    int           port;
} resolve_req;

static int literal(const wh_url *u, wh_addrs *a)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->addr[0];
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->addr[0];
    if (inet_pton(AF_INET, u->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)u->port);
    } else if (inet_pton(AF_INET6, u->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)u->port);
    } else
        return -1;
    a->n = 1;
    return 0;
}

static void gai_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    resolve_req *rq = arg;
    wh_addrs a;
    memset(&a, 0, sizeof a);
    char err[WH_ERR_MAX] = "";
    int cls = DNS_OK;
    if (status != ARES_SUCCESS) {
        cls = dns_status_class(status);
        snprintf(err, sizeof err, "DNS: %s", dns_status_str(status));
    } else {
        for (struct ares_addrinfo_node *nd = res ? res->nodes : NULL; nd && a.n < WH_MAX_ADDRS;
             nd = nd->ai_next) {
            if (nd->ai_family == AF_INET && nd->ai_addrlen >= sizeof(struct sockaddr_in)) {
                memcpy(&a.addr[a.n], nd->ai_addr, sizeof(struct sockaddr_in));
                ((struct sockaddr_in *)&a.addr[a.n])->sin_port = htons((uint16_t)rq->port);
                a.n++;
            } else if (nd->ai_family == AF_INET6 &&
                       nd->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                memcpy(&a.addr[a.n], nd->ai_addr, sizeof(struct sockaddr_in6));
                ((struct sockaddr_in6 *)&a.addr[a.n])->sin6_port = htons((uint16_t)rq->port);
                a.n++;
            }
        }
        if (a.n == 0) {
            cls = DNS_NOTFOUND;
            snprintf(err, sizeof err, "DNS: the host has no address");
        }
    }
    if (res)
        ares_freeaddrinfo(res);
    rq->cb(rq->ctx, cls, &a, err);
    free(rq);
}

void wh_resolve_start(ares_channel ch, const wh_url *u, wh_resolve_cb cb, void *ctx)
{
    wh_addrs a;
    if (u->host_is_ip && literal(u, &a) == 0) {
        cb(ctx, DNS_OK, &a, "");
        return;
    }
    resolve_req *rq = calloc(1, sizeof *rq);
    if (!rq)
        abort();
    rq->cb = cb;
    rq->ctx = ctx;
    rq->port = u->port;
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(ch, u->host, NULL, &hints, gai_cb, rq);
}

typedef struct {
    int      done, status;
    wh_addrs a;
    char     err[WH_ERR_MAX];
} sync_res;

static void sync_cb(void *ctx, int status, const wh_addrs *a, const char *err)
{
    sync_res *s = ctx;
    s->done = 1;
    s->status = status;
    s->a = *a;
    snprintf(s->err, sizeof s->err, "%s", err);
}

int wh_resolve_sync(const wh_url *u, wh_addrs *out, char *err, size_t errlen)
{
    if (u->host_is_ip && literal(u, out) == 0)
        return DNS_OK;
    ares_channel ch;
    if (dns_channel_open(&ch, ARES_FLAG_NOCHECKRESP, err, errlen) != DNS_OK)
        return DNS_RETRY;
    sync_res s;
    memset(&s, 0, sizeof s);
    wh_resolve_start(ch, u, sync_cb, &s);
    dns_channel_run(ch, dns_now_ms() + DNS_TIMEOUT_MS);
    ares_destroy(ch);
    if (!s.done) {
        snprintf(err, errlen, "DNS: timed out");
        return DNS_RETRY;
    }
    *out = s.a;
    snprintf(err, errlen, "%s", s.err);
    return s.status;
}

int wh_check_target(const netguard *g, const wh_url *u, char *why, size_t whylen)
{
    wh_addrs a;
    int rc = wh_resolve_sync(u, &a, why, whylen);
    if (rc != DNS_OK)
        return rc == DNS_NOTFOUND ? -2 : -3;
    for (int i = 0; i < a.n; i++)
        if (!wh_addr_allowed(g, (const struct sockaddr *)&a.addr[i], why, whylen))
            return -1;
    return 0;
}

/* ---- secrets and signatures ------------------------------------------------------------- */

void wh_secret_new(char out[WH_SECRET_MAX])
{
    uint8_t key[WH_SECRET_BYTES];
    crypto_random(key, sizeof key);
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, key, sizeof key);
    memset(key, 0, sizeof key);
}

int wh_secret_key(const char *secret, uint8_t *key, size_t keymax)
{
    if (strncmp(secret, "whsec_", 6) != 0)
        return -1;
    long n = crypto_b64_decode(secret + 6, strlen(secret + 6), key, keymax);
    return n <= 0 ? -1 : (int)n;
}

void wh_sign(const uint8_t *key, size_t klen, const char *id, long long ts, const char *body,
             size_t bodylen, char out[WH_SIG_MAX])
{
    char head[128];
    int hl = snprintf(head, sizeof head, "%s.%lld.", id, ts);
    if (hl < 0 || (size_t)hl >= sizeof head)
        abort();
    size_t n = (size_t)hl + bodylen;
    char *msg = malloc(n ? n : 1);
    if (!msg)
        abort();
    memcpy(msg, head, (size_t)hl);
    memcpy(msg + hl, body, bodylen);
    uint8_t mac[SHA256_LEN];
    crypto_hmac_sha256(key, klen, msg, n, mac);
    free(msg);
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, sizeof mac);
}

/* ---- one POST ---------------------------------------------------------------------------- */

struct wh_xfer {
    CURL              *easy;
    struct curl_slist *headers;
    struct curl_slist *resolve;
    const netguard    *guard;
    char              *body;
    char              *resp;
    size_t             resp_len;      /* kept (<= WH_BODY_KEEP) */
    size_t             resp_total;    /* read */
    int                capped;
    int64_t            retry_after_ms;
    int64_t            start_ms;
    char               refused[WH_ERR_MAX];
    char               curl_err[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    wh_xfer *x = ud;
    size_t n = sz * nm;
    x->resp_total += n;
    if (x->resp_total > (size_t)WH_BODY_CAP) {
        x->capped = 1;
        return 0;                     /* stops the transfer */
    }
    size_t room = WH_BODY_KEEP - x->resp_len;
    size_t k = n < room ? n : room;
    if (k) {
        memcpy(x->resp + x->resp_len, p, k);
        x->resp_len += k;
    }
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    wh_xfer *x = ud;
    size_t n = sz * nm;
    /* a new response (e.g. after a 100) starts over */
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0)
        x->retry_after_ms = -1;
    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
        x->retry_after_ms = wh_parse_retry_after(p + 12, n - 12, (int64_t)time(NULL));
    return n;
}

static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    wh_xfer *x = ud;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!wh_addr_allowed(x->guard, &a->addr, x->refused, sizeof x->refused))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

int64_t wh_parse_retry_after(const char *v, size_t n, int64_t now_unix_s)
{
    char t[128];
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof t)
        return -1;
    memcpy(t, v, n);
    t[n] = '\0';
    int digits = 1;
    for (size_t i = 0; i < n; i++)
        if (t[i] < '0' || t[i] > '9')
            digits = 0;
    if (digits) {
        if (n > 9)
            return 999999999LL * 1000;
        return strtoll(t, NULL, 10) * 1000;
    }
    time_t when = curl_getdate(t, NULL);
    if (when == -1)
        return -1;
    int64_t d = (int64_t)when - now_unix_s;
    return d > 0 ? d * 1000 : 0;
}

wh_xfer *wh_xfer_new(const wh_request *rq)
{
    pthread_once(&curl_once, curl_init);
    wh_xfer *x = calloc(1, sizeof *x);
    if (!x)
        abort();
    x->guard = rq->guard;
    x->retry_after_ms = -1;
    x->resp = malloc(WH_BODY_KEEP + 1);
    x->body = malloc(rq->bodylen + 1);
    x->easy = curl_easy_init();
    if (!x->resp || !x->body || !x->easy)
        abort();
    memcpy(x->body, rq->body, rq->bodylen);
    x->body[rq->bodylen] = '\0';
    char h[256];
    x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    snprintf(h, sizeof h, "webhook-id: %s", rq->webhook_id);
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof h, "webhook-timestamp: %lld", rq->timestamp);
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof h, "webhook-signature: %s", rq->signature);
    x->headers = curl_slist_append(x->headers, h);
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (!x->headers)
        abort();
    if (rq->addrs && !rq->url->host_is_ip && rq->addrs->n > 0) {
        /* "host:port:addr,addr": curl connects only to these (the ones checked) */
        char entry[WH_HOST_MAX + 16 + WH_MAX_ADDRS * (NETGUARD_ADDRSTRLEN + 3)];
        int o = snprintf(entry, sizeof entry, "%s:%d:", rq->url->host, rq->url->port);
        for (int i = 0; i < rq->addrs->n; i++) {
            char ip[NETGUARD_ADDRSTRLEN];
            const struct sockaddr *sa = (const struct sockaddr *)&rq->addrs->addr[i];
            netguard_addr_str(sa, ip, sizeof ip);
            o += snprintf(entry + o, sizeof entry - (size_t)o, sa->sa_family == AF_INET6 ?
                          "%s[%s]" : "%s%s", i ? "," : "", ip);
        }
        x->resolve = curl_slist_append(NULL, entry);
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, rq->url_text);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* no protocol at all for redirects (which are not followed anyway): only the numeric
     * option can say "none" (the _STR form refuses an empty list) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, 0L);
#pragma GCC diagnostic pop
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->timeout_ms);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "Posthorn");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->bodylen);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if (x->resolve)
        curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
    x->start_ms = time_mono_ms();
    return x;
}

CURL *wh_xfer_easy(wh_xfer *x) { return x->easy; }

void wh_xfer_result(wh_xfer *x, CURLcode rc, wh_result *out)
{
    memset(out, 0, sizeof *out);
    out->latency_ms = time_mono_ms() - x->start_ms;
    out->retry_after_ms = x->retry_after_ms;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    out->status = (int)code;
    if (x->refused[0])
        snprintf(out->error, sizeof out->error, "%s", x->refused);
    else if (rc == CURLE_WRITE_ERROR && x->capped)
        snprintf(out->error, sizeof out->error, "response body over %ld bytes (stopped reading)",
                 (long)WH_BODY_CAP);
    else if (rc != CURLE_OK)
        snprintf(out->error, sizeof out->error, "%s", x->curl_err[0] ? x->curl_err :
                 curl_easy_strerror(rc));
    if (out->status > 0 && rc != CURLE_OK && !x->capped)
        out->status = 0;   /* a status without a complete response does not count */
    size_t k = x->resp_len < WH_SNIPPET_MAX ? x->resp_len : WH_SNIPPET_MAX;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)x->resp[i];
        out->snippet[i] = (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' ? (char)c : '?';
    }
    out->snippet[k] = '\0';
}

void wh_xfer_free(wh_xfer *x)
{
    if (!x)
        return;
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->resolve);
    free(x->body);
    free(x->resp);
    free(x);
}

void wh_post_sync(const wh_url *u, const char *url_text, const netguard *g,
                  const char *webhook_id, const uint8_t *key, size_t klen, const char *body,
                  size_t bodylen, int64_t timeout_ms, wh_result *out)
{
    int64_t t0 = time_mono_ms();
    wh_addrs a;
    char err[WH_ERR_MAX];
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    if (wh_resolve_sync(u, &a, err, sizeof err) != DNS_OK) {
        snprintf(out->error, sizeof out->error, "%s", err);
        out->latency_ms = time_mono_ms() - t0;
        return;
    }
    for (int i = 0; i < a.n; i++)
        if (!wh_addr_allowed(g, (const struct sockaddr *)&a.addr[i], err, sizeof err)) {
            snprintf(out->error, sizeof out->error, "%s", err);
            out->latency_ms = time_mono_ms() - t0;
            return;
        }
    long long ts = (long long)time(NULL);
    char sig[WH_SIG_MAX];
    wh_sign(key, klen, webhook_id, ts, body, bodylen, sig);
    wh_request rq = {.url = u, .url_text = url_text, .addrs = &a, .guard = g,
                     .webhook_id = webhook_id, .timestamp = ts, .signature = sig, .body = body,
                     .bodylen = bodylen, .timeout_ms = timeout_ms};
    wh_xfer *x = wh_xfer_new(&rq);
    CURLcode rc = curl_easy_perform(wh_xfer_easy(x));
    wh_xfer_result(x, rc, out);
    out->latency_ms = time_mono_ms() - t0;
    wh_xfer_free(x);
}
