/* api/csvupload.h - the streamed text/csv upload driver shared by POST /v1/lists/{id}/contacts
 * and POST /v1/suppressions/import: the body is fed to lib/csv as it arrives (never held
 * whole) up to cfg.csv_max, the first record goes to the caller's header callback, the others
 * to its row callback, which gathers rows and writes a batch when it has enough (flush); the
 * answer says what was stored: inserted and updated counts, the rejected rows (the first
 * CSVUP_REJECT_MAX, with row number and reason) and their count.
 *
 *   200  the summary;
 *   413  a Content-Length over the cap (nothing read), or a chunked body that passed it: the
 *        rows wholly before the cap are stored, the rest is read and dropped (up to
 *        discard_max more, then the connection is closed);
 *   422  a bad or empty header (csvupload_fatal): nothing stored;
 *   503/500  a write failed (dbst): the problem carries the counts stored before it.
 *
 * The caller's request context starts with a csvupload (its first member): r->ctx points to
 * both. The counts, rejections and dbst may also serve a buffered upload: csvupload_init,
 * csvupload_reject, then csvupload_answer (as the JSON contacts upload does). */
#ifndef POSTHORN_CSVUPLOAD_H
#define POSTHORN_CSVUPLOAD_H
#include "api/http.h"
#include "db/db.h"
#include "lib/csv.h"

#define CSVUP_REJECT_MAX 1000

typedef struct csvupload csvupload;

typedef struct {
    size_t    max_field, max_fields, max_line;   /* lib/csv limits */
    long long discard_max;   /* bytes read on after a stop before the connection is closed */
    /* The header row (a bad one is reported by the driver): checks the column names; on a
     * problem calls csvupload_fatal, which stops the upload. */
    void (*header)(csvupload *u, const char *const *fields, const size_t *lens, size_t n);
    /* A good data row (bad ones are rejected by the driver). A write that fails sets
     * u->dbst, which stops the upload. */
    void (*row)(csvupload *u, size_t row_no, const char *const *fields, const size_t *lens,
                size_t n);
    /* Writes what row gathered (at the end of the body); sets u->dbst on failure. */
    void (*flush)(csvupload *u);
    /* Whether the 413/5xx detail text repeats the counts (the contacts upload's wording). */
    int detail_counts;
} csvupload_spec;

struct csvupload {
    const csvupload_spec *spec;
    csv_parser *csv;
    int         header_done;
    int         fatal;              /* 422, with fatal_msg */
    char        fatal_msg[300];
    long long   bytes;              /* body bytes seen */
    int         over_cap;
    long long   rows;               /* data rows seen (good and bad) */
    long long   inserted, updated, rejected_count;
    json_t     *rejected;           /* [{row, email?, reason}] */
    db_status   dbst;               /* DB_OK until a write failed */
};

/* Whether a Content-Type header value is text/csv (parameters allowed). */
int csvupload_is_csv(const char *content_type);
void csvupload_init(csvupload *u, const csvupload_spec *spec);
/* Frees what u holds (not u). */
void csvupload_release(csvupload *u);
/* A rejected row (email may be NULL): counted, and listed while the list is short. */
void csvupload_reject(csvupload *u, long long row, const char *email, const char *reason);
/* Stops the upload with a 422 (the first call's message wins; control characters are
 * replaced by '?'). */
void csvupload_fatal(csvupload *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Before the body (r->streaming): answers 413 (and frees ctx) for a Content-Length over
 * cfg.csv_max; else starts the parser and takes the body: r->ctx = ctx (whose first member is
 * the initialised csvupload), r->ctx_free = ctx_free. */
enum MHD_Result csvupload_start(http_req *r, void *ctx, void (*ctx_free)(void *));
/* After the body (the handler's second call): ends the parse and answers. */
enum MHD_Result csvupload_finish(http_req *r, csvupload *u);
/* Flushes (unless stopped) and answers as above. */
enum MHD_Result csvupload_answer(http_req *r, csvupload *u);
#endif
