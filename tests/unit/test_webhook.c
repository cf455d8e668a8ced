/* Unit tests of the webhook building blocks: URL rules (net/webhook_http.c), the address
 * guard decision for resolved addresses and for the socket libcurl is about to open (the
 * OPENSOCKETFUNCTION refuses before any socket exists, so nothing is sent), Standard Webhooks
 * signatures against an independently computed value, secrets, Retry-After parsing and the
 * retry delay of the dispatcher (worker/webhooks.c, compiled in here: the unit tests link
 * the api/ objects, not the worker's). No packet leaves the process. */
#include "tests/unit/unit.h"

#include "lib/config.h"
#include "lib/netguard.h"
#include "smtp/dns.h"
#include "net/webhook_http.h"
#include "worker/webhooks.c"

#include <arpa/inet.h>
#include <netinet/in.h>

typedef struct {
    const char *url;
    const char *why;     /* substring of the reason; NULL: valid */
    const char *host;    /* expected host when valid */
    int         port;
} url_row;

static const url_row url_rows[] = {
    {"https://hooks.example.com/posthorn", NULL, "hooks.example.com", 443},
    {"http://hooks.example.com", NULL, "hooks.example.com", 80},
    {"HTTP://Hooks.Example.com:8080/a?b=c#d", NULL, "Hooks.Example.com", 8080},
    {"http://127.0.0.2:5000/x", NULL, "127.0.0.2", 5000},
    {"http://[2001:db8::1]:8443/x", NULL, "2001:db8::1", 8443},
    {"https://xn--bcher-kva.example/", NULL, "xn--bcher-kva.example", 443},
    {"ftp://example.com/", "http", NULL, 0},
    {"file:///etc/passwd", "http", NULL, 0},
    {"javascript:alert(1)", "http", NULL, 0},
    {"gopher://example.com:70/", "http", NULL, 0},
    {"http:example.com", "http", NULL, 0},
    {"//example.com/x", "http", NULL, 0},
    {"http://user:pw@example.com/", "user", NULL, 0},
    {"http://user@example.com/", "user", NULL, 0},
    {"http://example.com/a b", "spaces", NULL, 0},
    {"http://example.com/\r\nX: y", "control", NULL, 0},
    {"http://example.com/\x7f", "control", NULL, 0},
    {"http://b\xc3\xbc" "cher.example/", "non-ASCII", NULL, 0},
    {"http:///x", "host", NULL, 0},
    {"http://:80/x", "host", NULL, 0},
    {"http://example.com:0/", "port", NULL, 0},
    {"http://example.com:65536/", "port", NULL, 0},
    {"http://example.com:http/", "port", NULL, 0},
    {"http://example.com:/", "port", NULL, 0},
    {"http://2130706433/", "host", NULL, 0},
    {"http://0x7f.1/", "host", NULL, 0},
    {"http://exa_mple..com/", "host", NULL, 0},
    {"http://-bad.example/", "host", NULL, 0},
    {"http://[::1/", "IPv6", NULL, 0},
    {"http://[example.com]/", "IPv6", NULL, 0},
    {"http://::1/", "host", NULL, 0},
    {"http://example.com\\@evil.example/", "backslash", NULL, 0},
    {"", "empty", NULL, 0},
};

static void test_url_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(url_rows); i++) {
        const url_row *r = &url_rows[i];
        wh_url u;
        const char *why = wh_url_check(r->url, strlen(r->url), &u);
        if (!r->why) {
            if (why)
                fail_msg("%s: refused (%s)", r->url, why);
            assert_string_equal(u.host, r->host);
            assert_int_equal(u.port, r->port);
        } else {
            if (!why)
                fail_msg("%s: accepted", r->url);
            if (!strstr(why, r->why))
                fail_msg("%s: reason \"%s\" lacks \"%s\"", r->url, why, r->why);
        }
    }
    /* length: 2048 is fine, 2049 is not */
    char big[2100];
    memcpy(big, "http://example.com/", 19);
    memset(big + 19, 'a', sizeof big - 19);
    wh_url u;
    assert_null(wh_url_check(big, 2048, &u));
    assert_non_null(strstr(wh_url_check(big, 2049, &u), "2048"));
    /* a NUL inside is a control character */
    assert_non_null(wh_url_check("http://a.example/\0x", 19, &u));
}

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static void test_refusal_decision(void **state)
{
    (void)state;
    static const struct {
        const char *ip, *allow, *why;   /* why NULL: allowed */
    } rows[] = {
        {"8.8.8.8", "", NULL},
        {"2606:4700::1111", "", NULL},
        {"10.0.0.1", "", "address refused: 10.0.0.1 (private)"},
        {"127.0.0.2", "", "address refused: 127.0.0.2 (loopback)"},
        {"127.0.0.2", "127.0.0.2/32", NULL},
        {"127.0.0.3", "127.0.0.2/32", "address refused: 127.0.0.3 (loopback)"},
        {"169.254.169.254", "", "address refused: 169.254.169.254 (metadata)"},
        {"100.64.1.1", "", "address refused: 100.64.1.1 (cgnat)"},
        {"::1", "", "address refused: ::1 (loopback)"},
        {"fd00::1", "", "(private)"},
        {"fe80::1", "", "address refused: fe80::1 (link-local)"},
        {"::ffff:10.0.0.1", "10.0.0.0/8", "(ipv4-mapped)"},
        {"64:ff9b::a00:1", "", "(nat64)"},
        {"2002:a00:1::", "", "(6to4)"},
        {"224.0.0.1", "", "(multicast)"},
    };
    for (size_t i = 0; i < N_ELEMS(rows); i++) {
        char err[128];
        netguard *g = netguard_new(rows[i].allow, err, sizeof err);
        assert_non_null(g);
        struct sockaddr_storage ss = sa_of(rows[i].ip);
        char why[WH_ERR_MAX] = "";
        int ok = wh_addr_allowed(g, (struct sockaddr *)&ss, why, sizeof why);
        if (!rows[i].why && !ok)
            fail_msg("%s (allow %s): refused: %s", rows[i].ip, rows[i].allow, why);
        if (rows[i].why && (ok || !strstr(why, rows[i].why)))
            fail_msg("%s (allow %s): \"%s\", want \"%s\"", rows[i].ip, rows[i].allow, why,
                     rows[i].why);
        netguard_free(g);
    }
}

/* The socket callback: a transfer to a refused address fails before a socket is opened
 * (so nothing is sent), with the guard's reason; pinned names are checked the same way. */
static void test_socket_refused_before_connect(void **state)
{
    (void)state;
    static const struct {
        const char *url, *pin, *want;
    } rows[] = {
        {"http://10.0.0.1:9/x", NULL, "address refused: 10.0.0.1 (private)"},
        {"http://[fe80::1]:9/x", NULL, "address refused: fe80::1 (link-local)"},
        {"http://pinned.invalid:9/x", "169.254.169.254", "address refused: 169.254.169.254 (metadata)"},
        {"http://127.0.0.1:9/x", NULL, "address refused: 127.0.0.1 (loopback)"},
    };
    for (size_t i = 0; i < N_ELEMS(rows); i++) {
        wh_url u;
        assert_null(wh_url_check(rows[i].url, strlen(rows[i].url), &u));
        wh_addrs a;
        memset(&a, 0, sizeof a);
        if (rows[i].pin) {
            a.addr[0] = sa_of(rows[i].pin);
            ((struct sockaddr_in *)&a.addr[0])->sin_port = htons(9);
            a.n = 1;
        }
        wh_request rq = {.url = &u, .url_text = rows[i].url, .addrs = rows[i].pin ? &a : NULL,
                         .guard = NULL, .webhook_id = "msg_x", .timestamp = 1,
                         .signature = "v1,x", .body = "[]", .bodylen = 2, .timeout_ms = 2000};
        wh_xfer *x = wh_xfer_new(&rq);
        CURLcode rc = curl_easy_perform(wh_xfer_easy(x));
        wh_result r;
        wh_xfer_result(x, rc, &r);
        wh_xfer_free(x);
        assert_int_not_equal(rc, CURLE_OK);
        assert_int_equal(r.status, 0);
        if (!strstr(r.error, rows[i].want))
            fail_msg("%s: error \"%s\", want \"%s\"", rows[i].url, r.error, rows[i].want);
    }
}

static void test_signature_vector(void **state)
{
    (void)state;
    /* the inputs of the Standard Webhooks example; the expected value computed independently
     * with Python's hmac module: base64(HMAC-SHA256(b64decode(key), "id.ts.body")) */
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Fu8/jP7oZ0=";
    uint8_t key[64];
    int kl = wh_secret_key(secret, key, sizeof key);
    assert_int_equal(kl, 32);
    const char *body = "{\"test\": 2432232314}";
    char sig[WH_SIG_MAX];
    wh_sign(key, (size_t)kl, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig);
    assert_string_equal(sig, "v1,TkPZCcrYuNlI4H4oVCQYDmWOenh/eAj6YY41KmUCNO4=");
    assert_int_equal(wh_secret_key("nope", key, sizeof key), -1);
    assert_int_equal(wh_secret_key("whsec_!!!!", key, sizeof key), -1);
}

static void test_secret_new(void **state)
{
    (void)state;
    char a[WH_SECRET_MAX], b[WH_SECRET_MAX];
    wh_secret_new(a);
    wh_secret_new(b);
    assert_int_equal(strlen(a), 6 + 44);
    assert_memory_equal(a, "whsec_", 6);
    assert_string_not_equal(a, b);
    uint8_t key[64];
    assert_int_equal(wh_secret_key(a, key, sizeof key), 32);
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(wh_parse_retry_after(" 3\r\n", 4, 0), 3000);
    assert_int_equal(wh_parse_retry_after("0", 1, 0), 0);
    assert_int_equal(wh_parse_retry_after("", 0, 0), -1);
    assert_int_equal(wh_parse_retry_after("soon", 4, 0), -1);
    assert_int_equal(wh_parse_retry_after("-5", 2, 0), -1);
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert_int_equal(wh_parse_retry_after(d, strlen(d), 784111777 - 120), 120000);
    assert_int_equal(wh_parse_retry_after(d, strlen(d), 784111777 + 120), 0);
}

static void test_retry_delay(void **state)
{
    (void)state;
    const int64_t sched[] = {5000, 300000, 1800000};
    assert_int_equal(webhooks_retry_delay(sched, 3, 1, 0.0, -1), 5000);
    assert_int_equal(webhooks_retry_delay(sched, 3, 1, 1.0, -1), 5500);     /* +10 % at most */
    assert_int_equal(webhooks_retry_delay(sched, 3, 2, 0.5, -1), 315000);
    assert_int_equal(webhooks_retry_delay(sched, 3, 3, 0.0, -1), 1800000);
    assert_int_equal(webhooks_retry_delay(sched, 3, 9, 0.0, -1), 1800000);  /* last repeats */
    assert_int_equal(webhooks_retry_delay(sched, 3, 1, 0.0, 60000), 60000);  /* Retry-After */
    assert_int_equal(webhooks_retry_delay(sched, 3, 2, 0.0, 60000), 300000); /* only if longer */
    assert_int_equal(webhooks_retry_delay(sched, 3, 1, 0.0, 999999999000LL),
                     7LL * 24 * 3600 * 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_rules),
        cmocka_unit_test(test_refusal_decision),
        cmocka_unit_test(test_socket_refused_before_connect),
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test(test_secret_new),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
