"""Open and click tracking (issue #7; API.md "Public endpoints", "Events").

One private Posthorn for the module (own database and Redis, so the per-address rate limit
of /t/ is this module's alone) with a worker in POSTHORN_DELIVERY=file mode. A message sent
with tracking {"opens": true, "clicks": true} has its html links rewritten to
PUBLIC_URL/t/c/<token> and a pixel PUBLIC_URL/t/o/<token> before </body>, per recipient; the
text part keeps the original URLs; DKIM (rsa and ed25519, keys set up as in
test_worker_signing.py) verifies with dkimpy for every recipient's own message. The pixel
records `opened` (first_open true, then false); a click answers 302 to the stored URL and
records `clicked`; tampered tokens answer 400 (click) or the same GIF (open) and record
nothing. Untracked mail keeps its html and its shared body."""
import json
import os
import re
import tempfile
import time
import urllib.parse

import pytest
import requests

import sendlib as sl
from harness import posthorn as hph
from harness import redis as hredis
from test_worker_signing import DOMAIN, Signing, split_file

GIF_MAGIC = b"GIF89a"

HTML = (
    "<!DOCTYPE html><html><body>"
    "<p>Hi {{name}}, your order:</p>"
    "<a href=\"https://shop.example/orders/A-1001?utm_source=mail&amp;utm_medium=email\">order</a>"
    "<A HREF='http://shop.example/UPPER'>upper</A>"
    "<a href=mailto:help@shop.example>mail us</a>"
    "<a href=\"tel:+4930123456\">call</a>"
    "<a href=\"#top\">top</a>"
    "<!-- <a href=\"https://hidden.example/commented\">hidden</a> -->"
    "<a href=\"https://shop.example/orders/A-1001?utm_source=mail&amp;utm_medium=email\">again</a>"
    "</body></html>")
TEXT = "Hi {{name}}, your order: https://shop.example/orders/A-1001?utm_source=mail&utm_medium=email\n"
ORDER_URL = "https://shop.example/orders/A-1001?utm_source=mail&utm_medium=email"


@pytest.fixture(scope="module")
def tstack(tmp_root, pg, spec):
    work = tempfile.mkdtemp(prefix="ph-track-", dir=tmp_root)
    os.chmod(work, 0o755)
    rd = tempfile.mkdtemp(prefix="redis-", dir=tmp_root)
    r = hredis.RedisServer(rd)
    hph.register_log("redis (tracking :%d)" % r.port, r.log_path)
    db = pg.fresh_database("ph_tracking_%d" % os.getpid())
    ph = hph.Posthorn(work, db, r.url, spec=spec)
    try:
        ph.migrate()
        st = sl.Stack(ph, pg)
        st.worker = ph.worker_proc()
        st.signing = Signing(st, tempfile.mkdtemp(prefix="sig-", dir=work))
        st.signing.insert_domain()
        yield st
    finally:
        ph.stop_all()
        r.destroy()


def send(st, n=2, tracking=None, html=HTML, text=TEXT, stream=None, sender="news@" + DOMAIN):
    rcpts = [{"email": "r%d-%s@example.com" % (i, sl.uid(6).lower()), "name": "R%d" % i}
             for i in range(n)]
    body = sl.msg(**{"from": {"email": sender, "name": "News"}, "to": rcpts,
                     "subject": "Order {{name}}", "html": html, "text": text,
                     "data": {"name": "Ann"}})
    if tracking is not None:
        body["tracking"] = tracking
    if stream:
        body["stream"] = stream
    r = st.client.post("/v1/messages", json=body)
    assert r.status_code == 202, r.text
    res = r.json()
    dids = {x["email"]: x["delivery_id"] for x in res["recipients"]}
    sl.wait_files(st.mail_dir, list(dids.values()), timeout=30, procs=[st.worker])
    return res["id"], dids


def parts(msg_bytes):
    m = sl.parse_mail(msg_bytes)
    html = [p.get_content() for p in m.walk() if p.get_content_type() == "text/html"]
    text = [p.get_content() for p in m.walk() if p.get_content_type() == "text/plain"]
    return (html[0] if html else None), (text[0] if text else None)


def event_rows(st, mid, typ):
    """The message's events of one type as rows of the events table (the columns GET
    /v1/events shows), oldest first."""
    out = st.db.sql(
        "SELECT coalesce(json_agg(json_build_object('type', type, 'message_id', message_id,"
        " 'delivery_id', delivery_id, 'recipient', recipient, 'stream', stream, 'data', data)"
        " ORDER BY id), '[]') FROM events WHERE account_id = %s AND message_id = %s"
        " AND type = %s" % (sl.lit(st.account), sl.lit(mid), sl.lit(typ)))
    return json.loads(out or "[]")


def events(st, mid, typ, want=None, timeout=10):
    """The message's events of one type, oldest first, read from the events table (the
    columns GET /v1/events shows), waiting (briefly) until there are `want`."""
    deadline = time.monotonic() + timeout
    while True:
        evs = event_rows(st, mid, typ)
        if want is None or len(evs) >= want or time.monotonic() > deadline:
            return evs
        time.sleep(0.1)


def public(st):
    return st.ph.env["POSTHORN_PUBLIC_URL"]


def tracked_links(html, st):
    return re.findall(re.escape(public(st)) + r"/t/c/([A-Za-z0-9_-]+)", html)


def pixel_token(html, st):
    m = re.search(r'<img src="' + re.escape(public(st)) +
                  r'/t/o/([A-Za-z0-9_-]+)" width="1" height="1" alt="">', html)
    return m.group(1) if m else None


def tamper(tok):
    i = len(tok) // 2
    return tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1:]


@pytest.fixture(scope="module")
def tracked(tstack):
    """One tracked message to two recipients: (message id, {email: delivery id},
    {delivery id: (signed message bytes, html, text)})."""
    mid, dids = send(tstack, tracking={"opens": True, "clicks": True})
    out = {}
    for did in dids.values():
        _, _, msg = split_file(sl.read_mail(tstack.mail_dir, did))
        html, text = parts(msg)
        out[did] = (msg, html, text)
    return mid, dids, out


def test_links_rewritten_pixel_added_text_untouched(tstack, tracked):
    st = tstack
    mid, dids, files = tracked
    all_tokens = set()
    for did, (msg, html, text) in files.items():
        toks = tracked_links(html, st)
        # the two order links and the upper-case one; not mailto, tel, #top or the comment
        assert len(toks) == 3, html
        assert toks[0] == toks[2] and toks[0] != toks[1]   # same URL, same token
        assert "shop.example/orders" not in html and "shop.example/UPPER" not in html, html
        assert "href=mailto:help@shop.example" in html
        assert 'href="tel:+4930123456"' in html and 'href="#top"' in html
        assert '<a href="https://hidden.example/commented">' in html
        pix = pixel_token(html, st)
        assert pix, html
        assert html.index(pix) < html.index("</body>")
        # the text part keeps the original URL
        assert ORDER_URL in text, text
        assert "/t/c/" not in text and "/t/o/" not in text
        all_tokens |= set(toks) | {pix}
    # every recipient has its own tokens
    assert len(all_tokens) == 6, all_tokens   # per recipient: 2 distinct links + the pixel


def test_tracked_mail_is_signed_per_recipient(tstack, tracked):
    st = tstack
    _, _, files = tracked
    bhs = set()
    for did, (msg, html, text) in files.items():
        assert st.signing.verify_all(msg) == [True, True], msg[:2000]
        tags = [dict(t.split("=", 1) for t in re.sub(rb"\s+", b"", v).decode().split(";") if t)
                for k, v in __import__("dkim").DKIM(msg).headers if k.lower() == b"dkim-signature"]
        assert len({t["bh"] for t in tags}) == 1
        bhs |= {t["bh"] for t in tags}
        # one changed byte in the html breaks both signatures
        i = msg.index(b"/t/c/") + 6
        bad = msg[:i] + (b"x" if msg[i:i + 1] != b"x" else b"y") + msg[i + 1:]
        assert st.signing.verify_all(bad) == [False, False]
    assert len(bhs) == 2, "each recipient's body (its own tokens) has its own body hash"


def test_open_pixel_records_first_and_later_opens(tstack, tracked):
    st = tstack
    mid, dids, files = tracked
    did = sorted(files)[0]
    pix = pixel_token(files[did][1], st)
    c = st.ph.client()
    r = c.get("/t/o/" + pix, headers={"User-Agent": "MailApp/1.0 " + "x" * 600})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/gif"
    assert "no-store" in r.headers["Cache-Control"]
    assert r.content.startswith(GIF_MAGIC) and len(r.content) == 43
    evs = events(st, mid, "opened", want=1)
    assert len(evs) == 1
    e = evs[0]
    assert e["delivery_id"] == did and e["message_id"] == mid
    assert e["recipient"] in dids and dids[e["recipient"]] == did
    assert e["data"]["first_open"] is True
    assert e["data"]["user_agent"].startswith("MailApp/1.0 xxx")
    assert len(e["data"]["user_agent"]) == 512
    r = c.get("/t/o/" + pix, headers={"User-Agent": "Other/2"})
    assert r.status_code == 200
    evs = events(st, mid, "opened", want=2)
    assert [x["data"]["first_open"] for x in evs] == [True, False]
    assert evs[1]["data"]["user_agent"] == "Other/2"
    # HEAD answers the same and records nothing
    r = requests.head(c.base + "/t/o/" + pix, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/gif"
    time.sleep(0.3)
    assert len(events(st, mid, "opened")) == 2


def test_bad_open_token_answers_the_gif_and_records_nothing(tstack, tracked):
    st = tstack
    mid, dids, files = tracked
    did = sorted(files)[1]
    pix = pixel_token(files[did][1], st)
    click = tracked_links(files[did][1], st)[0]
    c = st.ph.client()
    for tok in (tamper(pix), "x", "A" * 300, click):   # a click token is not an open token
        r = c.get("/t/o/" + tok)
        assert r.status_code == 200, tok
        assert r.content.startswith(GIF_MAGIC)
        assert "no-store" in r.headers["Cache-Control"]
    time.sleep(0.5)
    evs = [e for e in events(st, mid, "opened") if e["delivery_id"] == did]
    assert evs == []


def test_click_redirects_to_stored_url_and_records(tstack, tracked):
    st = tstack
    mid, dids, files = tracked
    did = sorted(files)[0]
    toks = tracked_links(files[did][1], st)
    c = st.ph.client()
    # HEAD (link scanners) sees the redirect and records nothing
    r = requests.head(c.base + "/t/c/" + toks[0], timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == ORDER_URL
    r = c.get("/t/c/" + toks[0], headers={"User-Agent": "Browser/9"})
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == ORDER_URL      # &amp; decoded: what a browser follows
    r = c.get("/t/c/" + toks[1])
    assert r.status_code == 302
    assert r.headers["Location"] == "http://shop.example/UPPER"
    evs = events(st, mid, "clicked", want=2)
    assert [e["data"]["url"] for e in evs] == [ORDER_URL, "http://shop.example/UPPER"]
    assert evs[0]["data"]["user_agent"] == "Browser/9"
    assert all(e["delivery_id"] == did for e in evs)


def test_tampered_click_token_is_400_and_records_nothing(tstack, tracked):
    st = tstack
    mid, dids, files = tracked
    did = sorted(files)[1]
    html = files[did][1]
    tok = tracked_links(html, st)[0]
    pix = pixel_token(html, st)
    c = st.ph.client()
    for bad in (tamper(tok), tok[:-2], "x", pix, "A" * 300):
        r = c.get("/t/c/" + bad)
        assert r.status_code == 400, (bad, r.status_code)
        assert "Location" not in r.headers
    time.sleep(0.5)
    assert [e for e in events(st, mid, "clicked") if e["delivery_id"] == did] == []


def test_click_token_of_another_account_or_deleted_link_is_400(tstack, tracked):
    """The redirect only goes to a URL stored for the delivery's own message: a valid token
    whose link row is gone answers 400."""
    st = tstack
    mid, dids, files = tracked
    did = sorted(files)[1]
    tok = tracked_links(files[did][1], st)[1]
    st.db.sql("DELETE FROM tracked_links WHERE message_id = %s AND url = %s" %
              (sl.lit(mid), sl.lit("http://shop.example/UPPER")))
    r = st.ph.client().get("/t/c/" + tok)
    assert r.status_code == 400


def test_untracked_mail_unchanged(tstack):
    st = tstack
    mid, dids = send(st)
    bodies = set()
    for did in dids.values():
        _, _, msg = split_file(sl.read_mail(st.mail_dir, did))
        html, text = parts(msg)
        assert "/t/c/" not in html and "/t/o/" not in html
        assert "https://shop.example/orders/A-1001?utm_source=mail&amp;utm_medium=email" in html
        assert st.signing.verify_all(msg) == [True, True]
        bodies.add(msg.split(b"\r\n\r\n", 1)[1])
    assert len(bodies) == 1, "untracked recipients share one body"
    assert st.db.one("SELECT count(*) FROM tracked_links WHERE message_id = %s" % sl.lit(mid)) \
        in (0, "0")


def test_opens_only_and_no_html(tstack):
    st = tstack
    mid, dids = send(st, n=1, tracking={"opens": True, "clicks": False})
    did = list(dids.values())[0]
    _, _, msg = split_file(sl.read_mail(st.mail_dir, did))
    html, text = parts(msg)
    assert pixel_token(html, st)
    assert tracked_links(html, st) == []
    assert ORDER_URL.replace("&", "&amp;") in html
    assert st.signing.verify_all(msg) == [True, True]
    # text only: nothing to track, delivered as usual
    mid2, dids2 = send(st, n=1, tracking={"opens": True, "clicks": True}, html=None)
    _, _, msg2 = split_file(sl.read_mail(st.mail_dir, list(dids2.values())[0]))
    h2, t2 = parts(msg2)
    assert h2 is None and ORDER_URL in t2


def test_tracked_broadcast_keeps_list_unsubscribe(tstack):
    st = tstack
    mid, dids = send(st, n=2, tracking={"opens": True, "clicks": True}, stream="broadcast")
    for did in dids.values():
        _, _, msg = split_file(sl.read_mail(st.mail_dir, did))
        head = msg.split(b"\r\n\r\n", 1)[0]
        assert re.search(rb"(?im)^List-Unsubscribe:", head)
        assert st.signing.verify_all(msg) == [True, True]
        html, _ = parts(msg)
        assert len(tracked_links(html, st)) == 3 and pixel_token(html, st)


def test_unsigned_tracked_mail(tstack):
    """From a domain without keys: per-recipient content, no signatures."""
    st = tstack
    mid, dids = send(st, n=2, tracking={"opens": True, "clicks": True},
                     sender="news@unsigned.example")
    for did in dids.values():
        _, _, msg = split_file(sl.read_mail(st.mail_dir, did))
        assert b"DKIM-Signature" not in msg
        html, _ = parts(msg)
        assert len(tracked_links(html, st)) == 3


def test_public_routes_rate_limited_per_address(tstack, tracked):
    """Last in the module: it empties this address's bucket."""
    st = tstack
    s = requests.Session()
    base = st.ph.client().base
    codes = []
    for _ in range(300):
        r = s.get(base + "/t/o/x", timeout=10)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["Content-Type"].startswith("application/problem+json")
            break
    assert 429 in codes, "no 429 after %d requests" % len(codes)
    assert codes[0] == 200
    # clicks share the bucket
    r = s.get(base + "/t/c/x", timeout=10)
    assert r.status_code in (400, 429)
    # it refills
    time.sleep(1.2)
    assert s.get(base + "/t/o/x", timeout=10).status_code == 200
