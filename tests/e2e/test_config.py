"""Configuration errors stop every program with exit code 2 and a message naming the setting
(and its allowed range) on stderr, before anything else happens."""
import re
import subprocess

import pytest

from harness import ports

PROGRAMS = [("posthorn-api", ()), ("posthorn-worker", ()), ("posthorn", ("migrate",))]


def run(ph, prog, args, env=None, unset=()):
    # Own ports, so that a program that wrongly starts does not collide with the shared API.
    e = {"POSTHORN_HTTP_ADDR": "127.0.0.1:%d" % ports.free_port(),
         "POSTHORN_METRICS_ADDR": "127.0.0.1:%d" % ports.free_port()}
    e.update(env or {})
    try:
        return ph.run(prog, *args, env=e, unset=unset, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("%s %s did not exit with a bad configuration (env %r, unset %r)" %
                    (prog, " ".join(args), env, unset))


@pytest.mark.parametrize("prog,args", PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_missing_secret(ph, prog, args):
    r = run(ph, prog, args, unset=["POSTHORN_SECRET"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "POSTHORN_SECRET" in r.stderr, r.stderr


@pytest.mark.parametrize("prog,args", PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_short_secret(ph, prog, args):
    r = run(ph, prog, args, env={"POSTHORN_SECRET": "x" * 31})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "POSTHORN_SECRET" in r.stderr, r.stderr
    assert "x" * 31 not in r.stderr + r.stdout, "the secret itself was printed"


BAD = [
    ("POSTHORN_HTTP_THREADS", "0", r"\b1\b.*\b256\b"),
    ("POSTHORN_HTTP_THREADS", "1000000", r"\b1\b.*\b256\b"),
    ("POSTHORN_HTTP_THREADS", "4x", r"\b1\b.*\b256\b"),
    ("POSTHORN_LEASE", "abc", r"1s.*1d"),
    ("POSTHORN_LEASE", "0", r"1s.*1d"),
    ("POSTHORN_POLL_INTERVAL", "100ms", r"1s"),
    ("POSTHORN_LOG_LEVEL", "loud", r"debug.*info.*warn.*error"),
    ("POSTHORN_DELIVERY", "pigeon", r"mx.*relay.*file"),
    ("POSTHORN_SMTP_PORT", "70000", r"1.*65535"),
    ("POSTHORN_DEFAULT_KEY_RATE", "-1", r"1.*1000000"),
    ("POSTHORN_HTTP_ADDR", "nowhere", None),
]


@pytest.mark.parametrize("prog,args", PROGRAMS, ids=[p for p, _ in PROGRAMS])
@pytest.mark.parametrize("var,value,rng", BAD, ids=["%s=%s" % (v, x) for v, x, _ in BAD])
def test_bad_value(ph, prog, args, var, value, rng):
    r = run(ph, prog, args, env={var: value})
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if var in l]
    assert lines, "stderr does not name %s: %r" % (var, r.stderr)
    if rng:
        assert any(re.search(rng, l) for l in lines), \
            "stderr does not state the allowed range /%s/ for %s: %r" % (rng, var, lines)


def test_settings_lists_every_variable(ph):
    out = ph.cli("settings")
    for var in ("POSTHORN_SECRET", "POSTHORN_DATABASE_URL", "POSTHORN_REDIS_URL",
                "POSTHORN_HTTP_ADDR", "POSTHORN_METRICS_ADDR", "POSTHORN_HTTP_THREADS",
                "POSTHORN_LEASE", "POSTHORN_POLL_INTERVAL", "POSTHORN_SHUTDOWN_GRACE",
                "POSTHORN_DB_TIMEOUT", "POSTHORN_REDIS_TIMEOUT", "POSTHORN_DEFAULT_KEY_RATE",
                "POSTHORN_BODY_MAX"):
        assert var in out, var
    md = ph.cli("settings", "--markdown")
    assert md.lstrip().startswith("|") and "POSTHORN_SECRET" in md


def test_no_secrets_in_logs(ph, new_account):
    """Logs never contain the secret, the database password or keys."""
    acc = new_account()
    acc.client.get("/v1/account")
    ph.client().get("/v1/account", headers={"Authorization": "Bearer " + acc.key + "zz"})
    text = "".join(open(p, errors="replace").read() for p in ph.log_paths()[1:])
    assert ph.secret not in text
    assert acc.key.split("_", 2)[2] not in text
