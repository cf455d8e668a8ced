"""Idempotency-Key on POST /v1/messages: replay (same status, byte-identical body,
Idempotent-Replayed: true), conflict (409 for another body), failed requests not stored,
keys scoped to the account, concurrent requests with one key next to unrelated ones, and the
same key through two API processes sharing one database."""
import threading
from concurrent.futures import ThreadPoolExecutor

import sendlib as sl


def count_tag(c, tag):
    items, _ = sl.page_all(c, "/v1/messages", {"tag": tag}, limit=1000)
    return sorted(x["id"] for x in items)


def post_raw(c, body, key):
    return c.post("/v1/messages", data=body,
                  headers={"Content-Type": "application/json", "Idempotency-Key": key})


def test_replay_and_conflict(new_account):
    acc = new_account()
    c = acc.client
    tag = "idem-" + sl.uid()
    key = "order-" + sl.uid()
    body = sl.jdump(sl.msg(tags=[tag], to=["a@example.com", "b@example.com"]))
    r1 = post_raw(c, body, key)
    assert r1.status_code == 202, r1.text
    assert r1.headers.get("Idempotent-Replayed") is None
    r2 = post_raw(c, body, key)
    assert r2.status_code == 202, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.content == r1.content, (r1.content, r2.content)
    assert count_tag(c, tag) == [r1.json()["id"]]
    # Same key, different body: 409, nothing stored; whitespace alone makes another body.
    r3 = post_raw(c, sl.jdump(sl.msg(tags=[tag], to=["c@example.com"])), key)
    assert r3.status_code == 409, r3.text
    r4 = post_raw(c, body + b" ", key)
    assert r4.status_code == 409, r4.text
    assert count_tag(c, tag) == [r1.json()["id"]]
    # The original still replays.
    r5 = post_raw(c, body, key)
    assert r5.status_code == 202 and r5.content == r1.content
    # Keys are per account: another account's identical request is sent anew.
    other = new_account()
    r6 = post_raw(other.client, body, key)
    assert r6.status_code == 202 and r6.headers.get("Idempotent-Replayed") is None
    assert r6.json()["id"] != r1.json()["id"]
    # Without a key every request sends.
    assert c.post("/v1/messages", data=body, headers={"Content-Type": "application/json"}).status_code == 202
    assert len(count_tag(c, tag)) == 2


def test_failed_request_is_not_stored(new_account):
    c = new_account().client
    tag = "idem-" + sl.uid()
    key = "retry-" + sl.uid()
    bad = post_raw(c, sl.jdump(sl.msg(tags=[tag], to=["broken"])), key)
    assert bad.status_code == 422
    good = post_raw(c, sl.jdump(sl.msg(tags=[tag])), key)
    assert good.status_code == 202, good.text
    assert good.headers.get("Idempotent-Replayed") is None
    assert count_tag(c, tag) == [good.json()["id"]]


def test_concurrent_same_key_and_unrelated(new_account, api, spec):
    acc = new_account()
    tag, other_tag = "idem-" + sl.uid(), "unrel-" + sl.uid()
    key = "burst-" + sl.uid()
    body = sl.jdump(sl.msg(tags=[tag]))
    clients = sl.ThreadClients(api.base, acc.key, spec)
    barrier = threading.Barrier(40)

    def keyed(_):
        c = clients.get()
        barrier.wait(30)
        return post_raw(c, body, key)

    def unrelated(i):
        c = clients.get()
        barrier.wait(30)
        return c.post("/v1/messages", json=sl.msg(tags=[other_tag], to=["u%d@example.com" % i]))

    with ThreadPoolExecutor(40) as ex:
        fk = [ex.submit(keyed, i) for i in range(20)]
        fu = [ex.submit(unrelated, i) for i in range(20)]
        rk = [f.result() for f in fk]
        ru = [f.result() for f in fu]
    codes = sorted(r.status_code for r in rk)
    print("keyed answers:", codes, [r.headers.get("Idempotent-Replayed") for r in rk])
    assert set(codes) <= {202, 409}, codes
    accepted = [r for r in rk if r.status_code == 202]
    assert accepted, codes
    assert len({r.content for r in accepted}) == 1, "different answers for one key"
    assert sum(1 for r in accepted if r.headers.get("Idempotent-Replayed") != "true") <= 1
    for r in rk:
        if r.status_code == 409:
            assert r.headers.get("Retry-After"), ("409 without Retry-After", r.text)
    stored = count_tag(acc.client, tag)
    assert stored == [accepted[0].json()["id"]], stored
    assert [r.status_code for r in ru] == [202] * 20, [(r.status_code, r.text[:200]) for r in ru]
    assert len(count_tag(acc.client, other_tag)) == 20
    # after the burst, the key replays
    r = post_raw(acc.client, body, key)
    assert r.status_code == 202 and r.content == accepted[0].content


def test_same_key_through_two_api_processes(make_posthorn, pg):
    st = sl.Stack(make_posthorn(), pg)
    api2 = st.second_api()
    assert api2.port != st.api.port
    c1, c2 = st.clients(st.api), st.clients(api2)
    rounds, per_api = 12, 3
    results = {}
    tags = {}
    for n in range(rounds):
        tags[n] = "two-" + sl.uid()
    barrier = threading.Barrier(2 * per_api)

    def go(n, clients):
        body = sl.jdump(sl.msg(tags=[tags[n]]))
        c = clients.get()
        barrier.wait(30)
        return post_raw(c, body, "two-apis-%d-%s" % (n, tags[n]))

    with ThreadPoolExecutor(2 * per_api) as ex:
        for n in range(rounds):
            fs = [ex.submit(go, n, cl) for cl in [c1] * per_api + [c2] * per_api]
            results[n] = [f.result() for f in fs]
    for n, rs in results.items():
        codes = sorted(r.status_code for r in rs)
        print("round", n, codes)
        assert set(codes) <= {202, 409}, (n, codes, [r.text[:200] for r in rs])
        ok = [r for r in rs if r.status_code == 202]
        assert ok, (n, codes)
        assert len({r.json()["id"] for r in ok}) == 1, (n, "two messages answered for one key")
        stored = count_tag(st.client, tags[n])
        assert stored == [ok[0].json()["id"]], (n, stored)
    # each key replays through either process
    for n in (0, rounds - 1):
        body = sl.jdump(sl.msg(tags=[tags[n]]))
        key = "two-apis-%d-%s" % (n, tags[n])
        a = post_raw(c1.get(), body, key)
        b = post_raw(c2.get(), body, key)
        assert a.status_code == b.status_code == 202 and a.content == b.content
        assert a.headers.get("Idempotent-Replayed") == b.headers.get("Idempotent-Replayed") == "true"
    assert len(st.db.rows("SELECT 1 FROM messages")) == rounds
