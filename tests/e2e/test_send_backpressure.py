"""HTTP threads never block on the database (sends are suspended until their commit), 503
with Retry-After at once while PostgreSQL is down (and 202 again after it is back), and 429
for broadcast sends above the broadcast queue limit while transactional sends still pass.
Each test has a private Posthorn; the PostgreSQL one a private cluster too."""
from concurrent.futures import ThreadPoolExecutor

import requests

import sendlib as sl
from harness.posthorn import wait_until


def test_threads_never_block_on_a_locked_table(make_posthorn, pg):
    # 4 HTTP threads, 2 writers: 200 suspended sends must not starve /healthz.
    ph = make_posthorn(env={"POSTHORN_WRITE_TIMEOUT": "120s", "POSTHORN_HTTP_THREADS": "4",
                            "POSTHORN_HTTP_TIMEOUT": "120s"})
    st = sl.Stack(ph, pg)
    tag = "lock-" + sl.uid()
    clients = st.clients()
    lock = sl.TableLock(pg, st.db.name, "messages")
    done = []
    try:
        def send(i):
            r = clients.get().post("/v1/messages", json=sl.msg(tags=[tag], to=["l%d@example.com" % i]),
                                   timeout=180)
            done.append(r.status_code)
            return r

        with ThreadPoolExecutor(200) as ex:
            fs = [ex.submit(send, i) for i in range(200)]
            # every request is in the server (suspended), a writer waits for the lock
            wait_until(lambda: (sl.metric(st.api, "posthorn_http_requests_in_flight") or 0) >= 200,
                       timeout=60, what="200 requests in flight")
            wait_until(lambda: lock.waiters() >= 1, timeout=30, what="a writer waiting for the lock")
            assert done == [], "answered while the table was locked: %r" % done[:5]
            # the HTTP threads still serve
            for _ in range(5):
                h = requests.get(st.api.base + "/healthz", timeout=10)
                assert h.status_code == 200, h.text
            acct = st.client.get("/v1/account", timeout=10)
            assert acct.status_code == 200, acct.text
            assert done == [], "answered while the table was locked: %r" % done[:5]
            lock.release()
            rs = [f.result() for f in fs]
    finally:
        lock.release()
    bad = [(r.status_code, r.text[:200]) for r in rs if r.status_code != 202]
    assert not bad, "%d of 200 not accepted: %r" % (len(bad), bad[:5])
    assert len({r.json()["id"] for r in rs}) == 200
    assert st.db.one("SELECT count(*) FROM messages WHERE '%s' = ANY (tags)" % tag) == "200"


def test_postgres_down_503_then_recovery(make_pg, make_posthorn):
    cluster = make_pg()
    ph = make_posthorn(pg_cluster=cluster, env={"POSTHORN_DB_TIMEOUT": "2s", "POSTHORN_DB_WRITERS": "4"})
    st = sl.Stack(ph, cluster)
    tag = "pgdown-" + sl.uid()
    assert st.client.post("/v1/messages", json=sl.msg(tags=[tag])).status_code == 202
    cluster.stop()
    try:
        for i in range(6):
            # A hang check, not a speed assertion: the answer must come before a client
            # timeout, which requests raises as an exception.
            r = st.client.post("/v1/messages", json=sl.msg(tags=[tag], to=["d%d@example.com" % i]),
                               timeout=10)
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.headers.get("Retry-After", "").isdigit(), r.headers
        # several at once, too (the writer must not queue them behind a dead connection)
        clients = st.clients()
        with ThreadPoolExecutor(20) as ex:
            rs = list(ex.map(lambda i: clients.get().post(
                "/v1/messages", json=sl.msg(tags=[tag], to=["p%d@example.com" % i]), timeout=10),
                range(20)))
        assert {r.status_code for r in rs} == {503}, [(r.status_code, r.text[:100]) for r in rs]
        assert st.api.alive()
        h = requests.get(st.api.base + "/healthz", timeout=10)
        assert h.status_code == 200
    finally:
        cluster.start()

    # Recovery: once /readyz sees PostgreSQL again, every send is accepted (no writer is
    # left on a connection from before the restart that fails the next request it takes).
    wait_until(lambda: requests.get(st.api.base + "/readyz", timeout=10).status_code == 200,
               timeout=60, interval=0.5, what="/readyz 200 after PostgreSQL is back")
    # Enough sends, one after the other and then at once, that every writer thread takes some.
    first = None
    for i in range(20):
        r = st.client.post("/v1/messages", json=sl.msg(tags=[tag], to=["a%d@example.com" % i]),
                           timeout=10)
        assert r.status_code == 202, ("send %d after recovery" % i, r.status_code, r.text)
        first = first or r.json()["id"]
    clients = st.clients()
    with ThreadPoolExecutor(20) as ex:
        rs = list(ex.map(lambda i: clients.get().post(
            "/v1/messages", json=sl.msg(tags=[tag], to=["c%d@example.com" % i]), timeout=10),
            range(20)))
    assert [r.status_code for r in rs] == [202] * 20, [(r.status_code, r.text[:100]) for r in rs]
    assert st.client.get("/v1/messages/" + first).status_code == 200


def test_queue_limit_holds_broadcast_back_first(make_posthorn, pg):
    ph = make_posthorn(env={"POSTHORN_QUEUE_LIMIT_BROADCAST": "5", "POSTHORN_QUEUE_LIMIT": "1000"})
    st = sl.Stack(ph, pg)   # no worker: deliveries stay queued
    c = st.client
    for i in range(6):
        assert c.post("/v1/messages", json=sl.msg(to=["q%d@example.com" % i])).status_code == 202

    def refused():
        r = c.post("/v1/messages", json=sl.msg(stream="broadcast", to=["b@example.com"]))
        assert r.status_code in (202, 429), (r.status_code, r.text)
        return r.status_code == 429 and [r]   # (a 4xx Response is falsy)
    r, = wait_until(refused, timeout=30, interval=0.5, what="broadcast refused (depth refreshed)")
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert r.headers["Content-Type"].startswith("application/problem+json")
    n = int(st.db.one("SELECT count(*) FROM messages"))
    t = c.post("/v1/messages", json=sl.msg(stream="transactional", to=["t@example.com"]))
    assert t.status_code == 202, t.text
    r = c.post("/v1/messages", json=sl.msg(stream="broadcast", to=["b2@example.com"]))
    assert r.status_code == 429
    assert int(st.db.one("SELECT count(*) FROM messages")) == n + 1, "a refused broadcast was stored"
    # In a batch, broadcast items are refused with 429 each; transactional items pass.
    b = c.post("/v1/messages/batch", json={"messages": [sl.msg(stream="broadcast"),
                                                        sl.msg(to=["t2@example.com"])]})
    assert b.status_code == 200, b.text
    d = b.json()["data"]
    assert d[0]["error"]["status"] == 429 and d[1]["status"] == "queued", d
    # Cancelling frees the queue: broadcast passes again once the depth is refreshed.
    ids = [m[0] for m in st.db.rows("SELECT id FROM messages")]
    for mid in ids:
        assert c.delete("/v1/messages/" + mid).status_code == 200

    def accepted():
        r = c.post("/v1/messages", json=sl.msg(stream="broadcast", to=["b3@example.com"]))
        assert r.status_code in (202, 429), (r.status_code, r.text)
        return r.status_code == 202
    wait_until(accepted, timeout=30, interval=0.5, what="broadcast accepted after the queue drained")
