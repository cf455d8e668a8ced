-- 0004_delivery_engine: what the delivery engine records and what operators steer it with.
--
-- delivery_attempts: one row per recorded outcome of a delivery (queue_record), except for
-- sandbox messages, which never reach SMTP. `attempt` is deliveries.attempts at the time, so
-- the rows of a delivery number 1, 2, ... like its attempts. `transcript` is the SMTP
-- dialogue (bounded by the recorder) and becomes NULL when the retention purge runs.
CREATE TABLE delivery_attempts (
    account_id    text NOT NULL,
    delivery_id   text NOT NULL,
    attempt       integer NOT NULL CHECK (attempt >= 0),
    outcome       text NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'bounced', 'failed')),
    code          integer,
    enhanced      text,
    response      text,
    mx            text,
    ip            text,
    tls           text,              -- e.g. 'TLSv1.3 TLS_AES_256_GCM_SHA384'; NULL without TLS
    duration_ms   integer,
    transcript    text,
    bounce_class  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, delivery_id, attempt),
    FOREIGN KEY (account_id, delivery_id) REFERENCES deliveries (account_id, id) ON DELETE CASCADE
);
-- The retention purge (queue_purge_transcripts) walks the oldest transcripts still kept.
CREATE INDEX delivery_attempts_transcript ON delivery_attempts (created_at)
    WHERE transcript IS NOT NULL;

-- The destination (MX site) of a delivery's last attempt: operators retry a destination's
-- deferred deliveries at once and see how many wait for it.
ALTER TABLE deliveries ADD COLUMN destination text;
CREATE INDEX deliveries_destination_deferred ON deliveries (destination) WHERE state = 'deferred';

-- Operator controls per destination (instance-wide): pause, and "retry now" (retry_at),
-- which workers poll.
CREATE TABLE destination_controls (
    name        text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    retry_at    timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- What each worker reports about the destinations it is working on; replaced as a whole
-- by each publication (queue_destinations_publish) and refreshed at least every few
-- seconds. The API only shows rows refreshed in the last 30 s; housekeeping deletes rows
-- not refreshed for 60 s (their worker is gone).
CREATE TABLE destination_status (
    worker_id   text NOT NULL,
    name        text NOT NULL,
    queued      integer NOT NULL DEFAULT 0,
    active      integer NOT NULL DEFAULT 0,
    state       text NOT NULL CHECK (state IN ('active', 'throttled', 'dead', 'paused')),
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, name)
);
CREATE INDEX destination_status_name ON destination_status (name);
CREATE INDEX destination_status_updated ON destination_status (updated_at);
