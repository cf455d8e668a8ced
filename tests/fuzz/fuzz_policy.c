/* Fuzz target: smtp/policy.c policy_parse on arbitrary bytes. A refused file must say why
 * (with the file name); an accepted one must hold only values within the documented bounds,
 * and policy_match must answer for any name, including names taken from the input. */
#include "tests/fuzz/fuzz.h"

#include "smtp/policy.h"

#include <string.h>

static void check_policy(const dest_policy *d)
{
    CHECK(d != NULL);
    CHECK(memchr(d->pattern, '\0', sizeof d->pattern) != NULL);
    CHECK(d->max_connections >= 1 && d->max_connections <= POLICY_MAX_CONNECTIONS);
    CHECK(d->messages_per_connection >= 1 && d->messages_per_connection <= POLICY_MAX_MESSAGES);
    CHECK(d->rcpts_per_message >= 1 && d->rcpts_per_message <= POLICY_MAX_RCPTS);
    CHECK(d->rate_per_minute >= 0 && d->rate_per_minute <= POLICY_MAX_RATE);
    CHECK(d->tls >= TLS_POLICY_NONE && d->tls <= TLS_POLICY_VERIFY);
    CHECK(d->dead_after_ms >= POLICY_MIN_DEAD_MS && d->dead_after_ms <= POLICY_MAX_DEAD_MS);
    CHECK(d->dead_for_ms >= POLICY_MIN_DEAD_MS && d->dead_for_ms <= POLICY_MAX_DEAD_MS);
    for (const char *p = d->pattern; *p; p++)
        CHECK(!(*p >= 'A' && *p <= 'Z'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    memset(err, 0, sizeof err);
    policy_set *p = policy_parse((const char *)data, size, "fuzz", err, sizeof err);
    if (!p) {
        CHECK(strncmp(err, "fuzz", 4) == 0);
        return 0;
    }
    CHECK(policy_count(p) >= 1);
    check_policy(policy_match(p, NULL, NULL));
    check_policy(policy_match(p, "mx.example.com", "example.com"));
    /* the first word of each line as a name, so that lines can match */
    const char *s = (const char *)data, *end = s + size;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl ? nl : end;
        char name[300];
        size_t n = 0;
        while (s < eol && (*s == ' ' || *s == '\t'))
            s++;
        if (s < eol && *s == '*')
            s++;       /* "*.a.b" -> ".a.b": prefix it below to make a subdomain */
        while (s < eol && *s != ' ' && *s != '\t' && n < sizeof name - 2)
            name[n++] = *s++;
        name[n] = '\0';
        char sub[302];
        snprintf(sub, sizeof sub, "x%s", name);
        check_policy(policy_match(p, name, sub));
        check_policy(policy_match(p, sub, NULL));
        s = nl ? nl + 1 : end;
    }
    policy_free(p);
    return 0;
}
