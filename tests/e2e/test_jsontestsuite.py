"""JSONTestSuite (../shared/testdata/jsontestsuite/test_parsing) as bodies of
POST /v1/suppressions: n_* are refused with 400, y_* that are not objects with 400, objects
with 422 or 2xx, i_* anything but 5xx; the API keeps serving. Responses are validated
against openapi.yaml by the client."""
import json
import os

import pytest
import requests

from conftest import shared_dir
from harness.posthorn import ContractError

SUITE = os.path.join(shared_dir(), "testdata", "jsontestsuite", "test_parsing")


def cases():
    if not os.path.isdir(SUITE):
        return []
    return sorted(f for f in os.listdir(SUITE) if f.endswith(".json"))


def parses_as_object(raw):
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def test_suite_present():
    assert len(cases()) > 300, SUITE


def test_jsontestsuite(make_posthorn, routes):
    """On a private API, so that a crash is restarted from and every crashing case listed."""
    ph = make_posthorn()
    api = ph.api_proc()
    acc = ph.create_account("jsontestsuite")
    key = ph.create_key(acc, ["admin", "read"], rate=100000)
    client = ph.client(key)
    cap = [r for r in routes if r["method"] == "POST" and r["path"] == "/v1/suppressions"][0]["body_max"]
    bad, crashes = [], []
    for name in cases():
        with open(os.path.join(SUITE, name), "rb") as f:
            raw = f.read()
        try:
            r = client.post("/v1/suppressions", data=raw, headers={"Content-Type": "application/json"})
        except requests.ConnectionError as e:
            api.wait_exit(5)
            crashes.append("%s (body %r): exit status %r, %s" % (name, raw[:60], api.proc.p.poll(),
                                                                e.__class__.__name__))
            api.restart()
            continue
        except ContractError as e:  # answered, but not as openapi.yaml says
            bad.append("%s: %s" % (name, str(e).splitlines()[0]))
            continue
        code = r.status_code
        if len(raw) > cap:
            ok = code == 413
        elif name.startswith("n_"):
            ok = code == 400
        elif name.startswith("y_"):
            ok = code in (422, 200, 201) if parses_as_object(raw) else code == 400
        else:
            ok = code < 500
        if not ok:
            bad.append("%s (%d bytes) -> %d %s" % (name, len(raw), code, r.text[:120]))
    assert api.alive(), "posthorn-api died during the suite:\n" + api.proc.log()[-3000:]
    assert api.healthz_ok()
    assert not crashes and not bad, "posthorn-api crashed on %d cases:\n%s\n%d cases answered " \
        "wrongly:\n%s" % (len(crashes), "\n".join(crashes), len(bad), "\n".join(bad))


@pytest.mark.parametrize("body,code", [
    (b'{"email":"a@example.com"', 400),
    (b'{"email":"\xff@example.com"}', 400),            # not UTF-8
    (b'{"email":"\xed\xa0\x80@example.com"}', 400),    # UTF-8-encoded surrogate
    (b'{"email":"\\ud800@example.com"}', (400, 422)),  # lone surrogate escape (i_ in the suite)
    (b'["a@example.com"]', 400),
    (b'"a@example.com"', 400),
    (b'null', 400),
    (b'', 400),
    (b'{"email":"a@example.com"} {}', 400),
    (b'{"email":"a\\u0000b@example.com"}', 422),       # NUL
])
def test_json_edge_cases(new_account, body, code):
    acc = new_account(scopes=["admin"])
    r = acc.client.post("/v1/suppressions", data=body, headers={"Content-Type": "application/json"})
    codes = code if isinstance(code, tuple) else (code,)
    assert r.status_code in codes, (body, r.status_code, r.text)
