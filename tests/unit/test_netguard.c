/* Unit tests of lib/netguard.c: both edges of every refused range and the addresses just
 * outside them, the category of each, allow lists overriding a refusal (and only for their
 * own family: an IPv4 allow list never lets an IPv4-mapped IPv6 address through), parse
 * errors of allow lists, and the text form of addresses. No address is connected to. */
#include "tests/unit/unit.h"

#include "lib/netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

typedef struct {
    const char *addr;
    const char *why;            /* NULL: public, allowed */
} row;

static const row rows[] = {
    /* IPv4 */
    {"0.0.0.0", "unspecified"},          {"0.255.255.255", "unspecified"},
    {"1.0.0.0", NULL},                   {"8.8.8.8", NULL},
    {"9.255.255.255", NULL},             {"10.0.0.0", "private"},
    {"10.255.255.255", "private"},       {"11.0.0.0", NULL},
    {"100.63.255.255", NULL},            {"100.64.0.0", "cgnat"},
    {"100.127.255.255", "cgnat"},        {"100.128.0.0", NULL},
    {"126.255.255.255", NULL},           {"127.0.0.0", "loopback"},
    {"127.0.0.1", "loopback"},           {"127.255.255.255", "loopback"},
    {"128.0.0.0", NULL},                 {"169.253.255.255", NULL},
    {"169.254.0.0", "link-local"},       {"169.254.169.253", "link-local"},
    {"169.254.169.254", "metadata"},     {"169.254.169.255", "link-local"},
    {"169.254.255.255", "link-local"},   {"169.255.0.0", NULL},
    {"172.15.255.255", NULL},            {"172.16.0.0", "private"},
    {"172.31.255.255", "private"},       {"172.32.0.0", NULL},
    {"191.255.255.255", NULL},           {"192.0.0.0", "reserved"},
    {"192.0.0.255", "reserved"},         {"192.0.1.0", NULL},
    {"192.0.1.255", NULL},               {"192.0.2.0", "documentation"},
    {"192.0.2.255", "documentation"},    {"192.0.3.0", NULL},
    {"192.88.98.255", NULL},             {"192.88.99.0", "6to4"},
    {"192.88.99.255", "6to4"},           {"192.88.100.0", NULL},
    {"192.167.255.255", NULL},           {"192.168.0.0", "private"},
    {"192.168.255.255", "private"},      {"192.169.0.0", NULL},
    {"198.17.255.255", NULL},            {"198.18.0.0", "benchmarking"},
    {"198.19.255.255", "benchmarking"},  {"198.20.0.0", NULL},
    {"198.51.99.255", NULL},             {"198.51.100.0", "documentation"},
    {"198.51.100.255", "documentation"}, {"198.51.101.0", NULL},
    {"203.0.112.255", NULL},             {"203.0.113.0", "documentation"},
    {"203.0.113.255", "documentation"},  {"203.0.114.0", NULL},
    {"223.255.255.255", NULL},           {"224.0.0.0", "multicast"},
    {"239.255.255.255", "multicast"},    {"240.0.0.0", "reserved"},
    {"255.255.255.254", "reserved"},     {"255.255.255.255", "broadcast"},
    /* IPv6 */
    {"::", "unspecified"},               {"::1", "loopback"},
    {"::2", "reserved"},                 {"::8.8.8.8", "reserved"},
    {"::fffe:ffff:ffff", "reserved"},    {"::ffff:0:0", "ipv4-mapped"},
    {"::ffff:8.8.8.8", "ipv4-mapped"},   {"::ffff:127.0.0.1", "ipv4-mapped"},
    {"::ffff:ffff:ffff", "ipv4-mapped"}, {"::1:0:0:0", "reserved"},
    {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"},
    {"64:ff9b::", "nat64"},              {"64:ff9b::8.8.8.8", "nat64"},
    {"64:ff9b::ffff:ffff", "nat64"},     {"64:ff9b::1:0:0", "reserved"},
    {"64:ff9b:1::", "nat64"},            {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "nat64"},
    {"64:ff9b:2::", "reserved"},         {"100::", "discard"},
    {"100::ffff:ffff:ffff:ffff", "discard"}, {"100:0:0:1::", "reserved"},
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"},
    {"2000::", NULL},                    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2001::", "teredo"},                {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "teredo"},
    {"2001:1::1", "reserved"},           {"2001:1:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"},
    {"2001:2::", "benchmarking"},        {"2001:2:0:ffff:ffff:ffff:ffff:ffff", "benchmarking"},
    {"2001:2:1::", "reserved"},          {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"},
    {"2001:200::", NULL},                {"2001:4860:4860::8888", NULL},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2001:db8::", "documentation"},     {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"},
    {"2001:db9::", NULL},                {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2002::", "6to4"},                  {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4"},
    {"2003::", NULL},                    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"3fff::", "documentation"},         {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"},
    {"3fff:1000::", NULL},               {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"4000::", "reserved"},              {"8000::", "reserved"},
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"},
    {"fc00::", "private"},               {"fd00:ec2::253", "private"},
    {"fd00:ec2::254", "metadata"},       {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"},
    {"fe00::", "reserved"},              {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved"},
    {"fe80::", "link-local"},            {"fe80::1", "link-local"},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"},
    {"fec0::", "private"},               {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"},
    {"ff00::", "multicast"},             {"ff02::1", "multicast"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"},
};

static void to_sa(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(25);
    } else {
        if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
            fail_msg("bad test address %s", text);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(25);
    }
}

/* netguard_check of text: 1/0, with *why. */
static int check(const netguard *g, const char *text, const char **why)
{
    struct sockaddr_storage ss;
    to_sa(text, &ss);
    *why = "untouched";
    return netguard_check(g, (const struct sockaddr *)&ss, why);
}

static void test_table(void **state)
{
    char err[128];
    netguard *g = netguard_new("", err, sizeof err);
    assert_non_null(g);
    for (size_t i = 0; i < N_ELEMS(rows); i++) {
        const char *why;
        int ok = check(g, rows[i].addr, &why);
        if (ok != (rows[i].why == NULL) ||
            (rows[i].why ? !why || strcmp(why, rows[i].why) != 0 : why != NULL))
            fail_msg("%s: got %d \"%s\", want \"%s\"", rows[i].addr, ok, why ? why : "(null)",
                     rows[i].why ? rows[i].why : "(null)");
        /* A NULL guard is the empty allow list; why may be NULL. */
        assert_int_equal(netguard_check(NULL, &(struct sockaddr){0}, NULL), 0);
        const char *why2;
        assert_int_equal(check(NULL, rows[i].addr, &why2), ok);
    }
    netguard_free(g);
}

static void test_allow_overrides(void **state)
{
    char err[128];
    const char *why;
    netguard *g = netguard_new("127.0.0.0/8,::1/128", err, sizeof err);
    assert_non_null(g);
    assert_int_equal(check(g, "127.0.0.1", &why), 1);
    assert_string_equal(why, "allow-list");
    assert_int_equal(check(g, "127.255.255.255", &why), 1);
    assert_int_equal(check(g, "127.0.0.0", &why), 1);
    assert_int_equal(check(g, "128.0.0.0", &why), 1);
    assert_null(why);                                   /* public, not the allow list */
    assert_int_equal(check(g, "126.255.255.255", &why), 1);
    assert_int_equal(check(g, "10.0.0.1", &why), 0);
    assert_string_equal(why, "private");
    assert_int_equal(check(g, "::1", &why), 1);
    assert_string_equal(why, "allow-list");
    assert_int_equal(check(g, "::2", &why), 0);
    assert_int_equal(check(g, "::ffff:127.0.0.1", &why), 0);   /* v4 list, v6 address */
    assert_string_equal(why, "ipv4-mapped");
    assert_int_equal(check(g, "169.254.169.254", &why), 0);
    assert_string_equal(why, "metadata");
    netguard_free(g);

    /* Host bits past the prefix are ignored; spaces and empty items too. */
    g = netguard_new(" 10.1.2.3/16 ,, fd00::1/8,169.254.169.254 ,", err, sizeof err);
    assert_non_null(g);
    assert_int_equal(check(g, "10.1.0.0", &why), 1);
    assert_int_equal(check(g, "10.1.255.255", &why), 1);
    assert_int_equal(check(g, "10.0.255.255", &why), 0);
    assert_int_equal(check(g, "10.2.0.0", &why), 0);
    assert_int_equal(check(g, "fd00::", &why), 1);
    assert_int_equal(check(g, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &why), 1);
    assert_int_equal(check(g, "fc00::1", &why), 0);
    assert_int_equal(check(g, "fe00::", &why), 0);
    assert_int_equal(check(g, "169.254.169.254", &why), 1);
    assert_int_equal(check(g, "169.254.169.253", &why), 0);
    netguard_free(g);

    /* /0 lets a whole family through, and only that family. */
    g = netguard_new("0.0.0.0/0", err, sizeof err);
    assert_int_equal(check(g, "0.0.0.0", &why), 1);
    assert_int_equal(check(g, "255.255.255.255", &why), 1);
    assert_int_equal(check(g, "::1", &why), 0);
    netguard_free(g);
    g = netguard_new("::/0", err, sizeof err);
    assert_int_equal(check(g, "::ffff:127.0.0.1", &why), 1);
    assert_int_equal(check(g, "127.0.0.1", &why), 0);
    netguard_free(g);

    /* The explicit mapped range may be allowed too. */
    g = netguard_new("::ffff:127.0.0.0/104", err, sizeof err);
    assert_int_equal(check(g, "::ffff:127.0.0.1", &why), 1);
    assert_int_equal(check(g, "::ffff:128.0.0.1", &why), 0);
    assert_int_equal(check(g, "127.0.0.1", &why), 0);
    netguard_free(g);

    /* Odd prefix lengths match bit by bit. */
    g = netguard_new("192.168.1.128/25,fe80::/9", err, sizeof err);
    assert_int_equal(check(g, "192.168.1.127", &why), 0);
    assert_int_equal(check(g, "192.168.1.128", &why), 1);
    assert_int_equal(check(g, "192.168.1.255", &why), 1);
    assert_int_equal(check(g, "fe80::", &why), 1);
    assert_int_equal(check(g, "feff::", &why), 1);      /* fe80::/9 is fe80..feff */
    netguard_free(g);
    g = netguard_new(NULL, err, sizeof err);
    assert_non_null(g);
    assert_int_equal(check(g, "127.0.0.1", &why), 0);
    netguard_free(g);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *list, *in_err;
    } bad[] = {
        {"10.0.0.0/33", "over 32"},
        {"::/129", "over 128"},
        {"127.0.0.0/8,::1/129", "::1/129"},
        {"10.0.0/8", "not an IPv4 or IPv6 address"},
        {"10.0.0.0/", "bad prefix length"},
        {"10.0.0.0/-1", "bad prefix length"},
        {"10.0.0.0/8x", "bad prefix length"},
        {"10.0.0.0/1000", "bad prefix length"},
        {"10.0.0.0/8/8", "bad prefix length"},
        {"::g", "not an IPv4 or IPv6 address"},
        {"fe80::1%eth0", "not an IPv4 or IPv6 address"},
        {"2001:db8::/32,localhost", "\"localhost\""},
        {"1.2.3.4 5.6.7.8", "not an IPv4"},
        {"/8", "not an IPv4"},
        {"1111:2222:3333:4444:5555:6666:7777:8888:9999:0000:aaaa:bbbb:cccc:dddd/64", "too long"},
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        char err[128] = "";
        netguard *g = netguard_new(bad[i].list, err, sizeof err);
        if (g || !strstr(err, bad[i].in_err))
            fail_msg("\"%s\": guard %p, err \"%s\", want \"%s\"", bad[i].list, (void *)g, err,
                     bad[i].in_err);
        assert_non_null(strstr(err, "bad CIDR"));
    }
    /* Too many items. */
    char many[NETGUARD_MAX_ALLOW * 16 + 16] = "";
    size_t o = 0;
    for (int i = 0; i <= NETGUARD_MAX_ALLOW; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "%s10.0.%d.0/24", i ? "," : "", i % 256);
    char err[128];
    assert_null(netguard_new(many, err, sizeof err));
    assert_non_null(strstr(err, "more than"));
    /* Exactly the maximum is fine. */
    char *cut = strrchr(many, ',');
    *cut = '\0';
    netguard *g = netguard_new(many, err, sizeof err);
    assert_non_null(g);
    netguard_free(g);
}

static void test_other_family_and_text(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    const char *why = NULL;
    assert_int_equal(netguard_check(NULL, (struct sockaddr *)&un, &why), 0);
    assert_string_equal(why, "unsupported family");
    assert_int_equal(netguard_check(NULL, NULL, &why), 0);

    char buf[NETGUARD_ADDRSTRLEN];
    struct sockaddr_storage ss;
    const char *cases[] = {"127.0.0.1", "::1", "::ffff:127.0.0.1", "2001:db8::1",
                           "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        to_sa(cases[i], &ss);
        assert_string_equal(netguard_addr_str((struct sockaddr *)&ss, buf, sizeof buf), cases[i]);
    }
    assert_string_equal(netguard_addr_str((struct sockaddr *)&un, buf, sizeof buf), "?");
    to_sa("::1", &ss);
    char tiny[3];
    assert_string_equal(netguard_addr_str((struct sockaddr *)&ss, tiny, 2), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_allow_overrides),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_other_family_and_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
