#include "db/db.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECONNECT_THROTTLE_MS 1000

struct db_conn {
    char    *url;
    char    *app;
    PGconn  *pg;
    unsigned char prepared[ST_COUNT];
    int64_t  last_fail_ms;       /* monotonic time of the last failed connect, 0 = none */
    int64_t  timeout_ms;
    int64_t  throttle_ms;
    char     err[512];
};

db_conn *db_open(const char *url, const char *app)
{
    db_conn *c = xcalloc(1, sizeof *c);
    c->url = xstrdup(url);
    c->app = xstrdup(app);
    c->timeout_ms = cfg.db_timeout_ms;
    c->throttle_ms = RECONNECT_THROTTLE_MS;
    return c;
}

void db_set_timeout(db_conn *c, int64_t ms) { c->timeout_ms = ms; }
void db_set_reconnect_throttle(db_conn *c, int64_t ms) { c->throttle_ms = ms; }

void db_close(db_conn *c)
{
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    free(c->url);
    free(c->app);
    free(c);
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_conn_free(void *p) { db_close(p); }
static void thread_key_make(void) { pthread_key_create(&thread_key, thread_conn_free); }

db_conn *db_thread(void)
{
    pthread_once(&thread_once, thread_key_make);
    db_conn *c = pthread_getspecific(thread_key);
    if (!c) {
        c = db_open(cfg.database_url, "posthorn");
        pthread_setspecific(thread_key, c);
    }
    return c;
}

PGconn *db_pg(db_conn *c) { return c->pg; }
const char *db_last_error(db_conn *c) { return c->err; }

static void set_err(db_conn *c, const char *msg)
{
    snprintf(c->err, sizeof c->err, "%s", msg ? msg : "unknown error");
    size_t n = strlen(c->err);
    while (n && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
        c->err[--n] = '\0';
}

static void drop(db_conn *c)
{
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    memset(c->prepared, 0, sizeof c->prepared);
}

static void notice(void *arg, const char *msg)
{
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        n--;
    log_debug("postgres: %.*s", (int)n, msg);
}

db_status db_connect(db_conn *c)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return DB_OK;
    drop(c);
    int64_t now = time_mono_ms();
    if (c->last_fail_ms && now - c->last_fail_ms < c->throttle_ms)
        return DB_DOWN;

    long tmo_s = (long)((cfg.db_timeout_ms + 999) / 1000);
    if (tmo_s < 2)
        tmo_s = 2;   /* libpq treats 1 as 2 anyway */
    char tmo[32], opts[96];
    snprintf(tmo, sizeof tmo, "%ld", tmo_s);
    snprintf(opts, sizeof opts, "-c statement_timeout=%lld -c lock_timeout=%lld",
             (long long)c->timeout_ms, (long long)c->timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "options", "application_name", NULL};
    const char *vals[] = {c->url, tmo, opts, c->app, NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg)
        die("out of memory connecting to PostgreSQL");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        set_err(c, PQerrorMessage(c->pg));
        drop(c);
        c->last_fail_ms = now ? now : 1;
        return DB_DOWN;
    }
    PQsetNoticeProcessor(c->pg, notice, NULL);
    c->last_fail_ms = 0;
    return DB_OK;
}

static db_status classify(db_conn *c, PGresult *r)
{
    set_err(c, r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
    if (PQstatus(c->pg) != CONNECTION_OK)
        return DB_DOWN;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return DB_DOWN;
    if (strcmp(state, "23505") == 0)
        return DB_CONFLICT;
    /* connection exceptions, shutdown in progress, cannot connect now, statement timeout,
     * lock timeout, serialization/deadlock: all worth retrying later */
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
        strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
        strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strcmp(state, "53300") == 0)
        return DB_DOWN;
    return DB_ERROR;
}

static db_status exec_once(db_conn *c, db_stmt st, const char *const *params, PGresult **res)
{
    db_status s = db_connect(c);
    if (s != DB_OK)
        return s;
    char name[16];
    snprintf(name, sizeof name, "s%d", (int)st);
    if (!c->prepared[st]) {
        PGresult *p = PQprepare(c->pg, name, db_stmts[st].sql, db_stmts[st].nparams, NULL);
        ExecStatusType ps = p ? PQresultStatus(p) : PGRES_FATAL_ERROR;
        if (ps != PGRES_COMMAND_OK) {
            s = classify(c, p);
            PQclear(p);
            if (s == DB_DOWN)
                drop(c);
            return s;
        }
        PQclear(p);
        c->prepared[st] = 1;
    }
    PGresult *r = PQexecPrepared(c->pg, name, db_stmts[st].nparams, params, NULL, NULL, 0);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return DB_OK;
    }
    s = classify(c, r);
    PQclear(r);
    if (s == DB_DOWN && PQstatus(c->pg) != CONNECTION_OK)
        drop(c);
    return s;
}

db_status db_exec(db_conn *c, db_stmt st, const char *const *params, PGresult **res)
{
    if (res)
        *res = NULL;
    int had_conn = c->pg != NULL;
    db_status s = exec_once(c, st, params, res);
    /* A connection that broke while idle (server restarted) fails its first statement:
     * statements that are safe to repeat get one more try on a new connection. */
    if (s == DB_DOWN && had_conn && c->pg == NULL && db_stmts[st].retry_safe) {
        c->last_fail_ms = 0;
        s = exec_once(c, st, params, res);
    }
    if (s != DB_OK && s != DB_CONFLICT)
        log_fields(LOG_WARN, json_pack("{s:i}", "statement", (int)st), "database: %s", c->err);
    return s;
}

db_status db_script(db_conn *c, const char *sql, PGresult **res)
{
    if (res)
        *res = NULL;
    db_status s = db_connect(c);
    if (s != DB_OK)
        return s;
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return DB_OK;
    }
    s = classify(c, r);
    PQclear(r);
    if (s == DB_DOWN && PQstatus(c->pg) != CONNECTION_OK)
        drop(c);
    return s;
}
