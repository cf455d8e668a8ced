"""CPU time and memory from /proc: one process, a process and its descendants, the machine."""
import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def cpu_seconds(pid, children=True):
    """utime+stime of pid, plus cutime+cstime (its reaped children) when children=True."""
    try:
        f = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return 0.0
    # After ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def _ppids():
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            out[int(name)] = int(_stat_fields(int(name))[1])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    return out


def tree(pid):
    """pid and all its live descendants."""
    ppids = _ppids()
    kids = {}
    for p, pp in ppids.items():
        kids.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in ppids or p == pid:
            out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_seconds(pid):
    """CPU time of pid and its descendants, including those that already exited and were
    reaped (their time is in the parent's cutime/cstime)."""
    return sum(cpu_seconds(p) for p in tree(pid))


def status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, ...), 0 when the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pss_kb(pid):
    """Proportional set size (shared pages split among their users), from smaps_rollup."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return status_kb(pid, "VmRSS")


def tree_pss_kb(pid):
    """Sum of PSS over pid and its descendants: the memory the whole tree really uses."""
    return sum(pss_kb(p) for p in tree(pid))


def machine_cpu():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    vals = [int(x) for x in parts[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


class MachineCpu:
    """Share of all CPUs busy between start() and stop() (0..1)."""

    def start(self):
        self.b0, self.t0 = machine_cpu()
        return self

    def stop(self):
        b1, t1 = machine_cpu()
        return (b1 - self.b0) / max(1, t1 - self.t0)


class Sampler:
    """Calls fn() every interval seconds in a thread and keeps (t, value) pairs, t from
    start(). Used for memory peaks of process trees while a measurement runs."""

    def __init__(self, fn, interval=0.5):
        self.fn = fn
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self.t0, self.fn()))
            except Exception:  # a process that just exited: skip this sample
                pass
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.samples

    def peak(self):
        return max((v for _, v in self.samples), default=0)
