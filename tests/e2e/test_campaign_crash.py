"""Campaigns (issue #8) delivered over SMTP (POSTHORN_DELIVERY=mx) to aiosmtpd peers that
record every message per recipient:

- a worker killed with SIGKILL in the middle of *sending* a campaign (a new worker takes over;
  or, with two workers, the survivor does): still exactly one delivery row per contact, every
  contact gets the message, and a contact gets it twice only if the peer had acknowledged
  its message but the killed worker had not committed the outcome (README "Exactly once, and
  the one window"); progress adds up and matches the peer; nothing is left in flight;
- hard bounces (550 5.1.1 at RCPT) mark the address: delivery `bounced`, the address
  suppressed, and the contact `bounced` in every list of the account that had it subscribed
  (not in another account; an unsubscribed or complained contact keeps its status); a soft
  5xx (mailbox full), a 4xx at RCPT once (then delivered) and 4xx at every try (expired)
  change no contact and suppress nothing.
"""
import collections
import os
import signal
import time
import urllib.parse

from harness.posthorn import wait_until
from mxstack import mx_stack  # noqa: F401 (fixture)

STATUSES = ("queued", "sending", "deferred", "delivered", "bounced", "failed", "expired",
            "suppressed", "cancelled")


# --- helpers -------------------------------------------------------------------------------
def new_list(client, rows, name="L"):
    """A list with rows [(email, first_name, status)] (CSV for the bulk, then the statuses
    other than subscribed as JSON)."""
    r = client.post("/v1/lists", json={"name": name})
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    body = ("email,first_name\n" + "".join("%s,%s\n" % (e, f) for e, f, _ in rows)).encode()
    r = client.post("/v1/lists/%s/contacts" % lid, data=body,
                    headers={"Content-Type": "text/csv"}, timeout=120)
    assert r.status_code == 200, r.text[:1000]
    assert r.json()["rejected_count"] == 0 and r.json()["inserted"] == len(rows), r.text[:1000]
    other = [{"email": e, "status": s} for e, _, s in rows if s != "subscribed"]
    if other:
        r = client.post("/v1/lists/%s/contacts" % lid, json=other)
        assert r.status_code == 200 and r.json()["updated"] == len(other), r.text
    return lid


def contact_statuses(client, lid):
    """{email: status} of every contact of the list (GET /v1/lists/{id}/contacts, paged)."""
    out, cursor = {}, None
    for _ in range(1000):
        q = {"limit": 1000}
        if cursor:
            q["cursor"] = cursor
        r = client.get("/v1/lists/%s/contacts?%s" % (lid, urllib.parse.urlencode(q)))
        assert r.status_code == 200, r.text
        for c in r.json()["data"]:
            out[c["email"]] = c["status"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("contacts of %s: paging never ended" % lid)


def suppressions(client):
    out, cursor = [], None
    for _ in range(100):
        q = {"limit": 100}
        if cursor:
            q["cursor"] = cursor
        r = client.get("/v1/suppressions", params=q)
        assert r.status_code == 200, r.text
        out += r.json()["data"]
        cursor = r.json().get("next_cursor")
        if not cursor:
            return out
    raise AssertionError("suppressions: paging never ended")


def new_campaign(client, lid, **over):
    body = {"name": "Crash news", "list_id": lid,
            "from": {"email": "news@shop.example", "name": "Shop"},
            "subject": "Hello {{first_name}}", "text": "Dear {{first_name}}, campaign mail.\n"}
    body.update(over)
    r = client.post("/v1/campaigns", json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = client.post("/v1/campaigns/%s/send" % cid)
    assert r.status_code == 200 and r.json()["state"] == "sending", r.text
    return cid


def campaign(client, cid):
    r = client.get("/v1/campaigns/" + cid)
    assert r.status_code == 200, r.text
    return r.json()


def wait_sent(st, cid, timeout):
    got = {}

    def ok():
        st.check_alive()
        got["c"] = campaign(st.client, cid)
        return got["c"]["state"] in ("sent", "cancelled")
    try:
        wait_until(ok, timeout=timeout, interval=0.3, what="campaign %s sent" % cid)
    except TimeoutError:
        raise AssertionError("campaign not sent after %ss: %r; deliveries by state: %s" % (
            timeout, got.get("c"), st.sql("SELECT state, count(*) FROM deliveries WHERE"
                                          " campaign_id = '%s' GROUP BY 1" % cid))) from None
    assert got["c"]["state"] == "sent", got["c"]
    return got["c"]


def acked(peers):
    """{recipient: copies acknowledged with 250} over the peers."""
    c = collections.Counter()
    for p in peers:
        with p.lock:
            for m in p.messages:
                c.update(r.lower() for r in m.rcpt_tos)
    return c


def rows(st, q):
    out = st.sql(q)
    return [line.split("|") for line in out.splitlines() if line]


def check_progress(p, n):
    assert p["total"] == n, p
    assert sum(p[s] for s in STATUSES) == p["total"], p


# --- kill -9 in the middle of sending --------------------------------------------------------
DOMAINS = {"kilo.test": "127.0.0.41", "lima.test": "127.0.0.42", "mike.test": "127.0.0.43"}


def kill_mid_sending(mx_stack, workers):
    """A campaign of n contacts over three domains, each MX a slow aiosmtpd peer (0.05 s
    before the reply to the final dot, two connections per destination: ~100 messages a
    second at most). Once the peers acknowledged some hundreds, workers[0] is killed with
    SIGKILL; with one worker a new one is started, with two the survivor carries on.

    The killed worker's leased rows are read 0.5 s after the kill. A live worker on the same
    host gives back a dead one's rows at its next housekeeping pass (at most 2 s), so the
    survivor is stopped (SIGSTOP) from just before the kill until that snapshot is taken;
    with one worker nobody else runs until then. The lease is a minute: the campaign ends
    long before it, because the rows come back through that rescue, not the lease."""
    n = 2400
    doms = sorted(DOMAINS)
    lease = 60
    st = mx_stack(mx=DOMAINS, worker=False, policy="* connections=2\n",
                  env={"POSTHORN_LEASE": "%ds" % lease})
    peers = [st.peer(DOMAINS[d], "stall", phase="dot", seconds=0.05) for d in doms]
    emails = ["c%04d@%s" % (i, doms[i % 3]) for i in range(n)]
    lid = new_list(st.client, [(e, "N%04d" % i, "subscribed") for i, e in enumerate(emails)])
    cid = new_campaign(st.client, lid)
    ws = [st.start_worker() for _ in range(workers)]
    victim = ws[0]

    # Mid-sending: the peers acknowledged a few hundred, most are still to go.
    def some():
        st.check_alive()
        return sum(acked(peers).values()) >= 300
    wait_until(some, timeout=60, interval=0.05, what="300 campaign messages at the peers")
    victim_id = st.sql("SELECT id FROM workers WHERE pid = %d" % victim.pid)
    assert victim_id, "no workers row for pid %d" % victim.pid
    with_sessions = sum(1 for p in peers for s in p.session_list() if s.closed is None)
    for w in ws[1:]:
        os.kill(w.pid, signal.SIGSTOP)
    victim.kill9()
    victim._expected_exit = True
    t_kill = time.monotonic()
    time.sleep(0.5)     # what the killed worker had sent reaches the peers' lists, its
    #                     connections' transactions end (rolled back if uncommitted)
    # The database first, then the peers: with two workers the survivor goes on, and every
    # delivery it recorded by then is at a peer by now.
    delivered_at_kill = {r for (r,) in rows(st, "SELECT lower(recipient) FROM deliveries"
                                                " WHERE campaign_id = '%s' AND state ="
                                                " 'delivered'" % cid)}
    # the rows the killed worker held (leased, outcome not recorded): their lease has not
    # run out yet, so no other worker took them (see above)
    held_rows = {r for (r,) in rows(st, "SELECT lower(recipient) FROM deliveries WHERE"
                                        " campaign_id = '%s' AND state = 'sending' AND"
                                        " lease_owner = '%s'" % (cid, victim_id))}
    held = len(held_rows)
    at_kill = acked(peers)
    survivor_rows = int(st.sql("SELECT count(*) FROM deliveries WHERE campaign_id = '%s' AND"
                               " state = 'sending' AND lease_owner <> '%s'" % (cid, victim_id)))
    for w in ws[1:]:
        os.kill(w.pid, signal.SIGCONT)
    # The kill landed in the middle of sending: some delivered, many not yet, and the killed
    # worker held leased rows that only the end of their lease gives back.
    assert 300 <= len(at_kill) and len(delivered_at_kill) <= n // 2, (
        "not in the middle of sending: %d acknowledged, %d delivered of %d" % (
            len(at_kill), len(delivered_at_kill), n))
    assert held > 0, "the killed worker held no leased rows"
    assert with_sessions > 0, "no SMTP session was open at the kill"
    # Acknowledged by a peer but not recorded by the killed worker: the documented window.
    # (With two workers, the survivor's acknowledged-but-not-yet-recorded ones are not in it:
    # it records them.)
    window = set(at_kill) & held_rows
    if workers == 1:
        assert window == set(at_kill) - delivered_at_kill, "acknowledged, not recorded, not held"
    assert delivered_at_kill <= set(at_kill), delivered_at_kill - set(at_kill)
    for p in peers:       # the rest goes fast
        p.behaviour = "accept"
    if workers == 1:
        st.start_worker()
    c = wait_sent(st, cid, timeout=45)
    took = time.monotonic() - t_kill
    p = c["progress"]
    check_progress(p, n)
    assert p["delivered"] == n and p["expanded"] is True, p

    # exactly one delivery row per contact, all delivered, nothing leased or waiting
    assert st.sql("SELECT count(*), count(DISTINCT lower(recipient)) FROM deliveries"
                  " WHERE campaign_id = '%s'" % cid) == "%d|%d" % (n, n)
    assert st.sql("SELECT state, count(*), count(lease_owner) FROM deliveries"
                  " WHERE campaign_id = '%s' GROUP BY 1" % cid) == "delivered|%d|0" % n
    assert st.sql("SELECT count(*) FROM deliveries WHERE state IN"
                  " ('queued', 'sending', 'deferred', 'scheduled')") == "0"
    # one `delivered` event per delivery: the killed worker's uncommitted outcomes are gone
    ev = rows(st, "SELECT d.recipient, count(*) FROM events e JOIN deliveries d"
                  " ON d.account_id = e.account_id AND d.id = e.delivery_id"
                  " WHERE d.campaign_id = '%s' AND e.type = 'delivered' GROUP BY 1" % cid)
    assert len(ev) == n and all(x[1] == "1" for x in ev), [x for x in ev if x[1] != "1"][:20]

    # every contact got it; no address outside the list was sent to
    got = acked(peers)
    assert set(got) == set(emails), (sorted(set(emails) - set(got))[:20],
                                      sorted(set(got) - set(emails))[:20])
    assert p["delivered"] == len(got)
    # a second copy only for deliveries in the window at the kill, and each of those once
    # more (its outcome was never recorded, so its lease ran out and it was sent again)
    dups = {r for r, k in got.items() if k > 1}
    assert max(got.values()) <= 2, {r: k for r, k in got.items() if k > 2}
    assert dups == window, ("duplicates outside the window", sorted(dups - window)[:20],
                            "window not sent again", sorted(window - dups)[:20])
    retried = {r for (r,) in rows(st, "SELECT lower(recipient) FROM deliveries WHERE"
                                      " campaign_id = '%s' AND attempts > 1" % cid)}
    assert dups <= retried, sorted(dups - retried)
    # the rows the killed worker held, and only they, were tried again (the peers accept
    # everything: nothing else has a reason to)
    assert retried == held_rows, (sorted(retried - held_rows)[:20],
                                  sorted(held_rows - retried)[:20])
    # what the killed worker held came back through the same-host rescue, not its lease
    assert took < lease - 10, "sent %.1f s after the kill: the lease ran out first" % took
    assert st.sql("SELECT stopped_at IS NOT NULL FROM workers WHERE id = '%s'" % victim_id) == "t"
    print("kill (%d worker(s)): %d acknowledged, %d delivered, %d rows held by the killed "
          "worker (%d by others), %d SMTP sessions open; window (duplicates) %d; %d retried;"
          " sent %.1f s after the kill" % (
              workers, len(at_kill), len(delivered_at_kill), held, survivor_rows, with_sessions,
              len(window), len(retried), took))


def test_kill9_worker_mid_campaign_sending(mx_stack):
    kill_mid_sending(mx_stack, workers=1)


def test_kill9_one_of_two_workers_mid_campaign_sending(mx_stack):
    kill_mid_sending(mx_stack, workers=2)


# --- bounces and contact status ------------------------------------------------------------
def test_hard_bounce_marks_contacts_soft_does_not(mx_stack):
    # queue lifetime 8 s: the address that answers 4xx at every try expires in the test
    st = mx_stack(mx={"okay.test": "127.0.0.44", "rej.test": "127.0.0.45",
                      "full.test": "127.0.0.46", "grey.test": "127.0.0.47",
                      "later.test": "127.0.0.48"},
                  env={"POSTHORN_RETRY_SCHEDULE": "1s", "POSTHORN_MAX_QUEUE_LIFETIME": "8s"})
    ok = st.peer("127.0.0.44", "accept")
    rej = st.peer("127.0.0.45", "reject_rcpt", rcpts={"hard1@rej.test", "hard2@rej.test"})
    full = st.peer("127.0.0.46", "reject_rcpt", rcpts={"full1@full.test"},
                   reply="552 5.2.2 Mailbox full")
    grey = st.peer("127.0.0.47", "tempfail_then_accept", phase="rcpt", times=1,
                   reply="451 4.2.0 Try again later")
    later = st.peer("127.0.0.48", "tempfail_then_accept", phase="rcpt", times=10 ** 6,
                    reply="450 4.2.1 Mailbox busy, try later")
    a = st.client
    sub = "subscribed"
    l1 = new_list(a, [("ok1@okay.test", "O1", sub), ("ok2@okay.test", "O2", sub),
                      ("hard1@rej.test", "H1", sub), ("hard2@rej.test", "H2", sub),
                      ("full1@full.test", "F1", sub), ("grey1@grey.test", "G1", sub),
                      ("fine@rej.test", "R", sub), ("gone@okay.test", "X", "unsubscribed"),
                      ("busy1@later.test", "B1", sub)],
                  name="campaign list")
    # the same account's other lists: hard1 subscribed, hard2 already unsubscribed,
    # hard1 with another case of the local part (suppressions compare addresses
    # case-insensitively), the soft-bounced and greylisted addresses subscribed
    l2 = new_list(a, [("hard1@rej.test", "H1", sub), ("hard2@rej.test", "H2", "unsubscribed"),
                      ("full1@full.test", "F1", sub), ("grey1@grey.test", "G1", sub),
                      ("ok1@okay.test", "O1", sub), ("busy1@later.test", "B1", sub)],
                  name="other list")
    l3 = new_list(a, [("HARD1@rej.test", "H1", sub), ("hard2@rej.test", "H2", "complained")],
                  name="third list")
    # another account with the same addresses
    acc_b = st.ph.create_account("other account")
    b = st.ph.client(st.ph.create_key(acc_b, ["send", "read", "admin"], rate=1000))
    lb = new_list(b, [("hard1@rej.test", "H1", sub), ("hard2@rej.test", "H2", sub)],
                  name="b's list")
    before = {lid: contact_statuses(a, lid) for lid in (l1, l2, l3)}

    cid = new_campaign(a, l1)
    c = wait_sent(st, cid, timeout=45)
    p = c["progress"]
    check_progress(p, 8)
    assert {k: p[k] for k in STATUSES if p[k]} == {"delivered": 4, "bounced": 3,
                                                   "expired": 1}, p
    assert p["skipped"] == 1, p

    dl = dict((r, s) for r, s in rows(st, "SELECT recipient, state FROM deliveries"
                                          " WHERE campaign_id = '%s'" % cid))
    assert dl == {"ok1@okay.test": "delivered", "ok2@okay.test": "delivered",
                  "fine@rej.test": "delivered", "grey1@grey.test": "delivered",
                  "hard1@rej.test": "bounced", "hard2@rej.test": "bounced",
                  "full1@full.test": "bounced", "busy1@later.test": "expired"}, dl
    # the classes the bounce rules gave: two hard, one soft; the greylisted one was deferred
    # once (a 4xx at RCPT) before its delivery
    att = rows(st, "SELECT d.recipient, a.attempt, a.outcome, a.code, coalesce(a.bounce_class, '')"
                   " FROM delivery_attempts a JOIN deliveries d ON d.account_id = a.account_id"
                   " AND d.id = a.delivery_id WHERE d.campaign_id = '%s'"
                   " AND d.recipient IN ('hard1@rej.test', 'hard2@rej.test', 'full1@full.test',"
                   " 'grey1@grey.test') ORDER BY 1, 2" % cid)
    assert [x[:4] for x in att] == [
        ["full1@full.test", "1", "bounced", "552"],
        ["grey1@grey.test", "1", "deferred", "451"],
        ["grey1@grey.test", "2", "delivered", "250"],
        ["hard1@rej.test", "1", "bounced", "550"],
        ["hard2@rej.test", "1", "bounced", "550"]], att
    cls = {x[0]: x[4] for x in att if x[2] == "bounced"}
    assert cls == {"full1@full.test": "soft", "hard1@rej.test": "hard",
                   "hard2@rej.test": "hard"}, cls
    busy = rows(st, "SELECT a.outcome, a.code FROM delivery_attempts a JOIN deliveries d"
                    " ON d.account_id = a.account_id AND d.id = a.delivery_id"
                    " WHERE d.campaign_id = '%s' AND d.recipient = 'busy1@later.test'" % cid)
    assert len(busy) >= 2 and all(x == ["deferred", "450"] for x in busy), busy
    assert sorted(r.lower() for r in acked([ok, rej, full, grey, later])) == [
        "fine@rej.test", "grey1@grey.test", "ok1@okay.test", "ok2@okay.test"]

    # the hard bounces, and only they, are suppressed (source bounce, every stream)
    sup = {(s["email"], s["stream"], s.get("source")) for s in suppressions(a)}
    assert sup == {("hard1@rej.test", "all", "bounce"), ("hard2@rej.test", "all", "bounce")}, sup
    assert suppressions(b) == []

    # contact statuses
    after = {lid: contact_statuses(a, lid) for lid in (l1, l2, l3)}
    assert before[l1] == {"ok1@okay.test": sub, "ok2@okay.test": sub, "hard1@rej.test": sub,
                          "hard2@rej.test": sub, "full1@full.test": sub,
                          "grey1@grey.test": sub, "fine@rej.test": sub,
                          "gone@okay.test": "unsubscribed", "busy1@later.test": sub}, before[l1]
    assert before[l2]["hard2@rej.test"] == "unsubscribed", before[l2]
    assert before[l3] == {"HARD1@rej.test": sub, "hard2@rej.test": "complained"}, before[l3]
    want = {
        l1: dict(before[l1], **{"hard1@rej.test": "bounced", "hard2@rej.test": "bounced"}),
        l2: {"hard1@rej.test": "bounced", "hard2@rej.test": "unsubscribed",
             "full1@full.test": sub, "grey1@grey.test": sub, "ok1@okay.test": sub,
             "busy1@later.test": sub},
        l3: {"HARD1@rej.test": "bounced", "hard2@rej.test": "complained"},
    }
    assert after == want, {lid: {e: (before[lid].get(e), after[lid].get(e), want[lid].get(e))
                                 for e in set(after[lid]) | set(want[lid])
                                 if after[lid].get(e) != want[lid].get(e)}
                           for lid in want}
    # another account holding the same addresses is untouched
    assert contact_statuses(b, lb) == {"hard1@rej.test": sub, "hard2@rej.test": sub}
    # a suppression added by hand changes no contact's status
    r = a.post("/v1/suppressions", json={"email": "ok2@okay.test", "stream": "all"})
    assert r.status_code == 201, r.text
    assert contact_statuses(a, l1) == want[l1]
    # a second campaign to the list skips the bounced contacts (not subscribed any more);
    # the busy mailbox takes mail now
    later.opts["times"] = 0
    cid2 = new_campaign(a, l1, name="again")
    c2 = wait_sent(st, cid2, timeout=30)
    p2 = c2["progress"]
    assert (p2["total"], p2["skipped"], p2["delivered"], p2["bounced"], p2["suppressed"]) == (
        6, 3, 4, 1, 1), p2
