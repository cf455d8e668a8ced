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
    /* Group commit: every statement takes the whole group as one JSON array ($1) so a group
     * costs a handful of round trips however many messages it holds. */
    [ST_W_IDEM_LOCK] = {
        /* Held until commit: a second request with the key meanwhile is "in progress". */
        "SELECT x.idx, pg_try_advisory_xact_lock(hashtextextended(x.account_id || E'\n' || x.key, 0))"
        " FROM jsonb_to_recordset($1::jsonb) AS x(idx int, account_id text, key text)", 1, 0},
    [ST_W_IDEM_GET] = {
        "SELECT x.idx, encode(i.request_hash, 'hex'), i.status, convert_from(i.response, 'UTF8')"
        " FROM jsonb_to_recordset($1::jsonb) AS x(idx int, account_id text, key text)"
        " JOIN idempotency_keys i ON i.account_id = x.account_id AND i.key = x.key"
        " AND i.expires_at > now() AND i.status IS NOT NULL", 1, 0},
    [ST_W_MSG_INSERT] = {
        "INSERT INTO messages (account_id, id, stream, from_email, from_name, reply_to, header_to,"
        " header_cc, content, data, headers, metadata, tags, strict, sandbox, send_at, tracking, smtputf8)"
        " SELECT account_id, id, stream, from_email, from_name, reply_to, header_to, header_cc, content,"
        " coalesce(data, '{}'), coalesce(headers, '[]'), coalesce(metadata, '{}'), coalesce(tags, '{}'),"
        " strict, sandbox, send_at, coalesce(tracking, '{}'), smtputf8"
        " FROM jsonb_to_recordset($1::jsonb) AS x(account_id text, id text, stream text, from_email text,"
        " from_name text, reply_to jsonb, header_to jsonb, header_cc jsonb, content jsonb, data jsonb,"
        " headers jsonb, metadata jsonb, tags text[], strict boolean, sandbox boolean,"
        " send_at timestamptz, tracking jsonb, smtputf8 boolean)", 1, 0},
    [ST_W_ATT_INSERT] = {
        "INSERT INTO attachments (account_id, message_id, idx, filename, content_type, disposition,"
        " content_id, content)"
        " SELECT account_id, message_id, idx, filename, content_type, disposition, content_id,"
        " decode(content, 'base64')"
        " FROM jsonb_to_recordset($1::jsonb) AS x(account_id text, message_id text, idx int,"
        " filename text, content_type text, disposition text, content_id text, content text)", 1, 0},
    [ST_W_DLV_INSERT] = {
        /* One row per recipient, suppressed ones decided here, and one event each. $2 is the
         * queue lifetime in seconds. */
        "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(account_id text, id text,"
        "   message_id text, recipient text, recipient_name text, kind text, stream text,"
        "   send_at timestamptz, smtputf8 boolean)),"
        " d AS (INSERT INTO deliveries (account_id, id, message_id, recipient, recipient_name, kind,"
        "   stream, state, priority, next_attempt_at, expires_at, smtputf8)"
        "   SELECT x.account_id, x.id, x.message_id, x.recipient, x.recipient_name, x.kind, x.stream,"
        "   CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.account_id = x.account_id"
        "          AND s.email = lower(x.recipient) AND s.stream IN ('all', x.stream)) THEN 'suppressed'"
        "        WHEN x.send_at > now() THEN 'scheduled' ELSE 'queued' END,"
        "   CASE x.stream WHEN 'transactional' THEN 0 ELSE 1 END,"
        "   greatest(coalesce(x.send_at, now()), now()),"
        "   greatest(coalesce(x.send_at, now()), now()) + make_interval(secs => $2::double precision),"
        "   x.smtputf8 FROM x"
        "   RETURNING account_id, id, message_id, recipient, stream, state),"
        " e AS (INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream)"
        "   SELECT account_id, CASE state WHEN 'suppressed' THEN 'suppressed' ELSE 'queued' END,"
        "   message_id, id, recipient, stream FROM d)"
        " SELECT id, state FROM d", 2, 0},
    [ST_W_IDEM_PUT] = {
        /* A row that expired but was not purged yet is replaced. */
        "INSERT INTO idempotency_keys AS i (account_id, key, request_hash, status, response)"
        " SELECT account_id, key, decode(request_hash, 'hex'), status, convert_to(response, 'UTF8')"
        " FROM jsonb_to_recordset($1::jsonb) AS x(account_id text, key text, request_hash text,"
        " status int, response text)"
        " ON CONFLICT (account_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
        " status = EXCLUDED.status, response = EXCLUDED.response, created_at = now(),"
        " expires_at = now() + interval '24 hours' WHERE i.expires_at <= now()", 1, 0},
    [ST_MSG_GET] = {
        "SELECT id, stream, from_email, from_name, reply_to, header_to, header_cc,"
        " content->>'subject', metadata, array_to_json(tags), sandbox, coalesce(" TS("send_at") ", ''), "
        TS("created_at") ", content ? 'template'"
        " FROM messages WHERE account_id = $1 AND id = $2", 2, 1},
    [ST_MSG_RECIPIENTS] = {
        "SELECT id, recipient, recipient_name, kind, state, attempts, last_code, last_enhanced,"
        " last_response, last_mx, last_tls, " TS("next_attempt_at") ", " TS("updated_at") ","
        " destination FROM deliveries WHERE account_id = $1 AND message_id = $2"
        " ORDER BY CASE kind WHEN 'to' THEN 0 WHEN 'cc' THEN 1 ELSE 2 END, recipient", 2, 1},
    [ST_MSG_EVENTS] = {
        "SELECT xid || '_' || id, type, delivery_id, recipient, data, " TS("created_at")
        " FROM events WHERE account_id = $1 AND message_id = $2 ORDER BY xid, id LIMIT 1000", 2, 1},
    [ST_MSG_LIST] = {
        /* Newest first; cursor (created_at, id). Filters: stream, tag, recipient, status,
         * since, until (empty = no filter). */
        "SELECT m.id, m.stream, m.from_email, m.content->>'subject', array_to_json(m.tags), m.metadata, "
        TS("m.created_at") ", " TS_US("m.created_at") ","
        " (SELECT json_agg(json_build_object('email', d.recipient, 'delivery_id', d.id,"
        "   'status', d.state) ORDER BY CASE d.kind WHEN 'to' THEN 0 WHEN 'cc' THEN 1 ELSE 2 END,"
        "   d.recipient) FROM deliveries d"
        "   WHERE d.account_id = m.account_id AND d.message_id = m.id)"
        " FROM messages m WHERE m.account_id = $1"
        " AND ($2 = '' OR m.stream = $2)"
        " AND ($3 = '' OR $3 = ANY (m.tags))"
        " AND ($4 = '' OR EXISTS (SELECT 1 FROM deliveries d WHERE d.account_id = m.account_id"
        "      AND d.message_id = m.id AND d.recipient = $4))"
        " AND ($5 = '' OR EXISTS (SELECT 1 FROM deliveries d WHERE d.account_id = m.account_id"
        "      AND d.message_id = m.id AND d.state = $5))"
        " AND ($6 = '' OR m.created_at >= $6::timestamptz)"
        " AND ($7 = '' OR m.created_at < $7::timestamptz)"
        " AND ($8 = '' OR (m.created_at, m.id) < (($8 || '+00')::timestamptz, $9))"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT $10::int", 10, 1},
    [ST_EVENTS_LIST] = {
        /* Oldest first in (xid, id) order, only below the committed watermark (0003). $2/$3:
         * the position after which to read ('' = from the start). */
        "SELECT e.xid || '_' || e.id, e.type, " TS("e.created_at") ", e.message_id, e.delivery_id,"
        " e.recipient, e.stream, coalesce(array_to_json(m.tags), '[]'), coalesce(m.metadata, '{}'), e.data"
        " FROM events e LEFT JOIN messages m ON m.account_id = e.account_id AND m.id = e.message_id"
        " WHERE e.account_id = $1 AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
        " AND ($2 = '' OR (e.xid, e.id) > ($2::xid8, $3::bigint))"
        " AND ($4 = '' OR e.type = $4)"
        " AND ($5 = '' OR e.message_id = $5)"
        " AND ($6 = '' OR e.recipient = $6)"
        " AND ($7 = '' OR e.created_at >= $7::timestamptz)"
        " AND ($8 = '' OR e.created_at < $8::timestamptz)"
        " ORDER BY e.xid, e.id LIMIT $9::int", 9, 1},
    /* Templates: every statement filters on the account ($1) and skips deleted ones. */
    [ST_TPL_INSERT] = {
        /* A duplicate live name is a unique violation (templates_name): DB_CONFLICT. */
        "WITH t AS (INSERT INTO templates (account_id, id, name) VALUES ($1, $2, $3)"
        "   RETURNING account_id, id),"
        " v AS (INSERT INTO template_versions (account_id, template_id, version, subject, html, text)"
        "   SELECT account_id, id, 1, $4, $5, $6 FROM t RETURNING version)"
        " SELECT version FROM v", 6, 0},
    [ST_TPL_GET] = {
        /* $3: the version ('' = the latest). */
        "SELECT t.id, t.name, v.version, v.subject, v.html, v.text, " TS("t.created_at") ", "
        TS("v.created_at")
        " FROM templates t JOIN template_versions v ON v.account_id = t.account_id"
        " AND v.template_id = t.id AND v.version = coalesce(nullif($3, '')::int, t.latest_version)"
        " WHERE t.account_id = $1 AND t.id = $2 AND t.deleted_at IS NULL", 3, 1},
    [ST_TPL_BY_NAME] = {
        /* Partials: the latest version of the account's live template of that name. */
        "SELECT v.subject, v.html, v.text"
        " FROM templates t JOIN template_versions v ON v.account_id = t.account_id"
        " AND v.template_id = t.id AND v.version = t.latest_version"
        " WHERE t.account_id = $1 AND t.name = $2 AND t.deleted_at IS NULL", 2, 1},
    [ST_TPL_LIST] = {
        /* Newest first; the cursor is the (created_at, id) of the last row shown. */
        "SELECT t.id, t.name, t.latest_version, v.subject, " TS("t.created_at") ", "
        TS("v.created_at") ", " TS_US("t.created_at")
        " FROM templates t JOIN template_versions v ON v.account_id = t.account_id"
        " AND v.template_id = t.id AND v.version = t.latest_version"
        " WHERE t.account_id = $1 AND t.deleted_at IS NULL"
        " AND ($2 = '' OR (t.created_at, t.id) < (($2 || '+00')::timestamptz, $3))"
        " ORDER BY t.created_at DESC, t.id DESC LIMIT $4::int", 4, 1},
    [ST_TPL_NEW_VERSION] = {
        /* The row lock of the UPDATE orders concurrent PUTs; no row: absent or deleted. */
        "WITH t AS (UPDATE templates SET latest_version = latest_version + 1"
        "   WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL"
        "   RETURNING account_id, id, latest_version),"
        " v AS (INSERT INTO template_versions (account_id, template_id, version, subject, html, text)"
        "   SELECT account_id, id, latest_version, $3, $4, $5 FROM t RETURNING version)"
        " SELECT version FROM v", 5, 0},
    [ST_TPL_DELETE] = {
        "UPDATE templates SET deleted_at = now()"
        " WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL", 2, 0},
    [ST_TPL_RESOLVE] = {
        /* Sending: a reference by id ($2) or by name ($3) to its id and concrete version
         * ($4: the version, '' = the latest); the last column says whether that version
         * exists. No row: no such live template in the account. */
        "SELECT t.id, coalesce(nullif($4, '')::int, t.latest_version),"
        " EXISTS (SELECT 1 FROM template_versions v WHERE v.account_id = t.account_id"
        "   AND v.template_id = t.id AND v.version = coalesce(nullif($4, '')::int, t.latest_version))"
        " FROM templates t WHERE t.account_id = $1 AND t.deleted_at IS NULL"
        " AND CASE WHEN $2 <> '' THEN t.id = $2 ELSE t.name = $3 END", 4, 1},
    /* Sending domains: every statement filters on the account ($1). Private keys are
     * secretbox boxes (bytea, $7/$9 as hex) and are never selected here. Columns of GET and
     * LIST: id, name, return_path_domain, dkim_selector, dkim_rsa_public,
     * dkim_ed25519_public, verified_at ('' when not verified), created_at, created_at (us). */
    [ST_DOM_INSERT] = {
        /* A second domain of that name in the account is a unique violation: DB_CONFLICT. */
        "INSERT INTO domains (account_id, id, name, return_path_domain, dkim_selector,"
        " dkim_rsa_public, dkim_rsa_private, dkim_ed25519_public, dkim_ed25519_private)"
        " VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex'), $8, decode($9, 'hex'))", 9, 0},
    [ST_DOM_GET] = {
        "SELECT " "id, name, return_path_domain, dkim_selector, dkim_rsa_public, dkim_ed25519_public, "
        "coalesce(" TS("verified_at") ", ''), " TS("created_at") ", " TS_US("created_at")
        " FROM domains WHERE account_id = $1 AND id = $2", 2, 1},
    [ST_DOM_LIST] = {
        /* Newest first; the cursor is the (created_at, id) of the last row shown. */
        "SELECT " "id, name, return_path_domain, dkim_selector, dkim_rsa_public, dkim_ed25519_public, "
        "coalesce(" TS("verified_at") ", ''), " TS("created_at") ", " TS_US("created_at")
        " FROM domains WHERE account_id = $1"
        " AND ($2 = '' OR (created_at, id) < (($2 || '+00')::timestamptz, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4::int", 4, 1},
    [ST_DOM_DELETE] = {
        "DELETE FROM domains WHERE account_id = $1 AND id = $2", 2, 0},
    [ST_DOM_VERIFIED] = {
        "UPDATE domains SET verified_at = now() WHERE account_id = $1 AND id = $2", 2, 0},
    [ST_DOM_FROM_VERIFIED] = {
        /* The From rule: the sender's domain must be one of the account's verified domains. */
        "SELECT verified_at IS NOT NULL FROM domains WHERE account_id = $1 AND name = $2", 2, 1},
    [ST_MSG_CANCEL] = {
        "WITH c AS (UPDATE deliveries SET state = 'cancelled', updated_at = now()"
        "   WHERE account_id = $1 AND message_id = $2 AND state IN ('scheduled', 'queued', 'deferred')"
        "   RETURNING account_id, id, message_id, recipient, stream),"
        " e AS (INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream)"
        "   SELECT account_id, 'cancelled', message_id, id, recipient, stream FROM c)"
        " SELECT count(*) FROM c", 2, 0},
    /* worker queue (db/queue.c). Every state change of a claimed row is guarded by
     * lease_owner and the attempt number, so a worker whose lease ran out cannot overwrite
     * the result of the worker that claimed the row after it. */
    [ST_QUEUE_CLAIM] = {
        /* $1 worker, $2 lease (ms), $3 batch size. Priority 0 (transactional) first, then 1
         * (broadcast), then anything higher: one range scan of the partial index
         * deliveries_due per priority, so rows waiting in the future (scheduled, retries)
         * are never walked over; a branch runs only while the batch is not full. */
        "UPDATE deliveries d SET state = 'sending', lease_owner = $1,"
        " lease_expires_at = now() + $2::bigint * interval '1 millisecond',"
        " attempts = d.attempts + 1, updated_at = now()"
        " FROM (SELECT * FROM ("
        "   SELECT * FROM (SELECT account_id, id FROM deliveries"
        "     WHERE state IN ('queued', 'deferred', 'scheduled') AND priority = 0"
        "     AND next_attempt_at <= now() AND expires_at > now()"
        "     ORDER BY next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED) p0"
        "   UNION ALL"
        "   SELECT * FROM (SELECT account_id, id FROM deliveries"
        "     WHERE state IN ('queued', 'deferred', 'scheduled') AND priority = 1"
        "     AND next_attempt_at <= now() AND expires_at > now()"
        "     ORDER BY next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED) p1"
        "   UNION ALL"
        "   SELECT * FROM (SELECT account_id, id FROM deliveries"
        "     WHERE state IN ('queued', 'deferred', 'scheduled') AND priority > 1"
        "     AND next_attempt_at <= now() AND expires_at > now()"
        "     ORDER BY priority, next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED) px"
        "   ) u LIMIT $3::int) c"
        " WHERE d.account_id = c.account_id AND d.id = c.id"
        " RETURNING d.account_id, d.id, d.message_id, d.recipient, d.recipient_name, d.kind,"
        " d.stream, d.attempts, d.smtputf8, d.priority", 3, 0},
    [ST_QUEUE_NEXT_DUE] = {
        /* ms until the earliest waiting row is due (negative: due now; NULL: none). One
         * index probe per priority, so an idle poll costs nothing however long the queue;
         * priorities above 1 are rare and share one probe. */
        "SELECT (extract(epoch FROM (min(t) - now())) * 1000)::bigint FROM ("
        " SELECT (SELECT next_attempt_at FROM deliveries"
        "   WHERE state IN ('queued', 'deferred', 'scheduled') AND priority = 0"
        "   ORDER BY next_attempt_at LIMIT 1) AS t"
        " UNION ALL SELECT (SELECT next_attempt_at FROM deliveries"
        "   WHERE state IN ('queued', 'deferred', 'scheduled') AND priority = 1"
        "   ORDER BY next_attempt_at LIMIT 1)"
        " UNION ALL SELECT (SELECT min(next_attempt_at) FROM deliveries"
        "   WHERE state IN ('queued', 'deferred', 'scheduled') AND priority > 1)) x", 0, 1},
    [ST_QUEUE_MESSAGE] = {
        /* $1 [{account_id, id}]: the messages of one batch in one round trip; attachments
         * are loaded apart, one message at a time, only where there are any. */
        "SELECT k.account_id, k.id, m.stream, m.from_email, m.from_name, m.reply_to,"
        " m.header_to, m.header_cc, m.content, m.data, m.headers, m.strict, m.sandbox,"
        " m.smtputf8, m.tracking, extract(epoch FROM m.created_at)::bigint,"
        " EXISTS (SELECT 1 FROM attachments a WHERE a.account_id = m.account_id"
        "   AND a.message_id = m.id)"
        " FROM jsonb_to_recordset($1::jsonb) AS k(account_id text, id text)"
        " JOIN messages m ON m.account_id = k.account_id AND m.id = k.id", 1, 1},
    [ST_QUEUE_ATTACHMENTS] = {
        "SELECT idx, filename, content_type, disposition, content_id, content"
        " FROM attachments WHERE account_id = $1 AND message_id = $2 ORDER BY idx", 2, 1},
    [ST_QUEUE_TEMPLATE] = {
        /* A stored template reference: that exact version, even if the template was
         * deleted or a newer version published since (versions are immutable). */
        "SELECT subject, html, text FROM template_versions"
        " WHERE account_id = $1 AND template_id = $2 AND version = $3::int", 3, 1},
    [ST_QUEUE_DOMAIN] = {
        /* The signing domain of a From address: its DKIM keys (sealed, hex) and the VERP
         * return-path domain; verified or not (the From rule is the API's). */
        "SELECT dkim_selector, return_path_domain, encode(dkim_rsa_private, 'hex'),"
        " encode(dkim_ed25519_private, 'hex') FROM domains"
        " WHERE account_id = $1 AND name = $2", 2, 1},
    [ST_QUEUE_RECORD] = {
        /* $1 worker, $2 [{account_id, id, attempt, state, delay_ms, code, enhanced, response,
         * mx, tls, ip, duration_ms, transcript, destination, bounce_class, data}]: one batch
         * of outcomes, their attempt log rows and their events in one statement (one
         * transaction). The event type is the new state; data gains the attempt number.
         * Every recorded outcome gets a delivery_attempts row unless its message is a
         * sandbox one; destination keeps the last known one when an outcome has none. The
         * command count (the events inserted) is the number of rows recorded. */
        "WITH r AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS r(account_id text, id text,"
        "   attempt int, state text, delay_ms bigint, code int, enhanced text, response text,"
        "   mx text, tls text, ip text, duration_ms int, transcript text, destination text,"
        "   bounce_class text, data jsonb)"
        "   WHERE state IN ('delivered', 'deferred', 'bounced', 'failed')),"
        " u AS (UPDATE deliveries d SET state = r.state, lease_owner = NULL,"
        "   lease_expires_at = NULL, updated_at = now(),"
        "   next_attempt_at = CASE WHEN r.state = 'deferred'"
        "     THEN now() + coalesce(r.delay_ms, 0) * interval '1 millisecond'"
        "     ELSE d.next_attempt_at END,"
        "   last_code = r.code, last_enhanced = r.enhanced, last_response = r.response,"
        "   last_mx = r.mx, last_tls = r.tls, destination = coalesce(r.destination, d.destination)"
        "   FROM r WHERE d.account_id = r.account_id AND d.id = r.id AND d.state = 'sending'"
        "   AND d.lease_owner = $1 AND d.attempts = r.attempt"
        "   RETURNING d.account_id, d.id, d.message_id, d.recipient, d.stream, d.attempts,"
        "   r.state, r.data, r.code, r.enhanced, r.response, r.mx, r.ip, r.tls, r.duration_ms,"
        "   r.transcript, r.bounce_class),"
        " a AS (INSERT INTO delivery_attempts (account_id, delivery_id, attempt, outcome, code,"
        "   enhanced, response, mx, ip, tls, duration_ms, transcript, bounce_class)"
        "   SELECT u.account_id, u.id, u.attempts, u.state, u.code, u.enhanced, u.response, u.mx,"
        "   u.ip, u.tls, u.duration_ms, u.transcript, u.bounce_class"
        "   FROM u JOIN messages m ON m.account_id = u.account_id AND m.id = u.message_id"
        "   WHERE NOT m.sandbox"
        "   ON CONFLICT (account_id, delivery_id, attempt) DO NOTHING),"
        /* a hard bounce suppresses the address on every stream */
        " s AS (INSERT INTO suppressions (account_id, email, stream, reason, source)"
        "   SELECT DISTINCT ON (u.account_id, lower(u.recipient)) u.account_id, lower(u.recipient),"
        "   'all', left('hard bounce: ' || coalesce(u.code::text || ' ', '')"
        "   || coalesce(u.response, ''), 500), 'bounce'"
        "   FROM u WHERE u.state = 'bounced' AND u.bounce_class = 'hard'"
        "   ON CONFLICT (account_id, stream, email) DO NOTHING)"
        " INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream, data)"
        " SELECT account_id, state, message_id, id, recipient, stream,"
        " coalesce(data, '{}'::jsonb) || jsonb_build_object('attempt', attempts) FROM u", 2, 1},
    [ST_QUEUE_RELEASE] = {
        /* $1 worker, $2 [{account_id, id, attempt}]: claimed rows that were never tried go
         * back to the queue; the attempt they were counted for is given back. */
        "UPDATE deliveries d SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,"
        " attempts = greatest(d.attempts - 1, 0), updated_at = now()"
        " FROM jsonb_to_recordset($2::jsonb) AS r(account_id text, id text, attempt int)"
        " WHERE d.account_id = r.account_id AND d.id = r.id AND d.state = 'sending'"
        " AND d.lease_owner = $1 AND d.attempts = r.attempt", 2, 1},
    [ST_QUEUE_SWEEP] = {
        /* $1 limit: rows whose lease ran out (their worker died or stalled) are due again;
         * the attempt stays counted, since it may have reached the recipient. */
        "UPDATE deliveries d SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,"
        " updated_at = now()"
        " FROM (SELECT account_id, id FROM deliveries"
        "   WHERE state = 'sending' AND lease_expires_at < now()"
        "   ORDER BY lease_expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED) s"
        " WHERE d.account_id = s.account_id AND d.id = s.id AND d.state = 'sending'"
        " AND d.lease_expires_at < now()", 1, 1},
    [ST_QUEUE_EXPIRE] = {
        /* $1 limit: rows still waiting past expires_at end as expired, with an event. */
        "WITH x AS (UPDATE deliveries d SET state = 'expired', lease_owner = NULL,"
        "   lease_expires_at = NULL, updated_at = now()"
        "   FROM (SELECT account_id, id FROM deliveries"
        "     WHERE state IN ('scheduled', 'queued', 'deferred') AND expires_at < now()"
        "     ORDER BY expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED) s"
        "   WHERE d.account_id = s.account_id AND d.id = s.id"
        "   AND d.state IN ('scheduled', 'queued', 'deferred')"
        "   RETURNING d.account_id, d.id, d.message_id, d.recipient, d.stream, d.attempts,"
        "   d.last_code, d.last_response)"
        " INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream, data)"
        " SELECT account_id, 'expired', message_id, id, recipient, stream,"
        " jsonb_strip_nulls(jsonb_build_object('attempts', attempts, 'last_code', last_code,"
        " 'last_response', last_response,"
        " 'reason', 'not delivered within the queue lifetime')) FROM x", 1, 1},
    [ST_IDEMPOTENCY_PURGE] = {
        /* $1 limit: bounded so one run never holds many locks. */
        "DELETE FROM idempotency_keys i USING"
        " (SELECT account_id, key FROM idempotency_keys WHERE expires_at < now()"
        "  LIMIT $1::int FOR UPDATE SKIP LOCKED) x"
        " WHERE i.account_id = x.account_id AND i.key = x.key AND i.expires_at < now()", 1, 1},
    [ST_QUEUE_POSTPONE] = {
        /* $1 worker, $2 [{account_id, id, attempt, destination}], $3 delay (ms): claimed rows
         * that were not tried because their destination is paused wait again as 'deferred',
         * without an event; the attempt they were counted for is given back, so a pause never
         * uses up retries. destination NULL keeps the row's last one. */
        "UPDATE deliveries d SET state = 'deferred', lease_owner = NULL, lease_expires_at = NULL,"
        " attempts = greatest(d.attempts - 1, 0),"
        " next_attempt_at = now() + greatest($3::bigint, 0) * interval '1 millisecond',"
        " destination = coalesce(r.destination, d.destination), updated_at = now()"
        " FROM jsonb_to_recordset($2::jsonb) AS r(account_id text, id text, attempt int,"
        "   destination text)"
        " WHERE d.account_id = r.account_id AND d.id = r.id AND d.state = 'sending'"
        " AND d.lease_owner = $1 AND d.attempts = r.attempt", 3, 1},
    [ST_DEST_PUBLISH] = {
        /* $1 worker, $2 [{name, queued, active, state, last_error}]: the worker's rows become
         * exactly these (its others are deleted), all stamped now. A name given twice counts
         * once (either of them). */
        "WITH x AS (SELECT DISTINCT ON (name) * FROM jsonb_to_recordset($2::jsonb)"
        "   AS x(name text, queued int, active int, state text, last_error text)"
        "   WHERE name IS NOT NULL ORDER BY name),"
        " del AS (DELETE FROM destination_status s WHERE s.worker_id = $1"
        "   AND NOT EXISTS (SELECT 1 FROM x WHERE x.name = s.name))"
        " INSERT INTO destination_status AS s (worker_id, name, queued, active, state, last_error,"
        "   updated_at)"
        " SELECT $1, name, coalesce(queued, 0), coalesce(active, 0), state, last_error, now()"
        " FROM x"
        " ON CONFLICT (worker_id, name) DO UPDATE SET queued = EXCLUDED.queued,"
        " active = EXCLUDED.active, state = EXCLUDED.state, last_error = EXCLUDED.last_error,"
        " updated_at = now()", 2, 1},
    [ST_DEST_CONTROLS] = {
        /* Every destination with a control in force: paused, or a retry request. */
        "SELECT name, paused, coalesce((extract(epoch FROM retry_at) * 1000)::bigint, 0)"
        " FROM destination_controls WHERE paused OR retry_at IS NOT NULL ORDER BY name", 0, 1},
    [ST_DEST_STATUS_PURGE] = {
        /* $1 limit: rows not refreshed for 60 s belong to a worker that is gone. */
        "DELETE FROM destination_status s USING"
        " (SELECT worker_id, name FROM destination_status"
        "  WHERE updated_at < now() - interval '60 seconds'"
        "  LIMIT $1::int FOR UPDATE SKIP LOCKED) x"
        " WHERE s.worker_id = x.worker_id AND s.name = x.name"
        " AND s.updated_at < now() - interval '60 seconds'", 1, 1},
    [ST_TRANSCRIPT_PURGE] = {
        /* $1 retention (ms), $2 limit: transcripts older than the retention are dropped; the
         * rest of the attempt row stays. */
        "UPDATE delivery_attempts a SET transcript = NULL FROM"
        " (SELECT account_id, delivery_id, attempt FROM delivery_attempts"
        "  WHERE transcript IS NOT NULL"
        "  AND created_at < now() - $1::bigint * interval '1 millisecond'"
        "  ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED) x"
        " WHERE a.account_id = x.account_id AND a.delivery_id = x.delivery_id"
        " AND a.attempt = x.attempt", 2, 1},
    [ST_DEST_LIST] = {
        /* GET /v1/destinations (instance-wide, operator). $1 the name after which to list
         * ('' from the start), $2 limit, $3 one name only ('' = all; that name is answered
         * even when nothing is known of it). Workers' rows count when refreshed in the last
         * 30 s: queued and active are summed, the state is the worst (dead > throttled >
         * active; a worker's 'paused' without a pause in force counts as active), and
         * 'paused' when the operator paused it. deferred counts the deliveries waiting for
         * it. Columns: name, state, queued, deferred, active, last_error, paused,
         * updated_at. */
        "WITH s AS (SELECT name, sum(queued) AS queued, sum(active) AS active,"
        "   max(CASE state WHEN 'dead' THEN 2 WHEN 'throttled' THEN 1 ELSE 0 END) AS rank,"
        "   (array_agg(last_error ORDER BY CASE state WHEN 'dead' THEN 2 WHEN 'throttled' THEN 1"
        "     ELSE 0 END DESC, updated_at DESC) FILTER (WHERE last_error IS NOT NULL))[1]"
        "     AS last_error,"
        "   max(updated_at) AS updated_at"
        "   FROM destination_status WHERE updated_at > now() - interval '30 seconds'"
        "   AND ($3::text = '' OR name = $3::text) GROUP BY name),"
        " d AS (SELECT destination AS name, count(*) AS deferred FROM deliveries"
        "   WHERE state = 'deferred' AND destination IS NOT NULL"
        "   AND ($3::text = '' OR destination = $3::text) GROUP BY destination),"
        " c AS (SELECT name, paused, updated_at FROM destination_controls"
        "   WHERE ($3::text = '' OR name = $3::text)),"
        " n AS (SELECT name FROM s UNION SELECT name FROM d"
        "   UNION SELECT name FROM c WHERE paused OR $3::text <> ''"
        "   UNION SELECT $3::text WHERE $3::text <> '')"
        " SELECT n.name,"
        " CASE WHEN coalesce(c.paused, false) THEN 'paused' WHEN s.rank = 2 THEN 'dead'"
        "   WHEN s.rank = 1 THEN 'throttled' ELSE 'active' END,"
        " coalesce(s.queued, 0), coalesce(d.deferred, 0), coalesce(s.active, 0), s.last_error,"
        " coalesce(c.paused, false), " TS("greatest(s.updated_at, c.updated_at)")
        " FROM n LEFT JOIN s ON s.name = n.name LEFT JOIN d ON d.name = n.name"
        " LEFT JOIN c ON c.name = n.name"
        " WHERE ($1::text = '' OR n.name COLLATE \"C\" > $1::text COLLATE \"C\")"
        " ORDER BY n.name COLLATE \"C\" LIMIT $2::int", 3, 1},
    [ST_DEST_SET_PAUSED] = {
        "INSERT INTO destination_controls AS c (name, paused, updated_at)"
        " VALUES ($1, $2::boolean, now())"
        " ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()", 2, 1},
    [ST_DEST_RETRY] = {
        /* $1 name: workers see retry_at (and forget what they learnt about the destination);
         * its deferred deliveries are due now. Answers how many. */
        "WITH c AS (INSERT INTO destination_controls AS c (name, retry_at, updated_at)"
        "   VALUES ($1, now(), now())"
        "   ON CONFLICT (name) DO UPDATE SET retry_at = now(), updated_at = now()),"
        " u AS (UPDATE deliveries SET next_attempt_at = least(next_attempt_at, now()),"
        "   updated_at = now() WHERE state = 'deferred' AND destination = $1 RETURNING 1)"
        " SELECT count(*) FROM u", 1, 0},
    [ST_MSG_ATTEMPTS] = {
        /* The attempt log of a message's deliveries: the newest 50 of each, oldest first. */
        "SELECT delivery_id, attempt, outcome, code, enhanced, response, mx, ip, tls,"
        " duration_ms, bounce_class, transcript, " TS("created_at")
        " FROM (SELECT a.*, row_number() OVER (PARTITION BY a.delivery_id"
        "   ORDER BY a.attempt DESC) AS rn"
        "   FROM delivery_attempts a JOIN deliveries d ON d.account_id = a.account_id"
        "   AND d.id = a.delivery_id"
        "   WHERE d.account_id = $1 AND d.message_id = $2) x"
        " WHERE rn <= 50 ORDER BY delivery_id, attempt", 2, 1},
    /* -- webhooks (add below) -- */
    /* -- tracking and unsubscribe (add below) -- */
    /* -- stats, suppression CSV, retention (add below) -- */
    /* -- lists, contacts, campaigns (add below) -- */
};
