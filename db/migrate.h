/* db/migrate.h - applies the embedded migrations/NNNN_name.sql in order, each in its own
 * transaction, recorded in schema_migrations. Safe when several processes run it at once
 * (a session advisory lock serialises them); a no-op when the schema is current. */
#ifndef POSTHORN_MIGRATE_H
#define POSTHORN_MIGRATE_H
#include "db/db.h"

/* Returns 0 and the number applied in *applied, or -1 with the reason logged. A migration
 * whose recorded checksum differs from the embedded file is an error. */
int migrate_run(db_conn *c, int *applied);
/* Highest embedded migration version. */
int migrate_latest(void);
#endif
