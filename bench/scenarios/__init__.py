"""Scenario registry for bench/run.

Each module in this package (except those starting with "_") defines

    SCENARIO = Scenario(name, description, run, order=N)

where run(ctx) measures what it needs through the shared Context and returns a Report:

    Report(figures=[figure ids, in table order],
           comparisons=[(label, posthorn figure id | None, peer id | None, floor id | None)],
           charts=[Chart(name, title, [(label, [(t, value)])])])

Floors and peers are measured through benchlib.floors / benchlib.peers, which cache by
measurement id: scenarios run in one invocation share them, and every scenario's JSON still
carries the ones it used. A Posthorn scenario (inject, render, deliver, events, campaign)
gets a private stack from benchlib.stack.get(ctx), measures with ctx.measure() and
FigureSpec(kind="posthorn"), and lists comparisons so the table prints Posthorn beside its
peer and floor with the ratios. See bench/README.md, "Adding a scenario".
"""
import importlib
import os
import pkgutil


class Chart:
    def __init__(self, name, title, series, ylabel="messages/s"):
        self.name, self.title, self.series, self.ylabel = name, title, series, ylabel


class Report:
    def __init__(self, figures, comparisons=(), charts=(), extra=None):
        self.figures = list(figures)
        self.comparisons = list(comparisons)
        self.charts = list(charts)
        self.extra = extra or {}


class Scenario:
    def __init__(self, name, description, run, order=100):
        self.name, self.description, self.run, self.order = name, description, run, order


def registry():
    """{name: Scenario} for every scenario module in this package, in run order."""
    found = []
    here = os.path.dirname(os.path.abspath(__file__))
    for mod in pkgutil.iter_modules([here]):
        if mod.name.startswith("_"):
            continue
        m = importlib.import_module("%s.%s" % (__name__, mod.name))
        sc = getattr(m, "SCENARIO", None)
        if sc is not None:
            found.append(sc)
    found.sort(key=lambda s: (s.order, s.name))
    return {s.name: s for s in found}
