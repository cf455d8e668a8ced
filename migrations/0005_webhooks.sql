-- 0005_webhooks: webhook endpoints, their cursors over the events, the batches sent to them
-- and the log of every attempt.
--
-- Cursor: the position (cursor_xid, cursor_id) of the last event handed to the endpoint, in
-- the (xid, id) order of 0003 (readers only take events whose transaction is older than
-- pg_snapshot_xmin, so the order never grows in the middle). A new endpoint starts at
-- (pg_snapshot_xmin, 0): events of transactions still running when it was made are sent,
-- older ones are not. The bigint `cursor` of 0001 is not used.
--
-- Lease: exactly one dispatcher per endpoint across all workers (lease_owner until
-- lease_expires_at, claimed with FOR UPDATE SKIP LOCKED and renewed while held).
-- next_attempt_at: a failed batch is not tried again before it. failing_since: the first
-- failure since the last success (POSTHORN_WEBHOOK_DISABLE_AFTER counts from it).
ALTER TABLE webhooks
    ADD COLUMN description     text,
    ADD COLUMN cursor_xid      xid8 NOT NULL DEFAULT '0',
    ADD COLUMN cursor_id       bigint NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN last_success_at timestamptz,
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now();
CREATE INDEX webhooks_dispatch ON webhooks (lease_expires_at) WHERE state = 'enabled';
CREATE INDEX webhooks_account_created ON webhooks (account_id, created_at, id);

-- One batch: the events after (after_xid, after_id) up to and including (last_xid, last_id)
-- that match `events` (the endpoint's filter when the batch was formed), at most 100. It is
-- stored before its first attempt so every retry of its id (the webhook-id header) sends
-- the same events serialized the same way; body_sha256 checks that. state: pending (being
-- tried), done (2xx), cancelled (replay or a changed filter moved the cursor away).
CREATE TABLE webhook_batches (
    account_id   text NOT NULL,
    webhook_id   text NOT NULL,
    id           text NOT NULL,                  -- msg_<random>: the webhook-id header
    after_xid    xid8 NOT NULL,
    after_id     bigint NOT NULL,
    last_xid     xid8 NOT NULL,
    last_id      bigint NOT NULL,
    events       text[] NOT NULL,
    event_count  integer NOT NULL CHECK (event_count BETWEEN 1 AND 100),
    body_sha256  bytea NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, webhook_id, id),
    FOREIGN KEY (account_id, webhook_id) REFERENCES webhooks (account_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX webhook_batches_one_pending ON webhook_batches (account_id, webhook_id)
    WHERE state = 'pending';

-- Every attempt (GET /v1/webhooks/{id}/deliveries). batch_id is NULL for POST .../test.
CREATE TABLE webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   text NOT NULL,
    webhook_id   text NOT NULL,
    batch_id     text NOT NULL,
    event_count  integer NOT NULL,
    attempt      integer NOT NULL,
    status_code  integer,
    error        text,
    latency_ms   integer NOT NULL,
    response     text,
    worker_id    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, webhook_id) REFERENCES webhooks (account_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (account_id, webhook_id, id);
