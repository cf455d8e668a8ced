"""lib/dkim against two independent verifiers: dkimpy (python3-dkim, python3-nacl for
ed25519) and opendkim-testmsg (libopendkim).

Messages are built by tests/unit/mimetool (lib/mime) in the shapes Posthorn sends, signed by
tests/unit/dkimtool (lib/dkim) with rsa-sha256 and ed25519-sha256 keys that lib/dkim
generated (plus one RSA key from `openssl genpkey`), and verified by both. A message changed
after signing (one body byte, one signed header, an extra From on top) must fail both.

dkimpy gets the key records through its dnsfunc. opendkim-testmsg has no resolver option,
so it runs under `unshare -n -m` with dnsmasq serving the TXT records (tests/e2e/dkimcheck.py).
All opendkim checks of the module run in one such namespace.
Uses only the build output; no Posthorn servers.
"""
import base64
import os
import random
import subprocess

import dkim
import pytest

import dkimcheck

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATE = 1767225600  # Thu, 01 Jan 2026 00:00:00 +0000
DOMAIN = "shop.example"
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def tool(name):
    kinds = ["san", "rel"] if os.environ.get("SANITIZE") == "1" else ["rel", "san"]
    for k in kinds:
        p = os.path.join(ROOT, "build", k, "tests", name)
        if os.access(p, os.X_OK):
            return p
    pytest.fail("tests/unit/%s is not built: run `make unit` (or `make unit SANITIZE=1`)" % name)


def run(argv, data=b""):
    p = subprocess.run(argv, input=data, capture_output=True, timeout=120)
    err = p.stderr.decode("utf-8", "replace")
    for pat in SANITIZER_PATTERNS:
        assert pat not in err, err
    assert p.returncode == 0, "%s: %s" % (argv[:2], err)
    return p.stdout


# --- messages -----------------------------------------------------------------------------

def b64(data):
    return base64.b64encode(data).decode()


rng = random.Random(6376)
SHAPES = {
    "text": {"subject": "Order confirmed", "text": "Hello Ann,\n\nyour order is confirmed.\n"},
    "html_text": {"subject": "Receipt", "text": "Total: 10 EUR\n",
                  "html": "<html><body><p>Total: <b>10&nbsp;EUR</b></p>\n<p>Thanks</p></body></html>"},
    "attachments": {"subject": "Your invoice", "text": "Invoice attached.\n",
                    "html": "<p>Invoice attached. <img src=\"cid:logo@shop\"></p>",
                    "attachments": [
                        {"filename": "invoice.pdf", "content_type": "application/pdf",
                         "content": b64(bytes(rng.randrange(256) for _ in range(20000)))},
                        {"filename": "logo.png", "content_type": "image/png",
                         "disposition": "inline", "content_id": "logo@shop",
                         "content": b64(bytes(rng.randrange(256) for _ in range(3000)))},
                        {"filename": "notes.txt", "content_type": "text/plain",
                         "content": b64(b"line one\r\n.line with a dot\r\n\r\n\r\n")}]},
    "non_ascii_headers": {"subject": "Grüße aus Köln – ünïcödé ✓ " * 3,
                          "from": {"email": "orders@shop.example", "name": "Café Ümlaut"},
                          "to": [{"email": "ann@example.com", "name": "Ånn Ö'Brien"}],
                          "cc": ["Zoë <zoe@example.org>"],
                          "reply_to": "Støtte <support@shop.example>",
                          "headers": {"X-Note": "naïve café"},
                          "text": "Grüße\n"},
    "long_lines": {"subject": "A very long subject line " + "word " * 60,
                   "text": "x" * 5000 + "\n" + " ".join(["wörd"] * 800) + "\n",
                   "html": "<p>" + "y" * 3000 + "</p>"},
    "dot_lines": {"subject": "Dots",
                  "text": ".\n..\n.leading dot\n. space after dot\nmiddle\n.\n",
                  "html": "<p>\n.dot in html\n</p>\n."},
    "whitespace": {"subject": "  spaced   out  subject  ",
                   "text": "tabs\there\t\tand  spaces   \n\n   indented\n\n\n\n",
                   "html": "<pre>  a   b  </pre>\n\n\n"},
    "utf8_local_part": {"subject": "SMTPUTF8", "to": ["Jörg <jörg@example.com>"],
                        "text": "8-bit octets in a header, the one exception to 7-bit\n"},
    "list_headers": {"subject": "Newsletter", "text": "News\n", "html": "<p>News</p>",
                     "list_unsubscribe": "<https://posthorn.example/u/abc123>",
                     "list_unsubscribe_post": "List-Unsubscribe=One-Click",
                     "to": ["a@example.com", "b@example.com"],
                     "cc": ["c@example.com"]},
}


def build(desc):
    d = {"from": "Shop <orders@shop.example>", "to": ["Ann <ann@example.com>"],
         "message_id": "<m1@shop.example>", "date": DATE}
    d.update(desc)
    import json
    return run([tool("mimetool")], json.dumps(d).encode())


def body_offset(raw):
    return raw.index(b"\r\n\r\n") + 4


def tamper_body(raw):
    """Change one alphanumeric body byte (in the last text line, so it is content)."""
    i = body_offset(raw)
    for j in range(len(raw) - 1, i, -1):
        c = raw[j:j + 1]
        if c.isalnum():
            return raw[:j] + (b"Q" if c != b"Q" else b"R") + raw[j + 1:]
    raise AssertionError("no body byte to change")


def tamper_header(raw):
    """Change the signed Subject value."""
    i = raw.index(b"\r\nSubject: ") + len(b"\r\nSubject: ")
    return raw[:i] + b"X" + raw[i:]


def extra_from(raw):
    """A second From above the signed one: over-signing must catch it."""
    return b"From: Bank <alerts@bank.example>\r\n" + raw


def relaxed_noise(raw):
    """Whitespace changes that relaxed canonicalization forgives: trailing blanks on a body
    line and extra empty lines at the end."""
    i = raw.index(b"\r\n", body_offset(raw))
    return raw[:i] + b" \t " + raw[i:] + b"\r\n\r\n"


# --- keys and signing -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    keys = {}
    for sel, alg in (("rsa1", "rsa"), ("ed1", "ed25519")):
        pem = str(d / ("%s.pem" % sel))
        pub = run([tool("dkimtool"), "keygen", alg, pem]).decode().strip()
        keys[sel] = (pem, "v=DKIM1; k=%s; p=%s" % (alg, pub))
    pem = str(d / "ossl.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", pem], check=True, capture_output=True)
    pub = run([tool("dkimtool"), "pub", pem]).decode().strip()
    keys["ossl"] = (pem, "v=DKIM1; k=rsa; p=%s" % pub)
    return d, keys


def sign(work, raw, selectors):
    d, keys = work
    argv = [tool("dkimtool"), "sign"]
    for i, sel in enumerate(selectors):
        argv += [keys[sel][0], DOMAIN, sel]
        if i == 0:
            argv.append(str(DATE))
    return run(argv, raw)


def dkimpy_results(work, raw):
    """One boolean per DKIM-Signature field, top first."""
    _, keys = work
    records = {("%s._domainkey.%s." % (sel, DOMAIN)).encode(): rec.encode()
               for sel, (_, rec) in keys.items()}

    def dnsfunc(name, timeout=5):
        return records.get(name)

    d = dkim.DKIM(raw)
    n = sum(1 for k, _ in d.headers if k.lower() == b"dkim-signature")
    out = []
    for i in range(n):
        try:
            out.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.DKIMException:
            out.append(False)
    return out


def opendkim_verify(work, messages):
    """{name: (rc, output)} from opendkim-testmsg for each {name: raw}; rc 0 = verified."""
    d, keys = work
    records = {"%s._domainkey.%s" % (sel, DOMAIN): rec for sel, (_, rec) in keys.items()}
    return dkimcheck.opendkim_verify(d / "od", records, messages)


# --- the matrix ------------------------------------------------------------------------------
# name -> (raw message, expected per verifier: True = every signature verifies)

@pytest.fixture(scope="module")
def matrix(work):
    cases = {}
    for shape, desc in SHAPES.items():
        raw = build(desc)
        for sels in (["rsa1"], ["ed1"], ["ossl"]):
            signed = sign(work, raw, sels)
            tag = "%s-%s" % (shape, sels[0])
            cases[tag] = (signed, True)
            cases[tag + "-relaxed-noise"] = (relaxed_noise(signed), True)
            cases[tag + "-body-byte"] = (tamper_body(signed), False)
            cases[tag + "-header"] = (tamper_header(signed), False)
            cases[tag + "-extra-from"] = (extra_from(signed), False)
    # Both algorithms on one message, as a domain with two keys signs.
    raw = build(SHAPES["attachments"])
    cases["dual"] = (sign(work, raw, ["rsa1", "ed1"]), True)
    cases["dual-body-byte"] = (tamper_body(cases["dual"][0]), False)
    # Hand-written bodies mime never makes: empty, only empty lines, no final CRLF.
    hdr = (b"From: Shop <orders@shop.example>\r\nTo: ann@example.com\r\nSubject: Empty\r\n"
           b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <e@shop.example>\r\n")
    for name, body in (("empty-body", b""), ("empty-lines-body", b"\r\n\r\n\r\n"),
                       ("no-final-crlf", b"last line without CRLF")):
        for sel in ("rsa1", "ed1"):
            cases["%s-%s" % (name, sel)] = (sign(work, hdr + b"\r\n" + body, [sel]), True)
    # Folded and repeated headers, signed bottom-up (RFC 6376 5.4.2): two List-Unsubscribe
    # fields for both verifiers; two To fields for dkimpy only, because opendkim refuses a
    # message with To twice as malformed (RFC 5322 3.6 allows one) before any signature.
    raw = (b"From: Shop <orders@shop.example>\r\nList-Unsubscribe: <https://a.example/u/1>\r\n"
           b"Subject: Folded\r\n\tacross   lines  \r\nList-Unsubscribe: <mailto:u@a.example>\r\n"
           b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nbody\r\n")
    for sel in ("rsa1", "ed1"):
        signed = sign(work, raw, [sel])
        assert b"List-Unsubscribe:List-Unsubscribe;" in signed.replace(b"\r\n\t", b"")
        cases["two-lu-%s" % sel] = (signed, True)
        cases["two-lu-changed-%s" % sel] = (signed.replace(b"u@a.example", b"v@a.example"), False)
    raw = (b"From: Shop <orders@shop.example>\r\nTo: a@example.com\r\nSubject: Folded\r\n"
           b"\tacross   lines  \r\nTo: b@example.com\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
           b"\r\nbody\r\n")
    for sel in ("rsa1", "ed1"):
        signed = sign(work, raw, [sel])
        cases["two-to-%s" % sel] = (signed, True)
        cases["two-to-changed-%s" % sel] = (signed.replace(b"To: a@example.com",
                                                           b"To: c@example.com"), False)
    return cases


@pytest.fixture(scope="module")
def opendkim_results(work, matrix):
    return opendkim_verify(work, {k: v[0] for k, v in matrix.items()})


def case_names():
    names = []
    for shape in SHAPES:
        for sel in ("rsa1", "ed1", "ossl"):
            tag = "%s-%s" % (shape, sel)
            names += [tag, tag + "-relaxed-noise", tag + "-body-byte", tag + "-header",
                      tag + "-extra-from"]
    names += ["dual", "dual-body-byte"]
    for name in ("empty-body", "empty-lines-body", "no-final-crlf"):
        names += ["%s-rsa1" % name, "%s-ed1" % name]
    for sel in ("rsa1", "ed1"):
        names += ["two-lu-%s" % sel, "two-lu-changed-%s" % sel, "two-to-%s" % sel,
                  "two-to-changed-%s" % sel]
    return names


# opendkim refuses these before checking any signature: a second From (extra-from) or To
# breaks RFC 5322's one-instance rule, and libopendkim answers "Syntax error".
def opendkim_refuses(name):
    return name.endswith("-extra-from") or name.startswith("two-to-")


@pytest.mark.parametrize("name", case_names())
def test_dkimpy(work, matrix, name):
    raw, good = matrix[name]
    res = dkimpy_results(work, raw)
    assert res, "no signature in %s" % name
    if good:
        assert all(res), "%s: dkimpy results %s" % (name, res)
    else:
        assert not any(res), "%s: dkimpy accepted a changed message: %s" % (name, res)


@pytest.mark.parametrize("name", case_names())
def test_opendkim(matrix, opendkim_results, name):
    _, good = matrix[name]
    rc, out = opendkim_results[name]
    if opendkim_refuses(name):
        assert rc != 0 and "Syntax error" in out, "%s: rc=%d: %s" % (name, rc, out)
    elif good:
        assert rc == 0, "%s: opendkim-testmsg rc=%d: %s" % (name, rc, out)
    else:
        assert rc != 0, "%s: opendkim-testmsg accepted a changed message" % name


def test_signature_field_shape(work):
    raw = build(SHAPES["list_headers"])
    signed = sign(work, raw, ["rsa1", "ed1"])
    head = signed[:len(signed) - len(raw)]
    assert signed.endswith(raw)
    fields = [f for f in head.split(b"\r\nDKIM-Signature:") if f]
    assert len(fields) == 2
    for ln in head.split(b"\r\n")[:-1]:
        assert len(ln) <= 78, ln
    text = head.replace(b"\r\n\t", b" ").decode()
    for sig in text.split("\r\n")[:-1]:
        tags = dict(t.strip().split("=", 1) for t in sig.split(":", 1)[1].split(";"))
        assert tags["c"] == "relaxed/relaxed"
        assert tags["t"] == str(DATE)
        assert "l" not in tags
        assert list(tags)[-1] == "b"
        assert tags["h"].replace(" ", "") == (
            "From:From:To:Cc:Subject:Subject:Date:Message-ID:MIME-Version:Content-Type:"
            "List-Unsubscribe:List-Unsubscribe-Post")
