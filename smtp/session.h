/* smtp/session.h - the client side of one SMTP session, as a pure protocol machine: bytes
 * in, bytes out, no socket, no clock, no TLS library. The delivery loop (smtp/engine)
 * owns the connection: it feeds what it reads with smtp_session_input(), writes what
 * smtp_session_output() hands it, performs the TLS handshake when the session asks for it,
 * arms a timer for smtp_session_phase() and reports expiry and EOF. A unit test drives the
 * same functions with scripted replies.
 *
 * One table of states with a single set_state() that logs each transition. The session
 * speaks EHLO (HELO fallback), STARTTLS (policy none/may/require; bytes received after the
 * 220 to STARTTLS and before the handshake are a protocol error, never read as replies),
 * AUTH PLAIN/LOGIN (relay only), PIPELINING (RFC 2920), SIZE, SMTPUTF8, RSET between
 * transactions on a reused connection, dot-stuffing, QUIT.
 *
 * Every recipient submitted gets exactly one on_result(): delivered (2xx after the final
 * dot), deferred (4xx, timeout, connection or TLS failure) or bounced (5xx, or a local
 * permanent reason: 5.6.7 SMTPUTF8 not offered, 5.3.4 larger than the peer's SIZE). */
#ifndef POSTHORN_SMTP_SESSION_H
#define POSTHORN_SMTP_SESSION_H
#include <stddef.h>

typedef struct smtp_session smtp_session;

typedef enum { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_REQUIRE } smtp_tls_mode;

/* What the loop must arm a timer for (RFC 5321 4.5.3.2); IDLE: no reply awaited. */
typedef enum {
    SMTP_PHASE_GREETING,
    SMTP_PHASE_COMMAND,      /* EHLO, HELO, STARTTLS, AUTH, RSET, MAIL, RCPT, QUIT */
    SMTP_PHASE_TLS,          /* the handshake the session asked for */
    SMTP_PHASE_DATA_INIT,    /* waiting for 354 */
    SMTP_PHASE_DATA_BLOCK,   /* message data still being written */
    SMTP_PHASE_DATA_DONE,    /* waiting for the reply to the final dot */
    SMTP_PHASE_IDLE,
    SMTP_PHASE_COUNT
} smtp_phase;

typedef struct {
    const char   *helo_name;
    smtp_tls_mode tls;
    const char   *auth_user;         /* relay: AUTH after EHLO when set (PLAIN, else LOGIN) */
    const char   *auth_pass;
    size_t        max_reply_bytes;   /* bound on one multi-line reply; 0: 64 KiB */
    size_t        max_transcript;    /* bound on a transaction's transcript; 0: 16 KiB */
} smtp_session_params;

typedef struct {
    const char *address;    /* as it goes into RCPT TO:<...> (A-label domain) */
    int         smtputf8;   /* the address needs SMTPUTF8 */
    void       *ctx;        /* the caller's (e.g. the job) */
} smtp_rcpt;

/* One transaction: one sender, recipients sharing the content, content = head then body.
 * The envelope itself, its arrays and bytes stay owned by the caller and must live until every recipient has
 * its result. Content is CRLF-terminated 7-bit lines of <= 998 octets. */
typedef struct {
    const char *mail_from;     /* "" for the null sender */
    int         smtputf8;      /* the sender needs SMTPUTF8 */
    smtp_rcpt  *rcpts;
    size_t      nrcpts;
    const char *head;          /* may be NULL */
    size_t      head_len;
    const char *body;
    size_t      body_len;
} smtp_envelope;

typedef enum { SMTP_DELIVERED, SMTP_DEFERRED, SMTP_BOUNCED } smtp_verdict;

typedef struct {
    const smtp_rcpt *rcpt;
    smtp_verdict     verdict;
    int              code;          /* the reply code behind the verdict; 0 if none */
    const char      *enhanced;      /* "5.1.1" or "" */
    const char      *text;          /* reply text (lines joined by "\n") or the local reason */
    const char      *transcript;    /* commands and replies of this transaction (never the
                                     * message, AUTH secrets masked), bounded */
} smtp_rcpt_result;

typedef enum {
    SMTP_CLOSED_OK,        /* QUIT answered, or the loop closed an idle session */
    SMTP_FAIL_CONN,        /* EOF or socket error */
    SMTP_FAIL_TLS,         /* STARTTLS required but not offered, refused, or handshake failed */
    SMTP_FAIL_PROTO,       /* unparseable or oversized reply, bytes after STARTTLS's 220 */
    SMTP_FAIL_TIMEOUT,
    SMTP_FAIL_REPLY,       /* greeting, EHLO/HELO or AUTH refused (code below) */
} smtp_fail;

typedef struct {
    smtp_fail   why;
    int         code;          /* the refusing reply, 0 if none */
    const char *enhanced;
    const char *text;          /* reply text or the reason */
    const char *transcript;    /* since the connection opened or the last transaction */
} smtp_close_info;

typedef struct {
    void (*on_result)(void *ctx, const smtp_rcpt_result *r);
    /* The session can take an envelope (after the greeting/EHLO/TLS/AUTH, and after each
     * transaction). The callee may call smtp_session_submit() or smtp_session_quit(). */
    void (*on_idle)(void *ctx, smtp_session *s);
    /* The session is over (once). Recipients still without a result have had theirs
     * (deferred) before this call. The loop closes the connection and frees the session
     * after it returns, never inside it. */
    void (*on_closed)(void *ctx, const smtp_close_info *info);
    /* STARTTLS was accepted: the loop performs the handshake on the connection, then calls
     * smtp_session_tls_done(). */
    void (*on_starttls)(void *ctx, smtp_session *s);
} smtp_session_events;

smtp_session *smtp_session_new(const smtp_session_params *p, const smtp_session_events *ev,
                               void *ctx);
void smtp_session_free(smtp_session *s);

/* Bytes read from the peer (already decrypted under TLS). */
void smtp_session_input(smtp_session *s, const char *data, size_t len);
/* Bytes waiting to be written: *data, returned length (0 when none). After writing n of
 * them, smtp_session_written(s, n). Message data is produced lazily, a bounded chunk at a
 * time, so a large message never needs a second copy. */
size_t smtp_session_output(smtp_session *s, const char **data);
void   smtp_session_written(smtp_session *s, size_t n);

/* Submit a transaction; only when idle. 0 accepted, -1 not idle. */
int  smtp_session_submit(smtp_session *s, const smtp_envelope *e);
/* Ends an idle session politely (QUIT). */
void smtp_session_quit(smtp_session *s);

/* The handshake asked for by on_starttls finished (ok: version/cipher for the record,
 * e.g. "TLSv1.3", "TLS_AES_256_GCM_SHA384"). */
void smtp_session_tls_done(smtp_session *s, int ok, const char *version, const char *cipher);
/* The loop's timer for the current phase ran out. */
void smtp_session_timeout(smtp_session *s);
/* The connection closed or failed (detail for the record, e.g. "connection reset"). */
void smtp_session_eof(smtp_session *s, const char *detail);

smtp_phase smtp_session_phase(const smtp_session *s);
int        smtp_session_idle(const smtp_session *s);
int        smtp_session_closed(const smtp_session *s);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, else NULL. */
const char *smtp_session_tls(const smtp_session *s);
/* Transactions completed on this session (for messages-per-connection limits). */
unsigned   smtp_session_transactions(const smtp_session *s);
const char *smtp_phase_name(smtp_phase p);
#endif
