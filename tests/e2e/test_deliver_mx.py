"""MX resolution and routing of POSTHORN_DELIVERY=mx against dnsmasq and real SMTP peers on
127.0.0.x (tests/e2e/mxstack.py): failover to the secondary MX when the primary refuses the
connection, implicit MX (A record only), null MX (5.1.10), NXDOMAIN (hard bounce, suppressed),
SERVFAIL (deferred, then expired), MX addresses outside POSTHORN_SMTP_ALLOW_CIDRS (never
connected to, deferred naming the address), and loopback refused without the setting."""
import json

from mxstack import mx_stack, smtp_data  # noqa: F401 (fixture)


def delivered_once(peer, rcpt):
    msgs = peer.wait_messages(1, timeout=30)
    got = [m for m in msgs if rcpt in m.rcpt_tos]
    assert len(got) == 1, msgs
    return got[0]


def test_mx_failover_to_secondary(mx_stack):
    st = mx_stack(mx={"fail.test": [("mx1.fail.test", 10, "127.0.0.2"),
                                    ("mx2.fail.test", 20, "127.0.0.3")]})
    # Nothing listens on 127.0.0.2:port: the primary refuses the connection.
    peer = st.peer("127.0.0.3")
    mid, _ = st.send(["ann@fail.test"])
    m = st.wait_final(mid)
    r = m["recipients"][0]
    assert r["status"] == "delivered", r
    delivered_once(peer, "ann@fail.test")
    evs = st.events(mid)
    dl = [e for e in evs if e["type"] == "delivered"]
    assert len(dl) == 1, evs
    s = smtp_data(dl[0])
    assert s.get("code") == 250, dl[0]
    assert (s.get("mx") or "").rstrip(".").lower() == "mx2.fail.test", dl[0]
    assert s.get("ip") == "127.0.0.3", dl[0]
    # Failover happens within the attempt: the refused primary is no deferral of its own.
    assert not [e for e in evs if e["type"] in ("deferred", "bounced")], evs
    a = st.attempts(r)
    assert a and a[-1]["outcome"] == "delivered" and a[-1]["ip"] == "127.0.0.3", a
    assert r.get("destination") == "mx1.fail.test", r


def test_implicit_mx_a_record_only(mx_stack):
    st = mx_stack(a={"imp.test": "127.0.0.4"})
    peer = st.peer("127.0.0.4")
    mid, _ = st.send(["bob@imp.test"])
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "delivered", r
    got = delivered_once(peer, "bob@imp.test")
    assert got.mail_from == "orders@shop.example"
    assert b"Subject: Hello" in got.data
    assert r.get("destination") == "imp.test", r
    a = st.attempts(r)[-1]
    assert a["ip"] == "127.0.0.4" and a["code"] == 250, a
    assert (a.get("mx") or "").rstrip(".").lower() == "imp.test", a


def test_null_mx_bounces_5_1_10(mx_stack):
    st = mx_stack(null_mx=["null.test"], a={"other.test": "127.0.0.5"})
    witness = st.peer("127.0.0.5")
    mid, _ = st.send(["carol@null.test"])
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "bounced", r
    b = st.wait_event(mid, "bounced")[0]
    assert smtp_data(b).get("enhanced") == "5.1.10", b
    assert b["data"].get("bounce_class") == "hard", b
    assert witness.connections() == 0


def test_nxdomain_bounces_hard_and_suppresses(mx_stack):
    st = mx_stack(a={"exists.test": "127.0.0.5"})
    mid, _ = st.send(["dave@nosuchdomain.test"])
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "bounced", r
    b = st.wait_event(mid, "bounced")[0]
    assert b["data"].get("bounce_class") == "hard", b
    sup = [s for s in st.suppressions() if s["email"].lower() == "dave@nosuchdomain.test"]
    assert sup, st.suppressions()
    # A second message to the address is suppressed at once, never sent.
    mid2, _ = st.send(["dave@nosuchdomain.test"])
    r2 = st.wait_final(mid2)["recipients"][0]
    assert r2["status"] == "suppressed", r2


def test_servfail_defers_then_expires(mx_stack):
    st = mx_stack(servfail=["sf.test"], env={"POSTHORN_MAX_QUEUE_LIFETIME": "8s"})
    mid, _ = st.send(["erin@sf.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    assert st.recipient(mid, "erin@sf.test")["status"] in ("deferred", "queued", "sending"), d
    assert ("sf.test", "MX") in st.scripted.queries, st.scripted.queries
    r = st.wait_final(mid, timeout=40)["recipients"][0]
    assert r["status"] == "expired", r
    evs = st.events(mid)
    assert not [e for e in evs if e["type"] in ("bounced", "delivered")], evs
    assert [e for e in evs if e["type"] == "expired"], evs
    # A temporary DNS failure is no reason to suppress the address.
    assert not [s for s in st.suppressions() if s["email"].lower() == "erin@sf.test"]


def test_mx_outside_allowed_cidrs_never_connected(mx_stack):
    st = mx_stack(mx={"in.test": "127.0.0.3", "out.test": "127.0.0.9",
                      "mixed.test": [("mx1.mixed.test", 10, "127.0.0.9"),
                                     ("mx2.mixed.test", 20, "127.0.0.3")]},
                  allow_cidrs="127.0.0.2/31,127.0.0.3/32",
                  env={"POSTHORN_MAX_QUEUE_LIFETIME": "10s"})
    inside = st.peer("127.0.0.3")
    outside = st.peer("127.0.0.9")
    mid_in, _ = st.send(["fay@in.test"])
    mid_out, _ = st.send(["gus@out.test"])
    mid_mixed, _ = st.send(["hex@mixed.test"])
    assert st.wait_final(mid_in)["recipients"][0]["status"] == "delivered"
    # The refused primary is skipped: the allowed secondary gets the mail.
    rm = st.wait_final(mid_mixed)["recipients"][0]
    assert rm["status"] == "delivered" and st.attempts(rm)[-1]["ip"] == "127.0.0.3", rm
    d = st.wait_event(mid_out, "deferred", timeout=20)[0]
    text = json.dumps(d) + json.dumps(st.recipient(mid_out, "gus@out.test"))
    assert "127.0.0.9" in text, d
    assert "loopback" in text.lower(), d
    r = st.wait_final(mid_out, timeout=40)["recipients"][0]
    assert r["status"] == "expired", r
    assert outside.connections() == 0 and not outside.messages, outside.events
    assert len(inside.messages) == 2 and not [e for e in st.events(mid_out)
                                               if e["type"] == "delivered"]


def test_loopback_mx_refused_without_allow_cidrs(mx_stack):
    st = mx_stack(mx={"lo.test": "127.0.0.6"}, allow_cidrs=None,
                  env={"POSTHORN_MAX_QUEUE_LIFETIME": "6s"})
    peer = st.peer("127.0.0.6")
    mid, _ = st.send(["hal@lo.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    text = json.dumps(d)
    assert "127.0.0.6" in text and "loopback" in text.lower(), d
    r = st.wait_final(mid, timeout=40)["recipients"][0]
    assert r["status"] == "expired", r
    assert peer.connections() == 0 and not peer.messages, peer.events


def test_primary_silent_after_connect_fails_over(mx_stack):
    # The primary accepts the connection and never greets (greeting timeout 3 s).
    st = mx_stack(mx={"mute.test": [("mx1.mute.test", 10, "127.0.0.7"),
                                    ("mx2.mute.test", 20, "127.0.0.8")]})
    mute = st.raw_peer("127.0.0.7", [("sleep", 30)])
    peer = st.peer("127.0.0.8")
    mid, _ = st.send(["ivy@mute.test"])
    r = st.wait_final(mid, timeout=30)["recipients"][0]
    assert r["status"] == "delivered", r
    assert mute.connections >= 1
    delivered_once(peer, "ivy@mute.test")
    a = st.attempts(r)[-1]
    assert a["ip"] == "127.0.0.8", st.attempts(r)


def test_idn_and_upper_case_domains(mx_stack):
    # bücher.test is xn--bcher-kva.test in DNS and in RCPT TO (no SMTPUTF8 needed).
    st = mx_stack(mx={"xn--bcher-kva.test": "127.0.0.9", "case.test": "127.0.0.10"})
    idn = st.peer("127.0.0.9", smtputf8=False)
    case = st.peer("127.0.0.10")
    mid1, _ = st.send(["jan@bücher.test"])
    mid2, _ = st.send(["Kim@CASE.Test"])
    r1 = st.wait_final(mid1)["recipients"][0]
    r2 = st.wait_final(mid2)["recipients"][0]
    assert r1["status"] == "delivered" and r2["status"] == "delivered", (r1, r2)
    assert [m.rcpt_tos for m in idn.messages] == [["jan@xn--bcher-kva.test"]], idn.messages
    assert len(case.messages) == 1 and case.messages[0].rcpt_tos[0].lower() == "kim@case.test"
