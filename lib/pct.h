/* lib/pct.h - percent-decoding (RFC 3986 2.1) of URL parts: paths, queries, userinfo. */
#ifndef POSTHORN_PCT_H
#define POSTHORN_PCT_H
#include <stddef.h>

/* Decodes the n bytes of s into out (out_max bytes incl. the NUL); -1 on a bad escape, a
 * NUL byte (encoded or not) or when out is too small. */
int pct_decode(const char *s, size_t n, char *out, size_t out_max);
#endif
