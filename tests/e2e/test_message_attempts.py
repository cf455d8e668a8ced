"""GET /v1/messages/{id}: each recipient carries its destination and its attempt log
(delivery_attempts, migration 0004), oldest first, the newest 50 at most. Most tests write
the attempt rows with SQL (as queue_record does) for a message sent through the API; one
runs a worker (POSTHORN_DELIVERY=file) so that queue_record writes them itself. Every
response is validated against openapi.yaml by the harness client."""
import pytest

from harness import posthorn as hph
from sendlib import Db, lit, msg, uid


@pytest.fixture
def db(pg, ph):
    return Db(pg, ph)


def send(account, n=2, **over):
    to = [{"email": "att%d-%s@example.com" % (i, uid(6).lower())} for i in range(n)]
    r = account.client.post("/v1/messages", json=msg(to=to, **over))
    assert r.status_code == 202, r.text
    body = r.json()
    return body["id"], [x["delivery_id"] for x in body["recipients"]]


def add_attempt(db, account_id, did, attempt, outcome="deferred", code=None, enhanced=None,
                response=None, mx=None, ip=None, tls=None, duration_ms=None, transcript=None,
                bounce_class=None, ago_s=0):
    db.sql("INSERT INTO delivery_attempts (account_id, delivery_id, attempt, outcome, code,"
           " enhanced, response, mx, ip, tls, duration_ms, transcript, bounce_class, created_at)"
           " VALUES (%s, %s, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
           " now() - interval '%d seconds')"
           % (lit(account_id), lit(did), attempt, lit(outcome),
              "NULL" if code is None else int(code), lit(enhanced), lit(response), lit(mx),
              lit(ip), lit(tls), "NULL" if duration_ms is None else int(duration_ms),
              lit(transcript), lit(bounce_class), ago_s))


def recipient(body, did):
    [r] = [x for x in body["recipients"] if x["delivery_id"] == did]
    return r


def test_attempts_oldest_first_with_every_field(db, new_account):
    acc = new_account()
    mid, (d1, d2) = send(acc)
    transcript = ("S: 220 mx1.example.net ESMTP\nC: EHLO posthorn.test\nS: 250-mx1\n"
                  "C: MAIL FROM:<b@x>\nS: 250 ok\nC: RCPT TO:<a@example.com>\n"
                  "S: 421 4.7.0 Try again later \u2013 greylisted\n")
    add_attempt(db, acc.id, d1, 1, "deferred", 421, "4.7.0", "Try again later", "mx1.example.net",
                "192.0.2.10", None, 812, transcript, None, ago_s=120)
    add_attempt(db, acc.id, d1, 2, "delivered", 250, "2.0.0", "Ok queued as 4XyZ",
                "mx2.example.net", "2001:db8::25", "TLSv1.3 TLS_AES_256_GCM_SHA384", 390, None,
                None, ago_s=10)
    db.sql("UPDATE deliveries SET destination = 'example-net.mx', attempts = 2,"
           " state = 'delivered' WHERE id = %s" % lit(d1))
    r = acc.client.get("/v1/messages/" + mid)
    assert r.status_code == 200, r.text
    body = r.json()
    one = recipient(body, d1)
    assert one["destination"] == "example-net.mx"
    assert one["attempts"] == 2
    log = one["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2]
    first, second = log
    assert {k: v for k, v in first.items() if k != "created_at"} == {
        "attempt": 1, "outcome": "deferred", "code": 421, "enhanced": "4.7.0",
        "response": "Try again later", "mx": "mx1.example.net", "ip": "192.0.2.10",
        "tls": None, "duration_ms": 812, "bounce_class": None, "transcript": transcript}
    assert second["tls"] == "TLSv1.3 TLS_AES_256_GCM_SHA384" and second["transcript"] is None
    assert second["ip"] == "2001:db8::25" and second["outcome"] == "delivered"
    assert first["created_at"] < second["created_at"]
    # The other recipient has no attempt yet.
    other = recipient(body, d2)
    assert other["attempt_log"] == [] and other["destination"] is None


def test_bounce_with_nulls(db, new_account):
    acc = new_account()
    mid, (d1,) = send(acc, n=1)
    add_attempt(db, acc.id, d1, 1, "bounced", 550, "5.1.1", "User unknown", bounce_class="hard")
    add_attempt(db, acc.id, d1, 2, "failed")   # e.g. a render failure: nothing else known
    log = recipient(acc.client.get("/v1/messages/" + mid).json(), d1)["attempt_log"]
    assert [(a["attempt"], a["outcome"], a["bounce_class"]) for a in log] == \
        [(1, "bounced", "hard"), (2, "failed", None)]
    assert all(log[1][k] is None for k in ("code", "enhanced", "response", "mx", "ip", "tls",
                                             "duration_ms", "transcript"))


def test_only_the_newest_50_attempts(db, new_account):
    acc = new_account()
    mid, (d1,) = send(acc, n=1)
    db.sql("INSERT INTO delivery_attempts (account_id, delivery_id, attempt, outcome, code,"
           " response) SELECT %s, %s, g, 'deferred', 451, 'try ' || g"
           " FROM generate_series(1, 60) g" % (lit(acc.id), lit(d1)))
    log = recipient(acc.client.get("/v1/messages/" + mid).json(), d1)["attempt_log"]
    assert [a["attempt"] for a in log] == list(range(11, 61))
    assert log[0]["response"] == "try 11"


def test_cancel_answer_carries_attempts_too(db, new_account):
    acc = new_account()
    mid, (d1, d2) = send(acc)
    add_attempt(db, acc.id, d1, 1, "deferred", 451, "4.3.0", "later")
    db.sql("UPDATE deliveries SET state = 'deferred', attempts = 1 WHERE id = %s" % lit(d1))
    r = acc.client.delete("/v1/messages/" + mid)
    assert r.status_code == 200, r.text
    assert [a["attempt"] for a in recipient(r.json(), d1)["attempt_log"]] == [1]


def test_another_accounts_attempts_stay_hidden(db, new_account):
    a, b = new_account(), new_account()
    mid, (d1, _) = send(b)
    add_attempt(db, b.id, d1, 1, "deferred", 421, transcript="secret transcript")
    r = a.client.get("/v1/messages/" + mid)
    assert r.status_code == 404
    assert "secret transcript" not in r.text


def test_attempts_deleted_with_their_delivery(db, new_account):
    acc = new_account()
    mid, (d1, _) = send(acc)
    add_attempt(db, acc.id, d1, 1)
    db.sql("DELETE FROM messages WHERE account_id = %s AND id = %s" % (lit(acc.id), lit(mid)))
    assert db.sql("SELECT count(*) FROM delivery_attempts WHERE delivery_id = %s" % lit(d1)) == "0"


def test_worker_records_attempts(pg, make_posthorn):
    """queue_record writes one attempt row per recorded outcome, none for sandbox mail."""
    ph = make_posthorn()
    db = Db(pg, ph)
    account = ph.create_account("attempts")
    key = ph.create_key(account, ["send", "read", "admin"], rate=1000)
    ph.api_proc()
    c = ph.client(key)
    r = c.post("/v1/messages", json=msg(to=[{"email": "real@example.com"}]))
    assert r.status_code == 202, r.text
    mid, did = r.json()["id"], r.json()["recipients"][0]["delivery_id"]
    r = c.post("/v1/messages", json=msg(to=[{"email": "sand@example.com"}], sandbox=True))
    assert r.status_code == 202, r.text
    smid, sdid = r.json()["id"], r.json()["recipients"][0]["delivery_id"]
    ph.worker_proc()

    def done():
        st = dict(db.rows("SELECT id, state FROM deliveries WHERE id IN (%s, %s)"
                          % (lit(did), lit(sdid))))
        return st.get(did) not in (None, "queued", "sending") and \
            st.get(sdid) not in (None, "queued", "sending")
    hph.wait_until(done, timeout=60, what="both deliveries recorded")
    one = c.get("/v1/messages/" + mid).json()["recipients"][0]
    assert one["status"] == "delivered", one
    assert [(a["attempt"], a["outcome"]) for a in one["attempt_log"]] == [(1, "delivered")], one
    sand = c.get("/v1/messages/" + smid).json()["recipients"][0]
    assert sand["status"] == "delivered" and sand["attempt_log"] == [], sand
