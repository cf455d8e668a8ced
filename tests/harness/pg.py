"""A throwaway PostgreSQL cluster on a free loopback port.

PostgreSQL refuses to run as root, so when we are root initdb and postgres run as the user
`postgres` in a directory it owns; the directories above it are made traversable (0755).
The first initdb in a test process is kept as a template and copied for later clusters,
which is much faster than running initdb again.

    pg = PgCluster(tempfile.mkdtemp(prefix="ph-e2e-"))
    pg.url                       # postgresql://posthorn@127.0.0.1:PORT/posthorn
    pg.psql("select 1")          # -> "1"
    url = pg.fresh_database("t_auth")
    pg.stop(); pg.start()        # restart keeping the data
    pg.destroy()
"""
import atexit
import os
import pwd
import shutil
import subprocess
import tempfile

from . import ports, procs

PG_BIN = "/usr/lib/postgresql/15/bin"
ROLE = "posthorn"
DBNAME = "posthorn"

_template_dir = None  # an initdb'ed, never started data directory, reused by later clusters


def _bin(name):
    p = os.path.join(PG_BIN, name)
    return p if os.path.exists(p) else name


def _pg_user():
    """(uid, gid) to run PostgreSQL as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def _demote_fn():
    ids = _pg_user()
    if ids is None:
        return None
    uid, gid = ids

    def demote():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return demote


def _chown_tree(path):
    ids = _pg_user()
    if ids is None:
        return
    uid, gid = ids
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def _make_traversable(path):
    """chmod 0755 path and its parents that are not world-traversable (up to /tmp-like dirs)."""
    path = os.path.abspath(path)
    while path not in ("/", ""):
        st = os.stat(path)
        if not st.st_mode & 0o001:
            os.chmod(path, st.st_mode | 0o755)
        path = os.path.dirname(path)


def _initdb(datadir):
    os.makedirs(datadir, exist_ok=True)
    _chown_tree(datadir)
    os.chmod(datadir, 0o700)
    r = subprocess.run([_bin("initdb"), "-D", datadir, "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-locale", "-N"],
                       preexec_fn=_demote_fn(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("initdb failed:\n" + r.stdout.decode(errors="replace"))


def _template():
    global _template_dir
    if _template_dir is None or not os.path.isdir(_template_dir):
        base = tempfile.mkdtemp(prefix="ph-pgtmpl-")
        os.chmod(base, 0o755)
        d = os.path.join(base, "data")
        _initdb(d)
        _template_dir = d
        atexit.register(shutil.rmtree, base, True)
    return _template_dir


class PgCluster:
    """One PostgreSQL cluster: initdb (or copy of the template), started, role+db created."""

    def __init__(self, base_dir, fsync=False, port=None, start=True, extra_conf=None):
        self.base_dir = os.path.abspath(base_dir)
        os.makedirs(self.base_dir, exist_ok=True)
        _make_traversable(self.base_dir)
        self.datadir = os.path.join(self.base_dir, "pgdata")
        self.log_path = os.path.join(self.base_dir, "postgres.log")
        self.host = "127.0.0.1"
        self.port = port or ports.free_port()
        self.fsync = fsync
        self.extra_conf = dict(extra_conf or {})
        self.proc = None
        if not os.path.isdir(self.datadir):
            subprocess.run(["cp", "-a", _template(), self.datadir], check=True)
            _chown_tree(self.datadir)
        if start:
            self.start()
            self.psql("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='%s') THEN "
                      "CREATE ROLE %s LOGIN; END IF; END$$" % (ROLE, ROLE))
            if not self.psql("SELECT 1 FROM pg_database WHERE datname='%s'" % DBNAME):
                self.psql("CREATE DATABASE %s OWNER %s" % (DBNAME, ROLE))

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, timeout=60.0):
        if self.proc is not None and self.proc.alive():
            return self
        conf = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "200",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] ",
        }
        conf.update(self.extra_conf)
        argv = [_bin("postgres"), "-D", self.datadir]
        for k, v in conf.items():
            argv += ["-c", "%s=%s" % (k, v)]
        self.proc = procs.Proc("postgres:%d" % self.port, argv, self.log_path,
                               preexec_fn=_demote_fn()).start()
        procs.wait_for(self._ready, timeout=timeout, interval=0.1, what="postgres to accept queries")
        return self

    def _ready(self):
        if not self.proc.alive():
            raise RuntimeError("postgres exited (%s):\n%s" % (self.proc.p.returncode,
                                                              self.proc.log()[-4000:]))
        r = subprocess.run([_bin("psql"), "-X", "-At", "-h", self.host, "-p", str(self.port),
                            "-U", "postgres", "-d", "postgres", "-c", "select 1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        return r.returncode == 0

    def stop(self, timeout=30.0):
        """Fast shutdown (SIGINT): clients are disconnected, data stays."""
        if self.proc is not None:
            self.proc.stop(sig=2, timeout=timeout)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------
    def url_for(self, dbname, user=ROLE):
        return "postgresql://%s@%s:%d/%s" % (user, self.host, self.port, dbname)

    @property
    def url(self):
        return self.url_for(DBNAME)

    def psql(self, sql, db="postgres", check=True, timeout=60):
        """Run sql as the superuser; returns stdout (unaligned, tuples only) stripped."""
        r = subprocess.run([_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                            "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("psql failed (%d) for %r:\n%s" % (r.returncode, sql,
                                                                  r.stderr.decode(errors="replace")))
        return r.stdout.decode().strip()

    def fresh_database(self, name):
        """Create an empty database `name` owned by the posthorn role; returns its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(name)
        self.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        self.psql("CREATE DATABASE %s OWNER %s" % (name, ROLE))
        return self.url_for(name)

    def __repr__(self):
        return "<PgCluster %s:%d %s>" % (self.host, self.port, self.datadir)
