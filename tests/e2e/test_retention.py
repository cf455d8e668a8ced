"""Retention, run by worker housekeeping (migration 0007):

- POSTHORN_RETENTION: a message whose deliveries are all final loses its content, template
  data, attachment bytes and SMTP transcripts once older than the retention; its metadata,
  recipients, attempts and events stay, and GET /v1/messages/{id} still answers. A message
  with a delivery still waiting keeps everything.
- POSTHORN_EVENT_RETENTION: daily partitions of events are made ahead (tomorrow .. +7),
  partitions wholly older than the retention are dropped, expired rows of the default
  partition are deleted; /v1/stats keeps the counts of deleted events.
- POSTHORN_STATS_RETENTION: hourly stats counters older than it are deleted."""
import datetime
import json

import sendlib as sl
from harness.posthorn import wait_until


def test_content_purged_after_retention(make_posthorn, pg):
    ph = make_posthorn(env={"POSTHORN_RETENTION": "2s"})
    ph.api_proc()
    aid = ph.create_account("retention")
    c = ph.client(ph.create_key(aid))
    db = sl.Db(pg, ph)
    m = sl.msg(to=["keep@ret.example"], tags=["t1"], metadata={"order": "A-1"},
               attachments=[{"filename": "a.txt", "content_type": "text/plain",
                             "content": sl.b64(b"secret attachment")}])
    r = c.post("/v1/messages", json=m)
    assert r.status_code == 202, r.text
    done_id = r.json()["id"]
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    r = c.post("/v1/messages", json=sl.msg(to=["later@ret.example"],
                                           send_at=later.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert r.status_code == 202, r.text
    waiting_id = r.json()["id"]

    ph.worker_proc()
    wait_until(lambda: c.get("/v1/messages/" + done_id).json()["recipients"][0]["status"] == "delivered",
               timeout=60, what="delivered")
    # an SMTP transcript as the relay/MX paths record it (file delivery keeps none)
    db.sql("UPDATE delivery_attempts SET transcript = '220 hi' WHERE account_id = %s" % sl.lit(aid))
    before = c.get("/v1/messages/" + done_id).json()
    assert before["subject"] == "Hello {{name}}"

    def purged():
        return db.one("SELECT purged_at IS NOT NULL FROM messages WHERE id = %s" % sl.lit(done_id)) == "t"
    wait_until(purged, timeout=60, what="the message purged")
    content, data = db.rows("SELECT content, data FROM messages WHERE id = %s" % sl.lit(done_id))[0]
    assert json.loads(content) == {"purged": True} and json.loads(data) == {}
    assert db.one("SELECT count(*) FROM attachments WHERE message_id = %s AND content IS NOT NULL"
                  % sl.lit(done_id)) == "0"
    assert db.one("SELECT count(*) FROM attachments WHERE message_id = %s" % sl.lit(done_id)) == "1"
    wait_until(lambda: db.one("SELECT count(*) FROM delivery_attempts WHERE account_id = %s"
                              " AND transcript IS NOT NULL" % sl.lit(aid)) == "0",
               timeout=30, what="transcripts purged")
    # the message still answers: metadata, tags, recipients and events stay
    after = c.get("/v1/messages/" + done_id)
    assert after.status_code == 200, after.text
    a = after.json()
    assert a["subject"] is None
    assert a["metadata"] == {"order": "A-1"} and a["tags"] == ["t1"]
    assert a["recipients"][0]["status"] == "delivered"
    assert [e["type"] for e in a["events"]] == [e["type"] for e in before["events"]]
    # the scheduled one keeps everything
    assert db.one("SELECT purged_at IS NULL AND content ? 'subject' FROM messages WHERE id = %s"
                  % sl.lit(waiting_id)) == "t"
    assert c.get("/v1/messages/" + waiting_id).json()["subject"] == "Hello {{name}}"


def test_event_partitions_and_retention(make_posthorn, pg):
    # counters of 2020 outlive the default stats retention (730d): keep them for this test
    ph = make_posthorn(env={"POSTHORN_EVENT_RETENTION": "1d", "POSTHORN_STATS_RETENTION": "36500d"})
    ph.api_proc()
    aid = ph.create_account("event-retention")
    c = ph.client(ph.create_key(aid))
    db = sl.Db(pg, ph)
    a = sl.lit(aid)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    yday = today - datetime.timedelta(days=1)
    # an old daily partition with a row, yesterday's partition, and old rows in the default one
    for d in (datetime.date(2020, 1, 1), yday):
        name = "events_p" + d.strftime("%Y%m%d")
        db.sql("CREATE TABLE %s (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
               " ALTER TABLE events ATTACH PARTITION %s FOR VALUES FROM ('%s 00:00+00') TO ('%s 00:00+00')"
               % (name, name, d.isoformat(), (d + datetime.timedelta(days=1)).isoformat()))
    db.sql("INSERT INTO events (account_id, type, recipient, stream, created_at) VALUES"
           " (%s, 'delivered', 'x@old.example', 'transactional', '2020-01-01 12:00+00'),"
           " (%s, 'delivered', 'y@old.example', 'transactional', now() - interval '3 days'),"
           " (%s, 'opened', 'y@old.example', 'transactional', now() - interval '3 days'),"
           " (%s, 'delivered', 'z@new.example', 'transactional', '%s 23:00+00'),"
           " (%s, 'queued', 'n@new.example', 'transactional', now())" % (a, a, a, a, yday.isoformat(), a))
    assert db.one("SELECT count(*) FROM events_default WHERE account_id = %s" % a) == "3"

    ph.worker_proc()
    ahead = {"events_p" + (today + datetime.timedelta(days=i)).strftime("%Y%m%d") for i in range(1, 8)}

    def parts():
        return set(db.sql("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                          " WHERE i.inhparent = 'events'::regclass").split())
    wait_until(lambda: ahead <= parts() and "events_p20200101" not in parts(), timeout=60,
               what="partitions made ahead and the old one dropped")
    assert "events_p" + yday.strftime("%Y%m%d") in parts()      # not wholly past the retention
    wait_until(lambda: db.one("SELECT count(*) FROM events WHERE account_id = %s" % a) == "2",
               timeout=30, what="expired default-partition rows deleted")
    assert sorted(db.sql("SELECT recipient FROM events WHERE account_id = %s" % a).split()) == \
        ["n@new.example", "z@new.example"]
    # new events go to today's row in the default partition or to the daily partitions
    r = c.post("/v1/messages", json=sl.msg(to=["p@new.example"]))
    assert r.status_code == 202
    # the counts of deleted events stay
    r = c.get("/v1/stats", params={"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"})
    assert r.status_code == 200 and r.json()["data"][0]["counts"]["delivered"] == 1
    three = (today - datetime.timedelta(days=3)).strftime("%Y-%m-%dT00:00:00Z")
    r = c.get("/v1/stats", params={"since": three, "interval": "day"})
    assert r.json()["data"][0]["counts"]["opened"] == 1


def test_webhook_log_purged_after_event_retention(make_posthorn, pg):
    """Finished webhook batches and attempt log rows older than the event retention go; a
    pending batch and recent rows stay."""
    ph = make_posthorn(env={"POSTHORN_EVENT_RETENTION": "1h"})
    aid = ph.create_account("wh-retention")
    db = sl.Db(pg, ph)
    db.sql("INSERT INTO webhooks (account_id, id, url, secret, events, state) VALUES"
           " (%s, 'wh_old', 'https://hooks.example/x', '\\x00', '{*}', 'disabled')"
           % sl.lit(aid))
    row = ("INSERT INTO webhook_batches (account_id, webhook_id, id, after_xid, after_id,"
           " last_xid, last_id, events, event_count, body_sha256, state, created_at) VALUES"
           " (%s, 'wh_old', '%%s', '1', 0, '1', 1, '{queued}', 1, '\\x00', '%%s', %%s)" % sl.lit(aid))
    db.sql(row % ("msg_old_done", "done", "now() - interval '2 hours'"))
    db.sql(row % ("msg_old_pending", "pending", "now() - interval '2 hours'"))
    db.sql(row % ("msg_new_done", "done", "now()"))
    att = ("INSERT INTO webhook_attempts (account_id, webhook_id, batch_id, event_count, attempt,"
           " status_code, latency_ms, created_at) VALUES (%s, 'wh_old', 'b', 1, 1, 200, 5, %%s)"
           % sl.lit(aid))
    db.sql(att % "now() - interval '2 hours'")
    db.sql(att % "now()")
    ph.worker_proc()
    wait_until(lambda: db.one("SELECT count(*) FROM webhook_attempts") == "1",
               timeout=40, what="old webhook attempts purged")
    wait_until(lambda: db.one("SELECT string_agg(id, ',' ORDER BY id) FROM webhook_batches")
               == "msg_new_done,msg_old_pending", timeout=20, what="old finished batches purged")


def test_campaign_recipient_data_purged_with_the_message(make_posthorn, pg):
    """A campaign's per-recipient template data (deliveries.data, the contacts' fields) goes
    with the campaign message's content once the campaign is over and the retention has
    passed (migration 0011); the deliveries themselves and the progress counts stay."""
    ph = make_posthorn(env={"POSTHORN_RETENTION": "2s", "POSTHORN_POLL_INTERVAL": "1s"})
    ph.api_proc()
    aid = ph.create_account("campaign-retention")
    c = ph.client(ph.create_key(aid))
    db = sl.Db(pg, ph)
    lid = c.post("/v1/lists", json={"name": "L"}).json()["id"]
    body = "email,first_name\n" + "".join("r%d@ret.example,Secret%d\n" % (i, i) for i in range(30))
    r = c.post("/v1/lists/%s/contacts" % lid, data=body.encode(),
               headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["inserted"] == 30, r.text
    r = c.post("/v1/campaigns", json={"name": "N", "list_id": lid,
                                      "from": {"email": "news@shop.example"},
                                      "subject": "Hi {{first_name}}", "text": "Dear {{first_name}}"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert c.post("/v1/campaigns/%s/send" % cid).status_code == 200
    ph.worker_proc()
    wait_until(lambda: c.get("/v1/campaigns/" + cid).json()["state"] == "sent", timeout=60,
               what="campaign sent")
    q = "SELECT count(*) FROM deliveries WHERE campaign_id = %s AND data IS NOT NULL" % sl.lit(cid)
    wait_until(lambda: db.one(q) == "0", timeout=60, what="recipient data purged")
    assert db.one("SELECT count(*) FROM deliveries WHERE campaign_id = %s" % sl.lit(cid)) == "30"
    assert db.one("SELECT m.purged_at IS NOT NULL FROM campaigns c JOIN messages m"
                  " ON m.account_id = c.account_id AND m.id = c.message_id WHERE c.id = %s"
                  % sl.lit(cid)) == "t"
    assert "Secret" not in db.sql("SELECT string_agg(coalesce(d.data::text, ''), '')"
                                  " FROM deliveries d WHERE campaign_id = %s" % sl.lit(cid))
    p = c.get("/v1/campaigns/" + cid).json()["progress"]
    assert p["total"] == 30 and p["delivered"] == 30


def test_stats_counters_trimmed_after_stats_retention(make_posthorn, pg):
    """Hourly stats counters older than POSTHORN_STATS_RETENTION are deleted by housekeeping;
    newer ones, and what /v1/stats answers for them, stay."""
    ph = make_posthorn(env={"POSTHORN_STATS_RETENTION": "48h"})
    ph.api_proc()
    aid = ph.create_account("stats-retention")
    c = ph.client(ph.create_key(aid))
    db = sl.Db(pg, ph)
    a = sl.lit(aid)
    db.sql("INSERT INTO stats_hourly (account_id, tag, hour, stream, domain, type, count) VALUES"
           " (%s, '', date_trunc('hour', now()) - interval '72 hours', 'transactional', 'x.example', 'delivered', 5),"
           " (%s, '', date_trunc('hour', now()) - interval '49 hours', 'transactional', 'x.example', 'delivered', 4),"
           " (%s, '', date_trunc('hour', now()) - interval '47 hours', 'transactional', 'x.example', 'delivered', 3),"
           " (%s, '', date_trunc('hour', now()), 'transactional', 'x.example', 'delivered', 2)" % (a, a, a, a))
    ph.worker_proc()
    wait_until(lambda: db.one("SELECT count(*) FROM stats_hourly WHERE account_id = %s" % a) == "2",
               timeout=40, what="counters past the stats retention deleted")
    since = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=4)).strftime(
        "%Y-%m-%dT%H:00:00Z")
    r = c.get("/v1/stats", params={"since": since, "interval": "day"})
    assert r.status_code == 200, r.text
    assert sum(b["counts"].get("delivered", 0) for b in r.json()["data"]) == 5
