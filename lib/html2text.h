/* lib/html2text.h - a readable text/plain rendering of an HTML body, for messages that give
 * only html. Tags are dropped (script/style/head/title with their content), block elements
 * become line breaks, links become "text (URL)", entities are decoded. One forward pass, no
 * recursion, any input accepted; the output is valid UTF-8 with no control characters but \n. */
#ifndef POSTHORN_HTML2TEXT_H
#define POSTHORN_HTML2TEXT_H
#include <stddef.h>

#include "lib/buf.h"

/* Appends the text of html[0..n) to out: 0 ok, -1 when out's maximum was reached. */
int html2text(const char *html, size_t n, buf *out);
#endif
