-- 0008_campaigns: lists, contacts and campaigns (issue #8).
--
-- A sending campaign is one `messages` row (campaign_id set, content stored once) plus one
-- `deliveries` row per subscribed contact, made by the workers' expander in chunks: each
-- chunk's deliveries, their events and the campaign's keyset cursor (expansion_cursor, the
-- last contact email expanded) commit in one statement, so an expansion that dies half way
-- resumes where the last commit left it and no contact is expanded twice.
-- deliveries.data is the recipient's own template data (the contact's), laid over the
-- message's data (the campaign's) by the render stage; NULL for ordinary messages.
-- contacts.import_id: the upload that last wrote the row (duplicates within one upload).
ALTER TABLE contacts ADD COLUMN import_id text;
ALTER TABLE deliveries ADD COLUMN data jsonb;
ALTER TABLE deliveries ADD COLUMN campaign_id text;
CREATE INDEX deliveries_campaign ON deliveries (account_id, campaign_id, state)
    WHERE campaign_id IS NOT NULL;

ALTER TABLE campaigns
    ADD COLUMN message_id   text,          -- the campaign's one messages row (made by send)
    ADD COLUMN started_at   timestamptz,
    ADD COLUMN expanded_at  timestamptz,   -- every contact has been expanded
    ADD COLUMN finished_at  timestamptz,
    ADD COLUMN next_slot_at timestamptz,   -- rate_per_minute: when the next delivery may go
    ADD COLUMN skipped      bigint NOT NULL DEFAULT 0;  -- contacts not subscribed at expansion
CREATE INDEX campaigns_created ON campaigns (account_id, created_at DESC, id DESC);
CREATE INDEX campaigns_active ON campaigns (state, updated_at)
    WHERE state IN ('scheduled', 'sending');
CREATE INDEX lists_created ON lists (account_id, created_at DESC, id DESC);

-- Random ids in lib/ids format (prefix + 22 base62 characters), for rows made in SQL.
CREATE FUNCTION posthorn_id(prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT prefix || string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                                     get_byte(x.b, i) % 62 + 1, 1), '' ORDER BY i)
  FROM (SELECT uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) AS b) x,
       generate_series(0, 21) AS i
$$;

-- Progress of a campaign, maintained as rows change (never by scanning deliveries):
-- statement-level triggers with transition tables add the net change of each statement.
-- `queued` also holds 'scheduled' rows, so the delivery-state columns add up to total.
CREATE TABLE campaign_counters (
    account_id   text NOT NULL,
    campaign_id  text NOT NULL,
    total        bigint NOT NULL DEFAULT 0,
    queued       bigint NOT NULL DEFAULT 0,
    sending      bigint NOT NULL DEFAULT 0,
    deferred     bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    bounced      bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    expired      bigint NOT NULL DEFAULT 0,
    suppressed   bigint NOT NULL DEFAULT 0,
    cancelled    bigint NOT NULL DEFAULT 0,
    opened       bigint NOT NULL DEFAULT 0,
    clicked      bigint NOT NULL DEFAULT 0,
    unsubscribed bigint NOT NULL DEFAULT 0,
    complained   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, campaign_id),
    FOREIGN KEY (account_id, campaign_id) REFERENCES campaigns (account_id, id) ON DELETE CASCADE
);

-- sign: +1 for rows entering a state, -1 for rows leaving it. Counter rows are locked in
-- key order first so two statements touching the same campaigns never deadlock.
CREATE FUNCTION campaign_counters_apply(delta jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM campaign_counters c
    JOIN jsonb_to_recordset(delta) AS g(account_id text, campaign_id text)
      ON c.account_id = g.account_id AND c.campaign_id = g.campaign_id
    ORDER BY c.account_id, c.campaign_id FOR UPDATE OF c;
  UPDATE campaign_counters c SET
    total = c.total + g.total, queued = c.queued + g.queued, sending = c.sending + g.sending,
    deferred = c.deferred + g.deferred, delivered = c.delivered + g.delivered,
    bounced = c.bounced + g.bounced, failed = c.failed + g.failed, expired = c.expired + g.expired,
    suppressed = c.suppressed + g.suppressed, cancelled = c.cancelled + g.cancelled
  FROM jsonb_to_recordset(delta) AS g(account_id text, campaign_id text, total bigint,
    queued bigint, sending bigint, deferred bigint, delivered bigint, bounced bigint,
    failed bigint, expired bigint, suppressed bigint, cancelled bigint)
  WHERE c.account_id = g.account_id AND c.campaign_id = g.campaign_id;
END $$;

CREATE FUNCTION campaign_counters_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  delta jsonb;
BEGIN
  WITH r AS (
    SELECT account_id, campaign_id, state, 1 AS k, 1 AS t FROM new_rows WHERE campaign_id IS NOT NULL
    UNION ALL
    SELECT account_id, campaign_id, state, -1, -1 FROM old_rows WHERE campaign_id IS NOT NULL),
  g AS (
    SELECT account_id, campaign_id, sum(t) AS total,
      coalesce(sum(k) FILTER (WHERE state IN ('queued', 'scheduled')), 0) AS queued,
      coalesce(sum(k) FILTER (WHERE state = 'sending'), 0) AS sending,
      coalesce(sum(k) FILTER (WHERE state = 'deferred'), 0) AS deferred,
      coalesce(sum(k) FILTER (WHERE state = 'delivered'), 0) AS delivered,
      coalesce(sum(k) FILTER (WHERE state = 'bounced'), 0) AS bounced,
      coalesce(sum(k) FILTER (WHERE state = 'failed'), 0) AS failed,
      coalesce(sum(k) FILTER (WHERE state = 'expired'), 0) AS expired,
      coalesce(sum(k) FILTER (WHERE state = 'suppressed'), 0) AS suppressed,
      coalesce(sum(k) FILTER (WHERE state = 'cancelled'), 0) AS cancelled
    FROM r GROUP BY account_id, campaign_id)
  SELECT jsonb_agg(to_jsonb(g)) INTO delta FROM g;
  IF delta IS NOT NULL THEN
    PERFORM campaign_counters_apply(delta);
  END IF;
  RETURN NULL;
END $$;

-- One function for the three events; a missing transition table reads as empty.
CREATE FUNCTION campaign_counters_deliveries_ins() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  delta jsonb;
BEGIN
  SELECT jsonb_agg(to_jsonb(g)) INTO delta FROM (
    SELECT account_id, campaign_id, count(*) AS total,
      count(*) FILTER (WHERE state IN ('queued', 'scheduled')) AS queued,
      count(*) FILTER (WHERE state = 'sending') AS sending,
      count(*) FILTER (WHERE state = 'deferred') AS deferred,
      count(*) FILTER (WHERE state = 'delivered') AS delivered,
      count(*) FILTER (WHERE state = 'bounced') AS bounced,
      count(*) FILTER (WHERE state = 'failed') AS failed,
      count(*) FILTER (WHERE state = 'expired') AS expired,
      count(*) FILTER (WHERE state = 'suppressed') AS suppressed,
      count(*) FILTER (WHERE state = 'cancelled') AS cancelled
    FROM new_rows WHERE campaign_id IS NOT NULL GROUP BY account_id, campaign_id) g;
  IF delta IS NOT NULL THEN
    PERFORM campaign_counters_apply(delta);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER deliveries_campaign_ins AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counters_deliveries_ins();
CREATE TRIGGER deliveries_campaign_upd AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counters_deliveries();

-- Engagement: opened, clicked, unsubscribed and complained events of campaign messages.
CREATE FUNCTION campaign_counters_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH g AS (
    SELECT m.account_id, m.campaign_id,
      count(*) FILTER (WHERE e.type = 'opened') AS opened,
      count(*) FILTER (WHERE e.type = 'clicked') AS clicked,
      count(*) FILTER (WHERE e.type = 'unsubscribed') AS unsubscribed,
      count(*) FILTER (WHERE e.type = 'complained') AS complained
    FROM new_rows e JOIN messages m ON m.account_id = e.account_id AND m.id = e.message_id
    WHERE e.type IN ('opened', 'clicked', 'unsubscribed', 'complained')
      AND m.campaign_id IS NOT NULL
    GROUP BY m.account_id, m.campaign_id ORDER BY 1, 2)
  UPDATE campaign_counters c SET opened = c.opened + g.opened, clicked = c.clicked + g.clicked,
    unsubscribed = c.unsubscribed + g.unsubscribed, complained = c.complained + g.complained
  FROM g WHERE c.account_id = g.account_id AND c.campaign_id = g.campaign_id;
  RETURN NULL;
END $$;

CREATE TRIGGER events_campaign_ins AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaign_counters_events();
