/* api/http.h - the request context every handler receives, and the response helpers.
 * api/server.c owns the libmicrohttpd side: it matches the route, enforces the URL, header
 * and body caps while streaming, authenticates, rate-limits, then calls the handler once with
 * the whole (bounded) body. Handlers answer with exactly one http_send_*() or http_problem(). */
#ifndef POSTHORN_HTTP_H
#define POSTHORN_HTTP_H
#include "lib/apikey.h"
#include "lib/buf.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

#define HTTP_URL_MAX      2048
#define HTTP_HEADERS_MAX  16384
#define HTTP_MAX_PARAMS   4

/* BODY_STREAM: the handler takes the body in pieces (see http_req.on_chunk). */
typedef enum { BODY_NONE, BODY_JSON, BODY_STREAM } body_kind;

typedef struct http_req http_req;
typedef enum MHD_Result (*http_handler)(http_req *r);

typedef struct {
    const char  *method;
    const char  *path;        /* "/v1/suppressions/{email}" */
    scope        scope;
    body_kind    body;
    int64_t      body_max;    /* 0: cfg.body_max */
    http_handler handler;
    const char  *name;        /* metrics label */
} route;

extern const route routes[];
extern const int   route_count;

typedef struct {
    int      authenticated;
    int      operator;
    unsigned scopes;                 /* SCOPE_BIT()s */
    char     account_id[40];
    char     key_prefix[16];
    char     key_name[128];
    int      rate;
} auth_info;

struct http_req {
    struct MHD_Connection *conn;
    char        request_id[40];
    const char *method;
    char       *path;                /* raw path, no query */
    size_t      url_len;             /* raw request-target length */
    int         route_idx;           /* -1 unmatched */
    char       *params[HTTP_MAX_PARAMS];   /* percent-decoded path parameters */
    buf         body;
    int         body_too_large;
    int         started;
    int         responded;
    int         status;
    int64_t     start_us;
    auth_info   auth;
    /* rate-limit headers for the response, when a limit applied */
    int         rl_limit, rl_remaining, rl_reset_s;
    char       *xh_name[4], *xh_val[4];   /* extra response headers */
    int         nxh;
    char       *scratch[16];              /* decoded query values, freed with the request */
    int         nscratch;
    /* A handler that suspends the connection sets these: resume() answers when libmicrohttpd
     * calls back after MHD_resume_connection(); ctx_free() runs at completion. */
    void       *ctx;
    enum MHD_Result (*resume)(http_req *r);
    void      (*ctx_free)(void *ctx);
    /* BODY_STREAM routes: the handler is first called before any body byte is read, with
     * streaming set. It may answer at once; or set on_chunk, which then gets the body piece
     * by piece as it arrives (never answering: over a cap it notes so and drops the rest;
     * MHD_NO closes the connection), after which the handler is called again (streaming 0,
     * on_chunk set) and answers; or set neither, and the body is buffered as for BODY_JSON
     * (up to the route's body_max, no content-type check) before the second call. */
    int         streaming;
    enum MHD_Result (*on_chunk)(http_req *r, const char *data, size_t len);
};

/* Responses. Each adds X-Request-Id (and RateLimit-* when set) and records the status. */
enum MHD_Result http_send_json(http_req *r, unsigned status, json_t *body);   /* steals body */
enum MHD_Result http_send_bytes(http_req *r, unsigned status, const char *content_type,
                                const void *data, size_t len);
enum MHD_Result http_send_empty(http_req *r, unsigned status);
/* A streamed body of unknown length (chunked): libmicrohttpd calls reader for up to max
 * bytes at a time (MHD_ContentReaderCallback: bytes written, MHD_CONTENT_READER_END_OF_STREAM
 * or MHD_CONTENT_READER_END_WITH_ERROR), then ctx_free(ctx) once, whatever happened. */
typedef ssize_t (*http_reader)(void *ctx, uint64_t pos, char *out, size_t max);
enum MHD_Result http_send_stream(http_req *r, unsigned status, const char *content_type,
                                 http_reader reader, void *ctx, void (*ctx_free)(void *));
/* application/problem+json; errors (stolen, may be NULL) is an array of {field,message}. */
enum MHD_Result http_problem(http_req *r, unsigned status, const char *title,
                             const char *detail, json_t *errors);
/* Adds one header to the next response (copied). At most 4 per request. */
void http_add_header(http_req *r, const char *name, const char *value);

/* A query parameter, percent-decoded into a bounded copy freed with the request; NULL when
 * absent. *bad is set when present but malformed (bad escape, NUL, too long). */
const char *http_query(http_req *r, const char *name, int *bad);

/* Parses the body as a JSON object: NULL after answering 400 (not JSON, not UTF-8, not an
 * object) or 422 (duplicate keys); the caller returns *done. */
json_t *http_json_object(http_req *r, enum MHD_Result *done);

/* Field-error list helper for 422 answers. */
void http_field_error(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An "unknown field" error for each key of body not in known (NULL-terminated). */
void http_unknown_fields(json_t *errors, json_t *body, const char *const *known);

/* Percent-decodes s into out (out_max bytes incl. NUL); -1 on a bad escape, NUL or overflow. */
int http_pct_decode(const char *s, size_t n, char *out, size_t out_max);
#endif
