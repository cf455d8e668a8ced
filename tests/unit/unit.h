/* tests/unit/unit.h - what every cmocka unit test includes: cmocka (which needs these system
 * headers first), a table-size macro, hex helpers, and KNOWN_BUG() for tests that pin down a
 * reported but not yet fixed bug: they skip by default and run with UNIT_KNOWN_BUGS=1, so the
 * suite stays green while the bug is open and the test proves the fix when it lands. */
#ifndef POSTHORN_UNIT_H
#define POSTHORN_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define KNOWN_BUG(what)                                                  \
    do {                                                                 \
        if (!getenv("UNIT_KNOWN_BUGS")) {                                \
            print_message("known bug, skipped (UNIT_KNOWN_BUGS=1 runs it): %s\n", what); \
            skip();                                                      \
        }                                                                \
    } while (0)

/* Parses a hex string into out (strlen(hex)/2 bytes); the test fails on bad hex. */
static inline size_t unit_unhex(const char *hex, uint8_t *out, size_t out_max)
{
    size_t n = strlen(hex);
    assert_int_equal(n % 2, 0);
    assert_true(n / 2 <= out_max);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n / 2;
}

/* Compares bytes against an expected hex string, showing both in hex on a mismatch. */
static inline void unit_assert_hex(const uint8_t *got, size_t n, const char *want_hex)
{
    char *got_hex = malloc(2 * n + 1);
    assert_non_null(got_hex);
    for (size_t i = 0; i < n; i++)
        snprintf(got_hex + 2 * i, 3, "%02x", got[i]);
    got_hex[2 * n] = '\0';
    assert_string_equal(got_hex, want_hex);
    free(got_hex);
}
#endif
