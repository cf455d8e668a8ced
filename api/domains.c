/* api/domains.c - sending domains: POST/GET /v1/domains, GET/DELETE /v1/domains/{id},
 * POST /v1/domains/{id}/verify.
 * Creating a domain generates its DKIM keys (rsa-sha256 2048-bit and ed25519-sha256) under a
 * selector random per account and domain, and answers the DNS records to publish.
 *
 * Storage (read by the worker's signer; keep in step with it):
 *   name                 A-label, lower case, no trailing dot
 *   dkim_selector        "ph" + 8 characters of [a-z2-7]; the rsa key's selector. The
 *                        ed25519 key is published under dkim_selector + "e".
 *   dkim_rsa_private,    secretbox_seal(SECRETBOX_DKIM_KEY, PKCS#8 PEM,
 *   dkim_ed25519_private   ad = account_id "\n" name)
 *   dkim_*_public        the p= value (base64)
 *   return_path_domain   default "bounces." name
 *   verified_at          set by a successful verify
 * Private keys are never selected by the API. Every statement filters on the account, so
 * another account's domain answers 404. */
#include "api/cursor.h"
#include "api/handlers.h"
#include "api/query.h"
#include "db/db.h"
#include "lib/config.h"
#include "lib/dkim.h"
#include "lib/ids.h"
#include "lib/secretbox.h"
#include "smtp/dns.h"

#include <idn2.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DOMAIN_MAX    253
#define INPUT_MAX     1024   /* a U-label form may be longer than its A-label */
#define SELECTOR_LEN  10     /* "ph" + 8 */

/* ---- names ------------------------------------------------------------------------------- */

/* LDH labels of 1..63 octets, not starting or ending with '-', at least two labels, at most
 * 253 octets, and a top-level label that is not all digits (no IP literals). */
static const char *check_ldh(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "is empty";
    if (n > DOMAIN_MAX)
        return "is longer than 253 octets";
    size_t label = 0, labels = 1, last_start = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0)
                return "has an empty label";
            if (label > 63)
                return "has a label longer than 63 octets";
            if (s[i - 1] == '-' || s[i - label] == '-')
                return "has a label that starts or ends with a hyphen";
            if (c == '.') {
                labels++;
                last_start = i + 1;
            }
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return "may only contain letters, digits, hyphens and dots";
        label++;
    }
    if (labels < 2)
        return "needs at least two labels";
    int digits = 1;
    for (size_t i = last_start; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            digits = 0;
    if (digits)
        return "must be a domain name, not an IP address";
    return NULL;
}

/* Validates a domain name (UTF-8 allowed: IDNA2008, UTS #46 non-transitional) and writes its
 * lower-case A-label form to out (DOMAIN_MAX + 1 bytes). NULL, or the reason. */
static const char *normalize_domain(const char *s, size_t n, char out[DOMAIN_MAX + 1])
{
    if (n == 0)
        return "is empty";
    if (n > INPUT_MAX || strlen(s) != n)
        return "is longer than 253 octets";
    if (s[0] == '[' || strchr(s, ':'))
        return "must be a domain name, not an IP address";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == ' ' || s[i] == '@' ||
            s[i] == '/' || s[i] == '\\')
            return "may only contain letters, digits, hyphens and dots";
    char in[INPUT_MAX + 1];
    memcpy(in, s, n);
    in[n] = '\0';
    if (n > 1 && in[n - 1] == '.')   /* one trailing dot: the root */
        in[n - 1] = '\0';
    char *ace = NULL;
    if (idn2_to_ascii_8z(in, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
        idn2_free(ace);
        return "is not a valid (internationalised) domain name";
    }
    for (char *p = ace; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    const char *why = check_ldh(ace);
    if (!why)
        snprintf(out, DOMAIN_MAX + 1, "%s", ace);
    idn2_free(ace);
    return why;
}

static void new_selector(char out[SELECTOR_LEN + 1])
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        abort();
    out[0] = 'p';
    out[1] = 'h';
    for (int i = 0; i < 8; i++)
        out[2 + i] = b32[rnd[i] & 31];
    out[SELECTOR_LEN] = '\0';
}

static const char *mail_host(char *hb, size_t n)
{
    if (cfg.helo_name && cfg.helo_name[0])
        return cfg.helo_name;
    if (gethostname(hb, n) != 0 || !hb[0])
        snprintf(hb, n, "localhost");
    hb[n - 1] = '\0';
    return hb;
}

/* ---- rows ------------------------------------------------------------------------------- */

static json_t *record(const char *type, const char *name, const char *value, const char *purpose,
                      int required)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", type, "name", name, "value", value,
                     "purpose", purpose, "required", required);
}

/* ST_DOM_GET / ST_DOM_LIST columns: id, name, return_path_domain, dkim_selector,
 * dkim_rsa_public, dkim_ed25519_public, verified_at ('' = no), created_at. */
static json_t *domain_json(PGresult *res, int i)
{
    const char *name = PQgetvalue(res, i, 1), *rp = PQgetvalue(res, i, 2),
               *sel = PQgetvalue(res, i, 3), *verified = PQgetvalue(res, i, 6);
    char host[256], n1[512], v[2048];
    const char *mx = mail_host(host, sizeof host);
    json_t *recs = json_array();
    json_t *algs = json_array();
    if (!PQgetisnull(res, i, 4)) {
        snprintf(n1, sizeof n1, "%s._domainkey.%s", sel, name);
        snprintf(v, sizeof v, "v=DKIM1; k=rsa; p=%s", PQgetvalue(res, i, 4));
        json_array_append_new(recs, record("TXT", n1, v, "dkim", 1));
        json_array_append_new(algs, json_string("rsa-sha256"));
    }
    if (!PQgetisnull(res, i, 5)) {
        snprintf(n1, sizeof n1, "%se._domainkey.%s", sel, name);
        snprintf(v, sizeof v, "v=DKIM1; k=ed25519; p=%s", PQgetvalue(res, i, 5));
        json_array_append_new(recs, record("TXT", n1, v, "dkim", 0));
        json_array_append_new(algs, json_string("ed25519-sha256"));
    }
    snprintf(v, sizeof v, "10 %s", mx);
    json_array_append_new(recs, record("MX", rp, v, "return_path", 1));
    snprintf(v, sizeof v, "v=spf1 a:%s mx ~all", mx);
    json_array_append_new(recs, record("TXT", rp, v, "return_path", 1));
    snprintf(v, sizeof v, "v=spf1 a:%s ~all", mx);
    json_array_append_new(recs, record("TXT", name, v, "spf", 0));
    snprintf(n1, sizeof n1, "_dmarc.%s", name);
    json_array_append_new(recs, record("TXT", n1, "v=DMARC1; p=none; adkim=r; aspf=r", "dmarc", 0));
    char esel[SELECTOR_LEN + 2];
    snprintf(esel, sizeof esel, "%se", sel);
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:o, s:o}, s:b, s:o, s:s, s:o}", "id",
                     PQgetvalue(res, i, 0), "name", name, "return_path_domain", rp, "dkim",
                     "selector", sel, "ed25519_selector",
                     PQgetisnull(res, i, 5) ? json_null() : json_string(esel), "algorithms", algs,
                     "verified", verified[0] != '\0', "verified_at",
                     verified[0] ? json_string(verified) : json_null(), "created_at",
                     PQgetvalue(res, i, 7), "dns_records", recs);
}

static PGresult *load(http_req *r, const char *id, db_status *st)
{
    const char *params[] = {r->auth.account_id, id};
    PGresult *res;
    *st = db_exec(db_thread(), ST_DOM_GET, params, &res);
    if (*st != DB_OK)
        return NULL;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Generates a key of alg and seals its PEM for (account, name): hex of the box into *hex
 * (malloc'd) and the p= value into pub. 0, or -1 with err. */
static int make_key(int alg, const char *ad, buf *pub, char **hex, char *err, size_t errlen)
{
    buf pem, box;
    buf_init(&pem, 64 * 1024);
    buf_init(&box, 64 * 1024);
    int rc = -1;
    *hex = NULL;
    if (dkim_keygen(alg, &pem, pub, err, errlen) != 0)
        goto out;
    if (secretbox_seal(SECRETBOX_DKIM_KEY, pem.data, pem.len, ad, strlen(ad), &box) != 0) {
        snprintf(err, errlen, "cannot seal the key");
        goto out;
    }
    *hex = malloc(box.len * 2 + 1);
    if (!*hex)
        goto out;
    for (size_t i = 0; i < box.len; i++)
        sprintf(*hex + 2 * i, "%02x", (unsigned char)box.data[i]);
    (*hex)[box.len * 2] = '\0';
    rc = 0;
out:
    if (pem.data)
        memset(pem.data, 0, pem.len);
    buf_free(&pem);
    buf_free(&box);
    return rc;
}

/* ---- handlers ---------------------------------------------------------------------------- */

enum MHD_Result h_domains_create(http_req *r)
{
    enum MHD_Result done;
    json_t *body = http_json_object(r, &done);
    if (!body)
        return done;
    json_t *errors = json_array();
    static const char *const known[] = {"name", "return_path_domain", NULL};
    http_unknown_fields(errors, body, known);
    char name[DOMAIN_MAX + 1] = "", rp[DOMAIN_MAX + 1] = "";
    json_t *jn = json_object_get(body, "name");
    const char *why;
    if (!jn)
        http_field_error(errors, "name", "is required");
    else if (!json_is_string(jn))
        http_field_error(errors, "name", "must be a string");
    else if ((why = normalize_domain(json_string_value(jn), json_string_length(jn), name))) {
        http_field_error(errors, "name", "%s", why);
        name[0] = '\0';
    }
    json_t *jr = json_object_get(body, "return_path_domain");
    if (jr && !json_is_null(jr)) {
        if (!json_is_string(jr))
            http_field_error(errors, "return_path_domain", "must be a string or null");
        else if ((why = normalize_domain(json_string_value(jr), json_string_length(jr), rp)))
            http_field_error(errors, "return_path_domain", "%s", why);
        else if (name[0]) {
            size_t ln = strlen(name), lr = strlen(rp);
            if (!(lr > ln + 1 && rp[lr - ln - 1] == '.' && strcmp(rp + lr - ln, name) == 0))
                http_field_error(errors, "return_path_domain", "must be a subdomain of %s", name);
        }
    } else if (name[0]) {
        if (strlen(name) + 8 > DOMAIN_MAX)
            http_field_error(errors, "name", "is too long for its return-path domain bounces.%s",
                             name);
        else
            snprintf(rp, sizeof rp, "bounces.%s", name);
    }
    json_decref(body);
    if (json_array_size(errors) > 0)
        return http_problem(r, 422, NULL, "The domain is invalid.", errors);
    json_decref(errors);

    char ad[sizeof r->auth.account_id + DOMAIN_MAX + 2];
    snprintf(ad, sizeof ad, "%s\n%s", r->auth.account_id, name);
    char err[256];
    buf rsa_pub, ed_pub;
    buf_init(&rsa_pub, 8192);
    buf_init(&ed_pub, 1024);
    char *rsa_hex = NULL, *ed_hex = NULL;
    if (make_key(DKIM_RSA, ad, &rsa_pub, &rsa_hex, err, sizeof err) != 0 ||
        make_key(DKIM_ED25519, ad, &ed_pub, &ed_hex, err, sizeof err) != 0 ||
        buf_append(&rsa_pub, "", 1) != 0 || buf_append(&ed_pub, "", 1) != 0) {
        free(rsa_hex);
        free(ed_hex);
        buf_free(&rsa_pub);
        buf_free(&ed_pub);
        return http_problem(r, 500, NULL, "The DKIM keys could not be generated.", NULL);
    }
    char id[IDS_MAX], sel[SELECTOR_LEN + 1];
    ids_new("dom_", id);
    new_selector(sel);
    const char *params[] = {r->auth.account_id, id, name, rp, sel, rsa_pub.data, rsa_hex,
                            ed_pub.data, ed_hex};
    PGresult *res;
    db_status s = db_exec(db_thread(), ST_DOM_INSERT, params, &res);
    free(rsa_hex);
    free(ed_hex);
    buf_free(&rsa_pub);
    buf_free(&ed_pub);
    if (s == DB_CONFLICT) {
        errors = json_array();
        http_field_error(errors, "name", "is already a domain of this account");
        return http_problem(r, 409, NULL, "This account already has this domain.", errors);
    }
    if (s != DB_OK)
        return db_failure(r, s);
    PQclear(res);
    PGresult *row = load(r, id, &s);
    if (!row)
        return db_failure(r, s == DB_OK ? DB_ERROR : s);
    json_t *out = domain_json(row, 0);
    PQclear(row);
    return http_send_json(r, 201, out);
}

enum MHD_Result h_domains_list(http_req *r)
{
    return query_keyset_page(r, ST_DOM_LIST, domain_json, 8);
}

enum MHD_Result h_domain_get(http_req *r)
{
    db_status s;
    PGresult *res = load(r, r->params[0], &s);
    if (!res)
        return query_missing(r, s, "domain");
    json_t *out = domain_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}

enum MHD_Result h_domain_delete(http_req *r)
{
    return query_delete_owned(r, ST_DOM_DELETE, "domain");
}

/* The p= tag of a DKIM key record, whitespace removed, into out; 0, or -1 when there is none
 * (or it is longer than out). */
static int record_p(const char *txt, char *out, size_t n)
{
    const char *p = txt;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *tag = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        const char *tend = p;
        while (tend > tag && (tend[-1] == ' ' || tend[-1] == '\t'))
            tend--;
        if (*p != '=') {
            continue;
        }
        p++;
        if (tend - tag == 1 && tag[0] == 'p') {
            size_t o = 0;
            for (; *p && *p != ';'; p++) {
                if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                    continue;
                if (o + 1 >= n)
                    return -1;
                out[o++] = *p;
            }
            out[o] = '\0';
            return 0;
        }
        while (*p && *p != ';')
            p++;
    }
    return -1;
}

/* Checks the records at selector._domainkey.name against pub. DNS_OK when one matches;
 * DNS_NOTFOUND with a reason when absent or different; DNS_RETRY when DNS failed. */
static int check_key(const char *selector, const char *name, const char *pub, char *why,
                     size_t whylen)
{
    char qname[320];
    snprintf(qname, sizeof qname, "%s._domainkey.%s", selector, name);
    char **txts = NULL;
    int count = 0;
    int rc = dns_txt(qname, &txts, &count, why, whylen);
    if (rc != DNS_OK)
        return rc;
    int match = 0;
    for (int i = 0; i < count && !match; i++) {
        char *pv = malloc(16384);
        if (pv && record_p(txts[i], pv, 16384) == 0 && strcmp(pv, pub) == 0)
            match = 1;
        free(pv);
    }
    dns_free_txts(txts, count);
    if (match)
        return DNS_OK;
    snprintf(why, whylen, "the published key at %s does not match this account's key", qname);
    return DNS_NOTFOUND;
}

enum MHD_Result h_domain_verify(http_req *r)
{
    db_status s;
    PGresult *res = load(r, r->params[0], &s);
    if (!res)
        return query_missing(r, s, "domain");
    char name[DOMAIN_MAX + 1], sel[64], esel[66];
    snprintf(name, sizeof name, "%s", PQgetvalue(res, 0, 1));
    snprintf(sel, sizeof sel, "%s", PQgetvalue(res, 0, 3));
    snprintf(esel, sizeof esel, "%se", sel);
    char *rsa = PQgetisnull(res, 0, 4) ? NULL : strdup(PQgetvalue(res, 0, 4));
    char *ed = PQgetisnull(res, 0, 5) ? NULL : strdup(PQgetvalue(res, 0, 5));
    PQclear(res);

    char why[1024] = "";
    int rc = rsa ? check_key(sel, name, rsa, why, sizeof why) : DNS_NOTFOUND;
    if (!rsa)
        snprintf(why, sizeof why, "the domain has no rsa-sha256 key");
    if (rc == DNS_OK && ed) {
        /* ed25519 is optional to publish: only a published, different key fails. */
        char ewhy[512];
        int erc = check_key(esel, name, ed, ewhy, sizeof ewhy);
        if (erc == DNS_RETRY || (erc == DNS_NOTFOUND && strstr(ewhy, "does not match"))) {
            rc = erc;
            snprintf(why, sizeof why, "%s", ewhy);
        }
    }
    free(rsa);
    free(ed);
    if (rc == DNS_RETRY) {
        http_add_header(r, "Retry-After", "30");
        return http_problem(r, 503, NULL, why, NULL);
    }
    if (rc != DNS_OK) {
        json_t *errors = json_array();
        http_field_error(errors, "dns_records", "%s", why);
        return http_problem(r, 422, NULL, why, errors);
    }
    const char *params[] = {r->auth.account_id, r->params[0]};
    s = db_exec(db_thread(), ST_DOM_VERIFIED, params, &res);
    if (s != DB_OK)
        return db_failure(r, s);
    PQclear(res);
    res = load(r, r->params[0], &s);
    if (!res)   /* deleted meanwhile */
        return query_missing(r, s, "domain");
    json_t *out = domain_json(res, 0);
    PQclear(res);
    return http_send_json(r, 200, out);
}
