"""Child processes for tests: logs captured to a file, readiness by polling, reliable stop."""
import os
import signal
import signal as _signal  # Proc.signal() shadows the module name inside the class body
import socket
import subprocess
import time


class Proc:
    """One child process. Its stdout+stderr go to log_path; stop() ends it and its group."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, preexec_fn=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        self.p = None

    def start(self):
        logf = open(self.log_path, "ab", buffering=0)
        self.p = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                  start_new_session=True, preexec_fn=self.preexec_fn)
        logf.close()
        return self

    @property
    def pid(self):
        return self.p.pid if self.p else None

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def kill9(self):
        if self.alive():
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()

    def stop(self, sig=_signal.SIGTERM, timeout=10.0):
        """Ask politely, then SIGKILL the whole process group. Returns the exit code."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        return self.p.returncode

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def wait_tcp(host, port, timeout=20.0, proc=None):
    """Wait until host:port accepts a TCP connection; fail early if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError("%s exited (%s) before listening on %s:%d:\n%s" %
                               (proc.name, proc.p.returncode, host, port, proc.log()[-4000:]))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listening on %s:%d after %.0fs" % (host, port, timeout))


def wait_for(pred, timeout=20.0, interval=0.1, what="condition"):
    """Poll pred() until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))
