/* The world: attach/detach, thread and P states, blocking regions,
 * stop/start and its misuse, maxprocs, threads exiting attached. One
 * process: the world is per process. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "rtc_test.h"

/* Under valgrind (RTC_TEST_SLOW) threads are serialised: busy loops pause
 * briefly each round so the scheduler lets the others run. */
static int slow_host(void) {
    static int v = -1;
    if (v < 0) v = getenv("RTC_TEST_SLOW") != NULL;
    return v;
}

static int my_state(void) {
    int32_t s = -1;
    rtc_thread_state(&s);
    return s;
}

static rtc_census census(void) {
    rtc_census c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    if (rtc_world_census(&c) != RTC_OK) fprintf(stderr, "census failed: %s\n", rtc_t_last_error());
    return c;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_unattached(void) {
    CHECK(my_state() == RTC_THREAD_UNATTACHED);
    CHECK_STATUS(rtc_safepoint(), RTC_OK); /* no-op */
    CHECK_STATUS(rtc_enter_blocking("read"), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "not attached");
    CHECK_STATUS(rtc_exit_blocking(), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_thread_detach(), RTC_ERR_WRONG_STATE);
    /* An unattached thread may stop and start the world. */
    CHECK_STATUS(rtc_stop_the_world("unattached stopper"), RTC_OK);
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_OK);
    CHECK(census().stopped == 1);
    CHECK_STATUS(rtc_stop_the_world("again"), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "do not nest");
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "not stopped");
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_ERR_WRONG_STATE);
}

static void test_attach_states(void) {
    uint64_t id = 0, id2 = 0;
    CHECK_STATUS(rtc_thread_attach("world-main", &id), RTC_OK);
    CHECK_STATUS(rtc_thread_id(&id2), RTC_OK);
    CHECK(id != 0 && id == id2);
    CHECK(my_state() == RTC_THREAD_RUNNING);
    rtc_census c = census();
    CHECK(c.threads_running == 1 && c.procs_running == 1);
    CHECK_STATUS(rtc_thread_attach("again", NULL), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "already attached");

    CHECK_STATUS(rtc_enter_blocking("sleep"), RTC_OK);
    CHECK(my_state() == RTC_THREAD_BLOCKING);
    c = census();
    CHECK(c.threads_blocking == 1 && c.procs_syscall == 1);
    CHECK_STATUS(rtc_enter_blocking("nested"), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_thread_detach(), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "BLOCKING");
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    CHECK(my_state() == RTC_THREAD_RUNNING);
    CHECK_STATUS(rtc_exit_blocking(), RTC_ERR_WRONG_STATE);

    /* Stopping with our own P kept; a blocking region entered and left
     * while holding the world keeps it too. */
    CHECK_STATUS(rtc_stop_the_world("attached stopper"), RTC_OK);
    CHECK(my_state() == RTC_THREAD_RUNNING);
    CHECK_STATUS(rtc_thread_attach("x", NULL), RTC_ERR_WRONG_STATE);
    CHECK_STATUS(rtc_thread_detach(), RTC_ERR_WRONG_STATE);
    CHECK_CONTAINS(rtc_t_last_error(), "holds the world stopped");
    CHECK_STATUS(rtc_safepoint(), RTC_OK); /* the stopper passes its own safepoints */
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);

    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    CHECK(my_state() == RTC_THREAD_UNATTACHED);
    CHECK(census().threads_running == 0);
}

/* Workers: each bumps its own counter between safepoints and right after
 * leaving a blocking region. */
#define WORKERS 6
static atomic_ulong counters[WORKERS];
static atomic_int stop_workers;
static int pipes[WORKERS][2];
static rtc_mutex shared = RTC_MUTEX_INIT_RANKED("world-shared", "w_shared");

static void *worker(void *arg) {
    int i = (int)(long)arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%d", i);
    if (rtc_thread_attach(name, NULL) != RTC_OK) abort();
    while (!atomic_load(&stop_workers)) {
        if (slow_host()) usleep(100);
        switch (i % 3) {
        case 0: /* busy with safepoints */
            for (int k = 0; k < 100; k++) atomic_fetch_add(&counters[i], 1);
            rtc_safepoint();
            break;
        case 1: { /* blocking reads on a pipe */
            char b;
            rtc_enter_blocking("pipe read");
            ssize_t n = read(pipes[i][0], &b, 1);
            rtc_exit_blocking();
            (void)n;
            atomic_fetch_add(&counters[i], 1);
            break;
        }
        default: /* a contended ranked mutex */
            rtc_mutex_lock(&shared);
            atomic_fetch_add(&counters[i], 1);
            rtc_mutex_unlock(&shared);
            rtc_safepoint();
            break;
        }
    }
    /* Exits attached on purpose (odd workers): the destructor detaches. */
    if (i % 2 == 0) rtc_thread_detach();
    return NULL;
}

static void *feeder(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_workers)) {
        for (int i = 0; i < WORKERS; i++)
            if (i % 3 == 1) { ssize_t n = write(pipes[i][1], "x", 1); (void)n; }
        sleep_ms(1);
    }
    for (int i = 0; i < WORKERS; i++) close(pipes[i][1]);
    return NULL;
}

static void test_stops_freeze_workers(int rounds) {
    CHECK_STATUS(rtc_ranks_load("NONE < w_shared;", "world.ranks"), RTC_OK);
    pthread_t t[WORKERS], f;
    for (int i = 0; i < WORKERS; i++) CHECK(pipe(pipes[i]) == 0);
    for (int i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, worker, (void *)(long)i);
    pthread_create(&f, NULL, feeder, NULL);
    sleep_ms(20);
    int frozen_ok = 1, progress_ok = 1;
    for (int r = 0; r < rounds; r++) {
        unsigned long before[WORKERS], during[WORKERS];
        for (int i = 0; i < WORKERS; i++) before[i] = atomic_load(&counters[i]);
        if (rtc_stop_the_world("test") != RTC_OK) { CHECK(0); break; }
        for (int i = 0; i < WORKERS; i++) during[i] = atomic_load(&counters[i]);
        sleep_ms(1);
        for (int i = 0; i < WORKERS; i++)
            if (atomic_load(&counters[i]) != during[i]) frozen_ok = 0;
        rtc_census c = census();
        if (c.procs_running != 0 || c.threads_running != 0) frozen_ok = 0;
        if (rtc_start_the_world() != RTC_OK) { CHECK(0); break; }
        /* Every worker makes progress between stops. */
        for (int i = 0; i < WORKERS; i++) {
            int spins = 0;
            while (atomic_load(&counters[i]) == before[i] && spins++ < 5000) sleep_ms(1);
            if (atomic_load(&counters[i]) == before[i]) progress_ok = 0;
        }
    }
    CHECK(frozen_ok);
    CHECK(progress_ok);
    atomic_store(&stop_workers, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    pthread_join(f, NULL);
    for (int i = 0; i < WORKERS; i++) close(pipes[i][0]);
    rtc_census c = census();
    CHECK(c.threads_running + c.threads_runnable + c.threads_blocking + c.threads_waiting == 0);
}

/* maxprocs: with 2 Ps, at most 2 attached threads run at once. */
static atomic_int inside, max_inside, mp_stop;
static void *busy(void *arg) {
    (void)arg;
    rtc_thread_attach("busy", NULL);
    while (!atomic_load(&mp_stop)) {
        if (slow_host()) usleep(100);
        int n = atomic_fetch_add(&inside, 1) + 1;
        int m = atomic_load(&max_inside);
        while (n > m && !atomic_compare_exchange_weak(&max_inside, &m, n)) {}
        for (volatile int k = 0; k < 1000; k++) {}
        atomic_fetch_sub(&inside, 1);
        rtc_safepoint();
    }
    rtc_thread_detach();
    return NULL;
}

static void test_maxprocs(void) {
    uint32_t prev = 99, cur = 99;
    CHECK_STATUS(rtc_get_maxprocs(&cur), RTC_OK);
    CHECK(cur == 0);
    CHECK_STATUS(rtc_set_maxprocs(2, &prev), RTC_OK);
    CHECK(prev == 0);
    CHECK_STATUS(rtc_set_maxprocs(70000, NULL), RTC_ERR_INVALID_ARGUMENT);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, busy, NULL);
    /* Wait (generously: valgrind is slow) until all four have attached. */
    rtc_census c = census();
    for (int tries = 0; c.threads_running + c.threads_runnable < 4 && tries < 10000; tries++) {
        sleep_ms(1);
        c = census();
    }
    CHECK(c.threads_running <= 2);
    CHECK(c.threads_running + c.threads_runnable == 4);
    /* A stop and a maxprocs change during it. */
    CHECK_STATUS(rtc_stop_the_world("maxprocs"), RTC_OK);
    CHECK_STATUS(rtc_set_maxprocs(1, NULL), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    sleep_ms(30);
    atomic_store(&max_inside, 0);
    sleep_ms(30);
    CHECK(atomic_load(&max_inside) <= 1);
    CHECK(census().threads_running <= 1);
    CHECK_STATUS(rtc_set_maxprocs(0, &prev), RTC_OK);
    CHECK(prev == 1);
    sleep_ms(20);
    CHECK(census().threads_running >= 2);
    atomic_store(&mp_stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
}

/* A thread that exits inside a blocking region, and one cancelled there. */
static void *exit_blocking_thread(void *arg) {
    (void)arg;
    rtc_thread_attach("exits-blocking", NULL);
    rtc_enter_blocking("forever");
    return NULL; /* exits attached and blocking */
}
static void *cancelled_thread(void *arg) {
    int *fd = arg;
    rtc_thread_attach("cancelled", NULL);
    rtc_enter_blocking("read");
    char b;
    ssize_t n = read(*fd, &b, 1); /* a cancellation point */
    (void)n;
    return NULL;
}
static void *stopper_exits(void *arg) {
    (void)arg;
    rtc_thread_attach("stopper-exits", NULL);
    rtc_stop_the_world("then exit");
    return NULL; /* exits holding the world stopped */
}

static void test_exit_attached(void) {
    pthread_t t;
    pthread_create(&t, NULL, exit_blocking_thread, NULL);
    pthread_join(t, NULL);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pthread_create(&t, NULL, cancelled_thread, &fds[0]);
    sleep_ms(20);
    pthread_cancel(t);
    pthread_join(t, NULL);
    close(fds[0]); close(fds[1]);
    pthread_create(&t, NULL, stopper_exits, NULL);
    pthread_join(t, NULL);
    rtc_census c = census();
    CHECK(c.stopped == 0); /* restarted by the exiting stopper's teardown */
    CHECK(c.threads_running + c.threads_blocking + c.threads_runnable + c.threads_waiting == 0);
}

/* WAITING: a thread blocked on a contended mutex releases its P; when the
 * holder unlocks, it takes a P back (RUNNABLE -> RUNNING) and then the lock.
 * A stop does not wait for it. */
static rtc_mutex contended = RTC_MUTEX_INIT_RANKED("contended", NULL);
static atomic_int waiter_done;
static void *waiter(void *arg) {
    (void)arg;
    rtc_thread_attach("waiter", NULL);
    rtc_mutex_lock(&contended);
    int32_t st = -1;
    rtc_thread_state(&st);
    if (st == RTC_THREAD_RUNNING) atomic_store(&waiter_done, 1);
    else atomic_store(&waiter_done, -1);
    rtc_mutex_unlock(&contended);
    rtc_thread_detach();
    return NULL;
}

static void test_waiting(void) {
    CHECK_STATUS(rtc_mutex_lock(&contended), RTC_OK); /* unattached holder */
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    rtc_census c;
    int tries = 0;
    do { sleep_ms(2); c = census(); } while (c.threads_waiting != 1 && tries++ < 2000);
    CHECK(c.threads_waiting == 1);
    CHECK(c.procs_running == 0); /* its P was released */
    CHECK_STATUS(rtc_stop_the_world("waiting"), RTC_OK); /* does not wait for it */
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&contended), RTC_OK);
    pthread_join(t, NULL);
    CHECK(atomic_load(&waiter_done) == 1); /* RUNNING again when it got the lock */
}

#define PHASE(call) (fprintf(stderr, "test_world: %s\n", #call), call)

/* A thread holding the world stopped changes the lock-rank callback while
 * a call of it runs on a thread stopped at a safepoint: it gets
 * RTC_ERR_WOULD_DEADLOCK at once instead of waiting for a call that
 * cannot end before the world starts; the change itself is made. */
static atomic_int sc_inside, sc_release;
static void sc_callback(const rtc_lockrank_report *r, void *user) {
    (void)r;
    (void)user;
    atomic_store(&sc_inside, 1);
    while (!atomic_load(&sc_release)) {
        rtc_safepoint();
        usleep(100);
    }
}
static rtc_mutex sc_a = RTC_MUTEX_INIT_RANKED("sc_A", "sc_a");
static rtc_mutex sc_b = RTC_MUTEX_INIT_RANKED("sc_B", "sc_b");
static void *sc_violator(void *arg) {
    (void)arg;
    CHECK_STATUS(rtc_thread_attach("violator", NULL), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&sc_b), RTC_OK);
    CHECK_STATUS(rtc_mutex_lock(&sc_a), RTC_OK); /* the callback runs here */
    CHECK_STATUS(rtc_mutex_unlock(&sc_a), RTC_OK);
    CHECK_STATUS(rtc_mutex_unlock(&sc_b), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    return NULL;
}
static void test_stopper_changes_the_callback(void) {
    CHECK_STATUS(rtc_ranks_load("NONE < sc_a;\nsc_a < sc_b;\n", "sc.ranks"), RTC_OK);
    CHECK_STATUS(rtc_thread_attach("stopper", NULL), RTC_OK);
    CHECK_STATUS(rtc_lockrank_set_callback(sc_callback, NULL), RTC_OK);
    pthread_t t;
    pthread_create(&t, NULL, sc_violator, NULL);
    CHECK_STATUS(rtc_enter_blocking("wait for the callback"), RTC_OK);
    while (!atomic_load(&sc_inside)) usleep(100);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    CHECK_STATUS(rtc_stop_the_world("change the callback"), RTC_OK);
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_ERR_WOULD_DEADLOCK);
    CHECK_CONTAINS(rtc_t_last_error(), "holds the world stopped");
    int32_t mode = 0;
    CHECK_STATUS(rtc_lockrank_get_mode(&mode), RTC_OK);
    CHECK(mode == RTC_LOCKRANK_REPORT);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    atomic_store(&sc_release, 1);
    CHECK_STATUS(rtc_enter_blocking("join the violator"), RTC_OK);
    pthread_join(t, NULL);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    /* Nothing in flight now: it returns at once. */
    CHECK_STATUS(rtc_lockrank_set_callback(NULL, NULL), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
}

int main(void) {
    PHASE(test_unattached());
    PHASE(test_waiting());
    PHASE(test_attach_states());
    PHASE(test_maxprocs());
    PHASE(test_exit_attached());
    PHASE(test_stops_freeze_workers(2 * rtc_t_scale()));
    PHASE(test_stopper_changes_the_callback());
    return rtc_t_finish();
}
