-- 0006_tracking: open and click tracking, one-click unsubscribe (issue #7).
--
-- tracked_links: the links of a message's html part that the worker rewrote for click
-- tracking, stored once per message (every recipient's html has the same links; only the
-- tokens differ). link_id is the hex of the first 8 bytes of SHA-256(url), so a message
-- rendered again (a retry) adds nothing and a token made for an earlier render still finds
-- its URL. A click token names (account, delivery, link_id): the redirect goes only to a
-- URL stored here for the message of a delivery that exists, never to one from the token.
CREATE TABLE tracked_links (
    account_id  text NOT NULL,
    message_id  text NOT NULL,
    link_id     text NOT NULL CHECK (length(link_id) = 16),
    url         text NOT NULL CHECK (length(url) BETWEEN 8 AND 4096),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, message_id, link_id),
    FOREIGN KEY (account_id, message_id) REFERENCES messages (account_id, id) ON DELETE CASCADE
);

-- What happened once per delivery: its first open (so `opened` events say first_open)
-- and its unsubscribe (so a repeated one-click POST records nothing twice). One insert
-- with ON CONFLICT DO NOTHING decides "first" even under concurrent requests.
CREATE TABLE delivery_engagement (
    account_id   text NOT NULL,
    delivery_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('opened', 'unsubscribed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, delivery_id, kind),
    FOREIGN KEY (account_id, delivery_id) REFERENCES deliveries (account_id, id) ON DELETE CASCADE
);
