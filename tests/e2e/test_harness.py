"""The harness's own servers work (no Posthorn binaries needed): PostgreSQL, Redis,
dnsmasq, the scripted DNS responder and each scripted SMTP peer, driven with smtplib."""
import smtplib
import socket

import pytest

from harness import dns, smtppeer

MSG = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_pg_cluster_restart_keeps_data(make_pg):
    c = make_pg()
    url = c.fresh_database("harness_t")
    assert url.endswith("/harness_t")
    c.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)", db="harness_t")
    c.stop()
    assert not c.alive()
    c.start()
    assert c.psql("SELECT x FROM t", db="harness_t") == "42"
    # The posthorn role can log in over TCP with the URL we hand out.
    assert c.psql("SELECT current_user", db="harness_t") == "postgres"
    import subprocess
    r = subprocess.run(["psql", "-X", "-At", c.url, "-c", "select current_user"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.stdout.decode().strip() == "posthorn", r.stderr


def test_redis_server(make_redis):
    r = make_redis()
    assert r.cmd("SET", "k", "v") == "OK"
    assert r.cmd("GET", "k") == "v"
    r.stop()
    with pytest.raises(RuntimeError):
        r.cmd("PING")
    r.start()
    assert r.cmd("GET", "k") == ""  # no persistence


def test_dnsmasq_records(tmp_path):
    d = dns.Dnsmasq(str(tmp_path), mx=[("shop.test", "mx1.shop.test", 10)],
                    hosts=[("mx1.shop.test", "127.0.0.2")],
                    txt=[("sel._domainkey.shop.test", "v=DKIM1; k=rsa; p=AAAA"),
                         ("long.shop.test", "v=spf1 a,b " + "x" * 400)])
    try:
        assert dns.query(d.server, "shop.test", "MX") == (0, [("MX", (10, "mx1.shop.test"))])
        assert dns.query(d.server, "mx1.shop.test", "A") == (0, [("A", "127.0.0.2")])
        assert dns.query(d.server, "sel._domainkey.shop.test", "TXT") == \
            (0, [("TXT", "v=DKIM1; k=rsa; p=AAAA")])
        assert dns.query(d.server, "long.shop.test", "TXT") == \
            (0, [("TXT", "v=spf1 a,b " + "x" * 400)])
        assert dns.query(d.server, "nope.shop.test", "A")[0] == 3  # NXDOMAIN
    finally:
        d.stop()


def test_scripted_dns():
    s = dns.ScriptedDns(default="SERVFAIL", rules={"ok.test": ("A", "127.0.0.3"),
                                                   "mx.test": ("MX", 5, "ok.test"),
                                                   "silent.test": "DROP"})
    try:
        assert dns.query(s.server, "broken.test", "MX") == (2, [])
        assert dns.query(s.server, "ok.test", "A") == (0, [("A", "127.0.0.3")])
        assert dns.query(s.server, "mx.test", "MX") == (0, [("MX", (5, "ok.test"))])
        with pytest.raises(socket.timeout):
            dns.query(s.server, "silent.test", "A", timeout=0.5)
        assert ("broken.test", "MX") in s.queries
    finally:
        s.stop()


@pytest.fixture
def peers():
    made = []

    def make(*a, **kw):
        p = smtppeer.SmtpPeer(*a, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def test_peer_accept(peers):
    p = peers("accept")
    with smtplib.SMTP(p.host, p.port, timeout=10) as s:
        assert s.sendmail("a@x.test", ["b@y.test", "c@y.test"], MSG) == {}
    m = p.wait_messages(1)[0]
    assert m.mail_from == "a@x.test" and m.rcpt_tos == ["b@y.test", "c@y.test"]
    assert b"hello" in m.data
    assert p.connections() == 1


def test_peer_reject_one_recipient(peers):
    p = peers("reject_rcpt", rcpts={"bad@y.test"})
    with smtplib.SMTP(p.host, p.port, timeout=10) as s:
        refused = s.sendmail("a@x.test", ["ok@y.test", "bad@y.test"], MSG)
    assert refused["bad@y.test"][0] == 550
    assert p.wait_messages(1)[0].rcpt_tos == ["ok@y.test"]


def test_peer_tempfail_then_accept(peers):
    p = peers("tempfail_then_accept", times=1)
    with smtplib.SMTP(p.host, p.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@x.test", ["b@y.test"], MSG)
        assert e.value.smtp_code == 451
        s.rset()
        assert s.sendmail("a@x.test", ["b@y.test"], MSG) == {}
    assert len(p.wait_messages(1)) == 1


def test_peer_tempfail_rcpt(peers):
    p = peers("tempfail_then_accept", phase="rcpt", times=1)
    with smtplib.SMTP(p.host, p.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("a@x.test", ["b@y.test"], MSG)
        assert e.value.recipients["b@y.test"][0] == 451
        s.rset()
        assert s.sendmail("a@x.test", ["b@y.test"], MSG) == {}


@pytest.mark.parametrize("when", ["354", "dot"])
def test_peer_drop_in_data(peers, when):
    p = peers("drop_in_data", when=when)
    s = smtplib.SMTP(p.host, p.port, timeout=10)
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        s.sendmail("a@x.test", ["b@y.test"], MSG)
    s.close()
    assert p.messages == []
    if when == "dot":
        assert len(p.dropped) == 1 and b"hello" in p.dropped[0].data


@pytest.mark.parametrize("phase", ["rcpt", "data"])
def test_peer_stall(peers, phase):
    p = peers("stall", phase=phase, seconds=30)
    s = smtplib.SMTP(p.host, p.port, timeout=1)
    s.ehlo()
    s.mail("a@x.test")
    # smtplib reports its read timeout as a disconnect
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected), match="timed out"):
        if phase == "rcpt":
            s.rcpt("b@y.test")
        else:
            assert s.rcpt("b@y.test")[0] == 250
            s.data(MSG)
    s.close()
    assert p.messages == []


def test_raw_peer_stall_and_inject():
    r = smtppeer.RawPeer([("send", b"220 raw ESMTP\r\n250 injected\r\n"), ("expect", b"EHLO"),
                          ("send", b"250 ok\r\n"), ("sleep", 30)])
    try:
        with socket.create_connection((r.host, r.port), timeout=5) as c:
            data = b""
            while b"injected" not in data:
                data += c.recv(100)
            c.sendall(b"EHLO me\r\n")
            data = b""
            while b"250 ok" not in data:
                data += c.recv(100)
            c.settimeout(0.5)
            with pytest.raises(socket.timeout):
                c.recv(100)
        assert r.lines == [b"EHLO me"]
    finally:
        r.stop()
