"""Peers: a private Postfix instance relaying everything to smtp-sink, fed by smtp-source,
without and with Debian's OpenDKIM milter signing rsa-sha256 (2048-bit key made for the run).

Per run: accept rate (N / time until smtp-source has finished, i.e. every message was
queued by Postfix and answered 250) and end-to-end rate (N / time until smtp-sink has
counted all N), CPU time of the whole Postfix process tree (and of opendkim) per message,
peak memory (sum of PSS over the Postfix processes, sampled every 0.5 s), and the accepted
and delivered counts sampled every 0.5 s for the throughput chart.
"""
import os
import time

from harness import mta

from . import procstat
from .core import BenchError, FigureSpec

# Changes from Postfix's defaults that make the instance private and relay-only are in
# harness/mta.py (_base_main_cf). Performance tuning: none. Postfix defaults apply
# (default_process_limit 100, smtp destination concurrency 20, in_flow_delay 1s,
# connection cache on demand); raising process and concurrency limits made it slower on
# 2 cores in trials.
POSTFIX_TUNING = {}

DKIM_DOMAIN = "bench.posthorn.test"


class PostfixPeer:
    def __init__(self, ctx, dkim, name=None):
        self.ctx = ctx
        self.dkim = dkim
        self.name = name or ("postfix_dkim" if dkim else "postfix")
        p = ctx.params
        d = ctx.dir("peer-" + self.name)
        self.sink = mta.SmtpSink(d, max_conn=p["sink_max_conn"], name="smtp-sink-" + self.name)
        self.sink.start()
        ctx.on_cleanup(self.sink.stop)
        self.opendkim = None
        if dkim:
            self.opendkim = mta.OpenDkim(os.path.join(d, "opendkim"), DKIM_DOMAIN, selector="bench")
            self.opendkim.start()
            ctx.on_cleanup(self.opendkim.stop)
        self.postfix = mta.PostfixInstance(
            os.path.join(d, "postfix"), relay=(self.sink.host, self.sink.port),
            milter=self.opendkim.milter if self.opendkim else None, tuning=POSTFIX_TUNING,
            name="postfix-" + self.name.replace("_", "-"))
        self.postfix.start()
        ctx.on_cleanup(self.postfix.stop)
        self.src_log = os.path.join(d, "smtp-source.log")

    def settings(self):
        conf = self.postfix.main_cf()
        out = {"main_cf": {k: v for k, v in conf.items()
                           if not k.endswith("_directory")
                           and k not in ("maillog_file", "maillog_file_prefixes")},
               "tuning": POSTFIX_TUNING or "none (Postfix 3.7 defaults)"}
        if self.opendkim:
            out["opendkim"] = {"conf": _read_conf(self.opendkim.conf_path, skip=("KeyFile", "PidFile")),
                               "key": "RSA %d bits, made by opendkim-genkey for the run" % self.opendkim.bits}
        return out

    def run_once(self, n, warm):
        p = self.ctx.params
        pf, sink = self.postfix, self.sink
        master = pf.master_pid()
        if not master:
            raise BenchError("%s: no master pid" % self.name)
        wait_queue_empty(pf)
        c0 = sink.count()
        cpu0 = procstat.tree_cpu_seconds(master)
        dk_cpu0 = procstat.cpu_seconds(self.opendkim.pid) if self.opendkim else 0.0
        sink_cpu0 = procstat.cpu_seconds(sink.proc.pid)
        mem = procstat.Sampler(lambda: procstat.tree_pss_kb(master), p["sample_interval"]).start()
        busy = procstat.MachineCpu().start()
        src = mta.SmtpSource(pf.host, pf.port, n, self.src_log, size=p["message_size"],
                             sessions=p["sessions"], sender="bench@" + DKIM_DOMAIN,
                             recipient=p["recipient"]).start()
        t0 = src.t0
        series = [(0.0, 0, 0)]
        next_sample = t0 + p["sample_interval"]
        accept_s = e2e_s = None
        try:
            while accept_s is None or e2e_s is None:
                now = time.monotonic()
                if accept_s is None and src.poll() is not None:
                    if src.result.returncode != 0:
                        raise BenchError("%s: smtp-source exited %s: %s" % (
                            self.name, src.result.returncode, src.result.output[-2000:]))
                    accept_s = src.result.elapsed
                delivered = sink.count() - c0
                if e2e_s is None and delivered >= n:
                    e2e_s = now - t0
                if now >= next_sample:
                    accepted = n if accept_s is not None else src.progress()
                    series.append((round(now - t0, 3), accepted, delivered))
                    next_sample += p["sample_interval"]
                if now - t0 > max(p["timeout"], n / 50.0):
                    raise BenchError("%s: timeout after %ds: %d accepted, %d delivered, queue %d"
                                     % (self.name, now - t0, src.progress(), delivered,
                                        pf.queue_count()))
                time.sleep(0.005)
        finally:
            src.kill()
            mem.stop()
        machine_busy = busy.stop()
        series.append((round(max(accept_s, e2e_s), 3), n, sink.count() - c0))
        cpu = procstat.tree_cpu_seconds(master) - cpu0
        dk_cpu = (procstat.cpu_seconds(self.opendkim.pid) - dk_cpu0) if self.opendkim else None
        res = src.result
        out = {
            "peer.%s.accept" % self.name: n / accept_s,
            "peer.%s.e2e" % self.name: n / e2e_s,
            "peer.%s.cpu_per_msg" % self.name: 1000.0 * (cpu + (dk_cpu or 0)) / n,
            "messages": n,
            "accept_s": round(accept_s, 3),
            "e2e_s": round(e2e_s, 3),
            "postfix_cpu_s": round(cpu, 3),
            "postfix_peak_pss_kb": mem.peak(),
            "source_cpu_s": round(res.utime + res.stime, 3),
            "source_maxrss_kb": res.maxrss_kb,
            "sink_cpu_s": round(procstat.cpu_seconds(sink.proc.pid) - sink_cpu0, 3),
            "machine_cpu_busy": round(machine_busy, 3),
            "series": series,
        }
        if self.opendkim:
            out["opendkim_cpu_s"] = round(dk_cpu, 3)
            out["opendkim_vmhwm_kb"] = procstat.status_kb(self.opendkim.pid, "VmHWM")
        return out


def wait_queue_empty(pf, timeout=60.0):
    deadline = time.monotonic() + timeout
    while pf.queue_count():
        if time.monotonic() > deadline:
            raise BenchError("%s queue not empty: %d messages" % (pf.name, pf.queue_count()))
        time.sleep(0.05)


def _read_conf(path, skip=()):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] not in skip:
                out[parts[0]] = parts[1].strip()
    return out


def postfix(ctx, dkim, messages=None):
    """Measure the Postfix peer (dkim False/True): three figures per configuration.
    messages: per run (default params["messages"]); another count is its own measurement,
    "peer.postfix_<N>" / "peer.postfix_dkim_<N>" (e.g. the deliver scenario's 50,000)."""
    name = "postfix_dkim" if dkim else "postfix"
    p = ctx.params
    n = p["messages"] if messages is None else messages
    if n != p["messages"]:
        name = "%s_%d" % (name, n)
    mid = "peer." + name
    if mid in ctx.measured:
        return ctx.measure(mid, [], None, None)
    ctx.log("%s: starting a private Postfix%s" % (mid, " with OpenDKIM" if dkim else ""))
    peer = PostfixPeer(ctx, dkim, name=name)
    what = "Postfix + OpenDKIM" if dkim else "Postfix"
    if n != p["messages"]:
        what += ", %d msgs" % n
    specs = [
        FigureSpec(mid + ".accept", "peer", "%s accept (smtp-source -> queued)" % what, "msg/s"),
        FigureSpec(mid + ".e2e", "peer", "%s end to end (-> smtp-sink)" % what, "msg/s"),
        FigureSpec(mid + ".cpu_per_msg", "peer", "%s CPU per message" % what, "ms CPU/msg",
                   better="lower", fmt="{:.2f}"),
    ]

    def run(warm):
        return peer.run_once(max(1, n // 10) if warm else n, warm)

    conditions = {
        "messages": n, "payload_bytes": p["message_size"], "sessions": p["sessions"],
        "dkim": "rsa-sha256 2048, relaxed/relaxed, opendkim milter" if dkim else "off",
        "source": "smtp-source -s %d -m %d -l %d (one message per connection)" % (
            p["sessions"], n, p["message_size"]),
        "relay": "relayhost = smtp-sink on 127.0.0.1 (discards messages)",
        "cpu": "Postfix process tree (master + all daemons)%s" % (" + opendkim" if dkim else ""),
        "memory": "postfix_peak_pss_kb: peak of the sum of PSS over the Postfix processes, "
                  "sampled every %gs" % p["sample_interval"],
        "settings": peer.settings(),
    }
    return ctx.measure(mid, specs, run, conditions, chart_key=mid + ".e2e")
