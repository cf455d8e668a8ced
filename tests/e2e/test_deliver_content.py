"""What goes over the wire in POSTHORN_DELIVERY=mx, checked at the receiving end: content
arrives intact (dot-stuffing undone by the peer gives back lines starting with '.', a large
attachment in many DATA chunks decodes to the same bytes, headers parse with Python's email
package); a message larger than the peer's SIZE bounces locally (5.3.4, soft, nothing sent);
a policy block (5.7.1 blocklist wording) bounces as `block` without a suppression; EHLO uses
POSTHORN_HELO_NAME; the envelope sender is the message's from."""
import base64
import email
import email.policy
import random

from mxstack import mx_stack, smtp_data  # noqa: F401 (fixture)


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_content_intact_dots_and_large_attachment(mx_stack):
    st = mx_stack(mx={"content.test": "127.0.0.2"})
    peer = st.peer("127.0.0.2")
    text = ("first line\n.\n..\n.leading dot\n. dot space\nmiddle\n...three\n.\n" +
            "x" * 900 + "\n" + "end\n")
    rng = random.Random(6)
    blob = bytes(rng.randrange(256) for _ in range(600 * 1024))
    mid, _ = st.send(["ann@content.test"], subject="Dots and a big file", text=text,
                     attachments=[{"filename": "blob.bin", "content_type": "application/octet-stream",
                                   "content": base64.b64encode(blob).decode()}])
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    assert len(peer.messages) == 1
    got = peer.messages[0]
    assert got.mail_from == "orders@shop.example" and got.rcpt_tos == ["ann@content.test"]
    s = peer.sessions[got.conn]
    assert s.helo == "posthorn.test", s
    m = parse(got.data)
    assert m["Subject"] == "Dots and a big file"
    assert m["To"] and "ann@content.test" in str(m["To"])
    body = m.get_body(preferencelist=("plain",))
    assert body is not None, got.data[:2000]
    assert body.get_content().replace("\r\n", "\n") == text
    atts = list(m.iter_attachments())
    assert len(atts) == 1 and atts[0].get_filename() == "blob.bin"
    assert atts[0].get_content() == blob
    # Every line within the SMTP limit (998 octets + CRLF).
    assert max(len(line) for line in got.data.split(b"\r\n")) <= 998


def test_larger_than_peer_size_bounces_locally(mx_stack):
    st = mx_stack(mx={"size.test": "127.0.0.3"})
    peer = st.peer("127.0.0.3", data_size_limit=4000)   # EHLO advertises SIZE 4000
    mid_big, _ = st.send(["big@size.test"], text="y" * 70 + "\n" + ("z" * 70 + "\n") * 200)
    mid_small, _ = st.send(["small@size.test"], text="short\n")
    r = st.wait_final(mid_big)["recipients"][0]
    assert r["status"] == "bounced", r
    b = st.wait_event(mid_big, "bounced")[0]
    assert smtp_data(b).get("enhanced") == "5.3.4", b
    assert b["data"].get("bounce_class") == "soft", b
    assert st.wait_final(mid_small)["recipients"][0]["status"] == "delivered"
    assert [m.rcpt_tos for m in peer.messages] == [["small@size.test"]]
    assert "big@size.test" not in peer.rcpts_seen()
    assert not [s for s in st.suppressions() if s["email"] == "big@size.test"]


def test_block_reply_bounces_without_suppression(mx_stack):
    st = mx_stack(mx={"block.test": "127.0.0.4"})
    st.peer("127.0.0.4", "reject_rcpt", rcpts={"ann@block.test"},
            reply="550 5.7.1 Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org")
    mid, _ = st.send(["ann@block.test"])
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "bounced", r
    b = st.wait_event(mid, "bounced")[0]
    assert b["data"].get("bounce_class") == "block", b
    assert smtp_data(b).get("code") == 550 and smtp_data(b).get("enhanced") == "5.7.1", b
    a = st.attempts(r)[-1]
    assert a["bounce_class"] == "block" and "spamhaus" in a["response"], a
    # A block says nothing about the address: no suppression.
    assert not [s for s in st.suppressions() if s["email"] == "ann@block.test"]


def test_content_rejected_at_final_dot_bounces_all(mx_stack):
    st = mx_stack(mx={"dot.test": "127.0.0.5"})
    peer = st.peer("127.0.0.5", "tempfail_then_accept", times=1000,
                   reply="554 5.7.1 Message rejected as spam")
    mid, _ = st.send(["a@dot.test", "b@dot.test"])
    m = st.wait_final(mid)
    assert [r["status"] for r in m["recipients"]] == ["bounced", "bounced"], m["recipients"]
    for r in m["recipients"]:
        a = st.attempts(r)
        assert len(a) == 1 and a[0]["code"] == 554 and a[0]["bounce_class"] == "block", a
    assert not peer.messages
    assert not [s for s in st.suppressions() if s["email"] in ("a@dot.test", "b@dot.test")]
