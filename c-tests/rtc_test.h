/* A tiny test helper for rtcore's C suite: each program counts checks and
 * ends with the line "N passed, N failed" (exit status 1 on any failure). */
#ifndef RTC_TEST_H
#define RTC_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtcore.h"

static int rtc_t_passed;
static int rtc_t_failed;

static inline const char *rtc_t_last_error(void) {
    static char buf[4096];
    rtc_last_error_message(buf, sizeof buf);
    return buf;
}

/* Iteration scale: RTC_TEST_SCALE (default 100); valgrind runs use 1. */
static inline int rtc_t_scale(void) {
    const char *s = getenv("RTC_TEST_SCALE");
    int v = s ? atoi(s) : 100;
    return v > 0 ? v : 1;
}

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            rtc_t_passed++;                                                      \
        } else {                                                                 \
            rtc_t_failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                        \
    } while (0)

#define CHECK_STATUS(call, expected)                                             \
    do {                                                                         \
        int rtc_t_s = (int)(call);                                               \
        if (rtc_t_s == (int)(expected)) {                                        \
            rtc_t_passed++;                                                      \
        } else {                                                                 \
            rtc_t_failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s returned %d (%s), expected %s; last error: %s\n", \
                    __FILE__, __LINE__, #call, rtc_t_s, rtc_status_str(rtc_t_s), \
                    #expected, rtc_t_last_error());                             \
        }                                                                        \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                         \
    do {                                                                         \
        const char *rtc_t_h = (haystack);                                        \
        const char *rtc_t_n = (needle);                                          \
        if (rtc_t_h && strstr(rtc_t_h, rtc_t_n)) {                               \
            rtc_t_passed++;                                                      \
        } else {                                                                 \
            rtc_t_failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: expected to find \"%s\" in:\n%s\n",     \
                    __FILE__, __LINE__, rtc_t_n, rtc_t_h ? rtc_t_h : "(null)");  \
        }                                                                        \
    } while (0)

/* The most recent lock-order report (static buffer). */
static inline const char *rtc_t_report(void) {
    static char buf[8192];
    size_t need = 0;
    if (rtc_lockrank_last_report(buf, sizeof buf, &need) != RTC_OK) {
        return "(rtc_lockrank_last_report failed)";
    }
    return buf;
}

static inline unsigned long long rtc_t_violations(void) {
    uint64_t n = 0;
    rtc_lockrank_violations(&n);
    return (unsigned long long)n;
}

/* Time bounds in the tests are one-sided; RTC_TEST_SLOW (set for valgrind
 * runs, where threads are serialised and everything is ~50x slower)
 * stretches them. */
static inline long rtc_t_bound_ms(long ms) {
    return getenv("RTC_TEST_SLOW") ? ms * 30 : ms;
}

/* Milliseconds since *t0 (CLOCK_MONOTONIC). */
static inline long rtc_t_ms_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* sysmon's counters (zeroes, and a failed check, if the call fails). */
static inline rtc_sysmon_stats rtc_t_sysmon_stats(void) {
    rtc_sysmon_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    if (rtc_sysmon_get_stats(&s) != RTC_OK) {
        rtc_t_failed++;
        fprintf(stderr, "FAIL rtc_sysmon_get_stats: %s\n", rtc_t_last_error());
    }
    return s;
}

/* End a test program: shut rtcore down (joining its threads) and report. */
static inline int rtc_t_finish(void) {
    int s = (int)rtc_shutdown();
    if (s != RTC_OK && s != RTC_ERR_SHUT_DOWN) {
        rtc_t_failed++;
        fprintf(stderr, "FAIL rtc_shutdown returned %d: %s\n", s, rtc_t_last_error());
    }
    printf("%d passed, %d failed\n", rtc_t_passed, rtc_t_failed);
    return rtc_t_failed ? 1 : 0;
}


/* Run `fn` in a forked child with RTCORE_DEBUG set to `debug` (or unset);
 * return its wait status. The child's stderr goes to `errfile` (if not
 * NULL); the child counts only its own checks and exits 1 if any failed. */
#include <sys/wait.h>
#include <unistd.h>
static inline int rtc_t_in_child(void (*fn)(void), const char *debug, const char *errfile) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (debug) setenv("RTCORE_DEBUG", debug, 1); else unsetenv("RTCORE_DEBUG");
        if (errfile && !freopen(errfile, "w", stderr)) _exit(99);
        rtc_t_failed = 0;
        fn();
        _exit(rtc_t_failed ? 1 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

/* The first 8 KiB of a file, NUL-terminated (static buffer). */
static inline const char *rtc_t_slurp(const char *path) {
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    return buf;
}

/* A trace configuration for a path sink. */
static inline rtc_trace_config rtc_t_path_config(const char *path) {
    rtc_trace_config c = RTC_TRACE_CONFIG_INIT;
    c.sink_kind = RTC_TRACE_SINK_PATH;
    c.path = path;
    return c;
}

#endif
