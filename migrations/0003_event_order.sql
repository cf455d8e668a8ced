-- 0003_event_order: a gap-free order for event readers. Event ids come from a sequence at
-- insert time while transactions commit in any order, so "id > after" can skip an event
-- whose transaction commits late. Each event records its transaction id; readers take only
-- events whose transaction is older than the oldest one still running (pg_snapshot_xmin)
-- and order them by (xid, id): that prefix can never grow in the middle again.
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_account_order ON events (account_id, xid, id);
CREATE INDEX events_order ON events (xid, id);
DROP INDEX events_account;
