"""wrk (Debian's) with bench/wrk/post_json.lua: HTTP load with results as a dict."""
import json
import os
import subprocess

from .core import BENCH_DIR, BenchError

POST_JSON = os.path.join(BENCH_DIR, "wrk", "post_json.lua")


def run(url, duration_s, connections=32, threads=2, script=POST_JSON, path=None, auth=None,
        body=None, body_file=None, headers=None, timeout_s=10, method=None, extra_env=None):
    """Run wrk against url (http://127.0.0.1:PORT) for duration_s; returns the WRK_JSON
    dict from the script (requests, rps, status counts, errors, latency percentiles in us)
    plus "stdout" (wrk's own summary). Raises BenchError when wrk fails."""
    env = dict(os.environ)
    for k, v in (("WRK_PATH", path), ("WRK_AUTH", auth), ("WRK_BODY", body),
                 ("WRK_BODY_FILE", body_file), ("WRK_METHOD", method)):
        if v is not None:
            env[k] = v
    if headers:
        env["WRK_HEADERS"] = "\n".join("%s: %s" % kv for kv in headers.items())
    env.update(extra_env or {})
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", "%ds" % duration_s,
            "--timeout", "%ds" % timeout_s, "-s", script, url]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                       timeout=duration_s + timeout_s + 60)
    out = r.stdout.decode("utf-8", "replace")
    line = next((l for l in out.splitlines() if l.startswith("WRK_JSON ")), None)
    if r.returncode != 0 or line is None:
        raise BenchError("wrk failed (%d):\n%s" % (r.returncode, out[-3000:]))
    res = json.loads(line[len("WRK_JSON "):])
    res["stdout"] = out
    return res
