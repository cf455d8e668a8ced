"""Operating the SMTP engine: pausing a destination through the operator API (nothing
delivered while paused, attempts not consumed; delivered after resume), kill -9 of a worker in
the middle of deliveries (a new worker brings every recipient to a final state; duplicates at
the peer at most the sessions that were in flight), SIGHUP reloading the destination policy."""
import collections
import signal
import time

from harness.posthorn import wait_until
from mxstack import dlv_states, mx_stack  # noqa: F401 (fixture)


def dest_entry(st, name):
    for d in st.destinations():
        if d["name"] == name:
            return d
    return None


def test_pause_and_resume_destination(mx_stack):
    st = mx_stack(mx={"pause.test": "127.0.0.2", "other.test": "127.0.0.3"})
    peer = st.peer("127.0.0.2")
    other = st.peer("127.0.0.3")
    name = "mx.pause.test"
    mid0, _ = st.send(["first@pause.test"])
    assert st.wait_final(mid0)["recipients"][0]["status"] == "delivered"

    p = st.destination_action(name, "pause").json()
    assert p["name"] == name and p["paused"] is True and p["state"] == "paused", p
    e = dest_entry(st, name)
    assert e is not None and e["paused"] is True and e["state"] == "paused", st.destinations()
    time.sleep(4)   # workers apply a pause within a few seconds
    before = len(peer.messages)
    mids = [st.send(["p%d@pause.test" % i], text="paused %d\n" % i)[0] for i in range(5)]
    mid_other, _ = st.send(["o@other.test"])
    # Another destination is not affected.
    assert st.wait_final(mid_other)["recipients"][0]["status"] == "delivered"
    time.sleep(4)
    assert len(peer.messages) == before, peer.messages[before:]
    for mid in mids:
        r = st.message(mid)["recipients"][0]
        assert r["status"] in ("queued", "deferred"), r
        assert r["attempts"] == 0 and not st.attempts(r), r   # no attempt consumed
    assert not [e for mid in mids for e in st.events(mid) if e["type"] in ("delivered", "bounced",
                                                                          "expired")]

    r = st.destination_action(name, "resume").json()
    assert r["paused"] is False, r
    for mid in mids:
        r = st.wait_final(mid, timeout=30)["recipients"][0]
        assert r["status"] == "delivered", r
        assert r["attempts"] == 1 and len(st.attempts(r)) == 1, r
    assert len(peer.messages) == before + 5
    assert len(other.messages) == 1


def test_retry_destination_now(mx_stack):
    st = mx_stack(mx={"later.test": "127.0.0.6"}, env={"POSTHORN_RETRY_SCHEDULE": "60s"})
    name = "mx.later.test"
    # Nothing listens yet: connection refused, deferred for 60 s.
    mid, _ = st.send(["ann@later.test"])
    st.wait_event(mid, "deferred", timeout=20)
    wait_until(lambda: st.recipient(mid, "ann@later.test")["status"] == "deferred", timeout=10)
    peer = st.peer("127.0.0.6")
    r = st.destination_action(name, "retry").json()
    assert r["name"] == name and r["retried"] >= 1, r
    rc = st.wait_final(mid, timeout=20)["recipients"][0]
    assert rc["status"] == "delivered", rc
    assert [a["outcome"] for a in st.attempts(rc)] == ["deferred", "delivered"], rc
    assert len(peer.messages) == 1


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


def test_sighup_reloads_policy(mx_stack):
    st = mx_stack(mx={"hup.test": "127.0.0.5"}, policy="* tls=may\nhup.test tls=require\n",
                  env={"POSTHORN_RETRY_SCHEDULE": "2s"})
    peer = st.peer("127.0.0.5")   # no STARTTLS
    mid, _ = st.send(["ann@hup.test"])
    st.wait_event(mid, "deferred", timeout=20)
    assert not peer.messages
    with open(st.policy_path, "w") as f:
        f.write("* tls=may\n")
    st.worker.signal(signal.SIGHUP)
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    assert len(peer.messages) == 1
    assert st.worker.alive()
