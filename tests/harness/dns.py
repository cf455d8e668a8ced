"""DNS for tests: dnsmasq serving the records a test gives, a scripted responder for answers
dnsmasq cannot give (SERVFAIL, silence), and a minimal query client to check both.

    d = Dnsmasq(base_dir, mx=[("shop.test", "mx1.shop.test", 10)],
                hosts=[("mx1.shop.test", "127.0.0.2")],
                txt=[("sel._domainkey.shop.test", "v=DKIM1; k=rsa; p=...")])
    d.server            # "127.0.0.1:PORT" for POSTHORN_DNS_SERVER
    query(d.server, "shop.test", "MX")   # -> (rcode, [(type, value), ...])

    s = ScriptedDns(default="SERVFAIL", rules={"slow.test": "DROP", "ok.test": ("A", "127.0.0.3")})
    s.server; s.queries; s.stop()
"""
import os
import random
import shutil
import socket
import struct
import threading

from . import ports, procs

DNSMASQ = "/usr/sbin/dnsmasq"

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
QTYPE_NAMES = {v: k for k, v in QTYPES.items()}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}


class Dnsmasq:
    """dnsmasq in the foreground on 127.0.0.1 (or `address`) with only the given records.

    mx:    [(domain, target, preference)]
    hosts: [(name, address, ...)]   A and/or AAAA records (and PTRs)
    txt:   [(name, text)]           text longer than 255 bytes is split by dnsmasq
    local: domains answered NXDOMAIN when no record matches (default: the record domains' parents)
    """

    def __init__(self, base_dir, mx=(), hosts=(), txt=(), local=None, address="127.0.0.1",
                 port=None, start=True):
        self.base_dir = os.path.abspath(base_dir)
        os.makedirs(self.base_dir, exist_ok=True)
        self.address = address
        self.port = port or ports.free_port(address, udp_too=True)
        self.mx, self.hosts, self.txt = list(mx), list(hosts), list(txt)
        if local is None:
            names = [m[0] for m in self.mx] + [h[0] for h in self.hosts] + [t[0] for t in self.txt]
            local = sorted({n.rstrip(".").split(".")[-1] for n in names if "." in n})
        self.local = list(local)
        self.log_path = os.path.join(self.base_dir, "dnsmasq.log")
        self.pid_file = os.path.join(self.base_dir, "dnsmasq.pid")
        self.proc = None
        if start:
            self.start()

    @property
    def server(self):
        return "%s:%d" % (self.address, self.port)

    def argv(self):
        # Records go in a config file: there dnsmasq honours quotes (TXT text with commas).
        conf = os.path.join(self.base_dir, "records.conf")
        lines = []
        for dom in self.local:
            lines.append("local=/%s/" % dom)
        for domain, target, pref in self.mx:
            lines.append("mx-host=%s,%s,%d" % (domain, target, pref))
        for h in self.hosts:
            lines.append("host-record=%s" % ",".join(h))
        for name, text in self.txt:
            lines.append("txt-record=%s,\"%s\"" % (name, text.replace("\\", "\\\\")
                                                      .replace("\"", "\\\"")))
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        a = [DNSMASQ, "--keep-in-foreground", "--conf-file=%s" % conf, "--no-resolv", "--no-hosts",
             "--no-poll", "--listen-address=%s" % self.address, "--port=%d" % self.port,
             "--bind-interfaces", "--pid-file=%s" % self.pid_file, "--log-queries",
             "--log-facility=-", "--cache-size=0"]
        a.append("--user=%s" % ("root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")))
        return a

    def start(self, timeout=20.0):
        if self.proc is not None and self.proc.alive():
            return self
        self.proc = procs.Proc("dnsmasq:%d" % self.port, self.argv(), self.log_path).start()

        def ready():
            if not self.proc.alive():
                raise RuntimeError("dnsmasq exited:\n" + self.proc.log()[-3000:])
            try:
                query(self.server, "ready.invalid", "A", timeout=0.3)
                return True
            except (socket.timeout, OSError):
                return False
        procs.wait_for(ready, timeout=timeout, interval=0.05, what="dnsmasq to answer")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


# --- wire format ----------------------------------------------------------------------------
def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("idna") if any(ord(c) > 127 for c in label) else label.encode()
            out += bytes([len(b)]) + b
    return out + b"\0"


def _decode_name(msg, off):
    labels, jumped, end = [], False, None
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            continue
        if n == 0:
            off += 1
            break
        labels.append(msg[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    return ".".join(labels), (end if jumped else off)


def build_query(name, qtype="A", qid=None):
    qid = random.randrange(65536) if qid is None else qid
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + \
        struct.pack(">HH", QTYPES[qtype], 1)


def parse_question(msg):
    """(id, flags, qname, qtype, end offset of the question) of a query."""
    qid, flags, qd = struct.unpack(">HHH", msg[:6])
    if qd < 1:
        raise ValueError("no question")
    name, off = _decode_name(msg, 12)
    qtype, _qclass = struct.unpack(">HH", msg[off:off + 4])
    return qid, flags, name, qtype, off + 4


def parse_response(msg):
    """(rcode, [(type name, value)]) for the answer section of a response."""
    qid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        _, off = _decode_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        tname = QTYPE_NAMES.get(rtype, str(rtype))
        if rtype == 1:
            val = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            val = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == 15:
            pref = struct.unpack(">H", rdata[:2])[0]
            val = (pref, _decode_name(msg, off + 2)[0])
        elif rtype == 16:
            parts, i = [], 0
            while i < len(rdata):
                parts.append(rdata[i + 1:i + 1 + rdata[i]].decode("utf-8", "replace"))
                i += 1 + rdata[i]
            val = "".join(parts)
        elif rtype == 5:
            val = _decode_name(msg, off)[0]
        else:
            val = rdata
        answers.append((tname, val))
        off += rdlen
    return flags & 0xF, answers


def query(server, name, qtype="A", timeout=2.0):
    """Ask server ("host:port") one question over UDP; (rcode, answers). Loopback only."""
    host, port = server.rsplit(":", 1)
    if not (host.startswith("127.") or host == "::1"):
        raise ValueError("tests only talk to loopback, not %s" % host)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    q = build_query(name, qtype)
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (host, int(port)))
        while True:
            data, _ = s.recvfrom(4096)
            if data[:2] == q[:2]:
                return parse_response(data)


class ScriptedDns:
    """A UDP DNS responder in a thread. rules: {qname: action}, action one of
    "SERVFAIL" | "NXDOMAIN" | "REFUSED" | "DROP" (no answer) | ("A"|"AAAA", addr) |
    ("MX", pref, target) | ("TXT", text). Unmatched names get `default`.
    Every query seen is appended to .queries as (qname, qtype name)."""

    def __init__(self, default="SERVFAIL", rules=None, address="127.0.0.1", port=None):
        self.default = default
        self.rules = {k.rstrip(".").lower(): v for k, v in (rules or {}).items()}
        self.address = address
        self.port = port or ports.free_port(address, udp_too=True)
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, self.port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def server(self):
        return "%s:%d" % (self.address, self.port)

    def _answer(self, msg):
        qid, flags, qname, qtype, qend = parse_question(msg)
        self.queries.append((qname, QTYPE_NAMES.get(qtype, str(qtype))))
        action = self.rules.get(qname.lower(), self.default)
        if action == "DROP":
            return None
        rd = flags & 0x0100
        question = msg[12:qend]
        if isinstance(action, str):
            hdr = struct.pack(">HHHHHH", qid, 0x8000 | 0x0400 | rd | RCODES[action], 1, 0, 0, 0)
            return hdr + question
        kind = action[0]
        if QTYPES[kind] != qtype:
            return struct.pack(">HHHHHH", qid, 0x8400 | rd, 1, 0, 0, 0) + question
        if kind == "A":
            rdata = socket.inet_pton(socket.AF_INET, action[1])
        elif kind == "AAAA":
            rdata = socket.inet_pton(socket.AF_INET6, action[1])
        elif kind == "MX":
            rdata = struct.pack(">H", action[1]) + _encode_name(action[2])
        else:
            t = action[1].encode()
            rdata = b"".join(bytes([len(t[i:i + 255])]) + t[i:i + 255] for i in range(0, len(t), 255))
        rr = b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
        return struct.pack(">HHHHHH", qid, 0x8400 | rd, 1, 1, 0, 0) + question + rr

    def _serve(self):
        while not self._stop.is_set():
            try:
                msg, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                resp = self._answer(msg)
            except Exception:  # malformed query: ignore it, like a resolver would
                continue
            if resp is not None:
                self.sock.sendto(resp, peer)

    def stop(self):
        self._stop.set()
        self.thread.join(2)
        self.sock.close()
