-- 0002_sending: what the send path stores beyond the first cut.
-- messages.header_to / header_cc: the visible recipients as [{"email","name"}] (Bcc lives
-- only in deliveries); headers becomes an ordered [[name, value], ...] list; tracking
-- options; smtputf8 when any address needs it.
ALTER TABLE messages
    ADD COLUMN header_to  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN header_cc  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN tracking   jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN smtputf8   boolean NOT NULL DEFAULT false;
ALTER TABLE messages ALTER COLUMN headers SET DEFAULT '[]';

-- GET /v1/messages filters.
CREATE INDEX messages_tags ON messages USING gin (tags);
CREATE INDEX deliveries_recipient ON deliveries (account_id, recipient);

-- Expiry sweep: rows still waiting past their expiry.
CREATE INDEX deliveries_expiry ON deliveries (expires_at)
    WHERE state IN ('scheduled', 'queued', 'deferred');

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
