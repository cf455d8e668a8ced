"""Throughput-over-time charts (PNG) with gnuplot and bench/gnuplot/throughput.gp."""
import os
import subprocess

from .core import BENCH_DIR


def rates(points, min_dt=0.0):
    """[(t, cumulative count)] -> [(t_mid, count/s over the interval)]. An interval shorter
    than min_dt is merged into the next one (or dropped at the end): a 20 ms tail would
    otherwise show as a spike."""
    out = []
    i = 0
    while i < len(points) - 1:
        t0, c0 = points[i]
        j = i + 1
        while j < len(points) - 1 and points[j][0] - t0 < min_dt:
            j += 1
        t1, c1 = points[j]
        if t1 - t0 >= min_dt and t1 > t0:
            out.append((round((t0 + t1) / 2, 3), (c1 - c0) / (t1 - t0)))
        i = j
    return out


def _num(v):
    """Rates with one decimal; small values (CPU cores busy) with three."""
    return ("%.1f" if abs(v) >= 10 else "%.3f") % v


def throughput_png(path, title, series, work_dir, ylabel="messages/s"):
    """series: [(label, [(t, rate)])]. Writes the data to work_dir and the chart to path
    (PNG). Returns path, or None when gnuplot is missing."""
    dat = os.path.join(work_dir, os.path.splitext(os.path.basename(path))[0] + ".dat")
    times = sorted({t for _, pts in series for t, _ in pts})
    cols = [dict(pts) for _, pts in series]
    with open(dat, "w") as f:
        f.write("\t".join(["t"] + [label for label, _ in series]) + "\n")
        for t in times:
            f.write("\t".join(["%g" % t] + [_num(c[t]) if t in c else "?" for c in cols]) + "\n")
    script = os.path.join(BENCH_DIR, "gnuplot", "throughput.gp")
    expr = "datafile='%s'; outfile='%s'; charttitle='%s'; ncols=%d; ylabel='%s'" % (
        dat, path, title.replace("'", ""), len(series) + 1, ylabel)
    try:
        r = subprocess.run(["gnuplot", "-e", expr, script], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0 or not os.path.exists(path):
        raise RuntimeError("gnuplot failed: %s" % r.stdout.decode("utf-8", "replace")[-2000:])
    return path
