#include "smtp/engine.h"
#include "lib/config.h"
#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/netguard.h"
#include "lib/pct.h"
#include "lib/timeutil.h"
#include "smtp/bounce.h"
#include "smtp/mx.h"
#include "smtp/policy.h"
#include "smtp/session.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define HASH_BUCKETS     1024
#define MAX_EVENTS       256
#define TICK_MS          100
#define IDLE_KEEP_MS     1000     /* an idle connection waits this long for more work */
#define READ_CHUNK       16384
#define MAX_TARGETS      (MX_MAX_HOSTS * MX_MAX_ADDRS)
#define DOMAIN_KEEP_MS   (10 * 60 * 1000)
#define SNAPSHOT_MS      1000

/* --- jobs and queues ------------------------------------------------------------------ */

typedef struct qjob {
    engine_job   j;
    struct qjob *next;
} qjob;

typedef struct {
    qjob  *head, *tail;
    size_t n;
} jqueue;

static void jq_push(jqueue *q, qjob *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static qjob *jq_pop(jqueue *q)
{
    qjob *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    j->next = NULL;
    return j;
}

/* --- destinations, domains, connections ---------------------------------------------- */

typedef struct {
    char name[256];
    char ip[64];
    struct sockaddr_storage sa;
    socklen_t salen;
} target;

typedef struct conn conn;

typedef struct dest {
    char         name[256];
    struct dest *hnext;          /* hash chain */
    struct dest *lnext;          /* list of all */
    target       targets[MAX_TARGETS];
    int          ntargets;
    char         refused[512];   /* every address refused by the guard: why */
    dest_policy  pol;
    jqueue       q[2];           /* transactional, broadcast */
    int          active;         /* sessions open (any state) */
    int          connecting;     /* sessions not yet ready for a transaction */
    double       limit;          /* current connection limit */
    int64_t      first_fail_ms;  /* start of an unbroken run of failures */
    int64_t      dead_until_ms;
    int          paused;
    int          probe;          /* dead period over: one connection may probe */
    char         last_error[256];
    int64_t      last_used_ms;
    double       tokens;
    int64_t      tokens_at;
    conn        *idle;           /* idle sessions, ready for work */
} dest;

enum { DOM_RESOLVING, DOM_READY };

typedef struct dom {
    char         name[256];
    struct dom  *hnext;
    struct dom  *lnext;
    int          state;
    mx_status    st;
    char         err[256];
    dest        *d;
    int64_t      expires_ms;
    int64_t      last_used_ms;
    jqueue       waiting;
    mx_result    res;            /* filled by the resolver thread */
} dom;

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN };

struct conn {
    smtp_engine  *e;
    dest         *d;
    conn         *next, *prev;   /* all connections */
    conn         *inext;         /* idle list of d */
    int           fd;
    SSL          *ssl;
    int           state;
    smtp_session *s;
    int           ti;            /* index into d->targets being tried */
    int           tried;
    char          mx[256];
    char          ip[64];
    int64_t       deadline_ms;
    smtp_phase    phase;
    int           ready;         /* reached idle once */
    int           is_idle;
    int64_t       txn_start_ms;
    qjob        **txn;
    smtp_rcpt    *rcpts;
    size_t        ntxn;
    smtp_envelope env;           /* the session keeps a pointer to it */
    int           dead;          /* to be freed */
    int           ssl_want_write;
    int           failed_reported;
};

typedef struct rjob {
    dom         *dm;
    struct rjob *next;
} rjob;

struct smtp_engine {
    engine_mode     mode;
    engine_events   ev;
    void           *ctx;
    pthread_t       thread;
    int             epfd, evfd;
    SSL_CTX        *tls;
    netguard       *guard;
    mx_cache       *mxc;
    bounce_rules   *rules;
    policy_set     *policy;
    char            policy_path[1024];
    smtp_session_params sp;
    char            helo[256];
    char            relay_user[256], relay_pass[256], relay_host[256];
    int             relay_port;

    dest           *dh[HASH_BUCKETS];
    dest           *dests;
    dom            *mh[HASH_BUCKETS];
    dom            *doms;
    conn           *conns;
    int             nconns;

    /* shared with other threads */
    pthread_mutex_t mu;
    pthread_cond_t  room;
    qjob           *inbox, *inbox_tail;
    atomic_size_t   pending;
    size_t          bound;
    atomic_int      draining, stop_now, reload;
    int             controls_new;
    char          **paused;
    size_t          npaused;
    char          **retry;
    size_t          nretry;
    engine_dest_status *snap;
    size_t          nsnap;

    /* resolver thread */
    pthread_t       rthread;
    pthread_mutex_t rmu;
    pthread_cond_t  rcond;
    rjob           *rq, *rq_tail;
    rjob           *rdone;
    int             rstop;

    int64_t         next_snapshot_ms;
};

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % HASH_BUCKETS;
}

static void wake(smtp_engine *e)
{
    uint64_t one = 1;
    ssize_t w = write(e->evfd, &one, sizeof one);
    (void)w;
}

/* --- results -------------------------------------------------------------------------- */

static void emit(smtp_engine *e, qjob *q, engine_result *r)
{
    r->job = &q->j;
    e->ev.on_result(e->ctx, r);
    free(q);
    atomic_fetch_sub(&e->pending, 1);
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->room);
    pthread_mutex_unlock(&e->mu);
}

static void classify(smtp_engine *e, engine_result *r)
{
    if (r->verdict != ENGINE_BOUNCED)
        return;
    const char *rule = NULL;
    bounce_class c = bounce_classify(e->rules, r->code, r->enhanced ? r->enhanced : "",
                                     r->text ? r->text : "", &rule);
    r->bounce_class = bounce_class_name(c);
    r->bounce_rule = rule;
    r->bounce_rules_version = bounce_rules_version(e->rules);
}

/* A result decided without a session (DNS, guard, dead destination, pause, shutdown). */
static void finish_local(smtp_engine *e, qjob *q, engine_verdict v, int code,
                         const char *enhanced, const char *text, const char *destination)
{
    engine_result r = {0};
    r.verdict = v;
    r.code = code;
    r.enhanced = enhanced ? enhanced : "";
    r.text = text;
    r.destination = destination;
    classify(e, &r);
    emit(e, q, &r);
}

static void finish_queue(smtp_engine *e, jqueue *q, engine_verdict v, int code,
                         const char *enhanced, const char *text, const char *destination)
{
    qjob *j;
    while ((j = jq_pop(q)) != NULL)
        finish_local(e, j, v, code, enhanced, text, destination);
}

static void finish_dest(smtp_engine *e, dest *d, engine_verdict v, const char *text)
{
    for (int p = 0; p < 2; p++)
        finish_queue(e, &d->q[p], v, 0, "", text, d->name);
}

/* --- destinations ---------------------------------------------------------------------- */

static void dest_apply_policy(smtp_engine *e, dest *d, const char *domain)
{
    const dest_policy *p = policy_match(e->policy, d->name, domain ? domain : d->name);
    d->pol = *p;
    if (e->mode == ENGINE_MODE_RELAY && d->pol.tls == TLS_POLICY_NONE)
        d->pol.tls = TLS_POLICY_MAY;
    if (d->limit <= 0 || d->limit > d->pol.max_connections)
        d->limit = d->pol.max_connections;
}

static dest *dest_get(smtp_engine *e, const char *name, const char *domain)
{
    uint32_t h = hash_str(name);
    for (dest *d = e->dh[h]; d; d = d->hnext)
        if (strcmp(d->name, name) == 0)
            return d;
    dest *d = xcalloc(1, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->hnext = e->dh[h];
    e->dh[h] = d;
    d->lnext = e->dests;
    e->dests = d;
    dest_apply_policy(e, d, domain);
    d->limit = d->pol.max_connections;
    d->tokens = 1;
    d->tokens_at = time_mono_ms();
    for (size_t i = 0; i < e->npaused; i++)
        if (strcmp(e->paused[i], name) == 0)
            d->paused = 1;
    return d;
}

/* The addresses to try, in MX order, without those the guard refuses. */
static void dest_set_targets(smtp_engine *e, dest *d, const mx_result *m)
{
    d->ntargets = 0;
    d->refused[0] = '\0';
    size_t rl = 0;
    for (int h = 0; h < m->nhosts; h++)
        for (int a = 0; a < m->hosts[h].naddrs; a++) {
            const struct sockaddr *sa = (const struct sockaddr *)&m->hosts[h].addr[a];
            char ip[64];
            netguard_addr_str(sa, ip, sizeof ip);
            const char *why = NULL;
            if (!netguard_check(e->guard, sa, &why)) {
                if (rl < sizeof d->refused - 1) {
                    int w = snprintf(d->refused + rl, sizeof d->refused - rl, "%s%s (%s: %s)",
                                     rl ? ", " : "", m->hosts[h].name, ip, why ? why : "refused");
                    if (w > 0)
                        rl += (size_t)w < sizeof d->refused - rl ? (size_t)w : sizeof d->refused - rl - 1;
                }
                continue;
            }
            if (d->ntargets >= MAX_TARGETS)
                continue;
            target *t = &d->targets[d->ntargets++];
            snprintf(t->name, sizeof t->name, "%s", m->hosts[h].name);
            snprintf(t->ip, sizeof t->ip, "%s", ip);
            memcpy(&t->sa, sa, m->hosts[h].addrlen[a]);
            t->salen = m->hosts[h].addrlen[a];
        }
}

static void dest_error(dest *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dest_error(dest *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->last_error, sizeof d->last_error, fmt, ap);
    va_end(ap);
}

static void dest_throttle(dest *d)
{
    double l = d->limit / 2;
    d->limit = l < 1 ? 1 : l;
}

/* A session failed. reached_none: no address of the destination got as far as a
 * transaction (every MX host refused, was silent or failed EHLO/TLS). */
static void dest_failed(smtp_engine *e, dest *d, int reached_none)
{
    int64_t now = time_mono_ms();
    if (!d->first_fail_ms)
        d->first_fail_ms = now;
    dest_throttle(d);
    d->probe = 0;
    if (now - d->first_fail_ms >= d->pol.dead_after_ms && d->dead_until_ms <= now) {
        d->dead_until_ms = now + d->pol.dead_for_ms;
        log_fields(LOG_WARN, json_pack("{s:s, s:s}", "destination", d->name, "error",
                                       d->last_error),
                   "destination marked dead for %lld s", (long long)(d->pol.dead_for_ms / 1000));
    }
    /* nothing answered and no session of this destination is doing better: what waits
     * goes back to the queue (a session that failed midway only costs a connection) */
    if (reached_none && d->active - d->connecting <= 0) {
        char why[320];
        snprintf(why, sizeof why, "%s", d->last_error);
        finish_dest(e, d, ENGINE_DEFERRED, why);
    }
}

static void dest_succeeded(dest *d)
{
    d->first_fail_ms = 0;
    d->dead_until_ms = 0;
    d->probe = 0;
    if (d->limit < d->pol.max_connections) {
        d->limit += 0.25;   /* slow recovery: four clean transactions per connection */
        if (d->limit > d->pol.max_connections)
            d->limit = d->pol.max_connections;
    }
}

static const char *dest_state(const dest *d, int64_t now)
{
    if (d->paused)
        return "paused";
    if (d->dead_until_ms > now)
        return "dead";
    if (d->limit < d->pol.max_connections)
        return "throttled";
    return "active";
}

/* --- connections ---------------------------------------------------------------------- */

static void conn_arm(conn *c)
{
    uint32_t evs = EPOLLIN;
    if (c->state == C_CONNECTING || c->ssl_want_write)
        evs |= EPOLLOUT;
    else if (c->s && c->state == C_OPEN) {
        const char *p;
        if (smtp_session_output(c->s, &p) > 0)
            evs |= EPOLLOUT;
    }
    struct epoll_event ev = {.events = evs, .data.ptr = c};
    epoll_ctl(c->e->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int64_t phase_timeout(smtp_phase p)
{
    switch (p) {
    case SMTP_PHASE_GREETING:   return cfg.smtp_greeting_timeout_ms;
    case SMTP_PHASE_DATA_INIT:  return cfg.smtp_data_init_timeout_ms;
    case SMTP_PHASE_DATA_BLOCK: return cfg.smtp_data_block_timeout_ms;
    case SMTP_PHASE_DATA_DONE:  return cfg.smtp_data_done_timeout_ms;
    case SMTP_PHASE_IDLE:       return IDLE_KEEP_MS;
    default:                    return cfg.smtp_command_timeout_ms;
    }
}

static void conn_touch(conn *c)
{
    if (!c->s || c->state == C_CONNECTING)
        return;
    c->phase = smtp_session_phase(c->s);
    c->deadline_ms = time_mono_ms() + (c->state == C_HANDSHAKE
                                           ? cfg.smtp_command_timeout_ms
                                           : phase_timeout(c->phase));
}

static void conn_close_fd(conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(c->e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static void idle_remove(conn *c)
{
    if (!c->is_idle)
        return;
    for (conn **pp = &c->d->idle; *pp; pp = &(*pp)->inext)
        if (*pp == c) {
            *pp = c->inext;
            break;
        }
    c->inext = NULL;
    c->is_idle = 0;
}

static void conn_start_target(conn *c);

static void conn_free(conn *c)
{
    smtp_engine *e = c->e;
    idle_remove(c);
    conn_close_fd(c);
    if (c->s)
        smtp_session_free(c->s);
    if (c->prev)
        c->prev->next = c->next;
    else
        e->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->nconns--;
    c->d->active--;
    if (!c->ready)
        c->d->connecting--;
    free(c->txn);
    free(c->rcpts);
    free(c);
}

/* session callbacks */

static void on_result(void *ctx, const smtp_rcpt_result *sr)
{
    conn *c = ctx;
    qjob *q = sr->rcpt->ctx;
    engine_result r = {0};
    r.verdict = sr->verdict == SMTP_DELIVERED ? ENGINE_DELIVERED
              : sr->verdict == SMTP_BOUNCED   ? ENGINE_BOUNCED
                                              : ENGINE_DEFERRED;
    r.code = sr->code;
    r.enhanced = sr->enhanced ? sr->enhanced : "";
    r.text = sr->text;
    r.mx = c->mx;
    r.ip = c->ip;
    r.tls = smtp_session_tls(c->s);
    r.duration_ms = (int)(time_mono_ms() - c->txn_start_ms);
    r.transcript = sr->transcript;
    r.destination = c->d->name;
    classify(c->e, &r);
    if (r.verdict == ENGINE_DEFERRED &&
        (sr->code == 421 || strncmp(r.enhanced, "4.7.", 4) == 0)) {
        dest_throttle(c->d);
        dest_error(c->d, "%d %s %s", sr->code, r.enhanced, sr->text ? sr->text : "");
    }
    if (r.verdict == ENGINE_DELIVERED)
        dest_succeeded(c->d);
    /* forget the job in the transaction (so a cut session does not report it twice) */
    for (size_t i = 0; i < c->ntxn; i++)
        if (c->txn[i] == q)
            c->txn[i] = NULL;
    emit(c->e, q, &r);
}

static int take_token(dest *d, int64_t now)
{
    if (d->pol.rate_per_minute <= 0)
        return 1;
    double cap = d->pol.rate_per_minute / 60.0;
    if (cap < 1)
        cap = 1;
    d->tokens += (double)(now - d->tokens_at) * d->pol.rate_per_minute / 60000.0;
    d->tokens_at = now;
    if (d->tokens > cap)
        d->tokens = cap;
    if (d->tokens < 1)
        return 0;
    d->tokens -= 1;
    return 1;
}

static qjob *next_job(smtp_engine *e, dest *d, int64_t now)
{
    for (;;) {
        jqueue *q = d->q[0].n ? &d->q[0] : &d->q[1];
        if (!q->n)
            return NULL;
        if (q->head->j.start_by_ms && q->head->j.start_by_ms <= now) {
            finish_local(e, jq_pop(q), ENGINE_RELEASED, 0, "", "lease nearly over", d->name);
            continue;
        }
        if (!take_token(d, now))
            return NULL;
        return jq_pop(q);
    }
}

/* 1 when the session may take no further transaction: the engine drains, its destination
 * is paused, or it has carried messages_per_connection transactions. */
static int conn_spent(const conn *c)
{
    const dest *d = c->d;
    return atomic_load(&c->e->draining) || d->paused ||
           (d->pol.messages_per_connection > 0 &&
            smtp_session_transactions(c->s) >= (unsigned)d->pol.messages_per_connection);
}

/* Gives an idle session its next transaction: the first waiting job, and the following
 * jobs that share its content and sender, up to rcpts_per_message. 0 when none. */
static int conn_next_txn(conn *c)
{
    smtp_engine *e = c->e;
    dest *d = c->d;
    int64_t now = time_mono_ms();
    if (conn_spent(c))
        return 0;
    qjob *first = next_job(e, d, now);
    if (!first)
        return 0;
    size_t max = d->pol.rcpts_per_message > 0 ? (size_t)d->pol.rcpts_per_message : 1;
    free(c->txn);
    free(c->rcpts);
    c->txn = xcalloc(max, sizeof *c->txn);
    c->rcpts = xcalloc(max, sizeof *c->rcpts);
    c->ntxn = 0;
    c->txn[c->ntxn++] = first;
    /* companions: same queue, adjacent, same content and sender */
    jqueue *q = first->j.priority ? &d->q[1] : &d->q[0];
    while (c->ntxn < max && q->head && first->j.content_key &&
           q->head->j.content_key == first->j.content_key &&
           strcmp(q->head->j.mail_from, first->j.mail_from) == 0 && take_token(d, now))
        c->txn[c->ntxn++] = jq_pop(q);
    for (size_t i = 0; i < c->ntxn; i++)
        c->rcpts[i] = (smtp_rcpt){c->txn[i]->j.recipient, c->txn[i]->j.smtputf8, c->txn[i]};
    const unsigned char *mf = (const unsigned char *)first->j.mail_from;
    int from_utf8 = 0;
    for (; *mf; mf++)
        if (*mf >= 0x80)
            from_utf8 = 1;
    c->env = (smtp_envelope){first->j.mail_from, from_utf8, c->rcpts, c->ntxn,
                             first->j.head, first->j.head_len, first->j.body, first->j.body_len};
    c->txn_start_ms = now;
    d->last_used_ms = now;
    if (smtp_session_submit(c->s, &c->env) != 0) {
        /* not idle after all: put the jobs back at the front */
        for (size_t i = c->ntxn; i-- > 0;) {
            qjob *j = c->txn[i];
            j->next = q->head;
            q->head = j;
            if (!q->tail)
                q->tail = j;
            q->n++;
        }
        c->ntxn = 0;
        return 0;
    }
    return 1;
}

static void on_idle(void *ctx, smtp_session *s)
{
    conn *c = ctx;
    if (!c->ready) {
        c->ready = 1;
        c->d->connecting--;
    }
    c->ntxn = 0;
    if (conn_next_txn(c)) {
        idle_remove(c);
        return;
    }
    if (conn_spent(c)) {
        idle_remove(c);
        smtp_session_quit(s);
        return;
    }
    if (!c->is_idle) {
        c->is_idle = 1;
        c->inext = c->d->idle;
        c->d->idle = c;
    }
}

static void on_closed(void *ctx, const smtp_close_info *info)
{
    conn *c = ctx;
    c->dead = 1;
    idle_remove(c);
    if (info->why == SMTP_CLOSED_OK)
        return;
    dest *d = c->d;
    const char *what = info->why == SMTP_FAIL_TLS     ? "TLS failure"
                     : info->why == SMTP_FAIL_PROTO   ? "protocol error"
                     : info->why == SMTP_FAIL_TIMEOUT ? "timeout"
                     : info->why == SMTP_FAIL_REPLY   ? "refused"
                                                      : "connection lost";
    if (info->code)
        dest_error(d, "%s (%s): %s: %d %s %s", c->mx, c->ip, what, info->code,
                   info->enhanced ? info->enhanced : "", info->text ? info->text : "");
    else
        dest_error(d, "%s (%s): %s: %s", c->mx, c->ip, what, info->text ? info->text : "");
    log_fields(LOG_INFO, json_pack("{s:s, s:s, s:s}", "destination", d->name, "mx", c->mx,
                                   "ip", c->ip),
               "session ended: %s", d->last_error);
    if (!c->ready || info->why != SMTP_FAIL_CONN || info->code == 421)
        c->failed_reported = 1;
}

static void tls_step(conn *c);

static void on_starttls(void *ctx, smtp_session *s)
{
    conn *c = ctx;
    c->ssl = SSL_new(c->e->tls);
    if (!c->ssl) {
        smtp_session_tls_done(s, 0, NULL, NULL);
        return;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (c->mx[0])
        SSL_set_tlsext_host_name(c->ssl, c->mx);
    if (c->d->pol.tls == TLS_POLICY_VERIFY) {
        SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        SSL_set1_host(c->ssl, c->mx);
    }
    SSL_set_connect_state(c->ssl);
    c->state = C_HANDSHAKE;
    c->ssl_want_write = 1;   /* the ClientHello goes first: start on writability */
    c->deadline_ms = time_mono_ms() + cfg.smtp_command_timeout_ms;
}

static const smtp_session_events session_events = {on_result, on_idle, on_closed, on_starttls};

static void conn_session(conn *c)
{
    smtp_engine *e = c->e;
    smtp_session_params p = e->sp;
    p.tls = c->d->pol.tls == TLS_POLICY_NONE  ? SMTP_TLS_NONE
          : c->d->pol.tls == TLS_POLICY_MAY   ? SMTP_TLS_MAY
                                              : SMTP_TLS_REQUIRE;
    c->s = smtp_session_new(&p, &session_events, c);
    c->state = C_OPEN;
    conn_touch(c);
}

/* Connects to d->targets[c->ti] or the next that can be tried. */
static void conn_start_target(conn *c)
{
    smtp_engine *e = c->e;
    dest *d = c->d;
    while (c->tried < d->ntargets) {
        target *t = &d->targets[c->ti % d->ntargets];
        c->ti++;
        c->tried++;
        snprintf(c->mx, sizeof c->mx, "%s", t->name);
        snprintf(c->ip, sizeof c->ip, "%s", t->ip);
        int fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            dest_error(d, "%s (%s): socket: %s", t->name, t->ip, strerror(errno));
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int r = connect(fd, (struct sockaddr *)&t->sa, t->salen);
        if (r != 0 && errno != EINPROGRESS) {
            dest_error(d, "%s (%s): connect: %s", t->name, t->ip, strerror(errno));
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = C_CONNECTING;
        c->deadline_ms = time_mono_ms() + cfg.smtp_connect_timeout_ms;
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
        epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev);
        return;
    }
    /* nothing left to try */
    c->dead = 1;
    c->failed_reported = 1;
}

static void conn_open(smtp_engine *e, dest *d)
{
    conn *c = xcalloc(1, sizeof *c);
    c->e = e;
    c->d = d;
    c->fd = -1;
    c->next = e->conns;
    if (e->conns)
        e->conns->prev = c;
    e->conns = c;
    e->nconns++;
    d->active++;
    d->connecting++;
    conn_start_target(c);
}

static void conn_connected(conn *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
        err = errno;
    if (err) {
        dest_error(c->d, "%s (%s): connect: %s", c->mx, c->ip, strerror(err));
        conn_close_fd(c);
        conn_start_target(c);
        return;
    }
    conn_session(c);
    conn_arm(c);
}

static void conn_flush(conn *c)
{
    for (;;) {
        const char *p;
        size_t n = smtp_session_output(c->s, &p);
        if (n == 0 || smtp_session_closed(c->s))
            return;
        ssize_t w;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
            if (r <= 0) {
                int se = SSL_get_error(c->ssl, r);
                if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ)
                    return;
                smtp_session_eof(c->s, "TLS write failed");
                return;
            }
            w = r;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    return;
                smtp_session_eof(c->s, strerror(errno));
                return;
            }
        }
        smtp_session_written(c->s, (size_t)w);
        conn_touch(c);
    }
}

static void conn_read(conn *c)
{
    char buf[READ_CHUNK];
    for (int rounds = 0; rounds < 16 && !smtp_session_closed(c->s) && c->state == C_OPEN;
         rounds++) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof buf);
            if (r <= 0) {
                int se = SSL_get_error(c->ssl, r);
                if (se == SSL_ERROR_WANT_READ)
                    return;
                if (se == SSL_ERROR_WANT_WRITE) {
                    c->ssl_want_write = 1;
                    return;
                }
                smtp_session_eof(c->s, se == SSL_ERROR_ZERO_RETURN ? "closed by peer"
                                                                   : "TLS read failed");
                return;
            }
            n = r;
        } else {
            n = recv(c->fd, buf, sizeof buf, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    return;
                smtp_session_eof(c->s, strerror(errno));
                return;
            }
            if (n == 0) {
                smtp_session_eof(c->s, "closed by peer");
                return;
            }
        }
        smtp_session_input(c->s, buf, (size_t)n);
        conn_touch(c);
        if ((size_t)n < sizeof buf && !(c->ssl && SSL_pending(c->ssl)))
            return;
    }
}

static void tls_step(conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = C_OPEN;
        c->ssl_want_write = 0;
        smtp_session_tls_done(c->s, 1, SSL_get_version(c->ssl),
                              SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
        conn_touch(c);
        return;
    }
    int se = SSL_get_error(c->ssl, r);
    if (se == SSL_ERROR_WANT_READ) {
        c->ssl_want_write = 0;
        return;
    }
    if (se == SSL_ERROR_WANT_WRITE) {
        c->ssl_want_write = 1;
        return;
    }
    char why[200];
    unsigned long ec = ERR_peek_error();
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK && c->d->pol.tls == TLS_POLICY_VERIFY)
        snprintf(why, sizeof why, "certificate: %s", X509_verify_cert_error_string(vr));
    else if (ec)
        ERR_error_string_n(ec, why, sizeof why);
    else
        snprintf(why, sizeof why, "handshake failed");
    c->state = C_OPEN;
    log_fields(LOG_INFO, json_pack("{s:s, s:s}", "mx", c->mx, "ip", c->ip), "TLS handshake: %s",
               why);
    smtp_session_tls_done(c->s, 0, NULL, NULL);
}

static void conn_io(conn *c, uint32_t evs)
{
    if (c->dead)
        return;
    if (c->state == C_CONNECTING) {
        if (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(c);
        return;
    }
    if (c->state == C_HANDSHAKE) {
        tls_step(c);
    } else {
        if (c->ssl_want_write && (evs & EPOLLOUT))
            c->ssl_want_write = 0;
        if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP))
            conn_read(c);
    }
    if (c->s && !smtp_session_closed(c->s) && c->state == C_OPEN)
        conn_flush(c);
}

/* After callbacks: free what ended, rearm what lives. */
static void conn_settle(conn *c)
{
    if (c->s && smtp_session_closed(c->s))
        c->dead = 1;
    /* a host that failed before its first transaction (no greeting, 4xx/5xx greeting or
     * EHLO, TLS required and failed): the next MX address gets its chance */
    if (c->dead && c->s && !c->ready && c->tried < c->d->ntargets &&
        !atomic_load(&c->e->draining)) {
        smtp_session_free(c->s);
        c->s = NULL;
        conn_close_fd(c);
        c->dead = 0;
        c->failed_reported = 0;
        c->ssl_want_write = 0;
        conn_start_target(c);
    }
    if (c->dead) {
        dest *d = c->d;
        int failed = c->failed_reported || !c->ready, reached_none = !c->ready;
        smtp_engine *e = c->e;
        conn_free(c);
        if (failed)
            dest_failed(e, d, reached_none);
        return;
    }
    if (c->fd >= 0)
        conn_arm(c);
}

static void conn_timeout(conn *c, int64_t now)
{
    if (c->dead || c->deadline_ms > now)
        return;
    if (c->state == C_CONNECTING) {
        dest_error(c->d, "%s (%s): connect: timed out", c->mx, c->ip);
        conn_close_fd(c);
        conn_start_target(c);
        return;
    }
    if (c->is_idle && smtp_session_idle(c->s)) {
        idle_remove(c);
        smtp_session_quit(c->s);
        conn_flush(c);
        conn_touch(c);
        return;
    }
    smtp_session_timeout(c->s);
}

/* --- domains and the resolver ---------------------------------------------------------- */

static void *resolver_main(void *arg)
{
    smtp_engine *e = arg;
    pthread_mutex_lock(&e->rmu);
    for (;;) {
        while (!e->rq && !e->rstop)
            pthread_cond_wait(&e->rcond, &e->rmu);
        if (e->rstop)
            break;
        rjob *j = e->rq;
        e->rq = j->next;
        if (!e->rq)
            e->rq_tail = NULL;
        pthread_mutex_unlock(&e->rmu);
        memset(&j->dm->res, 0, sizeof j->dm->res);
        mx_resolve(e->mxc, j->dm->name, cfg.smtp_port, &j->dm->res);
        pthread_mutex_lock(&e->rmu);
        j->next = e->rdone;
        e->rdone = j;
        wake(e);
    }
    pthread_mutex_unlock(&e->rmu);
    return NULL;
}

static void resolve(smtp_engine *e, dom *dm)
{
    rjob *j = xcalloc(1, sizeof *j);
    j->dm = dm;
    dm->state = DOM_RESOLVING;
    pthread_mutex_lock(&e->rmu);
    if (e->rq_tail)
        e->rq_tail->next = j;
    else
        e->rq = j;
    e->rq_tail = j;
    pthread_cond_signal(&e->rcond);
    pthread_mutex_unlock(&e->rmu);
}

static void dest_enqueue(smtp_engine *e, dest *d, qjob *q)
{
    jq_push(&d->q[q->j.priority ? 1 : 0], q);
    (void)e;
}

static void dom_dispatch(smtp_engine *e, dom *dm, qjob *q)
{
    switch (dm->st) {
    case MX_OK:
        dest_enqueue(e, dm->d, q);
        return;
    case MX_NULL:
        finish_local(e, q, ENGINE_BOUNCED, 556, "5.1.10", dm->err, dm->name);
        return;
    case MX_NOTFOUND:
        finish_local(e, q, ENGINE_BOUNCED, 0, "5.1.2", dm->err, dm->name);
        return;
    default:
        finish_local(e, q, ENGINE_DEFERRED, 0, "4.4.3", dm->err, dm->name);
        return;
    }
}

static void resolved(smtp_engine *e, dom *dm)
{
    mx_result *m = &dm->res;
    dm->state = DOM_READY;
    dm->st = m->status;
    snprintf(dm->err, sizeof dm->err, "%s", m->err[0] ? m->err : "MX lookup failed");
    int64_t now = time_mono_ms();
    dm->expires_ms = m->expires_ms > now ? m->expires_ms : now + 5000;
    if (m->status == MX_OK) {
        char name[256];
        snprintf(name, sizeof name, "%s", m->implicit || m->nhosts == 0 ? dm->name
                                                                         : m->hosts[0].name);
        for (char *p = name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        size_t nl = strlen(name);
        if (nl > 1 && name[nl - 1] == '.')
            name[nl - 1] = '\0';
        dest *d = dest_get(e, name, dm->name);
        dest_set_targets(e, d, m);
        dm->d = d;
    }
    qjob *q;
    while ((q = jq_pop(&dm->waiting)) != NULL)
        dom_dispatch(e, dm, q);
}

static dom *dom_get(smtp_engine *e, const char *name)
{
    uint32_t h = hash_str(name);
    for (dom *dm = e->mh[h]; dm; dm = dm->hnext)
        if (strcmp(dm->name, name) == 0)
            return dm;
    dom *dm = xcalloc(1, sizeof *dm);
    snprintf(dm->name, sizeof dm->name, "%s", name);
    dm->hnext = e->mh[h];
    e->mh[h] = dm;
    dm->lnext = e->doms;
    e->doms = dm;
    dm->state = DOM_READY;
    dm->expires_ms = 0;
    return dm;
}

static void route(smtp_engine *e, qjob *q)
{
    if (atomic_load(&e->draining)) {
        finish_local(e, q, ENGINE_RELEASED, 0, "", "shutting down", NULL);
        return;
    }
    if (e->mode == ENGINE_MODE_RELAY) {
        dest_enqueue(e, e->dests, q);
        return;
    }
    const char *at = strrchr(q->j.recipient, '@');
    char domain[256];
    snprintf(domain, sizeof domain, "%s", at ? at + 1 : "");
    for (char *p = domain; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!domain[0]) {
        finish_local(e, q, ENGINE_BOUNCED, 0, "5.1.3", "recipient has no domain", NULL);
        return;
    }
    dom *dm = dom_get(e, domain);
    int64_t now = time_mono_ms();
    dm->last_used_ms = now;
    if (dm->state == DOM_RESOLVING) {
        jq_push(&dm->waiting, q);
        return;
    }
    if (dm->expires_ms <= now) {
        jq_push(&dm->waiting, q);
        resolve(e, dm);
        return;
    }
    dom_dispatch(e, dm, q);
}

/* --- scheduling ------------------------------------------------------------------------ */

static void dest_pump(smtp_engine *e, dest *d, int64_t now)
{
    size_t queued = d->q[0].n + d->q[1].n;
    if (!queued)
        return;
    if (d->paused) {
        finish_dest(e, d, ENGINE_POSTPONED, "destination paused by the operator");
        return;
    }
    if (atomic_load(&e->draining)) {
        finish_dest(e, d, ENGINE_RELEASED, "shutting down");
        return;
    }
    if (d->ntargets == 0) {
        char why[640];
        if (d->refused[0])
            snprintf(why, sizeof why, "not connecting to refused addresses: %s", d->refused);
        else
            snprintf(why, sizeof why, "%s: no usable address", d->name);
        dest_error(d, "%s", why);
        finish_dest(e, d, ENGINE_DEFERRED, why);
        return;
    }
    if (d->dead_until_ms > now) {
        char why[640];
        snprintf(why, sizeof why, "destination %s is not answering: %s", d->name, d->last_error);
        finish_dest(e, d, ENGINE_DEFERRED, why);
        return;
    }
    if (d->dead_until_ms && d->dead_until_ms <= now && !d->probe) {
        d->probe = 1;       /* one connection probes; the limit stays at 1 until it works */
        d->limit = 1;
    }
    /* idle sessions first */
    while (d->idle && (d->q[0].n || d->q[1].n)) {
        conn *c = d->idle;
        if (!conn_next_txn(c))
            break;
        idle_remove(c);
        conn_flush(c);
        conn_touch(c);
        conn_arm(c);
    }
    queued = d->q[0].n + d->q[1].n;
    int limit = (int)d->limit;
    if (limit < 1)
        limit = 1;
    while (queued > (size_t)d->connecting && d->active < limit &&
           e->nconns < cfg.smtp_max_sessions) {
        conn_open(e, d);
    }
}

/* --- the loop ------------------------------------------------------------------------- */

static void take_inbox(smtp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    qjob *q = e->inbox;
    e->inbox = e->inbox_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (q) {
        qjob *next = q->next;
        q->next = NULL;
        route(e, q);
        q = next;
    }
}

static void take_resolved(smtp_engine *e)
{
    pthread_mutex_lock(&e->rmu);
    rjob *j = e->rdone;
    e->rdone = NULL;
    pthread_mutex_unlock(&e->rmu);
    while (j) {
        rjob *next = j->next;
        resolved(e, j->dm);
        free(j);
        j = next;
    }
}

static int name_in(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static void apply_controls(smtp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    int fresh = e->controls_new;
    e->controls_new = 0;
    char **retry = e->retry;
    size_t nretry = e->nretry;
    e->retry = NULL;
    e->nretry = 0;
    if (fresh)
        for (dest *d = e->dests; d; d = d->lnext) {
            int p = name_in(e->paused, e->npaused, d->name);
            if (p != d->paused)
                log_fields(LOG_INFO, json_pack("{s:s}", "destination", d->name), "destination %s",
                           p ? "paused" : "resumed");
            d->paused = p;
        }
    pthread_mutex_unlock(&e->mu);
    for (size_t i = 0; i < nretry; i++) {
        for (dest *d = e->dests; d; d = d->lnext)
            if (strcmp(d->name, retry[i]) == 0) {
                d->dead_until_ms = 0;
                d->first_fail_ms = 0;
                d->limit = d->pol.max_connections;
            }
        /* forget cached DNS answers too: the operator may have fixed a record */
        for (dom *dm = e->doms; dm; dm = dm->lnext)
            if (dm->d && strcmp(dm->d->name, retry[i]) == 0 && dm->state == DOM_READY)
                dm->expires_ms = 0;
        free(retry[i]);
    }
    free(retry);
}

static void do_reload(smtp_engine *e)
{
    char err[512];
    policy_set *p = policy_load(e->policy_path, err, sizeof err);
    if (!p) {
        log_error("POSTHORN_DESTINATION_POLICY not reloaded (the old policy stays): %s", err);
        return;
    }
    policy_free(e->policy);
    e->policy = p;
    for (dest *d = e->dests; d; d = d->lnext) {
        dest_apply_policy(e, d, NULL);
        if (d->limit > d->pol.max_connections)
            d->limit = d->pol.max_connections;
    }
    log_info("destination policy reloaded");
}

static void snapshot(smtp_engine *e, int64_t now)
{
    size_t n = 0;
    for (dest *d = e->dests; d; d = d->lnext)
        n++;
    engine_dest_status *s = xcalloc(n ? n : 1, sizeof *s);
    size_t k = 0;
    for (dest *d = e->dests; d; d = d->lnext) {
        int busy = d->active || d->q[0].n || d->q[1].n || d->paused ||
                   d->dead_until_ms > now || now - d->last_used_ms < DOMAIN_KEEP_MS;
        if (!busy)
            continue;
        snprintf(s[k].name, sizeof s[k].name, "%s", d->name);
        s[k].queued = (int)(d->q[0].n + d->q[1].n);
        s[k].active = d->active;
        s[k].state = dest_state(d, now);
        snprintf(s[k].last_error, sizeof s[k].last_error, "%s", d->last_error);
        k++;
    }
    pthread_mutex_lock(&e->mu);
    free(e->snap);
    e->snap = s;
    e->nsnap = k;
    pthread_mutex_unlock(&e->mu);
}

/* Domains not used for a while are forgotten (their answers would be stale anyway). */
static void forget_domains(smtp_engine *e, int64_t now)
{
    for (dom **pp = &e->doms; *pp;) {
        dom *dm = *pp;
        if (dm->state == DOM_READY && !dm->waiting.n && now - dm->last_used_ms > DOMAIN_KEEP_MS) {
            *pp = dm->lnext;
            uint32_t h = hash_str(dm->name);
            for (dom **hp = &e->mh[h]; *hp; hp = &(*hp)->hnext)
                if (*hp == dm) {
                    *hp = dm->hnext;
                    break;
                }
            free(dm);
            continue;
        }
        pp = &dm->lnext;
    }
}

static void *loop_main(void *arg)
{
    smtp_engine *e = arg;
    struct epoll_event evs[MAX_EVENTS];
    int64_t next_tick = 0, next_forget = time_mono_ms() + DOMAIN_KEEP_MS;
    for (;;) {
        int n = epoll_wait(e->epfd, evs, MAX_EVENTS, TICK_MS);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                ssize_t r = read(e->evfd, &v, sizeof v);
                (void)r;
                continue;
            }
            conn *c = evs[i].data.ptr;
            conn_io(c, evs[i].events);
        }
        /* settle every connection touched (and those whose callbacks ended them) */
        int64_t now = time_mono_ms();
        take_resolved(e);
        take_inbox(e);
        if (atomic_exchange(&e->reload, 0))
            do_reload(e);
        apply_controls(e);
        if (now >= next_tick) {
            for (conn *c = e->conns; c; c = c->next)
                conn_timeout(c, now);
            next_tick = now + TICK_MS / 2;
        }
        for (conn *c = e->conns, *next; c; c = next) {
            next = c->next;
            conn_settle(c);
        }
        for (dest *d = e->dests; d; d = d->lnext)
            dest_pump(e, d, now);
        for (conn *c = e->conns, *next; c; c = next) {
            next = c->next;
            conn_settle(c);
        }
        if (e->ev.on_tick)
            e->ev.on_tick(e->ctx);
        if (now >= e->next_snapshot_ms) {
            snapshot(e, now);
            e->next_snapshot_ms = now + SNAPSHOT_MS;
        }
        if (now >= next_forget) {
            forget_domains(e, now);
            next_forget = now + 60000;
        }
        if (atomic_load(&e->stop_now)) {
            for (conn *c = e->conns; c; c = c->next)
                if (c->s && !smtp_session_closed(c->s))
                    smtp_session_eof(c->s, "worker shutting down");
                else
                    c->dead = 1;
            for (conn *c = e->conns, *next; c; c = next) {
                next = c->next;
                c->dead = 1;
                conn_free(c);
            }
            take_inbox(e);
            for (dest *d = e->dests; d; d = d->lnext)
                finish_dest(e, d, ENGINE_RELEASED, "shutting down");
            for (dom *dm = e->doms; dm; dm = dm->lnext)
                finish_queue(e, &dm->waiting, ENGINE_RELEASED, 0, "", "shutting down", NULL);
            if (e->ev.on_tick)
                e->ev.on_tick(e->ctx);
            break;
        }
    }
    return NULL;
}

/* --- public --------------------------------------------------------------------------- */

static int parse_relay(smtp_engine *e, const char *url, char *err, size_t errlen)
{
    const char *p = url;
    if (strncmp(p, "smtp://", 7) != 0) {
        snprintf(err, errlen, "POSTHORN_RELAY_URL must look like smtp://user:pass@host:port");
        return -1;
    }
    p += 7;
    const char *at = strrchr(p, '@');
    if (at) {
        /* userinfo: user[:password], percent-encoded as in any URL (RFC 3986 3.2.1) */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (pct_decode(p, ul, e->relay_user, sizeof e->relay_user) != 0) {
            snprintf(err, errlen, "POSTHORN_RELAY_URL: user name too long or badly encoded");
            return -1;
        }
        if (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), e->relay_pass,
                                sizeof e->relay_pass) != 0) {
            snprintf(err, errlen, "POSTHORN_RELAY_URL: password too long or badly encoded");
            return -1;
        }
        p = at + 1;
    }
    const char *colon = strrchr(p, ':');
    size_t hl = colon ? (size_t)(colon - p) : strlen(p);
    while (hl && p[hl - 1] == '/')
        hl--;
    if (hl == 0 || hl >= sizeof e->relay_host) {
        snprintf(err, errlen, "POSTHORN_RELAY_URL: no host");
        return -1;
    }
    memcpy(e->relay_host, p, hl);
    e->relay_host[hl] = '\0';
    e->relay_port = 25;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if ((*end && *end != '/') || port < 1 || port > 65535) {
            snprintf(err, errlen, "POSTHORN_RELAY_URL: bad port");
            return -1;
        }
        e->relay_port = (int)port;
    }
    return 0;
}

/* The smarthost: one destination whose targets come from the system resolver. */
static int relay_dest(smtp_engine *e, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", e->relay_port);
    int r = getaddrinfo(e->relay_host, port, &hints, &ai);
    if (r != 0) {
        snprintf(err, errlen, "POSTHORN_RELAY_URL: %s: %s", e->relay_host, gai_strerror(r));
        return -1;
    }
    dest *d = dest_get(e, "relay", e->relay_host);
    for (struct addrinfo *a = ai; a && d->ntargets < MAX_TARGETS; a = a->ai_next) {
        target *t = &d->targets[d->ntargets++];
        snprintf(t->name, sizeof t->name, "%s", e->relay_host);
        memcpy(&t->sa, a->ai_addr, a->ai_addrlen);
        t->salen = a->ai_addrlen;
        netguard_addr_str(a->ai_addr, t->ip, sizeof t->ip);
    }
    freeaddrinfo(ai);
    return 0;
}

smtp_engine *engine_start(engine_mode mode, const engine_events *ev, void *ctx, char *err,
                          size_t errlen)
{
    smtp_engine *e = xcalloc(1, sizeof *e);
    e->mode = mode;
    e->ev = *ev;
    e->ctx = ctx;
    e->epfd = e->evfd = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->room, NULL);
    pthread_mutex_init(&e->rmu, NULL);
    pthread_cond_init(&e->rcond, NULL);
    atomic_init(&e->pending, 0);
    atomic_init(&e->draining, 0);
    atomic_init(&e->stop_now, 0);
    atomic_init(&e->reload, 0);
    /* claimed rows waiting here hold leases: enough to keep every session busy, no more */
    size_t bound = (size_t)cfg.smtp_max_sessions * 4;
    e->bound = bound < 2000 ? 2000 : bound;
    snprintf(e->policy_path, sizeof e->policy_path, "%s", cfg.destination_policy);
    e->policy = policy_load(cfg.destination_policy, err, errlen);
    if (!e->policy)
        goto fail;
    e->rules = bounce_rules_load(cfg.bounce_rules, err, errlen);
    if (!e->rules)
        goto fail;
    e->guard = netguard_new(cfg.smtp_allow_cidrs, err, errlen);
    if (!e->guard)
        goto fail;
    e->mxc = mx_cache_new();
    if (cfg.helo_name[0])
        snprintf(e->helo, sizeof e->helo, "%s", cfg.helo_name);
    else if (gethostname(e->helo, sizeof e->helo) != 0 || !e->helo[0])
        snprintf(e->helo, sizeof e->helo, "localhost");
    e->helo[sizeof e->helo - 1] = '\0';
    e->sp.helo_name = e->helo;
    if (mode == ENGINE_MODE_RELAY) {
        if (parse_relay(e, cfg.relay_url, err, errlen) != 0)
            goto fail;
        if (e->relay_user[0]) {
            e->sp.auth_user = e->relay_user;
            e->sp.auth_pass = e->relay_pass;
        }
        if (relay_dest(e, err, errlen) != 0)
            goto fail;
    }
    e->tls = SSL_CTX_new(TLS_client_method());
    if (!e->tls) {
        snprintf(err, errlen, "cannot create the TLS context");
        goto fail;
    }
    SSL_CTX_set_default_verify_paths(e->tls);
    SSL_CTX_set_verify(e->tls, SSL_VERIFY_NONE, NULL);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->epfd < 0 || e->evfd < 0) {
        snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &wev);
    if (pthread_create(&e->rthread, NULL, resolver_main, e) != 0 ||
        pthread_create(&e->thread, NULL, loop_main, e) != 0)
        die("cannot start the delivery loop threads");
    return e;
fail:
    if (e->policy)
        policy_free(e->policy);
    if (e->rules)
        bounce_rules_free(e->rules);
    if (e->guard)
        netguard_free(e->guard);
    if (e->mxc)
        mx_cache_free(e->mxc);
    for (dest *d = e->dests, *n; d; d = n) {
        n = d->lnext;
        free(d);
    }
    if (e->tls)
        SSL_CTX_free(e->tls);
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->evfd >= 0)
        close(e->evfd);
    free(e);
    return NULL;
}

void engine_submit(smtp_engine *e, const engine_job *jobs, size_t n)
{
    if (n == 0)
        return;
    qjob *first = NULL, *last = NULL;
    int bulk = 0;   /* transactional jobs never wait for room behind bulk ones */
    for (size_t i = 0; i < n; i++) {
        qjob *q = xcalloc(1, sizeof *q);
        q->j = jobs[i];
        bulk |= jobs[i].priority != 0;
        if (last)
            last->next = q;
        else
            first = q;
        last = q;
    }
    pthread_mutex_lock(&e->mu);
    while (bulk && atomic_load(&e->pending) > e->bound && !atomic_load(&e->draining))
        pthread_cond_wait(&e->room, &e->mu);
    atomic_fetch_add(&e->pending, n);
    if (e->inbox_tail)
        e->inbox_tail->next = first;
    else
        e->inbox = first;
    e->inbox_tail = last;
    pthread_mutex_unlock(&e->mu);
    wake(e);
}

size_t engine_pending(smtp_engine *e) { return atomic_load(&e->pending); }

void engine_drain(smtp_engine *e)
{
    atomic_store(&e->draining, 1);
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->room);
    pthread_mutex_unlock(&e->mu);
    wake(e);
}

void engine_stop(smtp_engine *e, int64_t deadline_ms)
{
    engine_drain(e);
    while (atomic_load(&e->pending) > 0 && time_mono_ms() < deadline_ms) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_store(&e->stop_now, 1);
    wake(e);
    pthread_join(e->thread, NULL);
    pthread_mutex_lock(&e->rmu);
    e->rstop = 1;
    pthread_cond_signal(&e->rcond);
    pthread_mutex_unlock(&e->rmu);
    pthread_join(e->rthread, NULL);
}

void engine_free(smtp_engine *e)
{
    if (!e)
        return;
    for (dest *d = e->dests, *n; d; d = n) {
        n = d->lnext;
        free(d);
    }
    for (dom *dm = e->doms, *n; dm; dm = n) {
        n = dm->lnext;
        free(dm);
    }
    for (rjob *j = e->rq, *n; j; j = n) {
        n = j->next;
        free(j);
    }
    for (rjob *j = e->rdone, *n; j; j = n) {
        n = j->next;
        free(j);
    }
    for (size_t i = 0; i < e->npaused; i++)
        free(e->paused[i]);
    free(e->paused);
    for (size_t i = 0; i < e->nretry; i++)
        free(e->retry[i]);
    free(e->retry);
    free(e->snap);
    policy_free(e->policy);
    bounce_rules_free(e->rules);
    netguard_free(e->guard);
    mx_cache_free(e->mxc);
    SSL_CTX_free(e->tls);
    close(e->epfd);
    close(e->evfd);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->room);
    pthread_mutex_destroy(&e->rmu);
    pthread_cond_destroy(&e->rcond);
    free(e);
}

void engine_reload_policy(smtp_engine *e)
{
    atomic_store(&e->reload, 1);
    wake(e);
}

void engine_set_controls(smtp_engine *e, char **paused, size_t npaused, char **retry,
                         size_t nretry)
{
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->npaused; i++)
        free(e->paused[i]);
    free(e->paused);
    e->paused = xcalloc(npaused ? npaused : 1, sizeof *e->paused);
    for (size_t i = 0; i < npaused; i++)
        e->paused[i] = xstrdup(paused[i]);
    e->npaused = npaused;
    if (nretry) {
        e->retry = xrealloc(e->retry, (e->nretry + nretry) * sizeof *e->retry);
        for (size_t i = 0; i < nretry; i++)
            e->retry[e->nretry++] = xstrdup(retry[i]);
    }
    e->controls_new = 1;
    pthread_mutex_unlock(&e->mu);
    wake(e);
}

engine_dest_status *engine_snapshot(smtp_engine *e, size_t *n)
{
    pthread_mutex_lock(&e->mu);
    engine_dest_status *s = xcalloc(e->nsnap ? e->nsnap : 1, sizeof *s);
    if (e->nsnap)
        memcpy(s, e->snap, e->nsnap * sizeof *s);
    *n = e->nsnap;
    pthread_mutex_unlock(&e->mu);
    return s;
}
