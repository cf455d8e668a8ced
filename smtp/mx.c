/* smtp/mx.c - see smtp/mx.h. One c-ares channel per resolution: the MX query first, then
 * the A and AAAA queries of every kept host at once, each phase bounded by DNS_TIMEOUT_MS.
 * Answers are read with a small bounds-checked walker (c-ares 1.18 hands out neither MX
 * TTLs nor the SOA of a negative answer). The cache is a chained hash table under one
 * mutex; a DNS look-up never holds it. */
#include "smtp/mx.h"

#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "smtp/dns.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_PARSE_MAX    128     /* MX records read from one answer (the best ones kept) */
#define MX_CACHE_BUCKETS 256

#define RR_A    1
#define RR_SOA  6
#define RR_MX   15
#define RR_AAAA 28

const char *mx_status_str(mx_status s)
{
    switch (s) {
    case MX_OK:       return "ok";
    case MX_NULL:     return "null";
    case MX_NOTFOUND: return "notfound";
    case MX_RETRY:    return "retry";
    }
    return "?";
}

/* ---- names ------------------------------------------------------------------------- */

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static int ldh(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

int mx_name_key(const char *domain, char *key, size_t keylen)
{
    if (!domain)
        return -1;
    size_t n = strnlen(domain, MX_NAME_MAX + 2);
    if (n > 0 && domain[n - 1] == '.')
        n--;
    if (n == 0 || n > MX_NAME_MAX || keylen < n + 1)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = lower(domain[i]);
        if (ch == '.') {
            if (label == 0 || key[i - 1] == '-')
                return -1;
            label = 0;
        } else {
            if (!ldh(ch) || (label == 0 && ch == '-') || ++label > 63)
                return -1;
        }
        key[i] = ch;
    }
    if (label == 0 || key[n - 1] == '-')
        return -1;
    key[n] = '\0';
    return 0;
}

/* ---- ordering ------------------------------------------------------------------------ */

static uint32_t os_random(void *ctx, uint32_t bound)
{
    /* Rejection sampling: uniform in 0..bound-1. */
    uint32_t limit = UINT32_MAX - UINT32_MAX % bound, v;
    do
        crypto_random(&v, sizeof v);
    while (v >= limit);
    return v % bound;
}

static int cmp_rec(const void *pa, const void *pb)
{
    const mx_record *a = pa, *b = pb;
    if (a->pref != b->pref)
        return a->pref < b->pref ? -1 : 1;
    return strcmp(a->name, b->name);
}

int mx_order(mx_record *recs, int n, int max, uint32_t (*rnd)(void *ctx, uint32_t bound),
             void *ctx)
{
    if (n <= 0 || max <= 0)
        return 0;
    if (!rnd)
        rnd = os_random;
    qsort(recs, (size_t)n, sizeof *recs, cmp_rec);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < kept && !dup; j++)
            dup = strcmp(recs[j].name, recs[i].name) == 0;
        if (!dup)
            recs[kept++] = recs[i];
    }
    for (int i = 0; i < kept;) {
        int j = i;
        while (j < kept && recs[j].pref == recs[i].pref)
            j++;
        for (int k = j - 1; k > i; k--) {
            int r = i + (int)rnd(ctx, (uint32_t)(k - i + 1));
            if (r != k) {
                mx_record t = recs[k];
                recs[k] = recs[r];
                recs[r] = t;
            }
        }
        i = j;
    }
    return kept < max ? kept : max;
}

int64_t mx_cache_ttl_ms(mx_status s, int64_t ttl_s)
{
    int64_t ms;
    switch (s) {
    case MX_RETRY:
        return MX_TTL_RETRY_MS;
    case MX_OK:
        ms = ttl_s < 0 ? MX_TTL_MIN_MS : ttl_s * 1000;
        break;
    default:
        ms = ttl_s < 0 ? MX_TTL_NEG_MS : ttl_s * 1000;
        break;
    }
    if (ms < MX_TTL_MIN_MS)
        ms = MX_TTL_MIN_MS;
    if (ms > MX_TTL_MAX_MS)
        ms = MX_TTL_MAX_MS;
    return ms;
}

/* ---- cache --------------------------------------------------------------------------- */

typedef struct entry {
    struct entry *next;
    char          key[MX_NAME_MAX + 1];
    mx_result     r;
} entry;

struct mx_cache {
    pthread_mutex_t mu;
    int64_t (*now)(void *ctx);
    void   *ctx;
    int     n;
    entry  *b[MX_CACHE_BUCKETS];
};

static int64_t mono_now(void *ctx)
{
    return time_mono_ms();
}

mx_cache *mx_cache_new_clock(int64_t (*now)(void *ctx), void *ctx)
{
    mx_cache *c = xcalloc(1, sizeof *c);
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        die("mx: mutex");
    c->now = now ? now : mono_now;
    c->ctx = ctx;
    return c;
}

mx_cache *mx_cache_new(void)
{
    return mx_cache_new_clock(NULL, NULL);
}

void mx_cache_free(mx_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < MX_CACHE_BUCKETS; i++) {
        for (entry *e = c->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static unsigned bucket(const char *key)
{
    uint32_t h = 2166136261u;                      /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % MX_CACHE_BUCKETS;
}

static void set_ports(mx_result *r, int port)
{
    for (int i = 0; i < r->nhosts; i++) {
        mx_host *h = &r->hosts[i];
        for (int j = 0; j < h->naddrs; j++) {
            if (h->addr[j].ss_family == AF_INET)
                ((struct sockaddr_in *)&h->addr[j])->sin_port = htons((uint16_t)port);
            else if (h->addr[j].ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&h->addr[j])->sin6_port = htons((uint16_t)port);
        }
    }
}

/* Unlinks *pp (the caller holds the lock). */
static void drop(mx_cache *c, entry **pp)
{
    entry *e = *pp;
    *pp = e->next;
    free(e);
    c->n--;
}

static void evict(mx_cache *c, int64_t now)
{
    for (int i = 0; i < MX_CACHE_BUCKETS; i++) {
        for (entry **pp = &c->b[i]; *pp;) {
            if ((*pp)->r.expires_ms <= now)
                drop(c, pp);
            else
                pp = &(*pp)->next;
        }
    }
    if (c->n < MX_CACHE_MAX)
        return;
    entry **first = NULL;
    for (int i = 0; i < MX_CACHE_BUCKETS; i++)
        for (entry **pp = &c->b[i]; *pp; pp = &(*pp)->next)
            if (!first || (*pp)->r.expires_ms < (*first)->r.expires_ms)
                first = pp;
    if (first)
        drop(c, first);
}

void mx_cache_put(mx_cache *c, const char *key, const mx_result *r, int64_t ttl_ms)
{
    if (strlen(key) > MX_NAME_MAX)
        return;
    pthread_mutex_lock(&c->mu);
    int64_t now = c->now(c->ctx);
    unsigned h = bucket(key);
    entry *e = c->b[h];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (!e) {
        if (c->n >= MX_CACHE_MAX)
            evict(c, now);
        e = xcalloc(1, sizeof *e);
        memcpy(e->key, key, strlen(key) + 1);
        e->next = c->b[h];
        c->b[h] = e;
        c->n++;
    }
    e->r = *r;
    e->r.expires_ms = now + ttl_ms;
    pthread_mutex_unlock(&c->mu);
}

int mx_cache_get(mx_cache *c, const char *key, int port, mx_result *out)
{
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    int64_t now = c->now(c->ctx);
    for (entry **pp = &c->b[bucket(key)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) != 0)
            continue;
        if ((*pp)->r.expires_ms <= now) {
            drop(c, pp);
        } else {
            *out = (*pp)->r;
            set_ports(out, port);
            hit = 1;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* ---- reading answers ----------------------------------------------------------------- */

typedef struct {
    int      answer;         /* 1 answer section, 0 authority */
    int      type;
    int64_t  ttl;            /* seconds */
    int      rdoff, rdlen;
} rr_info;

/* Offset just past the (possibly compressed) name at off, or -1. */
static int skip_name(const unsigned char *m, int len, int off)
{
    for (int labels = 0; labels < 128; labels++) {
        if (off >= len)
            return -1;
        unsigned l = m[off];
        if ((l & 0xc0) == 0xc0)
            return off + 2 <= len ? off + 2 : -1;
        if (l & 0xc0)
            return -1;
        if (l == 0)
            return off + 1;
        off += 1 + (int)l;
    }
    return -1;
}

static unsigned be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Calls fn for every IN record of the answer and authority sections: 0, or -1 when the
 * message is malformed. */
static int walk(const unsigned char *m, int len,
                void (*fn)(void *ctx, const unsigned char *m, int len, const rr_info *rr),
                void *ctx)
{
    if (!m || len < 12)
        return -1;
    unsigned qd = be16(m + 4), an = be16(m + 6), ns = be16(m + 8);
    int off = 12;
    for (unsigned i = 0; i < qd; i++) {
        off = skip_name(m, len, off);
        if (off < 0 || off + 4 > len)
            return -1;
        off += 4;
    }
    for (unsigned i = 0; i < an + ns; i++) {
        off = skip_name(m, len, off);
        if (off < 0 || off + 10 > len)
            return -1;
        uint32_t ttl = be32(m + off + 4);
        rr_info rr = {
            .answer = i < an,
            .type = (int)be16(m + off),
            .ttl = ttl > 0x7fffffffu ? 0 : (int64_t)ttl,      /* RFC 2181 section 8 */
            .rdlen = (int)be16(m + off + 8),
            .rdoff = off + 10,
        };
        if (rr.rdoff + rr.rdlen > len)
            return -1;
        if (be16(m + off + 2) == ns_c_in)
            fn(ctx, m, len, &rr);
        off = rr.rdoff + rr.rdlen;
    }
    return 0;
}

static void min_ttl(int64_t *acc, int64_t ttl)
{
    if (ttl >= 0 && (*acc < 0 || ttl < *acc))
        *acc = ttl;
}

/* What one query brought back: its ares status (ARES_ETIMEOUT until answered), the
 * smallest TTL of its answer records, the negative TTL of its SOA. */
typedef struct {
    int     status;
    int64_t ttl;
    int64_t neg_ttl;
} q_common;

static void q_init(q_common *q)
{
    q->status = ARES_ETIMEOUT;
    q->ttl = -1;
    q->neg_ttl = -1;
}

static void q_rr_common(q_common *q, const unsigned char *m, const rr_info *rr)
{
    if (rr->answer)
        min_ttl(&q->ttl, rr->ttl);
    else if (rr->type == RR_SOA && rr->rdlen >= 22)   /* RFC 2308: min(SOA TTL, MINIMUM) */
        min_ttl(&q->neg_ttl, rr->ttl < be32(m + rr->rdoff + rr->rdlen - 4)
                ? rr->ttl : (int64_t)be32(m + rr->rdoff + rr->rdlen - 4));
}

static int q_status(int st)
{
    return st == ARES_ECANCELLED ? ARES_ETIMEOUT : st;
}

typedef struct {
    q_common  q;
    int       n, nnull, nbad;
    mx_record recs[MX_PARSE_MAX];
} mx_query;

static void mx_rr(void *ctx, const unsigned char *m, int len, const rr_info *rr)
{
    mx_query *mq = ctx;
    q_rr_common(&mq->q, m, rr);
    if (!rr->answer || rr->type != RR_MX || rr->rdlen < 3)
        return;
    char *name = NULL;
    long enclen;
    if (ares_expand_name(m + rr->rdoff + 2, m, len, &name, &enclen) != ARES_SUCCESS)
        return;
    mx_record rec = {.pref = (int)be16(m + rr->rdoff)};
    if (name[0] == '\0' || strcmp(name, ".") == 0)
        mq->nnull++;
    else if (mx_name_key(name, rec.name, sizeof rec.name) != 0)
        mq->nbad++;
    else if (mq->n < MX_PARSE_MAX)
        mq->recs[mq->n++] = rec;
    else {
        int worst = 0;     /* a full table keeps the best preferences */
        for (int i = 1; i < mq->n; i++)
            if (mq->recs[i].pref > mq->recs[worst].pref)
                worst = i;
        if (rec.pref < mq->recs[worst].pref)
            mq->recs[worst] = rec;
    }
    ares_free_string(name);
}

static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    mx_query *mq = arg;
    mq->q.status = q_status(status);
    if ((status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND) && abuf &&
        walk(abuf, alen, mx_rr, mq) != 0 && status == ARES_SUCCESS)
        mq->q.status = ARES_EBADRESP;
    if (mq->q.status == ARES_SUCCESS && mq->n == 0 && mq->nnull == 0 && mq->nbad == 0)
        mq->q.status = ARES_ENODATA;   /* e.g. a CNAME without MX behind it */
}

typedef struct {
    q_common q;
    int      type;                     /* RR_A or RR_AAAA */
    int      n;
    uint8_t  addr[MX_MAX_ADDRS][16];
} addr_query;

static void addr_rr(void *ctx, const unsigned char *m, int len, const rr_info *rr)
{
    addr_query *aq = ctx;
    q_rr_common(&aq->q, m, rr);
    int want = aq->type == RR_A ? 4 : 16;
    if (rr->answer && rr->type == aq->type && rr->rdlen == want && aq->n < MX_MAX_ADDRS)
        memcpy(aq->addr[aq->n++], m + rr->rdoff, (size_t)want);
}

static void addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    addr_query *aq = arg;
    aq->q.status = q_status(status);
    if ((status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND) && abuf &&
        walk(abuf, alen, addr_rr, aq) != 0 && status == ARES_SUCCESS)
        aq->q.status = ARES_EBADRESP;
    if (aq->q.status == ARES_SUCCESS && aq->n == 0)
        aq->q.status = ARES_ENODATA;
}

/* ---- resolving ----------------------------------------------------------------------- */

typedef struct {
    addr_query a, aaaa;
} host_query;

static void add_addr(mx_host *h, int type, const uint8_t *a)
{
    struct sockaddr_storage *ss = &h->addr[h->naddrs];
    memset(ss, 0, sizeof *ss);
    if (type == RR_A) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        h->addrlen[h->naddrs] = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
        h->addrlen[h->naddrs] = sizeof *s6;
    }
    h->naddrs++;
}

/* Fills h from its two answers, IPv4 and IPv6 alternating so that both families are
 * tried when both exist; adds the TTLs of the answers used to *ttl. */
static void fill_host(mx_host *h, const host_query *hq, int64_t *ttl)
{
    int i4 = 0, i6 = 0;
    while (h->naddrs < MX_MAX_ADDRS && (i4 < hq->a.n || i6 < hq->aaaa.n)) {
        if (i4 < hq->a.n)
            add_addr(h, RR_A, hq->a.addr[i4++]);
        if (h->naddrs < MX_MAX_ADDRS && i6 < hq->aaaa.n)
            add_addr(h, RR_AAAA, hq->aaaa.addr[i6++]);
    }
    if (hq->a.n)
        min_ttl(ttl, hq->a.q.ttl);
    if (hq->aaaa.n)
        min_ttl(ttl, hq->aaaa.q.ttl);
}

static mx_status fail(mx_result *out, mx_status s, const char *name, const char *why)
{
    out->status = s;
    out->nhosts = 0;
    /* A long name gives way to the reason: the reason is the point of the line. */
    size_t room = sizeof out->err - 1, wl = strlen(why) + 2, nl = strlen(name);
    if (nl + wl > room && room > wl + 3)
        snprintf(out->err, sizeof out->err, "%.*s...: %s", (int)(room - wl - 3), name, why);
    else
        snprintf(out->err, sizeof out->err, "%s: %s", name, why);
    return s;
}

/* The look-ups themselves; *ttl gets the smallest TTL (s) of what the result rests on. */
static mx_status lookup(const char *domain, mx_result *out, int64_t *ttl)
{
    char err[200];
    ares_channel ch;
    mx_status st;
    *ttl = -1;
    /* SERVFAIL and REFUSED come back as such (see smtp/dns.h), so err can say which. */
    if (dns_channel_open(&ch, ARES_FLAG_NOCHECKRESP, err, sizeof err) != DNS_OK)
        return fail(out, MX_RETRY, domain, err);
    mx_query *mq = xcalloc(1, sizeof *mq);
    host_query *hq = xcalloc(MX_MAX_HOSTS, sizeof *hq);
    q_init(&mq->q);
    ares_query(ch, domain, ns_c_in, RR_MX, mx_cb, mq);
    dns_channel_run(ch, dns_now_ms() + DNS_TIMEOUT_MS);

    int n = 0;
    switch (mq->q.status) {
    case ARES_SUCCESS:
        n = mx_order(mq->recs, mq->n, MX_MAX_HOSTS, NULL, NULL);
        min_ttl(ttl, mq->q.ttl);
        if (n == 0 && mq->nbad == 0) {
            st = fail(out, MX_NULL, domain, "null MX (RFC 7505)");
            goto done;
        }
        if (n == 0) {
            st = fail(out, MX_NOTFOUND, domain, "no MX host with a valid name");
            goto done;
        }
        break;
    case ARES_ENODATA:                 /* implicit MX: the domain itself */
        out->implicit = 1;
        min_ttl(ttl, mq->q.neg_ttl);
        memcpy(mq->recs[0].name, domain, strlen(domain) + 1);
        mq->recs[0].pref = 0;
        n = 1;
        break;
    case ARES_ENOTFOUND:
        min_ttl(ttl, mq->q.neg_ttl);
        st = fail(out, MX_NOTFOUND, domain, "NXDOMAIN");
        goto done;
    default:
        st = fail(out, dns_status_class(mq->q.status) == DNS_NOTFOUND ? MX_NOTFOUND : MX_RETRY,
                  domain, dns_status_str(mq->q.status));
        goto done;
    }

    for (int i = 0; i < n; i++) {
        q_init(&hq[i].a.q);
        q_init(&hq[i].aaaa.q);
        hq[i].a.type = RR_A;
        hq[i].aaaa.type = RR_AAAA;
        ares_query(ch, mq->recs[i].name, ns_c_in, RR_A, addr_cb, &hq[i].a);
        ares_query(ch, mq->recs[i].name, ns_c_in, RR_AAAA, addr_cb, &hq[i].aaaa);
    }
    dns_channel_run(ch, dns_now_ms() + DNS_TIMEOUT_MS);

    int retry = -1;
    int64_t neg = -1;
    for (int i = 0; i < n; i++) {
        mx_host *h = &out->hosts[out->nhosts];
        memset(h, 0, sizeof *h);
        fill_host(h, &hq[i], ttl);
        if (h->naddrs > 0) {
            memcpy(h->name, mq->recs[i].name, strlen(mq->recs[i].name) + 1);
            h->pref = mq->recs[i].pref;
            out->nhosts++;
            continue;
        }
        if (retry < 0 && (dns_status_class(hq[i].a.q.status) == DNS_RETRY ||
                          dns_status_class(hq[i].aaaa.q.status) == DNS_RETRY))
            retry = i;
        min_ttl(&neg, hq[i].a.q.neg_ttl);
        min_ttl(&neg, hq[i].aaaa.q.neg_ttl);
    }
    if (out->nhosts > 0) {
        out->status = st = MX_OK;
    } else if (retry >= 0) {
        int s = dns_status_class(hq[retry].a.q.status) == DNS_RETRY ? hq[retry].a.q.status
                                                                      : hq[retry].aaaa.q.status;
        st = fail(out, MX_RETRY, mq->recs[retry].name, dns_status_str(s));
    } else {
        min_ttl(ttl, neg);
        st = fail(out, MX_NOTFOUND, domain, out->implicit ? "no MX, A or AAAA record"
                                                          : "no MX host has an address");
    }
done:
    ares_destroy(ch);
    free(hq);
    free(mq);
    return st;
}

mx_status mx_resolve(mx_cache *c, const char *domain, int port, mx_result *out)
{
    char key[MX_NAME_MAX + 1];
    memset(out, 0, sizeof *out);
    if (mx_name_key(domain, key, sizeof key) != 0) {
        char shown[68] = "";
        size_t i = 0;
        for (; domain && domain[i] && i < 64; i++)
            shown[i] = domain[i] > ' ' && domain[i] < 127 ? domain[i] : '?';
        if (domain && domain[i])
            memcpy(shown + i, "...", 4);
        else
            shown[i] = '\0';
        out->expires_ms = c ? c->now(c->ctx) : time_mono_ms();
        return fail(out, MX_NOTFOUND, shown, "not a valid domain name");
    }
    if (c && mx_cache_get(c, key, port, out))
        return out->status;
    int64_t ttl;
    lookup(key, out, &ttl);
    set_ports(out, port);
    int64_t ttl_ms = mx_cache_ttl_ms(out->status, ttl);
    out->expires_ms = (c ? c->now(c->ctx) : time_mono_ms()) + ttl_ms;
    if (c)
        mx_cache_put(c, key, out, ttl_ms);
    return out->status;
}
