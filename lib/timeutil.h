/* lib/timeutil.h - clocks and RFC 3339 times. Monotonic time for intervals and timeouts,
 * wall time only for what is shown to people or stored. */
#ifndef POSTHORN_TIMEUTIL_H
#define POSTHORN_TIMEUTIL_H
#include <stdint.h>
#include <stddef.h>

int64_t time_mono_ms(void);
int64_t time_mono_us(void);
int64_t time_wall_ms(void);
/* Sleeps up to ms, returning early when *stop becomes non-zero (checked every 50 ms). */
void time_sleep_ms(int64_t ms, volatile int *stop);
#endif
