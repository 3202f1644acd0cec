/* Thousands of attached threads (issue 13, row 6), each case in its own
 * child process:
 *
 * - 2,000 threads (20 x RTC_TEST_SCALE, at most 2,000) attach with maxprocs
 *   0 and stay RUNNING: every attach succeeds, all within 2 s in all (the
 *   1,025th used to wait forever); the census counts them; sysmon's CPU
 *   time while they sit attached for a second stays a small share of one
 *   core (its tick was quadratic in the Ps); a stop and a start of the
 *   world with all of them attached works;
 * - the documented cap, lowered to 8 with RTCORE_DEBUG=procs_cap=8: with 8
 *   threads running, a 9th attach is refused with RTC_ERR_WRONG_STATE at
 *   once; after one detaches, it attaches. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "rtc_test.h"

static atomic_int attached, attach_failed, release;

static void *attach_and_hold(void *arg) {
    (void)arg;
    if (rtc_thread_attach("holder", NULL) != RTC_OK) {
        atomic_fetch_add(&attach_failed, 1);
        return NULL;
    }
    atomic_fetch_add(&attached, 1);
    /* RUNNING, holding its P, passing a safepoint now and then. */
    while (!atomic_load(&release)) {
        rtc_safepoint();
        usleep(400000); /* 2,000 threads on 2 cores: wake rarely */
    }
    rtc_thread_detach();
    return NULL;
}

/* CPU time (user + system, in clock ticks) of this process's thread named
 * `name`, or -1. */
static long thread_cpu_ticks(const char *name) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    long found = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && found < 0) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        if (strcmp(comm, name) != 0) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')'); /* fields after the name */
        unsigned long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            found = (long)(ut + st);
    }
    closedir(d);
    return found;
}

static void child_two_thousand(void) {
    alarm(120);
    int n = 20 * rtc_t_scale();
    if (n > 2000) n = 2000;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 128 * 1024);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) CHECK(pthread_create(&t[i], &a, attach_and_hold, NULL) == 0);
    while (atomic_load(&attached) + atomic_load(&attach_failed) < n &&
           rtc_t_ms_since(&t0) < rtc_t_bound_ms(30000))
        usleep(1000);
    long ms = rtc_t_ms_since(&t0);
    fprintf(stderr, "%d threads attached in %ld ms\n", atomic_load(&attached), ms);
    CHECK(atomic_load(&attached) == n);
    CHECK(atomic_load(&attach_failed) == 0);
    CHECK(ms < rtc_t_bound_ms(2000));
    rtc_census c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    CHECK_STATUS(rtc_world_census(&c), RTC_OK);
    CHECK(c.threads_running == (uint32_t)n);

    /* sysmon with every thread attached and running: a second of it. */
    long before = thread_cpu_ticks("rtcore-sysmon");
    CHECK(before >= 0);
    usleep(1000000);
    long used = thread_cpu_ticks("rtcore-sysmon") - before;
    long hz = sysconf(_SC_CLK_TCK);
    fprintf(stderr, "sysmon used %ld ticks of %ld in 1 s with %d threads attached\n", used, hz, n);
    CHECK(used * 5 < hz); /* under 20% of one core */

    /* The world stops and starts with all of them attached. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(rtc_stop_the_world("many"), RTC_OK);
    CHECK_STATUS(rtc_world_census(&c), RTC_OK);
    CHECK(c.procs_stopped == (uint32_t)n);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    fprintf(stderr, "a stop and a start of %d threads: %ld ms\n", n, rtc_t_ms_since(&t0));
    atomic_store(&release, 1);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    free(t);
    CHECK_STATUS(rtc_shutdown(), RTC_OK);
}

static void child_cap(void) {
    alarm(60);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, attach_and_hold, NULL);
    while (atomic_load(&attached) + atomic_load(&attach_failed) < 8) usleep(1000);
    CHECK(atomic_load(&attached) == 8);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_STATUS(rtc_thread_attach("ninth", NULL), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "all 8 processors");
    CHECK(rtc_t_ms_since(&t0) < rtc_t_bound_ms(1000));
    atomic_store(&release, 1);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    CHECK_STATUS(rtc_thread_attach("ninth", NULL), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    CHECK_STATUS(rtc_shutdown(), RTC_OK);
}

int main(void) {
    int st = rtc_t_in_child(child_two_thousand, NULL, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = rtc_t_in_child(child_cap, "procs_cap=8", NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return rtc_t_finish();
}
