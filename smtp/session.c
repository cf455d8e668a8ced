/* smtp/session.c - the client side of one SMTP session as a pure protocol machine (see
 * session.h for the contract). One table of states; every transition goes through
 * set_state(), which logs it. Replies are parsed incrementally into a bounded buffer and
 * dispatched to the handler of the current state. Commands are queued with explicit
 * lengths into a bounded output buffer; message data is produced lazily, one bounded chunk
 * of the source at a time, dot-stuffed across head/body and chunk boundaries.
 *
 * Choices the header leaves open:
 * - SIZE=<n> declares head_len + body_len (the undotted size; RFC 1870 asks for an
 *   estimate), and the local 5.3.4 check compares that same number with the peer's limit.
 * - Enhanced status codes are taken from the first line when they parse (RFC 3463 syntax);
 *   the reply text is kept whole (it still starts with the enhanced code).
 * - A timeout while waiting for the answer to QUIT closes with SMTP_CLOSED_OK, as EOF does.
 * - A reply arriving while message data is still being written (the peer gave up on the
 *   transaction) settles the accepted recipients with that reply, then closes with
 *   SMTP_FAIL_PROTO: the stream cannot be resynchronised.
 * - Addresses with CR, LF, '<', '>', any other control character, or over 512 octets are
 *   bounced locally (5.1.3) and never reach a command. */
#include "smtp/session.h"

#include "lib/buf.h"
#include "lib/log.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_REPLY      (64 * 1024)
#define DEFAULT_MAX_TRANSCRIPT (16 * 1024)
#define DATA_CHUNK             (64 * 1024)   /* source bytes of message data per chunk */
#define CMD_CHUNK              (16 * 1024)   /* soft bound on pipelined commands queued */
#define ADDR_MAX               512
#define ENH_MAX                16
#define TRUNC_MARK             "[transcript truncated]\n"

enum {
    EXT_STARTTLS = 1 << 0,
    EXT_PIPELINING = 1 << 1,
    EXT_SIZE = 1 << 2,
    EXT_SMTPUTF8 = 1 << 3,
    EXT_8BITMIME = 1 << 4,
    EXT_AUTH = 1 << 5,
    EXT_ENHANCED = 1 << 6,
};
enum { MECH_PLAIN = 1, MECH_LOGIN = 2 };

typedef enum {
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_TLS,
    ST_AUTH_PLAIN,
    ST_AUTH_LOGIN,        /* "AUTH LOGIN" sent, waiting for the user name challenge */
    ST_AUTH_LOGIN_USER,   /* user name sent, waiting for the password challenge */
    ST_AUTH_LOGIN_PASS,   /* password sent, waiting for 235 */
    ST_IDLE,
    ST_TXN,               /* RSET/MAIL/RCPT replies outstanding */
    ST_DATA_INIT,         /* next reply is DATA's */
    ST_DATA_BLOCK,
    ST_DATA_DONE,
    ST_DATA_DISCARD,      /* 354 without an accepted recipient: lone dot sent, reply ignored */
    ST_QUIT,
    ST_CLOSED,
    ST_COUNT
} state;

typedef enum { CMD_RSET, CMD_MAIL, CMD_RCPT, CMD_DATA } cmd_kind;
typedef struct {
    cmd_kind kind;
    size_t   rcpt;
} cmd;

/* Per-recipient progress within a transaction. */
enum { R_OPEN, R_LOCAL, R_ACCEPTED, R_DONE };

typedef struct {
    int    code;
    int    nlines;
    size_t bytes;             /* raw bytes of this reply so far, partial line included */
    char   enhanced[ENH_MAX];
    buf    text;              /* lines' text joined by "\n" */
    buf    line;              /* the partial line across input chunks */
} reply;

struct smtp_session {
    char               *helo, *user, *pass;
    smtp_tls_mode       tls;
    size_t              max_reply, max_transcript;
    smtp_session_events ev;
    void               *ctx;

    state    st;
    int      closed;
    reply    r;
    size_t   in_rest;         /* input bytes after the line being handled, same chunk */
    buf      out;
    size_t   out_off;
    buf      transcript;
    int      transcript_cut;

    unsigned           ext, mechs;
    unsigned long long size_max;
    int                tls_up;
    char               tls_desc[160];

    /* the open transaction */
    const smtp_envelope *env;
    unsigned char       *rst;
    const char         **local_enh, **local_text;
    cmd                 *cmds;
    size_t               ncmds, next_send, send_limit, next_reply, naccepted;
    int                  mail_ok, pipelining, utf8_param;
    unsigned long long   msg_size;
    /* message data generation */
    size_t               src_pos, src_len;
    int                  line_start;
    char                 last2[2];

    unsigned transactions;
    int      in_idle_cb, idle_again;
};

typedef void (*reply_fn)(smtp_session *s);

static void on_greeting(smtp_session *s);
static void on_ehlo(smtp_session *s);
static void on_helo(smtp_session *s);
static void on_starttls_reply(smtp_session *s);
static void on_auth_plain(smtp_session *s);
static void on_auth_login(smtp_session *s);
static void on_auth_login_user(smtp_session *s);
static void on_auth_login_pass(smtp_session *s);
static void on_unsolicited(smtp_session *s);
static void on_txn_reply(smtp_session *s);
static void on_data_block_reply(smtp_session *s);
static void on_dot_reply(smtp_session *s);
static void on_discard_reply(smtp_session *s);
static void on_quit_reply(smtp_session *s);
static void on_nothing(smtp_session *s);

static const struct {
    const char *name;
    smtp_phase  phase;
    reply_fn    on_reply;
} states[ST_COUNT] = {
    [ST_GREETING] = {"greeting", SMTP_PHASE_GREETING, on_greeting},
    [ST_EHLO] = {"ehlo", SMTP_PHASE_COMMAND, on_ehlo},
    [ST_HELO] = {"helo", SMTP_PHASE_COMMAND, on_helo},
    [ST_STARTTLS] = {"starttls", SMTP_PHASE_COMMAND, on_starttls_reply},
    [ST_TLS] = {"tls", SMTP_PHASE_TLS, on_nothing},
    [ST_AUTH_PLAIN] = {"auth-plain", SMTP_PHASE_COMMAND, on_auth_plain},
    [ST_AUTH_LOGIN] = {"auth-login", SMTP_PHASE_COMMAND, on_auth_login},
    [ST_AUTH_LOGIN_USER] = {"auth-login-user", SMTP_PHASE_COMMAND, on_auth_login_user},
    [ST_AUTH_LOGIN_PASS] = {"auth-login-pass", SMTP_PHASE_COMMAND, on_auth_login_pass},
    [ST_IDLE] = {"idle", SMTP_PHASE_IDLE, on_unsolicited},
    [ST_TXN] = {"envelope", SMTP_PHASE_COMMAND, on_txn_reply},
    [ST_DATA_INIT] = {"data-init", SMTP_PHASE_DATA_INIT, on_txn_reply},
    [ST_DATA_BLOCK] = {"data-block", SMTP_PHASE_DATA_BLOCK, on_data_block_reply},
    [ST_DATA_DONE] = {"data-done", SMTP_PHASE_DATA_DONE, on_dot_reply},
    [ST_DATA_DISCARD] = {"data-discard", SMTP_PHASE_DATA_DONE, on_discard_reply},
    [ST_QUIT] = {"quit", SMTP_PHASE_COMMAND, on_quit_reply},
    [ST_CLOSED] = {"closed", SMTP_PHASE_IDLE, on_nothing},
};

static const char *const phase_names[SMTP_PHASE_COUNT] = {
    [SMTP_PHASE_GREETING] = "greeting",
    [SMTP_PHASE_COMMAND] = "command",
    [SMTP_PHASE_TLS] = "tls",
    [SMTP_PHASE_DATA_INIT] = "data_init",
    [SMTP_PHASE_DATA_BLOCK] = "data_block",
    [SMTP_PHASE_DATA_DONE] = "data_done",
    [SMTP_PHASE_IDLE] = "idle",
};

const char *smtp_phase_name(smtp_phase p)
{
    return (unsigned)p < SMTP_PHASE_COUNT ? phase_names[p] : "unknown";
}

static void set_state(smtp_session *s, state to)
{
    if (s->st == to)
        return;
    log_debug("smtp session %p: %s -> %s", (void *)s, states[s->st].name, states[to].name);
    s->st = to;
}

static const char *bstr(const buf *b) { return b->data ? b->data : ""; }

/* ---- transcript and output ---- */

static void sanitize(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            p[i] = '?';
    }
}

static void transcript_add(smtp_session *s, const char *prefix, const char *p, size_t n)
{
    if (s->transcript_cut)
        return;
    size_t pl = strlen(prefix), ml = sizeof TRUNC_MARK - 1;
    buf *t = &s->transcript;
    if (pl + n + 1 + ml > t->max - t->len) {
        buf_append(t, TRUNC_MARK, ml);   /* may not fit into a tiny bound: then just stop */
        s->transcript_cut = 1;
        return;
    }
    size_t at = t->len;
    buf_append(t, prefix, pl);
    buf_append(t, p, n);
    sanitize(t->data + at, pl + n);
    buf_append(t, "\n", 1);
}

static void transcript_reset(smtp_session *s)
{
    buf_reset(&s->transcript);
    s->transcript_cut = 0;
}

static void out_put(smtp_session *s, const char *p, size_t n)
{
    if (buf_append(&s->out, p, n) != 0)
        die("smtp session: output buffer bound exceeded");
}

/* Queues one command line; shown is what the transcript records (AUTH masks secrets). */
static void send_line(smtp_session *s, const char *p, size_t n, const char *shown, size_t shown_len)
{
    out_put(s, p, n);
    out_put(s, "\r\n", 2);
    transcript_add(s, "> ", shown, shown_len);
}

static void send_cmd(smtp_session *s, const char *p, size_t n) { send_line(s, p, n, p, n); }

static void send_cmdz(smtp_session *s, const char *z) { send_cmd(s, z, strlen(z)); }

static void b64_encode(buf *b, const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        if (buf_append(b, q, 4) != 0)
            die("smtp session: base64 bound exceeded");
    }
}

/* ---- results and closing ---- */

static smtp_verdict verdict_of(int code)
{
    if (code / 100 == 2)
        return SMTP_DELIVERED;
    return code / 100 == 5 ? SMTP_BOUNCED : SMTP_DEFERRED;
}

static void result(smtp_session *s, size_t i, smtp_verdict v, int code, const char *enh,
                   const char *text)
{
    if (!s->env || i >= s->env->nrcpts || s->rst[i] == R_DONE)
        return;
    s->rst[i] = R_DONE;
    smtp_rcpt_result r = {
        .rcpt = &s->env->rcpts[i],
        .verdict = v,
        .code = code,
        .enhanced = enh ? enh : "",
        .text = text ? text : "",
        .transcript = bstr(&s->transcript),
    };
    if (s->ev.on_result)
        s->ev.on_result(s->ctx, &r);
}

/* The current reply settles recipient i (or every recipient in state `which`). */
static void result_reply(smtp_session *s, size_t i, smtp_verdict v)
{
    result(s, i, v, s->r.code, s->r.enhanced, bstr(&s->r.text));
}

static void settle(smtp_session *s, int which, smtp_verdict v)
{
    for (size_t i = 0; s->env && i < s->env->nrcpts; i++)
        if (s->rst[i] == which)
            result_reply(s, i, v);
}

static void txn_free(smtp_session *s)
{
    free(s->rst);
    free(s->local_enh);
    free(s->local_text);
    free(s->cmds);
    s->rst = NULL;
    s->local_enh = s->local_text = NULL;
    s->cmds = NULL;
    s->env = NULL;
}

/* Ends the session once: open recipients are deferred with text, then on_closed. */
static void close_session(smtp_session *s, smtp_fail why, int code, const char *enh,
                          const char *text, int quit)
{
    if (s->closed)
        return;
    s->closed = 1;
    for (size_t i = 0; s->env && i < s->env->nrcpts; i++)
        result(s, i, SMTP_DEFERRED, 0, "", text);
    txn_free(s);
    buf_reset(&s->out);
    s->out_off = 0;
    if (quit)
        send_cmdz(s, "QUIT");
    set_state(s, ST_CLOSED);
    smtp_close_info info = {
        .why = why,
        .code = code,
        .enhanced = enh ? enh : "",
        .text = text ? text : "",
        .transcript = bstr(&s->transcript),
    };
    if (s->ev.on_closed)
        s->ev.on_closed(s->ctx, &info);
}

/* The current reply refuses the session (greeting, EHLO/HELO, AUTH, STARTTLS required). */
static void fail_reply(smtp_session *s, smtp_fail why)
{
    close_session(s, why, s->r.code, s->r.enhanced, bstr(&s->r.text), 1);
}

static void fail_proto(smtp_session *s, const char *text)
{
    close_session(s, SMTP_FAIL_PROTO, 0, "", text, 0);
}

/* on_idle, without recursion: a submit from inside on_idle that settles locally and goes
 * idle again makes the outer loop call on_idle once more. */
static void notify_idle(smtp_session *s)
{
    if (s->in_idle_cb) {
        s->idle_again = 1;
        return;
    }
    s->in_idle_cb = 1;
    do {
        s->idle_again = 0;
        if (s->closed || s->st != ST_IDLE || s->env || !s->ev.on_idle)
            break;
        s->ev.on_idle(s->ctx, s);
    } while (s->idle_again);
    s->in_idle_cb = 0;
}

static void go_idle(smtp_session *s)
{
    set_state(s, ST_IDLE);
    notify_idle(s);
}

/* ---- connection set-up: greeting, EHLO/HELO, STARTTLS, AUTH ---- */

static void send_hello(smtp_session *s, const char *verb, state next)
{
    buf b;
    buf_init(&b, 600);
    buf_appendz(&b, verb);
    buf_append(&b, " ", 1);
    buf_appendz(&b, s->helo);
    send_cmd(s, b.data, b.len);
    buf_free(&b);
    set_state(s, next);
}

static int ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'a' && x <= 'z')
            x = (unsigned char)(x - 32);
        if (y >= 'a' && y <= 'z')
            y = (unsigned char)(y - 32);
        if (x != y)
            return 0;
    }
    return 1;
}

static unsigned long long parse_size(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return ULLONG_MAX;
        v = v * 10 + d;
    }
    return v;
}

/* One EHLO keyword line: "KEYWORD[ param]*" (old servers: "AUTH=PLAIN LOGIN"). */
static void parse_ehlo_line(smtp_session *s, const char *p, size_t n)
{
    size_t k = 0;
    while (k < n && p[k] != ' ' && p[k] != '=')
        k++;
    const char *kw = p;
    size_t kn = k;
    const char *params[16];
    size_t plen[16], np = 0;
    while (k < n && np < 16) {
        while (k < n && (p[k] == ' ' || p[k] == '='))
            k++;
        size_t start = k;
        while (k < n && p[k] != ' ')
            k++;
        if (k > start) {
            params[np] = p + start;
            plen[np++] = k - start;
        }
    }
    if (ieq(kw, kn, "STARTTLS"))
        s->ext |= EXT_STARTTLS;
    else if (ieq(kw, kn, "PIPELINING"))
        s->ext |= EXT_PIPELINING;
    else if (ieq(kw, kn, "SMTPUTF8"))
        s->ext |= EXT_SMTPUTF8;
    else if (ieq(kw, kn, "8BITMIME"))
        s->ext |= EXT_8BITMIME;
    else if (ieq(kw, kn, "ENHANCEDSTATUSCODES"))
        s->ext |= EXT_ENHANCED;
    else if (ieq(kw, kn, "SIZE")) {
        s->ext |= EXT_SIZE;
        s->size_max = np ? parse_size(params[0], plen[0]) : 0;
    } else if (ieq(kw, kn, "AUTH")) {
        s->ext |= EXT_AUTH;
        for (size_t i = 0; i < np; i++) {
            if (ieq(params[i], plen[i], "PLAIN"))
                s->mechs |= MECH_PLAIN;
            else if (ieq(params[i], plen[i], "LOGIN"))
                s->mechs |= MECH_LOGIN;
        }
    }
}

static void parse_ehlo(smtp_session *s)
{
    const char *t = bstr(&s->r.text);
    size_t n = s->r.text.len;
    const char *nl = memchr(t, '\n', n);   /* the first line is the greeting, not a keyword */
    while (nl) {
        const char *p = nl + 1;
        size_t left = n - (size_t)(p - t);
        nl = memchr(p, '\n', left);
        parse_ehlo_line(s, p, nl ? (size_t)(nl - p) : left);
    }
}

static void start_auth_or_idle(smtp_session *s)
{
    if (!s->user) {
        go_idle(s);
        return;
    }
    buf b;
    size_t ul = strlen(s->user), pl = strlen(s->pass);
    buf_init(&b, 64 + 2 * (ul + pl + 2));
    if (s->mechs & MECH_PLAIN) {
        buf raw;
        buf_init(&raw, ul + pl + 2);
        buf_append(&raw, "", 1);
        buf_append(&raw, s->user, ul);
        buf_append(&raw, "", 1);
        buf_append(&raw, s->pass, pl);
        buf_appendz(&b, "AUTH PLAIN ");
        b64_encode(&b, (const unsigned char *)raw.data, raw.len);
        send_line(s, b.data, b.len, "AUTH PLAIN ****", 15);
        explicit_bzero(raw.data, raw.len);
        buf_free(&raw);
        set_state(s, ST_AUTH_PLAIN);
    } else if (s->mechs & MECH_LOGIN) {
        send_cmdz(s, "AUTH LOGIN");
        set_state(s, ST_AUTH_LOGIN);
    } else {
        close_session(s, SMTP_FAIL_REPLY, 0, "", "AUTH not offered", 1);
    }
    if (b.data)
        explicit_bzero(b.data, b.len);
    buf_free(&b);
}

static void after_hello(smtp_session *s)
{
    if (!s->tls_up && s->tls != SMTP_TLS_NONE) {
        if (s->ext & EXT_STARTTLS) {
            send_cmdz(s, "STARTTLS");
            set_state(s, ST_STARTTLS);
            return;
        }
        if (s->tls == SMTP_TLS_REQUIRE) {
            close_session(s, SMTP_FAIL_TLS, 0, "", "STARTTLS required but not offered", 1);
            return;
        }
    }
    start_auth_or_idle(s);
}

static void on_greeting(smtp_session *s)
{
    if (s->r.code == 220)
        send_hello(s, "EHLO", ST_EHLO);
    else
        fail_reply(s, SMTP_FAIL_REPLY);
}

static void on_ehlo(smtp_session *s)
{
    int cls = s->r.code / 100;
    if (cls == 2) {
        parse_ehlo(s);
        after_hello(s);
    } else if (cls == 5) {
        send_hello(s, "HELO", ST_HELO);
    } else {
        fail_reply(s, SMTP_FAIL_REPLY);
    }
}

static void on_helo(smtp_session *s)
{
    if (s->r.code / 100 == 2)
        after_hello(s);
    else
        fail_reply(s, SMTP_FAIL_REPLY);
}

static void on_starttls_reply(smtp_session *s)
{
    if (s->r.code == 220) {
        /* Anything after the 220 in plaintext could be injected replies (CVE-2011-0411
         * class): never parse it. */
        if (s->in_rest > 0) {
            fail_proto(s, "plaintext received after STARTTLS reply");
            return;
        }
        set_state(s, ST_TLS);
        if (s->ev.on_starttls)
            s->ev.on_starttls(s->ctx, s);
        return;
    }
    if (s->tls == SMTP_TLS_REQUIRE)
        fail_reply(s, SMTP_FAIL_TLS);
    else
        start_auth_or_idle(s);
}

static void on_auth_plain(smtp_session *s)
{
    if (s->r.code == 235)
        go_idle(s);
    else
        fail_reply(s, SMTP_FAIL_REPLY);
}

static void send_secret(smtp_session *s, const char *secret, state next)
{
    size_t n = strlen(secret);
    buf b;
    buf_init(&b, 2 * n + 8);
    b64_encode(&b, (const unsigned char *)secret, n);
    send_line(s, bstr(&b), b.len, "****", 4);
    if (b.data)
        explicit_bzero(b.data, b.len);
    buf_free(&b);
    set_state(s, next);
}

static void on_auth_login(smtp_session *s)
{
    if (s->r.code == 334)
        send_secret(s, s->user, ST_AUTH_LOGIN_USER);
    else
        fail_reply(s, SMTP_FAIL_REPLY);
}

static void on_auth_login_user(smtp_session *s)
{
    if (s->r.code == 334)
        send_secret(s, s->pass, ST_AUTH_LOGIN_PASS);
    else
        fail_reply(s, SMTP_FAIL_REPLY);
}

static void on_auth_login_pass(smtp_session *s) { on_auth_plain(s); }

static void on_unsolicited(smtp_session *s)
{
    /* Typically "421 idle timeout, closing": the peer is going away. */
    if (s->r.code / 100 == 4 || s->r.code / 100 == 5)
        close_session(s, SMTP_FAIL_REPLY, s->r.code, s->r.enhanced, bstr(&s->r.text), 0);
    else
        fail_proto(s, "unexpected reply while idle");
}

static void on_quit_reply(smtp_session *s)
{
    close_session(s, SMTP_CLOSED_OK, s->r.code, s->r.enhanced, bstr(&s->r.text), 0);
}

static void on_nothing(smtp_session *s) { (void)s; }

/* ---- transactions ---- */

static int addr_ok(const char *a)
{
    size_t n = strnlen(a, ADDR_MAX + 1);
    if (n > ADDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
            return 0;
    }
    return 1;
}

static void put_cmd(smtp_session *s, const cmd *c)
{
    char line[ADDR_MAX + 64];
    size_t n = 0;
    const char *addr = NULL;
    switch (c->kind) {
    case CMD_RSET:
        send_cmdz(s, "RSET");
        return;
    case CMD_DATA:
        send_cmdz(s, "DATA");
        return;
    case CMD_MAIL:
        memcpy(line, "MAIL FROM:<", 11);
        n = 11;
        addr = s->env->mail_from ? s->env->mail_from : "";
        break;
    case CMD_RCPT:
        memcpy(line, "RCPT TO:<", 9);
        n = 9;
        addr = s->env->rcpts[c->rcpt].address;
        break;
    }
    size_t al = strnlen(addr, ADDR_MAX);   /* addr_ok checked it at submit */
    memcpy(line + n, addr, al);
    n += al;
    line[n++] = '>';
    if (c->kind == CMD_MAIL) {
        if (s->ext & EXT_SIZE) {
            int k = snprintf(line + n, sizeof line - n, " SIZE=%llu", s->msg_size);
            if (k > 0 && (size_t)k < sizeof line - n)
                n += (size_t)k;
        }
        if (s->utf8_param) {
            memcpy(line + n, " SMTPUTF8", 9);
            n += 9;
        }
    }
    send_cmd(s, line, n);
}

static void fill_commands(smtp_session *s)
{
    while (s->cmds && s->next_send < s->send_limit && s->out.len - s->out_off < CMD_CHUNK)
        put_cmd(s, &s->cmds[s->next_send++]);
}

static void finish_txn(smtp_session *s)
{
    for (size_t i = 0; s->env && i < s->env->nrcpts; i++)   /* a safety net: none left */
        result(s, i, SMTP_DEFERRED, 0, "", "transaction ended without a reply for it");
    if (s->closed || !s->env)
        return;
    txn_free(s);
    s->transactions++;
    transcript_reset(s);
    go_idle(s);
}

static void start_data(smtp_session *s)
{
    s->src_pos = 0;
    s->src_len = (s->env->head ? s->env->head_len : 0) + (s->env->body ? s->env->body_len : 0);
    s->line_start = 1;
    s->last2[0] = s->last2[1] = 0;
    set_state(s, ST_DATA_BLOCK);
}

static void on_data_reply(smtp_session *s)
{
    int cls = s->r.code / 100;
    if (cls == 3) {
        if (s->mail_ok && s->naccepted > 0) {
            start_data(s);
        } else {
            /* RFC 2920 3.1: no recipient accepted, yet the pipelined DATA got its 354. */
            send_line(s, ".", 1, ".", 1);
            set_state(s, ST_DATA_DISCARD);
        }
        return;
    }
    /* A 2xx to DATA makes no sense: the message was not sent; try again later. */
    settle(s, R_ACCEPTED, cls == 5 ? SMTP_BOUNCED : SMTP_DEFERRED);
    if (!s->closed)
        finish_txn(s);
}

static void on_txn_reply(smtp_session *s)
{
    if (!s->env || s->next_reply >= s->next_send) {
        fail_proto(s, "reply to no command");
        return;
    }
    cmd c = s->cmds[s->next_reply++];
    int cls = s->r.code / 100;
    switch (c.kind) {
    case CMD_RSET:
        break;
    case CMD_MAIL:
        s->mail_ok = cls == 2;
        if (!s->mail_ok)
            settle(s, R_OPEN, cls == 5 ? SMTP_BOUNCED : SMTP_DEFERRED);
        break;
    case CMD_RCPT:
        if (s->mail_ok && s->rst[c.rcpt] == R_OPEN) {
            if (cls == 2) {
                s->rst[c.rcpt] = R_ACCEPTED;
                s->naccepted++;
            } else {
                result_reply(s, c.rcpt, cls == 5 ? SMTP_BOUNCED : SMTP_DEFERRED);
            }
        }
        break;
    case CMD_DATA:
        on_data_reply(s);
        return;
    }
    if (s->closed)
        return;
    if (!s->pipelining) {
        /* Lock-step: only go on while there is something left to gain. */
        if (!s->mail_ok && c.kind != CMD_RSET) {
            finish_txn(s);
            return;
        }
        if (s->cmds[s->next_reply].kind == CMD_DATA && s->naccepted == 0) {
            finish_txn(s);
            return;
        }
        s->send_limit = s->next_reply + 1;
        fill_commands(s);
    }
    set_state(s, s->cmds[s->next_reply].kind == CMD_DATA ? ST_DATA_INIT : ST_TXN);
}

static void on_data_block_reply(smtp_session *s)
{
    settle(s, R_ACCEPTED, s->r.code / 100 == 5 ? SMTP_BOUNCED : SMTP_DEFERRED);
    fail_proto(s, "reply received before the end of message data");
}

static void on_dot_reply(smtp_session *s)
{
    settle(s, R_ACCEPTED, verdict_of(s->r.code));
    if (!s->closed)
        finish_txn(s);
}

static void on_discard_reply(smtp_session *s)
{
    if (s->env)
        finish_txn(s);
}

int smtp_session_submit(smtp_session *s, const smtp_envelope *e)
{
    if (!s || !e || s->closed || s->st != ST_IDLE || s->env)
        return -1;
    size_t n = e->nrcpts;
    if (n && !e->rcpts)
        return -1;
    s->env = e;
    s->rst = xcalloc(n ? n : 1, 1);
    s->local_enh = xcalloc(n ? n : 1, sizeof *s->local_enh);
    s->local_text = xcalloc(n ? n : 1, sizeof *s->local_text);
    s->cmds = xcalloc(n + 3, sizeof *s->cmds);
    s->ncmds = s->next_send = s->next_reply = s->naccepted = 0;
    s->mail_ok = 0;
    s->pipelining = (s->ext & EXT_PIPELINING) != 0;

    size_t hl = e->head ? e->head_len : 0;
    unsigned long long size = (unsigned long long)hl + (e->body ? e->body_len : 0);
    s->msg_size = size;
    const char *from = e->mail_from ? e->mail_from : "";
    int utf8 = (s->ext & EXT_SMTPUTF8) != 0;

    const char *all_enh = NULL, *all_text = NULL;
    char size_text[160];
    if (!addr_ok(from)) {
        all_enh = "5.1.3";
        all_text = "invalid address (sender)";
    } else if (e->smtputf8 && !utf8) {
        all_enh = "5.6.7";
        all_text = "the sender address needs SMTPUTF8, which the server does not offer";
    } else if ((s->ext & EXT_SIZE) && s->size_max > 0 && size > s->size_max) {
        snprintf(size_text, sizeof size_text,
                 "message size %llu exceeds the server's SIZE limit of %llu", size,
                 s->size_max);
        all_enh = "5.3.4";
        all_text = size_text;
    }
    size_t kept = 0;
    int need_utf8 = e->smtputf8;
    for (size_t i = 0; i < n; i++) {
        const smtp_rcpt *r = &e->rcpts[i];
        const char *enh = all_enh, *text = all_text;
        if (!enh && (!r->address || !addr_ok(r->address))) {
            enh = "5.1.3";
            text = "invalid address (recipient)";
        } else if (!enh && r->smtputf8 && !utf8) {
            enh = "5.6.7";
            text = "the recipient address needs SMTPUTF8, which the server does not offer";
        }
        if (enh) {
            s->rst[i] = R_LOCAL;
            s->local_enh[i] = enh;
            s->local_text[i] = text;
        } else {
            kept++;
            need_utf8 |= r->smtputf8;
        }
    }

    if (kept) {
        s->utf8_param = need_utf8 && utf8;
        if (s->transactions > 0)
            s->cmds[s->ncmds++] = (cmd){CMD_RSET, 0};
        s->cmds[s->ncmds++] = (cmd){CMD_MAIL, 0};
        for (size_t i = 0; i < n; i++)
            if (s->rst[i] == R_OPEN)
                s->cmds[s->ncmds++] = (cmd){CMD_RCPT, i};
        s->cmds[s->ncmds++] = (cmd){CMD_DATA, 0};
        s->send_limit = s->pipelining ? s->ncmds : 1;
        set_state(s, ST_TXN);
        fill_commands(s);
    }
    /* Local verdicts after the state change, so that callbacks see a busy session. */
    for (size_t i = 0; s->env == e && i < n; i++)
        if (s->rst[i] == R_LOCAL)
            result(s, i, SMTP_BOUNCED, 0, s->local_enh[i], s->local_text[i]);
    if (!kept && s->env == e && !s->closed) {
        txn_free(s);
        notify_idle(s);
    }
    return 0;
}

/* ---- message data ---- */

static void data_chunk(smtp_session *s)
{
    const smtp_envelope *e = s->env;
    size_t hl = e->head ? e->head_len : 0;
    size_t budget = DATA_CHUNK;
    while (budget > 0 && s->src_pos < s->src_len) {
        const char *p;
        size_t avail;
        if (s->src_pos < hl) {
            p = e->head + s->src_pos;
            avail = hl - s->src_pos;
        } else {
            p = e->body + (s->src_pos - hl);
            avail = s->src_len - s->src_pos;
        }
        if (avail > budget)
            avail = budget;
        if (s->line_start && p[0] == '.')
            out_put(s, ".", 1);
        const char *nl = memchr(p, '\n', avail);
        size_t k = nl ? (size_t)(nl - p) + 1 : avail;
        out_put(s, p, k);
        if (k >= 2) {
            s->last2[0] = p[k - 2];
            s->last2[1] = p[k - 1];
        } else {
            s->last2[0] = s->last2[1];
            s->last2[1] = p[0];
        }
        s->line_start = p[k - 1] == '\n';
        s->src_pos += k;
        budget -= k;
    }
    if (s->src_pos < s->src_len)
        return;
    if (s->src_len > 0 && !(s->last2[0] == '\r' && s->last2[1] == '\n'))
        out_put(s, "\r\n", 2);
    send_line(s, ".", 1, ".", 1);
    set_state(s, ST_DATA_DONE);
}

size_t smtp_session_output(smtp_session *s, const char **data)
{
    if (!s) {
        *data = NULL;
        return 0;
    }
    if (!s->closed) {
        fill_commands(s);
        if (s->st == ST_DATA_BLOCK && s->out_off == s->out.len) {
            buf_reset(&s->out);
            s->out_off = 0;
            data_chunk(s);
        }
    }
    *data = s->out.data ? s->out.data + s->out_off : NULL;
    return s->out.len - s->out_off;
}

void smtp_session_written(smtp_session *s, size_t n)
{
    if (!s)
        return;
    size_t pending = s->out.len - s->out_off;
    s->out_off += n < pending ? n : pending;
    if (s->out_off == s->out.len) {
        buf_reset(&s->out);
        s->out_off = 0;
    }
}

/* ---- replies ---- */

static void reply_reset(reply *r)
{
    r->code = 0;
    r->nlines = 0;
    r->bytes = 0;
    r->enhanced[0] = '\0';
    buf_reset(&r->text);
    buf_reset(&r->line);
}

static size_t digits(const char *p, size_t n, size_t max)
{
    size_t k = 0;
    while (k < n && k < max + 1 && p[k] >= '0' && p[k] <= '9')
        k++;
    return k >= 1 && k <= max ? k : 0;
}

/* RFC 3463 "class.subject.detail" at the start of the text, followed by SP or the end. */
static void parse_enhanced(const char *t, size_t n, char out[ENH_MAX])
{
    out[0] = '\0';
    if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
        return;
    size_t i = 2, k = digits(t + i, n - i, 3);
    if (!k || i + k >= n || t[i + k] != '.')
        return;
    i += k + 1;
    k = digits(t + i, n - i, 3);
    if (!k)
        return;
    i += k;
    if (i < n && t[i] != ' ')
        return;
    memcpy(out, t, i);
    out[i] = '\0';
}

static void handle_line(smtp_session *s, const char *l, size_t n)
{
    if (n && l[n - 1] == '\r')
        n--;
    transcript_add(s, "< ", l, n);
    reply *r = &s->r;
    if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' ||
        l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
        fail_proto(s, "malformed reply line");
        return;
    }
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        fail_proto(s, "reply code changes within a multi-line reply");
        return;
    }
    const char *t = n > 4 ? l + 4 : "";
    size_t tl = n > 4 ? n - 4 : 0;
    if (r->nlines == 0) {
        r->code = code;
        parse_enhanced(t, tl, r->enhanced);
    } else {
        buf_append(&r->text, "\n", 1);
    }
    size_t at = r->text.len;
    if (buf_append(&r->text, t, tl) == 0)   /* bounded by max_reply like the raw bytes */
        sanitize(r->text.data + at, tl);
    r->nlines++;
    if (n > 3 && l[3] == '-')
        return;
    states[s->st].on_reply(s);
    if (!s->closed)
        reply_reset(&s->r);
}

void smtp_session_input(smtp_session *s, const char *data, size_t len)
{
    if (!s || s->closed || len == 0)
        return;
    if (s->st == ST_TLS) {
        fail_proto(s, "plaintext received after STARTTLS reply");
        return;
    }
    size_t i = 0;
    while (i < len && !s->closed) {
        const char *p = data + i;
        const char *nl = memchr(p, '\n', len - i);
        size_t take = nl ? (size_t)(nl - p) + 1 : len - i;
        if (take > s->max_reply - s->r.bytes) {
            char why[96];
            snprintf(why, sizeof why, "reply longer than %zu bytes", s->max_reply);
            fail_proto(s, why);
            return;
        }
        s->r.bytes += take;
        i += take;
        if (!nl) {
            buf_append(&s->r.line, p, take);
            return;
        }
        const char *l = p;
        size_t ln = take - 1;
        if (s->r.line.len) {
            buf_append(&s->r.line, p, take - 1);
            l = s->r.line.data;
            ln = s->r.line.len;
        }
        s->in_rest = len - i;
        if (s->st == ST_TLS) {   /* a handler went into TLS while bytes remained */
            fail_proto(s, "plaintext received after STARTTLS reply");
            return;
        }
        handle_line(s, l, ln);
        if (!s->closed)
            buf_reset(&s->r.line);
    }
}

/* ---- events from the loop ---- */

void smtp_session_tls_done(smtp_session *s, int ok, const char *version, const char *cipher)
{
    if (!s || s->closed || s->st != ST_TLS)
        return;
    if (!ok) {
        close_session(s, SMTP_FAIL_TLS, 0, "", "TLS handshake failed", 0);
        return;
    }
    s->tls_up = 1;
    snprintf(s->tls_desc, sizeof s->tls_desc, "%s %s", version ? version : "TLS",
             cipher ? cipher : "unknown");
    /* RFC 3207 4.2: forget everything learnt before the handshake. */
    s->ext = 0;
    s->mechs = 0;
    s->size_max = 0;
    reply_reset(&s->r);
    send_hello(s, "EHLO", ST_EHLO);
}

void smtp_session_timeout(smtp_session *s)
{
    if (!s || s->closed)
        return;
    char why[96];
    snprintf(why, sizeof why, "timeout waiting for %s",
             s->st == ST_QUIT ? "QUIT reply" : smtp_phase_name(states[s->st].phase));
    close_session(s, s->st == ST_QUIT ? SMTP_CLOSED_OK : SMTP_FAIL_TIMEOUT, 0, "", why, 0);
}

void smtp_session_eof(smtp_session *s, const char *detail)
{
    if (!s || s->closed)
        return;
    char why[256];
    snprintf(why, sizeof why, "connection closed during %s: %s",
             smtp_phase_name(states[s->st].phase), detail && *detail ? detail : "EOF");
    close_session(s, s->st == ST_QUIT ? SMTP_CLOSED_OK : SMTP_FAIL_CONN, 0, "", why, 0);
}

void smtp_session_quit(smtp_session *s)
{
    if (!s || s->closed || s->st != ST_IDLE || s->env)
        return;
    send_cmdz(s, "QUIT");
    set_state(s, ST_QUIT);
}

/* ---- life cycle and queries ---- */

static int helo_ok(const char *h)
{
    if (!h || !*h || strlen(h) > 255)
        return 0;
    for (const char *p = h; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

smtp_session *smtp_session_new(const smtp_session_params *p, const smtp_session_events *ev,
                               void *ctx)
{
    if (!p || !ev)
        die("smtp_session_new: params and events are required");
    smtp_session *s = xcalloc(1, sizeof *s);
    if (!helo_ok(p->helo_name)) {
        log_warn("smtp session: unusable helo name, using localhost");
        s->helo = xstrdup("localhost");
    } else {
        s->helo = xstrdup(p->helo_name);
    }
    if (p->auth_user) {
        s->user = xstrdup(p->auth_user);
        s->pass = xstrdup(p->auth_pass ? p->auth_pass : "");
    }
    s->tls = p->tls;
    s->max_reply = p->max_reply_bytes ? p->max_reply_bytes : DEFAULT_MAX_REPLY;
    s->max_transcript = p->max_transcript ? p->max_transcript : DEFAULT_MAX_TRANSCRIPT;
    s->ev = *ev;
    s->ctx = ctx;
    s->st = ST_GREETING;
    buf_init(&s->r.text, s->max_reply);
    buf_init(&s->r.line, s->max_reply);
    buf_init(&s->transcript, s->max_transcript);
    size_t creds = s->user ? strlen(s->user) + strlen(s->pass) : 0;
    buf_init(&s->out, 4 * DATA_CHUNK + CMD_CHUNK + 2 * creds + 1024);
    log_debug("smtp session %p: new, state %s", (void *)s, states[s->st].name);
    return s;
}

void smtp_session_free(smtp_session *s)
{
    if (!s)
        return;
    txn_free(s);
    buf_free(&s->r.text);
    buf_free(&s->r.line);
    buf_free(&s->transcript);
    if (s->out.data)
        explicit_bzero(s->out.data, s->out.len);   /* may hold AUTH credentials */
    buf_free(&s->out);
    free(s->helo);
    if (s->user) {
        explicit_bzero(s->user, strlen(s->user));
        explicit_bzero(s->pass, strlen(s->pass));
    }
    free(s->user);
    free(s->pass);
    free(s);
}

smtp_phase smtp_session_phase(const smtp_session *s) { return states[s->st].phase; }

int smtp_session_idle(const smtp_session *s)
{
    return !s->closed && s->st == ST_IDLE && !s->env;
}

int smtp_session_closed(const smtp_session *s) { return s->closed; }

const char *smtp_session_tls(const smtp_session *s) { return s->tls_up ? s->tls_desc : NULL; }

unsigned smtp_session_transactions(const smtp_session *s) { return s->transactions; }
