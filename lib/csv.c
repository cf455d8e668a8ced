#include "lib/csv.h"
#include "lib/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char CSV_ERR_LINE_TOO_LONG[] = "line too long";
const char CSV_ERR_FIELD_TOO_LONG[] = "field too long";
const char CSV_ERR_TOO_MANY_FIELDS[] = "too many fields";
const char CSV_ERR_UNTERMINATED[] = "unterminated quote";
const char CSV_ERR_AFTER_QUOTE[] = "unexpected character after closing quote";
const char CSV_ERR_UTF8[] = "invalid UTF-8";
const char CSV_ERR_NUL[] = "NUL character";

typedef enum {
    ST_FIELD_START,   /* at the start of a field */
    ST_UNQUOTED,      /* inside an unquoted field */
    ST_QUOTED,        /* inside a quoted field */
    ST_QUOTE,         /* a '"' inside a quoted field: an escape or the closing quote */
    ST_AFTER_CR,      /* a record ended with CR: an LF right after belongs to it */
} csv_state;

struct csv_parser {
    size_t max_field, max_fields, max_line;
    csv_state st;
    buf rec;                 /* decoded fields of the record, each followed by a NUL */
    size_t field_start;      /* offset in rec of the field being read */
    size_t nfields;
    size_t *offs;            /* [max_fields] offset of each field in rec */
    size_t *lens;            /* [max_fields] */
    const char **ptrs;       /* [max_fields] built when the record is delivered */
    size_t raw;              /* raw bytes of the record so far */
    const char *error;       /* first problem of the record, NULL while fine */
    /* UTF-8 validation across the raw bytes of the record (delimiters are ASCII, so a
     * sequence cut by one is invalid here too). */
    unsigned u8_need;
    unsigned char u8_lo, u8_hi;
    size_t line;             /* 1-based line the parser is on */
    size_t rec_line;         /* line on which the current record started */
    size_t rows;
    unsigned bom;            /* BOM bytes matched at the start; 3 or more: done */
    int stopped;
};

csv_parser *csv_new(size_t max_field, size_t max_fields, size_t max_line)
{
    if (max_field == 0 || max_fields == 0 || max_line == 0 || max_fields > SIZE_MAX / 64 ||
        max_line > SIZE_MAX / 4)
        return NULL;
    csv_parser *p = xcalloc(1, sizeof *p);
    p->max_field = max_field;
    p->max_fields = max_fields;
    p->max_line = max_line;
    /* decoded bytes never exceed raw bytes; plus one NUL per field */
    buf_init(&p->rec, max_line + max_fields);
    p->offs = xcalloc(max_fields, sizeof *p->offs);
    p->lens = xcalloc(max_fields, sizeof *p->lens);
    p->ptrs = xcalloc(max_fields, sizeof *p->ptrs);
    p->line = p->rec_line = 1;
    p->st = ST_FIELD_START;
    return p;
}

void csv_free(csv_parser *p)
{
    if (!p)
        return;
    buf_free(&p->rec);
    free(p->offs);
    free(p->lens);
    free(p->ptrs);
    free(p);
}

size_t csv_rows(const csv_parser *p) { return p->rows; }

static void set_error(csv_parser *p, const char *why)
{
    if (!p->error)
        p->error = why;
}

static void utf8_byte(csv_parser *p, unsigned char c)
{
    if (p->u8_need) {
        if (c < p->u8_lo || c > p->u8_hi) {
            set_error(p, CSV_ERR_UTF8);
            p->u8_need = 0;
            return;
        }
        p->u8_need--;
        p->u8_lo = 0x80;
        p->u8_hi = 0xBF;
        return;
    }
    if (c == 0) {
        set_error(p, CSV_ERR_NUL);
    } else if (c < 0x80) {
        return;
    } else if (c >= 0xC2 && c <= 0xDF) {
        p->u8_need = 1, p->u8_lo = 0x80, p->u8_hi = 0xBF;
    } else if (c == 0xE0) {
        p->u8_need = 2, p->u8_lo = 0xA0, p->u8_hi = 0xBF;          /* no overlong */
    } else if (c == 0xED) {
        p->u8_need = 2, p->u8_lo = 0x80, p->u8_hi = 0x9F;          /* no surrogates */
    } else if (c >= 0xE1 && c <= 0xEF) {
        p->u8_need = 2, p->u8_lo = 0x80, p->u8_hi = 0xBF;
    } else if (c == 0xF0) {
        p->u8_need = 3, p->u8_lo = 0x90, p->u8_hi = 0xBF;
    } else if (c >= 0xF1 && c <= 0xF3) {
        p->u8_need = 3, p->u8_lo = 0x80, p->u8_hi = 0xBF;
    } else if (c == 0xF4) {
        p->u8_need = 3, p->u8_lo = 0x80, p->u8_hi = 0x8F;          /* <= U+10FFFF */
    } else {
        set_error(p, CSV_ERR_UTF8);
    }
}

static void add(csv_parser *p, char c)
{
    if (p->error)
        return;
    if (p->rec.len - p->field_start >= p->max_field) {
        set_error(p, CSV_ERR_FIELD_TOO_LONG);
        return;
    }
    if (buf_append(&p->rec, &c, 1) != 0)   /* cannot happen: raw is checked first */
        set_error(p, CSV_ERR_LINE_TOO_LONG);
}

static void end_field(csv_parser *p)
{
    if (p->error)
        return;
    if (p->nfields == p->max_fields) {
        set_error(p, CSV_ERR_TOO_MANY_FIELDS);
        return;
    }
    p->offs[p->nfields] = p->field_start;
    p->lens[p->nfields] = p->rec.len - p->field_start;
    p->nfields++;
    if (buf_append(&p->rec, "", 1) != 0) {
        set_error(p, CSV_ERR_LINE_TOO_LONG);
        return;
    }
    p->field_start = p->rec.len;
}

static void reset_record(csv_parser *p)
{
    buf_reset(&p->rec);
    p->field_start = 0;
    p->nfields = 0;
    p->raw = 0;
    p->error = NULL;
    p->u8_need = 0;
    p->rec_line = p->line;
    p->st = ST_FIELD_START;
}

/* Delivers the record read so far (its last field already ended). */
static int deliver(csv_parser *p, csv_row_fn cb, void *ctx)
{
    if (p->u8_need)
        set_error(p, CSV_ERR_UTF8);
    p->rows++;
    int rc;
    if (p->error) {
        rc = cb(ctx, p->rec_line, p->ptrs, p->lens, 0, p->error);
    } else {
        for (size_t i = 0; i < p->nfields; i++)
            p->ptrs[i] = p->rec.data + p->offs[i];
        rc = cb(ctx, p->rec_line, p->ptrs, p->lens, p->nfields, NULL);
    }
    return rc;
}

/* A line end outside quotes: ends the record, or is a blank line when nothing came before. */
static int line_end(csv_parser *p, char c, csv_row_fn cb, void *ctx)
{
    int rc = 0;
    int blank = p->st == ST_FIELD_START && p->raw == 0 && p->nfields == 0;
    if (!blank) {
        end_field(p);
        rc = deliver(p, cb, ctx);
    }
    p->line++;
    reset_record(p);
    if (c == '\r')
        p->st = ST_AFTER_CR;
    return rc;
}

static int byte(csv_parser *p, char c, csv_row_fn cb, void *ctx)
{
    if (p->st == ST_AFTER_CR) {
        p->st = ST_FIELD_START;
        if (c == '\n')
            return 0;
    }
    if ((c == '\r' || c == '\n') && p->st != ST_QUOTED)
        return line_end(p, c, cb, ctx);

    if (p->raw >= p->max_line) {
        set_error(p, CSV_ERR_LINE_TOO_LONG);
    } else {
        p->raw++;
        if (!p->error)
            utf8_byte(p, (unsigned char)c);
    }
    switch (p->st) {
    case ST_FIELD_START:
        if (c == '"')
            p->st = ST_QUOTED;
        else if (c == ',')
            end_field(p);
        else {
            add(p, c);
            p->st = ST_UNQUOTED;
        }
        break;
    case ST_UNQUOTED:
        if (c == ',') {
            end_field(p);
            p->st = ST_FIELD_START;
        } else {
            add(p, c);
        }
        break;
    case ST_QUOTED:
        if (c == '"') {
            p->st = ST_QUOTE;
        } else {
            if (c == '\n')
                p->line++;
            add(p, c);
        }
        break;
    case ST_QUOTE:
        if (c == '"') {
            add(p, c);
            p->st = ST_QUOTED;
        } else if (c == ',') {
            end_field(p);
            p->st = ST_FIELD_START;
        } else {
            set_error(p, CSV_ERR_AFTER_QUOTE);
            p->st = ST_UNQUOTED;
        }
        break;
    case ST_AFTER_CR:
        break;
    }
    return 0;
}

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

int csv_feed(csv_parser *p, const char *data, size_t len, csv_row_fn cb, void *ctx)
{
    if (p->stopped)
        return p->stopped;
    size_t i = 0;
    while (p->bom < 3 && i < len) {
        if ((unsigned char)data[i] == BOM[p->bom]) {
            p->bom++;
            i++;
            continue;
        }
        /* not a BOM after all: the bytes matched so far are data */
        unsigned matched = p->bom;
        p->bom = 3;
        for (unsigned k = 0; k < matched; k++) {
            int rc = byte(p, (char)BOM[k], cb, ctx);
            if (rc)
                return p->stopped = rc;
        }
    }
    for (; i < len; i++) {
        int rc = byte(p, data[i], cb, ctx);
        if (rc)
            return p->stopped = rc;
    }
    return 0;
}

int csv_finish(csv_parser *p, csv_row_fn cb, void *ctx)
{
    if (p->stopped)
        return p->stopped;
    if (p->bom < 3) {
        unsigned matched = p->bom;
        p->bom = 3;
        for (unsigned k = 0; k < matched; k++) {
            int rc = byte(p, (char)BOM[k], cb, ctx);
            if (rc)
                return p->stopped = rc;
        }
    }
    int rc = 0;
    switch (p->st) {
    case ST_AFTER_CR:
        break;
    case ST_FIELD_START:
        if (p->raw == 0 && p->nfields == 0)
            break;
        /* fall through */
    case ST_UNQUOTED:
    case ST_QUOTE:
        end_field(p);
        rc = deliver(p, cb, ctx);
        break;
    case ST_QUOTED:
        set_error(p, CSV_ERR_UNTERMINATED);
        rc = deliver(p, cb, ctx);
        break;
    }
    reset_record(p);
    p->st = ST_AFTER_CR;   /* nothing pending */
    if (rc)
        p->stopped = rc;
    return rc;
}

static int is_formula_start(char c)
{
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

int csv_put_cell(buf *b, const char *s, size_t n, unsigned flags)
{
    int neutralize = (flags & CSV_NEUTRALIZE) && n > 0 && is_formula_start(s[0]);
    /* a leading U+FEFF is quoted so that, first in a file, it is not taken for a BOM */
    int quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ' ||
                          (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0));
    for (size_t i = 0; i < n && !quote; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            quote = 1;
    size_t save = b->len;
    if (!quote) {
        if ((neutralize && buf_append(b, "'", 1) != 0) || buf_append(b, s, n) != 0)
            goto full;
        return 0;
    }
    if (buf_append(b, "\"", 1) != 0 || (neutralize && buf_append(b, "'", 1) != 0))
        goto full;
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"')
            continue;
        if (buf_append(b, s + from, i + 1 - from) != 0 || buf_append(b, "\"", 1) != 0)
            goto full;
        from = i + 1;
    }
    if (buf_append(b, s + from, n - from) != 0 || buf_append(b, "\"", 1) != 0)
        goto full;
    return 0;
full:
    b->len = save;
    if (b->data)
        b->data[save] = '\0';
    return -1;
}

void csv_unneutralize(const char **s, size_t *n)
{
    if (*n >= 2 && (*s)[0] == '\'' && is_formula_start((*s)[1])) {
        (*s)++;
        (*n)--;
    }
}
