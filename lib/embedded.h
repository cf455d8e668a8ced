/* lib/embedded.h - files compiled into the binaries at build time (tools/embed.sh):
 * the SQL migrations, openapi.yaml and the shipped etc/ files (bounce rules, destination
 * policy). Each is NUL-terminated; len excludes the NUL. */
#ifndef POSTHORN_EMBEDDED_H
#define POSTHORN_EMBEDDED_H
#include <stddef.h>

typedef struct {
    const char *path;   /* repository path, e.g. "migrations/0001_init.sql"; NULL ends the table */
    const char *data;
    size_t      len;
} embedded_file;

extern const embedded_file embedded_files[];

/* The embedded file at path, or NULL. */
const embedded_file *embedded_find(const char *path);
#endif
