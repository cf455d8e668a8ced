/* lib/ids.h - opaque random identifiers with a type prefix ("acc_", "msg_", "dlv_", ...):
 * the prefix, then 22 base62 characters (about 131 random bits). */
#ifndef POSTHORN_IDS_H
#define POSTHORN_IDS_H
#include <stddef.h>

#define IDS_BODY_LEN 22
#define IDS_MAX 32          /* room for any prefix we use + body + NUL */

/* Writes prefix + random body into out (IDS_MAX bytes). */
void ids_new(const char *prefix, char out[IDS_MAX]);
/* 1 when s looks like an id of that prefix (charset and length only). */
int  ids_valid(const char *prefix, const char *s);
#endif
