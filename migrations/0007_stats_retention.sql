-- 0007_stats_retention: counters for GET /v1/stats, the content retention purge, and rolling
-- daily partitions of events.
--
-- Stats are counted as events are written, never by scanning events when asked. A
-- statement-level AFTER INSERT trigger on events (transition table, so one aggregate per
-- statement however many rows it inserts) appends the statement's counts to stats_pending:
-- a plain INSERT that takes no row lock, so concurrent writers (the API's group-commit
-- writers, every worker's recorder) never wait on one another for a hot counter row and can
-- never deadlock on them. Worker housekeeping folds stats_pending into stats_hourly in
-- bounded batches (posthorn_stats_rollup, one runner at a time); GET /v1/stats sums
-- stats_hourly and what is still pending, so counts are exact as soon as events commit.
--
-- One counter row per (account, UTC hour, stream, recipient domain, tag, event type); tag ''
-- is the all-tags row, and a message with tags adds one row per tag besides it. Day buckets
-- are sums of hours. Events deleted by the event retention keep their counts.
CREATE TABLE stats_hourly (
    account_id  text NOT NULL,
    tag         text NOT NULL,          -- '' for the row over all tags
    hour        timestamptz NOT NULL,   -- start of the UTC hour
    stream      text NOT NULL,          -- '' for an event without a stream
    domain      text NOT NULL,          -- recipient domain, lower-cased; '' when none
    type        text NOT NULL,
    count       bigint NOT NULL,
    PRIMARY KEY (account_id, tag, hour, stream, domain, type)
);

CREATE TABLE stats_pending (
    account_id  text NOT NULL,
    tag         text NOT NULL,
    hour        timestamptz NOT NULL,
    stream      text NOT NULL,
    domain      text NOT NULL,
    type        text NOT NULL,
    count       bigint NOT NULL
);
CREATE INDEX stats_pending_account ON stats_pending (account_id, tag, hour);

-- The counter key of one event: what both the trigger and the backfill below group by.
CREATE FUNCTION stats_domain(recipient text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN strpos($1, '@') > 0 THEN lower(split_part($1, '@', -1)) ELSE '' END $$;

CREATE FUNCTION stats_events_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The tags come from a correlated subquery, so each event is one primary-key lookup in
    -- messages: the planner knows nothing of a transition table's size and could otherwise
    -- choose to hash-join it with the whole messages table.
    INSERT INTO stats_pending (account_id, tag, hour, stream, domain, type, count)
    SELECT e.account_id, t.tag, date_trunc('hour', e.created_at, 'UTC'), coalesce(e.stream, ''),
           stats_domain(e.recipient), e.type, count(*)
    FROM (SELECT n.*, (SELECT m.tags FROM messages m
                       WHERE m.account_id = n.account_id AND m.id = n.message_id) AS tags
          FROM stats_new_events n) e
    CROSS JOIN LATERAL unnest(array_prepend(''::text, coalesce(e.tags, '{}'::text[]))) AS t(tag)
    GROUP BY 1, 2, 3, 4, 5, 6;
    RETURN NULL;
END $$;

CREATE TRIGGER events_stats_ins AFTER INSERT ON events
    REFERENCING NEW TABLE AS stats_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION stats_events_ins();

-- Folds up to lim pending rows into stats_hourly; returns how many were folded (0 when
-- another session is folding right now). Rows are applied in key order by one session at a
-- time (advisory lock), so the upserts never deadlock.
CREATE FUNCTION posthorn_stats_rollup(lim integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7375870355123007) THEN
        RETURN 0;
    END IF;
    WITH d AS (
        DELETE FROM stats_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM stats_pending LIMIT lim))
        RETURNING *),
    u AS (
        INSERT INTO stats_hourly AS s (account_id, tag, hour, stream, domain, type, count)
        SELECT account_id, tag, hour, stream, domain, type, sum(count)
        FROM d GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (account_id, tag, hour, stream, domain, type)
        DO UPDATE SET count = s.count + EXCLUDED.count)
    SELECT count(*) INTO n FROM d;
    RETURN n;
END $$;

-- The events written before this migration, counted once.
INSERT INTO stats_hourly (account_id, tag, hour, stream, domain, type, count)
SELECT e.account_id, t.tag, date_trunc('hour', e.created_at, 'UTC'), coalesce(e.stream, ''),
       stats_domain(e.recipient), e.type, count(*)
FROM events e
LEFT JOIN messages m ON m.account_id = e.account_id AND m.id = e.message_id
CROSS JOIN LATERAL unnest(array_prepend(''::text, coalesce(m.tags, '{}'::text[]))) AS t(tag)
GROUP BY 1, 2, 3, 4, 5, 6;

-- Content retention (POSTHORN_RETENTION): a message whose deliveries are all final (and,
-- for a campaign's message, whose campaign is over) loses its content, template data and
-- attachment bytes once older than the retention; purged_at marks it. Metadata, tags,
-- recipients, attempts and events stay.
ALTER TABLE messages ADD COLUMN purged_at timestamptz;
CREATE INDEX messages_unpurged ON messages (created_at) WHERE purged_at IS NULL;

-- Event retention (POSTHORN_EVENT_RETENTION): events is partitioned by day (events_pYYYYMMDD,
-- [00:00 UTC, next 00:00 UTC)). posthorn_events_maintain creates the partitions of the next
-- `ahead` days (from tomorrow) that do not exist yet, skipping a day for which the default
-- partition already holds rows (attaching would fail); drops the daily partitions whose
-- whole range is older than the retention; and deletes up to `lim` expired rows from the
-- default partition. New partitions are made as plain tables and then attached, which takes
-- only a SHARE UPDATE EXCLUSIVE lock on events (CREATE TABLE ... PARTITION OF would block
-- every insert meanwhile); attaching scans the default partition once, which stays small
-- once the daily partitions exist. lock_timeout keeps it from queueing behind long
-- transactions: it then fails and runs again at the next housekeeping round.
CREATE INDEX events_default_created ON events_default (created_at);

CREATE FUNCTION posthorn_events_maintain(ahead integer, retention_ms bigint, lim integer)
RETURNS TABLE (created integer, dropped integer, deleted integer) LANGUAGE plpgsql AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    cutoff timestamptz := now() - retention_ms * interval '1 millisecond';
    d date;
    lo timestamptz;
    hi timestamptz;
    name text;
    r record;
BEGIN
    created := 0;
    dropped := 0;
    deleted := 0;
    PERFORM set_config('lock_timeout', '2s', true);
    FOR i IN 1 .. ahead LOOP
        d := today + i;
        name := 'events_p' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN EXISTS (SELECT 1 FROM events_default WHERE created_at >= lo AND created_at < hi);
        EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
        created := created + 1;
    END LOOP;
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
          AND (to_date(substr(c.relname, 9), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM events_default WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM events_default WHERE created_at < cutoff ORDER BY created_at LIMIT lim));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN NEXT;
END $$;
