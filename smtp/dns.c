/* smtp/dns.c - see smtp/dns.h. One c-ares channel per look-up (look-ups are rare: domain
 * verification), driven with select() until the answer or the deadline. */
#include "smtp/dns.h"

#include "lib/config.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_SUCCESS;

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

typedef struct {
    int    done;
    int    status;       /* ares status */
    char **txts;
    int    count;
} txt_ctx;

static void txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    txt_ctx *c = arg;
    c->done = 1;
    c->status = status;
    if (status != ARES_SUCCESS)
        return;
    struct ares_txt_ext *head = NULL;
    int rc = ares_parse_txt_reply_ext(abuf, alen, &head);
    if (rc != ARES_SUCCESS) {
        c->status = rc;
        return;
    }
    int n = 0;
    for (struct ares_txt_ext *t = head; t; t = t->next)
        if (t->record_start || n == 0)
            n++;
    c->txts = calloc((size_t)n + 1, sizeof *c->txts);
    size_t *lens = calloc((size_t)n + 1, sizeof *lens);
    int i = -1;
    for (struct ares_txt_ext *t = head; t && c->txts && lens; t = t->next) {
        if (t->record_start || i < 0) {
            i++;
            c->txts[i] = calloc(1, 1);
            lens[i] = 0;
        }
        char *grown = c->txts[i] ? realloc(c->txts[i], lens[i] + t->length + 1) : NULL;
        if (!grown)
            continue;
        memcpy(grown + lens[i], t->txt, t->length);
        lens[i] += t->length;
        grown[lens[i]] = '\0';
        c->txts[i] = grown;
    }
    c->count = c->txts ? n : 0;
    free(lens);
    ares_free_data(head);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dns_free_txts(char **txts, int count)
{
    if (!txts)
        return;
    for (int i = 0; i < count; i++)
        free(txts[i]);
    free(txts);
}

long long dns_now_ms(void)
{
    return now_ms();
}

int dns_channel_open(ares_channel *ch, int extra_flags, char *err, size_t errlen)
{
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS library: %s", ares_strerror(lib_status));
        return DNS_RETRY;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.timeout = 1500;   /* per try, ms (ARES_OPT_TIMEOUTMS) */
    o.tries = 3;
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS | extra_flags;
    o.ednspsz = 1232;
    int rc = ares_init_options(ch, &o,
                               ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS resolver: %s", ares_strerror(rc));
        return DNS_RETRY;
    }
    if (cfg.dns_server && cfg.dns_server[0]) {
        rc = ares_set_servers_ports_csv(*ch, cfg.dns_server);
        if (rc != ARES_SUCCESS) {
            ares_destroy(*ch);
            snprintf(err, errlen, "POSTHORN_DNS_SERVER: %s", ares_strerror(rc));
            return DNS_RETRY;
        }
    }
    return DNS_OK;
}

void dns_channel_run(ares_channel ch, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        fd_set r, w;
        FD_ZERO(&r);
        FD_ZERO(&w);
        int nfds = ares_fds(ch, &r, &w);
        if (nfds == 0)
            return;
        if (left <= 0)
            break;
        struct timeval maxtv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000}, tv;
        struct timeval *tvp = ares_timeout(ch, &maxtv, &tv);
        select(nfds, &r, &w, NULL, tvp);
        ares_process(ch, &r, &w);
    }
    ares_cancel(ch);
}

int dns_status_class(int st)
{
    switch (st) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_EBADNAME:
        return DNS_NOTFOUND;
    default:
        return DNS_RETRY;
    }
}

const char *dns_status_str(int st)
{
    switch (st) {
    case ARES_SUCCESS:      return "ok";
    case ARES_ENODATA:      return "no records";
    case ARES_ENOTFOUND:    return "NXDOMAIN";
    case ARES_ESERVFAIL:    return "SERVFAIL";
    case ARES_EREFUSED:     return "REFUSED";
    case ARES_EFORMERR:     return "FORMERR";
    case ARES_ENOTIMP:      return "NOTIMP";
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:   return "timed out";
    case ARES_ECONNREFUSED: return "connection refused";
    case ARES_EBADRESP:     return "bad response";
    case ARES_EBADNAME:     return "bad name";
    default:                return ares_strerror(st);
    }
}

int dns_txt(const char *name, char ***txts, int *count, char *err, size_t errlen)
{
    *txts = NULL;
    *count = 0;
    ares_channel ch;
    if (dns_channel_open(&ch, 0, err, errlen) != DNS_OK)
        return DNS_RETRY;
    txt_ctx c = {0};
    ares_query(ch, name, ns_c_in, ns_t_txt, txt_cb, &c);
    dns_channel_run(ch, now_ms() + DNS_TIMEOUT_MS);
    if (!c.done || c.status == ARES_ECANCELLED)
        c.status = ARES_ETIMEOUT;
    ares_destroy(ch);
    switch (c.status) {
    case ARES_SUCCESS:
        if (c.count > 0) {
            *txts = c.txts;
            *count = c.count;
            return DNS_OK;
        }
        dns_free_txts(c.txts, c.count);
        snprintf(err, errlen, "no TXT record at %s", name);
        return DNS_NOTFOUND;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
        dns_free_txts(c.txts, c.count);
        snprintf(err, errlen, "no TXT record at %s", name);
        return DNS_NOTFOUND;
    default:
        dns_free_txts(c.txts, c.count);
        snprintf(err, errlen, "DNS look-up of %s failed: %s", name,
                 c.status == ARES_ETIMEOUT ? "timed out" : ares_strerror(c.status));
        return DNS_RETRY;
    }
}
