/* Unit tests of lib/config.c: durations, loading settings from the environment, and the
 * settings table printed by `posthorn settings --markdown`. */
#include "tests/unit/unit.h"

#include "lib/config.h"
#include "lib/log.h"

extern char **environ;

#define SECRET32 "0123456789abcdef0123456789abcdef"

/* ---- config_parse_duration ----------------------------------------------------------- */

static void test_duration_good(void **state)
{
    static const struct { const char *in; int64_t ms; } cases[] = {
        {"250ms", 250},
        {"0ms", 0},
        {"30s", 30000},
        {"5m", 300000},
        {"72h", 259200000},
        {"3d", 259200000},
        {"7", 7000},                      /* bare seconds */
        {"0", 0},
        {"1d", 86400000},
        {"106751991167d", 9223372036828800000LL},         /* largest day count that fits */
        {"9223372036854775ms", 9223372036854775LL},
        {"9223372036854775807ms", 9223372036854775807LL},   /* LLONG_MAX, mul 1 */
        {"9223372036854775s", 9223372036854775000LL},      /* largest v * 1000 that fits */
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        int64_t ms = -12345;
        if (config_parse_duration(cases[i].in, &ms) != 0)
            fail_msg("\"%s\" refused", cases[i].in);
        if (ms != cases[i].ms)
            fail_msg("\"%s\" -> %lld, want %lld", cases[i].in, (long long)ms,
                     (long long)cases[i].ms);
    }
}

static void test_duration_bad(void **state)
{
    static const char *const cases[] = {
        "", "-1", "-1s", "5x", "1.5s", "s", "ms", "5 s", "5S", "5sec", "5ms5", "1e3",
        "5 ", "0x10", "five",
        "9223372036854775808ms",          /* LLONG_MAX + 1: strtoll overflow */
        "99999999999999999999",           /* ERANGE */
        "9223372036854776s",              /* fits in long long, * 1000 does not */
        "106751991168d",                  /* * 86400000 overflows */
        "2562047788016h",                 /* * 3600000 overflows */
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        int64_t ms = -12345;
        if (config_parse_duration(cases[i], &ms) != -1)
            fail_msg("\"%s\" accepted as %lld ms", cases[i], (long long)ms);
        if (ms != -12345)
            fail_msg("\"%s\" wrote the output on failure", cases[i]);
    }
    int64_t ms = 1;
    assert_int_equal(config_parse_duration(NULL, &ms), -1);
    assert_int_equal(ms, 1);
}

/* ---- config_load ----------------------------------------------------------------------- */

/* Every test starts from an environment without POSTHORN_* variables. */
static void clear_env(void)
{
    char *names[256];
    size_t n = 0;
    for (char **e = environ; *e && n < N_ELEMS(names); e++)
        if (strncmp(*e, "POSTHORN_", 9) == 0) {
            const char *eq = strchr(*e, '=');
            size_t l = eq ? (size_t)(eq - *e) : strlen(*e);
            names[n] = malloc(l + 1);
            assert_non_null(names[n]);
            memcpy(names[n], *e, l);
            names[n][l] = '\0';
            n++;
        }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
}

static int setup_env(void **state)
{
    clear_env();
    setenv("POSTHORN_SECRET", SECRET32, 1);
    return 0;
}

static int teardown_env(void **state)
{
    config_free();
    clear_env();
    return 0;
}

static void test_load_defaults(void **state)
{
    char err[512] = "";
    assert_int_equal(config_load(1, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.secret, SECRET32);
    assert_string_equal(cfg.secret_previous, "");
    assert_string_equal(cfg.database_url, "postgresql://posthorn@127.0.0.1:5432/posthorn");
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg.http_addr, "127.0.0.1:8080");
    assert_string_equal(cfg.metrics_addr, "127.0.0.1:9090");
    assert_string_equal(cfg.public_url, "http://127.0.0.1:8080");
    assert_int_equal(cfg.delivery, DELIVERY_MX);
    assert_string_equal(cfg.relay_url, "");
    assert_string_equal(cfg.mail_dir, "var/mail");
    assert_string_equal(cfg.dns_server, "");
    assert_int_equal(cfg.smtp_port, 25);
    assert_string_equal(cfg.smtp_allow_cidrs, "");
    assert_string_equal(cfg.webhook_allow_cidrs, "");
    assert_int_equal(cfg.allow_unverified, 0);
    assert_string_equal(cfg.helo_name, "");
    assert_string_equal(cfg.destination_policy, "");
    assert_int_equal(cfg.max_queue_lifetime_ms, 72LL * 3600 * 1000);
    static const int64_t sched[] = {60000, 300000, 900000, 1800000, 3600000, 7200000, 14400000};
    assert_int_equal(cfg.retry_schedule_len, N_ELEMS(sched));
    assert_memory_equal(cfg.retry_schedule_ms, sched, sizeof sched);
    assert_int_equal(cfg.lease_ms, 300000);
    assert_int_equal(cfg.poll_interval_ms, 5000);
    assert_int_equal(cfg.retention_ms, 30LL * 86400 * 1000);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.http_threads, 4);
    assert_int_equal(cfg.http_max_connections, 4096);
    assert_int_equal(cfg.http_timeout_ms, 60000);
    assert_int_equal(cfg.shutdown_grace_ms, 30000);
    assert_int_equal(cfg.db_timeout_ms, 5000);
    assert_int_equal(cfg.redis_timeout_ms, 250);
    assert_int_equal(cfg.default_key_rate, 100);
    assert_int_equal(cfg.body_max, 1048576);
}

static void test_load_missing_secret(void **state)
{
    unsetenv("POSTHORN_SECRET");
    char err[512] = "";
    assert_int_equal(config_load(1, err, sizeof err), -1);
    assert_string_equal(err, "POSTHORN_SECRET is required and has no default: set it to a "
                             "random string of at least 32 characters");
    /* Commands that handle no data load without it. */
    err[0] = '\0';
    assert_int_equal(config_load(0, err, sizeof err), 0);
    assert_null(cfg.secret);
    assert_int_equal(cfg.http_threads, 4);
}

static void test_load_secret_bounds(void **state)
{
    char err[512] = "";
    const char *short_secret = "0123456789abcdef0123456789abcde";   /* 31 */
    setenv("POSTHORN_SECRET", short_secret, 1);
    assert_int_equal(config_load(1, err, sizeof err), -1);
    assert_string_equal(err, "POSTHORN_SECRET: length out of range (allowed: 32..4096 characters)");
    assert_null(strstr(err, short_secret));   /* the secret is never echoed */

    setenv("POSTHORN_SECRET", SECRET32 "\n", 1);
    assert_int_equal(config_load(1, err, sizeof err), -1);
    assert_string_equal(err, "POSTHORN_SECRET: contains control characters (allowed: 32..4096 characters)");

    char big[4098];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';                /* 4097 characters */
    setenv("POSTHORN_SECRET", big, 1);
    assert_int_equal(config_load(1, err, sizeof err), -1);
    assert_null(strstr(err, "xxxx"));
    big[4096] = '\0';                          /* 4096: the maximum */
    setenv("POSTHORN_SECRET", big, 1);
    assert_int_equal(config_load(1, err, sizeof err), 0);
    assert_int_equal(strlen(cfg.secret), 4096);

    setenv("POSTHORN_SECRET", SECRET32, 1);
    setenv("POSTHORN_SECRET_PREVIOUS", "short-is-fine", 1);
    assert_int_equal(config_load(1, err, sizeof err), 0);
    assert_string_equal(cfg.secret_previous, "short-is-fine");
}

/* One variable set to one value on top of the defaults: accepted, or refused with exactly
 * this message. */
typedef struct {
    const char *name, *value;
    const char *err;       /* NULL: must load */
} env_case;

static void run_env_cases(const env_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        setup_env(NULL);
        setenv(cases[i].name, cases[i].value, 1);
        char err[512] = "";
        int rc = config_load(1, err, sizeof err);
        if (!cases[i].err && rc != 0)
            fail_msg("%s=\"%s\" refused: %s", cases[i].name, cases[i].value, err);
        if (cases[i].err && rc != -1)
            fail_msg("%s=\"%s\" accepted, want: %s", cases[i].name, cases[i].value, cases[i].err);
        if (cases[i].err && strcmp(err, cases[i].err) != 0)
            fail_msg("%s=\"%s\"\n got: %s\nwant: %s", cases[i].name, cases[i].value, err,
                     cases[i].err);
    }
}

static void test_load_values(void **state)
{
    static const env_case cases[] = {
        {"POSTHORN_HTTP_THREADS", "0", "POSTHORN_HTTP_THREADS: invalid value \"0\" (allowed: 1..256)"},
        {"POSTHORN_HTTP_THREADS", "257", "POSTHORN_HTTP_THREADS: invalid value \"257\" (allowed: 1..256)"},
        {"POSTHORN_HTTP_THREADS", "4x", "POSTHORN_HTTP_THREADS: invalid value \"4x\" (allowed: 1..256)"},
        {"POSTHORN_HTTP_THREADS", "", "POSTHORN_HTTP_THREADS: invalid value \"\" (allowed: 1..256)"},
        {"POSTHORN_HTTP_THREADS", "99999999999999999999", "POSTHORN_HTTP_THREADS: invalid value \"99999999999999999999\" (allowed: 1..256)"},
        {"POSTHORN_HTTP_THREADS", "1", NULL},
        {"POSTHORN_HTTP_THREADS", "256", NULL},
        {"POSTHORN_LEASE", "abc", "POSTHORN_LEASE: invalid duration \"abc\" (allowed: 1s..1d)"},
        {"POSTHORN_LEASE", "999ms", "POSTHORN_LEASE: invalid duration \"999ms\" (allowed: 1s..1d)"},
        {"POSTHORN_LEASE", "25h", "POSTHORN_LEASE: invalid duration \"25h\" (allowed: 1s..1d)"},
        {"POSTHORN_LEASE", "1s", NULL},
        {"POSTHORN_LEASE", "1d", NULL},
        {"POSTHORN_REDIS_TIMEOUT", "9ms", "POSTHORN_REDIS_TIMEOUT: invalid duration \"9ms\" (allowed: 10ms..1m)"},
        {"POSTHORN_SHUTDOWN_GRACE", "0", NULL},
        {"POSTHORN_BODY_MAX", "1023", "POSTHORN_BODY_MAX: invalid value \"1023\" (allowed: 1024..1073741824)"},
        {"POSTHORN_BODY_MAX", "1073741824", NULL},
        {"POSTHORN_SMTP_PORT", "65536", "POSTHORN_SMTP_PORT: invalid value \"65536\" (allowed: 1..65535)"},
        {"POSTHORN_ALLOW_UNVERIFIED", "yes", "POSTHORN_ALLOW_UNVERIFIED: invalid value \"yes\" (allowed: 0|1)"},
        {"POSTHORN_DELIVERY", "smtp", "POSTHORN_DELIVERY: invalid value \"smtp\" (allowed: mx|relay|file)"},
        {"POSTHORN_DELIVERY", "relay", "POSTHORN_RELAY_URL: required when POSTHORN_DELIVERY=relay"},
        {"POSTHORN_DELIVERY", "MX", "POSTHORN_DELIVERY: invalid value \"MX\" (allowed: mx|relay|file)"},
        {"POSTHORN_LOG_LEVEL", "verbose", "POSTHORN_LOG_LEVEL: invalid value \"verbose\" (allowed: debug|info|warn|error)"},
        {"POSTHORN_HTTP_ADDR", "8080", "POSTHORN_HTTP_ADDR: invalid address \"8080\" (allowed: host:port)"},
        {"POSTHORN_HTTP_ADDR", ":8080", "POSTHORN_HTTP_ADDR: invalid address \":8080\" (allowed: host:port)"},
        {"POSTHORN_HTTP_ADDR", "127.0.0.1:65536", "POSTHORN_HTTP_ADDR: invalid address \"127.0.0.1:65536\" (allowed: host:port)"},
        {"POSTHORN_HTTP_ADDR", "example.com:80", "POSTHORN_HTTP_ADDR: invalid address \"example.com:80\" (allowed: host:port)"},
        {"POSTHORN_HTTP_ADDR", "::1:80", "POSTHORN_HTTP_ADDR: invalid address \"::1:80\" (allowed: host:port)"},
        {"POSTHORN_HTTP_ADDR", "[::1]:8080", NULL},
        {"POSTHORN_HTTP_ADDR", "localhost:0", NULL},
        {"POSTHORN_DATABASE_URL", "", "POSTHORN_DATABASE_URL: length out of range \"\" (allowed: up to 4096 characters)"},
        {"POSTHORN_HELO_NAME", "mx\r\n.example", "POSTHORN_HELO_NAME: contains control characters (allowed: up to 255 characters)"},
    };
    run_env_cases(cases, N_ELEMS(cases));
}

static void test_load_parsed_values(void **state)
{
    char err[512];
    setenv("POSTHORN_DELIVERY", "relay", 1);
    setenv("POSTHORN_RELAY_URL", "smtp://u:p@relay.example:587", 1);
    setenv("POSTHORN_LOG_LEVEL", "debug", 1);
    setenv("POSTHORN_ALLOW_UNVERIFIED", "true", 1);
    setenv("POSTHORN_LEASE", "90s", 1);
    setenv("POSTHORN_HTTP_ADDR", "[::1]:18080", 1);
    assert_int_equal(config_load(1, err, sizeof err), 0);
    assert_int_equal(cfg.delivery, DELIVERY_RELAY);
    assert_string_equal(cfg.relay_url, "smtp://u:p@relay.example:587");
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.allow_unverified, 1);
    assert_int_equal(cfg.lease_ms, 90000);
    assert_string_equal(cfg.http_addr, "[::1]:18080");

    setenv("POSTHORN_DELIVERY", "file", 1);
    setenv("POSTHORN_ALLOW_UNVERIFIED", "false", 1);
    setenv("POSTHORN_LOG_LEVEL", "error", 1);
    assert_int_equal(config_load(1, err, sizeof err), 0);
    assert_int_equal(cfg.delivery, DELIVERY_FILE);
    assert_int_equal(cfg.allow_unverified, 0);
    assert_int_equal(cfg.log_level, LOG_ERROR);
}

static void test_load_retry_schedule(void **state)
{
    static const struct {
        const char *in;
        int len;                   /* -1: refused */
        int64_t ms[4];
    } cases[] = {
        {"30s", 1, {30000}},
        {"1m,5m", 2, {60000, 300000}},
        {"1s, 2m, 3h", 3, {1000, 120000, 10800000}},
        {"7d", 1, {604800000}},
        {"10", 1, {10000}},
        {"", -1, {0}},
        {",", -1, {0}},
        {"999ms", -1, {0}},
        {"8d", -1, {0}},
        {"1m,abc", -1, {0}},
        {"1m,-5m", -1, {0}},
        {"1m, ", -1, {0}},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        setup_env(NULL);
        setenv("POSTHORN_RETRY_SCHEDULE", cases[i].in, 1);
        char err[512] = "";
        int rc = config_load(1, err, sizeof err);
        if (cases[i].len < 0) {
            if (rc != -1)
                fail_msg("schedule \"%s\" accepted", cases[i].in);
            char want[256];
            snprintf(want, sizeof want, "POSTHORN_RETRY_SCHEDULE: invalid schedule (1 to 32 "
                     "durations) \"%s\" (allowed: 1s..7d each)", cases[i].in);
            assert_string_equal(err, want);
            continue;
        }
        if (rc != 0)
            fail_msg("schedule \"%s\" refused: %s", cases[i].in, err);
        assert_int_equal(cfg.retry_schedule_len, cases[i].len);
        for (int k = 0; k < cases[i].len; k++)
            if (cfg.retry_schedule_ms[k] != cases[i].ms[k])
                fail_msg("schedule \"%s\"[%d] = %lld, want %lld", cases[i].in, k,
                         (long long)cfg.retry_schedule_ms[k], (long long)cases[i].ms[k]);
    }
}

static void test_load_retry_schedule_count(void **state)
{
    char list[33 * 3 + 1], err[512];
    size_t o = 0;
    for (int i = 0; i < 32; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s", i ? ",2s" : "1s");
    setenv("POSTHORN_RETRY_SCHEDULE", list, 1);
    assert_int_equal(config_load(1, err, sizeof err), 0);
    assert_int_equal(cfg.retry_schedule_len, CONFIG_MAX_RETRIES);
    assert_int_equal(cfg.retry_schedule_ms[0], 1000);
    assert_int_equal(cfg.retry_schedule_ms[31], 2000);

    snprintf(list + o, sizeof list - o, ",2s");   /* 33 */
    setenv("POSTHORN_RETRY_SCHEDULE", list, 1);
    assert_int_equal(config_load(1, err, sizeof err), -1);
    assert_non_null(strstr(err, "POSTHORN_RETRY_SCHEDULE: invalid schedule (1 to 32 durations)"));
}

static void test_load_cidrs(void **state)
{
    static const struct { const char *in; int ok; } cases[] = {
        {"", 1},
        {"127.0.0.0/8", 1},
        {"127.0.0.1", 1},
        {"0.0.0.0/0", 1},
        {"127.0.0.1/32,::1/128", 1},
        {"10.0.0.0/8, 192.168.0.0/16, fd00::/8", 1},
        {"127.0.0.0/33", 0},
        {"::1/129", 0},
        {"127.0.0.0/", 0},
        {"127.0.0.0/-1", 0},
        {"127.0.0.0/8x", 0},
        {"300.0.0.0/8", 0},
        {"localhost/8", 0},
        {"127.0.0.0/8,garbage", 0},
        {"127.0.0.0/8,/8", 0},
        {" ", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        for (int which = 0; which < 2; which++) {
            const char *name = which ? "POSTHORN_WEBHOOK_ALLOW_CIDRS" : "POSTHORN_SMTP_ALLOW_CIDRS";
            setup_env(NULL);
            setenv(name, cases[i].in, 1);
            char err[512] = "";
            int rc = config_load(1, err, sizeof err);
            if (cases[i].ok) {
                if (rc != 0)
                    fail_msg("%s=\"%s\" refused: %s", name, cases[i].in, err);
                assert_string_equal(which ? cfg.webhook_allow_cidrs : cfg.smtp_allow_cidrs,
                                    cases[i].in);
            } else {
                if (rc != -1)
                    fail_msg("%s=\"%s\" accepted", name, cases[i].in);
                char want[256];
                snprintf(want, sizeof want, "%s: invalid CIDR list \"%s\" (allowed: CIDR list)",
                         name, cases[i].in);
                assert_string_equal(err, want);
            }
        }
    }
}

/* ---- config_print ------------------------------------------------------------------------ */

/* The settings config_load() reads are recorded by this getenv(), which replaces the C
 * library's in this test binary, so the printed table can be checked against what is really
 * read without a second list of settings to keep up to date. */
#define MAX_SEEN 256
static int  recording;
static char seen[MAX_SEEN][64];
static size_t nseen;

char *getenv(const char *name)
{
    size_t l = strlen(name);
    if (recording && nseen < MAX_SEEN)
        snprintf(seen[nseen++], sizeof seen[0], "%s", name);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, l) == 0 && (*e)[l] == '=')
            return *e + l + 1;
    return NULL;
}

static void record_settings(void)
{
    char err[512];
    nseen = 0;
    recording = 1;
    int rc = config_load(1, err, sizeof err);
    recording = 0;
    if (rc != 0)
        fail_msg("defaults do not load: %s", err);
    assert_true(nseen > 30 && nseen < MAX_SEEN);
}

static char *print_settings(int markdown)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print(f, markdown);
    assert_int_equal(fclose(f), 0);
    return text;
}

static size_t count_occurrences(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_print_markdown(void **state)
{
    record_settings();
    char *md = print_settings(1);
    const char *header = "| Variable | Default | Allowed | Description |\n|---|---|---|---|\n";
    assert_memory_equal(md, header, strlen(header));

    /* Every line is a table row with exactly four cells (unescaped '|' are separators). */
    size_t rows = 0;
    for (char *line = md + strlen(header); *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '|' && nl[-1] == '|');
        int bars = 0;
        for (char *p = line; p < nl; p++)
            if (*p == '|' && (p == line || p[-1] != '\\'))
                bars++;
        if (bars != 5)
            fail_msg("row with %d separators: %.*s", bars, (int)(nl - line), line);
        rows++;
        line = nl + 1;
    }
    /* One row per setting read, each setting read once and listed once. */
    assert_int_equal(rows, nseen);
    for (size_t i = 0; i < nseen; i++) {
        assert_memory_equal(seen[i], "POSTHORN_", 9);
        for (size_t k = 0; k < i; k++)
            if (strcmp(seen[k], seen[i]) == 0)
                fail_msg("%s read twice", seen[i]);
        char cell[80];
        snprintf(cell, sizeof cell, "| `%s` |", seen[i]);
        if (count_occurrences(md, cell) != 1)
            fail_msg("%s listed %zu times", seen[i], count_occurrences(md, cell));
    }
    assert_non_null(strstr(md, "| `POSTHORN_SECRET` | `(required)` | 32..4096 characters |"));
    assert_non_null(strstr(md, "| `POSTHORN_DELIVERY` | `mx` | mx\\|relay\\|file |"));
    assert_non_null(strstr(md, "| `POSTHORN_LEASE` | `5m` | 1s..1d |"));
    assert_non_null(strstr(md, "| `POSTHORN_RETRY_SCHEDULE` | `1m,5m,15m,30m,1h,2h,4h` | 1s..7d each |"));
    assert_non_null(strstr(md, "| `POSTHORN_HTTP_THREADS` | `4` | 1..256 |"));
    assert_non_null(strstr(md, "| `POSTHORN_DNS_SERVER` | `(empty)` |"));
    free(md);

    char *txt = print_settings(0);
    for (size_t i = 0; i < nseen; i++) {
        char line[80];
        snprintf(line, sizeof line, "\n%s\n", seen[i]);
        size_t n = count_occurrences(txt, line) + (strncmp(txt, line + 1, strlen(line) - 1) == 0);
        if (n != 1)
            fail_msg("%s listed %zu times in the plain table", seen[i], n);
    }
    assert_non_null(strstr(txt, "POSTHORN_HTTP_THREADS\n  default: 4\n  allowed: 1..256\n"));
    free(txt);
}

/* Every setting in the table refuses a control character with a message naming it. */
static void test_every_setting_names_itself(void **state)
{
    record_settings();
    size_t n = nseen;
    char names[MAX_SEEN][64];
    memcpy(names, seen, sizeof names);
    for (size_t i = 0; i < n; i++) {
        setup_env(NULL);
        setenv(names[i], "\x01", 1);
        char err[512] = "";
        if (config_load(1, err, sizeof err) != -1)
            fail_msg("%s accepted a control character", names[i]);
        size_t l = strlen(names[i]);
        if (strncmp(err, names[i], l) != 0 || err[l] != ':')
            fail_msg("%s refused with: %s", names[i], err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_good),
        cmocka_unit_test(test_duration_bad),
        cmocka_unit_test_setup_teardown(test_load_defaults, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_missing_secret, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_secret_bounds, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_values, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_parsed_values, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_retry_schedule, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_retry_schedule_count, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_load_cidrs, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_print_markdown, setup_env, teardown_env),
        cmocka_unit_test_setup_teardown(test_every_setting_names_itself, setup_env, teardown_env),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
