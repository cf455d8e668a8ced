/* smtp/dns.h - DNS look-ups with c-ares, synchronous and bounded in time, through
 * POSTHORN_DNS_SERVER (host:port) when set, else the system resolver. No database here:
 * the MX resolver of the worker will live next to it. Results keep "try again later"
 * (DNS_RETRY: timeout, SERVFAIL, refused, unreachable server) apart from "there is no such
 * record" (DNS_NOTFOUND: NXDOMAIN, or the name exists without records of that type). */
#ifndef POSTHORN_DNS_H
#define POSTHORN_DNS_H
#include <stddef.h>

#define DNS_OK        0
#define DNS_NOTFOUND  1
#define DNS_RETRY     2

#define DNS_TIMEOUT_MS 5000   /* bound of one look-up, all tries included */

/* The TXT records of name: *txts is a malloc'd array of *count malloc'd strings, each one
 * record with its character-strings concatenated (dns_free_txts() frees it). On
 * DNS_NOTFOUND or DNS_RETRY *txts is NULL, *count 0 and err says why. */
int  dns_txt(const char *name, char ***txts, int *count, char *err, size_t errlen);
void dns_free_txts(char **txts, int count);
#endif
