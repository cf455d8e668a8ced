"""Webhook dispatch is woken through Redis, not only by polling: event writers (the API's
accept path and cancels, the worker's outcome recorder and expiry, tracking, campaign
expansion, webhook creation) bump the ph:events counter and each worker's dispatcher reads it every 100 ms. With
POSTHORN_POLL_INTERVAL at 60 s, a new endpoint is still taken up at once and an idle one
still gets new events within a second or two. Without Redis they poll as before."""
import os
import tempfile

import pytest

import sendlib as sl
from harness import posthorn as hph
from harness.webhook_receiver import WebhookReceiver

RX_HOST = "127.0.0.2"


@pytest.fixture
def rx():
    r = WebhookReceiver(host=RX_HOST)
    yield r
    r.stop()


def test_new_and_idle_endpoints_are_woken_not_polled(tmp_root, pg, redis, spec, rx):
    wd = tempfile.mkdtemp(prefix="ph-whwake-", dir=tmp_root)
    env = {"POSTHORN_WEBHOOK_ALLOW_CIDRS": "%s/32" % RX_HOST,
           "POSTHORN_POLL_INTERVAL": "60s", "POSTHORN_LEASE": "10m"}
    dbname = "ph_whwake_%d" % os.getpid()
    p = hph.Posthorn(wd, pg.fresh_database(dbname), redis.url, env=env, spec=spec)
    try:
        p.migrate()
        p.api_proc()
        p.worker_proc()
        aid = p.create_account("wh-wake")
        c = p.client(p.create_key(aid, ("send", "read", "admin"), rate=1000))
        # the worker's first claim of endpoints has happened (none yet): the next periodic
        # one is a minute away, so only a wake-up can take the new endpoint up quickly
        import time
        time.sleep(2)
        path = "/wake"
        r = c.post("/v1/webhooks", json={"url": rx.url(path),
                                         "events": ["delivered", "cancelled", "expired"]})
        assert r.status_code == 201, r.text
        rx.set_secret(path, r.json()["secret"])
        t0 = time.monotonic()
        r = c.post("/v1/messages", json=sl.msg(to=["one@example.com"]))
        assert r.status_code == 202, r.text
        hph.wait_until(lambda: len(rx.delivered(path)) >= 1, timeout=15,
                       what="the first delivered event (a poll would take 60 s)")
        first = time.monotonic() - t0
        # now the endpoint is idle, waiting for events until its next poll a minute away
        time.sleep(2)
        t1 = time.monotonic()
        r = c.post("/v1/messages", json=sl.msg(to=["two@example.com"]))
        assert r.status_code == 202, r.text
        hph.wait_until(lambda: len(rx.delivered(path)) >= 2, timeout=15,
                       what="the second delivered event (a poll would take 60 s)")
        second = time.monotonic() - t1
        assert [e["recipient"] for e in rx.delivered(path)] == ["one@example.com", "two@example.com"]
        assert all(q.sig_ok for q in rx.requests(path))
        # a cancel through the API, and an expiry by the worker's housekeeping
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        mids = []
        for to in ("three@example.com", "four@example.com"):
            r = c.post("/v1/messages", json=sl.msg(to=[to], send_at=later))
            assert r.status_code == 202, r.text
            mids.append(r.json()["id"])
        time.sleep(2)

        def events(kind):
            return [e for e in rx.delivered(path) if e["type"] == kind]
        t2 = time.monotonic()
        assert c.delete("/v1/messages/%s" % mids[0]).status_code == 200
        hph.wait_until(lambda: events("cancelled"), timeout=15,
                       what="the cancelled event (a poll would take 60 s)")
        cancel = time.monotonic() - t2
        time.sleep(2)
        t3 = time.monotonic()
        pg.psql("UPDATE deliveries SET expires_at = now() WHERE message_id = '%s'" % mids[1],
                db=dbname)
        hph.wait_until(lambda: events("expired"), timeout=15,
                       what="the expired event (a poll would take 60 s)")
        expiry = time.monotonic() - t3   # housekeeping runs every 2 s
        assert [e["message_id"] for e in events("cancelled")] == mids[:1]
        assert [e["message_id"] for e in events("expired")] == mids[1:]
        print("webhook latency: first %.2f s, idle endpoint %.2f s, cancel %.2f s, expiry "
              "%.2f s" % (first, second, cancel, expiry))
    finally:
        codes = p.stop_all()
    assert all(c_ in (0, None) for c_ in codes.values()), codes
