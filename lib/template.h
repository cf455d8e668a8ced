/* lib/template.h - the Mustache engine behind subjects, text and html bodies.
 * A template is compiled once into an opaque tpl (a flat list of nodes; sections hold the
 * index of their end) and rendered many times against JSON data, without recursion on the C
 * stack: sections and partials run on an explicit, bounded stack of frames.
 * Supported: {{x}}, {{{x}}}, {{&x}}, dotted names, {{.}}, sections (lists, objects, truthy
 * and falsy values), inverted sections, comments, partials {{>name}} (and dynamic names
 * {{>*name}}) resolved through a callback, set delimiters, and the spec's standalone-line
 * and partial-indentation rules. Inheritance ({{<parent}}, {{$block}}) and lambdas are not
 * supported: the first is a syntax error, never guessed at. Values: strings as they are,
 * numbers and booleans as their JSON text; null and missing render empty, objects and lists
 * render empty as values.
 * Falsy for sections: missing, null, false, "" and the empty list.
 * Strict mode makes a missing name (in a tag or a section), a null value or an object or
 * list used as a value an error naming the key, and a missing partial an error.
 * Limits: template size, section nesting, partial nesting, render steps, and the output
 * (the buf's maximum); each is an error, never a crash.
 * Errors carry "line L, column C: ..." (1-based; columns count UTF-8 characters), prefixed
 * with `partial "name", ` when they happen inside a partial. */
#ifndef POSTHORN_TEMPLATE_H
#define POSTHORN_TEMPLATE_H
#include "lib/buf.h"

#include <jansson.h>
#include <stddef.h>

#define TPL_MAX_BYTES         (512u * 1024)   /* a template's source */
#define TPL_MAX_DEPTH         64u             /* sections nested in one template */
#define TPL_MAX_PARTIAL_DEPTH 16u             /* partials nested in one render */
#define TPL_MAX_STEPS         100000000ul     /* nodes visited by one render */

typedef struct tpl tpl;

typedef struct {
    size_t   max_bytes;   /* 0: TPL_MAX_BYTES */
    unsigned max_depth;   /* 0: TPL_MAX_DEPTH */
    unsigned long max_steps;   /* 0: TPL_MAX_STEPS; bounds renders with this template at the top */
} tpl_opts;

/* Resolves a partial by name (len bytes, not NUL-terminated). Returns 0 with *out set to a
 * compiled template that stays valid for the whole render, or to NULL when there is no such
 * partial (it renders empty; an error in strict mode); -1 with a message in err to stop the
 * render (e.g. the partial's source did not compile). */
typedef int (*tpl_partial_fn)(void *ctx, const char *name, size_t len, const tpl **out,
                              char *err, size_t errlen);

/* Compiles src (n bytes; NUL bytes are text). opts may be NULL. Returns NULL with a message
 * in err on a syntax error or a limit. */
tpl *tpl_compile(const char *src, size_t n, const tpl_opts *opts, char *err, size_t errlen);

/* Renders t with data (any JSON value, or NULL for none) and appends to out, whose maximum
 * bounds the output. html_escape escapes & < > " ' in {{x}} values (never in literal text,
 * {{{x}}} or {{&x}}). resolve may be NULL (every partial is then missing). Returns 0, or -1
 * with a message in err (out may then hold a partial result). */
int tpl_render_compiled(const tpl *t, const json_t *data, int html_escape, int strict,
                        tpl_partial_fn resolve, void *resolve_ctx, buf *out, char *err,
                        size_t errlen);

void tpl_free(tpl *t);

/* Compile + render + free, with no partials (each renders empty, or fails when strict). */
int tpl_render(const char *src, size_t n, const json_t *data, int html_escape, int strict,
               buf *out, char *err, size_t errlen);

/* Checks syntax and limits only (for the API, before accepting a template). 0 ok, -1 with
 * err. */
int tpl_check(const char *src, size_t n, char *err, size_t errlen);
#endif
