"""Authentication and scopes: 401 for missing/malformed/unknown/revoked keys (with
WWW-Authenticate), 403 for a missing scope and for account keys on operator routes.
The client wrapper checks X-Request-Id, problem+json and openapi.yaml on every response."""
import pytest

from harness.posthorn import wait_until


def assert_401(r):
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), r.headers
    assert r.headers["Content-Type"].startswith("application/problem+json")


def test_no_key(ph):
    c = ph.client()
    for path in ("/v1/account", "/v1/suppressions", "/v1/accounts"):
        assert_401(c.get(path))
    assert_401(c.post("/v1/suppressions", json={"email": "a@example.com"}))


@pytest.mark.parametrize("auth", [
    "Bearer",
    "Bearer ",
    "Bearer garbage",
    "Bearer ph_",
    "Bearer ph__",
    "Bearer ph_abc",
    "Bearer ph_abc_",
    "Bearer ph__secret",
    "Basic dXNlcjpwYXNz",
    "bearer",
    "Token ph_abc_def",
    "Bearer ph_" + "a" * 5000,
    "Bearer ph_ab\tc_def",
])
def test_malformed_key(ph, auth):
    r = ph.client().get("/v1/account", headers={"Authorization": auth})
    assert_401(r)


def test_unknown_key(ph, new_account):
    acc = new_account()
    prefix = ph.key_prefix(acc.key)
    secret = acc.key.split("_", 2)[2]
    wrong_secret = "ph_%s_%s" % (prefix, ("x" if secret[0] != "x" else "y") + secret[1:])
    unknown_prefix = "ph_%s_%s" % ("z" * len(prefix) if prefix != "z" * len(prefix)
                                   else "y" * len(prefix), secret)
    assert acc.client.get("/v1/account").status_code == 200
    for key in (wrong_secret, unknown_prefix, acc.key + "x", acc.key[:-1]):
        assert_401(ph.client(key).get("/v1/account"))


def test_revoked_key(ph, new_account):
    acc = new_account()
    other = acc.key_with(["read"])
    assert acc.client.get("/v1/account").status_code == 200
    ph.revoke_key(acc.key)
    wait_until(lambda: acc.client.get("/v1/account").status_code == 401, timeout=15,
               what="revoked key to be refused")
    assert_401(acc.client.get("/v1/account"))
    assert_401(acc.client.get("/v1/suppressions"))
    # Only that key is revoked: the account's other key still works.
    assert ph.client(other).get("/v1/account").status_code == 200
    listed = ph.cli("key", "list", "--account", acc.id)
    row = [l.split("\t") for l in listed.splitlines() if l.startswith(ph.key_prefix(acc.key))]
    assert row and row[0][-1].strip(), "revoked_at empty in `key list`: %r" % listed


def test_account_route(ph, new_account):
    acc = new_account(scopes=["read"])
    body = acc.client.get("/v1/account").json()
    assert body["id"] == acc.id and body["name"] == acc.name
    assert body["key"]["prefix"] == ph.key_prefix(acc.key)
    assert body["key"]["scopes"] == ["read"]
    assert acc.key.split("_", 2)[2] not in str(body)  # never the secret


def test_missing_scope(ph, new_account):
    acc = new_account()
    read_only = ph.client(acc.key_with(["read"]))
    admin_only = ph.client(acc.key_with(["admin"]))
    send_only = ph.client(acc.key_with(["send"]))
    for c, method, path, kw in [
        (read_only, "POST", "/v1/suppressions", {"json": {"email": "a@example.com"}}),
        (read_only, "DELETE", "/v1/suppressions/a@example.com", {}),
        (admin_only, "GET", "/v1/suppressions", {}),
        (admin_only, "GET", "/v1/account", {}),
        (send_only, "GET", "/v1/suppressions", {}),
        (send_only, "POST", "/v1/suppressions", {"json": {"email": "a@example.com"}}),
    ]:
        r = c.request(method, path, **kw)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    # The scope that is there works.
    assert admin_only.post("/v1/suppressions", json={"email": "a@example.com"}).status_code == 201
    assert read_only.get("/v1/suppressions").status_code == 200


def test_operator_routes(ph, new_account, operator_key):
    acc = new_account()  # has send, read, admin
    r = acc.client.get("/v1/accounts")
    assert r.status_code == 403, (r.status_code, r.text)
    op = ph.client(operator_key)
    ids = []
    cursor = None
    for _ in range(1000):
        r = op.get("/v1/accounts", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        body = r.json()
        ids += [a["id"] for a in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert acc.id in ids
    # An operator key is not an account key: account routes answer 403.
    r = op.get("/v1/account")
    assert r.status_code == 403, (r.status_code, r.text)
    r = op.get("/v1/suppressions")
    assert r.status_code == 403, (r.status_code, r.text)


def test_request_id_everywhere(ph, new_account):
    """Every answer, good or bad, carries an X-Request-Id, and they differ."""
    acc = new_account()
    c = ph.client()
    seen = set()
    for r in [c.get("/healthz"), c.get("/readyz"), c.get("/v1/account"),
              acc.client.get("/v1/account"), acc.client.get("/v1/nope", validate=False),
              acc.client.post("/v1/suppressions", data="x",
                              headers={"Content-Type": "application/json"}),
              c.get("/openapi.yaml")]:
        rid = r.headers.get("X-Request-Id")
        assert rid, (r.request.path_url, r.headers)
        seen.add(rid)
    assert len(seen) == 7, seen


def test_unknown_route_and_method(ph, new_account):
    acc = new_account()
    r = acc.client.get("/v1/nope", validate=False)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")
    r = acc.client.put("/v1/suppressions", json={})
    assert r.status_code == 405, (r.status_code, r.text)
    assert "GET" in r.headers.get("Allow", "") and "POST" in r.headers.get("Allow", ""), r.headers
