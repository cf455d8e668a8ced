"""GET /metrics on the metrics listener: Prometheus text with request counts by route
template and status, a latency histogram, the Redis up gauge and build info."""
import re

import requests

from harness.posthorn import wait_until

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(base):
    r = requests.get(base + "/metrics", timeout=10)
    assert r.status_code == 200, r.status_code
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    types, samples = {}, []
    for line in r.text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = LINE.match(line)
        assert m, "not Prometheus text format: %r" % line
        labels = dict(LABEL.findall(m.group(3) or ""))
        float(m.group(4))
        samples.append((m.group(1), labels, float(m.group(4))))
    return r, types, samples


def test_metrics(ph, api, new_account):
    acc = new_account()
    c = acc.client
    c.get("/v1/account")
    ph.client().get("/v1/account")  # 401
    c.post("/v1/suppressions", json={"email": "metrics-secret@example.com"})
    c.delete("/v1/suppressions/metrics-secret@example.com")
    c.delete("/v1/suppressions/metrics-secret@example.com")  # 404

    r, types, samples = scrape(api.metrics_base)
    assert r.headers.get("X-Request-Id"), "metrics response without X-Request-Id"
    if ph.spec is not None:
        assert not ph.spec.check("GET", "/metrics", 200, r.headers, r.content)
    reqs = [(l, v) for n, l, v in samples if n == "posthorn_http_requests_total"]
    assert types.get("posthorn_http_requests_total") == "counter", types
    assert reqs, "no posthorn_http_requests_total samples"
    for labels, _ in reqs:
        assert "route" in labels and "status" in labels, labels
    statuses = {l["status"] for l, _ in reqs}
    assert {"200", "401", "201", "204", "404"} <= statuses, statuses
    routes = {l["route"] for l, _ in reqs}
    # Labels are route names/templates, never raw paths with ids or addresses in them.
    assert not any("metrics-secret" in x or "acc_" in x for x in routes), routes
    assert "metrics-secret" not in r.text

    hist = [n for n, t in types.items() if t == "histogram" and n.startswith("posthorn_http")]
    assert hist, "no posthorn_http_* histogram: %r" % types
    h = hist[0]
    buckets = [(l, v) for n, l, v in samples if n == h + "_bucket"]
    assert buckets and all("le" in l for l, _ in buckets)
    assert any(l["le"] == "+Inf" for l, _ in buckets)
    assert any(n == h + "_sum" for n, _, _ in samples) and any(n == h + "_count" for n, _, _ in samples)

    redis_up = [(n, v) for n, l, v in samples if "redis" in n and n.endswith("up")]
    assert redis_up, "no Redis up gauge: %r" % sorted(types)
    assert types.get(redis_up[0][0]) == "gauge"
    assert redis_up[0][1] == 1.0

    build = [(l, v) for n, l, v in samples if n == "posthorn_build_info"]
    assert build and build[0][1] == 1.0 and build[0][0].get("version"), build

    # Counters count: one more request shows up.
    def count(samples_, status, route_has):
        return sum(v for n, l, v in samples_ if n == "posthorn_http_requests_total"
                   and l.get("status") == status and route_has in l.get("route", ""))
    before = count(samples, "200", "account")
    c.get("/v1/account")
    wait_until(lambda: count(scrape(api.metrics_base)[2], "200", "account") >= before + 1,
               timeout=10, what="the request counter to grow")


def test_metrics_not_on_api_listener(ph, api):
    r = requests.get(api.base + "/metrics", timeout=10)
    assert r.status_code == 404, r.status_code


def test_redis_gauge_follows_redis(make_redis, make_posthorn):
    rs = make_redis()
    ph = make_posthorn(redis_server=rs)
    api = ph.api_proc()

    def up():
        _, _, samples = scrape(api.metrics_base)
        vals = [v for n, l, v in samples if "redis" in n and n.endswith("up")]
        return vals[0] if vals else None
    wait_until(lambda: up() == 1.0, timeout=20, what="redis up gauge 1")
    rs.stop()
    ph.client().get("/readyz")
    wait_until(lambda: up() == 0.0, timeout=30, what="redis up gauge 0 with Redis stopped")
    rs.start()
    wait_until(lambda: ph.client().get("/readyz").json()["redis"] == "up" and up() == 1.0,
               timeout=30, what="redis up gauge back to 1")
