"""Peers that break the protocol or refuse parts of it, against POSTHORN_DELIVERY=mx:
STARTTLS answered 454 (tls=may goes on in plaintext, tls=require defers), a reply larger
than any sane bound (protocol error, the worker lives on), a greeting that is not SMTP, a
connection closed before the greeting, a 452 for one recipient of three (the other two
delivered in the transaction, the third later)."""
import json
import os

from harness import smtppeer
from harness.posthorn import wait_until
from mxstack import mx_stack, smtp_data  # noqa: F401 (fixture)


def test_starttls_454_may_plaintext_require_defers(mx_stack):
    st = mx_stack(mx={"s454.test": "127.0.0.2", "r454.test": "127.0.0.3"},
                  policy="r454.test tls=require\n", env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    certs = os.path.join(st.dir, "certs")
    may = st.peer("127.0.0.2", tls_context=smtppeer.tls_server_context(certs, "mx.s454.test"),
                  starttls_reply="454 4.7.0 TLS not available due to local problem")
    req = st.peer("127.0.0.3", tls_context=smtppeer.tls_server_context(certs, "mx.r454.test"),
                  starttls_reply="454 4.7.0 TLS not available due to local problem")
    mid_may, _ = st.send(["ann@s454.test"])
    mid_req, _ = st.send(["bob@r454.test"])
    r = st.wait_final(mid_may)["recipients"][0]
    assert r["status"] == "delivered", r
    assert [e for e in may.events if e[1] == "starttls_refused"], may.events
    assert may.messages and may.messages[0].tls is None
    assert st.attempts(r)[-1]["tls"] is None, st.attempts(r)
    st.wait_event(mid_req, "deferred", timeout=20)
    assert [e for e in req.events if e[1] == "starttls_refused"], req.events
    assert not [e for e in req.events if e[1] in ("mail", "rcpt", "data")], req.events
    assert st.recipient(mid_req, "bob@r454.test")["status"] != "delivered"


def test_oversized_reply_is_protocol_error(mx_stack):
    st = mx_stack(mx={"flood.test": "127.0.0.4"}, env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    line = b"250-" + b"x" * 96 + b"\r\n"
    raw = st.raw_peer("127.0.0.4", [("send", b"220 flood.test ESMTP\r\n"), ("expect", b"EHLO"),
                                    ("send", line * 3000), ("record", 5)])
    mid, _ = st.send(["ann@flood.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    assert "protocol" in json.dumps(d).lower(), d
    assert raw.connections >= 1
    assert b"MAIL FROM" not in raw.received.upper()
    st.check_alive()


def test_garbage_greeting_is_protocol_error(mx_stack):
    st = mx_stack(mx={"junk.test": "127.0.0.5"}, env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    raw = st.raw_peer("127.0.0.5", [("send", b"HTTP/1.1 400 Bad Request\r\n\r\n"), ("record", 3)])
    mid, _ = st.send(["ann@junk.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    assert "protocol" in json.dumps(d).lower(), d
    assert b"MAIL FROM" not in raw.received.upper()
    st.check_alive()


def test_closed_before_greeting_defers(mx_stack):
    st = mx_stack(mx={"eof.test": "127.0.0.6"}, env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    raw = st.raw_peer("127.0.0.6", [("close",)])
    mid, _ = st.send(["ann@eof.test"])
    st.wait_event(mid, "deferred", timeout=20)
    assert raw.connections >= 1
    assert st.recipient(mid, "ann@eof.test")["status"] in ("deferred", "queued", "sending")
    # The same address then behaves: delivered on a retry.
    raw.stop()
    peer = st.peer("127.0.0.6")
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    assert len(peer.messages) == 1


def test_452_for_one_recipient_others_delivered(mx_stack):
    st = mx_stack(mx={"t452.test": "127.0.0.7"})
    peer = st.peer("127.0.0.7", "tempfail_then_accept", phase="rcpt", times=1,
                   only={"c@t452.test"}, reply="452 4.5.3 Too many recipients")
    mid, _ = st.send(["a@t452.test", "b@t452.test", "c@t452.test"])
    m = st.wait_final(mid)
    assert all(r["status"] == "delivered" for r in m["recipients"]), m["recipients"]
    tx = [sorted(x.rcpt_tos) for x in peer.messages]
    assert tx == [["a@t452.test", "b@t452.test"], ["c@t452.test"]], tx
    c = st.recipient(mid, "c@t452.test")
    assert [(a["outcome"], a["code"]) for a in st.attempts(c)] == [("deferred", 452),
                                                                  ("delivered", 250)], c
    a = st.recipient(mid, "a@t452.test")
    assert len(st.attempts(a)) == 1, a
    # The transcript of the first attempt shows the dialogue, never the message.
    t = st.attempts(c)[0].get("transcript") or ""
    assert "RCPT TO:<c@t452.test>" in t and "452" in t, t
    assert "Hi there" not in t
    wait_until(lambda: len(peer.messages) == 2, timeout=5)
    d = [e for e in st.events(mid) if e["type"] == "deferred"]
    assert [e["recipient"] for e in d] == ["c@t452.test"] and smtp_data(d[0])["code"] == 452, d


def test_replies_arriving_byte_by_byte(mx_stack):
    st = mx_stack(mx={"drip.test": "127.0.0.8"})
    raw = st.raw_peer("127.0.0.8", [
        ("drip", b"220-drip.test ESMTP\r\n220 hello\r\n"), ("expect", b"EHLO"),
        ("drip", b"250-drip.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"),
        ("expect", b"MAIL"), ("drip", b"250 2.1.0 Ok\r\n"),
        ("expect", b"RCPT"), ("drip", b"250 2.1.5 Ok\r\n"),
        ("expect", b"DATA"), ("drip", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ("read_until", b"\r\n.\r\n"), ("drip", b"250-2.0.0 Ok: queued\r\n250 2.0.0 as DRIP1\r\n"),
        ("expect", b"QUIT"), ("send", b"221 2.0.0 Bye\r\n"), ("sleep", 1)])
    mid, _ = st.send(["ann@drip.test"])
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    a = st.attempts(r)[-1]
    assert a["code"] == 250 and "DRIP1" in (a["response"] or ""), a
    verbs = [ln.split(b":")[0].split(b" ")[0].upper() for ln in raw.lines]
    assert verbs[:4] == [b"EHLO", b"MAIL", b"RCPT", b"DATA"], raw.lines
    assert any(b"Hi there" in ln for ln in raw.lines), "message body not seen"
