/* lib/config.h - the one table of settings. Every setting is an environment variable with a
 * default (except POSTHORN_SECRET), bounds and a description. config_load() reads them all
 * once at start; afterwards `cfg` is read-only. A bad value stops start-up with a message
 * naming the variable and the allowed range. `posthorn settings` prints the table. */
#ifndef POSTHORN_CONFIG_H
#define POSTHORN_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_RETRIES 32

typedef enum { DELIVERY_MX, DELIVERY_RELAY, DELIVERY_FILE } delivery_mode;

typedef struct {
    char *secret;
    char *secret_previous;
    char *database_url;
    char *redis_url;
    char *http_addr;
    char *metrics_addr;
    char *public_url;
    int   delivery;                 /* delivery_mode */
    char *relay_url;
    char *mail_dir;
    char *dns_server;
    int   smtp_port;
    char *smtp_allow_cidrs;
    char *webhook_allow_cidrs;
    int   allow_unverified;
    char *helo_name;
    char *destination_policy;
    char *bounce_rules;
    int   smtp_max_sessions;
    int64_t smtp_connect_timeout_ms;
    int64_t smtp_greeting_timeout_ms;
    int64_t smtp_command_timeout_ms;
    int64_t smtp_data_init_timeout_ms;
    int64_t smtp_data_block_timeout_ms;
    int64_t smtp_data_done_timeout_ms;
    int64_t max_queue_lifetime_ms;
    int64_t retry_schedule_ms[CONFIG_MAX_RETRIES];   /* schedules: the array, then its length */
    int     retry_schedule_len;
    int64_t lease_ms;
    int64_t poll_interval_ms;
    int64_t retention_ms;
    int64_t event_retention_ms;
    int64_t stats_retention_ms;
    int64_t webhook_retry_ms[CONFIG_MAX_RETRIES];
    int     webhook_retry_len;
    int64_t webhook_disable_after_ms;
    int64_t webhook_timeout_ms;
    int64_t csv_max;
    int     campaign_chunk;
    int   log_level;                /* log_level */
    int   http_threads;
    int   http_max_connections;
    int64_t http_timeout_ms;
    int64_t shutdown_grace_ms;
    int64_t db_timeout_ms;
    int64_t write_timeout_ms;
    int   db_writers;
    int   queue_limit;
    int   queue_limit_broadcast;
    int64_t redis_timeout_ms;
    int64_t auth_cache_ttl_ms;
    int   default_key_rate;
    int64_t body_max;
} config;

extern config cfg;

/* Loads every setting from the environment. need_secret=0 only for commands that touch no
 * data (e.g. `posthorn settings`). Returns 0, or -1 with a message in err. */
int config_load(int need_secret, char *err, size_t errlen);
/* Prints the settings table: plain text, or a Markdown table when markdown is set. */
void config_print(FILE *out, int markdown);
/* Parses "250ms", "30s", "5m", "72h", "3d" or bare seconds into ms; -1 on error. */
int config_parse_duration(const char *s, int64_t *ms);
/* Frees what config_load allocated (for leak checkers). */
void config_free(void);
#endif
