"""deliver: messages posted through the API until smtp-sink has them all (issue 6), beside
the Postfix peer relaying the same number of messages of the same size to the same kind of
sink, with and without DKIM.

One private stack (benchlib.stack: PostgreSQL with fsync on, Redis, posthorn-api) and one
posthorn-worker in mx mode. dnsmasq serves 20 recipient domains d0.test..d19.test whose MX
(mx.sink.test) is an smtp-sink on 127.0.0.1; a second set s0.test..s19.test has its MX
(mx.slow.test) on a slow smtp-sink on 127.0.0.3 (`-w 1`: one second before each DATA
reply), and check.test on 127.0.0.2 is a sink that dumps what it gets (the DKIM check).
All sinks listen on one common port (POSTHORN_SMTP_PORT).

Figures (each a warm-up of a tenth, then `runs` runs, median):

  posthorn.deliver.dkim   N messages (2,048-byte text body, one recipient each, round-robin
                          over the 20 domains) from a sending domain with an rsa-sha256 key
                          (POST /v1/domains, ed25519 key removed, marked verified), posted
                          with POST /v1/messages/batch (500 per request, 4 connections):
                          N / time from the first request to sink count == N.
  posthorn.deliver.nodkim the same from a domain without a domain row (unsigned).
  posthorn.deliver.slow   M messages to the slow sink (1 s before every DATA reply, -m 2000)
                          with `connections=1000` for mx.slow.test in the bench's policy file
                          and POSTHORN_SMTP_MAX_SESSIONS=2000: M / time to the sink's count.
  peer.postfix[_dkim]_N   the Postfix peer (benchlib.peers) with N messages.

CPU per message: utime+stime of posthorn-worker (all threads, /proc) from just before the
first request until every delivery row is final in PostgreSQL, divided by N; the API and
the PostgreSQL tree likewise (the bench's own CPU, which builds and posts the requests, is
reported apart).
"""
import http.client
import json
import os
import resource
import socket
import threading
import time

from harness import dns as hdns
from harness import mta
from harness import ports as hports

from benchlib import chart, peers, procstat, stack
from benchlib.core import BenchError, FigureSpec

from . import Chart, Report, Scenario
from .inject import pg_snapshot, reset_tables as _reset_sending_tables

FULL = {
    "messages": 50000,
    "slow_messages": 20000,
    "domains": 20,
    "body_bytes": 2048,
    "batch": 500,
    "post_connections": 4,
    "slow_delay_s": 1,
    "slow_sink_max_conn": 2000,
    "slow_connections": 1000,
    "max_sessions": 2000,
    "sample_interval": 0.5,
    "timeout": 900,
}
SMOKE = dict(FULL, messages=200, slow_messages=100, batch=50, post_connections=2,
             slow_sink_max_conn=200, slow_connections=100, max_sessions=200,
             sample_interval=0.1, timeout=120)

GOAL_RATIO = 4.0         # x Postfix + OpenDKIM end to end (issue 6)
GOAL_SLOW = 500.0        # msg/s with 1 s before each DATA reply
FINAL = ("delivered", "bounced", "failed", "expired", "suppressed", "cancelled")
SIGNED_DOMAIN = "signed.posthorn.test"     # domain row with an rsa key: DKIM on
PLAIN_DOMAIN = "plain.posthorn.test"       # no domain row: DKIM off
ADDR_FAST, ADDR_CHECK, ADDR_SLOW = "127.0.0.1", "127.0.0.2", "127.0.0.3"

_LINE = ("Thank you for your order. It has been received and will be prepared for "
         "shipping soon.")


def text_body(size):
    """`size` bytes of plain text in lines of at most 78 characters (CRLF counted as 2)."""
    lines, n = [], 0
    while True:
        line = _LINE[:min(len(_LINE), size - n - 2)]
        if not line:
            break
        lines.append(line)
        n += len(line) + 2
        if size - n < 3:
            break
    out = "\r\n".join(lines)
    out += "x" * (size - len(out))
    assert len(out) == size
    return out


def reset_tables(st):
    """inject's reset (ANALYZE, TRUNCATE, CHECKPOINT), then the planner statistics of the
    emptied tables dropped: every run starts as on a fresh install. Kept, the statistics of
    the previous run (every row 'delivered', none 'sending') make PostgreSQL plan the
    worker's outcome UPDATE (db/stmts.c ST_QUEUE_RECORD) as a nested loop over all the
    worker's 'sending' rows (index deliveries_lease) with jsonb_to_recordset re-run for each:
    O(rows in flight x batch); in a trial 10,000 messages took 17 s of PostgreSQL CPU instead
    of 2 (see bench/README.md, deliver)."""
    for attempt in range(10):
        try:
            _reset_sending_tables(st)
            break
        except RuntimeError as e:
            # TRUNCATE against the running worker's statements can deadlock; try again.
            if "deadlock detected" not in str(e) or attempt == 9:
                raise
            time.sleep(0.2)
    st.pg.psql("DELETE FROM pg_statistic WHERE starelid IN ('messages'::regclass, "
               "'deliveries'::regclass, 'events_default'::regclass, 'attachments'::regclass, "
               "'delivery_attempts'::regclass)", db="posthorn")


def dkim_verdict(m, dkim_key):
    """(header block, number of DKIM-Signature fields, whether dkimpy verifies it with
    SIGNED_DOMAIN's key dkim_key: None without dkimpy) of one received message."""
    head = m.split(b"\r\n\r\n", 1)[0]
    sigs = head.count(b"\r\nDKIM-Signature:") + head.startswith(b"DKIM-Signature:")
    txt = "v=DKIM1; k=rsa; p=%s" % dkim_key["public"]
    name = "%s._domainkey.%s" % (dkim_key["selector"], SIGNED_DOMAIN)
    try:
        import dkim
    except ImportError:
        return head, sigs, None
    ok = bool(dkim.verify(m, dnsfunc=lambda q, timeout=5: txt.encode()
                          if q.rstrip(b".").decode() == name else None))
    return head, sigs, ok


def common_port(addrs):
    for _ in range(500):
        p = hports.free_port(addrs[0])
        if all(hports._can_bind(a, p, socket.SOCK_STREAM) for a in addrs):
            return p
    raise BenchError("no TCP port free on all of %s" % ", ".join(addrs))


class Deliver:
    def __init__(self, ctx, cfg):
        self.ctx, self.cfg = ctx, cfg
        self.st = stack.get(ctx)
        d = ctx.dir("deliver")
        self.port = common_port([ADDR_FAST, ADDR_CHECK, ADDR_SLOW])
        self.sink = mta.SmtpSink(d, host=ADDR_FAST, port=self.port, max_conn=1000,
                                 name="smtp-sink-deliver").start()
        ctx.on_cleanup(self.sink.stop)
        self.check_sink = mta.SmtpSink(d, host=ADDR_CHECK, port=self.port, max_conn=100,
                                       dump_dir=os.path.join(d, "dump"),
                                       name="smtp-sink-check").start()
        ctx.on_cleanup(self.check_sink.stop)
        self.slow_sink = mta.SmtpSink(d, host=ADDR_SLOW, port=self.port,
                                      max_conn=cfg["slow_sink_max_conn"], backlog=4096,
                                      data_delay=cfg["slow_delay_s"],
                                      name="smtp-sink-slow").start()
        ctx.on_cleanup(self.slow_sink.stop)
        n = cfg["domains"]
        mx = [("d%d.test" % i, "mx.sink.test", 10) for i in range(n)]
        mx += [("s%d.test" % i, "mx.slow.test", 10) for i in range(n)]
        mx += [("check.test", "mx.check.test", 10)]
        self.dns = hdns.Dnsmasq(os.path.join(d, "dns"), mx=mx,
                                hosts=[("mx.sink.test", ADDR_FAST), ("mx.check.test", ADDR_CHECK),
                                       ("mx.slow.test", ADDR_SLOW)])
        ctx.on_cleanup(self.dns.destroy)
        self.policy_path = os.path.join(d, "destinations.conf")
        self.policy = ("# bench/scenarios/deliver.py: the slow sink's MX gets raised limits;\n"
                       "# everything else the shipped defaults (etc/destinations.conf).\n"
                       "mx.slow.test connections=%d\n"
                       "*            connections=20 messages_per_connection=100 "
                       "rcpts_per_message=50 rate=0 tls=may\n" % cfg["slow_connections"])
        with open(self.policy_path, "w") as f:
            f.write(self.policy)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = cfg["max_sessions"] + 1024
        if soft < want:   # the worker inherits it
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
        self.worker_env = {
            "POSTHORN_DNS_SERVER": self.dns.server,
            "POSTHORN_SMTP_PORT": str(self.port),
            "POSTHORN_DESTINATION_POLICY": self.policy_path,
            "POSTHORN_SMTP_MAX_SESSIONS": str(cfg["max_sessions"]),
            # Production's default lease (the test harness's 30 s is for tests that kill
            # workers): a worker holds what it claimed while it works through it.
            "POSTHORN_LEASE": "5m",
        }
        reset_tables(self.st)     # nothing left from another scenario for the worker
        self.worker = self.st.start_worker(self.worker_env)
        ctx.on_cleanup(self.worker.stop)
        self.dkim_key = self.make_domain()
        self.body = text_body(cfg["body_bytes"])

    # --- setup ----------------------------------------------------------------------------
    def sql(self, q):
        return self.st.pg.psql(q, db="posthorn")

    def api(self, method, path, body=None):
        c = http.client.HTTPConnection(self.st.api.host, self.st.api.port, timeout=120)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Authorization": "Bearer " + self.st.key,
                               "Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            c.close()

    def make_domain(self, exists_ok=False):
        """SIGNED_DOMAIN through the API (rsa-sha256 2048 and ed25519 keys), then, in SQL,
        marked verified and its ed25519 key dropped: rsa-sha256 only, as OpenDKIM signs.
        exists_ok: another scenario of this invocation's stack may have made it (409)."""
        status, doc = self.api("POST", "/v1/domains", {"name": SIGNED_DOMAIN})
        if status not in ((200, 201, 409) if exists_ok else (200, 201)):
            raise BenchError("POST /v1/domains answered %s: %s" % (status, doc))
        self.sql("UPDATE domains SET verified_at = now(), dkim_ed25519_private = NULL, "
                 "dkim_ed25519_public = NULL WHERE name = '%s'" % SIGNED_DOMAIN)
        row = self.sql("SELECT dkim_selector, dkim_rsa_public FROM domains WHERE name = '%s'"
                       % SIGNED_DOMAIN).split("|")
        return {"selector": row[0], "public": row[1]}

    def message(self, sender_domain, rcpt):
        return {"from": {"email": "shop@" + sender_domain, "name": "Bench Shop"},
                "to": [{"email": rcpt}], "subject": "Your receipt", "text": self.body}

    def bodies(self, n, sender_domain, domain_prefix, tag):
        """Request bodies (bytes) of up to `batch` messages, n messages in all, recipient i
        at <prefix><i % domains>.test."""
        b, nd = self.cfg["batch"], self.cfg["domains"]
        out = []
        for start in range(0, n, b):
            msgs = [self.message(sender_domain, "u%s-%d@%s%d.test" % (tag, i, domain_prefix,
                                                                       i % nd))
                    for i in range(start, min(n, start + b))]
            out.append(json.dumps({"messages": msgs}, separators=(",", ":")).encode())
        return out

    # --- posting --------------------------------------------------------------------------
    def post_all(self, bodies):
        """POST every body to /v1/messages/batch over post_connections keep-alive connections.
        Returns (accepted, seconds)."""
        todo = list(enumerate(bodies))
        lock = threading.Lock()
        accepted = [0]
        errors = []
        host, port = self.st.api.host, self.st.api.port
        hdrs = {"Authorization": "Bearer " + self.st.key, "Content-Type": "application/json"}

        def worker():
            c = http.client.HTTPConnection(host, port, timeout=300)
            try:
                while True:
                    with lock:
                        if not todo or errors:
                            return
                        _, body = todo.pop(0)
                    c.request("POST", "/v1/messages/batch", body=body, headers=hdrs)
                    r = c.getresponse()
                    data = r.read()
                    if r.status != 200:
                        errors.append("%d %s" % (r.status, data[:500]))
                        return
                    ok = sum(1 for e in json.loads(data)["data"] if "id" in e)
                    with lock:
                        accepted[0] += ok
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))
            finally:
                c.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(min(self.cfg["post_connections"], len(bodies)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise BenchError("posting failed: %s" % errors[0])
        return accepted[0], time.monotonic() - t0

    def final_count(self):
        return int(self.sql("SELECT count(*) FROM deliveries WHERE state IN (%s)" % ", ".join(
            "'%s'" % s for s in FINAL)))

    # --- one timed run --------------------------------------------------------------------
    def run_once(self, fid, sink, n, sender_domain, domain_prefix, warm):
        cfg = self.ctx.params
        reset_tables(self.st)
        tag = "%s%d" % (fid[0], int(time.time() * 1000) % 10**9)
        bodies = self.bodies(n, sender_domain, domain_prefix, tag)
        wpid = self.worker.pid
        if not self.worker.alive():
            raise BenchError("posthorn-worker is not running (log: %s)" % self.worker.log_path)
        apid = self.st.api.pid
        c0 = sink.count()
        w0 = procstat.cpu_seconds(wpid)
        a0 = procstat.cpu_seconds(apid)
        pg0 = pg_snapshot(self.st)
        self0 = os.times()
        sink0 = procstat.cpu_seconds(sink.proc.pid)
        busy = procstat.MachineCpu().start()
        mem = procstat.Sampler(lambda: procstat.status_kb(wpid, "VmRSS"), 0.5).start()
        series = [(0.0, 0, 0)]
        result = {}
        t0 = time.monotonic()

        def poster():
            try:
                result["accepted"], result["post_s"] = self.post_all(bodies)
            except Exception as e:  # noqa: BLE001
                result["error"] = e
        pt = threading.Thread(target=poster, daemon=True)
        pt.start()
        interval = self.cfg["sample_interval"]
        next_sample = t0 + interval
        e2e_s = None
        timeout = max(self.cfg["timeout"], n / 50.0)
        try:
            while e2e_s is None:
                now = time.monotonic()
                got = sink.count() - c0
                if got >= n:
                    e2e_s = now - t0
                    break
                if "error" in result:
                    raise result["error"]
                if now >= next_sample:
                    posted = result.get("accepted", None)
                    series.append((round(now - t0, 3), posted if posted is not None else -1, got))
                    next_sample += interval
                if now - t0 > timeout:
                    raise BenchError("deliver %s: timeout after %ds: %d at the sink; deliveries "
                                     "final: %d" % (fid, timeout, got, self.final_count()))
                time.sleep(0.005)
            pt.join()
            if "error" in result:
                raise result["error"]
            series.append((round(e2e_s, 3), n, sink.count() - c0))
            # Every delivery row final in PostgreSQL: the worker's work for the run is done.
            deadline = time.monotonic() + 120
            while True:
                fin = self.final_count()
                if fin >= n:
                    break
                if time.monotonic() > deadline:
                    raise BenchError("deliver %s: only %d of %d deliveries final" % (fid, fin, n))
                time.sleep(0.05)
            final_s = time.monotonic() - t0
        finally:
            mem.stop()
        machine_busy = busy.stop()
        w_cpu = procstat.cpu_seconds(wpid) - w0
        a_cpu = procstat.cpu_seconds(apid) - a0
        pg1 = pg_snapshot(self.st)
        pg_cpu = sum(c for p, (_, c) in pg1["procs"].items()) + pg1["exited"] - (
            sum(c for p, (_, c) in pg0["procs"].items() if p in pg1["procs"]) + pg0["exited"])
        self1 = os.times()
        extra = sink.count() - c0 - n      # sent twice (a lease taken over) or more
        states = dict(tuple(r.split("|")) for r in self.sql(
            "SELECT state, count(*) FROM deliveries GROUP BY state").split("\n") if r)
        if result["accepted"] != n or int(states.get("delivered", 0)) != n:
            raise BenchError("deliver %s: accepted %s, states %s" % (fid, result["accepted"], states))
        return {
            fid: n / e2e_s,
            fid + "_cpu": 1000.0 * w_cpu / n,
            fid + "_cpu_all": 1000.0 * (w_cpu + a_cpu + pg_cpu) / n,
            "messages": n,
            "e2e_s": round(e2e_s, 3),
            "post_s": round(result["post_s"], 3),
            "post_rate": round(n / result["post_s"], 1),
            "all_final_in_db_s": round(final_s, 3),
            "worker_cpu_s": round(w_cpu, 3),
            "api_cpu_s": round(a_cpu, 3),
            "postgres_cpu_s": round(pg_cpu, 3),
            "bench_cpu_s": round((self1.user + self1.system) - (self0.user + self0.system), 3),
            "sink_cpu_s": round(procstat.cpu_seconds(sink.proc.pid) - sink0, 3),
            "worker_cpu_ms_per_msg": round(1000.0 * w_cpu / n, 4),
            "api_cpu_ms_per_msg": round(1000.0 * a_cpu / n, 4),
            "postgres_cpu_ms_per_msg": round(1000.0 * pg_cpu / n, 4),
            "worker_peak_rss_kb": mem.peak(),
            "machine_cpu_busy": round(machine_busy, 3),
            "delivery_states": states,
            "sink_count_beyond_n": extra,
            "worker_log_warnings": self.worker_warnings(),
            "series": series,
        }

    def worker_warnings(self):
        """Warning lines the worker has logged so far, by message (first 80 characters)."""
        out = {}
        try:
            with open(self.worker.log_path, errors="replace") as f:
                for line in f:
                    try:
                        d = json.loads(line)
                    except ValueError:
                        continue
                    if d.get("level") in ("warn", "error"):
                        k = d.get("msg", "")[:80]
                        out[k] = out.get(k, 0) + 1
        except OSError:
            pass
        return out

    # --- DKIM check (not timed) -----------------------------------------------------------
    def check_signatures(self):
        """Two messages to check.test (dumping sink), one signed, one not: the signed one
        carries exactly one DKIM-Signature, a=rsa-sha256, that dkimpy verifies; the other none."""
        n0 = self.check_sink.count()
        acc, _ = self.post_all([json.dumps({"messages": [
            self.message(SIGNED_DOMAIN, "signed@check.test"),
            self.message(PLAIN_DOMAIN, "plain@check.test")]}).encode()])
        if acc != 2:
            raise BenchError("DKIM check: %d of 2 accepted" % acc)
        self.check_sink.wait_count(n0 + 2, timeout=60)
        out = {}
        for m in self.check_sink.messages()[-2:]:
            head, sigs, ok = dkim_verdict(m, self.dkim_key)
            if b"@" + SIGNED_DOMAIN.encode() in head.split(b"\r\nFrom:", 1)[-1][:200]:
                if sigs != 1 or b"a=rsa-sha256" not in head or ok is False:
                    raise BenchError("DKIM check: signed message has %d signatures, rsa %s, "
                                     "verifies %s:\n%s" % (sigs, b"a=rsa-sha256" in head, ok,
                                                           head.decode(errors="replace")))
                out["signed"] = {"dkim_signatures": sigs, "algorithm": "rsa-sha256",
                                 "dkimpy_verifies": ok, "bytes": len(m)}
            else:
                if sigs:
                    raise BenchError("DKIM check: unsigned message has a DKIM-Signature")
                out["unsigned"] = {"dkim_signatures": 0, "bytes": len(m)}
        if set(out) != {"signed", "unsigned"}:
            raise BenchError("DKIM check: got %s" % sorted(out))
        return out


def run(ctx):
    cfg = SMOKE if ctx.smoke else FULL
    p = ctx.params
    n = cfg["messages"]
    ns = cfg["slow_messages"]
    figs = []
    pf = "peer.postfix_dkim" if n == p["messages"] else "peer.postfix_dkim_%d" % n
    pn = "peer.postfix" if n == p["messages"] else "peer.postfix_%d" % n

    ctx.log("posthorn.deliver: starting the stack, sinks, dnsmasq and a worker")
    dv = Deliver(ctx, cfg)
    check = dv.check_signatures()
    ctx.log("posthorn.deliver: DKIM check %s" % check)
    conditions = {
        "messages": n, "body_bytes": cfg["body_bytes"], "recipients_per_message": 1,
        "domains": "d0.test..d%d.test, MX mx.sink.test -> smtp-sink on %s:%d" % (
            cfg["domains"] - 1, ADDR_FAST, dv.port),
        "posting": "POST /v1/messages/batch, %d messages per request, %d keep-alive "
                   "connections (Python http.client threads), bodies built before timing" % (
                       cfg["batch"], cfg["post_connections"]),
        "timing": "first request -> smtp-sink's count reaches N (polled every 5 ms)",
        "cpu": "posthorn-worker utime+stime (all threads) from before the first request until "
               "every delivery row is final in PostgreSQL, / N",
        "sink": "smtp-sink -c -m 1000 (discards messages)",
        "policy_file": dv.policy,
        "settings": dict(dv.st.settings(), **{k: v for k, v in dv.worker_env.items()
                                              if k != "POSTHORN_DNS_SERVER"}),
        "dkim_check": check,
    }
    per = []
    for fid, label, dom in (("posthorn.deliver.dkim", "DKIM rsa-sha256", SIGNED_DOMAIN),
                            ("posthorn.deliver.nodkim", "no DKIM", PLAIN_DOMAIN)):
        specs = [FigureSpec(fid, "posthorn", "Posthorn API -> worker -> smtp-sink, %s" % label,
                            "msg/s"),
                 FigureSpec(fid + "_cpu", "posthorn", "Posthorn worker CPU per message, %s"
                            % label, "ms CPU/msg", better="lower", fmt="{:.3f}"),
                 FigureSpec(fid + "_cpu_all", "posthorn", "Posthorn CPU per message, worker + "
                            "API + PostgreSQL, %s" % label, "ms CPU/msg", better="lower",
                            fmt="{:.3f}")]
        c = dict(conditions, dkim=label, sender="shop@" + dom)
        figs += ctx.measure(fid, specs, lambda warm, fid=fid, dom=dom: dv.run_once(
            fid, dv.sink, max(1, n // 10) if warm else n, dom, "d", warm), c, chart_key=fid)
        per.append(fid)

    fid = "posthorn.deliver.slow"
    specs = [FigureSpec(fid, "posthorn", "Posthorn -> smtp-sink -w %d (%ds before each DATA "
                        "reply), DKIM rsa-sha256" % (cfg["slow_delay_s"], cfg["slow_delay_s"]),
                        "msg/s"),
             FigureSpec(fid + "_cpu", "posthorn", "Posthorn worker CPU per message, slow sink",
                        "ms CPU/msg", better="lower", fmt="{:.3f}"),
             FigureSpec(fid + "_cpu_all", "posthorn", "Posthorn CPU per message, worker + API + "
                        "PostgreSQL, slow sink", "ms CPU/msg", better="lower", fmt="{:.3f}")]
    c = dict(conditions, messages=ns, dkim="rsa-sha256", sender="shop@" + SIGNED_DOMAIN,
             domains="s0.test..s%d.test, MX mx.slow.test -> smtp-sink -w %d -m %d on %s:%d" % (
                 cfg["domains"] - 1, cfg["slow_delay_s"], cfg["slow_sink_max_conn"], ADDR_SLOW,
                 dv.port),
             sink="smtp-sink -c -w %d -m %d" % (cfg["slow_delay_s"], cfg["slow_sink_max_conn"]))
    figs += ctx.measure(fid, specs, lambda warm: dv.run_once(
        fid, dv.slow_sink, max(1, ns // 10) if warm else ns, SIGNED_DOMAIN, "s", warm), c,
        chart_key=fid)

    dv.worker.stop()      # idle from here on: the peers run alone
    # The peers after Posthorn (a Posthorn failure shows in minutes, not after the peers).
    figs += peers.postfix(ctx, dkim=True, messages=n)
    figs += peers.postfix(ctx, dkim=False, messages=n)

    F = ctx.figures
    notes = ["SMOKE: tiny counts, the goals are not judged by this run"] if ctx.smoke else []
    r_dk = F["posthorn.deliver.dkim"].median / F[pf + ".e2e"].median
    r_no = F["posthorn.deliver.nodkim"].median / F[pn + ".e2e"].median
    notes.append("goal DKIM: Posthorn %.0f msg/s = %.2fx Postfix + OpenDKIM's %.0f msg/s end to "
                 "end; goal >= %gx: %s" % (F["posthorn.deliver.dkim"].median, r_dk,
                                           F[pf + ".e2e"].median, GOAL_RATIO,
                                           "met" if r_dk >= GOAL_RATIO else "MISSED"))
    notes.append("no DKIM: Posthorn %.0f msg/s = %.2fx Postfix's %.0f msg/s end to end" % (
        F["posthorn.deliver.nodkim"].median, r_no, F[pn + ".e2e"].median))
    sl = F["posthorn.deliver.slow"].median
    notes.append("goal slow sink: %.0f msg/s with %ds before each DATA reply; goal >= %.0f: %s"
                 % (sl, cfg["slow_delay_s"], GOAL_SLOW, "met" if sl >= GOAL_SLOW else "MISSED"))
    for f in per + ["posthorn.deliver.slow"]:
        d = F[f].details[F[f].median_run]
        notes.append("%s, median run: posting %.1fs (%.0f msg/s), sink complete %.1fs, all rows "
                     "final %.1fs; CPU ms/msg: worker %.3f, api %.3f, PostgreSQL %.3f (bench "
                     "poster %.1fs CPU, sink %.1fs); machine %.0f%% busy; worker peak RSS %d MB"
                     % (f, d["post_s"], d["post_rate"], d["e2e_s"], d["all_final_in_db_s"],
                        d["worker_cpu_ms_per_msg"], d["api_cpu_ms_per_msg"],
                        d["postgres_cpu_ms_per_msg"], d["bench_cpu_s"], d["sink_cpu_s"],
                        100 * d["machine_cpu_busy"], d["worker_peak_rss_kb"] // 1024))
        dup = [F[f].details[i]["sink_count_beyond_n"] for i in range(len(F[f].values))]
        if any(dup):
            notes.append("%s: the sink counted more than N (sent again after a lease ran out) "
                         "in the runs: %s" % (f, dup))
    warns = dv.worker_warnings()
    if warns:
        notes.append("posthorn-worker warnings over the whole scenario: %s" % "; ".join(
            "%d x %s" % (v, k) for k, v in sorted(warns.items(), key=lambda kv: -kv[1])[:5]))

    series = []
    min_dt = cfg["sample_interval"] / 2
    for mid, label in (("posthorn.deliver.dkim", "Posthorn DKIM"),
                       ("posthorn.deliver.nodkim", "Posthorn no DKIM"),
                       ("posthorn.deliver.slow", "Posthorn slow sink"),
                       (pf, "Postfix+OpenDKIM"), (pn, "Postfix")):
        pts = ctx.charts.get(mid)
        if pts:
            series.append(("%s delivered/s" % label,
                           chart.rates([(t, d) for t, _, d in pts], min_dt)))
    charts = [Chart("deliver", "Delivered to smtp-sink per second, %d x 2 KB (median runs)" % n,
                    series)]
    comparisons = [
        ("end to end, DKIM rsa-sha256 (msg/s)", "posthorn.deliver.dkim", pf + ".e2e", None),
        ("end to end, no DKIM (msg/s)", "posthorn.deliver.nodkim", pn + ".e2e", None),
        ("CPU/msg, DKIM (ms; worker+API+PostgreSQL vs Postfix tree+opendkim)",
         "posthorn.deliver.dkim_cpu_all", pf + ".cpu_per_msg", None),
        ("CPU/msg, no DKIM (ms; worker+API+PostgreSQL vs Postfix tree)",
         "posthorn.deliver.nodkim_cpu_all", pn + ".cpu_per_msg", None),
        ("CPU/msg, DKIM (ms; worker only vs Postfix tree+opendkim)",
         "posthorn.deliver.dkim_cpu", pf + ".cpu_per_msg", None),
    ]
    return Report([f.spec.id for f in figs], comparisons, charts,
                  extra={"notes": notes, "deliver": {"parameters": cfg, "goal_ratio": GOAL_RATIO,
                                                     "goal_slow": GOAL_SLOW}})


SCENARIO = Scenario("deliver", "API -> queue -> worker -> SMTP to smtp-sink, DKIM on and off, "
                    "beside Postfix (+ OpenDKIM) relaying as many; and a slow sink", run, order=30)
