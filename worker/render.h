/* worker/render.h - the render stage: turns a claimed batch into messages ready to send.
 * Each message of the batch is loaded once (with its attachments) and rendered once for
 * all its recipients in the batch: subject, text and html go through lib/template with
 * the message's data (html-escaped in html; strict messages fail on a missing variable),
 * then lib/mime builds the message with Message-ID <msg_id@from-domain> and the Date of
 * acceptance. A message stored with a template reference ({"template": {"id", "version"}})
 * renders that exact version's parts, loaded once per distinct version per batch; partials
 * {{> name}} resolve to the account's live templates of that name (latest version, the same
 * part), compiled at most once per batch; a missing one renders empty (strict: fails).
 * A message that cannot be rendered gives its jobs a `failed` outcome with
 * the reason; the database being down is "retry later", never a failure. */
#ifndef POSTHORN_RENDER_H
#define POSTHORN_RENDER_H
#include "db/db.h"
#include "db/queue.h"
#include "lib/buf.h"
#include "worker/batch.h"

#include <stddef.h>

#define RENDER_MAX (40u * 1024 * 1024)   /* a rendered message (API.md: 40 MB) */

/* Asked between retries while PostgreSQL is unavailable: non-zero stops trying. */
typedef int (*render_give_up_fn)(void *ctx, const wbatch *b);

/* Renders every pending job of b. Returns 0, or -1 when give_up said to stop while the
 * database was unavailable: the jobs left are still JOB_PENDING. */
int render_batch(db_conn *db, wbatch *b, render_give_up_fn give_up, void *ctx);

/* Renders one loaded message with inline content into out (MIME, CRLF); template
 * references need render_batch (they fail here). 0, or -1 with the reason in err. */
int render_message(const queue_message *m, const char *message_id, buf *out, char *err,
                   size_t errlen);
#endif
