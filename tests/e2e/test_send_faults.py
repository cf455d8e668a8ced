"""Faults while clients post continuously: kill -9 of posthorn-api (every message that got a
202 exists after the restart and reaches `delivered` through a worker), and a PostgreSQL
restart (503s with Retry-After while it is down, then 202 again; every acknowledged message
exists). Private Posthorns; the PostgreSQL test has a private cluster."""
import threading
import time

import requests

import sendlib as sl
from harness.posthorn import wait_until


class Posters:
    """n threads posting one-recipient messages until stopped; records every answer."""

    def __init__(self, st, n=20, tag=None):
        self.st = st
        self.tag = tag or "fault-" + sl.uid()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}          # message id -> recipient
        self.codes = {}
        self.errors = 0          # connection errors (the API was down)
        self.bad = []            # answers other than 202/503
        self.no_retry_after = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, i):
        s = requests.Session()
        k = 0
        while not self.stop.is_set():
            k += 1
            rcpt = "t%d-%d@example.com" % (i, k)
            try:
                r = s.post(self.st.api.base + "/v1/messages", json=sl.msg(tags=[self.tag], to=[rcpt]),
                           headers={"Authorization": "Bearer " + self.st.key}, timeout=15)
            except requests.RequestException:
                with self.lock:
                    self.errors += 1
                s = requests.Session()
                time.sleep(0.05)
                continue
            with self.lock:
                self.codes[r.status_code] = self.codes.get(r.status_code, 0) + 1
                if r.status_code == 202:
                    self.acked[r.json()["id"]] = rcpt
                elif r.status_code == 503:
                    if not r.headers.get("Retry-After", "").isdigit():
                        self.no_retry_after.append(r.text[:200])
                    time.sleep(0.05)
                else:
                    self.bad.append((r.status_code, r.text[:300]))

    def count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a client thread hangs"


def check_all_exist(st, acked):
    db_ids = {row[0] for row in st.db.rows("SELECT id FROM messages")}
    missing = sorted(set(acked) - db_ids)
    assert not missing, "%d acknowledged messages lost, e.g. %s" % (len(missing), missing[:5])
    # and through the API, a sample plus every last one
    for mid in list(acked)[:50] + list(acked)[-50:]:
        g = st.client.get("/v1/messages/" + mid)
        assert g.status_code == 200, (mid, g.status_code)
        assert [x["email"] for x in g.json()["recipients"]] == [acked[mid]]
    n = st.db.one("SELECT count(*) FROM deliveries d JOIN messages m ON m.account_id = d.account_id"
                  " AND m.id = d.message_id WHERE m.id = ANY (%s::text[])"
                  % sl.lit("{" + ",".join(acked) + "}"))
    assert int(n) == len(acked), "acknowledged messages without their delivery"


def test_kill9_api_while_posting(make_posthorn, pg):
    ph = make_posthorn()
    st = sl.Stack(ph, pg)
    p = Posters(st).start()
    try:
        wait_until(lambda: p.count() >= 200, timeout=60, what="200 acknowledged sends")
        st.api.proc.kill9()
        killed_at = p.count()
        time.sleep(0.5)
        st.restart_api()
        wait_until(lambda: p.count() >= killed_at + 100, timeout=60,
                   what="sends acknowledged after the restart")
    finally:
        p.finish()
    assert not p.bad, p.bad[:5]
    assert p.errors > 0, "no client saw the API go away: was it killed?"
    acked = dict(p.acked)
    check_all_exist(st, acked)
    # and each acknowledged message is delivered, once
    w = ph.worker_proc()
    dids = [row[0] for row in st.db.rows(
        "SELECT id FROM deliveries WHERE message_id = ANY (%s::text[])" % sl.lit("{" + ",".join(acked) + "}"))]

    def delivered():
        if not w.alive():
            raise AssertionError("worker exited:\n" + w.log()[-3000:])
        return st.dlv_states(dids).get("delivered", 0) == len(dids)
    wait_until(delivered, timeout=120, interval=0.5, what="%d deliveries delivered" % len(dids))
    files = sl.mail_files(st.mail_dir)
    assert all(files.get(d) == [1] for d in dids), "missing or repeated files"


def test_postgres_restart_while_posting(make_pg, make_posthorn):
    cluster = make_pg()
    ph = make_posthorn(pg_cluster=cluster, env={"POSTHORN_DB_TIMEOUT": "2s"})
    st = sl.Stack(ph, cluster)
    p = Posters(st).start()
    try:
        wait_until(lambda: p.count() >= 200, timeout=60, what="200 acknowledged sends")
        cluster.stop()
        wait_until(lambda: p.codes.get(503, 0) >= 20, timeout=30, what="503s while PostgreSQL is down")
        time.sleep(1)
        cluster.start()
        n = p.count()
        wait_until(lambda: p.count() >= n + 200, timeout=60, what="202s again after the restart")
    finally:
        p.finish()
    assert not p.bad, p.bad[:5]
    assert not p.no_retry_after, p.no_retry_after[:3]
    assert p.codes.get(503, 0) >= 20 and p.codes.get(202, 0) >= 400, p.codes
    check_all_exist(st, dict(p.acked))
