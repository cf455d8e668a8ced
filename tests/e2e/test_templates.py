"""Templates: create (201) / get / list / page / new version on PUT / get an older version /
delete (204, then 404, name reusable); 409 on a duplicate name; syntax errors answered 422
with line and column; render previews with data and partials, strict misses answered 422;
bad input answered with problem+json listing every field error."""
import re

import pytest


def errors_by_field(r):
    body = r.json()
    assert isinstance(body.get("errors"), list) and body["errors"], body
    return {e["field"]: e["message"] for e in body["errors"]}


def create(c, name, subject="Hi {{name}}", html="<p>Hi {{name}}</p>", text="Hi {{name}}"):
    body = {"name": name, "subject": subject}
    if html is not None:
        body["html"] = html
    if text is not None:
        body["text"] = text
    r = c.post("/v1/templates", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_crud_and_versions(new_account):
    c = new_account().client
    t = create(c, "welcome", html="<p>v1 {{name}}</p>", text=None)
    assert re.fullmatch(r"tpl_[0-9A-Za-z]{22}", t["id"]), t
    assert t["name"] == "welcome" and t["version"] == 1
    assert t["subject"] == "Hi {{name}}" and t["html"] == "<p>v1 {{name}}</p>" and t["text"] is None
    assert t["created_at"] == t["updated_at"]

    r = c.get("/v1/templates/" + t["id"])
    assert r.status_code == 200 and r.json() == t

    # PUT: a new immutable version; name may be repeated, not changed.
    r = c.put("/v1/templates/" + t["id"], json={"name": "welcome", "subject": "v2",
                                                 "text": "v2 {{name}}"})
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["id"] == t["id"] and v2["name"] == "welcome"
    assert v2["html"] is None and v2["text"] == "v2 {{name}}" and v2["subject"] == "v2"
    assert v2["created_at"] == t["created_at"]
    r = c.put("/v1/templates/" + t["id"], json={"subject": "v3", "html": "<b>3</b>"})
    assert r.status_code == 200 and r.json()["version"] == 3
    assert c.get("/v1/templates/" + t["id"]).json()["version"] == 3
    old = c.get("/v1/templates/" + t["id"], params={"version": 1}).json()
    assert old == t
    assert c.get("/v1/templates/" + t["id"], params={"version": 2}).json()["subject"] == "v2"
    assert c.get("/v1/templates/" + t["id"], params={"version": 4}).status_code == 404
    for bad in ("0", "-1", "x", "1.5", "99999999999"):
        r = c.get("/v1/templates/" + t["id"], params={"version": bad})
        assert r.status_code == 422 and "version" in errors_by_field(r), (bad, r.text)

    r = c.put("/v1/templates/" + t["id"], json={"name": "renamed", "subject": "s", "text": "x"})
    assert r.status_code == 422 and "name" in errors_by_field(r)
    assert c.get("/v1/templates/" + t["id"]).json()["version"] == 3

    # List: newest first, summaries.
    t2 = create(c, "second")
    listing = c.get("/v1/templates").json()
    assert [x["id"] for x in listing["data"]] == [t2["id"], t["id"]]
    assert listing["data"][1]["version"] == 3 and listing["data"][1]["subject"] == "v3"
    assert listing["next_cursor"] is None

    # Delete: 204, then 404 everywhere; the name can be used again.
    assert c.delete("/v1/templates/" + t["id"]).status_code == 204
    assert c.delete("/v1/templates/" + t["id"]).status_code == 404
    assert c.get("/v1/templates/" + t["id"]).status_code == 404
    assert c.get("/v1/templates/" + t["id"], params={"version": 1}).status_code == 404
    assert c.put("/v1/templates/" + t["id"], json={"subject": "s", "text": "x"}).status_code == 404
    assert c.post("/v1/templates/%s/render" % t["id"], json={}).status_code == 404
    assert [x["id"] for x in c.get("/v1/templates").json()["data"]] == [t2["id"]]
    again = create(c, "welcome")
    assert again["id"] != t["id"] and again["version"] == 1
    assert c.get("/v1/templates/nope").status_code == 404


def test_duplicate_name_409(new_account):
    c = new_account().client
    create(c, "dup")
    r = c.post("/v1/templates", json={"name": "dup", "subject": "s", "text": "t"})
    assert r.status_code == 409, r.text
    assert "name" in errors_by_field(r)
    # Another account may use the same name.
    create(new_account().client, "dup")


def test_pagination(new_account):
    c = new_account().client
    ids = [create(c, "p%d" % i)["id"] for i in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/v1/templates", params=params).json()
        assert len(page["data"]) <= 3
        seen += [x["id"] for x in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert seen == list(reversed(ids)) and pages == 3
    for bad in ("0", "1001", "abc"):
        r = c.get("/v1/templates", params={"limit": bad})
        assert r.status_code == 422 and "limit" in errors_by_field(r)
    r = c.get("/v1/templates", params={"cursor": "garbage"})
    assert r.status_code == 422 and "cursor" in errors_by_field(r)


@pytest.mark.parametrize("src", ["{{#a}} never closed", "hello {{x"])
def test_syntax_errors_have_line_and_column(new_account, src):
    c = new_account().client
    r = c.post("/v1/templates", json={"name": "bad", "subject": "ok", "html": "line one\n" + src,
                                      "text": src})
    assert r.status_code == 422, r.text
    errs = errors_by_field(r)
    assert re.search(r"line 2, column \d+: ", errs["html"]), errs
    assert re.search(r"line 1, column \d+: ", errs["text"]), errs
    assert c.get("/v1/templates").json()["data"] == []
    # The same on PUT, and nothing is stored.
    t = create(c, "good")
    r = c.put("/v1/templates/" + t["id"], json={"subject": src, "text": "x"})
    assert r.status_code == 422 and re.search(r"line 1, column \d+", errors_by_field(r)["subject"])
    assert c.get("/v1/templates/" + t["id"]).json()["version"] == 1


def test_render_preview_with_partials(new_account):
    c = new_account().client
    create(c, "footer", subject="[{{shop}}]", html="<p>{{shop}} &amp; co</p>", text="-- {{shop}}")
    t = create(c, "order", subject="Order {{id}} {{> footer}}",
               html="<p>Hello {{name}}</p>{{> footer}}", text="Hello {{name}}\n{{> footer}}")
    data = {"name": "<Ann>", "id": "A-1", "shop": "R&D"}
    r = c.post("/v1/templates/%s/render" % t["id"], json={"data": data})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["subject"] == "Order A-1 [R&D]"
    assert out["html"] == "<p>Hello &lt;Ann&gt;</p><p>R&amp;D &amp; co</p>"
    assert out["text"] == "Hello <Ann>\n-- R&D"

    # A missing variable renders empty; strict makes it a 422 naming it.
    r = c.post("/v1/templates/%s/render" % t["id"], json={"data": {"id": 1, "shop": "S"}})
    assert r.status_code == 200 and r.json()["text"] == "Hello \n-- S"
    r = c.post("/v1/templates/%s/render" % t["id"], json={"data": {"id": 1, "shop": "S"},
                                                           "strict": True})
    assert r.status_code == 422, r.text
    assert "name" in errors_by_field(r)["html"]

    # An older version; a missing partial (empty, or 422 when strict).
    r = c.put("/v1/templates/" + t["id"], json={"subject": "v2", "text": "{{> nothere}}x"})
    assert r.status_code == 200
    r = c.post("/v1/templates/%s/render" % t["id"], json={"data": {}})
    assert r.json() == {"subject": "v2", "html": None, "text": "x"}
    r = c.post("/v1/templates/%s/render" % t["id"], json={"strict": True})
    assert r.status_code == 422 and "text" in errors_by_field(r)
    r = c.post("/v1/templates/%s/render" % t["id"], json={"data": data, "version": 1})
    assert r.status_code == 200 and r.json()["subject"] == "Order A-1 [R&D]"
    r = c.post("/v1/templates/%s/render" % t["id"], json={"version": 9})
    assert r.status_code == 404

    # A partial that includes itself stops at the engine's partial depth.
    loop = create(c, "loop", subject="s", html=None, text="a{{> loop}}")
    r = c.post("/v1/templates/%s/render" % loop["id"], json={})
    assert r.status_code == 422, r.text
    assert "text" in errors_by_field(r)

    # A rendered CR/LF in the subject is an error, never a header.
    crlf = create(c, "crlf", subject="{{s}}", text="x")
    r = c.post("/v1/templates/%s/render" % crlf["id"], json={"data": {"s": "a\r\nBcc: x@y"}})
    assert r.status_code == 422 and "subject" in errors_by_field(r)


def test_bad_input(new_account):
    c = new_account().client
    r = c.post("/v1/templates", json={"name": "big", "subject": "s", "html": "x" * (600 * 1024)})
    assert r.status_code in (413, 422), r.status_code
    if r.status_code == 422:
        assert "html" in errors_by_field(r)
    r = c.post("/v1/templates", json={"name": "n", "subject": "s", "text": "t", "colour": 1})
    assert r.status_code == 422 and errors_by_field(r)["colour"] == "unknown field"
    r = c.post("/v1/templates", json={"name": 5, "subject": ["s"], "html": 1, "text": {}})
    assert r.status_code == 422
    assert set(errors_by_field(r)) == {"name", "subject", "html", "text"}
    r = c.post("/v1/templates", json={})
    assert r.status_code == 422 and {"name", "subject", "html"} <= set(errors_by_field(r))
    for name in ("", "has space", "a/b", "x" * 101, "é"):
        r = c.post("/v1/templates", json={"name": name, "subject": "s", "text": "t"})
        assert r.status_code == 422 and "name" in errors_by_field(r), name
    r = c.post("/v1/templates", json={"name": "nl", "subject": "a\nb", "text": "t"})
    assert r.status_code == 422 and "subject" in errors_by_field(r)
    r = c.post("/v1/templates", json={"name": "nul", "subject": "s", "text": "a\u0000b"})
    assert r.status_code == 422 and "text" in errors_by_field(r)
    r = c.post("/v1/templates", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = c.post("/v1/templates", data=b"[]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = c.post("/v1/templates", data=b"x" * (3 << 20), headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    t = create(c, "ok")
    r = c.post("/v1/templates/%s/render" % t["id"],
               json={"data": [1], "strict": "yes", "version": 0, "extra": True})
    assert r.status_code == 422
    assert set(errors_by_field(r)) == {"data", "strict", "version", "extra"}
    r = c.put("/v1/templates/" + t["id"], json={"subject": "s"})
    assert r.status_code == 422 and "html" in errors_by_field(r)


def test_scopes(new_account):
    acct = new_account()
    t = create(acct.client, "scoped")
    reader = acct.client.with_key(acct.key_with(["read"]))
    assert reader.get("/v1/templates/" + t["id"]).status_code == 200
    assert reader.post("/v1/templates/%s/render" % t["id"], json={}).status_code == 200
    assert reader.post("/v1/templates", json={"name": "x", "subject": "s", "text": "t"}).status_code == 403
    assert reader.delete("/v1/templates/" + t["id"]).status_code == 403
    sender = acct.client.with_key(acct.key_with(["send"]))
    assert sender.get("/v1/templates").status_code == 403


def test_other_account_404(new_account):
    a, b = new_account().client, new_account().client
    tb = create(b, "b-secret", subject="b-secret")
    create(b, "shared-name", text="B-PARTIAL")
    ta = create(a, "mine", text="[{{> shared-name}}]")
    tid = tb["id"]
    assert a.get("/v1/templates/" + tid).status_code == 404
    assert a.get("/v1/templates/" + tid, params={"version": 1}).status_code == 404
    assert a.put("/v1/templates/" + tid, json={"subject": "x", "text": "y"}).status_code == 404
    assert a.post("/v1/templates/%s/render" % tid, json={}).status_code == 404
    assert a.delete("/v1/templates/" + tid).status_code == 404
    assert "b-secret" not in a.get("/v1/templates").text
    # Partials resolve in the caller's account only.
    r = a.post("/v1/templates/%s/render" % ta["id"], json={})
    assert r.status_code == 200 and r.json()["text"] == "[]"
    got = b.get("/v1/templates/" + tid).json()
    assert got == tb
