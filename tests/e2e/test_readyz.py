"""Readiness follows PostgreSQL (503 while it is down, 200 again after it is back, the
API process never dies); Redis down keeps it ready with "redis":"down" in the body."""
from harness.posthorn import wait_until


def readyz(c):
    return c.get("/readyz", timeout=30)


def wait_response(fn, pred, what, timeout=30):
    """Poll fn() until pred(response); returns that response (a 503 Response is falsy)."""
    box = []

    def ok():
        r = fn()
        if pred(r):
            box.append(r)
            return True
        return False
    wait_until(ok, timeout=timeout, what=what)
    return box[0]


def test_readyz_follows_postgres(make_pg, make_posthorn, new_account):
    cluster = make_pg()
    ph = make_posthorn(pg_cluster=cluster)
    api = ph.api_proc()
    c = ph.client()
    acc = ph.create_account("readyz")
    key = ph.create_key(acc, ["read"])
    r = readyz(c)
    assert r.status_code == 200 and r.json() == {"status": "ready", "postgres": "up",
                                                 "redis": "up"}, r.text

    cluster.stop()
    r = wait_response(lambda: readyz(c), lambda x: x.status_code == 503,
                      "/readyz 503 with PostgreSQL stopped")
    assert r.json()["postgres"] == "down", r.text
    assert r.json()["status"] == "unready", r.text
    # A route that needs the database answers 503 with Retry-After, not a hang or a crash.
    r = ph.client(key).get("/v1/account")
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert c.get("/healthz").status_code == 200
    assert api.alive()

    cluster.start()
    wait_until(lambda: readyz(c).status_code == 200, timeout=60,
               what="/readyz 200 after PostgreSQL restart")
    assert api.alive()
    assert ph.client(key).get("/v1/account").status_code == 200


def test_readyz_redis_down_still_ready(make_redis, make_posthorn):
    r = make_redis()
    ph = make_posthorn(redis_server=r)
    api = ph.api_proc()
    c = ph.client()
    assert readyz(c).json()["redis"] == "up"
    r.stop()
    resp = wait_response(lambda: readyz(c), lambda x: x.json().get("redis") == "down",
                         "/readyz redis down")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "postgres": "up", "redis": "down"}
    acc = ph.create_account("redis-down")
    key = ph.create_key(acc, ["read", "admin"])
    # The API works without Redis.
    assert ph.client(key).post("/v1/suppressions", json={"email": "x@example.com"}).status_code == 201
    assert ph.client(key).get("/v1/suppressions").status_code == 200
    r.start()
    wait_until(lambda: readyz(c).json().get("redis") == "up", timeout=30, what="redis up again")
    assert api.alive()
