/* lib/csv.h - an RFC 4180 CSV push parser for streaming uploads, and a CSV cell writer.
 *
 * The parser takes the input in chunks of any size (csv_feed, then csv_finish once at the
 * end) and calls back once per record. Memory is bounded by the limits given to csv_new:
 * one record is buffered at most, and a record longer than max_line is reported as a bad
 * row and skipped to its end without being buffered.
 *
 * Accepted: fields separated by ',', records ended by CRLF, LF or a bare CR; quoted fields
 * with "" for a quote and embedded CR/LF/','; a UTF-8 BOM at the very start (skipped).
 * A '"' inside an unquoted field is kept as data (lenient, like most readers); text after a
 * closing quote ("ab"c) makes the row bad. Completely empty lines are skipped (they still
 * count for row numbers).
 *
 * row_no is the 1-based line number on which the record starts (so it matches what an
 * editor or spreadsheet shows when no field holds a line break); the header row, if the
 * caller has one, is row 1.
 *
 * For a bad row the callback gets nfields 0 and error set to one of the CSV_ERR_* strings
 * (the first problem found in the row); fields/lens must not be read then.
 * For a good row each fields[i] is NUL-terminated (lens[i] excludes it), valid UTF-8
 * without NUL bytes, and valid until the callback returns. */
#ifndef POSTHORN_CSV_H
#define POSTHORN_CSV_H
#include <stddef.h>

#include "lib/buf.h"

typedef struct csv_parser csv_parser;

/* Returns 0 to go on, nonzero to stop: csv_feed/csv_finish then return that value. */
typedef int (*csv_row_fn)(void *ctx, size_t row_no, const char *const *fields,
                          const size_t *lens, size_t nfields, const char *error);

extern const char CSV_ERR_LINE_TOO_LONG[];     /* "line too long" */
extern const char CSV_ERR_FIELD_TOO_LONG[];    /* "field too long" */
extern const char CSV_ERR_TOO_MANY_FIELDS[];   /* "too many fields" */
extern const char CSV_ERR_UNTERMINATED[];      /* "unterminated quote" */
extern const char CSV_ERR_AFTER_QUOTE[];       /* "unexpected character after closing quote" */
extern const char CSV_ERR_UTF8[];              /* "invalid UTF-8" */
extern const char CSV_ERR_NUL[];               /* "NUL character" */

/* max_field: decoded bytes of one field; max_fields: fields per record; max_line: raw bytes
 * of one record without its line end (quotes and embedded line breaks count). All >= 1. */
csv_parser *csv_new(size_t max_field, size_t max_fields, size_t max_line);
/* 0 when all of data was taken, else the callback's nonzero value (the parser stays
 * stopped: later calls return that value again). */
int csv_feed(csv_parser *p, const char *data, size_t len, csv_row_fn cb, void *ctx);
/* End of input: delivers a last record that has no line end. Same return as csv_feed. */
int csv_finish(csv_parser *p, csv_row_fn cb, void *ctx);
/* Records delivered so far (good and bad, blank lines not counted). */
size_t csv_rows(const csv_parser *p);
void csv_free(csv_parser *p);

/* Writer. csv_put_cell appends one cell, quoted when it holds ',', '"', CR, LF, starts or
 * ends with a space, or starts with U+FEFF. With CSV_NEUTRALIZE a cell starting with '=', '+', '-', '@', TAB or CR
 * (a formula to spreadsheet programs) gets a leading "'" (OWASP "CSV injection" advice);
 * csv_unneutralize undoes exactly that on import. Returns 0, or -1 when b is full. */
enum { CSV_NEUTRALIZE = 1 };
int csv_put_cell(buf *b, const char *s, size_t n, unsigned flags);
/* If s is "'" followed by one of the characters above, skips the "'": *s and *n updated. */
void csv_unneutralize(const char **s, size_t *n);
#endif
