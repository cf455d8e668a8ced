/* db/stmts.c - every SQL statement Posthorn runs, in one place (see db/db.h). */
#include "db/db.h"

/* Times leave the database as RFC 3339 UTC strings with milliseconds. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* Full precision (UTC, no zone suffix) for keyset cursors. */
#define TS_US(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"

const db_stmt_def db_stmts[ST_COUNT] = {
    [ST_PING] = {"SELECT 1", 0, 1},
    [ST_ACCOUNT_INSERT] = {
        "INSERT INTO accounts (id, name) VALUES ($1, $2)", 2, 0},
    [ST_ACCOUNT_GET] = {
        "SELECT id, name, " TS("created_at") " FROM accounts WHERE id = $1", 1, 1},
    [ST_ACCOUNT_LIST] = {
        /* Newest first; the cursor is the (created_at, id) of the last row shown. */
        "SELECT id, name, " TS("created_at") ", " TS_US("created_at") " FROM accounts"
        " WHERE ($1 = '' OR (created_at, id) < (($1 || '+00')::timestamptz, $2))"
        " ORDER BY created_at DESC, id DESC LIMIT $3::int", 3, 1},
    [ST_KEY_INSERT] = {
        "INSERT INTO api_keys (prefix, account_id, operator, name, scopes, rate_per_second, hash)"
        " VALUES ($1, $2, $3::boolean, $4, string_to_array($5, ','), $6::int, decode($7, 'hex'))",
        7, 0},
    [ST_KEY_LOOKUP] = {
        "SELECT k.account_id, k.operator, k.name, array_to_string(k.scopes, ','),"
        " k.rate_per_second, encode(k.hash, 'hex'), k.revoked_at IS NOT NULL"
        " FROM api_keys k WHERE k.prefix = $1", 1, 1},
    [ST_KEY_LIST_ACCOUNT] = {
        "SELECT prefix, coalesce(name, ''), array_to_string(scopes, ','), rate_per_second, "
        TS("created_at") ", coalesce(" TS("revoked_at") ", '')"
        " FROM api_keys WHERE account_id = $1 ORDER BY created_at, prefix", 1, 1},
    [ST_KEY_LIST_OPERATOR] = {
        "SELECT prefix, coalesce(name, ''), array_to_string(scopes, ','), rate_per_second, "
        TS("created_at") ", coalesce(" TS("revoked_at") ", '')"
        " FROM api_keys WHERE operator ORDER BY created_at, prefix", 0, 1},
    [ST_KEY_REVOKE] = {
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL", 1, 0},
    [ST_SUPP_UPSERT] = {
        "INSERT INTO suppressions AS s (account_id, email, stream, reason, source)"
        " VALUES ($1, $2, $3, $4, 'manual')"
        " ON CONFLICT (account_id, stream, email) DO UPDATE SET reason = EXCLUDED.reason, source = 'manual'"
        " RETURNING (xmax = 0), email, stream, reason, source, " TS("created_at"), 4, 0},
    [ST_SUPP_LIST] = {
        /* Newest first; the cursor is the (created_at, email, stream) of the last row shown. */
        "SELECT email, stream, reason, source, " TS("created_at")
        ", " TS_US("created_at") " FROM suppressions WHERE account_id = $1 AND ($2 = '' OR stream = $2)"
        " AND ($3 = '' OR (created_at, email, stream) <"
        "      (($3 || '+00')::timestamptz, $4, $5))"
        " ORDER BY created_at DESC, email DESC, stream DESC LIMIT $6::int", 6, 1},
    [ST_SUPP_DELETE] = {
        "DELETE FROM suppressions WHERE account_id = $1 AND email = $2"
        " AND ($3 = '' OR stream = $3)", 3, 0},
    [ST_WORKER_HEARTBEAT] = {
        "INSERT INTO workers (id, hostname, pid) VALUES ($1, $2, $3::int)"
        " ON CONFLICT (id) DO UPDATE SET last_seen_at = now()", 3, 1},
    [ST_WORKER_STOPPED] = {
        "UPDATE workers SET stopped_at = now(), last_seen_at = now() WHERE id = $1", 1, 1},
    [ST_QUEUE_DEPTH] = {
        "SELECT count(*) FROM deliveries WHERE state IN ('scheduled', 'queued', 'deferred', 'sending')",
        0, 1},
    [ST_QUEUE_DUE] = {
        "SELECT count(*) FROM deliveries WHERE state IN ('queued', 'deferred')"
        " AND next_attempt_at <= now()", 0, 1},
};
