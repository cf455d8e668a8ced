"""baseline: the floors of this machine and the Postfix peer, with and without DKIM.

Every Posthorn scenario compares against these; `baseline` measures them on their own so
the README can quote them before Posthorn sends anything.
"""
from benchlib import chart, floors, peers

from . import Chart, Report, Scenario


def run(ctx):
    figs = []
    figs += floors.openssl(ctx)
    figs += floors.pgbench(ctx)
    figs += floors.smtp_loopback(ctx)
    figs += peers.postfix(ctx, dkim=False)
    figs += peers.postfix(ctx, dkim=True)

    comparisons = [
        ("accept, no DKIM vs smtp-source->sink (msg/s)", None,
         "peer.postfix.accept", "floor.smtp.loopback"),
        ("relay end to end, no DKIM vs smtp-source->sink (msg/s)", None,
         "peer.postfix.e2e", "floor.smtp.loopback"),
        ("relay end to end, DKIM vs smtp-source->sink (msg/s)", None,
         "peer.postfix_dkim.e2e", "floor.smtp.loopback"),
        ("relay end to end, DKIM (msg/s) vs rsa2048 sign/s", None,
         "peer.postfix_dkim.e2e", "floor.openssl.rsa2048_sign"),
    ]

    series = []
    min_dt = ctx.params["sample_interval"] / 2
    for mid, label in (("peer.postfix", "Postfix"), ("peer.postfix_dkim", "Postfix+DKIM")):
        pts = ctx.charts.get(mid)
        if not pts:
            continue
        # The accepted line ends when smtp-source has finished.
        n = ctx.params["messages"]
        done = next((i for i, (_, a, _) in enumerate(pts) if a >= n), len(pts) - 1)
        accepted = [(t, a) for t, a, _ in pts[:done + 1]]
        series.append(("%s accepted/s" % label, chart.rates(accepted, min_dt)))
        series.append(("%s delivered/s" % label, chart.rates([(t, d) for t, _, d in pts], min_dt)))
    charts = [Chart("baseline", "Postfix peer: %d x %d B via %d smtp-source sessions "
                    "(median run, sampled every %gs)" % (
                        ctx.params["messages"], ctx.params["message_size"],
                        ctx.params["sessions"], ctx.params["sample_interval"]), series)]
    return Report([f.spec.id for f in figs], comparisons, charts)


SCENARIO = Scenario("baseline", "Floors (openssl speed, pgbench, smtp-source->smtp-sink) and "
                    "the Postfix peer with and without OpenDKIM", run, order=0)
