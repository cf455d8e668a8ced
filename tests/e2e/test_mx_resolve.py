"""smtp/mx (MX resolution, RFC 5321 section 5.1) against real DNS servers on loopback.

tests/unit/mxtool (built by `make unit`) resolves one domain through POSTHORN_DNS_SERVER and
prints the result as JSON; each call is a separate process, so nothing is cached between
calls unless the tool is asked to resolve several times (then one cache serves them all).
Records come from dnsmasq (tests/harness/dns.py; local records have TTL 0) or, for what
dnsmasq cannot answer (SERVFAIL, REFUSED, silence, null MX), from the scripted responder.
Every address in the records is loopback; mx never connects to anything anyway.
"""
import json
import os
import secrets
import subprocess

import pytest

from harness import dns as hdns
from harness import ports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
PORT = 2525


def mxtool_path():
    if os.environ.get("MXTOOL"):
        return os.environ["MXTOOL"]
    kinds = ["san", "rel"] if os.environ.get("SANITIZE") == "1" else ["rel", "san"]
    for k in kinds:
        p = os.path.join(ROOT, "build", k, "tests", "mxtool")
        if os.access(p, os.X_OK):
            return p
    pytest.fail("tests/unit/mxtool is not built: run `make unit` (or `make unit SANITIZE=1`)")


def resolve(server, domain, port=PORT, times=None):
    """mxtool's answer (a list of answers when times is given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTHORN_")}
    env["POSTHORN_DNS_SERVER"] = server
    argv = [mxtool_path(), domain, str(port)] + ([str(times)] if times else [])
    p = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    err = p.stderr.decode("utf-8", "replace")
    for pat in SANITIZER_PATTERNS:
        assert pat not in err, err
    assert p.returncode == 0, err
    lines = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(lines) == (times or 1), p.stdout
    return lines if times else lines[0]


def names(r):
    return [h["name"] for h in r["hosts"]]


def uniq(prefix="mx"):
    return "%s-%s.test" % (prefix, secrets.token_hex(4))


# One dnsmasq for the tests that need only ordinary records; each test has its own domains.
D_ORDER, D_EQUAL, D_IMPLICIT, D_TXTONLY = uniq("order"), uniq("equal"), uniq("implicit"), uniq("txt")
D_V6, D_MANY, D_ADDRS, D_DUAL, D_HALF = uniq("v6"), uniq("many"), uniq("addrs"), uniq("dual"), uniq("half")
D_GONE, D_UPPER = uniq("gone"), uniq("upper")


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    mx = [(D_ORDER, "mx20." + D_ORDER, 20), (D_ORDER, "mx10." + D_ORDER, 10),
          (D_ORDER, "mx30." + D_ORDER, 30),
          (D_EQUAL, "a." + D_EQUAL, 10), (D_EQUAL, "b." + D_EQUAL, 10),
          (D_EQUAL, "c." + D_EQUAL, 20),
          (D_V6, "mx6." + D_V6, 10),
          (D_ADDRS, "mx." + D_ADDRS, 10), (D_DUAL, "mx." + D_DUAL, 10),
          # the better MX lives outside dnsmasq's zones: it refuses to answer for it
          (D_HALF, "mx1.elsewhere.example", 10), (D_HALF, "mx2." + D_HALF, 20),
          # an MX host that does not exist at all
          (D_GONE, "nothere." + D_GONE, 10),
          (D_UPPER, "mx." + D_UPPER, 10)]
    mx += [(D_MANY, "mx%d.%s" % (i, D_MANY), 10 * i) for i in (7, 3, 1, 6, 2, 5, 4)]
    hosts = [("mx10." + D_ORDER, "127.0.0.10"), ("mx20." + D_ORDER, "127.0.0.20"),
             ("mx30." + D_ORDER, "127.0.0.30"),
             ("a." + D_EQUAL, "127.0.0.11"), ("b." + D_EQUAL, "127.0.0.12"),
             ("c." + D_EQUAL, "127.0.0.13"),
             (D_IMPLICIT, "127.0.0.5"),
             ("mx6." + D_V6, "::1"),
             ("mx." + D_DUAL, "127.0.0.7"), ("mx." + D_DUAL, "::1"),
             ("mx2." + D_HALF, "127.0.0.22"),
             ("mx." + D_UPPER, "127.0.0.8")]
    hosts += [("mx." + D_ADDRS, "127.0.1.%d" % i) for i in range(1, 7)]
    hosts += [("mx%d.%s" % (i, D_MANY), "127.0.2.%d" % i) for i in range(1, 8)]
    d = hdns.Dnsmasq(str(tmp_path_factory.mktemp("mxdns")), mx=mx, hosts=hosts,
                     txt=[(D_TXTONLY, "v=spf1 -all")], local=["test"])
    yield d
    d.destroy()


@pytest.fixture
def scripted():
    made = []

    def make(**kw):
        s = hdns.ScriptedDns(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def test_preference_order_and_port(dnsmasq):
    r = resolve(dnsmasq.server, D_ORDER)
    assert r["status"] == "ok" and r["implicit"] is False and r["err"] == "", r
    assert names(r) == ["mx10." + D_ORDER, "mx20." + D_ORDER, "mx30." + D_ORDER]
    assert [h["pref"] for h in r["hosts"]] == [10, 20, 30]
    assert [h["addrs"] for h in r["hosts"]] == [["127.0.0.10"], ["127.0.0.20"], ["127.0.0.30"]]
    assert {h["port"] for h in r["hosts"]} == {PORT}
    r = resolve(dnsmasq.server, D_ORDER, port=25)
    assert {h["port"] for h in r["hosts"]} == {25}
    # dnsmasq's local records have TTL 0: the answer is kept for the 5 s floor.
    assert 0 < r["ttl_ms"] <= 5000


def test_equal_preferences_are_shuffled(dnsmasq):
    seen = set()
    for _ in range(40):
        r = resolve(dnsmasq.server, D_EQUAL)
        assert r["status"] == "ok", r
        got = names(r)
        assert got[2] == "c." + D_EQUAL, got          # the worse preference stays last
        assert sorted(got[:2]) == ["a." + D_EQUAL, "b." + D_EQUAL]
        seen.add(tuple(got[:2]))
        if len(seen) == 2:
            break
    assert len(seen) == 2, "only ever saw %s" % seen


def test_implicit_mx(dnsmasq):
    r = resolve(dnsmasq.server, D_IMPLICIT)
    assert r["status"] == "ok" and r["implicit"] is True, r
    assert r["hosts"] == [{"name": D_IMPLICIT, "pref": 0, "port": PORT, "addrs": ["127.0.0.5"]}]


def test_no_mx_and_no_address_is_notfound(dnsmasq):
    r = resolve(dnsmasq.server, D_TXTONLY)
    assert r["status"] == "notfound" and r["hosts"] == [], r
    assert r["err"] == "%s: no MX, A or AAAA record" % D_TXTONLY


def test_nxdomain(dnsmasq):
    d = uniq("nope")
    r = resolve(dnsmasq.server, d)
    assert r["status"] == "notfound", r
    assert r["err"] == "%s: NXDOMAIN" % d
    assert 5000 - 1000 < r["ttl_ms"] <= 3600000


def test_mx_host_that_does_not_exist(dnsmasq):
    r = resolve(dnsmasq.server, D_GONE)
    assert r["status"] == "notfound", r
    assert r["err"] == "%s: no MX host has an address" % D_GONE


def test_host_with_only_aaaa_loopback(dnsmasq):
    r = resolve(dnsmasq.server, D_V6)
    assert r["status"] == "ok", r
    assert r["hosts"] == [{"name": "mx6." + D_V6, "pref": 10, "port": PORT, "addrs": ["::1"]}]


def test_more_than_five_mx_keeps_the_best_five(dnsmasq):
    r = resolve(dnsmasq.server, D_MANY)
    assert r["status"] == "ok", r
    assert names(r) == ["mx%d.%s" % (i, D_MANY) for i in range(1, 6)]
    assert [h["pref"] for h in r["hosts"]] == [10, 20, 30, 40, 50]
    assert [h["addrs"] for h in r["hosts"]] == [["127.0.2.%d" % i] for i in range(1, 6)]


def test_addresses_per_host(dnsmasq):
    r = resolve(dnsmasq.server, D_ADDRS)
    assert r["status"] == "ok", r
    addrs = r["hosts"][0]["addrs"]
    assert len(addrs) == 4 and len(set(addrs)) == 4
    assert set(addrs) <= {"127.0.1.%d" % i for i in range(1, 7)}
    # Both families are kept when both exist.
    r = resolve(dnsmasq.server, D_DUAL)
    assert sorted(r["hosts"][0]["addrs"]) == ["127.0.0.7", "::1"]


def test_unanswered_better_mx_is_skipped(dnsmasq):
    r = resolve(dnsmasq.server, D_HALF)
    assert r["status"] == "ok", r
    assert r["hosts"] == [{"name": "mx2." + D_HALF, "pref": 20, "port": PORT,
                           "addrs": ["127.0.0.22"]}]


def test_name_case_and_trailing_dot(dnsmasq):
    r = resolve(dnsmasq.server, D_UPPER.upper() + ".")
    assert r["status"] == "ok", r
    assert names(r) == ["mx." + D_UPPER]


def test_null_mx(scripted):
    d = uniq("null")
    s = scripted(default="NXDOMAIN", rules={d: ("MX", 0, ".")})
    r = resolve(s.server, d)
    assert r["status"] == "null" and r["hosts"] == [], r
    assert r["err"] == "%s: null MX (RFC 7505)" % d
    assert [q for q in s.queries if q[1] != "MX"] == []   # no address look-ups after it


@pytest.mark.parametrize("action", ["SERVFAIL", "REFUSED"])
def test_server_failure_is_retry(scripted, action):
    d = uniq("fail")
    s = scripted(default=action)
    r = resolve(s.server, d)
    assert r["status"] == "retry" and r["hosts"] == [], r
    assert r["err"] == "%s: %s" % (d, action)
    assert r["ttl_ms"] <= 5000


def test_mx_host_servfail_is_retry(scripted):
    d = uniq("hostfail")
    s = scripted(default="SERVFAIL", rules={d: ("MX", 10, "mx." + d)})
    r = resolve(s.server, d)
    assert r["status"] == "retry", r
    assert r["err"] == "mx.%s: SERVFAIL" % d
    assert ("mx." + d, "A") in s.queries and ("mx." + d, "AAAA") in s.queries


def test_only_host_refused_is_retry(scripted):
    d = uniq("only")
    s = scripted(default="REFUSED", rules={d: ("MX", 10, "mx1.elsewhere.example")})
    r = resolve(s.server, d)
    assert r["status"] == "retry" and r["err"] == "mx1.elsewhere.example: REFUSED", r


def test_silence_is_retry_within_the_bound(scripted):
    d = uniq("silent")
    s = scripted(default="DROP")
    r = resolve(s.server, d)
    assert r["status"] == "retry", r
    assert r["err"] == "%s: timed out" % d


def test_nobody_listening_is_retry():
    port = ports.free_port("127.0.0.1", udp_too=True)
    r = resolve("127.0.0.1:%d" % port, uniq("closed"))
    assert r["status"] == "retry", r
    assert r["err"].endswith(": connection refused") or r["err"].endswith(": timed out"), r


def test_answers_are_cached_in_process(scripted):
    d = uniq("cache")
    s = scripted(default="NXDOMAIN", rules={d: ("MX", 10, "mx." + d), "mx." + d: ("A", "127.0.0.9")})
    rs = resolve(s.server, d, times=3)
    assert [r["status"] for r in rs] == ["ok"] * 3
    assert all(r["hosts"] == rs[0]["hosts"] for r in rs)
    assert rs[0]["hosts"][0]["addrs"] == ["127.0.0.9"]
    # One MX, one A, one AAAA query: the second and third answers came from the cache, for
    # the responder's 60 s TTL.
    assert sorted(s.queries) == sorted([(d, "MX"), ("mx." + d, "A"), ("mx." + d, "AAAA")])
    assert 50000 < rs[0]["ttl_ms"] <= 60000


def test_retry_is_cached_briefly(scripted):
    d = uniq("retrycache")
    once = scripted(default="SERVFAIL")
    resolve(once.server, d)
    thrice = scripted(default="SERVFAIL")
    rs = resolve(thrice.server, d, times=3)
    assert [r["status"] for r in rs] == ["retry"] * 3
    assert len(thrice.queries) == len(once.queries) > 0
    assert all(0 < r["ttl_ms"] <= 5000 for r in rs)


@pytest.mark.parametrize("name", ["exa mple.test", "-bad.test", "bad-.test", "a..b.test",
                                  "under_score.test", "x" * 64 + ".test",
                                  ("a" * 49 + ".") * 5 + "test", "", ".", "caf\u00e9.test",
                                  "..test", "test..", "1.2.3.4:25"])
def test_bad_names_are_notfound_without_a_query(scripted, name):
    s = scripted(default="SERVFAIL")
    r = resolve(s.server, name)
    assert r["status"] == "notfound", r
    assert r["err"].endswith(": not a valid domain name"), r
    assert s.queries == []


def test_longest_name_is_looked_up(scripted):
    longest = ("a" * 49 + ".") * 4 + "b" * 48 + ".test"       # 253 characters
    assert len(longest) == 253
    s = scripted(default="SERVFAIL")
    r = resolve(s.server, longest + ".")
    assert r["status"] == "retry", r
    assert r["err"].endswith("...: SERVFAIL") and len(r["err"]) <= 255, r
    assert s.queries == [(longest, "MX")]
    r = resolve(s.server, "c" + longest)
    assert r["status"] == "notfound", r
