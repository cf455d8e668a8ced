#include "api/server.h"
#include "lib/pct.h"
#include "api/auth.h"
#include "api/http.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Per-connection memory of libmicrohttpd: room for the 2 KB URL and 16 KB of headers that
 * we check ourselves (so the answers are problem+json), plus the read buffer. */
#define CONN_MEMORY_LIMIT (48 * 1024)
#define BODYLESS_MAX 65536

static struct MHD_Daemon *daemon_api;
static atomic_long in_flight;

long server_in_flight(void) { return atomic_load(&in_flight); }

int server_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    char host[128];
    size_t hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return -1;
    if (host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return -1;
        *len = sizeof *a;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    *len = sizeof *a;
    return 0;
}

/* ---- responses ---------------------------------------------------------------------- */

void http_add_header(http_req *r, const char *name, const char *value)
{
    if (r->nxh >= 4)
        die("too many extra headers");
    r->xh_name[r->nxh] = xstrdup(name);
    r->xh_val[r->nxh] = xstrdup(value);
    r->nxh++;
}

static enum MHD_Result queue_resp(http_req *r, unsigned status, const char *ctype,
                                  struct MHD_Response *resp);

static enum MHD_Result respond(http_req *r, unsigned status, const char *ctype, const void *data,
                               size_t len)
{
    if (r->responded)
        die("second response for request %s", r->request_id);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        die("out of memory building a response");
    return queue_resp(r, status, ctype, resp);
}

enum MHD_Result http_send_stream(http_req *r, unsigned status, const char *content_type,
                                 http_reader reader, void *ctx, void (*ctx_free)(void *))
{
    if (r->responded)
        die("second response for request %s", r->request_id);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, reader, ctx, ctx_free);
    if (!resp)
        die("out of memory building a response");
    return queue_resp(r, status, content_type, resp);
}

/* Adds the common headers to resp, queues it and records the status. */
static enum MHD_Result queue_resp(http_req *r, unsigned status, const char *ctype,
                                  struct MHD_Response *resp)
{
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (r->rl_limit > 0) {
        char v[32];
        snprintf(v, sizeof v, "%d", r->rl_limit);
        MHD_add_response_header(resp, "RateLimit-Limit", v);
        snprintf(v, sizeof v, "%d", r->rl_remaining);
        MHD_add_response_header(resp, "RateLimit-Remaining", v);
        snprintf(v, sizeof v, "%d", r->rl_reset_s);
        MHD_add_response_header(resp, "RateLimit-Reset", v);
    }
    for (int i = 0; i < r->nxh; i++)
        MHD_add_response_header(resp, r->xh_name[i], r->xh_val[i]);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->responded = 1;
    r->status = (int)status;
    return ret;
}

enum MHD_Result http_send_bytes(http_req *r, unsigned status, const char *content_type,
                                const void *data, size_t len)
{
    return respond(r, status, content_type, data, len);
}

enum MHD_Result http_send_empty(http_req *r, unsigned status)
{
    return respond(r, status, NULL, "", 0);
}

enum MHD_Result http_send_json(http_req *r, unsigned status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!s)
        die("cannot serialise a response");
    enum MHD_Result ret = respond(r, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
    return ret;
}

static const char *status_title(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

enum MHD_Result http_problem(http_req *r, unsigned status, const char *title, const char *detail,
                             json_t *errors)
{
    json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                          title ? title : status_title(status), "status", (int)status, "detail",
                          detail && *detail ? detail : status_title(status));
    if (!p)
        die("problem detail is not valid UTF-8: a caller must sanitise it");
    if (errors)
        json_object_set_new(p, "errors", errors);
    char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    enum MHD_Result ret = respond(r, status, "application/problem+json", s, strlen(s));
    free(s);
    return ret;
}

void http_field_error(json_t *errors, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", *field ? field : "body",
                                            "message", msg));
}

void http_unknown_fields(json_t *errors, json_t *body, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        size_t i = 0;
        while (known[i] && strcmp(k, known[i]) != 0)
            i++;
        if (!known[i])
            http_field_error(errors, k, "unknown field");
    }
}

/* ---- request helpers ----------------------------------------------------------------- */

int http_pct_decode(const char *s, size_t n, char *out, size_t out_max)
{
    return pct_decode(s, n, out, out_max);
}

const char *http_query(http_req *r, const char *name, int *bad)
{
    const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw)
        return NULL;
    size_t n = strlen(raw);
    char *out = xmalloc(n + 1);
    if (http_pct_decode(raw, n, out, n + 1) != 0 || r->nscratch >= 16) {
        free(out);
        if (bad)
            *bad = 1;
        return NULL;
    }
    r->scratch[r->nscratch++] = out;
    return out;
}

json_t *http_json_object(http_req *r, enum MHD_Result *done)
{
    json_error_t err;
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len,
                           JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!j) {
        char detail[300];
        /* Valid JSON that Posthorn does not take: 422, not "not JSON". */
        if (json_error_code(&err) == json_error_duplicate_key ||
            json_error_code(&err) == json_error_null_byte_in_key) {
            int dup = json_error_code(&err) == json_error_duplicate_key;
            json_t *errors = json_array();
            http_field_error(errors, "body", dup ? "has a duplicate key in an object"
                                                 : "has an object key containing NUL");
            *done = http_problem(r, 422, NULL,
                                 dup ? "The JSON body has a duplicate key."
                                     : "The JSON body has an object key containing NUL.", errors);
            return NULL;
        }
        snprintf(detail, sizeof detail, "The body is not valid UTF-8 JSON: %s (line %d, column %d).",
                 err.text, err.line, err.column);
        /* jansson quotes the offending input, which may be invalid UTF-8 itself */
        for (char *p = detail; *p; p++)
            if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
                *p = '?';
        *done = http_problem(r, 400, NULL, detail, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *done = http_problem(r, 400, NULL, "The body must be a JSON object.", NULL);
        return NULL;
    }
    return j;
}

/* ---- routing ------------------------------------------------------------------------- */

/* Matches path against a route pattern; fills decoded params. 1 match, 0 no, -1 bad escape. */
static int match_path(const char *pattern, const char *path, http_req *r)
{
    int np = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            const char *uend = strchr(u, '/');
            size_t ul = uend ? (size_t)(uend - u) : strlen(u);
            if (ul == 0 || np >= HTTP_MAX_PARAMS)
                return 0;
            char *dec = xmalloc(ul + 1);
            if (http_pct_decode(u, ul, dec, ul + 1) != 0) {
                free(dec);
                for (int i = 0; i < np; i++) { free(r->params[i]); r->params[i] = NULL; }
                return -1;
            }
            r->params[np++] = dec;
            p = pend + 1;
            u += ul;
            continue;
        }
        if (*p != *u)
            break;
        p++;
        u++;
    }
    if (*p == '\0' && *u == '\0')
        return 1;
    for (int i = 0; i < np; i++) { free(r->params[i]); r->params[i] = NULL; }
    return 0;
}

static enum MHD_Result route_request(http_req *r)
{
    const char *method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;
    char allow[128] = "";
    /* A literal path ("/v1/messages/batch") wins over a pattern that also matches it
     * ("/v1/messages/{id}"), so its other methods answer 405, not 404. */
    int literal = 0;
    for (int i = 0; i < route_count; i++)
        if (!strchr(routes[i].path, '{') && strcmp(routes[i].path, r->path) == 0)
            literal = 1;
    for (int i = 0; i < route_count; i++) {
        if (literal && strchr(routes[i].path, '{'))
            continue;
        int m = match_path(routes[i].path, r->path, r);
        if (m < 0)
            return http_problem(r, 400, NULL, "The path has a malformed percent-escape.", NULL);
        if (m == 0)
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            r->route_idx = i;
            return MHD_YES;
        }
        for (int k = 0; k < HTTP_MAX_PARAMS; k++) { free(r->params[k]); r->params[k] = NULL; }
        if (!strstr(allow, routes[i].method)) {
            size_t al = strlen(allow);
            snprintf(allow + al, sizeof allow - al, "%s%s", al ? ", " : "", routes[i].method);
        }
    }
    if (*allow) {
        http_add_header(r, "Allow", allow);
        return http_problem(r, 405, NULL, "This method is not allowed on this path.", NULL);
    }
    return http_problem(r, 404, NULL, "No such route.", NULL);
}

static enum MHD_Result sum_headers(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static int json_content_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return 0;
    const char *rest = ct + 16;
    while (*rest == ' ') rest++;
    if (*rest == '\0')
        return 1;
    if (*rest != ';')
        return 0;
    rest++;
    while (*rest == ' ') rest++;
    return (strncasecmp(rest, "charset=utf-8", 13) == 0 && (rest[13] == '\0' || rest[13] == ' ')) ||
           (strncasecmp(rest, "charset=\"utf-8\"", 15) == 0 && rest[15] == '\0');
}

/* Everything decided from the request line and headers, before any body byte is read. */
static enum MHD_Result begin(http_req *r)
{
    if (r->url_len > HTTP_URL_MAX)
        return http_problem(r, 414, NULL, "The URL is longer than 2048 bytes.", NULL);
    size_t hbytes = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, sum_headers, &hbytes);
    if (hbytes > HTTP_HEADERS_MAX)
        return http_problem(r, 431, NULL, "The request headers are larger than 16 KB.", NULL);

    enum MHD_Result ret = route_request(r);
    if (r->responded)
        return ret;
    const route *rt = &routes[r->route_idx];

    if (rt->scope != SCOPE_PUBLIC) {
        ret = auth_request(r, rt->scope);
        if (r->responded)
            return ret;
        rl_result rl;
        ratelimit_take(r->auth.operator ? "operator" : r->auth.account_id, r->auth.key_prefix,
                       r->auth.rate, &rl);
        r->rl_limit = rl.limit;
        r->rl_remaining = rl.remaining;
        r->rl_reset_s = rl.reset_s;
        if (!rl.allowed) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", rl.retry_after_s);
            http_add_header(r, "Retry-After", ra);
            return http_problem(r, 429, NULL, "This API key is over its request rate.", NULL);
        }
    }

    int64_t max = rt->body == BODY_NONE ? BODYLESS_MAX : rt->body_max ? rt->body_max : cfg.body_max;
    int has_body_method = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                          strcmp(r->method, "PATCH") == 0;
    if (rt->body == BODY_STREAM && has_body_method) {
        r->streaming = 1;
        ret = rt->handler(r);
        r->streaming = 0;
        if (r->responded || r->on_chunk)
            return ret;
    }
    if (rt->body == BODY_JSON && has_body_method) {
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        if (!json_content_type(ct))
            return http_problem(r, 415, NULL,
                                "The body must be sent as Content-Type: application/json.", NULL);
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end || end == cl || n > (unsigned long long)max) {
            char detail[96];
            snprintf(detail, sizeof detail, "The body is larger than this route's limit of %lld bytes.",
                     (long long)max);
            return http_problem(r, 413, NULL, detail, NULL);
        }
    }
    buf_init(&r->body, (size_t)max);
    return MHD_YES;
}

static enum MHD_Result dispatch(http_req *r)
{
    const route *rt = &routes[r->route_idx];
    enum MHD_Result ret = rt->handler(r);
    if (!r->responded && !r->resume) {   /* resume set: suspended, answered later */
        log_error("handler for %s %s gave no response", rt->method, rt->path);
        ret = http_problem(r, 500, NULL, "Internal error.", NULL);
    }
    return ret;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    http_req *r = *req_cls;
    if (!r->started) {
        r->started = 1;
        r->conn = conn;
        r->method = method;
        r->path = xstrdup(url);
        return begin(r);
    }
    if (r->resume && !r->responded)
        return r->resume(r);
    if (r->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size && r->on_chunk) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return r->on_chunk(r, upload_data, n);
    }
    if (*upload_data_size) {
        if (buf_append(&r->body, upload_data, *upload_data_size) != 0) {
            /* Only a chunked body gets here (a long Content-Length was refused up front):
             * a response cannot be queued mid-body, so the connection is closed. */
            r->body_too_large = 1;
            r->status = 413;
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(r);
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
    http_req *r = xcalloc(1, sizeof *r);
    ids_new("req_", r->request_id);
    r->url_len = strlen(uri);
    r->route_idx = -1;
    r->start_us = time_mono_us();
    buf_init(&r->body, 0);
    atomic_fetch_add(&in_flight, 1);
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_req *r = *req_cls;
    if (!r)
        return;
    int64_t dur = time_mono_us() - r->start_us;
    int status = r->status ? r->status : 0;
    metrics_observe(r->route_idx, status, dur);
    json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:I}", "request_id", r->request_id,
                          "method", r->method ? r->method : "", "path", r->path ? r->path : "",
                          "route", r->route_idx >= 0 ? routes[r->route_idx].name : "unmatched",
                          "status", status, "duration_ms", (double)dur / 1000.0,
                          "bytes_in", (json_int_t)r->body.len);
    if (r->auth.authenticated) {
        json_object_set_new(f, "key_prefix", json_string(r->auth.key_prefix));
        if (!r->auth.operator)
            json_object_set_new(f, "account_id", json_string(r->auth.account_id));
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        json_object_set_new(f, "terminated", json_integer(toe));
    if (r->body_too_large)
        json_object_set_new(f, "body_too_large", json_true());
    log_fields(LOG_INFO, f, "request");

    free(r->path);
    for (int i = 0; i < HTTP_MAX_PARAMS; i++)
        free(r->params[i]);
    for (int i = 0; i < r->nxh; i++) {
        free(r->xh_name[i]);
        free(r->xh_val[i]);
    }
    for (int i = 0; i < r->nscratch; i++)
        free(r->scratch[i]);
    buf_free(&r->body);
    if (r->ctx_free)
        r->ctx_free(r->ctx);
    free(r);
    *req_cls = NULL;
    atomic_fetch_sub(&in_flight, 1);
}

static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);   /* we decode path segments and query values ourselves */
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_fields(LOG_WARN, json_pack("{s:s}", "component", "microhttpd"), "%s", msg);
}

int server_start(void)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (server_parse_addr(cfg.http_addr, &ss, &sl) != 0) {
        log_error("POSTHORN_HTTP_ADDR: cannot parse %s", cfg.http_addr);
        return -1;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned timeout_s = (unsigned)((cfg.http_timeout_ms + 999) / 1000);
    daemon_api = MHD_start_daemon(
        flags, 0, NULL, NULL, access_cb, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg.http_threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg.http_max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, NULL,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
        MHD_OPTION_END);
    if (!daemon_api) {
        log_error("cannot listen on %s", cfg.http_addr);
        return -1;
    }
    log_info("listening on %s", cfg.http_addr);
    return 0;
}

void server_shutdown(int64_t grace_ms)
{
    if (!daemon_api)
        return;
    MHD_socket s = MHD_quiesce_daemon(daemon_api);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    int64_t end = time_mono_ms() + grace_ms;
    while (atomic_load(&in_flight) > 0 && time_mono_ms() < end)
        time_sleep_ms(20, NULL);
    long left = atomic_load(&in_flight);
    if (left > 0)
        log_warn("shutdown grace over with %ld requests in flight", left);
    MHD_stop_daemon(daemon_api);
    daemon_api = NULL;
}
