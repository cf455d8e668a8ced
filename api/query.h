/* api/query.h - what the list and read handlers share: query-parameter parsing that adds
 * field errors to one list (so a request gets every error at once), and PGresult cells as
 * JSON values. */
#ifndef POSTHORN_QUERY_H
#define POSTHORN_QUERY_H
#include "api/http.h"
#include "db/db.h"
#include "lib/addr.h"

#include <libpq-fe.h>

/* ?limit= (1..1000, default 50). */
void query_limit(http_req *r, json_t *errors, int *limit);
/* ?name= that must be one of allowed (NULL-terminated); *out NULL when absent. */
void query_enum(http_req *r, json_t *errors, const char *name, const char *const *allowed,
                const char *message, const char **out);
/* ?recipient= as a normalised address; returns 1 when given and valid. */
int  query_recipient(http_req *r, json_t *errors, addr_t *out);
/* ?since= and ?until= as RFC 3339, re-formatted in UTC ("" when absent). */
void query_time_range(http_req *r, json_t *errors, char since[32], char until[32]);

/* Answers a page: rows 0..limit-1 of res (which holds up to limit+1 rows) through row_json,
 * and next_cursor over the text of columns cursor_cols[0..ncols) of the last row shown when
 * there is a row beyond it (bound to cursor_owner), else null. Clears res. */
enum MHD_Result query_send_page(http_req *r, PGresult *res, int limit,
                                json_t *(*row_json)(PGresult *, int), const char *cursor_owner,
                                const int *cursor_cols, int ncols);

/* GET list of an account's rows, newest first: st takes ($1 account, $2 created_at text,
 * $3 id, $4 limit) and returns rows whose column ts_col is the full-precision created_at
 * and column 0 the id; row_json turns one row into its JSON object. Answers the page with
 * next_cursor (bound to the account), or the 422/503. */
enum MHD_Result query_keyset_page(http_req *r, int st, json_t *(*row_json)(PGresult *, int),
                                  int ts_col);

/* An account's row that could not be loaded: the 503 of db status s, or (s is DB_OK: there
 * is none) 404 "No such <what>.". */
enum MHD_Result query_missing(http_req *r, db_status s, const char *what);
/* DELETE of one of the account's rows: st takes ($1 account, $2 r->params[0]); 204, 404 "No
 * such <what>." when it deleted nothing, or the 503. */
enum MHD_Result query_delete_owned(http_req *r, int st, const char *what);

/* The event types (API.md "Events"), NULL-terminated. */
extern const char *const query_event_types[];
/* An event id "evt_<xid>_<seq>" -> its two decimal parts; -1 when malformed. */
int query_event_id(const char *s, char xid[24], char seq[24]);

json_t *pg_json(PGresult *res, int row, int col);   /* a json/jsonb cell; NULL cell -> null */
json_t *pg_str(PGresult *res, int row, int col);    /* text cell or null */
json_t *pg_int(PGresult *res, int row, int col);    /* integer cell or null */
#endif
