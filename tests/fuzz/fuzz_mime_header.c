/* Fuzz target: lib/mime.c, the header encoder. The input is a flags byte and then fields
 * separated by NUL: subject, From / To / Cc / Reply-To display names, a custom header name
 * and value, a second custom header value, an attachment filename. Each field goes through
 * mime_header_value_valid, mime_text_valid and mime_custom_header_check, then into one
 * mime_build (text part always; html, attachment, List-Unsubscribe, a UTF-8 local part in
 * To and a small output maximum by flag). Invariants: mime_build refuses whatever the
 * checks refuse; on refusal err is set and out is unchanged; on success the appended
 * message is 7-bit except the UTF-8 local part, every line ends CRLF, there is no bare CR
 * or LF, no line passes 998 octets and the header section ends with an empty line. */
#include "tests/fuzz/fuzz.h"

#include "lib/buf.h"
#include "lib/mime.h"

#include <string.h>

#define NFIELDS 9
static const char PREFIX[] = "prefix that must stay\r\n";
static const char U8LOCAL[] = "j\xc3\xb6rg@";   /* jörg@ */

static void check_message(const char *p, size_t n, int utf8_local)
{
    CHECK(n >= 4);
    /* line structure: CRLF only, <= 998 octets before it, ends with CRLF */
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            CHECK(i + 1 < n && p[i + 1] == '\n');
            i++;
            col = 0;
            continue;
        }
        CHECK(p[i] != '\n');   /* bare LF */
        col++;
        CHECK(col <= 998);
    }
    CHECK(p[n - 2] == '\r' && p[n - 1] == '\n');
    /* header section: non-empty, ends with an empty line */
    CHECK(!(p[0] == '\r' && p[1] == '\n'));
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    CHECK(end != NULL);
    /* 7-bit, except the octets of the UTF-8 local part */
    size_t ul = sizeof U8LOCAL - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x80) {
            int ok = 0;
            if (utf8_local)
                for (size_t k = 1; k <= 2 && k <= i && !ok; k++)
                    ok = i - k + ul <= n && memcmp(p + i - k, U8LOCAL, ul) == 0;
            CHECK(ok);
        }
        CHECK(c != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = in[0];
    const char *raw = (const char *)in + 1;
    size_t rawlen = size - 1;

    /* the checks must not crash on any octets, NULs included */
    (void)mime_header_value_valid(raw, rawlen);
    (void)mime_text_valid(raw, rawlen, MIME_NAME_MAX);
    (void)mime_custom_header_check(raw, rawlen);

    /* split into NUL-terminated fields; missing ones are empty */
    char *copy = malloc(rawlen + 1);
    CHECK(copy != NULL);
    memcpy(copy, raw, rawlen);
    copy[rawlen] = '\0';
    const char *f[NFIELDS];
    size_t fl[NFIELDS];
    size_t pos = 0;
    for (int i = 0; i < NFIELDS; i++) {
        if (pos <= rawlen) {
            f[i] = copy + pos;
            fl[i] = strlen(f[i]);
            pos += fl[i] + 1;
        } else {
            f[i] = "";
            fl[i] = 0;
        }
    }
    const char *subject = f[0], *from_name = f[1], *to_name = f[2], *cc_name = f[3],
               *rt_name = f[4], *hname = f[5], *hval = f[6], *hval2 = f[7], *fname = f[8];

    /* what the checks say decides what mime_build must refuse */
    const char *why = mime_custom_header_check(hname, fl[5]);
    CHECK(why == NULL || why[0] != '\0');
    int must_fail = (!(flags & 1) && !mime_header_value_valid(subject, fl[0])) ||
                    !mime_text_valid(from_name, fl[1], MIME_NAME_MAX) ||
                    !mime_text_valid(to_name, fl[2], MIME_NAME_MAX) ||
                    !mime_text_valid(cc_name, fl[3], MIME_NAME_MAX) ||
                    ((flags & 32) && !mime_text_valid(rt_name, fl[4], MIME_NAME_MAX)) ||
                    why != NULL || !mime_header_value_valid(hval, fl[6]) ||
                    ((flags & 16) && !mime_header_value_valid(hval2, fl[7])) ||
                    ((flags & 4) && !mime_text_valid(fname, fl[8], MIME_FILENAME_MAX));

    int utf8_local = (flags & 2) != 0;
    mime_addr to[2] = {{utf8_local ? "j\xc3\xb6rg@example.com" : "ann@example.com", to_name},
                       {"bob@example.org", NULL}};
    mime_addr cc[1] = {{"cc@example.net", cc_name}};
    mime_addr rt = {"support@shop.example", rt_name};
    const char *hn[2] = {hname, "X-Fuzz-Second"};
    const char *hv[2] = {hval, hval2};
    static const unsigned char blob[] = "attachment body\r\n\x00\x01\xff";
    mime_attachment att = {fname, "application/octet-stream", NULL, NULL, blob, sizeof blob};
    static const char text[] = "Hello,\n.dot line\nbye\n";
    static const char html[] = "<p>Hello</p>\n";
    mime_message m = {
        .from = {"orders@shop.example", from_name},
        .reply_to = (flags & 32) ? &rt : NULL,
        .to = to, .nto = 2, .cc = cc, .ncc = 1,
        .subject = (flags & 1) ? NULL : subject,
        .text = text, .text_len = sizeof text - 1,
        .html = (flags & 8) ? html : NULL, .html_len = (flags & 8) ? sizeof html - 1 : 0,
        .hdr_names = hn, .hdr_values = hv, .nhdrs = (flags & 16) ? 2 : 1,
        .att = &att, .natt = (flags & 4) ? 1 : 0,
        .message_id = "<m1@shop.example>", .date_unix = 1767225600,
        .list_unsubscribe = (flags & 128) ? "<https://posthorn.example/u/abc>" : NULL,
        .list_unsubscribe_post = (flags & 128) ? "List-Unsubscribe=One-Click" : NULL,
    };
    buf out;
    buf_init(&out, (flags & 64) ? 600 : 1 << 20);
    CHECK(buf_append(&out, PREFIX, sizeof PREFIX - 1) == 0);
    char err[256];
    memset(err, 'X', sizeof err);
    int rc = mime_build(&m, &out, err, sizeof err);
    if (rc != 0) {
        CHECK(rc == -1);
        CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        CHECK(out.len == sizeof PREFIX - 1 && memcmp(out.data, PREFIX, out.len) == 0);
    } else {
        CHECK(!must_fail);
        CHECK(out.len <= out.max);
        CHECK(out.len > sizeof PREFIX - 1 && memcmp(out.data, PREFIX, sizeof PREFIX - 1) == 0);
        check_message(out.data + sizeof PREFIX - 1, out.len - (sizeof PREFIX - 1), utf8_local);
    }
    buf_free(&out);
    free(copy);
    return 0;
}
