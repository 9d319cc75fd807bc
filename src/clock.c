/* clock.c - monotonic time in milliseconds and deadlines for poll(). */

#include <limits.h>
#include <time.h>

#include "clock.h"

/* CLOCK_MONOTONIC in milliseconds. */
msec_t
clock_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (msec_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Time left until deadline as a poll() timeout. */
int
clock_left(msec_t deadline)
{
    msec_t left;

    if (deadline == DEADLINE_NONE) {
        return -1;
    }
    left = deadline - clock_now();
    if (left <= 0) {
        return 0;
    }
    return left > INT_MAX ? INT_MAX : (int)left;
}
