"""Tenant isolation: every route of the route table with a path parameter, called with
account A's key (all account scopes) on account B's objects, answers 404; A's lists never
show B's objects; B's cursors are no use to A; and B's objects survive A's attempts."""
import re
import urllib.parse

import pytest

ACCOUNT_SCOPES = ("send", "read", "admin")


def _b_message(client, marker):
    """Try to create a message in B; returns its id or None when that is not possible yet."""
    body = {"from": {"email": "sender@%s.example" % marker}, "to": [{"email": "to@example.com"}],
            "subject": "x", "text": "y", "sandbox": True}
    r = client.post("/v1/messages", json=body, validate=False)
    if r.status_code in (200, 201, 202):
        return r.json().get("id")
    return None


def _fake(param):
    prefixes = {"id": "msg_", "message_id": "msg_", "delivery_id": "dlv_", "template_id": "tpl_",
                "domain_id": "dom_", "webhook_id": "whk_", "list_id": "lst_",
                "campaign_id": "cmp_"}
    return prefixes.get(param, "") + "0123456789abcdef"


@pytest.fixture
def two_accounts(new_account):
    a = new_account("tenant-a")
    b = new_account("tenant-b")
    return a, b


def test_every_route_with_another_accounts_ids(ph, routes, two_accounts):
    a, b = two_accounts
    # B's objects, created through the API where a route exists.
    b_emails = ["victim-%d@b-only.example" % i for i in range(3)]
    for e in b_emails:
        assert b.client.post("/v1/suppressions", json={"email": e, "stream": "all",
                                                       "reason": "b-secret-reason"}).status_code == 201
    b_objects = {"email": b_emails[0]}
    msg_id = _b_message(b.client, "b-only") if any(
        r["path"] == "/v1/messages" and r["method"] == "POST" for r in routes) else None
    if msg_id:
        b_objects["id"] = msg_id
    tpl_id = None
    if any(r["path"] == "/v1/templates" and r["method"] == "POST" for r in routes):
        r = b.client.post("/v1/templates", json={"name": "b-only", "subject": "s", "text": "t"})
        assert r.status_code == 201, r.text
        tpl_id = r.json()["id"]
    dom_id = None
    if any(r["path"] == "/v1/domains" and r["method"] == "POST" for r in routes):
        r = b.client.post("/v1/domains", json={"name": "b-only.example"})
        assert r.status_code == 201, r.text
        dom_id = r.json()["id"]

    called = []
    for route in routes:
        path = route["path"]
        params = re.findall(r"\{([^}/]+)\}", path)
        if not params or route["scope"] not in ACCOUNT_SCOPES:
            continue
        # Resource-specific object when we have one of B's; a well-formed id otherwise.
        values = {}
        for p in params:
            if p == "id" and path.startswith("/v1/messages/") and msg_id:
                values[p] = msg_id
            elif p == "id" and path.startswith("/v1/templates/") and tpl_id:
                values[p] = tpl_id
            elif p == "id" and path.startswith("/v1/domains/") and dom_id:
                values[p] = dom_id
            elif p == "email":
                values[p] = b_objects["email"]
            else:
                values[p] = _fake(p)
        url = path
        for p, v in values.items():
            url = url.replace("{%s}" % p, urllib.parse.quote(v, safe="@"))
        variants = [url]
        if "/suppressions/" in path:
            variants += [url + "?stream=all", url + "?stream=transactional",
                         url.replace("@", "%40"), url.upper().replace("/V1/SUPPRESSIONS/",
                                                                      "/v1/suppressions/")]
        for u in variants:
            kw = {}
            if route["method"] in ("POST", "PUT", "PATCH"):
                kw["json"] = {}
            r = a.client.request(route["method"], u, **kw)
            called.append((route["method"], u, r.status_code))
            assert r.status_code == 404, "A's key on B's object: %s %s -> %d %s" % (
                route["method"], u, r.status_code, r.text[:300])
    assert called, "no route with a path parameter in the route table"

    # Nothing of B's was touched.
    listed = [s["email"] for s in b.client.get("/v1/suppressions").json()["data"]]
    assert sorted(listed) == sorted(b_emails), listed
    if msg_id:
        assert b.client.get("/v1/messages/" + msg_id).status_code == 200
    if tpl_id:
        got = b.client.get("/v1/templates/" + tpl_id)
        assert got.status_code == 200 and got.json()["version"] == 1, got.text
    if dom_id:
        got = b.client.get("/v1/domains/" + dom_id)
        assert got.status_code == 200 and got.json()["verified"] is False, got.text


def test_lists_do_not_leak(ph, routes, two_accounts):
    a, b = two_accounts
    marker = "leakcheck-b-only"
    for i in range(3):
        b.client.post("/v1/suppressions", json={"email": "%s-%d@b.example" % (marker, i),
                                                "reason": marker})
    a.client.post("/v1/suppressions", json={"email": "mine@a.example"})
    _b_message(b.client, marker)
    if any(r["path"] == "/v1/templates" and r["method"] == "POST" for r in routes):
        assert b.client.post("/v1/templates", json={"name": marker, "subject": marker,
                                                    "text": marker}).status_code == 201
    for route in routes:
        if route["method"] != "GET" or "{" in route["path"] or \
                route["scope"] not in ACCOUNT_SCOPES:
            continue
        r = a.client.get(route["path"], params={"limit": 1000})
        assert r.status_code == 200, (route, r.status_code, r.text[:300])
        assert marker not in r.text, "%s shows B's objects to A: %s" % (route["path"], r.text[:500])
        assert b.id not in r.text
    emails = [s["email"] for s in a.client.get("/v1/suppressions").json()["data"]]
    assert emails == ["mine@a.example"]
    for stream in ("transactional", "broadcast", "all"):
        r = a.client.get("/v1/suppressions", params={"stream": stream})
        assert marker not in r.text


def test_cursor_bound_to_account(ph, two_accounts):
    a, b = two_accounts
    for i in range(3):
        b.client.post("/v1/suppressions", json={"email": "cur-%d@b.example" % i})
    a.client.post("/v1/suppressions", json={"email": "cur@a.example"})
    page = b.client.get("/v1/suppressions", params={"limit": 1}).json()
    cursor = page["next_cursor"]
    assert cursor, page
    # B can follow its cursor...
    assert b.client.get("/v1/suppressions", params={"limit": 1, "cursor": cursor}).status_code == 200
    # ...A cannot: 422 with field cursor (openapi.yaml: a foreign cursor answers 422).
    r = a.client.get("/v1/suppressions", params={"limit": 1, "cursor": cursor})
    assert r.status_code == 422, (r.status_code, r.text)
    assert "cur-" not in r.text
    assert any(e.get("field") == "cursor" for e in r.json().get("errors", [])), r.text
    # A tampered cursor is refused the same way.
    t = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    r = b.client.get("/v1/suppressions", params={"limit": 1, "cursor": t})
    assert r.status_code == 422, (r.status_code, r.text)
