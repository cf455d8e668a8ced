"""The benchmark harness cannot rot: its mail peers work and `bench/run --smoke` completes.

No assertion here is about speed (timing belongs in `make bench`); these check that the
private Postfix relays, that OpenDKIM really signs (dkimpy verifies the signature with the
run's public key), that the wrk script counts what it sends, and that every scenario's script
runs once in its tiny configuration and writes its JSON and chart.
"""
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from harness import mta  # noqa: E402
from harness.posthorn import VALGRIND  # noqa: E402


@pytest.fixture
def run_dir(tmp_path):
    os.chmod(tmp_path, 0o755)  # Postfix and opendkim run as their own users
    return str(tmp_path)


@pytest.fixture
def stoppers():
    items = []
    yield items
    for s in reversed(items):
        s.stop()


def _started(stoppers, thing):
    thing.start()
    stoppers.append(thing)
    return thing


def test_private_postfix_relays_to_sink(run_dir, stoppers):
    sink = _started(stoppers, mta.SmtpSink(os.path.join(run_dir, "sink")))
    pf = _started(stoppers, mta.PostfixInstance(os.path.join(run_dir, "postfix"),
                                                relay=(sink.host, sink.port)))
    assert pf.config_dir.startswith(run_dir)  # never /etc/postfix
    res = mta.run_smtp_source(pf.host, pf.port, 5, size=1000, sessions=2,
                              log_path=os.path.join(run_dir, "source.log"))
    assert res.returncode == 0, res.output
    assert sink.wait_count(5, timeout=60) == 5
    mta_wait_empty(pf)
    log = pf.log()
    assert "status=sent" in log and "relay=127.0.0.1[127.0.0.1]:%d" % sink.port in log


def test_private_postfix_as_receiving_mta_rejects_listed_recipient(run_dir, stoppers):
    pf = mta.PostfixInstance(os.path.join(run_dir, "postfix"), relay=None,
                             files={"rcpt_access": "gone@x.test REJECT no such user\n"})
    pf.tuning["smtpd_recipient_restrictions"] = (
        "check_recipient_access texthash:" + pf.config_path("rcpt_access"))
    _started(stoppers, pf)
    ok = mta.run_smtp_source(pf.host, pf.port, 2, size=100, sessions=1, recipient="ann@x.test")
    assert ok.returncode == 0, ok.output
    bad = mta.run_smtp_source(pf.host, pf.port, 1, size=100, sessions=1, recipient="gone@x.test")
    assert bad.returncode != 0 and "554 5.7.1" in bad.output
    mta_wait_empty(pf)
    from harness.procs import wait_for
    wait_for(lambda: pf.log().count("status=sent (accepted by a test MTA)") == 2,
             what="two discarded deliveries in the Postfix log")


def mta_wait_empty(pf, timeout=30):
    from harness.procs import wait_for
    wait_for(lambda: pf.queue_count() == 0, timeout=timeout, what="empty Postfix queue")


def test_opendkim_signature_verifies_with_dkimpy(run_dir, stoppers):
    dkim = pytest.importorskip("dkim")
    sink = _started(stoppers, mta.SmtpSink(os.path.join(run_dir, "sink"),
                                           dump_dir=os.path.join(run_dir, "dump")))
    dk = _started(stoppers, mta.OpenDkim(os.path.join(run_dir, "opendkim"), "signer.test",
                                         selector="smoke"))
    pf = _started(stoppers, mta.PostfixInstance(os.path.join(run_dir, "postfix"),
                                                relay=(sink.host, sink.port), milter=dk.milter))
    res = mta.run_smtp_source(pf.host, pf.port, 2, size=600, sessions=1,
                              sender="shop@signer.test", recipient="ann@sink.test",
                              subject="dkim smoke", log_path=os.path.join(run_dir, "source.log"))
    assert res.returncode == 0, res.output
    sink.wait_count(2, timeout=60)
    msgs = sink.messages()
    assert len(msgs) == 2
    txt = dk.txt_record()
    assert txt.startswith("v=DKIM1") and "k=rsa" in txt
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        return txt.encode() if name.rstrip(b".") == b"smoke._domainkey.signer.test" else None

    for m in msgs:
        head = m.split(b"\r\n\r\n", 1)[0]
        assert b"DKIM-Signature:" in head
        assert b"a=rsa-sha256" in head and b"d=signer.test" in head and b"s=smoke" in head
        assert dkim.verify(m, dnsfunc=dnsfunc), m[:2000]
        # The check is real: a changed body no longer verifies.
        assert not dkim.verify(m.replace(b"XXXX", b"YYYY", 1), dnsfunc=dnsfunc)
    assert asked


def test_wrk_script_counts_statuses_and_numbers_requests():
    from benchlib import wrk
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Authorization"), body))
            code = 429 if len(seen) % 4 == 0 else 202
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = wrk.run("http://127.0.0.1:%d" % srv.server_address[1], 1, connections=2, threads=1,
                    path="/v1/messages", auth="ph_test_secret",
                    body='{"to":[{"email":"u@@SEQ@@@sink.test"}]}')
    finally:
        srv.shutdown()
        srv.server_close()
    assert r["requests"] > 0
    assert set(r["status"]) <= {"202", "429"} and r["status"].get("202", 0) > 0
    assert sum(r["status"].values()) == r["requests"]
    assert seen and all(p == "/v1/messages" and a == "Bearer ph_test_secret" for p, a, _ in seen)
    bodies = [b for _, _, b in seen]
    assert len(set(bodies)) == len(bodies), "each request should carry its own @@SEQ@@ value"
    json.loads(bodies[0])


def test_bench_run_smoke(tmp_path):
    out = tmp_path / "results"
    log = tmp_path / "bench-run.log"
    with open(log, "wb") as f:
        p = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "bench", "run"), "--smoke",
                              "--out", str(out)], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            rc = p.wait(timeout=240)
        except subprocess.TimeoutExpired:
            p.terminate()  # bench/run stops its servers on SIGTERM
            p.wait(timeout=60)
            rc = "timeout"
    text = log.read_text(errors="replace")
    assert rc == 0, text[-6000:]
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from scenarios import registry
    for name in registry():
        doc = json.loads((out / ("%s.json" % name)).read_text())
        assert doc["smoke"] is True and doc["scenario"] == name
        assert doc["figures"], name
        for f in doc["figures"]:
            assert f["median"] is not None, f
            # CPU time comes from /proc in clock ticks (10 ms): a smoke run's few messages
            # may honestly measure 0 ms per message; transactional latency (and so its ratio)
            # can be below its arrival clock's 4 ms resolution (file mtimes) and read 0;
            # every other figure must be positive. Under valgrind (make valgrind) Posthorn is
            # so slow that a 1 s window of the smoke's rate test can see no arrival.
            if "CPU" in f.get("unit", "") or f["id"].startswith("posthorn.campaign.tx_") or \
                    VALGRIND:
                assert f["median"] >= 0, f
            else:
                assert f["median"] > 0, f
            assert f["measurement"] in doc["measurements"]
        for c in doc["charts"]:
            if c["png"]:
                assert (out / c["png"]).stat().st_size > 1000
    base = json.loads((out / "baseline.json").read_text())
    ids = {f["id"] for f in base["figures"]}
    for want in ("floor.openssl.rsa2048_sign", "floor.openssl.ed25519_sign",
                 "floor.pgbench.insert1.c1", "floor.pgbench.insert100.c8",
                 "floor.smtp.loopback", "peer.postfix.accept", "peer.postfix.e2e",
                 "peer.postfix_dkim.accept", "peer.postfix_dkim.e2e"):
        assert want in ids, want
    assert "Posthorn bench: baseline" in text
    # Nothing is written to the committed results by a smoke run.
    assert not (tmp_path / "bench").exists()
