/* smtp/dns.h - DNS look-ups with c-ares, synchronous and bounded in time, through
 * POSTHORN_DNS_SERVER (host:port) when set, else the system resolver. No database here:
 * the MX resolver of the worker will live next to it. Results keep "try again later"
 * (DNS_RETRY: timeout, SERVFAIL, refused, unreachable server) apart from "there is no such
 * record" (DNS_NOTFOUND: NXDOMAIN, or the name exists without records of that type).
 * The channel helpers at the end let another smtp/ module (smtp/mx.c) run its own queries
 * on a channel set up the same way. */
#ifndef POSTHORN_DNS_H
#define POSTHORN_DNS_H
#include <ares.h>
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

/* A new c-ares channel: per-try timeout, tries, EDNS, no search list, and the servers of
 * POSTHORN_DNS_SERVER when set; extra_flags are more ARES_FLAG_*. (ARES_FLAG_NOCHECKRESP
 * hands SERVFAIL and REFUSED to the callback as such: otherwise c-ares 1.18 retries them and
 * then reports ARES_ECONNREFUSED.) DNS_OK, or DNS_RETRY with err. */
int  dns_channel_open(ares_channel *ch, int extra_flags, char *err, size_t errlen);
/* Drives ch until no query is pending or the monotonic deadline (dns_now_ms() based)
 * passes; queries still pending then are cancelled (their callbacks get ARES_ECANCELLED). */
void dns_channel_run(ares_channel ch, long long deadline_ms);
long long dns_now_ms(void);
/* DNS_OK, DNS_NOTFOUND (NXDOMAIN, no data, bad name) or DNS_RETRY for an ares status. */
int  dns_status_class(int ares_status);
/* A short text for an ares status: "NXDOMAIN", "SERVFAIL", "REFUSED", "timed out", ... */
const char *dns_status_str(int ares_status);
#endif
