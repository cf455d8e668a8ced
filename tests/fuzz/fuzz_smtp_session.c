/* Fuzz target: smtp/session.c driven as the delivery loop would, with the server's bytes
 * from the fuzzer. Input: two option bytes (TLS mode, AUTH, recipients and their SMTPUTF8
 * flags, envelopes, write size), then chunks separated by 0xff; a chunk "\xfe<op>" is a
 * loop event instead of bytes (t/f: TLS handshake ok/failed, T: timeout, E: EOF, Q: quit).
 * Invariants: every submitted recipient gets exactly one result, all before on_closed,
 * which comes once; nothing is parsed after STARTTLS's 220 before the handshake; after
 * on_closed nothing but a best-effort QUIT is written; transcripts stay within bounds and
 * never show the AUTH secret. */
#include "tests/fuzz/fuzz.h"

#include "smtp/session.h"

#include <string.h>

#define MAX_TRANSCRIPT 600
#define NR             4

typedef struct {
    smtp_session *s;
    smtp_envelope env[2];
    smtp_rcpt     rcpts[2][NR];
    int           count[2][NR];
    int           nenv, submitted, quit_when_done;
    int           closed, starttls_pending, starttls_calls;
    smtp_fail     why;
} fz;

static int is_ours(fz *f, const smtp_rcpt *r, int *e, int *i)
{
    for (int k = 0; k < f->nenv; k++)
        for (size_t j = 0; j < f->env[k].nrcpts; j++)
            if (&f->rcpts[k][j] == r) {
                *e = k;
                *i = (int)j;
                return 1;
            }
    return 0;
}

static void check_transcript(const char *t)
{
    CHECK(t != NULL);
    CHECK(strlen(t) <= MAX_TRANSCRIPT);
    /* Our own lines (the server may echo anything) never carry the base64 secrets. */
    for (const char *l = t; *l; ) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if (n >= 2 && l[0] == '>') {
            CHECK(memmem(l, n, "c2VjcmV0", 8) == NULL);   /* base64 of the password */
            CHECK(memmem(l, n, "dXNlcg", 6) == NULL);     /* ... of the user name */
            CHECK(memmem(l, n, "AHVzZXIAc2VjcmV0", 16) == NULL);
        }
        l += n + (nl != NULL);
    }
}

static void on_result(void *ctx, const smtp_rcpt_result *r)
{
    fz *f = ctx;
    int e, i;
    CHECK(!f->closed);
    CHECK(is_ours(f, r->rcpt, &e, &i));
    CHECK(e < f->submitted);
    CHECK(++f->count[e][i] == 1);
    CHECK(r->verdict == SMTP_DELIVERED || r->verdict == SMTP_DEFERRED ||
          r->verdict == SMTP_BOUNCED);
    CHECK(r->verdict != SMTP_DELIVERED || r->code / 100 == 2);
    CHECK(r->enhanced != NULL && strlen(r->enhanced) < 16);
    CHECK(r->text != NULL);
    check_transcript(r->transcript);
}

static void on_idle(void *ctx, smtp_session *s)
{
    fz *f = ctx;
    CHECK(!f->closed);
    CHECK(smtp_session_idle(s));
    if (f->submitted < f->nenv) {
        CHECK(smtp_session_submit(s, &f->env[f->submitted++]) == 0);
        return;
    }
    if (f->quit_when_done)
        smtp_session_quit(s);
}

static void on_closed(void *ctx, const smtp_close_info *info)
{
    fz *f = ctx;
    CHECK(!f->closed);
    f->closed = 1;
    f->why = info->why;
    for (int k = 0; k < f->submitted; k++)
        for (size_t j = 0; j < f->env[k].nrcpts; j++)
            CHECK(f->count[k][j] == 1);
    CHECK(info->text != NULL && info->enhanced != NULL);
    check_transcript(info->transcript);
}

static void on_starttls(void *ctx, smtp_session *s)
{
    fz *f = ctx;
    CHECK(!f->starttls_pending);
    CHECK(smtp_session_phase(s) == SMTP_PHASE_TLS);
    f->starttls_pending = 1;
    f->starttls_calls++;
}

static void drain(fz *f, size_t step)
{
    for (int guard = 0; guard < 100000; guard++) {
        const char *p;
        size_t n = smtp_session_output(f->s, &p);
        if (n == 0)
            return;
        CHECK(p != NULL);
        if (f->closed)   /* only what is left of the best-effort QUIT */
            CHECK(n <= 6 && memcmp(p, &"QUIT\r\n"[6 - n], n) == 0);
        smtp_session_written(f->s, n < step ? n : step);
    }
    CHECK(0);   /* output never ends */
}

static const char *const ADDRS[NR] = {"b@y.example", "c@y.example", "d\r\nRSET@y.example",
                                       "\xc3\xbc@y.example"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static fz f;
    memset(&f, 0, sizeof f);
    uint8_t o1 = data[0], o2 = data[1];
    data += 2;
    size -= 2;

    smtp_session_params p = {
        .helo_name = "client.example",
        .tls = (smtp_tls_mode)(o1 % 3),
        .auth_user = (o1 & 4) ? "user" : NULL,
        .auth_pass = (o1 & 4) ? "secret" : NULL,
        .max_reply_bytes = (o2 & 1) ? 256 : 0,
        .max_transcript = MAX_TRANSCRIPT,
    };
    static const char head[] = "Subject: x\r\n\r\n";
    static const char body[] = ".dot\r\nline\r\n..\r\n.\r\nend";
    f.nenv = 1 + ((o2 >> 1) & 1);
    for (int k = 0; k < f.nenv; k++) {
        size_t n = 1 + (size_t)((o1 >> 3) & 3);
        for (size_t j = 0; j < n; j++)
            f.rcpts[k][j] = (smtp_rcpt){ADDRS[j], j == 3 || ((o1 >> 5) & 1 && j == 0), NULL};
        f.env[k] = (smtp_envelope){(o1 & 0x40) ? "\xc3\xa4@x.example" : "a@x.example",
                                   (o1 & 0x40) != 0, f.rcpts[k], n,
                                   (o2 & 4) ? head : NULL, (o2 & 4) ? sizeof head - 1 : 0,
                                   body, (o1 & 0x80) ? sizeof body - 1 : 0};
    }
    f.quit_when_done = (o2 >> 3) & 1;
    size_t step = 1 + (size_t)(o2 >> 4) * 3;

    smtp_session_events ev = {on_result, on_idle, on_closed, on_starttls};
    f.s = smtp_session_new(&p, &ev, &f);
    size_t i = 0;
    while (i <= size) {
        const uint8_t *end = memchr(data + i, 0xff, size - i);
        size_t n = end ? (size_t)(end - (data + i)) : size - i;
        const char *c = (const char *)data + i;
        i += n + 1;
        if (n == 2 && (uint8_t)c[0] == 0xfe) {
            switch (c[1]) {
            case 't':
            case 'f':
                smtp_session_tls_done(f.s, c[1] == 't', "TLSv1.3", "TLS_AES_128_GCM_SHA256");
                if (f.starttls_pending && !f.closed)
                    CHECK(c[1] == 't' && smtp_session_tls(f.s) != NULL);
                f.starttls_pending = 0;
                break;
            case 'T':
                smtp_session_timeout(f.s);
                CHECK(f.closed);
                break;
            case 'E':
                smtp_session_eof(f.s, "reset");
                CHECK(f.closed);
                break;
            case 'Q':
                smtp_session_quit(f.s);
                break;
            }
        } else if (n > 0) {
            int was_tls = f.starttls_pending && !f.closed;
            smtp_session_input(f.s, c, n);
            if (was_tls)   /* plaintext before the handshake: refused, never parsed */
                CHECK(f.closed && f.why == SMTP_FAIL_PROTO);
        }
        drain(&f, step);
        if (!end)
            break;
    }
    if (!f.closed)
        smtp_session_eof(f.s, "end of input");
    CHECK(f.closed);
    CHECK(smtp_session_closed(f.s));
    for (int k = 0; k < f.submitted; k++)
        for (size_t j = 0; j < f.env[k].nrcpts; j++)
            CHECK(f.count[k][j] == 1);
    drain(&f, step);
    smtp_session_free(f.s);
    return 0;
}
