"""Caps on request size are enforced while streaming: huge bodies (declared, chunked, or with
a lying Content-Length) get 413 or a clean close without the API's memory growing with the
body; long URLs get 414, huge headers 431; the API keeps serving throughout."""
import socket

import pytest
import requests

import rawhttp
from harness import posthorn as hph

MB = 1024 * 1024
BIG = 50 * MB
RSS_GROWTH_LIMIT_KB = 10 * 1024 + hph.VALGRIND_RSS_SLACK_KB
CHUNK = (b'{"email":"' + b"a" * (64 * 1024 - 10))[:64 * 1024]


@pytest.fixture
def lim(make_posthorn):
    """A private API (its peak RSS is ours to measure) and an admin key."""
    # A short idle timeout so that connections left half-way are reaped within the test.
    ph = make_posthorn(env={"POSTHORN_HTTP_TIMEOUT": "5s"})
    api = ph.api_proc()
    acc = ph.create_account("limits")
    key = ph.create_key(acc, ["read", "admin"])
    c = ph.client(key)
    # Warm up: a few ordinary requests so that lazily allocated pools exist.
    for i in range(20):
        assert c.post("/v1/suppressions", json={"email": "w%d@example.com" % i}).status_code in (200, 201)
        assert c.get("/v1/suppressions").status_code == 200
    return ph, api, key, c


def head(api, key, method="POST", path="/v1/suppressions", extra=(), **kw):
    h = [("Authorization", "Bearer " + key), ("Content-Type", "application/json")] + list(extra)
    return rawhttp.request_head(method, path, "%s:%d" % (api.host, api.port), h, **kw)


def check_raw(spec, method, path, resp):
    """X-Request-Id and openapi.yaml for a response read off a raw socket."""
    assert resp.header("x-request-id"), resp
    if spec is not None:
        problems = spec.check(method, path, resp.status, resp.headers, resp.body)
        assert not problems, problems


def still_serving(api, c, what="afterwards"):
    assert api.alive(), "posthorn-api died:\n" + api.proc.log()[-3000:]
    try:
        r = requests.get(api.base + "/healthz", timeout=10)
    except requests.RequestException as e:
        pytest.fail("posthorn-api does not answer GET /healthz on a new connection %s: %r" % (what, e))
    assert r.status_code == 200, r.status_code
    assert c.get("/v1/suppressions").status_code == 200


def test_declared_huge_body_refused_before_reading(lim, spec):
    ph, api, key, c = lim
    hwm = api.vmhwm_kb()
    s = rawhttp.connect(api.host, api.port)
    try:
        s.sendall(head(api, key, content_length=BIG))
        # Refused before the body is read: the answer comes without sending a byte of it.
        resp, _, how = rawhttp.read_response(s, timeout=15)
        assert resp is not None, "no answer to Content-Length %d before the body (%s)" % (BIG, how)
        assert resp.status == 413, resp
        check_raw(spec, "POST", "/v1/suppressions", resp)
        # If the server still reads, whatever we send must not grow it: stream and stop
        # at the first sign of a close.
        sent, _, how = rawhttp.send_streaming(s, rawhttp.repeat(CHUNK, BIG), timeout=60)
    finally:
        s.close()
    assert api.vmhwm_kb() - hwm < RSS_GROWTH_LIMIT_KB, (hwm, api.vmhwm_kb())
    still_serving(api, c)


def test_chunked_huge_body_cut_off(lim, spec):
    ph, api, key, c = lim
    hwm = api.vmhwm_kb()
    s = rawhttp.connect(api.host, api.port)
    try:
        s.sendall(head(api, key, chunked=True))
        sent, got, how = rawhttp.send_streaming(s, rawhttp.chunked(CHUNK, BIG), timeout=120)
        resp = None
        if got:
            resp, _, _ = rawhttp.read_response(s, got, timeout=10)
    finally:
        s.close()
    assert how in ("answered", "closed", "reset"), \
        "the whole %d-byte chunked body was read (%s, %d bytes sent)" % (BIG, how, sent)
    assert sent < BIG, sent
    if resp is not None:
        assert resp.status == 413, resp
        check_raw(spec, "POST", "/v1/suppressions", resp)
    assert api.vmhwm_kb() - hwm < RSS_GROWTH_LIMIT_KB, (hwm, api.vmhwm_kb())
    still_serving(api, c)


def test_content_length_lies_small(lim):
    """Claims 40 bytes, sends 50 MB: the rest is garbage as a next request; the server must
    answer (the first request, maybe an error for the garbage) and close, not buffer it."""
    ph, api, key, c = lim
    hwm = api.vmhwm_kb()
    first = b'{"email":"lie-small@example.com"}'
    s = rawhttp.connect(api.host, api.port)
    try:
        s.sendall(head(api, key, content_length=len(first)) + first)
        sent, got, how = rawhttp.send_streaming(s, rawhttp.repeat(b"A" * 65536, BIG), timeout=120)
        responses = []
        buf = got
        while True:
            resp, buf, rhow = rawhttp.read_response(s, buf, timeout=10)
            if resp is None:
                break
            responses.append(resp)
    finally:
        s.close()
    assert how in ("answered", "closed", "reset"), (how, sent)
    assert sent < BIG, "the server read all %d bytes of garbage" % BIG
    for resp in responses:
        assert resp.status in (200, 201) or 400 <= resp.status < 500, resp
    assert api.vmhwm_kb() - hwm < RSS_GROWTH_LIMIT_KB, (hwm, api.vmhwm_kb())
    still_serving(api, c)


@pytest.mark.parametrize("declared", [BIG, 60000])
def test_content_length_lies_big(lim, declared):
    """Claims more than it sends, then closes (both over and under the 64 KB route cap)."""
    ph, api, key, c = lim
    hwm = api.vmhwm_kb()
    for _ in range(5):
        s = rawhttp.connect(api.host, api.port)
        try:
            s.sendall(head(api, key, content_length=declared) + b'{"email":"x@exa')
        finally:
            s.close()
    still_serving(api, c, "while 5 connections that closed half-way through a body linger")
    # Half-closed variant: we stop sending but keep reading.
    s = rawhttp.connect(api.host, api.port)
    try:
        s.sendall(head(api, key, content_length=declared) + b'{"email":"x@exa')
        s.shutdown(socket.SHUT_WR)
        resp, _, how = rawhttp.read_response(s, timeout=30)
        if resp is not None:
            assert 400 <= resp.status < 500, resp
    finally:
        s.close()
    assert api.vmhwm_kb() - hwm < RSS_GROWTH_LIMIT_KB
    still_serving(api, c)


def test_route_cap_with_requests(ph, new_account, routes):
    """Just over the route's body_max with Content-Length: 413 problem+json (validated)."""
    acc = new_account()
    cap = [r for r in routes if r["method"] == "POST" and r["path"] == "/v1/suppressions"][0]["body_max"]
    assert cap > 0
    body = b'{"email":"a@example.com","reason":"' + b"r" * cap + b'"}'
    r = acc.client.post("/v1/suppressions", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (r.status_code, r.text)
    # A body on a route without one (body_max 0): refused, not read.
    r = acc.client.get("/v1/account", data=b"x" * 100000)
    assert r.status_code == 413, (r.status_code, r.text)


def test_long_url_414(ph, new_account):
    acc = new_account()
    r = acc.client.get("/v1/suppressions?stream=all&x=" + "a" * 3000, validate=False)
    assert r.status_code == 414, (r.status_code, r.text)
    assert r.headers.get("X-Request-Id")
    r = acc.client.delete("/v1/suppressions/" + "b" * 2100 + "@example.com", validate=False)
    assert r.status_code == 414, (r.status_code, r.text)
    # Just under 2 KB is fine.
    r = acc.client.get("/v1/suppressions?stream=all&x=" + "a" * 1900)
    assert r.status_code == 200, r.status_code
    assert ph.api.healthz_ok()


@pytest.mark.parametrize("shape", ["one_big", "many_small"])
def test_huge_headers_431(ph, api, new_account, shape):
    acc = new_account()
    if shape == "one_big":
        extra = [("X-Big", "v" * 20000)]
    else:
        extra = [("X-H%d" % i, "v" * 500) for i in range(40)]
    s = rawhttp.connect(api.host, api.port)
    try:
        s.sendall(head(api, acc.key, "GET", "/v1/account", extra))
        resp, _, how = rawhttp.read_response(s, timeout=20)
    finally:
        s.close()
    if resp is not None:
        assert resp.status in (431, 413), resp
    else:
        assert how in ("closed", "reset"), how
    assert api.alive() and api.healthz_ok()
    # Under 16 KB in total is fine.
    r = acc.client.get("/v1/account", headers={"X-Ok": "v" * 8000})
    assert r.status_code == 200
