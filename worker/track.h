/* worker/track.h - open and click tracking of the html part, as pure functions.
 * track_plan_make() reads a rendered html part once per message: which <a href> values are
 * http(s) links to rewrite (not mailto:, tel:, #anchors or relative links, not the
 * unsubscribe link, nothing inside <!-- comments -->, <script> or <style>), what URL a
 * browser would follow for each (character references decoded, surrounding whitespace
 * dropped, spaces and non-ASCII bytes percent-encoded), a short id per distinct URL, and
 * where the open pixel goes (before the last </body>, else at the end).
 * track_apply() then writes one recipient's html: each planned href value replaced by the
 * URL the caller makes for that link (its token), and the pixel. At most max_links links
 * are rewritten per message; the others stay as they are. */
#ifndef POSTHORN_TRACK_H
#define POSTHORN_TRACK_H
#include "lib/buf.h"

#include <stddef.h>

#define TRACK_MAX_LINKS   1000     /* links rewritten per message */
#define TRACK_URL_MAX     4096     /* longer URLs are left as they are */
#define TRACK_LINK_ID_LEN 16       /* hex of the first 8 bytes of SHA-256(url) */

typedef struct {
    size_t start, end;                  /* the value in the html, with its quotes if any */
    char  *url;                         /* what a browser follows (NUL-terminated) */
    size_t url_len;
    char   id[TRACK_LINK_ID_LEN + 1];   /* same URL, same id */
} track_link;

typedef struct {
    track_link *links;
    size_t      nlinks;
    int         pixel;                  /* insert the open pixel */
    size_t      pixel_at;
} track_plan;

/* skip_prefix (may be NULL): links whose URL starts with it are left alone (the
 * unsubscribe link, POSTHORN_PUBLIC_URL/u/). clicks, opens: what to track. Never fails
 * (a document it cannot follow keeps the links found before the trouble). */
void track_plan_make(const char *html, size_t n, int clicks, int opens, const char *skip_prefix,
                     size_t max_links, track_plan *p);
void track_plan_free(track_plan *p);

/* Appends to out the URL (not yet html-escaped) that replaces link l / the pixel's src. */
typedef struct {
    int (*link_url)(void *ctx, const track_link *l, buf *out);
    int (*pixel_url)(void *ctx, buf *out);
    void *ctx;
} track_urls;

/* Writes html with the plan applied into out (URLs html-escaped, always double-quoted).
 * 0, or -1 when out's maximum is reached or a callback failed. */
int track_apply(const track_plan *p, const char *html, size_t n, const track_urls *u, buf *out);
#endif
