"""A throwaway redis-server on a free loopback port, without persistence.

    r = RedisServer(base_dir)
    r.url               # redis://127.0.0.1:PORT/0
    r.cmd("PING")       # -> "PONG"
    r.stop(); r.start() # same port, empty data (no persistence)
"""
import os
import shutil
import subprocess

from . import ports, procs

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, base_dir, port=None, password=None, start=True):
        self.base_dir = os.path.abspath(base_dir)
        os.makedirs(self.base_dir, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or ports.free_port()
        self.password = password
        self.log_path = os.path.join(self.base_dir, "redis.log")
        self.proc = None
        if start:
            self.start()

    @property
    def url(self):
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s%s:%d/0" % (auth, self.host, self.port)

    def start(self, timeout=20.0):
        if self.proc is not None and self.proc.alive():
            return self
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "no", "--dir", self.base_dir,
                "--daemonize", "no", "--protected-mode", "yes", "--logfile", "",
                "--loglevel", "notice"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = procs.Proc("redis:%d" % self.port, argv, self.log_path).start()
        procs.wait_for(lambda: self._ping(), timeout=timeout, interval=0.05,
                       what="redis-server on port %d" % self.port)
        return self

    def _ping(self):
        if not self.proc.alive():
            raise RuntimeError("redis-server exited:\n" + self.proc.log()[-3000:])
        try:
            return self.cmd("PING") == "PONG"
        except RuntimeError:
            return False

    def stop(self, timeout=10.0):
        if self.proc is not None:
            self.proc.stop(timeout=timeout)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def cmd(self, *args, timeout=10):
        """Run one command with redis-cli; returns its stdout stripped."""
        argv = [REDIS_CLI, "-h", self.host, "-p", str(self.port)]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        r = subprocess.run(argv + [str(a) for a in args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env)
        if r.returncode != 0:
            raise RuntimeError("redis-cli %s failed: %s" % (args, r.stderr.decode(errors="replace")))
        return r.stdout.decode().strip()

    def clients(self):
        """CLIENT LIST lines other than the redis-cli connection asking."""
        return [l for l in self.cmd("CLIENT", "LIST").splitlines()
                if l.strip() and " cmd=client" not in l]

    def __repr__(self):
        return "<RedisServer %s:%d>" % (self.host, self.port)
