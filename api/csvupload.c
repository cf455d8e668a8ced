/* api/csvupload.c - the streamed text/csv upload driver (see csvupload.h). */
#include "api/csvupload.h"
#include "lib/config.h"
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int csvupload_is_csv(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "text/csv", 8) != 0)
        return 0;
    return ct[8] == '\0' || ct[8] == ';' || ct[8] == ' ';
}

void csvupload_init(csvupload *u, const csvupload_spec *spec)
{
    memset(u, 0, sizeof *u);
    u->spec = spec;
    u->rejected = json_array();
    u->dbst = DB_OK;
}

void csvupload_release(csvupload *u)
{
    if (u->csv)
        csv_free(u->csv);
    u->csv = NULL;
    json_decref(u->rejected);
    u->rejected = NULL;
}

void csvupload_reject(csvupload *u, long long row, const char *email, const char *reason)
{
    u->rejected_count++;
    if (json_array_size(u->rejected) >= CSVUP_REJECT_MAX)
        return;
    json_t *o = json_pack("{s:I, s:s}", "row", (json_int_t)row, "reason", reason);
    if (email)
        json_object_set_new(o, "email", json_string(email));
    json_array_append_new(u->rejected, o);
}

void csvupload_fatal(csvupload *u, const char *fmt, ...)
{
    if (u->fatal)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->fatal_msg, sizeof u->fatal_msg, fmt, ap);
    va_end(ap);
    for (char *p = u->fatal_msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    u->fatal = 1;
}

static int on_record(void *ctx, size_t row_no, const char *const *fields, const size_t *lens,
                     size_t nfields, const char *error)
{
    csvupload *u = ctx;
    if (!u->header_done) {
        u->header_done = 1;
        if (error)
            csvupload_fatal(u, "The CSV header row is not valid (%s); nothing was stored.", error);
        else
            u->spec->header(u, fields, lens, nfields);
        return u->fatal;
    }
    u->rows++;
    if (error) {
        csvupload_reject(u, (long long)row_no, NULL, error);
        return 0;
    }
    u->spec->row(u, row_no, fields, lens, nfields);
    return u->dbst != DB_OK;
}

static enum MHD_Result on_chunk(http_req *r, const char *data, size_t len)
{
    csvupload *u = r->ctx;
    u->bytes += (long long)len;
    if (u->fatal || u->over_cap || u->dbst != DB_OK)
        return u->bytes > cfg.csv_max + u->spec->discard_max ? MHD_NO : MHD_YES;
    if (u->bytes > cfg.csv_max) {
        /* only a chunked body gets here (a long Content-Length is refused up front): the
         * rows wholly before the cap are stored, the partial one and the rest are not */
        size_t keep = len - (size_t)(u->bytes - cfg.csv_max);
        if (keep)
            csv_feed(u->csv, data, keep, on_record, u);
        u->over_cap = 1;
        return MHD_YES;
    }
    csv_feed(u->csv, data, len, on_record, u);
    return MHD_YES;
}

enum MHD_Result csvupload_start(http_req *r, void *ctx, void (*ctx_free)(void *))
{
    csvupload *u = ctx;
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end || end == cl || n > (unsigned long long)cfg.csv_max) {
            ctx_free(ctx);
            char detail[200];
            snprintf(detail, sizeof detail, "The CSV body is larger than the limit of %lld "
                     "bytes; nothing was stored.", (long long)cfg.csv_max);
            return http_problem(r, 413, NULL, detail, NULL);
        }
    }
    u->csv = csv_new(u->spec->max_field, u->spec->max_fields, u->spec->max_line);
    r->ctx = ctx;
    r->ctx_free = ctx_free;
    r->on_chunk = on_chunk;
    return MHD_YES;
}

enum MHD_Result csvupload_finish(http_req *r, csvupload *u)
{
    if (!u->fatal && !u->over_cap && u->dbst == DB_OK)
        csv_finish(u->csv, on_record, u);
    if (!u->header_done)
        csvupload_fatal(u, "The CSV body is empty: it needs a header row with an email column.");
    return csvupload_answer(r, u);
}

static int cmp_row(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "row"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "row"));
    return x < y ? -1 : x > y;
}

/* {inserted, updated, rejected (by row), rejected_count} */
static json_t *summary(const csvupload *u)
{
    size_t n = json_array_size(u->rejected);
    json_t **v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(u->rejected, i));
    qsort(v, n, sizeof *v, cmp_row);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(sorted, v[i]);
    free(v);
    return json_pack("{s:I, s:I, s:o, s:I}", "inserted", (json_int_t)u->inserted, "updated",
                     (json_int_t)u->updated, "rejected", sorted, "rejected_count",
                     (json_int_t)u->rejected_count);
}

enum MHD_Result csvupload_answer(http_req *r, csvupload *u)
{
    if (u->dbst == DB_OK && !u->fatal)
        u->spec->flush(u);
    if (u->fatal) {
        json_t *errors = json_array();
        http_field_error(errors, "body", "%s", u->fatal_msg);
        return http_problem(r, 422, NULL, u->fatal_msg, errors);
    }
    if (!u->over_cap && u->dbst == DB_OK)
        return http_send_json(r, 200, summary(u));
    /* the problem says what was stored before it, with the same counts as a 200 */
    char detail[400];
    if (u->over_cap && u->spec->detail_counts)
        snprintf(detail, sizeof detail,
                 "The CSV body is larger than the limit of %lld bytes. The rows before the "
                 "limit were stored: %lld inserted, %lld updated, %lld rejected; the rest was "
                 "not read.", (long long)cfg.csv_max, u->inserted, u->updated, u->rejected_count);
    else if (u->over_cap)
        snprintf(detail, sizeof detail, "The CSV body is larger than the limit of %lld bytes. "
                 "The rows before the limit were stored; the rest was not read.",
                 (long long)cfg.csv_max);
    else if (u->spec->detail_counts)
        snprintf(detail, sizeof detail,
                 "The database failed during the import. Stored before the failure: %lld "
                 "inserted, %lld updated; retry the upload (it is an upsert).",
                 u->inserted, u->updated);
    else
        snprintf(detail, sizeof detail, "The database failed during the import; the rows "
                 "counted here were stored. Retry the upload (it is an upsert).");
    unsigned status = u->over_cap ? 413 : u->dbst == DB_DOWN ? 503 : 500;
    if (status == 503)
        http_add_header(r, "Retry-After", "1");
    json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                          status == 413 ? "Content Too Large" : "Import interrupted", "status",
                          (int)status, "detail", detail);
    json_t *sum = summary(u);
    json_object_update(p, sum);
    json_decref(sum);
    char *js = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    enum MHD_Result ret = http_send_bytes(r, status, "application/problem+json", js, strlen(js));
    free(js);
    return ret;
}
