"""bench/run command line."""
import argparse
import os
import signal
import sys
import time
import traceback

from . import chart, core

FULL = {
    "runs": 3,
    "warmup": True,
    "openssl_seconds": 2,
    "pgbench_seconds": 5,
    "pgbench_warmup_seconds": 2,
    "pgbench_clients": [1, 8],
    "messages": 10000,
    "message_size": 2048,
    "sessions": 50,
    "sink_max_conn": 1000,
    "sample_interval": 0.5,
    "idle_check_s": 0.5,
    "settle_max_s": 5.0,
    "timeout": 300,
    "sender": "bench@bench.posthorn.test",
    "recipient": "rcpt@sink.test",
}

SMOKE = dict(FULL, runs=1, warmup=False, openssl_seconds=1, pgbench_seconds=1,
             pgbench_warmup_seconds=1, messages=40, sessions=4, sample_interval=0.1,
             timeout=60, idle_check_s=0.1, settle_max_s=0.5)


def parse(argv):
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Posthorn benchmarks: each scenario's figures beside the Postfix peer and "
                    "the machine's floors. Scenarios: the arguments, else $SCENARIO, else all.")
    ap.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny counts, one run, no warm-up, results to a temp dir (for make test)")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("--out", help="results directory (default bench/results, or a temp dir "
                                  "with --smoke)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--markdown", action="store_true",
                    help="print the committed results of the scenarios as Markdown (for the "
                         "README) and exit; measures nothing")
    ap.add_argument("--runs", type=int, help="measured runs per figure (default 3)")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--messages", type=int, help="messages per peer run (default 10000)")
    ap.add_argument("--size", type=int, help="message payload bytes (default 2048)")
    ap.add_argument("--sessions", type=int, help="parallel SMTP sessions (default 50)")
    ap.add_argument("--pgbench-seconds", type=int, help="seconds per pgbench run (default 5)")
    return ap.parse_args(argv)


def main(argv):
    args = parse(argv)
    from scenarios import registry
    reg = registry()
    if args.list:
        for s in reg.values():
            print("%-10s %s" % (s.name, s.description))
        return 0
    names = args.scenarios or os.environ.get("SCENARIO", "").split()
    names = names or list(reg)
    unknown = [n for n in names if n not in reg]
    if unknown:
        print("bench/run: unknown scenario(s) %s; known: %s" % (
            ", ".join(unknown), ", ".join(reg)), file=sys.stderr)
        return 2

    if args.markdown:
        import json
        for name in names:
            path = os.path.join(args.out or core.RESULTS_DIR, "%s.json" % name)
            if not os.path.exists(path):
                print("bench/run: no results for %s (%s)" % (name, path), file=sys.stderr)
                return 1
            with open(path) as f:
                print(core.markdown(json.load(f)))
            print()
        return 0

    params = dict(SMOKE if args.smoke else FULL)
    for opt, key in (("runs", "runs"), ("messages", "messages"), ("size", "message_size"),
                     ("sessions", "sessions"), ("pgbench_seconds", "pgbench_seconds")):
        v = getattr(args, opt)
        if v is not None:
            params[key] = v
    if args.no_warmup:
        params["warmup"] = False

    def on_term(signum, frame):
        # Unwind through ctx.close(): Postfix, opendkim, sinks and PostgreSQL are stopped.
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    ctx = core.Context(params, smoke=args.smoke, out_dir=args.out, keep=args.keep)
    ctx.log("scenarios %s; work dir %s; results to %s" % (" ".join(names), ctx.work_dir,
                                                         ctx.out_dir))
    rc = 0
    try:
        for name in names:
            sc = reg[name]
            t0 = time.monotonic()
            ctx.log("== scenario %s" % name)
            try:
                report = sc.run(ctx)
            except Exception:
                traceback.print_exc()
                ctx.log("scenario %s FAILED (work dir kept: %s)" % (name, ctx.work_dir))
                ctx.keep = True
                rc = 1
                continue
            charts = []
            for c in report.charts:
                if not any(pts for _, pts in c.series):
                    continue
                png = os.path.join(ctx.out_dir, "%s.png" % c.name)
                made = chart.throughput_png(png, c.title, c.series, ctx.work_dir, c.ylabel)
                charts.append({"name": c.name, "png": os.path.basename(made) if made else None,
                               "title": c.title,
                               "series": [{"label": label, "points": pts}
                                          for label, pts in c.series]})
            comps = core.comparison_rows(ctx, report.comparisons)
            path, _doc = core.write_results(ctx, sc, report.figures, comps, charts, report.extra)
            print()
            print(core.format_table(ctx, sc, report.figures, comps))
            for note in report.extra.get("notes") or ():
                print("- " + note)
            print()
            print("results: %s%s  (scenario took %.0fs)" % (
                path, "".join(", " + os.path.join(ctx.out_dir, c["png"]) for c in charts
                              if c["png"]), time.monotonic() - t0))
            sys.stdout.flush()
    finally:
        ctx.close()
    return rc
