"""A private Posthorn stack for one bench run, made the way the e2e fixtures make theirs:
its own PostgreSQL cluster (fsync and synchronous_commit ON, unlike the tests), Redis,
dnsmasq serving MX records that point at an smtp-sink, and the Posthorn binaries from bin/.

    st = stack.get(ctx)                 # made once per bench/run, stopped at the end
    st.api.base                         # http://127.0.0.1:PORT
    st.key                              # an account key with send,read,admin
    st.start_worker()                   # posthorn-worker delivering via MX to st.sink
    st.sink.count()                     # messages the sink has received
    st.api_pids() / st.worker_pids()    # for procstat (CPU, memory)

Scenarios that need other settings pass env to get(ctx, env={...}) the first time. The
defaults deliver over SMTP via MX (POSTHORN_DELIVERY=mx) to the sink; until the worker has
its SMTP engine, a scenario that starts a worker passes {"POSTHORN_DELIVERY": "file"}.
"""
import os

from harness import dns as hdns
from harness import mta
from harness import pg as hpg
from harness import posthorn as hph
from harness import redis as hredis

SINK_DOMAIN = "sink.test"      # recipients @sink.test go to the smtp-sink via MX
SENDER_DOMAIN = "bench.posthorn.test"

# Settings the bench stack uses unless a scenario overrides them.
DEFAULT_ENV = {
    "POSTHORN_LOG_LEVEL": "warn",
    "POSTHORN_DELIVERY": "mx",
    "POSTHORN_SMTP_ALLOW_CIDRS": "127.0.0.0/8",
    "POSTHORN_ALLOW_UNVERIFIED": "1",
    "POSTHORN_POLL_INTERVAL": "1s",
    "POSTHORN_HELO_NAME": "posthorn.bench.test",
}


class PosthornStack:
    def __init__(self, ctx, env=None, key_rate="1000000/s"):
        self.ctx = ctx
        self.key_rate = key_rate
        p = ctx.params
        self.pg = hpg.PgCluster(ctx.dir("stack-pg"), fsync=True,
                                extra_conf={"synchronous_commit": "on", "max_connections": "200"})
        ctx.on_cleanup(self.pg.destroy)
        self.redis = hredis.RedisServer(ctx.dir("stack-redis"))
        ctx.on_cleanup(self.redis.destroy)
        self.sink = mta.SmtpSink(ctx.dir("stack-sink"), max_conn=p["sink_max_conn"],
                                 name="smtp-sink-posthorn").start()
        ctx.on_cleanup(self.sink.stop)
        self.dns = hdns.Dnsmasq(ctx.dir("stack-dns"), mx=[(SINK_DOMAIN, "mx." + SINK_DOMAIN, 10)],
                                hosts=[("mx." + SINK_DOMAIN, self.sink.host)])
        ctx.on_cleanup(self.dns.destroy)
        e = dict(DEFAULT_ENV)
        e.update({"POSTHORN_DNS_SERVER": self.dns.server,
                  "POSTHORN_SMTP_PORT": str(self.sink.port)})
        e.update(env or {})
        self.env = e
        self.ph = hph.Posthorn(ctx.dir("stack-posthorn"), self.pg.url, self.redis.url, env=e)
        ctx.on_cleanup(self.ph.stop_all)
        self.ph.migrate()
        self.account = self.ph.create_account("bench")
        self.key = self.ph.create_key(self.account, ("send", "read", "admin"), rate=key_rate)
        self.api = self.ph.api_proc()
        self.workers = []

    def start_worker(self, env=None):
        w = self.ph.worker_proc(env)
        self.workers.append(w)
        return w

    def api_pids(self):
        return [a.pid for a in self.ph.apis if a.alive()]

    def worker_pids(self):
        return [w.pid for w in self.workers if w.alive()]

    def settings(self):
        """The settings a result should carry (no secrets)."""
        return {k: v for k, v in self.env.items()
                if k.startswith("POSTHORN_") and "SECRET" not in k and "URL" not in k}


def get(ctx, env=None):
    st = getattr(ctx, "_posthorn_stack", None)
    if st is None:
        for prog in ("posthorn", "posthorn-api", "posthorn-worker"):
            if not os.access(os.path.join(hph.BIN, prog), os.X_OK):
                raise RuntimeError("bin/%s is missing: run `make` first" % prog)
        st = PosthornStack(ctx, env)
        ctx._posthorn_stack = st
    return st
