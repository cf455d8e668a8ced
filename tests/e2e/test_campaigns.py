"""Campaigns (issue #8): a list imported from CSV and a campaign delivered to it (file
delivery, one .eml per delivery): every subscribed contact gets exactly one message with its
own data over the campaign's, unsubscribed contacts are skipped and suppressed addresses
recorded as suppressed, and progress (from counters kept by triggers) adds up to total;
pause, resume and cancel; two workers expanding and sending one campaign; a worker killed
with SIGKILL in the middle of expansion; validation and another account's campaigns."""
import email
import email.policy
import os
import re
import time

import pytest

from harness import posthorn as hph

STATUSES = ("queued", "sending", "deferred", "delivered", "bounced", "failed", "expired",
            "suppressed", "cancelled")
FINAL = ("sent", "cancelled")


class Stack:
    """A private Posthorn (file delivery) with its API and n workers."""

    def __init__(self, make_posthorn, pg, workers=1, env=None):
        e = {"POSTHORN_POLL_INTERVAL": "1s", "POSTHORN_LEASE": "30s"}
        e.update(env or {})
        self.ph = make_posthorn(env=e)
        self.pg = pg
        self.db = self.ph.db_url.rsplit("/", 1)[1]
        self.ph.api_proc()
        acc = self.ph.create_account("campaigns")
        self.c = self.ph.client(self.ph.create_key(acc))
        self.workers = [self.ph.worker_proc() for _ in range(workers)]

    def sql(self, q):
        return self.pg.psql(q, db=self.db)

    def new_list(self, rows, header="email,first_name"):
        r = self.c.post("/v1/lists", json={"name": "L"})
        assert r.status_code == 201, r.text
        lid = r.json()["id"]
        body = (header + "\n" + "".join(x + "\n" for x in rows)).encode()
        r = self.c.post("/v1/lists/%s/contacts" % lid, data=body,
                        headers={"Content-Type": "text/csv"}, timeout=120)
        assert r.status_code == 200, r.text[:1000]
        assert r.json()["rejected_count"] == 0, r.text[:1000]
        return lid

    def campaign(self, lid, **over):
        body = {"name": "News", "list_id": lid, "from": {"email": "news@shop.example", "name": "Shop"},
                "subject": "Hello {{first_name}}",
                "text": "Dear {{first_name}} of {{city}}, number {{n}}.",
                "data": {"city": "Campaignville", "n": "none"}}
        body.update(over)
        r = self.c.post("/v1/campaigns", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "draft"
        return r.json()["id"]

    def get(self, cid):
        r = self.c.get("/v1/campaigns/" + cid)
        assert r.status_code == 200, r.text
        return r.json()

    def action(self, cid, what, expect=200):
        r = self.c.post("/v1/campaigns/%s/%s" % (cid, what))
        assert r.status_code == expect, r.text
        return r.json()

    def wait_state(self, cid, states, timeout=90):
        got = {}

        def ok():
            got["c"] = self.get(cid)
            return got["c"]["state"] in states
        hph.wait_until(ok, timeout=timeout, interval=0.3,
                       what="campaign %s in %s (last: %r)" % (cid, states, got.get("c")))
        return got["c"]

    def mails(self):
        """{recipient: [parsed messages]} of the mail directory."""
        out = {}
        d = self.ph.mail_dir
        for name in os.listdir(d):
            if name.startswith(".") or not name.endswith(".eml"):
                continue  # hidden: a killed worker's temporary file
            with open(os.path.join(d, name), "rb") as f:
                m = email.message_from_bytes(f.read(), policy=email.policy.default)
            out.setdefault(m["Delivered-To"], []).append(m)
        return out


def check_progress(p):
    assert sum(p[s] for s in STATUSES) == p["total"], p


def body_text(m):
    part = m.get_body(preferencelist=("plain",))
    return part.get_content()


@pytest.fixture
def stack(make_posthorn, pg):
    made = []

    def make(**kw):
        s = Stack(make_posthorn, pg, **kw)
        made.append(s)
        return s
    yield make


def test_ten_thousand_contacts_one_message_each(stack):
    s = stack()
    n = 10000
    rows = ["c%05d@example.com,Name%05d" % (i, i) for i in range(n)]
    # a few contacts not subscribed, a few addresses suppressed on the broadcast stream
    lid = s.new_list(rows)
    unsub = ["c%05d@example.com" % i for i in (3, 500, 9999)]
    r = s.c.post("/v1/lists/%s/contacts" % lid,
                 json=[{"email": e, "status": "unsubscribed"} for e in unsub])
    assert r.json()["updated"] == 3
    supp = ["c%05d@example.com" % i for i in (7, 4242)]
    for e in supp:
        assert s.c.post("/v1/suppressions", json={"email": e, "stream": "broadcast"}).status_code == 201
    # one contact carries its own value for a campaign variable
    s.c.post("/v1/lists/%s/contacts" % lid, json=[{"email": "c00042@example.com",
                                                     "data": {"n": "forty-two"}}])
    cid = s.campaign(lid)
    t0 = time.monotonic()
    s.action(cid, "send")
    # transactional mail sent meanwhile is claimed before the campaign's backlog
    hph.wait_until(lambda: s.get(cid)["progress"]["total"] >= 2000, timeout=60)
    r = s.c.post("/v1/messages", json={"from": "orders@shop.example", "to": ["buyer@example.com"],
                                        "subject": "Receipt", "text": "Thanks"})
    assert r.status_code == 202, r.text
    tx = r.json()["recipients"][0]["delivery_id"]
    c = s.wait_state(cid, FINAL, timeout=120)
    assert c["state"] == "sent"
    assert s.sql("SELECT (SELECT updated_at FROM deliveries WHERE id = '%s' AND state = 'delivered')"
                 " < (SELECT max(updated_at) FROM deliveries WHERE campaign_id = '%s')" % (tx, cid)) == "t"
    p = c["progress"]
    check_progress(p)
    assert p["total"] == n - 3 and p["skipped"] == 3 and p["suppressed"] == 2
    assert p["delivered"] == n - 5 and p["expanded"] is True
    mails = s.mails()
    assert len(mails) == n - 5 + 1                  # and the receipt
    assert all(len(v) == 1 for v in mails.values())
    for e in unsub + supp:
        assert e not in mails
    for i in (0, 1, 42, 5000, 9998):
        m = mails["c%05d@example.com" % i][0]
        assert m["Subject"] == "Hello Name%05d" % i
        assert m["To"] == "c%05d@example.com" % i
        n_ = "forty-two" if i == 42 else "none"
        assert body_text(m).strip() == "Dear Name%05d of Campaignville, number %s." % (i, n_)
        assert m["List-Unsubscribe"] and m["List-Unsubscribe-Post"]
    # content is stored once: one message row; one delivery row per subscribed contact
    assert s.sql("SELECT count(*) FROM messages WHERE campaign_id = '%s'" % cid) == "1"
    assert s.sql("SELECT count(*), count(DISTINCT recipient) FROM deliveries"
                 " WHERE campaign_id = '%s'" % cid) == "%d|%d" % (n - 3, n - 3)
    # the counters agree with the rows
    counts = dict(x.split("|") for x in s.sql(
        "SELECT state, count(*) FROM deliveries WHERE campaign_id = '%s' GROUP BY 1" % cid).split("\n"))
    assert {k: int(v) for k, v in counts.items()} == {k: p[k] for k in STATUSES if p[k]}
    # expansion is a bulk load: the worker analyzed deliveries (statistics fit for the
    # plans) rather than waiting for autovacuum
    # (statistics counters reach the shared view within about a second)
    hph.wait_until(lambda: int(s.sql("SELECT analyze_count FROM pg_stat_user_tables"
                                     " WHERE relname = 'deliveries'")) >= 1, timeout=10,
                   what="an ANALYZE of deliveries")
    print("10k campaign sent in %.1f s" % (time.monotonic() - t0))


def test_pause_resume_cancel(stack):
    s = stack()
    lid = s.new_list(["p%03d@example.com,P%03d" % (i, i) for i in range(300)])
    cid = s.campaign(lid, rate_per_minute=1200)      # 20 a second
    s.action(cid, "send")
    hph.wait_until(lambda: s.get(cid)["progress"]["delivered"] >= 20, timeout=30)
    c = s.action(cid, "pause")
    assert c["state"] == "paused"
    time.sleep(1.5)                                   # deliveries in flight finish
    p1 = s.get(cid)["progress"]
    time.sleep(2.5)
    p2 = s.get(cid)["progress"]
    assert p2["delivered"] == p1["delivered"], "deliveries went on while paused"
    assert p2["delivered"] < 300
    assert s.action(cid, "pause")["state"] == "paused"     # again: still paused
    assert s.action(cid, "resume")["state"] == "sending"
    hph.wait_until(lambda: s.get(cid)["progress"]["delivered"] >= p2["delivered"] + 20, timeout=30)
    c = s.action(cid, "cancel")
    assert c["state"] == "cancelled"
    time.sleep(1.5)
    p = s.get(cid)["progress"]
    check_progress(p)
    assert p["cancelled"] > 0 and p["queued"] == 0 and p["sending"] == 0
    assert len(s.mails()) == p["delivered"]
    # cancelled deliveries have their event
    assert s.sql("SELECT count(*) FROM events e JOIN deliveries d ON d.id = e.delivery_id"
                 " WHERE d.campaign_id = '%s' AND e.type = 'cancelled'" % cid) == str(p["cancelled"])
    s.action(cid, "resume", expect=409)
    s.action(cid, "send", expect=409)
    s.action(cid, "pause", expect=409)
    assert s.action(cid, "cancel")["state"] == "cancelled"


def test_rate_per_minute_spaces_deliveries(stack):
    s = stack()
    lid = s.new_list(["r%02d@example.com,R" % i for i in range(40)])
    cid = s.campaign(lid, rate_per_minute=600)        # one every 100 ms: 40 take ~4 s
    t0 = time.monotonic()
    s.action(cid, "send")
    s.wait_state(cid, FINAL, timeout=60)
    assert time.monotonic() - t0 >= 3.5
    spread = s.sql("SELECT extract(epoch FROM max(next_attempt_at) - min(next_attempt_at))"
                   " FROM deliveries WHERE campaign_id = '%s'" % cid)
    assert 3.8 <= float(spread) <= 4.0


def test_two_workers_each_contact_once(stack):
    s = stack(workers=2, env={"POSTHORN_CAMPAIGN_CHUNK": "100"})
    n = 3000
    lid = s.new_list(["w%04d@example.com,W%04d" % (i, i) for i in range(n)])
    cid = s.campaign(lid)
    s.action(cid, "send")
    c = s.wait_state(cid, FINAL, timeout=90)
    assert c["state"] == "sent" and c["progress"]["delivered"] == n
    mails = s.mails()
    assert len(mails) == n and all(len(v) == 1 for v in mails.values())
    assert s.sql("SELECT count(DISTINCT recipient) FROM deliveries WHERE campaign_id = '%s'" % cid) == str(n)


def test_kill_worker_during_expansion(stack):
    s = stack(env={"POSTHORN_CAMPAIGN_CHUNK": "10"})
    n = 2000
    lid = s.new_list(["k%04d@example.com,K%04d" % (i, i) for i in range(n)])
    cid = s.campaign(lid)
    s.action(cid, "send")
    hph.wait_until(lambda: 0 < s.get(cid)["progress"]["total"], timeout=30, interval=0.02)
    s.workers[0].kill9()
    mid = s.get(cid)["progress"]
    assert mid["expanded"] is False and mid["total"] < n, "expansion finished before the kill"
    s.workers.append(s.ph.worker_proc())
    c = s.wait_state(cid, FINAL, timeout=90)
    assert c["state"] == "sent"
    check_progress(c["progress"])
    assert c["progress"]["total"] == n
    # exactly one delivery per contact
    assert s.sql("SELECT count(*), count(DISTINCT recipient) FROM deliveries"
                 " WHERE campaign_id = '%s'" % cid) == "%d|%d" % (n, n)
    # one message each; a delivery the killed worker held mid-SMTP may be tried again
    # after its lease (at least once), and only those may arrive twice
    mails = s.mails()
    assert len(mails) == n
    retried = set(s.sql("SELECT recipient FROM deliveries WHERE campaign_id = '%s'"
                        " AND attempts > 1" % cid).split())
    assert all(len(v) == 1 for k, v in mails.items() if k not in retried)


def test_validation_and_isolation(stack, new_account):
    s = stack(workers=0)
    lid = s.new_list(["v@example.com,V"])
    r = s.c.post("/v1/campaigns", json={"name": "x", "list_id": lid, "from": "news@shop.example",
                                         "subject": "{{#open}}", "text": "t", "colour": 1})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"subject", "colour"} <= fields
    r = s.c.post("/v1/campaigns", json={"name": "x", "list_id": "lst_0123456789abcdefghijkl",
                                         "from": "news@shop.example", "subject": "s", "text": "t"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "list_id"
    r = s.c.post("/v1/campaigns", json={"name": "x", "list_id": lid, "from": "news@shop.example",
                                         "template": {"name": "nope"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "template"
    cid = s.campaign(lid)
    assert [x["id"] for x in s.c.get("/v1/campaigns").json()["data"]] == [cid]
    # a list used by a campaign cannot be deleted
    assert s.c.delete("/v1/lists/" + lid).status_code == 409
    # another account sees none of it
    acc = s.ph.create_account("other")
    o = s.ph.client(s.ph.create_key(acc))
    assert o.get("/v1/campaigns/" + cid).status_code == 404
    for a in ("send", "pause", "resume", "cancel"):
        assert o.post("/v1/campaigns/%s/%s" % (cid, a)).status_code == 404
    assert o.get("/v1/campaigns").json()["data"] == []
    r = o.post("/v1/campaigns", json={"name": "x", "list_id": lid, "from": "news@shop.example",
                                       "subject": "s", "text": "t"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "list_id"
    # scheduled: send with send_at ahead waits; cancel ends it
    cid2 = s.campaign(lid, send_at=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(time.time() + 3600)))
    assert s.action(cid2, "send")["state"] == "scheduled"
    assert s.action(cid2, "cancel")["state"] == "cancelled"


def test_campaign_mail_is_signed_and_unsubscribable(stack):
    """Each recipient's own message carries its List-Unsubscribe pair, DKIM-signed over
    them (dkimpy as the oracle); a one-click unsubscribe counts in progress.unsubscribed."""
    import dkim
    s = stack()
    r = s.c.post("/v1/domains", json={"name": "shop.example"})
    assert r.status_code == 201, r.text
    txt = {rec["name"].rstrip("."): rec["value"] for rec in r.json()["dns_records"]
           if rec["type"] == "TXT"}
    lid = s.new_list(["s%d@example.com,S%d" % (i, i) for i in range(3)])
    cid = s.campaign(lid, html='<p>Hi {{first_name}}, <a href="https://shop.example/x">x</a></p>',
                     tracking={"opens": True, "clicks": True})
    s.action(cid, "send")
    assert s.wait_state(cid, FINAL)["state"] == "sent"
    d = s.ph.mail_dir
    raws = {}
    for name in os.listdir(d):
        if name.endswith(".eml"):
            with open(os.path.join(d, name), "rb") as f:
                raws[name] = f.read()
    assert len(raws) == 3

    def dnsfunc(name, timeout=5):
        v = txt.get(name.decode().rstrip("."))
        return v.encode() if v else None
    for raw in raws.values():
        head = raw.split(b"\r\n\r\n", 1)[0]
        sig = re.search(rb"DKIM-Signature:(.*?)\r\n(?![ \t])", head, re.S).group(1)
        assert b"list-unsubscribe" in sig.lower() and b"list-unsubscribe-post" in sig.lower()
        assert dkim.verify(raw, dnsfunc=dnsfunc), raw[:1500]
        m = email.message_from_bytes(raw, policy=email.policy.default)
        i = m["To"][1]                              # s<i>@example.com
        html = m.get_body(preferencelist=("html",)).get_content()
        assert "Hi S%s," % i in html and "/t/c/" in html and "/t/o/" in html, html
        assert "Dear S%s of Campaignville" % i in body_text(m)
    m = email.message_from_bytes(next(iter(raws.values())), policy=email.policy.default)
    url = m["List-Unsubscribe"].strip().strip("<>")
    path = "/" + url.split("/", 3)[3]
    r = s.c.post(path, data="List-Unsubscribe=One-Click", key=None,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (200, 202, 204), r.text
    hph.wait_until(lambda: s.get(cid)["progress"]["unsubscribed"] == 1, timeout=20)


def test_rate_and_pause_longer_than_the_queue_lifetime(stack):
    """The queue lifetime counts from each delivery's slot: a rated campaign that takes
    longer than the lifetime delivers everything. Waiting deliveries of a paused campaign do
    not expire however long the pause lasts; after resume each has a queue lifetime from its
    new slot."""
    s = stack(env={"POSTHORN_MAX_QUEUE_LIFETIME": "3s"})
    lid = s.new_list(["v%03d@example.com,V%03d" % (i, i) for i in range(120)])
    cid = s.campaign(lid, rate_per_minute=1200)       # 6 s of slots, twice the lifetime
    s.action(cid, "send")
    c = s.wait_state(cid, FINAL, timeout=60)
    assert c["progress"]["delivered"] == 120 and c["progress"]["expired"] == 0, c["progress"]
    n = 200
    lid = s.new_list(["w%03d@example.com,W%03d" % (i, i) for i in range(n)])
    cid = s.campaign(lid, rate_per_minute=1200)
    s.action(cid, "send")
    hph.wait_until(lambda: s.get(cid)["progress"]["delivered"] >= 10, timeout=30)
    s.action(cid, "pause")
    time.sleep(1)
    # as a deferral of a delivery in flight at the pause would: due again while paused
    s.sql("UPDATE deliveries SET state = 'deferred', next_attempt_at = now() WHERE id IN"
          " (SELECT id FROM deliveries WHERE campaign_id = '%s' AND state = 'queued'"
          "  ORDER BY recipient LIMIT 3)" % cid)
    p0 = s.get(cid)["progress"]
    time.sleep(5)           # past the lifetime; housekeeping's expiry runs every 2 s
    p = s.get(cid)["progress"]
    assert p["expired"] == 0, p
    assert p["delivered"] == p0["delivered"] < n, (p0, p)
    assert p["deferred"] == 3, p
    assert s.action(cid, "resume")["state"] == "sending"
    c = s.wait_state(cid, FINAL, timeout=60)
    check_progress(c["progress"])
    # spaced 50 ms apart, the last ones wait well past the lifetime from the resume, yet
    # each has its own lifetime from its slot
    assert c["progress"]["expired"] == 0 and c["progress"]["delivered"] == n, c["progress"]
