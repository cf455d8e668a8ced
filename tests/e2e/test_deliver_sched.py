"""Scheduling across destinations in POSTHORN_DELIVERY=mx: a dead destination (every
connection refused) does not hold up a healthy one (smtp-sink), and transactional mail jumps
the queue of a destination saturated by broadcast mail (connections=1, a slow peer)."""
import time

from mxstack import dlv_states, mx_stack  # noqa: F401 (fixture)
from harness.posthorn import wait_until


def test_dead_destination_does_not_hold_up_healthy(mx_stack):
    n_dead, n_ok = 30, 50
    st = mx_stack(mx={"dead.test": "127.0.0.2", "healthy.test": "127.0.0.3"}, worker=False,
                  env={"POSTHORN_RETRY_SCHEDULE": "30s", "POSTHORN_MAX_QUEUE_LIFETIME": "120s"})
    # Nothing listens on 127.0.0.2: connection refused, every time.
    sink = st.sink("127.0.0.3")
    base = sink.count()
    # The dead destination's mail is queued first.
    dead = st.send_batch([st.message_body(["d%d@dead.test" % i], text="dead %d\n" % i)
                          for i in range(n_dead)])
    ok = st.send_batch([st.message_body(["h%d@healthy.test" % i], text="ok %d\n" % i)
                        for i in range(n_ok)])
    t0 = time.time()
    st.start_worker()
    sink.wait_count(base + n_ok, timeout=25)
    t_all = time.time() - t0
    print("healthy mail all arrived after %.1fs" % t_all)
    st.check_alive()
    assert t_all < 30, "healthy mail took %.1fs: past the dead one's first retry" % t_all
    # By now no dead delivery was retried: each has at most one attempt.
    dead_ids = [d for mid in dead for d in
                [r["delivery_id"] for r in st.message(mid)["recipients"]]]
    rows = st.sql("SELECT attempts FROM deliveries WHERE id = ANY ('{%s}'::text[])"
                  % ",".join(dead_ids)).split()
    assert rows and all(int(x) <= 1 for x in rows), rows
    ok_ids = [r["delivery_id"] for mid in ok for r in st.message(mid)["recipients"]]
    wait_until(lambda: dlv_states(st, ok_ids).get("delivered") == n_ok, timeout=20,
               what="healthy deliveries recorded delivered (%r)" % dlv_states(st, ok_ids))
    states = dlv_states(st, dead_ids)
    assert set(states) <= {"deferred", "queued", "sending"}, states
    assert sink.count() == base + n_ok


def test_transactional_before_saturating_broadcast(mx_stack):
    n = 200
    st = mx_stack(mx={"slow.test": "127.0.0.4"}, worker=False,
                  policy="slow.test connections=1\nmx.slow.test connections=1\n")
    peer = st.peer("127.0.0.4", "stall", phase="dot", seconds=0.05)   # slow: 50 ms per message
    st.send_batch([st.message_body(["b%d@slow.test" % i], text="broadcast %d\n" % i,
                                   stream="broadcast") for i in range(n)])
    st.start_worker()
    peer.wait_messages(5, timeout=30)
    mid, _ = st.send(["vip@slow.test"], text="password reset\n", stream="transactional")

    def vip_index():
        st.check_alive()
        for i, m in enumerate(list(peer.messages)):
            if "vip@slow.test" in m.rcpt_tos:
                return i + 1
        return None
    pos = wait_until(vip_index, timeout=40, interval=0.1, what="the transactional message")
    print("transactional arrived as #%d of %d; sessions: %r" % (pos, n + 1, peer.session_list()))
    # Generous: it arrives before at least the last 50 broadcast messages queued before it.
    assert pos <= n + 1 - 50, "transactional arrived as #%d of %d" % (pos, n + 1)
    # connections=1 was respected throughout (a session may open while the peer has not yet
    # seen the previous one close: allow a little slack).
    spans = sorted((s.opened, s.closed or time.time()) for s in peer.session_list())
    for (o1, c1), (o2, _c2) in zip(spans, spans[1:]):
        assert o2 >= c1 - 0.5, "two sessions at once: %r" % spans


def test_transactional_passes_a_full_pipeline(mx_stack):
    """Broadcast mail to a slow destination fills everything the worker holds: the SMTP
    engine's bound (2,000 deliveries here), the delivery queue, the render threads and their
    queue, so the claimer waits for room. A transactional message to another destination
    still arrives at once (the express lane claims, renders and hands it over itself), not
    when 100 slow messages have made room (20 s here, and twice over)."""
    n = 3000
    st = mx_stack(mx={"slow.test": "127.0.0.4", "fast.test": "127.0.0.5"}, worker=False,
                  policy="slow.test connections=1\nmx.slow.test connections=1\n",
                  env={"POSTHORN_SMTP_MAX_SESSIONS": "100", "POSTHORN_SHUTDOWN_GRACE": "4s"})
    st.peer("127.0.0.4", "stall", phase="dot", seconds=0.2)   # 5 messages/s
    sink = st.sink("127.0.0.5")
    st.send_batch([st.message_body(["b%d@slow.test" % i], text="broadcast %d\n" % i,
                                   stream="broadcast") for i in range(n)])
    st.start_worker()

    def held():
        st.check_alive()
        return int(st.sql("SELECT count(*) FROM deliveries WHERE state = 'sending'"))
    # 2,000 in the engine, 100 waiting to enter it, 2 batches queued for delivery, the
    # render threads' batches and their queue's: the claimer has no room left
    wait_until(lambda: held() >= 2400, timeout=60, interval=0.2,
               what="the worker to fill its pipeline (%d held)" % held())
    time.sleep(1)
    full = held()
    base = sink.count()
    t0 = time.time()
    mid, _ = st.send(["vip@fast.test"], text="password reset\n", stream="transactional")
    sink.wait_count(base + 1, timeout=60)
    took = time.time() - t0
    print("transactional arrived in %.2fs with %d broadcast deliveries held" % (took, full))
    assert took < 5, "transactional took %.1fs behind a full pipeline" % took
    st.wait_final(mid, timeout=20)
    assert st.statuses(mid) == {"vip@fast.test": "delivered"}
    assert held() >= full - 50   # the broadcast backlog was still there all along


def test_two_workers_each_recipient_once(mx_stack):
    doms = {"w%d.test" % i: "127.0.0.%d" % (20 + i) for i in range(3)}
    st = mx_stack(mx=doms, worker=False)
    peers = {d: st.peer(a, "stall", phase="dot", seconds=0.02) for d, a in doms.items()}
    n = 90
    rcpts = ["p%d@w%d.test" % (i, i % 3) for i in range(n)]
    mids = st.send_batch([st.message_body([r], text="two %s\n" % r) for r in rcpts])
    st.start_worker()
    st.start_worker()
    dids = [r["delivery_id"] for mid in mids for r in st.message(mid)["recipients"]]
    wait_until(lambda: st.check_alive() or dlv_states(st, dids).get("delivered") == n,
               timeout=40, interval=0.5, what="all delivered by two workers")
    time.sleep(1)
    got = [r for p in peers.values() for m in p.messages for r in m.rcpt_tos]
    assert sorted(got) == sorted(rcpts), (len(got), len(rcpts))
    for w in st.workers:
        assert w.alive()
