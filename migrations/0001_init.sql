-- 0001_init: the first cut of the data model (shared/DESIGN.md, "Data model").
-- Tenant tables carry account_id first in their primary key; foreign keys between them are
-- composite (account_id, id), so no row can ever point into another account. Ids are random
-- opaque strings made by lib/ids (prefix + 22 base62 characters).

CREATE TABLE accounts (
    id          text PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys: only a SHA-256 hash of the whole key is stored. Operator keys belong to no
-- account and carry the operator scope alone.
CREATE TABLE api_keys (
    prefix           text PRIMARY KEY,
    account_id       text REFERENCES accounts (id) ON DELETE CASCADE,
    operator         boolean NOT NULL DEFAULT false,
    name             text,
    scopes           text[] NOT NULL,
    rate_per_second  integer NOT NULL CHECK (rate_per_second > 0),
    hash             bytea NOT NULL CHECK (length(hash) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    CHECK (operator = (account_id IS NULL)),
    CHECK (operator = (scopes = ARRAY['operator']))
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE domains (
    account_id          text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id                  text NOT NULL,
    name                text NOT NULL,
    return_path_domain  text NOT NULL,
    dkim_selector       text NOT NULL,
    dkim_rsa_public     text,
    dkim_rsa_private    bytea,          -- AES-256-GCM, key derived from POSTHORN_SECRET
    dkim_ed25519_public text,
    dkim_ed25519_private bytea,
    verified_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, name)
);

CREATE TABLE templates (
    account_id      text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id              text NOT NULL,
    name            text NOT NULL,
    latest_version  integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    PRIMARY KEY (account_id, id)
);
CREATE UNIQUE INDEX templates_name ON templates (account_id, name) WHERE deleted_at IS NULL;

CREATE TABLE template_versions (
    account_id   text NOT NULL,
    template_id  text NOT NULL,
    version      integer NOT NULL,
    subject      text,
    html         text,
    text         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, template_id, version),
    FOREIGN KEY (account_id, template_id) REFERENCES templates (account_id, id) ON DELETE CASCADE
);

CREATE TABLE lists (
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id          text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id)
);

CREATE TABLE contacts (
    account_id  text NOT NULL,
    list_id     text NOT NULL,
    email       text NOT NULL,          -- domain part lower-cased
    data        jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'subscribed'
                CHECK (status IN ('subscribed', 'unsubscribed', 'bounced', 'complained')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, list_id, email),
    FOREIGN KEY (account_id, list_id) REFERENCES lists (account_id, id) ON DELETE CASCADE
);

CREATE TABLE campaigns (
    account_id        text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id                text NOT NULL,
    name              text NOT NULL,
    list_id           text NOT NULL,
    content           jsonb NOT NULL,   -- from, subject/html/text or template ref; stored once
    data              jsonb NOT NULL DEFAULT '{}',
    state             text NOT NULL DEFAULT 'draft'
                      CHECK (state IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled')),
    send_at           timestamptz,
    rate_per_minute   integer CHECK (rate_per_minute > 0),
    tracking          jsonb NOT NULL DEFAULT '{}',
    expansion_cursor  text,             -- last contact email expanded (keyset)
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, list_id) REFERENCES lists (account_id, id)
);

CREATE TABLE messages (
    account_id   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id           text NOT NULL,
    stream       text NOT NULL CHECK (stream IN ('transactional', 'broadcast')),
    from_email   text NOT NULL,
    from_name    text,
    reply_to     jsonb,
    content      jsonb NOT NULL,        -- subject/html/text or template ref; stored once
    data         jsonb NOT NULL DEFAULT '{}',
    headers      jsonb NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    tags         text[] NOT NULL DEFAULT '{}',
    strict       boolean NOT NULL DEFAULT false,
    sandbox      boolean NOT NULL DEFAULT false,
    send_at      timestamptz,
    campaign_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, campaign_id) REFERENCES campaigns (account_id, id)
);
CREATE INDEX messages_created ON messages (account_id, created_at DESC, id DESC);

CREATE TABLE attachments (
    account_id    text NOT NULL,
    message_id    text NOT NULL,
    idx           integer NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    disposition   text NOT NULL CHECK (disposition IN ('attachment', 'inline')),
    content_id    text,
    content       bytea,                -- NULL after the retention purge
    PRIMARY KEY (account_id, message_id, idx),
    FOREIGN KEY (account_id, message_id) REFERENCES messages (account_id, id) ON DELETE CASCADE
);

-- One row per recipient: the unit of work of the queue.
CREATE TABLE deliveries (
    account_id        text NOT NULL,
    id                text NOT NULL,
    message_id        text NOT NULL,
    recipient         text NOT NULL,
    recipient_name    text,
    kind              text NOT NULL CHECK (kind IN ('to', 'cc', 'bcc')),
    stream            text NOT NULL CHECK (stream IN ('transactional', 'broadcast')),
    state             text NOT NULL CHECK (state IN ('scheduled', 'queued', 'sending', 'deferred',
                        'delivered', 'bounced', 'suppressed', 'failed', 'expired', 'cancelled')),
    priority          smallint NOT NULL DEFAULT 0,  -- 0 transactional, 1 broadcast: lower first
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    lease_owner       text,
    lease_expires_at  timestamptz,
    smtputf8          boolean NOT NULL DEFAULT false,
    last_code         integer,
    last_enhanced     text,
    last_response     text,
    last_mx           text,
    last_tls          text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, message_id) REFERENCES messages (account_id, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_message ON deliveries (account_id, message_id);
-- The claim path: due rows by priority, then age.
CREATE INDEX deliveries_due ON deliveries (priority, next_attempt_at)
    WHERE state IN ('queued', 'deferred', 'scheduled');
CREATE INDEX deliveries_lease ON deliveries (lease_expires_at) WHERE state = 'sending';

-- Append-only; id is the cursor of /v1/events and webhooks. Partitioned by time so old
-- events drop cheaply; the default partition holds everything until rolling partitions exist.
CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    account_id   text NOT NULL,
    type         text NOT NULL CHECK (type IN ('queued', 'suppressed', 'delivered', 'deferred',
                   'bounced', 'failed', 'expired', 'cancelled', 'opened', 'clicked',
                   'unsubscribed', 'complained')),
    message_id   text,
    delivery_id  text,
    recipient    text,
    stream       text,
    data         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_message ON events (account_id, message_id, id);

CREATE TABLE suppressions (
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email       text NOT NULL,          -- domain part lower-cased
    stream      text NOT NULL CHECK (stream IN ('transactional', 'broadcast', 'all')),
    reason      text,
    source      text NOT NULL CHECK (source IN ('manual', 'bounce', 'unsubscribe', 'complaint')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, stream, email)
);
CREATE INDEX suppressions_email ON suppressions (account_id, email);
CREATE INDEX suppressions_created ON suppressions (account_id, created_at DESC, email DESC, stream DESC);

CREATE TABLE webhooks (
    account_id       text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id               text NOT NULL,
    url              text NOT NULL,
    secret           bytea NOT NULL,    -- AES-256-GCM, key derived from POSTHORN_SECRET
    events           text[] NOT NULL,
    state            text NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'disabled')),
    disabled_reason  text,
    cursor           bigint NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    failing_since    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id)
);

-- Idempotency-Key records: the first successful response, replayed for 24 h.
CREATE TABLE idempotency_keys (
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status        integer,              -- NULL while the first request is in progress
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (account_id, key)
);

-- Worker processes (instance-wide): heartbeat for operators and lease owners.
CREATE TABLE workers (
    id            text PRIMARY KEY,
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);
