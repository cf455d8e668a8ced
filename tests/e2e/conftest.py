"""Fixtures for the e2e tests: real PostgreSQL, Redis and Posthorn processes on loopback.

Session-wide (shared, cheap per test): `pg`, `redis`, `ph` (a migrated database with a
running posthorn-api), `api`, `spec`. Tests isolate themselves by creating their own
accounts (`new_account`). Tests that stop or restart something get private instances
from the factories `make_pg`, `make_redis`, `make_posthorn`.

For a failed test the new lines of every child log are attached to the report. After each
test, the Posthorn logs are scanned for sanitizer reports; a report fails the test.
Set PH_E2E_KEEP=1 to keep the temporary directory.
"""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import posthorn as hph  # noqa: E402
from harness import pg as hpg  # noqa: E402
from harness import redis as hredis  # noqa: E402

SHARED_DIR_CANDIDATES = [os.path.join(os.path.dirname(hph.ROOT), "shared"), "/work/shared"]


def shared_dir():
    for d in SHARED_DIR_CANDIDATES:
        if os.path.isdir(d):
            return d
    return SHARED_DIR_CANDIDATES[0]


# --- logs: attach to failures, scan for sanitizer reports --------------------------------
def _sizes():
    out = {}
    for _, path, _ in list(hph.LOGS):
        try:
            out[path] = os.path.getsize(path)
        except OSError:
            out[path] = 0
    return out


def _logs_since(offsets, limit=8000):
    parts = []
    for label, path, _ in list(hph.LOGS):
        start = offsets.get(path, 0)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        if not text.strip():
            continue
        if len(text) > limit:
            text = "[... %d bytes cut ...]\n" % (len(text) - limit) + text[-limit:]
        parts.append("----- %s (%s) -----\n%s" % (label, path, text))
    return "\n".join(parts)


SESSION_PROBLEMS = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if SESSION_PROBLEMS and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if SESSION_PROBLEMS:
        terminalreporter.section("Posthorn problems found at session end", sep="=", red=True)
        for p in SESSION_PROBLEMS:
            terminalreporter.write_line(p)
            terminalreporter.write_line("")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed and rep.when in ("setup", "call"):
        offsets = getattr(item, "_ph_log_offsets", None)
        if offsets is not None:
            text = _logs_since(offsets)
            if text:
                rep.sections.append(("child process logs", text))


_SHARED = {}  # the shared Posthorn once the `ph` fixture made it


def _revive_shared_api(request, when):
    """A crash of the shared API must not fail every later test: note it, restart it."""
    p = _SHARED.get("ph")
    if p is None or p.api is None or p.api.alive():
        return None
    msg = "shared posthorn-api died (exit status %r) %s %s; restarted it. Log tail:\n%s" % (
        p.api.proc.p.poll(), when, request.node.nodeid, p.api.proc.log()[-3000:])
    SESSION_PROBLEMS.append(msg)
    p.api.restart()
    return msg


@pytest.fixture(autouse=True)
def _child_logs(request):
    request.node._ph_log_offsets = _sizes()
    _revive_shared_api(request, "before")
    yield
    died = _revive_shared_api(request, "during")
    rep = getattr(request.node, "rep_call", None)
    if died and rep is not None and rep.passed:
        pytest.fail(died, pytrace=False)
    # Runs after the test's own fixtures were torn down, so exit-time reports
    # (LeakSanitizer) of private processes are in the files by now.
    offsets = request.node._ph_log_offsets
    reports = []
    for label, path, is_ph in list(hph.LOGS):
        if is_ph:
            for ex in hph.scan_sanitizer(path, offsets.get(path, 0)):
                reports.append("----- %s (%s) -----\n%s" % (label, path, ex))
    if reports:
        pytest.fail("sanitizer report in child logs:\n" + "\n".join(reports), pytrace=False)


# --- session-wide servers -----------------------------------------------------------------
@pytest.fixture(scope="session")
def tmp_root():
    d = tempfile.mkdtemp(prefix="ph-e2e-")
    os.chmod(d, 0o755)
    yield d
    if not os.environ.get("PH_E2E_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


def _mkdir(root, prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir=root)
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="session")
def spec():
    return hph.load_spec()


@pytest.fixture(scope="session")
def pg(tmp_root):
    c = hpg.PgCluster(_mkdir(tmp_root, "pg-"))
    hph.register_log("postgres (shared)", c.log_path)
    yield c
    c.stop()


@pytest.fixture(scope="session")
def redis(tmp_root):
    r = hredis.RedisServer(_mkdir(tmp_root, "redis-"))
    hph.register_log("redis (shared)", r.log_path)
    yield r
    r.stop()


@pytest.fixture(scope="session")
def ph(tmp_root, pg, redis, spec):
    """The shared Posthorn: migrated database `ph_shared`, posthorn-api running."""
    p = hph.Posthorn(_mkdir(tmp_root, "ph-shared-"), pg.fresh_database("ph_shared"), redis.url,
                     spec=spec)
    try:
        p.migrate()
        p.api_proc()
    except Exception:
        p.stop_all()
        raise
    _SHARED["ph"] = p
    yield p
    _SHARED.pop("ph", None)
    # Problems found here are reported at the end of the run (pytest_terminal_summary) and
    # make it fail (pytest_sessionfinish): raising from a session teardown is not reliable.
    running = {pr.name for pr in p.procs if pr.alive()}
    codes = {n: c for n, c in p.stop_all().items() if n in running}
    for path, ex in p.sanitizer_reports():
        SESSION_PROBLEMS.append("sanitizer report in %s:\n%s" % (path, ex))
    bad = {n: c for n, c in codes.items() if c not in (0, None)}
    if bad:
        SESSION_PROBLEMS.append("shared Posthorn processes did not exit 0 on SIGTERM: %r\n%s" %
                                (bad, "\n".join(pr.log()[-3000:] for pr in p.procs
                                                if pr.name in bad)))


@pytest.fixture(scope="session")
def api(ph):
    return ph.api


@pytest.fixture(scope="session")
def routes(ph):
    return ph.routes()


@pytest.fixture(scope="session")
def operator_key(ph):
    return ph.create_operator_key(rate=1000)


class Account:
    def __init__(self, ph, name, scopes, rate):
        self.ph = ph
        self.name = name
        self.id = ph.create_account(name)
        self.key = ph.create_key(self.id, scopes, rate=rate)
        self.client = ph.client(self.key)

    def key_with(self, scopes, rate=1000):
        return self.ph.create_key(self.id, scopes, rate=rate)


@pytest.fixture
def new_account(ph, request):
    """Factory: an account in the shared Posthorn with a key (all account scopes)."""
    n = [0]

    def make(name=None, scopes=("send", "read", "admin"), rate=1000, ph_=None):
        n[0] += 1
        name = name or "%s-%d" % (request.node.name[:40], n[0])
        return Account(ph_ or ph, name, scopes, rate)
    return make


# --- private instances --------------------------------------------------------------------
@pytest.fixture
def make_pg(tmp_root):
    made = []

    def make(**kw):
        c = hpg.PgCluster(_mkdir(tmp_root, "pg-"), **kw)
        hph.register_log("postgres (private :%d)" % c.port, c.log_path)
        made.append(c)
        return c
    yield make
    for c in made:
        c.destroy()


@pytest.fixture
def make_redis(tmp_root):
    made = []

    def make(**kw):
        r = hredis.RedisServer(_mkdir(tmp_root, "redis-"), **kw)
        hph.register_log("redis (private :%d)" % r.port, r.log_path)
        made.append(r)
        return r
    yield make
    for r in made:
        r.destroy()


_dbn = [0]


@pytest.fixture
def make_posthorn(tmp_root, pg, redis, spec):
    """Factory: a private Posthorn on a fresh database (in `pg_cluster`, default the shared
    cluster) and Redis (default the shared one); migrated unless migrate=False."""
    made = []

    def make(pg_cluster=None, redis_server=None, env=None, migrate=True):
        c = pg_cluster or pg
        r = redis_server or redis
        _dbn[0] += 1
        db = c.fresh_database("ph_private_%d_%d" % (os.getpid(), _dbn[0]))
        p = hph.Posthorn(_mkdir(tmp_root, "ph-"), db, r.url, env=env, spec=spec)
        made.append(p)
        if migrate:
            p.migrate()
        return p
    yield make
    for p in made:
        p.stop_all()
