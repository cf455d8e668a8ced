/* api/messages.h - the checks of a message body that POST /v1/messages (and /batch) and
 * POST /v1/campaigns share: unknown fields, from (with the verified-domain rule), content
 * (a stored template reference, or inline subject/html/text templates) with its data,
 * send_at and tracking. Custom headers are checked by message_headers_check (handlers.h).
 *
 * Problems are appended to v->errors as {"field", "message"}, every one found (the caller
 * answers 422 with all of them); a database failure is left in *dbst (the caller answers
 * 503/500), after which no further query is made. The two callers' answers predate this
 * module and differ in places; `wording` keeps each one's (see msgv_wording). */
#ifndef POSTHORN_MESSAGES_H
#define POSTHORN_MESSAGES_H
#include "db/db.h"
#include "lib/addr.h"

#include <jansson.h>

typedef enum {
    MSGV_SEND,       /* field = path + name ("" -> "body"); every problem of a part listed */
    MSGV_CAMPAIGN,   /* field = name as given; template: the first problem; terser texts */
} msgv_wording;

typedef struct {
    json_t      *errors;    /* borrowed: problems are appended */
    char         path[256]; /* MSGV_SEND: field path prefix ("" or "messages[3].") */
    msgv_wording wording;
} msgv;

void msgv_err(msgv *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "unknown field" for each key of m not in known (NULL-terminated). */
void msgv_unknown_fields(msgv *v, json_t *m, const char *const *known);
/* m's "from" (required): "a@b", "Name <a@b>" or {"email","name"}, on one of the account's
 * verified domains unless cfg.allow_unverified. 1 and *from / name (name_max >= 257) filled
 * when valid, else 0. */
int msgv_from(msgv *v, json_t *m, const char *account_id, addr_t *from, char *name,
              size_t name_max, db_status *dbst);
/* m's "template" reference (resolved to {"id","version"}), or "subject" and "html"/"text"
 * (template syntax checked), set into content; then m's "data" (an object or null). */
void msgv_content(msgv *v, json_t *m, const char *account_id, json_t *content, db_status *dbst);
/* send_at (jsa not NULL, not null): RFC 3339, at most a minute past, 30 days ahead. 1 and
 * out (normalised) filled when valid, else 0. */
int msgv_send_at(msgv *v, json_t *jsa, char out[32]);
/* tracking (not NULL): {"opens": bool, "clicks": bool}. */
void msgv_tracking(msgv *v, json_t *tracking);
#endif
