"""Lists and contacts (issue #8): POST/GET/DELETE /v1/lists, contacts from a JSON array or a
streamed text/csv body (bad rows reported with their row, a missing email column refused
before anything is stored, a body over POSTHORN_CSV_MAX answered 413 with what was stored,
the API's memory flat while a large CSV streams in), reading and deleting contacts, and
another account's lists answering 404."""
import os
import urllib.parse

import pytest

from harness import posthorn as hph


def csv_body(rows, header="email,first_name,city"):
    return (header + "\n" + "".join(r + "\n" for r in rows)).encode()


def new_list(client, name="Newsletter"):
    r = client.post("/v1/lists", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload_csv(client, lid, body, **kw):
    return client.post("/v1/lists/%s/contacts" % lid, data=body,
                       headers={"Content-Type": "text/csv"}, **kw)


def all_contacts(client, lid, **params):
    out, cursor = [], None
    while True:
        q = dict(params, limit=1000)
        if cursor:
            q["cursor"] = cursor
        r = client.get("/v1/lists/%s/contacts?%s" % (lid, urllib.parse.urlencode(q)))
        assert r.status_code == 200, r.text
        out += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


def test_list_crud_and_isolation(new_account):
    a, b = new_account(), new_account()
    lid = new_list(a.client, "Customers")
    assert a.client.get("/v1/lists/" + lid).json()["name"] == "Customers"
    assert lid in [x["id"] for x in a.client.get("/v1/lists").json()["data"]]
    # another account: 404 everywhere, and its list page does not show the list
    assert b.client.get("/v1/lists/" + lid).status_code == 404
    assert b.client.get("/v1/lists/%s/contacts" % lid).status_code == 404
    assert b.client.post("/v1/lists/%s/contacts" % lid,
                         json=[{"email": "x@example.com"}]).status_code == 404
    assert upload_csv(b.client, lid, csv_body(["x@example.com,X,Y"])).status_code == 404
    assert b.client.delete("/v1/lists/" + lid).status_code == 404
    assert lid not in [x["id"] for x in b.client.get("/v1/lists").json()["data"]]
    r = a.client.post("/v1/lists", json={"name": "", "colour": 1})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"name", "colour"}
    assert a.client.delete("/v1/lists/" + lid).status_code == 204
    assert a.client.get("/v1/lists/" + lid).status_code == 404


def test_json_upload_upserts_and_reports(new_account):
    a = new_account()
    lid = new_list(a.client)
    body = [{"email": "Ann@Example.COM", "data": {"first_name": "Ann", "n": 1}},
            {"email": "bob@example.com", "status": "unsubscribed"},
            {"email": "not-an-address"},
            {"email": "Ann@EXAMPLE.com", "data": {"first_name": "dup"}},
            {"email": "eve@example.com", "status": "nonsense"},
            {"email": "joe@example.com", "colour": "red"}]
    r = a.client.post("/v1/lists/%s/contacts" % lid, json=body)
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["inserted"], j["updated"], j["rejected_count"]) == (2, 0, 4)
    rows = {x["row"]: x["reason"] for x in j["rejected"]}
    assert set(rows) == {2, 3, 4, 5}
    assert "invalid address" in rows[2] and "duplicate" in rows[3] and "status" in rows[4]
    # the domain part is normalised, the local part kept
    c = a.client.get("/v1/lists/%s/contacts/%s" % (lid, "Ann@example.com")).json()
    assert c["email"] == "Ann@example.com" and c["data"] == {"first_name": "Ann", "n": 1}
    assert c["status"] == "subscribed"
    # update: data laid over, status kept unless given
    r = a.client.post("/v1/lists/%s/contacts" % lid,
                      json=[{"email": "Ann@EXAMPLE.com", "data": {"city": "Oslo"}},
                            {"email": "bob@example.com", "data": {"x": "y"}}])
    assert (r.json()["inserted"], r.json()["updated"]) == (0, 2)
    c = a.client.get("/v1/lists/%s/contacts/Ann@example.com" % lid).json()
    assert c["data"] == {"first_name": "Ann", "n": 1, "city": "Oslo"}
    assert a.client.get("/v1/lists/%s/contacts/bob@example.com" % lid).json()["status"] == "unsubscribed"
    assert [x["email"] for x in all_contacts(a.client, lid, status="unsubscribed")] == ["bob@example.com"]
    r = a.client.get("/v1/lists/%s/contacts" % lid, params={"status": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "status", r.text
    assert a.client.delete("/v1/lists/%s/contacts/bob@example.com" % lid).status_code == 204
    assert a.client.get("/v1/lists/%s/contacts/bob@example.com" % lid).status_code == 404
    r = a.client.post("/v1/lists/%s/contacts" % lid, json={"email": "x@example.com"})
    assert r.status_code == 422
    r = a.client.post("/v1/lists/%s/contacts" % lid, json=[{"email": "x@example.com"}] * 10001)
    assert r.status_code == 422
    r = a.client.post("/v1/lists/%s/contacts" % lid, data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_csv_bad_rows_are_reported(new_account):
    a = new_account()
    lid = new_list(a.client)
    long_line = "long@example.com,%s,x" % ("a" * (10 * 1024 * 1024))
    body = (b"email,first_name,city\n"
            b"ann@example.com,Ann,Oslo\n"              # 2
            b"not an address,Bad,X\n"                  # 3
            b"ANN@example.com,Dup,Y\n"                 # 4 (local part differs: a new address)
            b"ann@EXAMPLE.com,Dup,Y\n"                 # 5 duplicate of row 2
            b"bob@example.com,Bob\n"                   # 6 wrong column count
            b"cat@example.com,\xff\xfe,Z\n"            # 7 invalid UTF-8
            + long_line.encode() + b"\n"               # 8 line too long
            + b"dan@example.com,\"Dan, Jr.\",\"Multi\nLine\"\n"   # 9 quoted, embedded newline
            + b"eve@example.com,Eve,Bergen")           # 11, no final newline
    r = upload_csv(a.client, lid, body)
    assert r.status_code == 200, r.text[:2000]
    j = r.json()
    rows = {x["row"]: x["reason"] for x in j["rejected"]}
    assert j["rejected_count"] == 5 and set(rows) == {3, 5, 6, 7, 8}, rows
    assert "invalid address" in rows[3]
    assert "duplicate" in rows[5]
    assert "column count" in rows[6]
    assert "UTF-8" in rows[7]
    assert "too long" in rows[8]
    assert (j["inserted"], j["updated"]) == (4, 0)
    got = {c["email"]: c["data"] for c in all_contacts(a.client, lid)}
    assert got == {"ann@example.com": {"first_name": "Ann", "city": "Oslo"},
                   "ANN@example.com": {"first_name": "Dup", "city": "Y"},
                   "dan@example.com": {"first_name": "Dan, Jr.", "city": "Multi\nLine"},
                   "eve@example.com": {"first_name": "Eve", "city": "Bergen"}}


def test_csv_duplicates_across_chunks(new_account):
    a = new_account()
    lid = new_list(a.client)
    rows = ["u%d@example.com,N%d,C" % (i, i) for i in range(2500)] + ["u5@example.com,again,C"]
    j = upload_csv(a.client, lid, csv_body(rows)).json()
    assert (j["inserted"], j["updated"], j["rejected_count"]) == (2500, 0, 1)
    assert j["rejected"][0]["row"] == 2502 and "duplicate" in j["rejected"][0]["reason"]
    # the same upload again: every row an update
    j = upload_csv(a.client, lid, csv_body(rows[:2500])).json()
    assert (j["inserted"], j["updated"], j["rejected_count"]) == (0, 2500, 0)


def test_csv_without_email_column_stores_nothing(new_account):
    a = new_account()
    lid = new_list(a.client)
    r = upload_csv(a.client, lid, csv_body(["ann@example.com,Ann"], header="mail,name"))
    assert r.status_code == 422
    assert "email" in r.json()["detail"]
    r = upload_csv(a.client, lid, b"")
    assert r.status_code == 422
    assert all_contacts(a.client, lid) == []


def test_csv_over_the_cap(make_posthorn):
    p = make_posthorn(env={"POSTHORN_CSV_MAX": "65536"})
    p.api_proc()
    acc = p.create_account("cap")
    c = p.client(p.create_key(acc))
    lid = new_list(c)
    body = csv_body(["cap%05d@example.com,N,C" % i for i in range(5000)])   # ~125 KB
    # Content-Length over the cap: refused before anything is read
    r = upload_csv(c, lid, body)
    assert r.status_code == 413 and "nothing was stored" in r.json()["detail"]
    assert all_contacts(c, lid) == []

    # chunked: the rows wholly before the cap are stored, and the answer says how many
    def gen():
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]
    r = upload_csv(c, lid, gen())
    assert r.status_code == 413, r.text
    j = r.json()
    stored = len(all_contacts(c, lid))
    assert j["inserted"] == stored and 2000 < stored < 5000
    assert "%d inserted" % stored in j["detail"]


def test_large_csv_streams_with_flat_memory(make_posthorn):
    # Under ASan (make SANITIZE=1) freed memory sits in a quarantine (256 MB by default),
    # which would read as growth: keep it small for this process.
    opts = os.environ.get("ASAN_OPTIONS", "")
    p = make_posthorn()
    api = p.api_proc(env={"ASAN_OPTIONS": (opts + ":" if opts else "") +
                          "quarantine_size_mb=8:thread_local_quarantine_size_kb=256"})
    acc = p.create_account("big")
    c = p.client(p.create_key(acc))
    lid = new_list(c)
    pad = "x" * 20000
    n = 3000                                    # ~60 MB

    def gen():
        yield b"email,pad\n"
        for i in range(n):
            yield ("big%05d@example.com,%s\n" % (i, pad)).encode()
    before = api.vmrss_kb()
    r = upload_csv(c, lid, gen(), timeout=120)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["inserted"] == n
    grown = api.vmhwm_kb() - before
    assert grown < 40 * 1024 + hph.VALGRIND_RSS_SLACK_KB, "posthorn-api grew by %d kB for a 60 MB upload" % grown


def test_bounce_and_complaint_suppressions_set_contact_status(new_account, ph, pg):
    """A suppression whose source is a hard bounce or a complaint (made by the delivery
    engine, or by a feedback source) marks the address in every list of that account:
    subscribed contacts become bounced / complained, compared case-insensitively; other
    statuses, manual suppressions and other accounts are left alone (migration 0010). The
    end-to-end bounce path is in test_campaign_crash.py."""
    import sendlib as sl
    a, b = new_account(), new_account()
    l1, l2, lb = new_list(a.client, "One"), new_list(a.client, "Two"), new_list(b.client, "B")
    rows = ["Bob@Bounce.example,Bob,X", "carl@complain.example,Carl,X",
            "una@bounce2.example,Una,X", "man@manual.example,Man,X"]
    for lid, cl in ((l1, a.client), (l2, a.client), (lb, b.client)):
        r = upload_csv(cl, lid, csv_body(rows))
        assert r.status_code == 200 and r.json()["rejected_count"] == 0, r.text
    r = a.client.post("/v1/lists/%s/contacts" % l2,
                      json=[{"email": "una@bounce2.example", "status": "unsubscribed"}])
    assert r.status_code == 200, r.text
    db = sl.Db(pg, ph)
    acc = sl.lit(a.id)
    db.sql("INSERT INTO suppressions (account_id, email, stream, reason, source) VALUES"
           " (%s, 'bob@bounce.example', 'all', 'hard bounce: 550', 'bounce'),"
           " (%s, 'carl@complain.example', 'broadcast', 'fbl', 'complaint'),"
           " (%s, 'una@bounce2.example', 'all', 'hard bounce: 550', 'bounce'),"
           " (%s, 'man@manual.example', 'all', 'by hand', 'manual')" % (acc, acc, acc, acc))

    def status(cl, lid):
        return {c["email"]: c["status"] for c in all_contacts(cl, lid)}
    want = {"Bob@bounce.example": "bounced", "carl@complain.example": "complained",
            "una@bounce2.example": "bounced", "man@manual.example": "subscribed"}
    assert status(a.client, l1) == want
    assert status(a.client, l2) == dict(want, **{"una@bounce2.example": "unsubscribed"})
    assert set(status(b.client, lb).values()) == {"subscribed"}
    # a filter on the status sees them
    assert [c["email"] for c in all_contacts(a.client, l1, status="complained")] == \
        ["carl@complain.example"]
