/* Fuzz target: api/cursor.c. Mode 0 (first byte even): the rest is a cursor presented by a
 * client; forging one that verifies is not expected, and anything that decodes must be an
 * array. Mode 1: the rest is JSON; when it is an array, its cursor must decode back to an
 * equal array for the same account (within the 1024-character limit) and not for another. */
#include "tests/fuzz/fuzz.h"

#include "api/cursor.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        cursor_init("fuzz-secret-0123456789abcdef0123456789", "fuzz-previous-0123456789abcdef01234");
        ready = 1;
    }
    if (size < 1)
        return 0;
    char *z = malloc(size);
    CHECK(z != NULL);
    memcpy(z, data + 1, size - 1);
    z[size - 1] = '\0';

    if ((data[0] & 1) == 0) {
        json_t *v = cursor_decode("acc_fuzz", z);
        if (v) {
            CHECK(json_is_array(v));
            json_decref(v);
        }
    } else {
        json_t *in = json_loadb(z, size - 1, 0, NULL);
        if (in && json_is_array(in)) {
            char *c = cursor_encode("acc_fuzz", in);
            CHECK(c != NULL);
            json_t *back = cursor_decode("acc_fuzz", c);
            if (strlen(c) <= 1024) {
                CHECK(back != NULL);
                CHECK(json_equal(back, in));
            } else {
                CHECK(back == NULL);
            }
            json_decref(back);
            CHECK(cursor_decode("acc_other", c) == NULL);
            free(c);
        }
        json_decref(in);
    }
    free(z);
    return 0;
}
