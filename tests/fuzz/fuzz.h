/* tests/fuzz/fuzz.h - shared by the libFuzzer targets: the entry point's prototype (the build
 * uses -Wmissing-prototypes) and CHECK(), which aborts with a message so that a broken
 * invariant is reported as a crash with its input saved. */
#ifndef POSTHORN_FUZZ_H
#define POSTHORN_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)
#endif
