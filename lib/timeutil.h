/* lib/timeutil.h - clocks and RFC 3339 times. Monotonic time for intervals and timeouts,
 * wall time only for what is shown to people or stored. */
#ifndef POSTHORN_TIMEUTIL_H
#define POSTHORN_TIMEUTIL_H
#include <stdint.h>
#include <stddef.h>

int64_t time_mono_ms(void);
int64_t time_mono_us(void);
int64_t time_wall_ms(void);
/* Parses an RFC 3339 date-time ("2026-12-01T09:00:00Z", "...+01:00", fractions allowed)
 * into Unix milliseconds; -1 when malformed or out of range. */
int time_parse_rfc3339(const char *s, size_t n, int64_t *ms);
/* Formats Unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (out: 32 bytes). */
void time_format_rfc3339(int64_t ms, char out[32]);
/* Sleeps up to ms, returning early when *stop becomes non-zero (checked every 50 ms). */
void time_sleep_ms(int64_t ms, volatile int *stop);
#endif
