/* sysmon end to end, with one-sided bounds and wide margins (2 cores,
 * possibly loaded): it starts with the first attach; it retakes the P of a
 * thread blocked in a region when another thread waits for a P; it does not
 * retake Ps of threads that block briefly while nothing waits; it asks a
 * thread spinning without safepoints to reach one; it stops at shutdown. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "rtc_test.h"

static int pipefd[2];
static atomic_int blocker_in, runner_ran;

static void *blocker(void *arg) {
    (void)arg;
    rtc_thread_attach("blocker", NULL);
    rtc_enter_blocking("pipe read");
    atomic_store(&blocker_in, 1);
    char b;
    ssize_t n = read(pipefd[0], &b, 1); /* until the test writes */
    (void)n;
    rtc_exit_blocking(); /* its P was retaken: the slow path */
    rtc_thread_detach();
    return NULL;
}

static void *runner(void *arg) {
    (void)arg;
    rtc_thread_attach("runner", NULL); /* waits: maxprocs 1, the P is SYSCALL */
    atomic_store(&runner_ran, 1);
    rtc_thread_detach();
    return NULL;
}

static void test_retake_for_a_waiter(void) {
    CHECK_STATUS(rtc_set_maxprocs(1, NULL), RTC_OK);
    CHECK(pipe(pipefd) == 0);
    pthread_t b, r;
    /* Counted from before the blocker exists: its P can only be retaken
     * after this (for the runner, or after 10 ms regardless, which a slow
     * host may reach before the runner attaches). */
    uint64_t before = rtc_t_sysmon_stats().retakes;
    pthread_create(&b, NULL, blocker, NULL);
    while (!atomic_load(&blocker_in)) usleep(1000);
    CHECK(rtc_t_sysmon_stats().running == 1); /* started by the first attach */
    pthread_create(&r, NULL, runner, NULL);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load(&runner_ran) && rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000)) usleep(1000);
    CHECK(atomic_load(&runner_ran)); /* within 2 s: sysmon handed the P over */
    CHECK(rtc_t_sysmon_stats().retakes > before);
    pthread_join(r, NULL);
    ssize_t n = write(pipefd[1], "x", 1);
    (void)n;
    pthread_join(b, NULL);
    close(pipefd[0]); close(pipefd[1]);
    CHECK_STATUS(rtc_set_maxprocs(0, NULL), RTC_OK);
}

static atomic_int brief_stop, long_regions;
static void *brief_blocker(void *arg) {
    (void)arg;
    rtc_thread_attach("brief", NULL);
    while (!atomic_load(&brief_stop)) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rtc_enter_blocking("short sleep");
        usleep(100); /* far below 10 ms */
        rtc_exit_blocking();
        /* A slow host (valgrind) can stretch a region past 10 ms; only
         * those may be retaken. */
        if (rtc_t_ms_since(&t0) >= 10) atomic_fetch_add(&long_regions, 1);
        rtc_safepoint();
    }
    rtc_thread_detach();
    return NULL;
}

static void test_no_retake_when_nobody_waits(void) {
    uint64_t before = rtc_t_sysmon_stats().retakes;
    pthread_t t;
    pthread_create(&t, NULL, brief_blocker, NULL);
    usleep(200000);
    atomic_store(&brief_stop, 1);
    pthread_join(t, NULL);
    /* Nothing was RUNNABLE: only a region that lasted 10 ms may have been
     * retaken (the forced rule), and the thread counted those itself. */
    CHECK(rtc_t_sysmon_stats().retakes - before <= (uint64_t)atomic_load(&long_regions));
}

static atomic_int spin_stop;
static _Atomic uint64_t handled_request;
static _Atomic uint64_t handler_thread;
static void on_preempt(uint64_t n, void *arg) {
    uint64_t me = 0;
    rtc_thread_id(&me);
    atomic_store(&handler_thread, me);
    atomic_store(&handled_request, n);
    (*(atomic_int *)arg)++;
}
static void *spinner(void *arg) {
    (void)arg;
    rtc_thread_attach("spinner", NULL);
    uint64_t start = rtc_t_sysmon_stats().preempt_requests;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* No safepoint until sysmon has asked this thread (the only one
     * attached) for one, or 2 s passed. Sleeping is not a safepoint: the
     * thread stays RUNNING to sysmon. */
    while (rtc_t_sysmon_stats().preempt_requests == start && rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000)) usleep(100);
    atomic_store(&spin_stop, 1);
    uint64_t me = 0;
    rtc_thread_id(&me);
    rtc_safepoint(); /* acknowledges, calling the handler on this thread */
    CHECK(atomic_load(&handler_thread) == me);
    rtc_thread_detach();
    return NULL;
}

static void test_preemption_request(void) {
    static atomic_int calls;
    CHECK_STATUS(rtc_set_preempt_handler(on_preempt, &calls), RTC_OK);
    uint64_t before = rtc_t_sysmon_stats().preempt_requests;
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    pthread_join(t, NULL);
    CHECK(rtc_t_sysmon_stats().preempt_requests > before);
    /* The handler ran once per acknowledged request, numbered from 1. */
    CHECK(atomic_load(&calls) >= 1);
    CHECK(atomic_load(&handled_request) >= 1);
    CHECK_STATUS(rtc_set_preempt_handler(NULL, NULL), RTC_OK);
}

/* A handler may call rtcore, even detach the thread it runs on: it runs as
 * the last step of the safepoint call (this was a use-after-free). */
static atomic_int detach_status = -1;
static void detaching_handler(uint64_t n, void *arg) {
    (void)n; (void)arg;
    atomic_store(&detach_status, rtc_thread_detach());
}
static int32_t state_after = -1;
static void *detached_by_handler(void *arg) {
    (void)arg;
    rtc_thread_attach("detached-by-handler", NULL);
    uint64_t before = rtc_t_sysmon_stats().preempt_requests;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_sysmon_stats().preempt_requests == before && rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000))
        usleep(100);
    CHECK_STATUS(rtc_enter_blocking("after a long run"), RTC_OK);
    /* The handler ran inside the region: detach was refused (BLOCKING). */
    CHECK_STATUS(atomic_load(&detach_status), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    while (rtc_t_sysmon_stats().preempt_requests == before + 1 && rtc_t_ms_since(&t0) < rtc_t_bound_ms(4000))
        usleep(100);
    atomic_store(&detach_status, -1);
    CHECK_STATUS(rtc_safepoint(), RTC_OK); /* the handler detaches us */
    CHECK_STATUS(atomic_load(&detach_status), RTC_OK);
    rtc_thread_state(&state_after);
    return NULL;
}

static void test_handler_may_detach(void) {
    CHECK_STATUS(rtc_set_preempt_handler(detaching_handler, NULL), RTC_OK);
    pthread_t t;
    pthread_create(&t, NULL, detached_by_handler, NULL);
    pthread_join(t, NULL);
    CHECK(state_after == RTC_THREAD_UNATTACHED);
    CHECK_STATUS(rtc_set_preempt_handler(NULL, NULL), RTC_OK);
}

/* A thread whose P was retaken while it blocked, and which then runs
 * without safepoints, still gets a preemption request: sysmon may have gone
 * to deep sleep seeing no busy P, and must be told when the thread gets a
 * P again (this was missed 2 times in 10). */
static void *block_then_run(void *arg) {
    (void)arg;
    rtc_thread_attach("block-then-run", NULL);
    rtc_enter_blocking("long sleep");
    usleep(50000); /* over 10 ms: the P is retaken, sysmon sleeps deeply */
    rtc_exit_blocking(); /* slow path: a P is granted again */
    uint64_t before = rtc_t_sysmon_stats().preempt_requests;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rtc_t_sysmon_stats().preempt_requests == before && rtc_t_ms_since(&t0) < rtc_t_bound_ms(300))
        usleep(500);
    CHECK(rtc_t_sysmon_stats().preempt_requests > before);
    rtc_safepoint();
    rtc_thread_detach();
    return NULL;
}

static void test_preemption_after_a_retaken_region(void) {
    for (int i = 0; i < 5; i++) {
        pthread_t t;
        pthread_create(&t, NULL, block_then_run, NULL);
        pthread_join(t, NULL);
    }
}

/* After a deep sleep sysmon starts again from its 20 us tick (as Go's
 * does), so a thread waiting for the P of a thread in a blocking region is
 * served in well under a millisecond, not after the 10 ms backed-off delay.
 * The minimum over 5 trials is compared, so one slow trial on a loaded
 * machine does not matter. */
static atomic_int region_in, region_done;
static void *region_holder(void *arg) {
    (void)arg;
    rtc_thread_attach("region-holder", NULL);
    rtc_enter_blocking("waiting for the test");
    atomic_store(&region_in, 1);
    while (!atomic_load(&region_done)) usleep(1000);
    rtc_exit_blocking();
    rtc_thread_detach();
    return NULL;
}

static void test_fast_retake_after_deep_sleep(void) {
    CHECK_STATUS(rtc_set_maxprocs(1, NULL), RTC_OK);
    long best_us = 1000000;
    for (int trial = 0; trial < 5; trial++) {
        /* A thread runs (with safepoints) for 150 ms: sysmon, finding no
         * work, backs off to its 10 ms delay. Then nothing is attached and
         * it sleeps deeply. */
        CHECK_STATUS(rtc_thread_attach("idler", NULL), RTC_OK);
        for (int i = 0; i < 150; i++) {
            usleep(1000);
            rtc_safepoint();
        }
        CHECK_STATUS(rtc_thread_detach(), RTC_OK);
        usleep(20000);
        atomic_store(&region_in, 0);
        atomic_store(&region_done, 0);
        pthread_t h;
        pthread_create(&h, NULL, region_holder, NULL);
        while (!atomic_load(&region_in)) usleep(100);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_STATUS(rtc_thread_attach("needs-the-p", NULL), RTC_OK); /* waits for a retake */
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        if (us < best_us) best_us = us;
        CHECK_STATUS(rtc_thread_detach(), RTC_OK);
        atomic_store(&region_done, 1);
        pthread_join(h, NULL);
    }
    CHECK(best_us < (getenv("RTC_TEST_SLOW") ? 200000 : 5000));
    if (best_us >= 5000) fprintf(stderr, "best wait for a retaken P after deep sleep: %ld us\n", best_us);
    CHECK_STATUS(rtc_set_maxprocs(0, NULL), RTC_OK);
}

static void test_deep_sleep_when_idle(void) {
    /* Nothing attached now: sysmon sleeps deeply and stops ticking. */
    usleep(100000);
    rtc_sysmon_stats a = rtc_t_sysmon_stats();
    usleep(300000);
    rtc_sysmon_stats b = rtc_t_sysmon_stats();
    CHECK(b.deep_sleeps >= 1);
    CHECK(b.ticks - a.ticks <= 2);
}

int main(void) {
    test_retake_for_a_waiter();
    test_no_retake_when_nobody_waits();
    test_preemption_request();
    test_handler_may_detach();
    test_preemption_after_a_retaken_region();
    test_fast_retake_after_deep_sleep();
    test_deep_sleep_when_idle();
    int r = rtc_t_finish();
    return r;
}
