/* worker/render.h - the render stage: turns a claimed batch into messages ready to send.
 * Each message of the batch is loaded once (with its attachments) and rendered once for
 * all its recipients in the batch: subject, text and html go through lib/template with
 * the message's data (html-escaped in html; strict messages fail on a missing variable),
 * then lib/mime builds the message with Message-ID <msg_id@from-domain> and the Date of
 * acceptance. A message stored with a template reference ({"template": {"id", "version"}})
 * renders that exact version's parts, loaded once per distinct version per batch; partials
 * {{> name}}, in stored and inline content alike, resolve to the account's live templates of that name (latest version, the same
 * part), compiled at most once per batch; a missing one renders empty (strict: fails).
 * Then, when the From domain (A-label, lower case) is a domain row of the message's account
 * (verified or not), the message is DKIM-signed with its rsa key (selector dkim_selector)
 * and ed25519 key (dkim_selector + "e") when present, the keys opened (lib/secretbox, ad =
 * account id "\n" name) and parsed once per (account, domain) per batch, the body hash
 * computed once per message; each job's envelope sender becomes
 * bounces+<token_verp_local>@<return_path_domain>. No domain row: unsigned, the From address
 * as envelope sender. A key that does not open fails the message's jobs. Broadcast mail gets
 * List-Unsubscribe: <POSTHORN_PUBLIC_URL/u/TOKEN> (TOKEN_UNSUBSCRIBE, payload account id
 * "\n" delivery id) and List-Unsubscribe-Post per recipient: wjob.head holds that
 * recipient's signatures and header, the body stays shared (wmsg.mime from wjob.body_off).
 * Tracked mail (messages.tracking opens/clicks, worker/track) with an html part is the
 * exception: its html links and open pixel carry per-recipient tokens, so each recipient
 * gets a whole message of its own in wjob.head (own body hash and signatures, empty shared
 * body); its links are stored once per message (tracked_links) for the click redirect.
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
