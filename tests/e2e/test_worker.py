"""posthorn-worker: starts, writes a heartbeat row in `workers`, keeps it going across a
PostgreSQL restart and a Redis restart (reconnecting to both), exits 0 on SIGTERM."""
import time

from harness.posthorn import wait_until


def heartbeat(cluster, db, pid):
    """last_seen_at of the worker's row as epoch seconds, or None."""
    try:
        out = cluster.psql("SELECT extract(epoch FROM last_seen_at) FROM workers WHERE pid = %d "
                           "ORDER BY last_seen_at DESC LIMIT 1" % pid, db=db)
    except RuntimeError:
        return None
    return float(out) if out else None


def db_now(cluster, db):
    return float(cluster.psql("SELECT extract(epoch FROM now())", db=db))


def test_worker_heartbeat_and_restarts(make_pg, make_redis, make_posthorn):
    cluster = make_pg()
    r = make_redis()
    ph = make_posthorn(pg_cluster=cluster, redis_server=r, env={"POSTHORN_POLL_INTERVAL": "1s"})
    db = ph.db_url.rsplit("/", 1)[1]
    w = ph.worker_proc()
    first = wait_until(lambda: heartbeat(cluster, db, w.pid), timeout=30,
                       what="a workers row for pid %d" % w.pid)
    row = cluster.psql("SELECT hostname, pid, started_at IS NOT NULL FROM workers WHERE pid=%d" % w.pid,
                       db=db)
    assert row.split("|")[1] == str(w.pid) and row.endswith("|t"), row
    wait_until(lambda: (heartbeat(cluster, db, w.pid) or 0) > first, timeout=30,
               what="the heartbeat to advance")
    # The worker holds a Redis connection (wake-ups).
    wait_until(lambda: len(r.clients()) >= 1, timeout=30, what="the worker to connect to Redis")

    # PostgreSQL restart: the worker lives on and the heartbeat resumes.
    cluster.stop()
    time.sleep(3)  # a few failed polls
    assert w.alive(), "worker died with PostgreSQL down:\n" + w.log()[-3000:]
    cluster.start()
    restarted = db_now(cluster, db)
    wait_until(lambda: (heartbeat(cluster, db, w.pid) or 0) > restarted, timeout=60,
               what="the heartbeat to resume after the PostgreSQL restart")

    # Redis restart: the worker lives on, reconnects, and keeps heartbeating.
    r.stop()
    time.sleep(2)
    assert w.alive(), "worker died with Redis down:\n" + w.log()[-3000:]
    r.start()
    wait_until(lambda: len(r.clients()) >= 1, timeout=60,
               what="the worker to reconnect to Redis")
    after = db_now(cluster, db)
    wait_until(lambda: (heartbeat(cluster, db, w.pid) or 0) > after, timeout=30,
               what="the heartbeat after the Redis restart")
    assert w.alive()

    w.signal(15)
    try:
        rc = w.p.wait(30)
    except Exception:
        rc = None
    assert rc == 0, "posthorn-worker exit code after SIGTERM: %r\n%s" % (rc, w.log()[-3000:])


def test_two_workers_two_rows(make_posthorn, pg):
    ph = make_posthorn()
    db = ph.db_url.rsplit("/", 1)[1]
    w1 = ph.worker_proc()
    w2 = ph.worker_proc()
    wait_until(lambda: heartbeat(pg, db, w1.pid) and heartbeat(pg, db, w2.pid), timeout=30,
               what="a workers row for each worker")
    for w in (w1, w2):
        w.signal(15)
    for w in (w1, w2):
        assert w.p.wait(30) == 0


def cpu_ticks(pid):
    """utime + stime of every thread of pid, in clock ticks (/proc/<pid>/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_idle_worker_sleeps(make_posthorn, pg):
    """A worker with nothing to do (no deliveries, webhooks, campaigns) sleeps: over 5 s it
    uses well under a fifth of one core. (Its webhook loop once spun: curl_multi_wait returns
    at once when there is nothing to wait on.) Not a speed figure: a busy loop uses the whole
    core however loaded the machine, an idle worker next to nothing."""
    import os
    ph = make_posthorn(env={"POSTHORN_POLL_INTERVAL": "1s"})
    w = ph.worker_proc()
    db = ph.db_url.rsplit("/", 1)[1]
    wait_until(lambda: pg.psql("SELECT count(*) FROM workers WHERE pid = %d" % w.pid,
                               db=db) == "1", timeout=30, what="the worker's heartbeat row")
    time.sleep(2)                       # start-up done
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), cpu_ticks(w.pid)
    time.sleep(5)
    used = (cpu_ticks(w.pid) - c0) / hz / (time.monotonic() - t0)
    assert used < 0.2, "an idle worker used %.0f%% of a core" % (used * 100)
    assert w.alive()
