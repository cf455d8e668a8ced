/* Unit tests of the pure helpers of api/server.c: http_pct_decode (query values and path
 * parameters) and server_parse_addr (listener addresses). */
#include "tests/unit/unit.h"

#include "api/http.h"
#include "api/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>

typedef struct {
    const char *in;
    size_t      n;         /* 0: strlen(in) */
    size_t      out_max;   /* 0: 64 */
    int         rc;
    const char *out;       /* when rc == 0 */
    size_t      out_len;   /* 0: strlen(out) */
} pct_case;

static void test_pct_decode(void **state)
{
    static const pct_case cases[] = {
        {"", 0, 0, 0, "", 0},
        {"plain", 0, 0, 0, "plain", 0},
        {"a%20b", 0, 0, 0, "a b", 0},
        {"%41%42%43", 0, 0, 0, "ABC", 0},
        {"%2f%2F", 0, 0, 0, "//", 0},                    /* either hex case */
        {"%aA%Bb", 0, 0, 0, "\xaa\xbb", 0},
        {"%7E%25", 0, 0, 0, "~%", 0},
        {"%2541", 0, 0, 0, "%41", 0},                    /* decoded once only */
        {"a+b", 0, 0, 0, "a+b", 0},                      /* '+' is not a space here */
        {"o%27brien%40example.com", 0, 0, 0, "o'brien@example.com", 0},
        {"%C3%A9", 0, 0, 0, "\xc3\xa9", 0},
        {"%FF", 0, 0, 0, "\xff", 0},                      /* bytes pass, UTF-8 is not checked */
        {"%0D%0A", 0, 0, 0, "\r\n", 0},                   /* controls pass (callers check) */
        {"%00", 0, 0, -1, NULL, 0},
        {"a%00b", 0, 0, -1, NULL, 0},
        {"a\0b", 3, 0, -1, NULL, 0},                      /* a raw NUL inside n */
        {"%", 0, 0, -1, NULL, 0},
        {"%4", 0, 0, -1, NULL, 0},
        {"a%", 0, 0, -1, NULL, 0},
        {"a%4", 0, 0, -1, NULL, 0},
        {"%%", 0, 0, -1, NULL, 0},
        {"%%41", 0, 0, -1, NULL, 0},
        {"%G0", 0, 0, -1, NULL, 0},
        {"%0G", 0, 0, -1, NULL, 0},
        {"%zz", 0, 0, -1, NULL, 0},
        {"% 1", 0, 0, -1, NULL, 0},
        {"%-1", 0, 0, -1, NULL, 0},
        {"%+1", 0, 0, -1, NULL, 0},
        {"%4\0", 3, 0, -1, NULL, 0},
        {"%41", 2, 0, -1, NULL, 0},                       /* only n bytes: "%4" */
        {"abc%41", 3, 0, 0, "abc", 0},
        /* out_max counts the NUL */
        {"abc", 0, 4, 0, "abc", 0},
        {"abc", 0, 3, -1, NULL, 0},
        {"", 0, 1, 0, "", 0},
        {"a", 0, 1, -1, NULL, 0},
        {"%41%42", 0, 3, 0, "AB", 0},
        {"%41%42", 0, 2, -1, NULL, 0},
        {"%41%42%43", 0, 4, 0, "ABC", 0},                 /* 9 in, 3 out: the output is bounded */
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const pct_case *c = &cases[i];
        size_t n = c->n ? c->n : strlen(c->in);
        size_t max = c->out_max ? c->out_max : 64;
        char out[80];
        memset(out, '#', sizeof out);
        int rc = http_pct_decode(c->in, n, out, max);
        if (rc != c->rc)
            fail_msg("case %zu \"%s\" (n %zu, max %zu): %d, want %d", i, c->in, n, max, rc, c->rc);
        for (size_t k = max; k < sizeof out; k++)
            if (out[k] != '#')
                fail_msg("case %zu \"%s\": wrote out[%zu] past out_max %zu", i, c->in, k, max);
        if (rc == 0) {
            size_t want_len = c->out_len ? c->out_len : strlen(c->out);
            assert_memory_equal(out, c->out, want_len + 1);
        }
    }
}

/* out_max is "bytes incl. NUL": with 0 there is no room for anything. */
static void test_pct_decode_zero_room(void **state)
{
    char out[2] = {'#', '#'};
    assert_int_equal(http_pct_decode("", 0, out, 0), -1);
    assert_int_equal(out[0], '#');
}

static void test_parse_addr(void **state)
{
    static const struct { const char *in; int rc, family, port; const char *ip; } cases[] = {
        {"127.0.0.1:8080", 0, AF_INET, 8080, "127.0.0.1"},
        {"0.0.0.0:0", 0, AF_INET, 0, "0.0.0.0"},
        {"localhost:65535", 0, AF_INET, 65535, "127.0.0.1"},
        {"[::1]:8080", 0, AF_INET6, 8080, "::1"},
        {"[::]:443", 0, AF_INET6, 443, "::"},
        {"127.0.0.1:65536", -1, 0, 0, NULL},
        {"127.0.0.1:-1", -1, 0, 0, NULL},
        {"127.0.0.1:80x", -1, 0, 0, NULL},
        {"127.0.0.1", -1, 0, 0, NULL},
        {":8080", -1, 0, 0, NULL},
        {"example.com:80", -1, 0, 0, NULL},
        {"::1:80", -1, 0, 0, NULL},
        {"[::1:80", -1, 0, 0, NULL},
        {"[127.0.0.1]:80", -1, 0, 0, NULL},
        {"[]:80", -1, 0, 0, NULL},
        {"", -1, 0, 0, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        int rc = server_parse_addr(cases[i].in, &ss, &len);
        if (rc != cases[i].rc)
            fail_msg("server_parse_addr(\"%s\") = %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc != 0)
            continue;
        assert_int_equal(ss.ss_family, cases[i].family);
        char ip[INET6_ADDRSTRLEN];
        if (cases[i].family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            assert_int_equal(len, sizeof *a);
            assert_int_equal(ntohs(a->sin_port), cases[i].port);
            assert_non_null(inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip));
        } else {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            assert_int_equal(len, sizeof *a);
            assert_int_equal(ntohs(a->sin6_port), cases[i].port);
            assert_non_null(inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip));
        }
        assert_string_equal(ip, cases[i].ip);
    }
}

/* An empty port is not port 0 (config_load's own check refuses it, this parser should too). */
static void test_parse_addr_empty_port(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(server_parse_addr("127.0.0.1:", &ss, &len), -1);
    assert_int_equal(server_parse_addr("[::1]:", &ss, &len), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_pct_decode_zero_room),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_parse_addr_empty_port),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
