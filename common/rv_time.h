/* rv_time: clocks. Monotonic nanoseconds for durations and deadlines,
 * wall-clock milliseconds for processing time. */
#ifndef RV_TIME_H
#define RV_TIME_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t rv_now_ns(void);
/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t rv_now_ms(void) { return rv_now_ns() / 1000000; }
/* CLOCK_REALTIME in milliseconds since the Unix epoch. */
int64_t rv_wall_ms(void);

#endif
