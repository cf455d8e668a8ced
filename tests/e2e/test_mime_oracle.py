"""lib/mime against an independent oracle: Python's `email` package (policy.default).

tests/unit/mimetool (built by `make unit`) turns a JSON description into the MIME that
lib/mime builds; each shape is parsed back and compared with what went in: headers decode
to the input, text and html bodies equal the input (line breaks normalised to CRLF), attachments are
byte-identical, inline images are referenced by cid, there is no Bcc. The wire form is
checked too: CRLF only, no line over 998 octets, header lines folded at 78 columns, QP and
base64 lines <= 76, 7-bit only. Uses only the build output; no servers.
"""
import base64
import email
import email.header
import email.policy
import email.utils
import json
import os
import random
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATE = 1767225600  # Thu, 01 Jan 2026 00:00:00 +0000
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def mimetool_path():
    kinds = ["san", "rel"] if os.environ.get("SANITIZE") == "1" else ["rel", "san"]
    for k in kinds:
        p = os.path.join(ROOT, "build", k, "tests", "mimetool")
        if os.access(p, os.X_OK):
            return p
    pytest.fail("tests/unit/mimetool is not built: run `make unit` (or `make unit SANITIZE=1`)")


def run_tool(desc):
    p = subprocess.run([mimetool_path()], input=json.dumps(desc).encode(), capture_output=True,
                       timeout=60)
    err = p.stderr.decode("utf-8", "replace")
    for pat in SANITIZER_PATTERNS:
        assert pat not in err, err
    return p.returncode, p.stdout, err


def build(desc):
    d = {"from": "Shop <orders@shop.example>", "to": ["Ann <ann@example.com>"],
         "message_id": "<m1@shop.example>", "date": DATE}
    d.update(desc)
    rc, out, err = run_tool(d)
    assert rc == 0, err
    return out


def b64(data):
    return base64.b64encode(data).decode()


def crlf(s):
    """What a body must read back as: every CR, LF or CRLF a CRLF."""
    return re.sub(r"\r\n|\r|\n", "\r\n", s)


def normalize_read(s):
    # Python hands decoded text back with the line breaks it found (CRLF on our wire).
    return s.replace("\r\n", "\n")


def check_wire(raw, allow_8bit_header=None):
    assert raw.endswith(b"\r\n"), raw[-20:]
    lines = raw.split(b"\r\n")[:-1]
    for ln in lines:
        assert b"\r" not in ln and b"\n" not in ln, "bare CR or LF in %r" % ln[:80]
        assert len(ln) <= 998, "line of %d octets" % len(ln)
    for i, ln in enumerate(lines):
        if any(b >= 128 for b in ln):
            assert allow_8bit_header and ln.startswith(allow_8bit_header), \
                "8-bit octets in %r" % ln[:80]
    assert not re.search(rb"(?im)^bcc:", raw)
    # Header blocks (the message's and every part's): folded at 78 columns.
    in_header = True
    for ln in lines:
        if in_header:
            if ln == b"":
                in_header = False
                continue
            if len(ln) > 78 and not allow_8bit_header:
                # Only one unbreakable word (an opaque token in a custom header, say) may
                # take a line past 78 columns.
                value = ln[1:] if ln[:1] == b" " else ln.split(b": ", 1)[1]
                assert b" " not in value, "header line of %d: %r" % (len(ln), ln)
            assert ln[:1] in (b" ", b"\t") or re.match(rb"^[!-9;-~]+:", ln), ln
        elif ln.startswith(b"--=_ph"):
            in_header = not ln.endswith(b"--")
        else:
            assert len(ln) <= 76, "body line of %d octets: %r" % (len(ln), ln[:80])
    return lines


def parse(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    return msg


def raw_header(raw, name):
    """The unfolded raw value of a top-level header (for an RFC 2047 decode of our own)."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    v = m.get(name)
    return None if v is None else re.sub(r"\r?\n", "", v)


def rfc2047_names(value):
    """Display names decoded by the letter of RFC 2047 (whitespace between adjacent
    encoded-words dropped, which Python 3.11's policy.default phrase parser does not do)."""
    out = []
    for name, addr in email.utils.getaddresses([value]):
        out.append((str(email.header.make_header(email.header.decode_header(name))), addr))
    return out


def addrs(msg, name):
    return [(a.display_name, a.addr_spec) for a in msg[name].addresses]


def common_headers(msg):
    assert msg["Date"].datetime.timestamp() == DATE
    assert msg["Message-ID"] == "<m1@shop.example>"
    assert msg["MIME-Version"] == "1.0"


# --- shapes ---------------------------------------------------------------------------

def test_text_only():
    text = "Hello Ann,\n\nyour order is confirmed.\n"
    raw = build({"subject": "Order confirmed", "text": text})
    check_wire(raw)
    msg = parse(raw)
    common_headers(msg)
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert normalize_read(msg.get_content()) == normalize_read(crlf(text))
    assert str(msg["Subject"]) == "Order confirmed"
    assert addrs(msg, "From") == [("Shop", "orders@shop.example")]
    assert addrs(msg, "To") == [("Ann", "ann@example.com")]
    # Header order of the API page.
    names = [k for k in msg.keys()]
    assert names[:7] == ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version",
                         "Content-Type"]


def test_text_without_final_newline_reads_back_exactly():
    for text in ["no newline at the end", "x" * 200, "ends with space ", "ends with =", ""]:
        raw = build({"subject": "s", "text": text})
        check_wire(raw)
        assert parse(raw).get_content() == text


def test_html_only():
    html = "<html><body><p>Hi <b>Ann</b> &amp; co = 100%</p></body></html>"
    raw = build({"subject": "s", "html": html})
    check_wire(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "text/html"
    assert msg.get_content() == html


def test_text_and_html_alternative():
    text, html = "Hi Ann\n", "<p>Hi Ann</p>\n"
    raw = build({"subject": "s", "text": text, "html": html})
    check_wire(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert normalize_read(parts[0].get_content()) == normalize_read(crlf(text))
    assert normalize_read(parts[1].get_content()) == normalize_read(crlf(html))
    assert msg.get_body(("plain",)).get_content() == parts[0].get_content()


def test_attachments_byte_identical():
    rnd = random.Random(5)
    blobs = [bytes(range(256)) * 41, bytes(rnd.getrandbits(8) for _ in range(100001)), b"",
             b"\r\n.\r\n\n\rFrom x\r\n", b"a"]
    atts = [{"filename": "blob%d.bin" % i, "content_type": "application/octet-stream",
             "content": b64(b)} for i, b in enumerate(blobs)]
    atts.append({"filename": "invoice.pdf", "content_type": "application/pdf",
                 "content": b64(b"%PDF-1.4 fake"), "disposition": "attachment"})
    raw = build({"subject": "files", "text": "see attached", "html": "<p>see attached</p>",
                 "attachments": atts})
    check_wire(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert parts[0].get_content_type() == "multipart/alternative"
    got = [(p.get_filename(), p.get_payload(decode=True), p.get_content_disposition(),
            p.get_content_type()) for p in parts[1:]]
    want = [("blob%d.bin" % i, b, "attachment", "application/octet-stream")
            for i, b in enumerate(blobs)]
    want.append(("invoice.pdf", b"%PDF-1.4 fake", "attachment", "application/pdf"))
    assert got == want
    for p in parts[1:]:
        assert p["Content-Transfer-Encoding"] == "base64"
    assert [a.get_filename() for a in msg.iter_attachments()] == [w[0] for w in want]


def test_text_only_with_attachment():
    raw = build({"subject": "s", "text": "t", "attachments": [
        {"filename": "a.txt", "content_type": "text/plain", "content": b64(b"plain\n")}]})
    check_wire(raw)
    msg = parse(raw)
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/plain"]
    assert parts[0].get_content() == "t"
    assert parts[1].get_payload(decode=True) == b"plain\n"


def _inline_png():
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


def test_inline_cid_image_related_inside_alternative():
    png = _inline_png()
    html = '<p>Logo: <img src="cid:logo@shop.example"></p>'
    raw = build({"subject": "s", "text": "Logo", "html": html, "attachments": [
        {"filename": "logo.png", "content_type": "image/png", "disposition": "inline",
         "content_id": "logo@shop.example", "content": b64(png)},
        {"filename": "terms.pdf", "content_type": "application/pdf", "content": b64(b"T")}]})
    check_wire(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed"
    alt, terms = list(msg.iter_parts())
    assert alt.get_content_type() == "multipart/alternative"
    plain, related = list(alt.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    assert related.get_param("type") == "text/html"
    html_part, img = list(related.iter_parts())
    assert html_part.get_content() == html
    assert img["Content-ID"] == "<logo@shop.example>"
    assert img.get_content_disposition() == "inline"
    assert img.get_payload(decode=True) == png
    cids = re.findall(r'cid:([^"]+)', html_part.get_content())
    assert ["<%s>" % c for c in cids] == [img["Content-ID"]]
    assert terms.get_filename() == "terms.pdf"
    # The html body as a mail reader picks it, and the image it references.
    assert msg.get_body(("html",)).get_content() == html


def test_inline_cid_with_html_only_is_related_at_top():
    png = _inline_png()
    raw = build({"subject": "s", "html": '<img src="cid:logo">', "attachments": [
        {"filename": "logo.png", "content_type": "image/png", "disposition": "inline",
         "content_id": "logo", "content": b64(png)}]})
    check_wire(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/related"
    html_part, img = list(msg.iter_parts())
    assert html_part.get_content_type() == "text/html"
    assert img["Content-ID"] == "<logo>" and img.get_payload(decode=True) == png


def test_addresses_reply_to_cc_and_no_bcc():
    raw = build({
        "from": {"email": "orders@shop.example", "name": "Shop, Inc."},
        "reply_to": {"email": "help@shop.example", "name": "Help Desk"},
        "to": ["ann@example.com", "\"Doe, Ann\" <doe@example.com>",
               {"email": "o'brien+tag@example.com", "name": "Seán O'Brien"},
               "\"john doe\"@example.com", "Bob <bob@Example.COM>"],
        "cc": [{"email": "carl@example.com", "name": "Carl \"the boss\" \\ C."}],
        "bcc": ["hidden@example.com"], "subject": "s", "text": "t"})
    check_wire(raw)
    assert b"hidden" not in raw
    msg = parse(raw)
    assert addrs(msg, "From") == [("Shop, Inc.", "orders@shop.example")]
    assert addrs(msg, "Reply-To") == [("Help Desk", "help@shop.example")]
    assert addrs(msg, "To") == [("", "ann@example.com"), ("Doe, Ann", "doe@example.com"),
                                ("Seán O'Brien", "o'brien+tag@example.com"),
                                ("", '"john doe"@example.com'), ("Bob", "bob@example.com")]
    assert addrs(msg, "Cc") == [('Carl "the boss" \\ C.', "carl@example.com")]
    assert "Bcc" not in msg


def test_many_recipients_fold():
    to = [{"email": "user%02d@example.com" % i, "name": "User Number %d" % i} for i in range(50)]
    raw = build({"to": to, "subject": "s", "text": "t"})
    check_wire(raw)
    msg = parse(raw)
    assert addrs(msg, "To") == [(a["name"], a["email"]) for a in to]


NON_ASCII_NAMES = ["Jörg Müller", "Ελένη Παπαδοπούλου", "山田太郎", "Zoë 🐍 Snake",
                   "=?utf-8?q?looks_encoded?=", "Müller, Jörg", " leading and trailing ",
                   "tab\u00a0nbsp"]


@pytest.mark.parametrize("name", NON_ASCII_NAMES)
def test_non_ascii_display_names(name):
    raw = build({"from": {"email": "orders@shop.example", "name": name},
                 "to": [{"email": "ann@example.com", "name": name}], "subject": "s",
                 "text": "t"})
    check_wire(raw)
    msg = parse(raw)
    assert addrs(msg, "From") == [(name, "orders@shop.example")]
    assert addrs(msg, "To") == [(name, "ann@example.com")]
    assert rfc2047_names(raw_header(raw, "To")) == [(name, "ann@example.com")]


def test_long_non_ascii_display_name_is_rfc2047_exact():
    # Too long for one encoded-word: several adjacent ones, which RFC 2047 joins without
    # the whitespace between them. Python 3.11's phrase parser keeps that whitespace, so
    # this one is checked with a decoder that follows the RFC.
    name = "Éric Müller-Lüdenscheidt Ünterschöneberger Großherzog von und zu Ölgemäldestadt"
    raw = build({"to": [{"email": "eric@example.com", "name": name}], "subject": "s",
                 "text": "t"})
    check_wire(raw)
    assert rfc2047_names(raw_header(raw, "To")) == [(name, "eric@example.com")]
    assert parse(raw)["To"].addresses[0].addr_spec == "eric@example.com"


SUBJECTS = [
    "Bestätigung Ihrer Bestellung",
    "日本語の件名です。ご注文ありがとうございます。" * 3,
    "Re: [ticket #42] ÄÖÜ äöü ß € 🎉",
    "=?utf-8?q?not_really_encoded?=",
    "  two leading spaces and  double  spaces and trailing  ",
    "a" * 990,
    " ".join(["word%d" % i for i in range(110)]),
    "ü" * 499,
    "x" * 300 + " é " + "y" * 300,
    "percent %s and backslash \\ and quotes \"'",
    "",
]


@pytest.mark.parametrize("subject", SUBJECTS, ids=range(len(SUBJECTS)))
def test_subjects_decode_back(subject):
    raw = build({"subject": subject, "text": "t"})
    check_wire(raw)
    assert str(parse(raw)["Subject"]) == subject


CUSTOM = [("X-Campaign", "spring"), ("X-Unicode", "Grüße aus Köln"),
          ("X-Long", " ".join(["token%d" % i for i in range(100)])),
          ("X-Emoji", "🚀" * 60), ("X-Trace-Id", "a=?b"), ("Precedence", "bulk"),
          ("X-Long-Word", "z" * 900)]


def test_custom_headers_in_order_and_decoded():
    raw = build({"subject": "s", "text": "t", "headers": [list(h) for h in CUSTOM],
                 "list_unsubscribe": "<https://ph.example/u/TOKEN>, <mailto:u@ph.example?subject=u>",
                 "list_unsubscribe_post": "List-Unsubscribe=One-Click"})
    check_wire(raw)
    msg = parse(raw)
    for name, value in CUSTOM:
        assert str(msg[name]) == value, name
    keys = list(msg.keys())
    i = keys.index("MIME-Version")
    assert keys[i + 1:i + 1 + len(CUSTOM)] == [n for n, _ in CUSTOM]
    assert keys[i + 1 + len(CUSTOM):i + 3 + len(CUSTOM)] == ["List-Unsubscribe",
                                                           "List-Unsubscribe-Post"]
    assert str(msg["List-Unsubscribe"]) == \
        "<https://ph.example/u/TOKEN>, <mailto:u@ph.example?subject=u>"
    assert str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"


FILENAMES = ["Rechnung März 2026.pdf", "файл.txt", "報告書.docx", "a\"quote\".txt",
             "back\\slash.txt", "=?utf-8?q?x?=.bin", "100% sure; really.txt",
             "ü" * 120 + ".pdf", "plain-name_" + "n" * 70 + ".txt"]


@pytest.mark.parametrize("filename", FILENAMES, ids=range(len(FILENAMES)))
def test_filenames(filename):
    data = bytes(range(256))
    raw = build({"subject": "s", "text": "t", "attachments": [
        {"filename": filename, "content_type": "application/octet-stream", "content": b64(data)}]})
    check_wire(raw)
    msg = parse(raw)
    att = list(msg.iter_attachments())
    assert len(att) == 1
    assert att[0].get_filename() == filename
    assert att[0].get_payload(decode=True) == data
    # The legacy name= parameter for old clients says the same.
    assert att[0]["Content-Type"].params.get("name") == filename


BODIES = [
    "line one\nline two\n",                     # LF
    "bare\rcarriage\rreturns\r",                # CR
    "mixed\r\nline\nends\rhere",                # all three
    ".starts with a dot\n..two dots\n.\n",      # SMTP dot lines
    "From the start of a line\n",
    "trailing spaces   \ntrailing tab\t\n",
    "= signs =3D and =\n",
    "x" * 5000 + "\n" + "é" * 3000,              # long lines, multi-byte
    "\u00a0 nbsp and \u2028 line separator",
    "\n\n\nblank lines\n\n",
    "tab\tin\tthe\tmiddle " * 20,
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_bodies_round_trip(body):
    raw = build({"subject": "s", "text": body, "html": "<pre>%s</pre>" % body})
    check_wire(raw)
    msg = parse(raw)
    plain, html = list(msg.iter_parts())
    # Inside a multipart the CRLF before a delimiter belongs to the delimiter.
    assert normalize_read(plain.get_content()) == normalize_read(crlf(body))
    assert normalize_read(html.get_content()) == normalize_read(crlf("<pre>%s</pre>" % body))


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_single_part_bodies_round_trip(body):
    raw = build({"subject": "s", "text": body})
    check_wire(raw)
    assert normalize_read(parse(raw).get_content()) == normalize_read(crlf(body))


def test_everything_together():
    png = _inline_png()
    raw = build({
        "from": {"email": "orders@shop.example", "name": "Bücherstube Müller"},
        "reply_to": "Kundendienst <help@shop.example>",
        "to": ["Jörg <joerg@bücher.example>", "ann@example.com"],
        "cc": [{"email": "cc@example.com", "name": "Ελένη"}],
        "subject": "Ihre Bestellung – danke! " * 5,
        "text": "Hallo Jörg,\n.\nDanke.\n", "html": "<p>Hallo Jörg <img src='cid:logo'></p>",
        "headers": {"X-Kampagne": "Frühling"},
        "attachments": [
            {"filename": "Rechnung-Nr-1.pdf", "content_type": "application/pdf",
             "content": b64(b"%PDF" + bytes(range(256)))},
            {"filename": "logo.png", "content_type": "image/png", "disposition": "inline",
             "content_id": "logo", "content": b64(png)}]})
    check_wire(raw)
    msg = parse(raw)
    assert addrs(msg, "To") == [("Jörg", "joerg@xn--bcher-kva.example"), ("", "ann@example.com")]
    assert addrs(msg, "Reply-To") == [("Kundendienst", "help@shop.example")]
    assert addrs(msg, "Cc") == [("Ελένη", "cc@example.com")]
    assert str(msg["Subject"]) == "Ihre Bestellung – danke! " * 5
    assert str(msg["X-Kampagne"]) == "Frühling"
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
        "text/html", "image/png", "application/pdf"]


def test_boundaries_random_and_absent_from_content():
    seen = set()
    for _ in range(3):
        raw = build({"subject": "s", "text": "--=_ph0_ and --=_ph1_ in the text\n",
                     "html": "<p>=_ph</p>", "attachments": [
                         {"filename": "a.bin", "content": b64(b"--=_ph0_" * 50)}]})
        check_wire(raw)
        bs = re.findall(rb'boundary="([^"]+)"', raw)
        assert len(bs) == 2 and len(set(bs)) == 2
        for bnd in bs:
            assert b"=_" in bnd
            assert raw.count(b"\r\n--" + bnd) + raw.startswith(b"--" + bnd) >= 2
            # Only delimiter lines start with --boundary.
            for ln in raw.split(b"\r\n"):
                if bnd in ln:
                    assert ln.startswith(b"--" + bnd) or b'boundary="' in ln, ln
        seen.update(bs)
        parse(raw)
    assert len(seen) == 6


def test_smtputf8_local_part_is_the_only_8bit():
    raw = build({"to": ["Jörg <jörg@example.com>"], "subject": "Grüße", "text": "ü"})
    check_wire(raw, allow_8bit_header=b"To: ")
    assert "jörg@example.com".encode() in raw
    msg = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert addrs(msg, "To") == [("Jörg", "jörg@example.com")]


# --- refusals ---------------------------------------------------------------------------

REFUSED = [
    {"subject": "a\r\nBcc: victim@example.com"},
    {"subject": "a\nb"},
    {"subject": "nul\u0000byte"},
    {"subject": "=?utf-8?q?a=0D=0ABcc:_x@example.com?="},
    {"subject": "=?utf-8?b?YQ0KYg==?="},
    {"subject": "x" * 999},
    {"to": ["=?utf-8?q?a=0D=0Ab?= <ann@example.com>"]},
    {"to": [{"email": "ann@example.com", "name": "Ann\r\nBcc: x@example.com"}]},
    {"to": ["Ann <ann@example.com>\r\nBcc: x@example.com"]},
    {"to": ["ann@exa\nmple.com"]},
    {"headers": {"Bcc": "x@example.com"}},
    {"headers": {"subject": "x"}},
    {"headers": {"Content-Type": "text/html"}},
    {"headers": {"dkim-signature": "v=1"}},
    {"headers": {"List-Unsubscribe": "<https://x.example>"}},
    {"headers": {"X-Ok": "value\r\nBcc: x@example.com"}},
    {"headers": {"X-Bad Name": "v"}},
    {"headers": {"X-Colon:": "v"}},
    {"attachments": [{"filename": "a\r\nb.txt", "content": "AA=="}]},
    {"attachments": [{"filename": "a.txt", "content_type": "text/plain; charset=x",
                      "content": "AA=="}]},
    {"attachments": [{"filename": "a.txt", "content": "AA==", "disposition": "form-data"}]},
    {"attachments": [{"filename": "a.txt", "content": "AA==", "content_id": "a b"}]},
    {"attachments": [{"filename": "a.txt", "content": "not base64!"}]},
    {"message_id": "no-brackets@x"},
]


@pytest.mark.parametrize("bad", REFUSED, ids=range(len(REFUSED)))
def test_refusals(bad):
    d = {"from": "Shop <orders@shop.example>", "to": ["ann@example.com"], "subject": "s",
         "text": "t", "date": DATE}
    d.update(bad)
    rc, out, err = run_tool(d)
    assert rc == 2, out[:400]
    assert out == b""
    assert err.startswith("mimetool: ")


# --- random shapes (fixed seed) ---------------------------------------------------------

ALPHABET = ("abcdefghijklmnopqrstuvwxyz ABC.,;:!?'\"()<>@[]\\=?_-%/" + "äöüßéèçñ€—“”"
            + "日本語中文한국어" + "🎉🐍" + "\u00a0\u2028")


def _rand_text(rnd, n):
    return "".join(rnd.choice(ALPHABET) for _ in range(n))


@pytest.mark.parametrize("seed", range(40))
def test_random_messages(seed):
    rnd = random.Random(seed)
    subject = _rand_text(rnd, rnd.randint(0, 200))
    name = _rand_text(rnd, rnd.randint(1, 40)).strip() or "x"
    value = _rand_text(rnd, rnd.randint(1, 300))
    body = "".join(rnd.choice([_rand_text(rnd, rnd.randint(0, 120)), "\n", "\r", "\r\n", ".", " "])
                   for _ in range(rnd.randint(0, 60)))
    blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 3000)))
    filename = (_rand_text(rnd, rnd.randint(1, 80)).strip() or "f") + ".bin"
    raw = build({"subject": subject, "to": [{"email": "ann@example.com", "name": name}],
                 "headers": [["X-Random", value]], "text": body, "html": "<p>%s</p>" % body,
                 "attachments": [{"filename": filename, "content": b64(blob)}]})
    check_wire(raw)
    msg = parse(raw)
    assert str(msg["Subject"]) == subject
    assert str(msg["X-Random"]) == value
    assert rfc2047_names(raw_header(raw, "To")) == [(name, "ann@example.com")]
    alt, att = list(msg.iter_parts())
    plain, html = list(alt.iter_parts())
    assert normalize_read(plain.get_content()) == normalize_read(crlf(body))
    assert normalize_read(html.get_content()) == normalize_read(crlf("<p>%s</p>" % body))
    assert att.get_filename() == filename
    assert att.get_payload(decode=True) == blob
