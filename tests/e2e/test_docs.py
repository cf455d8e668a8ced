"""The documents agree with the code: README's settings table with the settings table in
lib/config.c, and openapi.yaml with the route table (every route documented, same scope)."""
import json
import os
import re
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*argv):
    return subprocess.run([os.path.join(ROOT, "bin", argv[0])] + list(argv[1:]),
                          check=True, capture_output=True, text=True).stdout


def test_readme_settings_table_matches_code():
    table = _run("posthorn", "settings", "--markdown")
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", readme, re.S)
    assert m, "README.md has no settings block"
    assert m.group(1) == table, "README settings table is stale: paste `bin/posthorn settings --markdown`"
    names = re.findall(r"^\| `(POSTHORN_[A-Z_]+)`", table, re.M)
    assert len(names) == len(set(names)) and "POSTHORN_SECRET" in names


def test_openapi_documents_every_route_with_its_scope():
    routes = json.loads(_run("posthorn-api", "--routes"))
    spec = yaml.safe_load(open(os.path.join(ROOT, "openapi.yaml"), encoding="utf-8"))
    documented = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                documented.add((method.upper(), path, op.get("x-posthorn-scope")))
    for r in routes:
        assert (r["method"], r["path"], r["scope"]) in documented, r
    served = {(r["method"], r["path"]) for r in routes} | {("GET", "/metrics")}
    for method, path, _ in documented:
        assert (method, path) in served, "documented but not served: %s %s" % (method, path)
