/* clock.h - monotonic milliseconds and deadlines. */
#ifndef POSTERN_CLOCK_H
#define POSTERN_CLOCK_H

#include <stdint.h>

typedef int64_t msec_t;

#define DEADLINE_NONE INT64_MAX

msec_t clock_now(void);                          /* CLOCK_MONOTONIC in ms */
/* Milliseconds left until deadline for poll(): 0 when passed, -1 for none. */
int clock_left(msec_t deadline);

#endif
