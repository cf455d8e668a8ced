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

/* A configuration file's text: the file at path (at most max bytes; *owned is then set and
 * must be freed) or, when path is NULL or "", the built-in `shipped` (*owned NULL). NULL
 * with a message naming the file in err. */
const char *embedded_or_file(const char *path, const char *shipped, size_t max, size_t *len,
                             char **owned, char *err, size_t errlen);
#endif
