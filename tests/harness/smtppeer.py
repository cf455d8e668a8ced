"""Scripted SMTP peers for exact behaviours, on real loopback sockets.

SmtpPeer runs aiosmtpd in its own thread and records what it receives:

    p = SmtpPeer("accept")                                  # 250 to everything
    p = SmtpPeer("reject_rcpt", rcpts={"bob@x.test"})       # 550 for those RCPTs, 250 others
    p = SmtpPeer("tempfail_then_accept", times=1)           # 451 at end of DATA once, then 250
    p = SmtpPeer("tempfail_then_accept", phase="rcpt")      # 451 at RCPT for the first try of each rcpt
    p = SmtpPeer("tempfail_then_accept", phase="rcpt", only={"c@x.test"}, reply="452 4.5.3 Too many")
    p = SmtpPeer("drop_in_data")                            # 354, then close after one line of content
    p = SmtpPeer("drop_in_data", when="dot")                # read the whole message, close without reply
    p = SmtpPeer("stall", phase="data", seconds=3600)      # no reply in that phase (mail|rcpt|data|dot)
    p = SmtpPeer("stall", phase="dot", seconds=0.3)         # a slow peer: waits, then accepts
    p.host, p.port, p.messages, p.wait_messages(1), p.stop()

drop_in_data and stall take times=N: misbehave on the first N occasions, then behave (accept).
Every connection gets a number; each Received has .conn, and p.sessions[conn] is a
SessionRecord (peer, helo, tls, auth, transactions, rsets, closed). Optional for any peer:
tls_context= (offers STARTTLS; see tls_server_context), auth={"user": "pass"} (AUTH required
before MAIL; auth_mechanisms=("LOGIN",) limits what is offered; auth_require_tls=False allows
AUTH in plaintext), smtputf8=False (SMTPUTF8 not offered), starttls_reply="454 4.7.0 ..."
(STARTTLS offered with a tls_context but refused with that reply), greeting_delay=seconds
(before the 220). The behaviour attribute may be
changed while the peer runs (e.g. p.behaviour = "accept").

RawPeer is a line-scripted server for what an SMTP library cannot do (stall before the
greeting, send bytes right after 220, answer garbage):

    r = RawPeer([("send", b"220 hi\\r\\n"), ("send", b"250 early\\r\\n"), ("expect", b"EHLO"),
                 ("sleep", 3600)])
    ("record", seconds) reads whatever the client sends for that long (or until it closes)
    into .received.
"""
import asyncio
import itertools
import socket
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from . import ports
from .mta import self_signed_cert  # noqa: F401 (re-exported)


class Received:
    """One message a peer accepted (or read entirely before dropping)."""

    def __init__(self, mail_from, rcpt_tos, data, peer, acknowledged):
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.data = data
        self.peer = peer
        self.acknowledged = acknowledged
        self.at = time.time()
        self.conn = None      # the connection number (SmtpPeer.sessions)
        self.tls = None       # the TLS version of the session, if any

    def __repr__(self):
        return "<Received from=%s to=%s %d bytes%s>" % (self.mail_from, self.rcpt_tos,
                                                         len(self.data),
                                                         "" if self.acknowledged else " (dropped)")


class SessionRecord:
    """What a peer saw on one connection."""

    def __init__(self, conn, peer):
        self.conn = conn
        self.peer = peer
        self.opened = time.time()
        self.closed = None
        self.helo = None
        self.tls = None          # e.g. "TLSv1.3" after STARTTLS
        self.auth = []           # (mechanism, login, success)
        self.transactions = []   # Received, in order (acknowledged ones)
        self.rsets = 0
        self.mails = 0

    def __repr__(self):
        return "<Session %d %s tls=%s mails=%d transactions=%d rsets=%d%s>" % (
            self.conn, self.peer, self.tls, self.mails, len(self.transactions), self.rsets,
            "" if self.closed is None else " closed")


def tls_server_context(cert_dir, cn="peer.test"):
    """An SSLContext for a server with a self-signed certificate made in cert_dir (reused)."""
    cert, key = self_signed_cert(cert_dir, cn)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        rec = self.peer._session(session)
        if rec is not None:
            rec.helo = hostname
        return responses

    async def handle_RSET(self, server, session, envelope):
        p = self.peer
        p._event("rset", getattr(session, "ph_conn", None))
        rec = p._session(session)
        if rec is not None:
            with p.lock:
                rec.rsets += 1
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        p = self.peer
        p._event("mail", address)
        rec = p._session(session)
        if rec is not None:
            with p.lock:
                rec.mails += 1
        if p.behaviour == "stall" and p.opts.get("phase") == "mail" and p._misbehave():
            await asyncio.sleep(p.opts.get("seconds", 3600))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        p = self.peer
        p._event("rcpt", address)
        if p.behaviour == "stall" and p.opts.get("phase") == "rcpt" and p._misbehave():
            await asyncio.sleep(p.opts.get("seconds", 3600))
        if p.behaviour == "reject_rcpt" and address.lower() in p.reject:
            return p.opts.get("reply", "550 5.1.1 <%s>: Recipient address rejected" % address)
        if p.behaviour == "tempfail_then_accept" and p.opts.get("phase") == "rcpt" and (
                p.only is None or address.lower() in p.only):
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
        msg.conn = getattr(session, "ph_conn", None)
        rec = p._session(session)
        if rec is not None:
            msg.tls = rec.tls
        if p.behaviour == "stall" and p.opts.get("phase") == "dot" and p._misbehave():
            await asyncio.sleep(p.opts.get("seconds", 3600))
            if server.transport is None or server.transport.is_closing():
                # The client gave up (or died) while we stalled: never acknowledged.
                msg.acknowledged = False
                with p.lock:
                    p.dropped.append(msg)
                p._event("drop", "client gone during stall")
                return "421 4.4.2 too late"
        if p.behaviour == "drop_in_data" and p.opts.get("when") == "dot" and p._misbehave():
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
            if rec is not None:
                rec.transactions.append(msg)
            p._cond.notify_all()
        p._event("data", len(msg.data))
        return "250 2.0.0 OK queued"


class _SMTP(SMTP):
    def __init__(self, handler, peer, **kw):
        super().__init__(handler, **kw)
        self._peer = peer

    def connection_made(self, transport):
        after_starttls = self._original_transport is not None
        conn = getattr(self.session, "ph_conn", None) if after_starttls else None
        super().connection_made(transport)
        p = self._peer
        if after_starttls:
            # aiosmtpd makes a new session after STARTTLS: same connection number.
            self.session.ph_conn = conn
            rec = p._session(self.session)
            if rec is not None:
                ssl_obj = transport.get_extra_info("ssl_object")
                rec.tls = ssl_obj.version() if ssl_obj is not None else "TLS"
            p._event("starttls", conn)
            return
        conn = next(p._conn_ids)
        self.session.ph_conn = conn
        peer = transport.get_extra_info("peername")
        with p.lock:
            p.sessions[conn] = SessionRecord(conn, peer)
        p._event("connect", peer)

    def connection_lost(self, exc):
        p = self._peer
        rec = p._session(self.session) if self.session is not None else None
        if rec is not None:
            rec.closed = time.time()
        super().connection_lost(exc)

    async def _handle_client(self):
        delay = self._peer.opts.get("greeting_delay")
        if delay and self._original_transport is None:
            await asyncio.sleep(delay)
        return await super()._handle_client()

    async def smtp_STARTTLS(self, arg):
        p = self._peer
        reply = p.opts.get("starttls_reply")
        if reply:
            p._event("starttls_refused", reply)
            await self.push(reply)
            return
        return await super().smtp_STARTTLS(arg)

    async def smtp_DATA(self, arg):
        p = self._peer
        if p.behaviour == "stall" and p.opts.get("phase") == "data" and p._misbehave():
            await asyncio.sleep(p.opts.get("seconds", 3600))
        if p.behaviour == "drop_in_data" and p.opts.get("when", "354") == "354" \
                and self.envelope.rcpt_tos and not arg and p._misbehave():
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
                 rcpts=(), data_size_limit=None, smtputf8=True, tls_context=None, auth=None,
                 auth_mechanisms=None, auth_require_tls=True, **opts):
        if behaviour not in self.BEHAVIOURS:
            raise ValueError(behaviour)
        self.behaviour = behaviour
        self.opts = opts
        self.reject = {r.lower() for r in rcpts}
        only = opts.pop("only", None)   # tempfail_then_accept at RCPT: only these addresses
        self.only = None if only is None else {r.lower() for r in only}
        self.host = host
        self.port = port or ports.free_port(host)
        self.messages = []   # acknowledged with 250
        self.dropped = []    # read to the end, then the connection was dropped (no reply)
        self.events = []     # (time, kind, detail): connect, mail, rcpt, data, tempfail, drop,
        #                      rset, starttls, auth
        self.sessions = {}   # connection number -> SessionRecord
        self.auth_users = dict(auth or {})
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._tempfailed = {}
        self._misbehaved = 0
        self._conn_ids = itertools.count(1)
        kw = dict(server_hostname=hostname, data_size_limit=data_size_limit,
                  enable_SMTPUTF8=smtputf8, ready_timeout=10)
        if tls_context is not None:
            kw["tls_context"] = tls_context
        if auth is not None:
            kw.update(authenticator=self._authenticate, auth_required=True,
                      auth_require_tls=auth_require_tls)
            if auth_mechanisms is not None:
                offered = {m.upper() for m in auth_mechanisms}
                kw["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m not in offered]
        self.controller = _Controller(self, hostname=host, port=self.port, **kw)
        self.controller.start()
        # The controller's own readiness probe counts as a connection; forget it.
        with self.lock:
            self.events.clear()
            self.sessions.clear()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = password = None
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
        ok = login is not None and self.auth_users.get(login) == password
        rec = self._session(session)
        if rec is not None:
            with self.lock:
                rec.auth.append((mechanism, login, ok))
        self._event("auth", (mechanism, login, ok))
        return AuthResult(success=ok, handled=False)

    def _session(self, session):
        conn = getattr(session, "ph_conn", None)
        with self.lock:
            return self.sessions.get(conn)

    def _misbehave(self):
        """Whether to misbehave now: always without times=N, else the first N occasions."""
        times = self.opts.get("times")
        if times is None:
            return True
        with self.lock:
            if self._misbehaved < times:
                self._misbehaved += 1
                return True
            return False

    def session_list(self):
        with self.lock:
            return [self.sessions[k] for k in sorted(self.sessions)]

    def rcpts_seen(self):
        """Every RCPT address the peer was given (accepted or not), in order."""
        with self.lock:
            return [e[2] for e in self.events if e[1] == "rcpt"]

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
    ("read_until", bytes) | ("sleep", seconds) | ("drip", bytes, delay: one byte at a time) |
    ("record", seconds: read what arrives for
    that long or until EOF into .received) | ("close",). After the script the
    connection is closed. Lines read are recorded in .lines."""

    def __init__(self, script, host="127.0.0.1", port=None):
        self.script = list(script)
        self.host = host
        self.port = port or ports.free_port(host)
        self.lines = []
        self.received = b""
        self.connections = 0
        self.finished = 0     # connections whose script ended (or whose client went away)
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
                elif kind == "drip":
                    for i in range(len(step[1])):
                        c.sendall(step[1][i:i + 1])
                        self._stop.wait(step[2] if len(step) > 2 else 0.002)
                elif kind == "record":
                    end = time.monotonic() + step[1]
                    got = buf
                    buf = b""
                    while not self._stop.is_set() and time.monotonic() < end:
                        c.settimeout(max(0.05, min(0.2, end - time.monotonic())))
                        try:
                            d = c.recv(65536)
                        except socket.timeout:
                            continue
                        if not d:
                            break
                        got += d
                    self.received += got
                elif kind == "close":
                    break
        except OSError:
            pass
        finally:
            c.close()
            self.finished += 1

    def stop(self):
        self._stop.set()
        self.sock.close()
        self.thread.join(2)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)
