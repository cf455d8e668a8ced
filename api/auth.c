#include "api/auth.h"
#include "db/db.h"
#include "lib/apikey.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *auth_scopes_json(unsigned bits)
{
    json_t *a = json_array();
    for (int i = SCOPE_SEND; i <= SCOPE_OPERATOR; i++)
        if (bits & SCOPE_BIT(i))
            json_array_append_new(a, json_string(apikey_scope_name((scope)i)));
    return a;
}

static enum MHD_Result unauthorized(http_req *r, const char *detail)
{
    http_add_header(r, "WWW-Authenticate", "Bearer realm=\"posthorn\"");
    return http_problem(r, 401, NULL, detail, NULL);
}

enum MHD_Result auth_request(http_req *r, scope need)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h)
        return unauthorized(r, "Send your API key as Authorization: Bearer <key>.");
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return unauthorized(r, "Only Bearer authorization is accepted.");
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    size_t kl = strlen(key);
    while (kl && key[kl - 1] == ' ')
        kl--;
    char prefix[APIKEY_PREFIX_LEN + 1];
    uint8_t hash[SHA256_LEN];
    if (apikey_parse(key, kl, prefix, hash) != 0)
        return unauthorized(r, "The API key is malformed.");

    const char *params[] = {prefix};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_KEY_LOOKUP, params, &res);
    if (s != DB_OK) {
        http_add_header(r, "Retry-After", "1");
        return http_problem(r, 503, NULL, "The database is unavailable; retry shortly.", NULL);
    }
    enum MHD_Result ret = MHD_YES;
    if (PQntuples(res) != 1) {
        ret = unauthorized(r, "The API key is not valid.");
        goto out;
    }
    uint8_t stored[SHA256_LEN];
    const char *hex = PQgetvalue(res, 0, 5);
    for (int i = 0; i < SHA256_LEN; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        stored[i] = (uint8_t)v;
    }
    if (!crypto_equal(stored, hash, SHA256_LEN)) {
        ret = unauthorized(r, "The API key is not valid.");
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 6), "t") == 0) {
        ret = unauthorized(r, "The API key has been revoked.");
        goto out;
    }
    auth_info *a = &r->auth;
    a->authenticated = 1;
    a->operator = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    snprintf(a->account_id, sizeof a->account_id, "%s", PQgetvalue(res, 0, 0));
    snprintf(a->key_prefix, sizeof a->key_prefix, "%s", prefix);
    snprintf(a->key_name, sizeof a->key_name, "%s", PQgetvalue(res, 0, 2));
    a->rate = (int)strtol(PQgetvalue(res, 0, 4), NULL, 10);
    if (a->operator)
        a->scopes = SCOPE_BIT(SCOPE_OPERATOR);
    else if (apikey_parse_scopes(PQgetvalue(res, 0, 3), &a->scopes) != 0)
        die("api key %s has unknown scopes", prefix);

    if (need == SCOPE_OPERATOR && !a->operator)
        ret = http_problem(r, 403, NULL, "This route needs an operator key.", NULL);
    else if (need != SCOPE_OPERATOR && a->operator)
        ret = http_problem(r, 403, NULL, "Operator keys cannot use account routes.", NULL);
    else if (!(a->scopes & SCOPE_BIT(need))) {
        char detail[96];
        snprintf(detail, sizeof detail, "This API key lacks the '%s' scope.", apikey_scope_name(need));
        ret = http_problem(r, 403, NULL, detail, NULL);
    }
out:
    PQclear(res);
    return ret;
}
