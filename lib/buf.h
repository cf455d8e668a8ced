/* lib/buf.h - a growable byte buffer with a hard maximum (curl dynbuf in spirit).
 * Appends past the maximum fail with -1 and leave the buffer unchanged, so input from
 * outside can never grow memory without bound. The content is always NUL-terminated. */
#ifndef POSTHORN_BUF_H
#define POSTHORN_BUF_H
#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char  *data;
    size_t len;
    size_t cap;
    size_t max;   /* bound on len */
} buf;

void buf_init(buf *b, size_t max);
void buf_free(buf *b);
void buf_reset(buf *b);
int  buf_append(buf *b, const void *p, size_t n);      /* 0 ok, -1 would pass max */
int  buf_appendz(buf *b, const char *s);
int  buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Detach the content (caller frees); the buffer is left empty. */
char *buf_steal(buf *b, size_t *len);
#endif
