"""The operator's destination endpoints: GET /v1/destinations aggregates what workers publish
in destination_status (written here with SQL, as queue_destinations_publish does) with the
deferred deliveries waiting for each destination; POST /v1/destinations/{name}/pause,
/resume and /retry set destination_controls and make deferred deliveries due. Operator keys
only; account keys answer 403.

The shared Posthorn is instance-wide here, so every test uses destination names of its own
and looks only at those."""
import http.client
import urllib.parse

import pytest

from harness import posthorn as hph
from sendlib import Db, lit, msg, uid


@pytest.fixture
def db(pg, ph):
    return Db(pg, ph)


@pytest.fixture
def op(ph, operator_key):
    return ph.client(operator_key)


def dname(tag="d"):
    return "mx-%s-%s.example.net" % (tag, uid(8).lower())


def publish(db, worker, name, queued=0, active=0, state="active", last_error=None, age_s=0):
    db.sql("INSERT INTO destination_status (worker_id, name, queued, active, state, last_error,"
           " updated_at) VALUES (%s, %s, %d, %d, %s, %s, now() - interval '%d seconds')"
           " ON CONFLICT (worker_id, name) DO UPDATE SET queued = EXCLUDED.queued,"
           " active = EXCLUDED.active, state = EXCLUDED.state, last_error = EXCLUDED.last_error,"
           " updated_at = EXCLUDED.updated_at"
           % (lit(worker), lit(name), queued, active, lit(state), lit(last_error), age_s))


def all_destinations(client, limit=1000):
    out, cursor = [], None
    for _ in range(10000):
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/destinations", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["data"])
        cursor = body["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("too many pages")


def by_name(client):
    return {d["name"]: d for d in all_destinations(client)}


def deferred_deliveries(db, account, name, n=2, due_in="1 hour"):
    """Sends a message with n recipients through the API (no worker runs on the shared
    Posthorn, so they stay queued) and turns its deliveries into deferred ones for name."""
    to = [{"email": "rcpt%d-%s@example.com" % (i, uid(6).lower())} for i in range(n)]
    r = account.client.post("/v1/messages", json=msg(to=to))
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    db.sql("UPDATE deliveries SET state = 'deferred', destination = %s, attempts = 1,"
           " next_attempt_at = now() + interval %s WHERE message_id = %s"
           % (lit(name), lit(due_in), lit(mid)))
    return mid


def test_account_key_is_forbidden(new_account):
    acc = new_account()
    name = dname("acct")
    for method, path in (("GET", "/v1/destinations"),
                         ("POST", "/v1/destinations/%s/pause" % name),
                         ("POST", "/v1/destinations/%s/resume" % name),
                         ("POST", "/v1/destinations/%s/retry" % name)):
        r = acc.client.request(method, path)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert hph.check_problem(r) == []


def test_no_key_is_unauthorized(ph):
    r = ph.client().get("/v1/destinations")
    assert r.status_code == 401


def test_aggregates_fresh_worker_reports(op, db):
    a, b, c = dname("agg-a"), dname("agg-b"), dname("agg-c")
    wa, wb, wc = "w-" + uid(), "w-" + uid(), "w-" + uid()
    publish(db, wa, a, queued=3, active=1, state="active")
    publish(db, wb, a, queued=2, active=2, state="throttled",
            last_error="421 4.7.0 Try again later")
    # A report older than 30 s does not count (its worker stopped refreshing it).
    publish(db, wc, a, queued=100, active=50, state="dead", last_error="stale", age_s=45)
    publish(db, wa, b, queued=1, active=0, state="dead", last_error="connect: timed out")
    publish(db, wb, b, queued=4, active=0, state="throttled", last_error="421 too fast")
    publish(db, wc, c, queued=7, state="dead", age_s=40)   # only stale reports: not listed
    got = by_name(op)
    assert got[a] == {"name": a, "state": "throttled", "queued": 5, "deferred": 0, "active": 3,
                      "last_error": "421 4.7.0 Try again later", "paused": False,
                      "updated_at": got[a]["updated_at"]}, got[a]
    assert got[a]["updated_at"] is not None
    assert got[b]["state"] == "dead" and got[b]["queued"] == 5, got[b]
    assert got[b]["last_error"] == "connect: timed out", got[b]   # the worst state's error
    assert c not in got


def test_worker_paused_without_control_counts_as_active(op, db):
    a = dname("wp")
    publish(db, "w-" + uid(), a, queued=2, state="paused")
    assert by_name(op)[a]["state"] == "active"


def test_list_is_paged_by_name(op, db):
    names = sorted(dname("page%d" % i) for i in range(5))
    w = "w-" + uid()
    for n in names:
        publish(db, w, n, queued=1)
    seen = [d["name"] for d in all_destinations(op, limit=2)]
    assert [n for n in seen if n in names] == names
    assert len(seen) == len(set(seen)), "a destination on two pages"
    r = op.get("/v1/destinations", params={"limit": 1})
    assert r.status_code == 200 and len(r.json()["data"]) == 1 and r.json()["next_cursor"]


def test_bad_cursor_and_limit(op):
    r = op.get("/v1/destinations", params={"cursor": "nope"})
    assert r.status_code == 422 and any(e["field"] == "cursor" for e in r.json()["errors"])
    r = op.get("/v1/destinations", params={"limit": 0})
    assert r.status_code == 422 and any(e["field"] == "limit" for e in r.json()["errors"])


def test_deferred_only_destination_is_listed(op, db, new_account):
    acc = new_account()
    name = dname("def")
    deferred_deliveries(db, acc, name, n=3)
    got = by_name(op)[name]
    assert got == {"name": name, "state": "active", "queued": 0, "deferred": 3, "active": 0,
                   "last_error": None, "paused": False, "updated_at": None}, got
    # Counted together with workers' reports.
    publish(db, "w-" + uid(), name, queued=2, active=1, state="throttled")
    got = by_name(op)[name]
    assert (got["deferred"], got["queued"], got["active"], got["state"]) == \
        (3, 2, 1, "throttled"), got


def test_pause_and_resume_round_trip(op, db):
    name = dname("pause")
    publish(db, "w-" + uid(), name, queued=4, active=2, state="throttled", last_error="421 slow")
    r = op.post("/v1/destinations/%s/pause" % name)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == name and body["paused"] is True and body["state"] == "paused", body
    assert body["queued"] == 4 and body["last_error"] == "421 slow"
    assert db.sql("SELECT paused FROM destination_controls WHERE name = %s" % lit(name)) == "t"
    got = by_name(op)[name]
    assert got["state"] == "paused" and got["paused"] is True, got
    # Pausing twice is the same.
    again = op.post("/v1/destinations/%s/pause" % name)
    assert again.status_code == 200 and again.json()["paused"] is True

    r = op.post("/v1/destinations/%s/resume" % name)
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is False and r.json()["state"] == "throttled", r.json()
    assert db.sql("SELECT paused FROM destination_controls WHERE name = %s" % lit(name)) == "f"
    assert by_name(op)[name]["state"] == "throttled"


def test_pause_ahead_of_any_report(op, db):
    name = dname("ahead")
    r = op.post("/v1/destinations/%s/pause" % name)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": name, "state": "paused", "queued": 0, "deferred": 0, "active": 0,
                        "last_error": None, "paused": True,
                        "updated_at": r.json()["updated_at"]}
    assert r.json()["updated_at"] is not None
    assert by_name(op)[name]["state"] == "paused"
    # Resumed with nothing else known: no longer listed, but the answer names it.
    r = op.post("/v1/destinations/%s/resume" % name)
    assert r.status_code == 200 and r.json()["paused"] is False and r.json()["state"] == "active"
    assert name not in by_name(op)


def test_retry_makes_deferred_deliveries_due(op, db, new_account):
    acc = new_account()
    name, other = dname("retry"), dname("retry-other")
    m1 = deferred_deliveries(db, acc, name, n=2)
    m2 = deferred_deliveries(db, acc, other, n=1)
    # A delivered row with that destination is not touched.
    db.sql("UPDATE deliveries SET state = 'delivered' WHERE id = (SELECT id FROM deliveries"
           " WHERE message_id = %s ORDER BY id LIMIT 1)" % lit(m1))
    r = op.post("/v1/destinations/%s/retry" % name)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": name, "retried": 1}
    due = db.rows("SELECT state, next_attempt_at <= now() FROM deliveries WHERE message_id = %s"
                  " ORDER BY state" % lit(m1))
    assert due == [["deferred", "t"], ["delivered", "f"]], due
    # The other destination keeps its schedule.
    assert db.sql("SELECT bool_and(next_attempt_at > now()) FROM deliveries WHERE message_id = %s"
                  % lit(m2)) == "t"
    assert db.sql("SELECT retry_at IS NOT NULL AND NOT paused FROM destination_controls"
                  " WHERE name = %s" % lit(name)) == "t"
    # Again: the row is due already and still counts; an unknown destination retries none.
    assert op.post("/v1/destinations/%s/retry" % name).json()["retried"] == 1
    unknown = dname("none")
    assert op.post("/v1/destinations/%s/retry" % unknown).json() == {"name": unknown, "retried": 0}
    # A retry does not lift a pause.
    op.post("/v1/destinations/%s/pause" % name)
    assert op.post("/v1/destinations/%s/retry" % name).status_code == 200
    assert by_name(op)[name]["state"] == "paused"


@pytest.mark.parametrize("bad", [
    "MX.Example.com", "mx_1.example.com", "-mx.example.com", "mx-.example.com",
    "mx..example.com", "mx.example.com.", ".example.com", "a" * 64 + ".example.com",
    ".".join(["abcdefghi"] * 26),   # 259 bytes
    "mx.exämple.com", "mx%20x.example.com", "mx%2F.example.com",
])
def test_bad_names_are_refused(op, db, bad):
    for action in ("pause", "resume", "retry"):
        r = op.post("/v1/destinations/%s/%s" % (bad, action))
        assert r.status_code == 422, (bad, action, r.status_code, r.text)
        assert [e["field"] for e in r.json()["errors"]] == ["name"], r.text
    assert db.sql("SELECT count(*) FROM destination_controls WHERE lower(name) = lower(%s)"
                  % lit(bad)) == "0"


def test_longest_name_is_accepted(op):
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])   # 253 bytes
    assert len(name) == 253
    r = op.post("/v1/destinations/%s/pause" % name)
    assert r.status_code == 200 and r.json()["name"] == name, r.text
    assert op.post("/v1/destinations/%s/resume" % name).status_code == 200


def test_malformed_escape_is_400(op, operator_key, spec):
    # requests would re-encode the '%'; http.client sends the path as it is.
    u = urllib.parse.urlsplit(op.base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("POST", "/v1/destinations/mx%zz.example.com/pause",
                     headers={"Authorization": "Bearer " + operator_key, "Content-Length": "0"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 400, (r.status, body)
        headers = {k: v for k, v in r.getheaders()}
        assert spec.check("POST", "/v1/destinations/mx%zz.example.com/pause", 400, headers,
                          body) == []
    finally:
        conn.close()


def test_wrong_method(op):
    r = op.get("/v1/destinations/mx.example.com/pause")
    assert r.status_code == 405
    r = op.delete("/v1/destinations")
    assert r.status_code == 405
