"""POST /v1/messages/batch: per-item results in request order, valid items accepted when
others fail, the request-level limits, and the batch as one idempotent unit."""
import sendlib as sl


def tagged(tag, **over):
    return sl.msg(tags=[tag], **over)


def ids_with_tag(c, tag):
    items, _ = sl.page_all(c, "/v1/messages", {"tag": tag}, limit=1000)
    return sorted(x["id"] for x in items)


def test_mixed_batch(new_account):
    c = new_account().client
    tag = "batch-" + sl.uid()
    batch = {"messages": [
        tagged(tag, to=["one@example.com"]),
        tagged(tag, to=[{"email": "ok@example.com"}, {"email": "broken"}]),
        tagged(tag, to=["two@example.com"], cc=["three@example.com"], stream="broadcast"),
        tagged(tag, colour="red", stream="nope"),
        tagged(tag, to=["four@example.com"], subject="Hi\r\nBcc: x@example.com"),
    ]}
    r = c.post("/v1/messages/batch", json=batch)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2, 3, 4]
    ok = {d["index"]: d for d in data if "id" in d}
    bad = {d["index"]: d for d in data if "error" in d}
    assert sorted(ok) == [0, 2] and sorted(bad) == [1, 3, 4], data
    assert ok[0]["status"] == "queued" and [x["email"] for x in ok[0]["recipients"]] == ["one@example.com"]
    assert [x["email"] for x in ok[2]["recipients"]] == ["two@example.com", "three@example.com"]
    assert all(x["status"] == "queued" and x["delivery_id"].startswith("dlv_")
               for d in ok.values() for x in d["recipients"])
    for i, want in ((1, ["to[1].email"]), (3, ["colour", "stream"]), (4, ["subject"])):
        e = bad[i]["error"]
        assert e["status"] == 422, e
        assert sorted(f["field"] for f in e["errors"]) == sorted(want), (i, e)
    # what was stored is exactly the valid items
    assert ids_with_tag(c, tag) == sorted([ok[0]["id"], ok[2]["id"]])
    m = c.get("/v1/messages/" + ok[2]["id"]).json()
    assert m["stream"] == "broadcast"
    assert sorted((x["email"], x["kind"], x["status"]) for x in m["recipients"]) == \
        [("three@example.com", "cc", "queued"), ("two@example.com", "to", "queued")]
    assert sorted(e["type"] for e in m["events"]) == ["queued", "queued"]


def test_batch_item_not_an_object(new_account):
    c = new_account().client
    tag = "batch-" + sl.uid()
    r = c.post("/v1/messages/batch", json={"messages": [tagged(tag), "not a message", 5]})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [("id" in d, d["index"]) for d in data] == [(True, 0), (False, 1), (False, 2)], data
    assert data[1]["error"]["status"] == 422 and data[1]["error"]["errors"]
    assert ids_with_tag(c, tag) == [data[0]["id"]]


def test_request_level_limits(new_account):
    c = new_account().client
    tag = "batch-" + sl.uid()
    for body, field in (({"messages": [tagged(tag)] * 501}, "messages"),
                        ({"messages": []}, "messages"),
                        ({"messages": tagged(tag)}, "messages"),
                        ({}, "messages"),
                        ({"messages": [tagged(tag)], "dry_run": True}, "dry_run")):
        r = c.post("/v1/messages/batch", json=body)
        assert r.status_code == 422, (len(body.get("messages") or []), r.status_code, r.text[:300])
        assert field in sl.fields(r), sl.errors(r)
    assert ids_with_tag(c, tag) == []
    for raw in (b"[]", b"{", b'"messages"'):
        r = c.post("/v1/messages/batch", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.status_code)
    r = c.post("/v1/messages/batch", data=b'{"messages": []}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_500_items(new_account):
    c = new_account().client
    tag = "batch-" + sl.uid()
    r = c.post("/v1/messages/batch",
               json={"messages": [tagged(tag, to=["r%d@example.com" % i]) for i in range(500)]},
               timeout=120)
    assert r.status_code == 200, r.text[:500]
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(500))
    assert all(d.get("status") == "queued" for d in data), [d for d in data if "error" in d][:3]
    assert [d["recipients"][0]["email"] for d in data] == ["r%d@example.com" % i for i in range(500)]
    assert ids_with_tag(c, tag) == sorted(d["id"] for d in data)


def test_batch_is_one_idempotent_unit(new_account):
    c = new_account().client
    tag = "batch-" + sl.uid()
    key = "batch-key-" + sl.uid()
    body = sl.jdump({"messages": [tagged(tag, to=["a@example.com"]), tagged(tag, to=["bad"]),
                                  tagged(tag, to=["b@example.com"])]})
    h = {"Content-Type": "application/json", "Idempotency-Key": key}
    r1 = c.post("/v1/messages/batch", data=body, headers=h)
    assert r1.status_code == 200, r1.text
    assert r1.headers.get("Idempotent-Replayed") is None
    stored = ids_with_tag(c, tag)
    assert len(stored) == 2
    r2 = c.post("/v1/messages/batch", data=body, headers=h)
    assert r2.status_code == 200
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.content == r1.content, "replay differs"
    assert ids_with_tag(c, tag) == stored, "replay sent again"
    other = sl.jdump({"messages": [tagged(tag, to=["c@example.com"])]})
    r3 = c.post("/v1/messages/batch", data=other, headers=h)
    assert r3.status_code == 409, r3.text
    assert ids_with_tag(c, tag) == stored
    # The key is scoped to the batch route's account, and a single send with the same key
    # and another body conflicts too (one key space per account).
    r4 = c.post("/v1/messages", data=sl.jdump(tagged(tag)), headers=h)
    assert r4.status_code == 409, r4.text


def test_batch_with_nothing_accepted_is_not_stored(new_account):
    c = new_account().client
    tag = "batch-" + sl.uid()
    key = "batch-key-" + sl.uid()
    h = {"Idempotency-Key": key}
    r1 = c.post("/v1/messages/batch", json={"messages": [tagged(tag, to=["bad"])]}, headers=h)
    assert r1.status_code == 200 and "error" in r1.json()["data"][0], r1.text
    r2 = c.post("/v1/messages/batch", json={"messages": [tagged(tag, to=["good@example.com"])]},
                headers=h)
    assert r2.status_code == 200, r2.text
    assert r2.headers.get("Idempotent-Replayed") is None
    assert r2.json()["data"][0]["status"] == "queued", r2.text
    assert ids_with_tag(c, tag) == [r2.json()["data"][0]["id"]]
