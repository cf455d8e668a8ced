"""The worker's render stage signs, sets the VERP envelope sender and, for broadcast mail,
adds List-Unsubscribe (API.md "Sending", "Templates, domains").

A domain row is inserted with SQL as the domains API stores it: keys from
tests/unit/dkimtool keygen, sealed by tests/unit/sealtool under the installation's
POSTHORN_SECRET (ad = account id "\\n" name), rsa under dkim_selector and ed25519 under
dkim_selector + "e". Messages go through POST /v1/messages to a posthorn-worker in
POSTHORN_DELIVERY=file mode; the written files (minus the Return-Path and Delivered-To
lines the file deliverer adds) are verified by dkimpy (python3-dkim, python3-nacl) and by
opendkim-testmsg (libopendkim, under unshare -n -m with dnsmasq: tests/e2e/dkimcheck.py),
each signature on its own, and a copy changed by one byte after signing must fail both."""
import pathlib
import base64
import os
import re
import secrets
import string
import subprocess

import dkim
import pytest

import dkimcheck
import sendlib as sl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALNUM = string.ascii_letters + string.digits
DOMAIN = "signed.example"
SELECTOR = "phtestsel"
BLOB = bytes(range(256)) * 3
SIGNED_ALWAYS = ["from", "to", "subject", "date", "message-id", "mime-version", "content-type"]


def tool(name):
    kinds = ["san", "rel"] if os.environ.get("SANITIZE") == "1" else ["rel", "san"]
    for k in kinds:
        p = os.path.join(ROOT, "build", k, "tests", name)
        if os.access(p, os.X_OK):
            return p
    pytest.fail("tests/unit/%s is not built: run `make unit`" % name)


def run(argv, data=b"", env=None):
    p = subprocess.run(argv, input=data, capture_output=True, timeout=60, env=env)
    assert p.returncode == 0, "%s: %s" % (argv[:2], p.stderr.decode("utf-8", "replace"))
    return p.stdout


def rid(prefix):
    return prefix + "".join(secrets.choice(ALNUM) for _ in range(22))


class Signing:
    def __init__(self, st, tmp):
        self.st = st
        self.tmp = tmp
        self.env = dict(os.environ, POSTHORN_SECRET=st.ph.secret)
        self.records = {}
        self.sealed = {}
        for alg, sel in (("rsa", SELECTOR), ("ed25519", SELECTOR + "e")):
            pem = os.path.join(tmp, "%s.pem" % alg)
            pub = run([tool("dkimtool"), "keygen", alg, pem]).decode().strip()
            with open(pem, "rb") as f:
                self.sealed[alg] = self.seal(f.read(), st.account, DOMAIN)
            self.records[("%s._domainkey.%s." % (sel, DOMAIN)).encode()] = \
                ("v=DKIM1; k=%s; p=%s" % (alg, pub)).encode()
            self.pub = getattr(self, "pub", {})
            self.pub[alg] = pub

    def seal(self, plain, account, name):
        return run([tool("sealtool"), "%s\n%s" % (account, name)], plain, self.env).decode().strip()

    def insert_domain(self, name=DOMAIN, rsa=None, ed=None, account=None):
        rsa = rsa if rsa is not None else self.sealed["rsa"]
        ed = ed if ed is not None else self.sealed["ed25519"]
        self.st.db.sql(
            "INSERT INTO domains (account_id, id, name, return_path_domain, dkim_selector,"
            " dkim_rsa_public, dkim_rsa_private, dkim_ed25519_public, dkim_ed25519_private)"
            " VALUES (%s, %s, %s, %s, %s, %s, decode(%s, 'hex'), %s, decode(%s, 'hex'))" % (
                sl.lit(account or self.st.account), sl.lit(rid("dom_")), sl.lit(name),
                sl.lit("bounces." + name), sl.lit(SELECTOR), sl.lit(self.pub["rsa"]), sl.lit(rsa),
                sl.lit(self.pub["ed25519"]), sl.lit(ed)))

    def dnsfunc(self, name, timeout=5):
        return self.records.get(name)

    def verify_all(self, raw):
        d = dkim.DKIM(raw)
        n = sum(1 for k, _ in d.headers if k.lower() == b"dkim-signature")
        out = []
        for i in range(n):
            try:
                out.append(bool(d.verify(idx=i, dnsfunc=self.dnsfunc)))
            except dkim.DKIMException:
                out.append(False)
        return out

    def verp_delivery(self, local):
        return run([tool("sealtool"), "--verp", local, self.st.account], b"",
                   self.env).decode().strip()

    def unsub_payload(self, tok):
        return run([tool("sealtool"), "--unsub", tok], b"", self.env).decode()


@pytest.fixture
def signing(make_posthorn, pg, tmp_path):
    ph = make_posthorn()
    st = sl.Stack(ph, pg)
    st.worker = ph.worker_proc()
    return Signing(st, str(tmp_path))


def split_file(raw):
    """(Return-Path address, Delivered-To, the message as signed)."""
    lines = raw.split(b"\r\n", 2)
    m1 = re.match(rb"^Return-Path: <(.*)>$", lines[0])
    assert m1, lines[0]
    assert lines[1].startswith(b"Delivered-To: "), lines[1]
    return m1.group(1).decode(), lines[1][14:].decode(), lines[2]


def sig_tags(msg):
    """[{tag: value}] of the DKIM-Signature fields, top first."""
    out = []
    for k, v in dkim.DKIM(msg).headers:
        if k.lower() == b"dkim-signature":
            v = re.sub(rb"\s+", b"", v).decode()
            out.append(dict(t.split("=", 1) for t in v.split(";") if t))
    return out


def header_has(msg, name):
    head = msg.split(b"\r\n\r\n", 1)[0]
    return re.search(rb"(?im)^" + re.escape(name.encode()) + rb":", head) is not None


def send(sg, **over):
    m = sl.msg(**{"from": {"email": "news@" + DOMAIN, "name": "Newsroom"},
                  "to": [{"email": "ann@example.com", "name": "Ann"},
                         {"email": "bob@example.org"}],
                  "subject": "Grüße aus Köln ✓ {{name}}",
                  "text": "Hello {{name}},\n.a line that starts with a dot\n..two dots\nbye\n",
                  "html": "<p>Hello <b>{{name}}</b></p>\n.<p>dot line</p>\n",
                  "attachments": [{"filename": "data.bin",
                                   "content_type": "application/octet-stream",
                                   "content": sl.b64(BLOB)}],
                  **over})
    r = sg.st.client.post("/v1/messages", json=m)
    assert r.status_code == 202, (r.status_code, r.text)
    dids = {x["email"]: x["delivery_id"] for x in r.json()["recipients"]}
    sl.wait_files(sg.st.mail_dir, list(dids.values()), timeout=60, procs=[sg.st.worker])
    return dids


def only_sig(msg, alg):
    """msg with the DKIM-Signature fields whose a= is not alg removed (unfolded fields kept
    as they are), so that one signature is checked on its own."""
    head, body = msg.split(b"\r\n\r\n", 1)
    fields = []
    for ln in head.split(b"\r\n"):
        if ln[:1] in (b" ", b"\t") and fields:
            fields[-1].append(ln)
        else:
            fields.append([ln])
    keep = []
    for f in fields:
        if f[0].lower().startswith(b"dkim-signature:"):
            a = re.search(rb"(?:^|;)\s*a\s*=\s*([a-z0-9-]+)", re.sub(rb"\r\n", b"", b"\r\n".join(f))
                          .split(b":", 1)[1])
            assert a, f
            if a.group(1).decode() != alg:
                continue
        keep.append(b"\r\n".join(f))
    out = b"\r\n".join(keep) + b"\r\n\r\n" + body
    assert out.count(b"DKIM-Signature:") == 1, out[:2000]
    return out


def opendkim_check(sg, cases, tag):
    """cases: {name: (msg as signed, good)}: opendkim-testmsg must accept the good ones and
    refuse the others."""
    res = dkimcheck.opendkim_verify(pathlib.Path(sg.tmp) / ("od-" + tag), sg.records,
                                    {k: v[0] for k, v in cases.items()})
    for name, (_, good) in cases.items():
        rc, out = res[name]
        if good:
            assert rc == 0, "%s: opendkim-testmsg rc=%d: %s" % (name, rc, out)
        else:
            assert rc != 0, "%s: opendkim-testmsg accepted a changed message: %s" % (name, out)


def od_cases(msg, body_changed, hdr_changed, prefix):
    """Each signature on its own, as signed and changed by one byte (body, signed header)."""
    cases = {}
    for alg, short in (("rsa-sha256", "rsa"), ("ed25519-sha256", "ed25519")):
        cases["%s-%s" % (prefix, short)] = (only_sig(msg, alg), True)
        cases["%s-%s-body-byte" % (prefix, short)] = (only_sig(body_changed, alg), False)
        cases["%s-%s-header-byte" % (prefix, short)] = (only_sig(hdr_changed, alg), False)
    cases["%s-both" % prefix] = (msg, True)
    cases["%s-both-body-byte" % prefix] = (body_changed, False)
    return cases


def check_signed(sg, raw, did, broadcast, od=None):
    """dkimpy checks here; with od (a dict), adds the opendkim cases for this file to it."""
    rp, _, msg = split_file(raw)
    # VERP: bounces+<token>@bounces.<domain>, the token names this delivery
    local, _, rpdom = rp.rpartition("@")
    assert rpdom == "bounces." + DOMAIN, rp
    assert local.startswith("bounces+") and len(local) <= 64, local
    assert re.fullmatch(r"bounces\+[A-Za-z0-9_-]+", local), local
    assert sg.verp_delivery(local) == did

    assert sg.verify_all(msg) == [True, True], msg[:3000]
    tags = sig_tags(msg)
    assert sorted(t["a"] for t in tags) == ["ed25519-sha256", "rsa-sha256"]
    assert {t["s"] for t in tags} == {SELECTOR, SELECTOR + "e"}
    assert {t["d"] for t in tags} == {DOMAIN}
    assert len({t["bh"] for t in tags}) == 1
    for t in tags:
        h = [x.lower() for x in t["h"].split(":")]
        for name in SIGNED_ALWAYS:
            assert name in h, (name, h)
        if broadcast:
            assert "list-unsubscribe" in h and "list-unsubscribe-post" in h, h
    # one byte changed after signing: in the body, then in a signed header
    i = msg.index(b"\r\n\r\n") + 4
    j = msg.index(b"Hello", i)
    body_changed = msg[:j] + b"J" + msg[j + 1:]
    assert sg.verify_all(body_changed) == [False, False]
    k = msg.index(b"\r\nMessage-ID:") + 15
    hdr_changed = msg[:k] + (b"X" if msg[k:k + 1] != b"X" else b"Y") + msg[k + 1:]
    assert sg.verify_all(hdr_changed) == [False, False]
    if od is not None:
        singles = od_cases(msg, body_changed, hdr_changed, did)
        for name, (m1, good) in singles.items():
            if name.endswith("-both") or name.endswith("-both-body-byte"):
                continue
            assert sg.verify_all(m1) == [good], name   # dkimpy agrees on the split copies
        od.update(singles)
    return msg, tags


def test_transactional_signed_with_verp(signing):
    sg = signing
    sg.insert_domain()
    dids = send(sg)
    bhs = set()
    od = {}
    for rcpt, did in dids.items():
        raw = sl.read_mail(sg.st.mail_dir, did)
        assert max(raw) < 128
        msg, tags = check_signed(sg, raw, did, broadcast=False, od=od)
        assert not header_has(msg, "List-Unsubscribe")
        assert not header_has(msg, "List-Unsubscribe-Post")
        bhs |= {t["bh"] for t in tags}
        m = sl.parse_mail(msg)
        assert m["Subject"].startswith("Grüße aus Köln ✓")
        texts = [p.get_content() for p in m.walk() if p.get_content_type() == "text/plain"]
        assert any("\n.a line that starts with a dot" in t.replace("\r\n", "\n") for t in texts)
        atts = [p for p in m.walk() if p.get_filename() == "data.bin"]
        assert atts and atts[0].get_content() == BLOB
    assert len(bhs) == 1   # one body hash for the message
    opendkim_check(sg, od, "transactional")


def test_broadcast_per_recipient_list_unsubscribe(signing):
    sg = signing
    sg.insert_domain()
    dids = send(sg, stream="broadcast")
    od = {}
    bhs = set()
    bs = set()
    for rcpt, did in dids.items():
        raw = sl.read_mail(sg.st.mail_dir, did)
        msg, tags = check_signed(sg, raw, did, broadcast=True, od=od)
        bhs |= {t["bh"] for t in tags}
        bs |= {t["b"] for t in tags}
        m = sl.parse_mail(msg)
        assert str(m["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        lu = re.sub(r"\s+", "", str(m["List-Unsubscribe"]))
        mm = re.fullmatch(r"<(.+)/u/([A-Za-z0-9_-]+)>", lu)
        assert mm, lu
        assert mm.group(1) == sg.st.ph.env["POSTHORN_PUBLIC_URL"].rstrip("/") or \
            mm.group(1).startswith("http"), lu
        payload = sg.unsub_payload(mm.group(2))
        assert sg.st.account in payload and did in payload, payload
    assert len(bhs) == 1          # the body hash is shared by the recipients
    assert len(bs) == 2 * len(dids)   # signatures are per recipient
    opendkim_check(sg, od, "broadcast")


def test_unknown_domain_unsigned(signing):
    sg = signing
    sg.insert_domain()
    dids = send(sg, **{"from": {"email": "orders@unknown.example"}})
    for did in dids.values():
        rp, _, msg = split_file(sl.read_mail(sg.st.mail_dir, did))
        assert rp == "orders@unknown.example"
        assert not header_has(msg, "DKIM-Signature")
    # broadcast from an unknown domain: List-Unsubscribe all the same, unsigned
    dids = send(sg, stream="broadcast", **{"from": {"email": "orders@unknown.example"}})
    for did in dids.values():
        rp, _, msg = split_file(sl.read_mail(sg.st.mail_dir, did))
        assert rp == "orders@unknown.example"
        assert not header_has(msg, "DKIM-Signature")
        assert header_has(msg, "List-Unsubscribe")


def test_domain_of_another_account_does_not_sign(signing):
    sg = signing
    other = sg.st.ph.create_account("other")
    sealed = sg.seal(b"irrelevant", other, DOMAIN)
    sg.insert_domain(account=other, rsa=sealed, ed=sealed)
    dids = send(sg)
    for did in dids.values():
        rp, _, msg = split_file(sl.read_mail(sg.st.mail_dir, did))
        assert rp == "news@" + DOMAIN
        assert not header_has(msg, "DKIM-Signature")


def test_key_that_does_not_open_fails_delivery(signing):
    sg = signing
    # sealed for another account: the associated data differs, the box does not open
    bad = sg.seal(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                  "acc_someoneelse", DOMAIN)
    sg.insert_domain(rsa=bad)
    m = sl.msg(**{"from": {"email": "news@" + DOMAIN}})
    r = sg.st.client.post("/v1/messages", json=m)
    assert r.status_code == 202, r.text
    did = r.json()["recipients"][0]["delivery_id"]

    def failed():
        rows = sg.st.db.rows("SELECT state, last_response FROM deliveries WHERE id = %s"
                             % sl.lit(did))
        return rows and rows[0][0] == "failed"
    sl.hph.wait_until(failed, timeout=60, interval=0.2, what="delivery failed")
    rows = sg.st.db.rows("SELECT state, last_response FROM deliveries WHERE id = %s" % sl.lit(did))
    assert "DKIM rsa key" in rows[0][1] and "cannot be opened" in rows[0][1], rows
    assert "PRIVATE" not in rows[0][1] and "AAAA" not in rows[0][1]
    assert did not in sl.mail_files(sg.st.mail_dir)
