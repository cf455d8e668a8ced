"""wrk (Debian's) with bench/wrk/post_json.lua: HTTP load with results as a dict."""
import json
import os
import subprocess
import tempfile
import time

from .core import BENCH_DIR, BenchError

POST_JSON = os.path.join(BENCH_DIR, "wrk", "post_json.lua")


def run(url, duration_s, connections=32, threads=2, script=POST_JSON, path=None, auth=None,
        body=None, body_file=None, headers=None, timeout_s=10, method=None, extra_env=None,
        ok_status=None, count=None, on_start=None):
    """Run wrk against url (http://127.0.0.1:PORT) for duration_s; returns the WRK_JSON
    dict from the script (requests, rps, status counts, accepted count and accepted per
    second, errors, latency percentiles in us) plus "stdout" (wrk's own summary) and
    "cpu_s" (wrk's own user+system CPU time). ok_status / count: see post_json.lua
    (WRK_OK_STATUS, WRK_COUNT). on_start(pid) is called once wrk runs (for samplers).
    Raises BenchError when wrk fails."""
    env = dict(os.environ)
    for k, v in (("WRK_PATH", path), ("WRK_AUTH", auth), ("WRK_BODY", body),
                 ("WRK_BODY_FILE", body_file), ("WRK_METHOD", method),
                 ("WRK_OK_STATUS", None if ok_status is None else str(ok_status)),
                 ("WRK_COUNT", count)):
        if v is not None:
            env[k] = v
    if headers:
        env["WRK_HEADERS"] = "\n".join("%s: %s" % kv for kv in headers.items())
    env.update(extra_env or {})
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", "%ds" % duration_s,
            "--timeout", "%ds" % timeout_s, "-s", script, url]
    with tempfile.TemporaryFile() as out_f:
        p = subprocess.Popen(argv, stdout=out_f, stderr=subprocess.STDOUT, env=env)
        t0 = time.monotonic()
        try:
            if on_start:
                on_start(p.pid)
            deadline = t0 + duration_s + timeout_s + 60
            while True:
                # wait4 for wrk's own CPU time (rusage of exactly this child).
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid == p.pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:
                    raise BenchError("wrk did not finish in %ds" % (deadline - t0))
                time.sleep(0.02)
        finally:
            if p.returncode is None:
                p.kill()
                p.wait()
        out_f.seek(0)
        out = out_f.read().decode("utf-8", "replace")
    line = next((l for l in out.splitlines() if l.startswith("WRK_JSON ")), None)
    if p.returncode != 0 or line is None:
        raise BenchError("wrk failed (%d):\n%s" % (p.returncode, out[-3000:]))
    res = json.loads(line[len("WRK_JSON "):])
    res["stdout"] = out
    res["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
    res["wall_s"] = round(time.monotonic() - t0, 3)
    return res
