/* api/templates.c - stored Mustache templates: POST/GET /v1/templates,
 * GET/PUT/DELETE /v1/templates/{id}, POST /v1/templates/{id}/render.
 * A template has a name unique in its account (among templates not deleted) and immutable
 * versions: PUT adds version latest+1 with the full content. Every part is compiled
 * (tpl_check) before it is stored, so a syntax error answers 422 with its line and column.
 * Deletion is soft (deleted_at): a deleted template answers 404 and frees its name. Every
 * statement filters on the account, so another account's template answers 404. */
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/ids.h"
#include "lib/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN   100
#define RENDER_MAX     (40u << 20)   /* output bound of one rendered part */
#define PARTIALS_MAX   64            /* distinct partial names resolved in one render */

static const char *const part_names[3] = {"subject", "html", "text"};

/* ---- validation ---------------------------------------------------------------------- */

static int valid_name(const char *s, size_t n)
{
    if (n < 1 || n > NAME_MAX_LEN || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* One template part: a string (or null/absent when optional). Adds field errors; on success
 * *out is the string or NULL. */
static void check_part(json_t *body, json_t *errors, const char *field, int required,
                       const char **out)
{
    *out = NULL;
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        if (required)
            http_field_error(errors, field, "is required");
        return;
    }
    if (!json_is_string(v)) {
        http_field_error(errors, field, required ? "must be a string" : "must be a string or null");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > TPL_MAX_BYTES) {
        http_field_error(errors, field, "is larger than %u bytes", TPL_MAX_BYTES);
        return;
    }
    if (strlen(s) != n) {
        http_field_error(errors, field, "must not contain NUL characters");
        return;
    }
    if (strcmp(field, "subject") == 0 && strpbrk(s, "\r\n")) {
        http_field_error(errors, field, "must not contain CR or LF");
        return;
    }
    char err[256];
    if (tpl_check(s, n, err, sizeof err) != 0) {
        http_field_error(errors, field, "%s", err);
        return;
    }
    *out = s;
}

/* Validates a create (with_name 1) or a new version body. name_out may be NULL for a PUT
 * (then name, when given, is returned for the caller to compare). */
static void check_body(json_t *body, json_t *errors, int create, const char **name,
                       const char **subject, const char **html, const char **text)
{
    static const char *const known[] = {"name", "subject", "html", "text", NULL};
    http_unknown_fields(errors, body, known);
    *name = NULL;
    json_t *jn = json_object_get(body, "name");
    if (!jn) {
        if (create)
            http_field_error(errors, "name", "is required");
    } else if (!json_is_string(jn)) {
        http_field_error(errors, "name", "must be a string");
    } else if (!valid_name(json_string_value(jn), json_string_length(jn))) {
        http_field_error(errors, "name",
                         "must be 1 to %d characters of A-Z, a-z, 0-9, '_', '.' and '-'",
                         NAME_MAX_LEN);
    } else {
        *name = json_string_value(jn);
    }
    check_part(body, errors, "subject", 1, subject);
    check_part(body, errors, "html", 0, html);
    check_part(body, errors, "text", 0, text);
    json_t *jh = json_object_get(body, "html"), *jt = json_object_get(body, "text");
    if ((!jh || json_is_null(jh)) && (!jt || json_is_null(jt)))
        http_field_error(errors, "html", "html or text is required");
}

/* ---- rows ------------------------------------------------------------------------------ */

/* ST_TPL_GET columns: id, name, version, subject, html, text, created_at, updated_at */
static json_t *template_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s}", "id", PQgetvalue(res, i, 0),
                     "name", PQgetvalue(res, i, 1), "version", pg_int(res, i, 2), "subject",
                     pg_str(res, i, 3), "html", pg_str(res, i, 4), "text", pg_str(res, i, 5),
                     "created_at", PQgetvalue(res, i, 6), "updated_at", PQgetvalue(res, i, 7));
}

/* ?version= (a positive integer) into out ("" when absent); -1 after answering 422. */
static int version_param(http_req *r, char out[24], enum MHD_Result *done)
{
    out[0] = '\0';
    int bad = 0;
    const char *q = http_query(r, "version", &bad);
    if (!q && !bad)
        return 0;
    char *end = NULL;
    long n = (!bad && q[0] >= '1' && q[0] <= '9' && strlen(q) <= 9) ? strtol(q, &end, 10) : 0;
    if (!end || *end != '\0' || n < 1) {
        json_t *errors = json_array();
        http_field_error(errors, "version", "must be a positive integer");
        *done = http_problem(r, 422, NULL, "Invalid query parameters.", errors);
        return -1;
    }
    snprintf(out, 24, "%ld", n);
    return 0;
}

/* Loads the template (latest version, or version when not ""). NULL with *st set on a
 * database failure, NULL with *st DB_OK when absent. */
static PGresult *load(http_req *r, const char *id, const char *version, db_status *st)
{
    const char *params[] = {r->auth.account_id, id, version};
    PGresult *res;
    *st = db_exec(db_thread(), ST_TPL_GET, params, &res);
    if (*st != DB_OK)
        return NULL;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* ---- handlers -------------------------------------------------------------------------- */

enum MHD_Result h_templates_create(http_req *r)
{
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    const char *name, *subject, *html, *text;
    check_body(body, errors, 1, &name, &subject, &html, &text);
    if (json_array_size(errors) > 0) {
        json_decref(body);
        return http_problem(r, 422, NULL, "The template is invalid.", errors);
    }
    json_decref(errors);
    char id[IDS_MAX];
    ids_new("tpl_", id);
    const char *params[] = {r->auth.account_id, id, name, subject, html, text};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_TPL_INSERT, params, &res);
    json_decref(body);
    if (s == DB_CONFLICT) {
        errors = json_array();
        http_field_error(errors, "name", "is already used by another template of this account");
        return http_problem(r, 409, NULL, "A template with this name already exists.", errors);
    }
    if (s != DB_OK)
        return db_failure(r, s);
    PQclear(res);
    PGresult *row = load(r, id, "", &s);
    if (!row)
        return db_failure(r, s == DB_OK ? DB_ERROR : s);
    json_t *out = template_json(row, 0);
    PQclear(row);
    return http_send_json(r, 201, out);
}

static json_t *summary_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:s}", "id", PQgetvalue(res, i, 0), "name",
                     PQgetvalue(res, i, 1), "version", pg_int(res, i, 2), "subject",
                     pg_str(res, i, 3), "created_at", PQgetvalue(res, i, 4), "updated_at",
                     PQgetvalue(res, i, 5));
}

enum MHD_Result h_templates_list(http_req *r)
{
    return query_keyset_page(r, ST_TPL_LIST, summary_json, 6);
}

enum MHD_Result h_template_get(http_req *r)
{
    char version[24];
    enum MHD_Result done;
    if (version_param(r, version, &done) != 0)
        return done;
    db_status s;
    PGresult *res = load(r, r->params[0], version, &s);
    if (!res && s != DB_OK)
        return db_failure(r, s);
    if (!res)
        return http_problem(r, 404, NULL, version[0] ? "No such template version." : "No such template.",
                            NULL);
    json_t *out = template_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_template_update(http_req *r)
{
    db_status s;
    PGresult *cur = load(r, r->params[0], "", &s);
    if (!cur)
        return query_missing(r, s, "template");
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body) {
        PQclear(cur);
        return done;
    }
    json_t *errors = json_array();
    const char *name, *subject, *html, *text;
    check_body(body, errors, 0, &name, &subject, &html, &text);
    if (name && strcmp(name, PQgetvalue(cur, 0, 1)) != 0)
        http_field_error(errors, "name", "cannot be changed (renaming is not supported)");
    PQclear(cur);
    if (json_array_size(errors) > 0) {
        json_decref(body);
        return http_problem(r, 422, NULL, "The template is invalid.", errors);
    }
    json_decref(errors);
    const char *params[] = {r->auth.account_id, r->params[0], subject, html, text};
    PGresult *res;
    s = db_exec(db_thread(), ST_TPL_NEW_VERSION, params, &res);
    json_decref(body);
    if (s != DB_OK)
        return db_failure(r, s);
    int n = PQntuples(res);
    char version[16];
    snprintf(version, sizeof version, "%s", n ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (n == 0)   /* deleted meanwhile */
        return http_problem(r, 404, NULL, "No such template.", NULL);
    PGresult *row = load(r, r->params[0], version, &s);
    if (!row)
        return db_failure(r, s == DB_OK ? DB_ERROR : s);
    json_t *out = template_json(row, 0);
    PQclear(row);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_template_delete(http_req *r)
{
    return query_delete_owned(r, ST_TPL_DELETE, "template");
}

/* ---- render ------------------------------------------------------------------------------ */

typedef struct {
    const char *account_id;
    int         part;                 /* 0 subject, 1 html, 2 text */
    int         n;
    char       *names[PARTIALS_MAX];
    tpl        *tpls[PARTIALS_MAX];   /* NULL: no such template or no such part */
    int         db_failed;            /* a db_status when the lookup failed */
} partial_ctx;

static int resolve_partial(void *vctx, const char *name, size_t len, const tpl **out, char *err,
                           size_t errlen)
{
    partial_ctx *ctx = vctx;
    *out = NULL;
    for (int i = 0; i < ctx->n; i++)
        if (strlen(ctx->names[i]) == len && memcmp(ctx->names[i], name, len) == 0) {
            *out = ctx->tpls[i];
            return 0;
        }
    char nm[NAME_MAX_LEN + 1];
    if (len > NAME_MAX_LEN || memchr(name, '\0', len))
        return 0;   /* cannot be a template name: missing */
    memcpy(nm, name, len);
    nm[len] = '\0';
    if (!valid_name(nm, len))
        return 0;
    if (ctx->n >= PARTIALS_MAX) {
        snprintf(err, errlen, "more than %d distinct partials", PARTIALS_MAX);
        return -1;
    }
    const char *params[] = {ctx->account_id, nm};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_TPL_BY_NAME, params, &res);
    if (s != DB_OK) {
        ctx->db_failed = s;
        snprintf(err, errlen, "partial \"%s\": database unavailable", nm);
        return -1;
    }
    tpl *t = NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, ctx->part)) {
        const char *src = PQgetvalue(res, 0, ctx->part);
        char cerr[256];
        t = tpl_compile(src, (size_t)PQgetlength(res, 0, ctx->part), NULL, cerr, sizeof cerr);
        if (!t) {
            PQclear(res);
            snprintf(err, errlen, "partial \"%s\" does not compile: %s", nm, cerr);
            return -1;
        }
    }
    PQclear(res);
    ctx->names[ctx->n] = strdup(nm);
    ctx->tpls[ctx->n] = t;
    ctx->n++;
    *out = t;
    return 0;
}

static void partial_ctx_free(partial_ctx *ctx)
{
    for (int i = 0; i < ctx->n; i++) {
        free(ctx->names[i]);
        tpl_free(ctx->tpls[i]);
    }
    ctx->n = 0;
}

enum MHD_Result h_template_render(http_req *r)
{
    /* Existence first: another account's id answers 404 whatever the body. */
    db_status s;
    PGresult *res = load(r, r->params[0], "", &s);
    if (!res)
        return query_missing(r, s, "template");
    PQclear(res);

    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    static const char *const known[] = {"data", "version", "strict", NULL};
    http_unknown_fields(errors, body, known);
    json_t *data = json_object_get(body, "data");
    if (data && !json_is_object(data) && !json_is_null(data))
        http_field_error(errors, "data", "must be an object");
    json_t *js = json_object_get(body, "strict");
    if (js && !json_is_boolean(js))
        http_field_error(errors, "strict", "must be a boolean");
    json_t *jv = json_object_get(body, "version");
    if (jv && !json_is_null(jv) &&
        !(json_is_integer(jv) && json_integer_value(jv) >= 1 && json_integer_value(jv) <= 2147483647))
        http_field_error(errors, "version", "must be a positive integer");
    if (json_array_size(errors) > 0) {
        json_decref(body);
        return http_problem(r, 422, NULL, "The render request is invalid.", errors);
    }
    json_decref(errors);
    char version[24] = "";
    if (jv && !json_is_null(jv))
        snprintf(version, sizeof version, "%lld", (long long)json_integer_value(jv));
    int strict = js && json_is_true(js);

    res = load(r, r->params[0], version, &s);
    if (!res && s != DB_OK) {
        json_decref(body);
        return db_failure(r, s);
    }
    if (!res) {
        json_decref(body);
        return http_problem(r, 404, NULL, "No such template version.", NULL);
    }

    json_t *out = json_object();
    errors = json_array();
    int db_failed = 0;
    for (int part = 0; part < 3; part++) {
        int col = 3 + part;
        if (PQgetisnull(res, 0, col)) {
            json_object_set_new(out, part_names[part], json_null());
            continue;
        }
        char err[512] = "";
        tpl *t = tpl_compile(PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col), NULL, err,
                             sizeof err);
        if (!t) {
            http_field_error(errors, part_names[part], "%s", err);
            continue;
        }
        partial_ctx ctx = {.account_id = r->auth.account_id, .part = part};
        buf b;
        buf_init(&b, RENDER_MAX);
        int rc = tpl_render_compiled(t, (data && !json_is_null(data)) ? data : NULL, part == 1,
                                     strict, resolve_partial, &ctx, &b, err, sizeof err);
        if (ctx.db_failed)
            db_failed = ctx.db_failed;
        partial_ctx_free(&ctx);
        tpl_free(t);
        if (rc != 0)
            http_field_error(errors, part_names[part], "%s", err);
        else if (part == 0 && (memchr(b.data ? b.data : "", '\r', b.len) ||
                               memchr(b.data ? b.data : "", '\n', b.len)))
            http_field_error(errors, "subject", "the rendered subject contains CR or LF");
        else if (b.data && strlen(b.data) != b.len)
            http_field_error(errors, part_names[part], "the rendered %s contains NUL characters",
                             part_names[part]);
        else {
            json_t *str = json_stringn(b.data ? b.data : "", b.len);
            if (str)
                json_object_set_new(out, part_names[part], str);
            else
                http_field_error(errors, part_names[part], "the rendered %s is not valid UTF-8",
                                 part_names[part]);
        }
        buf_free(&b);
    }
    PQclear(res);
    json_decref(body);
    if (db_failed) {
        json_decref(out);
        json_decref(errors);
        return db_failure(r, db_failed);
    }
    if (json_array_size(errors) > 0) {
        json_decref(out);
        return http_problem(r, 422, NULL, "The template does not render with this data.", errors);
    }
    json_decref(errors);
    return http_send_json(r, 200, out);
}
