"""Helpers for the sending tests (tests/e2e/test_send_*.py): message bodies, field errors,
SQL on a Posthorn's database, a held-open psql session, thread fan-out, the mail directory
of POSTHORN_DELIVERY=file, cursor paging, a second API process and a private stack with a
worker. Built on the foundation harness (tests/harness) and conftest fixtures; nothing here
changes them."""
import base64
import email
import email.policy
import json
import os
import re
import secrets
import string
import subprocess
import threading

import requests

from harness import pg as hpg
from harness import ports
from harness import posthorn as hph

ALNUM = string.ascii_letters + string.digits


def uid(n=10):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def lit(s):
    """A SQL string literal (standard_conforming_strings is on)."""
    if s is None:
        return "NULL"
    return "'" + str(s).replace("'", "''") + "'"


def b64(data):
    return base64.b64encode(data).decode("ascii")


def msg(**over):
    """A small valid message; keyword arguments replace or add members (None removes)."""
    m = {"from": {"email": "orders@shop.example", "name": "Shop"},
         "to": [{"email": "ann@example.com", "name": "Ann"}],
         "subject": "Hello {{name}}", "text": "Hi {{name}}", "data": {"name": "Ann"}}
    for k, v in over.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return m


def errors(r):
    """The errors[] of a problem response as [(field, message)]."""
    body = r.json()
    errs = body.get("errors")
    assert isinstance(errs, list), "problem without errors[]: %r" % body
    return [(e.get("field"), e.get("message")) for e in errs]


def fields(r):
    return [f for f, _ in errors(r)]


def spec_has(spec, path):
    """Whether openapi.yaml documents path (validated clients raise on undocumented paths)."""
    return spec is not None and spec.find(path)[1] is not None


# --- SQL on a Posthorn's database ---------------------------------------------------------
class Db:
    def __init__(self, cluster, ph):
        self.pg = cluster
        self.name = ph.db_url.rsplit("/", 1)[1]

    def sql(self, q, **kw):
        return self.pg.psql(q, db=self.name, **kw)

    def rows(self, q):
        out = self.sql(q)
        return [line.split("|") for line in out.splitlines()] if out else []

    def one(self, q):
        return self.sql(q)


class PsqlSession:
    """A psql process reading SQL from a pipe: statements run as they are written, so a
    transaction can be held open across test steps. application_name identifies it in
    pg_stat_activity."""

    def __init__(self, cluster, dbname, appname=None):
        self.pg = cluster
        self.db = dbname
        self.app = appname or "ph-test-" + uid(6).lower()
        env = dict(os.environ, PGAPPNAME=self.app)
        self.p = subprocess.Popen([hpg._bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                                   cluster.host, "-p", str(cluster.port), "-U", "postgres", "-d",
                                   dbname], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env)

    def send(self, sql):
        self.p.stdin.write(sql.encode() + b"\n")
        self.p.stdin.flush()

    def activity(self):
        """(state, backend_xid is set, wait_event_type) of this session, or None."""
        out = self.pg.psql("SELECT state, backend_xid IS NOT NULL, coalesce(wait_event_type, '')"
                           " FROM pg_stat_activity WHERE application_name = %s" % lit(self.app))
        return tuple(out.split("|")) if out else None

    def wait_idle_in_transaction(self, with_xid=True, timeout=20):
        def ok():
            if self.p.poll() is not None:
                raise AssertionError("psql session exited: %s" % self.output())
            a = self.activity()
            return a is not None and a[0] == "idle in transaction" and (a[1] == "t" or not with_xid)
        hph.wait_until(ok, timeout=timeout, interval=0.05, what="psql %s idle in transaction" % self.app)

    def wait_idle(self, timeout=20):
        def ok():
            if self.p.poll() is not None:
                raise AssertionError("psql session exited: %s" % self.output())
            a = self.activity()
            return a is not None and a[0] == "idle"
        hph.wait_until(ok, timeout=timeout, interval=0.05, what="psql %s idle" % self.app)

    def close(self, timeout=20):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def output(self):
        if self.p.poll() is None:
            return "(running)"
        return self.p.stdout.read().decode(errors="replace")


class TableLock:
    """ACCESS EXCLUSIVE on a table, held by an open psql transaction until release()."""

    def __init__(self, cluster, dbname, table="messages"):
        self.s = PsqlSession(cluster, dbname)
        self.pg, self.db, self.table = cluster, dbname, table
        self.s.send("BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE;" % table)
        hph.wait_until(lambda: self.pg.psql(
            "SELECT count(*) FROM pg_locks WHERE relation = '%s'::regclass"
            " AND mode = 'AccessExclusiveLock' AND granted" % table, db=dbname) == "1",
            timeout=20, what="ACCESS EXCLUSIVE lock on %s" % table)

    def waiters(self):
        return int(self.pg.psql("SELECT count(*) FROM pg_locks WHERE relation = '%s'::regclass"
                                " AND NOT granted" % self.table, db=self.db))

    def release(self):
        if self.s.p.poll() is None:
            self.s.send("COMMIT;")
        return self.s.close()


# --- HTTP ---------------------------------------------------------------------------------
class ThreadClients:
    """One validating Client per thread (requests.Session is not thread-safe)."""

    def __init__(self, base, key, spec):
        self.base, self.key, self.spec = base, key, spec
        self.local = threading.local()

    def get(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = hph.Client(self.base, self.key, self.spec)
            self.local.c = c
        return c


def metric(api, name):
    """A sample of the API's /metrics (no labels), or None."""
    try:
        text = requests.get(api.metrics_base + "/metrics", timeout=5).text
    except requests.RequestException:
        return None
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def page_all(client, path, params=None, limit=1, max_pages=1000):
    """Walks a cursor-paged list; returns (items, pages)."""
    items, pages, cursor = [], 0, None
    while True:
        p = dict(params or {})
        p["limit"] = limit
        if cursor:
            p["cursor"] = cursor
        r = client.get(path, params=p)
        assert r.status_code == 200, (path, p, r.status_code, r.text)
        body = r.json()
        assert len(body["data"]) <= limit, (p, body)
        items += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            return items, pages
        assert pages < max_pages, "cursor paging does not end"


def events_after(client, after=None, limit=50, validate=True, **filters):
    params = dict(filters)
    params["limit"] = limit
    if after:
        params["after"] = after
    r = client.get("/v1/events", params=params, validate=validate)
    assert r.status_code == 200, (params, r.status_code, r.text)
    return r.json()


def drain_events(client, after=None, limit=50, validate=True, max_pages=10000, **filters):
    """Pages with after=<last id seen> until a page comes back empty: (events, last id)."""
    out = []
    for _ in range(max_pages):
        page = events_after(client, after, limit, validate, **filters)
        data = page["data"]
        if not data:
            return out, after
        out += data
        after = data[-1]["id"]
    raise AssertionError("events paging does not end")


# --- mail directory (POSTHORN_DELIVERY=file) ---------------------------------------------
def mail_files(mail_dir):
    """{delivery_id: [attempt, ...]} of the .eml files in mail_dir."""
    out = {}
    for name in os.listdir(mail_dir):
        m = re.match(r"^(dlv_[A-Za-z0-9]+)\.(\d+)\.eml$", name)
        if m:
            out.setdefault(m.group(1), []).append(int(m.group(2)))
    return out


def read_mail(mail_dir, did, attempt=1):
    with open(os.path.join(mail_dir, "%s.%d.eml" % (did, attempt)), "rb") as f:
        return f.read()


def parse_mail(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def wait_files(mail_dir, dids, timeout=60, procs=()):
    def ok():
        for p in procs:
            if not p.alive():
                raise AssertionError("%s exited (%s):\n%s" % (p.name, p.p.returncode, p.log()[-3000:]))
        f = mail_files(mail_dir)
        return all(d in f for d in dids)
    hph.wait_until(ok, timeout=timeout, interval=0.2,
                   what="files for %d deliveries in %s" % (len(dids), mail_dir))


# --- private stacks -----------------------------------------------------------------------
class Stack:
    """A private Posthorn (own database, mail dir) with an account, a key and an API."""

    def __init__(self, ph, cluster, api=None, rate=100000):
        self.ph = ph
        self.pg = cluster
        self.db = Db(cluster, ph)
        self.account = ph.create_account("send-test")
        self.key = ph.create_key(self.account, ["send", "read", "admin"], rate=rate)
        self.api = api or ph.api_proc()
        self.client = ph.client(self.key, self.api)
        self.mail_dir = ph.mail_dir

    def clients(self, api=None):
        return ThreadClients((api or self.api).base, self.key, self.ph.spec)

    def second_api(self, env=None):
        """Another posthorn-api process on its own ports, same database."""
        e = {"POSTHORN_HTTP_ADDR": "127.0.0.1:%d" % ports.free_port(),
             "POSTHORN_METRICS_ADDR": "127.0.0.1:%d" % ports.free_port()}
        e.update(env or {})
        prev = self.ph.api
        api = self.ph.api_proc(env=e)
        self.ph.api = prev   # api_proc makes the newest the default; keep the first
        return api

    def restart_api(self, timeout=30):
        """Start posthorn-api again on the same ports (after a kill)."""
        api = self.ph.api_proc(timeout=timeout)
        self.api = api
        return api

    def dlv_states(self, ids):
        arr = lit("{" + ",".join(ids) + "}")
        return dict((s, int(c)) for s, c in self.db.rows(
            "SELECT state, count(*) FROM deliveries WHERE id = ANY (%s::text[]) GROUP BY state" % arr))


def jdump(v):
    """JSON bytes as a client would send them (UTF-8, not ASCII-escaped)."""
    return json.dumps(v, ensure_ascii=False).encode("utf-8")
