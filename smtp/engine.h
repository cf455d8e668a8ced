/* smtp/engine.h - the delivery loop: one thread running an epoll loop that drives many
 * non-blocking SMTP sessions (smtp/session) to recipients' MX hosts (mode mx) or to one
 * smarthost (mode relay). It groups submitted jobs into per-destination queues (a
 * destination is an MX site: the most-preferred MX host, so domains sharing MX hosts share
 * limits; the domain itself for an implicit MX), transactional before broadcast, and opens
 * connections within each destination's policy (smtp/policy): connection limit halved on
 * 421, 4.7.x and connection failures and recovered one step per clean session; a
 * destination failing for `dead_after` is dead for `dead_for` and its jobs are deferred at
 * once, so it never slows the others. Addresses refused by the guard (lib/netguard) are
 * never connected to. MX look-ups run on a resolver thread (smtp/mx, cached by TTL).
 *
 * The engine never touches the database: every submitted job gets exactly one result
 * through on_result (called on the loop thread), and the caller records it. */
#ifndef POSTHORN_SMTP_ENGINE_H
#define POSTHORN_SMTP_ENGINE_H
#include <stddef.h>
#include <stdint.h>

typedef struct smtp_engine smtp_engine;

typedef struct {
    const char *recipient;     /* mailbox, domain in A-labels */
    int         smtputf8;      /* the recipient needs SMTPUTF8 */
    int         priority;      /* 0 transactional, 1 broadcast */
    const char *mail_from;     /* envelope sender ("" for the null sender) */
    const char *head;          /* content = head (may be NULL) + body */
    size_t      head_len;
    const char *body;
    size_t      body_len;
    const void *content_key;   /* jobs with equal key and sender share one transaction */
    int64_t     start_by_ms;   /* monotonic: not started after this (lease) -> RELEASED */
    void       *ctx;           /* the caller's */
} engine_job;

typedef enum {
    ENGINE_DELIVERED,
    ENGINE_DEFERRED,
    ENGINE_BOUNCED,
    ENGINE_RELEASED,    /* never tried (shutdown, lease nearly over): give back */
    ENGINE_POSTPONED,   /* never tried: destination paused by the operator */
} engine_verdict;

typedef struct {
    engine_job    *job;
    engine_verdict verdict;
    int            code;
    const char    *enhanced;       /* "" when none */
    const char    *text;
    const char    *mx;             /* NULL when no host was contacted */
    const char    *ip;
    const char    *tls;            /* "TLSv1.3 TLS_AES_..." or NULL */
    int            duration_ms;
    const char    *transcript;     /* NULL when no session */
    const char    *destination;
    const char    *bounce_class;   /* bounces: "hard", "soft", "block", "undetermined" */
    const char    *bounce_rule;    /* the rule that decided it, NULL when none matched */
    const char    *bounce_rules_version;
} engine_result;

typedef struct {
    void (*on_result)(void *ctx, const engine_result *r);
    /* After each turn of the loop (at least every 100 ms): results can be flushed. */
    void (*on_tick)(void *ctx);
} engine_events;

typedef enum { ENGINE_MODE_MX, ENGINE_MODE_RELAY } engine_mode;

/* Starts the loop thread. Settings from cfg (timeouts, POSTHORN_SMTP_PORT, allow CIDRs,
 * policy file, bounce rules, relay URL). NULL with err on a bad policy, rules or relay
 * URL. */
smtp_engine *engine_start(engine_mode mode, const engine_events *ev, void *ctx, char *err,
                          size_t errlen);
/* Hands jobs to the loop (thread-safe; the array is copied, the job contents must live
 * until their result). Blocks while more than the in-flight bound are waiting, unless every
 * job is transactional (priority 0): those never wait behind bulk work. */
void engine_submit(smtp_engine *e, const engine_job *jobs, size_t n);
/* Jobs submitted and without a result yet. */
size_t engine_pending(smtp_engine *e);
/* Shutdown, step 1: jobs not started are RELEASED; sessions finish their transaction. */
void engine_drain(smtp_engine *e);
/* Waits until no job is pending or deadline_ms (monotonic) passes; then sessions still
 * open are cut (their jobs DEFERRED) and the thread ends. */
void engine_stop(smtp_engine *e, int64_t deadline_ms);
void engine_free(smtp_engine *e);

/* Re-reads POSTHORN_DESTINATION_POLICY (on SIGHUP); a bad file keeps the old policy. */
void engine_reload_policy(smtp_engine *e);

/* Operator controls, applied on the loop thread: the names paused now (others resumed),
 * and destinations to retry now (dead state and limits reset). */
void engine_set_controls(smtp_engine *e, char **paused, size_t npaused, char **retry,
                         size_t nretry);

typedef struct {
    char name[256];
    int  queued;
    int  active;
    const char *state;     /* "active", "throttled", "dead", "paused" */
    char last_error[256];
} engine_dest_status;

/* A snapshot of the destinations seen recently (malloc'd array; free()). */
engine_dest_status *engine_snapshot(smtp_engine *e, size_t *n);
#endif
