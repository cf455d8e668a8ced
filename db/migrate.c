#include "db/migrate.h"
#include "lib/crypto.h"
#include "lib/embedded.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_LOCK_ID "7375870355123001"   /* arbitrary, constant: "posthorn migrate" */

static int version_of(const char *path, const char **name)
{
    const char *base = path + strlen("migrations/");
    int v = 0, digits = 0;
    for (const char *p = base; *p >= '0' && *p <= '9'; p++, digits++)
        v = v * 10 + (*p - '0');
    if (digits != 4 || base[4] != '_')
        return -1;
    *name = base + 5;
    return v;
}

int migrate_latest(void)
{
    int latest = 0;
    const char *name;
    for (const embedded_file *f = embedded_files; f->path; f++)
        if (strncmp(f->path, "migrations/", 11) == 0) {
            int v = version_of(f->path, &name);
            if (v > latest)
                latest = v;
        }
    return latest;
}

static int run_sql(db_conn *c, const char *sql, PGresult **res)
{
    db_status s = db_script(c, sql, res);
    if (s != DB_OK) {
        log_error("migrate: %s", db_last_error(c));
        return -1;
    }
    return 0;
}

int migrate_run(db_conn *c, int *applied)
{
    *applied = 0;
    if (db_connect(c) != DB_OK) {
        log_error("migrate: cannot connect: %s", db_last_error(c));
        return -1;
    }
    if (run_sql(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_ID ")", NULL) != 0)
        return -1;
    int rc = -1;
    if (run_sql(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version integer PRIMARY KEY, name text NOT NULL,"
                   " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                NULL) != 0)
        goto out;

    /* Embedded files are in path order, which is version order (tools/embed.sh sorts). */
    for (const embedded_file *f = embedded_files; f->path; f++) {
        const char *name;
        if (strncmp(f->path, "migrations/", 11) != 0)
            continue;
        int v = version_of(f->path, &name);
        if (v < 0) {
            log_error("migrate: bad migration file name %s", f->path);
            goto out;
        }
        uint8_t h[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];
        crypto_sha256(f->data, f->len, h);
        crypto_hex(h, sizeof h, hex);

        char vs[16];
        snprintf(vs, sizeof vs, "%d", v);
        const char *p1[] = {vs};
        PGresult *r = PQexecParams(db_pg(c), "SELECT checksum FROM schema_migrations WHERE version = $1::int",
                                   1, NULL, p1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_error("migrate: %s", PQresultErrorMessage(r));
            PQclear(r);
            goto out;
        }
        if (PQntuples(r) == 1) {
            int same = strcmp(PQgetvalue(r, 0, 0), hex) == 0;
            PQclear(r);
            if (!same) {
                log_error("migrate: migration %s was changed after it was applied", f->path);
                goto out;
            }
            continue;
        }
        PQclear(r);

        if (run_sql(c, "BEGIN", NULL) != 0)
            goto out;
        if (run_sql(c, f->data, NULL) != 0) {
            log_error("migrate: %s failed; rolled back", f->path);
            run_sql(c, "ROLLBACK", NULL);
            goto out;
        }
        const char *p3[] = {vs, name, hex};
        r = PQexecParams(db_pg(c), "INSERT INTO schema_migrations (version, name, checksum)"
                         " VALUES ($1::int, $2, $3)", 3, NULL, p3, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            log_error("migrate: %s", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok || run_sql(c, "COMMIT", NULL) != 0) {
            run_sql(c, "ROLLBACK", NULL);
            goto out;
        }
        log_info("migrate: applied %s", f->path);
        (*applied)++;
    }
    rc = 0;
out:
    run_sql(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_ID ")", NULL);
    return rc;
}
