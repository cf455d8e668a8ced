#include "api/auth.h"
#include "db/db.h"
#include "lib/apikey.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/timeutil.h"

#include <pthread.h>

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

/* Key lookups are cached in the process for POSTHORN_AUTH_CACHE_TTL, so a busy client costs
 * no database round trip per request; revoking a key takes effect within that time. Only
 * keys that exist are cached (a hash is still compared on every request). */
typedef struct {
    char     prefix[APIKEY_PREFIX_LEN + 1];
    int      found, operator, revoked, rate;
    unsigned scopes;
    uint8_t  hash[SHA256_LEN];
    char     account_id[40];
    char     name[128];
    int64_t  fetched_ms;
} key_entry;

#define CACHE_SLOTS 1024
static key_entry cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned slot_of(const char *prefix)
{
    unsigned h = 2166136261u;
    for (const char *p = prefix; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % CACHE_SLOTS;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static db_status lookup(const char *prefix, key_entry *e)
{
    int64_t now = time_mono_ms();
    unsigned slot = slot_of(prefix);
    if (cfg.auth_cache_ttl_ms > 0) {
        pthread_mutex_lock(&cache_lock);
        int hit = strcmp(cache[slot].prefix, prefix) == 0 &&
                  now - cache[slot].fetched_ms < cfg.auth_cache_ttl_ms;
        if (hit)
            *e = cache[slot];
        pthread_mutex_unlock(&cache_lock);
        if (hit)
            return DB_OK;
    }
    memset(e, 0, sizeof *e);
    const char *params[] = {prefix};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_KEY_LOOKUP, params, &res);
    if (s != DB_OK)
        return s;
    if (PQntuples(res) == 1) {
        const char *hex = PQgetvalue(res, 0, 5);
        if (strlen(hex) != 2 * SHA256_LEN)
            die("api key %s: stored hash is not 32 bytes", prefix);
        for (int i = 0; i < SHA256_LEN; i++)
            e->hash[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        e->found = 1;
        e->operator = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        e->revoked = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
        e->rate = (int)strtol(PQgetvalue(res, 0, 4), NULL, 10);
        snprintf(e->account_id, sizeof e->account_id, "%s", PQgetvalue(res, 0, 0));
        snprintf(e->name, sizeof e->name, "%s", PQgetvalue(res, 0, 2));
        if (e->operator)
            e->scopes = SCOPE_BIT(SCOPE_OPERATOR);
        else if (apikey_parse_scopes(PQgetvalue(res, 0, 3), &e->scopes) != 0)
            die("api key %s has unknown scopes", prefix);
    }
    PQclear(res);
    snprintf(e->prefix, sizeof e->prefix, "%s", prefix);
    e->fetched_ms = now;
    if (e->found && cfg.auth_cache_ttl_ms > 0) {
        pthread_mutex_lock(&cache_lock);
        cache[slot] = *e;
        pthread_mutex_unlock(&cache_lock);
    }
    return DB_OK;
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

    key_entry e;
    db_status s = lookup(prefix, &e);
    if (s != DB_OK) {
        http_add_header(r, "Retry-After", "1");
        return http_problem(r, 503, NULL, "The database is unavailable; retry shortly.", NULL);
    }
    if (!e.found || !crypto_equal(e.hash, hash, SHA256_LEN))
        return unauthorized(r, "The API key is not valid.");
    if (e.revoked)
        return unauthorized(r, "The API key has been revoked.");
    auth_info *a = &r->auth;
    a->authenticated = 1;
    a->operator = e.operator;
    a->scopes = e.scopes;
    a->rate = e.rate;
    snprintf(a->account_id, sizeof a->account_id, "%s", e.account_id);
    snprintf(a->key_prefix, sizeof a->key_prefix, "%s", prefix);
    snprintf(a->key_name, sizeof a->key_name, "%s", e.name);

    enum MHD_Result ret = MHD_YES;
    if (need == SCOPE_OPERATOR && !a->operator)
        ret = http_problem(r, 403, NULL, "This route needs an operator key.", NULL);
    else if (need != SCOPE_OPERATOR && a->operator)
        ret = http_problem(r, 403, NULL, "Operator keys cannot use account routes.", NULL);
    else if (!(a->scopes & SCOPE_BIT(need))) {
        char detail[96];
        snprintf(detail, sizeof detail, "This API key lacks the '%s' scope.", apikey_scope_name(need));
        ret = http_problem(r, 403, NULL, detail, NULL);
    }
    return ret;
}
