-- 100 rows per transaction, in one statement.
\set r random(1, 1000000000)
INSERT INTO bench_rows (account_id, rcpt, payload)
SELECT 'acc_bench', 'user' || (:r + g) || '@example.test', repeat('x', 200)
FROM generate_series(1, 100) AS g;
