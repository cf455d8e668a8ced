/* Unit tests of smtp/dns.c: dns_txt against a scripted UDP responder on loopback (a thread
 * here): a record split into several character-strings comes back joined, several records
 * come back separately, NXDOMAIN and an empty answer are DNS_NOTFOUND, SERVFAIL and silence
 * are DNS_RETRY (silence within the time bound). */
#include "tests/unit/unit.h"

#include "lib/config.h"
#include "smtp/dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sock = -1;
static char server[64];
static pthread_t thr;

/* Answers by the first label of the question: "split" one TXT of two strings, "two" two
 * TXT records, "nx" NXDOMAIN, "empty" NOERROR without answers, "fail" SERVFAIL, "drop"
 * nothing. */
static void *serve(void *arg)
{
    unsigned char q[512], a[1024];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        ssize_t n = recvfrom(sock, q, sizeof q, 0, (struct sockaddr *)&peer, &pl);
        if (n < 17)
            return NULL;
        size_t off = 12;
        while (off < (size_t)n && q[off])
            off += 1 + q[off];
        size_t qend = off + 5;
        if (qend > (size_t)n)
            continue;
        char first[64] = "";
        memcpy(first, q + 13, q[12] < 63 ? q[12] : 63);
        if (strcmp(first, "drop") == 0)
            continue;
        int rcode = strcmp(first, "nx") == 0 ? 3 : strcmp(first, "fail") == 0 ? 2 : 0;
        memcpy(a, q, qend);
        a[2] = 0x84 | (q[2] & 1);
        a[3] = (unsigned char)(0x80 | rcode);
        a[4] = 0;
        a[5] = 1;
        memset(a + 6, 0, 6);
        size_t o = qend;
        int nrec = 0;
        const char *strs[2][3] = {{NULL}};
        if (rcode == 0 && strcmp(first, "split") == 0) {
            strs[0][0] = "v=DKIM1; k=rsa; ";
            strs[0][1] = "p=ABC";
            nrec = 1;
        } else if (rcode == 0 && strcmp(first, "two") == 0) {
            strs[0][0] = "one";
            strs[1][0] = "two";
            nrec = 2;
        }
        for (int i = 0; i < nrec; i++) {
            unsigned char *rr = a + o;
            rr[0] = 0xc0;
            rr[1] = 0x0c;
            rr[2] = 0;
            rr[3] = 16;
            rr[4] = 0;
            rr[5] = 1;
            memset(rr + 6, 0, 3);
            rr[9] = 60;
            size_t d = 12;
            for (int j = 0; strs[i][j]; j++) {
                size_t l = strlen(strs[i][j]);
                rr[d] = (unsigned char)l;
                memcpy(rr + d + 1, strs[i][j], l);
                d += 1 + l;
            }
            rr[10] = (unsigned char)((d - 12) >> 8);
            rr[11] = (unsigned char)(d - 12);
            o += d;
        }
        a[7] = (unsigned char)nrec;
        sendto(sock, a, o, 0, (struct sockaddr *)&peer, pl);
    }
    return arg;
}

static int setup(void **state)
{
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t l = sizeof sa;
    getsockname(sock, (struct sockaddr *)&sa, &l);
    snprintf(server, sizeof server, "127.0.0.1:%d", ntohs(sa.sin_port));
    cfg.dns_server = server;
    pthread_create(&thr, NULL, serve, NULL);
    return 0;
}

static int teardown(void **state)
{
    /* Wake the server with a datagram shorter than a DNS header: it returns on that. (No
     * pthread_cancel: cancelling a thread blocked in recvfrom upsets ASan's thread exit.) */
    struct sockaddr_in sa;
    socklen_t l = sizeof sa;
    getsockname(sock, (struct sockaddr *)&sa, &l);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(s, "x", 1, 0, (struct sockaddr *)&sa, l);
    close(s);
    pthread_join(thr, NULL);
    close(sock);
    cfg.dns_server = NULL;
    return 0;
}

static void test_split_and_many(void **state)
{
    char **t;
    int n;
    char err[256];
    assert_int_equal(dns_txt("split.example.test", &t, &n, err, sizeof err), DNS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(t[0], "v=DKIM1; k=rsa; p=ABC");
    dns_free_txts(t, n);
    assert_int_equal(dns_txt("two.example.test", &t, &n, err, sizeof err), DNS_OK);
    assert_int_equal(n, 2);
    assert_true((strcmp(t[0], "one") == 0 && strcmp(t[1], "two") == 0) ||
                (strcmp(t[0], "two") == 0 && strcmp(t[1], "one") == 0));
    dns_free_txts(t, n);
}

static void test_not_found(void **state)
{
    char **t;
    int n;
    char err[256];
    assert_int_equal(dns_txt("nx.example.test", &t, &n, err, sizeof err), DNS_NOTFOUND);
    assert_null(t);
    assert_non_null(strstr(err, "no TXT record at nx.example.test"));
    assert_int_equal(dns_txt("empty.example.test", &t, &n, err, sizeof err), DNS_NOTFOUND);
}

static void test_retry(void **state)
{
    char **t;
    int n;
    char err[256];
    assert_int_equal(dns_txt("fail.example.test", &t, &n, err, sizeof err), DNS_RETRY);
    assert_null(t);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(dns_txt("drop.example.test", &t, &n, err, sizeof err), DNS_RETRY);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true(b.tv_sec - a.tv_sec <= DNS_TIMEOUT_MS / 1000 + 1);
    assert_non_null(strstr(err, "timed out"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_many),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_retry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
