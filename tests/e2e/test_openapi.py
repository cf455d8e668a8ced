"""openapi.yaml: present, served as built, covers the route table, and the validator used
by every other test really catches a response that does not match."""
import json

import pytest
import yaml

from harness.posthorn import ROOT, ContractError, OpenApi


def test_openapi_present(spec):
    assert spec is not None, "%s/openapi.yaml is missing: responses cannot be validated" % ROOT
    assert str(spec.doc.get("openapi", "")).startswith("3.1"), spec.doc.get("openapi")


def test_served_document_is_the_repo_file(ph, spec):
    r = ph.client().get("/openapi.yaml")
    assert r.status_code == 200
    assert "yaml" in r.headers["Content-Type"], r.headers
    served = yaml.safe_load(r.content)
    with open(ROOT + "/openapi.yaml", "rb") as f:
        repo = yaml.safe_load(f)
    assert served == repo, "bin/posthorn-api serves a different openapi.yaml (rebuild?)"


def test_route_table_is_documented(routes, spec):
    if spec is None:
        pytest.fail("no openapi.yaml")
    missing = []
    for r in routes:
        tmpl, item = spec.find(r["path"])
        if item is None or r["method"].lower() not in item or tmpl != r["path"]:
            missing.append("%s %s" % (r["method"], r["path"]))
            continue
        op = item[r["method"].lower()]
        declared = op.get("x-posthorn-scope")
        if declared is not None and declared != r["scope"]:
            missing.append("%s %s: scope %s in the route table, %s in openapi.yaml" %
                           (r["method"], r["path"], r["scope"], declared))
    assert not missing, "routes not (correctly) in openapi.yaml:\n" + "\n".join(missing)


def test_validator_catches_mismatches(spec):
    if spec is None:
        pytest.fail("no openapi.yaml")
    h = {"Content-Type": "application/json", "X-Request-Id": "req_x"}
    good = json.dumps({"status": "ok"}).encode()
    assert spec.check("GET", "/healthz", 200, h, good) == []
    assert spec.check("GET", "/healthz", 200, {"Content-Type": "application/json"}, good)
    assert spec.check("GET", "/healthz", 200, h, json.dumps({"status": 5}).encode())
    assert spec.check("GET", "/healthz", 299, h, good)                  # undocumented status
    assert spec.check("GET", "/no/such/route", 200, h, good)            # undocumented route
    assert spec.check("GET", "/healthz", 200, {"Content-Type": "text/html"}, b"<p>")
    problem = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "no key"}
    ph = {"Content-Type": "application/problem+json", "X-Request-Id": "req_x",
          "WWW-Authenticate": "Bearer"}
    assert spec.check("GET", "/v1/account", 401, ph, json.dumps(problem).encode()) == []
    assert spec.check("GET", "/v1/account", 401, ph, json.dumps({"title": 1}).encode())
    with pytest.raises(ContractError):
        raise ContractError("x")
    assert isinstance(spec, OpenApi)
