"""The SMTP conversation of POSTHORN_DELIVERY=mx against scripted aiosmtpd peers on
127.0.0.x (tests/e2e/mxstack.py, tests/harness/smtppeer.py): greylisting (451 4.7.1 at RCPT,
then 250), one of three recipients rejected at RCPT (one bounced and suppressed, two delivered
in one transaction), a disconnect in the middle of DATA and a server stalling past the DATA
timeout (deferred, then delivered once it behaves), several RCPTs per transaction, connection
reuse with RSET bounded by messages_per_connection, and SMTPUTF8 needed but not offered."""
from mxstack import mx_stack, smtp_data  # noqa: F401 (fixture)
from harness.posthorn import wait_until


def test_greylisting_deferred_then_delivered(mx_stack):
    st = mx_stack(mx={"grey.test": "127.0.0.2"})
    peer = st.peer("127.0.0.2", "tempfail_then_accept", phase="rcpt", times=1,
                   reply="451 4.7.1 Greylisted, please try again later")
    mid, _ = st.send(["ann@grey.test"])
    d = st.wait_event(mid, "deferred")[0]
    s = smtp_data(d)
    assert s.get("code") == 451 and s.get("enhanced") == "4.7.1", d
    assert "Greylisted" in (s.get("response") or ""), d
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "delivered", r
    a = st.attempts(r)
    assert [x["outcome"] for x in a] == ["deferred", "delivered"], a
    assert a[0]["code"] == 451 and a[0]["enhanced"] == "4.7.1", a
    assert a[1]["code"] == 250 and a[1]["attempt"] == 2, a
    assert s.get("attempt") == 1 and s.get("ip") == "127.0.0.2", d
    dl = st.wait_event(mid, "delivered")[0]
    assert smtp_data(dl).get("attempt") == 2 and smtp_data(dl).get("code") == 250, dl
    assert len(peer.messages) == 1 and peer.messages[0].rcpt_tos == ["ann@grey.test"]
    assert not [s for s in st.suppressions() if s["email"] == "ann@grey.test"]


def test_one_of_three_rejected_one_transaction(mx_stack):
    st = mx_stack(mx={"rr.test": "127.0.0.3"})
    peer = st.peer("127.0.0.3", "reject_rcpt", rcpts={"bad@rr.test"},
                   reply="550 5.1.1 <bad@rr.test>: Recipient address rejected: User unknown")
    mid, _ = st.send(["ok1@rr.test", "bad@rr.test", "ok2@rr.test"])
    m = st.wait_final(mid)
    status = {r["email"]: r["status"] for r in m["recipients"]}
    assert status == {"ok1@rr.test": "delivered", "bad@rr.test": "bounced",
                      "ok2@rr.test": "delivered"}, m["recipients"]
    # The two accepted recipients went in ONE transaction (one DATA, two RCPTs).
    assert len(peer.messages) == 1, peer.messages
    assert sorted(peer.messages[0].rcpt_tos) == ["ok1@rr.test", "ok2@rr.test"]
    assert sorted(peer.rcpts_seen()) == ["bad@rr.test", "ok1@rr.test", "ok2@rr.test"]
    b = st.wait_event(mid, "bounced", recipient="bad@rr.test")[0]
    assert smtp_data(b).get("code") == 550 and smtp_data(b).get("enhanced") == "5.1.1", b
    assert b["data"].get("bounce_class") == "hard", b
    sup = [s["email"] for s in st.suppressions()]
    assert "bad@rr.test" in sup and "ok1@rr.test" not in sup, sup
    bad = st.recipient(mid, "bad@rr.test")
    a = st.attempts(bad)
    assert len(a) == 1 and a[0]["outcome"] == "bounced" and a[0]["code"] == 550, a
    assert a[0]["bounce_class"] == "hard", a


def test_disconnect_in_data_then_delivered(mx_stack):
    st = mx_stack(mx={"drop.test": "127.0.0.4"})
    peer = st.peer("127.0.0.4", "drop_in_data", times=1)   # 354, one line, then close
    mid, _ = st.send(["ann@drop.test"])
    st.wait_event(mid, "deferred")
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "delivered", r
    a = st.attempts(r)
    assert [x["outcome"] for x in a] == ["deferred", "delivered"], a
    assert len(peer.messages) == 1, peer.messages
    assert b"Hi there" in peer.messages[0].data


def test_stall_past_data_timeout_then_delivered(mx_stack):
    st = mx_stack(mx={"stall.test": "127.0.0.5"},
                  env={"POSTHORN_SMTP_DATA_DONE_TIMEOUT": "2s"})
    # Reads the whole message, then does not answer the final dot for 8 s (once).
    peer = st.peer("127.0.0.5", "stall", phase="dot", seconds=8, times=1)
    mid, _ = st.send(["ann@stall.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    a = st.attempts(r)
    assert [x["outcome"] for x in a] == ["deferred", "delivered"], a
    assert "timeout" in (a[0].get("response") or "").lower() + \
        (smtp_data(d).get("response") or "").lower(), (a, d)
    assert len(peer.messages) == 1, peer.messages


def test_several_rcpts_per_transaction(mx_stack):
    st = mx_stack(mx={"multi.test": "127.0.0.6"})
    peer = st.peer("127.0.0.6")
    rcpts = ["a@multi.test", "b@multi.test", "c@multi.test", "d@multi.test"]
    mid, _ = st.send(rcpts)
    m = st.wait_final(mid)
    assert all(r["status"] == "delivered" for r in m["recipients"]), m["recipients"]
    assert len(peer.messages) == 1, peer.messages
    assert sorted(peer.messages[0].rcpt_tos) == rcpts
    # Each recipient has its own delivered event with the same SMTP reply.
    dl = [e for e in st.events(mid) if e["type"] == "delivered"]
    assert sorted(e["recipient"] for e in dl) == rcpts, dl


def test_rcpts_per_message_limit_splits_transactions(mx_stack):
    st = mx_stack(mx={"split.test": "127.0.0.7"}, policy="split.test rcpts_per_message=2\n")
    peer = st.peer("127.0.0.7")
    rcpts = ["r%d@split.test" % i for i in range(5)]
    mid, _ = st.send(rcpts)
    m = st.wait_final(mid)
    assert all(r["status"] == "delivered" for r in m["recipients"]), m["recipients"]
    assert len(peer.messages) == 3, peer.messages
    assert all(len(x.rcpt_tos) <= 2 for x in peer.messages), peer.messages
    assert sorted(sum((x.rcpt_tos for x in peer.messages), [])) == rcpts


def test_connection_reuse_with_rset_bounded(mx_stack):
    st = mx_stack(mx={"reuse.test": "127.0.0.8"}, worker=False,
                  policy="reuse.test connections=1 messages_per_connection=3\n")
    peer = st.peer("127.0.0.8")
    n = 8
    # Different content each: one transaction per message.
    mids = st.send_batch([st.message_body(["u%d@reuse.test" % i], text="message %d\n" % i)
                          for i in range(n)])
    st.start_worker()
    peer.wait_messages(n, timeout=40)
    for mid in mids:
        assert st.wait_final(mid)["recipients"][0]["status"] == "delivered"
    sessions = [s for s in peer.session_list() if s.transactions]
    assert all(len(s.transactions) <= 3 for s in sessions), sessions
    assert max(len(s.transactions) for s in sessions) >= 2, sessions
    assert len(sessions) >= 3, sessions   # 8 messages, at most 3 per connection
    for s in sessions:
        # RSET between transactions on a reused connection.
        assert s.rsets >= len(s.transactions) - 1, s
    wait_until(lambda: len(peer.messages) == n, timeout=5)
    assert sorted(x.rcpt_tos[0] for x in peer.messages) == sorted("u%d@reuse.test" % i
                                                                    for i in range(n))


def test_smtputf8_needed_but_not_offered_bounces_5_6_7(mx_stack):
    st = mx_stack(mx={"u8.test": "127.0.0.9"})
    peer = st.peer("127.0.0.9", smtputf8=False)
    mid, _ = st.send(["jörg@u8.test"])
    mid_plain, _ = st.send(["plain@u8.test"])
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "bounced", r
    b = st.wait_event(mid, "bounced")[0]
    assert smtp_data(b).get("enhanced") == "5.6.7", b
    assert st.wait_final(mid_plain)["recipients"][0]["status"] == "delivered"
    # The address may well exist (another server may have SMTPUTF8): no suppression.
    assert not [x for x in st.suppressions() if x["email"] == "jörg@u8.test"]
    assert not any("jörg" in (x or "") for x in peer.rcpts_seen()), peer.events
    assert len(peer.messages) == 1 and peer.messages[0].rcpt_tos == ["plain@u8.test"]


def test_domains_sharing_mx_share_a_transaction(mx_stack):
    shared = [("mx.shared.test", 10, "127.0.0.10")]
    st = mx_stack(mx={"one.test": shared, "two.test": [("mx.shared.test", 10, None)]})
    # The greeting comes late, so both jobs wait at the destination when the first
    # transaction is put together (the engine batches the jobs queued at that moment: with a
    # prompt peer, whether the second domain's MX look-up is done by then is a race).
    peer = st.peer("127.0.0.10", greeting_delay=1.0)
    mid, _ = st.send(["ann@one.test", "bob@two.test"])
    m = st.wait_final(mid)
    assert all(r["status"] == "delivered" for r in m["recipients"]), m["recipients"]
    assert {r["destination"] for r in m["recipients"]} == {"mx.shared.test"}, m["recipients"]
    # Same content, same destination (MX site): one transaction with both RCPTs.
    assert len(peer.messages) == 1, peer.messages
    assert sorted(peer.messages[0].rcpt_tos) == ["ann@one.test", "bob@two.test"]
