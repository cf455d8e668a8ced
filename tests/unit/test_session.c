/* Unit tests of smtp/session.c, without sockets: a driver feeds scripted server replies,
 * collects every byte the session hands out and every callback. Each test checks the exact
 * commands sent, the verdict of every recipient (exactly one each, always), the way the
 * session ends, and what the transcript shows and hides. */
#include "tests/unit/unit.h"

#include "lib/buf.h"
#include "smtp/session.h"

#define MAXR 64

typedef struct {
    int          rcpt_index;
    smtp_verdict verdict;
    int          code;
    char         enhanced[16];
    char         text[512];
    char         transcript[4096];
} result_rec;

typedef struct {
    smtp_session  *s;
    smtp_session_params p;
    buf            sent;          /* everything handed out since the last take_sent() */
    size_t         chunks;        /* output() calls that returned data */
    size_t         max_chunk;
    result_rec     res[MAXR];
    int            nres;
    int            count[MAXR];   /* results per recipient index (rcpt ctx) */
    int            closed;
    smtp_close_info ci;
    char           ci_text[512], ci_enh[16], ci_transcript[16384];
    int            idles, starttls_calls;
    int            tls_in_callback;   /* 1: call tls_done(ok) from on_starttls */
    smtp_envelope *queue[8];
    int            nq, qi;
    int            quit_when_done;
} driver;

static driver D;

static void on_result(void *ctx, const smtp_rcpt_result *r)
{
    driver *d = ctx;
    assert_false(d->closed);
    int idx = *(const int *)r->rcpt->ctx;
    assert_true(idx >= 0 && idx < MAXR);
    d->count[idx]++;
    assert_int_equal(d->count[idx], 1);   /* exactly one result per recipient */
    assert_true(d->nres < MAXR);
    result_rec *x = &d->res[d->nres++];
    x->rcpt_index = idx;
    x->verdict = r->verdict;
    x->code = r->code;
    snprintf(x->enhanced, sizeof x->enhanced, "%s", r->enhanced);
    snprintf(x->text, sizeof x->text, "%s", r->text);
    snprintf(x->transcript, sizeof x->transcript, "%s", r->transcript);
}

static void on_idle(void *ctx, smtp_session *s)
{
    driver *d = ctx;
    d->idles++;
    assert_true(smtp_session_idle(s));
    assert_int_equal(smtp_session_phase(s), SMTP_PHASE_IDLE);
    if (d->qi < d->nq)
        assert_int_equal(smtp_session_submit(s, d->queue[d->qi++]), 0);
    else if (d->quit_when_done)
        smtp_session_quit(s);
}

static void on_closed(void *ctx, const smtp_close_info *info)
{
    driver *d = ctx;
    assert_int_equal(d->closed, 0);
    d->closed = 1;
    d->ci = *info;
    snprintf(d->ci_text, sizeof d->ci_text, "%s", info->text);
    snprintf(d->ci_enh, sizeof d->ci_enh, "%s", info->enhanced);
    snprintf(d->ci_transcript, sizeof d->ci_transcript, "%s", info->transcript);
}

static void on_starttls(void *ctx, smtp_session *s)
{
    driver *d = ctx;
    d->starttls_calls++;
    assert_int_equal(smtp_session_phase(s), SMTP_PHASE_TLS);
    if (d->tls_in_callback)
        smtp_session_tls_done(s, 1, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
}

static const smtp_session_events EVENTS = {on_result, on_idle, on_closed, on_starttls};

static void start(smtp_tls_mode tls, const char *user, const char *pass)
{
    D.p.helo_name = "client.example";
    D.p.tls = tls;
    D.p.auth_user = user;
    D.p.auth_pass = pass;
    D.s = smtp_session_new(&D.p, &EVENTS, &D);
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_GREETING);
}

static int setup(void **state)
{
    memset(&D, 0, sizeof D);
    buf_init(&D.sent, 64 * 1024 * 1024);
    return 0;
}

static int teardown(void **state)
{
    smtp_session_free(D.s);
    buf_free(&D.sent);
    return 0;
}

/* Writes everything the session has to give, in the pieces it hands out. */
static void drain(void)
{
    for (;;) {
        const char *p;
        size_t n = smtp_session_output(D.s, &p);
        if (n == 0)
            break;
        D.chunks++;
        if (n > D.max_chunk)
            D.max_chunk = n;
        assert_int_equal(buf_append(&D.sent, p, n), 0);
        smtp_session_written(D.s, n);
    }
}

static void feed(const char *z)
{
    drain();
    smtp_session_input(D.s, z, strlen(z));
    drain();
}

/* Asserts what was sent since the last call, then forgets it. */
static void expect_sent(const char *want)
{
    drain();
    assert_string_equal(D.sent.data ? D.sent.data : "", want);
    buf_reset(&D.sent);
}

static void greet(const char *ehlo_reply)
{
    feed("220 mx.example ESMTP\r\n");
    expect_sent("EHLO client.example\r\n");
    feed(ehlo_reply);
}

static const result_rec *res_of(int idx)
{
    for (int i = 0; i < D.nres; i++)
        if (D.res[i].rcpt_index == idx)
            return &D.res[i];
    fail_msg("no result for recipient %d", idx);
    return NULL;
}

static void expect_res(int idx, smtp_verdict v, int code, const char *enh)
{
    const result_rec *r = res_of(idx);
    assert_int_equal(r->verdict, v);
    assert_int_equal(r->code, code);
    assert_string_equal(r->enhanced, enh);
}

/* Envelope fixtures: recipients carry their index as ctx. */
static int IDX[MAXR];
static smtp_rcpt RC[4][MAXR];
static smtp_envelope ENV[4];

static smtp_envelope *env(int k, const char *from, const char *const *rcpts, const char *head,
                          const char *body)
{
    size_t n = 0;
    for (; rcpts[n]; n++) {
        IDX[n] = (int)n;
        RC[k][n] = (smtp_rcpt){rcpts[n], 0, &IDX[n]};
    }
    ENV[k] = (smtp_envelope){from, 0, RC[k], n, head, head ? strlen(head) : 0, body,
                             body ? strlen(body) : 0};
    return &ENV[k];
}

static void all_have_one_result(const smtp_envelope *e)
{
    for (size_t i = 0; i < e->nrcpts; i++)
        assert_int_equal(D.count[*(int *)e->rcpts[i].ctx], 1);
}

#define EHLO_PIPE "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n" \
                  "250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PLAIN "250-mx.example\r\n250 8BITMIME\r\n"

static const char *const TWO[] = {"b@y.example", "c@y.example", NULL};
static const char *const THREE[] = {"b@y.example", "c@y.example", "d@y.example", NULL};
static const char *const ONE[] = {"b@y.example", NULL};

/* ---- happy paths ---- */

static void test_pipelined_happy_path(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    assert_int_equal(D.idles, 1);
    expect_sent("");
    smtp_envelope *e = env(0, "a@x.example", TWO, "Subject: hi\r\n\r\n", "hello\r\n");
    assert_int_equal(smtp_session_submit(D.s, e), 0);
    assert_int_equal(smtp_session_submit(D.s, e), -1);   /* busy */
    const char *p;
    size_t n = smtp_session_output(D.s, &p);
    const char *want = "MAIL FROM:<a@x.example> SIZE=22\r\nRCPT TO:<b@y.example>\r\n"
                       "RCPT TO:<c@y.example>\r\nDATA\r\n";
    assert_int_equal(n, strlen(want));   /* one write */
    assert_memory_equal(p, want, n);
    smtp_session_written(D.s, 10);        /* a partial write keeps the rest */
    n = smtp_session_output(D.s, &p);
    assert_int_equal(n, strlen(want) - 10);
    smtp_session_written(D.s, n);
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_COMMAND);
    feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n");
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_COMMAND);
    feed("250 2.1.5 ok\r\n");
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_INIT);
    smtp_session_input(D.s, "354 go ahead\r\n", 14);
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_BLOCK);
    expect_sent("Subject: hi\r\n\r\nhello\r\n.\r\n");
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_DONE);
    assert_int_equal(D.nres, 0);
    feed("250 2.0.0 queued as X\r\n");
    assert_int_equal(D.nres, 2);
    expect_res(0, SMTP_DELIVERED, 250, "2.0.0");
    expect_res(1, SMTP_DELIVERED, 250, "2.0.0");
    assert_string_equal(res_of(0)->text, "2.0.0 queued as X");
    const char *t = res_of(0)->transcript;
    assert_non_null(strstr(t, "< 220 mx.example ESMTP\n> EHLO client.example\n< 250-mx.example\n"));
    assert_non_null(strstr(t, "> MAIL FROM:<a@x.example> SIZE=22\n> RCPT TO:<b@y.example>\n"));
    assert_non_null(strstr(t, "< 354 go ahead\n> .\n< 250 2.0.0 queued as X\n"));
    assert_null(strstr(t, "hello"));
    assert_int_equal(smtp_session_transactions(D.s), 1);
    assert_int_equal(D.idles, 2);
    assert_null(smtp_session_tls(D.s));
    smtp_session_quit(D.s);
    expect_sent("QUIT\r\n");
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_COMMAND);
    feed("221 2.0.0 bye\r\n");
    assert_true(D.closed);
    assert_int_equal(D.ci.why, SMTP_CLOSED_OK);
    assert_int_equal(D.ci.code, 221);
    assert_string_equal(D.ci_transcript, "> QUIT\n< 221 2.0.0 bye\n");
    assert_true(smtp_session_closed(D.s));
    feed("250 ignored\r\n");   /* inert after on_closed */
    smtp_session_timeout(D.s);
    smtp_session_eof(D.s, "x");
    expect_sent("");
    all_have_one_result(e);
}

static void test_lockstep_without_pipelining(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PLAIN);
    smtp_envelope *e = env(0, "", TWO, NULL, "x\r\n");
    assert_int_equal(smtp_session_submit(D.s, e), 0);
    expect_sent("MAIL FROM:<>\r\n");   /* null sender, no SIZE: not advertised */
    feed("250 ok\r\n");
    expect_sent("RCPT TO:<b@y.example>\r\n");
    feed("250 ok\r\n");
    expect_sent("RCPT TO:<c@y.example>\r\n");
    feed("250 ok\r\n");
    expect_sent("DATA\r\n");
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_INIT);
    feed("354 go\r\n");
    expect_sent("x\r\n.\r\n");
    feed("250 ok\r\n");
    expect_res(0, SMTP_DELIVERED, 250, "");
    expect_res(1, SMTP_DELIVERED, 250, "");
    all_have_one_result(e);
}

static void test_ehlo_502_falls_back_to_helo(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet("502 5.5.1 command not implemented\r\n");
    expect_sent("HELO client.example\r\n");
    feed("250 mx.example\r\n");
    assert_int_equal(D.idles, 1);
    smtp_envelope *e = env(0, "a@x.example", ONE, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example>\r\n");   /* no extensions after HELO */
}

static void test_greeting_refused(void **state)
{
    static const struct {
        const char *line;
        int         code;
        const char *enh;
    } cases[] = {
        {"554 5.7.1 no service\r\n", 554, "5.7.1"},
        {"421 4.3.2 busy\r\n", 421, "4.3.2"},
        {"554-first\r\n554 second\r\n", 554, ""},
        {"250 odd greeting\r\n", 250, ""},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        teardown(NULL);
        setup(NULL);
        start(SMTP_TLS_MAY, NULL, NULL);
        feed(cases[i].line);
        assert_true(D.closed);
        assert_int_equal(D.ci.why, SMTP_FAIL_REPLY);
        assert_int_equal(D.ci.code, cases[i].code);
        assert_string_equal(D.ci_enh, cases[i].enh);
        expect_sent("QUIT\r\n");   /* best effort */
        assert_int_equal(D.idles, 0);
    }
    assert_string_equal(D.ci_text, "odd greeting");
}

/* ---- STARTTLS ---- */

static void test_starttls_may_and_reehlo(void **state)
{
    start(SMTP_TLS_MAY, NULL, NULL);
    greet("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10\r\n250 STARTTLS\r\n");
    expect_sent("STARTTLS\r\n");
    feed("220 2.0.0 ready\r\n");
    assert_int_equal(D.starttls_calls, 1);
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_TLS);
    assert_null(smtp_session_tls(D.s));
    smtp_session_tls_done(D.s, 1, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    assert_string_equal(smtp_session_tls(D.s), "TLSv1.3 TLS_AES_256_GCM_SHA384");
    expect_sent("EHLO client.example\r\n");
    assert_int_equal(D.idles, 0);
    feed("250-mx.example\r\n250 8BITMIME\r\n");   /* PIPELINING and SIZE 10 forgotten */
    assert_int_equal(D.idles, 1);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "more than ten bytes\r\n");
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example>\r\n");
    assert_int_equal(D.nres, 0);
}

static void test_starttls_in_callback(void **state)
{
    D.tls_in_callback = 1;
    start(SMTP_TLS_REQUIRE, NULL, NULL);
    greet("250-mx.example\r\n250 STARTTLS\r\n");
    expect_sent("STARTTLS\r\n");
    feed("220 ready\r\n");
    expect_sent("EHLO client.example\r\n");
    feed("250-mx.example\r\n250 STARTTLS\r\n");   /* not again once TLS is up */
    assert_int_equal(D.idles, 1);
    assert_int_equal(D.starttls_calls, 1);
    expect_sent("");
}

static void test_starttls_policies(void **state)
{
    static const struct {
        smtp_tls_mode mode;
        const char   *ehlo;
        const char   *starttls_reply;   /* NULL: STARTTLS must not be sent */
        int           closed;
        smtp_fail     why;
        int           code;
    } cases[] = {
        {SMTP_TLS_NONE, "250-mx\r\n250 STARTTLS\r\n", NULL, 0, 0, 0},
        {SMTP_TLS_MAY, "250 mx\r\n", NULL, 0, 0, 0},
        {SMTP_TLS_REQUIRE, "250 mx\r\n", NULL, 1, SMTP_FAIL_TLS, 0},
        {SMTP_TLS_MAY, "250-mx\r\n250 STARTTLS\r\n", "454 4.7.0 TLS not available\r\n", 0, 0, 0},
        {SMTP_TLS_REQUIRE, "250-mx\r\n250 STARTTLS\r\n", "454 4.7.0 TLS not available\r\n", 1,
         SMTP_FAIL_TLS, 454},
        {SMTP_TLS_REQUIRE, "250-mx\r\n250 STARTTLS\r\n", "501 syntax\r\n", 1, SMTP_FAIL_TLS, 501},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        teardown(NULL);
        setup(NULL);
        start(cases[i].mode, NULL, NULL);
        greet(cases[i].ehlo);
        if (cases[i].starttls_reply) {
            expect_sent("STARTTLS\r\n");
            feed(cases[i].starttls_reply);
        }
        assert_int_equal(D.closed, cases[i].closed);
        assert_int_equal(D.starttls_calls, 0);
        if (cases[i].closed) {
            assert_int_equal(D.ci.why, cases[i].why);
            assert_int_equal(D.ci.code, cases[i].code);
            expect_sent("QUIT\r\n");
            assert_int_equal(D.idles, 0);   /* no mail in plaintext */
        } else {
            expect_sent("");
            assert_int_equal(D.idles, 1);
        }
    }
}

static void test_plaintext_after_starttls_same_chunk(void **state)
{
    start(SMTP_TLS_REQUIRE, NULL, NULL);
    greet("250-mx\r\n250 STARTTLS\r\n");
    expect_sent("STARTTLS\r\n");
    feed("220 ready\r\n250-injected\r\n250 PIPELINING\r\n");
    assert_true(D.closed);
    assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
    assert_string_equal(D.ci_text, "plaintext received after STARTTLS reply");
    assert_int_equal(D.starttls_calls, 0);
    assert_null(strstr(D.ci_transcript, "injected"));
    expect_sent("");
    smtp_session_tls_done(D.s, 1, "TLSv1.3", "X");   /* too late: inert */
    expect_sent("");
    assert_null(smtp_session_tls(D.s));
}

static void test_plaintext_after_starttls_later_chunk(void **state)
{
    static const char *const extra[] = {"250 injected\r\n", "2", "\r\n"};
    for (size_t i = 0; i < N_ELEMS(extra); i++) {
        teardown(NULL);
        setup(NULL);
        start(SMTP_TLS_MAY, NULL, NULL);
        greet("250-mx\r\n250 STARTTLS\r\n");
        expect_sent("STARTTLS\r\n");
        feed("220 ready\r\n");
        assert_int_equal(D.starttls_calls, 1);
        assert_false(D.closed);
        feed(extra[i]);
        assert_true(D.closed);
        assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
        assert_null(strstr(D.ci_transcript, "injected"));
        expect_sent("");
    }
    /* A partial line in the same chunk as the 220 is just as bad. */
    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_MAY, NULL, NULL);
    greet("250-mx\r\n250 STARTTLS\r\n");
    feed("220 ready\r\n2");
    assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
    assert_int_equal(D.starttls_calls, 0);
}

static void test_tls_handshake_failed(void **state)
{
    start(SMTP_TLS_MAY, NULL, NULL);
    greet("250-mx\r\n250 STARTTLS\r\n");
    feed("220 ready\r\n");
    expect_sent("STARTTLS\r\n");
    smtp_session_tls_done(D.s, 0, NULL, NULL);
    assert_true(D.closed);
    assert_int_equal(D.ci.why, SMTP_FAIL_TLS);
    expect_sent("");   /* no plaintext QUIT on a broken TLS stream */
}

/* ---- AUTH ---- */

static void test_auth_plain_masked(void **state)
{
    start(SMTP_TLS_NONE, "user", "secret");
    greet("250-mx\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n");
    expect_sent("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_int_equal(D.idles, 0);
    feed("235 2.7.0 ok\r\n");
    assert_int_equal(D.idles, 1);
    smtp_session_quit(D.s);
    feed("221 bye\r\n");
    assert_int_equal(D.ci.why, SMTP_CLOSED_OK);
    assert_non_null(strstr(D.ci_transcript, "> AUTH PLAIN ****\n< 235 2.7.0 ok\n"));
    assert_null(strstr(D.ci_transcript, "AHVz"));
    assert_null(strstr(D.ci_transcript, "secret"));
}

static void test_auth_login_masked(void **state)
{
    start(SMTP_TLS_NONE, "user", "secret");
    greet("250-mx\r\n250 AUTH=LOGIN\r\n");
    expect_sent("AUTH LOGIN\r\n");
    feed("334 VXNlcm5hbWU6\r\n");
    expect_sent("dXNlcg==\r\n");
    feed("334 UGFzc3dvcmQ6\r\n");
    expect_sent("c2VjcmV0\r\n");
    feed("235 ok\r\n");
    assert_int_equal(D.idles, 1);
    smtp_session_timeout(D.s);   /* idle timer of the loop */
    assert_int_equal(D.ci.why, SMTP_FAIL_TIMEOUT);
    assert_non_null(strstr(D.ci_transcript, "> AUTH LOGIN\n< 334 VXNlcm5hbWU6\n> ****\n"
                                            "< 334 UGFzc3dvcmQ6\n> ****\n"));
    assert_null(strstr(D.ci_transcript, "dXNlcg"));
    assert_null(strstr(D.ci_transcript, "c2VjcmV0"));
}

static void test_auth_failures(void **state)
{
    start(SMTP_TLS_NONE, "user", "secret");
    greet("250-mx\r\n250 AUTH CRAM-MD5\r\n");
    assert_int_equal(D.ci.why, SMTP_FAIL_REPLY);
    assert_int_equal(D.ci.code, 0);
    assert_string_equal(D.ci_text, "AUTH not offered");
    expect_sent("QUIT\r\n");

    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_NONE, "user", "secret");
    greet("250-mx\r\n250 AUTH PLAIN\r\n");
    feed("535 5.7.8 bad credentials\r\n");
    assert_int_equal(D.ci.why, SMTP_FAIL_REPLY);
    assert_int_equal(D.ci.code, 535);
    assert_string_equal(D.ci_enh, "5.7.8");
    assert_int_equal(D.idles, 0);

    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_NONE, "user", "secret");
    greet("250-mx\r\n250 AUTH LOGIN\r\n");
    feed("334 VXNlcm5hbWU6\r\n");
    feed("535 no\r\n");
    assert_int_equal(D.ci.why, SMTP_FAIL_REPLY);
    assert_int_equal(D.ci.code, 535);
}

/* ---- transactions ---- */

static void test_one_of_three_rejected(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", THREE, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    drain();
    feed("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go\r\n");
    assert_int_equal(D.nres, 1);
    expect_res(1, SMTP_BOUNCED, 550, "5.1.1");
    assert_string_equal(res_of(1)->text, "5.1.1 no such user");
    feed("250 2.0.0 ok\r\n");
    expect_res(0, SMTP_DELIVERED, 250, "2.0.0");
    expect_res(2, SMTP_DELIVERED, 250, "2.0.0");
    assert_int_equal(smtp_session_transactions(D.s), 1);
    all_have_one_result(e);
}

static void test_all_rejected_then_354(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "secret content\r\n");
    smtp_session_submit(D.s, e);
    drain();
    buf_reset(&D.sent);
    feed("250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n354 go\r\n");
    expect_sent(".\r\n");   /* RFC 2920 3.1: no content */
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_DONE);
    feed("554 5.5.0 no valid recipients\r\n");   /* ignored */
    expect_res(0, SMTP_BOUNCED, 550, "5.1.1");
    expect_res(1, SMTP_BOUNCED, 550, "5.1.1");
    assert_int_equal(D.idles, 2);
    assert_false(D.closed);
    all_have_one_result(e);

    /* The usual answer: 554 to DATA. */
    smtp_envelope *e2 = env(1, "a@x.example", ONE, NULL, "x\r\n");
    memset(D.count, 0, sizeof D.count);
    D.nres = 0;
    smtp_session_submit(D.s, e2);
    drain();
    feed("250 ok\r\n250 ok\r\n550 no\r\n554 no valid recipients\r\n");
    expect_res(0, SMTP_BOUNCED, 550, "");
    assert_int_equal(D.idles, 3);
}

static void test_lockstep_all_rejected_no_data(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PLAIN);
    smtp_envelope *e = env(0, "a@x.example", ONE, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example>\r\n");
    feed("250 ok\r\n");
    expect_sent("RCPT TO:<b@y.example>\r\n");
    feed("550 5.1.1 unknown\r\n");
    expect_sent("");   /* no DATA without a recipient */
    expect_res(0, SMTP_BOUNCED, 550, "5.1.1");
    assert_int_equal(D.idles, 2);
}

static void test_mail_451(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "x\r\n");
    smtp_envelope *e2 = env(1, "a@x.example", ONE, NULL, "y\r\n");
    smtp_session_submit(D.s, e);
    drain();
    buf_reset(&D.sent);
    feed("451 4.3.0 try later\r\n");
    expect_res(0, SMTP_DEFERRED, 451, "4.3.0");
    expect_res(1, SMTP_DEFERRED, 451, "4.3.0");
    assert_int_equal(D.idles, 1);   /* the RCPT and DATA replies are still due */
    feed("503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n");
    feed("503 5.5.1 need MAIL\r\n");
    assert_int_equal(D.idles, 2);
    expect_sent("");
    memset(D.count, 0, sizeof D.count);
    D.nres = 0;
    smtp_session_submit(D.s, e2);
    expect_sent("RSET\r\nMAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");

    /* Lock-step: nothing after MAIL's refusal. */
    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PLAIN);
    e = env(0, "a@x.example", TWO, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example>\r\n");
    feed("553 5.1.8 bad sender\r\n");
    expect_sent("");
    expect_res(0, SMTP_BOUNCED, 553, "5.1.8");
    expect_res(1, SMTP_BOUNCED, 553, "5.1.8");
    assert_int_equal(D.idles, 2);
    assert_int_equal(smtp_session_transactions(D.s), 1);
}

static void test_greylist_451_at_rcpt(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    drain();
    feed("250 ok\r\n451 4.7.1 greylisted, try again\r\n250 ok\r\n354 go\r\n");
    feed("250 ok\r\n");
    expect_res(0, SMTP_DEFERRED, 451, "4.7.1");
    expect_res(1, SMTP_DELIVERED, 250, "");
    all_have_one_result(e);
}

static void test_data_554_and_dot_452(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "x\r\n");
    smtp_envelope *e2 = env(1, "a@x.example", TWO, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    drain();
    feed("250 ok\r\n250 ok\r\n550 no\r\n554 5.7.1 policy\r\n");
    expect_res(0, SMTP_BOUNCED, 554, "5.7.1");
    expect_res(1, SMTP_BOUNCED, 550, "");
    memset(D.count, 0, sizeof D.count);
    D.nres = 0;
    buf_reset(&D.sent);
    smtp_session_submit(D.s, e2);
    drain();
    feed("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    feed("452 4.3.1 insufficient storage\r\n");
    expect_res(0, SMTP_DEFERRED, 452, "4.3.1");
    expect_res(1, SMTP_DEFERRED, 452, "4.3.1");
    assert_int_equal(smtp_session_transactions(D.s), 2);
    feed("");
    all_have_one_result(e2);
}

/* The reference: dot-stuff a whole message at once and terminate it. */
static char *stuffed(const char *head, const char *body, size_t bl, size_t *outlen)
{
    size_t hl = head ? strlen(head) : 0, n = hl + bl;
    char *src = malloc(n + 1), *out = malloc(2 * n + 8);
    memcpy(src, head ? head : "", hl);
    memcpy(src + hl, body, bl);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '.' && (i == 0 || src[i - 1] == '\n'))
            out[o++] = '.';
        out[o++] = src[i];
    }
    if (n && !(n >= 2 && src[n - 2] == '\r' && src[n - 1] == '\n')) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    o += 3;
    free(src);
    *outlen = o;
    return out;
}

static size_t hl_of(const char *h) { return h ? strlen(h) : 0; }

static void send_message(const char *head, const char *body, size_t bl)
{
    smtp_envelope *e = env(0, "a@x.example", ONE, head, body);
    e->body_len = bl;
    smtp_session_submit(D.s, e);
    drain();
    buf_reset(&D.sent);
    D.chunks = 0;
    D.max_chunk = 0;
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    size_t wl;
    char *want = stuffed(head, body, bl, &wl);
    assert_int_equal(D.sent.len, wl);
    assert_memory_equal(D.sent.data, want, wl);
    assert_true(D.chunks >= (hl_of(head) + bl) / (64 * 1024));   /* lazily, chunk by chunk */
    assert_true(D.max_chunk <= 2 * 64 * 1024);
    free(want);
    buf_reset(&D.sent);
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_DONE);
    feed("250 ok\r\n");
    expect_res(0, SMTP_DELIVERED, 250, "");
    memset(D.count, 0, sizeof D.count);
    D.nres = 0;
}

static void test_dot_stuffing_table(void **state)
{
    static const struct {
        const char *head, *body, *want;
    } cases[] = {
        {"X: 1\r\n\r\n", ".start\r\nmid\r\n..two\r\n.\r\nend",
         "X: 1\r\n\r\n..start\r\nmid\r\n...two\r\n..\r\nend\r\n.\r\n"},
        {"A: 1\r\n.B: 2\r\n\r\n", "x\r\n", "A: 1\r\n..B: 2\r\n\r\nx\r\n.\r\n"},
        {".A: 1\r\n", ".\r\n", "..A: 1\r\n..\r\n.\r\n"},
        {"A: 1\r\n", "", "A: 1\r\n.\r\n"},
        {NULL, "", ".\r\n"},
        {"A: 1", ".x", "A: 1.x\r\n.\r\n"},   /* no line start at the boundary */
        {"A: 1\r\n\r", "\n.x\r\n", "A: 1\r\n\r\n..x\r\n.\r\n"},
        {NULL, "a.\r\n.\r", "a.\r\n..\r\r\n.\r\n"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        teardown(NULL);
        setup(NULL);
        start(SMTP_TLS_NONE, NULL, NULL);
        greet(EHLO_PIPE);
        smtp_envelope *e = env(0, "a@x.example", ONE, cases[i].head, cases[i].body);
        smtp_session_submit(D.s, e);
        drain();
        buf_reset(&D.sent);
        feed("250 ok\r\n250 ok\r\n354 go\r\n");
        expect_sent(cases[i].want);
        feed("250 ok\r\n");
        expect_res(0, SMTP_DELIVERED, 250, "");
    }
}

static void test_dot_stuffing_large_body(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    const char *head = "Subject: big\r\n\r\n";
    size_t hl = strlen(head);
    /* Lines of 78 octets, with "." lines put exactly at and around the 64 KiB boundaries of
     * the source (head + body), and a CRLF split across one. */
    size_t bl = 300 * 1024;
    char *body = calloc(1, bl + 1);
    for (size_t i = 0; i < bl; i++)
        body[i] = (char)('a' + i % 26);
    for (size_t i = 76; i + 1 < bl; i += 78) {
        body[i] = '\r';
        body[i + 1] = '\n';
    }
    static const size_t at[] = {65536, 131072 - 1, 196608 + 1, 262144 - 2};
    for (size_t k = 0; k < N_ELEMS(at); k++) {
        size_t b = at[k] - hl;   /* offset in the body of the source offset */
        body[b - 2] = '\r';
        body[b - 1] = '\n';
        body[b] = '.';
    }
    body[131072 * 2 - hl - 1] = '\r';   /* CR ends a chunk, LF starts the next */
    body[131072 * 2 - hl] = '\n';
    body[131072 * 2 - hl + 1] = '.';
    body[bl - 2] = 'z';   /* no final CRLF */
    body[bl - 1] = '.';
    send_message(head, body, bl);
    free(body);
    (void)state;
}

static void test_dot_stuffing_chunks_bounded(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    size_t bl = 200 * 1024;
    char *body = calloc(1, bl + 1);
    for (size_t i = 0; i + 2 < bl; i += 3)   /* the worst case: every line is "." */
        memcpy(body + i, ".\r\n", 3);
    bl -= bl % 3;
    smtp_envelope *e = env(0, "a@x.example", ONE, NULL, body);
    e->body_len = bl;
    smtp_session_submit(D.s, e);
    drain();
    D.chunks = 0;
    D.max_chunk = 0;
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    assert_true(D.chunks >= 4);
    assert_true(D.max_chunk <= 2 * 64 * 1024);
    free(body);
}

/* ---- local decisions ---- */

static void test_size_too_big(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet("250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
    static char big[201];
    memset(big, 'x', 200);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, big);
    assert_int_equal(smtp_session_submit(D.s, e), 0);
    expect_sent("");
    expect_res(0, SMTP_BOUNCED, 0, "5.3.4");
    expect_res(1, SMTP_BOUNCED, 0, "5.3.4");
    assert_non_null(strstr(res_of(0)->text, "SIZE"));
    assert_int_equal(D.idles, 2);   /* idle again without sending anything */
    assert_int_equal(smtp_session_transactions(D.s), 0);
    /* SIZE 0: no limit announced. */
    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_NONE, NULL, NULL);
    greet("250-mx\r\n250 SIZE\r\n");
    e = env(0, "a@x.example", ONE, NULL, big);
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example> SIZE=200\r\n");
}

static void test_smtputf8(void **state)
{
    static const char *const R[] = {"b@y.example", "ü@y.example", NULL};
    /* Server offers it: the parameter goes on MAIL. */
    start(SMTP_TLS_NONE, NULL, NULL);
    greet("250-mx\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");
    smtp_envelope *e = env(0, "a@x.example", R, NULL, "x\r\n");
    RC[0][1].smtputf8 = 1;
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<b@y.example>\r\n"
                "RCPT TO:<ü@y.example>\r\nDATA\r\n");
    assert_int_equal(D.nres, 0);

    /* Server does not: that recipient bounces 5.6.7, the other goes without the parameter. */
    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    e = env(0, "a@x.example", R, NULL, "x\r\n");
    RC[0][1].smtputf8 = 1;
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");
    expect_res(1, SMTP_BOUNCED, 0, "5.6.7");
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    feed("250 ok\r\n");
    expect_res(0, SMTP_DELIVERED, 250, "");
    all_have_one_result(e);

    /* A sender needing it: everyone bounces 5.6.7. */
    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    e = env(0, "ä@x.example", R, NULL, "x\r\n");
    e->smtputf8 = 1;
    smtp_session_submit(D.s, e);
    expect_sent("");
    expect_res(0, SMTP_BOUNCED, 0, "5.6.7");
    expect_res(1, SMTP_BOUNCED, 0, "5.6.7");
    assert_int_equal(D.idles, 2);
}

static void test_invalid_addresses(void **state)
{
    static char longaddr[600];
    memset(longaddr, 'a', 513);
    memcpy(longaddr + 505, "@y.example", 10);   /* 515 octets */
    static const char *const R[] = {"b@y.example\r\nRSET", "c@y.example", "<d@y.example>",
                                    "e@y\n.example", longaddr, "f@y.example\rX", NULL};
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", R, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<c@y.example>\r\nDATA\r\n");
    for (int i = 0; i < 6; i++)
        if (i != 1)
            expect_res(i, SMTP_BOUNCED, 0, "5.1.3");
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    feed("250 ok\r\n");
    expect_res(1, SMTP_DELIVERED, 250, "");
    all_have_one_result(e);

    static const char *const bad_from[] = {"a@x\r\nRCPT TO:<z@z>", "a>@x", "a\n@x"};
    for (size_t k = 0; k < N_ELEMS(bad_from); k++) {
        teardown(NULL);
        setup(NULL);
        start(SMTP_TLS_NONE, NULL, NULL);
        greet(EHLO_PIPE);
        e = env(0, bad_from[k], TWO, NULL, "x\r\n");
        smtp_session_submit(D.s, e);
        expect_sent("");
        expect_res(0, SMTP_BOUNCED, 0, "5.1.3");
        expect_res(1, SMTP_BOUNCED, 0, "5.1.3");
    }
}

/* ---- timeouts, EOF ---- */

typedef enum { TO_TIMEOUT, TO_EOF } ending;

/* Drives a pipelined session to a point (number of scripted steps), then ends it. */
static void end_at(int step, ending how, smtp_phase want_phase, smtp_fail want_why,
                   const char *want_text)
{
    setup(NULL);
    start(SMTP_TLS_MAY, NULL, NULL);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "hello\r\n");
    D.queue[D.nq++] = e;
    static const char *const script[] = {
        "220 mx\r\n", "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "220 go\r\n", NULL,
        "250-mx\r\n250 PIPELINING\r\n", "250 ok\r\n250 ok\r\n", "250 ok\r\n", "354 go\r\n",
    };
    int submitted = 0;
    for (int i = 0; i < step; i++) {
        if (script[i])
            smtp_session_input(D.s, script[i], strlen(script[i]));
        else
            smtp_session_tls_done(D.s, 1, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
        if (i == 7)
            break;   /* leave the message data unwritten: DATA_BLOCK */
        drain();
    }
    submitted = D.qi;
    if (step == 9) {   /* data written, waiting for the final reply */
        drain();
    }
    assert_int_equal(smtp_session_phase(D.s), want_phase);
    if (how == TO_TIMEOUT)
        smtp_session_timeout(D.s);
    else
        smtp_session_eof(D.s, "connection reset");
    assert_true(D.closed);
    assert_int_equal(D.ci.why, want_why);
    assert_string_equal(D.ci_text, want_text);
    if (submitted) {
        for (int i = 0; i < 2; i++) {
            expect_res(i, SMTP_DEFERRED, 0, "");
            assert_string_equal(res_of(i)->text, want_text);
        }
        all_have_one_result(e);
    }
    smtp_session_timeout(D.s);   /* once only */
    teardown(NULL);
}

static void test_timeouts_each_phase(void **state)
{
    end_at(0, TO_TIMEOUT, SMTP_PHASE_GREETING, SMTP_FAIL_TIMEOUT, "timeout waiting for greeting");
    end_at(1, TO_TIMEOUT, SMTP_PHASE_COMMAND, SMTP_FAIL_TIMEOUT, "timeout waiting for command");
    end_at(2, TO_TIMEOUT, SMTP_PHASE_COMMAND, SMTP_FAIL_TIMEOUT, "timeout waiting for command");
    end_at(3, TO_TIMEOUT, SMTP_PHASE_TLS, SMTP_FAIL_TIMEOUT, "timeout waiting for tls");
    end_at(5, TO_TIMEOUT, SMTP_PHASE_COMMAND, SMTP_FAIL_TIMEOUT, "timeout waiting for command");
    end_at(6, TO_TIMEOUT, SMTP_PHASE_COMMAND, SMTP_FAIL_TIMEOUT, "timeout waiting for command");
    end_at(7, TO_TIMEOUT, SMTP_PHASE_DATA_INIT, SMTP_FAIL_TIMEOUT,
           "timeout waiting for data_init");
    end_at(8, TO_TIMEOUT, SMTP_PHASE_DATA_BLOCK, SMTP_FAIL_TIMEOUT,
           "timeout waiting for data_block");
    end_at(9, TO_TIMEOUT, SMTP_PHASE_DATA_DONE, SMTP_FAIL_TIMEOUT,
           "timeout waiting for data_done");
    setup(NULL);   /* teardown of the group frees D.s */
}

static void test_eof_each_phase(void **state)
{
    end_at(0, TO_EOF, SMTP_PHASE_GREETING, SMTP_FAIL_CONN,
           "connection closed during greeting: connection reset");
    end_at(3, TO_EOF, SMTP_PHASE_TLS, SMTP_FAIL_CONN,
           "connection closed during tls: connection reset");
    end_at(7, TO_EOF, SMTP_PHASE_DATA_INIT, SMTP_FAIL_CONN,
           "connection closed during data_init: connection reset");
    end_at(8, TO_EOF, SMTP_PHASE_DATA_BLOCK, SMTP_FAIL_CONN,
           "connection closed during data_block: connection reset");
    end_at(9, TO_EOF, SMTP_PHASE_DATA_DONE, SMTP_FAIL_CONN,
           "connection closed during data_done: connection reset");
    setup(NULL);
}

static void test_quit_then_eof_or_timeout(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_session_quit(D.s);
    expect_sent("QUIT\r\n");
    assert_false(smtp_session_idle(D.s));
    smtp_session_eof(D.s, NULL);
    assert_int_equal(D.ci.why, SMTP_CLOSED_OK);

    teardown(NULL);
    setup(NULL);
    D.quit_when_done = 1;
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    expect_sent("QUIT\r\n");
    smtp_session_timeout(D.s);
    assert_int_equal(D.ci.why, SMTP_CLOSED_OK);
}

static void test_reply_during_data_block(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    drain();
    smtp_session_input(D.s, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 32);
    assert_int_equal(smtp_session_phase(D.s), SMTP_PHASE_DATA_BLOCK);
    smtp_session_input(D.s, "554 5.0.0 go away\r\n", 19);
    assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
    expect_res(0, SMTP_BOUNCED, 554, "5.0.0");
    expect_res(1, SMTP_BOUNCED, 554, "5.0.0");
}

/* ---- reuse ---- */

static void test_reuse_with_rset(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    static const char *const R2[] = {"x@y.example", NULL};
    smtp_envelope *e1 = env(0, "a@x.example", ONE, NULL, "1\r\n");
    smtp_envelope *e2 = env(1, "a@x.example", R2, NULL, "2\r\n");
    IDX[0] = 0;
    static int idx1 = 1;
    RC[1][0].ctx = &idx1;
    D.queue[D.nq++] = e1;
    D.queue[D.nq++] = e2;
    D.quit_when_done = 1;
    greet(EHLO_PIPE);
    expect_sent("MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    expect_sent("1\r\n.\r\n");
    feed("250 ok 1\r\n");
    expect_sent("RSET\r\nMAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<x@y.example>\r\nDATA\r\n");
    assert_int_equal(smtp_session_transactions(D.s), 1);
    feed("250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    expect_sent("2\r\n.\r\n");
    feed("250 ok 2\r\n");
    assert_int_equal(smtp_session_transactions(D.s), 2);
    expect_sent("QUIT\r\n");
    expect_res(0, SMTP_DELIVERED, 250, "");
    expect_res(1, SMTP_DELIVERED, 250, "");
    /* The second transaction's transcript starts at its RSET. */
    assert_true(strncmp(D.res[1].transcript, "> RSET\n< 250 reset\n", 19) == 0 ||
                strncmp(D.res[1].transcript, "> RSET\n> MAIL", 13) == 0);
    assert_null(strstr(D.res[1].transcript, "EHLO"));
    assert_non_null(strstr(D.res[0].transcript, "EHLO"));
    feed("221 bye\r\n");
    assert_int_equal(D.ci.why, SMTP_CLOSED_OK);
}

static void test_reentrant_local_submits(void **state)
{
    /* on_idle submits envelopes that all settle locally, then quits: no recursion issue. */
    start(SMTP_TLS_NONE, NULL, NULL);
    static const char *const BAD[] = {"bad\r\n@y", NULL};
    static int idx[4] = {0, 1, 2, 3};
    for (int k = 0; k < 4; k++) {
        env(k, "a@x.example", BAD, NULL, "x\r\n");
        RC[k][0].ctx = &idx[k];
        D.queue[D.nq++] = &ENV[k];
    }
    D.quit_when_done = 1;
    greet(EHLO_PIPE);
    assert_int_equal(D.nres, 4);
    for (int k = 0; k < 4; k++)
        expect_res(k, SMTP_BOUNCED, 0, "5.1.3");
    assert_int_equal(D.idles, 5);
    expect_sent("QUIT\r\n");
}

/* ---- reply parsing ---- */

static void test_multiline_bytewise_and_bare_lf(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    const char *in = "220-mx.example\n220 hi\r\n";
    for (size_t i = 0; in[i]; i++)
        smtp_session_input(D.s, in + i, 1);
    expect_sent("EHLO client.example\r\n");
    in = "250-mx.example\r\n250-pipelining\r\n250-size  5000\r\n250 Smtputf8\r\n";
    for (size_t i = 0; in[i]; i++)
        smtp_session_input(D.s, in + i, 1);
    assert_int_equal(D.idles, 1);
    static const char *const R[] = {"ü@y.example", NULL};
    smtp_envelope *e = env(0, "a@x.example", R, NULL, "x\r\n");
    RC[0][0].smtputf8 = 1;
    smtp_session_submit(D.s, e);
    expect_sent("MAIL FROM:<a@x.example> SIZE=3 SMTPUTF8\r\nRCPT TO:<ü@y.example>\r\nDATA\r\n");
    feed("250 ok\r\n250-first\r\n250-second\r\n250 2.1.5 third\r\n354 go\r\n");
    feed("250 done\r\n");
    expect_res(0, SMTP_DELIVERED, 250, "");
    smtp_session_quit(D.s);
    feed("221-a\r\n221\r\n");   /* a last line without text */
    assert_int_equal(D.ci.why, SMTP_CLOSED_OK);
    assert_string_equal(D.ci_text, "a\n");
}

static void test_reply_text_joined(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    feed("554-5.7.1 first line\r\n554-second\r\n554 third\r\n");
    assert_int_equal(D.ci.code, 554);
    assert_string_equal(D.ci_enh, "5.7.1");
    assert_string_equal(D.ci_text, "5.7.1 first line\nsecond\nthird");
}

static void test_enhanced_code_syntax(void **state)
{
    static const struct {
        const char *line, *enh;
    } cases[] = {
        {"554 5.1.1 x\r\n", "5.1.1"},        {"554 5.1.1\r\n", "5.1.1"},
        {"554 5.123.456 x\r\n", "5.123.456"}, {"554 5.1234.1 x\r\n", ""},
        {"554 5.1.1234 x\r\n", ""},          {"554 3.1.1 x\r\n", ""},
        {"554 5.1 x\r\n", ""},               {"554 5..1 x\r\n", ""},
        {"554 5.1.1x\r\n", ""},              {"554 x 5.1.1\r\n", ""},
        {"421 4.4.2 x\r\n", "4.4.2"},        {"554 2.0.0 x\r\n", "2.0.0"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        teardown(NULL);
        setup(NULL);
        start(SMTP_TLS_NONE, NULL, NULL);
        feed(cases[i].line);
        assert_true(D.closed);
        assert_string_equal(D.ci_enh, cases[i].enh);
    }
}

static void test_malformed_replies(void **state)
{
    static const char *const bad[] = {
        "2x0 hi\r\n", "600 no\r\n", "199 no\r\n", "250x\r\n", "25\r\n", "\r\n", "hello\r\n",
        "220-a\r\n250 b\r\n", "220-a\r\n2200 b\r\n", " 220 x\r\n",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        teardown(NULL);
        setup(NULL);
        start(SMTP_TLS_NONE, NULL, NULL);
        feed(bad[i]);
        assert_true(D.closed);
        assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
        expect_sent("");
    }
}

static void test_oversized_reply(void **state)
{
    D.p.max_reply_bytes = 100;
    start(SMTP_TLS_NONE, NULL, NULL);
    feed("220 mx\r\n");
    expect_sent("EHLO client.example\r\n");
    for (int i = 0; i < 10 && !D.closed; i++)
        feed("250-0123456789abcdef\r\n");   /* 22 bytes a line: the fifth passes 100 */
    assert_true(D.closed);
    assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
    assert_non_null(strstr(D.ci_text, "100"));
    assert_int_equal(D.idles, 0);

    /* One endless line, fed in pieces, with a transaction open: deferred. */
    teardown(NULL);
    setup(NULL);
    D.p.max_reply_bytes = 1000;
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    smtp_envelope *e = env(0, "a@x.example", TWO, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    drain();
    for (int i = 0; i < 100 && !D.closed; i++)
        feed("250 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(D.ci.why, SMTP_FAIL_PROTO);
    expect_res(0, SMTP_DEFERRED, 0, "");
    expect_res(1, SMTP_DEFERRED, 0, "");
    all_have_one_result(e);
}

static void test_unsolicited_reply_when_idle(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    greet(EHLO_PIPE);
    feed("421 4.4.2 idle too long\r\n");
    assert_int_equal(D.ci.why, SMTP_FAIL_REPLY);
    assert_int_equal(D.ci.code, 421);
}

static void test_transcript_bounded(void **state)
{
    D.p.max_transcript = 200;
    start(SMTP_TLS_NONE, NULL, NULL);
    greet("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"
          "250-ENHANCEDSTATUSCODES\r\n250-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\r\n"
          "250 DSN\r\n");
    smtp_envelope *e = env(0, "a@x.example", ONE, NULL, "x\r\n");
    smtp_session_submit(D.s, e);
    drain();
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    feed("250 ok\r\n");
    const char *t = res_of(0)->transcript;
    assert_true(strlen(t) <= 200);
    assert_non_null(strstr(t, "[transcript truncated]"));
    assert_non_null(strstr(t, "< 220 mx.example ESMTP\n"));
}


static void test_ehlo_421_and_require_after_helo(void **state)
{
    start(SMTP_TLS_MAY, NULL, NULL);
    greet("421 4.3.2 shutting down\r\n");
    assert_int_equal(D.ci.why, SMTP_FAIL_REPLY);
    assert_int_equal(D.ci.code, 421);
    expect_sent("QUIT\r\n");

    /* EHLO refused, HELO accepted: no STARTTLS possible, so REQUIRE fails. */
    teardown(NULL);
    setup(NULL);
    start(SMTP_TLS_REQUIRE, NULL, NULL);
    greet("500 what\r\n");
    expect_sent("HELO client.example\r\n");
    feed("250 ok\r\n");
    assert_int_equal(D.ci.why, SMTP_FAIL_TLS);
    assert_int_equal(D.idles, 0);
}

static void test_busy_calls_ignored(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    smtp_envelope *e = env(0, "a@x.example", ONE, NULL, "x\r\n");
    assert_int_equal(smtp_session_submit(D.s, e), -1);   /* before the greeting */
    smtp_session_quit(D.s);
    expect_sent("");
    smtp_session_tls_done(D.s, 1, "TLSv1.3", "X");      /* not asked for */
    assert_null(smtp_session_tls(D.s));
    greet(EHLO_PLAIN);
    assert_true(smtp_session_idle(D.s));
    assert_int_equal(smtp_session_submit(D.s, e), 0);
    assert_false(smtp_session_idle(D.s));
    smtp_session_quit(D.s);   /* not idle: ignored */
    expect_sent("MAIL FROM:<a@x.example>\r\n");
    assert_int_equal(D.nres, 0);
}

static void test_control_bytes_in_replies(void **state)
{
    start(SMTP_TLS_NONE, NULL, NULL);
    static const char in[] = "554 no\0pe\x1b[31m\r\n";
    smtp_session_input(D.s, in, sizeof in - 1);
    assert_int_equal(D.ci.code, 554);
    assert_string_equal(D.ci_text, "no?pe?[31m");
    assert_string_equal(D.ci_transcript, "< 554 no?pe?[31m\n> QUIT\n");
}

static void test_phase_names(void **state)
{
    assert_string_equal(smtp_phase_name(SMTP_PHASE_GREETING), "greeting");
    assert_string_equal(smtp_phase_name(SMTP_PHASE_DATA_DONE), "data_done");
    assert_string_equal(smtp_phase_name(SMTP_PHASE_IDLE), "idle");
    assert_string_equal(smtp_phase_name(SMTP_PHASE_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_pipelined_happy_path),
        T(test_lockstep_without_pipelining),
        T(test_ehlo_502_falls_back_to_helo),
        T(test_greeting_refused),
        T(test_starttls_may_and_reehlo),
        T(test_starttls_in_callback),
        T(test_starttls_policies),
        T(test_plaintext_after_starttls_same_chunk),
        T(test_plaintext_after_starttls_later_chunk),
        T(test_tls_handshake_failed),
        T(test_auth_plain_masked),
        T(test_auth_login_masked),
        T(test_auth_failures),
        T(test_one_of_three_rejected),
        T(test_all_rejected_then_354),
        T(test_lockstep_all_rejected_no_data),
        T(test_mail_451),
        T(test_greylist_451_at_rcpt),
        T(test_data_554_and_dot_452),
        T(test_dot_stuffing_table),
        T(test_dot_stuffing_large_body),
        T(test_dot_stuffing_chunks_bounded),
        T(test_size_too_big),
        T(test_smtputf8),
        T(test_invalid_addresses),
        T(test_timeouts_each_phase),
        T(test_eof_each_phase),
        T(test_quit_then_eof_or_timeout),
        T(test_reply_during_data_block),
        T(test_reuse_with_rset),
        T(test_reentrant_local_submits),
        T(test_multiline_bytewise_and_bare_lf),
        T(test_reply_text_joined),
        T(test_enhanced_code_syntax),
        T(test_malformed_replies),
        T(test_oversized_reply),
        T(test_unsolicited_reply_when_idle),
        T(test_transcript_bounded),
        T(test_ehlo_421_and_require_after_helo),
        T(test_busy_calls_ignored),
        T(test_control_bytes_in_replies),
        T(test_phase_names),
#undef T
    };
    return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
