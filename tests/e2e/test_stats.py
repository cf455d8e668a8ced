"""GET /v1/stats: counts per hour/day bucket from the counters kept by the events trigger
(migration 0007), checked against an independent count of the events themselves; the real
send path (API + worker) feeding them; the worker folding pending counters without changing
any count; and validation (422 with every field error)."""
import datetime
import random

import pytest

import sendlib as sl
from harness.posthorn import wait_until

TYPES = ["queued", "delivered", "deferred", "bounced", "failed", "expired", "suppressed",
         "cancelled", "opened", "clicked", "unsubscribed", "complained"]


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def expected(db, acc, since, until, unit, stream=None, tag=None, domain=None):
    """The same counts straight from the events table: {bucket: {type: n}}."""
    where = ["e.account_id = %s" % sl.lit(acc),
             "e.created_at >= %s" % sl.lit(since), "e.created_at < %s" % sl.lit(until)]
    if stream:
        where.append("e.stream = %s" % sl.lit(stream))
    if domain:
        where.append("lower(split_part(e.recipient, '@', -1)) = %s" % sl.lit(domain))
    if tag:
        where.append("%s = ANY (m.tags)" % sl.lit(tag))
    rows = db.rows("SELECT to_char(date_trunc('%s', e.created_at AT TIME ZONE 'UTC'),"
                   " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), e.type, count(*) FROM events e"
                   " LEFT JOIN messages m ON m.account_id = e.account_id AND m.id = e.message_id"
                   " WHERE %s GROUP BY 1, 2" % (unit, " AND ".join(where)))
    out = {}
    for b, t, n in rows:
        out.setdefault(b, {})[t] = int(n)
    return out


def answered(body):
    out = {}
    for item in body["data"]:
        assert set(item["counts"]) == set(TYPES)
        nz = {t: n for t, n in item["counts"].items() if n}
        if nz:
            out[item["bucket"]] = nz
    return out


def test_counts_match_events(new_account, ph, pg):
    """Many events written in statements of several sizes: every filter and interval
    answers exactly what counting the events gives, before and after the pending counters
    are folded (partly) into stats_hourly."""
    acc = new_account()
    db = sl.Db(pg, ph)
    a = acc.id
    # messages with and without tags
    db.sql("INSERT INTO messages (account_id, id, stream, from_email, content, tags)"
           " SELECT %s, 'msg_st' || g, CASE WHEN g %% 3 = 0 THEN 'broadcast' ELSE 'transactional' END,"
           " 'a@b.example', '{}', CASE g %% 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN '{red}'"
           " WHEN 2 THEN '{red,blue}' ELSE '{blue}' END FROM generate_series(1, 300) g" % sl.lit(a))
    base = datetime.datetime(2026, 3, 1, 22, 0, 0, tzinfo=datetime.timezone.utc)
    rnd = random.Random(7)
    total = 0
    for size in (1, 1, 7, 100, 1000, 5000, 13000):
        off = rnd.randrange(0, 48 * 3600)
        db.sql("INSERT INTO events (account_id, type, message_id, recipient, stream, created_at)"
               " SELECT %s, (ARRAY%s)[1 + (g * 7 + %d) %% 12], 'msg_st' || (1 + (g + %d) %% 300),"
               " 'u' || g || '@' || (ARRAY['Example.COM','b.example','c.example','xn--bcher-kva.example'])[1 + g %% 4],"
               " CASE WHEN (1 + (g + %d) %% 300) %% 3 = 0 THEN 'broadcast' ELSE 'transactional' END,"
               " %s::timestamptz + ((g * 37 + %d) %% 172800) * interval '1 second'"
               " FROM generate_series(1, %d) g"
               % (sl.lit(a), repr(TYPES), size, size, size, sl.lit(iso(base)), off, size))
        total += size
    assert int(db.one("SELECT count(*) FROM events WHERE account_id = %s" % sl.lit(a))) == total

    c = acc.client
    since, until = base, base + datetime.timedelta(days=2)
    cases = [dict(), dict(stream="broadcast"), dict(tag="red"), dict(tag="blue"),
             dict(domain="example.com"), dict(domain="c.example", stream="transactional", tag="red")]

    def check_all():
        for unit in ("day", "hour"):
            for f in cases:
                q = dict(f, since=iso(since), until=iso(until), interval=unit)
                r = c.get("/v1/stats", params=q)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["interval"] == unit
                n_buckets = 3 if unit == "day" else 48      # 22:00 day 1 .. 22:00 day 3
                assert len(body["data"]) == n_buckets
                for item in body["data"]:
                    for k in ("stream", "tag", "domain"):
                        assert item.get(k) == f.get(k)
                want = expected(db, a, iso(since), iso(until), unit, **f)
                assert answered(body) == want, (unit, f)

    check_all()
    grand = sum(sum(item["counts"].values()) for item in c.get(
        "/v1/stats", params={"since": iso(since), "until": iso(until)}).json()["data"])
    assert grand == total
    # fold part of the pending counters, then all of them: nothing changes
    db.sql("SELECT posthorn_stats_rollup(500)")
    check_all()
    while int(db.one("SELECT posthorn_stats_rollup(100000)")) > 0:
        pass
    assert db.one("SELECT count(*) FROM stats_pending WHERE account_id = %s" % sl.lit(a)) == "0"
    check_all()
    # the IDN filter is normalised to its A-label
    r = c.get("/v1/stats", params={"since": iso(since), "until": iso(until),
                                   "domain": "BÜCHER.example"})
    assert r.status_code == 200 and r.json()["data"][0]["domain"] == "xn--bcher-kva.example"
    assert answered(r.json()) == expected(db, a, iso(since), iso(until), "day",
                                          domain="xn--bcher-kva.example")
    # another account sees none of it
    other = new_account().client
    r = other.get("/v1/stats", params={"since": iso(since), "until": iso(until)})
    assert r.status_code == 200 and answered(r.json()) == {}


def test_buckets_and_defaults(new_account):
    c = new_account().client
    r = c.get("/v1/stats")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["interval"] == "day" and len(body["data"]) in (7, 8)
    r = c.get("/v1/stats", params={"interval": "hour"})
    assert r.status_code == 200 and len(r.json()["data"]) in (24, 25)
    # since is rounded down to its bucket; until's bucket is included whole
    r = c.get("/v1/stats", params={"since": "2026-01-01T10:30:00+02:00",
                                   "until": "2026-01-01T12:00:01Z", "interval": "hour"})
    assert [x["bucket"] for x in r.json()["data"]] == [
        "2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z",
        "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"]
    assert r.json()["since"] == "2026-01-01T08:00:00Z" and r.json()["until"] == "2026-01-01T13:00:00Z"


@pytest.mark.parametrize("params,fields", [
    ({"since": "yesterday"}, {"since"}),
    ({"until": "2026-13-01T00:00:00Z"}, {"until"}),
    ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, {"since"}),
    ({"since": "2025-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}, {"since"}),
    ({"since": "2026-01-01T00:00:00Z", "until": "2026-02-15T00:00:00Z", "interval": "hour"},
     {"interval"}),
    ({"interval": "week", "stream": "all", "domain": "a@b", "tag": ""},
     {"interval", "stream", "domain", "tag"}),
])
def test_validation(new_account, params, fields):
    r = new_account().client.get("/v1/stats", params=params)
    assert r.status_code == 422, r.text
    assert set(sl.fields(r)) == fields


def test_scope(new_account):
    acc = new_account(scopes=("send",))
    assert acc.client.get("/v1/stats").status_code == 403


def test_send_path_feeds_stats(make_posthorn, pg):
    """Messages sent through the API and delivered by a worker (file delivery) show up as
    queued and delivered, per tag and domain; the worker folds the pending counters."""
    ph = make_posthorn()
    ph.api_proc()
    ph.worker_proc()
    aid = ph.create_account("stats-send")
    c = ph.client(ph.create_key(aid))
    for i in range(6):
        tags = ["promo"] if i % 2 else []
        r = c.post("/v1/messages", json=sl.msg(to=["s%d@Stats.Example" % i], tags=tags))
        assert r.status_code == 202, r.text

    def counts(**f):
        r = c.get("/v1/stats", params=dict(f, interval="hour"))
        assert r.status_code == 200, r.text
        tot = {}
        for item in r.json()["data"]:
            for t, n in item["counts"].items():
                tot[t] = tot.get(t, 0) + n
        return tot

    wait_until(lambda: counts()["delivered"] == 6, timeout=60, what="6 delivered in stats")
    assert counts()["queued"] == 6
    assert counts(tag="promo")["delivered"] == 3
    assert counts(domain="stats.example")["queued"] == 6
    assert counts(domain="other.example")["queued"] == 0
    assert counts(stream="broadcast")["queued"] == 0
    db = sl.Db(pg, ph)
    wait_until(lambda: db.one("SELECT count(*) FROM stats_pending") == "0", timeout=30,
               what="the worker folds the pending counters")
    assert counts()["delivered"] == 6 and counts()["queued"] == 6
