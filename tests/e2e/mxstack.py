"""A private Posthorn delivering over SMTP (POSTHORN_DELIVERY=mx) to real servers on
127.0.0.x, for the delivery tests (tests/e2e/test_deliver_*.py).

    st = MxStack(tmp_root, pg, redis, spec,
                 mx={"fail.test": [("mx1.fail.test", 10, "127.0.0.2"),
                                   ("mx2.fail.test", 20, "127.0.0.3")],
                     "one.test": "127.0.0.4"},          # shorthand: MX mx.one.test -> A
                 a={"imp.test": "127.0.0.5"},           # no MX, an A record (implicit MX)
                 null_mx=["null.test"], servfail=["sf.test"],
                 env={"POSTHORN_RETRY_SCHEDULE": "2s"}, policy="* connections=2\\n")
    # env values may say "{port}" for the common SMTP port
    peer = st.peer("127.0.0.3", "accept")               # SmtpPeer on st.port
    mid, dids = st.send(["ann@fail.test"])
    st.wait_final(mid)                                   # every recipient in a final state
    r = st.recipient(mid, "ann@fail.test"); st.attempts(r); st.events(mid)
    st.stop()

- DNS: dnsmasq on 127.0.0.1 (no upstream: a name outside the zones gets REFUSED, so nothing
  ever leaves loopback); `servfail` domains are forwarded by dnsmasq to a ScriptedDns that
  answers SERVFAIL. Names under the zones' TLDs that are not listed are NXDOMAIN.
- Every SMTP server of the stack listens on its own 127.0.0.x address and on one common port
  (`st.port`, POSTHORN_SMTP_PORT), free on every address 127.0.0.2-127.0.0.63.
- Posthorn: own database, posthorn-api and one posthorn-worker (`st.worker`), mx mode,
  POSTHORN_SMTP_ALLOW_CIDRS=127.0.0.0/8 unless `allow_cidrs` says otherwise (None: unset),
  short retry schedule, lifetime and SMTP timeouts (seconds; see DEFAULT_ENV).
"""
import json
import os
import socket
import tempfile
import time

import pytest

from harness import dns as hdns
from harness import mta
from harness import ports
from harness import posthorn as hph
from harness import smtppeer

FINAL = ("delivered", "bounced", "expired", "failed", "suppressed", "cancelled")
ADDRS = ["127.0.0.%d" % i for i in range(2, 64)]

DEFAULT_ENV = {
    "POSTHORN_DELIVERY": "mx",
    "POSTHORN_HELO_NAME": "posthorn.test",
    "POSTHORN_RETRY_SCHEDULE": "1s",
    "POSTHORN_MAX_QUEUE_LIFETIME": "60s",
    "POSTHORN_SMTP_CONNECT_TIMEOUT": "2s",
    "POSTHORN_SMTP_GREETING_TIMEOUT": "3s",
    "POSTHORN_SMTP_COMMAND_TIMEOUT": "3s",
    "POSTHORN_SMTP_DATA_INIT_TIMEOUT": "3s",
    "POSTHORN_SMTP_DATA_BLOCK_TIMEOUT": "3s",
    "POSTHORN_SMTP_DATA_DONE_TIMEOUT": "3s",
    "POSTHORN_LEASE": "30s",
    "POSTHORN_POLL_INTERVAL": "1s",
}


def common_port(addrs=ADDRS):
    """A TCP port free on every address of addrs (and never handed out before here)."""
    for _ in range(500):
        p = ports.free_port("127.0.0.1")
        if all(ports._can_bind(a, p, socket.SOCK_STREAM) for a in addrs):
            return p
    raise RuntimeError("no port free on all of %s..%s" % (addrs[0], addrs[-1]))


class _Dnsmasq(hdns.Dnsmasq):
    """dnsmasq with extra config lines (server=/domain/addr#port forwards)."""

    def __init__(self, base_dir, extra=(), **kw):
        self.extra = list(extra)
        super().__init__(base_dir, **kw)

    def argv(self):
        a = super().argv()
        conf = [x for x in a if x.startswith("--conf-file=")][0].split("=", 1)[1]
        with open(conf, "a") as f:
            f.write("".join(line + "\n" for line in self.extra))
        return a


def _mkdir(root, prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir=root)
    os.chmod(d, 0o755)
    return d


class MxStack:
    def __init__(self, tmp_root, cluster, redis, spec, mx=None, a=None, null_mx=(), servfail=(),
                 env=None, policy=None, allow_cidrs="127.0.0.0/8", worker=True, name="mx"):
        self.dir = _mkdir(tmp_root, "%s-" % name)
        self.pg = cluster
        self.port = common_port()
        self.stoppers = []
        self.peers = []
        self.workers = []
        self.scripted = None
        self.dns = None
        self.ph = None
        try:
            self._start(cluster, redis, spec, mx or {}, a or {}, null_mx, servfail, env, policy,
                        allow_cidrs, worker)
        except Exception:
            self.stop()
            raise

    # --- setup --------------------------------------------------------------------------
    def _start(self, cluster, redis, spec, mx, a, null_mx, servfail, env, policy, allow_cidrs,
               worker):
        mx_rr, hosts, extra = [], [], []
        for dom, spec_ in mx.items():
            if isinstance(spec_, str):
                spec_ = [("mx.%s" % dom, 10, spec_)]
            for host, pref, addr in spec_:
                mx_rr.append((dom, host, pref))
                if addr is not None:
                    hosts.append((host, addr))
        for dom, addr in a.items():
            hosts.append((dom, addr))
        for dom in null_mx:
            mx_rr.append((dom, ".", 0))
        if servfail:
            self.scripted = hdns.ScriptedDns(default="SERVFAIL")
            self.stoppers.append(self.scripted.stop)
            for dom in servfail:
                extra.append("server=/%s/%s#%d" % (dom, self.scripted.address, self.scripted.port))
        tlds = {n.rstrip(".").split(".")[-1] for n in list(mx) + list(a) + list(null_mx) +
                list(servfail)}
        # Zones answered locally (NXDOMAIN when nothing matches); servfail domains are not.
        self.dns = _Dnsmasq(os.path.join(self.dir, "dns"), extra=extra, mx=mx_rr, hosts=hosts,
                            local=sorted(tlds - set(servfail)))
        self.stoppers.append(self.dns.stop)
        hph.register_log("dnsmasq :%d" % self.dns.port, self.dns.log_path)

        e = dict(DEFAULT_ENV)
        e["POSTHORN_DNS_SERVER"] = self.dns.server
        e["POSTHORN_SMTP_PORT"] = str(self.port)
        if allow_cidrs is not None:
            e["POSTHORN_SMTP_ALLOW_CIDRS"] = allow_cidrs
        if policy is not None:
            self.policy_path = os.path.join(self.dir, "destinations.policy")
            with open(self.policy_path, "w") as f:
                f.write(policy)
            e["POSTHORN_DESTINATION_POLICY"] = self.policy_path
        # "{port}" in a value stands for the common SMTP port (e.g. in POSTHORN_RELAY_URL).
        e.update({k: v.replace("{port}", str(self.port)) for k, v in (env or {}).items()})
        db = cluster.fresh_database("ph_mx_%d_%d" % (os.getpid(), next(_dbn)))
        self.ph = hph.Posthorn(_mkdir(self.dir, "ph-"), db, redis.url, env=e, spec=spec)
        self.stoppers.append(self.ph.stop_all)
        self.ph.migrate()
        self.db_name = db.rsplit("/", 1)[1]
        self.account = self.ph.create_account("mx-test")
        self.key = self.ph.create_key(self.account, ["send", "read", "admin"], rate=100000)
        self.api = self.ph.api_proc()
        self.client = self.ph.client(self.key)
        self._op = None
        if worker:
            self.start_worker()

    def start_worker(self, env=None):
        w = self.ph.worker_proc(env)
        self.workers.append(w)
        self.worker = w
        return w

    @property
    def op(self):
        """A client with an operator key."""
        if self._op is None:
            self._op = self.ph.client(self.ph.create_operator_key(rate=100000))
        return self._op

    # --- servers on the common port -----------------------------------------------------
    def peer(self, addr, behaviour="accept", **kw):
        p = smtppeer.SmtpPeer(behaviour, host=addr, port=self.port, **kw)
        self.peers.append(p)
        self.stoppers.append(p.stop)
        return p

    def raw_peer(self, addr, script):
        p = smtppeer.RawPeer(script, host=addr, port=self.port)
        self.peers.append(p)
        self.stoppers.append(p.stop)
        return p

    def sink(self, addr, **kw):
        s = mta.SmtpSink(os.path.join(self.dir, "sink-%s" % addr), host=addr, port=self.port,
                         name="smtp-sink-%s" % addr, **kw).start()
        self.stoppers.append(s.stop)
        return s

    def postfix(self, addr, **kw):
        pf = mta.PostfixInstance(os.path.join(self.dir, "postfix-%s" % addr), relay=None,
                                 host=addr, port=self.port, name="postfix-%s" % addr, **kw)
        self.stoppers.append(pf.stop)
        return pf.start()

    def stop_checked(self):
        """Stop everything; problems with the Posthorn processes: a worker or API that died
        on its own, or did not exit 0 on SIGTERM."""
        problems = []
        if self.ph is not None:
            for p in self.ph.procs:
                if getattr(p, "_expected_exit", False) or p.p is None:
                    continue
                if p.p.poll() is not None:
                    problems.append("%s exited on its own (status %s):\n%s" % (
                        p.name, p.p.returncode, p.log()[-3000:]))
                    continue
                rc = p.stop(timeout=20)
                if rc != 0:
                    problems.append("%s exited %s on SIGTERM:\n%s" % (p.name, rc, p.log()[-3000:]))
        self.stop()
        return problems

    def stop(self):
        for s in reversed(self.stoppers):
            try:
                s()
            except Exception:
                pass
        self.stoppers = []

    # --- API ----------------------------------------------------------------------------
    def check_alive(self):
        w = getattr(self, "worker", None)
        if w is not None and w.p is not None and w.p.poll() is not None and not getattr(
                w, "_expected_exit", False):
            raise AssertionError("posthorn-worker exited (%s):\n%s" % (w.p.returncode,
                                                                       w.log()[-4000:]))
        if not self.api.alive():
            raise AssertionError("posthorn-api exited:\n" + self.api.proc.log()[-3000:])

    def message_body(self, to, subject="Hello", text="Hi there\n", **kw):
        m = {"from": {"email": "orders@shop.example", "name": "Shop"},
             "to": list(to) if not isinstance(to, str) else [to],
             "subject": subject, "text": text}
        m.update(kw)
        return m

    def send(self, to, **kw):
        """POST /v1/messages; (message id, [delivery ids in recipient order])."""
        r = self.client.post("/v1/messages", json=self.message_body(to, **kw))
        assert r.status_code == 202, (r.status_code, r.text)
        body = r.json()
        return body["id"], [x["delivery_id"] for x in body["recipients"]]

    def send_batch(self, bodies):
        """POST /v1/messages/batch in chunks of 500; [message id] in order."""
        out = []
        for i in range(0, len(bodies), 500):
            r = self.client.post("/v1/messages/batch", json={"messages": bodies[i:i + 500]},
                                 timeout=120)
            assert r.status_code == 200, (r.status_code, r.text[:2000])
            data = r.json()["data"]
            for d in data:
                assert "id" in d, d
                out.append(d["id"])
        return out

    def message(self, mid):
        r = self.client.get("/v1/messages/" + mid)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def recipient(self, mid, email):
        for r in self.message(mid)["recipients"]:
            if r["email"].lower() == email.lower():
                return r
        raise AssertionError("no recipient %s in %s" % (email, mid))

    def statuses(self, mid):
        return {r["email"]: r["status"] for r in self.message(mid)["recipients"]}

    def _wait(self, pred, timeout, interval, what, mid):
        """wait_until, with the message's recipients as they are at the deadline."""
        try:
            return hph.wait_until(pred, timeout=timeout, interval=interval, what=what)
        except TimeoutError as e:
            raise TimeoutError("%s; recipients now: %s" % (e, self._brief(mid))) from None

    def wait_final(self, mid, timeout=40, final=FINAL):
        """Wait until every recipient of mid has a final status; the message."""
        def ok():
            self.check_alive()
            m = self.message(mid)
            return m if all(r["status"] in final for r in m["recipients"]) else None
        return self._wait(ok, timeout, 0.25, "final statuses for %s" % mid, mid)

    def wait_status(self, mid, email, statuses, timeout=40):
        if isinstance(statuses, str):
            statuses = (statuses,)

        def ok():
            self.check_alive()
            r = self.recipient(mid, email)
            return r if r["status"] in statuses else None
        return self._wait(ok, timeout, 0.2, "%s of %s in %s" % (email, mid, statuses), mid)

    def wait_event(self, mid, etype, timeout=40, recipient=None):
        def ok():
            self.check_alive()
            evs = [e for e in self.events(mid) if e["type"] == etype and
                   (recipient is None or (e.get("recipient") or "").lower() == recipient.lower())]
            return evs or None
        return self._wait(ok, timeout, 0.2, "a %s event for %s" % (etype, mid), mid)

    def _brief(self, mid):
        try:
            return json.dumps([(r["email"], r["status"], r.get("attempts"),
                                [(a.get("outcome"), a.get("code"), a.get("response"))
                                 for a in (r.get("attempt_log") or [])]) for r in
                               self.message(mid)["recipients"]])[:1500]
        except Exception as e:  # noqa: BLE001 - only for a message
            return "(%s)" % e

    def events(self, mid):
        """Every event of mid (GET /v1/events?message_id=, paged with after=)."""
        out, after = [], None
        for _ in range(100):
            params = {"message_id": mid, "limit": 100}
            if after:
                params["after"] = after
            r = self.client.get("/v1/events", params=params)
            assert r.status_code == 200, (r.status_code, r.text)
            data = r.json()["data"]
            if not data:
                return out
            out += data
            after = data[-1]["id"]
        return out

    @staticmethod
    def attempts(rcpt):
        """The recipient's attempt records, oldest first: recipients[].attempt_log (the API
        keeps recipients[].attempts as the count)."""
        a = rcpt.get("attempt_log")
        if a is None and isinstance(rcpt.get("attempts"), list):
            a = rcpt["attempts"]
        assert isinstance(a, list), "recipient without attempt records: %r" % (rcpt,)
        return a

    def suppressions(self):
        r = self.client.get("/v1/suppressions", params={"limit": 100})
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["data"]

    # --- operator API: destinations ---------------------------------------------------------
    def destinations(self):
        r = self.op.get("/v1/destinations", validate=self._documented("/v1/destinations"))
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        return body["data"] if isinstance(body, dict) and "data" in body else body

    def destination_action(self, name, action):
        path = "/v1/destinations/%s/%s" % (name, action)
        r = self.op.post(path, validate=self._documented(path))
        assert r.status_code in (200, 202, 204), (path, r.status_code, r.text)
        return r

    def _documented(self, path):
        spec = self.ph.spec
        return spec is not None and spec.find(path)[1] is not None

    # --- SQL ----------------------------------------------------------------------------
    def sql(self, q):
        return self.pg.psql(q, db=self.db_name)


_dbn = iter(range(1, 1 << 30))


def final_states(st, mids):
    """{status: count} over every recipient of mids (one GET each)."""
    out = {}
    for mid in mids:
        for r in st.message(mid)["recipients"]:
            out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def dlv_states(st, dids):
    """{state: count} of deliveries (SQL, cheap for many)."""
    if not dids:
        return {}
    arr = "'{" + ",".join(dids) + "}'"
    out = st.sql("SELECT state, count(*) FROM deliveries WHERE id = ANY (%s::text[]) GROUP BY state"
                 % arr)
    return dict((s, int(c)) for s, c in (line.split("|") for line in out.splitlines() if line))


def smtp_data(ev):
    """The {"code", "enhanced", ...} of a delivery event (data.smtp), or {}."""
    return (ev.get("data") or {}).get("smtp") or {}


@pytest.fixture
def mx_stack(tmp_root, pg, redis, spec):
    """Factory: MxStack(**kw) in the shared cluster and Redis, stopped after the test."""
    made = []

    def make(**kw):
        st = MxStack(tmp_root, pg, redis, spec, **kw)
        made.append(st)
        return st
    yield make
    problems = []
    for st in made:
        problems += st.stop_checked()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def wait(pred, timeout=30, interval=0.1, what="condition"):
    return hph.wait_until(pred, timeout=timeout, interval=interval, what=what)


def now():
    return time.time()
