"""POST /v1/messages validation: one failing case per rule with its field path, every error
of a request listed at once, nothing stored for a refused request; 400 for bodies that are
not UTF-8 JSON objects, 415 for other content types, 413 for a declared length over 40 MB
(answered before the body is sent)."""
import os
import time

import pytest

import rawhttp
import sendlib as sl


def iso(offset_s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_s))


@pytest.fixture(scope="module")
def acc(ph):
    from conftest import Account
    return Account(ph, "send-validation", ("send", "read", "admin"), 100000)


def att(**over):
    a = {"filename": "a.bin", "content_type": "application/octet-stream", "content": sl.b64(b"abc")}
    a.update(over)
    return {k: v for k, v in a.items() if v is not None}


CR_LF_EW = "=?utf-8?q?a=0D=0Ab?="          # an encoded-word that decodes to a CR LF b
NUL_EW = "=?utf-8?b?YQBi?="                # decodes to a NUL b

CASES = [
    # addresses
    ("to[1].email", dict(to=[{"email": "ok@example.com"}, {"email": "not-an-address"}]), {"to[1].email"}),
    ("to string", dict(to=["nope"]), {"to[0]"}),
    ("to missing", dict(to=None), {"to"}),
    ("to empty", dict(to=[]), {"to"}),
    ("to not array", dict(to="ann@example.com"), {"to"}),
    ("cc[0].email", dict(cc=[{"email": "a@@example.com"}]), {"cc[0].email"}),
    ("bcc[0]", dict(bcc=["b@"]), {"bcc[0]"}),
    ("from missing", dict(**{"from": None}), {"from"}),
    ("from.email", dict(**{"from": {"email": "shop.example"}}), {"from.email"}),
    ("reply_to.email", dict(reply_to={"email": "x"}), {"reply_to.email"}),
    ("address unknown member", dict(to=[{"email": "a@example.com", "nmae": "A"}]), {"to[0].nmae"}),
    ("local part over 64", dict(to=[{"email": "a" * 65 + "@example.com"}]), {"to[0].email"}),
    ("label over 63", dict(to=[{"email": "a@" + "b" * 64 + ".example"}]), {"to[0].email"}),
    ("domain over 255", dict(to=[{"email": "a@" + ".".join(["b" * 60] * 5) + ".example"}]), {"to[0].email"}),
    ("address with CRLF", dict(to=[{"email": "a@example.com\r\nBcc: x@example.com"}]), {"to[0].email"}),
    ("name with CRLF", dict(to=[{"email": "a@example.com", "name": "A\r\nBcc: x@example.com"}]), {"to[0].name"}),
    ("name with encoded CRLF", dict(to=[{"email": "a@example.com", "name": CR_LF_EW}]), {"to[0].name"}),
    ("string name with encoded CRLF", dict(to=['"%s" <a@example.com>' % CR_LF_EW]), {"to[0]"}),
    ("from name with encoded NUL", dict(**{"from": {"email": "o@shop.example", "name": NUL_EW}}), {"from.name"}),
    ("reply_to name NUL", dict(reply_to={"email": "h@shop.example", "name": "a\u0000b"}), {"reply_to.name"}),
    ("51 recipients", dict(to=["r%d@example.com" % i for i in range(30)],
                           cc=["c%d@example.com" % i for i in range(11)],
                           bcc=["b%d@example.com" % i for i in range(10)]), {"to"}),
    ("duplicate recipient", dict(to=["ann@example.com"], cc=[{"email": "ANN@example.COM"}]), {("cc[0]", "cc[0].email")}),
    # content
    ("subject missing", dict(subject=None), {"subject"}),
    ("subject with CR", dict(subject="Hello\rWorld"), {"subject"}),
    ("subject with LF", dict(subject="Hello\nBcc: x@example.com"), {"subject"}),
    ("subject with encoded CRLF", dict(subject="Hi " + CR_LF_EW), {"subject"}),
    ("subject over 998 octets", dict(subject="ü" * 500), {"subject"}),
    ("subject not a string", dict(subject=5), {"subject"}),
    ("no html nor text", dict(text=None), {"html"}),
    ("NUL in text", dict(text="a\u0000b"), {"text"}),
    ("NUL in html", dict(html="<p>a\u0000b</p>"), {"html"}),
    ("template syntax", dict(text="Hi {{name"), {"text"}),
    ("unbalanced section", dict(text="{{#items}}x"), {"text"}),
    ("mismatched section", dict(html="{{#a}}{{#b}}{{/a}}{{/b}}"), {"html"}),
    ("stray section end", dict(subject="Hi {{/name}}"), {"subject"}),
    ("bad delimiter change", dict(text="{{=<% =}}"), {"text"}),
    ("10,000 nested sections", dict(text="{{#a}}" * 10000 + "{{/a}}" * 10000), {"text"}),
    ("600 KB template", dict(html="x" * 600 * 1024), {"html"}),
    ("data not object", dict(data=[1]), {"data"}),
    ("strict not bool", dict(strict="yes"), {"strict"}),
    ("sandbox not bool", dict(sandbox=1), {"sandbox"}),
    ("template", dict(subject=None, text=None, data=None, template={"name": "receipt"}), {"template"}),
    ("template with content", dict(template={"id": "tpl_x"}), {"template"}),
    ("template with subject only", dict(text=None, template={"name": "receipt"}), {"template"}),
    ("template unknown id", dict(subject=None, text=None, template={"id": "tpl_0000000000000000000000"}), {"template"}),
    ("template name and id", dict(subject=None, text=None, template={"name": "receipt", "id": "tpl_x"}), {"template"}),
    ("template neither name nor id", dict(subject=None, text=None, template={"version": 1}), {"template"}),
    ("template not object", dict(subject=None, text=None, template="receipt"), {"template"}),
    ("template version 0", dict(subject=None, text=None, template={"name": "receipt", "version": 0}), {"template.version"}),
    ("template version string", dict(subject=None, text=None, template={"name": "receipt", "version": "3"}), {"template.version"}),
    ("template unknown member", dict(subject=None, text=None, template={"name": "receipt", "lang": "de"}), {"template.lang"}),
    ("unknown field", dict(colour="blue"), {"colour"}),
    # headers
    ("headers.Bcc", dict(headers={"Bcc": "x@example.com"}), {"headers.Bcc"}),
    ("headers.From", dict(headers={"From": "x@example.com"}), {"headers.From"}),
    ("headers.message-id", dict(headers={"message-id": "<a@b>"}), {"headers.message-id"}),
    ("headers.Content-Type", dict(headers={"Content-Type": "text/plain"}), {"headers.Content-Type"}),
    ("headers.MIME-Version", dict(headers={"MIME-Version": "1.0"}), {"headers.MIME-Version"}),
    ("headers.DKIM-Signature", dict(headers={"DKIM-Signature": "v=1"}), {"headers.DKIM-Signature"}),
    ("headers.ARC-Seal", dict(headers={"ARC-Seal": "i=1"}), {"headers.ARC-Seal"}),
    ("headers.Received", dict(headers={"Received": "from x"}), {"headers.Received"}),
    ("headers.Return-Path", dict(headers={"Return-Path": "<x@y>"}), {"headers.Return-Path"}),
    ("headers.Resent-From", dict(headers={"Resent-From": "x@y"}), {"headers.Resent-From"}),
    ("headers.List-Unsubscribe", dict(headers={"List-Unsubscribe": "<mailto:x@y>"}), {"headers.List-Unsubscribe"}),
    ("header name with space", dict(headers={"X Bad": "v"}), {"headers.X Bad"}),
    ("header value CRLF", dict(headers={"X-A": "v\r\nBcc: x@example.com"}), {"headers.X-A"}),
    ("header value encoded CRLF", dict(headers={"X-A": CR_LF_EW}), {"headers.X-A"}),
    ("header value not string", dict(headers={"X-A": 1}), {"headers.X-A"}),
    ("headers not object", dict(headers=["X-A: b"]), {"headers"}),
    # attachments
    ("attachments[0].content", dict(attachments=[att(content="not base64!")]), {"attachments[0].content"}),
    ("attachments[1].content missing", dict(attachments=[att(), att(content=None)]), {"attachments[1].content"}),
    ("attachment filename CRLF", dict(attachments=[att(filename="a\r\n.pdf")]), {"attachments[0].filename"}),
    ("attachment filename encoded CRLF", dict(attachments=[att(filename=CR_LF_EW)]), {"attachments[0].filename"}),
    ("attachment filename missing", dict(attachments=[att(filename=None)]), {"attachments[0].filename"}),
    ("attachment content_type", dict(attachments=[att(content_type="pdf")]), {"attachments[0].content_type"}),
    ("attachment disposition", dict(attachments=[att(disposition="sideways")]), {"attachments[0].disposition"}),
    ("inline without content_id", dict(attachments=[att(disposition="inline")]), {"attachments[0].content_id"}),
    ("attachment unknown member", dict(attachments=[att(size=3)]), {"attachments[0].size"}),
    ("101 attachments", dict(attachments=[att(filename="f%d" % i) for i in range(101)]), {"attachments"}),
    ("attachments not array", dict(attachments={}), {"attachments"}),
    # send_at, stream, tags, metadata, tracking
    ("send_at past", dict(send_at=iso(-3600)), {"send_at"}),
    ("send_at too far", dict(send_at=iso(31 * 86400)), {"send_at"}),
    ("send_at malformed", dict(send_at="tomorrow 9am"), {"send_at"}),
    ("send_at not a date", dict(send_at="2026-02-30T09:00:00Z"), {"send_at"}),
    ("send_at number", dict(send_at=1767225600), {"send_at"}),
    ("bad stream", dict(stream="marketing"), {"stream"}),
    ("stream all", dict(stream="all"), {"stream"}),
    ("tags not array", dict(tags="receipt"), {"tags"}),
    ("empty tag", dict(tags=["ok", ""]), {"tags[1]"}),
    ("tag not string", dict(tags=[1]), {"tags[0]"}),
    ("tag with LF", dict(tags=["a\nb"]), {"tags[0]"}),
    ("tag with encoded CRLF", dict(tags=[CR_LF_EW]), {"tags[0]"}),
    ("tag over 128", dict(tags=["t" * 129]), {"tags[0]"}),
    ("21 tags", dict(tags=["t%d" % i for i in range(21)]), {"tags"}),
    ("metadata not object", dict(metadata=["a"]), {"metadata"}),
    ("metadata value not string", dict(metadata={"k": 5}), {"metadata.k"}),
    ("metadata value CRLF", dict(metadata={"k": "a\r\nb"}), {"metadata.k"}),
    ("metadata value encoded CRLF", dict(metadata={"k": CR_LF_EW}), {"metadata.k"}),
    ("51 metadata keys", dict(metadata={"k%d" % i: "v" for i in range(51)}), {"metadata"}),
    ("tracking", dict(tracking={"opens": "yes"}), {"tracking"}),
]


@pytest.mark.parametrize("name,over,expect", CASES, ids=[c[0] for c in CASES])
def test_rule(acc, name, over, expect):
    tag = "v-" + sl.uid()
    over = dict(over)
    tagged = "tags" not in over
    if tagged:
        over["tags"] = [tag]
    r = acc.client.post("/v1/messages", json=sl.msg(**over))
    assert r.status_code == 422, (name, r.status_code, r.text)
    got = set(sl.fields(r))
    for want in expect:
        alts = want if isinstance(want, tuple) else (want,)
        assert any(a in got for a in alts), "%s: expected an error at %s, got %r" % (
            name, alts, sl.errors(r))
    assert len(got) == len(expect), "%s: one fault, errors at other fields too: %r" % (
        name, sl.errors(r))
    if tagged:   # nothing stored
        assert acc.client.get("/v1/messages", params={"tag": tag}).json()["data"] == []


def test_stored_template_references(acc, ph):
    """A reference resolves among this account's live templates: an unknown name, id or
    version, a deleted template and another account's template answer 422 at "template";
    a known one is accepted (the version pinned at accept time)."""
    c = acc.client
    name = "tv-" + sl.uid()
    r = c.post("/v1/templates", json={"name": name, "subject": "S {{name}}", "text": "T {{name}}"})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    base = dict(subject=None, text=None)

    def refused(ref, message):
        tag = "v-" + sl.uid()
        r = c.post("/v1/messages", json=sl.msg(tags=[tag], template=ref, **base))
        assert r.status_code == 422, (ref, r.status_code, r.text)
        assert sl.errors(r) == [("template", message)], (ref, sl.errors(r))
        assert c.get("/v1/messages", params={"tag": tag}).json()["data"] == []

    refused({"name": name + "-nope"}, "no such template in this account")
    refused({"id": tid + "x"}, "no such template in this account")
    refused({"name": name, "version": 2}, "no version 2")
    refused({"id": tid, "version": 7}, "no version 7")
    from conftest import Account
    other = Account(ph, "send-validation-other", ("send", "read", "admin"), 1000)
    r = other.client.post("/v1/messages", json=sl.msg(template={"id": tid}, **base))
    assert r.status_code == 422 and sl.errors(r) == [("template", "no such template in this account")], r.text
    for ref in ({"name": name}, {"id": tid}, {"name": name, "version": 1}, {"id": tid, "version": 1}):
        r = c.post("/v1/messages", json=sl.msg(template=ref, **base))
        assert r.status_code == 202, (ref, r.text)
    # batch items resolve one by one
    r = c.post("/v1/messages/batch", json={"messages": [
        sl.msg(template={"name": name}, **base), sl.msg(template={"name": name, "version": 9}, **base)]})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data[0]["id"].startswith("msg_") and data[0]["status"] == "queued", data
    assert data[1]["index"] == 1 and data[1]["error"]["status"] == 422, data
    assert [e["field"] for e in data[1]["error"]["errors"]] == ["template"], data
    # deleted: no longer resolvable
    assert c.delete("/v1/templates/" + tid).status_code == 204
    refused({"id": tid}, "no such template in this account")
    refused({"name": name}, "no such template in this account")


def test_all_errors_listed_at_once(acc):
    body = sl.msg(to=[{"email": "ok@example.com"}, {"email": "bad"}],
                  subject="a\r\nb", stream="nope", colour="x",
                  attachments=[att(content="%%%")])
    r = acc.client.post("/v1/messages", json=body)
    assert r.status_code == 422, r.text
    assert sorted(sl.fields(r)) == sorted(["to[1].email", "subject", "stream", "colour",
                                           "attachments[0].content"]), sl.errors(r)
    for _, message in sl.errors(r):
        assert isinstance(message, str) and message


def test_attachment_limits(acc):
    tag = "big-" + sl.uid()
    # 25 MB (MiB) decoded in total is the cap: two of 13.2 MB each are over it (body 35 MB).
    half = os.urandom(13_200_000)
    body = sl.msg(tags=[tag], attachments=[att(filename="a", content=sl.b64(half)),
                                           att(filename="b", content=sl.b64(half))])
    raw = sl.jdump(body)
    assert len(raw) < 40 * 1024 * 1024
    r = acc.client.post("/v1/messages", data=raw, headers={"Content-Type": "application/json"},
                        timeout=120)
    assert r.status_code == 422, (r.status_code, r.text[:500])
    assert sl.fields(r) == ["attachments"], sl.errors(r)
    # Just under the cap in total is fine.
    ok = os.urandom(25 * 1024 * 1024 - 10)
    body = sl.msg(tags=[tag], attachments=[att(filename="c", content=sl.b64(ok))])
    r = acc.client.post("/v1/messages", json=body, timeout=120)
    assert r.status_code == 202, (r.status_code, r.text[:500])
    items = acc.client.get("/v1/messages", params={"tag": tag}).json()["data"]
    assert [x["id"] for x in items] == [r.json()["id"]]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey", "ключ", "a\x7fb"])
def test_malformed_idempotency_key(acc, key):
    r = acc.client.post("/v1/messages", json=sl.msg(), headers={"Idempotency-Key": key.encode("utf-8")})
    assert r.status_code == 422, (key, r.status_code, r.text)
    assert sl.fields(r) == ["Idempotency-Key"], sl.errors(r)


def test_longest_idempotency_key_accepted(acc):
    r = acc.client.post("/v1/messages", json=sl.msg(), headers={"Idempotency-Key": "k" * 255})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("raw", [
    b'{"from": "a@example.com"',                    # truncated
    b'{"subject": "\xff\xfe"}',                     # not UTF-8
    b'{"subject": "\xed\xa0\x80"}',                 # UTF-8 encoded surrogate
    b'{"subject": "\xc0\xaf"}',                     # overlong encoding
    b'["not", "an", "object"]',
    b'"a string"',
    b'42',
    b'null',
    b'',
    b'{} {}',
    b'\xef\xbb\xbf{}',                              # byte order mark
])
def test_400_not_a_utf8_json_object(acc, raw):
    r = acc.client.post("/v1/messages", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (raw, r.status_code, r.text)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx",
                                   "application/json; charset=latin-1", None])
def test_415_wrong_content_type(acc, ctype):
    h = {"Content-Type": ctype} if ctype else {}
    r = acc.client.post("/v1/messages", data=sl.jdump(sl.msg()), headers=h)
    assert r.status_code == 415, (ctype, r.status_code, r.text)


def test_413_declared_length_answered_before_the_body(acc, api):
    for path in ("/v1/messages", "/v1/messages/batch"):
        s = rawhttp.connect(api.host, api.port, timeout=30)
        try:
            head = rawhttp.request_head("POST", path, "%s:%d" % (api.host, api.port),
                                        headers=[("Authorization", "Bearer " + acc.key),
                                                 ("Content-Type", "application/json")],
                                        content_length=40 * 1024 * 1024 + 1)
            s.sendall(head)   # and not one byte of body
            resp, _, how = rawhttp.read_response(s, timeout=20)
        finally:
            s.close()
        assert resp is not None, "no answer before the body (%s)" % how
        assert resp.status == 413, resp
        assert resp.header("content-type").startswith("application/problem+json")
