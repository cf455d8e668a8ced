"""POST /v1/messages happy path, GET /v1/messages/{id}, GET /v1/messages (filters, cursor
paging), DELETE /v1/messages/{id}; unusual valid addresses; suppressions decided at accept;
and, with a posthorn-worker in POSTHORN_DELIVERY=file mode, the files carry exactly what was
posted. API-only tests share the session stack (each in its own account); tests with a
worker get a private database and mail directory."""
import os
import time

import pytest

import sendlib as sl

BLOB = os.urandom(50 * 1024) + bytes(range(256))   # binary attachment, random bytes

RICH = {
    "from": {"email": "orders@shop.example", "name": "Bücherei Ölmühle"},
    "to": [{"email": "ann@example.com", "name": "Zoë Ünïcode"},
           "Bob Smith <bob@example.org>"],
    "cc": [{"email": "carol@example.net", "name": "Müller, Hans"}],
    "bcc": [{"email": "dave@example.com", "name": "Secret Dave"}],
    "reply_to": {"email": "help@shop.example", "name": "Hilfe & Support"},
    "subject": "Bestellung bestätigt ✓ — {{name}}",
    "text": "Hallo {{name}},\nIhre Bestellung {{order.id}} ist unterwegs.\n",
    "html": "<p>Hallo {{name}}, Bestellung <b>{{order.id}}</b></p>",
    "data": {"name": "Zoë", "order": {"id": "A-1001"}},
    "headers": {"X-Campaign": "spring", "X-Order-Ref": "A-1001 / 7"},
    "attachments": [{"filename": "rechnung-ä.bin", "content_type": "application/octet-stream",
                     "content": sl.b64(BLOB)}],
    "metadata": {"order_id": "A-1001", "customer": "42"},
    "tags": ["receipt", "spring-2026"],
}
EXPECT_RCPTS = [("ann@example.com", "to", "Zoë Ünïcode"), ("bob@example.org", "to", "Bob Smith"),
                ("carol@example.net", "cc", "Müller, Hans"), ("dave@example.com", "bcc", "Secret Dave")]


def check_accepted(r, emails):
    assert r.status_code == 202, (r.status_code, r.text)
    body = r.json()
    assert body["id"].startswith("msg_")
    assert body["status"] == "queued", body
    assert [x["email"] for x in body["recipients"]] == emails, body
    for x in body["recipients"]:
        assert x["delivery_id"].startswith("dlv_") and x["status"] == "queued", x
    assert len({x["delivery_id"] for x in body["recipients"]}) == len(emails)
    return body


def test_send_rich_message_and_read_it_back(new_account):
    acc = new_account()
    c = acc.client
    r = c.post("/v1/messages", json=RICH)
    body = check_accepted(r, [e for e, _, _ in EXPECT_RCPTS])
    by_email = {x["email"]: x["delivery_id"] for x in body["recipients"]}

    g = c.get("/v1/messages/" + body["id"])
    assert g.status_code == 200, g.text
    m = g.json()
    assert m["id"] == body["id"]
    assert m["stream"] == "transactional"
    assert m["from"] == {"email": "orders@shop.example", "name": "Bücherei Ölmühle"}
    assert m["reply_to"] == {"email": "help@shop.example", "name": "Hilfe & Support"}
    assert m["to"] == [{"email": "ann@example.com", "name": "Zoë Ünïcode"},
                       {"email": "bob@example.org", "name": "Bob Smith"}], m["to"]
    assert m["cc"] == [{"email": "carol@example.net", "name": "Müller, Hans"}], m["cc"]
    assert "dave@example.com" not in str(m["to"]) + str(m["cc"])
    assert m["subject"] == RICH["subject"]
    assert m["tags"] == RICH["tags"]
    assert m["metadata"] == RICH["metadata"]
    assert m["sandbox"] is False and m["send_at"] is None
    got = sorted((x["email"], x["kind"], x["name"], x["delivery_id"], x["status"]) for x in m["recipients"])
    assert got == sorted((e, k, n, by_email[e], "queued") for e, k, n in EXPECT_RCPTS), got
    ev = sorted((e["type"], e["delivery_id"], e["recipient"]) for e in m["events"])
    assert ev == sorted(("queued", by_email[e], e) for e, _, _ in EXPECT_RCPTS), m["events"]
    assert all(e["id"].startswith("evt_") for e in m["events"])

    # Another account does not see it (404, not 403).
    other = new_account()
    assert other.client.get("/v1/messages/" + body["id"]).status_code == 404
    assert c.get("/v1/messages/msg_doesnotexist000000000").status_code == 404


def test_list_filters_and_cursor_paging(new_account):
    acc = new_account()
    c = acc.client
    tag_a, tag_b = "a-" + sl.uid(), "b-" + sl.uid()
    posted = []

    def send(**kw):
        r = c.post("/v1/messages", json=sl.msg(**kw))
        assert r.status_code == 202, r.text
        posted.append(r.json())
        time.sleep(0.02)   # distinct created_at values for since/until
        return r.json()

    m1 = send(to=["a1@example.com"], tags=[tag_a])
    m2 = send(to=["b1@example.com"], tags=[tag_b], stream="broadcast")
    m3 = send(to=["c1@example.com"], cc=["a1@example.com"], tags=[tag_a, tag_b])
    m4 = send(to=["d1@example.com", "d2@example.com"])
    d = c.delete("/v1/messages/" + m4["id"])
    assert d.status_code == 200, d.text
    ids = [m1["id"], m2["id"], m3["id"], m4["id"]]

    def listed(**params):
        items, _ = sl.page_all(c, "/v1/messages", params, limit=1000)
        return [x["id"] for x in items]

    everything = c.get("/v1/messages").json()
    assert [x["id"] for x in everything["data"]] == list(reversed(ids)), "not newest first"
    assert everything["next_cursor"] is None
    row3 = [x for x in everything["data"] if x["id"] == m3["id"]][0]
    assert row3["tags"] == [tag_a, tag_b] and row3["stream"] == "transactional"
    assert [(x["email"], x["status"]) for x in row3["recipients"]] == \
        [("c1@example.com", "queued"), ("a1@example.com", "queued")]

    assert listed(tag=tag_a) == [m3["id"], m1["id"]]
    assert listed(tag=tag_b) == [m3["id"], m2["id"]]
    assert listed(tag="no-such-tag") == []
    assert listed(stream="broadcast") == [m2["id"]]
    assert listed(stream="transactional") == [m4["id"], m3["id"], m1["id"]]
    assert listed(recipient="a1@example.com") == [m3["id"], m1["id"]]
    assert listed(recipient="a1@EXAMPLE.com") == [m3["id"], m1["id"]], "domain is case-insensitive"
    assert listed(recipient="d2@example.com") == [m4["id"]]
    assert listed(status="cancelled") == [m4["id"]]
    assert listed(status="queued") == [m3["id"], m2["id"], m1["id"]]
    assert listed(status="delivered") == []
    assert listed(tag=tag_a, recipient="c1@example.com") == [m3["id"]]
    created = {x["id"]: x["created_at"] for x in everything["data"]}
    assert listed(since=created[m2["id"]]) == [m4["id"], m3["id"], m2["id"]]
    assert listed(until=created[m3["id"]]) == [m2["id"], m1["id"]]
    assert listed(since=created[m2["id"]], until=created[m4["id"]]) == [m3["id"], m2["id"]]

    # limit=1 walks everything once, newest first; cursors keep the filters.
    items, pages = sl.page_all(c, "/v1/messages", limit=1)
    assert [x["id"] for x in items] == list(reversed(ids)) and pages == 4
    items, pages = sl.page_all(c, "/v1/messages", {"tag": tag_a}, limit=1)
    assert [x["id"] for x in items] == [m3["id"], m1["id"]] and pages == 2

    for bad in ({"status": "nope"}, {"stream": "all"}, {"since": "yesterday"},
                {"until": "2026-13-01T00:00:00Z"}, {"recipient": "not-an-address"},
                {"limit": "0"}, {"limit": "1001"}, {"cursor": "garbage!!"}):
        r = c.get("/v1/messages", params=bad)
        assert r.status_code == 422, (bad, r.status_code, r.text)
        assert list(bad)[0] in sl.fields(r), (bad, r.text)

    # A cursor is bound to its account.
    first = c.get("/v1/messages", params={"limit": 1}).json()
    other = new_account()
    r = other.client.get("/v1/messages", params={"limit": 1, "cursor": first["next_cursor"]})
    assert r.status_code == 422, r.text


def test_delete_cancels_queued_deliveries(new_account):
    c = new_account().client
    r = c.post("/v1/messages", json=sl.msg(to=["x1@example.com", "x2@example.com"],
                                           bcc=["x3@example.com"]))
    body = check_accepted(r, ["x1@example.com", "x2@example.com", "x3@example.com"])
    dids = {x["delivery_id"] for x in body["recipients"]}
    d = c.delete("/v1/messages/" + body["id"])
    assert d.status_code == 200, d.text
    m = d.json()
    assert m["cancelled"] == 3, m
    assert {x["status"] for x in m["recipients"]} == {"cancelled"}, m["recipients"]
    g = c.get("/v1/messages/" + body["id"]).json()
    assert {x["status"] for x in g["recipients"]} == {"cancelled"}
    cancelled = sorted(e["delivery_id"] for e in g["events"] if e["type"] == "cancelled")
    assert cancelled == sorted(dids), g["events"]
    assert [e["type"] for e in g["events"]].count("queued") == 3
    d2 = c.delete("/v1/messages/" + body["id"])
    assert d2.status_code == 200 and d2.json()["cancelled"] == 0, d2.text
    g2 = c.get("/v1/messages/" + body["id"]).json()
    assert len([e for e in g2["events"] if e["type"] == "cancelled"]) == 3, "second DELETE added events"
    assert c.delete("/v1/messages/msg_doesnotexist000000000").status_code == 404

    # A scheduled message is cancelled too.
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    r = c.post("/v1/messages", json=sl.msg(send_at=at))
    assert r.status_code == 202 and r.json()["status"] == "scheduled", r.text
    assert r.json()["recipients"][0]["status"] == "scheduled"
    d = c.delete("/v1/messages/" + r.json()["id"])
    assert d.status_code == 200 and d.json()["cancelled"] == 1, d.text


@pytest.mark.parametrize("given,expected,smtputf8", [
    ('"john doe"@example.com', '"john doe"@example.com', False),
    ("ann+receipts@example.com", "ann+receipts@example.com", False),
    ("o'brien@example.com", "o'brien@example.com", False),
    ("ann@bücher.example", "ann@xn--bcher-kva.example", False),
    ("Ann@EXAMPLE.Com", None, False),     # domain case is not significant
    ("jöran@example.com", "jöran@example.com", True),
    ("用户@例子.example", "用户@xn--fsqu00a.example", True),
])
def test_unusual_valid_addresses(ph, pg, new_account, given, expected, smtputf8):
    c = new_account().client
    for form in ({"email": given, "name": "N"}, given):
        r = c.post("/v1/messages", json=sl.msg(to=[form]))
        assert r.status_code == 202, (form, r.status_code, r.text)
        rc = r.json()["recipients"][0]
        if expected is not None:
            assert rc["email"] == expected, (form, rc)
        else:
            assert rc["email"].split("@")[1] == "example.com", rc
        db = sl.Db(pg, ph)
        got = db.one("SELECT smtputf8 FROM deliveries WHERE id = %s" % sl.lit(rc["delivery_id"]))
        assert got == ("t" if smtputf8 else "f"), (form, "smtputf8", got)


def test_suppressions_at_accept(new_account):
    c = new_account().client
    assert c.post("/v1/suppressions", json={"email": "Promo@Example.com",
                                            "stream": "broadcast"}).status_code == 201
    assert c.post("/v1/suppressions", json={"email": "gone@example.com"}).status_code == 201

    def send(stream, to):
        r = c.post("/v1/messages", json=sl.msg(stream=stream, to=to))
        assert r.status_code == 202, r.text
        return r.json()

    # broadcast-only entry: broadcast suppressed (any case), transactional not
    b = send("broadcast", ["PROMO@example.COM", "other@example.com"])
    st = {x["email"].lower(): x["status"] for x in b["recipients"]}
    assert st == {"promo@example.com": "suppressed", "other@example.com": "queued"}, b
    assert b["status"] == "queued"
    t = send("transactional", ["promo@example.com"])
    assert t["status"] == "queued" and t["recipients"][0]["status"] == "queued", t
    # "all" entry: both streams
    all_ids = []
    for stream in ("transactional", "broadcast"):
        a = send(stream, ["Gone@Example.com"])
        all_ids.append(a["id"])
        assert a["status"] == "suppressed" and a["recipients"][0]["status"] == "suppressed", a
        m = c.get("/v1/messages/" + a["id"]).json()
        assert [x["status"] for x in m["recipients"]] == ["suppressed"]
        assert [(e["type"], e["delivery_id"]) for e in m["events"]] == \
            [("suppressed", a["recipients"][0]["delivery_id"])], m["events"]
    m = c.get("/v1/messages/" + b["id"]).json()
    ev = {e["delivery_id"]: e["type"] for e in m["events"]}
    sup = [x["delivery_id"] for x in b["recipients"] if x["status"] == "suppressed"][0]
    ok = [x["delivery_id"] for x in b["recipients"] if x["status"] == "queued"][0]
    assert ev == {sup: "suppressed", ok: "queued"}, m["events"]
    # Suppressed deliveries are not counted as queued.
    lst = c.get("/v1/messages", params={"status": "suppressed"}).json()["data"]
    assert sorted(x["id"] for x in lst) == sorted([b["id"]] + all_ids)
    lst = c.get("/v1/messages", params={"status": "queued"}).json()["data"]
    assert sorted(x["id"] for x in lst) == sorted([b["id"], t["id"]])


# --- through a worker: the written files --------------------------------------------------
@pytest.fixture
def worker_stack(make_posthorn, pg):
    ph = make_posthorn()
    st = sl.Stack(ph, pg)
    st.worker = ph.worker_proc()
    return st


def test_files_carry_exactly_what_was_posted(worker_stack):
    st = worker_stack
    r = st.client.post("/v1/messages", json=RICH)
    body = check_accepted(r, [e for e, _, _ in EXPECT_RCPTS])
    dids = {x["email"]: x["delivery_id"] for x in body["recipients"]}
    sl.wait_files(st.mail_dir, list(dids.values()), timeout=60, procs=[st.worker])

    files = sl.mail_files(st.mail_dir)
    for rcpt, did in dids.items():
        assert files[did] == [1], (rcpt, files[did])
        raw = sl.read_mail(st.mail_dir, did)
        assert max(raw) < 128, "not 7-bit"
        for line in raw.split(b"\r\n"):
            assert len(line) <= 998 and b"\n" not in line and b"\r" not in line
        m = sl.parse_mail(raw)
        assert m["Delivered-To"] == rcpt
        frm = m["From"].addresses
        assert [(a.display_name, a.addr_spec) for a in frm] == [("Bücherei Ölmühle", "orders@shop.example")]
        assert [(a.display_name, a.addr_spec) for a in m["To"].addresses] == \
            [("Zoë Ünïcode", "ann@example.com"), ("Bob Smith", "bob@example.org")]
        assert [(a.display_name, a.addr_spec) for a in m["Cc"].addresses] == \
            [("Müller, Hans", "carol@example.net")]
        assert [(a.display_name, a.addr_spec) for a in m["Reply-To"].addresses] == \
            [("Hilfe & Support", "help@shop.example")]
        assert m["Bcc"] is None
        head = raw.split(b"\r\n\r\n", 1)[0]
        # dave appears only in his own copy's Delivered-To line, never in a header of others
        assert head.count(b"dave@example.com") == (1 if rcpt == "dave@example.com" else 0), rcpt
        assert b"Secret Dave" not in raw and b"Secret" not in raw
        assert str(m["Subject"]) == "Bestellung bestätigt ✓ — Zoë"
        assert m["X-Campaign"] == "spring" and m["X-Order-Ref"] == "A-1001 / 7"
        assert m["Message-ID"] and m["Date"] and m["MIME-Version"] == "1.0"
        text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text == "Hallo Zoë,\nIhre Bestellung A-1001 ist unterwegs.\n", text
        html = m.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert html.rstrip("\n") == "<p>Hallo Zoë, Bestellung <b>A-1001</b></p>", html
        atts = list(m.iter_attachments())
        assert [a.get_filename() for a in atts] == ["rechnung-ä.bin"]
        assert atts[0].get_content_type() == "application/octet-stream"
        assert atts[0].get_content() == BLOB, "attachment not byte-identical"

    def all_delivered():
        g = st.client.get("/v1/messages/" + body["id"]).json()
        return all(x["status"] == "delivered" for x in g["recipients"]) and g
    g = sl.hph.wait_until(all_delivered, timeout=30, what="all recipients delivered")
    assert sorted(e["delivery_id"] for e in g["events"] if e["type"] == "delivered") == sorted(dids.values())


def test_suppressed_recipient_gets_no_file(worker_stack):
    st = worker_stack
    c = st.client
    assert c.post("/v1/suppressions", json={"email": "promo@example.com",
                                            "stream": "broadcast"}).status_code == 201
    b = c.post("/v1/messages", json=sl.msg(stream="broadcast",
                                           to=["Promo@Example.com", "fine@example.com"]))
    t = c.post("/v1/messages", json=sl.msg(stream="transactional", to=["promo@example.com"]))
    assert b.status_code == 202 and t.status_code == 202, (b.text, t.text)
    sup = [x["delivery_id"] for x in b.json()["recipients"] if x["status"] == "suppressed"]
    fine = [x["delivery_id"] for x in b.json()["recipients"] if x["status"] == "queued"]
    tx = [x["delivery_id"] for x in t.json()["recipients"]]
    assert len(sup) == 1 and len(fine) == 1 and t.json()["recipients"][0]["status"] == "queued"
    sl.wait_files(st.mail_dir, fine + tx, timeout=60, procs=[st.worker])
    # Both the message after it and the one with it are written: the suppressed one never is.
    time.sleep(1.5)   # a poll interval more, in case it were claimable
    assert sup[0] not in sl.mail_files(st.mail_dir)
    assert st.dlv_states(sup) == {"suppressed": 1}
