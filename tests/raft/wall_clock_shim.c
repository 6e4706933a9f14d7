/* A wall clock that jumps, for one process: LD_PRELOAD this library and
 * write an offset in seconds (e.g. "3600" or "-3600") to the file named by
 * RAFTKV_WALL_CLOCK_OFFSET_FILE. clock_gettime(CLOCK_REALTIME*), gettimeofday
 * and time() then read that much later or earlier; the monotonic clocks are
 * untouched, as when an operator or NTP steps a machine's clock.
 * Built by tests/raft/test_clock_jump.py at test time. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static long cached_offset;
static struct timespec checked_at;

static long offset_seconds(void) {
    struct timespec now;
    if (!real_clock_gettime)
        real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    real_clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed_ms = (now.tv_sec - checked_at.tv_sec) * 1000 + (now.tv_nsec - checked_at.tv_nsec) / 1000000;
    if (checked_at.tv_sec == 0 || elapsed_ms > 50) {
        const char *path = getenv("RAFTKV_WALL_CLOCK_OFFSET_FILE");
        FILE *f = path ? fopen(path, "r") : NULL;
        long value = 0;
        if (f) {
            if (fscanf(f, "%ld", &value) == 1)
                cached_offset = value;
            fclose(f);
        }
        checked_at = now;
    }
    return cached_offset;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    if (!real_clock_gettime)
        real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    int result = real_clock_gettime(clock, ts);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        ts->tv_sec += offset_seconds();
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int result = clock_gettime(CLOCK_REALTIME, &ts);
    if (result == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    (void)tz;
    return result;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
