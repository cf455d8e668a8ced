"""Sending domains: POST/GET /v1/domains, GET/DELETE /v1/domains/{id}, verify against DNS.

DNS answers come from dnsmasq (tests/harness/dns.py) on a free loopback port, or from the
scripted responder for SERVFAIL and silence; the API reaches them through
POSTHORN_DNS_SERVER."""
import re
import secrets

import pytest

from harness import dns as hdns


def _unique(prefix="shop"):
    return "%s-%s.test" % (prefix, secrets.token_hex(4))


def _private(make_posthorn, dns_server):
    p = make_posthorn(env={"POSTHORN_DNS_SERVER": dns_server, "POSTHORN_HELO_NAME": "mx.posthorn.test"})
    p.api_proc()
    acc = p.create_account("domains")
    key = p.create_key(acc)
    return p, acc, p.client(key)


def _dkim_records(dom):
    return [r for r in dom["dns_records"] if r["purpose"] == "dkim"]


def _assert_no_private(text):
    assert "PRIVATE KEY" not in text
    assert "private" not in text.lower()


@pytest.fixture
def dnsmasq(tmp_path):
    d = hdns.Dnsmasq(str(tmp_path / "dns"), txt=[("placeholder.test", "x")])
    yield d
    d.destroy()


def test_create_records_and_idn(ph, new_account):
    a = new_account()
    name = _unique()
    r = a.client.post("/v1/domains", json={"name": name.upper()})
    assert r.status_code == 201, r.text
    dom = r.json()
    _assert_no_private(r.text)
    assert dom["id"].startswith("dom_")
    assert dom["name"] == name
    assert dom["return_path_domain"] == "bounces." + name
    assert dom["verified"] is False and dom["verified_at"] is None
    sel = dom["dkim"]["selector"]
    assert re.fullmatch(r"ph[a-z2-7]{8}", sel)
    assert dom["dkim"]["algorithms"] == ["rsa-sha256", "ed25519-sha256"]
    recs = dom["dns_records"]
    rsa = [x for x in recs if x["name"] == "%s._domainkey.%s" % (sel, name)]
    assert len(rsa) == 1 and rsa[0]["type"] == "TXT" and rsa[0]["required"] is True
    assert rsa[0]["value"].startswith("v=DKIM1; k=rsa; p=MII")
    ed = [x for x in recs if x["name"] == "%se._domainkey.%s" % (sel, name)]
    assert len(ed) == 1 and ed[0]["value"].startswith("v=DKIM1; k=ed25519; p=")
    mx = [x for x in recs if x["type"] == "MX"]
    assert mx and mx[0]["name"] == "bounces." + name and mx[0]["value"].startswith("10 ")
    assert {x["purpose"] for x in recs} == {"dkim", "return_path", "spf", "dmarc"}
    assert any(x["name"] == "_dmarc." + name and x["value"].startswith("v=DMARC1;") for x in recs)
    assert any(x["name"] == name and x["value"].startswith("v=spf1 ") for x in recs)

    # GET and the list answer the same thing, still without private keys.
    g = a.client.get("/v1/domains/" + dom["id"])
    assert g.status_code == 200 and g.json() == dom
    _assert_no_private(g.text)
    lst = a.client.get("/v1/domains")
    assert lst.status_code == 200 and [d["id"] for d in lst.json()["data"]] == [dom["id"]]
    _assert_no_private(lst.text)

    # Duplicate (in any case) -> 409; another account may have the same name.
    d = a.client.post("/v1/domains", json={"name": name})
    assert d.status_code == 409, d.text
    b = new_account()
    rb = b.client.post("/v1/domains", json={"name": name})
    assert rb.status_code == 201
    assert rb.json()["dkim"]["selector"] != sel

    # IDN: converted to A-labels.
    u = "bücher-%s.test" % secrets.token_hex(3)
    ri = a.client.post("/v1/domains", json={"name": u, "return_path_domain": "rp." + u})
    assert ri.status_code == 201, ri.text
    assert ri.json()["name"] == u.encode("idna").decode()
    assert ri.json()["return_path_domain"] == "rp." + ri.json()["name"]

    # Paging.
    p1 = a.client.get("/v1/domains", params={"limit": 1}).json()
    assert len(p1["data"]) == 1 and p1["next_cursor"]
    p2 = a.client.get("/v1/domains", params={"limit": 1, "cursor": p1["next_cursor"]}).json()
    assert len(p2["data"]) == 1 and p2["data"][0]["id"] != p1["data"][0]["id"]

    # Delete.
    assert a.client.delete("/v1/domains/" + dom["id"]).status_code == 204
    assert a.client.get("/v1/domains/" + dom["id"]).status_code == 404
    assert a.client.delete("/v1/domains/" + dom["id"]).status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"name": "ok.test", "extra": 1}, "extra"),
    ({}, "name"),
    ({"name": 5}, "name"),
    ({"name": ""}, "name"),
    ({"name": "localhost"}, "name"),
    ({"name": "192.168.1.1"}, "name"),
    ({"name": "[127.0.0.1]"}, "name"),
    ({"name": "bad_label.test"}, "name"),
    ({"name": "-bad.test"}, "name"),
    ({"name": "a..test"}, "name"),
    ({"name": "x" * 64 + ".test"}, "name"),
    ({"name": ("a" * 63 + ".") * 4}, "name"),
    ({"name": "a" * 256}, "name"),
    ({"name": "shop.test", "return_path_domain": "bounces.other.test"}, "return_path_domain"),
])
def test_bad_input(ph, new_account, body, field):
    a = new_account()
    r = a.client.post("/v1/domains", json=body)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.text


def test_verify_before_and_after_publishing(make_posthorn, dnsmasq, pg):
    p, acc, c = _private(make_posthorn, dnsmasq.server)
    name = _unique()
    dom = c.post("/v1/domains", json={"name": name}).json()
    sel = dom["dkim"]["selector"]

    r = c.post("/v1/domains/%s/verify" % dom["id"])
    assert r.status_code == 422, r.text
    assert "no TXT record at %s._domainkey.%s" % (sel, name) in r.text
    assert c.get("/v1/domains/" + dom["id"]).json()["verified"] is False

    # Publish the records (dnsmasq reads them at start); the rsa one is > 255 bytes, so it is
    # split into several strings that the verifier joins.
    dnsmasq.stop()
    dnsmasq.txt = [(x["name"], x["value"]) for x in _dkim_records(dom)]
    dnsmasq.start()
    r = c.post("/v1/domains/%s/verify" % dom["id"])
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["verified"] is True and v["verified_at"]
    _assert_no_private(r.text)
    assert c.get("/v1/domains/" + dom["id"]).json()["verified_at"] == v["verified_at"]

    # The database holds sealed keys, not PEM text.
    db = p.db_url.rsplit("/", 1)[1].split("?")[0]
    out = pg.psql("SELECT encode(dkim_rsa_private, 'escape') || encode(dkim_ed25519_private, 'escape'),"
                  " length(dkim_rsa_private), length(dkim_ed25519_private), dkim_selector"
                  " FROM domains WHERE id = '%s'" % dom["id"], db=db)
    assert "PRIVATE KEY" not in out and "BEGIN" not in out
    lens = out.rsplit("|", 3)
    assert int(lens[1]) > 1000 and int(lens[2]) > 29 and lens[3] == sel

    # The storage contract, checked independently (Python `cryptography`): each box is
    # kid || nonce || AES-256-GCM(PKCS#8 PEM) || tag under HKDF-SHA256(secret, salt
    # "posthorn", info "posthorn dkim keys v1"), associated data kid || account "\n" name,
    # and its key is the published one.
    import base64
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def hkdf(info, n):
        return HKDF(algorithm=hashes.SHA256(), length=n, salt=b"posthorn",
                    info=info).derive(p.secret.encode())
    key, kid = hkdf(b"posthorn dkim keys v1", 32), hkdf(b"posthorn secretbox key id v1", 1)
    rows = pg.psql("SELECT encode(dkim_rsa_private, 'hex'), encode(dkim_ed25519_private, 'hex'),"
                   " dkim_rsa_public, dkim_ed25519_public FROM domains WHERE id = '%s'" % dom["id"],
                   db=db).split("|")
    ad = kid + ("%s\n%s" % (acc, name)).encode()
    for box_hex, pub in ((rows[0], rows[2]), (rows[1], rows[3])):
        box = bytes.fromhex(box_hex)
        assert box[:1] == kid
        pem = AESGCM(key).decrypt(box[1:13], box[13:], ad)
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        k = serialization.load_pem_private_key(pem, password=None)
        if "rsa" in type(k).__name__.lower():
            spki = k.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            spki = k.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        assert base64.b64encode(spki).decode() == pub


def test_other_accounts_key_does_not_verify(make_posthorn, dnsmasq):
    p, acc, c = _private(make_posthorn, dnsmasq.server)
    acc_b = p.create_account("other")
    cb = p.client(p.create_key(acc_b))
    name = _unique()
    mine = c.post("/v1/domains", json={"name": name}).json()
    theirs = cb.post("/v1/domains", json={"name": name}).json()
    assert mine["dkim"]["selector"] != theirs["dkim"]["selector"]
    # Only B's records published: B verifies, A does not (no record at A's selector).
    dnsmasq.stop()
    dnsmasq.txt = [(x["name"], x["value"]) for x in _dkim_records(theirs)]
    dnsmasq.start()
    assert cb.post("/v1/domains/%s/verify" % theirs["id"]).status_code == 200
    r = c.post("/v1/domains/%s/verify" % mine["id"])
    assert r.status_code == 422, r.text
    # B's key published under A's selector: the key does not match.
    dnsmasq.stop()
    b_rsa = [x for x in _dkim_records(theirs) if "k=rsa" in x["value"]][0]["value"]
    dnsmasq.txt = [("%s._domainkey.%s" % (mine["dkim"]["selector"], name), b_rsa)]
    dnsmasq.start()
    r = c.post("/v1/domains/%s/verify" % mine["id"])
    assert r.status_code == 422, r.text
    assert "does not match this account's key" in r.text
    assert c.get("/v1/domains/" + mine["id"]).json()["verified"] is False


@pytest.mark.parametrize("action", ["SERVFAIL", "DROP"])
def test_dns_failure_is_503(make_posthorn, action):
    s = hdns.ScriptedDns(default=action)
    try:
        p, acc, c = _private(make_posthorn, s.server)
        dom = c.post("/v1/domains", json={"name": _unique()}).json()
        r = c.post("/v1/domains/%s/verify" % dom["id"], timeout=30)
        assert r.status_code == 503, r.text
        assert "Retry-After" in r.headers
        assert s.queries and s.queries[0][1] == "TXT"
        assert c.get("/v1/domains/" + dom["id"]).json()["verified"] is False
    finally:
        s.stop()
