"""Raw HTTP/1.1 over a socket, for what requests cannot do: half-sent bodies, lying
Content-Length, huge streamed bodies, oversized heads."""
import select
import socket
import time


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # {lower-case name: value}
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<RawResponse %d %s %r %r>" % (self.status, self.reason, self.headers,
                                              self.body[:200])


class Headers(dict):
    """Case-insensitive enough for OpenApi.check (it uses `in` and .get with canonical names)."""

    def __contains__(self, k):
        return dict.__contains__(self, k.lower())

    def get(self, k, default=None):
        return dict.get(self, k.lower(), default)


def connect(host, port, timeout=30):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request_head(method, path, host, headers=(), content_length=None, chunked=False):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if content_length is not None:
        lines.append("Content-Length: %d" % content_length)
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_response(buf, eof=False):
    """(RawResponse, bytes consumed) when buf holds a complete response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError("malformed status line %r" % head[0])
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = Headers()
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    pos = end + 4
    if status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, reason, headers, b""), pos
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            le = buf.find(b"\r\n", pos)
            if le < 0:
                return None
            size = int(buf[pos:le].split(b";")[0], 16)
            if size == 0:
                te = buf.find(b"\r\n\r\n", le)
                if buf[le:le + 4] == b"\r\n\r\n":
                    return RawResponse(status, reason, headers, body), le + 4
                if te < 0:
                    return None
                return RawResponse(status, reason, headers, body), te + 4
            if len(buf) < le + 2 + size + 2:
                return None
            body += buf[le + 2:le + 2 + size]
            pos = le + 2 + size + 2
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < pos + n:
            return None
        return RawResponse(status, reason, headers, buf[pos:pos + n]), pos + n
    if not eof:
        return None
    return RawResponse(status, reason, headers, buf[pos:]), len(buf)


def read_response(sock, buf=b"", timeout=30):
    """Read one response. Returns (RawResponse or None if the peer closed first, rest, how)
    where how is 'ok', 'closed', 'reset' or 'timeout'."""
    deadline = time.monotonic() + timeout
    sock.setblocking(True)
    eof = False
    while True:
        r = parse_response(buf, eof)
        if r is not None:
            return r[0], buf[r[1]:], "ok"
        if eof:
            return None, buf, "closed"
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buf, "timeout"
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return None, buf, "timeout"
        except ConnectionResetError:
            r = parse_response(buf, True) if buf else None
            return (r[0] if r else None), b"", "reset"
        if not d:
            eof = True
        buf += d


def send_streaming(sock, pieces, timeout=120):
    """Send pieces one after the other while watching the socket for an early answer.
    Returns (bytes sent, bytes received, how): how is 'sent_all' (everything written),
    'answered' (a response head arrived first), 'closed' (EOF), 'reset' (EPIPE/ECONNRESET)
    or 'timeout'."""
    sock.setblocking(False)
    received = b""
    sent = 0
    it = iter(pieces)
    cur = memoryview(b"")
    deadline = time.monotonic() + timeout
    how = None
    while how is None:
        if time.monotonic() > deadline:
            how = "timeout"
            break
        if not cur:
            try:
                cur = memoryview(next(it))
            except StopIteration:
                how = "sent_all"
                break
        r, w, _ = select.select([sock], [sock], [], 0.5)
        if r:
            try:
                d = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                how = "reset"
                break
            if not d:
                how = "closed"
                break
            received += d
            if b"\r\n\r\n" in received:
                how = "answered"
                break
        if w:
            try:
                n = sock.send(cur)
                sent += n
                cur = cur[n:]
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                how = "reset"
                break
    if how == "reset":
        # The answer may already be in our receive buffer.
        try:
            received += sock.recv(65536)
        except OSError:
            pass
    sock.setblocking(True)
    return sent, received, how


def repeat(chunk, total):
    """Pieces of `chunk` adding up to total bytes."""
    mv = memoryview(chunk)
    left = total
    while left > 0:
        n = min(left, len(mv))
        yield mv[:n]
        left -= n


def chunked(chunk, total):
    """A chunked transfer coding of `total` bytes of body, ending with the last chunk."""
    left = total
    while left > 0:
        n = min(left, len(chunk))
        yield b"%x\r\n" % n + bytes(chunk[:n]) + b"\r\n"
        left -= n
    yield b"0\r\n\r\n"
