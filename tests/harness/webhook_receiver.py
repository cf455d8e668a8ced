"""A real HTTP server that receives webhook POSTs for the e2e tests, verifies each Standard
Webhooks signature with its own HMAC code, and answers from per-path scripts.

    rx = WebhookReceiver(host="127.0.0.2")
    url = rx.url("/a")                      # http://127.0.0.2:PORT/a
    rx.set_secret("/a", "whsec_...")        # requests to /a are verified with it
    rx.script("/a", [500, 500, (429, {"Retry-After": "3"}), 200])   # then the default (200)
    rx.requests("/a")                        # [Request, ...] in arrival order
    rx.max_in_flight("/a")                   # most concurrent requests seen on /a
    rx.stop()

Each Request has .path, .headers (lower-case names), .body (bytes), .t (monotonic arrival),
.t_end, .sig_ok (None when no secret is set for the path) and .events (the parsed JSON body).
"""
import base64
import hashlib
import hmac
import http.server
import json
import socketserver
import threading
import time

from . import ports


class Request:
    def __init__(self, path, headers, body, t):
        self.path = path
        self.headers = headers
        self.body = body
        self.t = t
        self.t_end = None
        self.sig_ok = None
        self.status = None
        try:
            self.events = json.loads(body)
        except ValueError:
            self.events = None

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def __repr__(self):
        return "<Request %s id=%s n=%s sig_ok=%s>" % (
            self.path, self.webhook_id,
            len(self.events) if isinstance(self.events, list) else "?", self.sig_ok)


def sign(secret, msg_id, timestamp, body):
    """The v1 signature of Standard Webhooks, computed independently of Posthorn."""
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    mac = hmac.new(key, b"%s.%s." % (msg_id.encode(), str(timestamp).encode()) + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret, headers, body, tolerance=300):
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not msg_id or not ts or not sigs or not ts.isdigit():
        return False
    if abs(int(ts) - time.time()) > tolerance:
        return False
    want = sign(secret, msg_id, ts, body)
    return any(hmac.compare_digest(want, s) for s in sigs.split(" "))


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookReceiver:
    def __init__(self, host="127.0.0.2", port=None):
        self.host = host
        self.port = port or ports.free_port(host)
        self._lock = threading.Lock()
        self._reqs = []
        self._scripts = {}
        self._secrets = {}
        self._in_flight = {}
        self._max_in_flight = {}
        self.default = 200
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                rx._handle(self, b"")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                rx._handle(self, self.rfile.read(n) if n else b"")

        self.server = _Server((host, self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def set_secret(self, path, secret):
        with self._lock:
            self._secrets[path] = secret

    def script(self, path, responses):
        """responses: status ints, (status, headers), (status, headers, body) or
        (status, headers, body, delay_s); used in order, then the default 200."""
        with self._lock:
            self._scripts[path] = list(responses)

    def _next(self, path):
        with self._lock:
            s = self._scripts.get(path)
            r = s.pop(0) if s else self.default
        if isinstance(r, int):
            r = (r,)
        status = r[0]
        headers = r[1] if len(r) > 1 else {}
        body = r[2] if len(r) > 2 else b"ok"
        delay = r[3] if len(r) > 3 else 0
        return status, headers, body, delay

    def _handle(self, h, body):
        path = h.path
        req = Request(path, {k.lower(): v for k, v in h.headers.items()}, body, time.monotonic())
        with self._lock:
            secret = self._secrets.get(path)
            self._in_flight[path] = self._in_flight.get(path, 0) + 1
            self._max_in_flight[path] = max(self._max_in_flight.get(path, 0),
                                            self._in_flight[path])
        if secret:
            req.sig_ok = verify(secret, req.headers, body)
        status, headers, rbody, delay = self._next(path)
        req.status = status
        with self._lock:
            self._reqs.append(req)   # before answering: a client may look right after
        if delay:
            time.sleep(delay)
        # The request counts as in flight until its answer starts: the sender may start the
        # next one as soon as it has read this answer, before this thread runs again.
        req.t_end = time.monotonic()
        with self._lock:
            self._in_flight[path] -= 1
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(rbody)))
        h.end_headers()
        h.wfile.write(rbody)

    def requests(self, path=None):
        with self._lock:
            return [r for r in self._reqs if path is None or r.path == path]

    def max_in_flight(self, path):
        with self._lock:
            return self._max_in_flight.get(path, 0)

    def delivered(self, path):
        """The events of every request to path answered 2xx, in arrival order."""
        out = []
        for r in sorted(self.requests(path), key=lambda r: r.t):
            if r.status is not None and 200 <= r.status < 300 and isinstance(r.events, list):
                out += r.events
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
