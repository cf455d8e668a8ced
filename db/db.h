/* db/db.h - PostgreSQL connections and the one table of prepared statements.
 * One connection per thread (db_thread()); statements are declared in db/stmts.c and
 * prepared lazily on each connection. Failures are classified so callers keep "retry later"
 * (DB_DOWN: server unreachable, restarting, timed out) apart from "give up" (DB_ERROR) and
 * constraint conflicts (DB_CONFLICT). */
#ifndef POSTHORN_DB_H
#define POSTHORN_DB_H
#include <libpq-fe.h>
#include <stdint.h>

typedef enum {
    ST_PING,
    ST_ACCOUNT_INSERT,
    ST_ACCOUNT_GET,
    ST_ACCOUNT_LIST,
    ST_KEY_INSERT,
    ST_KEY_LOOKUP,
    ST_KEY_LIST_ACCOUNT,
    ST_KEY_LIST_OPERATOR,
    ST_KEY_REVOKE,
    ST_SUPP_UPSERT,
    ST_SUPP_LIST,
    ST_SUPP_DELETE,
    ST_WORKER_HEARTBEAT,
    ST_WORKER_STOPPED,
    ST_WORKER_PEERS,
    ST_WORKER_RESCUE,
    ST_QUEUE_DEPTH,
    ST_QUEUE_DUE,
    /* send path: API group-commit writer and message reads */
    ST_W_IDEM_LOCK,
    ST_W_IDEM_GET,
    ST_W_MSG_INSERT,
    ST_W_ATT_INSERT,
    ST_W_DLV_INSERT,
    ST_W_IDEM_PUT,
    ST_MSG_GET,
    ST_MSG_RECIPIENTS,
    ST_MSG_EVENTS,
    ST_MSG_LIST,
    ST_MSG_CANCEL,
    ST_EVENTS_LIST,
    /* templates (api/templates.c) */
    ST_TPL_INSERT,
    ST_TPL_GET,
    ST_TPL_BY_NAME,
    ST_TPL_LIST,
    ST_TPL_NEW_VERSION,
    ST_TPL_DELETE,
    ST_TPL_RESOLVE,
    /* sending domains (api/domains.c) */
    ST_DOM_INSERT,
    ST_DOM_GET,
    ST_DOM_LIST,
    ST_DOM_DELETE,
    ST_DOM_VERIFIED,
    ST_DOM_FROM_VERIFIED,
    /* worker queue */
    ST_QUEUE_CLAIM,
    ST_QUEUE_NEXT_DUE,
    ST_QUEUE_MESSAGE,
    ST_QUEUE_ATTACHMENTS,
    ST_QUEUE_TEMPLATE,
    ST_QUEUE_DOMAIN,
    ST_QUEUE_RECORD,
    ST_QUEUE_RELEASE,
    ST_QUEUE_SWEEP,
    ST_QUEUE_EXPIRE,
    ST_IDEMPOTENCY_PURGE,
    /* delivery engine: attempts, destinations (db/queue.c, api/destinations.c) */
    ST_QUEUE_POSTPONE,
    ST_DEST_PUBLISH,
    ST_DEST_CONTROLS,
    ST_DEST_STATUS_PURGE,
    ST_TRANSCRIPT_PURGE,
    ST_DEST_LIST,
    ST_DEST_SET_PAUSED,
    ST_DEST_RETRY,
    ST_MSG_ATTEMPTS,
    ST_QUEUE_RENEW,
    ST_WEBHOOK_LOG_PURGE,
    ST_WH_INSERT,
    ST_WH_GET,
    ST_WH_LIST,
    ST_WH_UPDATE,
    ST_WH_DELETE,
    ST_WH_SECRET,
    ST_WH_EVENT_EXISTS,
    ST_WH_REPLAY,
    ST_WH_ATTEMPTS_LIST,
    ST_WH_ATTEMPT_INSERT,
    ST_WH_CLAIM,
    ST_WH_RENEW,
    ST_WH_RELEASE,
    ST_WH_LOAD,
    ST_WH_EVENTS,
    ST_WH_BATCH_INSERT,
    ST_WH_BATCH_TRY,
    ST_WH_BATCH_DONE,
    ST_WH_FAILED,
    ST_WH_DISABLE,
    ST_WH_SKIP,
    ST_TRACK_LINKS_PUT,
    ST_TRACK_OPEN,
    ST_TRACK_CLICK,
    ST_UNSUB_INFO,
    ST_UNSUB_RECORD,
    ST_TRACK_LINK_GET,
    ST_STATS_QUERY,
    ST_STATS_ROLLUP,
    ST_SUPP_IMPORT,
    ST_SUPP_EXPORT,
    ST_RETENTION_MESSAGES,
    ST_RETENTION_DLV_DATA,
    ST_EVENTS_MAINTAIN,
    ST_STATS_TRIM,
    ST_LIST_INSERT,
    ST_LIST_GET,
    ST_LIST_LIST,
    ST_LIST_DELETE,
    ST_CONTACTS_UPSERT,
    ST_CONTACTS_LIST,
    ST_CONTACT_GET,
    ST_CONTACT_DELETE,
    ST_CAMP_INSERT,
    ST_CAMP_GET,
    ST_CAMP_LIST,
    ST_CAMP_SEND,
    ST_CAMP_PAUSE,
    ST_CAMP_PARK,
    ST_CAMP_RESUME,
    ST_CAMP_CANCEL,
    ST_CAMP_CANCEL_DLV,
    ST_CAMP_EXPAND,
    ST_CAMP_PROMOTE,
    ST_CAMP_FINISH,
    ST_CAMP_DLV_DATA,
    ST_DLV_RELTUPLES,
    ST_COUNT
} db_stmt;

typedef struct {
    const char *sql;
    int         nparams;
    int         retry_safe;   /* may be re-run once on a fresh connection after a broken one */
} db_stmt_def;

extern const db_stmt_def db_stmts[ST_COUNT];

typedef enum { DB_OK, DB_DOWN, DB_ERROR, DB_CONFLICT } db_status;

typedef struct db_conn db_conn;

/* A connection handle for url; connects lazily. app names the program in pg_stat_activity. */
db_conn *db_open(const char *url, const char *app);
/* Statement and lock timeout of c's sessions (default cfg.db_timeout_ms); call before use. */
void     db_set_timeout(db_conn *c, int64_t ms);
/* How long a failed connect is not retried (default 1 s; 0: every use tries again). */
void     db_set_reconnect_throttle(db_conn *c, int64_t ms);
void     db_close(db_conn *c);
/* This thread's connection to cfg.database_url (made on first use, closed at thread exit). */
db_conn *db_thread(void);
/* Connects if needed. A failed attempt is not repeated for a second, so a dead server is
 * answered fast. */
db_status db_connect(db_conn *c);
/* Runs a prepared statement with text params (NULL = SQL NULL). On DB_OK *res holds a
 * result the caller PQclear()s (may be NULL when res is NULL). */
db_status db_exec(db_conn *c, db_stmt st, const char *const *params, PGresult **res);
/* Runs a plain SQL script (migrations); DB_OK or an error with the message logged. */
db_status db_script(db_conn *c, const char *sql, PGresult **res);
PGconn  *db_pg(db_conn *c);
/* The last error text (for logs and CLI messages). */
const char *db_last_error(db_conn *c);
#endif
