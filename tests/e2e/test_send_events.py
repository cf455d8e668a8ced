"""GET /v1/events: paging with after= walks every event of the account once, in order,
without gaps; filters; and the cursor stays correct when transactions commit out of id
order (the endpoint hands out only events below the committed watermark).

The out-of-order tests hold transactions open in the shared cluster; the watermark is
cluster-wide, so they are short and close their sessions in every case."""
import time

import pytest

import sendlib as sl


@pytest.fixture
def validate(spec):
    # Validate against openapi.yaml when it documents the path; test_events_documented
    # fails on its own otherwise, so the cursor tests still say what they test.
    return sl.spec_has(spec, "/v1/events")


def test_events_documented(spec):
    assert sl.spec_has(spec, "/v1/events"), "GET /v1/events is served but not in openapi.yaml"


def test_paging_walks_all_events_once(new_account, ph, pg, validate):
    acc = new_account()
    c = acc.client
    expected = set()
    singles = []
    for i in range(12):
        r = c.post("/v1/messages", json=sl.msg(to=["e%d@example.com" % i], cc=["f%d@example.com" % i],
                                               tags=["ev"], metadata={"n": str(i)}))
        assert r.status_code == 202, r.text
        singles.append(r.json()["id"])
        for x in r.json()["recipients"]:
            expected.add(("queued", r.json()["id"], x["delivery_id"], x["email"]))
    b = c.post("/v1/messages/batch", json={"messages": [sl.msg(to=["g%d@example.com" % i]) for i in range(5)]})
    for d in b.json()["data"]:
        expected.add(("queued", d["id"], d["recipients"][0]["delivery_id"], d["recipients"][0]["email"]))
    mid = singles[4]
    d = c.delete("/v1/messages/" + mid)
    assert d.status_code == 200 and d.json()["cancelled"] == 2
    for x in d.json()["recipients"]:
        expected.add(("cancelled", mid, x["delivery_id"], x["email"]))
    assert len(expected) == 31

    def walk(limit):
        seen, after, pages = [], None, 0
        while True:
            page = sl.events_after(c, after, limit, validate)
            pages += 1
            assert len(page["data"]) <= limit
            seen += page["data"]
            if not page["data"]:
                assert page["next_cursor"] is None, page
                return seen, pages
            if page["next_cursor"] is not None:
                assert page["next_cursor"] == page["data"][-1]["id"]
            after = page["data"][-1]["id"]
            assert pages < 200

    # The events are committed: wait until the account's view has all of them (the
    # watermark may lag behind a transaction elsewhere in the cluster for a moment).
    sl.hph.wait_until(lambda: len(walk(1000)[0]) >= 31, timeout=30, what="31 events visible")
    for limit in (1, 7, 31, 1000):
        seen, pages = walk(limit)
        ids = [e["id"] for e in seen]
        assert len(ids) == len(set(ids)), "duplicates with limit=%d" % limit
        got = {(e["type"], e["message_id"], e["delivery_id"], e["recipient"]) for e in seen}
        assert got == expected, (limit, got ^ expected)
        assert all(e["id"].startswith("evt_") for e in seen)
        # oldest first: every message's queued events come before its cancelled ones
        order = [(e["type"], e["message_id"]) for e in seen]
        assert max(i for i, o in enumerate(order) if o == ("queued", mid)) < \
            min(i for i, o in enumerate(order) if o == ("cancelled", mid))
    one = walk(1000)[0]
    q = [e for e in one if e["type"] == "queued" and e["recipient"] == "e3@example.com"][0]
    assert q["stream"] == "transactional" and q["tags"] == ["ev"] and q["metadata"] == {"n": "3"}, q
    assert q["created_at"].endswith("Z")
    # filters
    only = sl.drain_events(c, None, 5, validate, type="cancelled")[0]
    assert sorted(e["delivery_id"] for e in only) == sorted(x[2] for x in expected if x[0] == "cancelled")
    only = sl.drain_events(c, None, 5, validate, message_id=mid)[0]
    assert sorted((e["type"], e["delivery_id"]) for e in only) == \
        sorted((x[0], x[2]) for x in expected if x[1] == mid)
    only = sl.drain_events(c, None, 5, validate, recipient="f7@example.com")[0]
    assert [(e["type"], e["recipient"]) for e in only] == [("queued", "f7@example.com")]
    # a second from the middle of the walk resumes exactly there
    mid_id = one[10]["id"]
    rest = sl.drain_events(c, mid_id, 4, validate)[0]
    assert [e["id"] for e in rest] == [e["id"] for e in one[11:]]
    # another account sees none of them
    other = new_account()
    assert sl.events_after(other.client, None, 1000, validate)["data"] == []
    for bad in ({"after": "nope"}, {"type": "sent"}, {"limit": "0"}, {"limit": "1001"},
                {"since": "x"}, {"recipient": "not-an-address"}):
        r = c.get("/v1/events", params=bad, validate=validate)
        assert r.status_code == 422, (bad, r.status_code, r.text)
        assert list(bad)[0] in sl.fields(r)


def _insert(session, account, typ, mid):
    session.send("INSERT INTO events (account_id, type, message_id) VALUES (%s, %s, %s);"
                 % (sl.lit(account), sl.lit(typ), sl.lit(mid)))


def _ids(pg, db, mids):
    return dict((m, int(i)) for m, i in
                (r.split("|") for r in pg.psql(
                    "SELECT message_id, id FROM events WHERE message_id = ANY (%s::text[])"
                    % sl.lit("{" + ",".join(mids) + "}"), db=db).splitlines()))


@pytest.mark.parametrize("xid_first", ["t1", "t2"])
def test_cursor_survives_out_of_order_commits(new_account, ph, pg, validate, xid_first):
    """T1 inserts first (lower event id) and commits last. With xid_first=t2, T2 takes its
    transaction id before T1 inserts, so id order and transaction order disagree too."""
    acc = new_account()
    c = acc.client
    db = ph.db_url.rsplit("/", 1)[1]
    r = c.post("/v1/messages", json=sl.msg())
    assert r.status_code == 202
    seen, after = [], None

    def consume():
        nonlocal after
        got, after = sl.drain_events(c, after, 2, validate)
        seen.extend(got)
        return got

    sl.hph.wait_until(lambda: consume() or seen, timeout=30, what="the queued event")
    assert [e["type"] for e in seen] == ["queued"]
    m1, m2 = "msg_T1" + sl.uid(16), "msg_T2" + sl.uid(16)
    t1 = sl.PsqlSession(pg, db)
    t2 = sl.PsqlSession(pg, db)
    try:
        t1.send("BEGIN;")
        t2.send("BEGIN;")
        if xid_first == "t2":
            t2.send("SELECT pg_current_xact_id();")
            t2.wait_idle_in_transaction()
        _insert(t1, acc.id, "opened", m1)
        t1.wait_idle_in_transaction()
        _insert(t2, acc.id, "clicked", m2)
        t2.wait_idle_in_transaction()
        t2.send("COMMIT;")
        t2.wait_idle()
        ids = _ids(pg, db, [m1, m2])
        assert list(ids) == [m2]   # T1's row is not committed yet
        consume()                  # between the commits
        t1.send("COMMIT;")
        t1.wait_idle()
        ids = _ids(pg, db, [m1, m2])
        assert ids[m1] < ids[m2], ids   # the first-inserted one committed last
        sl.hph.wait_until(lambda: consume() is not None and {m1, m2} <= {e["message_id"] for e in seen},
                          timeout=20, interval=0.2,
                          what="both events through after= paging (seen: %r)" % seen)
    finally:
        t1.close()
        t2.close()
    time.sleep(0.3)
    consume()
    got = [e["message_id"] for e in seen]
    assert len([e["id"] for e in seen]) == len({e["id"] for e in seen}), "duplicates: %r" % seen
    assert got.count(m1) == 1 and got.count(m2) == 1, got
