-- One row per transaction (pgbench wraps each script run in its own transaction).
\set r random(1, 1000000000)
INSERT INTO bench_rows (account_id, rcpt, payload)
VALUES ('acc_bench', 'user' || :r || '@example.test', repeat('x', 200));
