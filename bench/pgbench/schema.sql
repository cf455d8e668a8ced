-- Table for the pgbench floor: shaped like a queue row (a recipient, an account, a state,
-- a due time and ~200 bytes of payload) with one secondary index, as a delivery queue has.
CREATE TABLE bench_rows (
    id              bigserial PRIMARY KEY,
    account_id      text        NOT NULL,
    rcpt            text        NOT NULL,
    state           smallint    NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    payload         text        NOT NULL
);
CREATE INDEX bench_rows_due ON bench_rows (state, next_attempt_at);
