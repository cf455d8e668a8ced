"""Mail servers for tests and benchmarks, all on loopback and all private to one run.

  SmtpSink        - Postfix's smtp-sink: a fast SMTP server that counts (and optionally dumps)
                    what it receives; exact message count from its -c counters.
  run_smtp_source - Postfix's smtp-source: a parallel SMTP client sending N generated messages.
  PostfixInstance - a private Postfix (own config, queue and data directories, own ports) that
                    relays everything to one next hop; never the system's default instance.
  OpenDkim        - Debian's opendkim milter signing rsa-sha256 with a key made for the run.
  self_signed_cert - a throwaway certificate and key (openssl) for STARTTLS servers.

Everything runs as root-started processes that drop privileges the usual way (smtp-sink
-u nobody, Postfix mail_owner postfix, opendkim UserID opendkim).
"""
import os
import re
import shutil
import subprocess
import time

from .ports import free_port
from .procs import Proc, wait_tcp, wait_for

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"
OPENDKIM = "/usr/sbin/opendkim"
OPENDKIM_GENKEY = "/usr/sbin/opendkim-genkey"

_COUNTER = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)\r")


def _register_log(label, path):
    """Let the e2e conftest attach this log to a failed test's report."""
    try:
        from .posthorn import register_log
    except Exception:  # the benchmark runner may load this module alone
        return
    register_log(label, path)


def _traversable(path):
    """Let other users (postfix, opendkim, nobody) reach path: add search (x) permission to
    it and every parent that lacks it, e.g. pytest's 0700 /tmp/pytest-of-root."""
    path = os.path.abspath(path)
    while path not in ("/", ""):
        st = os.stat(path)
        if not st.st_mode & 0o001:
            os.chmod(path, (st.st_mode & 0o7777) | 0o011)
        path = os.path.dirname(path)


def _mkdir(path, mode=0o755, owner=None):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None and os.geteuid() == 0:
        shutil.chown(path, *owner)
    return path


class SmtpSink:
    """smtp-sink on host:port. Counts messages with -c (counters written on every '.', QUIT
    and session end); count() reads the last counter line from its output file.

    dump_dir: write each message to a file there (-d), slows it down a lot; see messages().
    data_delay: seconds to wait before answering DATA (-w).
    hard_reject / soft_reject: commands answered 5xx / 4xx (-f / -r), e.g. ["RCPT"].
    max_conn: simultaneous connections handled (-m); excess wait in the listen queue.
    """

    def __init__(self, run_dir, host="127.0.0.1", port=None, max_conn=1000, backlog=1024,
                 dump_dir=None, data_delay=None, hard_reject=(), soft_reject=(),
                 hostname="smtp-sink.test", extra_args=(), name="smtp-sink"):
        self.run_dir = run_dir
        self.host = host
        self.port = port or free_port(host)
        self.max_conn = max_conn
        self.backlog = backlog
        self.dump_dir = dump_dir
        self.data_delay = data_delay
        self.hard_reject = list(hard_reject)
        self.soft_reject = list(soft_reject)
        self.hostname = hostname
        self.extra_args = list(extra_args)
        self.name = name
        self.out_path = os.path.join(run_dir, "%s-%d.out" % (name, self.port))
        self.proc = None

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def argv(self):
        a = [SMTP_SINK, "-c", "-4", "-m", str(self.max_conn), "-h", self.hostname]
        if os.geteuid() == 0:
            a += ["-u", "nobody"]
        if self.dump_dir:
            # smtp-sink writes as nobody: the directory must be writable by it.
            _mkdir(self.dump_dir, 0o777)
            _traversable(self.dump_dir)
            a += ["-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S.")]
        if self.data_delay is not None:
            a += ["-w", str(self.data_delay)]
        if self.hard_reject:
            a += ["-f", ",".join(self.hard_reject)]
        if self.soft_reject:
            a += ["-r", ",".join(self.soft_reject)]
        a += self.extra_args
        a += ["inet:%s:%d" % (self.host, self.port), str(self.backlog)]
        return a

    def start(self):
        os.makedirs(self.run_dir, exist_ok=True)
        # Counters (stdout) and any complaint (stderr) share one file; count() only looks
        # for counter records.
        self.proc = Proc(self.name, self.argv(), self.out_path).start()
        _register_log("%s :%d" % (self.name, self.port), self.out_path)
        wait_tcp(self.host, self.port, proc=self.proc)
        # wait_tcp opened and closed a session: counters now read sess=1.
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def counters(self):
        """(sessions, quits, messages) from the last complete counter record."""
        try:
            with open(self.out_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                # Usually the last record is in the last few bytes; a warning printed after
                # it can push it further back.
                for window in (512, 65536, size):
                    f.seek(max(0, size - window))
                    m = None
                    for m in _COUNTER.finditer(f.read()):
                        pass
                    if m is not None:
                        return tuple(int(x) for x in m.groups())
                    if window >= size:
                        break
        except FileNotFoundError:
            pass
        return (0, 0, 0)

    def count(self):
        """Messages received so far (DATA completed with '.')."""
        return self.counters()[2]

    def wait_count(self, n, timeout=60.0, interval=0.05):
        return wait_for(lambda: self.count() >= n and self.count(), timeout=timeout,
                        interval=interval, what="%s to count %d messages" % (self.name, n))

    def messages(self):
        """Dumped messages (with dump_dir) as bytes, oldest first, smtp-sink's own X-* and
        Received header lines removed, line ends CRLF."""
        if not self.dump_dir:
            raise RuntimeError("SmtpSink started without dump_dir")
        out = []
        for fn in sorted(os.listdir(self.dump_dir), key=lambda n: os.stat(
                os.path.join(self.dump_dir, n)).st_mtime_ns):
            with open(os.path.join(self.dump_dir, fn), "rb") as f:
                out.append(strip_sink_headers(f.read()))
        return out


def strip_sink_headers(raw):
    """A smtp-sink dump file -> the message as received: drop the X-Client-*, X-Helo-Args,
    X-Mail-Args, X-Rcpt-Args lines and the three-line Received header smtp-sink adds."""
    lines = raw.split(b"\n")
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-"):
        i += 1
    if i < len(lines) and lines[i].startswith(b"Received: ") and b"(smtp-sink)" in b"".join(lines[i:i + 3]):
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    body = lines[i:]
    # smtp-sink appends one empty line after each message.
    if body and body[-1] == b"":
        body = body[:-1]
    if body and body[-1] == b"":
        body = body[:-1]
    return b"\r\n".join(body) + b"\r\n"


class SourceResult:
    def __init__(self, returncode, elapsed, utime, stime, maxrss_kb, output):
        self.returncode = returncode
        self.elapsed = elapsed
        self.utime = utime
        self.stime = stime
        self.maxrss_kb = maxrss_kb
        self.output = output

    def __repr__(self):
        return "SourceResult(rc=%s, elapsed=%.3f)" % (self.returncode, self.elapsed)


def smtp_source_argv(host, port, count, size=2048, sessions=20, sender="bench@sender.test",
                     recipient="rcpt@receiver.test", subject="posthorn bench", helo="source.test",
                     recipients_per_msg=1, reuse_connection=False, numbered=False,
                     message_file=None, counter=False, extra_args=()):
    a = [SMTP_SOURCE, "-4", "-m", str(count), "-s", str(sessions), "-f", sender, "-t", recipient,
         "-M", helo, "-r", str(recipients_per_msg)]
    if message_file:
        a += ["-F", message_file]
    else:
        a += ["-l", str(size)]
        if subject:
            a += ["-S", subject]
    if reuse_connection:
        a.append("-d")
    if numbered:
        a.append("-N")
    if counter:
        a.append("-c")
    a += list(extra_args)
    a.append("inet:%s:%d" % (host, port))
    return a


class SmtpSource:
    """smtp-source running in the background with its -c counter, so progress() can be
    sampled while it runs. wait() returns a SourceResult with wall time, CPU and peak RSS."""

    def __init__(self, host, port, count, log_path, **kw):
        self.argv = smtp_source_argv(host, port, count, counter=True, **kw)
        self.count = count
        self.log_path = log_path
        self.p = None
        self.t0 = None
        self.result = None

    def start(self):
        out = open(self.log_path, "wb")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        out.close()
        return self

    def progress(self):
        """Messages whose DATA completed so far (last -c counter value)."""
        try:
            with open(self.log_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 64))
                tail = f.read()
        except FileNotFoundError:
            return 0
        nums = re.findall(rb"(\d+)\r", tail)
        return int(nums[-1]) if nums else 0

    def poll(self):
        """The SourceResult once smtp-source has exited, else None."""
        if self.result is None:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                self._done(status, ru)
        return self.result

    def _done(self, status, ru):
        elapsed = time.monotonic() - self.t0
        self.p.returncode = os.waitstatus_to_exitcode(status)
        with open(self.log_path, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        # Keep only what is not counter noise.
        output = re.sub(r"(\d+\r)+", "", output)
        self.result = SourceResult(self.p.returncode, elapsed, ru.ru_utime, ru.ru_stime,
                                   ru.ru_maxrss, output)

    def wait(self, timeout=600.0, interval=0.005):
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                break
            time.sleep(interval)
        return self.result

    def kill(self):
        if self.result is None and self.p is not None:
            self.p.kill()
            _pid, status, ru = os.wait4(self.p.pid, 0)
            self._done(status, ru)


def run_smtp_source(host, port, count, timeout=600.0, log_path=None, **kw):
    """Run smtp-source to completion: N messages of `size` payload bytes over `sessions`
    parallel sessions (see smtp_source_argv). Returns a SourceResult with wall time and the
    client's own CPU time and peak RSS (from wait4)."""
    if log_path is None:
        import tempfile
        fd, log_path = tempfile.mkstemp(prefix="smtp-source-", suffix=".log")
        os.close(fd)
        try:
            return SmtpSource(host, port, count, log_path, **kw).start().wait(timeout)
        finally:
            os.unlink(log_path)
    return SmtpSource(host, port, count, log_path, **kw).start().wait(timeout)


def self_signed_cert(cert_dir, cn="peer.test"):
    """(cert path, key path): an RSA-2048 self-signed certificate for cn made in cert_dir
    (reused when it is already there). The key is readable by all: it is a throwaway and
    servers running as other users (Postfix, smtp-sink) must read it."""
    os.makedirs(cert_dir, exist_ok=True)
    cert = os.path.join(cert_dir, "%s.crt" % cn)
    key = os.path.join(cert_dir, "%s.key" % cn)
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=%s" % cn,
                        "-addext", "subjectAltName=DNS:%s" % cn],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.chmod(key, 0o644)
        _traversable(cert_dir)
    return cert, key


# --------------------------------------------------------------------------- Postfix

MASTER_CF = """\
# Private Postfix instance for Posthorn tests/benchmarks. No chroot: nothing is copied
# into the queue directory. Only the services a relay-only instance needs.
# service  type  private unpriv  chroot  wakeup  maxproc command
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# Settings that make the instance private and relay-only. Benchmark tuning goes in `tuning`.
def _base_main_cf(inst):
    return {
        "compatibility_level": "3.6",
        "config_directory": inst.config_dir,
        "queue_directory": inst.queue_dir,
        "data_directory": inst.data_dir,
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "syslog_name": inst.name,
        "maillog_file": inst.log_path,
        "maillog_file_prefixes": inst.base_dir,
        "myhostname": inst.hostname,
        "mydomain": "posthorn.test",
        "myorigin": "$myhostname",
        "inet_interfaces": inst.host,
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "mydestination": "",
        "relay_domains": "",
        "local_recipient_maps": "",
        "local_transport": "error:local delivery disabled",
        "alias_maps": "",
        "alias_database": "",
        "relayhost": inst.relayhost,
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "smtpd_recipient_restrictions": "",
        "smtpd_peername_lookup": "no",
        "smtp_host_lookup": "native",
        "smtp_dns_support_level": "disabled",
        "smtpd_banner": "$myhostname ESMTP",
        "biff": "no",
        "append_dot_mydomain": "no",
        "notify_classes": "",
        "bounce_queue_lifetime": "0",
        "maximal_queue_lifetime": "1h",
        "smtputf8_enable": "no",
        "shlib_directory": "/usr/lib/postfix",
        "daemon_directory": "/usr/lib/postfix/sbin",
        "meta_directory": "/etc/postfix",
        "multi_instance_enable": "no",
    }


class PostfixInstance:
    """A private Postfix: own config_directory (main.cf and master.cf written here), queue
    and data directories under base_dir, smtpd on host:port, no local delivery. Started and
    stopped with `postfix -c DIR`, so /etc/postfix (the system's instance) is never read for
    settings or touched.

    relay: (host, port) every message is relayed to, or None to accept and discard every
           message (a receiving MTA for tests; see the log for what it accepted).
    tuning: extra main.cf parameters (override the defaults; document them when benchmarking).
    milter: "inet:127.0.0.1:PORT" to add as smtpd_milters (see OpenDkim.milter).
    files: {name: content} written to config_dir before start, for maps used through
           tuning, e.g. files={"rcpt_access": "bad@x.test REJECT\n"} with
           tuning={"smtpd_recipient_restrictions": "check_recipient_access "
                   "texthash:" + pf.config_path("rcpt_access")} (texthash needs no postmap).
    tls:   (cert path, key path), e.g. self_signed_cert(dir, hostname): smtpd offers STARTTLS
           (smtpd_tls_security_level=may, logged at level 1; tuning can override).
    reject_rcpts: {address: "550 5.1.1 reply text"} answered at RCPT (check_recipient_access).
    """

    def __init__(self, base_dir, relay, host="127.0.0.1", port=None, milter=None, tuning=None,
                 hostname="postfix.posthorn.test", name="postfix-bench", files=None, tls=None,
                 reject_rcpts=None):
        self.base_dir = os.path.abspath(base_dir)
        self.host = host
        self.port = port or free_port(host)
        self.relay = relay
        self.relayhost = ("[%s]:%d" % tuple(relay)) if relay else ""
        self.milter = milter
        self.tuning = dict(tuning or {})
        self.files = dict(files or {})
        self.tls = tls
        self.reject_rcpts = dict(reject_rcpts or {})
        self.hostname = hostname
        self.name = name
        self.config_dir = os.path.join(self.base_dir, "etc")
        self.queue_dir = os.path.join(self.base_dir, "spool")
        self.data_dir = os.path.join(self.base_dir, "data")
        self.log_path = os.path.join(self.base_dir, "postfix.log")
        self.started = False

    def config_path(self, name):
        return os.path.join(self.config_dir, name)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def main_cf(self):
        conf = _base_main_cf(self)
        if self.host != "127.0.0.1":
            # Postfix accepts only interface addresses here (127.0.0.2 is not one, though the
            # kernel lets anyone bind it); master.cf names the address smtpd listens on.
            conf["inet_interfaces"] = "127.0.0.1"
        if not self.relay:
            conf["default_transport"] = "discard:accepted by a test MTA"
        if self.tls:
            conf.update({
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": self.tls[0],
                "smtpd_tls_key_file": self.tls[1],
                "smtpd_tls_loglevel": "1",
                "smtpd_tls_received_header": "yes",
            })
        if self.reject_rcpts:
            conf["smtpd_recipient_restrictions"] = (
                "check_recipient_access texthash:" + self.config_path("reject_rcpts"))
        if self.milter:
            conf.update({
                "smtpd_milters": self.milter,
                "non_smtpd_milters": self.milter,
                "milter_default_action": "tempfail",
                "milter_protocol": "6",
            })
        conf.update(self.tuning)
        return conf

    def write_config(self):
        # The base directory must be traversable by the postfix user (the master opens its
        # lock file in data_directory with the postfix uid).
        _mkdir(self.base_dir, 0o755)
        _traversable(self.base_dir)
        _mkdir(self.config_dir, 0o755)
        _mkdir(self.queue_dir, 0o755)
        _mkdir(self.data_dir, 0o700, owner=("postfix", "postfix"))
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# Written by tests/harness/mta.py for a private instance.\n")
            for k, v in self.main_cf().items():
                f.write("%s = %s\n" % (k, v))
        files = dict(self.files)
        if self.reject_rcpts:
            files["reject_rcpts"] = "".join("%s %s\n" % (a, r) for a, r in self.reject_rcpts.items())
        for fname, content in files.items():
            with open(self.config_path(fname), "w") as f:
                f.write(content)
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen="%s:%d" % (self.host, self.port)))
        open(self.log_path, "a").close()

    def postfix(self, *args, check=True, timeout=60):
        env = dict(os.environ, MAIL_CONFIG=self.config_dir)
        r = subprocess.run([POSTFIX, "-c", self.config_dir] + list(args), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("postfix %s failed (%d): %s\n%s" % (
                " ".join(args), r.returncode, r.stdout.decode("utf-8", "replace"),
                self.log()[-4000:]))
        return r.stdout.decode("utf-8", "replace")

    def start(self, timeout=30.0):
        self.write_config()
        _register_log("%s :%d" % (self.name, self.port), self.log_path)
        self.postfix("check")
        self.postfix("start")
        self.started = True
        wait_tcp(self.host, self.port, timeout=timeout)
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def stop(self, timeout=30.0):
        if not self.started:
            return
        pid = self.master_pid()
        self.postfix("stop", check=False)
        if pid:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
                time.sleep(0.05)
            if os.path.exists("/proc/%d" % pid):
                self.postfix("abort", check=False)
        self.started = False

    def queue_count(self):
        """Messages still in the queue (incoming, active, deferred, hold, maildrop)."""
        n = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.queue_dir, sub)):
                n += len(files)
        return n

    def flush(self):
        self.postfix("flush", check=False)

    def accepted(self, rcpt=None):
        """Queue ids of messages smtpd accepted and the instance then finished ("status=sent",
        with relay=None: discarded), for rcpt when given: [(queue id, recipient)]."""
        out = []
        for m in re.finditer(r" ([0-9A-F]{6,}): to=<([^>]*)>.*status=sent", self.log()):
            if rcpt is None or m.group(2).lower() == rcpt.lower():
                out.append((m.group(1), m.group(2)))
        return out

    def rejected(self, rcpt=None):
        """smtpd's RCPT rejections logged ("<queue id or NOQUEUE>: reject: RCPT from"), for
        rcpt when given."""
        lines = [ln for ln in self.log().splitlines() if ": reject: RCPT from " in ln]
        if rcpt is not None:
            lines = [ln for ln in lines if ("to=<%s>" % rcpt).lower() in ln.lower()]
        return lines

    def tls_sessions(self):
        """smtpd's "TLS connection established from ..." log lines."""
        return [ln for ln in self.log().splitlines() if "TLS connection established from" in ln]

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- OpenDKIM

class OpenDkim:
    """Debian's opendkim as a signing milter on inet:PORT@host, foreground (-f), running as
    user `opendkim`, with an RSA key (bits, default 2048) generated for the run by
    opendkim-genkey. Signs mail whose From domain is `domain` coming from 127.0.0.1
    (InternalHosts), rsa-sha256, relaxed/relaxed.

    txt_record(): the DNS TXT value for selector._domainkey.domain, e.g. for dkimpy's dnsfunc.
    """

    def __init__(self, run_dir, domain, selector="bench", host="127.0.0.1", port=None, bits=2048,
                 canonicalization="relaxed/relaxed", name="opendkim"):
        self.run_dir = os.path.abspath(run_dir)
        self.domain = domain
        self.selector = selector
        self.host = host
        self.port = port or free_port(host)
        self.bits = bits
        self.canonicalization = canonicalization
        self.name = name
        self.key_dir = os.path.join(self.run_dir, "keys")
        self.key_path = os.path.join(self.key_dir, selector + ".private")
        self.conf_path = os.path.join(self.run_dir, "opendkim.conf")
        self.proc = None

    @property
    def milter(self):
        return "inet:%s:%d" % (self.host, self.port)

    def make_key(self):
        _mkdir(self.run_dir, 0o755)
        _traversable(self.run_dir)
        _mkdir(self.key_dir, 0o700)
        if not os.path.exists(self.key_path):
            subprocess.run([OPENDKIM_GENKEY, "-b", str(self.bits), "-a", "-h", "sha256",
                            "-d", self.domain, "-s", self.selector, "-D", self.key_dir],
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if os.geteuid() == 0:
            # opendkim refuses keys that users other than its own can read.
            shutil.chown(self.key_dir, "opendkim", "opendkim")
            shutil.chown(self.key_path, "opendkim", "opendkim")
        os.chmod(self.key_path, 0o600)

    def txt_record(self):
        """The TXT record value (v=DKIM1; k=rsa; p=...) from opendkim-genkey's .txt file."""
        with open(os.path.join(self.key_dir, self.selector + ".txt")) as f:
            text = f.read()
        parts = re.findall(r'"([^"]*)"', text)
        return "".join(parts).strip()

    def write_config(self):
        conf = {
            "Syslog": "no",
            "Mode": "s",
            "Domain": self.domain,
            "Selector": self.selector,
            "KeyFile": self.key_path,
            "Socket": "inet:%d@%s" % (self.port, self.host),
            "Canonicalization": self.canonicalization,
            "SignatureAlgorithm": "rsa-sha256",
            "InternalHosts": "127.0.0.0/8",
            "UMask": "007",
            "PidFile": os.path.join(self.run_dir, "opendkim.pid"),
            "OversignHeaders": "From",
            "SoftwareHeader": "no",
            # The run directory usually lives under /tmp (world-writable), which opendkim's
            # safe-key check rejects; the key is a throwaway made for this run.
            "RequireSafeKeys": "no",
        }
        if os.geteuid() == 0:
            conf["UserID"] = "opendkim:opendkim"
        with open(self.conf_path, "w") as f:
            for k, v in conf.items():
                f.write("%s %s\n" % (k, v))

    def start(self):
        self.make_key()
        self.write_config()
        self.proc = Proc(self.name, [OPENDKIM, "-f", "-x", self.conf_path],
                         os.path.join(self.run_dir, "opendkim.log"), cwd=self.run_dir)
        self.proc.start()
        _register_log("%s :%d" % (self.name, self.port), self.proc.log_path)
        wait_tcp(self.host, self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
