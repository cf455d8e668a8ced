"""Webhooks end to end: registration rules, then real POSTs from two posthorn-workers
(POSTHORN_DELIVERY=file, so messages get `queued` and `delivered` events) to a real HTTP
receiver on 127.0.0.2 that verifies every signature with its own HMAC code and answers from
per-path scripts. One Posthorn (API + two workers) serves the whole module; each test uses
its own account and receiver path. Time settings are seconds (retry schedule 1s)."""
import json
import os
import time

import pytest

import sendlib as sl
from harness import dns as hdns
from harness import posthorn as hph
from harness.webhook_receiver import WebhookReceiver

RX_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def rx():
    r = WebhookReceiver(host=RX_HOST)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def dnsd(tmp_root):
    d = hdns.Dnsmasq(os.path.join(tmp_root, "wh-dns"),
                     hosts=[("hooks.public.test", RX_HOST), ("intranet.private.test", "10.0.0.1"),
                            ("mixed.private.test", RX_HOST, "10.0.0.1")])
    hph.register_log("dnsmasq (webhooks)", d.log_path)
    yield d
    d.destroy()


@pytest.fixture(scope="module")
def whph(tmp_root, pg, redis, spec, dnsd, rx):
    """API + two workers with short webhook timings."""
    import tempfile
    wd = tempfile.mkdtemp(prefix="ph-wh-", dir=tmp_root)
    env = {"POSTHORN_WEBHOOK_ALLOW_CIDRS": "%s/32" % RX_HOST,
           "POSTHORN_WEBHOOK_RETRY_SCHEDULE": "1s",
           "POSTHORN_WEBHOOK_TIMEOUT": "5s",
           "POSTHORN_WEBHOOK_DISABLE_AFTER": "8s",
           "POSTHORN_DNS_SERVER": dnsd.server,
           "POSTHORN_POLL_INTERVAL": "1s",
           "POSTHORN_LEASE": "30s"}
    p = hph.Posthorn(wd, pg.fresh_database("ph_webhooks_%d" % os.getpid()), redis.url, env=env,
                     spec=spec)
    try:
        p.migrate()
        p.api_proc()
        p.workers = [p.worker_proc(), p.worker_proc()]
    except Exception:
        p.stop_all()
        raise
    yield p
    codes = p.stop_all()
    assert all(c in (0, None) for c in codes.values()), codes


class Acc:
    def __init__(self, ph, name):
        self.id = ph.create_account(name)
        self.key = ph.create_key(self.id, ("send", "read", "admin"), rate=1000)
        self.client = ph.client(self.key)


_n = [0]


@pytest.fixture
def acc(whph, request):
    _n[0] += 1
    return Acc(whph, "wh-%s-%d" % (request.node.name[:30], _n[0]))


def create(c, url, events=("*",), **kw):
    body = {"url": url, "events": list(events)}
    body.update(kw)
    r = c.post("/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def send(c, n=1, prefix="r"):
    ids = []
    for i in range(n):
        r = c.post("/v1/messages", json=sl.msg(to=["%s%d@example.com" % (prefix, i)],
                                               tags=["wh"], metadata={"i": str(i)}))
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def all_events(c):
    return sl.drain_events(c, None, 1000)[0]


def wait_delivered(rx, path, n, timeout=30):
    hph.wait_until(lambda: len(rx.delivered(path)) >= n, timeout=timeout,
                   what="%d events delivered to %s" % (n, path))
    return rx.delivered(path)


def check_signed(rx, path):
    reqs = rx.requests(path)
    assert reqs and all(r.sig_ok for r in reqs), reqs
    for r in reqs:
        assert r.headers.get("content-type") == "application/json"
        assert r.headers.get("user-agent") == "Posthorn"
        assert r.webhook_id.startswith("msg_")
    return reqs


def attempt_log(c, wid, n):
    """The attempt log once it holds n attempts (the worker logs after reading the answer)."""
    def get():
        return c.get("/v1/webhooks/%s/deliveries" % wid).json()["data"]
    hph.wait_until(lambda: len(get()) >= n, timeout=20, what="%d attempts logged" % n)
    return get()


def order_key(evt_id):
    _, xid, seq = evt_id.split("_")
    return (int(xid), int(seq))


# --- registration ------------------------------------------------------------------------------
def test_register_get_list_patch_delete(whph, acc, rx):
    c = acc.client
    w = create(c, rx.url("/reg"), events=["delivered", "bounced"], description="orders")
    assert w["id"].startswith("whk_") and w["state"] == "enabled"
    assert w["secret"].startswith("whsec_") and len(w["secret"]) == 6 + 44
    assert w["events"] == ["delivered", "bounced"] and w["description"] == "orders"
    g = c.get("/v1/webhooks/" + w["id"])
    assert g.status_code == 200 and "secret" not in g.json()
    assert w["secret"] not in g.text
    lst = c.get("/v1/webhooks").json()
    assert [x["id"] for x in lst["data"]] == [w["id"]] and w["secret"] not in json.dumps(lst)
    # by name resolved through POSTHORN_DNS_SERVER to the allowed receiver address
    w2 = create(c, "http://hooks.public.test:%d/reg2" % rx.port)
    page = c.get("/v1/webhooks", params={"limit": 1}).json()
    assert page["data"][0]["id"] == w2["id"] and page["next_cursor"]
    page2 = c.get("/v1/webhooks", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert page2["data"][0]["id"] == w["id"] and page2["next_cursor"] is None
    p = c.patch("/v1/webhooks/" + w["id"], json={"events": ["*"], "description": None,
                                                 "state": "disabled"})
    assert p.status_code == 200, p.text
    assert p.json()["events"] == ["*"] and p.json()["description"] is None
    assert p.json()["state"] == "disabled" and p.json()["disabled_reason"]
    p = c.patch("/v1/webhooks/" + w["id"], json={"state": "enabled"})
    assert p.json()["state"] == "enabled" and p.json()["disabled_reason"] is None
    # scopes: read may list, not change
    ro = whph.client(whph.create_key(acc.id, ("read",)))
    assert ro.get("/v1/webhooks/" + w["id"]).status_code == 200
    assert ro.post("/v1/webhooks", json={"url": rx.url("/x"), "events": ["*"]}).status_code == 403
    assert ro.delete("/v1/webhooks/" + w["id"]).status_code == 403
    # another account sees nothing
    other = Acc(whph, "wh-other")
    for m, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test"),
                    ("GET", "/deliveries"), ("POST", "/replay")):
        kw = {"json": {"state": "enabled"}} if m == "PATCH" else {}
        if path == "/replay":
            kw = {"json": {"after": "evt_1_1"}}
        r = other.client.request(m, "/v1/webhooks/" + w["id"] + path, **kw)
        assert r.status_code == 404, (m, path, r.status_code, r.text)
    assert other.client.get("/v1/webhooks").json()["data"] == []
    assert c.delete("/v1/webhooks/" + w2["id"]).status_code == 204
    assert c.get("/v1/webhooks/" + w2["id"]).status_code == 404
    assert c.delete("/v1/webhooks/" + w2["id"]).status_code == 404


@pytest.mark.parametrize("url,why", [
    ("ftp://%s/x" % RX_HOST, "http"),
    ("javascript:alert(1)", "http"),
    ("file:///etc/passwd", "http"),
    ("gopher://%s:70/x" % RX_HOST, "http"),
    ("http://user:pw@%s/x" % RX_HOST, "user"),
    ("http://%s/x\r\nX-Injected: 1" % RX_HOST, "control"),
    ("http://%s/%s" % (RX_HOST, "a" * 2100), "2048"),
    ("http://%s/a b" % RX_HOST, "spaces"),
    ("http:///nohost", "host"),
    ("http://127.0.0.3/x", "loopback"),            # loopback outside the allow list
    ("http://[::1]/x", "loopback"),
    ("http://169.254.169.254/latest", "refused"),
    ("http://2130706433/x", "host"),               # decimal IPv4 spelling
    ("http://intranet.private.test/x", "10.0.0.1 (private)"),   # resolves to 10.0.0.1
    ("http://mixed.private.test/x", "10.0.0.1 (private)"),      # one address of two
    ("http://nxdomain.private.test/x", "resolved"),
])
def test_bad_urls_refused(whph, acc, url, why):
    r = acc.client.post("/v1/webhooks", json={"url": url, "events": ["*"]})
    assert r.status_code == 422, (url, r.status_code, r.text)
    assert "url" in sl.fields(r)
    assert why in r.text, r.text


def test_bad_bodies_refused(whph, acc, rx):
    c = acc.client
    for body, field in (({"url": rx.url("/b"), "events": ["sent"]}, "events"),
                        ({"url": rx.url("/b"), "events": []}, "events"),
                        ({"url": rx.url("/b"), "events": ["*", "queued"]}, "events"),
                        ({"url": rx.url("/b"), "events": ["queued", "queued"]}, "events"),
                        ({"url": rx.url("/b")}, "events"),
                        ({"events": ["*"]}, "url"),
                        ({"url": 5, "events": ["*"]}, "url"),
                        ({"url": rx.url("/b"), "events": ["*"], "secret": "x"}, "secret"),
                        ({"url": rx.url("/b"), "events": ["*"], "description": "x" * 300},
                         "description")):
        r = c.post("/v1/webhooks", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in sl.fields(r), (body, r.text)
    # both errors at once, with no DNS look-up needed to tell
    r = c.post("/v1/webhooks", json={"url": "file:///x", "events": ["nope"]})
    assert r.status_code == 422 and set(sl.fields(r)) >= {"url", "events"}, r.text
    w = create(c, rx.url("/b"))
    for body, field in (({}, "url"), ({"state": "paused"}, "state"),
                        ({"url": "http://10.1.2.3/"}, "url"), ({"events": ["x"]}, "events")):
        r = c.patch("/v1/webhooks/" + w["id"], json=body)
        assert r.status_code == 422 and field in sl.fields(r), (body, r.text)
    for body in ({}, {"after": "nope"}, {"after": "evt_1_999999999"}):
        r = c.post("/v1/webhooks/%s/replay" % w["id"], json=body)
        assert r.status_code == 422 and "after" in sl.fields(r), (body, r.text)


# --- dispatch ----------------------------------------------------------------------------------
def test_events_arrive_in_order_signed_as_in_the_feed(whph, acc, rx):
    path = "/order"
    w = create(acc.client, rx.url(path))
    rx.set_secret(path, w["secret"])
    mids = send(acc.client, 3)
    got = wait_delivered(rx, path, 6)
    check_signed(rx, path)
    assert len(got) == 6, got
    ids = [e["id"] for e in got]
    assert ids == sorted(ids, key=order_key) and len(set(ids)) == 6
    for m in mids:
        types = [e["type"] for e in got if e["message_id"] == m]
        assert types == ["queued", "delivered"], types
    # each event is the object GET /v1/events answers
    feed = {e["id"]: e for e in all_events(acc.client)}
    for e in got:
        assert e == feed[e["id"]], (e, feed.get(e["id"]))
    assert got[0]["tags"] == ["wh"] and "i" in got[0]["metadata"]
    d = attempt_log(acc.client, w["id"], len(rx.requests(path)))
    assert d and all(x["status_code"] == 200 and x["error"] is None for x in d)
    assert sum(x["event_count"] for x in d) == 6


def test_filter_only_matching_types(whph, acc, rx, pg):
    path = "/filter"
    w = create(acc.client, rx.url(path), events=["delivered"])
    rx.set_secret(path, w["secret"])
    none = create(acc.client, rx.url("/filter-none"), events=["bounced"])
    send(acc.client, 2, prefix="f")
    wait_delivered(rx, path, 2)
    time.sleep(1.5)
    assert [e["type"] for e in rx.delivered(path)] == ["delivered", "delivered"]
    check_signed(rx, path)
    assert rx.requests("/filter-none") == []
    # an endpoint whose filter matches nothing still moves its cursor past what it skipped
    last = all_events(acc.client)[-1]["id"]
    db = whph.db_url.rsplit("/", 1)[1]
    hph.wait_until(lambda: "evt_" + pg.psql("SELECT cursor_xid || '_' || cursor_id FROM webhooks"
                                            " WHERE id = '%s'" % none["id"], db=db) == last,
                   timeout=10, what="cursor of a non-matching filter at the last event")


def test_retries_send_identical_bodies(whph, acc, rx):
    path = "/retry"
    rx.script(path, [500, 503, 500])
    w = create(acc.client, rx.url(path), events=["queued"])
    rx.set_secret(path, w["secret"])
    send(acc.client, 1, prefix="x")
    got = wait_delivered(rx, path, 1, timeout=40)
    reqs = sorted(check_signed(rx, path), key=lambda r: r.t)
    assert [r.status for r in reqs] == [500, 503, 500, 200], reqs
    assert len({r.webhook_id for r in reqs}) == 1
    assert len({r.body for r in reqs}) == 1, "retries of one webhook-id must be byte-identical"
    for a, b in zip(reqs, reqs[1:]):
        assert b.t - a.t >= 0.9, "retried before the 1s schedule"
    assert [e["type"] for e in got] == ["queued"]
    log = attempt_log(acc.client, w["id"], 4)
    assert [(x["attempt"], x["status_code"]) for x in log] == [(4, 200), (3, 500), (2, 503),
                                                               (1, 500)], log
    assert all(x["webhook_id"] == reqs[0].webhook_id for x in log)
    assert log[1]["error"] == "HTTP 500" and log[1]["response"] == "ok"
    page = acc.client.get("/v1/webhooks/%s/deliveries" % w["id"], params={"limit": 3}).json()
    rest = acc.client.get("/v1/webhooks/%s/deliveries" % w["id"],
                          params={"limit": 3, "cursor": page["next_cursor"]}).json()
    assert [x["attempt"] for x in page["data"] + rest["data"]] == [4, 3, 2, 1]
    hph.wait_until(lambda: acc.client.get("/v1/webhooks/" + w["id"]).json()["last_success_at"],
                   timeout=20, what="success recorded")
    g = acc.client.get("/v1/webhooks/" + w["id"]).json()
    assert g["state"] == "enabled" and g["failing_since"] is None


def test_retry_after_honoured(whph, acc, rx):
    path = "/429"
    rx.script(path, [(429, {"Retry-After": "3"})])
    w = create(acc.client, rx.url(path), events=["queued"])
    rx.set_secret(path, w["secret"])
    send(acc.client, 1, prefix="y")
    wait_delivered(rx, path, 1)
    reqs = sorted(check_signed(rx, path), key=lambda r: r.t)
    assert [r.status for r in reqs] == [429, 200]
    assert reqs[1].t - reqs[0].t_end >= 2.8, reqs[1].t - reqs[0].t_end
    assert reqs[0].body == reqs[1].body and reqs[0].webhook_id == reqs[1].webhook_id


def test_410_disables_and_patch_reenables(whph, acc, rx):
    path = "/gone"
    rx.script(path, [410])
    w = create(acc.client, rx.url(path), events=["queued"])
    rx.set_secret(path, w["secret"])
    send(acc.client, 1, prefix="g")
    hph.wait_until(lambda: acc.client.get("/v1/webhooks/" + w["id"]).json()["state"] == "disabled",
                   timeout=30, what="webhook disabled by 410")
    g = acc.client.get("/v1/webhooks/" + w["id"]).json()
    assert g["disabled_reason"] == "410 Gone from endpoint"
    time.sleep(2.5)
    assert [r.status for r in rx.requests(path)] == [410], "a disabled endpoint got more POSTs"
    p = acc.client.patch("/v1/webhooks/" + w["id"], json={"state": "enabled"})
    assert p.json()["state"] == "enabled" and p.json()["disabled_reason"] is None
    got = wait_delivered(rx, path, 1)
    reqs = sorted(rx.requests(path), key=lambda r: r.t)
    assert reqs[0].webhook_id == reqs[1].webhook_id and reqs[0].body == reqs[1].body
    assert [e["type"] for e in got] == ["queued"]


def test_redirect_is_a_failure_and_not_followed(whph, acc, rx):
    path = "/redir"
    rx.script(path, [(302, {"Location": rx.url("/elsewhere")})])
    w = create(acc.client, rx.url(path), events=["queued"])
    rx.set_secret(path, w["secret"])
    send(acc.client, 1, prefix="z")
    wait_delivered(rx, path, 1)
    assert [r.status for r in sorted(rx.requests(path), key=lambda r: r.t)] == [302, 200]
    assert rx.requests("/elsewhere") == []
    log = attempt_log(acc.client, w["id"], 2)
    assert log[-1]["status_code"] == 302 and "redirect" in log[-1]["error"], log


def test_disabled_after_failing_too_long(whph, acc, rx):
    path = "/dead"
    rx.script(path, [503] * 50)
    w = create(acc.client, rx.url(path), events=["queued"])
    send(acc.client, 1, prefix="d")
    hph.wait_until(lambda: acc.client.get("/v1/webhooks/" + w["id"]).json()["state"] == "disabled",
                   timeout=30, what="webhook disabled after POSTHORN_WEBHOOK_DISABLE_AFTER")
    g = acc.client.get("/v1/webhooks/" + w["id"]).json()
    assert "no successful delivery for 8s" in g["disabled_reason"], g
    assert "HTTP 503" in g["disabled_reason"]
    # re-enabled, the endpoint is dispatched again at once (its worker still holds the lease)
    rx.script(path, [])
    p = acc.client.patch("/v1/webhooks/" + w["id"], json={"state": "enabled"})
    assert p.json()["state"] == "enabled" and p.json()["failing_since"] is None
    got = wait_delivered(rx, path, 1, timeout=15)
    assert [e["type"] for e in got] == ["queued"]


def test_two_workers_one_dispatcher_per_endpoint(whph, acc, rx, pg):
    paths = ["/two-a", "/two-b", "/two-c"]
    hooks = []
    for p in paths:
        rx.script(p, [(200, {}, b"ok", 0.3)] * 20)   # slow answers widen any overlap
        w = create(acc.client, rx.url(p))
        rx.set_secret(p, w["secret"])
        hooks.append(w)
    send(acc.client, 40, prefix="t")
    for p in paths:
        wait_delivered(rx, p, 80, timeout=60)
    db = whph.db_url.rsplit("/", 1)[1]
    for p, w in zip(paths, hooks):
        assert rx.max_in_flight(p) == 1, "concurrent POSTs to one endpoint"
        got = rx.delivered(p)
        ids = [e["id"] for e in got]
        assert len(ids) == 80 and len(set(ids)) == 80, "an event was sent twice or lost"
        assert ids == sorted(ids, key=order_key)
        seen = {}
        for r in check_signed(rx, p):
            for e in r.events:
                prev = seen.setdefault(e["id"], r.webhook_id)
                assert prev == r.webhook_id, "two batches hold %s" % e["id"]
        # the worker records an attempt after reading the answer: wait for the log
        n = len(rx.requests(p))
        hph.wait_until(lambda: int(pg.psql("SELECT count(*) FROM webhook_attempts WHERE"
                                           " webhook_id = '%s'" % w["id"], db=db)) >= n,
                       timeout=20, what="attempts of %s logged" % p)
        out = pg.psql("SELECT batch_id, count(DISTINCT worker_id) FROM webhook_attempts"
                      " WHERE webhook_id = '%s' GROUP BY batch_id" % w["id"], db=db)
        assert out and all(line.endswith("|1") for line in out.splitlines()), out
    holders = pg.psql("SELECT count(DISTINCT worker_id) FROM webhook_attempts w JOIN webhooks h"
                      " ON h.id = w.webhook_id WHERE h.account_id = '%s'" % acc.id, db=db)
    assert int(holders) >= 1


def test_replay_resends_from_an_event(whph, acc, rx):
    path = "/replay"
    w = create(acc.client, rx.url(path), events=["*"])
    rx.set_secret(path, w["secret"])
    send(acc.client, 2, prefix="p")
    first = wait_delivered(rx, path, 4)
    r = acc.client.post("/v1/webhooks/%s/replay" % w["id"], json={"after": first[0]["id"]})
    assert r.status_code == 200 and r.json() == {"id": w["id"], "after": first[0]["id"]}, r.text
    got = wait_delivered(rx, path, 7)
    assert [e["id"] for e in got[4:]] == [e["id"] for e in first[1:]]
    check_signed(rx, path)


def test_test_endpoint(whph, acc, rx):
    path = "/ping"
    w = create(acc.client, rx.url(path))
    rx.set_secret(path, w["secret"])
    r = acc.client.post("/v1/webhooks/%s/test" % w["id"])
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["success"] is True and res["status_code"] == 200 and res["response"] == "ok"
    reqs = check_signed(rx, path)
    assert reqs[0].events[0]["type"] == "test" and reqs[0].webhook_id == res["webhook_id"]
    rx.script(path, [500])
    res = acc.client.post("/v1/webhooks/%s/test" % w["id"]).json()
    assert res["success"] is False and res["status_code"] == 500 and res["error"] == "HTTP 500"
    log = acc.client.get("/v1/webhooks/%s/deliveries" % w["id"]).json()["data"]
    assert [x["status_code"] for x in log[:2]] == [500, 200]


def test_zz_endpoints_move_to_the_other_worker_on_stop(whph, acc, rx, pg):
    """Runs last: stops one worker (SIGTERM releases its leases); the other one takes its
    endpoints over, pending batches included."""
    paths = ["/move-a", "/move-b"]
    hooks = []
    for p in paths:
        w = create(acc.client, rx.url(p), events=["queued"])
        rx.set_secret(p, w["secret"])
        hooks.append(w)
    send(acc.client, 1, prefix="m")
    for p in paths:
        wait_delivered(rx, p, 1)
    db = whph.db_url.rsplit("/", 1)[1]
    for p in paths:
        rx.script(p, [500])   # the next batch is pending when the worker stops
    send(acc.client, 1, prefix="n")
    for p in paths:
        hph.wait_until(lambda: len(rx.requests(p)) >= 2, timeout=20, what="failed attempt")
    owners = {h["id"]: pg.psql("SELECT lease_owner FROM webhooks WHERE id = '%s'" % h["id"], db=db)
              for h in hooks}
    # stop the worker holding the first endpoint (its log names its worker id)
    gone = [wk for wk in whph.workers if owners[hooks[0]["id"]] in open(wk.log_path).read()]
    assert len(gone) == 1, owners
    assert gone[0].stop(timeout=20) == 0
    for p in paths:
        got = wait_delivered(rx, p, 2, timeout=20)
        assert [e["type"] for e in got] == ["queued", "queued"]
        check_signed(rx, p)
        reqs = sorted(rx.requests(p), key=lambda r: r.t)
        assert reqs[-1].webhook_id == reqs[-2].webhook_id and reqs[-1].body == reqs[-2].body
    after = {h["id"]: pg.psql("SELECT lease_owner FROM webhooks WHERE id = '%s'" % h["id"],
                              db=db) for h in hooks}
    assert len(set(after.values())) == 1, (owners, after)
    assert after[hooks[0]["id"]] != owners[hooks[0]["id"]], (owners, after)


def test_tracked_message_events_arrive_in_order(whph, acc, rx):
    """One message's queued, delivered, opened and clicked reach the endpoint in that order."""
    import email
    import email.policy
    import glob
    import re
    import requests
    path = "/engagement"
    w = create(acc.client, rx.url(path))
    rx.set_secret(path, w["secret"])
    m = sl.msg(to=["eng@example.com"], tags=["wh"])
    m["html"] = '<p>Hi <a href="https://shop.example/order/1">your order</a></p>'
    m["tracking"] = {"opens": True, "clicks": True}
    r = acc.client.post("/v1/messages", json=m)
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    did = r.json()["recipients"][0]["delivery_id"]
    got = wait_delivered(rx, path, 2)
    assert [e["type"] for e in got if e["message_id"] == mid] == ["queued", "delivered"], got
    files = glob.glob(os.path.join(whph.mail_dir, did + ".*.eml"))
    assert files, os.listdir(whph.mail_dir)
    with open(files[0], "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    base = whph.env["POSTHORN_PUBLIC_URL"]
    pix = re.search(re.escape(base) + r"/t/o/([A-Za-z0-9_-]+)", html).group(1)
    click = re.search(re.escape(base) + r"/t/c/([A-Za-z0-9_-]+)", html).group(1)
    api = acc.client.base
    assert requests.get(api + "/t/o/" + pix, timeout=10).status_code == 200
    time.sleep(0.2)
    r = requests.get(api + "/t/c/" + click, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example/order/1"
    got = wait_delivered(rx, path, 4)
    check_signed(rx, path)
    mine = [e for e in got if e["message_id"] == mid]
    assert [e["type"] for e in mine] == ["queued", "delivered", "opened", "clicked"], mine
    ids = [e["id"] for e in mine]
    assert ids == sorted(ids, key=order_key)
    assert mine[3]["data"]["url"] == "https://shop.example/order/1"
