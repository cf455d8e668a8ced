"""The Posthorn binaries with settings for one test, an HTTP client that checks every
response against openapi.yaml, and a scan of child logs for sanitizer reports.

    ph = Posthorn(workdir, db_url=pg.fresh_database("t1"), redis_url=redis.url)
    ph.migrate()
    acc = ph.create_account("shop")
    key = ph.create_key(acc, ["send", "read", "admin"], rate=1000)
    api = ph.api_proc()                      # started, /healthz answered 200
    c = ph.client(key)                       # requests wrapper, validates responses
    c.get("/v1/account").json()
    w = ph.worker_proc()
    ph.stop_all()

Every child (api, worker, each CLI run) writes its output to a file under workdir/logs.
"""
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.parse

from . import ports, procs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# PH_E2E_BIN runs the tests against binaries built elsewhere (e.g. a `make SANITIZE=1` copy).
BIN = os.environ.get("PH_E2E_BIN") or os.path.join(ROOT, "bin")

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer",
                      # valgrind (make valgrind): memory errors and definite leaks
                      "Invalid read of size", "Invalid write of size", "Invalid free()",
                      "Conditional jump or move depends on uninitialised",
                      "Use of uninitialised value", "definitely lost in")

# `make valgrind` sets POSTHORN_VALGRIND=1: the long-running Posthorn processes then run
# under memcheck (the CLI too), and the reports land in their logs for the scan above.
VALGRIND = os.environ.get("POSTHORN_VALGRIND") == "1"
# Under valgrind a process's resident size also holds valgrind's own shadow memory and its
# quarantine of freed blocks (--freelist-vol, 20 MB by default): memory-growth bounds get this
# much more room there, and stay as strict as ever in every other run.
VALGRIND_RSS_SLACK_KB = 64 * 1024 if VALGRIND else 0
# A request's default timeout: under valgrind the API is 20-50x slower (a domain's RSA-2048
# key generation took over 30 s there).
REQUEST_TIMEOUT = 120 if VALGRIND else 30
VALGRIND_ARGV = ["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite",
                 "--errors-for-leak-kinds=definite", "--error-exitcode=99",
                 "--num-callers=30", "--trace-children=no"]

# Every log file a harness object created, as (label, path): conftest prints them for a
# failed test and scans the Posthorn ones for sanitizer reports.
LOGS = []
_LOGS_LOCK = threading.Lock()


def register_log(label, path, posthorn=False):
    with _LOGS_LOCK:
        if not any(p == path for _, p, _ in LOGS):
            LOGS.append((label, path, posthorn))


def scan_sanitizer(path, start=0):
    """Sanitizer report excerpts in path from byte offset start on."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    found = []
    for pat in SANITIZER_PATTERNS:
        i = text.find(pat)
        if i >= 0:
            found.append(text[max(0, i - 500):i + 4000])
    return found


class CliError(RuntimeError):
    def __init__(self, argv, rc, out, err):
        super().__init__("%s exited %s\nstdout: %s\nstderr: %s" % (" ".join(argv), rc, out, err))
        self.argv, self.returncode, self.stdout, self.stderr = argv, rc, out, err


class ContractError(AssertionError):
    """A response that breaks the HTTP contract or openapi.yaml."""


# --- OpenAPI -------------------------------------------------------------------------------
class OpenApi:
    """openapi.yaml (3.1) loaded for response validation with jsonschema 2020-12."""

    def __init__(self, doc, source="openapi.yaml"):
        import jsonschema
        self.doc = doc
        self.source = source
        self.jsonschema = jsonschema
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        self.format_checker = getattr(jsonschema, "draft202012_format_checker", None)
        base = ""
        servers = doc.get("servers") or []
        if servers and isinstance(servers[0], dict):
            base = urllib.parse.urlsplit(servers[0].get("url", "")).path.rstrip("/")
        self.base_path = base
        self.routes = []
        for tmpl, item in (doc.get("paths") or {}).items():
            names = re.findall(r"\{([^}/]+)\}", tmpl)
            rx = "^" + re.sub(r"\\\{[^}/]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
            self.routes.append((len(names), -len(tmpl), re.compile(rx), tmpl, item))
        self.routes.sort(key=lambda r: (r[0], r[1]))
        self._validators = {}

    @classmethod
    def load(cls, path):
        import yaml
        with open(path, "rb") as f:
            return cls(yaml.safe_load(f), source=path)

    def deref(self, obj, depth=0):
        while isinstance(obj, dict) and "$ref" in obj and depth < 32:
            ref = obj["$ref"]
            if not ref.startswith("#/"):
                raise ContractError("%s: only local $ref supported, got %s" % (self.source, ref))
            cur = self.doc
            for part in ref[2:].split("/"):
                cur = cur[part.replace("~1", "/").replace("~0", "~")]
            obj = cur
            depth += 1
        return obj

    def find(self, path):
        """(template, path item) for a request path, or (None, None)."""
        cands = [path]
        if self.base_path and path.startswith(self.base_path):
            cands.append(path[len(self.base_path):] or "/")
        for p in cands:
            for _, _, rx, tmpl, item in self.routes:
                if rx.match(p):
                    return tmpl, self.deref(item)
        return None, None

    def operation(self, method, path):
        tmpl, item = self.find(path)
        if item is None:
            return None, None
        return tmpl, item.get(method.lower())

    def _validator(self, key, schema):
        v = self._validators.get(key)
        if v is None:
            cls = self.jsonschema.Draft202012Validator
            kw = {"resolver": self.resolver}
            if self.format_checker is not None:
                kw["format_checker"] = self.format_checker
            v = cls(schema, **kw)
            self._validators[key] = v
        return v

    def check(self, method, path, status, headers, body):
        """Problems (strings) with one response; [] when it matches the document."""
        tmpl, item = self.find(path)
        if item is None:
            return ["%s %s -> %d: path not in %s" % (method, path, status, self.source)]
        op = item.get(method.lower())
        if op is None:
            if status == 405:
                return []
            return ["%s %s -> %d: method not documented for %s" % (method, path, status, tmpl)]
        responses = op.get("responses") or {}
        key = str(status)
        if key not in responses:
            key = "%dXX" % (status // 100)
            if key not in responses:
                key = "default"
        if key not in responses:
            return ["%s %s (%s) -> %d: status not documented (documented: %s)" %
                    (method, path, tmpl, status, sorted(responses))]
        resp = self.deref(responses[key])
        where = "%s %s (%s) -> %d" % (method, path, tmpl, status)
        problems = []
        for hname, hdef in (resp.get("headers") or {}).items():
            hdef = self.deref(hdef)
            if hdef.get("required") and hname not in headers:
                problems.append("%s: required header %s missing" % (where, hname))
        content = resp.get("content") or {}
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not body:
            return problems
        if not content:
            return problems + ["%s: %d-byte body (%s) but no content documented" %
                               (where, len(body), ctype)]
        media = content.get(ctype)
        if media is None:
            for mt, m in content.items():
                if mt in ("*/*", ctype.split("/")[0] + "/*"):
                    media = m
                    break
        if media is None:
            return problems + ["%s: content type %r not documented (documented: %s)" %
                               (where, ctype, sorted(content))]
        media = self.deref(media)
        if not (ctype.endswith("/json") or ctype.endswith("+json")):
            return problems
        try:
            data = json.loads(body)
        except ValueError as e:
            return problems + ["%s: body is not JSON (%s): %r" % (where, e, body[:200])]
        schema = media.get("schema")
        if schema is None:
            return problems
        v = self._validator((tmpl, method.lower(), key, ctype), schema)
        errs = sorted(v.iter_errors(data), key=lambda e: list(e.absolute_path))
        for e in errs[:5]:
            problems.append("%s: body does not match schema at %s: %s" %
                            (where, "/".join(str(x) for x in e.absolute_path) or "(root)",
                             e.message[:300]))
        return problems


_SPEC_CACHE = {}


def load_spec(path=None):
    """The repo's openapi.yaml, or None when it does not exist (yet)."""
    path = path or os.path.join(ROOT, "openapi.yaml")
    if not os.path.exists(path):
        return None
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _SPEC_CACHE:
        _SPEC_CACHE[key] = OpenApi.load(path)
    return _SPEC_CACHE[key]


def check_problem(r):
    """Problems with an error response that should be application/problem+json."""
    where = "%s %s -> %d" % (r.request.method, r.request.path_url, r.status_code)
    ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/problem+json":
        return ["%s: Content-Type %r, expected application/problem+json" % (where, ctype)]
    try:
        body = r.json()
    except ValueError:
        return ["%s: problem body is not JSON: %r" % (where, r.content[:200])]
    out = []
    if not isinstance(body, dict):
        return ["%s: problem body is not an object" % where]
    for f in ("type", "title"):
        if not isinstance(body.get(f), str):
            out.append("%s: problem has no string %r: %r" % (where, f, body))
    if body.get("status") != r.status_code:
        out.append("%s: problem status %r != HTTP status" % (where, body.get("status")))
    return out


class Client:
    """requests wrapper for tests. Every response must carry X-Request-Id; error responses
    must be problem+json; with a spec, every response must match openapi.yaml.
    validate=False skips the spec and problem checks (for protocol-level answers)."""

    _DEFAULT = object()

    def __init__(self, base, key=None, spec=None):
        import requests
        self.base = base.rstrip("/")
        self.key = key
        self.spec = spec
        self.session = requests.Session()
        self.checked = 0

    def with_key(self, key):
        return Client(self.base, key, self.spec)

    def request(self, method, path, *, key=_DEFAULT, headers=None, validate=True,
                timeout=REQUEST_TIMEOUT, **kw):
        h = dict(headers or {})
        key = self.key if key is Client._DEFAULT else key
        if key is not None and "Authorization" not in h:
            h["Authorization"] = "Bearer " + key
        r = self.session.request(method, self.base + path, headers=h, timeout=timeout,
                                 allow_redirects=False, **kw)
        problems = []
        if "X-Request-Id" not in r.headers:
            problems.append("%s %s -> %d: no X-Request-Id header" % (method, path, r.status_code))
        if validate:
            # Errors are problem+json; /readyz's 503 is the documented exception (its body
            # is the readiness report).
            if r.status_code >= 400 and not (path.startswith("/readyz") and r.status_code == 503):
                problems += check_problem(r)
            if self.spec is not None:
                rpath = urllib.parse.urlsplit(r.request.url).path
                problems += self.spec.check(method, rpath, r.status_code, r.headers, r.content)
                self.checked += 1
        if problems:
            raise ContractError("\n".join(problems) + "\nresponse body: %r" % r.content[:1000])
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


# --- processes -----------------------------------------------------------------------------
def read_status_kb(pid, field):
    """A kB value (VmHWM, VmRSS, ...) from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class ApiHandle:
    def __init__(self, ph, proc, host, port, metrics_port, env=None):
        self.ph = ph
        self.proc = proc
        self.env = dict(env or {})
        self.host, self.port, self.metrics_port = host, port, metrics_port
        self.base = "http://%s:%d" % (host, port)
        self.metrics_base = "http://%s:%d" % (host, metrics_port)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.alive()

    def vmhwm_kb(self):
        return read_status_kb(self.pid, "VmHWM")

    def vmrss_kb(self):
        return read_status_kb(self.pid, "VmRSS")

    def healthz_ok(self):
        import requests
        try:
            return requests.get(self.base + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout=30.0):
        def ok():
            if not self.proc.alive():
                raise RuntimeError("posthorn-api exited (%s) before /healthz answered:\n%s" %
                                   (self.proc.p.returncode, self.proc.log()[-4000:]))
            return self.healthz_ok()
        procs.wait_for(ok, timeout=timeout, interval=0.05, what="posthorn-api /healthz")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        return self.proc.stop(sig=sig, timeout=timeout)

    def restart(self, wait=True, timeout=30.0):
        """Stop (if running) and start a new process with the same settings, in this handle."""
        self.proc.stop(timeout=20)
        self.proc = self.ph._start("posthorn-api", self.env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_exit(self, timeout=30.0):
        try:
            return self.proc.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class Posthorn:
    """One Posthorn installation: settings (env), CLI, api and worker processes."""

    _ids = itertools.count(1)

    def __init__(self, workdir, db_url, redis_url, env=None, spec=None):
        self.id = next(Posthorn._ids)
        self.workdir = os.path.abspath(workdir)
        self.logdir = os.path.join(self.workdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.spec = spec
        self.db_url = db_url
        self.redis_url = redis_url
        self.secret = secrets.token_urlsafe(36)
        self.host = "127.0.0.1"
        self.http_port = ports.free_port()
        self.metrics_port = ports.free_port()
        self.mail_dir = os.path.join(self.workdir, "mail")
        os.makedirs(self.mail_dir, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POSTHORN_")}
        self.env.update({
            "POSTHORN_SECRET": self.secret,
            "POSTHORN_DATABASE_URL": db_url,
            "POSTHORN_REDIS_URL": redis_url,
            "POSTHORN_HTTP_ADDR": "%s:%d" % (self.host, self.http_port),
            "POSTHORN_METRICS_ADDR": "%s:%d" % (self.host, self.metrics_port),
            "POSTHORN_PUBLIC_URL": "http://%s:%d" % (self.host, self.http_port),
            # Nothing leaves loopback: mail goes to files unless a test says otherwise.
            "POSTHORN_DELIVERY": "file",
            "POSTHORN_MAIL_DIR": self.mail_dir,
            "POSTHORN_LOG_LEVEL": "info",
            "POSTHORN_POLL_INTERVAL": "1s",
            "POSTHORN_LEASE": "30s",
            "POSTHORN_DB_TIMEOUT": "5s",
            "POSTHORN_REDIS_TIMEOUT": "1s",
            "POSTHORN_HTTP_TIMEOUT": "30s",
            "POSTHORN_SHUTDOWN_GRACE": "15s",
            # Most tests send from domains they never verify; the test of the rule unsets it.
            "POSTHORN_ALLOW_UNVERIFIED": "1",
        })
        self.env.update(env or {})
        self.procs = []
        self.apis = []
        self.api = None
        self._n = itertools.count(1)
        self.cli_log = os.path.join(self.logdir, "cli.log")
        register_log("ph%d cli" % self.id, self.cli_log, posthorn=True)

    # --- binaries ---------------------------------------------------------------------------
    @staticmethod
    def binary(name):
        p = os.path.join(BIN, name)
        if not os.access(p, os.X_OK):
            raise RuntimeError("%s is missing: build it with `make` in %s" % (p, ROOT))
        return p

    def merged_env(self, env=None, unset=()):
        e = dict(self.env)
        e.update(env or {})
        for k in unset:
            e.pop(k, None)
        return e

    def run(self, prog, *args, env=None, unset=(), timeout=60, input=None):
        """Run a binary to completion; output also goes to logs/cli.log. CompletedProcess."""
        argv = [self.binary(prog)] + [str(a) for a in args]
        try:
            r = subprocess.run(argv, env=self.merged_env(env, unset), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, input=input,
                               cwd=self.workdir)
        except subprocess.TimeoutExpired as e:
            self._log_run(argv, None, e.stdout or b"", e.stderr or b"")
            raise
        self._log_run(argv, r.returncode, r.stdout, r.stderr)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        return r

    def _log_run(self, argv, rc, out, err):
        shown = [a if not a.startswith("ph_") else a[:12] + "..." for a in argv]
        with open(self.cli_log, "ab") as f:
            f.write(("$ %s  -> exit %s\n" % (" ".join(shown), rc)).encode())
            if out:
                f.write(b"[stdout] " + out + (b"" if out.endswith(b"\n") else b"\n"))
            if err:
                f.write(err + (b"" if err.endswith(b"\n") else b"\n"))

    def cli(self, *args, env=None, timeout=60):
        """bin/posthorn ARGS; returns stdout stripped, raises CliError unless exit 0."""
        r = self.run("posthorn", *args, env=env, timeout=timeout)
        if r.returncode != 0:
            raise CliError(["posthorn"] + list(args), r.returncode, r.stdout, r.stderr)
        return r.stdout.strip()

    def migrate(self):
        return self.cli("migrate")

    def create_account(self, name):
        acc = self.cli("account", "create", name)
        assert acc.startswith("acc_"), "account create printed %r" % acc
        return acc

    def create_key(self, account, scopes=("send", "read", "admin"), rate=1000, name=None):
        """An account key. rate: number (per second), "N/s", or None for the default rate."""
        if not isinstance(scopes, str):
            scopes = ",".join(scopes)
        args = ["key", "create", "--account", account, "--scopes", scopes]
        if name:
            args += ["--name", name]
        if rate is not None:
            args += ["--rate", rate if isinstance(rate, str) else "%d/s" % int(rate)]
        key = self.cli(*args)
        assert key.startswith("ph_") and key.count("_") >= 2, "key create printed %r" % key
        return key

    def create_operator_key(self, rate=1000, name=None):
        args = ["key", "create", "--operator"]
        if name:
            args += ["--name", name]
        if rate is not None:
            args += ["--rate", rate if isinstance(rate, str) else "%d/s" % int(rate)]
        key = self.cli(*args)
        assert key.startswith("ph_"), "key create --operator printed %r" % key
        return key

    @staticmethod
    def key_prefix(key):
        return key.split("_", 2)[1]

    def revoke_key(self, key):
        return self.cli("key", "revoke", self.key_prefix(key))

    def routes(self):
        r = self.run("posthorn-api", "--routes")
        if r.returncode != 0:
            raise CliError(["posthorn-api", "--routes"], r.returncode, r.stdout, r.stderr)
        return json.loads(r.stdout)

    # --- long-running processes ---------------------------------------------------------------
    def _start(self, prog, env=None, args=()):
        n = next(self._n)
        log = os.path.join(self.logdir, "%s-%d.log" % (prog.replace("posthorn-", ""), n))
        register_log("ph%d %s-%d" % (self.id, prog, n), log, posthorn=True)
        argv = (VALGRIND_ARGV if VALGRIND else []) + [self.binary(prog)] + list(args)
        p = procs.Proc("%s#%d" % (prog, n), argv, log,
                       env=self.merged_env(env), cwd=self.workdir).start()
        self.procs.append(p)
        return p

    def api_proc(self, env=None, wait=True, timeout=30.0):
        """Start posthorn-api; by default wait until GET /healthz answers 200."""
        e = dict(env or {})
        addr = e.get("POSTHORN_HTTP_ADDR", self.env["POSTHORN_HTTP_ADDR"])
        maddr = e.get("POSTHORN_METRICS_ADDR", self.env["POSTHORN_METRICS_ADDR"])
        host, port = addr.rsplit(":", 1)
        p = self._start("posthorn-api", e)
        api = ApiHandle(self, p, host, int(port), int(maddr.rsplit(":", 1)[1]), e)
        self.apis.append(api)
        self.api = api
        if wait:
            api.wait_ready(timeout)
        return api

    def worker_proc(self, env=None):
        return self._start("posthorn-worker", env)

    def client(self, key=None, api=None):
        api = api or self.api
        return Client(api.base, key, self.spec)

    def stop_all(self):
        """Stop every child; returns {name: exit code}."""
        codes = {}
        for p in reversed(self.procs):
            codes[p.name] = p.stop(timeout=20)
        return codes

    def log_paths(self):
        return [self.cli_log] + [p.log_path for p in self.procs]

    def sanitizer_reports(self):
        out = []
        for path in self.log_paths():
            for ex in scan_sanitizer(path):
                out.append((path, ex))
        return out


def wait_until(pred, timeout=30.0, interval=0.1, what="condition"):
    return procs.wait_for(pred, timeout=timeout, interval=interval, what=what)


def now():
    return time.monotonic()
