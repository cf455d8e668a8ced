"""Pausing a destination through the operator API (POST /v1/destinations/{name}/pause and
/resume): nothing delivered while paused, attempts not consumed, other destinations not
affected, a backlog the worker already holds goes back without using attempts; everything
delivered after resume."""
import time

from mxstack import mx_stack  # noqa: F401 (fixture)


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


def test_pause_with_backlog_held_by_worker(mx_stack):
    n = 20
    st = mx_stack(mx={"backlog.test": "127.0.0.8"}, worker=False,
                  policy="backlog.test connections=1\n")
    peer = st.peer("127.0.0.8", "stall", phase="dot", seconds=0.3)
    name = "mx.backlog.test"
    mids = st.send_batch([st.message_body(["q%d@backlog.test" % i], text="q %d\n" % i)
                          for i in range(n)])
    st.start_worker()
    peer.wait_messages(3, timeout=30)
    st.destination_action(name, "pause")
    time.sleep(5)   # applied within a few seconds; a transaction in flight may finish
    k = len(peer.messages)
    assert k < n, "nothing was held back: %d of %d delivered" % (k, n)
    time.sleep(3)
    assert len(peer.messages) == k, "delivered while paused: %r" % peer.messages[k:]
    held = [st.message(mid)["recipients"][0] for mid in mids]
    waiting = [r for r in held if r["status"] != "delivered"]
    assert len(waiting) == n - k, [r["status"] for r in held]
    for r in waiting:
        assert r["status"] in ("queued", "deferred"), r
        assert r["attempts"] == 0 and not st.attempts(r), r   # the pause used no attempt
    st.destination_action(name, "resume")
    for mid in mids:
        r = st.wait_final(mid, timeout=40)["recipients"][0]
        assert r["status"] == "delivered" and r["attempts"] == 1, r
    assert len(peer.messages) == n
