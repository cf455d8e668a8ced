/* smtp/policy.h - per-destination delivery limits and TLS policy, from the file named by
 * POSTHORN_DESTINATION_POLICY (else the shipped etc/destinations.conf, built in). A loaded
 * set is immutable: on SIGHUP the caller loads a new one, swaps it in and frees the old.
 *
 * One line per pattern: `pattern key=value ...`, '#' comments. Patterns: "*" (the default,
 * consulted after every other line wherever it stands), "*.example.com" (any subdomain,
 * not example.com itself) or "example.com" (exactly). Keys a line leaves out come from the
 * "*" line, and what that leaves out from the built-in defaults (POLICY_DEFAULT_*). */
#ifndef POSTHORN_SMTP_POLICY_H
#define POSTHORN_SMTP_POLICY_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TLS_POLICY_NONE,      /* never STARTTLS */
    TLS_POLICY_MAY,       /* STARTTLS when offered, plain text otherwise */
    TLS_POLICY_REQUIRE,   /* STARTTLS or defer; any certificate */
    TLS_POLICY_VERIFY     /* require + a certificate that verifies for the MX host name */
} tls_policy;

typedef struct {
    char pattern[256];
    int  max_connections;         /* concurrent sessions to this destination per worker */
    int  messages_per_connection; /* transactions on one connection before QUIT */
    int  rcpts_per_message;       /* RCPTs in one transaction */
    int  rate_per_minute;         /* messages per minute per worker, 0 = unlimited */
    tls_policy tls;
    int64_t dead_after_ms;        /* a destination failing every attempt this long is marked dead */
    int64_t dead_for_ms;          /* how long it stays dead before one probe */
} dest_policy;

/* Built-in defaults and the bounds every value is checked against. */
#define POLICY_DEFAULT_CONNECTIONS   20
#define POLICY_DEFAULT_MESSAGES      100
#define POLICY_DEFAULT_RCPTS         50
#define POLICY_DEFAULT_RATE          0
#define POLICY_DEFAULT_TLS           TLS_POLICY_MAY
#define POLICY_DEFAULT_DEAD_AFTER_MS (10 * 60 * 1000)
#define POLICY_DEFAULT_DEAD_FOR_MS   (5 * 60 * 1000)
#define POLICY_MAX_CONNECTIONS       1000
#define POLICY_MAX_MESSAGES          10000
#define POLICY_MAX_RCPTS             1000
#define POLICY_MAX_RATE              1000000
#define POLICY_MIN_DEAD_MS           1000                         /* 1 s */
#define POLICY_MAX_DEAD_MS           (7LL * 24 * 60 * 60 * 1000)  /* 7 days */
#define POLICY_MAX_LINES             10000

typedef struct policy_set policy_set;

/* path NULL or "" -> the shipped etc/destinations.conf (embedded). NULL and a message with
 * the file name and line number in err on a bad or unreadable file. */
policy_set *policy_load(const char *path, char *err, size_t errlen);
/* The same from bytes in memory (tests, fuzzing); name is used in error messages. */
policy_set *policy_parse(const char *data, size_t len, const char *name, char *err,
                         size_t errlen);
void policy_free(policy_set *p);
/* Lines in the set, the "*" default included (built in when the file has none). */
size_t policy_count(const policy_set *p);

/* The policy for a destination: the first line (in file order, "*" last) whose pattern
 * matches destination (the lower-cased most-preferred MX host name, or the domain for an
 * implicit MX) or domain (the recipient domain). Case and a trailing dot are ignored;
 * either name may be NULL. Never NULL: with p NULL, the built-in defaults. The pointer lives
 * as long as p. */
const dest_policy *policy_match(const policy_set *p, const char *destination, const char *domain);
/* "none" "may" "require" "verify" */
const char *tls_policy_name(tls_policy t);
#endif
