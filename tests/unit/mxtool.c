/* tests/unit/mxtool.c - smtp/mx from the command line, for tests/e2e/test_mx_resolve.py:
 * resolves a domain through POSTHORN_DNS_SERVER (config_load) and prints one JSON line per
 * resolution. Not a unit test: `make unit` builds it and does not run it.
 *
 *   mxtool DOMAIN PORT [TIMES]
 *
 * TIMES (default 1) resolutions go through one cache, so the later ones show what was
 * cached. Each line: {"status": "ok"|"null"|"notfound"|"retry", "implicit": bool,
 * "hosts": [{"name", "pref", "port", "addrs": ["127.0.0.2", "::1"]}], "err": "...",
 * "ttl_ms": ms until the cached answer expires}. Exit 0, or 2 with a reason on stderr. */
#include "lib/config.h"
#include "lib/netguard.h"
#include "lib/timeutil.h"
#include "smtp/mx.h"

#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void bail(const char *why)
{
    fprintf(stderr, "mxtool: %s\n", why);
    exit(2);
}

static int parse_num(const char *s, int lo, int hi)
{
    if (!*s || strlen(s) > 6)
        bail("bad number");
    int v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            bail("bad number");
        v = v * 10 + (*s - '0');
    }
    if (v < lo || v > hi)
        bail("number out of range");
    return v;
}

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4)
        bail("usage: mxtool DOMAIN PORT [TIMES]");
    char err[512];
    if (config_load(0, err, sizeof err) != 0)
        bail(err);
    int port = parse_num(argv[2], 0, 65535);
    int times = argc == 4 ? parse_num(argv[3], 1, 1000) : 1;
    mx_cache *cache = mx_cache_new();
    mx_result *r = malloc(sizeof *r);
    if (!r)
        bail("out of memory");
    for (int t = 0; t < times; t++) {
        mx_resolve(cache, argv[1], port, r);
        json_t *hosts = json_array();
        for (int i = 0; i < r->nhosts; i++) {
            const mx_host *h = &r->hosts[i];
            json_t *addrs = json_array();
            for (int j = 0; j < h->naddrs; j++) {
                char buf[NETGUARD_ADDRSTRLEN];
                json_array_append_new(addrs, json_string(netguard_addr_str(
                    (const struct sockaddr *)&h->addr[j], buf, sizeof buf)));
            }
            json_array_append_new(hosts, json_pack("{s:s, s:i, s:i, s:o}", "name", h->name,
                                                   "pref", h->pref, "port",
                                                   h->naddrs ? port_of(&h->addr[0]) : port,
                                                   "addrs", addrs));
        }
        json_t *o = json_pack("{s:s, s:b, s:o, s:s, s:I}", "status", mx_status_str(r->status),
                              "implicit", r->implicit, "hosts", hosts, "err", r->err, "ttl_ms",
                              (json_int_t)(r->expires_ms - time_mono_ms()));
        char *line = json_dumps(o, JSON_COMPACT);
        if (!line)
            bail("JSON");
        printf("%s\n", line);
        free(line);
        json_decref(o);
    }
    fflush(stdout);
    free(r);
    mx_cache_free(cache);
    config_free();
    return 0;
}
