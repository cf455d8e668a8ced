/* lib/template.h - the template renderer behind subjects, text and html bodies.
 * This cut is a minimal Mustache subset, kept behind the interface the full renderer (the
 * rendering issue) will implement: {{ name }} and dotted {{ a.b.c }} lookups, html-escaped
 * when asked; {{{ name }}} and {{& name }} unescaped; {{! comments }}. Strings render as
 * they are, numbers and booleans as their JSON text; null, missing values, objects and
 * arrays render empty, or are an error naming the key when strict. Sections, inverted
 * sections, partials and delimiter changes are reported as unsupported, never guessed at.
 * Errors carry "line L, column C: ..." (1-based; columns count UTF-8 characters). */
#ifndef POSTHORN_TEMPLATE_H
#define POSTHORN_TEMPLATE_H
#include "lib/buf.h"

#include <jansson.h>
#include <stddef.h>

/* Renders src (n bytes) with data (an object, or NULL for none) and appends the result to
 * out, whose maximum bounds the output. Returns 0, or -1 with a message in err (out may
 * then hold a partial result). */
int tpl_render(const char *src, size_t n, const json_t *data, int html_escape, int strict,
               buf *out, char *err, size_t errlen);

/* Checks syntax only (for the API, before accepting a template). 0 ok, -1 with err. */
int tpl_check(const char *src, size_t n, char *err, size_t errlen);
#endif
