/* tests/unit/mimetool.c - reads a JSON message description on stdin, writes the MIME that
 * lib/mime builds for it to stdout; the oracle test (tests/e2e/test_mime_oracle.py) feeds
 * it shapes and parses the output with Python's email package. Not a unit test: `make
 * unit` builds it and does not run it.
 *
 * Input: {"from": ADDR, "reply_to": ADDR, "to": [ADDR], "cc": [ADDR], "subject": "...",
 *         "text": "...", "html": "...", "headers": {"Name": "value"} or [["Name","value"]],
 *         "attachments": [{"filename", "content_type", "disposition", "content_id",
 *                          "content": base64 as the API takes it}],
 *         "message_id": "<...>", "date": unix seconds,
 *         "list_unsubscribe": "...", "list_unsubscribe_post": "..."}
 * ADDR is "Ann <ann@example.com>" or {"email": "...", "name": "..."}; every address goes
 * through lib/addr first, as the API does. Exit 0 with the message, 2 with a reason on
 * stderr (bad description or refused by lib/addr or lib/mime). */
#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/mime.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDRS 64
#define MAX_HDRS  64
#define MAX_ATTS  32

typedef struct {
    addr_t a;
    char   name[MIME_NAME_MAX + 1];
} parsed_addr;

static _Noreturn void bail(const char *what, const char *why)
{
    fprintf(stderr, "mimetool: %s: %s\n", what, why);
    exit(2);
}

static void parse_addr(json_t *j, const char *what, parsed_addr *p, mime_addr *out)
{
    const char *why;
    if (json_is_string(j)) {
        why = addr_parse_mailbox(json_string_value(j), json_string_length(j), &p->a, p->name,
                                 sizeof p->name);
    } else if (json_is_object(j) && json_is_string(json_object_get(j, "email"))) {
        json_t *e = json_object_get(j, "email"), *nm = json_object_get(j, "name");
        why = addr_parse(json_string_value(e), json_string_length(e), &p->a);
        p->name[0] = '\0';
        if (!why && json_is_string(nm)) {
            size_t n = json_string_length(nm);
            if (!addr_name_valid(json_string_value(nm), n) || n >= sizeof p->name)
                why = "invalid display name";
            else
                memcpy(p->name, json_string_value(nm), n + 1);
        }
    } else {
        why = "must be a string or {email, name}";
    }
    if (why)
        bail(what, why);
    out->email = p->a.email;
    out->name = p->name;
}

static size_t parse_addrs(json_t *arr, const char *what, parsed_addr *p, mime_addr *out)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_ADDRS)
        bail(what, "must be an array of at most 64 addresses");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) parse_addr(v, what, &p[i], &out[i]);
    return json_array_size(arr);
}

/* len != NULL: a body, where NUL is content; else a header-bound C string. */
static const char *opt_string(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return NULL;
    if (!json_is_string(v))
        bail(key, "must be a string");
    if (!len && strlen(json_string_value(v)) != json_string_length(v))
        bail(key, "NUL in string");   /* lib/mime takes C strings; the API refuses NUL */
    if (len)
        *len = json_string_length(v);
    return json_string_value(v);
}

int main(void)
{
    json_error_t jerr;
    json_t *root = json_loadf(stdin, JSON_ALLOW_NUL, &jerr);
    if (!root || !json_is_object(root))
        bail("input", root ? "not an object" : jerr.text);

    static parsed_addr pfrom, preply, pto[MAX_ADDRS], pcc[MAX_ADDRS];
    static mime_addr reply, to[MAX_ADDRS], cc[MAX_ADDRS];
    static const char *hn[MAX_HDRS], *hv[MAX_HDRS];
    static mime_attachment att[MAX_ATTS];
    mime_message m = {0};

    if (!json_object_get(root, "from"))
        bail("from", "missing");
    parse_addr(json_object_get(root, "from"), "from", &pfrom, &m.from);
    if (json_object_get(root, "reply_to")) {
        parse_addr(json_object_get(root, "reply_to"), "reply_to", &preply, &reply);
        m.reply_to = &reply;
    }
    m.nto = parse_addrs(json_object_get(root, "to"), "to", pto, to);
    m.to = to;
    m.ncc = parse_addrs(json_object_get(root, "cc"), "cc", pcc, cc);
    m.cc = cc;
    m.subject = opt_string(root, "subject", NULL);
    m.text = opt_string(root, "text", &m.text_len);
    m.html = opt_string(root, "html", &m.html_len);
    m.message_id = opt_string(root, "message_id", NULL);
    m.list_unsubscribe = opt_string(root, "list_unsubscribe", NULL);
    m.list_unsubscribe_post = opt_string(root, "list_unsubscribe_post", NULL);
    json_t *date = json_object_get(root, "date");
    if (date && !json_is_integer(date))
        bail("date", "must be an integer");
    m.date_unix = date ? json_integer_value(date) : 0;

    json_t *hdrs = json_object_get(root, "headers");
    if (json_is_object(hdrs)) {
        const char *k;
        json_t *v;
        json_object_foreach(hdrs, k, v) {
            if (m.nhdrs == MAX_HDRS || !json_is_string(v) ||
                strlen(json_string_value(v)) != json_string_length(v))
                bail("headers", "at most 64 string values without NUL");
            hn[m.nhdrs] = k;
            hv[m.nhdrs++] = json_string_value(v);
        }
    } else if (json_is_array(hdrs)) {
        size_t i;
        json_t *v;
        json_array_foreach(hdrs, i, v) {
            json_t *k = json_array_get(v, 0), *val = json_array_get(v, 1);
            if (m.nhdrs == MAX_HDRS || !json_is_string(k) || !json_is_string(val) ||
                strlen(json_string_value(k)) != json_string_length(k) ||
                strlen(json_string_value(val)) != json_string_length(val))
                bail("headers", "at most 64 [name, value] pairs without NUL");
            hn[m.nhdrs] = json_string_value(k);
            hv[m.nhdrs++] = json_string_value(val);
        }
    } else if (hdrs) {
        bail("headers", "must be an object or an array of pairs");
    }
    m.hdr_names = hn;
    m.hdr_values = hv;

    json_t *atts = json_object_get(root, "attachments");
    if (atts) {
        if (!json_is_array(atts) || json_array_size(atts) > MAX_ATTS)
            bail("attachments", "must be an array of at most 32");
        size_t i;
        json_t *a;
        json_array_foreach(atts, i, a) {
            json_t *cj = json_object_get(a, "content");
            if (!json_is_string(cj))
                bail("attachments", "content missing");
            const char *c = json_string_value(cj);
            size_t cl = json_string_length(cj);
            unsigned char *data = malloc(cl / 4 * 3 + 1);
            if (!data)
                bail("attachments", "out of memory");
            long dl = crypto_b64_decode(c, cl, data, cl / 4 * 3);
            if (dl < 0)
                bail("attachments", "content is not base64");
            att[i].filename = opt_string(a, "filename", NULL);
            att[i].content_type = opt_string(a, "content_type", NULL);
            att[i].disposition = opt_string(a, "disposition", NULL);
            att[i].content_id = opt_string(a, "content_id", NULL);
            att[i].data = data;
            att[i].len = (size_t)dl;
            m.natt++;
        }
    }
    m.att = att;

    buf out;
    char err[200];
    buf_init(&out, (size_t)64 << 20);
    if (mime_build(&m, &out, err, sizeof err) != 0)
        bail("mime_build", err);
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    for (size_t i = 0; i < m.natt; i++)
        free((void *)att[i].data);
    json_decref(root);
    return fflush(stdout) == 0 ? 0 : 1;
}
