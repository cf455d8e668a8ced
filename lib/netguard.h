/* lib/netguard.h - the address guard in front of every outbound connection Posthorn makes
 * on behalf of someone else (SMTP to an MX, webhooks): an address that is not on the public
 * Internet (loopback, private, link-local, cloud metadata, multicast, documentation,
 * translation prefixes that smuggle an IPv4 address inside IPv6, ...) is refused with the
 * name of its category, unless it falls in an operator-given allow list (tests, private
 * relays). The ranges are one table in netguard.c; the first matching row names the
 * category, so more specific rows come first. IPv6 outside 2000::/3 (global unicast) is
 * refused as "reserved" as well. Immutable after netguard_new(): share it between threads. */
#ifndef POSTHORN_NETGUARD_H
#define POSTHORN_NETGUARD_H
#include <stddef.h>
#include <sys/socket.h>

#define NETGUARD_MAX_ALLOW 256                /* CIDRs in one allow list */
#define NETGUARD_ADDRSTRLEN 46                /* INET6_ADDRSTRLEN */

typedef struct netguard netguard;

/* allow_cidrs: comma-separated "addr[/bits]" (IPv4 or IPv6; spaces around items and empty
 * items ignored; host bits past the prefix are ignored). "" or NULL allows nothing extra.
 * NULL with a message in err on a bad list. */
netguard *netguard_new(const char *allow_cidrs, char *err, size_t errlen);
void netguard_free(netguard *g);

/* 1 when sa (AF_INET or AF_INET6) may be connected to, 0 when refused. *why (may be NULL)
 * gets the category of a refusal ("loopback", "private", "link-local", "cgnat",
 * "multicast", "reserved", "unspecified", "metadata", "ipv4-mapped", "nat64", "6to4",
 * "teredo", "discard", "documentation", "benchmarking", "broadcast", "unsupported family"),
 * "allow-list" when an allowed CIDR overrode a refusal, NULL for a public address. Allowed
 * CIDRs win over every category. g NULL means an empty allow list. */
int netguard_check(const netguard *g, const struct sockaddr *sa, const char **why);

/* The address of sa as text ("127.0.0.1", "::1") in buf; "?" for another family. Returns
 * buf. len >= NETGUARD_ADDRSTRLEN always suffices. */
const char *netguard_addr_str(const struct sockaddr *sa, char *buf, size_t len);
#endif
