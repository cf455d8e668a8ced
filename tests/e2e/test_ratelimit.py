"""Per-key rate limits: a burst over the rate answers 429 with Retry-After and RateLimit-*;
after Retry-After the key is allowed again; with Redis down the local bucket still limits."""
import time

from harness.posthorn import wait_until

BURST = 12  # requests fired back to back at a key limited to 2/s (burst 2)


def burst(client, n=BURST):
    return [client.get("/v1/account") for _ in range(n)]


def check_429(r):
    assert r.status_code == 429
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, r.headers
    for h in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert h in r.headers, "429 without %s: %r" % (h, dict(r.headers))
    assert r.headers["RateLimit-Limit"].split(";")[0].strip() == "2", r.headers
    assert r.headers["RateLimit-Remaining"].strip() == "0", r.headers
    return int(ra)


def test_rate_limit_429_then_allowed(ph, new_account):
    acc = new_account(rate="2/s", scopes=["read"])
    rs = burst(acc.client)
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 429}, codes
    assert 429 in codes, "no 429 in a burst of %d at 2/s: %r" % (BURST, codes)
    assert codes[0] == 200, codes
    limited = [r for r in rs if r.status_code == 429]
    retry_after = max(check_429(r) for r in limited)
    # Allowed responses carry the limit too.
    assert "RateLimit-Limit" in rs[0].headers, dict(rs[0].headers)
    time.sleep(retry_after)
    r = acc.client.get("/v1/account")
    assert r.status_code == 200, (r.status_code, r.headers)
    # Another key of the same account has its own bucket.
    other = ph.client(acc.key_with(["read"], rate=1000))
    assert other.get("/v1/account").status_code == 200


def test_rate_limit_unauthenticated_key_not_charged(ph, new_account):
    """Requests with a wrong secret for a key's prefix must not drain that key's bucket."""
    acc = new_account(rate="2/s", scopes=["read"])
    prefix = ph.key_prefix(acc.key)
    bad = ph.client("ph_%s_%s" % (prefix, "x" * 30))
    for _ in range(10):
        assert bad.get("/v1/account").status_code == 401
    assert acc.client.get("/v1/account").status_code == 200


def test_local_fallback_when_redis_down(make_posthorn, make_redis):
    r = make_redis()
    ph = make_posthorn(redis_server=r)
    api = ph.api_proc()
    acc = ph.create_account("rl-fallback")
    key = ph.create_key(acc, ["read"], rate="2/s")
    c = ph.client(key)
    assert c.get("/v1/account").status_code == 200
    r.stop()
    wait_until(lambda: ph.client().get("/readyz").json().get("redis") == "down", timeout=30,
               what="/readyz to report redis down")
    codes = [x.status_code for x in burst(c)]
    assert set(codes) <= {200, 429}, codes
    assert 429 in codes, "Redis down: no 429 from the local bucket in %r" % codes
    limited = [x for x in burst(c, 3) if x.status_code == 429]
    assert limited
    check_429(limited[0])
    assert api.alive()
    # Redis back: limits still apply (now through Redis again) and the API is fine.
    r.start()
    wait_until(lambda: ph.client().get("/readyz").json().get("redis") == "up", timeout=30,
               what="/readyz to report redis up again")
    time.sleep(1.5)
    codes = [x.status_code for x in burst(c)]
    assert 200 in codes and 429 in codes, codes
