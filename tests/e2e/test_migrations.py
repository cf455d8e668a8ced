"""`posthorn migrate`: applies the embedded migrations once, is a no-op when current, and is
safe when several run at the same time on a fresh database."""
import glob
import os
import subprocess

from harness.posthorn import ROOT


def migration_versions():
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "migrations", "*.sql")))
    assert names, "no migrations/*.sql"
    return names


def applied(pg, db):
    cols = pg.psql("SELECT column_name FROM information_schema.columns WHERE "
                   "table_name='schema_migrations' ORDER BY ordinal_position", db=db).split("\n")
    assert cols and cols[0], "no schema_migrations table"
    col = "version" if "version" in cols else cols[0]
    rows = pg.psql("SELECT %s FROM schema_migrations ORDER BY 1" % col, db=db)
    return [r for r in rows.split("\n") if r]


def dbname(ph):
    return ph.db_url.rsplit("/", 1)[1]


def check_each_once(pg, db):
    versions = applied(pg, db)
    assert len(versions) == len(set(versions)), "duplicate versions: %r" % versions
    files = migration_versions()
    assert len(versions) == len(files), (versions, files)
    assert sorted(int(v.split("_")[0]) for v in versions) == \
        sorted(int(f.split("_")[0]) for f in files), (versions, files)


def test_migrate_twice(pg, make_posthorn):
    ph = make_posthorn(migrate=False)
    r1 = ph.run("posthorn", "migrate")
    assert r1.returncode == 0, r1.stderr
    check_each_once(pg, dbname(ph))
    tables = pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname='public'", db=dbname(ph))
    r2 = ph.run("posthorn", "migrate")
    assert r2.returncode == 0, r2.stderr
    check_each_once(pg, dbname(ph))
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname='public'",
                   db=dbname(ph)) == tables
    for t in ("accounts", "api_keys", "suppressions", "workers"):
        assert pg.psql("SELECT to_regclass('public.%s') IS NOT NULL" % t, db=dbname(ph)) == "t", t


def test_migrate_concurrently(pg, make_posthorn):
    ph = make_posthorn(migrate=False)
    argv = [ph.binary("posthorn"), "migrate"]
    env = ph.merged_env()
    ps = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
          for _ in range(4)]
    results = [(p.wait(60), *p.communicate()) for p in ps]
    for rc, out, err in results:
        ph._log_run(argv, rc, out, err)
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], [
        (rc, err.decode(errors="replace")[-500:]) for rc, _, err in results]
    check_each_once(pg, dbname(ph))
