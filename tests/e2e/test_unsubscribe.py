"""One-click unsubscribe (RFC 8058; API.md "Public endpoints"; issue #7).

Broadcast mail carries List-Unsubscribe: <PUBLIC_URL/u/TOKEN> and List-Unsubscribe-Post.
GET of that URL shows a small page and changes nothing; POST with
List-Unsubscribe=One-Click (form-urlencoded or multipart, as mail clients and the page's
button send it) records `unsubscribed` once, suppresses the address on the broadcast stream
(source `unsubscribe`) so a later broadcast message to it is `suppressed` while
transactional mail still goes, and sets the contact's status in a campaign's list.
One private Posthorn for the module, worker in POSTHORN_DELIVERY=file mode."""
import html as htmlmod
import json
import os
import re
import tempfile
import time

import pytest
import requests

import sendlib as sl
from harness import posthorn as hph


@pytest.fixture(scope="module")
def ustack(tmp_root, pg, redis, spec):
    work = tempfile.mkdtemp(prefix="ph-unsub-", dir=tmp_root)
    os.chmod(work, 0o755)
    ph = hph.Posthorn(work, pg.fresh_database("ph_unsub_%d" % os.getpid()), redis.url, spec=spec)
    try:
        ph.migrate()
        st = sl.Stack(ph, pg)
        st.worker = ph.worker_proc()
        yield st
    finally:
        ph.stop_all()


def send(st, emails, stream="broadcast", wait=True):
    body = sl.msg(**{"from": {"email": "news@list.example", "name": "News <&> \"Co\""},
                     "to": [{"email": e} for e in emails], "subject": "Weekly",
                     "text": "Hello", "html": "<p>Hello</p>", "stream": stream})
    r = st.client.post("/v1/messages", json=body)
    assert r.status_code == 202, r.text
    res = r.json()
    dids = {x["email"]: x["delivery_id"] for x in res["recipients"] if x["status"] == "queued"}
    if wait and dids:
        sl.wait_files(st.mail_dir, list(dids.values()), timeout=30, procs=[st.worker])
    return res, dids


def unsub_url(st, did):
    raw = sl.read_mail(st.mail_dir, did)
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    m = re.search(rb"(?im)^List-Unsubscribe:\s*<([^>]+)>", head)
    assert m, head
    assert re.search(rb"(?im)^List-Unsubscribe-Post: List-Unsubscribe=One-Click$", head)
    url = m.group(1).decode()
    base = st.ph.env["POSTHORN_PUBLIC_URL"]
    assert url.startswith(base + "/u/"), url
    return url[len(base):]


def event_rows(st, mid, typ):
    """The message's events of one type as rows of the events table (the columns GET
    /v1/events shows), oldest first."""
    out = st.db.sql(
        "SELECT coalesce(json_agg(json_build_object('type', type, 'message_id', message_id,"
        " 'delivery_id', delivery_id, 'recipient', recipient, 'stream', stream, 'data', data)"
        " ORDER BY id), '[]') FROM events WHERE account_id = %s AND message_id = %s"
        " AND type = %s" % (sl.lit(st.account), sl.lit(mid), sl.lit(typ)))
    return json.loads(out or "[]")


def events(st, mid, typ):
    return event_rows(st, mid, typ)


def suppression(st, email):
    return st.db.sql("SELECT stream || '|' || source FROM suppressions WHERE email = %s"
                     " ORDER BY stream" % sl.lit(email.lower()))


def uaddr(tag):
    return "%s-%s@example.com" % (tag, sl.uid(6).lower())


def test_page_changes_nothing(ustack):
    st = ustack
    a = uaddr("page")
    res, dids = send(st, [a])
    path = unsub_url(st, dids[a])
    c = st.ph.client()
    for _ in range(2):
        r = c.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/html")
        assert "no-store" in r.headers["Cache-Control"]
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        page = r.text
        assert '<form method="post">' in page
        assert 'name="List-Unsubscribe" value="One-Click"' in page
        assert htmlmod.escape(a) in page
        # self-contained: no external resources
        assert not re.search(r"(?i)(src|href)\s*=", page), page
    time.sleep(0.3)
    assert events(st, res["id"], "unsubscribed") == []
    assert suppression(st, a) == ""


def test_one_click_post_unsubscribes_once(ustack):
    st = ustack
    a = uaddr("one")
    res, dids = send(st, [a])
    path = unsub_url(st, dids[a])
    c = st.ph.client()
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    r = c.post(path, data="List-Unsubscribe=One-Click", headers=hdr)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Unsubscribed" in r.text
    evs = events(st, res["id"], "unsubscribed")
    assert len(evs) == 1
    e = evs[0]
    assert e["delivery_id"] == dids[a] and e["recipient"] == a and e["stream"] == "broadcast"
    assert e["data"]["method"] == "one_click"
    assert suppression(st, a) == "broadcast|unsubscribe"
    # again: same answer, no second event
    r = c.post(path, data="List-Unsubscribe=One-Click", headers=hdr)
    assert r.status_code == 200
    time.sleep(0.3)
    assert len(events(st, res["id"], "unsubscribed")) == 1
    # the page now says so, without the button
    r = c.get(path)
    assert r.status_code == 200 and "<form" not in r.text
    # broadcast mail to the address is suppressed; transactional mail still goes
    res2, _ = send(st, [a], wait=False)
    assert res2["recipients"][0]["status"] == "suppressed"
    res3, _ = send(st, [a], stream="transactional", wait=False)
    assert res3["recipients"][0]["status"] == "queued"


def test_multipart_post(ustack):
    st = ustack
    a = uaddr("multi")
    res, dids = send(st, [a])
    path = unsub_url(st, dids[a])
    r = requests.post(st.ph.client().base + path,
                      files={"List-Unsubscribe": (None, "One-Click")}, timeout=10)
    assert r.status_code == 200, r.text
    evs = events(st, res["id"], "unsubscribed")
    assert [e["data"]["method"] for e in evs] == ["one_click_multipart"]
    assert suppression(st, a) == "broadcast|unsubscribe"


def test_post_without_one_click_body_is_refused(ustack):
    st = ustack
    a = uaddr("nobody")
    res, dids = send(st, [a])
    path = unsub_url(st, dids[a])
    c = st.ph.client()
    r = c.post(path, data="", validate=False)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/html")
    time.sleep(0.3)
    assert events(st, res["id"], "unsubscribed") == []
    assert suppression(st, a) == ""


def test_bad_tokens(ustack):
    st = ustack
    a = uaddr("bad")
    res, dids = send(st, [a])
    path = unsub_url(st, dids[a])
    tok = path[len("/u/"):]
    i = len(tok) // 2
    tampered = "/u/" + tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1:]
    c = st.ph.client()
    for p in (tampered, "/u/x", "/u/" + "A" * 300):
        r = c.get(p, validate=False)
        assert r.status_code == 400, p
        assert r.headers["Content-Type"].startswith("text/html")
        assert "<form" not in r.text
        r = c.post(p, data="List-Unsubscribe=One-Click", validate=False,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400
    time.sleep(0.3)
    assert events(st, res["id"], "unsubscribed") == []
    assert suppression(st, a) == ""


def test_campaign_contact_unsubscribed(ustack):
    """A message of a campaign: the contact of the campaign's list becomes unsubscribed
    (rows made with SQL here; the campaigns API is issue #8's)."""
    st = ustack
    a = uaddr("contact")
    other = uaddr("other")
    res, dids = send(st, [a])
    acc = st.account
    lst, cmp = "lst_" + sl.uid(22), "cmp_" + sl.uid(22)
    st.db.sql("INSERT INTO lists (account_id, id, name) VALUES (%s, %s, 'news')" %
              (sl.lit(acc), sl.lit(lst)))
    st.db.sql("INSERT INTO contacts (account_id, list_id, email) VALUES (%s, %s, %s), (%s, %s, %s)"
              % (sl.lit(acc), sl.lit(lst), sl.lit(a), sl.lit(acc), sl.lit(lst), sl.lit(other)))
    st.db.sql("INSERT INTO campaigns (account_id, id, name, list_id, content) VALUES"
              " (%s, %s, 'weekly', %s, '{}')" % (sl.lit(acc), sl.lit(cmp), sl.lit(lst)))
    st.db.sql("UPDATE messages SET campaign_id = %s WHERE account_id = %s AND id = %s" %
              (sl.lit(cmp), sl.lit(acc), sl.lit(res["id"])))
    path = unsub_url(st, dids[a])
    r = st.ph.client().post(path, data="List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    rows = dict(st.db.rows("SELECT email, status FROM contacts WHERE list_id = %s" % sl.lit(lst)))
    assert rows == {a: "unsubscribed", other: "subscribed"}
    assert len(events(st, res["id"], "unsubscribed")) == 1
