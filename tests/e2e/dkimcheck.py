"""opendkim-testmsg (libopendkim) as a DKIM verifier for the e2e tests, shared by
test_dkim_oracle.py and test_worker_signing.py.

opendkim-testmsg has no resolver option, so it runs under `unshare -n -m`: a private network
namespace where dnsmasq serves the key TXT records on 127.0.0.1:53, and a private mount
namespace where resolv.conf is bind-mounted to point at it. All messages of one call are
checked in one such namespace."""
import os
import shutil
import subprocess

import pytest

OPENDKIM = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
DNSMASQ = "/usr/sbin/dnsmasq"

OD_SCRIPT = r"""
set -u
D=$1; shift
ip link set lo up || exit 97
mount --bind "$D/resolv.conf" /etc/resolv.conf || exit 98
"$DNSMASQ" --conf-file="$D/records.conf" --no-resolv --no-hosts --no-poll \
    --listen-address=127.0.0.1 --port=53 --bind-interfaces --pid-file="$D/dnsmasq.pid" \
    --user=root --cache-size=0 --log-queries --log-facility="$D/dnsmasq.log" || exit 99
for f in "$@"; do
    "$OPENDKIM" < "$f" > "$f.od.out" 2>&1
    echo $? > "$f.od.rc"
done
kill "$(cat "$D/dnsmasq.pid")"
"""


def opendkim_verify(od, records, messages):
    """{name: (rc, output)} from opendkim-testmsg for each {name: raw}; rc 0 = verified.

    od: a directory (pathlib.Path) to work in; records: {"<sel>._domainkey.<domain>": "v=DKIM1;
    ..."} (str or bytes, a trailing dot is ignored), served by dnsmasq, which answers
    everything else under .example as nonexistent."""
    if os.geteuid() != 0:
        pytest.skip("opendkim-testmsg runs under unshare -n -m, which needs root here")
    for p in (OPENDKIM, DNSMASQ):
        assert os.access(p, os.X_OK), "%s missing" % p
    od.mkdir(parents=True, exist_ok=True)
    (od / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:2 timeout:2\n")
    lines = ["local=/example/"]
    for name, rec in records.items():
        name = name.decode() if isinstance(name, bytes) else name
        rec = rec.decode() if isinstance(rec, bytes) else rec
        lines.append('txt-record=%s,"%s"' % (name.rstrip("."), rec))
    (od / "records.conf").write_text("\n".join(lines) + "\n")
    paths = {}
    for name, raw in messages.items():
        p = od / ("%s.eml" % name)
        p.write_bytes(raw)
        paths[name] = str(p)
    env = dict(os.environ, OPENDKIM=OPENDKIM, DNSMASQ=DNSMASQ)
    p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", OD_SCRIPT, "sh", str(od)]
                       + list(paths.values()), capture_output=True, timeout=600, env=env)
    assert p.returncode == 0, "namespace setup failed (%d): %s" % (
        p.returncode, p.stderr.decode("utf-8", "replace"))
    out = {}
    for name, path in paths.items():
        rc = int(open(path + ".od.rc").read().strip())
        out[name] = (rc, open(path + ".od.out", errors="replace").read())
    return out
