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
        "INSERT INTO workers (id, hostname, pid, host_key) VALUES ($1, $2, $3::int, nullif($4, ''))"
        " ON CONFLICT (id) DO UPDATE SET last_seen_at = now()", 4, 1},
    [ST_WORKER_PEERS] = {
        /* $1 host_key, $2 the asking worker, $3 lease (ms): the other running workers of
         * this kernel and PID namespace (migration 0013) seen within a lease (older ones'
         * rows have come back through the lease sweep). Columns: id, pid. */
        "SELECT id, pid FROM workers WHERE host_key = $1 AND id <> $2 AND stopped_at IS NULL"
        " AND last_seen_at > now() - $3::bigint * interval '1 millisecond' ORDER BY id", 3, 1},
    [ST_WORKER_RESCUE] = {
        /* $1 a worker found dead: it is marked stopped, and what it held comes back now -
         * its claimed deliveries are due again (the attempt stays counted, as in the lease
         * sweep) and its webhook endpoints are free. Answers the deliveries handed back. */
        "WITH w AS (UPDATE workers SET stopped_at = now() WHERE id = $1 AND stopped_at IS NULL"
        "   RETURNING id),"
        " d AS (UPDATE deliveries SET state = 'queued', lease_owner = NULL,"
        "   lease_expires_at = NULL, updated_at = now()"
        "   WHERE state = 'sending' AND lease_owner = $1 AND EXISTS (SELECT 1 FROM w) RETURNING 1),"
        " h AS (UPDATE webhooks SET lease_owner = NULL, lease_expires_at = NULL"
        "   WHERE lease_owner = $1 AND EXISTS (SELECT 1 FROM w))"
        " SELECT count(*) FROM d", 1, 0},
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
        " SELECT id, state, stream FROM d", 2, 0},
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
        TS("created_at") ", content ? 'template', coalesce(" TS("purged_at") ", '')"
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
        " AND ($6 = '' OR m.created_at >= nullif($6, '')::timestamptz)"
        " AND ($7 = '' OR m.created_at < nullif($7, '')::timestamptz)"
        " AND ($8 = '' OR (m.created_at, m.id) < (($8 || '+00')::timestamptz, $9))"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT $10::int", 10, 1},
    [ST_EVENTS_LIST] = {
        /* Oldest first in (xid, id) order, only below the committed watermark (0003). $2/$3:
         * the position after which to read ('' = from the start). nullif: partition pruning
         * evaluates the bounds even when the OR's left side is true. */
        "SELECT e.xid || '_' || e.id, e.type, " TS("e.created_at") ", e.message_id, e.delivery_id,"
        " e.recipient, e.stream, coalesce(array_to_json(m.tags), '[]'), coalesce(m.metadata, '{}'), e.data"
        " FROM events e LEFT JOIN messages m ON m.account_id = e.account_id AND m.id = e.message_id"
        " WHERE e.account_id = $1 AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
        " AND ($2 = '' OR (e.xid, e.id) > ($2::xid8, $3::bigint))"
        " AND ($4 = '' OR e.type = $4)"
        " AND ($5 = '' OR e.message_id = $5)"
        " AND ($6 = '' OR e.recipient = $6)"
        " AND ($7 = '' OR e.created_at >= nullif($7, '')::timestamptz)"
        " AND ($8 = '' OR e.created_at < nullif($8, '')::timestamptz)"
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
        /* $1 worker, $2 lease (ms), $3 batch size, $4 transactional only (the worker's
         * express lane). Priority 0 (transactional) first, then 1
         * (broadcast), then anything higher: one range scan of the partial index
         * deliveries_due per priority, so rows waiting in the future (scheduled, retries)
         * are never walked over; a branch runs only while the batch is not full. A batch
         * holds transactional rows only or none (the others run only when p0 found nothing),
         * so the worker can pass it ahead of bulk work at every stage. A paused
         * campaign's deliveries are parked (ST_CAMP_PARK); the few that fall due anyway (a
         * deferral or a lease sweep of one in flight at the pause) are passed over. */
        "WITH p0 AS (SELECT account_id, id FROM deliveries"
        "   WHERE state IN ('queued', 'deferred', 'scheduled') AND priority = 0"
        "   AND next_attempt_at <= now() AND expires_at > now()"
        "   ORDER BY next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED)"
        " UPDATE deliveries d SET state = 'sending', lease_owner = $1,"
        " lease_expires_at = now() + $2::bigint * interval '1 millisecond',"
        " attempts = d.attempts + 1, updated_at = now()"
        " FROM (SELECT * FROM ("
        "   SELECT * FROM p0"
        "   UNION ALL"
        "   SELECT * FROM (SELECT account_id, id FROM deliveries"
        "     WHERE state IN ('queued', 'deferred', 'scheduled') AND priority = 1"
        "     AND next_attempt_at <= now() AND expires_at > now()"
        "     AND (campaign_id IS NULL OR NOT EXISTS (SELECT 1 FROM campaigns c"
        "       WHERE c.account_id = deliveries.account_id AND c.id = deliveries.campaign_id"
        "       AND c.state = 'paused'))"
        "     ORDER BY next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED) p1"
        "   WHERE NOT $4::bool AND NOT EXISTS (SELECT 1 FROM p0)"
        "   UNION ALL"
        "   SELECT * FROM (SELECT account_id, id FROM deliveries"
        "     WHERE state IN ('queued', 'deferred', 'scheduled') AND priority > 1"
        "     AND next_attempt_at <= now() AND expires_at > now()"
        "     ORDER BY priority, next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED) px"
        "   WHERE NOT $4::bool AND NOT EXISTS (SELECT 1 FROM p0)"
        "   ) u LIMIT $3::int) c"
        " WHERE d.account_id = c.account_id AND d.id = c.id"
        " RETURNING d.account_id, d.id, d.message_id, d.recipient, d.recipient_name, d.kind,"
        " d.stream, d.attempts, d.smtputf8, d.priority", 4, 0},
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
         * command count (the events inserted) is the number of rows recorded.
         * `d.state || ''` (here, in release and postpone): the partial index deliveries_lease
         * must not match, or after an ANALYZE of a drained queue the planner scans every row
         * leased to this worker once per reported row (found by bench deliver). */
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
        "   FROM r WHERE d.account_id = r.account_id AND d.id = r.id AND d.state || '' = 'sending'"
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
        " WHERE d.account_id = r.account_id AND d.id = r.id AND d.state || '' = 'sending'"
        " AND d.lease_owner = $1 AND d.attempts = r.attempt", 2, 1},
    [ST_QUEUE_RENEW] = {
        /* $1 worker, $2 lease (ms), $3 longest hold (ms): rows this live worker still holds
         * (an SMTP transaction may outlast a lease: the final dot alone may wait 10 min) get
         * a fresh lease once half of theirs has gone; a row claimed longer ago than any
         * transaction can last is left to expire, so a row the worker lost comes back. */
        "UPDATE deliveries SET lease_expires_at = now() + $2::bigint * interval '1 millisecond'"
        " WHERE state = 'sending' AND lease_owner = $1"
        " AND lease_expires_at < now() + $2::bigint / 2 * interval '1 millisecond'"
        " AND updated_at > now() - $3::bigint * interval '1 millisecond'", 3, 0},
    [ST_WEBHOOK_LOG_PURGE] = {
        /* $1 age (ms), $2 limit: finished webhook batches and attempt log rows older than
         * the event retention (0009); the command count is the attempts deleted. */
        "WITH b AS (DELETE FROM webhook_batches w USING (SELECT account_id, webhook_id, id"
        "   FROM webhook_batches WHERE state <> 'pending'"
        "   AND created_at < now() - $1::bigint * interval '1 millisecond'"
        "   LIMIT $2::int FOR UPDATE SKIP LOCKED) x"
        "   WHERE w.account_id = x.account_id AND w.webhook_id = x.webhook_id AND w.id = x.id)"
        " DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts"
        "   WHERE created_at < now() - $1::bigint * interval '1 millisecond'"
        "   LIMIT $2::int FOR UPDATE SKIP LOCKED)", 2, 0},
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
        " WHERE d.account_id = r.account_id AND d.id = r.id AND d.state || '' = 'sending'"
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
    /* Webhooks (api/webhooks.c, worker/webhooks.c). Every API statement filters on the
     * account ($1); the worker's state changes are guarded by lease_owner. Columns of
     * ST_WH_INSERT / GET / LIST / UPDATE: id, url, description, events (json), state,
     * disabled_reason, created_at, updated_at, failing_since, last_success_at, created_at
     * (full precision). */
    [ST_WH_INSERT] = {
        /* A new endpoint starts at the committed watermark (0005). */
        "INSERT INTO webhooks (account_id, id, url, secret, events, description, cursor_xid, cursor_id)"
        " VALUES ($1, $2, $3, decode($4, 'hex'), string_to_array($5, ','), $6,"
        " pg_snapshot_xmin(pg_current_snapshot()), 0)"
        " RETURNING id, url, description, array_to_json(events), state, disabled_reason, "
        TS("created_at") ", " TS("updated_at") ", " TS("failing_since") ", " TS("last_success_at")
        ", " TS_US("created_at"), 6, 0},
    [ST_WH_GET] = {
        "SELECT id, url, description, array_to_json(events), state, disabled_reason, "
        TS("created_at") ", " TS("updated_at") ", " TS("failing_since") ", " TS("last_success_at")
        ", " TS_US("created_at") " FROM webhooks WHERE account_id = $1 AND id = $2", 2, 1},
    [ST_WH_LIST] = {
        /* Newest first; the cursor is the (created_at, id) of the last row shown. */
        "SELECT id, url, description, array_to_json(events), state, disabled_reason, "
        TS("created_at") ", " TS("updated_at") ", " TS("failing_since") ", " TS("last_success_at")
        ", " TS_US("created_at") " FROM webhooks WHERE account_id = $1"
        " AND ($2 = '' OR (created_at, id) < (($2 || '+00')::timestamptz, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4::int", 4, 1},
    [ST_WH_UPDATE] = {
        /* $3 url, $4 events (csv) ('' = unchanged); $5 '1' sets description to $6 (may be
         * NULL); $7 state ('' = unchanged): enabling clears the reason and the failure
         * state, disabling releases the lease. */
        "UPDATE webhooks SET url = coalesce(nullif($3, ''), url),"
        " events = CASE WHEN $4 = '' THEN events ELSE string_to_array($4, ',') END,"
        " description = CASE WHEN $5 = '1' THEN $6 ELSE description END,"
        " state = coalesce(nullif($7, ''), state),"
        " disabled_reason = CASE $7 WHEN 'enabled' THEN NULL WHEN 'disabled' THEN 'disabled through the API'"
        "   ELSE disabled_reason END,"
        " failing_since = CASE WHEN $7 = 'enabled' THEN NULL ELSE failing_since END,"
        " next_attempt_at = CASE WHEN $7 = 'enabled' THEN NULL ELSE next_attempt_at END,"
        " updated_at = now()"
        " WHERE account_id = $1 AND id = $2"
        " RETURNING id, url, description, array_to_json(events), state, disabled_reason, "
        TS("created_at") ", " TS("updated_at") ", " TS("failing_since") ", " TS("last_success_at")
        ", " TS_US("created_at"), 7, 0},
    [ST_WH_DELETE] = {
        "DELETE FROM webhooks WHERE account_id = $1 AND id = $2", 2, 0},
    [ST_WH_SECRET] = {
        "SELECT url, encode(secret, 'hex') FROM webhooks WHERE account_id = $1 AND id = $2", 2, 1},
    [ST_WH_EVENT_EXISTS] = {
        "SELECT 1 FROM events WHERE account_id = $1 AND xid = $2::xid8 AND id = $3::bigint", 3, 1},
    [ST_WH_REPLAY] = {
        /* Moves the cursor to ($3, $4) and cancels the pending batch: a dispatcher still
         * sending it cannot advance the cursor afterwards (ST_WH_BATCH_DONE needs it pending). */
        "WITH c AS (UPDATE webhook_batches SET state = 'cancelled'"
        "   WHERE account_id = $1 AND webhook_id = $2 AND state = 'pending' RETURNING id)"
        " UPDATE webhooks SET cursor_xid = $3::xid8, cursor_id = $4::bigint, next_attempt_at = NULL,"
        " failing_since = NULL, updated_at = now()"
        " WHERE account_id = $1 AND id = $2 RETURNING (SELECT count(*) FROM c)", 4, 0},
    [ST_WH_ATTEMPTS_LIST] = {
        /* Newest first; $3: the id of the last row shown ('' = from the newest). */
        "SELECT id::text, batch_id, event_count, attempt, status_code, error, latency_ms, response, "
        TS("created_at")
        " FROM webhook_attempts WHERE account_id = $1 AND webhook_id = $2"
        " AND ($3 = '' OR id < $3::bigint) ORDER BY id DESC LIMIT $4::int", 4, 1},
    [ST_WH_ATTEMPT_INSERT] = {
        "INSERT INTO webhook_attempts (account_id, webhook_id, batch_id, event_count, attempt,"
        " status_code, error, latency_ms, response, worker_id)"
        " VALUES ($1, $2, $3, $4::int, $5::int, $6::int, $7, $8::int, $9, $10)", 10, 0},
    [ST_WH_CLAIM] = {
        /* Up to $3 enabled endpoints nobody holds (or whose holder's lease ran out). */
        "UPDATE webhooks w SET lease_owner = $1,"
        " lease_expires_at = now() + $2::bigint * interval '1 millisecond'"
        " FROM (SELECT account_id, id FROM webhooks WHERE state = 'enabled'"
        "   AND (lease_owner IS NULL OR lease_expires_at < now())"
        "   ORDER BY lease_expires_at NULLS FIRST LIMIT $3::int FOR UPDATE SKIP LOCKED) c"
        " WHERE w.account_id = c.account_id AND w.id = c.id RETURNING w.account_id, w.id", 3, 0},
    [ST_WH_RENEW] = {
        /* The endpoints $1 still holds; one not returned was deleted, disabled or lost. */
        "UPDATE webhooks SET lease_expires_at = now() + $2::bigint * interval '1 millisecond'"
        " WHERE lease_owner = $1 AND state = 'enabled' RETURNING account_id, id", 2, 0},
    [ST_WH_RELEASE] = {
        /* $2/$3: one endpoint, or every one of the worker when $2 = ''. */
        "UPDATE webhooks SET lease_owner = NULL, lease_expires_at = NULL"
        " WHERE lease_owner = $1 AND ($2 = '' OR (account_id = $2 AND id = $3))", 3, 0},
    [ST_WH_LOAD] = {
        /* What the dispatcher needs for its next step: the endpoint (while $3 holds it and
         * it is enabled), the ms until it may be tried again, and its pending batch. */
        "SELECT w.url, encode(w.secret, 'hex'), array_to_string(w.events, ','), w.cursor_xid::text,"
        " w.cursor_id::text, greatest(0, ceil(extract(epoch FROM w.next_attempt_at - now()) * 1000))::bigint,"
        " b.id, b.after_xid::text, b.after_id::text, b.last_xid::text, b.last_id::text,"
        " array_to_string(b.events, ','), b.event_count, encode(b.body_sha256, 'hex')"
        " FROM webhooks w LEFT JOIN webhook_batches b ON b.account_id = w.account_id"
        " AND b.webhook_id = w.id AND b.state = 'pending'"
        " WHERE w.account_id = $1 AND w.id = $2 AND w.lease_owner = $3 AND w.state = 'enabled'", 3, 1},
    [ST_WH_EVENTS] = {
        /* The events of the account after ($2, $3) up to ($4, $5), of the types $6 (csv, or
         * '*'), below the committed watermark, in (xid, id) order: the columns of
         * ST_EVENTS_LIST, then the position. */
        "SELECT e.xid || '_' || e.id, e.type, " TS("e.created_at") ", e.message_id, e.delivery_id,"
        " e.recipient, e.stream, coalesce(array_to_json(m.tags), '[]'), coalesce(m.metadata, '{}'), e.data,"
        " e.xid::text, e.id::text"
        " FROM events e LEFT JOIN messages m ON m.account_id = e.account_id AND m.id = e.message_id"
        " WHERE e.account_id = $1 AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
        " AND (e.xid, e.id) > ($2::xid8, $3::bigint) AND (e.xid, e.id) <= ($4::xid8, $5::bigint)"
        " AND ($6 = '*' OR e.type = ANY (string_to_array($6, ',')))"
        " ORDER BY e.xid, e.id LIMIT $7::int", 7, 1},
    [ST_WH_BATCH_INSERT] = {
        /* Only while $11 holds the endpoint and its cursor is still ($4, $5). */
        "INSERT INTO webhook_batches (account_id, webhook_id, id, after_xid, after_id, last_xid,"
        " last_id, events, event_count, body_sha256)"
        " SELECT $1, $2, $3, $4::xid8, $5::bigint, $6::xid8, $7::bigint, string_to_array($8, ','),"
        " $9::int, decode($10, 'hex') FROM webhooks"
        " WHERE account_id = $1 AND id = $2 AND lease_owner = $11 AND cursor_xid = $4::xid8"
        " AND cursor_id = $5::bigint", 11, 0},
    [ST_WH_BATCH_TRY] = {
        /* Counts an attempt before it is made; returns its number. */
        "UPDATE webhook_batches b SET attempts = attempts + 1"
        " WHERE account_id = $1 AND webhook_id = $2 AND b.id = $3 AND state = 'pending'"
        " AND EXISTS (SELECT 1 FROM webhooks w WHERE w.account_id = $1 AND w.id = $2"
        "   AND w.lease_owner = $4) RETURNING attempts", 4, 0},
    [ST_WH_BATCH_DONE] = {
        /* 2xx: the batch is done and the cursor moves past it. */
        "WITH b AS (UPDATE webhook_batches b SET state = 'done'"
        "   WHERE account_id = $1 AND webhook_id = $2 AND b.id = $3 AND state = 'pending'"
        "   AND EXISTS (SELECT 1 FROM webhooks w WHERE w.account_id = $1 AND w.id = $2"
        "     AND w.lease_owner = $4) RETURNING last_xid, last_id)"
        " UPDATE webhooks w SET cursor_xid = b.last_xid, cursor_id = b.last_id, failing_since = NULL,"
        " next_attempt_at = NULL, last_success_at = now() FROM b"
        " WHERE w.account_id = $1 AND w.id = $2 RETURNING w.id", 4, 0},
    [ST_WH_FAILED] = {
        /* A failed attempt: next try in $4 ms; disabled with reason $6 once failing for
         * $5 ms. Returns the state. */
        "UPDATE webhooks SET failing_since = coalesce(failing_since, now()),"
        " next_attempt_at = now() + $4::bigint * interval '1 millisecond',"
        " state = CASE WHEN coalesce(failing_since, now()) <= now() - $5::bigint * interval '1 millisecond'"
        "   THEN 'disabled' ELSE state END,"
        " disabled_reason = CASE WHEN coalesce(failing_since, now()) <= now() - $5::bigint * interval '1 millisecond'"
        "   THEN $6 ELSE disabled_reason END,"
        " updated_at = now()"
        " WHERE account_id = $1 AND id = $2 AND lease_owner = $3 RETURNING state", 6, 0},
    [ST_WH_SKIP] = {
        /* Nothing matched the filter ($6) after the cursor ($4, $5): moves the cursor past
         * the visible events that do not match (up to 10000, never past one that does, in
         * this statement's one snapshot), so a narrow filter on a busy account does not
         * rescan them at every poll. */
        "WITH v AS (SELECT e.xid, e.id, ($6 = '*' OR e.type = ANY (string_to_array($6, ','))) AS m"
        "   FROM events e WHERE e.account_id = $1 AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
        "   AND (e.xid, e.id) > ($4::xid8, $5::bigint) ORDER BY e.xid, e.id LIMIT 10000),"
        " f AS (SELECT xid, id FROM v WHERE m ORDER BY xid, id LIMIT 1),"
        " s AS (SELECT xid, id FROM v WHERE NOT EXISTS (SELECT 1 FROM f)"
        "   OR (v.xid, v.id) < (SELECT xid, id FROM f) ORDER BY xid DESC, id DESC LIMIT 1)"
        " UPDATE webhooks w SET cursor_xid = s.xid, cursor_id = s.id FROM s"
        " WHERE w.account_id = $1 AND w.id = $2 AND w.lease_owner = $3"
        " AND w.cursor_xid = $4::xid8 AND w.cursor_id = $5::bigint", 6, 0},
    [ST_WH_DISABLE] = {
        "UPDATE webhooks SET state = 'disabled', disabled_reason = $4, lease_owner = NULL,"
        " lease_expires_at = NULL, updated_at = now()"
        " WHERE account_id = $1 AND id = $2 AND lease_owner = $3", 4, 0},
    [ST_TRACK_LINKS_PUT] = {
        /* $1 account, $2 message, $3 [{id, url}]: the message's tracked links (worker); a
         * render again (retry) adds only links it has not stored yet. */
        "INSERT INTO tracked_links (account_id, message_id, link_id, url)"
        " SELECT $1, $2, x.id, x.url FROM jsonb_to_recordset($3::jsonb) AS x(id text, url text)"
        " ON CONFLICT (account_id, message_id, link_id) DO NOTHING", 3, 1},
    [ST_TRACK_OPEN] = {
        /* $1 account, $2 delivery, $3 user agent: an `opened` event for a delivery that
         * exists; first_open is whether this statement made the delivery's `opened` row. */
        "WITH d AS (SELECT account_id, id, message_id, recipient, stream FROM deliveries"
        "   WHERE account_id = $1 AND id = $2),"
        " f AS (INSERT INTO delivery_engagement (account_id, delivery_id, kind)"
        "   SELECT account_id, id, 'opened' FROM d ON CONFLICT DO NOTHING RETURNING 1)"
        " INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream, data)"
        " SELECT account_id, 'opened', message_id, id, recipient, stream,"
        " jsonb_build_object('user_agent', $3::text, 'first_open', EXISTS (SELECT 1 FROM f))"
        " FROM d", 3, 0},
    [ST_TRACK_CLICK] = {
        /* $1 account, $2 delivery, $3 link id, $4 user agent: the stored URL of that link of
         * the delivery's message (no row: unknown) and a `clicked` event. */
        "WITH d AS (SELECT d.account_id, d.id, d.message_id, d.recipient, d.stream, l.url"
        "   FROM deliveries d JOIN tracked_links l ON l.account_id = d.account_id"
        "   AND l.message_id = d.message_id AND l.link_id = $3"
        "   WHERE d.account_id = $1 AND d.id = $2),"
        " e AS (INSERT INTO events (account_id, type, message_id, delivery_id, recipient,"
        "   stream, data) SELECT account_id, 'clicked', message_id, id, recipient, stream,"
        "   jsonb_build_object('url', url, 'user_agent', $4::text) FROM d)"
        " SELECT url FROM d", 4, 0},
    [ST_UNSUB_INFO] = {
        /* $1 account, $2 delivery: the recipient and whether it already unsubscribed. */
        "SELECT d.recipient, EXISTS (SELECT 1 FROM delivery_engagement e"
        "   WHERE e.account_id = d.account_id AND e.delivery_id = d.id"
        "   AND e.kind = 'unsubscribed')"
        " FROM deliveries d WHERE d.account_id = $1 AND d.id = $2", 2, 1},
    [ST_UNSUB_RECORD] = {
        /* $1 account, $2 delivery, $3 method: once per delivery an `unsubscribed` event; the
         * broadcast suppression (kept if one exists) and, for campaign mail, the contact's
         * status in the campaign's list are set every time (both idempotent). Answers the
         * recipient and whether this call was the first. */
        "WITH d AS (SELECT d.account_id, d.id, d.message_id, d.recipient, d.stream,"
        "   m.campaign_id FROM deliveries d JOIN messages m ON m.account_id = d.account_id"
        "   AND m.id = d.message_id WHERE d.account_id = $1 AND d.id = $2),"
        " f AS (INSERT INTO delivery_engagement (account_id, delivery_id, kind)"
        "   SELECT account_id, id, 'unsubscribed' FROM d ON CONFLICT DO NOTHING RETURNING 1),"
        " s AS (INSERT INTO suppressions (account_id, email, stream, reason, source)"
        "   SELECT account_id, lower(recipient), 'broadcast', 'unsubscribed from ' || message_id,"
        "   'unsubscribe' FROM d ON CONFLICT (account_id, stream, email) DO NOTHING),"
        " c AS (UPDATE contacts ct SET status = 'unsubscribed', updated_at = now()"
        "   FROM d JOIN campaigns cp ON cp.account_id = d.account_id AND cp.id = d.campaign_id"
        "   WHERE ct.account_id = d.account_id AND ct.list_id = cp.list_id"
        "   AND ct.email IN (d.recipient, lower(d.recipient)) AND ct.status = 'subscribed'),"
        " e AS (INSERT INTO events (account_id, type, message_id, delivery_id, recipient,"
        "   stream, data) SELECT account_id, 'unsubscribed', message_id, id, recipient, stream,"
        "   jsonb_build_object('method', $3::text) FROM d WHERE EXISTS (SELECT 1 FROM f))"
        " SELECT recipient, EXISTS (SELECT 1 FROM f) FROM d", 3, 0},
    [ST_TRACK_LINK_GET] = {
        /* $1 account, $2 delivery, $3 link id: the stored URL alone (HEAD: no event). */
        "SELECT l.url FROM deliveries d JOIN tracked_links l ON l.account_id = d.account_id"
        " AND l.message_id = d.message_id AND l.link_id = $3"
        " WHERE d.account_id = $1 AND d.id = $2", 3, 1},
    [ST_STATS_QUERY] = {
        /* GET /v1/stats: $1 account, $2 bucket seconds (3600 or 86400), $3 and $4 the first
         * bucket's start and the last one's end (Unix seconds, bucket-aligned), $5 tag ('' for
         * all), $6 stream ('' any), $7 recipient domain ('' any). Counts per bucket and event
         * type from the hourly counters plus what is not folded into them yet. */
        "SELECT (extract(epoch FROM hour)::bigint / $2::bigint) * $2::bigint, type, sum(count)::bigint"
        " FROM (SELECT hour, type, count FROM stats_hourly WHERE account_id = $1 AND tag = $5"
        "   AND hour >= to_timestamp($3::bigint) AND hour < to_timestamp($4::bigint)"
        "   AND ($6 = '' OR stream = $6) AND ($7 = '' OR domain = $7)"
        "  UNION ALL SELECT hour, type, count FROM stats_pending WHERE account_id = $1 AND tag = $5"
        "   AND hour >= to_timestamp($3::bigint) AND hour < to_timestamp($4::bigint)"
        "   AND ($6 = '' OR stream = $6) AND ($7 = '' OR domain = $7)) c"
        " GROUP BY 1, 2 ORDER BY 1, 2", 7, 1},
    [ST_STATS_ROLLUP] = {
        /* $1 limit: folds pending counter rows into stats_hourly (migration 0007). */
        "SELECT posthorn_stats_rollup($1::int)", 1, 1},
    [ST_SUPP_IMPORT] = {
        /* $1 account, $2 [{i, email, stream, reason}] (row number, normalised address): one
         * batch of a CSV import. A pair named twice in the batch is stored once (the last
         * row wins) and its earlier rows count as updated; an existing entry keeps its
         * source and created_at and takes the new reason when one is given. Answers
         * (inserted, updated). Rows are upserted in key order. */
        "WITH r AS (SELECT DISTINCT ON (email, stream) email, stream, reason"
        "   FROM jsonb_to_recordset($2::jsonb) AS r(i int, email text, stream text, reason text)"
        "   ORDER BY email, stream, i DESC),"
        " u AS (INSERT INTO suppressions AS s (account_id, email, stream, reason, source)"
        "   SELECT $1, email, stream, reason, 'manual' FROM r ORDER BY stream, email"
        "   ON CONFLICT (account_id, stream, email)"
        "   DO UPDATE SET reason = coalesce(EXCLUDED.reason, s.reason) RETURNING (xmax = 0) AS ins)"
        " SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins)"
        " + jsonb_array_length($2::jsonb) - (SELECT count(*) FROM r) FROM u", 2, 0},
    [ST_SUPP_EXPORT] = {
        /* GET /v1/suppressions/export: $1 account, $2 stream ('' all), keyset ($3 stream,
         * $4 email) after which to go on ('' from the start), $5 limit; primary key order. */
        "SELECT stream, email, coalesce(reason, ''), source, " TS("created_at")
        " FROM suppressions WHERE account_id = $1 AND ($2 = '' OR stream = $2)"
        " AND ($3 = '' OR (stream, email) > ($3, $4))"
        " ORDER BY stream, email LIMIT $5::int", 5, 1},
    [ST_RETENTION_MESSAGES] = {
        /* $1 retention (ms), $2 limit: messages older than the retention whose deliveries
         * are all final (and whose campaign, if any, is over) lose their content (a
         * {"purged": true} marker that keeps a template reference), template data and
         * attachment bytes; purged_at marks them. Metadata, tags, deliveries, attempts and
         * events stay. */
        "WITH x AS (SELECT m.account_id, m.id FROM messages m"
        "   WHERE m.purged_at IS NULL"
        "   AND m.created_at < now() - $1::bigint * interval '1 millisecond'"
        "   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.account_id = m.account_id"
        "     AND d.message_id = m.id AND d.state IN ('scheduled', 'queued', 'sending', 'deferred'))"
        "   AND (m.campaign_id IS NULL OR EXISTS (SELECT 1 FROM campaigns c"
        "     WHERE c.account_id = m.account_id AND c.id = m.campaign_id"
        "     AND c.state IN ('sent', 'cancelled')))"
        "   ORDER BY m.created_at LIMIT $2::int FOR UPDATE OF m SKIP LOCKED),"
        " a AS (UPDATE attachments t SET content = NULL FROM x"
        "   WHERE t.account_id = x.account_id AND t.message_id = x.id AND t.content IS NOT NULL)"
        " UPDATE messages m SET purged_at = now(), data = '{}',"
        " content = jsonb_build_object('purged', true) || CASE WHEN m.content ? 'template'"
        "   THEN jsonb_build_object('template', m.content->'template') ELSE '{}'::jsonb END"
        " FROM x WHERE m.account_id = x.account_id AND m.id = x.id", 2, 1},
    [ST_RETENTION_DLV_DATA] = {
        /* $1 limit: campaign deliveries whose message the retention has purged lose their
         * own template data (the contact's fields) too (migration 0011). */
        "WITH x AS (SELECT d.account_id, d.id FROM campaigns c"
        "   JOIN messages m ON m.account_id = c.account_id AND m.id = c.message_id"
        "   AND m.purged_at IS NOT NULL"
        "   JOIN deliveries d ON d.account_id = m.account_id AND d.message_id = m.id"
        "   AND d.data IS NOT NULL"
        "   LIMIT $1::int FOR UPDATE OF d SKIP LOCKED)"
        " UPDATE deliveries d SET data = NULL FROM x"
        " WHERE d.account_id = x.account_id AND d.id = x.id", 1, 0},
    [ST_STATS_TRIM] = {
        /* $1 stats retention (ms), $2 limit: hourly counter rows older than the retention
         * go (migration 0012 indexes hour). */
        "DELETE FROM stats_hourly s USING (SELECT ctid FROM stats_hourly"
        "   WHERE hour < now() - $1::bigint * interval '1 millisecond' LIMIT $2::int) x"
        " WHERE s.ctid = x.ctid", 2, 0},
    [ST_EVENTS_MAINTAIN] = {
        /* $1 event retention (ms), $2 limit: daily partitions for the next 7 days, drops
         * those past the retention, deletes up to $2 expired rows of the default partition
         * (migration 0007). Answers (created, dropped, deleted). */
        "SELECT created, dropped, deleted FROM posthorn_events_maintain(7, $1::bigint, $2::int)",
        2, 1},
    /* Lists and contacts (api/lists.c): every statement filters on the account ($1). */
    [ST_LIST_INSERT] = {
        "INSERT INTO lists (account_id, id, name) VALUES ($1, $2, $3)", 3, 0},
    [ST_LIST_GET] = {
        "SELECT id, name, " TS("created_at") " FROM lists WHERE account_id = $1 AND id = $2", 2, 1},
    [ST_LIST_LIST] = {
        /* Newest first; the cursor is the (created_at, id) of the last row shown. */
        "SELECT id, name, " TS("created_at") ", " TS_US("created_at") " FROM lists"
        " WHERE account_id = $1 AND ($2 = '' OR (created_at, id) < (($2 || '+00')::timestamptz, $3))"
        " ORDER BY created_at DESC, id DESC LIMIT $4::int", 4, 1},
    [ST_LIST_DELETE] = {
        /* Contacts go with the list; a list that a campaign uses stays (no row deleted). */
        "DELETE FROM lists l WHERE account_id = $1 AND id = $2 AND NOT EXISTS"
        " (SELECT 1 FROM campaigns c WHERE c.account_id = l.account_id AND c.list_id = l.id)", 2, 0},
    [ST_CONTACTS_UPSERT] = {
        /* $3 [{email, data, status}] (addresses normalised, unique in the chunk): one chunk
         * of an import in one statement. $4 true: the rows carry a status to set (else a
         * stored status is kept, new rows are subscribed). $5 the upload's id: a row this
         * upload already wrote is left alone and not returned, so the caller reports it as
         * a duplicate without remembering the addresses of earlier chunks. Given data is
         * laid over stored data. Answers (email, inserted) per row written. */
        "INSERT INTO contacts AS c (account_id, list_id, email, data, status, import_id)"
        " SELECT $1, $2, x.email, coalesce(x.data, '{}'), coalesce(x.status, 'subscribed'), $5"
        " FROM jsonb_to_recordset($3::jsonb) AS x(email text, data jsonb, status text)"
        " ON CONFLICT (account_id, list_id, email) DO UPDATE SET data = c.data || EXCLUDED.data,"
        " status = CASE WHEN $4::boolean THEN EXCLUDED.status ELSE c.status END,"
        " updated_at = now(), import_id = EXCLUDED.import_id"
        " WHERE c.import_id IS DISTINCT FROM EXCLUDED.import_id"
        " RETURNING c.email, (xmax = 0)", 5, 0},
    [ST_CONTACTS_LIST] = {
        /* By address; the cursor is the last address shown. $4 status filter ('' = all). */
        "SELECT email, data, status, " TS("created_at") ", " TS("updated_at")
        " FROM contacts WHERE account_id = $1 AND list_id = $2 AND ($3 = '' OR email > $3)"
        " AND ($4 = '' OR status = $4) ORDER BY email LIMIT $5::int", 5, 1},
    [ST_CONTACT_GET] = {
        "SELECT email, data, status, " TS("created_at") ", " TS("updated_at")
        " FROM contacts WHERE account_id = $1 AND list_id = $2 AND email = $3", 3, 1},
    [ST_CONTACT_DELETE] = {
        "DELETE FROM contacts WHERE account_id = $1 AND list_id = $2 AND email = $3", 3, 0},
    /* Campaigns (api/campaigns.c, worker/campaigns.c). Columns of GET and LIST: id, name,
     * list_id, state, content, data, send_at, rate_per_minute, tracking, created_at,
     * updated_at, started_at, finished_at, expanded (bool), skipped, then the counters
     * total .. complained, then created_at (us). */
#define CAMP_COLS \
    "c.id, c.name, c.list_id, c.state, c.content, c.data, coalesce(" TS("c.send_at") ", ''),"   \
    " c.rate_per_minute, c.tracking, " TS("c.created_at") ", " TS("c.updated_at") ","            \
    " coalesce(" TS("c.started_at") ", ''), coalesce(" TS("c.finished_at") ", ''),"               \
    " c.expanded_at IS NOT NULL, c.skipped, k.total, k.queued, k.sending, k.deferred,"          \
    " k.delivered, k.bounced, k.failed, k.expired, k.suppressed, k.cancelled, k.opened,"          \
    " k.clicked, k.unsubscribed, k.complained, " TS_US("c.created_at")
    [ST_CAMP_INSERT] = {
        /* $4 the list must exist in the account (else no row). */
        "WITH c AS (INSERT INTO campaigns (account_id, id, name, list_id, content, data, send_at,"
        "   rate_per_minute, tracking)"
        "   SELECT $1, $2, $3, l.id, $5::jsonb, $6::jsonb, nullif($7, '')::timestamptz,"
        "   nullif($8, '')::int, $9::jsonb FROM lists l WHERE l.account_id = $1 AND l.id = $4"
        "   RETURNING account_id, id),"
        " k AS (INSERT INTO campaign_counters (account_id, campaign_id) SELECT account_id, id FROM c)"
        " SELECT id FROM c", 9, 0},
    [ST_CAMP_GET] = {
        "SELECT " CAMP_COLS " FROM campaigns c JOIN campaign_counters k"
        " ON k.account_id = c.account_id AND k.campaign_id = c.id"
        " WHERE c.account_id = $1 AND c.id = $2", 2, 1},
    [ST_CAMP_LIST] = {
        "SELECT " CAMP_COLS " FROM campaigns c JOIN campaign_counters k"
        " ON k.account_id = c.account_id AND k.campaign_id = c.id WHERE c.account_id = $1"
        " AND ($2 = '' OR (c.created_at, c.id) < (($2 || '+00')::timestamptz, $3))"
        " ORDER BY c.created_at DESC, c.id DESC LIMIT $4::int", 4, 1},
    [ST_CAMP_SEND] = {
        /* draft -> sending (scheduled when send_at is ahead), and the campaign's one messages
         * row ($3 its id): content stored once. No row: absent or not a draft. */
        "WITH c AS (UPDATE campaigns SET state = CASE WHEN send_at > now() THEN 'scheduled'"
        "   ELSE 'sending' END, message_id = $3, updated_at = now(),"
        "   started_at = CASE WHEN send_at > now() THEN NULL ELSE now() END,"
        "   next_slot_at = greatest(coalesce(send_at, now()), now())"
        "   WHERE account_id = $1 AND id = $2 AND state = 'draft'"
        "   RETURNING account_id, id, content, data, tracking, state, send_at),"
        " m AS (INSERT INTO messages (account_id, id, stream, from_email, from_name, content, data,"
        "   headers, metadata, tracking, send_at, campaign_id, smtputf8)"
        "   SELECT account_id, $3, 'broadcast', content->>'from_email', content->>'from_name',"
        "   content->'content', data, coalesce(content->'headers', '[]'),"
        "   jsonb_build_object('campaign_id', id), tracking, send_at, id,"
        "   coalesce((content->>'smtputf8')::boolean, false) FROM c)"
        " SELECT state FROM c", 3, 0},
    [ST_CAMP_PAUSE] = {
        /* The campaign row first, in a statement of its own: it waits for an expansion
         * chunk in progress (row lock), so ST_CAMP_PARK, with a later snapshot, sees every
         * delivery expanded before the pause. A paused campaign stays paused (idempotent). */
        "UPDATE campaigns SET state = 'paused', updated_at = now()"
        " WHERE account_id = $1 AND id = $2 AND state IN ('sending', 'scheduled', 'paused')", 2, 0},
    [ST_CAMP_PARK] = {
        /* A paused campaign's waiting deliveries are parked far ahead (not 'infinity': the
         * worker's next-due arithmetic must stay finite) until resume, and so is their
         * expiry: a pause never makes them expire (ST_CAMP_RESUME sets a new one). Parking
         * twice changes nothing. */
        "UPDATE deliveries d SET next_attempt_at = now() + interval '100 years',"
        " expires_at = d.expires_at + CASE WHEN d.expires_at > now() + interval '50 years'"
        "   THEN interval '0' ELSE interval '100 years' END"
        " FROM campaigns c WHERE c.account_id = $1 AND c.id = $2 AND c.state = 'paused'"
        " AND d.account_id = c.account_id AND d.campaign_id = c.id"
        " AND d.state IN ('queued', 'deferred', 'scheduled')", 2, 0},
    [ST_CAMP_RESUME] = {
        /* paused -> sending (scheduled while send_at is ahead); parked deliveries are due
         * again, spaced by the rate, and expire a queue lifetime ($3, s) after their new
         * slot (or at their own expiry, unparked, if that is later). */
        "WITH c AS (UPDATE campaigns SET state = CASE WHEN send_at > now() THEN 'scheduled'"
        "   ELSE 'sending' END, updated_at = now(),"
        "   started_at = coalesce(started_at, CASE WHEN send_at > now() THEN NULL ELSE now() END)"
        "   WHERE account_id = $1 AND id = $2 AND state = 'paused'"
        "   RETURNING account_id, id, rate_per_minute, greatest(coalesce(send_at, now()), now()) AS t0),"
        " p AS (SELECT d.account_id, d.id, c.t0 + CASE WHEN c.rate_per_minute IS NULL THEN interval '0'"
        "     ELSE (row_number() OVER (ORDER BY d.next_attempt_at, d.recipient) - 1)"
        "       * (60000.0 / c.rate_per_minute) * interval '1 millisecond' END AS at"
        "   FROM deliveries d JOIN c ON d.account_id = c.account_id AND d.campaign_id = c.id"
        "   WHERE d.state IN ('queued', 'deferred', 'scheduled')),"
        " d AS (UPDATE deliveries d SET next_attempt_at = p.at,"
        "   expires_at = greatest(d.expires_at - CASE WHEN d.expires_at > now() + interval '50 years'"
        "     THEN interval '100 years' ELSE interval '0' END,"
        "     p.at + make_interval(secs => $3::double precision))"
        "   FROM p WHERE d.account_id = p.account_id AND d.id = p.id RETURNING p.at),"
        " s AS (UPDATE campaigns x SET next_slot_at = greatest(coalesce((SELECT max(at) FROM d)"
        "   + (60000.0 / c.rate_per_minute) * interval '1 millisecond', c.t0), c.t0)"
        "   FROM c WHERE x.account_id = c.account_id AND x.id = c.id)"
        " SELECT count(*) FROM c", 3, 0},
    [ST_CAMP_CANCEL] = {
        /* The campaign row first (see ST_CAMP_PAUSE), then ST_CAMP_CANCEL_DLV. Cancelling a
         * cancelled campaign is accepted again (a retry finishes the deliveries' part). */
        "UPDATE campaigns SET state = 'cancelled', updated_at = now(),"
        " finished_at = coalesce(finished_at, now()) WHERE account_id = $1 AND id = $2"
        " AND state IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled')", 2, 0},
    [ST_CAMP_CANCEL_DLV] = {
        /* Deliveries not yet handed to SMTP are cancelled, with an event each. */
        "WITH x AS (UPDATE deliveries d SET state = 'cancelled', updated_at = now()"
        "   FROM campaigns c WHERE c.account_id = $1 AND c.id = $2 AND c.state = 'cancelled'"
        "   AND d.account_id = c.account_id AND d.campaign_id = c.id"
        "   AND d.state IN ('scheduled', 'queued', 'deferred')"
        "   RETURNING d.account_id, d.id, d.message_id, d.recipient, d.stream)"
        " INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream)"
        " SELECT account_id, 'cancelled', message_id, id, recipient, stream FROM x", 2, 0},
    [ST_CAMP_EXPAND] = {
        /* One chunk of one sending campaign, in one statement (one transaction): the next
         * contacts after expansion_cursor ($1 at most), a delivery (with its event) for each
         * subscribed one - 'suppressed' when a suppression covers the broadcast stream -
         * the others counted as skipped, and the cursor moved past the chunk. The campaign
         * row is taken FOR UPDATE SKIP LOCKED, so two workers never expand the same chunk;
         * a crash rolls the whole chunk back. With rate_per_minute, deliveries are spaced
         * 60000/rate ms apart from next_slot_at on, a chunk holds at most one minute of
         * them, and a campaign is expanded only while next_slot_at is less than $3 ms ahead.
         * $2 queue lifetime (s), counted from each delivery's slot. Answers campaign id, contacts read, deliveries made
         * (no row: nothing to expand). */
        "WITH c AS (SELECT account_id, id, list_id, message_id, expansion_cursor, rate_per_minute,"
        "   greatest(coalesce(next_slot_at, now()), now()) AS t0,"
        "   CASE WHEN rate_per_minute IS NULL THEN $1::int"
        "     ELSE least($1::int, rate_per_minute) END AS lim"
        "   FROM campaigns WHERE state = 'sending' AND expanded_at IS NULL"
        "   AND (rate_per_minute IS NULL"
        "     OR coalesce(next_slot_at, now()) < now() + $3::bigint * interval '1 millisecond')"
        "   ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED),"
        " k AS (SELECT ct.email, ct.data, ct.status FROM c CROSS JOIN LATERAL"
        "   (SELECT email, data, status FROM contacts WHERE account_id = c.account_id"
        "    AND list_id = c.list_id AND email > coalesce(c.expansion_cursor, '')"
        "    ORDER BY email LIMIT c.lim) ct),"
        " s AS (SELECT k.email, k.data, row_number() OVER (ORDER BY k.email) AS rn FROM k"
        "   WHERE k.status = 'subscribed'),"
        " d AS (INSERT INTO deliveries (account_id, id, message_id, campaign_id, recipient, kind,"
        "   stream, state, priority, next_attempt_at, expires_at, smtputf8, data)"
        "   SELECT c.account_id, posthorn_id('dlv_'), c.message_id, c.id, s.email, 'to', 'broadcast',"
        "   CASE WHEN EXISTS (SELECT 1 FROM suppressions x WHERE x.account_id = c.account_id"
        "     AND x.email = lower(s.email) AND x.stream IN ('all', 'broadcast'))"
        "     THEN 'suppressed' ELSE 'queued' END, 1,"
        "   c.t0 + CASE WHEN c.rate_per_minute IS NULL THEN interval '0'"
        "     ELSE (s.rn - 1) * (60000.0 / c.rate_per_minute) * interval '1 millisecond' END,"
        "   c.t0 + CASE WHEN c.rate_per_minute IS NULL THEN interval '0'"
        "     ELSE (s.rn - 1) * (60000.0 / c.rate_per_minute) * interval '1 millisecond' END"
        "   + make_interval(secs => $2::double precision),"
        "   octet_length(s.email) <> char_length(s.email), s.data"
        "   FROM c CROSS JOIN s"
        "   RETURNING account_id, id, message_id, recipient, stream, state),"
        " e AS (INSERT INTO events (account_id, type, message_id, delivery_id, recipient, stream)"
        "   SELECT account_id, CASE state WHEN 'suppressed' THEN 'suppressed' ELSE 'queued' END,"
        "   message_id, id, recipient, stream FROM d),"
        " u AS (UPDATE campaigns x SET"
        "   expansion_cursor = coalesce((SELECT max(email) FROM k), x.expansion_cursor),"
        "   expanded_at = CASE WHEN (SELECT count(*) FROM k) < c.lim THEN now() END,"
        "   skipped = x.skipped + (SELECT count(*) FROM k WHERE k.status <> 'subscribed'),"
        "   next_slot_at = c.t0 + CASE WHEN c.rate_per_minute IS NULL THEN interval '0'"
        "     ELSE (SELECT count(*) FROM s) * (60000.0 / c.rate_per_minute)"
        "       * interval '1 millisecond' END,"
        "   updated_at = now()"
        "   FROM c WHERE x.account_id = c.account_id AND x.id = c.id)"
        " SELECT c.id, (SELECT count(*) FROM k), (SELECT count(*) FROM d) FROM c", 3, 0},
    [ST_CAMP_PROMOTE] = {
        "UPDATE campaigns SET state = 'sending', started_at = coalesce(started_at, now()),"
        " next_slot_at = greatest(coalesce(next_slot_at, now()), now()), updated_at = now()"
        " WHERE state = 'scheduled' AND send_at <= now()", 0, 1},
    [ST_CAMP_FINISH] = {
        /* Expanded, and every delivery final: sent. */
        "UPDATE campaigns c SET state = 'sent', finished_at = now(), updated_at = now()"
        " FROM campaign_counters k WHERE c.state = 'sending' AND c.expanded_at IS NOT NULL"
        " AND k.account_id = c.account_id AND k.campaign_id = c.id"
        " AND k.queued + k.sending + k.deferred = 0", 0, 1},
    [ST_CAMP_DLV_DATA] = {
        /* $1 [{account_id, id}]: the per-recipient data of a batch's deliveries that have it. */
        "SELECT d.id, d.data FROM jsonb_to_recordset($1::jsonb) AS k(account_id text, id text)"
        " JOIN deliveries d ON d.account_id = k.account_id AND d.id = k.id"
        " WHERE d.data IS NOT NULL", 1, 1},
    [ST_DLV_RELTUPLES] = {
        /* The row count of deliveries as the planner knows it (-1: never analyzed). */
        "SELECT reltuples::bigint FROM pg_class WHERE oid = 'deliveries'::regclass", 0, 1},
#undef CAMP_COLS
};
