/* api/messages.c - POST /v1/messages, POST /v1/messages/batch, GET /v1/messages[/{id}],
 * DELETE /v1/messages/{id}. Sending validates everything that can be validated up front
 * (every field error listed at once), turns the request into rows and hands them to the
 * group-commit writer (api/writer.h); the answer comes only after the commit. The checks
 * POST /v1/campaigns shares (from, content, send_at, tracking) are exported by messages.h. */
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/messages.h"
#include "api/query.h"
#include "api/writer.h"
#include "db/db.h"
#include "db/redis.h"
#include "lib/addr.h"
#include "lib/config.h"
#include "lib/crypto.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mime.h"
#include "lib/template.h"
#include "lib/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECIPIENTS     50
#define MAX_BATCH          500
#define MAX_SUBJECT        998
#define MAX_HEADERS        100
#define MAX_ATTACHMENTS    100
#define MAX_ATTACH_BYTES   (25L * 1024 * 1024)
#define MAX_CONTENT_BYTES  (40L * 1024 * 1024)
#define MAX_TAGS           20
#define MAX_TAG_LEN        128
#define MAX_METADATA       50
#define MAX_META_KEY       64
#define MAX_META_VALUE     1000
#define MAX_FILENAME       255
#define SEND_AT_PAST_MS    (60LL * 1000)
#define SEND_AT_FUTURE_MS  (30LL * 24 * 3600 * 1000)

/* ---- validation helpers (api/messages.h) ----------------------------------------------- */

void msgv_err(msgv *v, const char *field, const char *fmt, ...)
{
    char msg[400], path[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (v->wording == MSGV_SEND) {
        snprintf(path, sizeof path, "%s%s", v->path, *field ? field : "body");
        field = path;
    }
    json_array_append_new(v->errors, json_pack("{s:s, s:s}", "field", field, "message", msg));
}

void msgv_unknown_fields(msgv *v, json_t *m, const char *const *known)
{
    const char *k;
    json_t *val;
    json_object_foreach(m, k, val) {
        int found = 0;
        for (int i = 0; known[i]; i++)
            found |= strcmp(k, known[i]) == 0;
        if (!found)
            msgv_err(v, k, "unknown field");
    }
}

/* Valid UTF-8 (jansson guarantees it) without NUL or other control characters. */
static int clean_text(const char *s, size_t n, int allow_newlines)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || c == 0x7f)
            return 0;
        if (c < 0x20 && !(allow_newlines && (c == '\n' || c == '\r' || c == '\t')))
            return 0;
    }
    return 1;
}


/* A mailbox: "a@b", "Name <a@b>" or {"email","name"}. Returns 0 and fills a/name. */
static int mailbox(msgv *v, const char *field, json_t *j, addr_t *a, char *name, size_t name_max)
{
    int camp = v->wording == MSGV_CAMPAIGN;
    name[0] = '\0';
    if (json_is_string(j)) {
        const char *why = addr_parse_mailbox(json_string_value(j), json_string_length(j), a, name,
                                             name_max);
        if (why) {
            msgv_err(v, field, "is not a valid address: %s", why);
            return -1;
        }
        return 0;
    }
    if (!json_is_object(j)) {
        msgv_err(v, field, "must be an address string or an object with email and name");
        return -1;
    }
    int bad = 0;
    const char *k;
    json_t *val;
    char sub[300];
    json_object_foreach(j, k, val) {
        if (strcmp(k, "email") && strcmp(k, "name")) {
            if (camp) {
                msgv_err(v, field, "unknown field %.60s", k);
            } else {
                snprintf(sub, sizeof sub, "%s.%s", field, k);
                msgv_err(v, sub, "unknown field");
            }
            bad = 1;
        }
    }
    json_t *e = json_object_get(j, "email"), *n = json_object_get(j, "name");
    snprintf(sub, sizeof sub, "%s.email", field);
    if (!json_is_string(e)) {
        msgv_err(v, sub, camp ? "is not a valid address: must be a string"
                              : e ? "must be a string" : "is required");
        bad = 1;
    } else {
        const char *why = addr_parse(json_string_value(e), json_string_length(e), a);
        if (why) {
            msgv_err(v, sub, "is not a valid address: %s", why);
            bad = 1;
        }
    }
    snprintf(sub, sizeof sub, "%s.name", field);
    if (n && !json_is_null(n)) {
        if (!json_is_string(n) || !addr_name_valid(json_string_value(n), json_string_length(n)) ||
            json_string_length(n) >= name_max) {
            msgv_err(v, sub, "must be a string of at most 256 octets without control characters");
            bad = 1;
        } else {
            memcpy(name, json_string_value(n), json_string_length(n) + 1);
        }
    }
    return bad ? -1 : 0;
}

static json_t *addr_json(const addr_t *a, const char *name)
{
    return json_pack("{s:s, s:o}", "email", a->email, "name", *name ? json_string(name) : json_null());
}

int msgv_from(msgv *v, json_t *m, const char *account_id, addr_t *from, char *name,
              size_t name_max, db_status *dbst)
{
    json_t *jf = json_object_get(m, "from");
    name[0] = '\0';
    if (!jf) {
        msgv_err(v, "from", "is required");
        return 0;
    }
    if (mailbox(v, "from", jf, from, name, name_max) != 0)
        return 0;
    /* Mail goes out only from the account's verified domains (unless the operator allows
     * unverified ones, as development setups do). */
    if (!cfg.allow_unverified && *dbst == DB_OK) {
        const char *dom = strrchr(from->email, '@') + 1;
        const char *params[] = {account_id, dom};
        PGresult *res;
        db_status s = db_exec(db_thread(), ST_DOM_FROM_VERIFIED, params, &res);
        if (s != DB_OK)
            *dbst = s;
        else {
            if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
                msgv_err(v, "from", "%s is not a verified sending domain of this account (add "
                                    "it with POST /v1/domains, publish its records, then verify "
                                    "it)", dom);
            PQclear(res);
        }
    }
    return 1;
}

int msgv_send_at(msgv *v, json_t *jsa, char out[32])
{
    int64_t ms;
    if (!json_is_string(jsa) ||
        time_parse_rfc3339(json_string_value(jsa), json_string_length(jsa), &ms) != 0)
        msgv_err(v, "send_at", "must be an RFC 3339 date-time such as 2026-12-01T09:00:00Z");
    else if (ms < time_wall_ms() - SEND_AT_PAST_MS)
        msgv_err(v, "send_at", "is more than a minute in the past");
    else if (ms > time_wall_ms() + SEND_AT_FUTURE_MS)
        msgv_err(v, "send_at", "is more than 30 days ahead");
    else {
        time_format_rfc3339(ms, out);
        return 1;
    }
    return 0;
}

void msgv_tracking(msgv *v, json_t *tracking)
{
    int ok = json_is_object(tracking);
    const char *k;
    json_t *val;
    if (ok)
        json_object_foreach(tracking, k, val) {
            if ((strcmp(k, "opens") && strcmp(k, "clicks")) || !json_is_boolean(val))
                ok = 0;
        }
    if (!ok)
        msgv_err(v, "tracking", "must be {\"opens\": bool, \"clicks\": bool}");
}

static int template_ok(msgv *v, const char *field, json_t *j, size_t max)
{
    if (!json_is_string(j)) {
        msgv_err(v, field, "must be a string");
        return 0;
    }
    size_t n = json_string_length(j);
    if (n > max) {
        msgv_err(v, field, "is longer than %zu octets", max);
        return 0;
    }
    if (memchr(json_string_value(j), '\0', n)) {
        msgv_err(v, field, "must not contain NUL");
        return 0;
    }
    char err[256];
    if (tpl_check(json_string_value(j), n, err, sizeof err) != 0) {
        msgv_err(v, field, "template error: %s", err);
        return 0;
    }
    return 1;
}

/* ---- stored templates -------------------------------------------------------------------- */

/* A `template` reference: {"name": ...} or {"id": "tpl_..."}, optional "version" (>= 1).
 * Resolved here, with one read on the handler thread, to the concrete id and version
 * (the latest when none is given), which is what the message stores: the worker renders
 * exactly that version even if a newer one is published later. A database failure is left
 * in *dbst (the caller answers 503); unknown references are field errors. */
static void resolve_template(msgv *v, json_t *jt, const char *account_id, json_t *content,
                             db_status *dbst)
{
    int camp = v->wording == MSGV_CAMPAIGN;   /* stops at the first problem */
    if (!json_is_object(jt)) {
        msgv_err(v, "template", "must be an object with name or id, and optionally version");
        return;
    }
    int bad = 0;
    const char *k;
    json_t *val;
    json_object_foreach(jt, k, val) {
        if (strcmp(k, "name") && strcmp(k, "id") && strcmp(k, "version")) {
            if (camp) {
                msgv_err(v, "template", "unknown field %.60s", k);
                return;
            }
            char f[96];
            snprintf(f, sizeof f, "template.%.60s", k);
            msgv_err(v, f, "unknown field");
            bad = 1;
        }
    }
    json_t *jn = json_object_get(jt, "name"), *ji = json_object_get(jt, "id"),
           *jv = json_object_get(jt, "version");
    if (camp) {
        if ((jn != NULL) == (ji != NULL)) {
            msgv_err(v, "template", "takes exactly one of name or id");
            return;
        }
        json_t *js = jn ? jn : ji;
        if (!json_is_string(js) || json_string_length(js) == 0 || json_string_length(js) > 100 ||
            strlen(json_string_value(js)) != json_string_length(js)) {
            msgv_err(v, jn ? "template.name" : "template.id", "must be a non-empty string");
            return;
        }
    } else if (jn && ji) {
        msgv_err(v, "template", "takes exactly one of name or id, not both");
        bad = 1;
    } else if (!jn && !ji) {
        msgv_err(v, "template", "needs name or id");
        bad = 1;
    } else if (jn && (!json_is_string(jn) || json_string_length(jn) == 0 ||
                      json_string_length(jn) > 100)) {
        msgv_err(v, "template.name", "must be a template name (a string of 1 to 100 characters)");
        bad = 1;
    } else if (ji && (!json_is_string(ji) || json_string_length(ji) == 0 ||
                      json_string_length(ji) > 64)) {
        msgv_err(v, "template.id", "must be a template id (tpl_...)");
        bad = 1;
    }
    long long want = 0;
    if (jv && !json_is_null(jv)) {
        if (!json_is_integer(jv) || json_integer_value(jv) < 1 ||
            json_integer_value(jv) > 2147483647) {
            msgv_err(v, "template.version", "must be an integer of at least 1");
            bad = 1;
        } else {
            want = json_integer_value(jv);
        }
    }
    if (bad)
        return;
    const char *id = ji ? json_string_value(ji) : "", *name = jn ? json_string_value(jn) : "";
    if (strlen(id) != (ji ? json_string_length(ji) : 0) ||
        strlen(name) != (jn ? json_string_length(jn) : 0)) {   /* NUL inside: cannot exist */
        msgv_err(v, "template", "no such template in this account");
        return;
    }
    char version[24] = "";
    if (want)
        snprintf(version, sizeof version, "%lld", want);
    const char *params[] = {account_id, id, name, version};
    PGresult *res;
    db_status st = db_exec(db_thread(), ST_TPL_RESOLVE, params, &res);
    if (st != DB_OK) {
        *dbst = st;
        return;
    }
    if (PQntuples(res) != 1) {
        msgv_err(v, "template", "no such template in this account");
    } else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        msgv_err(v, "template", "no version %s", PQgetvalue(res, 0, 1));
    } else {
        json_object_set_new(content, "template",
                            json_pack("{s:s, s:I}", "id", PQgetvalue(res, 0, 0), "version",
                                      (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
    }
    PQclear(res);
}

void msgv_content(msgv *v, json_t *m, const char *account_id, json_t *content, db_status *dbst)
{
    json_t *jt = json_object_get(m, "template");
    json_t *jsub = json_object_get(m, "subject"), *jh = json_object_get(m, "html"),
           *jx = json_object_get(m, "text");
    if (jt) {
        if (jsub || jh || jx)
            msgv_err(v, "template", "cannot be combined with subject, html or text");
        else if (*dbst == DB_OK)
            resolve_template(v, jt, account_id, content, dbst);
    } else {
        if (!jsub)
            msgv_err(v, "subject", "is required (or use template)");
        else if (template_ok(v, "subject", jsub, MAX_SUBJECT)) {
            if (!mime_header_value_valid(json_string_value(jsub), json_string_length(jsub)))
                msgv_err(v, "subject", "must not contain CR, LF, NUL or other control characters%s",
                         v->wording == MSGV_SEND ? " (also not inside encoded-words)" : "");
            else
                json_object_set(content, "subject", jsub);
        }
        if ((!jh || json_is_null(jh)) && (!jx || json_is_null(jx)))
            msgv_err(v, "html", "html or text is required");
        if (jh && !json_is_null(jh) && template_ok(v, "html", jh, MAX_CONTENT_BYTES))
            json_object_set(content, "html", jh);
        if (jx && !json_is_null(jx) && template_ok(v, "text", jx, MAX_CONTENT_BYTES))
            json_object_set(content, "text", jx);
    }
    json_t *data = json_object_get(m, "data");
    if (data && !json_is_null(data) && !json_is_object(data))
        msgv_err(v, "data", "must be an object");
}

/* ---- one message ------------------------------------------------------------------------ */

typedef struct {
    json_t *message;       /* messages row */
    json_t *attachments;   /* attachments rows */
    json_t *deliveries;    /* deliveries rows */
    json_t *answer;        /* {"id","status","recipients":[...]} */
    json_t *slots;         /* delivery id -> recipient object in answer */
} built;

static const char *const known_fields[] = {
    "from", "to", "cc", "bcc", "reply_to", "subject", "html", "text", "data", "strict",
    "headers", "attachments", "metadata", "tags", "stream", "send_at", "tracking", "sandbox",
    "template", NULL};

static void check_headers(msgv *v, json_t *h, json_t *out);

void message_headers_check(json_t *errors, json_t *h, json_t *out)
{
    msgv v = {errors, "", MSGV_SEND};
    check_headers(&v, h, out);
}

static void check_headers(msgv *v, json_t *h, json_t *out)
{
    if (!json_is_object(h)) {
        msgv_err(v, "headers", "must be an object of header names to string values");
        return;
    }
    if (json_object_size(h) > MAX_HEADERS)
        msgv_err(v, "headers", "has more than %d headers", MAX_HEADERS);
    const char *k;
    json_t *val;
    json_object_foreach(h, k, val) {
        char field[160];
        snprintf(field, sizeof field, "headers.%.120s", k);
        const char *why = mime_custom_header_check(k, strlen(k));
        if (why) {
            msgv_err(v, field, "%s", why);
            continue;
        }
        if (!json_is_string(val) ||
            !mime_header_value_valid(json_string_value(val), json_string_length(val))) {
            msgv_err(v, field, "must be a string of at most 998 octets without CR, LF, NUL or "
                               "other control characters (also not inside encoded-words)");
            continue;
        }
        json_array_append_new(out, json_pack("[s, s]", k, json_string_value(val)));
    }
}

static void check_attachments(msgv *v, json_t *a, const char *account_id, const char *msg_id,
                              json_t *rows)
{
    if (!json_is_array(a)) {
        msgv_err(v, "attachments", "must be an array");
        return;
    }
    if (json_array_size(a) > MAX_ATTACHMENTS)
        msgv_err(v, "attachments", "has more than %d attachments", MAX_ATTACHMENTS);
    long total = 0;
    size_t i;
    json_t *att;
    json_array_foreach(a, i, att) {
        char f[96];
        if (!json_is_object(att)) {
            snprintf(f, sizeof f, "attachments[%zu]", i);
            msgv_err(v, f, "must be an object");
            continue;
        }
        int bad = 0;
        const char *k;
        json_t *val;
        json_object_foreach(att, k, val) {
            if (strcmp(k, "filename") && strcmp(k, "content_type") && strcmp(k, "content") &&
                strcmp(k, "disposition") && strcmp(k, "content_id")) {
                snprintf(f, sizeof f, "attachments[%zu].%.40s", i, k);
                msgv_err(v, f, "unknown field");
                bad = 1;
            }
        }
        json_t *fn = json_object_get(att, "filename"), *ct = json_object_get(att, "content_type"),
               *co = json_object_get(att, "content"), *di = json_object_get(att, "disposition"),
               *ci = json_object_get(att, "content_id");
        snprintf(f, sizeof f, "attachments[%zu].filename", i);
        if (!json_is_string(fn) || json_string_length(fn) == 0 ||
            json_string_length(fn) > MAX_FILENAME ||
            !clean_text(json_string_value(fn), json_string_length(fn), 0) ||
            !mime_header_value_valid(json_string_value(fn), json_string_length(fn))) {
            msgv_err(v, f, "is required: 1 to %d octets without control characters", MAX_FILENAME);
            bad = 1;
        }
        snprintf(f, sizeof f, "attachments[%zu].content_type", i);
        int ct_ok = json_is_string(ct) && json_string_length(ct) <= 127;
        if (ct_ok) {
            /* type "/" subtype, both RFC 2045 tokens */
            const char *s = json_string_value(ct);
            const char *slash = strchr(s, '/');
            ct_ok = slash && slash != s && slash[1];
            for (const char *p = s; ct_ok && *p; p++)
                if (p != slash && ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
                                   strchr("()<>@,;:\\\"/[]?=", *p)))
                    ct_ok = 0;
        }
        if (!ct_ok) {
            msgv_err(v, f, "is required: a MIME type like application/pdf");
            bad = 1;
        }
        snprintf(f, sizeof f, "attachments[%zu].content", i);
        long len = json_is_string(co) ? crypto_b64_decode(json_string_value(co), json_string_length(co),
                                                          NULL, 0) : -1;
        if (len < 0) {
            msgv_err(v, f, "is required: the file as standard base64 (with padding, no line "
                           "breaks)");
            bad = 1;
        } else {
            total += len;
        }
        const char *disp = "attachment";
        snprintf(f, sizeof f, "attachments[%zu].disposition", i);
        if (di) {
            if (json_is_string(di) && (strcmp(json_string_value(di), "attachment") == 0 ||
                                       strcmp(json_string_value(di), "inline") == 0))
                disp = json_string_value(di);
            else {
                msgv_err(v, f, "must be attachment or inline");
                bad = 1;
            }
        }
        snprintf(f, sizeof f, "attachments[%zu].content_id", i);
        const char *cid = NULL;
        if (ci && !json_is_null(ci)) {
            const char *s = json_is_string(ci) ? json_string_value(ci) : NULL;
            int ok = s && json_string_length(ci) >= 1 && json_string_length(ci) <= 250;
            for (const char *p = s; ok && *p; p++)
                if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("<>\"()[]\\,;:", *p))
                    ok = 0;
            if (!ok) {
                msgv_err(v, f, "must be 1 to 250 printable ASCII characters without "
                               "<>()[],;:\\\" or spaces");
                bad = 1;
            } else
                cid = s;
        } else if (strcmp(disp, "inline") == 0) {
            msgv_err(v, f, "is required for inline attachments (referenced as cid:...)");
            bad = 1;
        }
        if (!bad)
            json_array_append_new(rows, json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o, s:O}",
                                                  "account_id", account_id, "message_id", msg_id,
                                                  "idx", (int)i, "filename", json_string_value(fn),
                                                  "content_type", json_string_value(ct),
                                                  "disposition", disp, "content_id",
                                                  cid ? json_string(cid) : json_null(), "content", co));
    }
    if (total > MAX_ATTACH_BYTES)
        msgv_err(v, "attachments", "decode to more than 25 MB in total");
}

static void check_metadata(msgv *v, json_t *m)
{
    if (!json_is_object(m)) {
        msgv_err(v, "metadata", "must be an object of string values");
        return;
    }
    if (json_object_size(m) > MAX_METADATA)
        msgv_err(v, "metadata", "has more than %d keys", MAX_METADATA);
    const char *k;
    json_t *val;
    json_object_foreach(m, k, val) {
        char f[120];
        snprintf(f, sizeof f, "metadata.%.64s", k);
        size_t kl = strlen(k);
        if (kl == 0 || kl > MAX_META_KEY || !clean_text(k, kl, 0))
            msgv_err(v, f, "keys must be 1 to %d octets without control characters", MAX_META_KEY);
        else if (!json_is_string(val) || json_string_length(val) > MAX_META_VALUE ||
                 !mime_header_value_valid(json_string_value(val), json_string_length(val)))
            msgv_err(v, f, "must be a string of at most %d octets without control characters",
                     MAX_META_VALUE);
    }
}

static void check_tags(msgv *v, json_t *t)
{
    if (!json_is_array(t)) {
        msgv_err(v, "tags", "must be an array of strings");
        return;
    }
    if (json_array_size(t) > MAX_TAGS)
        msgv_err(v, "tags", "has more than %d tags", MAX_TAGS);
    size_t i;
    json_t *tag;
    json_array_foreach(t, i, tag) {
        char f[48];
        snprintf(f, sizeof f, "tags[%zu]", i);
        if (!json_is_string(tag) || json_string_length(tag) == 0 ||
            json_string_length(tag) > MAX_TAG_LEN ||
            !mime_header_value_valid(json_string_value(tag), json_string_length(tag)))
            msgv_err(v, f, "must be 1 to %d octets without control characters", MAX_TAG_LEN);
    }
}

static void add_recipients(msgv *v, json_t *list, const char *kind, int required,
                           const built *b, const char *account_id, const char *msg_id,
                           const char *stream, const char *send_at, json_t *seen, json_t *header,
                           int *count, int *smtputf8)
{
    if (!list || json_is_null(list)) {
        if (required)
            msgv_err(v, kind, "is required: at least one recipient");
        return;
    }
    if (!json_is_array(list)) {
        msgv_err(v, kind, "must be an array of addresses");
        return;
    }
    if (required && json_array_size(list) == 0)
        msgv_err(v, kind, "needs at least one recipient");
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        char field[48];
        snprintf(field, sizeof field, "%s[%zu]", kind, i);
        addr_t a;
        char name[257];
        if (mailbox(v, field, item, &a, name, sizeof name) != 0)
            continue;
        if (++*count > MAX_RECIPIENTS)
            continue;   /* reported once by the caller */
        char key[ADDR_MAX + 1];
        snprintf(key, sizeof key, "%s", a.email);
        addr_lower_ascii(key);
        if (json_object_get(seen, key)) {
            msgv_err(v, field, "%s is already a recipient of this message", a.email);
            continue;
        }
        json_object_set_new(seen, key, json_true());
        if (a.smtputf8)
            *smtputf8 = 1;
        if (header)
            json_array_append_new(header, addr_json(&a, name));
        char dlv[IDS_MAX];
        ids_new("dlv_", dlv);
        json_array_append_new(b->deliveries,
                              json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:o, s:b}",
                                        "account_id", account_id, "id", dlv, "message_id", msg_id,
                                        "recipient", a.email, "recipient_name",
                                        *name ? json_string(name) : json_null(), "kind", kind,
                                        "stream", stream, "send_at",
                                        send_at ? json_string(send_at) : json_null(), "smtputf8",
                                        a.smtputf8));
        json_t *slot = json_pack("{s:s, s:s}", "email", a.email, "delivery_id", dlv);
        json_array_append_new(json_object_get(b->answer, "recipients"), slot);
        json_object_set(b->slots, dlv, slot);
    }
}

/* Validates one message object; on success fills b (rows and answer). Errors go to v; a
 * database failure while resolving a template reference goes to *dbst. */
static void build_message(msgv *v, json_t *m, const char *account_id, built *b, int index,
                          db_status *dbst)
{
    size_t errors_before = json_array_size(v->errors);
    msgv_unknown_fields(v, m, known_fields);

    char msg_id[IDS_MAX];
    ids_new("msg_", msg_id);
    b->answer = index >= 0 ? json_pack("{s:i, s:s, s:s, s:[]}", "index", index, "id", msg_id,
                                       "status", "queued", "recipients")
                           : json_pack("{s:s, s:s, s:[]}", "id", msg_id, "status", "queued",
                                       "recipients");
    b->slots = json_object();
    b->deliveries = json_array();
    b->attachments = json_array();

    /* stream and send_at first: deliveries carry them */
    const char *stream = "transactional";
    json_t *js = json_object_get(m, "stream");
    if (js) {
        if (json_is_string(js) && (strcmp(json_string_value(js), "transactional") == 0 ||
                                   strcmp(json_string_value(js), "broadcast") == 0))
            stream = json_string_value(js);
        else
            msgv_err(v, "stream", "must be transactional or broadcast");
    }
    char send_at[32];
    int has_send_at = 0;
    json_t *jsa = json_object_get(m, "send_at");
    if (jsa && !json_is_null(jsa))
        has_send_at = msgv_send_at(v, jsa, send_at);

    addr_t from;
    char from_name[257];
    int from_ok = msgv_from(v, m, account_id, &from, from_name, sizeof from_name, dbst);

    json_t *reply_to = json_null();
    json_t *jr = json_object_get(m, "reply_to");
    if (jr && !json_is_null(jr)) {
        addr_t a;
        char name[257];
        if (mailbox(v, "reply_to", jr, &a, name, sizeof name) == 0) {
            json_decref(reply_to);
            reply_to = addr_json(&a, name);
        }
    }

    json_t *seen = json_object(), *hto = json_array(), *hcc = json_array();
    int count = 0, smtputf8 = from_ok && from.smtputf8;
    const char *sa = has_send_at ? send_at : NULL;
    add_recipients(v, json_object_get(m, "to"), "to", 1, b, account_id, msg_id, stream, sa, seen,
                   hto, &count, &smtputf8);
    add_recipients(v, json_object_get(m, "cc"), "cc", 0, b, account_id, msg_id, stream, sa, seen,
                   hcc, &count, &smtputf8);
    add_recipients(v, json_object_get(m, "bcc"), "bcc", 0, b, account_id, msg_id, stream, sa, seen,
                   NULL, &count, &smtputf8);
    json_decref(seen);
    if (count > MAX_RECIPIENTS)
        msgv_err(v, "to", "a message has at most %d recipients across to, cc and bcc",
                 MAX_RECIPIENTS);

    json_t *content = json_object();
    msgv_content(v, m, account_id, content, dbst);
    json_t *data = json_object_get(m, "data");
    json_t *strict = json_object_get(m, "strict"), *sandbox = json_object_get(m, "sandbox");
    if (strict && !json_is_boolean(strict))
        msgv_err(v, "strict", "must be true or false");
    if (sandbox && !json_is_boolean(sandbox))
        msgv_err(v, "sandbox", "must be true or false");

    json_t *headers = json_array();
    if (json_object_get(m, "headers"))
        check_headers(v, json_object_get(m, "headers"), headers);
    if (json_object_get(m, "attachments"))
        check_attachments(v, json_object_get(m, "attachments"), account_id, msg_id, b->attachments);
    json_t *metadata = json_object_get(m, "metadata");
    if (metadata)
        check_metadata(v, metadata);
    json_t *tags = json_object_get(m, "tags");
    if (tags)
        check_tags(v, tags);
    json_t *tracking = json_object_get(m, "tracking");
    if (tracking)
        msgv_tracking(v, tracking);

    if (json_array_size(v->errors) > errors_before || !from_ok || *dbst != DB_OK) {
        json_decref(reply_to);
        json_decref(hto);
        json_decref(hcc);
        json_decref(content);
        json_decref(headers);
        return;
    }
    /* "o" steals: the request's own values are lent with an extra reference */
    b->message = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:o, s:b}",
        "account_id", account_id, "id", msg_id, "stream", stream, "from_email", from.email,
        "from_name", *from_name ? json_string(from_name) : json_null(), "reply_to", reply_to,
        "header_to", hto, "header_cc", hcc, "content", content, "data",
        data && !json_is_null(data) ? json_incref(data) : json_object(), "headers", headers,
        "metadata", metadata ? json_incref(metadata) : json_object(), "tags",
        tags ? json_incref(tags) : json_array(), "strict", strict && json_is_true(strict),
        "sandbox", sandbox && json_is_true(sandbox), "send_at",
        has_send_at ? json_string(send_at) : json_null(), "tracking",
        tracking ? json_incref(tracking) : json_object(), "smtputf8", smtputf8);
    if (!b->message)
        die("cannot build a message row");
}

static void built_free(built *b)
{
    json_decref(b->message);
    json_decref(b->attachments);
    json_decref(b->deliveries);
    json_decref(b->answer);
    json_decref(b->slots);
    memset(b, 0, sizeof *b);
}

/* ---- sending ------------------------------------------------------------------------------ */

static enum MHD_Result finish_write(http_req *r)
{
    write_job *j = r->ctx;
    if (!j->done)
        return MHD_YES;
    if (j->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", j->retry_after);
        http_add_header(r, "Retry-After", ra);
    }
    if (j->replayed)
        http_add_header(r, "Idempotent-Replayed", "true");
    return http_send_bytes(r, j->status, j->content_type, j->body, strlen(j->body));
}

static void job_free(void *p) { write_job_free(p); }

/* The Idempotency-Key header: NULL when absent; *bad when present but malformed. */
static const char *idempotency_key(http_req *r, int *bad)
{
    const char *k = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    *bad = 0;
    if (!k)
        return NULL;
    size_t n = strlen(k);
    *bad = n < 1 || n > 255;
    for (size_t i = 0; i < n && !*bad; i++)
        if (k[i] < '!' || k[i] > '~')
            *bad = 1;
    return k;
}

/* Backpressure: above the broadcast limit broadcast sends wait; above the hard limit all do. */
static int over_limit(const char *stream)
{
    long d = writer_queue_depth();
    if (d < 0)
        return 0;
    if (d >= cfg.queue_limit)
        return 1;
    return strcmp(stream, "broadcast") == 0 && d >= cfg.queue_limit_broadcast;
}

static enum MHD_Result submit(http_req *r, write_job *j)
{
    r->ctx = j;
    r->ctx_free = job_free;
    r->resume = finish_write;
    j->conn = r->conn;
    MHD_suspend_connection(r->conn);
    if (writer_submit(j) != 0) {
        j->done = 1;
        j->status = 503;
        j->content_type = "application/problem+json";
        j->retry_after = 1;
        j->body = xstrdup("{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,"
                          "\"detail\":\"The database is unavailable or the API is overloaded; the "
                          "message was not accepted. Retry shortly.\"}");
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

static write_job *new_job(http_req *r, const char *key, unsigned ok_status)
{
    write_job *j = xcalloc(1, sizeof *j);
    snprintf(j->account_id, sizeof j->account_id, "%s", r->auth.account_id);
    j->idem_key = key ? xstrdup(key) : NULL;
    if (key)   /* only an Idempotency-Key compares request bodies */
        crypto_sha256(r->body.data ? r->body.data : "", r->body.len, j->request_hash);
    j->messages = json_array();
    j->attachments = json_array();
    j->deliveries = json_array();
    j->status_slots = json_object();
    j->message_slots = json_array();
    j->ok_status = ok_status;
    return j;
}

static void add_built(write_job *j, built *b)
{
    json_array_append(j->messages, b->message);
    json_array_extend(j->attachments, b->attachments);
    json_array_extend(j->deliveries, b->deliveries);
    json_object_update(j->status_slots, b->slots);
    json_array_append(j->message_slots, b->answer);
}

static enum MHD_Result too_busy(http_req *r)
{
    http_add_header(r, "Retry-After", "30");
    return http_problem(r, 429, NULL,
                        "The delivery queue is over its limit; retry later (broadcast mail is "
                        "held back first).", NULL);
}

static enum MHD_Result bad_idempotency_key(http_req *r)
{
    json_t *errors = json_array();
    http_field_error(errors, "Idempotency-Key", "must be 1 to 255 visible ASCII characters");
    return http_problem(r, 422, NULL, "Invalid Idempotency-Key header.", errors);
}

enum MHD_Result h_messages_send(http_req *r)
{
    int bad;
    const char *key = idempotency_key(r, &bad);
    if (bad)
        return bad_idempotency_key(r);
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    msgv v = {json_array(), "", MSGV_SEND};
    built b = {0};
    db_status dbst = DB_OK;
    build_message(&v, body, r->auth.account_id, &b, -1, &dbst);
    if (dbst != DB_OK) {
        json_decref(body);
        json_decref(v.errors);
        built_free(&b);
        return db_failure(r, dbst);
    }
    if (json_array_size(v.errors) > 0) {
        json_decref(body);
        built_free(&b);
        return http_problem(r, 422, NULL, "The message is invalid; nothing was sent.", v.errors);
    }
    json_decref(v.errors);
    const char *stream = json_string_value(json_object_get(b.message, "stream"));
    if (over_limit(stream)) {
        json_decref(body);
        built_free(&b);
        return too_busy(r);
    }
    write_job *j = new_job(r, key, 202);
    add_built(j, &b);
    j->response = json_incref(b.answer);
    built_free(&b);
    json_decref(body);
    return submit(r, j);
}

enum MHD_Result h_messages_batch(http_req *r)
{
    int bad;
    const char *key = idempotency_key(r, &bad);
    if (bad)
        return bad_idempotency_key(r);
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    static const char *const known[] = {"messages", NULL};
    http_unknown_fields(errors, body, known);
    json_t *list = json_object_get(body, "messages");
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > MAX_BATCH)
        http_field_error(errors, "messages", "must be an array of 1 to %d messages", MAX_BATCH);
    if (json_array_size(errors) > 0) {
        json_decref(body);
        return http_problem(r, 422, NULL, "The batch is invalid.", errors);
    }
    json_decref(errors);

    write_job *j = new_job(r, key, 200);
    json_t *data = json_array();
    size_t i, accepted = 0;
    json_t *m;
    int busy = 0;
    db_status dbst = DB_OK;
    json_array_foreach(list, i, m) {
        msgv v = {json_array(), "", MSGV_SEND};
        built b = {0};
        if (!json_is_object(m))
            msgv_err(&v, "message", "must be a message object");
        else
            build_message(&v, m, r->auth.account_id, &b, (int)i, &dbst);
        if (dbst != DB_OK) {   /* a template reference could not be resolved: nothing sent */
            json_decref(v.errors);
            built_free(&b);
            json_decref(data);
            json_decref(body);
            write_job_free(j);
            return db_failure(r, dbst);
        }
        if (json_array_size(v.errors) == 0 &&
            over_limit(json_string_value(json_object_get(b.message, "stream")))) {
            busy = 1;
            json_array_append_new(v.errors, json_pack("{s:s, s:s}", "field", "stream", "message",
                                                      "the delivery queue is over its limit"));
        }
        if (json_array_size(v.errors) > 0) {
            int status = busy ? 429 : 422;
            json_array_append_new(
                data, json_pack("{s:i, s:{s:s, s:s, s:i, s:s, s:o}}", "index", (int)i, "error",
                                "type", "about:blank", "title",
                                busy ? "Too Many Requests" : "Unprocessable Content", "status",
                                status, "detail", "This message is invalid; it was not sent.",
                                "errors", v.errors));
            busy = 0;
            built_free(&b);
            continue;
        }
        json_decref(v.errors);
        add_built(j, &b);
        json_array_append(data, b.answer);
        built_free(&b);
        accepted++;
    }
    json_decref(body);
    j->response = json_pack("{s:o}", "data", data);
    if (accepted == 0) {
        /* Nothing to store, and a failed request is not an idempotent result. */
        json_t *resp = json_incref(j->response);
        write_job_free(j);
        return http_send_json(r, 200, resp);
    }
    return submit(r, j);
}

/* ---- reading and cancelling --------------------------------------------------------------- */




/* The message with its recipients and event timeline; NULL with *st set on failure. */
static json_t *load_message(const char *account_id, const char *id, db_status *st, int *found)
{
    *found = 0;
    const char *params[] = {account_id, id};
    db_conn *c = db_thread();
    PGresult *res;
    if ((*st = db_exec(c, ST_MSG_GET, params, &res)) != DB_OK)
        return NULL;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return NULL;
    }
    *found = 1;
    json_t *m = json_pack("{s:s, s:s, s:{s:s, s:o}, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:s}",
                          "id", PQgetvalue(res, 0, 0), "stream", PQgetvalue(res, 0, 1), "from",
                          "email", PQgetvalue(res, 0, 2), "name", pg_str(res, 0, 3), "reply_to",
                          pg_json(res, 0, 4), "to", pg_json(res, 0, 5), "cc", pg_json(res, 0, 6),
                          "subject", pg_str(res, 0, 7), "metadata", pg_json(res, 0, 8), "tags",
                          pg_json(res, 0, 9), "sandbox", strcmp(PQgetvalue(res, 0, 10), "t") == 0,
                          "send_at", *PQgetvalue(res, 0, 11) ? json_string(PQgetvalue(res, 0, 11))
                                                               : json_null(),
                          "created_at", PQgetvalue(res, 0, 12));
    json_object_set_new(m, "purged_at", *PQgetvalue(res, 0, 14)
                                            ? json_string(PQgetvalue(res, 0, 14))
                                            : json_null());
    PQclear(res);

    if ((*st = db_exec(c, ST_MSG_RECIPIENTS, params, &res)) != DB_OK) {
        json_decref(m);
        return NULL;
    }
    json_t *rcpts = json_array();
    json_t *logs = json_object();   /* delivery id -> its attempt_log array (borrowed) */
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *state = PQgetvalue(res, i, 4);
        json_t *last = json_null();
        if (!PQgetisnull(res, i, 6))
            last = json_pack("{s:o, s:o, s:o, s:o, s:o}", "code", pg_int(res, i, 6), "enhanced",
                             pg_str(res, i, 7), "response", pg_str(res, i, 8), "mx",
                             pg_str(res, i, 9), "tls", pg_str(res, i, 10));
        json_t *log = json_array();
        json_object_set(logs, PQgetvalue(res, i, 0), log);
        json_array_append_new(rcpts, json_pack("{s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:s, s:s,"
                                               " s:o, s:o}", "email", PQgetvalue(res, i, 1), "name",
                                               pg_str(res, i, 2), "kind", PQgetvalue(res, i, 3),
                                               "delivery_id", PQgetvalue(res, i, 0), "status", state,
                                               "attempts", pg_int(res, i, 5), "last_smtp", last,
                                               "next_attempt_at", PQgetvalue(res, i, 11),
                                               "updated_at", PQgetvalue(res, i, 12),
                                               "destination", pg_str(res, i, 13),
                                               "attempt_log", log));
    }
    PQclear(res);
    json_object_set_new(m, "recipients", rcpts);

    /* Each recipient's attempt log (the newest 50 attempts, oldest first). */
    if ((*st = db_exec(c, ST_MSG_ATTEMPTS, params, &res)) != DB_OK) {
        json_decref(logs);
        json_decref(m);
        return NULL;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *log = json_object_get(logs, PQgetvalue(res, i, 0));
        if (!log)
            continue;
        json_array_append_new(log, json_pack(
            "{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s}",
            "attempt", pg_int(res, i, 1), "outcome", PQgetvalue(res, i, 2), "code",
            pg_int(res, i, 3), "enhanced", pg_str(res, i, 4), "response", pg_str(res, i, 5),
            "mx", pg_str(res, i, 6), "ip", pg_str(res, i, 7), "tls", pg_str(res, i, 8),
            "duration_ms", pg_int(res, i, 9), "bounce_class", pg_str(res, i, 10), "transcript",
            pg_str(res, i, 11), "created_at", PQgetvalue(res, i, 12)));
    }
    PQclear(res);
    json_decref(logs);

    if ((*st = db_exec(c, ST_MSG_EVENTS, params, &res)) != DB_OK) {
        json_decref(m);
        return NULL;
    }
    json_t *events = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        char eid[40];
        snprintf(eid, sizeof eid, "evt_%s", PQgetvalue(res, i, 0));
        json_array_append_new(events, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", eid,
                                                "type", PQgetvalue(res, i, 1), "created_at",
                                                PQgetvalue(res, i, 5), "delivery_id",
                                                pg_str(res, i, 2), "recipient", pg_str(res, i, 3),
                                                "data", pg_json(res, i, 4)));
    }
    PQclear(res);
    json_object_set_new(m, "events", events);
    return m;
}

enum MHD_Result h_message_get(http_req *r)
{
    db_status st = DB_OK;
    int found;
    json_t *m = load_message(r->auth.account_id, r->params[0], &st, &found);
    if (!m)
        return query_missing(r, st, "message");
    return http_send_json(r, 200, m);
}

enum MHD_Result h_message_cancel(http_req *r)
{
    const char *params[] = {r->auth.account_id, r->params[0]};
    db_status st;
    int found;
    json_t *m = load_message(r->auth.account_id, r->params[0], &st, &found);
    if (!m)
        return query_missing(r, st, "message");
    json_decref(m);
    PGresult *res;
    if ((st = db_exec(db_thread(), ST_MSG_CANCEL, params, &res)) != DB_OK)
        return db_failure(r, st);
    long cancelled = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (cancelled > 0)
        redis_note_events(redis_thread());   /* their 'cancelled' events, for webhooks now */
    m = load_message(r->auth.account_id, r->params[0], &st, &found);
    if (!m)
        return db_failure(r, st == DB_OK ? DB_ERROR : st);
    json_object_set_new(m, "cancelled", json_integer(cancelled));
    return http_send_json(r, 200, m);
}

static const char *const streams[] = {"transactional", "broadcast", NULL};
static const char *const delivery_states[] = {"scheduled", "queued", "sending", "deferred",
                                              "delivered", "bounced", "suppressed", "failed",
                                              "expired", "cancelled", NULL};

static json_t *summary_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o}", "id", PQgetvalue(res, i, 0),
                     "stream", PQgetvalue(res, i, 1), "from", PQgetvalue(res, i, 2), "subject",
                     pg_str(res, i, 3), "tags", pg_json(res, i, 4), "metadata",
                     pg_json(res, i, 5), "created_at", PQgetvalue(res, i, 6), "recipients",
                     PQgetisnull(res, i, 8) ? json_array() : pg_json(res, i, 8));
}

enum MHD_Result h_messages_list(http_req *r)
{
    int limit;
    json_t *cursor;
    enum MHD_Result done;
    if (list_params(r, r->auth.account_id, &limit, &cursor, &done) != 0)
        return done;
    json_t *errors = json_array();
    const char *status, *stream;
    query_enum(r, errors, "status", delivery_states,
               "must be a delivery status (queued, delivered, ...)", &status);
    query_enum(r, errors, "stream", streams, "must be transactional or broadcast", &stream);
    int bad = 0;
    const char *tag = http_query(r, "tag", &bad);
    if (bad)
        http_field_error(errors, "tag", "is malformed");
    addr_t ra;
    int has_rcpt = query_recipient(r, errors, &ra);
    char since[32], until[32];
    query_time_range(r, errors, since, until);
    if (json_array_size(errors) > 0) {
        json_decref(cursor);
        return http_problem(r, 422, NULL, "Invalid query parameters.", errors);
    }
    json_decref(errors);
    const char *c_ts = "", *c_id = "";
    if (cursor && json_is_string(json_array_get(cursor, 0)) &&
        json_is_string(json_array_get(cursor, 1))) {
        c_ts = json_string_value(json_array_get(cursor, 0));
        c_id = json_string_value(json_array_get(cursor, 1));
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {r->auth.account_id, stream ? stream : "", tag ? tag : "",
                            has_rcpt ? ra.email : "", status ? status : "", since, until, c_ts, c_id, lim};
    PGresult *res;
    db_status st = db_exec(db_thread(), ST_MSG_LIST, params, &res);
    json_decref(cursor);
    if (st != DB_OK)
        return db_failure(r, st);
    const int cols[] = {7, 0};
    return query_send_page(r, res, limit, summary_json, r->auth.account_id, cols, 2);
}

