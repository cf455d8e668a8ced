"""Operating the SMTP engine through the operator API and signals: "retry now" for a
destination, a dead destination (listed dead, later mail deferred without a connection, retry
forgets it), SIGHUP reloading the destination policy (a bad file keeps the old one). Pausing:
test_deliver_pause.py; worker crashes and shutdown: test_deliver_crash.py."""
import signal
import time

from harness.posthorn import wait_until
from mxstack import dlv_states, mx_stack  # noqa: F401 (fixture)


def dest_entry(st, name):
    for d in st.destinations():
        if d["name"] == name:
            return d
    return None


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


def test_dead_destination_listed_and_skipped(mx_stack):
    st = mx_stack(mx={"gone.test": "127.0.0.7"},
                  policy="gone.test dead_after=1s dead_for=60s\n",
                  env={"POSTHORN_RETRY_SCHEDULE": "1s", "POSTHORN_MAX_QUEUE_LIFETIME": "60s"})
    name = "mx.gone.test"
    mid, _ = st.send(["ann@gone.test"])

    def dead():
        st.check_alive()
        e = dest_entry(st, name)
        return e if e is not None and e["state"] == "dead" else None
    e = wait_until(dead, timeout=30, interval=0.5, what="%s listed dead (%r)" % (
        name, st.destinations()))
    assert e["last_error"], e
    # Dead: later deliveries are deferred at once, without a connection.
    peer = st.peer("127.0.0.7")
    mid2, _ = st.send(["bob@gone.test"])
    st.wait_event(mid2, "deferred", timeout=20)
    assert peer.connections() == 0, peer.events
    # An operator retry forgets the dead state: both go out now.
    st.destination_action(name, "retry")
    for m in (mid, mid2):
        assert st.wait_final(m, timeout=30)["recipients"][0]["status"] == "delivered"
    assert len(peer.messages) >= 1


def test_sighup_reloads_policy(mx_stack):
    st = mx_stack(mx={"hup.test": "127.0.0.5"}, policy="* tls=may\nhup.test tls=require\n",
                  env={"POSTHORN_RETRY_SCHEDULE": "2s"})
    peer = st.peer("127.0.0.5")   # no STARTTLS
    mid, _ = st.send(["ann@hup.test"])
    st.wait_event(mid, "deferred", timeout=20)
    assert not peer.messages
    # A bad file on SIGHUP: the worker keeps its policy (and lives).
    with open(st.policy_path, "w") as f:
        f.write("hup.test tls=sometimes connections=-1\n")
    st.worker.signal(signal.SIGHUP)
    time.sleep(3)
    st.check_alive()
    assert not peer.messages
    with open(st.policy_path, "w") as f:
        f.write("* tls=may\n")
    st.worker.signal(signal.SIGHUP)
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    assert len(peer.messages) == 1
    assert st.worker.alive()


def test_rate_per_minute_throttles(mx_stack):
    st = mx_stack(mx={"rate.test": "127.0.0.9"}, worker=False,
                  policy="rate.test rate=1\nmx.rate.test rate=1\n")
    peer = st.peer("127.0.0.9")
    mids = st.send_batch([st.message_body(["r%d@rate.test" % i], text="rate %d\n" % i)
                          for i in range(3)])
    st.start_worker()
    peer.wait_messages(1, timeout=20)
    time.sleep(4)
    # One a minute: the other two wait (no attempt used up, nothing bounced).
    assert len(peer.messages) == 1, peer.messages
    for mid in mids:
        r = st.message(mid)["recipients"][0]
        assert r["status"] in ("delivered", "queued", "deferred", "sending"), r
    e = dest_entry(st, "mx.rate.test")
    assert e is not None and e["state"] in ("throttled", "active"), st.destinations()
    st.check_alive()


def test_cancel_deferred_message_never_sent(mx_stack):
    st = mx_stack(mx={"cancel.test": "127.0.0.10"}, env={"POSTHORN_RETRY_SCHEDULE": "2s"})
    mid, _ = st.send(["ann@cancel.test"])   # nothing listens yet: deferred
    st.wait_event(mid, "deferred", timeout=20)
    r = st.client.delete("/v1/messages/" + mid)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body["recipients"][0]["status"] in ("cancelled", "sending"), body
    peer = st.peer("127.0.0.10")
    rc = st.wait_final(mid, timeout=20)["recipients"][0]
    if body["cancelled"] == 1:
        assert rc["status"] == "cancelled", rc
        time.sleep(4)   # two retry periods
        assert not peer.messages, peer.messages
