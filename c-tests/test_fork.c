/* fork while hooks run and threads block: the child keeps only the forking
 * thread in the world, can stop and start the world, attach new threads,
 * lock, and has sysmon and the hook thread again. The parent goes on. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtc_test.h"

static atomic_int hook_runs;
static void ticker(void *arg) { (void)arg; atomic_fetch_add(&hook_runs, 1); }

static rtc_mutex held = RTC_MUTEX_INIT_RANKED("held-at-fork", NULL);
static rtc_mutex fresh = RTC_MUTEX_INIT_RANKED("fresh", NULL);
static int pipefd[2];
static atomic_int blocker_in, waiter_started;

static void *blocker(void *arg) {
    (void)arg;
    rtc_thread_attach("blocker", NULL);
    rtc_mutex_lock(&held);
    rtc_enter_blocking("pipe read");
    atomic_store(&blocker_in, 1);
    char b;
    ssize_t n = read(pipefd[0], &b, 1);
    (void)n;
    rtc_exit_blocking();
    rtc_mutex_unlock(&held);
    rtc_thread_detach();
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    rtc_thread_attach("waiter", NULL);
    atomic_store(&waiter_started, 1);
    rtc_mutex_lock(&held); /* WAITING until the blocker lets go */
    rtc_mutex_unlock(&held);
    rtc_thread_detach();
    return NULL;
}

static atomic_int child_worker_ran;
static void *child_worker(void *arg) {
    (void)arg;
    if (rtc_thread_attach("child-worker", NULL) != RTC_OK) return NULL;
    rtc_mutex_lock(&fresh);
    rtc_safepoint();
    rtc_mutex_unlock(&fresh);
    rtc_thread_detach();
    atomic_store(&child_worker_ran, 1);
    return NULL;
}

/* In the child: returns the number of failed checks (the exit status). */
static int child_main(void) {
    rtc_census c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    CHECK_STATUS(rtc_world_census(&c), RTC_OK);
    CHECK(c.threads_running + c.threads_runnable + c.threads_blocking + c.threads_waiting == 1);
    CHECK(c.threads_running == 1); /* the forking thread, still attached */
    CHECK(c.stopped == 0);
    CHECK_STATUS(rtc_stop_the_world("child"), RTC_OK);
    CHECK_STATUS(rtc_assert_world_stopped(), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    pthread_t w;
    pthread_create(&w, NULL, child_worker, NULL);
    pthread_join(w, NULL);
    CHECK(atomic_load(&child_worker_ran));
    /* sysmon and the hook thread came back with the first attach. */
    rtc_sysmon_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    CHECK_STATUS(rtc_sysmon_get_stats(&s), RTC_OK);
    CHECK(s.running == 1);
    int before = atomic_load(&hook_runs);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&hook_runs) == before && rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000)) usleep(1000);
    CHECK(atomic_load(&hook_runs) > before);
    /* A blocking region and a new hook work too. */
    CHECK_STATUS(rtc_enter_blocking("child sleep"), RTC_OK);
    usleep(1000);
    CHECK_STATUS(rtc_exit_blocking(), RTC_OK);
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("child-hook", 1000000, ticker, NULL, &id), RTC_OK);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    fflush(stdout);
    return rtc_t_failed;
}

/* fork from inside a hook: in the child the hook thread is the forking
 * thread; its run ends normally and its next run works (this once left the
 * child spinning forever on a corrupted hooklock). The child exits from its
 * second run. */
static atomic_int forked_in_hook; /* 0: not yet, 1: forked (parent), 2: done */
static pid_t hook_child;
static int in_hook_child;
static void forking_hook(void *arg) {
    (void)arg;
    if (in_hook_child) {
        /* The child's second run: the hook thread survived its fork. */
        kill(getpid(), SIGKILL); /* no exit-time leak check (see below) */
    }
    if (atomic_load(&forked_in_hook) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        in_hook_child = 1;
        return;
    }
    hook_child = pid;
    atomic_store(&forked_in_hook, 1);
}

static void test_fork_from_a_hook(void) {
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("forker", 2000000, forking_hook, NULL, &id), RTC_OK);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load(&forked_in_hook) && rtc_t_ms_since(&t0) < rtc_t_bound_ms(2000)) usleep(1000);
    CHECK(atomic_load(&forked_in_hook) == 1);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    if (atomic_load(&forked_in_hook) != 1) return;
    /* The child ends itself on its next hook run; a stuck child is killed
     * (and the check fails). */
    int status = 0;
    pid_t r = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((r = waitpid(hook_child, &status, WNOHANG)) == 0 && rtc_t_ms_since(&t0) < rtc_t_bound_ms(3000))
        usleep(1000);
    if (r == 0) {
        kill(hook_child, SIGKILL);
        waitpid(hook_child, &status, 0);
    }
    CHECK(r == hook_child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

int main(void) {
    test_fork_from_a_hook();
    CHECK(pipe(pipefd) == 0);
    uint64_t id = 0;
    CHECK_STATUS(rtc_sysmon_hook_add("ticker", 1000000, ticker, NULL, &id), RTC_OK);
    CHECK_STATUS(rtc_thread_attach("main", NULL), RTC_OK);
    pthread_t b, w;
    pthread_create(&b, NULL, blocker, NULL);
    while (!atomic_load(&blocker_in)) usleep(1000);
    pthread_create(&w, NULL, waiter, NULL);
    while (!atomic_load(&waiter_started)) usleep(1000);
    usleep(20000); /* the waiter parks; hooks keep running */
    for (int round = 0; round < 3; round++) {
        int result[2];
        CHECK(pipe(result) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            /* The child reports its failed-check count through the pipe and
             * ends with SIGKILL rather than exit: under valgrind an exit runs
             * the leak check, which counts the heap of parent threads that
             * do not exist in the child (their thread-local data). */
            int failed = child_main();
            ssize_t w = write(result[1], &failed, sizeof failed);
            (void)w;
            kill(getpid(), SIGKILL);
            _exit(99);
        }
        CHECK(pid > 0);
        close(result[1]);
        int failed = -1;
        CHECK(read(result[0], &failed, sizeof failed) == (ssize_t)sizeof failed);
        close(result[0]);
        CHECK(failed == 0);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        if (failed != 0) fprintf(stderr, "child %d: %d checks failed\n", round, failed);
    }
    /* The parent is unaffected. */
    ssize_t n = write(pipefd[1], "x", 1);
    (void)n;
    pthread_join(b, NULL);
    pthread_join(w, NULL);
    CHECK_STATUS(rtc_stop_the_world("parent"), RTC_OK);
    CHECK_STATUS(rtc_start_the_world(), RTC_OK);
    CHECK_STATUS(rtc_sysmon_hook_remove(id), RTC_OK);
    CHECK_STATUS(rtc_thread_detach(), RTC_OK);
    return rtc_t_finish();
}
