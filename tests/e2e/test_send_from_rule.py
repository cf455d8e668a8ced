"""The From rule: with POSTHORN_ALLOW_UNVERIFIED unset (the production default), mail is
accepted only from the account's verified domains. Unverified, unknown and another account's
verified domain answer 422 on `from`; after the records are published and verified, the same
message is accepted."""
import secrets

import pytest

from harness import dns as hdns


@pytest.fixture
def dnsmasq(tmp_path):
    d = hdns.Dnsmasq(str(tmp_path / "dns"), txt=[("placeholder.test", "x")])
    yield d
    d.destroy()


def _msg(sender):
    return {"from": sender, "to": ["ann@example.com"], "subject": "Hi", "text": "Hello"}


def _from_errors(r):
    assert r.status_code == 422, r.text
    return [e for e in r.json()["errors"] if e["field"] == "from"]


def test_only_verified_domains_may_send(make_posthorn, dnsmasq):
    p = make_posthorn(env={"POSTHORN_DNS_SERVER": dnsmasq.server, "POSTHORN_ALLOW_UNVERIFIED": "0"})
    p.api_proc()
    a, b = p.create_account("from-a"), p.create_account("from-b")
    ca, cb = p.client(p.create_key(a)), p.client(p.create_key(b))
    name = "shop-%s.test" % secrets.token_hex(4)

    # Unknown to the account: refused, nothing stored.
    errs = _from_errors(ca.post("/v1/messages", json=_msg("orders@" + name)))
    assert errs and name in errs[0]["message"]

    # Added but not verified: still refused.
    dom = ca.post("/v1/domains", json={"name": name}).json()
    _from_errors(ca.post("/v1/messages", json=_msg("orders@" + name)))

    # Published and verified: accepted (domain case does not matter).
    dnsmasq.stop()
    dnsmasq.txt = [(x["name"], x["value"]) for x in dom["dns_records"] if x["purpose"] == "dkim"]
    dnsmasq.start()
    assert ca.post("/v1/domains/%s/verify" % dom["id"]).status_code == 200
    r = ca.post("/v1/messages", json=_msg("Orders <orders@%s>" % name.upper()))
    assert r.status_code == 202, r.text

    # Another account cannot send from A's verified domain; the batch says so per item.
    _from_errors(cb.post("/v1/messages", json=_msg("orders@" + name)))
    r = cb.post("/v1/messages/batch", json={"messages": [_msg("orders@" + name)]})
    assert r.status_code == 200 and r.json()["data"][0]["error"]["status"] == 422, r.text
