#include "lib/timeutil.h"

#include <time.h>

int64_t time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_ms(void) { return time_mono_us() / 1000; }

int64_t time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void time_sleep_ms(int64_t ms, volatile int *stop)
{
    int64_t end = time_mono_ms() + ms;
    for (;;) {
        if (stop && *stop)
            return;
        int64_t left = end - time_mono_ms();
        if (left <= 0)
            return;
        if (left > 50)
            left = 50;
        struct timespec ts = {left / 1000, (left % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}
