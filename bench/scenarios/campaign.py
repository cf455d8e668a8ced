"""campaign: lists and campaigns (issue 8). A 1,000,000-row CSV imported over HTTP; a
200,000-recipient campaign expanded and delivered to smtp-sink, beside Postfix + OpenDKIM
relaying as many in the same invocation; rate_per_minute accuracy; transactional latency
while the campaign sends next to its idle value; and the cost of the campaign-counter
statement triggers (migrations/0008) on transactional traffic.

One private stack (benchlib.stack) and one posthorn-worker in mx mode. dnsmasq serves 10
recipient domains d0.test..d9.test whose MX (mx.sink.test) is an smtp-sink on 127.0.0.1
(one destination: 20 sessions with the shipped policy), and tx.test whose MX (mx.tx.test)
is a dumping smtp-sink on 127.0.0.2 (the transactional messages: each arrives as a file
whose mtime is its arrival time). Both sinks listen on one port (POSTHORN_SMTP_PORT).

Figures (the big ones are made ONCE, no warm-up: runs=1 in their `runs` lists):

  posthorn.campaign.import*     a CSV of `import_rows` rows (email, first_name, city, n;
                                addresses over the 10 domains), written to a file first,
                                streamed with Content-Length as text/csv to
                                POST /v1/lists/{id}/contacts: rows/s, seconds, peak API RSS.
  posthorn.campaign.expand      N / (send -> campaign progress says expanded), N = the
                                contacts of a second list (imported apart, `campaign_rows`).
  posthorn.campaign.send        N / (POST /v1/campaigns/{id}/send -> sink count == N),
                                DKIM rsa-sha256 (the deliver scenario's signed domain).
  posthorn.campaign.sent_s      send -> campaign state `sent`.
  posthorn.campaign.worker_rss  peak VmRSS of posthorn-worker over the send (goal < 200 MB).
  posthorn.campaign.pg_bytes*   growth of pg_database_size and of deliveries, events (all
                                partitions) and messages (each with indexes and TOAST) from
                                just before send to the moment expansion completed, / N.
  posthorn.campaign.*cpu*       worker, and worker + API + PostgreSQL, CPU ms per message
                                from send until the campaign is `sent`.
  posthorn.campaign.rate*       a campaign with rate_per_minute R over `rate_rows` contacts:
                                achieved rate over the steady part (10 % to 90 % of the
                                arrivals at the sink, count polled every 20 ms) / R, and the
                                window (10 s) farthest from R, as a ratio.
  posthorn.campaign.tx_*        transactional POST /v1/messages at `tx_rate`/s for
                                `tx_seconds`, accept (the 202) -> arrival at the tx sink:
                                p50/p99 idle, then during the big campaign, and the ratio.
  posthorn.campaign.trigger_*   transactional batches (deliver.run_once, unsigned) with the
                                deliveries_campaign_* triggers enabled and disabled: msg/s
                                and PostgreSQL CPU ms per message (warm-up + `runs` runs).
  peer.postfix_dkim_<N>         Postfix + OpenDKIM relaying N messages (benchlib.peers), once.
"""
import http.client
import json
import os
import re
import threading
import time

from harness import dns as hdns
from harness import mta

from benchlib import chart, peers, procstat, stack
from benchlib.core import BenchError, FigureSpec

from . import Chart, Report, Scenario
from .deliver import (PLAIN_DOMAIN, SIGNED_DOMAIN, Deliver, common_port, dkim_verdict,
                      reset_tables, text_body)
from .inject import pg_snapshot

FULL = {
    "import_rows": 1000000,
    "campaign_rows": 200000,
    "domains": 10,
    "body_bytes": 2048,
    "rate_per_minute": 3000,
    "rate_rows": 6000,             # two minutes at 3000/min
    "rate_window_s": 10,
    "tx_rate": 10,
    "tx_seconds": 30,
    "tx_during_delay_s": 5,        # after send, so the posting falls in the campaign
    "trigger_messages": 20000,
    "batch": 500,                  # for the trigger runs (deliver.run_once)
    "post_connections": 4,
    "sample_interval": 0.5,
    "timeout": 900,
    "campaign_timeout": 3600,
    "idle_cpu_s": 3,
}
SMOKE = dict(FULL, import_rows=2000, campaign_rows=200, rate_per_minute=1200, rate_rows=100,
             rate_window_s=1, tx_rate=10, tx_seconds=1.5, tx_during_delay_s=0,
             trigger_messages=200, batch=50, post_connections=2, sample_interval=0.1,
             timeout=120, campaign_timeout=180, idle_cpu_s=0.5)

GOAL_RSS_MB = 200.0
GOAL_TX_P99_RATIO = 2.0
# Arrival times are the dump files' mtimes, which the kernel takes from its coarse clock (up
# to one tick, 4 ms, behind): latencies below this are not resolved, and the ratio's idle
# side is taken as at least this.
TX_RESOLUTION_MS = 4.0
ADDR_SINK, ADDR_TX = "127.0.0.1", "127.0.0.2"
TX_DOMAIN = "tx.test"


def _pct(values, p):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


class Campaigns(Deliver):
    """The scenario's stack: sinks, dnsmasq, one worker. Inherits deliver's posting,
    run_once (the trigger runs), api() and sql()."""

    def __init__(self, ctx, cfg):  # noqa: super().__init__ builds deliver's own sinks
        self.ctx, self.cfg = ctx, cfg
        self.st = stack.get(ctx)
        d = ctx.dir("campaign")
        self.work = d
        self.port = common_port([ADDR_SINK, ADDR_TX])
        self.sink = mta.SmtpSink(d, host=ADDR_SINK, port=self.port, max_conn=1000,
                                 name="smtp-sink-campaign").start()
        ctx.on_cleanup(self.sink.stop)
        self.tx_dump = os.path.join(d, "txdump")
        self.tx_sink = mta.SmtpSink(d, host=ADDR_TX, port=self.port, max_conn=100,
                                    dump_dir=self.tx_dump, name="smtp-sink-tx").start()
        ctx.on_cleanup(self.tx_sink.stop)
        n = cfg["domains"]
        mx = [("d%d.test" % i, "mx.sink.test", 10) for i in range(n)]
        mx += [(TX_DOMAIN, "mx.tx.test", 10)]
        self.dns = hdns.Dnsmasq(os.path.join(d, "dns"), mx=mx,
                                hosts=[("mx.sink.test", ADDR_SINK), ("mx.tx.test", ADDR_TX)])
        ctx.on_cleanup(self.dns.destroy)
        self.policy_path = os.path.join(d, "destinations.conf")
        self.policy = ("# bench/scenarios/campaign.py: the shipped defaults "
                       "(etc/destinations.conf) for every destination.\n"
                       "*            connections=20 messages_per_connection=100 "
                       "rcpts_per_message=50 rate=0 tls=may\n")
        with open(self.policy_path, "w") as f:
            f.write(self.policy)
        self.worker_env = {
            "POSTHORN_DNS_SERVER": self.dns.server,
            "POSTHORN_SMTP_PORT": str(self.port),
            "POSTHORN_DESTINATION_POLICY": self.policy_path,
            "POSTHORN_LEASE": "5m",
        }
        reset_tables(self.st)
        self.worker = self.st.start_worker(self.worker_env)
        ctx.on_cleanup(self.worker.stop)
        # deliver's SIGNED_DOMAIN; the deliver scenario may have made it in this stack
        self.dkim_key = self.make_domain(exists_ok=True)
        self.body = text_body(cfg["body_bytes"])
        self.campaign_text = ("Dear {{first_name}} of {{city}}, your number is {{n}}.\r\n\r\n"
                              + text_body(cfg["body_bytes"] - 56))

    # --- lists ---------------------------------------------------------------------------
    def write_csv(self, name, prefix, rows):
        """A CSV file of `rows` contacts, addresses <prefix><i>@d<i % domains>.test."""
        path = os.path.join(self.work, name + ".csv")
        nd = self.cfg["domains"]
        cities = ["Aachen", "Bern", "Cork", "Dover", "Essen", "Faro", "Graz", "Hull"]
        with open(path, "w") as f:
            f.write("email,first_name,city,n\n")
            step = 10000
            for s in range(0, rows, step):
                f.write("".join("%s%07d@d%d.test,Name%d,%s,%d\n" % (
                    prefix, i, i % nd, i, cities[i % 8], i) for i in range(s, min(rows, s + step))))
        return path

    def new_list(self, name):
        status, doc = self.api("POST", "/v1/lists", {"name": name})
        if status != 201:
            raise BenchError("POST /v1/lists answered %s: %s" % (status, doc))
        return doc["id"]

    def import_csv(self, lid, path, rows):
        """Streams the file (Content-Length, 64 KB blocks). Returns details with seconds,
        rows/s and the API's peak RSS."""
        apid = self.st.api.pid
        size = os.path.getsize(path)
        rss = procstat.Sampler(lambda: procstat.status_kb(apid, "VmRSS"), 0.2).start()
        a0 = procstat.cpu_seconds(apid)
        pg0 = pg_snapshot(self.st)
        busy = procstat.MachineCpu().start()
        c = http.client.HTTPConnection(self.st.api.host, self.st.api.port, timeout=1800,
                                       blocksize=65536)
        try:
            t0 = time.monotonic()
            with open(path, "rb") as f:
                c.request("POST", "/v1/lists/%s/contacts" % lid, body=f,
                          headers={"Authorization": "Bearer " + self.st.key,
                                   "Content-Type": "text/csv", "Content-Length": str(size)})
                r = c.getresponse()
                data = r.read()
            secs = time.monotonic() - t0
        finally:
            c.close()
            rss.stop()
        machine = busy.stop()
        if r.status != 200:
            raise BenchError("CSV import answered %d: %s" % (r.status, data[:500]))
        doc = json.loads(data)
        if doc.get("inserted") != rows or doc.get("rejected_count"):
            raise BenchError("CSV import: %d rows sent, answer %s" % (rows, str(doc)[:500]))
        pg1 = pg_snapshot(self.st)
        return {"rows": rows, "bytes": size, "seconds": round(secs, 3),
                "rows_per_s": rows / secs, "api_peak_rss_kb": rss.peak(),
                "api_rss_at_start_kb": rss.samples[0][1] if rss.samples else 0,
                "api_cpu_s": round(procstat.cpu_seconds(apid) - a0, 3),
                "postgres_cpu_s": round(_pg_cpu(pg0, pg1), 3),
                "machine_cpu_busy": round(machine, 3)}

    # --- campaigns -----------------------------------------------------------------------
    def new_campaign(self, lid, name, rate=None):
        body = {"name": name, "list_id": lid,
                "from": {"email": "news@" + SIGNED_DOMAIN, "name": "Bench News"},
                "subject": "News for {{first_name}}", "text": self.campaign_text,
                "data": {"city": "Nowhere", "n": "0"}}
        if rate:
            body["rate_per_minute"] = rate
        status, doc = self.api("POST", "/v1/campaigns", body)
        if status != 201:
            raise BenchError("POST /v1/campaigns answered %s: %s" % (status, doc))
        return doc["id"]

    def campaign(self, cid):
        status, doc = self.api("GET", "/v1/campaigns/" + cid)
        if status != 200:
            raise BenchError("GET /v1/campaigns/%s answered %s: %s" % (cid, status, doc))
        return doc

    def send(self, cid):
        status, doc = self.api("POST", "/v1/campaigns/%s/send" % cid)
        if status != 200:
            raise BenchError("send answered %s: %s" % (status, doc))
        return doc

    def wait_campaign(self, cid, state, timeout):
        deadline = time.monotonic() + timeout
        while True:
            c = self.campaign(cid)
            if c["state"] == state:
                return c
            if time.monotonic() > deadline:
                raise BenchError("campaign %s not %s after %ds: %s" % (cid, state, timeout, c))
            time.sleep(0.2)

    def pg_sizes(self):
        row = self.sql(
            "SELECT pg_database_size(current_database()), pg_total_relation_size('deliveries'),"
            " (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree("
            "'events') WHERE isleaf), pg_total_relation_size('messages'),"
            " pg_total_relation_size('delivery_attempts'),"
            " pg_total_relation_size('campaign_counters')").split("|")
        keys = ("database", "deliveries", "events", "messages", "delivery_attempts",
                "campaign_counters")
        return {k: int(v) for k, v in zip(keys, row)}

    def states(self, cid=None):
        w = " WHERE campaign_id = '%s'" % cid if cid else ""
        return {k: int(v) for k, v in (r.split("|") for r in self.sql(
            "SELECT state, count(*) FROM deliveries%s GROUP BY state" % w).split("\n") if r)}

    def dkim_check(self, lid_check):
        """One campaign message to the dumping sink: exactly one DKIM-Signature, rsa-sha256,
        that dkimpy verifies with the domain's key (skipped without dkimpy)."""
        cid = self.new_campaign(lid_check, "dkim check")
        n0 = self.tx_sink.count()
        self.send(cid)
        self.tx_sink.wait_count(n0 + 1, timeout=60)
        self.wait_campaign(cid, "sent", 60)
        m = [x for x in self.tx_sink.messages() if b"News for Check" in x][-1]
        head, sigs, ok = dkim_verdict(m, self.dkim_key)
        if sigs != 1 or b"a=rsa-sha256" not in head or ok is False:
            raise BenchError("campaign DKIM check: %d signatures, rsa %s, verifies %s:\n%s" % (
                sigs, b"a=rsa-sha256" in head, ok, head.decode(errors="replace")))
        return {"dkim_signatures": sigs, "algorithm": "rsa-sha256", "dkimpy_verifies": ok,
                "bytes": len(m)}

    # --- transactional latency -----------------------------------------------------------
    def tx_post(self, tag, rate, seconds, out):
        """POST /v1/messages to tx.test at `rate`/s for `seconds` (one keep-alive
        connection, each request at its scheduled time or as soon as the previous one is
        answered). out: list of (recipient, t_request, t_202) wall-clock times."""
        n = max(1, int(rate * seconds))
        c = http.client.HTTPConnection(self.st.api.host, self.st.api.port, timeout=120)
        hdrs = {"Authorization": "Bearer " + self.st.key, "Content-Type": "application/json"}
        start = time.monotonic()
        try:
            for i in range(n):
                wait = start + i / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                rcpt = "tx-%s-%d@%s" % (tag, i, TX_DOMAIN)
                body = json.dumps(self.message(SIGNED_DOMAIN, rcpt))
                t_req = time.time()
                c.request("POST", "/v1/messages", body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                t_acc = time.time()
                if r.status != 202:
                    raise BenchError("POST /v1/messages answered %d: %s" % (r.status, data[:300]))
                out.append((rcpt, t_req, t_acc))
        finally:
            c.close()

    def tx_arrivals(self, want, seen_before, timeout=120):
        """{recipient: arrival (wall clock, the dump file's mtime)} of dump files not in
        seen_before, waiting until `want` recipients are there."""
        deadline = time.monotonic() + timeout
        out = {}
        while True:
            for fn in os.listdir(self.tx_dump):
                if fn in seen_before:
                    continue
                p = os.path.join(self.tx_dump, fn)
                try:
                    st = os.stat(p)
                    with open(p, "rb") as f:
                        head = f.read(4096)
                except OSError:
                    continue
                m = re.search(rb"^X-Rcpt-Args: .*?<?([^<>\s]+@[^<>\s]+)>?", head, re.M) or \
                    re.search(rb"^To: .*?<?([^<>\s]+@[^<>\s]+)>?", head, re.M)
                if m:
                    out[m.group(1).decode().lower()] = st.st_mtime_ns / 1e9
            if all(r in out for r in want):
                return out
            if time.monotonic() > deadline:
                missing = [r for r in want if r not in out]
                raise BenchError("transactional: %d of %d never reached the sink (e.g. %s)" % (
                    len(missing), len(want), missing[:3]))
            time.sleep(0.2)

    def tx_latency(self, posted, seen_before, t_ref=None):
        """p50/p99 of request -> arrival (the request's start, not its 202: a file mtime can
        lag the 202 and read as a negative latency); samples: (202 time - t_ref in s, latency
        ms) of each message (t_ref: the first 202 unless given)."""
        arr = self.tx_arrivals([r for r, _, _ in posted], seen_before)
        # an mtime may lag the request by up to a coarse-clock tick: never below 0
        lat = [max(0.0, 1000.0 * (arr[r] - t_req)) for r, t_req, _ in posted]
        t_ref = posted[0][2] if t_ref is None else t_ref
        req = [1000.0 * (t_acc - t_req) for _, t_req, t_acc in posted]
        return {"messages": len(posted), "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
                "max_ms": max(lat), "min_ms": min(lat),
                "request_p50_ms": round(_pct(req, 50), 2),
                "request_p99_ms": round(_pct(req, 99), 2),
                "first_t": posted[0][2], "last_t": posted[-1][2],
                "samples": [(round(t_acc - t_ref, 2), round(x, 1))
                            for (_, _, t_acc), x in zip(posted, lat)]}


def thread_cpu(pid):
    """{thread id: CPU seconds} of a process's threads."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid), "rb") as f:
                data = f.read()
            fl = data[data.rindex(b")") + 2:].split()
            out[int(tid)] = (int(fl[11]) + int(fl[12])) / procstat.CLK_TCK
        except (OSError, ValueError, IndexError):
            pass
    return out


def idle_cpu(pid, seconds):
    """Cores a process uses while nothing is sent, and its busiest thread's share."""
    c0, th0, t0 = procstat.cpu_seconds(pid), thread_cpu(pid), time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    th1 = thread_cpu(pid)
    per = sorted(((th1[t] - th0.get(t, 0.0)) / dt for t in th1), reverse=True)
    return {"cores": round((procstat.cpu_seconds(pid) - c0) / dt, 3),
            "busiest_thread_cores": round(per[0], 3) if per else 0.0, "seconds": round(dt, 2)}


def _pg_cpu(pg0, pg1):
    return sum(c for p, (_, c) in pg1["procs"].items()) + pg1["exited"] - (
        sum(c for p, (_, c) in pg0["procs"].items() if p in pg1["procs"]) + pg0["exited"])


def once(ctx, mid, specs, fn, conditions, chart_key=None):
    """ctx.measure with one run and no warm-up (the big figures: too long for 1 + 3)."""
    saved = (ctx.params["runs"], ctx.params.get("warmup", True))
    ctx.params["runs"], ctx.params["warmup"] = 1, False
    try:
        return ctx.measure(mid, specs, fn, conditions, chart_key=chart_key)
    finally:
        ctx.params["runs"], ctx.params["warmup"] = saved


def big_campaign(cm, lid, n, tx_during):
    """The N-recipient campaign: send -> expanded (sizes taken) -> sink has N -> sent, with
    the transactional poster started tx_during_delay_s after send."""
    cfg, st = cm.cfg, cm.st
    reset_tables(st)
    cm.sql("ANALYZE contacts")
    cm.sql("CHECKPOINT")
    cid = cm.new_campaign(lid, "big")
    wpid, apid = cm.worker.pid, st.api.pid
    if not cm.worker.alive():
        raise BenchError("posthorn-worker is not running (log: %s)" % cm.worker.log_path)
    idle = idle_cpu(wpid, cfg["idle_cpu_s"])
    size0 = cm.pg_sizes()
    c0 = cm.sink.count()
    th0 = thread_cpu(wpid)
    w0, a0, pg0 = procstat.cpu_seconds(wpid), procstat.cpu_seconds(apid), pg_snapshot(st)
    busy = procstat.MachineCpu().start()
    rss = procstat.Sampler(lambda: procstat.status_kb(wpid, "VmRSS"), 0.5).start()
    tx_seen = set(os.listdir(cm.tx_dump))
    tx_posted, tx_err = [], []

    def tx():
        try:
            time.sleep(cfg["tx_during_delay_s"])
            cm.tx_post("during", cfg["tx_rate"], cfg["tx_seconds"], tx_posted)
        except Exception as e:  # noqa: BLE001
            tx_err.append(e)
    series = [(0.0, 0, 0)]
    progress = []       # (t, queued, sending, delivered) from the campaign's counters
    t0 = time.monotonic()
    t0_wall = time.time()
    cm.send(cid)
    txt = threading.Thread(target=tx, daemon=True)
    txt.start()
    expand_s = e2e_s = None
    size1 = at_expand = None
    next_sample = next_poll = t0
    try:
        while e2e_s is None:
            now = time.monotonic()
            got = cm.sink.count() - c0
            if got >= n:
                e2e_s = now - t0
                break
            if now >= next_poll:
                next_poll = now + (0.25 if expand_s is None else 1.0)
                pr = cm.campaign(cid)["progress"]
                progress.append((round(now - t0, 2), pr["queued"], pr["sending"],
                                 pr["delivered"]))
                if expand_s is None and pr.get("expanded"):
                    expand_s = time.monotonic() - t0
                    size1 = cm.pg_sizes()
                    at_expand = cm.states(cid)
            if now >= next_sample:
                series.append((round(now - t0, 3), -1, got))
                next_sample += cfg["sample_interval"]
            if now - t0 > cfg["campaign_timeout"]:
                raise BenchError("campaign: timeout after %ds: %d at the sink; %s" % (
                    now - t0, got, cm.states(cid)))
            time.sleep(0.005)
        series.append((round(e2e_s, 3), -1, cm.sink.count() - c0))
        c = cm.wait_campaign(cid, "sent", 300)
        sent_s = time.monotonic() - t0
        if expand_s is None:       # expanded and delivered between two polls (smoke)
            expand_s = sent_s
            size1 = cm.pg_sizes()
            at_expand = cm.states(cid)
    finally:
        rss.stop()
    machine = busy.stop()
    w_cpu = procstat.cpu_seconds(wpid) - w0
    th1 = thread_cpu(wpid)
    a_cpu = procstat.cpu_seconds(apid) - a0
    pg_cpu = _pg_cpu(pg0, pg_snapshot(st))
    size2 = cm.pg_sizes()
    txt.join()
    if tx_err:
        raise tx_err[0]
    p = c["progress"]
    if p["total"] != n or p["delivered"] != n:
        raise BenchError("campaign: progress %s, want %d delivered" % (p, n))
    extra = cm.sink.count() - c0 - n
    during = cm.tx_latency(tx_posted, tx_seen, t_ref=t0_wall)
    in_campaign = sum(1 for _, _, ta in tx_posted if ta - t0_wall <= e2e_s)
    grow = {k: size1[k] - size0[k] for k in size0}
    grow_sent = {k: size2[k] - size0[k] for k in size0}
    return {
        "posthorn.campaign.expand": n / expand_s,
        "posthorn.campaign.send": n / e2e_s,
        "posthorn.campaign.sent_s": sent_s,
        "posthorn.campaign.worker_rss": rss.peak() / 1024.0,
        "posthorn.campaign.pg_bytes": grow["database"] / n,
        "posthorn.campaign.pg_bytes_deliveries": grow["deliveries"] / n,
        "posthorn.campaign.pg_bytes_events": grow["events"] / n,
        "posthorn.campaign.pg_bytes_messages": grow["messages"] / n,
        "posthorn.campaign.cpu": 1000.0 * w_cpu / n,
        "posthorn.campaign.cpu_all": 1000.0 * (w_cpu + a_cpu + pg_cpu) / n,
        "posthorn.campaign.pg_cpu": 1000.0 * pg_cpu / n,
        "recipients": n, "campaign_id": cid,
        "expand_s": round(expand_s, 3), "e2e_s": round(e2e_s, 3), "sent_s": round(sent_s, 3),
        "worker_cpu_s": round(w_cpu, 3), "api_cpu_s": round(a_cpu, 3),
        "postgres_cpu_s": round(pg_cpu, 3), "machine_cpu_busy": round(machine, 3),
        "worker_idle_cpu_before": idle,
        "worker_cpu_s_by_thread": sorted((round(th1[t] - th0.get(t, 0.0), 2) for t in th1),
                                         reverse=True),
        "worker_peak_rss_kb": rss.peak(),
        "worker_rss_samples_mb": [(round(t, 1), round(v / 1024.0, 1)) for t, v in rss.samples[::4]],
        "pg_sizes_before": size0, "pg_sizes_at_expanded": size1, "pg_sizes_at_sent": size2,
        "pg_growth_at_expanded": grow, "pg_growth_at_sent": grow_sent,
        "pg_bytes_per_recipient_at_sent": {k: round(v / n, 1) for k, v in grow_sent.items()},
        "delivery_states_at_expanded": at_expand,
        "progress": p, "sink_count_beyond_n": extra,
        "tx_during": during, "tx_during_accepted_before_sink_complete": in_campaign,
        "progress_series": progress,
        "max_sending": max([x[2] for x in progress] or [0]),
        "worker_log_warnings": cm.worker_warnings(),
        "series": series,
    }


def rate_campaign(cm, lid, m, rate):
    """Arrival times at the sink (count polled every 20 ms) of a campaign with
    rate_per_minute = rate over m contacts."""
    cfg = cm.cfg
    reset_tables(cm.st)
    cid = cm.new_campaign(lid, "rated", rate=rate)
    c0 = cm.sink.count()
    t0 = time.monotonic()
    cm.send(cid)
    arrivals = []
    last = 0
    deadline = t0 + 60.0 * m / rate + 120
    while last < m:
        got = cm.sink.count() - c0
        now = time.monotonic() - t0
        if got > last:
            arrivals.extend([now] * (got - last))
            last = got
        if time.monotonic() > deadline:
            raise BenchError("rated campaign: %d of %d after %ds" % (last, m, now))
        time.sleep(0.02)
    cm.wait_campaign(cid, "sent", 120)
    target = rate / 60.0
    i10, i90 = int(0.1 * m), int(0.9 * m) - 1
    ta, tb = arrivals[i10], arrivals[i90]
    achieved = (i90 - i10) / (tb - ta)
    w = cfg["rate_window_s"]
    windows = []
    t = ta
    while t + w <= tb + 1e-9:
        k = sum(1 for x in arrivals if t <= x < t + w)
        windows.append((round(t, 2), k / w / target))
        t += 1.0 if w >= 5 else w / 4.0
    if not windows:
        raise BenchError("rated campaign: steady part %.1fs shorter than a %ds window" % (
            tb - ta, w))
    worst = max(windows, key=lambda x: abs(x[1] - 1.0))
    series = [(0.0, -1, 0)]
    for i, x in enumerate(arrivals):
        if i == 0 or x - series[-1][0] >= cfg["sample_interval"]:
            series.append((round(x, 3), -1, i + 1))
    return {
        "posthorn.campaign.rate": achieved / target,
        "posthorn.campaign.rate_window": worst[1],
        "rate_per_minute": rate, "recipients": m, "target_per_s": target,
        "achieved_per_s": round(achieved, 3), "steady_part_s": [round(ta, 2), round(tb, 2)],
        "first_arrival_s": round(arrivals[0], 3), "last_arrival_s": round(arrivals[-1], 3),
        "overall_per_s": round((m - 1) / max(1e-6, arrivals[-1] - arrivals[0]), 3),
        "window_s": w, "windows": len(windows),
        "max_window_deviation_pct": round(100 * abs(worst[1] - 1.0), 2),
        "worst_window_at_s": worst[0],
        "window_ratio_min": round(min(x[1] for x in windows), 4),
        "window_ratio_max": round(max(x[1] for x in windows), 4),
        "series": series,
    }


def trigger_names(cm):
    out = cm.sql("SELECT tgname FROM pg_trigger WHERE tgrelid = 'deliveries'::regclass"
                 " AND NOT tgisinternal AND tgname LIKE 'deliveries_campaign%' ORDER BY 1")
    names = out.split()
    if not names:
        raise BenchError("no deliveries_campaign_* trigger on deliveries")
    return names


def set_triggers(cm, names, enable):
    for t in names:
        cm.sql("ALTER TABLE deliveries %s TRIGGER %s" % ("ENABLE" if enable else "DISABLE", t))
    got = cm.sql("SELECT string_agg(tgenabled::text, '') FROM pg_trigger WHERE tgrelid = "
                 "'deliveries'::regclass AND tgname IN (%s)" % ", ".join("'%s'" % t for t in names))
    if set(got) != {"O" if enable else "D"}:
        raise BenchError("triggers %s: tgenabled %r" % (names, got))


def run(ctx):
    cfg = SMOKE if ctx.smoke else FULL
    # CAMPAIGN_LATENCY_ONLY=N: only the transactional latency, idle and during an N-recipient
    # campaign (no 1M import, rate test, trigger runs or peer): the quick loop for work on
    # the transactional lane. Use with --out: its figures are not the committed ones.
    quick = int(os.environ.get("CAMPAIGN_LATENCY_ONLY", "0") or 0)
    if quick:
        cfg = dict(cfg, import_rows=0, campaign_rows=quick, tx_during_delay_s=3,
                   tx_seconds=min(cfg["tx_seconds"], max(1, quick // 6000)))
    n = cfg["campaign_rows"]
    figs = []
    ctx.log("posthorn.campaign: starting the stack, sinks, dnsmasq and a worker")
    cm = Campaigns(ctx, cfg)
    conditions = {
        "domains": "d0.test..d%d.test, MX mx.sink.test -> smtp-sink -c -m 1000 on %s:%d (one "
                   "destination: 20 sessions)" % (cfg["domains"] - 1, ADDR_SINK, cm.port),
        "transactional": "%s, MX mx.tx.test -> dumping smtp-sink on %s:%d (its own "
                         "destination)" % (TX_DOMAIN, ADDR_TX, cm.port),
        "policy_file": cm.policy,
        "settings": dict(cm.st.settings(), **{k: v for k, v in cm.worker_env.items()
                                              if k != "POSTHORN_DNS_SERVER"}),
        "runs": "1, no warm-up (too long for a warm-up and 3 runs)",
    }

    # --- CSV import ----------------------------------------------------------------------
    rows = cfg["import_rows"]
    ctx.log("posthorn.campaign: writing CSVs (%d, %d, %d rows)" % (rows, n, cfg["rate_rows"]))
    csv_a = cm.write_csv("import", "a", rows)
    csv_b = cm.write_csv("campaign", "b", n)
    csv_c = cm.write_csv("rated", "r", cfg["rate_rows"])
    lid_a, lid_b, lid_c, lid_k = (cm.new_list(x) for x in ("import", "campaign", "rated", "check"))
    side = {}

    if quick:
        cm.import_csv(lid_b, csv_b, n)
    def imp(warm):
        d = cm.import_csv(lid_a, csv_a, rows)
        # The campaign's and the rate test's lists (not timed figures; details kept).
        side["campaign_list"] = cm.import_csv(lid_b, csv_b, n)
        side["rated_list"] = cm.import_csv(lid_c, csv_c, cfg["rate_rows"])
        d.update({"posthorn.campaign.import": d["rows_per_s"],
                  "posthorn.campaign.import_s": d["seconds"],
                  "posthorn.campaign.import_rss": d["api_peak_rss_kb"] / 1024.0,
                  "other_imports": dict(side)})
        return d
    specs = [FigureSpec("posthorn.campaign.import", "posthorn", "Posthorn CSV import, %d rows, "
                        "POST /v1/lists/{id}/contacts text/csv" % rows, "rows/s"),
             FigureSpec("posthorn.campaign.import_s", "posthorn", "Posthorn CSV import, %d rows: "
                        "time" % rows, "s", better="lower", fmt="{:.1f}"),
             FigureSpec("posthorn.campaign.import_rss", "posthorn", "Posthorn API peak RSS during "
                        "the import", "MB", better="lower", fmt="{:.1f}")]
    figs += [] if quick else once(ctx, "posthorn.campaign.import", specs, imp, dict(
        conditions, rows=rows, columns="email,first_name,city,n",
        csv_bytes=os.path.getsize(csv_a),
        upload="the CSV written to a file first, then one POST streaming it with Content-Length "
               "(Python http.client, 64 KB blocks); time from the request to the answer",
        check="answer's inserted == rows, rejected_count 0"))
    with open(os.path.join(cm.work, "check.csv"), "w") as f:
        f.write("email,first_name\ncheck@%s,Check\n" % TX_DOMAIN)
    cm.import_csv(lid_k, os.path.join(cm.work, "check.csv"), 1)
    check = cm.dkim_check(lid_k)
    ctx.log("posthorn.campaign: DKIM check %s" % check)
    conditions["dkim_check"] = check

    # --- transactional latency, idle ----------------------------------------------------
    def tx_idle(warm):
        reset_tables(cm.st)
        seen = set(os.listdir(cm.tx_dump))
        posted = []
        cm.tx_post("idle", cfg["tx_rate"], cfg["tx_seconds"], posted)
        d = cm.tx_latency(posted, seen)
        d.update({"posthorn.campaign.tx_idle_p50": d["p50_ms"],
                  "posthorn.campaign.tx_idle_p99": d["p99_ms"]})
        return d
    tx_cond = dict(conditions, rate_per_s=cfg["tx_rate"], seconds=cfg["tx_seconds"],
                   message="POST /v1/messages, one recipient at tx.test, 2,048-byte text, DKIM "
                           "rsa-sha256 (%s)" % SIGNED_DOMAIN,
                   latency="wall clock from the 202 answer to the dump file's mtime at the "
                           "tx sink (same host clock)")
    figs += once(ctx, "posthorn.campaign.tx_idle", [
        FigureSpec("posthorn.campaign.tx_idle_p50", "posthorn", "Posthorn transactional accept "
                   "-> delivered p50, idle", "ms", better="lower", fmt="{:.1f}"),
        FigureSpec("posthorn.campaign.tx_idle_p99", "posthorn", "Posthorn transactional accept "
                   "-> delivered p99, idle", "ms", better="lower", fmt="{:.1f}")],
        tx_idle, tx_cond)

    # --- the big campaign ----------------------------------------------------------------
    def big(warm):
        d = big_campaign(cm, lid_b, n, True)
        t = d["tx_during"]
        d.update({"posthorn.campaign.tx_during_p50": t["p50_ms"],
                  "posthorn.campaign.tx_during_p99": t["p99_ms"]})
        return d
    label = "%d recipients" % n
    specs = [
        FigureSpec("posthorn.campaign.send", "posthorn", "Posthorn campaign send -> smtp-sink, %s, "
                   "DKIM rsa-sha256" % label, "msg/s"),
        FigureSpec("posthorn.campaign.expand", "posthorn", "Posthorn campaign expansion (send -> "
                   "expanded), %s" % label, "rcpt/s"),
        FigureSpec("posthorn.campaign.sent_s", "posthorn", "Posthorn campaign send -> state sent",
                   "s", better="lower", fmt="{:.1f}"),
        FigureSpec("posthorn.campaign.worker_rss", "posthorn", "Posthorn worker peak RSS during "
                   "the campaign", "MB", better="lower", fmt="{:.1f}"),
        FigureSpec("posthorn.campaign.pg_bytes", "posthorn", "PostgreSQL database growth per "
                   "queued recipient (at expanded)", "bytes/rcpt", better="lower"),
        FigureSpec("posthorn.campaign.pg_bytes_deliveries", "posthorn", "  of which deliveries "
                   "(table+indexes+TOAST)", "bytes/rcpt", better="lower"),
        FigureSpec("posthorn.campaign.pg_bytes_events", "posthorn", "  of which events (all "
                   "partitions)", "bytes/rcpt", better="lower"),
        FigureSpec("posthorn.campaign.pg_bytes_messages", "posthorn", "  of which messages",
                   "bytes/rcpt", better="lower", fmt="{:.3f}"),
        FigureSpec("posthorn.campaign.cpu", "posthorn", "Posthorn worker CPU per message, "
                   "campaign", "ms CPU/msg", better="lower", fmt="{:.3f}"),
        FigureSpec("posthorn.campaign.pg_cpu", "posthorn", "PostgreSQL CPU per message, "
                   "campaign", "ms CPU/msg", better="lower", fmt="{:.3f}"),
        FigureSpec("posthorn.campaign.cpu_all", "posthorn", "Posthorn CPU per message, worker + "
                   "API + PostgreSQL, campaign", "ms CPU/msg", better="lower", fmt="{:.3f}"),
        FigureSpec("posthorn.campaign.tx_during_p50", "posthorn", "Posthorn transactional accept "
                   "-> delivered p50, during the campaign", "ms", better="lower", fmt="{:.1f}"),
        FigureSpec("posthorn.campaign.tx_during_p99", "posthorn", "Posthorn transactional accept "
                   "-> delivered p99, during the campaign", "ms", better="lower", fmt="{:.1f}"),
    ]
    ctx.log("posthorn.campaign: %d-recipient campaign" % n)
    figs += once(ctx, "posthorn.campaign.send", specs, big, dict(
        conditions, recipients=n, list="a second list of %d contacts (email, first_name, "
        "city, n), imported apart from the %d-row one" % (n, rows),
        content="text, subject 'News for {{first_name}}', %d-byte body with {{first_name}}, "
                "{{city}}, {{n}}; From news@%s (DKIM rsa-sha256), no tracking" % (
                    len(cm.campaign_text), SIGNED_DOMAIN),
        timing="POST /v1/campaigns/{id}/send -> smtp-sink count == N (polled every 5 ms); "
               "expanded: GET /v1/campaigns/{id} polled every 0.25 s; sent likewise",
        pg_bytes="growth from just before send (sending tables emptied) to the first poll "
                 "that saw progress.expanded, while delivery goes on (states at that moment "
                 "in delivery_states_at_expanded); pg_database_size, and "
                 "pg_total_relation_size of deliveries, of every events partition, of "
                 "messages; / N. The growth at `sent` is in pg_growth_at_sent",
        cpu="utime+stime from /proc from send until the campaign is sent, / N",
        tx_during="%g/s for %gs starting %gs after send" % (
            cfg["tx_rate"], cfg["tx_seconds"], cfg["tx_during_delay_s"])),
        chart_key="posthorn.campaign.send")
    big_run = ctx.figures["posthorn.campaign.send"].details[0]
    F = ctx.figures
    if quick:
        cm.worker.stop()
        return Report([f.spec.id for f in figs],
                      extra={"notes": ["CAMPAIGN_LATENCY_ONLY=%d: transactional latency only" % n]})

    # --- rate_per_minute accuracy --------------------------------------------------------
    rate, mr = cfg["rate_per_minute"], cfg["rate_rows"]
    ctx.log("posthorn.campaign: rated campaign, %d/min over %d" % (rate, mr))
    figs += once(ctx, "posthorn.campaign.rate", [
        FigureSpec("posthorn.campaign.rate", "posthorn", "Posthorn rate_per_minute %d: achieved / "
                   "target (steady part)" % rate, "ratio", fmt="{:.3f}"),
        FigureSpec("posthorn.campaign.rate_window", "posthorn", "Posthorn rate_per_minute %d: "
                   "%ds window farthest from target" % (rate, cfg["rate_window_s"]), "ratio",
                   fmt="{:.3f}")],
        lambda warm: rate_campaign(cm, lid_c, mr, rate), dict(
            conditions, rate_per_minute=rate, recipients=mr,
            timing="arrivals = smtp-sink's count polled every 20 ms; steady part = from the "
                   "10 %% to the 90 %% arrival; windows of %ds stepped by %gs over it" % (
                       cfg["rate_window_s"], 1.0 if cfg["rate_window_s"] >= 5 else
                       cfg["rate_window_s"] / 4.0)), chart_key="posthorn.campaign.rate")

    # --- the counter triggers on transactional traffic -----------------------------------
    names = trigger_names(cm)
    nt = cfg["trigger_messages"]
    tcond = dict(conditions, messages=nt, sender="shop@" + PLAIN_DOMAIN + " (unsigned)",
                 posting="POST /v1/messages/batch, %d per request, %d connections (deliver's "
                         "run_once)" % (cfg["batch"], cfg["post_connections"]),
                 triggers=names, runs="warm-up of a tenth, then the invocation's runs")
    # disabled first: the arm measured first has met a slow phase of PostgreSQL right after
    # the rate test (two of three runs at a fifth of the rate, bench/README.md)
    for on in (False, True):
        fid = "posthorn.campaign.trigger_%s" % ("on" if on else "off")
        what = "triggers enabled" if on else "triggers disabled"

        def tr(warm, fid=fid):
            d = cm.run_once(fid, cm.sink, max(1, nt // 10) if warm else nt, PLAIN_DOMAIN, "d",
                            warm)
            d[fid + "_pg"] = d["postgres_cpu_ms_per_msg"]
            return d
        set_triggers(cm, names, on)
        try:
            figs += ctx.measure(fid, [
                FigureSpec(fid, "posthorn", "Posthorn transactional API -> smtp-sink, no DKIM, "
                           "%s" % what, "msg/s"),
                FigureSpec(fid + "_pg", "posthorn", "PostgreSQL CPU per message, transactional, "
                           "%s" % what, "ms CPU/msg", better="lower", fmt="{:.3f}")],
                tr, dict(tcond, counter_triggers="enabled" if on else "disabled"))
        finally:
            set_triggers(cm, names, True)

    cm.worker.stop()        # the peer runs alone
    # --- the peer, once ------------------------------------------------------------------
    saved = (ctx.params["runs"], ctx.params.get("warmup", True))
    ctx.params["runs"], ctx.params["warmup"] = 1, False
    try:
        figs += peers.postfix(ctx, dkim=True, messages=n)
    finally:
        ctx.params["runs"], ctx.params["warmup"] = saved
    pf = "peer.postfix_dkim" if n == ctx.params["messages"] else "peer.postfix_dkim_%d" % n

    # --- notes ---------------------------------------------------------------------------
    def med(i):
        return F[i].median
    notes = ["SMOKE: tiny counts, the goals are not judged by this run"] if ctx.smoke else []
    notes.append("ONE RUN, no warm-up: import, campaign, rate test, transactional latency and "
                 "the Postfix + OpenDKIM peer at %d (runs=1); the trigger comparison: warm-up "
                 "+ %d runs, median" % (n, ctx.runs))
    imp_d = F["posthorn.campaign.import"].details[0]
    notes.append("import: %d rows in %.1fs = %.0f rows/s (%.1f MB CSV); API peak RSS %.1f MB "
                 "(%.1f MB before); API %.1fs CPU, PostgreSQL %.1fs CPU; machine %.0f%% busy. "
                 "The campaign list (%d rows): %.0f rows/s" % (
                     rows, imp_d["seconds"], imp_d["rows_per_s"], imp_d["bytes"] / 1e6,
                     imp_d["api_peak_rss_kb"] / 1024.0, imp_d["api_rss_at_start_kb"] / 1024.0,
                     imp_d["api_cpu_s"], imp_d["postgres_cpu_s"],
                     100 * imp_d["machine_cpu_busy"], n,
                     imp_d["other_imports"]["campaign_list"]["rows_per_s"]))
    d = big_run
    r_peer = med("posthorn.campaign.send") / med(pf + ".e2e")
    notes.append("campaign %d: send -> expanded %.1fs (%.0f rcpt/s), -> sink complete %.1fs "
                 "(%.0f msg/s), -> sent %.1fs; = %.2fx Postfix + OpenDKIM's %.0f msg/s end to "
                 "end; CPU ms/msg: worker %.3f, PostgreSQL %.3f, all %.3f (Postfix + OpenDKIM "
                 "%.2f); machine %.0f%% busy; sink_count_beyond_n %d" % (
                     n, d["expand_s"], med("posthorn.campaign.expand"), d["e2e_s"],
                     med("posthorn.campaign.send"), d["sent_s"], r_peer, med(pf + ".e2e"),
                     med("posthorn.campaign.cpu"), med("posthorn.campaign.pg_cpu"),
                     med("posthorn.campaign.cpu_all"), med(pf + ".cpu_per_msg"),
                     100 * d["machine_cpu_busy"], d["sink_count_beyond_n"]))
    notes.append("posthorn-worker while idle just before send: %.2f cores, %.2f of them in its "
                 "busiest thread; over the campaign its threads took %s s CPU" % (
                     d["worker_idle_cpu_before"]["cores"],
                     d["worker_idle_cpu_before"]["busiest_thread_cores"],
                     ", ".join("%.1f" % x for x in d["worker_cpu_s_by_thread"][:6])))
    smp = d["tx_during"]["samples"]
    if smp:
        def sending_at(t):
            best = None
            for x in d["progress_series"]:
                if x[0] <= t:
                    best = x
            return best[2] if best else 0
        notes.append("during the campaign: up to %d of its deliveries `sending` at once (claimed "
                     "by the worker, progress polled every 1 s); transactional latency by accept "
                     "time after send (s: ms, campaign rows sending then): %s" % (
                         d["max_sending"], ", ".join(
                             "%.1f: %.0f (%d)" % (t, l, sending_at(t))
                             for t, l in smp[::max(1, len(smp) // 10)])))
    rss = med("posthorn.campaign.worker_rss")
    notes.append("goal worker RSS: peak %.1f MB during the campaign; goal < %.0f MB: %s" % (
        rss, GOAL_RSS_MB, "met" if rss < GOAL_RSS_MB else "MISSED"))
    g1, g2 = d["pg_growth_at_expanded"], d["pg_growth_at_sent"]
    notes.append("PostgreSQL per recipient at expanded (%s): database %.0f B, deliveries %.0f, "
                 "events %.0f, messages %.3f, delivery_attempts %.0f; at sent: database %.0f, "
                 "deliveries %.0f, events %.0f, delivery_attempts %.0f" % (
                     ", ".join("%s %d" % kv
                               for kv in sorted(d["delivery_states_at_expanded"].items())),
                     g1["database"] / n, g1["deliveries"] / n, g1["events"] / n,
                     g1["messages"] / n, g1["delivery_attempts"] / n, g2["database"] / n,
                     g2["deliveries"] / n, g2["events"] / n, g2["delivery_attempts"] / n))
    rd = F["posthorn.campaign.rate"].details[0]
    notes.append("rate_per_minute %d (%.2f/s): achieved %.2f/s over the steady part (%.0f-%.0fs) "
                 "= %.3f of target; %ds windows %.3f..%.3f of target (max deviation %.1f%%); "
                 "first arrival %.1fs after send, overall %.2f/s" % (
                     rate, rd["target_per_s"], rd["achieved_per_s"], rd["steady_part_s"][0],
                     rd["steady_part_s"][1], rd["posthorn.campaign.rate"], rd["window_s"],
                     rd["window_ratio_min"], rd["window_ratio_max"],
                     rd["max_window_deviation_pct"], rd["first_arrival_s"], rd["overall_per_s"]))
    ip99, dp99 = med("posthorn.campaign.tx_idle_p99"), med("posthorn.campaign.tx_during_p99")
    ratio = dp99 / max(ip99, TX_RESOLUTION_MS)
    notes.append("goal transactional: p99 accept -> delivered %.1f ms during the campaign vs "
                 "%.1f ms idle = %.2fx (p50 %.1f vs %.1f ms); goal within %gx: %s; %d of %d "
                 "during-messages accepted before the campaign's sink count was complete" % (
                     dp99, ip99, ratio, med("posthorn.campaign.tx_during_p50"),
                     med("posthorn.campaign.tx_idle_p50"), GOAL_TX_P99_RATIO,
                     "met" if ratio <= GOAL_TX_P99_RATIO else "MISSED",
                     d["tx_during_accepted_before_sink_complete"], d["tx_during"]["messages"]))
    on, off = med("posthorn.campaign.trigger_on"), med("posthorn.campaign.trigger_off")
    pon, poff = med("posthorn.campaign.trigger_on_pg"), med("posthorn.campaign.trigger_off_pg")
    notes.append("counter triggers (%s) on transactional traffic, %d messages: enabled %.0f "
                 "msg/s, PostgreSQL %.3f ms CPU/msg; disabled %.0f msg/s, %.3f ms CPU/msg "
                 "(enabled/disabled: rate %.2fx, PostgreSQL CPU %.2fx)" % (
                     ", ".join(names), nt, on, pon, off, poff, on / off,
                     pon / poff if poff else float("nan")))
    warns = cm.worker_warnings()
    if warns:
        notes.append("posthorn-worker warnings over the scenario: %s" % "; ".join(
            "%d x %s" % (v, k) for k, v in sorted(warns.items(), key=lambda kv: -kv[1])[:5]))

    # The tx ratio as a figure of its own (derived from two medians, one run each).
    spec = FigureSpec("posthorn.campaign.tx_ratio", "posthorn", "Transactional p99 during / "
                      "idle (goal <= 2)", "x", better="lower", fmt="{:.2f}")
    figs += once(ctx, "posthorn.campaign.tx_ratio", [spec], lambda warm: {
        "posthorn.campaign.tx_ratio": ratio, "during_p99_ms": dp99, "idle_p99_ms": ip99},
        dict(conditions, derived="posthorn.campaign.tx_during_p99 / tx_idle_p99"))

    series = []
    min_dt = cfg["sample_interval"] / 2
    for mid, label in (("posthorn.campaign.send", "Posthorn campaign %d" % n),
                       (pf, "Postfix+OpenDKIM %d" % n),
                       ("posthorn.campaign.rate", "Posthorn rate_per_minute %d" % rate)):
        pts = ctx.charts.get(mid)
        if pts:
            series.append(("%s delivered/s" % label,
                           chart.rates([(t, x) for t, _, x in pts], min_dt)))
    charts = [Chart("campaign", "Campaign delivered to smtp-sink per second (one run each)",
                    series)]
    rss_pts = [(t, v) for t, v in big_run["worker_rss_samples_mb"]]
    if rss_pts:
        charts.append(Chart("campaign_rss", "posthorn-worker RSS during the %d campaign" % n,
                            [("worker RSS MB", rss_pts)], ylabel="MB"))
    comparisons = [
        ("campaign end to end, DKIM rsa-sha256 (msg/s)", "posthorn.campaign.send",
         pf + ".e2e", None),
        ("CPU/msg, campaign (ms; worker+API+PostgreSQL vs Postfix tree+opendkim)",
         "posthorn.campaign.cpu_all", pf + ".cpu_per_msg", None),
    ]
    method = {"warmup": False, "runs": 1,
              "statistic": "one run (runs=1, no warm-up) for import, campaign, rate, "
                           "transactional latency and the Postfix + OpenDKIM peer; the trigger "
                           "comparison: warm-up + %d runs, median" % ctx.runs,
              "note": "Load generators, sinks and the system under test share this machine's "
                      "%d CPU cores; each figure is the throughput of the whole arrangement, "
                      "not of the system under test alone." % (os.cpu_count() or 0)}
    return Report([f.spec.id for f in figs], comparisons, charts,
                  extra={"notes": notes, "method": method,
                         "campaign": {"parameters": cfg, "goal_worker_rss_mb": GOAL_RSS_MB,
                                      "goal_tx_p99_ratio": GOAL_TX_P99_RATIO,
                                      "single_run_figures": [f.spec.id for f in figs
                                                             if len(f.values) == 1]}})


SCENARIO = Scenario("campaign", "1M-row CSV import; a 200k campaign expanded and delivered to "
                    "smtp-sink beside Postfix + OpenDKIM; rate_per_minute; transactional "
                    "latency during it; counter-trigger cost", run, order=40)
