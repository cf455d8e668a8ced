"""STARTTLS in POSTHORN_DELIVERY=mx: a real Postfix (self-signed certificate,
smtpd_tls_security_level=may, one recipient rejected with check_recipient_access), a scripted
server that sends extra bytes together with its 220 to STARTTLS (never read as a reply; the
attempt fails safe, nothing goes out in plaintext), and the destination policy tls=require
against a server without STARTTLS (deferred, nothing sent) and with it (delivered)."""
import json
import os

from harness import mta, smtppeer
from harness.posthorn import wait_until
from mxstack import mx_stack, smtp_data  # noqa: F401 (fixture)


def test_starttls_with_postfix(mx_stack):
    st = mx_stack(mx={"tls.test": "127.0.0.2"})
    cert = mta.self_signed_cert(os.path.join(st.dir, "certs"), "mx.tls.test")
    pf = st.postfix("127.0.0.2", hostname="mx.tls.test", tls=cert,
                    reject_rcpts={"nobody@tls.test": "550 5.1.1 <nobody@tls.test>: no such user"})
    mid, _ = st.send(["ann@tls.test", "nobody@tls.test"])
    m = st.wait_final(mid)
    status = {r["email"]: r["status"] for r in m["recipients"]}
    assert status == {"ann@tls.test": "delivered", "nobody@tls.test": "bounced"}, m["recipients"]
    ann = st.recipient(mid, "ann@tls.test")
    a = st.attempts(ann)[-1]
    assert (a.get("tls") or "").startswith("TLSv1."), a
    assert " " in a["tls"], a   # version and cipher, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"
    assert a["code"] == 250, a
    dl = st.wait_event(mid, "delivered", recipient="ann@tls.test")[0]
    assert (smtp_data(dl).get("tls") or "").startswith("TLSv1."), dl
    assert (ann.get("last_smtp") or {}).get("tls", "").startswith("TLSv1."), ann
    b = st.wait_event(mid, "bounced", recipient="nobody@tls.test")[0]
    assert smtp_data(b).get("code") == 550 and smtp_data(b).get("enhanced") == "5.1.1", b
    assert b["data"].get("bounce_class") == "hard", b
    # Postfix's side: TLS was used, ann accepted (and discarded), nobody rejected.
    wait_until(lambda: pf.accepted("ann@tls.test"), timeout=20, what="postfix to finish ann's mail")
    assert pf.tls_sessions(), pf.log()[-3000:]
    assert pf.rejected("nobody@tls.test"), pf.log()[-3000:]
    assert not pf.accepted("nobody@tls.test")


def test_bytes_after_starttls_220_fail_safe(mx_stack):
    st = mx_stack(mx={"inject.test": "127.0.0.3"}, env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    raw = st.raw_peer("127.0.0.3", [
        ("send", b"220 inject.test ESMTP\r\n"),
        ("expect", b"EHLO"),
        ("send", b"250-inject.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n"),
        ("expect", b"STARTTLS"),
        # The 220 and, in the same segment, a reply nobody asked for.
        ("send", b"220 2.0.0 Ready to start TLS\r\n250 2.1.0 Sender ok (injected)\r\n"),
        ("record", 4),
    ])
    mid, _ = st.send(["ann@inject.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    text = json.dumps(d) + json.dumps(st.recipient(mid, "ann@inject.test"))
    assert "protocol" in text.lower(), d
    assert "injected" not in (smtp_data(d).get("response") or ""), d
    wait_until(lambda: raw.finished >= 1, timeout=20, what="the raw peer's first session to end")
    r = st.recipient(mid, "ann@inject.test")
    assert r["status"] != "delivered", r
    # Never MAIL/RCPT/DATA in plaintext, on this or any later connection.
    assert all(ln.split(b" ")[0].upper() in (b"EHLO", b"STARTTLS") for ln in raw.lines), raw.lines
    for verb in (b"MAIL FROM", b"RCPT TO", b"DATA"):
        assert verb not in raw.received.upper(), raw.received[:500]
    assert not [e for e in st.events(mid) if e["type"] in ("delivered", "bounced")]
    st.check_alive()


def test_tls_require_policy(mx_stack):
    st = mx_stack(mx={"req.test": "127.0.0.4", "reqtls.test": "127.0.0.5",
                      "plain.test": "127.0.0.6"},
                  policy="* tls=may\nreq.test tls=require\nreqtls.test tls=require\n",
                  env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    no_tls = st.peer("127.0.0.4")
    with_tls = st.peer("127.0.0.5", tls_context=smtppeer.tls_server_context(
        os.path.join(st.dir, "certs"), "mx.reqtls.test"))
    plain = st.peer("127.0.0.6")
    mid_req, _ = st.send(["ann@req.test"])
    mid_tls, _ = st.send(["bob@reqtls.test"])
    mid_plain, _ = st.send(["cy@plain.test"])
    # tls=may without STARTTLS: delivered in plaintext.
    assert st.wait_final(mid_plain)["recipients"][0]["status"] == "delivered"
    assert plain.messages and plain.messages[0].tls is None
    # tls=require with STARTTLS offered (self-signed: require does not verify): delivered in TLS.
    r = st.wait_final(mid_tls)["recipients"][0]
    assert r["status"] == "delivered", r
    assert with_tls.messages and (with_tls.messages[0].tls or "").startswith("TLSv1."), \
        with_tls.session_list()
    assert (st.attempts(r)[-1].get("tls") or "").startswith("TLSv1.")
    # tls=require without STARTTLS: deferred, no MAIL ever sent.
    d = st.wait_event(mid_req, "deferred", timeout=20)[0]
    assert "tls" in json.dumps(d).lower(), d
    assert st.recipient(mid_req, "ann@req.test")["status"] != "delivered"
    assert not no_tls.messages
    assert not [e for e in no_tls.events if e[1] in ("mail", "rcpt", "data")], no_tls.events


def test_tls_verify_refuses_self_signed(mx_stack):
    st = mx_stack(mx={"verify.test": "127.0.0.7"}, policy="verify.test tls=verify\n",
                  env={"POSTHORN_MAX_QUEUE_LIFETIME": "30s"})
    peer = st.peer("127.0.0.7", tls_context=smtppeer.tls_server_context(
        os.path.join(st.dir, "certs"), "mx.verify.test"))
    mid, _ = st.send(["ann@verify.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    text = json.dumps(d).lower()
    assert "certificate" in text or "verif" in text, d
    assert st.recipient(mid, "ann@verify.test")["status"] != "delivered"
    # The handshake may happen (then fail); no transaction ever starts.
    assert not peer.messages
    assert not [e for e in peer.events if e[1] in ("mail", "rcpt", "data")], peer.events


def test_postfix_many_rcpts_pipelined(mx_stack):
    st = mx_stack(mx={"many.test": "127.0.0.8"}, policy="many.test rcpts_per_message=20\n")
    bad = {"bad%d@many.test" % i for i in (3, 27, 45)}
    pf = st.postfix("127.0.0.8", hostname="mx.many.test",
                    reject_rcpts={b: "550 5.1.1 <%s>: no such user" % b for b in bad})
    rcpts = ["u%d@many.test" % i if "bad%d@many.test" % i not in bad else "bad%d@many.test" % i
             for i in range(50)]
    mid, _ = st.send(rcpts[:30], cc=rcpts[30:])
    m = st.wait_final(mid, timeout=40)
    status = {r["email"]: r["status"] for r in m["recipients"]}
    assert {e for e, s in status.items() if s == "bounced"} == bad, status
    assert all(s == "delivered" for e, s in status.items() if e not in bad), status
    good = [r for r in rcpts if r not in bad]
    wait_until(lambda: len(pf.accepted()) >= len(good), timeout=30,
               what="postfix to finish %d recipients" % len(good))
    got = sorted(r for _, r in pf.accepted())
    assert got == sorted(good), set(got) ^ set(good)
    # At most 20 RCPTs per transaction: three transactions (Postfix queue ids).
    assert len({q for q, _ in pf.accepted()}) == 3, pf.accepted()
