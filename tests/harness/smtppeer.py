"""Scripted SMTP peers for exact behaviours, on real loopback sockets.

SmtpPeer runs aiosmtpd in its own thread and records what it receives:

    p = SmtpPeer("accept")                                  # 250 to everything
    p = SmtpPeer("reject_rcpt", rcpts={"bob@x.test"})       # 550 for those RCPTs, 250 others
    p = SmtpPeer("tempfail_then_accept", times=1)           # 451 at end of DATA once, then 250
    p = SmtpPeer("tempfail_then_accept", phase="rcpt")      # 451 at RCPT for the first try of each rcpt
    p = SmtpPeer("drop_in_data")                            # 354, then close after one line of content
    p = SmtpPeer("drop_in_data", when="dot")                # read the whole message, close without reply
    p = SmtpPeer("stall", phase="data", seconds=3600)      # no reply in that phase (mail|rcpt|data|dot)
    p.host, p.port, p.messages, p.wait_messages(1), p.stop()

RawPeer is a line-scripted server for what an SMTP library cannot do (stall before the
greeting, send bytes right after 220, answer garbage):

    r = RawPeer([("send", b"220 hi\\r\\n"), ("send", b"250 early\\r\\n"), ("expect", b"EHLO"),
                 ("sleep", 3600)])
"""
import asyncio
import socket
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from . import ports


class Received:
    """One message a peer accepted (or read entirely before dropping)."""

    def __init__(self, mail_from, rcpt_tos, data, peer, acknowledged):
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.data = data
        self.peer = peer
        self.acknowledged = acknowledged
        self.at = time.time()

    def __repr__(self):
        return "<Received from=%s to=%s %d bytes%s>" % (self.mail_from, self.rcpt_tos,
                                                         len(self.data),
                                                         "" if self.acknowledged else " (dropped)")


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        p = self.peer
        p._event("mail", address)
        if p.behaviour == "stall" and p.opts.get("phase") == "mail":
            await asyncio.sleep(p.opts.get("seconds", 3600))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        p = self.peer
        p._event("rcpt", address)
        if p.behaviour == "stall" and p.opts.get("phase") == "rcpt":
            await asyncio.sleep(p.opts.get("seconds", 3600))
        if p.behaviour == "reject_rcpt" and address.lower() in p.reject:
            return p.opts.get("reply", "550 5.1.1 <%s>: Recipient address rejected" % address)
        if p.behaviour == "tempfail_then_accept" and p.opts.get("phase") == "rcpt":
            with p.lock:
                n = p._tempfailed.get(address.lower(), 0)
                if n < p.opts.get("times", 1):
                    p._tempfailed[address.lower()] = n + 1
                    return p.opts.get("reply", "451 4.3.0 Try again later")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        p = self.peer
        msg = Received(envelope.mail_from, envelope.rcpt_tos, bytes(envelope.original_content or
                                                                    envelope.content),
                       session.peer, acknowledged=True)
        if p.behaviour == "stall" and p.opts.get("phase") == "dot":
            await asyncio.sleep(p.opts.get("seconds", 3600))
        if p.behaviour == "drop_in_data" and p.opts.get("when") == "dot":
            msg.acknowledged = False
            with p.lock:
                p.dropped.append(msg)
            server.transport.abort()
            return "421 4.4.2 dropped"  # never written: the transport is gone
        if p.behaviour == "tempfail_then_accept" and p.opts.get("phase", "data") == "data":
            with p.lock:
                if p._tempfailed.get("*", 0) < p.opts.get("times", 1):
                    p._tempfailed["*"] = p._tempfailed.get("*", 0) + 1
                    p._event("tempfail", envelope.rcpt_tos)
                    return p.opts.get("reply", "451 4.3.0 Try again later")
        with p.lock:
            p.messages.append(msg)
            p._cond.notify_all()
        p._event("data", len(msg.data))
        return "250 2.0.0 OK queued"


class _SMTP(SMTP):
    def __init__(self, handler, peer, **kw):
        super().__init__(handler, **kw)
        self._peer = peer

    def connection_made(self, transport):
        super().connection_made(transport)
        self._peer._event("connect", transport.get_extra_info("peername"))

    async def smtp_DATA(self, arg):
        p = self._peer
        if p.behaviour == "stall" and p.opts.get("phase") == "data":
            await asyncio.sleep(p.opts.get("seconds", 3600))
        if p.behaviour == "drop_in_data" and p.opts.get("when", "354") == "354" \
                and self.envelope.rcpt_tos and not arg:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await asyncio.wait_for(self._reader.readuntil(b"\r\n"), 30)
            except Exception:
                pass
            p._event("drop", "after 354")
            self.transport.abort()
            return
        return await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, peer, **kw):
        self._peer = peer
        super().__init__(_Handler(peer), **kw)

    def factory(self):
        return _SMTP(self.handler, self._peer, **self.SMTP_kwargs)


class SmtpPeer:
    BEHAVIOURS = ("accept", "reject_rcpt", "tempfail_then_accept", "drop_in_data", "stall")

    def __init__(self, behaviour="accept", host="127.0.0.1", port=None, hostname="peer.test",
                 rcpts=(), data_size_limit=None, smtputf8=True, **opts):
        if behaviour not in self.BEHAVIOURS:
            raise ValueError(behaviour)
        self.behaviour = behaviour
        self.opts = opts
        self.reject = {r.lower() for r in rcpts}
        self.host = host
        self.port = port or ports.free_port(host)
        self.messages = []   # acknowledged with 250
        self.dropped = []    # read to the end, then the connection was dropped (no reply)
        self.events = []     # (time, kind, detail): connect, mail, rcpt, data, tempfail, drop
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._tempfailed = {}
        self.controller = _Controller(self, hostname=host, port=self.port, server_hostname=hostname,
                                      data_size_limit=data_size_limit, enable_SMTPUTF8=smtputf8,
                                      ready_timeout=10)
        self.controller.start()
        # The controller's own readiness probe counts as a connection; forget it.
        with self.lock:
            self.events.clear()

    def _event(self, kind, detail=None):
        with self.lock:
            self.events.append((time.time(), kind, detail))

    def connections(self):
        with self.lock:
            return sum(1 for e in self.events if e[1] == "connect")

    def wait_messages(self, n, timeout=30.0):
        """Block until at least n messages were accepted; returns them."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("peer %s:%d got %d of %d messages; events: %r" %
                                       (self.host, self.port, len(self.messages), n, self.events))
                self._cond.wait(left)
            return list(self.messages)

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)


class RawPeer:
    """A TCP server that plays `script` to each connection, in a thread per connection.
    Steps: ("send", bytes) | ("expect", prefix bytes: read one line, record it) |
    ("read_until", bytes) | ("sleep", seconds) | ("close",). After the script the
    connection is closed. Lines read are recorded in .lines."""

    def __init__(self, script, host="127.0.0.1", port=None):
        self.script = list(script)
        self.host = host
        self.port = port or ports.free_port(host)
        self.lines = []
        self.connections = 0
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._play, args=(c,), daemon=True).start()

    def _play(self, c):
        buf = b""
        try:
            c.settimeout(60)
            for step in self.script:
                if self._stop.is_set():
                    break
                kind = step[0]
                if kind == "send":
                    c.sendall(step[1])
                elif kind in ("expect", "read_until"):
                    end = b"\r\n" if kind == "expect" else step[1]
                    while end not in buf:
                        d = c.recv(65536)
                        if not d:
                            return
                        buf += d
                    line, buf = buf.split(end, 1)
                    self.lines.append(line)
                elif kind == "sleep":
                    self._stop.wait(step[1])
                elif kind == "close":
                    break
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self._stop.set()
        self.sock.close()
        self.thread.join(2)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)
