#include "lib/config.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

config cfg;

typedef enum { K_STR, K_SECRET, K_INT, K_DURATION, K_BOOL, K_ENUM, K_ADDR, K_CIDRS,
               K_SCHEDULE, K_LOGLEVEL, K_SIZE } kind;

typedef struct {
    const char *name;
    kind        k;
    size_t      off;
    const char *def;      /* NULL: no default (required when K_SECRET, else empty) */
    int64_t     min, max; /* ints, sizes; durations in ms; string lengths for K_SECRET */
    const char *choices;  /* K_ENUM: "a|b|c" in enum order */
    const char *desc;
} setting;

#define O(f) offsetof(config, f)
#define SEC  1000LL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

static const setting settings[] = {
    {"POSTHORN_SECRET", K_SECRET, O(secret), NULL, 32, 4096, NULL,
     "Master secret (at least 32 characters). Token, DKIM-key and webhook-secret keys are derived from it with HKDF. Required; no default."},
    {"POSTHORN_SECRET_PREVIOUS", K_SECRET, O(secret_previous), "", 0, 4096, NULL,
     "The previous secret, still accepted for tokens and decryption during a rotation."},
    {"POSTHORN_DATABASE_URL", K_STR, O(database_url), "postgresql://posthorn@127.0.0.1:5432/posthorn", 1, 4096, NULL,
     "PostgreSQL connection URL (libpq syntax). The only source of truth."},
    {"POSTHORN_REDIS_URL", K_STR, O(redis_url), "redis://127.0.0.1:6379/0", 1, 4096, NULL,
     "Redis URL redis://[:password@]host:port[/db]: wake-ups and shared rate limits only."},
    {"POSTHORN_HTTP_ADDR", K_ADDR, O(http_addr), "127.0.0.1:8080", 0, 0, NULL,
     "Address the API listens on (host:port, [v6]:port)."},
    {"POSTHORN_METRICS_ADDR", K_ADDR, O(metrics_addr), "127.0.0.1:9090", 0, 0, NULL,
     "Address of the Prometheus /metrics listener."},
    {"POSTHORN_PUBLIC_URL", K_STR, O(public_url), "http://127.0.0.1:8080", 1, 1024, NULL,
     "Public base URL of tracking and unsubscribe links."},
    {"POSTHORN_DELIVERY", K_ENUM, O(delivery), "mx", 0, 0, "mx|relay|file",
     "How workers deliver: mx (look up each recipient's MX), relay (smarthost), file (write to POSTHORN_MAIL_DIR)."},
    {"POSTHORN_RELAY_URL", K_STR, O(relay_url), "", 0, 1024, NULL,
     "Smarthost for POSTHORN_DELIVERY=relay: smtp://user:pass@host:587 (user and password percent-encoded)."},
    {"POSTHORN_MAIL_DIR", K_STR, O(mail_dir), "var/mail", 1, 1024, NULL,
     "Directory for POSTHORN_DELIVERY=file: one file per delivery attempt."},
    {"POSTHORN_DNS_SERVER", K_STR, O(dns_server), "", 0, 256, NULL,
     "DNS server host:port for MX and webhook lookups; empty uses the system resolver."},
    {"POSTHORN_SMTP_PORT", K_INT, O(smtp_port), "25", 1, 65535, NULL,
     "Port of remote MX hosts (tests point it at their sinks)."},
    {"POSTHORN_SMTP_ALLOW_CIDRS", K_CIDRS, O(smtp_allow_cidrs), "", 0, 0, NULL,
     "Comma-separated CIDRs of private/loopback MX addresses that may be connected to (tests only)."},
    {"POSTHORN_WEBHOOK_ALLOW_CIDRS", K_CIDRS, O(webhook_allow_cidrs), "", 0, 0, NULL,
     "Comma-separated CIDRs of private/loopback webhook addresses that may be used (tests only)."},
    {"POSTHORN_ALLOW_UNVERIFIED", K_BOOL, O(allow_unverified), "0", 0, 1, NULL,
     "1 allows sending from domains that are not verified (development only)."},
    {"POSTHORN_HELO_NAME", K_STR, O(helo_name), "", 0, 255, NULL,
     "Name given in EHLO; empty uses the host name."},
    {"POSTHORN_DESTINATION_POLICY", K_STR, O(destination_policy), "", 0, 1024, NULL,
     "File of per-destination limits and TLS policy, reloaded on SIGHUP; empty uses built-in defaults."},
    {"POSTHORN_BOUNCE_RULES", K_STR, O(bounce_rules), "", 0, 1024, NULL,
     "File of bounce classification rules; empty uses the shipped etc/bounce-rules.conf (built in)."},
    {"POSTHORN_SMTP_MAX_SESSIONS", K_INT, O(smtp_max_sessions), "1000", 1, 100000, NULL,
     "Concurrent outbound SMTP sessions per worker, all destinations together."},
    {"POSTHORN_SMTP_CONNECT_TIMEOUT", K_DURATION, O(smtp_connect_timeout_ms), "30s", 100, 10 * MIN, NULL,
     "Time to open a TCP connection to an MX host."},
    {"POSTHORN_SMTP_GREETING_TIMEOUT", K_DURATION, O(smtp_greeting_timeout_ms), "5m", 100, 1 * HOUR, NULL,
     "Wait for the 220 greeting (RFC 5321 4.5.3.2.1)."},
    {"POSTHORN_SMTP_COMMAND_TIMEOUT", K_DURATION, O(smtp_command_timeout_ms), "5m", 100, 1 * HOUR, NULL,
     "Wait for the reply to EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET (RFC 5321 4.5.3.2.2-3), and for a TLS handshake."},
    {"POSTHORN_SMTP_DATA_INIT_TIMEOUT", K_DURATION, O(smtp_data_init_timeout_ms), "2m", 100, 1 * HOUR, NULL,
     "Wait for the 354 reply to DATA (RFC 5321 4.5.3.2.4)."},
    {"POSTHORN_SMTP_DATA_BLOCK_TIMEOUT", K_DURATION, O(smtp_data_block_timeout_ms), "3m", 100, 1 * HOUR, NULL,
     "Longest wait for the peer to accept more message data (RFC 5321 4.5.3.2.5)."},
    {"POSTHORN_SMTP_DATA_DONE_TIMEOUT", K_DURATION, O(smtp_data_done_timeout_ms), "10m", 100, 1 * HOUR, NULL,
     "Wait for the reply after the final dot (RFC 5321 4.5.3.2.6)."},
    {"POSTHORN_MAX_QUEUE_LIFETIME", K_DURATION, O(max_queue_lifetime_ms), "72h", 1 * SEC, 30 * DAY, NULL,
     "How long a message may wait for delivery before it expires."},
    {"POSTHORN_RETRY_SCHEDULE", K_SCHEDULE, O(retry_schedule_ms), "1m,5m,15m,30m,1h,2h,4h", 1 * SEC, 7 * DAY, NULL,
     "Delays between delivery attempts (comma-separated durations; the last one repeats), jittered."},
    {"POSTHORN_LEASE", K_DURATION, O(lease_ms), "5m", 1 * SEC, 1 * DAY, NULL,
     "How long a worker holds claimed deliveries before they return to the queue."},
    {"POSTHORN_POLL_INTERVAL", K_DURATION, O(poll_interval_ms), "5s", 1 * SEC, 1 * HOUR, NULL,
     "How often an idle worker polls PostgreSQL when no Redis wake-up arrives."},
    {"POSTHORN_RETENTION", K_DURATION, O(retention_ms), "30d", 1 * SEC, 3650 * DAY, NULL,
     "How long message content, attachments and transcripts are kept (events are kept longer)."},
    {"POSTHORN_EVENT_RETENTION", K_DURATION, O(event_retention_ms), "90d", 1 * SEC, 3650 * DAY, NULL,
     "How long events are kept (their time partitions are dropped afterwards)."},
    {"POSTHORN_STATS_RETENTION", K_DURATION, O(stats_retention_ms), "730d", 1 * HOUR, 36500 * DAY, NULL,
     "How long the hourly counters behind GET /v1/stats are kept (they outlive the events)."},
    {"POSTHORN_WEBHOOK_RETRY_SCHEDULE", K_SCHEDULE, O(webhook_retry_ms), "5s,5m,30m,2h,5h,10h,14h,20h,24h", 1 * SEC, 7 * DAY, NULL,
     "Delays between attempts of a failed webhook batch (the last one repeats), jittered; Retry-After is honoured."},
    {"POSTHORN_WEBHOOK_DISABLE_AFTER", K_DURATION, O(webhook_disable_after_ms), "3d", 1 * SEC, 30 * DAY, NULL,
     "A webhook failing without a success for this long is disabled."},
    {"POSTHORN_WEBHOOK_TIMEOUT", K_DURATION, O(webhook_timeout_ms), "15s", 100, 60 * SEC, NULL,
     "Time allowed for one webhook POST (connect to response)."},
    {"POSTHORN_CSV_MAX", K_SIZE, O(csv_max), "524288000", 1024, 10737418240LL, NULL,
     "Body cap in bytes of text/csv uploads (contacts, suppressions), streamed, never held whole."},
    {"POSTHORN_CAMPAIGN_CHUNK", K_INT, O(campaign_chunk), "1000", 1, 100000, NULL,
     "Contacts a worker expands into deliveries per campaign transaction."},
    {"POSTHORN_LOG_LEVEL", K_LOGLEVEL, O(log_level), "info", 0, 0, "debug|info|warn|error",
     "Lowest level logged (JSON lines on stderr)."},
    {"POSTHORN_HTTP_THREADS", K_INT, O(http_threads), "4", 1, 256, NULL,
     "HTTP worker threads of posthorn-api."},
    {"POSTHORN_HTTP_MAX_CONNECTIONS", K_INT, O(http_max_connections), "4096", 16, 1000000, NULL,
     "Most concurrent HTTP connections posthorn-api accepts."},
    {"POSTHORN_HTTP_TIMEOUT", K_DURATION, O(http_timeout_ms), "60s", 1 * SEC, 1 * HOUR, NULL,
     "An HTTP connection idle this long (also mid-request) is closed."},
    {"POSTHORN_SHUTDOWN_GRACE", K_DURATION, O(shutdown_grace_ms), "30s", 0, 1 * HOUR, NULL,
     "On SIGTERM, how long in-flight requests and deliveries may take to finish."},
    {"POSTHORN_DB_TIMEOUT", K_DURATION, O(db_timeout_ms), "5s", 1 * SEC, 10 * MIN, NULL,
     "PostgreSQL connect and statement timeout."},
    {"POSTHORN_WRITE_TIMEOUT", K_DURATION, O(write_timeout_ms), "30s", 1 * SEC, 10 * MIN, NULL,
     "How long the API's group-commit writer waits on PostgreSQL (e.g. for a lock) before answering 503."},
    {"POSTHORN_DB_WRITERS", K_INT, O(db_writers), "2", 1, 32, NULL,
     "Group-commit writer threads (and PostgreSQL connections) of posthorn-api."},
    {"POSTHORN_QUEUE_LIMIT", K_INT, O(queue_limit), "10000000", 1, 2000000000, NULL,
     "Pending deliveries above which every send answers 429."},
    {"POSTHORN_QUEUE_LIMIT_BROADCAST", K_INT, O(queue_limit_broadcast), "2000000", 1, 2000000000, NULL,
     "Pending deliveries above which broadcast sends answer 429 (transactional ones still pass)."},
    {"POSTHORN_REDIS_TIMEOUT", K_DURATION, O(redis_timeout_ms), "250ms", 10, 60 * SEC, NULL,
     "Redis connect and command timeout; past it Posthorn carries on without Redis."},
    {"POSTHORN_AUTH_CACHE_TTL", K_DURATION, O(auth_cache_ttl_ms), "2s", 0, 60 * SEC, NULL,
     "How long posthorn-api reuses an API-key lookup; a revoked key is refused within this time (0 looks up every request)."},
    {"POSTHORN_DEFAULT_KEY_RATE", K_INT, O(default_key_rate), "100", 1, 1000000, NULL,
     "Requests per second (and burst) of API keys created without --rate."},
    {"POSTHORN_BODY_MAX", K_SIZE, O(body_max), "1048576", 1024, 1073741824, NULL,
     "Body cap in bytes of routes that declare none of their own."},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

static void *field(const setting *s) { return (char *)&cfg + s->off; }

int config_parse_duration(const char *s, int64_t *ms)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mul;
    if (strcmp(end, "ms") == 0) mul = 1;
    else if (*end == '\0' || strcmp(end, "s") == 0) mul = SEC;
    else if (strcmp(end, "m") == 0) mul = MIN;
    else if (strcmp(end, "h") == 0) mul = HOUR;
    else if (strcmp(end, "d") == 0) mul = DAY;
    else return -1;
    if (v > LLONG_MAX / mul)
        return -1;
    *ms = v * mul;
    return 0;
}

static void fmt_duration(int64_t ms, char *out, size_t n)
{
    if (ms % DAY == 0 && ms) snprintf(out, n, "%lldd", (long long)(ms / DAY));
    else if (ms % HOUR == 0 && ms) snprintf(out, n, "%lldh", (long long)(ms / HOUR));
    else if (ms % MIN == 0 && ms) snprintf(out, n, "%lldm", (long long)(ms / MIN));
    else if (ms % SEC == 0) snprintf(out, n, "%llds", (long long)(ms / SEC));
    else snprintf(out, n, "%lldms", (long long)ms);
}

static int parse_int(const char *s, long long *v)
{
    errno = 0;
    char *end;
    *v = strtoll(s, &end, 10);
    return (errno || end == s || *end) ? -1 : 0;
}

static int valid_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return 0;
    long long port;
    if (parse_int(colon + 1, &port) != 0 || port < 0 || port > 65535)
        return 0;
    char host[256];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return 0;
    memcpy(host, s, hl);
    host[hl] = '\0';
    unsigned char tmp[16];
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']')
            return 0;
        host[hl - 1] = '\0';
        return inet_pton(AF_INET6, host + 1, tmp) == 1;
    }
    return inet_pton(AF_INET, host, tmp) == 1 || strcmp(host, "localhost") == 0;
}

static int valid_cidrs(const char *s)
{
    char *copy = xstrdup(s), *save = NULL;
    int ok = 1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *slash = strchr(tok, '/');
        long long bits = -1;
        if (slash) {
            *slash = '\0';
            if (parse_int(slash + 1, &bits) != 0) { ok = 0; break; }
        }
        unsigned char tmp[16];
        if (inet_pton(AF_INET, tok, tmp) == 1) {
            if (bits > 32) ok = 0;
        } else if (inet_pton(AF_INET6, tok, tmp) == 1) {
            if (bits > 128) ok = 0;
        } else {
            ok = 0;
        }
        if (!ok || (slash && bits < 0)) { ok = 0; break; }
    }
    free(copy);
    return ok;
}

static void range_text(const setting *s, char *out, size_t n)
{
    char a[32], b[32];
    switch (s->k) {
    case K_INT: case K_SIZE:
        snprintf(out, n, "%lld..%lld", (long long)s->min, (long long)s->max); break;
    case K_DURATION: case K_SCHEDULE:
        fmt_duration(s->min, a, sizeof a);
        fmt_duration(s->max, b, sizeof b);
        snprintf(out, n, "%s..%s%s", a, b, s->k == K_SCHEDULE ? " each" : ""); break;
    case K_BOOL: snprintf(out, n, "0|1"); break;
    case K_ENUM: case K_LOGLEVEL: snprintf(out, n, "%s", s->choices); break;
    case K_ADDR: snprintf(out, n, "host:port"); break;
    case K_CIDRS: snprintf(out, n, "CIDR list"); break;
    case K_SECRET: snprintf(out, n, "%lld..%lld characters", (long long)s->min, (long long)s->max); break;
    case K_STR: snprintf(out, n, "up to %lld characters", (long long)s->max); break;
    }
}

static int fail(const setting *s, const char *value, char *err, size_t errlen, const char *why)
{
    char range[96];
    range_text(s, range, sizeof range);
    int secretish = s->k == K_SECRET;
    snprintf(err, errlen, "%s: %s%s%s%s (allowed: %s)", s->name, why,
             value && !secretish ? " \"" : "", value && !secretish ? value : "",
             value && !secretish ? "\"" : "", range);
    return -1;
}

static int load_one(const setting *s, const char *v, char *err, size_t errlen)
{
    long long n;
    int64_t ms;
    switch (s->k) {
    case K_STR: case K_SECRET:
        if ((long long)strlen(v) > s->max || (long long)strlen(v) < s->min)
            return fail(s, v, err, errlen, "length out of range");
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20)
                return fail(s, NULL, err, errlen, "contains control characters");
        *(char **)field(s) = xstrdup(v);
        return 0;
    case K_INT: case K_SIZE:
        if (parse_int(v, &n) != 0 || n < s->min || n > s->max)
            return fail(s, v, err, errlen, "invalid value");
        if (s->k == K_INT) *(int *)field(s) = (int)n;
        else *(int64_t *)field(s) = n;
        return 0;
    case K_BOOL:
        if (strcmp(v, "0") && strcmp(v, "1") && strcmp(v, "true") && strcmp(v, "false"))
            return fail(s, v, err, errlen, "invalid value");
        *(int *)field(s) = (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
        return 0;
    case K_DURATION:
        if (config_parse_duration(v, &ms) != 0 || ms < s->min || ms > s->max)
            return fail(s, v, err, errlen, "invalid duration");
        *(int64_t *)field(s) = ms;
        return 0;
    case K_SCHEDULE: {
        char *copy = xstrdup(v), *save = NULL;
        int count = 0, bad = 0;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ') t++;
            if (count >= CONFIG_MAX_RETRIES || config_parse_duration(t, &ms) != 0 ||
                ms < s->min || ms > s->max) { bad = 1; break; }
            ((int64_t *)field(s))[count++] = ms;
        }
        free(copy);
        if (bad || count == 0)
            return fail(s, v, err, errlen, "invalid schedule (1 to 32 durations)");
        /* a schedule field is int64_t[CONFIG_MAX_RETRIES] followed by its int length */
        *(int *)((int64_t *)field(s) + CONFIG_MAX_RETRIES) = count;
        return 0;
    }
    case K_ENUM: case K_LOGLEVEL: {
        int idx = 0;
        const char *c = s->choices;
        size_t vl = strlen(v);
        while (*c) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && strncmp(c, v, vl) == 0) {
                *(int *)field(s) = idx;
                return 0;
            }
            idx++;
            c += cl + (bar ? 1 : 0);
        }
        return fail(s, v, err, errlen, "invalid value");
    }
    case K_ADDR:
        if (!valid_addr(v))
            return fail(s, v, err, errlen, "invalid address");
        *(char **)field(s) = xstrdup(v);
        return 0;
    case K_CIDRS:
        if (*v && !valid_cidrs(v))
            return fail(s, v, err, errlen, "invalid CIDR list");
        *(char **)field(s) = xstrdup(v);
        return 0;
    }
    return -1;
}

int config_load(int need_secret, char *err, size_t errlen)
{
    config_free();
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        const char *v = getenv(s->name);
        if (!v) {
            if (!s->def) {
                if (need_secret) {
                    snprintf(err, errlen, "%s is required and has no default: set it to a random "
                             "string of at least %lld characters", s->name, (long long)s->min);
                    return -1;
                }
                continue;   /* left NULL: this command handles no secrets */
            }
            v = s->def;
        }
        if (load_one(s, v, err, errlen) != 0)
            return -1;
    }
    if (cfg.delivery == DELIVERY_RELAY && !*cfg.relay_url) {
        snprintf(err, errlen, "POSTHORN_RELAY_URL: required when POSTHORN_DELIVERY=relay");
        return -1;
    }
    return 0;
}

void config_free(void)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        if (s->k == K_STR || s->k == K_SECRET || s->k == K_ADDR || s->k == K_CIDRS) {
            char **p = field(s);
            free(*p);
            *p = NULL;
        }
    }
}

void config_print(FILE *out, int markdown)
{
    if (markdown)
        fputs("| Variable | Default | Allowed | Description |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        char range[96];
        range_text(s, range, sizeof range);
        const char *def = s->def ? (*s->def ? s->def : "(empty)") : "(required)";
        if (markdown) {
            char esc[192];
            size_t o = 0;
            for (const char *p = range; *p && o + 2 < sizeof esc; p++) {
                if (*p == '|')
                    esc[o++] = '\\';
                esc[o++] = *p;
            }
            esc[o] = '\0';
            fprintf(out, "| `%s` | `%s` | %s | %s |\n", s->name, def, esc, s->desc);
        }
        else
            fprintf(out, "%s\n  default: %s\n  allowed: %s\n  %s\n", s->name, def, range, s->desc);
    }
}
