-- 0013_worker_host_key: which workers share one kernel and one PID namespace.
--
-- host_key is the hostname, the kernel's boot id and the worker's PID-namespace inode. Two
-- workers with the same host_key see the same processes, so when one finds that the other's
-- pid no longer exists (kill(pid, 0) fails with ESRCH) the other is dead for certain, and its
-- claimed deliveries and webhook endpoints are handed back at once instead of when their
-- lease runs out. A worker in another container, on another machine, or after a reboot has
-- another key and is left to the lease. NULL: the worker could not tell (no /proc).
ALTER TABLE workers ADD COLUMN host_key text;
CREATE INDEX workers_host_key ON workers (host_key) WHERE stopped_at IS NULL;
