"""The API wakes idle workers through Redis: with POSTHORN_POLL_INTERVAL at 60 s, a message
posted through the API is delivered within seconds (Redis outages are covered by the worker
tests: it falls back to polling)."""
import time

import sendlib as sl
from harness.posthorn import wait_until


def test_posted_message_wakes_an_idle_worker(make_posthorn, pg):
    ph = make_posthorn(env={"POSTHORN_POLL_INTERVAL": "60s", "POSTHORN_DELIVERY": "file"})
    st = sl.Stack(ph, pg)
    w = ph.worker_proc()
    # Let the worker settle into its idle wait (its first polls find nothing to do).
    wait_until(lambda: st.db.one("SELECT count(*) FROM workers WHERE stopped_at IS NULL") != "0",
               timeout=20, what="worker heartbeat")
    time.sleep(2)
    r = st.client.post("/v1/messages", json=sl.msg(to=["wake@example.com"]))
    assert r.status_code == 202, r.text
    did = r.json()["recipients"][0]["delivery_id"]
    # Far sooner than the 60 s poll: the wake-up, not the poll, delivered it.
    sl.wait_files(st.mail_dir, [did], timeout=10, procs=[w])
    assert w.stop() == 0
