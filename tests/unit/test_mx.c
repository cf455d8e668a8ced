/* Unit tests of the pure parts of smtp/mx.c: domain name checks and cache keys, ordering of
 * MX records (preference, shuffling of equal preferences, duplicates, the cap), how long
 * each kind of result is cached, and the cache itself on a test clock (expiry, ports,
 * eviction, threads). mx_resolve is only driven here where it never reaches DNS (bad names,
 * cache hits); its look-ups are tested against real DNS servers in
 * tests/e2e/test_mx_resolve.py. */
#include "tests/unit/unit.h"

#include "lib/config.h"
#include "smtp/mx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

/* ---- names ------------------------------------------------------------------------- */

static void test_name_key(void **state)
{
    static const struct {
        const char *in, *key;          /* key NULL: refused */
    } cases[] = {
        {"example.com", "example.com"},
        {"Example.COM.", "example.com"},
        {"xn--caf-dma.example", "xn--caf-dma.example"},
        {"a-b.c0.d", "a-b.c0.d"},
        {"localhost", "localhost"},
        {"1.2.3.4", "1.2.3.4"},
        {"", NULL},
        {".", NULL},
        {"..", NULL},
        {"example..com", NULL},
        {".example.com", NULL},
        {"example.com..", NULL},
        {"-example.com", NULL},
        {"example-.com", NULL},
        {"example.-com", NULL},
        {"example.com-", NULL},
        {"exa mple.com", NULL},
        {"exa_mple.com", NULL},
        {"example.com\n", NULL},
        {"caf\xc3\xa9.example", NULL},
        {"[127.0.0.1]", NULL},
        {"user@example.com", NULL},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char key[MX_NAME_MAX + 1] = "";
        int rc = mx_name_key(cases[i].in, key, sizeof key);
        if (cases[i].key) {
            if (rc != 0 || strcmp(key, cases[i].key) != 0)
                fail_msg("\"%s\": rc %d key \"%s\"", cases[i].in, rc, key);
        } else if (rc != -1) {
            fail_msg("\"%s\" accepted as \"%s\"", cases[i].in, key);
        }
    }
    assert_int_equal(mx_name_key(NULL, (char[8]){0}, 8), -1);

    /* Labels up to 63, names up to 253 (a trailing dot not counted). */
    char name[400], key[MX_NAME_MAX + 1];
    memset(name, 'a', 63);
    memcpy(name + 63, ".com", 5);
    assert_int_equal(mx_name_key(name, key, sizeof key), 0);
    memset(name, 'a', 64);
    memcpy(name + 64, ".com", 5);
    assert_int_equal(mx_name_key(name, key, sizeof key), -1);
    size_t o = 0;
    for (int i = 0; i < 4; i++) {
        memset(name + o, 'b', 62);
        o += 62;
        name[o++] = '.';
    }
    name[o++] = 'c';                            /* 4 * 63 + 1 = 253 */
    name[o] = '\0';
    assert_int_equal(strlen(name), 253);
    assert_int_equal(mx_name_key(name, key, sizeof key), 0);
    name[o] = '.';
    name[o + 1] = '\0';
    assert_int_equal(mx_name_key(name, key, sizeof key), 0);   /* 253 + root dot */
    assert_int_equal(strlen(key), 253);
    name[o] = 'c';
    assert_int_equal(mx_name_key(name, key, sizeof key), -1);  /* 254 */
    /* A key buffer too small is refused, not overrun. */
    char small[4];
    assert_int_equal(mx_name_key("abc", small, sizeof small), 0);
    assert_int_equal(mx_name_key("abcd", small, sizeof small), -1);
}

/* ---- ordering ------------------------------------------------------------------------ */

static mx_record rec(const char *name, int pref)
{
    mx_record r = {.pref = pref};
    snprintf(r.name, sizeof r.name, "%s", name);
    return r;
}

static uint32_t always_zero(void *ctx, uint32_t bound)
{
    return 0;
}

static uint32_t always_last(void *ctx, uint32_t bound)
{
    return bound - 1;
}

static void test_order_by_preference(void **state)
{
    mx_record r[] = {rec("c", 30), rec("a", 10), rec("e", 50), rec("b", 20), rec("d", 40),
                     rec("g", 70), rec("f", 60)};
    int n = mx_order(r, N_ELEMS(r), MX_MAX_HOSTS, NULL, NULL);
    assert_int_equal(n, 5);
    const char *want[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < n; i++) {
        assert_string_equal(r[i].name, want[i]);
        assert_int_equal(r[i].pref, (i + 1) * 10);
    }
    /* Preferences are unsigned 16-bit numbers on the wire: 0 and 65535 order too. */
    mx_record z[] = {rec("hi", 65535), rec("lo", 0)};
    assert_int_equal(mx_order(z, 2, 5, NULL, NULL), 2);
    assert_string_equal(z[0].name, "lo");
    assert_int_equal(mx_order(z, 0, 5, NULL, NULL), 0);
    assert_int_equal(mx_order(z, 2, 0, NULL, NULL), 0);
}

static void test_order_duplicates(void **state)
{
    mx_record r[] = {rec("mx2", 20), rec("mx1", 10), rec("mx2", 5), rec("mx1", 10)};
    int n = mx_order(r, N_ELEMS(r), MX_MAX_HOSTS, always_zero, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(r[0].name, "mx2");
    assert_int_equal(r[0].pref, 5);
    assert_string_equal(r[1].name, "mx1");
}

static void test_order_shuffle_is_injected(void **state)
{
    /* Fisher-Yates from the end of each run: the injected numbers decide the order. */
    mx_record r[] = {rec("x", 5), rec("b", 10), rec("a", 10), rec("c", 10)};
    assert_int_equal(mx_order(r, 4, 5, always_last, NULL), 4);
    assert_string_equal(r[0].name, "x");
    assert_string_equal(r[1].name, "a");          /* sorted by name, then left in place */
    assert_string_equal(r[2].name, "b");
    assert_string_equal(r[3].name, "c");
    mx_record s[] = {rec("x", 5), rec("b", 10), rec("a", 10), rec("c", 10)};
    assert_int_equal(mx_order(s, 4, 5, always_zero, NULL), 4);
    /* A run of one is never touched; in a b c, slot 3 swaps with slot 1 (c b a), then
     * slot 2 with slot 1 (b c a). */
    assert_string_equal(s[0].name, "x");
    assert_string_equal(s[1].name, "b");
    assert_string_equal(s[2].name, "c");
    assert_string_equal(s[3].name, "a");
}

static void test_order_shuffle_is_uniform(void **state)
{
    /* Three hosts of one preference behind a better one, with OS randomness: every one of
     * the 6 orders shows up about as often as the others; the better host stays first. */
    int counts[6] = {0};
    const int runs = 6000;
    for (int i = 0; i < runs; i++) {
        mx_record r[] = {rec("a", 10), rec("b", 10), rec("c", 10), rec("best", 1)};
        assert_int_equal(mx_order(r, 4, 5, NULL, NULL), 4);
        assert_string_equal(r[0].name, "best");
        int perm = (r[1].name[0] - 'a') * 2 + (r[2].name[0] < r[3].name[0] ? 0 : 1);
        assert_true(perm >= 0 && perm < 6);
        counts[perm]++;
    }
    for (int p = 0; p < 6; p++)
        if (counts[p] < runs / 6 * 7 / 10 || counts[p] > runs / 6 * 13 / 10)
            fail_msg("order %d seen %d times in %d runs", p, counts[p], runs);
}

static void test_order_cap_cuts_a_run_at_random(void **state)
{
    /* Seven hosts of one preference, five kept: over many runs every host is sometimes
     * kept and sometimes not. */
    int kept[7] = {0};
    for (int i = 0; i < 700; i++) {
        mx_record r[7];
        for (int j = 0; j < 7; j++) {
            char nm[8] = {(char)('a' + j), 0};
            r[j] = rec(nm, 10);
        }
        assert_int_equal(mx_order(r, 7, MX_MAX_HOSTS, NULL, NULL), 5);
        for (int j = 0; j < 5; j++)
            kept[r[j].name[0] - 'a']++;
    }
    for (int j = 0; j < 7; j++)
        assert_true(kept[j] > 0 && kept[j] < 700);
}

/* ---- cache --------------------------------------------------------------------------- */

static void test_cache_ttl(void **state)
{
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 300), 300000);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 0), MX_TTL_MIN_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 4), MX_TTL_MIN_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 5), 5000);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 3600), 3600000);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 3601), MX_TTL_MAX_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, 2147483647), MX_TTL_MAX_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_OK, -1), MX_TTL_MIN_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_RETRY, 3600), MX_TTL_RETRY_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_RETRY, -1), MX_TTL_RETRY_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_NOTFOUND, -1), MX_TTL_NEG_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_NULL, -1), MX_TTL_NEG_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_NOTFOUND, 900), 900000);
    assert_int_equal(mx_cache_ttl_ms(MX_NULL, 1), MX_TTL_MIN_MS);
    assert_int_equal(mx_cache_ttl_ms(MX_NULL, 86400), MX_TTL_MAX_MS);
    assert_string_equal(mx_status_str(MX_OK), "ok");
    assert_string_equal(mx_status_str(MX_NULL), "null");
    assert_string_equal(mx_status_str(MX_NOTFOUND), "notfound");
    assert_string_equal(mx_status_str(MX_RETRY), "retry");
}

static int64_t fake_now;

static int64_t fake_clock(void *ctx)
{
    return *(int64_t *)ctx;
}

static void one_host(mx_result *r, const char *name, const char *v4, const char *v6)
{
    memset(r, 0, sizeof *r);
    r->status = MX_OK;
    r->nhosts = 1;
    snprintf(r->hosts[0].name, sizeof r->hosts[0].name, "%s", name);
    r->hosts[0].pref = 10;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&r->hosts[0].addr[0];
    s4->sin_family = AF_INET;
    s4->sin_port = htons(1);
    inet_pton(AF_INET, v4, &s4->sin_addr);
    r->hosts[0].addrlen[0] = sizeof *s4;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->hosts[0].addr[1];
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(1);
    inet_pton(AF_INET6, v6, &s6->sin6_addr);
    r->hosts[0].addrlen[1] = sizeof *s6;
    r->hosts[0].naddrs = 2;
}

static int port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void test_cache_expiry_and_ports(void **state)
{
    fake_now = 1000000;
    mx_cache *c = mx_cache_new_clock(fake_clock, &fake_now);
    mx_result r, got;
    one_host(&r, "mx.example.test", "127.0.0.2", "::1");
    mx_cache_put(c, "example.test", &r, 5000);
    assert_int_equal(mx_cache_get(c, "example.test", 2525, &got), 1);
    assert_int_equal(got.status, MX_OK);
    assert_int_equal(got.expires_ms, 1005000);
    assert_string_equal(got.hosts[0].name, "mx.example.test");
    assert_int_equal(port_of(&got.hosts[0].addr[0]), 2525);
    assert_int_equal(port_of(&got.hosts[0].addr[1]), 2525);
    assert_int_equal(mx_cache_get(c, "example.test", 25, &got), 1);
    assert_int_equal(port_of(&got.hosts[0].addr[0]), 25);
    assert_int_equal(mx_cache_get(c, "other.test", 25, &got), 0);

    fake_now += 4999;
    assert_int_equal(mx_cache_get(c, "example.test", 25, &got), 1);
    fake_now += 1;
    assert_int_equal(mx_cache_get(c, "example.test", 25, &got), 0);
    assert_int_equal(mx_cache_get(c, "example.test", 25, &got), 0);

    /* A new answer replaces the old one under the same key. */
    mx_cache_put(c, "example.test", &r, 1000);
    mx_result retry = {.status = MX_RETRY};
    snprintf(retry.err, sizeof retry.err, "example.test: SERVFAIL");
    mx_cache_put(c, "example.test", &retry, MX_TTL_RETRY_MS);
    assert_int_equal(mx_cache_get(c, "example.test", 25, &got), 1);
    assert_int_equal(got.status, MX_RETRY);
    assert_string_equal(got.err, "example.test: SERVFAIL");
    assert_int_equal(got.nhosts, 0);

    /* mx_resolve answers from the cache by the lower-case key, with its own port, and
     * never reaches DNS then (the server below does not exist). */
    cfg.dns_server = "127.0.0.1:1";
    mx_cache_put(c, "cached.test", &r, 60000);
    mx_result out;
    assert_int_equal(mx_resolve(c, "CACHED.Test.", 587, &out), MX_OK);
    assert_string_equal(out.hosts[0].name, "mx.example.test");
    assert_int_equal(port_of(&out.hosts[0].addr[0]), 587);
    assert_int_equal(out.expires_ms, fake_now + 60000);
    cfg.dns_server = NULL;
    mx_cache_free(c);
    mx_cache_free(NULL);
}

static void test_cache_eviction(void **state)
{
    fake_now = 0;
    mx_cache *c = mx_cache_new_clock(fake_clock, &fake_now);
    mx_result r, got;
    one_host(&r, "mx.test", "127.0.0.2", "::1");
    char key[32];
    /* Full of entries: d0 expires first (ttl 1000), the rest later. */
    for (int i = 0; i < MX_CACHE_MAX; i++) {
        snprintf(key, sizeof key, "d%d.test", i);
        mx_cache_put(c, key, &r, i == 0 ? 1000 : 100000 + i);
    }
    mx_cache_put(c, "new.test", &r, 200000);
    assert_int_equal(mx_cache_get(c, "new.test", 25, &got), 1);
    assert_int_equal(mx_cache_get(c, "d0.test", 25, &got), 0);     /* the soonest to expire */
    assert_int_equal(mx_cache_get(c, "d1.test", 25, &got), 1);
    snprintf(key, sizeof key, "d%d.test", MX_CACHE_MAX - 1);
    assert_int_equal(mx_cache_get(c, key, 25, &got), 1);
    /* Expired entries make room before any live one goes. */
    fake_now = 100000 + 10;       /* d1..d10 expired */
    mx_cache_put(c, "new2.test", &r, 100000);
    mx_cache_put(c, "new3.test", &r, 100000);
    assert_int_equal(mx_cache_get(c, "new.test", 25, &got), 1);
    assert_int_equal(mx_cache_get(c, "d11.test", 25, &got), 1);
    assert_int_equal(mx_cache_get(c, "new2.test", 25, &got), 1);
    assert_int_equal(mx_cache_get(c, "new3.test", 25, &got), 1);
    mx_cache_free(c);
}

static mx_cache *shared;

static void *hammer(void *arg)
{
    long id = (long)arg;
    mx_result r, got;
    one_host(&r, "mx.test", "127.0.0.2", "::1");
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "t%ld-%d.test", id, i % 50);
        mx_cache_put(shared, key, &r, 60000);
        if (!mx_cache_get(shared, key, 25 + (int)id, &got) ||
            port_of(&got.hosts[0].addr[0]) != 25 + id)
            return (void *)1;
    }
    return NULL;
}

static void test_cache_threads(void **state)
{
    shared = mx_cache_new();
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
    mx_cache_free(shared);
}

static void test_resolve_bad_names(void **state)
{
    mx_cache *c = mx_cache_new();
    cfg.dns_server = "127.0.0.1:1";
    mx_result out;
    out.status = MX_OK;
    assert_int_equal(mx_resolve(c, "bad name.test", 25, &out), MX_NOTFOUND);
    assert_string_equal(out.err, "bad?name.test: not a valid domain name");
    assert_int_equal(out.nhosts, 0);
    assert_int_equal(mx_resolve(c, "evil\r\nname", 25, &out), MX_NOTFOUND);
    assert_string_equal(out.err, "evil??name: not a valid domain name");
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mx_resolve(c, longname, 25, &out), MX_NOTFOUND);
    assert_non_null(strstr(out.err, "aaaa...: not a valid domain name"));
    assert_int_equal(mx_resolve(NULL, NULL, 25, &out), MX_NOTFOUND);
    assert_int_equal(mx_resolve(c, "", 25, &out), MX_NOTFOUND);
    mx_result got;
    assert_int_equal(mx_cache_get(c, "bad name.test", 25, &got), 0);
    cfg.dns_server = NULL;
    mx_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_key),
        cmocka_unit_test(test_order_by_preference),
        cmocka_unit_test(test_order_duplicates),
        cmocka_unit_test(test_order_shuffle_is_injected),
        cmocka_unit_test(test_order_shuffle_is_uniform),
        cmocka_unit_test(test_order_cap_cuts_a_run_at_random),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_cache_expiry_and_ports),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_cache_threads),
        cmocka_unit_test(test_resolve_bad_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
