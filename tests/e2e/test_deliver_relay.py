"""POSTHORN_DELIVERY=relay: every message goes to POSTHORN_RELAY_URL (an aiosmtpd peer on
127.0.0.x with an authenticator): AUTH PLAIN, AUTH LOGIN (only LOGIN offered), STARTTLS then
AUTH when the relay offers it, a wrong password (deferred, nothing sent). Secrets never show in
what the API returns or in the worker's log."""
import base64
import json
import os

from harness import smtppeer
from mxstack import mx_stack, smtp_data  # noqa: F401 (fixture)

USER, PASS = "relayuser", "s3cret-Pa55"


def relay_stack(mx_stack, addr, password=PASS, **kw):
    # No MX records at all: relay mode must not need them.
    return mx_stack(env={"POSTHORN_DELIVERY": "relay", "POSTHORN_MAX_QUEUE_LIFETIME": "30s",
                         "POSTHORN_RELAY_URL": "smtp://%s:%s@%s:{port}" % (USER, password, addr)},
                    **kw)


def no_secrets(st, mid, password=PASS):
    blobs = [password, base64.b64encode(("\0%s\0%s" % (USER, password)).encode()).decode(),
             base64.b64encode(password.encode()).decode()]
    text = json.dumps(st.message(mid)) + json.dumps(st.events(mid))
    log = st.worker.log()
    for b in blobs:
        assert b not in text, "secret %r in the API's answer" % b
        assert b not in log, "secret %r in the worker log" % b


def test_relay_auth_plain(mx_stack):
    st = relay_stack(mx_stack, "127.0.0.2")
    peer = st.peer("127.0.0.2", auth={USER: PASS}, auth_require_tls=False)
    mid, _ = st.send(["ann@anywhere.test", "bob@elsewhere.test"])
    m = st.wait_final(mid)
    assert all(r["status"] == "delivered" for r in m["recipients"]), m["recipients"]
    assert len(peer.messages) == 1, peer.messages
    assert sorted(peer.messages[0].rcpt_tos) == ["ann@anywhere.test", "bob@elsewhere.test"]
    s = peer.sessions[peer.messages[0].conn]
    assert s.auth == [("PLAIN", USER, True)], s.auth
    no_secrets(st, mid)


def test_relay_auth_login(mx_stack):
    st = relay_stack(mx_stack, "127.0.0.3")
    peer = st.peer("127.0.0.3", auth={USER: PASS}, auth_mechanisms=("LOGIN",),
                   auth_require_tls=False)
    mid, _ = st.send(["cy@anywhere.test"])
    assert st.wait_final(mid)["recipients"][0]["status"] == "delivered"
    s = peer.sessions[peer.messages[0].conn]
    assert s.auth == [("LOGIN", USER, True)], s.auth
    no_secrets(st, mid)


def test_relay_starttls_then_auth(mx_stack):
    st = relay_stack(mx_stack, "127.0.0.4")
    ctx = smtppeer.tls_server_context(os.path.join(st.dir, "certs"), "relay.test")
    # AUTH only after STARTTLS (aiosmtpd's default auth_require_tls).
    peer = st.peer("127.0.0.4", auth={USER: PASS}, tls_context=ctx)
    mid, _ = st.send(["dee@anywhere.test"])
    r = st.wait_final(mid)["recipients"][0]
    assert r["status"] == "delivered", r
    s = peer.sessions[peer.messages[0].conn]
    assert (s.tls or "").startswith("TLSv1.") and s.auth and s.auth[-1][2], s
    assert (st.attempts(r)[-1].get("tls") or "").startswith("TLSv1.")
    no_secrets(st, mid)


def test_relay_wrong_password_defers(mx_stack):
    st = relay_stack(mx_stack, "127.0.0.5", password="wrong-password")
    peer = st.peer("127.0.0.5", auth={USER: PASS}, auth_require_tls=False)
    mid, _ = st.send(["eve@anywhere.test"])
    d = st.wait_event(mid, "deferred", timeout=20)[0]
    assert smtp_data(d).get("code") == 535 or "535" in json.dumps(d), d
    assert st.recipient(mid, "eve@anywhere.test")["status"] != "delivered"
    assert not peer.messages
    assert not [e for e in peer.events if e[1] in ("mail", "rcpt", "data")], peer.events
    assert any(a[1] == USER and not a[2] for s in peer.session_list() for a in s.auth), \
        peer.session_list()
    # A relay refusing our credentials is our problem, not the recipient's: no bounce.
    assert not [e for e in st.events(mid) if e["type"] == "bounced"]
    no_secrets(st, mid, "wrong-password")


def test_relay_user_with_at_sign_raw(mx_stack):
    # Relay accounts are often e-mail addresses: the last '@' ends the user information.
    user, password = "postmaster@mg.test", "pa:ss/word"
    st = mx_stack(env={"POSTHORN_DELIVERY": "relay",
                       "POSTHORN_RELAY_URL": "smtp://%s:%s@127.0.0.6:{port}" % (user, password)})
    peer = st.peer("127.0.0.6", auth={user: password}, auth_require_tls=False)
    mid, _ = st.send(["fay@anywhere.test"])
    assert st.wait_final(mid)["recipients"][0]["status"] == "delivered"
    assert peer.sessions[peer.messages[0].conn].auth == [("PLAIN", user, True)]


def test_relay_url_percent_encoded_userinfo(mx_stack):
    # RFC 3986: reserved characters in the user information are percent-encoded.
    user, password = "postmaster@mg.test", "p@ss:w/rd%"
    st = mx_stack(env={"POSTHORN_DELIVERY": "relay",
                       "POSTHORN_RELAY_URL": "smtp://postmaster%40mg.test:p%40ss%3Aw%2Frd%25"
                                             "@127.0.0.7:{port}"})
    peer = st.peer("127.0.0.7", auth={user: password}, auth_require_tls=False)
    mid, _ = st.send(["gil@anywhere.test"])
    r = st.wait_final(mid, timeout=20, final=("delivered", "bounced", "deferred"))["recipients"][0]
    assert r["status"] == "delivered", (r, [s.auth for s in peer.session_list()])
