#include "lib/embedded.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const embedded_file *embedded_find(const char *path)
{
    for (const embedded_file *f = embedded_files; f->path; f++)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

const char *embedded_or_file(const char *path, const char *shipped, size_t max, size_t *len,
                             char **owned, char *err, size_t errlen)
{
    *owned = NULL;
    if (!path || !*path) {
        const embedded_file *f = embedded_find(shipped);
        if (!f) {
            snprintf(err, errlen, "%s is not built in", shipped);
            return NULL;
        }
        *len = f->len;
        return f->data;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = xmalloc(max + 1);
    size_t n = fread(data, 1, max + 1, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || n > max) {
        if (bad)
            snprintf(err, errlen, "%s: read error", path);
        else
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        free(data);
        return NULL;
    }
    *len = n;
    *owned = data;
    return data;
}
