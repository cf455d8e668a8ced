"""Floors: what this machine can do at all, measured in the same run as everything else.

  openssl(ctx)       - RSA-2048 and Ed25519 signatures per second on one core (openssl speed)
  pgbench(ctx)       - committed rows/s inserting 1 and 100 rows per transaction, 1 and 8
                       clients, synchronous_commit on, fsync on, private cluster
  smtp_loopback(ctx) - smtp-source into smtp-sink on loopback, messages/s
"""
import os
import re
import subprocess
import time

from harness import mta
from harness import pg as hpg

from . import procstat
from .core import BENCH_DIR, BenchError, FigureSpec

PG_BIN = "/usr/lib/postgresql/15/bin"


# --- openssl speed ---------------------------------------------------------------------------
_RSA = re.compile(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", re.M)
_ED = re.compile(r"EdDSA \(Ed25519\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", re.M)


def parse_openssl_speed(text):
    """{'rsa2048_sign': ..., 'rsa2048_verify': ..., 'ed25519_sign': ..., 'ed25519_verify': ...}"""
    m1, m2 = _RSA.search(text), _ED.search(text)
    if not (m1 and m2):
        raise BenchError("cannot parse openssl speed output:\n" + text[-2000:])
    return {"rsa2048_sign": float(m1.group(1)), "rsa2048_verify": float(m1.group(2)),
            "ed25519_sign": float(m2.group(1)), "ed25519_verify": float(m2.group(2))}


def openssl(ctx):
    secs = ctx.params["openssl_seconds"]
    specs = [FigureSpec("floor.openssl.rsa2048_sign", "floor",
                        "openssl speed rsa2048 sign, 1 core", "sign/s"),
             FigureSpec("floor.openssl.ed25519_sign", "floor",
                        "openssl speed ed25519 sign, 1 core", "sign/s")]

    def run(warm):
        # openssl speed is single-threaded without -multi: one core's worth.
        s = 1 if warm else secs
        r = subprocess.run(["openssl", "speed", "-seconds", str(s), "rsa2048", "ed25519"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
        if r.returncode != 0:
            raise BenchError("openssl speed exited %d" % r.returncode)
        v = parse_openssl_speed(r.stdout.decode("utf-8", "replace"))
        return {"floor.openssl.rsa2048_sign": v["rsa2048_sign"],
                "floor.openssl.ed25519_sign": v["ed25519_sign"],
                "rsa2048_verify_per_s": v["rsa2048_verify"],
                "ed25519_verify_per_s": v["ed25519_verify"]}

    return ctx.measure("floor.openssl", specs, run, {
        "command": "openssl speed -seconds %d rsa2048 ed25519" % secs,
        "cores": 1,
    })


# --- pgbench -----------------------------------------------------------------------------------
PG_SETTINGS = ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes",
               "shared_buffers", "wal_buffers", "max_wal_size", "checkpoint_timeout",
               "commit_delay", "wal_level")
_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
_LAT = re.compile(r"^latency average = ([\d.]+) ms", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)
_TX = re.compile(r"^number of transactions actually processed: (\d+)", re.M)


def floor_cluster(ctx):
    """The private PostgreSQL cluster of this run for pgbench: fsync and synchronous_commit
    on (harness.pg turns fsync off for tests; a floor with fsync off would be no floor)."""
    c = getattr(ctx, "_floor_pg", None)
    if c is None:
        c = hpg.PgCluster(ctx.dir("pg-floor"), fsync=True,
                          extra_conf={"synchronous_commit": "on", "max_connections": "100"})
        ctx.on_cleanup(c.destroy)
        ctx._floor_pg = c
    return c


def pgbench(ctx):
    c = floor_cluster(ctx)
    db = "pgbench_floor"
    c.psql("DROP DATABASE IF EXISTS %s" % db)
    c.psql("CREATE DATABASE %s" % db)
    with open(os.path.join(BENCH_DIR, "pgbench", "schema.sql")) as f:
        c.psql(f.read(), db=db)
    settings = {k: c.psql("SHOW %s" % k) for k in PG_SETTINGS}
    if settings["synchronous_commit"] != "on" or settings["fsync"] != "on":
        raise BenchError("pgbench floor needs fsync and synchronous_commit on: %r" % settings)
    secs = ctx.params["pgbench_seconds"]
    figs = []
    for script, rows in (("insert1.sql", 1), ("insert100.sql", 100)):
        for clients in ctx.params["pgbench_clients"]:
            name = script[:-4]
            fid = "floor.pgbench.%s.c%d" % (name, clients)
            spec = FigureSpec(fid, "floor", "pgbench %d row%s/tx, %d client%s" % (
                rows, "s" if rows > 1 else "", clients, "s" if clients > 1 else ""), "rows/s")
            threads = max(1, min(clients, os.cpu_count() or 1))
            argv = [os.path.join(PG_BIN, "pgbench"), "-n", "-M", "prepared",
                    "-f", os.path.join(BENCH_DIR, "pgbench", script), "-c", str(clients),
                    "-j", str(threads), "-h", c.host, "-p", str(c.port), "-U", "postgres"]

            def run(warm, argv=argv, rows=rows, fid=fid):
                c.psql("TRUNCATE bench_rows", db=db)
                c.psql("CHECKPOINT", db=db)
                t = ctx.params["pgbench_warmup_seconds"] if warm else secs
                busy = procstat.MachineCpu().start()
                pg_cpu0 = procstat.tree_cpu_seconds(c.proc.pid)
                r = subprocess.run(argv + ["-T", str(t), db], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=t + 120)
                out = r.stdout.decode("utf-8", "replace")
                pg_cpu = procstat.tree_cpu_seconds(c.proc.pid) - pg_cpu0
                m = _TPS.search(out)
                if r.returncode != 0 or not m:
                    raise BenchError("pgbench failed (%d):\n%s" % (r.returncode, out[-3000:]))
                failed = int(_FAILED.search(out).group(1)) if _FAILED.search(out) else 0
                if failed:
                    raise BenchError("pgbench: %d failed transactions" % failed)
                tps = float(m.group(1))
                count = int(c.psql("SELECT count(*) FROM bench_rows", db=db))
                tx = int(_TX.search(out).group(1)) if _TX.search(out) else None
                if tx is not None and count != tx * rows:
                    raise BenchError("pgbench: %d rows for %d transactions" % (count, tx))
                lat = _LAT.search(out)
                return {fid: tps * rows, "tps": tps, "transactions": tx, "rows": count,
                        "latency_avg_ms": float(lat.group(1)) if lat else None,
                        "postgres_cpu_s": round(pg_cpu, 3),
                        "machine_cpu_busy": round(busy.stop(), 3)}

            figs += ctx.measure(fid, [spec], run, {
                "script": "bench/pgbench/%s" % script, "rows_per_transaction": rows,
                "clients": clients, "pgbench_threads": threads, "seconds": secs,
                "query_mode": "prepared", "connection": "TCP 127.0.0.1",
                "table": "bench_rows (bigserial pk, 3 text + smallint + timestamptz, "
                         "index on (state, next_attempt_at)), truncated + CHECKPOINT before each run",
                "postgres_settings": settings,
            })
    return figs


# --- smtp-source -> smtp-sink -------------------------------------------------------------------
def smtp_loopback(ctx):
    p = ctx.params
    n, size, sessions = p["messages"], p["message_size"], p["sessions"]
    d = ctx.dir("smtp-floor")
    sink = mta.SmtpSink(d, max_conn=p["sink_max_conn"], name="smtp-sink-floor").start()
    ctx.on_cleanup(sink.stop)
    fid = "floor.smtp.loopback"
    spec = FigureSpec(fid, "floor", "smtp-source -> smtp-sink, loopback", "msg/s")

    def run(warm):
        count = max(1, n // 10) if warm else n
        c0 = sink.count()
        sink_cpu0 = procstat.cpu_seconds(sink.proc.pid)
        busy = procstat.MachineCpu().start()
        src = mta.SmtpSource(sink.host, sink.port, count, os.path.join(d, "source.log"),
                             size=size, sessions=sessions, sender=p["sender"],
                             recipient=p["recipient"]).start()
        res = src.wait(timeout=p["timeout"])
        if res.returncode != 0:
            raise BenchError("smtp-source exited %s: %s" % (res.returncode, res.output[-2000:]))
        deadline = time.monotonic() + 30
        while sink.count() - c0 < count:
            if time.monotonic() > deadline:
                raise BenchError("smtp-sink counted %d of %d" % (sink.count() - c0, count))
            time.sleep(0.01)
        return {fid: count / res.elapsed, "elapsed_s": round(res.elapsed, 3),
                "messages": count,
                "source_cpu_s": round(res.utime + res.stime, 3),
                "sink_cpu_s": round(procstat.cpu_seconds(sink.proc.pid) - sink_cpu0, 3),
                "machine_cpu_busy": round(busy.stop(), 3)}

    return ctx.measure(fid, [spec], run, {
        "messages": n, "payload_bytes": size, "sessions": sessions,
        "source": "smtp-source -s %d -m %d -l %d (one message per connection)" % (sessions, n, size),
        "sink": "smtp-sink -c -m %d (discards messages)" % p["sink_max_conn"],
    })
