"""Run context, figures, results.

A *figure* is one number with a unit (sign/s, rows/s, msg/s, ms CPU/msg), its kind (floor,
peer or posthorn), the conditions it was measured under, and every run behind it. A
*measurement* is one function that, run once, yields one or more figures (one Postfix run
gives the accept rate, the end-to-end rate and the CPU per message); Context.measure() runs
it once as a warm-up (result discarded), then `runs` times, and reports each figure's median.

Measurements are cached by id in the Context, so scenarios run in one invocation share the
floors and peers they have in common and every scenario's JSON still carries them.
"""
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

SHARED_MACHINE_NOTE = ("Load generators (smtp-source, pgbench, wrk), sinks (smtp-sink) and the "
                       "system under test share this machine's %d CPU cores; each figure is "
                       "the throughput of the whole arrangement, not of the system under test "
                       "alone.")


# Share of all CPUs busy while the runner idles above which a measurement is flagged.
BUSY_LIMIT = 0.15


class BenchError(RuntimeError):
    """A measurement that could not be made (tool failed, messages lost, timeout)."""


class FigureSpec:
    def __init__(self, id, kind, label, unit, better="higher", fmt="{:.0f}"):
        assert kind in ("floor", "peer", "posthorn")
        self.id, self.kind, self.label, self.unit = id, kind, label, unit
        self.better = better
        self.fmt = fmt


class Figure:
    def __init__(self, spec, conditions, measurement):
        self.spec = spec
        self.conditions = conditions
        self.measurement = measurement
        self.values = []
        self.details = []      # one dict per run: everything the run reported
        self.median = None
        self.median_run = None  # index into details of the run closest to the median

    def finish(self):
        self.median = statistics.median(self.values)
        self.median_run = min(range(len(self.values)),
                              key=lambda i: abs(self.values[i] - self.median))

    def as_json(self):
        s = self.spec
        return {
            "id": s.id, "kind": s.kind, "label": s.label, "unit": s.unit, "better": s.better,
            "median": _round(self.median), "runs": [_round(v) for v in self.values],
            "min": _round(min(self.values)), "max": _round(max(self.values)),
            "measurement": self.measurement,
        }

    def text(self, v=None):
        v = self.median if v is None else v
        return self.spec.fmt.format(v)


def _round(v):
    if isinstance(v, float):
        return float("%.4g" % v) if abs(v) < 1000 else round(v, 1)
    return v


class Context:
    """State of one `bench/run` invocation."""

    def __init__(self, params, smoke=False, out_dir=None, keep=False, log=None):
        self.params = params
        self.smoke = smoke
        self.keep = keep
        self.work_dir = tempfile.mkdtemp(prefix="posthorn-bench-")
        os.chmod(self.work_dir, 0o755)
        if out_dir is None:
            # Smoke results never overwrite the committed ones.
            out_dir = tempfile.mkdtemp(prefix="posthorn-bench-smoke-") if smoke else RESULTS_DIR
        self.out_dir = out_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.figures = {}       # id -> Figure
        self.measured = {}      # measurement id -> [figure ids]
        self.charts = {}        # measurement id -> chart data (series of the median run)
        self._cleanups = []
        self._log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.started = time.time()
        self.loadavg_at_start = os.getloadavg()
        self.busy_before = {}   # measurement id -> share of CPUs busy just before it

    # --- plumbing -----------------------------------------------------------------------
    def log(self, msg):
        self._log("[bench %6.1fs] %s" % (time.time() - self.started, msg))

    def dir(self, name):
        d = os.path.join(self.work_dir, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        return d

    def on_cleanup(self, fn):
        """fn() runs at close(), last registered first (stop what you started)."""
        self._cleanups.append(fn)

    def close(self):
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep stopping the rest
                self.log("cleanup failed: %r" % e)
        if self.keep:
            self.log("work directory kept: %s" % self.work_dir)
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    @property
    def runs(self):
        return self.params["runs"]

    # --- measuring ------------------------------------------------------------------------
    def measure(self, mid, specs, fn, conditions, chart_key=None):
        """Run fn(warm) once with warm=True (unless params['warmup'] is false), then `runs`
        times with warm=False. fn returns {figure id: value, ...} for every spec, and may
        add any other keys (CPU, memory, elapsed...) that go to the run's details;
        "series" (for charts) is kept from the run closest to the median of chart_key.
        Returns the Figures (cached: a second call with the same mid measures nothing)."""
        if mid in self.measured:
            return [self.figures[i] for i in self.measured[mid]]
        figs = [Figure(s, conditions, mid) for s in specs]
        # How busy the machine is while we do nothing (other work lowers every figure). Give
        # servers just started for this measurement a few seconds to settle first.
        from .procstat import MachineCpu
        window = self.params.get("idle_check_s", 0.5)
        deadline = time.monotonic() + self.params.get("settle_max_s", 5.0)
        while True:
            idle = MachineCpu().start()
            time.sleep(window)
            busy = idle.stop()
            if busy <= BUSY_LIMIT or time.monotonic() >= deadline:
                break
        self.busy_before[mid] = round(busy, 3)
        if self.params.get("warmup", True):
            self.log("%s: warm-up" % mid)
            fn(True)
        series = []
        for i in range(self.runs):
            t0 = time.monotonic()
            out = fn(False)
            took = time.monotonic() - t0
            series.append(out.get("series"))
            for f in figs:
                if f.spec.id not in out:
                    raise BenchError("%s did not report %s" % (mid, f.spec.id))
                f.values.append(out[f.spec.id])
                d = dict(out)
                d["wall_s"] = round(took, 3)
                f.details.append(d)
            self.log("%s: run %d/%d: %s" % (mid, i + 1, self.runs, ", ".join(
                "%s %s %s" % (f.spec.id, f.text(f.values[-1]), f.spec.unit) for f in figs)))
        for f in figs:
            f.finish()
            self.figures[f.spec.id] = f
        self.measured[mid] = [f.spec.id for f in figs]
        if chart_key is not None:
            key_fig = self.figures[chart_key]
            self.charts[mid] = series[key_fig.median_run]
        return figs


# --- conditions of the run ------------------------------------------------------------------
def _cmd(argv, default="unknown", any_status=False):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20,
                           cwd=ROOT)
        out = r.stdout.decode("utf-8", "replace").strip()
        return out if (r.returncode == 0 or any_status) and out else default
    except (OSError, subprocess.TimeoutExpired):
        return default


def git_info():
    sha = _cmd(["git", "rev-parse", "HEAD"], None)
    status = _cmd(["git", "status", "--porcelain", "--untracked-files=no"], "")
    return {"commit": sha or "none (no commit yet)",
            "dirty": bool(status.strip()) if sha else None,
            "describe": _cmd(["git", "describe", "--always", "--dirty"], None)}


def _first_line(text):
    return text.splitlines()[0] if text else text


def machine_info(work_dir):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        debian = None
    fs = _cmd(["stat", "-f", "-c", "%T", work_dir])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "debian": debian,
        "work_dir_filesystem": fs,
    }


def tool_versions():
    return {
        "postfix": _cmd(["/usr/sbin/postconf", "-d", "-h", "mail_version"]),
        "opendkim": _first_line(_cmd(["/usr/sbin/opendkim", "-V"])).replace("opendkim: ", ""),
        "openssl": _first_line(_cmd(["openssl", "version"])).split(" (Library")[0],
        "postgresql": _cmd(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
        "pgbench": _cmd(["/usr/lib/postgresql/15/bin/pgbench", "--version"]),
        "wrk": _first_line(_cmd(["wrk", "-v"], any_status=True)),
        "gnuplot": _cmd(["gnuplot", "--version"]),
        "python": sys.version.split()[0],
    }


# --- output ------------------------------------------------------------------------------
def write_results(ctx, scenario, figure_ids, comparisons, charts, extra=None):
    """bench/results/<scenario>.json (or the smoke dir): every figure with its runs and
    conditions, the comparisons with ratios, and the run's conditions."""
    doc = {
        "scenario": scenario.name,
        "description": scenario.description,
        "smoke": ctx.smoke,
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - ctx.started, 1),
        "git": git_info(),
        "machine": dict(machine_info(ctx.work_dir), loadavg_at_start=ctx.loadavg_at_start),
        "tools": tool_versions(),
        "method": {
            "warmup": bool(ctx.params.get("warmup", True)),
            "runs": ctx.runs,
            "statistic": "median of the runs (min and max beside it)",
            "note": SHARED_MACHINE_NOTE % (os.cpu_count() or 0),
        },
        "parameters": ctx.params,
        "loadavg_at_end": os.getloadavg(),
        "figures": [ctx.figures[i].as_json() for i in figure_ids if i in ctx.figures],
        "measurements": measurements_json(ctx, figure_ids),
        "comparisons": comparisons,
        "charts": charts,
    }
    if extra:
        doc.update(extra)
    path = os.path.join(ctx.out_dir, "%s.json" % scenario.name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    return path, doc


def measurements_json(ctx, figure_ids):
    """{measurement id: {conditions, figures, runs: [details of each run]}} for the figures."""
    out = {}
    for i in figure_ids:
        f = ctx.figures.get(i)
        if f is None or f.measurement in out:
            continue
        out[f.measurement] = {
            "figures": ctx.measured[f.measurement],
            "conditions": f.conditions,
            "machine_busy_before": ctx.busy_before.get(f.measurement),
            "runs": [{k: _round(v) for k, v in d.items() if k != "series"} for d in f.details],
        }
    return out


def comparison_rows(ctx, rows):
    """rows: [(label, posthorn id|None, peer id|None, floor id|None)] -> dicts with values
    and ratios (posthorn/peer, posthorn/floor, peer/floor) where both sides exist."""
    out = []
    for label, ph, peer, floor in rows:
        def val(i):
            f = ctx.figures.get(i) if i else None
            return f.median if f else None
        v = {"posthorn": val(ph), "peer": val(peer), "floor": val(floor)}
        r = {"label": label,
             "posthorn": {"id": ph, "median": _round(v["posthorn"])} if ph else None,
             "peer": {"id": peer, "median": _round(v["peer"])} if peer else None,
             "floor": {"id": floor, "median": _round(v["floor"])} if floor else None}
        for a, b in (("posthorn", "peer"), ("posthorn", "floor"), ("peer", "floor")):
            if v[a] is not None and v[b]:
                r["%s_over_%s" % (a, b)] = round(v[a] / v[b], 3)
        out.append(r)
    return out


def format_table(ctx, scenario, figure_ids, comparisons):
    lines = []
    title = "Posthorn bench: %s%s" % (scenario.name, " (SMOKE: tiny counts, 1 run)" if ctx.smoke else "")
    lines.append(title)
    lines.append("=" * len(title))
    lines.append((SHARED_MACHINE_NOTE % (os.cpu_count() or 0)))
    lines.append("Median of %d run(s)%s; git %s." % (
        ctx.runs, " after a warm-up" if ctx.params.get("warmup", True) else "",
        git_info()["describe"] or "none"))
    busy = busy_warning(ctx)
    if busy:
        lines.append(busy)
    lines.append("")
    w = max([len(ctx.figures[i].spec.label) for i in figure_ids if i in ctx.figures] + [20])
    hdr = "%-8s  %-*s  %12s  %-12s  %s" % ("kind", w, "figure", "median", "unit", "runs")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for kind in ("posthorn", "peer", "floor"):
        for i in figure_ids:
            f = ctx.figures.get(i)
            if f is None or f.spec.kind != kind:
                continue
            runs = " ".join(f.text(v) for v in f.values)
            lines.append("%-8s  %-*s  %12s  %-12s  %s" % (kind, w, f.spec.label, f.text(),
                                                          f.spec.unit, runs))
    if comparisons:
        lines.append("")
        lw = max(len(c["label"]) for c in comparisons)
        hdr = "%-*s  %10s  %10s  %10s  %8s  %9s  %9s" % (
            lw, "comparison", "posthorn", "peer", "floor", "ph/peer", "ph/floor", "peer/floor")
        lines.append(hdr)
        lines.append("-" * len(hdr))

        def cell(c, k):
            x = c.get(k)
            if not x or x.get("median") is None:
                return "-"
            return ctx.figures[x["id"]].text()

        for c in comparisons:
            lines.append("%-*s  %10s  %10s  %10s  %8s  %9s  %9s" % (
                lw, c["label"], cell(c, "posthorn"), cell(c, "peer"), cell(c, "floor"),
                _ratio(c.get("posthorn_over_peer")), _ratio(c.get("posthorn_over_floor")),
                _ratio(c.get("peer_over_floor"))))
    return "\n".join(lines)


def busy_warning(ctx):
    """A warning when the machine was busy just before a measurement (other work on the
    machine lowers every figure)."""
    # Measured CPU use, not the load average: that lags a minute behind.
    out = []
    busy = {m: b for m, b in ctx.busy_before.items() if b > BUSY_LIMIT}
    if busy:
        out.append("WARNING: the machine was busy just before %s (%s of all CPUs while the "
                   "runner idled, this run's own servers included): those figures may be low." % (
                       ", ".join(sorted(busy)), ", ".join("%.0f%%" % (100 * b)
                                                          for _, b in sorted(busy.items()))))
    return "\n".join(out) or None


def _ratio(x):
    return "-" if x is None else "%.2f" % x


def slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def markdown(doc):
    """A results JSON document -> Markdown (conditions, figures, comparisons) for the README."""
    m, g, p = doc["machine"], doc["git"], doc["parameters"]
    out = []
    busy_max = max([v.get("machine_busy_before") or 0
                    for v in doc.get("measurements", {}).values()] or [0])
    out.append("Run %s on commit `%s`%s: %d cores (%s), %d MB RAM, Debian %s, kernel %s; "
               "at most %.0f%% of the CPUs busy just before each measurement; "
               "%s; the run took %.0f s. %s" % (
                   doc["generated_at"], (g.get("commit") or "none")[:12],
                   " (with uncommitted changes)" if g.get("dirty") else "", m["cpus"],
                   m["cpu_model"], m["memory_mb"], m.get("debian"), m["kernel"],
                   100 * busy_max,
                   "a warm-up, then the median of %d runs" % doc["method"]["runs"]
                   if doc["method"]["warmup"] else "the median of %d runs" % doc["method"]["runs"],
                   doc["duration_s"], doc["method"]["note"]))
    out.append("")
    out.append("Messages: %d x %d payload bytes, %d smtp-source sessions; pgbench %d s per run. "
               "Tools: %s." % (p["messages"], p["message_size"], p["sessions"],
                               p["pgbench_seconds"], ", ".join(
                                   "%s %s" % (k, v) for k, v in doc["tools"].items()
                                   if k in ("postfix", "opendkim", "openssl", "postgresql"))))
    out.append("")
    out.append("| kind | figure | median | unit | runs |")
    out.append("|---|---|---:|---|---|")
    order = {"posthorn": 0, "peer": 1, "floor": 2}
    for f in sorted(doc["figures"], key=lambda f: order[f["kind"]]):
        fmt = "%.0f"
        if "CPU" in f["unit"] or f["unit"] in ("ms", "MB", "s", "ratio", "x") or \
                abs(f["median"]) < 10:
            fmt = "%.3f" if f["median"] < 1 else "%.2f" if f["median"] < 100 else "%.0f"
        out.append("| %s | %s | %s | %s | %s |" % (
            f["kind"], f["label"], fmt % f["median"], f["unit"],
            " ".join(fmt % v for v in f["runs"])))
    if doc.get("comparisons"):
        out.append("")
        out.append("| comparison | Posthorn | peer | floor | Posthorn/peer | Posthorn/floor | peer/floor |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for c in doc["comparisons"]:
            def v(k):
                x = c.get(k)
                if not x or x.get("median") is None:
                    return "-"
                return ("%.0f" if x["median"] >= 100 else "%.3g") % x["median"]

            def r(k):
                return "%.2f" % c[k] if c.get(k) is not None else "-"
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                c["label"], v("posthorn"), v("peer"), v("floor"), r("posthorn_over_peer"),
                r("posthorn_over_floor"), r("peer_over_floor")))
    if doc.get("notes"):
        out.append("")
        out.extend("- " + n for n in doc["notes"])
    busy = {k: v["machine_busy_before"] for k, v in doc.get("measurements", {}).items()
            if (v.get("machine_busy_before") or 0) > BUSY_LIMIT}
    if busy:
        out.append("")
        out.append("Machine busy just before: %s (share of all CPUs while the runner idled)." %
                   ", ".join("%s %.0f%%" % (k, 100 * b) for k, b in sorted(busy.items())))
    return "\n".join(out)
