/* Fuzz target: lib/html2text.c. Any input is accepted (rc 0 with room for all); the output is
 * valid UTF-8 with no control character but \n, no blank line run longer than one, and no
 * line with trailing spaces. A small maximum must give -1 or a result within it. */
#include "tests/fuzz/fuzz.h"

#include "lib/html2text.h"

#include <string.h>

static int valid_utf8_text(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned v, min;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\n') || c == 0x7F)
                return 0;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2, v = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, v = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, v = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (v >= 0x80 && v < 0xA0))
            return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf b;
    buf_init(&b, 4 * size + 16);
    CHECK(html2text((const char *)data, size, &b) == 0);
    const unsigned char *o = (const unsigned char *)(b.data ? b.data : "");
    CHECK(valid_utf8_text(o, b.len));
    CHECK(b.len == 0 || o[b.len - 1] == '\n');
    CHECK(b.len == 0 || (o[0] != '\n' && o[0] != ' '));
    for (size_t i = 0; i + 1 < b.len; i++) {
        CHECK(!(o[i] == ' ' && o[i + 1] == '\n'));
        CHECK(!(o[i] == ' ' && o[i + 1] == ' '));
        if (i + 2 < b.len)
            CHECK(!(o[i] == '\n' && o[i + 1] == '\n' && o[i + 2] == '\n'));
    }
    size_t full = b.len;
    buf_free(&b);

    size_t max = size ? data[0] % 32 : 0;
    buf_init(&b, max);
    int rc = html2text((const char *)data, size, &b);
    CHECK(rc == 0 || rc == -1);
    CHECK(b.len <= max);
    if (rc == 0)
        CHECK(b.len == full);
    buf_free(&b);
    return 0;
}
