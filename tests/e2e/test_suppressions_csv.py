"""POST /v1/suppressions/import (text/csv) and GET /v1/suppressions/export: inserted,
updated and rejected rows with reasons and row numbers; sources kept; quoting, BOM and CRLF;
formula-injection neutralisation that round-trips; streamed chunked bodies; the caps (413
before reading with a long Content-Length, after the cap for a chunked body); 415/422; and a
large export paged through the database with flat memory."""
import csv
import io

import requests

import sendlib as sl
from harness import posthorn as hph


def imp(c, body, **kw):
    h = {"Content-Type": "text/csv"}
    h.update(kw.pop("headers", {}))
    return c.post("/v1/suppressions/import", data=body, headers=h, **kw)


def export(c, **params):
    r = c.get("/v1/suppressions/export", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    return r


def rows_of(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_import_counts_rejections_and_sources(new_account, ph, pg):
    acc = new_account()
    c = acc.client
    # an existing bounce entry keeps its source
    sl.Db(pg, ph).sql("INSERT INTO suppressions (account_id, email, stream, reason, source)"
                      " VALUES (%s, 'hard@example.com', 'all', 'hard bounce: 550', 'bounce')"
                      % sl.lit(acc.id))
    body = ("\ufeffEmail, Stream ,reason,ignored\r\n"
            "Ann@Example.COM,transactional,\"asked, by phone\",x\r\n"
            "bob@example.net,,,\r\n"
            "not-an-address,all,,\r\n"
            "carl@example.org,weekly,,\r\n"
            "hard@example.com,ALL,re-imported,\r\n"
            "\"multi\r\nline\"@example.com,all,,\r\n"
            ",all,,\r\n"
            "dora@example.com,broadcast,\"bad\x01reason\",\r\n"
            "\xff\r\n"
            "'=evil@example.com,all,'@SUM(A1),\r\n"
            "bob@example.net,all,second time,\r\n"
            "eve@example.com,broadcast,\"unterminated\r\n").encode("utf-8", "surrogateescape")
    body = body.replace(b"\xc3\xbf", b"\xff")   # an invalid UTF-8 byte on line 11
    r = imp(c, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["inserted"] == 3, out       # ann, bob, =evil
    assert out["updated"] == 2, out        # hard (existing), bob again
    rej = {x["row"]: x["reason"] for x in out["rejected"]}
    assert out["rejected_count"] == len(rej) == 7, out
    assert "not a valid address" in rej[4]
    assert "stream" in rej[5]
    assert 7 in rej                          # the quoted local part with a line break
    assert rej[9] == "email is empty"
    assert "control characters" in rej[10]
    assert rej[11] == "invalid UTF-8"
    assert rej[14] == "unterminated quote"
    entries = {(s["email"], s["stream"]): s for s in c.get("/v1/suppressions").json()["data"]}
    assert entries[("ann@example.com", "transactional")]["reason"] == "asked, by phone"
    assert entries[("ann@example.com", "transactional")]["source"] == "manual"
    assert entries[("bob@example.net", "all")]["reason"] == "second time"
    assert entries[("hard@example.com", "all")]["source"] == "bounce"
    assert entries[("hard@example.com", "all")]["reason"] == "re-imported"
    # the leading ' of a neutralised cell is taken off again
    assert entries[("=evil@example.com", "all")]["reason"] == "@SUM(A1)"


def test_export_roundtrip_and_formula_safety(new_account, ph, pg):
    c = new_account().client
    src = new_account().client
    data = ("email,stream,reason\n"
            "=cmd|'/Ccalc'!A0@example.com,all,=HYPERLINK(\"http://x\")\n"
            "-minus@example.com,broadcast,+33 1 23\n"
            "plain@example.com,transactional,\"say \"\"hi\"\", ok\"\n"
            "+plus@example.com,all,\n")
    r = imp(src, data)
    assert r.status_code == 200 and r.json()["inserted"] == 4, r.text
    text = export(src).text
    assert text.startswith("email,stream,reason,source,created_at\r\n")
    lines = text.split("\r\n")
    assert "'=cmd|'/ccalc'!a0@example.com,all,\"'=HYPERLINK(\"\"http://x\"\")\",manual," in text
    assert any(l.startswith("'-minus@example.com,broadcast,'+33 1 23,manual,") for l in lines)
    assert any(l.startswith("'+plus@example.com,all,,manual,") for l in lines)
    rows = rows_of(text)
    assert rows[0] == ["email", "stream", "reason", "source", "created_at"]
    # no cell starts with a formula character
    for row in rows[1:]:
        for cell in row:
            assert not cell or cell[0] not in "=+-@\t\r", row
    # filter by stream
    assert [r_[0] for r_ in rows_of(export(src, stream="broadcast").text)[1:]] == ["'-minus@example.com"]
    # importing the export into another account gives the same entries
    r = imp(c, text.encode())
    assert r.status_code == 200 and r.json()["inserted"] == 4 and r.json()["rejected_count"] == 0, r.text
    strip = lambda rows_: sorted((x["email"], x["stream"], x["reason"]) for x in rows_)
    assert strip(c.get("/v1/suppressions").json()["data"]) == \
        strip(src.get("/v1/suppressions").json()["data"])
    assert export(src, stream="all").text.count("\r\n") == 3


def test_chunked_upload_streamed(new_account):
    c = new_account().client

    def gen():
        yield b"email,stream\n"
        for k in range(30):
            yield "".join("c%d_%d@chunk.example,all\n" % (k, i) for i in range(100)).encode()
        yield b"last@chunk.example,all"          # no final line end

    r = imp(c, gen())
    assert r.status_code == 200, r.text
    assert r.json() == {"inserted": 3001, "updated": 0, "rejected": [], "rejected_count": 0}


def test_export_large_streamed(new_account, ph, pg):
    acc = new_account()
    c = acc.client
    n = 25000
    sl.Db(pg, ph).sql("INSERT INTO suppressions (account_id, email, stream, reason, source)"
                      " SELECT %s, 'x' || g || '@big.example', CASE WHEN g %% 2 = 0 THEN 'all'"
                      " ELSE 'broadcast' END, repeat('r', g %% 50), 'unsubscribe'"
                      " FROM generate_series(1, %d) g" % (sl.lit(acc.id), n))
    before = ph.api.vmhwm_kb()
    r = requests.get(c.base + "/v1/suppressions/export", headers={"Authorization": "Bearer " + acc.key},
                     stream=True, timeout=60)
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    size, lines = 0, 0
    for chunk in r.iter_content(65536):
        size += len(chunk)
        lines += chunk.count(b"\r\n")
    assert lines == n + 1
    # ~1.2 MB of CSV: the API never held it whole (a page is 1,000 rows)
    assert ph.api.vmhwm_kb() - before < 8 * 1024 + hph.VALGRIND_RSS_SLACK_KB


def test_caps_and_errors(new_account, make_posthorn):
    c = new_account().client
    r = c.post("/v1/suppressions/import", data=b"email\na@b.example\n",
               headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    r = imp(c, b"")
    assert r.status_code == 422
    r = imp(c, b"address,stream\na@b.example,all\n")
    assert r.status_code == 422 and "email" in r.json()["detail"]
    r = imp(c, b"email,EMAIL\na@b.example,x\n")
    assert r.status_code == 422
    assert c.get("/v1/suppressions").json()["data"] == []
    r = c.get("/v1/suppressions/export", params={"stream": "weekly"})
    assert r.status_code == 422
    ro = new_account(scopes=("read",)).client
    assert imp(ro, b"email\na@b.example\n").status_code == 403

    # a private API with a 2 KB cap
    ph = make_posthorn(env={"POSTHORN_CSV_MAX": "2048"})
    ph.api_proc()
    pc = ph.client(ph.create_key(ph.create_account("csvcap")))
    big = b"email\n" + b"".join(b"cap%04d@cap.example\n" % i for i in range(200))
    r = imp(pc, big)
    assert r.status_code == 413
    assert pc.get("/v1/suppressions").json()["data"] == []

    def gen():
        for i in range(0, 200, 10):
            yield b"".join(b"cap%04d@cap.example\n" % k for k in range(i, i + 10)) if i else \
                b"email\n" + b"".join(b"cap%04d@cap.example\n" % k for k in range(10))

    r = imp(pc, gen())
    assert r.status_code == 413, r.text
    body = r.json()
    stored = body["inserted"]
    # rows wholly inside the first 2048 bytes (6 + 20 * n <= 2048) were stored
    assert stored == (2048 - 6) // 20, body
    r = pc.get("/v1/suppressions", params={"limit": 1000})
    assert len(r.json()["data"]) == stored
