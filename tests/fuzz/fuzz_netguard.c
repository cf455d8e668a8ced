/* Fuzz target: lib/netguard.c. Input: one byte n, then n bytes of allow list, then address
 * bytes (the first 4 as IPv4, the first 16 as IPv6 when there are that many). Checks: a
 * list is either accepted or refused with a message; an allow list only ever adds to what
 * the empty list allows; "allow-list" is said exactly when the list made the difference;
 * IPv4 agrees with a separate reference written with integer ranges; IPv4-mapped IPv6 is
 * always refused by the empty list; the text form parses back to the same address. */
#include "tests/fuzz/fuzz.h"

#include "lib/netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static int in(uint32_t a, uint32_t net, int bits)
{
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (a & mask) == net;
}

/* 1 when the IPv4 address a (host order) is public. */
static int v4_public(uint32_t a)
{
    static const struct {
        uint32_t net;
        int      bits;
    } refused[] = {
        {0x00000000, 8},  {0x0a000000, 8},  {0x64400000, 10}, {0x7f000000, 8},
        {0xa9fe0000, 16}, {0xac100000, 12}, {0xc0000000, 24}, {0xc0000200, 24},
        {0xc0586300, 24}, {0xc0a80000, 16}, {0xc6120000, 15}, {0xc6336400, 24},
        {0xcb007100, 24}, {0xe0000000, 4},  {0xf0000000, 4},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (in(a, refused[i].net, refused[i].bits))
            return 0;
    return 1;
}

static void one(const netguard *g, const netguard *empty, const struct sockaddr *sa)
{
    const char *why = "x", *why0 = "x";
    int ok = netguard_check(g, sa, &why);
    int ok0 = netguard_check(empty, sa, &why0);
    CHECK(ok == 0 || ok == 1);
    CHECK(!ok0 || ok);                                   /* the list only adds */
    CHECK(ok0 ? why0 == NULL : why0 != NULL);
    if (ok && !ok0)
        CHECK(why && strcmp(why, "allow-list") == 0);
    if (!ok)
        CHECK(why && strcmp(why, why0) == 0);
    if (ok0)
        CHECK(why == NULL);

    char buf[NETGUARD_ADDRSTRLEN];
    uint8_t back[16];
    netguard_addr_str(sa, buf, sizeof buf);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        CHECK(inet_pton(AF_INET, buf, back) == 1 && memcmp(back, &s4->sin_addr, 4) == 0);
        CHECK(ok0 == v4_public(ntohl(s4->sin_addr.s_addr)));
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        CHECK(inet_pton(AF_INET6, buf, back) == 1 && memcmp(back, &s6->sin6_addr, 16) == 0);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) || IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
            IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) || IN6_IS_ADDR_MULTICAST(&s6->sin6_addr) ||
            IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
            CHECK(!ok0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0];
    if (n > size - 1)
        n = size - 1;
    char list[256];
    memcpy(list, data + 1, n);
    list[n] = '\0';
    const uint8_t *addr = data + 1 + n;
    size_t alen = size - 1 - n;

    char err[128] = "";
    netguard *g = netguard_new(list, err, sizeof err);
    CHECK(g != NULL || (strncmp(err, "bad CIDR", 8) == 0 || strncmp(err, "more than", 9) == 0));
    netguard *empty = netguard_new("", err, sizeof err);
    CHECK(empty != NULL);
    if (g && alen >= 4) {
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        memcpy(&s4.sin_addr, addr, 4);
        one(g, empty, (const struct sockaddr *)&s4);
    }
    if (g && alen >= 16) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        memcpy(&s6.sin6_addr, addr, 16);
        one(g, empty, (const struct sockaddr *)&s6);
    }
    netguard_free(g);
    netguard_free(empty);
    return 0;
}
