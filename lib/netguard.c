/* lib/netguard.c - see lib/netguard.h. Addresses are compared as byte strings with a prefix
 * length, IPv4 and IPv6 apart: an IPv4-mapped IPv6 address is refused as such (never
 * unwrapped and judged as IPv4), so a mapped loopback cannot pass as anything else. */
#include "lib/netguard.h"

#include "lib/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int     family;          /* AF_INET or AF_INET6 */
    uint8_t addr[16];        /* network order; 4 bytes used for AF_INET */
    int     bits;
} cidr;

struct netguard {
    int  n;
    cidr allow[];
};

typedef struct {
    const char *prefix;      /* "addr/bits" */
    const char *why;
} range;

/* First match wins: more specific rows before the rows that contain them. */
static const range v4_ranges[] = {
    {"0.0.0.0/8",          "unspecified"},     /* "this network" (RFC 1122) */
    {"10.0.0.0/8",         "private"},
    {"100.64.0.0/10",      "cgnat"},
    {"127.0.0.0/8",        "loopback"},
    {"169.254.169.254/32", "metadata"},        /* cloud instance metadata */
    {"169.254.0.0/16",     "link-local"},
    {"172.16.0.0/12",      "private"},
    {"192.0.0.0/24",       "reserved"},        /* IETF protocol assignments */
    {"192.0.2.0/24",       "documentation"},
    {"192.88.99.0/24",     "6to4"},            /* 6to4 relay anycast */
    {"192.168.0.0/16",     "private"},
    {"198.18.0.0/15",      "benchmarking"},
    {"198.51.100.0/24",    "documentation"},
    {"203.0.113.0/24",     "documentation"},
    {"224.0.0.0/4",        "multicast"},
    {"255.255.255.255/32", "broadcast"},
    {"240.0.0.0/4",        "reserved"},
};

static const range v6_ranges[] = {
    {"::/128",             "unspecified"},
    {"::1/128",            "loopback"},
    {"::ffff:0:0/96",      "ipv4-mapped"},
    {"::/96",              "reserved"},        /* deprecated IPv4-compatible */
    {"64:ff9b::/96",       "nat64"},
    {"64:ff9b:1::/48",     "nat64"},
    {"100::/64",           "discard"},
    {"2001::/32",          "teredo"},
    {"2001:2::/48",        "benchmarking"},
    {"2001:db8::/32",      "documentation"},
    {"2001::/23",          "reserved"},        /* IETF protocol assignments */
    {"2002::/16",          "6to4"},
    {"3fff::/20",          "documentation"},   /* RFC 9637 */
    {"fd00:ec2::254/128",  "metadata"},        /* cloud instance metadata over IPv6 */
    {"fc00::/7",           "private"},         /* unique local */
    {"fe80::/10",          "link-local"},
    {"fec0::/10",          "private"},         /* deprecated site-local */
    {"ff00::/8",           "multicast"},
    {"::/3",               "reserved"},        /* everything outside 2000::/3 */
    {"4000::/2",           "reserved"},
    {"8000::/1",           "reserved"},
};

/* Parses "addr[/bits]" of length n into c; NULL or what is wrong. */
static const char *cidr_parse(const char *s, size_t n, cidr *c)
{
    char text[64];
    if (n == 0)
        return "empty";
    if (n >= sizeof text)
        return "too long";
    memcpy(text, s, n);
    text[n] = '\0';
    char *slash = memchr(text, '/', n);
    int bits = -1;
    if (slash) {
        *slash = '\0';
        const char *b = slash + 1;
        if (!*b || strlen(b) > 3)
            return "bad prefix length";
        bits = 0;
        for (; *b; b++) {
            if (*b < '0' || *b > '9')
                return "bad prefix length";
            bits = bits * 10 + (*b - '0');
        }
    }
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, text, c->addr) == 1) {
        c->family = AF_INET;
        if (bits > 32)
            return "prefix length over 32";
        c->bits = bits < 0 ? 32 : bits;
    } else if (inet_pton(AF_INET6, text, c->addr) == 1) {
        c->family = AF_INET6;
        if (bits > 128)
            return "prefix length over 128";
        c->bits = bits < 0 ? 128 : bits;
    } else {
        return "not an IPv4 or IPv6 address";
    }
    return NULL;
}

static int cidr_match(const cidr *c, int family, const uint8_t *addr)
{
    if (c->family != family)
        return 0;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

netguard *netguard_new(const char *allow_cidrs, char *err, size_t errlen)
{
    const char *s = allow_cidrs ? allow_cidrs : "";
    int items = 1;
    for (const char *p = s; *p; p++)
        items += *p == ',';
    if (items > NETGUARD_MAX_ALLOW) {
        snprintf(err, errlen, "more than %d CIDRs in the allow list", NETGUARD_MAX_ALLOW);
        return NULL;
    }
    netguard *g = xcalloc(1, sizeof *g + (size_t)items * sizeof(cidr));
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        if (b > a) {
            const char *bad = cidr_parse(a, (size_t)(b - a), &g->allow[g->n]);
            if (bad) {
                snprintf(err, errlen, "bad CIDR \"%.*s\": %s", (int)(b - a > 64 ? 64 : b - a), a,
                         bad);
                free(g);
                return NULL;
            }
            g->n++;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    return g;
}

void netguard_free(netguard *g)
{
    free(g);
}

#define N_V4 (sizeof v4_ranges / sizeof v4_ranges[0])
#define N_V6 (sizeof v6_ranges / sizeof v6_ranges[0])
static cidr v4_table[N_V4], v6_table[N_V6];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void parse_table(const range *t, size_t n, cidr *out)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_parse(t[i].prefix, strlen(t[i].prefix), &out[i]) != NULL)
            die("netguard: bad table row %s", t[i].prefix);
}

static void tables_init(void)
{
    parse_table(v4_ranges, N_V4, v4_table);
    parse_table(v6_ranges, N_V6, v6_table);
}

static const char *table_why(const range *t, const cidr *c, size_t n, int family,
                             const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_match(&c[i], family, addr))
            return t[i].why;
    return NULL;
}

int netguard_check(const netguard *g, const struct sockaddr *sa, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    pthread_once(&tables_once, tables_init);
    uint8_t addr[16];
    int family = sa ? sa->sa_family : AF_UNSPEC;
    const char *w;
    if (family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        w = table_why(v4_ranges, v4_table, N_V4, family, addr);
    } else if (family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        w = table_why(v6_ranges, v6_table, N_V6, family, addr);
    } else {
        *why = "unsupported family";
        return 0;
    }
    *why = w;
    if (!w)
        return 1;
    for (int i = 0; g && i < g->n; i++) {
        if (cidr_match(&g->allow[i], family, addr)) {
            *why = "allow-list";
            return 1;
        }
    }
    return 0;
}

const char *netguard_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    const void *a = NULL;
    if (sa && sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa && sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}
