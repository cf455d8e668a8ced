"""SIGTERM drains: the listener closes at once, a request already in flight still gets its
answer, then the API exits 0. The worker exits 0 on SIGTERM too (see test_worker.py)."""
import signal
import socket
import time

import rawhttp
from harness.posthorn import wait_until


def refused(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def test_sigterm_finishes_in_flight_request(make_posthorn):
    ph = make_posthorn()
    api = ph.api_proc()
    acc = ph.create_account("drain")
    key = ph.create_key(acc, ["admin", "read"])
    c = ph.client(key)
    assert c.get("/v1/account").status_code == 200

    body = b'{"email":"in-flight@example.com","reason":"sent across a SIGTERM"}'
    half = len(body) // 2
    s = rawhttp.connect(api.host, api.port)
    s.sendall(rawhttp.request_head("POST", "/v1/suppressions", "%s:%d" % (api.host, api.port),
                                   [("Authorization", "Bearer " + key),
                                    ("Content-Type", "application/json")],
                                   content_length=len(body)) + body[:half])
    # Let the server take in the head and the first half before the signal.
    time.sleep(0.5)
    api.proc.signal(signal.SIGTERM)
    wait_until(lambda: refused(api.host, api.port), timeout=10,
               what="new connections to be refused after SIGTERM")
    assert api.alive(), "the API exited with a request in flight (exit %s)" % api.proc.p.returncode
    s.sendall(body[half:])
    resp, _, how = rawhttp.read_response(s, timeout=30)
    s.close()
    assert resp is not None, "no response to the in-flight request (%s)" % how
    assert 100 <= resp.status < 600, resp
    assert resp.status == 201, resp  # it had everything it needed
    rc = api.wait_exit(30)
    assert rc == 0, "posthorn-api exit code after SIGTERM: %r" % rc
    # The suppression really was written.
    api2 = ph.api_proc()
    emails = [x["email"] for x in ph.client(key, api2).get("/v1/suppressions").json()["data"]]
    assert "in-flight@example.com" in emails


def test_sigterm_idle_exits_zero(make_posthorn):
    ph = make_posthorn()
    api = ph.api_proc()
    # An idle keep-alive connection must not hold the shutdown up to the grace limit.
    s = rawhttp.connect(api.host, api.port)
    s.sendall(rawhttp.request_head("GET", "/healthz", "%s:%d" % (api.host, api.port)))
    resp, _, _ = rawhttp.read_response(s)
    assert resp.status == 200
    api.proc.signal(signal.SIGTERM)
    rc = api.wait_exit(30)
    s.close()
    assert rc == 0, "posthorn-api exit code after SIGTERM: %r" % rc
    assert refused(api.host, api.port)
