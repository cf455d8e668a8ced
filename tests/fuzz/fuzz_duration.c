/* Fuzz target: lib/config.c config_parse_duration, checked against a separate reference:
 * what strtoll reads (leading white space, an optional sign, decimal digits) followed by
 * nothing, "ms", "s", "m", "h" or "d"; negative values and results past INT64_MAX refused. */
#include "tests/fuzz/fuzz.h"

#include "lib/config.h"

#include <ctype.h>
#include <string.h>

static int reference(const char *s, int64_t *ms)
{
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return -1;
    unsigned __int128 v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > (unsigned __int128)INT64_MAX + 1)
            v = (unsigned __int128)INT64_MAX + 2;     /* saturate: too big either way */
    }
    if (neg && v != 0)
        return -1;
    if (v > INT64_MAX)
        return -1;
    unsigned __int128 mul;
    if (strcmp(p, "ms") == 0) mul = 1;
    else if (strcmp(p, "") == 0 || strcmp(p, "s") == 0) mul = 1000;
    else if (strcmp(p, "m") == 0) mul = 60000;
    else if (strcmp(p, "h") == 0) mul = 3600000;
    else if (strcmp(p, "d") == 0) mul = 86400000;
    else return -1;
    if (v * mul > INT64_MAX)
        return -1;
    *ms = (int64_t)(v * mul);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z = malloc(size + 1);
    CHECK(z != NULL);
    memcpy(z, data, size);
    z[size] = '\0';
    int64_t got = -7, want = -7;
    int rc = config_parse_duration(z, &got);
    int rrc = reference(z, &want);
    if (rc != rrc || (rc == 0 && got != want)) {
        fprintf(stderr, "\"%s\": got rc %d ms %lld, reference rc %d ms %lld\n", z, rc,
                (long long)got, rrc, (long long)want);
        abort();
    }
    CHECK(rc != 0 || got >= 0);
    free(z);
    return 0;
}
