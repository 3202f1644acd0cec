/* Hooks and sysmon's reports, end to end. Time bounds are one-sided with
 * wide margins (2 cores, possibly loaded, maybe valgrind): "within 2 s",
 * never "within 5 ms". Thresholds are set through the API (50 ms).
 *
 * - a hook runs on its period, on a thread that is not the caller's;
 * - removal waits for a run in progress; a hook can remove itself;
 * - from a hook: stopping the world, attaching and shutting down refuse;
 * - removing a running hook while holding the world stopped refuses;
 * - a hook blocked on a user lock held by a thread in a blocking region:
 *   sysmon keeps retaking and reports the overrun; the world can still be
 *   stopped and started; the hook returns when the lock is freed;
 * - stall reports for a blocking thread and for a held lock, with their
 *   "resolved" follow-ups;
 * - rtc_shutdown removes hooks and joins the hook thread. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "rtc_test.h"

#define MS 1000000ull

/* Wait (polling every ms) until cond holds or rtc_t_bound_ms(limit) passes. */
#define WAIT_UNTIL(cond, limit)                                              \
    do {                                                                     \
        struct timespec w0_;                                                 \
        clock_gettime(CLOCK_MONOTONIC, &w0_);                                \
        while (!(cond) && rtc_t_ms_since(&w0_) < rtc_t_bound_ms(limit)) usleep(1000);    \
    } while (0)

static const char *last_report(void) {
    static char buf[4096];
    rtc_sysmon_last_report(buf, sizeof buf);
    return buf;
}

/* ---- period and the hook thread ---------------------------------------- */

struct counter { atomic_int runs; atomic_ulong tid; };

static void count_hook(void *arg) {
    struct counter *c = arg;
    atomic_store(&c->tid, (unsigned long)pthread_self());
    atomic_fetch_add(&c->runs, 1);
}

static void test_period(void) {
    static struct counter c;
    uint64_t id = 0;
    uint64_t runs_before = rtc_t_sysmon_stats().hook_runs;
    CHECK_STATUS(rtc_sysmon_hook_add("counter", 2 * MS, count_hook, &c, &id), RTC_OK);
    CHECK(rtc_t_sysmon_stats().hooks == 1);
    WAIT_UNTIL(atomic_load(&c.runs) >= 5, 2000);
    CHECK(atomic_load(&c.runs) >= 5);
    CHECK(atomic_load(&c.tid) != (unsigned long)pthread_self()); /* the hook thread */
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    int after = atomic_load(&c.runs);
    usleep(20000);
    CHECK(atomic_load(&c.runs) == after); /* removed: never runs again */
    CHECK(rtc_t_sysmon_stats().hook_runs >= runs_before + 5);
    CHECK(rtc_t_sysmon_stats().hooks == 0);
    /* A long period: the first run comes a period after the add. */
    static struct counter slow;
    CHECK_STATUS(rtc_sysmon_hook_add("slow", 500 * MS, count_hook, &slow, &id), RTC_OK);
    usleep(100000);
    CHECK(atomic_load(&slow.runs) == 0);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
}

/* ---- removal waits for a run; self-removal ------------------------------ */

static atomic_int long_in, long_out;
static void long_hook(void *arg) {
    (void)arg;
    atomic_store(&long_in, 1);
    usleep(100000);
    atomic_store(&long_out, 1);
}

static void test_remove_waits_for_the_run(void) {
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("long", 1 * MS, long_hook, NULL, &id), RTC_OK);
    WAIT_UNTIL(atomic_load(&long_in), 2000);
    CHECK(atomic_load(&long_in));
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK(atomic_load(&long_out)); /* the run had finished when remove returned */
    atomic_store(&long_in, 0);
    usleep(20000);
    CHECK(atomic_load(&long_in) == 0);
}

static _Atomic uint64_t self_id;
static atomic_int self_runs, self_status = -1;
static void self_removing_hook(void *arg) {
    (void)arg;
    if (atomic_fetch_add(&self_runs, 1) + 1 == 3)
        atomic_store(&self_status, rtc_sysmon_hook_remove(atomic_load(&self_id)));
}

static void test_self_removal(void) {
    uint64_t id = 0;
    /* Published before the first run can happen (a period later). */
    CHECK_STATUS(rtc_sysmon_hook_add("self", 20 * MS, self_removing_hook, NULL, &id), RTC_OK);
    atomic_store(&self_id, id);
    WAIT_UNTIL(atomic_load(&self_runs) >= 3, 3000);
    usleep(100000);
    CHECK(atomic_load(&self_runs) == 3);
    CHECK_STATUS(atomic_load(&self_status), RTC_OK);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_ERR_INVALID_ARGUMENT); /* gone */
}

/* ---- what a hook may not do -------------------------------------------- */

static atomic_int refused_done;
static int refused_stop, refused_attach, refused_shutdown;
static char refused_msg[512];
static void refusing_hook(void *arg) {
    (void)arg;
    if (atomic_load(&refused_done)) return;
    refused_stop = rtc_stop_the_world("from a hook");
    rtc_last_error_message(refused_msg, sizeof refused_msg);
    refused_attach = rtc_thread_attach("hook", NULL);
    refused_shutdown = rtc_shutdown();
    atomic_store(&refused_done, 1);
}

static void test_refusals_from_a_hook(void) {
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("refusing", 1 * MS, refusing_hook, NULL, &id), RTC_OK);
    WAIT_UNTIL(atomic_load(&refused_done), 2000);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK_STATUS(refused_stop, RTC_ERR_WOULD_DEADLOCK);
    CHECK_CONTAINS(refused_msg, "from a hook");
    CHECK_STATUS(refused_attach, RTC_ERR_WRONG_STATE);
    CHECK_STATUS(refused_shutdown, RTC_ERR_WOULD_DEADLOCK);
}

static void test_remove_refused_while_holding_the_world(void) {
    uint64_t id = 0;
    atomic_store(&long_in, 0);
    CHECK_STATUS(rtc_sysmon_hook_add("long2", 1 * MS, long_hook, NULL, &id), RTC_OK);
    WAIT_UNTIL(atomic_load(&long_in), 2000);
    CHECK_STATUS(rtc_stop_the_world("test"), RTC_OK);
    /* The hook may still be running (it sleeps 100 ms per run); if it is,
     * removing it would wait for the hook thread: refused. */
    int s = rtc_sysmon_hook_remove(id);
    CHECK(s == RTC_ERR_WOULD_DEADLOCK || s == RTC_OK);
    if (s == RTC_ERR_WOULD_DEADLOCK) CHECK_CONTAINS(rtc_t_last_error(), "holds the world stopped");
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    if (s != RTC_OK) CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
}

/* ---- a hook stuck on a lock held by a blocking thread ------------------- */

static rtc_mutex shared = RTC_MUTEX_INIT_RANKED("shared", NULL);
static int pipefd[2];
static atomic_int holder_in, hook_got_lock, hook_entered, runner_ran;

static void *holder(void *arg) {
    (void)arg;
    rtc_thread_attach("holder", NULL);
    rtc_mutex_lock(&shared);
    rtc_enter_blocking("pipe read");
    atomic_store(&holder_in, 1);
    char b;
    ssize_t n = read(pipefd[0], &b, 1);
    (void)n;
    rtc_exit_blocking();
    rtc_mutex_unlock(&shared);
    rtc_thread_detach();
    return NULL;
}

static void locking_hook(void *arg) {
    (void)arg;
    if (atomic_load(&hook_got_lock)) return;
    atomic_store(&hook_entered, 1);
    if (rtc_mutex_lock(&shared) == RTC_OK) {
        atomic_store(&hook_got_lock, 1);
        rtc_mutex_unlock(&shared);
    }
}

/* Takes the only P (the holder's was retaken) and blocks in a region until
 * the runner below has run: the runner needs this P, so sysmon must retake
 * it while the hook is stuck. */
static atomic_int second_attached, second_enter, second_in, second_go;
static void *second_blocker(void *arg) {
    (void)arg;
    rtc_thread_attach("second-blocker", NULL);
    atomic_store(&second_attached, 1);
    while (!atomic_load(&second_enter)) usleep(1000);
    rtc_enter_blocking("waiting for the test");
    atomic_store(&second_in, 1);
    while (!atomic_load(&second_go)) usleep(1000);
    rtc_exit_blocking();
    rtc_thread_detach();
    return NULL;
}

static void *runner(void *arg) {
    (void)arg;
    rtc_thread_attach("runner", NULL); /* maxprocs 1: needs the blocker's P */
    atomic_fetch_add(&runner_ran, 1);
    rtc_thread_detach();
    return NULL;
}

static void test_hook_blocked_on_a_blocking_threads_lock(void) {
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_HOOK_BUDGET_NS, 50 * MS, NULL), RTC_OK);
    CHECK_STATUS(rtc_set_maxprocs(1, NULL), RTC_OK);
    CHECK(pipe(pipefd) == 0);
    pthread_t h;
    pthread_create(&h, NULL, holder, NULL);
    WAIT_UNTIL(atomic_load(&holder_in), 2000);
    uint64_t overruns = rtc_t_sysmon_stats().hook_overruns;
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("locking", 1 * MS, locking_hook, NULL, &id), RTC_OK);
    WAIT_UNTIL(atomic_load(&hook_entered), 2000);
    /* The hook is stuck: sysmon reports it. */
    WAIT_UNTIL(rtc_t_sysmon_stats().hook_overruns > overruns, 2000);
    CHECK(rtc_t_sysmon_stats().hook_overruns > overruns);
    CHECK_CONTAINS(last_report(), "hook 'locking'");
    CHECK_CONTAINS(last_report(), "over its budget of 50 ms");
    /* sysmon keeps working while the hook is stuck: a second thread takes
     * the only P; once the baseline is read it enters a blocking region, so
     * its P can only be retaken after that (for the runner, or after 10 ms
     * regardless): a retake while the hook is stuck. */
    pthread_t b2, r;
    pthread_create(&b2, NULL, second_blocker, NULL);
    WAIT_UNTIL(atomic_load(&second_attached), 2000);
    uint64_t retakes = rtc_t_sysmon_stats().retakes;
    atomic_store(&second_enter, 1);
    WAIT_UNTIL(atomic_load(&second_in), 2000);
    pthread_create(&r, NULL, runner, NULL);
    WAIT_UNTIL(atomic_load(&runner_ran), 2000);
    CHECK(atomic_load(&runner_ran) == 1);
    pthread_join(r, NULL);
    WAIT_UNTIL(rtc_t_sysmon_stats().retakes > retakes, 2000);
    CHECK(rtc_t_sysmon_stats().retakes > retakes);
    atomic_store(&second_go, 1);
    pthread_join(b2, NULL);
    /* The world can be stopped and started meanwhile. */
    CHECK_STATUS(rtc_stop_the_world("while a hook is stuck"), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    CHECK(!atomic_load(&hook_got_lock));
    /* Free the holder: the hook gets the lock and returns; the episode is
     * closed with a "returned after" report. */
    uint64_t resolved = rtc_t_sysmon_stats().stalls_resolved;
    ssize_t n = write(pipefd[1], "x", 1);
    (void)n;
    pthread_join(h, NULL);
    WAIT_UNTIL(atomic_load(&hook_got_lock), 2000);
    CHECK(atomic_load(&hook_got_lock));
    WAIT_UNTIL(rtc_t_sysmon_stats().stalls_resolved > resolved, 2000);
    CHECK_CONTAINS(last_report(), "returned after");
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    close(pipefd[0]);
    close(pipefd[1]);
    CHECK_STATUS(rtc_set_maxprocs(0, NULL), RTC_OK);
}

/* With nothing attached sysmon sleeps deeply; a frequent hook must not wake
 * it for every run (its deep sleep is capped at the earliest possible
 * overrun instead). It once woke sysmon on every run. */
static void test_hooks_do_not_wake_sysmon_each_run(void) {
    static struct counter c;
    uint64_t id = 0;
    usleep(50000);
    rtc_sysmon_stats a = rtc_t_sysmon_stats();
    CHECK_STATUS(rtc_sysmon_hook_add("frequent", 1 * MS, count_hook, &c, &id), RTC_OK);
    usleep(300000);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    rtc_sysmon_stats b = rtc_t_sysmon_stats();
    uint64_t runs = b.hook_runs - a.hook_runs, ticks = b.ticks - a.ticks;
    CHECK(runs >= 20);
    CHECK(ticks * 4 < runs);
    if (ticks * 4 >= runs) fprintf(stderr, "%llu sysmon ticks for %llu hook runs\n",
                                   (unsigned long long)ticks, (unsigned long long)runs);
}

/* ---- stall reports ------------------------------------------------------- */

static rtc_mutex db = RTC_MUTEX_INIT_RANKED("db", NULL);
static atomic_int sleeper_in, sleeper_go;

static void *sleeper(void *arg) {
    (void)arg;
    rtc_thread_attach("sleeper", NULL);
    RTC_MUTEX_LOCK(&db); /* records this call site */
    rtc_enter_blocking("fsync");
    atomic_store(&sleeper_in, 1);
    while (!atomic_load(&sleeper_go)) usleep(1000);
    rtc_exit_blocking();
    rtc_mutex_unlock(&db);
    rtc_thread_detach();
    return NULL;
}

static atomic_int waiter_locked;
static void *db_waiter(void *arg) {
    (void)arg;
    rtc_thread_attach("db-waiter", NULL);
    rtc_mutex_lock(&db); /* waits: the sleeper holds it */
    atomic_store(&waiter_locked, 1);
    rtc_mutex_unlock(&db);
    rtc_thread_detach();
    return NULL;
}

static void test_thread_stall_report(void) {
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_THREAD_STALL_NS, 50 * MS, NULL), RTC_OK);
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_LOCK_STALL_NS, 0, NULL), RTC_OK);
    atomic_store(&sleeper_in, 0);
    atomic_store(&sleeper_go, 0);
    uint64_t reports = rtc_t_sysmon_stats().stall_reports, resolved = rtc_t_sysmon_stats().stalls_resolved;
    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
    WAIT_UNTIL(atomic_load(&sleeper_in), 2000);
    WAIT_UNTIL(rtc_t_sysmon_stats().stall_reports > reports, 2000);
    CHECK(rtc_t_sysmon_stats().stall_reports > reports);
    const char *r = last_report();
    CHECK_CONTAINS(r, "'sleeper'");
    CHECK_CONTAINS(r, "BLOCKING for ");
    CHECK_CONTAINS(r, " in 'fsync'");
    CHECK_CONTAINS(r, "it holds 'db'");
    CHECK_CONTAINS(r, "test_hooks.c"); /* where it locked db */
    atomic_store(&sleeper_go, 1);
    pthread_join(t, NULL);
    WAIT_UNTIL(rtc_t_sysmon_stats().stalls_resolved > resolved, 2000);
    CHECK(rtc_t_sysmon_stats().stalls_resolved > resolved);
    CHECK_CONTAINS(last_report(), "resolved after");
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_THREAD_STALL_NS, 0, NULL), RTC_OK);
}

static void test_lock_stall_report(void) {
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_LOCK_STALL_NS, 50 * MS, NULL), RTC_OK);
    atomic_store(&sleeper_in, 0);
    atomic_store(&sleeper_go, 0);
    pthread_t t, w;
    pthread_create(&t, NULL, sleeper, NULL);
    WAIT_UNTIL(atomic_load(&sleeper_in), 2000);
    uint64_t reports = rtc_t_sysmon_stats().stall_reports, resolved = rtc_t_sysmon_stats().stalls_resolved;
    pthread_create(&w, NULL, db_waiter, NULL);
    WAIT_UNTIL(rtc_t_sysmon_stats().stall_reports > reports, 2000);
    CHECK(rtc_t_sysmon_stats().stall_reports > reports);
    const char *r = last_report();
    CHECK_CONTAINS(r, "mutex 'db'");
    CHECK_CONTAINS(r, "has been held for");
    CHECK_CONTAINS(r, "by thread");
    CHECK_CONTAINS(r, "'sleeper'");
    CHECK_CONTAINS(r, "which is BLOCKING in 'fsync'");
    CHECK_CONTAINS(r, "waiting for it: thread");
    CHECK_CONTAINS(r, "'db-waiter'");
    CHECK(!atomic_load(&waiter_locked));
    atomic_store(&sleeper_go, 1);
    pthread_join(t, NULL);
    pthread_join(w, NULL);
    CHECK(atomic_load(&waiter_locked));
    WAIT_UNTIL(rtc_t_sysmon_stats().stalls_resolved > resolved, 2000);
    CHECK_CONTAINS(last_report(), "stall of mutex 'db'");
    CHECK_CONTAINS(last_report(), "resolved after");
    CHECK_STATUS(rtc_sysmon_set_threshold(RTC_SYSMON_LOCK_STALL_NS, 1000 * MS, NULL), RTC_OK);
}

/* ---- shutdown ------------------------------------------------------------ */

/* A hook that keeps calling rtcore while another thread shuts down: adding
 * hooks (which once restarted the hook thread being joined) and changing
 * the lock-rank mode (which once waited for the lifecycle lock that
 * shutdown held while joining the hook thread). Shutdown must return. */
static atomic_int busy_hook_runs;
static void noop_hook(void *arg) { (void)arg; }
static void busy_hook(void *arg) {
    (void)arg;
    atomic_fetch_add(&busy_hook_runs, 1);
    int32_t mode = 0;
    if (rtc_lockrank_get_mode(&mode) == RTC_OK) rtc_lockrank_set_mode(mode);
    uint64_t id = 0;
    rtc_sysmon_hook_add("spawned", 1000 * MS, noop_hook, NULL, &id);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FATAL: rtc_shutdown hung\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

static void test_shutdown_removes_hooks(void) {
    static struct counter c;
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("left-behind", 1 * MS, count_hook, &c, &id), RTC_OK);
    CHECK_STATUS(rtc_sysmon_hook_add("busy", 1 * MS, busy_hook, NULL, &id), RTC_OK);
    WAIT_UNTIL(atomic_load(&c.runs) >= 1 && atomic_load(&busy_hook_runs) >= 3, 2000);
    signal(SIGALRM, on_alarm);
    alarm(getenv("RTC_TEST_SLOW") ? 120 : 20);
    CHECK_STATUS(rtc_shutdown(), RTC_OK);
    alarm(0);
    int after = atomic_load(&c.runs), busy_after = atomic_load(&busy_hook_runs);
    usleep(30000);
    CHECK(atomic_load(&c.runs) == after);
    CHECK(atomic_load(&busy_hook_runs) == busy_after);
}

/* At process exit rtcore's atexit handler stops the hook thread (waiting
 * at most a second for a run in progress): in a child, a user atexit
 * handler registered before rtcore started (so it runs after rtcore's)
 * sets a flag, and a hook that sees the flag reports through a pipe. A
 * second child's hook is stuck forever: its exit still completes. */
static volatile sig_atomic_t child_exiting;
static int report_fd = -1;
static void mark_exiting(void) {
    child_exiting = 1;
    usleep(20000); /* a slow teardown (C++ destructors, say): hooks would run meanwhile */
}
static void watching_hook(void *arg) {
    (void)arg;
    if (child_exiting) {
        ssize_t n = write(report_fd, "X", 1); /* a hook ran after rtcore's handler */
        (void)n;
    }
}
static void stuck_hook(void *arg) {
    (void)arg;
    for (;;) pause();
}

static void exit_child(int stuck) {
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        report_fd = p[1];
        atexit(mark_exiting); /* before rtcore's own handler is registered */
        uint64_t id = 0;
        if (rtc_sysmon_hook_add("watching", 1 * MS, stuck ? stuck_hook : watching_hook, NULL, &id) != RTC_OK)
            _exit(2);
        usleep(20000);
        exit(0);
    }
    close(p[1]);
    int status = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && rtc_t_ms_since(&t0) < rtc_t_bound_ms(5000)) usleep(1000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK(r == pid); /* exited, within the bound, even with a stuck hook */
    /* valgrind's leak check at the child's exit may set its status. */
    if (!getenv("RTC_TEST_SLOW")) CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char buf[8];
    CHECK(read(p[0], buf, sizeof buf) == 0); /* no hook ran after the handler */
    close(p[0]);
}

static void test_exit_stops_hooks(void) {
    exit_child(0);
    exit_child(1);
}

int main(void) {
    /* First, before rtcore starts in this process: the children fork from
     * a process without rtcore threads. */
    test_exit_stops_hooks();
    /* Attached, so the world-holding case has a P to keep. */
    CHECK_STATUS(rtc_thread_attach("main", NULL), RTC_OK);
    test_period();
    test_remove_waits_for_the_run();
    test_self_removal();
    test_refusals_from_a_hook();
    test_remove_refused_while_holding_the_world();
    /* The main thread steps out of the world for the scenarios with
     * maxprocs 1 (it would hold the only P). */
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    test_hooks_do_not_wake_sysmon_each_run();
    test_hook_blocked_on_a_blocking_threads_lock();
    test_thread_stall_report();
    test_lock_stall_report();
    test_shutdown_removes_hooks();
    return rtc_t_finish();
}
