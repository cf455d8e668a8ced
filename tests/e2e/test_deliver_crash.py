"""Workers dying or stopping in the middle of SMTP deliveries (POSTHORN_DELIVERY=mx):
kill -9 (a new worker brings every recipient to a final state; duplicates at the peer at most
the sessions that were in flight), SIGTERM (exit 0, nothing left `sending`, no duplicate),
and a transaction that outlasts its claim's lease (no second delivery of the same recipient).
"""
import collections
import signal
import time

from harness.posthorn import wait_until
from mxstack import dlv_states, mx_stack  # noqa: F401 (fixture)


def copies(peer):
    """{recipient: acknowledged copies} at the peer."""
    with peer.lock:
        return collections.Counter(r for m in peer.messages for r in m.rcpt_tos)


def test_kill9_worker_mid_delivery(mx_stack):
    n = 60
    st = mx_stack(mx={"k9.test": "127.0.0.4"}, worker=False,
                  policy="k9.test connections=4\nmx.k9.test connections=4\n",
                  env={"POSTHORN_LEASE": "4s"})
    peer = st.peer("127.0.0.4", "stall", phase="dot", seconds=0.3)   # slow accept
    mids = st.send_batch([st.message_body(["k%d@k9.test" % i], text="kill %d\n" % i)
                          for i in range(n)])
    w1 = st.start_worker()
    peer.wait_messages(8, timeout=30)
    with peer.lock:
        in_flight = len([s for s in peer.sessions.values() if s.closed is None])
    w1.kill9()
    w1._expected_exit = True
    assert in_flight >= 1
    w2 = st.start_worker()
    dids = [r["delivery_id"] for mid in mids for r in st.message(mid)["recipients"]]

    def done():
        st.check_alive()
        s = dlv_states(st, dids)
        return s.get("delivered", 0) == n and s
    wait_until(done, timeout=50, interval=0.5, what="every delivery delivered after the kill "
               "(%r)" % (dlv_states(st, dids),))
    got = collections.Counter(r for m in peer.messages + peer.dropped for r in m.rcpt_tos)
    assert set(got) == {"k%d@k9.test" % i for i in range(n)}, set(got) ^ {
        "k%d@k9.test" % i for i in range(n)}
    dups = sum(c - 1 for c in got.values())
    assert dups <= in_flight, "%d duplicates, %d sessions were in flight: %r" % (
        dups, in_flight, {k: c for k, c in got.items() if c > 1})
    assert w2.alive()


def test_dead_worker_on_this_host_is_rescued_before_its_lease(mx_stack):
    """A worker on the same host (same kernel, same PID namespace: workers.host_key) sees at
    its next housekeeping pass that a killed worker's pid is gone, marks it stopped, and queues
    what it held at once; with a 10-minute lease nothing would come back for 10 minutes."""
    n = 30
    st = mx_stack(mx={"rs.test": "127.0.0.4"}, worker=False,
                  policy="rs.test connections=2\nmx.rs.test connections=2\n",
                  env={"POSTHORN_LEASE": "10m"})
    peer = st.peer("127.0.0.4", "stall", phase="dot", seconds=0.3)
    mids = st.send_batch([st.message_body(["r%d@rs.test" % i], text="rescue %d\n" % i)
                          for i in range(n)])
    w1 = st.start_worker()
    peer.wait_messages(4, timeout=30)
    w2 = st.start_worker()         # on the same host; claims nothing while w1 holds all
    held = int(st.sql("SELECT count(*) FROM deliveries WHERE state = 'sending'"))
    assert held > 0
    w1.kill9()
    w1._expected_exit = True
    t0 = time.monotonic()
    dids = [r["delivery_id"] for mid in mids for r in st.message(mid)["recipients"]]

    def done():
        st.check_alive()
        s = dlv_states(st, dids)
        return s.get("delivered", 0) == n and s
    wait_until(done, timeout=40, interval=0.5, what="every delivery delivered after the kill "
               "(%r)" % (dlv_states(st, dids),))
    took = time.monotonic() - t0
    assert took < 60, took      # the lease (600 s) did not have to run out
    assert st.sql("SELECT count(*) FROM workers WHERE pid = %d AND stopped_at IS NOT NULL"
                  % w1.pid) == "1"
    assert "deliveries it held are queued again" in w2.log()
    assert w2.alive()


def test_sigterm_mid_delivery_drains_without_duplicates(mx_stack):
    n = 12
    st = mx_stack(mx={"term.test": "127.0.0.5"}, worker=False,
                  policy="term.test connections=2\n",
                  env={"POSTHORN_SHUTDOWN_GRACE": "15s"})
    peer = st.peer("127.0.0.5", "stall", phase="dot", seconds=0.5)
    mids = st.send_batch([st.message_body(["t%d@term.test" % i], text="term %d\n" % i)
                          for i in range(n)])
    dids = [r["delivery_id"] for mid in mids for r in st.message(mid)["recipients"]]
    w1 = st.start_worker()
    peer.wait_messages(2, timeout=30)
    w1.signal(signal.SIGTERM)
    try:
        rc = w1.p.wait(25)
    except Exception:
        rc = None
    w1._expected_exit = True
    assert rc == 0, "worker exit status after SIGTERM: %r\n%s" % (rc, w1.log()[-3000:])
    states = dlv_states(st, dids)
    assert "sending" not in states, states    # released or recorded, nothing left leased
    assert states.get("delivered", 0) >= 2, states
    delivered_before = states.get("delivered", 0)
    assert len(peer.messages) == delivered_before, (states, peer.messages)
    st.start_worker()
    wait_until(lambda: st.check_alive() or dlv_states(st, dids).get("delivered") == n,
               timeout=40, interval=0.5, what="all delivered after the restart")
    time.sleep(1)
    c = copies(peer)
    assert sorted(c) == sorted("t%d@term.test" % i for i in range(n)), c
    assert max(c.values()) == 1, {k: v for k, v in c.items() if v > 1}


def test_transaction_outlasting_lease_not_delivered_twice(mx_stack):
    # LEASE 4s: jobs are not started in the last second of a claim's lease. Each transaction
    # takes 2.5 s (the peer answers the final dot late, within the DATA-done timeout), one
    # connection at a time: the second message starts at ~2.5 s and ends at ~5 s, after the
    # lease ran out. It must still reach the peer once.
    st = mx_stack(mx={"lease.test": "127.0.0.6"}, worker=False,
                  policy="lease.test connections=1\n",
                  env={"POSTHORN_LEASE": "4s", "POSTHORN_SMTP_DATA_DONE_TIMEOUT": "10s"})
    peer = st.peer("127.0.0.6", "stall", phase="dot", seconds=2.5)
    n = 3
    mids = st.send_batch([st.message_body(["l%d@lease.test" % i], text="lease %d\n" % i)
                          for i in range(n)])
    dids = [r["delivery_id"] for mid in mids for r in st.message(mid)["recipients"]]
    st.start_worker()
    wait_until(lambda: st.check_alive() or dlv_states(st, dids).get("delivered") == n,
               timeout=40, interval=0.5, what="all delivered (%r)" % (dlv_states(st, dids),))
    time.sleep(3)   # a second copy in flight would arrive by now
    c = copies(peer)
    assert max(c.values()) == 1, "delivered more than once: %r; sessions %r" % (
        {k: v for k, v in c.items() if v > 1}, peer.session_list())
    for mid in mids:
        dl = [e for e in st.events(mid) if e["type"] == "delivered"]
        assert len(dl) == 1, dl
