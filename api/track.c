/* api/track.c - the public tracking and unsubscribe endpoints (no API key):
 * GET /t/o/{token}  open pixel: always the same 1x1 GIF (a bad token records nothing, and
 *                   the answer does not tell), an `opened` event for a valid one;
 * GET /t/c/{token}  click: 302 to the URL stored for that link of the delivery's message
 *                   and a `clicked` event; anything else 400, never a redirect;
 * GET /u/{token}    a small confirmation page (changes nothing) whose button POSTs back;
 * POST /u/{token}   RFC 8058 one-click unsubscribe (or the page's button): `unsubscribed`
 *                   once per delivery, a broadcast suppression, the campaign contact.
 * Tokens are lib/token's, bound to their purpose: open and unsubscribe carry
 * "account_id\ndelivery_id", click "account_id\ndelivery_id\nlink_id". Each is one
 * statement. /t/ and /u/ are rate limited per client address. */
#include "api/handlers.h"
#include "api/ratelimit.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/token.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define TRACK_RATE   50      /* requests per second (and burst) per client address */
#define UA_MAX       512     /* bytes of User-Agent kept in event data */
#define LINK_ID_LEN  16

/* A 1x1 transparent GIF (43 bytes). */
static const unsigned char pixel_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
};

typedef struct {
    char account_id[IDS_MAX];
    char delivery_id[IDS_MAX];
    char link_id[LINK_ID_LEN + 1];
} tok_fields;

/* Opens the path's token for purpose p into f: 0, or -1 for anything not made by us. */
static int open_token(http_req *r, token_purpose p, tok_fields *f)
{
    const char *tok = r->params[0];
    memset(f, 0, sizeof *f);
    if (!tok)
        return -1;
    char payload[TOKEN_PAYLOAD_MAX + 1];
    long n = token_open(p, tok, strlen(tok), payload, TOKEN_PAYLOAD_MAX);
    if (n < 0)
        return -1;
    payload[n] = '\0';
    char *nl1 = memchr(payload, '\n', (size_t)n);
    if (!nl1)
        return -1;
    *nl1 = '\0';
    char *dlv = nl1 + 1;
    char *nl2 = strchr(dlv, '\n');
    if ((p == TOKEN_CLICK) != (nl2 != NULL))
        return -1;
    if (nl2) {
        *nl2 = '\0';
        if (strlen(nl2 + 1) != LINK_ID_LEN)
            return -1;
        memcpy(f->link_id, nl2 + 1, LINK_ID_LEN + 1);
    }
    if (!ids_valid("acc_", payload) || !ids_valid("dlv_", dlv))
        return -1;
    size_t al = strlen(payload), dl = strlen(dlv);
    if (al >= sizeof f->account_id || dl >= sizeof f->delivery_id)
        return -1;
    memcpy(f->account_id, payload, al + 1);
    memcpy(f->delivery_id, dlv, dl + 1);
    return 0;
}

/* The User-Agent, cut to UA_MAX bytes, control and non-ASCII bytes as '?', so it is always
 * valid text for PostgreSQL. */
static void user_agent(http_req *r, char out[UA_MAX + 1])
{
    const char *ua = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "User-Agent");
    size_t i = 0;
    for (; ua && ua[i] && i < UA_MAX; i++) {
        unsigned char c = (unsigned char)ua[i];
        out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    out[i] = '\0';
}

/* The per-address bucket of the public routes; 0 allowed, else answered 429 in *done. */
static int rate_limited(http_req *r, const char *kind, enum MHD_Result *done)
{
    char ip[INET6_ADDRSTRLEN] = "unknown", name[INET6_ADDRSTRLEN + 8];
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    }
    snprintf(name, sizeof name, "%s:%s", kind, ip);
    rl_result rl;
    ratelimit_take("public", name, TRACK_RATE, &rl);
    if (rl.allowed)
        return 0;
    char ra[16];
    snprintf(ra, sizeof ra, "%d", rl.retry_after_s);
    http_add_header(r, "Retry-After", ra);
    *done = http_problem(r, 429, NULL, "Too many requests from this address.", NULL);
    return -1;
}

static void log_failure(const char *what, db_status s)
{
    log_warn("%s: %s", what, s == DB_DOWN ? "database unavailable" : db_last_error(db_thread()));
}

enum MHD_Result h_track_open(http_req *r)
{
    enum MHD_Result done;
    if (rate_limited(r, "t", &done) != 0)
        return done;
    tok_fields f;
    /* HEAD (link scanners, prefetchers) gets the same answer and records nothing */
    if (strcmp(r->method, "GET") == 0 && open_token(r, TOKEN_OPEN, &f) == 0) {
        char ua[UA_MAX + 1];
        user_agent(r, ua);
        const char *p[] = {f.account_id, f.delivery_id, ua};
        db_status s = db_exec(db_thread(), ST_TRACK_OPEN, p, NULL);
        if (s != DB_OK)
            log_failure("open not recorded", s);
        else
            redis_note_events(redis_thread());
    }
    http_add_header(r, "Cache-Control", "no-store, no-cache, must-revalidate, max-age=0");
    http_add_header(r, "Pragma", "no-cache");
    return http_send_bytes(r, 200, "image/gif", pixel_gif, sizeof pixel_gif);
}

enum MHD_Result h_track_click(http_req *r)
{
    enum MHD_Result done;
    if (rate_limited(r, "t", &done) != 0)
        return done;
    tok_fields f;
    if (open_token(r, TOKEN_CLICK, &f) != 0)
        return http_problem(r, 400, NULL, "This link is not valid.", NULL);
    char ua[UA_MAX + 1];
    user_agent(r, ua);
    const char *p[] = {f.account_id, f.delivery_id, f.link_id, ua};
    PGresult *res = NULL;
    /* HEAD (link scanners) learns the same answer without recording a click */
    int head = strcmp(r->method, "GET") != 0;
    db_status s = db_exec(db_thread(), head ? ST_TRACK_LINK_GET : ST_TRACK_CLICK, p, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return http_problem(r, 400, NULL, "This link is not valid.", NULL);
    }
    http_add_header(r, "Location", PQgetvalue(res, 0, 0));
    http_add_header(r, "Cache-Control", "no-store");
    PQclear(res);
    if (!head)
        redis_note_events(redis_thread());
    return http_send_bytes(r, 302, "text/plain; charset=utf-8", "", 0);
}

/* ---- unsubscribe pages: static text, every variable part html-escaped ----------------- */

static int put_escaped(buf *b, const char *s)
{
    for (; *s; s++) {
        int rc;
        switch (*s) {
        case '&': rc = buf_appendz(b, "&amp;"); break;
        case '<': rc = buf_appendz(b, "&lt;"); break;
        case '>': rc = buf_appendz(b, "&gt;"); break;
        case '"': rc = buf_appendz(b, "&quot;"); break;
        case '\'': rc = buf_appendz(b, "&#39;"); break;
        default: rc = buf_append(b, s, 1);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Answers a page: title, then paragraphs (the address, escaped, after the first one when
 * given), then the form when form is set. */
static enum MHD_Result page(http_req *r, unsigned status, const char *title, const char *text,
                            const char *address, const char *after, int form)
{
    buf b;
    buf_init(&b, 16384);
    int rc = buf_appendz(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                             "<meta name=\"robots\" content=\"noindex\"><title>");
    rc |= put_escaped(&b, title);
    rc |= buf_appendz(&b, "</title><style>body{font-family:sans-serif;max-width:32em;"
                          "margin:3em auto;padding:0 1em;line-height:1.5}button{font-size:1em;"
                          "padding:.5em 1.5em}</style></head><body><h1>");
    rc |= put_escaped(&b, title);
    rc |= buf_appendz(&b, "</h1><p>");
    rc |= put_escaped(&b, text);
    if (address) {
        rc |= buf_appendz(&b, " <strong>");
        rc |= put_escaped(&b, address);
        rc |= buf_appendz(&b, "</strong>");
    }
    if (after) {
        rc |= buf_appendz(&b, " ");
        rc |= put_escaped(&b, after);
    }
    rc |= buf_appendz(&b, "</p>");
    if (form)
        rc |= buf_appendz(&b, "<form method=\"post\"><input type=\"hidden\" "
                              "name=\"List-Unsubscribe\" value=\"One-Click\">"
                              "<button type=\"submit\">Unsubscribe</button></form>");
    rc |= buf_appendz(&b, "</body></html>\n");
    if (rc != 0)
        die("unsubscribe page does not fit");
    http_add_header(r, "Cache-Control", "no-store");
    http_add_header(r, "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    http_add_header(r, "X-Frame-Options", "DENY");
    enum MHD_Result ret = http_send_bytes(r, status, "text/html; charset=utf-8", b.data, b.len);
    buf_free(&b);
    return ret;
}

static enum MHD_Result bad_link(http_req *r)
{
    return page(r, 400, "Link not valid",
                "This unsubscribe link is not valid. Use the link from the email itself.",
                NULL, NULL, 0);
}

/* Only printable ASCII of the stored address is shown (the page's text is escaped too). */
static void shown_address(const char *in, char *out, size_t max)
{
    size_t i = 0;
    for (; in[i] && i + 1 < max; i++)
        out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
    out[i] = '\0';
}

enum MHD_Result h_unsubscribe_page(http_req *r)
{
    enum MHD_Result done;
    if (rate_limited(r, "u", &done) != 0)
        return done;
    tok_fields f;
    if (open_token(r, TOKEN_UNSUBSCRIBE, &f) != 0)
        return bad_link(r);
    const char *p[] = {f.account_id, f.delivery_id};
    PGresult *res = NULL;
    db_status s = db_exec(db_thread(), ST_UNSUB_INFO, p, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bad_link(r);
    }
    char addr[400];
    shown_address(PQgetvalue(res, 0, 0), addr, sizeof addr);
    int already = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (already)
        return page(r, 200, "Unsubscribed", "You have already unsubscribed", addr,
                    "from these emails.", 0);
    return page(r, 200, "Unsubscribe", "Press the button to stop these emails to", addr,
                NULL, 1);
}

/* RFC 8058: the body is "List-Unsubscribe=One-Click", form-urlencoded or as a multipart
 * field; the page's button sends the same. */
static int one_click_body(const buf *b)
{
    const char *s = b->data ? b->data : "";
    size_t n = b->len;
    return n > 0 && memmem(s, n, "List-Unsubscribe", 16) && memmem(s, n, "One-Click", 9);
}

enum MHD_Result h_unsubscribe_post(http_req *r)
{
    enum MHD_Result done;
    if (rate_limited(r, "u", &done) != 0)
        return done;
    tok_fields f;
    if (open_token(r, TOKEN_UNSUBSCRIBE, &f) != 0)
        return bad_link(r);
    if (!one_click_body(&r->body))
        return page(r, 400, "Not unsubscribed",
                    "The request did not ask to unsubscribe (List-Unsubscribe=One-Click).", NULL,
                    NULL, 0);
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    const char *method = ct && strncasecmp(ct, "multipart/", 10) == 0 ? "one_click_multipart"
                                                                        : "one_click";
    const char *p[] = {f.account_id, f.delivery_id, method};
    PGresult *res = NULL;
    db_status s = db_exec(db_thread(), ST_UNSUB_RECORD, p, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bad_link(r);
    }
    char addr[400];
    shown_address(PQgetvalue(res, 0, 0), addr, sizeof addr);
    PQclear(res);
    return page(r, 200, "Unsubscribed", "You will no longer receive these emails at", addr,
                NULL, 0);
}
